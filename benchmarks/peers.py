"""ndgan's training step next to a peer's, in one run: python benchmarks/peers.py --peer NAME [options]

One G+D step on both sides, with the same batch and step: the D phase on reals and fakes (fakes made
without gradients), then the G phase through D, with the non-saturating logistic loss, no regularisation,
and Adam (lr 0.0025, betas 0 and 0.99). D is frozen in the G phase on every side (``requires_grad_(False)``),
as ndgan's and NVIDIA's training loops do, so no side computes D's weight gradients there
(benchmarks/RESULTS.md: that alone was 6% of a plain step). Each side runs in a fresh process with the same
threads and glibc malloc settings (ndgan's ``train.cpu_malloc_cache``). The sides alternate over
``--rounds`` rounds. The script prints each side's median samples/s and the ratio, each side's FLOPs per
sample (convolutions and matrix products of one whole step, counted at dispatch), and the fraction of this
CPU's peak that the step reaches: the peak is measured in the same run, per precision, as the fastest of
a large matrix product and a few large convolutions (both are printed).

Peers (source fetched or installed by the user and passed by path, never copied into the project; the
recipe for a peer environment is benchmarks/peers_env.sh):

- ``--peer nvidia --source PATH``: a checkout of NVlabs/stylegan2-ada-pytorch, its networks with the
  reference ops on CPU and its custom kernels on CUDA (``--device cuda``; its plugins compile with the
  machine's nvcc), ``num_fp16_res`` and ``conv_clamp`` as ``--fp16-res`` sets them on both sides (default 0
  and None), 2D and 3 channels, against ndgan's
  ``Generator`` and ``Discriminator`` with the same widths (channel ``min(cbase // res, cmax)``), skip G and
  resnet D, 8 mapping layers, z = w = 512. Defaults: 64², cbase 4096, cmax 256.
- ``--peer lucidrains --python PEERPY``: lucidrains' stylegan2-pytorch (the package, installed in the
  interpreter PEERPY with its CUDA-only lines patched out), at its default capacity 16 and 128², 3 channels,
  against ndgan at about the same parameter count: G channel_base 8192 and D channel_base 32768, channel_max
  512 (G 19.3M and D 28.4M against lucidrains' 18.8M and 30.0M).
- ``--peer jbarks --source DIR --python PEERPY``: the 3D port in the source documents
  (jbarks1234/improved-stylegan2, DIR its ``lucid_stylegan-improved`` folder), 32³ at capacity 16 with the
  12 channels its file hard-codes, against ndgan at 32³ with 2 channels, channel_base 1024 and channel_max
  256 (the port's generator widths 256/128/64/32).

Every side runs with its own library's defaults otherwise: on CPU, ndgan's side puts its conv weights
and reals in channels-last layout, as its training loop does (``train.channels_last: auto``).

``--pythonpath`` prepends folders to the peer side's import path (stand-ins for modules the peers import
but never use here, such as torchvision). ``--precision bfloat16`` runs ndgan's side under CPU autocast;
peers always run float32, their CPU reference.

    python benchmarks/peers.py --peer nvidia --source /path/to/stylegan2-ada-pytorch
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

# Per pair: ndgan's networks and the peer's, unless an option overrides them.
PAIRS = {
    "nvidia": dict(nd=2, res=64, channels=3, cbase=4096, cmax=256, d_cbase=None, capacity=None),
    "lucidrains": dict(nd=2, res=128, channels=3, cbase=8192, cmax=512, d_cbase=32768, capacity=16),
    "jbarks": dict(nd=3, res=32, channels=2, cbase=1024, cmax=256, d_cbase=None, capacity=16),
}
JBARKS_CHANNELS = 12  # hard-coded in the port's file


def networks(side: str, args):
    """(G, D, call_G(z), call_D(x), G's parameters to train, the reals' shape) of one side."""
    import torch

    if side == "ndgan":
        from ndgan.nets import Discriminator, Generator

        shape = (args.res,) * args.nd
        fp16 = dict(num_fp16_res=args.fp16_res, conv_clamp=256 if args.fp16_res else None)
        G = Generator(args.nd, shape, args.channels, z_dim=512, w_dim=512, mapping_layers=8,
                      channel_base=args.cbase, channel_max=args.cmax, **fp16)
        D = Discriminator(args.nd, shape, args.channels, channel_base=args.d_cbase or args.cbase,
                          channel_max=args.cmax, **fp16)
        return G, D, G, D, list(G.parameters()), (args.channels, *shape)
    if side == "nvidia":
        sys.path.insert(0, str(Path(args.source).resolve()))
        from training.networks import Discriminator, Generator  # NVIDIA's, read from the user's checkout

        fp16 = dict(num_fp16_res=args.fp16_res, conv_clamp=256 if args.fp16_res else None)
        G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=args.res, img_channels=3,
                      mapping_kwargs=dict(num_layers=8),
                      synthesis_kwargs=dict(channel_base=args.cbase, channel_max=args.cmax, **fp16))
        D = Discriminator(c_dim=0, img_resolution=args.res, img_channels=3, channel_base=args.cbase,
                          channel_max=args.cmax, architecture="resnet", epilogue_kwargs=dict(mbstd_group_size=4),
                          **fp16)
        c = torch.zeros(args.batch, 0, device=args.device)
        return (G, D, lambda z: G(z, c[:len(z)]), lambda x: D(x, c[:len(x)]), list(G.parameters()),
                (3, args.res, args.res))
    if side == "lucidrains":
        from stylegan2_pytorch.stylegan2_pytorch import StyleGAN2  # the user's installed package
        shape, channels = (args.res, args.res), 3
    else:
        sys.path.insert(0, str(Path(args.source).resolve()))
        from stylegan2_pytorch_v2 import StyleGAN2  # the port's file, from the user's checkout
        shape, channels = (args.res,) * 3, JBARKS_CHANNELS
    m = StyleGAN2(image_size=args.res, network_capacity=args.capacity, attn_layers=[])
    G, S, D = m.G, m.S, m.D

    def call_G(z):  # one style for every layer and uniform noise per position, as the peers' trainers do
        w = S(z)[:, None, :].expand(-1, G.num_layers, -1)
        return G(w, torch.rand(len(z), *shape, 1, device=z.device))

    return G, D, call_G, lambda x: D(x)[0], list(S.parameters()) + list(G.parameters()), (channels, *shape)


def flop_counter():
    """A dispatch mode that sums the FLOPs of the ops torch's flop counter knows (convolutions, matmuls)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class Count(TorchDispatchMode):
        flops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            count = flop_registry.get(func._overloadpacket)
            if count is not None:
                self.flops += count(*args, **kwargs, out_val=out)
            return out

    return Count()


def run_side(side: str, args) -> dict:
    """Time ``args.iters`` steps of one side (after one warm-up step) in this process, then count FLOPs."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    G, D, call_G, call_D, g_params, x_shape = networks(side, args)
    G.to(device).train()
    D.to(device).train()
    layout = torch.contiguous_format
    if side == "ndgan" and device.type == "cpu" and args.nd in (2, 3):  # as ndgan's loop does (train.channels_last)
        from ndgan.train.state import CHANNELS_LAST, to_memory_format

        layout = CHANNELS_LAST[args.nd]
        for net in (G, D):
            to_memory_format(net, layout)
    opt_G = torch.optim.Adam(g_params, lr=0.0025, betas=(0.0, 0.99))
    opt_D = torch.optim.Adam(D.parameters(), lr=0.0025, betas=(0.0, 0.99))
    reals = torch.randn(args.batch, *x_shape, device=device).contiguous(memory_format=layout)
    bf16 = side == "ndgan" and args.precision == "bfloat16"
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def step():
        D.requires_grad_(True)
        opt_D.zero_grad(set_to_none=True)
        with torch.no_grad(), autocast():
            fakes = call_G(torch.randn(args.batch, 512, device=device))
        with autocast():
            loss = (F.softplus(call_D(fakes)) + F.softplus(-call_D(reals))).float().mean()
        loss.backward()
        opt_D.step()
        D.requires_grad_(False)
        opt_G.zero_grad(set_to_none=True)
        with autocast():
            loss = F.softplus(-call_D(call_G(torch.randn(args.batch, 512, device=device)))).float().mean()
        loss.backward()
        opt_G.step()

    step()
    sync()
    start = time.perf_counter()
    for _ in range(args.iters):
        step()
    sync()
    seconds = (time.perf_counter() - start) / args.iters
    with flop_counter() as counter:
        step()
    count = lambda params: sum(p.numel() for p in params)  # noqa: E731
    return {"side": side, "samples_per_s": args.batch / seconds, "flops_per_sample": counter.flops / args.batch,
            "G_params": count(g_params), "D_params": count(D.parameters()),
            "precision": "bfloat16" if bf16 else "float32"}


def measure_peak(threads: int, device: str) -> dict:
    """This device's fastest float32 and bfloat16 matrix product and convolution, in FLOP/s (median of 5)."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def rate(fn, flops):
        fn()
        times = []
        for _ in range(5):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
        return flops / statistics.median(times)

    out = {}
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.randn(2048, 2048, dtype=dtype, device=device)
        b = torch.randn(2048, 2048, dtype=dtype, device=device)
        out[f"gemm_{dtype}"] = rate(lambda: a @ b, 2 * 2048**3)
        convs = []
        for c, s, nd in ((256, 16, 2), (256, 32, 2), (128, 64, 2), (64, 32, 3), (128, 16, 3)):
            x = torch.randn(8, c, *(s,) * nd, dtype=dtype, device=device)
            w = torch.randn(c, c, *(3,) * nd, dtype=dtype, device=device)
            conv = F.conv2d if nd == 2 else F.conv3d
            convs.append(rate(lambda: conv(x, w, padding=1), 2 * 8 * c * c * 3**nd * s**nd))
        out[f"conv_{dtype}"] = max(convs)
    return {k.replace("torch.", ""): v for k, v in out.items()}


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--peer", required=True, choices=sorted(PAIRS))
    p.add_argument("--source", help="nvidia: a checkout of NVlabs/stylegan2-ada-pytorch; jbarks: the "
                                    "lucid_stylegan-improved folder of jbarks1234/improved-stylegan2")
    p.add_argument("--python", default=sys.executable, help="interpreter of the peer side (lucidrains, jbarks)")
    p.add_argument("--pythonpath", default="", help="folders prepended to the peer side's import path")
    p.add_argument("--res", type=int)
    p.add_argument("--channels", type=int, help="ndgan's data channels")
    p.add_argument("--cbase", type=int, help="ndgan's (and NVIDIA's) channel_base")
    p.add_argument("--d-cbase", type=int, help="ndgan D's channel_base when it differs from G's")
    p.add_argument("--cmax", type=int, help="ndgan's (and NVIDIA's) channel_max")
    p.add_argument("--capacity", type=int, help="lucidrains' and the port's network_capacity")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--iters", type=int, default=3, help="timed steps per side and round (after one warm-up)")
    p.add_argument("--rounds", type=int, default=5, help="alternated rounds; medians are quoted")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--precision", choices=["float32", "bfloat16"], default="float32",
                   help="ndgan's side under this autocast; the peer always runs float32")
    p.add_argument("--device", default="cpu", help="cpu | cuda (on CUDA, NVIDIA's side runs its custom kernels)")
    p.add_argument("--fp16-res", type=int, default=0,
                   help="both sides: the top N blocks in float16 with conv_clamp 256 (StyleGAN2-ADA's GPU default 4)")
    p.add_argument("--side", choices=["ndgan", "peer", "peak"], help=argparse.SUPPRESS)  # one side, in a child
    args = p.parse_args(argv)
    for key, value in PAIRS[args.peer].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.peer == "nvidia" and not (args.source and (Path(args.source) / "training" / "networks.py").is_file()):
        p.error(f"--source {args.source}: no training/networks.py there; pass a checkout of "
                f"NVlabs/stylegan2-ada-pytorch")
    if args.peer == "jbarks" and not (args.source and (Path(args.source) / "stylegan2_pytorch_v2.py").is_file()):
        p.error(f"--source {args.source}: no stylegan2_pytorch_v2.py there; pass the lucid_stylegan-improved "
                f"folder of jbarks1234/improved-stylegan2")
    return args


def child(args, side: str) -> dict:
    """Run one side (or the peak measurement) in a fresh process and return its JSON line."""
    forwarded = [f"--{k.replace('_', '-')}={getattr(args, k)}" for k in (
        "peer", "source", "res", "channels", "cbase", "d_cbase", "cmax", "capacity", "batch", "iters",
        "threads", "precision", "device", "fp16_res") if getattr(args, k) is not None]
    env = {**os.environ, **MALLOC}
    python = sys.executable
    if side == "peer":
        python = args.python
        env["PYTHONPATH"] = os.pathsep.join(x for x in (args.pythonpath, env.get("PYTHONPATH", "")) if x)
    out = subprocess.run([python, __file__, *forwarded, f"--side={side}"], capture_output=True, text=True,
                         env=env)
    if out.returncode:
        raise SystemExit(f"benchmarks/peers.py: the {side} side failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    args = parse(argv)
    if args.side:
        if args.side == "peak":
            print(json.dumps(measure_peak(args.threads, args.device)))
        else:
            print(json.dumps(run_side("ndgan" if args.side == "ndgan" else args.peer, args)))
        return 0
    peak = child(args, "peak")
    results = {"ndgan": [], "peer": []}
    for r in range(args.rounds):
        for side in (("ndgan", "peer") if r % 2 == 0 else ("peer", "ndgan")):
            line = child(args, side)
            results[side].append(line)
            print(f"round {r + 1} {line['side']}: {line['samples_per_s']:.3f} samples/s", flush=True)
    print(f"{args.peer} pair, {args.res}^{args.nd}, batch {args.batch}, {args.device}, {args.threads} threads, "
          f"top {args.fp16_res} blocks float16, "
          f"medians of {args.rounds} alternated rounds of {args.iters} steps; measured peak GFLOP/s: "
          + ", ".join(f"{k} {v / 1e9:.0f}" for k, v in peak.items()))
    med = {}
    for side, lines in results.items():
        first = lines[0]
        med[side] = statistics.median(x["samples_per_s"] for x in lines)
        rate = med[side] * first["flops_per_sample"]
        prec = first["precision"]
        top = max(peak[f"conv_{prec}"], peak[f"gemm_{prec}"])
        print(f"  {first['side']} ({prec}, G {first['G_params'] / 1e6:.2f}M, D {first['D_params'] / 1e6:.2f}M): "
              f"{med[side]:.3f} samples/s, {first['flops_per_sample'] / 1e9:.2f} GFLOP/sample, "
              f"{rate / 1e9:.0f} GFLOP/s = {rate / top:.0%} of the {prec} peak; rounds "
              + " ".join(f"{x['samples_per_s']:.3f}" for x in lines))
    print(f"  ratio ndgan / {args.peer}: {med['ndgan'] / med['peer']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
