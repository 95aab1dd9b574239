"""python -m ndgan.generate RUN_OR_CKPT --out DIR [--n 16 | --seeds 0-15] [--truncation 0.7]
                             [--format png|nii.gz|h5|npy|cube|vti] [--per-seed] [--seed-rng torch|nvlabs]
                             [--class K | --labels FILE | --target NAME=VALUE [--filter TOL] [--strict]]
                             [--batch 8] [--device cpu] [--overwrite]

Samples from the EMA generator of a checkpoint (or a run folder's newest valid one, a safetensors export or
an NVIDIA StyleGAN2-ADA pickle), in the training data's physical units: NIfTI per sample with the data's
affine (channels as the 4th axis), one HDF5 dataset [N, C, *S] with attributes (seeds, truncation, channel
names, units, spacing, checkpoint kimg, config), one NumPy array, a PNG grid (2D images, 3D mid-slices
per channel; --per-seed: seed0042.png each), Gaussian cube files per sample and channel on the data's
periodic cell, or VTK images (.vti) for ParaView. Errors: one line, exit code 2.
"""

from __future__ import annotations

import collections
import math
import sys
from pathlib import Path

import torch

from .. import cli
from ..io.budget import check_fits
from ..io.files import atomic_write_all, output_folder
from ..sampling import (FORMATS, SEED_RNGS, achieved_properties, generate, interpolation_frames, load_generator,
                        parse_targets, style_mixing_grid, target_labels, write_samples)

MAX_SEEDS = 1_000_000  # samples per call: a range is counted before it is expanded


def parse_seeds(text: str, flag: str = "--seeds") -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7]; seeds in [0, 2**63), at most ``MAX_SEEDS`` of them."""
    ranges = []
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            lo, hi = int(lo), int(hi) if hi else int(lo)
            if hi < lo or lo < 0:
                raise ValueError
            ranges.append((lo, hi))
    except ValueError:
        raise ValueError(f"{flag}: expected non-negative numbers and increasing ranges like 0-15,20, "
                         f"got {text!r}") from None
    if any(hi >= 2**63 for _, hi in ranges):
        raise ValueError(f"{flag}: seeds must be below 2**63 (a torch seed is 64 bits), got {text!r}")
    count = sum(hi - lo + 1 for lo, hi in ranges)
    if count > MAX_SEEDS:
        raise ValueError(f"{flag}: {count} samples, more than the {MAX_SEEDS:,} one call makes; split the range "
                         f"into several calls")
    return [s for lo, hi in ranges for s in range(lo, hi + 1)]


def main(argv=None) -> int:
    p = cli.ArgumentParser(prog="python -m ndgan.generate", description=__doc__.split("\n\n")[1].strip())
    p.add_argument("source", metavar="RUN_OR_CKPT", help="checkpoint file or run folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n", type=int, default=16, help="number of samples (seeds 0..n-1) unless --seeds is given")
    p.add_argument("--seeds", help="seeds, e.g. 0-15 or 3,7,11")
    p.add_argument("--truncation", type=float, default=1.0, help="truncation psi (1: none)")
    p.add_argument("--format", default="png", choices=FORMATS)
    p.add_argument("--per-seed", action="store_true", help="PNG: one picture per seed (seed0042.png), not a grid")
    p.add_argument("--seed-rng", default="torch", choices=SEED_RNGS,
                   help="how a seed becomes z: torch (ndgan's), or nvlabs (NVIDIA generate.py's NumPy draw)")
    p.add_argument("--class", dest="class_index", type=int, metavar="K", help="conditional models: class K for all")
    p.add_argument("--labels", metavar="FILE", help="conditional models: one label vector per seed (.npy or text, "
                   "[N, c_dim])")
    p.add_argument("--target", action="append", metavar="NAME=VALUE",
                   help="models trained on computed labels (data.options.labels): generate at this property, e.g. "
                        "heat_of_adsorption=25 (kJ/mol); each sample's property is then measured and reported")
    p.add_argument("--filter", type=float, metavar="TOL", help="with --target: keep only the samples whose "
                   "measured properties lie within TOL of the targets")
    p.add_argument("--strict", action="store_true", help="with --target: a target outside the training labels' "
                   "range is an error, not a warning")
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
    if not math.isfinite(args.truncation):
        raise ValueError(f"--truncation: expected a finite number (1: no truncation), got {args.truncation}")
    if not 2 <= args.frames <= 1000:
        raise ValueError(f"--frames: expected 2 to 1000 frames, got {args.frames}")
    if args.n > MAX_SEEDS and not args.seeds:
        raise ValueError(f"--n: {args.n} samples, more than the {MAX_SEEDS:,} one call makes; use several calls "
                         f"with --seeds ranges")
    seeds = parse_seeds(args.seeds) if args.seeds else list(range(args.n))
    repeated = sorted(s for s, k in collections.Counter(seeds).items() if k > 1)
    if repeated:
        raise ValueError(f"--seeds: {repeated[0]} is given more than once; a seed always gives the same sample")
    G = load_generator(args.source, args.device)
    targets = parse_targets(args.target) if args.target else None
    if targets is None and (args.filter is not None or args.strict):
        raise ValueError("--filter and --strict: options of --target NAME=VALUE")
    if args.filter is not None and not (math.isfinite(args.filter) and args.filter > 0):
        raise ValueError(f"--filter: expected a positive tolerance in the label's units, got {args.filter}")
    if targets is not None:
        if args.class_index is not None or args.labels:
            raise ValueError("--target: give it instead of --class or --labels, not with them")
        c, warnings = target_labels(G, targets, len(seeds), args.strict)
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
    else:
        c = labels(G, args.class_index, args.labels, len(seeds))
    if args.style_mixing or args.interpolate:
        if G.c_dim:
            raise ValueError("--style-mixing / --interpolate: this generator is conditional; the figures are made "
                             "for unconditional ones")
        return _figures(G, args, seeds)
    check_fits(2 * len(seeds) * G.channels * math.prod(G.shape) * 4, f"{'--seeds' if args.seeds else '--n'}: "
               f"{len(seeds)} samples of {[G.channels, *G.shape]}", "generate fewer per call")
    x = generate(G, seeds, args.truncation, args.batch, c=c, seed_rng=args.seed_rng)
    if not torch.isfinite(x).all():  # e.g. weights that overflow: never written as if they were samples
        raise ValueError(f"{args.source}: the generator made non-finite samples (NaN or Inf) with these seeds; "
                         f"nothing was written; its weights are broken: use an earlier checkpoint")
    attrs = None
    if targets is not None:
        x, seeds, attrs = _report_targets(G, x, seeds, targets, args.filter)
    paths, notes = write_samples(x, G, seeds, args.out, args.format, args.truncation, args.overwrite, args.per_seed,
                                 attrs)
    for note in notes:
        print(f"note: {note}")
    print(f"wrote {len(seeds)} samples ({args.format}) from {args.source} ({G.kimg:g} kimg) to "
          f"{paths[0] if len(paths) == 1 else args.out}")
    return 0


def _report_targets(G, x, seeds, targets, tolerance):
    """Measure every sample's label properties, print target against achieved (mean, spread), keep those within
    ``tolerance`` (``--filter``); returns (samples, seeds, HDF5 attributes)."""
    names, units = G.metadata["label_names"], G.metadata["label_units"]
    achieved = achieved_properties(G, x)  # [N, L]
    want = torch.tensor([targets[n] for n in names], dtype=torch.float64)
    keep = torch.ones(len(x), dtype=torch.bool)
    if tolerance is not None and len(names) > 1:
        raise ValueError(f"--filter: one tolerance cannot serve the labels {names} in their different units; "
                         f"use it with a one-label model, or filter the HDF5 output's achieved_* attributes")
    if tolerance is not None:
        keep = ((achieved - want).abs() <= tolerance).all(1)
        if not keep.any():
            raise ValueError(f"--filter {tolerance:g}: none of the {len(x)} samples lies within it of the targets "
                             f"(achieved {achieved.mean(0).tolist()}); nothing was written; generate more (--n) or "
                             f"widen the tolerance")
    attrs = {}
    for i, (name, unit) in enumerate(zip(names, units)):
        values = achieved[:, i]
        print(f"{name}: target {targets[name]:g} {unit}, achieved {values.mean():.4g} +- {values.std():.2g} "
              f"(mean +- std over {len(x)} samples)"
              + (f"; {int(keep.sum())} within {tolerance:g} kept" if tolerance is not None else ""))
        kept = values[keep]  # what is written: the kept samples' values, mean and spread
        attrs.update({f"target_{name}": targets[name], f"achieved_mean_{name}": float(kept.mean()),
                      f"achieved_std_{name}": float(kept.std()) if len(kept) > 1 else 0.0,
                      f"achieved_{name}": kept.numpy()})
    if tolerance is not None:
        attrs["filter_tolerance"] = tolerance
    index = keep.nonzero()[:, 0]
    return x[index], [seeds[i] for i in index.tolist()], attrs


def labels(G, class_index, path, n: int):
    """The ``[n, c_dim]`` labels of ``--class K`` (one-hot) or ``--labels FILE``; None for an unconditional
    generator (which refuses both)."""
    if not G.c_dim:
        if class_index is not None or path:
            raise ValueError(f"--{'class' if class_index is not None else 'labels'}: this generator is unconditional "
                             f"(c_dim 0); drop the flag")
        return None
    if class_index is not None and path:
        raise ValueError("--class and --labels: give one of them")
    if class_index is not None:
        if not 0 <= class_index < G.c_dim:
            raise ValueError(f"--class: {class_index} is not a class of this generator; expected 0 to {G.c_dim - 1}")
        return torch.nn.functional.one_hot(torch.full([n], class_index), G.c_dim).float()
    if not path:
        raise ValueError(f"this generator is conditional (c_dim {G.c_dim}); pass --class K (0 to {G.c_dim - 1}) or "
                         f"--labels FILE with one label vector per seed")
    import numpy as np

    from ..io.files import load_npy

    try:
        values = load_npy(path) if str(path).endswith(".npy") else np.loadtxt(path, ndmin=2)
        values = np.asarray(values, dtype=np.float32)
    except ValueError as e:
        raise ValueError(f"--labels {path}: not a table of numbers ({str(e).splitlines()[0][:80]})") from None
    if values.shape != (n, G.c_dim):
        raise ValueError(f"--labels {path}: holds shape {values.shape}, expected [{n}, {G.c_dim}] (one label "
                         f"vector of c_dim {G.c_dim} per seed)")
    if not np.isfinite(values).all():
        raise ValueError(f"--labels {path}: holds NaN or Inf")
    return torch.from_numpy(values)


def _figures(G, args, seeds) -> int:
    """Style-mixing grid and/or interpolation GIF (instead of the per-sample export)."""
    from PIL import Image

    out = Path(args.out)
    targets = ([out / "style_mixing.png"] if args.style_mixing else []) + \
              ([out / "interpolation.gif"] if args.interpolate else [])
    existing = [t for t in targets if t.exists()]
    if existing and not args.overwrite:
        raise FileExistsError(f"{existing[0]}: already exists; pass --overwrite or choose another --out")
    layers = parse_seeds(args.mix_layers) if args.mix_layers else None
    cols = parse_seeds(args.style_mixing) if args.style_mixing else None
    ends = parse_seeds(args.interpolate) if args.interpolate else None
    if ends is not None and len(ends) != 2:
        raise ValueError(f"--interpolate: expected two seeds A,B, got {args.interpolate!r}")
    pictures = []  # (target, write(path)): everything computed before anything is written
    if cols is not None:
        grid = Image.fromarray(style_mixing_grid(G, seeds, cols, layers, args.truncation))
        pictures.append((out / "style_mixing.png", lambda p: grid.save(p)))
    if ends is not None:
        frames = [Image.fromarray(f) for f in interpolation_frames(G, ends[0], ends[1], args.frames, args.truncation)]
        pictures.append((out / "interpolation.gif",
                         lambda p: frames[0].save(p, save_all=True, append_images=frames[1:], duration=100, loop=0)))
    with output_folder(out):
        written = atomic_write_all(pictures)  # both figures, or neither
    print("wrote " + ", ".join(map(str, written)))
    return 0

