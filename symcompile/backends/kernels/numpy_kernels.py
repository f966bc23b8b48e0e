"""Kernels of the NumPy backend: the helpers a generated NumPy module may call.

Each function here is copied, by its source, into the modules that use it (see
`symcompile.backends.base.Kernels`): it may use only `numpy`, builtins and its own
arguments.
"""

import numpy

# shared with every backend; inlined from there where a module calls it
from symcompile.backends.kernels.portable_kernels import conv_output_size, pool_geometry


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


def conv_padded(x, pad, rows=0):
    """x (N, C, *L) with pad[i] zeros before and after spatial axis i (x itself without
    padding), and `rows` more zero rows after the last-but-one spatial axis (the slack
    conv_wide_windows reads past the last row)."""
    if not any(pad) and not rows:
        return x
    size = x.shape[2:]
    padded_size = [n + 2 * p for n, p in zip(size, pad, strict=True)]
    if rows:
        padded_size[-2] += rows
    padded = numpy.zeros(x.shape[:2] + tuple(padded_size), dtype=x.dtype)
    inside = tuple(slice(p, p + n) for n, p in zip(size, pad, strict=True))
    padded[(slice(None), slice(None)) + inside] = x
    return padded


def conv_windows(x, kernel, stride, dilation, writeable=False):
    """im2col without a copy: the strided view of x (N, C, *L) of shape (*K, N, C, *M) with
    windows[k][n, c, m] = x[n, c, m*stride + k*dilation] (per spatial axis)."""
    spatial = x.strides[2:]
    out = conv_output_size(x.shape[2:], kernel, (0,) * len(kernel), stride, dilation)
    return numpy.lib.stride_tricks.as_strided(
        x, tuple(kernel) + x.shape[:2] + out,
        tuple(t * d for t, d in zip(spatial, dilation, strict=True)) + x.strides[:2]
        + tuple(t * s for t, s in zip(spatial, stride, strict=True)), writeable=writeable)


def conv_wide_rows(size, kernel, pad, stride, dilation):
    """The zero rows conv_wide_windows needs after the padded input (L = size), or -1
    where wide windows do not apply (one spatial axis, or a stride along the last one).

    Wide windows: with stride 1 along the last axis, output rows are computed Wp wide (the
    padded width) instead of M; then each kernel position reads one contiguous run of
    the flattened image per window row, so the im2col copies and col2im additions run
    over rows of Wp elements, not M (NumPy's cost per row dominates for small images).
    The Wp - M extra outputs per row read across the row's end and are dropped; their
    last ones read (K - 1) * dilation elements past the image, into these rows.

    Only for outputs at most 16 wide: measured (3x3 and 5x5 kernels, 1 thread), forward
    and both gradients are 10-40 % faster at widths 8 to 16, and up to 20 % slower at 28
    and more, where rows are long already and the extra outputs cost more than they save."""
    if len(size) < 2 or stride[-1] != 1:
        return -1
    width = size[-1] + 2 * pad[-1]
    if width - dilation[-1] * (kernel[-1] - 1) > 16:
        return -1
    return -(-(dilation[-1] * (kernel[-1] - 1)) // width)


def conv_wide_windows(padded, kernel, stride, dilation, rows, writeable=False):
    """The windows of conv_windows computed Wp wide (see conv_wide_rows): the view of
    `padded` (N, C, *Lp with `rows` extra rows) of shape (*K, N, C, *M[:-1], Wp) with
    windows[k][n, c, m] = padded[n, c, m*stride + k*dilation], the last axis read flat
    (past Wp into the next row)."""
    spatial = padded.strides[2:]
    size = padded.shape[2:-2] + (padded.shape[-2] - rows, padded.shape[-1])
    out = conv_output_size(size, kernel, (0,) * len(kernel), stride, dilation)
    return numpy.lib.stride_tricks.as_strided(
        padded, tuple(kernel) + padded.shape[:2] + out[:-1] + (size[-1],),
        tuple(t * d for t, d in zip(spatial, dilation, strict=True)) + padded.strides[:2]
        + tuple(t * s for t, s in zip(spatial, stride, strict=True)), writeable=writeable)


def conv_forward(x, w, pad, stride, dilation, group):
    """nnabla's convolution of x (N, C, *L) with w (O, C/group, *K), per group:
    y[n, o, m] = sum over c, k of w[o, c, k] * xpad[n, c, m*stride + k*dilation], one
    tensordot (a matrix product) of w with the windows (im2col) per group, over wide
    windows where they apply (conv_wide_rows; the extra outputs are dropped)."""
    rank, outs, ins, kernel = len(pad), w.shape[0] // group, w.shape[1], w.shape[2:]
    rows = conv_wide_rows(x.shape[2:], kernel, pad, stride, dilation)
    padded = conv_padded(x, pad, max(rows, 0))
    y = None
    for j in range(group):
        part = padded[:, j * ins:(j + 1) * ins]
        if rows < 0:
            windows = conv_windows(part, kernel, stride, dilation)
        else:
            windows = conv_wide_windows(part, kernel, stride, dilation, rows)
        # (outs, ins, *K) . (*K, N, ins, *M) over ins and K -> (outs, N, *M)
        part = numpy.tensordot(w[j * outs:(j + 1) * outs], windows,
                               axes=(tuple(range(1, rank + 2)), (rank + 1, *range(rank))))
        if y is None:
            out = conv_output_size(x.shape[2:], kernel, pad, stride, dilation)
            y = numpy.empty((x.shape[0], w.shape[0]) + out, dtype=part.dtype)
        y[:, j * outs:(j + 1) * outs] = numpy.moveaxis(part, 0, 1)[..., :y.shape[-1]]
    return y


def conv_widened(dy, width):
    """dy (N, O, *M) with zeros appended along its last axis up to `width` (the outputs
    of wide windows that are dropped get no gradient)."""
    if dy.shape[-1] == width:
        return dy
    wide = numpy.zeros(dy.shape[:-1] + (width,), dtype=dy.dtype)
    wide[..., :dy.shape[-1]] = dy
    return wide


def conv_grad_x(dy, w, x_shape, pad, stride, dilation, group):
    """d loss / d x of conv_forward, dy being d loss / d y (col2im), per group:
    dxpad[n, c, m*stride + k*dilation] += sum over o of dy[n, o, m] * w[o, c, k].
    One tensordot per group gives the columns w.T dy; they are added into dxpad through
    its windows' view, one kernel position k at a time (within one position the windows
    do not overlap), over wide windows where they apply (dy widened with zeros); dx is
    dxpad without the padding."""
    rank, outs, ins, kernel = len(pad), w.shape[0] // group, w.shape[1], w.shape[2:]
    rows = conv_wide_rows(tuple(x_shape[2:]), kernel, pad, stride, dilation)
    size = [n + 2 * p for n, p in zip(x_shape[2:], pad, strict=True)]
    if rows > 0:
        size[-2] += rows
    padded = numpy.zeros(tuple(x_shape[:2]) + tuple(size), dtype=numpy.result_type(dy, w))
    if rows >= 0:
        dy = conv_widened(dy, size[-1])
    for j in range(group):
        # (outs, ins, *K) . (N, outs, *M) over outs -> (ins, *K, N, *M) -> (*K, N, ins, *M)
        columns = numpy.moveaxis(numpy.tensordot(w[j * outs:(j + 1) * outs],
                                                 dy[:, j * outs:(j + 1) * outs], axes=(0, 1)),
                                 0, rank + 1)
        part = padded[:, j * ins:(j + 1) * ins]
        if rows < 0:
            windows = conv_windows(part, kernel, stride, dilation, writeable=True)
        else:
            windows = conv_wide_windows(part, kernel, stride, dilation, rows, writeable=True)
        for k in numpy.ndindex(*kernel):
            windows[k] += columns[k]
    inside = tuple(slice(p, p + n) for n, p in zip(x_shape[2:], pad, strict=True))
    if not any(pad) and rows <= 0:
        return padded
    return padded[(slice(None), slice(None)) + inside]


def conv_grad_w(x, dy, w_shape, pad, stride, dilation, group):
    """d loss / d w of conv_forward, dy being d loss / d y, per group:
    dw[o, c, k] = sum over n, m of dy[n, o, m] * xpad[n, c, m*stride + k*dilation], one
    matrix product of dy (outs, N*M) with the windows (im2col) per group, over wide
    windows where they apply (dy widened with zeros, so the extra outputs add nothing)."""
    rank, outs, ins, kernel = len(pad), w_shape[0] // group, w_shape[1], tuple(w_shape[2:])
    rows = conv_wide_rows(x.shape[2:], kernel, pad, stride, dilation)
    padded = conv_padded(x, pad, max(rows, 0))
    if rows >= 0:
        dy = conv_widened(dy, padded.shape[-1])
    dw = numpy.empty(w_shape, dtype=numpy.result_type(x, dy))
    for j in range(group):
        part = padded[:, j * ins:(j + 1) * ins]
        if rows < 0:
            windows = conv_windows(part, kernel, stride, dilation)
        else:
            windows = conv_wide_windows(part, kernel, stride, dilation, rows)
        # (*K, N, ins, *M) -> (ins*K, N*M) and (N, outs, *M) -> (outs, N*M), each copied with
        # M innermost, where both are contiguous (in the other order the copies gather)
        order = (rank + 1, *range(rank + 1), *range(rank + 2, 2 * rank + 2))
        columns = numpy.reshape(numpy.transpose(windows, order), (int(numpy.prod(w_shape[1:])), -1))
        grads = numpy.reshape(numpy.moveaxis(dy[:, j * outs:(j + 1) * outs], 1, 0), (outs, -1))
        dw[j * outs:(j + 1) * outs] = numpy.reshape(grads @ columns.T, (outs, *w_shape[1:]))
    return dw


# --- pooling (nnabla's max, sum and average pooling) ---------------------------------------
# x (*maps, *L) pooled over its last len(kernel) axes; output m reads the window
# [m*stride - pad, m*stride - pad + kernel) per axis, clipped to the input. The maps are
# flattened into one axis, the input padded (-inf for max, zeros otherwise) so that each
# window is whole, and the windows read through conv_windows (dilation 1).



def pool_padded(x, rank, before, after, fill):
    """x (*maps, *L) as (1, maps, *L), with before[i] and after[i] `fill` values around
    pooled axis i."""
    size = x.shape[x.ndim - rank:]
    x = numpy.reshape(x, (1, -1) + size)
    if not any(before) and not any(after):
        return x
    padded_size = tuple(b + n + a for n, b, a in zip(size, before, after, strict=True))
    padded = numpy.full(x.shape[:2] + padded_size, fill, dtype=x.dtype)
    inside = tuple(slice(b, b + n) for n, b in zip(size, before, strict=True))
    padded[(slice(None), slice(None)) + inside] = x
    return padded


def pool_cropped(padded, x_shape, pad):
    """The inverse of pool_padded: the input's part of `padded`, shaped as x_shape."""
    rank = len(pad)
    inside = tuple(slice(p, p + n) for n, p in zip(x_shape[len(x_shape) - rank:], pad, strict=True))
    return numpy.reshape(padded[(slice(None), slice(None)) + inside], x_shape)


def pool_max(x, kernel, stride, pad, ignore_border):
    """The maximum of each window, padding ignored: the elementwise maximum of what each
    kernel position reads (prod(kernel) passes over the output, each reading a strided
    view, where a reduction over the window axes of the view would be far slower)."""
    rank = len(kernel)
    out, after = pool_geometry(x.shape[x.ndim - rank:], kernel, stride, pad, ignore_border)
    windows = conv_windows(pool_padded(x, rank, pad, after, -numpy.inf), kernel, stride,
                           (1,) * rank)
    y = None
    for k in numpy.ndindex(*kernel):
        y = windows[k].copy() if y is None else numpy.maximum(y, windows[k], out=y)
    return numpy.reshape(y, x.shape[:x.ndim - rank] + out)


def pool_max_grad(x, dy, kernel, stride, pad, ignore_border):
    """d loss / d x of pool_max: each window's dy added at its first maximum in C order.
    With the windows' maxima, kernel position k takes dy where it holds the maximum and no
    earlier position did (boolean masks: a few fast passes per position, where an index
    of the first maximum took a slow masked copy), added (or, when windows do not
    overlap, written) through the writable windows view of the padded gradient (within
    one position the windows do not overlap)."""
    rank = len(kernel)
    out, after = pool_geometry(x.shape[x.ndim - rank:], kernel, stride, pad, ignore_border)
    padded = pool_padded(x, rank, pad, after, -numpy.inf)
    windows = conv_windows(padded, kernel, stride, (1,) * rank)
    positions = list(numpy.ndindex(*kernel))
    best = windows[positions[0]].copy()
    for k in positions[1:]:
        numpy.maximum(best, windows[k], out=best)
    dy = numpy.reshape(dy, best.shape)
    grad = numpy.zeros(padded.shape, dtype=numpy.result_type(x, dy))
    spread = conv_windows(grad, kernel, stride, (1,) * rank, writeable=True)
    apart = bool(numpy.all(numpy.greater_equal(stride, kernel)))
    open_ = numpy.ones(best.shape, dtype=bool)  # windows whose maximum is not yet taken
    hit = numpy.empty(best.shape, dtype=bool)
    for k in positions:
        numpy.equal(windows[k], best, out=hit)
        numpy.logical_and(hit, open_, out=hit)
        numpy.logical_xor(open_, hit, out=open_)
        if apart:
            numpy.multiply(dy, hit, out=spread[k])
        else:
            spread[k] += dy * hit
    return pool_cropped(grad, x.shape, pad)


def pool_sum(x, kernel, stride, pad, ignore_border):
    """The sum of each window, padding zeros: the elementwise sum of what each kernel
    position reads (see pool_max)."""
    rank = len(kernel)
    out, after = pool_geometry(x.shape[x.ndim - rank:], kernel, stride, pad, ignore_border)
    windows = conv_windows(pool_padded(x, rank, pad, after, 0), kernel, stride, (1,) * rank)
    y = None
    for k in numpy.ndindex(*kernel):
        y = windows[k].copy() if y is None else numpy.add(y, windows[k], out=y)
    return numpy.reshape(y, x.shape[:x.ndim - rank] + out)


def pool_sum_grad(dy, x_shape, kernel, stride, pad, ignore_border):
    """d loss / d x of pool_sum: each window's dy added to the window's elements, one
    kernel position at a time through the writable windows view."""
    rank = len(kernel)
    size = tuple(x_shape[len(x_shape) - rank:])
    out, after = pool_geometry(size, kernel, stride, pad, ignore_border)
    maps = int(numpy.prod(x_shape[:len(x_shape) - rank], dtype=numpy.int64))
    padded_size = tuple(p + n + a for n, p, a in zip(size, pad, after, strict=True))
    grad = numpy.zeros((1, maps) + padded_size, dtype=dy.dtype)
    spread = conv_windows(grad, kernel, stride, (1,) * rank, writeable=True)
    dy = numpy.reshape(dy, spread.shape[rank:])
    for k in numpy.ndindex(*kernel):
        spread[k] += dy
    return pool_cropped(grad, tuple(x_shape), pad)


def pool_divisor(size, kernel, stride, pad, ignore_border, including_pad, dtype):
    """What average pooling divides each window's sum by, of shape out: the window's size
    clipped to [-pad, L + pad) (including_pad) or to the input [0, L), per axis, the
    product over the axes."""
    out, _ = pool_geometry(size, kernel, stride, pad, ignore_border)
    divisor = numpy.ones((), dtype=dtype)
    for m, n, k, s, p in zip(out, size, kernel, stride, pad, strict=True):
        start = numpy.arange(m) * s - p
        if including_pad:
            length = numpy.minimum(start + k, n + p) - start
        else:
            length = numpy.minimum(start + k, n) - numpy.maximum(start, 0)
        divisor = numpy.multiply.outer(divisor, length.astype(dtype))
    return divisor


def pool_average(x, kernel, stride, pad, ignore_border, including_pad):
    """The sum of each window divided by pool_divisor."""
    rank = len(kernel)
    divisor = pool_divisor(x.shape[x.ndim - rank:], kernel, stride, pad, ignore_border,
                           including_pad, x.dtype)
    return pool_sum(x, kernel, stride, pad, ignore_border) / divisor


def pool_average_grad(dy, x_shape, kernel, stride, pad, ignore_border, including_pad):
    """d loss / d x of pool_average: pool_sum_grad of dy / pool_divisor."""
    rank = len(kernel)
    divisor = pool_divisor(tuple(x_shape[len(x_shape) - rank:]), kernel, stride, pad,
                           ignore_border, including_pad, dy.dtype)
    return pool_sum_grad(dy / divisor, x_shape, kernel, stride, pad, ignore_border)


def slice_grad(dy, x_shape, start, step):
    """The transpose of the slice x[start::step] (per axis; its stop follows from dy's
    shape): dy where the slice read x, zeros elsewhere."""
    dx = numpy.zeros(x_shape, dtype=dy.dtype)
    dx[tuple(slice(b, b + s * (m - 1) + 1, s)
             for b, s, m in zip(start, step, dy.shape, strict=True))] = dy
    return dx


def pad_constant(x, before, after, value):
    """x with before[i] and after[i] elements equal to `value` around axis i."""
    return numpy.pad(x, tuple(zip(before, after, strict=True)), constant_values=value)


def random_generator(rng):
    """The generator a function draws dropout's masks from: `rng` itself if it is a
    numpy.random.Generator, else one seeded with it (an int, or None for fresh entropy)."""
    return numpy.random.default_rng(rng)


def random_mask(rng, shape, keep, dtype):
    """1 with probability `keep`, else 0 (dropout's mask), drawn from `rng` (as doubles,
    so that both backends draw the same masks from one seed)."""
    return (rng.random(shape) < keep).astype(dtype)


def random_uniform(rng, shape, low, high, dtype):
    """Uniform in [low, high), drawn from `rng` (F.rand)."""
    return rng.uniform(low, high, shape).astype(dtype)


def random_normal(rng, shape, mu, sigma, dtype):
    """Normal with mean mu and standard deviation sigma, drawn from `rng` (F.randn)."""
    return rng.normal(mu, sigma, shape).astype(dtype)


def random_integers(rng, shape, low, high, dtype):
    """Integers in [low, high), drawn from `rng`, as numbers of `dtype` (F.randint)."""
    return rng.integers(int(low), int(high), shape).astype(dtype)
