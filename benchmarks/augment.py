"""Augmentation throughput: ``ndgan.augment.augment`` at p = 1 (every op acting on every sample), forward and
forward + backward, in samples per second, with peak memory.

    python benchmarks/augment.py [--device cpu|cuda] [--batch 32] [--reps 5]

Cases: 2D 128^2 RGB with the ffhq2d ops (flip, translate, scale, brightness, contrast, color) and 3D 32^3 x 2
with the energy3d ops (flip, rot90, translate; periodic) and with every non-colour op. Median of --reps after
one warm-up.
"""

import argparse

import torch
from timing import peak_memory, timed

from ndgan.augment import augment

CASES = [
    ("2D 128^2 x 3, ffhq2d ops", (3, 128, 128), ("flip", "translate", "scale", "brightness", "contrast", "color"), False),
    ("3D 32^3 x 2, energy3d ops (periodic)", (2, 32, 32, 32), ("flip", "rot90", "translate"), True),
    ("3D 32^3 x 2, all non-colour ops", (2, 32, 32, 32),
     ("flip", "rot90", "translate", "scale", "rotate", "brightness", "contrast", "cutout"), False),
]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, batch {args.batch}")
    for name, shape, ops, periodic in CASES:
        x = torch.rand(args.batch, *shape, device=device) * 2 - 1

        def forward():
            with torch.no_grad():
                augment(x, 1.0, ops, periodic=periodic)

        def backward():
            v = x.clone().requires_grad_(True)
            augment(v, 1.0, ops, periodic=periodic).square().sum().backward()

        fwd, bwd = timed(forward, args.reps, device), timed(backward, args.reps, device)
        print(f"{name:45s} forward {args.batch / fwd:8.1f} samples/s   forward+backward {args.batch / bwd:8.1f} samples/s")
    print(f"peak memory: {peak_memory(device)}")


if __name__ == "__main__":
    main()
