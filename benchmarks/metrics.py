"""Metric throughput: the parts that dominate an evaluation, in samples per second, and peak memory.

    python benchmarks/metrics.py [--device cpu] [--reps 3]

- Inception-v3 features (random weights: the speed does not depend on them) of 128^2 RGB images, batch 16;
- the energy3d generator (G_ema at its config's size, 32^3 x 2) making samples, batch 16;
- N-d MS-SSIM of 32^3 x 2 pairs (float64, window 7, 3 scales), 8 pairs per call;
- energy-grid physics (Henry, heat, void fraction) of 32^3 x 2 grids, batch 16;
- a whole ``Evaluator(['energy', 'msssim', 'hist', 'mmd'])`` pass with 256 generated and 256 real samples
  (procedural stand-in data with the energy units, so no file is needed).
Median of --reps timed repetitions after one warm-up.
"""

import argparse

import torch
from timing import peak_memory, timed

from ndgan.data import open_dataset
from ndgan.metrics import MetricSettings
from ndgan.metrics.evaluate import Evaluator
from ndgan.metrics.inception import InceptionV3
from ndgan.metrics.msssim import ms_ssim
from ndgan.metrics.physics import grid_properties, to_kelvin
from ndgan.train.config import load_config
from ndgan.nets import build_networks


@torch.no_grad()
def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads")
    rows = []

    inception = InceptionV3().to(device).eval()
    images = torch.rand(16, 3, 128, 128, device=device) * 2 - 1
    rows.append(("Inception-v3 features, 128^2 RGB", 16 / timed(lambda: inception(images), args.reps, device)))

    cfg = load_config("configs/energy3d.yaml")
    G, _ = build_networks(cfg, 0)
    G = G.to(device).eval()
    z = torch.randn(16, G.z_dim, device=device)
    rows.append(("energy3d generator, 32^3 x 2", 16 / timed(lambda: G(z), args.reps, device)))

    x = torch.rand(16, 2, 32, 32, 32, device=device) * 2 - 1
    rows.append(("MS-SSIM pairs, 32^3 x 2 (float64)", 8 / timed(lambda: ms_ssim(x[:8], x[8:]), args.reps, device)))
    rows.append(("energy physics, 32^3 x 2", 16 / timed(lambda: grid_properties(to_kelvin(x, (-4000, 5000))),
                                                        args.reps, device)))

    data = open_dataset("procedural", spatial_dims=3, shape=(32, 32, 32), channels=2, length=256, periodic=True)
    data.metadata = {**data.metadata, "units": "K", "value_range": [-4000.0, 5000.0]}
    settings = MetricSettings(num_gen=256, num_real=256, batch=16, mmd_samples=256)

    def whole():
        Evaluator(["energy", "msssim", "hist", "mmd"], data, settings, device).evaluate(G)

    rows.append(("Evaluator energy+msssim+hist+mmd, 256 gen + 256 real", 256 / timed(whole, 1, device)))
    for name, rate in rows:
        print(f"{name:55s} {rate:9.1f} samples/s")
    print(f"peak memory: {peak_memory(device)}")


if __name__ == "__main__":
    main()
