"""Per-axis shapes of the StyleGAN2 pyramid: a base shape doubled on every axis, block by block."""

from __future__ import annotations

from ..ops import nd as ndops


def default_base_shape(shape) -> tuple[int, ...]:
    """Halve ``shape`` while every side is even and its half stays >= 4: (128, 128) -> (4, 4),
    (80, 96, 112) -> (5, 6, 7), (32, 128, 128) -> (4, 16, 16)."""
    base = tuple(shape)
    while all(s % 2 == 0 and s // 2 >= 4 for s in base):
        base = tuple(s // 2 for s in base)
    return base


def resolve_pyramid(spatial_dims, shape, base_shape=None) -> list[tuple[int, ...]]:
    """Block shapes from the base up to ``shape``: ``[base, 2*base, ..., shape]``.

    Raises ``ValueError`` naming the argument if ``shape`` is not ``base * 2**k`` on every axis with the
    same k, if a base side is < 2, or if the ranks disagree.
    """
    if not ndops._is_int(spatial_dims) or not 1 <= spatial_dims <= ndops.MAX_ND:
        raise ValueError(f"spatial_dims: expected 1, 2 or 3, got {spatial_dims!r}")
    shape = _sizes("shape", shape, spatial_dims)
    base = default_base_shape(shape) if base_shape is None else _sizes("base_shape", base_shape, spatial_dims)
    if any(b < 2 for b in base):
        raise ValueError(f"base_shape: every side must be >= 2, got {base}")
    ratios = {s // b if s % b == 0 else 0 for s, b in zip(shape, base)}
    ratio = ratios.pop() if len(ratios) == 1 else 0
    k = ratio.bit_length() - 1
    if ratio < 1 or 2**k != ratio:
        raise ValueError(
            f"shape: {shape} is not base_shape {base} times the same power of 2 on every axis; "
            f"choose a shape such as {tuple(b * 2 ** 3 for b in base)} or set base_shape to shape / 2**k"
        )
    return [tuple(b * 2**i for b in base) for i in range(k + 1)]


def _sizes(name, value, spatial_dims):
    if ndops._is_int(value):
        raise ValueError(f"{name}: expected one size per spatial axis ({spatial_dims} ints), got {value!r}")
    try:
        sizes = ndops.parse_factors(value, spatial_dims, name)
    except ValueError:
        raise ValueError(f"{name}: expected {spatial_dims} positive ints (one per spatial axis, "
                         f"spatial_dims={spatial_dims}), got {value!r}") from None
    return sizes


def block_channels(shapes, channel_base, channel_max, name="channel_base") -> list[int]:
    """``min(channel_base // res, channel_max)`` per block, ``res`` = the block's largest side."""
    for key, v in ((name, channel_base), ("channel_max", channel_max)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{key}: expected a positive int, got {v!r}")
    out = [min(channel_base // max(s), channel_max) for s in shapes]
    if any(c < 1 for c in out):
        raise ValueError(
            f"{name}: {channel_base} gives {channel_base // max(shapes[-1])} channels at shape {shapes[-1]}; "
            f"use channel_base >= {max(shapes[-1])} (and channel_max >= 1)"
        )
    return out
