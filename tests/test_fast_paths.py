"""Every fast path of a training step against a float64 reference of the same networks, per dtype.

The paths: fused and unfused modulated convolution (``fused=None`` picks one per device), polyphase and
transposed-conv up-sampling (picked per device, rank and dtype), exact periodic padding, and bfloat16 autocast
(float32 demodulation and losses). The reference is the same network in float64 running the slow literal ops
instead (``modulated_conv_reference``, ``conv_resample_reference``, ``upfirdn_reference``: per-sample weights,
explicit zero-stuffing and dense filters, circular padding by index arithmetic), so no fast path checks itself.

Tolerances: relative rms error ``rms(fast - reference) / rms(reference)`` of the samples and losses, and of
all of a network's parameter gradients taken together:
"""

from __future__ import annotations

import contextlib
import copy
from unittest import mock

import pytest
import torch

from ndgan import losses, ops
from ndgan.nets import Discriminator, Generator
from ndgan.ops.resample import _polyphase_up, _transposed_up

#: float32 keeps 24 bits: samples agree to ~5e-7. Gradients pass leaky-ReLU kinks, where a pre-activation within
#: rounding of 0 takes the other slope, so they are allowed 1e-3 (measured up to 3e-4). bfloat16 keeps 8 bits
#: (2^-9 per rounding): samples agree to ~1.4e-2; gradients, rounded on the way through D and back through G and
#: across many kinks, to 0.03-0.24 on these tiny networks, which is what reduced precision costs.
TOL = {
    torch.float32: {"output": 1e-5, "loss": 1e-5, "grad": 1e-3},
    torch.bfloat16: {"output": 3e-2, "loss": 1e-2, "grad": 0.4},
}
__doc__ += "".join(f"\n- {str(dtype).split('.')[1]}: samples {t['output']:g}, losses {t['loss']:g}, "
                   f"gradients {t['grad']:g}" for dtype, t in TOL.items())

CASES = [(2, (16, 16), False), (3, (8, 8, 8), True), (3, (8, 8, 8), False)]


def _networks(nd, shape, periodic):
    torch.manual_seed(0)
    mode = "circular" if periodic else "zeros"
    kw = dict(channel_base=128, channel_max=32, padding_mode=mode)
    G = Generator(nd, shape, 2, z_dim=16, w_dim=16, mapping_layers=2, **kw)
    D = Discriminator(nd, shape, 2, mapping_layers=2, **kw)
    with torch.no_grad():  # non-zero noise strengths and biases: every term of every layer is exercised
        for net in (G, D):
            for name, p in net.named_parameters():
                if name.endswith(("noise.strength", "bias")):
                    p.normal_(0, 0.2)
    return G, D


def _step(G, D, z, reals, dtype, fused):
    """Fakes, D's loss and G's loss with their parameter gradients (a training step's main passes)."""
    autocast = torch.autocast("cpu", dtype=dtype, enabled=dtype == torch.bfloat16)
    G.zero_grad(set_to_none=True)
    D.zero_grad(set_to_none=True)
    with autocast:
        fakes = G(z, noise_mode="const", fused=fused)
        d_loss = losses.d_logistic(D(reals), D(fakes.detach()))
    d_loss.backward()
    d_grads = [p.grad.clone() for p in D.parameters()]
    D.requires_grad_(False)
    with autocast:
        g_loss = losses.g_nonsaturating(D(fakes))
    g_loss.backward()
    D.requires_grad_(True)
    return fakes, (d_loss, g_loss), d_grads, [p.grad.clone() for p in G.parameters()]


@contextlib.contextmanager
def _reference_ops():
    """Route the networks' op calls to the slow reference implementations."""
    def modulated_conv(*args, fused=None, **kwargs):
        return ops.modulated_conv_reference(*args, **kwargs)

    def modulated_conv_bias_act(x, w, s, b, noise=None, act="lrelu", alpha=None, gain=None, fused=None, **kwargs):
        y = ops.modulated_conv_reference(x, w, s, noise, demodulate=True, **kwargs)
        return ops.bias_act(y, b, act=act, alpha=alpha, gain=gain)

    def fast_path(*args, **kwargs):
        raise AssertionError("a fast path ran inside the reference")

    with mock.patch.object(ops, "modulated_conv", modulated_conv), \
            mock.patch.object(ops, "modulated_conv_bias_act", modulated_conv_bias_act), \
            mock.patch.object(ops, "conv_resample", ops.conv_resample_reference), \
            mock.patch("ndgan.ops.resample.upfirdn", ops.upfirdn_reference), \
            mock.patch("ndgan.ops.resample._upfirdn_zeros", fast_path), \
            mock.patch("ndgan.ops.conv._conv_resample_zeros", fast_path):
        yield


def _rel(got, ref):
    if isinstance(got, list):  # all of a network's gradients as one vector
        got, ref = torch.cat([g.flatten() for g in got]), torch.cat([r.flatten() for r in ref])
    return ((got.double() - ref).square().mean().sqrt() / ref.square().mean().sqrt()).item()


@pytest.mark.parametrize("nd, shape, periodic", CASES)
@pytest.mark.parametrize("dtype, fused", [(torch.float32, True), (torch.float32, False), (torch.float32, None),
                                          (torch.bfloat16, None)])
def test_training_passes_match_float64(nd, shape, periodic, dtype, fused):
    G, D = _networks(nd, shape, periodic)
    z, reals = torch.randn(4, 16), torch.randn(4, 2, *shape)
    with _reference_ops():
        ref = _step(copy.deepcopy(G).double(), copy.deepcopy(D).double(), z.double(), reals.double(),
                    torch.float64, True)
    fakes, step_losses, d_grads, g_grads = _step(G, D, z, reals, dtype, fused)
    tol = TOL[dtype]
    assert fakes.dtype == torch.float32  # the image accumulates in float32 under autocast too
    assert _rel(fakes, ref[0]) < tol["output"]
    for loss, ref_loss in zip(step_losses, ref[1]):
        assert loss.dtype == torch.float32  # losses in float32 even from bfloat16 logits
        assert abs(loss.item() - ref_loss.item()) < tol["loss"] * max(abs(ref_loss.item()), 1)
    assert _rel(d_grads, ref[2]) < tol["grad"]
    assert _rel(g_grads, ref[3]) < tol["grad"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_up_sampling_paths_agree_per_dtype(dtype, nd):
    """Both up-sampling paths in the dtypes training uses, against float64 (their exactness for any filter,
    factor and padding is in tests/ops/test_resample.py)."""
    x = torch.randn(2, 8, *[6] * nd)
    f = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8
    pads, ups = [(2, 1)] * nd, [2] * nd
    ref = _polyphase_up(x.double(), f.double(), ups, pads, False, 2**nd)
    for path in (_polyphase_up, _transposed_up):
        got = path(x.to(dtype), f, ups, pads, False, 2**nd)
        assert got.dtype == dtype
        assert _rel(got, ref) < TOL[dtype]["output"], path.__name__


def test_bfloat16_demodulation_stays_float32():
    """Under bfloat16 autocast the demodulation coefficients (a sum of I * k^nd squares, then rsqrt) are computed
    in float32: every rsqrt the op dispatches sees float32, while its convolution runs in bfloat16."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from ndgan import ops

    class Record(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seen = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.seen.append((func.overloadpacket.__name__, [a.dtype for a in args if isinstance(a, torch.Tensor)]))
            return func(*args, **(kwargs or {}))

    # styles as an autocast affine layer gives them: bfloat16
    x, w, s = torch.randn(2, 64, 8, 8, 8), torch.randn(32, 64, 3, 3, 3), torch.randn(2, 64).bfloat16()
    for fused in (True, False):
        with torch.autocast("cpu", dtype=torch.bfloat16), Record() as record:
            ops.modulated_conv(x, w, s, padding=1, fused=fused)
        rsqrt = [dtypes for name, dtypes in record.seen if name.startswith("rsqrt")]
        convs = [dtypes for name, dtypes in record.seen if "convolution" in name]
        assert rsqrt and all(d == [torch.float32] for d in rsqrt), rsqrt
        assert convs and all(torch.bfloat16 in d for d in convs), convs
