"""Fused-in-spirit bias + activation + gain + clamp, as StyleGAN2-ADA's ``bias_act`` (pure PyTorch)."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = ["ACTIVATIONS", "bias_act", "activation_gain"]


class _Activation(NamedTuple):
    func: object  # (x, alpha) -> y
    alpha: float  # default alpha (negative slope for lrelu)
    gain: float  # natural gain: keeps the signal's second moment roughly unchanged


ACTIVATIONS = {
    "linear": _Activation(lambda x, a: x, 0.0, 1.0),
    "relu": _Activation(lambda x, a: F.relu(x), 0.0, math.sqrt(2)),
    "lrelu": _Activation(lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2)),
    "tanh": _Activation(lambda x, a: torch.tanh(x), 0.0, 1.0),
    "sigmoid": _Activation(lambda x, a: torch.sigmoid(x), 0.0, 1.0),
    "elu": _Activation(lambda x, a: F.elu(x), 0.0, 1.0),
    "selu": _Activation(lambda x, a: F.selu(x), 0.0, 1.0),
    "softplus": _Activation(lambda x, a: F.softplus(x), 0.0, 1.0),
    "swish": _Activation(lambda x, a: torch.sigmoid(x) * x, 0.0, math.sqrt(2)),
    "gelu": _Activation(lambda x, a: F.gelu(x), 0.0, 1.0),  # not in StyleGAN2-ADA; used by attention
}


def _check_act(act: str) -> _Activation:
    if not isinstance(act, str) or act not in ACTIVATIONS:
        raise ValueError(f"act: unknown activation {act!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[act]


def activation_gain(act: str) -> float:
    """The natural gain of ``act`` (sqrt(2) for relu and lrelu, 1 for linear)."""
    return _check_act(act).gain


def bias_act(x, b=None, dim=1, act="linear", alpha=None, gain=None, clamp=None):
    """``clamp(act(x + b) * gain, -clamp, clamp)``.

    x: any shape; b: ``[x.shape[dim]]`` or None; act: a key of ``ACTIVATIONS``; alpha: lrelu slope
    (default 0.2); gain: default the activation's natural gain; clamp: None or a non-negative bound.
    """
    spec = _check_act(act)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    if not isinstance(dim, int) or isinstance(dim, bool) or not -x.ndim <= dim < x.ndim:
        raise ValueError(f"dim: expected an int in [-{x.ndim}, {x.ndim}) for x with {x.ndim} dims, got {dim!r}")
    if b is not None:
        if not isinstance(b, torch.Tensor) or b.ndim != 1 or b.shape[0] != x.shape[dim]:
            shape = tuple(b.shape) if isinstance(b, torch.Tensor) else type(b).__name__
            raise ValueError(f"b: expected a 1-D bias of length x.shape[{dim}] = {x.shape[dim]}, got {shape}")
        dim = dim % x.ndim
        x = x + b.to(x.dtype).reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    if clamp is not None and (not isinstance(clamp, (int, float)) or isinstance(clamp, bool) or clamp < 0):
        raise ValueError(f"clamp: expected None or a non-negative number, got {clamp!r}")
    x = spec.func(x, spec.alpha if alpha is None else float(alpha))
    gain = spec.gain if gain is None else float(gain)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x
