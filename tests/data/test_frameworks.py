"""Energy grids of real frameworks: the grid against a brute-force sum over atoms and lattice images, the
built-in cells' physics, the frameworks' own symmetry, the CIF reader and its refusals, and the command."""

import itertools
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from ndgan.cli.energy import main as energy_cli
from ndgan.data import energy, frameworks
from ndgan.data.frameworks import Framework



CIFS = Path(__file__).parent / "frameworks"


def cell_matrix(a, b, c, alpha, beta, gamma):
    """Rows a, b, c of a cell from its lengths and angles (degrees), a along x, b in the xy plane."""
    al, be, ga = np.radians([alpha, beta, gamma])
    bx, by = b * np.cos(ga), b * np.sin(ga)
    cx = c * np.cos(be)
    cy = c * (np.cos(al) - np.cos(be) * np.cos(ga)) / np.sin(ga)
    return np.array([[a, 0, 0], [bx, by, 0], [cx, cy, np.sqrt(c * c - cx * cx - cy * cy)]])


def brute_energy(fw: Framework, size: int, table=frameworks.PAIR_PARAMETERS, cutoff=energy.CUTOFF_A):
    """Every grid point against every atom in every lattice image near enough to matter: a double loop with
    no minimum-image convention and no supercell."""
    cell = fw.cell
    volume = abs(np.linalg.det(cell))
    widths = [volume / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])) for i in range(3)]
    reach = [int(np.ceil(cutoff / w)) + 1 for w in widths]
    images = np.array(list(itertools.product(*[range(-k, k + 1) for k in reach]))) @ cell  # [I, 3]
    out = np.zeros((size,) * 3)
    for p in itertools.product(range(size), repeat=3):
        r = (np.array(p) / size) @ cell
        total = 0.0
        for f, element in zip(fw.fract, fw.elements):
            eps, sigma = table[element]
            d = np.sqrt((((f @ cell) + images - r) ** 2).sum(-1))
            d = d[d < cutoff]
            v = 4 * eps * ((sigma / np.maximum(d, 1e-6)) ** 12 - (sigma / np.maximum(d, 1e-6)) ** 6)
            total += np.minimum(v, energy.PAIR_CAP_K).sum()
        out[p] = total
    return out


@pytest.mark.parametrize("angles", [(90, 90, 90), (75, 100, 112)], ids=["orthorhombic", "triclinic"])
def test_grid_equals_brute_force_over_atoms_and_images(angles):
    """Short edges (supercells needed along every axis) and several elements, orthorhombic and triclinic."""
    rng = np.random.default_rng(0)
    cell = cell_matrix(7.0, 8.5, 10.0, *angles)
    fw = Framework("t", cell, rng.random((5, 3)), ["O", "Si", "Zn", "C", "O"])
    assert frameworks.supercell_repeats(cell) == tuple(int(np.ceil(24 / w - 1e-9)) for w in
                                                       [abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])) for i in range(3)])
    assert min(frameworks.supercell_repeats(cell)) >= 3
    got = frameworks.energy_grid(fw, 4).numpy()
    np.testing.assert_allclose(got, brute_energy(fw, 4), rtol=1e-9, atol=1e-6)


def test_a_real_triclinic_framework_equals_brute_force():
    fw = frameworks.read_cif(CIFS / "CHA.cif")
    np.testing.assert_allclose(frameworks.energy_grid(fw, 4).numpy(), brute_energy(fw, 4), rtol=1e-9, atol=1e-6)


def test_same_physics_as_the_built_in_cells():
    """Oxygen atoms on the lattice of a built-in cubic cell give the built-in FFT grid (float32 there)."""
    size, edge = 16, 25.0
    occupied = torch.zeros(1, 1, size, size, size)
    sites = [(0, 0, 0), (3, 7, 12), (8, 8, 8), (15, 1, 6), (5, 5, 14)]
    for s in sites:
        occupied[(0, 0, *s)] = 1
    want = energy.energy_grid(occupied, torch.tensor([edge]))[0, 0].double()
    fw = Framework("cubic", np.eye(3) * edge, np.array(sites) / size, ["O"] * len(sites))
    got = frameworks.energy_grid(fw, size)
    torch.testing.assert_close(got.clamp(max=5000), want.clamp(max=5000), rtol=1e-4, atol=0.05)


def _shift(grid, op):
    """E(op(r)) on the grid, for op a signed axis permutation plus a translation in grid steps."""
    perm, signs, shift = op
    size = grid.shape[0]
    idx = np.indices(grid.shape).reshape(3, -1)
    mapped = [(signs[k] * idx[perm[k]] + shift[k]) % size for k in range(3)]
    return grid[tuple(mapped)].reshape(grid.shape)


@pytest.mark.parametrize("name, ops", [
    ("CHA", [((2, 0, 1), (1, 1, 1), (0, 0, 0)), ((0, 1, 2), (-1, -1, -1), (0, 0, 0)),
             ((1, 0, 2), (-1, -1, -1), (0, 0, 0))]),
    ("SOD", [((0, 1, 2), (-1, -1, 1), (0, 0, 0)), ((2, 0, 1), (1, 1, 1), (0, 0, 0)),
             ((1, 0, 2), (1, 1, 1), (4, 4, 4))]),
])
def test_grid_is_invariant_under_the_frameworks_symmetry(name, ops):
    """x,y,z -> z,x,y and inversions for CHA (R-3m), -x,-y,z, z,x,y and y+1/2,x+1/2,z+1/2 for SOD (P-43n)."""
    grid = frameworks.energy_grid(frameworks.read_cif(CIFS / f"{name}.cif"), 8).numpy()
    assert grid.std() > 100  # a structured grid, not a constant
    for op in ops:
        np.testing.assert_allclose(_shift(grid, op), grid, rtol=1e-8, atol=1e-6, err_msg=str(op))
    # and not under a translation that is no symmetry
    assert not np.allclose(_shift(grid, ((0, 1, 2), (1, 1, 1), (1, 0, 0))), grid, atol=1.0)


@pytest.mark.parametrize("name, counts", [("CHA", {"Si": 12, "O": 24}), ("SOD", {"Si": 6, "Al": 6, "O": 24}),
                                          ("IRMOF-1", {"Zn": 32, "O": 104, "C": 192, "H": 96})])
def test_cif_reader_expands_the_symmetry(name, counts):
    fw = frameworks.read_cif(CIFS / f"{name}.cif")
    assert {e: fw.elements.count(e) for e in set(fw.elements)} == counts
    assert ((fw.fract >= 0) & (fw.fract < 1)).all()
    # no two atoms closer than a bond: the expansion merged the copies on special positions
    cart = fw.fract @ fw.cell
    delta = fw.fract[:, None] - fw.fract[None]
    d = np.linalg.norm((delta - np.round(delta)) @ fw.cell, axis=-1) + np.eye(len(cart)) * 10
    assert d.min() > 0.9


def test_cha_cell_is_the_published_rhombohedral_one():
    fw = frameworks.read_cif(CIFS / "CHA.cif")
    lengths = np.linalg.norm(fw.cell, axis=1)
    np.testing.assert_allclose(lengths, 9.459, rtol=1e-6)
    cos = fw.cell[0] @ fw.cell[1] / lengths[0] / lengths[1]
    np.testing.assert_allclose(np.degrees(np.arccos(cos)), 94.07, rtol=1e-6)


def _cif(tmp_path, body, name="x.cif"):
    path = tmp_path / name
    path.write_text(body)
    return path


_CELL = "_cell_length_a 10\n_cell_length_b 10\n_cell_length_c 10\n_cell_angle_alpha 90\n" \
        "_cell_angle_beta 90\n_cell_angle_gamma 90\n"
_SITES = "loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n" \
         "_atom_site_fract_z\n"


@pytest.mark.parametrize("body, message", [
    ("data_x\n" + _SITES + "O1 O 0.1 0.2 0.3\n", "no unit cell"),
    ("data_x\n" + _CELL + _SITES.replace("_atom_site_fract_z\n", "_atom_site_fract_z\n_atom_site_occupancy\n")
     + "O1 O 0.1 0.2 0.3 0.5\n", "partial occupancies at O1"),
    ("data_x\n" + _CELL, "no atom sites"),
    ("this is not a cif", "not a readable CIF file"),
])
def test_bad_cif_is_one_line_naming_the_file(tmp_path, capsys, body, message):
    path = _cif(tmp_path, body)
    with pytest.raises(ValueError, match=message) as err:
        frameworks.read_cif(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert energy_cli(["--cif", str(path), "--size", "4", "--out", str(tmp_path / "o.h5")]) == 2
    out = capsys.readouterr().err
    assert message in out and out.count("\n") == 1
    assert not (tmp_path / "o.h5").exists()


def test_element_missing_from_the_table_names_file_and_element(tmp_path, capsys):
    path = _cif(tmp_path, "data_x\n" + _CELL + _SITES + "Tc1 Tc 0.1 0.2 0.3\n")
    assert energy_cli(["--cif", str(path), "--size", "4", "--out", str(tmp_path / "o.h5")]) == 2
    out = capsys.readouterr().err
    assert str(path) in out and "no probe pair parameters for Tc" in out and "--params" in out
    # a parameter file supplies it
    params = tmp_path / "p.json"
    params.write_text(json.dumps({"Tc": [20.0, 3.0]}))
    assert energy_cli(["--cif", str(path), "--size", "4", "--out", str(tmp_path / "o.h5"), "--params", str(params)]) == 0


@pytest.mark.parametrize("text, message", [('{"O": [100]}', "O: expected"), ('{"O": [-1, 3]}', "O: expected"),
                                           ("[1, 2]", "expected a mapping"), ("{", "not a valid")])
def test_bad_parameter_file(tmp_path, text, message):
    path = tmp_path / "p.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        frameworks.load_parameters(path)


def test_parameter_override_changes_only_that_element(tmp_path):
    """Si and Al do not interact by default (the zeolite model's O-only dispersion); a file turns Al on."""
    fw = frameworks.read_cif(CIFS / "SOD.cif")
    only = lambda keep: Framework("sod", fw.cell, fw.fract[[keep(e) for e in fw.elements]],  # noqa: E731
                                  [e for e in fw.elements if keep(e)])
    base = frameworks.energy_grid(fw, 4)
    torch.testing.assert_close(base, frameworks.energy_grid(only(lambda e: e == "O"), 4))
    path = tmp_path / "p.yaml"
    path.write_text("Al: [100.0, 3.5]\n")
    table = frameworks.load_parameters(path)
    assert table["Al"] == (100.0, 3.5) and table["O"] == frameworks.PAIR_PARAMETERS["O"]
    with_al = frameworks.energy_grid(fw, 4, table)
    al_only = frameworks.energy_grid(only(lambda e: e == "Al"), 4, table)
    torch.testing.assert_close(with_al, base + al_only)  # the pair sum is additive over atoms
    assert (al_only != 0).any()


def test_pair_table_documents_its_mixing():
    eps, sigma = frameworks.PAIR_PARAMETERS["Zn"]
    assert eps == pytest.approx(np.sqrt(148.0 * 62.4)) and sigma == pytest.approx((3.73 + 2.462) / 2)
    assert frameworks.PAIR_PARAMETERS["O"] == (energy.EPSILON_K, energy.SIGMA_A)
    assert frameworks.PAIR_PARAMETERS["Si"][0] == frameworks.PAIR_PARAMETERS["Al"][0] == 0


def test_cli_writes_the_frameworks_and_the_dataset_reads_them(tmp_path):
    from ndgan.data.hdf5 import HDF5Dataset

    out = tmp_path / "g.h5"
    assert energy_cli(["--cif", str(CIFS), "--size", "8", "--out", str(out)]) == 0
    with h5py.File(out) as h5:
        assert h5["data"].shape == (3, 1, 8, 8, 8)
        assert [n.decode() for n in h5["name"][:]] == ["CHA", "IRMOF-1", "SOD"]
        assert h5["cell"].shape == (3, 3, 3) and h5.attrs["periodic"]
        assert set(json.loads(h5.attrs["pair_parameters"])) == {"Si", "O", "Al", "Zn", "C", "H"}
        assert json.loads(h5.attrs["pair_parameters"])["O"] == [energy.EPSILON_K, energy.SIGMA_A]
        values = h5["data"][:]
    assert values.min() >= -1 and values.max() <= 1 and values.min() < 0.5  # attractive points exist
    ds = HDF5Dataset(out)
    assert ds[0].shape == (1, 8, 8, 8) and ds.metadata["periodic"] and ds.metadata["units"] == "K"
    np.testing.assert_allclose(ds.metadata["cell"], np.median(np.stack([frameworks.read_cif(CIFS / f"{n}.cif").cell
                                                                        for n in ("CHA", "IRMOF-1", "SOD")]), 0),
                               rtol=1e-5)
    # the adsorption properties are stored per framework and serve as conditioning labels
    labelled = HDF5Dataset(out, labels=["heat_of_adsorption"])
    with h5py.File(out) as h5:
        heats = h5["properties/heat_of_adsorption"][:, 0]
    m = labelled.metadata
    np.testing.assert_allclose(float(labelled[2][1][0]) * m["label_std"][0] + m["label_mean"][0], heats[2], rtol=1e-5)
    assert heats[1] < heats[0]  # IRMOF-1's wide pores hold methane more weakly than chabazite's cages
    # the CHA grid is the clipped, normalised energy
    cha = frameworks.normalised(frameworks.energy_grid(frameworks.read_cif(CIFS / "CHA.cif"), 8)).float()
    torch.testing.assert_close(ds[0][0], cha)
    assert energy_cli(["--cif", str(CIFS), "--size", "8", "--out", str(out)]) == 2  # no overwrite
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.h5"]


def test_cli_refuses_built_in_options_with_cif(tmp_path, capsys):
    assert energy_cli(["--cif", str(CIFS), "--n", "3", "--out", str(tmp_path / "g.h5")]) == 2
    assert "--n and --seed" in capsys.readouterr().err
    assert energy_cli(["--params", "p.json", "--n", "3", "--out", str(tmp_path / "g.h5")]) == 2
    assert "pass it with --cif" in capsys.readouterr().err
