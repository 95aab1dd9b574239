"""``python -m ndgan.bench``: the same as ``ndgan bench``; the command lives in ``ndgan/cli/bench.py``."""

import sys

from .cli.bench import main

if __name__ == "__main__":
    sys.exit(main())
