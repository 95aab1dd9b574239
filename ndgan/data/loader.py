"""Batches for training: one DataLoader recipe (workers, pinned memory, prefetch, sharding across ranks).

The loader is endless and step-indexed: the batch of step k is a function of (seed, k) alone (epoch e is a
permutation drawn with seed (seed, e)), so a run resumed at step k sees exactly the batches an uninterrupted
run would. Incomplete batches are never formed (the minibatch-stddev groups need full ones).
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Sampler


class StepBatchSampler(Sampler):
    """Index lists from ``start_step`` on: the global batch of each step, rank ``rank``'s slice of it."""

    def __init__(self, n, batch, seed=0, start_step=0, rank=0, world=1):
        self.n, self.batch, self.seed, self.start, self.rank, self.world = n, batch, seed, start_step, rank, world
        self.steps_per_epoch = n // batch

    def __iter__(self):
        step, per_rank, perm_epoch, perm = self.start, self.batch // self.world, None, None
        while True:
            epoch, pos = divmod(step, self.steps_per_epoch)
            if epoch != perm_epoch:  # one permutation per epoch (8 bytes a sample), drawn when the epoch starts
                gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
                perm_epoch, perm = epoch, torch.randperm(self.n, generator=gen)
            batch = perm[pos * self.batch: (pos + 1) * self.batch]
            yield batch[self.rank * per_rank: (self.rank + 1) * per_rank].tolist()
            step += 1


def make_loader(dataset, batch_size, workers=0, seed=0, pin_memory=None, prefetch_factor=2, start_step=0,
                rank=None, world=None):
    """An endless loader of shuffled batches from ``start_step`` on.

    ``batch_size`` is the global batch; under torch.distributed (``rank``/``world`` default to the process
    group's) each rank gets its ``batch_size // world`` slice. ``pin_memory`` defaults to CUDA being
    available. The loader has its own RNG: creating its iterator draws no number from the global one.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    if not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers: expected a non-negative int, got {workers!r}")
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    rank = (torch.distributed.get_rank() if distributed else 0) if rank is None else rank
    world = (torch.distributed.get_world_size() if distributed else 1) if world is None else world
    if batch_size % world:
        raise ValueError(f"batch_size: {batch_size} is not divisible by the {world} processes")
    if len(dataset) < batch_size:
        raise ValueError(f"batch_size: {batch_size} is larger than the dataset ({len(dataset)} samples); "
                         f"use a smaller batch or more data")
    sampler = StepBatchSampler(len(dataset), batch_size, seed, start_step, rank, world)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                      pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
                      prefetch_factor=prefetch_factor if workers else None, persistent_workers=workers > 0,
                      generator=torch.Generator().manual_seed(seed * 1_000_003 + rank + start_step))
