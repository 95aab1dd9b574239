"""Normalisations: the mapping network's input normalisation, minibatch standard deviation
(Karras et al. 2018, ProGAN section 3, with StyleGAN2-ADA's grouping) and per-position channel norm."""

from __future__ import annotations

import torch

from . import nd as ndops

__all__ = ["normalize_2nd_moment", "minibatch_std", "channel_norm"]


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
