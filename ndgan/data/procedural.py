"""Procedural datasets for tests and the tiny configs: soft blobs in any nd, made on the fly, no files.

Sample i is a function of (seed, i) alone: 1-3 Gaussian blobs with random centres, radii and per-channel
intensities on a background of -1, mapped into [-1, 1]. With ``periodic=True`` distances wrap around, so the
samples tile like the energy-grid unit cells. There is structure to learn (round shapes, colours that go
together) and nothing to download.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from ..ops import nd as ndops


class ProceduralDataset(Dataset):
    """``length`` deterministic samples ``[channels, *shape]`` float32 in [-1, 1]."""

    def __init__(self, spatial_dims, shape, channels=1, length=1024, seed=0, periodic=False):
        if not ndops._is_int(spatial_dims) or not 1 <= spatial_dims <= ndops.MAX_ND:
            raise ValueError(f"spatial_dims: expected 1, 2 or 3, got {spatial_dims!r}")
        self.spatial_dims = spatial_dims
        self.shape = ndops.parse_factors(shape, spatial_dims, "shape")
        for name, v in (("channels", channels), ("length", length)):
            if not ndops._is_int(v) or v < 1:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        self.channels, self.length, self.seed, self.periodic = channels, length, seed, periodic
        self.metadata = {"source": "procedural", "channels": channels, "shape": self.shape,
                         "channel_names": [f"c{i}" for i in range(channels)], "value_range": [-1.0, 1.0],
                         "normalized": True, "periodic": periodic}

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        nd = self.spatial_dims
        grids = torch.meshgrid(*[(torch.arange(s) + 0.5) / s for s in self.shape], indexing="ij")  # nd x [*S]
        total = torch.zeros(self.channels, *self.shape)
        for _ in range(int(torch.randint(1, 4, (), generator=gen))):
            centre = torch.rand(nd, generator=gen)
            radius = 0.08 + 0.17 * torch.rand((), generator=gen)
            colour = 0.4 + 0.6 * torch.rand(self.channels, generator=gen)
            d2 = torch.zeros(self.shape)
            for axis in range(nd):
                delta = grids[axis] - centre[axis]
                if self.periodic:
                    delta = delta - torch.round(delta)  # minimum image in a unit cell
                d2 = d2 + delta**2
            total = total + colour.reshape(-1, *[1] * nd) * torch.exp(-d2 / radius**2)
        return 2 * total.clamp(0, 1) - 1
