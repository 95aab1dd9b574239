"""ndgan's training step next to a peer's, in one run: python benchmarks/peers.py --nvidia PATH [options]

One G+D step on both sides, with the same networks, batch and step: the D phase on reals and fakes (fakes
made without gradients), then the G phase through D, with the non-saturating logistic loss, no
regularisation, and Adam (lr 0.0025, betas 0 and 0.99). D is frozen in the G phase on every side
(``requires_grad_(False)``), as ndgan's and NVIDIA's training loops do, so no side computes D's weight
gradients there (benchmarks/RESULTS.md: that alone was 6% of a plain step). Each side runs in a fresh
process with the same threads and glibc malloc settings (ndgan's ``train.cpu_malloc_cache``). The sides
alternate over ``--rounds`` rounds, and the script prints each side's median samples/s and the ratio.

Peers (source fetched by the user and passed by path, never copied into the project):

- ``--nvidia PATH``: a checkout of NVlabs/stylegan2-ada-pytorch, its networks with the reference ops on CPU
  (``num_fp16_res`` 0, ``conv_clamp`` None), 2D and 3 channels, against ndgan's ``Generator`` and
  ``Discriminator`` with the same widths (channel ``min(cbase // res, cmax)``), skip G and resnet D, 8
  mapping layers, z = w = 512.

    python benchmarks/peers.py --nvidia /path/to/stylegan2-ada-pytorch --res 64 --cbase 4096 --cmax 256
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

MALLOC = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**30)}


def networks(side: str, args):
    """(G, D, call_G(z), call_D(x)) of one side, with the same sizes."""
    import torch

    if side == "ndgan":
        from ndgan.nets import Discriminator, Generator

        shape = (args.res, args.res)
        G = Generator(2, shape, 3, z_dim=512, w_dim=512, mapping_layers=8, channel_base=args.cbase,
                      channel_max=args.cmax)
        D = Discriminator(2, shape, 3, channel_base=args.cbase, channel_max=args.cmax)
        return G, D, lambda z: G(z), lambda x: D(x)
    sys.path.insert(0, str(Path(args.nvidia).resolve()))
    from training.networks import Discriminator, Generator  # NVIDIA's, read from the user's checkout

    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=args.res, img_channels=3,
                  mapping_kwargs=dict(num_layers=8),
                  synthesis_kwargs=dict(channel_base=args.cbase, channel_max=args.cmax, num_fp16_res=0,
                                        conv_clamp=None))
    D = Discriminator(c_dim=0, img_resolution=args.res, img_channels=3, channel_base=args.cbase,
                      channel_max=args.cmax, architecture="resnet", num_fp16_res=0, conv_clamp=None,
                      epilogue_kwargs=dict(mbstd_group_size=4))
    c = torch.zeros(args.batch, 0)
    return G, D, lambda z: G(z, c[:len(z)]), lambda x: D(x, c[:len(x)])


def run_side(side: str, args) -> dict:
    """Time ``args.iters`` steps of one side (after one warm-up step) in this process."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    G, D, call_G, call_D = networks(side, args)
    G.train()
    D.train()
    opt_G = torch.optim.Adam(G.parameters(), lr=0.0025, betas=(0.0, 0.99))
    opt_D = torch.optim.Adam(D.parameters(), lr=0.0025, betas=(0.0, 0.99))
    reals = torch.randn(args.batch, 3, args.res, args.res)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if args.precision == "bfloat16" \
        else contextlib.nullcontext

    def step():
        D.requires_grad_(True)
        opt_D.zero_grad(set_to_none=True)
        with torch.no_grad(), autocast():
            fakes = call_G(torch.randn(args.batch, 512))
        with autocast():
            loss = (F.softplus(call_D(fakes)) + F.softplus(-call_D(reals))).float().mean()
        loss.backward()
        opt_D.step()
        D.requires_grad_(False)
        opt_G.zero_grad(set_to_none=True)
        with autocast():
            loss = F.softplus(-call_D(call_G(torch.randn(args.batch, 512)))).float().mean()
        loss.backward()
        opt_G.step()

    step()
    start = time.perf_counter()
    for _ in range(args.iters):
        step()
    seconds = (time.perf_counter() - start) / args.iters
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    return {"side": side, "samples_per_s": args.batch / seconds, "G_params": count(G), "D_params": count(D)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nvidia", required=True, help="checkout of NVlabs/stylegan2-ada-pytorch")
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--cbase", type=int, default=4096)
    p.add_argument("--cmax", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--iters", type=int, default=3, help="timed steps per side and round (after one warm-up)")
    p.add_argument("--rounds", type=int, default=5, help="alternated rounds; medians are quoted")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--precision", choices=["float32", "bfloat16"], default="float32",
                   help="ndgan's side under this autocast; NVIDIA's side always float32 (its CPU reference)")
    p.add_argument("--side", choices=["ndgan", "nvidia"], help=argparse.SUPPRESS)  # one side, in a child
    args = p.parse_args()
    if not (Path(args.nvidia) / "training" / "networks.py").is_file():
        raise SystemExit(f"--nvidia {args.nvidia}: no training/networks.py there; pass a checkout of "
                         f"NVlabs/stylegan2-ada-pytorch")
    if args.side:
        if args.side == "nvidia":
            args.precision = "float32"
        print(json.dumps(run_side(args.side, args)))
        return 0
    results = {"ndgan": [], "nvidia": []}
    forwarded = [f"--{k}={getattr(args, k)}" for k in ("nvidia", "res", "cbase", "cmax", "batch", "iters",
                                                        "threads", "precision")]
    for r in range(args.rounds):
        for side in (("ndgan", "nvidia") if r % 2 == 0 else ("nvidia", "ndgan")):
            out = subprocess.run([sys.executable, __file__, *forwarded, f"--side={side}"], check=True,
                                 capture_output=True, text=True, env={**os.environ, **MALLOC})
            line = json.loads(out.stdout.strip().splitlines()[-1])
            results[side].append(line)
            print(f"round {r + 1} {side}: {line['samples_per_s']:.2f} samples/s", flush=True)
    med = {s: statistics.median(x["samples_per_s"] for x in v) for s, v in results.items()}
    sizes = {s: f"G {v[0]['G_params'] / 1e6:.2f}M, D {v[0]['D_params'] / 1e6:.2f}M" for s, v in results.items()}
    print(f"{args.res}^2 x 3, cbase {args.cbase}, cmax {args.cmax}, batch {args.batch}, {args.threads} threads, "
          f"ndgan {args.precision}, medians of {args.rounds} alternated rounds:")
    for side in results:
        print(f"  {side}: {med[side]:.2f} samples/s ({sizes[side]})")
    print(f"  ratio ndgan / nvidia: {med['ndgan'] / med['nvidia']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
