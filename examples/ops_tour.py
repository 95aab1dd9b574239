"""A tour of ndgan's N-d ops and layers: the same code on a 1D signal, a 2D image and a 3D volume.

    python examples/ops_tour.py

For each rank it builds one StyleGAN2 synthesis step (modulated 3x3 up-convolution with noise, then a
modulated "to output" 1x1 conv) from ndgan.layers, runs it, and checks two of the facts the tests pin down:
the fused and unfused modulated convolutions agree, and FIR up-sampling keeps a constant signal constant.
"""

import torch

from ndgan import layers, ops

torch.manual_seed(0)
w_dim, channels = 32, 16
cases = {1: ((16,), 1), 2: ((8, 12), 3), 3: ((4, 6, 5), 2)}  # spatial shape, output channels (RGB, "DC", ...)

for spatial_dims, (shape, out_channels) in cases.items():
    up_shape = tuple(2 * s for s in shape)
    conv = layers.SynthesisLayer(spatial_dims, channels, channels, w_dim, up=2, noise_shape=up_shape,
                                padding_mode="circular")  # periodic, like the energy-grid unit cells
    to_out = layers.ToOutput(spatial_dims, channels, out_channels, w_dim)
    x = torch.randn(4, channels, *shape)  # [N, C, *S]
    w = torch.randn(4, w_dim)  # one style vector per sample

    y = to_out(conv(x, w, noise_mode="const"), w)
    fused_gap = (conv(x, w, noise_mode="const", fused=True) - conv(x, w, noise_mode="const", fused=False)).abs().max()
    flat = ops.upsample(torch.full((1, 1, *shape), 2.0), padding_mode="circular")

    print(f"{spatial_dims}D: x {tuple(x.shape)} -> output {tuple(y.shape)}; "
          f"|fused - unfused| = {fused_gap:.1e}; upsampled constant spans [{flat.min():.3f}, {flat.max():.3f}]")
