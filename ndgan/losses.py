"""Loss terms for StyleGAN2 training (Karras et al. 2020): pure functions of logits, samples and networks.

Non-saturating logistic loss (Goodfellow et al. 2014); R1 (Mescheder et al. 2018); path-length
regularisation (StyleGAN2 section 3.2), with the probe noise scaled by 1/sqrt(number of spatial elements) so
it is right in any nd; WGAN-GP (Gulrajani et al. 2017), which the 3D port in the source documents used.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def d_logistic(real_logits, fake_logits):
    """Discriminator non-saturating logistic loss: ``softplus(D(fake)) + softplus(-D(real))``, batch mean.

    In float32 at least, also when the logits come from an autocast region in reduced precision."""
    return F.softplus(_full(fake_logits)).mean() + F.softplus(-_full(real_logits)).mean()


def g_nonsaturating(fake_logits):
    """Generator non-saturating loss: ``softplus(-D(G(z)))``, batch mean, in float32 at least."""
    return F.softplus(-_full(fake_logits)).mean()


def _full(x):
    return x.to(torch.promote_types(x.dtype, torch.float32))


def r1_penalty(real_logits, reals):
    """Per-sample ``|grad_x D(x)|^2`` at the reals (``reals`` must require grad): ``[N]``.

    The caller scales it by ``gamma / 2`` (and by the lazy-regularisation interval).
    """
    (grad,) = torch.autograd.grad(real_logits.sum(), reals, create_graph=True)
    return grad.square().flatten(1).sum(1)


def path_length_noise(images):
    """Random image-space directions, scaled by ``1/sqrt(prod(S))`` so the penalty is resolution-free."""
    return torch.randn_like(images) / math.sqrt(math.prod(images.shape[2:]))


def path_lengths(images, ws, noise):
    """``|J_w^T y|`` per sample for the Jacobian of ``images`` w.r.t. ``ws`` and the direction ``noise``:
    ``[N]``, averaged over the ws as in StyleGAN2-ADA."""
    (grad,) = torch.autograd.grad((images * noise).sum(), ws, create_graph=True)
    return grad.square().sum(2).mean(1).sqrt()


def path_length_penalty(lengths, pl_mean, decay):
    """``(|J^T y| - a)^2`` with ``a`` the running mean of the lengths (decay ``decay``).

    Returns ``(penalty [N], new pl_mean)``; the caller stores the new mean.
    """
    new_mean = pl_mean.lerp(lengths.detach().mean(), decay)
    return (lengths - new_mean).square(), new_mean


def wgan_d(real_logits, fake_logits):
    """The WGAN critic's loss: E[D(fake)] - E[D(real)] (Arjovsky et al. 2017), in full precision."""
    return _full(fake_logits).mean() - _full(real_logits).mean()


def wgan_g(fake_logits):
    """The WGAN generator's loss: -E[D(fake)]."""
    return -_full(fake_logits).mean()


def gradient_penalty(D, reals, fakes, c=None):
    """WGAN-GP: ``(|grad D(x_hat)| - 1)^2`` at random interpolates of reals and fakes: ``[N]``."""
    alpha = torch.rand([reals.shape[0]] + [1] * (reals.ndim - 1), device=reals.device, dtype=reals.dtype)
    mixed = (alpha * reals.detach() + (1 - alpha) * fakes.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(mixed, c).sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).square()
