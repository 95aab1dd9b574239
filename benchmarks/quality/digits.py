"""Quality run 1: configs/digits2d.yaml (the 1,797 scikit-learn digits at 32x32), float32 and bfloat16.

    python benchmarks/quality/digits.py [--precision float32|bfloat16|both] [--kimg 150] [--threads N]

Trains with --resume auto (rerun to continue), evaluating G_ema every 5 kimg: the Fréchet distance in the
features of the shipped digit classifier, class coverage, class-histogram distance and confidence. The digits
are too few to hold out, so both sides of every metric use the training scans, as FID does; the baselines
split them in halves. Writes docs/figures/digits-curve.png (both precisions on one plot),
benchmarks/quality/results/digits-<precision>.json and, with --export, pretrained/digits2d.safetensors (from
the bfloat16 run, the shipped file).
"""

import common

PANELS = [("fid", "fid_baseline", "Fréchet distance (classifier features)", True),
          ("classes_tv", "classes_tv_baseline", "class histogram distance (TV)", True),
          ("classes_confidence", "classes_confidence_real", "classifier confidence", False)]

if __name__ == "__main__":
    args = common.arguments("digits", 150, __doc__, precision=True)
    precisions = ["float32", "bfloat16"] if args.precision == "both" else [args.precision]
    curves = {}
    for p in ["float32", "bfloat16"]:
        out = f"{args.out}-{p}"
        overrides = [f"train.precision={p}", "train.metrics_at_start=true", *args.overrides]
        if p in precisions and not args.plot_only:
            common.train("configs/digits2d.yaml", out, args.kimg, overrides, args.threads)
        curves[p] = common.read_curve(out)
        if curves[p]:
            common.write_summary(f"digits-{p}", out, {"config": "configs/digits2d.yaml", "overrides": overrides,
                                                       "command": f"python benchmarks/quality/digits.py --precision {p}"})
    common.plot({k: v for k, v in curves.items() if v}, PANELS, common.FIGURES / "digits-curve.png",
                "digits2d: G_ema vs the 1,797 training scans (dashed: real halves)")
    if args.export:
        common.export(f"{args.out}-bfloat16", common.ROOT / "pretrained" / "digits2d.safetensors")
