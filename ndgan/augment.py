"""Adaptive discriminator augmentation for any nd (Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data", sections 2-3 and appendix B).

Everything D sees, reals and fakes, passes through ``augment(x, p, ...)``: a chain of differentiable,
non-leaking transformations, each applied to a sample with probability ``p`` (so at p < 1 the generator cannot
learn the augmented distribution). The ops, written once for ``[N, C, *S]`` batches:

- ``flip``: mirror each allowed axis with probability p/2 (as ADA's xflip);
- ``rot90``: a uniformly drawn rotation of the hyper-cube symmetry group over the axes of equal size (the 4
  quarter turns in 2D, the 24 rotations of the cube in 3D; with ``flip``, the full 48-element group);
- ``translate``: an integer shift of up to 1/8 of each axis, wrapping around for periodic data, mirrored
  (reflect) otherwise;
- ``scale`` / ``rotate``: isotropic scaling (log2-normal, std 0.2) and an arbitrary rotation (uniform angle in
  2D, uniform rotation in 3D) in one ``grid_sample`` with reflection padding, in physical (per-axis) units so
  non-cubic volumes rotate without shearing; 2D and 3D (scaling also in 1D);
- ``brightness`` / ``contrast``: an offset (normal, std 0.2) and a gain about 0, the middle of the [-1, 1]
  range (log2-normal, std 0.5); shared by all channels of 3-channel data, which ndgan reads as RGB (as ``color``
  does), as in ADA, so they never shift the hue; per channel for other channel counts (independent quantities);
- ``color`` (RGB only): luma flip, hue rotation about the grey axis, saturation (log2-normal, std 1);
- ``cutout``: zero a box of half the size along every axis.

``AdaptiveP`` is the controller: it accumulates sign(D(real)) on the device and every ``interval`` steps moves
p by ``sign(r_t - target) * batch * interval / (speed_kimg * 1000)``, clamped to [0, 1].
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F

OPS = ("flip", "rot90", "translate", "scale", "rotate", "brightness", "contrast", "color", "cutout")


# ---- the ops with explicit parameters (pure functions, any nd) ----------------------------------------------

def flip(x: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Mirror sample n along spatial axis a where ``flips[n, a]`` (bool ``[N, nd]``)."""
    for a in range(x.ndim - 2):
        mask = flips[:, a].reshape(-1, *[1] * (x.ndim - 1))
        x = torch.where(mask, x.flip(2 + a), x)
    return x


def _parity(perm) -> int:
    return sum(1 for i in range(len(perm)) for j in range(i + 1, len(perm)) if perm[i] > perm[j]) % 2


def cube_rotations(axes) -> list:
    """The rotations of the hyper-cube over spatial ``axes`` as (permutation, signs) pairs with determinant +1."""
    return [(perm, signs) for perm in itertools.permutations(range(len(axes)))
            for signs in itertools.product((1, -1), repeat=len(axes))
            if (-1) ** _parity(perm) * math.prod(signs) == 1]


def equal_axes(shape) -> list:
    """The largest group of spatial axes of equal size (all of them for squares and cubes)."""
    return max(([a for a in range(len(shape)) if shape[a] == s] for s in shape), key=len)


def rot90(x: torch.Tensor, axes, perm: torch.Tensor, mirror: torch.Tensor) -> torch.Tensor:
    """Permute the equal-sized spatial ``axes`` of sample n by ``itertools.permutations(range(k))[perm[n]]``,
    then mirror axis ``axes[i]`` where ``mirror[n, i]`` (``[N]`` long, ``[N, k]`` bool). With the mirror count's
    parity matched to the permutation's, this is a rotation of the hyper-cube. Selection by ``torch.where``:
    no host synchronisation."""
    out = x
    for j, order in enumerate(itertools.permutations(range(len(axes)))):
        if j == 0:
            continue  # the identity: out starts as x
        dims = list(range(x.ndim))
        for i, a in enumerate(axes):
            dims[2 + a] = 2 + axes[order[i]]
        out = torch.where((perm == j).reshape(-1, *[1] * (x.ndim - 1)), x.permute(dims), out)
    flips = torch.zeros(x.shape[0], x.ndim - 2, dtype=torch.bool, device=x.device)
    for i, a in enumerate(axes):
        flips[:, a] = mirror[:, i]
    return flip(out, flips)


def _shift_index(size: int, shift: torch.Tensor, periodic: bool) -> torch.Tensor:
    """Source index of every output position when shifting by ``shift`` ([N] ints): ``[N, size]``."""
    idx = torch.arange(size, device=shift.device)[None] - shift[:, None]
    if periodic:
        return idx % size
    if size == 1:
        return torch.zeros_like(idx)
    period = 2 * (size - 1)  # mirror without repeating the edge (numpy's 'reflect')
    idx = idx % period
    return torch.where(idx >= size, period - idx, idx)


def translate(x: torch.Tensor, shifts: torch.Tensor, periodic: bool) -> torch.Tensor:
    """Shift sample n by the integers ``shifts[n, a]`` along every spatial axis a (output[i] = input[i - t]),
    wrapping around (``periodic``) or mirroring at the edges."""
    n, c, *size = x.shape
    for a, s in enumerate(size):
        idx = _shift_index(s, shifts[:, a], periodic)  # [N, S_a]
        shape = [n, 1] + [1] * len(size)
        shape[2 + a] = s
        x = x.gather(2 + a, idx.reshape(shape).expand(x.shape))
    return x


def affine(x: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Resample sample n at ``matrices[n] @ u`` for every output position u (``[N, nd, nd]``, in physical
    units about the centre; 1D is treated as 2D with one row), bilinear/trilinear, reflection padding."""
    n, c, *size = x.shape
    nd = len(size)
    if nd == 1:  # grid_sample has no 1D mode: a [N, C, 1, L] image whose row axis is left alone
        eye = torch.eye(2, dtype=matrices.dtype, device=matrices.device).repeat(n, 1, 1)
        eye[:, 1, 1] = matrices[:, 0, 0]
        return affine(x[:, :, None], eye)[:, :, 0]
    # Normalised coordinates (u = 2 i / S - 1 per axis): D^-1 M D with D = diag(S / 2). At least float32, so
    # reals and (autocast, reduced-precision) fakes get the same geometry.
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    m = matrices.to(dtype)
    m = torch.stack([torch.stack([m[:, i, j] * (size[j] / size[i]) for j in range(nd)], -1) for i in range(nd)], 1)
    m = m.flip(1, 2)  # affine_grid orders coordinates (x, y, z) = last axis first
    theta = torch.cat([m, torch.zeros(n, nd, 1, dtype=dtype, device=x.device)], 2)  # [N, nd, nd + 1]
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x.to(dtype), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out.to(x.dtype)


def color_matrices(lumaflip, hue, saturation) -> torch.Tensor:
    """RGB transforms ``[N, 3, 3]``: mirror through the plane orthogonal to grey where ``lumaflip``, rotate by
    ``hue`` radians about the grey axis, scale the chroma by ``saturation``."""
    eye = torch.eye(3, dtype=hue.dtype, device=hue.device)
    vv = torch.full((3, 3), 1 / 3, dtype=hue.dtype, device=hue.device)  # v v^T for the grey axis v = (1,1,1)/sqrt 3
    cycle = eye.roll(1, 0)
    cross = (cycle - cycle.T) * 3 ** -0.5  # [v]_x: the cross product with v
    flip_m = eye - 2 * vv * lumaflip.to(hue.dtype)[:, None, None]  # Householder where lumaflip
    cos, sin = hue.cos()[:, None, None], hue.sin()[:, None, None]
    rotate = cos * eye + sin * cross + (1 - cos) * vv  # Rodrigues' formula
    sat = vv + saturation[:, None, None] * (eye - vv)
    return sat @ rotate @ flip_m


def cutout(x: torch.Tensor, centres: torch.Tensor, size: float) -> torch.Tensor:
    """Zero, in sample n, the box of ``size`` (a fraction of every axis) centred at ``centres[n]`` (in [0, 1])."""
    keep = torch.zeros(x.shape[0], *x.shape[2:], dtype=torch.bool, device=x.device)
    for a, s in enumerate(x.shape[2:]):
        coord = (torch.arange(s, device=x.device, dtype=centres.dtype) + 0.5) / s
        far = (coord[None] - centres[:, a, None]).abs() >= size / 2  # [N, S_a]
        shape = [x.shape[0]] + [1] * (x.ndim - 2)
        shape[1 + a] = s
        keep = keep | far.reshape(shape)
    return x * keep[:, None].to(x.dtype)


# ---- random parameters and the pipeline ----------------------------------------------------------------------

def default_ops(shape, periodic: bool) -> tuple:
    """ADA's 'bgc' set without colour, less what the data cannot take: periodic cells keep their symmetries
    and wrapped shifts only (resampling breaks periodicity); rot90 needs two equal axes, rotate two axes."""
    ops = ["flip", "rot90", "translate"] if periodic else \
        ["flip", "rot90", "translate", "scale", "rotate", "brightness", "contrast"]
    if len(equal_axes(shape)) < 2:
        ops.remove("rot90")
    if len(shape) < 2 and "rotate" in ops:
        ops.remove("rotate")
    return tuple(ops)


def check_ops(ops, shape, periodic: bool, channels: int) -> None:
    """Raise ``ValueError`` for ops the data cannot take (rather than skipping them silently)."""
    unknown = [op for op in ops if op not in OPS]
    if unknown:
        raise ValueError(f"unknown op {unknown[0]!r}; expected some of {', '.join(OPS)}")
    problems = [
        ("rot90" in ops and len(equal_axes(shape)) < 2, f"rot90 needs two axes of equal size; shape {tuple(shape)} "
         f"has none"),
        ("rotate" in ops and len(shape) < 2, "rotate needs at least two spatial axes"),
        (periodic and ("scale" in ops or "rotate" in ops), "scale and rotate resample with mirrored edges, which "
         "breaks periodic cells (data.periodic); keep flip, rot90 and translate"),
        ("color" in ops and channels != 3, f"color needs RGB data (3 channels, got {channels})"),
    ]
    for bad, message in problems:
        if bad:
            raise ValueError(f"{message}; remove it from the ops")


def _random_rotation(n, nd, dtype, device, generator):
    """Uniformly random rotation matrices ``[n, nd, nd]`` (2D: uniform angle; 3D: from a unit quaternion)."""
    if nd == 2:
        angle = (torch.rand(n, generator=generator, device=device, dtype=dtype) * 2 - 1) * math.pi
        c, s = angle.cos(), angle.sin()
        return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    q = torch.randn(n, 4, generator=generator, device=device, dtype=dtype)
    w, i, j, k = (q / q.norm(dim=1, keepdim=True)).unbind(1)
    return torch.stack([
        torch.stack([1 - 2 * (j * j + k * k), 2 * (i * j - k * w), 2 * (i * k + j * w)], -1),
        torch.stack([2 * (i * j + k * w), 1 - 2 * (i * i + k * k), 2 * (j * k - i * w)], -1),
        torch.stack([2 * (i * k - j * w), 2 * (j * k + i * w), 1 - 2 * (i * i + j * j)], -1)], -2)


def augment(x: torch.Tensor, p, ops=OPS, periodic: bool = False, flip_axes=None, generator=None,
            translate_max: float = 0.125, scale_std: float = 0.2, brightness_std: float = 0.2,
            contrast_std: float = 0.5, saturation_std: float = 1.0, cutout_size: float = 0.5) -> torch.Tensor:
    """Augment ``x: [N, C, *S]`` (differentiably): every op in ``ops`` acts on each sample with probability
    ``p`` (a float or a 0-d tensor on x's device: no host sync). ``flip_axes``: spatial axes that may be
    mirrored (None: all). Random numbers come from ``generator`` (None: the global RNG of x's device)."""
    n, c, *size = x.shape
    try:
        check_ops(ops, size, periodic, c)
    except ValueError as e:
        raise ValueError(f"augment: {e}") from None
    nd, dev = len(size), x.device

    def rand(*shape):
        return torch.rand(*shape, generator=generator, device=dev)

    def randn(*shape):
        return torch.randn(*shape, generator=generator, device=dev)

    def chosen():  # [N] bool: this op acts on these samples
        return rand(n) < p

    if "flip" in ops:
        allowed = set(range(nd) if flip_axes is None else flip_axes)
        no = torch.zeros(n, dtype=torch.bool, device=dev)
        x = flip(x, torch.stack([(rand(n) < p) & (rand(n) < 0.5) if a in allowed else no for a in range(nd)], 1))
    if "rot90" in ops:
        axes = equal_axes(size)
        k, on = len(axes), chosen()
        perms = list(itertools.permutations(range(k)))
        perm = ((rand(n) * len(perms)).long().clamp(max=len(perms) - 1)) * on  # 0: the identity
        mirror = (rand(n, k) < 0.5) & on[:, None]
        # Uniform over proper rotations: the last mirror makes the mirror count's parity the permutation's.
        odd_perm = torch.zeros(n, dtype=torch.bool, device=dev)
        for j, order in enumerate(perms):
            if _parity(order):
                odd_perm = odd_perm | (perm == j)
        odd_mirrors = mirror[:, :-1].sum(1) % 2 == 1
        mirror[:, -1] = odd_perm ^ odd_mirrors
        x = rot90(x, axes, perm, mirror)
    if "translate" in ops:
        shifts = torch.stack([((rand(n) * 2 - 1) * (s * translate_max)).round().long() for s in size], 1)
        shifts = shifts * chosen()[:, None]
        x = translate(x, shifts, periodic)
    if "scale" in ops or "rotate" in ops:
        eye = torch.eye(nd, device=dev)
        m = eye.repeat(n, 1, 1)
        if "scale" in ops:
            s = torch.where(chosen(), torch.exp2(randn(n) * scale_std), torch.ones(n, device=dev))
            m = m / s[:, None, None]  # sampling at u / s magnifies by s
        if "rotate" in ops:
            r = _random_rotation(n, min(nd, 3), torch.float32, dev, generator)
            m = torch.where(chosen()[:, None, None], r, eye) @ m
        geometric = (m - eye).abs().flatten(1).amax(1) > 0  # [N]
        x = torch.where(geometric.reshape(-1, *[1] * (nd + 1)), affine(x, m), x)
    k = 1 if c == 3 or "color" in ops else c  # 3 channels are RGB (as for color): shared, as in ADA; else per channel
    if "brightness" in ops:
        x = x + randn(n, k).mul(brightness_std).mul(chosen()[:, None]).reshape(n, k, *[1] * nd).to(x.dtype)
    if "contrast" in ops:
        gain = torch.where(chosen()[:, None], torch.exp2(randn(n, k) * contrast_std), torch.ones(n, k, device=dev))
        x = x * gain.reshape(n, k, *[1] * nd).to(x.dtype)
    if "color" in ops:
        lumaflip = chosen() & (rand(n) < 0.5)
        hue = ((rand(n) * 2 - 1) * math.pi) * chosen()
        saturation = torch.where(chosen(), torch.exp2(randn(n) * saturation_std), torch.ones(n, device=dev))
        mats = color_matrices(lumaflip, hue, saturation).to(x.dtype)
        x = torch.einsum("nij,nj...->ni...", mats, x)
    if "cutout" in ops:
        centres = rand(n, nd)
        x = torch.where(chosen().reshape(-1, *[1] * (nd + 1)), cutout(x, centres, cutout_size), x)
    return x


class AdaptiveP:
    """ADA's controller of p. ``observe(real_logits)`` every D step (on the device, no sync); ``step()``
    every ``interval`` steps moves p towards the overfitting target ``r_t = E[sign(D(real))] = target``.

    mode 'ada': p starts at ``p`` and adapts; 'fixed': p stays at ``p``; 'none': p = 0 (no augmentation).
    """

    def __init__(self, mode="ada", p=0.0, target=0.6, interval=4, speed_kimg=500.0, batch=32, device="cpu"):
        if mode not in ("ada", "fixed", "none"):
            raise ValueError(f"augment.mode: expected ada, fixed or none, got {mode!r}")
        self.mode, self.target, self.interval, self.speed_kimg = mode, target, interval, speed_kimg
        self.set_batch(batch)
        self.p = torch.tensor(0.0 if mode == "none" else float(p), device=device)
        self.stats = torch.zeros(2, device=device)  # sum of signs, count

    def set_batch(self, batch: int) -> None:
        """p may move from 0 to 1 in ``speed_kimg``: per adjustment, ``batch * interval`` samples' share."""
        self.step_size = batch * self.interval / (self.speed_kimg * 1000)

    @property
    def active(self) -> bool:
        return self.mode != "none"

    def observe(self, real_logits: torch.Tensor) -> None:
        if self.mode == "ada":  # a NaN logit counts as 0 rather than freezing p at NaN
            self.stats[0] += real_logits.detach().float().sign().nan_to_num(0.0).sum()
            self.stats[1] += real_logits.numel()

    def step(self, all_reduce=None) -> None:
        """Adjust p from the signs gathered since the last call. ``all_reduce``: sums a tensor over ranks in
        place (multi-process training), so every rank moves p alike."""
        if self.mode != "ada":
            return
        stats = self.stats.clone()
        if all_reduce is not None:
            all_reduce(stats)
        r_t = stats[0] / stats[1].clamp_min(1)
        move = torch.sign(r_t - self.target) * (stats[1] > 0)
        self.p = (self.p + move * self.step_size).clamp(0, 1)
        self.stats.zero_()

    def state_dict(self) -> dict:
        return {"p": self.p.detach().cpu(), "stats": self.stats.detach().cpu()}

    def load_state_dict(self, state: dict, pending: bool = True) -> None:
        """Restore p (mode 'ada'; 'fixed' and 'none' keep the config's p) and, with ``pending``, the signs
        gathered since the last update: a checkpoint holds rank 0's, so only rank 0 restores them."""
        if self.mode == "ada":
            self.p = state["p"].to(self.p.device).float().reshape(())
            if pending:
                self.stats = state["stats"].to(self.stats.device).float().reshape(2)
