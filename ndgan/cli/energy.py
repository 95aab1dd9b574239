"""``python -m ndgan.data.energy`` (``ndgan energy``): write the built-in energy grids to an HDF5 file."""

from __future__ import annotations

import time

from .. import cli
from ..data import energy
from ..data.energy import write_hdf5


def main(argv=None):
    p = cli.ArgumentParser(prog="python -m ndgan.data.energy", description=energy.__doc__.split("\n\n")[0],
                                epilog="Writes an HDF5 file with dataset 'data' [N, 2, S, S, S] in [-1, 1], "
                                       "'cell_edge' and 'pore_radius' [N] in Angstrom, and the mapping as attributes; "
                                       "with --cif, 'data' [N, 1, S, S, S] of real frameworks, 'cell' [N, 3, 3] "
                                       "and 'name' [N].")
    p.add_argument("--n", type=int, help="number of built-in cells (default 7000, as in the source documents)")
    p.add_argument("--size", type=int, default=32, help="grid points per cell edge; a multiple of 8 for the "
                                                        "built-in cells (default 32)")
    p.add_argument("--out", required=True, help="output .h5 file")
    p.add_argument("--seed", type=int, help="seed of the built-in cells (default 0)")
    p.add_argument("--cif", nargs="+", metavar="FOLDER_OR_FILE",
                   help="real frameworks instead of the built-in cells: CIF files, or folders of them "
                        "(needs gemmi: pip install 'ndgan[materials]')")
    p.add_argument("--params", help="with --cif: YAML or JSON file of probe pair parameters, element: "
                                    "[epsilon_K, sigma_A], in place of the defaults (ndgan.data.frameworks)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    cli.add_debug_flag(p)
    args = p.parse_args(argv)
    return cli.run(lambda: _run(args), args.debug)


def _run(args) -> int:
    t = time.perf_counter()
    if args.cif:
        if args.n is not None or args.seed is not None:
            raise ValueError("--n and --seed: options of the built-in cells; --cif computes one grid per framework")
        from ..data import frameworks

        path = frameworks.write_hdf5(args.cif, args.out, args.size, args.params, args.overwrite)
        import h5py

        with h5py.File(path) as h5:
            n = h5["data"].shape[0]
        print(f"wrote the energy grids of {n} frameworks, {args.size}^3 x 1 channel, to {path} in "
              f"{time.perf_counter() - t:.1f} s")
        return 0
    if args.params:
        raise ValueError("--params: pair parameters of real frameworks; pass it with --cif")
    n, seed = 7000 if args.n is None else args.n, 0 if args.seed is None else args.seed
    path = write_hdf5(args.out, n, args.size, seed, args.overwrite)
    print(f"wrote {n} energy grids of {args.size}^3 x 2 channels to {path} in {time.perf_counter() - t:.1f} s")
    return 0
