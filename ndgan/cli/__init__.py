"""The commands, one thin module each (``ndgan/cli/<command>.py``), and the convention they share: bad input
(a ValueError, a missing or unwritable file, a full disk, a missing optional package, a bad flag) is one line
on stderr and exit code 2; ``--debug`` shows the traceback.

Each command runs as ``ndgan COMMAND ...`` (the console script, ``console``) and as the ``python -m`` form
documented since the first release (``COMMANDS``); both call the same ``main``.
"""

from __future__ import annotations

import argparse
import errno
import sys
import warnings

#: command -> its python -m module (each holds a thin shim that calls ndgan.cli.<command>.main)
COMMANDS = {
    "train": "ndgan.train", "generate": "ndgan.generate", "export": "ndgan.export", "render": "ndgan.render",
    "project": "ndgan.project", "metrics": "ndgan.metrics", "bench": "ndgan.bench", "convert": "ndgan.data.convert",
    "energy": "ndgan.data.energy", "digits": "ndgan.metrics.digits", "import_nvlabs": "ndgan.import_nvlabs",
}

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
            from .io.budget import out_of_memory_message

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


def console(argv=None) -> int:
    """``ndgan COMMAND [ARGS]``: the console script; ``ndgan --help`` lists the commands."""
    import importlib

    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        width = max(map(len, COMMANDS))
        lines = [f"  {name:<{width}}  (python -m {module})" for name, module in COMMANDS.items()]
        print("usage: ndgan COMMAND [ARGS ...]; ndgan COMMAND --help for its options\n\ncommands:\n" + "\n".join(lines))
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(argv[0], COMMANDS, n=1)
        print(f"error: {argv[0]!r} is not an ndgan command; expected one of {', '.join(COMMANDS)}"
              + (f" (did you mean {close[0]!r}?)" if close else ""), file=sys.stderr)
        return 2
    return importlib.import_module(f"ndgan.cli.{argv[0]}").main(argv[1:])
