"""torch.distributed helpers for runs launched with torchrun (one process per GPU, or gloo on CPU).

Gradients are averaged with one flattened all-reduce per optimiser step, as StyleGAN2-ADA does, rather than
through DistributedDataParallel: R1 and path-length regularisation take gradients of gradients, which DDP's
hooks do not support.
"""

from __future__ import annotations

import datetime
import os
import signal
import threading
from contextlib import contextmanager

import torch
import torch.distributed as dist

from ..ops.check import check_device


def setup(device: str):
    """Initialise the process group if torchrun started us; return (rank, world_size, torch.device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = str(check_device(device, "train.device"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        # Rank 0 evaluates metrics while the others wait in their next collective: allow an hour for that.
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=60))
    rank = dist.get_rank() if dist.is_initialized() else 0
    if device == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    return rank, world, torch.device(device)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks in place (a no-op without a process group)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor)
    return tensor


def all_reduce_min(tensor: torch.Tensor) -> torch.Tensor:
    """Minimum of ``tensor`` over all ranks, in place (a no-op without a process group)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return tensor


def average_gradients(params, world: int) -> None:
    """Average ``.grad`` of ``params`` over all ranks with a single flattened all-reduce."""
    if world <= 1:
        return
    params = [p for p in params if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p in params:
        p.grad.copy_(flat[offset: offset + p.numel()].view_as(p.grad))
        offset += p.numel()


def broadcast_module(module, src: int = 0) -> None:
    """Make every rank start from rank ``src``'s parameters and buffers."""
    if dist.is_initialized():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src)


def check_in_sync(module, world: int) -> None:
    """Raise if the ranks' parameters have drifted apart (one all-gather of a checksum per call)."""
    if world <= 1:
        return
    checksum = torch.stack([p.detach().double().sum() for p in module.parameters()]).sum().reshape(1)
    gathered = [torch.zeros_like(checksum) for _ in range(world)]
    dist.all_gather(gathered, checksum)
    values = torch.cat(gathered)
    if not torch.allclose(values, values[0].expand_as(values), rtol=1e-6, atol=1e-6):
        raise RuntimeError(f"ranks disagree on the parameters (checksums {values.tolist()}): gradients were not "
                           f"averaged across processes")


@contextmanager
def rank_zero_first():
    """Run the body on rank 0 first (e.g. generating a dataset file), then on the other ranks."""
    if dist.is_initialized() and dist.get_rank() != 0:
        dist.barrier()
    yield
    if dist.is_initialized() and dist.get_rank() == 0:
        dist.barrier()


def cleanup():
    """Destroy the process group, if one was started."""
    if dist.is_initialized():
        dist.destroy_process_group()


class StopSignals:
    """SIGTERM (cluster pre-emption, ``kill``, torchrun shutting down) and SIGINT (Ctrl-C) set a flag instead of
    killing the process, so the training loop can write a checkpoint and exit cleanly. A second Ctrl-C
    interrupts at once. Handlers are installed only in the main thread and restored by ``restore()``."""

    def __init__(self):
        self.signum, self._previous = None, {}

    def install(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def agreed(self, world: int, device) -> bool:
        """Whether to stop now: this process's flag, or under torchrun any rank's (one all-reduce, so call it
        at steps where every rank calls it)."""
        if world <= 1:
            return self.signum is not None
        flag = torch.tensor([0.0 if self.signum is None else 1.0], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())
