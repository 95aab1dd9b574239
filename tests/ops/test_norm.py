import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from ndgan import ops
from tests.conftest import ND, SHAPES


def test_normalize_2nd_moment():
    z = torch.randn(6, 32, dtype=torch.float64) * 7
    y = ops.normalize_2nd_moment(z)
    torch.testing.assert_close(y.square().mean(dim=1), torch.ones(6, dtype=torch.float64))
    torch.testing.assert_close(y * z.norm(dim=1, keepdim=True) / 32**0.5, z)


def brute_mbstd(x, group_size, num_channels):
    """Loop version: sample i is grouped with every j such that j % (N // G) == i % (N // G)."""
    n, c = x.shape[:2]
    g = min(group_size, n)
    m = n // g
    extra = torch.empty(n, num_channels, dtype=x.dtype)
    for i in range(n):
        members = x[[j for j in range(n) if j % m == i % m]]  # [G, C, *S]
        std = (members.var(dim=0, unbiased=False) + 1e-8).sqrt()  # [C, *S]
        for f, chunk in enumerate(std.chunk(num_channels, dim=0)):
            extra[i, f] = chunk.mean()
    return torch.cat([x, extra.reshape(n, num_channels, *[1] * (x.ndim - 2)).expand(-1, -1, *x.shape[2:])], 1)


@pytest.mark.parametrize("nd", ND)
@pytest.mark.parametrize("n, group_size, num_channels", [(8, 4, 1), (8, 2, 2), (3, 4, 1), (6, 3, 4)])
def test_minibatch_std_matches_loop(nd, n, group_size, num_channels):
    x = torch.randn(n, 4, *SHAPES[nd], dtype=torch.float64)
    y = ops.minibatch_std(x, group_size, num_channels)
    assert y.shape == (n, 4 + num_channels, *SHAPES[nd])
    torch.testing.assert_close(y, brute_mbstd(x, group_size, num_channels))


def test_minibatch_std_gradcheck():
    x = torch.randn(4, 2, 3, 2, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda t: ops.minibatch_std(t, 2), (x,), fast_mode=True)
    assert gradgradcheck(lambda t: ops.minibatch_std(t, 2), (x,), fast_mode=True)


def test_minibatch_std_bad_input():
    """StyleGAN2-ADA fails on a batch that the group size does not divide; we say so in one line."""
    with pytest.raises(ValueError, match="batch size 6 is not divisible by the group size 4"):
        ops.minibatch_std(torch.randn(6, 4, 5, 5), 4)
    with pytest.raises(ValueError, match="num_channels: expected a positive divisor of the 4 channels"):
        ops.minibatch_std(torch.randn(4, 4, 5, 5), 4, num_channels=3)


def test_channel_norm():
    x = torch.randn(2, 8, 5, 3, dtype=torch.float64) * 3 + 2
    y = ops.channel_norm(x, eps=0)
    torch.testing.assert_close(y.mean(dim=1), torch.zeros(2, 5, 3, dtype=torch.float64))
    torch.testing.assert_close(y.var(dim=1, unbiased=False), torch.ones(2, 5, 3, dtype=torch.float64))
