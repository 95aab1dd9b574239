"""Adsorption properties of probe-energy grids compared between generated and real sets (the physics lives in
``ndgan.data.properties``, where the energy sources compute their labels with it)."""

from __future__ import annotations

from ..data.properties import (DEFAULT_TEMPERATURE_K, PROPERTIES, R_KJ_PER_MOL_K, grid_properties,  # noqa: F401
                               to_kelvin)
from .distances import wasserstein_1d

__all__ = ["DEFAULT_TEMPERATURE_K", "PROPERTIES", "R_KJ_PER_MOL_K", "compare", "grid_properties", "to_kelvin"]


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
