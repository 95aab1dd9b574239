"""examples/train_energy_grids.py runs as a user would run it (one training step, 4 samples): the HDF5 export is
in kelvin within the training data's range, the render is a picture, and the printed physics are those of the
exported file and of the real data."""

import math
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from ndgan.data import open_dataset
from ndgan.data.energy import ENERGY_RANGE_K
from ndgan.metrics import physics

ROOT = Path(__file__).resolve().parents[2]
CELLS, SAMPLES = 8, 4  # batch 8 needs 8 cells; kimg 0.008 is one step


def test_train_energy_grids_example(tmp_path):
    out = tmp_path / "energy"
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
    command = [sys.executable, "examples/train_energy_grids.py", "--out", str(out), "--cells", str(CELLS),
               "--kimg", "0.008", "--samples", str(SAMPLES)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    stdout = result.stdout

    # Data and run folder where the script says they are.
    data_path, h5_path, render_path = out / "energy.h5", out / "samples" / "samples.h5", out / "render.png"
    assert (out / "run" / "checkpoint-000000008.pt").is_file()
    for path in (data_path, out / "run", h5_path, render_path):
        assert str(path) in stdout, (path, stdout)

    # The export: [N, 2, 32, 32, 32] in kelvin, inside the clip range of the training data, not left in [-1, 1].
    with h5py.File(h5_path, "r") as h5:
        ds = h5["data"]
        kelvin, attrs = ds[:], dict(ds.attrs)
    assert kelvin.shape == (SAMPLES, 2, 32, 32, 32)
    assert attrs["units"] == "K"
    assert list(attrs["value_range"]) == list(ENERGY_RANGE_K)
    assert list(attrs["channel_names"]) == ["spherical_pore", "cubic_pore"]
    assert list(attrs["seeds"]) == list(range(SAMPLES))
    lo, hi = ENERGY_RANGE_K
    assert np.isfinite(kelvin).all()
    assert lo - 1e-2 <= kelvin.min() and kelvin.max() <= hi + 1e-2
    assert kelvin.max() - kelvin.min() > 100, "values look normalised, not kelvin"
    assert "in K" in stdout

    # The render: a real 512 x 512 picture, not a blank canvas.
    with Image.open(render_path) as im:
        assert im.format == "PNG" and im.size == (512, 512)
        picture = np.asarray(im.convert("RGB"))
    assert picture.std() > 5 and len(np.unique(picture.reshape(-1, 3), axis=0)) > 50

    # The physics table: one row per property, the generated and real means recomputed from the files.
    real = open_dataset("energy", path=data_path, n=CELLS)
    real_kelvin = physics.to_kelvin(torch.stack([real[i] for i in range(len(real))]), real.metadata["value_range"])
    expected = physics.compare(physics.grid_properties(torch.from_numpy(kelvin)),
                               physics.grid_properties(real_kelvin))
    rows = {line.split()[0]: [float(v) for v in line.split()[1:]]
            for line in stdout.splitlines() if line.startswith("  ") and line.split()[0] in physics.PROPERTIES}
    assert set(rows) == set(physics.PROPERTIES), stdout
    for name, (gen_mean, real_mean, w1, baseline) in rows.items():
        assert gen_mean == pytest.approx(expected[f"{name}_mean"], rel=1e-3, abs=1e-6), name
        assert real_mean == pytest.approx(expected[f"{name}_mean_real"], rel=1e-3, abs=1e-6), name
        assert w1 == pytest.approx(expected[f"{name}_w1"], rel=1e-3, abs=1e-6), name
        assert baseline == pytest.approx(expected[f"{name}_w1_baseline"], rel=1e-3, abs=1e-6), name
        assert all(math.isfinite(v) for v in (gen_mean, real_mean, w1, baseline)) and w1 >= 0 and baseline >= 0
    assert 0 <= rows["void_fraction"][0] <= 1 and 0 < rows["void_fraction"][1] < 1
