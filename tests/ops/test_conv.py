import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from ndgan import ops
from tests.conftest import ND, SHAPES

# (up, down, padding) as a StyleGAN network uses them, plus asymmetric and cropping ones.
RESAMPLE = [(1, 1, 1), (2, 1, 1), (1, 2, 1), (2, 1, 0), (1, 2, 0), (2, 2, 1), (1, 1, ((0, 2),)), (2, 1, ((2, -1),))]


def _padding(padding, nd):
    return padding * nd if isinstance(padding, tuple) else padding


@pytest.mark.parametrize("nd", ND)
@pytest.mark.parametrize("up, down, padding", RESAMPLE)
@pytest.mark.parametrize("kernel", [3, 1])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("mode", ["zeros", "circular"])
def test_conv_resample_equals_zero_stuff_reference(nd, up, down, padding, kernel, groups, mode):
    x = torch.randn(2, 4, *SHAPES[nd], dtype=torch.float64)
    w = torch.randn(6, 4 // groups, *[kernel] * nd, dtype=torch.float64)
    kw = dict(up=up, down=down, padding=_padding(padding, nd), groups=groups, padding_mode=mode)
    got = ops.conv_resample(x, w, **kw)
    ref = ops.conv_resample_reference(x, w, **kw)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("nd", ND)
def test_conv_resample_shapes_follow_stylegan(nd):
    """3x3 with padding 1: up doubles every axis, down halves it, plain keeps it."""
    x = torch.randn(1, 2, *[2 * s for s in SHAPES[nd]])
    w = torch.randn(3, 2, *[3] * nd)
    size = x.shape[2:]
    assert ops.conv_resample(x, w, up=2, padding=1).shape[2:] == tuple(2 * s for s in size)
    assert ops.conv_resample(x, w, down=2, padding=1).shape[2:] == tuple(s // 2 for s in size)
    assert ops.conv_resample(x, w, padding=1).shape[2:] == size


@pytest.mark.parametrize("nd", ND)
def test_conv_resample_composes_filter_and_conv(nd):
    """Independent of the reference: a 1x1 up-conv equals upsample(conv(x)), a down-conv equals
    strided conv(blur(x)), and a plain conv equals torch's conv with the same padding."""
    x = torch.randn(2, 3, *[4] * nd, dtype=torch.float64)
    w1 = torch.randn(5, 3, *[1] * nd, dtype=torch.float64)
    torch.testing.assert_close(ops.conv_resample(x, w1, up=2), ops.upsample(ops.conv(x, w1)))
    w3 = torch.randn(5, 3, *[3] * nd, dtype=torch.float64)
    # blur pads (2, 1) for 4 taps; a 3x3 down-conv with padding 1 pads (2, 2) around the blur+conv.
    blurred = ops.upfirdn(x, ops.setup_filter().double(), padding=[(2, 2)] * nd)
    torch.testing.assert_close(ops.conv_resample(x, w3, down=2, padding=1), ops.conv(blurred, w3, stride=2))
    torch.testing.assert_close(ops.conv_resample(x, w3, padding=1), ops.conv(x, w3, padding=1))


def _modconv_inputs(nd, n=3, i=4, o=5, k=3, dtype=torch.float64):
    x = torch.randn(n, i, *SHAPES[nd], dtype=dtype)
    w = torch.randn(o, i, *[k] * nd, dtype=dtype)
    s = torch.randn(n, i, dtype=dtype)
    return x, w, s


@pytest.mark.parametrize("nd", ND)
@pytest.mark.parametrize("up, down, padding", RESAMPLE)
@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("mode", ["zeros", "circular"])
def test_modulated_conv_fused_unfused_reference(nd, up, down, padding, demodulate, mode):
    x, w, s = _modconv_inputs(nd)
    kw = dict(up=up, down=down, padding=_padding(padding, nd), demodulate=demodulate, padding_mode=mode)
    ref = ops.modulated_conv_reference(x, w, s, **kw)
    noise = torch.randn(3, 1, *ref.shape[2:], dtype=torch.float64)
    ref = ops.modulated_conv_reference(x, w, s, noise=noise, **kw)
    for fused in (True, False):
        got = ops.modulated_conv(x, w, s, noise=noise, fused=fused, **kw)
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("nd", ND)
def test_modulated_conv_1x1_without_demodulation_is_a_per_sample_matmul(nd):
    """Hand computation: y[n, o] = sum_i w[o, i] * s[n, i] * x[n, i] (ToOutput's op)."""
    x, w, s = _modconv_inputs(nd, k=1)
    expected = torch.einsum("oi,ni,ni...->no...", w.flatten(1), s, x)
    torch.testing.assert_close(ops.modulated_conv(x, w, s, demodulate=False), expected)


@pytest.mark.parametrize("nd", ND)
def test_demodulation_gives_unit_variance(nd):
    """Unit-variance i.i.d. inputs give unit-variance outputs whatever the styles (circular padding: no
    border effects); without demodulation the variance follows the styles instead."""
    size = {1: (512,), 2: (24, 24), 3: (8, 8, 8)}[nd]
    x = torch.randn(8, 16, *size, dtype=torch.float64)
    w = torch.randn(32, 16, *[3] * nd, dtype=torch.float64)
    s = 3 * torch.rand(8, 16, dtype=torch.float64) + 0.1
    y = ops.modulated_conv(x, w, s, padding=1, padding_mode="circular")
    assert abs(y.var().item() - 1) < 0.05
    plain = ops.modulated_conv(x, w, s, padding=1, padding_mode="circular", demodulate=False)
    assert abs(plain.var().item() - 1) > 0.5


@pytest.mark.parametrize("nd", ND)
@pytest.mark.parametrize("up, down", [(1, 1), (2, 1), (1, 2)])
@pytest.mark.parametrize("fused", [True, False])
def test_modulated_conv_gradcheck(nd, up, down, fused):
    size = {1: (4,), 2: (4, 3), 3: (2, 3, 2)}[nd]
    x = torch.randn(2, 2, *size, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, *[3] * nd, dtype=torch.float64, requires_grad=True)
    s = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)

    def fn(x, w, s):
        return ops.modulated_conv(x, w, s, up=up, down=down, padding=1, fused=fused)

    assert gradcheck(fn, (x, w, s), fast_mode=True)
    assert gradgradcheck(fn, (x, w, s), fast_mode=True)


@pytest.mark.parametrize("nd", ND)
@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("act, gain", [("lrelu", None), ("lrelu", 1.0), ("linear", 0.7), ("relu", 2.0),
                                       ("tanh", None), ("lrelu", -1.0)])  # tanh, a negative gain: composed
@pytest.mark.parametrize("noise_kind", [None, "per_sample", "const"])
@pytest.mark.parametrize("mode", ["zeros", "circular"])
def test_modulated_conv_bias_act_equals_the_composed_reference(nd, up, act, gain, noise_kind, mode):
    """The synthesis layer's conv and epilogue in two passes equal bias_act of the literal modulated conv."""
    x, w, s = _modconv_inputs(nd)
    b = torch.randn(w.shape[0], dtype=torch.float64)
    kw = dict(up=up, padding=1, padding_mode=mode)
    shape = ops.modulated_conv_reference(x, w, s, **kw).shape
    noise = {None: None, "per_sample": torch.randn(shape[0], 1, *shape[2:], dtype=torch.float64),
             "const": torch.randn(*shape[2:], dtype=torch.float64)}[noise_kind]
    ref = ops.bias_act(ops.modulated_conv_reference(x, w, s, noise=noise, **kw), b, act=act, gain=gain)
    for fused in (True, False):
        got = ops.modulated_conv_bias_act(x, w, s, b, noise, act=act, gain=gain, fused=fused, **kw)
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("nd", ND)
@pytest.mark.parametrize("up", [1, 2])
def test_modulated_conv_bias_act_gradcheck(nd, up):
    """First and second derivatives (R1 and path length) through the in-place noise and activation."""
    size = {1: (4,), 2: (4, 3), 3: (2, 3, 2)}[nd]
    x = torch.randn(2, 2, *size, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, *[3] * nd, dtype=torch.float64, requires_grad=True)
    s = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    noise = torch.randn(2, 1, *[n * up for n in size], dtype=torch.float64, requires_grad=True)

    def fn(x, w, s, b, noise):
        return ops.modulated_conv_bias_act(x, w, s, b, noise, up=up, padding=1, fused=False)

    assert gradcheck(fn, (x, w, s, b, noise), fast_mode=True)
    assert gradgradcheck(fn, (x, w, s, b, noise), fast_mode=True)


def test_modulated_conv_bias_act_checks_bias_and_noise():
    x, w, s = _modconv_inputs(2)
    with pytest.raises(ValueError, match="bias: expected a 1-D bias of the 5 output channels"):
        ops.modulated_conv_bias_act(x, w, s, torch.zeros(4, dtype=torch.float64), padding=1, fused=False)
    with pytest.raises(ValueError, match="noise: expected a tensor that broadcasts to the output"):
        ops.modulated_conv_bias_act(x, w, s, torch.zeros(5, dtype=torch.float64), torch.zeros(3, 2, 1, 1),
                                    padding=1, fused=False)


def test_fp16_prenormalisation_avoids_overflow():
    x = torch.randn(2, 16, 8, 8)
    w = torch.randn(8, 16, 3, 3) * 100
    s = torch.randn(2, 16) * 1000
    # The naive fp16 modulated weights overflow, so without pre-normalisation the result would be inf/nan.
    assert torch.isinf(w.half().unsqueeze(0) * s.half().reshape(2, 1, 16, 1, 1)).any()
    ref = ops.modulated_conv(x.double(), w.double(), s.double(), padding=1)
    for fused in (True, False):
        got = ops.modulated_conv(x.half(), w.half(), s.half(), padding=1, fused=fused)
        assert got.dtype == torch.float16 and torch.isfinite(got).all()
        torch.testing.assert_close(got.double(), ref, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("nd", ND)
def test_bfloat16_close_to_float64(nd):
    """bfloat16 keeps 8 bits of mantissa: the result stays within 5e-2 of the output scale."""
    x, w, s = _modconv_inputs(nd)
    ref = ops.modulated_conv(x, w, s, up=2, padding=1)
    for fused in (True, False):
        got = ops.modulated_conv(x.bfloat16(), w.bfloat16(), s.bfloat16(), up=2, padding=1, fused=fused)
        assert got.dtype == torch.bfloat16
        assert (got.double() - ref).abs().max() <= 5e-2 * ref.abs().max()


@pytest.mark.parametrize("bad, match", [
    (dict(w=torch.randn(5, 3, 3, 3)), "weight: expected \\[O, 4, \\*k\\]"),
    (dict(w=torch.randn(5, 4, 3)), "weight: expected"),
    (dict(s=torch.randn(3, 4)), "styles: expected \\[N, I\\] = \\[2, 4\\]"),
    (dict(s=torch.randn(2, 4, 1)), "styles: expected"),
    (dict(x=torch.randn(2, 4)), "x: expected a tensor"),
    (dict(up=0), "up: expected a positive int"),
    (dict(down=1.5), "down: expected a positive int"),
    (dict(padding=(1, 1, 1)), "padding: expected"),
    (dict(resample_filter=torch.ones(2, 2)), "resample_filter: expected a non-empty 1-D"),
    (dict(padding_mode="reflect"), "padding_mode"),
])
def test_modulated_conv_bad_input(bad, match):
    args = dict(x=torch.randn(2, 4, 6, 6), w=torch.randn(5, 4, 3, 3), s=torch.randn(2, 4), up=1, down=1, padding=1)
    args.update(bad)
    x, w, s = args.pop("x"), args.pop("w"), args.pop("s")
    with pytest.raises(ValueError, match=match):
        ops.modulated_conv(x, w, s, **args)


def test_conv_resample_bad_groups():
    with pytest.raises(ValueError, match="weight: x has 4 channels"):
        ops.conv_resample(torch.randn(1, 4, 5), torch.randn(2, 3, 3), groups=1)
    with pytest.raises(ValueError, match="groups: 2 does not divide"):
        ops.conv_resample(torch.randn(1, 4, 5), torch.randn(3, 2, 3), groups=2)



def brute_conv_resample(x, w, f, up, down, padding):
    """Independent of ndgan's padding helpers: the official padding arithmetic written out, then NumPy:
    zero-stuff + pad + FIR (gain up**nd), valid cross-correlation summed over kernel offsets, FIR + decimate."""
    import itertools

    from tests.ops.test_resample import brute_upfirdn

    nd = x.ndim - 2
    taps = len(f)
    k = w.shape[2:]
    pads = []
    for p0, p1 in padding:
        if up > 1:
            p0, p1 = p0 + (taps + up - 1) // 2, p1 + (taps - up) // 2
        if down > 1:
            p0, p1 = p0 + (taps - down + 1) // 2, p1 + (taps - down) // 2
        pads.append((p0, p1))
    y = brute_upfirdn(x, f if up > 1 else torch.ones(1, dtype=f.dtype), [up] * nd, [1] * nd, pads,
                      gain=float(up**nd) if up > 1 else 1.0).numpy()
    out = [s - kk + 1 for s, kk in zip(y.shape[2:], k)]
    wn = w.numpy()
    z = 0
    for offset in itertools.product(*[range(kk) for kk in k]):
        patch = y[(slice(None), slice(None)) + tuple(slice(o, o + n) for o, n in zip(offset, out))]
        z = z + torch.einsum("oi,ni...->no...", torch.from_numpy(wn[(slice(None), slice(None)) + offset]),
                             torch.from_numpy(patch))
    if down > 1:
        z = brute_upfirdn(z, f, [1] * nd, [down] * nd, [(0, 0)] * nd)
    return z


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("up, down", [(1, 1), (2, 1), (1, 2), (2, 2)])
def test_conv_resample_against_numpy_brute_force(nd, up, down):
    """Asymmetric filter, a different kernel size per axis and asymmetric padding: catches a missing
    filter or weight flip that the symmetric default filter and square kernels cannot."""
    x = torch.randn(2, 3, *SHAPES[nd], dtype=torch.float64)
    w = torch.randn(4, 3, *[3, 1, 5][:nd], dtype=torch.float64)
    f = torch.tensor([1.0, 4.0, 2.0, -0.5], dtype=torch.float64)
    padding = [(1, 2), (0, 0), (2, 1)][:nd]
    got = ops.conv_resample(x, w, f, up=up, down=down, padding=padding)
    torch.testing.assert_close(got, brute_conv_resample(x, w, f, up, down, padding), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("call, match", [
    (lambda: ops.conv_resample(torch.randn(1, 2, 2), torch.randn(3, 2, 5)), "padding: 0 leaves no output"),
    (lambda: ops.conv_resample(torch.randn(1, 4, 5), torch.randn(2, 4, 3), groups=0), "groups: expected a positive"),
    (lambda: ops.modulated_conv(torch.randn(2, 4, 6), torch.randn(5, 4, 3), torch.randn(2, 4),
                                noise=torch.randn(2, 6, 6), padding=1), "noise: expected a tensor that broadcasts"),
])
def test_conv_bad_input_is_a_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_float16_demodulation_keeps_its_epsilon():
    """1e-8 underflows to 0 in float16: demodulation coefficients are computed in float32."""
    x = torch.randn(1, 2, 5).half()
    w = torch.tensor([[[1e-4], [1.0]]]).half()  # [O=1, I=2, k=1]
    s = torch.tensor([[1.0, 0.0]]).half()  # the only non-zero modulated weight is 1e-4
    # float16 inputs are pre-normalised (w / (sqrt(I*k) max|w|), s / max|s|) before the epsilon is added,
    # so the float64 reference gets the same pre-normalised inputs.
    w64, s64 = w.double(), s.double()
    ref = ops.modulated_conv(x.double(), w64 / (2**0.5 * w64.abs().max()), s64 / s64.abs().max())
    for fused in (True, False):
        got = ops.modulated_conv(x, w, s, fused=fused)
        assert torch.isfinite(got).all()  # the epsilon in float16 would be 0: 0/0 = nan
        torch.testing.assert_close(got.double(), ref, rtol=2e-2, atol=2e-2)


def test_choose_fused_picks_the_measured_path():
    """CPU: unfused always (faster in every measured case); other devices: fused only for float32 inference."""
    cpu = torch.zeros(1, 1, 2)
    meta = torch.zeros(1, 1, 2, device="meta")
    with torch.no_grad():
        assert not ops.choose_fused(cpu)
        assert ops.choose_fused(meta)
        assert not ops.choose_fused(meta.bfloat16())
    assert not ops.choose_fused(cpu)
    assert not ops.choose_fused(meta)
    # Under autocast a float32 tensor is computed in reduced precision: unfused, as for bfloat16 tensors.
    from ndgan.ops.conv import _fused_rule

    assert _fused_rule("cuda", torch.float32, False, False)
    assert not _fused_rule("cuda", torch.float32, False, True)
    assert not _fused_rule("cuda", torch.float32, True, False)
    assert not _fused_rule("cpu", torch.float32, False, False)
