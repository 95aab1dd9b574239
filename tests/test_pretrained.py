"""The generators shipped in pretrained/ still load, generate, export, render and score after every change.

The scores are recomputed with the settings that recorded them (benchmarks/quality/results/pretrained.json:
every generated and real sample, the same seeds) and must agree with the record to 5%: a change that breaks
loading, the synthesis network, the metrics or the weights' meaning fails here.
"""

import json
from pathlib import Path

import h5py
import pytest
import torch

from ndgan.data import energy, open_dataset
from ndgan.sampling import generate, load_generator
from ndgan.cli.generate import main as generate_cli
from ndgan.metrics import MetricSettings
from ndgan.cli.metrics import main as metrics_cli
from ndgan.metrics.evaluate import Evaluator
from ndgan.cli.render import main as render_cli

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = ROOT / "pretrained"
RECORD = json.loads((ROOT / "benchmarks" / "quality" / "results" / "pretrained.json").read_text())["files"]


@pytest.mark.parametrize("name, shape", [("digits2d", (1, 32, 32)), ("energy16", (2, 16, 16, 16))])
def test_shipped_generators_load_and_generate(name, shape):
    G = load_generator(PRETRAINED / f"{name}.safetensors")
    x = generate(G, list(range(8)))
    assert x.shape == (8, *shape) and torch.isfinite(x).all()
    assert x.std(0).mean() > 0.05  # eight seeds, eight different samples
    assert torch.equal(x, generate(G, list(range(8))))  # seeded, constant noise: reproducible
    assert G.kimg == pytest.approx(RECORD[name]["kimg"])  # the file is the one the README reports


def _agrees(got: dict, recorded: dict, keys):
    for key in keys:
        assert got[key] == pytest.approx(recorded[key], rel=0.05, abs=1e-3), key


def test_digits_generator_scores_what_was_recorded():
    G = load_generator(PRETRAINED / "digits2d.safetensors")
    data = open_dataset("digits", size=32, shape=(32, 32), channels=1)
    settings = MetricSettings(num_gen=1797, features=str(PRETRAINED / "digits-classifier.safetensors"))
    results, _ = Evaluator(["fid", "classes"], data, settings).evaluate(G)
    recorded = RECORD["digits2d"]["results"]
    _agrees(results, recorded, ["fid", "fid_baseline", "classes_tv", "classes_confidence"])
    assert results["classes_covered"] == recorded["classes_covered"] >= 8


def test_energy16_generator_cli_export_render_and_physics(tmp_path, capsys):
    held_out = energy.write_hdf5(tmp_path / "held_out.h5", 2000, size=16, seed=1)  # the cells of the record
    weights = str(PRETRAINED / "energy16.safetensors")
    assert generate_cli([weights, "--n", "16", "--format", "h5", "--out", str(tmp_path / "samples")]) == 0
    with h5py.File(tmp_path / "samples" / "samples.h5") as f:
        grids = f["data"][:]
        assert grids.shape == (16, 2, 16, 16, 16) and f["data"].attrs["units"] == "K"
    assert grids.std() > 100  # kelvin, not [-1, 1]
    assert render_cli([str(tmp_path / "samples" / "samples.h5"), "--out", str(tmp_path / "render.png"),
                       "--size", "128"]) == 0
    assert (tmp_path / "render.png").stat().st_size > 1000
    capsys.readouterr()
    assert metrics_cli([weights, "--metrics", "energy,msssim,hist", "--data", str(held_out), "--num", "2000",
                        "--json", str(tmp_path / "m.json")]) == 0
    results = json.loads((tmp_path / "m.json").read_text())["results"]
    _agrees(results, RECORD["energy16"]["results"],
            ["energy_log10_henry_w1", "energy_heat_kj_mol_w1", "energy_void_fraction_w1",
             "energy_void_fraction_w1_baseline", "msssim", "msssim_real", "hist_w1"])


def test_conditional_generator_follows_its_target_monotonically(tmp_path, capsys):
    """pretrained/energy8cond.safetensors (benchmarks/quality/energy8cond.py): cells generated at rising target
    void fractions have rising measured void fractions, through the command that users type."""
    weights = str(PRETRAINED / "energy8cond.safetensors")
    G = load_generator(weights)
    assert G.metadata["label_names"] == ["void_fraction"] and G.init_kwargs["continuous_labels"]
    lo, hi = G.metadata["label_min"][0], G.metadata["label_max"][0]
    means = []
    for q in (0.2, 0.5, 0.8):
        target = lo + q * (hi - lo)
        out = tmp_path / f"q{q}"
        assert generate_cli([weights, "--n", "128", "--format", "h5", "--out", str(out),
                             "--target", f"void_fraction={target}"]) == 0
        assert f"void_fraction: target {target:g} fraction, achieved" in capsys.readouterr().out
        with h5py.File(out / "samples.h5") as f:
            means.append(float(f["data"].attrs["achieved_mean_void_fraction"]))
    assert means[0] < means[1] < means[2], means
    assert means[2] - means[0] > 0.3 * 0.6 * (hi - lo), means  # it moves by a good part of the targets' span
