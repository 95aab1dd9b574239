import math

import pytest
import torch

from ndgan import losses
from ndgan.io import checkpoint as ckpt
from ndgan.train.config import ConfigError, from_dict, load_config, to_dict
from ndgan.train.step import lazy_adam, mixed_ws


def test_config_defaults_overrides_and_round_trip():
    cfg = load_config("configs/tiny3d.yaml", ["train.kimg=3", "G.w_dim=32", "data.options.length=64"])
    assert cfg.train.kimg == 3.0 and cfg.G.w_dim == 32 and cfg.data.shape == (16, 16, 16)
    assert cfg.data.options == {"length": 64, "seed": 0} and cfg.data.periodic is True
    assert from_dict(to_dict(cfg)) == cfg


@pytest.mark.parametrize("overrides, match", [
    (["train.kimgs=5"], "train.kimgs: unknown key \\(did you mean 'kimg'\\?\\)"),
    (["trian.kimg=5"], "trian: unknown key \\(did you mean 'train'\\?\\)"),
    (["train.batch=2.5"], "train.batch: expected an integer, got 2.5"),
    (["train.betas=[0.0]"], "train.betas: expected a list of 2 values"),
    (["data.periodic=maybe"], "data.periodic: expected true or false"),
    (["train.kimg=-1"], "train.kimg: expected a positive number"),
    (["train.loss=hinge"], "train.loss: expected nonsaturating or wgan-gp"),
    (["train.precision=float8"], "train.precision: expected auto, float32, bfloat16 or float16"),
    (["kimg"], "override 'kimg': expected KEY=VALUE"),
    (["train.grid_size=0"], "train.grid_size: expected at least 1"),
    (["train.log_steps=0"], "train.log_steps: expected at least 1"),
    (["train.style_mixing=1.5"], "train.style_mixing: expected a probability"),
    (["train.device=tpu"], "train.device: expected auto, cpu, cuda or cuda:N"),
])
def test_config_errors_name_the_key(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config("configs/tiny2d.yaml", overrides)


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {kimg: [1,\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)
    bad.write_text("G:\n  wdim: 3\n")
    with pytest.raises(ConfigError, match="bad.yaml: G.wdim: unknown key \\(did you mean 'w_dim'\\?\\)"):
        load_config(bad)


def test_extends_merges_sections_over_the_base(tmp_path):
    (tmp_path / "base.yaml").write_text("data: {source: procedural, shape: [16, 16], channels: 1, "
                                        "options: {length: 64, seed: 3}}\ntrain: {kimg: 2, batch: 4}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/child.yaml").write_text("extends: ../base.yaml\ndata: {options: {length: 32}}\n"
                                             "train: {kimg: 0.5}\n")
    cfg = load_config(tmp_path / "sub/child.yaml", ["train.batch=8"])
    assert cfg.data.options == {"length": 32, "seed": 3}  # merged key by key, the child's value wins
    assert cfg.data.shape == (16, 16) and cfg.train.kimg == 0.5 and cfg.train.batch == 8


def test_quickstart_is_energy3d_on_a_short_schedule():
    quick, full = to_dict(load_config("configs/quickstart.yaml")), to_dict(load_config("configs/energy3d.yaml"))
    assert quick["G"] == full["G"] and quick["D"] == full["D"] and quick["augment"] == full["augment"]
    assert quick["train"]["kimg"] == 0.032 and quick["data"]["options"] == {**full["data"]["options"], "n": 512}


@pytest.mark.parametrize("files, match", [
    ({"a.yaml": "extends: b.yaml\n", "b.yaml": "extends: a.yaml\n"}, "b.yaml: extends a.yaml, which extends it back"),
    ({"a.yaml": "extends: a.yaml\n"}, "a.yaml: extends a.yaml, which extends it back"),
    ({"a.yaml": "extends: gone.yaml\n"}, "a.yaml: extends .*gone.yaml, which does not exist"),
    ({"a.yaml": "extends: [b.yaml]\n"}, "a.yaml: extends: expected the file name of another config"),
    ({"a.yaml": "extends: b.yaml\n", "b.yaml": "- 1\n"}, "a.yaml: extends b.yaml, which is not a mapping"),
])
def test_extends_errors_name_the_file(tmp_path, files, match):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(tmp_path / "a.yaml")


def test_logistic_losses_by_hand():
    real, fake = torch.tensor([[2.0], [-1.0]]), torch.tensor([[0.5], [-3.0]])
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731
    assert losses.d_logistic(real, fake).item() == pytest.approx((sp(0.5) + sp(-3)) / 2 + (sp(-2) + sp(1)) / 2)
    assert losses.g_nonsaturating(fake).item() == pytest.approx((sp(-0.5) + sp(3)) / 2)


def test_r1_against_closed_form():
    """D(x) = sum(a * x^2) has grad 2 a x, so R1 = sum((2 a x)^2) per sample."""
    a = torch.tensor(0.7)
    x = torch.randn(3, 2, 4, 4, requires_grad=True)
    r1 = losses.r1_penalty((a * x.square()).flatten(1).sum(1, keepdim=True), x)
    torch.testing.assert_close(r1, (2 * a * x.detach()).square().flatten(1).sum(1))


def test_path_length_noise_scaling_and_penalty_in_3d():
    images = torch.zeros(64, 2, 8, 12, 10)
    noise = losses.path_length_noise(images)
    assert noise.std().item() == pytest.approx(1 / math.sqrt(8 * 12 * 10), rel=0.02)
    # images = ws[:, 0] * k  ->  J^T y = k * sum(y) in the first w, zero elsewhere.
    ws = torch.randn(4, 3, 5, requires_grad=True)
    k = torch.randn(5, 6)
    imgs = (ws[:, 0] @ k).reshape(4, 1, 6)
    y = torch.randn_like(imgs)
    lengths = losses.path_lengths(imgs, ws, y)
    expected = ((y[:, 0] @ k.T).square().sum(1) / 3).sqrt()
    torch.testing.assert_close(lengths, expected)
    penalty, mean = losses.path_length_penalty(lengths, torch.tensor(0.0), 0.01)
    torch.testing.assert_close(mean, 0.01 * lengths.detach().mean())
    torch.testing.assert_close(penalty, (lengths - mean).square())


def test_lazy_regularisation_corrects_lr_and_betas():
    opt = lazy_adam([torch.nn.Parameter(torch.zeros(1))], 0.002, (0.0, 0.99), 16)
    group = opt.param_groups[0]
    assert group["lr"] == pytest.approx(0.002 * 16 / 17)
    assert group["betas"][1] == pytest.approx(0.99 ** (16 / 17))
    assert lazy_adam([torch.nn.Parameter(torch.zeros(1))], 0.002, (0.0, 0.99), 0).param_groups[0]["lr"] == 0.002


def test_style_mixing_takes_a_suffix_from_a_second_latent():
    from ndgan.nets import Generator

    G = Generator(2, (16, 16), 3, z_dim=8, w_dim=8, mapping_layers=1, channel_base=64, channel_max=8).eval()
    z = torch.randn(2, 8)
    plain = G.mapping(z)
    torch.manual_seed(0)
    mixed = mixed_ws(G, z, None, prob=1.0)
    same = (mixed == plain).all(dim=2).all(dim=0)  # [num_ws]
    cut = int(same.logical_not().nonzero()[0])
    assert cut >= 1 and same[:cut].all() and not same[cut:].any()
    assert torch.equal(mixed_ws(G, z, None, prob=0.0), plain)


def test_yaml_1_1_floats_and_empty_sections(tmp_path):
    cfg = load_config("configs/tiny2d.yaml", ["train.d_lr=2e-3", "train.kimg=1e3"])
    assert cfg.train.d_lr == 0.002 and cfg.train.kimg == 1000.0
    (tmp_path / "c.yaml").write_text("G:\ndata:\n  options:\n")
    cfg = load_config(tmp_path / "c.yaml", ["G.w_dim=32"])
    assert cfg.G.w_dim == 32 and cfg.data.options == {}


def test_checkpoint_prune_and_torn_files(tmp_path):
    import warnings


    for nimg in (8, 16, 24):
        ckpt.save({"nimg": nimg}, tmp_path / ckpt.checkpoint_name(nimg))
    ckpt.prune(tmp_path, 2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["checkpoint-000000016.pt", "checkpoint-000000024.pt"]
    (tmp_path / ckpt.checkpoint_name(32)).write_bytes(b"torn")  # a killed write of a newer checkpoint
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path, state = ckpt.latest_valid(tmp_path)
    assert path.name == "checkpoint-000000024.pt" and state["nimg"] == 24
    assert any("not a loadable ndgan checkpoint" in str(w.message) for w in caught)
    with pytest.raises(ValueError, match="incompatible version"):
        torch.save({"format_version": 0}, tmp_path / "old.pt")
        ckpt.load(tmp_path / "old.pt")
    # keep-last-K never deletes the only valid checkpoint: with the two newest torn, nothing goes.
    (tmp_path / ckpt.checkpoint_name(40)).write_bytes(b"")
    with pytest.warns(UserWarning, match="none of the newest 2 checkpoints loads"):
        ckpt.prune(tmp_path, 2)
    with pytest.warns(UserWarning, match="skipping"):
        assert ckpt.latest_valid(tmp_path)[0].name == "checkpoint-000000024.pt"
    assert len(ckpt.list_checkpoints(tmp_path)) == 4


def _average_worker(rank, path, out):
    import torch.distributed as dist

    from ndgan.train.distributed import average_gradients

    dist.init_process_group("gloo", init_method=f"file://{path}", rank=rank, world_size=2)
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.full((3,), float(rank + 1))
    average_gradients([p], 2)
    torch.save(p.grad, f"{out}{rank}.pt")
    dist.destroy_process_group()


def test_average_gradients_averages_across_processes(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_average_worker, args=(str(tmp_path / "store"), str(tmp_path / "g")), nprocs=2)
    for rank in range(2):
        torch.testing.assert_close(torch.load(tmp_path / f"g{rank}.pt"), torch.full((3,), 1.5))  # (1 + 2) / 2


def test_sigkill_in_the_middle_of_a_checkpoint_write_keeps_a_loadable_one(tmp_path):
    """The kill test's random moments rarely land inside a write of a tiny checkpoint; here they always do:
    a process rewrites a 64 MB checkpoint in a loop and is SIGKILLed mid-write. The file must load, whole."""
    import random
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "checkpoint-000000016.pt"
    script = ("import sys, torch; from ndgan.io import checkpoint as ckpt\n"
              "path = sys.argv[1]; i = 0\n"
              "while True:\n"
              "    ckpt.save({'w': torch.full([16 * 2**20], float(i)), 'i': i}, path); i += 1\n"
              "    if i == 1: print('ready', flush=True)\n")
    rng = random.Random(0)
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = ckpt.load(path)
        assert torch.equal(state["w"], torch.full([16 * 2**20], float(state["i"])))
    left = [p.name for p in tmp_path.iterdir() if p.name != path.name]
    print(f"temporaries left by the kills: {left}")
    assert all(name.startswith(".tmp-") for name in left)


@pytest.mark.parametrize("field, value, message", [
    ("kimg", 0, "train.kimg: expected a positive number"),
    ("batch", 0, "train.batch: expected a positive batch size"),
    ("kimg", "fast", "train.kimg"),
])
def test_train_checks_a_config_built_in_code(tmp_path, field, value, message):
    """train(cfg) with a dataclass config built in Python (no YAML) runs the same checks as load_config,
    before anything is written."""
    import dataclasses

    from ndgan.train import Config, train

    cfg = Config()
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **{field: value}))
    with pytest.raises(ConfigError, match=message):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("shape, batch", [((32, 32), 32), ((16, 16, 16), 32), ((128, 128), 8), ((80, 96, 112), 8)])
def test_auto_r1_gamma_and_ema_follow_stylegan2_ada(shape, batch):
    cfg = load_config(None, [f"data.shape={list(shape)}", f"train.batch={batch}"])
    voxels = 1
    for s in shape:
        voxels *= s
    assert cfg.train.r1_gamma == pytest.approx(0.0002 * voxels / batch)  # per element, as ADA's 0.0002 res^2 / batch
    assert cfg.train.ema_kimg == pytest.approx(batch * 10 / 32)
    assert cfg.train.tf32 is False
    explicit = load_config(None, [f"data.shape={list(shape)}", "train.r1_gamma=0.5", "train.ema_kimg=2"])
    assert (explicit.train.r1_gamma, explicit.train.ema_kimg) == (0.5, 2.0)
    assert to_dict(cfg)["train"]["r1_gamma"] == pytest.approx(0.0002 * voxels / batch)  # config.yaml: the number
    assert from_dict(to_dict(cfg)) == cfg


@pytest.mark.parametrize("overrides, match", [
    (["train.r1_gamma=autp"], "train.r1_gamma: expected a number, got 'autp' \\(or 'auto'\\)"),
    (["train.kimg=auto"], "train.kimg: expected a number, got 'auto'"),
    (["train.loss=wgan-gp"], "augment.mode: .*WGAN critic .*fixed .*none"),
    (["train.tf32=yes please"], "train.tf32: expected true or false"),
    (["train.r1_gamma=-1"], "train.r1_gamma / gp_weight / pl_weight: expected weights >= 0"),
    (["metrics.real_path=held_out.h5"], "metrics.real_path: the procedural source reads no files"),
])
def test_auto_and_tf32_errors_name_the_key(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config("configs/tiny2d.yaml", overrides)


def test_wgan_gp_trains_with_a_fixed_augmentation_probability():
    cfg = load_config("configs/tiny2d.yaml", ["train.loss=wgan-gp", "augment.mode=fixed", "augment.p=0.2"])
    assert cfg.train.loss == "wgan-gp" and cfg.augment.mode == "fixed"


@pytest.mark.parametrize("config", ["configs/digits2d.yaml", "configs/energy16.yaml", "configs/energy3d.yaml",
                                    "configs/ffhq2d.yaml", "configs/mri3d.yaml"])
def test_presets_use_two_mapping_layers_and_the_auto_gamma(config):
    cfg = load_config(config)
    assert cfg.G.mapping_layers == 2  # StyleGAN2-ADA's auto for datasets under ~100k samples
    raw = __import__("yaml").safe_load(open(config))
    if raw["train"].get("r1_gamma") == "auto":
        voxels = 1
        for s in cfg.data.shape:
            voxels *= s
        assert cfg.train.r1_gamma == pytest.approx(0.0002 * voxels / cfg.train.batch)
