"""Quality run 3: configs/energy3d.yaml (the built-in energy grids at 32^3, the full network) as far as 2 CPU
cores allow, against 256 held-out cells.

    python benchmarks/quality/energy3d.py [--kimg 1] [--out runs/quality/energy3d] [--threads N] [KEY=VALUE ...]

The proof that the 32^3 path learns: G_ema evaluated before step 0 and every 0.5 kimg on the energy-grid
physics, MS-SSIM diversity and the value histogram, next to the real-vs-real split. Trains with
--resume auto (rerun with a larger --kimg to continue). Writes docs/figures/energy3d-curve.png and
benchmarks/quality/results/energy3d.json.
"""

import common
from energy16 import PANELS

if __name__ == "__main__":
    args = common.arguments("energy3d", 1, __doc__)
    overrides = ["train.metrics_kimg=0.5", "train.metrics_at_start=true", "train.snapshot_kimg=0.5",
                 "train.keep_checkpoints=2", "metrics.num_gen=256", "metrics.real_path=data/energy-heldout.h5",
                 "metrics.real_options={n: 256, seed: 1}",
                 "data.workers=0", *args.overrides]
    if not args.plot_only:
        common.train("configs/energy3d.yaml", args.out, args.kimg, overrides, args.threads)
    common.report("energy3d", {"energy3d": common.read_curve(args.out)}, PANELS,
                  "energy3d (32^3): G_ema vs 256 held-out cells (dashed: real vs real split)", args.out,
                  {"config": "configs/energy3d.yaml", "overrides": overrides,
                   "command": "python benchmarks/quality/energy3d.py"})
