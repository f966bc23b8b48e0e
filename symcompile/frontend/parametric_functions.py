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

__all__ += ["fused_batch_normalization", "mean_subtraction", "spectral_norm",
            "weight_normalization"]


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
