"""Data sources. Every dataset yields float tensors ``[C, *S]`` in [-1, 1] (or ``(x, c)`` with labels) and
carries ``metadata``: what is needed to turn samples back into physical data (value range and whether the
stored values are normalised, channel names and units, voxel spacing, reference affine, periodicity).

``open_dataset(source, **options)`` is how configs pick a source by name.
"""

from __future__ import annotations

import difflib
import inspect


def _energy(path, n=7000, size=32, seed=0, channels=None, labels=None, label_channel=0):
    from . import energy
    from .hdf5 import HDF5Dataset

    return HDF5Dataset(energy.ensure(path, n, size, seed), channels=channels, labels=labels,
                       label_channel=label_channel)


def _sources():
    from .cube import CubeDataset
    from .digits import DigitsDataset
    from .hdf5 import HDF5Dataset
    from .images import ImageDataset
    from .nifti import NiftiDataset
    from .procedural import ProceduralDataset
    from .tiff import TiffDataset

    return {"images": ImageDataset, "hdf5": HDF5Dataset, "nifti": NiftiDataset, "energy": _energy,
            "procedural": ProceduralDataset, "digits": DigitsDataset, "cube": CubeDataset,
            "tiff": TiffDataset}


SOURCE_NAMES = ("images", "hdf5", "nifti", "tiff", "energy", "procedural", "digits", "cube")
#: Sources that need no data.path: they generate their data (energy caches it there when a path is given).
BUILT_IN = ("procedural", "energy", "digits")
#: Sources that take no path at all.
PATHLESS = ("procedural", "digits")


def open_dataset(source: str, **options):
    """Build the dataset ``source`` (one of ``SOURCE_NAMES``) from keyword ``options``.

    Unknown sources and options raise a ``ValueError`` naming the closest valid one.
    """
    sources = _sources()
    if source not in sources:
        close = difflib.get_close_matches(str(source), SOURCE_NAMES, n=1)
        raise ValueError(f"data.source: unknown source {source!r}; expected one of {SOURCE_NAMES}"
                         + (f" (did you mean {close[0]!r}?)" if close else ""))
    build = sources[source]
    valid = [p for p in inspect.signature(build).parameters if p != "self"]
    for key in options:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            raise ValueError(f"{key}: not an option of the {source!r} source (data.options.{key} in a config); "
                             f"valid: {valid}"
                             + (f" (did you mean {close[0]!r}?)" if close else ""))
    params = inspect.signature(build).parameters
    for key, value in options.items():  # the type of the option's default is the type it takes
        _check_option(key, value, params[key].default)
    return build(**options)


def _check_option(key, value, default) -> None:
    where = f"data.options.{key}"
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    if isinstance(default, bool):
        ok, expected = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, expected = isinstance(value, int) and not isinstance(value, bool), "an integer"
        if ok and not -2**63 <= value < 2**63:
            raise ValueError(f"{where}: {value} does not fit in 64 bits; expected an integer below 2**63")
    elif isinstance(default, float):
        ok, expected = number(value), "a number"
    elif key in ("value_range", "spacing"):
        ok, expected = value is None or (isinstance(value, (list, tuple)) and all(map(number, value))), \
            "a list of numbers, e.g. [0, 255]" if key == "value_range" else "a list of numbers, e.g. [1.0, 1.0, 1.0]"
    else:
        return
    if not ok:
        raise ValueError(f"{where}: expected {expected}, got {value!r}")
