import math

import nibabel as nib
import numpy as np
import pytest

from ndgan.data.hdf5 import HDF5Dataset
from ndgan.data.nifti import NiftiDataset, cache_hdf5, load_volume


def oblique_affine(zooms=(1.0, 2.0, 3.0), shift=(12.0, -30.0, 7.0)):
    """A rotated (20 deg about z, 10 deg about x), anisotropic, non-RAS (x flipped) affine."""
    a, b = math.radians(20), math.radians(10)
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    aff = np.eye(4)
    aff[:3, :3] = rz @ rx @ np.diag(zooms) @ np.diag([-1, 1, 1])
    aff[:3, 3] = shift
    return aff


def blob(shape, centre, sigma):
    grids = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    return np.exp(-sum((g - c) ** 2 for g, c in zip(grids, centre)) / (2 * sigma**2)).astype(np.float32)


def world(affine, index):
    return (affine @ np.append(np.asarray(index, dtype=np.float64), 1))[:3]


def test_bright_voxel_keeps_its_world_position_through_reorientation_and_crop(tmp_path):
    aff = np.diag([-1.5, 1.0, 2.5, 1.0])  # x flipped: not RAS
    aff[:3, 3] = [10, -20, 5]
    vol = np.zeros((20, 24, 16), np.float32)
    vol[5, 9, 11] = 1
    nib.save(nib.Nifti1Image(vol, aff), tmp_path / "a.nii.gz")
    data, new_aff = load_volume(tmp_path / "a.nii.gz", shape=(16, 28, 12))  # crop x and z, pad y
    assert data.shape == (16, 28, 12)
    assert np.all(np.diag(new_aff)[:3] > 0)  # RAS+
    idx = np.unravel_index(np.argmax(data), data.shape)
    np.testing.assert_allclose(world(new_aff, idx), world(aff, (5, 9, 11)), atol=1e-6)


def test_oblique_anisotropic_volume_resampled_keeps_world_space(tmp_path):
    aff = oblique_affine()
    vol = blob((40, 30, 20), (22, 13, 9), sigma=3) * 100 + 5
    nib.save(nib.Nifti1Image(vol, aff), tmp_path / "s1.nii.gz")
    ds = NiftiDataset(tmp_path, shape=(16, 24, 24), spacing=(2.0, 2.0, 2.0))
    x = ds[0][0].numpy()
    new_aff = np.array(ds.metadata["affine"])
    np.testing.assert_allclose(np.sqrt((new_aff[:3, :3] ** 2).sum(0)), [2.0, 2.0, 2.0], rtol=0.05)
    np.testing.assert_allclose(ds.metadata["spacing"], np.sqrt((new_aff[:3, :3] ** 2).sum(0)))
    w = np.clip(x - np.percentile(x, 90), 0, None)  # the blob's mass
    centroid = [(w * g).sum() / w.sum() for g in np.meshgrid(*[np.arange(s) for s in x.shape], indexing="ij")]
    np.testing.assert_allclose(world(new_aff, centroid), world(aff, (22, 13, 9)), atol=1.0)  # half a voxel
    assert x.min() == -1 and x.max() == 1


def test_multimodal_patterns_csv_and_cache(tmp_path):
    rng = np.random.default_rng(0)
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    for sub in ("s01", "s02", "s03"):
        for mod in ("T1w", "T2w"):
            if sub == "s03" and mod == "T2w":
                continue  # incomplete subject
            nib.save(nib.Nifti1Image(rng.random((10, 12, 8)).astype(np.float32), aff), tmp_path / f"{sub}_{mod}.nii.gz")
    with pytest.warns(UserWarning, match="1 subjects lack a channel"):
        ds = NiftiDataset(tmp_path, shape=(8, 8, 8), patterns=["*_T1w.nii.gz", "*_T2w.nii.gz"])
    assert len(ds) == 2 and ds.channels == 2 and ds.metadata["channel_names"] == ["T1w", "T2w"]
    assert ds.subjects[1][1].endswith("s02_T2w.nii.gz")
    (tmp_path / "list.csv").write_text("t1,t2\ns01_T1w.nii.gz,s01_T2w.nii.gz\ns02_T1w.nii.gz,s02_T2w.nii.gz\n")
    from_csv = NiftiDataset(tmp_path / "list.csv", shape=(8, 8, 8))
    np.testing.assert_array_equal(from_csv[1].numpy(), ds[1].numpy())
    cached = HDF5Dataset(cache_hdf5(ds, tmp_path / "cache.h5"))
    np.testing.assert_array_equal(cached[0].numpy(), ds[0].numpy())
    assert np.array(cached.metadata["affine"]).shape == (4, 4) and len(cached.metadata["channel_value_ranges"]) == 2


def test_bad_nifti_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no NIfTI files"):
        NiftiDataset(tmp_path / "empty", shape=(8, 8, 8))
    cases = {
        "four_d.nii.gz": nib.Nifti1Image(np.zeros((4, 4, 4, 3), np.float32), np.eye(4)),
        "two_d.nii.gz": nib.Nifti1Image(np.zeros((4, 4), np.float32), np.eye(4)),
        "nan.nii.gz": nib.Nifti1Image(np.full((4, 4, 4), np.nan, np.float32), np.eye(4)),
        "flat.nii.gz": nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)),
    }
    messages = {"four_d": "expected a 3D volume, got shape \\(4, 4, 4, 3\\)", "two_d": "expected a 3D volume",
                "nan": "contains NaN or Inf", "flat": "constant volume"}
    for name, img in cases.items():
        folder = tmp_path / name.split(".")[0]
        folder.mkdir()
        nib.save(img, folder / name)
        with pytest.raises(ValueError, match=f"{name}: {messages[name.split('.')[0]]}"):
            NiftiDataset(folder, shape=(4, 4, 4))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "bad.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(ValueError, match="bad.nii.gz: unreadable NIfTI"):
        NiftiDataset(tmp_path / "junk", shape=(4, 4, 4))
    with pytest.raises(ValueError, match="shape: expected three positive ints"):
        NiftiDataset(tmp_path / "junk", shape=(4, 4))


def test_resampling_is_exact_for_a_linear_field_in_world_space(tmp_path):
    """Trilinear resampling reproduces a linear function of world position exactly (away from the border),
    so every processed voxel must hold f(processed affine @ index): catches half-voxel offsets."""
    aff = oblique_affine()
    grids = np.meshgrid(*[np.arange(s) for s in (30, 24, 18)], indexing="ij")
    pos = np.stack([aff[r, 0] * grids[0] + aff[r, 1] * grids[1] + aff[r, 2] * grids[2] + aff[r, 3] for r in range(3)])
    coef = np.array([0.3, -0.2, 0.5])
    vol = np.tensordot(coef, pos, axes=1).astype(np.float64) + 7.0
    nib.save(nib.Nifti1Image(vol.astype(np.float32), aff), tmp_path / "ramp.nii.gz")
    data, new_aff = load_volume(tmp_path / "ramp.nii.gz", spacing=(2.0, 2.0, 2.0), shape=(12, 20, 24))
    for idx in [(3, 5, 6), (6, 10, 12), (8, 13, 16), (4, 12, 9)]:
        assert data[idx] == pytest.approx(coef @ world(new_aff, idx) + 7.0, abs=1e-3)
