"""``python -m ndgan.metrics.digits`` (``ndgan digits``): train the digit classifier that ``fid`` and
``classes`` use on configs/digits2d.yaml."""

from __future__ import annotations

import time
from pathlib import Path

from .. import cli
from ..io.files import atomic_write
from ..metrics.digits import train_classifier


def main(argv=None) -> int:
    p = cli.ArgumentParser(prog="python -m ndgan.metrics.digits",
                           description="train the digit classifier used by fid/classes on configs/digits2d.yaml")
    p.add_argument("--out", required=True, help="output .safetensors file")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    cli.add_debug_flag(p)
    args = p.parse_args(argv)
    return cli.run(lambda: _run(args), args.debug)


def _run(args) -> int:
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out}: exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"{out.parent}: no such folder for --out")
    try:
        from safetensors.torch import save_file
    except ImportError:
        raise ImportError("writing the classifier needs safetensors: pip install 'ndgan[safetensors]'") from None
    start = time.time()
    net, acc, (train_idx, test_idx) = train_classifier(args.size, args.epochs, seed=args.seed)
    meta = {"format": "ndgan digit classifier", "heldout_accuracy": f"{acc:.4f}", "size": str(args.size),
            "seed": str(args.seed), "epochs": str(args.epochs), "train_samples": str(len(train_idx)),
            "heldout_samples": str(len(test_idx))}
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    atomic_write(out, lambda p: save_file(state, str(p), metadata=meta))
    print(f"wrote {out}: held-out accuracy {acc:.4f} on {len(test_idx)} scans ({time.time() - start:.0f} s)")
    return 0
