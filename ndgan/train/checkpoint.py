"""Checkpoints as plain data (state dicts, constructor kwargs, config, counters, RNG states), written
atomically and loaded with ``torch.load(weights_only=True)``: loading one never runs code."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import torch

FORMAT_VERSION = 1
_NAME = re.compile(r"^checkpoint-(\d{9})\.pt$")


def checkpoint_name(nimg: int) -> str:
    return f"checkpoint-{nimg:09d}.pt"


def save(state: dict, path) -> Path:
    """Write ``state`` to ``path`` through a temporary file, fsync and rename: never a partial file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(dict(state, format_version=FORMAT_VERSION), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load(path, map_location="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; a ValueError names the file if it cannot be used."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # truncated, not a checkpoint, or needs pickle (refused)
        raise ValueError(f"{path}: not a loadable ndgan checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not an ndgan checkpoint (holds a {type(state).__name__}, not a dict)")
    if state.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: written by an incompatible version (format {state.get('format_version')!r}, "
                         f"expected {FORMAT_VERSION})" if isinstance(state, dict) else f"{path}: not an ndgan checkpoint")
    return state


def list_checkpoints(run_dir) -> list[Path]:
    """Checkpoints in ``run_dir``, oldest first."""
    run_dir = Path(run_dir)
    return sorted(p for p in run_dir.iterdir() if _NAME.match(p.name)) if run_dir.is_dir() else []


def latest_valid(run_dir):
    """The newest checkpoint in ``run_dir`` that loads, with its state; (None, None) if there is none.

    Unloadable ones (a torn write from a killed run) are skipped with a warning.
    """
    for path in reversed(list_checkpoints(run_dir)):
        try:
            return path, load(path)
        except ValueError as e:
            warnings.warn(f"skipping {e}")
    return None, None


def prune(run_dir, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (the newest is always kept)."""
    for path in list_checkpoints(run_dir)[: -max(keep, 1)]:
        path.unlink()
