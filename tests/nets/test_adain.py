"""StyleGAN's style block (Karras et al. 2019, eq. 1: AdaIN) against a written-out reference in 1D, 2D and 3D,
and the generator built from it (``style_block='adain'``): shapes, ws accounting, style mixing, refusals."""

import math

import pytest
import torch
import torch.nn.functional as F

from ndgan import ops
from ndgan.layers import AdaINLayer, EqualConv, SynthesisLayer, ToOutput
from ndgan.nets import Generator
from tests.conftest import ND, SHAPES

# Tiny generators, non-square and non-cubic where the default base allows: (spatial_dims, shape, blocks).
NETS = [(1, (32,), 4), (2, (16, 24), 3), (3, (8, 16, 8), 2)]


def tiny_adain(nd, shape, **kw):
    return Generator(nd, shape, 2, z_dim=8, w_dim=8, mapping_layers=1, channel_base=64, channel_max=8,
                     style_block="adain", **kw)


def randomise(module):
    """Every parameter (biases, noise strengths, affines) away from its initial value, so nothing cancels."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p))
    return module


def hand_instance_norm(x, eps=1e-8):
    """Mean and biased variance of every feature map, summed out by hand over all spatial positions."""
    flat = x.flatten(2)  # [N, C, prod(S)]
    count = flat.shape[-1]
    mean = flat.sum(-1, keepdim=True) / count
    var = ((flat - mean) ** 2).sum(-1, keepdim=True) / count
    return ((flat - mean) / torch.sqrt(var + eps)).reshape(x.shape)


def hand_affine(linear, w):
    """An EqualLinear applied by hand: weight scaled by 1/sqrt(fan_in) (lr multiplier 1), plus the bias."""
    return w @ (linear.weight / math.sqrt(w.shape[1])).t() + linear.bias


def reference_layer(layer, x, w):
    """StyleGAN's layer epilogue written out: conv, const noise, bias, lrelu * sqrt(2), AdaIN (eq. 1)."""
    nd = x.ndim - 2
    per_channel = [1, -1] + [1] * nd
    if layer.conv is not None:
        weight = layer.conv.weight / math.sqrt(layer.conv.weight[0].numel())  # equalised lr: 1/sqrt(I * prod(k))
        padding = [k // 2 for k in weight.shape[2:]]
        if layer.up == 1:
            x = getattr(F, f"conv{nd}d")(x, weight, padding=padding)
        else:  # the zero-stuff, dense-filter reference of the FIR up-conv
            x = ops.conv_resample_reference(x, weight, layer.conv.resample_filter, up=layer.up, padding=padding)
    x = x + layer.noise.strength * layer.noise.noise_const  # [*S] broadcasts over batch and channels
    x = x + layer.bias.reshape(per_channel)
    x = torch.where(x >= 0, x, 0.2 * x) * math.sqrt(2)
    ys, yb = hand_affine(layer.affine_scale, w), hand_affine(layer.affine_bias, w)
    return ys.reshape(*ys.shape, *[1] * nd) * hand_instance_norm(x) + yb.reshape(*yb.shape, *[1] * nd)


@pytest.mark.parametrize("nd", ND)
@pytest.mark.parametrize("kind", ["conv", "up-conv", "on the constant"])
def test_adain_layer_equals_the_written_out_reference(nd, kind):
    cin, cout, w_dim, size = 3, (3 if kind == "on the constant" else 5), 6, SHAPES[nd]
    out_size = tuple(2 * s for s in size) if kind == "up-conv" else size
    layer = AdaINLayer(nd, cin, cout, w_dim, up=2 if kind == "up-conv" else 1, noise_shape=out_size,
                       conv=kind != "on the constant").double()
    # The initial style is the identity (y_s = 1, y_b = 0) and the epilogue adds nothing yet.
    assert torch.equal(layer.affine_scale.bias, torch.ones(cout, dtype=torch.float64))
    assert torch.equal(layer.affine_bias.bias, torch.zeros(cout, dtype=torch.float64))
    assert layer.noise.strength.item() == 0 and not layer.bias.any()
    randomise(layer)
    x = torch.randn(2, cin, *size, dtype=torch.float64)
    w = torch.randn(2, w_dim, dtype=torch.float64)
    y = layer(x, w, noise_mode="const")
    assert y.shape == (2, cout, *out_size)
    torch.testing.assert_close(y, reference_layer(layer, x, w), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(layer(x, w, noise_mode="const", gain=0.5), 0.5 * y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nd", ND)
def test_adain_op_equals_the_written_out_formula(nd):
    x = 3 + 2 * torch.randn(2, 4, *SHAPES[nd], dtype=torch.float64)
    scale, bias = torch.randn(2, 4, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    expected = scale.reshape(2, 4, *[1] * nd) * hand_instance_norm(x) + bias.reshape(2, 4, *[1] * nd)
    torch.testing.assert_close(ops.adain(x, scale, bias), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ops.instance_norm(x), hand_instance_norm(x), rtol=1e-12, atol=1e-12)
    low = ops.adain(x.to(torch.bfloat16), scale, bias)  # computed in float32, returned in the input's dtype
    assert low.dtype == torch.bfloat16 and (low.double() - expected).abs().max() < 0.1
    with pytest.raises(ValueError, match=r"scale: expected \[N, C\] = \[2, 4\]"):
        ops.adain(x, scale[:, :3], bias)


@pytest.mark.parametrize("nd", ND)
def test_feature_maps_after_the_identity_style_have_mean_0_and_std_1(nd):
    layer = AdaINLayer(nd, 3, 4, 6, noise_shape=SHAPES[nd])
    with torch.no_grad():
        layer.affine_scale.weight.zero_()  # y_s = its bias, 1
        layer.affine_bias.weight.zero_()  # y_b = its bias, 0
        layer.bias.normal_()
        layer.noise.strength.fill_(0.7)
    y = layer(5 * torch.randn(3, 3, *SHAPES[nd]) + 2, torch.randn(3, 6), noise_mode="random").flatten(2)
    torch.testing.assert_close(y.mean(-1), torch.zeros(3, 4), rtol=0, atol=1e-5)
    torch.testing.assert_close(y.std(-1, unbiased=False), torch.ones(3, 4), rtol=0, atol=1e-5)


@pytest.mark.parametrize("nd, shape, blocks", NETS)
def test_adain_generator_shapes_ws_and_state_dict_round_trip(nd, shape, blocks):
    G = tiny_adain(nd, shape).eval()
    assert len(G.synthesis.blocks) == blocks and G.num_ws == 2 * blocks
    assert G.synthesis.ws_index == [2 * i for i in range(blocks)]
    assert G.init_kwargs["style_block"] == "adain"
    for block in G.synthesis.blocks:
        assert isinstance(block.conv0, AdaINLayer) and isinstance(block.conv1, AdaINLayer)
        assert (block.num_conv, block.num_torgb) == (2, 0)
    assert G.synthesis.blocks[0].conv0.conv is None  # the constant is styled as it is
    out = G.synthesis.blocks[-1].torgb
    assert isinstance(out, EqualConv) and out.kernel_size == (1,) * nd and out.bias is not None
    assert not any(isinstance(m, (SynthesisLayer, ToOutput)) for m in G.modules())
    z = torch.randn(3, 8)
    img = G(z, noise_mode="const")
    assert img.shape == (3, 2, *shape) and torch.isfinite(img).all()
    G2 = Generator(**G.init_kwargs).eval()
    G2.load_state_dict(G.state_dict())
    assert torch.equal(G2(z, noise_mode="const"), img)


def test_adain_generator_every_w_matters_and_double_backward_works():
    G = tiny_adain(2, (16, 24), architecture="resnet")
    ws = G.mapping(torch.randn(2, 8)).detach().requires_grad_()
    img = G.synthesis(ws, noise_mode="const")
    (grad,) = torch.autograd.grad((img * torch.randn_like(img)).sum(), ws, create_graph=True)  # path length
    assert (grad.abs().sum(dim=(0, 2)) > 0).all()  # all 2 * blocks ws reach the output
    (grad.square().sum() + img.sum()).backward()  # as a G step with path length regularisation
    for name, p in G.synthesis.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("crossover", [1, 2, 3, 5])
def test_style_mixing_with_adain_changes_only_layers_from_the_crossover_on(crossover):
    G = tiny_adain(1, (32,), architecture="skip").eval()  # 4 blocks, 8 ws, an output layer on every block
    ws1, ws2 = G.mapping(torch.randn(2, 8)), G.mapping(torch.randn(2, 8))
    mixed = ws1.clone()
    mixed[:, crossover:] = ws2[:, crossover:]
    # Block i styles with w 2i and 2i + 1 (StyleGAN's two per resolution); its output layer reads no w, so it
    # changes only once one of its block's layers has.
    expected = [(i, last) for i in range(len(G.synthesis.blocks)) for last in (2 * i, 2 * i + 1, 2 * i + 1)]
    modules = [m for block in G.synthesis.blocks for m in (block.conv0, block.conv1, block.torgb)]
    outputs = {}
    for key, ws in (("plain", ws1), ("mixed", mixed)):
        outputs[key] = []
        handles = [m.register_forward_hook(lambda m, a, y, key=key: outputs[key].append(y)) for m in modules]
        G.synthesis(ws, noise_mode="const")
        for h in handles:
            h.remove()
    assert len(outputs["plain"]) == len(expected)
    for (i, last), a, b in zip(expected, outputs["plain"], outputs["mixed"]):
        if last < crossover:
            assert torch.equal(a, b), f"block {i}: a layer using w {last} changed before the crossover"
        else:
            assert not torch.allclose(a, b), f"block {i}: a layer using w {last} did not change"


def test_demod_stays_the_default_and_old_kwargs_rebuild_it():
    G = Generator(2, (16, 16), 2, z_dim=8, w_dim=8, mapping_layers=1, channel_base=64, channel_max=8)
    assert G.init_kwargs["style_block"] == "demod"
    assert not any(isinstance(m, AdaINLayer) for m in G.modules())
    old = {k: v for k, v in G.init_kwargs.items() if k != "style_block"}  # a checkpoint from before the option
    assert Generator(**old).state_dict().keys() == G.state_dict().keys()


def test_adain_refuses_what_only_demodulation_has():
    G = tiny_adain(2, (16, 24))
    z = torch.randn(2, 8)
    ref = G(z, noise_mode="const")
    for fused in (None, False):
        assert torch.equal(G(z, noise_mode="const", fused=fused), ref)
    with pytest.raises(ValueError, match="^fused: style_block 'adain' has no modulated convolution"):
        G(z, fused=True)
    with pytest.raises(ValueError, match="^fused:"):
        G.synthesis(G.mapping(z), fused=True)
    block = G.synthesis.blocks[-1]
    with pytest.raises(ValueError, match="^fused:"):
        block.to_output(torch.randn(2, block.conv1.out_channels, 16, 24), iter(()), fused=True)
    with pytest.raises(ValueError, match="^fused: AdaIN layers"):
        block.conv1(torch.randn(2, block.conv1.in_channels, 16, 24), torch.randn(2, 8), fused=True)
    with pytest.raises(ValueError, match="^num_fp16_res: float16 blocks .* fp16_dtype bfloat16"):
        tiny_adain(2, (16, 24), num_fp16_res=1, fp16_dtype="float16")
    low = tiny_adain(2, (16, 24), num_fp16_res=1, fp16_dtype="bfloat16").eval()  # bfloat16 blocks are fine
    assert low.synthesis.blocks[-1].dtype == torch.bfloat16
    out = low(z, noise_mode="const")
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    with pytest.raises(ValueError, match=r"^style_block: expected one of \('demod', 'adain'\), got 'adin'"):
        Generator(2, (16, 16), 2, style_block="adin")
    with pytest.raises(ValueError, match="^conv: a layer without a convolution keeps its input"):
        AdaINLayer(2, 3, 4, 8, conv=False)
