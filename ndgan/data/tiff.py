"""3D stacks from TIFF files (micro-CT of rocks and porous media), read with tifffile.

``path`` is one multi-page file (one stack), a folder of single-page slices (one stack, slices in natural
order: ``slice_2`` before ``slice_10``), or a glob of multi-page files (one stack each). Samples are crops of
``shape`` voxels on a grid with ``stride`` (default: ``shape``, no overlap), read page by page so a stack
larger than memory can be used.

Voxel size comes from the metadata (ImageJ: the X/Y resolution tags in pixels per ``unit`` and the
``spacing`` between slices; OME: ``PhysicalSizeX/Y/Z`` and their units) or from ``voxel_size: [x, y, z]`` in
mm, which then takes precedence. A stack with neither is an error: the affine needs it.

Axes: a stack's array is ``[z, y, x]`` (slices, rows, columns); the affine maps a crop's voxel index to world
``(x, y, z)`` in mm, with the stack's first voxel at the origin. Intensities map to [-1, 1] through a fixed
``window`` (calibrated grey values; the same for every stack) or each stack's ``percentiles``, estimated from
at most 64 evenly spaced slices, pixel-strided to at most 2**24 values (exact for smaller stacks).
"""

from __future__ import annotations

import glob
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from .intensity import check_percentiles, check_window, percentile_range, to_unit_range
import torch
from torch.utils.data import Dataset

TIFF_SUFFIXES = (".tif", ".tiff")

#: Length units of ImageJ and OME metadata, in mm.
UNIT_MM = {"m": 1e3, "cm": 10.0, "mm": 1.0, "um": 1e-3, "µm": 1e-3, "μm": 1e-3, "micron": 1e-3,
           "microns": 1e-3, "\\u00b5m": 1e-3, "nm": 1e-6, "å": 1e-7, "angstrom": 1e-7, "inch": 25.4, "in": 25.4}

_PERCENTILE_SLICES, _PERCENTILE_VALUES = 64, 2 ** 24


def _tifffile():
    try:
        import tifffile
    except ImportError:
        raise ImportError("reading TIFF stacks needs tifffile: pip install 'ndgan[tiff]'") from None
    return tifffile


def natural_key(name: str):
    """Sort key putting ``slice_2`` before ``slice_10``."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", str(name)) if t]


def _to_mm(value, unit, file, what) -> float:
    factor = UNIT_MM.get(str(unit).strip().lower())
    if factor is None:
        raise ValueError(f"{file}: {what} is in unit {unit!r}, which ndgan does not know; give "
                         f"data.options.voxel_size: [x, y, z] in mm")
    return float(value) * factor


def read_voxel_size(tif, file):
    """``(x, y, z)`` in mm from an open ``tifffile.TiffFile``'s ImageJ or OME metadata, or None (with the
    reason) when it lacks any of the three."""
    if tif.is_ome:
        root = ET.fromstring(tif.ome_metadata)
        pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
        if pixels is not None:
            sizes = [pixels.get(f"PhysicalSize{a}") for a in "XYZ"]
            if all(s is not None for s in sizes):
                return tuple(_to_mm(s, pixels.get(f"PhysicalSize{a}Unit", "µm"), file, f"PhysicalSize{a}")
                             for a, s in zip("XYZ", sizes)), None
            return None, f"its OME metadata lacks PhysicalSize{'/'.join(a for a, s in zip('XYZ', sizes) if s is None)}"
    meta = tif.imagej_metadata
    if meta is not None:
        unit = meta.get("unit")
        tags = tif.pages[0].tags
        if unit in (None, "pixel", "pixels"):
            return None, "its ImageJ metadata has no length unit"
        res = [tags.get(t) for t in ("XResolution", "YResolution")]
        if any(r is None for r in res) or "spacing" not in meta:
            return None, "its ImageJ metadata has a pixel size but no slice spacing"
        (xn, xd), (yn, yd) = (r.value for r in res)
        return (_to_mm(xd / xn, unit, file, "the X resolution"), _to_mm(yd / yn, unit, file, "the Y resolution"),
                _to_mm(meta["spacing"], unit, file, "the slice spacing")), None
    return None, "it has no ImageJ or OME metadata"


class Stack:
    """One stack: its files (one multi-page file, or one file per slice), shape ``(z, y, x)``, dtype and
    voxel size ``(x, y, z)`` in mm (None when its metadata has none; ``why`` says what is missing)."""

    def __init__(self, files, shape, dtype, voxel_size, why, name):
        self.files, self.shape, self.dtype, self.voxel_size, self.why, self.name = \
            files, shape, dtype, voxel_size, why, name

    def read(self, z0, z1, rows, cols) -> np.ndarray:
        """Slices ``z0:z1`` cropped to the ``rows`` and ``cols`` slices, as an ``[z, y, x]`` array."""
        tifffile = _tifffile()
        if len(self.files) == 1:
            with tifffile.TiffFile(self.files[0]) as tif:
                pages = [tif.pages[z].asarray()[rows, cols] for z in range(z0, z1)]
        else:
            pages = [tifffile.imread(f)[rows, cols] for f in self.files[z0:z1]]
        return np.stack(pages)


def _open(file, slice_of=None) -> tuple:
    """``(shape, dtype, voxel_size, why)`` of one file: a one-channel stack (axes ZYX), or with ``slice_of``
    (the folder) a single-page slice (axes YX)."""
    tifffile = _tifffile()
    try:
        tif = tifffile.TiffFile(file)
    except Exception as e:  # noqa: BLE001 - tifffile raises many types for a bad file
        raise ValueError(f"{file}: not a readable TIFF file ({type(e).__name__}: {e})") from None
    with tif:
        series = tif.series[0]
        axes, shape = series.axes, tuple(series.shape)
        kept = [(a, n) for a, n in zip(axes, shape) if n > 1 or a in "YX"]
        axes, shape = "".join(a for a, _ in kept), tuple(n for _, n in kept)
        if slice_of is not None:
            if axes != "YX":
                raise ValueError(f"{file}: has axes {axes} {shape}; a folder ({slice_of}) is read as one slice "
                                 f"per file; give a glob (e.g. '{Path(slice_of) / '*.tif'}') to read each file "
                                 f"as a stack")
        elif axes not in ("ZYX", "QYX", "IYX") or len(tif.pages) != shape[0]:
            raise ValueError(f"{file}: has axes {axes} {shape}; the tiff source reads one-channel stacks (axes "
                             f"ZYX, one page per slice); write one file per channel, and slices with axes ZYX "
                             f"(tifffile: metadata={{'axes': 'ZYX'}})")
        if not (np.issubdtype(series.dtype, np.integer) or np.issubdtype(series.dtype, np.floating)):
            raise ValueError(f"{file}: pixels of type {series.dtype}; expected integer or float grey values")
        voxel_size, why = read_voxel_size(tif, file)
        return shape, series.dtype, voxel_size, why


def find_stacks(path) -> list[Stack]:
    """The stacks ``path`` names (see the module docstring)."""
    p = Path(path)
    is_tiff = lambda f: str(f).lower().endswith(TIFF_SUFFIXES)  # noqa: E731
    if p.is_dir():
        files = sorted((f for f in p.iterdir() if f.is_file() and is_tiff(f)), key=lambda f: natural_key(f.name))
        if not files:
            raise FileNotFoundError(f"{p}: no .tif/.tiff slices in this folder (check data.path)")
        first = _open(files[0], slice_of=p)
        for f in files[1:]:
            shape, dtype = _open(f, slice_of=p)[:2]
            if shape != first[0] or dtype != first[1]:
                raise ValueError(f"{f}: slice of {shape} {dtype}, {files[0].name} is {first[0]} {first[1]}; "
                                 f"every slice of a stack must have one shape and type")
        why = "single-page slices hold no spacing between them"  # whatever pixel size each one has
        return [Stack([str(f) for f in files], (len(files), *first[0]), first[1], None, why, str(p))]
    if p.is_file():
        files = [p]
    else:
        files = sorted((Path(f) for f in glob.glob(str(path)) if is_tiff(f)), key=lambda f: natural_key(str(f)))
        if not files:
            raise FileNotFoundError(f"{path}: no .tif/.tiff file or folder of slices matches (check data.path)")
    stacks = []
    for f in files:
        if not is_tiff(f):
            raise ValueError(f"{f}: not a .tif/.tiff file; the tiff source reads TIFF stacks")
        shape, dtype, voxel_size, why = _open(f)
        stacks.append(Stack([str(f)], shape, dtype, voxel_size, why, str(f)))
    return stacks


def stack_affine(voxel_size, origin=(0, 0, 0)) -> np.ndarray:
    """The 4x4 affine of a crop whose first voxel is stack voxel ``origin`` ``(z, y, x)``: array axis 0 (z)
    to world z, axis 1 (y) to world y, axis 2 (x) to world x, in mm."""
    sx, sy, sz = voxel_size
    affine = np.zeros((4, 4))
    affine[0, 2], affine[1, 1], affine[2, 0], affine[3, 3] = sx, sy, sz, 1.0
    affine[:3, 3] = affine[:3, :3] @ np.asarray(origin, dtype=float)
    return affine


def _triple(value, key, what):
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value] * 3
    if not (isinstance(value, (list, tuple)) and len(value) == 3 and
            all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ValueError(f"data.options.{key}: expected three positive {what}, got {value!r}")
    return tuple(value)


class TiffDataset(Dataset):
    """Crops ``[1, *shape]`` float32 in [-1, 1] of TIFF stacks; ``affine(i)`` is crop i's 4x4 affine.

    ``stride``: voxels between crops along (z, y, x) (an int or three; default ``shape``). ``window``:
    ``[a_min, a_max]`` grey values mapped to [-1, 1] instead of each stack's ``percentiles``; ``units`` names
    them (default ``intensity``)."""

    def __init__(self, path, shape, voxel_size=None, stride=None, window=None, percentiles=(0.5, 99.5),
                 units=None, channel_names=None):
        if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
            raise ValueError(f"shape: expected three positive ints (voxels along z, y, x), got {shape!r}")
        self.shape = tuple(shape)
        self.stride = _triple(stride, "stride", "ints (voxels)") if stride is not None else self.shape
        if not all(isinstance(s, int) for s in self.stride):
            raise ValueError(f"data.options.stride: expected ints (voxels), got {stride!r}")
        given = _triple(voxel_size, "voxel_size", "sizes in mm, [x, y, z]") if voxel_size is not None else None
        self.window = check_window(window, 1)
        self.percentiles = check_percentiles(percentiles)
        self.stacks = find_stacks(path)
        for s in self.stacks:
            if given is None and s.voxel_size is None:
                raise ValueError(f"{s.name}: no voxel size ({s.why}); give data.options.voxel_size: [x, y, z] "
                                 f"in mm")
            if given is None and not np.allclose(s.voxel_size, self.stacks[0].voxel_size, rtol=1e-6, atol=0):
                raise ValueError(f"{s.name}: voxel size {s.voxel_size} mm, {self.stacks[0].name} has "
                                 f"{self.stacks[0].voxel_size} mm; train on one voxel size (resample the stacks) "
                                 f"or give data.options.voxel_size to override the metadata")
            if any(n < c for n, c in zip(s.shape, self.shape)):
                raise ValueError(f"{s.name}: stack of {s.shape} (z, y, x) voxels is smaller than the crop shape "
                                 f"{self.shape}; choose a smaller data.shape")
        self.voxel_size = given or self.stacks[0].voxel_size
        self.crops = [(i, z, y, x) for i, s in enumerate(self.stacks)
                      for z in range(0, s.shape[0] - self.shape[0] + 1, self.stride[0])
                      for y in range(0, s.shape[1] - self.shape[1] + 1, self.stride[1])
                      for x in range(0, s.shape[2] - self.shape[2] + 1, self.stride[2])]
        self.ranges = [self.window[0] if self.window else self._percentile_range(s) for s in self.stacks]
        names = list(channel_names or ["channel0"])
        if len(names) != 1:
            raise ValueError(f"data.options.channel_names: {len(names)} names for 1 channel")
        sx, sy, sz = self.voxel_size
        self.metadata = {"source": str(path), "channels": 1, "shape": self.shape, "channel_names": names,
                         "affine": self.affine(0).tolist(), "spacing": [sz, sy, sx],
                         "units": units or "intensity", "value_range": list(self.ranges[0]),
                         "channel_value_ranges": [list(self.ranges[0])], "normalized": True, "periodic": False}
        if self.window:
            self.metadata["window"] = [list(self.window[0])]
        else:
            self.metadata["percentiles"] = list(self.percentiles)

    def _percentile_range(self, stack):
        depth, rows, cols = stack.shape
        zs = sorted({round(v) for v in np.linspace(0, depth - 1, min(depth, _PERCENTILE_SLICES))})
        step = max(1, math.ceil(math.sqrt(len(zs) * rows * cols / _PERCENTILE_VALUES)))
        values = np.concatenate([stack.read(z, z + 1, slice(None, None, step), slice(None, None, step)).ravel()
                                 for z in zs])
        return percentile_range(values.astype(np.float64), self.percentiles, stack.name)

    def __len__(self):
        return len(self.crops)

    def affine(self, index) -> np.ndarray:
        """Crop ``index``'s affine: voxel ``(z, y, x)`` of the crop to world ``(x, y, z)`` mm."""
        return stack_affine(self.voxel_size, self.crops[index][1:])

    def __getitem__(self, index):
        i, z, y, x = self.crops[index]
        d, h, w = self.shape
        raw = self.stacks[i].read(z, z + d, slice(y, y + h), slice(x, x + w)).astype(np.float64)
        return torch.from_numpy(to_unit_range(raw, *self.ranges[i])[None])
