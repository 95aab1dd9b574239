import itertools

import h5py
import numpy as np
import pytest
import torch

from ndgan.cli.energy import main as energy_cli
from ndgan.data import energy


def brute_energy(occupied, edge):
    """Loop over grid points and atoms: V at the minimum-image distance, truncated and capped."""
    size = occupied.shape[-1]
    h = edge / size
    atoms = np.argwhere(occupied > 0)
    out = np.zeros((size,) * 3)
    for p in itertools.product(range(size), repeat=3):
        total = 0.0
        for a in atoms:
            delta = (np.array(p) - a) * h
            delta -= edge * np.round(delta / edge)  # minimum image
            d = np.sqrt((delta**2).sum())
            if d < energy.CUTOFF_A:
                v = 4 * energy.EPSILON_K * ((energy.SIGMA_A / max(d, 1e-3)) ** 12 - (energy.SIGMA_A / max(d, 1e-3)) ** 6)
                total += min(v, energy.PAIR_CAP_K) * occupied[tuple(a)]
        out[p] = total
    return out


def test_energy_grid_equals_brute_force_minimum_image_sum():
    rng = np.random.default_rng(0)
    occupied = np.zeros((8, 8, 8))
    for idx in rng.integers(0, 8, size=(6, 3)):
        occupied[tuple(idx)] += 1
    edge = 25.0
    got = energy.energy_grid(torch.from_numpy(occupied)[None, None], torch.tensor([edge]))[0, 0].double().numpy()
    expected = brute_energy(occupied, edge)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=0.5)


def test_energy_is_periodic_under_translation():
    occupied = torch.zeros(1, 1, 16, 16, 16)
    occupied[0, 0, 1, 2, 3] = occupied[0, 0, 10, 4, 15] = 1
    e = energy.energy_grid(occupied, torch.tensor([26.0]))
    shifted = energy.energy_grid(torch.roll(occupied, (5, -3, 7), dims=(2, 3, 4)), torch.tensor([26.0]))
    torch.testing.assert_close(shifted, torch.roll(e, (5, -3, 7), dims=(2, 3, 4)), rtol=1e-4, atol=0.5)


def test_single_atom_well_is_minus_epsilon_at_two_to_the_sixth_sigma():
    occupied = torch.zeros(1, 1, 64, 64, 64)
    occupied[0, 0, 0, 0, 0] = 1
    edge = 24.0
    e = energy.energy_grid(occupied, torch.tensor([edge]))[0, 0]
    assert e.min().item() == pytest.approx(-energy.EPSILON_K, rel=0.02)
    idx = torch.tensor(np.unravel_index(int(e.argmin()), e.shape), dtype=torch.float64)
    idx = torch.where(idx > 32, idx - 64, idx)
    r_min = 2 ** (1 / 6) * energy.SIGMA_A
    assert abs(idx.norm().item() * edge / 64 - r_min) < edge / 64  # within one grid spacing
    assert abs(e[32, 32, 32].item()) < 1e-2  # the cell corner, 20.8 Angstrom away: beyond the cutoff
    assert e[16, 16, 16].item() < 0  # 10.4 Angstrom: inside the cutoff, weakly attractive


def test_generate_range_determinism_and_channels():
    x, edge, radius = next(energy.generate(6, size=16, seed=3))
    assert x.shape == (6, 2, 16, 16, 16) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert ((energy.CELL_EDGE_A[0] <= edge) & (edge <= energy.CELL_EDGE_A[1])).all()
    assert ((energy.PORE_RADIUS_A[0] <= radius) & (radius <= energy.PORE_RADIUS_A[1])).all()
    again, _, _ = next(energy.generate(6, size=16, seed=3))
    assert torch.equal(x, again)
    assert not torch.equal(x[:, 0], x[:, 1])  # sphere and cube pores differ
    lo, hi = energy.ENERGY_RANGE_K
    kelvin = (x + 1) / 2 * (hi - lo) + lo
    # The pore centre is empty space: attractive, far from the clip.
    assert (kelvin[:, :, 8, 8, 8] < 0).all()


def test_cli_writes_hdf5_with_metadata(tmp_path):
    out = tmp_path / "e.h5"
    assert energy_cli(["--n", "5", "--size", "16", "--out", str(out)]) == 0
    with h5py.File(out) as h5:
        assert h5["data"].shape == (5, 2, 16, 16, 16)
        assert list(h5.attrs["channel_names"]) == ["spherical_pore", "cubic_pore"]
        assert h5.attrs["units"] == "K" and list(h5.attrs["value_range"]) == [-4000.0, 5000.0]
        assert h5["cell_edge"].shape == (5,) and h5["cell_edge"].attrs["units"] == "Angstrom"
        first = h5["data"][0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.h5"]  # no temporary left behind
    # Refuses to overwrite; --overwrite replaces.
    assert energy_cli(["--n", "5", "--size", "16", "--out", str(out)]) == 2
    assert energy_cli(["--n", "5", "--size", "16", "--out", str(out), "--seed", "1", "--overwrite"]) == 0
    with h5py.File(out) as h5:
        assert not np.array_equal(h5["data"][0], first)


@pytest.mark.parametrize("args, message", [(["--size", "20"], "size: expected a multiple of 8"),
                                           (["--n", "0"], "n: expected a positive number"),
                                           (["--out", "/nonexistent/dir/e.h5"], "output folder does not exist")])
def test_cli_bad_input(tmp_path, capsys, args, message):
    argv = ["--n", "2", "--size", "16", "--out", str(tmp_path / "x.h5")] + args
    assert energy_cli(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1  # one line, no traceback
    assert not (tmp_path / "x.h5").exists()
