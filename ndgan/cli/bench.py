"""Time full training iterations of a config: python -m ndgan.bench CONFIG [KEY=VALUE ...] [--steps N] [--profile]

Runs the real training loop (D main, lazy R1, G main, lazy path length, EMA) in a temporary folder and reads
its stats: every interval is 16 steps, a multiple of the default lazy-regularisation intervals, so their cost
is amortised exactly; the first interval is warm-up. Prints the median samples/s and sec/kimg over the timed
intervals, the peak memory (CUDA: max allocated; CPU: max RSS of this process), the floating-point work of
the main passes per sample (counted by ``torch.utils.flop_counter``) and what fraction of this device's large
fp32 convolution throughput (measured here) that reaches; with ``--profile``, the top ops of
``torch.profiler`` over the whole run.
"""

from __future__ import annotations

import json
import math
import resource
import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from .. import cli
from ..train.config import load_config, resolve_precision
from ..nets import build_networks
from ..ops.check import check_device
from ..train.loop import train

INTERVAL = 16


def main(argv=None) -> int:
    p = cli.ArgumentParser(prog="python -m ndgan.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("config")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--device", default=None, help="cpu | cuda (default: the config's train.device)")
    p.add_argument("--steps", type=int, default=48,
                   help=f"timed steps, rounded up to intervals of {INTERVAL} (default 48), after {INTERVAL} warm-up steps")
    p.add_argument("--profile", action="store_true", help="print the top ops of torch.profiler")
    cli.add_debug_flag(p)
    args = p.parse_intermixed_args(argv)
    return cli.run(lambda: _run(args), args.debug)


def _run(args) -> int:
    if args.steps < 1:
        raise ValueError(f"--steps: expected a positive number of steps, got {args.steps}")
    base = load_config(args.config, args.overrides)
    batch = base.train.batch
    intervals = math.ceil(args.steps / INTERVAL)
    steps = INTERVAL * (intervals + 1)
    overrides = list(args.overrides) + [
        f"train.kimg={steps * batch / 1000}", f"train.log_steps={INTERVAL}",
        f"train.snapshot_kimg={10 * steps * batch / 1000}", "train.keep_checkpoints=1",
        "train.metrics=[]"]  # training speed only (benchmarks/metrics.py times the metrics)
    if args.device:
        overrides.append(f"train.device={args.device}")
    cfg = load_config(args.config, overrides)
    device = check_device(cfg.train.device, "train.device")
    with tempfile.TemporaryDirectory() as tmp:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        profiler = _profiler(device) if args.profile else None
        with profiler or nullcontext():
            train(cfg, Path(tmp) / "run")
        stats = [json.loads(line) for line in (Path(tmp) / "run" / "stats.jsonl").read_text().splitlines()]
    timed = [s["sec_per_kimg"] for s in stats[1:]] or [stats[0]["sec_per_kimg"]]
    sec_per_kimg = statistics.median(timed)
    samples_per_s = 1000 / sec_per_kimg
    if device.type == "cuda":
        peak = f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB CUDA max allocated"
    else:
        peak = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB max RSS"
    flops = main_pass_flops(cfg, device)
    precision = resolve_precision(cfg, device).train.precision
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(precision, torch.float32)
    conv_peak = conv_throughput(device, len(cfg.data.shape), dtype)
    print(f"{args.config} {' '.join(args.overrides)}".strip())
    print(f"  torch {torch.__version__}, {device}, {precision}, batch {batch}, {len(timed)} x {INTERVAL} steps after "
          f"warm-up")
    print(f"  {samples_per_s:.2f} samples/s   {sec_per_kimg:.1f} sec/kimg   peak {peak}")
    print(f"  main passes (D on reals and fakes, G step; no regularisation): {flops / 1e9:.1f} GFLOP per sample; "
          f"{flops * samples_per_s / 1e9:.0f} GFLOP/s = {flops * samples_per_s / conv_peak:.0%} of this device's "
          f"large {precision} convolution ({conv_peak / 1e9:.0f} GFLOP/s)")
    if profiler is not None:
        sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        print(profiler.key_averages().table(sort_by=sort, row_limit=15))
    return 0


def main_pass_flops(cfg, device) -> float:
    """Floating-point operations per sample of one step's main passes (G forward for D's fakes, D forward and
    backward on reals and fakes, G forward and backward through D), counted on a batch of 2."""
    from torch.utils.flop_counter import FlopCounterMode

    G, D = build_networks(cfg, 0)
    G, D = G.to(device), D.to(device)
    n, shape = 2, (cfg.data.channels, *cfg.data.shape)
    z, reals = torch.randn(n, G.z_dim, device=device), torch.randn(n, *shape, device=device)
    total = 0
    for with_backward in (False, True):  # G forward for D's fakes (counted with grad on, as the counter needs)
        with FlopCounterMode(display=False) as counter:
            fakes = G(z)
            if with_backward:
                (D(reals, None).sum() + D(fakes.detach(), None).sum()).backward()
                D(fakes, None).sum().backward()
        total += counter.get_total_flops()
    return total / n


def conv_throughput(device, nd: int, dtype=torch.float32) -> float:
    """FLOP/s of a large 3x3 (3x3x3) convolution in ``dtype``, forward, on ``device``: the reference for
    utilisation."""
    size = {1: (4096,), 2: (64, 64), 3: (16, 16, 16)}[nd]
    x = torch.randn(8, 256, *size, device=device, dtype=dtype)
    w = torch.randn(256, 256, *[3] * nd, device=device, dtype=dtype)
    conv = (torch.nn.functional.conv1d, torch.nn.functional.conv2d, torch.nn.functional.conv3d)[nd - 1]
    flops = 2 * x.numel() * 256 * 3**nd
    times = []
    for _ in range(4):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        conv(x, w, padding=1)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return flops / statistics.median(times[1:])


def _profiler(device):
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    return torch.profiler.profile(activities=activities)

