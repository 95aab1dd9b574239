"""Sample grids as uint8 arrays: 2D images tiled (RGB, grayscale, or one panel per channel), 3D volumes as the
three mid-slices of every channel, 1D signals as rows of a heat map; pairs of samples side by side."""

from __future__ import annotations

import math

import numpy as np
import torch


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()


def tile(panels, cols, pad=2):
    """Tile equally sized [H, W] or [H, W, 3] arrays row by row with a gap of ``pad`` pixels."""
    h, w = panels[0].shape[:2]
    rows = math.ceil(len(panels) / cols)
    canvas = np.zeros((rows * (h + pad) - pad, cols * (w + pad) - pad) + panels[0].shape[2:], np.uint8)
    for i, p in enumerate(panels):
        r, c = divmod(i, cols)
        canvas[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = p
    return canvas


def sample_grid(x: torch.Tensor, min_side: int = 64) -> np.ndarray:
    """``x: [N, C, *S]`` in [-1, 1] -> one uint8 picture (``[H, W]`` or ``[H, W, 3]``); panels smaller than
    ``min_side`` pixels are enlarged by repeating pixels, so small volumes stay visible."""
    n, c, *size = x.shape
    if len(size) > 1 and max(size) < min_side:
        k = math.ceil(min_side / max(size))
        for axis in range(2, x.ndim):
            x = x.repeat_interleave(k, dim=axis)
        n, c, *size = x.shape
    nd = len(size)
    cols = math.ceil(math.sqrt(n))
    if nd == 1:
        return np.repeat(_to_uint8(x.reshape(n * c, size[0])), 4, axis=0)
    if nd == 2:
        if c == 3:
            return tile([_to_uint8(img.permute(1, 2, 0)) for img in x], cols)
        if c == 1:
            return tile([_to_uint8(img[0]) for img in x], cols)
        return tile([tile([_to_uint8(ch) for ch in img], c, pad=1) for img in x], cols)
    # 3D: per sample, a row of (axial, coronal, sagittal) mid-slices for every channel, each padded to a square.
    side = max(size)

    def square(s):
        out = np.zeros((side, side), np.uint8)
        out[: s.shape[0], : s.shape[1]] = s
        return out

    panels = []
    for vol in x:
        slices = []
        for ch in vol:
            d, h, w = ch.shape
            slices += [square(_to_uint8(ch[d // 2])), square(_to_uint8(ch[:, h // 2])), square(_to_uint8(ch[:, :, w // 2]))]
        panels.append(tile(slices, len(slices), pad=1))
    return tile(panels, max(1, cols // 2))


def pair_grid(left: torch.Tensor, right: torch.Tensor, min_side: int = 64, pad: int = 4) -> np.ndarray:
    """Rows of pairs: ``left[i]`` beside ``right[i]`` (both ``[K, C, *S]`` in [-1, 1]), each drawn as
    ``sample_grid`` draws one sample, ``pad`` pixels between panels -> one uint8 picture."""
    if left.shape != right.shape or left.ndim < 3 or not len(left):
        raise ValueError(f"pair_grid: expected two non-empty sets [K, C, *S] of one shape, got {tuple(left.shape)} "
                         f"and {tuple(right.shape)}")
    panels = [sample_grid(x[None], min_side) for pair in zip(left, right) for x in pair]
    return tile(panels, 2, pad)


def save_png(array: np.ndarray, path) -> None:
    from PIL import Image

    Image.fromarray(array).save(path)
