"""python -m ndgan.generate RUN_OR_CKPT --out DIR [--n 16 | --seeds 0-15] [--truncation 0.7]
                             [--format png|nii.gz|h5|npy] [--batch 8] [--device cpu] [--overwrite]

Samples from the EMA generator of a checkpoint (or a run folder's newest valid one), in the training data's
physical units: NIfTI per sample with the data's affine (channels as the 4th axis), one HDF5 dataset
[N, C, *S] with attributes (seeds, truncation, channel names, units, spacing, checkpoint kimg, config), one
NumPy array, or a PNG grid (2D images, 3D mid-slices per channel). Errors: one line, exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from . import cli
from .export import FORMATS, export, generate, interpolation_frames, load_generator, parse_seeds, style_mixing_grid


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ndgan.generate", description=__doc__.split("\n\n")[1].strip())
    p.add_argument("source", metavar="RUN_OR_CKPT", help="checkpoint file or run folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n", type=int, default=16, help="number of samples (seeds 0..n-1) unless --seeds is given")
    p.add_argument("--seeds", help="seeds, e.g. 0-15 or 3,7,11")
    p.add_argument("--truncation", type=float, default=1.0, help="truncation psi (1: none)")
    p.add_argument("--format", default="png", choices=FORMATS)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--style-mixing", metavar="COL_SEEDS", help="write style_mixing.png: --seeds are the rows, "
                   "these seeds the columns (e.g. 10-14)")
    p.add_argument("--mix-layers", help="ws taken from the column seeds (default: the coarse first half), e.g. 0-3")
    p.add_argument("--interpolate", metavar="SEED_A,SEED_B", help="write interpolation.gif from one latent to another")
    p.add_argument("--frames", type=int, default=16, help="frames of the interpolation")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    cli.add_debug_flag(p)
    args = p.parse_args(argv)
    return cli.run(lambda: _run(args), args.debug)


def _run(args) -> int:
    if args.n < 1 or args.batch < 1:
        raise ValueError("--n and --batch: expected positive numbers")
    seeds = parse_seeds(args.seeds) if args.seeds else list(range(args.n))
    G = load_generator(args.source, args.device)
    if G.c_dim:
        raise ValueError("this generator is conditional; class-conditional sampling from the CLI is not "
                         "supported yet (use ndgan.export.generate with labels c)")
    if args.style_mixing or args.interpolate:
        return _figures(G, args, seeds)
    x = generate(G, seeds, args.truncation, args.batch)
    paths, notes = export(x, G, seeds, args.out, args.format, args.truncation, args.overwrite)
    for note in notes:
        print(f"note: {note}")
    print(f"wrote {len(seeds)} samples ({args.format}) from {args.source} ({G.kimg:g} kimg) to "
          f"{paths[0] if len(paths) == 1 else args.out}")
    return 0


def _figures(G, args, seeds) -> int:
    """Style-mixing grid and/or interpolation GIF (instead of the per-sample export)."""
    from pathlib import Path

    from PIL import Image

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if args.style_mixing:
        layers = parse_seeds(args.mix_layers) if args.mix_layers else None
        target = out / "style_mixing.png"
        if target.exists() and not args.overwrite:
            raise FileExistsError(f"{target}: already exists; pass --overwrite or choose another --out")
        grid = style_mixing_grid(G, seeds, parse_seeds(args.style_mixing), layers, args.truncation)
        Image.fromarray(grid).save(target)
        written.append(target)
    if args.interpolate:
        ends = parse_seeds(args.interpolate)
        if len(ends) != 2:
            raise ValueError(f"--interpolate: expected two seeds A,B, got {args.interpolate!r}")
        target = out / "interpolation.gif"
        if target.exists() and not args.overwrite:
            raise FileExistsError(f"{target}: already exists; pass --overwrite or choose another --out")
        frames = [Image.fromarray(f) for f in interpolation_frames(G, ends[0], ends[1], args.frames, args.truncation)]
        frames[0].save(target, save_all=True, append_images=frames[1:], duration=100, loop=0)
        written.append(target)
    print("wrote " + ", ".join(map(str, written)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
