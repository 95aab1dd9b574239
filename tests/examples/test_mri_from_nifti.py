"""examples/mri_from_nifti.py runs as a user would run it (synthetic LPS, oblique, anisotropic phantoms),
and its NIfTI samples overlay the input: their affine is derived here from the phantoms' own affine by
geometry alone (RAS+ axes, the requested voxel size, the field of view kept, its centre cropped), not by
the library."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SHAPE, SPACING = (8, 12, 8), (6.0, 6.0, 6.0)


def expected_affine(affine, size, spacing, shape):
    """The affine of ``size`` voxels under ``affine`` reoriented to RAS+, resampled to ``spacing`` over the
    same field of view, and centre-cropped (or padded) to ``shape``."""
    M, spacing, shape = affine[:3, :3], np.asarray(spacing), np.asarray(shape)
    zooms = np.linalg.norm(M, axis=0)
    world_axis = np.argmax(np.abs(M), axis=0)  # the RAS axis each voxel axis runs closest to
    assert sorted(world_axis) == [0, 1, 2]
    directions, fov = np.zeros((3, 3)), np.zeros(3)
    for v, w in enumerate(world_axis):
        directions[:, w] = np.sign(M[w, v]) * M[:, v] / zooms[v]  # unit vector of RAS axis w, rotation kept
        fov[w] = size[v] * zooms[v]
    resampled = np.round(fov / spacing)
    assert np.allclose(resampled, fov / spacing), "the phantoms' field of view is a whole number of voxels"
    centre = affine[:3, :3] @ ((np.asarray(size) - 1) / 2) + affine[:3, 3]  # the same point in every grid
    start = (resampled - shape) // 2  # centre crop (negative: padding)
    out = np.eye(4)
    out[:3, :3] = directions * spacing
    out[:3, 3] = centre + out[:3, :3] @ (start - (resampled - 1) / 2)
    return out


def test_mri_from_nifti_example(tmp_path):
    import nibabel as nib
    from PIL import Image

    out = tmp_path / "mri"
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "examples/mri_from_nifti.py", "--out", str(out), "--phantoms", "4",
           "--kimg", "0.008", "--shape", *map(str, SHAPE), "--spacing", *map(str, SPACING)]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "synthetic head phantoms" in result.stdout
    assert "the samples overlay the processed input" in result.stdout

    # The input is what a scanner writes, not already RAS: LPS voxel order, anisotropic, oblique.
    inputs = sorted((out / "nifti").glob("*.nii.gz"))
    assert len(inputs) == 4
    raw = nib.load(inputs[0])
    assert nib.aff2axcodes(raw.affine) == ("L", "P", "S")
    assert np.allclose(raw.header.get_zooms(), (1.2, 1.0, 1.5))
    assert not np.allclose(np.abs(raw.affine[:3, :3]), np.diag(raw.header.get_zooms()))  # oblique
    want = expected_affine(raw.affine, raw.shape, SPACING, SHAPE)

    # Every exported sample has the training shape and the affine of the processed input space.
    samples = sorted((out / "samples").glob("seed*.nii.gz"))
    assert len(samples) == 4
    for path in samples:
        img = nib.load(path)
        data = np.asarray(img.dataobj)
        assert img.shape == SHAPE and np.isfinite(data).all() and data.std() > 0
        assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
        assert np.allclose(nib.affines.voxel_sizes(img.affine), SPACING, atol=1e-5)
        assert np.allclose(img.affine, want, atol=1e-4), (path.name, img.affine, want)
    processed = nib.load(out / "processed_input.nii.gz")
    assert processed.shape == SHAPE and np.allclose(processed.affine, want, atol=1e-4)

    # The slices picture decodes: two renders side by side, not blank.
    with Image.open(out / "slices.png") as im:
        picture = np.asarray(im.convert("RGB"))
    assert picture.shape[1] == 2 * picture.shape[0] and picture.std() > 0
