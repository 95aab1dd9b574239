import pytest
import torch

from ndgan.layers import SynthesisLayer, ToOutput
from ndgan.nets import Discriminator, Generator, default_base_shape

# Tiny networks: (spatial_dims, shape, base_shape or None), non-square and non-cubic on purpose.
CASES = [
    (1, (32,), None),
    (2, (16, 16), None),
    (2, (16, 24), None),
    (3, (8, 8, 8), None),
    (3, (10, 12, 14), (5, 6, 7)),
    (3, (8, 16, 16), None),
]
SMALL = dict(channel_base=64, channel_max=16)


def tiny_g(nd, shape, base=None, channels=2, **kw):
    return Generator(nd, shape, channels, z_dim=16, w_dim=16, mapping_layers=2, base_shape=base, **{**SMALL, **kw})


def tiny_d(nd, shape, base=None, channels=2, **kw):
    return Discriminator(nd, shape, channels, base_shape=base, mapping_layers=2, **{**SMALL, **kw})


def set_noise_strength(G, value):
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise.strength"):
                p.fill_(value)


@pytest.mark.parametrize("shape, base", [((128, 128), (4, 4)), ((32, 32, 32), (4, 4, 4)), ((80, 96, 112), (5, 6, 7)),
                                         ((32, 128, 128), (4, 16, 16)), ((64,), (4,)), ((128, 96), (8, 6))])
def test_default_base_shape(shape, base):
    assert default_base_shape(shape) == base


@pytest.mark.parametrize("nd, shape, base", CASES)
@pytest.mark.parametrize("g_arch, d_arch", [("skip", "resnet"), ("resnet", "skip"), ("orig", "orig")])
def test_shapes_and_d_accepts_g_output(nd, shape, base, g_arch, d_arch):
    G, D = tiny_g(nd, shape, base, architecture=g_arch), tiny_d(nd, shape, base, architecture=d_arch)
    img = G(torch.randn(4, 16))
    assert img.shape == (4, 2, *shape) and img.dtype == torch.float32
    assert D(img).shape == (4, 1)


def test_parameter_counts_match_official_stylegan2_ada():
    """Config F networks as StyleGAN2-ADA builds them (z = w = 512, 8 mapping layers, RGB, skip G,
    resnet D, mbstd group 4): the architecture is the published one."""
    def count(m):
        return sum(p.numel() for p in m.parameters())

    g64 = Generator(2, (64, 64), 3, channel_base=4096, channel_max=256)
    assert (count(g64), count(g64.mapping)) == (7_056_600, 2_101_248)
    assert count(Discriminator(2, (64, 64), 3, channel_base=4096, channel_max=256)) == 4_727_617
    assert count(Generator(2, (128, 128), 3, channel_base=16384, channel_max=512)) == 24_525_213
    assert count(Discriminator(2, (128, 128), 3, channel_base=16384, channel_max=512)) == 23_882_369


def test_num_ws_and_channels_per_block():
    G = Generator(2, (64, 64), 3, channel_base=4096, channel_max=256)
    assert G.num_ws == 10  # 1 + 2 * 4 convs, + the last output layer
    widths = [b.conv1.out_channels for b in G.synthesis.blocks]
    assert widths == [min(4096 // r, 256) for r in (4, 8, 16, 32, 64)]


def test_truncation_psi_zero_gives_the_average_sample():
    G = tiny_g(2, (16, 16)).train()
    for _ in range(3):
        G.mapping(torch.randn(8, 16))  # training mode: w_avg follows the batch mean
    assert G.mapping.w_avg.abs().sum() > 0
    G.eval()
    img = G(torch.randn(5, 16), truncation_psi=0, noise_mode="const")
    avg = G.synthesis(G.mapping.w_avg.reshape(1, 1, -1).repeat(1, G.num_ws, 1), noise_mode="const")
    torch.testing.assert_close(img, avg.expand_as(img))


def test_w_avg_update_and_truncation_cutoff():
    G = tiny_g(2, (16, 16)).train()
    old = G.mapping.w_avg.clone()
    z = torch.randn(6, 16)
    ws = G.mapping(z)
    torch.testing.assert_close(G.mapping.w_avg, 0.995 * old + 0.005 * ws[:, 0].mean(0))
    G.eval()
    before = G.mapping.w_avg.clone()
    ws = G.mapping(z)
    assert torch.equal(G.mapping.w_avg, before)  # eval mode leaves w_avg alone
    cut = G.mapping(z, truncation_psi=0.5, truncation_cutoff=2)
    torch.testing.assert_close(cut[:, :2], before + 0.5 * (ws[:, :2] - before))
    torch.testing.assert_close(cut[:, 2:], ws[:, 2:])


@pytest.mark.parametrize("nd, shape", [(2, (16, 16)), (3, (8, 8, 8))])
@pytest.mark.parametrize("crossover", [1, 3, 5])
def test_style_mixing_changes_only_layers_from_the_crossover_on(nd, shape, crossover):
    G = tiny_g(nd, shape).eval()
    ws1, ws2 = G.mapping(torch.randn(2, 16)), G.mapping(torch.randn(2, 16))
    mixed = ws1.clone()
    mixed[:, crossover:] = ws2[:, crossover:]
    records = {}

    def record(key):
        def hook(module, inputs, output):
            records[key].append((inputs[1], output))
        return hook

    layers = [m for m in G.synthesis.modules() if isinstance(m, (SynthesisLayer, ToOutput))]
    for key, ws in (("plain", ws1), ("mixed", mixed)):
        records[key] = []
        handles = [m.register_forward_hook(record(key)) for m in layers]
        G.synthesis(ws, noise_mode="const")
        for h in handles:
            h.remove()
    # The w index of every layer in execution order, from the block structure: (conv0,) conv1, to-output.
    indices = [i for block, start in zip(G.synthesis.blocks, G.synthesis.ws_index)
               for i in range(start, start + block.num_conv + block.num_torgb)]
    assert len(indices) == len(records["plain"]) == len(records["mixed"])
    for i, (_, y_a), (_, y_b) in zip(indices, records["plain"], records["mixed"]):
        if i < crossover:
            assert torch.equal(y_a, y_b), f"layer with w index {i} changed before the crossover {crossover}"
        else:
            assert not torch.allclose(y_a, y_b), f"layer with w index {i} did not change"


def test_noise_modes():
    G = tiny_g(2, (16, 16)).eval()
    set_noise_strength(G, 0.5)
    z = torch.randn(2, 16)
    assert torch.equal(G(z, noise_mode="const"), G(z, noise_mode="const"))
    assert not torch.equal(G(z, noise_mode="random"), G(z, noise_mode="random"))
    assert not torch.equal(G(z, noise_mode="none"), G(z, noise_mode="const"))


@pytest.mark.parametrize("nd, shape", [(2, (16, 16)), (3, (8, 8, 8))])
def test_circular_generator_is_exactly_roll_equivariant(nd, shape):
    """With circular padding everywhere, rolling the learned constant by one base cell and every noise map by
    the matching 2**i cells rolls the output by 2**k cells: any zero-padded layer would break this."""

    def rolled_output(G, z):
        with torch.no_grad():
            for i, block in enumerate(G.synthesis.blocks):
                if i == 0:
                    block.const.copy_(torch.roll(block.const, (1,) * nd, dims=tuple(range(1, nd + 1))))
                for layer in (getattr(block, "conv0", None), block.conv1):
                    if layer is not None:
                        noise = layer.noise.noise_const
                        noise.copy_(torch.roll(noise, (2**i,) * nd, dims=tuple(range(nd))))
        return G(z, noise_mode="const")

    G = tiny_g(nd, shape, padding_mode="circular", attn_res=(max(shape) // 2,)).eval()
    set_noise_strength(G, 0.3)
    zero = tiny_g(nd, shape, attn_res=(max(shape) // 2,)).eval()  # the same weights, zero padding
    zero.load_state_dict(G.state_dict())
    z = torch.randn(2, 16)
    k = len(G.synthesis.blocks) - 1
    roll = dict(shifts=(2**k,) * nd, dims=tuple(range(2, nd + 2)))
    before, zero_before = G(z, noise_mode="const"), zero(z, noise_mode="const")
    torch.testing.assert_close(rolled_output(G, z), torch.roll(before, **roll), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(rolled_output(zero, z), torch.roll(zero_before, **roll), atol=1e-2)


@pytest.mark.parametrize("arch", ["resnet", "skip"])
def test_circular_discriminator_features_are_roll_equivariant(arch):
    D = tiny_d(2, (16, 16), padding_mode="circular", architecture=arch, attn_res=(16,)).eval()
    x = torch.randn(2, 2, 16, 16)
    feats = []
    hook = D.epilogue.register_forward_pre_hook(lambda m, args: feats.append(args[0]))
    D(x)
    D(torch.roll(x, (4, 4), dims=(2, 3)))  # 4 pixels = one cell of the 4x4 base
    hook.remove()
    torch.testing.assert_close(feats[1], torch.roll(feats[0], (1, 1), dims=(2, 3)), rtol=1e-4, atol=1e-4)


def test_network_double_backward_for_r1_and_path_length():
    """R1 differentiates D's input gradient; path length differentiates G.synthesis's Jacobian product."""
    G, D = tiny_g(3, (8, 8, 8), attn_res=(8,)), tiny_d(3, (8, 8, 8), attn_res=(8,))
    x = torch.randn(4, 2, 8, 8, 8, requires_grad=True)
    (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
    grad.square().sum().backward()
    assert D.blocks[0].conv0.weight.grad.abs().sum() > 0 and D.blocks[0].attn.to_q.weight.grad.abs().sum() > 0
    ws = G.mapping(torch.randn(2, 16)).detach().requires_grad_()
    img = G.synthesis(ws, noise_mode="const")
    (pl,) = torch.autograd.grad((img * torch.randn_like(img)).sum(), ws, create_graph=True)
    pl.square().sum().backward()
    assert G.synthesis.blocks[0].conv1.weight.grad is not None


def test_discriminator_gradcheck_in_float64():
    D = tiny_d(1, (8,), channel_base=16, channel_max=4).double()
    x = torch.randn(2, 2, 8, dtype=torch.float64, requires_grad=True)
    assert D(x).dtype == torch.float64
    assert torch.autograd.gradcheck(D, (x,), fast_mode=True)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_reduced_precision_on_top_blocks(dtype):
    low = getattr(torch, dtype)
    G = tiny_g(2, (16, 16), num_fp16_res=2, fp16_dtype=dtype, conv_clamp=256, attn_res=(8, 16))
    seen = {}
    for i, block in enumerate(G.synthesis.blocks):
        block.conv1.register_forward_pre_hook(lambda m, args, i=i: seen.__setitem__(i, args[0].dtype))
    full = tiny_g(2, (16, 16), attn_res=(8, 16)).eval()
    full.load_state_dict(G.state_dict())
    z = torch.randn(4, 16)
    out = G.eval()(z, noise_mode="const")
    assert seen == {0: torch.float32, 1: low, 2: low}  # the base block stays in full precision
    assert out.dtype == torch.float32
    ref = full(z, noise_mode="const")
    assert (out - ref).abs().max() <= 5e-2 * ref.abs().max()
    D = tiny_d(2, (16, 16), num_fp16_res=1, fp16_dtype=dtype, conv_clamp=256, attn_res=(16,))
    for seed in range(4):  # R1-style double backward stays finite, attention included
        torch.manual_seed(seed)
        x = G.train()(torch.randn(4, 16)).detach().requires_grad_()
        (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
        assert torch.isfinite(grad).all()
        (grad.square().sum() + D(G(torch.randn(4, 16))).sum()).backward()
        for name, p in list(G.named_parameters()) + list(D.named_parameters()):
            assert p.grad is None or torch.isfinite(p.grad).all(), name


def test_mbstd_batch_rules_follow_official():
    D = tiny_d(2, (16, 16))
    assert D(torch.randn(2, 2, 16, 16)).shape == (2, 1)  # N < group size: one group of N
    assert D(torch.randn(8, 2, 16, 16)).shape == (8, 1)
    with pytest.raises(ValueError, match="batch size 6 is not divisible by the group size 4"):
        D(torch.randn(6, 2, 16, 16))


@pytest.mark.parametrize("make, match", [
    (lambda: tiny_g(3, (80, 96, 112), (5, 6, 8)), "shape: \\(80, 96, 112\\) is not base_shape"),
    (lambda: tiny_g(2, (16, 16), (1, 1)), "base_shape: every side must be >= 2"),
    (lambda: tiny_g(3, (16, 16)), "shape: expected 3 positive ints"),
    (lambda: tiny_g(2, 16), "shape: expected one size per spatial axis"),
    (lambda: tiny_g(4, (8, 8, 8, 8)), "spatial_dims: expected 1, 2 or 3"),
    (lambda: Generator(2, (64, 64), 3, channel_base=32, channel_max=16), "channel_base: 32 gives 0 channels"),
    (lambda: tiny_g(2, (16, 16), architecture="residual"), "architecture: expected one of"),
    (lambda: tiny_g(2, (16, 16), attn_res=(12,)), "attn_res: \\[12\\] are not block resolutions"),
    (lambda: tiny_g(2, (16, 16), channels=0), "channels: expected a positive int"),
    (lambda: tiny_d(2, (4, 4)), "needs at least one down-sampling block"),
    (lambda: tiny_g(2, (16, 16), fp16_dtype="half"), "fp16_dtype: expected one of"),
    (lambda: tiny_g(2, None), "shape: expected 2 positive ints"),
    (lambda: tiny_g(2, (16, 16), attn_res=16), "attn_res: expected a list of block resolutions"),
    (lambda: tiny_g(2, (16, 16), attn_res=(16,), attn_heads=0), "attn_heads: expected a positive int"),
    (lambda: tiny_g(2, (16, 16), channel_base=64.5), "channel_base: expected a positive int"),
    (lambda: tiny_g(2, (16, 16), channel_max=0), "channel_max: expected a positive int"),
    (lambda: tiny_d(2, (16, 16), mbstd_group_size=0), "mbstd_group_size: expected a positive int"),
    (lambda: tiny_d(2, (16, 16), mbstd_num_channels=3), "mbstd_num_channels: expected 0 or a divisor of the 16"),
    (lambda: tiny_d(2, (16, 16), c_dim=2, cmap_dim=0), "cmap_dim: expected a positive int"),
    (lambda: tiny_d(2, (16, 16), c_dim=True), "c_dim: expected a non-negative int"),
    (lambda: tiny_g(2, (16, 16), output_clamp=0), "output_clamp: expected null or a positive number"),
    (lambda: tiny_g(2, (16, 16), output_clamp=True), "output_clamp: expected null or a positive number"),
    (lambda: tiny_g(2, (16, 16), output_clamp="1"), "output_clamp: expected null or a positive number"),
    (lambda: tiny_g(2, (16, 16), use_noise=1), "use_noise: expected true or false"),
])
def test_bad_constructor_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("nd, shape, base", [CASES[0], CASES[2], CASES[4]])
def test_output_clamp_clips_the_unclamped_output_and_keeps_its_gradient_inside(nd, shape, base):
    torch.manual_seed(0)
    G = tiny_g(nd, shape, base, output_clamp=0.5)
    free = Generator(**{**G.init_kwargs, "output_clamp": None})
    free.load_state_dict(G.state_dict())
    assert Generator(**G.init_kwargs).synthesis.output_clamp == 0.5  # rebuilt from what checkpoints store
    z = torch.randn(4, 16)
    ws = G.mapping(z).detach().requires_grad_()
    ref_ws = ws.detach().clone().requires_grad_()
    x, ref = G.synthesis(ws, "const"), free.synthesis(ref_ws, "const")
    inside = ref.abs() < 0.5
    assert 0 < inside.float().mean() < 1  # both sides of the clip occur, so the test sees both
    assert torch.equal(x, ref.clamp(-0.5, 0.5)) and (x.abs() == 0.5).sum() == (~inside).sum()
    weight = torch.randn_like(x)
    (x * weight).sum().backward()
    (ref * weight * inside).sum().backward()
    torch.testing.assert_close(ws.grad, ref_ws.grad)  # clipped elements pass no gradient, the others all of it


def test_use_noise_false_builds_no_noise_inputs_and_ignores_the_noise_mode():
    torch.manual_seed(0)
    G, quiet = tiny_g(3, (8, 8, 8)), tiny_g(3, (8, 8, 8), use_noise=False)
    strengths = {n for n, _ in G.named_parameters() if n.endswith("noise.strength")}
    assert len(strengths) == 2 * len(G.synthesis.blocks) - 1  # conv0 and conv1 per block, the first has no conv0
    assert {n for n, _ in quiet.named_parameters()} == {n for n, _ in G.named_parameters()} - strengths
    assert not any("noise" in n for n, _ in quiet.named_buffers())
    assert Generator(**quiet.init_kwargs).synthesis.use_noise is False
    state = {k: v for k, v in G.state_dict().items() if ".noise." not in k}
    quiet.load_state_dict(state)
    set_noise_strength(G, 0.0)  # noise off in G by its strength: the same function as no noise inputs
    z = torch.randn(2, 16)
    for mode in ("random", "const", "none"):
        torch.testing.assert_close(quiet(z, noise_mode=mode), G(z, noise_mode="random"))


def test_bad_call_arguments():
    G, D = tiny_g(2, (16, 16)), tiny_d(2, (16, 16))
    Gc = tiny_g(2, (16, 16), c_dim=4)
    with pytest.raises(ValueError, match="z: expected a floating-point tensor \\[N, 16\\]"):
        G(torch.randn(2, 15))
    with pytest.raises(ValueError, match="c: expected a floating-point tensor \\[N, 4\\]"):
        Gc(torch.randn(2, 16))
    with pytest.raises(ValueError, match="c: this network is unconditional"):
        G(torch.randn(2, 16), torch.randn(2, 3))
    with pytest.raises(ValueError, match="x: expected \\[N, 2, 16, 16\\]"):
        D(torch.randn(2, 3, 16, 16))
    with pytest.raises(ValueError, match="ws: expected \\[N, num_ws, w_dim\\]"):
        G.synthesis(torch.randn(2, 3, 16))
    with pytest.raises(ValueError, match="c: batch size 3 differs from z's 2"):
        Gc(torch.randn(2, 16), torch.randn(3, 4))
    Dc = tiny_d(2, (16, 16), c_dim=4)
    with pytest.raises(ValueError, match="c: batch size 1 differs from x's 2"):
        Dc(torch.randn(2, 2, 16, 16), torch.randn(1, 4))
    with pytest.raises(ValueError, match="z: expected a floating-point tensor"):
        G(torch.ones(2, 16, dtype=torch.long))
    with pytest.raises(ValueError, match="truncation_cutoff: expected None or a non-negative int"):
        G(torch.randn(2, 16), truncation_psi=0.5, truncation_cutoff=2.0)


def test_resnet_blocks_equal_their_formula():
    """Residual blocks: (skip(x) + conv1(conv0(x))) / sqrt(2), the gain folded into each branch."""
    D = tiny_d(2, (16, 16), architecture="resnet")
    block = D.blocks[1]  # an inner block: no from-output layer
    x = torch.randn(2, block.conv0.in_channels, 8, 8)
    h, _ = block(x, None)
    torch.testing.assert_close(h, (block.skip(x) + block.conv1(block.conv0(x))) / 2**0.5)

    G = tiny_g(2, (16, 16), architecture="resnet").eval()
    gb = G.synthesis.blocks[1]
    x, ws = torch.randn(2, gb.conv0.in_channels, 4, 4), torch.randn(2, 2, 16)
    out, img = gb(x, None, ws, noise_mode="const")
    expected = (gb.skip(x) + gb.conv1(gb.conv0(x, ws[:, 0], "const"), ws[:, 1], "const")) / 2**0.5
    torch.testing.assert_close(out, expected)
    assert img is None  # resnet G: only the last block has an output layer


def test_mapping_accepts_other_float_dtypes_and_autocast():
    """Latents are cast to float32 (as StyleGAN2-ADA does), so w_avg tracking works under autocast."""
    G = tiny_g(2, (16, 16)).train()
    assert G.mapping(torch.randn(4, 16, dtype=torch.float64)).dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        img = G(torch.randn(4, 16), truncation_psi=0.7)
    assert G.mapping.w_avg.dtype == torch.float32 and torch.isfinite(img).all()


def test_continuous_labels_keep_their_magnitude_one_hot_ones_are_normalised():
    """One real-valued label: a normalised embedding is unit-norm, so the bias-free embedding of c and 2c is the
    same vector and the mapping cannot tell them apart; with continuous_labels it can, continuously."""
    from ndgan.nets.mapping import MappingNetwork

    torch.manual_seed(0)
    for continuous in (False, True):
        m = MappingNetwork(0, 1, 8, num_layers=2, w_avg_beta=None, continuous_labels=continuous)
        with torch.no_grad():
            m.embed.bias.zero_()
        w = m(None, torch.tensor([[1.0], [2.0], [2.001]]))
        assert torch.allclose(w[0], w[1], atol=1e-6) != continuous
        if continuous:
            assert (w[2] - w[1]).norm() < 0.01 * (w[1] - w[0]).norm()
