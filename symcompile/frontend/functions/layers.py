"""Neural network layers: affine, the convolutions, embed and the poolings.
"""

from __future__ import annotations

import numbers

from symcompile.frontend.functions._base import (
    _batch_normalization,
    _geometry,
    _int_argument,
    _layout,
    _per_axis,
    _record,
)
from symcompile.frontend.variable import Variable
from symcompile.ops.registry import OPS, number

__all__ = [
    "affine", "convolution", "max_pooling", "max_pooling_backward", "average_pooling",
    "sum_pooling", "global_average_pooling", "deconvolution", "depthwise_convolution", "unpooling",
    "embed", "depthwise_deconvolution", "fused_convolution", "deformable_convolution",
    "adaptive_separable_convolution",
]

# --- matrix products and shapes ------------------------------------------------------------

def affine(x, weight, bias=None, base_axis=1, n_outputs=-1, outputs=None):
    """y = x W + b, with x flattened to a matrix from `base_axis` on (negative: counted
    from the end, as in nnabla)."""
    inputs = (x, weight) if bias is None else (x, weight, bias)
    if isinstance(x, Variable) and isinstance(base_axis, numbers.Integral) and base_axis < 0:
        base_axis += len(x.shape)
    return _record("affine", inputs, base_axis=int(base_axis))


def convolution(x, weight, bias=None, base_axis=1, pad=None, stride=None, dilation=None,
                group=1, channel_last=False, n_outputs=-1, outputs=None):
    """N-D convolution (a cross-correlation, as nnabla's): x (*batch, C, *L) with weight
    (C', C/group, *K) and bias (C',) gives (*batch, C', *L'), L' = (L + 2*pad -
    dilation*(K - 1) - 1) // stride + 1 per spatial axis; `pad` zeros on both sides.

    `pad`, `stride` and `dilation` have one entry per spatial axis (None: 0, 1 and 1);
    the axes before `base_axis` are batch axes. ``channel_last=True``: x (*batch, *L, C),
    weight (C', *K, C/group), output (*batch, *L', C'), as nnabla's CUDA implementation
    (its CPU one refuses to run it); computed channels first, between transposes.
    """
    inputs = (x, weight) if bias is None else (x, weight, bias)
    if not all(isinstance(v, Variable) for v in inputs):
        return _record("convolution", inputs)  # raises the TypeError
    attrs = _convolution_attributes(x.shape, weight.shape, None if bias is None else bias.shape,
                                   base_axis, pad, stride, dilation, group, channel_last)
    return _record("convolution", inputs, **attrs)


def _convolution_attributes(x_shape, w_shape, b_shape, base_axis, pad, stride, dilation, group,
                           channel_last) -> dict:
    """F.convolution's node attributes for inputs of these shapes, checked (the shape rule
    included: ValueError naming the shapes and the fix); PF.convolution asks before it
    creates its parameters."""
    attrs = _geometry("convolution", x_shape, base_axis, pad, stride, dilation, group)
    attrs.update(_layout(channel_last))
    shapes = (tuple(x_shape), tuple(w_shape)) + (() if b_shape is None else (tuple(b_shape),))
    OPS["convolution"].infer_shape(shapes, attrs)
    return attrs


def deformable_convolution(x, weight, offset, mask=None, bias=None, base_axis=1, pad=None,
                           stride=None, dilation=None, group=1, deformable_group=1,
                           channel_last=False, n_outputs=-1, outputs=None):
    """2-D deformable convolution (v2 with a mask), nnabla 1.39's: x (N, C, H, W), weight
    (C', C/group, Kh, Kw), offset (N, deformable_group*2*Kh*Kw, H, W), mask (N,
    deformable_group*Kh*Kw, H, W), bias (C',) give (N, C', Ho, Wo), sizes as
    F.convolution's. Kernel position k = i*Kw + j of output pixel (ho, wo) reads each
    channel of deformable group d bilinearly (0 outside x) at (ho*stride_h - pad_h +
    i*dilation_h + dy, wo*stride_w - pad_w + j*dilation_w + dx), (dy, dx) = offset[n, d*2K
    + 2k : d*2K + 2k + 2] at (ho*stride_h, wo*stride_w) (the offsets and the mask are maps
    of x's size read at the strided output pixels), times mask[n, d*K + k] there; those
    columns times the weight, per group, plus the bias (`ops.deformable`).

    Gradients go to every input, as nnabla's when x, weight, offset and mask all need one
    (nnabla 1.39's CPU backward omits the mask from x's, the weight's and the offset's
    gradients when the mask needs none, gives the offset and the mask none when x needs
    none, and crashes when the weight or the offset needs none; these are the derivatives
    in every case). As nnabla's C++, a 1-D fourth input is the bias (``F.deformable_
    convolution(x, w, offset, b)``). Refused as nnabla refuses them: base_axis other than
    1, other than 2-D, channel_last=True (nnabla's CPU and CUDA forward raise), a mask
    with pad at or past the kernel's centre on both axes; and, as undefined there, pad
    that makes the last output pixels read the offsets past x's size (2*pad >
    dilation*(K - 1) when that reaches them)."""
    if mask is not None and bias is None and isinstance(mask, Variable) and mask.ndim == 1:
        mask, bias = None, mask  # (nnabla's reading of four inputs)
    inputs = tuple(v for v in (x, weight, offset, mask, bias) if v is not None)
    if not all(isinstance(v, Variable) for v in inputs) or len(inputs) < 3:
        return _record("deformable_convolution", (x, weight, offset) + inputs[3:])
    attrs = _deformable_convolution_attributes(
        x.shape, weight.shape, offset.shape, None if mask is None else mask.shape,
        None if bias is None else bias.shape, base_axis, pad, stride, dilation, group,
        deformable_group, channel_last)
    return _record("deformable_convolution", inputs, **attrs)


def _deformable_convolution_attributes(x_shape, w_shape, offset_shape, mask_shape, b_shape,
                                       base_axis, pad, stride, dilation, group,
                                       deformable_group, channel_last) -> dict:
    """F.deformable_convolution's node attributes for inputs of these shapes, checked (the
    shape rule included); PF.deformable_convolution asks before it creates parameters."""
    op = "deformable_convolution"
    if channel_last:
        raise ValueError(f"F.{op}: channel_last=True is refused by nnabla 1.39 (its CPU and "
                         f"CUDA forward passes raise 'channel_last_=true is not supported'); "
                         f"transpose x to (N, C, H, W) and the weight to (C', C/group, Kh, "
                         f"Kw) with F.transpose")
    attrs = _geometry(op, x_shape, base_axis, pad, stride, dilation, group)
    attrs["deformable_group"] = _int_argument(op, "deformable_group", deformable_group)
    shapes = tuple(tuple(s) for s in (x_shape, w_shape, offset_shape, mask_shape, b_shape)
                   if s is not None)
    OPS[op].infer_shape(shapes, attrs)
    return attrs


def adaptive_separable_convolution(x, vertical_kernel, horizontal_kernel, n_outputs=-1,
                                   outputs=None):
    """nnabla's 2-D adaptive separable convolution: x (B, C, H, W) with per-pixel
    vertical and horizontal kernels kv (B, Kv, H', W') and kh (B, Kh, H', W') gives y (B,
    C, H - Kv + 1, W - Kh + 1), ``y[b, c, h, w] = sum over j, i of kv[b, j, h, w] *
    kh[b, i, h, w] * x[b, c, h + j, w + i]`` (the kernels read at the output's pixels,
    so they are at least that large: nnabla checks kv's height and kh's width to lie
    between the output's and x's, and symcompile also kv's width and kh's height, which
    nnabla reads past otherwise). No padding: pad x with F.pad first. Gradients to all
    three (`ops.deformable`)."""
    return _record("adaptive_separable_convolution", (x, vertical_kernel, horizontal_kernel))


def deconvolution(x, weight, bias=None, base_axis=1, pad=None, stride=None, dilation=None,
                  group=1, channel_last=False, output_padding=None, n_outputs=-1,
                  outputs=None):
    """N-D deconvolution (the transpose of F.convolution): x (*batch, C, *L) with weight
    (C, C'/group, *K) and bias (C',) gives (*batch, C', *L'), L' = stride*(L - 1) +
    dilation*(K - 1) + 1 - 2*pad + output_padding per spatial axis (output_padding <
    stride). ``channel_last=True``: x (*batch, *L, C), weight (C, *K, C'/group), output
    (*batch, *L', C'), as for F.convolution."""
    inputs = (x, weight) if bias is None else (x, weight, bias)
    if not all(isinstance(v, Variable) for v in inputs):
        return _record("deconvolution", inputs)  # raises the TypeError
    attrs = _geometry("deconvolution", x.shape, base_axis, pad, stride, dilation, group)
    attrs.update(_layout(channel_last))
    attrs["output_padding"] = _per_axis("deconvolution", "output_padding", output_padding, 0,
                                        len(attrs["pad"]))
    return _record("deconvolution", inputs, **attrs)


def depthwise_convolution(x, weight, bias=None, base_axis=1, pad=None, stride=None,
                          dilation=None, multiplier=1, n_outputs=-1, outputs=None):
    """Depthwise convolution: each input channel convolved with its own `multiplier`
    kernels; x (*batch, C, *L), weight (C*multiplier, *K), bias (C*multiplier,). Output
    channel c*multiplier + m is input channel c's m-th kernel."""
    inputs = (x, weight) if bias is None else (x, weight, bias)
    if not all(isinstance(v, Variable) for v in inputs):
        return _record("depthwise_convolution", inputs)  # raises the TypeError
    attrs = _geometry("depthwise_convolution", x.shape, base_axis, pad, stride, dilation, 1)
    attrs.pop("group")
    if isinstance(multiplier, bool) or not isinstance(multiplier, numbers.Integral):
        raise TypeError(f"F.depthwise_convolution: multiplier must be an int, got "
                        f"{multiplier!r}")
    attrs["multiplier"] = int(multiplier)
    return _record("depthwise_convolution", inputs, **attrs)


def unpooling(x, kernel, channel_last=False, n_outputs=-1, outputs=None):
    """Each element of x repeated kernel[i] times along the i-th of its last len(kernel)
    axes (nearest-neighbour upsampling; with ``channel_last=True``, the len(kernel) axes
    before the last); its gradient sums each block."""
    if not isinstance(x, Variable):
        return _record("unpooling", (x,))  # raises the TypeError
    kernel = _per_axis("unpooling", "kernel", kernel, 1, 0)
    return _record("unpooling", (x,), kernel=kernel, **_layout(channel_last))


def embed(x0, w, n_outputs=-1, outputs=None):
    """w[x0]: the rows of w (N, *F) at the integer indices x0 (any shape), of shape
    x0.shape + F; an index of -1 gives zeros, as in nnabla, and one past the end is
    refused when the module is called (nnabla gives zeros). x0 gets no gradient."""
    return _record("embed", (x0, w))


def max_pooling(x, kernel, stride=None, ignore_border=True, pad=None, channel_last=False,
                n_outputs=-1, outputs=None):
    """Max pooling over the last len(kernel) axes (2 or 3, as nnabla): the maximum of each
    window ``[m*stride - pad, m*stride - pad + kernel)``, padding ignored. The gradient
    goes to the first maximum of each window in C order. `stride` None: `kernel`; `pad`
    None: zeros. Output length per axis: (L + 2*pad - kernel) // stride + 1, or
    (L + pad - 1) // stride + 1 with ``ignore_border=False``. ``channel_last=True``: the
    len(kernel) axes before the last are pooled (NHWC), as by nnabla's CUDA
    implementation (its CPU one refuses to run it)."""
    return _pooling("max_pooling", x, kernel, stride, ignore_border, pad, channel_last)


def average_pooling(x, kernel, stride=None, ignore_border=True, pad=None, channel_last=False,
                    including_pad=True, n_outputs=-1, outputs=None):
    """Average pooling over the last len(kernel) axes, windows as `max_pooling`'s, padding
    zeros: each window's sum divided by its size clipped to the padded input
    (``including_pad=True``) or by its count of input elements (False)."""
    return _pooling("average_pooling", x, kernel, stride, ignore_border, pad, channel_last,
                    including_pad=bool(including_pad))


def sum_pooling(x, kernel, stride=None, ignore_border=True, pad=None, channel_last=False,
                n_outputs=-1, outputs=None):
    """Sum pooling over the last len(kernel) axes, windows as `max_pooling`'s, padding
    zeros."""
    return _pooling("sum_pooling", x, kernel, stride, ignore_border, pad, channel_last)


def global_average_pooling(x, n_outputs=-1, outputs=None):
    """The mean over every axis after axis 1, as (N, C, 1, 1) whatever x's rank."""
    return _record("global_average_pooling", (x,))


def max_pooling_backward(dy, x, kernel, stride=None, ignore_border=True, pad=None,
                         channel_last=False, n_outputs=-1, outputs=None):
    """The gradient of ``max_pooling(x, kernel, ...)`` given its output's gradient dy, of
    x's shape: each dy goes to the first maximum of its window (nnabla's function for the
    n-th order gradients of max pooling). Its gradient: to dy, g picked at the maxima; to
    x, none (0), as in nnabla."""
    return _pooling("max_pooling_backward", (dy, x), kernel, stride, ignore_border, pad,
                    channel_last)


def _pooling(op: str, x, kernel, stride, ignore_border, pad, channel_last, **more) -> Variable:
    """A pooling node over x (or over the Variables of a tuple x), nnabla's arguments
    checked."""
    inputs = x if isinstance(x, tuple) else (x,)
    if not all(isinstance(v, Variable) for v in inputs):
        return _record(op, inputs)  # raises the TypeError
    kernel = _per_axis(op, "kernel", kernel, 0, 0)
    attrs = {"kernel": kernel,
             "stride": kernel if stride is None else _per_axis(op, "stride", stride, 1, 0),
             "pad": _per_axis(op, "pad", pad, 0, len(kernel)),
             "ignore_border": bool(ignore_border), **more, **_layout(channel_last)}
    return _record(op, inputs, **attrs)


def depthwise_deconvolution(x, weight, bias=None, base_axis=1, pad=None, stride=None,
                            dilation=None, divisor=1, n_outputs=-1, outputs=None):
    """Depthwise deconvolution: x (*batch, C, *L) with weight (C, *K) and bias
    (C/divisor,) gives (*batch, C/divisor, *L'), L' as F.deconvolution's; each input
    channel is deconvolved with its own kernel and output channel o sums input channels
    o*divisor to (o + 1)*divisor - 1 (nnabla's)."""
    inputs = (x, weight) if bias is None else (x, weight, bias)
    if not all(isinstance(v, Variable) for v in inputs):
        return _record("depthwise_deconvolution", inputs)  # raises the TypeError
    attrs = _geometry("depthwise_deconvolution", x.shape, base_axis, pad, stride, dilation, 1)
    attrs.pop("group")
    attrs["divisor"] = _int_argument("depthwise_deconvolution", "divisor", divisor)
    return _record("depthwise_deconvolution", inputs, **attrs)


# nnabla's FusedConvolution activations, with how many nonlinearity_args each takes
_FUSED_ACTIVATIONS = {"identity": 0, "": 0, "relu": 0, "sigmoid": 0, "tanh": 0,
                      "leaky_relu": 1, "elu": 1, "relu6": 0}


def fused_convolution(x, weight, bias=None, beta=None, gamma=None, mean=None, variance=None,
                      z=None, base_axis=1, pad=None, stride=None, dilation=None, group=1,
                      channel_last=False, decay_rate=0.9, eps=1e-05, batch_stat=True,
                      nonlinearity="relu", nonlinearity_args=[],  # noqa: B006 (nnabla's)
                      pad_mode="constant", constant_value=0, n_outputs=-1, outputs=None):
    """nnabla's FusedConvolution, as its C++ builds it: F.convolution (with `bias`), then
    F.batch_normalization over the channel axis when beta, gamma, mean and variance are
    given (all four, and not with `bias`), then + z, then the `nonlinearity` ("identity",
    "relu", "sigmoid", "tanh", "relu6", or "leaky_relu" / "elu" with nonlinearity_args
    [alpha]). nnabla's docs put an F.pad of `pad_mode` first; its code passes `pad` to the
    convolution (zeros) and ignores pad_mode and constant_value, so others are refused."""
    op = "fused_convolution"
    if pad_mode != "constant" or constant_value != 0:
        raise ValueError(f"F.{op}: pad_mode={pad_mode!r}, constant_value={constant_value!r}: "
                         "nnabla 1.39 ignores both and pads with zeros (whatever its docs say); "
                         "pad with F.pad first and give pad=None")
    if nonlinearity not in _FUSED_ACTIVATIONS:
        raise ValueError(f"F.{op}: nonlinearity={nonlinearity!r} is not one of nnabla's "
                         f"{sorted(n for n in _FUSED_ACTIVATIONS if n)}")
    arguments = [float(number(a, op, "nonlinearity_args")) for a in nonlinearity_args]
    if len(arguments) < _FUSED_ACTIVATIONS[nonlinearity]:
        raise ValueError(f"F.{op}: nonlinearity={nonlinearity!r} needs nonlinearity_args="
                         f"[alpha], got {list(nonlinearity_args)!r}")
    statistics = (beta, gamma, mean, variance)
    normalized = any(v is not None for v in statistics)
    if normalized and not all(v is not None for v in statistics):
        missing = [name for name, v in zip(("beta", "gamma", "mean", "variance"), statistics,
                                            strict=True) if v is None]
        raise ValueError(f"F.{op}: batch normalization needs beta, gamma, mean and variance; "
                         f"{', '.join(missing)} missing (give all four, or none)")
    if normalized and bias is not None:
        raise ValueError(f"F.{op}: a convolution bias and batch normalization together are "
                         "refused by nnabla (the normalization's beta is the bias); give "
                         "bias=None")
    try:  # (the parts' errors, named as the parts of F.fused_convolution they are)
        h = convolution(x, weight, bias, base_axis=base_axis, pad=pad, stride=stride,
                        dilation=dilation, group=group, channel_last=channel_last)
        if normalized:
            channel = h.ndim - 1 if channel_last else base_axis
            h = _batch_normalization("batch_normalization", h, beta, gamma, mean, variance,
                                     None, [channel], decay_rate, eps, batch_stat, False)
        if z is not None:
            h = _record("add2", (h, z))
    except (TypeError, ValueError) as error:
        raise type(error)(f"F.{op}: {error}") from None
    if nonlinearity in ("relu", "sigmoid", "tanh", "relu6"):
        h = _record(nonlinearity, (h,))
    elif nonlinearity in ("leaky_relu", "elu"):
        h = _record(nonlinearity, (h,), alpha=number(arguments[0], op, "nonlinearity_args"))
    return h
