import math

import pytest
import torch

from ndgan import layers as L
from ndgan import ops
from tests.conftest import ND, SHAPES


def test_equal_linear_function_and_scaling():
    fc = L.EqualLinear(64, 32, bias_init=0.5, lr_multiplier=0.01, activation="lrelu")
    # Stored at unit variance / lr_multiplier, scaled at run time by lr_multiplier / sqrt(fan_in).
    assert fc.weight.std().item() == pytest.approx(100, rel=0.1)
    x = torch.randn(5, 64)
    w_eff = fc.weight * 0.01 / math.sqrt(64)
    expected = ops.bias_act(x @ w_eff.t(), fc.bias * 0.01, act="lrelu")
    torch.testing.assert_close(fc(x), expected)
    lin = L.EqualLinear(64, 32, bias_init=1)
    torch.testing.assert_close(lin(x), x @ (lin.weight / 8).t() + 1)


@pytest.mark.parametrize("nd", ND)
@pytest.mark.parametrize("up, down", [(1, 1), (2, 1), (1, 2)])
def test_equal_conv_function_equals_module(nd, up, down):
    conv = L.EqualConv(nd, 4, 6, 3, activation="lrelu", up=up, down=down, conv_clamp=0.5)
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(2, 4, *[2 * s for s in SHAPES[nd]])
    y = ops.conv_resample(x, conv.weight / math.sqrt(4 * 3**nd), ops.setup_filter(), up, down, 1)
    expected = ops.bias_act(y, conv.bias, act="lrelu", gain=2 * math.sqrt(2), clamp=1.0)
    torch.testing.assert_close(conv(x, gain=2), expected)


@pytest.mark.parametrize("nd", ND)
@pytest.mark.parametrize("up", [1, 2])
def test_modulated_conv_function_equals_module(nd, up):
    out_shape = tuple(up * s for s in SHAPES[nd])
    layer = L.SynthesisLayer(nd, 4, 6, w_dim=8, up=up, noise_shape=out_shape, conv_clamp=256)
    assert torch.equal(layer.affine.bias, torch.ones(4))  # style affine bias starts at 1
    with torch.no_grad():
        layer.noise.strength.fill_(0.3)
        layer.bias.normal_()
    x, w = torch.randn(2, 4, *SHAPES[nd]), torch.randn(2, 8)
    styles = w @ (layer.affine.weight / math.sqrt(8)).t() + 1
    y = ops.modulated_conv(x, layer.weight, styles, up=up, padding=1, resample_filter=ops.setup_filter())
    y = y + 0.3 * layer.noise.noise_const
    expected = ops.bias_act(y, layer.bias, act="lrelu", clamp=256)
    for fused in (True, False):
        torch.testing.assert_close(layer(x, w, noise_mode="const", fused=fused), expected)


@pytest.mark.parametrize("nd", ND)
def test_noise_modes(nd):
    layer = L.SynthesisLayer(nd, 3, 3, w_dim=4, noise_shape=SHAPES[nd])
    with torch.no_grad():
        layer.noise.strength.fill_(1.0)
    x, w = torch.randn(2, 3, *SHAPES[nd]), torch.randn(2, 4)
    assert torch.equal(layer(x, w, noise_mode="const"), layer(x, w, noise_mode="const"))
    assert not torch.equal(layer(x, w, noise_mode="random"), layer(x, w, noise_mode="random"))
    assert not torch.equal(layer(x, w, noise_mode="none"), layer(x, w, noise_mode="const"))
    torch.testing.assert_close(layer.noise(x, "none"), x)
    with pytest.raises(ValueError, match="noise_mode: expected one of"):
        layer(x, w, noise_mode="fixed")


@pytest.mark.parametrize("nd", ND)
def test_to_output_function_equals_module(nd):
    layer = L.ToOutput(nd, 8, 2, w_dim=4)
    x, w = torch.randn(3, 8, *SHAPES[nd]), torch.randn(3, 4)
    styles = (w @ (layer.affine.weight / 2).t() + 1) / math.sqrt(8)
    expected = torch.einsum("oi,ni,ni...->no...", layer.weight.flatten(1), styles, x)
    torch.testing.assert_close(layer(x, w), expected)
    torch.testing.assert_close(layer(x, w, fused=False), expected)


@pytest.mark.parametrize("nd", ND)
def test_minibatch_std_module(nd):
    x = torch.randn(4, 6, *SHAPES[nd])
    torch.testing.assert_close(L.MinibatchStd(nd, 2, 3)(x), ops.minibatch_std(x, 2, 3))


@pytest.mark.parametrize("nd", ND)
def test_linear_attention_block(nd):
    block = L.LinearAttention(nd, 8, heads=2, dim_head=4, padding_mode="circular")
    x = torch.randn(2, 8, *SHAPES[nd], requires_grad=True)
    y = block(x)
    assert y.shape == x.shape
    y.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())
    # Function == module, written with the ops and the stored weights (not the block's own submodules).
    with torch.no_grad():
        def conv1x1(t, conv, act="linear"):
            w = conv.weight / math.sqrt(conv.weight[0].numel())
            return ops.bias_act(ops.conv(t, w), conv.bias, act=act)

        def norm(t, layer):
            shape = [1, -1] + [1] * nd
            mean, var = t.mean(1, keepdim=True), t.var(1, unbiased=False, keepdim=True)
            return (t - mean) / torch.sqrt(var + 1e-5) * layer.weight.reshape(shape) + layer.bias.reshape(shape)

        h = norm(x, block.norm_attn)
        dw = block.kv_depthwise.weight / math.sqrt(3**nd)
        kv = conv1x1(ops.conv(ops.pad(h, [(1, 1)] * nd, "circular"), dw, groups=8), block.to_kv)
        k, v = kv.chunk(2, 1)
        a = x + conv1x1(torch.nn.functional.gelu(ops.linear_attention(conv1x1(h, block.to_q), k, v, 2)), block.to_out)
        expected = a + conv1x1(conv1x1(norm(a, block.norm_ff), block.ff_hidden, "lrelu"), block.ff_out)
        torch.testing.assert_close(block(x), expected)


@pytest.mark.parametrize("nd", ND)
def test_gradients_reach_every_parameter(nd):
    layer = L.SynthesisLayer(nd, 4, 4, w_dim=8, up=2, noise_shape=[2 * s for s in SHAPES[nd]])
    out = L.ToOutput(nd, 4, 2, w_dim=8)
    x, w = torch.randn(2, 4, *SHAPES[nd]), torch.randn(2, 8)
    with torch.no_grad():
        layer.noise.strength.fill_(0.1)
    out(layer(x, w), w).square().sum().backward()
    for name, p in list(layer.named_parameters()) + list(out.named_parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_state_dict_round_trip_and_buffers():
    a = L.SynthesisLayer(3, 4, 4, w_dim=8, up=2, noise_shape=(8, 8, 8), padding_mode="circular")
    keys = set(a.state_dict())
    assert "noise.noise_const" in keys and "resample_filter" not in keys  # FIR taps are not weights
    b = L.SynthesisLayer(3, 4, 4, w_dim=8, up=2, noise_shape=(8, 8, 8), padding_mode="circular")
    b.load_state_dict(a.state_dict())
    x, w = torch.randn(2, 4, 4, 4, 4), torch.randn(2, 8)
    torch.testing.assert_close(a(x, w, noise_mode="const"), b(x, w, noise_mode="const"))


def test_modulated_conv_clamp_scales_with_gain():
    layer = L.SynthesisLayer(2, 4, 4, w_dim=8, conv_clamp=0.1, activation="linear")
    x, w = torch.randn(2, 4, 6, 6), torch.randn(2, 8)
    y = layer(x, w, gain=2.0)
    unclamped = L.SynthesisLayer(2, 4, 4, w_dim=8, activation="linear")
    unclamped.load_state_dict(layer.state_dict())
    ref = unclamped(x, w, gain=2.0)
    assert ref.abs().max() > 0.2  # the clamp is active
    torch.testing.assert_close(y, ref.clamp(-0.2, 0.2))  # clamp * gain, applied after the gain


def test_layers_reject_wrong_rank_and_arguments():
    with pytest.raises(ValueError, match="SynthesisLayer: expected x of shape \\[N, C, \\*S\\] with 3 spatial axes"):
        L.SynthesisLayer(3, 4, 4, w_dim=8)(torch.randn(2, 4, 8, 8), torch.randn(2, 8))
    with pytest.raises(ValueError, match="EqualConv: expected 4 input channels"):
        L.EqualConv(2, 4, 4, 3)(torch.randn(2, 5, 8, 8))
    with pytest.raises(ValueError, match="EqualLinear: expected x of shape \\[N, 8\\]"):
        L.EqualLinear(8, 4)(torch.randn(2, 7))
    with pytest.raises(ValueError, match="NoiseInjection: built for spatial shape \\(4, 4\\)"):
        L.NoiseInjection(2, (4, 4))(torch.randn(1, 1, 8, 8), "const")
    with pytest.raises(ValueError, match="spatial_dims: expected 1, 2 or 3"):
        L.EqualConv(4, 4, 4, 3)
    with pytest.raises(ValueError, match="groups: 3 must divide"):
        L.EqualConv(2, 4, 4, 3, groups=3)
    with pytest.raises(ValueError, match="conv_clamp"):
        L.SynthesisLayer(2, 4, 4, w_dim=8, conv_clamp=-1)
    with pytest.raises(ValueError, match="act: unknown activation"):
        L.EqualConv(2, 4, 4, 3, activation="leaky")
    with pytest.raises(ValueError, match="SynthesisLayer: expected w of shape \\[N, w_dim\\] = \\[2, 8\\]"):
        L.SynthesisLayer(2, 4, 4, w_dim=8)(torch.randn(2, 4, 8, 8), torch.randn(3, 8))
    with pytest.raises(ValueError, match="noise_mode: expected one of"):
        L.SynthesisLayer(2, 4, 4, w_dim=8)(torch.randn(2, 4, 8, 8), torch.randn(2, 8), noise_mode="fixed")
