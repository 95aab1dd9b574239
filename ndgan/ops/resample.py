"""FIR resampling for any number of spatial dimensions (StyleGAN2, Karras et al. 2020, appendix B).

``upfirdn`` is the one primitive: zero-stuff by ``up``, pad, filter with a separable FIR kernel, keep every
``down``-th sample, along every spatial axis of ``x: [N, C, *S]``. With the default taps ``[1, 3, 3, 1]``,
``upsample`` is bilinear in 2D and trilinear in 3D (half-pixel centres); ``downsample`` is the matching
anti-aliased decimation.
"""

from __future__ import annotations

import itertools
import math

import torch

from . import nd as ndops

__all__ = [
    "DEFAULT_TAPS",
    "setup_filter",
    "default_filter",
    "upfirdn",
    "upfirdn_reference",
    "upsample",
    "downsample",
    "blur",
    "upsample_padding",
    "downsample_padding",
]

#: StyleGAN2's resampling filter (a binomial, i.e. linear interpolation after zero-stuffing by 2).
DEFAULT_TAPS = (1, 3, 3, 1)


def setup_filter(taps=DEFAULT_TAPS, normalize: bool = True, device=None) -> torch.Tensor:
    """1-D float32 FIR taps ``[T]``, normalised to sum 1 unless ``normalize=False``."""
    target = device if device is not None else (taps.device if isinstance(taps, torch.Tensor) else None)
    f = torch.as_tensor(taps, dtype=torch.float32, device="cpu")  # checked on the CPU (also under a meta device)
    if f.ndim != 1 or f.numel() == 0:
        raise ValueError(f"taps: expected a non-empty 1-D sequence of numbers, got shape {tuple(f.shape)}")
    if not torch.isfinite(f).all():
        raise ValueError(f"taps: expected finite values, got {f.tolist()}")
    if normalize:
        total = f.sum()
        if total == 0:
            raise ValueError(f"taps: cannot normalise taps that sum to 0 ({f.tolist()}); pass normalize=False")
        f = f / total
    return f if target is None else f.to(target)


def check_filter(f, name: str = "f") -> torch.Tensor | None:
    """Validate a 1-D FIR filter (``None`` stands for the identity filter ``[1]``)."""
    if f is None:
        return None
    if not isinstance(f, torch.Tensor) or f.ndim != 1 or f.numel() == 0:
        shape = tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__
        raise ValueError(f"{name}: expected a non-empty 1-D tensor of taps (see setup_filter), got {shape}")
    return f


def _dense_kernel(f: torch.Tensor, nd: int, gain: float, flip: bool) -> torch.Tensor:
    """Outer product of ``f`` over nd axes, times ``gain``: ``[T] -> [T]*nd``."""
    k = f.flip(0) if flip else f
    dense = k
    for _ in range(nd - 1):
        dense = dense.unsqueeze(-1) * k
    return dense * gain


def upfirdn(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1, padding_mode="zeros"):
    """Upsample, FIR-filter and downsample every spatial axis of ``x``.

    x: ``[N, C, *S]``; f: 1-D taps ``[T]`` applied along every axis (``None``: identity);
    up/down: int or one int per axis; padding: int, one int per axis, or one ``(before, after)`` pair per
    axis, relative to the upsampled signal (negative crops); gain: total gain over all axes.
    Returns ``[N, C, *S']`` with ``S'[a] = (S[a]*up[a] + p0[a] + p1[a] - T) // down[a] + 1``.
    The filter is applied as a true convolution unless ``flip_filter``. In 2D this is StyleGAN2-ADA's
    ``upfirdn2d`` with its padding ``[px0, px1, py0, py1]`` written here as ``((py0, py1), (px0, px1))``.
    """
    nd = ndops.check_nd(x)
    f = check_filter(f)
    up = ndops.parse_factors(up, nd, "up")
    down = ndops.parse_factors(down, nd, "down")
    pads = ndops.parse_padding(padding, nd)
    ndops.check_padding_mode(padding_mode)
    taps = 1 if f is None else f.numel()
    _check_output(x, up, down, pads, (taps,) * nd, "upfirdn")

    def run(y, pads):
        if f is None or f.requires_grad:  # plain autograd (also differentiates with respect to the taps)
            return _upfirdn_zeros(y, f, up, down, pads, flip_filter, gain)
        return _UpFirDn.apply(y, f, up, down, pads, flip_filter, gain)

    if padding_mode == "circular":
        return periodic(run, x, up, down, pads, (taps,) * nd)
    return run(x, pads)


class _UpFirDn(torch.autograd.Function):
    """upfirdn with its adjoint as the backward pass.

    The gradient of a fixed FIR resampler is another one: swap up and down, flip the filter and mirror the
    padding. Computing it that way is several times faster on CPU than autograd's depthwise-conv backward
    (benchmarks/RESULTS.md), and since the backward calls this Function again, it is differentiable to any
    order (R1 and path-length regularisation need double backward). torch.func.vmap and torch.func.grad work
    through the generated rules. No custom jvp: TorchDynamo cannot trace a Function that defines one, and
    torch.compile without graph breaks matters more here than forward-mode AD.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x, f, up, down, pads, flip_filter, gain):
        return _upfirdn_zeros(x, f, up, down, pads, flip_filter, gain)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, f, up, down, pads, flip_filter, gain = inputs
        ctx.save_for_backward(f)
        ctx.args = (tuple(x.shape[2:]), tuple(output.shape[2:]), up, down, pads, flip_filter, gain)

    @staticmethod
    def backward(ctx, dy):
        (f,) = ctx.saved_tensors
        in_size, out_size, up, down, pads, flip_filter, gain = ctx.args
        taps = f.numel()
        # Adjoint of "y[j] = sum_i x[i] g[u*i + p0 - d*j]": an upfirdn of dy with up=d, down=u, the flipped
        # filter, p0' = T - 1 - p0, and p1' chosen so that the result has x's length.
        adjoint_pads = tuple((taps - 1 - p0, n * u - m * d + p0 - u + 1)
                             for n, m, u, d, (p0, _) in zip(in_size, out_size, up, down, pads))
        dx = _UpFirDn.apply(dy, f, down, up, adjoint_pads, not flip_filter, gain)
        return dx, None, None, None, None, None, None


def _upfirdn_zeros(x, f, up, down, pads, flip_filter, gain):
    """upfirdn with zero padding. The dense depthwise kernel is faster than per-axis passes for the
    short filters StyleGAN uses (benchmarks/RESULTS.md). Up-sampling runs either as one depthwise conv over
    all phases (polyphase) or as a depthwise transposed conv, whichever the benchmark found faster."""
    n, c, *size = x.shape
    nd = len(size)
    if f is None:  # Identity filter: zero-stuff, pad, decimate.
        y = _zero_stuff(x, up)
        y = ndops.pad(y, pads)
        y = y[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in down)]
        return y * gain if gain != 1 else y
    if any(u > 1 for u in up):
        # Measured on CPU (benchmarks/RESULTS.md): polyphase is 1.1-2.2x faster in 3D float32 and 2.5-7.8x in
        # bfloat16 (which has no fast depthwise transposed conv), but 0.6-0.9x in 2D float32.
        polyphase = x.device.type == "cpu" and (nd == 3 or x.dtype == torch.bfloat16)
        y = (_polyphase_up if polyphase else _transposed_up)(x, f, up, pads, flip_filter, gain)
        if any(d > 1 for d in down):
            y = y[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in down)]
        return y
    weight = _dense_kernel(f.to(x.device, x.dtype), nd, gain, flip=not flip_filter)  # correlation with flipped f
    weight = weight.expand(c, 1, *weight.shape).contiguous()  # [C, 1, *T]
    return ndops.pad_conv(x, weight, pads, stride=down, groups=c)


def _transposed_up(x, f, up, pads, flip_filter, gain):
    """Zero-stuff by ``up``, pad and filter (``down`` = 1) as one depthwise transposed conv: it zero-stuffs and
    convolves (true convolution) in one step; its output starts at upsampled index -(T-1), so shift by the
    requested padding."""
    c, nd, taps = x.shape[1], x.ndim - 2, f.numel()
    weight = _dense_kernel(f.to(x.device, x.dtype), nd, gain, flip=flip_filter)
    weight = weight.expand(c, 1, *weight.shape).contiguous()  # [C, 1, *T]
    y = ndops.conv_transpose(x, weight, stride=up, groups=c)
    return ndops.pad(y, [(p0 - taps + 1, p1 - taps + u) for (p0, p1), u in zip(pads, up)])


def _polyphase_up(x, f, up, pads, flip_filter, gain):
    """Zero-stuff by ``up``, pad and filter (``down`` = 1) without touching the zeros: polyphase.

    Output sample ``j = u*q + r`` of an axis only meets the taps ``t = u*s + c_r`` with ``c_r = r + T-1 - p0``,
    ``s`` from ``s0_r`` to ``s1_r``: phase ``r`` is a filter of at most ``ceil(T/u)`` taps run over x itself. All
    phases of all axes come out of one depthwise conv with ``prod(up)`` outputs per channel, each phase's taps
    aligned to the start of the kernel (its outputs then start ``S1 - s1_r`` samples later), and are
    interleaved into the result.
    """
    n, c, *size = x.shape
    nd = len(size)
    taps = f.numel()
    g = torch.cat([f.flip(0) if flip_filter else f, f.new_zeros(1)])  # true-convolution taps, then a zero
    kernel, x_pads, lengths, phases, shifts = None, [], [], [], []
    for a, (u, (p0, p1), m) in enumerate(zip(up, pads, size)):
        offsets = [r + taps - 1 - p0 for r in range(u)]  # c_r
        last = [(taps - 1 - o) // u for o in offsets]  # s1_r: the largest s with t < T
        k = max(s1 + o // u + 1 for s1, o in zip(last, offsets))  # taps of the longest phase (s0_r = -(c_r // u))
        top = max(last)
        length = m * u + p0 + p1 - taps + 1
        q = -(-length // u)  # outputs per phase (the last ones may run past the output: cropped)
        # Kernel index i of phase r holds tap u * (s1_r - i) + c_r (correlation order), or the zero.
        index = [[u * (s1 - i) + o if 0 <= u * (s1 - i) + o < taps else taps for i in range(k)]
                 for o, s1 in zip(offsets, last)]
        h = g[torch.tensor(index, device=f.device)]  # [u, k]
        shape = [1] * (2 * nd)
        shape[a], shape[nd + a] = u, k
        kernel = h.reshape(shape) if kernel is None else kernel * h.reshape(shape)
        shift = [top - s1 for s1 in last]  # phase r's output q sits at conv output q + shift[r]
        x_pads.append((top, q + max(shift) + k - 1 - m - top))  # x[j - top + i] feeds conv output j
        lengths.append(length)
        phases.append(q)
        shifts.append(shift)
    p = math.prod(up)
    kernel = (kernel * gain).to(x.device, x.dtype).reshape(1, p, *kernel.shape[nd:])
    weight = kernel.expand(c, p, *kernel.shape[2:]).reshape(c * p, 1, *kernel.shape[2:])  # [C*P, 1, *k]
    z = ndops.conv(ndops.pad(x, x_pads), weight, groups=c)  # [N, C*P, *Q']: channel-major, then phases
    z = z.reshape(n, c, *up, *z.shape[2:])
    interleaved = [v for q, u in zip(phases, up) for v in (q, u)]
    if ndops.memory_format(x) == torch.contiguous_format:
        y = x.new_empty(n, c, *interleaved)  # [N, C, Q1, u1, Q2, u2, ...]
    else:  # channels-last in, channels-last out (the reshape below keeps it)
        y = x.new_empty(n, *interleaved, c).movedim(-1, 1)
    for combo in itertools.product(*[range(u) for u in up]):
        src = z[(slice(None), slice(None)) + combo +
                tuple(slice(shift[r], shift[r] + q) for shift, r, q in zip(shifts, combo, phases))]
        y[(slice(None), slice(None)) + tuple(v for r in combo for v in (slice(None), r))] = src
    y = y.reshape(n, c, *(q * u for q, u in zip(phases, up)))
    return ndops.spatial_slice(y, [0] * nd, lengths)


def _zero_stuff(x, up):
    """Insert ``up - 1`` zeros after every sample along each spatial axis: ``[N, C, *S] -> [N, C, *(S*up)]``."""
    if all(u == 1 for u in up):
        return x
    n, c, *size = x.shape
    y = x.new_zeros(n, c, *(s * u for s, u in zip(size, up)))
    y[(slice(None), slice(None)) + tuple(slice(None, None, u) for u in up)] = x
    return y


def _check_output(x, up, down, pads, support, op):
    sizes = x.shape[2:]
    out = [(s * u + p0 + p1 - k) // d + 1 for s, u, (p0, p1), k, d in zip(sizes, up, pads, support, down)]
    if any(o < 1 for o in out):
        raise ValueError(
            f"{op}: padding {pads} leaves no output for spatial shape {tuple(sizes)} "
            f"(up={up}, down={down}, kernel support {support}); use less cropping or a larger input"
        )
    return out


def periodic(run, x, up, down, pads, support):
    """Evaluate a zero-padded resampling op as if ``x`` were periodic (circular padding).

    ``run(y, pads)`` must be the op "zero-stuff by up, pad by pads (negative crops), filter with support K,
    keep every down-th sample" (per axis). Wrapping ``ceil(p / up)`` input samples around each side of x covers
    the padding with the periodic signal; what the whole samples overshoot is cropped by a padding of
    ``p - h * up`` (in ``(-up, 0]``), so ``run`` computes exactly the requested output and nothing more.
    """
    _check_output(x, up, down, pads, support, "periodic resampling")
    halos = [(-(-max(p0, 0) // u), -(-max(p1, 0) // u)) for u, (p0, p1) in zip(up, pads)]
    rest = [(p0 - h0 * u, p1 - h1 * u) for u, (p0, p1), (h0, h1) in zip(up, pads, halos)]
    return run(ndops.pad(x, halos, mode="circular"), rest)


def upfirdn_reference(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1, padding_mode="zeros"):
    """Slow, literal ``upfirdn``: zero-stuff, pad, dense nd kernel, full-rate correlation, decimate."""
    nd = ndops.check_nd(x)
    up = ndops.parse_factors(up, nd, "up")
    down = ndops.parse_factors(down, nd, "down")
    pads = ndops.parse_padding(padding, nd)
    f = torch.ones(1, dtype=x.dtype, device=x.device) if f is None else check_filter(f).to(x.device, x.dtype)
    n, c = x.shape[:2]
    y = _zero_stuff(x, up)
    y = ndops.pad(y, pads, mode=padding_mode)
    kernel = _dense_kernel(f, nd, gain, flip=not flip_filter)  # flipped: correlation == true convolution
    y = ndops.conv(y.reshape(n * c, 1, *y.shape[2:]), kernel[None, None])
    y = y.reshape(n, c, *y.shape[2:])
    return y[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in down)]


def _taps(f) -> int:
    return 1 if f is None else f.numel()


def upsample_padding(taps: int, up, padding, nd: int):
    """StyleGAN2's padding for up-sampling: ``((T+up-1)//2, (T-up)//2)`` added to ``padding`` per axis."""
    up = ndops.parse_factors(up, nd, "up")
    pads = ndops.parse_padding(padding, nd)
    return [(p0 + (taps + u - 1) // 2, p1 + (taps - u) // 2) for (p0, p1), u in zip(pads, up)]


def downsample_padding(taps: int, down, padding, nd: int):
    """StyleGAN2's padding for down-sampling: ``((T-down+1)//2, (T-down)//2)`` added to ``padding``."""
    down = ndops.parse_factors(down, nd, "down")
    pads = ndops.parse_padding(padding, nd)
    return [(p0 + (taps - d + 1) // 2, p1 + (taps - d) // 2) for (p0, p1), d in zip(pads, down)]


def default_filter(device=None, dtype=torch.float32) -> torch.Tensor:
    """``DEFAULT_TAPS`` normalised, built directly on ``device`` (no validation, so no host sync)."""
    return torch.tensor(DEFAULT_TAPS, device=device, dtype=dtype) / sum(DEFAULT_TAPS)


def _default(f, x):
    return default_filter(x.device) if f is None else f


def upsample(x, f=None, up=2, padding=0, flip_filter=False, gain=1, padding_mode="zeros"):
    """Up-sample every spatial axis by ``up`` with FIR ``f`` (``None``: [1, 3, 3, 1]).

    ``[N, C, *S] -> [N, C, *(S*up)]``; total gain ``gain * prod(up)`` so a constant stays constant.
    Equals StyleGAN2-ADA's ``upsample2d`` in 2D.
    """
    nd = ndops.check_nd(x)
    f = check_filter(_default(f, x))
    ups = ndops.parse_factors(up, nd, "up")
    pads = upsample_padding(_taps(f), ups, padding, nd)
    return upfirdn(x, f, up=ups, padding=pads, flip_filter=flip_filter, gain=gain * math.prod(ups),
                   padding_mode=padding_mode)


def downsample(x, f=None, down=2, padding=0, flip_filter=False, gain=1, padding_mode="zeros"):
    """Low-pass with FIR ``f`` (``None``: [1, 3, 3, 1]) and keep every ``down``-th sample.

    ``[N, C, *S] -> [N, C, *(S//down)]``. Equals StyleGAN2-ADA's ``downsample2d`` in 2D.
    """
    nd = ndops.check_nd(x)
    f = check_filter(_default(f, x))
    pads = downsample_padding(_taps(f), down, padding, nd)
    return upfirdn(x, f, down=down, padding=pads, flip_filter=flip_filter, gain=gain, padding_mode=padding_mode)


def blur(x, f=None, padding=0, flip_filter=False, gain=1, padding_mode="zeros"):
    """Filter every spatial axis with FIR ``f`` (``None``: [1, 3, 3, 1]), keeping the shape ``[N, C, *S]``.

    Pads ``(T//2, (T-1)//2)`` per axis, as StyleGAN2-ADA's ``filter2d``.
    """
    nd = ndops.check_nd(x)
    f = check_filter(_default(f, x))
    taps = _taps(f)
    pads = [(p0 + taps // 2, p1 + (taps - 1) // 2) for p0, p1 in ndops.parse_padding(padding, nd)]
    return upfirdn(x, f, padding=pads, flip_filter=flip_filter, gain=gain, padding_mode=padding_mode)
