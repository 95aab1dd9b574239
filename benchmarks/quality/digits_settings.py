"""Quality run 5: does stronger augmentation or a stronger R1 stop the digits2d collapse? Six variants of
configs/digits2d.yaml (bfloat16, 25 kimg each), against the preset's own curve (results/digits-bfloat16.json):

    python benchmarks/quality/digits_settings.py [--kimg 25] [--threads 1] [--only VARIANT] [--plot-only]

- ada20: ADA's p may move 5x faster (augment.speed_kimg 20 instead of 100);
- fixed04: a fixed augmentation probability of 0.4 from the first step;
- gamma1, gamma4, gamma8, gamma16: R1 gamma 1 to 16 instead of 0.1.

Each trains into runs/quality/digits-<variant> with --resume auto, G_ema evaluated every 5 kimg (FID in the
shipped classifier's features, classes covered, class-histogram distance). Writes
docs/figures/digits-settings-curve.png and benchmarks/quality/results/digits-settings.json.
"""

import common

VARIANTS = {"ada20": ["augment.speed_kimg=20"], "fixed04": ["augment.mode=fixed", "augment.p=0.4"],
            "gamma1": ["train.r1_gamma=1"], "gamma4": ["train.r1_gamma=4"], "gamma8": ["train.r1_gamma=8"],
            "gamma16": ["train.r1_gamma=16"]}
PANELS = [("fid", "fid_baseline", "Fréchet distance (classifier features)", True),
          ("classes_covered", "classes_covered_baseline", "classes covered (of 10)", False),
          ("classes_tv", "classes_tv_baseline", "class histogram distance (TV)", True)]

if __name__ == "__main__":
    args = common.arguments("digits-settings", 25, __doc__, variants=True)
    # the variants were run with the preset's earlier gamma 0.1, which the ones without a gamma keep
    common.variants("configs/digits2d.yaml", args.out.rsplit("-settings", 1)[0], VARIANTS,
                    ("fid", "classes_covered", "classes_tv"), args, "digits-settings",
                    "digits2d variants: G_ema vs the 1,797 scans (dashed: real halves)", PANELS,
                    fixed=("train.precision=bfloat16", "train.metrics_at_start=true", "train.r1_gamma=0.1"))
