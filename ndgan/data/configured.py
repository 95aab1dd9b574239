"""Datasets from a training config's ``data`` section (and the metrics' held-out reals): the options each
source takes from it, and the checks that can be made before anything is opened. ``cfg`` is a
``ndgan.train.Config`` (or anything with its ``data`` and ``metrics`` attributes)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..ops.check import ConfigError
from . import BUILT_IN, open_dataset


def source_options(data) -> dict:
    """The keyword options of ``open_dataset`` for the configured source."""
    nd = len(data.shape)
    base = {
        "procedural": dict(spatial_dims=nd, shape=data.shape, channels=data.channels, periodic=data.periodic),
        "energy": dict(path=data.path, channels=data.channels),
        "hdf5": dict(path=data.path, channels=data.channels),
        "images": dict(path=data.path, channels=data.channels, shape=data.shape),
        "nifti": dict(path=data.path, shape=data.shape),
        "tiff": dict(path=data.path, shape=data.shape),
        "digits": dict(size=data.shape[0], shape=data.shape, channels=data.channels),
    }.get(data.source, {"path": data.path})
    return {**base, **data.options}


def held_out_config(cfg):
    """The data section of the metrics' held-out reals (``metrics.real_path`` and/or ``metrics.real_options``
    over ``data.options``), or None when the metrics compare with the training data. Checks what can be
    checked without opening anything: every rank calls it before training starts."""
    m = cfg.metrics
    if m.real_path is None and not m.real_options:
        return None
    if m.real_path is None and cfg.data.source == "energy":
        raise ConfigError("metrics.real_options: the energy source caches its cells at data.path; set "
                          "metrics.real_path to another file for held-out cells")
    data = dataclasses.replace(cfg.data, path=m.real_path or cfg.data.path,
                               options={**cfg.data.options, **m.real_options})
    if data.source not in BUILT_IN and not path_exists(data.path):
        raise ConfigError(f"metrics.real_path: {data.path} does not exist; point it at held-out data of the "
                          f"{data.source} source, or remove it to compare with the training data")
    return data


def metrics_dataset(cfg, dataset):
    """The real data the metrics compare with: the held-out set of ``held_out_config(cfg)`` (its samples and
    physical units checked against the training ``dataset``), or ``dataset`` itself."""
    data = held_out_config(cfg)
    if data is None:
        return dataset
    try:
        real = open_dataset(data.source, **source_options(data))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"metrics.real_path / metrics.real_options: {e}") from None
    first = real[0]
    sample = first[0] if isinstance(first, (list, tuple)) else first
    if tuple(sample.shape) != (cfg.data.channels, *cfg.data.shape):
        raise ConfigError(f"metrics.real_path: {data.path} gives samples of {tuple(sample.shape)}, the config "
                          f"trains on {(cfg.data.channels, *cfg.data.shape)}")
    ours, theirs = getattr(dataset, "metadata", {}) or {}, getattr(real, "metadata", {}) or {}
    for key in ("value_range", "units", "channel_names", "channel_value_ranges"):
        a, b = (list(v) if isinstance(v, tuple) else v for v in (ours.get(key), theirs.get(key)))
        if key in ours and key in theirs and a != b:
            raise ConfigError(f"metrics.real_path: {data.path} has {key} {theirs.get(key)!r}, the training data "
                              f"{ours.get(key)!r}; held-out reals must be in the training data's units")
    return real


def path_exists(path) -> bool:
    """Whether ``path`` (a file, a folder or a glob pattern) names anything."""
    import glob

    return path is not None and (Path(path).exists() or bool(glob.glob(str(path))))
