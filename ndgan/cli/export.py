"""``python -m ndgan.export`` (``ndgan export``): a generator as safetensors, loadable by every command."""

from __future__ import annotations

from .. import cli
from ..sampling import load_generator, save_safetensors


def main(argv=None) -> int:
    """python -m ndgan.export RUN_OR_CKPT --out G.safetensors [--overwrite]: the EMA generator's weights as
    safetensors (no pickle, nothing that runs code), loadable by every ndgan command that takes a checkpoint."""
    p = cli.ArgumentParser(prog="python -m ndgan.export", description=main.__doc__.split(":", 1)[1].strip())
    p.add_argument("source", metavar="RUN_OR_CKPT", help="checkpoint file or run folder")
    p.add_argument("--out", required=True, help="output .safetensors file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    cli.add_debug_flag(p)
    args = p.parse_args(argv)

    def body():
        out = save_safetensors(load_generator(args.source), args.out, args.overwrite)
        print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)")

    return cli.run(body, args.debug)
