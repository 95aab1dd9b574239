"""Quality run 7: does a clipped output (G.output_clamp 1) let configs/energy16.yaml match the data's walls?
Three quarters of every real cell sit exactly at the +1 clip (5000 K); a linear output gives 0.98 and 1.03
there, which D sees at once (docs/quality.md section 2). Two variants (bfloat16, against 2000 held-out cells):

    python benchmarks/quality/energy16_clamp.py [--kimg 60] [--threads 1] [--only VARIANT] [--plot-only]

- clamp: the preset (lr 0.0025, gamma auto = 0.0256) with the output clipped to [-1, 1];
- clamp-gamma32: lr 0.001 for G and D with R1 gamma 32 (the best settings of energy16_settings.py), clipped.

Each trains into runs/quality/energy16-<variant> with --resume auto, G_ema evaluated every 4 kimg. Writes
docs/figures/energy16-clamp-curve.png and benchmarks/quality/results/energy16-clamp.json.
"""

import common
from energy16 import PANELS
from energy16_settings import KEYS, LR

CLAMP = "G.output_clamp=1"
VARIANTS = {"clamp": [CLAMP], "clamp-gamma32": [CLAMP, *LR, "train.r1_gamma=32"]}

if __name__ == "__main__":
    args = common.arguments("energy16-clamp", 60, __doc__, variants=True)
    common.variants("configs/energy16.yaml", args.out.rsplit("-clamp", 1)[0], VARIANTS, KEYS, args,
                    "energy16-clamp", "energy16, output clipped to [-1, 1]: G_ema vs 2000 held-out cells "
                    "(dashed: real split)", PANELS,
                    fixed=("train.precision=bfloat16", "train.metrics_at_start=true", "train.metrics_kimg=4",
                           "train.keep_checkpoints=2"))
