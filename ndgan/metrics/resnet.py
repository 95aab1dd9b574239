"""A ResNet encoder for any nd (He et al. 2016), built from a MedicalNet-style state dict (Chen et al. 2019,
"Med3D"), for Fréchet distances on volumes.

MedicalNet's 3D ResNets keep the stem (7-wide conv, stride 2, then a stride-2 max pool), stride 2 in stage 2,
and replace the strides of stages 3 and 4 by dilations 2 and 4. The depth, block type (basic or bottleneck),
blocks per stage, input channels, rank (from the stem's weight) and shortcut type (A: zero-padded identity,
B: 1-wide conv + BN) are all read from the state dict's keys, so resnet10 ... resnet200 weights load as they
are (a ``module.`` prefix and the segmentation head ``conv_seg`` are ignored). Features: the mean of the last
stage over all positions, ``[N, 512]`` (basic) or ``[N, 2048]`` (bottleneck). Evaluation only (batch norm uses
the stored statistics).
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import nd as ndops

_STRIDES = (1, 2, 1, 1)
_DILATIONS = (1, 1, 2, 4)


class Conv(nn.Module):
    def __init__(self, weight_shape, stride=1, padding=0, dilation=1):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(weight_shape))
        self.stride, self.padding, self.dilation = stride, padding, dilation

    def forward(self, x):
        return ndops.conv(x, self.weight, stride=self.stride, padding=self.padding, dilation=self.dilation)


class BatchNorm(nn.Module):
    """Batch norm with stored statistics, for any nd (``F.batch_norm`` is rank-agnostic)."""

    def __init__(self, channels):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, 1e-5)


class Block(nn.Module):
    """Basic (two 3-wide convs) or bottleneck (1, 3, 1) residual block; shortcut B is ``downsample``."""

    def __init__(self, nd, cin, planes, bottleneck, stride, dilation, shortcut):
        super().__init__()
        k3, k1, cout = (3,) * nd, (1,) * nd, planes * (4 if bottleneck else 1)
        self.bottleneck, self.stride, self.cout = bottleneck, stride, cout
        if bottleneck:
            self.conv1, self.bn1 = Conv((planes, cin, *k1)), BatchNorm(planes)
            self.conv2 = Conv((planes, planes, *k3), stride, dilation, dilation)
            self.bn2 = BatchNorm(planes)
            self.conv3, self.bn3 = Conv((cout, planes, *k1)), BatchNorm(cout)
        else:
            self.conv1, self.bn1 = Conv((planes, cin, *k3), stride, dilation, dilation), BatchNorm(planes)
            self.conv2, self.bn2 = Conv((planes, planes, *k3), 1, dilation, dilation), BatchNorm(planes)
        self.shortcut = "identity"
        if stride != 1 or cin != cout:
            self.shortcut = shortcut
            if shortcut == "B":
                self.downsample = nn.Sequential(Conv((cout, cin, *k1), stride), BatchNorm(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.bottleneck:
            out = self.bn3(self.conv3(F.relu(out)))
        if self.shortcut == "B":
            skip = self.downsample(x)
        elif self.shortcut == "A":  # subsample, then zero channels up to cout
            skip = x[(slice(None), slice(None)) + (slice(None, None, self.stride),) * (x.ndim - 2)]
            skip = F.pad(skip, (0, 0) * (x.ndim - 2) + (0, self.cout - x.shape[1]))
        else:
            skip = x
        return F.relu(out + skip)


class ResNetEncoder(nn.Module):
    """``forward(x)``: ``[N, in_channels, *S]`` -> ``[N, num_features]`` (mean of the last stage)."""

    def __init__(self, spatial_dims, in_channels=1, blocks=(1, 1, 1, 1), bottleneck=False, shortcut="B"):
        super().__init__()
        nd = spatial_dims
        self.spatial_dims, self.in_channels = nd, in_channels
        self.conv1 = Conv((64, in_channels, *(7,) * nd), 2, 3)
        self.bn1 = BatchNorm(64)
        cin = 64
        for i, (n, stride, dilation) in enumerate(zip(blocks, _STRIDES, _DILATIONS)):
            planes, layer = 64 * 2**i, []
            for j in range(n):
                layer.append(Block(nd, cin, planes, bottleneck, stride if j == 0 else 1, dilation, shortcut))
                cin = layer[-1].cout
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
        self.num_features = cin

    def forward(self, x):
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(f"ResNetEncoder: expected [N, {self.in_channels}, *S] with {self.spatial_dims} spatial "
                             f"axes, got {tuple(x.shape)}")
        x = ndops.max_pool(F.relu(self.bn1(self.conv1(x))), 3, stride=2, padding=1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=tuple(range(2, x.ndim)))


def encoder_from_state_dict(state: dict, path="state dict") -> ResNetEncoder:
    """Build a ``ResNetEncoder`` whose architecture matches ``state`` and load it (strictly)."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(("conv_seg.", "fc.")) and
             not k.endswith("num_batches_tracked")}
    stem = state.get("conv1.weight")
    if stem is None or stem.ndim < 3 or not any(k.startswith("layer4.") for k in state):
        raise ValueError(f"{path}: not a ResNet state dict (expected conv1.weight and layer1..layer4 keys, as in "
                         f"MedicalNet's resnet_10 ... resnet_200 files)")
    blocks = []
    for i in range(1, 5):
        ids = {int(m[1]) for k in state if (m := re.match(rf"layer{i}\.(\d+)\.", k))}
        blocks.append(max(ids) + 1 if ids else 0)
    net = ResNetEncoder(stem.ndim - 2, stem.shape[1], tuple(blocks), bottleneck="layer1.0.conv3.weight" in state,
                        shortcut="B" if any(".downsample." in k for k in state) else "A")
    from .inception import check_keys

    net.load_state_dict(check_keys(net, state, path, "a MedicalNet-style ResNet state dict"))
    return net.eval().requires_grad_(False)
