"""The fast paths on a CUDA device against the float64 CPU references (skipped without a GPU).

Tolerances per dtype: float32 allows TF32 convolutions (cuDNN's default), so 1e-2 relative to the output
scale; bfloat16 5e-2; float16 2e-2.
"""

import pytest
import torch

from ndgan import ops
from tests.conftest import ND, SHAPES, cuda

pytestmark = cuda
TOL = {torch.float32: 1e-2, torch.bfloat16: 5e-2, torch.float16: 2e-2}


def _close(got, ref, dtype):
    scale = ref.abs().max().item()
    err = (got.double().cpu() - ref).abs().max().item()
    assert err <= TOL[dtype] * scale, f"{dtype}: max error {err:.3g} vs output scale {scale:.3g}"


@pytest.mark.parametrize("nd", ND)
@pytest.mark.parametrize("dtype", list(TOL))
@pytest.mark.parametrize("up, down", [(1, 1), (2, 1), (1, 2)])
def test_modulated_conv_cuda_matches_reference(nd, dtype, up, down):
    x = torch.randn(4, 8, *SHAPES[nd], dtype=torch.float64)
    w = torch.randn(6, 8, *[3] * nd, dtype=torch.float64)
    s = torch.randn(4, 8, dtype=torch.float64)
    ref = ops.modulated_conv_reference(x, w, s, up=up, down=down, padding=1)
    for fused in (True, False):
        got = ops.modulated_conv(x.cuda().to(dtype), w.cuda().to(dtype), s.cuda().to(dtype), up=up, down=down,
                                 padding=1, fused=fused)
        assert got.device.type == "cuda" and got.dtype == dtype
        _close(got, ref, dtype)


@pytest.mark.parametrize("nd", ND)
@pytest.mark.parametrize("dtype", list(TOL))
@pytest.mark.parametrize("up", [1, 2])
def test_modulated_conv_bias_act_cuda_matches_reference(nd, dtype, up):
    """The synthesis layer's conv and epilogue (three passes in float32, composed otherwise) on CUDA."""
    x = torch.randn(4, 8, *SHAPES[nd], dtype=torch.float64)
    w = torch.randn(6, 8, *[3] * nd, dtype=torch.float64)
    s, b = torch.randn(4, 8, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    shape = ops.modulated_conv_reference(x, w, s, up=up, padding=1).shape
    noise = torch.randn(4, 1, *shape[2:], dtype=torch.float64)
    ref = ops.bias_act(ops.modulated_conv_reference(x, w, s, noise, up=up, padding=1), b, act="lrelu")
    for fused in (True, False):
        got = ops.modulated_conv_bias_act(*(t.cuda().to(dtype) for t in (x, w, s, b, noise)), up=up, padding=1,
                                          fused=fused)
        assert got.device.type == "cuda" and got.dtype == dtype
        _close(got, ref, dtype)


@pytest.mark.parametrize("nd", ND)
@pytest.mark.parametrize("mode", ["zeros", "circular"])
def test_upfirdn_cuda_matches_reference_and_double_backward(nd, mode):
    x = torch.randn(2, 3, *SHAPES[nd], dtype=torch.float64)
    f = torch.tensor([1.0, 4.0, 2.0, -0.5], dtype=torch.float64)
    ref = ops.upfirdn_reference(x, f, up=2, down=1, padding=2, padding_mode=mode)
    xc = x.cuda().requires_grad_()
    got = ops.upfirdn(xc, f.cuda(), up=2, down=1, padding=2, padding_mode=mode)
    torch.testing.assert_close(got.cpu(), ref)
    (g,) = torch.autograd.grad(got.square().sum(), xc, create_graph=True)
    (gg,) = torch.autograd.grad(g.square().sum(), xc)  # double backward through the adjoint on the device
    xr = x.clone().requires_grad_()
    (g_ref,) = torch.autograd.grad(ops.upfirdn_reference(xr, f, up=2, down=1, padding=2, padding_mode=mode)
                                   .square().sum(), xr, create_graph=True)
    (gg_ref,) = torch.autograd.grad(g_ref.square().sum(), xr)
    torch.testing.assert_close(g.detach().cpu(), g_ref.detach())
    torch.testing.assert_close(gg.cpu(), gg_ref)


@pytest.mark.parametrize("nd", ND)
def test_default_filter_follows_the_device(nd):
    x = torch.randn(2, 3, *SHAPES[nd])
    for op in (ops.upsample, ops.downsample, ops.blur):
        torch.testing.assert_close(op(x.cuda()).cpu(), op(x), rtol=1e-4, atol=1e-5)
    w, s = torch.randn(4, 3, *[3] * nd), torch.randn(2, 3)
    torch.testing.assert_close(ops.modulated_conv(x.cuda(), w.cuda(), s.cuda(), up=2, padding=1).cpu(),
                               ops.modulated_conv(x, w, s, up=2, padding=1), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("tf32", [False, True])
def test_training_sets_tf32_from_the_config(tmp_path, tf32):
    from ndgan.train import load_config, train

    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = not tf32  # the opposite first
    try:
        train(load_config("configs/tiny2d.yaml", ["train.device=cuda", f"train.tf32={str(tf32).lower()}",
                                                  "train.kimg=0.008", "train.snapshot_kimg=0.008"]), tmp_path / "run")
        assert torch.backends.cuda.matmul.allow_tf32 is tf32 and torch.backends.cudnn.allow_tf32 is tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
