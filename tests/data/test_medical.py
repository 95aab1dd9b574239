"""CT windows, label maps as channels, and exported NIfTI read back by an independent reader (SimpleITK)."""

import nibabel as nib
import numpy as np
import pytest
import torch

from ndgan import load_generator
from ndgan.cli.generate import main as generate_cli
from ndgan.data import labelmaps, open_dataset
from ndgan.data.nifti import NiftiDataset, cache_hdf5
from ndgan.data.hdf5 import HDF5Dataset
from ndgan.data.units import to_physical
from ndgan.io.volumes import write_nifti
from ndgan.sampling import generate
from ndgan.train import load_config, train
from tests.data.test_nifti import oblique_affine

sitk = pytest.importorskip("SimpleITK", reason="SimpleITK is in the test extra: pip install -e '.[test]'")

LPS = np.diag([-1.0, -1.0, 1.0])  # ITK's world is LPS, NIfTI's RAS


def itk_geometry(path):
    """(origin, spacing, direction 3x3) as SimpleITK reads the file."""
    img = sitk.ReadImage(str(path))
    return np.array(img.GetOrigin()), np.array(img.GetSpacing()), np.array(img.GetDirection()).reshape(3, 3)


def itk_expected(affine):
    """What an ITK reader must report for a NIfTI file written with the RAS ``affine``."""
    affine = np.asarray(affine, dtype=np.float64)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    return LPS @ affine[:3, 3], spacing, LPS @ affine[:3, :3] / spacing


def ct_subjects(folder, n=4, shape=(20, 16, 12), affine=None, seed=0):
    """CT-like volumes in HU (air, soft tissue, bone) and their label maps (1: organ, 2: lesion)."""
    rng = np.random.default_rng(seed)
    affine = oblique_affine() if affine is None else affine
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        ct = np.full(shape, -1000.0, np.float32)
        ct[2:-2, 2:-2, 1:-1] = rng.normal(40, 30, (shape[0] - 4, shape[1] - 4, shape[2] - 2))
        seg = np.zeros(shape, np.uint8)
        a = 3 + i % 3
        seg[a:a + 8, 4:11, 2:8] = 1
        seg[a + 2:a + 5, 6:9, 3:6] = 2
        ct[seg == 2] = 900  # a bright lesion
        nib.save(nib.Nifti1Image(ct, affine), folder / f"p{i:02d}_ct.nii.gz")
        nib.save(nib.Nifti1Image(seg, affine), folder / f"p{i:02d}_seg.nii.gz")
    return folder


def test_window_clips_and_maps_hu_to_the_unit_range_and_back(tmp_path):
    ct_subjects(tmp_path, n=2, affine=np.diag([1.0, 1.0, 1.0, 1.0]))
    ds = NiftiDataset(tmp_path, shape=(20, 16, 12), patterns=["*_ct.nii.gz"], window=[-200, 400])
    hu = nib.load(tmp_path / "p00_ct.nii.gz").get_fdata()
    # MONAI's ScaleIntensityRange(a_min=-200, a_max=400, b_min=-1, b_max=1, clip=True), written out.
    expected = np.clip((hu - -200) / (400 - -200) * (1 - -1) + -1, -1, 1)
    np.testing.assert_allclose(ds[0][0].numpy(), expected, atol=1e-6)
    meta = ds.metadata
    assert meta["units"] == "HU" and meta["value_range"] == [-200.0, 400.0] and "percentiles" not in meta
    np.testing.assert_allclose(to_physical(ds[0], meta, channel_axis=0)[0].numpy(), np.clip(hu, -200, 400), atol=1e-3)
    # The same window for every subject: two subjects' identical HU get identical values (percentiles would not).
    assert float(ds[0][0].max()) == float(ds[1][0].max()) == 1.0


@pytest.mark.parametrize("window", [[400, -200], [100, 100], [[0, 1], [2, 3]], "soft"])
def test_bad_windows_are_one_line_errors_naming_the_key(tmp_path, window):
    ct_subjects(tmp_path, n=1)
    with pytest.raises(ValueError, match=r"^data\.options\.window: ") as e:
        NiftiDataset(tmp_path, shape=(8, 8, 8), patterns=["*_ct.nii.gz"], window=window)
    assert "\n" not in str(e.value)


def nearest_reference(src_labels, src_affine, out_shape, out_affine):
    """Dense brute force: every output voxel takes the label of the source voxel nearest to its world
    position (0 outside the source), plus a mask of voxels that sit on a tie between two source voxels."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in out_shape], indexing="ij"), -1).reshape(-1, 3)
    homog = np.c_[idx, np.ones(len(idx))]
    src = (np.linalg.inv(src_affine) @ out_affine @ homog.T).T[:, :3]  # continuous source index
    tie = (np.abs(src - np.floor(src) - 0.5) < 1e-6).any(1)
    nearest = np.rint(src).astype(int)
    inside = ((nearest >= 0) & (nearest < np.array(src_labels.shape))).all(1)
    ref = np.zeros(len(idx), src_labels.dtype)
    ref[inside] = src_labels[tuple(nearest[inside].T)]
    return ref.reshape(out_shape), tie.reshape(out_shape)


@pytest.mark.parametrize("encoding", labelmaps.ENCODINGS)
def test_label_voxels_keep_their_world_position_and_value_through_reorientation_and_resampling(tmp_path, encoding):
    affine = oblique_affine(zooms=(1.0, 2.0, 3.0))  # rotated, anisotropic, x flipped (not RAS)
    ct_subjects(tmp_path, n=1, shape=(20, 16, 12), affine=affine)
    seg = np.asarray(nib.load(tmp_path / "p00_seg.nii.gz").dataobj)
    seg[15, 12, 9] = 2  # a lone voxel: interpolation would blur it away, nearest neighbour keeps it
    nib.save(nib.Nifti1Image(seg, affine), tmp_path / "p00_seg.nii.gz")
    ds = NiftiDataset(tmp_path, shape=(24, 16, 12), spacing=(0.7, 1.3, 2.2), patterns=["*_ct.nii.gz"],
                      labels="*_seg.nii.gz", label_encoding=encoding)
    x = ds[0].numpy()
    meta = ds.metadata
    assert meta["label_map_values"] == [1, 2] and meta["label_map_channels"] == list(range(1, ds.channels))
    out = labelmaps.decode(x[meta["label_map_channels"]], [1, 2], encoding)
    ref, tie = nearest_reference(seg, affine, out.shape, np.array(meta["affine"]))
    assert tie.mean() < 0.15  # voxels halfway between two source voxels may take either
    np.testing.assert_array_equal(out[~tie], ref[~tie])  # position and value, voxel by voxel
    assert set(np.unique(out)) == {0, 1, 2}
    # The lone voxel is in the output, at its world position within half a voxel.
    lone = np.argwhere((out == 2) & (ref == 2))
    world = lambda a, i: (a @ np.append(i, 1.0))[:3]  # noqa: E731
    dist = [np.linalg.norm(world(np.array(meta["affine"]), i) - world(affine, [15, 12, 9])) for i in lone]
    assert min(dist) < 0.5 * np.linalg.norm([0.7, 1.3, 2.2])


def test_label_encodings_round_trip_and_decode_in_between_values():
    rng = np.random.default_rng(1)
    labels = rng.choice([0, 1, 2, 4], size=(6, 5, 4))
    for encoding in labelmaps.ENCODINGS:
        enc = labelmaps.encode(labels, [1, 2, 4], encoding)
        assert enc.shape[0] == labelmaps.num_channels([1, 2, 4], encoding) and enc.min() == -1 and enc.max() == 1
        np.testing.assert_array_equal(labelmaps.decode(enc, [1, 2, 4], encoding), labels)
        noisy = enc + rng.uniform(-0.2, 0.2, enc.shape)  # a generator's values near the levels
        np.testing.assert_array_equal(labelmaps.decode(noisy, [1, 2, 4], encoding), labels)
    # One-hot: the largest channel wins where one is above 0, background where none is.
    two = np.array([[0.3, -0.5, -0.9], [0.6, -0.2, -0.9]])[:, :, None, None]  # [K=2, 3, 1, 1]
    np.testing.assert_array_equal(labelmaps.decode(two, [3, 7], "onehot")[:, 0, 0], [7, 0, 0])


def test_mixed_label_sets_are_refused_unless_the_labels_are_given(tmp_path):
    ct_subjects(tmp_path, n=3)
    seg = np.asarray(nib.load(tmp_path / "p01_seg.nii.gz").dataobj)
    seg[seg == 2] = 1  # this subject has no lesion
    nib.save(nib.Nifti1Image(seg, oblique_affine()), tmp_path / "p01_seg.nii.gz")
    with pytest.raises(ValueError, match=r"p01_seg\.nii\.gz: has labels \[0, 1\].*label_values") as e:
        NiftiDataset(tmp_path, shape=(8, 8, 8), patterns=["*_ct.nii.gz"], labels="*_seg.nii.gz")
    assert "\n" not in str(e.value)
    ds = NiftiDataset(tmp_path, shape=(8, 8, 8), patterns=["*_ct.nii.gz"], labels="*_seg.nii.gz",
                      label_values=[1, 2])
    assert ds.channels == 3
    with pytest.raises(ValueError, match=r"p00_seg\.nii\.gz: has labels \[2\] outside data\.options\.label_values"):
        NiftiDataset(tmp_path, shape=(8, 8, 8), patterns=["*_ct.nii.gz"], labels="*_seg.nii.gz", label_values=[1])


def test_label_maps_off_their_images_grid_are_refused(tmp_path):
    ct_subjects(tmp_path, n=2)
    nib.save(nib.Nifti1Image(np.zeros((20, 16, 11), np.uint8), oblique_affine()), tmp_path / "p00_seg.nii.gz")
    with pytest.raises(ValueError, match=r"p00_seg\.nii\.gz: label map of shape \(20, 16, 11\), its image "):
        NiftiDataset(tmp_path, shape=(8, 8, 8), patterns=["*_ct.nii.gz"], labels="*_seg.nii.gz")
    shifted = oblique_affine(shift=(13.0, -30.0, 7.0))
    nib.save(nib.Nifti1Image(np.ones((20, 16, 12), np.uint8), shifted), tmp_path / "p00_seg.nii.gz")
    with pytest.raises(ValueError, match=r"p00_seg\.nii\.gz: its affine differs from its image .*p00_ct"):
        NiftiDataset(tmp_path, shape=(8, 8, 8), patterns=["*_ct.nii.gz"], labels="*_seg.nii.gz")
    nib.save(nib.Nifti1Image(np.full((20, 16, 12), 0.5, np.float32), oblique_affine()), tmp_path / "p00_seg.nii.gz")
    with pytest.raises(ValueError, match=r"p00_seg\.nii\.gz: label maps hold non-negative integer labels"):
        NiftiDataset(tmp_path, shape=(8, 8, 8), patterns=["*_ct.nii.gz"], labels="*_seg.nii.gz")


def test_label_options_need_their_pattern_and_a_folder_of_patterns(tmp_path):
    ct_subjects(tmp_path, n=1)
    with pytest.raises(ValueError, match=r"^data\.options\.labels: .*patterns"):
        NiftiDataset(tmp_path, shape=(8, 8, 8), labels="*_seg.nii.gz")
    with pytest.raises(ValueError, match=r"^data\.options\.labels: expected a pattern with exactly one"):
        NiftiDataset(tmp_path, shape=(8, 8, 8), patterns=["*_ct.nii.gz"], labels="seg.nii.gz")
    with pytest.raises(ValueError, match=r"^data\.options\.label_values / label_encoding"):
        NiftiDataset(tmp_path, shape=(8, 8, 8), patterns=["*_ct.nii.gz"], label_values=[1])
    with pytest.raises(ValueError, match=r"^data\.options\.label_encoding: expected one of"):
        NiftiDataset(tmp_path, shape=(8, 8, 8), patterns=["*_ct.nii.gz"], labels="*_seg.nii.gz",
                     label_encoding="one-hot")


def test_the_hdf5_cache_keeps_the_window_and_the_label_maps(tmp_path):
    ct_subjects(tmp_path / "ct", n=2)
    ds = open_dataset("nifti", path=str(tmp_path / "ct"), shape=[8, 8, 8], patterns=["*_ct.nii.gz"],
                      labels="*_seg.nii.gz", window=[-1000, 1000])
    cached = HDF5Dataset(cache_hdf5(ds, tmp_path / "c.h5"))
    for key in ("window", "label_map_values", "label_map_encoding", "label_map_channels", "units"):
        assert cached.metadata[key] == ds.metadata[key], key
    torch.testing.assert_close(cached[1], ds[1])


SMALL = ["G.z_dim=16", "G.w_dim=16", "G.mapping_layers=1", "G.channel_base=64", "G.channel_max=8",
         "D.channel_base=64", "D.channel_max=8", "train.batch=4", "train.kimg=0.004", "train.snapshot_kimg=0.004"]


@pytest.fixture(scope="module")
def ct_run(tmp_path_factory):
    """A one-step run on CT volumes in a window, with their label maps as two one-hot channels."""
    tmp = tmp_path_factory.mktemp("ct")
    ct_subjects(tmp / "data", n=4)
    cfg = load_config("configs/tiny3d.yaml", SMALL + [
        "data.source=nifti", f"data.path={tmp / 'data'}", "data.shape=[8,8,8]", "data.channels=3",
        "data.periodic=false", "data.options={spacing: [2.0, 2.0, 2.0], patterns: ['*_ct.nii.gz'], "
                               "labels: '*_seg.nii.gz', window: [-1000, 1000]}"])
    return train(cfg, tmp / "run"), tmp / "data"


def test_exports_write_hu_and_an_integer_label_map_that_simpleitk_and_nibabel_place_alike(ct_run, tmp_path):
    run, data = ct_run
    assert generate_cli([str(run), "--seeds", "3", "--format", "nii.gz", "--out", str(tmp_path)]) == 0
    G = load_generator(run)
    ds = NiftiDataset(data, shape=(8, 8, 8), spacing=(2.0, 2.0, 2.0), patterns=["*_ct.nii.gz"],
                      labels="*_seg.nii.gz", window=[-1000, 1000])
    reference = np.array(ds.metadata["affine"])  # the training data's processed affine
    image, label = nib.load(tmp_path / "seed00003.nii.gz"), nib.load(tmp_path / "seed00003_label.nii.gz")
    # The image: one channel, in HU, and says so.
    x = generate(G, [3])[0]
    assert image.shape == (8, 8, 8)
    np.testing.assert_allclose(image.get_fdata(), (x[0].clamp(-1, 1).numpy() + 1) / 2 * 2000 - 1000, atol=1e-2)
    assert image.header["descrip"].tobytes().decode().rstrip("\0") == "ndgan sample in HU, window [-1000, 1000]"
    assert (float(image.header["cal_min"]), float(image.header["cal_max"])) == (-1000.0, 1000.0)
    # The label map: integers, label intent, argmax of the label channels.
    assert np.issubdtype(label.get_data_dtype(), np.integer) and label.header.get_intent()[0] == "label"
    np.testing.assert_array_equal(np.asarray(label.dataobj), labelmaps.decode(x[1:].numpy(), [1, 2], "onehot"))
    # Both files, read by nibabel and by SimpleITK, sit where the training data's processed volumes sit.
    for img, path in ((image, "seed00003.nii.gz"), (label, "seed00003_label.nii.gz")):
        np.testing.assert_allclose(img.affine, reference, atol=1e-5)
        origin, spacing, direction = itk_geometry(tmp_path / path)
        e_origin, e_spacing, e_direction = itk_expected(reference)
        np.testing.assert_allclose(origin, e_origin, atol=1e-4)
        np.testing.assert_allclose(spacing, e_spacing, rtol=1e-5)
        np.testing.assert_allclose(direction, e_direction, atol=1e-5)
    assert sitk.ReadImage(str(tmp_path / "seed00003_label.nii.gz")).GetPixelID() in (sitk.sitkUInt8, sitk.sitkInt16)


def mni152_file():
    nilearn_datasets = pytest.importorskip("nilearn.datasets", reason="nilearn is in the test extra")
    return nilearn_datasets.MNI152_FILE_PATH


def test_a_real_scan_header_round_trips_read_reoriented_resampled_and_exported(tmp_path):
    """The MNI152 template nilearn ships (a real scan's header): read, resampled to 3 mm, cropped, exported,
    and read back by nibabel and SimpleITK at the same place in the world."""
    src = nib.load(mni152_file())
    (tmp_path / "mni").mkdir()
    # An LPS-stored copy, as many scanners write them: the source must reorient it back to RAS+.
    data = np.asarray(src.dataobj, np.float32)
    to_old = np.diag([-1.0, -1.0, 1.0, 1.0])  # new index (i, j, k) is old index (n0 - 1 - i, n1 - 1 - j, k)
    to_old[:2, 3] = [data.shape[0] - 1, data.shape[1] - 1]
    flip_affine = src.affine @ to_old
    nib.save(nib.Nifti1Image(np.ascontiguousarray(data[::-1, ::-1]), flip_affine), tmp_path / "mni" / "mni_lps.nii.gz")
    assert nib.aff2axcodes(flip_affine) == ("L", "P", "S")
    ds = NiftiDataset(tmp_path / "mni", shape=(64, 72, 64), spacing=(3.0, 3.0, 3.0))
    meta = ds.metadata
    assert nib.aff2axcodes(np.array(meta["affine"])) == ("R", "A", "S")
    volume = to_physical(ds[0], meta, channel_axis=0).numpy()
    out = tmp_path / "mni_3mm.nii.gz"
    write_nifti(out, volume, meta["affine"])
    back = nib.load(out)
    np.testing.assert_allclose(back.affine, meta["affine"], atol=1e-5)
    origin, spacing, direction = itk_geometry(out)
    for got, expected in zip((origin, spacing, direction), itk_expected(meta["affine"])):
        np.testing.assert_allclose(got, expected, atol=1e-4)

    # The brain is where it was: the centre of mass in world coordinates within one 3 mm voxel of the source's.
    def centre(data, affine):
        w = np.clip(data - np.percentile(data, 50), 0, None)
        grid = np.stack(np.meshgrid(*[np.arange(n) for n in data.shape], indexing="ij"), -1)
        c = (grid * w[..., None]).reshape(-1, 3).sum(0) / w.sum()
        return (np.asarray(affine) @ np.append(c, 1))[:3]

    source_centre = centre(np.asarray(src.dataobj, np.float64), src.affine)
    np.testing.assert_allclose(centre(back.get_fdata(), back.affine), source_centre, atol=3.0)
    # SimpleITK's physical point of the same voxel is the LPS mirror of nibabel's RAS one.
    itk_img = sitk.ReadImage(str(out))
    voxel = (10, 40, 30)
    ras = (back.affine @ np.append(voxel, 1))[:3]
    np.testing.assert_allclose(itk_img.TransformIndexToPhysicalPoint(voxel), LPS @ ras, atol=1e-4)
