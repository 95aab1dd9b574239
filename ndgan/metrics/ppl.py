"""Perceptual path length (StyleGAN, Karras et al. 2019, section 3; the "end" sampling of StyleGAN2).

For pairs of latents, the distance between the samples at w(t) and w(t + eps) on the segment between their
ws (t = 0 for "end" sampling, uniform for "full"), divided by eps^2; values outside the 1st..99th percentile are
dropped before the mean, as in the published code; 2D images larger than 256 are area-downsampled by the
integer factor that brings them to 256 first, as there. The distance is LPIPS when its weights are given (2D),
else the squared L2 distance of the feature network's features; the result says which.
"""

from __future__ import annotations

import torch


def _slerp(a, b, t):
    a, b = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = (a * b).sum(-1, keepdim=True).clamp(-1, 1).acos()
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


@torch.no_grad()
def path_length(G, distance, num: int = 10000, epsilon: float = 1e-4, space: str = "w", sampling: str = "end",
                batch: int = 16, seed: int = 0, labels=None, crop: bool = False) -> float:
    """Mean of ``distance(a, b) / epsilon^2`` over ``num`` latent pairs (1st..99th percentile).

    G: an ndgan ``Generator`` (eval mode); distance: ``(a, b) -> [N]`` on samples ``[N, C, *S]`` in [-1, 1];
    space: 'w' (linear interpolation) or 'z' (spherical); sampling: 'end' (t = 0) or 'full' (t ~ U[0, 1));
    labels: ``[L, c_dim]`` to draw conditions from; crop: keep the central face region of 2D images (FFHQ).
    """
    if space not in ("w", "z") or sampling not in ("end", "full"):
        raise ValueError(f"ppl: space must be 'w' or 'z' and sampling 'end' or 'full', got {space!r}, {sampling!r}")
    if num < 1:
        raise ValueError(f"ppl: expected a positive number of samples, got {num}")
    device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    dists = []
    for start in range(0, num, batch):
        b = min(batch, num - start)
        z = torch.randn(2 * b, G.z_dim, generator=gen).to(device)
        t = (torch.rand(b, 1, generator=gen) if sampling == "full" else torch.zeros(b, 1)).to(device)
        c = None
        if labels is not None:
            c = labels[torch.randint(len(labels), (b,), generator=gen)].to(device).repeat_interleave(2, 0)
        if space == "w":
            w = G.mapping(z, c, update_w_avg=False)  # [2b, num_ws, w_dim]
            w0, w1 = w[0::2], w[1::2]
            t3 = t[:, :, None]
            ws = torch.stack([w0.lerp(w1, t3), w0.lerp(w1, t3 + epsilon)], 1).flatten(0, 1)  # [2b, num_ws, w_dim]
        else:
            z0, z1 = z[0::2], z[1::2]
            zs = torch.stack([_slerp(z0, z1, t), _slerp(z0, z1, t + epsilon)], 1).flatten(0, 1)
            ws = G.mapping(zs, c, update_w_avg=False)
        out = G.synthesis(ws, noise_mode="const").float()
        if crop:
            if out.ndim != 4:
                raise ValueError("ppl: crop applies to 2D face images only")
            u = out.shape[2] // 8
            out = out[:, :, u * 3: u * 7, u * 2: u * 6]
        if out.ndim == 4 and out.shape[2] > 256:  # as published: images above 256 are area-downsampled to 256
            factor = out.shape[2] // 256
            out = torch.nn.functional.avg_pool2d(out, factor)
        dists.append(distance(out[0::2], out[1::2]).double().cpu() / epsilon**2)
    d = torch.cat(dists)
    lo = torch.quantile(d, 0.01, interpolation="lower")
    hi = torch.quantile(d, 0.99, interpolation="higher")
    return float(d[(d >= lo) & (d <= hi)].mean())
