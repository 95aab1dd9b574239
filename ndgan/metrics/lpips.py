"""LPIPS with the VGG-16 backbone (Zhang et al. 2018), the distance StyleGAN's perceptual path length uses.

Weights come from two plain state dicts given by path, nothing is downloaded: torchvision's VGG-16
(``vgg16-397923af.pth``, keys ``features.N.weight``) and the LPIPS linear heads (``vgg.pth`` of the ``lpips``
package, v0.1, keys ``linK.model.1.weight``); a single file holding both key sets also works.
Distance: unit-normalise the channels of five VGG activations (relu1_2 ... relu5_3) of both images, weight the
squared differences per channel by the heads, average over positions, sum over layers.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .inception import load_state_dict

VGG_NAME, VGG_URL = "vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"
LIN_NAME = "vgg.pth (lpips package, weights/v0.1/vgg.pth)"
# VGG-16 conv layers as (index in torchvision's `features`, in, out); an LPIPS tap follows the last conv of a stage.
_CONVS = [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256), (14, 256, 256),
          (17, 256, 512), (19, 512, 512), (21, 512, 512), (24, 512, 512), (26, 512, 512), (28, 512, 512)]
_TAPS = (2, 7, 14, 21, 28)
_POOL_BEFORE = (5, 10, 17, 24)
# LPIPS input scaling (per RGB channel): x in [-1, 1] -> (x - shift) / scale.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


class LPIPS(nn.Module):
    """``forward(a, b)``: images ``[N, 3, H, W]`` in [-1, 1] -> distances ``[N]``."""

    def __init__(self):
        super().__init__()
        self.features = nn.ModuleDict({str(i): nn.Conv2d(cin, cout, 3, padding=1) for i, cin, cout in _CONVS})
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in (64, 128, 256, 512, 512))
        self.register_buffer("shift", torch.tensor(_SHIFT).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).reshape(1, 3, 1, 1), persistent=False)

    def activations(self, x):
        x, taps = (x - self.shift) / self.scale, []
        for i, _, _ in _CONVS:
            if i in _POOL_BEFORE:
                x = F.max_pool2d(x, 2)
            x = F.relu(self.features[str(i)](x))
            if i in _TAPS:
                taps.append(x)
        return taps

    def forward(self, a, b):
        if a.shape != b.shape or a.ndim != 4 or a.shape[1] != 3:
            raise ValueError(f"LPIPS: expected two images [N, 3, H, W] of one shape, got {tuple(a.shape)} and "
                             f"{tuple(b.shape)}")
        total = 0
        for lin, fa, fb in zip(self.lins, self.activations(a), self.activations(b)):
            fa = fa / (fa.square().sum(1, keepdim=True).sqrt() + 1e-10)  # unit length over channels
            fb = fb / (fb.square().sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((fa - fb).square()).mean(dim=(1, 2, 3))  # [N]
        return total


def load_lpips(paths, device="cpu") -> LPIPS:
    """LPIPS-VGG from ``paths``: one file or a list/comma-separated pair (VGG-16 backbone, LPIPS heads)."""
    if isinstance(paths, str):
        paths = [p for p in paths.split(",") if p]
    elif isinstance(paths, Path):
        paths = [paths]
    merged = {}
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: LPIPS weights file not found; {_how()}")
        merged.update(load_state_dict(path, "LPIPS/VGG-16 weights"))
    state = {}
    for key, value in merged.items():
        if m := re.fullmatch(r"features\.(\d+)\.(weight|bias)", key):
            if int(m[1]) in {i for i, _, _ in _CONVS}:
                state[f"features.{m[1]}.{m[2]}"] = value
        elif m := re.fullmatch(r"lins?\.?(\d)\.(?:model\.1\.)?weight", key):  # lpips' and our own names
            state[f"lins.{m[1]}.weight"] = value
    net = LPIPS()
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        part = "VGG-16 backbone" if missing[0].startswith("features") else "LPIPS linear heads"
        raise ValueError(f"{','.join(map(str, paths))}: no {part} found (e.g. {missing[0]!r}); {_how()}")
    wrong = [k for k in own if state[k].shape != own[k].shape]
    if wrong:
        raise ValueError(f"{','.join(map(str, paths))}: {wrong[0]} has shape {tuple(state[wrong[0]].shape)}, "
                         f"expected {tuple(own[wrong[0]].shape)}; {_how()}")
    net.load_state_dict(state)
    return net.to(device).eval().requires_grad_(False)


def _how() -> str:
    return (f"LPIPS needs two files: torchvision's {VGG_NAME} ({VGG_URL}) and the LPIPS heads {LIN_NAME}; pass "
            f"them as --lpips VGG16.pth,LIN.pth or metrics.lpips: [VGG16.pth, LIN.pth]")
