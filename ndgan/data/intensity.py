"""Intensities into [-1, 1], written once for the volume sources (NIfTI, TIFF stacks).

Two ways, as the medical tools have them:

- a **window** ``[a_min, a_max]`` (CT in Hounsfield units, or raw grey values of a calibrated scanner): values
  are clipped to it and mapped linearly to [-1, 1], as MONAI's ``ScaleIntensityRange(a_min, a_max, -1, 1,
  clip=True)``. One map for every subject, so the map back (``ndgan.data.units.to_physical``) gives HU again.
- **percentiles** ``(lo, hi)`` of each subject (the MR default, where intensities have no absolute scale):
  each subject's own range is clipped and mapped, and the map back gives a typical subject's intensities.
"""

from __future__ import annotations

import numpy as np


def check_window(window, channels: int, where: str = "data.options.window"):
    """``window`` (one ``[a_min, a_max]`` for every channel, or one pair per channel) -> a list of
    ``channels`` ``(a_min, a_max)`` float pairs; None stays None. Bad windows raise a one-line ValueError
    naming ``where``."""
    if window is None:
        return None
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)  # noqa: E731
    if isinstance(window, (list, tuple)) and len(window) == 2 and all(map(number, window)):
        pairs = [tuple(window)] * channels
    elif isinstance(window, (list, tuple)) and all(isinstance(w, (list, tuple)) and len(w) == 2
                                                   and all(map(number, w)) for w in window):
        pairs = [tuple(w) for w in window]
        if len(pairs) != channels:
            raise ValueError(f"{where}: {len(pairs)} windows for {channels} image channels; give one "
                             f"[a_min, a_max] for all channels or one per channel")
    else:
        raise ValueError(f"{where}: expected [a_min, a_max] (e.g. [-1000, 400] HU) or one such pair per "
                         f"channel, got {window!r}")
    for lo, hi in pairs:
        if not lo < hi:
            raise ValueError(f"{where}: a_min {lo:g} is not below a_max {hi:g}; give the window as "
                             f"[a_min, a_max] with a_min < a_max, e.g. [-1000, 400]")
    return [(float(lo), float(hi)) for lo, hi in pairs]


def check_percentiles(percentiles, where: str = "data.options.percentiles"):
    """``(lo, hi)`` with ``0 <= lo < hi <= 100`` as floats, or a one-line ValueError naming ``where``."""
    try:
        lo, hi = (float(p) for p in percentiles)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected [lo, hi] percentiles, e.g. [0.5, 99.5], got {percentiles!r}") from None
    if not 0 <= lo < hi <= 100:
        raise ValueError(f"{where}: expected 0 <= lo < hi <= 100, got {percentiles!r}")
    return lo, hi


def to_unit_range(data: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Clip ``data`` to ``[lo, hi]`` and map that range linearly to [-1, 1] (float32)."""
    return (2 * (np.clip(data, lo, hi) - lo) / (hi - lo) - 1).astype(np.float32)


def percentile_range(data: np.ndarray, percentiles, file) -> tuple[float, float]:
    """The ``percentiles`` of ``data`` as ``(lo, hi)``; a constant volume is an error naming ``file``."""
    lo, hi = (float(v) for v in np.percentile(data, percentiles))
    if hi <= lo:
        raise ValueError(f"{file}: constant volume (percentiles {tuple(percentiles)} give {lo:g} and {hi:g}); "
                         f"leave the file out or give data.options.window")
    return lo, hi
