"""Writing files so that a crash, a kill or a full disk never leaves a partial one: write under a temporary
name in the same folder, flush to disk, rename over the target (atomic on POSIX and Windows)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

#: Temporary names start with this; ``tmp_name`` adds the process id and the target's name.
TMP_PREFIX = ".tmp-"
#: The empty folder ``check_writable`` creates and removes at once.
PROBE_PREFIX = ".ndgan-probe-"


def tmp_name(path: Path) -> Path:
    """The temporary path next to ``path`` (keeping its suffixes, which writers such as PIL and nibabel read)."""
    return path.with_name(f"{TMP_PREFIX}{os.getpid()}-{path.name}")


def atomic_write(path, write, sync: bool = False, replace: bool = True) -> Path:
    """Call ``write(tmp)`` with a temporary path next to ``path``, then rename it to ``path``.

    The temporary file is removed if ``write`` fails. ``sync`` flushes the file to disk before the rename, so
    that after a power cut ``path`` holds either the old or the new contents (checkpoints). A failed write
    (a full disk) raises an OSError naming ``path``. ``replace=False`` links the file into place instead: a
    FileExistsError if something appeared at ``path`` meanwhile, never a replaced result.
    """
    return atomic_write_all([(path, write)], sync, replace)[0]


def atomic_write_all(items, sync: bool = False, replace: bool = True) -> list[Path]:
    """``atomic_write`` for a set of files ``[(path, write), ...]``: all are written under temporary names
    first and renamed (``replace=False``: linked) only when every one succeeded, so a failure leaves none of
    them."""
    items = [(Path(path), write) for path, write in items]
    if len({path for path, _ in items}) < len(items):
        raise ValueError(f"the same file twice in one write: {[str(path) for path, _ in items]}")
    temporaries = []
    try:
        for path, write in items:
            tmp = tmp_name(path)
            temporaries.append(tmp)
            with errors_name(path, tmp):
                write(tmp)
                if sync:
                    with open(tmp, "rb+") as f:
                        os.fsync(f.fileno())
        for (path, _), tmp in zip(items, temporaries):
            with errors_name(path, tmp):
                os.replace(tmp, path) if replace else os.link(tmp, path)
    finally:
        for tmp in temporaries:
            if tmp.exists():
                tmp.unlink()
    return [path for path, _ in items]


@contextlib.contextmanager
def errors_name(path: Path, tmp: Path):
    """Report a failed write as an OSError naming ``path``, the file the user asked for, not its temporary."""
    try:
        yield
    except OSError as e:
        if e.errno and e.filename in (None, str(tmp), tmp):
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise
    except RuntimeError as e:  # torch.save reports a failed write as a RuntimeError caused by the OSError
        if isinstance(e.__context__, OSError) and e.__context__.errno:
            raise OSError(e.__context__.errno, e.__context__.strerror, str(path)) from None
        raise


def append_line(path, line: str) -> None:
    """Append ``line`` and a newline to the log ``path``; if the write fails (a full disk) the file is cut back
    to its old length, so a log never ends in half a line."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.lseek(fd, 0, os.SEEK_END)
        rest = memoryview(line.encode() + b"\n")
        try:
            while rest:  # unbuffered: a short write is seen here, not later when a buffer is flushed
                rest = rest[os.write(fd, rest):]
        except OSError as e:
            os.ftruncate(fd, start)
            raise OSError(e.errno, e.strerror, str(path)) from None
    finally:
        os.close(fd)


class FolderUndo:
    """What creating ``folder`` (and its parents) and writing into it will add, recorded before it is created, so
    that a command that fails can take it all back: ``remove()`` deletes the entries of ``folder`` that were not
    there before, then the folders that were made for it, innermost first, when they are empty."""

    def __init__(self, folder):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(f"--out: {self.folder} is a file, not a folder; choose another --out")
        self.created, parent = [], self.folder
        while not parent.exists():
            self.created.append(parent)
            parent = parent.parent
        self.before = set(os.listdir(self.folder)) if self.folder.is_dir() else set()

    def make(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder

    def remove(self, entries: bool = True) -> None:
        if entries and self.folder.is_dir():
            for path in self.folder.iterdir():
                if path.name not in self.before:
                    with contextlib.suppress(OSError):
                        if path.is_dir() and not path.is_symlink():
                            shutil.rmtree(path)
                        else:
                            path.unlink()
        for made in self.created:
            with contextlib.suppress(OSError):
                made.rmdir()


@contextlib.contextmanager
def output_folder(folder):
    """Create ``folder`` (and parents) for the outputs written in the block; if the block fails, the folders
    this call created are removed again when they are still empty."""
    undo = FolderUndo(folder)
    undo.make()
    try:
        yield undo.folder
    except BaseException:
        undo.remove(entries=False)
        raise


def check_writable(folder) -> None:
    """Raise an OSError naming ``folder`` if it cannot be created or written to, by creating (and removing)
    a probe in its nearest existing ancestor: permission bits alone say nothing for root or read-only mounts."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"--out {folder}: {existing} is a file, not a folder; choose another --out")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=PROBE_PREFIX, dir=existing))
    except OSError as e:
        raise PermissionError(f"--out {folder}: {existing} is not writable ({e.strerror}); choose another --out") \
            from None


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


def program_archive(path):
    """'torch.export program' or 'TorchScript program' when ``path`` is one of those archives (loading them
    runs their code), else None (``torch.save`` files are zip archives too, without their marks)."""
    import zipfile

    try:
        if not zipfile.is_zipfile(path):
            return None
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (OSError, zipfile.BadZipFile):
        return None
    if any(name.endswith("/archive_format") for name in names):
        return "torch.export program"
    return "TorchScript program" if any("/code/" in name for name in names) else None


def load_npy(path, mmap: bool = False):
    """A NumPy ``.npy`` array, checked before it is read: an array of Python objects (which needs pickle, and
    pickle can run code) is refused, a header that declares more bytes than the file holds is refused (it
    would allocate what it declares), and a full read must fit in memory. Errors name the file."""
    import numpy as np

    from .budget import check_fits

    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ValueError(f"unsupported .npy version {version}")
            shape, _, dtype = read_header(f)
            offset = f.tell()
    except (ValueError, OSError, EOFError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"{path}: not a readable NumPy .npy file ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else 'empty or cut short'})") from None
    if dtype.hasobject:
        raise ValueError(f"{path}: holds Python objects (dtype {dtype}), which only pickle can load, and pickle "
                         f"can run code; save plain numbers (e.g. np.save(path, array.astype(np.float32)))")
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    held = os.path.getsize(path) - offset
    if declared > held:
        raise ValueError(f"{path}: the header declares shape {tuple(shape)} of {dtype} ({declared:,} bytes), the "
                         f"file holds {held:,} bytes after it: cut short or corrupt")
    if not mmap:
        check_fits(declared, str(path), "use a smaller array")
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
