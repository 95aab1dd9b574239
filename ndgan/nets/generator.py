"""StyleGAN2 generator for any number of spatial dimensions (Karras et al. 2020, config F; section 4.1 and
figure 7 for the skip / residual architectures), following StyleGAN2-ADA's block structure; or, with
``style_block='adain'``, StyleGAN's style block (Karras et al. 2019, section 2, eq. 1)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import ops
from ..layers import NOISE_MODES, AdaINLayer, EqualConv, LinearAttention, SynthesisLayer, ToOutput
from ..ops.check import check_choice, check_int
from .common import DEFAULT_FP16_DTYPE, REDUCED_DTYPES, check_attn_res, check_common, check_progressive, reduced_blocks
from .growing import GrowthState, fade, to_full
from .mapping import MappingNetwork
from .shapes import block_channels, resolve_pyramid

#: The style block: StyleGAN2's modulated conv with weight demodulation, or StyleGAN's conv followed by AdaIN.
STYLE_BLOCKS = ("demod", "adain")


def _check_fused(fused) -> None:
    if fused not in (None, False):
        raise ValueError(f"fused: style_block 'adain' has no modulated convolution to fuse (that is 'demod'); "
                         f"pass None or False, got {fused!r}")


class SynthesisBlock(nn.Module):
    """One resolution: (up-conv,) conv, optional attention, and the output branch (skip architecture).

    ``style_block='demod'``: StyleGAN2's layers, the output layer modulated by a w of its own. ``'adain'``:
    StyleGAN's, two AdaIN layers in every block (the base block's first one on the constant, without a conv)
    and a plain 1x1 output conv that takes no w. Call the output layer as ``to_output(x, w_iter, fused)``.
    """

    def __init__(self, spatial_dims, in_channels, out_channels, w_dim, shape, img_channels, is_last, architecture,
                 dtype, conv_clamp, attention, attn_heads, padding_mode, resample_filter, use_noise=True,
                 style_block="demod", has_output=False):
        super().__init__()
        check_choice("style_block", style_block, STYLE_BLOCKS)
        self.in_channels, self.architecture, self.dtype, self.padding_mode = in_channels, architecture, dtype, padding_mode
        self.style_block = style_block
        common = dict(conv_clamp=conv_clamp, padding_mode=padding_mode, resample_filter=resample_filter,
                      noise_shape=shape if use_noise else None)
        layer = AdaINLayer if style_block == "adain" else SynthesisLayer
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, *shape))
            if style_block == "adain":  # StyleGAN's base block styles the constant itself first
                self.conv0 = AdaINLayer(spatial_dims, out_channels, out_channels, w_dim, conv=False, **common)
        else:
            self.conv0 = layer(spatial_dims, in_channels, out_channels, w_dim, up=2, **common)
        self.conv1 = layer(spatial_dims, out_channels, out_channels, w_dim, **common)
        self.attn = LinearAttention(spatial_dims, out_channels, heads=attn_heads, dim_head=max(out_channels // attn_heads, 1),
                                    padding_mode=padding_mode) if attention else None
        self.torgb = None
        if is_last or architecture == "skip" or has_output:  # has_output: a level of progressive growing
            if style_block == "adain":  # StyleGAN's output layer: 1x1, linear, no style
                self.torgb = EqualConv(spatial_dims, out_channels, img_channels, 1, conv_clamp=conv_clamp,
                                       padding_mode=padding_mode)
            else:
                self.torgb = ToOutput(spatial_dims, out_channels, img_channels, w_dim, conv_clamp=conv_clamp,
                                      padding_mode=padding_mode)
        if in_channels and architecture == "resnet":
            self.skip = EqualConv(spatial_dims, in_channels, out_channels, 1, bias=False, up=2,
                                  resample_filter=resample_filter, padding_mode=padding_mode)
        self.register_buffer("resample_filter", ops.setup_filter(resample_filter), persistent=False)
        # ws consumed: one per style layer, and one for demod's output layer (AdaIN's takes none)
        self.num_conv = 1 if in_channels == 0 and style_block == "demod" else 2
        self.num_torgb = int(self.torgb is not None and style_block == "demod")

    def forward(self, x, img, ws, noise_mode="random", fused=None, output=True):
        """x ``[N, in, *S/2]`` (None for the first block), img ``[N, C, *S/2]`` or None, ws ``[N, k, w_dim]``;
        ``output=False`` skips the output layer (a level of progressive growing below the current one)."""
        if self.style_block == "adain":
            _check_fused(fused)
        w_iter = iter(ws.unbind(dim=1))
        full = self.conv1.bias.dtype  # full precision follows the parameters (float32, or float64 in tests)
        dtype = self.dtype or full
        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).expand(ws.shape[0], *self.const.shape)
            if self.style_block == "adain":
                x = self.conv0(x, next(w_iter), noise_mode, fused)
            x = self.conv1(x, next(w_iter), noise_mode, fused)
        elif self.architecture == "resnet":
            x = x.to(dtype)
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x, next(w_iter), noise_mode, fused)
            x = y + self.conv1(x, next(w_iter), noise_mode, fused, gain=math.sqrt(0.5))
        else:
            x = x.to(dtype)
            x = self.conv0(x, next(w_iter), noise_mode, fused)
            x = self.conv1(x, next(w_iter), noise_mode, fused)
        if self.attn is not None:
            x = self.attn(x)
        if img is not None:
            img = ops.upsample(img, self.resample_filter, padding_mode=self.padding_mode)
        if self.torgb is not None and output:
            y = self.to_output(x, w_iter, fused).to(full)  # the image accumulates in full precision
            img = y if img is None else img + y
        return x, img

    def to_output(self, x, w_iter, fused=None):
        """The output layer on this block's features ``x [N, out, *S] -> [N, img_channels, *S]``: demod's
        ``ToOutput`` takes the next w of ``w_iter``; adain's 1x1 conv takes none (``fused``: None or False)."""
        if self.style_block == "adain":
            _check_fused(fused)
            return self.torgb(x)
        return self.torgb(x, next(w_iter), fused)


class SynthesisNetwork(nn.Module):
    """ws ``[N, num_ws, w_dim]`` -> ``[N, img_channels, *shape]``: a learned constant of ``base_shape``, then
    blocks that double every axis. Block i uses ``ws[:, k_i : k_i + num_conv + num_torgb]``; a block's
    output branch shares its w with the next block's first conv, as in StyleGAN2. With ``style_block='adain'``
    every block takes two ws and the output layers none: ``num_ws = 2 * len(blocks)``."""

    def __init__(self, spatial_dims, shape, img_channels, w_dim=512, channel_base=32768, channel_max=512,
                 architecture="skip", base_shape=None, conv_clamp=None, num_fp16_res=0, fp16_dtype=DEFAULT_FP16_DTYPE,
                 attn_res=(), attn_heads=1, padding_mode="zeros", resample_filter=ops.DEFAULT_TAPS, output_clamp=None,
                 use_noise=True, style_block="demod", progressive=False):
        super().__init__()
        check_common(architecture, fp16_dtype, img_channels)
        check_progressive(progressive, architecture)
        self.style_block = check_choice("style_block", style_block, STYLE_BLOCKS)
        if output_clamp is not None and (isinstance(output_clamp, bool) or not isinstance(output_clamp, (int, float))
                                         or not output_clamp > 0):
            raise ValueError(f"output_clamp: expected null or a positive number c (the output is clipped to "
                             f"[-c, c], the range of clipped data), got {output_clamp!r}")
        self.output_clamp = None if output_clamp is None else float(output_clamp)
        if not isinstance(use_noise, bool):
            raise ValueError(f"use_noise: expected true or false, got {use_noise!r}")
        self.use_noise = use_noise
        self.shapes = resolve_pyramid(spatial_dims, shape, base_shape)
        self.spatial_dims, self.shape, self.img_channels, self.w_dim = spatial_dims, self.shapes[-1], img_channels, w_dim
        channels = block_channels(self.shapes, channel_base, channel_max)
        reduced = reduced_blocks(len(self.shapes), num_fp16_res)
        if style_block == "adain" and num_fp16_res > 0 and fp16_dtype == "float16":
            raise ValueError(f"num_fp16_res: float16 blocks rely on the modulated conv's pre-normalisation "
                             f"against overflow, which style_block 'adain' lacks; use fp16_dtype bfloat16 or "
                             f"num_fp16_res 0, got num_fp16_res {num_fp16_res} with fp16_dtype float16")
        attn_res = check_attn_res(attn_res, self.shapes, attn_heads)
        self.blocks = nn.ModuleList()
        for i, s in enumerate(self.shapes):
            self.blocks.append(SynthesisBlock(
                spatial_dims, channels[i - 1] if i else 0, channels[i], w_dim, s, img_channels,
                is_last=i == len(self.shapes) - 1, architecture=architecture,
                dtype=REDUCED_DTYPES[fp16_dtype] if i in reduced else None, conv_clamp=conv_clamp,
                attention=max(s) in attn_res, attn_heads=attn_heads, padding_mode=padding_mode,
                resample_filter=resample_filter, use_noise=use_noise, style_block=style_block,
                has_output=progressive))
        self.growth = GrowthState(len(self.shapes)) if progressive else None
        self.ws_index = []  # first w of each block
        self.num_ws = 0
        for block in self.blocks:
            self.ws_index.append(self.num_ws)
            self.num_ws += block.num_conv
        self.num_ws += self.blocks[-1].num_torgb

    def forward(self, ws, noise_mode="random", fused=None):
        if not isinstance(ws, torch.Tensor) or ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            got = tuple(ws.shape) if isinstance(ws, torch.Tensor) else type(ws).__name__
            raise ValueError(f"ws: expected [N, num_ws, w_dim] = [N, {self.num_ws}, {self.w_dim}], got {got}")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode: expected one of {NOISE_MODES}, got {noise_mode!r}")
        if self.style_block == "adain":
            _check_fused(fused)
        if self.growth is not None:
            img = self._grown(ws, noise_mode, fused)
        else:
            x = img = None
            for block, start in zip(self.blocks, self.ws_index):
                x, img = block(x, img, ws.narrow(1, start, block.num_conv + block.num_torgb), noise_mode, fused)
        if self.output_clamp is not None:  # data clipped to a range (energy walls at +1) have exact values there
            img = img.clamp(-self.output_clamp, self.output_clamp)
        return img


    def _grown(self, ws, noise_mode, fused):
        """Progressive growing: the blocks up to the current level; its output, blended during the fade with
        the FIR up-sampled output of the level below, copied up to the full shape."""
        level, alpha = self.growth.level, self.growth.alpha
        x = low = img = None
        for i, (block, start) in enumerate(zip(self.blocks[:level + 1], self.ws_index)):
            fading = i == level - 1 and alpha < 1
            x, img = block(x, None, ws.narrow(1, start, block.num_conv + block.num_torgb), noise_mode, fused,
                           output=i == level or fading)
            low = img if fading else low
        if low is not None:
            img = fade(low, img, alpha, self.blocks[0].resample_filter, self.blocks[0].padding_mode)
        return to_full(img, 2 ** (len(self.blocks) - 1 - level))


class Generator(nn.Module):
    """StyleGAN2 generator: ``G(z [N, z_dim], c [N, c_dim]) -> [N, channels, *shape]``.

    ``G.mapping(z, c, truncation_psi, truncation_cutoff)`` gives ``ws [N, num_ws, w_dim]`` and
    ``G.synthesis(ws, noise_mode)`` the output, for style mixing and projection. ``G.init_kwargs`` is the
    plain dict of constructor arguments that rebuilds the network (``Generator(**G.init_kwargs)``).
    ``style_block``: ``'demod'`` (StyleGAN2's modulated conv) or ``'adain'`` (StyleGAN's conv + AdaIN).
    """

    def __init__(self, spatial_dims, shape, channels, z_dim=512, w_dim=512, c_dim=0, mapping_layers=8,
                 channel_base=32768, channel_max=512, architecture="skip", base_shape=None, conv_clamp=None,
                 num_fp16_res=0, fp16_dtype=DEFAULT_FP16_DTYPE, attn_res=(), attn_heads=1, padding_mode="zeros",
                 resample_filter=ops.DEFAULT_TAPS, mapping_lr_multiplier=0.01, w_avg_beta=0.995, output_clamp=None,
                 use_noise=True, continuous_labels=False, style_block="demod", progressive=False):
        super().__init__()
        if resample_filter is None:
            resample_filter = ops.DEFAULT_TAPS
        check_common(architecture, fp16_dtype, channels)
        check_int("z_dim", z_dim, 1)
        check_int("w_dim", w_dim, 1)
        self.synthesis = SynthesisNetwork(
            spatial_dims, shape, channels, w_dim, channel_base, channel_max, architecture, base_shape, conv_clamp,
            num_fp16_res, fp16_dtype, attn_res, attn_heads, padding_mode, resample_filter, output_clamp, use_noise,
            style_block=style_block, progressive=progressive)
        self.spatial_dims, self.shape, self.channels = spatial_dims, self.synthesis.shape, channels
        self.z_dim, self.w_dim, self.c_dim, self.num_ws = z_dim, w_dim, c_dim, self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, mapping_layers,
                                      lr_multiplier=mapping_lr_multiplier, w_avg_beta=w_avg_beta,
                                      continuous_labels=continuous_labels)
        # Plain data that rebuilds this network (checkpoints store it); made after validation.
        self.init_kwargs = dict(
            spatial_dims=spatial_dims, shape=self.shape, channels=channels, z_dim=z_dim, w_dim=w_dim, c_dim=c_dim,
            mapping_layers=mapping_layers, channel_base=channel_base, channel_max=channel_max,
            architecture=architecture, base_shape=self.synthesis.shapes[0], conv_clamp=conv_clamp,
            num_fp16_res=num_fp16_res, fp16_dtype=fp16_dtype, attn_res=tuple(attn_res), attn_heads=attn_heads,
            padding_mode=padding_mode, resample_filter=tuple(float(t) for t in resample_filter),
            mapping_lr_multiplier=mapping_lr_multiplier, w_avg_beta=w_avg_beta,
            output_clamp=self.synthesis.output_clamp, use_noise=use_noise,
            continuous_labels=bool(continuous_labels), style_block=style_block, progressive=bool(progressive))

    def forward(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode="random", fused=None,
                update_w_avg=None):
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff, update_w_avg)
        return self.synthesis(ws, noise_mode, fused)
