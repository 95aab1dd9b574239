"""Memorisation: how close generated samples come to the training data, next to how close unseen real samples
come to it. A generator that copies its training data puts samples nearer to a training sample than held-out
reals ever are; one that models the distribution does not.

For every generated and every held-out real sample, the distance to its nearest training sample, in two spaces
(pooled samples and the metrics' features); the held-out distances are the baseline, and a generated sample
counts as memorised when it is closer than the baseline's 1st percentile, a threshold that only 1% of unseen
reals cross. Comparing with held-out reals' distances to the training set is the idea of the data-copying test
of Meehan et al. 2020 (AISTATS), reduced here to a threshold and a fraction. The ``Evaluator`` streams the
samples through these functions.
"""

from __future__ import annotations

import torch

from ..io.files import atomic_write
from ..viz.grid import pair_grid, save_png

PERCENTILE = 1.0  # the baseline's percentile below which a generated sample counts as memorised
FLAG_FRACTION = 0.05  # memorization_flag: more than this fraction of generated samples memorised


def nearest(queries: torch.Tensor, refs: torch.Tensor, chunk: int = 1024):
    """Distance of every row of ``queries: [N, D]`` to its nearest row of ``refs: [M, D]``, as the RMS
    difference ``|q - r| / sqrt(D)`` (float64), and that row's index: ``([N], [N])``. Chunked over both sets,
    so memory stays at ``chunk x chunk`` distances whatever N and M are."""
    if queries.ndim != 2 or refs.ndim != 2 or queries.shape[1] != refs.shape[1] or not len(refs):
        raise ValueError(f"nearest: expected queries [N, D] and a non-empty reference set [M, D], got "
                         f"{tuple(queries.shape)} and {tuple(refs.shape)}")
    queries, refs = queries.double(), refs.to(queries.device).double()
    dists, indices = [], []
    for part in queries.split(chunk):
        best = torch.full((len(part),), float("inf"), dtype=torch.float64, device=part.device)
        index = torch.zeros(len(part), dtype=torch.long, device=part.device)
        for start in range(0, len(refs), chunk):
            d, i = torch.cdist(part, refs[start: start + chunk]).min(1)  # [n]
            closer = d < best
            best, index = torch.where(closer, d, best), torch.where(closer, i + start, index)
        dists.append(best)
        indices.append(index)
    return torch.cat(dists) / queries.shape[1] ** 0.5, torch.cat(indices)


def keep_closest(kept, samples: torch.Tensor, distances: torch.Tensor, indices: torch.Tensor, k: int):
    """The ``k`` samples nearest to the training data so far: ``kept`` (None at first, then what this returns:
    ``(samples [k, C, *S], distances [k], training indices [k])``, closest first) merged with a new batch."""
    if kept is not None:
        samples, distances, indices = (torch.cat([a, b]) for a, b in zip(kept, (samples, distances, indices)))
    order = distances.argsort()[:k]
    return samples[order], distances[order], indices[order]


def summary(generated: torch.Tensor, held_out: torch.Tensor) -> dict:
    """From nearest-training-sample distances of generated ``[N]`` and held-out real ``[M]`` samples: their
    medians, the held-out ``PERCENTILE`` (the threshold) and the fraction of generated samples below it."""
    generated, held_out = generated.double(), held_out.double()
    threshold = float(torch.quantile(held_out, PERCENTILE / 100))
    return {"median": float(torch.quantile(generated, 0.5)),
            "median_baseline": float(torch.quantile(held_out, 0.5)), "threshold": threshold,
            "fraction": float((generated < threshold).double().mean())}


def save_figure(path, generated: torch.Tensor, training: torch.Tensor, replace: bool = True) -> None:
    """Write the closest pairs to the PNG ``path``: one row per pair, the generated sample (``[K, C, *S]`` in
    [-1, 1]) left of its nearest training sample, each drawn as ``ndgan.viz.grid.sample_grid`` draws a sample
    (3D: its three mid-slices). Never half-written; ``replace=False`` refuses a file that exists."""
    picture = pair_grid(generated, training)
    atomic_write(path, lambda p: save_png(picture, p), replace=replace)
