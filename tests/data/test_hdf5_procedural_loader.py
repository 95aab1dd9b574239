import h5py
import numpy as np
import pytest
import torch

from ndgan.data.hdf5 import HDF5Dataset
from ndgan.data.loader import make_loader
from ndgan.data.procedural import ProceduralDataset


def write(path, data, labels=None, **attrs):
    with h5py.File(path, "w") as h5:
        chunked = dict(chunks=(1,) + data.shape[1:], compression="gzip") if len(data) else {}
        ds = h5.create_dataset("data", data=data, **chunked)
        for k, v in attrs.items():
            ds.attrs[k] = v
        if labels is not None:
            h5.create_dataset("labels", data=labels)
    return path


def test_hdf5_channels_first_and_single_channel_layouts(tmp_path):
    data = np.random.default_rng(0).uniform(-1, 1, (5, 2, 6, 7, 8)).astype(np.float32)
    ds = HDF5Dataset(write(tmp_path / "a.h5", data))
    assert (len(ds), ds.channels, ds.shape, ds.spatial_dims) == (5, 2, (6, 7, 8), 3)
    np.testing.assert_array_equal(ds[3].numpy(), data[3])
    flat = np.random.default_rng(1).uniform(-1, 1, (4, 6, 7)).astype(np.float32)
    ds1 = HDF5Dataset(write(tmp_path / "b.h5", flat), spatial_dims=2)
    assert ds1[2].shape == (1, 6, 7)
    np.testing.assert_array_equal(ds1[2][0].numpy(), flat[2])


def test_hdf5_maps_physical_values_and_keeps_metadata(tmp_path):
    kelvin = np.random.default_rng(0).uniform(-4000, 5000, (3, 2, 4, 4, 4))
    path = write(tmp_path / "k.h5", kelvin, value_range=[-4000.0, 5000.0], normalized=False,
                 channel_names=["a", "b"], units="K", spacing=[0.8, 0.8, 0.8])
    ds = HDF5Dataset(path)
    np.testing.assert_allclose(ds[1].numpy(), 2 * (kelvin[1] + 4000) / 9000 - 1, rtol=1e-5, atol=1e-6)
    assert ds.metadata["channel_names"] == ["a", "b"] and ds.metadata["units"] == "K"
    assert ds.metadata["spacing"] == [0.8, 0.8, 0.8] and ds.metadata["value_range"] == [-4000.0, 5000.0]


def test_hdf5_labels(tmp_path):
    data = np.zeros((4, 1, 4, 4), np.float32)
    ds = HDF5Dataset(write(tmp_path / "l.h5", data, labels=np.array([0, 2, 1, 2])), label_key="labels")
    x, c = ds[1]
    assert x.shape == (1, 4, 4) and c.tolist() == [0.0, 0.0, 1.0]


def test_energy_file_reads_back_in_range(tmp_path):
    from ndgan.data import energy

    path = energy.write_hdf5(tmp_path / "e.h5", 4, size=16)
    ds = HDF5Dataset(path)
    assert ds.shape == (16, 16, 16) and ds.channels == 2 and ds.metadata["periodic"] is True
    x = ds[0]
    assert -1 <= x.min() < 0 < x.max() <= 1


def junk(path):
    path.write_bytes(b"not hdf5 at all")
    return path


@pytest.mark.parametrize("make, match", [
    (lambda p: p / "missing.h5", "no such HDF5 file"),
    (lambda p: junk(p / "junk.h5"), "not a readable HDF5 file"),
    (lambda p: write(p / "k.h5", np.zeros((2, 4, 4), np.float32)).with_name("k.h5"), None),
    (lambda p: write(p / "e.h5", np.zeros((0, 1, 4, 4), np.float32)), "the dataset is empty"),
    (lambda p: write(p / "v.h5", np.zeros((2, 1, 4, 4), np.float32), value_range=[0.0, 1.0]), "no 'normalized' attribute"),
    (lambda p: write(p / "s.h5", np.zeros((2, 4), np.float32)), "does not fit spatial_dims"),
])
def test_hdf5_bad_files(tmp_path, make, match):
    path = make(tmp_path)
    if match is None:  # wrong key: the error lists what the file holds
        with pytest.raises(ValueError, match=r"no dataset 'volumes'; datasets in the file: \['data'\]"):
            HDF5Dataset(path, key="volumes")
        return
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        HDF5Dataset(path)


def test_hdf5_bad_samples_name_the_file_and_index(tmp_path):
    data = np.zeros((3, 1, 4, 4), np.float32)
    data[1, 0, 2, 2] = np.nan
    data[2, 0, 0, 0] = 3.0
    ds = HDF5Dataset(write(tmp_path / "n.h5", data))
    ds[0]
    with pytest.raises(ValueError, match=r"n.h5\[data\]\[1\]: contains NaN or Inf"):
        ds[1]
    with pytest.raises(ValueError, match=r"n.h5\[data\]\[2\]: values .* fall outside \[-1, 1\]"):
        ds[2]


@pytest.mark.parametrize("nd, shape", [(1, (32,)), (2, (16, 12)), (3, (8, 8, 8))])
def test_procedural_is_deterministic_and_in_range(nd, shape):
    ds = ProceduralDataset(nd, shape, channels=3, length=10, seed=5)
    x = ds[7]
    assert x.shape == (3, *shape) and x.min() >= -1 and x.max() <= 1 and x.max() > -1
    assert torch.equal(x, ProceduralDataset(nd, shape, channels=3, length=10, seed=5)[7])
    assert not torch.equal(x, ds[8])
    assert not torch.equal(x, ProceduralDataset(nd, shape, channels=3, length=10, seed=6)[7])


def test_procedural_periodic_samples_tile_seamlessly():
    ds = ProceduralDataset(2, (32, 32), 1, length=20, periodic=True)
    x = torch.stack([ds[i] for i in range(20)])
    inner = (x[..., 1:] - x[..., :-1]).abs().mean()
    seam = (x[..., 0] - x[..., -1]).abs().mean()
    assert seam < 2 * inner


def test_loader_reads_every_sample_with_two_workers(tmp_path):
    """Each worker opens its own HDF5 handle; together they read every sample exactly once per epoch."""
    n = 12
    data = np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1) / n * np.ones((n, 1, 4, 4), np.float32)
    ds = HDF5Dataset(write(tmp_path / "w.h5", data))
    ds[0]  # a handle opened in the parent must not leak into the workers
    batches = iter(make_loader(ds, batch_size=4, workers=2, pin_memory=False))
    seen = torch.cat([next(batches)[:, 0, 0, 0] for _ in range(n // 4)])  # one epoch
    assert sorted((seen * n).round().long().tolist()) == list(range(n))
    assert all(next(batches).shape == (4, 1, 4, 4) for _ in range(5))  # endless, across the epoch boundary
    # Step-indexed: a loader started at step 4 gives the batches an uninterrupted one gives from step 4 on.
    full = iter(make_loader(ds, batch_size=4, seed=1, pin_memory=False))
    later = iter(make_loader(ds, batch_size=4, seed=1, pin_memory=False, start_step=4))
    expected = [next(full) for _ in range(7)][4:]
    assert all(torch.equal(next(later), b) for b in expected)


def test_loader_shards_the_global_batch_across_ranks():
    ds = ProceduralDataset(1, (4,), length=16)
    whole = next(iter(make_loader(ds, 8, seed=3, pin_memory=False)))
    halves = [next(iter(make_loader(ds, 8, seed=3, pin_memory=False, rank=r, world=2))) for r in range(2)]
    assert torch.equal(torch.cat(halves), whole)


def test_loader_bad_arguments():
    ds = ProceduralDataset(2, (8, 8), length=3)
    with pytest.raises(ValueError, match="batch_size: 4 is larger than the dataset \\(3 samples\\)"):
        make_loader(ds, 4)
    with pytest.raises(ValueError, match="workers: expected a non-negative int"):
        make_loader(ds, 2, workers=-1)


def test_open_dataset_by_name_and_errors(tmp_path):
    from ndgan.data import open_dataset

    ds = open_dataset("procedural", spatial_dims=3, shape=(8, 8, 8), channels=2, length=4)
    assert ds[0].shape == (2, 8, 8, 8)
    energy_ds = open_dataset("energy", path=tmp_path / "cache" / "e.h5", n=3, size=16, channels=2)
    assert len(energy_ds) == 3 and (tmp_path / "cache" / "e.h5").exists()  # generated on first use
    assert len(open_dataset("energy", path=tmp_path / "cache" / "e.h5", n=3, size=16)) == 3  # reused
    with pytest.raises(ValueError, match=r"holds energy grids with \(n, size, seed\) = \(3, 16, 0\)"):
        open_dataset("energy", path=tmp_path / "cache" / "e.h5", n=4, size=16)
    with pytest.raises(ValueError, match="has 2 channels, expected 3"):
        open_dataset("hdf5", path=tmp_path / "cache" / "e.h5", channels=3)
    with pytest.raises(ValueError, match="unknown source 'image'.*did you mean 'images'"):
        open_dataset("image", path=tmp_path)
    with pytest.raises(ValueError, match="shap: not an option of the 'procedural' source \\(data.options.shap in a config\\).*did you mean 'shape'"):
        open_dataset("procedural", spatial_dims=2, shap=(8, 8))
