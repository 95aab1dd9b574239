"""Energy-grid physics against closed forms."""

import math

import pytest
import torch

from ndgan.data import energy
from ndgan.metrics import physics

T = 298.0
R = 8.314462618e-3


@pytest.mark.parametrize("e0", [-1500.0, 0.0, 350.0])
def test_constant_grid(e0):
    props = physics.grid_properties(torch.full((2, 1, 4, 4, 4), e0), T)
    assert torch.allclose(props["log10_henry"], torch.full((2, 1), -e0 / T / math.log(10), dtype=torch.float64))
    assert torch.allclose(props["heat_kj_mol"], torch.full((2, 1), (T - e0) * R, dtype=torch.float64))
    assert torch.equal(props["void_fraction"], torch.full((2, 1), float(e0 < 0), dtype=torch.float64))


def test_two_level_grid_closed_form():
    # A fraction f of the points at E1, the rest at E2 (both channels, any nd).
    e1, e2, f = -2000.0, 3000.0, 0.25
    grid = torch.full((1, 2, 8, 8), e2)
    grid[:, :, :2] = e1  # 2 of 8 rows: f = 0.25
    w1, w2 = math.exp(-e1 / T), math.exp(-e2 / T)
    henry = f * w1 + (1 - f) * w2
    heat = (-(f * e1 * w1 + (1 - f) * e2 * w2) / henry + T) * R
    props = physics.grid_properties(grid, T)
    assert props["log10_henry"][0, 1] == pytest.approx(math.log10(henry), rel=1e-12)
    assert props["heat_kj_mol"][0, 0] == pytest.approx(heat, rel=1e-12)
    assert props["void_fraction"][0, 0] == pytest.approx(f)


def test_no_overflow_for_deep_wells():
    props = physics.grid_properties(torch.full((1, 1, 4), -4.0e5), T)  # exp(1342) overflows float64
    assert torch.isfinite(props["log10_henry"]).all() and torch.isfinite(props["heat_kj_mol"]).all()


def test_to_kelvin_inverts_the_energy_datasets_mapping():
    kelvin = torch.tensor([-4000.0, -1234.5, 0.0, 4999.0])
    lo, hi = energy.ENERGY_RANGE_K
    x = 2 * (kelvin - lo) / (hi - lo) - 1  # the mapping ndgan.data.energy writes
    assert torch.allclose(physics.to_kelvin(x, energy.ENERGY_RANGE_K), kelvin.double(), atol=1e-3)


def test_compare_reports_distances_and_a_real_split_baseline():
    g = torch.Generator().manual_seed(0)
    real = {k: torch.randn(200, 2, generator=g, dtype=torch.float64) for k in physics.PROPERTIES}
    shifted = {k: v + 0.5 for k, v in real.items()}
    same = physics.compare(real, real)
    out = physics.compare(shifted, real)
    for name in physics.PROPERTIES:
        assert same[f"{name}_w1"] == 0.0
        assert out[f"{name}_w1"] == pytest.approx(0.5, rel=1e-9)
        assert 0 < out[f"{name}_w1_baseline"] < 0.3  # two halves of one distribution are close
        assert out[f"{name}_mean"] == pytest.approx(out[f"{name}_mean_real"] + 0.5)


def test_real_energy_grids_are_physically_sensible():
    x, _, radius = next(energy.generate(8, size=16, seed=0, batch=8))
    props = physics.grid_properties(physics.to_kelvin(x, energy.ENERGY_RANGE_K), T)
    assert ((props["void_fraction"] > 0) & (props["void_fraction"] < 0.6)).all()
    assert (props["heat_kj_mol"] > 0).all()  # an attractive pore: positive heat of adsorption
    # A larger carved pore holds more attractive points.
    order = radius.argsort()
    assert props["void_fraction"][order[-1], 0] > props["void_fraction"][order[0], 0]


def test_baseline_splits_grids_not_channels():
    # Two channels with very different properties (like the spherical and cubic pores): the real-vs-real
    # baseline compares halves of the grids per channel, so it stays small.
    g = torch.Generator().manual_seed(1)
    real = {k: torch.stack([torch.randn(300, generator=g, dtype=torch.float64),
                            10 + torch.randn(300, generator=g, dtype=torch.float64)], 1) for k in physics.PROPERTIES}
    out = physics.compare(real, real)
    for name in physics.PROPERTIES:
        assert out[f"{name}_w1_baseline"] < 0.3 and out[f"{name}_w1_c0"] == 0 and out[f"{name}_w1_c1"] == 0
    swapped = physics.compare({k: v.flip(1) for k, v in real.items()}, real)  # channels exchanged
    assert swapped["heat_kj_mol_w1"] == pytest.approx(10, abs=0.5)
