import io

import pytest
import torch

from ndgan.layers import ModulatedConv, ToOutput
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

    layers = [m for m in G.synthesis.modules() if isinstance(m, (ModulatedConv, ToOutput))]
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


@pytest.mark.parametrize("nd, shape", [(2, (16, 24)), (3, (8, 8, 8))])
def test_gradients_reach_every_parameter(nd, shape):
    G = tiny_g(nd, shape, c_dim=3, attn_res=(max(shape) // 2,))
    D = tiny_d(nd, shape, c_dim=3, attn_res=(max(shape),))
    set_noise_strength(G, 0.1)
    c = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 0]), 3).float()
    D(G(torch.randn(4, 16), c), c).sum().backward()
    for net in (G, D):
        for name, p in net.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_state_dict_round_trip_from_plain_data():
    """A checkpoint is plain data: constructor kwargs + state dict, loadable with weights_only=True."""
    G = tiny_g(3, (10, 12, 14), (5, 6, 7), c_dim=2, attn_res=(14,), padding_mode="circular").eval()
    D = tiny_d(3, (10, 12, 14), (5, 6, 7), c_dim=2).eval()
    buf = io.BytesIO()
    torch.save({"G": (G.init_kwargs, G.state_dict()), "D": (D.init_kwargs, D.state_dict())}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    G2, D2 = Generator(**ckpt["G"][0]).eval(), Discriminator(**ckpt["D"][0]).eval()
    G2.load_state_dict(ckpt["G"][1])
    D2.load_state_dict(ckpt["D"][1])
    z, c = torch.randn(2, 16), torch.eye(2)
    img = G(z, c, noise_mode="const")
    torch.testing.assert_close(G2(z, c, noise_mode="const"), img, rtol=0, atol=0)
    torch.testing.assert_close(D2(img, c), D(img, c), rtol=0, atol=0)


def test_circular_padding_reaches_every_layer():
    G, D = tiny_g(3, (8, 8, 8), padding_mode="circular"), tiny_d(3, (8, 8, 8), padding_mode="circular")
    modes = [m.padding_mode for net in (G, D) for m in net.modules() if hasattr(m, "padding_mode")]
    assert modes and set(modes) == {"circular"}


def test_periodic_generator_output_is_seamless():
    """With circular padding the output tiles without a seam: the jump across the wrap-around boundary
    is of the same size as the jumps inside; zero padding leaves a border artefact that circular does not."""
    torch.manual_seed(1)
    G = tiny_g(2, (16, 16), padding_mode="circular").eval()
    img = G(torch.randn(4, 16), noise_mode="none")
    inner = (img[..., 1:] - img[..., :-1]).abs().mean()
    seam = (img[..., 0] - img[..., -1]).abs().mean()
    assert seam < 2 * inner


def test_reduced_precision_on_top_blocks():
    G = tiny_g(2, (16, 16), num_fp16_res=2, fp16_dtype="bfloat16").eval()
    dtypes = [b.dtype for b in G.synthesis.blocks]
    assert dtypes == [torch.float32, torch.bfloat16, torch.bfloat16]  # 4x4, 8x8, 16x16
    full = tiny_g(2, (16, 16)).eval()
    full.load_state_dict(G.state_dict())
    z = torch.randn(3, 16)
    low, ref = G(z, noise_mode="const"), full(z, noise_mode="const")
    assert low.dtype == torch.float32
    assert (low - ref).abs().max() <= 5e-2 * ref.abs().max()
    D = tiny_d(2, (16, 16), num_fp16_res=1, fp16_dtype="bfloat16")
    assert [b.dtype for b in D.blocks] == [torch.bfloat16, torch.float32]
    assert D(low).dtype == torch.float32


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
])
def test_bad_constructor_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_call_arguments():
    G, D = tiny_g(2, (16, 16)), tiny_d(2, (16, 16))
    Gc = tiny_g(2, (16, 16), c_dim=4)
    with pytest.raises(ValueError, match="z: expected a tensor \\[N, 16\\]"):
        G(torch.randn(2, 15))
    with pytest.raises(ValueError, match="c: expected a tensor \\[N, 4\\]"):
        Gc(torch.randn(2, 16))
    with pytest.raises(ValueError, match="c: this network is unconditional"):
        G(torch.randn(2, 16), torch.randn(2, 3))
    with pytest.raises(ValueError, match="x: expected \\[N, 2, 16, 16\\]"):
        D(torch.randn(2, 3, 16, 16))
    with pytest.raises(ValueError, match="ws: expected \\[N, num_ws, w_dim\\]"):
        G.synthesis(torch.randn(2, 3, 16))


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
