"""Train StyleGAN2 on the built-in 3D energy grids, then take samples out: an HDF5 file in kelvin, a pyvista
render, and the adsorption physics of the generated grids next to the real ones.

    python examples/train_energy_grids.py [--out runs/example_energy] [--cells 512] [--kimg 0.032] [--samples 64]

1. Generate ``--cells`` energy grids (32^3, two channels: a cell with a spherical pore and the same cell with a
   cubic one; see ndgan/data/energy.py) into OUT/energy.h5.
2. Train configs/energy3d.yaml (the full 4.8M-parameter generator, periodic padding, R1, path length, ADA) on
   them for ``--kimg`` thousand real images at batch 8, into OUT/run.
3. Load the EMA generator, generate ``--samples`` grids and write OUT/samples/samples.h5, mapped back to kelvin
   through the training data's value range.
4. Render the first sample's spherical-pore channel off-screen with pyvista into OUT/render.png.
5. Compare the Henry coefficient, heat of adsorption and void fraction of the generated grids with the real
   ones (earth mover's distance, with the real-vs-real baseline).

About a minute on 2 CPU cores with the defaults (4 training steps). So short a run only shows the pipeline:
its samples are far from the data. The real run is ``python -m ndgan.train configs/energy3d.yaml`` (7000
cells, 5000 kimg, a GPU recommended). Running the script again continues the run in OUT (a larger ``--kimg``
trains on) and rewrites the samples and the render. Nothing is downloaded.
"""

import argparse
import time
from pathlib import Path

import h5py
import torch

import ndgan
from ndgan.data import energy, open_dataset
from ndgan.sampling import generate, write_samples
from ndgan.metrics import physics
from ndgan.train import load_config, train
from ndgan.viz.grid import save_png
from ndgan.viz.render import render


def properties(kelvin_batches):
    """Per-grid Henry coefficient, heat of adsorption and void fraction of energies in kelvin: name -> [N, C]."""
    parts = [physics.grid_properties(k) for k in kelvin_batches]
    return {name: torch.cat([p[name] for p in parts]) for name in physics.PROPERTIES}


parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--out", type=Path, default=Path("runs/example_energy"), help="output folder")
parser.add_argument("--cells", type=int, default=512, help="energy grids to generate as training data")
parser.add_argument("--kimg", type=float, default=0.032, help="length of the run in thousands of real images")
parser.add_argument("--samples", type=int, default=64, help="grids to generate, export and score")
args = parser.parse_args()
config = Path(__file__).resolve().parent.parent / "configs" / "energy3d.yaml"

# 1. Data: generated once and cached; a later run with the same --cells reuses the file.
start = time.time()
data_path = energy.ensure(args.out / "energy.h5", n=args.cells)
print(f"data     {data_path}: {args.cells} grids of 32^3 x 2 ({time.time() - start:.0f} s)")

# 2. Training: the energy3d preset with overrides, as on the command line. Metrics are scored in step 5 on
# the exported samples instead of during training; workers=0 because loader processes only cost time here.
cfg = load_config(config, [f"data.path={data_path}", f"data.options.n={args.cells}", "data.workers=0",
                           f"train.kimg={args.kimg}", "train.batch=8", "train.metrics=[]"])
start = time.time()
run_dir = train(cfg, args.out / "run", resume="auto")
print(f"training {run_dir}: {args.kimg:g} kimg in {time.time() - start:.0f} s (checkpoint, samples-*.png, "
      f"render-*.png, stats.jsonl)")

# 3. Samples out: seeds 0..N-1 always give the same grids; export maps [-1, 1] back to kelvin.
G = ndgan.load_generator(run_dir)
seeds = list(range(args.samples))
x = generate(G, seeds)  # [N, 2, 32, 32, 32] in [-1, 1]
(h5_path,), _ = write_samples(x, G, seeds, args.out / "samples", "h5", overwrite=True)
with h5py.File(h5_path, "r") as h5:
    kelvin = h5["data"][:]  # [N, 2, 32, 32, 32]
    units, channel_names = h5["data"].attrs["units"], list(h5["data"].attrs["channel_names"])
print(f"samples  {h5_path}: data {list(kelvin.shape)} in {units} ({', '.join(channel_names)}), "
      f"{kelvin.min():.0f} to {kelvin.max():.0f} {units}")

# 4. Render: units 'K' picks the energy transfer function (attractive pore opaque, walls transparent).
render_path = args.out / "render.png"
save_png(render(kelvin[0, 0], units=units, window_size=(512, 512)), render_path)
print(f"render   {render_path}: seed 0, channel {channel_names[0]}")

# 5. Physics of the exported grids (already kelvin) against the real ones, per grid and channel, in batches.
real = open_dataset("energy", path=data_path, n=args.cells)  # items [2, 32, 32, 32] in [-1, 1]
real_properties = properties(physics.to_kelvin(batch, real.metadata["value_range"])
                             for batch in torch.utils.data.DataLoader(real, batch_size=64))
scores = physics.compare(properties(torch.from_numpy(kelvin).split(64)), real_properties)
print(f"physics  at {physics.DEFAULT_TEMPERATURE_K:g} K, {args.samples} generated vs {len(real)} real grids; "
      f"W1 = earth mover's distance, baseline = real vs real")
print(f"  {'property':<14} {'generated':>10} {'real':>10} {'W1':>10} {'baseline':>10}")
for name in physics.PROPERTIES:
    values = [scores[f"{name}_{key}"] for key in ("mean", "mean_real", "w1", "w1_baseline")]
    print(f"  {name:<14} " + " ".join(f"{v:>10.4g}" for v in values))
