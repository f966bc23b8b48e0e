"""Array manipulation: slicing, padding, joining, reshaping, broadcasting, gathering and
scattering, sorting and searching, constants and ranges, interpolation.
"""

from __future__ import annotations

import builtins
import math
import numbers

import numpy

from symcompile.frontend.functions._base import (
    _base_axis,
    _int_argument,
    _layout,
    _one_axis,
    _record,
    _reduction,
    _updated_in_place,
)
from symcompile.frontend.variable import Variable, normalize_shape
from symcompile.ops.registry import normalize_axes, number

__all__ = [
    "reshape", "transpose", "broadcast", "slice", "flip", "pad", "concatenate", "stack", "split",
    "tile", "one_hot", "sink", "constant", "arange", "linspace", "assign", "broadcast_to", "sort",
    "searchsorted", "shift", "matrix_diag", "matrix_diag_part", "meshgrid", "top_k_data", "gather",
    "scatter_add", "gather_nd", "scatter_nd", "interpolate", "onnx_resize", "trilu", "eye_like",
    "unlink", "shape", "bool_scatter", "vat_noise", "bool_gather", "nonzero", "unique",
    "pack_padded_sequence", "pad_packed_sequence",
]

def assign(dst, src, n_outputs=-1, outputs=None):
    """src's values, written into dst by every forward pass (dst must be a leaf, a
    parameter); the gradient goes to dst as if the output were dst (nnabla's), none to
    src."""
    if isinstance(dst, Variable):
        _updated_in_place("assign", "F.assign", dst=dst)
    return _record("assign", (dst, src))


def vat_noise(x, w, base_axis=1, eps=1.0, n_outputs=-1, outputs=None):
    """Virtual adversarial training's noise: y = eps * x / sqrt(sum(x**2) + 1e-8), the sum
    per sample (over the axes from base_axis). Its backward gives no gradient: it writes
    eps * dy into w's values (w.d), w a leaf of x's shape (the buffer that carries the
    adversarial direction to the next power iteration), and leaves x.g and w.g as they
    are, as nnabla's does (when x or w has need_grad)."""
    if not isinstance(x, Variable) or not isinstance(w, Variable):
        return _record("vat_noise", (x, w))  # raises the TypeError
    base = _base_axis("vat_noise", x, base_axis)
    if base == 0:
        raise ValueError(f"F.vat_noise: base_axis={base_axis} leaves no sample axis for x of "
                         f"shape {x.shape} (nnabla 1.39 reads outside the array there); give "
                         f"1..{len(x.shape) - 1} or -{len(x.shape) - 1}..-1")
    if w.parent is not None:
        raise ValueError(f"F.vat_noise: the backward pass writes eps * dy into w's values, "
                         f"so w must be a leaf Variable (a parameter or a buffer), not the "
                         f"output of {w.parent.name}")
    return _record("vat_noise", (x, w), base_axis=base, eps=number(eps, "vat_noise", "eps"))


def constant(val=0, shape=[], n_outputs=-1, outputs=None):  # noqa: B006
    """An array of `shape` holding `val` everywhere (a constant: no gradient)."""
    return _record("constant", (), val=number(val, "constant"),
                   shape=normalize_shape(shape, "F.constant"))


def arange(start, stop, step=1, n_outputs=-1, outputs=None):
    """start, start + step, ... while short of stop: nnabla's loop in float32, which adds
    step to the previous value (so its rounding, and the count, are nnabla's)."""
    start, stop, step = (number(v, "arange", name)
                         for v, name in ((start, "start"), (stop, "stop"), (step, "step")))
    if float(step) == 0:
        raise ValueError(f"F.arange: step={step!r} must not be zero")
    return _record("arange", (), start=start, stop=stop, step=step,
                   count=_arange_count(float(start), float(stop), float(step)))


def _arange_count(start: float, stop: float, step: float) -> int:
    """How many values nnabla's `for (float v = start; v < stop; v += step)` (v > stop for
    a negative step) visits, the float32 additions replayed by a cumulative sum."""
    f32 = numpy.float32
    first, last, increment = f32(start), f32(stop), f32(step)
    estimate = builtins.max(0.0, math.ceil((float(last) - float(first)) / float(increment)))
    if estimate > 1 << 28:
        raise ValueError(f"F.arange: start={start!r}, stop={stop!r}, step={step!r} give "
                         f"about {estimate:.3g} values, more than symcompile holds in one array")
    steps = numpy.full(int(estimate) + 2, increment, dtype=f32)
    steps[0] = first
    values = numpy.cumsum(steps, dtype=f32)
    short = values < last if step > 0 else values > last
    if short.all():  # the sum stopped growing (a step too small for float32): nnabla hangs
        raise ValueError(f"F.arange: step={step!r} is too small to move {start!r} towards "
                         f"{stop!r} in float32 (nnabla's loop would never end)")
    return int(numpy.argmin(short))


def linspace(start, stop, num):
    """`num` values from start to stop (both included when num > 1): nnabla's
    start + i*step, step = (stop - start)/(num - 1) in float64, each rounded to float32."""
    if isinstance(num, bool) or not isinstance(num, numbers.Integral) or num < 0:
        raise ValueError(f"F.linspace: num={num!r} must be a non-negative int")
    return _record("linspace", (), start=number(start, "linspace", "start"),
                   stop=number(stop, "linspace", "stop"), num=int(num))


def tile(x, reps):
    """x repeated reps[i] times along axis i, as numpy.tile (an int or a shorter tuple
    applies to the last axes; more entries than axes add leading axes)."""
    if not isinstance(x, Variable):
        return _record("tile", (x,))  # raises the TypeError
    reps = [reps] if isinstance(reps, numbers.Integral) else list(reps)
    if not all(isinstance(r, numbers.Integral) and not isinstance(r, bool) and r >= 1
               for r in reps):
        raise ValueError(f"F.tile: reps={reps} must hold positive ints")
    if len(reps) > len(x.shape):
        x = _record("reshape", (x,), shape=(1,) * (len(reps) - len(x.shape)) + x.shape)
    reps = (1,) * (len(x.shape) - len(reps)) + tuple(int(r) for r in reps)
    return _record("tile", (x,), reps=reps)


def one_hot(x, shape, n_outputs=-1, outputs=None):
    """1 at each row's integer index (x's last axis, of length 1) along a new last axis
    of length shape[0], 0 elsewhere; no gradient."""
    return _record("one_hot", (x,), shape=tuple(int(d) for d in shape))


def sink(*x, **kw):
    """One output that depends on every input, so that one forward() or backward()
    computes them all; backward() seeds each input with ones (nnabla's one_input_grad=True;
    False is refused)."""
    if not kw.pop("one_input_grad", True):
        raise ValueError("F.sink: one_input_grad=False (backward from the inputs' own .g) is "
                         "not implemented")
    if kw:
        raise TypeError(f"F.sink: unexpected arguments {sorted(kw)}")
    if not x:
        raise ValueError("F.sink: give at least one Variable")
    total = None
    for var in x:
        term = _reduction("sum", var, None, False)
        total = term if total is None else _record("add2", (total, term))
    return total


def slice(x, start=None, stop=None, step=None, n_outputs=-1, outputs=None):  # noqa: A001
    """x[start[0]:stop[0]:step[0], start[1]:...] (an entry None: the whole axis); negative
    bounds count from the end and out-of-range ones are clipped, as in Python; a negative
    step reads backwards. As in nnabla, lists shorter than x's rank slice its last axes
    (start=[1], stop=[3], step=[1] of a (2, 3, 4) input is x[:, :, 1:3]); the three have
    the same length, and one left out (None) stands for every axis."""
    if not isinstance(x, Variable):
        return _record("slice", (x,))  # raises the TypeError
    ndim = len(x.shape)
    given = {}
    for name, values in (("start", start), ("stop", stop), ("step", step)):
        if values is None:
            given[name] = [None] * ndim
            continue
        values = list(values) if hasattr(values, "__iter__") else [values]
        if len(values) > ndim:
            raise ValueError(f"F.slice: {name}={values} has more entries than the input of "
                             f"shape {x.shape} has axes ({ndim})")
        given[name] = values
    lengths = {name: len(values) for name, values in given.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(
            f"F.slice: start, stop and step have {lengths['start']}, {lengths['stop']} and "
            f"{lengths['step']} entries for the input of shape {x.shape}; give the three with "
            f"the same length, one per axis sliced (the last axes; nnabla's rule), or one "
            f"per axis ({ndim}), where a left-out list stands for every axis")
    whole = ndim - lengths["start"]  # leading axes taken whole
    given = {name: [None] * whole + values for name, values in given.items()}
    slices = []
    for axis, (b, e, s) in enumerate(zip(given["start"], given["stop"], given["step"],
                                         strict=True)):
        for name, v in (("start", b), ("stop", e), ("step", s)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Integral)):
                raise TypeError(f"F.slice: {name} must hold ints (or None), got {v!r} for "
                                f"axis {axis}")
        if s == 0:
            raise ValueError(f"F.slice: step 0 on axis {axis}; a step must not be zero")
        slices.append(builtins.slice(b, e, s))  # (F.slice shadows the builtin here)
    return _sliced(x, slices)


def _sliced(x: Variable, slices) -> Variable:
    """x[slices] (one Python slice per axis) as a slice node with positive steps, after a
    flip of the axes read backwards; no node for what would be no-ops."""
    flipped, starts, stops, steps = [], [], [], []
    for axis, (piece, n) in enumerate(zip(slices, x.shape, strict=True)):
        b, e, s = piece.indices(n)
        if s < 0:  # read backwards: the same elements, in order, of the flipped axis
            count = len(range(b, e, s))
            flipped.append(axis)
            b = n - 1 - b
            e, s = b + (count - 1) * -s + 1 if count else b, -s
        starts.append(b)
        stops.append(builtins.max(b, e))
        steps.append(s)
    if flipped:
        x = _record("flip", (x,), axes=tuple(flipped))
    if all(b == 0 and e == n and s == 1 for b, e, s, n in zip(starts, stops, steps, x.shape,
                                                              strict=True)):
        return x if flipped else _record("reshape", (x,), shape=x.shape)
    return _record("slice", (x,), start=tuple(starts), stop=tuple(stops), step=tuple(steps))


def flip(x, axes=None, n_outputs=-1, outputs=None):
    """x reversed along `axes` (default: the last axis)."""
    if not isinstance(x, Variable):
        return _record("flip", (x,))  # raises the TypeError
    if axes is None:
        axes = [len(x.shape) - 1]
    return _record("flip", (x,), axes=normalize_axes("flip", axes, x.shape))


def pad(x, pad_width, mode="constant", constant_value=0, n_outputs=-1, outputs=None):
    """x padded: pad_width = (before, after) for the last axis, or (before0, after0,
    before1, after1, ...) for the last len(pad_width) // 2 axes. `mode` "constant" pads
    with `constant_value`, "reflect" with the mirror image about the edges (NumPy's
    "reflect", repeated for widths past the length), "repeat" with the edge values
    (NumPy's "edge"); their gradients add each copy's into the element it copies."""
    if not isinstance(x, Variable):
        return _record("pad", (x,))  # raises the TypeError
    if mode not in ("constant", "reflect", "repeat"):
        raise ValueError(f"F.pad: mode={mode!r} is not one of nnabla's 'constant', "
                         f"'reflect' and 'repeat' (input of shape {x.shape})")
    widths = list(pad_width)
    if len(widths) % 2 or len(widths) // 2 > len(x.shape) or not all(
            isinstance(w, numbers.Integral) and not isinstance(w, bool) and w >= 0
            for w in widths):
        raise ValueError(
            f"F.pad: pad_width={tuple(widths)} must hold pairs (before, after) of non-negative "
            f"ints, one pair per padded axis, at most one per axis of the input of shape "
            f"{x.shape}")
    lead = len(x.shape) - len(widths) // 2
    before = (0,) * lead + tuple(int(w) for w in widths[0::2])
    after = (0,) * lead + tuple(int(w) for w in widths[1::2])
    modes = {} if mode == "constant" else {"mode": mode}  # constant pads' graphs unchanged
    return _record("pad", (x,), before=before, after=after,
                   constant_value=number(constant_value, "pad", "constant_value"), **modes)


def _joined(op: str, xs, axis, default) -> Variable:
    if len(xs) == 1 and isinstance(xs[0], (list, tuple)):
        xs = tuple(xs[0])
    if not xs:
        raise ValueError(f"F.{op}: give at least one Variable")
    if not all(isinstance(v, Variable) for v in xs):
        return _record(op, tuple(xs))  # raises the TypeError
    rank = len(xs[0].shape) + (op == "stack")
    axis = default(rank) if axis is None else axis
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral) \
            or not -rank <= axis < rank:
        raise ValueError(f"F.{op}: axis {axis!r} is out of range for inputs of shape "
                         f"{xs[0].shape} (valid: {-rank}..{rank - 1})")
    return _record(op, tuple(xs), axis=int(axis) % rank)


def concatenate(*x, **kw):
    """The inputs joined along `axis` (keyword; default: the last axis); every other axis
    must be equal."""
    return _joined("concatenate", x, kw.pop("axis", None), lambda rank: rank - 1)


def stack(*x, **kw):
    """The inputs, all of one shape, stacked along a new axis `axis` (keyword; default 0)."""
    return _joined("stack", x, kw.pop("axis", None), lambda rank: 0)


def split(x, axis=0):
    """The slices of x along `axis`, each without that axis: a tuple of x.shape[axis]
    Variables."""
    if not isinstance(x, Variable):
        return _record("slice", (x,))  # raises the TypeError
    (axis,) = normalize_axes("split", axis, x.shape)
    rest = x.shape[:axis] + x.shape[axis + 1:]
    parts = []
    for i in range(x.shape[axis]):
        start = [0] * len(x.shape)
        stop = list(x.shape)
        start[axis], stop[axis] = i, i + 1
        piece = _record("slice", (x,), start=tuple(start), stop=tuple(stop),
                        step=(1,) * len(x.shape))
        parts.append(_record("reshape", (piece,), shape=rest))
    return tuple(parts)


def broadcast_to(x, y, axis=None, n_outputs=-1, outputs=None):
    """y repeated to x's shape: nnabla's order, x gives only the shape and y the values;
    y's axes are those of x from `axis` on (None or -1: x's last axes). y's gradient sums
    the copies; x gets none (nnabla 1.39 has no backward for this function)."""
    if not (isinstance(x, Variable) and isinstance(y, Variable)):
        return _record("broadcast_to", (x, y))  # raises the TypeError
    axis = -1 if axis is None else _int_argument("broadcast_to", "axis", axis)
    if not -1 <= axis < builtins.max(len(x.shape), 1):
        raise ValueError(f"F.broadcast_to: axis {axis} is out of range for x of shape "
                         f"{x.shape} (valid: 0..{len(x.shape) - 1}, or -1 for the last axes)")
    return _record("broadcast_to", (x, y), axis=axis)


def searchsorted(sorted_sequence, values, right=None, n_outputs=-1, outputs=None):
    """For each value, where it goes in the same row of sorted_sequence's last axis (the
    other axes alike): index i with sorted[i-1] < v <= sorted[i], or with `right`
    sorted[i-1] <= v < sorted[i] (NumPy's sides "left" and "right"), as float32
    numbers of values' shape. No gradient (nnabla has no backward for it); `right`
    None is False, as in nnabla."""
    if right is not None and not isinstance(right, (bool, numpy.bool_)):
        raise TypeError(f"F.searchsorted: right must be True, False or None, got {right!r}")
    return _record("searchsorted", (sorted_sequence, values), right=bool(right))


def sort(x, axis=-1, reverse=False, with_index=False, only_index=False):
    """x sorted along `axis`, ascending (descending if `reverse`), ties in their order in
    x; `with_index` also returns the indices into x (numbers, no gradient), `only_index`
    only them. The gradient sends each dy back to where its element came from (nnabla
    1.39's backward reads dy through the indices instead, dx[i] = dy[index[i]], which is
    not the derivative unless the order is its own inverse)."""
    if not isinstance(x, Variable):
        return _record("sort", (x,))  # raises the TypeError
    axis = _one_axis("sort", x, axis, "sort along")
    attrs = {"axis": axis, "reverse": bool(reverse)}
    if not (with_index or only_index):
        return _record("sort", (x,), **attrs)
    index = _record("sort_index", (x,), **attrs)
    return index if only_index else (_record("sort", (x,), **attrs), index)


def shift(x, shifts=None, border_mode="nearest", n_outputs=-1, outputs=None):
    """x shifted by shifts[i] elements along each of its last len(shifts) axes, y[i] =
    x[i - shift]; the positions read from outside are those of `border_mode`: "nearest"
    (the edge element) or "reflect" (mirrored about the edge, the edge repeated). The
    gradient adds each dy into the element it read."""
    if not isinstance(x, Variable):
        return _record("shift", (x,))  # raises the TypeError
    if border_mode not in ("nearest", "reflect"):
        raise ValueError(f"F.shift: border_mode={border_mode!r} is not one of nnabla's "
                         f"'nearest' and 'reflect' (input of shape {x.shape})")
    shifts = () if shifts is None else (
        (shifts,) if isinstance(shifts, numbers.Integral) else tuple(shifts))
    values = [_int_argument("shift", "shifts", s) for s in shifts]
    if len(values) > len(x.shape):
        raise ValueError(f"F.shift: shifts={tuple(values)} has more entries than the input of "
                         f"shape {x.shape} has axes (nnabla ignores the first ones); give one "
                         f"per shifted axis, for the last axes")
    full = (0,) * (len(x.shape) - len(values)) + tuple(values)
    return _record("shift", (x,), shifts=full, border_mode=border_mode)


def matrix_diag(x, n_outputs=-1, outputs=None):
    """Square matrices (..., n, n) with x (..., n) on their diagonals, zeros elsewhere."""
    return _record("matrix_diag", (x,))


def matrix_diag_part(x, n_outputs=-1, outputs=None):
    """The diagonals (..., n) of square matrices x (..., n, n)."""
    return _record("matrix_diag_part", (x,))


def meshgrid(*x, ij_indexing=False):
    """Grids of the 1-D inputs, as numpy.meshgrid's: output i holds input i along one axis
    and repeats it along the others, of shape (len(x1), len(x0), len(x2), ...) ("xy"
    indexing, the default) or (len(x0), len(x1), ...) with ``ij_indexing=True``; a
    tuple of Variables."""
    if len(x) == 1 and isinstance(x[0], (list, tuple)):
        x = tuple(x[0])
    if not x:
        raise ValueError("F.meshgrid: give at least one Variable")
    return tuple(_record("meshgrid", tuple(x), output=i, ij_indexing=bool(ij_indexing))
                 for i in range(len(x)))


def top_k_data(x, k, abs=False, reduce=True, base_axis=1, largest=True,  # noqa: A002
               with_index=False, n_outputs=-1, outputs=None):
    """The k largest (smallest if not `largest`) values of each sample, by |x| if `abs`;
    a sample is the axes from `base_axis` on, flattened. ``reduce=True`` gives (*batch,
    k) in decreasing key order, ties first in x's order; ``reduce=False`` x's shape, 0
    where not chosen. `with_index` also returns the indices into the sample (numbers,
    no gradient; reduce only, as nnabla). The gradient goes to the chosen elements only
    (nnabla 1.39's with reduce=False passes every dy through)."""
    if not isinstance(x, Variable):
        return _record("top_k_data", (x,))  # raises the TypeError
    base = _int_argument("top_k_data", "base_axis", base_axis)
    if with_index and not reduce:
        raise ValueError(f"F.top_k_data: with_index=True needs reduce=True, as nnabla's "
                         f"(input of shape {x.shape})")
    attrs = {"k": _int_argument("top_k_data", "k", k), "abs": bool(abs),
             "reduce": bool(reduce), "base_axis": base + len(x.shape) if base < 0 else base,
             "largest": bool(largest)}
    y = _record("top_k_data", (x,), **attrs)
    return (y, _record("top_k_data_index", (x,), **attrs, index=True)) if with_index else y


def _index_axis(op: str, x, axis) -> int:
    axis = 0 if axis is None else _int_argument(op, "axis", axis)  # nnabla: None is 0
    return normalize_axes(op, axis, x.shape)[0]


def gather(x, Indices, axis=None, batch_dims=None, n_outputs=-1, outputs=None):  # noqa: N803
    """x's elements along `axis` (None: 0) at the integer `Indices` (nnabla's name), as
    numpy.take with tf.gather's batch_dims (None: 0): the first batch_dims axes of x and
    Indices are paired. Shape x.shape[:axis] + Indices.shape[batch_dims:] +
    x.shape[axis + 1:]. Indices given as inputs outside [0, x.shape[axis]) are refused
    when the module is called, but -1, which gives zeros (nnabla refuses it); computed
    ones are truncated, zeros out of range (as F.embed's). Indices get no gradient."""
    if not (isinstance(x, Variable) and isinstance(Indices, Variable)):
        return _record("gather", (x, Indices))  # raises the TypeError
    if not x.shape:
        raise ValueError("F.gather: x of shape () has no axis to gather along")
    batch = 0 if batch_dims is None else _int_argument("gather", "batch_dims", batch_dims)
    return _record("gather", (x, Indices), axis=_index_axis("gather", x, axis),
                   batch_dims=batch)


def scatter_add(x0, indices, x1, axis=None):
    """x0 plus each x1[p] (p a position of `indices`) added at p with its `axis`
    coordinate (None: 0) replaced by indices[p], as torch's scatter_add; x0, indices and
    x1 have one rank, indices no longer than x1, nor than x0 but along `axis`. Indices
    given as inputs outside [0, x0.shape[axis]) are refused when the module is called,
    but -1, which adds nothing (nnabla refuses it); computed ones are truncated, adding
    nothing out of range. Indices get no gradient."""
    if not all(isinstance(v, Variable) for v in (x0, indices, x1)):
        return _record("scatter_add", (x0, indices, x1))  # raises the TypeError
    if not x0.shape:
        raise ValueError("F.scatter_add: x0 of shape () has no axis to scatter along")
    return _record("scatter_add", (x0, indices, x1), axis=_index_axis("scatter_add", x0, axis))


def _nd_indices(indices):
    """nnabla's conversion: indices given as a list or an array become a Variable holding
    them (any other kind is left for _record to refuse)."""
    if isinstance(indices, (list, tuple, numpy.ndarray)):
        return Variable.from_numpy_array(numpy.asarray(indices, dtype=int))
    return indices


def gather_nd(data, indices):
    """The elements or slices of `data` (X_0, ..., X_{N-1}) at `indices` (M, Y_0, ...,
    Y_{K-1}), M <= N: y[y...] = data[indices[0, y...], ..., indices[M-1, y...], ...], of
    shape (Y_0, ..., Y_{K-1}, X_M, ..., X_{N-1}). `indices` (at least 2-D) may be a
    Variable, a list or an array; negative indices count from the end, as nnabla's. Indices
    given as inputs outside [-X_m, X_m) in row m are refused when the module is called;
    computed ones are truncated, zeros out of range. The gradient adds dy back where y
    was read (repeated positions sum); indices get none."""
    indices = _nd_indices(indices)
    return _record("gather_nd", (data, indices))


def scatter_nd(data, indices, shape=None, out=None, add=False):
    """`data` (Y_0, ..., Y_{K-1}, X_M, ..., X_{N-1}) written into zeros of `shape` (X_0,
    ..., X_{N-1}), or into the leaf Variable `out`, at `indices` (M, Y_0, ..., Y_{K-1}):
    y[indices[0, y...], ..., indices[M-1, y...], ...] = data[y...], the inverse of
    F.gather_nd; give exactly one of `shape` and `out`. Repeated positions: with `add` the
    values are summed, else the last one wins (nnabla's CPU loop). Indices are read as
    F.gather_nd reads them. With `out`, every forward pass overwrites out with y in place,
    as nnabla's (so with `add` each pass adds again); out gets no gradient (nnabla's
    backward gives it none). data's gradient is dy where data was written: with `add` at
    every repeated position, without it only at the last (the derivative: nnabla 1.39's
    passes dy to every repeated position, or with `out` only to the first)."""
    indices = _nd_indices(indices)
    if shape is None and out is None:
        raise TypeError("F.scatter_nd: one of `shape` or `out` argument must be supplied")
    # nnabla's test (`shape and out`): an empty shape with out is no shape
    given = shape is not None and numpy.size(shape) > 0
    if given and out is not None:
        raise TypeError("F.scatter_nd: only one of `shape` or `out` argument may be used")
    if out is not None:
        if not isinstance(out, Variable):
            raise TypeError(f"F.scatter_nd: `out` must be a Variable, got "
                            f"{type(out).__name__}")
        _updated_in_place("scatter_nd", "out", out=out)
        shape = out.shape
    shape = normalize_shape(shape, "F.scatter_nd")
    inputs = (data, indices) if out is None else (data, indices, out)
    return _record("scatter_nd", inputs, shape=shape, add=bool(add))


def bool_scatter(input, mask, output=None, n_outputs=-1, outputs=None):  # noqa: A002
    """The rows of `input` (nnz, D_1, ..., D_M) written, in order, where `mask` (B_1, ...,
    B_N) is not 0 (NaN is not 0), zeros elsewhere: (B_1, ..., B_N, D_1, ..., D_M); the
    inverse of nnabla's bool_gather. With `output` (a leaf of that shape), its values
    stay where the mask is 0 and every forward pass writes the result into it in place,
    as nnabla's. Gradients: to input the rows of dy where the mask is not 0, to output dy
    where it is 0 (nnabla's), none to the mask. A mask whose count of non-zeros is not
    nnz is refused when the module runs (nnabla reads past input's rows, or leaves some
    unread, silently)."""
    if output is None:
        return _record("bool_scatter", (input, mask))
    if not isinstance(output, Variable):
        raise TypeError(f"F.bool_scatter: output must be a Variable, got "
                        f"{type(output).__name__}")
    _updated_in_place("bool_scatter", "output", output=output)
    return _record("bool_scatter", (input, mask, output))


# --- outputs shaped by their input's values -------------------------------------------------
# Their shapes follow from the values of an input: nnabla's setup computes them when the
# function is created, from the values the input has then (so a static graph is built
# after its input has its values, or under nn.auto_forward()). Here too; the compiled
# module computes the output on every forward pass and refuses values that would give
# another shape (nnabla's nonzero keeps its first result, and its bool_gather reads the
# wrong rows).

def _values(x) -> numpy.ndarray:
    """x's current values, from which a function's output shape follows."""
    if not isinstance(x, Variable):
        return numpy.zeros(())  # _record raises the TypeError
    return numpy.asarray(x.d)


def bool_gather(input, mask, n_outputs=-1, outputs=None):  # noqa: A002 - nnabla's name
    """The rows of `input` (B_1, ..., B_N, D_1, ..., D_M) where `mask` (B_1, ..., B_N) is
    not 0 (NaN is not 0), in order: (nnz, D_1 * ... * D_M), or (nnz,) without D axes, as
    nnabla 1.39 shapes it. nnz is the mask's count of non-zeros when the call is made
    (nnabla's sum of the mask: the same for the 0/1 masks it documents); a forward pass
    with another count is refused. Gradients: dy scattered back to input's rows, none to
    the mask."""
    return built_bool_gather(input, mask, int(numpy.count_nonzero(_values(mask))))


def built_bool_gather(input, mask, nnz: int):  # noqa: A002
    """F.bool_gather's node for a mask of `nnz` non-zeros (a file's reader knows it from
    the output's declared shape)."""
    return _record("bool_gather", (input, mask), nnz=nnz)


def nonzero(x, n_outputs=-1, outputs=None):
    """The indices of x's non-zero elements (NaN is not 0) in C order, (x.ndim, nnz) uint64,
    as numpy.nonzero stacked; nnz is their count when the call is made (nnabla's). Every
    forward pass computes them again (nnabla's keeps the first result) and refuses
    another count. No gradient."""
    return built_nonzero(x, int(numpy.count_nonzero(_values(x))))


def built_nonzero(x, nnz: int):
    """F.nonzero's node for `nnz` non-zeros (see `built_bool_gather`)."""
    return _record("nonzero", (x,), nnz=nnz)


def unique(x, flatten=True, axis=None, sorted=True, with_index=False,  # noqa: A002
           with_inverse=False, with_counts=False, n_outputs=-1, outputs=None):
    """x's unique values (with `flatten`; `axis` is then ignored, as nnabla's) or unique
    slices along `axis`, sorted (lexicographically, for slices) or, without `sorted`, in
    the order they first occur; with `with_index`, `with_inverse`, `with_counts` also
    (in that order, int32) the index of each one's first occurrence, which of them each
    value (slice) of x is, and how many times each occurs, as nnabla's. -0 equals 0 and
    each NaN is its own value, sorted last (nnabla's order of NaN is undefined).

    How many unique values there are is taken from x's values when the call is made
    (nnabla's setup does the same; its static graphs refuse F.unique, here they compile);
    a forward pass with another number is refused. The values' gradient is the true one,
    dy added back at each first occurrence (nnabla's backward raises not_implemented); the
    indices and counts have none."""
    if not isinstance(x, Variable):
        return _record("unique", (x,))  # raises the TypeError
    values = _values(x)
    _check_unique(x, flatten, axis)
    axis = 0 if axis is None else int(axis)
    rows = values.reshape(-1, 1) if flatten else numpy.moveaxis(values, axis, 0).reshape(
        values.shape[axis], -1)
    ordered = rows[numpy.lexsort(rows.T[::-1])]  # as the kernel counts (NaN equals nothing)
    count = 1 + int(numpy.count_nonzero(numpy.any(ordered[1:] != ordered[:-1], axis=1))) \
        if rows.size else 0
    return built_unique(x, count, flatten, axis, sorted, with_index, with_inverse, with_counts)


def _check_unique(x, flatten, axis) -> None:
    if isinstance(x, Variable):
        if not x.shape or x.size == 0:
            raise ValueError(f"F.unique: x of shape {x.shape} has no values to compare; give "
                             f"an array of at least one element and one axis")
        if not flatten:
            if axis is None:
                raise ValueError("F.unique: without flatten, give the axis along which "
                                 "slices are compared (axis=None compares values of the "
                                 "flattened x: flatten=True)")
            _one_axis("unique", x, axis, "compare slices along")  # (recorded as given)


def built_unique(x, count: int, flatten=True, axis=0, sorted=True,  # noqa: A002
                 with_index=False, with_inverse=False, with_counts=False):
    """F.unique's nodes for `count` unique values or slices (see `built_bool_gather`)."""
    _check_unique(x, flatten, axis)
    attrs = {"flatten": bool(flatten), "axis": 0 if axis is None else int(axis),
             "sorted": bool(sorted), "with_index": bool(with_index),
             "with_inverse": bool(with_inverse), "with_counts": bool(with_counts),
             "count": int(count)}
    y = _record("unique", (x,), **attrs)
    wanted = [name for name, flag in (("unique_index", with_index),
                                      ("unique_inverse", with_inverse),
                                      ("unique_counts", with_counts)) if flag]
    if not wanted:
        return y
    return (y, *(_record(name, (x,), **attrs) for name in wanted))


def pack_padded_sequence(padded_sequence, lengths, batch_first=False, n_outputs=-1,
                         outputs=None):
    """Padded sequences (T, B, ...) ((B, T, ...) with `batch_first`) packed step by step:
    at step t the first batch_sizes[t] sequences, batch_sizes[t] the number of `lengths`
    (B,) over t (nnabla's: the sequences sorted by decreasing length, as
    nnabla.utils.rnn sorts them). Returns (packed (sum(lengths), ...), batch_sizes (T,)
    int32). The number of rows is taken from lengths' values when the call is made (as
    nnabla's setup does); a forward pass with lengths of another sum is refused. The
    gradient goes back to the packed positions of padded_sequence, none to lengths."""
    if not (isinstance(padded_sequence, Variable) and isinstance(lengths, Variable)):
        return _record("pack_padded_sequence", (padded_sequence, lengths))  # the TypeError
    values = numpy.trunc(_values(lengths)).astype(numpy.int64)
    shape = padded_sequence.shape
    steps = shape[1 if batch_first else 0] if len(shape) >= 2 else 0
    if len(shape) >= 2 and values.size and int(values.max()) > steps:
        raise ValueError(f"F.pack_padded_sequence: padded_sequence of shape {shape}: a length "
                         f"of {int(values.max())} is longer than its {steps} steps")
    return built_pack_padded_sequence(padded_sequence, lengths, int(values.sum()),
                                      batch_first)


def built_pack_padded_sequence(padded_sequence, lengths, rows: int, batch_first=False):
    """F.pack_padded_sequence's nodes for lengths summing to `rows` (see
    `built_bool_gather`)."""
    attrs = {"batch_first": bool(batch_first), "rows": rows}
    return (_record("pack_padded_sequence", (padded_sequence, lengths), **attrs),
            _record("pack_padded_sequence_batch_sizes", (padded_sequence, lengths), **attrs))


def pad_packed_sequence(packed_sequence, batch_sizes, batch_first=False, padding_value=None,
                        total_length=None, n_outputs=-1, outputs=None):
    """A packed sequence (N, ...) placed back into padded sequences (T, B, ...) ((B, T,
    ...) with `batch_first`), `padding_value` (default 0) elsewhere, T the length of
    `batch_sizes` or `total_length` when larger, B its largest batch size; also returns
    the lengths (B,) int32. B is taken from batch_sizes' values when the call is made (as
    nnabla's setup does); a forward pass with another largest batch size, or sizes that do
    not sum to N, is refused. nnabla 1.39's CPU forward ignores padding_value (it pads
    with 0); here the padding is padding_value. The gradient goes back to the packed rows,
    none to batch_sizes."""
    if not (isinstance(packed_sequence, Variable) and isinstance(batch_sizes, Variable)):
        return _record("pad_packed_sequence", (packed_sequence, batch_sizes))  # TypeError
    values = numpy.trunc(_values(batch_sizes)).astype(numpy.int64)
    return built_pad_packed_sequence(packed_sequence, batch_sizes,
                                     int(values.max(initial=0)), batch_first, padding_value,
                                     total_length)


def built_pad_packed_sequence(packed_sequence, batch_sizes, batch: int, batch_first=False,
                              padding_value=None, total_length=None):
    """F.pad_packed_sequence's nodes for a largest batch size of `batch` (see
    `built_bool_gather`)."""
    padding = 0.0 if padding_value is None else padding_value
    attrs = {"batch_first": bool(batch_first),
             "padding_value": number(padding, "pad_packed_sequence", "padding_value"),
             "total_length": -1 if total_length is None else _int_argument(
                 "pad_packed_sequence", "total_length", total_length),
             "batch": batch}
    return (_record("pad_packed_sequence", (packed_sequence, batch_sizes), **attrs),
            _record("pad_packed_sequence_lengths", (packed_sequence, batch_sizes), **attrs))


def reshape(x, shape, inplace=True, n_outputs=-1, outputs=None):
    """`x` with a new shape of the same size; one axis may be -1 (inferred). In place
    (the default) its values have x's dtype, a copy's are float32, as in nnabla (the node
    records inplace only when it is False)."""
    if not isinstance(x, Variable):
        return _record("reshape", (x,))
    copy = {} if inplace else {"inplace": False}
    return _record("reshape", (x,), shape=_reshape_target(x.shape, shape), **copy)


def _reshape_target(old, shape) -> tuple[int, ...]:
    if isinstance(shape, numbers.Integral):
        shape = (shape,)
    shape = [int(d) for d in shape]
    size = math.prod(old)
    if shape.count(-1) > 1:
        raise ValueError(f"F.reshape: shape {tuple(shape)} has more than one -1")
    if -1 in shape:
        known = math.prod(d for d in shape if d != -1)
        if known == 0 or size % known:
            raise ValueError(f"F.reshape: cannot reshape {old} ({size} elements) to "
                             f"{tuple(shape)}")
        shape[shape.index(-1)] = size // known
    new = normalize_shape(shape, "F.reshape")
    if math.prod(new) != size:
        raise ValueError(f"F.reshape: cannot reshape {old} ({size} elements) to {new} "
                         f"({math.prod(new)} elements)")
    return new


def transpose(x, axes, n_outputs=-1, outputs=None):
    """`x` with its axes permuted: output axis i is input axis axes[i]."""
    if not isinstance(x, Variable):
        return _record("transpose", (x,))
    perm = tuple(int(a) % x.ndim if x.ndim else int(a) for a in axes)
    if sorted(perm) != list(range(x.ndim)):
        raise ValueError(f"F.transpose: axes {tuple(axes)} is not a permutation of the "
                         f"{x.ndim} axes of an input of shape {x.shape}")
    return _record("transpose", (x,), axes=perm)


def broadcast(x, shape, n_outputs=-1, outputs=None):
    """`x` repeated along its size-1 axes (and new leading axes) to `shape`."""
    if not isinstance(x, Variable):
        return _record("broadcast", (x,))
    shape = normalize_shape(shape, "F.broadcast")
    padded = (1,) * (len(shape) - x.ndim) + x.shape
    if len(shape) < x.ndim or any(d != s and d != 1 for d, s in zip(padded, shape,
                                                                    strict=True)):
        raise ValueError(f"F.broadcast: cannot broadcast shape {x.shape} to {shape}: every "
                         "axis of the input must equal the target's or be 1 (missing "
                         "leading axes count as 1)")
    return _record("broadcast", (x,), shape=shape)


def interpolate(x, scale=None, output_size=None, mode="linear", align_corners=False,
                half_pixel=False, half_pixel_for_nn=False, channel_last=False):
    """x resized along its last len(output_size) axes, 1 to 3 of them, by "linear" or
    "nearest" interpolation, as nnabla 1.39's: output_size[i] = floor(scale[i] * size)
    when `scale` is given; the source coordinate of output o is o*(n - 1)/(m - 1)
    (align_corners), (o + 1/2)*n/m - 1/2 (half_pixel, at least 0) or o*n/m; nearest reads
    its floor ((o + 1/2)*n/m with half_pixel_for_nn). The gradient adds each dy back into
    what it read, weighted. ``channel_last=True``: the axes resized are those before the
    last (NHWC), as by nnabla's CUDA implementation (its CPU one refuses to run it)."""
    if not isinstance(x, Variable):
        return _record("interpolate", (x,))  # raises the TypeError
    where = f"F.interpolate: input of shape {x.shape}"
    if mode not in ("linear", "nearest"):
        raise ValueError(f"{where}: mode={mode!r} is not one of nnabla's 'linear' and "
                         f"'nearest'")
    if align_corners and half_pixel:
        raise ValueError(f"{where}: align_corners=True and half_pixel=True together are "
                         f"not supported (nnabla's rule); choose one")
    given = output_size if output_size is not None else scale
    if given is None:
        raise ValueError(f"{where}: give scale or output_size (one entry per resized "
                         f"axis)")
    given = (given,) if isinstance(given, numbers.Real) else tuple(given)
    rank = len(given)
    last = len(x.shape) - 1 if channel_last else len(x.shape)  # (after the resized axes)
    if not 1 <= rank <= 3 or rank > last:
        raise ValueError(f"{where}: {rank} resized axes; nnabla interpolates 1 to 3 axes, "
                         f"and the input must have them"
                         + (" before its channels (channel_last=True)" if channel_last else ""))
    axes = tuple(range(last - rank, last))
    if output_size is None:
        for s in given:
            if isinstance(s, bool) or not isinstance(s, numbers.Real) or not s > 0:
                raise ValueError(f"{where}: scale={tuple(given)} must hold positive numbers")
        sizes = tuple(int(math.floor(s * x.shape[a])) for s, a in zip(given, axes,
                                                                        strict=True))
    else:
        sizes = tuple(_int_argument("interpolate", "output_size", s) for s in given)
    if any(s < 1 for s in sizes):
        raise ValueError(f"{where}: the output size {sizes} along axes {axes} must be at "
                         f"least 1 (give a larger scale or output_size)")
    return _record("interpolate", (x,), axes=axes, output_size=sizes, mode=mode,
                   align_corners=bool(align_corners), half_pixel=bool(half_pixel),
                   half_pixel_for_nn=bool(half_pixel_for_nn), **_layout(channel_last))


def onnx_resize(x, roi=(), scales=(), sizes=(), mode="nearest",
                coordinate_transformation_mode="half_pixel", cubic_coeff_a=None,
                exclude_outside=None, extrapolation_value=None,
                nearest_mode="round_prefer_floor", n_outputs=-1, outputs=None):
    """x resized as ONNX's Resize (opset 11) resizes it, as nnabla 1.39's ONNXResize:
    give `sizes` (the output shape) or `scales` (output size floor(size * scale)), one
    entry per axis of x. The axes from the first whose scale is not 1 to the last are
    resized, 1 to 3 of them (an axis of scale 1 among them is left as it is, whatever the
    mode). Output o of m reads the axis of n at the coordinate c given by
    `coordinate_transformation_mode`: "half_pixel" (o + 1/2)/scale - 1/2,
    "pytorch_half_pixel" the same (0 for m = 1), "align_corners" o(n - 1)/(m - 1) (0 for
    m = 1), "asymmetric" o/scale, "tf_half_pixel_for_nn" (o + 1/2)/scale, or
    "tf_crop_and_resize" start(n - 1) + o(end - start)(n - 1)/(m - 1) (the middle of the
    region for m = 1), with the region's start and end fractions from `roi` (every axis'
    start, then every axis' end), `extrapolation_value` where c is outside [0, n - 1].
    `mode` "nearest" reads round(c) by `nearest_mode` ("round_prefer_floor",
    "round_prefer_ceil", "floor", "ceil"), "linear" the two neighbours of c, "cubic"
    the four, with Keys' weights of coefficient `cubic_coeff_a` (defaults -0.75), which
    `exclude_outside` (0) sets to 0 outside x and renormalizes; neighbours outside x are
    the edge's elements. Coordinates and weights are float32, as nnabla computes them.

    nnabla 1.39 has no backward for it (its backward raises not_implemented); here the
    gradient is the true one: the output is linear in x, and dy goes back, weighted,
    into the elements each output read (none from extrapolated outputs)."""
    if not isinstance(x, Variable):
        return _record("onnx_resize", (x,))  # raises the TypeError
    op = "onnx_resize"
    texts = {name: _text(op, name, value) for name, value in (
        ("mode", mode), ("coordinate_transformation_mode", coordinate_transformation_mode),
        ("nearest_mode", nearest_mode))}
    if exclude_outside is None or isinstance(exclude_outside, (bool, numpy.bool_)):
        exclude_outside = int(bool(exclude_outside))  # (nnabla's None is 0)
    return _record(op, (x,), roi=_reals(op, "roi", roi), scales=_reals(op, "scales", scales),
                   sizes=tuple(_int_argument(op, "sizes", s) for s in _items(op, "sizes", sizes)),
                   mode=texts["mode"],
                   coordinate_transformation_mode=texts["coordinate_transformation_mode"],
                   cubic_coeff_a=number(-0.75 if cubic_coeff_a is None else cubic_coeff_a, op,
                                        "cubic_coeff_a"),
                   exclude_outside=_int_argument(op, "exclude_outside", exclude_outside),
                   extrapolation_value=number(0.0 if extrapolation_value is None
                                              else extrapolation_value, op,
                                              "extrapolation_value"),
                   nearest_mode=texts["nearest_mode"])


def _items(op: str, name: str, values) -> tuple:
    """A sequence argument of nnabla's (a tuple, list or 1-D array) as a tuple."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__") \
            or getattr(values, "ndim", 1) != 1:
        raise TypeError(f"F.{op}: {name} must be a tuple of numbers (one per axis), got "
                        f"{values!r}")
    return tuple(values)


def _reals(op: str, name: str, values) -> tuple[float, ...]:
    items = _items(op, name, values)
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in items):
        raise TypeError(f"F.{op}: {name} must be a tuple of numbers, got {values!r}")
    return tuple(float(v) for v in items)


def _text(op: str, name: str, value) -> str:
    if not isinstance(value, str):
        raise TypeError(f"F.{op}: {name} must be a string, got {value!r}")
    return value


def trilu(x, k=0, upper=True, n_outputs=-1, outputs=None):
    """numpy.triu(x, k) (upper=True) or numpy.tril(x, k) of the matrices of x's last two
    axes (x has at least 2); the gradient is dy masked alike."""
    if not isinstance(x, Variable):
        return _record("trilu", (x,))  # raises the TypeError
    if not isinstance(upper, (bool, numpy.bool_)):
        raise TypeError(f"F.trilu: upper must be True (keep the upper triangle) or False "
                        f"(the lower), got {upper!r}")
    return _record("trilu", (x,), k=_int_argument("trilu", "k", k), upper=bool(upper))


def eye_like(x, k=0, n_outputs=-1, outputs=None):
    """numpy.eye(M, N, k) for a 2-D x of shape (M, N): ones on the k-th diagonal (k > 0
    above the main one), zeros elsewhere. x gives only the shape: no gradient."""
    if not isinstance(x, Variable):
        return _record("eye_like", (x,))  # raises the TypeError
    return _record("eye_like", (x,), k=_int_argument("eye_like", "k", k))


def unlink(x, n_outputs=-1, outputs=None):
    """x, through which no gradient flows (nnabla's Unlink: its backward does nothing)."""
    return _record("unlink", (x,))


def shape(x, start=None, end=None, n_outputs=-1, outputs=None):
    """x.shape[start:end] as a 1-D array of numbers (float32, as nnabla 1.39's): start
    None is 0, end None the end; negative ones count from the end, as in nnabla. An empty
    range is refused (nnabla leaves its output unset). No gradient."""
    if not isinstance(x, Variable):
        return _record("shape", (x,))  # raises the TypeError
    first = 0 if start is None else _int_argument("shape", "start", start)
    last = 0 if end is None else _int_argument("shape", "end", end)  # (nnabla's 0: the end)
    return _record("shape", (x,), start=first, end=last)
