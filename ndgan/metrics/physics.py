"""Adsorption properties of probe-energy grids (statistical mechanics, no learned weights), as the 3D GAN
studies of porous materials compare generated and real energy grids.

For a grid of probe energies E (in kelvin, E / k_B) at temperature T, every grid point is one Widom test
insertion of the probe:

- Henry coefficient (dimensionless Boltzmann average): ``K_H = <exp(-E/T)>``. K_H times the framework's
  number density over ``R T`` is the usual mol/(kg Pa); the grids carry no density, so this is what differs
  between cells. It spans orders of magnitude, so its distribution is compared in log10.
- Heat of adsorption at infinite dilution: ``Q = -<E exp(-E/T)> / <exp(-E/T)> + T`` (kelvin), reported in
  kJ/mol (times R = 8.314462618e-3 kJ/(mol K)).
- Void fraction: the fraction of grid points where the probe is attracted (``E < 0``), a geometric proxy of the
  pore volume for this probe.

Generated values in [-1, 1] are mapped back to kelvin with the dataset's ``value_range``, the inverse of the
normalisation in ``ndgan.data.energy``.
"""

from __future__ import annotations

import torch

from ..data.units import to_physical
from .distances import wasserstein_1d

R_KJ_PER_MOL_K = 8.314462618e-3
DEFAULT_TEMPERATURE_K = 298.0
PROPERTIES = ("log10_henry", "heat_kj_mol", "void_fraction")


def to_kelvin(x: torch.Tensor, value_range) -> torch.Tensor:
    """Undo ``x = 2 (E - lo) / (hi - lo) - 1`` in float64, without clipping (``data.units.to_physical``)."""
    return to_physical(x.double(), {"value_range": list(value_range)}, clamp=False)


def grid_properties(energy_k: torch.Tensor, temperature: float = DEFAULT_TEMPERATURE_K) -> dict:
    """Per-grid properties of energies ``[N, C, *S]`` in kelvin (every channel a grid of its own) -> dict of
    ``[N, C]`` float64 tensors: log10_henry, heat_kj_mol, void_fraction."""
    if energy_k.ndim < 3:
        raise ValueError(f"grid_properties: expected energies [N, C, *S], got {tuple(energy_k.shape)}")
    flat = energy_k.double().flatten(2)  # [N, C, P]
    # log <exp(-E/T)> without overflow: logsumexp over the grid minus the log of its size.
    log_weights = -flat / temperature
    log_mean = torch.logsumexp(log_weights, -1) - torch.log(torch.tensor(float(flat.shape[-1]), dtype=torch.float64))
    weights = torch.softmax(log_weights, -1)  # Boltzmann weights normalised over the grid
    return {
        "log10_henry": log_mean / torch.log(torch.tensor(10.0, dtype=torch.float64)),
        "heat_kj_mol": (-(weights * flat).sum(-1) + temperature) * R_KJ_PER_MOL_K,
        "void_fraction": (flat < 0).double().mean(-1),
    }


def compare(generated: dict, real: dict) -> dict:
    """Distribution distances (1D Wasserstein, in each property's units) between per-grid properties
    (``[N, C]`` tensors), per channel and averaged over channels, with the real-vs-real baseline: the real grids
    split in halves (even and odd index) compared with each other."""
    out = {}
    for name in PROPERTIES:
        gen, ref = generated[name].reshape(len(generated[name]), -1), real[name].reshape(len(real[name]), -1)
        if len(ref) < 2:
            raise ValueError(f"energy: needs at least 2 real grids, got {len(ref)}")
        channels = range(ref.shape[1])
        per = [wasserstein_1d(gen[:, c], ref[:, c]) for c in channels]
        base = [wasserstein_1d(ref[0::2, c], ref[1::2, c]) for c in channels]
        for c in channels:
            out[f"{name}_w1_c{c}"] = per[c]
        out[f"{name}_w1"] = sum(per) / len(per)
        out[f"{name}_w1_baseline"] = sum(base) / len(base)
        out[f"{name}_mean"] = float(gen.mean())
        out[f"{name}_mean_real"] = float(ref.mean())
    return out
