"""``python -m ndgan.export``: the same as ``ndgan export``; the command lives in ``ndgan/cli/export.py``."""

import sys

from .cli.export import main

if __name__ == "__main__":
    sys.exit(main())
