"""Volumes and images as files, written once for every command: reading one sample of a ``.npy``, NIfTI or
HDF5 file (``read_sample``), and writing a sample as NIfTI (``write_nifti``).

Layouts read: ``.npy`` ``[*S]``, ``[C, *S]`` or ``[N, C, *S]``; NIfTI ``[*S]`` or ``[*S, C]`` (channels on
the 4th axis, as NIfTI stores them); HDF5 dataset ``data`` ``[N, C, *S]`` or ``[N, *S]``, with ``spacing``
and ``units`` attributes on the dataset or the file. Samples come back as float32 ``[C, *S]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .budget import TooLarge
from .files import load_npy

VOLUME_SUFFIXES = (".npy", ".nii", ".nii.gz", ".h5", ".hdf5")


def read_sample(path, index: int = 0, spatial_dims: int = 3, check=None, what: str | None = None):
    """(sample ``[C, *S]`` float32, spacing or None, units or None) of sample ``index`` of ``path``.

    ``check(shape)``, if given, is called with the sample's ``[C, *S]`` shape before its values are read (a
    size estimate that may refuse it). Unreadable files, wrong layouts and out-of-range indices raise a
    ValueError naming the file (``--index`` for the index); ``what`` names the file's role in the message
    of an unreadable one (e.g. ``"target"``; default: its format)."""
    path = Path(path)
    name, sd = path.name.lower(), spatial_dims
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    check = check or (lambda shape: None)
    spacing = units = None
    if name.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        try:
            img = nib.load(path)
            if len(img.shape) not in (sd, sd + 1):
                raise ValueError(f"{path}: expected a {sd}D volume (or {sd}D x channels), got shape {img.shape}")
            shape = img.shape[:sd]
            check((img.shape[sd] if len(img.shape) > sd else 1, *shape))
            data = np.asarray(img.dataobj, dtype=np.float32)
        except (TooLarge, FileNotFoundError):
            raise
        except ValueError as e:
            if str(e).startswith(f"{path}:"):
                raise
            raise ValueError(f"{path}: unreadable {what or 'NIfTI'} ({type(e).__name__})") from None
        except Exception as e:  # nibabel raises many types for corrupt files
            raise ValueError(f"{path}: unreadable {what or 'NIfTI'} ({type(e).__name__})") from None
        spacing = tuple(float(z) for z in img.header.get_zooms()[:sd])
        sample = data[None] if data.ndim == sd else np.moveaxis(data, -1, 0)
    elif name.endswith((".h5", ".hdf5")):
        import h5py

        try:
            with h5py.File(path, "r") as h5:
                if "data" not in h5:
                    raise ValueError(f"{path}: no dataset 'data'")
                ds = h5["data"]
                if ds.ndim not in (sd + 1, sd + 2):
                    raise ValueError(f"{path}: expected dataset 'data' [N, C, *S] or [N, *S] with {sd} spatial "
                                     f"axes, got shape {ds.shape}")
                if not 0 <= index < ds.shape[0]:
                    raise ValueError(f"--index: {index} is out of range for {ds.shape[0]} samples in {path}")
                check((ds.shape[1] if ds.ndim == sd + 2 else 1, *ds.shape[-sd:]))
                sample = np.asarray(ds[index], dtype=np.float32)
                spacing = ds.attrs.get("spacing", h5.attrs.get("spacing"))
                units = ds.attrs.get("units", h5.attrs.get("units"))
        except OSError:
            raise ValueError(f"{path}: unreadable {what}" if what else f"{path}: not a readable HDF5 file") from None
        sample = sample[None] if sample.ndim == sd else sample
    elif name.endswith(".npy"):
        data = load_npy(path, mmap=True)  # only the sample asked for is read
        if data.ndim not in (sd, sd + 1, sd + 2):
            axes = {3: "[D, H, W], [C, D, H, W] or [N, C, D, H, W]"}.get(sd, f"[*S], [C, *S] or [N, C, *S] with {sd} "
                                                                            f"spatial axes")
            raise ValueError(f"{path}: expected {axes}, got shape {data.shape}")
        if data.ndim == sd + 2:
            if not 0 <= index < data.shape[0]:
                raise ValueError(f"--index: {index} is out of range for {data.shape[0]} samples in {path}")
            data = data[index]
        elif index != 0:
            raise ValueError(f"--index: {index} is out of range for 1 sample in {path}")
        data = data[None] if data.ndim == sd else data
        check(data.shape)
        sample = np.asarray(data, dtype=np.float32)
    else:
        raise ValueError(f"{path}: unknown file type; expected one of {', '.join(VOLUME_SUFFIXES)}")
    units = units.decode() if isinstance(units, bytes) else units
    return sample, spacing, units


def write_nifti(path, sample: np.ndarray, affine, description: str | None = None, display_range=None,
                label: bool = False) -> None:
    """Write ``sample`` ``[C, D, H, W]`` (values as they are) to the NIfTI file ``path`` with ``affine``: one
    channel as a 3D image, several on the 4th axis; voxel units mm. ``description`` goes into the header's
    ``descrip`` (80 bytes: what the values are), ``display_range`` ``(lo, hi)`` into ``cal_min``/``cal_max``.
    ``label``: an integer label map (``[D, H, W]`` or ``[1, D, H, W]``), stored as integers with the NIfTI
    label intent, as segmentation viewers expect."""
    import nibabel as nib

    volume = np.moveaxis(sample, 0, -1) if sample.shape[0] > 1 else sample[0]
    if label:
        volume = np.asarray(sample if sample.ndim == 3 else volume)
        if not np.issubdtype(volume.dtype, np.integer):
            raise ValueError(f"{path}: a label map needs integer labels, got {volume.dtype}")
    else:
        volume = np.asarray(volume, dtype=np.float32)
    img = nib.Nifti1Image(volume, np.asarray(affine, dtype=np.float64))
    img.header.set_xyzt_units("mm")
    if label:
        img.header.set_intent("label")
    if description:
        img.header["descrip"] = description.encode()[:79]
    if display_range is not None:
        img.header["cal_min"], img.header["cal_max"] = (float(v) for v in display_range)
    nib.save(img, path)
