"""Candidate paths for the FIR parts of StyleGAN2's resampling, timed side by side: python benchmarks/fir_paths.py

1. Up-sampling ``upfirdn(up=2)``: depthwise transposed conv vs polyphase (one depthwise conv over all phases).
2. Blur ``[1,3,3,1]`` per axis: one dense depthwise kernel (4^nd taps) vs separable passes (4 taps per axis).
3. Up-convolution (3x3 transposed conv with stride 2, then the blur): two ops vs one transposed conv whose kernel
   is the 3x3 kernel convolved with the blur (6^nd taps; exact by associativity).
4. The dense blur's padding (2 on each side, as D's down-sampling blur): an explicit pad, then the depthwise conv,
   vs the conv's own padding (``ndops.pad_conv``); these two alternate within each repetition.

Forward passes, float32 and bfloat16, median of ``--reps`` after a warm-up, every pair timed in the same process
and checked for agreement first. Shapes are the energy3d (3D) and 64²/128² (2D) layers at batch 8.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ndgan.ops import nd as ndops
from ndgan.ops.conv import conv_resample
from ndgan.ops.resample import _dense_kernel, _polyphase_up, _transposed_up, blur, setup_filter


def _time(fn, reps):
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _separable_blur(x, f):
    nd = x.ndim - 2
    c = x.shape[1]
    y = ndops.pad(x, [(2, 1)] * nd)
    for axis in range(nd):
        shape = [1] * nd
        shape[axis] = f.numel()
        w = f.flip(0).to(x.dtype).reshape(1, 1, *shape).expand(c, 1, *shape).contiguous()
        y = ndops.conv(y, w, groups=c)
    return y


def _up_conv_two_ops(x, w, f):
    return conv_resample(x, w, f, up=2, padding=1)  # what SynthesisLayer(up=2) runs: transposed conv, then blur


def _up_conv_folded(x, w, f):
    nd = x.ndim - 2
    o, i = w.shape[:2]
    k = _dense_kernel(f.to(x.dtype), nd, 2**nd, flip=True)  # correlation with the flipped filter
    # Full convolution of every 3x3 kernel with the blur: [O, I, 6, ...].
    folded = ndops.conv(ndops.pad(w.reshape(o * i, 1, *w.shape[2:]), [(3, 3)] * nd), k[None, None].flip(
        list(range(2, 2 + nd)))).reshape(o, i, *[w.shape[2] + f.numel() - 1] * nd)
    y = ndops.conv_transpose(x, folded.transpose(0, 1).flip(list(range(2, 2 + nd))), stride=2)
    return ndops.pad(y, [(-1 - 1, -1 - 1)] * nd)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    torch.manual_seed(0)
    f = setup_filter()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, forward ms, median of {args.reps}")
    for dtype in (torch.float32, torch.bfloat16):
        name = str(dtype).split(".")[1]
        print(f"\n{name}: up-sampling, transposed vs polyphase")
        for shape in [(8, 256, 34, 34), (8, 128, 66, 66), (8, 32, 18, 18, 18), (8, 64, 10, 10, 10),
                      (8, 128, 6, 6, 6)]:
            nd = len(shape) - 2
            x = torch.randn(*shape, dtype=dtype)
            args_ = (f, (2,) * nd, [(2, 1)] * nd, False, 2**nd)
            torch.testing.assert_close(_transposed_up(x, *args_).float(), _polyphase_up(x, *args_).float(),
                                       rtol=2e-2, atol=2e-2)
            a, b = _time(lambda: _transposed_up(x, *args_), args.reps), _time(lambda: _polyphase_up(x, *args_), args.reps)
            print(f"  {str(shape):22s} {a:7.1f} {b:7.1f}  first/second {a / b:.2f}")
        print(f"{name}: blur, dense depthwise vs separable")
        for shape in [(8, 128, 64, 64), (8, 32, 35, 35, 35), (8, 64, 19, 19, 19)]:
            x = torch.randn(*shape, dtype=dtype)
            torch.testing.assert_close(blur(x, f).float(), _separable_blur(x, f).float(), rtol=2e-2, atol=2e-2)
            a, b = _time(lambda: blur(x, f), args.reps), _time(lambda: _separable_blur(x, f), args.reps)
            print(f"  {str(shape):22s} {a:7.1f} {b:7.1f}  first/second {a / b:.2f}")
        print(f"{name}: 3x3 up-conv, transposed conv + blur vs one transposed conv with the blur folded in")
        for shape, out in [((8, 256, 32, 32), 128), ((8, 64, 16, 16, 16), 32), ((8, 128, 8, 8, 8), 64)]:
            x = torch.randn(*shape, dtype=dtype)
            w = torch.randn(out, shape[1], *[3] * (len(shape) - 2), dtype=dtype) / (shape[1] * 3) ** 0.5
            ref = _up_conv_two_ops(x.double(), w.double(), f.double())
            torch.testing.assert_close(_up_conv_folded(x.double(), w.double(), f.double()), ref)
            a = _time(lambda: _up_conv_two_ops(x, w, f), args.reps)
            b = _time(lambda: _up_conv_folded(x, w, f), args.reps)
            print(f"  {str(shape):22s} {a:7.1f} {b:7.1f}  first/second {a / b:.2f}")
        print(f"{name}: blur padding 2, explicit pad + conv vs the conv's own padding (interleaved)")
        for shape in [(8, 128, 64, 64), (8, 256, 32, 32), (8, 32, 32, 32, 32), (8, 64, 16, 16, 16)]:
            nd = len(shape) - 2
            x = torch.randn(*shape, dtype=dtype)
            w = _dense_kernel(f.to(dtype), nd, 1, flip=True).expand(shape[1], 1, *[4] * nd).contiguous()
            pads = [(2, 2)] * nd
            explicit = lambda: ndops.conv(ndops.pad(x, pads), w, groups=shape[1])  # noqa: E731
            folded = lambda: ndops.pad_conv(x, w, pads, groups=shape[1])  # noqa: E731
            torch.testing.assert_close(explicit(), folded())
            a, b = _interleaved(explicit, folded, args.reps)
            print(f"  {str(shape):22s} {a:7.1f} {b:7.1f}  first/second {a / b:.2f}")


def _interleaved(first, second, reps):
    """Median ms of each, the two alternating within every repetition (against the machine's drift)."""
    first(), second()
    times = ([], [])
    for i in range(reps):
        for j in ((0, 1) if i % 2 == 0 else (1, 0)):
            start = time.perf_counter()
            (first, second)[j]()
            times[j].append(time.perf_counter() - start)
    return statistics.median(times[0]) * 1e3, statistics.median(times[1]) * 1e3


if __name__ == "__main__":
    main()
