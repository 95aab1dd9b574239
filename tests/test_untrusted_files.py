"""Untrusted files: a checkpoint or weights file whose pickle payload would run a command is refused with a
one-line error at every entry point, and the payload never runs."""

import os

import numpy as np
import pytest
import torch

from ndgan.cli.generate import main as generate_cli
from ndgan.cli.metrics import main as metrics_cli
from ndgan.cli.project import main as project_cli
from ndgan.cli.render import main as render_cli
from ndgan.io import checkpoint as ckpt
from ndgan.cli.train import main as train_cli


class Payload:
    """Unpickling this calls os.system: what a crafted checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def crafted(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "checkpoint-000000016.pt"
    torch.save({"G_ema": {"w": torch.zeros(1)}, "format_version": 1, "evil": Payload(marker)}, path)
    return path, marker


def _one_line_refusal(capsys, code):
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_the_payload_would_run_if_unpickled(crafted):
    path, marker = crafted
    torch.load(path, weights_only=False)  # the unsafe way, to show the file is live
    assert marker.exists()


def test_checkpoint_loading_refuses_it(crafted):
    path, marker = crafted
    with pytest.raises(ValueError, match="refused: not a loadable ndgan checkpoint; it needs pickle to load "
                                         r"\((posix|nt)\.system\), which can run code"):
        ckpt.load(path)
    assert not marker.exists()


def test_every_command_refuses_it(crafted, tmp_path, capsys):
    path, marker = crafted
    _one_line_refusal(capsys, generate_cli([str(path), "--out", str(tmp_path / "g")]))
    _one_line_refusal(capsys, metrics_cli([str(path), "--metrics", "hist"]))
    target = tmp_path / "t.npy"
    np.save(target, np.zeros((1, 8, 8), dtype=np.float32))
    _one_line_refusal(capsys, project_cli([str(path), str(target), "--out", str(tmp_path / "p")]))
    _one_line_refusal(capsys, train_cli(["configs/tiny2d.yaml", "--resume", str(path), "--out", str(tmp_path / "r")]))
    assert not marker.exists()
    assert not (tmp_path / "g").exists() or not any((tmp_path / "g").iterdir())


def test_run_folder_resume_skips_it(crafted):
    path, marker = crafted
    assert ckpt.latest_valid(path.parent) == (None, None)
    assert "refused" in ckpt.none_loads(path.parent) and not marker.exists()


def test_weights_files_for_metrics_refuse_it(tmp_path):
    from ndgan.metrics.inception import load_inception
    from ndgan.metrics.lpips import load_lpips
    from ndgan.metrics.features import load_features

    marker = tmp_path / "payload-ran"
    path = tmp_path / "weights.pth"
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(1), "evil": Payload(marker)}, path)
    for load in (lambda: load_inception(path), lambda: load_lpips(str(path)),
                 lambda: load_features(path, channels=1, spatial_dims=3)):
        with pytest.raises(ValueError, match="refused: .*needs pickle"):
            load()
    assert not marker.exists()


def test_object_arrays_are_refused_by_render(tmp_path, capsys):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "volume.npy"
    np.save(path, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    _one_line_refusal(capsys, render_cli([str(path), "--out", str(tmp_path / "r.png")]))
    assert not marker.exists() and not (tmp_path / "r.png").exists()
