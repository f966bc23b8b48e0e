"""`symcompile.functions` (F): nnabla's functions, recording graph nodes.

Each function checks its inputs and arguments, works out the output shape (so shape
errors surface here, at graph-build time) and returns a new Variable whose `parent`
records the call. Nothing is computed until `forward()`.

The functions of elementwise ops are not written here: each is built from its op's
registry entry (`OpDef.api`, see `ops.elementwise`), which holds nnabla's parameters and
the docstring, so that an elementwise function is added in one place. The functions
below are those with logic of their own (axes, shapes, optional inputs).
"""

from __future__ import annotations

import builtins
import functools
import inspect
import math
import numbers

import numpy

from symcompile.frontend import dynamic
from symcompile.frontend.variable import Function, NdArray, Variable, normalize_shape
from symcompile.ir import callsite
from symcompile.ops.normalization import spectral_norm_matrix
from symcompile.ops.registry import OPS, OpDef, normalize_axes, number

# The hand-written functions; those of the elementwise ops are added at the end.
__all__ = [
    "sum", "mean", "max", "min", "reduce_sum", "reduce_mean", "clip_by_value",
    "affine", "batch_matmul", "reshape", "transpose", "broadcast", "softmax", "log_softmax",
    "softmax_cross_entropy", "convolution", "max_pooling", "max_pooling_backward",
    "average_pooling", "sum_pooling",
    "global_average_pooling", "batch_normalization", "slice", "flip", "pad", "concatenate",
    "stack", "split", "dropout", "deconvolution", "depthwise_convolution", "unpooling", "embed",
    "layer_normalization", "instance_normalization", "group_normalization", "top_n_error",
    "binary_error", "tile", "one_hot", "sink", "rand", "randn", "randint", "constant",
    "arange", "linspace", "einsum", "assign",
]


def _record(op_name: str, inputs: tuple, **attrs) -> Variable:
    """Check the inputs of `op_name`, infer its output shape and add the node."""
    op = OPS[op_name]
    for position, var in enumerate(inputs):
        if not isinstance(var, Variable):
            kind = type(var).__name__
            hint = (" Wrap arrays with nn.Variable.from_numpy_array(array)."
                    if hasattr(var, "shape") else "")
            raise TypeError(f"F.{op_name}: input {position} must be a Variable, got {kind}.{hint}")
    shape = op.infer_shape(tuple(v.shape for v in inputs), attrs)
    site = callsite.capture()
    func = Function(op, tuple(inputs), attrs, site)
    out = Variable(shape)
    out._parent = func
    out._callsite = site
    func.add_output(out)
    if dynamic.get_auto_forward():
        dynamic.compute(out)
    return out


def _reduction(op: str, x, axis, keepdims) -> Variable:
    if not isinstance(x, Variable):
        return _record(op, (x,))  # raises the TypeError
    return _record(op, (x,), axes=normalize_axes(op, axis, x.shape), keepdims=bool(keepdims))


def sum(x, axis=None, keepdims=False):  # noqa: A001 - nnabla's name
    """Sum over `axis` (None: all axes; an int or a tuple of ints)."""
    return _reduction("sum", x, axis, keepdims)


def mean(x, axis=None, keepdims=False):
    """Mean over `axis` (None: all axes; an int or a tuple of ints)."""
    return _reduction("mean", x, axis, keepdims)


def reduce_sum(x, n_outputs=-1, outputs=None):
    """Sum over all axes (deprecated in nnabla in favour of `sum`, kept for tutorials)."""
    return _reduction("reduce_sum", x, None, False)


def reduce_mean(x, n_outputs=-1, outputs=None):
    """Mean over all axes (deprecated in nnabla in favour of `mean`, kept for tutorials)."""
    return _reduction("reduce_mean", x, None, False)


def max(x, axis=None, keepdims=False, with_index=False, only_index=False):  # noqa: A001
    """Maximum over `axis`; the gradient goes to the first maximal element, as in nnabla.
    `with_index` also returns the index of that element (see `_with_index`), `only_index`
    only the index."""
    return _with_index("max", x, axis, keepdims, with_index, only_index)


def min(x, axis=None, keepdims=False, with_index=False, only_index=False):  # noqa: A001
    """Minimum over `axis`; the gradient goes to the first minimal element. `with_index`
    also returns its index, `only_index` only the index."""
    return _with_index("min", x, axis, keepdims, with_index, only_index)


# --- clipping ---------------------------------------------------------------------------

def clip_by_value(x, min, max):  # noqa: A002 - nnabla's argument names
    """x limited to [min, max]; `min` and `max` are numbers or Variables.

    As nnabla's, it is maximum then minimum: the gradient is 0 at the bounds.
    """
    for what, bound in (("min", min), ("max", max)):
        if not isinstance(bound, (Variable, numbers.Real)):
            raise TypeError(f"F.clip_by_value: {what} must be a Variable or a number, got "
                            f"{type(bound).__name__}")
    low = _bound("maximum", x, min)
    return _bound("minimum", low, max)


def _bound(which: str, x, bound) -> Variable:
    """F.maximum2 / F.maximum_scalar (or the minimum's) of `x` and `bound`."""
    if isinstance(bound, Variable):
        return _record(f"{which}2", (x, bound))
    return _record(f"{which}_scalar", (x,), val=number(bound, f"{which}_scalar"))


# --- softmax and its loss ----------------------------------------------------------------

def softmax_cross_entropy(x, target, axis=None, n_outputs=-1, outputs=None):
    """-log softmax(x)[target] along `axis` (default: the last); label -1 gives 0.

    `target` holds integer labels with the shape of `x` but length 1 along `axis`.
    """
    axis = _one_axis("softmax_cross_entropy", x, axis)
    return _record("softmax_cross_entropy", (x, target), axis=axis)


def rand(low=0, high=1, shape=[], seed=-1, n_outputs=-1, outputs=None):  # noqa: B006
    """Uniform random numbers in [low, high) of `shape`, drawn anew by every forward pass
    (from the generated functions' `rng`; see `dropout` for seeding)."""
    return _random("rand", shape, low, high, seed, ("low", "high"))


def randn(mu=0, sigma=1, shape=[], seed=-1, n_outputs=-1, outputs=None):  # noqa: B006
    """Normal random numbers (mean mu, standard deviation sigma) of `shape`, drawn anew by
    every forward pass."""
    return _random("randn", shape, mu, sigma, seed, ("mu", "sigma"))


def randint(low=0, high=1, shape=[], seed=-1, n_outputs=-1, outputs=None):  # noqa: B006
    """Random integers in [low, high) of `shape`, drawn anew by every forward pass; held
    as float32 (symcompile's Variables), where nnabla's are int32."""
    return _random("randint", shape, low, high, seed, ("low", "high"))


def assign(dst, src, n_outputs=-1, outputs=None):
    """src's values, written into dst by every forward pass (dst must be a leaf, a
    parameter); the gradient goes to dst as if the output were dst (nnabla's), none to
    src."""
    if isinstance(dst, Variable):
        _updated_in_place("assign", "F.assign", dst=dst)
    return _record("assign", (dst, src))


def constant(val=0, shape=[], n_outputs=-1, outputs=None):  # noqa: B006
    """An array of `shape` holding `val` everywhere (a constant: no gradient)."""
    return _record("constant", (), val=number(val, "constant"),
                   shape=normalize_shape(shape, "F.constant"))


def arange(start, stop, step=1, n_outputs=-1, outputs=None):
    """start, start + step, ... while short of stop: nnabla's loop in float32, which adds
    step to the previous value (so its rounding, and the count, are nnabla's)."""
    start, stop, step = (number(v, "arange", name)
                         for v, name in ((start, "start"), (stop, "stop"), (step, "step")))
    if float(step) == 0:
        raise ValueError(f"F.arange: step={step!r} must not be zero")
    return _record("arange", (), start=start, stop=stop, step=step,
                   count=_arange_count(float(start), float(stop), float(step)))


def _arange_count(start: float, stop: float, step: float) -> int:
    """How many values nnabla's `for (float v = start; v < stop; v += step)` (v > stop for
    a negative step) visits, the float32 additions replayed by a cumulative sum."""
    f32 = numpy.float32
    first, last, increment = f32(start), f32(stop), f32(step)
    estimate = builtins.max(0.0, math.ceil((float(last) - float(first)) / float(increment)))
    if estimate > 1 << 28:
        raise ValueError(f"F.arange: start={start!r}, stop={stop!r}, step={step!r} give "
                         f"about {estimate:.3g} values, more than symcompile holds in one array")
    steps = numpy.full(int(estimate) + 2, increment, dtype=f32)
    steps[0] = first
    values = numpy.cumsum(steps, dtype=f32)
    short = values < last if step > 0 else values > last
    if short.all():  # the sum stopped growing (a step too small for float32): nnabla hangs
        raise ValueError(f"F.arange: step={step!r} is too small to move {start!r} towards "
                         f"{stop!r} in float32 (nnabla's loop would never end)")
    return int(numpy.argmin(short))


def linspace(start, stop, num):
    """`num` values from start to stop (both included when num > 1): nnabla's
    start + i*step, step = (stop - start)/(num - 1) in float64, each rounded to float32."""
    if isinstance(num, bool) or not isinstance(num, numbers.Integral) or num < 0:
        raise ValueError(f"F.linspace: num={num!r} must be a non-negative int")
    return _record("linspace", (), start=number(start, "linspace", "start"),
                   stop=number(stop, "linspace", "stop"), num=int(num))


def _random(op: str, shape, a, b, seed, names) -> Variable:
    shape = normalize_shape(shape, f"F.{op}")
    first, second = number(a, op, names[0]), number(b, op, names[1])
    if op == "randint" and not (float(first).is_integer() and float(second).is_integer()):
        raise ValueError(f"F.randint: low={a!r} and high={b!r} must be integers")
    if op != "randn" and not float(first) < float(second):
        raise ValueError(f"F.{op}: {names[0]}={a!r} must be less than {names[1]}={b!r}")
    if op == "randn" and not float(second) > 0:
        raise ValueError(f"F.randn: sigma={b!r} must be positive")
    return _record(op, (), shape=shape, a=first, b=second, seed=_seed_argument(op, seed))


def _seed_argument(op: str, seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"F.{op}: seed must be an int (-1: the runtime's generator), got "
                        f"{seed!r}")
    return int(seed)


def top_n_error(x, target, axis=None, n=1, n_outputs=-1, outputs=None):
    """1 where the label's score is not among the n highest along `axis` (default: the
    last), ties counting against it; 0 for label -1 (nnabla 1.39 reads the element before
    the row for it). The output has the target's shape (length 1 along `axis`); no
    gradient."""
    axis = _one_axis("top_n_error", x, axis)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"F.top_n_error: n must be a positive int, got {n!r}")
    return _record("top_n_error", (x, target), axis=axis, n=int(n))


def binary_error(x, target, n_outputs=-1, outputs=None):
    """1 where x and the target fall on different sides of 0.5, else 0; no gradient."""
    return _record("binary_error", (x, target))


def tile(x, reps):
    """x repeated reps[i] times along axis i, as numpy.tile (an int or a shorter tuple
    applies to the last axes; more entries than axes add leading axes)."""
    if not isinstance(x, Variable):
        return _record("tile", (x,))  # raises the TypeError
    reps = [reps] if isinstance(reps, numbers.Integral) else list(reps)
    if not all(isinstance(r, numbers.Integral) and not isinstance(r, bool) and r >= 1
               for r in reps):
        raise ValueError(f"F.tile: reps={reps} must hold positive ints")
    if len(reps) > len(x.shape):
        x = _record("reshape", (x,), shape=(1,) * (len(reps) - len(x.shape)) + x.shape)
    reps = (1,) * (len(x.shape) - len(reps)) + tuple(int(r) for r in reps)
    return _record("tile", (x,), reps=reps)


def one_hot(x, shape, n_outputs=-1, outputs=None):
    """1 at each row's integer index (x's last axis, of length 1) along a new last axis
    of length shape[0], 0 elsewhere; no gradient."""
    return _record("one_hot", (x,), shape=tuple(int(d) for d in shape))


def sink(*x, **kw):
    """One output that depends on every input, so that one forward() or backward()
    computes them all; backward() seeds each input with ones (nnabla's one_input_grad=True;
    False is refused)."""
    if not kw.pop("one_input_grad", True):
        raise ValueError("F.sink: one_input_grad=False (backward from the inputs' own .g) is "
                         "not implemented")
    if kw:
        raise TypeError(f"F.sink: unexpected arguments {sorted(kw)}")
    if not x:
        raise ValueError("F.sink: give at least one Variable")
    total = None
    for var in x:
        term = _reduction("sum", var, None, False)
        total = term if total is None else _record("add2", (total, term))
    return total


def softmax(x, axis=None, n_outputs=-1, outputs=None):
    """exp(x) / sum(exp(x)) along `axis` (default: the last)."""
    return _record("softmax", (x,), axis=_one_axis("softmax", x, axis))


def log_softmax(x, axis=None, n_outputs=-1, outputs=None):
    """log(softmax(x)) along `axis` (default: the last), computed stably."""
    return _record("log_softmax", (x,), axis=_one_axis("log_softmax", x, axis))


def _one_axis(op: str, x, axis, what: str = "work along") -> int:
    """`axis` of x, for an op that works along one axis, as a non-negative int (negative
    counts from the end, None is the last axis); x of shape () is refused, saying that it
    has no axis to `what`."""
    if not isinstance(x, Variable):
        return 0  # _record raises the TypeError
    if not x.shape:
        raise ValueError(f"F.{op}: the input of shape () has no axis to {what}; reshape it "
                         f"to (1,)")
    if axis is None:
        axis = x.ndim - 1
    if not isinstance(axis, numbers.Integral) or isinstance(axis, bool):
        raise TypeError(f"F.{op}: axis must be an int, got {axis!r}")
    return normalize_axes(op, axis, x.shape)[0]


# --- matrix products and shapes ------------------------------------------------------------

def affine(x, weight, bias=None, base_axis=1, n_outputs=-1, outputs=None):
    """y = x W + b, with x flattened to a matrix from `base_axis` on (negative: counted
    from the end, as in nnabla)."""
    inputs = (x, weight) if bias is None else (x, weight, bias)
    if isinstance(x, Variable) and isinstance(base_axis, numbers.Integral) and base_axis < 0:
        base_axis += len(x.shape)
    return _record("affine", inputs, base_axis=int(base_axis))


def convolution(x, weight, bias=None, base_axis=1, pad=None, stride=None, dilation=None,
                group=1, channel_last=False, n_outputs=-1, outputs=None):
    """N-D convolution (a cross-correlation, as nnabla's): x (*batch, C, *L) with weight
    (C', C/group, *K) and bias (C',) gives (*batch, C', *L'), L' = (L + 2*pad -
    dilation*(K - 1) - 1) // stride + 1 per spatial axis; `pad` zeros on both sides.

    `pad`, `stride` and `dilation` have one entry per spatial axis (None: 0, 1 and 1);
    the axes before `base_axis` are batch axes. ``channel_last=True``: x (*batch, *L, C),
    weight (C', *K, C/group), output (*batch, *L', C'), as nnabla's CUDA implementation
    (its CPU one refuses to run it); computed channels first, between transposes.
    """
    inputs = (x, weight) if bias is None else (x, weight, bias)
    if not all(isinstance(v, Variable) for v in inputs):
        return _record("convolution", inputs)  # raises the TypeError
    attrs = _convolution_attributes(x.shape, weight.shape, None if bias is None else bias.shape,
                                   base_axis, pad, stride, dilation, group, channel_last)
    return _record("convolution", inputs, **attrs)


def _convolution_attributes(x_shape, w_shape, b_shape, base_axis, pad, stride, dilation, group,
                           channel_last) -> dict:
    """F.convolution's node attributes for inputs of these shapes, checked (the shape rule
    included: ValueError naming the shapes and the fix); PF.convolution asks before it
    creates its parameters."""
    attrs = _geometry("convolution", x_shape, base_axis, pad, stride, dilation, group)
    attrs.update(_layout(channel_last))
    shapes = (tuple(x_shape), tuple(w_shape)) + (() if b_shape is None else (tuple(b_shape),))
    OPS["convolution"].infer_shape(shapes, attrs)
    return attrs


def deconvolution(x, weight, bias=None, base_axis=1, pad=None, stride=None, dilation=None,
                  group=1, channel_last=False, output_padding=None, n_outputs=-1,
                  outputs=None):
    """N-D deconvolution (the transpose of F.convolution): x (*batch, C, *L) with weight
    (C, C'/group, *K) and bias (C',) gives (*batch, C', *L'), L' = stride*(L - 1) +
    dilation*(K - 1) + 1 - 2*pad + output_padding per spatial axis (output_padding <
    stride). ``channel_last=True``: x (*batch, *L, C), weight (C, *K, C'/group), output
    (*batch, *L', C'), as for F.convolution."""
    inputs = (x, weight) if bias is None else (x, weight, bias)
    if not all(isinstance(v, Variable) for v in inputs):
        return _record("deconvolution", inputs)  # raises the TypeError
    attrs = _geometry("deconvolution", x.shape, base_axis, pad, stride, dilation, group)
    attrs.update(_layout(channel_last))
    attrs["output_padding"] = _per_axis("deconvolution", "output_padding", output_padding, 0,
                                        len(attrs["pad"]))
    return _record("deconvolution", inputs, **attrs)


def depthwise_convolution(x, weight, bias=None, base_axis=1, pad=None, stride=None,
                          dilation=None, multiplier=1, n_outputs=-1, outputs=None):
    """Depthwise convolution: each input channel convolved with its own `multiplier`
    kernels; x (*batch, C, *L), weight (C*multiplier, *K), bias (C*multiplier,). Output
    channel c*multiplier + m is input channel c's m-th kernel."""
    inputs = (x, weight) if bias is None else (x, weight, bias)
    if not all(isinstance(v, Variable) for v in inputs):
        return _record("depthwise_convolution", inputs)  # raises the TypeError
    attrs = _geometry("depthwise_convolution", x.shape, base_axis, pad, stride, dilation, 1)
    attrs.pop("group")
    if isinstance(multiplier, bool) or not isinstance(multiplier, numbers.Integral):
        raise TypeError(f"F.depthwise_convolution: multiplier must be an int, got "
                        f"{multiplier!r}")
    attrs["multiplier"] = int(multiplier)
    return _record("depthwise_convolution", inputs, **attrs)


def _geometry(op: str, x_shape, base_axis, pad, stride, dilation, group) -> dict:
    """A convolution-like function's base_axis, group and per-axis pad, stride and
    dilation (None: 0, 1 and 1 on every spatial axis), type-checked."""
    if isinstance(base_axis, bool) or not isinstance(base_axis, numbers.Integral):
        raise TypeError(f"F.{op}: base_axis must be an int, got {base_axis!r}")
    if isinstance(group, bool) or not isinstance(group, numbers.Integral):
        raise TypeError(f"F.{op}: group must be an int, got {group!r}")
    spatial = len(x_shape) - int(base_axis) - 1  # (F.max shadows max here)
    spatial = spatial if spatial > 0 else 0
    return {"base_axis": int(base_axis),
            "pad": _per_axis(op, "pad", pad, 0, spatial),
            "stride": _per_axis(op, "stride", stride, 1, spatial),
            "dilation": _per_axis(op, "dilation", dilation, 1, spatial),
            "group": int(group)}


def unpooling(x, kernel, channel_last=False, n_outputs=-1, outputs=None):
    """Each element of x repeated kernel[i] times along the i-th of its last len(kernel)
    axes (nearest-neighbour upsampling; with ``channel_last=True``, the len(kernel) axes
    before the last); its gradient sums each block."""
    if not isinstance(x, Variable):
        return _record("unpooling", (x,))  # raises the TypeError
    kernel = _per_axis("unpooling", "kernel", kernel, 1, 0)
    return _record("unpooling", (x,), kernel=kernel, **_layout(channel_last))


def _layout(channel_last) -> dict:
    """The node attribute of nnabla's channel_last: recorded when True (the channels
    are the input's last axis; `ops.layout`)."""
    return {"channel_last": True} if channel_last else {}


def embed(x0, w, n_outputs=-1, outputs=None):
    """w[x0]: the rows of w (N, *F) at the integer indices x0 (any shape), of shape
    x0.shape + F; an index of -1 gives zeros, as in nnabla, and one past the end is
    refused when the module is called (nnabla gives zeros). x0 gets no gradient."""
    return _record("embed", (x0, w))


def _per_axis(op: str, name: str, values, default: int, count: int) -> tuple[int, ...]:
    """An argument with one int per spatial axis (nnabla's Shape): None is `default` on
    each of the `count` axes."""
    if values is None:
        return (default,) * count
    if isinstance(values, numbers.Integral) or not hasattr(values, "__iter__"):
        raise TypeError(f"F.{op}: {name} must be a tuple of ints, one per spatial axis, got "
                        f"{values!r}")
    values = tuple(values)
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
        raise TypeError(f"F.{op}: {name} must be a tuple of ints, got {values!r}")
    return tuple(int(v) for v in values)


def max_pooling(x, kernel, stride=None, ignore_border=True, pad=None, channel_last=False,
                n_outputs=-1, outputs=None):
    """Max pooling over the last len(kernel) axes (2 or 3, as nnabla): the maximum of each
    window ``[m*stride - pad, m*stride - pad + kernel)``, padding ignored. The gradient
    goes to the first maximum of each window in C order. `stride` None: `kernel`; `pad`
    None: zeros. Output length per axis: (L + 2*pad - kernel) // stride + 1, or
    (L + pad - 1) // stride + 1 with ``ignore_border=False``. ``channel_last=True``: the
    len(kernel) axes before the last are pooled (NHWC), as by nnabla's CUDA
    implementation (its CPU one refuses to run it)."""
    return _pooling("max_pooling", x, kernel, stride, ignore_border, pad, channel_last)


def average_pooling(x, kernel, stride=None, ignore_border=True, pad=None, channel_last=False,
                    including_pad=True, n_outputs=-1, outputs=None):
    """Average pooling over the last len(kernel) axes, windows as `max_pooling`'s, padding
    zeros: each window's sum divided by its size clipped to the padded input
    (``including_pad=True``) or by its count of input elements (False)."""
    return _pooling("average_pooling", x, kernel, stride, ignore_border, pad, channel_last,
                    including_pad=bool(including_pad))


def sum_pooling(x, kernel, stride=None, ignore_border=True, pad=None, channel_last=False,
                n_outputs=-1, outputs=None):
    """Sum pooling over the last len(kernel) axes, windows as `max_pooling`'s, padding
    zeros."""
    return _pooling("sum_pooling", x, kernel, stride, ignore_border, pad, channel_last)


def global_average_pooling(x, n_outputs=-1, outputs=None):
    """The mean over every axis after axis 1, as (N, C, 1, 1) whatever x's rank."""
    return _record("global_average_pooling", (x,))


def max_pooling_backward(dy, x, kernel, stride=None, ignore_border=True, pad=None,
                         channel_last=False, n_outputs=-1, outputs=None):
    """The gradient of ``max_pooling(x, kernel, ...)`` given its output's gradient dy, of
    x's shape: each dy goes to the first maximum of its window (nnabla's function for the
    n-th order gradients of max pooling). Its gradient: to dy, g picked at the maxima; to
    x, none (0), as in nnabla."""
    return _pooling("max_pooling_backward", (dy, x), kernel, stride, ignore_border, pad,
                    channel_last)


def _pooling(op: str, x, kernel, stride, ignore_border, pad, channel_last, **more) -> Variable:
    """A pooling node over x (or over the Variables of a tuple x), nnabla's arguments
    checked."""
    inputs = x if isinstance(x, tuple) else (x,)
    if not all(isinstance(v, Variable) for v in inputs):
        return _record(op, inputs)  # raises the TypeError
    kernel = _per_axis(op, "kernel", kernel, 0, 0)
    attrs = {"kernel": kernel,
             "stride": kernel if stride is None else _per_axis(op, "stride", stride, 1, 0),
             "pad": _per_axis(op, "pad", pad, 0, len(kernel)),
             "ignore_border": bool(ignore_border), **more, **_layout(channel_last)}
    return _record(op, inputs, **attrs)


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


# --- batch normalization's checks, gradient clipping, norms, weight reparametrisations ----
# (F.batch_normalization and F.fused_batch_normalization share `_batch_normalization`.)

__all__ += ["fused_batch_normalization", "clip_grad_by_value", "clip_grad_by_norm",
            "top_k_grad",
            "clip_by_norm", "norm_normalization", "weight_standardization",
            "weight_normalization", "mean_subtraction", "spectral_norm"]


def _updated_in_place(op: str, setting: str, **variables: Variable) -> None:
    """Refuse an intermediate among `variables` (by name): with `setting` the forward pass
    updates each in place, so each must be a leaf (a parameter)."""
    for name, var in variables.items():
        if var.parent is not None:
            raise ValueError(f"F.{op}: with {setting} the forward pass updates {name} in place, "
                             f"so it must be a leaf Variable (a parameter), not the output of "
                             f"{var.parent.name}")


def _batch_normalization(op, x, beta, gamma, mean, variance, z, axes, decay_rate, eps,
                         batch_stat, output_stat) -> Variable:
    """The `op` node (batch_normalization, or fused_batch_normalization with residual
    `z`) after nnabla's checks of its arguments; with `output_stat`, (y, the batch's mean,
    its biased variance), the two statistics differentiable as nnabla's are."""
    if output_stat and not batch_stat:
        raise ValueError(f"F.{op}: output_stat=True returns the batch's statistics, so it "
                         "needs batch_stat=True (nnabla refuses it too); read the running "
                         "statistics from the mean and variance Variables instead")
    if not batch_stat and (mean is None or variance is None):
        raise ValueError(f"F.{op}: batch_stat=False normalizes with the running statistics, "
                         "so mean and variance must be Variables, not None")
    if (mean is None) != (variance is None):
        raise ValueError(f"F.{op}: give both mean and variance, or neither")
    inputs = tuple(v for v in (x, beta, gamma, mean, variance, z) if v is not None)
    if not all(isinstance(v, Variable) for v in inputs):
        return _record(op, inputs)  # raises the TypeError
    if batch_stat and mean is not None:
        _updated_in_place(op, "batch_stat=True", mean=mean, variance=variance)
    items = [axes] if isinstance(axes, numbers.Integral) else list(axes)
    attrs = {"axes": normalize_axes(op, items, x.shape),
             "decay_rate": number(decay_rate, op, "decay_rate"), "eps": number(eps, op, "eps"),
             "batch_stat": bool(batch_stat), "no_bias": beta is None,
             "no_scale": gamma is None, "running": mean is not None}
    if op == "fused_batch_normalization":
        attrs["residual"] = z is not None
    y = _record(op, inputs, **attrs)
    if not output_stat:
        return y
    reduced = tuple(a for a in range(x.ndim) if a not in attrs["axes"])
    batch_mean = _reduction("mean", x, reduced, True)
    squares = _record("pow_scalar", (_record("sub2", (x, batch_mean)),),
                      val=number(2, "pow_scalar", "val"))
    return y, batch_mean, _reduction("mean", squares, reduced, True)


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


def _reduced_axes(op: str, axes, x) -> tuple[int, ...]:
    """nnabla's `axes` of a reduction: None all, an int one, a list those (an empty list
    none, whatever nnabla's docs say: its kernels then reduce nothing)."""
    if axes is None:
        return tuple(range(x.ndim))
    return normalize_axes(op, [axes] if isinstance(axes, numbers.Integral) else list(axes),
                          x.shape)


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


def slice(x, start=None, stop=None, step=None, n_outputs=-1, outputs=None):  # noqa: A001
    """x[start[0]:stop[0]:step[0], start[1]:...] (an entry None: the whole axis); negative
    bounds count from the end and out-of-range ones are clipped, as in Python; a negative
    step reads backwards. As in nnabla, lists shorter than x's rank slice its last axes
    (start=[1], stop=[3], step=[1] of a (2, 3, 4) input is x[:, :, 1:3]); the three have
    the same length, and one left out (None) stands for every axis."""
    if not isinstance(x, Variable):
        return _record("slice", (x,))  # raises the TypeError
    ndim = len(x.shape)
    given = {}
    for name, values in (("start", start), ("stop", stop), ("step", step)):
        if values is None:
            given[name] = [None] * ndim
            continue
        values = list(values) if hasattr(values, "__iter__") else [values]
        if len(values) > ndim:
            raise ValueError(f"F.slice: {name}={values} has more entries than the input of "
                             f"shape {x.shape} has axes ({ndim})")
        given[name] = values
    lengths = {name: len(values) for name, values in given.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(
            f"F.slice: start, stop and step have {lengths['start']}, {lengths['stop']} and "
            f"{lengths['step']} entries for the input of shape {x.shape}; give the three with "
            f"the same length, one per axis sliced (the last axes; nnabla's rule), or one "
            f"per axis ({ndim}), where a left-out list stands for every axis")
    whole = ndim - lengths["start"]  # leading axes taken whole
    given = {name: [None] * whole + values for name, values in given.items()}
    slices = []
    for axis, (b, e, s) in enumerate(zip(given["start"], given["stop"], given["step"],
                                         strict=True)):
        for name, v in (("start", b), ("stop", e), ("step", s)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Integral)):
                raise TypeError(f"F.slice: {name} must hold ints (or None), got {v!r} for "
                                f"axis {axis}")
        if s == 0:
            raise ValueError(f"F.slice: step 0 on axis {axis}; a step must not be zero")
        slices.append(builtins.slice(b, e, s))  # (F.slice shadows the builtin here)
    return _sliced(x, slices)


def _sliced(x: Variable, slices) -> Variable:
    """x[slices] (one Python slice per axis) as a slice node with positive steps, after a
    flip of the axes read backwards; no node for what would be no-ops."""
    flipped, starts, stops, steps = [], [], [], []
    for axis, (piece, n) in enumerate(zip(slices, x.shape, strict=True)):
        b, e, s = piece.indices(n)
        if s < 0:  # read backwards: the same elements, in order, of the flipped axis
            count = len(range(b, e, s))
            flipped.append(axis)
            b = n - 1 - b
            e, s = b + (count - 1) * -s + 1 if count else b, -s
        starts.append(b)
        stops.append(builtins.max(b, e))
        steps.append(s)
    if flipped:
        x = _record("flip", (x,), axes=tuple(flipped))
    if all(b == 0 and e == n and s == 1 for b, e, s, n in zip(starts, stops, steps, x.shape,
                                                              strict=True)):
        return x if flipped else _record("reshape", (x,), shape=x.shape)
    return _record("slice", (x,), start=tuple(starts), stop=tuple(stops), step=tuple(steps))


def flip(x, axes=None, n_outputs=-1, outputs=None):
    """x reversed along `axes` (default: the last axis)."""
    if not isinstance(x, Variable):
        return _record("flip", (x,))  # raises the TypeError
    if axes is None:
        axes = [len(x.shape) - 1]
    return _record("flip", (x,), axes=normalize_axes("flip", axes, x.shape))


def pad(x, pad_width, mode="constant", constant_value=0, n_outputs=-1, outputs=None):
    """x padded: pad_width = (before, after) for the last axis, or (before0, after0,
    before1, after1, ...) for the last len(pad_width) // 2 axes. `mode` "constant" pads
    with `constant_value`, "reflect" with the mirror image about the edges (NumPy's
    "reflect", repeated for widths past the length), "repeat" with the edge values
    (NumPy's "edge"); their gradients add each copy's into the element it copies."""
    if not isinstance(x, Variable):
        return _record("pad", (x,))  # raises the TypeError
    if mode not in ("constant", "reflect", "repeat"):
        raise ValueError(f"F.pad: mode={mode!r} is not one of nnabla's 'constant', "
                         f"'reflect' and 'repeat' (input of shape {x.shape})")
    widths = list(pad_width)
    if len(widths) % 2 or len(widths) // 2 > len(x.shape) or not all(
            isinstance(w, numbers.Integral) and not isinstance(w, bool) and w >= 0
            for w in widths):
        raise ValueError(
            f"F.pad: pad_width={tuple(widths)} must hold pairs (before, after) of non-negative "
            f"ints, one pair per padded axis, at most one per axis of the input of shape "
            f"{x.shape}")
    lead = len(x.shape) - len(widths) // 2
    before = (0,) * lead + tuple(int(w) for w in widths[0::2])
    after = (0,) * lead + tuple(int(w) for w in widths[1::2])
    modes = {} if mode == "constant" else {"mode": mode}  # constant pads' graphs unchanged
    return _record("pad", (x,), before=before, after=after,
                   constant_value=number(constant_value, "pad", "constant_value"), **modes)


def _joined(op: str, xs, axis, default) -> Variable:
    if len(xs) == 1 and isinstance(xs[0], (list, tuple)):
        xs = tuple(xs[0])
    if not xs:
        raise ValueError(f"F.{op}: give at least one Variable")
    if not all(isinstance(v, Variable) for v in xs):
        return _record(op, tuple(xs))  # raises the TypeError
    rank = len(xs[0].shape) + (op == "stack")
    axis = default(rank) if axis is None else axis
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral) \
            or not -rank <= axis < rank:
        raise ValueError(f"F.{op}: axis {axis!r} is out of range for inputs of shape "
                         f"{xs[0].shape} (valid: {-rank}..{rank - 1})")
    return _record(op, tuple(xs), axis=int(axis) % rank)


def concatenate(*x, **kw):
    """The inputs joined along `axis` (keyword; default: the last axis); every other axis
    must be equal."""
    return _joined("concatenate", x, kw.pop("axis", None), lambda rank: rank - 1)


def einsum(*x, **kw):
    """Einstein summation of the inputs over the keyword `equation` (NumPy's rules:
    ``"bij,bjk->bik"``, ``...``, an implicit output, ``"ii->i"``), as matrix products."""
    equation = kw.pop("equation", "")
    if kw:
        raise TypeError(f"F.einsum: unexpected keyword arguments {sorted(kw)}; the inputs "
                        "are positional, the equation is `equation=`")
    if not isinstance(equation, str):
        raise TypeError(f"F.einsum: equation must be a str, got {type(equation).__name__}")
    return _record("einsum", tuple(x), equation=equation)


def stack(*x, **kw):
    """The inputs, all of one shape, stacked along a new axis `axis` (keyword; default 0)."""
    return _joined("stack", x, kw.pop("axis", None), lambda rank: 0)


def split(x, axis=0):
    """The slices of x along `axis`, each without that axis: a tuple of x.shape[axis]
    Variables."""
    if not isinstance(x, Variable):
        return _record("slice", (x,))  # raises the TypeError
    (axis,) = normalize_axes("split", axis, x.shape)
    rest = x.shape[:axis] + x.shape[axis + 1:]
    parts = []
    for i in range(x.shape[axis]):
        start = [0] * len(x.shape)
        stop = list(x.shape)
        start[axis], stop[axis] = i, i + 1
        piece = _record("slice", (x,), start=tuple(start), stop=tuple(stop),
                        step=(1,) * len(x.shape))
        parts.append(_record("reshape", (piece,), shape=rest))
    return tuple(parts)


def dropout(x, p=0.5, seed=-1, n_outputs=-1, outputs=None):
    """Dropout: y = x * mask / (1 - p), each element of the mask 1 with probability 1 - p
    and 0 otherwise, drawn anew by every forward pass (and the same in its backward).

    Generated modules draw the masks from their functions' `rng` argument (a Generator,
    an int seed, or None); the runtime passes its own generator, seeded with `seed` when
    one is given (not -1), else from `nn.seed`'s sequence, so runs are reproducible. The
    draws are NumPy's, so masks differ from nnabla's for the same seed.
    """
    if not isinstance(x, Variable):
        return _record("dropout", (x,))  # raises the TypeError
    rate = number(p, "dropout", "p")
    if not 0 <= float(rate) < 1:
        raise ValueError(f"F.dropout: p={p!r} must be in [0, 1) (the probability of dropping "
                         f"an element of the input of shape {x.shape})")
    return _record("dropout", (x,), p=rate, seed=_seed_argument("dropout", seed))


# --- broadcast_to, cumulative sums and products, prod, sort, indices of extrema -----------
# (one block: symcompile.ops.arrays lowers them; tests/test_array_functions_more.py)

__all__ += ["broadcast_to", "cumsum", "cumprod", "prod", "sort"]


def _int_argument(op: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"F.{op}: {name} must be an int, got {value!r}")
    return int(value)


def broadcast_to(x, y, axis=None, n_outputs=-1, outputs=None):
    """y repeated to x's shape: nnabla's order, x gives only the shape and y the values;
    y's axes are those of x from `axis` on (None or -1: x's last axes). y's gradient sums
    the copies; x gets none (nnabla 1.39 has no backward for this function)."""
    if not (isinstance(x, Variable) and isinstance(y, Variable)):
        return _record("broadcast_to", (x, y))  # raises the TypeError
    axis = -1 if axis is None else _int_argument("broadcast_to", "axis", axis)
    if not -1 <= axis < builtins.max(len(x.shape), 1):
        raise ValueError(f"F.broadcast_to: axis {axis} is out of range for x of shape "
                         f"{x.shape} (valid: 0..{len(x.shape) - 1}, or -1 for the last axes)")
    return _record("broadcast_to", (x, y), axis=axis)


def _cumulative(op: str, x, axis, exclusive, reverse) -> Variable:
    if not isinstance(x, Variable):
        return _record(op, (x,))  # raises the TypeError
    axis = _one_axis(op, x, 0 if axis is None else axis, "accumulate along")  # None is 0
    return _record(op, (x,), axis=axis, exclusive=bool(exclusive), reverse=bool(reverse))


def cumsum(x, axis=None, exclusive=False, reverse=False, n_outputs=-1, outputs=None):
    """y[i] = x[0] + ... + x[i] along `axis` (None: axis 0, as nnabla); `exclusive` leaves
    x[i] out (y[0] = 0), `reverse` sums from the end."""
    return _cumulative("cumsum", x, axis, exclusive, reverse)


def cumprod(x, axis=None, exclusive=False, reverse=False, n_outputs=-1, outputs=None):
    """y[i] = x[0] * ... * x[i] along `axis` (None: axis 0, as nnabla); `exclusive` leaves
    x[i] out (y[0] = 1), `reverse` multiplies from the end. The gradient is exact where x
    holds zeros, as nnabla's."""
    return _cumulative("cumprod", x, axis, exclusive, reverse)


def prod(x, axis=None, keepdims=False):
    """The product over `axis` (None: all axes; an int or a tuple of ints). As nnabla's,
    the gradient is dy * y / x, and 0 where x is 0 (not the product of the others)."""
    return _reduction("prod", x, axis, keepdims)


def _with_index(op: str, x, axis, keepdims, with_index, only_index):
    """F.max / F.min: the extremum, its index (the first extremal element's, counted in C
    order over the reduced axes; a number of the module's dtype, where nnabla's is an
    integer, with no gradient) or both, as nnabla's (y, index)."""
    if not (with_index or only_index) or not isinstance(x, Variable):
        return _reduction(op, x, axis, keepdims)
    index = _record(f"{op}_index", (x,), axes=normalize_axes(op, axis, x.shape),
                    keepdims=bool(keepdims))
    return index if only_index else (_reduction(op, x, axis, keepdims), index)


__all__ += ["searchsorted"]


def searchsorted(sorted_sequence, values, right=None, n_outputs=-1, outputs=None):
    """For each value, where it goes in the same row of sorted_sequence's last axis (the
    other axes alike): index i with sorted[i-1] < v <= sorted[i], or with `right`
    sorted[i-1] <= v < sorted[i] (NumPy's sides "left" and "right"), as float32
    numbers of values' shape. No gradient (nnabla has no backward for it); `right`
    None is False, as in nnabla."""
    if right is not None and not isinstance(right, (bool, numpy.bool_)):
        raise TypeError(f"F.searchsorted: right must be True, False or None, got {right!r}")
    return _record("searchsorted", (sorted_sequence, values), right=bool(right))


def sort(x, axis=-1, reverse=False, with_index=False, only_index=False):
    """x sorted along `axis`, ascending (descending if `reverse`), ties in their order in
    x; `with_index` also returns the indices into x (numbers, no gradient), `only_index`
    only them. The gradient sends each dy back to where its element came from (nnabla
    1.39's backward reads dy through the indices instead, dx[i] = dy[index[i]], which is
    not the derivative unless the order is its own inverse)."""
    if not isinstance(x, Variable):
        return _record("sort", (x,))  # raises the TypeError
    axis = _one_axis("sort", x, axis, "sort along")
    attrs = {"axis": axis, "reverse": bool(reverse)}
    if not (with_index or only_index):
        return _record("sort", (x,), **attrs)
    index = _record("sort_index", (x,), **attrs)
    return index if only_index else (_record("sort", (x,), **attrs), index)


__all__ += ["shift", "matrix_diag", "matrix_diag_part", "meshgrid", "top_k_data"]


def shift(x, shifts=None, border_mode="nearest", n_outputs=-1, outputs=None):
    """x shifted by shifts[i] elements along each of its last len(shifts) axes, y[i] =
    x[i - shift]; the positions read from outside are those of `border_mode`: "nearest"
    (the edge element) or "reflect" (mirrored about the edge, the edge repeated). The
    gradient adds each dy into the element it read."""
    if not isinstance(x, Variable):
        return _record("shift", (x,))  # raises the TypeError
    if border_mode not in ("nearest", "reflect"):
        raise ValueError(f"F.shift: border_mode={border_mode!r} is not one of nnabla's "
                         f"'nearest' and 'reflect' (input of shape {x.shape})")
    shifts = () if shifts is None else (
        (shifts,) if isinstance(shifts, numbers.Integral) else tuple(shifts))
    values = [_int_argument("shift", "shifts", s) for s in shifts]
    if len(values) > len(x.shape):
        raise ValueError(f"F.shift: shifts={tuple(values)} has more entries than the input of "
                         f"shape {x.shape} has axes (nnabla ignores the first ones); give one "
                         f"per shifted axis, for the last axes")
    full = (0,) * (len(x.shape) - len(values)) + tuple(values)
    return _record("shift", (x,), shifts=full, border_mode=border_mode)


def matrix_diag(x, n_outputs=-1, outputs=None):
    """Square matrices (..., n, n) with x (..., n) on their diagonals, zeros elsewhere."""
    return _record("matrix_diag", (x,))


def matrix_diag_part(x, n_outputs=-1, outputs=None):
    """The diagonals (..., n) of square matrices x (..., n, n)."""
    return _record("matrix_diag_part", (x,))


def meshgrid(*x, ij_indexing=False):
    """Grids of the 1-D inputs, as numpy.meshgrid's: output i holds input i along one axis
    and repeats it along the others, of shape (len(x1), len(x0), len(x2), ...) ("xy"
    indexing, the default) or (len(x0), len(x1), ...) with ``ij_indexing=True``; a
    tuple of Variables."""
    if len(x) == 1 and isinstance(x[0], (list, tuple)):
        x = tuple(x[0])
    if not x:
        raise ValueError("F.meshgrid: give at least one Variable")
    return tuple(_record("meshgrid", tuple(x), output=i, ij_indexing=bool(ij_indexing))
                 for i in range(len(x)))


def top_k_data(x, k, abs=False, reduce=True, base_axis=1, largest=True,  # noqa: A002
               with_index=False, n_outputs=-1, outputs=None):
    """The k largest (smallest if not `largest`) values of each sample, by |x| if `abs`;
    a sample is the axes from `base_axis` on, flattened. ``reduce=True`` gives (*batch,
    k) in decreasing key order, ties first in x's order; ``reduce=False`` x's shape, 0
    where not chosen. `with_index` also returns the indices into the sample (numbers,
    no gradient; reduce only, as nnabla). The gradient goes to the chosen elements only
    (nnabla 1.39's with reduce=False passes every dy through)."""
    if not isinstance(x, Variable):
        return _record("top_k_data", (x,))  # raises the TypeError
    base = _int_argument("top_k_data", "base_axis", base_axis)
    if with_index and not reduce:
        raise ValueError(f"F.top_k_data: with_index=True needs reduce=True, as nnabla's "
                         f"(input of shape {x.shape})")
    attrs = {"k": _int_argument("top_k_data", "k", k), "abs": bool(abs),
             "reduce": bool(reduce), "base_axis": base + len(x.shape) if base < 0 else base,
             "largest": bool(largest)}
    y = _record("top_k_data", (x,), **attrs)
    return (y, _record("top_k_data_index", (x,), **attrs, index=True)) if with_index else y


__all__ += ["gather", "scatter_add"]


def _index_axis(op: str, x, axis) -> int:
    axis = 0 if axis is None else _int_argument(op, "axis", axis)  # nnabla: None is 0
    return normalize_axes(op, axis, x.shape)[0]


def gather(x, Indices, axis=None, batch_dims=None, n_outputs=-1, outputs=None):  # noqa: N803
    """x's elements along `axis` (None: 0) at the integer `Indices` (nnabla's name), as
    numpy.take with tf.gather's batch_dims (None: 0): the first batch_dims axes of x and
    Indices are paired. Shape x.shape[:axis] + Indices.shape[batch_dims:] +
    x.shape[axis + 1:]. Indices given as inputs outside [0, x.shape[axis]) are refused
    when the module is called, but -1, which gives zeros (nnabla refuses it); computed
    ones are truncated, zeros out of range (as F.embed's). Indices get no gradient."""
    if not (isinstance(x, Variable) and isinstance(Indices, Variable)):
        return _record("gather", (x, Indices))  # raises the TypeError
    if not x.shape:
        raise ValueError("F.gather: x of shape () has no axis to gather along")
    batch = 0 if batch_dims is None else _int_argument("gather", "batch_dims", batch_dims)
    return _record("gather", (x, Indices), axis=_index_axis("gather", x, axis),
                   batch_dims=batch)


def scatter_add(x0, indices, x1, axis=None):
    """x0 plus each x1[p] (p a position of `indices`) added at p with its `axis`
    coordinate (None: 0) replaced by indices[p], as torch's scatter_add; x0, indices and
    x1 have one rank, indices no longer than x1, nor than x0 but along `axis`. Indices
    given as inputs outside [0, x0.shape[axis]) are refused when the module is called,
    but -1, which adds nothing (nnabla refuses it); computed ones are truncated, adding
    nothing out of range. Indices get no gradient."""
    if not all(isinstance(v, Variable) for v in (x0, indices, x1)):
        return _record("scatter_add", (x0, indices, x1))  # raises the TypeError
    if not x0.shape:
        raise ValueError("F.scatter_add: x0 of shape () has no axis to scatter along")
    return _record("scatter_add", (x0, indices, x1), axis=_index_axis("scatter_add", x0, axis))


__all__ += ["gather_nd", "scatter_nd"]


def _nd_indices(indices):
    """nnabla's conversion: indices given as a list or an array become a Variable holding
    them (any other kind is left for _record to refuse)."""
    if isinstance(indices, (list, tuple, numpy.ndarray)):
        return Variable.from_numpy_array(numpy.asarray(indices, dtype=int))
    return indices


def gather_nd(data, indices):
    """The elements or slices of `data` (X_0, ..., X_{N-1}) at `indices` (M, Y_0, ...,
    Y_{K-1}), M <= N: y[y...] = data[indices[0, y...], ..., indices[M-1, y...], ...], of
    shape (Y_0, ..., Y_{K-1}, X_M, ..., X_{N-1}). `indices` (at least 2-D) may be a
    Variable, a list or an array; negative indices count from the end, as nnabla's. Indices
    given as inputs outside [-X_m, X_m) in row m are refused when the module is called;
    computed ones are truncated, zeros out of range. The gradient adds dy back where y
    was read (repeated positions sum); indices get none."""
    indices = _nd_indices(indices)
    return _record("gather_nd", (data, indices))


def scatter_nd(data, indices, shape=None, out=None, add=False):
    """`data` (Y_0, ..., Y_{K-1}, X_M, ..., X_{N-1}) written into zeros of `shape` (X_0,
    ..., X_{N-1}), or into the leaf Variable `out`, at `indices` (M, Y_0, ..., Y_{K-1}):
    y[indices[0, y...], ..., indices[M-1, y...], ...] = data[y...], the inverse of
    F.gather_nd; give exactly one of `shape` and `out`. Repeated positions: with `add` the
    values are summed, else the last one wins (nnabla's CPU loop). Indices are read as
    F.gather_nd reads them. With `out`, every forward pass overwrites out with y in place,
    as nnabla's (so with `add` each pass adds again); out gets no gradient (nnabla's
    backward gives it none). data's gradient is dy where data was written: with `add` at
    every repeated position, without it only at the last (the derivative: nnabla 1.39's
    passes dy to every repeated position, or with `out` only to the first)."""
    indices = _nd_indices(indices)
    if shape is None and out is None:
        raise TypeError("F.scatter_nd: one of `shape` or `out` argument must be supplied")
    # nnabla's test (`shape and out`): an empty shape with out is no shape
    given = shape is not None and numpy.size(shape) > 0
    if given and out is not None:
        raise TypeError("F.scatter_nd: only one of `shape` or `out` argument may be used")
    if out is not None:
        if not isinstance(out, Variable):
            raise TypeError(f"F.scatter_nd: `out` must be a Variable, got "
                            f"{type(out).__name__}")
        _updated_in_place("scatter_nd", "out", out=out)
        shape = out.shape
    shape = normalize_shape(shape, "F.scatter_nd")
    inputs = (data, indices) if out is None else (data, indices, out)
    return _record("scatter_nd", inputs, shape=shape, add=bool(add))


def batch_matmul(a, b, transpose_a=False, transpose_b=False, n_outputs=-1, outputs=None):
    """Matrix products over the last two axes; the batch axes broadcast where 1."""
    return _record("batch_matmul", (a, b), transpose_a=bool(transpose_a),
                   transpose_b=bool(transpose_b))


def reshape(x, shape, inplace=True, n_outputs=-1, outputs=None):
    """`x` with a new shape of the same size; one axis may be -1 (inferred). In place
    (the default) its values have x's dtype, a copy's are float32, as in nnabla (the node
    records inplace only when it is False)."""
    if not isinstance(x, Variable):
        return _record("reshape", (x,))
    copy = {} if inplace else {"inplace": False}
    return _record("reshape", (x,), shape=_reshape_target(x.shape, shape), **copy)


def _reshape_target(old, shape) -> tuple[int, ...]:
    if isinstance(shape, numbers.Integral):
        shape = (shape,)
    shape = [int(d) for d in shape]
    size = math.prod(old)
    if shape.count(-1) > 1:
        raise ValueError(f"F.reshape: shape {tuple(shape)} has more than one -1")
    if -1 in shape:
        known = math.prod(d for d in shape if d != -1)
        if known == 0 or size % known:
            raise ValueError(f"F.reshape: cannot reshape {old} ({size} elements) to "
                             f"{tuple(shape)}")
        shape[shape.index(-1)] = size // known
    new = normalize_shape(shape, "F.reshape")
    if math.prod(new) != size:
        raise ValueError(f"F.reshape: cannot reshape {old} ({size} elements) to {new} "
                         f"({math.prod(new)} elements)")
    return new


def transpose(x, axes, n_outputs=-1, outputs=None):
    """`x` with its axes permuted: output axis i is input axis axes[i]."""
    if not isinstance(x, Variable):
        return _record("transpose", (x,))
    perm = tuple(int(a) % x.ndim if x.ndim else int(a) for a in axes)
    if sorted(perm) != list(range(x.ndim)):
        raise ValueError(f"F.transpose: axes {tuple(axes)} is not a permutation of the "
                         f"{x.ndim} axes of an input of shape {x.shape}")
    return _record("transpose", (x,), axes=perm)


def broadcast(x, shape, n_outputs=-1, outputs=None):
    """`x` repeated along its size-1 axes (and new leading axes) to `shape`."""
    if not isinstance(x, Variable):
        return _record("broadcast", (x,))
    shape = normalize_shape(shape, "F.broadcast")
    padded = (1,) * (len(shape) - x.ndim) + x.shape
    if len(shape) < x.ndim or any(d != s and d != 1 for d, s in zip(padded, shape,
                                                                    strict=True)):
        raise ValueError(f"F.broadcast: cannot broadcast shape {x.shape} to {shape}: every "
                         "axis of the input must equal the target's or be 1 (missing "
                         "leading axes count as 1)")
    return _record("broadcast", (x,), shape=shape)


# --- celu, prelu, kl_multinomial, interpolate, random flips, shifts and crops --------------
# (symcompile.ops.activations and ops.resampling lower them; tests/test_functions_extra.py)

__all__ += ["celu", "prelu", "kl_multinomial"]


def _base_axis(op: str, x, base_axis) -> int:
    """nnabla's base_axis of `x`, negative counted from the end, checked."""
    base = _int_argument(op, "base_axis", base_axis)
    if not -len(x.shape) <= base < len(x.shape):
        raise ValueError(f"F.{op}: base_axis {base} is out of range for an input of shape "
                         f"{x.shape} (valid: {-len(x.shape)}..{len(x.shape) - 1})")
    return base % len(x.shape)


def celu(x, alpha=1.0, axis=1, n_outputs=-1, outputs=None):
    """nnabla's CELU: elu(x, alpha) and elu(-x, alpha) concatenated along `axis` (which
    doubles in length), elu'(0) = 1 as in F.elu."""
    if not isinstance(x, Variable):
        return _record("celu", (x,))  # raises the TypeError
    axis = _one_axis("celu", x, axis, "concatenate along")
    return _record("celu", (x,), alpha=number(alpha, "celu", "alpha"), axis=axis)


def prelu(x0, x1, base_axis=1, n_outputs=-1, outputs=None):
    """x0 where x0 >= 0, else x1 * x0: one slope x1 (of size 1) or one per channel, x1 of
    shape (x0.shape[base_axis],). d/dx0 is 1 at 0, as nnabla's."""
    if not (isinstance(x0, Variable) and isinstance(x1, Variable)):
        return _record("prelu", (x0, x1))  # raises the TypeError
    if not x0.shape:
        raise ValueError("F.prelu: x0 of shape () has no channel axis; reshape it to (1,)")
    return _record("prelu", (x0, x1), base_axis=_base_axis("prelu", x0, base_axis))


def kl_multinomial(p, q, base_axis=1, n_outputs=-1, outputs=None):
    """The KL divergence of the multinomials p and q (probabilities over the axes from
    `base_axis` on), sum of p*(log(p + 1e-8) - log(q + 1e-8)), of shape
    p.shape[:base_axis] + (1,); its gradients are nnabla's (see ops.sympy_functions.KLTerm).
    base_axis 0 is refused (nnabla 1.39 reads outside the arrays)."""
    if not (isinstance(p, Variable) and isinstance(q, Variable)):
        return _record("kl_multinomial", (p, q))  # raises the TypeError
    if not p.shape:
        raise ValueError("F.kl_multinomial: p of shape () has no axis to sum over; reshape "
                         "it to (1,)")
    base = _base_axis("kl_multinomial", p, base_axis)
    if base == 0:
        raise ValueError(f"F.kl_multinomial: base_axis {base_axis} sums over every axis of p "
                         f"of shape {p.shape}, which nnabla 1.39 computes wrongly; add a "
                         f"batch axis of 1 (F.reshape(p, (1,) + p.shape)) and use base_axis=1")
    return _record("kl_multinomial", (p, q), base_axis=base)


__all__ += ["interpolate"]


def interpolate(x, scale=None, output_size=None, mode="linear", align_corners=False,
                half_pixel=False, half_pixel_for_nn=False, channel_last=False):
    """x resized along its last len(output_size) axes, 1 to 3 of them, by "linear" or
    "nearest" interpolation, as nnabla 1.39's: output_size[i] = floor(scale[i] * size)
    when `scale` is given; the source coordinate of output o is o*(n - 1)/(m - 1)
    (align_corners), (o + 1/2)*n/m - 1/2 (half_pixel, at least 0) or o*n/m; nearest reads
    its floor ((o + 1/2)*n/m with half_pixel_for_nn). The gradient adds each dy back into
    what it read, weighted. ``channel_last=True``: the axes resized are those before the
    last (NHWC), as by nnabla's CUDA implementation (its CPU one refuses to run it)."""
    if not isinstance(x, Variable):
        return _record("interpolate", (x,))  # raises the TypeError
    where = f"F.interpolate: input of shape {x.shape}"
    if mode not in ("linear", "nearest"):
        raise ValueError(f"{where}: mode={mode!r} is not one of nnabla's 'linear' and "
                         f"'nearest'")
    if align_corners and half_pixel:
        raise ValueError(f"{where}: align_corners=True and half_pixel=True together are "
                         f"not supported (nnabla's rule); choose one")
    given = output_size if output_size is not None else scale
    if given is None:
        raise ValueError(f"{where}: give scale or output_size (one entry per resized "
                         f"axis)")
    given = (given,) if isinstance(given, numbers.Real) else tuple(given)
    rank = len(given)
    last = len(x.shape) - 1 if channel_last else len(x.shape)  # (after the resized axes)
    if not 1 <= rank <= 3 or rank > last:
        raise ValueError(f"{where}: {rank} resized axes; nnabla interpolates 1 to 3 axes, "
                         f"and the input must have them"
                         + (" before its channels (channel_last=True)" if channel_last else ""))
    axes = tuple(range(last - rank, last))
    if output_size is None:
        for s in given:
            if isinstance(s, bool) or not isinstance(s, numbers.Real) or not s > 0:
                raise ValueError(f"{where}: scale={tuple(given)} must hold positive numbers")
        sizes = tuple(int(math.floor(s * x.shape[a])) for s, a in zip(given, axes,
                                                                        strict=True))
    else:
        sizes = tuple(_int_argument("interpolate", "output_size", s) for s in given)
    if any(s < 1 for s in sizes):
        raise ValueError(f"{where}: the output size {sizes} along axes {axes} must be at "
                         f"least 1 (give a larger scale or output_size)")
    return _record("interpolate", (x,), axes=axes, output_size=sizes, mode=mode,
                   align_corners=bool(align_corners), half_pixel=bool(half_pixel),
                   half_pixel_for_nn=bool(half_pixel_for_nn), **_layout(channel_last))


__all__ += ["random_flip", "random_shift", "random_crop"]
_BORDER_MODES = ("nearest", "reflect", "constant")  # ops.resampling.BORDER_MODES


def _random_arguments(op: str, x, base_axis, seed) -> int:
    _seed_argument(op, seed)
    base = _int_argument(op, "base_axis", base_axis)
    if not 0 <= base < len(x.shape):
        raise ValueError(f"F.{op}: base_axis {base} is out of range for an input of shape "
                         f"{x.shape} (valid: 0..{len(x.shape) - 1}; the axes before it are "
                         f"the samples, each drawn on its own)")
    return base


def _last_axes(op: str, what: str, values, x, base: int) -> tuple[int, ...]:
    """`values`, one per last axis of x, as a full tuple for the axes from base_axis on
    (0 before them); refused where they would act on a sample axis."""
    values = tuple(_int_argument(op, what, v) for v in values)
    if len(values) > len(x.shape):
        raise ValueError(f"F.{op}: {what}={values} has more entries than the input of shape "
                         f"{x.shape} has axes")
    full = (0,) * (len(x.shape) - len(values)) + values
    if any(full[:base]):
        raise ValueError(f"F.{op}: {what}={values} acts on the sample axes of the input of "
                         f"shape {x.shape} (before base_axis {base}); give entries for the "
                         f"axes from base_axis on only")
    return full[base:]


def random_flip(x, axes=None, base_axis=1, seed=-1, n_outputs=-1, outputs=None):
    """Each sample (the axes before base_axis) reversed along each of `axes` (None: the
    last) with probability 1/2, drawn anew by every forward pass from the generated
    functions' `rng` (seeded as for `dropout`); the gradient goes back through the same
    flips."""
    if not isinstance(x, Variable):
        return _record("random_flip", (x,))  # raises the TypeError
    base = _random_arguments("random_flip", x, base_axis, seed)
    chosen = normalize_axes("random_flip", [x.ndim - 1] if axes is None else axes, x.shape)
    if any(a < base for a in chosen):
        raise ValueError(f"F.random_flip: axes {tuple(chosen)} include sample axes of the "
                         f"input of shape {x.shape} (before base_axis {base}); flip axes "
                         f"from base_axis on")
    mask = tuple(int(a in chosen) for a in range(base, x.ndim))
    return _record("random_flip", (x,), base_axis=base, sizes=x.shape[base:], shifts=mask,
                   seed=int(seed))


def random_shift(x, shifts=None, border_mode="nearest", constant_value=0, base_axis=1,
                 seed=-1, n_outputs=-1, outputs=None):
    """Each sample shifted along its last len(shifts) axes by a number drawn uniformly from
    -shifts[i]..shifts[i], y[j] = x[j - t], anew by every forward pass (see
    `random_flip`); outside the input, `border_mode` "nearest" (the edge), "reflect" (F.shift's
    mirror) or "constant" (`constant_value`). The gradient adds dy back where it was read."""
    if not isinstance(x, Variable):
        return _record("random_shift", (x,))  # raises the TypeError
    if border_mode not in _BORDER_MODES:
        raise ValueError(f"F.random_shift: border_mode={border_mode!r} is not one of "
                         f"nnabla's 'nearest', 'reflect' and 'constant' (input of shape "
                         f"{x.shape})")
    base = _random_arguments("random_shift", x, base_axis, seed)
    shifts = () if shifts is None else (
        (shifts,) if isinstance(shifts, numbers.Integral) else tuple(shifts))
    full = _last_axes("random_shift", "shifts", shifts, x, base)
    if any(s < 0 for s in full):
        raise ValueError(f"F.random_shift: shifts={shifts} must be non-negative (the largest "
                         f"shift each way)")
    return _record("random_shift", (x,), base_axis=base, sizes=x.shape[base:], shifts=full,
                   border_mode=border_mode,
                   constant_value=number(constant_value, "random_shift", "constant_value"),
                   seed=int(seed))


def random_crop(x, shape=None, base_axis=1, seed=-1, n_outputs=-1, outputs=None):
    """Each sample cropped to `shape` (its last len(shape) axes; None: x's shape, no crop)
    at offsets drawn uniformly anew by every forward pass (see `random_flip`); the gradient
    places dy back where the crop was taken, zeros elsewhere."""
    if not isinstance(x, Variable):
        return _record("random_crop", (x,))  # raises the TypeError
    base = _random_arguments("random_crop", x, base_axis, seed)
    shape = x.shape if shape is None else normalize_shape(shape, "F.random_crop")
    if len(shape) > len(x.shape) or any(
            not 1 <= s <= n for s, n in zip(shape, x.shape[len(x.shape) - len(shape):],
                                            strict=True)):
        raise ValueError(f"F.random_crop: shape {tuple(shape)} does not fit the input of "
                         f"shape {x.shape}: give at most one size per axis, for the last "
                         f"axes, each from 1 to the input's size")
    full = x.shape[:len(x.shape) - len(shape)] + tuple(shape)
    if full[:base] != x.shape[:base]:
        raise ValueError(f"F.random_crop: shape {tuple(shape)} crops sample axes of the input "
                         f"of shape {x.shape} (before base_axis {base}); crop axes from "
                         f"base_axis on only")
    return _record("random_crop", (x,), base_axis=base, sizes=full[base:],
                   shifts=(0,) * (len(x.shape) - base), seed=int(seed))


__all__ += ["random_choice"]


def random_choice(x, w, shape=[], replace=True, seed=-1,  # noqa: B006 (nnabla's default)
                  n_outputs=-1, outputs=None):
    """prod(shape) samples of each population x[..., :] (its last axis), drawn anew by
    every forward pass (seeded as for `dropout`) with the probabilities its weights
    w[..., :] give (non-negative, not all 0), with or without `replace`ment; y has shape
    x.shape[:-1] + shape (shape [] : one sample, (..., 1)). As in nnabla, the gradient adds
    dy into x where each sample was read, and into w at the same places. The weights are
    checked when the module runs (nnabla checks them on its CPU)."""
    if not (isinstance(x, Variable) and isinstance(w, Variable)):
        return _record("random_choice", (x, w))  # raises the TypeError
    where = f"F.random_choice: x of shape {x.shape}, w of shape {w.shape}"
    if x.shape != w.shape or not x.shape:
        raise ValueError(f"{where}: x and w must have one shape (each weight belongs to the "
                         f"element of x at its place; nnabla's rule), of at least one axis")
    seed = _seed_argument("random_choice", seed)
    samples = tuple(normalize_shape(shape, "F.random_choice")) or (1,)
    count = math.prod(samples)
    if count < 1:
        raise ValueError(f"{where}: shape={tuple(shape)} draws no sample; give positive sizes")
    if not replace and count > x.shape[-1]:
        raise ValueError(f"{where}: shape={tuple(shape)} asks {count} samples without "
                         f"replacement of populations of {x.shape[-1]}; draw at most "
                         f"{x.shape[-1]}, or replace=True")
    return _record("random_choice", (x, w), shape=samples, replace=bool(replace),
                   seed=int(seed))


__all__ += ["random_erase"]


def random_erase(x, prob=0.5, area_ratios=(0.02, 0.4), aspect_ratios=(0.3, 3.3333),
                 replacements=(0.0, 255.0), n=None, share=True, inplace=False, base_axis=1,
                 seed=-1, channel_last=False, ste_fine_grained=True, n_outputs=-1,
                 outputs=None):
    """Each image x[s] (C, H, W; the axes before base_axis are the samples) with up to `n`
    (None: 1) rectangles replaced by uniform noise in `replacements`: each drawn with
    probability `prob`, of area U(area_ratios) * H * W and aspect ratio U(aspect_ratios),
    as nnabla's; one rectangle for every channel (`share`) or one per channel. Drawn anew
    by every forward pass, seeded as for `dropout`. The gradient is dy outside the
    rectangles and 0 inside (``ste_fine_grained=True``), or dy everywhere. NHWC with
    ``channel_last=True``, which nnabla runs on CUDA only. `inplace` is ignored, as by
    nnabla."""
    if not isinstance(x, Variable):
        return _record("random_erase", (x,))  # raises the TypeError
    where = f"F.random_erase: input of shape {x.shape}"
    base = _random_arguments("random_erase", x, base_axis, seed)
    if len(x.shape) - base != 3:
        raise ValueError(f"{where}: base_axis {base} must leave 3 axes (channels, height, "
                         f"width: nnabla erases 2-D images only)")
    prob = float(number(prob, "random_erase", "prob"))
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"{where}: prob={prob} must be in [0, 1]")
    ranges = {}
    for name, values in (("area_ratios", area_ratios), ("aspect_ratios", aspect_ratios),
                         ("replacements", replacements)):
        values = tuple(values) if hasattr(values, "__iter__") else (values,)
        if len(values) != 2:
            raise ValueError(f"{where}: {name}={values} must hold 2 numbers (low, high)")
        ranges[name] = tuple(float(number(v, "random_erase", name)) for v in values)
    rounds = 1 if n is None else _int_argument("random_erase", "n", n)
    if rounds < 1:
        raise ValueError(f"{where}: n={rounds} must be positive (the rectangles per image)")
    return _record("random_erase", (x,), prob=prob, **ranges, n=rounds, share=bool(share),
                   base_axis=base, seed=int(seed), ste_fine_grained=bool(ste_fine_grained),
                   **_layout(channel_last))


__all__ += ["image_augmentation"]


def image_augmentation(x, shape=None, pad=(0, 0), min_scale=1.0, max_scale=1.0, angle=0.0,
                       aspect_ratio=1.0, distortion=0.0, flip_lr=False, flip_ud=False,
                       brightness=0.0, brightness_each=False, contrast=1.0,
                       contrast_center=0.0, contrast_each=False, noise=0.0, seed=-1,
                       n_outputs=-1, outputs=None):
    """nnabla's image augmentation of the images of x (its last two axes; the one before
    them the channels, the axes before that the samples), each drawn anew by every forward
    pass from the generated functions' `rng` (seeded as for `dropout`; nnabla's own random
    numbers are not reproduced, their distributions are): scaled by a factor in
    [min_scale, max_scale], its aspect ratio changed by up to `aspect_ratio`, rotated by up
    to +-`angle` radians, padded by `pad` (edge pixels), its window of `shape` (the last
    axes of the output; None: x's) taken at a random place, flipped left-right / up-down
    with probability 1/2 (flip_lr, flip_ud), distorted radially by up to `distortion`,
    read bilinearly with the edge pixels outside; then brightness b in +-`brightness` and
    contrast c in [1/contrast, contrast] (per channel with brightness_each /
    contrast_each): (v + b - contrast_center) * c + contrast_center, and normal noise of a
    sigma drawn in [0, noise]. No gradient reaches x (nnabla's backward does nothing)."""
    if not isinstance(x, Variable):
        return _record("image_augmentation", (x,))  # raises the TypeError
    _seed_argument("image_augmentation", seed)
    shape = x.shape if shape is None else normalize_shape(shape, "F.image_augmentation")
    if isinstance(pad, numbers.Integral):
        raise TypeError(f"F.image_augmentation: pad must be a tuple of 2 ints (height, "
                        f"width), got {pad!r}")
    pad = tuple(_int_argument("image_augmentation", "pad", p) for p in pad)
    flags = {"flip_lr": flip_lr, "flip_ud": flip_ud, "brightness_each": brightness_each,
             "contrast_each": contrast_each}
    for name, value in flags.items():
        if not isinstance(value, (bool, numpy.bool_, int)):
            raise TypeError(f"F.image_augmentation: {name} must be a bool, got {value!r}")
    values = {"min_scale": min_scale, "max_scale": max_scale, "angle": angle,
              "aspect_ratio": aspect_ratio, "distortion": distortion,
              "brightness": brightness, "contrast": contrast,
              "contrast_center": contrast_center, "noise": noise}
    return _record("image_augmentation", (x,), shape=tuple(shape), pad=pad,
                   **{k: number(v, "image_augmentation", k) for k, v in values.items()},
                   **{k: bool(v) for k, v in flags.items()}, seed=int(seed))


# --- crelu, add_n, mul_n, norm, cross-entropy and metrics, matrices, shapes, fused layers --
# (symcompile.ops.activations, ops.arrays and ops.structural lower most of them; norm,
# tensor_normalization and fused_convolution are compositions, as in nnabla;
# tests/test_catalogue_more.py)

__all__ += ["crelu", "bc_add2", "add_n", "mul_n", "norm", "categorical_cross_entropy", "trilu",
            "eye_like", "unlink", "depthwise_deconvolution", "fused_convolution",
            "tensor_normalization", "confusion_matrix", "shape"]


def crelu(x, axis=1, n_outputs=-1, outputs=None):
    """nnabla's CReLU: relu(x) and relu(-x) concatenated along `axis` (which doubles in
    length). At x = 0 the gradient is -dy of the second half (nnabla's backward); a
    negative `axis` counts from the end, as in nnabla 1.39."""
    if not isinstance(x, Variable):
        return _record("crelu", (x,))  # raises the TypeError
    axis = _one_axis("crelu", x, axis, "concatenate along")
    return _record("crelu", (x,), axis=axis)


def _variadic(op: str, x: tuple, kw: dict, least: int) -> tuple:
    """The inputs of nnabla's variadic `op` (F.add_n(*x), F.mul_n(*x)), which takes no
    arguments but n_outputs and outputs."""
    kw.pop("n_outputs", None)
    kw.pop("outputs", None)
    if kw:
        raise TypeError(f"F.{op}: unexpected arguments {sorted(kw)}; it takes only the "
                        f"Variables to combine, F.{op}(x0, x1, ...)")
    if len(x) < least:
        raise ValueError(f"F.{op}: {len(x)} input(s) given, nnabla's {op} needs at least "
                         f"{least}")
    return tuple(x)


def bc_add2(x0, x1, inplace=False, n_outputs=-1, outputs=None):
    """x0 + x1, size-1 axes broadcast between inputs of equal rank: nnabla's broadcasting
    addition (its docs: "shouldn't be called by users"), the same as F.add2. `inplace` is
    accepted and unused (obsolete in nnabla too)."""
    return _record("bc_add2", (x0, x1))


def add_n(*x, **kw):
    """x0 + x1 + ... of Variables of one shape (nnabla's AddN; it does not broadcast)."""
    return _record("add_n", _variadic("add_n", x, kw, 1))


def mul_n(*x, **kw):
    """x0 * x1 * ... of at least two Variables of one shape (nnabla's MulN). Each input's
    gradient is dy times the product of the others: nnabla computes dy * y / x_i, the same
    number except where x_i = 0, where nnabla's is NaN (0/0)."""
    return _record("mul_n", _variadic("mul_n", x, kw, 2))


def norm(x, p=None, axis=None, keepdims=False):
    """The p-norm (sum |x|^p)^(1/p) over `axis` (None: all axes; p None: 2; p >= 1), as
    nnabla's Norm computes it: abs, pow_scalar(p), sum, pow_scalar(1/p), so its gradient is
    theirs (d|x|/dx = +1 at 0; NaN where a whole norm is 0 and p > 1, as nnabla's)."""
    if not isinstance(x, Variable):
        raise TypeError(f"F.norm: x must be a Variable, got {type(x).__name__}; wrap arrays "
                        f"with nn.Variable.from_numpy_array(array)")
    order = 2.0 if p is None else float(number(p, "norm", "p"))
    if not order >= 1:
        raise ValueError(f"F.norm: p={p!r} must be at least 1 (nnabla's rule: below 1 it is "
                         f"not a norm) for the input of shape {x.shape}")
    axes = _reduced_axes("norm", axis, x)
    powered = _record("pow_scalar", (_record("abs", (x,)),), val=number(order, "norm", "p"))
    total = _record("sum", (powered,), axes=axes, keepdims=bool(keepdims))
    return _record("pow_scalar", (total,), val=number(1 / order, "norm", "p"))


def categorical_cross_entropy(x, target, axis=None, n_outputs=-1, outputs=None):
    """-log(x[target]) along `axis` (default: the last), x holding probabilities: nnabla
    clamps x[target] at float32's smallest normal number (1.18e-38), in the log and in the
    gradient -dy/x[target]; label -1 gives 0. The output has the target's shape (length 1
    along `axis`); the target gets no gradient (nnabla raises if asked for one)."""
    axis = _one_axis("categorical_cross_entropy", x, axis)
    return _record("categorical_cross_entropy", (x, target), axis=axis)


def confusion_matrix(x, target, axis=None, n_outputs=-1, outputs=None):
    """counts[label, predicted] (classes, classes), summed over every row along `axis`
    (default: the last): the prediction is the first largest score of x, the label the
    target's (length 1 along `axis`). A row labelled -1 counts nowhere (nnabla 1.39 writes
    it outside its output). nnabla's output is int32; here it holds the counts as numbers
    of the module's dtype. No gradient."""
    axis = _one_axis("confusion_matrix", x, axis)
    return _record("confusion_matrix", (x, target), axis=axis)


def trilu(x, k=0, upper=True, n_outputs=-1, outputs=None):
    """numpy.triu(x, k) (upper=True) or numpy.tril(x, k) of the matrices of x's last two
    axes (x has at least 2); the gradient is dy masked alike."""
    if not isinstance(x, Variable):
        return _record("trilu", (x,))  # raises the TypeError
    if not isinstance(upper, (bool, numpy.bool_)):
        raise TypeError(f"F.trilu: upper must be True (keep the upper triangle) or False "
                        f"(the lower), got {upper!r}")
    return _record("trilu", (x,), k=_int_argument("trilu", "k", k), upper=bool(upper))


def eye_like(x, k=0, n_outputs=-1, outputs=None):
    """numpy.eye(M, N, k) for a 2-D x of shape (M, N): ones on the k-th diagonal (k > 0
    above the main one), zeros elsewhere. x gives only the shape: no gradient."""
    if not isinstance(x, Variable):
        return _record("eye_like", (x,))  # raises the TypeError
    return _record("eye_like", (x,), k=_int_argument("eye_like", "k", k))


def unlink(x, n_outputs=-1, outputs=None):
    """x, through which no gradient flows (nnabla's Unlink: its backward does nothing)."""
    return _record("unlink", (x,))


def shape(x, start=None, end=None, n_outputs=-1, outputs=None):
    """x.shape[start:end] as a 1-D array of numbers (float32, as nnabla 1.39's): start
    None is 0, end None the end; negative ones count from the end, as in nnabla. An empty
    range is refused (nnabla leaves its output unset). No gradient."""
    if not isinstance(x, Variable):
        return _record("shape", (x,))  # raises the TypeError
    first = 0 if start is None else _int_argument("shape", "start", start)
    last = 0 if end is None else _int_argument("shape", "end", end)  # (nnabla's 0: the end)
    return _record("shape", (x,), start=first, end=last)


def depthwise_deconvolution(x, weight, bias=None, base_axis=1, pad=None, stride=None,
                            dilation=None, divisor=1, n_outputs=-1, outputs=None):
    """Depthwise deconvolution: x (*batch, C, *L) with weight (C, *K) and bias
    (C/divisor,) gives (*batch, C/divisor, *L'), L' as F.deconvolution's; each input
    channel is deconvolved with its own kernel and output channel o sums input channels
    o*divisor to (o + 1)*divisor - 1 (nnabla's)."""
    inputs = (x, weight) if bias is None else (x, weight, bias)
    if not all(isinstance(v, Variable) for v in inputs):
        return _record("depthwise_deconvolution", inputs)  # raises the TypeError
    attrs = _geometry("depthwise_deconvolution", x.shape, base_axis, pad, stride, dilation, 1)
    attrs.pop("group")
    attrs["divisor"] = _int_argument("depthwise_deconvolution", "divisor", divisor)
    return _record("depthwise_deconvolution", inputs, **attrs)


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


# nnabla's FusedConvolution activations, with how many nonlinearity_args each takes
_FUSED_ACTIVATIONS = {"identity": 0, "": 0, "relu": 0, "sigmoid": 0, "tanh": 0,
                      "leaky_relu": 1, "elu": 1, "relu6": 0}


def fused_convolution(x, weight, bias=None, beta=None, gamma=None, mean=None, variance=None,
                      z=None, base_axis=1, pad=None, stride=None, dilation=None, group=1,
                      channel_last=False, decay_rate=0.9, eps=1e-05, batch_stat=True,
                      nonlinearity="relu", nonlinearity_args=[],  # noqa: B006 (nnabla's)
                      pad_mode="constant", constant_value=0, n_outputs=-1, outputs=None):
    """nnabla's FusedConvolution, as its C++ builds it: F.convolution (with `bias`), then
    F.batch_normalization over the channel axis when beta, gamma, mean and variance are
    given (all four, and not with `bias`), then + z, then the `nonlinearity` ("identity",
    "relu", "sigmoid", "tanh", "relu6", or "leaky_relu" / "elu" with nonlinearity_args
    [alpha]). nnabla's docs put an F.pad of `pad_mode` first; its code passes `pad` to the
    convolution (zeros) and ignores pad_mode and constant_value, so others are refused."""
    op = "fused_convolution"
    if pad_mode != "constant" or constant_value != 0:
        raise ValueError(f"F.{op}: pad_mode={pad_mode!r}, constant_value={constant_value!r}: "
                         "nnabla 1.39 ignores both and pads with zeros (whatever its docs say); "
                         "pad with F.pad first and give pad=None")
    if nonlinearity not in _FUSED_ACTIVATIONS:
        raise ValueError(f"F.{op}: nonlinearity={nonlinearity!r} is not one of nnabla's "
                         f"{sorted(n for n in _FUSED_ACTIVATIONS if n)}")
    arguments = [float(number(a, op, "nonlinearity_args")) for a in nonlinearity_args]
    if len(arguments) < _FUSED_ACTIVATIONS[nonlinearity]:
        raise ValueError(f"F.{op}: nonlinearity={nonlinearity!r} needs nonlinearity_args="
                         f"[alpha], got {list(nonlinearity_args)!r}")
    statistics = (beta, gamma, mean, variance)
    normalized = any(v is not None for v in statistics)
    if normalized and not all(v is not None for v in statistics):
        missing = [name for name, v in zip(("beta", "gamma", "mean", "variance"), statistics,
                                            strict=True) if v is None]
        raise ValueError(f"F.{op}: batch normalization needs beta, gamma, mean and variance; "
                         f"{', '.join(missing)} missing (give all four, or none)")
    if normalized and bias is not None:
        raise ValueError(f"F.{op}: a convolution bias and batch normalization together are "
                         "refused by nnabla (the normalization's beta is the bias); give "
                         "bias=None")
    try:  # (the parts' errors, named as the parts of F.fused_convolution they are)
        h = convolution(x, weight, bias, base_axis=base_axis, pad=pad, stride=stride,
                        dilation=dilation, group=group, channel_last=channel_last)
        if normalized:
            channel = h.ndim - 1 if channel_last else base_axis
            h = _batch_normalization("batch_normalization", h, beta, gamma, mean, variance,
                                     None, [channel], decay_rate, eps, batch_stat, False)
        if z is not None:
            h = _record("add2", (h, z))
    except (TypeError, ValueError) as error:
        raise type(error)(f"F.{op}: {error}") from None
    if nonlinearity in ("relu", "sigmoid", "tanh", "relu6"):
        h = _record(nonlinearity, (h,))
    elif nonlinearity in ("leaky_relu", "elu"):
        h = _record(nonlinearity, (h,), alpha=number(arguments[0], op, "nonlinearity_args"))
    return h


# --- quantization: fixed-point, power-of-2 and linear quantizers, pruning, binary layers -----
# (symcompile.ops.quantization: compositions whose backward is nnabla's straight-through
# estimator; tests/test_quantization.py)

__all__ += ["fixed_point_quantize", "pow2_quantize", "min_max_quantize", "prune",
            "quantize_linear",
            "dequantize_linear", "binary_connect_affine", "binary_connect_convolution",
            "binary_weight_affine", "binary_weight_convolution"]


def _flag(op: str, name: str, value) -> bool:
    """A bool argument of nnabla's (sign, ste_fine_grained, ...): True or False only, so
    that a bit width given in its place is not read as a flag."""
    if not isinstance(value, (bool, numpy.bool_)):
        raise TypeError(f"F.{op}: {name} must be True or False, got {value!r}")
    return bool(value)


def _quantizer_input(op: str, x) -> Variable:
    if not isinstance(x, Variable):
        raise TypeError(f"F.{op}: x must be a Variable, got {type(x).__name__}; wrap arrays "
                        f"with nn.Variable.from_numpy_array(array)")
    return x


def fixed_point_quantize(x, sign=True, n=8, delta=2**-4, quantize=True, ste_fine_grained=True,
                         outputs=None):
    """x rounded to a multiple of `delta` (halves away from zero) and saturated to [min,
    max]: max = (2^(n-1) - 1) * delta and min = -max when `sign` (the sign takes one of
    the n bits), else [0, (2^n - 1) * delta]. Backward: dy where min <= x <= max, 0
    outside (ste_fine_grained, nnabla's default), or dy everywhere. quantize=False returns
    x itself, as nnabla's."""
    op = "fixed_point_quantize"
    x = _quantizer_input(op, x)
    if not _flag(op, "quantize", quantize):
        return x
    sign, fine = _flag(op, "sign", sign), _flag(op, "ste_fine_grained", ste_fine_grained)
    bits = _int_argument(op, "n", n)
    step = float(number(delta, op, "delta"))
    if bits <= 0 or not step > 0:
        raise ValueError(f"F.{op}: n={n!r} and delta={delta!r} must both be positive "
                         f"(nnabla's rule)")
    if sign and bits < 2:
        raise ValueError(f"F.{op}: n={bits} leaves no bit for the value once sign=True takes "
                         f"one; give n >= 2 or sign=False")
    return _record(op, (x,), sign=sign, n=bits, delta=number(step, op, "delta"),
                   ste_fine_grained=fine)


def pow2_quantize(x, sign=True, with_zero=True, n=8, m=1, quantize=True, ste_fine_grained=True,
                  outputs=None):
    """x rounded to a power of 2 in the log domain, 2^round(log2 |x|) (the geometric mean
    of two powers is the threshold), limited to [p_min, p_max] = [2^(m - (2^n' - 1)), 2^m]
    with n' = n - sign - with_zero bits; with_zero sends |x| < p_min / sqrt(2) to 0.
    Signed, q takes x's sign; unsigned, a negative x gives 0 (with_zero) or p_min.
    Backward: dy, but 0 where 2^round(log2 |x|) > 2^m and (unsigned) where x < 0 with
    ste_fine_grained (nnabla's default), or dy everywhere. quantize=False returns x."""
    op = "pow2_quantize"
    x = _quantizer_input(op, x)
    if not _flag(op, "quantize", quantize):
        return x
    sign, with_zero = _flag(op, "sign", sign), _flag(op, "with_zero", with_zero)
    fine = _flag(op, "ste_fine_grained", ste_fine_grained)
    bits, top = _int_argument(op, "n", n), _int_argument(op, "m", m)
    if bits - int(sign) - int(with_zero) <= 0:
        raise ValueError(f"F.{op}: n={bits} leaves no bit for the value once sign={sign} and "
                         f"with_zero={with_zero} take theirs (one each); give n >= "
                         f"{int(sign) + int(with_zero) + 1}")
    return _record(op, (x,), sign=sign, with_zero=with_zero, n=bits, m=top,
                   ste_fine_grained=fine)


def prune(x, rate=0.9, n_outputs=-1, outputs=None):
    """x with its smallest magnitudes set to 0: 0 where |x| < t, t = sorted(|x|)[int((size
    - 1) * rate)] (everything when rate = 1), else x. Backward: dy everywhere (nnabla's
    straight-through: pruned elements keep their gradient)."""
    op = "prune"
    x = _quantizer_input(op, x)
    value = float(number(rate, op, "rate"))
    if not 0 <= value <= 1:
        raise ValueError(f"F.{op}: rate={rate!r} must be in [0, 1] (the fraction of x's "
                         f"{x.size} elements pruned)")
    return _record(op, (x,), rate=number(value, op, "rate"))


def min_max_quantize(x, qr_min, qr_max, ql_min, ql_max, decay=0.999, x_min_max=False, ema=False,
                     ste_fine_grained=True, eps=0.01, quantize=True, outputs=None):
    """x quantized uniformly to the levels ql_min..ql_max (typically 0 and 255) over the
    range qr_min..qr_max: round((clip(x, m, M) - m) / scale) * scale + m, scale = (qr_max
    - qr_min) / (ql_max - ql_min), (m, M) the range moved so that 0 is a level (the
    "nudged" zero point, rounded halves away from zero). The four ranges have one shape:
    x's rank, each axis 1 or x's. x_min_max: qr_min and qr_max become min(x) and max(x)
    over the size-1 axes (with ema, their moving averages with `decay`) and the forward
    pass writes them back, as nnabla's; qr_max is widened to qr_min + eps (and written)
    where the range is below eps. Backward: dy where m <= x <= M (ste_fine_grained) or
    everywhere; when neither x_min_max nor ema, qr_min and qr_max get the sums of dy
    below m and above M; ql_min and ql_max get none. quantize=False returns x."""
    op = "min_max_quantize"
    x = _quantizer_input(op, x)
    if not _flag(op, "quantize", quantize):
        return x
    inputs = (x, qr_min, qr_max, ql_min, ql_max)
    for name, value in zip(("qr_min", "qr_max", "ql_min", "ql_max"), inputs[1:], strict=True):
        if not isinstance(value, Variable):
            raise TypeError(f"F.{op}: {name} must be a Variable, got {type(value).__name__} "
                            f"(PF.min_max_quantize creates them)")
    rate, margin = float(number(decay, op, "decay")), float(number(eps, op, "eps"))
    if not margin > 0:
        raise ValueError(f"F.{op}: eps={eps!r} must be positive (the narrowest range)")
    return _record(op, inputs, decay=number(rate, op, "decay"),
                   x_min_max=_flag(op, "x_min_max", x_min_max), ema=_flag(op, "ema", ema),
                   ste_fine_grained=_flag(op, "ste_fine_grained", ste_fine_grained),
                   eps=number(margin, op, "eps"))


# nnabla's output dtypes of quantize_linear, as its Python function takes them, and the
# code (NumPy's type number) its QuantizeLinear records
_QUANTIZED_DTYPES = {numpy.dtype(numpy.int8): 1, numpy.dtype(numpy.uint8): 2}
_ROUND_MODES = ("HALF_AWAY_FROM_ZERO", "HALF_TO_EVEN")


def _scale_inputs(op: str, x, scale, zero_point) -> tuple:
    for name, value in (("x", x), ("scale", scale), ("zero_point", zero_point)):
        if not isinstance(value, Variable):
            raise TypeError(f"F.{op}: {name} must be a Variable, got {type(value).__name__}; "
                            f"wrap arrays with nn.Variable.from_numpy_array(array)")
    return x, scale, zero_point


def quantize_linear(x, scale, zero_point, round_mode="HALF_AWAY_FROM_ZERO", narrow_range=False,
                    dtype=numpy.int8):
    """saturate(round(x / scale) + zero_point), ONNX's QuantizeLinear as nnabla computes
    it: zero_point is rounded and saturated too, `round_mode` HALF_AWAY_FROM_ZERO or
    HALF_TO_EVEN, the range int8's [-128, 127] or uint8's [0, 255] (narrow_range: without
    the lowest). The values are float32 numbers, as nnabla's output. scale and
    zero_point have x's rank, each axis 1 or x's. `dtype` may also be the code nnabla's
    files record (1: int8, 2: uint8). Backward: dy / scale (no saturation mask); scale and
    zero_point get no gradient. nnabla rounds zero_point in place; here it is left as it
    is."""
    op = "quantize_linear"
    x, scale, zero_point = _scale_inputs(op, x, scale, zero_point)
    if round_mode not in _ROUND_MODES:
        raise ValueError(f"F.{op}: round_mode={round_mode!r} is not one of nnabla's "
                         f"{list(_ROUND_MODES)}")
    if isinstance(dtype, numbers.Integral) and not isinstance(dtype, bool):
        code = int(dtype) if int(dtype) in _QUANTIZED_DTYPES.values() else None  # (a file's)
    else:
        try:
            code = _QUANTIZED_DTYPES.get(numpy.dtype(dtype))
        except TypeError:
            code = None
    if code is None:
        raise ValueError(f"F.{op}: dtype={dtype!r} is not one nnabla quantizes to; give "
                         f"numpy.int8 or numpy.uint8 (or their codes in nnabla's files, 1 "
                         f"and 2)")
    return _record(op, (x, scale, zero_point), round_mode=str(round_mode),
                   narrow_range=_flag(op, "narrow_range", narrow_range), dtype=code)


def dequantize_linear(x, scale, zero_point, n_outputs=-1, outputs=None):
    """(x - zero_point) * scale, ONNX's DequantizeLinear as nnabla's: scale and zero_point
    have x's rank, each axis 1 or x's. Backward: dy * scale; scale and zero_point get no
    gradient (nnabla raises if asked)."""
    op = "dequantize_linear"
    return _record(op, _scale_inputs(op, x, scale, zero_point))


def _binary_inputs(op: str, x, weight, binary_weight, alpha, bias) -> tuple:
    named = [("x", x), ("weight", weight), ("binary_weight", binary_weight)]
    if op.startswith("binary_weight"):
        named.append(("alpha", alpha))
    inputs = tuple(value for _, value in named) + (() if bias is None else (bias,))
    for name, value in named + ([] if bias is None else [("bias", bias)]):
        if not isinstance(value, Variable):
            raise TypeError(f"F.{op}: {name} must be a Variable, got {type(value).__name__}")
    return inputs


def _binary_affine(op, x, weight, binary_weight, alpha, bias, base_axis, quantize_zero_to):
    inputs = _binary_inputs(op, x, weight, binary_weight, alpha, bias)
    base = _int_argument(op, "base_axis", base_axis)
    if base < 0:
        base += len(x.shape)
    return _record(op, inputs, base_axis=base,
                   quantize_zero_to=number(quantize_zero_to, op, "quantize_zero_to"))


def _binary_convolution(op, x, weight, binary_weight, alpha, bias, base_axis, pad, stride,
                        dilation, group, quantize_zero_to):
    inputs = _binary_inputs(op, x, weight, binary_weight, alpha, bias)
    attrs = _geometry(op, x.shape, base_axis, pad, stride, dilation, group)
    return _record(op, inputs, **attrs,
                   quantize_zero_to=number(quantize_zero_to, op, "quantize_zero_to"))


def binary_connect_affine(x, weight, binary_weight, bias=None, base_axis=1,
                          quantize_zero_to=1.0, n_outputs=-1, outputs=None):
    """BinaryConnect: F.affine with sign(weight) (quantize_zero_to where weight is 0),
    which the forward pass writes into binary_weight (of weight's shape), as nnabla's.
    weight's gradient is the binarized weight's (sign's straight-through backward)."""
    return _binary_affine("binary_connect_affine", x, weight, binary_weight, None, bias,
                          base_axis, quantize_zero_to)


def binary_connect_convolution(x, weight, binary_weight, bias=None, base_axis=1, pad=None,
                               stride=None, dilation=None, group=1, quantize_zero_to=1.0,
                               n_outputs=-1, outputs=None):
    """BinaryConnect: F.convolution with sign(weight) (quantize_zero_to at 0), written
    into binary_weight by the forward pass; weight's gradient is the binarized weight's."""
    return _binary_convolution("binary_connect_convolution", x, weight, binary_weight, None,
                               bias, base_axis, pad, stride, dilation, group, quantize_zero_to)


def binary_weight_affine(x, weight, binary_weight, alpha, bias=None, base_axis=1,
                         quantize_zero_to=1.0, n_outputs=-1, outputs=None):
    """Binary Weight Network: F.affine with sign(weight) * alpha, alpha the mean |weight|
    of each output (over the inputs, the weight's first axis; alpha has one element per
    output). The forward pass writes sign(weight) into binary_weight and alpha into alpha;
    weight's gradient is the scaled weight's, unchanged (nnabla's: sign's straight-through,
    nothing through alpha)."""
    return _binary_affine("binary_weight_affine", x, weight, binary_weight, alpha, bias,
                          base_axis, quantize_zero_to)


def binary_weight_convolution(x, weight, binary_weight, alpha, bias=None, base_axis=1,
                              pad=None, stride=None, dilation=None, group=1,
                              quantize_zero_to=1.0, n_outputs=-1, outputs=None):
    """Binary Weight Network: F.convolution with sign(weight) * alpha, alpha (one element
    per output channel) the mean |weight| of each output channel's kernel; binary_weight
    and alpha are written by the forward pass; weight's gradient is the scaled weight's."""
    return _binary_convolution("binary_weight_convolution", x, weight, binary_weight, alpha,
                               bias, base_axis, pad, stride, dilation, group, quantize_zero_to)


# --- geometric layers: affine_grid, warp_by_grid, warp_by_flow (ops.geometry) -------------

__all__ += ["affine_grid", "warp_by_grid", "warp_by_flow"]


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


# --- batched linear algebra: inverse, determinant, log-determinant, Cholesky ------------------

__all__ += ["batch_inv", "batch_det", "batch_logdet", "batch_cholesky"]


def batch_inv(x, n_outputs=-1, outputs=None):
    """The inverse of each matrix of x (B, N, N); gradient -inv(x)^T dy inv(x)^T."""
    return _record("batch_inv", (x,))


def batch_det(x, n_outputs=-1, outputs=None):
    """The determinant of each matrix of x (B, N, N), shape (B,); gradient
    dy det(x) inv(x)^T."""
    return _record("batch_det", (x,))


def batch_logdet(x, n_outputs=-1, outputs=None):
    """log |det| of each matrix of x (B, N, N) (nnabla's: of the absolute value), shape
    (B,); gradient dy inv(x)^T."""
    return _record("batch_logdet", (x,))


def batch_cholesky(x, upper=False, n_outputs=-1, outputs=None):
    """The Cholesky factor of each symmetric positive definite matrix of x (B, N, N):
    lower L (read from x's lower triangle; not checked, as in nnabla), or with upper its
    transpose. The gradient is nnabla's symmetric matrix (Murray, arXiv:1602.07527)."""
    if not isinstance(upper, (bool, numpy.bool_)):
        raise TypeError(f"F.batch_cholesky: upper must be True (an upper triangular factor) "
                        f"or False (lower, the default), got {upper!r}")
    return _record("batch_cholesky", (x,), upper=bool(upper))


# --- rand_binomial, rand_beta, rand_gamma: draws, like rand and randn --------------------------

__all__ += ["rand_binomial", "rand_beta", "rand_gamma"]


def rand_binomial(n=1, p=0.5, shape=[], seed=-1, n_outputs=-1, outputs=None):  # noqa: B006
    """Binomial numbers B(n, p) (successes of n trials of probability p) of `shape`, drawn
    anew by every forward pass (see `rand`); nnabla's n > 0 and 0 < p < 1. Held as
    float32, as nnabla's; no gradient."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0:
        raise ValueError(f"F.rand_binomial: n={n!r} must be a positive int (the number of "
                         f"trials; nnabla refuses n <= 0)")
    q = number(p, "rand_binomial", "p")
    if not 0 < float(q) < 1:
        raise ValueError(f"F.rand_binomial: p={p!r} must be in (0, 1), both ends excluded "
                         f"(nnabla's check)")
    return _record("rand_binomial", (), n=int(n), p=q,
                   shape=normalize_shape(shape, "F.rand_binomial"),
                   seed=_seed_argument("rand_binomial", seed))


def rand_beta(alpha=0.5, beta=0.5, shape=[], seed=-1, n_outputs=-1, outputs=None):  # noqa: B006
    """Beta(alpha, beta) numbers in [0, 1] of `shape`, drawn anew by every forward pass (see
    `rand`); alpha and beta must be positive. No gradient."""
    a, b = _positive("rand_beta", "alpha", alpha), _positive("rand_beta", "beta", beta)
    return _record("rand_beta", (), alpha=a, beta=b,
                   shape=normalize_shape(shape, "F.rand_beta"),
                   seed=_seed_argument("rand_beta", seed))


def rand_gamma(k=0.5, theta=1, shape=[], seed=-1, n_outputs=-1, outputs=None):  # noqa: B006
    """Gamma numbers of shape k and scale theta (mean k*theta) of `shape`, drawn anew by
    every forward pass (see `rand`); k and theta must be positive. No gradient."""
    a, b = _positive("rand_gamma", "k", k), _positive("rand_gamma", "theta", theta)
    return _record("rand_gamma", (), k=a, theta=b,
                   shape=normalize_shape(shape, "F.rand_gamma"),
                   seed=_seed_argument("rand_gamma", seed))


def _positive(op: str, name: str, value):
    got = number(value, op, name)
    if not float(got) > 0:
        raise ValueError(f"F.{op}: {name}={value!r} must be greater than 0 (nnabla's check)")
    return got


# --- signal processing: fft, ifft (a kernel), stft, istft (compositions) --------------------

__all__ += ["fft", "ifft"]


def fft(x, signal_ndim, normalized=False, n_outputs=-1, outputs=None):
    """The complex-to-complex DFT over the `signal_ndim` (1, 2 or 3) axes before the last
    of x (..., N_1, ..., N_d, 2), whose last axis holds the real and imaginary parts:
    y[k] = sum over n of x[n] exp(-2 pi j sum_i k_i n_i / N_i), times 1/sqrt(N_1 ... N_d)
    when `normalized`. Same shape; the gradient is nnabla's, ifft(dy) * N (unnormalized)."""
    return _record("fft", (x,), **_dft_arguments("fft", signal_ndim, normalized))


def ifft(x, signal_ndim, normalized=False, n_outputs=-1, outputs=None):
    """The inverse DFT of x (..., N_1, ..., N_d, 2) (see `fft`): y[k] = 1/(N_1 ... N_d)
    sum over n of x[n] exp(+2 pi j sum_i k_i n_i / N_i), the factor 1/sqrt(N_1 ... N_d)
    when `normalized`. The gradient is nnabla's, fft(dy) / N (unnormalized)."""
    return _record("ifft", (x,), **_dft_arguments("ifft", signal_ndim, normalized))


def _dft_arguments(op: str, signal_ndim, normalized) -> dict:
    if isinstance(signal_ndim, bool) or not isinstance(signal_ndim, numbers.Integral) \
            or signal_ndim not in (1, 2, 3):
        raise ValueError(f"F.{op}: signal_ndim={signal_ndim!r} must be 1, 2 or 3 (nnabla's "
                         f"{op} transforms 1-D, 2-D or 3-D signals)")
    if not isinstance(normalized, (bool, numpy.bool_)):
        raise TypeError(f"F.{op}: normalized must be True (unitary, 1/sqrt(N)) or False "
                        f"(the default), got {normalized!r}")
    return {"signal_ndim": int(signal_ndim), "normalized": bool(normalized)}


__all__ += ["stft", "istft"]

_WINDOWS = ("hanning", "hamming", "rectangular")


def stft(x, window_size, stride, fft_size, window_type="hanning", center=True,
         pad_mode="reflect", as_istft_backward=False):
    """The short-time Fourier transform of x (B, L), as nnabla's C++ builds it: x padded
    by fft_size // 2 on both sides with `pad_mode` when `center`, then convolved (stride
    `stride`) with the windowed DFT basis, W[w, 0, t] = window[t] * (cos, -sin)(2 pi w t /
    fft_size) for the fft_size // 2 + 1 bins w. Returns (y_r, y_i), each (B, fft_size // 2
    + 1, frames). `window_type` "hanning" 0.5 - 0.5 cos(2 pi i / window_size), "hamming"
    0.54 - 0.46 cos(...), "rectangular" (or None) ones, centred in fft_size zeros.
    `as_istft_backward` computes istft's backward instead (pad_mode "constant"): x divided
    by the overlap-added squared window, then convolved with istft's basis. A
    composition: its gradients (istft's with as_stft_backward, as nnabla's) come from
    the parts."""
    op = "stft"
    window_type = _stft_checks(op, window_size, stride, fft_size, window_type, pad_mode,
                               as_istft_backward, "as_istft_backward")
    if not isinstance(x, Variable) or len(x.shape) != 2:
        raise ValueError(f"F.stft: x must be a Variable of time signals (batch_size, "
                         f"sample_size), got {getattr(x, 'shape', x)!r}; reshape it")
    if as_istft_backward and pad_mode != "constant":
        raise ValueError(f"F.stft: pad_mode={pad_mode!r} must be 'constant' when "
                         f"as_istft_backward=True (nnabla's check: a normal istft only "
                         f"slices its output, so its backward pads with zeros)")
    batch, length = x.shape
    half = fft_size // 2
    padded = length + 2 * half if center else length
    if padded < fft_size:
        raise ValueError(f"F.stft: x of shape {x.shape} is shorter than one frame: "
                         f"{padded} samples{' after centre padding' if center else ''} < "
                         f"fft_size={fft_size}; give a longer signal or a smaller fft_size")
    frames = (padded - fft_size) // stride + 1
    window = _stft_window(window_type, window_size, fft_size)
    if not as_istft_backward:
        h = pad(x, (half, half), mode=pad_mode) if center else x
        w_cos, w_sin = _dft_basis(fft_size, window, inverse=False)
    else:
        # conv reads the first `used` padded samples; the ones after take no part
        used = (frames - 1) * stride + fft_size
        inverse = _overlap_added(window * window, frames, stride)  # (1, used)
        start = half if center else 0
        kept = builtins.min(length, used - start)
        _nola(op, window_type, window_size, stride, fft_size, used, start, start + kept,
              "as_istft_backward=True divides x by it (nnabla 1.39 computes inf and nan there)")
        h = x[:, :kept] / inverse[:, start:start + kept]
        if center or kept < used:
            h = pad(h, (start, used - start - kept))
        w_cos, w_sin = _dft_basis(fft_size, window, inverse=True)
    h = reshape(h, (batch, 1, h.shape[1]))
    return (convolution(h, w_cos, stride=(stride,)), convolution(h, w_sin, stride=(stride,)))


def istft(y_r, y_i, window_size, stride, fft_size, window_type="hanning", center=True,
          pad_mode="reflect", as_stft_backward=False):
    """The inverse short-time Fourier transform of y_r, y_i (B, fft_size // 2 + 1,
    frames), as nnabla's C++ builds it: deconvolutions (stride `stride`) with the
    windowed inverse DFT basis a_w window[t] (cos, -sin)(2 pi w t / fft_size), a_w =
    1/fft_size for bin 0 and bin fft_size // 2, else 2/fft_size, summed (an overlap-add),
    divided by the overlap-added squared window, and with `center` the fft_size // 2
    samples at each end cut: x (B, (frames - 1) * stride + fft_size - 2 * (fft_size // 2)
    if center). nnabla refuses the default pad_mode="reflect" unless as_stft_backward
    (give pad_mode="constant"), a fft_size that is not a multiple of stride, and a
    window whose overlap-add has a zero where it divides (NOLA). `as_stft_backward`
    computes stft's backward instead: stft's basis, no division, and the padding's
    backward of `pad_mode`. A composition: its gradients come from the parts."""
    op = "istft"
    window_type = _stft_checks(op, window_size, stride, fft_size, window_type, pad_mode,
                               as_stft_backward, "as_stft_backward")
    bins = fft_size // 2 + 1
    shapes = [getattr(y, "shape", None) for y in (y_r, y_i)]
    if not all(isinstance(y, Variable) for y in (y_r, y_i)) or len(shapes[0]) != 3 \
            or shapes[0] != shapes[1] or shapes[0][1] != bins:
        raise ValueError(f"F.istft: y_r and y_i must be Variables of one shape (batch_size, "
                         f"fft_size // 2 + 1 = {bins}, frames), got {shapes[0]} and "
                         f"{shapes[1]}")
    if fft_size % stride:
        raise ValueError(f"F.istft: fft_size={fft_size} must be a multiple of stride="
                         f"{stride} (nnabla's check)")
    if not as_stft_backward and pad_mode != "constant":
        raise ValueError(f"F.istft: pad_mode={pad_mode!r}: nnabla 1.39 refuses any pad_mode "
                         f"but 'constant' when as_stft_backward=False (it is unused then), "
                         f"the default 'reflect' too; give pad_mode='constant'")
    batch, _, frames = shapes[0]
    half = fft_size // 2
    size = (frames - 1) * stride + fft_size
    if center and size <= 2 * half:
        raise ValueError(f"F.istft: {frames} frame(s) of fft_size={fft_size} leave no sample "
                         f"once fft_size // 2 = {half} are cut at each end (center=True)")
    window = _stft_window(window_type, window_size, fft_size)
    w_cos, w_sin = _dft_basis(fft_size, window, inverse=not as_stft_backward)
    x = (deconvolution(y_r, w_cos, stride=(stride,))
         + deconvolution(y_i, w_sin, stride=(stride,)))
    x = reshape(x, (batch, size))
    if as_stft_backward:
        return _padding_backward(op, x, half, pad_mode) if center else x
    start, stop = (half, size - half) if center else (0, size)
    _nola(op, window_type, window_size, stride, fft_size, size, start, stop,
          "it divides by it (nnabla's check)")
    inverse = _overlap_added(window * window, frames, stride)
    return x[:, start:stop] / inverse[:, start:stop]


def _stft_checks(op, window_size, stride, fft_size, window_type, pad_mode, backward, name):
    for arg, value in (("window_size", window_size), ("stride", stride),
                       ("fft_size", fft_size)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"F.{op}: {arg}={value!r} must be a positive int")
    window_type = "rectangular" if window_type is None else window_type
    if window_type not in _WINDOWS:
        raise ValueError(f"F.{op}: window_type={window_type!r} is not one of nnabla's "
                         f"'hanning', 'hamming', 'rectangular' (or None)")
    if fft_size < window_size:
        raise ValueError(f"F.{op}: fft_size={fft_size} < window_size={window_size}: the FFT "
                         f"size has to be at least the window size (nnabla's check)")
    if pad_mode not in ("constant", "reflect", "repeat"):
        raise ValueError(f"F.{op}: pad_mode={pad_mode!r} is not one of nnabla's 'constant', "
                         f"'reflect' and 'repeat'")
    if not isinstance(backward, (bool, numpy.bool_)):
        raise TypeError(f"F.{op}: {name} must be True or False, got {backward!r}")
    return window_type


def _window_values(window_type: str, window_size: int, fft_size: int):
    """nnabla's window (fft_size,) in float64: the window_size values centred, zeros round."""
    i = numpy.arange(window_size)
    values = {"hanning": 0.5 - 0.5 * numpy.cos(2 * numpy.pi * i / window_size),
              "hamming": 0.54 - 0.46 * numpy.cos(2 * numpy.pi * i / window_size),
              "rectangular": numpy.ones(window_size)}[window_type]
    left = (fft_size - window_size) // 2
    return numpy.pad(values, (left, fft_size - window_size - left))


def _nola(op, window_type, window_size, stride, fft_size, size, start, stop, why):
    """nnabla's NOLA check: the overlap-added squared window is >= 1e-11 on [start, stop)."""
    squared = _window_values(window_type, window_size, fft_size) ** 2
    overlap = numpy.zeros(size)
    for i in range(0, size - fft_size + 1, stride):
        overlap[i:i + fft_size] += squared
    zeros = [i for i in range(start, stop) if not overlap[i] >= 1e-11]
    if zeros:
        raise ValueError(
            f"F.{op}: the NOLA (nonzero overlap-add) condition is not met: the overlap-added "
            f"squared {window_type} window (window_size={window_size}, stride={stride}, "
            f"fft_size={fft_size}) is 0 at sample {zeros[0]}, and {why}; "
            f"use center=True, a smaller stride, or the 'hamming' window")


def _stft_window(window_type: str, window_size: int, fft_size: int) -> Variable:
    """nnabla's window as a constant (1, 1, fft_size) of the graph."""
    i = arange(0, window_size)
    if window_type == "rectangular":
        values = constant(1, (window_size,))
    else:
        a, b = (0.5, 0.5) if window_type == "hanning" else (0.54, 0.46)
        values = a - b * _elementwise("cos", i * (2 * math.pi / window_size))
    left = (fft_size - window_size) // 2
    if fft_size > window_size:
        values = pad(values, (left, fft_size - window_size - left))
    return reshape(values, (1, 1, fft_size))


def _dft_basis(fft_size: int, window: Variable, inverse: bool):
    """The windowed (inverse) DFT basis (bins, 1, fft_size), as a constant of the graph:
    window[t] * (cos, -sin)(2 pi w t / fft_size), each row times a_w (see istft) when
    `inverse`. The phase w t is reduced mod fft_size first (exact), so float32 keeps it."""
    bins = fft_size // 2 + 1
    w = reshape(arange(0, bins), (bins, 1, 1))
    t = reshape(arange(0, fft_size), (1, 1, fft_size))
    phase = _elementwise("mod2", w * t, constant(fft_size, (1, 1, 1))) * (2 * math.pi
                                                                           / fft_size)
    w_cos = _elementwise("cos", phase) * window
    w_sin = -_elementwise("sin", phase) * window
    if inverse:
        ends = 1 / fft_size
        alpha = constant(ends, (1, 1, 1)) if bins == 1 else pad(
            constant(2 / fft_size, (bins - 2, 1, 1)), (1, 1, 0, 0, 0, 0), constant_value=ends)
        w_cos, w_sin = w_cos * alpha, w_sin * alpha
    return w_cos, w_sin


def _elementwise(name: str, *inputs) -> Variable:
    """F.<name> of an elementwise op (defined below, from the registry)."""
    return globals()[name](*inputs)


def _overlap_added(squared: Variable, frames: int, stride: int) -> Variable:
    """The squared window overlap-added over `frames` frames `stride` apart: (1, size)."""
    fft_size = squared.shape[-1]
    added = deconvolution(constant(1, (1, 1, frames)), reshape(squared, (1, 1, fft_size)),
                          stride=(stride,))
    return reshape(added, (1, added.shape[-1]))


def _padding_backward(op: str, g: Variable, width: int, mode: str) -> Variable:
    """The backward of pad(x, (width, width), mode) for x (B, L): each padded sample's g
    added into the sample it copies."""
    length = g.shape[1] - 2 * width
    inside = g[:, width:width + length]
    if width == 0 or mode == "constant":
        return inside
    if mode == "repeat":
        first = sum(g[:, :width], axis=1, keepdims=True)
        last = sum(g[:, width + length:], axis=1, keepdims=True)
        return inside + pad(first, (0, length - 1)) + pad(last, (length - 1, 0))
    if width >= length:
        raise ValueError(f"F.{op}: reflect padding of {width} samples at each end of "
                         f"{length} samples reflects more than once; as_stft_backward=True "
                         f"takes fft_size // 2 < the signal's length")
    before, after = flip(g[:, :width], axes=[1]), flip(g[:, width + length:], axes=[1])
    return inside + pad(before, (1, length - 1 - width)) + pad(after, (length - 1 - width, 1))


# --- patch_correlation: FlowNetC's correlation layer -----------------------------------------

__all__ += ["patch_correlation"]


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


# --- the functions of elementwise ops, from the registry ----------------------------------

def _elementwise_function(op: OpDef):
    """F.<op.name> as `op.api` describes it: nnabla's signature (what `inspect.signature`
    and `help` show), its scalars checked with `number`, its ignored arguments accepted."""
    api = op.api
    plain = inspect.Parameter.POSITIONAL_OR_KEYWORD
    signature = inspect.Signature(
        [inspect.Parameter(name, plain) for name in api.inputs]
        + [inspect.Parameter(name, plain, default=default)
           for name, default in (*api.scalars, *api.ignored)])
    n_inputs, n_parameters = len(api.inputs), len(signature.parameters)
    scalar_names = [name for name, _ in api.scalars]
    scalar_defaults = tuple(default for _, default in api.scalars)

    def function(*args, **kwargs):
        if kwargs or not n_inputs <= len(args) <= n_parameters:
            # Signature.bind is exact but slow (a third of a call): only for keywords
            # and for wrong calls
            try:
                given = signature.bind(*args, **kwargs).arguments
            except TypeError as error:
                raise TypeError(f"F.{op.name}: {error}; its arguments are "
                                f"F.{op.name}{signature}") from None
            args = [given[name] for name in api.inputs]
            args += [given.get(name, default) for name, default in api.scalars]
        scalars = (*args[n_inputs:n_inputs + len(scalar_names)],
                   *scalar_defaults[len(args) - n_inputs:])
        attrs = {name: number(value, op.name, name)
                 for name, value in zip(scalar_names, scalars, strict=True)}
        return _record(op.name, tuple(args[:n_inputs]), **attrs)

    function.__name__ = function.__qualname__ = op.name
    function.__doc__ = api.doc
    function.__signature__ = signature
    return function


def _add_elementwise_functions() -> list[str]:
    """Define F.<name> for every op with an `api`; a function written above wins."""
    namespace = globals()
    added = []
    for op in OPS.values():
        if op.api is None:
            continue
        existing = namespace.get(op.name)
        if existing is None:
            namespace[op.name] = _elementwise_function(op)
            added.append(op.name)
        elif getattr(existing, "__module__", None) != __name__:
            raise ImportError(f"F.{op.name}: the op's name is taken in {__name__} by "
                              f"{existing!r}; rename that import")
    return added


__all__ += _add_elementwise_functions()


def _imperatively(function):
    """`function` on NdArrays (nnabla's imperative mode): computed at once, under
    auto-forward, on Variables holding the NdArrays' values (float32 arrays shared,
    others copied as float32), its result(s) returned as NdArrays. Variables among the
    arguments (a PF layer's parameters, with an NdArray input) take part with their
    current values, as in nnabla; no graph is recorded on them."""

    @functools.wraps(function)
    def call(*args, **kwargs):
        if not any(isinstance(a, NdArray) for a in (*args, *kwargs.values())):
            return function(*args, **kwargs)

        def leaf(value):
            if isinstance(value, Variable):
                _ = value.d  # (an intermediate's values computed, if they are not)
                return value.get_unlinked_variable(need_grad=False)
            if not isinstance(value, NdArray):
                return value
            if value.dtype == numpy.float32:
                return Variable.of_array(value)
            return Variable.from_numpy_array(value.data)

        with dynamic.auto_forward():
            result = function(*(leaf(a) for a in args),
                              **{key: leaf(v) for key, v in kwargs.items()})
        if isinstance(result, (tuple, list)):
            return type(result)(NdArray.view(v._storage, "data") for v in result)
        return NdArray.view(result._storage, "data")

    return call


for _name in __all__:
    globals()[_name] = _imperatively(globals()[_name])
