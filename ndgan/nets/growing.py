"""Progressive growing (ProGAN, Karras et al. 2018; StyleGAN's configs A to D), for any number of dimensions.

G and D are built for the full shape, with an output (G) and an input (D) layer at every resolution of the
pyramid, and hold a ``GrowthState``: the current ``level`` (0: the base shape) and the fade-in ``alpha`` of
its newest block. G computes the blocks up to ``level``, blends its new output with the up-sampled output of
the level below during the fade, and hands the result on at the full shape (nearest-neighbour copies); D
averages its input back down to ``level`` (box filter: the exact inverse of those copies) and enters at that
block, blended likewise with its input layer one level down. Everything between them (losses, R1, path
length, ADA, snapshots, metrics) sees full-shape tensors. ``fade_reals`` makes the reals of a level the same
way: down-sampled with the networks' FIR filter and blended during the fade.

``schedule(nimg, levels, fade_kimg, stable_kimg)`` is the phase plan: the base level for ``stable_kimg``, then
each new level faded in over ``fade_kimg`` and trained alone for ``stable_kimg``; the top level stays on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops


class GrowthState(nn.Module):
    """The current ``level`` and ``alpha``, as buffers (checkpoints hold them) mirrored in Python numbers
    (so that forward passes read them without a device synchronisation)."""

    def __init__(self, levels: int):
        super().__init__()
        self.levels = levels
        self.register_buffer("level_alpha", torch.tensor([levels - 1, 1.0], dtype=torch.float64))
        self.level, self.alpha = levels - 1, 1.0
        self.register_load_state_dict_post_hook(_mirror_after_load)

    def _mirror(self):
        level, alpha = self.level_alpha.tolist()
        self.level, self.alpha = int(level), float(alpha)

    def set(self, level: int, alpha: float) -> None:
        """Called around every training step: writes the buffer in place (no allocation, no host transfer),
        and only when the phase changed."""
        if not (isinstance(level, int) and 0 <= level < self.levels and 0.0 <= alpha <= 1.0):
            raise ValueError(f"growth: expected a level in 0..{self.levels - 1} and alpha in [0, 1], got "
                             f"{level!r}, {alpha!r}")
        if (level, float(alpha)) == (self.level, self.alpha):
            return
        self.level, self.alpha = level, float(alpha)
        with torch.no_grad():
            self.level_alpha[0], self.level_alpha[1] = level, self.alpha

    def extra_repr(self):
        return f"levels={self.levels}, level={self.level}, alpha={self.alpha:g}"


def _mirror_after_load(module, incompatible_keys) -> None:  # a function, not a lambda: nets stay picklable
    module._mirror()


def schedule(nimg: int, levels: int, fade_kimg: float, stable_kimg: float) -> tuple[int, float]:
    """``(level, alpha)`` after ``nimg`` real samples."""
    kimg = nimg / 1000
    if kimg < stable_kimg or levels == 1:
        return 0, 1.0
    phase, into = divmod(kimg - stable_kimg, fade_kimg + stable_kimg)
    level = int(phase) + 1
    if level >= levels:
        return levels - 1, 1.0
    return level, min(into / fade_kimg, 1.0) if fade_kimg > 0 else 1.0


def to_full(x, factor: int):
    """Nearest-neighbour copies: every axis ``factor`` times longer."""
    if factor == 1:
        return x
    for axis in range(2, x.ndim):
        x = x.repeat_interleave(factor, dim=axis)
    return x


def from_full(x, factor: int):
    """Box average over ``factor`` samples per axis: the exact inverse of ``to_full``."""
    if factor == 1:
        return x
    pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[x.ndim - 2]
    return pool(x, factor)


def fade(low, high, alpha, f, padding_mode):
    """``high`` blended with ``low`` (one level down, FIR up-sampled) by ``alpha`` (1: ``high`` alone)."""
    if alpha >= 1:
        return high
    return torch.lerp(ops.upsample(low, f, padding_mode=padding_mode).to(high.dtype), high, alpha)


def fade_reals(x, level: int, alpha: float, levels: int, f, padding_mode="zeros"):
    """Full-shape reals as the networks see them at ``level`` and ``alpha``: FIR down-sampled to the level
    (blended with the level below during a fade), then back to the full shape by copies."""
    f = f.to(x.device)
    for _ in range(levels - 1 - level):
        x = ops.downsample(x, f, padding_mode=padding_mode)
    if level > 0 and alpha < 1:
        x = fade(ops.downsample(x, f, padding_mode=padding_mode), x, alpha, f, padding_mode)
    return to_full(x, 2 ** (levels - 1 - level))
