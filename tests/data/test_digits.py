import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn import datasets as sklearn_datasets

from ndgan.data import open_dataset
from ndgan.data.digits import DigitsDataset
from ndgan.cli.train import main as train_cli

ROOT = Path(__file__).resolve().parents[2]


def _bilinear_half_pixel(img: np.ndarray, size: int) -> np.ndarray:
    """Brute-force bilinear resize with half-pixel centres and edge clamping, one output pixel at a time."""
    n = img.shape[0]
    out = np.zeros((size, size))
    for i in range(size):
        for j in range(size):
            y = min(max((i + 0.5) * n / size - 0.5, 0), n - 1)
            x = min(max((j + 0.5) * n / size - 0.5, 0), n - 1)
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            y1, x1 = min(y0 + 1, n - 1), min(x0 + 1, n - 1)
            wy, wx = y - y0, x - x0
            out[i, j] = ((1 - wy) * (1 - wx) * img[y0, x0] + (1 - wy) * wx * img[y0, x1]
                         + wy * (1 - wx) * img[y1, x0] + wy * wx * img[y1, x1])
    return out


def test_digits_are_the_scikit_learn_scans_resized():
    ds = open_dataset("digits", size=32, shape=(32, 32), channels=1)
    raw = sklearn_datasets.load_digits()
    assert len(ds) == 1797 == len(raw.images)
    for i in (0, 5, 1796):
        expected = _bilinear_half_pixel(raw.images[i] / 16.0 * 2 - 1, 32)
        assert ds[i].shape == (1, 32, 32) and ds[i].dtype == torch.float32
        np.testing.assert_allclose(ds[i][0].numpy(), expected, atol=1e-5)
    at8 = DigitsDataset(size=8)
    np.testing.assert_allclose(at8[3][0].numpy(), raw.images[3] / 8.0 - 1, atol=1e-6)  # no resampling at 8x8
    assert ds.metadata["value_range"] == [0.0, 16.0] and ds.metadata["source"] == "digits"


def test_digit_labels_are_one_hot_targets():
    ds = DigitsDataset(size=16, labels=True)
    x, c = ds[7]
    assert x.shape == (1, 16, 16) and c.shape == (10,) and c.sum() == 1
    assert int(c.argmax()) == int(sklearn_datasets.load_digits().target[7])


@pytest.mark.parametrize("kwargs, words", [
    (dict(size=32, shape=(32, 16)), "data.shape"),
    (dict(size=32, channels=3), "data.channels"),
    (dict(size=4), "size"),
])
def test_digits_refuse_shapes_they_cannot_give(kwargs, words):
    with pytest.raises(ValueError, match=words):
        DigitsDataset(**kwargs)


def test_digits_without_scikit_learn_is_one_line_naming_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn now raises ImportError
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    code = train_cli([str(ROOT / "configs/digits2d.yaml"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("error:") and "scikit-learn" in err[0] and "ndgan[digits]" in err[0]
    assert not (tmp_path / "run").exists()
