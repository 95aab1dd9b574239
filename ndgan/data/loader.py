"""Batches for training: one DataLoader recipe (workers, pinned memory, prefetch, DDP sharding)."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler


def make_loader(dataset, batch_size, workers=0, seed=0, pin_memory=None, prefetch_factor=2, distributed=None):
    """A shuffling loader that drops the last incomplete batch (the minibatch-stddev groups need full ones).

    ``distributed`` (default: whether torch.distributed is initialised) shards the data across ranks with a
    DistributedSampler; ``pin_memory`` defaults to CUDA being available.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    if not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers: expected a non-negative int, got {workers!r}")
    if distributed is None:
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if distributed:
        sampler = DistributedSampler(dataset, shuffle=True, seed=seed, drop_last=True)
        per_rank = len(sampler)
    else:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
        per_rank = len(dataset)
    if per_rank < batch_size:
        raise ValueError(f"batch_size: {batch_size} is larger than the {per_rank} samples available"
                         f"{' per rank' if distributed else ''}; use a smaller batch or more data")
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=True,
                      pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
                      prefetch_factor=prefetch_factor if workers else None, persistent_workers=workers > 0)


def infinite(loader):
    """Yield batches forever, reshuffling every epoch (and telling a DistributedSampler the epoch)."""
    epoch = 0
    while True:
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)
        yield from loader
        epoch += 1
