"""Quality run: configs/energy8cond.yaml, generation at a target void fraction (8^3 built-in cells).

    python benchmarks/quality/energy8cond.py [--kimg 120] [--out runs/quality/energy8cond] [--label void_fraction]

Trains with --resume auto (rerun to continue), keeping every snapshot; then, for every checkpoint's G_ema,
generates 256 cells at each of five targets spread over the training labels' range and measures each cell's
property with the physics the labels were computed with. Writes benchmarks/quality/results/energy8cond.json
(target, achieved mean and spread, per checkpoint), docs/figures/energy8cond-targets.png and, with --export,
pretrained/energy8cond.safetensors. ``--label heat_of_adsorption`` (or henry) trains on that label instead.
"""

import json
import sys
from pathlib import Path

import common

SAMPLES = 256


def sweep(out, label):
    from ndgan.sampling import achieved_properties, generate, load_generator, target_labels

    rows = []
    for path in sorted(Path(out).glob("checkpoint-*.pt")):
        G = load_generator(path)
        lo, hi = G.metadata["label_min"][0], G.metadata["label_max"][0]
        targets = [lo + (hi - lo) * q for q in (0.1, 0.3, 0.5, 0.7, 0.9)]
        achieved = []
        for t in targets:
            c, _ = target_labels(G, {label: t}, SAMPLES)
            values = achieved_properties(G, generate(G, list(range(SAMPLES)), c=c, batch=64))[:, 0]
            achieved.append((float(values.mean()), float(values.std())))
        rows.append({"kimg": G.kimg, "targets": targets, "achieved_mean": [a for a, _ in achieved],
                     "achieved_std": [s for _, s in achieved]})
        print(f"{G.kimg:7.1f} kimg  " + "  ".join(f"{t:.3g}->{a:.3g}+-{s:.2g}" for t, (a, s) in zip(targets, achieved)),
              flush=True)
    return rows


def plot(rows, label, unit, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    cmap = plt.get_cmap("viridis")
    for i, r in enumerate(rows):
        ax.errorbar(r["targets"], r["achieved_mean"], yerr=r["achieved_std"], marker="o", ms=3, capsize=2,
                    color=cmap(i / max(1, len(rows) - 1)), label=f"{r['kimg']:.0f} kimg")
    lims = [min(rows[-1]["targets"]), max(rows[-1]["targets"])]
    ax.plot(lims, lims, "k--", lw=1, label="achieved = target")
    ax.set_xlabel(f"target {label} ({unit})")
    ax.set_ylabel(f"achieved (mean +- std of {SAMPLES})")
    ax.legend(fontsize=6, ncol=2)
    ax.set_title("energy8cond: generation at a target")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    label = "void_fraction"
    if "--label" in sys.argv:
        i = sys.argv.index("--label")
        label = sys.argv[i + 1]
        del sys.argv[i:i + 2]
    args = common.arguments("energy8cond", 120, __doc__)
    overrides = [f"data.options={{n: 7000, size: 8, seed: 0, labels: [{label}]}}", *args.overrides]
    if not args.plot_only:
        common.train("configs/energy8cond.yaml", args.out, args.kimg, overrides, args.threads)
    rows = sweep(args.out, label)
    from ndgan.data.properties import LABELS

    name = "energy8cond" if label == "void_fraction" else f"energy8cond-{label}"
    plot(rows, label, LABELS[label][1], common.FIGURES / f"{name}-targets.png")
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    (common.RESULTS / f"{name}.json").write_text(json.dumps(
        {"run": name, "machine": common.machine(), "label": label, "samples_per_target": SAMPLES,
         "train_seconds": round(common.wall_seconds(args.out)), "config": "configs/energy8cond.yaml",
         "overrides": overrides, "command": f"python benchmarks/quality/energy8cond.py --label {label}",
         "sweep": rows}, indent=1) + "\n")
    if args.export:
        common.export(args.out, common.ROOT / "pretrained" / f"{name}.safetensors")
