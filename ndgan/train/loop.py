"""``train(cfg, run_dir)``: StyleGAN2 training in one visible loop (Karras et al. 2020), read as "resume,
build, loop: step, log, snapshot, metrics".

The pieces: ``state`` (what a checkpoint holds, and the resume policy), ``step`` (the four phases of one step,
the EMA), ``run_folder`` (the folder's lock, logs and pictures), ``distributed`` (torchrun). Progress counts
real samples shown to D. Batches come from a step-indexed sampler and all RNG state is checkpointed, so a
resumed CPU run ends with exactly the tensors of an uninterrupted one.
"""

from __future__ import annotations

import ctypes
import signal
import sys
import time
from pathlib import Path

import torch

from ..data import BUILT_IN, open_dataset
from ..data.configured import held_out_config, metrics_dataset, path_exists, source_options
from ..data.loader import make_loader
from ..io import checkpoint as ckpt
from ..io.budget import check_fits
from ..io.files import check_writable
from . import distributed
from .config import Config, ConfigError, from_dict, resolve_precision, to_dict
from .growing import Growing
from .run_folder import RunFolder, check_own_folder
from .state import TrainingState, check_training_fits, plain_metadata, resume_state
from .step import TrainingStep


def train(cfg: Config, run_dir="runs/run", resume=None, overwrite: bool = False, init=None) -> Path:
    """Train according to ``cfg`` into ``run_dir``; ``resume`` is None, 'auto' or a checkpoint path.
    ``overwrite``: train into a non-empty folder that ndgan did not make (``check_own_folder``). ``init``:
    start a new run from a model's weights (``TrainingState.init_from``), not its training state.

    A config built in code gets the same type and range checks as one read from YAML."""
    cfg = from_dict(to_dict(cfg))
    t, run_dir = cfg.train, Path(run_dir)
    rank, world, device = distributed.setup(t.device)
    if t.precision == "auto":  # the run folder and the checkpoints record what ran
        cfg = resolve_precision(cfg, device)
        t = cfg.train
        if rank == 0:
            print(f"train.precision auto: {t.precision} on {device}")
    _configure(cfg, world, device)
    if rank == 0:
        check_own_folder(run_dir, overwrite)
        check_writable(run_dir)  # the folder itself is made once everything has been checked: no partial runs

    # Resume, build: data and networks, each size checked before it is allocated.
    state = resume_state(cfg, run_dir, resume, rank, init)
    torch.manual_seed(t.seed * 1_000_003 + rank)
    check_training_fits(cfg, device)
    dataset, c_dim = open_training_data(cfg)
    # Labels the data compute (data.options.labels) are real-valued: their embedding keeps its magnitude.
    s = TrainingState(cfg, c_dim, device, bool((getattr(dataset, "metadata", {}) or {}).get("label_names")))
    if state is not None:
        s.restore(state, rank)
    elif init is not None:
        s.init_from(init, announce=rank == 0)
    for net in (s.G, s.D, s.G_ema):
        distributed.broadcast_module(net)
    train_step = TrainingStep(s, cfg, world, device)
    growing = Growing(cfg, s) if t.growing else None

    def start_batches():  # the batch stream from s.step, with the batch of its level (train.growing_batch)
        if growing is not None:
            growing.update(s.nimg)  # the networks are in the phase of s.nimg, and so is every checkpoint
        train_step.set_batch(growing.batch(s.nimg) if growing else t.batch)
        return _batches(dataset, cfg, s.step, rank, world, device, train_step.batch)

    batches = start_batches()
    grid_z, grid_c = _grid(cfg, dataset, s.G.z_dim, c_dim, device)
    evaluator = _evaluator(cfg, dataset, device) if t.metrics and rank == 0 else None
    metadata, units = plain_metadata(dataset), getattr(dataset, "metadata", {}).get("units")
    total, snap = int(round(t.kimg * 1000)), max(int(round(t.snapshot_kimg * 1000)), 1)
    every = max(int(round((t.metrics_kimg or t.snapshot_kimg) * 1000)), 1)
    next_snapshot, next_metrics = (s.nimg // snap + 1) * snap, (s.nimg // every + 1) * every
    folder = RunFolder(run_dir, total).open(to_dict(cfg)) if rank == 0 else None

    def snapshot():  # the sample grid (and render) of G_ema, and the checkpoint
        distributed.check_in_sync(s.G, world)
        distributed.check_in_sync(s.D, world)
        if folder is not None:
            with torch.no_grad():
                images = torch.cat([s.G_ema(z, None if grid_c is None else grid_c[i: i + 8], noise_mode="const")
                                    for i, z in zip(range(0, t.grid_size, 8), grid_z.split(8))])
            folder.log_samples(images.cpu(), s.nimg, units)
            s.save(run_dir, metadata)

    stop, saved_at, rollbacks, finished = distributed.StopSignals().install(), None, 0, False
    t_log, nimg_log = time.time(), s.nimg
    try:
        if evaluator is not None and s.nimg == 0 and t.metrics_at_start:  # a curve's starting point (ADA's tick 0)
            t_log += folder.log_metrics(evaluator, s.G_ema, s.nimg, s.step)
        while s.nimg < total:
            reals, labels = _batch(next(batches), device, s.memory_format)
            train_step(growing.reals(reals) if growing else reals, labels)
            if growing is not None:
                growing.update(s.nimg)
                if growing.batch(s.nimg) != train_step.batch:  # a new level may bring its own batch
                    batches = start_batches()
            if folder is not None:
                folder.show_progress(nimg_log)

            # Numerical faults, checked where the loop synchronises anyway (log steps) and before every
            # checkpoint: a non-finite loss or parameter rolls back to the newest checkpoint with the learning
            # rates times train.rollback_lr_factor, at most train.max_rollbacks times; then the run stops.
            log = s.step % t.log_steps == 0 or s.nimg >= total
            if (log or s.nimg >= next_snapshot) and not train_step.all_finite():
                rollbacks += 1
                found, good = ckpt.latest_valid(run_dir)
                if good is None or rollbacks > t.max_rollbacks:
                    raise FloatingPointError(
                        f"non-finite losses or parameters at step {s.step} ({s.nimg / 1000:g} kimg)"
                        + (f" after {rollbacks - 1} rollbacks" if good is not None else ", before any checkpoint")
                        + "; lower train.g_lr / train.d_lr, raise train.r1_gamma, or check the data for NaN")
                s.restore(good, rank, s.lr_scale * t.rollback_lr_factor)
                batches = start_batches()
                saved_at, next_snapshot = s.nimg, (s.nimg // snap + 1) * snap
                next_metrics = (s.nimg // every + 1) * every
                train_step.reset()
                t_log, nimg_log = time.time(), s.nimg
                if folder is not None:
                    folder.log_rollback(s.nimg, s.step, rollbacks, s.lr_scale, found)
                continue

            # Log: the only host synchronisation, every log_steps steps.
            if log:
                now = time.time()
                if folder is not None:
                    folder.log_stats({"kimg": s.nimg / 1000, "step": s.step,
                                      "sec_per_kimg": (now - t_log) / max((s.nimg - nimg_log) / 1000, 1e-9),
                                      "pl_mean": float(s.pl_mean), "augment_p": float(s.ada.p),
                                      **(growing.stats() if growing else {}), **train_step.averages()}, s.nimg)
                train_step.reset()
                t_log, nimg_log = now, s.nimg

            # Snapshot: sample grid and checkpoint every snapshot_kimg, and at the end.
            if s.nimg >= next_snapshot or s.nimg >= total:
                snapshot()
                saved_at, next_snapshot = s.nimg, (s.nimg // snap + 1) * snap

            # Metrics on G_ema every metrics_kimg (default: every snapshot) and at the end; seeded, RNG untouched.
            if t.metrics and (s.nimg >= next_metrics or s.nimg >= total):
                if evaluator is not None:
                    t_log += folder.log_metrics(evaluator, s.G_ema, s.nimg, s.step)  # kept out of sec_per_kimg
                next_metrics = (s.nimg // every + 1) * every

            # SIGTERM / SIGINT: checkpoint where we are and stop (every step alone; under torchrun the ranks agree
            # at log steps, where they synchronise anyway).
            if (world == 1 or s.step % t.log_steps == 0) and stop.agreed(world, device):
                if saved_at != s.nimg:
                    snapshot()
                if rank == 0:
                    name = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}.get(stop.signum, "a signal on another rank")
                    print(f"stopped by {name} at {s.nimg / 1000:g} kimg; checkpoint {ckpt.checkpoint_name(s.nimg)} "
                          f"written; continue with --resume auto")
                break
        finished = True
    finally:
        stop.restore()
        if folder is not None:
            folder.close(failed=not finished)
    distributed.cleanup()
    return run_dir


def _configure(cfg: Config, world: int, device) -> None:
    """The batch's split over the processes, and the backends: cuDNN autotuning, TF32 as configured (off by
    default: R1 and path length need full precision), glibc's malloc cache on CPU."""
    t, per_rank, group = cfg.train, cfg.train.batch // world, cfg.D.mbstd_group_size
    if t.batch % world:
        raise ConfigError(f"train.batch: {t.batch} is not divisible by the {world} processes")
    micro = t.batch_gpu or per_rank
    if per_rank % micro:
        raise ConfigError(f"train.batch_gpu: {micro} does not divide the {per_rank} samples per process "
                          f"(train.batch {t.batch} over {world} process(es)); use a divisor of {per_rank}")
    if cfg.D.mbstd_num_channels and group and micro % min(group, micro):
        if t.batch_gpu:
            raise ConfigError(f"train.batch_gpu: {micro} is not a multiple of D.mbstd_group_size={group} (the groups "
                              f"stay inside a micro-batch); use a multiple of {group}")
        raise ConfigError(f"train.batch: {t.batch} over {world} process(es) gives {per_rank} per process, which "
                          f"D.mbstd_group_size={group} does not divide; use a batch of {world} x a multiple of "
                          f"{min(group, per_rank)}")
    for b in t.growing_batch or ():  # every level's batch splits as train.batch must
        if b % world or (cfg.D.mbstd_num_channels and group and (b // world) % min(group, b // world)):
            raise ConfigError(f"train.growing_batch: {b} over {world} process(es) gives {b // world} per process; "
                              f"use batches of {world} x a multiple of D.mbstd_group_size={group}")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = t.tf32
    elif t.cpu_malloc_cache:
        cache_cpu_allocations()


def open_training_data(cfg: Config):
    """(dataset, c_dim) for ``cfg.data``, checked against the config: its samples' shape, its size against the
    batch, the sampler's memory; rank 0 opens (and generates or caches) it first."""
    t = cfg.train
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
    largest = max(t.growing_batch or (t.batch,))
    if len(dataset) < largest:
        raise ConfigError(f"train.batch{' / growing_batch' if t.growing_batch else ''}: {largest} is larger than the "
                          f"dataset ({len(dataset)} samples at {cfg.data.path or cfg.data.source}); use a smaller "
                          f"batch or more data")
    check_fits(8 * len(dataset), f"the data: {len(dataset)} samples (data.options.length, or the dataset's size)",
               "each epoch's shuffled order holds 8 bytes per sample; use fewer samples", "cpu")
    return dataset, first[1].numel() if isinstance(first, (list, tuple)) else 0


def _batches(dataset, cfg: Config, start_step: int, rank: int, world: int, device, batch: int):
    """The step-indexed batch stream of ``batch`` samples from any step (resume, rollback, a new level)."""
    return iter(make_loader(dataset, batch, workers=cfg.data.workers, seed=cfg.train.seed,
                            pin_memory=device.type == "cuda", start_step=start_step, rank=rank, world=world))


def _batch(item, device, memory_format=None):
    """(reals, labels) on ``device``; the reals in the networks' memory format (``train.channels_last``)."""
    x, c = item if isinstance(item, (list, tuple)) else (item, None)
    x = x.to(device, non_blocking=True).float()
    if memory_format is not None:
        x = x.contiguous(memory_format=memory_format)
    return x, None if c is None else c.to(device, non_blocking=True)


def _grid(cfg: Config, dataset, z_dim: int, c_dim: int, device):
    """The fixed latents (and labels) of the snapshots' sample grid, from their own generator."""
    grid_z = torch.randn(cfg.train.grid_size, z_dim, generator=torch.Generator().manual_seed(cfg.train.seed + 123))
    grid_c = None
    if c_dim:
        grid_c = torch.stack([_batch(dataset[i % len(dataset)], "cpu")[1] for i in range(cfg.train.grid_size)])
        grid_c = grid_c.to(device)
    return grid_z.to(device), grid_c


def _evaluator(cfg: Config, dataset, device):
    """The metrics' evaluator (rank 0 alone), built before step 0 so that a missing weights file fails early;
    with memorization its real and training sides are computed then too, so that held-out reals that are
    training samples fail early as well. Feature networks initialise their layers from the global RNG before
    loading weights: forked, so that a run with metrics draws exactly the latents of one without."""
    from ..metrics.evaluate import Evaluator

    real = metrics_dataset(cfg, dataset)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        evaluator = Evaluator(cfg.train.metrics, real, cfg.metrics, device, train_dataset=dataset,
                              metadata=getattr(dataset, "metadata", None))
        if "memorization" in cfg.train.metrics:
            evaluator.prepare_real()
    return evaluator


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
