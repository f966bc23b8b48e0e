"""What an op is: its shape rule and its SymPy lowering, plus the checks they share.

Each `OpDef` says how an `F.*` call's output shape follows from its inputs (raising a
ValueError that names the function, the shapes and the fix) and how its value is
written as one SymPy expression over its inputs' expressions. An op whose `F.*` function
only checks its arguments also says how that function is called (`FunctionApi`), and
`frontend.functions` builds the function from it.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from symcompile.ir.attributes import Scalar

if TYPE_CHECKING:  # the op table loads without SymPy (see `deferred`)
    import sympy

    from symcompile.ir.primitives import Shapes


@dataclass(frozen=True)
class LowerContext:
    """What a lowering rule may look at besides its input expressions."""

    in_shapes: tuple[tuple[int, ...], ...]
    out_shape: tuple[int, ...]
    shapes: Shapes
    # The integer class labels an expression holds, for ops indexed by labels: a graph
    # input's checked integer form, else the expression truncated as nnabla casts it;
    # (expr, classes, ignore=True), `ignore` whether -1 (a sample ignored) is allowed.
    class_labels: Callable[..., sympy.Expr] | None = None
    # The graph differentiates a gradient again (nn.grad): a rule must not drop a term
    # that only vanishes to first order (a constant's derivative is not the derivative).
    differentiated_twice: bool = False
    # (expr, name) -> a symbol standing for `expr`, computed once into an array of its
    # own, so that its VJP runs once on the summed gradients of all its reads
    array_of: Callable[[sympy.Expr, str], sympy.Symbol] | None = None


@dataclass(frozen=True)
class FunctionApi:
    """How nnabla's `F.<name>` is called, for an op whose function has no logic of its own.

    Its parameters, in order: the Variable `inputs`, the `scalars` (real numbers, checked
    with `number` and recorded as the node's attributes) and the `ignored` ones, which
    nnabla has and symcompile accepts for compatibility (``inplace``, ``n_outputs``,
    ``outputs``). Defaults are nnabla's.
    """

    inputs: tuple[str, ...]
    scalars: tuple[tuple[str, object], ...]  # (name, default)
    ignored: tuple[tuple[str, object], ...]  # (name, default)
    doc: str


@dataclass(frozen=True)
class OpDef:
    name: str  # nnabla's function name, e.g. "add2"
    type_name: str  # nnabla's class name, e.g. "Add2"
    arity: int
    elementwise: bool
    infer_shape: Callable[[tuple, dict], tuple]  # (input shapes, attrs) -> output shape
    lower: Callable[..., sympy.Expr]  # (input exprs, attrs, LowerContext) -> expr
    api: FunctionApi | None = None  # None: F.<name> is written by hand
    # The inputs that hold class labels: (input shapes, attrs) -> {position: classes},
    # so that a module's check_gradient() draws valid labels for them.
    labels: Callable[[tuple, dict], dict[int, int]] | None = None
    # The inputs a forward pass overwrites (batch normalization's running statistics):
    # (input exprs, attrs, LowerContext) -> {position: (the input's new value, what that
    # is, for the comment)}; the input is a leaf, and every generated function that runs
    # the forward writes it in place.
    running: Callable[..., dict[int, tuple[sympy.Expr, str]]] | None = None
    # The inputs a backward pass overwrites (F.vat_noise's w, which gets eps * dy): (input
    # exprs, attrs, LowerContext) -> {position: (the input's new value as a function of
    # the output's cotangent, what that is, for the comment)}; the input is a leaf, and
    # every generated function that runs the backward writes it in place (its gradient is
    # not changed by it).
    backward_writes: Callable[..., dict[int, tuple[Callable, str]]] | None = None
    # Its lowering reads its inputs several times (x - mean(x)): fused inputs get arrays
    # of their own first, so that the gradients of all those reads are summed before they
    # flow back into the input's own expression (one convolution gradient, not three).
    array_inputs: bool = False
    # nnabla 1.39's dtype of the output's values when it is not float32: a NumPy dtype
    # name (the uint64 indices of max, sort and top_k_data; randint's int32), or "input"
    # for the first input's (identity, and reshape in place)
    output_dtype: str | None = None


def registrar(table: dict[str, OpDef]):
    """The decorator a module of ops adds them to its `table` with:
    ``@register(name, type_name, arity, infer, labels=None, output_dtype=None)`` over the
    op's lowering, given its shape rule `infer(shapes, attrs)` (and which inputs hold
    class labels, see `OpDef.labels`; the dtype of its values, `OpDef.output_dtype`)."""

    def register(name: str, type_name: str, arity: int, infer, labels=None,
                 output_dtype=None):
        def add(lower):
            table[name] = OpDef(name, type_name, arity, False, infer, lower, labels=labels,
                                output_dtype=output_dtype)
            return lower

        return add

    return register


def number(value, op: str, arg: str = "val") -> Scalar:
    """A Python or NumPy scalar (or 0-d array, or bool) as a `Scalar`."""
    if value is inspect.Parameter.empty:  # a scalar nnabla requires, not given
        raise TypeError(f"F.{op}: missing a required argument: {arg!r}")
    if hasattr(value, "ndim") and getattr(value, "ndim", None) == 0:
        value = value.item()
    if isinstance(value, bool):
        value = int(value)
    if not isinstance(value, numbers.Real):
        hint = (" Arrays are Variables: wrap them with nn.Variable.from_numpy_array(array)."
                if hasattr(value, "shape") else "")
        raise TypeError(f"F.{op}: {arg} must be a real number, got {value!r}.{hint}")
    return Scalar(float(value))


def sympy_number(value: float) -> sympy.Expr:
    """A scalar argument as an exact SymPy number (integers exact, nan and infinities
    as SymPy's)."""
    import sympy

    value = float(value)
    if math.isnan(value):
        return sympy.nan
    if math.isinf(value):
        return sympy.oo if value > 0 else -sympy.oo
    if value.is_integer() and abs(value) < 2**53:
        return sympy.Integer(int(value))
    return sympy.Float(value)


def broadcast_shape(op: str, shapes: tuple) -> tuple[int, ...]:
    """nnabla's binary broadcasting: equal ranks, each axis equal or 1."""
    first = shapes[0]
    for other in shapes[1:]:
        if len(other) != len(first):
            small, big = sorted((first, other), key=len)
            suggestion = (1,) * (len(big) - len(small)) + tuple(small)
            raise ValueError(
                f"F.{op}: inputs of shapes {first} and {other} have different ranks "
                f"({len(first)} and {len(other)}). nnabla broadcasts only between inputs of "
                f"the same rank; reshape the {small} input to {suggestion}."
            )
    out = []
    for axis, sizes in enumerate(zip(*shapes, strict=True)):
        big = {d for d in sizes if d != 1}
        if len(big) > 1:
            raise ValueError(
                f"F.{op}: cannot broadcast shapes {' and '.join(map(str, shapes))}: axis {axis} "
                f"has sizes {' and '.join(str(d) for d in sizes)}. Axes must be equal or 1; "
                "reshape or broadcast an input so that they are."
            )
        out.append(big.pop() if big else 1)
    return tuple(out)


def normalize_axes(op: str, axis, shape: tuple[int, ...]) -> tuple[int, ...]:
    """nnabla's `axis` argument (None, int or sequence) as sorted non-negative axes."""
    ndim = len(shape)
    if axis is None:
        return tuple(range(ndim))
    items = [axis] if isinstance(axis, numbers.Integral) else list(axis)
    axes = []
    for a in items:
        if isinstance(a, bool) or not isinstance(a, numbers.Integral):
            raise TypeError(f"F.{op}: axis must be an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < ndim:
            raise ValueError(
                f"F.{op}: axis {a} is out of range for an input of shape {shape} "
                f"(valid axes: {-ndim}..{ndim - 1})"
            )
        axes.append(int(a) % ndim)
    if len(set(axes)) != len(axes):
        raise ValueError(f"F.{op}: axis {axis!r} names the same axis twice")
    return tuple(sorted(axes))


def reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)
