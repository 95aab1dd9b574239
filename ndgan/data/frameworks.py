"""Probe-energy grids of real porous frameworks (zeolites, MOFs) read from CIF files, with the physics of the
built-in cells (``ndgan.data.energy``).

Physics. A united-atom methane probe interacts with every framework atom through the truncated Lennard-Jones
potential ``V(d) = 4 eps [(sigma/d)^12 - (sigma/d)^6]`` for ``d < r_c`` (12 Angstrom), each pair term capped at
1e5 K, summed over all periodic images of all atoms, clipped to [-4000, 5000] K and mapped to [-1, 1], as in
the built-in cells. The probe-atom parameters ``(eps/k_B in K, sigma in Angstrom)`` come from
``PAIR_PARAMETERS``:

- oxygen: 115 K and 3.47 Angstrom, the probe-O pair of the built-in cells (the methane-zeolite oxygen pair of
  Dubbeldam et al., J. Phys. Chem. B 108, 12301 (2004));
- silicon and aluminium: no interaction (epsilon 0), as in that zeolite model, where the oxygens that shield
  the tetrahedral atoms carry the whole dispersion interaction;
- every other element: Lorentz-Berthelot mixing (``eps = sqrt(eps_probe eps_atom)``, ``sigma = (sigma_probe +
  sigma_atom) / 2``) of TraPPE united-atom methane (148 K, 3.73 Angstrom; Martin and Siepmann, J. Phys.
  Chem. B 102, 2569 (1998)) with the atom's UFF parameters (Rappe et al., J. Am. Chem. Soc. 114, 10024 (1992),
  ``UFF``).

A user overrides any pair with a YAML or JSON file mapping element symbols to ``[epsilon_K, sigma_A]``.

Cells. Cells may be triclinic: grid point ``(i, j, k)`` of a ``size^3`` grid sits at the fractional coordinates
``(i, j, k) / size`` of the cell (so the voxels are the cell's own parallelepipeds), and distances use the cell
matrix. Where a perpendicular width of the cell is below ``2 r_c``, the atoms are replicated into a supercell
that is at least ``2 r_c`` wide in every direction; then the minimum image (fractional differences wrapped to
[-1/2, 1/2)) is the only image within the cutoff, and the sum is exact.

CIF files are read with gemmi (``pip install 'ndgan[materials]'``), symmetry included.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .energy import CUTOFF_A, ENERGY_RANGE_K, EPSILON_K, PAIR_CAP_K, SIGMA_A
from .properties import write_properties

#: TraPPE united-atom methane: eps / k_B in kelvin, sigma in Angstrom.
PROBE = (148.0, 3.73)
#: UFF Lennard-Jones parameters per element: eps / k_B in kelvin (D_i times 503.22), sigma in Angstrom
#: (x_i / 2^(1/6)).
UFF = {
    "H": (22.14, 2.571), "He": (10.9, 2.104), "Li": (12.58, 2.183), "Be": (42.77, 2.446), "B": (90.58, 3.638),
    "C": (52.84, 3.431), "N": (34.72, 3.261), "O": (30.19, 3.118), "F": (25.16, 2.997), "Ne": (21.13, 2.889),
    "Na": (15.1, 2.658), "Mg": (55.86, 2.691), "Al": (254.09, 4.008), "Si": (202.29, 3.826),
    "P": (153.48, 3.695), "S": (137.88, 3.595), "Cl": (114.23, 3.516), "Ar": (93.08, 3.446), "K": (17.61, 3.396),
    "Ca": (119.76, 3.028), "Sc": (9.56, 2.936), "Ti": (8.55, 2.829), "V": (8.05, 2.801), "Cr": (7.55, 2.693),
    "Mn": (6.54, 2.638), "Fe": (6.54, 2.594), "Co": (7.05, 2.559), "Ni": (7.55, 2.525), "Cu": (2.52, 3.114),
    "Zn": (62.4, 2.462), "Ga": (208.81, 3.905), "Ge": (190.69, 3.813), "As": (155.49, 3.769),
    "Se": (146.43, 3.746), "Br": (126.29, 3.732), "Kr": (110.69, 3.689), "Rb": (20.13, 3.665),
    "Sr": (118.25, 3.244), "Y": (36.23, 2.98), "Zr": (34.72, 2.783), "Nb": (29.69, 2.82), "Mo": (28.18, 2.719),
    "Ru": (28.18, 2.64), "Rh": (26.67, 2.609), "Pd": (24.15, 2.583), "Ag": (18.11, 2.805),
    "Cd": (114.73, 2.537), "In": (301.39, 3.976), "Sn": (285.28, 3.913), "Sb": (225.93, 3.938),
    "Te": (200.28, 3.982), "I": (170.57, 4.009), "Xe": (167.04, 3.924), "Cs": (22.64, 4.024),
    "Ba": (183.15, 3.299), "La": (8.56, 3.138), "Ce": (6.54, 3.168), "Gd": (4.53, 3.001), "Hf": (36.23, 2.798),
    "W": (33.71, 2.734), "Pt": (40.25, 2.454), "Au": (19.62, 2.934), "Hg": (193.71, 2.41), "Pb": (333.6, 3.828),
    "Bi": (260.64, 3.893), "U": (11.07, 3.025),
}


def _mixed(element: str) -> tuple[float, float]:
    eps, sigma = UFF[element]
    return math.sqrt(PROBE[0] * eps), (PROBE[1] + sigma) / 2


#: Probe-atom pair parameters per element, ``(eps/k_B in K, sigma in Angstrom)``.
PAIR_PARAMETERS = {element: _mixed(element) for element in UFF} | {
    "O": (EPSILON_K, SIGMA_A), "Si": (0.0, _mixed("Si")[1]), "Al": (0.0, _mixed("Al")[1])}


def load_parameters(path=None) -> dict:
    """``PAIR_PARAMETERS`` with the pairs of the YAML or JSON file ``path`` (element -> [epsilon_K, sigma_A])
    in place of the defaults."""
    table = dict(PAIR_PARAMETERS)
    if path is None:
        return table
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise FileNotFoundError(f"{path}: cannot read the pair-parameter file ({e.strerror})") from None
    import yaml

    try:
        given = yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except Exception as e:  # noqa: BLE001 - a parse error of either format, reported in one line
        raise ValueError(f"{path}: not a valid pair-parameter file ({str(e).splitlines()[0]}); expected a "
                         f"mapping such as {{\"Zn\": [42.0, 2.9]}} (epsilon_K, sigma_A)") from None
    if not isinstance(given, dict):
        raise ValueError(f"{path}: expected a mapping of element symbols to [epsilon_K, sigma_A], got "
                         f"{type(given).__name__}")
    for element, value in given.items():
        ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        if not ok or value[0] < 0 or value[1] <= 0:
            raise ValueError(f"{path}: {element}: expected [epsilon_K >= 0, sigma_A > 0], got {value!r}")
        table[str(element)] = (float(value[0]), float(value[1]))
    return table


@dataclass
class Framework:
    """Atoms of one unit cell: ``cell`` ``[3, 3]`` (rows are the cell vectors a, b, c in Angstrom), ``fract``
    ``[n, 3]`` fractional coordinates in [0, 1), ``elements`` (symbols, one per atom)."""

    name: str
    cell: np.ndarray
    fract: np.ndarray
    elements: list


def read_cif(path) -> Framework:
    """The framework of the CIF file ``path``: cell and every atom of the unit cell (symmetry applied).

    Refused, with one line naming the file: a file gemmi cannot parse, no cell, partial occupancies, no atoms.
    """
    path = Path(path)
    try:
        import gemmi
    except ImportError:
        raise ImportError("reading CIF files needs gemmi: pip install 'ndgan[materials]'") from None
    try:
        block = gemmi.cif.read(str(path)).sole_block()
    except Exception as e:  # noqa: BLE001 - gemmi raises RuntimeError or ValueError with a long message
        raise ValueError(f"{path}: not a readable CIF file ({str(e).splitlines()[0]})") from None
    missing = [tag for tag in ("_cell_length_a", "_cell_length_b", "_cell_length_c", "_cell_angle_alpha",
                               "_cell_angle_beta", "_cell_angle_gamma") if block.find_value(tag) is None]
    if missing:
        raise ValueError(f"{path}: no unit cell ({', '.join(missing)} missing); a periodic framework needs its "
                         f"cell lengths and angles")
    small = gemmi.make_small_structure_from_block(block)
    partial = [site.label for site in small.sites if abs(site.occ - 1) > 1e-6]
    if partial:
        raise ValueError(f"{path}: partial occupancies at {', '.join(partial[:5])}"
                         f"{' ...' if len(partial) > 5 else ''}; resolve the disorder into one ordered framework "
                         f"first")
    sites = small.get_all_unit_cell_sites()
    if not sites:
        raise ValueError(f"{path}: no atom sites (_atom_site_fract_x/y/z)")
    c = small.cell
    cell = np.array(c.orth.mat.tolist()).T  # columns of the orthogonalisation matrix are a, b, c
    if not np.isfinite(cell).all() or abs(np.linalg.det(cell)) < 1e-6:
        raise ValueError(f"{path}: degenerate cell {c.a:g} {c.b:g} {c.c:g} / {c.alpha:g} {c.beta:g} {c.gamma:g}")
    fract = np.array([[s.fract.x, s.fract.y, s.fract.z] for s in sites]) % 1.0
    fract[fract >= 1.0] = 0.0  # -1e-17 % 1 is 1.0
    elements = [s.element.name for s in sites]
    return Framework(block.name or path.stem, cell, fract, elements)


def supercell_repeats(cell: np.ndarray, cutoff: float = CUTOFF_A) -> tuple[int, int, int]:
    """Repeats along a, b, c that make every perpendicular width of the cell at least ``2 cutoff``."""
    volume = abs(np.linalg.det(cell))
    widths = [volume / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])) for i in range(3)]
    return tuple(max(1, math.ceil(2 * cutoff / w - 1e-9)) for w in widths)


def pair_arrays(framework: Framework, table: dict, where: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Per-atom ``(eps, sigma)`` from ``table``; an element missing from it is an error naming the file."""
    missing = sorted(set(framework.elements) - set(table))
    if missing:
        raise ValueError(f"{where or framework.name}: no probe pair parameters for {', '.join(missing)}; add them "
                         f"to a parameter file (element: [epsilon_K, sigma_A]) and pass it with --params")
    eps = np.array([table[e][0] for e in framework.elements], dtype=np.float64)
    sigma = np.array([table[e][1] for e in framework.elements], dtype=np.float64)
    return eps, sigma


def energy_grid(framework: Framework, size: int = 32, table: dict | None = None, cutoff: float = CUTOFF_A,
                where: str = "", chunk: int = 4_000_000) -> torch.Tensor:
    """Probe energy in kelvin (pair terms capped at ``PAIR_CAP_K``, not clipped) on the ``size^3`` grid of
    fractional points ``(i, j, k) / size``: ``[size, size, size]`` float64."""
    table = PAIR_PARAMETERS if table is None else table
    eps, sigma = pair_arrays(framework, table, where)
    reps = supercell_repeats(framework.cell, cutoff)
    shifts = np.stack(np.meshgrid(*[np.arange(r) for r in reps], indexing="ij"), -1).reshape(-1, 1, 3)
    atoms = ((framework.fract[None] + shifts) / np.array(reps)).reshape(-1, 3)  # supercell fractions
    eps, sigma = np.tile(eps, len(shifts)), np.tile(sigma, len(shifts))
    keep = eps > 0  # atoms without interaction add nothing
    atoms, eps, sigma = (torch.from_numpy(a[keep]) for a in (atoms, eps, sigma))
    supercell = torch.from_numpy(framework.cell * np.array(reps)[:, None])  # rows: n_a a, n_b b, n_c c
    axis = torch.arange(size, dtype=torch.float64) / size
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    points = points / torch.tensor(reps, dtype=torch.float64)  # the grid of the first cell, supercell fractions
    out = torch.zeros(len(points), dtype=torch.float64)
    step = max(1, chunk // max(1, len(atoms)))
    for start in range(0, len(points), step):
        delta = points[start:start + step, None] - atoms[None]  # [P, A, 3]
        delta -= torch.round(delta)
        d2 = (delta @ supercell).square().sum(-1)
        sr6 = (sigma.square() / d2.clamp_min(1e-12)) ** 3
        v = (4 * eps * (sr6 * sr6 - sr6)).clamp(max=PAIR_CAP_K)
        out[start:start + step] = torch.where(d2 < cutoff**2, v, torch.zeros_like(v)).sum(-1)
    return out.reshape(size, size, size)


def normalised(kelvin: torch.Tensor) -> torch.Tensor:
    """Clip to ``ENERGY_RANGE_K`` and map to [-1, 1], as the built-in cells."""
    lo, hi = ENERGY_RANGE_K
    return 2 * (kelvin.clamp(lo, hi) - lo) / (hi - lo) - 1


def find_cifs(inputs) -> list[Path]:
    """The CIF files named by ``inputs``: files as given, folders by their ``*.cif`` files (sorted)."""
    found = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".cif")
            if not files:
                raise FileNotFoundError(f"{path}: no .cif files in this folder")
            found += files
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such CIF file or folder")
    return found


def write_hdf5(inputs, out, size: int = 32, params=None, overwrite: bool = False, progress=None) -> Path:
    """Energy grids of the frameworks in ``inputs`` (CIF files or folders) into the HDF5 file ``out``: dataset
    ``data`` ``[N, 1, S, S, S]`` in [-1, 1], ``cell`` ``[N, 3, 3]`` (Angstrom, rows a, b, c), ``name`` ``[N]``,
    and the mapping and physics as attributes. Every file is read and checked before anything is written; the
    output is written to a temporary file and renamed at the end."""
    import h5py

    from ..io.files import atomic_write, check_free_space

    if not isinstance(size, int) or size < 2:
        raise ValueError(f"--size: expected an integer of at least 2 grid points per cell edge, got {size}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"{out.parent}: output folder does not exist")
    table = load_parameters(params)
    files = find_cifs(inputs)
    frameworks = [read_cif(f) for f in files]
    for f, fw in zip(files, frameworks):
        pair_arrays(fw, table, str(f))  # every element known before the first grid is computed
    check_free_space(out, len(files) * size**3 * 4, f"{len(files)} energy grids of {size}^3")
    used = sorted({e for fw in frameworks for e in fw.elements})

    def write(tmp):
        with h5py.File(tmp, "w") as h5:
            data = h5.create_dataset("data", (len(files), 1, size, size, size), "float32",
                                     chunks=(1, 1, size, size, size), compression="gzip", compression_opts=1)
            cells = h5.create_dataset("cell", data=np.stack([fw.cell for fw in frameworks]).astype(np.float32))
            cells.attrs["units"] = "Angstrom"
            h5.create_dataset("name", data=[fw.name for fw in frameworks], dtype=h5py.string_dtype())
            h5.create_dataset("file", data=[str(f) for f in files], dtype=h5py.string_dtype())
            for i, (f, fw) in enumerate(zip(files, frameworks)):
                grid = normalised(energy_grid(fw, size, table, where=str(f))).float()
                data[i, 0] = grid.numpy()
                write_properties(h5, grid[None, None], ENERGY_RANGE_K, i, len(files))
                if progress:
                    progress(i + 1, len(files))
            lo, hi = ENERGY_RANGE_K
            attrs = {
                "source": "ndgan.data.frameworks", "channel_names": ["energy"], "units": "K",
                "value_range": [lo, hi], "normalized": True,
                "normalization": "x = 2 (E - lo) / (hi - lo) - 1 with (lo, hi) = value_range",
                "periodic": True, "probe": "united-atom methane", "cutoff_A": CUTOFF_A,
                "pair_parameters": json.dumps({e: list(table[e]) for e in used}),
                "grid": "point (i, j, k) at fractional coordinates (i, j, k) / size of the cell",
            }
            for key, value in attrs.items():
                h5.attrs[key] = value

    atomic_write(out, write)
    return out
