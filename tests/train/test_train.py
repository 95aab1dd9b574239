import copy
import json
import math
import os
import signal
import subprocess
import sys
import time

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from ndgan.io import checkpoint as ckpt
from ndgan.nets import Generator
from ndgan.train import load_config, train
from ndgan.train.config import ConfigError, auto_precision, native_bfloat16_cpu, use_channels_last
from ndgan.train.state import TrainingState
from ndgan.cli.train import main as cli


def run(config, out, *overrides, resume=None):
    return train(load_config(config, list(overrides)), out, resume)


@pytest.mark.parametrize("config, shape", [("configs/tiny2d.yaml", (3, 32, 32)), ("configs/tiny3d.yaml", (2, 16, 16, 16))])
def test_tiny_runs_write_the_run_folder(tmp_path, config, shape):
    out = run(config, tmp_path / "run", "train.kimg=0.05", "train.snapshot_kimg=0.025", "train.log_steps=2")
    names = sorted(p.name for p in out.iterdir())
    assert "config.yaml" in names and "stats.jsonl" in names
    assert [n for n in names if n.startswith("checkpoint-")] == ["checkpoint-000000032.pt", "checkpoint-000000056.pt"]
    grid = Image.open(out / "samples-000000056.png")
    assert min(grid.size) >= 64
    if len(shape) == 4:  # 3D runs also write a pyvista volume render
        assert np.asarray(Image.open(out / "render-000000056.png")).std() > 5
    # The checkpoint is plain data: weights_only loading, and G rebuilds from it alone.
    state = torch.load(out / "checkpoint-000000056.pt", weights_only=True)
    G = Generator(**state["G_kwargs"]).eval()
    G.load_state_dict(state["G_ema"])
    img = G(torch.randn(2, G.z_dim), noise_mode="const")
    assert img.shape == (2, *shape) and torch.isfinite(img).all()
    assert state["nimg"] == 56 and state["config"]["train"]["kimg"] == 0.05


def test_resume_equals_an_uninterrupted_run(tmp_path):
    common = ("train.snapshot_kimg=0.04", "train.r1_interval=4", "train.pl_interval=2")
    run("configs/tiny2d.yaml", tmp_path / "a", "train.kimg=0.096", *common)
    run("configs/tiny2d.yaml", tmp_path / "b", "train.kimg=0.04", *common)
    run("configs/tiny2d.yaml", tmp_path / "b", "train.kimg=0.096", *common, resume="auto")  # extends the run
    a = torch.load(tmp_path / "a" / "checkpoint-000000096.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoint-000000096.pt", weights_only=True)
    for net in ("G", "D", "G_ema"):
        for name, tensor in a[net].items():
            assert torch.equal(tensor, b[net][name]), f"{net}.{name}"
    assert torch.equal(a["pl_mean"], b["pl_mean"])
    assert a["augment"]["p"] > 0 and torch.equal(a["augment"]["p"], b["augment"]["p"])  # ADA's p survives resume
    assert a["D_opt"]["state"][0]["exp_avg_sq"].equal(b["D_opt"]["state"][0]["exp_avg_sq"])


def test_resume_rejects_a_changed_network(tmp_path):
    run("configs/tiny2d.yaml", tmp_path / "r", "train.kimg=0.016", "train.snapshot_kimg=0.016")
    with pytest.raises(ValueError, match="the config's 'G' section differs from the checkpoint's"):
        run("configs/tiny2d.yaml", tmp_path / "r", "train.kimg=0.032", "G.w_dim=32", resume="auto")


def test_cli_errors_exit_2_with_one_line(tmp_path, capsys):
    assert cli(["configs/tiny2d.yaml", "train.kimgs=1", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "train.kimgs: unknown key (did you mean 'kimg'?)" in err and err.count("\n") == 1
    assert cli(["configs/tiny2d.yaml", "data.source=hdf5", "data.path=" + str(tmp_path / "none.h5"),
                "data.options={}", "--out", str(tmp_path / "z")]) == 2
    assert "none.h5 does not exist" in capsys.readouterr().err


def test_two_process_gloo_run(tmp_path):
    """torchrun with 2 CPU processes: gradients averaged (ranks checked in sync at every snapshot), rank 0
    writes the run folder and evaluates the metrics."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "ndgan.train",
           "configs/tiny2d.yaml", "train.kimg=0.032", "train.snapshot_kimg=0.016", "data.options.length=128",
           "train.log_steps=2", "train.metrics=[hist,msssim]", "metrics.num_gen=8", "metrics.batch=8",
           "--out", str(tmp_path / "ddp")]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    names = sorted(p.name for p in (tmp_path / "ddp").iterdir())
    assert "checkpoint-000000032.pt" in names and "config.yaml" in names
    stats = (tmp_path / "ddp" / "stats.jsonl").read_text().splitlines()
    assert len(stats) == 2  # 4 steps logged every 2 steps, by rank 0 alone
    metrics = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 2  # rank 0 evaluates at both snapshots while rank 1 waits


def test_conditional_training_from_labelled_hdf5(tmp_path):
    import h5py
    import numpy as np

    rng = np.random.default_rng(0)
    with h5py.File(tmp_path / "d.h5", "w") as h5:
        h5["data"] = rng.uniform(-1, 1, (32, 1, 16, 16)).astype(np.float32)
        h5["labels"] = rng.integers(0, 3, 32)
    out = run("configs/tiny2d.yaml", tmp_path / "c", "data.source=hdf5", f"data.path={tmp_path / 'd.h5'}",
              "data.shape=[16,16]", "data.channels=1", "data.options={label_key: labels}", "train.kimg=0.016",
              "train.snapshot_kimg=0.016")
    state = torch.load(out / "checkpoint-000000016.pt", weights_only=True)
    assert state["G_kwargs"]["c_dim"] == 3 and "mapping.embed.weight" in state["D"]


def test_bfloat16_autocast_run(tmp_path):
    out = run("configs/tiny3d.yaml", tmp_path / "bf", "train.precision=bfloat16", "train.kimg=0.016",
              "train.snapshot_kimg=0.016")
    state = torch.load(out / "checkpoint-000000016.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["G"].values())


def test_auto_precision_is_bfloat16_only_on_a_cpu_with_bfloat16_instructions():
    assert auto_precision(torch.device("cpu"), native_bf16=True) == "bfloat16"
    assert auto_precision(torch.device("cpu"), native_bf16=False) == "float32"
    assert auto_precision(torch.device("cuda"), native_bf16=True) == "float32"  # CUDA keeps ADA's default
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else None
    if flags is not None:  # Linux: torch's capability check agrees with the kernel's CPU flags
        assert native_bfloat16_cpu() == ("avx512_bf16" in flags or "amx_bf16" in flags)


def test_auto_precision_run_records_and_announces_what_ran(tmp_path, capsys):
    assert load_config("configs/tiny2d.yaml").train.precision == "auto"  # the default
    out = run("configs/tiny2d.yaml", tmp_path / "a", "train.kimg=0.008", "train.snapshot_kimg=0.008")
    expected = auto_precision(torch.device("cpu"))
    assert f"train.precision auto: {expected} on cpu" in capsys.readouterr().out
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["precision"] == expected
    state = torch.load(out / "checkpoint-000000008.pt", weights_only=True)
    assert state["config"]["train"]["precision"] == expected
    # A resume in another precision than the checkpoint's says so (and trains on).
    other = "float32" if expected == "bfloat16" else "bfloat16"
    run("configs/tiny2d.yaml", tmp_path / "a", "train.kimg=0.016", "train.snapshot_kimg=0.008",
        f"train.precision={other}", resume="auto")
    assert (f"warning: train.precision is {other} now, the checkpoint trained with {expected}"
            in capsys.readouterr().out)


def test_channels_last_auto_is_on_for_2d_and_3d_on_the_cpu_only():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    cfg = lambda shape, value="auto": load_config(None, [f"data.shape={shape}", f"train.channels_last={value}"])  # noqa: E731
    assert use_channels_last(cfg("[32,32]"), cpu) and not use_channels_last(cfg("[32,32]"), cuda)
    assert use_channels_last(cfg("[16,16,16]"), cpu) and not use_channels_last(cfg("[16,16,16]"), cuda)
    assert not use_channels_last(cfg("[16,16,16]", "false"), cpu) and use_channels_last(cfg("[16,16,16]", "true"), cpu)
    assert not use_channels_last(cfg("[64]"), cpu)
    assert not use_channels_last(cfg("[64]", "true"), cpu)  # no channels-last layout in 1D
    assert not use_channels_last(cfg("[32,32]", "false"), cpu)


@pytest.mark.parametrize("nd, padding_mode", [(2, "zeros"), (3, "zeros"), (3, "circular")])
def test_channels_last_networks_compute_what_contiguous_ones_do(nd, padding_mode):
    """train.channels_last changes where values sit in memory, not what G and D compute or their gradients,
    R1's double backward included; G's output stays in the layout end to end."""
    from ndgan.nets import Discriminator
    from ndgan.train.state import CHANNELS_LAST, to_memory_format

    torch.manual_seed(0)
    shape = (16,) * nd
    G = Generator(nd, shape, 2, z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16,
                  padding_mode=padding_mode)
    D = Discriminator(nd, shape, 2, channel_base=128, channel_max=16, padding_mode=padding_mode)
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    fmt = CHANNELS_LAST[nd]
    for net in (G2, D2):
        to_memory_format(net, fmt)
    weights = [p for net in (G2, D2) for p in net.parameters() if p.ndim == nd + 2]
    assert all(p.is_contiguous(memory_format=fmt) for p in weights)
    assert any(not p.is_contiguous() for p in weights)  # really re-laid out
    z, reals = torch.randn(4, 16), torch.randn(4, 2, *shape)
    outs = []
    for g, d, x in ((G, D, reals), (G2, D2, reals.contiguous(memory_format=fmt))):
        fakes = g(z, noise_mode="const")
        assert fakes.is_contiguous(memory_format=fmt) == (g is G2)
        x = x.detach().requires_grad_()
        real_logits = d(x)
        (r1_grad,) = torch.autograd.grad(real_logits.sum(), x, create_graph=True)
        logits = d(fakes) + real_logits
        (logits.sum() + r1_grad.square().sum()).backward()
        outs.append((logits.detach(), [p.grad for p in (*g.parameters(), *d.parameters())]))
    torch.testing.assert_close(outs[1][0], outs[0][0], rtol=1e-4, atol=1e-5)
    for got, want in zip(outs[1][1], outs[0][1]):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("value, expected", [("true", True), ("false", False), ("auto", True)])  # auto: on, on CPU
def test_channels_last_option_lays_out_the_training_state_and_saves_contiguous(tmp_path, value, expected):
    out = run("configs/tiny3d.yaml", tmp_path / value, "train.kimg=0.016", "train.snapshot_kimg=0.016",
              f"train.channels_last={value}")
    state = torch.load(out / "checkpoint-000000016.pt", weights_only=True)
    assert all(v.is_contiguous() for key in ("G", "D", "G_ema") for v in state[key].values())
    cfg = load_config("configs/tiny3d.yaml", [f"train.channels_last={value}"])
    s = TrainingState(cfg, 0, torch.device("cpu"))
    weights = [p for p in (*s.G.parameters(), *s.D.parameters(), *s.G_ema.parameters())  # where the layouts differ
               if p.ndim == 5 and p.shape[1] > 1 and max(p.shape[2:]) > 1]
    assert len(weights) > 5
    assert all(p.is_contiguous(memory_format=torch.channels_last_3d) == expected for p in weights)
    assert all(torch.isfinite(v).all() for v in state["G"].values())


def test_missing_data_says_what_to_download(tmp_path, capsys):
    assert cli(["configs/ffhq2d.yaml", f"data.path={tmp_path / 'nope'}", "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "FFHQ thumbnails" in err and err.count("\n") == 1


@pytest.mark.parametrize("overrides", [("train.loss=wgan-gp", "augment.mode=fixed", "augment.p=0.2"),
                                       ("train.precision=float16",)])
def test_wgan_gp_and_float16_runs(tmp_path, overrides):
    out = run("configs/tiny2d.yaml", tmp_path / "w", "train.kimg=0.016", "train.snapshot_kimg=0.016", *overrides)
    state = torch.load(out / "checkpoint-000000016.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["G"].values())
    assert all(torch.isfinite(v).all() for v in state["D"].values())


def test_resume_applies_a_changed_learning_rate_and_interval(tmp_path):
    run("configs/tiny2d.yaml", tmp_path / "r", "train.kimg=0.016", "train.snapshot_kimg=0.016")
    run("configs/tiny2d.yaml", tmp_path / "r", "train.kimg=0.032", "train.snapshot_kimg=0.016", "train.d_lr=1e-4",
        "train.r1_interval=0", resume="auto")
    group = torch.load(tmp_path / "r" / "checkpoint-000000032.pt", weights_only=True)["D_opt"]["param_groups"][0]
    assert group["lr"] == pytest.approx(1e-4) and group["betas"][1] == pytest.approx(0.99)  # no lazy correction


def test_a_used_run_folder_needs_resume(tmp_path, capsys):
    run("configs/tiny2d.yaml", tmp_path / "r", "train.kimg=0.016", "train.snapshot_kimg=0.016")
    assert cli(["configs/tiny2d.yaml", "train.kimg=0.016", "--out", str(tmp_path / "r")]) == 2
    assert "holds checkpoints of an earlier run; pass --resume auto" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "r").glob("checkpoint-*")] == ["checkpoint-000000016.pt"]


def test_logged_regularisation_is_averaged_over_the_steps_it_ran(tmp_path):
    import json

    common = ("train.kimg=0.064", "train.snapshot_kimg=0.064", "train.r1_interval=4", "train.pl_interval=4")
    every = run("configs/tiny2d.yaml", tmp_path / "a", *common, "train.log_steps=1")
    grouped = run("configs/tiny2d.yaml", tmp_path / "b", *common, "train.log_steps=4")
    a = [json.loads(line) for line in (every / "stats.jsonl").read_text().splitlines()]
    b = [json.loads(line) for line in (grouped / "stats.jsonl").read_text().splitlines()]
    r1_steps = [s["loss/R1"] for s in a if "loss/R1" in s]  # steps 0 and 4 ran R1
    assert [s["loss/R1"] for s in b] == pytest.approx(r1_steps, rel=1e-5)


def test_bad_batch_for_the_minibatch_std_group(tmp_path, capsys):
    assert cli(["configs/tiny2d.yaml", "train.batch=6", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "train.batch: 6 over 1 process(es) gives 6 per process, which D.mbstd_group_size=4 does not divide" in err


@pytest.mark.parametrize("config, ops", [
    ("configs/tiny2d.yaml", "[flip,rot90,translate,scale,rotate,brightness,contrast,color,cutout]"),
    ("configs/tiny3d.yaml", "[flip,rot90,translate,scale,rotate,brightness,contrast,cutout]")])
def test_every_augmentation_op_trains_with_r1_through_it(tmp_path, config, ops):
    """p = 1: every op acts on everything D sees, and R1's double backward goes through all of them."""
    out = run(config, tmp_path / "aug", "train.kimg=0.016", "train.snapshot_kimg=0.016", "train.r1_interval=1",
              "augment.mode=fixed", "augment.p=1", f"augment.ops={ops}", "train.log_steps=1",
              "data.periodic=false")  # scale and rotate are refused for periodic cells
    stats = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    assert all(s["augment_p"] == 1.0 and math.isfinite(s["loss/R1"]) and s["loss/R1"] > 0 for s in stats)


def test_augmentation_none_sees_the_raw_batches(tmp_path, monkeypatch):
    """mode none: the pipeline is never called, and the logged p is 0."""
    import ndgan.train.step as step_module

    def refuse(*args, **kwargs):
        raise AssertionError("augment() called with augment.mode=none")

    monkeypatch.setattr(step_module, "augment", refuse)
    out = run("configs/tiny2d.yaml", tmp_path / "off", "train.kimg=0.016", "train.snapshot_kimg=0.016",
              "augment.mode=none", "train.log_steps=1")
    stats = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    assert all(s["augment_p"] == 0.0 for s in stats)


@pytest.mark.parametrize("loss, per_step", [("nonsaturating", 3), ("wgan-gp", 4)])
def test_everything_d_sees_is_augmented(tmp_path, monkeypatch, loss, per_step):
    """D main (reals, fakes), G main (fakes), the WGAN gradient penalty, and R1 at step 0 all pass through
    the pipeline."""
    import ndgan.train.step as step_module

    calls = []
    real_augment = step_module.augment
    monkeypatch.setattr(step_module, "augment", lambda x, *a, **k: calls.append(x.shape[0]) or real_augment(x, *a, **k))
    run("configs/tiny2d.yaml", tmp_path / "n", "train.kimg=0.016", "train.snapshot_kimg=0.016",
        f"train.loss={loss}", "train.pl_weight=0", f"augment.mode={'ada' if loss == 'nonsaturating' else 'fixed'}")
    # (2 steps of batch 8; WGAN-GP takes a fixed p: ADA's controller is refused with a critic)
    r1 = 1 if loss == "nonsaturating" else 0
    assert len(calls) == 2 * per_step + r1 and set(calls) == {8}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_writes_a_checkpoint_and_exits_cleanly(tmp_path, sig):
    """Pre-emption: SIGTERM (or Ctrl-C) mid-run checkpoints the current step, exits 0, and the run resumes."""
    out = tmp_path / "sig"
    cmd = [sys.executable, "-m", "ndgan.train", "configs/tiny2d.yaml", "train.kimg=50", "train.snapshot_kimg=50",
           "train.log_steps=1", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not ((out / "stats.jsonl").exists() and len((out / "stats.jsonl").read_text().splitlines()) >= 3):
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() else "timeout"
        time.sleep(0.2)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-2000:]
    assert "stopped by SIG" in stdout and "--resume auto" in stdout
    (path,) = [p for p in out.iterdir() if p.name.startswith("checkpoint-")]
    state = torch.load(path, weights_only=True)
    assert 0 < state["nimg"] < 50_000 and path.name == f"checkpoint-{state['nimg']:09d}.pt"
    resumed = run("configs/tiny2d.yaml", out, f"train.kimg={(state['nimg'] + 16) / 1000}",
                  "train.snapshot_kimg=50", resume="auto")
    assert torch.load(resumed / f"checkpoint-{state['nimg'] + 16:09d}.pt", weights_only=True)["step"] == \
        state["step"] + 2


def test_a_non_finite_step_rolls_back_with_a_lower_learning_rate(tmp_path, monkeypatch):
    """One NaN generator loss (step 5) poisons G; the next check rolls back to the step-4 checkpoint with half
    the learning rates, and the run finishes with finite weights."""
    import ndgan.train.step as step_module

    calls, real_loss = [], step_module.losses.g_nonsaturating

    def flaky(logits):
        calls.append(1)
        return real_loss(logits) * (float("nan") if len(calls) == 5 else 1.0)

    monkeypatch.setattr(step_module.losses, "g_nonsaturating", flaky)
    out = run("configs/tiny2d.yaml", tmp_path / "nan", "train.kimg=0.064", "train.snapshot_kimg=0.032",
              "train.log_steps=1", "train.keep_checkpoints=5")
    lines = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    (rollback,) = [line for line in lines if "rollback" in line]
    assert rollback == {"kimg": 0.032, "step": 4, "rollback": 1, "lr_scale": 0.5}
    final = torch.load(out / "checkpoint-000000064.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for net in ("G", "D", "G_ema") for v in final[net].values())
    assert final["lr_scale"] == 0.5
    ratio = 4 / 5  # the lazy-regularisation correction of the G optimiser (pl_interval 4)
    assert final["G_opt"]["param_groups"][0]["lr"] == pytest.approx(0.0025 * ratio * 0.5)


def test_a_run_that_keeps_diverging_stops_with_one_line(tmp_path, monkeypatch, capsys):
    import ndgan.train.step as step_module

    calls, real_loss = [], step_module.losses.g_nonsaturating

    def broken(logits):  # finite for 4 steps, then NaN forever
        calls.append(1)
        return real_loss(logits) * (float("nan") if len(calls) > 4 else 1.0)

    monkeypatch.setattr(step_module.losses, "g_nonsaturating", broken)
    code = cli(["configs/tiny2d.yaml", "train.kimg=0.064", "train.snapshot_kimg=0.032", "train.log_steps=1",
                "train.max_rollbacks=2", "--out", str(tmp_path / "div")])
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if "error:" in line]  # besides the progress bar's lines
    assert code == 2 and "Traceback" not in err and "after 2 rollbacks" in line and "lower train.g_lr" in line
    kept = torch.load(tmp_path / "div" / "checkpoint-000000032.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in kept["G"].values())  # the good checkpoint is untouched


def test_a_killed_runs_temporaries_are_removed_and_nothing_else(tmp_path):
    run("configs/tiny2d.yaml", tmp_path / "r", "train.kimg=0.008", "train.snapshot_kimg=0.008")
    stale = [".tmp-99999-checkpoint-000000016.pt", ".tmp-7-samples-000000016.png", ".tmp-7-config.yaml",
             ".checkpoint-000000016.pt.7.tmp"]  # the last: the name older versions used
    others = [".tmp-5-G.safetensors", "notes.tmp", ".tmp-99999-checkpoint-000000016.pt.bak"]
    for name in stale + others:
        (tmp_path / "r" / name).write_bytes(b"half")
    (tmp_path / "r" / ".tmp-project-999").mkdir()  # a killed projector's folder: not training's to delete
    run("configs/tiny2d.yaml", tmp_path / "r", "train.kimg=0.016", "train.snapshot_kimg=0.008", resume="auto")
    names = {p.name for p in (tmp_path / "r").iterdir()}
    assert not names & set(stale) and set(others) <= names and ".tmp-project-999" in names
    assert "checkpoint-000000016.pt" in names


def test_a_second_trainer_in_the_same_folder_is_refused(tmp_path, capsys):
    folder = tmp_path / "r"
    folder.mkdir()
    holder = subprocess.Popen(  # another process holding the lock, as a live training run does
        [sys.executable, "-c", "import fcntl, sys; f = open(sys.argv[1], 'a'); fcntl.lockf(f.fileno(), "
         "fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()", str(folder / ".lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert cli(["configs/tiny2d.yaml", "train.kimg=0.008", "--out", str(folder)]) == 2
        assert "another process is training into this folder" in capsys.readouterr().err
        assert sorted(p.name for p in folder.iterdir()) == [".lock"]  # nothing written beside the lock
    finally:
        holder.stdin.close()
        holder.wait()
    assert cli(["configs/tiny2d.yaml", "train.kimg=0.008", "--out", str(folder)]) == 0  # released: trains


def test_the_lock_is_not_inherited_by_forked_workers(tmp_path):
    from ndgan.train.run_folder import lock_run_folder

    lock = lock_run_folder(tmp_path)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # a DataLoader worker forked while the lock is held, outliving the trainer
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    try:
        lock.close()
        lock_run_folder(tmp_path).close()  # an inherited flock would still be held by the worker: refused
    finally:
        os.close(r)
        os.write(w, b"x")
        os.close(w)
        os.waitpid(pid, 0)


def test_overrides_may_follow_the_flags(tmp_path):
    assert cli(["configs/tiny2d.yaml", "--out", str(tmp_path / "r"), "train.kimg=0.008", "train.batch=4"]) == 0
    state = torch.load(tmp_path / "r" / "checkpoint-000000008.pt", weights_only=True)
    assert state["config"]["train"]["batch"] == 4 and state["step"] == 2


def test_a_failed_start_releases_the_run_folder_lock(tmp_path, monkeypatch):
    import ndgan.train.run_folder as run_folder

    def broken(run_dir):
        raise OSError(28, "No space left on device", str(run_dir / "tensorboard"))

    monkeypatch.setattr(run_folder, "_tensorboard", broken)  # fails after the lock is taken
    with pytest.raises(OSError, match="No space left") as failed:  # kept, as a notebook keeps its last traceback
        run("configs/tiny2d.yaml", tmp_path / "r", "train.kimg=0.008")
    monkeypatch.undo()
    run("configs/tiny2d.yaml", tmp_path / "r", "train.kimg=0.008")  # the same process may train there again
    assert (tmp_path / "r" / "checkpoint-000000008.pt").exists() and failed.traceback


def test_resume_auto_continues_past_a_torn_newest_checkpoint(tmp_path):
    run("configs/tiny2d.yaml", tmp_path / "r", "train.kimg=0.008", "train.snapshot_kimg=0.008")
    (tmp_path / "r" / "checkpoint-000000016.pt").write_bytes(b"torn by a power cut")
    with pytest.warns(UserWarning, match="skipping .*checkpoint-000000016.pt"):
        run("configs/tiny2d.yaml", tmp_path / "r", "train.kimg=0.016", "train.snapshot_kimg=0.008", resume="auto")
    state = torch.load(tmp_path / "r" / "checkpoint-000000016.pt", weights_only=True)  # rewritten whole
    assert state["nimg"] == 16 and state["step"] == 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc: Linux only")
def test_cpu_malloc_cache_reuses_freed_large_blocks():
    """Measured by the kernel: a step that allocates and frees three 32 MB tensors faults in fresh pages every
    time by default (malloc maps each anew); once cache_cpu_allocations() has run, freed blocks are reused (in
    these runs 0 to 2 of the 9 allocations of the measured steps still found no free block)."""
    script = ("import resource, sys, torch\n"
              "from ndgan.train.loop import cache_cpu_allocations\n"
              "applied = cache_cpu_allocations() if sys.argv[1] == 'on' else None\n"
              "def step():\n"
              "    a = torch.ones(8 * 2**20 + 1000); b = a * 2; c = b + a\n"  # just above glibc's 32 MB limit
              "    return float(c[0])\n"
              "for _ in range(3): step()\n"
              "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
              "for _ in range(3): step()\n"
              "print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n")
    faults = {}
    for mode in ("off", "on"):
        out = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, check=True)
        applied, count = out.stdout.split()
        assert applied == {"off": "None", "on": "True"}[mode]
        faults[mode] = int(count)
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if not (thp.exists() and "[always]" in thp.read_text()):  # with 2 MiB pages a fresh mapping faults 16 times
        assert faults["off"] > 70000, faults  # 9 x 8193 pages of 4 KiB, faulted in afresh
    assert faults["on"] < faults["off"] / 3, faults


def test_auto_values_are_written_resolved_and_metrics_use_held_out_reals(tmp_path):
    from ndgan.data import open_dataset
    from ndgan.metrics import MetricSettings
    from ndgan.metrics.evaluate import Evaluator

    out = run("configs/tiny2d.yaml", tmp_path / "run", "train.r1_gamma=auto", "train.ema_kimg=auto",
              "train.kimg=0.016", "train.snapshot_kimg=0.016", "train.metrics=[hist]", "metrics.num_gen=16",
              "metrics.real_options={seed: 9, length: 64}")
    written = yaml.safe_load((out / "config.yaml").read_text())["train"]
    assert written["r1_gamma"] == pytest.approx(0.0002 * 32 * 32 / 8) and written["ema_kimg"] == pytest.approx(2.5)
    logged = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["results"]
    # The baseline depends on the real side alone: recompute it on the held-out set (seed 9) and on the training set.
    settings = MetricSettings(num_gen=16)
    held_out = open_dataset("procedural", spatial_dims=2, shape=(32, 32), channels=3, length=64, seed=9)
    training = open_dataset("procedural", spatial_dims=2, shape=(32, 32), channels=3, length=2048, seed=0)
    G = Generator(2, (32, 32), 3, z_dim=8, w_dim=8, mapping_layers=1, channel_base=64, channel_max=8)
    expected = Evaluator(["hist"], held_out, settings).evaluate(G)[0]["hist_w1_baseline"]
    other = Evaluator(["hist"], training, settings).evaluate(G)[0]["hist_w1_baseline"]
    assert logged["hist_w1_baseline"] == pytest.approx(expected, rel=1e-6) and abs(expected - other) > 1e-4


def test_metrics_cli_and_resume_use_the_run_config(tmp_path, capsys):
    from ndgan.cli.metrics import main as metrics_cli

    common = ["train.kimg=0.016", "train.snapshot_kimg=0.016", "train.metrics=[hist]", "metrics.num_gen=16",
              "metrics.real_options={seed: 9, length: 64}"]
    out = run("configs/tiny2d.yaml", tmp_path / "run", *common)
    logged = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["results"]
    assert metrics_cli([str(out), "--metrics", "hist", "--json", str(tmp_path / "m.json")]) == 0
    offline = json.loads((tmp_path / "m.json").read_text())["results"]
    assert offline["hist_w1_baseline"] == logged["hist_w1_baseline"]  # the same held-out reals, not the training set
    capsys.readouterr()
    run("configs/tiny2d.yaml", tmp_path / "run", *common, "train.kimg=0.032", "train.r1_gamma=0.5", resume="auto")
    assert "warning: train.r1_gamma is 0.5 now, the checkpoint trained with 0.1" in capsys.readouterr().out


def test_held_out_energy_cells_need_their_own_file(tmp_path):
    with pytest.raises(ConfigError, match="metrics.real_options: the energy source caches"):
        run("configs/tiny3d.yaml", tmp_path / "run", "data.source=energy", f"data.path={tmp_path / 'e.h5'}",
            "data.options={n: 8, size: 16}", "train.metrics=[hist]", "metrics.real_options={seed: 1}")
    assert not (tmp_path / "run").exists()


def test_missing_held_out_reals_fail_before_step_0(tmp_path):
    import h5py

    with h5py.File(tmp_path / "train.h5", "w") as f:
        f.create_dataset("data", data=np.random.default_rng(0).uniform(-1, 1, (8, 3, 32, 32)).astype(np.float32))
    with pytest.raises(ConfigError, match="metrics.real_path: .*nowhere.h5 does not exist"):
        run("configs/tiny2d.yaml", tmp_path / "run", "data.source=hdf5", f"data.path={tmp_path / 'train.h5'}",
            "data.options={}", "train.metrics=[hist]", f"metrics.real_path={tmp_path / 'nowhere.h5'}")
    assert not (tmp_path / "run").exists()


def test_a_written_checkpoint_holds_exactly_the_documented_layout(tmp_path):
    """The layout is defined once (ndgan.io.checkpoint.CHECKPOINT_KEYS); what training writes is that, no more,
    no less, and a generator file reads back from it."""
    out = run("configs/tiny2d.yaml", tmp_path / "layout", "train.kimg=0.008", "train.snapshot_kimg=0.008")
    (path,) = out.glob("checkpoint-*.pt")
    state = ckpt.load(path)
    assert set(state) == set(ckpt.CHECKPOINT_KEYS)
    assert set(ckpt.read_generator(path)) == set(ckpt.GENERATOR_KEYS)
