import h5py
import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from ndgan.cli.render import main as cli
from ndgan.cli.render import read_volume
from ndgan.viz.grid import sample_grid
from ndgan.viz.render import render


def sphere(n=20):
    g = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"))
    return (np.sqrt(((g - n / 2) ** 2).sum(0)) < n / 3).astype(np.float32) * 2 - 1


@pytest.mark.parametrize("mode", ["volume", "isosurface", "slices"])
def test_renders_are_pictures_not_blank(mode):
    img = render(sphere(), mode=mode, iso=0.0 if mode == "isosurface" else None, window_size=(160, 160))
    assert img.shape == (160, 160, 3) and img.dtype == np.uint8
    assert img.std() > 5 and len(np.unique(img.reshape(-1, 3), axis=0)) > 10


def test_spacing_changes_the_picture():
    """World-space proportions: the same voxels with 3x longer z voxels render differently."""
    a = render(sphere(), mode="isosurface", iso=0.0, window_size=(128, 128))
    b = render(sphere(), mode="isosurface", iso=0.0, spacing=(1, 1, 3), window_size=(128, 128))
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 2


def test_read_volume_spacing_from_nifti_and_hdf5(tmp_path):
    vol = np.random.default_rng(0).random((6, 7, 8, 2)).astype(np.float32)
    nib.save(nib.Nifti1Image(vol, np.diag([1.5, 2.0, 3.0, 1.0])), tmp_path / "v.nii.gz")
    data, spacing, _ = read_volume(tmp_path / "v.nii.gz", channel=1)
    np.testing.assert_allclose(data, vol[..., 1])
    assert tuple(spacing) == (1.5, 2.0, 3.0)
    with h5py.File(tmp_path / "v.h5", "w") as h5:
        h5["data"] = np.zeros((3, 2, 4, 4, 4), np.float32)
        h5["data"].attrs["spacing"] = [0.5, 0.5, 0.5]
        h5["data"].attrs["units"] = "K"
    _, spacing, units = read_volume(tmp_path / "v.h5", index=2)
    assert list(spacing) == [0.5, 0.5, 0.5] and units == "K"


def test_cli_png_and_turntable(tmp_path):
    np.save(tmp_path / "s.npy", sphere(16)[None, None])
    assert cli([str(tmp_path / "s.npy"), "--mode", "slices", "--out", str(tmp_path / "r.png"), "--size", "128",
                "--turntable", str(tmp_path / "t.gif"), "--frames", "3"]) == 0
    assert np.asarray(Image.open(tmp_path / "r.png")).std() > 5
    assert Image.open(tmp_path / "t.gif").n_frames == 3


@pytest.mark.parametrize("make, args, message", [
    (lambda p: np.save(p / "x.npy", np.zeros((4, 4))), ["x.npy"], "expected [D, H, W]"),
    (lambda p: np.save(p / "x.npy", np.zeros((2, 4, 4, 4))), ["x.npy", "--channel", "5"], "--channel: 5 is out of range"),
    (lambda p: (p / "x.txt").write_text("hi"), ["x.txt"], "unknown file type"),
    (lambda p: None, ["missing.npy"], "no such file"),
    (lambda p: np.save(p / "x.npy", np.zeros((2, 4, 4, 4))), ["x.npy", "--channel", "-1"], "--channel: -1 is out of range"),
    (lambda p: np.save(p / "x.npy", np.zeros((4, 4, 4))), ["x.npy", "--turntable", "t.gif", "--frames", "0"],
     "--frames: expected at least 1"),
])
def test_cli_bad_input(tmp_path, capsys, make, args, message):
    make(tmp_path)
    assert cli([str(tmp_path / args[0]), *args[1:], "--out", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.strip().count("\n") == 0
    assert not (tmp_path / "o.png").exists()


def test_small_volume_grids_are_enlarged():
    import torch

    grid = sample_grid(torch.zeros(2, 1, 8, 8, 8))
    assert min(grid.shape[:2]) >= 64
