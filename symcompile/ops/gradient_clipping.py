"""Identity functions whose gradient is clipped or selected: nnabla's clip_grad_by_value,
clip_grad_by_norm and top_k_grad, and the identity whose gradient also goes to another
input (random_choice's weights get the gradient its population gets, as in nnabla).

Their forward pass is the identity and their backward pass is no derivative of it, so
no formula gives them: each is a `Composite` primitive whose VJP clips the cotangent and
whose expansion (after autodiff, see `softmax.expand_composites`) is the input itself.
"""

from __future__ import annotations

import math

import sympy

from symcompile.ir.indexing import TopKIndex
from symcompile.ir.primitives import Composite, StopGradient, as_ints, exact, reduce_sum, reshape
from symcompile.ops.sympy_functions import Maximum, Minimum


class _Identity(Composite):
    """args[0] forward (and after autodiff); backward, the cotangent g, as is, to each of
    the `tensor_args` (subclasses clip or route it)."""

    def shape(self, shapes):
        return shapes.of(self.args[0])

    def vjp(self, index, g, shapes):
        return g

    def expansion(self, shapes):
        return self.args[0]


class ClipGradByValue(_Identity):
    """x forward; backward, the cotangent limited to [low, high] elementwise (nnabla's
    `min(max(dy, low), high)` wherever low <= high); args (x, low, high), one shape."""

    nargs = 3
    tensor_args = (0,)  # nnabla sends no gradient to the bounds

    def vjp(self, index, g, shapes):
        _, low, high = self.args
        return Minimum(Maximum(g, low), high)


class SharedGradient(_Identity):
    """x forward; backward, the cotangent goes to x and, unchanged, to `other` (of x's
    shape): nnabla's RandomChoice gives its weights the gradient it gives its population.
    Args (x, other)."""

    nargs = 2
    tensor_args = (0, 1)


class StraightThrough(_Identity):
    """`value` forward; backward, the cotangent goes to x unchanged and nothing to `value`
    (random_erase with ste_fine_grained=False: the erased pixels pass the gradient as
    if kept). Args (value, x), one shape."""

    nargs = 2
    tensor_args = (1,)


class TopKGrad(Composite):
    """x forward; backward, only the k largest elements of each sample's cotangent (by
    magnitude if `absolute`) pass, the others are 0 (nnabla's top_k_grad); a sample is the
    axes from `base_axis` on. Args (x, k, absolute, base_axis)."""

    nargs = 4

    def shape(self, shapes):
        return shapes.of(self.args[0])

    def vjp(self, index, g, shapes):
        _, k, absolute, base_axis = self.args
        x_shape = self.shape(shapes)
        base = int(base_axis)
        rows_shape = (math.prod(x_shape[:base]), math.prod(x_shape[base:]))
        rows = reshape(exact(g, x_shape, shapes), rows_shape, shapes)
        chosen = StopGradient(TopKIndex(rows, k, absolute, sympy.Integer(1), sympy.Integer(1)))
        return reshape(rows * chosen, x_shape, shapes)

    def expansion(self, shapes):
        return self.args[0]


class ClipGradByNorm(Composite):
    """x forward; backward, the cotangent rescaled to L2 norm `clip_norm` over `axes`:
    ``clip_norm * dy / sqrt(sum(dy**2, axes))``, as nnabla computes it (always rescaled,
    also when the norm is smaller, and NaN where dy is 0); args (x, clip_norm, axes)."""

    nargs = 3

    def shape(self, shapes):
        return shapes.of(self.args[0])

    def vjp(self, index, g, shapes):
        _, clip_norm, axes = self.args
        x_shape = self.shape(shapes)
        dy = exact(g, x_shape, shapes)  # a scalar seed still has one element per x's
        squares = reduce_sum(dy ** 2, as_ints(axes), True, x_shape, shapes)
        return clip_norm * dy / sympy.sqrt(squares)

    def expansion(self, shapes):
        return self.args[0]
