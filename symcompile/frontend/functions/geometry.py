"""Geometric layers: affine_grid, warp_by_grid, warp_by_flow (`ops.geometry`) and
patch_correlation (`ops.correlation`).
"""

from __future__ import annotations

import numbers

from symcompile.frontend.functions._base import _flag, _int_argument, _layout, _per_axis, _record
from symcompile.frontend.functions.arrays import reshape, transpose
from symcompile.frontend.variable import Variable

__all__ = ["affine_grid", "warp_by_grid", "warp_by_flow", "patch_correlation"]

def affine_grid(theta, size, align_corners=False, n_outputs=-1, outputs=None):
    """The source grid of the affine transformations theta (B, 2, 3) for size (H, W), or
    (B, 3, 4) for (D, H, W): grid[b, ..., :] = theta[b] @ (x, y, (z,) 1), the target
    points x, y, z of each axis of n evenly from -1 to 1, scaled by (n - 1)/n without
    align_corners (pixel centres). Shape (B, H, W, 2) or (B, D, H, W, 3), last axis (x,
    y(, z)); for F.warp_by_grid. Sizes are at least 2 (nnabla 1.39 gives NaN for 1)."""
    if not isinstance(theta, Variable):
        return _record("affine_grid", (theta,))  # raises the TypeError
    if isinstance(size, numbers.Integral) or not hasattr(size, "__len__"):
        raise TypeError(f"F.affine_grid: size must be a tuple (H, W) or (D, H, W), got "
                        f"{size!r}")
    size = tuple(_int_argument("affine_grid", "size", n) for n in size)
    return _record("affine_grid", (theta,), size=size, align_corners=_flag(
        "affine_grid", "align_corners", align_corners))


def warp_by_grid(x, grid, mode="linear", padding_mode="zero", align_corners=False,
                 channel_last=False, n_outputs=-1, outputs=None):
    """x (B, C, H, W) (or (B, C, D, H, W)) read at the points of grid (B, H_out, W_out, 2)
    (or (B, D_out, H_out, W_out, 3)), coordinates (x, y(, z)) in [-1, 1] (-1 and 1 the
    outer pixels' centres with align_corners, their outer edges without): y (B, C, H_out,
    W_out), as nnabla 1.39's. `mode` "linear" (bi/trilinear) or "nearest" (halves away
    from zero); `padding_mode` for points outside: "zero" (0), "repeat" (the edge pixel)
    or "reflect" (mirrored at the edges). Gradients to x (dy added back, weighted) and,
    linear, to the grid (nearest: 0, where nnabla's backward raises).
    ``channel_last=True``: x (B, H, W, C) and y (B, H_out, W_out, C) (nnabla builds the
    graph, its CPU implementation refuses to run it)."""
    if not (isinstance(x, Variable) and isinstance(grid, Variable)):
        return _record("warp_by_grid", (x, grid))  # raises the TypeError
    where = f"F.warp_by_grid: x of shape {x.shape}, grid of shape {grid.shape}"
    if mode not in ("linear", "nearest"):
        raise ValueError(f"{where}: mode={mode!r} is not one of nnabla's 'linear' and "
                         f"'nearest'")
    if padding_mode not in ("zero", "repeat", "reflect"):
        raise ValueError(f"{where}: padding_mode={padding_mode!r} is not one of nnabla's "
                         f"'zero', 'repeat' and 'reflect'")
    return _record("warp_by_grid", (x, grid), mode=mode, padding_mode=padding_mode,
                   align_corners=_flag("warp_by_grid", "align_corners", align_corners),
                   **_layout(_flag("warp_by_grid", "channel_last", channel_last)))


def warp_by_flow(data, flow, n_outputs=-1, outputs=None):
    """data (N, C, H, W) moved by the flow (N, 2, H, W): y[n, c, i, j] is data[n, c]
    read bilinearly at (i + flow[n, 1, i, j], j + flow[n, 0, i, j]), clipped to the image
    (the edge pixels repeated), as nnabla's. Gradients to data and flow (0 where
    clipped)."""
    return _record("warp_by_flow", (data, flow))


def patch_correlation(x1, x2, patch=(1, 1), shift=(0, 0), patch_step=(1, 1),
                      shift_step=(1, 1), padding=(0, 0, 0, 0), channel_last=False):
    """Correlations of x1's patches with x2's at shifted positions (`ops.correlation`): an
    output (N, Cy, Cx, Ho, Wo), or (N, Ho, Wo, Cy, Cx) with channel_last (NHWC inputs),
    Cy = 2*shift[0] // shift_step[0] + 1 offsets from -shift to shift. Ints stand for
    both axes; `padding` is (top, bottom, left, right), or (vertical, horizontal), or one
    int. As nnabla's, channels-first inputs are transposed (reshaped when C = 1) to
    nnabla's (N, H, W, C) function and its output back."""
    if not (isinstance(x1, Variable) and isinstance(x2, Variable)):
        return _record("patch_correlation", (x1, x2))  # raises the TypeError
    if not (len(x1.shape) == len(x2.shape) == 4):
        raise ValueError(f"F.patch_correlation: x1 of shape {x1.shape} and x2 of shape "
                         f"{x2.shape} must both have 4 dimensions (N, C, H, W), or (N, H, W, "
                         f"C) with channel_last=True")
    if x1.shape != x2.shape:
        raise ValueError(f"F.patch_correlation: x1 of shape {x1.shape} and x2 of shape "
                         f"{x2.shape} must have the same shape")
    if isinstance(padding, numbers.Integral) and not isinstance(padding, bool):
        padding = (padding,) * 4
    elif hasattr(padding, "__len__") and len(padding) == 2:
        padding = (padding[0], padding[0], padding[1], padding[1])
    attrs = {}
    for name, value, count, least in (("patch", patch, 2, 1), ("shift", shift, 2, 0),
                                      ("patch_step", patch_step, 2, 1),
                                      ("shift_step", shift_step, 2, 1),
                                      ("padding", padding, 4, 0)):
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            value = (value,) * count
        value = _per_axis("patch_correlation", name, value, 0, count)
        if len(value) != count or any(v < least for v in value):
            raise ValueError(f"F.patch_correlation: {name}={value} must be {count} ints of at "
                             f"least {least}")
        attrs[name] = value
    if not channel_last:  # nnabla's: to (N, H, W, C) and back
        n, c, h, w = x1.shape
        x1, x2 = ((reshape(x, (n, h, w, 1)) if c == 1 else transpose(x, (0, 2, 3, 1)))
                  for x in (x1, x2))
    y = _record("patch_correlation", (x1, x2), **attrs)
    return y if channel_last else transpose(y, (0, 3, 4, 1, 2))
