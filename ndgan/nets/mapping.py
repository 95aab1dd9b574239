"""StyleGAN2 mapping network: z (and an optional label c) -> intermediate latents w (Karras et al. 2019,
StyleGAN section 2; StyleGAN2-ADA's conditioning), with the tracked average ``w_avg`` and truncation."""

from __future__ import annotations

import torch
from torch import nn

from .. import ops
from ..layers import EqualLinear


class MappingNetwork(nn.Module):
    """``z [N, z_dim]``, ``c [N, c_dim]`` -> ``w [N, w_dim]``, or ``ws [N, num_ws, w_dim]`` if ``num_ws``.

    z and the label embedding are each normalised by their second moment and concatenated (with
    ``continuous_labels`` the embedding is not normalised: for real-valued labels, standardised by the data,
    the normalisation would keep only the direction of ``embed(c)``, which for one label is its sign); ``num_layers``
    fully connected lrelu layers follow with learning-rate multiplier ``lr_multiplier`` (0.01 in StyleGAN2).
    ``w_avg`` follows the mean w during training (``w_avg_beta`` 0.995); truncation is
    ``w_avg + psi * (w - w_avg)`` on the first ``truncation_cutoff`` ws (all when None).
    """

    def __init__(self, z_dim, c_dim, w_dim, num_ws=None, num_layers=8, embed_features=None, layer_features=None,
                 activation="lrelu", lr_multiplier=0.01, w_avg_beta=0.995, continuous_labels=False):
        super().__init__()
        for name, v in (("z_dim", z_dim), ("c_dim", c_dim)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name}: expected a non-negative int, got {v!r}")
        if z_dim == 0 and c_dim == 0:
            raise ValueError("z_dim, c_dim: at least one must be positive")
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"mapping_layers: expected a positive int, got {num_layers!r}")
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.w_avg_beta, self.continuous_labels = w_avg_beta, bool(continuous_labels)
        embed_features = (w_dim if c_dim else 0) if embed_features is None else embed_features
        layer_features = w_dim if layer_features is None else layer_features
        if c_dim:
            self.embed = EqualLinear(c_dim, embed_features)
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        self.layers = nn.ModuleList(
            EqualLinear(i, o, activation=activation, lr_multiplier=lr_multiplier)
            for i, o in zip(features[:-1], features[1:])
        )
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, update_w_avg=None):
        x = None
        if self.z_dim:
            _check_2d("z", z, self.z_dim)
            x = ops.normalize_2nd_moment(z.to(torch.float32))  # latents live in float32, as in StyleGAN2-ADA
        if self.c_dim:
            _check_2d("c", c, self.c_dim)
            if x is not None and c.shape[0] != x.shape[0]:
                raise ValueError(f"c: batch size {c.shape[0]} differs from z's {x.shape[0]}")
            y = self.embed(c.to(torch.float32))
            y = y if self.continuous_labels else ops.normalize_2nd_moment(y)
            x = y if x is None else torch.cat([x, y], dim=1)
        elif c is not None and (not isinstance(c, torch.Tensor) or c.numel()):
            raise ValueError(f"c: this network is unconditional (c_dim=0), got {type(c).__name__} "
                             f"{tuple(getattr(c, 'shape', ()))}")
        for layer in self.layers:
            x = layer(x)
        if (self.training if update_w_avg is None else update_w_avg) and hasattr(self, "w_avg"):
            self.w_avg.copy_(x.detach().to(self.w_avg.dtype).mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat(1, self.num_ws, 1)  # [N, num_ws, w_dim]
        if truncation_psi != 1:
            if not hasattr(self, "w_avg"):
                raise ValueError("truncation_psi: needs w_avg, which this mapping network does not track")
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            if not isinstance(cutoff, int) or isinstance(cutoff, bool) or cutoff < 0:
                raise ValueError(f"truncation_cutoff: expected None or a non-negative int, got {truncation_cutoff!r}")
            x = x.clone()
            x[:, :cutoff] = self.w_avg.lerp(x[:, :cutoff].to(self.w_avg.dtype), truncation_psi).to(x.dtype)
        return x


def _check_2d(name, t, dim):
    if not isinstance(t, torch.Tensor) or t.ndim != 2 or t.shape[1] != dim or not t.is_floating_point():
        got = tuple(t.shape) if isinstance(t, torch.Tensor) else None
        dtype = getattr(t, "dtype", None)
        raise ValueError(f"{name}: expected a floating-point tensor [N, {dim}] ({name[0]}_dim={dim}), got {got} {dtype}")
