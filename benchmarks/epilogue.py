"""A synthesis layer's epilogue, composed vs in three passes, interleaved: python benchmarks/epilogue.py

After the modulated conv's shared-weight convolution ``y``, a synthesis layer computes ``lrelu(y * dcoefs +
noise * strength + bias) * sqrt(2)``. Composed (``modulated_conv`` then ``bias_act``) that is five passes over
the output. ``ops.modulated_conv_bias_act`` folds the gain into the scale and bias (lrelu commutes with a
positive gain) and runs ``addcmul``, then the noise and lrelu in place: three passes. Forward + backward of
both formulas on the layer shapes of the 2D and 3D benchmarks at batch 8, in float32 and bfloat16, the two
alternating within each repetition; the median ms of each and their ratio. The float32/bfloat16 rule in
``modulated_conv_bias_act`` follows from this table (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F

SHAPES = [(8, 128, 32, 32), (8, 64, 64, 64), (8, 32, 32, 32, 32), (8, 64, 16, 16, 16)]


def formulas(shape, dtype):
    """(composed, three-pass) closures, each a forward + backward of the epilogue."""
    n, o, ones, g = shape[0], shape[1], [1] * (len(shape) - 2), math.sqrt(2)
    y = torch.randn(*shape, dtype=dtype, requires_grad=True)
    dcoefs, bias = torch.rand(n, o, requires_grad=True), torch.randn(o, requires_grad=True)
    strength, noise = torch.tensor(0.3, requires_grad=True), torch.randn(n, 1, *shape[2:], dtype=dtype)

    def composed():
        x = y * dcoefs.to(dtype).reshape(n, o, *ones)
        x = x + noise * strength.to(dtype)
        x = F.leaky_relu(x + bias.to(dtype).reshape(1, o, *ones), 0.2) * g
        x.sum().backward()
        return x

    def three_pass():
        x = torch.addcmul((bias * g).to(dtype).reshape(1, o, *ones), y, (dcoefs * g).to(dtype).reshape(n, o, *ones))
        x = F.leaky_relu_(x.add_(noise * (strength * g).to(dtype)), 0.2)
        x.sum().backward()
        return x

    return composed, three_pass


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=15)
    args = p.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, forward + backward ms, median of "
          f"{args.reps} interleaved")
    for dtype in (torch.float32, torch.bfloat16):
        for shape in SHAPES:
            a, b = formulas(shape, dtype)
            if dtype == torch.float32:  # the same formulas in both precisions: checked where rounding is small
                torch.testing.assert_close(a(), b(), rtol=1e-5, atol=1e-5)
            times = ([], [])
            for i in range(args.reps):
                for j in ((0, 1) if i % 2 == 0 else (1, 0)):
                    start = time.perf_counter()
                    (a, b)[j]()
                    times[j].append(time.perf_counter() - start)
            ta, tb = (statistics.median(t) * 1e3 for t in times)
            print(f"  {str(dtype).split('.')[1]:9s} {str(shape):22s} composed {ta:7.2f}  three passes {tb:7.2f}  "
                  f"composed/three {ta / tb:.2f}", flush=True)


if __name__ == "__main__":
    main()
