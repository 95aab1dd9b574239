"""Checkpoint write and read speed for a config's networks: ndgan's atomic save (Python file object, fsync,
rename) next to a plain ``torch.save(state, path)``, and ``weights_only`` loading.

    python benchmarks/checkpoint.py [CONFIG ...] [--reps 3] [--dir DIR]

Prints, per config, the checkpoint size and the median seconds (and MB/s) of each. The state is what the
training loop saves: G, D, G_ema, both Adam states after one step, counters and RNG.
"""

import argparse
import copy
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.timing import peak_memory, timed  # noqa: E402
from ndgan.io import checkpoint as ckpt  # noqa: E402
from ndgan.train.config import load_config, to_dict  # noqa: E402
from ndgan.nets import build_networks  # noqa: E402


def training_state(config):
    cfg = load_config(config)
    G, D = build_networks(cfg, 0)
    opts = [torch.optim.Adam(net.parameters(), lr=1e-3) for net in (G, D)]
    for net, opt in zip((G, D), opts):  # one step, so Adam holds its moments as in a real checkpoint
        loss = sum(p.float().square().sum() for p in net.parameters())
        loss.backward()
        opt.step()
    return {"G": G.state_dict(), "D": D.state_dict(), "G_ema": copy.deepcopy(G).state_dict(),
            "G_opt": opts[0].state_dict(), "D_opt": opts[1].state_dict(), "G_kwargs": G.init_kwargs,
            "D_kwargs": D.init_kwargs, "config": to_dict(cfg), "step": 1, "nimg": 1, "pl_mean": torch.zeros([]),
            "rng": {"torch": torch.get_rng_state()}}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("configs", nargs="*", default=["configs/energy3d.yaml", "configs/ffhq2d.yaml"])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--dir", help="where to write (default: a temporary folder on the system's temp disk)")
    args = p.parse_args(argv)
    cpu = torch.device("cpu")
    print(f"torch {torch.__version__}, {args.reps} reps, medians")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for config in args.configs:
            state = training_state(config)
            atomic, plain = Path(tmp) / "checkpoint-000000001.pt", Path(tmp) / "plain.pt"
            t_atomic = timed(lambda: ckpt.save(state, atomic), args.reps, cpu)
            t_plain = timed(lambda: torch.save(state, plain), args.reps, cpu)
            t_load = timed(lambda: ckpt.load(atomic), args.reps, cpu)
            mb = atomic.stat().st_size / 1e6
            print(f"{config}: {mb:.0f} MB | ndgan save {t_atomic:.2f} s ({mb / t_atomic:.0f} MB/s) | "
                  f"torch.save {t_plain:.2f} s ({mb / t_plain:.0f} MB/s) | ratio {t_atomic / t_plain:.2f} | "
                  f"load {t_load:.2f} s ({mb / t_load:.0f} MB/s) | {peak_memory(cpu)}")


if __name__ == "__main__":
    main()
