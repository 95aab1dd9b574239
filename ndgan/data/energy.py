"""Built-in dataset of the 3D port in the source documents: potential-energy grids of a methane-like probe in
porous unit cells, two channels per sample.

Physics. A united-atom methane probe (one Lennard-Jones site) interacts with the oxygen atoms of a porous
framework through the truncated Lennard-Jones potential

    V(d) = 4 eps [(sigma/d)^12 - (sigma/d)^6]  for d < r_c,  0 beyond,

with the probe-oxygen parameters eps/k_B = 115 K, sigma = 3.47 Angstrom and r_c = 12 Angstrom (TraPPE-like
values used in zeolite adsorption studies). The energy of the probe at a point r of the cell is the sum of V
over all framework atoms, each at its nearest periodic image (minimum-image convention; exact because the cell
edge is at least 2 r_c). Energies are in kelvin (E / k_B), clipped to [-4000, 5000] K (very repulsive
overlaps carry no information) and mapped linearly to [-1, 1]; the mapping is stored in the file.

Cells. Each sample draws a cubic cell edge L in [24, 30] Angstrom and a framework of oxygen sites on a simple
cubic lattice of spacing L/8 (about 3-3.75 Angstrom), each site occupied with a probability drawn per sample
(0.45-0.65), so no two cells are alike. A pore is carved out at the cell centre: channel 0 removes the atoms
inside a sphere of radius R (drawn in [6, 10] Angstrom), channel 1 the atoms inside the cube of equal volume
(half-edge R (pi/6)^(1/3)) of the same cell. About three quarters of a cell is framework wall (clipped at
5000 K); the pore and a few pockets between the walls are attractive, down to about -1700 K. Grid points
sample the cell at spacing L/size.

Computation. Atoms sit on grid points, so the energy grid is exactly the circular convolution of the atom
occupancy grid with V sampled at the minimum-image distance of every grid offset: one batched FFT per
channel, the pair-potential transform shared by both channels of a cell. Each pair term is capped at 1e5 K
before the transform: a point whose total stays below the 5000 K clip never has a single term that large,
so the cap changes no unclipped value and lets the transforms run in float32.

    python -m ndgan.data.energy --n 7000 --size 32 --out energy.h5 [--seed 0] [--overwrite]
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from ..io.files import atomic_write, check_free_space
from .properties import write_properties

EPSILON_K = 115.0  # probe-O well depth, eps / k_B in kelvin
SIGMA_A = 3.47  # probe-O size, Angstrom
CUTOFF_A = 12.0  # truncation radius, Angstrom
ENERGY_RANGE_K = (-4000.0, 5000.0)  # clip range, mapped to [-1, 1]
CELL_EDGE_A = (24.0, 30.0)  # >= 2 * cutoff, so the minimum image is the only image within the cutoff
PORE_RADIUS_A = (6.0, 10.0)
OCCUPANCY = (0.45, 0.65)  # walls dense enough that the carved pore dominates the accessible volume
LATTICE_SITES = 8  # framework sites per cell edge
PAIR_CAP_K = 1e5
CHANNEL_NAMES = ("spherical_pore", "cubic_pore")


def lennard_jones(d2: torch.Tensor) -> torch.Tensor:
    """Truncated LJ energy in kelvin at squared distance ``d2`` (Angstrom^2), capped at ``PAIR_CAP_K``."""
    sr6 = (SIGMA_A**2 / d2.clamp_min(1e-6)) ** 3
    v = 4 * EPSILON_K * (sr6 * sr6 - sr6)
    return torch.where(d2 < CUTOFF_A**2, v, torch.zeros_like(v)).clamp(max=PAIR_CAP_K)


def _min_image_offsets(size: int) -> torch.Tensor:
    """Signed minimum-image grid offsets along one axis: 0, 1, ..., size/2, -(size/2 - 1), ..., -1."""
    idx = torch.arange(size, dtype=torch.float64)
    return torch.where(idx > size / 2, idx - size, idx)


def energy_grid(occupied: torch.Tensor, edge: torch.Tensor) -> torch.Tensor:
    """Probe energy in kelvin (unclipped; pair terms capped at ``PAIR_CAP_K``) on a periodic cubic grid.

    occupied: ``[B, C, S, S, S]`` framework atoms per grid point (any count); edge: ``[B]`` cell edges in
    Angstrom, shared by the C channels of a cell. Returns ``[B, C, S, S, S]`` float32: at every grid point the
    sum of V over all atoms at their minimum-image distance, as one circular convolution per grid (FFT).
    """
    size = occupied.shape[-1]
    off = _min_image_offsets(size).long()
    d2_unit = off[:, None, None] ** 2 + off[None, :, None] ** 2 + off[None, None, :] ** 2  # [S, S, S], integers
    # V depends on the squared distance only, which takes few distinct values: evaluate it once per value.
    d2_values, d2_index = torch.unique(d2_unit, return_inverse=True)
    table = lennard_jones(d2_values[None].double() * (edge.double().reshape(-1, 1) / size) ** 2).float()
    kernel_hat = torch.fft.rfftn(table[:, d2_index], dim=(-3, -2, -1))  # [B, S, S, S//2+1]
    occupied_hat = torch.fft.rfftn(occupied.float(), dim=(-3, -2, -1))  # [B, C, S, S, S//2+1]
    return torch.fft.irfftn(occupied_hat * kernel_hat[:, None], s=(size,) * 3, dim=(-3, -2, -1))


def generate(n: int, size: int = 32, seed: int = 0, batch: int = 256):
    """Yield batches ``(data [B, 2, size, size, size] float32 in [-1, 1], cell_edge [B], pore_radius [B])``."""
    check_args(n, size)
    return _generate(n, size, seed, batch)


def check_args(n: int, size: int) -> None:
    """Refuse a sample count or grid size the generator cannot make (one line naming the argument)."""
    if not isinstance(size, int) or size < LATTICE_SITES or size % LATTICE_SITES:
        raise ValueError(f"size: expected a multiple of {LATTICE_SITES} (framework sites per cell edge), got {size}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive number of samples, got {n}")


def _generate(n, size, seed, batch):
    gen = torch.Generator().manual_seed(seed)
    stride = size // LATTICE_SITES
    centre = (torch.arange(LATTICE_SITES, dtype=torch.float64) + 0.5) / LATTICE_SITES - 0.5  # sites, cell units
    lo, hi = ENERGY_RANGE_K
    for start in range(0, n, batch):
        b = min(batch, n - start)
        edge = CELL_EDGE_A[0] + (CELL_EDGE_A[1] - CELL_EDGE_A[0]) * torch.rand(b, generator=gen, dtype=torch.float64)
        radius = PORE_RADIUS_A[0] + (PORE_RADIUS_A[1] - PORE_RADIUS_A[0]) * torch.rand(b, generator=gen, dtype=torch.float64)
        occupancy = OCCUPANCY[0] + (OCCUPANCY[1] - OCCUPANCY[0]) * torch.rand(b, 1, 1, 1, generator=gen, dtype=torch.float64)
        sites = torch.rand(b, LATTICE_SITES, LATTICE_SITES, LATTICE_SITES, generator=gen, dtype=torch.float64) < occupancy
        # Site positions relative to the cell centre, in Angstrom: [B, 8, 8, 8] per axis.
        r = centre.reshape(1, -1) * edge.reshape(-1, 1)  # [B, 8]
        dist2 = r[:, :, None, None] ** 2 + r[:, None, :, None] ** 2 + r[:, None, None, :] ** 2
        cheb = torch.maximum(torch.maximum(r[:, :, None, None].abs(), r[:, None, :, None].abs()), r[:, None, None, :].abs())
        half_edge = radius * (math.pi / 6) ** (1 / 3)
        pores = (dist2 < radius.reshape(-1, 1, 1, 1) ** 2, cheb < half_edge.reshape(-1, 1, 1, 1))
        occupied = torch.zeros(b, 2, size, size, size)
        for c, pore in enumerate(pores):
            occupied[:, c, ::stride, ::stride, ::stride] = (sites & ~pore).float()
        kelvin = energy_grid(occupied, edge).clamp(lo, hi)  # [B, 2, S, S, S]
        yield (2 * (kelvin - lo) / (hi - lo) - 1).float(), edge.float(), radius.float()


def write_hdf5(path, n: int, size: int = 32, seed: int = 0, overwrite: bool = False, progress=None) -> Path:
    """Generate ``n`` samples into an HDF5 file ``path``, written to a temporary file and renamed at the end
    (an interrupted run leaves nothing behind). Returns the path."""
    try:
        import h5py
    except ImportError:
        raise ImportError("writing HDF5 needs h5py: pip install 'ndgan[hdf5]'") from None
    check_args(n, size)
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists; pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: output folder does not exist")
    check_free_space(path, n * 2 * size**3 * 4, f"{n} energy grids of {size}^3")

    def write(tmp):
        with h5py.File(tmp, "w") as h5:
            data = h5.create_dataset("data", shape=(n, 2, size, size, size), dtype="float32",
                                     chunks=(1, 2, size, size, size), compression="gzip", compression_opts=1)
            edges = h5.create_dataset("cell_edge", shape=(n,), dtype="float32")
            radii = h5.create_dataset("pore_radius", shape=(n,), dtype="float32")
            done = 0
            for x, edge, radius in generate(n, size, seed):
                data[done:done + len(x)] = x.numpy()
                write_properties(h5, x, ENERGY_RANGE_K, done, n)
                edges[done:done + len(x)] = edge.numpy()
                radii[done:done + len(x)] = radius.numpy()
                done += len(x)
                if progress:
                    progress(done, n)
            lo, hi = ENERGY_RANGE_K
            attrs = {
                "source": "ndgan.data.energy", "channel_names": list(CHANNEL_NAMES), "units": "K",
                "value_range": [lo, hi], "normalized": True,
                "normalization": "x = 2 (E - lo) / (hi - lo) - 1 with (lo, hi) = value_range",
                "periodic": True, "probe": "united-atom methane", "epsilon_K": EPSILON_K, "sigma_A": SIGMA_A,
                "cutoff_A": CUTOFF_A, "seed": seed, "spacing_note": "voxel spacing = cell_edge / size (Angstrom)",
            }
            for key, value in attrs.items():
                h5.attrs[key] = value
            edges.attrs["units"] = "Angstrom"
            radii.attrs["units"] = "Angstrom"

    atomic_write(path, write)  # temporary file, renamed when complete
    return path


def ensure(path, n: int = 7000, size: int = 32, seed: int = 0) -> Path:
    """Return ``path``, generating the dataset first if it is missing (a config's first use caches it).

    An existing file made with other settings is an error, never silently replaced.
    """
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_hdf5(path, n, size, seed)
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            found = (h5["data"].shape[0], h5["data"].shape[-1], int(h5.attrs.get("seed", -1)))
    except (OSError, KeyError) as e:
        raise ValueError(f"{path}: not an energy-grid HDF5 file ({type(e).__name__}: {str(e).splitlines()[0]}); "
                         f"point data.path elsewhere or delete the file to regenerate") from None
    if found != (n, size, seed):
        raise ValueError(f"{path}: holds energy grids with (n, size, seed) = {found}, the config asks for "
                         f"{(n, size, seed)}; point data.path elsewhere or delete the file to regenerate")
    return path


if __name__ == "__main__":  # python -m ndgan.data.energy: the command lives in ndgan/cli/energy.py
    import sys

    from ..cli.energy import main

    sys.exit(main())
