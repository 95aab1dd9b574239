"""NVIDIA StyleGAN2-ADA pickles: imported as data, exactly.

The fixtures (tests/data/nvlabs, written by tools/make_nvlabs_fixtures.py) are tiny networks made and pickled
by NVIDIA's own code, with NVIDIA's own outputs: ndgan's import must reproduce them to 1e-5 (relative), and the
pictures of NVIDIA's generate.py for the same seeds. Pickles that must be refused, or whose embedded source
would run code, are written here in NVIDIA's format (``_write``), from the fixtures' records.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ndgan.cli.generate import main as generate_cli
from ndgan.cli.import_nvlabs import main as import_cli
from ndgan.cli.train import main as train_cli
from ndgan.io import checkpoint as ckpt
from ndgan.io import nvlabs
from ndgan.nets import Discriminator, Generator
from ndgan.sampling import load_generator

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests/data/nvlabs"
NAMES = ["skip-resnet-conditional", "orig-orig", "resnet-skip"]


def _close(a, b, rtol=1e-5):
    scale = b.abs().max()
    assert float((a - b).abs().max()) <= rtol * float(scale), float((a - b).abs().max() / scale)


@pytest.mark.parametrize("name", NAMES)
def test_the_import_reproduces_nvidias_own_outputs(name):
    ref = torch.load(FIXTURES / f"{name}.pt", weights_only=True)
    c = ref["c"] if ref["c"].numel() else None
    G = load_generator(FIXTURES / f"{name}.pkl")  # on CPU: float16 blocks in float32, as NVIDIA's force_fp32
    with torch.no_grad():
        _close(G(ref["z"], c, truncation_psi=ref["truncation_psi"], noise_mode="const"), ref["images"])
    nets = nvlabs.read_checkpoint(FIXTURES / f"{name}.pkl")
    D = Discriminator(**dict(nets["D_kwargs"], num_fp16_res=0)).eval()
    D.load_state_dict(nets["D"])
    with torch.no_grad():
        _close(D(ref["images"], c), ref["logits"])
    G_train = Generator(**dict(nets["G_kwargs"], num_fp16_res=0)).eval()  # the pickle's G too, not only G_ema
    G_train.load_state_dict(nets["G"])
    with torch.no_grad():
        _close(G_train(ref["z"], c, truncation_psi=ref["truncation_psi"], noise_mode="const"), ref["images"])


def test_options_carry_over():
    nets = nvlabs.read_checkpoint(FIXTURES / "skip-resnet-conditional.pkl")
    g, d = nets["G_kwargs"], nets["D_kwargs"]
    assert (g["architecture"], g["c_dim"], g["conv_clamp"], g["num_fp16_res"], g["fp16_dtype"]) == \
        ("skip", 3, 256, 2, "float16")
    assert (d["architecture"], d["c_dim"], d["conv_clamp"], d["num_fp16_res"], d["mbstd_group_size"]) == \
        ("resnet", 3, 256, 2, 2)
    assert nets["G"]["mapping.w_avg"].abs().sum() > 0 and "mapping.embed.weight" in nets["G"]
    assert nets["data_metadata"]["value_range"] == [0.0, 255.0]


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_picture_as_nvidias_generate(name, tmp_path, capsys):
    ref = torch.load(FIXTURES / f"{name}.pt", weights_only=True)
    labels = ["--class", str(ref["seed_class"])] if ref["seed_class"] is not None else []
    assert generate_cli([str(FIXTURES / f"{name}.pkl"), "--seeds", "0-2", "--seed-rng", "nvlabs", "--per-seed",
                         *labels, "--out", str(tmp_path)]) == 0, capsys.readouterr().err
    for seed in range(3):
        ours = np.asarray(Image.open(tmp_path / f"seed{seed:04d}.png")).astype(int)
        theirs = ref["seed_pictures"][seed].numpy().astype(int)
        assert ours.shape == theirs.shape and np.abs(ours - theirs).max() <= 1  # rounding of exact .5 only
        assert (ours != theirs).mean() < 0.01


def test_import_writes_a_checkpoint_that_generates_the_same_samples(tmp_path, capsys):
    pkl = FIXTURES / "resnet-skip.pkl"
    assert import_cli([str(pkl), "--out", str(tmp_path / "run")]) == 0
    (path,) = (tmp_path / "run").glob("checkpoint-*.pt")
    state = ckpt.load(path)
    assert {"G", "D", "G_ema", "G_kwargs", "D_kwargs", "config"} <= set(state)
    assert state["config"]["G"]["architecture"] == "resnet" and state["config"]["data"]["shape"] == [32, 32]
    for source, out in ((pkl, "a"), (tmp_path / "run", "b")):
        assert generate_cli([str(source), "--seeds", "0-3", "--format", "npy", "--out", str(tmp_path / out)]) == 0
    assert np.array_equal(np.load(tmp_path / "a/samples.npy"), np.load(tmp_path / "b/samples.npy"))
    assert import_cli([str(pkl), "--out", str(tmp_path / "run")]) == 2  # never overwrites
    assert "already exists" in capsys.readouterr().err
    assert train_cli([str(ROOT / "configs/tiny2d.yaml"), "--out", str(tmp_path / "t"), "--resume", str(pkl)]) == 2
    assert "--init" in capsys.readouterr().err


def test_labels_from_a_file_equal_the_class_flag(tmp_path, capsys):
    pkl = str(FIXTURES / "skip-resnet-conditional.pkl")
    np.save(tmp_path / "labels.npy", np.eye(3, dtype=np.float32)[[2, 2, 2]])
    assert generate_cli([pkl, "--seeds", "0-2", "--class", "2", "--format", "npy", "--out", str(tmp_path / "a")]) == 0
    assert generate_cli([pkl, "--seeds", "0-2", "--labels", str(tmp_path / "labels.npy"), "--format", "npy",
                         "--out", str(tmp_path / "b")]) == 0
    a, b = np.load(tmp_path / "a/samples.npy"), np.load(tmp_path / "b/samples.npy")
    assert np.array_equal(a, b)
    assert generate_cli([pkl, "--seeds", "0-2", "--class", "0", "--format", "npy", "--out", str(tmp_path / "c")]) == 0
    assert not np.array_equal(np.load(tmp_path / "c/samples.npy"), a)  # the label matters
    capsys.readouterr()
    cases = [([pkl, "--seeds", "0-3", "--labels", str(tmp_path / "labels.npy")], "expected [4, 3]"),
             ([pkl, "--class", "3"], "expected 0 to 2"),
             ([pkl], "pass --class K"),
             ([str(FIXTURES / "orig-orig.pkl"), "--class", "0"], "unconditional")]
    for argv, words in cases:
        assert generate_cli([*argv, "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, err


def test_an_imported_model_exports_as_safetensors_and_projects(tmp_path, capsys):
    from ndgan.cli.export import main as export_cli
    from ndgan.cli.project import main as project_cli

    pkl = FIXTURES / "orig-orig.pkl"
    assert export_cli([str(pkl), "--out", str(tmp_path / "g.safetensors")]) == 0
    for source, out in ((pkl, "a"), (tmp_path / "g.safetensors", "b")):
        assert generate_cli([str(source), "--seeds", "0-1", "--format", "npy", "--out", str(tmp_path / out)]) == 0
    assert np.array_equal(np.load(tmp_path / "a/samples.npy"), np.load(tmp_path / "b/samples.npy"))
    assert generate_cli([str(pkl), "--seeds", "5", "--per-seed", "--out", str(tmp_path / "t")]) == 0
    assert project_cli([str(pkl), str(tmp_path / "t/seed0005.png"), "--steps", "3", "--out", str(tmp_path / "p")]) == 0
    assert (tmp_path / "p/projected_w.npy").exists()  # with the pickle's D as the feature network


# ---- pickles that must be refused, written in NVIDIA's format ----

class _Persistent:
    """Pickles as NVIDIA's persistent objects do: ``torch_utils.persistence._reconstruct_persistent_obj(meta)``."""

    def __init__(self, meta):
        self.meta = meta

    def __reduce__(self):
        return sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (self.meta,)


def _meta(record: nvlabs.Record, source="# stub\n"):
    return {"type": "class", "version": 6, "module_src": source, "class_name": record.class_name,
            "state": {"_parameters": dict(record.params), "_buffers": dict(record.buffers),
                      "_modules": {k: _Persistent(_meta(v, source)) for k, v in record.children.items()},
                      "_init_args": (), "_init_kwargs": dict(record.kwargs), "_non_persistent_buffers_set": set()}}


def _write(path, obj):
    fake = types.ModuleType("torch_utils.persistence")
    fake._reconstruct_persistent_obj = lambda meta: meta
    fake._reconstruct_persistent_obj.__module__, fake._reconstruct_persistent_obj.__qualname__ = \
        "torch_utils.persistence", "_reconstruct_persistent_obj"
    saved = {k: sys.modules.get(k) for k in ("torch_utils", "torch_utils.persistence")}
    sys.modules["torch_utils"], sys.modules["torch_utils.persistence"] = types.ModuleType("torch_utils"), fake
    try:
        path.write_bytes(pickle.dumps(obj))
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return path


def _fixture_records(name="orig-orig"):
    return nvlabs.read_pickle(FIXTURES / f"{name}.pkl")


def test_a_pickle_whose_source_would_run_code_imports_as_data(tmp_path):
    marker = tmp_path / "payload-ran"
    source = f"import os\nos.system('touch {marker}')\n"  # what NVIDIA's loader would execute on import
    data = _fixture_records()
    _write(tmp_path / "evil.pkl", {k: _Persistent(_meta(data[k], source)) for k in ("G", "D", "G_ema")})
    G = load_generator(tmp_path / "evil.pkl")
    assert G.z_dim == 8 and not marker.exists()


class _System:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("make, words", [
    (lambda tmp: {"G_ema": _System(f"touch {tmp / 'ran'}")}, ["refused the global", "system"]),
    (lambda tmp: {"G_ema": types.SimpleNamespace(a=1)}, ["refused the global", "types.SimpleNamespace"]),
    (lambda tmp: [1, 2, 3], ["holds a list without StyleGAN2-ADA networks"]),
])
def test_anything_but_network_records_is_refused_by_name(tmp_path, capsys, make, words):
    path = _write(tmp_path / "x.pkl", make(tmp_path))
    assert generate_cli([str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(w in err for w in words), err
    assert not (tmp_path / "ran").exists() and not (tmp_path / "o").exists()


def _edited(tmp, edit, name="orig-orig"):
    data = _fixture_records(name)
    edit(data)
    return _write(tmp / "edited.pkl", {k: _Persistent(_meta(v)) for k, v in data.items() if k in ("G", "D", "G_ema")})


def _stylegan3(data):
    synthesis = data["G_ema"].children["synthesis"]
    synthesis.children = {"input": synthesis.children["b4"], **synthesis.children}
    synthesis.children["input"].class_name = "SynthesisInput"


def _relu_mapping(data):
    data["G_ema"].kwargs["mapping_kwargs"] = {"num_layers": 2, "activation": "relu"}


def _wider_const(data):
    block = data["G_ema"].children["synthesis"].children["b4"]
    block.params["const"] = torch.zeros(9, 4, 4)


@pytest.mark.parametrize("edit, words", [
    (_stylegan3, ["SynthesisInput", "StyleGAN3"]),
    (_relu_mapping, ["activation='relu'", "no ndgan equivalent"]),
    (_wider_const, ["synthesis.blocks.0.const", "(9, 4, 4)", "(8, 4, 4)"]),
    (lambda d: d["G_ema"].kwargs.update(img_resolution=24), ["img_resolution 24"]),
    (lambda d: d["G_ema"].kwargs.update(extra_option=1), ["extra_option"]),
])
def test_what_cannot_be_mapped_exactly_is_refused(tmp_path, capsys, edit, words):
    path = _edited(tmp_path, edit)
    assert generate_cli([str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(w in err for w in words), err


def test_a_truncated_pickle_is_one_line(tmp_path, capsys):
    data = (FIXTURES / "orig-orig.pkl").read_bytes()
    (tmp_path / "cut.pkl").write_bytes(data[: len(data) // 2])
    assert generate_cli([str(tmp_path / "cut.pkl"), "--out", str(tmp_path / "o")]) == 2
    assert "truncated" in capsys.readouterr().err


# ---- against NVIDIA's code itself, where its source is here ----

def _nvidia_source():
    given = os.environ.get("NDGAN_NVLABS_SOURCE")
    if given:
        return Path(given)
    mirror = ROOT.parent / ".mirror/NVlabs+stylegan2-ada-pytorch/repo"
    return mirror if mirror.exists() else None


@pytest.mark.skipif(_nvidia_source() is None, reason="needs NVIDIA's stylegan2-ada-pytorch source "
                    "(NDGAN_NVLABS_SOURCE); the committed fixtures test the same in CI")
def test_random_configurations_against_nvidias_networks(tmp_path):
    source = _nvidia_source()
    if not (source / "training").exists():  # a bare mirror: check out a work tree
        subprocess.run(["git", "clone", "-q", str(source), str(tmp_path / "nv")], check=True)
        source = tmp_path / "nv"
    script = f"""
import pickle, sys, torch
sys.path.insert(0, {str(source)!r})
from training.networks import Generator, Discriminator
torch.manual_seed(1)
out = {{}}
for i, (ga, da, c_dim, res, clamp, fp16, layers) in enumerate([("skip", "resnet", 0, 32, None, 0, 8),
        ("resnet", "orig", 5, 16, 256, 3, 1), ("orig", "skip", 2, 64, 128, 1, 3)]):
    G = Generator(z_dim=12, c_dim=c_dim, w_dim=10, img_resolution=res, img_channels=1 + i,
                  mapping_kwargs=dict(num_layers=layers),
                  synthesis_kwargs=dict(channel_base=256, channel_max=16, architecture=ga, conv_clamp=clamp,
                                        num_fp16_res=fp16)).eval()
    D = Discriminator(c_dim=c_dim, img_resolution=res, img_channels=1 + i, architecture=da, channel_base=256,
                      channel_max=16, conv_clamp=clamp, num_fp16_res=fp16).eval()
    with torch.no_grad():
        for n, p in [*G.named_parameters(), *D.named_parameters()]:
            if n.endswith(("bias", "noise_strength")):
                p.normal_(0, 0.3)
        G.mapping.w_avg.normal_()
        z, c = torch.randn(4, 12), torch.randn(4, c_dim)
        img = G(z, c, truncation_psi=0.5, noise_mode="const", force_fp32=True)
        out[i] = dict(z=z, c=c, img=img, logits=D(img, c, force_fp32=True))
    with open({str(tmp_path)!r} + f"/{{i}}.pkl", "wb") as f:
        pickle.dump(dict(G=G, D=D, G_ema=G), f)
torch.save(out, {str(tmp_path / "out.pt")!r})
"""
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    out = torch.load(tmp_path / "out.pt", weights_only=True)
    for i, ref in out.items():
        nets = nvlabs.read_checkpoint(tmp_path / f"{i}.pkl")
        G = Generator(**dict(nets["G_kwargs"], num_fp16_res=0)).eval()
        G.load_state_dict(nets["G_ema"])
        D = Discriminator(**dict(nets["D_kwargs"], num_fp16_res=0)).eval()
        D.load_state_dict(nets["D"])
        c = ref["c"] if ref["c"].numel() else None
        with torch.no_grad():
            _close(G(ref["z"], c, truncation_psi=0.5, noise_mode="const"), ref["img"])
            _close(D(ref["img"], c), ref["logits"])
