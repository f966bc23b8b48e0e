"""Geometric layers: affine_grid, warp_by_grid and warp_by_flow (nnabla 1.39's), written
with existing primitives, so every gradient (and its gradient) comes from theirs.

- affine_grid: the target grid, a constant of (D*)H*W rows (x, y, (z,) 1) (each axis n
  points from -1 to 1, scaled by (n - 1)/n without align_corners), times theta^T: a
  matrix product, whose gradient to theta is the grid's transpose times the cotangent.
- warp_by_grid: x read at the grid's points. Each grid coordinate g (x, y, z for the
  axes W, H, D) becomes a position in pixels, s = (g + 1)(n - 1)/2 with align_corners,
  else ((g + 1) n - 1)/2, then is padded ("repeat": clipped to [0, n - 1]; "reflect":
  reflected at 0 and n - 1, or at -1/2 and n - 1/2 and then clipped; "zero": left), as
  warp_by_grid.cpp's get_src_findex_with_*_pad. Linear: with i = floor(s) and f = s - i
  per axis, y = sum over the 2^k corners of prod(f or 1 - f) * x[b, c, i or i + 1, ...],
  0 for corners outside x; nearest: x at round(s) (halves away from zero), 0 outside.
  One `GatherNd` of x (channels last) reads every corner, and its gradient is the
  scatter-add of the weighted dy into x; floor and round are constants (StopGradient), so
  the grid's gradient is that of the weights f and 1 - f through the padding (0 where
  clipped, -1 where reflected) and the unnormalization, as warp_by_grid.cpp's
  backward_grid computes it. Nearest gives the grid none (0; nnabla's backward raises).
- warp_by_flow: data (N, C, H, W) read bilinearly at (x + flow[:, 0], y + flow[:, 1])
  clipped to the image (warp_by_flow.cpp clamps its four neighbours instead, which gives
  the same values and gradients).
"""

from __future__ import annotations

import math

from symcompile.common.deferred import Deferred
from symcompile.ops.opdef import OpDef, registrar

sympy = Deferred("sympy")
P = Deferred("symcompile.ir.primitives")
I = Deferred("symcompile.ir.indexing")  # noqa: E741 - the module's short name, like P
E = Deferred("symcompile.ops.sympy_functions")

OPS: dict[str, OpDef] = {}

_register = registrar(OPS)


# --- affine_grid --------------------------------------------------------------------------

def _affine_grid_shape(shapes, attrs):
    theta, size = shapes[0], tuple(attrs["size"])
    k = len(size)
    where = f"F.affine_grid: theta of shape {theta}, size={size}"
    if k not in (2, 3):
        raise ValueError(f"{where}: size must hold 2 numbers (H, W) or 3 (D, H, W); nnabla "
                         f"generates 2-D and 3-D grids only")
    if len(theta) != 3 or theta[1:] != (k, k + 1):
        raise ValueError(f"{where}: theta must be of shape (B, {k}, {k + 1}), one {k}x{k + 1} "
                         f"affine matrix per sample, for a {k}-D grid (nnabla's check)")
    if any(n < 2 for n in size):
        raise ValueError(f"{where}: every grid size must be at least 2; nnabla 1.39 computes "
                         f"the coordinates of an axis of size 1 as 0/0 (NaN everywhere)")
    return (theta[0],) + size + (k,)


def target_axis(n: int, align_corners: bool):
    """The target grid's n points along one axis, in [-1, 1]: 2i/(n - 1) - 1, times
    (n - 1)/n without align_corners (affine_grid.cpp's generate_target_grid)."""
    end = sympy.Integer(1) if align_corners else sympy.Rational(n - 1, n)
    return P.Linspace(-end, end, sympy.Integer(n))


@_register("affine_grid", "AffineGrid", 1, _affine_grid_shape)
def _affine_grid(args, attrs, ctx):
    """grid[b, ..., i] = sum over j of target[..., j] * theta[b, i, j]: the target grid
    (..., k + 1) of (x, y, (z,) 1) rows times theta^T (B, k + 1, k)."""
    size, shapes = tuple(attrs["size"]), ctx.shapes
    k, batch = len(size), ctx.in_shapes[0][0]
    cells = size + (1,)
    columns = []
    for axis in reversed(range(k)):  # x (along W, the last axis) first
        line = P.reshape(target_axis(size[axis], attrs["align_corners"]),
                         tuple(n if i == axis else 1 for i, n in enumerate(cells)), shapes)
        columns.append(P.exact(line, cells, shapes))
    columns.append(P.Full(sympy.Integer(1), P.shape_tuple(cells)))
    target = P.reshape(I.concatenate(columns, k, shapes), (math.prod(size), k + 1), shapes)
    grid = P.matmul(target, P.swap_last(args[0], shapes), shapes)  # (B, prod(size), k)
    return P.reshape(grid, (batch,) + size + (k,), shapes)


# --- warp_by_grid -------------------------------------------------------------------------

def _warp_by_grid_shape(shapes, attrs):
    x, grid = shapes
    where = f"F.warp_by_grid: x of shape {x}, grid of shape {grid}"
    if len(x) not in (4, 5):
        layouts = ("(B, H, W, C) or 5-D (B, D, H, W, C) (channel_last)"
                   if attrs.get("channel_last") else "(B, C, H, W) or 5-D (B, C, D, H, W)")
        raise ValueError(f"{where}: x must be 4-D {layouts}: nnabla warps 2-D and 3-D "
                         f"images")
    k = len(x) - 2
    if len(grid) != len(x) or grid[-1] != k:
        expected = "(B, H_out, W_out, 2)" if k == 2 else "(B, D_out, H_out, W_out, 3)"
        raise ValueError(f"{where}: the grid must be of shape {expected} for a {len(x)}-D "
                         f"x: one ({'x, y' if k == 2 else 'x, y, z'}) point per output "
                         f"pixel")
    if grid[0] != x[0]:
        raise ValueError(f"{where}: the batch sizes of x and grid differ ({x[0]} != "
                         f"{grid[0]}); nnabla's check")
    channels = x[-1] if attrs.get("channel_last") else x[1]
    spatial = tuple(grid[1:-1])
    return (x[0],) + spatial + (channels,) if attrs.get("channel_last") else (
        (x[0], channels) + spatial)


def unnormalized(g, n: int, align_corners: bool):
    """A grid coordinate g in [-1, 1] as a position in pixels along an axis of n:
    (g + 1)(n - 1)/2 with align_corners, ((g + 1)n - 1)/2 without."""
    if align_corners:
        return (g + 1) * sympy.Rational(n - 1, 2)
    return ((g + 1) * n - 1) / 2


def reflected(s, low, high):
    """s reflected into [low, high] at both ends as often as it takes (warp_by_grid.cpp's
    reflect): with L = high - low and t = (s - low) mod 2L, low + L - |t - L|; the mod's
    quotient is a constant to the gradient, so d/ds is +1 or -1."""
    span = high - low
    u = s - low
    t = u - 2 * span * P.StopGradient(E.Floor(u / (2 * span)))
    return low + span - E.Absolute(t - span, sympy.Integer(1))


def padded(s, n: int, padding_mode: str, align_corners: bool):
    """A position s along an axis of n as nnabla's padding modes place it: "zero" leaves it,
    "repeat" clips it to [0, n - 1], "reflect" reflects it at 0 and n - 1 (align_corners)
    or, without, at -1/2 and n - 1/2 (twice the position reflected at -1 and 2n - 1, then
    halved) and clips it to [0, n - 1]."""
    last = sympy.Integer(n - 1)
    if padding_mode == "zero":
        return s
    if padding_mode == "repeat":
        return E.Clip(s, sympy.Integer(0), last)
    if align_corners:
        return s if n == 1 else reflected(s, sympy.Integer(0), last)  # (n = 1: s is 0)
    twice = reflected(2 * s, sympy.Integer(-1), sympy.Integer(2 * n - 1))
    return E.Clip(twice / 2, sympy.Integer(0), last)


def sample(x, positions, sizes, mode: str, outside: bool, ctx):
    """x (B, *sizes, C) (channels last) read at `positions`, one expression (B, *out) per
    spatial axis of `sizes` (outermost first), in pixels: "linear" weights the 2^k corners
    floor(s) + o (o = 0 or 1 per axis) by the product over the axes of 1 - |o - f| (1 - f
    or f, f = s - floor(s)); "nearest" reads round(s) (halves away from zero). With
    `outside`, corners outside x read 0 (the positions may be anywhere); without, the
    positions are inside [0, n - 1]. One `GatherNd` reads every corner: its indices
    (1 + k, 2, ..., 2, B, *out), a corner axis of 2 per spatial axis (none for nearest),
    the corners then summed. Returns (B, *out, C)."""
    shapes = ctx.shapes
    batch, channels = shapes.of(x)[0], shapes.of(x)[-1]
    out = tuple(P.broadcast_shapes(*(shapes.of(p) for p in positions)))[1:]
    k = len(positions)
    corners = (2,) * k if mode == "linear" else ()
    full = corners + (batch,) + out  # one index per corner and output pixel

    def spread(e, shape):  # (*shape) -> (1, ..., 1, *shape), broadcasting to `full`
        return P.reshape(P.exact(e, shape, shapes), (1,) * (len(full) - len(shape)) + shape,
                         shapes)

    def count(n: int):
        return P.Arange(sympy.Integer(0), sympy.Integer(1), sympy.Integer(n))

    rows = [spread(P.reshape(count(batch), (batch,) + (1,) * len(out), shapes),
                   (batch,) + (1,) * len(out))]
    weight = sympy.Integer(1)
    for axis, (s, n) in enumerate(zip(positions, sizes, strict=True)):
        s = spread(s, (batch,) + out)
        if mode == "nearest":
            index = P.StopGradient(E.Round(s))
        else:
            low = P.StopGradient(E.Floor(s))
            offset = P.reshape(count(2), tuple(2 if i == axis else 1 for i in range(len(full))),
                               shapes)
            index = low + offset
            # 1 - f for o = 0 and f for o = 1, f in [0, 1): the derivative -1 at f = o = 0
            weight = weight * (1 - E.Absolute(offset - (s - low), sympy.Integer(-1)))
        if outside:  # an index past the end reads 0 (negative ones would count from it)
            index = E.Select(E.InRange(index, sympy.Integer(0), sympy.Integer(n - 1),
                                       sympy.Integer(1)), index, sympy.Integer(n))
        rows.append(index)
    rows = [P.reshape(P.exact(r, full, shapes), (1,) + full, shapes) for r in rows]
    values = I.GatherNd(x, I.concatenate(rows, 0, shapes), sympy.Integer(0))  # (*full, C)
    if not corners:
        return values
    weighted = P.reshape(P.exact(weight, full, shapes), full + (1,), shapes) * values
    return P.reduce_sum(weighted, tuple(range(k)), False, full + (channels,), shapes)


def _grid_component(grid, k: int, shape, shapes):
    """grid[..., k] of a grid (B, *out, K), of shape (B, *out)."""
    rank = len(shape)
    start = (0,) * (rank - 1) + (k,)
    stop = tuple(shape[:-1]) + (k + 1,)
    part = I.Slice(grid, P.shape_tuple(start), P.shape_tuple(stop), P.shape_tuple((1,) * rank))
    return P.reshape(part, tuple(shape[:-1]), shapes)


@_register("warp_by_grid", "WarpByGrid", 2, _warp_by_grid_shape)
def _warp_by_grid(args, attrs, ctx):
    x, grid = args
    x_shape, grid_shape = ctx.in_shapes
    shapes, rank = ctx.shapes, len(x_shape)
    k = rank - 2
    last = attrs.get("channel_last", False)
    if not last:  # (B, C, *S) -> (B, *S, C)
        x = P.transpose(x, (0,) + tuple(range(2, rank)) + (1,), shapes)
    sizes = tuple(x_shape[1:-1]) if last else tuple(x_shape[2:])
    positions = []
    for axis in range(k):  # D, H, W; the grid's components are (x, y, z): W first
        g = _grid_component(grid, k - 1 - axis, grid_shape, shapes)
        s = unnormalized(g, sizes[axis], attrs["align_corners"])
        positions.append(padded(s, sizes[axis], attrs["padding_mode"],
                                attrs["align_corners"]))
    y = sample(x, positions, sizes, attrs["mode"], attrs["padding_mode"] == "zero", ctx)
    if last:
        return y
    return P.transpose(y, (0, rank - 1) + tuple(range(1, rank - 1)), shapes)


# --- warp_by_flow -------------------------------------------------------------------------

def _warp_by_flow_shape(shapes, attrs):
    data, flow = shapes
    where = f"F.warp_by_flow: data of shape {data}, flow of shape {flow}"
    if len(data) != 4:
        raise ValueError(f"{where}: data must be 4-D (N, C, H, W), as nnabla's")
    if len(flow) != 4 or flow[1] != 2 or flow[0] != data[0] or flow[2:] != data[2:]:
        raise ValueError(f"{where}: flow must be of shape ({data[0]}, 2, {data[2]}, "
                         f"{data[3]}): the (x, y) offsets of each pixel of data (nnabla's "
                         f"check)")
    return tuple(data)


@_register("warp_by_flow", "WarpByFlow", 2, _warp_by_flow_shape)
def _warp_by_flow(args, attrs, ctx):
    data, flow = args
    n, _, h, w = ctx.in_shapes[0]
    shapes = ctx.shapes
    data = P.transpose(data, (0, 2, 3, 1), shapes)  # (N, H, W, C)
    offsets = []
    for k in (1, 0):  # y (flow[:, 1]) along H, x (flow[:, 0]) along W
        part = I.Slice(flow, P.shape_tuple((0, k, 0, 0)), P.shape_tuple((n, k + 1, h, w)),
                       P.shape_tuple((1, 1, 1, 1)))
        offsets.append(P.reshape(part, (n, h, w), shapes))
    ys = P.reshape(P.Arange(sympy.Integer(0), sympy.Integer(1), sympy.Integer(h)), (1, h, 1),
                   shapes)
    xs = P.reshape(P.Arange(sympy.Integer(0), sympy.Integer(1), sympy.Integer(w)), (1, 1, w),
                   shapes)
    positions = [E.Clip(ys + offsets[0], sympy.Integer(0), sympy.Integer(h - 1)),
                 E.Clip(xs + offsets[1], sympy.Integer(0), sympy.Integer(w - 1))]
    y = sample(data, positions, (h, w), "linear", False, ctx)
    return P.transpose(y, (0, 3, 1, 2), shapes)
