"""Adsorption properties of probe-energy grids (statistical mechanics, no learned weights): what the 3D GAN
studies of porous materials compare generated and real energy grids by, and what the energy sources attach
as conditioning labels (``LABELS``).

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

from .units import to_physical

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



#: Conditioning labels the energy sources compute (``data.options.labels``): name -> (grid_properties key, unit).
LABELS = {"heat_of_adsorption": ("heat_kj_mol", "kJ/mol"), "henry": ("log10_henry", "log10"),
          "void_fraction": ("void_fraction", "fraction")}


def label_values(x: torch.Tensor, value_range, names, channel: int = 0,
                 temperature: float = DEFAULT_TEMPERATURE_K) -> torch.Tensor:
    """The properties ``names`` (keys of ``LABELS``) of grids ``x`` ``[N, C, *S]`` in [-1, 1], channel
    ``channel``, in their units: ``[N, len(names)]`` float64."""
    props = grid_properties(to_kelvin(x[:, channel:channel + 1], value_range), temperature)
    return torch.stack([props[LABELS[n][0]][:, 0] for n in names], 1)


def check_label_names(names, where: str = "data.options.labels") -> list:
    if not isinstance(names, (list, tuple)) or not names or len(set(names)) != len(names):
        raise ValueError(f"{where}: expected a list of distinct names from {list(LABELS)}, got {names!r}")
    bad = [n for n in names if n not in LABELS]
    if bad:
        raise ValueError(f"{where}: unknown label {bad[0]!r}; the energy grids' labels are {list(LABELS)}")
    return list(names)


def write_properties(h5, grids, value_range, done: int, total: int) -> None:
    """Store every ``LABELS`` property of ``grids`` ``[B, C, *S]`` (in [-1, 1]) per channel into the open HDF5
    file's ``properties/<name>`` ``[total, C]`` datasets, at rows ``done`` onwards."""
    group = h5.require_group("properties")
    for c in range(grids.shape[1]):
        values = label_values(grids, value_range, list(LABELS), c)
        for i, name in enumerate(LABELS):
            if name not in group:
                group.create_dataset(name, shape=(total, grids.shape[1]), dtype="float64")
                group[name].attrs["units"] = LABELS[name][1]
            group[name][done:done + len(grids), c] = values[:, i].numpy()
