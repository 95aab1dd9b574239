"""Normalisations: the mapping network's input normalisation, minibatch standard deviation
(Karras et al. 2018, ProGAN section 3, with StyleGAN2-ADA's grouping), per-position channel norm, and
StyleGAN's instance norm and AdaIN (Karras et al. 2019, section 2, eq. 1)."""

from __future__ import annotations

import torch

from . import nd as ndops

__all__ = ["normalize_2nd_moment", "minibatch_std", "channel_norm", "instance_norm", "adain"]


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """``x / sqrt(mean(x**2, dim) + eps)``; used on z before the mapping network."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def minibatch_std(x: torch.Tensor, group_size: int | None = 4, num_channels: int = 1) -> torch.Tensor:
    """Append ``num_channels`` feature maps holding the minibatch standard deviation.

    x: ``[N, C, *S] -> [N, C + num_channels, *S]``. The batch is split into groups of
    ``G = min(group_size, N)`` strided samples (sample i belongs to group ``i % (N // G)``, as in
    StyleGAN2-ADA); the std over each group is averaged over channels (per channel group) and all
    spatial axes. ``group_size=None`` uses the whole batch. N must be divisible by G.
    """
    nd = ndops.check_nd(x)
    n, c, *size = x.shape
    if group_size is not None and (not ndops._is_int(group_size) or group_size < 1):
        raise ValueError(f"group_size: expected a positive int or None (the whole batch), got {group_size!r}")
    if not ndops._is_int(num_channels) or num_channels < 1 or c % num_channels:
        raise ValueError(f"num_channels: expected a positive divisor of the {c} channels of x, got {num_channels}")
    g = n if group_size is None else min(group_size, n)
    if g < 1 or n % g:
        raise ValueError(
            f"minibatch_std: batch size {n} is not divisible by the group size {g}; "
            f"use a batch that is a multiple of {g} or set group_size to a divisor of {n}"
        )
    f = num_channels
    y = x.reshape(g, -1, f, c // f, *size)  # [G, n, F, c, *S]
    y = y - y.mean(dim=0)
    y = (y.square().mean(dim=0) + 1e-8).sqrt()  # std over the group: [n, F, c, *S]
    y = y.mean(dim=list(range(2, y.ndim)))  # average over channels and space: [n, F]
    y = y.reshape(-1, f, *[1] * nd).repeat(g, 1, *size)  # [N, F, *S]
    return torch.cat([x, y], dim=1)


def channel_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Zero mean, unit variance over the channels of ``x: [N, C, *S]`` at every position."""
    mean = x.mean(dim=1, keepdim=True)
    var = (x - mean).square().mean(dim=1, keepdim=True)
    return (x - mean) * (var + eps).rsqrt()


def instance_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero mean, unit variance of every feature map of ``x: [N, C, *S]`` over all its spatial axes.

    ``(x - mean) * rsqrt(var + eps)`` per sample and channel, as StyleGAN's: computed in float32 at least
    (the variance of a bfloat16 map is coarse) and returned in x's dtype.
    """
    ndops.check_nd(x)
    dims = list(range(2, x.ndim))
    y = x.to(torch.promote_types(x.dtype, torch.float32))
    y = y - y.mean(dim=dims, keepdim=True)
    return (y * (y.square().mean(dim=dims, keepdim=True) + eps).rsqrt()).to(x.dtype)


def adain(x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Adaptive instance normalisation, StyleGAN eq. 1: ``scale * (x - mean) / std + bias`` per feature map.

    x: ``[N, C, *S]``; scale, bias: ``[N, C]`` (the style y = (y_s, y_b)) -> ``[N, C, *S]``.
    """
    nd = ndops.check_nd(x)
    for name, y in (("scale", scale), ("bias", bias)):
        if not isinstance(y, torch.Tensor) or tuple(y.shape) != tuple(x.shape[:2]):
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(f"{name}: expected [N, C] = {list(x.shape[:2])} for x {tuple(x.shape)}, got {got}")
    full = torch.promote_types(x.dtype, torch.float32)
    shape = [*x.shape[:2], *[1] * nd]
    y = instance_norm(x.to(full), eps) * scale.to(full).reshape(shape) + bias.to(full).reshape(shape)
    return y.to(x.dtype)
