"""Pure tensor functions for StyleGAN2, written once for any number of spatial dimensions.

Every op takes ``x: [N, C, *S]`` and derives ``nd = x.ndim - 2``; there are no parameters, no state and no
random numbers here (see ``ndgan.layers`` for the modules).
"""

from .act import ACTIVATIONS, activation_gain, bias_act
from .attention import linear_attention, linear_attention_reference
from .conv import (choose_fused, conv_resample, conv_resample_reference, modulated_conv, modulated_conv_bias_act,
                   modulated_conv_reference)
from .nd import PADDING_MODES, conv, conv_transpose, ntuple, pad
from .norm import adain, channel_norm, instance_norm, minibatch_std, normalize_2nd_moment
from .resample import DEFAULT_TAPS, blur, downsample, setup_filter, upfirdn, upfirdn_reference, upsample

__all__ = [
    "ACTIVATIONS",
    "DEFAULT_TAPS",
    "PADDING_MODES",
    "activation_gain",
    "adain",
    "bias_act",
    "blur",
    "channel_norm",
    "choose_fused",
    "conv",
    "conv_resample",
    "conv_resample_reference",
    "conv_transpose",
    "downsample",
    "instance_norm",
    "linear_attention",
    "linear_attention_reference",
    "minibatch_std",
    "modulated_conv",
    "modulated_conv_bias_act",
    "modulated_conv_reference",
    "normalize_2nd_moment",
    "ntuple",
    "pad",
    "setup_filter",
    "upfirdn",
    "upfirdn_reference",
    "upsample",
]
