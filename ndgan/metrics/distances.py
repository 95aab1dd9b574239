"""Distances between two sets of samples or features.

Fréchet distance (Heusel et al. 2017) and KID (Bińkowski et al. 2018) are computed by torchmetrics, fed with
features we extract ourselves (an identity "feature extractor"), so the well-kept implementations do the math.
Written here because no library has them in this form: k-NN precision/recall (Kynkäänniemi et al. 2019), the
unbiased Gaussian-kernel MMD (Gretton et al. 2012) on raw samples, and 1D Wasserstein distances.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn


def _torchmetrics(name):
    """torchmetrics' FID or KID class (its package namespace hides them without torch-fidelity)."""
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance
    except ImportError:
        raise ImportError("FID and KID use torchmetrics: pip install 'ndgan[metrics]'") from None
    return {"fid": FrechetInceptionDistance, "kid": KernelInceptionDistance}[name]


class _Given(nn.Module):
    """The identity: lets torchmetrics' FID/KID take features that are already extracted."""

    def __init__(self, num_features):
        super().__init__()
        self.num_features = num_features

    def forward(self, features):
        return features


def _check(a, b, name):
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"{name}: expected two feature sets [N, F] with one F, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"{name}: needs at least 2 samples per set, got {len(a)} and {len(b)}")


def require_torchmetrics() -> None:
    """Raise the ImportError (naming the extra) now if torchmetrics is missing."""
    _torchmetrics("fid")


def frechet_tracker(num_features: int):
    """A streaming Fréchet distance over given features: torchmetrics' FID with ``update(features, real)`` and
    ``compute()``; ``reset()`` drops the fake statistics and keeps the real ones."""
    return _torchmetrics("fid")(feature=_Given(num_features), reset_real_features=False, sync_on_compute=False)


def frechet_distance(a: torch.Tensor, b: torch.Tensor, chunk: int = 4096) -> float:
    """Fréchet distance between Gaussians fitted to features ``a: [N, F]`` and ``b: [M, F]`` (float64)."""
    _check(a, b, "frechet_distance")
    fid = frechet_tracker(a.shape[1]).to(a.device)
    for features, real in ((a, True), (b, False)):
        for part in features.split(chunk):
            fid.update(part.double(), real=real)
    return float(fid.compute())


def kid(a: torch.Tensor, b: torch.Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0):
    """Kernel inception distance (cubic polynomial kernel MMD^2 over random subsets): ``(mean, std)``.

    ``subset_size`` is capped at the smaller set; the subsets are drawn from a generator seeded with ``seed``
    (torchmetrics draws from the global RNG, so it is forked here and callers' random streams are untouched).
    """
    _check(a, b, "kid")
    size = min(subset_size, len(a), len(b))
    with warnings.catch_warnings():  # its note that it keeps every feature: so do we, by design
        warnings.filterwarnings("ignore", message=".*will save all extracted features")
        metric = _torchmetrics("kid")(feature=_Given(a.shape[1]), subsets=subsets, subset_size=size,
                                      sync_on_compute=False)
    metric.update(a.double(), real=True)
    metric.update(b.double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def _knn_radii(x: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """Distance of every row of ``x`` to its k-th nearest other row."""
    radii = []
    for part in x.split(chunk):
        d = torch.cdist(part, x)  # [n, N]; includes the zero distance to itself
        radii.append(d.kthvalue(k + 1, dim=1).values)
    return torch.cat(radii)


def _coverage(x: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor, chunk: int) -> float:
    """Fraction of rows of ``x`` inside at least one ball (``manifold`` centres, ``radii``)."""
    inside = 0
    for part in x.split(chunk):
        inside += int((torch.cdist(part, manifold) <= radii[None]).any(dim=1).sum())
    return inside / len(x)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3, chunk: int = 1024):
    """Improved precision and recall (k-NN manifolds of the features): ``(precision, recall)``.

    Precision: the fraction of fakes within the k-NN ball of some real; recall: the reverse.
    """
    _check(real, fake, "precision_recall")
    if k >= min(len(real), len(fake)):
        raise ValueError(f"precision_recall: k={k} needs more than k samples per set, got {len(real)} and "
                         f"{len(fake)}")
    real, fake = real.double(), fake.double()
    precision = _coverage(fake, real, _knn_radii(real, k, chunk), chunk)
    recall = _coverage(real, fake, _knn_radii(fake, k, chunk), chunk)
    return precision, recall


def median_distance(x: torch.Tensor) -> float:
    """Median of the pairwise distances between the rows of ``x`` (flattened), as numpy's median (the mean of
    the two middle values for an even count): the median-heuristic kernel bandwidth."""
    x = x.reshape(len(x), -1).double()
    if len(x) < 2:
        raise ValueError("median_distance: needs at least 2 samples")
    rows, cols = torch.triu_indices(len(x), len(x), 1, device=x.device)
    pairs = torch.cdist(x, x)[rows, cols]
    k = len(pairs)
    median = (pairs.kthvalue((k + 1) // 2).values + pairs.kthvalue(k // 2 + 1).values) / 2
    return float(median.clamp_min(1e-12))


def mmd(x: torch.Tensor, y: torch.Tensor, scales=(0.5, 1.0, 2.0), bandwidth: float | None = None) -> float:
    """Unbiased MMD^2 between samples ``x: [N, ...]`` and ``y: [M, ...]`` (flattened) with a sum of Gaussian
    kernels ``exp(-|a - b|^2 / (2 (s h)^2))`` over ``scales`` s; h defaults to the median pairwise distance of
    the pooled samples (the median heuristic). Pass one ``bandwidth`` to compare values computed on different
    sets."""
    x, y = x.reshape(len(x), -1).double(), y.reshape(len(y), -1).double()
    if x.shape[1] != y.shape[1] or len(x) < 2 or len(y) < 2:
        raise ValueError(f"mmd: expected two sets of >= 2 samples of one size, got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    both = torch.cat([x, y])
    d2 = torch.cdist(both, both).square()
    if bandwidth is None:
        bandwidth = median_distance(both)
    kernel = sum(torch.exp(-d2 / (2 * (s * bandwidth) ** 2)) for s in scales)
    n, m = len(x), len(y)
    kxx, kyy, kxy = kernel[:n, :n], kernel[n:, n:], kernel[:n, n:]
    within_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    within_y = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(within_x + within_y - 2 * kxy.mean())


def wasserstein_1d(a: torch.Tensor, b: torch.Tensor) -> float:
    """Earth mover's distance between the empirical distributions of two 1D samples (any sizes)."""
    a, b = a.flatten().double().sort().values, b.flatten().double().sort().values
    if len(a) == 0 or len(b) == 0:
        raise ValueError("wasserstein_1d: both samples must be non-empty")
    # Integrate |F_a - F_b| over the merged support.
    points = torch.cat([a, b]).sort().values
    cdf_a = torch.searchsorted(a, points[:-1], right=True).double() / len(a)
    cdf_b = torch.searchsorted(b, points[:-1], right=True).double() / len(b)
    return float(((cdf_a - cdf_b).abs() * points.diff()).sum())


def histogram_w1(hist_a: torch.Tensor, hist_b: torch.Tensor, bin_width: float) -> float:
    """Earth mover's distance between two histograms on the same bins (counts, any totals)."""
    cdf_a = hist_a.double().cumsum(0) / hist_a.sum()
    cdf_b = hist_b.double().cumsum(0) / hist_b.sum()
    return float((cdf_a - cdf_b).abs().sum() * bin_width)
