"""The bad-input catalogue: malformed configs, images, HDF5 and NIfTI files, checkpoints and command-line
arguments, each handed to the command a user would type.

Every case must give exit code 2 and exactly one line on stderr that starts with ``error:`` and names the
problem, with no traceback; and the folder the case works in must be byte-for-byte what it was before (nothing
partial left behind, no checkpoint overwritten). The full-disk cases run in a subprocess under a real file-size
limit (``RLIMIT_FSIZE``), so the writes fail in the kernel exactly as on a full disk.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from ndgan.cli.convert import main as convert_cli
from ndgan.cli.generate import main as generate_cli
from ndgan.cli.metrics import main as metrics_cli
from ndgan.cli.project import main as project_cli
from ndgan.cli.render import main as render_cli
from ndgan.train import load_config, train
from ndgan.cli.train import main as train_cli

ROOT = Path(__file__).resolve().parents[1]
TINY2D, TINY3D = str(ROOT / "configs/tiny2d.yaml"), str(ROOT / "configs/tiny3d.yaml")
SMALL = ["G.z_dim=16", "G.w_dim=16", "G.mapping_layers=1", "G.channel_base=64", "G.channel_max=8",
         "D.channel_base=64", "D.channel_max=8", "train.batch=4", "train.kimg=0.004", "train.snapshot_kimg=0.004"]
COMMANDS = {"train": train_cli, "generate": generate_cli, "render": render_cli, "metrics": metrics_cli,
            "convert": convert_cli, "project": project_cli}


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    """A real one-step tiny2d run's checkpoint (copied into each case's folder, which is then watched)."""
    out = train(load_config(TINY2D, SMALL), tmp_path_factory.mktemp("good") / "run")
    return next(out.glob("checkpoint-*.pt"))


def _h5(path, data, **attrs):
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("data", data=data)
        ds.attrs.update(attrs)
    return str(path)


def _nii(path, data, affine=None):
    img = nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.diag([1.5, 1.5, 2.0, 1.0]))
    if affine is not None:  # written as the sform only: nibabel cannot turn a broken affine into a qform
        img.header.set_qform(None, code=0)
        img.header["srow_x"], img.header["srow_y"], img.header["srow_z"] = np.asarray(affine)[:3]
        img.header["sform_code"] = 1
        img = nib.Nifti1Image(img.get_fdata(dtype=np.float32), None, img.header)
    nib.save(img, path)
    return path


def _volume_h5(tmp, channels=2, shape=(16, 16, 16), n=4):
    return _h5(tmp / "v.h5", np.random.default_rng(0).uniform(-1, 1, (n, channels, *shape)).astype(np.float32))


def _run_with(tmp, checkpoint):
    (tmp / "run").mkdir()
    return str(shutil.copy(checkpoint, tmp / "run" / checkpoint.name))


def _png_folder(tmp, n=8, size=(32, 32)):
    folder = tmp / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def _train(*overrides, config=TINY2D):
    return lambda tmp, ck: [config, *overrides, "--out", str(tmp / "run")]


# (id, command, setup(tmp, good_checkpoint) -> argv, words the error line must contain)
CASES = [
    # Configs: typos, wrong types, zero and negative sizes, impossible shapes, broken YAML.
    ("config-key-typo", "train", _train("train.kimgs=1"), ["train.kimgs", "did you mean 'kimg'"]),
    ("config-section-typo", "train", _train("trian.kimg=1"), ["trian", "did you mean 'train'"]),
    ("config-wrong-type", "train", _train("train.batch=eight"), ["train.batch", "int"]),
    ("config-zero-batch", "train", _train("train.batch=0"), ["train.batch"]),
    ("config-negative-kimg", "train", _train("train.kimg=-1"), ["train.kimg"]),
    ("config-zero-shape", "train", _train("data.shape=[0,32]"), ["data.shape"]),
    ("config-too-small-shape", "train", _train("data.shape=[2,2]"), ["data.shape"]),
    ("config-rank-4", "train", _train("data.shape=[8,8,8,8]"), ["data.shape"]),
    ("config-unknown-source", "train", _train("data.source=hdf"), ["data.source", "did you mean 'hdf5'"]),
    ("config-unknown-option", "train", _train("data.options={lenght: 4}"), ["lenght", "did you mean 'length'"]),
    ("config-nan-float", "train", _train("train.r1_gamma=.nan"), ["train.r1_gamma", "finite"]),
    ("config-infinite-kimg", "train", _train("train.kimg=1e400"), ["train.kimg", "finite"]),
    ("config-negative-lr", "train", _train("train.g_lr=-0.002"), ["train.g_lr", "positive"]),
    ("config-beta-above-one", "train", _train("train.betas=[0,1.5]"), ["train.betas", "[0, 1)"]),
    ("config-bad-precision", "train", _train("train.precision=fp16"), ["train.precision"]),
    ("config-negative-output-clamp", "train", _train("G.output_clamp=-1"), ["G.output_clamp", "positive number"]),
    ("config-unknown-style-block", "train", _train("G.style_block=adin"), ["G.style_block", "'demod', 'adain'"]),
    # AdaIN lacks the modulated conv's float16 pre-normalisation (its refusal of fused=True, an API-only
    # argument, is in tests/nets/test_adain.py).
    ("config-adain-with-float16-blocks", "train",
     _train("G.style_block=adain", "G.num_fp16_res=1", "G.fp16_dtype=float16"),
     ["G.num_fp16_res", "fp16_dtype bfloat16", "adain"]),
    ("config-override-without-equals", "train", _train("train.kimg"), ["train.kimg", "KEY=VALUE"]),
    ("config-missing-file", "train", lambda tmp, ck: [str(tmp / "nope.yaml")], ["nope.yaml"]),
    ("config-empty-file", "train", lambda tmp, ck: [_write(tmp / "empty.yaml", "")], ["empty.yaml"]),
    ("config-yaml-syntax", "train", lambda tmp, ck: [_write(tmp / "bad.yaml", "data: {shape: [32, 32\n")],
     ["bad.yaml"]),
    ("config-not-a-mapping", "train", lambda tmp, ck: [_write(tmp / "list.yaml", "- 1\n- 2\n")], ["list.yaml"]),
    ("config-auto-where-none-exists", "train", _train("train.kimg=auto"), ["train.kimg", "expected a number"]),
    ("config-auto-misspelt", "train", _train("train.r1_gamma=autp"), ["train.r1_gamma", "'auto'"]),
    ("config-ada-with-a-wgan-critic", "train", _train("train.loss=wgan-gp"), ["augment.mode", "WGAN", "none"]),
    ("metrics-feature-file-missing", "train",
     lambda tmp, ck: [TINY2D, "train.metrics=[fid]", f"metrics.features={tmp / 'classifier.safetensors'}",
                      "--out", str(tmp / "run")], ["classifier.safetensors", "not found"]),
    ("metrics-held-out-data-missing", "train",
     lambda tmp, ck: [*_train_on(tmp, _volume_h5(tmp, n=8))[:-2], "train.metrics=[hist]",
                      f"metrics.real_path={tmp / 'held-out.h5'}", "--out", str(tmp / "run")],
     ["metrics.real_path", "held-out.h5", "does not exist"]),
    ("digits-non-square-shape", "train",
     lambda tmp, ck: [str(ROOT / "configs/digits2d.yaml"), "data.shape=[32,16]", "--out", str(tmp / "run")],
     ["data.shape", "digits"]),
    # Images.
    ("images-empty-folder", "train", lambda tmp, ck: [TINY2D, "data.source=images", "data.options={}", f"data.path={_mkdir(tmp / 'e')}",
                                                      "--out", str(tmp / "run")], ["no", "images found"]),
    ("images-corrupt-png", "train", lambda tmp, ck: [TINY2D, "data.source=images", "data.options={}",
                                                     f"data.path={_corrupt_png(_png_folder(tmp))}",
                                                     "--out", str(tmp / "run")], ["bad.png", "unreadable"]),
    ("images-fewer-than-a-batch", "train", lambda tmp, ck: [TINY2D, "data.source=images", "data.options={}",
                                                            f"data.path={_png_folder(tmp, n=3)}",
                                                            "--out", str(tmp / "run")], ["train.batch", "3 samples"]),
    ("images-all-unreadable", "convert", lambda tmp, ck: [_only_corrupt(tmp), "--out", str(tmp / "o.h5")],
     ["no usable images"]),
    ("images-not-a-zip", "train", lambda tmp, ck: [TINY2D, "data.source=images", "data.options={}",
                                                   f"data.path={_write(tmp / 'faces.zip', 'not a zip')}",
                                                   "--out", str(tmp / "run")], ["faces.zip", "zip"]),
    ("images-a-single-file", "train", lambda tmp, ck: [TINY2D, "data.source=images", "data.options={}",
                                                       f"data.path={_png_folder(tmp) / '0.png'}",
                                                       "--out", str(tmp / "run")], ["0.png", "folder or a .zip"]),
    # HDF5.
    ("hdf5-empty-file", "train", lambda tmp, ck: _train_on(tmp, _write(tmp / "e.h5", "")), ["e.h5", "HDF5"]),
    ("hdf5-truncated", "train", lambda tmp, ck: _train_on(tmp, _truncate(_volume_h5(tmp), 0.5)),
     ["v.h5", "not a readable HDF5 file", "truncated"]),
    ("hdf5-missing-key", "train", lambda tmp, ck: _train_on(tmp, _other_key(tmp)), ["no dataset 'data'", "grids"]),
    ("hdf5-zero-samples", "train", lambda tmp, ck: _train_on(tmp, _h5(tmp / "z.h5", np.zeros((0, 2, 16, 16, 16)))),
     ["empty"]),
    ("hdf5-nan", "train", lambda tmp, ck: _train_on(tmp, _with_nan(tmp)), ["[0]", "NaN"]),
    # Found in the first batch, after the run folder (and two new parents) were made, its .lock, config.yaml
    # and tensorboard/ written: the failed run takes them all back.
    ("hdf5-nan-after-sample-0", "train", lambda tmp, ck: [*_train_on(tmp, _late_nan(tmp))[:-1],
                                                          str(tmp / "runs/new/run")], ["late.h5", "NaN"]),
    ("hdf5-integers-without-a-range", "train", lambda tmp, ck: _train_on(tmp, _int_h5(tmp)),
     ["int16", "data.options.value_range", "[-32768, 32767]"]),
    ("hdf5-outside-its-range", "train", lambda tmp, ck: _train_on(tmp, _h5(tmp / "o.h5", 3 * _int_h5_data(),
                                                                          value_range=[0, 1000], normalized=False)),
     ["o.h5", "outside", "data.options.value_range"]),
    ("hdf5-channel-mismatch", "train", lambda tmp, ck: _train_on(tmp, _volume_h5(tmp, channels=3)),
     ["3 channels", "expected 2"]),
    ("hdf5-wrong-rank", "train", lambda tmp, ck: _train_on(tmp, _h5(tmp / "r.h5", np.zeros((4, 2, 16, 16)))),
     ["(2, 16, 16)", "(2, 16, 16, 16)"]),
    ("hdf5-strings", "train", lambda tmp, ck: _train_on(tmp, _h5(tmp / "s.h5", np.array([b"a", b"b"]))),
     ["dtype"]),
    # NIfTI.
    ("nifti-corrupt", "train", lambda tmp, ck: _train_on_nifti(tmp, lambda d: _write(d / "s0.nii.gz", "not gz")),
     ["s0.nii.gz", "unreadable NIfTI"]),
    ("nifti-nan", "train", lambda tmp, ck: _train_on_nifti(tmp, lambda d: _nii(d / "s0.nii.gz", _nan_volume())),
     ["s0.nii.gz", "NaN"]),
    ("nifti-2d-image", "train", lambda tmp, ck: _train_on_nifti(tmp, lambda d: _nii(d / "s0.nii.gz", np.ones((9, 9)))),
     ["s0.nii.gz", "expected a 3D volume"]),
    ("nifti-empty-folder", "train", lambda tmp, ck: _train_on_nifti(tmp, lambda d: None), ["NIfTI"]),
    # Medical volumes: CT windows, label maps, TIFF stacks.
    ("nifti-window-reversed", "train",
     lambda tmp, ck: [*_train_on_nifti(tmp, lambda d: _nii(d / "s0.nii.gz", np.ones((10, 12, 9)))),
                      "data.options={window: [400, -1000]}"], ["data.options.window", "a_min 400", "a_max -1000"]),
    ("nifti-label-off-grid", "train", lambda tmp, ck: _train_on_labelled(tmp, seg_affine=np.diag([1.0, 1.5, 2.0, 1.0])),
     ["p1_seg.nii.gz", "affine", "p1_im.nii.gz"]),
    ("nifti-mixed-labels", "train", lambda tmp, ck: _train_on_labelled(tmp, second_labels=(1, 3)),
     ["p1_seg.nii.gz", "data.options.label_values"]),
    ("tiff-no-voxel-size", "train", lambda tmp, ck: _train_on_tiff(tmp), ["stack.tif", "data.options.voxel_size"]),
    # Checkpoints.
    ("checkpoint-truncated-resume", "train", lambda tmp, ck: [TINY2D, *SMALL, "train.kimg=0.008", "--out",
                                                               str(tmp / "run"), "--resume",
                                                               _truncate(_run_with(tmp, ck), 0.5)],
     ["checkpoint-", "not a loadable ndgan checkpoint"]),
    ("checkpoint-changed-network-resume", "train", lambda tmp, ck: [TINY2D, *SMALL, "G.w_dim=32", "train.kimg=0.008",
                                                                     "--out", str(tmp / "run"), "--resume",
                                                                     _run_with(tmp, ck)], ["'G' section differs"]),
    ("checkpoint-auto-resume-none-loads", "train", lambda tmp, ck: [TINY2D, *SMALL, "--out", str(tmp / "run"),
                                                                     "--resume", "auto", _truncate(_run_with(tmp, ck), 0.5)][:-1],
     ["--resume auto", "none of its 1 checkpoints loads"]),
    ("checkpoint-resume-older-into-newer", "train", lambda tmp, ck: _older_into_newer(tmp, ck),
     ["holds newer checkpoints", "checkpoint-000000008.pt"]),
    ("checkpoint-resume-from-safetensors", "train", lambda tmp, ck: [TINY2D, *SMALL, "--out", str(tmp / "r2"),
                                                                     "--resume", _safetensors(tmp, ck)],
     ["G.safetensors", "not a training checkpoint"]),
    ("checkpoint-lacks-training-state", "train", lambda tmp, ck: [TINY2D, *SMALL, "--out", str(tmp / "r3"), "--resume",
                                                                  _save(tmp / "g.pt", {"format_version": 1, "G_ema": {}})],
     ["g.pt", "lacks", "D_opt"]),
    ("checkpoint-run-folder-all-torn", "generate", lambda tmp, ck: [str(Path(_truncate(_run_with(tmp, ck), 0.4)).parent),
                                                                    "--out", str(tmp / "o")],
     ["none of its 1 checkpoints loads", "not a loadable ndgan checkpoint"]),
    ("checkpoint-a-yaml-file", "generate", lambda tmp, ck: [_write(tmp / "config.yaml", "data: {}\n"), "--out",
                                                            str(tmp / "o")], ["config.yaml", "not a torch file"]),
    ("checkpoint-empty", "generate", lambda tmp, ck: [_write(tmp / "empty.pt", ""), "--out", str(tmp / "o")],
     ["empty.pt", "not"]),
    ("checkpoint-not-a-dict", "generate", lambda tmp, ck: [_save(tmp / "t.pt", torch.zeros(3)), "--out", str(tmp / "o")],
     ["t.pt", "Tensor"]),
    ("checkpoint-future-format", "generate", lambda tmp, ck: [_save(tmp / "f.pt", {"format_version": 99}),
                                                              "--out", str(tmp / "o")], ["f.pt", "format 99"]),
    ("checkpoint-pickle-payload", "generate", lambda tmp, ck: [_payload(tmp), "--out", str(tmp / "o")],
     ["refused", "system"]),
    ("checkpoint-truncated-metrics", "metrics", lambda tmp, ck: [_truncate(_run_with(tmp, ck), 0.3),
                                                                 "--metrics", "hist"], ["not a loadable"]),
    ("checkpoint-corrupt-safetensors", "generate", lambda tmp, ck: [_truncate(_safetensors(tmp, ck), 0.5), "--out",
                                                                    str(tmp / "o")], ["G.safetensors", "not an ndgan"]),
    ("checkpoint-empty-run-folder", "generate", lambda tmp, ck: [_mkdir(tmp / "run"), "--out", str(tmp / "o")],
     ["run", "checkpoint"]),
    # Command-line arguments.
    ("cli-unknown-flag", "train", lambda tmp, ck: [TINY2D, "--reusme", "auto"], ["--reusme"]),
    ("cli-not-a-number", "generate", lambda tmp, ck: [_run_with(tmp, ck), "--n", "abc", "--out", str(tmp / "o")],
     ["--n", "abc"]),
    ("cli-zero-samples", "generate", lambda tmp, ck: [_run_with(tmp, ck), "--n", "0", "--out", str(tmp / "o")],
     ["--n"]),
    ("cli-negative-batch", "generate", lambda tmp, ck: [_run_with(tmp, ck), "--batch", "-2", "--out", str(tmp / "o")],
     ["--batch"]),
    ("cli-bad-device", "generate", lambda tmp, ck: [_run_with(tmp, ck), "--device", "gpu", "--out", str(tmp / "o")],
     ["--device", "'gpu'"]),
    ("cli-too-many-frames", "generate", lambda tmp, ck: [_run_with(tmp, ck), "--interpolate", "0,1", "--frames",
                                                         "100000000", "--out", str(tmp / "o")], ["--frames"]),
    ("cli-bad-seeds", "generate", lambda tmp, ck: [_run_with(tmp, ck), "--seeds", "3-x", "--out", str(tmp / "o")],
     ["--seeds", "3-x"]),
    ("cli-repeated-seed", "generate", lambda tmp, ck: [_run_with(tmp, ck), "--seeds", "1-3,2", "--out", str(tmp / "o")],
     ["--seeds", "2 is given more than once"]),
    ("cli-nan-truncation", "generate", lambda tmp, ck: [_run_with(tmp, ck), "--truncation", "nan", "--out",
                                                        str(tmp / "o")], ["--truncation"]),
    ("cli-format-for-wrong-rank", "generate", lambda tmp, ck: [_run_with(tmp, ck), "--format", "nii.gz", "--out",
                                                               str(tmp / "o")], ["nii.gz", "3D"]),
    ("cli-render-missing-channel", "render", lambda tmp, ck: [_volume_h5(tmp), "--channel", "5", "--out",
                                                              str(tmp / "r.png")], ["--channel", "5"]),
    ("cli-render-nan-volume", "render", lambda tmp, ck: [_with_nan(tmp), "--out", str(tmp / "r.png")], ["NaN"]),
    ("cli-convert-empty-npy", "convert", lambda tmp, ck: [_npy(tmp / "e.npy", np.zeros((0, 1, 8, 8))), "--out",
                                                          str(tmp / "o.h5")], ["e.npy"]),
    ("cli-project-wrong-shape", "project", lambda tmp, ck: [_run_with(tmp, ck), _npy(tmp / "t.npy", np.zeros((3, 9, 9))),
                                                            "--out", str(tmp / "p")], ["t.npy", "shape"]),
    # Output folders that cannot be written.
    ("out-under-a-file", "train", lambda tmp, ck: [TINY2D, *SMALL, "--out", str(Path(_write(tmp / "f", "x")) / "run")],
     ["--out", "is a file"]),
    ("out-generate-under-a-file", "generate", lambda tmp, ck: [_run_with(tmp, ck), "--out",
                                                               str(Path(_write(tmp / "f", "x")) / "o")],
     ["f/o", "Not a directory"]),
    ("out-proc", "train", lambda tmp, ck: [TINY2D, *SMALL, "--out", "/proc/ndgan-run"], ["/proc", "not writable"]),
    ("out-render-missing-folder", "render", lambda tmp, ck: [_volume_h5(tmp), "--out", str(tmp / "no" / "r.png")],
     ["no", "output folder does not exist"]),
]

# Round two (issue 18): files that would run code, inputs that exhaust memory or time, messages that named
# nothing, checkpoints with malformed contents, foreign output folders, and runs that failed half-way.
CASES += [
    # A file is never run because of what its bytes look like: programs need --features-program.
    ("security-torchscript-as-features", "metrics",
     lambda tmp, ck: [_run_with(tmp, ck), "--metrics", "fid", "--features", _torchscript(tmp / "resnet_10.pth")],
     ["resnet_10.pth", "TorchScript program", "--features-program"]),
    ("security-export-as-features-in-a-config", "train",
     lambda tmp, ck: [TINY2D, "train.metrics=[fid]", f"metrics.features={_exported(tmp / 'net.pt2')}",
                      "--out", str(tmp / "run")], ["net.pt2", "torch.export program", "metrics.features_program"]),
    ("security-torchscript-as-inception", "metrics",
     lambda tmp, ck: [_run_with(tmp, ck), "--metrics", "fid", "--inception", _torchscript(tmp / "inception.pth")],
     ["inception.pth", "TorchScript program", "weights only"]),
    ("security-torchscript-as-lpips", "metrics",
     lambda tmp, ck: [_run_with(tmp, ck), "--metrics", "ppl", "--lpips",
                      f"{_torchscript(tmp / 'vgg16.pth')},{_torchscript(tmp / 'vgg.pth')}"],
     ["vgg16.pth", "TorchScript program"]),
    ("security-torchscript-as-checkpoint", "generate",
     lambda tmp, ck: [_torchscript(tmp / "checkpoint-000000004.pt"), "--out", str(tmp / "o")],
     ["checkpoint-000000004.pt", "TorchScript program"]),
    ("security-npy-of-objects", "project",
     lambda tmp, ck: [_run_with(tmp, ck), _npy_objects(tmp / "t.npy"), "--out", str(tmp / "p")],
     ["t.npy", "object"]),
    ("security-npy-of-objects-convert", "convert",
     lambda tmp, ck: [_npy_objects(tmp / "s.npy"), "--out", str(tmp / "o.h5")], ["s.npy", "object"]),
    # Sizes that cannot fit: estimated before anything is allocated.
    ("memory-huge-z-dim", "train", _train("G.z_dim=100000000"), ["G", "GiB", "available"]),
    ("memory-huge-shape", "train", _train("data.shape=[1000000,1000000]", "G.channel_base=4000000",
                                          "D.channel_base=4000000"), ["data.shape", "GiB", "available"]),
    ("memory-huge-procedural-dataset", "train", _train("data.options={length: 1000000000000}"),
     ["data.options.length", "1000000000000"]),
    ("memory-huge-seed-range", "generate", lambda tmp, ck: [_run_with(tmp, ck), "--seeds", "0-999999999", "--out",
                                                            str(tmp / "o")], ["--seeds", "1000000000 samples"]),
    ("memory-render-huge-volume", "render", lambda tmp, ck: [_declared_h5(tmp, (1, 1, 4096, 4096, 4096)), "--out",
                                                             str(tmp / "r.png")], ["d.h5", "GiB", "available"]),
    ("memory-npy-header-lies", "render", lambda tmp, ck: [_lying_npy(tmp / "v.npy"), "--out", str(tmp / "r.png")],
     ["v.npy", "header", "bytes"]),
    ("memory-npy-header-lies-convert", "convert", lambda tmp, ck: [_lying_npy(tmp / "v.npy"), "--out",
                                                                   str(tmp / "o.h5")], ["v.npy", "header", "bytes"]),
    ("memory-render-huge-picture", "render", lambda tmp, ck: [_volume_h5(tmp), "--size", "100000", "--out",
                                                              str(tmp / "r.png")], ["--size", "100000"]),
    ("memory-hdf5-declares-1e10-samples", "train",
     lambda tmp, ck: _train_on(tmp, _declared_h5(tmp, (10**10, 2, 16, 16, 16))), ["10000000000 samples", "GiB"]),
    ("memory-convert-huge-image-shape", "convert", lambda tmp, ck: [str(_png_folder(tmp)), "--shape", "100000",
                                                                    "100000", "--out", str(tmp / "o.h5")],
     ["--shape", "8 samples of 3 x 100000 x 100000", "GiB", "available"]),
    ("memory-convert-huge-nifti-shape", "convert",
     lambda tmp, ck: [str(Path(_nii(Path(_mkdir(tmp / "mri")) / "s0.nii.gz", np.ones((10, 12, 9)))).parent), "--shape", "4000",
                      "4000", "4000", "--out", str(tmp / "o.h5")], ["--shape", "1 samples of 1 x 4000 x 4000 x 4000"]),
    ("config-billion-laughs", "train", lambda tmp, ck: [_write(tmp / "laughs.yaml", _laughs())],
     ["laughs.yaml", "aliases"]),
    # Configs that gave tracebacks or silently won.
    ("config-nested-thousands-deep", "train", lambda tmp, ck: [_write(tmp / "deep.yaml", "a: " + "[" * 5000 + "]" * 5000)],
     ["deep.yaml", "nested"]),
    ("config-non-string-key", "train", lambda tmp, ck: [_write(tmp / "k.yaml", "train: {1: 2}\n")],
     ["k.yaml", "train", "1", "not a string"]),
    ("config-binary-file", "train", lambda tmp, ck: [_write_bytes(tmp / "model.yaml", bytes(range(256)) * 4)],
     ["model.yaml", "not a text file"]),
    ("config-duplicate-key", "train", lambda tmp, ck: [_write(tmp / "dup.yaml", "train:\n  kimg: 1\n  kimg: 2\n")],
     ["dup.yaml", "line 3", "kimg", "twice"]),
    ("config-data-option-of-the-wrong-type", "train", _train("data.options={length: 64, seed: abc}"),
     ["data.options.seed", "integer"]),
    ("config-huge-seed", "train", _train("train.seed=99999999999999999999999"), ["train.seed", "2**63"]),
    ("config-workers-named", "train", _train("data.workers=-1"), ["data.workers"]),
    ("config-value-range-not-numbers", "train",
     lambda tmp, ck: [*_train_on(tmp, _volume_h5(tmp))[:-2], "data.options={value_range: [a, b]}", "--out",
                      str(tmp / "run")], ["data.options.value_range", "number"]),
    # Checkpoints whose contents are malformed: the field is named.
    ("checkpoint-config-without-a-section", "generate",
     lambda tmp, ck: [_edited(tmp, ck, lambda s: s["config"].pop("data")), "--out", str(tmp / "o")],
     ["config", "'data'"]),
    ("checkpoint-counter-as-a-string", "train",
     lambda tmp, ck: [TINY2D, *SMALL, "train.kimg=0.008", "--out", str(tmp / "r2"), "--resume",
                      _edited(tmp, ck, lambda s: s.update(nimg="4"))], ["nimg", "integer"]),
    ("checkpoint-rng-state-of-the-wrong-size", "train",
     lambda tmp, ck: [TINY2D, *SMALL, "train.kimg=0.008", "--out", str(tmp / "r2"), "--resume",
                      _edited(tmp, ck, lambda s: s["rng"].update(torch=torch.zeros(7, dtype=torch.uint8)))],
     ["rng.torch", "5056"]),
    ("checkpoint-tensor-inside-the-config", "generate",
     lambda tmp, ck: [_edited(tmp, ck, lambda s: s["config"]["train"].update(kimg=torch.ones(2))), "--out",
                      str(tmp / "o")], ["config.train.kimg", "Tensor"]),
    ("checkpoint-another-networks-discriminator", "project",
     lambda tmp, ck: [_edited(tmp, ck, lambda s: s.update(D={"w": torch.zeros(3)})), _target(tmp), "--out",
                      str(tmp / "p"), "--steps", "1"], ["D", "do not fit"]),
    ("checkpoint-nan-weights", "generate",
     lambda tmp, ck: [_edited(tmp, ck, _nan_weight), "--out", str(tmp / "o")], ["G_ema.", "NaN"]),
    ("checkpoint-overflowing-weights", "generate",
     lambda tmp, ck: [_edited(tmp, ck, _huge_weight), "--out", str(tmp / "o")], ["non-finite", "samples"]),
    # Data.
    ("nifti-singular-affine", "train",
     lambda tmp, ck: _train_on_nifti(tmp, lambda d: _nii(d / "s0.nii.gz", np.ones((10, 12, 9)), np.zeros((4, 4)))),
     ["s0.nii.gz", "the affine is singular"]),
    ("nifti-nan-affine", "train",
     lambda tmp, ck: _train_on_nifti(tmp, lambda d: _nii(d / "s0.nii.gz", np.ones((10, 12, 9)),
                                                         np.diag([np.nan, 1, 1, 1]))),
     ["s0.nii.gz", "the affine is not finite"]),
    ("hdf5-negative-labels", "train",
     lambda tmp, ck: [*_train_on(tmp, _labelled_h5(tmp, [0, -1, 2, 1])), "data.options={label_key: labels}"],
     ["l.h5", "labels", "-1"]),
    ("cli-huge-seed", "generate", lambda tmp, ck: [_run_with(tmp, ck), "--seeds", "99999999999999999999999",
                                                   "--out", str(tmp / "o")], ["--seeds", "2**63"]),
    ("cli-render-zero-spacing", "render", lambda tmp, ck: [_volume_h5(tmp), "--spacing", "0", "1", "1", "--out",
                                                           str(tmp / "r.png")], ["--spacing", "positive"]),
    ("out-foreign-folder", "train", lambda tmp, ck: [TINY2D, *SMALL, "--out", _foreign(tmp)],
     ["--out", "not an ndgan run folder", "--overwrite"]),
    ("cli-generate-out-is-a-file", "generate", lambda tmp, ck: [_run_with(tmp, ck), "--out", _write(tmp / "o", "x")],
     ["--out", "is a file"]),
]


def _write(path, text):
    Path(path).write_text(text)
    return str(path)


def _write_bytes(path, data):
    Path(path).write_bytes(data)
    return str(path)


class _Stats(torch.nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :8]


def _torchscript(path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(_Stats()).save(str(path))
    return str(path)


def _exported(path):
    torch.export.save(torch.export.export(_Stats(), (torch.randn(2, 3, 32, 32),)), str(path))
    return str(path)


def _npy_objects(path):
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    return str(path)


def _declared_h5(tmp, shape):
    """An HDF5 file declaring a huge chunked dataset that holds (almost) nothing."""
    with h5py.File(tmp / "d.h5", "w") as f:
        f.create_dataset("data", shape=shape, dtype=np.float32, chunks=(1, 1, *shape[2:4], min(shape[4], 16)))
    return str(tmp / "d.h5")


def _lying_npy(path):
    """A .npy whose header declares 4 x 1 x 4096^3 float32 (1 TiB) over 100 bytes of data."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (4, 1, 4096, 4096, 4096)}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 100)
    return str(path)


def _laughs():
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i, (prev, name) in enumerate(zip("abcdefgh", "bcdefghi")):
        lines.append(f"{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]")
    return "\n".join(lines) + "\ntrain: {kimg: 1}\ndata: {options: {x: *i}}\n"


def _edited(tmp, checkpoint, edit):
    """A copy of the good checkpoint in tmp/run with ``edit(state)`` applied."""
    state = torch.load(checkpoint, weights_only=True)
    edit(state)
    (tmp / "run").mkdir(exist_ok=True)
    path = tmp / "run" / checkpoint.name
    torch.save(state, path)
    return str(path)


def _nan_weight(state):
    name = next(k for k, v in state["G_ema"].items() if v.is_floating_point() and v.numel() > 1)
    state["G_ema"][name][0] = float("nan")


def _huge_weight(state):
    for k, v in state["G_ema"].items():
        if k.endswith("weight") and ("torgb" in k.lower() or "to_rgb" in k.lower()):
            v.mul_(1e38)


def _target(tmp):
    return _npy(tmp / "t.npy", np.zeros((3, 32, 32), np.float32))


def _labelled_h5(tmp, labels):
    with h5py.File(tmp / "l.h5", "w") as f:
        f.create_dataset("data", data=np.random.default_rng(0).uniform(-1, 1, (4, 2, 16, 16, 16)).astype(np.float32))
        f.create_dataset("labels", data=np.asarray(labels))
    return str(tmp / "l.h5")





def _foreign(tmp):
    """A user's own folder with a config.yaml and a stats.jsonl but no checkpoint."""
    folder = tmp / "mine"
    folder.mkdir()
    (folder / "config.yaml").write_text("my: notes\n")
    (folder / "stats.jsonl").write_text('{"mine": 1}\n')
    return str(folder)


def test_overwrite_trains_into_a_foreign_folder(tmp_path, capsys):
    """The fix the refusal names works: with --overwrite the run goes ahead and writes its checkpoint."""
    folder = Path(_foreign(tmp_path))
    assert train_cli([TINY2D, *SMALL, "--out", str(folder)]) == 2
    assert train_cli([TINY2D, *SMALL, "--out", str(folder), "--overwrite"]) == 0
    assert list(folder.glob("checkpoint-*.pt")) and "my: notes" not in (folder / "config.yaml").read_text()


def _mkdir(path):
    Path(path).mkdir()
    return str(path)


def _save(path, obj):
    torch.save(obj, path)
    return str(path)


def _npy(path, array):
    np.save(path, array)
    return str(path)


def _safetensors(tmp, checkpoint):
    from ndgan.sampling import load_generator, save_safetensors

    return str(save_safetensors(load_generator(checkpoint), tmp / "G.safetensors"))


def _older_into_newer(tmp, checkpoint):
    """A run folder whose newest checkpoint (8) is newer than the one --resume names (4)."""
    old = Path(_run_with(tmp, checkpoint))
    state = torch.load(old, weights_only=True)
    torch.save(dict(state, nimg=8), old.with_name("checkpoint-000000008.pt"))
    return [TINY2D, *SMALL, "train.kimg=0.012", "--out", str(old.parent), "--resume", str(old)]


def _truncate(path, fraction):
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * fraction)])
    return str(path)


def _corrupt_png(folder):
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    return folder


def _only_corrupt(tmp):
    folder = _mkdir(tmp / "broken")
    for i in range(3):
        Path(folder, f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(100))
    return folder


def _other_key(tmp):
    with h5py.File(tmp / "k.h5", "w") as f:
        f.create_dataset("grids", data=np.zeros((4, 2, 16, 16, 16), np.float32))
    return str(tmp / "k.h5")


def _with_nan(tmp):
    data = np.random.default_rng(0).uniform(-1, 1, (4, 2, 16, 16, 16)).astype(np.float32)
    data[0, 0, 3, 4, 5] = np.nan
    return _h5(tmp / "nan.h5", data)


def _int_h5_data():
    return np.random.default_rng(0).integers(0, 1000, (8, 2, 16, 16, 16)).astype(np.int16)


def _int_h5(tmp):
    return _h5(tmp / "int.h5", _int_h5_data())


def test_the_integer_hdf5_hint_works_when_applied(tmp_path, capsys):
    """Every suggested fix is a key that works: the value_range the error names, set as it says, trains."""
    argv = _train_on(tmp_path, _int_h5(tmp_path))
    assert train_cli(argv) == 2
    assert "set data.options.value_range" in capsys.readouterr().err
    out = tmp_path / "fixed"
    assert train_cli([*argv[:-2], "data.options={value_range: [0, 1000]}", "train.kimg=0.008",
                      "train.snapshot_kimg=0.008", "--out", str(out)]) == 0
    assert list(out.glob("checkpoint-*.pt"))


def _late_nan(tmp):
    data = np.random.default_rng(0).uniform(-1, 1, (16, 2, 16, 16, 16)).astype(np.float32)
    data[1:, 1, 2, 3, 4] = np.nan  # sample 0, checked before the run starts, is fine
    return _h5(tmp / "late.h5", data)


def _nan_volume():
    v = np.random.default_rng(0).random((10, 12, 9))
    v[2, 3, 4] = np.nan
    return v


def _train_on(tmp, h5_path):
    return [TINY3D, "data.source=hdf5", "data.options={}", f"data.path={h5_path}", "data.workers=0", "--out", str(tmp / "run")]


def _train_on_nifti(tmp, make):
    folder = tmp / "nifti"
    folder.mkdir()
    make(folder)
    if any(folder.iterdir()):
        _nii(folder / "s1.nii.gz", np.random.default_rng(1).random((10, 12, 9)))
    return [TINY3D, "data.source=nifti", "data.options={}", f"data.path={folder}", "data.channels=1", "data.periodic=false",
            "data.workers=0", "--out", str(tmp / "run")]


def _train_on_labelled(tmp, seg_affine=None, second_labels=(1, 2)):
    """Two subjects with label maps: the second's map off its image's grid, or with other labels."""
    folder = tmp / "ct"
    folder.mkdir()
    for i, labels in enumerate([(1, 2), second_labels]):
        _nii(folder / f"p{i}_im.nii.gz", np.random.default_rng(i).random((10, 12, 9)))
        seg = np.zeros((10, 12, 9))
        seg[2:5, 2:5, 2:5], seg[6:8, 6:8, 6:8] = labels
        _nii(folder / f"p{i}_seg.nii.gz", seg, seg_affine if i == 1 else None)
    return [TINY3D, "data.source=nifti", f"data.path={folder}", "data.channels=3", "data.periodic=false",
            "data.options={patterns: ['*_im.nii.gz'], labels: '*_seg.nii.gz'}", "data.workers=0",
            "--out", str(tmp / "run")]


def _train_on_tiff(tmp):
    import tifffile

    tifffile.imwrite(tmp / "stack.tif", np.random.default_rng(0).integers(0, 9, (16, 16, 16), dtype=np.uint16),
                     metadata={"axes": "ZYX"})
    return [TINY3D, "data.source=tiff", f"data.path={tmp / 'stack.tif'}", "data.channels=1", "data.periodic=false",
            "data.options={}", "data.workers=0", "--out", str(tmp / "run")]


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _payload(tmp):
    return _save(tmp / "evil.pt", {"format_version": 1, "G_ema": _Payload(tmp.parent / f"{tmp.name}-payload-ran")})


def _tree(root: Path) -> dict:
    """Every path under ``root`` with its bytes' hash (folders: None)."""
    return {str(p.relative_to(root)): None if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))}


def test_the_catalogue_is_long_and_covers_every_kind_of_input():
    kinds = {name.split("-")[0] for name, *_ in CASES}
    assert len(CASES) >= 25 and kinds >= {"config", "images", "hdf5", "nifti", "tiff", "checkpoint", "cli", "out"}
    assert len({name for name, *_ in CASES}) == len(CASES)


@pytest.mark.parametrize("command, setup, words", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_input_is_one_line_and_exit_2_with_nothing_left_behind(command, setup, words, tmp_path, capsys,
                                                                   monkeypatch, good_checkpoint):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # anything written to a default location would land here and be seen
    argv = setup(work, good_checkpoint)
    before = _tree(work)
    capsys.readouterr()
    try:
        code = COMMANDS[command](argv)
    except SystemExit as e:  # argparse
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"
    assert _tree(work) == before, "files were created, changed or removed"
    assert not (tmp_path / "work-payload-ran").exists()


def test_debug_shows_the_traceback(tmp_path):
    args = [sys.executable, "-m", "ndgan.train", TINY2D, "train.kimgs=1", "--out", str(tmp_path / "run")]
    quiet = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    loud = subprocess.run(args + ["--debug"], capture_output=True, text=True, cwd=ROOT)
    assert quiet.returncode == 2 and quiet.stderr.count("\n") == 1 and "Traceback" not in quiet.stderr
    assert loud.returncode != 0 and "Traceback (most recent call last)" in loud.stderr and "train.kimgs" in loud.stderr


def _limited(args, limit_bytes, cwd):
    """Run ``python -m ARGS`` with writes beyond ``limit_bytes`` per file failing in the kernel (EFBIG), as a full
    disk would fail them (ENOSPC); SIGXFSZ is ignored so the write returns the error instead of killing."""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          preexec_fn=limit)


def test_full_disk_while_generating_leaves_no_partial_file(good_checkpoint, tmp_path):
    before = _tree(tmp_path)  # the output folder "o" does not exist yet, and must not be left behind
    proc = _limited(["ndgan.generate", str(good_checkpoint), "--n", "64", "--format", "h5", "--out",
                     str(tmp_path / "o")], 4096, tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "the disk is full" in proc.stderr and "--out" in proc.stderr
    assert _tree(tmp_path) == before


def test_full_disk_at_a_checkpoint_keeps_the_previous_one(good_checkpoint, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    old = shutil.copy(good_checkpoint, run / good_checkpoint.name)
    digest = hashlib.sha256(Path(old).read_bytes()).hexdigest()
    size = Path(old).stat().st_size
    proc = _limited(["ndgan.train", TINY2D, *SMALL, "train.kimg=0.008", "--out", str(run), "--resume", "auto"],
                    size // 2, tmp_path)
    last = proc.stderr.strip().splitlines()[-1]  # above it: the progress bar
    assert proc.returncode == 2 and proc.stderr.count("error:") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert last.startswith("error: ") and "checkpoint-000000008.pt" in last and "the disk is full" in last
    assert hashlib.sha256(Path(old).read_bytes()).hexdigest() == digest
    names = sorted(p.name for p in run.iterdir())
    assert [n for n in names if n.endswith(".pt")] == [good_checkpoint.name]  # no new or partial checkpoint
    assert not [n for n in names if "tmp" in n]


def test_bad_sample_found_by_a_loader_worker_is_one_line(tmp_path, capsys):
    """A NaN met mid-run inside a DataLoader worker arrives wrapped in the worker's traceback: the user still
    gets one line naming the file and sample, and no checkpoint is written."""
    data = np.random.default_rng(0).uniform(-1, 1, (8, 2, 16, 16, 16)).astype(np.float32)
    data[5, 1, 0, 0, 0] = np.inf
    path = _h5(tmp_path / "late.h5", data)
    argv = [TINY3D, "data.source=hdf5", "data.options={}", f"data.path={path}", "data.workers=2",
            "--out", str(tmp_path / "run")]
    assert train_cli(argv) == 2
    err = capsys.readouterr().err  # the progress bar, then the error
    assert err.count("error:") == 1 and "Traceback" not in err, err
    assert err.splitlines()[-1] == f"error: {path}[data][5]: contains NaN or Inf"
    assert not (tmp_path / "run").exists()  # nothing kept, so nothing left: no .lock, config.yaml, tensorboard/
