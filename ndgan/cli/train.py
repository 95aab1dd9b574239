"""python -m ndgan.train CONFIG.yaml [KEY=VALUE ...] [--out RUN_DIR] [--resume auto|PATH]"""

from __future__ import annotations

from pathlib import Path
from .. import cli
from ..train.config import load_config


def main(argv=None) -> int:
    p = cli.ArgumentParser(
        prog="python -m ndgan.train",
        description="Train a StyleGAN2 generator on images or volumes.",
        epilog="Overrides are dotted config keys with YAML values, e.g. train.kimg=50 train.batch=16 "
               "data.path=/data/ffhq.zip G.w_dim=256. Multi-GPU: torchrun --nproc_per_node N -m ndgan.train CONFIG.")
    p.add_argument("config", help="YAML config file (see configs/)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--out", help="run folder (default: runs/<config name>)")
    p.add_argument("--resume", help="'auto' (newest valid checkpoint in the run folder) or a checkpoint path")
    p.add_argument("--init", metavar="MODEL", help="start a new run from a model's weights: an ndgan checkpoint or "
                   "run folder, a StyleGAN2-ADA .pkl or a .safetensors export (counters, optimisers, ADA fresh)")
    p.add_argument("--overwrite", action="store_true", help="train into a non-empty --out that is not an ndgan "
                                                             "run folder (its config.yaml is replaced)")
    cli.add_debug_flag(p)
    args = p.parse_intermixed_args(argv)  # overrides may come after --out
    return cli.run(lambda: _run(args), args.debug)


def _run(args) -> int:
    cfg = load_config(args.config, args.overrides)
    from ..train.loop import train

    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    train(cfg, out, args.resume, overwrite=args.overwrite, init=args.init)
    print(f"done: {out}")
    return 0

