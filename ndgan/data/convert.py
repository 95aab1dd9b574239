"""Convert an image folder/zip, a NIfTI folder/glob/CSV or a .npy stack into one HDF5 file for training.

    python -m ndgan.data.convert SRC --out data.h5 [--shape H W | --shape D H W] [--spacing MM MM MM]
                                 [--channels C] [--patterns P1 P2 ...] [--spatial-dims N] [--overwrite]

Writes dataset ``data`` [N, C, *S] in [-1, 1] (a .npy stack is stored as it is, with its value range) plus
the source's metadata as attributes (channel names, value range, spacing, affine), and prints a validation
report: files read and written, shape, channels, value range, and every rejected file with the reason.
Unreadable files are skipped and reported; the output is written to a temporary file and renamed at the end.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
from ..io.budget import check_fits
from ..io.files import atomic_write, check_free_space, load_npy


def _write(out, arrays, meta, extra=None):
    import h5py

    check_free_space(out, sum(a.nbytes for a in arrays), f"{len(arrays)} samples")

    def write(tmp):
        with h5py.File(tmp, "w") as h5:
            first = arrays[0]
            ds = h5.create_dataset("data", (len(arrays), *first.shape), "float32", chunks=(1, *first.shape),
                                   compression="gzip", compression_opts=1)
            for i, a in enumerate(arrays):
                ds[i] = a
            for key, value in meta.items():
                if value is not None:
                    ds.attrs[key] = value
            for key, value in (extra or {}).items():
                h5.create_dataset(key, data=value)

    atomic_write(out, write)  # temporary file, renamed when complete


def _check_fits(n, channels, shape, what):
    """The converted samples are held in memory until written, each resampled from a float copy: refuse a
    shape whose samples cannot fit before any is made."""
    per_sample = channels * math.prod(shape) * 4
    check_fits(per_sample * (n + 2), f"{what}: {n} samples of {channels} x {' x '.join(map(str, shape))} float32",
               "choose a smaller --shape, or convert fewer files at a time", "cpu")


def convert(src, out, shape=None, spacing=None, channels=None, patterns=None, spatial_dims=None, overwrite=False):
    """Convert ``src`` to the HDF5 file ``out``; return the report as a dict."""
    src, out = Path(src), Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"{out.parent}: output folder does not exist")
    rejected, extra = [], None
    if src.suffix.lower() == ".npy":
        stack = load_npy(src, mmap=True)
        nd = spatial_dims or stack.ndim - 2
        if stack.ndim not in (nd + 1, nd + 2) or not 1 <= nd <= 3:
            raise ValueError(f"{src}: shape {stack.shape} does not fit spatial_dims={nd}; use [N, C, *S] or [N, *S]")
        arrays = [np.asarray(a, dtype=np.float32).reshape((-1,) + stack.shape[-nd:]) for a in stack]
        bad = [i for i, a in enumerate(arrays) if not np.isfinite(a).all()]
        rejected = [(f"{src.name}[{i}]", "NaN or Inf") for i in bad]
        arrays = [a for i, a in enumerate(arrays) if i not in set(bad)]
        lo = float(min(a.min() for a in arrays)) if arrays else 0.0
        hi = float(max(a.max() for a in arrays)) if arrays else 0.0
        meta = {"source": str(src), "value_range": [lo, hi], "normalized": False, "spatial_dims": nd}
    elif any(str(src).lower().endswith(s) for s in (".csv",)) or patterns or _has_nifti(src):
        from .nifti import find_subjects, process_subject

        if shape is None:
            raise ValueError("--shape: NIfTI conversion needs a target shape (three ints, e.g. 80 96 112)")
        subjects = find_subjects(src, patterns)
        _check_fits(len(subjects), len(subjects[0]) if len(subjects) else 1, shape, "--shape")
        arrays, affines, ranges, meta = [], [], [], None
        for i in range(len(subjects)):
            try:
                x, affine, rng = process_subject(subjects[i], tuple(shape), spacing)
            except ValueError as e:
                rejected.append((", ".join(Path(f).name for f in subjects[i]), str(e).split(": ", 1)[-1]))
                continue
            arrays.append(x.numpy())
            affines.append(affine)
            ranges.append(rng)
        if arrays:
            zooms = np.sqrt((affines[0][:3, :3] ** 2).sum(axis=0))
            per_channel = np.median(np.array(ranges), axis=0)
            meta = {"source": str(src), "affine": affines[0], "spacing": zooms.tolist(), "normalized": True,
                    "value_range": per_channel[0].tolist(), "channel_value_ranges": per_channel.tolist(),
                    "units": "intensity", "spatial_dims": 3}
            extra = {"affines": np.stack(affines), "ranges": np.array(ranges)}
    else:
        from .images import ImageDataset

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the report lists what was skipped
            ds = ImageDataset(src, channels=channels, shape=tuple(shape) if shape else None, skip_bad=True)
        rejected = list(ds.rejected)
        _check_fits(len(ds), ds.channels, ds.shape, "--shape" if shape else f"{src} (its images' size)")
        arrays = []
        for i in range(len(ds)):
            try:
                arrays.append(ds[i].numpy())
            except ValueError as e:
                rejected.append((ds.files[i], str(e).split(": ", 1)[-1]))
        meta = {k: v for k, v in ds.metadata.items() if k in ("channel_names", "units", "periodic")}
        meta.update(source=str(src), value_range=[0.0, 255.0], normalized=True, spatial_dims=2)
    if not arrays:
        raise ValueError(f"{src}: nothing to convert ({len(rejected)} files rejected"
                         + (f", first: {rejected[0][0]}: {rejected[0][1]}" if rejected else "") + ")")
    _write(out, arrays, meta, extra)
    values = (float(min(a.min() for a in arrays)), float(max(a.max() for a in arrays)))
    return {"source": str(src), "out": str(out), "written": len(arrays), "rejected": rejected,
            "shape": list(arrays[0].shape[1:]), "channels": int(arrays[0].shape[0]), "values": values}


def _has_nifti(path):
    path = Path(path)
    if path.is_dir():
        return any(p.name.lower().endswith((".nii", ".nii.gz")) for p in path.rglob("*"))
    return str(path).lower().endswith((".nii", ".nii.gz")) or "*" in str(path)


if __name__ == "__main__":  # python -m ndgan.data.convert: the command lives in ndgan/cli/convert.py
    import sys

    from ..cli.convert import main

    sys.exit(main())
