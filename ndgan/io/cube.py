"""Gaussian cube files, a grid format materials programs exchange energy grids in (conventions differ between
them: this module follows Gaussian's, below).

Layout: two comment lines; ``natoms ox oy oz`` (the origin); three lines ``n_i v_ix v_iy v_iz`` (points and
step vector of grid axis i); ``natoms`` lines ``Z charge x y z``; with a negative ``natoms``, one line ``m id_1
... id_m`` (m values per point); then the values, the last axis fastest. Lengths are in bohr where ``n_i`` is
positive and in angstrom where it is negative. The values carry no unit in the format: the reader takes them
as they are, and the writer records the unit in the first comment line.

``read_cube`` returns the values ``[m, n_1, n_2, n_3]`` and the geometry in angstrom (``cell`` rows are the
grid axes times their point counts: the periodic cell of a grid whose points sample it at ``(i, j, k) / n``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BOHR_A = 0.529177210903  # CODATA 2018


@dataclass
class Cube:
    """``values`` ``[m, n1, n2, n3]`` float64; ``cell`` ``[3, 3]`` and ``origin`` ``[3]`` in angstrom;
    ``atoms`` ``[k, 5]`` (Z, charge, x, y, z in angstrom); the two ``comments``."""

    values: np.ndarray
    cell: np.ndarray
    origin: np.ndarray
    atoms: np.ndarray = field(default_factory=lambda: np.zeros((0, 5)))
    comments: tuple = ("", "")


def _numbers(line: str, count: int | None, path, what: str, ints: int = 0) -> list:
    parts = line.split()
    if count is not None and len(parts) < count:
        raise ValueError(f"{path}: {what}: expected {count} numbers, got {line.strip()!r}; not a cube file")
    try:
        return [int(p) if i < ints else float(p) for i, p in enumerate(parts[:count] if count else parts)]
    except ValueError:
        raise ValueError(f"{path}: {what}: expected numbers, got {line.strip()!r}; not a cube file") from None


def read_cube(path) -> Cube:
    """Read the cube file ``path``; a header that disagrees with the number of values, or anything that is
    not a cube file, is a one-line ``ValueError`` naming the file."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read it as a cube file ({e})") from None
    if len(lines) < 6:
        raise ValueError(f"{path}: {len(lines)} lines, shorter than a cube file's header")
    natoms, *origin = _numbers(lines[2], 4, path, "line 3 (atoms and origin)", ints=1)
    axes = [_numbers(lines[3 + i], 4, path, f"line {4 + i} (grid axis {i + 1})", ints=1) for i in range(3)]
    counts = [abs(a[0]) for a in axes]
    if min(counts) < 1:
        raise ValueError(f"{path}: grid axis with {min(counts)} points in the header")
    # bohr where the count is positive, angstrom where negative; the origin and atoms follow the first axis
    scales = [BOHR_A if a[0] > 0 else 1.0 for a in axes]
    steps = np.array([np.array(a[1:]) * s for a, s in zip(axes, scales)])
    head = 6 + abs(natoms)
    if len(lines) < head:
        raise ValueError(f"{path}: the header lists {abs(natoms)} atoms, the file ends after {len(lines) - 6}")
    atoms = np.array([_numbers(lines[6 + i], 5, path, f"line {7 + i} (atom {i + 1})") for i in range(abs(natoms))]
                     ).reshape(-1, 5)
    atoms[:, 2:] *= scales[0]
    per_point = 1
    if natoms < 0:  # a line of dataset ids follows the atoms
        ids = _numbers(lines[head], None, path, f"line {head + 1} (dataset ids)", ints=1)
        per_point, head = int(ids[0]), head + 1
    try:
        values = np.array(" ".join(lines[head:]).split(), dtype=np.float64)
    except ValueError:
        raise ValueError(f"{path}: non-numeric values after the header") from None
    expected = per_point * int(np.prod(counts))
    if values.size != expected:
        raise ValueError(f"{path}: the header gives a {counts[0]}x{counts[1]}x{counts[2]} grid"
                         f"{f' of {per_point} values' if per_point > 1 else ''} ({expected} values), the file "
                         f"holds {values.size}; the header and the data disagree")
    if not np.isfinite(values).all():
        raise ValueError(f"{path}: NaN or Inf among the values")
    values = values.reshape(*counts, per_point).transpose(3, 0, 1, 2)
    cell = steps * np.array(counts)[:, None]
    return Cube(values, cell, np.array(origin) * scales[0], atoms, (lines[0], lines[1]))


def write_cube(path, values: np.ndarray, cell: np.ndarray, origin=None, atoms=None, comment: str = "") -> None:
    """Write ``values`` ``[n1, n2, n3]`` (or ``[m, n1, n2, n3]``, m values per point) on the periodic
    ``cell`` ``[3, 3]`` (angstrom, rows a, b, c: grid axis i steps by ``cell[i] / n_i``), lengths in bohr."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 3:
        values = values[None]
    if values.ndim != 4:
        raise ValueError(f"write_cube: expected values [n1, n2, n3] or [m, n1, n2, n3], got {values.shape}")
    m, counts = values.shape[0], values.shape[1:]
    steps = np.asarray(cell, dtype=np.float64) / np.array(counts)[:, None] / BOHR_A
    origin = np.zeros(3) if origin is None else np.asarray(origin, dtype=np.float64) / BOHR_A
    atoms = np.zeros((0, 5)) if atoms is None else np.asarray(atoms, dtype=np.float64)
    natoms = len(atoms) if m == 1 else -len(atoms)
    if m > 1 and not len(atoms):
        raise ValueError("write_cube: several values per point need at least one atom line in the format")
    out = [comment.replace("\n", " ")[:200], "written by ndgan (lengths in bohr)",
           f"{natoms:5d} {origin[0]:12.6f} {origin[1]:12.6f} {origin[2]:12.6f}"]
    out += [f"{n:5d} {s[0]:12.6f} {s[1]:12.6f} {s[2]:12.6f}" for n, s in zip(counts, steps)]
    out += [f"{int(a[0]):5d} {a[1]:12.6f} {a[2] / BOHR_A:12.6f} {a[3] / BOHR_A:12.6f} {a[4] / BOHR_A:12.6f}"
            for a in atoms]
    if m > 1:
        out.append(" ".join(str(v) for v in [m, *range(1, m + 1)]))
    flat = values.transpose(1, 2, 3, 0).reshape(-1, m * counts[2])  # per (i, j): the k line, m values each
    for row in flat:
        out += [" ".join(f"{v:13.5E}" for v in row[i:i + 6]) for i in range(0, len(row), 6)]
    Path(path).write_text("\n".join(out) + "\n")
