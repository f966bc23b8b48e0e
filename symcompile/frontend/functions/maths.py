"""Reductions and the math functions with logic of their own (axes, variadic inputs):
sum, mean, max, min, prod, cumsum, cumprod, norm, softmax, log_softmax, clip_by_value,
crelu, celu, prelu, add_n, mul_n, bc_add2, batch_matmul, einsum.
"""

from __future__ import annotations

import numbers

import numpy

from symcompile.frontend.functions._base import (
    _base_axis,
    _one_axis,
    _record,
    _reduced_axes,
    _reduction,
)
from symcompile.frontend.variable import Variable
from symcompile.ops.registry import normalize_axes, number

__all__ = [
    "sum", "mean", "max", "min", "reduce_sum", "reduce_mean", "clip_by_value", "batch_matmul",
    "softmax", "log_softmax", "einsum", "cumsum", "cumprod", "prod", "celu", "prelu", "crelu",
    "bc_add2", "add_n", "mul_n", "norm", "bit_shift",
]

def sum(x, axis=None, keepdims=False):  # noqa: A001 - nnabla's name
    """Sum over `axis` (None: all axes; an int or a tuple of ints)."""
    return _reduction("sum", x, axis, keepdims)


def mean(x, axis=None, keepdims=False):
    """Mean over `axis` (None: all axes; an int or a tuple of ints)."""
    return _reduction("mean", x, axis, keepdims)


def reduce_sum(x, n_outputs=-1, outputs=None):
    """Sum over all axes (deprecated in nnabla in favour of `sum`, kept for tutorials)."""
    return _reduction("reduce_sum", x, None, False)


def reduce_mean(x, n_outputs=-1, outputs=None):
    """Mean over all axes (deprecated in nnabla in favour of `mean`, kept for tutorials)."""
    return _reduction("reduce_mean", x, None, False)


def max(x, axis=None, keepdims=False, with_index=False, only_index=False):  # noqa: A001
    """Maximum over `axis`; the gradient goes to the first maximal element, as in nnabla.
    `with_index` also returns the index of that element (see `_with_index`), `only_index`
    only the index."""
    return _with_index("max", x, axis, keepdims, with_index, only_index)


def min(x, axis=None, keepdims=False, with_index=False, only_index=False):  # noqa: A001
    """Minimum over `axis`; the gradient goes to the first minimal element. `with_index`
    also returns its index, `only_index` only the index."""
    return _with_index("min", x, axis, keepdims, with_index, only_index)


# --- clipping ---------------------------------------------------------------------------

def clip_by_value(x, min, max):  # noqa: A002 - nnabla's argument names
    """x limited to [min, max]; `min` and `max` are numbers or Variables.

    As nnabla's, it is maximum then minimum: the gradient is 0 at the bounds.
    """
    for what, bound in (("min", min), ("max", max)):
        if not isinstance(bound, (Variable, numbers.Real)):
            raise TypeError(f"F.clip_by_value: {what} must be a Variable or a number, got "
                            f"{type(bound).__name__}")
    low = _bound("maximum", x, min)
    return _bound("minimum", low, max)


def _bound(which: str, x, bound) -> Variable:
    """F.maximum2 / F.maximum_scalar (or the minimum's) of `x` and `bound`."""
    if isinstance(bound, Variable):
        return _record(f"{which}2", (x, bound))
    return _record(f"{which}_scalar", (x,), val=number(bound, f"{which}_scalar"))


def softmax(x, axis=None, n_outputs=-1, outputs=None):
    """exp(x) / sum(exp(x)) along `axis` (default: the last)."""
    return _record("softmax", (x,), axis=_one_axis("softmax", x, axis))


def log_softmax(x, axis=None, n_outputs=-1, outputs=None):
    """log(softmax(x)) along `axis` (default: the last), computed stably."""
    return _record("log_softmax", (x,), axis=_one_axis("log_softmax", x, axis))


def einsum(*x, **kw):
    """Einstein summation of the inputs over the keyword `equation` (NumPy's rules:
    ``"bij,bjk->bik"``, ``...``, an implicit output, ``"ii->i"``), as matrix products."""
    equation = kw.pop("equation", "")
    if kw:
        raise TypeError(f"F.einsum: unexpected keyword arguments {sorted(kw)}; the inputs "
                        "are positional, the equation is `equation=`")
    if not isinstance(equation, str):
        raise TypeError(f"F.einsum: equation must be a str, got {type(equation).__name__}")
    return _record("einsum", tuple(x), equation=equation)


def _cumulative(op: str, x, axis, exclusive, reverse) -> Variable:
    if not isinstance(x, Variable):
        return _record(op, (x,))  # raises the TypeError
    axis = _one_axis(op, x, 0 if axis is None else axis, "accumulate along")  # None is 0
    return _record(op, (x,), axis=axis, exclusive=bool(exclusive), reverse=bool(reverse))


def cumsum(x, axis=None, exclusive=False, reverse=False, n_outputs=-1, outputs=None):
    """y[i] = x[0] + ... + x[i] along `axis` (None: axis 0, as nnabla); `exclusive` leaves
    x[i] out (y[0] = 0), `reverse` sums from the end."""
    return _cumulative("cumsum", x, axis, exclusive, reverse)


def cumprod(x, axis=None, exclusive=False, reverse=False, n_outputs=-1, outputs=None):
    """y[i] = x[0] * ... * x[i] along `axis` (None: axis 0, as nnabla); `exclusive` leaves
    x[i] out (y[0] = 1), `reverse` multiplies from the end. The gradient is exact where x
    holds zeros, as nnabla's."""
    return _cumulative("cumprod", x, axis, exclusive, reverse)


def prod(x, axis=None, keepdims=False):
    """The product over `axis` (None: all axes; an int or a tuple of ints). As nnabla's,
    the gradient is dy * y / x, and 0 where x is 0 (not the product of the others)."""
    return _reduction("prod", x, axis, keepdims)


def _with_index(op: str, x, axis, keepdims, with_index, only_index):
    """F.max / F.min: the extremum, its index (the first extremal element's, counted in C
    order over the reduced axes; a number of the module's dtype, where nnabla's is an
    integer, with no gradient) or both, as nnabla's (y, index)."""
    if not (with_index or only_index) or not isinstance(x, Variable):
        return _reduction(op, x, axis, keepdims)
    index = _record(f"{op}_index", (x,), axes=normalize_axes(op, axis, x.shape),
                    keepdims=bool(keepdims))
    return index if only_index else (_reduction(op, x, axis, keepdims), index)


def batch_matmul(a, b, transpose_a=False, transpose_b=False, n_outputs=-1, outputs=None):
    """Matrix products over the last two axes; the batch axes broadcast where 1."""
    return _record("batch_matmul", (a, b), transpose_a=bool(transpose_a),
                   transpose_b=bool(transpose_b))


def celu(x, alpha=1.0, axis=1, n_outputs=-1, outputs=None):
    """nnabla's CELU: elu(x, alpha) and elu(-x, alpha) concatenated along `axis` (which
    doubles in length), elu'(0) = 1 as in F.elu."""
    if not isinstance(x, Variable):
        return _record("celu", (x,))  # raises the TypeError
    axis = _one_axis("celu", x, axis, "concatenate along")
    return _record("celu", (x,), alpha=number(alpha, "celu", "alpha"), axis=axis)


def prelu(x0, x1, base_axis=1, n_outputs=-1, outputs=None):
    """x0 where x0 >= 0, else x1 * x0: one slope x1 (of size 1) or one per channel, x1 of
    shape (x0.shape[base_axis],). d/dx0 is 1 at 0, as nnabla's."""
    if not (isinstance(x0, Variable) and isinstance(x1, Variable)):
        return _record("prelu", (x0, x1))  # raises the TypeError
    if not x0.shape:
        raise ValueError("F.prelu: x0 of shape () has no channel axis; reshape it to (1,)")
    return _record("prelu", (x0, x1), base_axis=_base_axis("prelu", x0, base_axis))


def crelu(x, axis=1, n_outputs=-1, outputs=None):
    """nnabla's CReLU: relu(x) and relu(-x) concatenated along `axis` (which doubles in
    length). At x = 0 the gradient is -dy of the second half (nnabla's backward); a
    negative `axis` counts from the end, as in nnabla 1.39."""
    if not isinstance(x, Variable):
        return _record("crelu", (x,))  # raises the TypeError
    axis = _one_axis("crelu", x, axis, "concatenate along")
    return _record("crelu", (x,), axis=axis)


def _variadic(op: str, x: tuple, kw: dict, least: int) -> tuple:
    """The inputs of nnabla's variadic `op` (F.add_n(*x), F.mul_n(*x)), which takes no
    arguments but n_outputs and outputs."""
    kw.pop("n_outputs", None)
    kw.pop("outputs", None)
    if kw:
        raise TypeError(f"F.{op}: unexpected arguments {sorted(kw)}; it takes only the "
                        f"Variables to combine, F.{op}(x0, x1, ...)")
    if len(x) < least:
        raise ValueError(f"F.{op}: {len(x)} input(s) given, nnabla's {op} needs at least "
                         f"{least}")
    return tuple(x)


def bc_add2(x0, x1, inplace=False, n_outputs=-1, outputs=None):
    """x0 + x1, size-1 axes broadcast between inputs of equal rank: nnabla's broadcasting
    addition (its docs: "shouldn't be called by users"), the same as F.add2. `inplace` is
    accepted and unused (obsolete in nnabla too)."""
    return _record("bc_add2", (x0, x1))


def add_n(*x, **kw):
    """x0 + x1 + ... of Variables of one shape (nnabla's AddN; it does not broadcast)."""
    return _record("add_n", _variadic("add_n", x, kw, 1))


def mul_n(*x, **kw):
    """x0 * x1 * ... of at least two Variables of one shape (nnabla's MulN). Each input's
    gradient is dy times the product of the others: nnabla computes dy * y / x_i, the same
    number except where x_i = 0, where nnabla's is NaN (0/0)."""
    return _record("mul_n", _variadic("mul_n", x, kw, 2))


def norm(x, p=None, axis=None, keepdims=False):
    """The p-norm (sum |x|^p)^(1/p) over `axis` (None: all axes; p None: 2; p >= 1), as
    nnabla's Norm computes it: abs, pow_scalar(p), sum, pow_scalar(1/p), so its gradient is
    theirs (d|x|/dx = +1 at 0; NaN where a whole norm is 0 and p > 1, as nnabla's)."""
    if not isinstance(x, Variable):
        raise TypeError(f"F.norm: x must be a Variable, got {type(x).__name__}; wrap arrays "
                        f"with nn.Variable.from_numpy_array(array)")
    order = 2.0 if p is None else float(number(p, "norm", "p"))
    if not order >= 1:
        raise ValueError(f"F.norm: p={p!r} must be at least 1 (nnabla's rule: below 1 it is "
                         f"not a norm) for the input of shape {x.shape}")
    axes = _reduced_axes("norm", axis, x)
    powered = _record("pow_scalar", (_record("abs", (x,)),), val=number(order, "norm", "p"))
    total = _record("sum", (powered,), axes=axes, keepdims=bool(keepdims))
    return _record("pow_scalar", (total,), val=number(1 / order, "norm", "p"))


def bit_shift(x, shift, direction="LEFT", n_outputs=-1, outputs=None):
    """x's unsigned integers shifted by `shift` bits (truncated to integers, as nnabla casts
    them to x's dtype), to the left (`direction` 'LEFT', wrapping around x's width: uint8
    200 << 1 is 144) or the right ('RIGHT'), elementwise with nnabla's broadcasting; the
    output has x's dtype. nnabla runs it on unsigned integer arrays only; here uint8 and
    uint16, whose values floating-point modules hold exactly (wider ones are refused). No
    gradient, as nnabla's."""
    if not (isinstance(x, Variable) and isinstance(shift, Variable)):
        return _record("bit_shift", (x, shift))  # raises the TypeError
    dtype = numpy.dtype(x.dtype)
    if dtype.kind != "u":
        raise TypeError(f"F.bit_shift: x must hold unsigned integers (as nnabla's), got "
                        f"{dtype.name}: make it with nn.Variable.from_numpy_array of a uint8 "
                        f"or uint16 array")
    if dtype.itemsize > 2:
        raise ValueError(f"F.bit_shift: x of dtype {dtype.name}: symcompile's modules compute "
                         f"in floating point, which holds uint8 and uint16 values exactly but "
                         f"not every {dtype.name} value; use uint16 or narrower")
    if direction not in ("LEFT", "RIGHT"):
        raise ValueError(f"F.bit_shift: direction must be 'LEFT' or 'RIGHT', got "
                         f"{direction!r}")
    return _record("bit_shift", (x, shift), left=direction == "LEFT", bits=8 * dtype.itemsize)
