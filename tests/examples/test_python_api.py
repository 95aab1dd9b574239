"""examples/python_api.py runs as a user would run it, and its hand-made truncation and style mixing equal the
library's: the script prints the largest differences, which must be float rounding at most."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
GAP = re.compile(r"max \|by hand - (.+?)\| = (\S+)$", re.MULTILINE)


def test_python_api_example(tmp_path):
    from PIL import Image

    import ndgan

    out = tmp_path / "api"
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run([sys.executable, "examples/python_api.py", "--out", str(out)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    # Both runs left their checkpoint, and the 2D one holds the generator the script trained.
    assert (out / "run2d" / "checkpoint-000000032.pt").is_file()
    assert (out / "run3d" / "checkpoint-000000008.pt").is_file()
    G = ndgan.load_generator(out / "run2d")
    assert G.kimg == 0.032 and tuple(G.shape) == (32, 32) and G.channels == 3

    # Truncation in w, in the output and via export.generate; style mixing; 3D truncation.
    gaps = GAP.findall(result.stdout)
    assert [name for name, _ in gaps] == ["G.mapping(z, truncation_psi)", "G(z, truncation_psi)",
                                          "export.generate(G, seeds, psi)", "style_mixing_grid",
                                          "G(z, truncation_psi)"], result.stdout
    for name, value in gaps:
        assert float(value) < 1e-5, (name, value)

    # The pictures decode; the style-mixing figure is a square 4 x 4 grid with its white corner.
    for name in ("truncated.png", "style_mixing.png", "volumes.png"):
        with Image.open(out / name) as im:
            picture = np.asarray(im.convert("RGB"))
        assert picture.size and picture.std() > 0, name
    with Image.open(out / "style_mixing.png") as im:
        mixing = np.asarray(im)
    assert mixing.shape[0] == mixing.shape[1] and mixing.shape[2] == 3
    assert (mixing[:8, :8] == 255).all()
