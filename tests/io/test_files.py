"""ndgan.io.files: all-or-nothing writes, logs that never end in half a line, output folders removed on failure,
and a writability probe that also holds for root."""

import errno
import os
import resource
import signal

import pytest

from ndgan.io.files import (append_line, atomic_write, atomic_write_all, check_free_space, check_writable,
                         output_folder)


def test_a_failing_write_in_a_set_leaves_none_of_the_set(tmp_path):
    def fail(p):
        open(p, "wb").write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device", str(p))

    with pytest.raises(OSError) as caught:
        atomic_write_all([(tmp_path / "a.png", lambda p: open(p, "wb").write(b"a")), (tmp_path / "b.gif", fail)])
    assert caught.value.filename == str(tmp_path / "b.gif")  # the file asked for, not its temporary name
    assert list(tmp_path.iterdir()) == []
    atomic_write_all([(tmp_path / "a.png", lambda p: open(p, "wb").write(b"a"))])
    assert (tmp_path / "a.png").read_bytes() == b"a" and len(list(tmp_path.iterdir())) == 1


def test_a_failed_replacement_keeps_the_old_file(tmp_path):
    (tmp_path / "c.pt").write_bytes(b"old")
    with pytest.raises(ValueError):
        atomic_write(tmp_path / "c.pt", lambda p: (open(p, "wb").write(b"ne"), (_ for _ in ()).throw(ValueError())))
    assert (tmp_path / "c.pt").read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1


def test_a_log_line_that_does_not_fit_is_taken_back(tmp_path):
    log = tmp_path / "stats.jsonl"
    append_line(log, '{"kimg": 1}')
    size = log.stat().st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 10, hard))  # room for 10 more bytes: a real EFBIG
    try:
        with pytest.raises(OSError) as caught:
            append_line(log, '{"kimg": 2, "loss": 0.123456789}')
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert caught.value.errno == errno.EFBIG and caught.value.filename == str(log)
    assert log.read_text() == '{"kimg": 1}\n'


def test_output_folder_is_removed_when_nothing_was_written(tmp_path):
    with pytest.raises(RuntimeError):
        with output_folder(tmp_path / "a" / "b"):
            raise RuntimeError
    assert not (tmp_path / "a").exists()
    (tmp_path / "kept").mkdir()
    with pytest.raises(RuntimeError):
        with output_folder(tmp_path / "kept" / "new"):
            raise RuntimeError
    assert (tmp_path / "kept").is_dir() and not (tmp_path / "kept" / "new").exists()
    with output_folder(tmp_path / "ok") as folder:
        (folder / "x").write_text("x")
    assert (tmp_path / "ok" / "x").exists()


def test_writability_is_probed_not_guessed(tmp_path):
    check_writable(tmp_path / "new" / "run")
    assert list(tmp_path.iterdir()) == []  # the probe leaves nothing
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        check_writable(tmp_path / "f" / "run")
    with pytest.raises(PermissionError, match="/proc is not writable"):  # even for root
        check_writable("/proc/ndgan-run")
    if os.geteuid() != 0:
        (tmp_path / "ro").mkdir(mode=0o555)
        with pytest.raises(PermissionError, match="not writable"):
            check_writable(tmp_path / "ro" / "run")


def test_free_space_is_checked_before_a_large_dataset_write(tmp_path):
    import shutil

    check_free_space(tmp_path / "small.h5", 1, "one byte")
    with pytest.raises(OSError, match=r"big.h5: 4 grids needs about .* GiB, the disk has .* GiB free"):
        check_free_space(tmp_path / "sub" / "big.h5", shutil.disk_usage(tmp_path).free + 2**30, "4 grids")
