"""`symcompile.functions` (F): nnabla's functions, recording graph nodes.

Each function checks its inputs and arguments, works out the output shape (so shape
errors surface here, at graph-build time) and returns a new Variable whose `parent`
records the call. Nothing is computed until `forward()`.
"""

from __future__ import annotations

import math
import numbers

from symcompile.frontend.variable import Function, Variable, normalize_shape
from symcompile.ir import callsite
from symcompile.ops.registry import OPS, normalize_axes, number

__all__ = [
    "add2", "sub2", "mul2", "div2", "pow2", "add_scalar", "mul_scalar", "pow_scalar",
    "r_sub_scalar", "r_div_scalar", "r_pow_scalar", "identity", "sum", "mean", "max", "min",
    "reduce_sum", "reduce_mean", "squared_error", "absolute_error", "huber_loss",
    "tanh", "sigmoid", "relu", "leaky_relu", "elu", "softplus", "exp", "log", "abs", "sin",
    "cos", "maximum2", "minimum2", "maximum_scalar", "minimum_scalar", "clip_by_value",
    "affine", "batch_matmul", "reshape", "transpose", "broadcast", "softmax", "log_softmax",
    "softmax_cross_entropy", "sigmoid_cross_entropy", "binary_cross_entropy",
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


def max(x, axis=None, keepdims=False, with_index=False, only_index=False):  # noqa: A001
    """Maximum over `axis`; the gradient goes to the first maximal element, as in nnabla."""
    _no_index("max", with_index, only_index)
    return _reduction("max", x, axis, keepdims)


def min(x, axis=None, keepdims=False, with_index=False, only_index=False):  # noqa: A001
    """Minimum over `axis`; the gradient goes to the first minimal element."""
    _no_index("min", with_index, only_index)
    return _reduction("min", x, axis, keepdims)


def _no_index(op, with_index, only_index):
    if with_index or only_index:
        raise NotImplementedError(f"F.{op}(with_index/only_index=True) is not supported: "
                                  "indices are not differentiable graph values")


# --- activations and maths --------------------------------------------------------------

def tanh(x, n_outputs=-1, outputs=None):
    """Hyperbolic tangent."""
    return _record("tanh", (x,))


def sigmoid(x, n_outputs=-1, outputs=None):
    """Logistic sigmoid, 1 / (1 + exp(-x))."""
    return _record("sigmoid", (x,))


def relu(x, inplace=False, n_outputs=-1, outputs=None):
    """max(x, 0); its derivative at 0 is 0."""
    return _record("relu", (x,))


def leaky_relu(x, alpha=0.1, inplace=False, n_outputs=-1, outputs=None):
    """x where x > 0, else alpha * x."""
    return _record("leaky_relu", (x,), alpha=number(alpha, "leaky_relu", "alpha"))


def elu(x, alpha=1.0, n_outputs=-1, outputs=None):
    """x where x >= 0, else alpha * (exp(x) - 1)."""
    return _record("elu", (x,), alpha=number(alpha, "elu", "alpha"))


def softplus(x, beta=1.0, n_outputs=-1, outputs=None):
    """log(1 + exp(beta * x)) / beta."""
    return _record("softplus", (x,), beta=number(beta, "softplus", "beta"))


def exp(x, n_outputs=-1, outputs=None):
    """Elementwise exponential."""
    return _record("exp", (x,))


def log(x, n_outputs=-1, outputs=None):
    """Elementwise natural logarithm."""
    return _record("log", (x,))


def abs(x, n_outputs=-1, outputs=None):  # noqa: A001
    """Elementwise absolute value (derivative sign(x), 0 at 0)."""
    return _record("abs", (x,))


def sin(x, n_outputs=-1, outputs=None):
    """Elementwise sine."""
    return _record("sin", (x,))


def cos(x, n_outputs=-1, outputs=None):
    """Elementwise cosine."""
    return _record("cos", (x,))


def maximum2(x0, x1, n_outputs=-1, outputs=None):
    """Elementwise maximum of two arrays (size-1 axes broadcast)."""
    return _record("maximum2", (x0, x1))


def minimum2(x0, x1, n_outputs=-1, outputs=None):
    """Elementwise minimum of two arrays (size-1 axes broadcast)."""
    return _record("minimum2", (x0, x1))


def maximum_scalar(x, val=1.0, n_outputs=-1, outputs=None):
    """max(x, val)."""
    return _record("maximum_scalar", (x,), val=number(val, "maximum_scalar"))


def minimum_scalar(x, val=1.0, n_outputs=-1, outputs=None):
    """min(x, val)."""
    return _record("minimum_scalar", (x,), val=number(val, "minimum_scalar"))


def clip_by_value(x, min, max):  # noqa: A002 - nnabla's argument names
    """x limited to [min, max]; `min` and `max` are numbers or Variables.

    As nnabla's, it is maximum then minimum: the gradient is 0 at the bounds.
    """
    for what, bound in (("min", min), ("max", max)):
        if not isinstance(bound, (Variable, numbers.Real)):
            raise TypeError(f"F.clip_by_value: {what} must be a Variable or a number, got "
                            f"{type(bound).__name__}")
    low = maximum2(x, min) if isinstance(min, Variable) else maximum_scalar(x, min)
    return minimum2(low, max) if isinstance(max, Variable) else minimum_scalar(low, max)


# --- losses ------------------------------------------------------------------------------

def absolute_error(x0, x1, n_outputs=-1, outputs=None):
    """Elementwise |x0 - x1|, not reduced."""
    return _record("absolute_error", (x0, x1))


def huber_loss(x0, x1, delta=1.0, n_outputs=-1, outputs=None):
    """Elementwise d**2 where |d| < delta, else delta * (2 |d| - delta), d = x0 - x1."""
    return _record("huber_loss", (x0, x1), delta=number(delta, "huber_loss", "delta"))


def sigmoid_cross_entropy(x, target, n_outputs=-1, outputs=None):
    """Elementwise -(t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))), stable."""
    return _record("sigmoid_cross_entropy", (x, target))


def binary_cross_entropy(x, target, n_outputs=-1, outputs=None):
    """Elementwise -(t log x + (1 - t) log(1 - x)) for probabilities x."""
    return _record("binary_cross_entropy", (x, target))


def softmax_cross_entropy(x, target, axis=None, n_outputs=-1, outputs=None):
    """-log softmax(x)[target] along `axis` (default: the last); label -1 gives 0.

    `target` holds integer labels with the shape of `x` but length 1 along `axis`.
    """
    axis = _one_axis("softmax_cross_entropy", x, axis)
    return _record("softmax_cross_entropy", (x, target), axis=axis)


def softmax(x, axis=None, n_outputs=-1, outputs=None):
    """exp(x) / sum(exp(x)) along `axis` (default: the last)."""
    return _record("softmax", (x,), axis=_one_axis("softmax", x, axis))


def log_softmax(x, axis=None, n_outputs=-1, outputs=None):
    """log(softmax(x)) along `axis` (default: the last), computed stably."""
    return _record("log_softmax", (x,), axis=_one_axis("log_softmax", x, axis))


def _one_axis(op, x, axis) -> int:
    if not isinstance(x, Variable):
        return 0  # _record raises the TypeError
    if axis is None:
        axis = x.ndim - 1
    if not isinstance(axis, numbers.Integral) or isinstance(axis, bool):
        raise TypeError(f"F.{op}: axis must be an int, got {axis!r}")
    return normalize_axes(op, axis, x.shape)[0]


# --- matrix products and shapes ------------------------------------------------------------

def affine(x, weight, bias=None, base_axis=1, n_outputs=-1, outputs=None):
    """y = x W + b, with x flattened to a matrix from `base_axis` on."""
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return _record("affine", inputs, base_axis=int(base_axis))


def batch_matmul(a, b, transpose_a=False, transpose_b=False, n_outputs=-1, outputs=None):
    """Matrix products over the last two axes; the batch axes broadcast where 1."""
    return _record("batch_matmul", (a, b), transpose_a=bool(transpose_a),
                   transpose_b=bool(transpose_b))


def reshape(x, shape, inplace=True, n_outputs=-1, outputs=None):
    """`x` with a new shape of the same size; one axis may be -1 (inferred)."""
    if not isinstance(x, Variable):
        return _record("reshape", (x,))
    return _record("reshape", (x,), shape=_reshape_target(x.shape, shape))


def _reshape_target(old, shape) -> tuple[int, ...]:
    if isinstance(shape, numbers.Integral):
        shape = (shape,)
    shape = [int(d) for d in shape]
    size = math.prod(old)
    if shape.count(-1) > 1:
        raise ValueError(f"F.reshape: shape {tuple(shape)} has more than one -1")
    if -1 in shape:
        known = math.prod(d for d in shape if d != -1)
        if known == 0 or size % known:
            raise ValueError(f"F.reshape: cannot reshape {old} ({size} elements) to "
                             f"{tuple(shape)}")
        shape[shape.index(-1)] = size // known
    new = normalize_shape(shape, "F.reshape")
    if math.prod(new) != size:
        raise ValueError(f"F.reshape: cannot reshape {old} ({size} elements) to {new} "
                         f"({math.prod(new)} elements)")
    return new


def transpose(x, axes, n_outputs=-1, outputs=None):
    """`x` with its axes permuted: output axis i is input axis axes[i]."""
    if not isinstance(x, Variable):
        return _record("transpose", (x,))
    perm = tuple(int(a) % x.ndim if x.ndim else int(a) for a in axes)
    if sorted(perm) != list(range(x.ndim)):
        raise ValueError(f"F.transpose: axes {tuple(axes)} is not a permutation of the "
                         f"{x.ndim} axes of an input of shape {x.shape}")
    return _record("transpose", (x,), axes=perm)


def broadcast(x, shape, n_outputs=-1, outputs=None):
    """`x` repeated along its size-1 axes (and new leading axes) to `shape`."""
    if not isinstance(x, Variable):
        return _record("broadcast", (x,))
    shape = normalize_shape(shape, "F.broadcast")
    padded = (1,) * (len(shape) - x.ndim) + x.shape
    if len(shape) < x.ndim or any(d != s and d != 1 for d, s in zip(padded, shape,
                                                                    strict=True)):
        raise ValueError(f"F.broadcast: cannot broadcast shape {x.shape} to {shape}: every "
                         "axis of the input must equal the target's or be 1 (missing "
                         "leading axes count as 1)")
    return _record("broadcast", (x,), shape=shape)
