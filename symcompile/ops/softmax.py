"""The softmax family: primitives with closed-form gradients, printed through exp/log.

Differentiating softmax cross-entropy through its exp and log would give a long chain
of derivatives; its gradient is simply ``softmax(x) - onehot(t)``. So `Softmax`,
`LogSoftmax` and `SoftmaxCrossEntropy` are `Composite` primitives: autodiff uses their
VJPs below, and `expand_composites` then rewrites them into the numerically stable NumPy form
(``exp(x - max(x))``) before common subexpressions are shared between forward and
backward.
"""

from __future__ import annotations

import sympy

from symcompile.ir.primitives import (
    Composite,
    Mask,
    Primitive,
    ReduceMax,
    ReduceSum,
    Shapes,
    StopGradient,
    as_ints,
    keep_argument_shapes,
    reduce_sum,
    shape_tuple,
)


def _keep(axis: int, x_shape: tuple[int, ...]) -> tuple:
    """ReduceSum's arguments after the summand: over `axis`, keeping it."""
    return shape_tuple((axis,)), sympy.Integer(1), shape_tuple(x_shape)


def _stable_exp(x: sympy.Expr, axis: int) -> tuple[sympy.Expr, sympy.Expr]:
    """(x - max(x), exp(x - max(x))) along `axis`."""
    shifted = x - ReduceMax(x, sympy.Integer(axis), sympy.Integer(1))
    return shifted, sympy.exp(shifted)


class Softmax(Composite):
    """exp(x) / sum(exp(x)) along `axis`; args (x, axis)."""

    nargs = 2

    def shape(self, shapes):
        return shapes.of(self.args[0])

    def vjp(self, index, g, shapes):
        axis = int(self.args[1])
        return self * (g - reduce_sum(g * self, (axis,), True, self.shape(shapes), shapes))

    def expansion(self, shapes):
        _, e = _stable_exp(self.args[0], int(self.args[1]))
        return e / ReduceSum(e, *_keep(int(self.args[1]), self.shape(shapes)))


class LogSoftmax(Composite):
    """x - log(sum(exp(x))) along `axis`; args (x, axis)."""

    nargs = 2

    def shape(self, shapes):
        return shapes.of(self.args[0])

    def vjp(self, index, g, shapes):
        x, axis = self.args
        total = reduce_sum(g, (int(axis),), True, self.shape(shapes), shapes)
        return g - Softmax(x, axis) * total

    def expansion(self, shapes):
        shifted, e = _stable_exp(self.args[0], int(self.args[1]))
        return shifted - sympy.log(ReduceSum(e, *_keep(int(self.args[1]), self.shape(shapes))))


class OneHot(Mask):
    """1 where the class index along `axis` equals the label t, else 0; args (t, classes,
    axis). A label outside [0, classes) (nnabla's -1: ignore) gives a row of zeros."""

    nargs = 3

    def shape(self, shapes):
        t_shape = list(shapes.of(self.args[0]))
        t_shape[int(self.args[2])] = int(self.args[1])
        return tuple(t_shape)


class ValidLabel(Mask):
    """1 where 0 <= t < classes, else 0; args (t, classes)."""

    nargs = 2

    def shape(self, shapes):
        return shapes.of(self.args[0])


class SoftmaxCrossEntropy(Composite):
    """-log softmax(x)[t] along `axis`, 0 where the label is -1; args (x, t, axis).

    The output keeps the class axis with length 1, like the label array.
    """

    nargs = 3
    tensor_args = (0,)  # labels get no gradient

    def shape(self, shapes):
        x_shape = list(shapes.of(self.args[0]))
        x_shape[int(self.args[2])] = 1
        return tuple(x_shape)

    def vjp(self, index, g, shapes):
        x, t, axis = self.args
        classes = shapes.of(x)[int(axis)]
        return g * (Softmax(x, axis) * ValidLabel(t, classes)
                    - OneHot(t, sympy.Integer(classes), axis))

    def expansion(self, shapes):
        x, t, axis = self.args
        classes = sympy.Integer(shapes.of(x)[int(axis)])
        picked = OneHot(t, classes, axis) * LogSoftmax(x, axis).expansion(shapes)
        return -ReduceSum(picked, *_keep(int(axis), shapes.of(x)))


def expand_composites(expr: sympy.Expr, shapes: Shapes) -> sympy.Expr:
    """`expr` with every Composite replaced by its expanded form (recursively), and every
    StopGradient by its argument: after differentiation it only hides equal values from
    the common-subexpression pass."""
    if isinstance(expr, Composite):
        return expand_composites(expr.expansion(shapes), shapes)
    if isinstance(expr, StopGradient):
        return expand_composites(expr.args[0], shapes)
    if not expr.args or isinstance(expr, sympy.Symbol):
        return expr
    args = [expand_composites(a, shapes) for a in expr.args]
    if all(new is old for new, old in zip(args, expr.args, strict=True)):
        return expr
    if isinstance(expr, ReduceSum):
        # Re-canonicalise sums: nested sums merge, products become dot products. The
        # nominal shape is the unexpanded argument's: its expansion may have folded into
        # a constant (a softmax over an axis of length 1 is 1).
        return reduce_sum(args[0], as_ints(expr.args[1]), bool(expr.args[2]),
                          as_ints(expr.args[3]), shapes)
    if isinstance(expr, Primitive):
        return keep_argument_shapes(expr, args, shapes)
    return expr.func(*args)
