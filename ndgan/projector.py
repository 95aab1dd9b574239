"""The StyleGAN2 projector (Karras et al. 2020, section 5) for images and volumes: find the latent (and noise
maps) whose sample matches a target. From w_avg, Adam with a cosine-ramped learning rate, decaying noise added
to the latent, noise maps optimised under the multi-scale autocorrelation regulariser and renormalised each
step. The distance works offline: a multi-scale pixel/voxel MSE plus a feature distance on the
discriminator's block outputs of the same checkpoint (channel-normalised, as LPIPS does with VGG).

``python -m ndgan.project`` (``ndgan/cli/project.py``) is the command.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from . import ops
from .data.units import channel_ranges, reference_affine, to_physical, to_unit
from .io import checkpoint as ckpt
from .io.files import atomic_write_all, output_folder
from .io.volumes import VOLUME_SUFFIXES, read_sample, write_nifti
from .nets import Discriminator
from .nets.common import float16_in_float32
from .viz.grid import sample_grid, save_png

RESULTS = ("projected_w.npy", "projected_noise.npz", "reconstruction.png", "reconstruction.npy", "report.json")


def load_target(path, G, index=0) -> torch.Tensor:
    """The target as ``[C, *S]`` in [-1, 1]: a PNG/JPEG image, or a volume file in the training data's physical
    units (as ``python -m ndgan.generate`` writes them); a ValueError if it does not fit the model."""
    path = Path(path)
    name = path.name.lower()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such target file")
    if name.endswith((".png", ".jpg", ".jpeg")):
        from PIL import Image

        with Image.open(path) as im:
            im = im.convert({1: "L", 3: "RGB", 4: "RGBA"}.get(G.channels, "RGB"))
            x = torch.from_numpy(np.asarray(im, dtype=np.float32) / 127.5 - 1)
        x = x[None] if x.ndim == 2 else x.permute(2, 0, 1)
    else:
        if not name.endswith(VOLUME_SUFFIXES):
            raise ValueError(f"{path}: unknown target type; expected .png, .jpg, .npy, .nii, .nii.gz or .h5")
        data, _, _ = read_sample(path, index, G.spatial_dims, what="target")
        ranges = channel_ranges(G.metadata)
        if ranges is not None and len(ranges) in (1, data.shape[0]):  # physical units -> [-1, 1]
            data = to_unit(data, G.metadata)
        x = torch.from_numpy(np.ascontiguousarray(data))
    expected = (G.channels, *G.shape)
    if tuple(x.shape) != expected:
        raise ValueError(f"{path}: target shape {tuple(x.shape)} does not match the model's {expected} "
                         f"(channels, *shape)")
    if not torch.isfinite(x).all():
        raise ValueError(f"{path}: target contains NaN or Inf")
    return x


def load_discriminator(path, device="cpu") -> Discriminator:
    """The discriminator of a training checkpoint (or a run folder's newest valid one), for the feature
    distance; a ValueError when the file holds none (a generator export) or one that does not fit."""
    path = Path(path)
    if path.suffix == ".safetensors":
        raise ValueError(f"{path}: a generator export holds no discriminator for the feature distance; "
                         f"pass --no-features or use the training checkpoint")
    state = ckpt.read_training(path)
    if "D_kwargs" not in state or "D" not in state:
        raise ValueError(f"{path}: the checkpoint has no discriminator for the feature distance; pass --no-features")
    try:
        D = Discriminator(**state["D_kwargs"]).to(device).eval().requires_grad_(False)
        D.load_state_dict(state["D"])
        if torch.device(device).type == "cpu":  # as load_generator does
            float16_in_float32(D)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"{path}: the checkpoint's D and D_kwargs do not fit together (another network's "
                         f"discriminator?) ({type(e).__name__}: {str(e).splitlines()[0][:120]}); use the "
                         f"training checkpoint as written, or pass --no-features") from None
    return D


def noise_maps(G):
    """The generator's fixed noise maps (what the projector optimises alongside the latent)."""
    return _noise_buffers(G)


def _noise_buffers(G):
    return [m.noise_const for m in G.synthesis.modules() if hasattr(m, "noise_const")]


def noise_regularisation(noise: torch.Tensor) -> torch.Tensor:
    """Squared autocorrelation at shift 1 along every axis, summed over a pyramid of 2x-averaged maps."""
    loss = noise.new_zeros([])
    x = noise[None, None]
    while True:  # every level down to 8 (or the map's own size, if smaller) contributes, as in StyleGAN2
        for axis in range(2, x.ndim):
            loss = loss + (x * torch.roll(x, 1, dims=axis)).mean() ** 2
        if min(x.shape[2:]) <= 8:
            return loss
        x = ops.downsample(x, ops.setup_filter([1, 1], device=x.device))


def _features(D, x):
    """Channel-normalised outputs of every discriminator block."""
    feats, h, img = [], None, x
    for block in D.blocks:
        h, img = block(h, img)
        feats.append(h / (h.square().sum(1, keepdim=True).sqrt() + 1e-8))
    return feats


def distance(x, target, D=None):
    """(multi-scale MSE, feature distance): the projector's loss terms."""
    pixel, a, b = 0.0, x, target
    for _ in range(3):
        pixel = pixel + (a - b).square().mean()
        if min(a.shape[2:]) < 8:
            break
        a, b = ops.downsample(a), ops.downsample(b)
    feature = x.new_zeros([])
    if D is not None:
        for fa, fb in zip(_features(D, x), _features(D, target)):
            feature = feature + (fa - fb).square().sum(1).mean()
    return pixel, feature


def project(G, target, steps=1000, space="w", D=None, seed=0, lr=0.1, noise_weight=1e5, log=None):
    """Returns (ws [num_ws, w_dim], reconstruction [C, *S], report dict); the optimised noise maps stay in G's
    ``noise_const`` buffers (``noise_maps(G)`` lists them)."""
    if space not in ("w", "w+"):
        raise ValueError(f"--space: expected w or w+, got {space!r}")
    device = next(G.parameters()).device
    target = target[None].to(device)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # w statistics from 10000 latents, as the StyleGAN2 projector
        w = G.mapping(torch.randn(10000, G.z_dim, generator=gen).to(device), None)[:, 0]
        w_avg, w_std = w.mean(0, keepdim=True), (w - w.mean(0)).square().sum(1).mean().sqrt()
    w_opt = (w_avg.repeat(G.num_ws, 1) if space == "w+" else w_avg.clone()).requires_grad_(True)
    noises = _noise_buffers(G)
    with torch.no_grad():
        for n in noises:
            n.copy_(torch.randn(n.shape, generator=gen))
    with torch.no_grad():  # where the search starts: the w_avg sample
        start = G.synthesis(w_avg[None].repeat(1, G.num_ws, 1), noise_mode="const")
        initial_mse = float((start - target).square().mean())
    params = [w_opt] + [n.requires_grad_(True) for n in noises]
    opt = torch.optim.Adam(params, betas=(0.9, 0.999), lr=lr)
    for step in range(steps):
        t = step / max(steps - 1, 1)
        ramp = min(1.0, (1.0 - t) / 0.25)  # cosine ramp-down over the last quarter, linear ramp-up first 5 %
        ramp = (0.5 - 0.5 * math.cos(ramp * math.pi)) * min(1.0, t / 0.05) if step else 0.0
        for group in opt.param_groups:
            group["lr"] = lr * max(ramp, 1e-3)
        noise_scale = float(w_std) * 0.05 * max(0.0, 1.0 - t / 0.75) ** 2
        w_noisy = w_opt + torch.randn(w_opt.shape, generator=gen).to(device) * noise_scale
        ws = w_noisy[None] if space == "w+" else w_noisy[None].repeat(1, G.num_ws, 1)
        x = G.synthesis(ws, noise_mode="const")
        pixel, feature = distance(x, target, D)
        reg = sum(noise_regularisation(n) for n in noises)
        loss = pixel + feature + noise_weight * reg
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():  # noise maps stay zero-mean, unit-variance
            for n in noises:
                n.sub_(n.mean()).div_(n.std() + 1e-8)
        if log and (step % max(steps // 10, 1) == 0 or step == steps - 1):
            log(f"step {step + 1}/{steps}: pixel {float(pixel.detach()):.4g}, feature {float(feature.detach()):.4g}")
    for n in noises:
        n.requires_grad_(False)
    with torch.no_grad():
        ws = (w_opt[None] if space == "w+" else w_opt[None].repeat(1, G.num_ws, 1)).detach()
        recon = G.synthesis(ws, noise_mode="const")
        pixel, feature = distance(recon, target, D)
        mse = float((recon - target).square().mean())
    report = {"steps": steps, "space": space, "initial_mse": initial_mse, "mse": mse, "psnr_db": 10 * math.log10(4 / max(mse, 1e-12)),
              "multiscale_mse": float(pixel), "feature_distance": float(feature), "feature_network": "discriminator"
              if D is not None else "none", "value_range_note": "mse and PSNR on the [-1, 1] scale (peak to peak 2)"}
    return ws[0].cpu(), recon[0].cpu(), report


def result_names(G) -> list:
    """The files ``write_results`` writes for ``G``."""
    return list(RESULTS) + (["reconstruction.nii.gz"] if G.spatial_dims == 3 else [])


def write_results(out, G, target, ws, recon, report) -> list:
    """Write every result into ``out`` at once (all of them or none)."""
    out = Path(out)
    physical = to_physical(recon[None], G.metadata).numpy()[0]
    noise = [n.detach().cpu().numpy() for n in noise_maps(G)]
    writers = {
        "projected_w.npy": lambda p: np.save(p, ws.numpy()),
        "projected_noise.npz": lambda p: _savez(p, noise),
        "reconstruction.png": lambda p: save_png(sample_grid(torch.stack([target, recon])), p),  # target | recon
        "reconstruction.npy": lambda p: np.save(p, physical),
        "report.json": lambda p: Path(p).write_text(json.dumps(report, indent=2)),
    }
    if G.spatial_dims == 3:
        affine, _ = reference_affine(G.metadata, 3)
        writers["reconstruction.nii.gz"] = lambda p: write_nifti(p, physical, affine)
    with output_folder(out):
        return atomic_write_all([(out / name, writers[name]) for name in result_names(G)])


def _savez(path, arrays):
    with open(path, "wb") as f:  # a file object: np.savez would add .npz to a temporary's name
        np.savez(f, *arrays)
