"""Interleaved A/B of a training step's main passes: python benchmarks/step_ab.py CONFIG [KEY=VALUE ...]

Builds the config's G and D and times one step's main passes (G forward for D's fakes, D step on reals and
fakes with Adam, G step through D with Adam) for each variant in turn, round after round, so that every
variant sees the same machine noise; prints the median seconds per step and samples/s per variant.

Variants (``--variants``, comma-separated): ``fused``, ``unfused``, ``auto`` (``fused=None``), each optionally
prefixed with ``bf16-`` (bfloat16 autocast) and/or ``cl-`` (every convolution's input and weight converted to
``channels_last`` / ``channels_last_3d``, an experiment). No data loading, EMA or regularisation: use
``python -m ndgan.bench`` for the whole loop.

    python benchmarks/step_ab.py configs/energy3d.yaml train.batch=8 --variants fused,unfused,bf16-unfused
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from ndgan import losses
from ndgan.ops import nd as ndops
from ndgan.train.config import load_config
from ndgan.nets import build_networks
from ndgan.train.loop import cache_cpu_allocations

_CONV, _CONV_T = ndops.conv, ndops.conv_transpose
_LAYOUT = {4: torch.channels_last, 5: torch.channels_last_3d}


def _channels_last(on: bool):
    """Route ndgan's convolutions through a layout conversion (or back to the plain ones)."""
    def conv(x, weight, bias=None, stride=1, padding=0, groups=1, dilation=1):
        fmt = _LAYOUT.get(x.ndim)
        if fmt is not None:
            x, weight = x.contiguous(memory_format=fmt), weight.contiguous(memory_format=fmt)
        return _CONV(x, weight, bias, stride, padding, groups, dilation)

    def conv_transpose(x, weight, stride=1, padding=0, groups=1):
        fmt = _LAYOUT.get(x.ndim)
        if fmt is not None:
            x, weight = x.contiguous(memory_format=fmt), weight.contiguous(memory_format=fmt)
        return _CONV_T(x, weight, stride, padding, groups)

    ndops.conv, ndops.conv_transpose = (conv, conv_transpose) if on else (_CONV, _CONV_T)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--variants", default="fused,unfused,bf16-fused,bf16-unfused")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    cfg = load_config(args.config, args.overrides)
    if cfg.train.cpu_malloc_cache:
        cache_cpu_allocations()
    torch.manual_seed(0)
    G, D = build_networks(cfg, 0)
    n = cfg.train.batch
    g_opt, d_opt = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    reals = torch.randn(n, cfg.data.channels, *cfg.data.shape)

    def step(variant):
        _channels_last("cl-" in variant)
        fused = {"fused": True, "unfused": False, "auto": None}[variant.split("-")[-1]]
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if "bf16-" in variant else contextlib.nullcontext()
        D.requires_grad_(True)
        with torch.no_grad(), autocast:
            fakes = G.synthesis(G.mapping(torch.randn(n, G.z_dim), None), fused=fused)
        with autocast:
            d_loss = losses.d_logistic(D(reals, None), D(fakes, None))
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()
        D.requires_grad_(False)
        with autocast:
            fakes = G.synthesis(G.mapping(torch.randn(n, G.z_dim), None), fused=fused)
            g_loss = losses.g_nonsaturating(D(fakes, None))
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()

    variants = args.variants.split(",")
    for v in variants:  # warm-up
        step(v)
    times = {v: [] for v in variants}
    for _ in range(args.rounds):
        for v in variants:
            start = time.perf_counter()
            step(v)
            times[v].append(time.perf_counter() - start)
    _channels_last(False)
    print(f"{args.config} {' '.join(args.overrides)}: torch {torch.__version__}, batch {n}, "
          f"median of {args.rounds} interleaved rounds")
    for v in variants:
        m = statistics.median(times[v])
        print(f"  {v:18s} {m:7.3f} s/step  {n / m:6.2f} samples/s   ({', '.join(f'{t:.2f}' for t in times[v])})")


if __name__ == "__main__":
    main()
