"""``python -m ndgan.metrics``: the same as ``ndgan metrics``; the command lives in ``ndgan/cli/metrics.py``."""

import sys

from ..cli.metrics import main

if __name__ == "__main__":
    sys.exit(main())
