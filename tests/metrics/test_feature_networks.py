"""Feature networks of ndgan.metrics: the FID Inception-v3, LPIPS-VGG, the MedicalNet-style ResNet encoder and
the wrappers of features.py. No pretrained file is available offline, so every weights file here is random
tensors saved to tmp_path in the published key layout, and every network is compared with a slow reference
written below from the published architecture (not from ndgan's modules)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ndgan.metrics.features import ImageFeatures, SliceFeatures, VolumeFeatures, load_features
from ndgan.metrics.inception import ENV_VAR, WEIGHTS_NAME, InceptionV3, load_inception, load_state_dict
from ndgan.metrics.lpips import load_lpips
from ndgan.metrics.resnet import encoder_from_state_dict

_CONV_ND = (F.conv1d, F.conv2d, F.conv3d)
_MAX_POOL_ND = (F.max_pool1d, F.max_pool2d, F.max_pool3d)
_AVG_POOL_ND = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)


def _count(module):
    return sum(p.numel() for p in module.parameters())


def _assert_frozen_eval(net):
    assert not net.training and not any(m.training for m in net.modules())
    assert not any(p.requires_grad for p in net.parameters())


# ----------------------------------------------------------------------------------------------------------
# Inception-v3 (pytorch-fid's pt_inception-2015-12-05 layout)


def random_inception_state(seed=0):
    """Every tensor of the FID Inception, random: He-scaled convs, BN with non-trivial statistics. No
    num_batches_tracked keys (files older than PyTorch 0.4.1 lack them)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, ref in InceptionV3().state_dict().items():
        shape = ref.shape
        if key.endswith("num_batches_tracked"):
            continue
        if key.endswith(("running_var", "bn.weight")):
            state[key] = torch.rand(shape, generator=g) + 0.5
        elif key.endswith("conv.weight"):
            state[key] = torch.randn(shape, generator=g) * math.sqrt(2 / shape[1:].numel())
        else:  # bn.bias, bn.running_mean, fc.weight, fc.bias
            state[key] = torch.randn(shape, generator=g) * 0.1
    return state


@pytest.fixture(scope="module")
def inception_state():
    return random_inception_state()


@pytest.fixture(scope="module")
def inception_file(inception_state, tmp_path_factory):
    path = tmp_path_factory.mktemp("inception") / WEIGHTS_NAME
    torch.save(inception_state, path)
    return path


@pytest.fixture(scope="module")
def inception_net(inception_file):
    return load_inception(inception_file)


def test_inception_parameter_count_is_torchvision_minus_aux_head_plus_1008_classes():
    torchvision_inception_v3 = 27_161_264  # 1000 classes, with the auxiliary head (torchvision's model table)
    aux = (768 * 128 + 2 * 128) + (128 * 768 * 5 * 5 + 2 * 768) + (768 * 1000 + 1000)  # conv0+BN, conv1+BN, fc
    fid_fc_extra = 8 * 2048 + 8  # 1008 instead of 1000 classes
    net = InceptionV3()
    assert _count(net) == torchvision_inception_v3 - aux + fid_fc_extra
    assert net.fc.weight.shape == (1008, 2048) and net.num_features == 2048


def test_inception_output_shape_and_bilinear_resize_to_299(inception_net):
    """Any H, W gives [N, 2048]; the input is resized bilinearly (align_corners=False, as pytorch-fid) to 299,
    so resizing first gives the same features."""
    x = torch.rand(1, 3, 37, 53) * 2 - 1
    with torch.no_grad():
        y = inception_net(x)
        y299 = inception_net(F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False))
    assert y.shape == (1, 2048)
    assert torch.isfinite(y).all() and y.std() > 0
    torch.testing.assert_close(y, y299, rtol=1e-4, atol=1e-5)


def test_inception_rejects_non_rgb(inception_net):
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        inception_net(torch.zeros(1, 1, 32, 32))


def _ref_pool(x, kind):
    """3x3 pooling with stride 1 and padding 1 written out: 'avg' divides each window sum by the number of
    in-image cells (TF's SAME average pool), 'max' ignores the padding."""
    c, size = x.shape[1], x.shape[2:]
    if kind == "avg":
        ones = torch.ones(1, 1, *size)
        window_sum = F.conv2d(F.pad(x, (1, 1, 1, 1)), torch.ones(c, 1, 3, 3), groups=c)
        count = F.conv2d(F.pad(ones, (1, 1, 1, 1)), torch.ones(1, 1, 3, 3))
        return window_sum / count
    padded = F.pad(x, (1, 1, 1, 1), value=-math.inf)
    return torch.stack([padded[:, :, i:i + size[0], j:j + size[1]] for i in range(3) for j in range(3)]).amax(0)


def ref_inception(state, x):
    """The FID Inception-v3 written out from torchvision's Inception3 with pytorch-fid's changes
    (FIDInceptionA, C, E_1, E_2): convs without bias, BN eps 1e-3, ReLU; pools as in ``_ref_pool``;
    features = mean of Mixed_7c."""

    def cbr(t, name, stride=1, padding="same"):  # "same": half the kernel per axis (every stride-1 branch conv)
        w = state[f"{name}.conv.weight"]
        if padding == "same":
            padding = tuple(k // 2 for k in w.shape[2:])
        t = F.conv2d(t, w, stride=stride, padding=padding)
        t = F.batch_norm(t, state[f"{name}.bn.running_mean"], state[f"{name}.bn.running_var"],
                         state[f"{name}.bn.weight"], state[f"{name}.bn.bias"], training=False, eps=1e-3)
        return torch.relu(t)

    def chain(t, block, *names):
        for n in names:
            t = cbr(t, f"{block}.{n}")
        return t

    def block_a(t, b):
        return torch.cat([cbr(t, f"{b}.branch1x1"), chain(t, b, "branch5x5_1", "branch5x5_2"),
                          chain(t, b, "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"),
                          cbr(_ref_pool(t, "avg"), f"{b}.branch_pool")], 1)

    def block_b(t, b):
        d = cbr(chain(t, b, "branch3x3dbl_1", "branch3x3dbl_2"), f"{b}.branch3x3dbl_3", stride=2, padding=0)
        return torch.cat([cbr(t, f"{b}.branch3x3", stride=2, padding=0), d, F.max_pool2d(t, 3, 2)], 1)

    def block_c(t, b):
        return torch.cat([cbr(t, f"{b}.branch1x1"), chain(t, b, "branch7x7_1", "branch7x7_2", "branch7x7_3"),
                          chain(t, b, *[f"branch7x7dbl_{i}" for i in range(1, 6)]),
                          cbr(_ref_pool(t, "avg"), f"{b}.branch_pool")], 1)

    def block_d(t, b):
        b3 = cbr(cbr(t, f"{b}.branch3x3_1"), f"{b}.branch3x3_2", stride=2, padding=0)
        b7 = cbr(chain(t, b, "branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3"), f"{b}.branch7x7x3_4", stride=2,
                 padding=0)
        return torch.cat([b3, b7, F.max_pool2d(t, 3, 2)], 1)

    def block_e(t, b, pool):
        b3, d3 = cbr(t, f"{b}.branch3x3_1"), chain(t, b, "branch3x3dbl_1", "branch3x3dbl_2")
        return torch.cat([cbr(t, f"{b}.branch1x1"), cbr(b3, f"{b}.branch3x3_2a"), cbr(b3, f"{b}.branch3x3_2b"),
                          cbr(d3, f"{b}.branch3x3dbl_3a"), cbr(d3, f"{b}.branch3x3dbl_3b"),
                          cbr(_ref_pool(t, pool), f"{b}.branch_pool")], 1)

    x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    x = cbr(cbr(cbr(x, "Conv2d_1a_3x3", stride=2, padding=0), "Conv2d_2a_3x3", padding=0), "Conv2d_2b_3x3")
    x = F.max_pool2d(x, 3, 2)
    x = F.max_pool2d(cbr(cbr(x, "Conv2d_3b_1x1"), "Conv2d_4a_3x3", padding=0), 3, 2)
    for b in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
        x = block_a(x, b)
    x = block_b(x, "Mixed_6a")
    for b in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
        x = block_c(x, b)
    x = block_e(block_e(block_d(x, "Mixed_7a"), "Mixed_7b", "avg"), "Mixed_7c", "max")
    assert x.shape[1:] == (2048, 8, 8)
    return x.mean((2, 3))


def test_load_inception_equals_load_state_dict_and_written_out_reference(inception_state, inception_net):
    """load_inception(file) == InceptionV3().load_state_dict(same dict) == the written-out reference."""
    plain = InceptionV3()
    plain.load_state_dict(inception_state)  # missing num_batches_tracked: BN fills them in, as for the real file
    plain.eval()
    x = torch.rand(1, 3, 64, 48) * 2 - 1
    with torch.no_grad():
        got, want_plain, want_ref = inception_net(x), plain(x), ref_inception(inception_state, x)
    assert torch.isfinite(want_ref).all() and want_ref.std() > 0
    torch.testing.assert_close(got, want_plain, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got, want_ref, rtol=1e-4, atol=1e-5)
    _assert_frozen_eval(inception_net)


@pytest.mark.parametrize("name, cin, pool", [("Mixed_5b", 192, "avg"), ("Mixed_6b", 768, "avg"),
                                              ("Mixed_7b", 1280, "avg"), ("Mixed_7c", 2048, "max"),
                                              ("Mixed_6a", 288, "max_s2"), ("Mixed_7a", 768, "max_s2")])
def test_inception_pool_branches_follow_the_tf_fid_graph(inception_net, name, cin, pool):
    """The FID graph differs from torchvision's Inception in its pools: average pools do not count the padding,
    and the last block (Mixed_7c) max-pools its pool branch; the grid reductions max-pool 3x3 with stride 2."""
    block = getattr(inception_net, name)
    x = torch.randn(1, cin, 5, 6)
    with torch.no_grad():
        out = block(x)
        if pool == "max_s2":  # the pooled input itself is the last cin channels: 3x3, stride 2, 5x6 -> 2x2
            rows = [[x[..., 2 * i:2 * i + 3, 2 * j:2 * j + 3].amax((2, 3)) for j in range(2)] for i in range(2)]
            want = torch.stack([torch.stack(row, -1) for row in rows], -2)  # [1, cin, 2, 2]
            got = out[:, -cin:]
        else:
            want = block.branch_pool(_ref_pool(x, pool))
            got = out[:, -want.shape[1]:]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_load_inception_missing_file_names_the_env_var_and_file(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_inception(tmp_path / "absent.pth")
    message = str(info.value)
    assert "absent.pth" in message and "NDGAN_INCEPTION" in message and "pt_inception-2015-12-05" in message


def test_load_inception_without_path_or_env_var(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(FileNotFoundError, match="NDGAN_INCEPTION"):
        load_inception()


def test_load_inception_from_env_var(monkeypatch, inception_state, inception_file):
    monkeypatch.setenv("NDGAN_INCEPTION", str(inception_file))
    net = load_inception()
    loaded = net.state_dict()
    for key, value in inception_state.items():
        assert torch.equal(loaded[key], value), key
    _assert_frozen_eval(net)


@pytest.mark.parametrize("break_it", ["missing key", "mis-shaped", "aux head", "list", "not torch"])
def test_load_inception_rejects_wrong_files(tmp_path, inception_state, break_it):
    path = tmp_path / f"{break_it.replace(' ', '_')}.pth"
    if break_it == "not torch":
        path.write_bytes(b"definitely not a checkpoint")
    elif break_it == "list":
        torch.save(list(inception_state.values())[:3], path)
    else:
        state = dict(inception_state)
        if break_it == "missing key":
            del state["Mixed_6c.branch7x7_2.conv.weight"]
        elif break_it == "mis-shaped":
            state["Mixed_6c.branch7x7_2.conv.weight"] = torch.zeros(160, 160, 7, 1)  # (1, 7) expected
        else:  # torchvision's file has an auxiliary head and a 1000-class fc
            state["AuxLogits.fc.weight"] = torch.zeros(1000, 768)
        torch.save(state, path)
    with pytest.raises(ValueError) as info:
        load_inception(path)
    assert str(path) in str(info.value)


# ----------------------------------------------------------------------------------------------------------
# LPIPS-VGG

VGG_CONVS = [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256),
             (14, 256, 256), (17, 256, 512), (19, 512, 512), (21, 512, 512), (24, 512, 512), (26, 512, 512),
             (28, 512, 512)]
LPIPS_CHANNELS = (64, 128, 256, 512, 512)


def lpips_files(tmp_path, seed=0):
    """torchvision's vgg16 keys (with classifier keys to ignore) and lpips' v0.1 heads, as two files."""
    g = torch.Generator().manual_seed(seed)
    vgg = {}
    for i, cin, cout in VGG_CONVS:
        vgg[f"features.{i}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * math.sqrt(2 / (9 * cin))
        vgg[f"features.{i}.bias"] = torch.randn(cout, generator=g) * 0.1
    vgg["classifier.6.weight"] = torch.randn(1000, 4096, generator=g)
    vgg["classifier.6.bias"] = torch.randn(1000, generator=g)
    lin = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for k, c in enumerate(LPIPS_CHANNELS)}
    vgg_path, lin_path = tmp_path / "vgg16-397923af.pth", tmp_path / "vgg.pth"
    torch.save(vgg, vgg_path)
    torch.save(lin, lin_path)
    return vgg, lin, vgg_path, lin_path


def ref_lpips(vgg, lin, a, b):
    """LPIPS v0.1 (Zhang et al. 2018) written out from the lpips package's definition."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).reshape(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).reshape(1, 3, 1, 1)

    def taps(x):
        x, out = (x - shift) / scale, []
        for i, _, _ in VGG_CONVS:
            if i in (5, 10, 17, 24):
                x = F.max_pool2d(x, 2, 2)
            x = torch.relu(F.conv2d(x, vgg[f"features.{i}.weight"], vgg[f"features.{i}.bias"], padding=1))
            if i in (2, 7, 14, 21, 28):  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
                out.append(x)
        return out

    total = torch.zeros(a.shape[0])
    for k, (fa, fb) in enumerate(zip(taps(a), taps(b))):
        fa = fa / (torch.sqrt((fa**2).sum(1, keepdim=True)) + 1e-10)
        fb = fb / (torch.sqrt((fb**2).sum(1, keepdim=True)) + 1e-10)
        total += F.conv2d((fa - fb) ** 2, lin[f"lin{k}.model.1.weight"]).mean((1, 2, 3))
    return total


def test_lpips_equals_reference_and_is_a_distance(tmp_path):
    vgg, lin, vgg_path, lin_path = lpips_files(tmp_path)
    net = load_lpips([vgg_path, lin_path])
    _assert_frozen_eval(net)
    a, b = torch.rand(2, 2, 3, 32, 24) * 2 - 1
    with torch.no_grad():
        dab, dba, daa = net(a, b), net(b, a), net(a, a)
    assert dab.shape == (2,)
    torch.testing.assert_close(daa, torch.zeros(2), rtol=0, atol=1e-7)
    torch.testing.assert_close(dab, dba)
    assert (dab > 0).all()
    torch.testing.assert_close(dab, ref_lpips(vgg, lin, a, b), rtol=1e-5, atol=1e-7)


def test_lpips_from_a_comma_separated_string_or_one_file_holding_both_key_sets(tmp_path):
    """Same weights as the list form (whose distances the test above checks against the reference)."""
    vgg, lin, vgg_path, lin_path = lpips_files(tmp_path)
    torch.save({**vgg, **lin}, tmp_path / "both.pth")
    want = load_lpips([str(vgg_path), str(lin_path)]).state_dict()
    assert torch.equal(want["lins.4.weight"], lin["lin4.model.1.weight"])
    assert torch.equal(want["features.28.bias"], vgg["features.28.bias"])
    for spec in (f"{vgg_path},{lin_path}", tmp_path / "both.pth"):
        net = load_lpips(spec)
        _assert_frozen_eval(net)
        got = net.state_dict()
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


@pytest.mark.parametrize("which, missing", [("vgg", "LPIPS linear heads"), ("lin", "VGG-16 backbone")])
def test_lpips_with_one_file_says_what_is_missing(tmp_path, which, missing):
    _, _, vgg_path, lin_path = lpips_files(tmp_path)
    with pytest.raises(ValueError, match=missing):
        load_lpips([vgg_path if which == "vgg" else lin_path])


def test_lpips_rejects_mis_shaped_heads_and_missing_files(tmp_path):
    vgg, lin, vgg_path, _ = lpips_files(tmp_path)
    lin["lin2.model.1.weight"] = torch.rand(1, 128, 1, 1)
    torch.save(lin, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="lins.2.weight"):
        load_lpips([vgg_path, tmp_path / "bad.pth"])
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        load_lpips([vgg_path, tmp_path / "absent.pth"])


# ----------------------------------------------------------------------------------------------------------
# MedicalNet-style ResNet encoder

STRIDES, DILATIONS = (1, 2, 1, 1), (1, 1, 2, 4)


def medicalnet_state(blocks=(1, 1, 1, 1), bottleneck=False, shortcut="B", nd=3, in_channels=1, seed=0):
    """A MedicalNet (Chen et al. 2019) ResNet state dict written from its model definition: 'module.' prefix
    (DataParallel), BN with num_batches_tracked, shortcut B = 1-wide conv + BN in the first block of a stage
    whose channels or stride change, and a segmentation head conv_seg that a feature encoder ignores."""
    g = torch.Generator().manual_seed(seed)
    state = {}

    def conv(name, cout, cin, k):
        state[f"{name}.weight"] = torch.randn(cout, cin, *(k,) * nd, generator=g) * math.sqrt(2 / (cin * k**nd))

    def bn(name, c):
        state[f"{name}.weight"] = torch.rand(c, generator=g) + 0.5
        state[f"{name}.bias"] = torch.randn(c, generator=g) * 0.1
        state[f"{name}.running_mean"] = torch.randn(c, generator=g) * 0.1
        state[f"{name}.running_var"] = torch.rand(c, generator=g) + 0.5
        state[f"{name}.num_batches_tracked"] = torch.tensor(1000)

    conv("conv1", 64, in_channels, 7)
    bn("bn1", 64)
    inplanes, expansion = 64, 4 if bottleneck else 1
    for i, n in enumerate(blocks):
        planes = 64 * 2**i
        for j in range(n):
            p = f"layer{i + 1}.{j}."
            if bottleneck:
                conv(p + "conv1", planes, inplanes, 1), bn(p + "bn1", planes)
                conv(p + "conv2", planes, planes, 3), bn(p + "bn2", planes)
                conv(p + "conv3", planes * 4, planes, 1), bn(p + "bn3", planes * 4)
            else:
                conv(p + "conv1", planes, inplanes, 3), bn(p + "bn1", planes)
                conv(p + "conv2", planes, planes, 3), bn(p + "bn2", planes)
            if shortcut == "B" and j == 0 and (STRIDES[i] != 1 or inplanes != planes * expansion):
                conv(p + "downsample.0", planes * expansion, inplanes, 1)
                bn(p + "downsample.1", planes * expansion)
            inplanes = planes * expansion
    state["conv_seg.0.weight"] = torch.randn(inplanes, 32, *(2,) * nd, generator=g)
    state["conv_seg.0.bias"] = torch.randn(32, generator=g)
    bn("conv_seg.1", 32)
    state["conv_seg.6.weight"] = torch.randn(2, 32, *(1,) * nd, generator=g)
    return {"module." + k: v for k, v in state.items()}


def ref_resnet(state, x):
    """MedicalNet's ResNet forward up to the last stage, averaged over positions, in eval mode."""
    s = {k.removeprefix("module."): v for k, v in state.items()}
    nd = x.ndim - 2
    conv, max_pool, avg_pool = _CONV_ND[nd - 1], _MAX_POOL_ND[nd - 1], _AVG_POOL_ND[nd - 1]

    def bn(t, name):
        return F.batch_norm(t, s[f"{name}.running_mean"], s[f"{name}.running_var"], s[f"{name}.weight"],
                            s[f"{name}.bias"], training=False, eps=1e-5)

    x = torch.relu(bn(conv(x, s["conv1.weight"], stride=2, padding=3), "bn1"))
    x = max_pool(x, 3, stride=2, padding=1)
    for i in range(4):
        j = 0
        while f"layer{i + 1}.{j}.conv1.weight" in s:
            p, stride, dil = f"layer{i + 1}.{j}.", STRIDES[i] if j == 0 else 1, DILATIONS[i]
            if p + "conv3.weight" in s:  # bottleneck: 1, 3 (strided, dilated), 1
                out = torch.relu(bn(conv(x, s[p + "conv1.weight"]), p + "bn1"))
                out = torch.relu(bn(conv(out, s[p + "conv2.weight"], stride=stride, padding=dil, dilation=dil),
                                    p + "bn2"))
                out = bn(conv(out, s[p + "conv3.weight"]), p + "bn3")
            else:
                out = torch.relu(bn(conv(x, s[p + "conv1.weight"], stride=stride, padding=dil, dilation=dil),
                                    p + "bn1"))
                out = bn(conv(out, s[p + "conv2.weight"], padding=dil, dilation=dil), p + "bn2")
            if p + "downsample.0.weight" in s:  # shortcut B
                skip = bn(conv(x, s[p + "downsample.0.weight"], stride=stride), p + "downsample.1")
            elif stride != 1 or x.shape[1] != out.shape[1]:  # shortcut A: MedicalNet's downsample_basic_block
                skip = avg_pool(x, 1, stride=stride)
                zeros = torch.zeros(skip.shape[0], out.shape[1] - skip.shape[1], *skip.shape[2:])
                skip = torch.cat([skip, zeros], 1)
            else:
                skip = x
            x = torch.relu(out + skip)
            j += 1
    return x.flatten(2).mean(2)


RESNET_CASES = {  # name: (medicalnet_state kwargs, input shape)
    "resnet10 3D": (dict(), (2, 1, 24, 24, 24)),
    "resnet10 3D non-cubic, 2 channels": (dict(in_channels=2, seed=1), (2, 2, 20, 24, 28)),
    "resnet10 2D": (dict(nd=2, seed=2), (2, 1, 40, 36)),
    "shortcut A, 2 blocks in stage 2": (dict(blocks=(1, 2, 1, 1), shortcut="A", seed=3), (2, 1, 20, 18, 22)),
    "shortcut A 2D": (dict(nd=2, shortcut="A", seed=4), (2, 1, 36, 44)),
    "bottleneck": (dict(bottleneck=True, seed=5), (1, 1, 16, 16, 16)),
}


@pytest.mark.parametrize("case", list(RESNET_CASES))
def test_resnet_encoder_equals_medicalnet_reference(case):
    kwargs, shape = RESNET_CASES[case]
    state = medicalnet_state(**kwargs)
    net = encoder_from_state_dict(state)
    _assert_frozen_eval(net)
    features = 2048 if kwargs.get("bottleneck") else 512
    assert net.num_features == features and net.spatial_dims == len(shape) - 2 and net.in_channels == shape[1]
    x = torch.randn(shape)
    with torch.no_grad():
        got = net(x)
    want = ref_resnet(state, x)
    assert got.shape == (shape[0], features)
    assert torch.isfinite(want).all() and want.abs().max() > 0
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_resnet_shortcut_a_is_zero_padded_subsampled_input():
    """Shortcut A alone: with the residual branch of layer2.0 zeroed (BN scale and shift 0), the block's output
    is relu of the stride-2 subsampled input with the new channels zero."""
    state = medicalnet_state(shortcut="A", nd=3, seed=6)
    state["module.layer2.0.bn2.weight"].zero_()
    state["module.layer2.0.bn2.bias"].zero_()
    net = encoder_from_state_dict(state)
    x = torch.rand(2, 64, 5, 6, 7)
    with torch.no_grad():
        out = net.layer2[0](x)
    assert out.shape == (2, 128, 3, 3, 4)
    torch.testing.assert_close(out[:, :64], x[:, :, ::2, ::2, ::2])
    assert (out[:, 64:] == 0).all()


def test_resnet_loads_from_a_wrapped_medicalnet_file(tmp_path):
    state = medicalnet_state()
    torch.save({"state_dict": state}, tmp_path / "resnet_10.pth")
    net = encoder_from_state_dict(load_state_dict(tmp_path / "resnet_10.pth", "weights"))
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref_resnet(state, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("break_it", ["no layer4", "no stem", "mis-shaped"])
def test_resnet_rejects_wrong_state_dicts(break_it):
    state = medicalnet_state()
    if break_it == "no layer4":
        state = {k: v for k, v in state.items() if ".layer4." not in k}
    elif break_it == "no stem":
        del state["module.conv1.weight"]
    else:
        state["module.layer3.0.conv2.weight"] = torch.zeros(256, 256, 3, 3, 1)
    with pytest.raises(ValueError, match="my_weights.pth"):
        encoder_from_state_dict(state, "my_weights.pth")


# ----------------------------------------------------------------------------------------------------------
# features.py


class ChannelMeans(nn.Module):
    """A deterministic stand-in for an RGB image network: [N, 3, H, W] -> per-channel means [N, 3]."""

    num_features = 3

    def forward(self, x):
        assert x.ndim == 4 and x.shape[1] == 3
        return x.mean((2, 3))


class ChannelRange(nn.Module):
    """[N, 3, H, W] -> per channel (min, max), [N, 6]."""

    num_features = 6

    def forward(self, x):
        assert x.ndim == 4 and x.shape[1] == 3
        return torch.stack([x.amin((2, 3)), x.amax((2, 3))], 2).flatten(1)


def test_image_features_rgb_passes_through():
    x = torch.randn(2, 3, 5, 7)
    images = ImageFeatures(ChannelMeans(), 3, "means")
    assert images.num_features == 3
    torch.testing.assert_close(images(x), x.mean((2, 3)))


def test_image_features_grey_is_repeated_to_rgb():
    x = torch.randn(2, 1, 5, 7)
    images = ImageFeatures(ChannelMeans(), 1, "means")
    assert images.num_features == 3
    torch.testing.assert_close(images(x), x.mean((2, 3)).repeat(1, 3))


@pytest.mark.parametrize("channels", [2, 4])
def test_image_features_other_channel_counts_concatenate_grey_features(channels):
    x = torch.randn(3, channels, 5, 7)
    net = ChannelRange()
    images = ImageFeatures(net, channels, "range")
    assert images.num_features == channels * 6
    got = images(x)
    assert got.shape == (3, channels * 6)
    want = torch.cat([net(x[:, c:c + 1].repeat(1, 3, 1, 1)) for c in range(channels)], 1)
    torch.testing.assert_close(got, want)
    with pytest.raises(ValueError, match="range"):
        images(torch.randn(3, channels + 1, 5, 7))


@pytest.mark.parametrize("slices", [1, 4, 5, 8])
def test_slice_features_take_centred_slices(slices):
    """Channel a of the volume holds each voxel's index along axis a (plus 1000 per sample), so the min and
    max of channel a over a slice across axis a are that slice's index."""
    size = (7, 10, 13)
    grids = torch.meshgrid(*[torch.arange(n, dtype=torch.float32) for n in size], indexing="ij")
    x = torch.stack(grids)[None] + 1000 * torch.arange(2.0).reshape(2, 1, 1, 1, 1)  # [2, 3, 7, 10, 13]
    layer = SliceFeatures(ImageFeatures(ChannelRange(), 3, "range"), slices)
    got = layer(x)
    assert got.shape == (2, 3, slices, 6) and layer.num_features == 6
    want = torch.empty(2, 3, slices, 3, 2)  # [N, axis, slice, channel, (min, max)]
    for axis, n_axis in enumerate(size):
        for k in range(slices):
            index = (2 * k + 1) * n_axis // (2 * slices)  # floor((k + 0.5) * n / slices), exactly
            for c, n_c in enumerate(size):
                want[:, axis, k, c] = torch.tensor([index, index] if c == axis else [0, n_c - 1])
    want += 1000 * torch.arange(2.0).reshape(2, 1, 1, 1, 1)
    torch.testing.assert_close(got, want.flatten(3), rtol=0, atol=0)


def test_slice_features_rejects_bad_arguments():
    with pytest.raises(ValueError, match="slices"):
        SliceFeatures(ImageFeatures(ChannelMeans(), 3, "means"), 0)
    with pytest.raises(ValueError, match="3 spatial axes"):
        SliceFeatures(ImageFeatures(ChannelMeans(), 3, "means"), 2)(torch.zeros(1, 3, 4, 4))


class RecordingEncoder(nn.Module):
    """An N-d encoder stand-in that keeps its input: [N, C, *S] -> per-channel mean and mean square."""

    def __init__(self, in_channels, spatial_dims=3):
        super().__init__()
        self.in_channels, self.spatial_dims, self.num_features = in_channels, spatial_dims, 2 * in_channels

    def forward(self, x):
        self.seen = x
        flat = x.flatten(2)
        return torch.cat([flat.mean(2), flat.square().mean(2)], 1)


def test_volume_features_z_score_each_sample_and_channel():
    encoder = RecordingEncoder(2)
    layer = VolumeFeatures(encoder, 2, "recorder")
    x = torch.rand(3, 2, 6, 5, 4) * torch.tensor([1.0, 5.0]).reshape(1, 2, 1, 1, 1) + 3
    layer(x)
    seen = encoder.seen.flatten(2)
    torch.testing.assert_close(seen.mean(2), torch.zeros(3, 2), atol=1e-5, rtol=0)
    torch.testing.assert_close(seen.std(2), torch.ones(3, 2), atol=1e-2, rtol=0)  # either std convention


def test_volume_features_are_invariant_to_per_sample_scale_and_shift():
    state = medicalnet_state(in_channels=2, seed=7)
    layer = VolumeFeatures(encoder_from_state_dict(state), 2, "resnet")
    x = torch.randn(2, 2, 12, 14, 16)
    a = torch.rand(2, 2, 1, 1, 1) * 3 + 0.5
    b = torch.randn(2, 2, 1, 1, 1) * 2
    with torch.no_grad():
        y, y_affine = layer(x), layer(a * x + b)
    assert y.shape == (2, 512) and y.abs().max() > 0
    torch.testing.assert_close(y_affine, y, rtol=1e-4, atol=1e-4)


def test_volume_features_per_channel_for_a_one_channel_encoder():
    state = medicalnet_state(seed=8)
    layer = VolumeFeatures(encoder_from_state_dict(state), 2, "resnet")
    assert layer.num_features == 1024
    x = torch.randn(2, 2, 12, 14, 16) * torch.tensor([1.0, 4.0]).reshape(1, 2, 1, 1, 1)
    with torch.no_grad():
        got = layer(x)
    assert got.shape == (2, 1024)
    for c in range(2):
        xc = x[:, c:c + 1]
        flat = xc.flatten(2)
        z = (xc - flat.mean(2)[..., None, None, None]) / flat.std(2)[..., None, None, None]
        torch.testing.assert_close(got[:, 512 * c:512 * (c + 1)], ref_resnet(state, z), rtol=1e-3, atol=1e-4)


def test_volume_features_channel_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 channels"):
        VolumeFeatures(RecordingEncoder(2), 3, "recorder")


class VolumeStats(nn.Module):
    def forward(self, x):
        return torch.cat([x.mean(dim=(2, 3, 4)), x.amax(dim=(2, 3, 4))], 1)


def test_load_features_exported_program(tmp_path):
    path = tmp_path / "stats.pt2"
    batch = torch.export.Dim("batch")
    program = torch.export.export(VolumeStats(), (torch.randn(2, 2, 4, 5, 6),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    with pytest.raises(ValueError, match="features-program"):  # never loaded as weights
        load_features(path, channels=2, spatial_dims=3)
    net = load_features(path, channels=2, spatial_dims=3, program=True)
    assert "exported program" in net.name
    x = torch.randn(3, 2, 4, 5, 6)
    torch.testing.assert_close(net(x), torch.cat([x.mean((2, 3, 4)), x.amax((2, 3, 4))], 1))


@pytest.mark.filterwarnings("ignore:`torch.jit")  # deprecated in torch 2.13 but still what many users have
def test_load_features_torchscript_file(tmp_path):
    path = tmp_path / "stats.pt"
    torch.jit.script(VolumeStats()).save(str(path))
    with pytest.raises(ValueError, match="TorchScript program, not weights"):
        load_features(path, channels=2, spatial_dims=3)
    net = load_features(path, channels=2, spatial_dims=3, program=True)
    assert not net.training
    x = torch.randn(3, 2, 4, 5, 6)
    torch.testing.assert_close(net(x), torch.cat([x.mean((2, 3, 4)), x.amax((2, 3, 4))], 1))


def test_load_features_nn_module_is_wrapped():
    net = load_features(VolumeStats(), channels=2, spatial_dims=3)
    x = torch.randn(3, 2, 4, 5, 6)
    torch.testing.assert_close(net(x), VolumeStats()(x))


def test_load_features_inception_file(inception_file, inception_state):
    net = load_features(inception_file, channels=2, spatial_dims=2)
    assert isinstance(net, ImageFeatures) and net.num_features == 4096
    key = "Mixed_7c.branch_pool.conv.weight"
    assert torch.equal(net.net.state_dict()[key], inception_state[key])
    _assert_frozen_eval(net)
    with pytest.raises(ValueError, match="2D"):
        load_features(inception_file, channels=1, spatial_dims=3)


def test_load_features_resnet_file(tmp_path):
    state = medicalnet_state(seed=9)
    path = tmp_path / "resnet_10.pth"
    torch.save({"state_dict": state}, path)
    net = load_features(path, channels=1, spatial_dims=3)
    assert isinstance(net, VolumeFeatures) and net.num_features == 512
    _assert_frozen_eval(net)
    x = torch.randn(1, 1, 12, 14, 16) * 3 + 2
    z = (x - x.mean()) / x.std()
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref_resnet(state, z), rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="axes"):
        load_features(path, channels=1, spatial_dims=2)


def test_load_features_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        load_features(tmp_path / "absent.pth", channels=1, spatial_dims=3)
