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


# --- convolution (nnabla's: a cross-correlation of zero-padded inputs) --------------------
# x (N, C, *L), w (O, C/group, *K), y (N, O, *M) with M = (L + 2*pad - dilation*(K - 1) -
# 1) // stride + 1 per spatial axis; output channel o reads the input channels of its group
# (o // (O/group)). Per group:
#     y[n, o, m] = sum over c, k of w[o, c, k] * xpad[n, c, m*stride + k*dilation]


def conv_padded(x, pad):
    """x (N, C, *L) with pad[i] zeros before and after spatial axis i (x itself without
    padding)."""
    if not any(pad):
        return x
    size = x.shape[2:]
    padded = numpy.zeros(x.shape[:2] + tuple(n + 2 * p for n, p in zip(size, pad, strict=True)),
                         dtype=x.dtype)
    inside = tuple(slice(p, p + n) for n, p in zip(size, pad, strict=True))
    padded[(slice(None), slice(None)) + inside] = x
    return padded


def conv_windows(x, kernel, stride, dilation, writeable=False):
    """im2col without a copy: the strided view of x (N, C, *L) of shape (*K, N, C, *M) with
    windows[k][n, c, m] = x[n, c, m*stride + k*dilation] (per spatial axis)."""
    spatial = x.strides[2:]
    out = tuple((n - d * (k - 1) - 1) // s + 1
                for n, k, s, d in zip(x.shape[2:], kernel, stride, dilation, strict=True))
    return numpy.lib.stride_tricks.as_strided(
        x, tuple(kernel) + x.shape[:2] + out,
        tuple(t * d for t, d in zip(spatial, dilation, strict=True)) + x.strides[:2]
        + tuple(t * s for t, s in zip(spatial, stride, strict=True)), writeable=writeable)


def conv_forward(x, w, pad, stride, dilation, group):
    """nnabla's convolution of x (N, C, *L) with w (O, C/group, *K), per group:
    y[n, o, m] = sum over c, k of w[o, c, k] * xpad[n, c, m*stride + k*dilation], one
    tensordot (a matrix product) of w with the windows (im2col) per group."""
    rank, outs, ins = len(pad), w.shape[0] // group, w.shape[1]
    padded = conv_padded(x, pad)
    y = None
    for j in range(group):
        windows = conv_windows(padded[:, j * ins:(j + 1) * ins], w.shape[2:], stride, dilation)
        # (outs, ins, *K) . (*K, N, ins, *M) over ins and K -> (outs, N, *M)
        part = numpy.tensordot(w[j * outs:(j + 1) * outs], windows,
                               axes=(tuple(range(1, rank + 2)), (rank + 1, *range(rank))))
        if y is None:
            y = numpy.empty((x.shape[0], w.shape[0]) + part.shape[2:], dtype=part.dtype)
        y[:, j * outs:(j + 1) * outs] = numpy.moveaxis(part, 0, 1)
    return y


def conv_grad_x(dy, w, x_shape, pad, stride, dilation, group):
    """d loss / d x of conv_forward, dy being d loss / d y (col2im), per group:
    dxpad[n, c, m*stride + k*dilation] += sum over o of dy[n, o, m] * w[o, c, k].
    One tensordot per group gives the columns w.T dy; they are added into dxpad through
    its windows' view, one kernel position k at a time (within one position the windows
    do not overlap); dx is dxpad without the padding."""
    rank, outs, ins, kernel = len(pad), w.shape[0] // group, w.shape[1], w.shape[2:]
    size = tuple(n + 2 * p for n, p in zip(x_shape[2:], pad, strict=True))
    padded = numpy.zeros(tuple(x_shape[:2]) + size, dtype=numpy.result_type(dy, w))
    for j in range(group):
        # (outs, ins, *K) . (N, outs, *M) over outs -> (ins, *K, N, *M) -> (*K, N, ins, *M)
        columns = numpy.moveaxis(numpy.tensordot(w[j * outs:(j + 1) * outs],
                                                 dy[:, j * outs:(j + 1) * outs], axes=(0, 1)),
                                 0, rank + 1)
        windows = conv_windows(padded[:, j * ins:(j + 1) * ins], kernel, stride, dilation,
                               writeable=True)
        for k in numpy.ndindex(*kernel):
            windows[k] += columns[k]
    if not any(pad):
        return padded
    return padded[(slice(None), slice(None))
                  + tuple(slice(p, p + n) for n, p in zip(x_shape[2:], pad, strict=True))]


def conv_grad_w(x, dy, w_shape, pad, stride, dilation, group):
    """d loss / d w of conv_forward, dy being d loss / d y, per group:
    dw[o, c, k] = sum over n, m of dy[n, o, m] * xpad[n, c, m*stride + k*dilation], one
    matrix product of dy (outs, N*M) with the windows (im2col) per group."""
    rank, outs, ins = len(pad), w_shape[0] // group, w_shape[1]
    padded = conv_padded(x, pad)
    dw = numpy.empty(w_shape, dtype=numpy.result_type(x, dy))
    for j in range(group):
        windows = conv_windows(padded[:, j * ins:(j + 1) * ins], w_shape[2:], stride, dilation)
        # (*K, N, ins, *M) -> (ins*K, N*M) and (N, outs, *M) -> (outs, N*M), each copied with
        # M innermost, where both are contiguous (in the other order the copies gather)
        order = (rank + 1, *range(rank + 1), *range(rank + 2, 2 * rank + 2))
        columns = numpy.reshape(numpy.transpose(windows, order), (int(numpy.prod(w_shape[1:])), -1))
        grads = numpy.reshape(numpy.moveaxis(dy[:, j * outs:(j + 1) * outs], 1, 0), (outs, -1))
        dw[j * outs:(j + 1) * outs] = numpy.reshape(grads @ columns.T, (outs, *w_shape[1:]))
    return dw
