"""Normalization layers, weight reparametrisations and gradient clipping: batch, layer,
instance, group, tensor and norm normalization, weight standardization and
normalization, spectral_norm, mean_subtraction, clip_by_norm, clip_grad_by_*,
top_k_grad.
"""

from __future__ import annotations

import numbers

import numpy

from symcompile.frontend.functions._base import (
    _batch_normalization,
    _record,
    _reduced_axes,
    _updated_in_place,
)
from symcompile.frontend.functions.arrays import reshape, transpose
from symcompile.frontend.functions.layers import affine
from symcompile.frontend.functions.maths import sum
from symcompile.frontend.variable import Variable
from symcompile.ops.normalization import spectral_norm_matrix
from symcompile.ops.registry import OPS, normalize_axes, number

__all__ = [
    "batch_normalization", "sync_batch_normalization", "layer_normalization",
    "instance_normalization", "group_normalization",
    "fused_batch_normalization", "clip_grad_by_value", "clip_grad_by_norm", "top_k_grad",
    "clip_by_norm", "norm_normalization", "weight_standardization", "weight_normalization",
    "mean_subtraction", "spectral_norm", "tensor_normalization",
]

def batch_normalization(x, beta, gamma, mean, variance, axes=[1],  # noqa: B006 (nnabla's)
                        decay_rate=0.9, eps=1e-05, batch_stat=True, output_stat=False,
                        n_outputs=None):
    """Batch normalization: y = (x - mu) / sqrt(sigma^2 + eps) * gamma + beta, mu and
    sigma^2 the mean and variance over every axis but `axes`.

    With `batch_stat` (training) they are the batch's, and every forward pass updates the
    running `mean` and `variance` in place: ``mean = decay_rate * mean + (1 - decay_rate)
    * mu`` and likewise for the variance, with the batch's unbiased variance. Without it
    (inference) the running statistics are used and get no gradient. `beta` or `gamma`
    None omits the term; `mean` and `variance` None (batch_stat only) updates nothing.
    ``output_stat=True`` also returns the batch's mean and biased variance. Over
    several `axes` the running statistics are updated too (nnabla 1.39 updates transposed
    copies of them instead, so its parameters keep their initial values).
    """
    return _batch_normalization("batch_normalization", x, beta, gamma, mean, variance, None,
                                axes, decay_rate, eps, batch_stat, output_stat)


def sync_batch_normalization(x, beta, gamma, mean, variance, comm, group="world",
                             axes=[1], decay_rate=0.9, eps=1e-05, batch_stat=True,  # noqa: B006
                             output_stat=False, n_outputs=None):
    """Batch normalization with the statistics of the batches of every process of `comm`'s
    `group` (nnabla's synchronized batch normalization, for data-parallel training with
    small batches): F.batch_normalization's arguments and results, but the mean and the
    (biased) variance are over every process's batch, the variance as E[x**2] - mean**2,
    and the running variance's unbiased factor counts every process's elements.

    Gradients are nnabla's: x's is the gradient of the sum of every process's loss, and
    beta's and gamma's are the sums of the processes' gradients, the same on each (so a
    data-parallel all_reduce(division=True) of the gradients leaves them so). The generated
    module sums with its functions' `all_reduce` argument, to which the runtime passes
    `comm`'s; a module run alone (all_reduce None) is one process. With output_stat, the
    statistics' own cotangents reach x from this process only, as in nnabla. Processes
    with batches of different sizes get the statistics of all their samples (a global
    count), where nnabla averages the processes' means; equal batches, as nnabla assumes,
    give the same either way.
    """
    _communicator_group("sync_batch_normalization", comm, group)
    return _batch_normalization("sync_batch_normalization", x, beta, gamma, mean, variance,
                                None, axes, decay_rate, eps, batch_stat, output_stat,
                                communicator=comm, group=group)


def _communicator_group(op: str, comm, group) -> None:
    """Refuse what is not a communicator of symcompile's (`C.MultiProcessDataParallel
    Communicator`), or a group it does not have."""
    if not callable(getattr(comm, "all_reduce_sum", None)) \
            or not callable(getattr(comm, "find_group", None)):
        raise TypeError(f"F.{op}: comm must be a communicator (symcompile.communicators."
                        f"MultiProcessDataParallelCommunicator, after comm.init()), got "
                        f"{type(comm).__name__}")
    if not isinstance(group, str):
        raise TypeError(f"F.{op}: group must be the name of a group of the communicator "
                        f"(a str, 'world' for every process), got {group!r}")
    if not comm.find_group(group):
        groups = sorted(comm.list_groups()) if callable(getattr(comm, "list_groups", None)) \
            else []
        fix = ("call comm.init() first" if not groups
               else f"its groups are {groups}; make one with comm.new_group((name, ranks))")
        raise ValueError(f"F.{op}: the communicator has no group {group!r}: {fix}")


def layer_normalization(x, beta, gamma, batch_axis=0, eps=1e-05, output_stat=False):
    """Layer normalization: each sample standardized over every axis but `batch_axis`
    (an int or a list), then y = x_hat * gamma + beta (either may be None). With
    `output_stat`, (y, mean, variance): the biased variance, both of x's shape with the
    normalized axes 1 and differentiable, as nnabla 1.39's (whose docs call it "Std")."""
    return _per_sample("layer_normalization", x, beta, gamma, output_stat, eps=eps,
                       batch_axis=batch_axis)


def instance_normalization(x, beta, gamma, channel_axis=1, batch_axis=0, eps=1e-05,
                           output_stat=False):
    """Instance normalization: each sample's each channel standardized over the other axes,
    then y = x_hat * gamma + beta (either may be None). With `output_stat`, (y, mean,
    variance) as for F.layer_normalization, of shape 1 but along the batch and channel
    axes."""
    return _per_sample("instance_normalization", x, beta, gamma, output_stat, eps=eps,
                       batch_axis=batch_axis, channel_axis=channel_axis)


def group_normalization(x, beta, gamma, num_groups, channel_axis=1, batch_axis=0, eps=1e-05,
                        output_stat=False):
    """Group normalization: the channels split into `num_groups` groups, each sample's each
    group standardized over its channels and the other axes, then y = x_hat * gamma + beta
    (either may be None). With `output_stat`, (y, mean, variance) as for
    F.layer_normalization, of nnabla's shape: x's with the channel axis split into
    (num_groups, channels per group), 1 but along the batch axes and the groups (e.g.
    (B, G, 1, 1, 1) for x (B, C, H, W)). As nnabla 1.39 computes it, batch axes after the
    channel axis index the split shape unshifted (batch_axis=[0, 2] with channel_axis=1
    keeps the channels within each group, and reduces the input's axis 2)."""
    if isinstance(num_groups, bool) or not isinstance(num_groups, numbers.Integral):
        raise TypeError(f"F.group_normalization: num_groups must be an int, got {num_groups!r}")
    return _per_sample("group_normalization", x, beta, gamma, output_stat, eps=eps,
                       batch_axis=batch_axis, channel_axis=channel_axis,
                       num_groups=int(num_groups))


def _per_sample(op: str, x, beta, gamma, output_stat, eps, batch_axis, **more):
    """The `op` node after nnabla's checks; with `output_stat`, (y, mean, variance) as
    nnabla returns them (see `_statistics_of`)."""
    inputs = tuple(v for v in (x, beta, gamma) if v is not None)
    if not all(isinstance(v, Variable) for v in inputs):
        return _record(op, inputs)  # raises the TypeError
    output_stat = _output_stat(op, output_stat, x)
    items = [batch_axis] if isinstance(batch_axis, numbers.Integral) else list(batch_axis)
    attrs = {"batch_axis": normalize_axes(op, items, x.shape),
             "eps": number(eps, op, "eps"), "no_bias": beta is None, "no_scale": gamma is None}
    if "channel_axis" in more:
        (channel,) = normalize_axes(op, more.pop("channel_axis"), x.shape)
        if channel in attrs["batch_axis"]:
            raise ValueError(f"F.{op}: channel_axis {channel} is also a batch axis "
                             f"{list(attrs['batch_axis'])} (input of shape {x.shape})")
        attrs["channel_axis"] = channel
    y = _record(op, inputs, **attrs, **more)
    if not output_stat:
        return y
    kept = set(attrs["batch_axis"])
    if op == "group_normalization":
        # nnabla's statistics are those of x with the channel axis split into (num_groups,
        # channels per group): shape (..., num_groups, 1, ...), as its docs say
        axis, groups = attrs["channel_axis"], more["num_groups"]
        split = x.shape[:axis] + (groups, x.shape[axis] // groups) + x.shape[axis + 1:]
        x = _record("reshape", (x,), shape=split)
        kept |= {axis}  # (the batch axes index the split array unshifted, as nnabla's)
    elif op == "instance_normalization":
        kept.add(attrs["channel_axis"])
    return (y, *_statistics_of(x, tuple(a for a in range(x.ndim) if a not in kept)))


def _output_stat(op: str, output_stat, x: Variable) -> bool:
    """`output_stat` as a bool: True or False (nnabla takes any truthy value; a string
    such as "False" would then be True, so only booleans are accepted)."""
    if isinstance(output_stat, (bool, numpy.bool_)):
        return bool(output_stat)
    raise ValueError(f"F.{op}: output_stat must be True or False, got {output_stat!r} "
                     f"({type(output_stat).__name__}) for the input of shape {x.shape}; pass "
                     "output_stat=True to also get the mean and variance, False for y alone")


def _statistics_of(x: Variable, reduced: tuple[int, ...]) -> tuple[Variable, Variable]:
    """The mean and the biased variance of `x` over the axes `reduced`, kept as axes of
    length 1 (nnabla's shapes), both differentiable as nnabla's are; over no axes the mean
    is x and the variance 0."""
    mean = _record("mean", (x,), axes=reduced, keepdims=True)
    squares = _record("pow_scalar", (_record("sub2", (x, mean)),),
                      val=number(2, "pow_scalar", "val"))
    return mean, _record("mean", (squares,), axes=reduced, keepdims=True)


def fused_batch_normalization(x, beta, gamma, mean, variance, z=None, axes=[1],  # noqa: B006
                              decay_rate=0.9, eps=1e-05, batch_stat=True, nonlinearity="relu",
                              output_stat=False, n_outputs=None):
    """relu(F.batch_normalization(x, ...) + z): nnabla's batch normalization fused with the
    residual `z` (None: none; it broadcasts to x as in F.add2) and a relu, the only
    `nonlinearity` nnabla has. Arguments, running statistics and gradients are
    F.batch_normalization's (relu'(0) = 0); unlike nnabla 1.39, which fails on them,
    several `axes` work."""
    if nonlinearity != "relu":
        raise ValueError(f"F.fused_batch_normalization: nonlinearity={nonlinearity!r} is not "
                         "supported; nnabla has only 'relu' (apply another activation to "
                         "F.batch_normalization's output instead)")
    return _batch_normalization("fused_batch_normalization", x, beta, gamma, mean, variance,
                                z, axes, decay_rate, eps, batch_stat, output_stat)


def clip_grad_by_value(x, min, max, n_outputs=-1, outputs=None):  # noqa: A002 (nnabla's)
    """Identity forward; backward the gradient is limited to [min, max] elementwise.

    `min` and `max` are Variables of x's shape (as nnabla requires), given no gradient.
    No derivative gives this backward pass; the op's VJP does it (`gradient_clipping`).
    """
    for name, bound in (("min", min), ("max", max)):
        if not isinstance(bound, Variable):
            raise TypeError(
                f"F.clip_grad_by_value: {name} must be a Variable of the input's shape, as "
                f"in nnabla, got {type(bound).__name__}; for a number c use F.broadcast("
                f"nn.Variable.from_numpy_array(numpy.full((1,) * x.ndim, c)), x.shape)")
    return _record("clip_grad_by_value", (x, min, max))


def clip_grad_by_norm(x, clip_norm=None, axes=None, n_outputs=-1, outputs=None):
    """Identity forward; backward the gradient dy becomes ``clip_norm * dy /
    ||dy||_2`` over `axes` (default all) -- rescaled always, as nnabla does, not only
    when its norm is larger (and NaN where dy is all 0). `clip_norm` defaults to 1."""
    if not isinstance(x, Variable):
        return _record("clip_grad_by_norm", (x,))
    clip_norm = 1.0 if clip_norm is None else clip_norm
    return _record("clip_grad_by_norm", (x,),
                   clip_norm=number(clip_norm, "clip_grad_by_norm", "clip_norm"),
                   axes=_reduced_axes("clip_grad_by_norm", axes, x))


def top_k_grad(x, k, abs=False, base_axis=1, n_outputs=-1, outputs=None):  # noqa: A002
    """Identity forward; backward only the `k` largest gradients of each sample (by
    magnitude if `abs`; a sample is the axes from `base_axis` on) pass unchanged, the
    others are 0, as nnabla's."""
    if not isinstance(x, Variable):
        return _record("top_k_grad", (x,))
    base = base_axis + x.ndim if base_axis < 0 else base_axis
    return _record("top_k_grad", (x,), k=int(k), abs=bool(abs), base_axis=int(base))


def clip_by_norm(x, clip_norm, axis=None):
    """x * clip_norm / max(||x||_2, clip_norm), the norm over `axis` (default all): x
    scaled down to L2 norm `clip_norm` where its norm is larger. As in nnabla, built
    from sum, pow_scalar and maximum_scalar (maximum2 for a Variable `clip_norm`), whose
    gradients it has."""
    if not isinstance(x, Variable):
        return _record("pow_scalar", (x,))  # raises the TypeError
    axes = _reduced_axes("clip_by_norm", axis, x)
    squares = _record("sum", (_record("pow_scalar", (x,), val=number(2.0, "pow_scalar")),),
                      axes=axes, keepdims=True)
    norm = _record("pow_scalar", (squares,), val=number(0.5, "pow_scalar"))
    if isinstance(clip_norm, Variable):
        if clip_norm.ndim != x.ndim:
            raise ValueError(
                f"F.clip_by_norm: clip_norm of shape {clip_norm.shape} must have the input's "
                f"rank {x.ndim} (nnabla's binary functions broadcast only at equal ranks): "
                f"reshape it to {(1,) * (x.ndim - clip_norm.ndim) + clip_norm.shape}")
        return _record("div2", (_record("mul2", (x, clip_norm)),
                                _record("maximum2", (norm, clip_norm))))
    value = number(clip_norm, "clip_by_norm", "clip_norm")
    if not value > 0:
        raise ValueError(f"F.clip_by_norm: clip_norm must be positive, got {clip_norm!r}")
    return _record("div2", (_record("mul_scalar", (x,), val=value),
                            _record("maximum_scalar", (norm,), val=value)))


def norm_normalization(x, p=None, axes=None, eps=1e-12):
    """x / ||x||_p, the p-norm (p >= 1, default 2) over `axes` (default all). `eps` is
    accepted and, as by nnabla 1.39, not used (a zero norm gives NaN)."""
    if not isinstance(x, Variable):
        return _record("norm_normalization", (x,))
    p = number(2.0 if p is None else p, "norm_normalization", "p")
    if not p >= 1:
        raise ValueError(f"F.norm_normalization: p must be >= 1 (nnabla's), got {float(p)}")
    number(eps, "norm_normalization", "eps")
    return _record("norm_normalization", (x,), p=p,
                   axes=_reduced_axes("norm_normalization", axes, x))


def weight_standardization(w, channel_axis=0, eps=1e-05, output_stat=False):
    """Each output channel of the weight (along `channel_axis`) standardized over the
    other axes: (w - mean) / sqrt(variance + eps), the biased variance. With
    `output_stat`, (y, mean, variance), both of shape 1 but along `channel_axis` and
    differentiable, as nnabla 1.39 returns them (its docs say "Std": it is the variance)."""
    if not isinstance(w, Variable):
        return _record("weight_standardization", (w,))
    output_stat = _output_stat("weight_standardization", output_stat, w)
    (channel,) = normalize_axes("weight_standardization", channel_axis, w.shape)
    y = _record("weight_standardization", (w,), channel_axis=channel,
                eps=number(eps, "weight_standardization", "eps"))
    if not output_stat:
        return y
    return (y, *_statistics_of(w, tuple(a for a in range(w.ndim) if a != channel)))


def weight_normalization(w, g, dim=0, eps=1e-12, n_outputs=-1, outputs=None):
    """g * w / sqrt(sum(w**2) + eps): each slice of `w` along `dim` scaled to L2 norm g
    (1-D, of length w.shape[dim]), the sum over the other axes."""
    if not isinstance(w, Variable) or not isinstance(g, Variable):
        return _record("weight_normalization", (w, g))
    (axis,) = normalize_axes("weight_normalization", dim, w.shape)
    return _record("weight_normalization", (w, g), dim=axis,
                   eps=number(eps, "weight_normalization", "eps"))


def mean_subtraction(x, mean, t, base_axis=1, update_running_mean=True):
    """x minus the running `mean` over the batch axes (those before `base_axis`).

    With `update_running_mean` (training) each forward pass first updates `mean` (shape
    x.shape[base_axis:]) to the average of all batches so far, ``mean += (batch mean -
    mean) / (t + 1)``, and `t` (shape (1,), the batch count; a float here, nnabla's is an
    int) by 1, in place, and subtracts the updated mean. Its gradient is nnabla's
    approximation dy * (1 - 1 / (t * batch size)); in inference it is dy.
    """
    inputs = (x, mean, t)
    if isinstance(x, Variable) and (isinstance(base_axis, bool) or not isinstance(
            base_axis, numbers.Integral) or not 0 <= base_axis < x.ndim):
        raise ValueError(f"F.mean_subtraction: base_axis must be an int in [0, {x.ndim}) for "
                         f"an input of shape {x.shape}, got {base_axis!r}")
    if not all(isinstance(v, Variable) for v in inputs):
        return _record("mean_subtraction", inputs)  # raises the TypeError
    if update_running_mean:
        _updated_in_place("mean_subtraction", "update_running_mean=True", mean=mean, t=t)
    return _record("mean_subtraction", inputs, base_axis=int(base_axis),
                   update_running_mean=bool(update_running_mean))


def spectral_norm(w, u, dim=0, itr=1, eps=1e-12, test=False, output_u=False):
    """w / sigma, sigma w's largest singular value (w a matrix with axis `dim` on one
    side), estimated by `itr` steps of the power iteration from `u` (shape
    (w.shape[dim],)); unless `test`, each forward pass overwrites `u` in place with the
    last step's vector, as nnabla's does. u and v are constants to the gradient."""
    if output_u:
        raise ValueError("F.spectral_norm: output_u=True (returning u before the update as a "
                         "second output) is not implemented; copy u.d before forward()")
    if not isinstance(w, Variable) or not isinstance(u, Variable):
        return _record("spectral_norm", (w, u))
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or not 0 <= dim < w.ndim:
        raise ValueError(f"F.spectral_norm: dim must be an int in [0, {w.ndim}) for a weight "
                         f"of shape {w.shape}, got {dim!r}")
    if isinstance(itr, bool) or not isinstance(itr, numbers.Integral) or itr < 1:
        raise ValueError(f"F.spectral_norm: itr (power iteration steps) must be an int >= 1, "
                         f"got {itr!r}")
    if not number(eps, "spectral_norm", "eps") > 0:
        raise ValueError(f"F.spectral_norm: eps must be positive, got {eps!r}")
    if u.shape != (w.shape[dim],):  # (before the power iteration is built from it)
        OPS["spectral_norm"].infer_shape((w.shape, u.shape), {"dim": int(dim)})
    if not test:
        _updated_in_place("spectral_norm", "test=False", u=u)
    eps = number(eps, "spectral_norm", "eps")
    last, perm, (rows, columns) = spectral_norm_matrix(w.shape, int(dim))
    matrix = reshape(w if last else transpose(w, perm), (rows, columns))
    vector = reshape(u, (columns, 1) if last else (1, rows))
    for _ in range(int(itr)):  # nnabla's steps: v from u, then u from v, each normalized
        if last:
            v = reshape(_unit(affine(matrix, vector), eps), (1, rows))
            vector = reshape(_unit(affine(v, matrix), eps), (columns, 1))
        else:
            v = reshape(_unit(affine(vector, matrix), eps), (columns, 1))
            vector = reshape(_unit(affine(matrix, v), eps), (1, rows))
    return _record("spectral_norm", (w, u, vector, v), dim=int(dim), test=bool(test))


def _unit(v, eps):
    """v / sqrt(sum(v**2) + eps), the power iteration's normalization in nnabla."""
    squares = sum(_record("pow_scalar", (v,), val=number(2, "pow_scalar")), keepdims=True)
    norm = _record("pow_scalar", (_record("add_scalar", (squares,), val=eps),),
                   val=number(0.5, "pow_scalar"))
    return _record("div2", (v, norm))


def tensor_normalization(x, axes, beta=None, gamma=None, eps=1e-05, output_stat=False):
    """x standardized by its own mean and (biased) variance over every axis but `axes`
    (an int or a list), then y = x_hat * gamma + beta (either may be None, else of shape
    x's along `axes`, 1 elsewhere). nnabla writes it as batch_normalization with batch
    statistics and no running ones; here it is the formula's own functions (mean, sub2,
    ...), which an .nnp file holds as they are. With `output_stat`, (y, mean, variance),
    differentiable."""
    op = "tensor_normalization"
    for name, value in (("x", x), ("beta", beta), ("gamma", gamma)):
        if value is not None and not isinstance(value, Variable):
            raise TypeError(f"F.{op}: {name} must be a Variable{'' if name == 'x' else ' or None'}"
                            f", got {type(value).__name__}")
    if x is None:
        raise TypeError(f"F.{op}: x must be a Variable, got None")
    output_stat = _output_stat(op, output_stat, x)
    kept = normalize_axes(op, [axes] if isinstance(axes, numbers.Integral) else list(axes),
                          x.shape)
    stat_shape = tuple(d if i in kept else 1 for i, d in enumerate(x.shape))
    for name, value in (("beta", beta), ("gamma", gamma)):
        if value is not None and value.shape != stat_shape:
            raise ValueError(f"F.{op}: {name} of shape {value.shape} does not fit the input of "
                             f"shape {x.shape} with axes={list(kept)}; it must have shape "
                             f"{stat_shape} (the input's length along axes, 1 elsewhere)")
    mean, variance = _statistics_of(x, tuple(a for a in range(x.ndim) if a not in kept))
    scale = _record("pow_scalar", (_record("add_scalar", (variance,), val=number(eps, op, "eps")),),
                    val=number(-0.5, op, "eps"))
    y = _record("mul2", (_record("sub2", (x, mean)), scale))
    if gamma is not None:
        y = _record("mul2", (y, gamma))
    if beta is not None:
        y = _record("add2", (y, beta))
    return (y, mean, variance) if output_stat else y
