"""The data's physical units, written once: every dataset maps its values into [-1, 1] through a value range
``[lo, hi]`` (one for all channels, or one per channel), and everything that turns samples back into kelvin,
intensities or 8-bit values, or physical targets into [-1, 1], goes through these functions.

``metadata`` is a dataset's (or a generator's ``G.metadata``): ``value_range``, optionally
``channel_value_ranges``, ``affine``, ``spacing``. Functions accept torch tensors or NumPy arrays and return
the same kind.
"""

from __future__ import annotations

import numpy as np
import torch


def channel_ranges(metadata: dict):
    """The ``[lo, hi]`` per channel (``channel_value_ranges``), or the one ``value_range`` as a list of one, or
    None when the data recorded no range."""
    if metadata.get("channel_value_ranges"):
        return [list(r) for r in metadata["channel_value_ranges"]]
    if metadata.get("value_range") is not None:
        return [list(metadata["value_range"])]
    return None


def _bounds(ranges, x, channel_axis: int):
    shape = [1] * x.ndim  # one range: the same for every element, whatever the layout
    if len(ranges) > 1:
        shape[channel_axis] = len(ranges)
    lo, hi = [r[0] for r in ranges], [r[1] for r in ranges]
    if isinstance(x, torch.Tensor):
        make = lambda v: torch.tensor(v, dtype=x.dtype, device=x.device).reshape(shape)  # noqa: E731
    else:
        make = lambda v: np.asarray(v, dtype=x.dtype).reshape(shape)  # noqa: E731
    return make(lo), make(hi)


def to_physical(x, metadata: dict, clamp: bool = True, channel_axis: int = 1):
    """[-1, 1] -> the data's units, per channel where the data recorded per-channel ranges; unchanged when it
    recorded none. ``clamp`` clips to [-1, 1] first: the data were mapped into that range (the energy grids
    clipped to [-4000, 5000] K, images to 0-255), and a generator's linear output can overshoot it.
    ``channel_axis``: 1 for batches ``[N, C, *S]``, 0 for one sample."""
    if clamp:
        x = x.clamp(-1, 1) if isinstance(x, torch.Tensor) else np.clip(x, -1, 1)
    ranges = channel_ranges(metadata)
    if ranges is None:
        return x
    lo, hi = _bounds(ranges, x, channel_axis)
    return lo + (x + 1) / 2 * (hi - lo)


def to_unit(x, metadata: dict, channel_axis: int = 0):
    """The data's units -> [-1, 1] (the inverse of ``to_physical``, without clipping); unchanged when the data
    recorded no range. ``channel_axis``: 0 for one sample ``[C, *S]``, 1 for batches."""
    ranges = channel_ranges(metadata)
    if ranges is None:
        return x
    lo, hi = _bounds(ranges, x, channel_axis)
    return 2 * (x - lo) / (hi - lo) - 1


def physical_scales(metadata: dict, channels: int):
    """Per channel, physical units per data unit (``(hi - lo) / 2``), when one global linear map made the data
    and it has units; None for data normalised per subject (NIfTI percentiles) or without units."""
    if not metadata.get("units") or "value_range" not in metadata or "percentiles" in metadata:
        return None
    ranges = channel_ranges(metadata)
    ranges = ranges if len(ranges) == channels else ranges[:1] * channels
    return [(hi - lo) / 2 for lo, hi in ranges]


def reference_affine(metadata: dict, nd: int):
    """(4x4 affine, note): the data's affine, else one from its spacing, else identity with a note saying so."""
    if metadata.get("affine") is not None:
        return np.array(metadata["affine"], dtype=np.float64), None
    if metadata.get("spacing") is not None and len(metadata["spacing"]) == nd:
        return np.diag(list(map(float, metadata["spacing"])) + [1.0] * (4 - nd)), None
    return np.eye(4), "the training data had no affine or spacing: NIfTI files use the identity (1 mm voxels)"
