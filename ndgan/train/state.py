"""What a run is at any step, and the one place that writes and restores it as a checkpoint (whose layout
``ndgan.io.checkpoint`` documents and checks): the networks, optimisers, loss scalers, ADA's state, the
counters, the path-length mean, the learning-rate factor after rollbacks and the RNG.

``resume_state`` is the resume policy: which checkpoint a run continues from, and what may change.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch

from ..augment import AdaptiveP
from ..io import checkpoint as ckpt
from ..io.budget import check_fits, gib, module_bytes
from ..nets import build_networks
from .config import Config, ConfigError, to_dict, use_channels_last
from .step import lazy_adam, set_lazy_hparams


class TrainingState:
    """G, D, G_ema, their optimisers and scalers, ADA, ``step``, ``nimg``, ``pl_mean`` and ``lr_scale`` for
    ``cfg`` on ``device``; lazy regularisation intervals are 0 where the term is off."""

    def __init__(self, cfg: Config, c_dim: int, device, continuous_labels: bool = False):
        t, self.cfg, self.device = cfg.train, cfg, device
        G, D = build_networks(cfg, c_dim, continuous_labels)
        self.G, self.D = G.to(device).train(), D.to(device).train()
        self.memory_format = None
        if use_channels_last(cfg, device):  # before G_ema and the optimisers, which follow the layout
            self.memory_format = CHANNELS_LAST[len(cfg.data.shape)]
            for net in (self.G, self.D):
                to_memory_format(net, self.memory_format)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        # Without lazy regularisation (train.lazy_reg false) every step adds the terms to the main losses: an
        # interval of 1, and no correction of the optimisers.
        self.r1_interval = (t.r1_interval if t.lazy_reg else 1) if (t.loss == "nonsaturating" and t.r1_gamma > 0) else 0
        self.pl_interval = (t.pl_interval if t.lazy_reg else 1) if t.pl_weight > 0 else 0
        self.G_opt = lazy_adam(self.G.parameters(), t.g_lr, t.betas, self.pl_interval if t.lazy_reg else 0)
        self.D_opt = lazy_adam(self.D.parameters(), t.d_lr, t.betas, self.r1_interval if t.lazy_reg else 0)
        # float16 needs loss scaling (the main passes); R1 and path length take plain steps.
        self.scalers = {name: torch.amp.GradScaler(device.type, enabled=t.precision == "float16") for name in "GD"}
        aug = cfg.augment
        self.ada = AdaptiveP(aug.mode, aug.p, aug.target, aug.interval, aug.speed_kimg, t.batch, device)
        self.pl_mean = torch.zeros([], device=device)
        self.step = self.nimg = 0
        self.lr_scale = 1.0  # lowered by every rollback after a numerical fault

    def checkpoint(self, data_metadata: dict) -> dict:
        """The checkpoint of this state (the layout of ``ndgan.io.checkpoint``; the networks' tensors
        contiguous whatever the training layout, for every reader)."""
        plain = lambda net: {k: v.contiguous() for k, v in net.state_dict().items()}  # noqa: E731
        return {"G": plain(self.G), "D": plain(self.D), "G_ema": plain(self.G_ema),
                "G_opt": self.G_opt.state_dict(), "D_opt": self.D_opt.state_dict(), "G_kwargs": self.G.init_kwargs,
                "D_kwargs": self.D.init_kwargs, "config": to_dict(self.cfg), "step": self.step, "nimg": self.nimg,
                "pl_mean": self.pl_mean.detach().cpu(), "rng": _rng_state(self.device), "augment": self.ada.state_dict(),
                "lr_scale": self.lr_scale, "scalers": {k: v.state_dict() for k, v in self.scalers.items()},
                "data_metadata": data_metadata, **self._growth()}

    def _growth(self) -> dict:
        """The phase the networks are in with progressive growing (their buffers hold it too); else None."""
        growth = getattr(self.D, "growth", None)
        return {"growth": None if growth is None else {"level": growth.level, "alpha": growth.alpha}}

    def save(self, run_dir: Path, data_metadata: dict) -> Path:
        """Write the checkpoint of this step into ``run_dir`` and prune the older ones."""
        path = ckpt.save(self.checkpoint(data_metadata), Path(run_dir) / ckpt.checkpoint_name(self.nimg))
        ckpt.prune(run_dir, self.cfg.train.keep_checkpoints)
        return path

    def init_from(self, path, announce: bool = False) -> list:
        """Start from a model's weights (``train --init``): an ndgan checkpoint or run folder, an NVIDIA
        StyleGAN2-ADA pickle or a safetensors export (G only: G and G_ema start from it, D stays new). Counters,
        optimisers, ADA's p and ``pl_mean`` stay fresh. Returns the names of the networks loaded. The config
        must build networks of the model's shapes, or a one-line error names the first layer that differs."""
        path = Path(path)
        if path.suffix == ".safetensors":
            parts = ckpt.read_generator(path)
            nets, kwargs = {"G": parts["G_ema"], "G_ema": parts["G_ema"]}, parts["G_kwargs"]
        else:
            state = ckpt.read_training(path)
            nets = {k: state[k] for k in ("G", "G_ema", "D") if k in state}
            nets.setdefault("G", nets.get("G_ema"))
            kwargs = state.get("G_kwargs") or {}
        ours = self.G.init_kwargs
        theirs = (kwargs.get("channels"), *kwargs.get("shape", ()))
        if kwargs and theirs != (ours["channels"], *ours["shape"]):
            raise ConfigError(f"--init {path}: the model makes samples of {list(theirs)}, the config "
                              f"{[ours['channels'], *ours['shape']]}; fine-tuning at another resolution or channel "
                              f"count is not supported (its layers would not fit): set data.shape and data.channels "
                              f"to the model's")
        if kwargs and kwargs.get("mapping_lr_multiplier", 0.01) != ours["mapping_lr_multiplier"]:
            raise ConfigError(f"--init {path}: the model's mapping learning-rate multiplier is "
                              f"{kwargs['mapping_lr_multiplier']}, the config's {ours['mapping_lr_multiplier']} (its "
                              f"weights mean something else under another one); set G.mapping_lr_multiplier")
        for name, weights in nets.items():
            if weights is None:
                continue
            net = getattr(self, name)
            expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
            got = {k: tuple(v.shape) for k, v in weights.items()}
            for key in sorted(expected.keys() | got.keys()):
                if expected.get(key) != got.get(key):
                    section = "D" if name == "D" else "G"
                    raise ConfigError(f"--init {path}: {name}.{key} is {got.get(key)} in the model and "
                                      f"{expected.get(key)} in the config's network; set {section}.* (channel_base, "
                                      f"channel_max, architecture, ...) to the model's")
            net.load_state_dict(weights)
        loaded = [name for name, weights in nets.items() if weights is not None]
        if announce:
            print(f"starting from the weights of {path} ({', '.join(loaded)}); counters, optimisers and ADA fresh")
        return loaded

    def restore(self, state: dict, rank: int, lr_scale: float | None = None) -> None:
        """Everything from a checkpoint: the optimisers get the config's learning rates and betas (``train.*``
        may change on resume) times ``lr_scale`` (default: the checkpoint's; a rollback passes a lower one);
        rank 0 takes the saved RNG state, the other ranks a seed from the step."""
        t = self.cfg.train
        try:
            for name in ("G", "D", "G_ema", "G_opt", "D_opt"):
                getattr(self, name).load_state_dict(state[name])
        except (RuntimeError, ValueError, KeyError) as e:
            raise ValueError(f"resume: the checkpoint's tensors do not fit the networks ({type(e).__name__}: "
                             f"{str(e).splitlines()[0]})") from None
        self.lr_scale = float(state.get("lr_scale", 1.0)) if lr_scale is None else lr_scale
        set_lazy_hparams(self.G_opt, t.g_lr * self.lr_scale, t.betas, self.pl_interval if t.lazy_reg else 0)
        set_lazy_hparams(self.D_opt, t.d_lr * self.lr_scale, t.betas, self.r1_interval if t.lazy_reg else 0)
        if "augment" in state:
            self.ada.load_state_dict(state["augment"], pending=rank == 0)
        for name, scaler_state in state.get("scalers", {}).items():
            if scaler_state:
                self.scalers[name].load_state_dict(scaler_state)
        if rank == 0:
            torch.set_rng_state(state["rng"]["torch"])
            if "cuda" in state["rng"] and self.device.type == "cuda":
                torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        else:
            torch.manual_seed(t.seed * 1_000_003 + rank + state["step"])
        self.pl_mean, self.step, self.nimg = state["pl_mean"].to(self.device), state["step"], state["nimg"]


def resume_state(cfg: Config, run_dir: Path, resume, rank: int, init=None):
    """The checkpoint state a run continues from (None: a fresh run). ``resume`` is None, ``'auto'`` (the
    newest valid checkpoint of ``run_dir``) or a path. Refused: a fresh run into a folder with checkpoints,
    a resume that would overwrite newer ones, a config whose networks or data differ from the checkpoint's,
    and a resume together with ``init`` (a new run from a model's weights)."""
    t = cfg.train
    if init is not None and resume:
        raise ValueError("--init and --resume: --resume continues a run exactly, --init starts one from a model's "
                         "weights; give one of them")
    state, existing = None, ckpt.list_checkpoints(run_dir)
    if resume == "auto":
        _, state = ckpt.latest_valid(run_dir)
        if state is None and existing:  # starting afresh would overwrite them
            raise ValueError(f"--resume auto: {ckpt.none_loads(run_dir)}; pass --resume PATH to a good one, or "
                             f"choose another --out")
    elif resume:
        state = ckpt.load(resume)  # a .safetensors generator export is refused here, with the reason
    elif existing:
        raise FileExistsError(f"{run_dir}: holds checkpoints of an earlier run; pass --resume auto to continue "
                              f"it, or choose another --out")
    if state is None:
        return None
    ckpt.check_training_state(state, resume if resume != "auto" else run_dir)
    newer = [p.name for p in existing if ckpt.checkpoint_nimg(p) > state["nimg"]]
    if newer and resume != "auto":  # (auto skipped only newer ones that do not load)
        raise FileExistsError(f"--resume {resume}: {run_dir} holds newer checkpoints ({newer[-1]}) that this run "
                              f"would overwrite; choose another --out to branch off from {Path(resume).name}")
    old, new = state["config"], to_dict(cfg)
    defaults = to_dict(Config())  # a key added since the checkpoint was written has its default's meaning
    fixed = {"data": ("source", "shape", "channels", "periodic"), "G": None, "D": None}
    for section, keys in fixed.items():
        pick = (lambda d: {**defaults[section], **d}) if keys is None else (lambda d: {k: d[k] for k in keys})
        if pick(old[section]) != pick(new[section]):
            raise ConfigError(f"resume: the config's '{section}' section differs from the checkpoint's in what "
                              f"defines the networks or the data; only train.* and data.path/options/workers "
                              f"may change when resuming")
    plan = {"growing": False, "fade_kimg": 600.0, "stable_kimg": 600.0, "growing_batch": None}
    old_plan = {k: old["train"].get(k, v) for k, v in plan.items()}
    new_plan = {k: new["train"][k] for k in plan}
    if old_plan != new_plan:
        key = next(k for k in plan if old_plan[k] != new_plan[k])
        raise ConfigError(f"train.{key}: the checkpoint grew with {key} {old_plan[key]}, the config says "
                          f"{new_plan[key]}; a resume keeps the growing schedule (train.growing, fade_kimg, "
                          f"stable_kimg, growing_batch): set it back, or start a new run with --init")
    if rank == 0 and old["train"].get("precision", "float32") != new["train"]["precision"]:
        print(f"warning: train.precision is {new['train']['precision']} now, the checkpoint trained with "
              f"{old['train'].get('precision', 'float32')}; set train.precision to keep it")
    for key in ("r1_gamma", "ema_kimg"):  # e.g. a default that became auto since the checkpoint was written
        if rank == 0 and old["train"].get(key) != new["train"][key]:
            print(f"warning: train.{key} is {new['train'][key]:g} now, the checkpoint trained with "
                  f"{old['train'].get(key)}; set train.{key} to keep it")
    if state["nimg"] >= int(round(t.kimg * 1000)) and rank == 0:
        print(f"nothing to do: the checkpoint is at {state['nimg'] / 1000:g} kimg, train.kimg={t.kimg:g}")
    return state


#: The channels-last memory format of 2D and 3D activations and conv weights.
CHANNELS_LAST = {2: torch.channels_last, 3: torch.channels_last_3d}


def to_memory_format(net, memory_format) -> None:
    """Put every parameter of ``net`` with the rank of that format (the conv weights ``[O, I, *k]``) in it, in
    place; the values are unchanged, only their layout in memory."""
    rank = 4 if memory_format == torch.channels_last else 5
    with torch.no_grad():
        for p in net.parameters():
            if p.ndim == rank:
                p.data = p.data.contiguous(memory_format=memory_format)


def check_training_fits(cfg: Config, device) -> None:
    """Refuse, before anything is allocated, a config whose networks or one training step cannot fit in the
    memory of ``device``: parameters counted exactly on the meta device (G and G_ema with gradients and Adam's
    two moments, D likewise), plus a lower bound on the activations of one step (a batch of samples at full
    resolution, through G and D, forward and backward)."""
    with torch.device("meta"):
        G, D = build_networks(cfg, 0)
    params = 5 * module_bytes(G) + 4 * module_bytes(D)
    d, t = cfg.data, cfg.train
    top = min(cfg.G.channel_base // max(d.shape), cfg.G.channel_max)
    batch = max(t.growing_batch or (t.batch,))  # growing: the largest level batch, at the full shape
    activations = 4 * batch * math.prod(d.shape) * (d.channels + max(top, 1)) * 4  # fwd+bwd, G and D
    if params >= activations:
        what = (f"G and D ({gib(module_bytes(G))} and {gib(module_bytes(D))} of parameters; G.z_dim, G.w_dim, "
                f"G/D.channel_base, channel_max and data.shape set their size)")
        fix = "make the networks smaller"
    else:
        what = f"data.shape {list(d.shape)} x train.batch {batch} (one training step's activations)"
        fix = "use a smaller data.shape or train.batch"
    check_fits(params + activations, what, fix, device)


def plain_metadata(dataset) -> dict:
    """The dataset's metadata as plain values (what a checkpoint may hold)."""
    meta = getattr(dataset, "metadata", {})
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in meta.items()
            if isinstance(v, (int, float, str, bool, list, tuple, type(None)))}


def _rng_state(device):
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state
