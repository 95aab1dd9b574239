"""Data-loader throughput per source: samples/s through ndgan.data.loader.make_loader.

    python benchmarks/data.py [--batch 32] [--batches 30] [--workers 0 2]

Sources: procedural 2D (128^2 x 3) and 3D (32^3 x 2), and the built-in energy grids (32^3 x 2) from an HDF5
file generated into a temporary folder (gzip-compressed, chunked per sample, as written by
``python -m ndgan.data.energy``). Median of three passes over --batches batches after one warm-up batch.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ndgan.data import energy
from ndgan.data.hdf5 import HDF5Dataset
from ndgan.data.loader import infinite, make_loader
from ndgan.data.procedural import ProceduralDataset


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        n = args.batch * (args.batches + 2)
        h5 = energy.write_hdf5(Path(tmp) / "energy.h5", n, size=32)
        sources = {
            "procedural 2D 128x128x3": ProceduralDataset(2, (128, 128), 3, length=n),
            "procedural 3D 32^3x2": ProceduralDataset(3, (32, 32, 32), 2, length=n),
            "hdf5 energy 32^3x2 (gzip)": HDF5Dataset(h5),
        }
        print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
              f"{args.batches} batches, median of 3")
        for name, ds in sources.items():
            for workers in args.workers:
                loader = infinite(make_loader(ds, args.batch, workers=workers, pin_memory=False))
                next(loader)  # warm-up: workers start
                rates = []
                for _ in range(3):
                    t = time.perf_counter()
                    for _ in range(args.batches):
                        next(loader)
                    rates.append(args.batch * args.batches / (time.perf_counter() - t))
                print(f"{name:28s} workers={workers}  {statistics.median(rates):8.1f} samples/s", flush=True)


if __name__ == "__main__":
    main()
