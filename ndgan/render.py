"""python -m ndgan.render FILE --out IMAGE.png [--mode volume|isosurface|slices] [--channel K] [--index N]
                           [--iso VALUE] [--spacing DX DY DZ] [--turntable OUT.gif] [--frames 24]

Renders one channel of one volume from a .nii/.nii.gz (4th axis = channels), .h5 (dataset 'data'
[N, C, D, H, W] or [N, D, H, W]) or .npy file, off-screen (no display needed), in world-space proportions:
spacing from the NIfTI header or the HDF5 'spacing' attribute, else --spacing, else 1. Errors: one line,
exit code 2.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from . import cli
from .budget import TooLarge, check_fits
from .files import atomic_write_all, load_npy

from .viz.render import MODES, render, turntable


RENDER_COPIES = 4  # float32 copies of a volume a render holds at once (ours, pyvista's, VTK's)
MAX_SIZE = 16384  # pixels per side: the largest offscreen framebuffer VTK's OpenGL backends allow


def _check_render_fits(shape, path) -> None:
    """Before a volume (or a sample of ``shape`` [C, D, H, W] / [D, H, W]) is read: its render must fit."""
    check_fits(RENDER_COPIES * 4 * int(np.prod(shape, dtype=object)), f"{path}: rendering a volume of "
               f"{tuple(int(n) for n in shape)}", "crop or downsample it first")


def read_volume(path, index=0, channel=0):
    """(3D array, spacing, units) of sample ``index``, channel ``channel`` of a NIfTI, HDF5 or NumPy file."""
    path = Path(path)
    name = path.name.lower()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    spacing, units = None, None
    if name.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        try:
            img = nib.load(path)
            _check_render_fits(img.shape[:3], path)
            data = np.asarray(img.dataobj, dtype=np.float32)
        except ValueError as e:
            if isinstance(e, TooLarge):
                raise
            raise ValueError(f"{path}: unreadable NIfTI ({type(e).__name__})") from None
        except Exception as e:
            raise ValueError(f"{path}: unreadable NIfTI ({type(e).__name__})") from None
        spacing = img.header.get_zooms()[:3]
        data = data[..., None] if data.ndim == 3 else data
        if data.ndim != 4:
            raise ValueError(f"{path}: expected a 3D volume (or 3D x channels), got shape {data.shape}")
        volumes = np.moveaxis(data, -1, 0)[None]  # [1, C, D, H, W]
    elif name.endswith((".h5", ".hdf5")):
        import h5py

        try:
            with h5py.File(path, "r") as h5:
                if "data" not in h5:
                    raise ValueError(f"{path}: no dataset 'data'")
                ds = h5["data"]
                if not 0 <= index < ds.shape[0]:
                    raise ValueError(f"--index: {index} is out of range for {ds.shape[0]} samples in {path}")
                _check_render_fits(ds.shape[1:], path)
                sample = np.asarray(ds[index], dtype=np.float32)
                spacing = ds.attrs.get("spacing", h5.attrs.get("spacing"))
                units = ds.attrs.get("units", h5.attrs.get("units"))
        except OSError:
            raise ValueError(f"{path}: not a readable HDF5 file") from None
        volumes = (sample[None] if sample.ndim == 3 else sample)[None]
        index = 0
    elif name.endswith(".npy"):
        data = load_npy(path, mmap=True)  # only the sample rendered is read (below)
        _check_render_fits(data.shape[-3:], path)
        volumes = {3: lambda a: a[None, None], 4: lambda a: a[None], 5: lambda a: a}.get(data.ndim, lambda a: None)(data)
        if volumes is None:
            raise ValueError(f"{path}: expected [D, H, W], [C, D, H, W] or [N, C, D, H, W], got shape {data.shape}")
    else:
        raise ValueError(f"{path}: unknown file type; expected .nii, .nii.gz, .h5 or .npy")
    if volumes.ndim != 5:
        raise ValueError(f"{path}: expected 3D volumes, got samples of shape {volumes.shape[1:]}")
    if not 0 <= index < volumes.shape[0]:
        raise ValueError(f"--index: {index} is out of range for {volumes.shape[0]} samples in {path}")
    if not 0 <= channel < volumes.shape[1]:
        raise ValueError(f"--channel: {channel} is out of range for {volumes.shape[1]} channels in {path}")
    units = units.decode() if isinstance(units, bytes) else units
    volume = np.asarray(volumes[index, channel], dtype=np.float32)
    if not np.isfinite(volume).all():
        raise ValueError(f"{path}: sample {index}, channel {channel} contains NaN or Inf")
    return volume, spacing, units


def main(argv=None) -> int:
    p = cli.ArgumentParser(prog="python -m ndgan.render", description=__doc__.split("\n\n")[1].strip())
    p.add_argument("file")
    p.add_argument("--out", required=True, help="output PNG")
    p.add_argument("--mode", default="volume", choices=MODES)
    p.add_argument("--channel", type=int, default=0)
    p.add_argument("--index", type=int, default=0, help="sample index in an HDF5 / NumPy stack")
    p.add_argument("--iso", type=float, help="isosurface value (default: the median)")
    p.add_argument("--spacing", type=float, nargs=3, help="voxel size when the file does not say")
    p.add_argument("--turntable", help="also write a GIF turning around the volume")
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--size", type=int, default=512, help="picture size in pixels")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    cli.add_debug_flag(p)
    args = p.parse_args(argv)
    return cli.run(lambda: _run(args), args.debug)


def _run(args) -> int:
    from PIL import Image

    if args.frames < 1 or args.size < 16:
        raise ValueError("--frames: expected at least 1; --size: expected at least 16 pixels")
    if args.size > MAX_SIZE:
        raise ValueError(f"--size: {args.size} pixels per side is more than VTK can render offscreen ({MAX_SIZE}); "
                         f"use a smaller --size")
    if args.spacing is not None and not all(math.isfinite(v) and v > 0 for v in args.spacing):
        raise ValueError(f"--spacing: expected three positive voxel sizes, got {' '.join(map(str, args.spacing))}")
    check_fits(4 * args.size**2 * (1 + (args.frames if args.turntable else 0)), f"--size {args.size} and --frames "
               f"{args.frames}: the pictures", "use a smaller --size or fewer --frames")
    outputs = [Path(args.out)] + ([Path(args.turntable)] if args.turntable else [])
    for path in outputs:
        if path.exists() and not args.overwrite:
            raise FileExistsError(f"{path}: already exists; pass --overwrite")
        if not path.parent.is_dir():
            raise FileNotFoundError(f"{path.parent}: output folder does not exist")
    volume, spacing, units = read_volume(args.file, args.index, args.channel)
    if spacing is not None:
        try:
            spacing = tuple(float(v) for v in np.ravel(spacing))
        except (TypeError, ValueError):
            spacing = None
        if spacing is None or len(spacing) != 3 or not all(math.isfinite(v) and v > 0 for v in spacing):
            raise ValueError(f"{args.file}: the file's voxel spacing is not three positive numbers; fix its header "
                             f"or 'spacing' attribute (render uses --spacing only when the file has none)")
    spacing = spacing if spacing is not None else (args.spacing or (1.0, 1.0, 1.0))
    kwargs = dict(mode=args.mode, spacing=spacing, iso=args.iso, units=units, window_size=(args.size, args.size))
    pictures = [Image.fromarray(render(volume, **kwargs))]
    if args.turntable:
        pictures.append([Image.fromarray(f) for f in turntable(volume, frames=args.frames, **kwargs)])
    def writer(picture):
        if isinstance(picture, list):
            return lambda p: picture[0].save(p, save_all=True, append_images=picture[1:], duration=80, loop=0)
        return lambda p: picture.save(p)

    atomic_write_all([(path, writer(picture)) for path, picture in zip(outputs, pictures)])  # all or none
    print(f"wrote {args.out}" + (f" and {args.turntable}" if args.turntable else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
