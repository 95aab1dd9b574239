import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

from ndgan import ops
from tests.conftest import ND, SHAPES


def brute_upfirdn(x, f, up, down, pads, flip_filter=False, gain=1.0, circular=False):
    """Independent NumPy upfirdn: zero-stuff, pad (np.pad / wrap-around np.take), dense nd true
    convolution written as a sum over kernel offsets, decimate."""
    x = x.detach().numpy().astype(np.float64)
    f = f.detach().numpy().astype(np.float64)
    nd = x.ndim - 2
    z = np.zeros(x.shape[:2] + tuple(s * u for s, u in zip(x.shape[2:], up)))
    z[(slice(None), slice(None)) + tuple(slice(None, None, u) for u in up)] = x
    for axis, (p0, p1) in enumerate(pads, start=2):
        n = z.shape[axis]
        if circular:
            z = np.take(z, np.arange(-p0, n + p1), axis=axis, mode="wrap")
        else:
            z = np.pad(z, [(0, 0)] * axis + [(max(p0, 0), max(p1, 0))] + [(0, 0)] * (z.ndim - axis - 1))
            z = np.take(z, np.arange(max(-p0, 0), z.shape[axis] - max(-p1, 0)), axis=axis)
    kernel = f
    for _ in range(nd - 1):
        kernel = np.multiply.outer(kernel, f)
    kernel = kernel * gain
    taps = len(f)
    out_size = [s - taps + 1 for s in z.shape[2:]]
    y = np.zeros(z.shape[:2] + tuple(out_size))
    for offset in itertools.product(range(taps), repeat=nd):
        # True convolution: y[j] = sum_k z[j + k] * f[T - 1 - k]; correlation if flip_filter.
        tap = kernel[offset] if flip_filter else kernel[tuple(taps - 1 - o for o in offset)]
        y += tap * z[(slice(None), slice(None)) + tuple(slice(o, o + n) for o, n in zip(offset, out_size))]
    return torch.from_numpy(y[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in down)])


# (up, down, padding as per-axis pairs, flip, gain); asymmetric on purpose.
CASES = [
    (1, 1, (1, 2), False, 1.0),
    (2, 1, (2, 1), False, 1.0),
    (1, 2, (1, 1), False, 1.0),
    (2, 2, (3, 0), True, 2.0),
    (3, 2, (2, -1), False, 1.0),
    (1, 3, (-1, 4), True, 0.5),
]


@pytest.mark.parametrize("nd", ND)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("mode", ["zeros", "circular"])
def test_upfirdn_matches_brute_force(nd, case, mode):
    up, down, pair, flip, gain = case
    x = torch.randn(2, 3, *SHAPES[nd], dtype=torch.float64)
    f = torch.tensor([1.0, 4.0, 2.0, -0.5], dtype=torch.float64)  # asymmetric: catches a missing flip
    # A different padding per axis (rotated pair) catches axis-order mistakes.
    pads = [pair if a % 2 == 0 else pair[::-1] for a in range(nd)]
    expected = brute_upfirdn(x, f, [up] * nd, [down] * nd, pads, flip, gain, circular=mode == "circular")
    for fn in (ops.upfirdn, ops.upfirdn_reference):
        got = fn(x, f, up=up, down=down, padding=pads, flip_filter=flip, gain=gain, padding_mode=mode)
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("nd", [2, 3])
def test_upfirdn_per_axis_factors(nd):
    x = torch.randn(1, 2, *SHAPES[nd], dtype=torch.float64)
    f = ops.setup_filter().double()
    up, down = [2, 1, 3][:nd], [1, 2, 1][:nd]
    pads = [(2, 1), (1, 1), (0, 2)][:nd]
    got = ops.upfirdn(x, f, up=up, down=down, padding=pads)
    torch.testing.assert_close(got, brute_upfirdn(x, f, up, down, pads), rtol=1e-10, atol=1e-10)


def _up_cases():
    for nd, taps, up, pair in itertools.product(ND, [1, 2, 3, 5, 7], [2, 3, 4], [(0, 0), (3, 1), (-2, 5), (6, -3)]):
        ups = [up, 1, up + 1][:nd]  # an axis without up-sampling, and factors that differ per axis
        pads = [pair if a % 2 == 0 else pair[::-1] for a in range(nd)]  # a different padding per axis
        if all(s * u + p0 + p1 - taps + 1 >= 1 for s, u, (p0, p1) in zip(SHAPES[nd], ups, pads)):
            yield nd, taps, ups, pads


@pytest.mark.parametrize("nd, taps, ups, pads", list(_up_cases()))
@pytest.mark.parametrize("flip", [False, True])
def test_both_up_sampling_paths_match_brute_force(nd, taps, ups, pads, flip):
    """Up-sampling runs polyphase on CPU (one depthwise conv over all phases, then interleaved) and as a
    depthwise transposed conv on other devices; both are checked here, on CPU, for filter lengths shorter,
    equal and longer than the factor (phases of unequal length), odd and even, crops and long pads."""
    from ndgan.ops.resample import _polyphase_up, _transposed_up

    x = torch.randn(2, 3, *SHAPES[nd], dtype=torch.float64)
    f = torch.randn(taps, dtype=torch.float64)
    expected = brute_upfirdn(x, f, ups, [1] * nd, pads, flip, 1.5)
    for path in (_polyphase_up, _transposed_up):
        got = path(x, f, ups, pads, flip, 1.5)
        assert got.shape == expected.shape, path.__name__
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10, msg=path.__name__)


@pytest.mark.parametrize("nd", ND)
def test_upfirdn_output_shape_formula(nd):
    x = torch.randn(1, 1, *SHAPES[nd])
    f = ops.setup_filter([1, 2, 3, 2, 1])
    y = ops.upfirdn(x, f, up=3, down=2, padding=[(4, 1)] * nd)
    assert y.shape[2:] == tuple((s * 3 + 4 + 1 - 5) // 2 + 1 for s in SHAPES[nd])


def test_setup_filter():
    f = ops.setup_filter([1, 3, 3, 1])
    torch.testing.assert_close(f, torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8)
    assert ops.setup_filter([2, 2], normalize=False).sum() == 4
    for bad in ([[1, 2], [3, 4]], [], [1, -1], [1.0, float("nan")]):
        with pytest.raises(ValueError, match="taps"):
            ops.setup_filter(bad)


_LINEAR = {1: "linear", 2: "bilinear", 3: "trilinear"}


@pytest.mark.parametrize("nd", ND)
def test_upsample_is_linear_interpolation(nd):
    """With [1, 3, 3, 1], up-sampling is half-pixel linear/bilinear/trilinear interpolation: compare with
    F.interpolate away from the border, and everywhere in circular mode (interpolating a wrapped input)."""
    x = torch.randn(2, 3, *SHAPES[nd], dtype=torch.float64)
    y = ops.upsample(x)
    assert y.shape[2:] == tuple(2 * s for s in SHAPES[nd])
    ref = F.interpolate(x, scale_factor=2, mode=_LINEAR[nd], align_corners=False)
    inner = (slice(None), slice(None)) + (slice(1, -1),) * nd
    torch.testing.assert_close(y[inner], ref[inner])

    wrapped = F.interpolate(ops.pad(x, [(1, 1)] * nd, mode="circular"), scale_factor=2, mode=_LINEAR[nd],
                            align_corners=False)
    one_sample = (slice(None), slice(None)) + (slice(2, -2),) * nd  # one wrapped input sample = 2 outputs
    torch.testing.assert_close(ops.upsample(x, padding_mode="circular"), wrapped[one_sample])


def test_downsample_hand_formula():
    x = torch.randn(1, 1, 10, dtype=torch.float64)
    xp = F.pad(x, (1, 1))[0, 0]
    expected = torch.stack([(xp[2 * i] + 3 * xp[2 * i + 1] + 3 * xp[2 * i + 2] + xp[2 * i + 3]) / 8 for i in range(5)])
    torch.testing.assert_close(ops.downsample(x)[0, 0], expected)


@pytest.mark.parametrize("nd", ND)
def test_blur_keeps_shape_and_matches_brute_force(nd):
    x = torch.randn(2, 2, *SHAPES[nd], dtype=torch.float64)
    f = ops.setup_filter().double()
    y = ops.blur(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y, brute_upfirdn(x, f, [1] * nd, [1] * nd, [(2, 1)] * nd))


@pytest.mark.parametrize("nd", ND)
@pytest.mark.parametrize("op", ["upsample", "downsample", "blur"])
def test_dc_gain(nd, op):
    """A constant stays the same constant: everywhere with circular padding, in the interior with zeros."""
    x = torch.full((1, 2, *(8,) * nd), 3.0, dtype=torch.float64)
    fn = getattr(ops, op)
    y = fn(x, padding_mode="circular")
    torch.testing.assert_close(y, torch.full_like(y, 3.0))
    y = fn(x)
    inner = (slice(None), slice(None)) + (slice(2, -2),) * nd
    torch.testing.assert_close(y[inner], torch.full_like(y[inner], 3.0))


@pytest.mark.parametrize("nd", ND)
@pytest.mark.parametrize("kw", [dict(up=2, padding=((2, 1),)), dict(down=2, padding=((1, 1),)),
                                dict(up=2, down=2, padding=((3, 1),))])
@pytest.mark.parametrize("mode", ["zeros", "circular"])
@pytest.mark.parametrize("flip", [False, True])
def test_upfirdn_gradcheck(nd, kw, mode, flip):
    """The fast path's backward is its adjoint (an upfirdn itself); an asymmetric filter catches a missing
    flip or a shifted padding in it, and gradgradcheck checks the backward's own backward."""
    shape = {1: (5,), 2: (4, 3), 3: (3, 3, 2)}[nd]
    x = torch.randn(1, 2, *shape, dtype=torch.float64, requires_grad=True)
    f = torch.tensor([1.0, 4.0, 2.0, -0.5], dtype=torch.float64)
    kw = dict(kw, padding=kw["padding"] * nd)

    def fn(t):
        return ops.upfirdn(t, f, padding_mode=mode, flip_filter=flip, gain=1.5, **kw)

    assert gradcheck(fn, (x,), fast_mode=True)
    assert gradgradcheck(fn, (x,), fast_mode=True)


def test_upfirdn_gradient_reaches_a_learnable_filter():
    x = torch.randn(1, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    f = torch.tensor([1.0, 4.0, 2.0], dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda x, f: ops.upfirdn(x, f, up=2, down=1, padding=1), (x, f), fast_mode=True)


@pytest.mark.parametrize("bad, match", [
    (dict(x=torch.randn(2, 3)), "x: expected a tensor"),
    (dict(x=torch.randn(1, 1, 2, 2, 2, 2)), "x: expected a tensor"),
    (dict(up=0), "up: expected positive"),
    (dict(down=1.5), "down: expected an int"),
    (dict(up=(2, 2, 2)), "up: expected an int or 2 ints"),
    (dict(f=torch.ones(2, 2)), "f: expected a non-empty 1-D tensor"),
    (dict(padding=(1, 2, 3)), "padding: expected an int, 2 ints"),
    (dict(padding=((1, 2), (1,))), "padding: expected"),
    (dict(padding=-20), "leaves no output"),
    (dict(padding_mode="reflect"), "padding_mode: expected one of"),
])
def test_upfirdn_bad_input(bad, match):
    args = dict(x=torch.randn(1, 2, 6, 6), f=ops.setup_filter(), up=1, down=1, padding=0)
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        ops.upfirdn(**args)


def test_pad_circular_equals_explicit_wrap():
    x = torch.arange(5.0).reshape(1, 1, 5)
    torch.testing.assert_close(ops.pad(x, [(2, 7)], mode="circular")[0, 0],
                               torch.tensor([3.0, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]))
    torch.testing.assert_close(ops.pad(x, [(-1, -2)])[0, 0], torch.tensor([1.0, 2.0]))


@pytest.mark.parametrize("pads", [[(1, 2), (0, 3), (4, 4)], [(5, 0), (2, 2), (0, 1)], [(-1, 2), (3, -2), (6, 1)]])
def test_pad_circular_every_path_equals_np_wrap(pads):
    """Halos within one period (copies of the ends), crops and wraps beyond a period, per axis, in 3D."""
    x = torch.randn(2, 3, 5, 4, 4, dtype=torch.float64, requires_grad=True)
    want = x.detach().numpy()
    for axis, (p0, p1) in enumerate(pads, start=2):
        want = np.take(want, np.arange(-p0, want.shape[axis] + p1), axis=axis, mode="wrap")
    got = ops.pad(x, pads, mode="circular")
    np.testing.assert_array_equal(got.detach().numpy(), want)
    assert gradcheck(lambda t: ops.pad(t, pads, mode="circular"), (x,), fast_mode=True)
    # The halo's backward is its own Function: second derivatives (R1, path length) go through it too.
    assert gradgradcheck(lambda t: ops.pad(t, pads, mode="circular") ** 2, (x,), fast_mode=True)


_CL = {2: torch.channels_last, 3: torch.channels_last_3d}


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("pads", [(1, 1), (2, 0), (3, 4)])
def test_circular_halo_keeps_channels_last_forward_and_backward(nd, pads):
    """Halo and gradient come out in the input's layout, with the values of the plain layout: the torch.cat
    chain it replaced returned contiguous halos whose gradients met channels-last ones in slow mixed adds."""
    fmt = _CL[nd]
    x = torch.randn(2, 3, *SHAPES[nd], dtype=torch.float64)
    g = torch.randn(2, 3, *(s + sum(pads) for s in SHAPES[nd]), dtype=torch.float64)
    want, want_grad = None, None
    for layout in (torch.contiguous_format, fmt):
        xl = x.contiguous(memory_format=layout).requires_grad_()
        y = ops.pad(xl, [pads] * nd, mode="circular")
        (grad,) = torch.autograd.grad(y, xl, g.contiguous(memory_format=layout))
        if layout == fmt:
            assert y.is_contiguous(memory_format=fmt) and not y.is_contiguous()
            assert grad.is_contiguous(memory_format=fmt) and not grad.is_contiguous()
            torch.testing.assert_close(y, want, rtol=0, atol=0)
            torch.testing.assert_close(grad, want_grad, rtol=1e-12, atol=1e-12)
        else:
            assert y.is_contiguous() and grad.is_contiguous()
            want, want_grad = y.detach(), grad


@pytest.mark.parametrize("nd", [2, 3])
def test_polyphase_up_sampling_keeps_channels_last(nd):
    """The interleaved phases are written in the input's layout, so a channels-last network stays so."""
    from ndgan.ops.resample import _polyphase_up

    x = torch.randn(2, 3, *SHAPES[nd], dtype=torch.float64)
    f = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float64)
    want = _polyphase_up(x, f, [2] * nd, [(2, 1)] * nd, False, 2.0)
    got = _polyphase_up(x.contiguous(memory_format=_CL[nd]), f, [2] * nd, [(2, 1)] * nd, False, 2.0)
    assert got.is_contiguous(memory_format=_CL[nd]) and not got.is_contiguous()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nd", ND)
@pytest.mark.parametrize("pads, stride, groups", [((2, 2), 1, 1), ((1, 3), 2, 1), ((0, 2), 1, 3), ((-1, 2), 2, 3),
                                                  ((3, -1), 1, 1)])
def test_pad_conv_equals_an_explicit_pad_then_conv(nd, pads, stride, groups):
    """The symmetric part of the padding goes to the convolution, the rest (asymmetric, crops) is padded."""
    x = torch.randn(2, 6, *[7] * nd, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 6 // groups, *[3] * nd, dtype=torch.float64)
    per_axis = [pads] + [pads[::-1]] * (nd - 1)  # a different (before, after) on the other axes
    want = torch.nn.functional.__dict__[f"conv{nd}d"](ops.pad(x, per_axis), w, stride=stride, groups=groups)
    got = ops.nd.pad_conv(x, w, per_axis, stride=stride, groups=groups)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda t: ops.nd.pad_conv(t, w, per_axis, stride=stride, groups=groups), (x,), fast_mode=True)


@pytest.mark.parametrize("nd", [2, 3])
def test_upfirdn_gradcheck_per_axis_factors_and_crops(nd):
    x = torch.randn(1, 1, *{2: (4, 5), 3: (3, 4, 3)}[nd], dtype=torch.float64, requires_grad=True)
    f = torch.tensor([1.0, 4.0, 2.0, -0.5], dtype=torch.float64)
    up, down = [2, 1, 3][:nd], [1, 2, 2][:nd]
    pads = [(3, -2), (-1, 2), (0, 1)][:nd]

    def fn(t):
        return ops.upfirdn(t, f, up=up, down=down, padding=pads)

    torch.testing.assert_close(fn(x), brute_upfirdn(x, f, up, down, pads))
    assert gradcheck(fn, (x,), fast_mode=True)
    assert gradgradcheck(fn, (x,), fast_mode=True)


def test_torch_func_transforms_work():
    """vmap and func.grad go through the custom autograd Function."""
    from torch import func

    x = torch.randn(3, 2, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(func.vmap(lambda s: ops.upsample(s[None])[0])(x), ops.upsample(x))
    xr = x.clone().requires_grad_()
    ops.downsample(xr).square().sum().backward()
    torch.testing.assert_close(func.grad(lambda s: ops.downsample(s).square().sum())(x), xr.grad)


def test_dynamo_traces_the_ops_without_graph_breaks():
    """torch.compile needs whole graphs: a custom jvp on the Function, for one, breaks them."""
    import torch._dynamo as dynamo

    dynamo.reset()
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    w, s = torch.randn(4, 3, 3, 3), torch.randn(2, 3)

    def step(x):
        y = ops.modulated_conv(ops.upsample(x), w, s, down=2, padding=1)
        return ops.bias_act(ops.blur(y, padding_mode="circular"), act="lrelu").sum()

    assert dynamo.explain(step)(x).graph_break_count == 0


def test_crop_larger_than_the_signal_gives_zeros_like_stylegan2_ada():
    """Padding on one side and cropping past the signal on the other leaves only padding."""
    y = ops.upfirdn(torch.randn(1, 1, 4), ops.setup_filter(), padding=[(10, -5)])
    assert y.shape == (1, 1, 6) and torch.equal(y, torch.zeros_like(y))


@pytest.mark.parametrize("call, match", [
    (lambda: ops.blur(torch.ones(1, 1, 6, dtype=torch.long)), "x: expected a floating-point tensor"),
    (lambda: ops.pad(torch.randn(1, 2, 5, 5), [(1, 1)] * 3), "pads: expected 2 \\(before, after\\) pairs"),
    (lambda: ops.pad(torch.randn(1, 2, 0), [(1, 1)], mode="circular"), "cannot wrap around an empty axis"),
])
def test_more_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
