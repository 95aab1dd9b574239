import json
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from ndgan.data.images import ImageDataset


def save(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)
    return array


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    arrays = [save(tmp_path / "imgs" / f"sub/{i:02d}.png", rng.integers(0, 256, (8, 12, 3), dtype=np.uint8))
              for i in range(4)]
    return tmp_path / "imgs", arrays


def test_folder_values_layout_and_order(folder):
    path, arrays = folder
    ds = ImageDataset(path)
    assert (len(ds), ds.channels, ds.shape) == (4, 3, (8, 12))
    x = ds[2]
    assert x.shape == (3, 8, 12)
    torch.testing.assert_close(x, torch.from_numpy(arrays[2]).permute(2, 0, 1).float() / 127.5 - 1)


def test_zip_equals_folder_and_xflip(folder, tmp_path):
    path, _ = folder
    with zipfile.ZipFile(tmp_path / "imgs.zip", "w") as z:
        for f in sorted(path.rglob("*.png")):
            z.write(f, f.relative_to(path))
    folder_ds, zip_ds = ImageDataset(path, xflip=True), ImageDataset(tmp_path / "imgs.zip", xflip=True)
    assert len(zip_ds) == 8
    for i in (0, 3, 5):
        torch.testing.assert_close(zip_ds[i], folder_ds[i])
    torch.testing.assert_close(zip_ds[4 + 1], zip_ds[1].flip(-1))


@pytest.mark.parametrize("mode, shape, channels", [("L", (6, 5), 1), ("RGBA", (6, 5, 4), 4)])
def test_grayscale_and_rgba(tmp_path, mode, shape, channels):
    array = save(tmp_path / "a.png", np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8), mode)
    x = ImageDataset(tmp_path)[0]
    assert x.shape == (channels, 6, 5)
    assert x.reshape(channels, -1).T.numpy().reshape(shape) == pytest.approx(array / 127.5 - 1, abs=1e-6)


def test_sixteen_bit_grayscale(tmp_path):
    array = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    Image.fromarray(array).save(tmp_path / "d.png")
    x = ImageDataset(tmp_path)[0]
    assert x.shape == (1, 2, 2) and x.min() == -1 and x.max() == 1


def test_channel_conversion_and_crop_resize(tmp_path):
    wide = np.zeros((10, 30, 3), np.uint8)
    wide[:, 10:20] = 255  # a white centre square: centre-cropping a 1:1 target keeps exactly it
    save(tmp_path / "w.png", wide)
    x = ImageDataset(tmp_path, channels=1, shape=(4, 4))[0]
    assert x.shape == (1, 4, 4)
    assert x.min() > 0.9  # the crop kept only the white middle


def test_labels_json(folder, tmp_path):
    path, _ = folder
    names = sorted(str(p.relative_to(path)) for p in path.rglob("*.png"))
    (tmp_path / "labels.json").write_text(json.dumps({"labels": [[n, i % 3] for i, n in enumerate(names)]}))
    ds = ImageDataset(path, labels=tmp_path / "labels.json")
    x, c = ds[1]
    assert c.tolist() == [0.0, 1.0, 0.0]
    (tmp_path / "partial.json").write_text(json.dumps({"labels": [[names[0], 0]]}))
    with pytest.raises(ValueError, match="partial.json: no label for sub/01.png"):
        ImageDataset(path, labels=tmp_path / "partial.json")


def test_bad_folders(tmp_path, folder):
    path, _ = folder
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: no .png/.jpg/.jpeg images found"):
        ImageDataset(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="no such folder or zip"):
        ImageDataset(tmp_path / "nope")
    (path / "sub" / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    save(path / "sub" / "zz_big.png", np.zeros((9, 9, 3), np.uint8))
    with pytest.raises(ValueError, match=r"zz_big.png: size \(9, 9\) differs from \(8, 12\).*1 more"):
        ImageDataset(path)
    with pytest.warns(UserWarning, match="skipped 2 images"):
        ds = ImageDataset(path, skip_bad=True)
    assert len(ds) == 4
    with pytest.warns(UserWarning, match="skipped 1 images: sub/zz_broken.png"):
        resized = ImageDataset(path, skip_bad=True, shape=(8, 12))
    assert resized.files[-1] == "sub/zz_big.png"  # resized, not skipped


def test_truncated_png_names_the_file(tmp_path):
    save(tmp_path / "ok.png", np.zeros((8, 8, 3), np.uint8))
    good = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="trunc.png: unreadable"):
        ImageDataset(tmp_path)
