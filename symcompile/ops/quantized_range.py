"""The primitive of nnabla's min_max_quantize (`ops.quantization`): its value, its
range (observed from x or given, widened to eps, its zero point nudged to a level) and
its straight-through backward.

Loaded with SymPy, when the first graph is lowered (`ops.quantization` defers it).
"""

from __future__ import annotations

from types import SimpleNamespace

import sympy

from symcompile.ir import primitives as P
from symcompile.ir.primitives import Composite
from symcompile.ops import structural
from symcompile.ops import sympy_functions as E

# `Compare`'s relations (sympy_functions.RELATIONS)
_GREATER, _LESS, _LESS_EQUAL = 0, 2, 3


def _compare(a, b, relation: int):
    return E.Compare(a, b, sympy.Integer(relation))


def _extremum_over(kind: str, x, x_shape, axes, shapes):
    """min or max (`kind`: ReduceMin, ReduceMax) of x over `axes`, keeping them."""
    context = SimpleNamespace(in_shapes=(tuple(x_shape),), shapes=shapes)
    return structural._extremum(kind)([x], {"axes": tuple(axes), "keepdims": True}, context)


def observed_range(x, qr_min, qr_max, settings, x_shape, axes, shapes):
    """(qr_min, qr_max) as the forward pass uses them: min(x) and max(x) over `axes` (the
    ranges' size-1 axes), or their moving averages with ema, if x_min_max, else the
    inputs'; then qr_max widened to qr_min + eps where the range is below eps."""
    if settings["x_min_max"]:
        low = _extremum_over("ReduceMin", x, x_shape, axes, shapes)
        high = _extremum_over("ReduceMax", x, x_shape, axes, shapes)
        if settings["ema"]:
            decay = settings["decay"]
            low = decay * qr_min + (1 - decay) * low
            high = decay * qr_max + (1 - decay) * high
        qr_min, qr_max = low, high
    eps = settings["eps"]
    return qr_min, E.Select(_compare(qr_max - qr_min, eps, _LESS), qr_min + eps, qr_max)


def nudged_range(x, qr_min, qr_max, ql_min, ql_max, settings, x_shape, axes, shapes):
    """(m, M, scale): scale = (qr_max - qr_min) / (ql_max - ql_min), and the range moved
    so that the zero point zp = ql_min - qr_min / scale is a level: zp limited to [ql_min,
    ql_max], else rounded (halves away from zero); m = (ql_min - zp) * scale, M = (ql_max
    - zp) * scale (nudge_qr_min_max in min_max_quantize.cpp)."""
    qr_min, qr_max = observed_range(x, qr_min, qr_max, settings, x_shape, axes, shapes)
    # scale as an array of its own, rounded to the dtype before anything divides by it as
    # nnabla's does: SymPy would turn qr_min / ((qr_max - qr_min) / levels) into
    # qr_min * levels / (qr_max - qr_min), which puts a symmetric range's zero point at the
    # exact tie 127.5 where nnabla's float32 has 127.49999 (and rounds it down)
    scale = P.Copy((qr_max - qr_min) / (ql_max - ql_min))
    zero_point = ql_min - qr_min / scale
    nudged = E.Select(_compare(zero_point, ql_min, _LESS_EQUAL), ql_min,
                      E.Select(_compare(zero_point, ql_max, _LESS), E.Round(zero_point), ql_max))
    return (ql_min - nudged) * scale, (ql_max - nudged) * scale, scale


SETTINGS = ("decay", "x_min_max", "ema", "ste_fine_grained", "eps")


class MinMaxQuantized(Composite):
    """min_max_quantize's value round((clip(x, m, M) - m) / scale) * scale + m, with
    nnabla's straight-through backward: dy to x where m <= x <= M (everywhere unless
    ste_fine_grained), and to qr_min (qr_max) the sums of dy where x < m (x > M). Args
    (x, qr_min, qr_max, ql_min, ql_max, decay, x_min_max, ema, ste_fine_grained, eps).

    One primitive rather than its formula, because the formula reads the range through
    the nudged zero point many times over: written out, the lowering's cost model (which
    counts a subexpression at every use) refuses it; a primitive's cost is its arguments'.
    """

    nargs = 10
    tensor_args = (0, 1, 2)

    def shape(self, shapes):
        return shapes.of(self.args[0])

    def _parts(self, shapes):
        x, qr_min, qr_max, ql_min, ql_max = self.args[:5]
        settings = dict(zip(SETTINGS, self.args[5:], strict=True))
        settings["x_min_max"], settings["ema"] = bool(settings["x_min_max"]), bool(settings["ema"])
        x_shape = shapes.of(x)
        axes = tuple(i for i, d in enumerate(shapes.of(ql_min)) if d == 1)
        low, high, scale = nudged_range(x, qr_min, qr_max, ql_min, ql_max, settings, x_shape,
                                         axes, shapes)
        return x_shape, axes, low, high, scale

    def expansion(self, shapes):
        x = self.args[0]
        _, _, low, high, scale = self._parts(shapes)
        clipped = E.Minimum(E.Maximum(x, low), high)
        return E.Round((clipped - low) / scale) * scale + low

    def vjp(self, index, g, shapes):
        x = self.args[0]
        x_shape, axes, low, high, _ = self._parts(shapes)
        dy = P.exact(g, x_shape, shapes)
        below, above = _compare(x, low, _LESS), _compare(x, high, _GREATER)
        if index == 0:
            return dy * (1 - below) * (1 - above) if bool(self.args[8]) else dy
        outside = dy * (below if index == 1 else above)
        return P.reduce_sum(outside, axes, True, x_shape, shapes) if axes else outside


class MinMaxQuantizedObserved(MinMaxQuantized):
    """MinMaxQuantized with x_min_max or ema: the range is observed, not trained, so
    only x gets a gradient (nnabla's backward returns before the ranges')."""

    tensor_args = (0,)
