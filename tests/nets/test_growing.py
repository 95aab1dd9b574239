"""Progressive growing: the phase plan, the transport between levels, and G and D at every phase, checked
against the plain networks and against what each phase must ignore."""

import pytest
import torch

from ndgan import ops
from ndgan.nets import Discriminator, Generator
from ndgan.nets.growing import fade_reals, from_full, schedule, to_full

SMALL = dict(channel_base=256, channel_max=16)


@pytest.mark.parametrize("kimg, expected", [
    (0, (0, 1.0)), (0.999, (0, 1.0)),  # the base level alone for stable_kimg = 1
    (1, (1, 0.0)), (2, (1, 0.5)), (2.999, (1, 0.9995)),  # level 1 fades in over fade_kimg = 2 ...
    (3, (1, 1.0)), (3.999, (1, 1.0)),  # ... then trains alone for 1
    (4, (2, 0.0)), (5, (2, 0.5)), (6, (2, 1.0)), (100, (2, 1.0)),  # the top level stays on
])
def test_the_schedule_fades_in_each_level_then_holds_it(kimg, expected):
    level, alpha = schedule(round(kimg * 1000), levels=3, fade_kimg=2, stable_kimg=1)
    assert level == expected[0] and alpha == pytest.approx(expected[1])


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_copies_and_box_averages_are_inverse_and_average_each_box(nd):
    x = torch.randn(2, 3, *[3 + i for i in range(nd)], dtype=torch.float64)
    big = to_full(x, 4)
    assert big.shape[2:] == tuple(4 * s for s in x.shape[2:])
    torch.testing.assert_close(from_full(big, 4), x)
    y = torch.randn_like(big)
    index = (1, 2, *[1] * nd)  # one box of 4^nd samples, averaged by hand
    box = y[(1, 2, *[slice(4, 8)] * nd)]
    torch.testing.assert_close(from_full(y, 4)[index], box.mean())


def _d_pair(nd, shape, base):
    torch.manual_seed(0)
    grown = Discriminator(nd, shape, 2, architecture="orig", base_shape=base, progressive=True, **SMALL).double()
    plain = Discriminator(nd, shape, 2, architecture="orig", base_shape=base, **SMALL).double()
    plain.load_state_dict({k: v for k, v in grown.state_dict().items() if k in plain.state_dict()})
    return grown, plain


@pytest.mark.parametrize("nd, shape, base", [(1, (16,), (4,)), (2, (8, 12), (2, 3)), (3, (8, 8, 16), (2, 2, 4))])
def test_a_grown_discriminator_at_the_top_is_the_plain_one(nd, shape, base):
    grown, plain = _d_pair(nd, shape, base)
    x = torch.randn(4, 2, *shape, dtype=torch.float64)
    torch.testing.assert_close(grown(x), plain(x))


@pytest.mark.parametrize("nd, shape, base", [(2, (8, 12), (2, 3)), (3, (8, 8, 16), (2, 2, 4))])
def test_a_discriminator_at_a_level_sees_only_that_levels_box_averages(nd, shape, base):
    grown, _ = _d_pair(nd, shape, base)
    grown.growth.set(1, 1.0)  # level 1 of 3: boxes of 2 per axis
    x = torch.randn(4, 2, *shape, dtype=torch.float64)
    detail = torch.randn_like(x)
    detail = detail - to_full(from_full(detail, 2), 2)  # zero mean in every box
    torch.testing.assert_close(grown(x + detail), grown(x))
    assert not torch.allclose(grown(x + to_full(torch.randn_like(from_full(x, 2)), 2)), grown(x))


def test_a_discriminator_at_the_start_of_a_fade_is_the_level_below():
    grown, _ = _d_pair(2, (16, 16), (4, 4))
    f = ops.setup_filter(ops.DEFAULT_TAPS)
    x = torch.randn(4, 2, 16, 16, dtype=torch.float64)
    grown.growth.set(2, 0.0)  # the top level, fading in from nothing
    faded = grown(x)
    grown.growth.set(1, 1.0)  # the level below, on the FIR-down-sampled input
    torch.testing.assert_close(faded, grown(to_full(ops.downsample(x, f), 2)))
    grown.growth.set(2, 1.0)
    full = grown(x)
    grown.growth.set(2, 0.3)
    middle = grown(x)
    assert not torch.allclose(middle, faded) and not torch.allclose(middle, full)


def test_reals_at_a_level_are_fir_down_sampled_copies_and_blend_during_the_fade():
    f = ops.setup_filter(ops.DEFAULT_TAPS)
    x = torch.randn(3, 1, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(fade_reals(x, 2, 1.0, 3, f), x)  # the top level: the reals as they are
    half = ops.downsample(x, f)
    torch.testing.assert_close(fade_reals(x, 1, 1.0, 3, f), to_full(half, 2))
    start = fade_reals(x, 2, 0.0, 3, f)  # a fade's start: the level below, FIR up-sampled
    torch.testing.assert_close(start, ops.upsample(half, f))
    torch.testing.assert_close(fade_reals(x, 2, 0.25, 3, f), 0.75 * start + 0.25 * x)


def test_growing_is_refused_for_the_new_architectures():
    with pytest.raises(ValueError, match="architecture: progressive growing"):
        Discriminator(2, (16, 16), 1, architecture="resnet", progressive=True, **SMALL)
    with pytest.raises(ValueError, match="architecture: progressive growing"):
        Generator(2, (16, 16), 1, architecture="skip", progressive=True, **SMALL)


def _g_pair(nd, shape, base, style_block="demod"):
    torch.manual_seed(0)
    kw = dict(z_dim=8, w_dim=8, mapping_layers=1, architecture="orig", base_shape=base, style_block=style_block, **SMALL)
    grown = Generator(nd, shape, 2, progressive=True, **kw).double().eval()
    plain = Generator(nd, shape, 2, **kw).double().eval()
    plain.load_state_dict({k: v for k, v in grown.state_dict().items() if k in plain.state_dict()})
    return grown, plain


@pytest.mark.parametrize("style_block", ["demod", "adain"])
@pytest.mark.parametrize("nd, shape, base", [(1, (16,), (4,)), (2, (8, 12), (2, 3)), (3, (8, 8, 16), (2, 2, 4))])
def test_a_grown_generator_at_the_top_is_the_plain_one(nd, shape, base, style_block):
    grown, plain = _g_pair(nd, shape, base, style_block)
    assert grown.num_ws == plain.num_ws
    z = torch.randn(3, 8, dtype=torch.float64)
    torch.testing.assert_close(grown(z, noise_mode="const"), plain(z, noise_mode="const"))


@pytest.mark.parametrize("style_block", ["demod", "adain"])
def test_a_generator_at_a_level_uses_only_its_blocks_and_copies_its_output_up(style_block):
    grown, _ = _g_pair(2, (8, 12), (2, 3), style_block)
    grown.synthesis.growth.set(1, 1.0)
    ws = grown.mapping(torch.randn(3, 8, dtype=torch.float64))
    img = grown.synthesis(ws, noise_mode="const")
    assert img.shape == (3, 2, 8, 12)
    torch.testing.assert_close(to_full(from_full(img, 2), 2), img)  # constant over each 2x2 box
    with torch.no_grad():
        for p in grown.synthesis.blocks[2].parameters():  # the top block is not grown yet
            p.add_(1.0)
    torch.testing.assert_close(grown.synthesis(ws, noise_mode="const"), img)


@pytest.mark.parametrize("style_block", ["demod", "adain"])
def test_a_generator_at_the_start_of_a_fade_is_the_level_below_up_sampled(style_block):
    grown, _ = _g_pair(2, (16, 16), (4, 4), style_block)
    f = ops.setup_filter(ops.DEFAULT_TAPS)
    ws = grown.mapping(torch.randn(3, 8, dtype=torch.float64))
    grown.synthesis.growth.set(1, 1.0)
    below = from_full(grown.synthesis(ws, noise_mode="const"), 2)  # [N, C, 8, 8]
    grown.synthesis.growth.set(2, 0.0)
    torch.testing.assert_close(grown.synthesis(ws, noise_mode="const"), ops.upsample(below, f))
    grown.synthesis.growth.set(2, 1.0)
    top = grown.synthesis(ws, noise_mode="const")
    grown.synthesis.growth.set(2, 0.25)
    torch.testing.assert_close(grown.synthesis(ws, noise_mode="const"), 0.75 * ops.upsample(below, f) + 0.25 * top)


def test_the_phase_is_in_the_state_dict_and_loads_back():
    grown, _ = _g_pair(2, (16, 16), (4, 4))
    grown.synthesis.growth.set(1, 0.375)
    again, _ = _g_pair(2, (16, 16), (4, 4))
    assert (again.synthesis.growth.level, again.synthesis.growth.alpha) == (2, 1.0)
    again.load_state_dict(grown.state_dict())
    assert (again.synthesis.growth.level, again.synthesis.growth.alpha) == (1, 0.375)
