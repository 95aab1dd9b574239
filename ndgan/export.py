"""Samples out: load a trained generator and write samples as NIfTI, HDF5, PNG or NumPy in physical units.

Generated values in [-1, 1] are mapped back through the training data's ``value_range`` (kelvin for the
energy grids, 8-bit intensity for images, the typical percentile range for MRI); NIfTI files carry the
training data's affine (identity only when the data had none, and then the caller is told).
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

from . import cli
from .files import atomic_write, atomic_write_all, output_folder
from .nets import Generator
from .train import checkpoint as ckpt
from .viz.grid import sample_grid, save_png

FORMATS = ("png", "nii.gz", "h5", "npy")


def load_generator(path, device="cpu") -> Generator:
    """The EMA generator of a checkpoint file, a run folder's newest valid checkpoint or a ``.safetensors``
    export, in eval mode.

    Loads with ``weights_only=True`` (never unpickles code). The returned module carries ``metadata`` (the
    training data's), ``config`` (the resolved training config) and ``kimg``.
    """
    path = Path(path)
    check_device(device)
    if path.suffix == ".safetensors" and path.is_file():
        state = _read_safetensors(path)
    elif path.is_dir():
        found, state = ckpt.latest_valid(path)
        if found is None:
            raise FileNotFoundError(ckpt.none_loads(path))
    elif path.is_file():
        state = ckpt.load(path)
    else:
        raise FileNotFoundError(f"{path}: no such checkpoint file or run folder")
    try:
        G = Generator(**state["G_kwargs"])
        G.load_state_dict(state["G_ema"])
    except (KeyError, TypeError, RuntimeError, ValueError) as e:
        raise ValueError(f"{path}: checkpoint does not hold a compatible generator ({type(e).__name__}: "
                         f"{str(e).splitlines()[0]})") from None
    G = G.to(device).eval().requires_grad_(False)
    G.metadata = dict(state.get("data_metadata", {}))
    G.config = state.get("config", {})
    G.kimg = state.get("nimg", 0) / 1000
    return G


def check_device(device) -> torch.device:
    """``device`` as a torch.device, or a ValueError saying what this machine offers."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"--device: {device!r} is not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device: {device} requested, but this machine has no CUDA device; use cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device: {device} requested, but this machine has {torch.cuda.device_count()} GPU(s)")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device: {device} is not supported; use cpu, cuda or cuda:N")
    return device


SAFETENSORS_FORMAT = "ndgan-generator-1"


def save_safetensors(G: Generator, out, overwrite: bool = False) -> Path:
    """Write the generator ``G`` (from ``load_generator``) as a safetensors file: its tensors, plus JSON text
    metadata (constructor arguments, data metadata, training config, kimg) to rebuild it. The format holds
    no code, so the file is safe to share and to load from anyone; ``load_generator`` reads it back."""
    try:
        from safetensors.torch import save
    except ImportError:
        raise ImportError("safetensors export needs safetensors: pip install 'ndgan[safetensors]'") from None
    out = Path(out)
    if out.suffix != ".safetensors":
        raise ValueError(f"--out {out}: expected a file name ending in .safetensors")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists; pass --overwrite or choose another --out")
    tensors = {k: v.detach().cpu().clone().contiguous() for k, v in G.state_dict().items()}
    metadata = {"format": SAFETENSORS_FORMAT, "G_kwargs": json.dumps(G.init_kwargs),
                "data_metadata": json.dumps(getattr(G, "metadata", {})),
                "config": json.dumps(getattr(G, "config", {})), "kimg": repr(float(getattr(G, "kimg", 0.0)))}
    payload = save(tensors, metadata=metadata)
    with output_folder(out.parent):
        return atomic_write(out, lambda p: Path(p).write_bytes(payload))


def _read_safetensors(path: Path) -> dict:
    """A ``save_safetensors`` file as the parts of a checkpoint ``load_generator`` uses."""
    try:
        from safetensors import safe_open
    except ImportError:
        raise ImportError(f"{path}: reading safetensors needs safetensors: pip install 'ndgan[safetensors]'") from None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if meta.get("format") != SAFETENSORS_FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {SAFETENSORS_FORMAT!r}")
        return {"G_kwargs": json.loads(meta["G_kwargs"]), "G_ema": tensors, "nimg": float(meta["kimg"]) * 1000,
                "data_metadata": json.loads(meta["data_metadata"]), "config": json.loads(meta["config"])}
    except Exception as e:  # safetensors' own error type, bad JSON, missing keys
        detail = str(e).splitlines()[0] if str(e) else ""
        raise ValueError(f"{path}: not an ndgan generator safetensors file ({type(e).__name__}: {detail})") from None


MAX_SEEDS = 1_000_000  # samples per call: a range is counted before it is expanded


def parse_seeds(text: str, flag: str = "--seeds") -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7]; seeds in [0, 2**63), at most ``MAX_SEEDS`` of them."""
    ranges = []
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            lo, hi = int(lo), int(hi) if hi else int(lo)
            if hi < lo or lo < 0:
                raise ValueError
            ranges.append((lo, hi))
    except ValueError:
        raise ValueError(f"{flag}: expected non-negative numbers and increasing ranges like 0-15,20, "
                         f"got {text!r}") from None
    if any(hi >= 2**63 for _, hi in ranges):
        raise ValueError(f"{flag}: seeds must be below 2**63 (a torch seed is 64 bits), got {text!r}")
    count = sum(hi - lo + 1 for lo, hi in ranges)
    if count > MAX_SEEDS:
        raise ValueError(f"{flag}: {count} samples, more than the {MAX_SEEDS:,} one call makes; split the range "
                         f"into several calls")
    return [s for lo, hi in ranges for s in range(lo, hi + 1)]


@torch.no_grad()
def generate(G, seeds, truncation_psi=1.0, batch=8, noise_mode="const", c=None) -> torch.Tensor:
    """One sample per seed (z drawn from ``torch.Generator().manual_seed(seed)``): ``[N, C, *S]`` in [-1, 1]."""
    device = next(G.parameters()).device
    out = []
    for i in range(0, len(seeds), batch):
        z = torch.stack([torch.randn(G.z_dim, generator=torch.Generator().manual_seed(s)) for s in seeds[i:i + batch]])
        labels = None if c is None else c[i:i + batch].to(device)
        out.append(G(z.to(device), labels, truncation_psi=truncation_psi, noise_mode=noise_mode).float().cpu())
    return torch.cat(out)


def to_physical(x: torch.Tensor, metadata: dict) -> np.ndarray:
    """[-1, 1] -> the training data's units, per channel where the data recorded per-channel ranges.

    Samples are clipped to [-1, 1] first: the data were mapped into that range (the energy grids clipped to
    [-4000, 5000] K, images to 0-255), and the generator's linear output can overshoot it.
    """
    ranges = metadata.get("channel_value_ranges") or ([metadata["value_range"]] if metadata.get("value_range") else None)
    x = x.clamp(-1, 1).numpy().astype(np.float32)
    if ranges is None:
        return x
    lo = np.array([r[0] for r in ranges], np.float32).reshape(1, -1, *[1] * (x.ndim - 2))
    hi = np.array([r[1] for r in ranges], np.float32).reshape(1, -1, *[1] * (x.ndim - 2))
    return lo + (x + 1) / 2 * (hi - lo)


def reference_affine(metadata: dict, nd: int):
    """(4x4 affine, note): the data's affine, else one from its spacing, else identity with a note saying so."""
    if metadata.get("affine") is not None:
        return np.array(metadata["affine"], dtype=np.float64), None
    if metadata.get("spacing") is not None and len(metadata["spacing"]) == nd:
        return np.diag(list(map(float, metadata["spacing"])) + [1.0] * (4 - nd)), None
    return np.eye(4), "the training data had no affine or spacing: NIfTI files use the identity (1 mm voxels)"


def export(x: torch.Tensor, G, seeds, out, fmt, truncation_psi=1.0, overwrite=False) -> list:
    """Write samples ``x`` ([N, C, *S] in [-1, 1]) in ``fmt`` to folder ``out``; returns (paths, notes)."""
    if fmt not in FORMATS:
        raise ValueError(f"--format: expected one of {FORMATS}, got {fmt!r}")
    out = Path(out)
    meta, nd = G.metadata, x.ndim - 2
    notes, paths = [], []
    if fmt == "png":
        targets = [out / "samples.png"]
    elif fmt == "nii.gz":
        if nd != 3:
            raise ValueError(f"--format nii.gz: needs 3D samples, this generator makes {nd}D ones")
        targets = [out / f"seed{s:05d}.nii.gz" for s in seeds]
    else:
        targets = [out / f"samples.{fmt}"]
    existing = [p for p in targets if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]}: already exists; pass --overwrite or choose another --out")
    physical = to_physical(x, meta)
    if fmt == "png":
        writers = [lambda p: save_png(sample_grid(x), p)]
    elif fmt == "npy":
        writers = [lambda p: np.save(p, physical)]
    elif fmt == "h5":
        import h5py

        def write(p):
            # Built in memory, then written by Python: h5py can crash the interpreter when a disk write fails.
            buffer = io.BytesIO()
            with h5py.File(buffer, "w") as h5:
                ds = h5.create_dataset("data", data=physical, compression="gzip", compression_opts=1)
                ds.attrs["seeds"] = np.array(seeds)
                ds.attrs["truncation_psi"] = float(truncation_psi)
                ds.attrs["checkpoint_kimg"] = float(G.kimg)
                ds.attrs["config"] = yaml.safe_dump(G.config)
                for key in ("channel_names", "units", "spacing", "value_range", "channel_value_ranges", "affine"):
                    if meta.get(key) is not None:
                        ds.attrs[key] = meta[key]
            Path(p).write_bytes(buffer.getvalue())

        writers = [write]
    else:
        import nibabel as nib

        affine, note = reference_affine(meta, nd)
        if note:
            notes.append(note)

        def nifti(sample):
            def write(p):  # the image is made when written: one volume's copy at a time
                volume = np.moveaxis(sample, 0, -1) if sample.shape[0] > 1 else sample[0]  # channels: 4th axis
                img = nib.Nifti1Image(volume.astype(np.float32), affine)
                img.header.set_xyzt_units("mm")
                nib.save(img, p)

            return write

        writers = [nifti(sample) for sample in physical]
    with output_folder(out):  # made only now, and removed again if nothing could be written into it
        atomic_write_all(list(zip(targets, writers)))  # every file, or none of them
    paths += targets
    return paths, notes


def _ws(G, seeds, truncation_psi):
    device = next(G.parameters()).device
    z = torch.stack([torch.randn(G.z_dim, generator=torch.Generator().manual_seed(s)) for s in seeds]).to(device)
    return G.mapping(z, None, truncation_psi=truncation_psi)


def _panel(sample: torch.Tensor) -> np.ndarray:
    """One sample [C, *S] as an RGB picture (a 2D image, or the mid-slices of every channel in 3D)."""
    pic = sample_grid(sample[None])
    return np.repeat(pic[..., None], 3, axis=2) if pic.ndim == 2 else pic


@torch.no_grad()
def style_mixing_grid(G, row_seeds, col_seeds, layers=None, truncation_psi=1.0) -> np.ndarray:
    """StyleGAN2's style-mixing figure: the top row are the column seeds' samples, the left column the row
    seeds'; cell (r, c) takes the ws ``layers`` (default: the coarse first half) from column c and the rest
    from row r."""
    layers = list(range(G.num_ws // 2)) if layers is None else list(layers)
    if not layers or min(layers) < 0 or max(layers) >= G.num_ws:
        raise ValueError(f"--mix-layers: expected indices in 0..{G.num_ws - 1}, got {layers}")
    rows, cols = _ws(G, row_seeds, truncation_psi), _ws(G, col_seeds, truncation_psi)
    render = lambda ws: [_panel(x) for x in G.synthesis(ws, noise_mode="const").float().cpu()]  # noqa: E731
    top, left = render(cols), render(rows)
    panels = [np.full_like(top[0], 255)] + top
    for r in range(len(row_seeds)):
        mixed = rows[r: r + 1].repeat(len(col_seeds), 1, 1)
        mixed[:, layers] = cols[:, layers]
        panels += [left[r]] + render(mixed)
    from .viz.grid import _tile

    return _tile(panels, len(col_seeds) + 1)


@torch.no_grad()
def interpolation_frames(G, seed_a, seed_b, frames=16, truncation_psi=1.0) -> list:
    """Pictures along the straight line in w from ``seed_a``'s latent to ``seed_b``'s."""
    if frames < 2:
        raise ValueError(f"--frames: expected at least 2, got {frames}")
    ws = _ws(G, [seed_a, seed_b], truncation_psi)
    t = torch.linspace(0, 1, frames, device=ws.device).reshape(-1, 1, 1)
    path = ws[0:1].lerp(ws[1:2], t)  # [frames, num_ws, w_dim]
    return [_panel(x) for x in G.synthesis(path, noise_mode="const").float().cpu()]


def main(argv=None) -> int:
    """python -m ndgan.export RUN_OR_CKPT --out G.safetensors [--overwrite]: the EMA generator's weights as
    safetensors (no pickle, nothing that runs code), loadable by every ndgan command that takes a checkpoint."""
    p = cli.ArgumentParser(prog="python -m ndgan.export", description=main.__doc__.split(":", 1)[1].strip())
    p.add_argument("source", metavar="RUN_OR_CKPT", help="checkpoint file or run folder")
    p.add_argument("--out", required=True, help="output .safetensors file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    cli.add_debug_flag(p)
    args = p.parse_args(argv)

    def body():
        out = save_safetensors(load_generator(args.source), args.out, args.overwrite)
        print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)")

    return cli.run(body, args.debug)


if __name__ == "__main__":
    sys.exit(main())
