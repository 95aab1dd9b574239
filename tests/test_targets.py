"""Generation at a target property: labels standardised as in training, every sample measured with the same
physics, --filter, the range check, and the metrics of a file of samples."""

import h5py
import numpy as np
import pytest
import torch

from ndgan import load_generator
from ndgan.cli.generate import main as generate_cli
from ndgan.cli.metrics import main as metrics_cli
from ndgan.data import energy, open_dataset
from ndgan.metrics import physics
from ndgan.sampling import generate, parse_targets, target_labels
from ndgan.train import load_config, train

TINY = ["G.z_dim=16", "G.w_dim=16", "G.channel_base=64", "G.channel_max=8", "D.channel_base=64", "D.channel_max=8",
        "train.batch=8", "train.kimg=0.016", "train.snapshot_kimg=0.016", "D.mbstd_group_size=4"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cond")
    cfg = load_config("configs/energy8cond.yaml", TINY + [
        f"data.path={tmp / 'e8.h5'}", "data.options={n: 32, size: 8, seed: 0, labels: [heat_of_adsorption, void_fraction]}"])
    return train(cfg, tmp / "run")


def test_targets_become_the_standardised_labels(run):
    G = load_generator(run)
    m = G.metadata
    assert G.c_dim == 2 and m["label_names"] == ["heat_of_adsorption", "void_fraction"]
    assert G.init_kwargs["continuous_labels"] and G.mapping.continuous_labels  # real-valued labels
    c, warnings = target_labels(G, {"heat_of_adsorption": m["label_mean"][0] + 0.5 * m["label_std"][0],
                                    "void_fraction": m["label_mean"][1]}, 3)
    torch.testing.assert_close(c, torch.tensor([[0.5, 0.0]] * 3))
    assert not warnings


def test_generate_at_a_target_reports_and_stores_what_each_sample_achieved(run, tmp_path, capsys):
    G = load_generator(run)
    heat, void = G.metadata["label_mean"]
    argv = [str(run), "--n", "12", "--format", "h5", "--out", str(tmp_path / "a"),
            "--target", f"heat_of_adsorption={heat:.3f}", "--target", f"void_fraction={void:.3f}"]
    assert generate_cli(argv) == 0
    out = capsys.readouterr().out
    assert f"heat_of_adsorption: target {float(f'{heat:.3f}'):g} kJ/mol, achieved" in out
    assert "mean +- std over 12 samples" in out
    with h5py.File(tmp_path / "a" / "samples.h5") as h5:
        ds = h5["data"]
        kelvin, attrs = ds[:], dict(ds.attrs)
    # measured independently: the physics of the written kelvin grids, channel 0
    props = physics.grid_properties(torch.from_numpy(kelvin[:, :1]).double())
    np.testing.assert_allclose(attrs["achieved_heat_of_adsorption"], props["heat_kj_mol"][:, 0], rtol=1e-4)
    np.testing.assert_allclose(attrs["achieved_void_fraction"], props["void_fraction"][:, 0], atol=1e-9)
    assert attrs["achieved_mean_heat_of_adsorption"] == pytest.approx(props["heat_kj_mol"].mean().item(), rel=1e-4)
    assert attrs["target_void_fraction"] == pytest.approx(void, abs=1e-3)
    # the samples are those of the standardised labels
    c, _ = target_labels(G, {"heat_of_adsorption": float(f"{heat:.3f}"), "void_fraction": float(f"{void:.3f}")}, 12)
    x = generate(G, list(range(12)), c=c).clamp(-1, 1)
    np.testing.assert_allclose(kelvin, -4000 + (x.numpy() + 1) / 2 * 9000, rtol=1e-5, atol=1e-2)


def test_filter_keeps_exactly_the_samples_within_the_tolerance(run, tmp_path, capsys):
    """On the shipped one-label model; a two-label model refuses one tolerance for labels of different units."""
    from pathlib import Path

    weights = str(Path(__file__).resolve().parents[1] / "pretrained" / "energy8cond.safetensors")
    base = [weights, "--n", "32", "--format", "h5", "--target", "void_fraction=0.3"]
    assert generate_cli(base + ["--out", str(tmp_path / "all")]) == 0
    with h5py.File(tmp_path / "all" / "samples.h5") as h5:
        voids = h5["data"].attrs["achieved_void_fraction"]
    tol = float(np.median(np.abs(voids - 0.3)))  # about half pass
    inside = np.abs(voids - 0.3) <= tol
    assert 0 < inside.sum() < 32
    capsys.readouterr()
    assert generate_cli(base + ["--out", str(tmp_path / "kept"), "--filter", str(tol)]) == 0
    assert f"{inside.sum()} within" in capsys.readouterr().out
    with h5py.File(tmp_path / "kept" / "samples.h5") as h5:
        assert h5["data"].shape[0] == inside.sum()
        assert h5["data"].attrs["seeds"].tolist() == np.flatnonzero(inside).tolist()
        np.testing.assert_allclose(h5["data"].attrs["achieved_void_fraction"], voids[inside])
        assert h5["data"].attrs["achieved_mean_void_fraction"] == pytest.approx(voids[inside].mean())
    assert generate_cli(base + ["--out", str(tmp_path / "none"), "--filter", "1e-9"]) == 2
    assert not (tmp_path / "none").exists()
    G = load_generator(run)
    heat, void = G.metadata["label_mean"]
    assert generate_cli([str(run), "--n", "4", "--out", str(tmp_path / "two"), "--filter", "1", "--target",
                         f"heat_of_adsorption={heat}", "--target", f"void_fraction={void}"]) == 2
    assert "one tolerance cannot serve" in capsys.readouterr().err


def test_a_target_outside_the_training_range_warns_or_fails_with_strict(run, tmp_path, capsys):
    G = load_generator(run)
    hi, void = G.metadata["label_max"][0], G.metadata["label_mean"][1]
    argv = [str(run), "--n", "2", "--format", "npy", "--target", f"heat_of_adsorption={hi + 5}",
            "--target", f"void_fraction={void}"]
    assert generate_cli(argv + ["--out", str(tmp_path / "w")]) == 0
    err = capsys.readouterr().err
    assert "outside the training labels' range" in err and "kJ/mol" in err
    assert generate_cli(argv + ["--out", str(tmp_path / "s"), "--strict"]) == 2
    err = capsys.readouterr().err
    assert "--strict" in err and err.count("\n") == 1 and not (tmp_path / "s").exists()


@pytest.mark.parametrize("extra, message", [
    (["--target", "heat_of_adsorption=8"], "give void_fraction=VALUE too"),
    (["--target", "heat=8", "--target", "void_fraction=0.3"], "unknown 'heat'"),
    (["--target", "heat_of_adsorption"], "expected NAME=VALUE"),
    (["--target", "heat_of_adsorption=8", "--target", "void_fraction=0.3", "--class", "1"], "not with them"),
    (["--filter", "1"], "options of --target"),
])
def test_bad_targets(run, tmp_path, capsys, extra, message):
    assert generate_cli([str(run), "--n", "2", "--out", str(tmp_path / "x")] + extra) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_parse_targets():
    assert parse_targets(["a=1.5", "b=-2"]) == {"a": 1.5, "b": -2.0}
    for bad in (["a=nan"], ["=1"], ["a=1", "a=2"]):
        with pytest.raises(ValueError, match="--target"):
            parse_targets(bad)


def test_metrics_of_a_file_of_samples_equal_the_physics_compared_directly(run, tmp_path, capsys):
    G = load_generator(run)
    heat, void = G.metadata["label_mean"]
    assert generate_cli([str(run), "--n", "10", "--format", "h5", "--out", str(tmp_path / "g"),
                         "--target", f"heat_of_adsorption={heat}", "--target", f"void_fraction={void}"]) == 0
    real_path = load_config(run / "config.yaml").data.path
    assert metrics_cli(["--samples", str(tmp_path / "g" / "samples.h5"), "--data", real_path, "--metrics", "energy",
                        "--num-real", "32", "--json", str(tmp_path / "m.json")]) == 0
    import json

    results = json.loads((tmp_path / "m.json").read_text())["results"]
    with h5py.File(tmp_path / "g" / "samples.h5") as h5:
        fake = physics.grid_properties(torch.from_numpy(h5["data"][:]).double())
    real = open_dataset("hdf5", path=real_path)
    real_k = physics.to_kelvin(torch.stack([real[i] for i in range(len(real))]), energy.ENERGY_RANGE_K)
    want = physics.compare(fake, physics.grid_properties(real_k))
    for key in ("energy_heat_kj_mol_w1", "energy_log10_henry_w1", "energy_void_fraction_w1", "energy_heat_kj_mol_mean"):
        assert results[key] == pytest.approx(want[key.removeprefix("energy_")], rel=1e-3, abs=1e-6), key
    assert metrics_cli(["--samples", str(tmp_path / "g" / "samples.h5"), "--metrics", "energy"]) == 2
    assert "needs --data" in capsys.readouterr().err
