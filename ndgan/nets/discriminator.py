"""StyleGAN2 discriminator for any number of spatial dimensions (Karras et al. 2020, config F: residual
architecture; StyleGAN2-ADA's epilogue and projection conditioning)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import ops
from ..layers import EqualConv, EqualLinear, LinearAttention, MinibatchStd
from ..ops.check import check_int
from .common import DEFAULT_FP16_DTYPE, REDUCED_DTYPES, check_attn_res, check_common, check_progressive, reduced_blocks
from .growing import GrowthState, from_full
from .mapping import MappingNetwork
from .shapes import block_channels, resolve_pyramid


class DiscriminatorBlock(nn.Module):
    """One resolution: (from-output,) optional attention, conv, down-conv, with a residual 1x1 down-conv."""

    def __init__(self, spatial_dims, in_channels, tmp_channels, out_channels, img_channels, architecture, dtype,
                 conv_clamp, attention, attn_heads, padding_mode, resample_filter, has_input=False):
        super().__init__()
        self.in_channels, self.architecture, self.dtype, self.padding_mode = in_channels, architecture, dtype, padding_mode
        common = dict(activation="lrelu", conv_clamp=conv_clamp, padding_mode=padding_mode,
                      resample_filter=resample_filter)
        if in_channels == 0 or architecture == "skip" or has_input:  # has_input: an entry of progressive growing
            self.fromrgb = EqualConv(spatial_dims, img_channels, tmp_channels, 1, **common)
        self.attn = LinearAttention(spatial_dims, tmp_channels, heads=attn_heads,
                                    dim_head=max(tmp_channels // attn_heads, 1),
                                    padding_mode=padding_mode) if attention else None
        self.conv0 = EqualConv(spatial_dims, tmp_channels, tmp_channels, 3, **common)
        self.conv1 = EqualConv(spatial_dims, tmp_channels, out_channels, 3, down=2, **common)
        if architecture == "resnet":
            self.skip = EqualConv(spatial_dims, tmp_channels, out_channels, 1, bias=False, down=2,
                                  resample_filter=resample_filter, padding_mode=padding_mode)
        self.register_buffer("resample_filter", ops.setup_filter(resample_filter), persistent=False)

    def forward(self, x, img):
        dtype = self.dtype or self.conv0.weight.dtype  # full precision follows the parameters
        if x is None or self.architecture == "skip":
            y = self.fromrgb(img.to(dtype))
            x = y if x is None else x.to(dtype) + y
            img = ops.downsample(img, self.resample_filter, padding_mode=self.padding_mode) \
                if self.architecture == "skip" else None
        else:
            x = x.to(dtype)
        if self.attn is not None:
            x = self.attn(x)
        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = y + self.conv1(self.conv0(x), gain=math.sqrt(0.5))
        else:
            x = self.conv1(self.conv0(x))
        return x, img


class DiscriminatorEpilogue(nn.Module):
    """At the base shape: minibatch stddev, 3x3 conv, fully connected, output (projected onto cmap)."""

    def __init__(self, spatial_dims, in_channels, cmap_dim, shape, img_channels, architecture, mbstd_group_size,
                 mbstd_num_channels, conv_clamp, padding_mode):
        super().__init__()
        self.architecture, self.cmap_dim = architecture, cmap_dim
        if architecture == "skip":
            self.fromrgb = EqualConv(spatial_dims, img_channels, in_channels, 1, activation="lrelu")
        self.mbstd = MinibatchStd(spatial_dims, mbstd_group_size, mbstd_num_channels) if mbstd_num_channels else None
        self.conv = EqualConv(spatial_dims, in_channels + mbstd_num_channels, in_channels, 3, activation="lrelu",
                              conv_clamp=conv_clamp, padding_mode=padding_mode)
        self.fc = EqualLinear(in_channels * math.prod(shape), in_channels, activation="lrelu")
        self.out = EqualLinear(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x, img, cmap=None):
        x = x.to(self.conv.weight.dtype)  # the epilogue always runs in full precision
        if self.architecture == "skip":
            x = x + self.fromrgb(img.to(x.dtype))
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.out(self.fc(self.conv(x).flatten(1)))
        if cmap is not None:  # projection discriminator (Miyato & Koyama 2018)
            x = (x * cmap).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)
        return x


class Discriminator(nn.Module):
    """StyleGAN2 discriminator: ``D(x [N, channels, *shape], c [N, c_dim]) -> [N, 1]`` logits.

    Blocks halve every axis from ``shape`` down to the base shape; ``D.init_kwargs`` rebuilds the network.
    A batch must be divisible by ``min(mbstd_group_size, N)`` (as in StyleGAN2-ADA).
    """

    def __init__(self, spatial_dims, shape, channels, c_dim=0, channel_base=32768, channel_max=512,
                 architecture="resnet", base_shape=None, conv_clamp=None, num_fp16_res=0, fp16_dtype=DEFAULT_FP16_DTYPE,
                 mbstd_group_size=4, mbstd_num_channels=1, cmap_dim=None, mapping_layers=8, attn_res=(),
                 attn_heads=1, padding_mode="zeros", resample_filter=ops.DEFAULT_TAPS, continuous_labels=False,
                 progressive=False):
        super().__init__()
        if resample_filter is None:
            resample_filter = ops.DEFAULT_TAPS
        check_common(architecture, fp16_dtype, channels)
        check_progressive(progressive, architecture)
        check_int("c_dim", c_dim, 0)
        check_int("mbstd_group_size", mbstd_group_size, 1, none="(whole batch)")
        check_int("cmap_dim", cmap_dim, 1, none="(the base channels)")
        shapes = resolve_pyramid(spatial_dims, shape, base_shape)
        if len(shapes) < 2:
            raise ValueError(f"shape: {shapes[-1]} equals the base shape; the discriminator needs at least one "
                             f"down-sampling block (use a larger shape or a smaller base_shape)")
        self.spatial_dims, self.shape, self.channels, self.c_dim = spatial_dims, shapes[-1], channels, c_dim
        ch = block_channels(shapes, channel_base, channel_max)  # ch[i]: channels at shapes[i]
        if not isinstance(mbstd_num_channels, int) or mbstd_num_channels < 0 or \
                (mbstd_num_channels and ch[0] % mbstd_num_channels):
            raise ValueError(f"mbstd_num_channels: expected 0 or a divisor of the {ch[0]} channels at the base "
                             f"shape, got {mbstd_num_channels!r}")
        reduced = reduced_blocks(len(shapes), num_fp16_res)
        attn_res = check_attn_res(attn_res, shapes, attn_heads)
        self.cmap_dim = (ch[0] if cmap_dim is None else cmap_dim) if c_dim else 0
        self.blocks = nn.ModuleList()
        for i in range(len(shapes) - 1, 0, -1):  # top resolution first
            self.blocks.append(DiscriminatorBlock(
                spatial_dims, 0 if i == len(shapes) - 1 else ch[i], ch[i], ch[i - 1], channels, architecture,
                REDUCED_DTYPES[fp16_dtype] if i in reduced else None, conv_clamp,
                attention=max(shapes[i]) in attn_res, attn_heads=attn_heads, padding_mode=padding_mode,
                resample_filter=resample_filter, has_input=progressive))
        self.growth = None
        if progressive:  # an input layer at every resolution, the base one here
            self.growth = GrowthState(len(shapes))
            self.base_input = EqualConv(spatial_dims, channels, ch[0], 1, activation="lrelu", conv_clamp=conv_clamp)
        if c_dim:
            self.mapping = MappingNetwork(0, c_dim, self.cmap_dim, None, mapping_layers, w_avg_beta=None,
                                          continuous_labels=continuous_labels)
        self.epilogue = DiscriminatorEpilogue(spatial_dims, ch[0], self.cmap_dim, shapes[0], channels, architecture,
                                              mbstd_group_size, mbstd_num_channels, conv_clamp, padding_mode)
        # Plain data that rebuilds this network (checkpoints store it); made after validation.
        self.init_kwargs = dict(
            spatial_dims=spatial_dims, shape=self.shape, channels=channels, c_dim=c_dim, channel_base=channel_base,
            channel_max=channel_max, architecture=architecture, base_shape=shapes[0], conv_clamp=conv_clamp,
            num_fp16_res=num_fp16_res, fp16_dtype=fp16_dtype, mbstd_group_size=mbstd_group_size,
            mbstd_num_channels=mbstd_num_channels, cmap_dim=cmap_dim, mapping_layers=mapping_layers,
            attn_res=tuple(attn_res), attn_heads=attn_heads, padding_mode=padding_mode,
            resample_filter=tuple(float(t) for t in resample_filter), continuous_labels=bool(continuous_labels),
            progressive=bool(progressive))

    def forward(self, x, c=None):
        expected = (self.channels, *self.shape)
        if not isinstance(x, torch.Tensor) or x.ndim != self.spatial_dims + 2 or tuple(x.shape[1:]) != expected:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x: expected [N, {', '.join(map(str, expected))}], got {got}")
        if x.shape[0] == 0:
            raise ValueError("x: the batch is empty")
        if self.c_dim and isinstance(c, torch.Tensor) and c.shape[0] != x.shape[0]:
            raise ValueError(f"c: batch size {c.shape[0]} differs from x's {x.shape[0]}")
        cmap = self.mapping(None, c) if self.c_dim else None
        if not self.c_dim and c is not None and (not isinstance(c, torch.Tensor) or c.numel()):
            raise ValueError(f"c: this discriminator is unconditional (c_dim=0), got {type(c).__name__} "
                             f"{tuple(getattr(c, 'shape', ()))}")
        if self.growth is not None:
            return self.epilogue(self._grown(x), None, cmap)
        h, img = None, x
        for block in self.blocks:
            h, img = block(h, img)
        return self.epilogue(h, img, cmap)

    def _grown(self, x):
        """Progressive growing: enter at the current level's block (blended with the input layer one level
        down during its fade), through the blocks below."""
        top, level, alpha = len(self.blocks), self.growth.level, self.growth.alpha
        img = from_full(x, 2 ** (top - level))
        first = top - level  # the block at the level's resolution (none at the base)
        enter = lambda j, y: self.blocks[j].fromrgb(y.to(self.blocks[j].dtype or y.dtype)) if j < top \
            else self.base_input(y)  # noqa: E731
        h = self.blocks[first](None, img)[0] if first < top else enter(first, img)
        if alpha < 1 and first < top:
            low = ops.downsample(img, self.blocks[0].resample_filter, padding_mode=self.blocks[0].padding_mode)
            h = torch.lerp(enter(first + 1, low).to(h.dtype), h, alpha)
        for block in self.blocks[first + 1:]:
            h = block(h, None)[0]
        return h
