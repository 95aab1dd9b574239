"""Training with progressive growing: the phase in every checkpoint, resume exact mid-fade, a batch per
level, and the refusals."""

import pytest
import torch

from ndgan.train import load_config, train
from ndgan.train.config import ConfigError

GROW = ["G.architecture=orig", "D.architecture=orig", "G.base_shape=[8,8]",
        "train.growing=true", "train.fade_kimg=0.016", "train.stable_kimg=0.016", "train.r1_interval=2",
        "train.pl_interval=2", "train.style_mixing=0.5", "data.options.length=256"]


def run(out, *overrides, resume=None):
    return train(load_config("configs/tiny2d.yaml", [*GROW, *overrides]), out, resume)


def test_resume_mid_fade_equals_an_uninterrupted_run_and_the_checkpoint_holds_the_phase(tmp_path):
    run(tmp_path / "a", "train.kimg=0.056", "train.snapshot_kimg=0.024")
    run(tmp_path / "b", "train.kimg=0.024", "train.snapshot_kimg=0.024")
    mid = torch.load(tmp_path / "b" / "checkpoint-000000024.pt", weights_only=True)
    # 24 samples: the base level for 16, then level 1 fading in over 16: half way
    assert mid["growth"] == {"level": 1, "alpha": 0.5}
    for net in ("G", "G_ema"):
        assert mid[net]["synthesis.growth.level_alpha"].tolist() == [1.0, 0.5]
    assert mid["D"]["growth.level_alpha"].tolist() == [1.0, 0.5]
    run(tmp_path / "b", "train.kimg=0.056", "train.snapshot_kimg=0.024", resume="auto")
    a = torch.load(tmp_path / "a" / "checkpoint-000000056.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoint-000000056.pt", weights_only=True)
    assert a["growth"] == b["growth"]  # 56 = 16 + 16 + 16 + 8: half way through level 2's fade
    assert a["growth"]["level"] == 2 and a["growth"]["alpha"] == pytest.approx(0.5)
    for net in ("G", "D", "G_ema"):
        for name, tensor in a[net].items():
            assert torch.equal(tensor, b[net][name]), f"{net}.{name}"
    assert torch.equal(a["pl_mean"], b["pl_mean"])


def test_a_batch_per_level_and_its_logged_phase(tmp_path):
    import json

    out = run(tmp_path / "r", "train.kimg=0.048", "train.snapshot_kimg=0.048", "train.log_steps=1",
              "train.growing_batch=[4,8,8]", "D.mbstd_group_size=4")
    stats = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    steps = [(round(r["kimg"] * 1000), r["growing/level"], r["growing/alpha"]) for r in stats if "step" in r]
    # level 0 at batch 4 until 16 samples, then level 1 at batch 8 (fading in over 16, alone for 16), then
    # level 2; each step logs the phase it leaves the networks in
    assert [n for n, *_ in steps] == [4, 8, 12, 16, 24, 32, 40, 48]
    assert [lv for _, lv, _ in steps] == [0, 0, 0, 1, 1, 1, 1, 2]
    assert [a for *_, a in steps][3:] == pytest.approx([0.0, 0.5, 1.0, 1.0, 0.0])


def test_a_resume_that_changes_the_schedule_is_refused(tmp_path):
    run(tmp_path / "r", "train.kimg=0.016", "train.snapshot_kimg=0.016")
    with pytest.raises(ConfigError, match=r"train.fade_kimg: the checkpoint grew with fade_kimg 0.016, the config "
                                          r"says 0.032; a resume keeps the growing schedule"):
        run(tmp_path / "r", "train.kimg=0.032", "train.fade_kimg=0.032", resume="auto")
    with pytest.raises(ConfigError, match=r"train.growing: the checkpoint grew with growing True"):
        train(load_config("configs/tiny2d.yaml", [*GROW[:3], "train.kimg=0.032", "data.options.length=256"]),
              tmp_path / "r", "auto")


@pytest.mark.parametrize("overrides, match", [
    (["G.architecture=skip"], r"train.growing: progressive growing grows StyleGAN's plain networks"),
    (["G.base_shape=[3,3]"], r"G.base_shape: progressive growing starts at the base shape"),
    (["train.growing_batch=[8,8]"], r"train.growing_batch: expected 3 positive batches"),
    (["train.fade_kimg=0", "train.stable_kimg=0"], r"train.fade_kimg / train.stable_kimg"),
])
def test_bad_growing_configs_are_one_line_errors_naming_the_key(overrides, match):
    with pytest.raises(ConfigError, match=match) as e:
        load_config("configs/tiny2d.yaml", [*GROW, *overrides])
    assert "\n" not in str(e.value)


def test_growing_batch_without_growing_is_refused():
    with pytest.raises(ConfigError, match="train.growing_batch: a batch per level of progressive growing, which is off"):
        load_config("configs/tiny2d.yaml", ["train.growing_batch=[8,8,8]"])


def test_a_checkpoint_from_before_the_style_block_and_growing_keys_still_resumes(tmp_path):
    """Checkpoints written before G.style_block, G.progressive-era keys and train.growing existed resume: a
    missing key means its default, which is what those runs trained with."""
    from ndgan.io import checkpoint as ckpt

    out = train(load_config("configs/tiny2d.yaml", ["train.kimg=0.008", "train.snapshot_kimg=0.008"]), tmp_path / "r")
    path = out / "checkpoint-000000008.pt"
    state = torch.load(path, weights_only=True)
    for key in ("style_block", "use_noise"):
        del state["config"]["G"][key]
    for key in ("growing", "fade_kimg", "stable_kimg", "growing_batch", "lazy_reg"):
        del state["config"]["train"][key]
    del state["growth"]
    ckpt.save(state, path)
    train(load_config("configs/tiny2d.yaml", ["train.kimg=0.016", "train.snapshot_kimg=0.008"]), out, "auto")
    assert (out / "checkpoint-000000016.pt").is_file()


def test_growing_refuses_compile_and_level_batches_the_processes_cannot_split():
    with pytest.raises(ConfigError, match="train.compile: growing blends with a fade-in weight"):
        load_config("configs/tiny2d.yaml", [*GROW, "train.compile=true"])
    from ndgan.train.loop import _configure

    cfg = load_config("configs/tiny2d.yaml", [*GROW, "train.growing_batch=[24,12,8]"])
    with pytest.raises(ConfigError, match=r"train.growing_batch: 12 over 2 process\(es\) gives 6 per process"):
        _configure(cfg, 2, torch.device("cpu"))
    _configure(cfg, 1, torch.device("cpu"))  # one process: 12 splits into groups of 4
