"""`symcompile.functions` (F): nnabla's functions, recording graph nodes.

Each function checks its inputs and arguments, works out the output shape (so shape
errors surface here, at graph-build time) and returns a new Variable whose `parent`
records the call. Nothing is computed until `forward()`.
"""

from __future__ import annotations

from . import callsite
from .ops import OPS, normalize_axes, number
from .variable import Function, Variable

__all__ = [
    "add2", "sub2", "mul2", "div2", "pow2", "add_scalar", "mul_scalar", "pow_scalar",
    "r_sub_scalar", "r_div_scalar", "r_pow_scalar", "identity", "sum", "mean",
    "reduce_sum", "reduce_mean", "squared_error",
]


def _record(op_name: str, inputs: tuple, **attrs) -> Variable:
    """Check the inputs of `op_name`, infer its output shape and add the node."""
    op = OPS[op_name]
    for position, var in enumerate(inputs):
        if not isinstance(var, Variable):
            kind = type(var).__name__
            hint = (" Wrap arrays with nn.Variable.from_numpy_array(array)."
                    if hasattr(var, "shape") else "")
            raise TypeError(f"F.{op_name}: input {position} must be a Variable, got {kind}.{hint}")
    shape = op.infer_shape(tuple(v.shape for v in inputs), attrs)
    site = callsite.capture()
    func = Function(op, tuple(inputs), attrs, site)
    out = Variable(shape)
    out._parent = func
    out._callsite = site
    func.outputs.append(out)
    return out


def add2(x0, x1, inplace=False, n_outputs=-1, outputs=None):
    """Elementwise ``x0 + x1`` (size-1 axes broadcast)."""
    return _record("add2", (x0, x1))


def sub2(x0, x1, inplace=False, n_outputs=-1, outputs=None):
    """Elementwise ``x0 - x1`` (size-1 axes broadcast)."""
    return _record("sub2", (x0, x1))


def mul2(x0, x1, inplace=False, n_outputs=-1, outputs=None):
    """Elementwise ``x0 * x1`` (size-1 axes broadcast)."""
    return _record("mul2", (x0, x1))


def div2(x0, x1, inplace=False, n_outputs=-1, outputs=None):
    """Elementwise ``x0 / x1`` (size-1 axes broadcast)."""
    return _record("div2", (x0, x1))


def pow2(x0, x1, inplace=False, n_outputs=-1, outputs=None):
    """Elementwise ``x0 ** x1`` (size-1 axes broadcast)."""
    return _record("pow2", (x0, x1))


def add_scalar(x, val=1, inplace=False, n_outputs=-1, outputs=None):
    """``x + val``."""
    return _record("add_scalar", (x,), val=number(val, "add_scalar"))


def mul_scalar(x, val=1, inplace=False, n_outputs=-1, outputs=None):
    """``x * val``."""
    return _record("mul_scalar", (x,), val=number(val, "mul_scalar"))


def pow_scalar(x, val=1, inplace=False, n_outputs=-1, outputs=None):
    """``x ** val``."""
    return _record("pow_scalar", (x,), val=number(val, "pow_scalar"))


def r_sub_scalar(x, val=1, n_outputs=-1, outputs=None):
    """``val - x``."""
    return _record("r_sub_scalar", (x,), val=number(val, "r_sub_scalar"))


def r_div_scalar(x, val=1, n_outputs=-1, outputs=None):
    """``val / x``."""
    return _record("r_div_scalar", (x,), val=number(val, "r_div_scalar"))


def r_pow_scalar(x, val=1, n_outputs=-1, outputs=None):
    """``val ** x``."""
    return _record("r_pow_scalar", (x,), val=number(val, "r_pow_scalar"))


def identity(x, n_outputs=-1, outputs=None):
    """``x`` itself, as a new node."""
    return _record("identity", (x,))


def squared_error(x0, x1, n_outputs=-1, outputs=None):
    """Elementwise ``(x0 - x1) ** 2``, not reduced."""
    return _record("squared_error", (x0, x1))


def _reduction(op: str, x, axis, keepdims) -> Variable:
    if not isinstance(x, Variable):
        return _record(op, (x,))  # raises the TypeError
    return _record(op, (x,), axes=normalize_axes(op, axis, x.shape), keepdims=bool(keepdims))


def sum(x, axis=None, keepdims=False):  # noqa: A001 - nnabla's name
    """Sum over `axis` (None: all axes; an int or a tuple of ints)."""
    return _reduction("sum", x, axis, keepdims)


def mean(x, axis=None, keepdims=False):
    """Mean over `axis` (None: all axes; an int or a tuple of ints)."""
    return _reduction("mean", x, axis, keepdims)


def reduce_sum(x, n_outputs=-1, outputs=None):
    """Sum over all axes (deprecated in nnabla in favour of `sum`, kept for tutorials)."""
    return _reduction("sum", x, None, False)


def reduce_mean(x, n_outputs=-1, outputs=None):
    """Mean over all axes (deprecated in nnabla in favour of `mean`, kept for tutorials)."""
    return _reduction("mean", x, None, False)
