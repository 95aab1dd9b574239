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
