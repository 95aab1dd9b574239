"""Time full training iterations of a config: python -m ndgan.bench CONFIG [KEY=VALUE ...] [--steps N]

Runs the real training loop (D main, lazy R1, G main, lazy path length, EMA) in a temporary folder and reads
its stats: every interval is 16 steps, a multiple of the default lazy-regularisation intervals, so their cost
is amortised exactly; the first interval is warm-up. Prints the median samples/s and sec/kimg over the timed
intervals, and the peak memory (CUDA: max allocated; CPU: max RSS of this process).
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import tempfile
from pathlib import Path

import torch
from . import cli

from .train.config import load_config
from .train.loop import train

INTERVAL = 16


def main(argv=None) -> int:
    p = cli.ArgumentParser(prog="python -m ndgan.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("config")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--device", default=None, help="cpu | cuda (default: the config's train.device)")
    p.add_argument("--intervals", type=int, default=3, help=f"timed intervals of {INTERVAL} steps (default 3)")
    cli.add_debug_flag(p)
    args = p.parse_intermixed_args(argv)
    return cli.run(lambda: _run(args), args.debug)


def _run(args) -> int:
    base = load_config(args.config, args.overrides)
    batch = base.train.batch
    steps = INTERVAL * (args.intervals + 1)
    overrides = list(args.overrides) + [
        f"train.kimg={steps * batch / 1000}", f"train.log_steps={INTERVAL}",
        f"train.snapshot_kimg={10 * steps * batch / 1000}", "train.keep_checkpoints=1",
        "train.metrics=[]"]  # training speed only (benchmarks/metrics.py times the metrics)
    if args.device:
        overrides.append(f"train.device={args.device}")
    cfg = load_config(args.config, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        train(cfg, Path(tmp) / "run")
        stats = [json.loads(line) for line in (Path(tmp) / "run" / "stats.jsonl").read_text().splitlines()]
    timed = [s["sec_per_kimg"] for s in stats[1:]] or [stats[0]["sec_per_kimg"]]
    sec_per_kimg = statistics.median(timed)
    device = cfg.train.device if cfg.train.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        peak = f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB CUDA max allocated"
    else:
        peak = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB max RSS"
    print(f"{args.config} {' '.join(args.overrides)}".strip())
    print(f"  torch {torch.__version__}, {device}, batch {batch}, {len(timed)} x {INTERVAL} steps after warm-up")
    print(f"  {1000 / sec_per_kimg:.2f} samples/s   {sec_per_kimg:.1f} sec/kimg   peak {peak}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
