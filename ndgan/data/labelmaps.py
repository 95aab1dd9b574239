"""Label maps (segmentations, masks) as channels next to the image, and back to integer labels.

Label 0 is the background. ``values`` are the other labels, sorted. Two encodings:

- ``onehot``: one channel per label in ``values``, -1 where the voxel is not that label and +1 where it is;
  the background is the voxel where every label channel is -1. Decoded by argmax over the label channels,
  and background where the largest is below 0 (for one label: a threshold at 0).
- ``scaled``: one channel, label ``k``-th of ``[0, *values]`` at ``2 k / len(values) - 1``; decoded by
  rounding to the nearest level. It puts the labels in an order, so it suits a mask or ordered labels.

Either way the values are never interpolated: the NIfTI source resamples label maps with nearest neighbour
before they are encoded.
"""

from __future__ import annotations

import numpy as np

ENCODINGS = ("onehot", "scaled")


def num_channels(values, encoding: str) -> int:
    """The channels that ``values`` (foreground labels) take in ``encoding``."""
    return len(values) if encoding == "onehot" else 1


def encode(labels: np.ndarray, values, encoding: str) -> np.ndarray:
    """Integer ``labels`` ``[*S]`` (0 or one of ``values``) -> float32 ``[K, *S]`` in [-1, 1]."""
    values = [int(v) for v in values]
    if encoding == "onehot":
        return np.stack([np.where(labels == v, 1.0, -1.0) for v in values]).astype(np.float32)
    levels = np.zeros(labels.shape, np.float32)
    for k, v in enumerate(values, start=1):
        levels[labels == v] = k
    return (2 * levels / len(values) - 1)[None].astype(np.float32)


def decode(x, values, encoding: str) -> np.ndarray:
    """One sample's label channels ``[K, *S]`` in [-1, 1] -> integer labels ``[*S]``: the inverse of
    ``encode`` on its outputs, and the nearest label for a generator's values in between."""
    x = np.asarray(x, dtype=np.float32)
    values = np.asarray([0, *[int(v) for v in values]], dtype=np.int64)
    if x.shape[0] != num_channels(values[1:], encoding):
        raise ValueError(f"expected {num_channels(values[1:], encoding)} {encoding} label channels for labels "
                         f"{values[1:].tolist()}, got {x.shape[0]}")
    if encoding == "onehot":
        label = values[1:][x.argmax(axis=0)]
        return np.where(x.max(axis=0) > 0, label, 0).astype(_dtype(values))
    level = np.rint((x[0] + 1) / 2 * (len(values) - 1))
    return values[np.clip(level, 0, len(values) - 1).astype(np.int64)].astype(_dtype(values))


def _dtype(values):
    return np.uint8 if values.max() < 256 else np.int16 if values.max() < 2**15 else np.int32


def check_values(values, where: str = "data.options.label_values"):
    """Foreground labels as sorted distinct positive ints; a one-line ValueError naming ``where`` otherwise."""
    if not isinstance(values, (list, tuple)) or not values or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        raise ValueError(f"{where}: expected a list of positive integer labels (0 is the background), e.g. "
                         f"[1, 2, 4], got {values!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"{where}: {list(values)} names a label twice")
    return sorted(int(v) for v in values)
