"""Quality run: the StyleGAN2 paper's ablation ladder (table 1), configs A to F and "A with large networks"
(configs/ablation/*.yaml), on the workloads this machine can train: the digits (32², 1 channel) and the
energy grids at 16³ (2 channels, periodic).

    python benchmarks/quality/ablation.py [--workload digits|energy16] [--kimg K] [--only A] [--threads 1]
                                          [--plot-only] [KEY=VALUE ...]

Each config trains into runs/quality/ablation-<workload>-<config> with --resume auto, with the workload's data,
learning rates and R1 weight (the presets keep what the table changes: style block, growing, laziness, path
length, architectures, width). The networks are the workload's presets' width (configs/digits2d.yaml,
configs/energy16.yaml) for A to E, and twice its channel base for F and A-large, as the paper doubles F's.
Growing holds the base level for ``fade`` kimg, then fades each new level in over ``fade`` kimg and holds it
as long; the top level is complete at ``2 * (levels - 1) * fade`` kimg (digits: 4 levels, 12 of 20 kimg;
energy16: 3 levels, 2 of 4 kimg) and trains on to ``--kimg``.

G_ema is evaluated during training; the table takes the last point: digits: Fréchet distance in the shipped
digit classifier's features, path length (PPL, in those features) and precision/recall (k = 3, same features);
energy16: the W1 distance of the Henry coefficient, next to its real-vs-real split (3D has no feature network,
so no PPL or precision/recall). Writes docs/figures/ablation-<workload>-curve.png, the last sample grid of each config side by side
(docs/figures/ablation-<workload>-samples.png),
benchmarks/quality/results/ablation-<workload>.json and the table benchmarks/quality/results/ablation-<workload>.md.
"""

from __future__ import annotations

import json
import time

import common

CONFIGS = ("A", "B", "C", "D", "E", "F", "A-large")
ROWS = {"A": "A Baseline StyleGAN", "B": "B + Weight demodulation", "C": "C + Lazy regularization",
        "D": "D + Path length regularization", "E": "E + No growing, new G & D arch.",
        "F": "F + Large networks (StyleGAN2)", "A-large": "Config A with large networks"}
#: The paper's FFHQ 1024² column (FID, path length, precision, recall), as the source slides give it.
PAPER_FFHQ = {"A": (4.40, 212.1, 0.721, 0.399), "B": (4.39, 175.4, 0.702, 0.425), "C": (4.38, 158.0, 0.719, 0.427),
              "D": (4.34, 122.5, 0.715, 0.418), "E": (3.31, 124.5, 0.705, 0.449), "F": (2.84, 145.0, 0.689, 0.492),
              "A-large": (3.98, 199.2, 0.716, 0.422)}
LARGE = ("F", "A-large")

WORKLOADS = {
    "digits": dict(
        kimg=20, fade=2, base=2048, metrics_kimg=5, keys=("fid", "ppl", "precision", "recall"),
        distance=("fid", "fid_baseline", "Fréchet distance (classifier features)"),
        overrides=["data.source=digits", "data.shape=[32,32]", "data.channels=1", "data.periodic=false",
                   "data.options={}", "G.mapping_layers=2", "G.channel_max=128", "D.channel_max=128",
                   "D.mbstd_group_size=32", "train.batch=32", "train.g_lr=0.001", "train.d_lr=0.001",
                   "train.r1_gamma=8", "train.metrics=[fid,pr,ppl]", "metrics.num_gen=1797",
                   "metrics.ppl_samples=500", "metrics.features=pretrained/digits-classifier.safetensors"]),
    "energy16": dict(
        kimg=4, fade=0.5, base=512, metrics_kimg=2, keys=("energy_log10_henry_w1", "energy_heat_kj_mol_w1", "msssim"),
        distance=("energy_log10_henry_w1", "energy_log10_henry_w1_baseline", "W1 log10 Henry coefficient"),
        overrides=["data.source=energy", "data.path=data/energy16.h5", "data.shape=[16,16,16]", "data.channels=2",
                   "data.periodic=true", "data.options={n: 7000, size: 16, seed: 0}", "G.mapping_layers=2",
                   "G.channel_max=128", "D.channel_max=128", "D.mbstd_group_size=32", "train.batch=32",
                   "train.r1_gamma=0.0256", "train.metrics=[energy,msssim]", "metrics.num_gen=1000",
                   "metrics.real_path=data/energy16-heldout.h5", "metrics.real_options={n: 2000, seed: 1}"]),
}


def overrides_for(name: str, config: str, kimg: float, extra=()) -> list[str]:
    w = WORKLOADS[name]
    base = w["base"] * (2 if config in LARGE else 1)
    return [*w["overrides"], f"G.channel_base={base}", f"D.channel_base={base}", f"train.fade_kimg={w['fade']}",
            f"train.stable_kimg={w['fade']}", f"train.metrics_kimg={w['metrics_kimg']}",
            f"train.snapshot_kimg={w['metrics_kimg']}", "train.keep_checkpoints=2", "train.precision=bfloat16",
            *extra]


def table(name: str, last: dict, seconds: dict) -> str:
    """The paper's layout: one row per config, this workload's columns (each with its real-vs-real value in
    brackets where the metric has one) and the training time, next to the paper's FFHQ numbers."""
    w = WORKLOADS[name]
    cols = [w["distance"][0], *[k for k in w["keys"] if k != w["distance"][0]]]
    lines = [f"| Configuration | {' | '.join(cols)} | minutes | FFHQ FID | FFHQ path length | FFHQ precision | "
             f"FFHQ recall |", "| --- |" + " ---: |" * (len(cols) + 5)]
    for config in CONFIGS:
        r = last.get(config) or {}
        cells = []
        for k in cols:
            base = next((r[b] for b in (f"{k}_baseline", f"{k}_real") if r.get(b) is not None), None)
            cells.append("–" if r.get(k) is None else f"{r[k]:.4g}" + ("" if base is None else f" ({base:.3g})"))
        paper = " | ".join(f"{v:g}" for v in PAPER_FFHQ[config])
        lines.append(f"| {ROWS[config]} | {' | '.join(cells)} | {seconds.get(config, 0) / 60:.0f} | {paper} |")
    return "\n".join(lines) + "\n"


def samples_figure(base: str, path) -> None:
    """The last snapshot grid of every config (G_ema, fixed latents), side by side under its config's name."""
    from pathlib import Path

    from PIL import Image, ImageDraw

    grids = {}
    for config in CONFIGS:
        found = sorted(Path(f"{base}-{config}").glob("samples-*.png"))
        if found:
            grids[config] = Image.open(found[-1]).convert("L")
    if not grids:
        return
    w, h = max(g.width for g in grids.values()), max(g.height for g in grids.values())
    sheet = Image.new("L", (len(grids) * (w + 8), h + 20), 255)
    draw = ImageDraw.Draw(sheet)
    for i, (config, grid) in enumerate(grids.items()):
        sheet.paste(grid, (i * (w + 8), 20))
        draw.text((i * (w + 8) + 4, 4), config, fill=0)
    sheet.save(path)
    print(f"wrote {path}")


def keys_of(name: str) -> tuple:
    """Every result key the summary keeps: the columns and their real-vs-real values."""
    return tuple(f"{k}{suffix}" for k in WORKLOADS[name]["keys"] for suffix in ("", "_baseline", "_real"))


if __name__ == "__main__":
    import argparse
    import sys

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--workload", choices=list(WORKLOADS), default="digits")
    known, rest = pre.parse_known_args()
    sys.argv = [sys.argv[0], *rest]
    name = known.workload
    args = common.arguments(f"ablation-{name}", WORKLOADS[name]["kimg"], __doc__, variants=True)
    unknown = sorted(set(args.only or ()) - set(CONFIGS))
    if unknown:
        raise SystemExit(f"--only {unknown[0]}: no such config; choose from {', '.join(CONFIGS)}")
    base = args.out
    curves, summary = {}, {"machine": common.machine(), "date": time.strftime("%Y-%m-%d"), "workload": name,
                           "kimg": args.kimg, "command": f"python benchmarks/quality/ablation.py --workload {name}",
                           "runs": {}}
    keys = keys_of(name)
    for config in CONFIGS:
        out = f"{base}-{config}"
        overrides = overrides_for(name, config, args.kimg, args.overrides)
        if not args.plot_only and (not args.only or config in args.only):
            common.train(f"configs/ablation/{config}.yaml", out, args.kimg, overrides, args.threads)
        curves[config] = common.read_curve(out)
        summary["runs"][config] = {
            "config": f"configs/ablation/{config}.yaml", "overrides": overrides,
            "train_seconds": round(common.wall_seconds(out)),
            "curve": [{"kimg": r["kimg"], **{k: r["results"].get(k) for k in keys}} for r in curves[config]]}
    last = {c: (runs["curve"][-1] if runs["curve"] else None) for c, runs in summary["runs"].items()}
    panels = [(*WORKLOADS[name]["distance"][:2], WORKLOADS[name]["distance"][2], True),
              *[(k, None, k, False) for k in WORKLOADS[name]["keys"] if k != WORKLOADS[name]["distance"][0]]]
    common.plot({c: v for c, v in curves.items() if v}, panels, common.FIGURES / f"ablation-{name}-curve.png",
                f"StyleGAN2's ablation ladder on {name}, {args.kimg:g} kimg per config (dashed: real vs real)")
    samples_figure(base, common.FIGURES / f"ablation-{name}-samples.png")
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    (common.RESULTS / f"ablation-{name}.json").write_text(json.dumps(summary, indent=1) + "\n")
    seconds = {c: runs["train_seconds"] for c, runs in summary["runs"].items()}
    (common.RESULTS / f"ablation-{name}.md").write_text(table(name, last, seconds))
    print(table(name, last, seconds))
