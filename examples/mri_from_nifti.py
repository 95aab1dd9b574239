"""MRI volumes from a NIfTI folder: build the dataset, train a tiny 3D StyleGAN2, export NIfTI samples that
overlay the input space, and render orthogonal slices.

    python examples/mri_from_nifti.py [--nifti FOLDER] [--out runs/mri_from_nifti] [--overwrite]

Without --nifti the script first writes a few synthetic head phantoms (nested ellipsoids with T1-like
intensities and noise) stored as real scans often are: LPS voxel order, 1.2 x 1.0 x 1.5 mm voxels and a
slightly oblique affine. ndgan.data.nifti then reorients every volume to RAS+, resamples it to --spacing
(mm) and centre-crops or pads it to --shape, updating the affine through each step; the processed set is
cached to HDF5, a tiny network trains on it for a fraction of a kimg (about 20 s on 2 CPU cores: the
samples are still noise, the geometry is the point), and the samples are written as NIfTI with the affine
of the processed input, so a viewer overlays them on it (and, through the affine, on the original scans).
Outputs in --out: nifti/ (the phantoms), processed_input.nii.gz, cache.h5, run/, samples/, slices.png.
"""

import argparse
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

import ndgan
from ndgan.data.nifti import NiftiDataset, cache_hdf5, load_volume
from ndgan.sampling import generate, write_samples
from ndgan.io.volumes import read_sample
from ndgan.train import load_config, train
from ndgan.viz.render import render

ROOT = Path(__file__).resolve().parent.parent

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--nifti", type=Path, help="folder of 3D .nii/.nii.gz scans (default: synthetic phantoms)")
p.add_argument("--out", type=Path, default=Path("runs/mri_from_nifti"), help="output folder")
p.add_argument("--shape", type=int, nargs=3, default=[24, 32, 24], help="training shape in voxels (R, A, S)")
p.add_argument("--spacing", type=float, nargs=3, default=[6.0, 6.0, 6.0], help="training voxel size in mm")
p.add_argument("--kimg", type=float, default=0.064, help="training length in thousands of volumes")
p.add_argument("--phantoms", type=int, default=8, help="synthetic subjects to write without --nifti")
p.add_argument("--overwrite", action="store_true", help="replace an earlier output of this script in --out")
args = p.parse_args()

if args.out.exists() and any(args.out.iterdir()):
    if not args.overwrite:
        raise SystemExit(f"{args.out}: already holds files; pass --overwrite or choose another --out")
    if not (args.out / "run" / "config.yaml").is_file() and not (args.out / "cache.h5").is_file():
        raise SystemExit(f"{args.out}: does not look like an output of this script; not removing it")
    if args.nifti and args.out.resolve() in args.nifti.resolve().parents:
        raise SystemExit(f"--nifti {args.nifti} lies inside --out {args.out}: copy it out before --overwrite")
    shutil.rmtree(args.out)
args.out.mkdir(parents=True, exist_ok=True)


def write_phantoms(folder, n, seed=0):
    """``n`` head-like phantoms as int16 NIfTI files: LPS voxel order, 1.2 x 1.0 x 1.5 mm, tilted 7 and 4
    degrees. The heads are upright in world (RAS) space; the acquisition grid is what is oblique."""
    rng = np.random.default_rng(seed)
    size, zooms = np.array([120, 180, 100]), np.array([1.2, 1.0, 1.5])  # 144 x 180 x 150 mm
    head = np.array([2.0, -18.0, 12.0])  # where the heads sit in scanner (RAS) coordinates, mm
    a, b = np.radians(7.0), np.radians(4.0)
    yaw = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    pitch = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    affine = np.eye(4)
    affine[:3, :3] = yaw @ pitch @ np.diag([-1.0, -1.0, 1.0]) @ np.diag(zooms)  # voxel axes point L, P, S
    affine[:3, 3] = head - affine[:3, :3] @ (size - 1) / 2  # the grid's centre on the head
    ijk = np.indices(size, dtype=np.float32).reshape(3, -1)
    world = (affine[:3, :3] @ ijk + affine[:3, 3:]).astype(np.float32)  # [3, voxels] in mm, RAS
    folder.mkdir(parents=True)
    for i in range(n):
        scale = rng.uniform(0.9, 1.05, 3)  # head size per axis
        centre = head + rng.normal(0, 3, 3)
        # (semi-axes in mm along R, A, S, offset from the head centre, intensity): outside in, later wins.
        tissues = [((68, 88, 70), (0, 0, 0), 520),  # scalp and fat
                   ((64, 84, 66), (0, 0, 0), 90),  # skull
                   ((61, 81, 62), (0, 0, 0), 230),  # CSF
                   ((58, 78, 58), (0, 2, 2), 620),  # grey matter
                   (tuple(rng.uniform(0.72, 0.8) * np.array([58, 78, 56])), (0, 4, 6), 870),  # white matter
                   ((7, 22, 11), (-9, 6, 10), 230), ((7, 22, 11), (9, 6, 10), 230)]  # lateral ventricles
        volume = np.zeros(world.shape[1], np.float32)
        for radii, offset, value in tissues:
            r = np.asarray(radii, np.float32)[:, None] * scale[:, None]
            inside = (((world - (centre + offset)[:, None]) / r) ** 2).sum(0) <= 1
            volume[inside] = value * rng.uniform(0.95, 1.05)
        noise = rng.normal(0, 18, (2, volume.size)).astype(np.float32)
        volume = np.sqrt((volume + noise[0]) ** 2 + noise[1] ** 2)  # magnitude image: Rician noise
        img = nib.Nifti1Image(volume.reshape(size).round().astype(np.int16), affine)
        img.set_qform(affine, code=1)  # scanner coordinates
        img.set_sform(affine, code=1)
        img.header.set_xyzt_units("mm")
        nib.save(img, folder / f"sub-{i + 1:02d}_T1w.nii.gz")
    return folder


folder = args.nifti
if folder is None:
    folder = write_phantoms(args.out / "nifti", args.phantoms)
    print(f"note: no --nifti given, so {args.phantoms} synthetic head phantoms were written to {folder} "
          f"(LPS, 1.2 x 1.0 x 1.5 mm, oblique); pass --nifti FOLDER to use your own scans")

# The dataset: every subject reoriented to RAS+, resampled to --spacing, cropped/padded to --shape and mapped
# to [-1, 1]. The first subject fixes the reference affine that the samples will carry. The voxel size becomes
# the field of view over a whole number of voxels, so it can differ slightly from --spacing: it is printed.
shape, spacing = tuple(args.shape), tuple(args.spacing)
dataset = NiftiDataset(folder, shape=shape, spacing=spacing)
raw = nib.load(dataset.subjects[0][0])
print(f"input {Path(dataset.subjects[0][0]).name}: shape {raw.shape}, voxels {nib.aff2axcodes(raw.affine)}, "
      f"spacing {np.round(nib.affines.voxel_sizes(raw.affine), 3)} mm")
reference = np.array(dataset.metadata["affine"])
cache = cache_hdf5(dataset, args.out / "cache.h5")  # processed once, read fast by every training step
print(f"dataset: {len(dataset)} subjects -> {cache} ({dataset.channels} x {shape}, "
      f"spacing {np.round(dataset.metadata['spacing'], 3)} mm, requested {spacing})")

# The first subject in the training space, in scanner intensities: open the samples over it in a viewer.
volume, affine = load_volume(dataset.subjects[0][0], spacing, shape)
processed = args.out / "processed_input.nii.gz"
img = nib.Nifti1Image(volume, affine)
img.header.set_xyzt_units("mm")
nib.save(img, processed)
print(f"processed input (subject 1 in the training space): {processed}")

# A very short run of the MRI preset with a tiny network, on the HDF5 cache (as configs/mri3d.yaml advises).
run_dir = args.out / "run"
cfg = load_config(ROOT / "configs" / "mri3d.yaml", [
    "data.source=hdf5", f"data.path={cache}", "data.options={}", f"data.shape={list(shape)}",
    "data.workers=0",
    "G.z_dim=32", "G.w_dim=32", "G.mapping_layers=2", "G.channel_base=128", "G.channel_max=16",
    "D.channel_base=128", "D.channel_max=16",
    f"train.kimg={args.kimg}", f"train.batch={min(4, len(dataset))}", "train.metrics=[]"])
train(cfg, run_dir)

# Samples out: NIfTI files with the training data's affine, in the intensities of the input scans.
G = ndgan.load_generator(run_dir)
seeds = [0, 1, 2, 3]
paths, notes = write_samples(generate(G, seeds, truncation_psi=0.7), G, seeds, args.out / "samples", "nii.gz",
                      truncation_psi=0.7)
for note in notes:
    print(f"note: {note}")
sample = nib.load(paths[0])
same = np.allclose(sample.affine, reference, atol=1e-5) and np.allclose(affine, reference, atol=1e-5)
print(f"exported {len(paths)} samples to {paths[0].parent}: shape {sample.shape}")
print("affine of the processed input (RAS, resampled, cropped), from the dataset:")
print(np.array2string(reference, precision=3, suppress_small=True))
print("affine of the exported samples:")
print(np.array2string(sample.affine, precision=3, suppress_small=True))
print(f"samples vs processed input: voxels {nib.aff2axcodes(sample.affine)} vs {nib.aff2axcodes(reference)}, "
      f"spacing {np.round(nib.affines.voxel_sizes(sample.affine), 3)} vs "
      f"{np.round(nib.affines.voxel_sizes(reference), 3)} mm: "
      f"{'the samples overlay the processed input' if same else 'MISMATCH'}")

# Orthogonal slices in world-space proportions: the processed input (left), the first sample (right).
pictures = []
for path in (processed, paths[0]):
    sample, voxel_size, _ = read_sample(path)  # [1, R, A, S] array and voxel size from the NIfTI header
    pictures.append(render(sample[0], mode="slices", spacing=voxel_size, window_size=(384, 384)))
Image.fromarray(np.concatenate(pictures, axis=1)).save(args.out / "slices.png")
print(f"slices: {args.out / 'slices.png'} (processed input | sample seed 0); run folder: {run_dir}")
if not same:
    raise SystemExit("the exported affine differs from the processed input's")
