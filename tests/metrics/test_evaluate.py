"""The Evaluator end to end, path length against its definition, training-time metrics and the CLI."""

import json

import pytest
import torch
from torch import nn

from ndgan.data import energy, open_dataset
from ndgan.metrics import MetricSettings, check_names
from ndgan.metrics.evaluate import Evaluator
from ndgan.cli.metrics import main as metrics_cli
from ndgan.metrics.ppl import path_length
from ndgan.train import load_config, train


class DataSampler(nn.Module):
    """A stand-in generator drawing samples of a dataset (through ``transform``): a "perfect" or a broken G."""

    def __init__(self, dataset, transform=lambda x: x, z_dim=8):
        super().__init__()
        self.dataset, self.transform, self.z_dim = dataset, transform, z_dim
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the evaluator a device

    def forward(self, z, c=None, truncation_psi=1.0, noise_mode="random"):
        idx = (z[:, 0].abs() * 1e6).long() % len(self.dataset)
        return self.transform(torch.stack([self.dataset[int(i)] for i in idx]))


class RandomConvFeatures(nn.Module):
    """A fixed random conv net as the feature network (any nd here: 2D)."""

    def __init__(self, channels):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.weight = nn.Parameter(torch.randn(16, channels, 3, 3, generator=g), requires_grad=False)
        self.name, self.num_features = "random conv", 32

    def forward(self, x):
        y = torch.relu(torch.nn.functional.conv2d(x, self.weight))
        return torch.cat([y.mean((2, 3)), y.amax((2, 3))], 1)


@pytest.fixture
def images():
    return open_dataset("procedural", spatial_dims=2, shape=(16, 16), channels=3, length=400, seed=0)


def test_feature_metrics_tell_a_faithful_generator_from_a_broken_one(images):
    settings = MetricSettings(num_gen=200, num_real=200, batch=20, kid_subset_size=50, kid_subsets=10)
    ev = Evaluator(["fid", "kid", "pr"], images, settings, features=RandomConvFeatures(3))
    good, info = ev.evaluate(DataSampler(images))
    bad, _ = ev.evaluate(DataSampler(images, lambda x: x.flip(-1).roll(3, -2) * 0.5))
    assert info["fid"]["features"] == "random conv" and info["fid"]["num_gen"] == 200
    assert good["fid"] < 3 * good["fid_baseline"] and bad["fid"] > 10 * good["fid"]
    assert good["kid"] < bad["kid"] and abs(good["kid_baseline"]) < bad["kid"]
    assert good["precision"] > 0.8 and good["recall"] > 0.8 and bad["precision"] < good["precision"]
    assert good["fid_baseline"] == bad["fid_baseline"]  # the real side is computed once and kept


def test_sample_metrics_and_the_untouched_rng(images):
    ev = Evaluator(["mmd", "msssim", "hist"], images, MetricSettings(num_gen=64, num_real=64, batch=8))
    torch.manual_seed(5)
    state = torch.get_rng_state()
    good, info = ev.evaluate(DataSampler(images))
    assert torch.equal(torch.get_rng_state(), state)
    bad, _ = ev.evaluate(DataSampler(images, lambda x: (x + 0.5).clamp(-1, 1)))
    assert bad["mmd"] > 5 * max(good["mmd"], good["mmd_baseline"], 1e-3)
    assert bad["hist_w1"] > 5 * good["hist_w1"] and good["hist_w1_baseline"] < 0.1
    assert abs(good["msssim"] - good["msssim_real"]) < 0.1
    assert info["msssim"]["pairs"] == [32, 32] and info["mmd"]["pooled_shape"] == [16, 16]
    same, _ = ev.evaluate(DataSampler(images))
    assert same == good  # seeded


def test_energy_metrics_on_generated_grids(tmp_path):
    path = energy.write_hdf5(tmp_path / "e.h5", n=48, size=8, seed=0)
    data = open_dataset("hdf5", path=str(path), channels=2)
    ev = Evaluator(["energy"], data, MetricSettings(num_gen=24, num_real=48, batch=8))
    good, info = ev.evaluate(DataSampler(data))
    flat, _ = ev.evaluate(DataSampler(data, lambda x: torch.zeros_like(x)))  # 500 K everywhere: no pore
    assert info["energy"]["temperature_K"] == 298.0
    assert flat["energy_void_fraction_w1"] > 5 * good["energy_void_fraction_w1"]
    assert flat["energy_void_fraction_mean"] == 0.0
    assert flat["energy_heat_kj_mol_w1"] > 3 * good["energy_heat_kj_mol_w1_baseline"]


def test_errors_come_before_any_work(images, monkeypatch, tmp_path):
    monkeypatch.delenv("NDGAN_INCEPTION", raising=False)
    with pytest.raises(FileNotFoundError, match="NDGAN_INCEPTION"):
        Evaluator(["fid"], images)
    volumes = open_dataset("procedural", spatial_dims=3, shape=(8, 8, 8), channels=1, length=8)
    with pytest.raises(ValueError, match="need a feature network"):
        Evaluator(["kid"], volumes)
    with pytest.raises(ValueError, match="needs energy grids in kelvin"):
        Evaluator(["energy"], images)
    with pytest.raises(ValueError, match="did you mean 'fid'"):
        check_names("fdi")
    with pytest.raises(ValueError, match="metrics.batch"):
        Evaluator(["hist"], images, MetricSettings(batch=3))


class LinearG(nn.Module):
    """ws = z (repeated); sample = the first w as a 1D signal: path length is |z1 - z0|^2 exactly."""

    z_dim = 6

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))

    def mapping(self, z, c=None, update_w_avg=False):
        return z[:, None].expand(-1, 2, -1)

    def synthesis(self, ws, noise_mode="const"):
        return ws[:, 0, None, :]


def test_path_length_equals_its_definition_for_a_linear_generator():
    num, batch, seed = 60, 8, 3
    gen, dists = torch.Generator().manual_seed(seed), []
    for start in range(0, num, batch):  # the same latent draws as path_length makes
        z = torch.randn(2 * min(batch, num - start), 6, generator=gen)
        dists.append((z[1::2] - z[0::2]).double().square().sum(1))
    d = torch.cat(dists).sort().values
    kept = d[(d >= d[0]) & (d <= d[-1])] if num < 100 else None
    expected = float(kept.mean())  # with 60 pairs the 1st/99th percentiles are the extremes: all kept
    identity = lambda a, b: (a - b).double().flatten(1).square().sum(1)  # noqa: E731
    got = path_length(LinearG(), identity, num=num, batch=batch, seed=seed, sampling="end")
    assert got == pytest.approx(expected, rel=2e-3)  # float32 lerp at eps = 1e-4


def test_training_logs_metrics_and_keeps_its_random_stream(tmp_path):
    common = ["train.kimg=0.032", "train.snapshot_kimg=0.032", "metrics.num_gen=16", "metrics.batch=8"]
    with_metrics = train(load_config("configs/tiny2d.yaml", common + ["train.metrics=[mmd,hist,msssim]",
                                                                      "train.metrics_kimg=0.016"]), tmp_path / "a")
    plain = train(load_config("configs/tiny2d.yaml", common), tmp_path / "b")
    lines = [json.loads(line) for line in (with_metrics / "metrics.jsonl").read_text().splitlines()]
    assert [line["kimg"] for line in lines] == [0.016, 0.032]
    assert {"mmd", "mmd_baseline", "hist_w1", "msssim", "msssim_real"} <= set(lines[0]["results"])
    a = torch.load(with_metrics / "checkpoint-000000032.pt", weights_only=True)
    b = torch.load(plain / "checkpoint-000000032.pt", weights_only=True)
    for name, tensor in a["G_ema"].items():
        assert torch.equal(tensor, b["G_ema"][name]), name
    assert not (plain / "metrics.jsonl").exists()


def test_metrics_at_start_add_the_untrained_point_and_change_no_weights(tmp_path):
    common = ["train.kimg=0.016", "train.snapshot_kimg=0.016", "metrics.num_gen=16", "metrics.batch=8",
              "train.metrics=[hist]"]
    started = train(load_config("configs/tiny2d.yaml", common + ["train.metrics_at_start=true"]), tmp_path / "a")
    plain = train(load_config("configs/tiny2d.yaml", common), tmp_path / "b")
    lines = [json.loads(line) for line in (started / "metrics.jsonl").read_text().splitlines()]
    assert [line["kimg"] for line in lines] == [0.0, 0.016] and lines[0]["step"] == 0
    later = [json.loads(line) for line in (plain / "metrics.jsonl").read_text().splitlines()]
    assert lines[1]["results"] == later[0]["results"]  # the extra evaluation leaves training untouched


def test_training_with_missing_weights_fails_before_step_0(tmp_path, monkeypatch):
    monkeypatch.delenv("NDGAN_INCEPTION", raising=False)
    cfg = load_config("configs/tiny2d.yaml", ["train.metrics=[fid]", "metrics.inception=/nowhere/inception.pth"])
    with pytest.raises(FileNotFoundError, match="pt_inception-2015-12-05"):
        train(cfg, tmp_path / "r")
    assert not list((tmp_path / "r").glob("checkpoint-*"))


def test_cli_writes_json_and_refuses_to_overwrite(tmp_path, capsys):
    run = train(load_config("configs/tiny3d.yaml", ["train.kimg=0.016", "train.snapshot_kimg=0.016"]), tmp_path / "r")
    out = tmp_path / "m.json"
    args = [str(run), "--metrics", "mmd,hist", "--num", "16", "--batch", "8", "--json", str(out)]
    assert metrics_cli(args) == 0
    record = json.loads(out.read_text())
    assert record["kimg"] == 0.016 and record["results"]["hist_w1"] > 0 and "real-vs-real" in capsys.readouterr().out
    assert metrics_cli(args) == 2 and "exists" in capsys.readouterr().err
    assert metrics_cli([str(run), "--metrics", "mdm"]) == 2 and "did you mean 'mmd'" in capsys.readouterr().err
    assert metrics_cli([str(run), "--metrics", "hist", "--num", "16", "--batch", "8"]) == 0  # run folder: appends
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1


class Recording(DataSampler):
    """A DataSampler that keeps what it generated."""

    def __init__(self, dataset, transform=lambda x: x):
        super().__init__(dataset, transform)
        self.made = []

    def forward(self, z, c=None, truncation_psi=1.0, noise_mode="random"):
        out = super().forward(z, c, truncation_psi, noise_mode)
        self.made.append(out)
        return out


def test_streamed_slice_fid_equals_fid_of_the_stored_slice_features(monkeypatch):
    from ndgan.metrics import evaluate
    from ndgan.metrics.distances import frechet_distance
    from ndgan.metrics.features import ImageFeatures

    # A cheap 2D network in place of the Inception (whose loading tests/metrics/test_networks.py covers).
    monkeypatch.setattr(evaluate, "inception_features",
                        lambda path, channels, device: ImageFeatures(RandomConvFeatures(3), channels, "random conv"))
    volumes = open_dataset("procedural", spatial_dims=3, shape=(8, 8, 8), channels=1, length=40, seed=1)
    ev = Evaluator(["fid_slices"], volumes, MetricSettings(num_gen=40, num_real=40, batch=6, slices=2))
    G = Recording(volumes, lambda x: 1.5 * x.flip(-1))  # out of range: the evaluator clamps
    results, info = ev.evaluate(G)
    fakes = torch.cat(G.made).clamp(-1, 1)
    order = torch.randperm(40, generator=torch.Generator().manual_seed(0))  # the real draws (metrics.seed 0)
    reals = torch.stack([volumes[int(i)] for i in order])
    with torch.no_grad():
        f_fake, f_real = ev.slice_net(fakes), ev.slice_net(reals)  # [N, 3, K, F]
    for axis in range(3):
        expected = frechet_distance(f_real[:, axis].flatten(0, 1).double(), f_fake[:, axis].flatten(0, 1).double())
        assert results[f"fid_slices_axis{axis}"] == pytest.approx(expected, rel=1e-6)
        even, odd = f_real[0::2, axis].flatten(0, 1).double(), f_real[1::2, axis].flatten(0, 1).double()
        assert results[f"fid_slices_axis{axis}_baseline"] == pytest.approx(frechet_distance(even, odd), rel=1e-6)
    assert results["fid_slices"] == pytest.approx(sum(results[f"fid_slices_axis{a}"] for a in range(3)) / 3)
    assert info["fid_slices"]["slices_per_axis"] == 2 and "fid_slices_baseline" in results
    again, _ = ev.evaluate(Recording(volumes, lambda x: 1.5 * x.flip(-1)))  # fakes reset, reals kept
    assert again["fid_slices_axis1"] == pytest.approx(results["fid_slices_axis1"], rel=1e-9)


class SortedLabels(torch.utils.data.Dataset):
    """3000 items sorted by class (0, 1, 2 in blocks of 1000)."""

    def __len__(self):
        return 3000

    def __getitem__(self, i):
        return torch.zeros(1, 8), torch.nn.functional.one_hot(torch.tensor(i // 1000), 3).float()


def test_conditions_come_from_the_whole_dataset():
    ev = Evaluator(["hist"], SortedLabels(), MetricSettings(num_gen=8, batch=8))
    counts = ev.labels.sum(0)
    assert len(ev.labels) == 2000 and (counts > 500).all()  # every class, not only the first items


def test_ppl_with_lpips_needs_no_inception(images, tmp_path, monkeypatch):
    from ndgan.metrics.lpips import LPIPS

    monkeypatch.delenv("NDGAN_INCEPTION", raising=False)
    torch.save(LPIPS().state_dict(), tmp_path / "lpips.pth")  # one file with both key sets
    ev = Evaluator(["ppl"], images, MetricSettings(num_gen=4, ppl_samples=4, batch=4,
                                                   lpips=(str(tmp_path / "lpips.pth"),)))
    assert ev.feature_net is None and ev.lpips is not None
    with pytest.raises(ValueError, match="at least 4"):
        Evaluator(["hist"], images, MetricSettings(num_gen=3))


def test_cli_data_points_at_a_held_out_energy_file(tmp_path, capsys):
    run = train(load_config("configs/energy3d.yaml", [
        "G.z_dim=16", "G.w_dim=16", "G.mapping_layers=1", "G.channel_base=64", "G.channel_max=8",
        "D.channel_base=64", "D.channel_max=8", "train.batch=4", "train.kimg=0.004", "train.snapshot_kimg=0.004",
        "train.metrics=[]", "data.shape=[8,8,8]", "data.options={n: 8, size: 8}", "data.workers=0",
        f"data.path={tmp_path / 'train.h5'}"]), tmp_path / "r")
    held_out = energy.write_hdf5(tmp_path / "held_out.h5", n=6, size=8, seed=5)
    args = [str(run), "--metrics", "energy", "--num", "4", "--batch", "4"]
    assert metrics_cli(args + ["--data", str(held_out), "--json", str(tmp_path / "m.json")]) == 0
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["data"] == str(held_out) and record["info"]["energy"]["num_real"] == 4
    assert metrics_cli(args + ["--data", str(tmp_path / "typo.h5")]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "typo.h5").exists()
