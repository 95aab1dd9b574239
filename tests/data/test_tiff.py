"""TIFF stacks (micro-CT): voxel sizes from ImageJ and OME metadata, crops, natural slice order, the affine,
and the bad inputs, each checked against values written here by tifffile, not read back by ndgan."""

import numpy as np
import pytest

from ndgan.data import open_dataset
from ndgan.data.tiff import TiffDataset, natural_key
from ndgan.io.volumes import write_nifti

tifffile = pytest.importorskip("tifffile", reason="tifffile is in the all extra: pip install -e '.[all]'")


def rock(shape=(12, 10, 14), seed=0):
    """A uint16 micro-CT-like stack: grains and pores."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 2, shape) * 20000 + rng.integers(0, 3000, shape)).astype(np.uint16)


def imagej_stack(path, data, x_um=2.5, y_um=3.0, z_um=4.0, unit="um"):
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / x_um, 1 / y_um),
                     metadata={"spacing": z_um, "unit": unit, "axes": "ZYX"})
    return path


def test_imagej_voxel_size_and_crops_equal_the_stack_mapped_by_its_percentiles(tmp_path):
    data = rock()
    ds = TiffDataset(imagej_stack(tmp_path / "rock.tif", data), shape=(4, 5, 7), stride=(4, 5, 7))
    assert ds.voxel_size == pytest.approx((2.5e-3, 3.0e-3, 4.0e-3))  # um -> mm
    assert ds.metadata["spacing"] == pytest.approx([4.0e-3, 3.0e-3, 2.5e-3])  # per array axis (z, y, x)
    assert len(ds) == 3 * 2 * 2
    lo, hi = np.percentile(data.astype(np.float64), [0.5, 99.5])
    assert ds.metadata["value_range"] == pytest.approx([lo, hi])
    for index, (z, y, x) in enumerate((z, y, x) for z in (0, 4, 8) for y in (0, 5) for x in (0, 7)):
        crop = data[z:z + 4, y:y + 5, x:x + 7].astype(np.float64)
        expected = 2 * (np.clip(crop, lo, hi) - lo) / (hi - lo) - 1
        got = ds[index]
        assert got.shape == (1, 4, 5, 7)
        np.testing.assert_allclose(got[0].numpy(), expected, atol=1e-5)


def test_ome_voxel_sizes_in_their_own_units_and_a_window(tmp_path):
    data = rock()
    tifffile.imwrite(tmp_path / "rock.ome.tif", data, ome=True,
                     metadata={"axes": "ZYX", "PhysicalSizeX": 800.0, "PhysicalSizeXUnit": "nm",
                               "PhysicalSizeY": 0.9, "PhysicalSizeZ": 0.001, "PhysicalSizeZUnit": "mm"})
    ds = TiffDataset(tmp_path / "rock.ome.tif", shape=(12, 10, 14), window=[1000, 21000], units="grey value")
    assert ds.voxel_size == pytest.approx((0.8e-3, 0.9e-3, 1e-3))  # nm, the default um, and mm
    expected = np.clip((data - 1000.0) / 20000 * 2 - 1, -1, 1)
    np.testing.assert_allclose(ds[0][0].numpy(), expected, atol=1e-5)
    assert ds.metadata["window"] == [[1000.0, 21000.0]] and ds.metadata["units"] == "grey value"


def test_a_folder_of_slices_is_read_in_natural_order_and_needs_a_voxel_size(tmp_path):
    folder = tmp_path / "slices"
    folder.mkdir()
    for z in range(12):  # slice_10 and slice_11 sort after slice_9, not after slice_1
        tifffile.imwrite(folder / f"slice_{z}.tif", np.full((6, 8), 100 * z, np.uint16))
    with pytest.raises(ValueError, match=r"slices: no voxel size .*data.options.voxel_size") as e:
        TiffDataset(folder, shape=(12, 6, 8))
    assert "\n" not in str(e.value)
    ds = TiffDataset(folder, shape=(12, 6, 8), voxel_size=[0.01, 0.01, 0.02], window=[0, 1100])
    means = ds[0][0].mean(dim=(1, 2)).numpy()
    np.testing.assert_allclose(means, [200 * z / 1100 - 1 for z in range(12)], atol=1e-5)
    assert sorted(["b10", "b9", "a", "b1"], key=natural_key) == ["a", "b1", "b9", "b10"]


def test_a_glob_of_stacks_crops_each_stack_and_refuses_mixed_voxel_sizes(tmp_path):
    imagej_stack(tmp_path / "a.tif", rock((8, 8, 8)))
    imagej_stack(tmp_path / "b.tif", rock((8, 12, 8), seed=1))
    ds = TiffDataset(str(tmp_path / "*.tif"), shape=(8, 4, 8), stride=(8, 2, 8))
    assert [c[0] for c in ds.crops] == [0, 0, 0] + [1] * 5  # rows 0, 2, 4 of a; 0, 2, ..., 8 of b
    imagej_stack(tmp_path / "c.tif", rock((8, 8, 8)), x_um=5.0)
    with pytest.raises(ValueError, match=r"c\.tif: voxel size .*/a\.tif has .*data.options.voxel_size"):
        TiffDataset(str(tmp_path / "*.tif"), shape=(8, 4, 8))
    ds = TiffDataset(str(tmp_path / "*.tif"), shape=(8, 4, 8), voxel_size=[0.1, 0.1, 0.1])
    assert ds.voxel_size == (0.1, 0.1, 0.1)


def test_a_voxel_keeps_its_world_position_in_crops_and_in_exported_nifti(tmp_path):
    sitk = pytest.importorskip("SimpleITK", reason="SimpleITK is in the test extra: pip install -e '.[test]'")
    data = rock()
    z, y, x = 9, 7, 11  # a marker voxel, in stack indices
    data[z, y, x] = 65535
    sx, sy, sz = 2.5e-3, 3.0e-3, 4.0e-3
    ds = TiffDataset(imagej_stack(tmp_path / "rock.tif", data), shape=(4, 5, 7), window=[0, 65535])
    index = next(i for i, (_, z0, y0, x0) in enumerate(ds.crops)
                 if z0 <= z < z0 + 4 and y0 <= y < y0 + 5 and x0 <= x < x0 + 7)
    crop = ds[index][0].numpy()
    at = np.unravel_index(np.argmax(crop), crop.shape)
    world = ds.affine(index) @ np.array([*at, 1.0])
    np.testing.assert_allclose(world[:3], [x * sx, y * sy, z * sz], atol=1e-12)
    write_nifti(tmp_path / "crop.nii.gz", ds[index], ds.affine(index))
    img = sitk.ReadImage(str(tmp_path / "crop.nii.gz"))  # an independent reader, ITK's LPS world
    point = img.TransformIndexToPhysicalPoint([int(i) for i in at])
    np.testing.assert_allclose(point, [-x * sx, -y * sy, z * sz], atol=1e-7)
    np.testing.assert_allclose(sorted(img.GetSpacing()), sorted([sx, sy, sz]), rtol=1e-6)


def test_the_tiff_source_is_configurable_by_name(tmp_path):
    imagej_stack(tmp_path / "rock.tif", rock())
    ds = open_dataset("tiff", path=str(tmp_path / "rock.tif"), shape=[4, 5, 7], stride=[8, 5, 7])
    assert len(ds) == 2 * 2 * 2 and ds.metadata["channels"] == 1


@pytest.mark.parametrize("case, match", [
    ("plain", r"plain\.tif: no voxel size \(it has no ImageJ or OME metadata\); give data.options.voxel_size"),
    ("channels", r"channels\.tif: has axes ZCYX .*one-channel stacks"),
    ("small", r"small\.tif: stack of \(2, 10, 14\) .* smaller than the crop shape"),
    ("unit", r"unit\.tif: the X resolution is in unit 'furlong'.*data.options.voxel_size"),
    ("stack_in_folder", r"a\.tif: has axes ZYX .*give a glob"),
    ("not_tiff", r"not a readable TIFF file"),
])
def test_bad_stacks_are_one_line_errors_naming_the_file(tmp_path, case, match):
    path = tmp_path / f"{case}.tif"
    if case == "plain":
        tifffile.imwrite(path, rock(), metadata={"axes": "ZYX"})
    elif case == "channels":
        tifffile.imwrite(path, np.stack([rock(), rock()], 1), imagej=True, metadata={"axes": "ZCYX"})
    elif case == "small":
        imagej_stack(path, rock((2, 10, 14)))
    elif case == "unit":
        imagej_stack(path, rock(), unit="furlong")
    elif case == "stack_in_folder":
        path = tmp_path / "folder"
        path.mkdir()
        imagej_stack(path / "a.tif", rock())
    else:
        path.write_bytes(b"not a tiff at all")
    with pytest.raises(ValueError, match=match) as e:
        TiffDataset(path, shape=(4, 5, 7))
    assert "\n" not in str(e.value)


def test_a_run_on_a_stack_exports_nifti_with_the_stacks_voxel_size(tmp_path):
    sitk = pytest.importorskip("SimpleITK", reason="SimpleITK is in the test extra: pip install -e '.[test]'")
    from ndgan.cli.generate import main as generate_cli
    from ndgan.train import load_config, train
    from tests.data.test_medical import SMALL

    imagej_stack(tmp_path / "rock.tif", rock((16, 16, 16)), x_um=2.0, y_um=2.0, z_um=3.0)
    cfg = load_config("configs/tiny3d.yaml", SMALL + [
        "data.source=tiff", f"data.path={tmp_path / 'rock.tif'}", "data.shape=[8,8,8]", "data.channels=1",
        "data.periodic=false", "data.options={stride: 4, window: [0, 23000], units: grey value}"])
    run = train(cfg, tmp_path / "run")
    assert generate_cli([str(run), "--seeds", "0", "--format", "nii.gz", "--out", str(tmp_path / "out")]) == 0
    img = sitk.ReadImage(str(tmp_path / "out" / "seed00000.nii.gz"))
    np.testing.assert_allclose(sorted(img.GetSpacing()), [2e-3, 2e-3, 3e-3], rtol=1e-6)
    assert img.GetSize() == (8, 8, 8)
    values = sitk.GetArrayFromImage(img)
    assert values.min() >= 0 and values.max() <= 23000  # back in grey values, inside the window
