"""Kill test: SIGKILL a training run at random moments, resume it each time, and check that nothing was lost.

    python tools/kill_resume.py [--config configs/tiny2d.yaml] [--kills 8] [--seed 0] [--work DIR] [KEY=VALUE ...]

First an uninterrupted run of the config (with the overrides) goes to WORK/reference and is timed. Then the same
run goes to WORK/killed with ``--resume auto``, and each attempt is killed with SIGKILL after a random delay drawn
from most of the time the rest of the run took in the reference: during start-up, during steps, while a checkpoint or sample grid is being written. After
every kill:

- every checkpoint in the run folder loads (``weights_only=True``);
- the progress lost, from the newest step logged before the kill to the newest checkpoint that loads, is at
  most one snapshot interval, and the next attempt really starts from that checkpoint (its first logged step
  is one batch past it), not from scratch.

After the kills the run is left to finish. Then no temporary file is left in the run folder, and the final
checkpoint's networks, optimiser states, path-length mean, augmentation p and RNG state equal the uninterrupted
run's bit for bit (CPU; one process). Prints one line per kill and exits 0 if every check held, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ndgan.io import checkpoint as ckpt  # noqa: E402
from ndgan.train.config import load_config  # noqa: E402

#: A tiny run with a snapshot every other step, so that kills often land in a checkpoint write.
DEFAULTS = ["train.kimg=0.2", "train.snapshot_kimg=0.016", "train.log_steps=1", "train.keep_checkpoints=2",
            "train.r1_interval=4", "train.pl_interval=2", "train.device=cpu", "data.workers=0"]


def _train(config, overrides, out, log, resume=False):
    args = [sys.executable, "-m", "ndgan.train", config, *overrides, "--out", str(out)]
    return subprocess.Popen(args + (["--resume", "auto"] if resume else []), cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT)


def _newest_valid_nimg(run) -> int:
    path, state = ckpt.latest_valid(run)
    return 0 if state is None else state["nimg"]


def _logged(run) -> list[int]:
    """The progress of every step written to stats.jsonl (one line per step with train.log_steps=1)."""
    stats = run / "stats.jsonl"
    if not stats.exists():
        return []
    lines = [json.loads(line) for line in stats.read_text().splitlines()]
    return [round(line["kimg"] * 1000) for line in lines if "rollback" not in line]


def _differences(a: dict, b: dict, where="") -> list[str]:
    """Paths at which two checkpoint states differ (tensors compared exactly)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where}: keys differ"]
        return [d for k in a for d in _differences(a[k], b[k], f"{where}.{k}")]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{where}: lengths differ"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{where}[{i}]")]
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return [] if a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b) else [where]
    return [] if a == b else [where]


def kill_test(config, overrides=(), kills=8, seed=0, work=None, echo=print) -> tuple[list[str], int]:
    """Run the kill test; returns the failed checks (empty: all held) and the number of kills."""
    overrides = [*DEFAULTS, *overrides]
    cfg = load_config(ROOT / config, overrides)
    snap, total, batch = round(cfg.train.snapshot_kimg * 1000), round(cfg.train.kimg * 1000), cfg.train.batch
    work = Path(work or tempfile.mkdtemp(prefix="ndgan-kill-"))
    work.mkdir(parents=True, exist_ok=True)
    ref, run = work / "reference", work / "killed"
    failures = []

    with open(work / "reference.log", "wb") as log:
        start, startup = time.time(), None
        proc = _train(config, overrides, ref, log)
        while proc.poll() is None:
            if startup is None and (ref / "stats.jsonl").exists():
                startup = time.time() - start  # imports, data, networks: until the first step is logged
            time.sleep(0.02)
        code, duration = proc.returncode, time.time() - start
    if code != 0:
        return [f"the uninterrupted run failed (exit {code}); see {work / 'reference.log'}"], 0
    startup = duration if startup is None else startup
    echo(f"uninterrupted run: {duration:.1f} s ({startup:.1f} s start-up) to {total} images, a checkpoint "
         f"every {snap}")

    rng = random.Random(seed)
    attempt, in_writes = 0, 0
    while True:
        attempt += 1
        newest, logged_before = _newest_valid_nimg(run), len(_logged(run))
        # A moment within what is left of the run: start-up plus the remaining steps' share of the time.
        left = startup + (duration - startup) * (total - _newest_valid_nimg(run)) / total
        delay = rng.uniform(0.5 * startup, 0.9 * left) if attempt <= kills else None
        with open(work / f"attempt-{attempt}.log", "wb") as log:
            proc = _train(config, overrides, run, log, resume=True)
            try:
                code = proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                code = None
        # Where this attempt really started: its first logged step, one batch past its starting point.
        new = _logged(run)[logged_before:]
        if new and new[0] - batch != newest:
            failures.append(f"attempt {attempt} started from {new[0] - batch} images, but the newest checkpoint "
                            f"that loads was at {newest}")
        if code is not None:
            if code != 0:
                failures.append(f"attempt {attempt} exited with {code}; see {work / f'attempt-{attempt}.log'}")
            break
        reached = max(_logged(run), default=0)
        torn = [p.name for p in run.iterdir() if p.name.startswith(".tmp-")] if run.is_dir() else []  # mid-write?
        in_writes += bool(torn)
        for path in ckpt.list_checkpoints(run):
            try:
                ckpt.load(path)
            except ValueError as e:
                failures.append(f"kill {attempt}: {e}")
        resumes_from = _newest_valid_nimg(run)
        lost = reached - resumes_from
        echo(f"kill {attempt} after {delay:.2f} s: had logged {reached} images, resumes from {resumes_from} "
             f"(lost {lost}); checkpoints: {[p.name for p in ckpt.list_checkpoints(run)]}"
             + (f"; interrupted writing {torn}" if torn else ""))
        if lost > snap:
            failures.append(f"kill {attempt}: {lost} images lost, more than the snapshot interval of {snap}")

    leftovers = [p.name for p in run.iterdir() if p.name.startswith(".tmp-")]
    if leftovers:
        failures.append(f"temporary files left in the run folder: {leftovers}")
    name = ckpt.checkpoint_name(total)
    if not (run / name).exists() or not (ref / name).exists():
        return failures + [f"{name} is missing from a run folder"], attempt - 1
    a, b = ckpt.load(ref / name), ckpt.load(run / name)
    keys = ("G", "D", "G_ema", "G_opt", "D_opt", "pl_mean", "augment", "rng", "step", "nimg", "lr_scale")
    diffs = [d for key in keys for d in _differences(a[key], b[key], key)]
    if diffs:
        failures.append(f"final weights differ from the uninterrupted run at {diffs[:5]}")
    done = attempt - 1
    echo(f"{done} kills ({in_writes} during a file write); final checkpoint "
         f"{'equals' if not diffs else 'DIFFERS from'} the uninterrupted run's")
    if done < kills:
        echo(f"note: only {done} of {kills} attempts were killed before the run finished (this machine ran faster "
             f"than during the reference run)")
    return failures, done


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides (after the test's own)")
    p.add_argument("--config", default="configs/tiny2d.yaml")
    p.add_argument("--kills", type=int, default=8)
    p.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    p.add_argument("--work", help="folder for the two runs and the logs (default: a new temporary folder)")
    args = p.parse_args(argv)
    failures, _ = kill_test(args.config, args.overrides, args.kills, args.seed, args.work)
    for failure in failures:
        print(f"FAILED: {failure}")
    print("kill test passed" if not failures else f"kill test failed ({len(failures)} problems)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
