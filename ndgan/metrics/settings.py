"""Metric names and settings, free of heavy imports so the training config can use them."""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field

METRICS = {
    "classes": "class coverage, class-histogram distance and confidence of a classifier (metrics.features: "
               "the digit classifier)",
    "fid": "Fréchet distance of features (Inception for 2D images; metrics.features for other data)",
    "kid": "kernel inception distance (x 1e3 is the usual report), same features as fid",
    "pr": "improved precision and recall (k = 3), same features as fid",
    "ppl": "perceptual path length in W, end sampling (LPIPS with metrics.lpips, else feature distance)",
    "fid_slices": "Fréchet distance of Inception features of 2D slices of volumes, per axis and mean",
    "mmd": "unbiased MMD^2 of raw samples (Gaussian kernels, median heuristic), pooled to <= mmd_size per axis",
    "msssim": "MS-SSIM of random generated pairs (diversity: lower is more diverse), next to real pairs",
    "hist": "per-channel intensity distribution distance (earth mover's, in data units and physical units)",
    "energy": "Henry coefficient, heat of adsorption and void fraction of energy grids (distribution distances)",
    "memorization": "nearest-training-sample distances of generated samples next to those of held-out reals "
                    "(pooled samples; fid's features where there are some): the share closer than 99% of unseen "
                    "reals, flagged above 0.05",
}


@dataclass(frozen=True)
class MetricSettings:
    num_gen: int = 10000  # generated samples per evaluation
    num_real: int | None = None  # real samples (None: as many as num_gen, at most the dataset)
    batch: int = 16  # samples per generator / feature batch (even: MS-SSIM pairs come from one batch)
    inception: str | None = None  # FID Inception weights file (None: $NDGAN_INCEPTION)
    lpips: tuple[str, ...] = ()  # LPIPS weights: torchvision's VGG-16 file and the LPIPS heads file
    features: str | None = None  # feature network weights for fid/kid/pr/ppl on non-image data (weights only)
    features_program: str | None = None  # or a torch.export / TorchScript program instead: loading it runs its code
    slices: int = 8  # slices per axis for fid_slices
    ppl_samples: int = 2000  # latent pairs for ppl
    mmd_samples: int = 1000  # samples per side kept for mmd
    mmd_size: int = 32  # mmd pools samples to at most this many points per axis
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    memorization_size: int = 8  # memorization pools samples to at most this many points per axis
    memorization_train: int | None = None  # training samples it compares with (None: all; else a seeded subset)
    memorization_pairs: int = 8  # closest pairs in its figure
    temperature: float = 298.0  # kelvin, for the energy metrics
    truncation_psi: float = 1.0
    seed: int = 0
    real_path: str | None = None  # held-out reals of the training data's source (None: the training data)
    real_options: dict = field(default_factory=dict)  # their source options over data.options, e.g. {seed: 1}


def check_names(names) -> tuple[str, ...]:
    """Validate metric names (a list or comma-separated string); an unknown one names the closest valid one.
    Messages leave out where the names came from: callers prefix it (``train.metrics: ...``)."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    for name in names:
        if name not in METRICS:
            close = difflib.get_close_matches(str(name), list(METRICS), n=1)
            raise ValueError(f"{name!r} is not a metric; expected some of {', '.join(METRICS)}"
                             + (f" (did you mean {close[0]!r}?)" if close else ""))
    if len(set(names)) != len(names):
        raise ValueError(f"{list(names)} names a metric twice")
    return tuple(names)


def check_settings(s: MetricSettings, where: str = "metrics") -> MetricSettings:
    """Range checks of the settings; the message names the key."""
    checks = [
        (s.num_gen >= 4, "num_gen: expected at least 4 samples"),
        (s.num_real is None or s.num_real >= 4, "num_real: expected at least 4 samples (or null: as num_gen)"),
        (s.batch >= 2 and s.batch % 2 == 0, "batch: expected an even number >= 2 (MS-SSIM pairs come from a batch)"),
        (s.slices >= 1, "slices: expected at least 1 slice per axis"),
        (s.ppl_samples >= 1 and s.mmd_samples >= 4 and s.mmd_size >= 1, "ppl_samples, mmd_samples, mmd_size: "
         "expected positive counts (mmd_samples >= 4: its baseline compares two halves)"),
        (s.memorization_size >= 1 and s.memorization_pairs >= 1 and (s.memorization_train is None
                                                                      or s.memorization_train >= 1),
         "memorization_size, memorization_pairs, memorization_train: expected positive counts (memorization_train "
         "may be null: all training samples)"),
        (s.kid_subsets >= 1 and s.kid_subset_size >= 2, "kid_subsets, kid_subset_size: expected >= 1 and >= 2"),
        (s.temperature > 0, "temperature: expected a positive temperature in kelvin"),
        (len(s.lpips) in (0, 1, 2), "lpips: expected [VGG16.pth, LIN.pth], one combined file, or nothing"),
        (s.features is None or s.features_program is None, "features and features_program: give one feature "
         "network, not both (features: weights; features_program: a program, whose code runs)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(f"{where}.{message}")
    return s


def json_safe(value):
    """NaN and infinities as null: standard JSON."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
