"""``channel_last=True`` for ops whose shape rule and lowering are written channels first.

nnabla's convolutions and poolings take NHWC inputs (and, for convolutions, weights with
the channels last) when ``channel_last=True``; its CPU implementation refuses to run
them, its CUDA one runs them. symcompile runs them everywhere: the op's channels-first
rule sees the inputs with their channel axis moved in front of the spatial axes, and the
lowering transposes around the channels-first kernels (the transposes' gradients are
transposes back, so the backward needs nothing of its own).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from symcompile.common.deferred import Deferred
from symcompile.ops.opdef import OpDef

P = Deferred("symcompile.ir.primitives")

# (input shapes, attrs) -> (one permutation per input, None to leave it, and the
# permutation that takes the channels-first output to the caller's layout); a
# permutation lists, for each axis of the result, the axis of the operand it takes.
Layout = Callable[[tuple, dict], tuple[tuple, tuple[int, ...]]]


def _channel_moved(rank: int, to: int) -> tuple[int, ...]:
    """The permutation that moves the last of `rank` axes to position `to`."""
    return tuple(range(to)) + (rank - 1,) + tuple(range(to, rank - 1))


def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(sorted(range(len(perm)), key=perm.__getitem__))


def image_layout(shapes, attrs):
    """x (*batch, *L, C): the channels moved to base_axis, after the batch axes."""
    x = shapes[0]
    base = min(attrs["base_axis"], max(len(x) - 1, 0))  # (the rule names a bad base_axis)
    to_first = _channel_moved(len(x), base)
    return (to_first,) + (None,) * (len(shapes) - 1), _inverse(to_first)


def convolution_layout(shapes, attrs):
    """x (*batch, *L, C) and weight (C', *K, C/group): the image's layout, and the
    weight's channels second (deconvolution's weight (C, *K, C'/group) alike); the bias
    stays."""
    (to_first, *_), back = image_layout(shapes, attrs)
    weight = _channel_moved(len(shapes[1]), 1)
    return (to_first, weight) + (None,) * (len(shapes) - 2), back


def pooling_layout(shapes, attrs):
    """x (*maps, *L, C), pooled over the len(kernel) axes before the channels."""
    x = shapes[0]
    to_first = _channel_moved(len(x), max(len(x) - 1 - len(attrs["kernel"]), 0))
    return (to_first,), _inverse(to_first)


def pooling_backward_layout(shapes, attrs):
    """dy and x (*maps, *L, C) of max_pooling_backward, both channels last as x."""
    (to_first,), back = pooling_layout(shapes[1:], attrs)
    return (to_first, to_first), back


def _permuted(shape: tuple, perm) -> tuple:
    return shape if perm is None or len(perm) != len(shape) else tuple(shape[p] for p in perm)


def with_channel_last(op: OpDef, layout: Layout) -> OpDef:
    """`op`, which also takes ``channel_last=True`` in its attributes (absent: False)."""
    infer, lower = op.infer_shape, op.lower

    def infer_shape(shapes, attrs):
        if not attrs.get("channel_last"):
            return infer(shapes, attrs)
        perms, back = layout(shapes, attrs)
        first = tuple(_permuted(s, p) for s, p in zip(shapes, perms, strict=True))
        try:
            out = infer(first, attrs)
        except ValueError as exc:
            given = ", ".join(str(tuple(s)) for s in shapes)
            raise ValueError(f"{exc} [channel_last=True: the shapes above are the inputs' "
                             f"{given} with the channels moved before the spatial axes]"
                             ) from None
        return _permuted(out, back)

    def lower_channel_last(args, attrs, ctx):
        if not attrs.get("channel_last"):
            return lower(args, attrs, ctx)
        perms, back = layout(ctx.in_shapes, attrs)
        first = [a if p is None else P.transpose(a, p, ctx.shapes)
                 for a, p in zip(args, perms, strict=True)]
        in_shapes = tuple(_permuted(s, p) for s, p in zip(ctx.in_shapes, perms, strict=True))
        out = _permuted(ctx.out_shape, _inverse(back))
        inner = dataclasses.replace(ctx, in_shapes=in_shapes, out_shape=out)
        return P.transpose(lower(first, attrs, inner), back, ctx.shapes)

    return dataclasses.replace(op, infer_shape=infer_shape, lower=lower_channel_last)
