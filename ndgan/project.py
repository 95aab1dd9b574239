"""``python -m ndgan.project``: the same as ``ndgan project``; the command lives in ``ndgan/cli/project.py``."""

import sys

from .cli.project import main

if __name__ == "__main__":
    sys.exit(main())
