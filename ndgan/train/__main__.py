"""``python -m ndgan.train``: the same as ``ndgan train``; the command lives in ``ndgan/cli/train.py``."""

import sys

from ..cli.train import main

if __name__ == "__main__":
    sys.exit(main())
