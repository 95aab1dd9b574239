"""``python -m ndgan.data.convert`` (``ndgan convert``): an image folder/zip, NIfTI folder/glob/CSV or .npy
stack into one HDF5 file, with a validation report."""

from __future__ import annotations

from .. import cli
from ..data import convert as convert_module
from ..data.convert import convert


def main(argv=None):
    p = cli.ArgumentParser(prog="python -m ndgan.data.convert", description=convert_module.__doc__.split("\n\n")[0])
    p.add_argument("src", help="image folder or .zip, NIfTI folder / glob / CSV, or .npy stack")
    p.add_argument("--out", required=True, help="output .h5 file")
    p.add_argument("--shape", type=int, nargs="+", help="target shape: H W for images, D H W for NIfTI")
    p.add_argument("--spacing", type=float, nargs=3, help="NIfTI: resample to this voxel size in mm")
    p.add_argument("--channels", type=int, help="images: convert to 1, 3 or 4 channels")
    p.add_argument("--patterns", nargs="+", help="NIfTI: one glob per channel with one '*' for the subject id")
    p.add_argument("--spatial-dims", type=int, help=".npy: number of spatial axes (default ndim - 2)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    cli.add_debug_flag(p)
    args = p.parse_args(argv)
    return cli.run(lambda: _run(args), args.debug)


def _run(args) -> int:
    report = convert(args.src, args.out, args.shape, args.spacing, args.channels, args.patterns,
                     args.spatial_dims, args.overwrite)
    print(f"converted {report['source']} -> {report['out']}")
    print(f"  written: {report['written']} samples of {report['channels']} x {' x '.join(map(str, report['shape']))}")
    print(f"  values: [{report['values'][0]:.4g}, {report['values'][1]:.4g}]")
    print(f"  rejected: {len(report['rejected'])}")
    for name, why in report["rejected"]:
        print(f"    {name}: {why}")
    return 0
