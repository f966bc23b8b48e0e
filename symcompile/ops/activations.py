"""celu, prelu and kl_multinomial: formulas of `sympy_functions` (so SymPy differentiates
them, with nnabla's conventions) that are not one elementwise function of their inputs:
celu joins two halves along an axis, prelu's slopes broadcast along `base_axis`,
kl_multinomial sums over the axes from `base_axis` on.
"""

from __future__ import annotations

import math

from symcompile.common.deferred import Deferred
from symcompile.ops.opdef import OpDef, registrar

sympy = Deferred("sympy")
E = Deferred("symcompile.ops.sympy_functions")
P = Deferred("symcompile.ir.primitives")
I = Deferred("symcompile.ir.indexing")  # noqa: E741 - the module's short name, like P

OPS: dict[str, OpDef] = {}


_register = registrar(OPS)


def _celu_shape(shapes, attrs):
    x, axis = shapes[0], attrs["axis"]
    return x[:axis] + (2 * x[axis],) + x[axis + 1:]


@_register("celu", "CELU", 1, _celu_shape)
def _celu(args, attrs, ctx):
    """nnabla's celu: elu(x) and elu(-x) joined along `axis` (celu.cpp), each elu with
    its derivative 1 at 0 (as F.elu's), so the gradient is elu'(x) - elu'(-x)."""
    x, alpha = args[0], attrs["alpha"]
    return I.concatenate([E.Elu(x, alpha), E.Elu(-x, alpha)], attrs["axis"], ctx.shapes)


def _prelu_shape(shapes, attrs):
    x, w = shapes
    base = attrs["base_axis"]
    if math.prod(w) != 1 and tuple(w) != (x[base],):
        raise ValueError(
            f"F.prelu: slopes x1 of shape {w} do not fit x0 of shape {x} at base_axis "
            f"{base}: give one slope (shape () or any shape of size 1) or one per channel, "
            f"of shape ({x[base]},) (nnabla's rule)")
    return x


@_register("prelu", "PReLU", 2, _prelu_shape)
def _prelu(args, attrs, ctx):
    """x0 where x0 >= 0, else x1*x0 (prelu.cpp), the slopes x1 reshaped to broadcast
    along `base_axis` (one slope: a scalar), so their gradient sums over the rest."""
    (x_shape, w_shape), base = ctx.in_shapes, attrs["base_axis"]
    if math.prod(w_shape) == 1:
        w = P.reshape(args[1], (), ctx.shapes)
    else:
        w = P.reshape(args[1], tuple(n if i == base else 1 for i, n in enumerate(x_shape)),
                      ctx.shapes)
    return E.PRelu(args[0], w)


def _kl_shape(shapes, attrs):
    p, q = shapes
    base = attrs["base_axis"]
    if p != q:
        raise ValueError(f"F.kl_multinomial: p of shape {p} and q of shape {q} must have the "
                         f"same shape (nnabla's rule; it does not broadcast)")
    return p[:base] + (1,)


@_register("kl_multinomial", "KLMultinomial", 2, _kl_shape)
def _kl_multinomial(args, attrs, ctx):
    """sum over the axes from base_axis on of p*(log(p + 1e-8) - log(q + 1e-8)), as
    nnabla's (with its gradients, see `KLTerm`), of shape p.shape[:base_axis] + (1,)."""
    shape, base = ctx.in_shapes[0], attrs["base_axis"]
    term = E.KLTerm(args[0], args[1])
    total = P.reduce_sum(term, tuple(range(base, len(shape))), False, shape, ctx.shapes)
    return P.reshape(total, ctx.out_shape, ctx.shapes)


@_register("crelu", "CReLU", 1, _celu_shape)
def _crelu(args, attrs, ctx):
    """nnabla's crelu: relu(x) and relu(-x) joined along `axis` (crelu.cpp). Its backward
    sends dy of the first half where x > 0 and -dy of the second where x <= 0, so at 0 the
    second half's gradient counts: max(0, -x) with the tie going to -x (Maximum's second
    argument) gives exactly that, and max(x, 0) has relu'(0) = 0."""
    x, zero = args[0], sympy.Integer(0)
    return I.concatenate([E.Maximum(x, zero), E.Maximum(zero, -x)], attrs["axis"], ctx.shapes)
