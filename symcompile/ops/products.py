"""`ReduceProd`: nnabla's product over axes, whose gradient is a formula over its own
value (so it lives among the ops, next to the elementwise functions it uses).

nnabla computes d prod / d x_i as prod / x_i, and 0 where x_i is 0 (not the product of
the other elements): the VJP below is that formula, written with `Select` so that no
division by zero is evaluated.
"""

from __future__ import annotations

import sympy

from symcompile.ir.primitives import ExpandDims, KernelBase, as_ints
from symcompile.ops.sympy_functions import Select


class ReduceProd(KernelBase):
    """``numpy.prod(x, axis=axes, keepdims=keepdims)``; args (x, axes, keepdims)."""

    nargs = 3
    kernel = "reduce_prod"
    options = ("axes", "keepdims")

    def shape(self, shapes):
        x_shape, axes = shapes.of(self.args[0]), as_ints(self.args[1])
        if bool(self.args[2]):
            return tuple(1 if i in axes else n for i, n in enumerate(x_shape))
        return tuple(n for i, n in enumerate(x_shape) if i not in axes)

    def vjp(self, index, g, shapes):
        """nnabla's: dx = dy * y / x where x != 0, else 0."""
        x, axes, keep = self.args
        if not bool(keep) and not shapes.is_scalar(g):
            g = ExpandDims(g, axes)
        y = ReduceProd(x, axes, sympy.Integer(1))
        nonzero_x = Select(x, x, sympy.Integer(1))  # x, with 1 where it is 0
        return g * Select(x, y / nonzero_x, sympy.Integer(0))
