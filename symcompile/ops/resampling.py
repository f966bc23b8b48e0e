"""interpolate, random_flip, random_shift and random_crop: arrays read at positions that
are fixed when the graph is built (interpolation) or drawn by every forward pass (the
augmentations); the primitives are in `ir.resampling`.
"""

from __future__ import annotations

import math
from fractions import Fraction

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
