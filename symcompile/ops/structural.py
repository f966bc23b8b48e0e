"""Ops that mix elements: reductions, matrix products, shape changes, the softmax family.

Each lowers to `primitives` (or the `softmax` composites), whose VJPs are written by
hand, so a matrix product's gradient is a matrix product and softmax cross-entropy's is
``softmax - onehot``.
"""

from __future__ import annotations

import dataclasses
import math

from symcompile.common.deferred import Deferred
from symcompile.ops.layout import (
    convolution_layout,
    pooling_backward_layout,
    pooling_layout,
    with_channel_last,
)
from symcompile.ops.opdef import OpDef, reduced_shape, registrar

# SymPy and the primitives built on it load when the first graph is lowered.
sympy = Deferred("sympy")
P = Deferred("symcompile.ir.primitives")
softmax = Deferred("symcompile.ops.softmax")
E = Deferred("symcompile.ops.sympy_functions")

OPS: dict[str, OpDef] = {}


structural = registrar(OPS)


def _reduction_shape(shapes, attrs):
    return reduced_shape(shapes[0], attrs["axes"], attrs["keepdims"])


# --- reductions ------------------------------------------------------------------------

@structural("sum", "Sum", 1, _reduction_shape)
def _sum(args, attrs, ctx):
    return P.reduce_sum(args[0], attrs["axes"], attrs["keepdims"], ctx.in_shapes[0], ctx.shapes)


@structural("mean", "Mean", 1, _reduction_shape)
def _mean(args, attrs, ctx):
    count = math.prod(ctx.in_shapes[0][a] for a in attrs["axes"])
    return _sum(args, attrs, ctx) / count if count else sympy.nan


# nnabla's reduce_sum and reduce_mean (over every axis) are functions of their own, whose
# records users print (`y.parent.name` is "ReduceSum"): sum and mean under those names.
OPS["reduce_sum"] = dataclasses.replace(OPS["sum"], name="reduce_sum", type_name="ReduceSum")
OPS["reduce_mean"] = dataclasses.replace(OPS["mean"], name="reduce_mean",
                                         type_name="ReduceMean")


def _extremum(primitive_name: str):
    """max/min over any axes (`primitive_name`, a class of `primitives`): one axis
    directly, several by moving them last and flattening them, so the gradient goes to
    the first extremal element in C order."""

    def lower(args, attrs, ctx):
        primitive = getattr(P, primitive_name)
        x, axes, keep = args[0], attrs["axes"], attrs["keepdims"]
        shape = ctx.in_shapes[0]
        if not axes:
            return x
        if len(axes) == 1:
            return primitive(x, sympy.Integer(axes[0]), sympy.Integer(int(keep)))
        rest = [i for i in range(len(shape)) if i not in axes]
        flat = P.reshape(P.transpose(x, rest + list(axes), ctx.shapes),
                         [shape[i] for i in rest] + [math.prod(shape[a] for a in axes)],
                         ctx.shapes)
        reduced = primitive(flat, sympy.Integer(len(rest)), sympy.Integer(0))
        return P.reshape(reduced, reduced_shape(shape, axes, keep), ctx.shapes)

    return lower


OPS["max"] = OpDef("max", "Max", 1, False, _reduction_shape, _extremum("ReduceMax"))
OPS["min"] = OpDef("min", "Min", 1, False, _reduction_shape, _extremum("ReduceMin"))


# --- matrix products ---------------------------------------------------------------------

def _affine_shape(shapes, attrs):
    x, w = shapes[0], shapes[1]
    base = attrs["base_axis"]
    if not 0 <= base < len(x):
        raise ValueError(f"F.affine: base_axis {base} is out of range for an input of "
                         f"shape {x} (valid: 0..{len(x) - 1})")
    if len(w) < 2:
        raise ValueError(f"F.affine: weight of shape {w} must have at least 2 axes "
                         "(inputs, outputs...)")
    inmaps = math.prod(x[base:])
    if w[0] != inmaps:
        raise ValueError(
            f"F.affine: input of shape {x} flattens to {inmaps} features from base_axis "
            f"{base}, but weight of shape {w} expects {w[0]}; the weight's first axis must "
            "equal the product of the input's axes from base_axis on")
    if len(shapes) > 2 and shapes[2] != w[1:]:
        raise ValueError(f"F.affine: bias of shape {shapes[2]} does not match weight of shape "
                         f"{w}; the bias must have shape {w[1:]}")
    return x[:base] + w[1:]


@structural("affine", "Affine", 3, _affine_shape)
def _affine(args, attrs, ctx):
    x_shape, w_shape = ctx.in_shapes[0], ctx.in_shapes[1]
    base = attrs["base_axis"]
    x = P.reshape(args[0], (math.prod(x_shape[:base]), math.prod(x_shape[base:])), ctx.shapes)
    w = P.reshape(args[1], (w_shape[0], math.prod(w_shape[1:])), ctx.shapes)
    y = P.reshape(P.matmul(x, w, ctx.shapes), ctx.out_shape, ctx.shapes)
    return y + args[2] if len(args) > 2 else y


def _embed_shape(shapes, attrs):
    x, w = shapes
    if len(w) < 1:
        raise ValueError(f"F.embed: weight of shape {w} must have at least one axis (one row "
                         "per index)")
    return x + w[1:]


def _embed_labels(shapes, attrs) -> dict[int, int]:
    return {0: shapes[1][0]}  # the indices name rows of the weight


@structural("embed", "Embed", 2, _embed_shape, labels=_embed_labels)
def _embed(args, attrs, ctx):
    """w[x]: each index's row, as onehot(x) @ w (an index outside [0, rows) gives zeros,
    as in nnabla), so the weight's gradient is onehot(x).T @ g, one matrix product."""
    x_shape, w_shape = ctx.in_shapes
    rows, count = w_shape[0], math.prod(x_shape)
    labels = ctx.class_labels(args[0], rows) if ctx.class_labels else args[0]
    flat = P.reshape(labels, (count, 1), ctx.shapes)
    onehot = softmax.OneHot(flat, sympy.Integer(rows), sympy.Integer(1))
    w = P.reshape(args[1], (rows, math.prod(w_shape[1:])), ctx.shapes)
    return P.reshape(P.matmul(onehot, w, ctx.shapes), ctx.out_shape, ctx.shapes)


def _batch_matmul_shape(shapes, attrs):
    a, b = shapes
    if len(a) < 3 or len(b) < 3 or len(a) != len(b):
        raise ValueError(f"F.batch_matmul: inputs of shapes {a} and {b} must have the same "
                         "rank, at least 3 (batch axes, then a matrix), as in nnabla. Fix: "
                         "multiply matrices with F.affine or `a @ b`, or give them a batch "
                         "axis (F.reshape(a, (1,) + a.shape))")
    a_mat = a[-2:][::-1] if attrs["transpose_a"] else a[-2:]
    b_mat = b[-2:][::-1] if attrs["transpose_b"] else b[-2:]
    if a_mat[1] != b_mat[0]:
        raise ValueError(f"F.batch_matmul: cannot multiply matrices of shapes {a_mat} and "
                         f"{b_mat} (from inputs {a} and {b}): inner sizes differ")
    batch = []
    for i, (da, db) in enumerate(zip(a[:-2], b[:-2], strict=True)):
        if da != db and 1 not in (da, db):
            raise ValueError(f"F.batch_matmul: batch axis {i} of shapes {a} and {b} differs "
                             f"({da} vs {db}) and neither is 1")
        batch.append(max(da, db))
    return tuple(batch) + (a_mat[0], b_mat[1])


@structural("batch_matmul", "BatchMatmul", 2, _batch_matmul_shape)
def _batch_matmul(args, attrs, ctx):
    a, b = args
    if attrs["transpose_a"]:
        a = P.swap_last(a, ctx.shapes)
    if attrs["transpose_b"]:
        b = P.swap_last(b, ctx.shapes)
    return P.matmul(a, b, ctx.shapes)


# --- convolution --------------------------------------------------------------------------

def _convolution_shape(shapes, attrs):
    """nnabla's rules for x (*batch, C, *L), weight (C', C/group, *K), bias (C',)."""
    x, w = shapes[0], shapes[1]
    base, group = attrs["base_axis"], attrs["group"]
    pad, stride, dilation = attrs["pad"], attrs["stride"], attrs["dilation"]
    where = f"F.convolution: input of shape {x}, weight of shape {w}"
    if not 0 <= base < len(x) - 1:
        raise ValueError(f"{where}: base_axis {base} must leave a channel axis and at least "
                         f"one spatial axis after it (valid: 0..{len(x) - 2})")
    channels, spatial = x[base], x[base + 1:]
    if len(w) != 2 + len(spatial):
        raise ValueError(
            f"{where}: the weight must have {2 + len(spatial)} axes (output channels, input "
            f"channels / group, then one kernel size per spatial axis of the input: "
            f"{len(spatial)} after base_axis {base} and the channel axis)")
    for name, values in (("pad", pad), ("stride", stride), ("dilation", dilation)):
        if len(values) != len(spatial):
            raise ValueError(f"{where}: {name}={values} must have one entry per spatial axis "
                             f"({len(spatial)})")
        least = 0 if name == "pad" else 1
        if any(v < least for v in values):
            raise ValueError(f"{where}: {name}={values} must hold integers of at least {least}")
    if group < 1 or channels % group or w[0] % group:
        raise ValueError(
            f"{where}: group={group} must divide both the input channels ({channels}, axis "
            f"{base} of the input) and the output channels ({w[0]}, axis 0 of the weight)")
    if w[1] != channels // group:
        raise ValueError(
            f"{where}: the input has {channels} channels (axis {base}) and group={group}, so "
            f"the weight's axis 1 must be {channels // group}, not {w[1]}; the weight's shape "
            f"is (output channels, input channels / group, *kernel)")
    out = []
    for axis, (n, k, p, s, d) in enumerate(zip(spatial, w[2:], pad, stride, dilation,
                                               strict=True)):
        size = (n + 2 * p - d * (k - 1) - 1) // s + 1
        if size < 1:
            raise ValueError(
                f"{where}: spatial axis {axis} (length {n}, kernel {k}, pad {p}, stride {s}, "
                f"dilation {d}) gives an output of length {size} = (L + 2*pad - dilation*"
                f"(kernel - 1) - 1) // stride + 1; it must be at least 1: pad the input, or "
                f"use a smaller kernel or dilation")
        out.append(size)
    if len(shapes) > 2 and shapes[2] != (w[0],):
        raise ValueError(f"{where}: bias of shape {shapes[2]} must have shape ({w[0]},), one "
                         "value per output channel")
    return x[:base] + (w[0],) + tuple(out)


@structural("convolution", "Convolution", 3, _convolution_shape)
def _convolution(args, attrs, ctx):
    """The batch axes flattened into one, the kernel's convolution, the bias added per
    output channel (an elementwise sum: its gradient is the sum over the other axes)."""
    x_shape, out = ctx.in_shapes[0], ctx.out_shape
    base = attrs["base_axis"]
    x = P.reshape(args[0], (math.prod(x_shape[:base]),) + x_shape[base:], ctx.shapes)
    y = P.convolution(x, args[1], attrs["pad"], attrs["stride"], attrs["dilation"],
                      attrs["group"], ctx.shapes)
    y = P.reshape(y, out, ctx.shapes)
    if len(args) > 2:
        y = y + P.reshape(args[2], (1,) * base + (out[base],) + (1,) * (len(out) - base - 1),
                          ctx.shapes)
    return y


# --- layers over a weight another function makes (binarized, quantized) --------------------

def weight_layer_shape(op_name: str, shapes, attrs, convolutional: bool):
    """The output shape of the affine or convolution (`convolutional`) that `op_name`
    (binary_weight_affine, inq_convolution, ...) runs over its weight: `shapes` are x's,
    the weight's and the bias's, if any; its errors name `op_name`."""
    check = _convolution_shape if convolutional else _affine_shape
    try:
        return check(shapes, attrs)
    except ValueError as error:
        raise ValueError(f"F.{op_name}: {error}") from None


def weight_layer(layer, attrs, ctx, convolutional: bool):
    """That layer's lowering, over [x, the weight it uses, bias if any]."""
    return (_convolution if convolutional else _affine)(layer, attrs, ctx)


def _deconvolution_shape(shapes, attrs):
    """nnabla's rules for x (*batch, C, *L), weight (C, C'/group, *K), bias (C',): the
    transpose of the convolution of weight (C, C'/group, *K) that maps C' channels to C."""
    x, w = shapes[0], shapes[1]
    base, group = attrs["base_axis"], attrs["group"]
    pad, stride, dilation = attrs["pad"], attrs["stride"], attrs["dilation"]
    output_padding = attrs["output_padding"]
    where = f"F.deconvolution: input of shape {x}, weight of shape {w}"
    if not 0 <= base < len(x) - 1:
        raise ValueError(f"{where}: base_axis {base} must leave a channel axis and at least "
                         f"one spatial axis after it (valid: 0..{len(x) - 2})")
    channels, spatial = x[base], x[base + 1:]
    if len(w) != 2 + len(spatial):
        raise ValueError(f"{where}: the weight must have {2 + len(spatial)} axes (input "
                         f"channels, output channels / group, then one kernel size per "
                         f"spatial axis)")
    for name, values, least in (("pad", pad, 0), ("stride", stride, 1),
                                ("dilation", dilation, 1), ("output_padding", output_padding,
                                                            0)):
        if len(values) != len(spatial):
            raise ValueError(f"{where}: {name}={values} must have one entry per spatial axis "
                             f"({len(spatial)})")
        if any(v < least for v in values):
            raise ValueError(f"{where}: {name}={values} must hold integers of at least {least}")
    if any(o >= s for o, s in zip(output_padding, stride, strict=True)):
        raise ValueError(f"{where}: output_padding={output_padding} must be smaller than the "
                         f"stride {stride} on every axis (as nnabla requires)")
    if group < 1 or channels % group:
        raise ValueError(f"{where}: group={group} must divide the input channels ({channels}, "
                         f"axis {base} of the input)")
    if w[0] != channels:
        raise ValueError(f"{where}: the weight's axis 0 must be the input's {channels} channels "
                         f"(axis {base}); the weight's shape is (input channels, output "
                         f"channels / group, *kernel)")
    out = []
    for axis, (n, k, p, s, d, o) in enumerate(zip(spatial, w[2:], pad, stride, dilation,
                                                  output_padding, strict=True)):
        size = s * (n - 1) + d * (k - 1) + 1 - 2 * p + o
        if size < 1:
            raise ValueError(
                f"{where}: spatial axis {axis} (length {n}, kernel {k}, pad {p}, stride {s}, "
                f"dilation {d}) gives an output of length {size} = stride*(L - 1) + dilation*"
                f"(kernel - 1) + 1 - 2*pad + output_padding; it must be at least 1: use less "
                f"padding")
        out.append(size)
    outmaps = w[1] * group
    if len(shapes) > 2 and shapes[2] != (outmaps,):
        raise ValueError(f"{where}: bias of shape {shapes[2]} must have shape ({outmaps},), "
                         "one value per output channel")
    return x[:base] + (outmaps,) + tuple(out)


@structural("deconvolution", "Deconvolution", 3, _deconvolution_shape)
def _deconvolution(args, attrs, ctx):
    """The convolution's x-gradient kernel (col2im) applied to x: deconvolution is the
    transpose of a convolution; the bias is added per output channel."""
    x_shape, out = ctx.in_shapes[0], ctx.out_shape
    base = attrs["base_axis"]
    batch = math.prod(x_shape[:base])
    x = P.reshape(args[0], (batch,) + x_shape[base:], ctx.shapes)
    y = P.ConvolutionGradX(x, args[1], P.shape_tuple((batch,) + out[base:]),
                           P.shape_tuple(attrs["pad"]), P.shape_tuple(attrs["stride"]),
                           P.shape_tuple(attrs["dilation"]), sympy.Integer(attrs["group"]))
    y = P.reshape(y, out, ctx.shapes)
    if len(args) > 2:
        y = y + P.reshape(args[2], (1,) * base + (out[base],) + (1,) * (len(out) - base - 1),
                          ctx.shapes)
    return y


def _depthwise_weight_shape(x_shape, w_shape, base):
    """The depthwise weight (C*multiplier, *K) as a grouped convolution's (C*m, 1, *K)."""
    return (w_shape[0], 1) + tuple(w_shape[1:])


def _depthwise_convolution_shape(shapes, attrs):
    x, w = shapes[0], shapes[1]
    base, multiplier = attrs["base_axis"], attrs["multiplier"]
    where = f"F.depthwise_convolution: input of shape {x}, weight of shape {w}"
    if not 0 <= base < len(x) - 1:
        raise ValueError(f"{where}: base_axis {base} must leave a channel axis and at least "
                         f"one spatial axis after it (valid: 0..{len(x) - 2})")
    if multiplier < 1:
        raise ValueError(f"{where}: multiplier={multiplier} must be at least 1")
    channels = x[base]
    if len(w) != len(x) - base or w[0] != channels * multiplier:
        raise ValueError(f"{where}: the weight must have shape (channels * multiplier, "
                         f"*kernel) = ({channels * multiplier}, ...) with one kernel size per "
                         f"spatial axis ({len(x) - base - 1})")
    conv = dict(attrs, group=channels)
    conv.pop("multiplier")
    weight = _depthwise_weight_shape(x, w, base)
    return _convolution_shape((x, weight) + tuple(shapes[2:]), conv)


@structural("depthwise_convolution", "DepthwiseConvolution", 3, _depthwise_convolution_shape)
def _depthwise_convolution(args, attrs, ctx):
    """A convolution with one group per input channel, each giving `multiplier` outputs."""
    x_shape, w_shape = ctx.in_shapes[0], ctx.in_shapes[1]
    base = attrs["base_axis"]
    weight = P.reshape(args[1], _depthwise_weight_shape(x_shape, w_shape, base), ctx.shapes)
    conv = dict(attrs, group=x_shape[base])
    conv.pop("multiplier")
    return _convolution([args[0], weight, *args[2:]], conv, ctx)


# --- pooling ------------------------------------------------------------------------------

def _pooling_shape(function: str):
    """nnabla's rules for pooling x (*maps, *L) over its last len(kernel) axes."""

    def infer(shapes, attrs):
        x = shapes[0]
        kernel, stride, pad = attrs["kernel"], attrs["stride"], attrs["pad"]
        where = f"F.{function}: input of shape {x}, kernel {kernel}"
        if len(kernel) not in (2, 3):
            raise ValueError(f"{where}: the kernel must have 2 or 3 entries (nnabla 1.39 "
                             f"supports 2-D and 3-D pooling only)")
        if len(x) < len(kernel):
            raise ValueError(f"{where}: the input must have at least {len(kernel)} axes, one "
                             "per kernel entry (pooling acts on the last len(kernel) axes)")
        for name, values, least in (("kernel", kernel, 1), ("stride", stride, 1),
                                    ("pad", pad, 0)):
            if len(values) != len(kernel):
                raise ValueError(f"{where}: {name}={values} must have one entry per kernel "
                                 f"entry ({len(kernel)})")
            if any(v < least for v in values):
                raise ValueError(f"{where}: {name}={values} must hold integers of at least "
                                 f"{least}")
        if any(p >= k for p, k in zip(pad, kernel, strict=True)):
            raise ValueError(f"{where}: pad={pad} must be smaller than the kernel on every "
                             "axis (a window of padding alone has no defined value)")
        size = x[len(x) - len(kernel):]
        out = []
        for axis, (n, k, s, p) in enumerate(zip(size, kernel, stride, pad, strict=True)):
            length = ((n + 2 * p - k) // s + 1 if attrs["ignore_border"]
                      else (n + p - 1) // s + 1)
            if length < 1:
                raise ValueError(
                    f"{where}: pooled axis {axis} (length {n}, kernel {k}, stride {s}, pad "
                    f"{p}) gives an output of length {length} = (L + 2*pad - kernel) // "
                    f"stride + 1; it must be at least 1: pad the input, use a smaller kernel, "
                    f"or ignore_border=False")
            out.append(length)
        return x[:len(x) - len(kernel)] + tuple(out)

    return infer


def _pooling(kind: str):
    def lower(args, attrs, ctx):
        return P.pooling(kind, args[0], attrs["kernel"], attrs["stride"], attrs["pad"],
                         attrs["ignore_border"], attrs.get("including_pad", True))

    return lower


structural("max_pooling", "MaxPooling", 1, _pooling_shape("max_pooling"))(_pooling("max"))
structural("sum_pooling", "SumPooling", 1, _pooling_shape("sum_pooling"))(_pooling("sum"))
structural("average_pooling", "AveragePooling", 1,
           _pooling_shape("average_pooling"))(_pooling("average"))


def _max_pooling_backward_shape(shapes, attrs):
    """x's shape; dy must have the shape max_pooling gives x."""
    dy, x = shapes
    pooled = _pooling_shape("max_pooling_backward")((x,), attrs)
    if tuple(dy) != pooled:
        raise ValueError(f"F.max_pooling_backward: dy of shape {tuple(dy)} is not the shape "
                         f"{pooled} that max_pooling(x, kernel={attrs['kernel']}, stride="
                         f"{attrs['stride']}, pad={attrs['pad']}) gives x of shape {tuple(x)}; "
                         f"dy is the gradient of that max pooling's output")
    return tuple(x)


@structural("max_pooling_backward", "MaxPoolingBackward", 2, _max_pooling_backward_shape)
def _max_pooling_backward(args, attrs, ctx):
    """max_pooling's x-gradient for the cotangent dy, as a function (nnabla's, for n-th
    order gradients): linear in dy, whose gradient picks at the maxima; 0 in x."""
    dy, x = args
    return P.MaxPoolingGrad(x, dy, P.shape_tuple(attrs["kernel"]),
                            P.shape_tuple(attrs["stride"]), P.shape_tuple(attrs["pad"]),
                            sympy.Integer(int(bool(attrs["ignore_border"]))))


def _unpooling_shape(shapes, attrs):
    x, kernel = shapes[0], attrs["kernel"]
    if len(kernel) > len(x) or any(k < 1 for k in kernel):
        raise ValueError(f"F.unpooling: kernel {kernel} must hold positive ints, at most one "
                         f"per axis of the input of shape {x}")
    lead = len(x) - len(kernel)
    return x[:lead] + tuple(n * k for n, k in zip(x[lead:], kernel, strict=True))


@structural("unpooling", "Unpooling", 1, _unpooling_shape)
def _unpooling(args, attrs, ctx):
    """Each element repeated kernel[i] times along the i-th of the last len(kernel) axes:
    a broadcast along new axes after each, merged (its gradient sums each block)."""
    x_shape, kernel = ctx.in_shapes[0], attrs["kernel"]
    lead = len(x_shape) - len(kernel)
    spread = x_shape[:lead] + tuple(d for n in x_shape[lead:] for d in (n, 1))
    tiled = x_shape[:lead] + tuple(d for n, k in zip(x_shape[lead:], kernel, strict=True)
                                   for d in (n, k))
    y = P.BroadcastTo(P.reshape(args[0], spread, ctx.shapes), P.shape_tuple(tiled))
    return P.reshape(y, ctx.out_shape, ctx.shapes)


# nnabla's channel_last=True (NHWC inputs, weights with the channels last): the rules
# above, run channels first between transposes.
for _name, _layout in (("convolution", convolution_layout), ("deconvolution", convolution_layout),
                       ("max_pooling", pooling_layout), ("sum_pooling", pooling_layout),
                       ("average_pooling", pooling_layout), ("unpooling", pooling_layout),
                       ("max_pooling_backward", pooling_backward_layout)):
    OPS[_name] = with_channel_last(OPS[_name], _layout)


def _global_average_pooling_shape(shapes, attrs):
    x = shapes[0]
    if len(x) < 2:
        raise ValueError(f"F.global_average_pooling: input of shape {x} must have at least 2 "
                         "axes (samples, channels, then the axes averaged)")
    return x[:2] + (1, 1)


@structural("global_average_pooling", "GlobalAveragePooling", 1, _global_average_pooling_shape)
def _global_average_pooling(args, attrs, ctx):
    """The mean over the axes after the channels, as (N, C, 1, 1)."""
    x_shape = ctx.in_shapes[0]
    axes = tuple(range(2, len(x_shape)))
    count = math.prod(x_shape[2:])
    if not count:
        return sympy.nan
    y = P.reduce_sum(args[0], axes, False, x_shape, ctx.shapes) / count if axes else args[0]
    return P.reshape(y, ctx.out_shape, ctx.shapes)


# --- shapes -------------------------------------------------------------------------------

@structural("reshape", "Reshape", 1, lambda shapes, attrs: attrs["shape"],
            output_dtype="input")  # (the frontend records inplace=False copies: float32)
def _reshape(args, attrs, ctx):
    return P.reshape(args[0], attrs["shape"], ctx.shapes)


def _transpose_shape(shapes, attrs):
    return tuple(shapes[0][a] for a in attrs["axes"])


@structural("transpose", "Transpose", 1, _transpose_shape)
def _transpose(args, attrs, ctx):
    return P.transpose(args[0], attrs["axes"], ctx.shapes)


@structural("broadcast", "Broadcast", 1, lambda shapes, attrs: attrs["shape"])
def _broadcast(args, attrs, ctx):
    return P.BroadcastTo(args[0], P.shape_tuple(attrs["shape"]))


# --- the softmax family -------------------------------------------------------------------

@structural("softmax", "Softmax", 1, lambda shapes, attrs: shapes[0])
def _softmax(args, attrs, ctx):
    return softmax.Softmax(args[0], sympy.Integer(attrs["axis"]))


@structural("log_softmax", "LogSoftmax", 1, lambda shapes, attrs: shapes[0])
def _log_softmax(args, attrs, ctx):
    return softmax.LogSoftmax(args[0], sympy.Integer(attrs["axis"]))


def _softmax_cross_entropy_shape(shapes, attrs):
    x, t = shapes
    axis = attrs["axis"]
    expected = x[:axis] + (1,) + x[axis + 1:]
    if t != expected:
        raise ValueError(
            f"F.softmax_cross_entropy: target of shape {t} does not fit input of shape {x} "
            f"with axis={axis}; the target must hold one label per row, with shape "
            f"{expected}")
    return expected


def _softmax_cross_entropy_labels(shapes, attrs) -> dict[int, int]:
    return {1: shapes[0][attrs["axis"]]}  # the target names one of x's classes


@structural("softmax_cross_entropy", "SoftmaxCrossEntropy", 2, _softmax_cross_entropy_shape,
            labels=_softmax_cross_entropy_labels)
def _softmax_cross_entropy(args, attrs, ctx):
    classes = ctx.in_shapes[0][attrs["axis"]]
    labels = ctx.class_labels(args[1], classes) if ctx.class_labels else args[1]
    return softmax.SoftmaxCrossEntropy(args[0], labels, sympy.Integer(attrs["axis"]))



# --- metrics: no gradient ------------------------------------------------------------------

def _top_n_error_labels(shapes, attrs) -> dict[int, int]:
    return {1: shapes[0][attrs["axis"]]}


@structural("top_n_error", "TopNError", 2, _softmax_cross_entropy_shape,
            labels=_top_n_error_labels)
def _top_n_error(args, attrs, ctx):
    """1 where more than n scores along `axis` are at least the label's (ties count
    against it, as in nnabla), else 0; 0 for label -1. A metric: no gradient."""
    x, axis = args[0], attrs["axis"]
    classes = ctx.in_shapes[0][axis]
    labels = ctx.class_labels(args[1], classes) if ctx.class_labels else args[1]
    keep = (sympy.Tuple(sympy.Integer(axis)), sympy.Integer(1),
            P.shape_tuple(ctx.in_shapes[0]))
    onehot = softmax.OneHot(labels, sympy.Integer(classes), sympy.Integer(axis))
    picked = P.ReduceSum(x * onehot, *keep)
    count = P.ReduceSum(E.IsLessEqual(picked, x) * 1, *keep)
    error = E.IsGreater(count, sympy.Integer(attrs["n"])) * softmax.ValidLabel(
        labels, sympy.Integer(classes))
    return P.StopGradient(error)


def _binary_error_shape(shapes, attrs):
    if shapes[0] != shapes[1]:
        raise ValueError(f"F.binary_error: input of shape {shapes[0]} and target of shape "
                         f"{shapes[1]} must have the same shape")
    return shapes[0]


@structural("binary_error", "BinaryError", 2, _binary_error_shape)
def _binary_error(args, attrs, ctx):
    """1 where x and the target fall on different sides of 0.5, else 0. No gradient."""
    half = sympy.Rational(1, 2)
    above = [E.IsLessEqual(half, a) * 1 for a in args]
    return P.StopGradient((above[0] - above[1]) ** 2)


@structural("tile", "Tile", 1, lambda shapes, attrs: tuple(
    n * r for n, r in zip(shapes[0], attrs["reps"], strict=True)))
def _tile(args, attrs, ctx):
    """x repeated reps[i] times along axis i: a broadcast along new axes before each,
    merged (its gradient sums the copies)."""
    x_shape, reps = ctx.in_shapes[0], attrs["reps"]
    spread = tuple(d for n in x_shape for d in (1, n))
    tiled = tuple(d for n, r in zip(x_shape, reps, strict=True) for d in (r, n))
    y = P.BroadcastTo(P.reshape(args[0], spread, ctx.shapes), P.shape_tuple(tiled))
    return P.reshape(y, ctx.out_shape, ctx.shapes)


def _one_hot_shape(shapes, attrs):
    x, shape = shapes[0], attrs["shape"]
    if not x or x[-1] != 1 or len(shape) != 1:
        raise ValueError(f"F.one_hot: indices of shape {x} with shape={shape}: only one index "
                         f"per row is implemented (the indices' last axis of length 1, "
                         f"shape=(classes,))")
    return x[:-1] + tuple(shape)


@structural("one_hot", "OneHot", 1, _one_hot_shape,
            labels=lambda shapes, attrs: {0: attrs["shape"][0]})
def _one_hot(args, attrs, ctx):
    """1 at each row's index along the last axis, 0 elsewhere. No gradient."""
    classes = attrs["shape"][0]
    labels = ctx.class_labels(args[0], classes) if ctx.class_labels else args[0]
    axis = len(ctx.in_shapes[0]) - 1
    return P.StopGradient(softmax.OneHot(labels, sympy.Integer(classes), sympy.Integer(axis)))



# --- nn.grad -------------------------------------------------------------------------------

def _grad_shape(shapes, attrs):
    return shapes[-1]  # the gradient has the shape of the input it is taken with respect to


def _grad_is_lowered_by_the_pass(args, attrs, ctx):
    raise RuntimeError("nn.grad's node is lowered by passes.lowering (it reads the program)")


OPS["grad"] = OpDef("grad", "Grad", 2, False, _grad_shape, _grad_is_lowered_by_the_pass,
                    array_inputs=True)


# --- categorical cross-entropy, confusion matrix, depthwise deconvolution ---------------------

# nnabla clamps the probability at float32's smallest normal number before its log and in
# its gradient (std::numeric_limits<float>::min(), categorical_cross_entropy.cpp)
_SMALLEST_NORMAL_FLOAT32 = 1.1754943508222875e-38


def _labelled_shape(function: str):
    """nnabla's rule for a function of x and one label per row along `axis`: the label's
    shape is x's with length 1 along `axis` (and it is the output's)."""

    def infer(shapes, attrs):
        x, t = shapes
        axis = attrs["axis"]
        expected = x[:axis] + (1,) + x[axis + 1:]
        if t != expected:
            raise ValueError(f"F.{function}: target of shape {t} does not fit input of shape {x} "
                             f"with axis={axis}; the target must hold one label per row, with "
                             f"shape {expected}")
        return expected

    return infer


@structural("categorical_cross_entropy", "CategoricalCrossEntropy", 2,
            _labelled_shape("categorical_cross_entropy"), labels=_softmax_cross_entropy_labels)
def _categorical_cross_entropy(args, attrs, ctx):
    """-log(max(x[t], FLT_MIN)) along `axis`, 0 where the label is negative (-1), as
    nnabla's; its gradient is -dy / max(x[t], FLT_MIN) at the label, also below FLT_MIN
    (the clamp counts as the identity there, as in nnabla's backward), and none to the
    labels."""
    x, axis = args[0], attrs["axis"]
    classes = ctx.in_shapes[0][axis]
    labels = ctx.class_labels(args[1], classes) if ctx.class_labels else args[1]
    keep = (sympy.Tuple(sympy.Integer(axis)), sympy.Integer(1), P.shape_tuple(ctx.in_shapes[0]))
    picked = P.ReduceSum(x * softmax.OneHot(labels, sympy.Integer(classes), sympy.Integer(axis)),
                         *keep)
    clamped = picked + P.StopGradient(
        E.Maximum(picked, sympy.Float(_SMALLEST_NORMAL_FLOAT32)) - picked)
    return -sympy.log(clamped) * softmax.ValidLabel(labels, sympy.Integer(classes))


def _confusion_matrix_shape(shapes, attrs):
    x = shapes[0]
    _labelled_shape("confusion_matrix")(shapes, attrs)
    return (x[attrs["axis"]],) * 2


@structural("confusion_matrix", "ConfusionMatrix", 2, _confusion_matrix_shape,
            labels=_softmax_cross_entropy_labels, output_dtype="int32")
def _confusion_matrix(args, attrs, ctx):
    """counts[label, predicted] over every row along `axis`, the prediction the first
    largest score (confusion_matrix.cpp); a row labelled -1 counts nowhere (nnabla 1.39
    writes it before its output array). A one-hot of the labels times a one-hot of the
    predictions, summed over the rows. A metric: no gradient."""
    x_shape, axis = ctx.in_shapes[0], attrs["axis"]
    classes = x_shape[axis]
    labels = ctx.class_labels(args[1], classes) if ctx.class_labels else args[1]
    truth = P.as_number(softmax.OneHot(labels, sympy.Integer(classes), sympy.Integer(axis)),
                        ctx.shapes)
    predicted = P.as_number(P.FirstExtremum(args[0], sympy.Integer(axis), sympy.Integer(1)),
                            ctx.shapes)
    order = tuple(a for a in range(len(x_shape)) if a != axis) + (axis,)
    rows = (math.prod(x_shape) // classes, classes)

    def as_rows(onehot):
        return P.reshape(P.transpose(onehot, order, ctx.shapes), rows, ctx.shapes)

    counts = P.matmul(P.swap_last(as_rows(truth), ctx.shapes), as_rows(predicted), ctx.shapes)
    return P.StopGradient(counts)


def _depthwise_deconvolution_weight(x_shape, w_shape):
    """The depthwise weight (C, *K) as a grouped deconvolution's (C, 1, *K)."""
    return (w_shape[0], 1) + tuple(w_shape[1:])


def _depthwise_deconvolution_attributes(x_shape, attrs):
    """F.deconvolution's attributes for F.depthwise_deconvolution's: C / divisor groups of
    `divisor` input channels, each summed into one output channel."""
    deconv = {key: value for key, value in attrs.items() if key != "divisor"}
    deconv["group"] = x_shape[attrs["base_axis"]] // attrs["divisor"]
    deconv["output_padding"] = (0,) * len(attrs["pad"])
    return deconv


def _depthwise_deconvolution_shape(shapes, attrs):
    x, w = shapes[0], shapes[1]
    base, divisor = attrs["base_axis"], attrs["divisor"]
    where = f"F.depthwise_deconvolution: input of shape {x}, weight of shape {w}"
    if not 0 <= base < len(x) - 1:
        raise ValueError(f"{where}: base_axis {base} must leave a channel axis and at least "
                         f"one spatial axis after it (valid: 0..{len(x) - 2})")
    channels = x[base]
    if divisor < 1 or channels % divisor:
        raise ValueError(f"{where}: divisor={divisor} must be a positive divisor of the input's "
                         f"{channels} channels (axis {base}): the output has channels / divisor")
    if len(w) != len(x) - base or w[0] != channels:
        raise ValueError(f"{where}: the weight must have shape (channels, *kernel) = "
                         f"({channels}, ...) with one kernel size per spatial axis "
                         f"({len(x) - base - 1})")
    weight = _depthwise_deconvolution_weight(x, w)
    try:
        return _deconvolution_shape((x, weight) + tuple(shapes[2:]),
                                    _depthwise_deconvolution_attributes(x, attrs))
    except ValueError as error:  # (the weight (C, *K) is the deconvolution's (C, 1, *K))
        raise ValueError(f"F.depthwise_deconvolution (a deconvolution of {channels // divisor} "
                         f"groups): {error}") from None


@structural("depthwise_deconvolution", "DepthwiseDeconvolution", 3,
            _depthwise_deconvolution_shape)
def _depthwise_deconvolution(args, attrs, ctx):
    """Each input channel deconvolved with its own kernel, output channel o the sum of
    input channels o*divisor ... (o + 1)*divisor - 1 (nnabla's): a deconvolution with
    C / divisor groups and weight (C, 1, *K)."""
    x_shape, w_shape = ctx.in_shapes[0], ctx.in_shapes[1]
    weight = P.reshape(args[1], _depthwise_deconvolution_weight(x_shape, w_shape), ctx.shapes)
    return _deconvolution([args[0], weight, *args[2:]],
                          _depthwise_deconvolution_attributes(x_shape, attrs), ctx)
