"""A training run's folder, from creation to close: checked before anything is made (``check_own_folder``),
created with its lock and resolved config only once the config, data and networks are checked, logged into
(``stats.jsonl``, ``metrics.jsonl``, TensorBoard, the progress bar, sample pictures), and, if the run fails
before its first checkpoint, taken back (``FolderUndo``): a run that kept nothing leaves nothing.

Only rank 0 owns a ``RunFolder``; the other ranks write nothing.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import yaml

from ..io import checkpoint as ckpt
from ..io.files import PROBE_PREFIX, TMP_PREFIX, FolderUndo, append_line, atomic_write
from ..viz.grid import sample_grid, save_png


def check_own_folder(run_dir: Path, overwrite: bool) -> None:
    """Refuse a non-empty ``run_dir`` that ndgan did not make (no ``.lock`` and no checkpoint) unless
    ``overwrite``: training would replace its config.yaml and append to its stats.jsonl."""
    if overwrite or not run_dir.is_dir() or (run_dir / ".lock").exists() or ckpt.list_checkpoints(run_dir):
        return
    theirs = sorted(p.name for p in run_dir.iterdir() if not p.name.startswith((TMP_PREFIX, PROBE_PREFIX)))
    if theirs:
        raise FileExistsError(f"--out: {run_dir} is not empty and not an ndgan run folder (it holds {theirs[0]!r}"
                              f"{f' and {len(theirs) - 1} more' if len(theirs) > 1 else ''}); choose another "
                              f"--out, or pass --overwrite to train into it (its config.yaml is then replaced "
                              f"and its stats.jsonl appended to)")


def lock_run_folder(run_dir: Path):
    """Hold an exclusive lock on ``run_dir/.lock`` while training (the returned file; closing it releases the
    lock): a second process training into the same folder is refused. A POSIX record lock (``lockf``), not
    ``flock``: DataLoader workers forked during the run must not inherit it and outlive the trainer. Where
    ``fcntl`` is missing (Windows) no lock is taken."""
    try:
        import fcntl
    except ImportError:
        return None
    f = open(run_dir / ".lock", "a")
    try:
        fcntl.lockf(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise FileExistsError(f"{run_dir}: another process is training into this folder; wait for it to finish "
                              f"or choose another --out") from None
    return f


_STALE = re.compile(rf"^{re.escape(TMP_PREFIX)}\d+-(checkpoint-\d{{9}}\.pt|(samples|render|memorization)-\d{{9}}\.png"
                    r"|config\.yaml)$"
                    r"|^\.checkpoint-\d{9}\.pt\.\d+\.tmp$|^\.config\.yaml\.tmp$")


def stale_temporaries(run_dir: Path) -> list[Path]:
    """Temporary files of the names training writes (older ndgan versions' names too); only ever called while
    holding the run folder's lock, so none of them belongs to a live run."""
    files = [p for p in run_dir.iterdir() if _STALE.match(p.name) and p.is_file() and not p.is_symlink()]
    probes = [p for p in run_dir.iterdir() if p.name.startswith(PROBE_PREFIX) and p.is_dir() and not any(p.iterdir())]
    return files + probes


class RunFolder:
    """The open run folder of rank 0: ``open()`` makes it (lock, stale temporaries removed, config.yaml,
    TensorBoard), the ``log_*`` methods write into it, ``close(failed)`` releases it."""

    def __init__(self, run_dir: Path, total: int):
        self.path, self.total = Path(run_dir), total
        self.lock = self.writer = self.bar = self.undo = None

    def open(self, config: dict) -> RunFolder:
        try:
            self.undo = FolderUndo(self.path)  # what this run adds, taken back if it fails before a checkpoint
            self.undo.make()
            self.lock = lock_run_folder(self.path)
            for stale in stale_temporaries(self.path):  # half-written by a killed run (SIGKILL, power cut)
                print(f"removing {stale.name}: left by a killed run")
                stale.rmdir() if stale.is_dir() else stale.unlink()
            resolved = yaml.safe_dump(config, sort_keys=False)
            atomic_write(self.path / "config.yaml", lambda p: Path(p).write_text(resolved))
            self.writer = _tensorboard(self.path)
        except BaseException:
            self.close(failed=True)
            raise
        return self

    def close(self, failed: bool) -> None:
        """Close the open files; if the run ``failed`` and no checkpoint exists, remove what it created."""
        for handle in (self.lock, self.bar, self.writer):
            if handle is not None:
                handle.close()
        self.lock = self.bar = self.writer = None
        if failed and self.undo is not None and not ckpt.list_checkpoints(self.path):
            self.undo.remove()

    def show_progress(self, start: int) -> None:
        """The progress bar, from ``start`` images; called once a first step has run, so that an error met in
        the first batch (a bad sample) is the only line printed."""
        if self.bar is None:
            self.bar = _progress(self.total, start)

    def log_stats(self, stats: dict, nimg: int) -> None:
        """A line of ``stats.jsonl``, TensorBoard scalars and the progress bar's position and losses."""
        append_line(self.path / "stats.jsonl", json.dumps(stats))
        if self.writer is not None:
            for k, v in stats.items():
                self.writer.add_scalar(k, v, nimg)
        if self.bar is not None:
            self.bar.update(nimg - self.bar.n)
            self.bar.set_postfix({"kimg": f"{stats['kimg']:.2f}", "s/kimg": f"{stats['sec_per_kimg']:.3g}",
                                  **{k.split("/")[-1]: f"{v:.3g}" for k, v in stats.items() if k.startswith("loss")}})

    def log_rollback(self, nimg: int, step: int, rollbacks: int, lr_scale: float, found: Path) -> None:
        print(f"warning: non-finite values; rolled back to {found.name} with learning rates x{lr_scale:g}")
        append_line(self.path / "stats.jsonl", json.dumps({"kimg": nimg / 1000, "step": step, "rollback": rollbacks,
                                                           "lr_scale": lr_scale}))

    def log_metrics(self, evaluator, G_ema, nimg: int, step: int) -> float:
        """Evaluate, append a line to ``metrics.jsonl`` and TensorBoard scalars ``metrics/*``, and with
        memorization draw its closest pairs to ``memorization-<nimg>.png``; return seconds."""
        from ..metrics.memorization import save_figure
        from ..metrics.settings import json_safe

        start = time.time()
        results, info = evaluator.evaluate(G_ema)
        pairs = getattr(evaluator, "closest_pairs", None)
        if pairs is not None:
            save_figure(self.path / f"memorization-{nimg:09d}.png", pairs[0], pairs[1])
        seconds = time.time() - start
        record = json_safe({"kimg": nimg / 1000, "step": step, "results": results, "info": info,
                            "seconds": round(seconds, 2)})
        append_line(self.path / "metrics.jsonl", json.dumps(record))
        if self.writer is not None:
            for key, value in results.items():
                self.writer.add_scalar(f"metrics/{key}", value, nimg)
        return seconds

    def log_samples(self, images, nimg: int, units=None) -> None:
        """``samples-<nimg>.png`` (the grid), in 3D also ``render-<nimg>.png`` (a volume render of the first
        sample's first channel, when pyvista is there), and the grid in TensorBoard."""
        grid = sample_grid(images)
        atomic_write(self.path / f"samples-{nimg:09d}.png", lambda p: save_png(grid, p))
        if images.ndim == 5:
            try:
                from ..viz.render import render
            except ImportError:
                render = None
            if render is not None:
                picture = render(images[0, 0].float().numpy(), units=units, window_size=(384, 384))
                atomic_write(self.path / f"render-{nimg:09d}.png", lambda p: save_png(picture, p))
        if self.writer is not None:
            self.writer.add_image("samples", grid, nimg, dataformats="HWC" if grid.ndim == 3 else "HW")


def _tensorboard(run_dir):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


def _progress(total, start):
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=start, unit="img", unit_scale=True, dynamic_ncols=True, mininterval=2.0)
