"""python -m ndgan.import_nvlabs NETWORK.pkl --out RUN_DIR_OR_FILE.pt [--overwrite]

Convert an NVIDIA StyleGAN2-ADA(-PyTorch) network pickle into an ndgan checkpoint holding G, D and G_ema, with
the training config rebuilt from the pickle (data, G and D sections; train.* at ndgan's defaults). The pickle
is read as data: its embedded source code is never imported or run (ndgan.io.nvlabs). Every ndgan command
also takes the .pkl directly; the checkpoint starts a run with ``train --init``. Errors: one line, exit 2.
"""

from __future__ import annotations

from pathlib import Path

from .. import cli
from ..io import checkpoint as ckpt
from ..io.files import output_folder
from ..io.nvlabs import read_checkpoint
from ..train.config import from_dict, to_dict


def convert(source, out, overwrite: bool = False) -> Path:
    """Write the ndgan checkpoint of the pickle ``source`` to ``out`` (a ``.pt`` file, or a run folder that
    gets ``checkpoint-<nimg>.pt``); returns its path."""
    state = read_checkpoint(source)
    state["config"] = to_dict(from_dict(state["config"]))  # every section complete, and checked
    state["step"] = 0
    out = Path(out)
    target = out if out.suffix == ".pt" else out / ckpt.checkpoint_name(state["nimg"])
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target}: already exists; pass --overwrite or choose another --out")
    with output_folder(target.parent):
        return ckpt.save(state, target)


def main(argv=None) -> int:
    p = cli.ArgumentParser(prog="python -m ndgan.import_nvlabs", description=__doc__.split("\n\n")[1].strip())
    p.add_argument("source", metavar="NETWORK.pkl", help="a StyleGAN2-ADA(-PyTorch) network pickle")
    p.add_argument("--out", required=True, help="output checkpoint (.pt) or run folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint")
    cli.add_debug_flag(p)
    args = p.parse_args(argv)

    def body():
        path = convert(args.source, args.out, args.overwrite)
        state = ckpt.load(path)
        nets = ", ".join(k for k in ("G", "G_ema", "D") if k in state)
        g = state["G_kwargs"]
        print(f"wrote {path}: {nets} of a {g['shape'][0]}x{g['shape'][1]} x {g['channels']} StyleGAN2-ADA "
              f"{g['architecture']} model (c_dim {g['c_dim']}), config rebuilt from the pickle")

    return cli.run(body, args.debug)
