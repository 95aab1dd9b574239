"""Multi-scale structural similarity (Wang, Simoncelli & Bovik 2003) for any nd, with the window and number
of scales adapted to the sample size, so 32^3 volumes and 1D signals get a meaningful value.

Per scale: Gaussian-weighted local means, variances and covariance over a "valid" window (no padding); the
contrast-structure term ``cs = (2 s_xy + C2) / (s_x^2 + s_y^2 + C2)`` is averaged at every scale, the full
SSIM (luminance times cs) at the coarsest; scales are 2x average-pooled. MS-SSIM = prod_j relu(cs_j)^b_j at
the finer scales times relu(ssim)^b_S at the coarsest, with Wang's weights b (the first S of them, renormalised).
The relu keeps fractional powers of a negative term defined, as pytorch-msssim and torchmetrics do.

torchmetrics' MS-SSIM covers 2D and 3D only and needs samples larger than ``(window - 1) 2^(S-1)`` for its
fixed settings, which rules out 32^3 with five scales; hence this N-d version on ndgan's FIR op.
"""

from __future__ import annotations

import torch

from ..ops import nd as ndops
from ..ops.resample import upfirdn

WANG_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOWS = (11, 9, 7, 5, 3)


def settings(shape, window: int | None = None, scales: int | None = None):
    """``(window, scales, sigma)`` for samples of spatial ``shape``.

    Default: Wang's 11-wide window (sigma 1.5) with as many scales (up to 5) as keep the coarsest scale at
    least one window wide; when that gives fewer than 3 scales, the largest odd window that allows 3 (or the
    most that fit with a 3-wide window). sigma = 1.5 * window / 11. 256^2 -> (11, 5), 128^2 -> (11, 4),
    32^3 -> (7, 3), 16^3 -> (3, 3).
    """
    smallest = min(shape)

    def fits(w, s):
        return smallest // 2 ** (s - 1) >= w

    if window is None and scales is None:
        fitting = [s for s in range(5, 0, -1) if fits(11, s)]
        if fitting and fitting[0] >= 3:
            window, scales = 11, fitting[0]
        else:
            window = next((w for w in WINDOWS if fits(w, 3)), 3)
            scales = next((s for s in range(3, 0, -1) if fits(window, s)), 0)
    elif window is None:
        window = next((w for w in WINDOWS if fits(w, scales)), 0)
    elif scales is None:
        scales = next((s for s in range(5, 0, -1) if fits(window, s)), 0)
    if not window or not scales or window % 2 == 0 or not 1 <= scales <= 5 or not fits(window, scales):
        raise ValueError(f"ms_ssim: samples of shape {tuple(shape)} cannot hold window={window} at scales={scales} "
                         f"(each scale halves the size; the coarsest must be at least one window wide)")
    return window, scales, 1.5 * window / 11


def gaussian_taps(window: int, sigma: float, dtype=torch.float64, device=None) -> torch.Tensor:
    """Normalised 1D Gaussian taps ``[window]``."""
    r = torch.arange(window, dtype=dtype, device=device) - (window - 1) / 2
    g = torch.exp(-r.square() / (2 * sigma**2))
    return g / g.sum()


def _gaussian_valid(stack: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable "valid" filtering of ``[K, N, C, *S]`` with ``taps`` along every spatial axis (one 1D pass
    per axis: ``window * nd`` products per point instead of ``window ** nd``)."""
    k, n, c, *size = stack.shape
    y = stack.reshape(k * n * c, 1, *size)
    for axis in range(len(size)):
        shape = [1, 1] + [1] * len(size)
        shape[2 + axis] = len(taps)
        y = ndops.conv(y, taps.reshape(shape))
    return y.reshape(k, n, c, *y.shape[2:])


def ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0, window: int | None = None,
            scales: int | None = None, k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """MS-SSIM of ``x, y: [N, C, *S]`` (any nd) -> ``[N]`` (per-channel values averaged), in float64.

    ``data_range``: the value span (2 for ndgan's [-1, 1] samples); ``window``/``scales``: see ``settings``.
    """
    ndops.check_nd(x)
    if x.shape != y.shape:
        raise ValueError(f"ms_ssim: x and y must have one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    window, scales, sigma = settings(x.shape[2:], window, scales)
    weights = torch.tensor(WANG_WEIGHTS[:scales], dtype=torch.float64, device=x.device)
    weights = weights / weights.sum()
    taps = gaussian_taps(window, sigma, device=x.device)
    box = torch.full((2,), 0.5, dtype=torch.float64, device=x.device)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    x, y = x.double(), y.double()
    axes = tuple(range(2, x.ndim))
    terms = []
    for j in range(scales):
        if j:
            x, y = upfirdn(x, box, down=2), upfirdn(y, box, down=2)  # 2x average pool per axis
        # Local statistics over a "valid" Gaussian window: [N, C, *S - window + 1] each.
        mx, my, mxx, myy, mxy = _gaussian_valid(torch.stack([x, y, x * x, y * y, x * y]), taps)
        vx, vy, cov = mxx - mx * mx, myy - my * my, mxy - mx * my
        cs = (2 * cov + c2) / (vx + vy + c2)
        if j < scales - 1:
            terms.append(cs.mean(axes))  # [N, C]
        else:
            luminance = (2 * mx * my + c1) / (mx * mx + my * my + c1)
            terms.append((luminance * cs).mean(axes))
    stacked = torch.stack(terms, -1).clamp_min(0)  # [N, C, scales]
    return (stacked ** weights).prod(-1).mean(1)


def pairwise_ms_ssim(samples: torch.Tensor, **kwargs) -> torch.Tensor:
    """MS-SSIM of consecutive pairs (0, 1), (2, 3), ... of ``samples: [2P, C, *S]`` -> ``[P]``."""
    if len(samples) < 2:
        raise ValueError("pairwise_ms_ssim: needs at least two samples")
    n = len(samples) // 2 * 2
    return ms_ssim(samples[0:n:2], samples[1:n:2], **kwargs)

