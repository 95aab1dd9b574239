"""Median forward+backward time of ndgan's ops at representative StyleGAN2 sizes.

    python benchmarks/ops.py [--device cpu|cuda] [--batch N] [--reps 5] [--dtype float32|bfloat16|float16]
                             [--only SUBSTRING] [--quick]

Cases: modulated_conv 3x3 (plain, up, down; fused vs unfused) and the FIR ops (upsample, downsample, blur),
in 2D at 128^2 x 256 channels and in 3D at 32^3 x 128 channels (up-sampling cases take the half-size input
and produce that size). Prints one line per case: median ms over --reps timed runs after one warm-up,
samples/s, achieved GFLOP/s of the convolution's arithmetic (2 * MACs, x3 for forward + backward), and peak
memory (CUDA: max allocated; CPU: peak RSS of a fresh process per case).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time

import torch

from ndgan import ops

SIZES = {2: ((128, 128), 256), 3: ((32, 32, 32), 128)}
QUICK = {2: ((32, 32), 32), 3: ((8, 8, 8), 32)}


def cases(quick: bool):
    out = []
    for nd, (size, channels) in (QUICK if quick else SIZES).items():
        for kind in ("plain", "up", "down"):
            for fused in (True, False):
                out.append(dict(op="modulated_conv", nd=nd, size=size, channels=channels, kind=kind, fused=fused))
        for kind in ("upsample", "downsample", "blur"):
            out.append(dict(op="fir", nd=nd, size=size, channels=channels, kind=kind))
    return out


def name(case):
    shape = "x".join(map(str, case["size"]))
    if case["op"] == "modulated_conv":
        return f"modulated_conv {case['nd']}D {shape}x{case['channels']} {case['kind']:5s} {'fused' if case['fused'] else 'unfused'}"
    return f"{case['kind']} {case['nd']}D {shape}x{case['channels']}"


def build(case, batch, device, dtype):
    """Return (fn running forward+backward, forward FLOPs)."""
    nd, c = case["nd"], case["channels"]
    size = case["size"]
    if case["kind"] in ("up", "upsample"):
        size = tuple(s // 2 for s in size)
    x = torch.randn(batch, c, *size, device=device, dtype=dtype, requires_grad=True)
    if case["op"] == "fir":
        fn = getattr(ops, case["kind"])
        f = ops.setup_filter(device=device)
        return (lambda: fn(x, f).sum().backward()), 0.0
    w = torch.randn(c, c, *[3] * nd, device=device, dtype=dtype, requires_grad=True)
    s = torch.randn(batch, c, device=device, dtype=dtype, requires_grad=True)
    up, down = (2, 1) if case["kind"] == "up" else (1, 2) if case["kind"] == "down" else (1, 1)
    f = ops.setup_filter(device=device)
    # Multiply-adds the convolution really performs: a transposed conv works at its input resolution,
    # a strided conv at its output resolution.
    conv_size = size if up > 1 else [sz // down for sz in size]
    macs = batch * c * c * 3**nd * math.prod(conv_size)

    def run():
        y = ops.modulated_conv(x, w, s, up=up, down=down, padding=1, resample_filter=f, fused=case["fused"])
        y.sum().backward()

    return run, 2.0 * macs


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(case, batch, reps, device, dtype):
    fn, flops = build(case, batch, device, dtype)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    fn()  # warm-up (cudnn autotuning, allocator)
    sync(device)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return dict(name=name(case), ms=med * 1e3, samples_per_s=batch / med, gflops=3 * flops / med / 1e9 if flops else None,
                peak_mib=peak, times_ms=[t * 1e3 for t in times])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--only", default="", help="run only cases whose name contains this text")
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test, not a measurement)")
    p.add_argument("--case", type=int, help=argparse.SUPPRESS)  # internal: run one case, print JSON
    args = p.parse_args(argv)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    all_cases = cases(args.quick)
    if args.case is not None:
        print(json.dumps(measure(all_cases[args.case], args.batch, args.reps, device, dtype)))
        return
    print(f"# torch {torch.__version__}, device {device}"
          f"{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else f', {torch.get_num_threads()} threads'}, "
          f"dtype {args.dtype}, batch {args.batch}, median of {args.reps}")
    print(f"{'case':52s} {'ms':>9s} {'samples/s':>10s} {'GFLOP/s':>8s} {'peak MiB':>9s}")
    for i, case in enumerate(all_cases):
        if args.only not in name(case):
            continue
        if device.type == "cpu":  # a fresh process per case, so that peak RSS is this case's own
            cmd = [sys.executable, __file__, "--case", str(i), "--device", args.device, "--batch", str(args.batch),
                   "--reps", str(args.reps), "--dtype", args.dtype] + (["--quick"] if args.quick else [])
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        else:
            r = measure(case, args.batch, args.reps, device, dtype)
        gf = f"{r['gflops']:8.1f}" if r["gflops"] else f"{'-':>8s}"
        print(f"{r['name']:52s} {r['ms']:9.1f} {r['samples_per_s']:10.2f} {gf} {r['peak_mib']:9.0f}", flush=True)


if __name__ == "__main__":
    main()
