"""Diagnostic: NVIDIA's StyleGAN2-ADA training loop on the same digits, networks and settings as
configs/digits2d.yaml, on CPU, evaluated with ndgan's digit metrics, to tell whether the late collapse of
ndgan's digits runs (docs/quality.md) is the regime or ndgan's loop.

    git clone https://github.com/NVlabs/stylegan2-ada-pytorch /path/to/stylegan2-ada-pytorch
    pip install psutil                                  # NVIDIA's loop imports it
    python benchmarks/quality/nvidia_digits.py --nvidia /path/to/stylegan2-ada-pytorch [--kimg 25]

NVIDIA's code is used as it is, read from the checkout at run time; four lines of its training loop that
need a CUDA device (the device itself, CUDA timing events, peak GPU memory, pinned memory) are rewritten for
the CPU in memory, and torch.utils.data.Sampler again accepts the argument its sampler passes (dropped in
torch 2.6); nothing else. The networks are built from its ``training.networks`` (float32 throughout:
``num_fp16_res`` 0, no conv clamp) with ndgan's preset widths; its loss, augmentation pipe and ADA controller
are its own. Its loop cannot resume exactly, so a rerun with more kimg starts again (``--plot-only`` only
re-evaluates). Every network snapshot (every 5 kimg) is evaluated as G_ema with ndgan's ``Evaluator`` and the
digits settings of the preset (1,797 generated against the 1,797 scans, the shipped classifier), into
``<out>/metrics.jsonl``; the curve is drawn next to ndgan's float32 run in docs/figures/digits-nvidia-curve.png
and summarised in benchmarks/quality/results/digits-nvidia.json.
"""

from __future__ import annotations

import argparse
import io
import json
import pickle
import sys
import time
import types
import warnings
import zipfile
from pathlib import Path

import torch

import common

# The preset's settings in NVIDIA's terms (configs/digits2d.yaml; docs/quality.md section 1).
KIMG_PER_TICK, SNAPSHOT_TICKS = 1, 5
CUDA_LINES = {  # NVIDIA's training_loop.py line -> its CPU form
    "device = torch.device('cuda', rank)": "device = torch.device('cpu')",
    "torch.cuda.Event(enable_timing=True)": "None",
    "torch.cuda.max_memory_allocated(device)": "0",
    "torch.cuda.reset_peak_memory_stats()": "None",
    ".pin_memory()": "",
}


def loop_kwargs(zip_path: Path, kimg: float, seed: int) -> dict:
    """``training_loop`` keyword arguments equal to configs/digits2d.yaml (float32, CPU)."""
    nets = dict(channel_base=2048, channel_max=128, num_fp16_res=0, conv_clamp=None)
    adam = dict(class_name="torch.optim.Adam", lr=0.001, betas=[0, 0.99], eps=1e-8)
    return dict(
        training_set_kwargs=dict(class_name="training.dataset.ImageFolderDataset", path=str(zip_path),
                                 use_labels=False, max_size=None, xflip=False, resolution=32),
        data_loader_kwargs=dict(pin_memory=False, num_workers=0),
        G_kwargs=dict(class_name="training.networks.Generator", z_dim=512, w_dim=512,
                      mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(architecture="skip", **nets)),
        D_kwargs=dict(class_name="training.networks.Discriminator", architecture="orig", **nets,
                      mapping_kwargs={}, epilogue_kwargs=dict(mbstd_group_size=32)),
        G_opt_kwargs=adam, D_opt_kwargs=dict(adam),
        loss_kwargs=dict(class_name="training.loss.StyleGAN2Loss", r1_gamma=0.1, pl_weight=0,
                         style_mixing_prob=0),
        augment_kwargs=dict(class_name="training.augment.AugmentPipe", xint=1, scale=1, rotate=1,
                            brightness=1, contrast=1),
        augment_p=0, ada_target=0.6, ada_interval=4, ada_kimg=100,
        random_seed=seed, num_gpus=1, rank=0, batch_size=32, batch_gpu=32, ema_kimg=10, ema_rampup=0.05,
        G_reg_interval=4, D_reg_interval=16, total_kimg=kimg, kimg_per_tick=KIMG_PER_TICK,
        image_snapshot_ticks=SNAPSHOT_TICKS, network_snapshot_ticks=SNAPSHOT_TICKS, metrics=[],
        cudnn_benchmark=False, allow_tf32=False)


def write_digits_zip(path: Path) -> None:
    """The preset's 1,797 digits at 32x32 as 8-bit grey PNGs in a zip (NVIDIA's ImageFolderDataset format)."""
    from PIL import Image

    from ndgan.data.digits import DigitsDataset

    data = DigitsDataset(size=32).data  # [N, 1, 32, 32] in [-1, 1]
    pixels = ((data[:, 0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        for i, img in enumerate(pixels):
            buf = io.BytesIO()
            Image.fromarray(img, mode="L").save(buf, format="png")
            zf.writestr(f"{i:05d}.png", buf.getvalue())
    tmp.replace(path)


def load_training_loop(nvidia: Path):
    """NVIDIA's ``training.training_loop`` module with its CUDA-only lines rewritten for the CPU."""
    sys.path.insert(0, str(nvidia))
    warnings.filterwarnings("ignore", message="grid_sample_gradfix not supported")  # it falls back to torch's
    source = (nvidia / "training" / "training_loop.py").read_text(encoding="utf-8-sig")
    for cuda, cpu in CUDA_LINES.items():
        if cuda not in source:
            raise SystemExit(f"{nvidia}/training/training_loop.py: expected the line {cuda!r}; this harness is "
                             f"written for NVlabs/stylegan2-ada-pytorch at commit d72cc7d")
        source = source.replace(cuda, cpu)
    try:  # torch >= 2.6 dropped Sampler(data_source), which NVIDIA's InfiniteSampler still passes; ignore it
        torch.utils.data.Sampler(None)  # as older torch did
    except TypeError:
        torch.utils.data.Sampler.__init__ = lambda self, data_source=None: None
    module = types.ModuleType("training.training_loop")
    module.__file__ = str(nvidia / "training" / "training_loop.py")
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def evaluate_snapshots(out: Path) -> None:
    """ndgan's digits metrics of every network snapshot's G_ema not yet in ``out/metrics.jsonl``."""
    from ndgan.data.digits import DigitsDataset
    from ndgan.metrics.evaluate import Evaluator
    from ndgan.metrics.settings import MetricSettings, json_safe

    done = {r["kimg"] for r in common.read_curve(out)}
    snapshots = sorted(out.glob("network-snapshot-*.pkl"))
    todo = [(int(p.stem.split("-")[-1]), p) for p in snapshots]
    todo = [(k, p) for k, p in todo if k not in done]
    if not todo:
        return
    settings = MetricSettings(num_gen=1797, features=str(common.ROOT / "pretrained" / "digits-classifier.safetensors"))
    ev = Evaluator(["fid", "classes"], DigitsDataset(size=32), settings)
    for kimg, path in todo:
        with open(path, "rb") as f:
            G = pickle.load(f)["G_ema"].float()
        start = time.time()
        results, _ = ev.evaluate(G)
        record = {"kimg": kimg, "results": json_safe(results), "seconds": round(time.time() - start, 1)}
        print(json.dumps(record), flush=True)
        with open(out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nvidia", type=Path, required=True, help="a checkout of NVlabs/stylegan2-ada-pytorch")
    p.add_argument("--out", type=Path, default=Path("runs/quality/nvidia-digits"))
    p.add_argument("--kimg", type=float, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--ours", type=Path, default=Path("runs/quality/digits-side"),
                   help="ndgan's run of the preset to draw next to it (python -m ndgan.train configs/digits2d.yaml "
                        "--out runs/quality/digits-side --resume auto train.kimg=25 train.metrics_at_start=true)")
    p.add_argument("--plot-only", action="store_true", help="only evaluate new snapshots and redraw")
    args = p.parse_args()
    out = args.out.resolve()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.plot_only:
        out.mkdir(parents=True, exist_ok=True)
        zip_path = out / "digits32.zip"
        if not zip_path.exists():
            write_digits_zip(zip_path)
        loop = load_training_loop(args.nvidia.resolve())
        start = time.time()
        loop.training_loop(run_dir=str(out), **loop_kwargs(zip_path, args.kimg, args.seed))
        (out / "train_seconds.txt").write_text(f"{time.time() - start:.0f}\n")
    sys.path.insert(0, str(args.nvidia.resolve()))  # the pickles name NVIDIA's modules
    evaluate_snapshots(out)
    curves = {"NVIDIA StyleGAN2-ADA loop": common.read_curve(out)}
    if (args.ours / "metrics.jsonl").is_file():
        curves["ndgan's loop"] = common.read_curve(args.ours)
    from digits import PANELS

    common.plot({k: v for k, v in curves.items() if v}, PANELS, common.FIGURES / "digits-nvidia-curve.png",
                "digits2d settings, NVIDIA's loop vs ndgan's (dashed: real halves)")
    seconds = out / "train_seconds.txt"
    common.write_summary("digits-nvidia", out, {"train_seconds": int(seconds.read_text()) if seconds.is_file() else None,
                                                "nvidia_commit": "d72cc7d", "settings": loop_kwargs(
        Path("digits32.zip"), args.kimg, args.seed), "command": "python benchmarks/quality/nvidia_digits.py "
        "--nvidia PATH"})


if __name__ == "__main__":
    main()
