"""One training function, ``train(cfg, run_dir)``, with one visible loop (StyleGAN2, Karras et al. 2020).

Per step: D main (logistic loss on reals and fakes), lazy R1, G main (non-saturating loss), lazy path-length
regularisation, EMA of G; stats every ``train.log_steps`` steps; sample grid and checkpoint every
``train.snapshot_kimg``. Progress counts real samples shown to D. Batches come from a step-indexed sampler
and all RNG state is checkpointed, so a resumed CPU run ends with exactly the tensors of an uninterrupted one.
"""

from __future__ import annotations

import copy
import ctypes
import json
import math
import re
import signal
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import yaml

from .. import losses
from ..augment import AdaptiveP, augment, default_ops
from ..io.budget import check_fits, gib, module_bytes
from ..data import BUILT_IN, open_dataset
from ..data.configured import held_out_config, metrics_dataset, path_exists, source_options
from ..io.files import PROBE_PREFIX, TMP_PREFIX, FolderUndo, append_line, atomic_write, check_writable
from ..data.loader import make_loader
from ..nets import build_networks
from ..viz.grid import sample_grid, save_png
from ..io import checkpoint as ckpt
from . import distributed
from .config import Config, ConfigError, from_dict, to_dict


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
    activations = 4 * t.batch * math.prod(d.shape) * (d.channels + max(top, 1)) * 4  # fwd+bwd, G and D
    if params >= activations:
        what = (f"G and D ({gib(module_bytes(G))} and {gib(module_bytes(D))} of parameters; G.z_dim, G.w_dim, "
                f"G/D.channel_base, channel_max and data.shape set their size)")
        fix = "make the networks smaller"
    else:
        what = f"data.shape {list(d.shape)} x train.batch {t.batch} (one training step's activations)"
        fix = "use a smaller data.shape or train.batch"
    check_fits(params + activations, what, fix, device)


def lazy_adam(params, lr, betas, interval):
    """Adam with StyleGAN2's correction for lazy regularisation every ``interval`` steps (0: none)."""
    ratio = interval / (interval + 1) if interval else 1.0
    return torch.optim.Adam(params, lr=lr * ratio, betas=tuple(b**ratio for b in betas), eps=1e-8)


def set_lazy_hparams(opt, lr, betas, interval):
    """Put the config's lr and betas (with the lazy-regularisation correction) into ``opt`` (after a resume
    restored the checkpoint's)."""
    ratio = interval / (interval + 1) if interval else 1.0
    for group in opt.param_groups:
        group["lr"], group["betas"] = lr * ratio, tuple(b**ratio for b in betas)


def optimizer_step(opt, loss, params, world, scaler):
    """Backward (scaled for float16), average gradients over ranks, step.

    The average comes before unscaling, so every rank sees the same inf/nan check and skips the same steps.
    """
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    distributed.average_gradients(params, world)
    scaler.unscale_(opt)
    scaler.step(opt)
    scaler.update()


def mixed_ws(G, z, c, prob):
    """Map z; with probability ``prob`` the ws from a random crossover on come from a second latent.

    Decided on the device (no host synchronisation): the second mapping is always computed, then selected.
    """
    ws = G.mapping(z, c)
    if prob <= 0 or G.num_ws < 2:
        return ws
    other = G.mapping(torch.randn_like(z), c, update_w_avg=False)
    cutoff = torch.randint(1, G.num_ws, [], device=z.device)
    cutoff = torch.where(torch.rand([], device=z.device) < prob, cutoff, torch.full_like(cutoff, G.num_ws))
    take_other = torch.arange(G.num_ws, device=z.device) >= cutoff  # [num_ws]
    return torch.where(take_other[None, :, None], other, ws)


def _rng_state(device):
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _batch(item, device):
    x, c = item if isinstance(item, (list, tuple)) else (item, None)
    return x.to(device, non_blocking=True).float(), None if c is None else c.to(device, non_blocking=True)


def check_own_folder(run_dir: Path, overwrite: bool) -> None:
    """Refuse a non-empty ``run_dir`` that ndgan did not make (no ``.lock`` and no checkpoint) unless
    ``overwrite``: training would replace its config.yaml and append to its stats.jsonl."""
    if overwrite or not run_dir.is_dir() or (run_dir / ".lock").exists() or ckpt.list_checkpoints(run_dir):
        return
    theirs = sorted(p.name for p in run_dir.iterdir() if not p.name.startswith((TMP_PREFIX, PROBE_PREFIX)))
    if theirs:
        raise FileExistsError(f"--out: {run_dir} is not empty and not an ndgan run folder (it holds {theirs[0]!r}"
                              f"{f' and {len(theirs) - 1} more' if len(theirs) > 1 else ''}); choose another "
                              f"--out, or pass --overwrite to train into it (its config.yaml is then replaced "
                              f"and its stats.jsonl appended to)")


def train(cfg: Config, run_dir="runs/run", resume=None, overwrite: bool = False) -> Path:
    """Train according to ``cfg`` into ``run_dir``; ``resume`` is None, 'auto' or a checkpoint path.
    ``overwrite``: train into a non-empty folder that ndgan did not make (``check_own_folder``).

    A config built in code gets the same type and range checks as one read from YAML."""
    cfg = from_dict(to_dict(cfg))
    t, run_dir = cfg.train, Path(run_dir)
    rank, world, device = distributed.setup(t.device)
    if t.batch % world:
        raise ConfigError(f"train.batch: {t.batch} is not divisible by the {world} processes")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = t.tf32  # off: R1/PL precision
    elif t.cpu_malloc_cache:
        cache_cpu_allocations()
    if rank == 0:
        check_own_folder(run_dir, overwrite)
        check_writable(run_dir)  # the folder itself is made once everything has been checked: no partial runs

    # Resume: the newest valid checkpoint of the run folder, or a given file.
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
    if state is not None:
        ckpt.check_training_state(state, resume if resume != "auto" else run_dir)
        newer = [p.name for p in existing if ckpt.checkpoint_nimg(p) > state["nimg"]]
        if newer and resume != "auto":  # (auto skipped only newer ones that do not load)
            raise FileExistsError(f"--resume {resume}: {run_dir} holds newer checkpoints ({newer[-1]}) that this run "
                                  f"would overwrite; choose another --out to branch off from {Path(resume).name}")
        old, new = state["config"], to_dict(cfg)
        fixed = {"data": ("source", "shape", "channels", "periodic"), "G": None, "D": None}
        for section, keys in fixed.items():
            pick = (lambda d: d) if keys is None else (lambda d: {k: d[k] for k in keys})
            if pick(old[section]) != pick(new[section]):
                raise ConfigError(f"resume: the config's '{section}' section differs from the checkpoint's in what "
                                  f"defines the networks or the data; only train.* and data.path/options/workers "
                                  f"may change when resuming")
        for key in ("r1_gamma", "ema_kimg"):  # e.g. a default that became auto since the checkpoint was written
            if rank == 0 and old["train"].get(key) != new["train"][key]:
                print(f"warning: train.{key} is {new['train'][key]:g} now, the checkpoint trained with "
                      f"{old['train'].get(key)}; set train.{key} to keep it")
        if state["nimg"] >= int(round(t.kimg * 1000)) and rank == 0:
            print(f"nothing to do: the checkpoint is at {state['nimg'] / 1000:g} kimg, train.kimg={t.kimg:g}")
    torch.manual_seed(t.seed * 1_000_003 + rank)

    # Data and networks, each size checked before it is allocated.
    check_training_fits(cfg, device)
    if cfg.data.source not in BUILT_IN and not path_exists(cfg.data.path):
        raise ConfigError(f"data.path: {cfg.data.path} does not exist. "
                          + (cfg.data.missing_hint or "Point data.path at the dataset."))
    with distributed.rank_zero_first():  # rank 0 generates or caches data files, the others then read them
        dataset = open_dataset(cfg.data.source, **source_options(cfg.data))
    if t.metrics:
        held_out_config(cfg)  # on every rank: a missing held-out file must not leave the others waiting
    first = dataset[0]
    sample = first[0] if isinstance(first, (list, tuple)) else first
    if tuple(sample.shape) != (cfg.data.channels, *cfg.data.shape):
        raise ConfigError(f"data.shape / data.channels: the {cfg.data.source} data gives samples of "
                          f"{tuple(sample.shape)}, the config says {(cfg.data.channels, *cfg.data.shape)}")
    if len(dataset) < t.batch:
        raise ConfigError(f"train.batch: {t.batch} is larger than the dataset ({len(dataset)} samples at "
                          f"{cfg.data.path or cfg.data.source}); use a smaller batch or more data")
    check_fits(8 * len(dataset), f"the data: {len(dataset)} samples (data.options.length, or the dataset's size)",
               "each epoch's shuffled order holds 8 bytes per sample; use fewer samples", "cpu")
    c_dim = first[1].numel() if isinstance(first, (list, tuple)) else 0
    G, D = build_networks(cfg, c_dim)
    G, D = G.to(device).train(), D.to(device).train()
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    r1_interval = t.r1_interval if (t.loss == "nonsaturating" and t.r1_gamma > 0) else 0
    pl_interval = t.pl_interval if t.pl_weight > 0 else 0
    G_opt = lazy_adam(G.parameters(), t.g_lr, t.betas, pl_interval)
    D_opt = lazy_adam(D.parameters(), t.d_lr, t.betas, r1_interval)
    # Autocast for the main passes; R1 and path length run in full precision. float16 needs loss scaling.
    low = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(t.precision)
    autocast = (lambda: torch.autocast(device.type, dtype=low)) if low is not None else nullcontext
    scalers = {name: torch.amp.GradScaler(device.type, enabled=t.precision == "float16") for name in ("G", "D")}
    unscaled = torch.amp.GradScaler(device.type, enabled=False)  # R1 and path length: plain steps

    # Adaptive discriminator augmentation: everything D sees passes through augment() with probability ada.p.
    aug = cfg.augment
    ada = AdaptiveP(aug.mode, aug.p, aug.target, aug.interval, aug.speed_kimg, t.batch, device)
    ops = aug.ops if aug.ops is not None else default_ops(cfg.data.shape, cfg.data.periodic)
    augment_kwargs = dict(ops=ops, periodic=cfg.data.periodic, flip_axes=aug.flip_axes)

    def run_D(net, x, c):
        return net(augment(x, ada.p, **augment_kwargs) if ada.active else x, c)

    lr_scale = 1.0  # lowered by every rollback after a numerical fault

    def restore(state):
        """Networks, optimisers (the config's lr and betas, times lr_scale), scalers, ADA's p and the RNG from a
        checkpoint; returns (pl_mean, step, nimg)."""
        try:
            G.load_state_dict(state["G"])
            D.load_state_dict(state["D"])
            G_ema.load_state_dict(state["G_ema"])
            G_opt.load_state_dict(state["G_opt"])
            D_opt.load_state_dict(state["D_opt"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise ValueError(f"resume: the checkpoint's tensors do not fit the networks ({type(e).__name__}: "
                             f"{str(e).splitlines()[0]})") from None
        set_lazy_hparams(G_opt, t.g_lr * lr_scale, t.betas, pl_interval)  # train.* may change on resume
        set_lazy_hparams(D_opt, t.d_lr * lr_scale, t.betas, r1_interval)
        if "augment" in state:
            ada.load_state_dict(state["augment"], pending=rank == 0)
        for name, scaler_state in state.get("scalers", {}).items():
            if scaler_state:
                scalers[name].load_state_dict(scaler_state)
        if rank == 0:
            torch.set_rng_state(state["rng"]["torch"])
            if "cuda" in state["rng"] and device.type == "cuda":
                torch.cuda.set_rng_state(state["rng"]["cuda"], device)
        else:
            torch.manual_seed(t.seed * 1_000_003 + rank + state["step"])
        return state["pl_mean"].to(device), state["step"], state["nimg"]

    pl_mean = torch.zeros([], device=device)
    step = nimg = 0
    if state is not None:
        lr_scale = float(state.get("lr_scale", 1.0))
        pl_mean, step, nimg = restore(state)
    for net in (G, D, G_ema):
        distributed.broadcast_module(net)
    g_params, d_params = list(G.parameters()), list(D.parameters())  # for the optimiser steps, built once
    # Compiled with static shapes (every batch has the same shape); R1 and path length stay uncompiled:
    # compiled graphs do not support double backward.
    synthesis = torch.compile(G.synthesis, dynamic=False) if t.compile else G.synthesis
    D_main = torch.compile(D, dynamic=False) if t.compile else D
    per_rank = t.batch // world
    group = cfg.D.mbstd_group_size
    if cfg.D.mbstd_num_channels and group and per_rank % min(group, per_rank):
        raise ConfigError(f"train.batch: {t.batch} over {world} process(es) gives {per_rank} per process, which "
                          f"D.mbstd_group_size={group} does not divide; use a batch of {world} x a multiple of "
                          f"{min(group, per_rank)}")
    def batches_from(start_step):  # the step-indexed batch stream, from any step (resume, rollback)
        return iter(make_loader(dataset, t.batch, workers=cfg.data.workers, seed=t.seed,
                                pin_memory=device.type == "cuda", start_step=start_step, rank=rank, world=world))

    batches = batches_from(step)
    grid_gen = torch.Generator().manual_seed(t.seed + 123)
    grid_z = torch.randn(t.grid_size, G.z_dim, generator=grid_gen).to(device)
    grid_c = None
    if c_dim:
        grid_c = torch.stack([_batch(dataset[i % len(dataset)], "cpu")[1] for i in range(t.grid_size)]).to(device)

    total, snap = int(round(t.kimg * 1000)), max(int(round(t.snapshot_kimg * 1000)), 1)
    next_snapshot = (nimg // snap + 1) * snap
    # Metrics run on rank 0; building the evaluator first makes a missing weights file an error before step 0.
    evaluator = None
    if t.metrics and rank == 0:
        from ..metrics.evaluate import Evaluator

        real = metrics_dataset(cfg, dataset)  # rank 0 alone: the other ranks never evaluate
        # Feature networks initialise their layers from the global RNG before loading weights: forked, so that a
        # run with metrics draws exactly the latents of one without.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            evaluator = Evaluator(t.metrics, real, cfg.metrics, device, metadata=getattr(dataset, "metadata", None))
    every = max(int(round((t.metrics_kimg or t.snapshot_kimg) * 1000)), 1)
    next_metrics = (nimg // every + 1) * every
    lock = writer = bar = undo = None
    try:  # what is opened here is closed by the loop's finally; until then, here if something fails
        if rank == 0:  # everything checked: the run folder, its lock, and the resolved config
            undo = FolderUndo(run_dir)  # what this run adds, taken back if it fails before its first checkpoint
            undo.make()
            lock = lock_run_folder(run_dir)
            for stale in stale_temporaries(run_dir):  # half-written by a killed run (SIGKILL, power cut)
                print(f"removing {stale.name}: left by a killed run")
                if stale.is_dir():
                    stale.rmdir()
                else:
                    stale.unlink()
            resolved = yaml.safe_dump(to_dict(cfg), sort_keys=False)
            atomic_write(run_dir / "config.yaml", lambda p: Path(p).write_text(resolved))
            writer = _tensorboard(run_dir)
    except BaseException:
        _close_and_undo((bar, writer, lock), undo, run_dir)
        raise
    sums, counts, t_log, nimg_log = {}, {}, time.time(), nimg

    def accumulate(name, value):  # logged averages are over the steps where the term ran
        sums[name] = sums.get(name, 0) + value.detach().float()
        counts[name] = counts.get(name, 0) + 1

    def save_snapshot():
        distributed.check_in_sync(G, world)
        distributed.check_in_sync(D, world)
        if rank != 0:
            return
        with torch.no_grad():
            images = torch.cat([G_ema(z, None if grid_c is None else grid_c[i: i + 8], noise_mode="const")
                                for i, z in zip(range(0, t.grid_size, 8), grid_z.split(8))])
        grid = sample_grid(images.cpu())
        atomic_write(run_dir / f"samples-{nimg:09d}.png", lambda p: save_png(grid, p))
        if images.ndim == 5:  # 3D: a volume render of the first sample's first channel, if pyvista is there
            try:
                from ..viz.render import render
            except ImportError:
                render = None
            if render is not None:
                units = getattr(dataset, "metadata", {}).get("units")
                picture = render(images[0, 0].float().cpu().numpy(), units=units, window_size=(384, 384))
                atomic_write(run_dir / f"render-{nimg:09d}.png", lambda p: save_png(picture, p))
        if writer is not None:
            writer.add_image("samples", grid, nimg, dataformats="HWC" if grid.ndim == 3 else "HW")
        ckpt.save({"G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(),
                   "G_opt": G_opt.state_dict(), "D_opt": D_opt.state_dict(), "G_kwargs": G.init_kwargs,
                   "D_kwargs": D.init_kwargs, "config": to_dict(cfg), "step": step, "nimg": nimg,
                   "pl_mean": pl_mean.detach().cpu(), "rng": _rng_state(device), "augment": ada.state_dict(),
                   "lr_scale": lr_scale,
                   "scalers": {k: v.state_dict() for k, v in scalers.items()},
                   "data_metadata": _plain_metadata(dataset)}, run_dir / ckpt.checkpoint_name(nimg))
        ckpt.prune(run_dir, t.keep_checkpoints)

    stop, saved_at, rollbacks = distributed.StopSignals().install(), None, 0
    finished = False
    try:
        if evaluator is not None and nimg == 0 and t.metrics_at_start:  # a curve's starting point (ADA's tick 0)
            t_log += log_metrics(evaluator, G_ema, run_dir, writer, nimg, step)
        while nimg < total:
            reals, c = _batch(next(batches), device)
            z = torch.randn(per_rank, G.z_dim, device=device)

            # D main: logistic loss (or WGAN-GP) on augmented reals and fakes; G's output is a constant here.
            D.requires_grad_(True)
            with torch.no_grad(), autocast():
                fakes = synthesis(mixed_ws(G, z, c, t.style_mixing))
            with autocast():
                real_logits, fake_logits = run_D(D_main, reals, c), run_D(D_main, fakes, c)
                if t.loss == "nonsaturating":
                    d_loss = losses.d_logistic(real_logits, fake_logits)
                else:
                    d_loss = losses.wgan_d(real_logits, fake_logits)
            ada.observe(real_logits)
            if t.loss == "wgan-gp":
                d_loss = d_loss + t.gp_weight * losses.gradient_penalty(lambda x, c: run_D(D, x, c), reals, fakes,
                                                                         c).mean()
            optimizer_step(D_opt, d_loss, d_params, world, scalers["D"])
            accumulate("loss/D", d_loss)

            # R1, lazily: gamma/2 * |grad D(real)|^2 every r1_interval steps, scaled by the interval; as in ADA,
            # the gradient is taken at the un-augmented reals, through the augmentation.
            if r1_interval and step % r1_interval == 0:
                reals_r1 = reals.detach().requires_grad_(True)
                r1 = losses.r1_penalty(run_D(D, reals_r1, c), reals_r1)
                optimizer_step(D_opt, r1.mean() * (t.r1_gamma / 2) * r1_interval, d_params, world, unscaled)
                accumulate("loss/R1", r1.mean())

            # G main: non-saturating loss through a frozen D.
            D.requires_grad_(False)
            z = torch.randn(per_rank, G.z_dim, device=device)
            with autocast():
                fakes = synthesis(mixed_ws(G, z, c, t.style_mixing))
                fake_logits = run_D(D_main, fakes, c)
                g_loss = losses.g_nonsaturating(fake_logits) if t.loss == "nonsaturating" else losses.wgan_g(fake_logits)
            optimizer_step(G_opt, g_loss, g_params, world, scalers["G"])
            accumulate("loss/G", g_loss)

            # Path length, lazily: (|J_w^T y| - a)^2 on a smaller batch every pl_interval steps.
            if pl_interval and step % pl_interval == 0:
                n_pl = max(per_rank // t.pl_batch_shrink, 1)
                ws = mixed_ws(G, torch.randn(n_pl, G.z_dim, device=device), None if c is None else c[:n_pl],
                              t.style_mixing)
                images = G.synthesis(ws)
                lengths = losses.path_lengths(images, ws, losses.path_length_noise(images))
                penalty, pl_mean = losses.path_length_penalty(lengths, pl_mean, t.pl_decay)
                pl_mean = pl_mean.detach()
                optimizer_step(G_opt, penalty.mean() * t.pl_weight * pl_interval, g_params, world, unscaled)
                accumulate("loss/PL", penalty.mean())

            # EMA of G with a half-life of ema_kimg (ramped up over the first images).
            step, nimg = step + 1, nimg + t.batch
            if step % aug.interval == 0:  # ADA: move p by the sign of E[sign(D(real))] - target (summed over ranks)
                ada.step(distributed.all_reduce_sum)
            ema_nimg = t.ema_kimg * 1000
            if t.ema_rampup is not None:
                ema_nimg = min(ema_nimg, nimg * t.ema_rampup)
            beta = 0.5 ** (t.batch / max(ema_nimg, 1e-8))
            with torch.no_grad():
                for p_ema, p in zip(G_ema.parameters(), G.parameters()):
                    p_ema.copy_(p.lerp(p_ema, beta))
                for b_ema, b in zip(G_ema.buffers(), G.buffers()):
                    b_ema.copy_(b)

            # Numerical faults, checked where the loop synchronises anyway (log steps) and before every
            # checkpoint: a non-finite loss or parameter rolls back to the newest checkpoint with the learning
            # rates times train.rollback_lr_factor, at most train.max_rollbacks times; then the run stops.
            if (step % t.log_steps == 0 or nimg >= next_snapshot or nimg >= total) and \
                    not all_finite(sums, (g_params, d_params), world, device):
                rollbacks += 1
                found, good = ckpt.latest_valid(run_dir)
                if good is None or rollbacks > t.max_rollbacks:
                    raise FloatingPointError(
                        f"non-finite losses or parameters at step {step} ({nimg / 1000:g} kimg)"
                        + (f" after {rollbacks - 1} rollbacks" if good is not None else ", before any checkpoint")
                        + "; lower train.g_lr / train.d_lr, raise train.r1_gamma, or check the data for NaN")
                lr_scale *= t.rollback_lr_factor
                pl_mean, step, nimg = restore(good)
                batches = batches_from(step)
                saved_at, next_snapshot = nimg, (nimg // snap + 1) * snap
                next_metrics = (nimg // every + 1) * every
                sums, counts, t_log, nimg_log = {}, {}, time.time(), nimg
                if rank == 0:
                    print(f"warning: non-finite values; rolled back to {found.name} with learning rates x{lr_scale:g}")
                    append_line(run_dir / "stats.jsonl", json.dumps({"kimg": nimg / 1000, "step": step,
                                                                      "rollback": rollbacks, "lr_scale": lr_scale}))
                continue

            # Log: the only host synchronisation, every log_steps steps. The progress bar appears once a first
            # step has run: an error met in the first batch (a bad sample) is then the only line printed.
            if rank == 0 and bar is None:
                bar = _progress(total, nimg_log)
            if rank == 0 and (step % t.log_steps == 0 or nimg >= total):
                now = time.time()
                stats = {"kimg": nimg / 1000, "step": step, "sec_per_kimg": (now - t_log) / max((nimg - nimg_log) / 1000, 1e-9),
                         "pl_mean": float(pl_mean), "augment_p": float(ada.p),
                         **{k: float(v) / counts[k] for k, v in sums.items()}}
                append_line(run_dir / "stats.jsonl", json.dumps(stats))
                if writer is not None:
                    for k, v in stats.items():
                        writer.add_scalar(k, v, nimg)
                if bar is not None:
                    bar.update(nimg - bar.n)
                    bar.set_postfix({"kimg": f"{stats['kimg']:.2f}", "s/kimg": f"{stats['sec_per_kimg']:.3g}",
                                     **{k.split("/")[-1]: f"{v:.3g}" for k, v in stats.items() if k.startswith("loss")}})
                sums, counts, t_log, nimg_log = {}, {}, now, nimg

            # Snapshot: sample grid and checkpoint every snapshot_kimg, and at the end.
            if nimg >= next_snapshot or nimg >= total:
                save_snapshot()
                saved_at, next_snapshot = nimg, (nimg // snap + 1) * snap

            # Metrics on G_ema every metrics_kimg (default: every snapshot) and at the end; seeded, RNG untouched.
            if t.metrics and (nimg >= next_metrics or nimg >= total):
                if evaluator is not None:
                    seconds = log_metrics(evaluator, G_ema, run_dir, writer, nimg, step)
                    t_log += seconds  # keep the metrics' time out of sec_per_kimg
                next_metrics = (nimg // every + 1) * every

            # SIGTERM / SIGINT: checkpoint where we are and stop (every step alone; under torchrun the ranks agree
            # at log steps, where they synchronise anyway).
            if (world == 1 or step % t.log_steps == 0) and stop.agreed(world, device):
                if saved_at != nimg:
                    save_snapshot()
                if rank == 0:
                    name = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}.get(stop.signum, "a signal on another rank")
                    print(f"stopped by {name} at {nimg / 1000:g} kimg; checkpoint {ckpt.checkpoint_name(nimg)} written; "
                          f"continue with --resume auto")
                break
        finished = True
    finally:
        stop.restore()
        _close_and_undo((lock, bar, writer), None if finished else undo, run_dir)
    distributed.cleanup()
    return run_dir


def _close_and_undo(handles, undo, run_dir: Path) -> None:
    """Close the run's open files; then, if ``undo`` is given (the run failed) and no checkpoint exists in
    ``run_dir``, remove what the run created there: a run that kept nothing leaves nothing."""
    for handle in handles:
        if handle is not None:
            handle.close()
    if undo is not None and not ckpt.list_checkpoints(run_dir):
        undo.remove()


def cache_cpu_allocations() -> bool:
    """Make glibc's malloc keep freed large blocks for reuse; returns whether it applied (Linux with glibc).

    By default every allocation above 32 MB (a 3D activation at batch 8) is a fresh ``mmap`` whose pages the
    kernel faults in and zeroes on first touch, and ``free`` unmaps it again: on 2 CPU cores that made a batch-8
    step of the 32³ energy model 1.7x slower than two batch-4 steps (benchmarks/RESULTS.md). With ``mmap`` off
    for malloc (M_MMAP_MAX = 0) and a 1 GiB trim threshold, freed blocks are reused. Process-wide: memory the
    run frees stays with the process for reuse until it exits.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's <malloc.h>
    return mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, 2**30) == 1


def all_finite(sums: dict, param_groups, world: int, device) -> bool:
    """Whether the accumulated losses and all parameters are finite, on every rank (one host sync)."""
    values = [v.reshape(1).float() for v in sums.values()]
    values += [torch.stack([p.detach().float().abs().sum() for p in group]).sum().reshape(1) for group in param_groups]
    flag = torch.cat(values).isfinite().all().float().reshape(1)
    if world > 1:
        distributed.all_reduce_min(flag)
    return bool(flag.item())


def log_metrics(evaluator, G_ema, run_dir: Path, writer, nimg: int, step: int) -> float:
    """Evaluate, append a line to ``run_dir/metrics.jsonl`` and TensorBoard scalars ``metrics/*``; return seconds."""
    start = time.time()
    results, info = evaluator.evaluate(G_ema)
    seconds = time.time() - start
    from ..metrics.settings import json_safe

    record = json_safe({"kimg": nimg / 1000, "step": step, "results": results, "info": info,
                        "seconds": round(seconds, 2)})
    append_line(run_dir / "metrics.jsonl", json.dumps(record))
    if writer is not None:
        for key, value in results.items():
            writer.add_scalar(f"metrics/{key}", value, nimg)
    return seconds


def lock_run_folder(run_dir: Path):
    """Hold an exclusive lock on ``run_dir/.lock`` while training (the returned file; closing it releases the
    lock): a second process training into the same folder is refused. A POSIX record lock (``lockf``), not
    ``flock``: DataLoader workers forked during the run must not inherit it and outlive the trainer. Where
    ``fcntl`` is missing (Windows) no lock is taken."""
    try:
        import fcntl
    except ImportError:
        return None
    f = open(run_dir / ".lock", "a")
    try:
        fcntl.lockf(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise FileExistsError(f"{run_dir}: another process is training into this folder; wait for it to finish "
                              f"or choose another --out") from None
    return f


_STALE = re.compile(rf"^{re.escape(TMP_PREFIX)}\d+-(checkpoint-\d{{9}}\.pt|(samples|render)-\d{{9}}\.png|config\.yaml)$"
                    r"|^\.checkpoint-\d{9}\.pt\.\d+\.tmp$|^\.config\.yaml\.tmp$")


def stale_temporaries(run_dir: Path) -> list[Path]:
    """Temporary files of the names training writes (older ndgan versions' names too); only ever called while
    holding the run folder's lock, so none of them belongs to a live run."""
    files = [p for p in run_dir.iterdir() if _STALE.match(p.name) and p.is_file() and not p.is_symlink()]
    probes = [p for p in run_dir.iterdir() if p.name.startswith(PROBE_PREFIX) and p.is_dir() and not any(p.iterdir())]
    return files + probes


def _plain_metadata(dataset):
    meta = getattr(dataset, "metadata", {})
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in meta.items()
            if isinstance(v, (int, float, str, bool, list, tuple, type(None)))}


def _tensorboard(run_dir):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


def _progress(total, start):
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=start, unit="img", unit_scale=True, dynamic_ncols=True, mininterval=2.0)
