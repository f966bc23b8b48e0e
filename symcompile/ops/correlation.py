"""nnabla's patch_correlation (FlowNetC's correlation layer), as generated code.

    O[n, i, j, ho, wo] = sum over c, kh, kw of x1[n, c, h + kh, w + kw]
                                                * x2[n, c, h + kh + ys[i], w + kw + xs[j]]

with (h, w) = (ho, wo) * patch_step, the offsets ys = -shift_y, -shift_y + shift_step_y,
... <= shift_y (and xs likewise), both inputs zero-padded by `padding` (top, bottom,
left, right) and x2 read as 0 outside. It lowers to the products of x1 with each shifted
x2, summed over the channels (`ir.correlation.ShiftedProducts`: one kernel for every
offset), then a sum pooling over the patch windows; their VJPs give the gradients to
x1 and x2, and derivatives of any order.
"""

from __future__ import annotations

from symcompile.common.deferred import Deferred
from symcompile.ops.opdef import OpDef, registrar

sympy = Deferred("sympy")
P = Deferred("symcompile.ir.primitives")
I = Deferred("symcompile.ir.indexing")  # noqa: E741 - the module's short name, like P
C = Deferred("symcompile.ir.correlation")

OPS: dict[str, OpDef] = {}

_register = registrar(OPS)


def offsets(shift: int, step: int) -> tuple[int, ...]:
    """The offsets of one axis: -shift to shift by step (nnabla's 2*shift // step + 1)."""
    return tuple(range(-shift, shift + 1, step))


def _geometry(shapes, attrs):
    """(Ho, Wo) of nnabla's PatchCorrelation on (N, H, W, C) inputs, with its checks."""
    x1, x2 = (tuple(s) for s in shapes)
    where = f"F.patch_correlation: inputs of shapes {x1} and {x2} (N, H, W, C)"
    if len(x1) != 4 or x1 != x2:
        raise ValueError(f"{where}: x1 and x2 must be 4-D and of the same shape (nnabla's "
                         f"rule)")
    top, bottom, left, right = attrs["padding"]
    size = (x1[1] + top + bottom, x1[2] + left + right)
    out = []
    for axis, (length, k, s) in enumerate(zip(size, attrs["patch"], attrs["patch_step"],
                                              strict=True)):
        m = (length - k) // s + 1
        if m < 1:
            raise ValueError(f"{where}: the patch {attrs['patch']} is larger than the padded "
                             f"input {size} along spatial axis {axis}: pad more or use a "
                             f"smaller patch")
        out.append(m)
    return tuple(out)


def _shape(shapes, attrs):
    ho, wo = _geometry(shapes, attrs)
    cy, cx = (len(offsets(s, t)) for s, t in zip(attrs["shift"], attrs["shift_step"],
                                                 strict=True))
    return (shapes[0][0], ho, wo, cy, cx)


@_register("patch_correlation", "PatchCorrelation", 2, _shape)
def _patch_correlation(args, attrs, ctx):
    """nnabla's base function: (N, H, W, C) inputs, an (N, Ho, Wo, Cy, Cx) output (F's
    channels-first form transposes around it, as nnabla's does; those transposes and
    these cancel)."""
    x1, x2 = (P.transpose(x, (0, 3, 1, 2), ctx.shapes) for x in args)
    top, bottom, left, right = attrs["padding"]
    if any(attrs["padding"]):
        before, after = P.shape_tuple((0, 0, top, left)), P.shape_tuple((0, 0, bottom, right))
        x1, x2 = (I.Pad(x, before, after, sympy.Integer(0)) for x in (x1, x2))
    ys, xs = (offsets(s, t) for s, t in zip(attrs["shift"], attrs["shift_step"], strict=True))
    products = C.ShiftedProducts(x1, x2, P.shape_tuple(ys), P.shape_tuple(xs))
    y = P.pooling("sum", products, attrs["patch"], attrs["patch_step"], (0, 0), True)
    return P.transpose(y, (0, 3, 4, 1, 2), ctx.shapes)
