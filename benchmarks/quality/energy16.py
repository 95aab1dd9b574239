"""Quality run 2: configs/energy16.yaml (the built-in energy grids at 16^3) against 2000 held-out cells.

    python benchmarks/quality/energy16.py [--kimg 24] [--out runs/quality/energy16] [--threads N]

Trains with --resume auto (rerun to continue), evaluating G_ema every 4 kimg against cells of another seed
(metrics.real_path): W1 distances of log10 Henry coefficient, heat of adsorption and void fraction (per grid
and channel) next to the real-vs-real split, MS-SSIM diversity next to the real data's, and the value
histogram distance. Writes docs/figures/energy16-curve.png, benchmarks/quality/results/energy16.json and,
with --export, pretrained/energy16.safetensors.
"""

import common

PANELS = [("energy_log10_henry_w1", "energy_log10_henry_w1_baseline", "W1 log10 Henry coefficient", True),
          ("energy_heat_kj_mol_w1", "energy_heat_kj_mol_w1_baseline", "W1 heat of adsorption (kJ/mol)", True),
          ("energy_void_fraction_w1", "energy_void_fraction_w1_baseline", "W1 void fraction", True),
          ("msssim", "msssim_real", "MS-SSIM of pairs (diversity)", False),
          ("hist_w1", "hist_w1_baseline", "W1 of values (data units)", True)]

if __name__ == "__main__":
    args = common.arguments("energy16", 24, __doc__)
    overrides = ["train.metrics_kimg=4", "train.metrics_at_start=true", "train.keep_checkpoints=2", *args.overrides]
    if not args.plot_only:
        common.train("configs/energy16.yaml", args.out, args.kimg, overrides, args.threads)
    common.report("energy16", {"energy16": common.read_curve(args.out)}, PANELS,
                  "energy16: G_ema vs 2000 held-out cells (dashed: real vs real split)", args.out,
                  {"config": "configs/energy16.yaml", "overrides": overrides,
                   "command": "python benchmarks/quality/energy16.py"})
    if args.export:
        common.export(args.out, common.ROOT / "pretrained" / "energy16.safetensors")
