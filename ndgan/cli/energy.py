"""``python -m ndgan.data.energy`` (``ndgan energy``): write the built-in energy grids to an HDF5 file."""

from __future__ import annotations

import time

from .. import cli
from ..data import energy
from ..data.energy import write_hdf5


def main(argv=None):
    p = cli.ArgumentParser(prog="python -m ndgan.data.energy", description=energy.__doc__.split("\n\n")[0],
                                epilog="Writes an HDF5 file with dataset 'data' [N, 2, S, S, S] in [-1, 1], "
                                       "'cell_edge' and 'pore_radius' [N] in Angstrom, and the mapping as attributes.")
    p.add_argument("--n", type=int, default=7000, help="number of samples (default 7000, as in the source documents)")
    p.add_argument("--size", type=int, default=32, help="grid points per cell edge, a multiple of 8 (default 32)")
    p.add_argument("--out", required=True, help="output .h5 file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    cli.add_debug_flag(p)
    args = p.parse_args(argv)
    return cli.run(lambda: _run(args), args.debug)


def _run(args) -> int:
    t = time.perf_counter()
    path = write_hdf5(args.out, args.n, args.size, args.seed, args.overwrite)
    print(f"wrote {args.n} energy grids of {args.size}^3 x 2 channels to {path} in {time.perf_counter() - t:.1f} s")
    return 0
