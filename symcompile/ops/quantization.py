"""nnabla's quantization functions: fixed_point_quantize, pow2_quantize, min_max_quantize,
prune, quantize_linear and dequantize_linear, and the binary-weight layers
binary_connect_* and binary_weight_*.

Each is a composition of the elementwise functions (`sympy_functions`), the affine and
convolution lowerings and a sort. What makes them quantizers is their backward pass,
which nnabla defines, not derives: a straight-through estimator. The value is computed
exactly as nnabla's forward computes it and wrapped in `StraightThrough(value, carrier)`,
whose gradient is the carrier's: ``x`` (the gradient passes unchanged), ``x * mask``
(nnabla's ste_fine_grained: only where the mask is 1) or ``x / scale``
(quantize_linear's dy / scale). min_max_quantize, whose formula reads its range too
many times to be written out, is one primitive with that backward
(`quantized_range.MinMaxQuantized`). The binary layers write their binarized weights
(and alpha), and min_max_quantize its observed or widened range, into their inputs at
every forward pass, as nnabla's do (`OpDef.running`).
"""

from __future__ import annotations

import math

from symcompile.common.deferred import Deferred
from symcompile.ops import structural
from symcompile.ops.opdef import OpDef, registrar, sympy_number

sympy = Deferred("sympy")
P = Deferred("symcompile.ir.primitives")
I = Deferred("symcompile.ir.indexing")  # noqa: E741 - the module's short name, like P
G = Deferred("symcompile.ops.gradient_clipping")
E = Deferred("symcompile.ops.sympy_functions")
Q = Deferred("symcompile.ops.quantized_range")

OPS: dict[str, OpDef] = {}

_register = registrar(OPS)

# `Compare`'s relations (sympy_functions.RELATIONS)
_GREATER, _LESS, _EQUAL = 0, 2, 4


def _compare(a, b, relation: int):
    return E.Compare(a, b, sympy.Integer(relation))


def _straight_through(value, carrier):
    """`value` forward; backward, the gradient `carrier` receives goes to its inputs."""
    return G.StraightThrough(value, carrier)


def _same_shape(shapes, attrs):
    return shapes[0]


# --- fixed_point_quantize ----------------------------------------------------------------------

def fixed_point_range(sign: bool, n: int, delta: float) -> tuple[float, float]:
    """nnabla's (min, max) of FixedPointQuantize (fixed_point_quantize.cpp): max = (2^n' -
    1) * delta with n' = n - 1 when signed (the sign takes a bit), min = -max or 0."""
    bits = n - 1 if sign else n
    high = (2.0 ** bits - 1) * delta
    return (-high if sign else 0.0), high


@_register("fixed_point_quantize", "FixedPointQuantize", 1, _same_shape)
def _fixed_point_quantize(args, attrs, ctx):
    """max above max, min below min, else sign(x) * floor(|x| / delta + 1/2) * delta (C's
    int() of a non-negative number: a floor; halves away from zero). The gradient is dy
    (ste_fine_grained=False) or dy where min <= x <= max, 0 outside (nnabla's default)."""
    x = args[0]
    low, high = (sympy_number(v) for v in fixed_point_range(
        bool(attrs["sign"]), int(attrs["n"]), float(attrs["delta"])))
    delta = sympy_number(attrs["delta"])
    magnitude = E.Floor(E.Absolute(x, sympy.Integer(1)) / delta + sympy.Rational(1, 2)) * delta
    inside = E.Select(_compare(x, sympy.Integer(0), _LESS), -magnitude, magnitude)
    value = E.Select(_compare(x, high, _GREATER), high,
                     E.Select(_compare(x, low, _LESS), low, inside))
    if not attrs["ste_fine_grained"]:
        return _straight_through(value, x)
    kept = (1 - _compare(x, high, _GREATER)) * (1 - _compare(x, low, _LESS))
    return _straight_through(value, x * kept)


# --- pow2_quantize ---------------------------------------------------------------------------

def pow2_range(sign: bool, with_zero: bool, n: int, m: int) -> tuple[float, float, float]:
    """nnabla's (p_min, p_max, pruning threshold) of Pow2Quantize (pow2_quantize.cpp): the
    sign and the zero each take a bit, n' = n - sign - with_zero; p_max = 2^m, p_min =
    2^(m - (2^n' - 1)), the threshold p_min / sqrt(2)."""
    bits = n - int(sign) - int(with_zero)
    p_min = 2.0 ** (m - (2 ** bits - 1))
    return p_min, 2.0 ** m, p_min * 2.0 ** -0.5


@_register("pow2_quantize", "Pow2Quantize", 1, _same_shape)
def _pow2_quantize(args, attrs, ctx):
    """q = 2^round(log2 |x|) (round: halves away from zero), limited to [p_min, p_max];
    below p_min, with_zero gives 0 where |x| < p_min / sqrt(2) (else p_min). Signed: q
    takes x's sign; unsigned: a negative x gives 0 (with_zero) or p_min. The gradient is
    dy, or with ste_fine_grained 0 where 2^round(log2 |x|) > p_max and, unsigned, where
    x < 0 (nnabla's backward; values below p_min keep their gradient)."""
    x = args[0]
    sign, with_zero = bool(attrs["sign"]), bool(attrs["with_zero"])
    p_min, p_max, threshold = (sympy_number(v) for v in pow2_range(
        sign, with_zero, int(attrs["n"]), int(attrs["m"])))
    magnitude = E.Absolute(x, sympy.Integer(1))
    # |x| below p_min/4 ends below p_min either way: the floor keeps log2 away from log2(0)
    floored = E.Maximum(magnitude, p_min / 4)
    rounded = sympy.Pow(2, E.Round(sympy.log(floored) / sympy.log(2)))
    small = E.Select(_compare(magnitude, threshold, _LESS), sympy.Integer(0), p_min) \
        if with_zero else p_min
    q = E.Select(_compare(rounded, p_max, _GREATER), p_max,
                 E.Select(_compare(rounded, p_min, _LESS), small, rounded))
    negative = _compare(x, sympy.Integer(0), _LESS)
    if sign:
        value = E.Select(negative, -q, q)
    else:
        value = E.Select(negative, sympy.Integer(0) if with_zero else p_min, q)
    if not attrs["ste_fine_grained"]:
        return _straight_through(value, x)
    kept = 1 - _compare(rounded, p_max, _GREATER)
    if not sign:
        kept = kept * (1 - negative)
    return _straight_through(value, x * kept)


# --- prune -------------------------------------------------------------------------------------

def prune_position(size: int, rate: float) -> int:
    """The position in |x| sorted ascending whose value is prune's threshold:
    int((size - 1) * rate), computed in float32 as nnabla's `rate_` is a float."""
    import numpy

    return int(numpy.float32(size - 1) * numpy.float32(rate))


@_register("prune", "Prune", 1, _same_shape)
def _prune(args, attrs, ctx):
    """0 where |x| < t, else x, t the element of |x| sorted ascending at
    int((size - 1) * rate), plus 1 when rate is 1 (so that everything is pruned, as in
    nnabla); the gradient is dy everywhere (prune.cpp's backward copies it)."""
    x, shape = args[0], ctx.in_shapes[0]
    size = math.prod(shape)
    magnitude = E.Absolute(x, sympy.Integer(1))
    ordered = I.Sort(P.reshape(magnitude, (size,), ctx.shapes), sympy.Integer(0), sympy.Integer(0))
    picked = I.Take(ordered, P.shape_tuple((prune_position(size, attrs["rate"]),)),
                    sympy.Integer(0))
    threshold = P.StopGradient(P.reshape(picked, (1,) * len(shape), ctx.shapes))
    if float(attrs["rate"]) == 1.0:
        threshold = threshold + 1
    value = E.Select(_compare(magnitude, threshold, _LESS), sympy.Integer(0), x)
    return _straight_through(value, x)


# --- quantize_linear, dequantize_linear --------------------------------------------------------

# nnabla's dtype codes (NumPy's type numbers) and the ranges QuantizeLinear saturates to
QUANTIZED_DTYPES = {1: ("int8", -128, 127), 2: ("uint8", 0, 255)}


def _scale_shape(function: str):
    """nnabla's rule: scale and zero_point have x's rank, each axis 1 or x's."""

    def infer(shapes, attrs):
        x = shapes[0]
        for name, shape in zip(("scale", "zero_point"), shapes[1:], strict=True):
            if len(shape) != len(x) or any(s not in (1, d) for s, d in zip(shape, x, strict=True)):
                fit = tuple(1 for _ in x)
                raise ValueError(f"F.{function}: {name} of shape {shape} does not fit the input "
                                 f"of shape {x}; it needs the input's rank with each axis 1 or "
                                 f"the input's (e.g. {fit} for one value)")
        return x

    return infer


def _rounded(value, mode: str):
    """nnabla's rounding of quantize_linear: C's round (halves away from zero), or
    HALF_TO_EVEN: a tie (|v - round(v)| = 1/2) goes to 2 * round(v / 2)."""
    nearest = E.Round(value)
    if mode == "HALF_AWAY_FROM_ZERO":
        return nearest
    tie = _compare(E.Absolute(value - nearest, sympy.Integer(1)), sympy.Rational(1, 2), _EQUAL)
    return E.Select(tie, 2 * E.Round(value / 2), nearest)


def quantized_range(dtype: int, narrow_range: bool) -> tuple[int, int]:
    """The range quantize_linear saturates to: int8's [-128, 127] or uint8's [0, 255], one
    less at the bottom with narrow_range ([-127, 127], [1, 255]), as nnabla's."""
    _, low, high = QUANTIZED_DTYPES[dtype]
    return low + int(bool(narrow_range)), high


@_register("quantize_linear", "QuantizeLinear", 3, _scale_shape("quantize_linear"))
def _quantize_linear(args, attrs, ctx):
    """saturate(round(x / scale) + saturate(round(zero_point))), rounding as
    `round_mode`, saturating to the dtype's range (the values stay floats, as nnabla's
    float32 output). The gradient is dy / scale (no saturation mask, as nnabla's);
    scale and zero_point get none (nnabla raises if asked)."""
    x, scale, zero_point = args
    low, high = (sympy.Integer(v) for v in quantized_range(int(attrs["dtype"]),
                                                           attrs["narrow_range"]))
    mode = attrs["round_mode"]
    offset = E.Clip(_rounded(zero_point, mode), low, high)
    value = E.Clip(_rounded(x / scale, mode) + offset, low, high)
    return _straight_through(value, x / P.StopGradient(scale))


@_register("dequantize_linear", "DequantizeLinear", 3, _scale_shape("dequantize_linear"))
def _dequantize_linear(args, attrs, ctx):
    """(x - zero_point) * scale; the gradient is dy * scale, scale and zero_point get none
    (nnabla raises if asked)."""
    x, scale, zero_point = args
    return (x - P.StopGradient(zero_point)) * P.StopGradient(scale)


# --- binary_connect_*, binary_weight_* ------------------------------------------------------
# Inputs (x, weight, binary_weight[, alpha][, bias]). The layer is F.affine or
# F.convolution with sign(weight) (quantize_zero_to at 0), times alpha for the binary
# weight ones: the mean |weight| of each output (affine: over the inputs, axis 0; the
# convolution: over each output channel's kernel). The weight's gradient is the binarized
# weight's, unchanged (sign's straight-through backward, and no gradient through alpha,
# as nnabla's); binary_weight and alpha are written by every forward pass.

def _binary_positions(op_name: str, count: int) -> dict[str, int]:
    names = ["x", "weight", "binary_weight"] + (["alpha"] if "weight_" in op_name else [])
    if count > len(names):
        names.append("bias")
    return {name: position for position, name in enumerate(names)}


def _layer_attributes(attrs) -> dict:
    return {k: v for k, v in attrs.items() if k != "quantize_zero_to"}


def _output_axis_is_first(op_name: str) -> bool:
    return op_name.endswith("convolution")


def alpha_size(op_name: str, w_shape) -> int:
    """How many outputs alpha scales: the affine weight's outputs (all axes but the
    first), the convolution weight's output channels (its first axis)."""
    return w_shape[0] if _output_axis_is_first(op_name) else math.prod(w_shape[1:])


def _binary_shape(op_name: str):
    def infer(shapes, attrs):
        positions = _binary_positions(op_name, len(shapes))
        w = shapes[1]
        if shapes[2] != w:
            raise ValueError(f"F.{op_name}: binary_weight of shape {shapes[2]} must have the "
                             f"weight's shape {w} (nnabla writes sign(weight) into it)")
        if "alpha" in positions:
            size = alpha_size(op_name, w) if len(w) > 1 else None
            if size is None or math.prod(shapes[positions["alpha"]]) != size:
                raise ValueError(f"F.{op_name}: alpha of shape {shapes[positions['alpha']]} "
                                 f"must have one element per output ({size}, for the weight "
                                 f"of shape {w}); give it shape ({size},)")
        layer = (shapes[0], w) + ((shapes[positions["bias"]],) if "bias" in positions else ())
        return structural.weight_layer_shape(op_name, layer, _layer_attributes(attrs),
                                             _output_axis_is_first(op_name))

    return infer


def _binarized(weight, attrs):
    return E.Signum(weight, sympy_number(attrs["quantize_zero_to"]))


def _alpha(op_name: str, weight, w_shape, ctx):
    """The mean |weight| of each output, of shape (outputs,): the weight as a matrix
    (first axis, the others), averaged over its first axis (affine: the inputs) or over
    the others (convolution: each output channel's kernel)."""
    rows_shape = (w_shape[0], math.prod(w_shape[1:]))
    rows = P.reshape(E.Absolute(weight, sympy.Integer(1)), rows_shape, ctx.shapes)
    axis = 1 if _output_axis_is_first(op_name) else 0
    total = P.reduce_sum(rows, (axis,), False, rows_shape, ctx.shapes)
    return total / rows_shape[axis]


def _binary_layer(op_name: str):
    def lower(args, attrs, ctx):
        positions = _binary_positions(op_name, len(args))
        weight, w_shape = args[1], ctx.in_shapes[1]
        binary = _binarized(weight, attrs)
        if "alpha" in positions:
            alpha = P.StopGradient(_alpha(op_name, weight, w_shape, ctx))
            per_output = (w_shape[0],) + (1,) * (len(w_shape) - 1) \
                if _output_axis_is_first(op_name) else (1,) + tuple(w_shape[1:])
            scaled = binary * P.reshape(alpha, per_output, ctx.shapes)
            effective = _straight_through(scaled, weight)
        else:
            effective = binary  # (Signum's derivative is 1: straight through)
        layer = [args[0], effective] + ([args[positions["bias"]]] if "bias" in positions else [])
        return structural.weight_layer(layer, _layer_attributes(attrs), ctx,
                                       _output_axis_is_first(op_name))

    return lower


def _binary_running(op_name: str):
    def running(args, attrs, ctx):
        positions = _binary_positions(op_name, len(args))
        weight, w_shape = args[1], ctx.in_shapes[1]
        written = {positions["binary_weight"]: (
            _binarized(weight, attrs), f"binary weight = sign(weight), "
                                       f"{float(attrs['quantize_zero_to'])!r} at 0")}
        if "alpha" in positions:
            alpha_shape = ctx.in_shapes[positions["alpha"]]
            written[positions["alpha"]] = (
                P.reshape(_alpha(op_name, weight, w_shape, ctx), alpha_shape, ctx.shapes),
                "alpha = mean |weight| of each output")
        return written

    return running


for _name, _type, _arity in (("binary_connect_affine", "BinaryConnectAffine", 4),
                             ("binary_connect_convolution", "BinaryConnectConvolution", 4),
                             ("binary_weight_affine", "BinaryWeightAffine", 5),
                             ("binary_weight_convolution", "BinaryWeightConvolution", 5)):
    OPS[_name] = OpDef(_name, _type, _arity, False, _binary_shape(_name), _binary_layer(_name),
                       running=_binary_running(_name), array_inputs=True)


# --- min_max_quantize ------------------------------------------------------------------------
# Inputs (x, qr_min, qr_max, ql_min, ql_max), the four ranges of one shape: x's rank, each
# axis 1 (reduced: min and max of x over those axes) or x's. min_max_quantize.cpp: with
# x_min_max, qr_min and qr_max become min(x) and max(x) (their moving averages with ema)
# and are written back; the range is widened to eps (nnabla writes qr_min + eps into
# qr_max); the zero point is "nudged" to an integer level and the range moved with it.

def _min_max_shape(shapes, attrs):
    x, ranges = shapes[0], shapes[1:]
    names = ("qr_min", "qr_max", "ql_min", "ql_max")
    for name, shape in zip(names[1:], ranges[1:], strict=True):
        if shape != ranges[0]:
            raise ValueError(f"F.min_max_quantize: {name} of shape {shape} differs from qr_min "
                             f"of shape {ranges[0]}; nnabla needs qr_min, qr_max, ql_min and "
                             f"ql_max of one shape")
    shape = ranges[0]
    if len(shape) != len(x) or any(s not in (1, d) for s, d in zip(shape, x, strict=True)):
        raise ValueError(f"F.min_max_quantize: the ranges of shape {shape} do not fit the input "
                         f"of shape {x}; they need its rank, each axis 1 (min and max over it) "
                         f"or the input's")
    return x


def _min_max_quantize(args, attrs, ctx):
    """round((clip(x, m, M) - m) / scale) * scale + m, as one primitive
    (`quantized_range.MinMaxQuantized`); the ranges qr_min and qr_max get gradients only
    when neither x_min_max nor ema; ql_min and ql_max never (nnabla raises if asked)."""
    settings = [sympy_number(float(attrs[name])) for name in Q.SETTINGS]
    observed = attrs["x_min_max"] or attrs["ema"]
    kind = Q.MinMaxQuantizedObserved if observed else Q.MinMaxQuantized
    return kind(*args, *settings)


def _min_max_running(args, attrs, ctx):
    """qr_min and qr_max as nnabla's forward leaves them: min(x), max(x) (or their moving
    averages) with x_min_max, and qr_max widened to qr_min + eps where the range is below
    eps."""
    settings = {name: sympy_number(float(attrs[name])) for name in Q.SETTINGS}
    settings["x_min_max"], settings["ema"] = bool(attrs["x_min_max"]), bool(attrs["ema"])
    axes = tuple(i for i, d in enumerate(ctx.in_shapes[3]) if d == 1)
    qr_min, qr_max = Q.observed_range(args[0], args[1], args[2], settings, ctx.in_shapes[0],
                                     axes, ctx.shapes)
    written = {2: (qr_max, f"qr_max, at least qr_min + {float(attrs['eps'])!r}")}
    if attrs["x_min_max"]:
        what = "moving average of min(x)" if attrs["ema"] else "min(x)"
        written[1] = (qr_min, f"qr_min = {what}")
    return written


OPS["min_max_quantize"] = OpDef("min_max_quantize", "MinMaxQuantize", 5, False, _min_max_shape,
                                _min_max_quantize, running=_min_max_running,
                                array_inputs=True)
