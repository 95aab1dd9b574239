"""Distances between sample and feature sets against float64 NumPy/SciPy references and closed forms."""

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch

from ndgan.metrics import distances


def _features(n, f, seed, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(f, f, generator=g, dtype=torch.float64) / f**0.5
    return torch.randn(n, f, generator=g, dtype=torch.float64) @ mix + shift


def _frechet_scipy(a, b):
    a, b = a.numpy(), b.numpy()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def test_frechet_equals_scipy_reference():
    a, b = _features(300, 16, 0), _features(200, 16, 1, shift=0.3) * 1.5
    assert distances.frechet_distance(a, b) == pytest.approx(_frechet_scipy(a, b), rel=1e-6)


def test_frechet_identical_sets_is_zero():
    a = _features(256, 32, 2)
    assert abs(distances.frechet_distance(a, a.clone())) < 1e-6


def test_frechet_mean_shift_is_squared_norm():
    a = _features(256, 8, 3)
    delta = torch.linspace(-1, 2, 8, dtype=torch.float64)
    assert distances.frechet_distance(a, a + delta) == pytest.approx(float(delta.square().sum()), rel=1e-6)


def test_frechet_scaled_covariance_closed_form():
    # b = s * a: |mu (1 - s)|^2 + (1 - s)^2 tr(Sigma)
    a, s = _features(400, 8, 4, shift=0.5), 1.7
    mu, cov = a.mean(0), torch.cov(a.T)
    expected = float((mu * (1 - s)).square().sum() + (1 - s) ** 2 * cov.trace())
    assert distances.frechet_distance(a, s * a) == pytest.approx(expected, rel=1e-6)


def _poly_mmd_reference(x, y):
    d = x.shape[1]
    k = lambda u, v: (u @ v.T / d + 1) ** 3  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    n, m = len(x), len(y)
    return float((kxx.sum() - kxx.trace()) / (n * (n - 1)) + (kyy.sum() - kyy.trace()) / (m * (m - 1))
                 - 2 * kxy.mean())


def test_kid_full_subset_equals_polynomial_mmd_reference():
    x, y = _features(40, 6, 5), _features(40, 6, 6, shift=0.4)
    mean, std = distances.kid(x, y, subsets=3, subset_size=40)
    assert mean == pytest.approx(_poly_mmd_reference(x, y), rel=1e-9)  # a full subset is any permutation
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_leaves_the_global_rng_alone_and_is_seeded():
    x, same = _features(800, 4, 7).split(400)
    y = same + 1.0
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = distances.kid(x, y, subsets=20, subset_size=100, seed=1)
    assert torch.equal(torch.rand(3), expected_next)
    assert distances.kid(x, y, subsets=20, subset_size=100, seed=1) == first
    assert first[0] > 20 * abs(distances.kid(x, same, subsets=20, subset_size=100)[0])  # vs one distribution


def _pr_reference(real, fake, k):
    def radii(s):
        d = np.linalg.norm(s[:, None] - s[None], axis=-1)
        return np.sort(d, axis=1)[:, k]  # index 0 is the point itself

    def coverage(x, centres, r):
        return float(np.mean([any(np.linalg.norm(p - c) <= rc for c, rc in zip(centres, r)) for p in x]))

    real, fake = real.numpy(), fake.numpy()
    return coverage(fake, real, radii(real)), coverage(real, fake, radii(fake))


def test_precision_recall_equals_brute_force():
    real, fake = _features(50, 3, 9), _features(40, 3, 10, shift=0.8) * 0.5
    got = distances.precision_recall(real, fake, k=3, chunk=7)
    assert got == pytest.approx(_pr_reference(real, fake, 3))
    assert 0 < got[0] < 1 and 0 < got[1] < 1


def test_precision_recall_extremes():
    a = _features(30, 4, 11)
    assert distances.precision_recall(a, a.clone()) == (1.0, 1.0)
    assert distances.precision_recall(a, a + 100) == (0.0, 0.0)


def _mmd_reference(x, y, h, scales=(0.5, 1.0, 2.0)):
    x, y = x.reshape(len(x), -1).numpy(), y.reshape(len(y), -1).numpy()
    k = lambda u, v: sum(np.exp(-np.sum((u - v) ** 2) / (2 * (s * h) ** 2)) for s in scales)  # noqa: E731
    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_mmd_equals_double_loop_reference_and_median_heuristic():
    x = torch.randn(12, 2, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(12))
    y = torch.randn(9, 2, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(13)) + 0.5
    both = torch.cat([x, y]).reshape(21, -1).numpy()
    d = np.linalg.norm(both[:, None] - both[None], axis=-1)
    h = float(np.median(d[~np.eye(21, dtype=bool)]))
    assert distances.mmd(x, y) == pytest.approx(_mmd_reference(x, y, h), rel=1e-7)
    assert distances.mmd(x, y, bandwidth=1.3) == pytest.approx(_mmd_reference(x, y, 1.3), rel=1e-7)


def test_mmd_separates_shifted_samples_from_same_distribution():
    g = torch.Generator().manual_seed(14)
    x, y, z = (torch.randn(200, 16, generator=g) for _ in range(3))
    same, shifted = distances.mmd(x, y), distances.mmd(x, z + 0.5)
    assert abs(same) < 0.02 and shifted > 10 * abs(same)


@pytest.mark.parametrize("sizes", [(50, 50), (37, 80)])
def test_wasserstein_1d_equals_scipy(sizes):
    g = torch.Generator().manual_seed(15)
    a, b = torch.randn(sizes[0], generator=g), torch.rand(sizes[1], generator=g) * 3
    assert distances.wasserstein_1d(a, b) == pytest.approx(scipy.stats.wasserstein_distance(a.numpy(), b.numpy()),
                                                           rel=1e-9)
    assert distances.wasserstein_1d(a, a + 0.25) == pytest.approx(0.25, rel=1e-6)


def test_histogram_w1_of_a_shift_by_k_bins():
    h = torch.zeros(100)
    h[10:20] = torch.arange(1.0, 11.0)
    assert distances.histogram_w1(h, torch.roll(h, 7), bin_width=0.02) == pytest.approx(7 * 0.02)
    assert distances.histogram_w1(h, 3 * h, bin_width=0.02) == pytest.approx(0.0)  # totals do not matter


def test_bad_inputs_are_errors():
    with pytest.raises(ValueError, match="one F"):
        distances.frechet_distance(torch.zeros(4, 3), torch.zeros(4, 5))
    with pytest.raises(ValueError, match="at least 2"):
        distances.kid(torch.zeros(1, 3), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="k=3"):
        distances.precision_recall(torch.zeros(3, 2), torch.zeros(10, 2))
