"""The command-line convention of every ndgan command: bad input (a ValueError, a missing or unwritable file,
a full disk, a missing optional package, a bad flag) is one line on stderr and exit code 2; ``--debug`` shows
the traceback."""

from __future__ import annotations

import argparse
import errno
import sys
import warnings

USER_ERRORS = (ValueError, OSError, ImportError, FloatingPointError)  # the last: a run that diverged


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the ndgan convention: a bad flag or value is one line on stderr and exit code 2."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def run(body, debug: bool = False) -> int:
    """Call ``body()`` and return its exit code (None counts as 0), turning user errors into exit code 2.

    Warnings are one line each (``warning: ...``) unless ``debug``.
    """
    with warnings.catch_warnings():
        if not debug:
            warnings.showwarning = _one_line_warning
        try:
            return body() or 0
        except USER_ERRORS as e:
            if debug:
                raise
            print(f"error: {one_line(e)}", file=sys.stderr)
            return 2
        except (MemoryError, RuntimeError) as e:  # an allocation that no estimate caught
            from .budget import out_of_memory_message

            message = out_of_memory_message(e)
            if debug or message is None:
                raise
            print(f"error: {message}", file=sys.stderr)
            return 2


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {' '.join(str(message).split())}", file=sys.stderr)


def one_line(e: BaseException) -> str:
    """The message of a user error on one line.

    OS errors name their file and, for a full disk, the fix. An error raised in a DataLoader worker arrives
    wrapped with the worker's traceback: only its last line, the original message, is kept.
    """
    if isinstance(e, OSError) and e.strerror and e.filename is not None:
        text = f"{e.filename}: {e.strerror}"
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            text += "; the disk is full (or a file size limit was hit): free space or choose another --out"
        return text
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    if any(line.startswith("Original Traceback") for line in lines):
        last = lines[-1]
        return last.split(": ", 1)[1] if last.startswith(f"{type(e).__name__}: ") else last
    return " ".join(lines) or type(e).__name__


def add_debug_flag(parser) -> None:
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
