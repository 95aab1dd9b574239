"""ndgan from Python, without YAML: build a config in code, train, load the generator, sample by hand.

    python examples/python_api.py [--out runs/example_api]

1. A ``Config`` made of the dataclasses in ``ndgan.train.config`` for a tiny 2D run on the built-in procedural
   blobs (nothing to download), then ``ndgan.train.train(cfg, run_dir)``: a few StyleGAN2 steps, one
   checkpoint. ``train`` checks the config as ``load_config`` checks a YAML file.
2. ``ndgan.load_generator(run_dir)``: the EMA generator, rebuilt from the checkpoint alone.
3. By hand, with the two halves of the generator: z -> ``G.mapping`` -> ws ``[N, num_ws, w_dim]``, truncation
   ``w_avg + psi * (w - w_avg)`` toward ``G.mapping.w_avg`` (StyleGAN, Karras et al. 2019, appendix B),
   ``G.synthesis(ws, noise_mode='const')``; and style mixing (section 3.1): the first k ws from one latent,
   the rest from another. Each is compared with the library's own helpers (``G(z,
   truncation_psi=...)``, ``ndgan.sampling.generate``, ``ndgan.sampling.style_mixing_grid``) and the largest
   difference is printed.
4. The same calls on a 3D config: only ``data.shape`` (and the channels) change.

A network trained for a few steps draws blobs at best; the point here is the API, not the pictures. For a real
run, raise ``train.kimg`` (``configs/tiny2d.yaml`` trains this model for 2 kimg).
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import ndgan
from ndgan.sampling import generate, style_mixing_grid
from ndgan.train import train
from ndgan.train.config import AugmentConfig, Config, DataConfig, DConfig, GConfig, TrainConfig
from ndgan.viz.grid import sample_grid, save_png

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="runs/example_api", help="folder for the run folders and the pictures")
out = Path(parser.parse_args().out)
out.mkdir(parents=True, exist_ok=True)


def tiny_config(shape, channels, periodic=False, kimg=0.032) -> Config:
    """A small StyleGAN2 for ``shape`` (any rank), trained on kimg * 1000 procedural samples, 8 a batch."""
    return Config(
        data=DataConfig(source="procedural", shape=shape, channels=channels, periodic=periodic,
                        options={"length": 256, "seed": 0}),  # 256 deterministic blobs, made on the fly
        G=GConfig(z_dim=64, w_dim=64, mapping_layers=2, channel_base=256, channel_max=32),
        D=DConfig(channel_base=256, channel_max=32),
        train=TrainConfig(kimg=kimg, batch=8, r1_gamma=0.1, ema_kimg=0.5, snapshot_kimg=kimg, grid_size=8),
        augment=AugmentConfig(mode="ada"),  # the default; ops and p adapt to the data
    )


# 1. Config and training. The dataclasses only hold values; train() first runs the checks that load_config()
# runs on a YAML file (types, positive kimg and batch, augmentation ops that fit the data, ...) and refuses a
# bad config with a one-line ConfigError before it writes anything.
cfg = tiny_config(shape=(32, 32), channels=3)
run_dir = out / "run2d"
start = time.time()
# Writes config.yaml, stats.jsonl, samples-000000032.png and checkpoint-000000032.pt. resume="auto" continues
# from the newest checkpoint in run_dir, so running this script again has nothing left to train.
train(cfg, run_dir, resume="auto")
print(f"train(cfg, {str(run_dir)!r}) took {time.time() - start:.1f} s")

# 2. The EMA generator, in eval mode on the CPU (its w_avg is no longer updated).
G = ndgan.load_generator(run_dir)
print(f"G: {tuple(G.shape)} x {G.channels} channels, {G.num_ws} ws of {G.w_dim}, trained {G.kimg:g} kimg")


# 3a. Truncation by hand. One z per seed, drawn as ndgan.sampling.generate draws it: a seed means one sample.
def latents(seeds, z_dim):
    """``[N, z_dim]``: one standard normal z per seed."""
    return torch.stack([torch.randn(z_dim, generator=torch.Generator().manual_seed(s)) for s in seeds])


seeds, psi = list(range(8)), 0.7
z = latents(seeds, G.z_dim)
with torch.no_grad():
    ws = G.mapping(z)  # [N, num_ws, w_dim]: one w, repeated for every layer
    w_avg = G.mapping.w_avg  # [w_dim], the running mean of w tracked during training
    ws_trunc = w_avg + psi * (ws - w_avg)  # pulled toward the average: less variety, fewer odd samples
    by_hand = G.synthesis(ws_trunc, noise_mode="const")  # [N, C, *S] in about [-1, 1]
    library_ws = G.mapping(z, truncation_psi=psi)  # the same formula inside the mapping network
    library = G(z, truncation_psi=psi, noise_mode="const")  # noise_mode defaults to 'random'
    library_seeds = generate(G, seeds, truncation_psi=psi)  # z from the seeds, noise_mode 'const'
# Equal up to float rounding (the library computes the same line as a lerp, which rounds differently).
for name, a, b in [("G.mapping(z, truncation_psi)", ws_trunc, library_ws),
                   ("G(z, truncation_psi)", by_hand, library),
                   ("export.generate(G, seeds, psi)", by_hand, library_seeds)]:
    print(f"truncation psi={psi}: max |by hand - {name}| = {(a - b).abs().max():.3g}")
save_png(sample_grid(by_hand), out / "truncated.png")

# 3b. Style mixing by hand: ws 0..k-1 (the coarse layers) from a column seed, the rest from a row seed, laid
# out as StyleGAN2's figure (a white corner, the column seeds' samples on top, the row seeds' down the left).
row_seeds, col_seeds, k = [10, 11, 12], [20, 21, 22], G.num_ws // 2
with torch.no_grad():
    rows, cols = G.mapping(latents(row_seeds, G.z_dim)), G.mapping(latents(col_seeds, G.z_dim))
    panels = [torch.ones(1, G.channels, *G.shape), G.synthesis(cols, noise_mode="const")]
    row_images = G.synthesis(rows, noise_mode="const")
    for r in range(len(row_seeds)):
        row = rows[r:r + 1, k:].expand(len(cols), -1, -1)  # this row seed's fine ws, once per column
        mixed = torch.cat([cols[:, :k], row], dim=1)  # [3, num_ws, w_dim]
        panels += [row_images[r:r + 1], G.synthesis(mixed, noise_mode="const")]
mixing_by_hand = sample_grid(torch.cat(panels))  # 16 panels tile as 4 x 4, like the library's figure
mixing_library = style_mixing_grid(G, row_seeds, col_seeds, layers=range(k))  # uint8 [H, W, 3]
gap = np.abs(mixing_by_hand.astype(int) - mixing_library.astype(int)).max()
print(f"style mixing, ws 0-{k - 1} of {G.num_ws} from the columns: max |by hand - style_mixing_grid| = {gap}")
save_png(mixing_by_hand, out / "style_mixing.png")

# 4. The same API in 3D: periodic two-channel 16^3 cells; sample_grid shows each volume's three mid-slices.
cfg3 = tiny_config(shape=(16, 16, 16), channels=2, periodic=True, kimg=0.008)
G3 = ndgan.load_generator(train(cfg3, out / "run3d", resume="auto"))  # train() returns the run folder
with torch.no_grad():
    ws3 = G3.mapping(z[:4])  # the same z_dim, so the same latents serve
    vol = G3.synthesis(G3.mapping.w_avg + psi * (ws3 - G3.mapping.w_avg), noise_mode="const")  # [4, 2, *S]
    gap3 = (vol - G3(z[:4], truncation_psi=psi, noise_mode="const")).abs().max()
print(f"3D {tuple(vol.shape)}: truncation psi={psi}: max |by hand - G(z, truncation_psi)| = {gap3:.3g}")
save_png(sample_grid(vol), out / "volumes.png")
print(f"pictures: {out / 'truncated.png'}, {out / 'style_mixing.png'}, {out / 'volumes.png'}")
