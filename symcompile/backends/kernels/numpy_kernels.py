"""Kernels of the NumPy backend: the helpers a generated NumPy module may call.

Each function here is copied, by its source, into the modules that use it (see
`symcompile.backends.base.Kernels`): it may use only `numpy`, builtins and its own
arguments.
"""

import numpy


def class_labels(function, argument, value, shape, classes):
    """`value` as integer class labels, truncated towards zero as nnabla reads them (1.7 is
    class 1): each must name one of `classes` classes, or be -1 (the sample is ignored).
    Raises ValueError otherwise (NaN and infinities included)."""
    if not isinstance(value, numpy.ndarray) or value.shape != shape \
            or value.dtype.kind not in "fiu":
        got = value.shape if isinstance(value, numpy.ndarray) else type(value).__name__
        raise ValueError(f"{function}(): argument {argument!r} must be a numpy.ndarray of class "
                         f"labels of shape {shape}, got {got}")
    if value.dtype.kind == "f":
        bad = ~((value > -2) & (value < classes))  # truncates into -1..classes-1; not NaN
    else:
        bad = (value < -1) | (value >= classes)
    if bad.any():
        where = tuple(int(i) for i in numpy.unravel_index(numpy.argmax(bad), bad.shape))
        raise ValueError(f"{function}(): argument {argument!r} holds {value[where].item()!r} at "
                         f"index {where}; class labels must be integers from 0 to {classes - 1}, "
                         f"or -1 to ignore a sample")
    return value.astype(numpy.int64)


def require_finite(parameter, gradient):
    """Raise FloatingPointError naming `parameter` if its gradient holds NaN or Inf."""
    finite = numpy.isfinite(gradient)
    if not finite.all():
        where = tuple(int(i) for i in numpy.unravel_index(numpy.argmin(finite), finite.shape))
        raise FloatingPointError(
            f"the gradient of {parameter!r} is {gradient[where]} at index {where}; no "
            f"parameter was updated. Look for NaN or Inf in the inputs, a learning rate "
            f"that is too large, or log/division of zero")
