"""The command-line convention of every ndgan command: bad input (a ValueError, a missing or unwritable file,
a missing optional package) is one line on stderr and exit code 2; ``--debug`` shows the traceback."""

from __future__ import annotations

import sys

USER_ERRORS = (ValueError, OSError, ImportError, FloatingPointError)  # the last: a run that diverged


def run(body, debug: bool = False) -> int:
    """Call ``body()`` and return its exit code (None counts as 0), turning user errors into exit code 2."""
    try:
        return body() or 0
    except USER_ERRORS as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2


def add_debug_flag(parser) -> None:
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
