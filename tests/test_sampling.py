import json
import h5py
import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from ndgan import load_generator
from ndgan.cli.generate import parse_seeds
from ndgan.sampling import generate
from ndgan.cli.generate import main as cli
from ndgan.cli.project import main as project_cli
from ndgan.train import load_config, train
from tests.data.test_nifti import oblique_affine

SMALL = ["G.z_dim=16", "G.w_dim=16", "G.mapping_layers=1", "G.channel_base=64", "G.channel_max=8",
         "D.channel_base=64", "D.channel_max=8", "train.batch=4", "train.kimg=0.004", "train.snapshot_kimg=0.004"]


@pytest.fixture(scope="module")
def nifti_run(tmp_path_factory):
    """A one-step run on NIfTI volumes with an oblique, anisotropic affine."""
    tmp = tmp_path_factory.mktemp("nifti")
    rng = np.random.default_rng(0)
    for i in range(4):
        nib.save(nib.Nifti1Image(rng.random((14, 10, 7)).astype(np.float32) * 300, oblique_affine()),
                 tmp / f"s{i}.nii.gz")
    cfg = load_config("configs/tiny3d.yaml", SMALL + ["data.source=nifti", f"data.path={tmp}", "data.shape=[8,8,8]",
                                                       "data.channels=1", "data.periodic=false",
                                                       "data.options={spacing: [2.0, 2.0, 2.0]}"])
    return train(cfg, tmp / "run")


@pytest.fixture(scope="module")
def energy_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("energy")
    cfg = load_config("configs/energy3d.yaml", SMALL + [f"data.path={tmp / 'e.h5'}", "data.shape=[16,16,16]",
                                                         "data.options={n: 8, size: 16}", "data.workers=0",
                                                         "metrics.num_gen=8"])
    return train(cfg, tmp / "run")


def test_nifti_export_lands_in_the_training_data_world_space(nifti_run, tmp_path, capsys):
    assert cli([str(nifti_run), "--n", "2", "--format", "nii.gz", "--out", str(tmp_path)]) == 0
    assert "note:" not in capsys.readouterr().out  # the data had an affine: no identity fallback
    G = load_generator(nifti_run)
    img = nib.load(tmp_path / "seed00001.nii.gz")
    assert img.shape == (8, 8, 8) and img.get_data_dtype() == np.float32
    np.testing.assert_allclose(img.affine, np.array(G.metadata["affine"]), atol=1e-5)
    np.testing.assert_allclose(img.header.get_zooms(), [2.0, 2.0, 2.0], rtol=0.1)  # resampled to 2 mm
    lo, hi = G.metadata["channel_value_ranges"][0]
    x = generate(G, [1])[0, 0].clamp(-1, 1).numpy()
    np.testing.assert_allclose(img.get_fdata(), lo + (x + 1) / 2 * (hi - lo), rtol=1e-4, atol=1e-3)


def test_the_energy_config_evaluates_its_metrics(energy_run):
    import json

    (line,) = (energy_run / "metrics.jsonl").read_text().splitlines()  # train.metrics of configs/energy3d.yaml
    results = json.loads(line)["results"]
    assert {"energy_log10_henry_w1", "energy_heat_kj_mol_w1_baseline", "msssim", "hist_w1_c1_physical"} <= set(results)
    assert all(v == v for v in results.values())  # no NaN


def test_hdf5_export_in_kelvin_with_attributes(energy_run, tmp_path):
    assert cli([str(energy_run), "--seeds", "3,5-6", "--truncation", "0.7", "--format", "h5", "--out", str(tmp_path)]) == 0
    with h5py.File(tmp_path / "samples.h5") as h5:
        ds = h5["data"]
        assert ds.shape == (3, 2, 16, 16, 16)
        assert ds.attrs["seeds"].tolist() == [3, 5, 6] and ds.attrs["truncation_psi"] == 0.7
        assert ds.attrs["units"] == "K" and list(ds.attrs["channel_names"]) == ["spherical_pore", "cubic_pore"]
        assert "energy" in ds.attrs["config"] and ds.attrs["checkpoint_kimg"] == pytest.approx(0.004)
        kelvin = ds[:]
    x = generate(load_generator(energy_run), [3, 5, 6], truncation_psi=0.7).clamp(-1, 1).numpy()
    np.testing.assert_allclose(kelvin, -4000 + (x + 1) / 2 * 9000, rtol=1e-5, atol=1e-2)  # the data's mapping
    assert kelvin.std() > 0


def test_cube_and_vti_export_in_kelvin_on_the_training_cell(energy_run, tmp_path):
    """One cube file per channel and seed, one VTK image per seed, both on the data's median cell."""
    import h5py
    import pyvista as pv

    from ndgan.io.cube import read_cube

    G = load_generator(energy_run)
    with h5py.File(load_config(energy_run / "config.yaml").data.path) as h5:
        edge = float(np.median(h5["cell_edge"][:]))
    x = generate(G, [4, 7]).clamp(-1, 1).numpy()
    kelvin = -4000 + (x + 1) / 2 * 9000
    assert cli([str(energy_run), "--seeds", "4,7", "--format", "cube", "--out", str(tmp_path / "c")]) == 0
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [
        "seed00004_cubic_pore.cube", "seed00004_spherical_pore.cube", "seed00007_cubic_pore.cube",
        "seed00007_spherical_pore.cube"]
    cube = read_cube(tmp_path / "c" / "seed00007_cubic_pore.cube")
    np.testing.assert_allclose(cube.values[0], kelvin[1, 1], rtol=1e-5, atol=1e-2)
    np.testing.assert_allclose(cube.cell, np.eye(3) * edge, rtol=1e-5)
    assert "cubic_pore in K" in cube.comments[0]
    assert cli([str(energy_run), "--seeds", "4,7", "--format", "vti", "--out", str(tmp_path / "v")]) == 0
    grid = pv.read(tmp_path / "v" / "seed00004.vti")
    assert tuple(grid.dimensions) == (16, 16, 16)
    np.testing.assert_allclose(grid.spacing, [edge / 16] * 3, rtol=1e-5)
    values = np.asarray(grid.point_data["spherical_pore"]).reshape(16, 16, 16, order="F")
    np.testing.assert_allclose(values, kelvin[0, 0], rtol=1e-5, atol=1e-2)


def test_cube_export_needs_a_periodic_cell_vti_takes_the_spacing(nifti_run, tmp_path, capsys):
    """NIfTI volumes have a voxel spacing in mm but no cell in angstrom: no cube, a VTK image on the spacing."""
    import pyvista as pv

    assert cli([str(nifti_run), "--n", "1", "--format", "cube", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "no periodic cell in angstrom" in err and err.count("\n") == 1 and not (tmp_path / "c").exists()
    assert cli([str(nifti_run), "--n", "1", "--format", "vti", "--out", str(tmp_path / "v")]) == 0
    grid = pv.read(tmp_path / "v" / "seed00000.vti")
    np.testing.assert_allclose(grid.spacing, load_generator(nifti_run).metadata["spacing"], rtol=1e-5)


def test_seeds_are_deterministic_and_png_is_a_picture(energy_run, tmp_path):
    G = load_generator(energy_run / "checkpoint-000000004.pt")
    a, b = generate(G, [7, 8]), generate(G, [8])
    torch.testing.assert_close(a[1:], b)
    assert not torch.equal(a[0], a[1])
    assert cli([str(energy_run), "--n", "4", "--out", str(tmp_path)]) == 0
    pixels = np.asarray(Image.open(tmp_path / "samples.png"))
    assert pixels.std() > 0


def test_bad_inputs_exit_2_with_one_line(energy_run, tmp_path, capsys):
    cases = [
        ([str(tmp_path / "nope.pt"), "--out", str(tmp_path / "o")], "no such checkpoint file or run folder"),
        ([str(energy_run), "--seeds", "a-b", "--out", str(tmp_path / "o")], "--seeds: expected non-negative numbers"),
        ([str(energy_run), "--seeds", "5-3", "--out", str(tmp_path / "o")], "increasing ranges"),
    ]
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    cases.append(([str(tmp_path / "bad.pt"), "--out", str(tmp_path / "o")], "not a loadable ndgan checkpoint"))
    for argv, message in cases:
        assert cli(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert cli([str(energy_run), "--n", "1", "--format", "npy", "--out", str(tmp_path / "o")]) == 0
    assert cli([str(energy_run), "--n", "1", "--format", "npy", "--out", str(tmp_path / "o")]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert parse_seeds("0-2,9") == [0, 1, 2, 9]


def test_style_mixing_grid_and_interpolation(energy_run, tmp_path):
    from ndgan.sampling import _panel, interpolation_frames, style_mixing_grid

    G = load_generator(energy_run)
    ph, pw = _panel(generate(G, [0])[0]).shape[:2]
    everything = style_mixing_grid(G, [1, 2], [3, 4, 5], layers=range(G.num_ws))  # all styles from the column

    def cell(r, c):
        return everything[r * (ph + 2): r * (ph + 2) + ph, c * (pw + 2): c * (pw + 2) + pw]

    for r in (1, 2):  # equal up to 1/255: the same sample rendered within another batch rounds differently
        for c in (1, 2, 3):
            np.testing.assert_allclose(cell(r, c).astype(int), cell(0, c).astype(int), atol=1)
    coarse = style_mixing_grid(G, [1, 2], [3, 4, 5])  # default: the coarse half only -> cells differ from the top
    assert not np.array_equal(coarse, everything)
    frames = interpolation_frames(G, 3, 4, frames=5)
    np.testing.assert_allclose(frames[0].astype(int), _panel(generate(G, [3])[0]).astype(int), atol=1)
    np.testing.assert_allclose(frames[-1].astype(int), _panel(generate(G, [4])[0]).astype(int), atol=1)
    assert cli([str(energy_run), "--seeds", "0-1", "--style-mixing", "5-6", "--interpolate", "0,5", "--frames", "3",
                "--out", str(tmp_path)]) == 0
    assert Image.open(tmp_path / "interpolation.gif").n_frames == 3 and (tmp_path / "style_mixing.png").exists()


def test_projecting_a_generated_sample_recovers_it(energy_run, tmp_path, capsys):
    import json

    assert cli([str(energy_run), "--seeds", "11", "--format", "npy", "--out", str(tmp_path)]) == 0
    np.save(tmp_path / "target.npy", np.load(tmp_path / "samples.npy")[0])  # physical units, [C, *S]

    assert project_cli([str(energy_run), str(tmp_path / "target.npy"), "--steps", "150", "--space", "w+",
                        "--out", str(tmp_path / "p")]) == 0
    report = json.loads((tmp_path / "p" / "report.json").read_text())
    assert report["mse"] < 0.25 * report["initial_mse"]  # far closer than the starting w_avg sample
    assert np.load(tmp_path / "p" / "projected_w.npy").shape == (load_generator(energy_run).num_ws, 16)
    assert nib.load(tmp_path / "p" / "reconstruction.nii.gz").shape == (16, 16, 16, 2)
    np.save(tmp_path / "wrong.npy", np.zeros((2, 8, 8, 8), np.float32))
    assert project_cli([str(energy_run), str(tmp_path / "wrong.npy"), "--out", str(tmp_path / "q")]) == 2
    assert "target shape (2, 8, 8, 8) does not match the model's (2, 16, 16, 16)" in capsys.readouterr().err
    (tmp_path / "t.txt").write_text("x")
    assert project_cli([str(energy_run), str(tmp_path / "t.txt"), "--out", str(tmp_path / "q")]) == 2
    assert "unknown target type" in capsys.readouterr().err


def test_nifti_channels_are_the_fourth_axis_in_order(energy_run, tmp_path):
    assert cli([str(energy_run), "--seeds", "2", "--format", "nii.gz", "--out", str(tmp_path)]) == 0
    data = nib.load(tmp_path / "seed00002.nii.gz").get_fdata()
    x = generate(load_generator(energy_run), [2])[0].clamp(-1, 1).numpy()
    for c in range(2):
        np.testing.assert_allclose(data[..., c], -4000 + (x[c] + 1) / 2 * 9000, rtol=1e-5, atol=1e-2)


def test_noise_regularisation_covers_every_level():
    from ndgan.projector import noise_regularisation

    # A constant map has autocorrelation 1 per axis at every level, down to and including 8 (or its own size).
    assert noise_regularisation(torch.ones(4, 4, 4)).item() == pytest.approx(3.0)
    assert noise_regularisation(torch.ones(8, 8, 8)).item() == pytest.approx(3.0)
    assert noise_regularisation(torch.ones(16, 16, 16)).item() == pytest.approx(6.0)
    assert noise_regularisation(torch.ones(32, 32)).item() == pytest.approx(6.0)


def test_project_refuses_overwrites_and_corrupt_targets(energy_run, tmp_path, capsys):

    assert cli([str(energy_run), "--seeds", "1", "--format", "npy", "--out", str(tmp_path)]) == 0
    np.save(tmp_path / "t.npy", np.load(tmp_path / "samples.npy")[0])
    assert project_cli([str(energy_run), str(tmp_path / "t.npy"), "--steps", "2", "--out", str(tmp_path / "p")]) == 0
    assert (tmp_path / "p" / "projected_noise.npz").exists()
    assert project_cli([str(energy_run), str(tmp_path / "t.npy"), "--steps", "2", "--out", str(tmp_path / "p")]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    (tmp_path / "bad.nii.gz").write_bytes(b"junk")
    assert project_cli([str(energy_run), str(tmp_path / "bad.nii.gz"), "--out", str(tmp_path / "q")]) == 2
    assert "unreadable target" in capsys.readouterr().err and not (tmp_path / "q").exists()


def test_safetensors_export_rebuilds_the_same_generator_without_pickle(energy_run, tmp_path, capsys):
    from ndgan.cli.export import main as export_cli

    out = tmp_path / "G.safetensors"
    assert export_cli([str(energy_run), "--out", str(out)]) == 0
    raw = out.read_bytes()
    header_len = int.from_bytes(raw[:8], "little")  # safetensors: u64 header length, JSON header, raw tensor bytes
    header = json.loads(raw[8: 8 + header_len])
    assert header["__metadata__"]["format"] == "ndgan-generator-1" and b"\x80\x04" not in raw[: 8 + header_len]
    G0, G1 = load_generator(energy_run), load_generator(out)
    assert G1.init_kwargs == G0.init_kwargs and G1.kimg == G0.kimg and G1.metadata == G0.metadata
    z = torch.randn(2, G0.z_dim)
    assert torch.equal(G0(z, noise_mode="const"), G1(z, noise_mode="const"))
    # Every command that takes a checkpoint takes the export: samples from it equal those from the checkpoint.
    assert cli([str(out), "--n", "2", "--format", "npy", "--out", str(tmp_path / "a")]) == 0
    assert cli([str(energy_run), "--n", "2", "--format", "npy", "--out", str(tmp_path / "b")]) == 0
    assert np.array_equal(np.load(tmp_path / "a" / "samples.npy"), np.load(tmp_path / "b" / "samples.npy"))
    # The projector takes it for the generator, and says why the feature distance needs the checkpoint.
    np.save(tmp_path / "t.npy", np.load(tmp_path / "a" / "samples.npy")[0])
    assert project_cli([str(out), str(tmp_path / "t.npy"), "--out", str(tmp_path / "p"), "--steps", "1"]) == 2
    assert "no discriminator" in capsys.readouterr().err and not (tmp_path / "p").exists()
    assert project_cli([str(out), str(tmp_path / "t.npy"), "--out", str(tmp_path / "p"), "--steps", "1",
                        "--no-features"]) == 0
    # An existing export is not replaced without --overwrite.
    before = out.read_bytes()
    assert export_cli([str(energy_run), "--out", str(out)]) == 2 and "already exists" in capsys.readouterr().err
    assert out.read_bytes() == before
