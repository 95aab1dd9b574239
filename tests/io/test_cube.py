"""Gaussian cube files: a hand-written file read value by value, bohr and angstrom headers, round trips, the
data source, and the refusals."""

import numpy as np
import pytest
import torch

from ndgan.data import open_dataset
from ndgan.io.cube import BOHR_A, read_cube, write_cube

HAND = """a hand-written cube
second comment
    1    0.500000    0.000000    0.000000
    2    1.000000    0.000000    0.000000
    2    0.000000    2.000000    0.000000
    3    0.300000    0.000000    1.500000
    8    0.000000    1.000000    0.000000    0.000000
 1 2 3 4 5 6
 7 8 9 10 11 12
"""


def test_hand_written_file_last_axis_fastest_in_bohr(tmp_path):
    path = tmp_path / "h.cube"
    path.write_text(HAND)
    cube = read_cube(path)
    assert cube.values.shape == (1, 2, 2, 3)
    i, j, k = np.indices((2, 2, 3))
    np.testing.assert_array_equal(cube.values[0], 1 + k + 3 * j + 6 * i)
    np.testing.assert_allclose(cube.cell, np.array([[2, 0, 0], [0, 4, 0], [0.9, 0, 4.5]]) * BOHR_A)
    np.testing.assert_allclose(cube.origin, [0.5 * BOHR_A, 0, 0])
    np.testing.assert_allclose(cube.atoms, [[8, 0, BOHR_A, 0, 0]])
    assert cube.comments == ("a hand-written cube", "second comment")


def test_negative_counts_are_angstrom(tmp_path):
    path = tmp_path / "a.cube"
    path.write_text(HAND.replace("    2    1.0", "   -2    1.0").replace("    2    0.000000    2.0", "   -2    0.000000    2.0")
                    .replace("    3    0.3", "   -3    0.3"))
    cube = read_cube(path)
    np.testing.assert_allclose(cube.cell, [[2, 0, 0], [0, 4, 0], [0.9, 0, 4.5]])
    np.testing.assert_allclose(cube.atoms[0, 2:], [1.0, 0, 0])


@pytest.mark.parametrize("m", [1, 2])
def test_round_trip_with_a_triclinic_cell(tmp_path, m):
    rng = np.random.default_rng(0)
    values = rng.normal(0, 1000, (m, 4, 5, 7))
    cell = np.array([[9.4, 0, 0], [-0.6, 9.4, 0], [-0.7, -0.7, 9.4]])
    atoms = np.array([[14, 0.0, 1.0, 2.0, 3.0]])
    write_cube(tmp_path / "r.cube", values if m > 1 else values[0], cell, atoms=atoms, comment="test")
    cube = read_cube(tmp_path / "r.cube")
    np.testing.assert_allclose(cube.values, values, rtol=1e-5)
    np.testing.assert_allclose(cube.cell, cell, atol=1e-5)
    np.testing.assert_allclose(cube.atoms, atoms, atol=1e-5)
    assert cube.comments[0] == "test"


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace(" 7 8 9 10 11 12\n", " 7 8 9 10 11\n"), "header and the data disagree"),
    (lambda t: t.replace("    3    0.300000", "    4    0.300000"), "2x2x4 grid"),
    (lambda t: t.replace(" 1 2 3", " 1 x 3"), "non-numeric"),
    (lambda t: "\n".join(t.splitlines()[:4]), "shorter than a cube file's header"),
    (lambda t: t.replace("    1    0.500000", "    a    0.500000"), "line 3"),
])
def test_bad_cube_is_one_line_naming_the_file(tmp_path, edit, message):
    path = tmp_path / "bad.cube"
    path.write_text(edit(HAND))
    with pytest.raises(ValueError, match=message) as err:
        read_cube(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_cube_source_clips_maps_and_keeps_the_cells(tmp_path):
    rng = np.random.default_rng(1)
    grids = [rng.uniform(-6000, 9000, (6, 6, 6)) for _ in range(3)]
    cells = [np.eye(3) * e for e in (24.0, 26.0, 30.0)]
    for i, (g, c) in enumerate(zip(grids, cells)):
        write_cube(tmp_path / f"g{i}.cube", g, c)
    ds = open_dataset("cube", path=str(tmp_path))
    assert len(ds) == 3 and ds[0].shape == (1, 6, 6, 6)
    want = 2 * (np.clip(grids[1], -4000, 5000) + 4000) / 9000 - 1
    torch.testing.assert_close(ds[1][0].double(), torch.from_numpy(want), rtol=1e-5, atol=1e-5)
    assert ds.metadata["units"] == "K" and ds.metadata["periodic"] and ds.metadata["value_range"] == [-4000, 5000]
    np.testing.assert_allclose(ds.metadata["cell"], np.eye(3) * 26.0, rtol=1e-5)
    np.testing.assert_allclose(ds.cells, np.stack(cells), rtol=1e-5)


def test_cube_source_refuses_mixed_grids(tmp_path):
    write_cube(tmp_path / "a.cube", np.zeros((4, 4, 4)), np.eye(3) * 10)
    write_cube(tmp_path / "b.cube", np.zeros((4, 4, 5)), np.eye(3) * 10)
    with pytest.raises(ValueError, match=r"b.cube: a grid of \(4, 4, 5\)"):
        open_dataset("cube", path=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no .cube files"):
        open_dataset("cube", path=str(tmp_path / "*.nothing"))


def test_vti_of_a_triclinic_cell_places_every_point(tmp_path):
    """The VTK image's points are i/n1 a + j/n2 b + k/n3 c, values in x-fastest order, one array per channel."""
    import pyvista as pv

    from ndgan.sampling import write_vti

    cell = np.array([[9.4, 0, 0], [-0.6, 9.4, 0], [-0.7, -0.7, 9.4]])
    sample = np.random.default_rng(0).normal(size=(2, 3, 4, 5)).astype(np.float32)
    write_vti(tmp_path / "t.vti", sample, cell, ["a", "b"])
    grid = pv.read(tmp_path / "t.vti")
    i, j, k = np.indices((3, 4, 5)).reshape(3, -1)
    want = np.stack([i / 3, j / 4, k / 5], -1) @ cell
    order = np.ravel_multi_index((i, j, k), (3, 4, 5), order="F")
    np.testing.assert_allclose(np.asarray(grid.points)[order], want, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(grid.point_data["b"])[order], sample[1].reshape(-1))


def test_cube_source_in_other_units_needs_its_clip_range(tmp_path):
    write_cube(tmp_path / "a.cube", np.full((4, 4, 4), -10.0), np.eye(3) * 10)
    with pytest.raises(ValueError, match="default \\[-4000, 5000\\] is in kelvin, the data in kJ/mol"):
        open_dataset("cube", path=str(tmp_path), units="kJ/mol")
    ds = open_dataset("cube", path=str(tmp_path), units="kJ/mol", value_range=[-30.0, 10.0])
    torch.testing.assert_close(ds[0], torch.full((1, 4, 4, 4), 0.0))  # -10 is the middle of [-30, 10]
