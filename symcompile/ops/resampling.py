"""interpolate, onnx_resize, random_flip, random_shift and random_crop: arrays read at
positions that are fixed when the graph is built (interpolation, resizing) or drawn by
every forward pass (the augmentations); the primitives are in `ir.resampling`.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy

from symcompile.common.deferred import Deferred
from symcompile.ops.layout import image_layout, with_channel_last
from symcompile.ops.opdef import OpDef, registrar, sympy_number

sympy = Deferred("sympy")
P = Deferred("symcompile.ir.primitives")
I = Deferred("symcompile.ir.indexing")  # noqa: E741 - the module's short name, like P
R = Deferred("symcompile.ir.resampling")
G = Deferred("symcompile.ops.gradient_clipping")
E = Deferred("symcompile.ops.sympy_functions")

OPS: dict[str, OpDef] = {}


_register = registrar(OPS)


def source_coordinate(o: int, n: int, m: int, align_corners: bool, half_pixel: bool) -> Fraction:
    """Where output o of m reads an axis of n (nnabla 1.39's interpolate, exactly): scale =
    0 for m <= 1, else (n - 1)/(m - 1) with align_corners, n/m without; o*scale, or with
    half_pixel max(0, (o + 1/2)*scale - 1/2)."""
    if m <= 1:
        scale = Fraction(0)
    else:
        scale = Fraction(n - 1, m - 1) if align_corners else Fraction(n, m)
    if half_pixel:
        return max(Fraction(0), (o + Fraction(1, 2)) * scale - Fraction(1, 2))
    return o * scale


def nearest_source(o: int, n: int, m: int, align_corners: bool, half_pixel: bool,
                   half_pixel_for_nn: bool) -> int:
    """The element output o of m reads by nearest interpolation: floor of
    `source_coordinate`, or with half_pixel_for_nn floor((o + 1/2)*n/m) (nnabla's old
    rule), at most n - 1."""
    if half_pixel_for_nn:
        return min(math.floor((o + Fraction(1, 2)) * Fraction(n, m)), n - 1)
    return min(math.floor(source_coordinate(o, n, m, align_corners, half_pixel)), n - 1)


def _interpolate_shape(shapes, attrs):
    x, axes, sizes = shapes[0], attrs["axes"], attrs["output_size"]
    return tuple(sizes[axes.index(i)] if i in axes else d for i, d in enumerate(x))


@_register("interpolate", "Interpolate", 1, _interpolate_shape)
def _interpolate(args, attrs, ctx):
    """One resampling per axis: a `Take` (nearest) or a `LinearTake` (linear: the two
    neighbours floor(c) and min(floor(c) + 1, n - 1) of the coordinate c, weighted by
    its fraction, as exact integers over one denominator per axis)."""
    x, shape = args[0], ctx.in_shapes[0]
    flags = (attrs["align_corners"], attrs["half_pixel"])
    for axis, m in zip(attrs["axes"], attrs["output_size"], strict=True):
        n = shape[axis]
        if attrs["mode"] == "nearest":
            source = [nearest_source(o, n, m, *flags, attrs["half_pixel_for_nn"])
                      for o in range(m)]
            x = I.take(x, source, axis, ctx.shapes) if (n, m) != (1, 1) else x
            continue
        coordinates = [source_coordinate(o, n, m, *flags) for o in range(m)]
        low = [math.floor(c) for c in coordinates]
        high = [min(b + 1, n - 1) for b in low]
        scale = math.lcm(*(c.denominator for c in coordinates))
        frac = [int((c - b) * scale) for c, b in zip(coordinates, low, strict=True)]
        if not any(frac):
            x = I.take(x, low, axis, ctx.shapes)
        else:
            x = R.LinearTake(x, P.shape_tuple(low), P.shape_tuple(high), P.shape_tuple(frac),
                             sympy.Integer(scale), sympy.Integer(axis))
    return x


# --- onnx_resize: ONNX's Resize, as nnabla 1.39's ONNXResize (onnx_resize.cpp) ---------------
# Separable: each resized axis, innermost first (the order nnabla's loops add in), reads x
# at source positions with weights fixed when the graph is built, worked out in float32 as
# nnabla's C++ does (get_src_index, get_nearest_index, compute_coeffs), so the same
# elements are read with the same weights: "nearest" is a `Take`, "linear" a `LinearTake`
# (its kernel's weights are nnabla's: 1 - f and f), "cubic" one `Take` of the four
# neighbours and a sum weighted by a constant. tf_crop_and_resize writes
# extrapolation_value where the coordinate of any resized axis is outside [0, n - 1] (a
# `Select`). The value is linear in x, so its gradient is the transpose of those reads,
# weighted (nnabla 1.39's ONNXResize has no backward: it raises not_implemented).

RESIZE_MODES = ("nearest", "linear", "cubic")
COORDINATE_MODES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                    "tf_half_pixel_for_nn", "tf_crop_and_resize")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
_F32 = numpy.float32


def _quoted(names) -> str:
    return ", ".join(repr(n) for n in names)


def resize_scales(x_shape, attrs) -> tuple[tuple[int, ...], tuple]:
    """(the output shape, the float32 scale of each axis) of F.onnx_resize of an input of
    `x_shape`, after nnabla 1.39's checks (setup_impl's, in its order; ValueError). With
    `sizes` the scale is size / input size, with `scales` the output size is
    floor(input size * scale), both in float32 as nnabla computes them."""
    where = f"F.onnx_resize: input of shape {tuple(x_shape)}"
    rank, coordinate = len(x_shape), attrs["coordinate_transformation_mode"]
    if coordinate not in COORDINATE_MODES:
        raise ValueError(f"{where}: coordinate_transformation_mode={coordinate!r} is not one "
                         f"of nnabla's {_quoted(COORDINATE_MODES)}")
    if attrs["nearest_mode"] not in NEAREST_MODES:
        raise ValueError(f"{where}: nearest_mode={attrs['nearest_mode']!r} is not one of "
                         f"nnabla's {_quoted(NEAREST_MODES)} (nnabla checks it whatever "
                         f"the mode)")
    scales, sizes = attrs["scales"], attrs["sizes"]
    if bool(scales) == bool(sizes):
        raise ValueError(f"{where}: give one of scales and sizes (one entry per axis of the "
                         f"input), not {'both' if scales else 'neither'}")
    given, name = (sizes, "sizes") if sizes else (scales, "scales")
    if len(given) != rank:
        raise ValueError(f"{where}: {name}={tuple(given)} must have one entry per axis of "
                         f"the input ({rank}), as nnabla requires")
    if sizes:
        if any(s < 0 for s in sizes):
            raise ValueError(f"{where}: sizes={tuple(sizes)} must not be negative")
        out = tuple(int(s) for s in sizes)
        factors = tuple(_F32(m) / _F32(n) if n else _F32("nan")  # (0/0: nnabla's NaN)
                        for m, n in zip(out, x_shape, strict=True))
    else:
        if not all(math.isfinite(s) and s >= 0 for s in scales):
            raise ValueError(f"{where}: scales={tuple(scales)} must be finite and not "
                             f"negative (nnabla 1.39 crashes on a negative one)")
        factors = tuple(_F32(s) for s in scales)
        out = tuple(int(math.floor(_F32(n) * f)) for n, f in zip(x_shape, factors, strict=True))
    if any(n == 0 and m for n, m in zip(x_shape, out, strict=True)):
        raise ValueError(f"{where}: an empty axis cannot be resized to {out}")
    outer = next((i for i, f in enumerate(factors) if f != 1), rank)
    if not 1 <= rank - outer <= 3:
        what = ("every scale is 1: nothing to resize" if outer == rank else
                f"axes {outer} to {rank - 1} are resized (from the first whose scale is not "
                f"1 to the last: {rank - outer})")
        raise ValueError(f"{where}: {what}; nnabla 1.39 resizes 1, 2 or 3 trailing axes "
                         f"(those before them must keep their size)")
    if attrs["mode"] not in RESIZE_MODES:
        raise ValueError(f"{where}: mode={attrs['mode']!r} is not one of nnabla's "
                         f"{_quoted(RESIZE_MODES)}")
    if coordinate == "tf_crop_and_resize":
        roi = attrs["roi"]
        if len(roi) != 2 * rank:
            raise ValueError(f"{where}: roi={tuple(roi)} must hold {2 * rank} numbers for "
                             f"tf_crop_and_resize (the starts of every axis, then their "
                             f"ends, as fractions of the axis)")
        if any((_F32(roi[i]), _F32(roi[rank + i])) != (0, 1) for i in range(outer)):
            raise ValueError(f"{where}: roi={tuple(roi)} must be (0, 1) on the axes not "
                             f"resized (0 to {outer - 1}), as nnabla requires")
    return out, factors


def _source_coordinate(mode: str, scale, o: int, m: int, n: int, start, end):
    """get_src_index: where output o of m reads an axis of n, in float32; an axis of
    scale 1 reads o whatever the mode."""
    x, length, original, half, one = _F32(o), _F32(m), _F32(n), _F32(0.5), _F32(1)
    if scale == one:
        return x
    if mode == "half_pixel":
        return (x + half) / scale - half
    if mode == "pytorch_half_pixel":
        return (x + half) / scale - half if length > one else _F32(0)
    if mode == "align_corners":
        return _F32(0) if length == one else x * (original - one) / (length - one)
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_half_pixel_for_nn":
        return (x + half) / scale
    start, end = _F32(start), _F32(end)  # tf_crop_and_resize
    if length > one:
        return start * (original - one) + x * (end - start) * (original - one) / (length - one)
    return half * (start + end) * (original - one)


def _rounded(c, nearest_mode: str) -> int:
    """get_nearest_index: c rounded by `nearest_mode` (std::round: halves away from 0)."""
    if nearest_mode == "floor":
        return math.floor(c)
    if nearest_mode == "ceil":
        return math.ceil(c)
    if nearest_mode == "round_prefer_floor" and float(c) == math.floor(c) + 0.5:
        return math.floor(c)
    return int(math.copysign(math.floor(abs(float(c)) + 0.5), c))


def _cubic_weights(c, n: int, a, exclude_outside: bool) -> list:
    """CubicInterpolation::compute_coeffs: Keys' weights (coefficient a) of the neighbours
    floor(c) - 1 .. floor(c) + 2 of c, in float32; with exclude_outside those outside the
    axis get 0 and the rest are divided by their sum."""
    a = _F32(a)

    def near(t):  # |t| <= 1
        return (a + _F32(2)) * (t * t * t) - (a + _F32(3)) * (t * t) + _F32(1)

    def far(t):  # 1 <= |t| <= 2
        return a * (t * t * t) - _F32(5) * a * (t * t) + _F32(8) * a * t - _F32(4) * a

    f = c - _F32(math.floor(c))
    weights = [far(_F32(1) + f), near(f), near(_F32(1) - f), far(_F32(2) - f)]
    if exclude_outside:
        low = math.floor(c) - 1
        weights = [w if 0 <= low + k < n else _F32(0) for k, w in enumerate(weights)]
        total = weights[0] + weights[1] + weights[2] + weights[3]
        weights = [w / total for w in weights]
    return weights


def resize_axis(n: int, m: int, scale, attrs, start=0.0, end=1.0):
    """How F.onnx_resize resizes an axis of n to m: (the elements each output reads, one
    list of m per tap; their float32 weights, per tap, or None for nearest; whether each
    output's coordinate is inside [0, n - 1], which only tf_crop_and_resize asks).
    Linear reads x0 = clamp(floor(c)) and clamp(floor(c) + 1) with weights 1 - (c - x0)
    and c - x0; cubic floor(c) - 1 .. floor(c) + 2, clamped."""
    mode, crop = attrs["mode"], attrs["coordinate_transformation_mode"] == "tf_crop_and_resize"
    taps = {"nearest": 1, "linear": 2, "cubic": 4}[mode]
    indices, weights, inside = [[] for _ in range(taps)], [[] for _ in range(taps)], []
    for o in range(m):
        c = _source_coordinate(attrs["coordinate_transformation_mode"], scale, o, m, n, start,
                               end)
        inside.append(not crop or 0 <= c <= n - 1)
        if mode == "nearest":
            reads, values = [_rounded(c, attrs["nearest_mode"])], [_F32(1)]
        elif not inside[-1]:  # extrapolation_value there: read nothing
            reads, values = [0] * taps, [_F32(0)] * taps
        elif mode == "linear":
            low = min(max(math.floor(c), 0), n - 1)
            reads = [math.floor(c), math.floor(c) + 1]
            values = [_F32(1) - (c - _F32(low)), c - _F32(low)]
        else:
            reads = [math.floor(c) + k for k in (-1, 0, 1, 2)]
            values = _cubic_weights(c, n, attrs["cubic_coeff_a"], attrs["exclude_outside"])
        for k in range(taps):
            indices[k].append(min(max(reads[k], 0), n - 1))
            weights[k].append(values[k])
    return indices, (None if mode == "nearest" else weights), inside


def _fractions(values) -> tuple[list[int], int]:
    """Float32 numbers as exact integers over one denominator (a power of 2)."""
    exact = [Fraction(float(v)) for v in values]
    scale = math.lcm(*(f.denominator for f in exact))
    return [int(f * scale) for f in exact], scale


def _constant_vector(values):
    """The float32 `values` as a constant vector: a `LinearTake` of [0, 1], each output
    (1 - w)*0 + w*1 = w exactly."""
    frac, scale = _fractions(values)
    unit = P.Arange(sympy.Integer(0), sympy.Integer(1), sympy.Integer(2))
    return R.LinearTake(unit, P.shape_tuple([0] * len(values)), P.shape_tuple([1] * len(values)),
                        P.shape_tuple(frac), sympy.Integer(scale), sympy.Integer(0))


def _resized_axis(x, indices, weights, axis: int, shapes):
    """x read along `axis` by the taps of `resize_axis`."""
    if weights is None:  # nearest
        return I.take(x, indices[0], axis, shapes)
    if len(indices) == 2:  # linear: LinearTake's weights are 1 - w and w, as nnabla's
        frac, scale = _fractions(weights[1])
        if not any(frac):
            return I.take(x, indices[0], axis, shapes)
        return R.LinearTake(x, P.shape_tuple(indices[0]), P.shape_tuple(indices[1]),
                            P.shape_tuple(frac), sympy.Integer(scale), sympy.Integer(axis))
    taps = [k for k, w in enumerate(weights) if any(w)]  # cubic: the 4 taps, less unused
    if len(taps) == 1 and all(w == 1 for w in weights[taps[0]]):
        return I.take(x, indices[taps[0]], axis, shapes)
    shape, m = shapes.of(x), len(indices[0])
    spread = shape[:axis] + (len(taps), m) + shape[axis + 1:]
    read = I.take(x, [i for k in taps for i in indices[k]], axis, shapes)
    w = _constant_vector([v for k in taps for v in weights[k]])
    w = P.reshape(w, (1,) * axis + (len(taps), m) + (1,) * (len(shape) - axis - 1), shapes)
    return P.reduce_sum(P.reshape(read, spread, shapes) * w, (axis,), False, spread, shapes)


def _onnx_resize_shape(shapes, attrs):
    return resize_scales(shapes[0], attrs)[0]


@_register("onnx_resize", "ONNXResize", 1, _onnx_resize_shape)
def _onnx_resize(args, attrs, ctx):
    """One resampling per axis whose scale is not 1 (`resize_axis`), the last first; then,
    for tf_crop_and_resize, extrapolation_value where a coordinate is outside."""
    x, shape, out, shapes = args[0], ctx.in_shapes[0], ctx.out_shape, ctx.shapes
    rank, roi = len(shape), attrs["roi"]
    crop = attrs["coordinate_transformation_mode"] == "tf_crop_and_resize"
    if 0 in out:
        return P.Full(sympy.Integer(0), P.shape_tuple(out))
    inside = sympy.Integer(1)
    for axis, scale in reversed(list(enumerate(resize_scales(shape, attrs)[1]))):
        if scale == 1:
            continue
        ends = (roi[axis], roi[rank + axis]) if crop else (0.0, 1.0)
        indices, weights, kept = resize_axis(shape[axis], out[axis], scale, attrs, *ends)
        x = _resized_axis(x, indices, weights, axis, shapes)
        if not all(kept):  # 1 where kept, 0 where not: a Take of [0, 1]
            unit = P.Arange(sympy.Integer(0), sympy.Integer(1), sympy.Integer(2))
            mask = I.take(unit, [int(k) for k in kept], 0, shapes)
            inside = inside * P.reshape(mask, (1,) * axis + (out[axis],)
                                        + (1,) * (rank - axis - 1), shapes)
    if inside == 1:
        return x
    value = sympy_number(float(_F32(attrs["extrapolation_value"])))
    return E.Select(inside, x, value)


# --- random flips, shifts and crops ---------------------------------------------------------
# Each draws one number in [0, 1) per sample (the axes before base_axis) and axis from
# base_axis on, anew in every forward pass (a `UniformDraw`, which the lowering pass gives
# an array of its own, so the backward pass reads the same choice), and reads x where the
# choice says (`ChosenTake`; its gradient adds dy back there).

_KINDS = {"random_flip": 0, "random_shift": 1, "random_crop": 2}
BORDER_MODES = {"nearest": 0, "reflect": 1, "constant": 2}


def _random_shape(shapes, attrs):
    return shapes[0][:attrs["base_axis"]] + tuple(attrs["sizes"])


def _random_choice(name: str):
    def lower(args, attrs, ctx):
        shape, base = ctx.in_shapes[0], attrs["base_axis"]
        draw = P.UniformDraw(P.shape_tuple((math.prod(shape[:base]), len(shape) - base)),
                             sympy.Integer(0), sympy.Integer(1), sympy.Integer(0))
        return R.ChosenTake(args[0], draw, sympy.Integer(_KINDS[name]), sympy.Integer(base),
                            P.shape_tuple(attrs["sizes"]), P.shape_tuple(attrs["shifts"]),
                            sympy.Integer(BORDER_MODES[attrs.get("border_mode", "nearest")]),
                            attrs.get("constant_value", sympy.Integer(0)))

    return lower


for _name, _type in (("random_flip", "RandomFlip"), ("random_shift", "RandomShift"),
                     ("random_crop", "RandomCrop")):
    _register(_name, _type, 1, _random_shape)(_random_choice(_name))


# --- random choice: samples of each population drawn with its weights ------------------------
# x and w (..., n): each of the prod(...) populations gives prod(shape) samples, positions
# drawn anew in every forward pass (uniform draws, saved for the backward pass, turned
# into positions by the weights: `ChoiceIndices`), read from x. The gradient adds dy back
# into x where each sample was read and, as nnabla's, into w at the same places.

def _random_choice_shape(shapes, attrs):
    return shapes[0][:-1] + tuple(attrs["shape"])


def _random_choice_samples(args, attrs, ctx):
    x_shape = ctx.in_shapes[0]
    rows, n, count = math.prod(x_shape[:-1]), x_shape[-1], math.prod(attrs["shape"])
    population = P.reshape(G.SharedGradient(args[0], args[1]), (rows, n), ctx.shapes)
    weights = P.reshape(args[1], (rows, n), ctx.shapes)
    draw = P.UniformDraw(P.shape_tuple((rows, count if attrs["replace"] else n)),
                         sympy.Integer(0), sympy.Integer(1), sympy.Integer(0))
    positions = R.ChoiceIndices(weights, draw, sympy.Integer(int(attrs["replace"])),
                                sympy.Integer(count))
    return P.reshape(R.RowTake(population, positions), ctx.out_shape, ctx.shapes)


_register("random_choice", "RandomChoice", 2, _random_choice_shape)(_random_choice_samples)


# --- random erasing: rectangles replaced by uniform noise ------------------------------------
# x (*samples, C, H, W): `n` rounds of one rectangle per sample (per channel too, unless
# `share`), each applied with probability `prob` (`EraseMask`, from five uniform draws per
# rectangle), its pixels replaced by uniform draws in `replacements`. The gradient is dy
# outside the rectangles, 0 inside (ste_fine_grained, nnabla's default), or dy everywhere.

def _random_erase(args, attrs, ctx):
    x_shape = ctx.in_shapes[0]
    base = attrs["base_axis"]
    images = (math.prod(x_shape[:base]),) + tuple(x_shape[base:])
    channels = 1 if attrs["share"] else images[1]
    coordinates = P.UniformDraw(P.shape_tuple((attrs["n"], images[0], channels, 5)),
                                sympy.Integer(0), sympy.Integer(1), sympy.Integer(0))
    low, high = attrs["replacements"]
    noise = P.UniformDraw(P.shape_tuple(x_shape), sympy_number(low), sympy_number(high),
                          sympy.Integer(1))  # (its own tag: never the same draw as above)
    mask = R.EraseMask(coordinates, sympy_number(attrs["prob"]),
                       sympy.Tuple(*map(sympy_number, attrs["area_ratios"])),
                       sympy.Tuple(*map(sympy_number, attrs["aspect_ratios"])),
                       P.shape_tuple(images))
    erased = E.Select(P.reshape(mask, x_shape, ctx.shapes), noise, args[0])
    return erased if attrs["ste_fine_grained"] else G.StraightThrough(erased, args[0])


_register("random_erase", "RandomErase", 1, lambda shapes, attrs: shapes[0])(_random_erase)
OPS["random_erase"] = with_channel_last(OPS["random_erase"], image_layout)  # (NHWC)
