import math

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from ndgan import ops

# Hand-written NumPy activations and StyleGAN2-ADA's default gains.
HAND = {
    "linear": (lambda x: x, 1.0),
    "relu": (lambda x: np.maximum(x, 0), math.sqrt(2)),
    "lrelu": (lambda x: np.where(x > 0, x, 0.2 * x), math.sqrt(2)),
    "tanh": (np.tanh, 1.0),
    "sigmoid": (lambda x: 1 / (1 + np.exp(-x)), 1.0),
    "elu": (lambda x: np.where(x > 0, x, np.exp(x) - 1), 1.0),
    "softplus": (lambda x: np.log1p(np.exp(x)), 1.0),
    "swish": (lambda x: x / (1 + np.exp(-x)), math.sqrt(2)),
}


@pytest.mark.parametrize("act", sorted(HAND))
def test_bias_act_matches_hand_formula(act):
    x = torch.randn(3, 5, 4, 2, dtype=torch.float64)
    b = torch.randn(5, dtype=torch.float64)
    func, gain = HAND[act]
    expected = func((x + b.reshape(1, 5, 1, 1)).numpy()) * gain
    torch.testing.assert_close(ops.bias_act(x, b, act=act), torch.from_numpy(expected))
    assert ops.activation_gain(act) == pytest.approx(gain)


def test_bias_act_alpha_gain_clamp_dim():
    x = torch.randn(4, 3, 6, dtype=torch.float64) * 10
    b = torch.randn(6, dtype=torch.float64)
    y = ops.bias_act(x, b, dim=2, act="lrelu", alpha=0.1, gain=3.0, clamp=5.0)
    z = (x + b).numpy()
    expected = np.clip(np.where(z > 0, z, 0.1 * z) * 3.0, -5.0, 5.0)
    torch.testing.assert_close(y, torch.from_numpy(expected))
    assert y.abs().max() <= 5.0


@pytest.mark.parametrize("act", ["linear", "lrelu", "tanh", "swish"])
def test_bias_act_gradcheck(act):
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)

    def fn(x, b):
        return ops.bias_act(x, b, act=act, clamp=100.0)

    assert gradcheck(fn, (x, b), fast_mode=True)
    assert gradgradcheck(fn, (x, b), fast_mode=True)


def test_bias_act_bad_input():
    x = torch.randn(2, 3, 4)
    with pytest.raises(ValueError, match="act: unknown activation 'leaky'"):
        ops.bias_act(x, act="leaky")
    with pytest.raises(ValueError, match=r"b: expected a 1-D bias of length x.shape\[1\] = 3"):
        ops.bias_act(x, torch.zeros(4))
    with pytest.raises(ValueError, match="clamp: expected None or a non-negative"):
        ops.bias_act(x, clamp=-1)
    with pytest.raises(ValueError, match="dim: expected an int in \\[-3, 3\\) for x with 3 dims, got 3"):
        ops.bias_act(x, dim=3)


def test_bias_act_gradcheck_through_an_active_clamp():
    x = torch.randn(2, 3, 8, dtype=torch.float64) * 3
    x = x[(x.abs() - 0.5).abs() > 1e-3].reshape(-1)[:12].reshape(2, 3, 2).requires_grad_()  # away from the kinks
    y = ops.bias_act(x, act="lrelu", clamp=0.5)
    assert (y.abs() == 0.5).any() and (y.abs() < 0.5).any()  # the clamp is active somewhere, not everywhere
    assert gradcheck(lambda t: ops.bias_act(t, act="lrelu", clamp=0.5), (x,), fast_mode=True)


@pytest.mark.parametrize("kw, match", [(dict(act=["lrelu"]), "act: unknown activation"),
                                       (dict(dim=1.0), "dim: expected an int"),
                                       (dict(clamp="a"), "clamp: expected None or a non-negative")])
def test_bias_act_rejects_wrong_types(kw, match):
    with pytest.raises(ValueError, match=match):
        ops.bias_act(torch.randn(2, 3), **kw)
