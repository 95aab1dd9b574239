"""Checkpoints as plain data (state dicts, constructor kwargs, config, counters, RNG states), written
atomically and loaded with ``torch.load(weights_only=True)``: loading one never runs code.

The layout, defined here once (``train.state`` writes and restores it, ``schema_problem`` checks it on load):

- ``G``, ``D``, ``G_ema``: state dicts; ``G_kwargs``, ``D_kwargs``: their constructor arguments;
- ``G_opt``, ``D_opt``: optimiser states; ``scalers``: the float16 loss scalers' states;
- ``config``: the resolved training config (plain data); ``data_metadata``: the dataset's (units, ranges, affine);
- ``step``, ``nimg``: counters; ``pl_mean``: the path-length running mean; ``rng``: RNG states;
- ``augment``: ADA's state; ``lr_scale``: the learning-rate factor after rollbacks;
- ``growth``: with progressive growing ``{"level", "alpha"}``, the phase the networks are in (else None);
- ``format_version``: ``FORMAT_VERSION``.

A generator export (``.safetensors``, ``save_generator``) holds ``G_ema``'s tensors and, as JSON text,
``G_kwargs``, ``data_metadata``, ``config`` and the kimg: no code, safe to share.
"""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path

import torch

from .files import atomic_write, program_archive

FORMAT_VERSION = 1
#: Every key of a training checkpoint (the layout above); ``train.state.TrainingState.checkpoint`` writes them.
CHECKPOINT_KEYS = ("G", "D", "G_ema", "G_kwargs", "D_kwargs", "G_opt", "D_opt", "scalers", "config", "data_metadata",
                   "step", "nimg", "pl_mean", "rng", "augment", "lr_scale", "growth", "format_version")
#: What a checkpoint needs to resume training.
TRAINING_KEYS = ("G", "D", "G_ema", "G_opt", "D_opt", "config", "step", "nimg", "pl_mean", "rng")
#: What a generator file (a checkpoint or an export) gives ``read_generator``.
GENERATOR_KEYS = ("G_kwargs", "G_ema", "data_metadata", "config", "nimg")
SAFETENSORS_FORMAT = "ndgan-generator-1"
_NAME = re.compile(r"^checkpoint-(\d{9})\.pt$")


def checkpoint_name(nimg: int) -> str:
    """The file name of the checkpoint at ``nimg`` images (zero-padded, so names sort by progress)."""
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
    if path.suffix.lower() == ".pkl":
        raise ValueError(f"{path}: an NVIDIA network pickle holds no training state to resume; start a run from "
                         f"its weights with --init {path.name} (or convert it: python -m ndgan.import_nvlabs)")
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


def check_training_state(state: dict, where) -> None:
    """Raise a ValueError naming ``where`` if ``state`` cannot resume training (a generator-only file)."""
    missing = [k for k in TRAINING_KEYS if k not in state]
    if missing:
        raise ValueError(f"{where}: the checkpoint lacks {missing}; it cannot resume training (a generator-only "
                         f"file?)")


def read_training(path) -> dict:
    """The state of a checkpoint file, of a run folder's newest valid checkpoint, or of an NVIDIA
    StyleGAN2-ADA pickle (read as data, ``ndgan.io.nvlabs``; no optimiser state)."""
    path = Path(path)
    if path.suffix.lower() == ".pkl" and path.is_file():
        from .nvlabs import read_checkpoint

        return read_checkpoint(path)
    if path.is_dir():
        found, state = latest_valid(path)
        if found is None:
            raise FileNotFoundError(none_loads(path))
        return state
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file or run folder")
    return load(path)


def read_generator(path) -> dict:
    """The parts of a generator file that rebuild it (``GENERATOR_KEYS``): a checkpoint, a run folder's newest
    valid checkpoint, a ``.safetensors`` export or an NVIDIA StyleGAN2-ADA pickle."""
    path = Path(path)
    if path.suffix == ".safetensors" and path.is_file():
        return _read_safetensors(path)
    state = read_training(path)
    return {"G_kwargs": state.get("G_kwargs"), "G_ema": state.get("G_ema"), "nimg": state.get("nimg", 0),
            "data_metadata": dict(state.get("data_metadata", {})), "config": state.get("config", {})}


def save_generator(tensors: dict, G_kwargs: dict, out, metadata=None, config=None, kimg: float = 0.0,
                   overwrite: bool = False) -> Path:
    """Write a generator's state dict as a safetensors file, with the JSON text that rebuilds it; no code."""
    try:
        from safetensors.torch import save
    except ImportError:
        raise ImportError("safetensors export needs safetensors: pip install 'ndgan[safetensors]'") from None
    import json

    from .files import output_folder

    out = Path(out)
    if out.suffix != ".safetensors":
        raise ValueError(f"--out {out}: expected a file name ending in .safetensors")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists; pass --overwrite or choose another --out")
    tensors = {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}
    text = {"format": SAFETENSORS_FORMAT, "G_kwargs": json.dumps(G_kwargs), "data_metadata": json.dumps(metadata or {}),
            "config": json.dumps(config or {}), "kimg": repr(float(kimg))}
    payload = save(tensors, metadata=text)
    with output_folder(out.parent):
        return atomic_write(out, lambda p: Path(p).write_bytes(payload))


def _read_safetensors(path: Path) -> dict:
    try:
        from safetensors import safe_open
    except ImportError:
        raise ImportError(f"{path}: reading safetensors needs safetensors: pip install 'ndgan[safetensors]'") from None
    import json

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if meta.get("format") != SAFETENSORS_FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {SAFETENSORS_FORMAT!r}")
        return {"G_kwargs": json.loads(meta["G_kwargs"]), "G_ema": tensors, "nimg": float(meta["kimg"]) * 1000,
                "data_metadata": json.loads(meta["data_metadata"]), "config": json.loads(meta["config"])}
    except Exception as e:  # safetensors' own error type, bad JSON, missing keys
        detail = str(e).splitlines()[0] if str(e) else ""
        raise ValueError(f"{path}: not an ndgan generator safetensors file ({type(e).__name__}: {detail})") from None
