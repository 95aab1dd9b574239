"""2D images from a folder or a zip of PNG/JPEG files (the FFHQ thumbnails are the reference use).

Images become ``[C, H, W]`` float32 in [-1, 1] (8-bit: ``x / 127.5 - 1``; 16-bit: ``x / 32767.5 - 1``).
``channels`` (default: from the first image; 1 grayscale, 3 RGB, 4 RGBA) converts every image to that mode
when given. Sizes must agree unless ``shape`` is given, in which case each image is centre-cropped to the
target aspect ratio and resized (Lanczos). ``xflip`` doubles the dataset with mirrored copies. Labels come
from a JSON file in StyleGAN2-ADA's format, ``{"labels": [["relative/path.png", class or [floats]], ...]}``.
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

EXTENSIONS = (".png", ".jpg", ".jpeg")
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
_CHANNELS = {"L": 1, "I;16": 1, "I": 1, "RGB": 3, "RGBA": 4}
_NAMES = {1: ["gray"], 3: ["R", "G", "B"], 4: ["R", "G", "B", "A"]}


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("reading images needs Pillow: pip install 'ndgan[images]'") from None
    return Image


class ImageDataset(Dataset):
    """Images ``[C, H, W]`` in [-1, 1] from ``path`` (a folder, searched recursively, or a .zip)."""

    def __init__(self, path, channels=None, shape=None, xflip=False, labels=None, skip_bad=False):
        Image = _pil()
        self.path = Path(path)
        self.is_zip = self.path.suffix.lower() == ".zip"
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such folder or zip file (check data.path)")
        if self.is_zip:
            try:
                with zipfile.ZipFile(self.path) as z:
                    names = z.namelist()
            except zipfile.BadZipFile:
                raise ValueError(f"{self.path}: not a readable zip file") from None
        elif self.path.is_dir():
            names = [str(p.relative_to(self.path)) for p in self.path.rglob("*") if p.is_file()]
        else:
            raise ValueError(f"{self.path}: expected a folder or a .zip of images")
        files = sorted(n for n in names if n.lower().endswith(EXTENSIONS))
        if not files:
            raise ValueError(f"{self.path}: no {'/'.join(EXTENSIONS)} images found")
        if channels is not None and channels not in _MODES:
            raise ValueError(f"channels: expected 1, 3 or 4, got {channels!r}")
        if shape is not None:
            if len(shape) != 2 or not all(isinstance(s, int) and s > 0 for s in shape):
                raise ValueError(f"shape: expected (height, width) as two positive ints, got {shape!r}")
            shape = tuple(shape)
        self._zip = self._pid = None
        # Read every header once: corrupt files and mixed sizes surface now, naming the file.
        good, bad, size0, mode0 = [], [], None, None
        for name in files:
            try:
                with self._open(name) as f, Image.open(f) as im:
                    size, mode = im.size[::-1], im.mode
                    im.verify()  # reads the whole file: truncated or corrupt data fails here
            except Exception as e:  # PIL raises many types for broken files
                bad.append((name, f"unreadable ({type(e).__name__})"))
                continue
            if channels is None and mode not in _CHANNELS:
                bad.append((name, f"image mode {mode} (set data.channels to 1, 3 or 4 to convert)"))
                continue
            if size0 is None:
                size0, mode0 = size, mode
            if shape is None and size != size0:
                bad.append((name, f"size {size} differs from {size0} (set data.shape to crop and resize)"))
                continue
            if channels is None and _CHANNELS[mode] != _CHANNELS[mode0]:
                bad.append((name, f"mode {mode} differs from {mode0} (set data.channels to convert)"))
                continue
            good.append(name)
        if bad and not skip_bad:
            name, why = bad[0]
            more = f" (and {len(bad) - 1} more; data.skip_bad=true skips them with a warning)" if len(bad) > 1 else ""
            raise ValueError(f"{self.path / name}: {why}{more}")
        if bad:
            warnings.warn(f"{self.path}: skipped {len(bad)} images: " + "; ".join(f"{n}: {w}" for n, w in bad))
        if not good:
            raise ValueError(f"{self.path}: no usable images")
        self.files, self.rejected = good, bad
        self.channels = channels or _CHANNELS[mode0]
        self.shape = shape or size0
        self.xflip = bool(xflip)
        self.labels = None if labels is None else self._load_labels(Path(labels))
        self.metadata = {"source": str(self.path), "channels": self.channels, "shape": self.shape,
                         "channel_names": _NAMES[self.channels], "value_range": [0.0, 255.0], "normalized": False,
                         "units": "8-bit intensity", "periodic": False}

    def _open(self, name):
        if not self.is_zip:
            return open(self.path / name, "rb")
        if self._zip is None or self._pid != os.getpid():  # one zip handle per process (DataLoader worker)
            self._zip, self._pid = zipfile.ZipFile(self.path), os.getpid()
        return self._zip.open(name)

    def _load_labels(self, path):
        try:
            table = dict(json.loads(path.read_text())["labels"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: expected JSON {{\"labels\": [[file, label], ...]}} ({type(e).__name__})") from None
        missing = [f for f in self.files if f not in table]
        if missing:
            raise ValueError(f"{path}: no label for {missing[0]} (and {len(missing) - 1} more)")
        values = [table[f] for f in self.files]
        if all(isinstance(v, int) for v in values):
            return torch.nn.functional.one_hot(torch.tensor(values)).float()
        return torch.tensor(values, dtype=torch.float32)

    def __len__(self):
        return len(self.files) * (2 if self.xflip else 1)

    def __getitem__(self, index):
        Image = _pil()
        flip, i = divmod(index, len(self.files))
        name = self.files[i]
        try:
            with self._open(name) as f, Image.open(f) as im:
                im.load()
                if self.channels != _CHANNELS.get(im.mode):
                    im = im.convert(_MODES[self.channels])
                if tuple(im.size[::-1]) != self.shape:
                    im = _crop_resize(im, self.shape, Image)
                array = np.asarray(im)
        except OSError as e:
            raise ValueError(f"{self.path / name}: unreadable ({e})") from None
        scale = 32767.5 if array.dtype == np.uint16 or array.dtype == np.int32 else 127.5
        x = torch.from_numpy(array.astype(np.float32) / scale - 1)
        x = x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)  # [C, H, W]
        if flip:
            x = x.flip(-1)
        return x if self.labels is None else (x, self.labels[i])

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_zip"] = state["_pid"] = None
        return state


def _crop_resize(im, shape, Image):
    """Centre-crop to the aspect ratio of ``shape`` (height, width), then resize with Lanczos."""
    h, w = shape
    width, height = im.size
    if width * h > height * w:  # too wide
        new_w = round(height * w / h)
        left = (width - new_w) // 2
        im = im.crop((left, 0, left + new_w, height))
    elif width * h < height * w:  # too tall
        new_h = round(width * h / w)
        top = (height - new_h) // 2
        im = im.crop((0, top, width, top + new_h))
    return im.resize((w, h), Image.LANCZOS)
