"""Array manipulation (slices, flips, padding, concatenation and stacking, broadcast_to),
cumulative sums and products, prod, sorting, the indices of extrema, and dropout.

Each lowers to `indexing` primitives, whose gradients are slices and placements of the
cotangent, so the backward section reads like the forward one reversed. The front end
(`functions.slice`, `Variable.__getitem__`) normalises Python's indices first: nodes
hold positive steps and bounds inside the array.
"""

from __future__ import annotations

import math

from symcompile.common.deferred import Deferred
from symcompile.ops.opdef import OpDef, broadcast_shape, registrar, sympy_number

sympy = Deferred("sympy")
P = Deferred("symcompile.ir.primitives")
I = Deferred("symcompile.ir.indexing")  # noqa: E741 - the module's short name, like P
E = Deferred("symcompile.ops.sympy_functions")

OPS: dict[str, OpDef] = {}


_register = registrar(OPS)


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
    """Constant padding is one `Pad`; "reflect" and "repeat" read every padded axis
    through a `Take` from the positions `pad_source` gives (so each padded element's
    gradient is added into the element it copies)."""
    mode = attrs.get("mode", "constant")
    if mode == "constant":
        return I.Pad(args[0], P.shape_tuple(attrs["before"]), P.shape_tuple(attrs["after"]),
                     attrs["constant_value"])
    x = args[0]
    for axis, (n, b, a) in enumerate(zip(ctx.in_shapes[0], attrs["before"], attrs["after"],
                                         strict=True)):
        if b or a:
            x = I.take(x, [pad_source(i, n, mode) for i in range(-b, n + a)], axis, ctx.shapes)
    return x


def pad_source(i: int, n: int, mode: str) -> int:
    """The element of an axis of length n that position i (-before <= i < n + after) of
    its padding copies: "repeat" the nearest edge (NumPy's "edge"), "reflect" the mirror
    image about the edges, repeated as often as needed (NumPy's "reflect", period
    2*(n - 1); nnabla 1.39's too)."""
    if mode == "repeat" or n == 1:
        return min(max(i, 0), n - 1)
    period = 2 * (n - 1)
    i %= period
    return i if i < n else period - i


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
    _register(_name, _type, 0, lambda shapes, attrs: attrs["shape"],
              output_dtype="int32" if _name == "randint" else None)(_draw(_name))


# --- assign: the forward pass overwrites dst with src --------------------------------------

def _assign_shape(shapes, attrs):
    if shapes[0] != shapes[1]:
        raise ValueError(f"F.assign: dst of shape {shapes[0]} and src of shape {shapes[1]} "
                         f"must have the same shape (nnabla's rule)")
    return shapes[0]


def _assign(args, attrs, ctx):
    """src's values, with nnabla's gradient: dst gets the output's (g_dst = g_y), src
    none."""
    dst, src = args
    return dst + P.StopGradient(src - dst)


def _assign_running(args, attrs, ctx):
    return {0: (P.StopGradient(args[1]), "dst = src (F.assign)")}


OPS["assign"] = OpDef("assign", "Assign", 2, False, _assign_shape, _assign,
                      running=_assign_running)


# --- constant, arange, linspace: arrays their arguments fix (no gradient) -----------------

@_register("constant", "Constant", 0, lambda shapes, attrs: attrs["shape"])
def _constant(args, attrs, ctx):
    """`val`: a number, which the lowering fills into an array where one is needed, and
    which folds into the expressions using it."""
    return attrs["val"]


@_register("arange", "Arange", 0, lambda shapes, attrs: (attrs["count"],))
def _arange(args, attrs, ctx):
    """`count` values from start, each the previous plus step (functions.arange counted
    them as nnabla does)."""
    return P.Arange(attrs["start"], attrs["step"], sympy.Integer(attrs["count"]))


@_register("linspace", "Linspace", 0, lambda shapes, attrs: (attrs["num"],))
def _linspace(args, attrs, ctx):
    return P.Linspace(attrs["start"], attrs["stop"], sympy.Integer(attrs["num"]))


# --- broadcast_to, cumulative sums and products, prod, indices of extrema, sort ----------

products = Deferred("symcompile.ops.products")


def _broadcast_to_shape(shapes, attrs):
    x, y = shapes
    axis = attrs["axis"]
    start = len(x) - len(y) if axis < 0 else axis
    if len(y) > len(x) or start + len(y) > len(x) or tuple(x[start:start + len(y)]) != y:
        where = "the last axes" if axis < 0 else f"the axes from axis {axis} on"
        raise ValueError(
            f"F.broadcast_to: y of shape {y} does not fit x of shape {x}: y's shape must "
            f"equal x's along {where} (nnabla's broadcast_to(x, y) repeats y to x's shape; "
            f"x only gives the shape). Fix: pass axis= where y's axes start in x, or "
            f"reshape y")
    return x


@_register("broadcast_to", "BroadcastTo", 2, _broadcast_to_shape)
def _broadcast_to(args, attrs, ctx):
    """y repeated to x's shape, its axes at `axis` of x (default: x's last); x only gives
    the shape, so it gets no gradient (nnabla 1.39 has no backward at all)."""
    x_shape, y_shape = ctx.in_shapes
    start = len(x_shape) - len(y_shape) if attrs["axis"] < 0 else attrs["axis"]
    grown = (1,) * start + y_shape + (1,) * (len(x_shape) - start - len(y_shape))
    y = P.reshape(args[1], grown, ctx.shapes)
    return y if grown == x_shape else P.BroadcastTo(y, P.shape_tuple(x_shape))


def _cumulative(kind: str):
    """nnabla's cumsum / cumprod along `axis`: the inclusive one of x (flipped first and
    after with `reverse`), shifted by one with the identity (0 or 1) in front if
    `exclusive`."""

    def lower(args, attrs, ctx):
        axis, shape = attrs["axis"], ctx.in_shapes[0]
        n, identity = shape[axis], (0 if kind == "cumsum" else 1)
        if attrs["exclusive"] and n == 1:
            return sympy.Integer(identity)
        flip = P.shape_tuple((axis,))
        x = I.Flip(args[0], flip) if attrs["reverse"] else args[0]
        primitive = I.CumSum if kind == "cumsum" else I.CumProd
        y = primitive(x, sympy.Integer(axis))
        if attrs["exclusive"]:
            stop = tuple(n - 1 if i == axis else d for i, d in enumerate(shape))
            before = tuple(int(i == axis) for i in range(len(shape)))
            y = I.Slice(y, P.shape_tuple((0,) * len(shape)), P.shape_tuple(stop),
                        P.shape_tuple((1,) * len(shape)))
            y = I.Pad(y, P.shape_tuple(before), P.shape_tuple((0,) * len(shape)),
                      sympy.Integer(identity))
        return I.Flip(y, flip) if attrs["reverse"] else y

    return lower


for _name, _type in (("cumsum", "CumSum"), ("cumprod", "CumProd")):
    _register(_name, _type, 1, lambda shapes, attrs: shapes[0])(_cumulative(_name))


def _reduced(shapes, attrs):
    shape, axes = shapes[0], attrs["axes"]
    if attrs["keepdims"]:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


@_register("prod", "Prod", 1, _reduced)
def _prod(args, attrs, ctx):
    if not attrs["axes"]:
        return args[0]
    return products.ReduceProd(args[0], P.shape_tuple(attrs["axes"]),
                               sympy.Integer(int(attrs["keepdims"])))


def _extremum_index(is_max: bool):
    """The index of the first maximum (minimum) over `axes`, counted in C order over the
    reduced axes (nnabla's with_index/only_index): one axis directly, several moved last
    and flattened into one. A number of the module's dtype, with no gradient."""

    def lower(args, attrs, ctx):
        x, axes, keep = args[0], attrs["axes"], attrs["keepdims"]
        shape = ctx.in_shapes[0]
        if not axes:
            return sympy.Integer(0)
        flag = sympy.Integer(int(is_max))
        if len(axes) == 1:
            index = I.ArgExtremum(x, sympy.Integer(axes[0]), sympy.Integer(int(keep)), flag)
        else:
            rest = [i for i in range(len(shape)) if i not in axes]
            flat = P.reshape(P.transpose(x, rest + list(axes), ctx.shapes),
                             [shape[i] for i in rest] + [math.prod(shape[a] for a in axes)],
                             ctx.shapes)
            index = I.ArgExtremum(flat, sympy.Integer(len(rest)), sympy.Integer(0), flag)
            index = P.reshape(index, ctx.out_shape, ctx.shapes)
        return P.StopGradient(index)

    return lower


_register("max_index", "Max", 1, _reduced, output_dtype="uint64")(_extremum_index(True))
_register("min_index", "Min", 1, _reduced, output_dtype="uint64")(_extremum_index(False))


def _searchsorted_shape(shapes, attrs):
    s, v = (tuple(x) for x in shapes)
    if not s or len(s) != len(v) or s[:-1] != v[:-1]:
        raise ValueError(f"F.searchsorted: sorted_sequence of shape {s} and values of shape "
                         f"{v} must have the same number of axes and the same lengths but "
                         f"along the last (each row of values is searched in the same row of "
                         f"sorted_sequence; nnabla's rule)")
    return v


@_register("searchsorted", "SearchSorted", 2, _searchsorted_shape)
def _searchsorted(args, attrs, ctx):
    """Indices: piecewise constant in both inputs, no gradient (nnabla has no backward)."""
    return P.StopGradient(I.SearchSorted(args[0], args[1], sympy.Integer(int(attrs["right"]))))


@_register("sort", "Sort", 1, lambda shapes, attrs: shapes[0])
def _sort(args, attrs, ctx):
    return I.Sort(args[0], sympy.Integer(attrs["axis"]), sympy.Integer(int(attrs["reverse"])))


@_register("sort_index", "Sort", 1, lambda shapes, attrs: shapes[0], output_dtype="uint64")
def _sort_index(args, attrs, ctx):
    """The stable sort's indices (nnabla's with_index/only_index), with no gradient."""
    return P.StopGradient(I.SortIndex(args[0], sympy.Integer(attrs["axis"]),
                                      sympy.Integer(int(attrs["reverse"]))))


# --- shift, matrix diagonals, top_k_data --------------------------------------------------

def shift_source(i: int, n: int, shift: int, border_mode: str) -> int:
    """The element of an axis of length n that position i of nnabla's shift by `shift`
    reads: i - shift clamped to the axis ("nearest"), or mirrored about the edges with the
    edge repeated ("reflect": a = |i - shift + 2n| mod 2n, then 2n - 1 - a past the end;
    nnabla 1.39's formula, which is NumPy's "symmetric" while the shift is within 2n)."""
    if border_mode == "nearest":
        return min(max(i - shift, 0), n - 1)
    if n == 1:
        return 0
    a = abs(i - shift + 2 * n) % (2 * n)
    return 2 * n - 1 - a if a >= n else a


@_register("shift", "Shift", 1, lambda shapes, attrs: shapes[0])
def _shift(args, attrs, ctx):
    """One `Take` per shifted axis; each gradient adds dy back where it was read."""
    x = args[0]
    for axis, (n, s) in enumerate(zip(ctx.in_shapes[0], attrs["shifts"], strict=True)):
        if s:
            x = I.take(x, [shift_source(i, n, s, attrs["border_mode"]) for i in range(n)],
                       axis, ctx.shapes)
    return x


def _matrix_diag_shape(shapes, attrs):
    x = shapes[0]
    if not x:
        raise ValueError("F.matrix_diag: the input of shape () has no last axis to put on a "
                         "diagonal; reshape it to (1,)")
    return x + x[-1:]


@_register("matrix_diag", "MatrixDiag", 1, _matrix_diag_shape)
def _matrix_diag(args, attrs, ctx):
    """x (..., n) on the diagonals of (..., n, n): placed at positions i*(n + 1) of the
    flattened matrices (a `TakeGrad`; its gradient takes the diagonal back)."""
    shape, n = ctx.in_shapes[0], ctx.in_shapes[0][-1]
    flat = I.TakeGrad(args[0], P.shape_tuple([i * (n + 1) for i in range(n)]),
                      sympy.Integer(len(shape) - 1), sympy.Integer(n * n))
    return P.reshape(flat, ctx.out_shape, ctx.shapes)


def _matrix_diag_part_shape(shapes, attrs):
    x = shapes[0]
    if len(x) < 2 or x[-1] != x[-2]:
        raise ValueError(f"F.matrix_diag_part: input of shape {x} must end in square matrices "
                         f"(..., n, n) (nnabla 1.39 reads past the end of others); slice it "
                         f"square first")
    return x[:-1]


@_register("matrix_diag_part", "MatrixDiagPart", 1, _matrix_diag_part_shape)
def _matrix_diag_part(args, attrs, ctx):
    """The diagonals of x (..., n, n): positions i*(n + 1) of the flattened matrices (a
    `Take`, whose gradient places dy back on the diagonals)."""
    shape, n = ctx.in_shapes[0], ctx.in_shapes[0][-1]
    flat = P.reshape(args[0], shape[:-2] + (n * n,), ctx.shapes)
    return I.Take(flat, P.shape_tuple([i * (n + 1) for i in range(n)]),
                  sympy.Integer(len(shape) - 2))


def _top_k_shape(shapes, attrs):
    x, k, base = shapes[0], attrs["k"], attrs["base_axis"]
    size = math.prod(x[base:])
    if not 0 <= base < len(x):
        raise ValueError(f"F.top_k_data: base_axis {attrs['base_axis']} is out of range for "
                         f"an input of shape {x} (valid: {-len(x)}..{len(x) - 1})")
    if not 1 <= k <= size:
        raise ValueError(f"F.top_k_data: k={k} must be from 1 to the sample size {size} (the "
                         f"axes of the input of shape {x} from base_axis {base} on)")
    if attrs["reduce"] or attrs.get("index"):
        return x[:base] + (k,)
    return x


def _top_k(args, attrs, ctx):
    """Each sample (the axes from base_axis on, flattened) as a row: the k chosen values
    (`TopK`, reduce) or x times the mask of the chosen elements (not reduce), or their
    indices into the row (with no gradient)."""
    shape, base = ctx.in_shapes[0], attrs["base_axis"]
    rows = P.reshape(args[0], (math.prod(shape[:base]), math.prod(shape[base:])), ctx.shapes)
    choice = (sympy.Integer(attrs["k"]), sympy.Integer(int(attrs["abs"])),
              sympy.Integer(int(attrs["largest"])))
    if attrs.get("index"):
        y = P.StopGradient(I.TopKIndex(rows, *choice, sympy.Integer(0)))
    elif attrs["reduce"]:
        y = I.TopK(rows, *choice)
    else:
        y = rows * P.StopGradient(I.TopKIndex(rows, *choice, sympy.Integer(1)))
    return P.reshape(y, ctx.out_shape, ctx.shapes)


_register("top_k_data", "TopKData", 1, _top_k_shape)(_top_k)
_register("top_k_data_index", "TopKData", 1, _top_k_shape, output_dtype="uint64")(_top_k)


def _meshgrid_shape(shapes, attrs):
    for position, shape in enumerate(shapes):
        if len(shape) != 1:
            raise ValueError(f"F.meshgrid: input {position} of shape {shape} must be 1-D, as "
                             f"every input (nnabla's rule); reshape it to (-1,)")
    sizes = [s[0] for s in shapes]
    if not attrs["ij_indexing"] and len(sizes) > 1:
        sizes[0], sizes[1] = sizes[1], sizes[0]
    return tuple(sizes)


@_register("meshgrid", "Meshgrid", 1, _meshgrid_shape)
def _meshgrid(args, attrs, ctx):
    """Output `output`: input `output` along its axis of the grid (axis i for input i,
    the first two swapped without ij_indexing, as NumPy's "xy"), repeated along the
    others; its gradient sums the copies. The other inputs only give the shape."""
    i, rank = attrs["output"], len(ctx.in_shapes)
    axis = i if attrs["ij_indexing"] or rank < 2 or i > 1 else 1 - i
    grown = tuple(ctx.in_shapes[i][0] if a == axis else 1 for a in range(rank))
    y = P.reshape(args[i], grown, ctx.shapes)
    return y if grown == ctx.out_shape else P.BroadcastTo(y, P.shape_tuple(ctx.out_shape))


# --- gather and scatter_add: integer indices given at run time -----------------------------
# The indices enter as class labels (checked and cast to integers where the module is
# called, as F.embed's; -1 gives zeros there, where nnabla 1.39 refuses it), and each
# lowers to a one-hot comparison with them, so the gradients are matrix products and sums
# that SymPy's rules and the primitives' VJPs give.

softmax = Deferred("symcompile.ops.softmax")


def _gather_shape(shapes, attrs):
    x, indices = shapes
    axis, batch = attrs["axis"], attrs["batch_dims"]
    where = f"F.gather: x of shape {x}, indices of shape {indices}"
    if not 0 <= batch <= min(len(indices), axis):
        raise ValueError(f"{where}: batch_dims={batch} must be from 0 to min(indices' rank, "
                         f"axis={axis}) = {min(len(indices), axis)}")
    if tuple(indices[:batch]) != tuple(x[:batch]):
        raise ValueError(f"{where}: the first batch_dims={batch} axes of x and indices must "
                         f"be equal ({x[:batch]} vs {indices[:batch]})")
    return x[:axis] + indices[batch:] + x[axis + 1:]


def _gather_labels(shapes, attrs) -> dict[int, int]:
    return {1: shapes[0][attrs["axis"]]}  # each index names an element along `axis`


def _gather(args, attrs, ctx):
    """y = x[(batch...), pre..., indices[batch..., r...], post...] as a (batched) matrix
    product onehot(indices) @ x, with x's `axis` moved first after the batch axes."""
    (x_shape, i_shape), axis, batch = ctx.in_shapes, attrs["axis"], attrs["batch_dims"]
    n = x_shape[axis]
    b, p, q = (math.prod(x_shape[:batch]), math.prod(x_shape[batch:axis]),
               math.prod(x_shape[axis + 1:]))
    r = math.prod(i_shape[batch:])
    x = P.reshape(args[0], (b, p, n, q), ctx.shapes)
    x = P.reshape(P.transpose(x, (0, 2, 1, 3), ctx.shapes), (b, n, p * q), ctx.shapes)
    labels = ctx.class_labels(args[1], n, ignore=False) if ctx.class_labels else args[1]
    onehot = softmax.OneHot(P.reshape(labels, (b, r, 1), ctx.shapes), sympy.Integer(n),
                            sympy.Integer(2))
    y = P.reshape(P.matmul(onehot, x, ctx.shapes), (b, r, p, q), ctx.shapes)
    y = P.transpose(y, (0, 2, 1, 3), ctx.shapes)
    return P.reshape(y, ctx.out_shape, ctx.shapes)


_register("gather", "Gather", 2, _gather_shape, labels=_gather_labels)(_gather)


def _scatter_add_shape(shapes, attrs):
    x0, indices, x1 = shapes
    axis = attrs["axis"]
    where = f"F.scatter_add: x0 of shape {x0}, indices of shape {indices}, x1 of shape {x1}"
    if not (len(x0) == len(indices) == len(x1)):
        raise ValueError(f"{where}: the three must have the same rank")
    if any(i > s for i, s in zip(indices, x1, strict=True)) or any(
            i > s for k, (i, s) in enumerate(zip(indices, x0, strict=True)) if k != axis):
        raise ValueError(f"{where}: indices must be no longer than x1 along every axis, nor "
                         f"than x0 along every axis but axis={axis}")
    return x0


def _scatter_add_labels(shapes, attrs) -> dict[int, int]:
    return {1: shapes[0][attrs["axis"]]}


def _scatter_add(args, attrs, ctx):
    """y = x0 plus, for every position p of indices, x1[p] added at p with its `axis`
    coordinate replaced by indices[p]: the one-hot comparison onehot[p, k] = (indices[p]
    == k) times x1's part, summed along `axis`, k moved to `axis`, zeros padded to x0's
    shape."""
    (x0_shape, i_shape, x1_shape), axis = ctx.in_shapes, attrs["axis"]
    rank, n = len(x0_shape), x0_shape[axis]
    x1 = args[2]
    if i_shape != x1_shape:
        x1 = I.Slice(x1, P.shape_tuple((0,) * rank), P.shape_tuple(i_shape),
                     P.shape_tuple((1,) * rank))
    labels = ctx.class_labels(args[1], n, ignore=False) if ctx.class_labels else args[1]
    onehot = softmax.OneHot(P.reshape(labels, i_shape + (1,), ctx.shapes), sympy.Integer(n),
                            sympy.Integer(rank))
    summed = P.reduce_sum(onehot * P.reshape(x1, i_shape + (1,), ctx.shapes), (axis,), False,
                          i_shape + (n,), ctx.shapes)
    order = list(range(rank - 1))
    order.insert(axis, rank - 1)
    placed = P.transpose(summed, order, ctx.shapes)
    placed_shape = tuple(n if k == axis else d for k, d in enumerate(i_shape))
    if placed_shape != x0_shape:
        placed = I.Pad(placed, P.shape_tuple((0,) * rank),
                       P.shape_tuple(tuple(a - b for a, b in zip(x0_shape, placed_shape,
                                                                 strict=True))),
                       sympy.Integer(0))
    return args[0] + placed


_register("scatter_add", "ScatterAdd", 3, _scatter_add_shape,
          labels=_scatter_add_labels)(_scatter_add)


# --- gather_nd and scatter_nd: N-d integer indices given at run time ---------------------
# indices (M, *Y): column y is a position in the first M axes of an array, row m indexing
# axis m, negative indices counting from its end (nnabla's). An input's indices are
# checked where the module is called against a range per row (`IndexBounds`: [-X_m,
# X_m)); the kernels (`indexing.GatherNd`, `indexing.ScatterNd`) read them.

program = Deferred("symcompile.ir.program")


def _nd_rows(where: str, indices, rank: int, of: str) -> int:
    if len(indices) < 2:
        raise ValueError(f"{where}: indices must have at least 2 axes (M, Y_0, ...), as "
                         f"nnabla's; one position of M indices is of shape (M, 1)")
    if not 1 <= indices[0] <= rank:
        raise ValueError(f"{where}: indices.shape[0] (M={indices[0]}, the indices per "
                         f"position) must be from 1 to {of}'s rank ({rank})")
    return indices[0]


def _nd_labels(op: str, args, sizes, ctx):
    """The indices (args[1]) as read into axes of `sizes`: an input's checked per row."""
    if not ctx.class_labels:
        return args[1]
    return ctx.class_labels(args[1], program.IndexBounds.of_axes(sizes, f"F.{op}"),
                            ignore=False)


def _gather_nd_shape(shapes, attrs):
    data, indices = shapes
    m = _nd_rows(f"F.gather_nd: data of shape {data}, indices of shape {indices}", indices,
                 len(data), "data")
    return tuple(indices[1:]) + tuple(data[m:])


def _gather_nd_labels(shapes, attrs) -> dict[int, int]:
    # check_gradient() draws indices from 0 to the shortest axis they index
    return {1: min(shapes[0][:shapes[1][0]])}


@_register("gather_nd", "GatherNd", 2, _gather_nd_shape, labels=_gather_nd_labels)
def _gather_nd(args, attrs, ctx):
    data, indices = ctx.in_shapes
    labels = _nd_labels("gather_nd", args, data[:indices[0]], ctx)
    return I.GatherNd(args[0], labels, sympy.Integer(0))


def _scatter_nd_shape(shapes, attrs):
    data, indices = shapes[:2]
    shape = tuple(attrs["shape"])
    where = f"F.scatter_nd: data of shape {data}, indices of shape {indices}, shape {shape}"
    m = _nd_rows(where, indices, len(shape), "the output shape")
    expected = tuple(indices[1:]) + shape[m:]
    if tuple(data) != expected:
        raise ValueError(f"{where}: data must be of shape indices.shape[1:] + shape[M:] = "
                         f"{expected}")
    return shape


def _scatter_nd_labels(shapes, attrs) -> dict[int, int]:
    return {1: min(attrs["shape"][:shapes[1][0]])}


def _scatter_nd(args, attrs, ctx):
    """The scatter into zeros; with `out` (a third input), into out: out + the scatter
    (add), or out where nothing is written and the scatter where something is. out is a
    constant to the gradient, as in nnabla's backward."""
    shape, indices = tuple(attrs["shape"]), ctx.in_shapes[1]
    labels = _nd_labels("scatter_nd", args, shape[:indices[0]], ctx)
    y = I.ScatterNd(args[0], labels, P.shape_tuple(shape), sympy.Integer(int(attrs["add"])))
    if len(args) < 3:
        return y
    out = P.StopGradient(args[2])
    if attrs["add"]:
        return out + y
    ones = P.Full(sympy.Integer(1), P.shape_tuple(ctx.in_shapes[0]))
    written = P.StopGradient(I.ScatterNd(ones, labels, P.shape_tuple(shape), sympy.Integer(0)))
    return out * (1 - written) + y


def _scatter_nd_running(args, attrs, ctx):
    """With `out`, the forward pass writes y into out, in place (nnabla's output shares
    out's array)."""
    if len(args) < 3:
        return {}
    return {2: (_scatter_nd(args, attrs, ctx), "out = F.scatter_nd's output (in place)")}


OPS["scatter_nd"] = OpDef("scatter_nd", "ScatterNd", 2, False, _scatter_nd_shape, _scatter_nd,
                          labels=_scatter_nd_labels, running=_scatter_nd_running)


# --- bool_scatter: rows written where a mask is not 0 -------------------------------------

def _bool_scatter_shape(shapes, attrs):
    x, mask = (tuple(s) for s in shapes[:2])
    where = f"F.bool_scatter: input of shape {x}, mask of shape {mask}"
    if not x or not mask:
        raise ValueError(f"{where}: input must be (nnz, D...), one row per non-zero element "
                         f"of the mask, and the mask at least 1-D")
    out = mask + x[1:]
    if len(shapes) > 2 and tuple(shapes[2]) != out:
        raise ValueError(f"{where}, output of shape {tuple(shapes[2])}: output must be of "
                         f"shape mask.shape + input.shape[1:] = {out}")
    if x[0] > math.prod(mask):
        raise ValueError(f"{where}: {x[0]} rows cannot go to a mask of {math.prod(mask)} "
                         f"elements")
    return out


def _bool_scatter(args, attrs, ctx):
    """The scatter into zeros; with `output` (a third input), into output: the rows where
    the mask is not 0, output's values elsewhere (and there its gradient, as nnabla's)."""
    x, mask = ctx.in_shapes[:2]
    y = I.BoolScatter(args[0], args[1])
    if len(args) < 3:
        return y
    condition = P.Reshape(args[1], P.shape_tuple(tuple(mask) + (1,) * (len(x) - 1)))
    return E.Select(condition, y, args[2])


def _bool_scatter_running(args, attrs, ctx):
    """With `output`, the forward pass writes y into it, in place (nnabla's output
    shares its array)."""
    if len(args) < 3:
        return {}
    return {2: (_bool_scatter(args, attrs, ctx), "output = F.bool_scatter's output (in place)")}


OPS["bool_scatter"] = OpDef("bool_scatter", "BoolScatter", 2, False, _bool_scatter_shape,
                            _bool_scatter, running=_bool_scatter_running)


# --- outputs shaped by their input's values, fixed when the graph is built -----------------
# nnabla's setup computes bool_gather's, nonzero's and unique's output shapes from the
# inputs' values when the function is created; the node records the count that gave it
# (nnz, count), and the kernels refuse values that give another.

def _bool_gather_shape(shapes, attrs):
    x, mask = (tuple(s) for s in shapes)
    if not mask or len(mask) > len(x) or x[:len(mask)] != mask:
        raise ValueError(f"F.bool_gather: input of shape {x}, mask of shape {mask}: the mask "
                         f"must be at least 1-D and of the shape of input's leading axes "
                         f"(input.shape[:mask.ndim] == mask.shape)")
    rest = x[len(mask):]
    # nnabla 1.39 flattens the trailing axes into one (its documentation says D_1...D_M)
    return (attrs["nnz"], math.prod(rest)) if rest else (attrs["nnz"],)


def _bool_gather(args, attrs, ctx):
    rows = I.BoolGatherBuilt(args[0], args[1], sympy.Integer(attrs["nnz"]))
    return P.reshape(rows, ctx.out_shape, ctx.shapes)


OPS["bool_gather"] = OpDef("bool_gather", "BoolGather", 2, False, _bool_gather_shape,
                           _bool_gather)


@_register("nonzero", "NonZero", 1,
           lambda shapes, attrs: (len(shapes[0]), attrs["nnz"]), output_dtype="uint64")
def _nonzero(args, attrs, ctx):
    return P.StopGradient(I.NonZero(args[0], sympy.Integer(attrs["nnz"])))


def _unique_axis(shape, attrs) -> int:
    """The axis unique compares slices along (recorded as given: it may be negative)."""
    return attrs["axis"] % len(shape)


def _unique_rows(shape, attrs) -> int:
    """The number of values, or of slices along the axis, unique compares."""
    return math.prod(shape) if attrs["flatten"] else shape[_unique_axis(shape, attrs)]


def _unique_shape(part: int):
    def infer(shapes, attrs):
        x, count = tuple(shapes[0]), attrs["count"]
        if part == 1:
            return (_unique_rows(x, attrs),)
        if part in (0, 2):
            return (count,)
        if attrs["flatten"]:
            return (count,)
        axis = _unique_axis(x, attrs)
        return x[:axis] + (count,) + x[axis + 1:]

    return infer


def _unique_index(part: int):
    def lower(args, attrs, ctx):
        return P.StopGradient(_unique_part(args[0], part, attrs, ctx.in_shapes[0]))

    return lower


def _unique_part(x, part, attrs, shape):
    return I.UniquePart(x, sympy.Integer(part), sympy.Integer(int(attrs["flatten"])),
                        sympy.Integer(_unique_axis(shape, attrs)),
                        sympy.Integer(int(attrs["sorted"])), sympy.Integer(attrs["count"]))


@_register("unique", "Unique", 1, _unique_shape(-1))
def _unique(args, attrs, ctx):
    """The unique values (slices): x gathered at each one's first occurrence, so that the
    gradient is the true one (dy added back where each was read; nnabla's backward raises
    not_implemented)."""
    x, shape = args[0], ctx.in_shapes[0]
    first = P.StopGradient(_unique_part(x, 0, attrs, shape))
    positions = P.reshape(first, (1, attrs["count"]), ctx.shapes)
    if attrs["flatten"]:
        return I.GatherNd(P.reshape(x, (math.prod(shape),), ctx.shapes), positions,
                          sympy.Integer(0))
    axis = _unique_axis(shape, attrs)
    perm = (axis, *(i for i in range(len(shape)) if i != axis))
    rows = I.GatherNd(P.transpose(x, perm, ctx.shapes), positions, sympy.Integer(0))
    back = tuple(sorted(range(len(shape)), key=lambda i: perm[i]))
    return P.transpose(rows, back, ctx.shapes)


for _part, _name in enumerate(("unique_index", "unique_inverse", "unique_counts")):
    _register(_name, "Unique", 1, _unique_shape(_part), output_dtype="int32")(
        _unique_index(_part))


# --- packed sequences: rows of padded sequences packed step by step, and back -------------
# Both keep the count that sized their output when the graph was built (the sum of the
# lengths; the largest batch size), which the kernels check when the module runs.

def _pack_shape(shapes, attrs):
    x, lengths = (tuple(s) for s in shapes)
    where = f"F.pack_padded_sequence: padded_sequence of shape {x}, lengths of shape {lengths}"
    batch_first = attrs["batch_first"]
    if len(x) < 2:
        raise ValueError(f"{where}: padded_sequence must be (T, B, ...) ((B, T, ...) with "
                         f"batch_first)")
    steps, batch = (x[1], x[0]) if batch_first else (x[0], x[1])
    if lengths != (batch,):
        raise ValueError(f"{where}: lengths must hold one length per sequence, of shape "
                         f"({batch},)")
    return (attrs["rows"],) + x[2:]


def _steps_of(x_shape, batch_first) -> int:
    return x_shape[1] if batch_first else x_shape[0]


@_register("pack_padded_sequence_batch_sizes", "PackPaddedSequence", 2,
           lambda shapes, attrs: (_steps_of(shapes[0], attrs["batch_first"]),),
           output_dtype="int32")
def _pack_batch_sizes(args, attrs, ctx):
    """batch_sizes[t]: how many of the lengths are over t."""
    steps = _steps_of(ctx.in_shapes[0], attrs["batch_first"])
    return P.StopGradient(I.CountsAbove(args[1], sympy.Integer(steps)))


@_register("pack_padded_sequence", "PackPaddedSequence", 2, _pack_shape)
def _pack_padded_sequence(args, attrs, ctx):
    return I.SequencePack(args[0], _pack_batch_sizes(args, attrs, ctx),
                          sympy.Integer(int(attrs["batch_first"])), sympy.Integer(attrs["rows"]))


def _pad_shape(shapes, attrs):
    p, sizes = (tuple(s) for s in shapes)
    if not p or len(sizes) != 1 or not sizes[0]:
        raise ValueError(f"F.pad_packed_sequence: packed_sequence of shape {p}, batch_sizes "
                         f"of shape {sizes}: packed_sequence must be (N, ...) and batch_sizes "
                         f"(T,), T at least 1")
    steps, batch = max(attrs["total_length"], sizes[0]), attrs["batch"]
    return ((batch, steps) if attrs["batch_first"] else (steps, batch)) + p[1:]


@_register("pad_packed_sequence", "PadPackedSequence", 2, _pad_shape)
def _pad_packed_sequence(args, attrs, ctx):
    steps = max(attrs["total_length"], ctx.in_shapes[1][0])
    return I.SequenceUnpack(args[0], P.StopGradient(args[1]),
                            sympy.Integer(int(attrs["batch_first"])), sympy.Integer(steps),
                            sympy.Integer(attrs["batch"]), sympy_number(attrs["padding_value"]),
                            sympy.Integer(1))


@_register("pad_packed_sequence_lengths", "PadPackedSequence", 2,
           lambda shapes, attrs: (attrs["batch"],), output_dtype="int32")
def _pad_lengths(args, attrs, ctx):
    return P.StopGradient(I.CountsAbove(args[1], sympy.Integer(attrs["batch"])))


# --- add_n, mul_n, unlink, trilu, eye_like, shape --------------------------------------------

def _same_shapes(function: str):
    """nnabla's rule for add_n and mul_n: every input has the first one's shape (they do
    not broadcast)."""

    def infer(shapes, attrs):
        for position, shape in enumerate(shapes[1:], start=1):
            if shape != shapes[0]:
                raise ValueError(f"F.{function}: input {position} of shape {shape} differs from "
                                 f"input 0 of shape {shapes[0]}; nnabla's {function} needs "
                                 f"inputs of one shape (broadcast them with F.broadcast first)")
        return shapes[0]

    return infer


@_register("bc_add2", "BcAdd2", 2, lambda shapes, attrs: broadcast_shape("bc_add2", shapes))
def _bc_add2(args, attrs, ctx):
    """x0 + x1, size-1 axes broadcast (nnabla's broadcasting addition, which its docs say
    "shouldn't be called by users"; F.add2 broadcasts alike). Not an elementwise registry
    entry, whose every op has a float32 precision case of its own: it is add2's formula."""
    return args[0] + args[1]


@_register("add_n", "AddN", 1, _same_shapes("add_n"))
def _add_n(args, attrs, ctx):
    """x0 + x1 + ...: each input's gradient is dy."""
    return sympy.Add(*args)


@_register("mul_n", "MulN", 2, _same_shapes("mul_n"))
def _mul_n(args, attrs, ctx):
    """x0 * x1 * ...: each input's gradient is dy times the product of the others (nnabla's
    is dy * y / x_i, the same number wherever x_i != 0, NaN where x_i = 0)."""
    return sympy.Mul(*args)


@_register("unlink", "Unlink", 1, lambda shapes, attrs: shapes[0])
def _unlink(args, attrs, ctx):
    """x, as a constant: nnabla's backward leaves x's gradient untouched."""
    return P.StopGradient(args[0])


def _matrices_shape(function: str, exactly_two: bool):
    """nnabla's rule for trilu (matrices of the last two axes: 2 axes or more) and eye_like
    (one 2-D input)."""

    def infer(shapes, attrs):
        x = shapes[0]
        if exactly_two and len(x) != 2:
            raise ValueError(f"F.{function}: the input of shape {x} is not 2-D; nnabla's "
                             f"{function} takes one matrix (M, N): reshape or slice it")
        if len(x) < 2:
            raise ValueError(f"F.{function}: the input of shape {x} has fewer than 2 axes; "
                             f"nnabla's {function} works on the matrices of the last two: "
                             f"reshape it to (1, ...)")
        return x

    return infer


def _band(rows: int, columns: int, k: int, upper: bool) -> list[int]:
    """The flat positions (row * columns + column) of a (rows, columns) matrix kept by
    numpy.triu(., k) (upper) or numpy.tril(., k)."""
    return [r * columns + c for r in range(rows) for c in range(columns)
            if (c - r >= k if upper else c - r <= k)]


def _placed(values, positions: list[int], shape: tuple[int, ...], ctx):
    """values (..., len(positions)) put at `positions` of matrices of the last two axes of
    `shape`, zeros elsewhere (a `TakeGrad`, whose gradient takes them back)."""
    rows, columns = shape[-2:]
    flat = I.TakeGrad(values, P.shape_tuple(positions), sympy.Integer(len(shape) - 2),
                      sympy.Integer(rows * columns))
    return P.reshape(flat, shape, ctx.shapes)


@_register("trilu", "Trilu", 1, _matrices_shape("trilu", exactly_two=False))
def _trilu(args, attrs, ctx):
    """numpy.triu(x, k) (upper) or numpy.tril(x, k) of the last two axes: the kept
    elements taken and placed back among zeros, so the gradient is dy masked alike."""
    shape = ctx.in_shapes[0]
    rows, columns = shape[-2:]
    positions = _band(rows, columns, int(attrs["k"]), bool(attrs["upper"]))
    if len(positions) == rows * columns:
        return args[0]
    if not positions:
        return sympy.Integer(0)  # (filled into an array of the output's shape)
    flat = P.reshape(args[0], shape[:-2] + (rows * columns,), ctx.shapes)
    kept = I.Take(flat, P.shape_tuple(positions), sympy.Integer(len(shape) - 2))
    return _placed(kept, positions, shape, ctx)


@_register("eye_like", "EyeLike", 1, _matrices_shape("eye_like", exactly_two=True))
def _eye_like(args, attrs, ctx):
    """numpy.eye(M, N, k) for x of shape (M, N): ones on the k-th diagonal (none when it
    lies outside). x only gives the shape: no gradient."""
    rows, columns = ctx.in_shapes[0]
    k = int(attrs["k"])
    positions = [r * columns + r + k for r in range(rows) if 0 <= r + k < columns]
    if not positions:
        return sympy.Integer(0)
    ones = P.Full(sympy.Integer(1), P.shape_tuple((len(positions),)))
    return P.StopGradient(_placed(ones, positions, (rows, columns), ctx))


def shape_range(shape: tuple[int, ...], start: int, end: int) -> tuple[int, int]:
    """nnabla's [s, e) of F.shape (shape.cpp): a negative start counts from the end, a
    start past the end is the end; end 0 is the end, a negative one counts from it."""
    ndim = len(shape)
    s = start + ndim if start < 0 else min(start, ndim)
    e = ndim + end if end < 0 else (min(end, ndim) if end > 0 else ndim)
    return s, e


def _shape_shape(shapes, attrs):
    x = shapes[0]
    if not x:
        raise ValueError("F.shape: the input of shape () has no axes (nnabla refuses it); "
                         "reshape it to (1,)")
    s, e = shape_range(x, attrs["start"], attrs["end"])
    if e <= s:
        raise ValueError(f"F.shape: start={attrs['start']}, end={attrs['end']} select no axis "
                         f"of the input of shape {x} (axes {s} to {e - 1}); nnabla then leaves "
                         f"its output unset. Choose start < end")
    return (e - s,)


@_register("shape", "Shape", 1, _shape_shape)
def _shape(args, attrs, ctx):
    """x.shape[s:e] as numbers (float32, as nnabla's), fixed when the graph is built: no
    gradient."""
    s, e = shape_range(ctx.in_shapes[0], attrs["start"], attrs["end"])
    sizes = [P.Full(sympy.Integer(n), P.shape_tuple((1,))) for n in ctx.in_shapes[0][s:e]]
    return P.StopGradient(I.concatenate(sizes, 0, ctx.shapes))


# --- batch_inv, batch_det, batch_logdet, batch_cholesky: batched matrices (B, N, N) --------
# Each a kernel over the backend's linalg (`ir.linalg`); nnabla's inputs are 3-D, square.

L = Deferred("symcompile.ir.linalg")


def _batched_square(function: str, scalar: bool):
    def infer(shapes, attrs):
        x = shapes[0]
        if len(x) != 3:
            raise ValueError(f"F.{function}: the input of shape {x} is not 3-D; nnabla's "
                             f"{function} takes a batch of square matrices (B, N, N): "
                             f"reshape it (one matrix (N, N) is (1, N, N))")
        if x[1] != x[2] or x[1] == 0:
            raise ValueError(f"F.{function}: the matrices of the input of shape {x} are not "
                             f"square (N, N) with N >= 1; nnabla's {function} takes (B, N, N)")
        return x[:1] if scalar else x

    return infer


@_register("batch_inv", "BatchInv", 1, _batched_square("batch_inv", scalar=False))
def _batch_inv(args, attrs, ctx):
    """inv of each matrix; gradient -inv(A)^T G inv(A)^T."""
    return L.BatchInv(args[0])


@_register("batch_det", "BatchDet", 1, _batched_square("batch_det", scalar=True))
def _batch_det(args, attrs, ctx):
    """det of each matrix, shape (B,); gradient g det(A) inv(A)^T."""
    return L.BatchDet(args[0])


@_register("batch_logdet", "BatchLogdet", 1, _batched_square("batch_logdet", scalar=True))
def _batch_logdet(args, attrs, ctx):
    """log |det| of each matrix (nnabla's: the absolute value), shape (B,); gradient
    g inv(A)^T."""
    return L.BatchLogdet(args[0])


@_register("batch_cholesky", "BatchCholesky", 1,
           _batched_square("batch_cholesky", scalar=False))
def _batch_cholesky(args, attrs, ctx):
    """The lower Cholesky factor L (from the lower triangle), or with upper its transpose
    L^T (Eigen's matrixU, nnabla's); nnabla's symmetric gradient (`ir.linalg`), the
    upper one's the lower's of the transposed cotangent, as nnabla computes it."""
    factor = L.BatchCholesky(args[0])
    return P.swap_last(factor, ctx.shapes) if attrs["upper"] else factor


# --- rand_binomial, rand_beta, rand_gamma: draws from the function's generator ----------------
# Drawn anew by every forward pass from the module's `rng` (seeded as rand/randn are); each
# printed as ``random_<kind>(rng, shape, *numbers, dtype)``. No gradient.

_DRAWS = {"rand_binomial": ("BinomialDraw", "n", "p"),
          "rand_beta": ("BetaDraw", "alpha", "beta"),
          "rand_gamma": ("GammaDraw", "k", "theta")}


def _drawn(op: str):
    primitive, first, second = _DRAWS[op]

    def lower(args, attrs, ctx):
        return getattr(P, primitive)(P.shape_tuple(ctx.out_shape), sympy.sympify(attrs[first]),
                                     sympy.sympify(attrs[second]), sympy.Integer(0))

    return lower


for _name, _type in (("rand_binomial", "RandBinomial"), ("rand_beta", "RandBeta"),
                     ("rand_gamma", "RandGamma")):
    _register(_name, _type, 0, lambda shapes, attrs: attrs["shape"])(_drawn(_name))


# --- fft, ifft: the DFT of complex pairs (..., N_1, ..., N_d, 2) ------------------------------
# A kernel over the backend's FFT (`ir.signal`); its VJP is the other transform.

S = Deferred("symcompile.ir.signal")


def _complex_signal(function: str):
    def infer(shapes, attrs):
        x, d = shapes[0], attrs["signal_ndim"]
        if len(x) < d + 1 or x[-1] != 2:
            raise ValueError(
                f"F.{function}: the input of shape {x} is not complex signals of "
                f"signal_ndim={d} axes: nnabla's {function} takes (..., N_1, ..., N_{d}, 2), "
                f"at least {d + 1} axes, the last of size 2 (x[..., 0] the real part, "
                f"x[..., 1] the imaginary part); stack a real signal with zeros: "
                f"F.stack(x, x * 0, axis=x.ndim)")
        if 0 in x:
            raise ValueError(f"F.{function}: the input of shape {x} is empty")
        return x

    return infer


def _dft(inverse: bool):
    def lower(args, attrs, ctx):
        d = attrs["signal_ndim"]
        n = math.prod(ctx.in_shapes[0][-d - 1:-1])
        if attrs["normalized"]:
            scale = sympy.Float(1 / math.sqrt(n))  # (a number: an option, not a subexpression)
        else:
            scale = sympy.Rational(1, n) if inverse else sympy.Integer(1)
        return S.Dft(args[0], sympy.Integer(d), sympy.Integer(int(inverse)), scale)

    return lower


_register("fft", "FFT", 1, _complex_signal("fft"))(_dft(inverse=False))
_register("ifft", "IFFT", 1, _complex_signal("ifft"))(_dft(inverse=True))


# --- bit_shift: unsigned integers shifted, as numbers of the module's dtype ---------------
# (elementwise, but not in ops/elementwise: its inputs are unsigned integers, not reals)

def _bit_shift(args, attrs, ctx):
    """x * 2**shift modulo 2**bits (left) or floor(x / 2**shift) (right), the shift
    truncated as nnabla casts it to x's unsigned type: exact in floating point (products
    and quotients by powers of two), for the uint8 and uint16 values the front end
    admits. No gradient (nnabla's has none)."""
    x, shift = args
    scale = sympy.Integer(2) ** sympy.floor(shift)
    if attrs["left"]:
        return P.StopGradient(sympy.Mod(x * scale, sympy.Integer(2) ** attrs["bits"]))
    return P.StopGradient(sympy.floor(x / scale))


OPS["bit_shift"] = OpDef("bit_shift", "BitShift", 2, True,
                         lambda shapes, attrs: broadcast_shape("bit_shift", shapes),
                         _bit_shift, output_dtype="input")
