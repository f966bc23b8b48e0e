"""Quantization: fixed-point, power-of-2, min-max and linear quantizers, pruning, and
the binary-connect and binary-weight layers (straight-through gradients, as nnabla's).
"""

from __future__ import annotations

import numbers

import numpy

from symcompile.frontend.functions._base import (
    _flag,
    _geometry,
    _int_argument,
    _record,
    _updated_in_place,
)
from symcompile.frontend.functions.stochasticity import rand
from symcompile.frontend.variable import Variable
from symcompile.ops.registry import number

__all__ = [
    "fixed_point_quantize", "pow2_quantize", "min_max_quantize", "prune", "quantize_linear",
    "dequantize_linear", "binary_connect_affine", "binary_connect_convolution",
    "binary_weight_affine", "binary_weight_convolution", "inq_affine", "inq_convolution",
]

def _quantizer_input(op: str, x) -> Variable:
    if not isinstance(x, Variable):
        raise TypeError(f"F.{op}: x must be a Variable, got {type(x).__name__}; wrap arrays "
                        f"with nn.Variable.from_numpy_array(array)")
    return x


def fixed_point_quantize(x, sign=True, n=8, delta=2**-4, quantize=True, ste_fine_grained=True,
                         outputs=None):
    """x rounded to a multiple of `delta` (halves away from zero) and saturated to [min,
    max]: max = (2^(n-1) - 1) * delta and min = -max when `sign` (the sign takes one of
    the n bits), else [0, (2^n - 1) * delta]. Backward: dy where min <= x <= max, 0
    outside (ste_fine_grained, nnabla's default), or dy everywhere. quantize=False returns
    x itself, as nnabla's."""
    op = "fixed_point_quantize"
    x = _quantizer_input(op, x)
    if not _flag(op, "quantize", quantize):
        return x
    sign, fine = _flag(op, "sign", sign), _flag(op, "ste_fine_grained", ste_fine_grained)
    bits = _int_argument(op, "n", n)
    step = float(number(delta, op, "delta"))
    if bits <= 0 or not step > 0:
        raise ValueError(f"F.{op}: n={n!r} and delta={delta!r} must both be positive "
                         f"(nnabla's rule)")
    if sign and bits < 2:
        raise ValueError(f"F.{op}: n={bits} leaves no bit for the value once sign=True takes "
                         f"one; give n >= 2 or sign=False")
    return _record(op, (x,), sign=sign, n=bits, delta=number(step, op, "delta"),
                   ste_fine_grained=fine)


def pow2_quantize(x, sign=True, with_zero=True, n=8, m=1, quantize=True, ste_fine_grained=True,
                  outputs=None):
    """x rounded to a power of 2 in the log domain, 2^round(log2 |x|) (the geometric mean
    of two powers is the threshold), limited to [p_min, p_max] = [2^(m - (2^n' - 1)), 2^m]
    with n' = n - sign - with_zero bits; with_zero sends |x| < p_min / sqrt(2) to 0.
    Signed, q takes x's sign; unsigned, a negative x gives 0 (with_zero) or p_min.
    Backward: dy, but 0 where 2^round(log2 |x|) > 2^m and (unsigned) where x < 0 with
    ste_fine_grained (nnabla's default), or dy everywhere. quantize=False returns x."""
    op = "pow2_quantize"
    x = _quantizer_input(op, x)
    if not _flag(op, "quantize", quantize):
        return x
    sign, with_zero = _flag(op, "sign", sign), _flag(op, "with_zero", with_zero)
    fine = _flag(op, "ste_fine_grained", ste_fine_grained)
    bits, top = _int_argument(op, "n", n), _int_argument(op, "m", m)
    if bits - int(sign) - int(with_zero) <= 0:
        raise ValueError(f"F.{op}: n={bits} leaves no bit for the value once sign={sign} and "
                         f"with_zero={with_zero} take theirs (one each); give n >= "
                         f"{int(sign) + int(with_zero) + 1}")
    return _record(op, (x,), sign=sign, with_zero=with_zero, n=bits, m=top,
                   ste_fine_grained=fine)


def prune(x, rate=0.9, n_outputs=-1, outputs=None):
    """x with its smallest magnitudes set to 0: 0 where |x| < t, t = sorted(|x|)[int((size
    - 1) * rate)] (everything when rate = 1), else x. Backward: dy everywhere (nnabla's
    straight-through: pruned elements keep their gradient)."""
    op = "prune"
    x = _quantizer_input(op, x)
    value = float(number(rate, op, "rate"))
    if not 0 <= value <= 1:
        raise ValueError(f"F.{op}: rate={rate!r} must be in [0, 1] (the fraction of x's "
                         f"{x.size} elements pruned)")
    return _record(op, (x,), rate=number(value, op, "rate"))


def min_max_quantize(x, qr_min, qr_max, ql_min, ql_max, decay=0.999, x_min_max=False, ema=False,
                     ste_fine_grained=True, eps=0.01, quantize=True, outputs=None):
    """x quantized uniformly to the levels ql_min..ql_max (typically 0 and 255) over the
    range qr_min..qr_max: round((clip(x, m, M) - m) / scale) * scale + m, scale = (qr_max
    - qr_min) / (ql_max - ql_min), (m, M) the range moved so that 0 is a level (the
    "nudged" zero point, rounded halves away from zero). The four ranges have one shape:
    x's rank, each axis 1 or x's. x_min_max: qr_min and qr_max become min(x) and max(x)
    over the size-1 axes (with ema, their moving averages with `decay`) and the forward
    pass writes them back, as nnabla's; qr_max is widened to qr_min + eps (and written)
    where the range is below eps. Backward: dy where m <= x <= M (ste_fine_grained) or
    everywhere; when neither x_min_max nor ema, qr_min and qr_max get the sums of dy
    below m and above M; ql_min and ql_max get none. quantize=False returns x."""
    op = "min_max_quantize"
    x = _quantizer_input(op, x)
    if not _flag(op, "quantize", quantize):
        return x
    inputs = (x, qr_min, qr_max, ql_min, ql_max)
    for name, value in zip(("qr_min", "qr_max", "ql_min", "ql_max"), inputs[1:], strict=True):
        if not isinstance(value, Variable):
            raise TypeError(f"F.{op}: {name} must be a Variable, got {type(value).__name__} "
                            f"(PF.min_max_quantize creates them)")
    rate, margin = float(number(decay, op, "decay")), float(number(eps, op, "eps"))
    if not margin > 0:
        raise ValueError(f"F.{op}: eps={eps!r} must be positive (the narrowest range)")
    return _record(op, inputs, decay=number(rate, op, "decay"),
                   x_min_max=_flag(op, "x_min_max", x_min_max), ema=_flag(op, "ema", ema),
                   ste_fine_grained=_flag(op, "ste_fine_grained", ste_fine_grained),
                   eps=number(margin, op, "eps"))


# nnabla's output dtypes of quantize_linear, as its Python function takes them, and the
# code (NumPy's type number) its QuantizeLinear records
_QUANTIZED_DTYPES = {numpy.dtype(numpy.int8): 1, numpy.dtype(numpy.uint8): 2}
_ROUND_MODES = ("HALF_AWAY_FROM_ZERO", "HALF_TO_EVEN")


def _scale_inputs(op: str, x, scale, zero_point) -> tuple:
    for name, value in (("x", x), ("scale", scale), ("zero_point", zero_point)):
        if not isinstance(value, Variable):
            raise TypeError(f"F.{op}: {name} must be a Variable, got {type(value).__name__}; "
                            f"wrap arrays with nn.Variable.from_numpy_array(array)")
    return x, scale, zero_point


def quantize_linear(x, scale, zero_point, round_mode="HALF_AWAY_FROM_ZERO", narrow_range=False,
                    dtype=numpy.int8):
    """saturate(round(x / scale) + zero_point), ONNX's QuantizeLinear as nnabla computes
    it: zero_point is rounded and saturated too, `round_mode` HALF_AWAY_FROM_ZERO or
    HALF_TO_EVEN, the range int8's [-128, 127] or uint8's [0, 255] (narrow_range: without
    the lowest). The values are float32 numbers, as nnabla's output. scale and
    zero_point have x's rank, each axis 1 or x's. `dtype` may also be the code nnabla's
    files record (1: int8, 2: uint8). Backward: dy / scale (no saturation mask); scale and
    zero_point get no gradient. nnabla rounds zero_point in place; here it is left as it
    is."""
    op = "quantize_linear"
    x, scale, zero_point = _scale_inputs(op, x, scale, zero_point)
    if round_mode not in _ROUND_MODES:
        raise ValueError(f"F.{op}: round_mode={round_mode!r} is not one of nnabla's "
                         f"{list(_ROUND_MODES)}")
    if isinstance(dtype, numbers.Integral) and not isinstance(dtype, bool):
        code = int(dtype) if int(dtype) in _QUANTIZED_DTYPES.values() else None  # (a file's)
    else:
        try:
            code = _QUANTIZED_DTYPES.get(numpy.dtype(dtype))
        except TypeError:
            code = None
    if code is None:
        raise ValueError(f"F.{op}: dtype={dtype!r} is not one nnabla quantizes to; give "
                         f"numpy.int8 or numpy.uint8 (or their codes in nnabla's files, 1 "
                         f"and 2)")
    return _record(op, (x, scale, zero_point), round_mode=str(round_mode),
                   narrow_range=_flag(op, "narrow_range", narrow_range), dtype=code)


def dequantize_linear(x, scale, zero_point, n_outputs=-1, outputs=None):
    """(x - zero_point) * scale, ONNX's DequantizeLinear as nnabla's: scale and zero_point
    have x's rank, each axis 1 or x's. Backward: dy * scale; scale and zero_point get no
    gradient (nnabla raises if asked)."""
    op = "dequantize_linear"
    return _record(op, _scale_inputs(op, x, scale, zero_point))


def _binary_inputs(op: str, x, weight, binary_weight, alpha, bias) -> tuple:
    named = [("x", x), ("weight", weight), ("binary_weight", binary_weight)]
    if op.startswith("binary_weight"):
        named.append(("alpha", alpha))
    inputs = tuple(value for _, value in named) + (() if bias is None else (bias,))
    for name, value in named + ([] if bias is None else [("bias", bias)]):
        if not isinstance(value, Variable):
            raise TypeError(f"F.{op}: {name} must be a Variable, got {type(value).__name__}")
    return inputs


def _binary_affine(op, x, weight, binary_weight, alpha, bias, base_axis, quantize_zero_to):
    inputs = _binary_inputs(op, x, weight, binary_weight, alpha, bias)
    base = _int_argument(op, "base_axis", base_axis)
    if base < 0:
        base += len(x.shape)
    return _record(op, inputs, base_axis=base,
                   quantize_zero_to=number(quantize_zero_to, op, "quantize_zero_to"))


def _binary_convolution(op, x, weight, binary_weight, alpha, bias, base_axis, pad, stride,
                        dilation, group, quantize_zero_to):
    inputs = _binary_inputs(op, x, weight, binary_weight, alpha, bias)
    attrs = _geometry(op, x.shape, base_axis, pad, stride, dilation, group)
    return _record(op, inputs, **attrs,
                   quantize_zero_to=number(quantize_zero_to, op, "quantize_zero_to"))


def binary_connect_affine(x, weight, binary_weight, bias=None, base_axis=1,
                          quantize_zero_to=1.0, n_outputs=-1, outputs=None):
    """BinaryConnect: F.affine with sign(weight) (quantize_zero_to where weight is 0),
    which the forward pass writes into binary_weight (of weight's shape), as nnabla's.
    weight's gradient is the binarized weight's (sign's straight-through backward)."""
    return _binary_affine("binary_connect_affine", x, weight, binary_weight, None, bias,
                          base_axis, quantize_zero_to)


def binary_connect_convolution(x, weight, binary_weight, bias=None, base_axis=1, pad=None,
                               stride=None, dilation=None, group=1, quantize_zero_to=1.0,
                               n_outputs=-1, outputs=None):
    """BinaryConnect: F.convolution with sign(weight) (quantize_zero_to at 0), written
    into binary_weight by the forward pass; weight's gradient is the binarized weight's."""
    return _binary_convolution("binary_connect_convolution", x, weight, binary_weight, None,
                               bias, base_axis, pad, stride, dilation, group, quantize_zero_to)


def binary_weight_affine(x, weight, binary_weight, alpha, bias=None, base_axis=1,
                         quantize_zero_to=1.0, n_outputs=-1, outputs=None):
    """Binary Weight Network: F.affine with sign(weight) * alpha, alpha the mean |weight|
    of each output (over the inputs, the weight's first axis; alpha has one element per
    output). The forward pass writes sign(weight) into binary_weight and alpha into alpha;
    weight's gradient is the scaled weight's, unchanged (nnabla's: sign's straight-through,
    nothing through alpha)."""
    return _binary_affine("binary_weight_affine", x, weight, binary_weight, alpha, bias,
                          base_axis, quantize_zero_to)


def binary_weight_convolution(x, weight, binary_weight, alpha, bias=None, base_axis=1,
                              pad=None, stride=None, dilation=None, group=1,
                              quantize_zero_to=1.0, n_outputs=-1, outputs=None):
    """Binary Weight Network: F.convolution with sign(weight) * alpha, alpha (one element
    per output channel) the mean |weight| of each output channel's kernel; binary_weight
    and alpha are written by the forward pass; weight's gradient is the scaled weight's."""
    return _binary_convolution("binary_weight_convolution", x, weight, binary_weight, alpha,
                               bias, base_axis, pad, stride, dilation, group, quantize_zero_to)


# --- inq_affine, inq_convolution ---------------------------------------------------------------

_SELECTIONS = ("largest_abs", "random")


def _inq_arguments(op, x, weight, indicators, bias, num_bits, inq_iterations,
                   selection_algorithm, seed) -> tuple[tuple, dict]:
    """The node's inputs (see `ops.inq`: the hidden state as three new leaves, and a draw
    with selection_algorithm='random') and INQ's attributes, checked as nnabla does."""
    named = [("x", x), ("weight", weight), ("indicator_fixedweights", indicators)]
    for name, value in named + ([] if bias is None else [("bias", bias)]):
        if not isinstance(value, Variable):
            raise TypeError(f"F.{op}: {name} must be a Variable, got {type(value).__name__}")
    if selection_algorithm not in _SELECTIONS:
        raise ValueError(f"F.{op}: selection_algorithm={selection_algorithm!r} is not valid; "
                         f"valid values are 'largest_abs' and 'random' (nnabla's rule)")
    bits = _int_argument(op, "num_bits", num_bits)
    if bits > 32:
        raise ValueError(f"F.{op}: num_bits={bits} would overflow nnabla's int exponent "
                         f"range 2^(num_bits - 2); give at most 32 (4 is nnabla's default)")
    if isinstance(inq_iterations, numbers.Integral) or not hasattr(inq_iterations, "__iter__"):
        raise TypeError(f"F.{op}: inq_iterations must be a tuple of ints, got "
                        f"{inq_iterations!r}")
    iterations = tuple(_int_argument(op, "inq_iterations", i) for i in inq_iterations)
    if any(i > 2**24 for i in iterations):
        raise ValueError(f"F.{op}: inq_iterations={list(iterations)} lists a pass after "
                         f"2^24 = 16777216; symcompile counts the passes in a float32 leaf, "
                         f"exact up to there")
    _updated_in_place(op, "INQ", weight=weight, indicator_fixedweights=indicators)
    shape = tuple(weight.shape)
    hidden = []
    for name, value_shape in (("count", (1,)), ("old_weight", shape),
                              ("old_indicators", shape)):
        state = Variable.from_numpy_array(numpy.zeros(value_shape, numpy.float32))
        state.name = f"{op}_{name}"
        hidden.append(state)
    draw = (rand(0, 1, shape),) if selection_algorithm == "random" else ()
    inputs = (x, weight, indicators, *hidden, *draw) + (() if bias is None else (bias,))
    return inputs, {"num_bits": bits, "inq_iterations": iterations,
                    "selection_algorithm": str(selection_algorithm),
                    "seed": _int_argument(op, "seed", seed)}


def inq_affine(x, weight, indicator_fixedweights, bias=None, base_axis=1, num_bits=4,
               inq_iterations=(), selection_algorithm="largest_abs", seed=-1, n_outputs=-1,
               outputs=None):
    """INQ (Incremental Network Quantization) affine layer, as nnabla's: F.affine with
    weights fixed in steps and rounded to powers of two. Every forward pass gives the
    weights fixed before their values back (undoing an update), fixes more at the passes
    listed in inq_iterations (all at the last; else half of the learnable ones, those of
    largest |w| or at random), rounds the fixed ones (`num_bits`: n1 and n2 from max |w|,
    see `ir.inq`), runs the layer with them and writes the weights and the indicators
    (read as ints: 0 learnable, 1 fixed) back. The pass count and the previous weights
    and indicators, nnabla's hidden state, are three leaves this call creates, named
    ``inq_affine_count``, ``inq_affine_old_weight``, ``inq_affine_old_indicators`` (one
    set per call: a graph built again starts again, as nnabla's function). The weight's
    gradient is the layer's (straight through); indicators get none. 'random' draws
    from the generated functions' `rng` (not nnabla's generator; `seed` is kept for the
    file's sake only)."""
    op = "inq_affine"
    inputs, attrs = _inq_arguments(op, x, weight, indicator_fixedweights, bias, num_bits,
                                   inq_iterations, selection_algorithm, seed)
    base = _int_argument(op, "base_axis", base_axis)
    if base < 0:
        base += len(x.shape)
    return _record(op, inputs, base_axis=base, **attrs)


def inq_convolution(x, weight, indicator_fixedweights, bias=None, base_axis=1, pad=None,
                    stride=None, dilation=None, group=1, num_bits=4, inq_iterations=(),
                    selection_algorithm="largest_abs", seed=-1, n_outputs=-1, outputs=None):
    """INQ convolution layer, as nnabla's: F.convolution with weights fixed in steps and
    rounded to powers of two (see `inq_affine`; the hidden leaves are named
    ``inq_convolution_count``, ``..._old_weight``, ``..._old_indicators``)."""
    op = "inq_convolution"
    inputs, attrs = _inq_arguments(op, x, weight, indicator_fixedweights, bias, num_bits,
                                   inq_iterations, selection_algorithm, seed)
    geometry = _geometry(op, x.shape, base_axis, pad, stride, dilation, group)
    return _record(op, inputs, **geometry, **attrs)
