"""python -m ndgan.project RUN_OR_CKPT TARGET --out DIR [--steps 1000] [--space w|w+] [--seed 0] [--device cpu]

The StyleGAN2 projector (Karras et al. 2020, section 5) for images and volumes: find the latent (and noise
maps) whose sample matches TARGET. From w_avg, Adam with a cosine-ramped learning rate, decaying noise added
to the latent, noise maps optimised under the multi-scale autocorrelation regulariser and renormalised each
step. The distance works offline: a multi-scale pixel/voxel MSE plus a feature distance on the
discriminator's block outputs of the same checkpoint (channel-normalised, as LPIPS does with VGG).

TARGET: a PNG/JPEG image, or a .npy / .nii / .nii.gz / .h5 (dataset 'data', --index) volume in the training
data's physical units (as python -m ndgan.generate writes them); its shape and channels must match the model.
Writes projected_w.npy ([num_ws, w_dim]), the reconstruction (reconstruction.png, and .npy / .nii.gz in
physical units) and report.json (pixel MSE, PSNR, feature distance, steps). Errors: one line, exit code 2.
"""

from __future__ import annotations

from pathlib import Path

from .. import cli
from ..projector import load_discriminator, load_target, project, result_names, write_results
from ..sampling import load_generator


def main(argv=None) -> int:
    p = cli.ArgumentParser(prog="python -m ndgan.project", description=__doc__.split("\n\n")[1].strip())
    p.add_argument("source", metavar="RUN_OR_CKPT")
    p.add_argument("target")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--space", default="w", choices=("w", "w+"))
    p.add_argument("--index", type=int, default=0, help="sample index in an .h5 target")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-features", action="store_true", help="pixel/voxel distance only (no discriminator)")
    p.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")
    cli.add_debug_flag(p)
    args = p.parse_args(argv)
    return cli.run(lambda: _run(args), args.debug)


def _run(args) -> int:
    if args.steps < 1:
        raise ValueError("--steps: expected a positive number")
    G = load_generator(args.source, args.device)
    target = load_target(args.target, G, args.index)
    D = None if args.no_features else load_discriminator(args.source, args.device)
    out = Path(args.out)
    existing = [n for n in result_names(G) if (out / n).exists()]
    if existing and not args.overwrite:
        raise FileExistsError(f"{out / existing[0]}: already exists; pass --overwrite or choose another --out")
    ws, recon, report = project(G, target, args.steps, args.space, D, args.seed, log=print)
    write_results(out, G, target, ws, recon, report)
    print(f"projected {args.target}: MSE {report['mse']:.4g}, PSNR {report['psnr_db']:.1f} dB -> {args.out}")
    return 0
