"""Thin ``nn.Module``s over ``ndgan.ops``: they own parameters and FIR buffers and call one or two ops.

Equalised learning rate (Karras et al. 2018, ProGAN section 4.1): weights are stored at unit variance and
scaled at run time by ``lr_multiplier / sqrt(fan_in)``. Every spatial layer takes ``spatial_dims`` first and
checks that its input is ``[N, C, *S]`` with that many spatial axes; sizes are per-axis tuples.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import ops
from .ops import nd as ndops

__all__ = [
    "NOISE_MODES",
    "EqualLinear",
    "EqualConv",
    "SynthesisLayer",
    "AdaINLayer",
    "ToOutput",
    "NoiseInjection",
    "MinibatchStd",
    "ChannelNorm",
    "LinearAttention",
]

#: How ``NoiseInjection`` draws its noise: fresh per call, the stored fixed map, or no noise.
NOISE_MODES = ("random", "const", "none")


def _check_spatial_dims(spatial_dims) -> int:
    if not ndops._is_int(spatial_dims) or not 1 <= spatial_dims <= ndops.MAX_ND:
        raise ValueError(f"spatial_dims: expected 1, 2 or 3, got {spatial_dims!r}")
    return int(spatial_dims)


def _check_input(module: nn.Module, x: torch.Tensor, channels: int | None = None) -> None:
    """Raise a ValueError naming the layer if ``x`` is not ``[N, channels, *S]`` of its spatial rank."""
    nd = module.spatial_dims
    if not isinstance(x, torch.Tensor) or x.ndim != nd + 2:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{type(module).__name__}: expected x of shape [N, C, *S] with {nd} spatial axes, got {got}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{type(module).__name__}: expected {channels} input channels, got x {tuple(x.shape)}")


def _check_w(module: nn.Module, w, x, w_dim: int | None = None) -> None:
    """The style input must be one w per sample: ``[N, w_dim]`` (default: the input size of ``module.affine``)."""
    w_dim = module.affine.in_features if w_dim is None else w_dim
    if not isinstance(w, torch.Tensor) or w.ndim != 2 or w.shape != (x.shape[0], w_dim):
        got = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
        raise ValueError(f"{type(module).__name__}: expected w of shape [N, w_dim] = [{x.shape[0]}, {w_dim}], got {got}")


def _positive(name, value):
    if not ndops._is_int(value) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return int(value)


def _check_conv_clamp(conv_clamp):
    if conv_clamp is not None and not conv_clamp > 0:
        raise ValueError(f"conv_clamp: expected None or a positive number, got {conv_clamp!r}")
    return conv_clamp


class EqualLinear(nn.Module):
    """Fully connected layer with equalised learning rate: ``[N, in_features] -> [N, out_features]``."""

    def __init__(self, in_features, out_features, bias=True, bias_init=0.0, lr_multiplier=1.0, activation="linear"):
        super().__init__()
        self.in_features = _positive("in_features", in_features)
        self.out_features = _positive("out_features", out_features)
        if not lr_multiplier > 0:
            raise ValueError(f"lr_multiplier: expected a positive number, got {lr_multiplier!r}")
        ops.activation_gain(activation)  # validates the name
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x):
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != self.in_features:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"EqualLinear: expected x of shape [N, {self.in_features}], got {got}")
        w = (self.weight * self.weight_gain).to(x.dtype)
        b = None if self.bias is None else (self.bias * self.bias_gain).to(x.dtype)
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return ops.bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self):
        return f"in={self.in_features}, out={self.out_features}, act={self.activation}"


class EqualConv(nn.Module):
    """Convolution with equalised learning rate, optional FIR up/down-sampling, bias, activation and clamp.

    ``[N, in_channels, *S] -> [N, out_channels, *S']`` with ``S' = S * up // down``.
    """

    def __init__(self, spatial_dims, in_channels, out_channels, kernel_size, bias=True, activation="linear",
                 up=1, down=1, resample_filter=ops.DEFAULT_TAPS, conv_clamp=None, padding_mode="zeros", groups=1):
        super().__init__()
        self.spatial_dims = _check_spatial_dims(spatial_dims)
        self.in_channels = _positive("in_channels", in_channels)
        self.out_channels = _positive("out_channels", out_channels)
        self.groups = _positive("groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups: {groups} must divide in_channels={in_channels} and out_channels={out_channels}")
        self.kernel_size = ndops.parse_factors(kernel_size, self.spatial_dims, "kernel_size")
        self.up, self.down = _positive("up", up), _positive("down", down)
        self.activation = activation
        self.act_gain = ops.activation_gain(activation)
        self.conv_clamp = _check_conv_clamp(conv_clamp)
        self.padding_mode = ndops.check_padding_mode(padding_mode)
        self.padding = [k // 2 for k in self.kernel_size]
        self.register_buffer("resample_filter", ops.setup_filter(resample_filter), persistent=False)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels // groups, *self.kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels // groups * math.prod(self.kernel_size))

    def forward(self, x, gain=1.0):
        _check_input(self, x, self.in_channels)
        x = ops.conv_resample(x, self.weight * self.weight_gain, self.resample_filter, self.up, self.down,
                              self.padding, groups=self.groups, padding_mode=self.padding_mode)
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return ops.bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp)

    def extra_repr(self):
        return (f"spatial_dims={self.spatial_dims}, in={self.in_channels}, out={self.out_channels}, "
                f"kernel={self.kernel_size}, up={self.up}, down={self.down}, act={self.activation}")


class NoiseInjection(nn.Module):
    """Per-position noise with a learned strength (StyleGAN section 3.2): ``x + strength * noise``.

    ``mode='random'`` draws ``[N, 1, *S]`` fresh noise, ``'const'`` uses the fixed map stored with the
    weights (deterministic output), ``'none'`` adds nothing. ``shape`` is the spatial shape of x.
    """

    def __init__(self, spatial_dims, shape):
        super().__init__()
        self.spatial_dims = _check_spatial_dims(spatial_dims)
        self.shape = ndops.parse_factors(shape, self.spatial_dims, "shape")
        self.register_buffer("noise_const", torch.randn(self.shape))
        self.strength = nn.Parameter(torch.zeros([]))

    def forward(self, x, mode="random"):
        _check_input(self, x)
        if mode not in NOISE_MODES:
            raise ValueError(f"noise_mode: expected one of {NOISE_MODES}, got {mode!r}")
        if tuple(x.shape[2:]) != self.shape:
            raise ValueError(f"NoiseInjection: built for spatial shape {self.shape}, got x {tuple(x.shape)}")
        noise = self.sample(x.shape[0], mode, x.device, x.dtype)
        return x if noise is None else x + noise

    def sample(self, n, mode, device, dtype):
        """The scaled noise ``strength * noise`` that ``forward`` adds (``[N or 1, 1, *S]``), or None for 'none'."""
        if mode == "none":
            return None
        if mode == "random":
            noise = torch.randn([n, 1, *self.shape], device=device, dtype=dtype)
        else:
            noise = self.noise_const.to(dtype)
        return noise * self.strength.to(dtype)


class SynthesisLayer(nn.Module):
    """StyleGAN2 synthesis layer: style affine (bias init 1), modulated conv with demodulation, optional
    up-sampling, noise, bias, activation and ``conv_clamp``.

    ``forward(x [N, in_channels, *S], w [N, w_dim]) -> [N, out_channels, *(S*up)]``. ``noise_shape`` (the
    output spatial shape) enables noise injection.
    """

    def __init__(self, spatial_dims, in_channels, out_channels, w_dim, kernel_size=3, up=1, activation="lrelu",
                 resample_filter=ops.DEFAULT_TAPS, conv_clamp=None, noise_shape=None, demodulate=True,
                 padding_mode="zeros"):
        super().__init__()
        self.spatial_dims = _check_spatial_dims(spatial_dims)
        self.in_channels = _positive("in_channels", in_channels)
        self.out_channels = _positive("out_channels", out_channels)
        self.kernel_size = ndops.parse_factors(kernel_size, self.spatial_dims, "kernel_size")
        self.up = _positive("up", up)
        self.activation = activation
        self.act_gain = ops.activation_gain(activation)
        self.conv_clamp = _check_conv_clamp(conv_clamp)
        self.demodulate = bool(demodulate)
        self.padding_mode = ndops.check_padding_mode(padding_mode)
        self.padding = [k // 2 for k in self.kernel_size]
        self.register_buffer("resample_filter", ops.setup_filter(resample_filter), persistent=False)
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, *self.kernel_size))
        self.noise = None if noise_shape is None else NoiseInjection(spatial_dims, noise_shape)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x, w, noise_mode="random", fused=None, gain=1.0):
        _check_input(self, x, self.in_channels)
        _check_w(self, w, x)
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode: expected one of {NOISE_MODES}, got {noise_mode!r}")
        styles = self.affine(w)  # [N, I]
        if self.demodulate and self.conv_clamp is None:  # conv and epilogue in three passes where it can
            noise = None if self.noise is None else self.noise.sample(x.shape[0], noise_mode, x.device, x.dtype)
            return ops.modulated_conv_bias_act(x, self.weight, styles, self.bias, noise, act=self.activation,
                                               gain=self.act_gain * gain, up=self.up, padding=self.padding,
                                               resample_filter=self.resample_filter, fused=fused,
                                               padding_mode=self.padding_mode)
        x = ops.modulated_conv(x, self.weight, styles, up=self.up, padding=self.padding,
                               resample_filter=self.resample_filter, demodulate=self.demodulate, fused=fused,
                               padding_mode=self.padding_mode)
        if self.noise is not None:
            x = self.noise(x, noise_mode)
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return ops.bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp)

    def extra_repr(self):
        return (f"spatial_dims={self.spatial_dims}, in={self.in_channels}, out={self.out_channels}, "
                f"kernel={self.kernel_size}, up={self.up}, act={self.activation}")


class AdaINLayer(nn.Module):
    """StyleGAN's style layer (Karras et al. 2019, figure 1b): conv (an FIR up-conv with ``up=2``), noise,
    bias, activation and ``conv_clamp``, then AdaIN (eq. 1) with the style ``(y_s, y_b)`` from two affines of w.

    ``forward(x [N, in_channels, *S], w [N, w_dim]) -> [N, out_channels, *(S*up)]``. ``conv=False`` is the
    base block's first layer, on the learned constant: no convolution, so in and out channels agree.
    ``noise_shape`` (the output spatial shape) enables noise injection.
    """

    def __init__(self, spatial_dims, in_channels, out_channels, w_dim, kernel_size=3, up=1, activation="lrelu",
                 resample_filter=ops.DEFAULT_TAPS, conv_clamp=None, noise_shape=None, padding_mode="zeros",
                 conv=True):
        super().__init__()
        self.spatial_dims = _check_spatial_dims(spatial_dims)
        self.in_channels = _positive("in_channels", in_channels)
        self.out_channels = _positive("out_channels", out_channels)
        self.up = _positive("up", up)
        if not isinstance(conv, bool):
            raise ValueError(f"conv: expected True or False, got {conv!r}")
        if not conv and (in_channels != out_channels or up != 1):
            raise ValueError(f"conv: a layer without a convolution keeps its input, so in_channels must equal "
                             f"out_channels and up be 1; got {in_channels}, {out_channels} and up={up}")
        self.activation = activation
        self.act_gain = ops.activation_gain(activation)
        self.conv_clamp = _check_conv_clamp(conv_clamp)
        self.conv = EqualConv(spatial_dims, in_channels, out_channels, kernel_size, bias=False, up=up,
                              resample_filter=resample_filter, padding_mode=padding_mode) if conv else None
        self.noise = None if noise_shape is None else NoiseInjection(spatial_dims, noise_shape)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.affine_scale = EqualLinear(w_dim, out_channels, bias_init=1)  # y_s: the identity style at init
        self.affine_bias = EqualLinear(w_dim, out_channels, bias_init=0)  # y_b

    def forward(self, x, w, noise_mode="random", fused=None, gain=1.0):
        """``fused`` keeps ``SynthesisLayer``'s call; there is no modulated conv to fuse, so None or False only."""
        _check_input(self, x, self.in_channels)
        _check_w(self, w, x, self.affine_scale.in_features)
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode: expected one of {NOISE_MODES}, got {noise_mode!r}")
        if fused not in (None, False):
            raise ValueError(f"fused: AdaIN layers have no modulated convolution to fuse (that is style_block "
                             f"'demod'); pass None or False, got {fused!r}")
        if self.conv is not None:
            x = self.conv(x)
        if self.noise is not None:
            x = self.noise(x, noise_mode)
        x = ops.bias_act(x, self.bias, act=self.activation, gain=self.act_gain, clamp=self.conv_clamp)
        x = ops.adain(x, self.affine_scale(w), self.affine_bias(w))
        return x if gain == 1 else x * gain

    def extra_repr(self):
        k = self.conv.kernel_size if self.conv is not None else None
        return (f"spatial_dims={self.spatial_dims}, in={self.in_channels}, out={self.out_channels}, "
                f"kernel={k}, up={self.up}, act={self.activation}")


class ToOutput(nn.Module):
    """StyleGAN2's tRGB generalised to any number of output channels (RGB images, "DC" data channels).

    A modulated ``kernel_size`` (default 1) conv without demodulation, styles scaled by
    ``1/sqrt(in_channels * prod(kernel))``, plus bias: ``[N, in_channels, *S] -> [N, out_channels, *S]``.
    """

    def __init__(self, spatial_dims, in_channels, out_channels, w_dim, kernel_size=1, conv_clamp=None,
                 padding_mode="zeros"):
        super().__init__()
        self.spatial_dims = _check_spatial_dims(spatial_dims)
        self.in_channels = _positive("in_channels", in_channels)
        self.out_channels = _positive("out_channels", out_channels)
        self.kernel_size = ndops.parse_factors(kernel_size, self.spatial_dims, "kernel_size")
        self.conv_clamp = _check_conv_clamp(conv_clamp)
        self.padding_mode = ndops.check_padding_mode(padding_mode)
        self.padding = [k // 2 for k in self.kernel_size]
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, *self.kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels * math.prod(self.kernel_size))

    def forward(self, x, w, fused=None):
        _check_input(self, x, self.in_channels)
        _check_w(self, w, x)
        styles = self.affine(w) * self.weight_gain
        x = ops.modulated_conv(x, self.weight, styles, padding=self.padding, demodulate=False, fused=fused,
                               padding_mode=self.padding_mode)
        return ops.bias_act(x, self.bias, clamp=self.conv_clamp)


class MinibatchStd(nn.Module):
    """Append minibatch standard-deviation channels: ``[N, C, *S] -> [N, C + num_channels, *S]``."""

    def __init__(self, spatial_dims, group_size=4, num_channels=1):
        super().__init__()
        self.spatial_dims = _check_spatial_dims(spatial_dims)
        self.group_size = None if group_size is None else _positive("group_size", group_size)
        self.num_channels = _positive("num_channels", num_channels)

    def forward(self, x):
        _check_input(self, x)
        return ops.minibatch_std(x, self.group_size, self.num_channels)


class ChannelNorm(nn.Module):
    """Layer norm over channels at every position, with a learned per-channel scale and shift."""

    def __init__(self, spatial_dims, channels, eps=1e-5):
        super().__init__()
        self.spatial_dims = _check_spatial_dims(spatial_dims)
        self.channels = _positive("channels", channels)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        _check_input(self, x, self.channels)
        shape = [1, -1] + [1] * self.spatial_dims
        return ops.channel_norm(x, self.eps) * self.weight.reshape(shape) + self.bias.reshape(shape)


class LinearAttention(nn.Module):
    """Residual linear-attention block plus feed-forward, each pre-normalised (lucidrains' StyleGAN2).

    Queries from a 1x1 conv; keys and values from a depthwise ``kv_kernel`` conv followed by a 1x1 conv;
    attention over all positions in linear memory; then a 1x1 feed-forward. ``[N, C, *S] -> [N, C, *S]``.
    """

    def __init__(self, spatial_dims, channels, heads=8, dim_head=64, kv_kernel=3, ff_mult=2, padding_mode="zeros"):
        super().__init__()
        self.spatial_dims = sd = _check_spatial_dims(spatial_dims)
        self.channels = _positive("channels", channels)
        self.heads = _positive("heads", heads)
        inner = self.heads * _positive("dim_head", dim_head)
        hidden = self.channels * _positive("ff_mult", ff_mult)
        self.norm_attn = ChannelNorm(sd, channels)
        self.to_q = EqualConv(sd, channels, inner, 1, bias=False)
        self.kv_depthwise = EqualConv(sd, channels, channels, kv_kernel, bias=False, groups=channels,
                                      padding_mode=padding_mode)
        self.to_kv = EqualConv(sd, channels, 2 * inner, 1, bias=False)
        self.to_out = EqualConv(sd, inner, channels, 1)
        self.norm_ff = ChannelNorm(sd, channels)
        self.ff_hidden = EqualConv(sd, channels, hidden, 1, activation="lrelu")
        self.ff_out = EqualConv(sd, hidden, channels, 1)

    def forward(self, x):
        _check_input(self, x, self.channels)
        dtype = x.dtype  # attention runs in float32 at least: the norms' backward overflows in float16
        x = x.to(torch.promote_types(dtype, torch.float32))
        h = self.norm_attn(x)
        k, v = self.to_kv(self.kv_depthwise(h)).chunk(2, dim=1)
        a = ops.linear_attention(self.to_q(h), k, v, heads=self.heads)  # [N, inner, *S]
        x = x + self.to_out(ops.bias_act(a, act="gelu"))
        return (x + self.ff_out(self.ff_hidden(self.norm_ff(x)))).to(dtype)
