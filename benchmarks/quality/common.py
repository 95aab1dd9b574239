"""What every quality run shares: train a preset with ``--resume auto``, then turn the run folder's
``metrics.jsonl`` (G_ema evaluated every ``train.metrics_kimg`` during training) into a curve with its
real-vs-real baseline, a summary JSON and, on request, the generator as safetensors.

The run scripts next to this file call ``main(...)``; each can be rerun with one command and continues where
it stopped (the training loop's own resume), then redraws everything from the metrics file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ROOT / "docs" / "figures"
RESULTS = Path(__file__).resolve().parent / "results"


def arguments(name: str, kimg: float, doc: str, precision: bool = False, variants: bool = False):
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--out", default=f"runs/quality/{name}", help="run folder (continued with --resume auto)")
    p.add_argument("--kimg", type=float, default=kimg, help=f"training length (default {kimg:g})")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--plot-only", action="store_true", help="only redraw the curve and summary from the run folder")
    p.add_argument("--export", action="store_true", help="write the final G_ema to pretrained/ as safetensors")
    if precision:
        p.add_argument("--precision", choices=["float32", "bfloat16", "both"], default="both")
    if variants:
        p.add_argument("--only", action="append", metavar="VARIANT",
                       help="train only this variant (repeatable; e.g. one per process), draw all that exist")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="further config overrides")
    args = p.parse_args()
    args.out = str(Path(args.out).resolve())  # relative to where the script is run; training runs in the repo root
    return args


def report(name: str, curves: dict, panels, title: str, out, extra: dict):
    """The curve figure docs/figures/NAME-curve.png and the summary results/NAME.json of run folder ``out``."""
    plot(curves, panels, FIGURES / f"{name}-curve.png", title)
    return write_summary(name, out, extra)


def train(config: str, out, kimg: float, overrides=(), threads=None) -> float:
    """Run ``python -m ndgan.train`` to ``kimg`` (resuming the folder's newest checkpoint); returns seconds."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, "-m", "ndgan.train", str(ROOT / config), "--out", str(out), "--resume", "auto",
           f"train.kimg={kimg:g}", *overrides]
    print("+", " ".join(cmd[1:]), flush=True)
    start = time.time()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    return time.time() - start


def read_curve(out) -> list[dict]:
    """The metrics records of a run, one per kimg (the last one wins: a resumed run may repeat a point)."""
    records = {}
    path = Path(out) / "metrics.jsonl"
    for line in path.read_text().splitlines() if path.is_file() else ():
        if line.strip():
            r = json.loads(line)
            records[r["kimg"]] = r
    return [records[k] for k in sorted(records)]


def wall_seconds(out) -> float:
    """Training seconds from stats.jsonl (sec_per_kimg times the kimg of each log interval)."""
    total, last = 0.0, 0.0
    path = Path(out) / "stats.jsonl"
    for line in path.read_text().splitlines() if path.is_file() else ():
        r = json.loads(line)
        if "sec_per_kimg" in r:
            total += r["sec_per_kimg"] * max(r["kimg"] - last, 0)
            last = r["kimg"]
        elif "rollback" in r:
            last = r["kimg"]
    return total


def plot(curves: dict, panels, path, title: str):
    """``curves``: label -> records; ``panels``: (metric key, baseline key or None, y label, log y). One panel
    per metric, one line per curve, the baseline dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (key, base, label, logy) in zip(axes.flat, panels):
        for i, (name, records) in enumerate(curves.items()):
            points = [(r["kimg"], r["results"][key]) for r in records if r["results"].get(key) is not None]
            if points:
                ax.plot(*zip(*points), marker="o", ms=3, color=f"C{i}", label=name)
            if base:
                basis = [(r["kimg"], r["results"][base]) for r in records if r["results"].get(base) is not None]
                if basis:
                    ax.plot(*zip(*basis), ls="--", color=f"C{i}", alpha=0.6, label=f"{name}: real vs real")
        ax.set_xlabel("kimg")
        ax.set_ylabel(label)
        if logy:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def variants(config: str, base: str, variants: dict, keys, args, figure: str, title: str, panels, fixed):
    """Train each variant (name -> overrides, after the common ``fixed`` ones) of ``config`` into
    ``BASE-NAME`` (unless --plot-only), draw all
    curves on docs/figures/FIGURE-curve.png and write results/FIGURE.json with each run's ``keys`` per point."""
    unknown = sorted(set(args.only or ()) - set(variants))
    if unknown:
        raise SystemExit(f"--only {unknown[0]}: no such variant; choose from {', '.join(variants)}")
    curves, summary = {}, {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "config": config, "runs": {}}
    for name, overrides in variants.items():
        out = f"{base}-{name}"
        overrides = [*fixed, *overrides, *args.overrides]
        if not args.plot_only and (not args.only or name in args.only):
            train(config, out, args.kimg, overrides, args.threads)
        curves[name] = read_curve(out)
        summary["runs"][name] = {
            "overrides": overrides, "train_seconds": round(wall_seconds(out)),
            "curve": [{"kimg": r["kimg"], **{k: r["results"].get(k) for k in keys}} for r in curves[name]]}
    plot({k: v for k, v in curves.items() if v}, panels, FIGURES / f"{figure}-curve.png", title)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{figure}.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {RESULTS / f'{figure}.json'}")
    return summary


def machine() -> str:
    import torch

    return f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), torch {torch.__version__}"


def write_summary(name: str, out, extra: dict):
    """results/NAME.json: the last evaluation, wall time, machine and command."""
    records = read_curve(out)
    summary = {"run": name, "machine": machine(), "date": time.strftime("%Y-%m-%d"),
               "train_seconds": round(wall_seconds(out)), "last": records[-1] if records else None,
               "points": len(records), **extra}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {RESULTS / f'{name}.json'}")
    return summary


def export(out, path):
    """The run's G_ema as safetensors (python -m ndgan.export), replacing an older export."""
    subprocess.run([sys.executable, "-m", "ndgan.export", str(Path(out).resolve()), "--out", str(path), "--overwrite"], check=True,
                   cwd=ROOT)
