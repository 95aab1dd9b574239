"""Fused vs unfused modulated_conv, interleaved in one process: the median per-round time ratio.

    python benchmarks/fused_ab.py [--device cpu|cuda] [--batch 4] [--rounds 7]

Alternating the two paths round by round cancels most of the drift of a shared machine; a ratio below 1
means the fused path (one grouped conv, groups = batch) is faster.
"""

import argparse
import statistics
import time

import torch

from ndgan import ops

SIZES = {2: ((128, 128), 256), 3: ((32, 32, 32), 128)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"# torch {torch.__version__}, {device}, batch {args.batch}, {args.rounds} interleaved rounds")
    for nd, (size, c) in SIZES.items():
        for kind, up, down in (("plain", 1, 1), ("up", 2, 1), ("down", 1, 2)):
            shape = [s // up for s in size]
            x = torch.randn(args.batch, c, *shape, device=device, requires_grad=True)
            w = torch.randn(c, c, *[3] * nd, device=device, requires_grad=True)
            s = torch.randn(args.batch, c, device=device, requires_grad=True)

            def step(fused):
                sync()
                t = time.perf_counter()
                ops.modulated_conv(x, w, s, up=up, down=down, padding=1, fused=fused).sum().backward()
                sync()
                return time.perf_counter() - t

            step(True), step(False)  # warm-up
            pairs = [(step(True), step(False)) for _ in range(args.rounds)]
            ratio = statistics.median(a / b for a, b in pairs)
            fused_ms = statistics.median(a for a, _ in pairs) * 1e3
            unfused_ms = statistics.median(b for _, b in pairs) * 1e3
            print(f"{nd}D {'x'.join(map(str, size))}x{c} {kind:5s} fused {fused_ms:7.1f} ms  unfused "
                  f"{unfused_ms:7.1f} ms  fused/unfused {ratio:.3f}", flush=True)


if __name__ == "__main__":
    main()
