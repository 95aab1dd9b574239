"""What the generator and the discriminator share: their architectures and reduced-precision types, the
checks of their common arguments, and building both from a training config."""

from __future__ import annotations

import torch

from ..ops.check import ConfigError, check_choice, check_int

ARCHITECTURES = ("orig", "skip", "resnet")
REDUCED_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}
#: The reduced-precision type of the top ``num_fp16_res`` blocks, here and in the config (``G.fp16_dtype``):
#: bfloat16 needs no loss scaling and runs on CPUs; StyleGAN2-ADA's float16 is one setting away.
DEFAULT_FP16_DTYPE = "bfloat16"


def float16_in_float32(net) -> None:
    """Run ``net``'s float16 blocks (``num_fp16_res``) in full precision from now on, as NVIDIA's
    ``force_fp32``: float16 on a CPU is slow and inexact. ``init_kwargs`` keep the model's own setting."""
    for block in getattr(net, "synthesis", net).blocks:
        if block.dtype == torch.float16:
            block.dtype = None  # full precision follows the parameters


def check_common(architecture, fp16_dtype, channels) -> None:
    """The arguments every network takes, checked with one-line messages naming them."""
    check_choice("architecture", architecture, ARCHITECTURES)
    check_choice("fp16_dtype", fp16_dtype, REDUCED_DTYPES)
    check_int("channels", channels, 1, hint="(3 for RGB, 2 for the energy grids)")


def check_progressive(progressive, architecture) -> None:
    """Progressive growing is StyleGAN's (configs A to D): each resolution's own output or input layer on the
    plain ``orig`` networks."""
    if not isinstance(progressive, bool):
        raise ValueError(f"progressive: expected true or false, got {progressive!r}")
    if progressive and architecture != "orig":
        raise ValueError(f"architecture: progressive growing (train.growing) grows StyleGAN's plain networks; "
                         f"set G.architecture and D.architecture to orig, or turn train.growing off")


def reduced_blocks(num_blocks, num_fp16_res, name="num_fp16_res"):
    """Indices of the top ``num_fp16_res`` blocks that run in reduced precision (never the base block)."""
    check_int(name, num_fp16_res, 0)
    return {i for i in range(num_blocks) if i >= max(num_blocks - num_fp16_res, 1)}


def check_attn_res(attn_res, shapes, attn_heads, name="attn_res"):
    """Attention resolutions are block sizes (largest side) of this network."""
    sizes = [max(s) for s in shapes]
    if not isinstance(attn_res, (list, tuple)) or not all(isinstance(r, int) for r in attn_res):
        raise ValueError(f"{name}: expected a list of block resolutions (ints) from {sizes}, got {attn_res!r}")
    check_int("attn_heads", attn_heads, 1)
    attn_res = tuple(attn_res)
    bad = [r for r in attn_res if r not in sizes]
    if bad:
        raise ValueError(f"{name}: {bad} are not block resolutions of this network; choose from {sizes}")
    return attn_res


def build_networks(cfg, c_dim: int, continuous_labels: bool = False):
    """G and D for a training config (``cfg.data``, ``cfg.G``, ``cfg.D``) and ``c_dim`` labels (real-valued ones
    with ``continuous_labels``); a constructor's complaint about an argument becomes a ValueError naming its
    config key (``G.w_dim``, ``data.shape``)."""
    from .discriminator import Discriminator
    from .generator import Generator

    nd, d = len(cfg.data.shape), cfg.data
    padding_mode = "circular" if d.periodic else "zeros"
    nets = []
    for section, cls in (("G", Generator), ("D", Discriminator)):
        kwargs = vars(getattr(cfg, section))
        if section == "D" and getattr(cfg.train, "growing", False):  # D grows from G's base shape
            kwargs = {**kwargs, "base_shape": cfg.G.base_shape}
        try:
            nets.append(cls(nd, d.shape, d.channels, c_dim=c_dim, padding_mode=padding_mode,
                            continuous_labels=continuous_labels and c_dim > 0,
                            progressive=bool(getattr(cfg.train, "growing", False)), **kwargs))
        except ValueError as e:
            name, _, rest = str(e).partition(": ")
            key = {"shape": "data.shape", "channels": "data.channels"}.get(name)
            key = key or (f"{section}.{name}" if name in kwargs else name)
            raise ConfigError(f"{key}: {rest}") from None
    return tuple(nets)
