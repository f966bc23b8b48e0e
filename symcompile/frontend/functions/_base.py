"""What every F function shares: recording a node (`_record`) and the checks of nnabla's
arguments (axes, per-axis tuples, flags, layouts) that several families use.
"""

from __future__ import annotations

import numbers

import numpy

from symcompile.frontend import dynamic
from symcompile.frontend.variable import Function, Variable
from symcompile.ir import callsite
from symcompile.ops.registry import OPS, normalize_axes, number

__all__ = []

def _record(op_name: str, inputs: tuple, communicator=None, **attrs) -> Variable:
    """Check the inputs of `op_name`, infer its output shape and add the node (whose code
    sums values over the processes of `communicator`, if given)."""
    op = OPS[op_name]
    for position, var in enumerate(inputs):
        if not isinstance(var, Variable):
            kind = type(var).__name__
            hint = (" Wrap arrays with nn.Variable.from_numpy_array(array)."
                    if hasattr(var, "shape") else "")
            raise TypeError(f"F.{op_name}: input {position} must be a Variable, got {kind}.{hint}")
    shape = op.infer_shape(tuple(v.shape for v in inputs), attrs)
    site = callsite.capture()
    func = Function(op, tuple(inputs), attrs, site, communicator)
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


def _layout(channel_last) -> dict:
    """The node attribute of nnabla's channel_last: recorded when True (the channels
    are the input's last axis; `ops.layout`)."""
    return {"channel_last": True} if channel_last else {}


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


def _updated_in_place(op: str, setting: str, **variables: Variable) -> None:
    """Refuse an intermediate among `variables` (by name): with `setting` the forward pass
    updates each in place, so each must be a leaf (a parameter)."""
    for name, var in variables.items():
        if var.parent is not None:
            raise ValueError(f"F.{op}: with {setting} the forward pass updates {name} in place, "
                             f"so it must be a leaf Variable (a parameter), not the output of "
                             f"{var.parent.name}")


def _batch_normalization(op, x, beta, gamma, mean, variance, z, axes, decay_rate, eps,
                         batch_stat, output_stat, communicator=None, group=None) -> Variable:
    """The `op` node (batch_normalization, fused_batch_normalization with residual `z`,
    or sync_batch_normalization over the processes of `communicator`'s `group`) after
    nnabla's checks of its arguments; with `output_stat`, (y, the batch's mean, its biased
    variance), the two statistics differentiable as nnabla's are."""
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
    if group is not None:
        attrs["group"] = group
    y = _record(op, inputs, communicator, **attrs)
    if not output_stat:
        return y
    if group is not None:  # (the statistics of every process's batch)
        return y, *(_record("sync_batch_statistic", (x,), communicator, axes=attrs["axes"],
                            group=group, statistic=statistic)
                    for statistic in ("mean", "variance"))
    reduced = tuple(a for a in range(x.ndim) if a not in attrs["axes"])
    batch_mean = _reduction("mean", x, reduced, True)
    squares = _record("pow_scalar", (_record("sub2", (x, batch_mean)),),
                      val=number(2, "pow_scalar", "val"))
    return y, batch_mean, _reduction("mean", squares, reduced, True)


def _reduced_axes(op: str, axes, x) -> tuple[int, ...]:
    """nnabla's `axes` of a reduction: None all, an int one, a list those (an empty list
    none, whatever nnabla's docs say: its kernels then reduce nothing)."""
    if axes is None:
        return tuple(range(x.ndim))
    return normalize_axes(op, [axes] if isinstance(axes, numbers.Integral) else list(axes),
                          x.shape)


def _int_argument(op: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"F.{op}: {name} must be an int, got {value!r}")
    return int(value)


def _base_axis(op: str, x, base_axis) -> int:
    """nnabla's base_axis of `x`, negative counted from the end, checked."""
    base = _int_argument(op, "base_axis", base_axis)
    if not -len(x.shape) <= base < len(x.shape):
        raise ValueError(f"F.{op}: base_axis {base} is out of range for an input of shape "
                         f"{x.shape} (valid: {-len(x.shape)}..{len(x.shape) - 1})")
    return base % len(x.shape)


def _flag(op: str, name: str, value) -> bool:
    """A bool argument of nnabla's (sign, ste_fine_grained, ...): True or False only, so
    that a bit width given in its place is not read as a flag."""
    if not isinstance(value, (bool, numpy.bool_)):
        raise TypeError(f"F.{op}: {name} must be True or False, got {value!r}")
    return bool(value)
