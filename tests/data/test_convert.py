import h5py
import nibabel as nib
import numpy as np
from PIL import Image

from ndgan.cli.convert import main as convert_cli
from ndgan.data.hdf5 import HDF5Dataset


def test_convert_images_with_report(tmp_path, capsys):
    src = tmp_path / "imgs"
    src.mkdir()
    for i in range(3):
        Image.fromarray(np.full((10, 14, 3), 40 * i, np.uint8)).save(src / f"{i}.png")
    (src / "broken.png").write_bytes(b"\x89PNG broken")
    assert convert_cli([str(src), "--out", str(tmp_path / "o.h5"), "--shape", "8", "8"]) == 0
    out = capsys.readouterr().out
    assert "written: 3 samples of 3 x 8 x 8" in out and "rejected: 1" in out and "broken.png: unreadable" in out
    ds = HDF5Dataset(tmp_path / "o.h5")
    assert len(ds) == 3 and ds.shape == (8, 8) and ds.metadata["channel_names"] == ["R", "G", "B"]
    np.testing.assert_allclose(ds[1].numpy(), 40 / 127.5 - 1, atol=1e-5)


def test_convert_nifti_keeps_affines(tmp_path, capsys):
    aff = np.diag([1.0, 1.0, 2.0, 1.0])
    for i in range(2):
        vol = np.random.default_rng(i).random((12, 12, 6)).astype(np.float32)
        nib.save(nib.Nifti1Image(vol, aff), tmp_path / f"s{i}.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 2), np.float32), aff), tmp_path / "s9.nii.gz")  # 4D: rejected
    assert convert_cli([str(tmp_path), "--out", str(tmp_path / "m.h5"), "--shape", "8", "8", "8",
                         "--spacing", "1", "1", "1"]) == 0
    out = capsys.readouterr().out
    assert "written: 2 samples of 1 x 8 x 8 x 8" in out and "s9.nii.gz: expected a 3D volume" in out
    with h5py.File(tmp_path / "m.h5") as h5:
        assert h5["affines"].shape == (2, 4, 4) and h5["data"].attrs["spacing"].tolist() == [1.0, 1.0, 1.0]


def test_convert_npy_stack_and_errors(tmp_path, capsys):
    stack = np.random.default_rng(0).uniform(-3, 5, (4, 2, 6, 6)).astype(np.float32)
    stack[2, 0, 0, 0] = np.nan
    np.save(tmp_path / "s.npy", stack)
    assert convert_cli([str(tmp_path / "s.npy"), "--out", str(tmp_path / "s.h5")]) == 0
    assert "s.npy[2]: NaN or Inf" in capsys.readouterr().out
    ds = HDF5Dataset(tmp_path / "s.h5")
    assert len(ds) == 3 and -1 <= ds[0].min() and ds[0].max() <= 1  # mapped through the stored value range
    # Refuses to overwrite; a one-line error and exit code 2.
    assert convert_cli([str(tmp_path / "s.npy"), "--out", str(tmp_path / "s.h5")]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and err.count("\n") == 1
    (tmp_path / "none").mkdir()
    assert convert_cli([str(tmp_path / "none"), "--out", str(tmp_path / "n.h5")]) == 2
    assert "no .png/.jpg/.jpeg images found" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["none", "s.h5", "s.npy"]  # nothing partial left
