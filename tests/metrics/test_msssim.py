"""N-d MS-SSIM against a dense NumPy brute force (full window, no separability), identities and settings."""

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from ndgan.metrics.msssim import WANG_WEIGHTS, ms_ssim, pairwise_ms_ssim, settings


def _reference(x, y, window, scales, data_range=2.0):
    """MS-SSIM of one channel pair of numpy arrays (any nd), by explicit windows."""
    nd = x.ndim
    r = np.arange(window) - (window - 1) / 2
    sigma = 1.5 * window / 11
    g = np.exp(-(r**2) / (2 * sigma**2))
    g /= g.sum()
    kernel = g
    for _ in range(nd - 1):
        kernel = np.multiply.outer(kernel, g)  # dense [window]*nd kernel
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def local(a):
        win = sliding_window_view(a, (window,) * nd)
        return np.tensordot(win, kernel, axes=nd)

    def pool(a):
        crop = tuple(slice(0, s // 2 * 2) for s in a.shape)
        a = a[crop]
        for axis in range(nd):
            a = (np.take(a, range(0, a.shape[axis], 2), axis) + np.take(a, range(1, a.shape[axis], 2), axis)) / 2
        return a

    w = np.array(WANG_WEIGHTS[:scales])
    w /= w.sum()
    value = 1.0
    for j in range(scales):
        if j:
            x, y = pool(x), pool(y)
        mx, my = local(x), local(y)
        vx, vy, cov = local(x * x) - mx**2, local(y * y) - my**2, local(x * y) - mx * my
        cs = (2 * cov + c2) / (vx + vy + c2)
        term = cs.mean() if j < scales - 1 else ((2 * mx * my + c1) / (mx**2 + my**2 + c1) * cs).mean()
        value *= max(term, 0.0) ** w[j]
    return value


@pytest.mark.parametrize("shape", [(40,), (24, 20), (12, 10, 14)])
def test_ms_ssim_equals_dense_brute_force(shape):
    g = torch.Generator().manual_seed(len(shape))
    x = torch.rand(2, 2, *shape, generator=g, dtype=torch.float64) * 2 - 1
    y = (x + 0.4 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(-1, 1)
    window, scales, _ = settings(shape)
    got = ms_ssim(x, y)
    for n in range(2):
        expected = np.mean([_reference(x[n, c].numpy(), y[n, c].numpy(), window, scales) for c in range(2)])
        assert float(got[n]) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("shape", [(64,), (32, 32), (32, 32, 32), (80, 96, 112)])
def test_ms_ssim_of_a_sample_with_itself_is_one(shape):
    x = torch.rand(2, 1, *shape) * 2 - 1
    assert torch.allclose(ms_ssim(x, x), torch.ones(2, dtype=torch.float64), atol=1e-12)


def test_ms_ssim_is_symmetric_and_falls_with_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 2, 32, 32, 32, generator=g) * 2 - 1
    noisy = [(x + s * torch.randn(x.shape, generator=g)).clamp(-1, 1) for s in (0.05, 0.2, 0.8)]
    values = [float(ms_ssim(x, y).mean()) for y in noisy]
    assert values[0] > values[1] > values[2] > 0
    assert torch.allclose(ms_ssim(x, noisy[1]), ms_ssim(noisy[1], x))


def test_settings_fit_the_window_at_the_coarsest_scale():
    assert settings((256, 256))[:2] == (11, 5)  # Wang's settings where they fit
    for shape in [(256, 256), (128, 128), (32, 32, 32), (16, 16, 16), (8,), (80, 96, 112)]:
        window, scales, sigma = settings(shape)
        assert min(shape) // 2 ** (scales - 1) >= window and window % 2 == 1 and sigma == 1.5 * window / 11
    assert settings((32, 32, 32))[1] == 3  # small volumes keep three scales by shrinking the window
    with pytest.raises(ValueError, match="cannot hold"):
        settings((4, 4), window=11)


def test_pairwise_uses_consecutive_pairs():
    x = torch.rand(5, 1, 32) * 2 - 1
    x[1] = x[0]
    values = pairwise_ms_ssim(x)
    assert values.shape == (2,) and values[0] == pytest.approx(1.0) and values[1] < 0.9
    with pytest.raises(ValueError, match="one shape"):
        ms_ssim(x[:2], x[:2, :, :16])
