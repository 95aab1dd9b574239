"""Quality run 6: does the digits' remedy (lr 0.001 with a strong R1) carry over to configs/energy16.yaml?
Two variants (bfloat16, 24 kimg each, against 2000 held-out cells), next to the preset's run
(results/energy16.json: lr 0.0025, gamma auto = 0.0256):

    python benchmarks/quality/energy16_settings.py [--kimg 24] [--threads 1] [--only VARIANT] [--plot-only]

- gamma8: lr 0.001 for G and D, R1 gamma 8 (the digits' best, docs/quality.md section 5);
- gamma32: the same with gamma 32 (4x: StyleGAN2-ADA scales gamma with the number of pixels, and a 16^3 cell
  has 4x the 32^2 digits').

Each trains into runs/quality/energy16-<variant> with --resume auto, G_ema evaluated every 4 kimg. Writes
docs/figures/energy16-settings-curve.png and benchmarks/quality/results/energy16-settings.json.
"""

import common
from energy16 import PANELS

LR = ["train.g_lr=0.001", "train.d_lr=0.001"]
VARIANTS = {"gamma8": [*LR, "train.r1_gamma=8"], "gamma32": [*LR, "train.r1_gamma=32"]}
KEYS = ("energy_log10_henry_w1", "energy_heat_kj_mol_w1", "energy_void_fraction_w1", "msssim", "hist_w1")

if __name__ == "__main__":
    args = common.arguments("energy16-settings", 24, __doc__, variants=True)
    common.variants("configs/energy16.yaml", args.out.rsplit("-settings", 1)[0], VARIANTS, KEYS, args,
                    "energy16-settings", "energy16 variants: G_ema vs 2000 held-out cells (dashed: real split)",
                    PANELS, fixed=("train.precision=bfloat16", "train.metrics_at_start=true",
                                   "train.metrics_kimg=4", "train.keep_checkpoints=2"))
