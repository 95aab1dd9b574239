"""Checkpoints as plain data (state dicts, constructor kwargs, config, counters, RNG states), written
atomically and loaded with ``torch.load(weights_only=True)``: loading one never runs code."""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path

import torch

from ..files import atomic_write, program_archive

FORMAT_VERSION = 1
_NAME = re.compile(r"^checkpoint-(\d{9})\.pt$")


def checkpoint_name(nimg: int) -> str:
    return f"checkpoint-{nimg:09d}.pt"


def checkpoint_nimg(path) -> int:
    """The progress in a checkpoint's name (-1 for other names)."""
    found = _NAME.match(Path(path).name)
    return int(found.group(1)) if found else -1


def save(state: dict, path) -> Path:
    """Write ``state`` to ``path`` through a temporary file, fsync and rename: never a partial file."""
    def write(tmp):
        with open(tmp, "wb") as f:  # a Python file object: a failed write surfaces as the OSError it is
            torch.save(dict(state, format_version=FORMAT_VERSION), f)

    return atomic_write(path, write, sync=True)


def load_plain(path, what: str, map_location="cpu"):
    """``torch.load(path, weights_only=True)``: tensors and plain containers only. A file whose pickle would
    build other objects (and could run code doing so) is refused unopened; any failure is a ValueError naming
    the file and ``what`` it should have been."""
    kind = program_archive(path)
    if kind is not None:
        raise ValueError(f"{path}: a {kind}, not {what}; ndgan loads weights only here, never code (a program "
                         f"runs its code when loaded)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as e:  # torch's advice to retry with weights_only=False is not repeated
        found = re.search(r"GLOBAL (\S+)|Unsupported global: (\S+)", str(e))
        if found is None:  # not a pickle that builds objects: some other file (a YAML, a picture, ...)
            raise ValueError(f"{path}: not {what} (not a torch file)") from None
        name = next(g for g in found.groups() if g)
        raise ValueError(f"{path}: refused: not {what}; it needs pickle to load ({name}), which can run code, and "
                         f"ndgan loads plain data only") from None
    except Exception as e:  # truncated, empty, or not a torch file at all
        detail = str(e).splitlines()[0].split(". ")[0] if str(e) else "empty or cut short"
        raise ValueError(f"{path}: not {what} ({type(e).__name__}: {detail})") from None


def load(path, map_location="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; a ValueError names the file if it cannot be used."""
    path = Path(path)
    if path.suffix == ".safetensors":
        raise ValueError(f"{path}: a generator export (safetensors), not a training checkpoint; use a "
                         f"checkpoint-*.pt here")
    state = load_plain(path, "a loadable ndgan checkpoint", map_location)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not an ndgan checkpoint (holds a {type(state).__name__}, not a dict)")
    if state.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: written by an incompatible version (format {state.get('format_version')!r}, "
                         f"expected {FORMAT_VERSION})" if isinstance(state, dict) else f"{path}: not an ndgan checkpoint")
    problem = schema_problem(state)
    if problem:
        raise ValueError(f"{path}: not a usable ndgan checkpoint: {problem}")
    return state


_SECTIONS = ("data", "G", "D", "train")
_PLAIN = (str, int, float, bool, type(None))


def _plain_problem(value, where):
    """Where in ``value`` something other than YAML-like plain data sits, or None."""
    stack = [(value, where)]
    while stack:
        v, w = stack.pop()
        if isinstance(v, dict):
            stack.extend((x, f"{w}.{k}") for k, x in v.items())
        elif isinstance(v, (list, tuple)):
            stack.extend((x, f"{w}[{i}]") for i, x in enumerate(v))
        elif not isinstance(v, _PLAIN):
            return f"{w} holds a {type(v).__name__}, expected plain values (numbers, strings, lists)"
    return None


def schema_problem(state: dict):
    """The first field of a loaded checkpoint whose type or shape is wrong (named), or None. Fields that are
    absent are left to the caller (a generator-only file has no optimiser state); weights must be finite."""
    if "config" in state:
        config = state["config"]
        if not isinstance(config, dict):
            return f"config is a {type(config).__name__}, expected a mapping of sections"
        missing = [k for k in _SECTIONS if not isinstance(config.get(k), dict)]
        if missing:
            return f"config lacks the section {missing[0]!r}"
        problem = _plain_problem(config, "config")
        if problem:
            return problem
    for key in ("step", "nimg"):
        if key in state and (not isinstance(state[key], int) or isinstance(state[key], bool) or state[key] < 0):
            return f"{key} is {state[key]!r}, expected a non-negative integer"
    for key in ("G_kwargs", "D_kwargs", "data_metadata"):
        if key in state:
            problem = _plain_problem(state[key], key) if isinstance(state[key], dict) else \
                f"{key} is a {type(state[key]).__name__}, expected a mapping"
            if problem:
                return problem
    if "rng" in state:
        rng = state["rng"]
        expected = torch.get_rng_state()
        t = rng.get("torch") if isinstance(rng, dict) else None
        if not isinstance(t, torch.Tensor) or t.dtype != expected.dtype or t.shape != expected.shape:
            got = f"{t.dtype} of {list(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
            return f"rng.torch is {got}, expected the generator state, {expected.dtype} of {list(expected.shape)}"
    if "pl_mean" in state and not (isinstance(state["pl_mean"], torch.Tensor) and state["pl_mean"].numel() == 1):
        return "pl_mean is not a one-element tensor"
    for key in ("G", "D", "G_ema"):
        if key not in state:
            continue
        weights = state[key]
        if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
            return f"{key} is not a state dict (a mapping of names to tensors)"
        for name, v in weights.items():
            if v.is_floating_point() and not torch.isfinite(v).all():
                return f"{key}.{name} holds NaN or Inf (a diverged run?); use an earlier checkpoint"
    return None


def list_checkpoints(run_dir) -> list[Path]:
    """Checkpoints in ``run_dir``, oldest first."""
    run_dir = Path(run_dir)
    return sorted(p for p in run_dir.iterdir() if _NAME.match(p.name)) if run_dir.is_dir() else []


def latest_valid(run_dir):
    """The newest checkpoint in ``run_dir`` that loads, with its state; (None, None) if there is none.

    Newer ones that do not load (a torn write from a killed run) are skipped with a warning each; when none
    loads there is no warning: the caller's error says so (``none_loads``).
    """
    skipped = []
    for path in reversed(list_checkpoints(run_dir)):
        try:
            state = load(path)
        except ValueError as e:
            skipped.append(e)
            continue
        for e in skipped:
            warnings.warn(f"skipping {e}")
        return path, state
    return None, None


def none_loads(run_dir) -> str:
    """The error message for a run folder none of whose checkpoints loads (naming the newest one's fault)."""
    paths = list_checkpoints(run_dir)
    if not paths:
        return f"{run_dir}: no checkpoint in this run folder"
    try:
        load(paths[-1])
        reason = "it loads now"
    except ValueError as e:
        reason = str(e)
    return f"{run_dir}: none of its {len(paths)} checkpoints loads (the newest: {reason})"


def prune(run_dir, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (the newest is always kept), unless none of those loads:
    then nothing is deleted, so the last valid checkpoint always survives."""
    paths = list_checkpoints(run_dir)
    kept, old = paths[-max(keep, 1):], paths[: -max(keep, 1)]
    if not old:
        return
    for path in reversed(kept):
        try:
            load(path)
            break
        except ValueError:
            continue
    else:
        warnings.warn(f"{run_dir}: none of the newest {len(kept)} checkpoints loads; keeping the older ones")
        return
    for path in old:
        path.unlink()
