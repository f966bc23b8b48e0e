"""Array manipulation (slices, flips, constant padding, concatenation and stacking) and
dropout.

Each lowers to `indexing` primitives, whose gradients are slices and placements of the
cotangent, so the backward section reads like the forward one reversed. The front end
(`functions.slice`, `Variable.__getitem__`) normalises Python's indices first: nodes
hold positive steps and bounds inside the array.
"""

from __future__ import annotations

from symcompile.common.deferred import Deferred
from symcompile.ops.opdef import OpDef

sympy = Deferred("sympy")
P = Deferred("symcompile.ir.primitives")
I = Deferred("symcompile.ir.indexing")  # noqa: E741 - the module's short name, like P

OPS: dict[str, OpDef] = {}


def _register(name: str, type_name: str, arity: int, infer):
    def register(lower):
        OPS[name] = OpDef(name, type_name, arity, False, infer, lower)
        return lower

    return register


def _slice_shape(shapes, attrs):
    return tuple(len(range(b, e, s)) for b, e, s in zip(attrs["start"], attrs["stop"],
                                                          attrs["step"], strict=True))


@_register("slice", "Slice", 1, _slice_shape)
def _slice(args, attrs, ctx):
    return I.Slice(args[0], P.shape_tuple(attrs["start"]), P.shape_tuple(attrs["stop"]),
                   P.shape_tuple(attrs["step"]))


@_register("flip", "Flip", 1, lambda shapes, attrs: shapes[0])
def _flip(args, attrs, ctx):
    if not attrs["axes"]:
        return args[0]
    return I.Flip(args[0], P.shape_tuple(attrs["axes"]))


def _pad_shape(shapes, attrs):
    return tuple(n + b + a for n, b, a in zip(shapes[0], attrs["before"], attrs["after"],
                                              strict=True))


@_register("pad", "Pad", 1, _pad_shape)
def _pad(args, attrs, ctx):
    return I.Pad(args[0], P.shape_tuple(attrs["before"]), P.shape_tuple(attrs["after"]),
                 attrs["constant_value"])


def _concatenate_shape(function: str):
    def infer(shapes, attrs):
        axis, first = attrs["axis"], shapes[0]
        for position, shape in enumerate(shapes):
            same = len(shape) == len(first) and all(
                d == e for i, (d, e) in enumerate(zip(shape, first, strict=True)) if i != axis)
            if not same:
                raise ValueError(
                    f"F.{function}: input {position} of shape {shape} does not fit input 0 of "
                    f"shape {first}: every input must have the same shape"
                    + (f" but along axis {axis}" if function == "concatenate" else ""))
        if function == "stack":
            return first[:axis] + (len(shapes),) + first[axis:]
        return first[:axis] + (sum(s[axis] for s in shapes),) + first[axis + 1:]

    return infer


@_register("concatenate", "Concatenate", 1, _concatenate_shape("concatenate"))
def _concatenate(args, attrs, ctx):
    return I.concatenate(list(args), attrs["axis"], ctx.shapes)


@_register("stack", "Stack", 1, _concatenate_shape("stack"))
def _stack(args, attrs, ctx):
    axis, shape = attrs["axis"], ctx.in_shapes[0]
    grown = shape[:axis] + (1,) + shape[axis:]
    return I.concatenate([P.reshape(a, grown, ctx.shapes) for a in args], axis, ctx.shapes)


@_register("dropout", "Dropout", 1, lambda shapes, attrs: shapes[0])
def _dropout(args, attrs, ctx):
    """nnabla's dropout: x * mask / (1 - p), the mask 1 with probability 1 - p (a draw
    the lowering pass gives an array of its own); p = 0 is x itself."""
    if attrs["p"] == 0:
        return args[0]
    # p as the decimal it was written as (0.3 = 3/10), so the scale stays exact: 10/7
    keep = 1 - sympy.Rational(repr(float(attrs["p"])))
    return args[0] * P.Bernoulli(P.shape_tuple(ctx.out_shape), keep, sympy.Integer(0)) / keep


def _draw(kind: str):
    def lower(args, attrs, ctx):
        shape = P.shape_tuple(ctx.out_shape)
        draw = {"rand": P.UniformDraw, "randn": P.NormalDraw, "randint": P.IntegerDraw}[kind]
        return draw(shape, attrs["a"], attrs["b"], sympy.Integer(0))

    return lower


for _name, _type in (("rand", "Rand"), ("randn", "Randn"), ("randint", "Randint")):
    _register(_name, _type, 0, lambda shapes, attrs: attrs["shape"])(_draw(_name))
