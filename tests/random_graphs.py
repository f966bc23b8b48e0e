"""Random nnabla-style graphs for property tests: specs, builder, NumPy oracle, source code.

A `GraphSpec` is plain data: leaves (inputs, labels, parameters, with their values) and
steps (``Step("h2", "sum", ("h1",), {"axis": (0, 2), "keepdims": True})``). From one spec

- `build` makes the graph with symcompile's nnabla API,
- `evaluate` computes its loss with NumPy alone (never calling symcompile),
- `as_code` prints it as nnabla-API Python a person can paste; ``repr(spec)`` is that
  code, so hypothesis reports a falsifying example as a program.

`build` runs exactly the code `as_code` prints, so the program a failure reports is the
graph that failed.

`graphs()` draws specs step by step *together with their values*: a step is only taken
where its function is smooth at the values it will see (log of values > 0.1, no value
within MARGIN of a relu/abs/max/clip kink or of a tie, magnitudes at most BOUND), so
central finite differences are a sound oracle for the gradients. Binary functions get
inputs of equal rank with size-1 broadcasting, as nnabla requires.

Every function of symcompile.functions is drawn (REFERENCE has its NumPy value) but those
in NOT_DRAWN, each with its reason. Beyond the elementwise, reduction, shape, product and
softmax functions: convolutions, deconvolutions and depthwise convolutions of small images
(batch 1-2, 1-4 channels, sides 3-5; pad, stride, dilation, group, base_axis,
output_padding, multiplier), pooling (max pooling only where every window has a unique
maximum), unpooling, batch normalization (batch_stat True with a spread-out batch, or
False; running statistics as "stat" parameters no other step reads, as a forward pass
updates them in place), layer/instance/group normalization and the weight
reparametrisations (groups of 2 elements or more with a variance >= 0.1), index functions
(integer index labels), sorting and top-k (no ties), and the piecewise constant functions:
comparisons and logic (no gradient; drawn away from their steps, or exactly on one where
both sides are exact values no gradient reaches, see `_Draft.constant`) and the
straight-through ones (sign, round, ...: nnabla's gradient is not their derivative, so
only on values no gradient reaches). clip_grad_by_value and top_k_grad are drawn where
their backward is the identity.
"""

from __future__ import annotations

import functools
import hashlib
import linecache
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st
from hypothesis.internal.conjecture import providers as _providers
from onnx_resize_reference import nnabla_resize

# Hypothesis mixes literals it finds in the project's own modules (every imported module
# that is not installed) into its draws, so any edit of symcompile or of a test file
# would change which graphs a fixed seed draws, and an editable install would draw other
# graphs than CI's. The graphs must depend on the seed alone: no local constants.
_NO_CONSTANTS = _providers.Constants()
_providers._get_local_constants = lambda: _NO_CONSTANTS

MARGIN = 0.05  # distance every value keeps from a kink, a tie or a domain edge
BOUND = 10.0  # largest magnitude allowed for any value in the graph
MAX_LEAVES = 8  # leaves (inputs, labels, parameters) per graph
RETRIES = 8  # fresh values tried for a new leaf before a step is given up

OPERATORS = {"neg", "+", "-", "*", "/", "**", "@"}
STRUCTURAL = {"sum", "mean", "max", "min", "reduce_sum", "reduce_mean", "reshape", "transpose",
              "broadcast", "slice", "flip", "pad", "concatenate", "affine", "pf_affine",
              "batch_matmul", "@", "softmax",
              "log_softmax", "softmax_cross_entropy", "loss"}



@dataclass(frozen=True)
class Leaf:
    """An array the graph starts from.

    kind: "input" (``nn.Variable``), "label" (an ``nn.Variable`` of integer labels or
    indices, or of targets in [0, 1] for binary_cross_entropy, which may need a gradient),
    "parameter" (``get_parameter_or_create``), "stat" (a parameter without gradient that
    only its step reads: running statistics, gradient-clipping bounds) or "pf" (created by
    a ``PF.affine`` step, which prints it). Only inputs and parameters of at most 3 axes
    are operands of later steps.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    need_grad: bool
    values: np.ndarray = field(compare=False, repr=False)


@dataclass(frozen=True)
class Step:
    """``out = op(*args, **kwargs)``; an argument is a value's name (str) or a number."""

    out: str
    op: str
    args: tuple
    kwargs: dict = field(default_factory=dict, compare=False)


class GraphSpec:
    """A graph: leaves then steps; the last step's output is the scalar ``loss``."""

    def __init__(self, leaves: list[Leaf], steps: list[Step]) -> None:
        self.leaves = leaves
        self.steps = steps

    def values(self) -> dict[str, np.ndarray]:
        """Leaf values by graph name (``x0``, ``w1``, ``fc0/affine/W``), float64: copies, as a
        generated forward() updates running statistics (batch normalization's) in place."""
        return {leaf.name: leaf.values.copy() for leaf in self.leaves}

    def ops(self) -> set[str]:
        return {step.op for step in self.steps}

    def __repr__(self) -> str:
        return as_code(self)

    def _repr_pretty_(self, printer, cycle) -> None:
        """How hypothesis prints a falsifying example: the code, as `__repr__`."""
        printer.text(as_code(self))


# --- NumPy reference of every function (independent of symcompile) -----------------------

def _np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _np_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _np_log_softmax(x, axis=-1):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _np_softmax_cross_entropy(x, t, axis=-1):
    labels = t.astype(int)
    picked = np.take_along_axis(_np_log_softmax(x, axis), np.maximum(labels, 0), axis=axis)
    return np.where(labels == -1, 0.0, -picked)  # label -1: ignored


def _np_sigmoid_cross_entropy(x, t):
    t = np.trunc(t)  # nnabla reads the target as integer labels
    return -(t * np.log(_np_sigmoid(x)) + (1 - t) * np.log(_np_sigmoid(-x)))


def _np_huber(a, b, delta=1.0):
    d = np.abs(a - b)
    return np.where(d < delta, d**2, delta * (2 * d - delta))


def _np_affine(x, w, b=None, base_axis=1):
    batch = x.shape[:base_axis]
    y = x.reshape(math.prod(batch), -1) @ w.reshape(w.shape[0], -1)
    y = y.reshape(batch + w.shape[1:])
    return y if b is None else y + b


def _np_batch_matmul(a, b, transpose_a=False, transpose_b=False):
    a = np.swapaxes(a, -1, -2) if transpose_a else a
    b = np.swapaxes(b, -1, -2) if transpose_b else b
    return np.matmul(a, b)


def _np_loss(*terms, reducers=()):
    return sum(np.sum(t) if r == "sum" else np.mean(t) for t, r in zip(terms, reducers,
                                                                       strict=True))


REFERENCE: dict[str, Callable] = {
    "add2": np.add, "bc_add2": np.add, "sub2": np.subtract, "mul2": np.multiply, "div2": np.divide,
    "pow2": np.power,
    "add_scalar": lambda x, val=1: x + val,
    "mul_scalar": lambda x, val=1: x * val,
    "pow_scalar": lambda x, val=1: x**val,
    "r_sub_scalar": lambda x, val=1: val - x,
    "r_div_scalar": lambda x, val=1: val / x,
    "r_pow_scalar": lambda x, val=1: val**x,
    "identity": lambda x: x + 0.0,
    "tanh": np.tanh, "sigmoid": _np_sigmoid,
    "relu": lambda x: np.where(x > 0, x, 0.0),
    "leaky_relu": lambda x, alpha=0.1: np.where(x > 0, x, alpha * x),
    "elu": lambda x, alpha=1.0: np.where(x >= 0, x, alpha * np.expm1(x)),
    "softplus": lambda x, beta=1.0: np.logaddexp(0.0, beta * x) / beta,
    "exp": np.exp, "log": np.log, "abs": np.abs, "sin": np.sin, "cos": np.cos,
    "maximum2": np.maximum, "minimum2": np.minimum,
    "maximum_scalar": lambda x, val=1.0: np.maximum(x, val),
    "minimum_scalar": lambda x, val=1.0: np.minimum(x, val),
    "clip_by_value": lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi),
    "sum": lambda x, axis=None, keepdims=False: np.sum(x, axis=axis, keepdims=keepdims),
    "mean": lambda x, axis=None, keepdims=False: np.mean(x, axis=axis, keepdims=keepdims),
    "max": lambda x, axis=None, keepdims=False: np.max(x, axis=axis, keepdims=keepdims),
    "min": lambda x, axis=None, keepdims=False: np.min(x, axis=axis, keepdims=keepdims),
    "reduce_sum": np.sum, "reduce_mean": np.mean,
    "reshape": lambda x, shape: np.reshape(x, shape),
    "transpose": lambda x, axes: np.transpose(x, axes),
    "broadcast": lambda x, shape: np.broadcast_to(x, shape),
    "slice": lambda x, start, stop, step: x[tuple(
        slice(b, e, s) for b, e, s in zip(start, stop, step, strict=True))],
    "flip": lambda x, axes: np.flip(x, axes),
    "pad": lambda x, pad_width, constant_value: np.pad(
        x, [(0, 0)] * (x.ndim - len(pad_width) // 2)
        + list(zip(pad_width[0::2], pad_width[1::2], strict=True)),
        constant_values=constant_value),
    "concatenate": lambda *xs, axis: np.concatenate(xs, axis=axis),
    "affine": _np_affine,
    "pf_affine": lambda x, w, b=None, n_outmaps=None, base_axis=1, name=None: _np_affine(
        x, w, b, base_axis),
    "batch_matmul": _np_batch_matmul,
    "softmax": _np_softmax, "log_softmax": _np_log_softmax,
    "softmax_cross_entropy": _np_softmax_cross_entropy,
    "sigmoid_cross_entropy": _np_sigmoid_cross_entropy,
    "binary_cross_entropy": lambda p, t: -(t * np.log(p) + (1 - t) * np.log(1 - p)),
    "squared_error": lambda a, b: (a - b) ** 2,
    "absolute_error": lambda a, b: np.abs(a - b),
    "huber_loss": _np_huber,
    "neg": np.negative, "+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide,
    "**": np.power, "@": np.matmul,
    "loss": _np_loss,
}


# --- references of the convolutional, normalization, index and newer functions -----------

OUTPUT = "_output"  # a step's kwarg: which output of a function of several it takes


def _spatial(value, count, default):
    return tuple(value) if value is not None else (default,) * count


def _np_convolution(x, w, b=None, base_axis=1, pad=None, stride=None, dilation=None, group=1):
    """nnabla's convolution (a cross-correlation), by a loop over the kernel's offsets."""
    count = x.ndim - base_axis - 1
    pad, stride = _spatial(pad, count, 0), _spatial(stride, count, 1)
    dilation = _spatial(dilation, count, 1)
    batch = x.shape[:base_axis]
    xs = np.pad(x.reshape((-1,) + x.shape[base_axis:]),
                [(0, 0), (0, 0)] + [(p, p) for p in pad])
    out_c, in_c, kernel = w.shape[0], w.shape[1], w.shape[2:]
    sizes = [(n - d * (k - 1) - 1) // s + 1
             for n, k, s, d in zip(xs.shape[2:], kernel, stride, dilation, strict=True)]
    y = np.zeros((xs.shape[0], out_c, *sizes))
    per_group = out_c // group
    for g in range(group):
        part = xs[:, g * in_c:(g + 1) * in_c]
        for offset in np.ndindex(*kernel):
            window = tuple(slice(k * d, k * d + s * (m - 1) + 1, s)
                           for k, d, s, m in zip(offset, dilation, stride, sizes, strict=True))
            kernel_w = w[(slice(g * per_group, (g + 1) * per_group), slice(None), *offset)]
            y[:, g * per_group:(g + 1) * per_group] += np.einsum(
                "bc...,oc->bo...", part[(slice(None), slice(None), *window)], kernel_w)
    if b is not None:
        y += b.reshape((1, out_c) + (1,) * count)
    return y.reshape(batch + y.shape[1:])


def _np_deconvolution(x, w, b=None, base_axis=1, pad=None, stride=None, dilation=None,
                      group=1, output_padding=None):
    """nnabla's deconvolution: each input element scatters its kernel, then the pad is
    cropped from both ends (output_padding extends the far end)."""
    count = x.ndim - base_axis - 1
    pad, stride = _spatial(pad, count, 0), _spatial(stride, count, 1)
    dilation = _spatial(dilation, count, 1)
    extra = _spatial(output_padding, count, 0)
    batch = x.shape[:base_axis]
    xs = x.reshape((-1,) + x.shape[base_axis:])
    in_c, per_group, kernel = w.shape[0] // group, w.shape[1], w.shape[2:]
    lengths = xs.shape[2:]
    full = [s * (n - 1) + d * (k - 1) + 1 + e
            for n, k, s, d, e in zip(lengths, kernel, stride, dilation, extra, strict=True)]
    y = np.zeros((xs.shape[0], per_group * group, *full))
    for g in range(group):
        part = xs[:, g * in_c:(g + 1) * in_c]
        out = y[:, g * per_group:(g + 1) * per_group]
        for offset in np.ndindex(*kernel):
            window = tuple(slice(k * d, k * d + s * (n - 1) + 1, s)
                           for k, d, s, n in zip(offset, dilation, stride, lengths, strict=True))
            kernel_w = w[(slice(g * in_c, (g + 1) * in_c), slice(None), *offset)]
            out[(slice(None), slice(None), *window)] += np.einsum("bc...,co->bo...", part,
                                                                  kernel_w)
    crop = tuple(slice(p, f - p) for p, f in zip(pad, full, strict=True))
    y = y[(slice(None), slice(None), *crop)]
    if b is not None:
        y = y + b.reshape((1, -1) + (1,) * count)
    return y.reshape(batch + y.shape[1:])


def _np_depthwise(x, w, b=None, base_axis=1, pad=None, stride=None, dilation=None,
                  multiplier=1):
    """Output channel c*multiplier + m: input channel c with kernel w[c*multiplier + m]."""
    channels = x.shape[base_axis]
    return _np_convolution(x, w[:, None], b, base_axis, pad, stride, dilation, channels)


def _windows(n, k, s, p, ignore_border):
    """Per output position along one axis: (input indices, the padded window's size)."""
    count = (n + 2 * p - k) // s + 1 if ignore_border else (n + p - 1) // s + 1
    out = []
    for m in range(count):
        start = m * s - p
        inside = [i for i in range(start, start + k) if 0 <= i < n]
        padded = len([i for i in range(start, start + k) if -p <= i < n + p])
        out.append((inside, padded))
    return out


def _np_pooling(x, kernel, stride=None, ignore_border=True, pad=None, how="max",
                including_pad=True):
    stride = tuple(kernel) if stride is None else tuple(stride)
    pad = _spatial(pad, len(kernel), 0)
    lead = x.ndim - len(kernel)
    axes = [_windows(x.shape[lead + i], k, s, p, ignore_border)
            for i, (k, s, p) in enumerate(zip(kernel, stride, pad, strict=True))]
    y = np.zeros(x.shape[:lead] + tuple(len(a) for a in axes))
    for position in np.ndindex(*y.shape[lead:]):
        picked = [axes[i][m] for i, m in enumerate(position)]
        block = x[(Ellipsis, *np.ix_(*[p[0] for p in picked]))].reshape(x.shape[:lead] + (-1,))
        if how == "max":
            value = block.max(axis=-1)
        elif how == "sum":
            value = block.sum(axis=-1)
        else:
            size = math.prod(p[1] if including_pad else len(p[0]) for p in picked)
            value = block.sum(axis=-1) / size
        y[(Ellipsis, *position)] = value
    return y


def _np_max_pooling_backward(dy, x, kernel, stride=None, ignore_border=True, pad=None,
                             channel_last=False):
    """max_pooling's x-gradient for dy: each window's dy added at its first maximum in C
    order."""
    if channel_last:  # the channels before the pooled axes, and back
        axis = x.ndim - 1 - len(kernel)
        return np.moveaxis(_np_max_pooling_backward(
            np.moveaxis(dy, -1, axis), np.moveaxis(x, -1, axis), kernel, stride,
            ignore_border, pad), axis, -1)
    stride = tuple(kernel) if stride is None else tuple(stride)
    pad = _spatial(pad, len(kernel), 0)
    lead = x.ndim - len(kernel)
    axes = [_windows(x.shape[lead + i], k, s, p, ignore_border)
            for i, (k, s, p) in enumerate(zip(kernel, stride, pad, strict=True))]
    dx = np.zeros(x.shape)
    for position in np.ndindex(*dy.shape[lead:]):
        picked = [np.asarray(axes[i][m][0]) for i, m in enumerate(position)]
        block = x[(Ellipsis, *np.ix_(*picked))].reshape(x.shape[:lead] + (-1,))
        offsets = np.unravel_index(block.argmax(axis=-1), tuple(len(p) for p in picked))
        for index in np.ndindex(*x.shape[:lead]):
            at = tuple(int(p[o[index]]) for p, o in zip(picked, offsets, strict=True))
            dx[index + at] += dy[index + position]
    return dx


def _np_unpooling(x, kernel):
    for i, k in enumerate(kernel):
        x = np.repeat(x, k, axis=x.ndim - len(kernel) + i)
    return x


def _standardized(x, reduced, eps):
    mean = x.mean(axis=reduced, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=reduced, keepdims=True)
    return (x - mean) / np.sqrt(variance + eps)


def _affine_terms(y, beta, gamma):
    y = y if gamma is None else y * gamma
    return y if beta is None else y + beta


def _np_batch_normalization(x, beta, gamma, mean, variance, axes=(1,), decay_rate=0.9,
                            eps=1e-5, batch_stat=True):
    if batch_stat:
        y = _standardized(x, tuple(i for i in range(x.ndim) if i not in axes), eps)
    else:
        y = (x - mean) / np.sqrt(variance + eps)
    return _affine_terms(y, beta, gamma)


def _np_fused_batch_normalization(x, beta, gamma, mean, variance, z=None, axes=(1,),
                                  decay_rate=0.9, eps=1e-5, batch_stat=True):
    y = _np_batch_normalization(x, beta, gamma, mean, variance, axes, decay_rate, eps,
                                batch_stat)
    return np.maximum(y if z is None else y + z, 0.0)


def _np_layer_normalization(x, beta, gamma, batch_axis=0, eps=1e-5):
    kept = (batch_axis,) if isinstance(batch_axis, int) else tuple(batch_axis)
    kept = tuple(a % x.ndim for a in kept)
    return _affine_terms(_standardized(x, tuple(i for i in range(x.ndim) if i not in kept),
                                       eps), beta, gamma)


def _np_instance_normalization(x, beta, gamma, channel_axis=1, batch_axis=0, eps=1e-5):
    kept = {batch_axis % x.ndim, channel_axis % x.ndim}
    return _affine_terms(_standardized(x, tuple(i for i in range(x.ndim) if i not in kept),
                                       eps), beta, gamma)


def _np_group_normalization(x, beta, gamma, num_groups, channel_axis=1, batch_axis=0,
                            eps=1e-5):
    c = channel_axis % x.ndim
    grouped = x.reshape(x.shape[:c] + (num_groups, x.shape[c] // num_groups) + x.shape[c + 1:])
    # nnabla 1.39's indices: a batch axis after the channels indexes the split shape as it is
    kept = {batch_axis % x.ndim, c}
    y = _standardized(grouped, tuple(i for i in range(grouped.ndim) if i not in kept), eps)
    return _affine_terms(y.reshape(x.shape), beta, gamma)


def _np_round(x):
    return np.sign(x) * np.floor(np.abs(x) + 0.5)  # halves away from 0 (NumPy's: to even)


def _truth(x):
    return (np.asarray(x) != 0).astype(np.float64)


def _np_prod_grad_free(x, axis=None, keepdims=False):
    return np.prod(x, axis=axis, keepdims=keepdims)


def _np_cumulative(x, axis=None, exclusive=False, reverse=False, how=np.cumsum, unit=0.0):
    axis = 0 if axis is None else axis
    x = np.flip(x, axis) if reverse else x
    if exclusive:
        pad = [(0, 0)] * x.ndim
        pad[axis] = (1, 0)
        x = np.take(np.pad(x, pad, constant_values=unit), range(x.shape[axis]), axis=axis)
    y = how(x, axis=axis)
    return np.flip(y, axis) if reverse else y


def _np_sort(x, axis=-1, reverse=False, only_index=False):
    order = np.argsort(-x if reverse else x, axis=axis, kind="stable")
    return order.astype(float) if only_index else np.take_along_axis(x, order, axis=axis)


def _np_extremum_index(x, axis=None, keepdims=False, only_index=True, largest=True):
    """The index of the first max (min) over `axis`, counted in C order over those axes."""
    axes = tuple(range(x.ndim)) if axis is None else tuple(
        a % x.ndim for a in ((axis,) if isinstance(axis, int) else axis))
    rest = [i for i in range(x.ndim) if i not in axes]
    rows = np.transpose(x, rest + list(axes)).reshape(
        [x.shape[i] for i in rest] + [-1])
    index = (np.argmax if largest else np.argmin)(rows, axis=-1).astype(float)
    if keepdims:
        index = index.reshape([1 if i in axes else x.shape[i] for i in range(x.ndim)])
    return index


def _np_max(x, axis=None, keepdims=False, only_index=False):
    if only_index:
        return _np_extremum_index(x, axis, keepdims)
    return np.max(x, axis=axis, keepdims=keepdims)


def _np_min(x, axis=None, keepdims=False, only_index=False):
    if only_index:
        return _np_extremum_index(x, axis, keepdims, largest=False)
    return np.min(x, axis=axis, keepdims=keepdims)


def _np_top_k_data(x, k, abs=False, reduce=True, base_axis=1, largest=True,  # noqa: A002
                   with_index=False, _output=0):
    batch = x.shape[:base_axis]
    rows = x.reshape((math.prod(batch), -1))
    key = np.abs(rows) if abs else rows
    order = np.argsort(-key if largest else key, axis=-1, kind="stable")[:, :k]
    if with_index and _output == 1:
        return order.astype(float).reshape(batch + (k,))
    if reduce:
        return np.take_along_axis(rows, order, axis=-1).reshape(batch + (k,))
    y = np.zeros_like(rows)
    np.put_along_axis(y, order, np.take_along_axis(rows, order, axis=-1), axis=-1)
    return y.reshape(x.shape)


def _np_shift(x, shifts=None, border_mode="nearest"):
    shifts = (0,) * (x.ndim - len(shifts)) + tuple(shifts)
    for axis, s in enumerate(shifts):
        n = x.shape[axis]
        source = np.arange(n) - s
        if border_mode == "nearest":
            source = np.clip(source, 0, n - 1)
        else:  # mirrored about the edges, the edge repeated (NumPy's "symmetric")
            source = np.mod(source, 2 * n)
            source = np.where(source >= n, 2 * n - 1 - source, source)
        x = np.take(x, source, axis=axis)
    return x


def _np_gather(x, indices, axis=0, batch_dims=0):
    idx = indices.astype(int)
    if batch_dims == 0:
        return np.take(x, idx, axis=axis)
    return np.stack([_np_gather(x[i], indices[i], axis - 1, batch_dims - 1)
                     for i in range(x.shape[0])])


def _np_scatter_add(x0, indices, x1, axis=0):
    y = np.array(x0, dtype=np.float64, copy=True)
    for position in np.ndindex(*indices.shape):
        target = list(position)
        target[axis] = int(indices[position])
        y[tuple(target)] += x1[position]
    return y


def _np_embed(x0, w):
    idx = x0.astype(int)
    return np.where((idx == -1)[(...,) + (None,) * (w.ndim - 1)], 0.0, w[np.maximum(idx, 0)])


def _np_one_hot(x, shape):
    return np.eye(shape[0])[x[..., 0].astype(int)]


def _np_broadcast_to(x, y, axis=-1):
    start = x.ndim - y.ndim if axis == -1 else axis
    return np.broadcast_to(y.reshape((1,) * start + y.shape + (1,) * (x.ndim - start - y.ndim)),
                           x.shape)


def _np_interpolate(x, scale=None, output_size=None, mode="linear", align_corners=False,
                    half_pixel=False, half_pixel_for_nn=False):
    """nnabla 1.39's interpolation (interpolate.cpp), axis by axis (it is separable): the
    scale n/m ((n - 1)/(m - 1) with align_corners; 0 for an output of 1)."""
    rank = len(output_size)
    for i, m in enumerate(output_size):
        axis = x.ndim - rank + i
        n = x.shape[axis]
        o = np.arange(m, dtype=np.float64)
        factor = 0.0 if m <= 1 else (n - 1) / (m - 1) if align_corners else n / m
        if mode == "nearest" and half_pixel_for_nn:
            source = n / m * (o + 0.5)
        elif half_pixel:
            source = np.maximum(factor * (o + 0.5) - 0.5, 0.0)
        else:
            source = factor * o
        low = np.minimum(np.floor(source).astype(int), n - 1)
        if mode == "nearest":
            x = np.take(x, low, axis=axis)
            continue
        high = np.minimum(low + 1, n - 1)
        weight = (source - low).reshape([-1 if a == axis else 1 for a in range(x.ndim)])
        x = np.take(x, low, axis=axis) * (1 - weight) + np.take(x, high, axis=axis) * weight
    return x


def _draw_onnx_resize(g, x, vx) -> None:
    """onnx_resize of x on its last 1 to 3 axes (one of scale 1 among them, left as it is),
    in every mode, coordinate mode and nearest mode, where nnabla's float32 coordinates
    and weights are exact, so that the float64 reference (onnx_resize_reference.py) gives
    the same numbers: sizes 2n and n/2 (scales 2 and 1/2), or, for align_corners and
    tf_crop_and_resize, sizes m with m - 1 a power of 2 and rois in quarters; no
    exclude_outside (its division is not exact)."""
    rank = vx.ndim
    first = rank - g.draw(st.integers(1, min(3, rank)))
    mode = g.draw(st.sampled_from(["nearest", "linear", "cubic"]))
    coordinate = g.draw(st.sampled_from(["half_pixel", "pytorch_half_pixel", "align_corners",
                                         "asymmetric", "tf_half_pixel_for_nn",
                                         "tf_crop_and_resize"]))
    ends = coordinate in ("align_corners", "tf_crop_and_resize")
    sizes = list(vx.shape)
    for axis in range(first, rank):
        n = vx.shape[axis]
        options = [1, 2, 3, 5] if ends else [2 * n] + ([n // 2] if n % 2 == 0 else [])
        sizes[axis] = g.draw(st.sampled_from([n] + [m for m in options if m != n]))
    if tuple(sizes) == vx.shape or math.prod(sizes) > 64:
        return
    kw: dict = {"sizes": tuple(sizes)} if ends else {
        "scales": tuple(m / n for m, n in zip(sizes, vx.shape, strict=True))}
    if mode != "nearest":
        kw["mode"] = mode
    if coordinate != "half_pixel":
        kw["coordinate_transformation_mode"] = coordinate
    if coordinate == "tf_crop_and_resize":
        changed = [m != n for m, n in zip(sizes, vx.shape, strict=True)]
        starts = [g.draw(st.sampled_from([-0.25, 0.0, 0.25])) if c else 0.0 for c in changed]
        stops = [g.draw(st.sampled_from([0.75, 1.0, 1.25])) if c else 1.0 for c in changed]
        kw["roi"] = tuple(starts + stops)
        if g.draw(st.booleans()):
            kw["extrapolation_value"] = 0.5
    if mode == "nearest" and g.draw(st.booleans()):
        kw["nearest_mode"] = g.draw(st.sampled_from(["round_prefer_ceil", "floor", "ceil"]))
    if mode == "cubic" and g.draw(st.booleans()):
        kw["cubic_coeff_a"] = -0.5
    g.commit("onnx_resize", [x], kw)


def _np_kl_multinomial(p, q, base_axis=1):
    terms = p * (np.log(p + 1e-8) - np.log(q + 1e-8))
    return terms.reshape(p.shape[:base_axis] + (-1,)).sum(axis=-1, keepdims=True)


def _np_top_n_error(x, target, axis=-1, n=1):
    labels = target.astype(int)
    picked = np.take_along_axis(x, np.maximum(labels, 0), axis=axis)
    higher = (x > picked).sum(axis=axis, keepdims=True)  # ties count against the label:
    ties = (x == picked).sum(axis=axis, keepdims=True) - 1  # the strategy draws none
    return np.where(labels == -1, 0.0, (higher + ties >= n).astype(float))


def _np_tensor_normalization(x, axes, beta=None, gamma=None, eps=1e-05):
    kept = [a % x.ndim for a in ((axes,) if isinstance(axes, int) else axes)]
    reduced = tuple(a for a in range(x.ndim) if a not in kept)
    mean = x.mean(axis=reduced, keepdims=True)
    y = (x - mean) / np.sqrt(((x - mean) ** 2).mean(axis=reduced, keepdims=True) + eps)
    y = y if gamma is None else y * gamma
    return y if beta is None else y + beta


def _np_categorical_cross_entropy(x, target, axis=-1):
    labels = target.astype(int)
    picked = np.take_along_axis(x, np.maximum(labels, 0), axis=axis)
    return np.where(labels == -1, 0.0, -np.log(picked))


def _np_confusion_matrix(x, target, axis=-1):
    """counts[label, argmax] over the rows along `axis` (label -1 counts nowhere)."""
    classes = x.shape[axis]
    guesses = np.argmax(x, axis=axis).ravel()
    labels = np.squeeze(target, axis=axis).astype(int).ravel()
    counts = np.zeros((classes, classes))
    for label, guess in zip(labels, guesses, strict=True):
        if label >= 0:
            counts[label, guess] += 1
    return counts


def _np_depthwise_deconvolution(x, w, divisor=1):
    """Input channel c through its kernel w[c], scattered into output channel
    c // divisor, one input element at a time (stride 1, no padding)."""
    channels, spatial = x.shape[1], x.shape[2:]
    kernel = w.shape[1:]
    out = np.zeros((x.shape[0], channels // divisor)
                   + tuple(n + k - 1 for n, k in zip(spatial, kernel, strict=True)))
    for c in range(channels):
        for position in np.ndindex(*spatial):
            window = tuple(slice(i, i + k) for i, k in zip(position, kernel, strict=True))
            out[(slice(None), c // divisor) + window] += (
                x[(slice(None), c) + position].reshape((-1,) + (1,) * len(kernel)) * w[c])
    return out


def _np_celu(x, alpha=1.0, axis=1):
    def elu(v):
        return np.where(v >= 0, v, alpha * np.expm1(v))

    return np.concatenate([elu(x), elu(-x)], axis=axis)


def _np_prelu(x0, x1, base_axis=1):
    slope = x1 if x1.size == 1 else x1.reshape(
        (x0.shape[base_axis],) + (1,) * (x0.ndim - base_axis - 1))
    return np.where(x0 >= 0, x0, slope * x0)


def _np_norm(x, p, axes):
    return (np.abs(x) ** p).sum(axis=axes, keepdims=True) ** (1 / p)


def _np_weight_standardization(w, channel_axis=0, eps=1e-5):
    return _standardized(w, tuple(i for i in range(w.ndim) if i != channel_axis), eps)


def _np_weight_normalization(w, g, dim=0, eps=1e-12):
    others = tuple(i for i in range(w.ndim) if i != dim)
    norm = np.sqrt((w**2).sum(axis=others, keepdims=True) + eps)
    return g.reshape([-1 if i == dim else 1 for i in range(w.ndim)]) * w / norm


def _np_gather_nd(data, indices):
    idx = indices.astype(int)
    return data[tuple(idx[m] for m in range(idx.shape[0]))]


def _np_scatter_nd(data, indices, shape=None, add=False):
    idx = indices.astype(int)
    y = np.zeros(shape)
    for position in np.ndindex(*idx.shape[1:]):  # in order: without add the last wins
        target = tuple(idx[(slice(None), *position)])
        y[target] = y[target] + data[position] if add else data[position]
    return y


def _np_mod2(x0, x1, fmod=False):
    return np.fmod(x0, x1)


def _np_atan2(x0, x1):
    return np.arctan2(x0, x1)


NEW_REFERENCE: dict[str, Callable] = {
    # elementwise functions of one array
    "tan": np.tan, "sinh": np.sinh, "cosh": np.cosh, "asin": np.arcsin, "acos": np.arccos,
    "atan": np.arctan, "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh,
    "swish": lambda x: x * _np_sigmoid(x),
    "mish": lambda x: x * np.tanh(np.logaddexp(0.0, x)),
    "gelu": lambda x: x / 2 * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))),
    "selu": lambda x, scale=1.05070098735548, alpha=1.673263242354377: scale * np.where(
        x > 0, x, alpha * np.expm1(x)),
    "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "hard_sigmoid": lambda x: np.clip(0.2 * x + 0.5, 0.0, 1.0),
    "hard_tanh": lambda x: np.clip(x, -1.0, 1.0),
    "log_sigmoid": lambda x: -np.logaddexp(0.0, -x),
    "softsign": lambda x: x / (1 + np.abs(x)),
    "tanh_shrink": lambda x: x - np.tanh(x),
    "sinc": lambda x: np.where(x == 0, 1.0, np.sin(x) / np.where(x == 0, 1.0, x)),
    "erf": np.vectorize(math.erf, otypes=[float]),
    "reset_nan": lambda x0, val=0: np.where(np.isnan(x0), val, x0),
    "reset_inf": lambda x0, val=0: np.where(np.isinf(x0), val, x0),
    # piecewise constant (their gradient passes straight through, as nnabla's: drawn on
    # values that need no gradient, see _draw_stepwise)
    "sign": lambda x, alpha=1.0: np.where(x > 0, 1.0, np.where(x < 0, -1.0, alpha)),
    "binary_tanh": lambda x: np.where(x > 0, 1.0, -1.0),
    "binary_sigmoid": lambda x: np.where(x > 0, 1.0, 0.0),
    "ceil": np.ceil, "floor": np.floor, "round": _np_round,
    # no gradient (0): comparisons, logic, classification
    "greater": lambda a, b: (a > b) * 1.0, "greater_equal": lambda a, b: (a >= b) * 1.0,
    "less": lambda a, b: (a < b) * 1.0, "less_equal": lambda a, b: (a <= b) * 1.0,
    "equal": lambda a, b: (a == b) * 1.0, "not_equal": lambda a, b: (a != b) * 1.0,
    "greater_scalar": lambda x0, val=1: (x0 > val) * 1.0,
    "greater_equal_scalar": lambda x0, val=1: (x0 >= val) * 1.0,
    "less_scalar": lambda x0, val=1: (x0 < val) * 1.0,
    "less_equal_scalar": lambda x0, val=1: (x0 <= val) * 1.0,
    "equal_scalar": lambda x0, val=1: (x0 == val) * 1.0,
    "not_equal_scalar": lambda x0, val=1: (x0 != val) * 1.0,
    "logical_and": lambda a, b: _truth(a) * _truth(b),
    "logical_or": lambda a, b: np.maximum(_truth(a), _truth(b)),
    "logical_xor": lambda a, b: (_truth(a) != _truth(b)) * 1.0,
    "logical_not": lambda x0: (x0 == 0) * 1.0,
    "logical_and_scalar": lambda x0, val: _truth(x0) * float(bool(val)),
    "logical_or_scalar": lambda x0, val: np.maximum(_truth(x0), float(bool(val))),
    "logical_xor_scalar": lambda x0, val: (_truth(x0) != float(bool(val))) * 1.0,
    "isnan": lambda x0: np.isnan(x0) * 1.0, "isinf": lambda x0: np.isinf(x0) * 1.0,
    "binary_error": lambda x, t: ((x >= 0.5) != (t >= 0.5)) * 1.0,
    "top_n_error": _np_top_n_error,
    # elementwise functions of two or three arrays
    "atan2": _np_atan2, "mod2": _np_mod2,
    "epsilon_insensitive_loss": lambda a, b, epsilon: np.maximum(np.abs(a - b) - epsilon, 0.0),
    "where": lambda c, a, b: np.where(c != 0, a, b),
    # convolutions, pooling, normalization
    "convolution": _np_convolution, "deconvolution": _np_deconvolution,
    "depthwise_convolution": _np_depthwise,
    "max_pooling": lambda x, kernel, stride=None, ignore_border=True, pad=None: _np_pooling(
        x, kernel, stride, ignore_border, pad, "max"),
    "average_pooling": lambda x, kernel, stride=None, ignore_border=True, pad=None,
    including_pad=True: _np_pooling(x, kernel, stride, ignore_border, pad, "average",
                                    including_pad),
    "sum_pooling": lambda x, kernel, stride=None, ignore_border=True, pad=None: _np_pooling(
        x, kernel, stride, ignore_border, pad, "sum"),
    "global_average_pooling": lambda x: x.reshape(x.shape[:2] + (-1,)).mean(axis=-1).reshape(
        x.shape[:2] + (1, 1)),
    "unpooling": _np_unpooling,
    "max_pooling_backward": _np_max_pooling_backward,
    "batch_normalization": _np_batch_normalization,
    "fused_batch_normalization": _np_fused_batch_normalization,
    "layer_normalization": _np_layer_normalization,
    "instance_normalization": _np_instance_normalization,
    "group_normalization": _np_group_normalization,
    "weight_standardization": _np_weight_standardization,
    "weight_normalization": _np_weight_normalization,
    "norm_normalization": lambda x, p=2.0, axes=None: x / _np_norm(x, p, axes),
    "clip_by_norm": lambda x, clip_norm, axis=None: x * clip_norm / np.maximum(
        _np_norm(x, 2.0, axis), clip_norm),
    "mean_subtraction": lambda x, mean, t, base_axis=1, update_running_mean=False: x - mean,
    # identity forward; the strategies make their backward the identity too
    "clip_grad_by_value": lambda x, lo, hi: x + 0.0,
    "top_k_grad": lambda x, k, abs=False, base_axis=1: x + 0.0,  # noqa: A006
    # arrays: cumulative, sorting, shifting, indexing, shapes
    "cumsum": _np_cumulative,
    "cumprod": functools.partial(_np_cumulative, how=np.cumprod, unit=1.0),
    "prod": _np_prod_grad_free, "sort": _np_sort, "top_k_data": _np_top_k_data,
    "shift": _np_shift, "gather": _np_gather, "scatter_add": _np_scatter_add,
    "embed": _np_embed, "one_hot": _np_one_hot,
    "gather_nd": _np_gather_nd, "scatter_nd": _np_scatter_nd,
    "tile": lambda x, reps: np.tile(x, reps),
    "stack": lambda *xs, axis=0: np.stack(xs, axis=axis),
    "split": lambda x, axis=0, _output=0: np.take(x, _output, axis=axis),
    "meshgrid": lambda *xs, ij_indexing=False, _output=0: np.meshgrid(
        *xs, indexing="ij" if ij_indexing else "xy")[_output],
    "matrix_diag": lambda x: x[..., :, None] * np.eye(x.shape[-1]),
    "matrix_diag_part": lambda x: np.diagonal(x, axis1=-2, axis2=-1).copy(),
    "broadcast_to": _np_broadcast_to,
    "sink": lambda *xs: sum(np.sum(x) for x in xs),
    "constant": lambda val=0, shape=(): np.full(shape, val),
    "arange": lambda start, stop, step=1: np.arange(start, stop, step),  # (exact steps)
    "linspace": np.linspace,
    "einsum": lambda *xs, equation: np.einsum(equation, *xs),
    "interpolate": _np_interpolate,
    "onnx_resize": nnabla_resize,
    "celu": _np_celu, "prelu": _np_prelu, "kl_multinomial": _np_kl_multinomial,
    "crelu": lambda x, axis=1: np.concatenate([np.maximum(x, 0), np.maximum(-x, 0)], axis),
    "add_n": lambda *xs: functools.reduce(np.add, xs),
    "mul_n": lambda *xs: functools.reduce(np.multiply, xs),
    "norm": lambda x, p=None, axis=None, keepdims=False: np.sum(
        np.abs(x) ** (p or 2.0), axis=axis, keepdims=keepdims) ** (1 / (p or 2.0)),
    "trilu": lambda x, k=0, upper=True: np.triu(x, k) if upper else np.tril(x, k),
    "patch_correlation": lambda *args, **kw: _np_patch_correlation(*args, **kw),
    "affine_grid": lambda *args, **kw: _np_affine_grid(*args, **kw),
    "warp_by_grid": lambda *args, **kw: _np_warp_by_grid(*args, **kw),
    "warp_by_flow": lambda *args: _np_warp_by_flow(*args),
    "batch_inv": np.linalg.inv, "batch_det": np.linalg.det,
    "batch_logdet": lambda x: np.linalg.slogdet(x)[1],
    "fft": lambda x, signal_ndim, normalized=False: _np_dft(x, signal_ndim, normalized, False),
    "ifft": lambda x, signal_ndim, normalized=False: _np_dft(x, signal_ndim, normalized, True),
    "eye_like": lambda x, k=0: np.eye(x.shape[0], x.shape[1], k),
    "shape": lambda x, start=None, end=None: np.array(
        x.shape[start:(None if end == 0 else end)], dtype=float),
    "tensor_normalization": _np_tensor_normalization,
    "categorical_cross_entropy": _np_categorical_cross_entropy,
    "confusion_matrix": _np_confusion_matrix,
    "depthwise_deconvolution": _np_depthwise_deconvolution,
}
REFERENCE.update(NEW_REFERENCE)
REFERENCE["deformable_convolution"] = lambda *a, **kw: _np_deformable_convolution(*a, **kw)
REFERENCE["adaptive_separable_convolution"] = lambda *a: _np_adaptive_separable_convolution(*a)
STRUCTURAL |= {"deformable_convolution", "adaptive_separable_convolution"}


def _convolution_channel_last(reference):
    """A channels-first convolution reference that also takes channel_last=True: x's
    channels last (moved to base_axis), the weight's last (moved to axis 1)."""

    def apply(x, w, *rest, channel_last=False, **kw):
        if not channel_last:
            return reference(x, w, *rest, **kw)
        base = kw.get("base_axis", 1)
        y = reference(np.moveaxis(x, -1, base), np.moveaxis(w, -1, 1), *rest, **kw)
        return np.moveaxis(y, base, -1)

    return apply


def _pooling_channel_last(reference):
    """A channels-first pooling reference that also takes channel_last=True: the channels
    are x's last axis, after the len(kernel) pooled axes."""

    def apply(x, kernel, *rest, channel_last=False, **kw):
        if not channel_last:
            return reference(x, kernel, *rest, **kw)
        axis = x.ndim - 1 - len(kernel)
        return np.moveaxis(reference(np.moveaxis(x, -1, axis), kernel, *rest, **kw), axis, -1)

    return apply


for _name in ("convolution", "deconvolution"):
    REFERENCE[_name] = _convolution_channel_last(REFERENCE[_name])
for _name in ("max_pooling", "average_pooling", "sum_pooling", "unpooling"):
    REFERENCE[_name] = _pooling_channel_last(REFERENCE[_name])
REFERENCE["max"], REFERENCE["min"] = _np_max, _np_min  # (with only_index)
REFERENCE["pad"] = lambda x, pad_width, constant_value=0.0, mode="constant": np.pad(
    x, [(0, 0)] * (x.ndim - len(pad_width) // 2)
    + list(zip(pad_width[0::2], pad_width[1::2], strict=True)),
    **({"constant_values": constant_value} if mode == "constant" else {}),
    mode={"constant": "constant", "reflect": "reflect", "repeat": "edge"}[mode])
STRUCTURAL |= set(NEW_REFERENCE) - {
    "tan", "sinh", "cosh", "asin", "acos", "atan", "asinh", "acosh", "atanh", "swish", "mish",
    "gelu", "selu", "relu6", "hard_sigmoid", "hard_tanh", "log_sigmoid", "softsign",
    "tanh_shrink", "sinc", "erf", "reset_nan", "reset_inf", "atan2", "mod2",
    "epsilon_insensitive_loss"}
# Functions of symcompile.functions the graphs do not draw, and why:
NOT_DRAWN = {
    # random: a new draw every forward pass, so neither a NumPy value nor a finite
    # difference to compare with
    "rand": "random", "randn": "random", "randint": "random", "dropout": "random",
    "random_crop": "random", "random_flip": "random", "random_shift": "random",
    "image_augmentation": "random", "random_choice": "random",
    "random_erase": "random",
    "rand_binomial": "random", "rand_beta": "random", "rand_gamma": "random",
    # indices into a sorted sequence, with no gradient (nnabla has no backward); checked
    # against numpy.searchsorted and nnabla in test_searchsorted.py
    "searchsorted": "indices, no gradient",
    # a mask whose count of non-zeros must equal the input's rows: random values break it;
    # checked against a loop, central differences and nnabla in test_bool_scatter.py
    "bool_scatter": "mask with a fixed count of non-zeros",
    # output shapes that follow from an input's values when the graph is built (random
    # graphs build on shapes alone); checked against references, central differences and
    # nnabla in test_value_shaped.py
    "bool_gather": "shape from the mask's values", "nonzero": "shape from the values",
    "unique": "shape from the values",
    # (checked against loops, central differences and nnabla in test_packed_sequences.py)
    "pack_padded_sequence": "shape from the lengths' values",
    "pad_packed_sequence": "shape from the batch sizes' values",
    "onnx_non_max_suppression": "shape from the values",  # (test_onnx_nms.py)
    "bit_shift": "unsigned integer inputs",  # (test_bit_shift.py)
    # needs a communicator, and a group of processes to differ from batch_normalization
    # (drawn); checked across threads against a NumPy reference and central differences,
    # and on two MPI processes, in test_sync_batch_normalization.py
    "sync_batch_normalization": "statistics across processes",
    # no gradient, as nnabla's backward (which writes none, though the output copies x's
    # boxes); checked against a loop and nnabla in test_nms_detection2d.py
    "nms_detection2d": "gradient not the derivative",
    # F.where with a constant true branch (test_elementwise_catalogue.py checks it, and
    # against nnabla)
    "bool_fill": "where of a constant",
    # its backward is by design not the derivative of its forward (identity forward, the
    # gradient always rescaled to clip_norm), so central differences cannot check it
    "clip_grad_by_norm": "gradient not the derivative",
    # the power iteration's vectors are constants to the gradient by design (nnabla's),
    # so the gradient is not the derivative of w / sigma(w); and test=False overwrites u
    "spectral_norm": "gradient not the derivative",
    # its forward overwrites its dst, a leaf, and its gradient is not the derivative of
    # its value (src's) but dst's; checked on its own in test_assign.py
    "assign": "overwrites a leaf",
    # no gradient by design (nnabla's): its backward writes eps * dy into w's values
    # instead, so neither gradient is the derivative; checked against a NumPy reference
    # and nnabla (VAT's power iterations) in test_vat_noise.py
    "vat_noise": "gradient not the derivative; the backward writes a leaf",
    # compositions of drawn functions (affine, sigmoid, tanh, slices...) unrolled over
    # time, each checked against a step-by-step reference in test_recurrent.py
    "rnn": "composition", "lstm": "composition", "gru": "composition",
    "multi_head_attention": "composition",  # (of softmax, batch_matmul...: test_attention.py)
    # of drawn functions (convolution, batch_normalization, add2, the activations), checked
    # against a NumPy reference and nnabla in test_catalogue_more.py
    "fused_convolution": "composition",
    # nnabla's compositions too (pad, convolution/deconvolution with windowed DFT bases, a
    # division by the overlap-added window), of 2-D signals or 3-D spectra of fixed sizes;
    # checked against NumPy references, central differences and nnabla in test_signal.py
    "stft": "composition", "istft": "composition",
    # nnabla's gradient is symmetric (S + S^T)/2, the derivative along symmetric moves only,
    # so central differences of one element of a leaf cannot check it; checked through a
    # symmetrised input and against nnabla in test_linalg_and_draws.py
    "batch_cholesky": "gradient along symmetric matrices only",
    # its backward leaves x's gradient untouched by design (nnabla's), so the gradient is not
    # the derivative of its value, x; checked on its own in test_catalogue_more.py
    "unlink": "gradient not the derivative",
    # nnabla's straight-through estimators: the backward of a piecewise-constant quantizer
    # is dy (masked where it saturates), not its derivative (0 almost everywhere); checked
    # exactly and against nnabla in test_quantization.py
    "fixed_point_quantize": "gradient not the derivative",
    "pow2_quantize": "gradient not the derivative",
    "prune": "gradient not the derivative",
    "quantize_linear": "gradient not the derivative",
    "min_max_quantize": "gradient not the derivative",  # (and it overwrites its ranges)
    # the weight's gradient is the binarized weight's (sign's straight-through), and the
    # forward pass overwrites binary_weight and alpha, leaves
    "binary_connect_affine": "gradient not the derivative",
    "binary_connect_convolution": "gradient not the derivative",
    "binary_weight_affine": "gradient not the derivative",
    "binary_weight_convolution": "gradient not the derivative",
    # the weight's gradient is the quantized weight's (straight through), and the forward
    # pass overwrites the weight, the indicators and its hidden state; checked against a
    # NumPy reference, central differences and nnabla's training runs in test_inq.py
    "inq_affine": "gradient not the derivative; the forward writes its leaves",
    "inq_convolution": "gradient not the derivative; the forward writes its leaves",
    # scale and zero_point get no gradient by design (nnabla raises if asked), so central
    # differences in them would not match; x's gradient is checked in test_quantization.py
    "dequantize_linear": "gradient not the derivative",
    # the boxes get no gradient by design (nnabla's backward writes none), though the
    # output moves with them, so central differences in a boxes leaf would not match; and
    # sampling_ratio <= 0 makes the count of samples jump with the box's size. Checked
    # against a loop reference, central differences in the input, second derivatives and
    # nnabla in test_roi_align.py
    "roi_align": "gradient not the derivative",
}
ELEMENTWISE = set(REFERENCE) - STRUCTURAL


def _apply(step: Step, env: dict) -> np.ndarray:
    args = [env[a] if isinstance(a, str) else a for a in step.args]
    with np.errstate(all="ignore"):  # out-of-domain candidates are rejected by the caller
        return np.asarray(REFERENCE[step.op](*args, **step.kwargs), dtype=np.float64)


def evaluate(spec: GraphSpec, values: dict[str, np.ndarray] | None = None) -> float:
    """The loss of `spec` at `values` (default: the spec's own), computed with NumPy only."""
    env = dict(spec.values() if values is None else values)
    for step in spec.steps:
        env[step.out] = _apply(step, env)
    return float(env["loss"])


# --- the graph as nnabla-API source -------------------------------------------------------

def _literal(value) -> str:
    if isinstance(value, np.ndarray):
        return f"np.array({value.tolist()!r})"
    return repr(value)


def _operand(arg) -> str:
    """An operator's operand: a name, or a number (parenthesised when negative)."""
    if isinstance(arg, str):
        return arg
    return f"({arg!r})" if arg < 0 else repr(arg)


def _call(function: str, step: Step) -> str:
    parts = [a if isinstance(a, str) else _literal(a) for a in step.args]
    parts += [f"{k}={_literal(v)}" for k, v in step.kwargs.items() if k != OUTPUT]
    # a function of several outputs (F.split, F.meshgrid, ...): the one the step takes
    picked = f"[{step.kwargs[OUTPUT]}]" if OUTPUT in step.kwargs else ""
    return f"{function}({', '.join(parts)}){picked}"


def _step_lines(step: Step, values: dict[str, np.ndarray]) -> list[str]:
    if step.op == "neg":
        return [f"{step.out} = -{step.args[0]}"]
    if step.op in OPERATORS:
        left, right = (_operand(a) for a in step.args)
        return [f"{step.out} = {left} {step.op} {right}"]
    if step.op == "loss":
        terms = [f"F.{r}({t})" for t, r in zip(step.args, step.kwargs["reducers"], strict=True)]
        return [f"{step.out} = {' + '.join(terms)}"]
    if step.op == "pf_affine":
        kw = step.kwargs
        x, w = step.args[:2]
        line = (f"{step.out} = PF.affine({x}, {kw['n_outmaps']!r}, base_axis={kw['base_axis']}, "
                f"w_init={_literal(values[w])}")
        if len(step.args) == 2:
            return [line + f", with_bias=False, name={kw['name']!r})"]
        b = step.args[2]
        return [line + f", b_init={_literal(values[b])}, name={kw['name']!r})"]
    return [f"{step.out} = {_call('F.' + step.op, step)}"]


def _leaf_lines(leaf: Leaf) -> list[str]:
    if leaf.kind in ("parameter", "stat"):
        flag = "" if leaf.need_grad else ", need_grad=False"
        return [f"{leaf.name} = nn.parameter.get_parameter_or_create({leaf.name!r}, "
                f"{leaf.shape!r}, {_literal(leaf.values)}{flag})"]
    return [f"{leaf.name} = nn.Variable({leaf.shape!r}, need_grad={leaf.need_grad})",
            f"{leaf.name}.name = {leaf.name!r}",
            f"{leaf.name}.d = {_literal(leaf.values)}"]


def as_code(spec: GraphSpec) -> str:
    """`spec` as a runnable nnabla-API program that ends with ``loss = ...``."""
    lines = ["import numpy as np", "", "import symcompile as nn",
             "import symcompile.functions as F", "import symcompile.parametric_functions as PF",
             "", "nn.clear_parameters()"]
    for leaf in spec.leaves:
        if leaf.kind != "pf":
            lines += _leaf_lines(leaf)
    values = spec.values()
    for step in spec.steps:
        lines += _step_lines(step, values)
    return "\n".join(lines) + "\n"


def build(spec: GraphSpec):
    """Build `spec` with symcompile by running `as_code(spec)` (which clears the parameters).

    Returns:
        (loss Variable, {graph name: leaf Variable}).
    """
    import symcompile as nn

    code = as_code(spec)
    # A unique pseudo-file holding the source, so symcompile's call-site comments and
    # value names (h0, h1, ...) can read it back as they read a user's file.
    filename = f"<random graph {hashlib.sha256(code.encode()).hexdigest()[:12]}>"
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    namespace: dict = {}
    exec(compile(code, filename, "exec"), namespace)  # noqa: S102 - our own generated code
    parameters = nn.get_parameters(grad_only=False)
    leaves = {leaf.name: namespace[leaf.name] if leaf.kind != "pf" else parameters[leaf.name]
              for leaf in spec.leaves}
    return namespace["loss"], leaves


# --- values of new leaves ----------------------------------------------------------------

def _signed(rng, shape, low, high):
    magnitude = rng.uniform(low, high, size=shape)
    return np.where(rng.random(size=shape) < 0.5, -magnitude, magnitude)


DOMAINS: dict[str, Callable] = {
    "normal": lambda rng, shape, n: _signed(rng, shape, 0.1, 2.0),
    "away": lambda rng, shape, n: _signed(rng, shape, 0.3, 2.0),  # denominators
    "positive": lambda rng, shape, n: rng.uniform(0.2, 2.0, size=shape),
    "probability": lambda rng, shape, n: rng.uniform(0.05, 0.95, size=shape),
    "unit": lambda rng, shape, n: rng.uniform(0.0, 1.0, size=shape),
    "binary": lambda rng, shape, n: rng.integers(0, 2, size=shape).astype(float),
    "labels": lambda rng, shape, n: rng.integers(-1, n, size=shape).astype(float),
    "weight": lambda rng, shape, n: _signed(rng, shape, 0.1, 1.5) / math.sqrt(n),
    "inner": lambda rng, shape, n: _signed(rng, shape, 0.05, 0.85),  # asin, atanh
    "above1": lambda rng, shape, n: rng.uniform(1.2, 3.0, size=shape),  # acosh
    "integers": lambda rng, shape, n: rng.integers(-2, 3, size=shape).astype(float),
    "indices": lambda rng, shape, n: rng.integers(0, n, size=shape).astype(float),
    "wide": lambda rng, shape, n: np.full(shape, float(n)),  # clip_grad_by_value's bounds
}


def _values(domain: str, rng, shape, n=1) -> np.ndarray:
    """Values rounded to 2 decimals (3 for small weights), so the printed code stays short."""
    decimals = 3 if domain == "weight" else 2
    return np.asarray(np.round(DOMAINS[domain](rng, shape, n), decimals), dtype=np.float64)


# --- preconditions ------------------------------------------------------------------------

def _far(a, b=0.0) -> bool:
    return bool(np.all(np.abs(np.asarray(a) - b) > MARGIN))


def _bounded(y) -> bool:
    return bool(np.all(np.isfinite(y)) and np.all(np.abs(y) <= BOUND))


def _pow_ok(x, val) -> bool:
    if float(val).is_integer():
        return val >= 0 or bool(np.all(np.abs(x) > 0.3))
    return bool(np.all(x > 0.1))


def _unique_extremum(x, axes, largest) -> bool:
    """Along every reduced slice, the max (min) beats every other element by MARGIN."""
    x = np.asarray(x)
    if x.ndim == 0:
        return True
    axes = tuple(range(x.ndim)) if axes is None else tuple(
        a % x.ndim for a in ((axes,) if isinstance(axes, int) else axes))
    rest = [i for i in range(x.ndim) if i not in axes]
    rows = np.transpose(x, rest + list(axes)).reshape(-1, math.prod(x.shape[a] for a in axes))
    if rows.shape[1] < 2:
        return True
    rows = np.sort(rows if largest else -rows, axis=1)
    return bool(np.all(rows[:, -1] - rows[:, -2] > MARGIN))


# --- drawing graphs -----------------------------------------------------------------------

SIZES = st.integers(1, 4)
SEEDS = st.integers(0, 2**32 - 1)
SCALARS = st.sampled_from([1.5, -0.5, 2.0, 0.25, -2.0, 0.0, 3])
POWERS = st.sampled_from([2, 3, 0.5, -1.0, 1.5, 2.0, -2, -0.5])
NEW = "<new leaf>"
PREFIX = {"input": "x", "parameter": "w", "label": "t", "stat": "s"}


class _Draft:
    """A spec under construction, with the NumPy value of every name so far.

    New leaves get provisional names; `spec()` renumbers everything in order of
    appearance, so steps that were given up leave no gaps.
    """

    def __init__(self, draw, focus: str | None = None) -> None:
        self.draw = draw
        self.focus = focus  # a function every choice that can pick it picks (see graphs)
        # Hypothesis favours its simplest choice (index 0) and copies choices about, so
        # `choose` maps its choice through a permutation drawn once per graph: across graphs
        # every function is about as likely, and a step's function does not change when
        # shrinking removes other steps.
        self.seed = draw(SEEDS)
        self.permutations: dict[int, np.ndarray] = {}
        self.leaves: list[Leaf] = []
        self.steps: list[Step] = []
        self.env: dict[str, np.ndarray] = {}
        self.names: list[str] = []  # values a step may use (not labels), oldest first
        self.used: set[str] = set()
        # values no leaf with need_grad reaches (or only through functions with no
        # gradient, at values away from their steps): a finite difference leaves them be
        self.constant: set[str] = set()
        self.serial = 0

    def fresh(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial}"

    def choose(self, options: list):
        """One of `options`, through this graph's permutation of their positions."""
        if self.focus is not None:
            picked = [o for o in options if _draws(o, self.focus)]
            if picked:
                return picked[0] if len(picked) == 1 else self.draw(st.sampled_from(picked))
        n = len(options)
        if n not in self.permutations:
            self.permutations[n] = np.random.default_rng([self.seed, n]).permutation(n)
        return options[self.permutations[n][self.draw(st.integers(0, n - 1))]]

    def shape(self, min_rank=0, max_rank=3) -> tuple[int, ...]:
        return tuple(self.draw(st.lists(SIZES, min_size=min_rank, max_size=max_rank)))

    def compatible_shape(self, shape) -> tuple[int, ...]:
        """A shape of the same rank that broadcasts with `shape` (size 1 either way)."""
        return tuple(self.draw(st.sampled_from([d, 1] if d > 1 else [1, 2, 3, 4]))
                     for d in shape)

    def room(self, n=1) -> bool:
        return len(self.leaves) + n <= MAX_LEAVES

    def value(self, arg):
        return arg.values if isinstance(arg, Leaf) else self.env[arg]

    def new_values(self, domain: str, shape, accept=lambda v: True, n=1):
        """Values from `domain` that `accept` likes (a few tries), or None."""
        rng = np.random.default_rng(self.draw(SEEDS))
        for _ in range(RETRIES):
            values = _values(domain, rng, shape, n)
            if accept(values):
                return values
        return None

    def new_leaf(self, kind: str | None, shape, values, need_grad=None) -> Leaf:
        """An uncommitted leaf (`commit` adds it with the step that uses it)."""
        kind = kind or self.choose(["input", "parameter"])
        if need_grad is None:
            need_grad = kind != "label" and self.draw(st.sampled_from([True, True, True, False]))
        return Leaf(self.fresh(PREFIX[kind]), kind, tuple(shape), need_grad, values)

    def operand(self, accept, shape_fn, domain="normal", need_grad=None, n=1):
        """An existing value `accept` likes (the most recent first, so shrinking makes
        chains) or a new leaf of shape `shape_fn()` with values from `domain` (and
        `need_grad`, None: drawn); None if neither works."""
        options = [n for n in reversed(self.names) if accept(self.env[n])]
        if self.room():
            options.append(NEW)
        if not options:
            return None
        choice = self.draw(st.sampled_from(options))
        if choice != NEW:
            return choice
        shape = shape_fn()
        values = self.new_values(domain, shape, accept, n)
        return None if values is None else self.new_leaf(None, shape, values, need_grad)

    def label(self, shape, domain: str, n=1, need_grad=False) -> Leaf:
        return self.new_leaf("label", shape, self.new_values(domain, shape, n=n), need_grad)

    def commit(self, op: str, args: list, kwargs: dict | None = None,
               out=None) -> str | None:
        """Add ``out = op(*args, **kwargs)`` if its value is finite and bounded (except the
        loss's); uncommitted Leafs among `args` are committed with it. The new value's
        name, or None."""
        kwargs = kwargs or {}
        new = {a.name: a for a in args if isinstance(a, Leaf) and a.name not in self.env}
        env = self.env | {name: leaf.values for name, leaf in new.items()}
        names = tuple(a.name if isinstance(a, Leaf) else a for a in args)
        step = Step(out or self.fresh("h"), op, names, kwargs)
        value = _apply(step, env)
        if not (_bounded(value) or (step.out == "loss" and np.all(np.isfinite(value)))):
            return None
        for name, leaf in new.items():
            self.leaves.append(leaf)
            self.env[name] = leaf.values
            if not leaf.need_grad:
                self.constant.add(name)
            if leaf.kind in ("input", "parameter") and leaf.values.ndim <= 3:
                self.names.append(name)  # (an affine weight may have 4 axes)
        self.used.update(a for a in names if isinstance(a, str))
        self.steps.append(step)
        self.env[step.out] = value
        self.names.append(step.out)
        if op in NO_GRADIENT or kwargs.get("only_index") or (
                op == "top_k_data" and kwargs.get(OUTPUT) == 1) or all(
                a in self.constant for a in names if isinstance(a, str)):
            self.constant.add(step.out)
        return step.out

    def exact(self, name) -> bool:
        """A value both sides compute exactly: a leaf's without gradient, or a constant
        holding integers (so a comparison of it is not decided by rounding)."""
        if name is None:
            return False
        if isinstance(name, Leaf):
            return not name.need_grad
        v = self.env[name]
        return name in self.constant and (
            any(leaf.name == name for leaf in self.leaves) or bool(np.all(v == np.round(v))))

    def spec(self) -> GraphSpec:
        return _renumber(GraphSpec(self.leaves, self.steps))


def without_loss_term(spec: GraphSpec, index: int) -> GraphSpec:
    """`spec` without the loss's `index`-th term and the steps and leaves only it used."""
    *steps, loss = spec.steps
    reducers = loss.kwargs["reducers"]
    keep = [i for i in range(len(loss.args)) if i != index]
    loss = Step("loss", "loss", tuple(loss.args[i] for i in keep),
                {"reducers": tuple(reducers[i] for i in keep)})
    needed = set(loss.args)
    kept = []
    for step in reversed(steps):
        if step.out in needed:
            kept.append(step)
            needed.update(a for a in step.args if isinstance(a, str))
    leaves = [leaf for leaf in spec.leaves if leaf.name in needed]
    return _renumber(GraphSpec(leaves, [*reversed(kept), loss]))


def _renumber(spec: GraphSpec) -> GraphSpec:
    """Names x0, x1, w0, t0, h0, fc0, ... in order of appearance."""
    counts: dict[str, int] = {}
    rename: dict[str, str] = {}

    def name(old: str, prefix: str) -> str:
        if old not in rename:
            rename[old] = f"{prefix}{counts.get(prefix, 0)}"
            counts[prefix] = counts.get(prefix, 0) + 1
        return rename[old]

    for leaf in spec.leaves:
        if leaf.kind != "pf":
            name(leaf.name, PREFIX[leaf.kind])
    steps = []
    for step in spec.steps:
        kwargs = dict(step.kwargs)
        if step.op == "pf_affine":
            scope = name(kwargs["name"], "fc")
            kwargs["name"] = scope
            for old in step.args[1:]:
                rename[old] = f"{scope}/affine/{old.rpartition('/')[2]}"
        out = step.out if step.out == "loss" else name(step.out, "h")
        args = tuple(rename[a] if isinstance(a, str) else a for a in step.args)
        steps.append(Step(out, step.op, args, kwargs))
    leaves = [Leaf(rename[leaf.name], leaf.kind, leaf.shape, leaf.need_grad, leaf.values)
              for leaf in spec.leaves]
    return GraphSpec(leaves, steps)


@dataclass(frozen=True)
class _Unary:
    """An elementwise function of one array: its parameters (name -> strategy), where it is
    smooth besides being bounded, where new inputs come from, and for an operator with a
    number, on which side the number goes."""

    op: str
    kwargs: dict = field(default_factory=dict)
    ok: Callable = lambda x, kw: True
    domain: str = "normal"
    scalar: str = ""  # "right": x + c; "left": c + x


def _kink(x, kw) -> bool:
    return _far(x)


def _inner(x) -> bool:
    """Inside (-0.9, 0.9): asin, acos and atanh with bounded derivatives."""
    return bool(np.all(np.abs(x) < 0.9))


def _nonzero(x, kw) -> bool:
    return bool(np.all(np.abs(x) > 0.3))


UNARY = [
    _Unary("tanh"), _Unary("sigmoid"), _Unary("identity"), _Unary("sin"), _Unary("cos"),
    _Unary("exp"),
    _Unary("log", ok=lambda x, kw: bool(np.all(x > 0.1)), domain="positive"),
    _Unary("relu", ok=_kink), _Unary("abs", ok=_kink),
    _Unary("leaky_relu", {"alpha": st.sampled_from([0.1, 0.25, 2.0])}, _kink),
    _Unary("elu", {"alpha": st.sampled_from([1.0, 0.5, 2.0])}, _kink),
    _Unary("softplus", {"beta": st.sampled_from([1.0, 2.0, 0.5])}),
    _Unary("add_scalar", {"val": SCALARS}), _Unary("mul_scalar", {"val": SCALARS}),
    _Unary("r_sub_scalar", {"val": SCALARS}),
    _Unary("pow_scalar", {"val": POWERS}, lambda x, kw: _pow_ok(x, kw["val"])),
    _Unary("r_div_scalar", {"val": st.sampled_from([1.0, -0.5, 2])}, _nonzero, "away"),
    _Unary("r_pow_scalar", {"val": st.sampled_from([2.0, 0.5, 3, 1.5])}),
    _Unary("maximum_scalar", {"val": st.sampled_from([0.5, -0.25, 0.0, 1])},
           lambda x, kw: _far(x, kw["val"])),
    _Unary("minimum_scalar", {"val": st.sampled_from([0.5, -0.25, 0.0, 1])},
           lambda x, kw: _far(x, kw["val"])),
    _Unary("neg"),
    _Unary("+", {"c": SCALARS}, scalar="right"), _Unary("+", {"c": SCALARS}, scalar="left"),
    _Unary("-", {"c": SCALARS}, scalar="right"), _Unary("-", {"c": SCALARS}, scalar="left"),
    _Unary("*", {"c": SCALARS}, scalar="right"), _Unary("*", {"c": SCALARS}, scalar="left"),
    _Unary("/", {"c": st.sampled_from([2.0, -4, 0.5])}, scalar="right"),
    _Unary("/", {"c": st.sampled_from([1.0, -2, 0.5])}, _nonzero, "away", scalar="left"),
    _Unary("**", {"c": POWERS}, lambda x, kw: _pow_ok(x, kw["c"]), scalar="right"),
    _Unary("**", {"c": st.sampled_from([2.0, 0.5, 3])}, scalar="left"),
    _Unary("tan", ok=lambda x, kw: bool(np.all(np.abs(x) < 1.2))),
    _Unary("sinh"), _Unary("cosh"), _Unary("atan"), _Unary("asinh"),
    _Unary("asin", ok=lambda x, kw: _inner(x), domain="inner"),
    _Unary("acos", ok=lambda x, kw: _inner(x), domain="inner"),
    _Unary("atanh", ok=lambda x, kw: _inner(x), domain="inner"),
    _Unary("acosh", ok=lambda x, kw: bool(np.all(x > 1.1)), domain="above1"),
    _Unary("swish"), _Unary("mish"), _Unary("gelu"), _Unary("log_sigmoid"),
    _Unary("softsign"), _Unary("tanh_shrink"), _Unary("sinc"), _Unary("erf"),
    _Unary("selu", ok=_kink), _Unary("selu", {"alpha": st.sampled_from([1.5, 0.5])}, _kink),
    _Unary("relu6", ok=lambda x, kw: _far(x) and _far(x, 6.0)),
    _Unary("hard_sigmoid", ok=lambda x, kw: _far(x, 2.5) and _far(x, -2.5)),
    _Unary("hard_tanh", ok=lambda x, kw: _far(x, 1.0) and _far(x, -1.0)),
    _Unary("reset_nan", {"val": SCALARS}), _Unary("reset_inf", {"val": SCALARS}),
]


UNARY_OPS = list(dict.fromkeys(u.op for u in UNARY))  # each function as likely, whatever
# its number of variants (the operators have several)


def _draw_unary(g: _Draft) -> None:
    op = g.choose(UNARY_OPS)
    spec = g.choose([u for u in UNARY if u.op == op])
    kw = {k: g.draw(s) for k, s in spec.kwargs.items()}
    c = kw.pop("c", None)

    def place(x):
        return {"right": [x, c], "left": [c, x]}.get(spec.scalar, [x])

    def accept(x):
        return spec.ok(x, kw | {"c": c}) and _bounded(
            _apply(Step("", spec.op, tuple(place("x")), kw), {"x": x}))

    x = g.operand(accept, g.shape, spec.domain)
    if x is not None:
        g.commit(spec.op, place(x), kw)


def _positive(x) -> bool:
    return bool(np.all(x > 0.2))


def _apart(a, b) -> bool:
    return _far(a, b)


def _away(a, b) -> bool:
    return bool(np.all(np.abs(b) > 0.3))


# op, precondition on (a, b) besides a bounded result, domain of a new a, of a new b
BINARY = [
    ("add2", None, "normal", "normal"), ("sub2", None, "normal", "normal"),
    ("bc_add2", None, "normal", "normal"),
    ("mul2", None, "normal", "normal"), ("div2", _away, "normal", "away"),
    ("pow2", None, "positive", "normal"),
    ("+", None, "normal", "normal"), ("-", None, "normal", "normal"),
    ("*", None, "normal", "normal"), ("/", _away, "normal", "away"),
    ("**", None, "positive", "normal"),
    ("maximum2", _apart, "normal", "normal"), ("minimum2", _apart, "normal", "normal"),
    ("squared_error", None, "normal", "normal"), ("absolute_error", _apart, "normal", "normal"),
    ("huber_loss", None, "normal", "normal"),
    ("atan2", lambda a, b: _atan2_ok(a, b), "normal", "normal"),
    ("mod2", lambda a, b: _fmod_ok(a, b), "normal", "away"),
    ("epsilon_insensitive_loss", None, "normal", "normal"),
]


def _atan2_ok(a, b) -> bool:
    """Away from the origin and from the branch cut (b < 0, a = 0), where atan2 jumps."""
    return bool(np.all(a**2 + b**2 > 0.1) and np.all((np.abs(a) > MARGIN) | (b > MARGIN)))


def _fmod_ok(a, b) -> bool:
    """|b| > 0.3 and a / b away from the nonzero integers, where fmod jumps."""
    if not np.all(np.abs(b) > 0.3):
        return False
    r = a / b
    k = np.round(r)
    return bool(np.all((k == 0) | (np.abs(r - k) * np.abs(b) > MARGIN)))


def _broadcasts(a, b) -> bool:
    """Equal ranks and every axis equal or 1 (nnabla's binary broadcasting)."""
    return a.ndim == b.ndim and all(p == q or 1 in (p, q)
                                    for p, q in zip(a.shape, b.shape, strict=True))


def _draw_binary(g: _Draft) -> None:
    op, ok, domain_a, domain_b = g.choose(BINARY)
    kw = {}
    if op == "huber_loss":
        kw["delta"] = g.draw(st.sampled_from([1.0, 0.5, 2.0]))
        ok = lambda a, b: _far(np.abs(a - b), kw["delta"])  # noqa: E731 - its kink
    if op == "epsilon_insensitive_loss":
        kw["epsilon"] = g.draw(st.sampled_from([0.5, 0.1, 1.0]))
        ok = lambda a, b: _far(np.abs(a - b), kw["epsilon"])  # noqa: E731 - its kink
    first = _positive if domain_a == "positive" else (lambda x: True)
    a = g.operand(first, g.shape, domain_a)
    if a is None:
        return
    va = g.value(a)

    def accept(b):
        if not _broadcasts(va, b) or (ok is not None and not ok(va, b)):
            return False
        return _bounded(_apply(Step("", op, ("a", "b"), kw), {"a": va, "b": b}))

    b = g.operand(accept, lambda: g.compatible_shape(va.shape), domain_b)
    if b is not None:
        g.commit(op, [a, b], kw)


def _draw_clip(g: _Draft) -> None:
    """clip_by_value with number or Variable bounds (broadcast like binary functions)."""
    x = g.operand(lambda v: True, g.shape)
    if x is None:
        return
    vx = g.value(x)
    bounds = []
    for low, high in ((-1.5, 0.0), (0.05, 1.5)):
        if g.draw(st.booleans()):
            bounds.append(round(g.draw(st.floats(low, high)), 2))
            continue
        arrays = [vx] + [g.value(b) for b in bounds if not isinstance(b, float)]

        bound = g.operand(lambda v, arrays=arrays: all(_broadcasts(a, v) for a in arrays),
                          lambda: g.compatible_shape(vx.shape))
        if bound is None:
            return
        bounds.append(bound)
    lo, hi = (b if isinstance(b, float) else g.value(b) for b in bounds)
    if _far(vx, lo) and _far(np.maximum(vx, lo), hi):
        g.commit("clip_by_value", [x, *bounds])


def _axis(g: _Draft, rank: int):
    """None, an int (maybe negative) or a tuple of distinct axes (maybe negative)."""
    kind = g.choose(["none", "int", "tuple"]) if rank else "none"
    if kind == "none":
        return None
    if kind == "int":
        return g.draw(st.integers(-rank, rank - 1))
    axes = g.draw(st.lists(st.integers(0, rank - 1), min_size=1, max_size=rank, unique=True))
    return tuple(a - rank if g.draw(st.booleans()) else a for a in axes)


def _draw_reduction(g: _Draft) -> None:
    x = g.operand(lambda v: True, g.shape)
    if x is None:
        return
    vx = g.value(x)
    if g.draw(st.integers(0, 9)) == 0:  # nnabla's deprecated full reductions
        g.commit(g.choose(["reduce_sum", "reduce_mean"]), [x])
        return
    axis = _axis(g, vx.ndim)
    kw = {"axis": axis} if axis is not None else {}
    if g.draw(st.booleans()):
        kw["keepdims"] = True
    ops = ["sum", "mean"] + [op for op in ("max", "min")
                             if _unique_extremum(vx, axis, op == "max")]
    op = g.choose(ops)
    if op in ("max", "min") and g.draw(st.integers(0, 3)) == 0:
        kw["only_index"] = True  # the index of the extremum (no gradient)
    g.commit(op, [x], kw)


def _factor(g: _Draft, size: int) -> tuple[int, ...]:
    """A shape of `size` elements and rank 0-3."""
    rank = g.draw(st.integers(0 if size == 1 else 1, 3))
    dims, rest = [], size
    for _ in range(rank - 1):
        d = g.draw(st.sampled_from([d for d in range(1, rest + 1) if rest % d == 0]))
        dims.append(d)
        rest //= d
    return tuple(dims + [rest]) if rank else ()


def _draw_indexing(g: _Draft) -> None:
    """F.slice, F.flip, F.pad or F.concatenate (a family of its own, so that the shape
    functions keep their share of the draws)."""
    op = g.choose(["slice", "flip", "pad", "concatenate"])
    x = g.operand(lambda v: v.ndim >= 1, lambda: g.shape(1, 3))
    if x is not None:
        _draw_indexing_op(g, op, x, g.value(x).shape)


def _draw_shape_op(g: _Draft) -> None:
    op = g.choose(["reshape", "transpose", "broadcast"])
    x = g.operand(lambda v: True, g.shape)
    if x is None:
        return
    shape = g.value(x).shape
    if op == "reshape":
        target = list(_factor(g, math.prod(shape)))
        if target and g.draw(st.booleans()):
            target[g.draw(st.integers(0, len(target) - 1))] = -1
        g.commit("reshape", [x], {"shape": tuple(target)})
    elif op == "transpose" and shape:
        perm = g.draw(st.permutations(range(len(shape))))
        axes = tuple(p - len(shape) if g.draw(st.booleans()) else p for p in perm)
        g.commit("transpose", [x], {"axes": axes})
    elif op == "broadcast":
        target = tuple(g.draw(SIZES) if d == 1 else d for d in shape)
        if len(shape) < 3 and g.draw(st.integers(0, 3)) == 0:
            target = (g.draw(SIZES),) + target  # symcompile adds missing leading axes
        g.commit("broadcast", [x], {"shape": target})


def _draw_indexing_op(g: _Draft, op: str, x: str, shape: tuple[int, ...]) -> None:
    """F.slice (negative bounds and steps), F.flip, F.pad (constant) or F.concatenate (of
    x with itself along one axis) on the operand x of `shape`."""
    rank = len(shape)
    if op == "slice":
        start, stop, step = [], [], []
        for n in shape:
            s = g.draw(st.sampled_from([1, 2, -1, -2]))
            b = g.draw(st.integers(-n, n - 1))
            e = g.draw(st.sampled_from([None, -n - 1, n, b + s * g.draw(st.integers(1, n))]))
            start.append(b)
            stop.append(e)
            step.append(s)
        indices = [range(*slice(b, e, s).indices(n))
                   for b, e, s, n in zip(start, stop, step, shape, strict=True)]
        if any(len(r) == 0 for r in indices):
            return
        g.commit("slice", [x], {"start": tuple(start), "stop": tuple(stop),
                                "step": tuple(step)})
    elif op == "flip":
        axes = sorted(g.draw(st.sets(st.integers(0, rank - 1), min_size=1)))
        g.commit("flip", [x], {"axes": tuple(axes)})
    elif op == "pad":
        count = g.draw(st.integers(1, rank))
        widths = tuple(g.draw(st.integers(0, 2)) for _ in range(2 * count))
        mode = g.draw(st.sampled_from(["constant", "constant", "reflect", "repeat"]))
        if mode != "constant":
            g.commit("pad", [x], {"pad_width": widths, "mode": mode})
            return
        g.commit("pad", [x], {"pad_width": widths,
                              "constant_value": g.draw(st.sampled_from([0.0, 0.5, -1.0]))})
    else:
        g.commit("concatenate", [x, x], {"axis": g.draw(st.integers(-rank, rank - 1))})


def _draw_affine(g: _Draft) -> None:
    """F.affine (weights from get_parameter_or_create or nn.Variable) or PF.affine."""
    x = g.operand(lambda v: 1 <= v.ndim <= 3, lambda: g.shape(1, 3))
    if x is None:
        return
    shape = g.value(x).shape
    base_axis = g.draw(st.integers(0, len(shape) - 1))
    outmaps = tuple(g.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3 - base_axis)))
    inmaps = math.prod(shape[base_axis:])
    with_bias = g.draw(st.booleans())
    parametric = g.draw(st.booleans())
    if not g.room(1 + with_bias):
        return
    w_shape = (inmaps, *outmaps)
    rng = np.random.default_rng(g.draw(SEEDS))
    for _ in range(RETRIES):
        w_values = _values("weight", rng, w_shape, inmaps)
        b_values = _values("normal", rng, outmaps)
        if parametric:
            scope = g.fresh("fc")
            args = [x, Leaf(f"{scope}/affine/W", "pf", w_shape, True, w_values)]
            if with_bias:
                args.append(Leaf(f"{scope}/affine/b", "pf", outmaps, True, b_values))
            kw = {"n_outmaps": outmaps if len(outmaps) > 1 else outmaps[0],
                  "base_axis": base_axis, "name": scope}
            if g.commit("pf_affine", args, kw):
                return
        else:
            args = [x, g.new_leaf(None, w_shape, w_values)]
            if with_bias:
                args.append(g.new_leaf(None, outmaps, b_values))
            if g.commit("affine", args, {"base_axis": base_axis}):
                return


def _matmul_shape(a, b):
    """NumPy's matmul result shape, or None when the shapes do not multiply."""
    try:
        return np.matmul(np.zeros(a), np.zeros(b)).shape
    except ValueError:
        return None


def _draw_einsum(g: _Draft) -> None:
    """F.einsum of one operand or two: the second's axes reuse some of the first's labels
    (and lengths) and add new ones; the output is some of the labels, in any order (the
    rest summed), or NumPy's implicit output; a repeated label of the first takes its
    diagonal."""
    a = g.operand(lambda v: 1 <= v.ndim <= 3, lambda: g.shape(1, 3))
    if a is None:
        return
    shape_a = g.value(a).shape
    letters = "abcdefg"
    labels_a = list(letters[:len(shape_a)])
    for k in range(1, len(shape_a)):  # a square pair may be a diagonal
        if shape_a[k] == shape_a[k - 1] and g.draw(st.integers(0, 3)) == 0:
            labels_a[k] = labels_a[k - 1]
    terms, operands, sizes = ["".join(labels_a)], [a], dict(zip(labels_a, shape_a, strict=True))
    if g.draw(st.booleans()):
        known = sorted(sizes)
        count = g.draw(st.integers(1, 3))
        labels_b = [g.draw(st.sampled_from(known + ["x", "y"])) for _ in range(count)]
        labels_b = list(dict.fromkeys(labels_b))
        shape_b = tuple(sizes.get(label) or g.draw(SIZES) for label in labels_b)
        b = g.operand(lambda v: v.shape == shape_b, lambda: shape_b)
        if b is None:
            return
        sizes.update(zip(labels_b, shape_b, strict=True))
        terms.append("".join(labels_b))
        operands.append(b)
    equation = ",".join(terms)
    if g.draw(st.booleans()):
        output = g.draw(st.permutations(sorted(sizes)))[:g.draw(st.integers(0, len(sizes)))]
        equation += "->" + "".join(output)
    if g.room():
        g.commit("einsum", operands, {"equation": equation})


def _draw_matmul(g: _Draft) -> None:
    """F.batch_matmul (equal ranks of 3, batch axes broadcast where 1), the ``@``
    operator or F.einsum."""
    if g.draw(st.integers(0, 2)) == 0 or (g.focus is not None and _draws("einsum", g.focus)):
        _draw_einsum(g)
        return
    batched = g.draw(st.booleans())
    ta, tb = (g.draw(st.booleans()), g.draw(st.booleans())) if batched else (False, False)
    a = g.operand(lambda v: (v.ndim == 3 if batched else v.ndim >= 1) and v.ndim <= 3,
                  lambda: g.shape(3 if batched else 1, 3))
    if a is None:
        return
    va = g.value(a)
    k = va.shape[-2] if ta else va.shape[-1]

    def shape_b():
        if batched:
            n = g.draw(SIZES)
            return g.compatible_shape(va.shape[:-2]) + ((n, k) if tb else (k, n))
        rank = g.draw(st.integers(1, 3))
        batch = g.compatible_shape(va.shape[:-2]) if va.ndim == 3 else (g.draw(SIZES),)
        return ((k,), (k, g.draw(SIZES)), batch + (k, g.draw(SIZES)))[rank - 1]

    def accept(vb):
        if vb.ndim > 3:
            return False
        if batched:
            if vb.ndim != va.ndim or not _broadcasts(va[..., :1, :1], vb[..., :1, :1]):
                return False
        left = np.swapaxes(va, -1, -2) if ta else va
        right = np.swapaxes(vb, -1, -2) if tb else vb
        return _matmul_shape(left.shape, right.shape) is not None and _bounded(left @ right)

    b = g.operand(accept, shape_b)
    if b is None:
        return
    if batched:
        g.commit("batch_matmul", [a, b], {"transpose_a": ta, "transpose_b": tb})
    else:
        g.commit("@", [a, b])


def _draw_softmax(g: _Draft) -> None:
    op = g.choose(["softmax", "log_softmax", "softmax_cross_entropy"])
    x = g.operand(lambda v: v.ndim >= 1, lambda: g.shape(1, 3))
    if x is None:
        return
    shape = g.value(x).shape
    axis = g.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    kw = {} if axis is None else {"axis": axis}
    if op != "softmax_cross_entropy":
        g.commit(op, [x], kw)
        return
    if not g.room():
        return
    axis = len(shape) - 1 if axis is None else axis % len(shape)
    label_shape = shape[:axis] + (1,) + shape[axis + 1:]
    g.commit(op, [x, g.label(label_shape, "labels", n=shape[axis])], kw)


def _draw_cross_entropy(g: _Draft) -> None:
    """sigmoid_cross_entropy (0/1 labels) or binary_cross_entropy (a probability and a
    target in [0, 1], which may need a gradient)."""
    if g.draw(st.booleans()):
        x = g.operand(lambda v: True, g.shape)
        if x is not None and g.room():
            g.commit("sigmoid_cross_entropy", [x, g.label(g.value(x).shape, "binary")])
        return
    p = g.operand(lambda v: bool(np.all((v > 0.05) & (v < 0.95))), g.shape, "probability")
    if p is not None and g.room():
        need_grad = g.draw(st.sampled_from([False, True]))
        g.commit("binary_cross_entropy", [p, g.label(g.value(p).shape, "unit",
                                                     need_grad=need_grad)])


# --- piecewise constant functions: comparisons, logic, rounding ---------------------------

NO_GRADIENT = {"greater", "greater_equal", "less", "less_equal", "equal", "not_equal",
               "greater_scalar", "greater_equal_scalar", "less_scalar", "less_equal_scalar",
               "equal_scalar", "not_equal_scalar", "logical_and", "logical_or", "logical_xor",
               "logical_not", "logical_and_scalar", "logical_or_scalar", "logical_xor_scalar",
               "isnan", "isinf", "binary_error", "top_n_error", "one_hot",
               "confusion_matrix", "eye_like", "shape"}
COMPARISONS = ["greater", "greater_equal", "less", "less_equal", "equal", "not_equal"]
# nnabla's gradient of these passes straight through (it is not their derivative, 0): they
# are drawn on values that need no gradient, whose finite differences are 0 either way.
# Each with its steps (the points where it jumps) near the values x.
STRAIGHT_THROUGH = {
    "sign": lambda x: [0.0], "binary_tanh": lambda x: [0.0], "binary_sigmoid": lambda x: [0.0],
    "ceil": lambda x: [np.round(x)], "floor": lambda x: [np.round(x)],
    "round": lambda x: [np.floor(x) + 0.5],
}
SCALAR_STEPWISE = [f"{c}_scalar" for c in COMPARISONS] + [
    "logical_and_scalar", "logical_or_scalar", "logical_xor_scalar", "logical_not"]
STEPWISE = [*STRAIGHT_THROUGH, *SCALAR_STEPWISE, *COMPARISONS, "logical_and", "logical_or",
            "logical_xor", "isnan", "isinf", "where"]


def _steady(value, points, exact: bool) -> bool:
    """Every element of `value` keeps MARGIN from each of `points` (where a function jumps),
    or sits exactly on one where both sides are `exact` (and need no gradient)."""
    value = np.asarray(value)
    return all(bool(np.all((np.abs(value - p) > MARGIN) | ((value == p) & exact)))
               for p in points)


def _constant_operand(g: _Draft, accept, shape_fn, domain="integers"):
    """A value no gradient reaches that `accept` likes, or a new leaf without gradient."""
    options = [n for n in reversed(g.names) if n in g.constant and accept(g.env[n], n)]
    if g.room():
        options.append(NEW)
    if not options:
        return None
    choice = g.draw(st.sampled_from(options))
    if choice != NEW:
        return choice
    shape = shape_fn()
    rng = np.random.default_rng(g.draw(SEEDS))
    for _ in range(RETRIES):
        leaf = g.new_leaf(None, shape, _values(domain, rng, shape), need_grad=False)
        if accept(leaf.values, leaf):
            return leaf
    return None


def _draw_stepwise(g: _Draft) -> None:
    """Comparisons, logic, isnan/isinf (no gradient: 0, as their finite differences away
    from their steps) and the straight-through functions (on values without gradient)."""
    op = g.choose(STEPWISE)
    kind = ("unary" if op in STRAIGHT_THROUGH else "scalar" if op in SCALAR_STEPWISE
            else "binary" if op in COMPARISONS else "classify" if op in ("isnan", "isinf")
            else "where" if op == "where" else "logic")
    if kind == "unary":
        kw = {"alpha": g.draw(st.sampled_from([0.0, 0.5]))} if op == "sign" and g.draw(
            st.booleans()) else {}
        x = _constant_operand(g, lambda v, n: _steady(v, STRAIGHT_THROUGH[op](v), g.exact(n)),
                              g.shape, g.choose(["integers", "normal"]))
        if x is not None:
            g.commit(op, [x], kw)
    elif kind == "scalar":
        logic = op.startswith("logical")
        val = g.draw(st.sampled_from([0, 1, 2.0] if logic else [0.0, 1.0, -0.5, 2]))
        kw = {} if op == "logical_not" else {"val": val}
        x = _any_steady(g, lambda v, n: _steady(v, [0.0 if logic else val], g.exact(n)))
        if x is not None:
            g.commit(op, [x], kw)
    elif kind in ("binary", "logic"):
        a = _any_steady(g, (lambda v, n: True) if kind == "binary" else
                        (lambda v, n: _steady(v, [0.0], g.exact(n))))
        if a is None:
            return
        va, exact_a = g.value(a), g.exact(a)

        def accept(v, n):
            if not _broadcasts(va, v):
                return False
            if kind == "logic":
                return _steady(v, [0.0], g.exact(n))
            return _steady(va - v, [0.0], exact_a and g.exact(n))

        b = _any_steady(g, accept, lambda: g.compatible_shape(va.shape))
        if b is not None:
            g.commit(op, [a, b])
    elif kind == "classify":
        x = g.operand(lambda v: True, g.shape)
        if x is not None:
            g.commit(op, [x])
    else:
        c = _any_steady(g, lambda v, n: _steady(v, [0.0], g.exact(n)))
        if c is None:
            return
        vc = g.value(c)
        a = g.operand(lambda v: _broadcasts(vc, v), lambda: g.compatible_shape(vc.shape))
        if a is None:
            return
        va = g.value(a)
        b = g.operand(lambda v: _broadcasts(vc, v) and _broadcasts(va, v),
                      lambda: g.compatible_shape(vc.shape))
        if b is not None:
            g.commit("where", [c, a, b])


def _any_steady(g: _Draft, accept, shape_fn=None):
    """An existing value `accept(values, name)` likes, or a new leaf: with gradient
    (normal values) or without (integers, which may sit on a step)."""
    shape_fn = shape_fn or g.shape
    if g.draw(st.booleans()):
        return _constant_operand(g, accept, shape_fn)
    x = g.operand(lambda v: accept(v, None), shape_fn)
    return x


# --- images: convolutions, pooling, normalization -----------------------------------------

def _image(g: _Draft) -> tuple[int, ...]:
    """(N, C, H, W) or (N, C, L): batch 1-2, 1-2 channels, sides 3-5."""
    spatial = g.draw(st.sampled_from([2, 2, 1]))
    return ((g.draw(st.integers(1, 2)), g.draw(st.sampled_from([1, 2, 2, 4])))
            + tuple(g.draw(st.integers(3, 5)) for _ in range(spatial)))


def _small_image(v) -> bool:
    return v.ndim in (3, 4) and v.size <= 100 and all(n >= 2 for n in v.shape[2:])


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _draw_convolution(g: _Draft) -> None:
    """F.convolution (pad, stride, dilation, group, base_axis), F.deconvolution (and
    output_padding) or F.depthwise_convolution (multiplier), with or without bias."""
    op = g.choose(["convolution", "deconvolution", "depthwise_convolution"])
    x = g.operand(_small_image, lambda: _image(g))
    if x is None:
        return
    shape = g.value(x).shape
    base_axis = g.draw(st.integers(1, len(shape) - 2)) if len(shape) == 4 else 1
    # NHWC: the operand's last axis is the channels (nnabla's channel_last)
    channel_last = op != "depthwise_convolution" and g.draw(st.sampled_from([0, 0, 1])) == 1
    channels = shape[-1] if channel_last else shape[base_axis]
    lengths = shape[base_axis:-1] if channel_last else shape[base_axis + 1:]
    kernel = tuple(g.draw(st.integers(1, 3)) for _ in lengths)
    pad = tuple(g.draw(st.integers(0, 1)) for _ in lengths)
    stride = tuple(g.draw(st.integers(1, 2)) for _ in lengths)
    dilation = tuple(g.draw(st.sampled_from([1, 1, 2])) for _ in lengths)
    kw = {} if base_axis == 1 else {"base_axis": base_axis}
    kw |= {"pad": pad, "stride": stride, "dilation": dilation}
    if channel_last:
        kw["channel_last"] = True
    if op == "convolution":
        group = g.draw(st.sampled_from(_divisors(channels)))
        out_c = group * g.draw(st.integers(1, 2))
        w_shape, fan_in = (out_c, channels // group, *kernel), channels // group
        sizes = [(n + 2 * p - d * (k - 1) - 1) // s + 1
                 for n, k, p, s, d in zip(lengths, kernel, pad, stride, dilation, strict=True)]
    elif op == "deconvolution":
        group = g.draw(st.sampled_from(_divisors(channels)))
        per_group = g.draw(st.integers(1, 2))
        out_c = per_group * group
        w_shape, fan_in = (channels, per_group, *kernel), channels // group
        extra = tuple(g.draw(st.integers(0, s - 1)) for s in stride)
        if any(extra):
            kw["output_padding"] = extra
        sizes = [s * (n - 1) + d * (k - 1) + 1 - 2 * p + e
                 for n, k, p, s, d, e in zip(lengths, kernel, pad, stride, dilation, extra,
                                             strict=True)]
    else:
        group = 1
        multiplier = g.draw(st.integers(1, 2))
        if multiplier > 1:
            kw["multiplier"] = multiplier
        out_c = channels * multiplier
        w_shape, fan_in = (out_c, *kernel), 1
        sizes = [(n + 2 * p - d * (k - 1) - 1) // s + 1
                 for n, k, p, s, d in zip(lengths, kernel, pad, stride, dilation, strict=True)]
    if group > 1:
        kw["group"] = group
    if channel_last:  # the weight's channels last too: (C', *K, C/group), (C, *K, C'/group)
        w_shape = (w_shape[0], *w_shape[2:], w_shape[1])
    if min(sizes) < 1 or math.prod(shape[:base_axis]) * out_c * math.prod(sizes) > 100:
        return
    with_bias = g.draw(st.booleans())
    if not g.room(1 + with_bias):
        return
    rng = np.random.default_rng(g.draw(SEEDS))
    for _ in range(RETRIES):
        args = [x, g.new_leaf(None, w_shape, _values("weight", rng, w_shape,
                                                     fan_in * math.prod(kernel)))]
        if with_bias:
            args.append(g.new_leaf(None, (out_c,), _values("normal", rng, (out_c,))))
        if g.commit(op, args, kw):
            return


def _pool_shape(n, k, s, p, ignore_border) -> int:
    return (n + 2 * p - k) // s + 1 if ignore_border else (n + p - 1) // s + 1


def _unique_window_max(x, kernel, stride, pad, ignore_border) -> bool:
    """Every max pooling window's maximum beats its other elements by MARGIN."""
    lead = x.ndim - len(kernel)
    axes = [_windows(x.shape[lead + i], k, s, p, ignore_border)
            for i, (k, s, p) in enumerate(zip(kernel, stride, pad, strict=True))]
    for position in np.ndindex(*(len(a) for a in axes)):
        picked = [axes[i][m][0] for i, m in enumerate(position)]
        block = x[(Ellipsis, *np.ix_(*picked))].reshape(x.shape[:lead] + (-1,))
        if block.shape[-1] > 1:
            top = np.sort(block, axis=-1)
            if not np.all(top[..., -1] - top[..., -2] > MARGIN):
                return False
    return True


def _draw_pooling(g: _Draft) -> None:
    """F.max_pooling (windows without ties), F.average_pooling (including_pad or not),
    F.sum_pooling (each with stride, pad, ignore_border), F.global_average_pooling,
    F.unpooling or F.max_pooling_backward (of a new leaf dy, windows without ties)."""
    op = g.choose(["max_pooling", "average_pooling", "sum_pooling", "global_average_pooling",
                   "unpooling", "max_pooling_backward"])
    x = g.operand(_small_image, lambda: _image(g))
    if x is None:
        return
    vx = g.value(x)
    if op == "global_average_pooling":
        g.commit(op, [x])
        return
    # NHWC (nnabla's channel_last): the axes before the last are pooled
    layout = {"channel_last": True} if g.draw(st.sampled_from([0, 0, 0, 1])) == 1 else {}
    count = 2 if vx.ndim == 4 else g.draw(st.sampled_from([1, 2]))
    if op != "unpooling" and count == 1:  # (pooling is over 2 or 3 axes, as nnabla's)
        count = 2
    if layout:  # what the pooling sees: the channels before the pooled axes
        if vx.ndim < count + 1:
            return
        vx = np.moveaxis(vx, -1, vx.ndim - 1 - count)
    lengths = vx.shape[-count:]
    if op == "unpooling":
        kernel = tuple(g.draw(st.integers(1, 2)) for _ in lengths)
        if vx.size * math.prod(kernel) <= 200:
            g.commit(op, [x], {"kernel": kernel, **layout})
        return
    kernel = tuple(g.draw(st.integers(1, min(3, n))) for n in lengths)
    kw = {"kernel": kernel, **layout}
    stride = kernel
    if g.draw(st.booleans()):
        stride = kw["stride"] = tuple(g.draw(st.integers(1, 3)) for _ in lengths)
    pad = (0,) * count
    if g.draw(st.booleans()):
        pad = kw["pad"] = tuple(g.draw(st.integers(0, k - 1)) for k in kernel)
    ignore_border = g.draw(st.booleans())
    if not ignore_border:
        kw["ignore_border"] = False
    if op == "average_pooling" and g.draw(st.booleans()):
        kw["including_pad"] = False
    sizes = [_pool_shape(n, k, s, p, ignore_border)
             for n, k, s, p in zip(lengths, kernel, stride, pad, strict=True)]
    if min(sizes) < 1:
        return
    if op in ("max_pooling", "max_pooling_backward") \
            and not _unique_window_max(vx, kernel, stride, pad, ignore_border):
        return
    if op == "max_pooling_backward":
        shape = g.value(x).shape
        last = shape[-1:] if layout else ()
        pooled = shape[:len(shape) - len(last) - count] + tuple(sizes) + last
        if not g.room():
            return
        g.commit(op, [g.new_leaf(None, pooled, g.new_values("normal", pooled)), x], kw)
        return
    g.commit(op, [x], kw)


def _spread(x, reduced, low=0.1) -> bool:
    """Each standardized group has 2 elements or more and a variance of at least `low`
    (so 1 / sqrt(variance + eps) and its derivatives stay moderate)."""
    if not reduced or math.prod(x.shape[a] for a in reduced) < 2:
        return False
    return bool(np.all(x.var(axis=tuple(reduced)) >= low))


def _scale_leaf(g: _Draft, shape, domain="normal"):
    """beta or gamma: None (left out) or a new leaf of `shape`."""
    if g.draw(st.integers(0, 3)) == 0 or not g.room():
        return None
    values = g.new_values(domain, shape)
    return g.new_leaf(None, shape, values)


def _stat(g: _Draft, shape, domain):
    """A running statistic: a parameter without gradient, never an operand of other steps
    (a forward pass may update it in place)."""
    return g.new_leaf("stat", shape, g.new_values(domain, shape), need_grad=False)


def _draw_normalization(g: _Draft) -> None:
    """F.batch_normalization (batch_stat True or False, running statistics as parameters),
    F.fused_batch_normalization, F.layer_normalization, F.instance_normalization or
    F.group_normalization, beta and gamma given or None."""
    op = g.choose(["batch_normalization", "fused_batch_normalization", "layer_normalization",
                   "instance_normalization", "group_normalization"])
    x = g.operand(lambda v: 2 <= v.ndim <= 4 and v.size <= 100,
                  lambda: _image(g) if g.draw(st.booleans()) else g.shape(2, 3))
    if x is None:
        return
    vx = g.value(x)
    rank = vx.ndim
    kw: dict = {}
    if op in ("batch_normalization", "fused_batch_normalization"):
        axes = [1]
        if g.draw(st.integers(0, 3)) == 0:
            axes = sorted(g.draw(st.sets(st.integers(0, rank - 1), min_size=1, max_size=2)))
        if axes != [1]:
            kw["axes"] = axes
        reduced = [a for a in range(rank) if a not in axes]
        batch_stat = g.draw(st.booleans())
        if batch_stat and not _spread(vx, reduced):
            return
        if not batch_stat:
            kw["batch_stat"] = False
        stats = tuple(d if a in axes else 1 for a, d in enumerate(vx.shape))
        if not g.room(4):
            return
        beta, gamma = _scale_leaf(g, stats), _scale_leaf(g, stats)
        if batch_stat and g.draw(st.integers(0, 3)) == 0:
            mean = variance = None  # nothing to update
        else:
            mean, variance = _stat(g, stats, "normal"), _stat(g, stats, "positive")
        args = [x, beta, gamma, mean, variance]
        if op == "fused_batch_normalization":
            y = _np_batch_normalization(vx, *(None if a is None else a.values
                                              for a in args[1:]), axes, 0.9, 1e-5, batch_stat)
            z = None
            if g.draw(st.booleans()) and g.room():
                z = g.operand(lambda v: v.shape == vx.shape and _far(y + v), lambda: vx.shape)
                if z is None:
                    return
            if not _far(y if z is None else y + g.value(z)):
                return  # (relu's kink)
            args.append(z)
        g.commit(op, args, kw)
        return
    if op == "layer_normalization":
        batch = g.draw(st.sampled_from([0, 0, [0, 1]])) if rank >= 3 else 0
        if batch != 0:
            kw["batch_axis"] = batch
        kept = [0, 1] if batch != 0 else [0]
    else:
        channel = 1 if g.draw(st.integers(0, 2)) else g.draw(st.integers(1, rank - 1))
        if channel != 1:
            kw["channel_axis"] = channel
        kept = [0, channel]
        if op == "group_normalization":
            groups = g.draw(st.sampled_from(_divisors(vx.shape[channel])))
            kw = {"num_groups": groups} | kw
            grouped = vx.reshape(vx.shape[:channel] + (groups, -1) + vx.shape[channel + 1:])
            reduced = [a for a in range(grouped.ndim) if a not in (0, channel)]
            if not _spread(grouped, reduced):
                return
            kept = None
    if kept is not None and not _spread(vx, [a for a in range(rank) if a not in kept]):
        return
    # nnabla's shapes: layer's the input's with batch axes 1, group's only the channels,
    # instance's the channels and (1 or the input's) batch axes
    if op == "layer_normalization":
        shape = tuple(1 if a in kept else d for a, d in enumerate(vx.shape))
    else:
        shape = tuple(d if a == channel else g.draw(st.sampled_from([d, 1]))
                      if a == 0 and op == "instance_normalization" else 1
                      for a, d in enumerate(vx.shape))
    if not g.room(2):
        return
    g.commit(op, [x, _scale_leaf(g, shape), _scale_leaf(g, shape)], kw)


# --- more functions of arrays ----------------------------------------------------------------

def _sorted_apart(x, axis) -> bool:
    """Along `axis` every two elements differ by more than MARGIN."""
    if x.shape[axis] < 2:
        return True
    gaps = np.diff(np.sort(x, axis=axis), axis=axis)
    return bool(np.all(gaps > MARGIN))


def _draw_array(g: _Draft) -> None:
    """cumsum, cumprod, prod, sort, top_k_data, shift, tile, stack, split, broadcast_to,
    sink, matrix_diag, matrix_diag_part, meshgrid, and the constants constant, arange
    and linspace (of values float32 holds exactly, so NumPy's float64 agrees)."""
    op = g.choose(["cumsum", "cumprod", "prod", "sort", "top_k_data", "shift", "tile",
                   "stack", "split", "broadcast_to", "sink", "matrix_diag",
                   "matrix_diag_part", "meshgrid", "constant", "arange", "linspace"])
    if op == "constant":
        kw = {"val": g.draw(st.sampled_from([-1.5, 0.0, 0.25, 2.0]))}
        g.commit(op, [], kw | {"shape": g.shape()} if g.draw(st.booleans()) else kw)
        return
    if op == "arange":
        start, step = g.draw(st.sampled_from([-2.0, 0.0, 1.5])), g.draw(
            st.sampled_from([-1.0, -0.5, 0.5, 1.0]))
        g.commit(op, [], {"start": start, "stop": start + step * g.draw(SIZES),
                          "step": step})
        return
    if op == "linspace":
        start = g.draw(st.sampled_from([-1.0, 0.0, 2.0]))
        num = g.draw(SIZES)
        g.commit(op, [], {"start": start, "stop": start + 0.5 * max(num - 1, 1),
                          "num": num})
        return
    if op == "meshgrid":
        xs = []
        for _ in range(g.draw(st.integers(1, 3))):
            x = g.operand(lambda v: v.ndim == 1, lambda: (g.draw(SIZES),))
            if x is None:
                return
            xs.append(x)
        sizes = [g.value(x).size for x in xs]
        if math.prod(sizes) > 48:
            return
        kw = {"ij_indexing": True} if g.draw(st.booleans()) else {}
        g.commit(op, xs, kw | {OUTPUT: g.draw(st.integers(0, len(xs) - 1))})
        return
    if op == "matrix_diag_part":
        x = g.operand(lambda v: v.ndim >= 2 and v.shape[-1] == v.shape[-2],
                      lambda: g.shape(0, 1) + (g.draw(SIZES),) * 2)
        if x is not None:
            g.commit(op, [x])
        return
    if op == "prod":
        x = g.operand(lambda v: bool(np.all(np.abs(v) > 0.3)), g.shape, "away")
        if x is None:
            return
        axis = _axis(g, g.value(x).ndim)
        kw = {} if axis is None else {"axis": axis}
        if g.draw(st.booleans()):
            kw["keepdims"] = True
        g.commit(op, [x], kw)
        return
    if op == "sink":
        xs = [g.operand(lambda v: True, g.shape) for _ in range(g.draw(st.integers(1, 2)))]
        if None not in xs:
            g.commit(op, xs)
        return
    x = g.operand(lambda v: 1 <= v.ndim <= (2 if op == "matrix_diag" else 4),
                  lambda: g.shape(1, 3))
    if x is None:
        return
    vx = g.value(x)
    rank = vx.ndim
    if op in ("cumsum", "cumprod"):
        kw = {"axis": g.draw(st.integers(-rank, rank - 1))}
        if g.draw(st.booleans()):
            kw["exclusive"] = True
        if g.draw(st.booleans()):
            kw["reverse"] = True
        g.commit(op, [x], kw)
    elif op == "sort":
        axis = g.draw(st.integers(-rank, rank - 1))
        if not _sorted_apart(vx, axis):
            return
        kw = {"axis": axis}
        if g.draw(st.booleans()):
            kw["reverse"] = True
        if g.draw(st.integers(0, 2)) == 0:
            kw["only_index"] = True
        g.commit(op, [x], kw)
    elif op == "top_k_data":
        base_axis = g.draw(st.integers(0, rank - 1))
        size = math.prod(vx.shape[base_axis:])
        abs_ = g.draw(st.booleans())
        keys = (np.abs(vx) if abs_ else vx).reshape(math.prod(vx.shape[:base_axis]), -1)
        if not _sorted_apart(keys, 1):
            return
        kw = {"k": g.draw(st.integers(1, size))}
        if abs_:
            kw["abs"] = True
        if g.draw(st.booleans()):
            kw["reduce"] = False
        if base_axis != 1:
            kw["base_axis"] = base_axis
        if g.draw(st.booleans()):
            kw["largest"] = False
        if kw.get("reduce", True) and g.draw(st.integers(0, 2)) == 0:
            kw |= {"with_index": True, OUTPUT: g.draw(st.integers(0, 1))}
        g.commit(op, [x], kw)
    elif op == "shift":
        count = g.draw(st.integers(1, rank))
        shifts = tuple(g.draw(st.integers(1 - n, n - 1)) for n in vx.shape[rank - count:])
        kw = {"shifts": shifts}
        if g.draw(st.booleans()):
            kw["border_mode"] = "reflect"
        g.commit(op, [x], kw)
    elif op == "tile":
        reps = tuple(g.draw(st.integers(1, 2)) for _ in range(g.draw(st.integers(1, rank))))
        if vx.size * math.prod(reps) <= 64:
            g.commit(op, [x], {"reps": reps if len(reps) > 1 else reps[0]})
    elif op == "stack":
        y = g.operand(lambda v: v.shape == vx.shape, lambda: vx.shape)
        if y is not None:
            g.commit(op, [x, y], {"axis": g.draw(st.integers(-rank - 1, rank))})
    elif op == "split":
        axis = g.draw(st.integers(-rank, rank - 1))
        g.commit(op, [x], {"axis": axis, OUTPUT: g.draw(st.integers(0, vx.shape[axis] - 1))})
    elif op == "broadcast_to":
        axis = g.draw(st.integers(-1, rank - 1))
        start = 0 if axis == -1 else axis
        length = g.draw(st.integers(0 if axis != -1 else 1, rank - start))
        target = vx.shape[rank - length:] if axis == -1 else vx.shape[start:start + length]
        y = g.operand(lambda v: v.shape == target, lambda: target)
        if y is not None:
            g.commit(op, [x, y], {} if axis == -1 else {"axis": axis})
    elif op == "matrix_diag":
        g.commit(op, [x])


def _draw_index(g: _Draft) -> None:
    """gather, scatter_add, embed, one_hot (integer index labels), top_n_error and
    binary_error (no gradient)."""
    op = g.choose(["gather", "scatter_add", "embed", "one_hot", "top_n_error",
                   "binary_error", "gather_nd", "scatter_nd"])
    if op == "one_hot":
        n = g.draw(SIZES)
        if g.room():
            shape = g.shape(0, 2) + (1,)
            g.commit(op, [g.label(shape, "indices", n=n)], {"shape": (n,)})
        return
    if op in ("gather_nd", "scatter_nd"):
        _draw_nd(g, op)
        return
    if op == "binary_error":
        x = g.operand(lambda v: _far(v, 0.5), g.shape, "probability")
        if x is not None and g.room():
            g.commit(op, [x, g.label(g.value(x).shape, "binary")])
        return
    x = g.operand(lambda v: 1 <= v.ndim <= 3, lambda: g.shape(1, 3))
    if x is None or not g.room(2):
        return
    vx = g.value(x)
    rank = vx.ndim
    if op == "top_n_error":
        axis = g.draw(st.integers(-rank, rank - 1))
        if not _sorted_apart(vx, axis):
            return
        shape = tuple(1 if a == axis % rank else d for a, d in enumerate(vx.shape))
        kw = {"axis": axis, "n": g.draw(st.integers(1, vx.shape[axis]))}
        g.commit(op, [x, g.label(shape, "labels", n=vx.shape[axis])], kw)
    elif op == "embed":
        shape = g.shape(1, 2)
        if math.prod(shape) * vx.size // vx.shape[0] <= 64:
            g.commit(op, [g.label(shape, "labels", n=vx.shape[0]), x])
    elif op == "gather":
        batch_dims = g.draw(st.integers(0, 1)) if rank >= 2 else 0
        axis = g.draw(st.integers(batch_dims, rank - 1))
        shape = vx.shape[:batch_dims] + g.shape(0 if batch_dims else 1, 2)
        kw = {"axis": axis}
        if batch_dims:
            kw["batch_dims"] = batch_dims
        g.commit(op, [x, g.label(shape, "indices", n=vx.shape[axis])], kw)
    else:
        axis = g.draw(st.integers(0, rank - 1))
        shape = tuple(g.draw(st.integers(1, 3 if a == axis else d))
                      for a, d in enumerate(vx.shape))
        indices = g.label(shape, "indices", n=vx.shape[axis])
        x1 = g.operand(lambda v: v.shape == shape, lambda: shape)
        if x1 is not None:
            g.commit(op, [x, indices, x1], {"axis": axis})


def _nd_indices(g: _Draft, sizes, positions) -> Leaf:
    """Integer indices (M, *positions) into the M leading axes of `sizes`, negative ones
    included (counted from the end, as nnabla's)."""
    rng = np.random.default_rng(g.draw(SEEDS))
    rows = [rng.integers(-n, n, size=positions) for n in sizes]
    values = np.stack(rows).astype(float) if rows else np.zeros((0,) + positions)
    return g.new_leaf("label", values.shape, values, need_grad=False)


def _draw_nd(g: _Draft, op: str) -> None:
    """F.gather_nd (data and indices) or F.scatter_nd (into zeros of `shape`, with add or
    the last write winning)."""
    if not g.room(2):
        return
    positions = g.shape(1, 2)
    if op == "gather_nd":
        x = g.operand(lambda v: 1 <= v.ndim <= 3, lambda: g.shape(1, 3))
        if x is None:
            return
        vx = g.value(x)
        m = g.draw(st.integers(1, vx.ndim))
        g.commit(op, [x, _nd_indices(g, vx.shape[:m], positions)])
        return
    shape = g.shape(1, 3)
    m = g.draw(st.integers(1, len(shape)))
    target = positions + shape[m:]
    data = g.operand(lambda v: v.shape == target, lambda: target)
    if data is not None:
        kw = {"shape": shape} | ({"add": True} if g.draw(st.booleans()) else {})
        g.commit(op, [data, _nd_indices(g, shape[:m], positions)], kw)


def _draw_more(g: _Draft) -> None:
    """celu, prelu, kl_multinomial, interpolate, onnx_resize, clip_by_norm,
    norm_normalization, weight_standardization, weight_normalization, mean_subtraction
    (inference), clip_grad_by_value and top_k_grad (drawn where their backward is the
    identity)."""
    op = g.choose(["celu", "prelu", "kl_multinomial", "interpolate", "onnx_resize",
                   "clip_by_norm", "norm_normalization", "weight_standardization",
                   "weight_normalization", "mean_subtraction", "clip_grad_by_value",
                   "top_k_grad"])
    if op == "kl_multinomial":
        p = g.operand(lambda v: v.ndim >= 2 and bool(np.all((v > 0.05) & (v < 1))),
                      lambda: g.shape(2, 3), "probability")
        if p is None:
            return
        vp = g.value(p)
        q = g.operand(lambda v: v.shape == vp.shape and bool(np.all((v > 0.05) & (v < 1))),
                      lambda: vp.shape, "probability")
        if q is not None:
            base = g.draw(st.integers(1, vp.ndim - 1))
            g.commit(op, [p, q], {} if base == 1 else {"base_axis": base})
        return
    x = g.operand(lambda v: 1 <= v.ndim <= 4 and v.size <= 64, lambda: g.shape(1, 3))
    if x is None:
        return
    vx = g.value(x)
    rank = vx.ndim
    if op == "celu":
        if _far(vx):
            kw = {"axis": g.draw(st.integers(-rank, rank - 1))}
            if g.draw(st.booleans()):
                kw["alpha"] = g.draw(st.sampled_from([0.5, 2.0]))
            g.commit(op, [x], kw)
    elif op == "prelu":
        base = g.draw(st.integers(0, rank - 1))
        shape = g.draw(st.sampled_from([(1,), (vx.shape[base],)]))
        if _far(vx) and g.room():
            slope = g.new_leaf(None, shape, g.new_values("normal", shape))
            g.commit(op, [x, slope], {} if base == 1 else {"base_axis": base})
    elif op == "interpolate":
        count = g.draw(st.integers(1, min(2, rank)))
        mode = g.draw(st.sampled_from(["linear", "nearest"]))
        kw: dict = {}
        if mode == "linear":
            sizes = tuple(g.draw(st.integers(1, 6)) for _ in range(count))
            corner = g.draw(st.sampled_from(["", "align_corners", "half_pixel"]))
            if corner == "align_corners" and min(sizes) < 2:
                return
            if corner:
                kw[corner] = True
        else:  # ratios exact in binary, so that no floor is decided by rounding
            sizes = tuple(g.draw(st.sampled_from([n, 2 * n] + [m for m in (1, 2) if n % m == 0
                                                               and m < n]))
                          for n in vx.shape[rank - count:])
            kw["mode"] = "nearest"
            if g.draw(st.booleans()):
                kw["half_pixel_for_nn"] = True
        if vx.size // math.prod(vx.shape[rank - count:]) * math.prod(sizes) <= 64:
            g.commit(op, [x], {"output_size": sizes} | kw)
    elif op == "onnx_resize":
        _draw_onnx_resize(g, x, vx)
    elif op == "clip_by_norm":
        clip = g.draw(st.sampled_from([0.5, 1.0, 2.0]))
        axis = _axis(g, rank)
        norm = _np_norm(vx, 2.0, axis)
        if np.all(norm > 0.2) and _far(norm, clip):
            g.commit(op, [x], {"clip_norm": clip} | ({} if axis is None else {"axis": axis}))
    elif op == "norm_normalization":
        p = g.draw(st.sampled_from([None, 1.0, 3.0]))
        axes = _axis(g, rank)
        if (p != 1.0 or _far(vx)) and np.all(_np_norm(vx, p or 2.0, axes) > 0.2):
            kw = {} if p is None else {"p": p}
            g.commit(op, [x], kw | ({} if axes is None else {"axes": axes}))
    elif op == "weight_standardization":
        axis = g.draw(st.integers(0, rank - 1))
        if _spread(vx, [a for a in range(rank) if a != axis]):
            g.commit(op, [x], {} if axis == 0 else {"channel_axis": axis})
    elif op == "weight_normalization":
        dim = g.draw(st.integers(0, rank - 1))
        others = tuple(a for a in range(rank) if a != dim)
        if np.all((vx**2).sum(axis=others) > 0.1) and g.room():
            shape = (vx.shape[dim],)
            scale = g.new_leaf(None, shape, g.new_values("normal", shape))
            g.commit(op, [x, scale], {} if dim == 0 else {"dim": dim})
    elif op == "mean_subtraction":
        base = g.draw(st.integers(0, rank - 1))
        if g.room(2):
            mean = _stat(g, vx.shape[base:], "normal")
            t = g.new_leaf("stat", (1,), np.array([3.0]), need_grad=False)
            kw = {} if base == 1 else {"base_axis": base}
            g.commit(op, [x, mean, t], kw | {"update_running_mean": False})
    elif op == "clip_grad_by_value":
        if g.room(2):  # bounds no gradient reaches: the backward is the identity
            bounds = [g.new_leaf("stat", vx.shape, _values("wide", None, vx.shape, n),
                                 need_grad=False) for n in (-1e6, 1e6)]
            g.commit(op, [x, *bounds])
    else:
        base = g.draw(st.integers(0, rank - 1))
        k = math.prod(vx.shape[base:])  # every gradient kept: the backward is the identity
        kw = {"k": k} | ({"abs": True} if g.draw(st.booleans()) else {})
        g.commit(op, [x], kw | ({} if base == 1 else {"base_axis": base}))


def _draw_catalogue(g: _Draft) -> None:
    """crelu (away from its kink), add_n and mul_n (of 1-3 values of one shape), norm
    (norms of at least 0.2; p=1 away from 0), trilu, eye_like and shape (constants),
    tensor_normalization (spread-out groups), categorical_cross_entropy (probabilities
    and labels), confusion_matrix (no ties) and depthwise_deconvolution (small images)."""
    op = g.choose(["crelu", "add_n", "mul_n", "norm", "trilu", "eye_like", "shape",
                   "tensor_normalization", "categorical_cross_entropy", "confusion_matrix",
                   "depthwise_deconvolution"])
    if op == "depthwise_deconvolution":
        x = g.operand(lambda v: v.ndim in (3, 4) and v.size <= 40, lambda: _image(g))
        if x is None or not g.room():
            return
        vx = g.value(x)
        divisor = g.draw(st.sampled_from([d for d in (1, 2, 4) if vx.shape[1] % d == 0]))
        kernel = tuple(g.draw(st.integers(1, 2)) for _ in vx.shape[2:])
        w = g.new_leaf(None, (vx.shape[1],) + kernel,
                       g.new_values("weight", (vx.shape[1],) + kernel))
        g.commit(op, [x, w], {} if divisor == 1 else {"divisor": divisor})
        return
    domain = "probability" if op == "categorical_cross_entropy" else "normal"
    x = g.operand(lambda v: 1 <= v.ndim <= 3 and v.size <= 48 and (
        domain == "normal" or bool(np.all(v > 0.05))), lambda: g.shape(1, 3), domain)
    if x is None:
        return
    vx = g.value(x)
    rank = vx.ndim
    if op in ("categorical_cross_entropy", "confusion_matrix"):
        axis = g.draw(st.integers(-rank, rank - 1))
        if not g.room() or (op == "confusion_matrix" and not _sorted_apart(vx, axis)):
            return
        shape = tuple(1 if a == axis % rank else d for a, d in enumerate(vx.shape))
        g.commit(op, [x, g.label(shape, "labels", n=vx.shape[axis])], {"axis": axis})
    elif op == "crelu":
        if _far(vx):
            g.commit(op, [x], {"axis": g.draw(st.integers(0, rank - 1))})
    elif op in ("add_n", "mul_n"):
        count = g.draw(st.integers(1 if op == "add_n" else 2, 3))
        others = [g.operand(lambda v: v.shape == vx.shape, lambda: vx.shape)
                  for _ in range(count - 1)]
        if all(o is not None for o in others) and g.room(len(others)):
            g.commit(op, [x, *others])
    elif op == "norm":
        p = g.draw(st.sampled_from([None, 1.0, 3.0]))
        axis = _axis(g, rank)
        keepdims = g.draw(st.booleans())
        if (p != 1.0 or _far(vx)) and np.all(_np_norm(vx, p or 2.0, axis) > 0.2):
            kw = ({} if p is None else {"p": p}) | ({} if axis is None else {"axis": axis})
            g.commit(op, [x], kw | ({"keepdims": True} if keepdims else {}))
    elif op == "trilu":
        if rank >= 2:
            g.commit(op, [x], {"k": g.draw(st.integers(-2, 2)), "upper": g.draw(st.booleans())})
    elif op == "eye_like":
        if rank == 2:
            g.commit(op, [x], {"k": g.draw(st.integers(-2, 2))})
    elif op == "shape":
        start = g.draw(st.integers(-rank, rank - 1))
        s = start % rank  # nnabla's range: end 0 is the end, a negative end counts from it
        end = g.draw(st.sampled_from([0, *range(s + 1, rank + 1), *range(s + 1 - rank, 0)]))
        g.commit(op, [x], {"start": start} | ({} if end == 0 else {"end": end}))
    else:  # tensor_normalization: axes, beta and gamma positional (beta None, gamma given)
        kept = tuple(sorted(g.draw(st.lists(st.integers(0, rank - 1), min_size=1,
                                            max_size=rank, unique=True))))
        if _spread(vx, [a for a in range(rank) if a not in kept]):
            stat = tuple(d if a in kept else 1 for a, d in enumerate(vx.shape))
            beta, gamma = _scale_leaf(g, stat), _scale_leaf(g, stat)
            scales = [beta, gamma] if gamma is not None else [v for v in (beta,) if v is not None]
            g.commit(op, [x, kept, *scales])


def _draw_linalg(g: _Draft) -> None:
    """batch_inv, batch_det and batch_logdet of a new leaf of matrices (B, N, N) near 1.5 I or
    -1.5 I (determinants far from 0, well conditioned; -1.5 I of odd N: a negative
    determinant, logdet's log |det|)."""
    op = g.choose(["batch_inv", "batch_det", "batch_logdet"])
    if not g.room():
        return
    n = g.draw(st.integers(1, 3))
    shape = (g.draw(st.integers(1, 2)), n, n)
    sign = g.draw(st.sampled_from([1.0, -1.0]))
    noise = g.new_values("normal", shape)
    values = np.round(0.2 * noise + sign * 1.5 * np.eye(n), 2)
    g.commit(op, [g.new_leaf(None, shape, values)])


def _np_affine_grid(theta, size, align_corners=False):
    """theta[b] @ (x, y(, z), 1) of the target grid (n points from -1 to 1 per axis,
    times (n - 1)/n without align_corners)."""
    axes = [np.linspace(-1, 1, n) * (1 if align_corners else (n - 1) / n) for n in size]
    mesh = np.meshgrid(*axes, indexing="ij")
    target = np.stack([*mesh[::-1], np.ones(tuple(size))], axis=-1)
    return np.einsum("...j,bij->b...i", target, theta)


def _np_reflect(s, low, high):
    """nnabla's reflect (warp_by_grid.cpp): s mirrored into [low, high] at both ends."""
    span = high - low
    below, above = low - s, s - high
    r_below, r_above = below % span, above % span
    odd_below, odd_above = (below // span) % 2 == 1, (above // span) % 2 == 1
    return np.where(s < low, np.where(odd_below, high - r_below, low + r_below),
                    np.where(s > high, np.where(odd_above, low + r_above, high - r_above), s))


def _np_warp_by_grid(x, grid, mode="linear", padding_mode="zero", align_corners=False,
                     channel_last=False):
    """x read at the grid's points (warp_by_grid.cpp): positions in pixels, padded, then
    the corners (or the nearest pixel, halves away from zero), 0 outside x."""
    if channel_last:
        x = np.moveaxis(x, -1, 1)
    sizes = x.shape[2:]
    k = len(sizes)
    positions = []
    for axis, n in enumerate(sizes):
        g = grid[..., k - 1 - axis]
        s = (g + 1) * (n - 1) / 2 if align_corners else ((g + 1) * n - 1) / 2
        if padding_mode == "repeat":
            s = np.clip(s, 0, n - 1)
        elif padding_mode == "reflect" and align_corners:
            s = _np_reflect(s, 0, n - 1) if n > 1 else s
        elif padding_mode == "reflect":
            s = np.clip(_np_reflect(2 * s, -1, 2 * n - 1) / 2, 0, n - 1)
        positions.append(s)
    batch = np.arange(x.shape[0]).reshape((-1,) + (1,) * (grid.ndim - 2))

    def read(indices):  # (B, *out, C), 0 outside
        inside = np.all([(i >= 0) & (i < n) for i, n in zip(indices, sizes, strict=True)], 0)
        clipped = [np.clip(i, 0, n - 1).astype(int) for i, n in zip(indices, sizes, strict=True)]
        return np.moveaxis(x, 1, -1)[(batch, *clipped)] * inside[..., None]

    if mode == "nearest":
        y = read([np.sign(s) * np.floor(np.abs(s) + 0.5) for s in positions])
    else:
        low = [np.floor(s) for s in positions]
        y = 0
        for corner in np.ndindex(*(2,) * k):
            weight = np.prod([s - i if o else 1 - (s - i)
                              for s, i, o in zip(positions, low, corner, strict=True)], 0)
            y = y + weight[..., None] * read([i + o for i, o in zip(low, corner, strict=True)])
    return y if channel_last else np.moveaxis(y, -1, 1)


def _np_warp_by_flow(data, flow):
    """warp_by_flow.cpp: the four neighbours of (x + flow_x, y + flow_y) clamped to the
    image, alpha and beta measured from the clamped top-left one."""
    n, c, h, w = data.shape
    xf = np.arange(w) + flow[:, 0]
    yf = np.arange(h)[:, None] + flow[:, 1]
    xl, yt = np.clip(np.floor(xf), 0, w - 1), np.clip(np.floor(yf), 0, h - 1)
    xr, yb = np.clip(np.floor(xf) + 1, 0, w - 1), np.clip(np.floor(yf) + 1, 0, h - 1)
    b = np.arange(n)[:, None, None]

    def at(yy, xx):
        return np.moveaxis(data, 1, -1)[b, yy.astype(int), xx.astype(int)]  # (N, H, W, C)

    alpha, beta = (xf - xl)[..., None], (yf - yt)[..., None]
    upper = alpha * (at(yt, xr) - at(yt, xl)) + at(yt, xl)
    lower = alpha * (at(yb, xr) - at(yb, xl)) + at(yb, xl)
    return np.moveaxis(beta * (lower - upper) + upper, -1, 1)


def _off_kink_pixels(v, low, high):
    """Positions in pixels from the values v: whole pixels from low to high plus or minus
    0.2 to 0.3 (away from every integer and half: the kinks of sampling, clipping,
    reflecting and rounding)."""
    whole = np.clip(np.round(v * 1.5), low, high)
    part = 0.2 + 0.1 * (np.abs(v) * 10 % 1)
    return whole + np.where(whole % 2 == 0, part, -part)


def _draw_geometry(g: _Draft) -> None:
    """affine_grid of a new leaf theta (B, k, k + 1); warp_by_grid of a value (B, C, *S) (or
    channels last) at a new leaf grid whose points lie off the kinks (2-D or 3-D, linear or
    nearest, every padding mode, align_corners either way); warp_by_flow of a value (N, C,
    H, W) by a new leaf flow of offsets off the kinks."""
    op = g.choose(["affine_grid", "warp_by_grid", "warp_by_flow"])
    if not g.room():
        return
    if op == "affine_grid":
        k = g.draw(st.integers(2, 3))
        size = tuple(g.draw(st.integers(2, 3)) for _ in range(k))
        shape = (g.draw(st.integers(1, 2)), k, k + 1)
        theta = g.new_leaf(None, shape, g.new_values("normal", shape))
        g.commit(op, [theta], {"size": size} | (
            {"align_corners": True} if g.draw(st.booleans()) else {}))
        return
    if op == "warp_by_flow":
        data = g.operand(lambda v: v.ndim == 4 and v.size <= 48, lambda: g.shape(4, 4))
        if data is None or not g.room():
            return
        n, _, h, w = g.value(data).shape
        v = g.new_values("normal", (n, 2, h, w))
        flow = np.round(_off_kink_pixels(v, -2, 2), 2)
        g.commit(op, [data, g.new_leaf(None, flow.shape, flow)])
        return
    k = g.draw(st.integers(2, 3))
    last = g.draw(st.booleans())
    x = g.operand(lambda v: v.ndim == k + 2 and v.size <= 48, lambda: g.shape(k + 2, k + 2))
    if x is None or not g.room():
        return
    vx = g.value(x)
    sizes = vx.shape[1:-1] if last else vx.shape[2:]
    out = tuple(g.draw(st.integers(1, 3)) for _ in range(k))
    align = g.draw(st.booleans())
    kw = {"mode": g.draw(st.sampled_from(["linear", "nearest"])),
          "padding_mode": g.draw(st.sampled_from(["zero", "repeat", "reflect"]))}
    v = g.new_values("normal", (vx.shape[0],) + out + (k,))
    n = np.array(sizes[::-1], dtype=float)  # (W, H(, D)): the grid's (x, y(, z))
    pixels = _off_kink_pixels(v, -2, n + 1)
    # (align_corners on an axis of 1: every point is at pixel 0, whatever the grid says)
    grid = np.round(2 * pixels / np.maximum(n - 1, 1) - 1 if align else
                    (2 * pixels + 1) / n - 1, 2)
    g.commit(op, [x, g.new_leaf(None, grid.shape, grid)], kw | (
        {"align_corners": True} if align else {}) | ({"channel_last": True} if last else {}))


def _np_patch_correlation(x1, x2, patch=(1, 1), shift=(0, 0), patch_step=(1, 1),
                          shift_step=(1, 1), padding=(0, 0, 0, 0), channel_last=False):
    """The patch sums of x1 times x2 shifted (0 outside), per offset, both zero-padded."""
    if channel_last:
        x1, x2 = np.moveaxis(x1, 3, 1), np.moveaxis(x2, 3, 1)
    top, bottom, left, right = padding
    a, b = (np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right))) for x in (x1, x2))
    h, w = a.shape[2:]
    ys, xs = range(-shift[0], shift[0] + 1, shift_step[0]), range(-shift[1], shift[1] + 1,
                                                                 shift_step[1])
    wide = np.pad(b, ((0, 0), (0, 0), (shift[0], shift[0]), (shift[1], shift[1])))
    maps = np.array([[(a * wide[:, :, shift[0] + dy:shift[0] + dy + h,
                                shift[1] + dx:shift[1] + dx + w]).sum(axis=1)
                      for dx in xs] for dy in ys])  # (Cy, Cx, N, H, W)
    out = np.zeros(maps.shape[:3] + ((h - patch[0]) // patch_step[0] + 1,
                                     (w - patch[1]) // patch_step[1] + 1))
    for p in range(out.shape[3]):
        for q in range(out.shape[4]):
            rows = slice(p * patch_step[0], p * patch_step[0] + patch[0])
            cols = slice(q * patch_step[1], q * patch_step[1] + patch[1])
            out[..., p, q] = maps[..., rows, cols].sum(axis=(-2, -1))
    out = np.moveaxis(out, 2, 0)  # (N, Cy, Cx, Ho, Wo)
    return np.moveaxis(out, (1, 2), (3, 4)) if channel_last else out


def _draw_correlation(g: _Draft) -> None:
    """patch_correlation of two new leaves (N, C, H, W), or NHWC: patch, shift, steps and
    padding drawn small."""
    if not g.room(2):
        return
    layout = g.draw(st.booleans())
    n, c, h, w = (g.draw(st.integers(1, 2)), g.draw(st.integers(1, 2)),
                  g.draw(st.integers(2, 4)), g.draw(st.integers(2, 4)))
    shape = (n, h, w, c) if layout else (n, c, h, w)
    kw = {"patch": (g.draw(st.integers(1, 2)), g.draw(st.integers(1, 2))),
          "shift": (g.draw(st.integers(0, 1)), g.draw(st.integers(0, 2))),
          "patch_step": (g.draw(st.integers(1, 2)), 1),
          "shift_step": (1, g.draw(st.integers(1, 2))),
          "padding": tuple(g.draw(st.integers(0, 1)) for _ in range(4))}
    if layout:
        kw["channel_last"] = True
    leaves = [g.new_leaf(None, shape, g.new_values("normal", shape)) for _ in range(2)]
    g.commit("patch_correlation", leaves, kw)


def _np_deformable_convolution(x, w, offset, *rest, pad=(0, 0), stride=(1, 1),
                               dilation=(1, 1), group=1, deformable_group=1):
    """deformable_convolution.cpp: each channel read bilinearly (corners outside x are 0)
    at its kernel positions moved by the offsets ((y, x) pairs, deformable group first,
    read at output pixel * stride), times the mask, then the weight per group; a 1-D
    fourth argument is the bias."""
    mask = rest[0] if rest and rest[0].ndim == 4 else None
    bias = rest[-1] if rest and rest[-1].ndim == 1 else None
    n, c, h, wd = x.shape
    out_c, _, kh, kw = w.shape
    dg, k = deformable_group, kh * kw
    out = [(size + 2 * p - d * (kk - 1) - 1) // s + 1
           for size, kk, p, s, d in zip((h, wd), (kh, kw), pad, stride, dilation, strict=True)]
    rows, cols = np.arange(out[0]) * stride[0], np.arange(out[1]) * stride[1]
    pairs = offset[:, :, rows][:, :, :, cols].reshape(n, dg, k, 2, *out)
    i, j = np.divmod(np.arange(k), kw)
    ys = (rows[:, None] - pad[0] + (i * dilation[0])[:, None, None]) + pairs[:, :, :, 0]
    xs = (cols[None, :] - pad[1] + (j * dilation[1])[:, None, None]) + pairs[:, :, :, 1]
    image = x.reshape(n, dg, c // dg, h, wd)
    values = 0
    for dy in (0, 1):
        for dx in (0, 1):
            yy, xx = np.floor(ys) + dy, np.floor(xs) + dx
            weight = (1 - np.abs(ys - yy)) * (1 - np.abs(xs - xx))  # (N, dg, K, Ho, Wo)
            inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < wd)
            yi, xi = np.clip(yy, 0, h - 1).astype(int), np.clip(xx, 0, wd - 1).astype(int)
            read = image[np.arange(n)[:, None, None, None, None],
                         np.arange(dg)[None, :, None, None, None], :, yi, xi]
            values = values + (weight * inside)[..., None] * read  # (N, dg, K, Ho, Wo, Cg)
    if mask is not None:
        values = values * mask[:, :, rows][:, :, :, cols].reshape(n, dg, k, *out)[..., None]
    columns = np.moveaxis(values, 5, 2).reshape(n, c, kh, kw, *out)
    per_in, per_out = c // group, out_c // group
    y = np.concatenate([np.einsum("ocij,ncijhw->nohw", w[g * per_out:(g + 1) * per_out],
                                  columns[:, g * per_in:(g + 1) * per_in])
                        for g in range(group)], axis=1)
    return y if bias is None else y + bias[:, None, None]


def _np_adaptive_separable_convolution(x, kv, kh):
    """y[b, c, h, w] = sum over j, i of kv[b, j, h, w] kh[b, i, h, w] x[b, c, h + j, w + i]."""
    out_h, out_w = x.shape[2] - kv.shape[1] + 1, x.shape[3] - kh.shape[1] + 1
    y = 0
    for j in range(kv.shape[1]):
        for i in range(kh.shape[1]):
            y = y + (kv[:, j:j + 1, :out_h, :out_w] * kh[:, i:i + 1, :out_h, :out_w]
                     * x[:, :, j:j + out_h, i:i + out_w])
    return y


def _draw_deformable(g: _Draft) -> None:
    """deformable_convolution of a value (N, C, H, W) with a new weight, new offsets off
    the kinks (every point 0.2 to 0.3 from a whole pixel: the bilinear reads' kinks, the
    image's edges among them, are there), with or without a mask and a bias (pad, stride,
    dilation, group, deformable_group); or adaptive_separable_convolution of a value with
    two new kernels."""
    op = g.choose(["deformable_convolution", "adaptive_separable_convolution"])
    x = g.operand(lambda v: v.ndim == 4 and v.size <= 64 and min(v.shape[2:]) >= 2,
                  lambda: (g.draw(st.integers(1, 2)), g.draw(st.sampled_from([1, 2, 4])),
                           g.draw(st.integers(2, 4)), g.draw(st.integers(2, 4))))
    if x is None:
        return
    n, c, h, wd = g.value(x).shape
    rng = np.random.default_rng(g.draw(SEEDS))
    if op == "adaptive_separable_convolution":
        taps = (g.draw(st.integers(1, min(h, 3))), g.draw(st.integers(1, min(wd, 3))))
        out = (h - taps[0] + 1, wd - taps[1] + 1)
        if not g.room(2):
            return
        kernels = []
        for t in taps:
            shape = (n, t, g.draw(st.integers(out[0], h)), g.draw(st.integers(out[1], wd)))
            kernels.append(g.new_leaf(None, shape, _values("normal", rng, shape)))
        g.commit(op, [x, *kernels])
        return
    kernel = (g.draw(st.integers(1, min(h, 3))), g.draw(st.integers(1, min(wd, 3))))
    pad = tuple(g.draw(st.integers(0, 1)) for _ in range(2))
    stride = tuple(g.draw(st.integers(1, 2)) for _ in range(2))
    dilation = tuple(g.draw(st.sampled_from([1, 1, 2])) for _ in range(2))
    group, dg = (g.draw(st.sampled_from(_divisors(c))) for _ in range(2))
    out_c = math.lcm(group, dg) * g.draw(st.integers(1, 2))
    out = [(size + 2 * p - d * (k - 1) - 1) // s + 1
           for size, k, p, s, d in zip((h, wd), kernel, pad, stride, dilation, strict=True)]
    with_mask, with_bias = g.draw(st.booleans()), g.draw(st.booleans())
    if (min(out) < 1 or any((m - 1) * s > size - 1 for m, s, size in zip(out, stride, (h, wd),
                                                                            strict=True))
            or (with_mask and pad[0] >= (kernel[0] + 1) // 2
                and pad[1] >= (kernel[1] + 1) // 2)
            or n * out_c * math.prod(out) > 64 or not g.room(2 + with_mask + with_bias)):
        return  # (nnabla's refusals and the offsets' reads past x: test_deformable.py)
    k = kernel[0] * kernel[1]
    w_shape = (out_c, c // group) + kernel
    offset = np.round(_off_kink_pixels(rng.normal(size=(n, dg * 2 * k, h, wd)), -2, 2), 2)
    args = [x, g.new_leaf(None, w_shape, _values("weight", rng, w_shape, c // group * k)),
            g.new_leaf(None, offset.shape, offset)]
    if with_mask:
        args.append(g.new_leaf(None, (n, dg * k, h, wd), _values("normal", rng,
                                                                (n, dg * k, h, wd))))
    if with_bias:
        args.append(g.new_leaf(None, (out_c,), _values("normal", rng, (out_c,))))
    kw = {name: value for name, value, plain in (
        ("pad", pad, (0, 0)), ("stride", stride, (1, 1)), ("dilation", dilation, (1, 1)),
        ("group", group, 1), ("deformable_group", dg, 1)) if value != plain}
    g.commit(op, args, kw)


def _np_dft(x, signal_ndim, normalized, inverse):
    """numpy.fft's n-D (i)fft of the complex pairs x (..., N_1, ..., N_d, 2)."""
    z = x[..., 0] + 1j * x[..., 1]
    axes = tuple(range(z.ndim - signal_ndim, z.ndim))
    n = int(np.prod([z.shape[a] for a in axes]))
    y = np.fft.ifftn(z, axes=axes) if inverse else np.fft.fftn(z, axes=axes)
    if normalized:
        y = y * (np.sqrt(n) if inverse else 1 / np.sqrt(n))
    return np.stack([y.real, y.imag], axis=-1)


def _draw_signal(g: _Draft) -> None:
    """fft or ifft over 1 to 3 signal axes of a value whose last axis holds (real,
    imaginary) pairs, or of a new leaf (..., N_1, ..., N_d, 2)."""
    op = g.choose(["fft", "ifft"])
    d = g.draw(st.integers(1, 3))

    def shape():
        return tuple(g.draw(st.integers(1, 3)) for _ in range(d + g.draw(st.integers(0, 1))))\
            + (2,)

    x = g.operand(lambda v: v.ndim >= d + 1 and v.shape[-1] == 2, shape)
    if x is not None:
        g.commit(op, [x], {"signal_ndim": d} | (
            {"normalized": True} if g.draw(st.booleans()) else {}))


# Elementwise functions come first and twice: hypothesis shrinks towards them.
# Weighted by how many functions each family draws from: UNARY holds a third of them.
FAMILIES = [_draw_unary, _draw_binary, _draw_unary, _draw_reduction, _draw_binary,
            _draw_unary, _draw_shape_op, _draw_affine, _draw_unary, _draw_matmul,
            _draw_softmax, _draw_unary, _draw_cross_entropy, _draw_clip, _draw_indexing,
            _draw_convolution, _draw_pooling, _draw_normalization, _draw_stepwise,
            _draw_array, _draw_index, _draw_more, _draw_unary, _draw_stepwise, _draw_array,
            _draw_more, _draw_unary, _draw_convolution, _draw_pooling, _draw_normalization,
            _draw_stepwise, _draw_array, _draw_binary, _draw_unary, _draw_index, _draw_more,
            _draw_catalogue, _draw_catalogue, _draw_linalg, _draw_signal, _draw_correlation,
            _draw_geometry, _draw_deformable]


# The functions each family draws (for `graphs(focus=...)`).
FAMILY_OPS = {
    _draw_unary: set(UNARY_OPS), _draw_binary: {b[0] for b in BINARY},
    _draw_reduction: {"sum", "mean", "max", "min", "reduce_sum", "reduce_mean"},
    _draw_shape_op: {"reshape", "transpose", "broadcast"},
    _draw_affine: {"affine", "pf_affine"}, _draw_matmul: {"batch_matmul", "@", "einsum"},
    _draw_softmax: {"softmax", "log_softmax", "softmax_cross_entropy"},
    _draw_cross_entropy: {"sigmoid_cross_entropy", "binary_cross_entropy"},
    _draw_clip: {"clip_by_value"}, _draw_indexing: {"slice", "flip", "pad", "concatenate"},
    _draw_convolution: {"convolution", "deconvolution", "depthwise_convolution"},
    _draw_pooling: {"max_pooling", "average_pooling", "sum_pooling",
                    "global_average_pooling", "unpooling", "max_pooling_backward"},
    _draw_normalization: {"batch_normalization", "fused_batch_normalization",
                          "layer_normalization", "instance_normalization",
                          "group_normalization"},
    _draw_stepwise: set(STEPWISE),
    _draw_array: {"cumsum", "cumprod", "prod", "sort", "top_k_data", "shift", "tile", "stack",
                  "split", "broadcast_to", "sink", "matrix_diag", "matrix_diag_part",
                  "meshgrid", "constant", "arange", "linspace"},
    _draw_index: {"gather", "scatter_add", "embed", "one_hot", "top_n_error", "binary_error",
                  "gather_nd", "scatter_nd"},
    _draw_more: {"celu", "prelu", "kl_multinomial", "interpolate", "onnx_resize",
                 "clip_by_norm", "norm_normalization", "weight_standardization",
                 "weight_normalization", "mean_subtraction", "clip_grad_by_value",
                 "top_k_grad"},
    _draw_catalogue: {"crelu", "add_n", "mul_n", "norm", "trilu", "eye_like", "shape",
                      "tensor_normalization", "categorical_cross_entropy", "confusion_matrix",
                      "depthwise_deconvolution"},
    _draw_linalg: {"batch_inv", "batch_det", "batch_logdet"},
    _draw_geometry: {"affine_grid", "warp_by_grid", "warp_by_flow"},
    _draw_correlation: {"patch_correlation"},
    _draw_deformable: {"deformable_convolution", "adaptive_separable_convolution"},
    _draw_signal: {"fft", "ifft"},
}


def _draws(option, focus: str) -> bool:
    """Whether `option` of a choice is, or can draw, the function `focus`."""
    if isinstance(option, str):
        return option == focus
    if isinstance(option, tuple):  # BINARY's
        return option[0] == focus
    if isinstance(option, _Unary):
        return option.op == focus
    return focus in FAMILY_OPS.get(option, ())


@st.composite
def graphs(draw, max_steps: int = 6, focus: str | None = None) -> GraphSpec:
    """A random graph of up to `max_steps` functions, then a scalar loss: F.mean or F.sum
    of every value nothing else uses, added up. With `focus` (a function's name) every
    step draws that function where its family can: a quick way to a small graph using it."""
    g = _Draft(draw, focus)
    for _ in range(draw(st.integers(1, max_steps))):
        g.choose(FAMILIES)(g)
    if not g.steps:
        g.commit("tanh", [g.new_leaf("input", (), np.array(0.5), need_grad=True)])
    sinks = [step.out for step in g.steps if step.out not in g.used]
    reducers = tuple(g.choose(["mean", "sum"]) for _ in sinks)
    g.commit("loss", sinks, {"reducers": reducers}, out="loss")
    return g.spec()
