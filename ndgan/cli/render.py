"""python -m ndgan.render FILE --out IMAGE.png [--mode volume|isosurface|slices] [--channel K] [--index N]
                           [--iso VALUE] [--spacing DX DY DZ] [--turntable OUT.gif] [--frames 24]

Renders one channel of one volume from a .nii/.nii.gz (4th axis = channels), .h5 (dataset 'data'
[N, C, D, H, W] or [N, D, H, W]) or .npy file, off-screen (no display needed), in world-space proportions:
spacing from the NIfTI header or the HDF5 'spacing' attribute, else --spacing, else 1. Errors: one line,
exit code 2.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from .. import cli
from ..io.budget import check_fits
from ..io.files import atomic_write_all
from ..io.volumes import read_sample
from ..viz.render import MODES, render, turntable


RENDER_COPIES = 4  # float32 copies of a volume a render holds at once (ours, pyvista's, VTK's)
MAX_SIZE = 16384  # pixels per side: the largest offscreen framebuffer VTK's OpenGL backends allow


def _check_render_fits(shape, path) -> None:
    """Before a volume (or a sample of ``shape`` [C, D, H, W] / [D, H, W]) is read: its render must fit."""
    check_fits(RENDER_COPIES * 4 * int(np.prod(shape, dtype=object)), f"{path}: rendering a volume of "
               f"{tuple(int(n) for n in shape)}", "crop or downsample it first")


def read_volume(path, index=0, channel=0):
    """(3D array, spacing, units) of sample ``index``, channel ``channel`` of a NIfTI, HDF5 or NumPy file; the
    render's memory is checked before the sample is read."""
    sample, spacing, units = read_sample(path, index, 3, check=lambda shape: _check_render_fits(shape, path))
    if not 0 <= channel < sample.shape[0]:
        raise ValueError(f"--channel: {channel} is out of range for {sample.shape[0]} channels in {path}")
    volume = sample[channel]
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

