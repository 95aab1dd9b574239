"""The README's pictures, from the shipped weights and the built-in data (seconds on a CPU):

    python benchmarks/quality/figures.py

- docs/figures/digits.png: 36 real scans (a seeded draw) beside 36 generated digits (seeds 0-35);
- docs/figures/energy16.png: the three mid-slices of both channels of 8 held-out cells beside 8 generated ones;
- docs/figures/energy16-render.png: pyvista volume renders of a held-out and a generated cell (channel 0, K).
"""

from pathlib import Path

import numpy as np
import torch

import common
from ndgan.data import open_dataset
from ndgan.data.energy import ensure
from ndgan.data.hdf5 import HDF5Dataset
from ndgan.sampling import generate, load_generator
from ndgan.viz.grid import sample_grid


def side_by_side(left: np.ndarray, right: np.ndarray, titles, path, gap=12):
    """Two uint8 pictures next to each other with titles (matplotlib), saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = max(left.shape[0], right.shape[0])
    fig, axes = plt.subplots(1, 2, figsize=((left.shape[1] + right.shape[1] + gap) / 100, h / 100 + 0.45))
    for ax, img, title in zip(axes, (left, right), titles):
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout(pad=0.3)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


def digits():
    G = load_generator(common.ROOT / "pretrained" / "digits2d.safetensors")
    data = open_dataset("digits", size=32, shape=(32, 32), channels=1)
    pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:36].tolist()
    real = torch.stack([data[i] for i in pick])
    fake = generate(G, list(range(36)))
    side_by_side(sample_grid(real), sample_grid(fake), ["real (scikit-learn digits)",
                                                        f"generated (pretrained/digits2d, {G.kimg:g} kimg)"],
                 common.FIGURES / "digits.png")


def energy16():
    G = load_generator(common.ROOT / "pretrained" / "energy16.safetensors")
    held_out = HDF5Dataset(ensure(common.ROOT / "data" / "energy16-heldout.h5", 2000, 16, 1))
    real = torch.stack([held_out[i] for i in range(8)])
    fake = generate(G, list(range(8)))
    side_by_side(sample_grid(real), sample_grid(fake), ["held-out cells: mid-slices of both channels",
                                                        f"generated (pretrained/energy16, {G.kimg:g} kimg)"],
                 common.FIGURES / "energy16.png")
    from ndgan.metrics.physics import to_kelvin
    from ndgan.viz.render import render

    value_range = held_out.metadata["value_range"]
    pictures = [render(to_kelvin(x[0], value_range).numpy(), units="K", window_size=(360, 360))
                for x in (real[0], fake[0])]
    side_by_side(*pictures, ["held-out cell, channel 0 (K)", "generated, seed 0, channel 0 (K)"],
                 common.FIGURES / "energy16-render.png")


if __name__ == "__main__":
    digits()
    energy16()
