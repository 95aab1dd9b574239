"""Real 2D data that ships with a package: the 1,797 handwritten digits of scikit-learn (UCI optdigits test
set: 8x8 scans of 43 writers, 17 grey levels), resized to ``size`` x ``size`` for training.

Resizing is bilinear interpolation with half-pixel centres (``torch.nn.functional.interpolate``,
``align_corners=False``), so a digit keeps its place and stroke width in the unit square; values 0..16 map
linearly to [-1, 1] (0 = background = -1). Nothing is downloaded: scikit-learn carries the file.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

LEVELS = 16.0  # the scans' grey levels are 0..16


def load_digits_array():
    """``(images [1797, 8, 8] float32 in 0..16, labels [1797] int64)`` from scikit-learn."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("data.source digits needs scikit-learn: pip install 'ndgan[digits]'") from None
    bunch = load_digits()
    return torch.as_tensor(bunch.images, dtype=torch.float32), torch.as_tensor(bunch.target, dtype=torch.int64)


def resize_digits(images: torch.Tensor, size: int) -> torch.Tensor:
    """``[N, 8, 8]`` in 0..16 -> ``[N, 1, size, size]`` in [-1, 1] (bilinear, half-pixel centres)."""
    x = images[:, None].float() / LEVELS * 2 - 1
    if size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.clamp(-1, 1)


class DigitsDataset(Dataset):
    """The scikit-learn digits as ``[1, size, size]`` float32 in [-1, 1]; with ``labels=True`` items are
    ``(x, one_hot [10])`` for a conditional model. ``shape``/``channels`` are checked against the data."""

    def __init__(self, size: int = 32, labels: bool = False, shape=None, channels: int = 1):
        if not isinstance(size, int) or isinstance(size, bool) or not 8 <= size <= 1024:
            raise ValueError(f"size: expected an int in [8, 1024] (pixels per side), got {size!r}")
        if shape is not None and tuple(shape) != (size, size):
            raise ValueError(f"data.shape: the digits source gives {size}x{size} images (data.options.size), got "
                             f"data.shape {list(shape)}; set data.shape: [{size}, {size}] or data.options.size")
        if channels != 1:
            raise ValueError(f"data.channels: the digits are grey scans with 1 channel, got data.channels {channels}")
        images, self.targets = load_digits_array()
        self.data = resize_digits(images, size)  # [1797, 1, size, size], 7 MB at 32^2
        self.labels = bool(labels)
        self.metadata = {"source": "digits", "channels": 1, "shape": (size, size), "channel_names": ["ink"],
                         "value_range": [0.0, LEVELS], "normalized": True, "units": "grey level (0-16)",
                         "num_classes": 10}

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        if self.labels:
            return self.data[index], F.one_hot(self.targets[index], 10).float()
        return self.data[index]
