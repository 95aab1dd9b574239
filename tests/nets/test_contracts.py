"""The contracts every network keeps, one parametrised test each over all of them (in the spirit of diffusers'
model tester mixin): gradients reach every parameter, a state dict saved as plain data (``weights_only``)
reproduces the outputs exactly in a freshly built network, and networks with ``init_kwargs`` rebuild from
them alone (plain data, so checkpoints stay free of code)."""

from __future__ import annotations

import io
import json

import pytest
import torch

from ndgan.metrics.digits import DigitClassifier
from ndgan.metrics.resnet import ResNetEncoder
from ndgan.nets import Discriminator, Generator, MappingNetwork, SynthesisNetwork

SMALL = dict(channel_base=64, channel_max=16)
LABELS = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 0]), 3).float()


def _g(nd, shape, **kw):
    return Generator(nd, shape, 2, z_dim=16, w_dim=16, mapping_layers=2, **{**SMALL, **kw})


def _d(nd, shape, **kw):
    return Discriminator(nd, shape, 2, mapping_layers=2, **{**SMALL, **kw})


def _with_noise(G):  # noise strengths start at 0; nonzero ones make every path carry a gradient
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise.strength"):
                p.fill_(0.1)
    return G


# id -> (build(), inputs(net) -> (args, kwargs)); non-square, non-cubic, conditional and attention on purpose.
NETWORKS = {
    "G-2d-conditional-attention": (lambda: _with_noise(_g(2, (16, 24), c_dim=3, attn_res=(12,))),
                                   lambda net: ((torch.randn(4, 16), LABELS), {"noise_mode": "const"})),
    "G-3d-conditional-attention": (lambda: _with_noise(_g(3, (8, 8, 8), c_dim=3, attn_res=(4,))),
                                   lambda net: ((torch.randn(4, 16), LABELS), {"noise_mode": "const"})),
    "G-3d-noncubic-circular": (lambda: _with_noise(_g(3, (10, 12, 14), base_shape=(5, 6, 7), c_dim=2, attn_res=(14,),
                                                      padding_mode="circular")),
                               lambda net: ((torch.randn(4, 16), torch.eye(2)[[0, 1, 1, 0]]), {"noise_mode": "const"})),
    "D-2d-conditional-attention": (lambda: _d(2, (16, 24), c_dim=3, attn_res=(24,)),
                                   lambda net: ((torch.randn(4, 2, 16, 24), LABELS), {})),
    "D-3d-conditional-attention": (lambda: _d(3, (8, 8, 8), c_dim=3, attn_res=(8,)),
                                   lambda net: ((torch.randn(4, 2, 8, 8, 8), LABELS), {})),
    "D-3d-noncubic": (lambda: _d(3, (10, 12, 14), base_shape=(5, 6, 7), c_dim=2),
                      lambda net: ((torch.randn(4, 2, 10, 12, 14), torch.eye(2)[[0, 1, 1, 0]]), {})),
    "D-1d-skip": (lambda: _d(1, (32,), architecture="skip"), lambda net: ((torch.randn(4, 2, 32),), {})),
    "mapping-conditional": (lambda: MappingNetwork(16, 3, 16, num_ws=4, num_layers=2),
                            lambda net: ((torch.randn(4, 16), LABELS), {})),
    "synthesis-2d": (lambda: _with_noise(SynthesisNetwork(2, (16, 24), 2, w_dim=16, **SMALL)),
                     lambda net: ((torch.randn(4, net.num_ws, 16),), {"noise_mode": "const"})),
    "digit-classifier": (lambda: DigitClassifier(), lambda net: ((torch.randn(4, 1, 32, 32),), {})),
    "resnet-encoder-3d": (lambda: _random_convs(ResNetEncoder(3, 1)), lambda net: ((torch.randn(2, 1, 16, 16, 16),), {})),
}


def _random_convs(net):  # MedicalNet's encoder starts at zero (its weights always come from a file)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("conv1.weight") or name.endswith("conv2.weight") or ".0.weight" in name:
                p.normal_(0, 0.2)
    return net


def _outputs(net, inputs):
    args, kwargs = inputs
    out = net(*args, **kwargs)
    if isinstance(net, DigitClassifier):  # features, then the class logits: both heads carry gradients
        return torch.cat([out.flatten(), net.classify(out).flatten()])
    return out if isinstance(out, torch.Tensor) else torch.cat([o.flatten() for o in out])


@pytest.mark.parametrize("name", list(NETWORKS))
def test_gradients_reach_every_parameter(name):
    build, inputs = NETWORKS[name]
    torch.manual_seed(0)
    net = build()
    _outputs(net, inputs(net)).square().sum().backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", list(NETWORKS))
def test_a_state_dict_saved_as_plain_data_reproduces_the_outputs(name):
    build, inputs = NETWORKS[name]
    torch.manual_seed(0)
    net = build().eval()
    torch.manual_seed(1)  # another initialisation: only the loaded state can make the outputs equal
    fresh = build().eval()
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    buf.seek(0)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    torch.manual_seed(2)
    x = inputs(net)
    with torch.no_grad():
        assert not torch.equal(_outputs(build().eval(), x), _outputs(net, x))  # a different init differs
        torch.testing.assert_close(_outputs(fresh, x), _outputs(net, x), rtol=0, atol=0)


@pytest.mark.parametrize("name", [n for n in NETWORKS if n.startswith(("G-", "D-"))])
def test_init_kwargs_are_plain_data_and_rebuild_the_network(name):
    build, inputs = NETWORKS[name]
    net = build().eval()
    kwargs = json.loads(json.dumps(net.init_kwargs))  # plain data: survives JSON (the safetensors export)
    rebuilt = type(net)(**kwargs).eval()
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in net.state_dict().items()}
    rebuilt.load_state_dict(net.state_dict())
    x = inputs(net)
    with torch.no_grad():
        torch.testing.assert_close(_outputs(rebuilt, x), _outputs(net, x), rtol=0, atol=0)
    assert rebuilt.init_kwargs == net.init_kwargs
