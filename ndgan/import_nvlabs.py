"""``python -m ndgan.import_nvlabs``: the same as ``ndgan import_nvlabs``; the command lives in
``ndgan/cli/import_nvlabs.py``."""

import sys

from .cli.import_nvlabs import main

if __name__ == "__main__":
    sys.exit(main())
