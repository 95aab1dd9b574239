"""Bringing a model over and training it on: ``--init`` (weights only, from an ndgan checkpoint or an NVIDIA
pickle), ``train.freeze_d`` (FreezeD) and ``train.batch_gpu`` (gradient accumulation)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ndgan.cli.train import main as train_cli
from ndgan.io import checkpoint as ckpt
from ndgan.io import nvlabs
from ndgan.train import load_config, train

ROOT = Path(__file__).resolve().parents[2]
TINY2D = str(ROOT / "configs/tiny2d.yaml")
PKL = ROOT / "tests/data/nvlabs/orig-orig.pkl"
# The configuration of the orig-orig fixture (16x16 RGB, channels 8), on procedural images.
LIKE_PKL = ["data.source=procedural", "data.shape=[16,16]", "data.channels=3", "data.options={length: 64}",
            "G.z_dim=8", "G.w_dim=8", "G.mapping_layers=2", "G.channel_base=64", "G.channel_max=8",
            "G.architecture=orig", "D.channel_base=64", "D.channel_max=8", "D.architecture=orig",
            "D.mbstd_group_size=2", "train.batch=4", "train.kimg=0.004", "train.snapshot_kimg=0.004"]


def _final(run):
    return ckpt.load(ckpt.list_checkpoints(run)[-1])


def test_init_from_an_nvidia_pickle_starts_a_fresh_run_with_its_weights(tmp_path):
    run = train(load_config(TINY2D, [*LIKE_PKL, "train.g_lr=1e-30", "train.d_lr=1e-30"]), tmp_path / "r", init=PKL)
    state, nets = _final(run), nvlabs.read_checkpoint(PKL)
    assert state["step"] == 1 and state["nimg"] == 4  # counters start at 0: one step done
    for key in ("G", "G_ema", "D"):  # learning rates of 1e-30: the weights are still the pickle's
        for name, tensor in nets[key].items():
            if not name.endswith("w_avg"):  # (a running mean of w, moved by the step's batch)
                torch.testing.assert_close(state[key][name], tensor, rtol=0, atol=1e-6, msg=f"{key}.{name}")
    assert not torch.equal(state["G"]["mapping.w_avg"], torch.zeros_like(state["G"]["mapping.w_avg"]))


@pytest.mark.parametrize("override, words", [
    ("data.shape=[32,32]", ["another resolution or channel count", "[3, 16, 16]", "[3, 32, 32]"]),
    ("G.channel_max=16", ["G.synthesis.blocks.0.const", "(8, 4, 4)", "(16, 4, 4)", "G.*"]),
    ("D.architecture=resnet", ["D.blocks.0", "D.*"]),
])
def test_init_refuses_networks_that_do_not_fit(tmp_path, capsys, override, words):
    argv = [TINY2D, *LIKE_PKL, override, "--init", str(PKL), "--out", str(tmp_path / "r")]
    assert train_cli(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(w in err for w in words), err
    assert not (tmp_path / "r").exists()


def test_init_and_resume_together_are_refused(tmp_path, capsys):
    assert train_cli([TINY2D, "--init", str(PKL), "--resume", "auto", "--out", str(tmp_path / "r")]) == 2
    assert "give one of them" in capsys.readouterr().err


def test_freeze_d_keeps_the_first_blocks_bit_identical_and_trains_the_rest(tmp_path):
    base = train(load_config(TINY2D, ["train.kimg=0.008", "train.snapshot_kimg=0.008"]), tmp_path / "base")
    start = _final(base)
    run = train(load_config(TINY2D, ["train.kimg=0.024", "train.snapshot_kimg=0.024", "train.freeze_d=2",
                                     "train.r1_interval=1"]), tmp_path / "tuned", init=base)
    end = _final(run)
    frozen = [k for k in start["D"] if k.startswith(("blocks.0.", "blocks.1."))]
    trained = [k for k in start["D"] if k not in frozen]
    assert frozen and all(torch.equal(start["D"][k], end["D"][k]) for k in frozen)
    assert all(not torch.equal(start["D"][k], end["D"][k]) for k in trained if k.endswith("weight"))
    assert any(not torch.equal(start["G"][k], end["G"][k]) for k in start["G"])


def test_freeze_d_beyond_the_blocks_is_refused(tmp_path, capsys):
    assert train_cli([TINY2D, "train.freeze_d=9", "--out", str(tmp_path / "r")]) == 2
    assert "train.freeze_d: 9, but D has" in capsys.readouterr().err


# What the maths lets be equal, for one step: no minibatch-stddev (its groups stay inside a micro-batch), no
# augmentation, no style mixing and no path length (their random draws and running mean go per micro-batch).
# Left out of the comparison: the noise strengths, whose gradient is the noise itself (drawn per forward pass,
# so per micro-batch), and w_avg, a running mean of w moved once per mapping pass.
# float32: the sums of micro-batch gradients are compared with the whole batch's at float32 tolerances
EXACT = ["train.precision=float32", "D.mbstd_num_channels=0", "augment.mode=none", "train.style_mixing=0",
         "train.pl_weight=0", "train.batch=8", "train.r1_interval=1", "train.kimg=0.008", "train.snapshot_kimg=0.008"]


def test_accumulated_gradients_equal_the_single_batch_ones(tmp_path):
    """With Adam's beta1 = 0 (StyleGAN2's), the first moment after a step is that step's gradient: G main's
    for G, R1's (the last D step) for D. Summed over four micro-batches they equal the whole batch's."""
    whole = _final(train(load_config(TINY2D, EXACT), tmp_path / "whole"))
    micro = _final(train(load_config(TINY2D, [*EXACT, "train.batch_gpu=2"]), tmp_path / "micro"))
    assert micro["step"] == whole["step"] == 1
    compared = 0
    for key in ("G_opt", "D_opt"):
        for i, moments in whole[key]["state"].items():
            grad = moments["exp_avg"]
            if grad.ndim == 0:  # a noise strength: its gradient is the noise, drawn per micro-batch
                continue
            torch.testing.assert_close(micro[key]["state"][i]["exp_avg"], grad, rtol=1e-4,
                                       atol=1e-5 * float(grad.abs().max()))
            compared += 1
    assert compared > 30
    for key in ("G", "D"):  # and so the weights, up to Adam's division by the gradients' size
        for name, tensor in whole[key].items():
            if not name.endswith(("noise.strength", "w_avg")):
                torch.testing.assert_close(micro[key][name], tensor, rtol=0, atol=2e-4)


def test_accumulation_resumes_exactly(tmp_path):
    args = ["train.batch_gpu=2", "train.batch=8", "D.mbstd_group_size=2", "train.snapshot_kimg=0.016",
            "train.r1_interval=2", "train.pl_interval=2"]
    straight = _final(train(load_config(TINY2D, [*args, "train.kimg=0.032"]), tmp_path / "a"))
    train(load_config(TINY2D, [*args, "train.kimg=0.016"]), tmp_path / "b")
    resumed = _final(train(load_config(TINY2D, [*args, "train.kimg=0.032"]), tmp_path / "b", resume="auto"))
    for key in ("G", "D", "G_ema"):
        for name, tensor in straight[key].items():
            assert torch.equal(resumed[key][name], tensor), f"{key}.{name}"
    assert torch.equal(resumed["pl_mean"], straight["pl_mean"])


@pytest.mark.parametrize("override, words", [
    ("train.batch_gpu=3", ["train.batch_gpu: 3 does not divide the 8 samples per process"]),
    ("train.batch_gpu=6", ["train.batch_gpu: 6 is not a multiple of D.mbstd_group_size=4"]),
])
def test_micro_batches_that_do_not_fit_are_refused(tmp_path, capsys, override, words):
    batch = "train.batch=12" if override.endswith("6") else "train.batch=8"
    assert train_cli([TINY2D, batch, override, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err
