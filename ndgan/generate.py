"""``python -m ndgan.generate``: the same as ``ndgan generate``; the command lives in ``ndgan/cli/generate.py``."""

import sys

from .cli.generate import main

if __name__ == "__main__":
    sys.exit(main())
