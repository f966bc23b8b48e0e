"""Primitives that select, place or join parts of arrays: slices, flips, constant
padding and concatenation.

Each one's gradient is another of them: a slice's is its values placed back where the
slice read them (`SliceGrad`, zeros elsewhere), padding's is the slice of the original
region, a concatenation's is one slice per input, a flip's is the same flip. Slices
have positive steps and bounds inside the array; the front end normalises Python's
slices (negative steps become a flip and a slice).
"""

from __future__ import annotations

import sympy

from symcompile.ir.primitives import KernelBase, Primitive, as_ints, exact, shape_tuple


def slice_length(start: int, stop: int, step: int) -> int:
    return len(range(start, stop, step))


class Slice(Primitive):
    """``x[start:stop:step, ...]`` (per axis, step > 0, 0 <= start <= stop <= length);
    args (x, start, stop, step)."""

    nargs = 4
    linear = True

    def shape(self, shapes):
        return tuple(slice_length(*axis) for axis in self.axes())

    def axes(self) -> tuple[tuple[int, int, int], ...]:
        return tuple(zip(as_ints(self.args[1]), as_ints(self.args[2]), as_ints(self.args[3]),
                         strict=True))

    def vjp(self, index, g, shapes):
        x_shape = shapes.of(self.args[0])
        return SliceGrad(exact(g, self.shape(shapes), shapes), shape_tuple(x_shape),
                         self.args[1], self.args[3])


class SliceGrad(KernelBase):
    """The transpose of a slice: `dy` placed at start + m*step along each axis of an
    array of zeros of shape `x_shape`; args (dy, x_shape, start, step)."""

    nargs = 4
    linear = True
    kernel = "slice_grad"
    options = ("x_shape", "start", "step")
    unshown = ("x_shape",)

    def shape(self, shapes):
        return as_ints(self.args[1])

    def vjp(self, index, g, shapes):
        dy_shape = shapes.of(self.args[0])
        start, step = as_ints(self.args[2]), as_ints(self.args[3])
        stop = tuple(b + s * (m - 1) + 1 for b, s, m in zip(start, step, dy_shape, strict=True))
        return Slice(exact(g, self.shape(shapes), shapes), self.args[2], shape_tuple(stop),
                     self.args[3])


class Flip(Primitive):
    """``flip(x, axis=axes)``: x reversed along `axes`; args (x, axes)."""

    nargs = 2
    linear = True

    def shape(self, shapes):
        return shapes.of(self.args[0])

    def vjp(self, index, g, shapes):
        return Flip(exact(g, self.shape(shapes), shapes), self.args[1])


class Pad(KernelBase):
    """x with `before[i]` and `after[i]` elements equal to `value` around axis i;
    args (x, before, after, value)."""

    nargs = 4
    kernel = "pad_constant"
    options = ("before", "after", "value")

    def shape(self, shapes):
        return tuple(n + b + a for n, b, a in zip(shapes.of(self.args[0]), as_ints(self.args[1]),
                                                   as_ints(self.args[2]), strict=True))

    def vjp(self, index, g, shapes):
        before = as_ints(self.args[1])
        x_shape = shapes.of(self.args[0])
        stop = tuple(b + n for b, n in zip(before, x_shape, strict=True))
        return Slice(exact(g, self.shape(shapes), shapes), self.args[1], shape_tuple(stop),
                     shape_tuple((1,) * len(x_shape)))


class Concatenate(Primitive):
    """``concatenate((x0, x1, ...), axis)``; args (x0, x1, ..., axis)."""

    linear = False  # one zero input does not make the result zero

    @property
    def tensor_args(self) -> tuple[int, ...]:
        return tuple(range(len(self.args) - 1))

    @property
    def axis(self) -> int:
        return int(self.args[-1])

    def shape(self, shapes):
        parts = [shapes.of(a) for a in self.args[:-1]]
        out = list(parts[0])
        out[self.axis] = sum(p[self.axis] for p in parts)
        return tuple(out)

    def vjp(self, index, g, shapes):
        out = self.shape(shapes)
        offset = sum(shapes.of(a)[self.axis] for a in self.args[:index])
        length = shapes.of(self.args[index])[self.axis]
        start = [0] * len(out)
        stop = list(out)
        start[self.axis], stop[self.axis] = offset, offset + length
        return Slice(exact(g, out, shapes), shape_tuple(start), shape_tuple(stop),
                     shape_tuple((1,) * len(out)))


def concatenate(parts: list[sympy.Expr], axis: int, shapes) -> sympy.Expr:
    """The concatenation of `parts` along `axis` (one part is itself)."""
    if len(parts) == 1:
        return parts[0]
    return Concatenate(*parts, sympy.Integer(axis))



def slice_text(expr: Slice, shapes, ellipsis: bool = False) -> str:
    """The index of a slice as Python writes it: ``[1:3, :, ::2]``, trailing whole axes
    left out (``[1:3]``), or with `ellipsis` written ``...`` (``[1:3, ...]``, which the
    array API standard requires)."""
    parts = []
    for n, (start, stop, step) in zip(shapes.of(expr.args[0]), expr.axes(), strict=True):
        text = f"{start or ''}:{stop if stop != n else ''}"
        parts.append(text + (f":{step}" if step != 1 else ""))
    whole = len(parts)
    while parts and parts[-1] == ":":
        parts.pop()
    if ellipsis and len(parts) < whole:
        parts.append("...")
    return "[" + ", ".join(parts or [":"]) + "]"
