"""Conditioning labels the energy data compute: stored with the grids, equal to the physics of the grids,
standardised with what maps them back, and refused when they cannot exist."""

import h5py
import numpy as np
import pytest
import torch

from ndgan.data import energy, open_dataset
from ndgan.data.properties import LABELS, label_values
from ndgan.metrics import physics


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    path = tmp_path_factory.mktemp("labels") / "e.h5"
    energy.write_hdf5(path, n=24, size=8, seed=3)
    return path


def test_written_properties_are_the_physics_of_each_grid_and_channel(cells):
    with h5py.File(cells) as h5:
        x = torch.from_numpy(h5["data"][:])
        stored = {name: h5["properties"][name][:] for name in LABELS}
        assert h5["properties/heat_of_adsorption"].attrs["units"] == "kJ/mol"
    props = physics.grid_properties(physics.to_kelvin(x, energy.ENERGY_RANGE_K))
    for name, (key, _) in LABELS.items():
        np.testing.assert_allclose(stored[name], props[key].numpy(), rtol=1e-9, atol=1e-12)
    assert stored["heat_of_adsorption"].std() > 0.1  # the cells differ


@pytest.mark.parametrize("channel", [0, 1])
def test_dataset_labels_are_standardised_and_recoverable(cells, channel):
    ds = open_dataset("energy", path=str(cells), n=24, size=8, seed=3, labels=["void_fraction", "heat_of_adsorption"],
                      label_channel=channel)
    x, c = ds[5]
    m = ds.metadata
    assert m["label_names"] == ["void_fraction", "heat_of_adsorption"] and m["label_units"] == ["fraction", "kJ/mol"]
    physical = c.double() * torch.tensor(m["label_std"]) + torch.tensor(m["label_mean"])
    want = label_values(x[None], energy.ENERGY_RANGE_K, ["void_fraction", "heat_of_adsorption"], channel)[0]
    torch.testing.assert_close(physical, want, rtol=1e-5, atol=1e-6)
    all_c = torch.stack([ds[i][1] for i in range(len(ds))]).double()
    torch.testing.assert_close(all_c.mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(all_c.std(0), torch.ones(2, dtype=torch.float64), atol=1e-5, rtol=0)
    assert m["label_min"][1] <= float(physical[1]) <= m["label_max"][1]


def test_labels_are_computed_when_the_file_has_none(cells, tmp_path):
    """An energy file written before labels existed (no properties group) gets the same labels, computed."""
    bare = tmp_path / "bare.h5"
    with h5py.File(cells) as src, h5py.File(bare, "w") as dst:
        dst.create_dataset("data", data=src["data"][:])
        for k, v in src.attrs.items():
            dst.attrs[k] = v
    a = open_dataset("hdf5", path=str(cells), labels=["henry"])
    b = open_dataset("hdf5", path=str(bare), labels=["henry"])
    torch.testing.assert_close(torch.stack([b[i][1] for i in range(24)]), torch.stack([a[i][1] for i in range(24)]),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("options, message", [
    (dict(labels=["heat"]), "unknown label 'heat'"),
    (dict(labels=[]), "expected a list of distinct names"),
    (dict(labels=["henry", "henry"]), "expected a list of distinct names"),
    (dict(labels=["henry"], label_channel=2), "label_channel: expected 0 to 1"),
])
def test_bad_label_options(cells, options, message):
    with pytest.raises(ValueError, match=message):
        open_dataset("energy", path=str(cells), n=24, size=8, seed=3, **options)


def test_labels_need_energy_grids(tmp_path):
    path = tmp_path / "img.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("data", data=np.zeros((4, 1, 8, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="needs energy grids"):
        open_dataset("hdf5", path=str(path), labels=["henry"])


def test_value_range_override_reaches_the_labels(cells, tmp_path):
    """Physical values with the range given as an option: the labels use that range, as the samples do."""
    raw = tmp_path / "raw.h5"
    with h5py.File(cells) as src, h5py.File(raw, "w") as dst:
        dst.create_dataset("data", data=energy.ENERGY_RANGE_K[0] + (src["data"][:] + 1) / 2 * 9000)  # kelvin
    a = open_dataset("hdf5", path=str(raw), value_range=list(energy.ENERGY_RANGE_K), labels=["void_fraction"])
    b = open_dataset("hdf5", path=str(cells), labels=["void_fraction"])
    assert a.metadata["label_mean"] == pytest.approx(b.metadata["label_mean"], rel=1e-6)
