"""The StyleGAN2 paper's ablation presets (configs/ablation): each differs from the one before in exactly
what the table says, each trains, and StyleGAN's regularisation without laziness is one optimiser step."""

import copy

import pytest
import torch

from ndgan import losses
from ndgan.train import load_config, train
from ndgan.train.config import to_dict
from ndgan.train.state import TrainingState
from ndgan.train.step import TrainingStep, lazy_adam

TINY = ["data.source=procedural", "data.shape=[16,16]", "data.channels=1", "data.options={length: 64}",
        "G.z_dim=16", "G.w_dim=16", "G.mapping_layers=1", "G.channel_base=128", "G.channel_max=16",
        "D.channel_base=128", "D.channel_max=16", "train.batch=4", "train.kimg=0.008", "train.snapshot_kimg=0.008",
        "train.fade_kimg=0.002", "train.stable_kimg=0.002"]
LADDER = [("A", None, set()),
          ("B", "A", {"G.style_block"}),
          ("C", "B", {"train.lazy_reg"}),  # (r1_interval 16 is the default, which A and B do not use)
          ("D", "C", {"train.pl_weight"}),
          ("E", "D", {"G.architecture", "D.architecture", "train.growing"}),
          ("F", "E", {"G.channel_base", "D.channel_base"}),
          ("A-large", "A", {"G.channel_base", "D.channel_base"})]


def flat(cfg):
    return {f"{s}.{k}": v for s, section in to_dict(cfg).items() for k, v in section.items()}


@pytest.mark.parametrize("name, before, changed", LADDER[1:])
def test_each_preset_changes_exactly_its_row_of_the_table(name, before, changed):
    a, b = flat(load_config(f"configs/ablation/{before}.yaml")), flat(load_config(f"configs/ablation/{name}.yaml"))
    assert {k for k in a if a[k] != b[k]} == changed


def test_config_a_is_baseline_stylegan():
    cfg = load_config("configs/ablation/A.yaml")
    assert (cfg.G.style_block, cfg.G.architecture, cfg.D.architecture) == ("adain", "orig", "orig")
    assert cfg.train.growing and not cfg.train.lazy_reg and cfg.train.pl_weight == 0
    f = load_config("configs/ablation/F.yaml")
    assert (f.G.style_block, f.G.architecture, f.D.architecture, f.train.growing) == ("demod", "skip", "resnet", False)
    assert f.G.channel_base == 2 * cfg.G.channel_base and f.train.lazy_reg and f.train.pl_weight == 2


@pytest.mark.parametrize("name", [name for name, *_ in LADDER])
def test_every_preset_trains_on_any_data_through_overrides(name, tmp_path):
    overrides = [*TINY]
    if name in ("F", "A-large"):
        overrides = [o.replace("channel_base=128", "channel_base=256") for o in overrides]
    out = train(load_config(f"configs/ablation/{name}.yaml", overrides), tmp_path / name)
    state = torch.load(out / "checkpoint-000000008.pt", weights_only=True)
    assert state["G_kwargs"]["style_block"] == ("adain" if name in ("A", "A-large") else "demod")
    grows = name in ("A", "B", "C", "D", "A-large")
    assert state["G_kwargs"]["progressive"] == grows and (state["growth"] is not None) == grows
    if grows:  # 8 samples: the base level for 2, level 1 fading in 2-4, alone 4-6, level 2 fading in 6-8
        assert state["growth"] == {"level": 2, "alpha": pytest.approx(1.0)}


def test_without_lazy_regularisation_r1_joins_the_main_loss_in_one_uncorrected_step():
    cfg = load_config("configs/ablation/B.yaml", [*TINY, "train.precision=float32", "train.style_mixing=0",
                                                 "train.r1_gamma=4", "train.growing=false",
                                                 "G.architecture=skip", "D.architecture=resnet"])
    torch.manual_seed(0)
    s = TrainingState(cfg, 0, torch.device("cpu"))
    step = TrainingStep(s, cfg, 1, torch.device("cpu"))
    reals = torch.rand(4, 1, 16, 16) * 2 - 1
    D = copy.deepcopy(s.D)
    opt = lazy_adam(D.parameters(), cfg.train.d_lr, cfg.train.betas, 0)  # no correction
    assert s.D_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == cfg.train.d_lr
    torch.manual_seed(1)
    step.d_main(reals, None, with_r1=True)
    torch.manual_seed(1)  # the same latents, by hand: the logistic loss plus gamma/2 |grad D(real)|^2, one step
    z = torch.randn(4, s.G.z_dim)
    with torch.no_grad():
        fakes = s.G.synthesis(s.G.mapping(z, None))
    x = reals.detach().requires_grad_(True)
    real_logits = D(x)
    loss = losses.d_logistic(real_logits, D(fakes)).mean() + 2.0 * losses.r1_penalty(real_logits, x).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    for (name, p), q in zip(s.D.named_parameters(), D.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)
