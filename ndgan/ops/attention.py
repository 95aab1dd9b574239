"""Linear attention over flattened positions (Shen et al. 2021, "Efficient Attention: Attention with Linear
Complexities"), the variant lucidrains' StyleGAN2 uses and the 3D energy-grid port extends.

Queries are soft-maxed over features and keys over positions, so ``softmax(q) (softmax(k)^T v)`` never forms
the P x P attention matrix: memory and time are linear in the number of positions P.
"""

from __future__ import annotations

import torch
from einops import rearrange

from . import nd as ndops

__all__ = ["linear_attention", "linear_attention_reference"]


def _split(q, k, v, heads):
    """Validate, flatten positions and apply the softmax kernels: each ``[N, C, *S] -> [N, h, C/h, P]``."""
    ndops.check_nd(q, "q")
    if not ndops._is_int(heads) or heads < 1:
        raise ValueError(f"heads: expected a positive int, got {heads!r}")
    if not isinstance(k, torch.Tensor) or k.shape != q.shape:
        raise ValueError(f"k: expected the shape of q {tuple(q.shape)}, got {tuple(getattr(k, 'shape', ()))}")
    if not isinstance(v, torch.Tensor) or v.ndim != q.ndim or v.shape[0] != q.shape[0] or v.shape[2:] != q.shape[2:]:
        raise ValueError(f"v: expected [N, E, *S] with N, *S of q {tuple(q.shape)}, got {tuple(getattr(v, 'shape', ()))}")
    for name, t in (("q", q), ("v", v)):
        if t.shape[1] % heads:
            raise ValueError(f"{name}: {t.shape[1]} channels are not divisible by heads={heads}")
    q, k, v = (rearrange(t, "n (h c) ... -> n h c (...)", h=int(heads)) for t in (q, k, v))  # [N, h, c, P]
    q = q.softmax(dim=2) * q.shape[2] ** -0.5  # over features
    k = k.softmax(dim=3)  # over positions
    return q, k, v


def linear_attention(q, k, v, heads: int = 1):
    """q, k: ``[N, h*d, *S]``, v: ``[N, h*e, *S]`` -> ``[N, h*e, *S]``; memory O(P * (d + e) + d * e)."""
    size = q.shape[2:]
    q, k, v = _split(q, k, v, heads)
    context = torch.einsum("nhdp,nhep->nhde", k, v)  # [N, h, d, e]
    out = torch.einsum("nhdp,nhde->nhep", q, context)  # [N, h, e, P]
    return out.reshape(out.shape[0], -1, *size)


def linear_attention_reference(q, k, v, heads: int = 1):
    """The same result through the explicit P x P attention matrix (quadratic memory; for tests)."""
    size = q.shape[2:]
    q, k, v = _split(q, k, v, heads)
    attn = torch.einsum("nhdp,nhdr->nhpr", q, k)  # [N, h, P, P]
    out = torch.einsum("nhpr,nher->nhep", attn, v)  # [N, h, e, P]
    return out.reshape(out.shape[0], -1, *size)
