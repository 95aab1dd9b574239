"""examples/train_faces_2d.py runs as a user would run it (two training steps at 32x32): once without an image
folder (it says it falls back to the procedural data) and once on a folder of PNGs made here (it trains on
them); each time the sample grid, style-mixing grid and interpolation GIF decode with the sizes and frame
counts the options ask for."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
RESOLUTION = 32
ROWS, COLS = 4, 5  # the script's style-mixing figure: row seeds 0-3, column seeds 10-14
NOTE = "so this run uses the procedural 2D data"


def run_example(*args, root=ROOT):
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
    command = [sys.executable, "examples/train_faces_2d.py", "--kimg", "0.016", *args]  # batch 8: two steps
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def check_figures(out: Path, stdout: str, frames: int):
    """The three pictures exist where the script says, decode, and have the shapes implied by the figure."""
    paths = {name: out / name for name in ("samples.png", "style_mixing.png", "interpolation.gif")}
    for path in paths.values():
        assert f"wrote {path}" in stdout, (path, stdout)
    assert (out / "checkpoint-000000016.pt").is_file() and (out / "samples-000000016.png").is_file()

    with Image.open(paths["interpolation.gif"]) as gif:
        assert gif.format == "GIF" and gif.n_frames == frames
        side = gif.size[0]
        pictures = []
        for i in range(frames):
            gif.seek(i)
            pictures.append(np.asarray(gif.convert("RGB")))
    assert gif.size == (side, side) and side % RESOLUTION == 0  # one sample, perhaps enlarged by whole pixels
    assert not np.array_equal(pictures[0], pictures[-1]), "the interpolation goes from one seed to another"

    def tiled(rows, cols):  # panels of side x side with 2-pixel gaps (ndgan.viz.grid)
        return cols * (side + 2) - 2, rows * (side + 2) - 2

    with Image.open(paths["style_mixing.png"]) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        assert im.size == tiled(ROWS + 1, COLS + 1)  # plus a header row (column seeds) and column (row seeds)
    with Image.open(paths["samples.png"]) as im:
        assert im.format == "PNG" and im.mode == "RGB" and im.size == tiled(4, 4)  # seeds 0-15
        assert np.asarray(im).std() > 1, "the sample grid is blank"


def test_without_images_falls_back_to_procedural_data(tmp_path):
    # The script looks for the thumbnails beside itself (ROOT/data/...): run it from a checkout copy without
    # them, so the fallback is exercised even where a developer has FFHQ in this checkout.
    checkout = tmp_path / "checkout"
    (checkout / "examples").mkdir(parents=True)
    (checkout / "examples" / "train_faces_2d.py").write_text((ROOT / "examples" / "train_faces_2d.py").read_text())
    (checkout / "configs").symlink_to(ROOT / "configs")
    out = tmp_path / "run"
    stdout = run_example("--out", str(out), "--frames", "5", root=checkout)
    assert str(checkout / "data" / "ffhq-thumbnails128x128") in stdout  # the note names the folder it looked in
    assert stdout.count(NOTE) == 1 and "--images FOLDER" in stdout
    assert yaml.safe_load((out / "config.yaml").read_text())["data"]["source"] == "procedural"
    check_figures(out, stdout, frames=5)


def test_trains_on_an_image_folder(tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):  # a smooth random colour field per image, as PNGs like the FFHQ thumbnails
        coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((RESOLUTION, RESOLUTION), Image.BILINEAR).save(folder / f"{i:05d}.png")
    out = tmp_path / "run"
    stdout = run_example("--images", str(folder), "--out", str(out), "--frames", "3")
    assert NOTE not in stdout and f"training on the images in {folder}" in stdout
    data = yaml.safe_load((out / "config.yaml").read_text())["data"]
    assert data["source"] == "images" and data["path"] == str(folder)
    assert data["shape"] == [RESOLUTION, RESOLUTION] and data["options"] == {"xflip": True}
    check_figures(out, stdout, frames=3)
