"""Train a small StyleGAN2 on face images, then draw samples, a style-mixing grid and an interpolation.

    python examples/train_faces_2d.py                  # FFHQ thumbnails if present, else procedural data
    python examples/train_faces_2d.py --images ~/faces --kimg 20 --resolution 64 --out runs/my_faces

Data: the FFHQ thumbnails (folder ``thumbnails128x128`` of https://github.com/NVlabs/ffhq-dataset, 70,000
aligned 128x128 face PNGs, about 2 GB) are read from ``data/ffhq-thumbnails128x128`` in the repository root,
the path configs/ffhq2d.yaml uses, or from ``--images FOLDER`` (any folder, searched recursively, or .zip of
PNG/JPEG files; each image is centre-cropped and resized to ``--resolution``). Nothing is downloaded: without
the default folder the script says so and trains on ndgan's procedural 2D data (coloured blobs made on the
fly) instead, so it always runs.

The run is configs/ffhq2d.yaml (x-flips, ADA without rotations) with networks small enough for a CPU. The
default, 4 kimg (500 steps of 8 images) at 32x32, takes about a minute on 2 CPU cores and gives blurry
blobs, not faces: faces take thousands of kimg, the config's full-size networks and a GPU (``python -m
ndgan.train configs/ffhq2d.yaml``).

Everything goes to ``--out`` (default runs/faces_2d): the training run (config.yaml, checkpoint-*.pt,
samples-*.png, stats.jsonl), then from the EMA generator of its last checkpoint samples.png (seeds 0-15),
style_mixing.png (rows seeds 0-3, columns seeds 10-14; each cell takes its column's coarse styles and its
row's fine ones) and interpolation.gif (seed 0 to seed 1 along a straight line in w). Running it again into
the same ``--out`` continues the run: a larger ``--kimg`` trains further.
"""

import argparse
import json
from pathlib import Path

from PIL import Image

import ndgan
import ndgan.train
from ndgan.sampling import generate, interpolation_frames, style_mixing_grid
from ndgan.viz.grid import sample_grid, save_png

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = ROOT / "data" / "ffhq-thumbnails128x128"
ROW_SEEDS, COL_SEEDS = [0, 1, 2, 3], [10, 11, 12, 13, 14]

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--images", type=Path, metavar="FOLDER", help="folder or .zip of face images "
                    f"(default: {DEFAULT_IMAGES} if it exists, else the procedural 2D data)")
parser.add_argument("--out", type=Path, default="runs/faces_2d", help="run folder (default: %(default)s)")
parser.add_argument("--kimg", type=float, default=4.0, help="thousands of training images (default: 4)")
parser.add_argument("--resolution", type=int, default=32, help="image height and width (default: 32)")
parser.add_argument("--frames", type=int, default=16, help="frames of interpolation.gif (default: 16)")
args = parser.parse_args()
if args.frames < 2:
    parser.error(f"--frames: expected at least 2, got {args.frames}")

# Data: a folder of images when there is one, else the procedural blobs, with a note saying so.
images = args.images or DEFAULT_IMAGES
if images.exists():
    print(f"training on the images in {images}")
    data = [f"data.path={json.dumps(str(images))}"]  # quoted: override values are read as YAML
elif args.images:
    parser.error(f"--images {images}: no such folder or .zip file")
else:
    print(f"note: no FFHQ thumbnails at {images}, so this run uses the procedural 2D data (coloured blobs) "
          f"instead. For faces, put the 70,000 PNGs of 'thumbnails128x128' from "
          f"https://github.com/NVlabs/ffhq-dataset there, or pass --images FOLDER.")
    data = ["data.source=procedural", "data.path=null", "data.options={length: 2048, seed: 0}"]

# Config: the faces preset with CPU-sized networks (its config-F networks have 23.0M parameters in G).
r = args.resolution
cfg = ndgan.train.load_config(ROOT / "configs" / "ffhq2d.yaml", data + [
    f"data.shape=[{r}, {r}]",
    "data.workers=0",  # a tiny run on a few cores: decode in the main process
    "G.z_dim=64", "G.w_dim=64", "G.mapping_layers=2", "G.channel_base=512", "G.channel_max=32",
    "D.channel_base=512", "D.channel_max=32",
    f"train.kimg={args.kimg}",
    "train.batch=8",
    f"train.r1_gamma={0.0002 * r * r / 8:g}",  # StyleGAN2-ADA's heuristic: 0.0002 * resolution^2 / batch
    "train.metrics=[]",  # the preset's FID needs the Inception weights file (README, Metrics)
])

# Train (or continue a run in the same folder); the loop writes the checkpoints and a sample grid.
run_dir = ndgan.train.train(cfg, args.out, resume="auto")
print(f"run folder {run_dir}: config.yaml, {sorted(run_dir.glob('checkpoint-*.pt'))[-1].name}, "
      f"training grid {sorted(run_dir.glob('samples-*.png'))[-1].name}")

# Samples out, from the EMA generator of the newest checkpoint.
G = ndgan.load_generator(run_dir)
save_png(sample_grid(generate(G, list(range(16)))), run_dir / "samples.png")
print(f"wrote {run_dir / 'samples.png'} (seeds 0-15, {G.kimg:g} kimg)")

save_png(style_mixing_grid(G, ROW_SEEDS, COL_SEEDS), run_dir / "style_mixing.png")
print(f"wrote {run_dir / 'style_mixing.png'} ({len(ROW_SEEDS)} rows x {len(COL_SEEDS)} columns)")

frames = [Image.fromarray(f) for f in interpolation_frames(G, 0, 1, args.frames)]
frames[0].save(run_dir / "interpolation.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
print(f"wrote {run_dir / 'interpolation.gif'} ({len(frames)} frames, seed 0 to seed 1)")
