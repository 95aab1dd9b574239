"""Training configuration: YAML in, frozen dataclasses out.

One dataclass per section (``data``, ``G``, ``D``, ``train``), typed defaults and a comment per field.
Unknown keys are errors that name the key and the closest valid one; wrong types name the key; overrides
are dotted paths (``train.kimg=5``, ``G.w_dim=256``, ``data.options.n=512``) whose values are parsed as YAML.
Frozen dataclasses plus this small loader do the job without another dependency (OmegaConf would add one
for the same checks).
"""

from __future__ import annotations

import dataclasses
import math
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from ..nets.common import DEFAULT_FP16_DTYPE
from ..ops.check import ConfigError
from ..metrics.settings import MetricSettings, check_names, check_settings


@dataclass(frozen=True)
class DataConfig:
    source: str = "procedural"  # images | hdf5 | nifti | tiff | energy | procedural | digits | cube (ndgan.data.open_dataset)
    path: str | None = None  # file or folder of the data (not used by 'procedural')
    shape: tuple[int, ...] = (32, 32)  # per-axis sample shape; the networks' output shape
    channels: int = 3  # channels per sample (3 RGB, 2 energy grids, 1 MRI)
    periodic: bool = False  # the samples are periodic cells: circular padding in every layer
    options: dict = field(default_factory=dict)  # further keyword options of the source (n, xflip, spacing, ...)
    workers: int = 0  # DataLoader worker processes
    missing_hint: str | None = None  # said when data.path does not exist: what to download, where to put it


@dataclass(frozen=True)
class GConfig:
    z_dim: int = 512  # latent z size
    w_dim: int = 512  # intermediate latent w size
    mapping_layers: int = 8  # fully connected layers in the mapping network
    channel_base: int = 32768  # channels per block: min(channel_base // res, channel_max)
    channel_max: int = 512
    architecture: str = "skip"  # skip | resnet | orig
    base_shape: tuple[int, ...] | None = None  # shape of the learned constant (default: halve shape to >= 4)
    conv_clamp: float | None = None  # clamp conv outputs (256 with float16 blocks)
    num_fp16_res: int = 0  # top blocks in reduced precision
    fp16_dtype: str = DEFAULT_FP16_DTYPE  # float16 | bfloat16 for those blocks
    attn_res: tuple[int, ...] = ()  # block resolutions with a linear-attention block
    mapping_lr_multiplier: float = 0.01
    output_clamp: float | None = None  # clip the output to [-c, c]: for data clipped to that range (energy grids)
    use_noise: bool = True  # per-position noise inputs (StyleGAN2's stochastic detail); false: none, as NVIDIA's use_noise
    style_block: str = "demod"  # demod (StyleGAN2's modulated conv) | adain (StyleGAN's conv + AdaIN, config A)


@dataclass(frozen=True)
class DConfig:
    channel_base: int = 32768
    channel_max: int = 512
    architecture: str = "resnet"  # resnet | skip | orig
    mbstd_group_size: int = 4  # minibatch-stddev group (the per-rank batch must be divisible by it)
    mbstd_num_channels: int = 1
    conv_clamp: float | None = None
    num_fp16_res: int = 0
    fp16_dtype: str = DEFAULT_FP16_DTYPE
    attn_res: tuple[int, ...] = ()


@dataclass(frozen=True)
class TrainConfig:
    kimg: float = 25000.0  # training length in thousands of real samples shown to D
    batch: int = 32  # global batch, split across ranks
    batch_gpu: int | None = None  # per-process micro-batch: gradients summed over batch/world/batch_gpu of them
    freeze_d: int = 0  # FreezeD: D's first K blocks, counted from the input, stay as loaded (fine-tuning)
    seed: int = 0
    g_lr: float = 0.0025
    d_lr: float = 0.0025
    betas: tuple[float, float] = (0.0, 0.99)  # Adam betas (before the lazy-regularisation correction)
    loss: str = "nonsaturating"  # nonsaturating (StyleGAN2) | wgan-gp (the 3D port's)
    r1_gamma: float | Literal["auto"] = "auto"  # R1 weight; auto: 0.0002 * prod(data.shape) / batch
    r1_interval: int = 16  # lazy R1 every this many D steps (0: off)
    gp_weight: float = 10.0  # gradient penalty weight (wgan-gp loss)
    pl_weight: float = 2.0  # path-length regularisation weight (0: off)
    pl_interval: int = 4  # lazy path length every this many G steps
    lazy_reg: bool = True  # false: R1 and path length every step, in the main losses' optimiser steps (StyleGAN, configs A-B)
    pl_batch_shrink: int = 2
    pl_decay: float = 0.01
    style_mixing: float = 0.9  # probability of mixing two latents
    ema_kimg: float | Literal["auto"] = "auto"  # half-life of the generator EMA in kimg; auto: batch * 10 / 32
    ema_rampup: float | None = 0.05  # EMA half-life at most this fraction of the images seen so far
    snapshot_kimg: float = 50.0  # sample grid + checkpoint every this many kimg
    keep_checkpoints: int = 3  # keep the last K checkpoints
    log_steps: int = 20  # stats every this many steps (the only host syncs)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | float32 | bfloat16 | float16 autocast of the main passes (float16: loss scaling)
    compile: bool = False  # torch.compile the main forward passes
    tf32: bool = False  # CUDA: allow TF32 matmuls/convolutions (off: R1 and path length differentiate twice)
    channels_last: bool | Literal["auto"] = "auto"  # conv weights and reals channels-last; auto: on CPU
    cpu_malloc_cache: bool = True  # CPU on Linux/glibc: malloc reuses freed large blocks (ndgan.train.loop.cache_cpu_allocations)
    grid_size: int = 16  # samples in each snapshot grid
    max_rollbacks: int = 3  # non-finite values roll back to the newest checkpoint at most this often, then stop
    rollback_lr_factor: float = 0.5  # learning rates are multiplied by this at every rollback
    metrics: tuple[str, ...] = ()  # metrics evaluated during training (ndgan.metrics.METRICS), on G_ema
    metrics_kimg: float | None = None  # evaluate every this many kimg (None: at every snapshot) and at the end
    metrics_at_start: bool = False  # also evaluate the untrained G_ema before step 0 of a fresh run
    growing: bool = False  # progressive growing (StyleGAN, configs A-D): G and D grow from G.base_shape level by level
    fade_kimg: float = 600.0  # growing: each new level fades in linearly over this many kimg ...
    stable_kimg: float = 600.0  # ... then trains alone this long (the base level: this long from the start)
    growing_batch: tuple[int, ...] | None = None  # growing: the global batch per level, base first (null: train.batch)


@dataclass(frozen=True)
class AugmentConfig:
    mode: str = "ada"  # ada (p adapts to D's overfitting) | fixed (p stays at augment.p) | none
    p: float = 0.0  # the initial (ada) or fixed probability of every op
    target: float = 0.6  # ADA's target for r_t = E[sign(D(real))]
    interval: int = 4  # adjust p every this many steps
    speed_kimg: float = 500.0  # p can move from 0 to 1 in this many kimg
    ops: tuple[str, ...] | None = None  # ndgan.augment.OPS to use (null: ndgan.augment.default_ops of the data)
    flip_axes: tuple[int, ...] | None = None  # spatial axes that may be mirrored (null: all)


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    G: GConfig = field(default_factory=GConfig)
    D: DConfig = field(default_factory=DConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    metrics: MetricSettings = field(default_factory=MetricSettings)  # settings of train.metrics and the CLI
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # adaptive discriminator augmentation


def _closest(key, choices):
    close = difflib.get_close_matches(key, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f"; valid keys: {sorted(choices)}"


def _convert(value, hint, where):
    """Check (and for tuples, convert) ``value`` against the type hint ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected {' or '.join(map(repr, args))}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        words = [a for a in inner if typing.get_origin(a) is Literal]
        if words and isinstance(value, str) and value in sum((typing.get_args(a) for a in words), ()):
            return value
        try:
            return _convert(value, inner[0], where)
        except ConfigError as e:
            if not words:
                raise
            allowed = " or ".join(repr(w) for a in words for w in typing.get_args(a))
            raise ConfigError(f"{e} (or {allowed})") from None
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 2e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):  # .nan would quietly switch terms off, .inf overflow counters
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {value!r} (YAML reads on/off/yes/no as true/false; "
                              f"quote the word)")
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if hint is dict or origin is dict:
        if value is None:  # an empty section in the YAML
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    raise TypeError(f"unsupported config type {hint} at {where}")


def _build(cls, values, where):
    if not isinstance(values, dict):
        raise ConfigError(f"{where or 'the file'}: expected a mapping of sections and keys, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in names:
            raise ConfigError(f"{where}.{key}: unknown key{_closest(key, names)}".lstrip("."))
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        if dataclasses.is_dataclass(hints[f.name]):
            kwargs[f.name] = _build(hints[f.name], values[f.name] or {}, f"{where}.{f.name}".lstrip("."))
        else:
            kwargs[f.name] = _convert(values[f.name], hints[f.name], f"{where}.{f.name}".lstrip("."))
    return cls(**kwargs)


MAX_YAML_VALUES = 100_000  # a config has hundreds; nested aliases ("billion laughs") expand to billions
MAX_YAML_DEPTH = 64


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (YAML leaves it open; PyYAML lets the
    last one win silently)."""


def _construct_mapping(loader, node):
    lines = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            first = lines.get(key)
        except TypeError:  # an unhashable key; PyYAML's own error says so
            break
        if first is not None:
            raise ConfigError(f"line {line}: key {key!r} is given twice in one mapping (first on line {first}); "
                              f"keep one")
        lines[key] = line
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str):
    """Parse YAML ``text`` safely: no duplicate keys, string keys only, at most ``MAX_YAML_VALUES`` values once
    aliases are expanded and ``MAX_YAML_DEPTH`` levels. Raises ConfigError (or yaml.YAMLError) without the
    source's name: callers add it."""
    try:
        value = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except RecursionError:
        raise ConfigError(f"nested more than {MAX_YAML_DEPTH} levels deep; a config has a few") from None
    count, stack = 0, [(value, "", 0)]
    while stack:  # iterative, counting every use of an alias: what any later copy of the data would expand to
        node, where, depth = stack.pop()
        count += 1
        if count > MAX_YAML_VALUES:
            raise ConfigError(f"expands to more than {MAX_YAML_VALUES:,} values (nested aliases?); a config has "
                              f"hundreds")
        if depth > MAX_YAML_DEPTH:
            raise ConfigError(f"{where or 'the document'}: nested more than {MAX_YAML_DEPTH} levels deep; a config "
                              f"has a few")
        if isinstance(node, dict):
            for k, v in node.items():
                if not isinstance(k, str):
                    raise ConfigError(f"{where or 'the top level'}: the key {k!r} is not a string; keys are names "
                                      f"(quote it if it is meant as one)")
                stack.append((v, f"{where}.{k}".lstrip("."), depth + 1))
        elif isinstance(node, list):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(node))
    return value


def apply_overrides(raw: dict, overrides) -> dict:
    """Apply ``KEY=VALUE`` strings (dotted keys, YAML values) to the nested dict ``raw`` (copied)."""
    raw = yaml.safe_load(yaml.safe_dump(raw or {}))  # deep copy of plain data
    for item in overrides or ():
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE with a dotted key, e.g. train.kimg=5")
        key, text = item.split("=", 1)
        try:
            value = load_yaml(text)
        except yaml.YAMLError:
            raise ConfigError(f"override {item!r}: the value is not valid YAML") from None
        except ConfigError as e:
            raise ConfigError(f"override {item!r}: {e}") from None
        node, parts = raw, key.strip().split(".")
        for part in parts[:-1]:
            if node.get(part) is None:  # missing, or left empty in the YAML
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
        node[parts[-1]] = value
    return raw


MAX_EXTENDS = 8


def _merge(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``: sections (mappings) merge key by key, every other value replaces."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def read_config_file(path, _chain=()) -> dict:
    """The plain dict of a YAML config file. A top-level ``extends: OTHER.yaml`` (relative to the file's folder)
    reads that file first and merges this one over it, section by section."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{_chain[-1]}: extends {path}, which does not exist" if _chain
                          else f"{path}: no such config file")
    raw = _read_yaml_file(path)
    if not isinstance(raw, dict) or "extends" not in raw:
        return raw
    base = raw.pop("extends")
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: extends: expected the file name of another config, got {base!r}")
    chain = (*_chain, path)
    target = (path.parent / base).resolve()
    if target in {p.resolve() for p in chain}:
        raise ConfigError(f"{path}: extends {base}, which extends it back (a cycle); remove one of the extends")
    if len(chain) > MAX_EXTENDS:
        raise ConfigError(f"{path}: more than {MAX_EXTENDS} configs extend each other; flatten the chain")
    parent = read_config_file(path.parent / base, chain)
    if not isinstance(parent, dict):
        raise ConfigError(f"{path}: extends {base}, which is not a mapping of sections")
    return _merge(parent, raw)


def _read_yaml_file(path: Path):
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, yaml.reader.ReaderError):
        raise ConfigError(f"{path}: not a text file (it holds bytes that are not UTF-8 text); a config is a "
                          f"YAML text file, e.g. one of configs/*.yaml") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    if raw is None:  # an empty or truncated file would silently train the defaults
        raise ConfigError(f"{path}: the file is empty; start from one of the presets in configs/")
    return raw


def load_config(path=None, overrides=()) -> Config:
    """Read a YAML file (or nothing: the defaults), apply overrides, validate, return a ``Config``. The file
    may start from another with ``extends:`` (``read_config_file``)."""
    path = None if path is None else Path(path)
    raw = {} if path is None else read_config_file(path)
    try:
        cfg = _build(Config, apply_overrides(raw, overrides), "")
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}" if path else str(e)) from None
    return validate(cfg)


def resolve_auto(cfg: Config) -> Config:
    """The config with every ``auto`` replaced by its value (StyleGAN2-ADA's ``auto`` config), after checking
    the batch and the shape the values are made from:

    - ``train.r1_gamma``: ``0.0002 * prod(data.shape) / train.batch``; in 3D this counts voxels, so R1's weight
      per element stays what it is for an image of as many pixels;
    - ``train.ema_kimg``: ``train.batch * 10 / 32``.
    """
    t, d = cfg.train, cfg.data
    if t.batch <= 0:
        raise ConfigError("train.batch: expected a positive batch size")
    if not 1 <= len(d.shape) <= 3 or any(s <= 0 for s in d.shape):
        raise ConfigError(f"data.shape: expected 1 to 3 positive sizes, got {d.shape}")
    values = {}
    if t.r1_gamma == "auto":
        values["r1_gamma"] = 0.0002 * math.prod(d.shape) / t.batch
    if t.ema_kimg == "auto":
        values["ema_kimg"] = t.batch * 10 / 32
    return dataclasses.replace(cfg, train=dataclasses.replace(t, **values)) if values else cfg


PRECISIONS = ("auto", "float32", "bfloat16", "float16")


def native_bfloat16_cpu() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX-512 BF16 or AMX BF16, as torch's CPU capabilities list
    them). oneDNN also runs bfloat16 on other AVX-512 CPUs, but by conversion to float32 (not measured here)."""
    import torch

    caps = torch.cpu.get_capabilities()
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def auto_precision(device, native_bf16: bool | None = None) -> str:
    """``train.precision: auto`` on ``device``: bfloat16 on a CPU that computes it natively (the digits curves in
    docs/quality.md train as well as float32's, 1.5-1.6x faster), float32 elsewhere (CUDA keeps StyleGAN2-ADA's
    float32 default; ``G.num_fp16_res`` / ``D.num_fp16_res`` or ``train.precision`` choose reduced precision)."""
    if getattr(device, "type", str(device)) != "cpu":
        return "float32"
    return "bfloat16" if (native_bfloat16_cpu() if native_bf16 is None else native_bf16) else "float32"


def use_channels_last(cfg: Config, device) -> bool:
    """``train.channels_last`` on ``device``: ``auto`` is on for 2D and 3D data on a CPU, where oneDNN's
    convolutions and above all its depthwise FIR filters are faster in that layout (benchmarks/RESULTS.md), and
    off on CUDA (not measured); 1D has no such layout."""
    value = cfg.train.channels_last
    nd = len(cfg.data.shape)
    if value == "auto":
        return getattr(device, "type", str(device)) == "cpu" and nd in (2, 3)
    return bool(value) and nd in (2, 3)


def resolve_precision(cfg: Config, device) -> Config:
    """The config with ``train.precision: auto`` replaced by what it means on ``device`` (``auto_precision``)."""
    if cfg.train.precision != "auto":
        return cfg
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, precision=auto_precision(device)))


def validate(cfg: Config) -> Config:
    """Cross-field checks that the types cannot express; returns the config with ``auto`` values resolved."""
    cfg = resolve_auto(cfg)
    t, d = cfg.train, cfg.data
    checks = [
        (t.kimg > 0, "train.kimg: expected a positive number of kimg"),
        (t.snapshot_kimg > 0, "train.snapshot_kimg: expected a positive number"),
        (t.loss in ("nonsaturating", "wgan-gp"), f"train.loss: expected nonsaturating or wgan-gp, got {t.loss!r}"),
        (t.precision in PRECISIONS, f"train.precision: expected auto, float32, bfloat16 or float16, got {t.precision!r}"),
        (t.keep_checkpoints >= 1, "train.keep_checkpoints: expected at least 1"),
        (t.g_lr > 0 and t.d_lr > 0, f"train.g_lr / train.d_lr: expected positive learning rates, got {t.g_lr}, {t.d_lr}"),
        (all(0 <= b < 1 for b in t.betas), f"train.betas: expected two values in [0, 1), got {list(t.betas)}"),
        (t.pl_batch_shrink >= 1 and t.r1_interval >= 0 and t.pl_interval >= 0,
         "train.pl_batch_shrink must be >= 1 and the intervals >= 0"),
        (d.channels > 0, "data.channels: expected a positive number of channels"),
        (d.workers >= 0, f"data.workers: expected 0 (load in the training process) or more worker processes, got "
                         f"{d.workers}"),
        (0 <= t.seed < 2**63, f"train.seed: expected an integer in [0, 2**63), got {t.seed}"),
        (t.grid_size >= 1, "train.grid_size: expected at least 1 sample"),
        (t.batch_gpu is None or t.batch_gpu >= 1, f"train.batch_gpu: expected a positive micro-batch (or null: the "
                                                   f"whole per-process batch), got {t.batch_gpu}"),
        (t.freeze_d >= 0, f"train.freeze_d: expected a number of D blocks >= 0, got {t.freeze_d}"),
        (t.log_steps >= 1, "train.log_steps: expected at least 1"),
        (t.ema_kimg > 0, "train.ema_kimg: expected a positive half-life"),
        (0 <= t.style_mixing <= 1, "train.style_mixing: expected a probability in [0, 1]"),
        (0 <= t.pl_decay <= 1, "train.pl_decay: expected a value in [0, 1]"),
        (t.device == "auto" or t.device == "cpu" or t.device.startswith("cuda"),
         f"train.device: expected auto, cpu, cuda or cuda:N, got {t.device!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    from ..data import BUILT_IN, PATHLESS, SOURCE_NAMES

    if d.source not in SOURCE_NAMES:
        close = difflib.get_close_matches(d.source, SOURCE_NAMES, n=1)
        raise ConfigError(f"data.source: unknown source {d.source!r}; expected one of {SOURCE_NAMES}"
                          + (f" (did you mean {close[0]!r}?)" if close else ""))
    if d.path is None and d.source not in BUILT_IN:
        raise ConfigError(f"data.path: the {d.source} source needs a path; set data.path=...")
    if cfg.metrics.real_path is not None and d.source in PATHLESS:
        raise ConfigError(f"metrics.real_path: the {d.source} source reads no files; remove it (held-out "
                          f"{d.source} samples come from metrics.real_options, e.g. another seed)")
    if "memorization" in t.metrics:
        _check_held_out(cfg)
    _check_growing(cfg)
    if t.r1_gamma < 0 or t.gp_weight < 0 or t.pl_weight < 0:
        raise ConfigError("train.r1_gamma / gp_weight / pl_weight: expected weights >= 0 (0 switches a term off)")
    if t.max_rollbacks < 0 or not 0 < t.rollback_lr_factor <= 1:
        raise ConfigError("train.max_rollbacks must be >= 0 and train.rollback_lr_factor in (0, 1]")
    if t.metrics_kimg is not None and t.metrics_kimg <= 0:
        raise ConfigError("train.metrics_kimg: expected a positive number of kimg (or null: at every snapshot)")
    a = cfg.augment
    from ..augment import OPS, check_ops

    for op in a.ops or ():
        if op not in OPS:
            raise ConfigError(f"augment.ops: unknown op {op!r}{_closest(op, OPS)}")
    if a.ops is not None:
        try:
            check_ops(a.ops, d.shape, d.periodic, d.channels)
        except ValueError as e:
            raise ConfigError(f"augment.ops: {e}") from None
    augment_checks = [
        (a.mode in ("ada", "fixed", "none"), f"augment.mode: expected ada, fixed or none, got {a.mode!r}"),
        (0 <= a.p <= 1, "augment.p: expected a probability in [0, 1]"),
        (a.mode != "none" or a.p == 0, "augment.p: mode none uses no p; remove augment.p or choose mode fixed"),
        (0 < a.target < 1, "augment.target: expected a value in (0, 1), e.g. 0.6"),
        (a.interval >= 1 and a.speed_kimg > 0, "augment.interval and augment.speed_kimg: expected positive values"),
        (a.flip_axes is None or all(0 <= ax < len(d.shape) for ax in a.flip_axes),
         f"augment.flip_axes: expected spatial axes 0..{len(d.shape) - 1}, got {a.flip_axes}"),
    ]
    for ok, message in augment_checks:
        if not ok:
            raise ConfigError(message)
    if a.mode == "ada" and t.loss == "wgan-gp":
        raise ConfigError("augment.mode: ADA's p adapts to the sign of D's outputs on reals, which means nothing for "
                          "a WGAN critic (train.loss: wgan-gp); set augment.mode to fixed (with augment.p) or none")
    try:
        check_names(t.metrics)
    except ValueError as e:
        raise ConfigError(f"train.metrics: {e}") from None
    try:
        check_settings(cfg.metrics)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return cfg


def growing_levels(cfg: Config) -> int:
    """The levels of progressive growing: the pyramid's resolutions from G's base shape to data.shape."""
    from ..nets.shapes import resolve_pyramid

    return len(resolve_pyramid(len(cfg.data.shape), cfg.data.shape, cfg.G.base_shape))


def _check_growing(cfg: Config) -> None:
    """train.growing: StyleGAN's plain networks, a base shape that reaches data.shape by doublings (D grows
    from G's), a phase plan that advances, and one batch per level that the stddev groups divide."""
    t = cfg.train
    if not t.growing:
        if t.growing_batch is not None:
            raise ConfigError("train.growing_batch: a batch per level of progressive growing, which is off; set "
                              "train.growing: true or remove train.growing_batch")
        return
    if cfg.G.architecture != "orig" or cfg.D.architecture != "orig":
        raise ConfigError(f"train.growing: progressive growing grows StyleGAN's plain networks, G.architecture "
                          f"and D.architecture orig (here {cfg.G.architecture} and {cfg.D.architecture}); set both "
                          f"to orig, or turn train.growing off (config E's skip G and resnet D do not grow)")
    if t.compile:
        raise ConfigError("train.compile: growing blends with a fade-in weight that changes every step, which "
                          "would recompile the networks each time; set train.compile false with train.growing")
    if t.growing_batch is not None and t.batch_gpu is not None:
        raise ConfigError("train.batch_gpu: micro-batches with a batch per level (train.growing_batch) are not "
                          "supported; remove one of them")
    if t.fade_kimg < 0 or t.stable_kimg < 0 or t.fade_kimg + t.stable_kimg <= 0:
        raise ConfigError(f"train.fade_kimg / train.stable_kimg: expected values >= 0 with a positive sum, got "
                          f"{t.fade_kimg:g} and {t.stable_kimg:g}")
    try:
        levels = growing_levels(cfg)
    except ValueError as e:
        raise ConfigError(f"G.base_shape: progressive growing starts at the base shape and doubles it to "
                          f"data.shape {list(cfg.data.shape)}; {str(e).partition(': ')[2]}") from None
    if levels < 2:
        raise ConfigError(f"G.base_shape: data.shape {list(cfg.data.shape)} is the base shape, nothing to grow; "
                          f"use a smaller G.base_shape or turn train.growing off")
    if t.growing_batch is not None:
        if len(t.growing_batch) != levels or any(b < 1 for b in t.growing_batch):
            raise ConfigError(f"train.growing_batch: expected {levels} positive batches (one per level, base first: "
                              f"{levels} resolutions from the base shape to data.shape), got {list(t.growing_batch)}")
        group = cfg.D.mbstd_group_size
        for b in t.growing_batch:
            if cfg.D.mbstd_num_channels and group and b % min(group, b):
                raise ConfigError(f"train.growing_batch: {b} is not divisible by D.mbstd_group_size={group}; use "
                                  f"multiples of {group}")


def _check_held_out(cfg: Config) -> None:
    """train.metrics memorization compares generated samples with the training data, next to held-out reals:
    those must be configured, and not be the training data's own file."""
    m, d = cfg.metrics, cfg.data
    if m.real_path is None and not m.real_options:
        key, fix = "metrics.real_path", f"set it to held-out data of the {d.source} source (samples never trained on)"
        if d.source == "procedural":
            key, fix = "metrics.real_options", "set it to another draw of the procedural source, e.g. {seed: 1}"
        elif d.source == "digits":
            raise ConfigError("train.metrics: memorization needs held-out reals as its baseline, and the digits "
                              "source has none (every scan is training data); leave memorization out")
        raise ConfigError(f"{key}: memorization (train.metrics) needs held-out reals as its baseline and none are "
                          f"set; {fix}")
    if m.real_path is not None and d.path is not None and not m.real_options \
            and Path(m.real_path).resolve() == Path(d.path).resolve():
        raise ConfigError(f"metrics.real_path: {m.real_path} is data.path, the training data; memorization needs "
                          f"held-out reals distinct from it: point metrics.real_path at data the model never sees")


def to_dict(cfg: Config) -> dict:
    """Plain nested dict (lists, not tuples): what config.yaml and checkpoints store."""
    return yaml.safe_load(yaml.safe_dump(_plain(dataclasses.asdict(cfg))))


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def from_dict(raw: dict) -> Config:
    """A ``Config`` from plain nested data (a checkpoint's or ``to_dict``'s), checked as a YAML file is."""
    return validate(_build(Config, raw, ""))
