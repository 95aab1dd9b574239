"""Writing files so that a crash, a kill or a full disk never leaves a partial one: write under a temporary
name in the same folder, flush to disk, rename over the target (atomic on POSIX and Windows)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def atomic_write(path, write, sync: bool = False) -> Path:
    """Call ``write(tmp)`` with a temporary path next to ``path``, then rename it to ``path``.

    The temporary name keeps ``path``'s suffixes (writers such as PIL and nibabel pick the format from them)
    and is removed if ``write`` fails. ``sync`` flushes the file to disk before the rename, so that after a
    power cut ``path`` holds either the old or the new contents (checkpoints). A failed write (a full disk)
    raises an OSError naming ``path``.
    """
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        write(tmp)
        if sync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if e.filename is None and e.errno:  # e.g. a failed flush on close: name the file
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise
    except RuntimeError as e:  # torch.save reports a failed write as a RuntimeError caused by the OSError
        if isinstance(e.__context__, OSError) and e.__context__.errno:
            raise OSError(e.__context__.errno, e.__context__.strerror, str(path)) from None
        raise
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def check_free_space(path, nbytes: int, what: str) -> None:
    """Raise an OSError before writing ``nbytes`` of ``what`` to ``path`` if its disk has less room.

    For the large dataset files: h5py cannot recover from a write that fails midway (it may crash the
    interpreter while closing the file), so the space is checked first.
    """
    folder = Path(path).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if free < nbytes:
        raise OSError(f"{path}: {what} needs about {nbytes / 2**30:.2f} GiB, the disk has {free / 2**30:.2f} GiB "
                      f"free; free space or write elsewhere")
