"""Memorisation: nearest-training-sample distances against brute force, copies flagged and fresh samples not,
the held-out checks (config, evaluator, training), the closest-pairs figure, and the CLI on a tiny run."""

import json

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ndgan.cli.metrics import main as metrics_cli
from ndgan.data import open_dataset
from ndgan.metrics import MetricSettings, memorization
from ndgan.metrics.evaluate import Evaluator
from ndgan.ops.check import ConfigError
from ndgan.train import load_config, train
from ndgan.viz.grid import pair_grid
from tests.metrics.test_evaluate import DataSampler, RandomConvFeatures

SHAPES = {1: (32,), 2: (16, 16), 3: (8, 8, 8)}


def procedural(nd, length, seed):
    return open_dataset("procedural", spatial_dims=nd, shape=SHAPES[nd], channels=3 if nd == 2 else 1,
                        length=length, seed=seed)


def evaluator(nd, train_data, held_out=None, **settings):
    settings = MetricSettings(**{"num_gen": 300, "num_real": 500, "batch": 20, **settings})
    return Evaluator(["memorization"], held_out or procedural(nd, 500, seed=1), settings, train_dataset=train_data,
                     features=RandomConvFeatures(3) if nd == 2 else None)


def test_nearest_equals_a_brute_force_double_loop():
    g = torch.Generator().manual_seed(0)
    queries, refs = torch.randn(37, 13, generator=g).double(), torch.randn(101, 13, generator=g).double()
    refs[60] = queries[3]  # an exact copy, in the second half of a chunk past the first
    d, index = memorization.nearest(queries, refs, chunk=8)
    for a in range(len(queries)):
        rms = [float((queries[a] - refs[b]).square().mean().sqrt()) for b in range(len(refs))]
        assert d[a] == pytest.approx(min(rms), rel=1e-9, abs=1e-7)
        assert int(index[a]) == int(np.argmin(rms))
    assert int(index[3]) == 60 and float(d[3]) < 1e-7


def test_evaluator_distances_are_rms_differences_of_average_pooled_samples():
    train_data = procedural(2, 120, seed=0)
    ev = evaluator(2, train_data, num_gen=40, num_real=40, memorization_pairs=5)
    ev.evaluate(DataSampler(procedural(2, 200, seed=2)))
    generated, nearest, d = ev.closest_pairs
    pool = lambda x: F.avg_pool2d(x, 2).flatten(1)  # noqa: E731 (16 -> 8 per axis: 2 x 2 boxes)
    every = pool(torch.stack([train_data[i] for i in range(len(train_data))])).double()
    for x, y, dist in zip(generated, nearest, d):
        rms = (pool(x[None]).double() - every).square().mean(1).sqrt()
        assert float(dist) == pytest.approx(float(rms.min()), rel=1e-6)
        assert float((pool(x[None]) - pool(y[None])).square().mean().sqrt()) == pytest.approx(float(dist), rel=1e-5)
    assert list(d) == sorted(d) and len(d) == 5


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_a_copying_generator_is_flagged_and_a_faithful_one_is_not(nd):
    train_data = procedural(nd, 300, seed=0)
    ev = evaluator(nd, train_data)
    copies, info = ev.evaluate(DataSampler(train_data, lambda x: 0.99 * x))  # near-copies of training samples
    fresh, _ = ev.evaluate(DataSampler(procedural(nd, 1000, seed=2)))  # new draws of the same source
    assert copies["memorization_flag"] is True and copies["memorization_fraction"] > 0.9
    assert copies["memorization_nn_voxel"] < copies["memorization_nn_voxel_baseline"] / 5
    assert fresh["memorization_flag"] is False and fresh["memorization_fraction"] <= 0.05
    assert fresh["memorization_nn_voxel"] == pytest.approx(fresh["memorization_nn_voxel_baseline"], rel=0.25)
    assert fresh["memorization_threshold_voxel"] == copies["memorization_threshold_voxel"]  # the reals, kept
    spaces = ["voxel", "features"] if nd == 2 else ["voxel"]
    assert info["memorization"]["spaces"] == spaces and info["memorization"]["train_samples"] == 300
    assert ("memorization_fraction_features" in copies) == (nd == 2)
    if nd == 2:
        assert copies["memorization_fraction_features"] > 0.9 and info["memorization"]["features"] == "random conv"
    else:
        assert info["memorization"]["features"].startswith("none")
    assert info["memorization"]["pooled_shape"] == [8] * nd


def test_held_out_reals_are_required_and_must_not_be_training_data(tmp_path):
    with pytest.raises(ConfigError, match=r"^metrics\.real_options: memorization") as e:
        load_config("configs/tiny2d.yaml", ["train.metrics=[memorization]"])
    assert "\n" not in str(e.value) and "{seed: 1}" in str(e.value)
    h5 = ["data.source=hdf5", "data.path=x.h5", "data.options={}", "train.metrics=[memorization]"]
    with pytest.raises(ConfigError, match=r"^metrics\.real_path: memorization"):
        load_config("configs/tiny2d.yaml", h5)
    with pytest.raises(ConfigError, match=r"^metrics\.real_path: \./x\.h5 is data\.path"):
        load_config("configs/tiny2d.yaml", h5 + ["metrics.real_path=./x.h5"])
    assert load_config("configs/tiny2d.yaml", ["train.metrics=[memorization]", "metrics.real_options={seed: 1}"])

    train_data = procedural(2, 40, seed=0)
    with pytest.raises(ValueError, match="train_dataset"):
        Evaluator(["memorization"], train_data, MetricSettings(num_gen=8, batch=4))
    with pytest.raises(ValueError, match="real samples are the training data"):
        Evaluator(["memorization"], train_data, MetricSettings(num_gen=8, batch=4), train_dataset=train_data)
    same = evaluator(2, train_data, held_out=procedural(2, 40, seed=0), num_gen=8, num_real=20)  # other object
    with pytest.raises(ValueError, match="20 of the 20 held-out reals are training samples"):
        same.prepare_real()

    # In training, held-out reals that are training samples (the same seed) stop the run before step 0.
    cfg = load_config("configs/tiny2d.yaml", ["train.metrics=[memorization]", "data.options={length: 64, seed: 0}",
                                              "metrics.real_options={length: 16}", "metrics.num_gen=8",
                                              "metrics.batch=8"])
    with pytest.raises(ValueError, match="held-out reals are training samples"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_figure_is_a_png_of_generated_and_nearest_training_samples_side_by_side(tmp_path):
    train_data = procedural(2, 100, seed=0)
    ev = evaluator(2, train_data, num_gen=40, num_real=40, memorization_pairs=3)
    ev.evaluate(DataSampler(train_data))  # exact copies: each one's nearest training sample is itself
    generated, nearest, d = ev.closest_pairs
    memorization.save_figure(tmp_path / "pairs.png", generated, nearest)
    assert [p.name for p in tmp_path.iterdir()] == ["pairs.png"]  # no temporary left
    with Image.open(tmp_path / "pairs.png") as image:
        assert image.format == "PNG" and image.mode == "RGB"
        picture = np.asarray(image)
    assert picture.shape == (3 * 64 + 2 * 4, 2 * 64 + 4, 3)  # 3 rows of two 16 x 16 images enlarged 4x, gaps 4
    for row, x in enumerate(generated):
        expected = ((x.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8).repeat(4, 0).repeat(4, 1)
        top = row * 68
        assert np.array_equal(picture[top: top + 64, :64], expected)
        assert np.array_equal(picture[top: top + 64, 68:], expected)  # the training sample: the same one
    assert float(d.max()) < 1e-6
    with pytest.raises(FileExistsError):
        memorization.save_figure(tmp_path / "pairs.png", generated, nearest, replace=False)


def test_pairs_of_volumes_show_their_mid_slices():
    left, right = torch.rand(2, 1, 8, 8, 8) * 2 - 1, torch.rand(2, 1, 8, 8, 8) * 2 - 1
    picture = pair_grid(left, right)
    assert picture.shape == (2 * 64 + 4, 2 * (3 * 64 + 2) + 4)  # per sample 3 slices of 64 px with gaps of 1
    axial = ((right[1, 0, 4].numpy() + 1) * 127.5).round().astype(np.uint8).repeat(8, 0).repeat(8, 1)
    assert np.array_equal(picture[68:, 198: 198 + 64], axial)
    with pytest.raises(ValueError, match="one shape"):
        pair_grid(left, right[:1])


def _h5(path, seed):
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=torch.stack([procedural(2, 64, seed)[i] for i in range(64)]).numpy())
    return path


def test_training_and_the_cli_report_memorization_and_draw_the_pairs(tmp_path, capsys):
    train_h5, held_h5 = _h5(tmp_path / "train.h5", 0), _h5(tmp_path / "held.h5", 1)
    run = train(load_config("configs/tiny2d.yaml", [
        "G.z_dim=16", "G.w_dim=16", "G.mapping_layers=1", "G.channel_base=64", "G.channel_max=8",
        "D.channel_base=64", "D.channel_max=8", "train.batch=4", "train.kimg=0.004", "train.snapshot_kimg=0.004",
        "data.source=hdf5", f"data.path={train_h5}", "data.options={}", "data.shape=[16,16]",
        "train.metrics=[memorization]", f"metrics.real_path={held_h5}", "metrics.num_gen=16", "metrics.batch=8"]),
        tmp_path / "run")
    (line,) = [json.loads(text) for text in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"memorization_fraction", "memorization_flag", "memorization_nn_voxel_baseline"} <= set(line["results"])
    with Image.open(run / "memorization-000000004.png") as image:  # drawn at the evaluation
        assert image.format == "PNG" and image.size == (2 * 64 + 4, 8 * 64 + 7 * 4)

    args = [str(run), "--metrics", "memorization", "--num", "16", "--batch", "8"]
    assert metrics_cli(args) == 0
    out = capsys.readouterr().out
    assert "memorization_flag" in out and "real-vs-real" in out and "memorization-000000004-1.png" in out
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["figure"] == str(run / "memorization-000000004-1.png") and (run / record["figure"]).is_file()
    assert record["results"]["memorization_nn_voxel_baseline"] == line["results"]["memorization_nn_voxel_baseline"]

    figure, out_json = tmp_path / "pairs.png", tmp_path / "m.json"
    assert metrics_cli(args + ["--held-out", str(held_h5), "--figure", str(figure), "--json", str(out_json)]) == 0
    assert figure.is_file() and json.loads(out_json.read_text())["figure"] == str(figure)
    capsys.readouterr()
    for extra, message in [(["--figure", str(figure)], "exists"),
                           (["--data", str(train_h5)], "--held-out PATH"),
                           (["--held-out", str(train_h5)], "is the training data"),
                           (["--held-out", str(tmp_path / "typo.h5")], "does not exist"),
                           (["--figure", str(tmp_path / "pairs.jpg")], "not a .png")]:
        assert metrics_cli(args + extra) == 2, extra
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (extra, err)
    assert metrics_cli([str(run), "--metrics", "hist", "--figure", str(tmp_path / "f.png")]) == 2
    assert "only memorization" in capsys.readouterr().err
