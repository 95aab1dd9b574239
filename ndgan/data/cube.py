"""Data source of Gaussian cube files: a folder (or glob) of periodic energy grids, one grid per file, read
once at open. Lengths follow Gaussian's convention (bohr for positive point counts, angstrom for negative
ones), and grid point ``(i, j, k)`` sits at ``(i, j, k) / n`` of the cell (no duplicated face): files from
programs that write the closing face too, or angstrom with positive counts, need converting first.

Values are taken in ``units`` (the format records none; kelvin by default), clipped to ``value_range`` and
mapped to [-1, 1], like the built-in energy grids; several values per point become channels. Every file must
have the same grid shape. The cells come from the headers (``cells``, one per file; the metadata's ``cell`` is
their median, which ``generate --format cube`` writes samples with); the grids are periodic unit cells unless
``periodic=False``.
"""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..io.budget import check_fits
from ..io.cube import read_cube
from .energy import ENERGY_RANGE_K


def find_cubes(path) -> list[Path]:
    p = Path(path)
    files = sorted(q for q in p.iterdir() if q.suffix.lower() == ".cube") if p.is_dir() else \
        sorted(Path(f) for f in glob.glob(str(path)))
    if not files:
        raise FileNotFoundError(f"{path}: no .cube files (a folder of them or a glob pattern)")
    return files


class CubeDataset(Dataset):
    """Samples ``[m, n1, n2, n3]`` float32 in [-1, 1] of the cube files at ``path``."""

    def __init__(self, path, value_range=ENERGY_RANGE_K, units="K", periodic=True, channel_names=None):
        if units != "K" and tuple(value_range or ()) == tuple(ENERGY_RANGE_K):
            raise ValueError(f"data.options.value_range: the default [-4000, 5000] is in kelvin, the data in {units}; "
                             f"give the clip range in {units}")
        if value_range is None or len(value_range) != 2 or not value_range[0] < value_range[1]:
            raise ValueError(f"value_range: expected [lo, hi] with lo < hi in {units}, got {value_range!r}")
        self.files = find_cubes(path)
        lo, hi = float(value_range[0]), float(value_range[1])
        first = read_cube(self.files[0])
        shape = first.values.shape
        check_fits(len(self.files) * int(np.prod(shape)) * 4, f"{path}: {len(self.files)} cube grids of {shape}",
                   "convert fewer files, or smaller grids", "cpu")
        self.data = torch.empty(len(self.files), *shape)
        cells = []
        for i, f in enumerate(self.files):
            cube = first if i == 0 else read_cube(f)
            if cube.values.shape != shape:
                raise ValueError(f"{f}: a grid of {cube.values.shape[1:]} x {cube.values.shape[0]} values, "
                                 f"{self.files[0].name} has {shape[1:]} x {shape[0]}; every file needs the same")
            self.data[i] = torch.from_numpy(2 * (np.clip(cube.values, lo, hi) - lo) / (hi - lo) - 1)
            cells.append(cube.cell)
        self.cells = np.stack(cells)
        names = list(channel_names) if channel_names else (["energy"] if shape[0] == 1 else
                                                           [f"value{i}" for i in range(shape[0])])
        if len(names) != shape[0]:
            raise ValueError(f"channel_names: {len(names)} names for {shape[0]} values per point")
        cell = np.median(self.cells, axis=0)
        self.metadata = {"source": str(path), "value_range": [lo, hi], "normalized": True, "units": units,
                         "channel_names": names, "periodic": bool(periodic), "cell": cell.tolist(),
                         "spacing": (np.linalg.norm(cell, axis=1) / np.array(shape[1:])).tolist()}

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        return self.data[index]
