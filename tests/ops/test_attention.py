import pytest
import torch
from torch.autograd import gradcheck

from ndgan import ops
from tests.conftest import ND, SHAPES


@pytest.mark.parametrize("nd", ND)
@pytest.mark.parametrize("heads", [1, 2])
def test_linear_attention_equals_explicit_matrix(nd, heads):
    q = torch.randn(2, 8 * heads, *SHAPES[nd], dtype=torch.float64)
    k = torch.randn_like(q)
    v = torch.randn(2, 3 * heads, *SHAPES[nd], dtype=torch.float64)
    y = ops.linear_attention(q, k, v, heads)
    assert y.shape == v.shape
    torch.testing.assert_close(y, ops.linear_attention_reference(q, k, v, heads))


def test_linear_attention_hand_computation():
    """One head, 1-D positions: softmax(q over d)/sqrt(d) . (softmax(k over p)^T v)."""
    q, k, v = torch.randn(1, 4, 6, dtype=torch.float64), torch.randn(1, 4, 6, dtype=torch.float64), torch.randn(1, 2, 6, dtype=torch.float64)
    qs = q[0].softmax(0) / 2.0  # [d, P]
    ks = k[0].softmax(1)  # [d, P]
    expected = (v[0] @ ks.T) @ qs  # [e, d] @ [d, P]
    torch.testing.assert_close(ops.linear_attention(q, k, v)[0], expected)


def _saved_bytes(fn, *inputs):
    """Bytes of the tensors autograd keeps for the backward pass: the training-time memory of an op."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*inputs).sum()
    return total


@pytest.mark.parametrize("nd", ND)
def test_linear_attention_memory_grows_linearly(nd):
    def inputs(side):
        size = [side] * nd
        q = torch.randn(1, 16, *size, requires_grad=True)
        return q, torch.randn(1, 16, *size, requires_grad=True), torch.randn(1, 16, *size, requires_grad=True)

    side = {1: 256, 2: 16, 3: 8}[nd]
    small, large = inputs(side), inputs(2 * side)  # 2**nd times more positions
    growth = 2**nd
    lin = _saved_bytes(lambda *t: ops.linear_attention(*t, heads=2), *large) / _saved_bytes(
        lambda *t: ops.linear_attention(*t, heads=2), *small)
    dense = _saved_bytes(lambda *t: ops.linear_attention_reference(*t, heads=2), *large) / _saved_bytes(
        lambda *t: ops.linear_attention_reference(*t, heads=2), *small)
    assert lin == pytest.approx(growth, rel=0.05)
    assert dense > 1.5 * growth  # the explicit matrix grows quadratically: the comparison can fail


def test_linear_attention_runs_where_quadratic_cannot():
    """64^3 positions: the P x P matrix would need 256 GiB in fp32; the linear path needs a few MB."""
    q = torch.randn(1, 8, 64, 64, 64)
    y = ops.linear_attention(q, torch.randn_like(q), torch.randn_like(q), heads=1)
    assert y.shape == q.shape and torch.isfinite(y).all()


def test_linear_attention_gradcheck():
    q = torch.randn(1, 4, 3, 2, dtype=torch.float64, requires_grad=True)
    k = torch.randn(1, 4, 3, 2, dtype=torch.float64, requires_grad=True)
    v = torch.randn(1, 2, 3, 2, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda *t: ops.linear_attention(*t, heads=2), (q, k, v), fast_mode=True)


def test_linear_attention_bad_input():
    q = torch.randn(1, 6, 4, 4)
    with pytest.raises(ValueError, match="q: 6 channels are not divisible by heads=4"):
        ops.linear_attention(q, q, q, heads=4)
    with pytest.raises(ValueError, match="k: expected the shape of q"):
        ops.linear_attention(q, q[..., :2], q)
    with pytest.raises(ValueError, match="v: expected"):
        ops.linear_attention(q, q, torch.randn(1, 6, 4, 5))
