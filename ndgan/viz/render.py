"""Off-screen renders of volumes with pyvista (no display needed): volume rendering, isosurfaces, slices.

``render(volume, mode, ...)`` returns the picture as a uint8 array ``[H, W, 3]``; voxel spacing is respected
so anisotropic volumes keep their world-space proportions. Transfer functions: for energy grids (units K)
the low, attractive energies are opaque and the repulsive walls transparent; otherwise (MRI, generic) the
bright voxels are opaque.
"""

from __future__ import annotations

import numpy as np

MODES = ("volume", "isosurface", "slices")


def _pyvista():
    try:
        import pyvista as pv
    except ImportError:
        raise ImportError("rendering needs pyvista: pip install 'ndgan[render]'") from None
    pv.OFF_SCREEN = True
    return pv


def render(volume, mode="volume", spacing=(1.0, 1.0, 1.0), iso=None, units=None, window_size=(512, 512),
           azimuth=0.0, cmap=None) -> np.ndarray:
    """Render a 3D array ``[D, H, W]`` (one channel) and return ``[H, W, 3]`` uint8.

    ``iso``: the isosurface value (default: the median); ``units='K'`` selects the energy-grid transfer
    function; ``azimuth`` turns the camera (degrees) for turntables.
    """
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    volume = np.asarray(volume, dtype=np.float32)
    if volume.ndim != 3:
        raise ValueError(f"volume: expected a 3D array [D, H, W], got shape {volume.shape}")
    if not np.isfinite(volume).all():
        raise ValueError("volume: contains NaN or Inf")
    pv = _pyvista()
    grid = pv.ImageData(dimensions=volume.shape, spacing=tuple(float(s) for s in spacing))
    grid.point_data["value"] = volume.flatten(order="F")
    energy = units == "K"
    lo, hi = float(volume.min()), float(volume.max())
    # Three short labels (five in scientific notation overlap at 512 px), titled with the units when known.
    bar = dict(title=units or "value", n_labels=3, fmt="%.3g")
    plotter = pv.Plotter(off_screen=True, window_size=list(window_size))
    plotter.set_background("white")
    if mode == "volume":
        # Opacity ramps: energies opaque where attractive (low), MRI opaque where bright.
        opacity = [0.9, 0.6, 0.3, 0.05, 0.0, 0.0] if energy else [0.0, 0.0, 0.05, 0.3, 0.6, 0.9]
        plotter.add_volume(grid, scalars="value", cmap=cmap or ("viridis" if energy else "bone"), opacity=opacity,
                           clim=(lo, hi), show_scalar_bar=True, scalar_bar_args=bar)
    elif mode == "isosurface":
        level = float(np.median(volume)) if iso is None else float(iso)
        if not lo < level < hi:
            raise ValueError(f"iso: {level:g} is outside the volume's range ({lo:g}, {hi:g})")
        plotter.add_mesh(grid.contour([level], scalars="value"), color="steelblue", smooth_shading=True)
        plotter.add_mesh(grid.outline(), color="black")
    else:
        plotter.add_mesh(grid.slice_orthogonal(), scalars="value", cmap=cmap or ("viridis" if energy else "gray"),
                         clim=(lo, hi), scalar_bar_args=bar)
        plotter.add_mesh(grid.outline(), color="black")
    plotter.camera_position = "iso"
    plotter.camera.azimuth = azimuth
    image = plotter.screenshot(return_img=True)
    plotter.close()
    return np.asarray(image)[..., :3].copy()


def turntable(volume, frames=24, **kwargs) -> list:
    """Renders at ``frames`` azimuths around the volume."""
    return [render(volume, azimuth=360.0 * i / frames, **kwargs) for i in range(frames)]
