"""nnabla 1.39's deformable_convolution and adaptive_separable_convolution, written with
existing primitives, so every gradient (and its gradient) comes from theirs.

- deformable_convolution (deformable_convolution.cpp and its modulated_deformable_im2col):
  x (N, C, H, W), weight (C', C/group, Kh, Kw), offset (N, dg*2*Kh*Kw, H, W), mask (N,
  dg*Kh*Kw, H, W) (optional), bias (C',) (optional), dg = deformable_group. Kernel
  position k = i*Kw + j of output pixel (ho, wo) reads channel c (deformable group
  d = c // (C/dg)) at
      y = ho*stride_h - pad_h + i*dilation_h + offset[n, d*2K + 2k, ho*stride_h, wo*stride_w]
      x = wo*stride_w - pad_w + j*dilation_w + offset[n, d*2K + 2k + 1, ho*stride_h, wo*stride_w]
  bilinearly (corners outside x read 0, so a point a pixel or more outside reads 0), times
  mask[n, d*K + k, ho*stride_h, wo*stride_w]: the offsets and the mask are maps of x's
  size read at the output pixels' strided positions, the offsets (y, x) pairs, deformable
  group first. Those columns times the weight per group (`ConvolutionOfColumns`, the
  im2col product F.convolution uses), plus the bias. The reads are warp_by_grid's (one
  `GatherNd` of every corner, `ops.geometry.sample`), whose gradients give x's (the
  weighted scatter-add), the offsets' (through the bilinear weights) and the mask's.
- adaptive_separable_convolution (adaptive_separable_convolution.cpp): x (B, C, H, W),
  vertical kernels kv (B, Kv, >= Ho, >= Wo), horizontal kernels kh (B, Kh, >= Ho, >= Wo),
      y[b, c, h, w] = sum over j < Kv, i < Kh of kv[b, j, h, w] * kh[b, i, h, w]
                                                  * x[b, c, h + j, w + i]
  (Ho, Wo) = (H - Kv + 1, W - Kh + 1): x's (Kv, Kh) windows (`Im2Col` of each channel on
  its own, so the graph does not grow with the kernels) times the two kernels' products,
  summed over the window.
"""

from __future__ import annotations

import dataclasses

from symcompile.common.deferred import Deferred
from symcompile.ops.opdef import OpDef, registrar

sympy = Deferred("sympy")
P = Deferred("symcompile.ir.primitives")
I = Deferred("symcompile.ir.indexing")  # noqa: E741 - the module's short name, like P
geometry = Deferred("symcompile.ops.geometry")

OPS: dict[str, OpDef] = {}

_register = registrar(OPS)


# --- deformable_convolution ---------------------------------------------------------------

def optional_inputs(shapes) -> tuple[int | None, int | None]:
    """The positions of the mask and the bias among the inputs (x, weight, offset, ...) of
    these `shapes`, None where absent: as nnabla's C++ reads them, a fourth input of one
    axis is the bias, of more the mask."""
    if len(shapes) == 5:
        return 3, 4
    if len(shapes) == 4:
        return (None, 3) if len(shapes[3]) == 1 else (3, None)
    return None, None


def _deformable_shape(shapes, attrs):
    """nnabla's DeformableConvolution::setup_impl rules, and the reads it leaves undefined
    refused."""
    x, w, offset = (tuple(s) for s in shapes[:3])
    mask, bias = (None if i is None else tuple(shapes[i]) for i in optional_inputs(shapes))
    group, dg = attrs["group"], attrs["deformable_group"]
    pad, stride, dilation = attrs["pad"], attrs["stride"], attrs["dilation"]
    where = (f"F.deformable_convolution: x of shape {x}, weight of shape {w}, offset of "
             f"shape {offset}" + (f", mask of shape {mask}" if mask else ""))
    if attrs["base_axis"] != 1:
        raise ValueError(f"{where}: base_axis={attrs['base_axis']}: only 1 (x (N, C, H, W)) "
                         f"has a meaning in nnabla 1.39, whose setup compares the offset's "
                         f"axes 0, 2 and 3 with x's axes 0, 2 and 3 and reads one offset map "
                         f"per index of axis 0; reshape x to (N, C, H, W)")
    if len(x) != 4:
        raise ValueError(f"{where}: x must be 4-D (N, C, H, W): nnabla 1.39 runs 2-D "
                         f"deformable convolutions only")
    n, channels, height, width = x
    if len(w) != 4:
        raise ValueError(f"{where}: the weight must be 4-D (output channels, input channels "
                         f"/ group, Kh, Kw)")
    outmaps, per_group, kh, kw = w
    k = kh * kw
    for name, values, least in (("pad", pad, 0), ("stride", stride, 1),
                                ("dilation", dilation, 1)):
        if len(values) != 2:
            raise ValueError(f"{where}: {name}={values} must have one entry per spatial axis "
                             f"(2), as nnabla checks")
        if any(v < least for v in values):
            raise ValueError(f"{where}: {name}={values} must hold integers of at least "
                             f"{least}")
    if group < 1 or channels % group or outmaps % group:
        raise ValueError(f"{where}: group={group} must divide both the input channels "
                         f"({channels}) and the output channels ({outmaps}), as nnabla checks")
    if per_group != channels // group:
        raise ValueError(f"{where}: the input has {channels} channels and group={group}, so "
                         f"the weight's axis 1 must be {channels // group}, not {per_group}")
    if dg < 1 or channels % dg or outmaps % dg:
        raise ValueError(f"{where}: deformable_group={dg} must divide both the input channels "
                         f"({channels}) and the output channels ({outmaps}), as nnabla checks")
    if offset != (n, dg * 2 * k, height, width):
        raise ValueError(f"{where}: the offset must be of shape ({n}, {dg * 2 * k}, {height}, "
                         f"{width}): x's batch and size, and a (y, x) pair of channels per "
                         f"kernel position ({kh}x{kw}) and deformable group ({dg}), as nnabla "
                         f"checks")
    if mask is not None and mask != (n, dg * k, height, width):
        raise ValueError(f"{where}: the mask must be of shape ({n}, {dg * k}, {height}, "
                         f"{width}): x's batch and size, one channel per kernel position "
                         f"({kh}x{kw}) and deformable group ({dg}), as nnabla checks")
    if mask is not None and pad[0] >= (kh + 1) // 2 and pad[1] >= (kw + 1) // 2:
        raise ValueError(f"{where}: pad={pad} puts the kernel's centre in the padding "
                         f"({(kh + 1) // 2} or more on both axes of a {kh}x{kw} kernel); "
                         f"nnabla refuses this with a mask ('Center of kernel offset in the "
                         f"padding area'): pad less")
    out = []
    for axis, (size, kernel, p, s, d) in enumerate(zip((height, width), (kh, kw), pad, stride,
                                                      dilation, strict=True)):
        length = (size + 2 * p - d * (kernel - 1) - 1) // s + 1
        if length < 1:
            raise ValueError(f"{where}: spatial axis {axis} (length {size}, kernel {kernel}, "
                             f"pad {p}, stride {s}, dilation {d}) gives an output of length "
                             f"{length}; it must be at least 1: pad x, or use a smaller kernel "
                             f"or dilation")
        if (length - 1) * s > size - 1:
            raise ValueError(
                f"{where}: spatial axis {axis}: the output's last pixel {length - 1} reads the "
                f"offsets{' and the mask' if mask else ''} at {(length - 1) * s} = "
                f"{length - 1}*stride, past their {size} pixels (nnabla reads them at output "
                f"pixel * stride, on x's grid, and there reads other memory); this happens "
                f"when 2*pad > dilation*(kernel - 1): pad less")
        out.append(length)
    if bias is not None and bias != (outmaps,):
        raise ValueError(f"{where}: the bias of shape {bias} must have shape ({outmaps},), one "
                         f"value per output channel")
    return (n, outmaps) + tuple(out)


def _at_outputs(v, channels: int, sizes, out, stride, shapes):
    """A map v (N, channels, H, W) of x's size read where the output pixels are, at
    (ho*stride_h, wo*stride_w): (N, channels, Ho, Wo)."""
    if tuple(out) == tuple(sizes) and tuple(stride) == (1, 1):
        return v
    n = shapes.of(v)[0]
    stop = (n, channels) + tuple((m - 1) * s + 1 for m, s in zip(out, stride, strict=True))
    return I.Slice(v, P.shape_tuple((0, 0, 0, 0)), P.shape_tuple(stop),
                   P.shape_tuple((1, 1) + tuple(stride)))


def _kernel_grid(start_step, count: int, kernel_step, kernel: tuple, axis: int, shapes):
    """The undeformed positions along one spatial axis (0: rows, 1: columns), of shape
    (1, K, Ho, 1) or (1, K, 1, Wo): output pixel m at m*stride - pad (`start_step` =
    (-pad, stride), `count` pixels) plus kernel index i at i*dilation (`kernel_step`), for
    each kernel position k = i*Kw + j of the `kernel` (Kh, Kw)."""
    kh, kw = kernel
    along = kernel[axis]
    step = P.Arange(sympy.Integer(0), sympy.Integer(kernel_step), sympy.Integer(along))
    line = P.reshape(step, (kh, 1) if axis == 0 else (1, kw), shapes)
    positions = P.reshape(P.exact(line, (kh, kw), shapes), (1, kh * kw, 1, 1), shapes)
    start, stride = start_step
    pixels = P.Arange(sympy.Integer(start), sympy.Integer(stride), sympy.Integer(count))
    return positions + P.reshape(pixels, (1, 1, count, 1) if axis == 0 else (1, 1, 1, count),
                                 shapes)


@_register("deformable_convolution", "DeformableConvolution", 5, _deformable_shape)
def _deformable_convolution(args, attrs, ctx):
    shapes = ctx.shapes
    x, w, offset = args[:3]
    mask, bias = (None if i is None else args[i] for i in optional_inputs(ctx.in_shapes))
    n, channels, height, width = ctx.in_shapes[0]
    outmaps, _, kh, kw = ctx.in_shapes[1]
    out = ctx.out_shape[2:]
    pad, stride, dilation = attrs["pad"], attrs["stride"], attrs["dilation"]
    dg, k = attrs["deformable_group"], kh * kw
    per_dg, batch = channels // dg, n * dg
    # the offsets at the output pixels, (N*dg, K, 2, Ho, Wo): a (y, x) pair per position
    pairs = P.reshape(_at_outputs(offset, dg * 2 * k, (height, width), out, stride, shapes),
                      (batch, k, 2) + out, shapes)
    positions = []
    for axis in (0, 1):  # rows (the pairs' y), then columns (x)
        part = I.Slice(pairs, P.shape_tuple((0, 0, axis, 0, 0)),
                       P.shape_tuple((batch, k, axis + 1) + out), P.shape_tuple((1,) * 5))
        grid = _kernel_grid((-pad[axis], stride[axis]), out[axis], dilation[axis], (kh, kw),
                            axis, shapes)
        positions.append(grid + P.reshape(part, (batch, k) + out, shapes))
    # x as one image of per_dg channels (last) per sample and deformable group
    images = P.transpose(P.reshape(x, (n, dg, per_dg, height, width), shapes),
                         (0, 1, 3, 4, 2), shapes)
    images = P.reshape(images, (batch, height, width, per_dg), shapes)
    values = geometry.sample(images, positions, (height, width), "linear", True, ctx)
    if mask is not None:  # (N*dg, K, Ho, Wo, 1)
        scale = _at_outputs(mask, dg * k, (height, width), out, stride, shapes)
        values = values * P.reshape(scale, (batch, k) + out + (1,), shapes)
    # the im2col matrix: rows (channel, kernel position), columns (sample, output pixel)
    values = P.reshape(values, (n, dg, k) + out + (per_dg,), shapes)
    columns = P.reshape(P.transpose(values, (1, 5, 2, 0, 3, 4), shapes),
                        (channels * k, n * out[0] * out[1]), shapes)
    y = P.ConvolutionOfColumns(columns, w, P.shape_tuple(ctx.out_shape),
                               sympy.Integer(attrs["group"]))
    if bias is not None:
        y = y + P.reshape(bias, (1, outmaps, 1, 1), shapes)
    return y


# The offsets are read twice (their y and x halves) and x's corners four times: fused
# inputs become arrays first, so each is computed once and its gradients summed there.
OPS["deformable_convolution"] = dataclasses.replace(OPS["deformable_convolution"],
                                                    array_inputs=True)


# --- adaptive_separable_convolution -------------------------------------------------------

def _adaptive_separable_shape(shapes, attrs):
    """nnabla's AdaptiveSeparableConvolution::setup_impl rules, and the reads it leaves
    undefined refused."""
    x, kv, kh = (tuple(s) for s in shapes)
    where = (f"F.adaptive_separable_convolution: x of shape {x}, vertical_kernel of shape "
             f"{kv}, horizontal_kernel of shape {kh}")
    if not len(x) == len(kv) == len(kh) == 4:
        raise ValueError(f"{where}: all three must be 4-D: x (B, C, H, W), the kernels (B, "
                         f"Kv, H', W') and (B, Kh, H', W'), as nnabla reads them")
    b, c, height, width = x
    if not b == kv[0] == kh[0]:
        raise ValueError(f"{where}: the batch sizes differ (nnabla's check)")
    out_h, out_w = height - kv[1] + 1, width - kh[1] + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"{where}: the output would be {out_h}x{out_w} = (H - Kv + 1) x (W - "
                         f"Kh + 1); the kernels ({kv[1]} and {kh[1]} taps) must fit in x (pad "
                         f"x with F.pad first)")
    if not out_h <= kv[2] <= height:
        raise ValueError(f"{where}: the vertical kernel's height {kv[2]} must be in [{out_h}, "
                         f"{height}] (the output's height to x's), as nnabla checks")
    if not out_w <= kh[3] <= width:
        raise ValueError(f"{where}: the horizontal kernel's width {kh[3]} must be in "
                         f"[{out_w}, {width}] (the output's width to x's), as nnabla checks")
    if kv[3] < out_w or kh[2] < out_h:
        raise ValueError(f"{where}: each kernel is read at every output pixel, so it must be "
                         f"at least {out_h}x{out_w} (the output's size) in its last two axes; "
                         f"nnabla does not check the vertical kernel's width or the "
                         f"horizontal one's height and reads past their rows")
    return (b, c, out_h, out_w)


def _taps(kernel, out, shapes):
    """A kernel (B, K, H', W') at the output pixels, as (K, B, Ho, Wo)."""
    b, taps = shapes.of(kernel)[:2]
    if tuple(shapes.of(kernel)[2:]) != tuple(out):
        kernel = I.Slice(kernel, P.shape_tuple((0, 0, 0, 0)), P.shape_tuple((b, taps) + out),
                         P.shape_tuple((1, 1, 1, 1)))
    return P.transpose(kernel, (1, 0, 2, 3), shapes)


@_register("adaptive_separable_convolution", "AdaptiveSeparableConvolution", 3,
           _adaptive_separable_shape)
def _adaptive_separable_convolution(args, attrs, ctx):
    x, kv, kh = args
    shapes = ctx.shapes
    b, c, height, width = ctx.in_shapes[0]
    taps_v, taps_h = ctx.in_shapes[1][1], ctx.in_shapes[2][1]
    out = ctx.out_shape[2:]
    # x's (Kv, Kh) windows, each channel of each sample an image of its own: (Kv, Kh, B, C,
    # Ho, Wo), window (j, i) of output pixel (h, w) being x[b, c, h + j, w + i]
    windows = P.Im2Col(P.reshape(x, (b * c, 1, height, width), shapes),
                       P.shape_tuple((taps_v, taps_h)), P.shape_tuple((0, 0)),
                       P.shape_tuple((1, 1)), P.shape_tuple((1, 1)))
    windows = P.reshape(windows, (taps_v, taps_h, b, c) + out, shapes)
    vertical = P.reshape(_taps(kv, out, shapes), (taps_v, 1, b, 1) + out, shapes)
    horizontal = P.reshape(_taps(kh, out, shapes), (1, taps_h, b, 1) + out, shapes)
    return P.reduce_sum(windows * vertical * horizontal, (0, 1), False,
                        (taps_v, taps_h, b, c) + out, shapes)
