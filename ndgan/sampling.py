"""Samples out: load a trained generator, draw samples, write them in physical units, and the two StyleGAN2
figures (style mixing, interpolation).

Generated values in [-1, 1] are mapped back through the training data's value range (``data.units``: kelvin for
the energy grids, 8-bit intensity for images, the typical percentile range for MRI); NIfTI files carry the
training data's affine (identity only when the data had none, and then the caller is told).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
import yaml

from .data import labelmaps
from .data.units import reference_affine, to_physical
from .io import checkpoint as ckpt
from .io.cube import write_cube
from .io.files import atomic_write_all, output_folder
from .io.volumes import write_nifti
from .nets import Generator
from .nets.common import float16_in_float32
from .ops.check import check_device
from .viz.grid import sample_grid, save_png, tile

FORMATS = ("png", "nii.gz", "h5", "npy", "cube", "vti")


def load_generator(path, device="cpu", full_precision: bool | None = None) -> Generator:
    """The EMA generator of a checkpoint file, a run folder's newest valid checkpoint, a ``.safetensors``
    export or an NVIDIA StyleGAN2-ADA pickle (read as data, ``ndgan.io.nvlabs``), in eval mode.

    Loads with ``weights_only=True`` (never unpickles code). The returned module carries ``metadata`` (the
    training data's), ``config`` (the resolved training config) and ``kimg``. ``full_precision`` runs the
    blocks a model trained in float16 (``num_fp16_res``) in float32 instead; default: on CPU, where float16
    is slow and inexact (NVIDIA's ``force_fp32``). ``init_kwargs`` keep the model's own setting.
    """
    path = Path(path)
    device = check_device(device)
    state = ckpt.read_generator(path)
    try:
        G = Generator(**state["G_kwargs"])
        G.load_state_dict(state["G_ema"])
    except (KeyError, TypeError, RuntimeError, ValueError) as e:
        raise ValueError(f"{path}: checkpoint does not hold a compatible generator ({type(e).__name__}: "
                         f"{str(e).splitlines()[0]})") from None
    G = G.to(device).eval().requires_grad_(False)
    if device.type == "cpu" if full_precision is None else full_precision:
        float16_in_float32(G)
    G.metadata = dict(state.get("data_metadata", {}))
    G.config = state.get("config", {})
    G.kimg = state.get("nimg", 0) / 1000
    return G


def save_safetensors(G: Generator, out, overwrite: bool = False) -> Path:
    """Write the generator ``G`` (from ``load_generator``) as a safetensors file: its tensors, plus JSON text
    metadata (constructor arguments, data metadata, training config, kimg) to rebuild it. The format holds
    no code, so the file is safe to share and to load from anyone; ``load_generator`` reads it back."""
    return ckpt.save_generator(G.state_dict(), G.init_kwargs, out, getattr(G, "metadata", {}),
                               getattr(G, "config", {}), float(getattr(G, "kimg", 0.0)), overwrite)


SEED_RNGS = ("torch", "nvlabs")


def latents(G, seeds, seed_rng: str = "torch") -> torch.Tensor:
    """One z per seed, ``[N, z_dim]``: ``torch`` draws it from ``torch.Generator().manual_seed(seed)``,
    ``nvlabs`` as NVIDIA's generate.py does (``np.random.RandomState(seed).randn(1, z_dim)``), so that a
    StyleGAN2-ADA model imported from its pickle gives the same picture for the same seed."""
    if seed_rng == "torch":
        return torch.stack([torch.randn(G.z_dim, generator=torch.Generator().manual_seed(s)) for s in seeds])
    if seed_rng == "nvlabs":
        big = [s for s in seeds if not 0 <= s < 2**32]
        if big:
            raise ValueError(f"--seeds: {big[0]} is not below 2**32, the largest seed NumPy's RandomState takes "
                             f"(--seed-rng nvlabs)")
        return torch.from_numpy(np.concatenate([np.random.RandomState(s).randn(1, G.z_dim) for s in seeds])).float()
    raise ValueError(f"--seed-rng: expected one of {SEED_RNGS}, got {seed_rng!r}")


@torch.no_grad()
def generate(G, seeds, truncation_psi=1.0, batch=8, noise_mode="const", c=None, seed_rng="torch") -> torch.Tensor:
    """One sample per seed (z from ``latents(G, seeds, seed_rng)``), labels ``c`` ``[N, c_dim]`` for a
    conditional generator: ``[N, C, *S]`` in [-1, 1]."""
    device = next(G.parameters()).device
    z_all, out = latents(G, seeds, seed_rng), []
    for i in range(0, len(seeds), batch):
        labels = None if c is None else c[i:i + batch].to(device)
        out.append(G(z_all[i:i + batch].to(device), labels, truncation_psi=truncation_psi,
                     noise_mode=noise_mode).float().cpu())
    return torch.cat(out)


def parse_targets(items) -> dict:
    """``["heat_of_adsorption=25", ...]`` -> ``{"heat_of_adsorption": 25.0}`` (``--target``)."""
    targets = {}
    for item in items:
        name, sep, value = str(item).partition("=")
        try:
            number = float(value)
        except ValueError:
            number = None
        if not sep or not name or number is None or not np.isfinite(number):
            raise ValueError(f"--target: expected NAME=VALUE with a finite number, e.g. heat_of_adsorption=25, "
                             f"got {item!r}")
        if name in targets:
            raise ValueError(f"--target: {name} is given more than once")
        targets[name] = number
    return targets


def target_labels(G, targets: dict, n: int, strict: bool = False):
    """(labels ``[n, c_dim]``, warnings) for a model conditioned on computed properties (``data.options.labels``):
    every label at its target, standardised as in training. A target outside the training labels' range is a
    warning that names the range, or an error with ``strict``."""
    meta = G.metadata
    names = meta.get("label_names")
    if not G.c_dim or not names:
        raise ValueError("--target: this generator was not trained on computed property labels "
                         "(data.options.labels); use --class or --labels")
    unknown = [k for k in targets if k not in names]
    missing = [k for k in names if k not in targets]
    if unknown or missing:
        raise ValueError(f"--target: the generator's labels are {names}; "
                         + (f"unknown {unknown[0]!r}" if unknown else f"give {missing[0]}=VALUE too"))
    warnings, row = [], []
    for i, name in enumerate(names):
        lo, hi, unit = meta["label_min"][i], meta["label_max"][i], meta["label_units"][i]
        if not lo <= targets[name] <= hi:
            message = (f"--target {name}={targets[name]:g} lies outside the training labels' range "
                       f"[{lo:.4g}, {hi:.4g}] {unit}; the model extrapolates there")
            if strict:
                raise ValueError(message + " (--strict)")
            warnings.append(message)
        row.append((targets[name] - meta["label_mean"][i]) / meta["label_std"][i])
    return torch.tensor(row, dtype=torch.float32).expand(n, -1).clone(), warnings


def achieved_properties(G, x: torch.Tensor) -> torch.Tensor:
    """The label properties of generated samples ``x`` ``[N, C, *S]`` in [-1, 1], measured with the physics
    the labels were computed with: ``[N, len(label_names)]`` in their units."""
    from .data.properties import label_values

    meta = G.metadata
    return label_values(x.clamp(-1, 1), meta["value_range"], meta["label_names"], meta.get("label_channel", 0))


def write_samples(x: torch.Tensor, G, seeds, out, fmt, truncation_psi=1.0, overwrite=False,
                  per_seed: bool = False, attrs: dict | None = None) -> list:
    """Write samples ``x`` ([N, C, *S] in [-1, 1]) in ``fmt`` to folder ``out``; returns (paths, notes).
    ``per_seed`` (PNG): one picture per sample, ``seed0042.png``, at the sample's own size (a 2D image as
    it is, a volume as its mid-slices), instead of one grid."""
    if fmt not in FORMATS:
        raise ValueError(f"--format: expected one of {FORMATS}, got {fmt!r}")
    out = Path(out)
    meta, nd = G.metadata, x.ndim - 2
    notes, paths = [], []
    if per_seed and fmt != "png":
        raise ValueError(f"--per-seed: writes one PNG per seed; use it with --format png, not {fmt}")
    if fmt == "png":
        targets = [out / f"seed{s:04d}.png" for s in seeds] if per_seed else [out / "samples.png"]
    elif fmt in ("nii.gz", "cube", "vti"):
        if nd != 3:
            raise ValueError(f"--format {fmt}: needs 3D samples, this generator makes {nd}D ones")
        names = list(meta.get("channel_names") or [f"c{i}" for i in range(x.shape[1])])
        if fmt == "cube" and x.shape[1] > 1:  # one grid per file, as the programs that read cube files expect
            targets = [out / f"seed{s:05d}_{name}.cube" for s in seeds for name in names]
        elif fmt == "nii.gz" and meta.get("label_map_channels"):  # the image, and its label map beside it
            targets = [out / f"seed{s:05d}{part}.nii.gz" for s in seeds for part in ("", "_label")]
        else:
            targets = [out / f"seed{s:05d}.{fmt}" for s in seeds]
    else:
        targets = [out / f"samples.{fmt}"]
    existing = [p for p in targets if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]}: already exists; pass --overwrite or choose another --out")
    physical = to_physical(x, meta).numpy()
    label_channels = list(meta.get("label_map_channels") or [])
    image_channels = [c for c in range(x.shape[1]) if c not in label_channels]

    def label_map(sample):  # one generated sample [C, *S] in [-1, 1] -> its integer label map [*S]
        return labelmaps.decode(sample[label_channels].float().numpy(), meta["label_map_values"],
                                meta["label_map_encoding"])

    if fmt == "png":
        def picture(sample):
            return lambda p: save_png(sample_grid(sample[None], min_side=1), p)

        writers = [picture(sample) for sample in x] if per_seed else [lambda p: save_png(sample_grid(x), p)]
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
                if meta.get("value_range") is not None:
                    ds.attrs["normalized"] = False  # physical values: the hdf5 source maps them back to [-1, 1]
                for key, value in (attrs or {}).items():
                    ds.attrs[key] = value
                if label_channels:  # the label channels decoded, as the NIfTI export writes them
                    h5.create_dataset("labels", data=np.stack([label_map(sample) for sample in x]),
                                      compression="gzip", compression_opts=1)
            Path(p).write_bytes(buffer.getvalue())

        writers = [write]
    elif fmt in ("cube", "vti"):
        cell = grid_cell(meta, x.shape[2:], fmt)
        units = meta.get("units") or "unknown units"
        if fmt == "cube":
            def cube(sample, seed, name):
                comment = f"ndgan sample, seed {seed}, {name} in {units}, {G.kimg:g} kimg"
                return lambda p: write_cube(p, sample, cell, comment=comment)

            writers = [cube(sample[c], seed, name) for sample, seed in zip(physical, seeds)
                       for c, name in enumerate(names)]
        else:
            writers = [(lambda sample: lambda p: write_vti(p, sample, cell, names))(sample) for sample in physical]
    else:
        affine, note = reference_affine(meta, nd)
        if note:
            notes.append(note)

        description, display = export_description(meta)

        def nifti(sample):  # the image is made when written: one volume's copy at a time
            return lambda p: write_nifti(p, sample[image_channels], affine, description, display)

        def labels_file(sample):
            return lambda p: write_nifti(p, label_map(sample), affine, "ndgan sample: label map", label=True)

        writers = []
        for sample, raw in zip(physical, x):
            writers += [nifti(sample), labels_file(raw)] if label_channels else [nifti(sample)]
    with output_folder(out):  # made only now, and removed again if nothing could be written into it
        atomic_write_all(list(zip(targets, writers)))  # every file, or none of them
    paths += targets
    return paths, notes


def export_description(meta: dict):
    """(NIfTI ``descrip`` text, display range or None) for samples of data with ``meta``: the values' units,
    and for a fixed window (CT in HU) the window, which is also the display range."""
    units = meta.get("units") or "data units"
    window = meta.get("window")
    if window:
        lo, hi = window[0]
        same = all(list(w) == list(window[0]) for w in window)
        return f"ndgan sample in {units}, window [{lo:g}, {hi:g}]" + ("" if same else " (channel 0)"), (lo, hi)
    if meta.get("percentiles"):
        return f"ndgan sample in {units} (a typical subject's percentile range)", None
    return f"ndgan sample in {units}", None


def grid_cell(meta: dict, shape, fmt: str = "cube") -> np.ndarray:
    """The cell ``[3, 3]`` (rows: the grid axes times their point counts) that samples of the training data sit
    in: its ``cell`` in angstrom (the median of the data's periodic cells); for VTK images also its voxel
    ``spacing`` times the grid size (millimetres for NIfTI data)."""
    if meta.get("cell") is not None:
        return np.asarray(meta["cell"], dtype=np.float64)
    if fmt == "vti" and meta.get("spacing") is not None and len(meta["spacing"]) == len(shape):
        return np.diag(np.asarray(meta["spacing"], dtype=np.float64) * np.array(shape))
    what = "no periodic cell in angstrom" if fmt == "cube" else "no cell or voxel spacing"
    raise ValueError(f"--format {fmt}: the training data recorded {what} to place the grid in; write "
                     f"--format h5, npy{' or vti' if fmt == 'cube' else ''} instead, or train on data that carry "
                     f"a cell (the energy, cube or CIF-framework sources)")


def write_vti(path, sample: np.ndarray, cell: np.ndarray, names) -> None:
    """VTK image data for ParaView: ``sample`` ``[C, n1, n2, n3]`` as one point array per channel, the grid
    axes stepping by ``cell[i] / n_i`` (a non-orthogonal cell as the image's direction matrix)."""
    import pyvista as pv

    shape = sample.shape[1:]
    lengths = np.linalg.norm(cell, axis=1)
    grid = pv.ImageData(dimensions=shape, spacing=tuple(lengths / np.array(shape)), origin=(0.0, 0.0, 0.0))
    grid.direction_matrix = (cell / lengths[:, None]).T  # columns: the unit grid axes
    for name, values in zip(names, sample):
        grid.point_data[str(name)] = np.asarray(values, dtype=np.float32).ravel(order="F")  # x fastest
    grid.save(str(path))


def _ws(G, seeds, truncation_psi):
    z = latents(G, seeds).to(next(G.parameters()).device)
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
    return tile(panels, len(col_seeds) + 1)


@torch.no_grad()
def interpolation_frames(G, seed_a, seed_b, frames=16, truncation_psi=1.0) -> list:
    """Pictures along the straight line in w from ``seed_a``'s latent to ``seed_b``'s."""
    if frames < 2:
        raise ValueError(f"--frames: expected at least 2, got {frames}")
    ws = _ws(G, [seed_a, seed_b], truncation_psi)
    t = torch.linspace(0, 1, frames, device=ws.device).reshape(-1, 1, 1)
    path = ws[0:1].lerp(ws[1:2], t)  # [frames, num_ws, w_dim]
    return [_panel(x) for x in G.synthesis(path, noise_mode="const").float().cpu()]
