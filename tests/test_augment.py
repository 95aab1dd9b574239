"""ndgan.augment: every op against an explicit reference, identities, gradients, and the adaptive controller."""

import math

import numpy as np
import pytest
import torch

from ndgan import augment as A

SHAPES = {1: (12,), 2: (10, 10), 3: (6, 6, 6)}


def _x(nd, c=2, n=4, shape=None, dtype=torch.float32):
    g = torch.Generator().manual_seed(nd)
    return torch.rand(n, c, *(shape or SHAPES[nd]), generator=g, dtype=dtype) * 2 - 1


def _ops(nd, shape, c, periodic=False):
    """Every op these samples can take."""
    return A.default_ops(shape, periodic) + (("color",) if c == 3 else ()) + ("cutout",)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_p_zero_is_the_identity(nd):
    c = 3 if nd == 2 else 2
    x = _x(nd, c)
    assert torch.equal(A.augment(x, 0.0, _ops(nd, SHAPES[nd], c)), x)
    assert torch.equal(A.augment(x, torch.tensor(0.0), _ops(nd, SHAPES[nd], c, True), periodic=True), x)


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("op", A.OPS)
def test_each_op_keeps_the_shape_and_geometric_ops_the_value_range(nd, op):
    c = 3 if op == "color" else 2
    shape = SHAPES[nd] if op == "rot90" else (6, 8, 10)[:nd] if nd == 3 else SHAPES[nd]  # non-cubic in 3D
    if op not in _ops(nd, shape, c):
        with pytest.raises(ValueError, match="remove it"):  # never silently skipped
            A.augment(_x(nd, c, shape=shape), 1.0, (op,))
        return
    x = _x(nd, c, shape=shape)
    y = A.augment(x, 1.0, (op,), generator=torch.Generator().manual_seed(1))
    assert y.shape == x.shape and torch.isfinite(y).all()
    if op in ("flip", "rot90", "translate", "scale", "rotate"):  # resampling: convex combinations of inputs
        assert y.min() >= x.min() - 1e-5 and y.max() <= x.max() + 1e-5
    if op == "cutout":
        assert ((y == x) | (y == 0)).all() and (y == 0).any()
    if op in ("flip", "rot90"):  # integer ops move values, never mix them
        assert torch.equal(y.flatten().sort().values, x.flatten().sort().values)
    if op == "translate":  # wrapped shifts move values too
        z = A.augment(x, 1.0, (op,), periodic=True, generator=torch.Generator().manual_seed(1))
        assert torch.equal(z.flatten().sort().values, x.flatten().sort().values) and not torch.equal(z, x)


def test_flip_twice_is_the_identity_and_matches_torch_flip():
    x = _x(3)
    flips = torch.tensor([[True, False, True], [False, False, False], [True, True, True], [False, True, False]])
    y = A.flip(x, flips)
    assert torch.equal(A.flip(y, flips), x)
    assert torch.equal(y[0], x[0].flip(1, 3)) and torch.equal(y[1], x[1]) and torch.equal(y[3], x[3].flip(2))


def test_rotation_groups_and_rot90_against_torch_rot90():
    assert len(A.cube_rotations([0, 1])) == 4 and len(A.cube_rotations([0, 1, 2])) == 24
    x = _x(2, n=4)
    # Square: perm 1 swaps the axes; with one mirror that is a quarter turn.
    y = A.rot90(x, [0, 1], torch.tensor([0, 1, 1, 0]), torch.tensor([[False, False], [True, False],
                                                                      [False, True], [True, True]]))
    quarter_turns = [torch.rot90(x, k, dims=(2, 3)) for k in range(4)]
    for i in range(4):
        assert any(torch.equal(y[i], q[i]) for q in quarter_turns)
    assert torch.equal(y[0], x[0]) and torch.equal(y[3], torch.rot90(x[3], 2, dims=(1, 2)))


def _distinct(volumes):
    return [tuple(v.flatten().tolist()) for v in volumes]


def test_augment_draws_the_24_cube_rotations_uniformly_and_no_mirror():
    v = torch.arange(27.0).reshape(1, 1, 3, 3, 3).expand(4800, 1, 3, 3, 3)
    out = _distinct(A.augment(v, 1.0, ("rot90",), generator=torch.Generator().manual_seed(0)))
    counts = {}
    for o in out:
        counts[o] = counts.get(o, 0) + 1
    assert len(counts) == 24 and min(counts.values()) > 140 and max(counts.values()) < 260  # 200 expected
    # The rotation group, built independently: everything quarter turns in the three planes reach.
    group, frontier = {tuple(v[0].flatten().tolist())}, [v[0]]
    while frontier:
        u = frontier.pop()
        for dims in ((1, 2), (1, 3), (2, 3)):
            w = torch.rot90(u, 1, dims=dims)
            if tuple(w.flatten().tolist()) not in group:
                group.add(tuple(w.flatten().tolist()))
                frontier.append(w)
    assert len(group) == 24 and set(counts) == group  # proper rotations only, no mirror images


def test_rot90_turns_only_the_equal_axes_of_a_non_cubic_volume():
    x = _x(3, n=64, shape=(4, 6, 6))
    y = A.augment(x, 1.0, ("rot90",), generator=torch.Generator().manual_seed(2))
    turns = [torch.rot90(x, k, dims=(3, 4)) for k in range(4)]
    assert all(any(torch.equal(y[i], t[i]) for t in turns) for i in range(64))
    assert {next(k for k, t in enumerate(turns) if torch.equal(y[i], t[i])) for i in range(64)} == {0, 1, 2, 3}


def test_each_op_acts_with_probability_p():
    x = torch.arange(2.0).reshape(1, 1, 2).expand(20000, 1, 2)
    g = torch.Generator().manual_seed(3)
    flipped = (A.augment(x, 0.6, ("flip",), generator=g)[:, 0, 0] == 1).double().mean()
    assert abs(float(flipped) - 0.3) < 0.015  # p/2, as ADA's x-flip
    shifted = (A.augment(x, 0.6, ("brightness",), generator=g) != x).any(2)[:, 0].double().mean()
    assert abs(float(shifted) - 0.6) < 0.015


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_periodic_translation_equals_torch_roll(nd):
    x = _x(nd, shape=(5, 6, 7)[:nd])
    shifts = torch.tensor([[2, -1, 3], [0, 0, 0], [-4, 5, 1], [1, 1, -6]])[:, :nd]
    y = A.translate(x, shifts, periodic=True)
    for i in range(4):
        assert torch.equal(y[i], torch.roll(x[i], shifts[i].tolist(), dims=tuple(range(1, nd + 1))))


def test_mirrored_translation_equals_numpy_reflect_padding():
    x = _x(2, shape=(6, 7))
    shifts = torch.tensor([[2, -3], [-5, 4], [0, 1], [3, 0]])
    y = A.translate(x, shifts, periodic=False)
    for i in range(4):
        pad = np.pad(x[i].numpy(), [(0, 0), (10, 10), (10, 10)], mode="reflect")
        t0, t1 = shifts[i].tolist()
        np.testing.assert_array_equal(y[i].numpy(), pad[:, 10 - t0: 16 - t0, 10 - t1: 17 - t1])


def test_affine_quarter_turn_equals_rot90_and_identity_is_exact_enough():
    x = _x(2, n=1, shape=(8, 8))
    quarter = torch.tensor([[[0.0, -1.0], [1.0, 0.0]]])
    y = A.affine(x, quarter)
    candidates = [torch.rot90(x, k, dims=(2, 3)) for k in (1, 3)]
    assert min(float((y - c).abs().max()) for c in candidates) < 1e-5
    assert torch.allclose(A.affine(x, torch.eye(2)[None]), x, atol=1e-5)


def test_affine_rotates_non_cubic_volumes_in_physical_units():
    # A quarter turn in the (1, 2) plane of a 4 x 6 x 6 volume equals rot90 of those axes (equal sizes), even
    # though axis 0 has another size (the normalisation per axis must not shear).
    x = _x(3, n=1, shape=(4, 6, 6))
    m = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]])
    y = A.affine(x, m)
    candidates = [torch.rot90(x, k, dims=(3, 4)) for k in (1, 3)]
    assert min(float((y - c).abs().max()) for c in candidates) < 1e-5


def test_color_matrices_keep_grey_and_are_rotations_without_lumaflip():
    n = 5
    g = torch.Generator().manual_seed(0)
    hue = (torch.rand(n, generator=g) * 2 - 1) * math.pi
    mats = A.color_matrices(torch.zeros(n, dtype=torch.bool), hue, torch.ones(n))
    grey = torch.ones(3) / 3**0.5
    assert torch.allclose(mats @ grey, grey.expand(n, 3), atol=1e-6)
    assert torch.allclose(mats @ mats.transpose(1, 2), torch.eye(3).expand(n, 3, 3), atol=1e-5)
    flipped = A.color_matrices(torch.ones(n, dtype=torch.bool), torch.zeros(n), torch.ones(n))
    assert torch.allclose(flipped @ grey, -grey.expand(n, 3), atol=1e-6)
    desat = A.color_matrices(torch.zeros(1, dtype=torch.bool), torch.zeros(1), torch.zeros(1))[0]
    assert torch.allclose(desat @ torch.tensor([1.0, 0.0, 0.0]), torch.full((3,), 1 / 3), atol=1e-6)


@pytest.mark.parametrize("c", [2, 3])
def test_brightness_and_contrast_per_channel_or_shared_across_rgb(c):
    x = _x(2, c=c, n=8)
    g = torch.Generator().manual_seed(3)
    y = A.augment(x, 1.0, ("brightness",), generator=g)
    offset = (y - x).flatten(2)
    assert torch.allclose(offset, offset[..., :1].expand_as(offset), atol=1e-6)  # one offset per channel
    assert offset[..., 0].std() > 0.05
    spread = (offset[..., 0] - offset[:, :1, 0]).abs().max()  # do the channels of a sample get one offset?
    assert (spread < 1e-6) if c == 3 else (spread > 1e-3)  # RGB: shared (no hue shift, as ADA); else per channel
    y = A.augment(x, 1.0, ("contrast",), generator=torch.Generator().manual_seed(4))
    ratio = (y / x).flatten(2)
    assert torch.allclose(ratio, ratio[..., :1].expand_as(ratio), rtol=1e-4)  # one gain per channel, about 0
    spread = (ratio[..., 0] - ratio[:, :1, 0]).abs().max()
    assert (spread < 1e-4) if c == 3 else (spread > 1e-3)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_gradients_reach_the_input_through_every_op(nd):
    c = 3 if nd == 2 else 2
    shape = (4, 4, 4) if nd == 3 else SHAPES[nd]
    ops = _ops(nd, shape, c)
    x = _x(nd, c, n=2, shape=shape, dtype=torch.float64).requires_grad_(True)

    def f(v):
        return A.augment(v, 1.0, ops, generator=torch.Generator().manual_seed(5))

    (g,) = torch.autograd.grad(f(x).square().sum(), x)
    assert g.abs().sum() > 0 and torch.isfinite(g).all()
    assert torch.autograd.gradcheck(f, (x.detach().requires_grad_(True),))


def test_r1_gradient_through_the_augmentation_is_taken_at_the_unaugmented_reals():
    # D linear in its input, augmentation = a mirror of the last axis for sample 0 only: the R1 gradient at the
    # un-augmented reals is the mirrored weight for sample 0 and the weight itself for sample 1.
    w = torch.randn(1, 2, 5, 5)
    reals = torch.randn(2, 2, 5, 5, requires_grad=True)
    flips = torch.tensor([[False, True], [False, False]])
    logits = (A.flip(reals, flips) * w).flatten(1).sum(1)
    (grad,) = torch.autograd.grad(logits.sum(), reals, create_graph=True)
    assert torch.equal(grad[0], w[0].flip(2)) and torch.equal(grad[1], w[0])


def test_adaptive_p_rises_on_overfitting_and_falls_on_a_confused_discriminator():
    ada = A.AdaptiveP("ada", p=0.5, target=0.6, interval=4, speed_kimg=500, batch=32)
    step = 32 * 4 / 500_000
    for _ in range(4):
        ada.observe(torch.full((32,), 3.0))  # every real scored real: r_t = 1 > 0.6
    ada.step()
    assert float(ada.p) == pytest.approx(0.5 + step)
    for _ in range(4):
        ada.observe(torch.tensor([1.0, -1.0]).repeat(16))  # a confused D: r_t = 0 < 0.6
    ada.step()
    ada.step()  # no new observations: p stays
    assert float(ada.p) == pytest.approx(0.5)
    low = A.AdaptiveP("ada", p=0.0)
    low.observe(torch.full((8,), -1.0))
    low.step()
    assert float(low.p) == 0.0  # clamped at 0
    fixed = A.AdaptiveP("fixed", p=0.3)
    fixed.observe(torch.ones(8))
    fixed.step()
    assert float(fixed.p) == pytest.approx(0.3) and not A.AdaptiveP("none", p=0.7).active


def test_adaptive_p_state_round_trip_and_summed_reduction():
    ada = A.AdaptiveP("ada", p=0.2)
    ada.observe(torch.ones(6))
    restored = A.AdaptiveP("ada", p=0.0)
    restored.load_state_dict(ada.state_dict())
    assert float(restored.p) == pytest.approx(0.2) and torch.equal(restored.stats, ada.stats)
    seen = []
    restored.step(all_reduce=lambda t: seen.append(t.clone()))
    assert seen and seen[0].tolist() == [6.0, 6.0]


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown op 'flp'"):
        A.augment(_x(2), 0.5, ("flp",))
    with pytest.raises(ValueError, match="RGB"):
        A.augment(_x(2, c=2), 0.5, ("color",))
    with pytest.raises(ValueError, match="periodic"):
        A.augment(_x(3), 0.5, ("scale",), periodic=True)
    observed = A.AdaptiveP("ada", p=0.5)
    observed.observe(torch.tensor([float("nan"), 1.0]))
    observed.step()
    assert torch.isfinite(observed.p)
    with pytest.raises(ValueError, match="ada, fixed or none"):
        A.AdaptiveP("sometimes")


def test_affine_keeps_physical_distances_on_non_square_images():
    # A blob 12 pixels right of the centre of a 32 x 64 image, turned a quarter, lands 12 pixels above or below
    # it (not 6 or 24, as a rotation in normalised coordinates would put it).
    rows, cols = torch.meshgrid(torch.arange(32.0) + 0.5, torch.arange(64.0) + 0.5, indexing="ij")
    blob = torch.exp(-((rows - 16) ** 2 + (cols - 44) ** 2) / (2 * 2.0**2))[None, None]
    y = A.affine(blob, torch.tensor([[[0.0, -1.0], [1.0, 0.0]]]))[0, 0]
    mass = y.sum()
    centre = ((y * rows).sum() / mass - 16, (y * cols).sum() / mass - 32)
    assert abs(abs(float(centre[0])) - 12) < 0.3 and abs(float(centre[1])) < 0.3


@pytest.mark.parametrize("shape, c, periodic", [((8, 8, 8), 2, True), ((8, 8, 8), 2, False), ((16, 16), 3, False),
                                                ((12,), 2, False)])
def test_no_value_is_read_back_to_the_host(shape, c, periodic):
    """Meta tensors carry no data: anything that reads a value back (.item(), int(t), Python branching on a
    tensor) fails there, so running the whole pipeline and the controller on them proves they never sync."""
    x = torch.empty(4, c, *shape, device="meta")
    ops = _ops(len(shape), shape, c, periodic)
    assert A.augment(x, torch.tensor(0.5, device="meta"), ops, periodic=periodic).shape == x.shape
    ada = A.AdaptiveP("ada", device="meta")
    ada.observe(torch.empty(8, device="meta"))
    ada.step()
