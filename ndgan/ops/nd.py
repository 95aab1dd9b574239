"""Rank dispatch and small axis helpers shared by every op.

This is the one module where the numbers 1, 2 and 3 appear: everything else derives ``nd = x.ndim - 2``
from a tensor ``[N, C, *S]`` and calls the helpers here.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "MAX_ND",
    "PADDING_MODES",
    "check_nd",
    "check_padding_mode",
    "conv",
    "conv_transpose",
    "max_pool",
    "memory_format",
    "ntuple",
    "pad_conv",
    "parse_factors",
    "parse_padding",
    "pad",
    "spatial_slice",
]

#: Highest spatial rank with a native PyTorch convolution.
MAX_ND = 3
#: Padding modes accepted by every op that pads.
PADDING_MODES = ("zeros", "circular")

_CONV = (F.conv1d, F.conv2d, F.conv3d)
_CONV_T = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)
_MAX_POOL = (F.max_pool1d, F.max_pool2d, F.max_pool3d)


def check_nd(x: torch.Tensor, name: str = "x") -> int:
    """Return the spatial rank of ``x: [N, C, *S]``; raise ``ValueError`` if it is not 1, 2 or 3."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor [N, C, *S], got {type(x).__name__}")
    nd = x.ndim - 2
    if not 1 <= nd <= MAX_ND:
        raise ValueError(
            f"{name}: expected a tensor [N, C, *S] with 1 to {MAX_ND} spatial axes (3 to {MAX_ND + 2} dims), "
            f"got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got {x.dtype}; convert with x.float()")
    return nd


def conv(x, weight, bias=None, stride=1, padding=0, groups=1, dilation=1):
    """Cross-correlation of ``x: [N, I, *S]`` with ``weight: [O, I/groups, *k]`` for any nd."""
    return _CONV[x.ndim - 3](x, weight, bias, stride=stride, padding=padding, groups=groups, dilation=dilation)


def pad_conv(x, weight, pads, stride=1, groups=1):
    """``conv(pad(x, pads), weight)`` with the symmetric, non-negative part of ``pads`` left to the convolution's
    own padding, so that only the rest is copied into a padded tensor (on CPU, the explicit pad's copy took
    17-44% of a depthwise FIR filter's time: benchmarks/fir_paths.py, benchmarks/RESULTS.md)."""
    inner = [max(min(a, b), 0) for a, b in pads]
    rest = [(a - p, b - p) for (a, b), p in zip(pads, inner)]
    return conv(pad(x, rest), weight, stride=stride, padding=inner, groups=groups)


def max_pool(x, kernel, stride=None, padding=0):
    """Max pooling of ``x: [N, C, *S]`` over every spatial axis, for any nd."""
    return _MAX_POOL[x.ndim - 3](x, kernel, stride=stride, padding=padding)


def conv_transpose(x, weight, stride=1, padding=0, groups=1):
    """Transposed convolution of ``x: [N, I, *S]`` with ``weight: [I, O/groups, *k]`` for any nd."""
    return _CONV_T[x.ndim - 3](x, weight, stride=stride, padding=padding, groups=groups)


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def ntuple(value, n: int, name: str) -> tuple[int, ...]:
    """``value`` as an n-tuple of ints: an int is repeated, a sequence must have length n."""
    if _is_int(value):
        return (int(value),) * n
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == n and all(map(_is_int, value)):
        return tuple(int(v) for v in value)
    raise ValueError(f"{name}: expected an int or {n} ints (one per spatial axis), got {value!r}")


def parse_factors(value, nd: int, name: str) -> tuple[int, ...]:
    """An up/down factor per spatial axis; each must be a positive int."""
    factors = ntuple(value, nd, name)
    if any(f < 1 for f in factors):
        raise ValueError(f"{name}: expected positive integer factors, got {value!r}")
    return factors


def parse_padding(padding, nd: int, name: str = "padding") -> tuple[tuple[int, int], ...]:
    """Padding as one ``(before, after)`` pair per spatial axis, in the order of x's spatial axes.

    Accepts an int (all sides), one int per axis (both sides of that axis), or one pair per axis.
    Negative values crop.
    """
    if _is_int(padding):
        return ((int(padding), int(padding)),) * nd
    if isinstance(padding, Sequence) and not isinstance(padding, str) and len(padding) == nd:
        if all(map(_is_int, padding)):
            return tuple((int(p), int(p)) for p in padding)
        if all(isinstance(p, Sequence) and len(p) == 2 and all(map(_is_int, p)) for p in padding):
            return tuple((int(a), int(b)) for a, b in padding)
    raise ValueError(
        f"{name}: expected an int, {nd} ints, or {nd} (before, after) pairs (one per spatial axis), got {padding!r}"
    )


def check_padding_mode(padding_mode: str) -> str:
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode: expected one of {PADDING_MODES}, got {padding_mode!r}")
    return padding_mode


def pad(x: torch.Tensor, pads, mode: str = "zeros") -> torch.Tensor:
    """Pad (or, for negative values, crop) the spatial axes of ``x: [N, C, *S]``.

    ``pads``: one ``(before, after)`` pair per spatial axis. ``mode='zeros'`` fills with zeros;
    ``mode='circular'`` wraps around (the signal is periodic), for any amount, even beyond one period.
    """
    check_padding_mode(mode)
    if len(pads) != x.ndim - 2:
        raise ValueError(f"pads: expected {x.ndim - 2} (before, after) pairs for x {tuple(x.shape)}, got {len(pads)}")
    if all(a == 0 and b == 0 for a, b in pads):
        return x
    if mode == "zeros":
        # Pad first, then crop (as StyleGAN2-ADA): a crop larger than the signal on one side still works.
        flat = [max(p, 0) for pair in reversed(pads) for p in pair]  # F.pad lists the last axis first
        x = F.pad(x, flat) if any(flat) else x
        index = tuple(slice(max(-a, 0), n - max(-b, 0)) for (a, b), n in zip(pads, x.shape[2:]))
        return x[(slice(None), slice(None)) + index]
    if any(n == 0 for (b, a), n in zip(pads, x.shape[2:]) if b or a):
        raise ValueError(f"pad: cannot wrap around an empty axis (x {tuple(x.shape)}, pads {pads})")
    if all(0 <= b <= n and 0 <= a <= n for (b, a), n in zip(pads, x.shape[2:])):
        return _Halo.apply(x, tuple(map(tuple, pads)))  # the usual halo: copies of the ends, in x's layout
    for axis, (before, after) in enumerate(pads, start=2):  # crops, or wrapping more than once around
        if before or after:
            index = torch.arange(-before, x.shape[axis] + after, device=x.device) % x.shape[axis]
            x = x.index_select(axis, index)
    return x


_CHANNELS_LAST = {4: torch.channels_last, 5: torch.channels_last_3d}


def memory_format(x: torch.Tensor) -> torch.memory_format:
    """The layout of new tensors made like ``x``: channels-last where ``x`` is (and is not also plain)."""
    fmt = _CHANNELS_LAST.get(x.ndim)
    if fmt is not None and not x.is_contiguous() and x.is_contiguous(memory_format=fmt):
        return fmt
    return torch.contiguous_format


def _halo(x: torch.Tensor, pads) -> torch.Tensor:
    """Circular halo of at most one period per side, written into one new tensor in ``x``'s layout. The axes
    wrap one after another, each over the axes already padded, so that the corners wrap too."""
    sizes = x.shape[2:]
    shape = (*x.shape[:2], *(n + b + a for n, (b, a) in zip(sizes, pads)))
    out = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=memory_format(x))
    out[(slice(None), slice(None)) + tuple(slice(b, b + n) for n, (b, _) in zip(sizes, pads))].copy_(x)
    for i, (n, (before, after)) in enumerate(zip(sizes, pads)):
        axis, row = i + 2, out
        for later in range(i + 1, len(pads)):  # the axes after this one: only their interior is written yet
            row = row.narrow(later + 2, pads[later][0], sizes[later])
        row.narrow(axis, 0, before).copy_(row.narrow(axis, n, before))
        row.narrow(axis, before + n, after).copy_(row.narrow(axis, before, after))
    return out


def _fold(g: torch.Tensor, pads) -> torch.Tensor:
    """The adjoint of ``_halo``: each halo added back onto the end it copies, the last axis first."""
    fmt = memory_format(g)
    g = g.clone(memory_format=fmt)
    for i in reversed(range(len(pads))):
        axis, (before, after) = i + 2, pads[i]
        n = g.shape[axis] - before - after
        inner = g.narrow(axis, before, n)
        inner.narrow(axis, n - before, before).add_(g.narrow(axis, 0, before))
        inner.narrow(axis, 0, after).add_(g.narrow(axis, before + n, after))
        g = inner
    return torch.empty(g.shape, dtype=g.dtype, device=g.device, memory_format=fmt).copy_(g)


class _Halo(torch.autograd.Function):
    """Circular halo whose backward, and every higher derivative (R1, path length), keeps the tensors' layout.
    The chain of ``torch.cat`` it replaced summed gradients of mixed layouts, which is slow in channels-last."""

    @staticmethod
    def forward(ctx, x, pads):
        ctx.pads = pads
        return _halo(x, pads)

    @staticmethod
    def backward(ctx, g):
        return _Fold.apply(g, ctx.pads), None


class _Fold(torch.autograd.Function):
    @staticmethod
    def forward(ctx, g, pads):
        ctx.pads = pads
        return _fold(g, pads)

    @staticmethod
    def backward(ctx, g):
        return _Halo.apply(g, ctx.pads), None


def spatial_slice(x: torch.Tensor, starts, lengths, steps=None) -> torch.Tensor:
    """``x[:, :, s0:s0+l0:k0, s1:s1+l1:k1, ...]`` over the spatial axes (a view)."""
    steps = steps or (1,) * len(starts)
    index = tuple(slice(s, s + l * k, k) for s, l, k in zip(starts, lengths, steps))
    return x[(slice(None), slice(None)) + index]
