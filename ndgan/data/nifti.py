"""3D volumes from NIfTI files (MRI), read with nibabel, with their world-space geometry kept.

Per subject: load each modality (channel), reorient to the closest RAS+ canonical orientation, resample to
``spacing`` (mm) with trilinear interpolation along the voxel axes (an oblique affine keeps its rotation),
centre crop or zero-pad to ``shape``, clip each channel to its ``percentiles`` and map that range to
[-1, 1]. The affine of every processed volume is updated through each step, so a generated sample saved with
the reference affine lands in the training data's world space.

Subjects come from ``path``: a folder or glob (one channel), a folder plus one glob pattern per channel
(``patterns=["*_T1w.nii.gz", "*_T2w.nii.gz"]``, matched by the text the ``*`` stands for), or a CSV file with
one column of paths per channel. ``cache_hdf5`` writes the processed set to HDF5 (read it back with
``HDF5Dataset``).
"""

from __future__ import annotations

import csv
import fnmatch
import glob
import warnings
from pathlib import Path

import numpy as np

from ..io.files import atomic_write, check_free_space
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def _nib():
    try:
        import nibabel
    except ImportError:
        raise ImportError("reading NIfTI needs nibabel: pip install 'ndgan[nifti]'") from None
    return nibabel


def _is_nifti(name: str) -> bool:
    return name.lower().endswith(NIFTI_SUFFIXES)


def find_subjects(path, patterns=None):
    """Subjects as lists of files, one per channel. See the module docstring for the three layouts."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such CSV file (check data.path)")
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f) if r and not r[0].startswith("#")]
        if rows and not any(_is_nifti(c) for c in rows[0]):
            rows = rows[1:]  # a header row
        if not rows or len({len(r) for r in rows}) != 1:
            raise ValueError(f"{path}: expected one row per subject with the same number of NIfTI paths")
        return [[str((path.parent / c.strip()).resolve()) if not Path(c.strip()).is_absolute() else c.strip()
                 for c in r] for r in rows]
    if patterns:
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: no such folder (check data.path)")
        files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if _is_nifti(p.name))
        by_channel = []
        for pattern in patterns:
            if pattern.count("*") != 1:
                raise ValueError(f"patterns: each pattern needs exactly one '*' (the subject id), got {pattern!r}")
            head, tail = pattern.split("*")
            by_channel.append({f[len(head):len(f) - len(tail)]: str(path / f) for f in files
                               if fnmatch.fnmatch(f, pattern)})
        ids = sorted(set.intersection(*(set(c) for c in by_channel)))
        unmatched = sorted(set.union(*(set(c) for c in by_channel)) - set(ids))
        if unmatched:
            warnings.warn(f"{path}: {len(unmatched)} subjects lack a channel and are left out: {unmatched[:5]}")
        subjects = [[c[i] for c in by_channel] for i in ids]
    elif path.is_dir():
        subjects = [[str(p)] for p in sorted(path.rglob("*")) if _is_nifti(p.name)]
    else:
        subjects = [[p] for p in sorted(glob.glob(str(path))) if _is_nifti(p)]
    if not subjects:
        raise ValueError(f"{path}: no NIfTI files (.nii, .nii.gz) found" + (f" for patterns {patterns}" if patterns else ""))
    return subjects


def check_affine(affine, file) -> None:
    """A NIfTI affine must be finite and invertible: it places every voxel in the world."""
    affine = np.asarray(affine, dtype=np.float64)
    if not np.isfinite(affine).all():
        raise ValueError(f"{file}: the affine is not finite (NaN or Inf in its header); fix the file's sform/qform")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise ValueError(f"{file}: the affine is singular (a zero voxel size or collapsed axes); fix the file's "
                         f"sform/qform")


def load_volume(file, spacing=None, shape=None):
    """One NIfTI file -> (float32 array [*S] in RAS+ orientation, 4x4 affine), resampled and cropped."""
    nib = _nib()
    try:
        img = nib.load(file)
    except Exception as e:  # nibabel raises several types for broken files
        raise ValueError(f"{file}: unreadable NIfTI ({type(e).__name__}: {e})") from None
    check_affine(img.affine, file)
    try:
        img = nib.as_closest_canonical(img)
        data = np.ascontiguousarray(img.dataobj, dtype=np.float32)  # canonical reorientation may flip strides
    except Exception as e:  # nibabel raises several types for broken files
        raise ValueError(f"{file}: unreadable NIfTI ({type(e).__name__}: {e})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{file}: expected a 3D volume, got shape {data.shape}; split 4D series into 3D files")
    if not np.isfinite(data).all():
        raise ValueError(f"{file}: contains NaN or Inf voxels")
    affine = img.affine.astype(np.float64)
    if spacing is not None:
        zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))  # current voxel size per axis
        size = np.array(data.shape)
        new_size = np.maximum(np.round(size * zooms / np.asarray(spacing, dtype=np.float64)).astype(int), 1)
        t = torch.from_numpy(data)[None, None]
        data = F.interpolate(t, size=tuple(int(s) for s in new_size), mode="trilinear", align_corners=False)[0, 0].numpy()
        # F.interpolate samples old index i = (j + 0.5) * size / new_size - 0.5 for new index j.
        scale = size / new_size
        step = np.eye(4)
        step[:3, :3] = np.diag(scale)
        step[:3, 3] = (scale - 1) / 2
        affine = affine @ step
    if shape is not None:  # centre crop or zero-pad each axis; new index j is old index j + start
        crops, pads, starts = [], [], []
        for n, target in zip(data.shape, shape):
            start = (n - target) // 2
            if start >= 0:
                crops.append(slice(start, start + target))
                pads.append((0, 0))
            else:
                crops.append(slice(0, n))
                pads.append((-start, target - n + start))
            starts.append(start)
        data = np.pad(data[tuple(crops)], pads)
        shift = np.eye(4)
        shift[:3, 3] = starts
        affine = affine @ shift
    return data, affine


def process_subject(files, shape, spacing=None, percentiles=(0.5, 99.5)):
    """One subject's channel files -> (tensor [C, *shape] in [-1, 1], 4x4 affine, per-channel [lo, hi])."""
    channels, ranges, affine = [], [], None
    for file in files:
        data, aff = load_volume(file, spacing, shape)
        if affine is not None and not np.allclose(aff, affine, atol=1e-3):
            raise ValueError(f"{file}: its geometry (affine) differs from the subject's first channel; "
                             f"register the modalities to each other first")
        affine = aff
        lo, hi = np.percentile(data, percentiles)
        if hi <= lo:
            raise ValueError(f"{file}: constant volume (percentiles {tuple(percentiles)} give {lo} and {hi})")
        channels.append(2 * (np.clip(data, lo, hi) - lo) / (hi - lo) - 1)
        ranges.append([float(lo), float(hi)])
    return torch.from_numpy(np.stack(channels).astype(np.float32)), affine, ranges


class NiftiDataset(Dataset):
    """Subjects ``[C, *shape]`` float32 in [-1, 1]; ``affines[i]`` is subject i's processed 4x4 affine."""

    def __init__(self, path, shape, spacing=None, patterns=None, percentiles=(0.5, 99.5), channel_names=None):
        self.subjects = find_subjects(path, patterns)
        if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
            raise ValueError(f"shape: expected three positive ints (voxels per axis), got {shape!r}")
        if spacing is not None and (len(spacing) != 3 or not all(s > 0 for s in spacing)):
            raise ValueError(f"spacing: expected three positive voxel sizes in mm, got {spacing!r}")
        lo, hi = percentiles
        if not 0 <= lo < hi <= 100:
            raise ValueError(f"percentiles: expected 0 <= lo < hi <= 100, got {percentiles!r}")
        self.path, self.shape, self.spacing, self.percentiles = Path(path), tuple(shape), spacing, (lo, hi)
        self.channels = len(self.subjects[0])
        names = channel_names or (patterns and [p.replace("*", "").strip("_.") for p in patterns]) or \
            [f"channel{i}" for i in range(self.channels)]
        # The first subject fixes the reference geometry (and fails early on a bad file).
        x, affine, ranges = self._load(0)
        self.affines = {0: affine}
        zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
        self.metadata = {"source": str(self.path), "channels": self.channels, "shape": self.shape,
                         "channel_names": list(names), "affine": affine.tolist(), "spacing": zooms.tolist(),
                         "units": "intensity", "value_range": ranges[0], "channel_value_ranges": ranges,
                         "normalized": True, "periodic": False, "percentiles": list(self.percentiles)}

    def __len__(self):
        return len(self.subjects)

    def _load(self, index):
        return process_subject(self.subjects[index], self.shape, self.spacing, self.percentiles)

    def __getitem__(self, index):
        x, affine, _ = self._load(index)
        self.affines[index] = affine
        return x


def cache_hdf5(dataset: NiftiDataset, out, overwrite=False):
    """Write every processed subject to ``out`` (HDF5 ``data`` [N, C, *S], ``affines`` [N, 4, 4], ``ranges``
    [N, C, 2]) with the dataset metadata as attributes; written to a temporary file, then renamed."""
    import h5py

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists; pass overwrite=True to replace it")
    check_free_space(out, len(dataset) * dataset.channels * int(np.prod(dataset.shape)) * 4,
                     f"the cache of {len(dataset)} subjects")

    def write(tmp):
        with h5py.File(tmp, "w") as h5:
            n, c = len(dataset), dataset.channels
            data = h5.create_dataset("data", (n, c, *dataset.shape), "float32", chunks=(1, c, *dataset.shape),
                                     compression="gzip", compression_opts=1)
            affines = h5.create_dataset("affines", (n, 4, 4), "float64")
            ranges = h5.create_dataset("ranges", (n, c, 2), "float64")
            for i in range(n):
                x, affine, rng = dataset._load(i)
                data[i], affines[i], ranges[i] = x.numpy(), affine, rng
            per_channel = np.median(ranges[:], axis=0)  # [C, 2]: typical intensity range of each channel
            meta = dict(dataset.metadata, value_range=per_channel[0].tolist(), channel_value_ranges=per_channel.tolist())
            for key, value in meta.items():
                data.attrs[key] = value
            data.attrs["range_note"] = ("per-subject percentile ranges in 'ranges'; channel_value_ranges are their "
                                        "medians, value_range the first channel's")

    atomic_write(out, write)  # temporary file, renamed when complete
    return out
