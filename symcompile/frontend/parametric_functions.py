"""`symcompile.parametric_functions` (PF): layers that create their own parameters.

As in nnabla, each parametric function runs inside a parameter scope named after it
(``affine``, ``conv``), nested under ``name`` when one is given, so its parameters are
``affine/W`` and ``affine/b`` (or ``NAME/affine/W``) and a second call in the same
scope reuses them.
"""

from __future__ import annotations

import functools
import math
from contextlib import nullcontext

import numpy

from symcompile.frontend import functions as F
from symcompile.frontend.functions.layers import _deformable_convolution_attributes
from symcompile.frontend.initializer import (
    ConstantInitializer,
    NormalInitializer,
    UniformInitializer,
    calc_uniform_lim_glorot,
)
from symcompile.frontend.parameter import get_parameter_or_create, parameter_scope
from symcompile.ops.normalization import statistics_shape
from symcompile.ops.opdef import normalize_axes

__all__ = ["affine", "batch_normalization", "convolution", "deconvolution", "depthwise_convolution",
           "depthwise_deconvolution",
           "embed", "group_normalization", "instance_normalization", "layer_normalization",
           "parametric_function_api"]


def parametric_function_api(scope_name: str):
    """Run the decorated layer in ``parameter_scope(scope_name)``, under ``name`` if given."""

    def decorate(layer):
        @functools.wraps(layer)
        def wrapper(*args, name=None, **kwargs):
            outer = parameter_scope(name) if name else nullcontext()
            with outer, parameter_scope(scope_name):
                return layer(*args, **kwargs)

        return wrapper

    return decorate


def _weight_and_bias(w_shape, b_shape, w_init, b_init, fix_parameters, with_bias, apply_w,
                     apply_b):
    """A layer's ``W`` and (with_bias) ``b`` in the current scope, created on first use
    (``b`` with zeros by default), each passed through its `apply_*` function if given."""
    w = get_parameter_or_create("W", w_shape, w_init, True, not fix_parameters)
    if apply_w is not None:
        w = apply_w(w)
    if not with_bias:
        return w, None
    if b_init is None:  # not `b_init or ...`: an array initializer has no truth value
        b_init = ConstantInitializer()
    b = get_parameter_or_create("b", b_shape, b_init, True, not fix_parameters)
    return w, (apply_b(b) if apply_b is not None else b)


@parametric_function_api("affine")
def affine(inp, n_outmaps, base_axis=1, w_init=None, b_init=None, fix_parameters=False,
           rng=None, with_bias=True, apply_w=None, apply_b=None):
    """Fully connected layer: y = x W + b, creating ``affine/W`` and ``affine/b``.

    Args:
        inp: Input Variable; its axes from `base_axis` on are flattened.
        n_outmaps: Number of outputs (an int, or a tuple for a multi-axis output).
        base_axis: The first axis of the features; earlier axes are batch axes.
        w_init: Weight initializer (default: Glorot uniform,
            ``UniformInitializer(calc_uniform_lim_glorot(inmaps, outmaps), rng)``).
        b_init: Bias initializer (default: zeros).
        fix_parameters: Return parameters that receive no gradient.
        rng: NumPy RandomState for the default weight initializer.
        with_bias: Whether to add the bias ``b``.
        apply_w, apply_b: Functions applied to W and b before use (e.g. a constraint).

    Returns:
        The output Variable of shape ``inp.shape[:base_axis] + n_outmaps``.
    """
    outmaps = list(n_outmaps) if hasattr(n_outmaps, "__iter__") else [n_outmaps]
    outmaps = [int(d) for d in outmaps]
    if isinstance(base_axis, int) and base_axis < 0:  # counted from the end, as in nnabla
        base_axis += len(inp.shape)
    inmaps = math.prod(inp.shape[base_axis:])
    if w_init is None:
        w_init = UniformInitializer(calc_uniform_lim_glorot(inmaps, math.prod(outmaps)),
                                    rng=rng)
    w, b = _weight_and_bias([inmaps] + outmaps, outmaps, w_init, b_init, fix_parameters,
                            with_bias, apply_w, apply_b)
    return F.affine(inp, w, b, base_axis)


@parametric_function_api("conv")
def convolution(inp, outmaps, kernel, pad=None, stride=None, dilation=None, group=1,
                channel_last=False, w_init=None, b_init=None, base_axis=1,
                fix_parameters=False, rng=None, with_bias=True, apply_w=None, apply_b=None):
    """N-D convolution layer, creating ``conv/W`` of shape (outmaps, C/group, *kernel) (or
    (outmaps, *kernel, C/group) with ``channel_last=True``) and ``conv/b`` of shape
    (outmaps,), C being the input's channels (axis `base_axis`, or the last).

    Args:
        inp: Input Variable (*batch, C, *L), or (*batch, *L, C) with channel_last.
        outmaps: Number of output channels (convolution kernels).
        kernel: Kernel size, one int per spatial axis, e.g. (3, 3).
        pad, stride, dilation, group, base_axis: as for `F.convolution`.
        channel_last: The channels are the input's last axis (NHWC), as for
            `F.convolution`.
        w_init: Weight initializer (default: Glorot uniform, ``UniformInitializer(
            calc_uniform_lim_glorot(C, outmaps, tuple(kernel)), rng)``, C the full channel
            count).
        b_init: Bias initializer (default: zeros).
        fix_parameters: Return parameters that receive no gradient.
        rng: NumPy RandomState for the default weight initializer.
        with_bias: Whether to add the bias ``b``.
        apply_w, apply_b: Functions applied to W and b before use (e.g. a constraint).

    Returns:
        The output Variable; see `F.convolution` for its shape.
    """
    kernel = tuple(int(k) for k in kernel)
    channels = _channels(inp, base_axis, channel_last)
    per_group = channels // group if isinstance(group, int) and group > 0 else channels
    w_shape = ((int(outmaps),) + kernel + (per_group,) if channel_last
               else (int(outmaps), per_group) + kernel)
    if apply_w is None and apply_b is None:  # (which might give W and b other shapes)
        # refuse a bad configuration before creating parameters for it
        F._convolution_attributes(inp.shape, w_shape, (int(outmaps),) if with_bias else None,
                                  base_axis, pad, stride, dilation, group, channel_last)
    if w_init is None:
        w_init = UniformInitializer(calc_uniform_lim_glorot(channels, outmaps, kernel),
                                    rng=rng)
    w, b = _weight_and_bias(w_shape, (int(outmaps),), w_init, b_init, fix_parameters,
                            with_bias, apply_w, apply_b)
    return F.convolution(inp, w, b, base_axis, pad, stride, dilation, group, channel_last)


def _channels(inp, base_axis, channel_last) -> int:
    """The input channels a convolution layer's weight is sized by: axis `base_axis`, or
    the last with channel_last (0 for a bad base_axis, which F.* then refuses)."""
    if channel_last:
        return inp.shape[-1] if inp.shape else 0
    valid_axis = isinstance(base_axis, int) and 0 <= base_axis < len(inp.shape)
    return inp.shape[base_axis] if valid_axis else 0


__all__ += ["deformable_convolution"]


@parametric_function_api("deformable_conv")
def deformable_convolution(inp, outmaps, kernel, offset, mask=None, pad=None, stride=None,
                           dilation=None, group=1, deformable_group=1, channel_last=False,
                           w_init=None, b_init=None, base_axis=1, fix_parameters=False,
                           rng=None, with_bias=True, apply_w=None, apply_b=None):
    """2-D deformable convolution layer (v2 with `mask`; see `F.deformable_convolution`),
    creating ``deformable_conv/W`` of shape (outmaps, C/group, *kernel) and
    ``deformable_conv/b`` of shape (outmaps,), C the input's channels (axis `base_axis`);
    `offset` (N, deformable_group*2*Kh*Kw, H, W) and `mask` are computed outside (by
    another convolution, as nnabla's docs say). nnabla's default initializers: W
    ``UniformInitializer(calc_uniform_lim_glorot(C, outmaps, tuple(kernel)), rng)``, b
    zeros. A configuration F.deformable_convolution refuses (channel_last=True among
    them, which nnabla refuses at its forward pass) is refused before the parameters are
    created."""
    kernel = tuple(int(k) for k in kernel)
    channels = _channels(inp, base_axis, channel_last)
    per_group = channels // group if isinstance(group, int) and group > 0 else channels
    w_shape = ((int(outmaps),) + kernel + (per_group,) if channel_last
               else (int(outmaps), per_group) + kernel)
    if apply_w is None and apply_b is None:  # (which might give W and b other shapes)
        _deformable_convolution_attributes(
            inp.shape, w_shape, offset.shape, None if mask is None else mask.shape,
            (int(outmaps),) if with_bias else None, base_axis, pad, stride, dilation, group,
            deformable_group, channel_last)
    if w_init is None:
        w_init = UniformInitializer(calc_uniform_lim_glorot(channels, outmaps, kernel),
                                    rng=rng)
    w, b = _weight_and_bias(w_shape, (int(outmaps),), w_init, b_init, fix_parameters,
                            with_bias, apply_w, apply_b)
    return F.deformable_convolution(inp, w, offset, mask, b, base_axis, pad, stride,
                                    dilation, group, deformable_group, channel_last)


@parametric_function_api("bn")
def batch_normalization(inp, axes=[1], decay_rate=0.9, eps=1e-05, batch_stat=True,  # noqa: B006
                        output_stat=False, fix_parameters=False, param_init=None,
                        no_scale=False, no_bias=False):
    """Batch normalization layer (see `F.batch_normalization`), creating ``bn/beta``
    (zeros), ``bn/gamma`` (ones) and the running statistics ``bn/mean`` (zeros) and
    ``bn/var`` (ones), each of shape `inp`'s along `axes` and 1 elsewhere. The running
    statistics are parameters without gradient (``nn.get_parameters(grad_only=False)``
    lists them, solvers leave them alone); every training forward pass updates them.

    Args:
        inp: Input Variable.
        axes: The axes kept (the channels); statistics are over all the others.
        decay_rate, eps, batch_stat, output_stat: as for `F.batch_normalization`.
        fix_parameters: beta and gamma receive no gradient.
        param_init: Initializers by name ("beta", "gamma", "mean", "var"), overriding the
            defaults above.
        no_scale, no_bias: Leave out gamma or beta (and do not create it).

    Returns:
        The normalized Variable, of `inp`'s shape. A graph built with batch_stat=False and
        the same scope shares these parameters (the inference graph).
    """
    beta, gamma, mean, var = _batch_normalization_parameters(
        "batch_normalization", inp, axes, fix_parameters, param_init, no_scale, no_bias)
    return F.batch_normalization(inp, beta, gamma, mean, var, axes, decay_rate, eps,
                                 batch_stat, output_stat)


@parametric_function_api("bn")
def sync_batch_normalization(inp, comm, group="world", axes=[1], decay_rate=0.9,  # noqa: B006
                             eps=1e-05, batch_stat=True, output_stat=False,
                             fix_parameters=False, param_init=None, no_scale=False,
                             no_bias=False):
    """Synchronized batch normalization layer (see `F.sync_batch_normalization`): the
    statistics are over the batches of every process of `comm`'s `group`; parameters as
    PF.batch_normalization's (``bn/beta``, ``bn/gamma``, ``bn/mean``, ``bn/var``)."""
    beta, gamma, mean, var = _batch_normalization_parameters(
        "sync_batch_normalization", inp, axes, fix_parameters, param_init, no_scale, no_bias)
    return F.sync_batch_normalization(inp, beta, gamma, mean, var, comm, group, axes,
                                      decay_rate, eps, batch_stat, output_stat)


@parametric_function_api("deconv")
def deconvolution(inp, outmaps, kernel, pad=None, stride=None, dilation=None, group=1,
                  channel_last=False, output_padding=None, w_init=None, b_init=None,
                  base_axis=1, fix_parameters=False, rng=None, with_bias=True, apply_w=None,
                  apply_b=None):
    """N-D deconvolution layer (see `F.deconvolution`), creating ``deconv/W`` of shape
    (C, outmaps/group, *kernel), C the input's channels (axis `base_axis`), and
    ``deconv/b`` of shape (outmaps,); with ``channel_last=True`` the input is (*batch, *L,
    C) and W (C, *kernel, outmaps/group). The weight's default initializer is nnabla's:
    ``UniformInitializer(calc_uniform_lim_glorot(outmaps, C, tuple(kernel)), rng)``."""
    kernel = tuple(int(k) for k in kernel)
    channels = _channels(inp, base_axis, channel_last)
    per_group = int(outmaps) // group if isinstance(group, int) and group > 0 else int(outmaps)
    if w_init is None:
        w_init = UniformInitializer(calc_uniform_lim_glorot(outmaps, channels, kernel),
                                    rng=rng)
    w_shape = ((channels,) + kernel + (per_group,) if channel_last
               else (channels, per_group) + kernel)
    w, b = _weight_and_bias(w_shape, (int(outmaps),), w_init, b_init, fix_parameters,
                            with_bias, apply_w, apply_b)
    return F.deconvolution(inp, w, b, base_axis, pad, stride, dilation, group, channel_last,
                           output_padding)


@parametric_function_api("depthwise_conv")
def depthwise_convolution(inp, kernel, pad=None, stride=None, dilation=None, multiplier=1,
                          w_init=None, b_init=None, base_axis=1, fix_parameters=False,
                          rng=None, with_bias=True):
    """Depthwise convolution layer (see `F.depthwise_convolution`), creating
    ``depthwise_conv/W`` of shape (C * multiplier, *kernel) and ``depthwise_conv/b`` of
    shape (C * multiplier,); nnabla's default initializer, ``UniformInitializer(
    calc_uniform_lim_glorot(C * multiplier, C, tuple(kernel)), rng)``."""
    kernel = tuple(int(k) for k in kernel)
    valid_axis = isinstance(base_axis, int) and 0 <= base_axis < len(inp.shape)
    channels = inp.shape[base_axis] if valid_axis else 0
    maps = channels * int(multiplier)
    if w_init is None:
        w_init = UniformInitializer(calc_uniform_lim_glorot(maps, channels, kernel), rng=rng)
    w, b = _weight_and_bias((maps,) + kernel, (maps,), w_init, b_init, fix_parameters,
                            with_bias, None, None)
    return F.depthwise_convolution(inp, w, b, base_axis, pad, stride, dilation, multiplier)


@parametric_function_api("depthwise_deconv")
def depthwise_deconvolution(inp, kernel, pad=None, stride=None, dilation=None, divisor=1,
                            w_init=None, b_init=None, base_axis=1, fix_parameters=False,
                            rng=None, with_bias=True):
    """Depthwise deconvolution layer (see `F.depthwise_deconvolution`), creating
    ``depthwise_deconv/W`` of shape (C, *kernel) and ``depthwise_deconv/b`` of shape
    (C // divisor,); nnabla's default initializer, ``UniformInitializer(
    calc_uniform_lim_glorot(C, C, tuple(kernel)), rng)`` (C both ways, as nnabla's)."""
    kernel = tuple(int(k) for k in kernel)
    valid_axis = isinstance(base_axis, int) and 0 <= base_axis < len(inp.shape)
    channels = inp.shape[base_axis] if valid_axis else 0
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 1:
        raise ValueError(f"PF.depthwise_deconvolution: divisor={divisor!r} must be a positive "
                         f"int dividing the input's {channels} channels")
    if w_init is None:
        w_init = UniformInitializer(calc_uniform_lim_glorot(channels, channels, kernel),
                                    rng=rng)
    w, b = _weight_and_bias((channels,) + kernel, (channels // divisor,), w_init, b_init,
                            fix_parameters, with_bias, None, None)
    return F.depthwise_deconvolution(inp, w, b, base_axis, pad, stride, dilation, divisor)


@parametric_function_api("embed")
def embed(inp, n_inputs, n_features, initializer=None, fix_parameters=False, apply_w=None):
    """Embedding layer: ``F.embed(inp, W)`` with ``embed/W`` of shape (n_inputs,
    n_features), uniform in [-sqrt(3), sqrt(3)] by default (nnabla's)."""
    if initializer is None:
        initializer = UniformInitializer((-math.sqrt(3.0), math.sqrt(3.0)))
    w = get_parameter_or_create("W", [int(n_inputs), int(n_features)], initializer, True,
                                not fix_parameters)
    if apply_w is not None:
        w = apply_w(w)
    return F.embed(inp, w)


def _beta_and_gamma(function: str, shape, param_init, fix_parameters, no_scale, no_bias):
    """A normalization layer's beta (zeros) and gamma (ones) in the current scope, with
    `param_init`'s initializers by name; None for the one left out."""
    init = {"beta": ConstantInitializer(0), "gamma": ConstantInitializer(1)}
    unknown = sorted(set(param_init or {}) - set(init))
    if unknown:
        raise ValueError(f"PF.{function}: param_init has unknown keys {unknown}; known: "
                         f"{sorted(init)}")
    init.update(param_init or {})
    beta = None if no_bias else get_parameter_or_create(
        "beta", shape, init["beta"], True, not fix_parameters)
    gamma = None if no_scale else get_parameter_or_create(
        "gamma", shape, init["gamma"], True, not fix_parameters)
    return beta, gamma


def _axes(function: str, axes, shape) -> tuple[int, ...]:
    items = [axes] if isinstance(axes, int) else list(axes)
    return normalize_axes(function, items, shape)


@parametric_function_api("layer_normalization")
def layer_normalization(inp, batch_axis=0, eps=1e-05, output_stat=False, fix_parameters=False,
                        param_init=None, no_scale=False, no_bias=False):
    """Layer normalization layer (see `F.layer_normalization`), creating
    ``layer_normalization/beta`` (zeros) and ``/gamma`` (ones) of the input's shape with
    its batch axes 1."""
    batch = _axes("layer_normalization", batch_axis, inp.shape)
    shape = tuple(1 if i in batch else d for i, d in enumerate(inp.shape))
    beta, gamma = _beta_and_gamma("layer_normalization", shape, param_init, fix_parameters,
                                  no_scale, no_bias)
    return F.layer_normalization(inp, beta, gamma, batch_axis, eps, output_stat)


@parametric_function_api("instance_normalization")
def instance_normalization(inp, channel_axis=1, batch_axis=0, eps=1e-05, output_stat=False,
                           fix_parameters=False, param_init=None, no_scale=False,
                           no_bias=False):
    """Instance normalization layer (see `F.instance_normalization`), creating
    ``instance_normalization/beta`` and ``/gamma`` of shape 1 but along the channels."""
    (channel,) = _axes("instance_normalization", channel_axis, inp.shape)
    shape = tuple(d if i == channel else 1 for i, d in enumerate(inp.shape))
    beta, gamma = _beta_and_gamma("instance_normalization", shape, param_init, fix_parameters,
                                  no_scale, no_bias)
    return F.instance_normalization(inp, beta, gamma, channel_axis, batch_axis, eps,
                                    output_stat)


@parametric_function_api("group_normalization")
def group_normalization(inp, num_groups, channel_axis=1, batch_axis=0, eps=1e-05,
                        output_stat=False, fix_parameters=False, param_init=None,
                        no_scale=False, no_bias=False):
    """Group normalization layer (see `F.group_normalization`), creating
    ``group_normalization/beta`` and ``/gamma`` of shape 1 but along the channels."""
    (channel,) = _axes("group_normalization", channel_axis, inp.shape)
    shape = tuple(d if i == channel else 1 for i, d in enumerate(inp.shape))
    beta, gamma = _beta_and_gamma("group_normalization", shape, param_init, fix_parameters,
                                  no_scale, no_bias)
    return F.group_normalization(inp, beta, gamma, num_groups, channel_axis, batch_axis, eps,
                                 output_stat)


# --- fused batch normalization, mean subtraction, weight normalization -----------------------

__all__ += ["fused_batch_normalization", "sync_batch_normalization", "mean_subtraction",
            "spectral_norm", "weight_normalization"]


def _batch_normalization_parameters(function: str, inp, axes, fix_parameters, param_init,
                                    no_scale, no_bias):
    """nnabla's bn/beta (zeros), bn/gamma (ones), bn/mean (zeros) and bn/var (ones) in the
    current scope, of `inp`'s shape along `axes` and 1 elsewhere (beta or gamma None when
    left out); `param_init` overrides initializers by name."""
    items = [axes] if isinstance(axes, int) else list(axes)
    shape = statistics_shape(inp.shape, normalize_axes(function, items, inp.shape))
    init = {"beta": ConstantInitializer(0), "gamma": ConstantInitializer(1),
            "mean": ConstantInitializer(0), "var": ConstantInitializer(1)}
    unknown = sorted(set(param_init or {}) - set(init))
    if unknown:
        raise ValueError(f"PF.{function}: param_init has unknown keys {unknown}; "
                         f"known: {sorted(init)}")
    init.update(param_init or {})
    beta = None if no_bias else get_parameter_or_create(
        "beta", shape, init["beta"], True, not fix_parameters)
    gamma = None if no_scale else get_parameter_or_create(
        "gamma", shape, init["gamma"], True, not fix_parameters)
    mean = get_parameter_or_create("mean", shape, init["mean"], False)
    var = get_parameter_or_create("var", shape, init["var"], False)
    return beta, gamma, mean, var


@parametric_function_api("bn")
def fused_batch_normalization(inp, z=None, axes=[1], decay_rate=0.9, eps=1e-05,  # noqa: B006
                              batch_stat=True, nonlinearity="relu", output_stat=False,
                              fix_parameters=False, param_init=None, no_scale=False,
                              no_bias=False):
    """relu(batch normalization of `inp` + z) (see `F.fused_batch_normalization`), with
    PF.batch_normalization's parameters: ``bn/beta``, ``bn/gamma``, ``bn/mean``, ``bn/var``."""
    if nonlinearity != "relu":  # before creating parameters for it
        raise ValueError(f"PF.fused_batch_normalization: nonlinearity={nonlinearity!r} is not "
                         "supported; nnabla has only 'relu'")
    beta, gamma, mean, var = _batch_normalization_parameters(
        "fused_batch_normalization", inp, axes, fix_parameters, param_init, no_scale, no_bias)
    return F.fused_batch_normalization(inp, beta, gamma, mean, var, z, axes, decay_rate, eps,
                                       batch_stat, nonlinearity, output_stat)


@parametric_function_api("mean_subtraction")
def mean_subtraction(inp, base_axis=1, update_running_mean=True, fix_parameters=False):
    """Mean subtraction layer (see `F.mean_subtraction`), creating the running mean
    ``mean_subtraction/mean`` (zeros, shape inp.shape[base_axis:]) and the batch count
    ``mean_subtraction/t`` (0, shape (1,)), neither with a gradient. `fix_parameters`
    does nothing, as in nnabla."""
    if isinstance(base_axis, bool) or not isinstance(base_axis, int) \
            or not 0 <= base_axis < len(inp.shape):
        return F.mean_subtraction(inp, None, None, base_axis)  # raises the error
    mean = get_parameter_or_create("mean", inp.shape[base_axis:], ConstantInitializer(0),
                                   False)
    t = get_parameter_or_create("t", (1,), ConstantInitializer(0), False)
    return F.mean_subtraction(inp, mean, t, base_axis, update_running_mean)


@parametric_function_api("wn")
def weight_normalization(w, dim=0, eps=1e-12, g_init=None, fix_parameters=False):
    """Weight normalization of `w` (see `F.weight_normalization`), creating the scale
    ``wn/g`` of shape (w.shape[dim],), by default initialised as nnabla does to the
    L2 norms of `w`'s current values, sqrt(sum(w**2) + eps) over the axes but `dim`, so
    that the normalized weight starts equal to `w`."""
    (axis,) = normalize_axes("weight_normalization", dim, w.shape)
    if g_init is None:
        others = tuple(i for i in range(len(w.shape)) if i != axis)
        g_init = numpy.sqrt(numpy.sum(numpy.asarray(w.d, numpy.float64) ** 2, axis=others)
                            + eps)
    g = get_parameter_or_create("g", (w.shape[axis],), g_init, True, not fix_parameters)
    return F.weight_normalization(w, g, dim, eps)


@parametric_function_api("spectral-norm")
def spectral_norm(w, dim=0, itr=1, eps=1e-12, test=False, u_init=None, fix_parameters=True):
    """Spectral normalization of `w` (see `F.spectral_norm`), creating nnabla's
    ``spectral-norm/u`` of shape (w.shape[dim],), normal N(0, 1) by default, without
    gradient (`fix_parameters` does nothing, as in nnabla)."""
    if isinstance(dim, bool) or not isinstance(dim, int) or not 0 <= dim < len(w.shape):
        return F.spectral_norm(w, w, dim)  # raises the error
    if u_init is None:
        u_init = NormalInitializer()
    u = get_parameter_or_create("u", (w.shape[dim],), u_init, False, False)
    return F.spectral_norm(w, u, dim, itr, eps, test)


__all__ += ["prelu"]


@parametric_function_api("prelu")
def prelu(inp, base_axis=1, shared=True, fix_parameters=False, slope_init=None):
    """PReLU layer: F.prelu of `inp` with its negative slopes ``prelu/slope``, one (shape
    ()) if `shared`, else one per channel (shape (inp.shape[base_axis],)), initialised to
    0.25 by default (nnabla 1.39's code; its docstring says -1)."""
    if not isinstance(inp, F.Variable):
        return F.prelu(inp, inp)  # raises the TypeError
    base = F._base_axis("prelu", inp, base_axis) if inp.shape else 0
    shape = () if shared else (inp.shape[base],)
    if slope_init is None:
        slope_init = ConstantInitializer(0.25)
    w = get_parameter_or_create("slope", shape, slope_init, True, not fix_parameters)
    return F.prelu(inp, w, base_axis)


# --- quantization: binary layers, quantized layers, min_max_quantize ---------------------------
# nnabla's scopes, parameters and initializers (parametric_functions.py of nnabla 1.39):
# W Glorot-uniform (rng), b zeros; the binary layers' Wb (Glorot-uniform too, overwritten
# by every forward pass) and alpha (zeros), neither trained; the quantized layers' W_q
# and b_q, created as nnabla's are. nnabla passes them as the quantizer's `outputs`, so
# its forward writes the quantized weights into them; here they keep their initial
# values (symcompile's functions do not write into given outputs): read the quantized
# weights as the quantizer's output instead.

__all__ += ["binary_connect_affine", "binary_connect_convolution", "binary_weight_affine",
            "binary_weight_convolution", "fixed_point_quantized_affine",
            "fixed_point_quantized_convolution", "pow2_quantized_affine",
            "pow2_quantized_convolution", "min_max_quantize", "min_max_quantized_affine",
            "min_max_quantized_convolution"]


def _default(initializer, make):
    """`initializer`, or `make()` when it is None (not `initializer or ...`: an array
    initializer has no truth value)."""
    return make() if initializer is None else initializer


def _outmaps(n_outmaps) -> list[int]:
    return [int(d) for d in (n_outmaps if hasattr(n_outmaps, "__iter__") else [n_outmaps])]


def _binary_parameters(w_shape, b_shape, fan_in, fan_out, kernel, w_init, wb_init, b_init,
                       fix_parameters, rng, with_bias, alpha_shape=None):
    """W (trained), Wb (not: the forward pass writes sign(W)), alpha (zeros, written too)
    and b (zeros unless b_init), with nnabla's Glorot-uniform default for W and Wb."""
    glorot = calc_uniform_lim_glorot(fan_in, fan_out, kernel)
    w_init = _default(w_init, lambda: UniformInitializer(glorot, rng=rng))
    wb_init = _default(wb_init, lambda: UniformInitializer(glorot, rng=rng))
    w = get_parameter_or_create("W", w_shape, w_init, True, not fix_parameters)
    wb = get_parameter_or_create("Wb", w_shape, wb_init, False)
    alpha = None if alpha_shape is None else get_parameter_or_create(
        "alpha", alpha_shape, ConstantInitializer(0), False)
    b = get_parameter_or_create("b", b_shape, _default(b_init, ConstantInitializer), True,
                                not fix_parameters) if with_bias else None
    return w, wb, alpha, b


def _affine_shapes(inp, n_outmaps, base_axis):
    outmaps = _outmaps(n_outmaps)
    if isinstance(base_axis, int) and base_axis < 0:
        base_axis += len(inp.shape)
    return base_axis, math.prod(inp.shape[base_axis:]), outmaps


@parametric_function_api("bicon_affine")
def binary_connect_affine(inp, n_outmaps, base_axis=1, quantize_zero_to=1.0, w_init=None,
                          wb_init=None, b_init=None, fix_parameters=False, rng=None,
                          with_bias=True):
    """BinaryConnect affine layer (`F.binary_connect_affine`): ``bicon_affine/W`` and
    ``Wb`` (inmaps, *outmaps), ``b`` (*outmaps)."""
    base_axis, inmaps, outmaps = _affine_shapes(inp, n_outmaps, base_axis)
    w, wb, _, b = _binary_parameters([inmaps] + outmaps, outmaps, inmaps, math.prod(outmaps),
                                     (), w_init, wb_init, b_init, fix_parameters, rng, with_bias)
    return F.binary_connect_affine(inp, w, wb, b, base_axis, quantize_zero_to)


@parametric_function_api("bwn_affine")
def binary_weight_affine(inp, n_outmaps, base_axis=1, quantize_zero_to=1.0, w_init=None,
                         wb_init=None, b_init=None, fix_parameters=False, rng=None,
                         with_bias=True):
    """Binary Weight Network affine layer (`F.binary_weight_affine`): ``bwn_affine/W``
    and ``Wb`` (inmaps, *outmaps), ``alpha`` and ``b`` (*outmaps)."""
    base_axis, inmaps, outmaps = _affine_shapes(inp, n_outmaps, base_axis)
    w, wb, alpha, b = _binary_parameters([inmaps] + outmaps, outmaps, inmaps,
                                         math.prod(outmaps), (), w_init, wb_init, b_init,
                                         fix_parameters, rng, with_bias, alpha_shape=outmaps)
    return F.binary_weight_affine(inp, w, wb, alpha, b, base_axis, quantize_zero_to)


def _binary_convolution_parameters(inp, outmaps, kernel, base_axis, w_init, wb_init, b_init,
                                   fix_parameters, rng, with_bias, alpha):
    """W and Wb of nnabla's shape (outmaps, C, *kernel), C the input's channels (nnabla's
    binary convolution layers do not divide it by group)."""
    kernel = tuple(int(k) for k in kernel)
    channels = inp.shape[base_axis]
    return _binary_parameters((int(outmaps), channels) + kernel, (int(outmaps),), channels,
                              int(outmaps), kernel, w_init, wb_init, b_init, fix_parameters,
                              rng, with_bias, alpha_shape=(int(outmaps),) if alpha else None)


@parametric_function_api("bicon_conv")
def binary_connect_convolution(inp, outmaps, kernel, pad=None, stride=None, dilation=None,
                               group=1, quantize_zero_to=1.0, w_init=None, wb_init=None,
                               b_init=None, base_axis=1, fix_parameters=False, rng=None,
                               with_bias=True):
    """BinaryConnect convolution layer (`F.binary_connect_convolution`):
    ``bicon_conv/W`` and ``Wb`` (outmaps, C, *kernel), ``b`` (outmaps,)."""
    w, wb, _, b = _binary_convolution_parameters(inp, outmaps, kernel, base_axis, w_init,
                                                 wb_init, b_init, fix_parameters, rng,
                                                 with_bias, alpha=False)
    return F.binary_connect_convolution(inp, w, wb, b, base_axis, pad, stride, dilation, group,
                                        quantize_zero_to)


@parametric_function_api("bwn_conv")
def binary_weight_convolution(inp, outmaps, kernel, pad=None, stride=None, dilation=None,
                              group=1, quantize_zero_to=1.0, w_init=None, wb_init=None,
                              b_init=None, base_axis=1, fix_parameters=False, rng=None,
                              with_bias=True):
    """Binary Weight Network convolution layer (`F.binary_weight_convolution`):
    ``bwn_conv/W`` and ``Wb`` (outmaps, C, *kernel), ``alpha`` and ``b`` (outmaps,)."""
    w, wb, alpha, b = _binary_convolution_parameters(inp, outmaps, kernel, base_axis, w_init,
                                                     wb_init, b_init, fix_parameters, rng,
                                                     with_bias, alpha=True)
    return F.binary_weight_convolution(inp, w, wb, alpha, b, base_axis, pad, stride, dilation,
                                       group, quantize_zero_to)


def _quantized_parameters(w_shape, b_shape, w_init, b_init, fix_parameters, with_bias,
                          quantize_w, quantize_b, quantize_weight, quantize_bias):
    """W and b (trained), W_q and b_q (nnabla's quantized copies, see above), and the
    weight and bias the layer uses: `quantize_weight(W)` and `quantize_bias(b)` (each
    only when its quantize_* flag is set)."""
    w = get_parameter_or_create("W", w_shape, w_init, True, not fix_parameters)
    if quantize_w:
        get_parameter_or_create("W_q", w_shape, w_init, False)
        w = quantize_weight(w)
    if not with_bias:
        return w, None
    b_init = _default(b_init, ConstantInitializer)
    b = get_parameter_or_create("b", b_shape, b_init, True, not fix_parameters)
    if quantize_b:
        get_parameter_or_create("b_q", b_shape, b_init, False)
        b = quantize_bias(b)
    return w, b


def _quantized_affine(inp, n_outmaps, base_axis, w_init, b_init, fix_parameters, rng,
                      with_bias, quantize_w, quantize_b, quantize_weight, quantize_bias):
    base_axis, inmaps, outmaps = _affine_shapes(inp, n_outmaps, base_axis)
    w_init = _default(w_init, lambda: UniformInitializer(
        calc_uniform_lim_glorot(inmaps, math.prod(outmaps)), rng=rng))
    w, b = _quantized_parameters([inmaps] + outmaps, outmaps, w_init, b_init, fix_parameters,
                                 with_bias, quantize_w, quantize_b, quantize_weight,
                                 quantize_bias)
    return F.affine(inp, w, b, base_axis)


def _quantized_convolution(function, inp, outmaps, kernel, pad, stride, dilation, group,
                           channel_last, w_init, b_init, base_axis, fix_parameters, rng,
                           with_bias, quantize_w, quantize_b, quantize_weight, quantize_bias):
    if channel_last:
        raise ValueError(f"PF.{function}: channel_last=True is not supported: nnabla 1.39 "
                         f"makes W_q of the channel-last shape but W and the convolution "
                         f"channels-first; transpose the input to channels-first instead")
    kernel = tuple(int(k) for k in kernel)
    channels = inp.shape[base_axis]
    w_init = _default(w_init, lambda: UniformInitializer(
        calc_uniform_lim_glorot(channels, outmaps, kernel), rng=rng))
    per_group = channels // group if isinstance(group, int) and group > 0 else channels
    w, b = _quantized_parameters((int(outmaps), per_group) + kernel, (int(outmaps),), w_init,
                                 b_init, fix_parameters, with_bias, quantize_w, quantize_b,
                                 quantize_weight, quantize_bias)
    return F.convolution(inp, w, b, base_axis, pad, stride, dilation, group)


def _fixed_point(sign, n, delta, ste_fine_grained):
    return lambda v: F.fixed_point_quantize(v, sign=sign, n=n, delta=delta,
                                            ste_fine_grained=ste_fine_grained)


def _pow2(sign, with_zero, n, m, ste_fine_grained):
    return lambda v: F.pow2_quantize(v, sign=sign, with_zero=with_zero, n=n, m=m,
                                     ste_fine_grained=ste_fine_grained)


@parametric_function_api("fp_quantized_affine")
def fixed_point_quantized_affine(inp, n_outmaps, base_axis=1, w_init=None, b_init=None,
                                 fix_parameters=False, rng=None, with_bias=True,
                                 quantize_w=True, sign_w=True, n_w=8, delta_w=2**-4,
                                 ste_fine_grained_w=True, quantize_b=True, sign_b=True, n_b=8,
                                 delta_b=2**-4, ste_fine_grained_b=True):
    """F.affine with F.fixed_point_quantize'd W and b (``fp_quantized_affine/W``, ``b``,
    ``W_q``, ``b_q``)."""
    return _quantized_affine(inp, n_outmaps, base_axis, w_init, b_init, fix_parameters, rng,
                             with_bias, quantize_w, quantize_b,
                             _fixed_point(sign_w, n_w, delta_w, ste_fine_grained_w),
                             _fixed_point(sign_b, n_b, delta_b, ste_fine_grained_b))


@parametric_function_api("fp_quantized_conv")
def fixed_point_quantized_convolution(inp, outmaps, kernel, pad=None, stride=None,
                                      dilation=None, group=1, channel_last=False, w_init=None,
                                      b_init=None, base_axis=1, fix_parameters=False, rng=None,
                                      with_bias=True, quantize_w=True, sign_w=True, n_w=8,
                                      delta_w=2**-4, ste_fine_grained_w=True, quantize_b=True,
                                      sign_b=True, n_b=8, delta_b=2**-4,
                                      ste_fine_grained_b=True):
    """F.convolution with F.fixed_point_quantize'd W and b (``fp_quantized_conv/W``,
    ``b``, ``W_q``, ``b_q``)."""
    return _quantized_convolution(
        "fixed_point_quantized_convolution", inp, outmaps, kernel, pad, stride, dilation,
        group, channel_last, w_init, b_init, base_axis, fix_parameters, rng, with_bias,
        quantize_w, quantize_b, _fixed_point(sign_w, n_w, delta_w, ste_fine_grained_w),
        _fixed_point(sign_b, n_b, delta_b, ste_fine_grained_b))


@parametric_function_api("pow2_quantized_affine")
def pow2_quantized_affine(inp, n_outmaps, base_axis=1, w_init=None, b_init=None,
                          fix_parameters=False, rng=None, with_bias=True, quantize_w=True,
                          sign_w=True, with_zero_w=False, n_w=8, m_w=2, ste_fine_grained_w=True,
                          quantize_b=True, sign_b=True, with_zero_b=False, n_b=8, m_b=2,
                          ste_fine_grained_b=True):
    """F.affine with F.pow2_quantize'd W and b (``pow2_quantized_affine/W``, ``b``,
    ``W_q``, ``b_q``)."""
    return _quantized_affine(inp, n_outmaps, base_axis, w_init, b_init, fix_parameters, rng,
                             with_bias, quantize_w, quantize_b,
                             _pow2(sign_w, with_zero_w, n_w, m_w, ste_fine_grained_w),
                             _pow2(sign_b, with_zero_b, n_b, m_b, ste_fine_grained_b))


@parametric_function_api("pow2_quantized_conv")
def pow2_quantized_convolution(inp, outmaps, kernel, pad=None, stride=None, dilation=None,
                               group=1, w_init=None, b_init=None, base_axis=1,
                               fix_parameters=False, rng=None, with_bias=True, quantize_w=True,
                               with_zero_w=False, sign_w=True, n_w=8, m_w=2,
                               ste_fine_grained_w=True, quantize_b=True, with_zero_b=False,
                               sign_b=True, n_b=8, m_b=2, ste_fine_grained_b=True):
    """F.convolution with F.pow2_quantize'd W and b (``pow2_quantized_conv/W``, ``b``,
    ``W_q``, ``b_q``)."""
    return _quantized_convolution(
        "pow2_quantized_convolution", inp, outmaps, kernel, pad, stride, dilation, group,
        False, w_init, b_init, base_axis, fix_parameters, rng, with_bias, quantize_w,
        quantize_b, _pow2(sign_w, with_zero_w, n_w, m_w, ste_fine_grained_w),
        _pow2(sign_b, with_zero_b, n_b, m_b, ste_fine_grained_b))


@parametric_function_api("min_max_quantize")
def min_max_quantize(x, ql_min=0, ql_max=255, decay=0.999, x_min_max=False, ema=False,
                     ste_fine_grained=True, eps=0.01, qr_min_init=None, qr_max_init=None,
                     fix_parameters=False, outputs=None):
    """F.min_max_quantize with its ranges as parameters: ``min_max_quantize/ql_min`` and
    ``ql_max`` (from numbers: shape (1,) * x.ndim, never trained; Variables are used as
    they are), ``qr_min`` and ``qr_max`` of ql_min's shape (-6 and 6 unless given;
    trained unless both x_min_max and ema, as nnabla's)."""
    levels = []
    for name, value in (("ql_min", ql_min), ("ql_max", ql_max)):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            shape = (1,) * len(x.shape)
            value = get_parameter_or_create(name, shape,
                                            numpy.full(shape, float(value)), False, False)
        levels.append(value)
    shape = levels[0].shape
    trained = not (x_min_max and ema)
    qr_min_init = _default(qr_min_init, lambda: ConstantInitializer(-6.0))
    qr_max_init = _default(qr_max_init, lambda: ConstantInitializer(6.0))
    qr_min = get_parameter_or_create("qr_min", shape, qr_min_init, trained, not fix_parameters)
    qr_max = get_parameter_or_create("qr_max", shape, qr_max_init, trained, not fix_parameters)
    return F.min_max_quantize(x, qr_min, qr_max, levels[0], levels[1], decay, x_min_max, ema,
                              ste_fine_grained, eps)


def _min_max(ql_min, ql_max, x_min_max, qr_min_init, qr_max_init, ste_fine_grained, eps,
             fix_parameters, name):
    """nnabla's quantizer of a layer's W or b: PF.min_max_quantize with decay 0.999 and no
    ema, under the scope `name`."""
    return lambda v: min_max_quantize(v, ql_min, ql_max, 0.999, x_min_max, False,
                                      ste_fine_grained, eps, qr_min_init, qr_max_init,
                                      fix_parameters, name=name)


def _min_max_inits(qr_min_w_init, qr_max_w_init, qr_min_b_init, qr_max_b_init):
    """nnabla's defaults: W's range [-2, 2], b's [-6, 6]."""
    return (_default(qr_min_w_init, lambda: ConstantInitializer(-2.0)),
            _default(qr_max_w_init, lambda: ConstantInitializer(2.0)),
            _default(qr_min_b_init, lambda: ConstantInitializer(-6.0)),
            _default(qr_max_b_init, lambda: ConstantInitializer(6.0)))


@parametric_function_api("min_max_quantized_affine")
def min_max_quantized_affine(inp, n_outmaps, base_axis=1, w_init=None, b_init=None,
                             fix_parameters=False, rng=None, with_bias=True, quantize_w=True,
                             ql_min_w=0, ql_max_w=255, w_min_max=False, qr_min_w_init=None,
                             qr_max_w_init=None, ste_fine_grained_w=True, quantize_b=True,
                             ql_min_b=0, ql_max_b=255, b_min_max=False, qr_min_b_init=None,
                             qr_max_b_init=None, ste_fine_grained_b=True, eps=0.01):
    """F.affine with min-max quantized W and b (``min_max_quantized_affine/W``, ``b``,
    ``W_q``, ``b_q``, and the ranges under ``min_max_quantize_w/min_max_quantize`` and
    ``min_max_quantize_b/min_max_quantize``)."""
    w_low, w_high, b_low, b_high = _min_max_inits(qr_min_w_init, qr_max_w_init, qr_min_b_init,
                                                  qr_max_b_init)
    return _quantized_affine(
        inp, n_outmaps, base_axis, w_init, b_init, fix_parameters, rng, with_bias, quantize_w,
        quantize_b, _min_max(ql_min_w, ql_max_w, w_min_max, w_low, w_high, ste_fine_grained_w,
                             eps, fix_parameters, "min_max_quantize_w"),
        _min_max(ql_min_b, ql_max_b, b_min_max, b_low, b_high, ste_fine_grained_b, eps,
                 fix_parameters, "min_max_quantize_b"))


@parametric_function_api("min_max_quantized_conv")
def min_max_quantized_convolution(inp, outmaps, kernel, pad=None, stride=None, dilation=None,
                                  group=1, channel_last=False, w_init=None, b_init=None,
                                  base_axis=1, fix_parameters=False, rng=None, with_bias=True,
                                  quantize_w=True, ql_min_w=0, ql_max_w=255, w_min_max=False,
                                  qr_min_w_init=None, qr_max_w_init=None,
                                  ste_fine_grained_w=True, quantize_b=True, ql_min_b=0,
                                  ql_max_b=255, b_min_max=False, qr_min_b_init=None,
                                  qr_max_b_init=None, ste_fine_grained_b=True, eps=0.01):
    """F.convolution with min-max quantized W and b (``min_max_quantized_conv/W``, ``b``,
    ``W_q``, ``b_q`` and the ranges, as PF.min_max_quantized_affine's)."""
    w_low, w_high, b_low, b_high = _min_max_inits(qr_min_w_init, qr_max_w_init, qr_min_b_init,
                                                  qr_max_b_init)
    return _quantized_convolution(
        "min_max_quantized_convolution", inp, outmaps, kernel, pad, stride, dilation, group,
        channel_last, w_init, b_init, base_axis, fix_parameters, rng, with_bias, quantize_w,
        quantize_b, _min_max(ql_min_w, ql_max_w, w_min_max, w_low, w_high, ste_fine_grained_w,
                             eps, fix_parameters, "min_max_quantize_w"),
        _min_max(ql_min_b, ql_max_b, b_min_max, b_low, b_high, ste_fine_grained_b, eps,
                 fix_parameters, "min_max_quantize_b"))


__all__ += ["inq_affine", "inq_convolution"]


def _inq_parameters(w_shape, b_shape, glorot, w_init, i_init, b_init, fix_parameters, rng,
                    with_bias):
    """W (trained, Glorot-uniform unless w_init), I (the indicators: zeros, not trained; the
    forward pass writes them) and b (zeros unless b_init), as nnabla's INQ layers make
    them."""
    w = get_parameter_or_create("W", w_shape,
                                _default(w_init, lambda: UniformInitializer(glorot, rng=rng)),
                                True, not fix_parameters)
    i = get_parameter_or_create("I", w_shape, _default(i_init, ConstantInitializer), False)
    b = get_parameter_or_create("b", b_shape, _default(b_init, ConstantInitializer), True,
                                not fix_parameters) if with_bias else None
    return w, i, b


@parametric_function_api("inq_affine")
def inq_affine(inp, n_outmaps, base_axis=1, num_bits=4, inq_iterations=(),
               selection_algorithm="random", seed=-1, w_init=None, i_init=None, b_init=None,
               fix_parameters=False, rng=None, with_bias=True):
    """INQ affine layer (`F.inq_affine`): ``inq_affine/W`` and ``I`` (inmaps, *outmaps),
    ``b`` (*outmaps). selection_algorithm defaults to 'random' here, as in nnabla's PF
    (F's default is 'largest_abs')."""
    base_axis, inmaps, outmaps = _affine_shapes(inp, n_outmaps, base_axis)
    w, i, b = _inq_parameters([inmaps] + outmaps, outmaps,
                              calc_uniform_lim_glorot(inmaps, math.prod(outmaps)), w_init,
                              i_init, b_init, fix_parameters, rng, with_bias)
    return F.inq_affine(inp, w, i, b, base_axis, num_bits, inq_iterations, selection_algorithm,
                        seed)


@parametric_function_api("inq_conv")
def inq_convolution(inp, outmaps, kernel, pad=None, stride=None, dilation=None, group=1,
                    num_bits=4, inq_iterations=(), selection_algorithm="random", seed=-1,
                    w_init=None, i_init=None, b_init=None, base_axis=1, fix_parameters=False,
                    rng=None, with_bias=True):
    """INQ convolution layer (`F.inq_convolution`): ``inq_conv/W`` and ``I`` (outmaps, C,
    *kernel), C the input's channels (nnabla's PF does not divide it by group), ``b``
    (outmaps,); selection_algorithm defaults to 'random', as in nnabla's PF."""
    kernel = tuple(int(k) for k in kernel)
    channels = inp.shape[base_axis]
    w, i, b = _inq_parameters((int(outmaps), channels) + kernel, (int(outmaps),),
                              calc_uniform_lim_glorot(channels, int(outmaps), kernel), w_init,
                              i_init, b_init, fix_parameters, rng, with_bias)
    return F.inq_convolution(inp, w, i, b, base_axis, pad, stride, dilation, group, num_bits,
                             inq_iterations, selection_algorithm, seed)
