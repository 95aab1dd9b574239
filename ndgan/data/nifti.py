"""3D volumes from NIfTI files (MRI), read with nibabel, with their world-space geometry kept.

Per subject: load each modality (channel), reorient to the closest RAS+ canonical orientation, resample to
``spacing`` (mm) with trilinear interpolation along the voxel axes (an oblique affine keeps its rotation),
centre crop or zero-pad to ``shape``, and map intensities to [-1, 1]: each channel clipped to its own
``percentiles`` (the MR default), or to a fixed ``window`` ``[a_min, a_max]`` (CT in Hounsfield units,
``ndgan.data.intensity``). Label maps (``labels``: a pattern pairing each subject with its segmentation) go
through the same reorientation, nearest-neighbour resampling and crop, and become extra channels
(``ndgan.data.labelmaps``). The affine of every processed volume is updated through each step, so a generated
sample saved with the reference affine lands in the training data's world space.

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
from . import labelmaps
from .intensity import check_percentiles, check_window, percentile_range, to_unit_range
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


def _pattern_name(pattern: str) -> str:
    """A channel's name from its pattern: ``'*_T1w.nii.gz'`` -> ``'T1w'``."""
    for suffix in NIFTI_SUFFIXES[::-1]:
        if pattern.lower().endswith(suffix):
            pattern = pattern[: -len(suffix)]
            break
    return pattern.replace("*", "").strip("_.-/") or pattern


def find_subjects(path, patterns=None, labels=None):
    """Subjects as lists of files, one per channel (and the label map last, with ``labels``: a pattern with
    one ``*`` matched like ``patterns``). See the module docstring for the three layouts."""
    path = Path(path)
    if labels is not None:
        if not isinstance(labels, str) or labels.count("*") != 1:
            raise ValueError(f"data.options.labels: expected a pattern with exactly one '*' (the subject id), "
                             f"e.g. '*_seg.nii.gz', got {labels!r}")
        if not patterns or path.suffix.lower() == ".csv":
            raise ValueError("data.options.labels: pairs each image with its label map by the text the '*' "
                             "matches; give data.path as a folder and data.options.patterns (one per image "
                             "channel, e.g. ['*_ct.nii.gz']) with it")
        if labels in patterns:
            raise ValueError(f"data.options.labels: {labels!r} is also an image pattern; give the label maps' "
                             f"own pattern, e.g. '*_seg.nii.gz'")
        patterns = [*patterns, labels]
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


def load_volume(file, spacing=None, shape=None, nearest: bool = False):
    """One NIfTI file -> (float32 array [*S] in RAS+ orientation, 4x4 affine), resampled and cropped.
    ``nearest``: resample with nearest neighbour (label maps: values are copied, never interpolated), on
    the same sample positions as the trilinear resampling of images."""
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
        mode = dict(mode="nearest-exact") if nearest else dict(mode="trilinear", align_corners=False)
        data = F.interpolate(t, size=tuple(int(s) for s in new_size), **mode)[0, 0].numpy()
        # Both sample old index i = (j + 0.5) * size / new_size - 0.5 for new index j (nearest-exact rounds it).
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


def process_subject(files, shape, spacing=None, percentiles=(0.5, 99.5), window=None, label_file=None,
                    label_values=None, label_encoding="onehot"):
    """One subject's channel files -> (tensor [C, *shape] in [-1, 1], 4x4 affine, per-channel [lo, hi]).

    Image channels are mapped from their ``window[c]`` (``(a_min, a_max)`` pairs) if given, else from their own
    ``percentiles``. ``label_file``, if given, adds its label map's channels (``label_values`` in
    ``label_encoding``, ``ndgan.data.labelmaps``), whose ranges are ``[0, 1]`` (one-hot) or ``[0, K]`` (the
    level of the scaled channel)."""
    channels, ranges, affine = [], [], None

    def same_geometry(file, aff):
        if affine is not None and not np.allclose(aff, affine, atol=1e-3):
            raise ValueError(f"{file}: its geometry (affine) differs from the subject's first channel; "
                             f"register the modalities to each other first")

    for c, file in enumerate(files):
        data, aff = load_volume(file, spacing, shape)
        same_geometry(file, aff)
        affine = aff
        lo, hi = window[c] if window is not None else percentile_range(data, percentiles, file)
        channels.append(to_unit_range(data, lo, hi))
        ranges.append([float(lo), float(hi)])
    if label_file is not None:
        data, aff = load_volume(label_file, spacing, shape, nearest=True)
        same_geometry(label_file, aff)
        labels = data.astype(np.int64)
        extra = sorted(set(np.unique(labels).tolist()) - {0, *label_values})
        if extra:
            raise ValueError(f"{label_file}: has labels {extra} outside data.options.label_values "
                             f"{list(label_values)}; add them there")
        encoded = labelmaps.encode(labels, label_values, label_encoding)
        channels.extend(encoded)
        top = 1.0 if label_encoding == "onehot" else float(len(label_values))
        ranges.extend([[0.0, top]] * len(encoded))
    return torch.from_numpy(np.stack(channels).astype(np.float32)), affine, ranges


def label_set(label_file, image_file) -> set:
    """The labels of ``label_file``, after checking that it lies on ``image_file``'s voxel grid (the same
    shape and affine in the files' headers) and holds non-negative integers."""
    nib = _nib()
    try:
        lab, img = nib.load(label_file), nib.load(image_file)
        values = np.unique(np.asarray(lab.dataobj))
    except Exception as e:  # nibabel raises several types for broken files
        raise ValueError(f"{label_file}: unreadable NIfTI ({type(e).__name__}: {e})") from None
    if tuple(lab.shape[:3]) != tuple(img.shape[:3]) or len(lab.shape) > 3 and lab.shape[3:] != (1,):
        raise ValueError(f"{label_file}: label map of shape {tuple(lab.shape)}, its image {image_file} "
                         f"{tuple(img.shape)}; label maps must lie on their image's voxel grid (resample "
                         f"the label map to the image, with nearest neighbour)")
    check_affine(lab.affine, label_file)
    if not np.allclose(lab.affine, img.affine, atol=1e-3):
        raise ValueError(f"{label_file}: its affine differs from its image {image_file}'s; label maps must "
                         f"lie on their image's voxel grid (resample the label map to the image, with "
                         f"nearest neighbour)")
    if not np.isfinite(values).all() or (values != np.round(values)).any() or (values < 0).any():
        raise ValueError(f"{label_file}: label maps hold non-negative integer labels, this one has values "
                         f"such as {values[(values != np.round(values)) | (values < 0)][:3].tolist()}")
    return set(int(v) for v in values)


class NiftiDataset(Dataset):
    """Subjects ``[C, *shape]`` float32 in [-1, 1]; ``affines[i]`` is subject i's processed 4x4 affine.

    ``window``: ``[a_min, a_max]`` (one for every image channel, or one pair per channel) instead of the
    per-subject ``percentiles``; ``units`` names the window's units (default ``HU`` with a window, else
    ``intensity``). ``labels``: a pattern pairing each subject with its label map (with ``patterns``); its
    labels ``label_values`` (default: those the label maps hold, which must then be the same set in every
    subject) become channels after the image channels, in ``label_encoding`` (``onehot`` or ``scaled``)."""

    def __init__(self, path, shape, spacing=None, patterns=None, percentiles=(0.5, 99.5), channel_names=None,
                 window=None, units=None, labels=None, label_values=None, label_encoding="onehot"):
        self.subjects = find_subjects(path, patterns, labels)
        if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
            raise ValueError(f"shape: expected three positive ints (voxels per axis), got {shape!r}")
        if spacing is not None and (len(spacing) != 3 or not all(s > 0 for s in spacing)):
            raise ValueError(f"spacing: expected three positive voxel sizes in mm, got {spacing!r}")
        self.path, self.shape, self.spacing = Path(path), tuple(shape), spacing
        self.percentiles = check_percentiles(percentiles)
        self.label_files = [s.pop() for s in self.subjects] if labels is not None else None
        image_channels = len(self.subjects[0])
        self.window = check_window(window, image_channels)
        if label_encoding not in labelmaps.ENCODINGS:
            raise ValueError(f"data.options.label_encoding: expected one of {labelmaps.ENCODINGS}, got "
                             f"{label_encoding!r}")
        if labels is None and (label_values is not None or label_encoding != "onehot"):
            raise ValueError("data.options.label_values / label_encoding: describe label maps; give "
                             "data.options.labels (their pattern) too, or leave them out")
        self.label_encoding = label_encoding
        self.label_values = self._check_label_sets(label_values) if labels is not None else None
        label_channels = labelmaps.num_channels(self.label_values, label_encoding) if labels is not None else 0
        self.channels = image_channels + label_channels
        names = list(channel_names or (patterns and [_pattern_name(p) for p in patterns]) or
                     [f"channel{i}" for i in range(image_channels)])
        if labels is not None and not channel_names:
            names += ([f"label{v}" for v in self.label_values] if label_encoding == "onehot" else ["labels"])
        if len(names) != self.channels:
            raise ValueError(f"data.options.channel_names: {len(names)} names for {self.channels} channels "
                             f"({image_channels} image, {label_channels} label)")
        # The first subject fixes the reference geometry (and fails early on a bad file).
        x, affine, ranges = self._load(0)
        self.affines = {0: affine}
        zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
        self.metadata = {"source": str(self.path), "channels": self.channels, "shape": self.shape,
                         "channel_names": names, "affine": affine.tolist(), "spacing": zooms.tolist(),
                         "units": units or ("HU" if self.window else "intensity"), "value_range": ranges[0],
                         "channel_value_ranges": ranges, "normalized": True, "periodic": False}
        if self.window:
            self.metadata["window"] = [list(w) for w in self.window]
        else:
            self.metadata["percentiles"] = list(self.percentiles)
        if labels is not None:
            self.metadata.update(label_map_values=list(self.label_values), label_map_encoding=label_encoding,
                                 label_map_channels=list(range(image_channels, self.channels)))

    def _check_label_sets(self, label_values):
        """Every label map on its image's grid, and every subject with the same labels (or within
        ``label_values``); the foreground labels, sorted."""
        given = labelmaps.check_values(label_values) if label_values is not None else None
        first = None
        for files, label_file in zip(self.subjects, self.label_files):
            found = label_set(label_file, files[0])
            if given is not None:
                extra = sorted(found - {0, *given})
                if extra:
                    raise ValueError(f"{label_file}: has labels {extra} outside data.options.label_values "
                                     f"{given}; add them there")
            elif first is None:
                first = (found, label_file)
            elif found != first[0]:
                raise ValueError(f"{label_file}: has labels {sorted(found)}, {first[1]} has {sorted(first[0])}; "
                                 f"every subject must have one label set, or give data.options.label_values "
                                 f"(e.g. {sorted((found | first[0]) - {0})}) to allow subjects without some labels")
        values = given if given is not None else sorted(first[0] - {0})
        if not values:
            raise ValueError(f"{self.label_files[0]}: the label maps hold only background (0); give "
                             f"data.options.label_values if the labels are known")
        return values

    def __len__(self):
        return len(self.subjects)

    def _load(self, index):
        return process_subject(self.subjects[index], self.shape, self.spacing, self.percentiles, self.window,
                               self.label_files[index] if self.label_files else None, self.label_values,
                               self.label_encoding)

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
