"""HDF5 source for any nd: a dataset ``[N, C, *S]`` (or ``[N, *S]`` for one channel), read lazily.

Each DataLoader worker opens its own file handle on first use (h5py handles must not cross a fork), so
chunked and compressed files stream without loading everything. Attributes of the dataset (or, failing
that, of the file) carry the physical meaning of the values:

- ``value_range`` ``[lo, hi]``: the physical values that map to -1 and 1;
- ``normalized``: true when the stored values are already in [-1, 1] (else they are mapped on read);
- ``channel_names``, ``units``, ``spacing`` (per spatial axis), ``affine`` (4x4), ``periodic``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .units import to_unit

_META_KEYS = ("value_range", "normalized", "channel_names", "units", "spacing", "affine", "periodic",
              "channel_value_ranges", "percentiles", "cell", "window", "label_map_values", "label_map_encoding",
              "label_map_channels")


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("reading HDF5 needs h5py: pip install 'ndgan[hdf5]'") from None
    return h5py


def _plain(value):
    """HDF5 attribute -> plain Python (lists, floats, str, bool)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()] if value.dtype.kind in "OSU" else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


class HDF5Dataset(Dataset):
    """Samples ``[C, *S]`` float32 in [-1, 1] (and optional labels) from ``path[key]``.

    ``spatial_dims`` (default: the file's ``spatial_dims`` attribute, else ``ndim - 2``) says whether the
    dataset is ``[N, C, *S]`` or ``[N, *S]``; ``channels``, if given, must match the file. ``value_range`` overrides the file's attribute. ``label_key``
    names a dataset of integer classes ``[N]`` (one-hot encoded) or float vectors ``[N, c_dim]``.
    Every read is checked: NaN/Inf or values outside [-1, 1] after mapping raise a ``ValueError`` naming the
    file and the sample.
    """

    def __init__(self, path, key="data", spatial_dims=None, value_range=None, label_key=None, channels=None,
                 labels=None, label_channel=0):
        h5py = _h5py()
        self.path, self.key, self.label_key = Path(path), key, label_key
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such HDF5 file (check data.path)")
        try:
            h5 = h5py.File(self.path, "r")
        except OSError as e:
            raise ValueError(f"{self.path}: not a readable HDF5 file ({e})") from None
        with h5:
            if key not in h5 or not isinstance(h5[key], h5py.Dataset):
                found = [k for k in h5 if isinstance(h5[k], h5py.Dataset)]
                raise ValueError(f"{self.path}: no dataset '{key}'; datasets in the file: {found or 'none'}")
            ds = h5[key]
            if ds.dtype.kind not in "fiub":
                raise ValueError(f"{self.path}[{key}]: expected numeric data, got dtype {ds.dtype}")
            meta = {k: _plain(v) for k, v in h5.attrs.items() if k in _META_KEYS + ("spatial_dims",)}
            meta.update({k: _plain(v) for k, v in ds.attrs.items() if k in _META_KEYS + ("spatial_dims",)})
            nd = spatial_dims if spatial_dims is not None else meta.get("spatial_dims", ds.ndim - 2)
            if not isinstance(nd, int) or not 1 <= nd <= 3 or ds.ndim not in (nd + 1, nd + 2):
                raise ValueError(f"{self.path}[{key}]: shape {ds.shape} does not fit spatial_dims={nd}; expected "
                                 f"[N, C, *S] or [N, *S] with {nd} spatial axes (set spatial_dims)")
            ds_kind, ds_dtype = ds.dtype.kind, ds.dtype
            self.length = ds.shape[0]
            if self.length == 0:
                raise ValueError(f"{self.path}[{key}]: the dataset is empty")
            self.has_channel_axis = ds.ndim == nd + 2
            self.channels = ds.shape[1] if self.has_channel_axis else 1
            self.shape = tuple(ds.shape[-nd:])
            if channels is not None and channels != self.channels:
                raise ValueError(f"{self.path}[{key}]: has {self.channels} channels, expected {channels} "
                                 f"(check data.channels and the network's channels)")
            self.labels = None
            if label_key is not None:
                if label_key not in h5:
                    raise ValueError(f"{self.path}: no label dataset '{label_key}'")
                self.labels = _encode_labels(np.asarray(h5[label_key]), self.length, f"{self.path}[{label_key}]")
            if labels is not None:  # continuous labels computed from the energy grids (data.properties)
                if label_key is not None:
                    raise ValueError("data.options.labels and label_key: give one of them, not both")
                given = {"value_range": list(value_range), "normalized": False} if value_range is not None else {}
                self.labels, label_meta = _property_labels(h5, ds, {**meta, **given}, labels, label_channel,
                                                           self.path, key)
                meta.update(label_meta)
            if "cell" not in meta:  # periodic cells per sample (energy grids): their median, for exports
                cell = _median_cell(h5, self.length)
                if cell is not None:
                    meta["cell"] = cell
        self.spatial_dims = nd
        if value_range is not None:
            meta["value_range"], meta["normalized"] = list(value_range), False
        if "value_range" in meta and "normalized" not in meta:
            # Guessing would be silent: [-1, 1] data mapped again from value_range stays inside [-1, 1].
            raise ValueError(f"{self.path}[{key}]: has value_range {meta['value_range']} but no 'normalized' "
                             f"attribute; set it to true (values stored in [-1, 1]) or false (physical values)")
        if ds_kind in "iu" and "value_range" not in meta:  # integers are never values in [-1, 1]
            info = np.iinfo(ds_dtype)
            raise ValueError(f"{self.path}[{key}]: holds {ds_dtype} integers but no value_range to map them to "
                             f"[-1, 1]; set data.options.value_range to [lo, hi] (e.g. [{info.min}, {info.max}], "
                             f"the {ds_dtype} range)")
        self.normalized = bool(meta.get("normalized", True))
        self.value_range = meta.get("value_range")
        if not self.normalized and (self.value_range is None or len(self.value_range) != 2
                                    or not self.value_range[0] < self.value_range[1]):
            raise ValueError(f"{self.path}[{key}]: value_range must be [lo, hi] with lo < hi, got {self.value_range}")
        self.metadata = {"source": str(self.path), "channels": self.channels, "shape": self.shape, **meta}
        self._h5 = self._pid = None

    def __len__(self):
        return self.length

    def _dataset(self):
        if self._h5 is None or self._pid != os.getpid():  # one handle per process (DataLoader worker)
            self._h5, self._pid = _h5py().File(self.path, "r"), os.getpid()
        return self._h5[self.key]

    def __getitem__(self, index):
        x = torch.from_numpy(np.asarray(self._dataset()[index], dtype=np.float32))
        if not self.has_channel_axis:
            x = x.unsqueeze(0)
        if not self.normalized:
            x = to_unit(x, {"value_range": self.value_range})
        if not torch.isfinite(x).all():
            raise ValueError(f"{self.path}[{self.key}][{index}]: contains NaN or Inf")
        if x.min() < -1 - 1e-4 or x.max() > 1 + 1e-4:
            raise ValueError(f"{self.path}[{self.key}][{index}]: values [{x.min():.4g}, {x.max():.4g}] fall outside "
                             f"[-1, 1] after mapping value_range {self.value_range}; set data.options.value_range to "
                             f"the data's [lo, hi]")
        if self.labels is None:
            return x
        return x, self.labels[index]

    def __getstate__(self):  # file handles do not pickle; workers reopen
        state = self.__dict__.copy()
        state["_h5"] = state["_pid"] = None
        return state


def _property_labels(h5, ds, meta, names, channel, path, key):
    """(labels ``[N, len(names)]`` standardised, metadata) of the energy-grid properties ``names``: read from
    the file's ``properties/<name>`` datasets ``[N, C]`` (written with the grids), computed from the grids
    otherwise. The metadata keeps what maps them back: names, units, channel, mean, std and range."""
    from .properties import LABELS, check_label_names, label_values

    names = check_label_names(names)
    channels = ds.shape[1] if ds.ndim == 5 else 1
    if not isinstance(channel, int) or not 0 <= channel < channels:
        raise ValueError(f"data.options.label_channel: expected 0 to {channels - 1}, got {channel!r}")
    n = ds.shape[0]
    if n < 2:
        raise ValueError(f"{path}[{key}]: {n} sample; standardised labels need at least 2")
    stored = "properties" in h5 and all(name in h5["properties"] and h5["properties"][name].shape[0] == n
                                         for name in names)
    if stored:
        columns = [np.asarray(h5["properties"][name], dtype=np.float64).reshape(n, -1)[:, channel] for name in names]
        values = torch.from_numpy(np.stack(columns, 1))
    else:
        if meta.get("value_range") is None or ds.ndim != 5:
            raise ValueError(f"{path}[{key}]: data.options.labels needs energy grids [N, C, D, H, W] with a "
                             f"value_range attribute (kelvin), or a 'properties' group with {names}")
        parts = []
        for start in range(0, n, 256):
            x = torch.from_numpy(np.asarray(ds[start:start + 256], dtype=np.float32))
            if not meta.get("normalized", True):
                x = to_unit(x, {"value_range": meta["value_range"]})
            parts.append(label_values(x, meta["value_range"], names, channel))
        values = torch.cat(parts)
    if not torch.isfinite(values).all():
        raise ValueError(f"{path}: non-finite {names} labels; check the grids")
    mean, std = values.mean(0), values.std(0).clamp_min(1e-12)
    label_meta = {"label_names": names, "label_units": [LABELS[name][1] for name in names],
                  "label_channel": channel, "label_mean": mean.tolist(), "label_std": std.tolist(),
                  "label_min": values.min(0).values.tolist(), "label_max": values.max(0).values.tolist()}
    return ((values - mean) / std).float(), label_meta


def _median_cell(h5, n):
    """The median of the per-sample cells in angstrom: a ``cell`` dataset ``[N, 3, 3]`` (frameworks) or a
    ``cell_edge`` dataset ``[N]`` (the built-in cubic cells); None without either."""
    if "cell" in h5 and h5["cell"].shape == (n, 3, 3):
        return np.median(np.asarray(h5["cell"], dtype=np.float64), axis=0).tolist()
    if "cell_edge" in h5 and h5["cell_edge"].shape == (n,):
        return (np.eye(3) * float(np.median(np.asarray(h5["cell_edge"], dtype=np.float64)))).tolist()
    return None


def _encode_labels(labels, n, where):
    if labels.shape[0] != n:
        raise ValueError(f"{where}: {labels.shape[0]} labels for {n} samples")
    if labels.ndim == 1 and labels.dtype.kind in "iu":
        if labels.min() < 0:
            raise ValueError(f"{where}: class labels must be >= 0, got {labels.min()}")
        return torch.nn.functional.one_hot(torch.from_numpy(labels.astype(np.int64))).float()
    if labels.ndim == 2 and labels.dtype.kind == "f":
        return torch.from_numpy(labels.astype(np.float32))
    raise ValueError(f"{where}: expected integer classes [N] or float vectors [N, c_dim], got {labels.dtype} {labels.shape}")
