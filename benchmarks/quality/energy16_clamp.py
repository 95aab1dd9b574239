"""Quality run 7: does a clipped output (G.output_clamp 1) let configs/energy16.yaml match the data's walls?
Three quarters of every real cell sit exactly at the +1 clip (5000 K); a linear output gives 0.98 and 1.03
there, which D sees at once (docs/quality.md section 2). Three variants (bfloat16, against 2000 held-out cells):

    python benchmarks/quality/energy16_clamp.py [--kimg 60] [--threads 1] [--only VARIANT] [--plot-only]

- clamp: the preset (lr 0.0025, gamma auto = 0.0256) with the output clipped to [-1, 1];
- clamp-gamma32: lr 0.001 for G and D with R1 gamma 32 (the best settings of energy16_settings.py), clipped;
- nonoise: clamp-gamma32 without the per-position noise inputs (G.use_noise false): the tails below showed
  that noise makes wells deeper than any real cell's.

Each trains into runs/quality/energy16-<variant> with --resume auto, G_ema evaluated every 4 kimg. Writes
docs/figures/energy16-clamp-curve.png and benchmarks/quality/results/energy16-clamp.json. Then the tails:
the Henry coefficient and heat of adsorption weigh each point by exp(-E / kT), so a cell's deepest well
decides them. For 2000 cells of each final G_ema, of the shipped pretrained/energy16.safetensors (the
preset's linear output) and of the held-out real cells: the mean and spread of each cell's lowest value (in
K), the fraction of cells deeper than the deepest held-out cell, and the fraction of points at the +1 clip.
"""

import json

import h5py
import torch

import common
from energy16 import PANELS
from energy16_settings import KEYS, LR
from ndgan.data.energy import ENERGY_RANGE_K
from ndgan.metrics.physics import to_kelvin
from ndgan.sampling import generate, load_generator

CLAMP = "G.output_clamp=1"
VARIANTS = {"clamp": [CLAMP], "clamp-gamma32": [CLAMP, *LR, "train.r1_gamma=32"],
            "nonoise": [CLAMP, *LR, "train.r1_gamma=32", "G.use_noise=false"]}


def lowest_kelvin(x: torch.Tensor) -> torch.Tensor:
    """Each cell's and channel's deepest point ``[N, C]`` in K, of cells ``x`` ``[N, C, ...]`` in data units
    clipped to [-1, 1], as every metric sees them."""
    return to_kelvin(x.clamp(-1, 1), ENERGY_RANGE_K).flatten(2).amin(-1)


def tails(x: torch.Tensor, deepest_real: float) -> dict:
    """The deepest point per cell (mean, spread, share deeper than ``deepest_real``) and the share of points
    at the +1 clip."""
    lowest = lowest_kelvin(x)
    return {"lowest_K_mean": float(lowest.mean()), "lowest_K_std": float(lowest.std(unbiased=False)),
            "deeper_than_real": float((lowest < deepest_real).double().mean()),
            "at_clip": float((x >= 1).double().mean())}


def report_tails(runs: dict, held_out="data/energy16-heldout.h5", n=2000) -> dict:
    with h5py.File(common.ROOT / held_out) as f:
        real = torch.from_numpy(f["data"][:n])
    deepest = float(lowest_kelvin(real).min())
    out = {"held-out real": tails(real, deepest)}
    torch.manual_seed(0)
    for name, path in runs.items():
        out[name] = tails(generate(load_generator(path), range(n), batch=100, noise_mode="random"), deepest)
    for name, t in out.items():
        print(f"{name:>16}: lowest {t['lowest_K_mean']:7.0f} +- {t['lowest_K_std']:4.0f} K, "
              f"{t['deeper_than_real']:.1%} of cells deeper than any real one, {t['at_clip']:.1%} of points at the clip")
    return out


if __name__ == "__main__":
    args = common.arguments("energy16-clamp", 60, __doc__, variants=True)
    base = args.out.rsplit("-clamp", 1)[0]
    common.variants("configs/energy16.yaml", base, VARIANTS, KEYS, args,
                    "energy16-clamp", "energy16, output clipped to [-1, 1]: G_ema vs 2000 held-out cells "
                    "(dashed: real split)", PANELS,
                    fixed=("train.precision=bfloat16", "train.metrics_at_start=true", "train.metrics_kimg=4",
                           "train.keep_checkpoints=2"))
    summary = json.loads((common.RESULTS / "energy16-clamp.json").read_text())
    runs = {"preset (linear)": common.ROOT / "pretrained/energy16.safetensors",
            **{v: f"{base}-{v}" for v in VARIANTS}}
    summary["tails"] = report_tails(runs)
    (common.RESULTS / "energy16-clamp.json").write_text(json.dumps(summary, indent=1) + "\n")
