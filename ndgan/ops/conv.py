"""Convolution with FIR resampling, and StyleGAN2's modulated convolution, for any nd.

Modulation and weight demodulation follow StyleGAN2 (Karras et al. 2020, section 2.2, eq. 1-3). Resampling
convolutions follow StyleGAN2-ADA's conventions: up-convolution is a stride-``up`` transposed convolution
followed by the FIR filter (gain ``up**nd``); down-convolution is the FIR filter followed by a strided
convolution. All convolutions are cross-correlations, as ``torch.nn.functional.conv*d``.
"""

from __future__ import annotations

import math

import torch

from . import nd as ndops
from .act import _check_act, bias_act
from .resample import _check_output, check_filter, default_filter, periodic, upfirdn, upfirdn_reference

__all__ = [
    "choose_fused",
    "conv_resample",
    "conv_resample_reference",
    "modulated_conv",
    "modulated_conv_bias_act",
    "modulated_conv_reference",
]


def _check_conv_args(x, weight, groups, up, down, padding, f, padding_mode):
    """Validate the arguments shared by the resampling convolutions; return (nd, k, pads, f, up, down)."""
    nd = ndops.check_nd(x)
    if not isinstance(weight, torch.Tensor) or weight.ndim != nd + 2:
        shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(f"weight: expected [O, I, *k] with {nd} kernel axes to match x {tuple(x.shape)}, got {shape}")
    o, i, *k = weight.shape
    if not ndops._is_int(groups) or groups < 1:
        raise ValueError(f"groups: expected a positive int, got {groups!r}")
    if x.shape[1] != i * groups:
        raise ValueError(
            f"weight: x has {x.shape[1]} channels but weight {tuple(weight.shape)} expects {i * groups} "
            f"({i} per group x {groups} groups)"
        )
    if o % groups:
        raise ValueError(f"groups: {groups} does not divide the {o} output channels of weight {tuple(weight.shape)}")
    for name, v in (("up", up), ("down", down)):
        if not ndops._is_int(v) or v < 1:
            raise ValueError(f"{name}: expected a positive int, got {v!r}")
    pads = ndops.parse_padding(padding, nd)
    ndops.check_padding_mode(padding_mode)
    if f is None:  # only resampling needs a filter: build the default one then, on x's device
        f = default_filter(x.device) if up > 1 or down > 1 else None
    f = check_filter(f, "resample_filter")
    taps = 1 if f is None else f.numel()
    try:
        _check_output(x, (up,) * nd, (down,) * nd, _resample_pads(pads, taps, up, down), _support(k, taps, up, down),
                      "conv")
    except ValueError:
        raise ValueError(f"padding: {padding!r} leaves no output for x {tuple(x.shape)} with kernel {tuple(k)}, "
                         f"up={up}, down={down}; use a larger input or more padding") from None
    return nd, k, pads, f


def _resample_pads(pads, taps, up, down):
    """Add StyleGAN2's FIR padding for up/down-sampling to the convolution's own padding (per axis)."""
    out = []
    for p0, p1 in pads:
        if up > 1:
            p0, p1 = p0 + (taps + up - 1) // 2, p1 + (taps - up) // 2
        if down > 1:
            p0, p1 = p0 + (taps - down + 1) // 2, p1 + (taps - down) // 2
        out.append((p0, p1))
    return out


def _support(k, taps, up, down):
    """Per-axis support of the whole op (conv kernel plus the FIR filters it applies), upsampled units."""
    extra = (taps - 1) * (up > 1) + (taps - 1) * (down > 1)
    return tuple(kk + extra for kk in k)


def conv_resample(x, weight, f=None, up=1, down=1, padding=0, groups=1, padding_mode="zeros"):
    """Convolution with optional FIR up/down-sampling, via the fastest exact path.

    x: ``[N, I, *S]``; weight: ``[O, I/groups, *k]``; f: 1-D resampling taps (``None``: [1, 3, 3, 1]);
    up/down: int factors; padding relative to the upsampled input (int, per axis, or per-axis pairs).
    Returns ``[N, O, *S']``. Equals ``conv_resample_reference`` (zero-stuff, filter, conv, decimate).
    """
    nd, k, pads, f = _check_conv_args(x, weight, groups, up, down, padding, f, padding_mode)
    taps = 1 if f is None else f.numel()
    pads = _resample_pads(pads, taps, up, down)
    weight = weight.to(x.dtype)

    def run(y, pads):
        return _conv_resample_zeros(y, weight, f, up, down, pads, groups)

    if padding_mode == "circular":
        return periodic(run, x, (up,) * nd, (down,) * nd, pads, _support(k, taps, up, down))
    return run(x, pads)


def _conv_resample_zeros(x, weight, f, up, down, pads, groups):
    o, i, *k = weight.shape
    nd = len(k)
    pointwise = all(kk == 1 for kk in k)
    if pointwise and down > 1 and up == 1:  # 1x1 conv commutes with the filter: shrink first.
        return ndops.conv(upfirdn(x, f, down=down, padding=pads), weight, groups=groups)
    if pointwise and up > 1 and down == 1:  # 1x1 conv commutes with the filter: convolve at low resolution.
        return upfirdn(ndops.conv(x, weight, groups=groups), f, up=up, padding=pads, gain=up**nd)
    if down > 1 and up == 1:  # Blur, then strided convolution.
        return ndops.conv(upfirdn(x, f, padding=pads), weight, stride=down, groups=groups)
    if up > 1:
        # Transposed convolution with stride `up` == zero-stuff + correlation with the flipped kernel.
        if groups == 1:
            wt = weight.transpose(0, 1)  # [I, O, *k]
        else:
            wt = weight.reshape(groups, o // groups, i, *k).transpose(1, 2).reshape(groups * i, o // groups, *k)
        wt = wt.flip(list(range(2, 2 + nd)))
        rest = [(p0 - (kk - 1), p1 - (kk - up)) for (p0, p1), kk in zip(pads, k)]
        crop = [max(min(-p0, -p1), 0) for p0, p1 in rest]  # let the transposed conv do a symmetric crop
        y = ndops.conv_transpose(x, wt, stride=up, padding=crop, groups=groups)
        y = upfirdn(y, f, padding=[(p0 + c, p1 + c) for (p0, p1), c in zip(rest, crop)], gain=up**nd)
        return upfirdn(y, f, down=down) if down > 1 else y
    if all(p0 == p1 >= 0 for p0, p1 in pads):  # Plain convolution with symmetric padding.
        return ndops.conv(x, weight, padding=[p0 for p0, _ in pads], groups=groups)
    return ndops.conv(ndops.pad(x, pads), weight, groups=groups)


def conv_resample_reference(x, weight, f=None, up=1, down=1, padding=0, groups=1, padding_mode="zeros"):
    """Slow, literal ``conv_resample``: zero-stuff + pad + dense filter, valid conv, dense filter + decimate."""
    nd, k, pads, f = _check_conv_args(x, weight, groups, up, down, padding, f, padding_mode)
    pads = _resample_pads(pads, 1 if f is None else f.numel(), up, down)
    y = upfirdn_reference(x, f if up > 1 else None, up=up, padding=pads, gain=up**nd, padding_mode=padding_mode)
    y = ndops.conv(y, weight.to(x.dtype), groups=groups)
    return upfirdn_reference(y, f, down=down) if down > 1 else y


def _check_modconv_args(x, weight, styles):
    nd = ndops.check_nd(x)
    if not isinstance(weight, torch.Tensor) or weight.ndim != nd + 2 or weight.shape[1] != x.shape[1]:
        shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(f"weight: expected [O, {x.shape[1]}, *k] with {nd} kernel axes for x {tuple(x.shape)}, got {shape}")
    if not isinstance(styles, torch.Tensor) or tuple(styles.shape) != (x.shape[0], x.shape[1]):
        shape = tuple(styles.shape) if isinstance(styles, torch.Tensor) else type(styles).__name__
        raise ValueError(f"styles: expected [N, I] = [{x.shape[0]}, {x.shape[1]}] for x {tuple(x.shape)}, got {shape}")
    return nd


def _check_noise(noise, shape):
    """Noise must broadcast to the output's shape ``[N, O, *S']`` without changing it."""
    try:
        ok = isinstance(noise, torch.Tensor) and torch.broadcast_shapes(noise.shape, shape) == shape
    except RuntimeError:
        ok = False
    if not ok:
        got = tuple(noise.shape) if isinstance(noise, torch.Tensor) else type(noise).__name__
        raise ValueError(f"noise: expected a tensor that broadcasts to the output {tuple(shape)}, got {got}")


def _add_noise(x, noise):
    """``x + noise`` (``_check_noise``)."""
    if noise is None:
        return x
    _check_noise(noise, x.shape)
    return x + noise.to(x.dtype)


def choose_fused(x) -> bool:
    """Whether the fused modulated convolution is the faster path for ``x``.

    On CPU the unfused path wins everywhere measured (training steps and generation, 2D and 3D, float32 and
    bfloat16; the figures are in benchmarks/RESULTS.md). Elsewhere the choice follows StyleGAN2-ADA: fused for
    float32 inference, unfused for training (with gradients) and reduced precision.
    """
    kind = x.device.type
    autocast = torch.amp.is_autocast_available(kind) and torch.is_autocast_enabled(kind)
    return _fused_rule(kind, x.dtype, torch.is_grad_enabled(), autocast)


def _fused_rule(device_type, dtype, grad_enabled, autocast) -> bool:
    if device_type == "cpu":
        return False
    return not grad_enabled and dtype == torch.float32 and not autocast  # autocast: float32 in, reduced compute


def modulated_conv(x, weight, styles, noise=None, up=1, down=1, padding=0, resample_filter=None,
                   demodulate=True, fused=None, padding_mode="zeros"):
    """StyleGAN2 modulated convolution with weight demodulation.

    x: ``[N, I, *S]``; weight: ``[O, I, *k]``; styles: ``[N, I]``; noise: broadcastable to ``[N, O, *S']``,
    added after demodulation. ``fused=True`` runs one grouped convolution (groups = N) with per-sample
    weights; ``fused=False`` scales the activations, runs one shared-weight convolution and scales the
    outputs; ``None`` picks the faster one (``choose_fused``). All equal ``modulated_conv_reference``.
    Returns ``[N, O, *S']``.
    """
    nd = _check_modconv_args(x, weight, styles)
    if fused is None:
        fused = choose_fused(x)
    n = x.shape[0]
    o, i, *k = weight.shape
    ones = [1] * nd

    if x.dtype == torch.float16 and demodulate:
        # Pre-normalise so that the fp16 products below cannot overflow; demodulation undoes the scale.
        spatial = list(range(1, weight.ndim))
        weight = weight * (1 / math.sqrt(i * math.prod(k)) / weight.abs().amax(dim=spatial, keepdim=True))
        styles = styles / styles.abs().amax(dim=1, keepdim=True)

    dcoefs = _demodulation(weight, styles) if demodulate else None

    if not fused:
        x = x * styles.to(x.dtype).reshape(n, i, *ones)
        x = conv_resample(x, weight, resample_filter, up, down, padding, padding_mode=padding_mode)
        if demodulate:
            x = x * dcoefs.to(x.dtype).reshape(n, o, *ones)
        return _add_noise(x, noise)

    w = weight.unsqueeze(0) * styles.reshape(n, 1, i, *ones)  # Modulation, eq. 1: [N, O, I, *k]
    if demodulate:
        w = w * dcoefs.to(w.dtype).reshape(n, o, 1, *ones)  # [N, O, I, *k]
    x = x.reshape(1, n * i, *x.shape[2:])  # [1, N*I, *S]
    x = conv_resample(x, w.reshape(n * o, i, *k), resample_filter, up, down, padding, groups=n,
                      padding_mode=padding_mode)
    x = x.reshape(n, o, *x.shape[2:])  # [N, O, *S']
    return _add_noise(x, noise)


def _demodulation(weight, styles):
    """Demodulation, eq. 3: sum over I and k of (w * s)^2 = sum over I of s^2 * (sum over k of w^2), so the
    [N, O, I, *k] modulated weights are never needed for it. In float32 at least (1e-8 is 0 in float16), and
    with elementwise ops that autocast leaves in that precision: ``[N, O]``."""
    full = torch.promote_types(weight.dtype, torch.float32)
    w2 = weight.to(full).square().sum(dim=list(range(2, weight.ndim)))  # [O, I]
    return ((styles.to(full).square().unsqueeze(1) * w2).sum(dim=2) + 1e-8).rsqrt()


#: Activations ``f`` with ``f(x) * g == f(x * g)`` for ``g > 0``, so that the gain folds into the scale and bias.
_HOMOGENEOUS = {"linear": lambda x, a: x, "relu": lambda x, a: x.relu_(),
                "lrelu": lambda x, a: torch.nn.functional.leaky_relu_(x, a)}


def modulated_conv_bias_act(x, weight, styles, bias, noise=None, act="lrelu", alpha=None, gain=None, up=1,
                            padding=0, resample_filter=None, fused=None, padding_mode="zeros"):
    """A StyleGAN2 synthesis layer's convolution and epilogue: ``bias_act(modulated_conv(x, weight, styles,
    noise, demodulate=True), bias, act, alpha, gain)``, the same arguments and result.

    On the unfused path in full precision, with a positive gain and an activation that commutes with it
    (linear, relu, lrelu), the demodulation, noise, bias, activation and gain take three passes over the output
    instead of five: ``act(conv * (dcoefs * g) + bias * g + noise * g)``, the last two in place. Elsewhere
    (fused, reduced precision or autocast, other activations) it is the composition itself.
    """
    spec = _check_act(act)
    g = spec.gain if gain is None else float(gain)
    alpha = spec.alpha if alpha is None else float(alpha)
    nd = _check_modconv_args(x, weight, styles)
    if fused is None:
        fused = choose_fused(x)
    # benchmarks/epilogue.py: 1.4-2.4x on the epilogue in float32, 0.5-0.6x in bfloat16 at most shapes.
    low = x.dtype in (torch.float16, torch.bfloat16) or (torch.is_autocast_enabled(x.device.type)
                                                         and x.device.type in ("cpu", "cuda"))
    if fused or act not in _HOMOGENEOUS or not g > 0 or low:
        y = modulated_conv(x, weight, styles, noise, up=up, padding=padding, resample_filter=resample_filter,
                           demodulate=True, fused=fused, padding_mode=padding_mode)
        return bias_act(y, bias, act=act, alpha=alpha, gain=g)
    n, i, o, ones = x.shape[0], x.shape[1], weight.shape[0], [1] * nd
    if not isinstance(bias, torch.Tensor) or tuple(bias.shape) != (o,):
        got = tuple(bias.shape) if isinstance(bias, torch.Tensor) else type(bias).__name__
        raise ValueError(f"bias: expected a 1-D bias of the {o} output channels, got {got}")
    scale = _demodulation(weight, styles) * g
    y = conv_resample(x * styles.to(x.dtype).reshape(n, i, *ones), weight, resample_filter, up, 1, padding,
                      padding_mode=padding_mode)
    y = torch.addcmul((bias * g).to(y.dtype).reshape(1, o, *ones), y, scale.to(y.dtype).reshape(n, o, *ones))
    if noise is not None:
        _check_noise(noise, y.shape)
        y = y.add_((noise * g).to(y.dtype))
    return _HOMOGENEOUS[act](y, alpha)


def modulated_conv_reference(x, weight, styles, noise=None, up=1, down=1, padding=0, resample_filter=None,
                             demodulate=True, padding_mode="zeros"):
    """Slow, literal modulated convolution: build each sample's weights, then the reference conv per sample."""
    _check_modconv_args(x, weight, styles)
    out = []
    for xs, s in zip(x, styles):
        w = weight * s.reshape(1, -1, *[1] * (weight.ndim - 2))  # w' = w * s over input channels
        if demodulate:
            w = w / torch.sqrt(w.square().flatten(1).sum(1) + 1e-8).reshape(-1, *[1] * (weight.ndim - 1))
        out.append(conv_resample_reference(xs[None], w, resample_filter, up, down, padding,
                                           padding_mode=padding_mode))
    return _add_noise(torch.cat(out), noise)
