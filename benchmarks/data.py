"""Data-loader throughput per source: samples/s through ndgan.data.loader.make_loader.

    python benchmarks/data.py [--batch 32] [--batches 30] [--workers 0 2]

Sources: procedural 2D (128^2 x 3) and 3D (32^3 x 2); the built-in energy grids (32^3 x 2) from an HDF5
file generated into a temporary folder (gzip-compressed, chunked per sample, as written by
``python -m ndgan.data.energy``); a folder of 128^2 RGB PNGs; and NIfTI volumes of 91 x 109 x 91 at 2 mm
(MNI-sized, gzip) processed on the fly to 80 x 96 x 112 (RAS reorientation, crop/pad, percentile
normalisation; NIfTI uses batch 4, as MRI runs do). Median of three passes over --batches batches after one warm-up batch.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ndgan.data import energy
from ndgan.data.hdf5 import HDF5Dataset
from ndgan.data.images import ImageDataset
from ndgan.data.nifti import NiftiDataset
from ndgan.data.loader import make_loader
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
        import nibabel as nib
        import numpy as np
        from PIL import Image

        rng = np.random.default_rng(0)
        (Path(tmp) / "png").mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(Path(tmp) / "png" / f"{i:05d}.png")
        (Path(tmp) / "nii").mkdir()
        affine = np.diag([2.0, 2.0, 2.0, 1.0])
        for i in range(12):
            vol = rng.random((91, 109, 91), dtype=np.float32) * 1000
            nib.save(nib.Nifti1Image(vol, affine), Path(tmp) / "nii" / f"sub{i:02d}.nii.gz")
        sources = {
            "procedural 2D 128x128x3": (ProceduralDataset(2, (128, 128), 3, length=n), args.batch),
            "procedural 3D 32^3x2": (ProceduralDataset(3, (32, 32, 32), 2, length=n), args.batch),
            "hdf5 energy 32^3x2 (gzip)": (HDF5Dataset(h5), args.batch),
            "png folder 128x128x3": (ImageDataset(Path(tmp) / "png"), args.batch),
            "nifti 91x109x91 -> 80x96x112": (NiftiDataset(Path(tmp) / "nii", shape=(80, 96, 112)), 4),
        }
        print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
              f"{args.batches} batches, median of 3")
        for name, (ds, batch) in sources.items():
            batches = args.batches if batch == args.batch else 3
            for workers in args.workers:
                loader = iter(make_loader(ds, batch, workers=workers, pin_memory=False))
                next(loader)  # warm-up: workers start
                rates = []
                for _ in range(3):
                    t = time.perf_counter()
                    for _ in range(batches):
                        next(loader)
                    rates.append(batch * batches / (time.perf_counter() - t))
                print(f"{name:28s} workers={workers}  {statistics.median(rates):8.1f} samples/s", flush=True)


if __name__ == "__main__":
    main()
