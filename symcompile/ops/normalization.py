"""Normalization layers, written as formulas over reductions.

Batch normalization is the mean and variance of `x` over every axis but `axes` and one
elementwise expression of them, so its gradient is SymPy's derivative of that formula
through the sums' VJPs (nnabla's hand-written backward is the same algebra), and the
batch statistics are shared, by the common-subexpression pass, between the output and
the running statistics the forward pass updates (`OpDef.running`).

The other normalizations are formulas too (fused batch normalization; layer, instance
and group normalization; weight standardization; norm and weight normalization); mean subtraction's
running mean and spectral normalization's vector u are running statistics like batch
normalization's; the gradient clipping functions, whose backward is no derivative, are
primitives with their own VJPs (`gradient_clipping`).
"""

from __future__ import annotations

import math

from symcompile.common.deferred import Deferred
from symcompile.ops.opdef import OpDef

sympy = Deferred("sympy")
C = Deferred("symcompile.ops.gradient_clipping")
E = Deferred("symcompile.ops.sympy_functions")
I = Deferred("symcompile.ir.indexing")  # noqa: E741 - the module's short name, like P
K = Deferred("symcompile.ir.collectives")
P = Deferred("symcompile.ir.primitives")

OPS: dict[str, OpDef] = {}


def batch_normalization_inputs(attrs) -> dict[str, int]:
    """The position of each input the node has: x, then beta (unless no_bias), gamma
    (unless no_scale), the running mean and variance (if given) and fused batch
    normalization's residual z (if given)."""
    names = ["x"]
    names += [] if attrs["no_bias"] else ["beta"]
    names += [] if attrs["no_scale"] else ["gamma"]
    names += ["mean", "variance"] if attrs["running"] else []
    names += ["z"] if attrs.get("residual") else []  # (fused_batch_normalization's)
    return {name: position for position, name in enumerate(names)}


def statistics_shape(x_shape: tuple[int, ...], axes) -> tuple[int, ...]:
    """The shape of beta, gamma and the statistics: x's along `axes`, 1 elsewhere."""
    return tuple(d if i in axes else 1 for i, d in enumerate(x_shape))


def _reduced_count(x_shape, axes) -> int:
    return math.prod(d for i, d in enumerate(x_shape) if i not in axes)


def _batch_normalization_shape(shapes, attrs, function="batch_normalization"):
    x, axes = shapes[0], attrs["axes"]
    expected = statistics_shape(x, axes)
    positions = batch_normalization_inputs(attrs)
    if len(shapes) != len(positions):
        raise ValueError(f"F.{function}: {len(shapes)} inputs given, "
                         f"{len(positions)} expected ({', '.join(positions)})")
    for name, position in positions.items():
        if name not in ("x", "z") and shapes[position] != expected:
            raise ValueError(
                f"F.{function}: {name} of shape {shapes[position]} does not fit the "
                f"input of shape {x} with axes={list(axes)}; it must have shape {expected} "
                f"(the input's length along axes, 1 elsewhere)")
    count = _reduced_count(x, axes)
    # (sync: the count over every process, unknown here, may be larger)
    if attrs["batch_stat"] and count < 2 and attrs["running"] \
            and function != "sync_batch_normalization":
        raise ValueError(
            f"F.{function}: the input of shape {x} has {count} element per "
            f"statistic (axes={list(axes)}), and the running variance's unbiased update "
            f"divides by (elements - 1): give a batch of at least 2, or batch_stat=False")
    return x


def _batch_statistics(x, x_shape, axes, ctx):
    """The batch mean and (biased) variance of `x` over the axes not in `axes`, shaped
    like the statistics, and the number of elements each one is over."""
    return _statistics(x, x_shape, tuple(i for i in range(len(x_shape)) if i not in axes), ctx)


def _statistics(x, x_shape, reduced, ctx):
    """The mean and (biased) variance of `x` over the axes `reduced`, kept as axes of
    length 1, and the number of elements each one is over."""
    count = math.prod(x_shape[i] for i in reduced)
    mean = P.reduce_sum(x, reduced, True, x_shape, ctx.shapes) / count
    # d variance / d mean = -2 mean(x - mean) = 0: the mean is a constant here, so that
    # the gradient has no term SymPy cannot see is zero. Not when the gradient is
    # differentiated again: it would keep the mean constant, where the second derivative
    # needs d mean / d x (the term's own derivative is 0 only where it is, to all orders)
    centered = x - (mean if ctx.differentiated_twice else P.StopGradient(mean))
    variance = P.reduce_sum(centered ** 2, reduced, True, x_shape, ctx.shapes) / count
    return mean, variance, count


def _batch_normalization(args, attrs, ctx):
    """y = (x - mean) / sqrt(variance + eps) * gamma + beta, with the batch's statistics
    (batch_stat) or the running ones, which then get no gradient (as in nnabla); with a
    `group` (sync_batch_normalization) the batch statistics are those of every process's
    batch, and beta and gamma are shared by the processes (their gradients summed)."""
    positions = batch_normalization_inputs(attrs)
    x, axes = args[0], attrs["axes"]
    group = attrs.get("group") if attrs["batch_stat"] else None
    if group is not None:
        mean, variance, _ = sync_statistics(x, ctx.in_shapes[0], axes, group, ctx)
    elif attrs["batch_stat"]:
        mean, variance, _ = _batch_statistics(x, ctx.in_shapes[0], axes, ctx)
    else:
        mean = P.StopGradient(args[positions["mean"]])
        variance = P.StopGradient(args[positions["variance"]])

    def parameter(name):
        value = args[positions[name]]
        return value if group is None else K.ProcessShared(value, K.group_name(group))

    y = (x - mean) / sympy.sqrt(variance + attrs["eps"])
    if "gamma" in positions:
        y = y * parameter("gamma")
    if "beta" in positions:
        y = y + parameter("beta")
    return y


def _batch_normalization_running(args, attrs, ctx):
    """nnabla's update of the running statistics in training mode: an exponential moving
    average with `decay_rate`, of the mean and of the unbiased variance (var * M/(M-1));
    with a `group`, of every process's batch (var * n/(n - 1), n their elements)."""
    if not (attrs["batch_stat"] and attrs["running"]):
        return {}
    if "group" in attrs:
        mean, variance, n = sync_statistics(args[0], ctx.in_shapes[0], attrs["axes"],
                                            attrs["group"], ctx)
        return _moving_averages(args, attrs, mean, variance * n / (n - 1),
                                "the processes' mean",
                                "the processes' variance * n/(n - 1), n their elements")
    mean, variance, count = _batch_statistics(args[0], ctx.in_shapes[0], attrs["axes"], ctx)
    return _moving_averages(args, attrs, mean, variance * sympy.Rational(count, count - 1),
                            "batch mean", f"batch variance * {count}/{count - 1} (unbiased)")


def _moving_averages(args, attrs, mean, unbiased, mean_text: str, variance_text: str):
    """The running mean and variance's new values, decay_rate * old + (1 - decay_rate) *
    `mean` or `unbiased` (the texts say what those are), by input position."""
    positions = batch_normalization_inputs(attrs)
    # the decay as the decimal it was written as (0.9 = 9/10), so that its coefficients
    # stay exact: 0.1 * sum(x) / 16 prints as sum(x)/160, not as 0.006249999999999999
    decay = sympy.Rational(repr(float(attrs["decay_rate"])))
    old_mean, old_variance = args[positions["mean"]], args[positions["variance"]]
    rest = 1 - decay
    d, r = float(decay), float(rest)
    return {
        positions["mean"]: (decay * old_mean + rest * mean,
                            f"running mean = {d!r} * mean + {r!r} * {mean_text}"),
        positions["variance"]: (decay * old_variance + rest * unbiased,
                                f"running variance = {d!r} * variance + {r!r} * "
                                f"{variance_text}"),
    }


OPS["batch_normalization"] = OpDef(
    "batch_normalization", "BatchNormalization", 5, False, _batch_normalization_shape,
    _batch_normalization, running=_batch_normalization_running, array_inputs=True)



# --- synchronized batch normalization -------------------------------------------------------
# Batch normalization with the statistics of the batches of every process of a group, as
# nnabla's SyncBatchNormalization computes them: each process's sums of x and x**2 over
# its batch (and its element count) are summed over the processes in one all-reduce; the
# mean is their sum over the count, the variance E[x**2] - mean**2. The gradient is that
# of every process's loss summed (the all-reduce is its own transpose, so one all-reduce
# of the sums' cotangents in the backward pass), and beta's and gamma's are the sums of
# the processes' gradients on every one, as nnabla's backward gives them (`ProcessShared`).
# Run as one process (the module's all_reduce None), it is batch normalization with the
# one-pass variance.

def sync_statistics(x, x_shape, axes, group: str, ctx):
    """(mean, biased variance, the number of elements over every process) of x over the
    axes not in `axes` and the batches of the processes of `group`."""
    shapes = ctx.shapes
    reduced = tuple(i for i in range(len(x_shape)) if i not in axes)
    stat_shape = statistics_shape(x_shape, axes)
    k = math.prod(stat_shape)
    local = _reduced_count(x_shape, axes)

    def flat(expr):
        return P.reshape(P.reduce_sum(expr, reduced, True, x_shape, shapes), (k,), shapes)

    count = P.StopGradient(P.Full(sympy.Integer(local), P.shape_tuple((1,))))
    total = ctx.array_of(K.AllReduceSum(I.concatenate([flat(x), flat(x ** 2), count], 0,
                                                      shapes), K.group_name(group)),
                         "sync_sums")

    def part(start, stop, shape):
        piece = I.Slice(total, P.shape_tuple((start,)), P.shape_tuple((stop,)),
                        P.shape_tuple((1,)))
        return P.reshape(piece, shape, shapes)

    n = P.StopGradient(part(2 * k, 2 * k + 1, (1,) * len(x_shape)))
    mean = part(0, k, stat_shape) / n
    variance = part(k, 2 * k, stat_shape) / n - mean ** 2
    return mean, variance, n


def _sync_statistic(args, attrs, ctx):
    """The processes' batch mean or variance (output_stat=True), of the statistics' shape.
    Its value is the synchronized statistic; its gradient, as nnabla's backward gives it,
    takes this process's cotangent only: that of the same statistic over the local
    batch, with the global count (d mean / d x = 1/n)."""
    x, x_shape, axes = args[0], ctx.in_shapes[0], attrs["axes"]
    mean, variance, n = sync_statistics(x, x_shape, axes, attrs["group"], ctx)
    reduced = tuple(i for i in range(len(x_shape)) if i not in axes)
    if attrs["statistic"] == "mean":
        value, local = mean, P.reduce_sum(x, reduced, True, x_shape, ctx.shapes) / n
    else:
        # (the mean a constant, as nnabla's backward takes it; not when the gradient is
        # differentiated again, see _statistics)
        centered = x - (mean if ctx.differentiated_twice else P.StopGradient(mean))
        value = variance
        local = P.reduce_sum(centered ** 2, reduced, True, x_shape, ctx.shapes) / n
    return P.StopGradient(value) + (local - P.StopGradient(local))


def _sync_statistic_shape(shapes, attrs):
    return statistics_shape(shapes[0], attrs["axes"])


OPS["sync_batch_normalization"] = OpDef(
    "sync_batch_normalization", "SyncBatchNormalization", 5, False,
    lambda shapes, attrs: _batch_normalization_shape(shapes, attrs,
                                                     "sync_batch_normalization"),
    _batch_normalization, running=_batch_normalization_running, array_inputs=True)
# (output_stat=True's further outputs: nnabla's function has three, this op one)
OPS["sync_batch_statistic"] = OpDef(
    "sync_batch_statistic", "SyncBatchNormalization", 1, False, _sync_statistic_shape,
    _sync_statistic, array_inputs=True)

# --- layer, instance and group normalization ------------------------------------------------
# Statistics of each sample (never of the batch), so nothing runs between calls; beta and
# gamma (either may be absent) have the shapes nnabla checks (`_scale_rule`). With
# output_stat=True the frontend (`_per_sample`, as `_batch_normalization`) returns the
# statistics as further nodes (mean, sub2, pow_scalar; a reshape first for groups) beside
# this op's, so that they are differentiable and nnabla's file format holds them.

def scale_inputs(attrs) -> dict[str, int]:
    """The positions of x, beta (unless no_bias) and gamma (unless no_scale)."""
    names = ["x"] + ([] if attrs["no_bias"] else ["beta"]) + ([] if attrs["no_scale"]
                                                              else ["gamma"])
    return {name: position for position, name in enumerate(names)}


def _kept_axes(function: str, attrs) -> tuple[int, ...]:
    if function == "layer_normalization":
        return attrs["batch_axis"]
    return tuple(sorted({*attrs["batch_axis"], attrs["channel_axis"]}))


def _scale_rule(function: str, x: tuple[int, ...], attrs) -> tuple[list[set[int]], str]:
    """The lengths nnabla accepts on each axis of beta and gamma, and the rule in words:
    layer normalization's have the input's shape with the batch axes of length 1, group
    normalization's are 1 on every axis but the channel axis, instance normalization's
    have the channels, 1 on the normalized axes and 1 or the input's on the batch axes."""
    batch = attrs["batch_axis"]
    if function == "layer_normalization":
        return ([{1} if i in batch else {n} for i, n in enumerate(x)],
                f"the input's shape with the batch axes {list(batch)} of length 1")
    channel = attrs["channel_axis"]
    if function == "group_normalization":
        return ([{n} if i == channel else {1} for i, n in enumerate(x)],
                f"1 on every axis but the channel axis {channel}, which has the input's "
                f"{x[channel]}")
    return ([{n} if i == channel else {1, n} if i in batch else {1}
             for i, n in enumerate(x)],
            f"the input's {x[channel]} channels on axis {channel}, 1 or the input's length "
            f"on the batch axes {list(batch)}, 1 elsewhere")


def _scaled_shape(function: str):
    def infer(shapes, attrs):
        x = shapes[0]
        positions = scale_inputs(attrs)
        for name, position in positions.items():
            shape = shapes[position]
            if name == "x":
                continue
            allowed, rule = _scale_rule(function, x, attrs)
            if len(shape) != len(x) or any(
                    d not in lengths for d, lengths in zip(shape, allowed, strict=True)):
                expected = tuple(min(lengths) for lengths in allowed)
                raise ValueError(
                    f"F.{function}: {name} of shape {shape} does not fit the input of shape "
                    f"{x}: nnabla wants {rule}, e.g. {expected} (as the PF layer creates)")
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


def _standardized(x, x_shape, reduced, eps, ctx):
    """(x - mean) / sqrt(variance + eps) over the axes `reduced`."""
    mean, variance, _ = _statistics(x, x_shape, reduced, ctx)
    return (x - mean) / sympy.sqrt(variance + eps)


def _layer_or_instance(function: str):
    def lower(args, attrs, ctx):
        x_shape = ctx.in_shapes[0]
        kept = _kept_axes(function, attrs)
        reduced = tuple(i for i in range(len(x_shape)) if i not in kept)
        y = _standardized(args[0], x_shape, reduced, attrs["eps"], ctx) \
            if reduced else args[0] * 0
        return _scaled(y, args, attrs)

    return lower


def _group_normalization(args, attrs, ctx):
    """The channel axis split into (num_groups, channels per group); each sample's
    statistics over each group's channels and every axis but the batch axes.

    As nnabla 1.39 computes it (measured), the batch axes index the split array as they
    are: a batch axis after the channel axis keeps the axis before it (the channels per
    group, for the one right after), and the input's axis itself is reduced. With the
    batch axes before the channels, as usual, this is the documented rule."""
    x_shape = ctx.in_shapes[0]
    axis, groups = attrs["channel_axis"], attrs["num_groups"]
    split = x_shape[:axis] + (groups, x_shape[axis] // groups) + x_shape[axis + 1:]
    batch = set(attrs["batch_axis"])  # (not shifted past the split: nnabla's indices)
    reduced = tuple(i for i in range(len(split)) if i not in batch and i != axis)
    grouped = P.reshape(args[0], split, ctx.shapes)
    y = P.reshape(_standardized(grouped, split, reduced, attrs["eps"], ctx), x_shape,
                  ctx.shapes)
    return _scaled(y, args, attrs)


for _name, _type, _lower in (
        ("layer_normalization", "LayerNormalization", _layer_or_instance("layer_normalization")),
        ("instance_normalization", "InstanceNormalization",
         _layer_or_instance("instance_normalization")),
        ("group_normalization", "GroupNormalization", _group_normalization)):
    OPS[_name] = OpDef(_name, _type, 3, False, _scaled_shape(_name), _lower,
                       array_inputs=True)


# --- fused batch normalization --------------------------------------------------------------
# relu(batch_normalization(x) + z): batch normalization's formula, shape rule and running
# statistics, with the residual z (broadcast to x, as nnabla's add2) and the relu after it.

def _fused_batch_normalization_shape(shapes, attrs):
    x = _batch_normalization_shape(shapes, attrs, "fused_batch_normalization")
    if attrs["residual"]:
        z = shapes[batch_normalization_inputs(attrs)["z"]]
        if len(z) != len(x) or any(d not in (1, n) for d, n in zip(z, x, strict=True)):
            raise ValueError(
                f"F.fused_batch_normalization: z of shape {z} does not broadcast to the input "
                f"of shape {x}: give it the input's rank, each axis 1 or the input's")
    return x


def _fused_batch_normalization(args, attrs, ctx):
    """relu(y + z), y batch normalization's; relu'(0) = 0, as nnabla's fused backward
    (which passes the gradient where the output is > 0)."""
    y = _batch_normalization(args, attrs, ctx)
    if attrs["residual"]:
        y = y + args[batch_normalization_inputs(attrs)["z"]]
    return E.Maximum(y, sympy.Integer(0))


OPS["fused_batch_normalization"] = OpDef(
    "fused_batch_normalization", "FusedBatchNormalization", 6, False,
    _fused_batch_normalization_shape, _fused_batch_normalization,
    running=_batch_normalization_running, array_inputs=True)


# --- norms and weight reparametrisations -----------------------------------------------------

def _same_shape(function: str, names):
    def infer(shapes, attrs):
        for name, shape in zip(names[1:], shapes[1:], strict=True):
            if shape != shapes[0]:
                raise ValueError(
                    f"F.{function}: {name} of shape {shape} must have the input's shape "
                    f"{shapes[0]} (nnabla reads it elementwise and does not broadcast it); "
                    f"broadcast it first: F.broadcast({name}, {shapes[0]})")
        return shapes[0]

    return infer


OPS["clip_grad_by_value"] = OpDef(
    "clip_grad_by_value", "ClipGradByValue", 3, False,
    _same_shape("clip_grad_by_value", ("x", "min", "max")),
    lambda args, attrs, ctx: C.ClipGradByValue(*args))

OPS["clip_grad_by_norm"] = OpDef(
    "clip_grad_by_norm", "ClipGradByNorm", 1, False, lambda shapes, attrs: shapes[0],
    lambda args, attrs, ctx: C.ClipGradByNorm(args[0], attrs["clip_norm"],
                                              P.shape_tuple(attrs["axes"])))


def _top_k_grad_shape(shapes, attrs):
    x, k, base = shapes[0], attrs["k"], attrs["base_axis"]
    if not 0 <= base < len(x):
        raise ValueError(f"F.top_k_grad: base_axis {base} is out of range for an input of "
                         f"shape {x} (valid: {-len(x)}..{len(x) - 1})")
    size = math.prod(x[base:])
    if not 1 <= k <= size:
        raise ValueError(f"F.top_k_grad: k={k} must be from 1 to the sample size {size} (the "
                         f"axes of the input of shape {x} from base_axis {base} on)")
    return x


OPS["top_k_grad"] = OpDef(
    "top_k_grad", "TopKGrad", 1, False, _top_k_grad_shape,
    lambda args, attrs, ctx: C.TopKGrad(args[0], sympy.Integer(attrs["k"]),
                                        sympy.Integer(int(attrs["abs"])),
                                        sympy.Integer(attrs["base_axis"])))


def _p_norm(x, p, axes, x_shape, shapes):
    """nnabla's Norm, (sum |x|**p over axes) ** (1/p), kept as axes of length 1 (no eps:
    NormNormalization creates its Norm without one)."""
    powered = x ** p if p.is_Integer and p % 2 == 0 else E.Absolute(x, sympy.Integer(1)) ** p
    return P.reduce_sum(powered, axes, True, x_shape, shapes) ** (1 / p)


def _norm_normalization(args, attrs, ctx):
    """x / ||x||_p over `axes`; `eps` is accepted and unused, as by nnabla 1.39 (whose
    docs say it is added before the root)."""
    x = args[0]
    return x / _p_norm(x, attrs["p"], attrs["axes"], ctx.in_shapes[0], ctx.shapes)


OPS["norm_normalization"] = OpDef(
    "norm_normalization", "NormNormalization", 1, False, lambda shapes, attrs: shapes[0],
    _norm_normalization, array_inputs=True)


def _weight_standardization(args, attrs, ctx):
    """Each output channel of the weight standardized over its other axes (nnabla's
    TensorNormalization over `channel_axis`, biased variance)."""
    w_shape = ctx.in_shapes[0]
    reduced = tuple(i for i in range(len(w_shape)) if i != attrs["channel_axis"])
    if not reduced:  # a 1-D weight: each element its own mean, variance 0
        return args[0] * 0
    return _standardized(args[0], w_shape, reduced, attrs["eps"], ctx)


OPS["weight_standardization"] = OpDef(
    "weight_standardization", "WeightStandardization", 1, False,
    lambda shapes, attrs: shapes[0], _weight_standardization, array_inputs=True)


def _weight_normalization_shape(shapes, attrs):
    w, g, dim = shapes[0], shapes[1], attrs["dim"]
    if g != (w[dim],):
        raise ValueError(
            f"F.weight_normalization: g of shape {g} does not fit the weight of shape {w} "
            f"with dim={dim}: it must be 1-D of shape {(w[dim],)} (one scale per w.shape[dim])")
    return w


def _weight_normalization(args, attrs, ctx):
    """g * w / sqrt(sum(w**2) + eps), the sum over every axis but `dim`, g along `dim`."""
    w, g = args
    w_shape, dim = ctx.in_shapes[0], attrs["dim"]
    reduced = tuple(i for i in range(len(w_shape)) if i != dim)
    squares = P.reduce_sum(w ** 2, reduced, True, w_shape, ctx.shapes) if reduced else w ** 2
    scale = P.reshape(g, tuple(d if i == dim else 1 for i, d in enumerate(w_shape)),
                      ctx.shapes)
    return w * scale / sympy.sqrt(squares + attrs["eps"])


OPS["weight_normalization"] = OpDef(
    "weight_normalization", "WeightNormalization", 2, False, _weight_normalization_shape,
    _weight_normalization, array_inputs=True)


# --- mean subtraction --------------------------------------------------------------------------
# y = x - running mean, the running mean the average of every batch so far (t of them),
# updated by each training forward pass before it is subtracted.

def _mean_subtraction_shape(shapes, attrs):
    x, mean, t = shapes
    expected = x[attrs["base_axis"]:]
    if mean != expected:
        raise ValueError(
            f"F.mean_subtraction: mean of shape {mean} does not fit the input of shape {x} "
            f"with base_axis={attrs['base_axis']}: it must have shape {expected} "
            "(the input's axes from base_axis on)")
    if math.prod(t) != 1:
        raise ValueError(f"F.mean_subtraction: t (the number of batches averaged) must hold "
                         f"one number, got shape {t}; give it shape (1,)")
    return x


def _running_mean(args, attrs, ctx):
    """The running mean after this batch: mean + (batch mean - mean) / (t + 1)."""
    x, mean, t = args
    x_shape, base = ctx.in_shapes[0], attrs["base_axis"]
    batch = tuple(range(base))
    batch_mean = P.reduce_sum(x, batch, False, x_shape, ctx.shapes) / math.prod(
        x_shape[:base]) if batch else x
    return mean + (batch_mean - mean) / (t + 1)


def _mean_subtraction(args, attrs, ctx):
    """x minus the running mean (the updated one, when update_running_mean).

    Training, nnabla's backward is dx = dy * (1 - 1/(t * M)) (t counting this batch, M its
    samples): the Jacobian's diagonal only ("an approximated differentiation"), so the
    formula is (x - running mean) without gradient + (x - x without gradient) * (1 - 1/(t M)).
    """
    x, mean, t = args
    if not attrs["update_running_mean"]:
        return x - P.StopGradient(mean)
    samples = math.prod(ctx.in_shapes[0][:attrs["base_axis"]])
    # (x - running mean as one expression: were the running mean's whole expression in
    # it, the common-subexpression pass would read the running update's array here,
    # before the update is computed)
    value = P.StopGradient(x - _running_mean(args, attrs, ctx))
    return value + (x - P.StopGradient(x)) * (1 - 1 / ((P.StopGradient(t) + 1) * samples))


def _mean_subtraction_running(args, attrs, ctx):
    if not attrs["update_running_mean"]:
        return {}
    return {1: (_running_mean(args, attrs, ctx),
                "running mean = mean + (batch mean - mean) / (t + 1)"),
            2: (args[2] + 1, "t = t + 1 (the batches averaged)")}


OPS["mean_subtraction"] = OpDef(
    "mean_subtraction", "MeanSubtraction", 3, False, _mean_subtraction_shape,
    _mean_subtraction, running=_mean_subtraction_running, array_inputs=True)


# --- spectral normalization ---------------------------------------------------------------------
# w / sigma, sigma the largest singular value of w as a matrix (its axis `dim` one side,
# the others the other), estimated by nnabla's power iteration. F.spectral_norm builds
# the iteration from F.affine and friends (one array per step, so that `itr` steps cost
# `itr` statements, not an expression doubling with each); this op takes its last u and
# v, without gradient (sigma = u W v gets one through W), and each training forward pass
# writes the last u into the vector `u` it started from.

def spectral_norm_matrix(w_shape, dim):
    """(whether `dim` is the last axis, the permutation that brings `dim` first (None if
    it is the last), the matrix's shape): nnabla's layout of the weight as a matrix."""
    if dim == len(w_shape) - 1:
        return True, None, (math.prod(w_shape[:-1]), w_shape[-1])
    perm = (dim,) + tuple(i for i in range(len(w_shape)) if i != dim)
    return False, perm, (w_shape[dim], math.prod(w_shape) // w_shape[dim])


def _spectral_norm_shape(shapes, attrs):
    w, u, dim = shapes[0], shapes[1], attrs["dim"]
    if u != (w[dim],):
        raise ValueError(
            f"F.spectral_norm: u of shape {u} does not fit the weight of shape {w} with "
            f"dim={dim}: it must be 1-D of shape {(w[dim],)} (w.shape[dim])")
    return w


def _spectral_norm(args, attrs, ctx):
    w, _, u, v = args
    shapes, w_shape = ctx.shapes, ctx.in_shapes[0]
    last, perm, matrix_shape = spectral_norm_matrix(w_shape, attrs["dim"])
    moved = w if last else P.transpose(w, perm, shapes)
    matrix = P.reshape(moved, matrix_shape, shapes)
    u, v = P.StopGradient(u), P.StopGradient(v)
    if last:  # v a row, u a column
        sigma = P.matmul(P.matmul(v, matrix, shapes), u, shapes)
    else:  # u a row, v a column
        sigma = P.matmul(u, P.matmul(matrix, v, shapes), shapes)
    normalized = P.reshape(matrix / sigma, shapes.of(moved), shapes)
    if last:
        return normalized
    return P.transpose(normalized, tuple(perm.index(i) for i in range(len(w_shape))), shapes)


def _spectral_norm_running(args, attrs, ctx):
    if attrs["test"]:
        return {}
    return {1: (P.reshape(args[2], ctx.in_shapes[1], ctx.shapes),
                "u = the power iteration's last vector")}


OPS["spectral_norm"] = OpDef(
    "spectral_norm", "SpectralNorm", 4, False, _spectral_norm_shape, _spectral_norm,
    running=_spectral_norm_running, array_inputs=True)
