"""Shared by the benchmark scripts: median wall time of a callable and peak memory, CPU or CUDA."""

import resource
import statistics
import time

import torch


def timed(fn, reps, device):
    """Median seconds of ``reps`` calls of ``fn`` after one warm-up (CUDA work waited for)."""
    fn()
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def peak_memory(device) -> str:
    """Peak CUDA allocation, or the process's peak resident memory on CPU."""
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB CUDA"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB RSS"
