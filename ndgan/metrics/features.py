"""Feature networks for Fréchet distance, KID, precision/recall and path length, on samples ``[N, C, *S]``
in [-1, 1] as ndgan's data and generators give them.

- ``ImageFeatures``: a 2D network on images (the FID Inception): 3 channels pass as RGB, 1 channel is repeated
  to RGB, any other count is read as C grey images whose features are concatenated.
- ``SliceFeatures``: the same 2D network on slices of volumes, K slices per axis ("2.5D" features).
- ``VolumeFeatures``: an N-d encoder (e.g. a MedicalNet ResNet) on volumes, each sample and channel z-scored
  as MedicalNet's preprocessing does; a one-channel encoder sees every channel separately.
- ``load_features(spec)``: a weights file (Inception, MedicalNet-style ResNet or ndgan's digit classifier,
  recognised by its keys; a ``weights_only`` torch file or safetensors) or an ``nn.Module`` in Python; with
  ``program=True`` only, a ``torch.export`` program (``.pt2``) or TorchScript file, whose code runs.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..io.files import program_archive
from .digits import DigitClassifier, is_classifier_state
from .inception import InceptionV3, check_keys, load_inception, load_state_dict
from .resnet import encoder_from_state_dict


class ImageFeatures(nn.Module):
    """A 2D RGB network on ``[N, C, H, W]`` images with any C -> ``[N, num_features]``."""

    def __init__(self, net: nn.Module, channels: int, name: str):
        super().__init__()
        self.net, self.channels, self.name = net, channels, name
        self.num_features = net.num_features * (1 if channels in (1, 3) else channels)

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"{self.name}: expected images [N, {self.channels}, H, W], got {tuple(x.shape)}")
        if self.channels == 3:
            return self.net(x)
        grey = x.reshape(-1, 1, *x.shape[2:]).expand(-1, 3, -1, -1)  # [N * C, 3, H, W]
        return self.net(grey).reshape(x.shape[0], -1)  # [N, C * F]


class SliceFeatures(nn.Module):
    """A 2D image network on ``slices`` evenly spaced slices per axis of volumes ``[N, C, *S]`` (3 axes)
    -> ``[N, 3, slices, F]``. Slice k of an axis of size n sits at ``floor((k + 0.5) n / slices)``."""

    def __init__(self, images: ImageFeatures, slices: int = 8):
        super().__init__()
        if slices < 1:
            raise ValueError(f"slices: expected at least 1 slice per axis, got {slices}")
        self.images, self.slices = images, slices
        self.num_features, self.name = images.num_features, f"{images.name} on 2D slices"

    def forward(self, x):
        if x.ndim != 5:
            raise ValueError(f"{self.name}: expected volumes [N, C, *S] with 3 spatial axes, got {tuple(x.shape)}")
        per_axis = []
        for axis in range(3):
            n = x.shape[2 + axis]
            idx = torch.tensor([int((k + 0.5) * n / self.slices) for k in range(self.slices)], device=x.device)
            s = x.index_select(2 + axis, idx).movedim(2 + axis, 1)  # [N, K, C, *S without the axis]
            per_axis.append(self.images(s.reshape(-1, *s.shape[2:])).reshape(x.shape[0], self.slices, -1))
        return torch.stack(per_axis, 1)  # [N, 3, K, F]


class VolumeFeatures(nn.Module):
    """An N-d encoder on ``[N, C, *S]`` with per-sample, per-channel z-scoring -> ``[N, num_features]``."""

    def __init__(self, encoder: nn.Module, channels: int, name: str):
        super().__init__()
        self.encoder, self.channels, self.name = encoder, channels, name
        self.per_channel = encoder.in_channels == 1 and channels > 1
        if not self.per_channel and encoder.in_channels != channels:
            raise ValueError(f"{name}: the encoder takes {encoder.in_channels} channels, the data has {channels}")
        self.num_features = encoder.num_features * (channels if self.per_channel else 1)

    def forward(self, x):
        if x.ndim != self.encoder.spatial_dims + 2 or x.shape[1] != self.channels:
            raise ValueError(f"{self.name}: expected [N, {self.channels}, *S] with {self.encoder.spatial_dims} "
                             f"spatial axes, got {tuple(x.shape)}")
        axes = tuple(range(2, x.ndim))
        x = (x - x.mean(axes, keepdim=True)) / (x.std(axes, keepdim=True) + 1e-6)
        if self.per_channel:
            return self.encoder(x.reshape(-1, 1, *x.shape[2:])).reshape(x.shape[0], -1)
        return self.encoder(x)


class ModuleFeatures(nn.Module):
    """A user network (an ``nn.Module`` or TorchScript) taking ``[N, C, *S]`` in [-1, 1] -> ``[N, F]``."""

    def __init__(self, net: nn.Module, name: str):
        super().__init__()
        self.net, self.name = net, name
        self.num_features = getattr(net, "num_features", None)

    def forward(self, x):
        out = self.net(x)
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != x.shape[0]:
            raise ValueError(f"{self.name}: a feature network must return [N, F] features, got "
                             f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
        return out


def inception_features(path, channels: int, device="cpu") -> ImageFeatures:
    """The FID Inception (weights from ``path`` or ``$NDGAN_INCEPTION``) for images of ``channels`` channels."""
    return ImageFeatures(load_inception(path, device), channels, "Inception-v3 (FID, pt_inception-2015-12-05)")


def load_features(spec, channels: int, spatial_dims: int, device="cpu", program: bool = False) -> nn.Module:
    """A feature network for samples of ``channels`` channels and ``spatial_dims`` axes from ``spec``: an
    ``nn.Module``, or a file of weights (a torch state dict, read with ``weights_only``, or safetensors) of the
    FID Inception (2D), a MedicalNet-style ResNet or ndgan's digit classifier.

    A network *program* (a ``torch.export`` archive or TorchScript file) runs the file's own code when it is
    loaded and called, so it is loaded only when asked for with ``program=True`` (``--features-program`` /
    ``metrics.features_program``), never because of what a file's bytes look like; with ``program=True``
    nothing else is accepted."""
    if isinstance(spec, nn.Module):
        net = spec if hasattr(spec, "name") else ModuleFeatures(spec, type(spec).__name__)
        return net.to(device).eval().requires_grad_(False)
    path = Path(spec)
    flag = "--features-program / metrics.features_program" if program else "--features / metrics.features"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: feature network file not found ({flag}: expected "
                                + ("a torch.export (.pt2) or TorchScript program)" if program else
                                   "weights of the FID Inception, a MedicalNet-style ResNet or the digit "
                                   "classifier)"))
    kind = program_archive(path)
    if program:
        if kind is None:
            raise ValueError(f"{path}: not a torch.export or TorchScript program; weights files are given as "
                             f"--features / metrics.features")
        if kind == "torch.export program":  # torch.export.save (.pt2): the successor of TorchScript
            net = ModuleFeatures(torch.export.load(str(path)).module(), f"exported program {path.name}")
            return net.to(device).requires_grad_(False)
        net = ModuleFeatures(torch.jit.load(str(path), map_location="cpu"), f"TorchScript {path.name}")
        return net.to(device).eval().requires_grad_(False)
    if kind is not None:
        raise ValueError(f"{path}: a {kind}, not weights; --features / metrics.features load weights only, because "
                         f"loading a program runs its code: if you trust the file, pass it as --features-program "
                         f"/ metrics.features_program")
    state = _read_safetensors(path) if path.suffix == ".safetensors" else load_state_dict(path, "feature network weights")
    if is_classifier_state(state):
        net = DigitClassifier.from_state_dict(state, path)
        if (net.spatial_dims, net.channels) != (spatial_dims, channels):
            raise ValueError(f"{path}: a classifier of {net.channels}-channel data with {net.spatial_dims} axes, the "
                             f"data has {channels} channel(s) and {spatial_dims} axes")
        net.name = f"digit classifier ({path.name})"
    elif any(k.startswith("Mixed_7c.") for k in state):
        if spatial_dims != 2:
            raise ValueError(f"{path}: the Inception is a 2D image network, the data has {spatial_dims} spatial "
                             f"axes; use the fid_slices metric for slices, or a volume encoder")
        inception = InceptionV3()
        inception.load_state_dict(check_keys(inception, state, path, "the FID Inception weights"))
        net = ImageFeatures(inception, channels, f"Inception-v3 ({path.name})")
    else:
        encoder = encoder_from_state_dict(state, path)
        if encoder.spatial_dims != spatial_dims:
            raise ValueError(f"{path}: a {encoder.spatial_dims}-axis encoder, the data has {spatial_dims} axes")
        net = VolumeFeatures(encoder, channels, f"ResNet encoder ({path.name})")
    return net.to(device).eval().requires_grad_(False)


def _read_safetensors(path: Path) -> dict:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise ImportError(f"{path}: reading safetensors needs safetensors: pip install 'ndgan[safetensors]'") from None
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors' own error type for a corrupt or foreign file
        raise ValueError(f"{path}: not a safetensors file of feature network weights ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else 'unreadable'})") from None
