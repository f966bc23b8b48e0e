"""Primitives that select, place or join parts of arrays: slices, flips, constant
padding, concatenation, fixed gathers (`Take`), N-d gathers and scatters at indices given
at run time (`GatherNd`, `ScatterNd`), cumulative sums and products, sorting and top-k
selection.

Each one's gradient is another of them: a slice's is its values placed back where the
slice read them (`SliceGrad`, zeros elsewhere), padding's is the slice of the original
region, a concatenation's is one slice per input, a flip's is the same flip, a `Take`'s
is its values added back where it read them (`TakeGrad`), a sort's or top-k's is dy
placed where each element came from; an N-d gather's is a scatter of dy, and back.
Slices have positive steps and bounds inside the array; the front end normalises
Python's slices (negative steps become a flip and a slice).
"""

from __future__ import annotations

import sympy

from symcompile.ir.primitives import (
    KernelBase,
    Primitive,
    StopGradient,
    as_ints,
    exact,
    shape_tuple,
)


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


# --- fixed gathers, cumulative sums and products, sorting --------------------------------
# Reflect and repeat padding, shifts and matrix diagonals read each output element from
# an input position known when the graph is built: a `Take` along one axis, whose
# gradient is `TakeGrad`, the cotangent added back into those positions (and back).


def _with_length(shape, axis: int, length: int) -> tuple[int, ...]:
    return tuple(length if i == axis else n for i, n in enumerate(shape))


class Take(KernelBase):
    """``numpy.take(x, indices, axis)`` with `indices` fixed when compiled:
    y[..., j, ...] = x[..., indices[j], ...]; args (x, indices, axis)."""

    nargs = 3
    linear = True
    kernel = "gather_axis"
    options = ("indices", "axis")

    def shape(self, shapes):
        return _with_length(shapes.of(self.args[0]), int(self.args[2]), len(self.args[1]))

    def vjp(self, index, g, shapes):
        length = shapes.of(self.args[0])[int(self.args[2])]
        return TakeGrad(exact(g, self.shape(shapes), shapes), self.args[1], self.args[2],
                        sympy.Integer(length))


class TakeGrad(KernelBase):
    """The transpose of `Take`: dx[..., i, ...] = sum over j with indices[j] == i of
    dy[..., j, ...], of length `length` along `axis`; args (dy, indices, axis, length)."""

    nargs = 4
    linear = True
    kernel = "gather_axis_grad"
    options = ("indices", "axis", "length")
    unshown = ("length",)

    def shape(self, shapes):
        return _with_length(shapes.of(self.args[0]), int(self.args[2]), int(self.args[3]))

    def vjp(self, index, g, shapes):
        return Take(exact(g, self.shape(shapes), shapes), self.args[1], self.args[2])


def take(x: sympy.Expr, indices, axis: int, shapes) -> sympy.Expr:
    """`Take` of `x` along `axis`, nothing when it reads every element in order."""
    if tuple(indices) == tuple(range(shapes.of(x)[axis])):
        return x
    return Take(x, shape_tuple(indices), sympy.Integer(axis))


# --- N-d gathers and scatters at integer indices given at run time (F.gather_nd, -----------
# F.scatter_nd): indices (M, *Y), column y the position (indices[0, y], ..., indices[M - 1,
# y]) into the first M axes of an array; negative ones count from the end (nnabla's). The
# two are each other's transposes: a gather's is the scatter that adds, and the scatter
# that assigns (the last of repeated positions wins) has the gather that reads only the
# last of repeated positions (`last`) as its own.


def _nd_positions_shape(data_shape, indices_shape) -> tuple[int, ...]:
    return tuple(indices_shape[1:]) + tuple(data_shape[indices_shape[0]:])


class GatherNd(KernelBase):
    """y[y..., r...] = x[indices[:, y...], r...], 0 where the position is outside x (only
    computed indices can be: inputs are checked on entry) or, with `last`, where a later
    column of indices names the same position; args (x, indices, last)."""

    nargs = 3
    tensor_args = (0, 1)
    kernel = "gather_nd"
    options = ("last",)
    defaults = (("last", 0),)
    linear_in = (0,)  # linear in x (not in indices)

    def shape(self, shapes):
        return _nd_positions_shape(shapes.of(self.args[0]), shapes.of(self.args[1]))

    def vjp(self, index, g, shapes):
        if index == 1:
            return sympy.Integer(0)  # indices are integers
        return ScatterNd(exact(g, self.shape(shapes), shapes), self.args[1],
                         shape_tuple(shapes.of(self.args[0])),
                         sympy.Integer(1 - int(self.args[2])))


class ScatterNd(KernelBase):
    """An array of zeros of `shape` with data[y..., r...] written at [indices[:, y...],
    r...]: added (`add` 1: repeated positions sum) or assigned (0: the last of repeated
    positions wins); positions outside (computed indices only) write nothing; args
    (data, indices, shape, add)."""

    nargs = 4
    tensor_args = (0, 1)
    kernel = "scatter_nd"
    options = ("shape", "add")
    unshown = ("shape",)
    defaults = (("add", 0),)
    linear_in = (0,)  # linear in data (not in indices)

    def shape(self, shapes):
        return as_ints(self.args[2])

    def vjp(self, index, g, shapes):
        if index == 1:
            return sympy.Integer(0)
        return GatherNd(exact(g, self.shape(shapes), shapes), self.args[1],
                        sympy.Integer(1 - int(self.args[3])))


class CumSum(KernelBase):
    """The inclusive cumulative sum along `axis`: y[i] = x[0] + ... + x[i]; args (x,
    axis). Its transpose is the cumulative sum from the end (a flip, a sum, a flip)."""

    nargs = 2
    linear = True
    kernel = "cumulative_sum"
    options = ("axis",)

    def shape(self, shapes):
        return shapes.of(self.args[0])

    def vjp(self, index, g, shapes):
        axes = sympy.Tuple(self.args[1])
        g = exact(g, self.shape(shapes), shapes)
        return Flip(CumSum(Flip(g, axes), self.args[1]), axes)


class CumProd(KernelBase):
    """The inclusive cumulative product along `axis`: y[i] = x[0] * ... * x[i]; args (x,
    axis)."""

    nargs = 2
    kernel = "cumulative_prod"
    options = ("axis",)

    def shape(self, shapes):
        return shapes.of(self.args[0])

    def vjp(self, index, g, shapes):
        return CumProdGrad(self.args[0], exact(g, self.shape(shapes), shapes), self.args[1])


class CumProdGrad(KernelBase):
    """d loss / d x of `CumProd` given dy, exact where x holds zeros (no division):
    dx[i] = sum over j >= i of dy[j] * prod over k <= j, k != i of x[k]; args (x, dy,
    axis)."""

    nargs = 3
    tensor_args = (0, 1)
    kernel = "cumulative_prod_grad"
    options = ("axis",)
    linear_in = (1,)  # linear in dy (not in x)

    def shape(self, shapes):
        return shapes.of(self.args[0])

    def vjp(self, index, g, shapes):
        """dx = J(x)^T dy: in dy its transpose J g (the JVP of the cumulative product);
        in x the Hessian of sum(dy * cumprod(x)), symmetric, times g."""
        g = exact(g, self.shape(shapes), shapes)
        x, dy, axis = self.args
        if index == 1:
            return CumProdJvp(x, g, axis)
        return CumProdGradJvp(x, dy, g, axis)


class CumProdJvp(KernelBase):
    """The change of `CumProd` of x when x changes by t: u[0] = t[0], u[i] = u[i-1] *
    x[i] + y[i-1] * t[i]; args (x, t, axis). (No VJP: a third derivative of cumprod.)"""

    nargs = 3
    tensor_args = (0, 1)
    kernel = "cumulative_prod_jvp"
    options = ("axis",)
    linear_in = (1,)  # linear in t

    def shape(self, shapes):
        return shapes.of(self.args[0])


class CumProdGradJvp(KernelBase):
    """The change of `CumProdGrad` of (x, dy) when x changes by t; args (x, dy, t, axis).
    (No VJP: a third derivative of cumprod.)"""

    nargs = 4
    tensor_args = (0, 1, 2)
    kernel = "cumulative_prod_grad_jvp"
    options = ("axis",)

    @classmethod
    def eval(cls, *args):
        return sympy.Integer(0) if args[1] == 0 or args[2] == 0 else None  # bilinear

    def shape(self, shapes):
        return shapes.of(self.args[0])


def _order_only(x: sympy.Expr) -> sympy.Expr:
    """x where a gradient primitive reads only the order of its elements (piecewise
    constant): no gradient flows into it, even when the gradient is differentiated
    again."""
    return x if isinstance(x, StopGradient) else StopGradient(x)


class Sort(KernelBase):
    """x sorted along `axis`, ascending (descending if `reverse`), ties in their order
    in x (a stable sort); args (x, axis, reverse)."""

    nargs = 3
    kernel = "sort_values"
    options = ("axis", "reverse")
    defaults = (("reverse", 0),)

    def shape(self, shapes):
        return shapes.of(self.args[0])

    def vjp(self, index, g, shapes):
        return SortGrad(_order_only(self.args[0]), exact(g, self.shape(shapes), shapes),
                        *self.args[1:])


class SortGrad(KernelBase):
    """d loss / d x of `Sort`: each dy placed where its sorted element came from,
    dx[order[j]] = dy[j] along `axis` (order: the stable sort's indices); args (x, dy,
    axis, reverse)."""

    nargs = 4
    tensor_args = (0, 1)
    kernel = "sort_grad"
    options = ("axis", "reverse")
    defaults = Sort.defaults
    linear_in = (1,)  # linear in dy (not in x)

    def shape(self, shapes):
        return shapes.of(self.args[0])

    def vjp(self, index, g, shapes):
        """The order is piecewise constant in x (no gradient); in dy this is the
        transpose of reading dy in x's sorted order, `SortTake`."""
        if index == 0:
            return sympy.Integer(0)
        return SortTake(_order_only(self.args[0]), exact(g, self.shape(shapes), shapes),
                        *self.args[2:])


class SortTake(KernelBase):
    """v read in the order that sorts x along `axis`: y[j] = v[order[j]] (`Sort` is
    SortTake(x, x)); the transpose of `SortGrad` in v, for second derivatives. Args (x,
    v, axis, reverse)."""

    nargs = 4
    tensor_args = (0, 1)
    kernel = "sort_take"
    options = ("axis", "reverse")
    defaults = Sort.defaults
    linear_in = (1,)  # linear in v (not in x)

    def shape(self, shapes):
        return shapes.of(self.args[0])

    def vjp(self, index, g, shapes):
        if index == 0:
            return sympy.Integer(0)
        return SortGrad(_order_only(self.args[0]), exact(g, self.shape(shapes), shapes),
                        *self.args[2:])


class SortIndex(KernelBase):
    """The indices that sort x along `axis` (those of `Sort`), as numbers of x's dtype;
    args (x, axis, reverse). Piecewise constant: lowering wraps it in StopGradient."""

    nargs = 3
    kernel = "sort_index"
    options = ("axis", "reverse")
    defaults = Sort.defaults

    def shape(self, shapes):
        return shapes.of(self.args[0])


class SearchSorted(KernelBase):
    """Where each value of v (..., M) goes into the sorted last axis of s (..., N), the
    other axes alike: the first index that keeps the row sorted, or with `right` the
    last (NumPy's searchsorted sides), as numbers of v's dtype; args (s, v, right).
    Piecewise constant: lowering wraps it in StopGradient."""

    nargs = 3
    tensor_args = (0, 1)
    kernel = "search_sorted"
    options = ("right",)

    def shape(self, shapes):
        return shapes.of(self.args[1])


class ArgExtremum(KernelBase):
    """The index of the first maximum (is_max 1) or minimum (0) along `axis`, as a number
    of x's dtype; args (x, axis, keepdims, is_max). Piecewise constant: lowering wraps it
    in StopGradient."""

    nargs = 4
    kernel = "arg_extremum"
    options = ("axis", "keepdims", "is_max")

    def shape(self, shapes):
        x_shape, axis = shapes.of(self.args[0]), int(self.args[1])
        if bool(self.args[2]):
            return _with_length(x_shape, axis, 1)
        return tuple(n for i, n in enumerate(x_shape) if i != axis)


class TopK(KernelBase):
    """The k elements of each row of x (N, S) whose key is largest (smallest if not
    `largest`), the key being x or |x| (`absolute`), in the key's order, ties first in
    x's order: y[n, j] = x[n, order[n, j]] for j < k; args (x, k, absolute, largest)."""

    nargs = 4
    kernel = "top_k_values"
    options = ("k", "absolute", "largest")

    def shape(self, shapes):
        return (shapes.of(self.args[0])[0], int(self.args[1]))

    def vjp(self, index, g, shapes):
        return TopKGrad(_order_only(self.args[0]), exact(g, self.shape(shapes), shapes),
                        *self.args[1:])


class TopKGrad(KernelBase):
    """d loss / d x of `TopK`: dy placed where each chosen element came from,
    dx[n, order[n, j]] = dy[n, j], zeros elsewhere; args (x, dy, k, absolute, largest)."""

    nargs = 5
    tensor_args = (0, 1)
    kernel = "top_k_grad"
    options = ("k", "absolute", "largest")
    linear_in = (1,)  # linear in dy (not in x)

    def shape(self, shapes):
        return shapes.of(self.args[0])

    def vjp(self, index, g, shapes):
        """The choice is piecewise constant in x (no gradient); in dy this is the
        transpose of reading dy at x's chosen positions, `TopKTake`."""
        if index == 0:
            return sympy.Integer(0)
        return TopKTake(_order_only(self.args[0]), exact(g, self.shape(shapes), shapes),
                        *self.args[2:])


class TopKTake(KernelBase):
    """v (N, S) read at the positions `TopK` chooses in x: y[n, j] = v[n, order[n, j]]
    (`TopK` is TopKTake(x, x)); the transpose of `TopKGrad` in v, for second
    derivatives. Args (x, v, k, absolute, largest)."""

    nargs = 5
    tensor_args = (0, 1)
    kernel = "top_k_take"
    options = ("k", "absolute", "largest")
    linear_in = (1,)  # linear in v (not in x)

    def shape(self, shapes):
        return (shapes.of(self.args[0])[0], int(self.args[2]))

    def vjp(self, index, g, shapes):
        if index == 0:
            return sympy.Integer(0)
        return TopKGrad(_order_only(self.args[0]), exact(g, self.shape(shapes), shapes),
                        *self.args[2:])


class TopKIndex(KernelBase):
    """The indices into each row of `TopK`'s choice (its `order[:, :k]`) as numbers of
    x's dtype (`kind` 0), or the mask of the chosen elements, 1 there and 0 elsewhere, of
    x's shape (`kind` 1); args (x, k, absolute, largest, kind). Piecewise constant:
    lowering wraps it in StopGradient."""

    nargs = 5
    kernel = "top_k_index"
    options = ("k", "absolute", "largest", "kind")

    def shape(self, shapes):
        x_shape = shapes.of(self.args[0])
        return x_shape if int(self.args[4]) else (x_shape[0], int(self.args[1]))


class BoolScatter(KernelBase):
    """The rows of x (nnz, D...) written, in order, where mask (B...) is not 0 (NaN is
    not 0), zeros elsewhere: (B..., D...); the kernel refuses a mask whose count of
    non-zeros is not nnz (nnabla reads past x's rows, or leaves them unread, silently).
    Args (x, mask); linear in x, the mask gets no gradient."""

    nargs = 2
    tensor_args = (0, 1)
    kernel = "bool_scatter"
    linear_in = (0,)

    def shape(self, shapes):
        return tuple(shapes.of(self.args[1])) + tuple(shapes.of(self.args[0])[1:])

    def vjp(self, index, g, shapes):
        if index == 1:
            return sympy.Integer(0)
        return BoolGather(exact(g, self.shape(shapes), shapes), self.args[1],
                          sympy.Integer(shapes.of(self.args[0])[0]))


class BoolGather(KernelBase):
    """The rows of y (B..., D...) where mask (B...) is not 0, in order: (nnz, D...), nnz
    known from the graph (`BoolScatter`'s x); args (y, mask, nnz). The kernel refuses a
    mask with another count of non-zeros. Linear in y; the mask gets no gradient."""

    nargs = 3
    tensor_args = (0, 1)
    kernel = "bool_gather"
    options = ("nnz",)
    unshown = ("nnz",)
    linear_in = (0,)

    def shape(self, shapes):
        mask = shapes.of(self.args[1])
        return (int(self.args[2]),) + tuple(shapes.of(self.args[0])[len(mask):])

    def vjp(self, index, g, shapes):
        if index == 1:
            return sympy.Integer(0)
        return BoolScatter(exact(g, self.shape(shapes), shapes), self.args[1])


class BoolGatherBuilt(BoolGather):
    """`BoolGather` for F.bool_gather: nnz is the mask's count of non-zeros when the graph
    was built (where nnabla's setup counts it), and the kernel refuses a mask whose count
    has changed since."""

    kernel = "bool_gather_built"


class NonZero(KernelBase):
    """The indices of x's non-zero elements (NaN is not 0) in C order, (x.ndim, nnz): row d
    their positions along axis d, as numbers of x's dtype. nnz is their count when the
    graph was built (nnabla's setup computes it then); the kernel refuses another count.
    Args (x, nnz). Piecewise constant: lowering wraps it in StopGradient."""

    nargs = 2
    kernel = "nonzero_indices"
    options = ("nnz",)
    unshown = ("nnz",)

    def shape(self, shapes):
        return (len(shapes.of(self.args[0])), int(self.args[1]))


class UniquePart(KernelBase):
    """One of nnabla's unique's index outputs of x, as numbers of x's dtype: `part` 0 the
    index of each unique value's (or slice's, along `axis` without `flatten`) first
    occurrence, 1 the inverse (which unique entry each element or slice of x is), 2 the
    counts; unique entries sorted, or without `ascending` in the order they first occur.
    `count` is their number when the graph was built; the kernel refuses another. Args
    (x, part, flatten, axis, ascending, count). Piecewise constant: StopGradient."""

    nargs = 6
    kernel = "unique_part"
    options = ("part", "flatten", "axis", "ascending", "count")
    unshown = ("count",)

    def shape(self, shapes):
        x = shapes.of(self.args[0])
        part, flatten, axis = (int(a) for a in self.args[1:4])
        if part != 1:
            return (int(self.args[5]),)
        if flatten:
            size = 1
            for n in x:
                size *= n
            return (size,)
        return (x[axis],)


class CountsAbove(KernelBase):
    """counts[i], i < n: how many of `values` (1-D, truncated to integers) are over i, as
    numbers of their dtype: a padded batch's batch sizes from its lengths (how many
    sequences are longer than step t) and back (at how many steps the batch size is over
    b). Args (values, n). Piecewise constant: lowering wraps it in StopGradient."""

    nargs = 2
    kernel = "counts_above"
    options = ("n",)
    unshown = ("n",)

    def shape(self, shapes):
        return (int(self.args[1]),)


class SequencePack(KernelBase):
    """The padded x (steps, batch, ...) ((batch, steps, ...) with batch_first) packed step
    by step, the first sizes[t] sequences at step t: (rows, ...), rows the sum of the
    sizes when the graph was built (the kernel refuses another). Args (x, sizes,
    batch_first, rows); linear in x, whose gradient is `SequenceUnpack`."""

    nargs = 4
    tensor_args = (0, 1)
    kernel = "sequence_pack"
    options = ("batch_first", "rows")
    unshown = ("rows",)
    linear_in = (0,)

    def shape(self, shapes):
        return (int(self.args[3]),) + tuple(shapes.of(self.args[0])[2:])

    def vjp(self, index, g, shapes):
        if index == 1:
            return sympy.Integer(0)
        x = shapes.of(self.args[0])
        first = int(self.args[2])
        steps, batch = (x[1], x[0]) if first else (x[0], x[1])
        return SequenceUnpack(exact(g, self.shape(shapes), shapes), self.args[1],
                              self.args[2], sympy.Integer(steps), sympy.Integer(batch),
                              sympy.Integer(0), sympy.Integer(0))


class SequenceUnpack(KernelBase):
    """Packed rows p (rows, ...) placed back into a padded (steps, batch, ...) array
    ((batch, steps, ...) with batch_first), `fill` elsewhere; with `exact_batch` the
    largest of the sizes must be batch (fixed from it when the graph was built). Args (p,
    sizes, batch_first, steps, batch, fill, exact_batch); linear in p (the fill is a
    constant), whose gradient is `SequencePack`."""

    nargs = 7
    tensor_args = (0, 1)
    kernel = "sequence_unpack"
    options = ("batch_first", "steps", "batch", "fill", "exact_batch")
    unshown = ("steps", "batch", "exact_batch")
    defaults = (("fill", 0),)

    def shape(self, shapes):
        steps, batch = int(self.args[3]), int(self.args[4])
        grid = (batch, steps) if int(self.args[2]) else (steps, batch)
        return grid + tuple(shapes.of(self.args[0])[1:])

    def vjp(self, index, g, shapes):
        if index == 1:
            return sympy.Integer(0)
        return SequencePack(exact(g, self.shape(shapes), shapes), self.args[1], self.args[2],
                            sympy.Integer(shapes.of(self.args[0])[0]))
