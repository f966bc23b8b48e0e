"""ONNX's Resize, written from the operator's specification (onnx/docs/Operators.md,
Resize-11 to -19), with NumPy alone and one output element at a time, in float64: the
independent reference of F.onnx_resize's tests (test_onnx_resize.py, random_graphs.py).

`resize` is the specification's operator, with Resize-18's `axes` (the axes that
`scales`, `sizes` and `roi` describe; the others are not resized). `nnabla_resize` takes
nnabla 1.39's arguments and says, in ONNX's terms, what nnabla's ONNXResize computes:

- the axes resized are those whose scale is not 1 (nnabla leaves an axis of scale 1 as
  it is, whatever the coordinate mode: Resize-18 with those axes left out);
- with `scales` and tf_crop_and_resize the output size is floor(size * scale), where
  the specification has floor(size * (roi_end - roi_start) * scale).
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def original_coordinate(mode: str, o: int, m: int, n: int, scale: float, start: float,
                        end: float) -> float:
    """The specification's coordinate_transformation_mode: where output o of an axis of m
    lies on the input axis of n."""
    if mode == "half_pixel":
        return (o + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (o + 0.5) / scale - 0.5 if m > 1 else 0.0
    if mode == "align_corners":
        return 0.0 if m == 1 else o * (n - 1) / (m - 1)
    if mode == "asymmetric":
        return o / scale
    if mode == "tf_half_pixel_for_nn":  # (Resize-11)
        return (o + 0.5) / scale
    if mode == "tf_crop_and_resize":
        if m > 1:
            return start * (n - 1) + o * (end - start) * (n - 1) / (m - 1)
        return 0.5 * (start + end) * (n - 1)
    raise ValueError(mode)


def nearest(c: float, nearest_mode: str) -> int:
    """The specification's nearest_mode: c rounded half down, half up, down or up."""
    low = math.floor(c)
    if nearest_mode == "floor":
        return low
    if nearest_mode == "ceil":
        return math.ceil(c)
    if c - low == 0.5:
        return low if nearest_mode == "round_prefer_floor" else low + 1
    return round(c)


def keys(d: float, a: float) -> float:
    """The cubic convolution kernel (Keys, 1981) of coefficient a, at distance d."""
    d = abs(d)
    if d <= 1:
        return (a + 2) * d**3 - (a + 3) * d**2 + 1
    if d < 2:
        return a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a
    return 0.0


def taps(c: float, n: int, mode: str, nearest_mode: str, a: float,
         exclude_outside: bool) -> list[tuple[int, float]]:
    """(input element, weight) pairs that one output reads along one axis: the nearest
    element, the 2 neighbours of c (linear) or the 4 (cubic); elements past the ends read
    the edge's, or with exclude_outside get no weight, the others renormalized."""
    if mode == "nearest":
        return [(min(max(nearest(c, nearest_mode), 0), n - 1), 1.0)]
    low = math.floor(c)
    if mode == "linear":
        near = [(low, 1 - (c - low)), (low + 1, c - low)]
    else:
        near = [(i, keys(c - i, a)) for i in range(low - 1, low + 3)]
    if exclude_outside:
        near = [(i, w if 0 <= i < n else 0.0) for i, w in near]
        total = sum(w for _, w in near)
        near = [(i, w / total) for i, w in near]
    return [(min(max(i, 0), n - 1), w) for i, w in near]


def resize(x, scales=None, sizes=None, roi=None, axes=None, mode="nearest",
           coordinate_transformation_mode="half_pixel", cubic_coeff_a=-0.75,
           exclude_outside=0, extrapolation_value=0.0,
           nearest_mode="round_prefer_floor") -> np.ndarray:
    """ONNX's Resize of x: `scales` or `sizes` (and `roi`, the starts then the ends, as
    fractions) for each of `axes` (default all). Each output element is the sum over
    the resized axes' taps of the product of their weights times the element they read
    (separable N-linear / N-cubic interpolation); with tf_crop_and_resize it is
    extrapolation_value where a coordinate falls outside [0, n - 1]."""
    x = np.asarray(x, dtype=np.float64)
    axes = list(range(x.ndim)) if axes is None else list(axes)
    k = len(axes)
    roi = list(roi) if roi is not None else [0.0] * k + [1.0] * k
    out_shape = list(x.shape)
    factor = {}
    for j, axis in enumerate(axes):
        n = x.shape[axis]
        if sizes is not None:
            out_shape[axis] = int(sizes[j])
            factor[axis] = sizes[j] / n
        else:
            crop = coordinate_transformation_mode == "tf_crop_and_resize"
            extent = roi[k + j] - roi[j] if crop else 1.0
            out_shape[axis] = math.floor(n * extent * scales[j])
            factor[axis] = scales[j]
    y = np.empty(out_shape)
    for position in np.ndindex(*out_shape):
        per_axis, outside = [], False
        for j, axis in enumerate(axes):
            n, m = x.shape[axis], out_shape[axis]
            c = original_coordinate(coordinate_transformation_mode, position[axis], m, n,
                                    factor[axis], roi[j], roi[k + j])
            if coordinate_transformation_mode == "tf_crop_and_resize" and not 0 <= c <= n - 1:
                outside = True
                break
            per_axis.append(taps(c, n, mode, nearest_mode, cubic_coeff_a,
                                 bool(exclude_outside)))
        if outside:
            y[position] = extrapolation_value
            continue
        total = 0.0
        for combination in itertools.product(*per_axis):
            source, weight = list(position), 1.0
            for axis, (i, w) in zip(axes, combination, strict=True):
                source[axis] = i
                weight *= w
            total += weight * x[tuple(source)]
        y[position] = total
    return y


def nnabla_resize(x, roi=(), scales=(), sizes=(), mode="nearest",
                  coordinate_transformation_mode="half_pixel", cubic_coeff_a=-0.75,
                  exclude_outside=0, extrapolation_value=0.0,
                  nearest_mode="round_prefer_floor") -> np.ndarray:
    """What nnabla's F.onnx_resize (its arguments: one entry of scales or sizes per axis
    of x, roi the starts then the ends of all axes) computes, as ONNX's Resize: the axes
    of scale 1 left out of `axes`, and, with scales and tf_crop_and_resize, the output
    size floor(size * scale) (given as sizes: those coordinates do not use the scale)."""
    x = np.asarray(x, dtype=np.float64)
    rank = x.ndim
    given = list(sizes) if len(sizes) else list(scales)
    factors = [s / n for s, n in zip(given, x.shape, strict=True)] if len(sizes) else given
    axes = [a for a in range(rank) if factors[a] != 1]
    crop = coordinate_transformation_mode == "tf_crop_and_resize"
    if crop and not len(sizes):
        sizes = [math.floor(n * s) for n, s in zip(x.shape, scales, strict=True)]
    kw = {"sizes": [sizes[a] for a in axes]} if len(sizes) else {
        "scales": [scales[a] for a in axes]}
    if crop:
        kw["roi"] = [roi[a] for a in axes] + [roi[rank + a] for a in axes]
    return resize(x, axes=axes, mode=mode,
                  coordinate_transformation_mode=coordinate_transformation_mode,
                  cubic_coeff_a=cubic_coeff_a, exclude_outside=exclude_outside,
                  extrapolation_value=extrapolation_value, nearest_mode=nearest_mode, **kw)
