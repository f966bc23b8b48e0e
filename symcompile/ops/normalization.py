"""Normalization layers, written as formulas over reductions.

Batch normalization is the mean and variance of `x` over every axis but `axes` and one
elementwise expression of them, so its gradient is SymPy's derivative of that formula
through the sums' VJPs (nnabla's hand-written backward is the same algebra), and the
batch statistics are shared, by the common-subexpression pass, between the output and
the running statistics the forward pass updates (`OpDef.running`).
"""

from __future__ import annotations

import math

from symcompile.common.deferred import Deferred
from symcompile.ops.opdef import OpDef

sympy = Deferred("sympy")
P = Deferred("symcompile.ir.primitives")

OPS: dict[str, OpDef] = {}


def batch_normalization_inputs(attrs) -> dict[str, int]:
    """The position of each input the node has: x, then beta (unless no_bias), gamma
    (unless no_scale), and the running mean and variance (if given)."""
    names = ["x"]
    names += [] if attrs["no_bias"] else ["beta"]
    names += [] if attrs["no_scale"] else ["gamma"]
    names += ["mean", "variance"] if attrs["running"] else []
    return {name: position for position, name in enumerate(names)}


def statistics_shape(x_shape: tuple[int, ...], axes) -> tuple[int, ...]:
    """The shape of beta, gamma and the statistics: x's along `axes`, 1 elsewhere."""
    return tuple(d if i in axes else 1 for i, d in enumerate(x_shape))


def _reduced_count(x_shape, axes) -> int:
    return math.prod(d for i, d in enumerate(x_shape) if i not in axes)


def _batch_normalization_shape(shapes, attrs):
    x, axes = shapes[0], attrs["axes"]
    expected = statistics_shape(x, axes)
    positions = batch_normalization_inputs(attrs)
    if len(shapes) != len(positions):
        raise ValueError(f"F.batch_normalization: {len(shapes)} inputs given, "
                         f"{len(positions)} expected ({', '.join(positions)})")
    for name, position in positions.items():
        if name != "x" and shapes[position] != expected:
            raise ValueError(
                f"F.batch_normalization: {name} of shape {shapes[position]} does not fit the "
                f"input of shape {x} with axes={list(axes)}; it must have shape {expected} "
                f"(the input's length along axes, 1 elsewhere)")
    count = _reduced_count(x, axes)
    if attrs["batch_stat"] and count < 2 and attrs["running"]:
        raise ValueError(
            f"F.batch_normalization: the input of shape {x} has {count} element per "
            f"statistic (axes={list(axes)}), and the running variance's unbiased update "
            f"divides by (elements - 1): give a batch of at least 2, or batch_stat=False")
    return x


def _batch_statistics(x, x_shape, axes, shapes):
    """The batch mean and (biased) variance of `x` over the axes not in `axes`, shaped
    like the statistics, and the number of elements each one is over."""
    return _statistics(x, x_shape, tuple(i for i in range(len(x_shape)) if i not in axes),
                       shapes)


def _statistics(x, x_shape, reduced, shapes):
    """The mean and (biased) variance of `x` over the axes `reduced`, kept as axes of
    length 1, and the number of elements each one is over."""
    count = math.prod(x_shape[i] for i in reduced)
    mean = P.reduce_sum(x, reduced, True, x_shape, shapes) / count
    # d variance / d mean = -2 mean(x - mean) = 0: the mean is a constant here, so that
    # the gradient has no term SymPy cannot see is zero
    centered = x - P.StopGradient(mean)
    variance = P.reduce_sum(centered ** 2, reduced, True, x_shape, shapes) / count
    return mean, variance, count


def _batch_normalization(args, attrs, ctx):
    """y = (x - mean) / sqrt(variance + eps) * gamma + beta, with the batch's statistics
    (batch_stat) or the running ones, which then get no gradient (as in nnabla)."""
    positions = batch_normalization_inputs(attrs)
    x, axes = args[0], attrs["axes"]
    if attrs["batch_stat"]:
        mean, variance, _ = _batch_statistics(x, ctx.in_shapes[0], axes, ctx.shapes)
    else:
        mean = P.StopGradient(args[positions["mean"]])
        variance = P.StopGradient(args[positions["variance"]])
    y = (x - mean) / sympy.sqrt(variance + attrs["eps"])
    if "gamma" in positions:
        y = y * args[positions["gamma"]]
    if "beta" in positions:
        y = y + args[positions["beta"]]
    return y


def _batch_normalization_running(args, attrs, ctx):
    """nnabla's update of the running statistics in training mode: an exponential moving
    average with `decay_rate`, of the mean and of the unbiased variance (var * M/(M-1))."""
    if not (attrs["batch_stat"] and attrs["running"]):
        return {}
    positions = batch_normalization_inputs(attrs)
    mean, variance, count = _batch_statistics(args[0], ctx.in_shapes[0], attrs["axes"],
                                              ctx.shapes)
    # the decay as the decimal it was written as (0.9 = 9/10), so that its coefficients
    # stay exact: 0.1 * sum(x) / 16 prints as sum(x)/160, not as 0.006249999999999999
    decay = sympy.Rational(repr(float(attrs["decay_rate"])))
    old_mean, old_variance = args[positions["mean"]], args[positions["variance"]]
    unbiased = variance * sympy.Rational(count, count - 1)
    rest = 1 - decay
    d, r = float(decay), float(rest)
    return {
        positions["mean"]: (decay * old_mean + rest * mean,
                            f"running mean = {d!r} * mean + {r!r} * batch mean"),
        positions["variance"]: (decay * old_variance + rest * unbiased,
                                f"running variance = {d!r} * variance + {r!r} * batch variance"
                                f" * {count}/{count - 1} (unbiased)"),
    }


OPS["batch_normalization"] = OpDef(
    "batch_normalization", "BatchNormalization", 5, False, _batch_normalization_shape,
    _batch_normalization, running=_batch_normalization_running, array_inputs=True)



# --- layer, instance and group normalization ------------------------------------------------
# Statistics of each sample (never of the batch), so nothing runs between calls; beta and
# gamma (either may be absent) broadcast over x at equal rank.

def scale_inputs(attrs) -> dict[str, int]:
    """The positions of x, beta (unless no_bias) and gamma (unless no_scale)."""
    names = ["x"] + ([] if attrs["no_bias"] else ["beta"]) + ([] if attrs["no_scale"]
                                                              else ["gamma"])
    return {name: position for position, name in enumerate(names)}


def _kept_axes(function: str, attrs) -> tuple[int, ...]:
    if function == "layer_normalization":
        return attrs["batch_axis"]
    return tuple(sorted({*attrs["batch_axis"], attrs["channel_axis"]}))


def _scaled_shape(function: str):
    def infer(shapes, attrs):
        x = shapes[0]
        positions = scale_inputs(attrs)
        for name, position in positions.items():
            shape = shapes[position]
            if name != "x" and (len(shape) != len(x) or any(
                    d not in (1, n) for d, n in zip(shape, x, strict=True))):
                raise ValueError(
                    f"F.{function}: {name} of shape {shape} does not broadcast to the input "
                    f"of shape {x}: give it the input's rank, each axis 1 or the input's")
        if function == "group_normalization":
            channels, groups = x[attrs["channel_axis"]], attrs["num_groups"]
            if groups < 1 or channels % groups:
                raise ValueError(
                    f"F.group_normalization: num_groups={groups} must divide the "
                    f"{channels} channels (axis {attrs['channel_axis']} of the input of "
                    f"shape {x})")
        return x

    return infer


def _scaled(y, args, attrs):
    positions = scale_inputs(attrs)
    if "gamma" in positions:
        y = y * args[positions["gamma"]]
    if "beta" in positions:
        y = y + args[positions["beta"]]
    return y


def _standardized(x, x_shape, reduced, eps, shapes):
    """(x - mean) / sqrt(variance + eps) over the axes `reduced`."""
    mean, variance, _ = _statistics(x, x_shape, reduced, shapes)
    return (x - mean) / sympy.sqrt(variance + eps)


def _layer_or_instance(function: str):
    def lower(args, attrs, ctx):
        x_shape = ctx.in_shapes[0]
        kept = _kept_axes(function, attrs)
        reduced = tuple(i for i in range(len(x_shape)) if i not in kept)
        y = _standardized(args[0], x_shape, reduced, attrs["eps"], ctx.shapes) \
            if reduced else args[0] * 0
        return _scaled(y, args, attrs)

    return lower


def _group_normalization(args, attrs, ctx):
    """The channel axis split into (num_groups, channels per group); each sample's
    statistics over each group's channels and every axis but the batch axes."""
    x_shape = ctx.in_shapes[0]
    axis, groups = attrs["channel_axis"], attrs["num_groups"]
    split = x_shape[:axis] + (groups, x_shape[axis] // groups) + x_shape[axis + 1:]
    batch = {b if b < axis else b + 1 for b in attrs["batch_axis"]}
    reduced = tuple(i for i in range(len(split)) if i not in batch and i != axis)
    grouped = P.reshape(args[0], split, ctx.shapes)
    y = P.reshape(_standardized(grouped, split, reduced, attrs["eps"], ctx.shapes), x_shape,
                  ctx.shapes)
    return _scaled(y, args, attrs)


for _name, _type, _lower in (
        ("layer_normalization", "LayerNormalization", _layer_or_instance("layer_normalization")),
        ("instance_normalization", "InstanceNormalization",
         _layer_or_instance("instance_normalization")),
        ("group_normalization", "GroupNormalization", _group_normalization)):
    OPS[_name] = OpDef(_name, _type, 3, False, _scaled_shape(_name), _lower,
                       array_inputs=True)
