"""``python -m ndgan.render``: the same as ``ndgan render``; the command lives in ``ndgan/cli/render.py``."""

import sys

from .cli.render import main

if __name__ == "__main__":
    sys.exit(main())
