"""NVIDIA StyleGAN2-ADA(-PyTorch) network pickles, read as data: nothing in the file is imported or executed.

NVIDIA's pickles (``network-snapshot-*.pkl``, the pretrained FFHQ, MetFaces, AFHQ, CIFAR-10, BreCaHAD ones)
hold their networks as ``torch_utils.persistence`` records: the source code of the module that defined the
class, the class name and the object's state (constructor arguments, parameters, buffers, sub-modules).
Unpickling them the usual way imports that source, which is arbitrary code. ``read_pickle`` uses a
restricted unpickler instead: a persistent record becomes a ``Record`` (class name, constructor arguments,
tensors, children; the source text is dropped unread), tensors are rebuilt through ``torch.load`` with
``weights_only=True``, and any other global in the file is refused by name.

``generator`` and ``discriminator`` map a record exactly onto ndgan's networks: the constructor arguments
(every option NVIDIA's networks take is either mapped or refused), the weight names, and the spatial flip of
the up-sampling convolutions' kernels (NVIDIA runs them with ``flip_weight=False``). What cannot be mapped
exactly (StyleGAN3, an option ndgan does not have, a shape that does not fit) is refused with one line.
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import re
from pathlib import Path

import numpy as np
import torch

#: NVIDIA's constructor defaults (training/networks.py of stylegan2-ada-pytorch), per class.
_DEFAULTS = {
    "Generator": dict(mapping_kwargs={}, synthesis_kwargs={}),
    "MappingNetwork": dict(num_layers=8, embed_features=None, layer_features=None, activation="lrelu",
                           lr_multiplier=0.01, w_avg_beta=0.995),
    "SynthesisNetwork": dict(channel_base=32768, channel_max=512, num_fp16_res=0),
    "SynthesisBlock": dict(architecture="skip", resample_filter=[1, 3, 3, 1], conv_clamp=None,
                           fp16_channels_last=False, kernel_size=3, use_noise=True, activation="lrelu",
                           channels_last=False),
    "Discriminator": dict(architecture="resnet", channel_base=32768, channel_max=512, num_fp16_res=0,
                          conv_clamp=None, cmap_dim=None, block_kwargs={}, mapping_kwargs={}, epilogue_kwargs={}),
    "DiscriminatorBlock": dict(activation="lrelu", resample_filter=[1, 3, 3, 1], fp16_channels_last=False,
                               freeze_layers=0),
    "DiscriminatorEpilogue": dict(mbstd_group_size=4, mbstd_num_channels=1, activation="lrelu"),
}
_POSITIONAL = {"Generator": ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"),
               "Discriminator": ("c_dim", "img_resolution", "img_channels")}


class Record:
    """One persistent object of an NVIDIA pickle, as data: ``class_name``, ``kwargs`` (its constructor
    arguments), ``params`` and ``buffers`` (persistent tensors by name), ``children`` (sub-records by name)."""

    def __init__(self, meta):
        if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
            raise pickle.UnpicklingError("a persistent record without a class state")
        state = meta["state"]
        self.class_name = str(meta.get("class_name"))
        args, kwargs = state.get("_init_args", ()), state.get("_init_kwargs", {})
        names = _POSITIONAL.get(self.class_name, ())  # the networks' positional arguments, by name
        self.args = tuple(args)[len(names):]
        self.kwargs = {**dict(zip(names, args)), **dict(kwargs)}
        skip = set(state.get("_non_persistent_buffers_set", ()))
        self.params = {k: v for k, v in (state.get("_parameters") or {}).items() if v is not None}
        self.buffers = {k: v for k, v in (state.get("_buffers") or {}).items() if v is not None and k not in skip}
        self.children = {k: v for k, v in (state.get("_modules") or {}).items() if v is not None}

    def tensors(self, prefix="") -> dict:
        """Every persistent tensor of this record and its children, by NVIDIA's state-dict name."""
        out = {f"{prefix}{k}": v.detach() for k, v in {**self.params, **self.buffers}.items()}
        for name, child in self.children.items():
            if isinstance(child, Record):
                out.update(child.tensors(f"{prefix}{name}."))
        return out

    def option(self, key):
        return self.kwargs.get(key, _DEFAULTS.get(self.class_name, {}).get(key))


class _EasyDict(dict):
    """``dnnlib.util.EasyDict`` as a plain dict (its attribute access is not needed to read the data)."""


def _safe_storage(data: bytes):
    return torch.load(io.BytesIO(data), weights_only=True)


def _numpy_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError("a NumPy object scalar")
    return np.frombuffer(data, dtype=dtype)[0]


_TORCH_DTYPES = {name: getattr(torch, name) for name in ("float32", "float16", "bfloat16", "float64", "int64",
                                                          "int32", "uint8", "bool")}
_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _safe_storage,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): Record,
    **{("torch", name): dtype for name, dtype in _TORCH_DTYPES.items()},
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[module, name]
        if module.startswith("dnnlib.tflib"):
            raise pickle.UnpicklingError(f"refused the global {module}.{name}: a TensorFlow-era StyleGAN2 pickle; "
                                         f"convert it with NVIDIA's legacy.py (stylegan2-ada-pytorch) first")
        raise pickle.UnpicklingError(f"refused the global {module}.{name}: an NVIDIA network pickle holds only "
                                     f"network records, tensors and plain data")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids (a torch.save file, not an NVIDIA pickle)")


def read_pickle(path) -> dict:
    """The top-level dict of an NVIDIA network pickle, networks as ``Record`` objects; a ValueError naming the
    file for anything else (another kind of pickle, a refused global, a truncated file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with open(path, "rb") as f:
            data = _Unpickler(f).load()
    except pickle.UnpicklingError as e:
        raise ValueError(f"{path}: not a StyleGAN2-ADA network pickle ndgan can read ({e})") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, RuntimeError, MemoryError) as e:
        kind = "truncated" if isinstance(e, EOFError) else f"corrupt ({type(e).__name__})"
        raise ValueError(f"{path}: the pickle is {kind}; download or copy it again") from None
    if not isinstance(data, dict) or not any(isinstance(data.get(k), Record) for k in ("G", "G_ema", "D")):
        raise ValueError(f"{path}: holds a {type(data).__name__} without StyleGAN2-ADA networks (G, D, G_ema)")
    return data


def _refuse(where, problem):
    raise ValueError(f"{where}: {problem}; ndgan maps StyleGAN2-ADA networks exactly or not at all")


def _child(record, name, class_name, where):
    child = record.children.get(name)
    if not isinstance(child, Record) or child.class_name != class_name:
        got = child.class_name if isinstance(child, Record) else "nothing"
        _refuse(where, f"expected a {class_name} at {name!r}, found {got} (StyleGAN3 and other networks are "
                       f"not StyleGAN2)")
    return child


def _filter(taps, where):
    taps = [float(t) for t in np.ravel(np.asarray(taps, dtype=np.float64))]
    if not taps:
        _refuse(where, "an empty resample filter")
    return tuple(taps)


def _rename(names: dict, rules) -> dict:
    out = {}
    for name, tensor in names.items():
        for pattern, repl in rules:
            new, n = re.subn(pattern, repl, name)
            if n:
                name = new
                break
        if name is not None and not name.endswith("resample_filter"):
            out[name] = tensor
    return out


def _checked_state(cls, kwargs, state, where) -> dict:
    """``state`` if it holds exactly the tensors of ``cls(**kwargs)`` (names and shapes), else a ValueError."""
    with torch.device("meta"):
        try:
            net = cls(**kwargs)
        except ValueError as e:
            _refuse(where, f"its options build no ndgan network ({e})")
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    for key in sorted(expected.keys() | got.keys()):
        if expected.get(key) != got.get(key):
            _refuse(where, f"{key} is {got.get(key)} in the pickle and {expected.get(key)} in ndgan's network")
    return {k: state[k].float() for k in expected}


def _top_record(record: Record, class_name: str, where) -> None:
    """``record`` is a StyleGAN2-ADA ``class_name`` with only the constructor options NVIDIA's has."""
    if record.class_name != class_name:
        _refuse(where, f"a {record.class_name}, not a StyleGAN2-ADA {class_name}")
    unknown = set(record.kwargs) - set(_POSITIONAL[class_name]) - set(_DEFAULTS[class_name])
    if unknown or record.args:
        _refuse(where, f"unknown {class_name} options {sorted(unknown)}")


def _require(group: str, values: dict, allowed: dict, where) -> None:
    """Every option in ``allowed`` has one of the values ndgan has an equivalent for."""
    for key, ok in allowed.items():
        if values.get(key) not in ok:
            _refuse(where, f"{group} option {key}={values.get(key)!r} has no ndgan equivalent")


def generator(record: Record, where="G") -> tuple[dict, dict]:
    """(ndgan ``Generator`` kwargs, state dict) of a StyleGAN2-ADA ``Generator`` record."""
    from ..nets import Generator

    _top_record(record, "Generator", where)
    mapping, synthesis = _child(record, "mapping", "MappingNetwork", where), \
        _child(record, "synthesis", "SynthesisNetwork", where)
    for name, child in synthesis.children.items():
        kind = child.class_name if isinstance(child, Record) else type(child).__name__
        if not re.fullmatch(r"b\d+", name) or kind != "SynthesisBlock":
            _refuse(where, f"its synthesis network holds a {kind} ({name!r}): StyleGAN3 or another network, not "
                           f"StyleGAN2's blocks b4, b8, ...")
    mk = {**_DEFAULTS["MappingNetwork"], **dict(record.option("mapping_kwargs") or {})}
    sk = {**_DEFAULTS["SynthesisNetwork"], **_DEFAULTS["SynthesisBlock"], **dict(record.option("synthesis_kwargs") or {})}
    w_dim = record.kwargs["w_dim"]
    _require("mapping", mk, dict(embed_features=(None, w_dim), layer_features=(None, w_dim), activation=("lrelu",)),
             where)
    _require("synthesis", sk, dict(activation=("lrelu",), use_noise=(True,), kernel_size=(3,),
                                   architecture=("orig", "skip", "resnet")), where)
    unknown = set(sk) - set(_DEFAULTS["SynthesisNetwork"]) - set(_DEFAULTS["SynthesisBlock"])
    if unknown:
        _refuse(where, f"unknown synthesis options {sorted(unknown)}")
    res = int(record.kwargs["img_resolution"])
    if res < 4 or res & (res - 1):
        _refuse(where, f"img_resolution {res} is not a power of two")
    kwargs = dict(spatial_dims=2, shape=(res, res), channels=int(record.kwargs["img_channels"]),
                  z_dim=int(record.kwargs["z_dim"]), w_dim=int(w_dim), c_dim=int(record.kwargs["c_dim"]),
                  mapping_layers=int(mk["num_layers"]), channel_base=int(sk["channel_base"]),
                  channel_max=int(sk["channel_max"]), architecture=sk["architecture"], base_shape=(4, 4),
                  conv_clamp=sk["conv_clamp"], num_fp16_res=int(sk["num_fp16_res"]), fp16_dtype="float16",
                  resample_filter=_filter(sk["resample_filter"], where),
                  mapping_lr_multiplier=float(mk["lr_multiplier"]),
                  w_avg_beta=None if mk["w_avg_beta"] is None else float(mk["w_avg_beta"]))
    if kwargs["w_avg_beta"] is None:
        _refuse(where, "w_avg_beta=None (no w_avg to truncate towards) has no ndgan equivalent")
    names = {**{f"mapping.{k}": v for k, v in mapping.tensors().items()},
             **{f"synthesis.{k}": v for k, v in synthesis.tensors().items()}}
    log4 = 2  # block i of ndgan is NVIDIA's b{4 * 2**i}
    rules = [(r"^mapping\.fc(\d+)\.", r"mapping.layers.\1."),
             (r"^synthesis\.b(\d+)\.(conv\d)\.noise_strength$",
              lambda m: f"synthesis.blocks.{int(math.log2(int(m.group(1)))) - log4}.{m.group(2)}.noise.strength"),
             (r"^synthesis\.b(\d+)\.(conv\d)\.noise_const$",
              lambda m: f"synthesis.blocks.{int(math.log2(int(m.group(1)))) - log4}.{m.group(2)}.noise.noise_const"),
             (r"^synthesis\.b(\d+)\.", lambda m: f"synthesis.blocks.{int(math.log2(int(m.group(1)))) - log4}.")]
    state = _rename(names, rules)
    for name in list(state):  # NVIDIA's up-sampling layers correlate, ndgan's convolve: flip their kernels
        if re.match(r"^synthesis\.blocks\.\d+\.(conv0|skip)\.weight$", name):
            state[name] = state[name].flip([-1, -2])
    return kwargs, _checked_state(Generator, kwargs, state, where)


def discriminator(record: Record, where="D") -> tuple[dict, dict]:
    """(ndgan ``Discriminator`` kwargs, state dict) of a StyleGAN2-ADA ``Discriminator`` record."""
    from ..nets import Discriminator

    _top_record(record, "Discriminator", where)
    opt = {**_DEFAULTS["Discriminator"], **record.kwargs}
    bk = {**_DEFAULTS["DiscriminatorBlock"], **dict(opt["block_kwargs"] or {})}
    ek = {**_DEFAULTS["DiscriminatorEpilogue"], **dict(opt["epilogue_kwargs"] or {})}
    mk = {**_DEFAULTS["MappingNetwork"], **dict(opt["mapping_kwargs"] or {})}
    _require("block", bk, dict(activation=("lrelu",)), where)
    _require("epilogue", ek, dict(activation=("lrelu",)), where)
    _require("mapping", mk, dict(activation=("lrelu",), embed_features=(None,), layer_features=(None,)), where)
    unknown = (set(bk) - set(_DEFAULTS["DiscriminatorBlock"])) | (set(ek) - set(_DEFAULTS["DiscriminatorEpilogue"]))
    if unknown:
        _refuse(where, f"unknown discriminator options {sorted(unknown)}")
    res = int(opt["img_resolution"])
    kwargs = dict(spatial_dims=2, shape=(res, res), channels=int(opt["img_channels"]), c_dim=int(opt["c_dim"]),
                  channel_base=int(opt["channel_base"]), channel_max=int(opt["channel_max"]),
                  architecture=opt["architecture"], base_shape=(4, 4), conv_clamp=opt["conv_clamp"],
                  num_fp16_res=int(opt["num_fp16_res"]), fp16_dtype="float16",
                  mbstd_group_size=ek["mbstd_group_size"], mbstd_num_channels=int(ek["mbstd_num_channels"]),
                  cmap_dim=opt["cmap_dim"], mapping_layers=int(mk["num_layers"]),
                  resample_filter=_filter(bk["resample_filter"], where))
    top = int(math.log2(res))
    rules = [(r"^mapping\.fc(\d+)\.", r"mapping.layers.\1."),
             (r"^b4\.", "epilogue."),
             (r"^b(\d+)\.", lambda m: f"blocks.{top - int(math.log2(int(m.group(1))))}.")]
    state = _rename(record.tensors(), rules)
    return kwargs, _checked_state(Discriminator, kwargs, state, where)


def read_checkpoint(path) -> dict:
    """An NVIDIA pickle as the parts of an ndgan checkpoint: ``G``, ``G_ema``, ``D`` state dicts (those the
    pickle holds) with ``G_kwargs`` and ``D_kwargs``, mapped exactly; ``config`` (the data, G and D sections
    that rebuild the networks), ``data_metadata`` (8-bit images) and ``nimg`` (from a
    ``network-snapshot-<kimg>.pkl`` name, else 0). No optimiser state: it cannot resume, only start a run."""
    data, out = read_pickle(path), {}
    for key in ("G_ema", "G"):
        if isinstance(data.get(key), Record):
            out["G_kwargs"], out[key] = generator(data[key], f"{path} [{key}]")
    if "G_ema" not in out:
        raise ValueError(f"{path}: holds no G_ema (the generator to sample from)")
    if isinstance(data.get("D"), Record):
        out["D_kwargs"], out["D"] = discriminator(data["D"], f"{path} [D]")
    g, d = out["G_kwargs"], out.get("D_kwargs")
    trained_on = data.get("training_set_kwargs") if isinstance(data.get("training_set_kwargs"), dict) else {}
    source = {"source": "images", "path": str(trained_on.get("path") or "dataset.zip"),
              "missing_hint": "The NVIDIA pickle names this dataset; point data.path at your copy of it, or at the "
                              "images to fine-tune on."}
    if isinstance(trained_on.get("xflip"), bool):
        source["options"] = {"xflip": trained_on["xflip"]}
    config = {"data": {**source, "shape": list(g["shape"]), "channels": g["channels"], "periodic": False},
              "G": {k: g[k] for k in ("z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max",
                                      "architecture", "conv_clamp", "num_fp16_res", "fp16_dtype",
                                      "mapping_lr_multiplier")} | {"base_shape": list(g["base_shape"])},
              "D": {} if d is None else {k: d[k] for k in ("channel_base", "channel_max", "architecture",
                                                          "mbstd_group_size", "mbstd_num_channels", "conv_clamp",
                                                          "num_fp16_res", "fp16_dtype")},
              "train": {}}
    found = re.search(r"(\d+)\.pkl$", Path(path).name)
    names = {1: ["gray"], 3: ["R", "G", "B"], 4: ["R", "G", "B", "A"]}  # what ndgan's image folders record
    metadata = {"source": str(path), "channels": g["channels"], "shape": list(g["shape"]),
                "channel_names": names.get(g["channels"], [f"c{i}" for i in range(g["channels"])]),
                "value_range": [0.0, 255.0], "normalized": False, "units": "8-bit intensity", "periodic": False}
    return {**out, "config": config, "data_metadata": metadata,
            "nimg": int(found.group(1)) * 1000 if found and "snapshot" in Path(path).name else 0}
