"""Kernels of the NumPy backend: the helpers a generated NumPy module may call.

Each function here is copied, by its source, into the modules that use it (see
`symcompile.backends.base.Kernels`): it may use only `numpy`, builtins and its own
arguments.
"""

import numpy

# shared with every backend; inlined from there where a module calls it
from symcompile.backends.kernels.portable_kernels import (
    conv_output_size,
    inq_sort_order,
    pool_geometry,
    refuse_count_change,
    shift_overlap,
)


def index_array(function, argument, value, shape, what):
    """Raise ValueError unless `value` is a numpy.ndarray of numbers of `shape` (`what`
    it holds names it: class labels, indices)."""
    if not isinstance(value, numpy.ndarray) or value.shape != shape \
            or value.dtype.kind not in "fiu":
        got = value.shape if isinstance(value, numpy.ndarray) else type(value).__name__
        raise ValueError(f"{function}(): argument {argument!r} must be a numpy.ndarray of "
                         f"{what} of shape {shape}, got {got}")


def first_outside(value, low, high):
    """The index of the first element of `value` that is not an integer in [low, high)
    once truncated towards zero as nnabla reads it (NaN and infinities included), or
    None; `low` and `high` broadcast against `value`."""
    if value.dtype.kind == "f":
        bad = ~((value > low - 1) & (value < high))  # truncates into the range; not NaN
    else:
        bad = (value < low) | (value >= high)
    if not bad.any():
        return None
    return tuple(int(i) for i in numpy.unravel_index(numpy.argmax(bad), bad.shape))


def class_labels(function, argument, value, shape, classes, ignore=True):
    """`value` as integer class labels, truncated towards zero as nnabla reads them (1.7 is
    class 1): each must name one of `classes` classes, or be -1 (the sample is ignored)
    where `ignore` (indices may not). Raises ValueError otherwise (NaN and infinities
    included)."""
    index_array(function, argument, value, shape, "class labels")
    where = first_outside(value, -1 if ignore else 0, classes)
    if where is not None:
        rule = (f"class labels must be integers from 0 to {classes - 1}, or -1 to ignore a "
                f"sample" if ignore else f"indices must be integers from 0 to {classes - 1}")
        raise ValueError(f"{function}(): argument {argument!r} holds {value[where].item()!r} at "
                         f"index {where}; {rule}")
    return value.astype(numpy.int64)


def nd_indices(function, argument, value, shape, rows, reader=""):
    """`value` as integer N-d indices (F.gather_nd's, (M, ...): row m indexes axis m of an
    array), truncated towards zero as nnabla reads them: row m must hold integers in
    [rows[m][0], rows[m][1]) (nnabla's [-n, n) for an axis of n, negative ones counting
    from its end), for the functions `reader` names. Raises ValueError otherwise (NaN
    and infinities included)."""
    index_array(function, argument, value, shape, "indices")
    per_row = (len(rows),) + (1,) * (len(shape) - 1)
    where = first_outside(value, numpy.reshape([a for a, _ in rows], per_row),
                          numpy.reshape([b for _, b in rows], per_row))
    if where is not None:
        a, b = rows[where[0]]
        raise ValueError(f"{function}(): argument {argument!r} holds {value[where].item()!r} at "
                         f"index {where}; row {where[0]} indexes axis {where[0]} (for "
                         f"{reader}): it must hold integers from {a} to {b - 1}")
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
    y[n, o, m] = sum over c, k of w[o, c, k] * xpad[n, c, m*stride + k*dilation].

    Without groups, the product of w with x's im2col matrix (conv_matmul of im2col) a
    chunk of samples at a time: each chunk's matrix is at most 2**20 elements, so the
    matrix of the whole batch is never held and each chunk's stays in the cache from its
    copy to its product. With groups, one tensordot (a matrix product) of w with the
    windows (im2col) per group, over wide windows where they apply (conv_wide_rows; the
    extra outputs are dropped). Measured (1 thread, float32, ms; by one tensordot with
    the windows / by chunks of at most 2**18, 2**20, 2**22 elements / the whole batch's
    matrix): (64, 32, 32, 32) with 64 3x3, pad 1 (the matrix 18.9M elements): 44.9 /
    29.9 / 30.0 / 35.1 / 40.8; (64, 16, 56, 56) with 32 3x3, pad 1: 46.2 / 27.1 / 26.2 /
    35.4 / 43.6; LeNet's (64, 6, 14, 14) with 16 5x5: 0.69 / 0.57 / 0.51 / 0.51 / 0.49.
    Chunked, 64 depthwise channels at 16x16 took 6.1 against 3.8 by the windows."""
    rank, outs, ins, kernel = len(pad), w.shape[0] // group, w.shape[1], w.shape[2:]
    if group == 1:
        out = conv_output_size(x.shape[2:], kernel, pad, stride, dilation)
        y = numpy.empty((x.shape[0], w.shape[0]) + out, dtype=numpy.result_type(x, w))
        per_sample = x.shape[1] * int(numpy.prod(kernel)) * int(numpy.prod(out))
        samples = max(1, 2**20 // max(1, per_sample))
        for start in range(0, x.shape[0], samples):
            part = x[start:start + samples]
            y[start:start + samples] = conv_matmul(im2col(part, kernel, pad, stride, dilation),
                                                   w, (part.shape[0],) + y.shape[1:], 1)
        return y
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
    dxpad without the padding. With stride 1 along every axis, over the flattened batch
    instead (conv_grad_x_flat, faster at every size measured)."""
    rank, outs, ins, kernel = len(pad), w.shape[0] // group, w.shape[1], w.shape[2:]
    if not any(s != 1 for s in stride):
        return conv_grad_x_flat(dy, w, x_shape, pad, dilation, group)
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


def conv_grad_x_flat(dy, w, x_shape, pad, dilation, group):
    """conv_grad_x with stride 1 along every axis, over the whole batch flattened: dxpad
    (C, N, *Lp) channel-major and read flat (N * P elements per channel, P = prod(Lp)),
    kernel position k reads every output position q of it at q + off(k), off(k) = sum
    over axes of k * dilation * (the axis's flat stride). So dy is placed at the output
    positions of a zero (O, N, *Lp), the columns w.T dy (C/group * prod(K), N * P) are
    one matrix product per group, and each kernel position's columns are added in one
    run of N * P elements per channel (P - prod(M) of each sample's outputs are zeros:
    they add nothing, across the samples' ends included). The batch is taken a chunk of
    samples at a time, each chunk's columns at most 2**19 elements, in one buffer (and one
    placed dy) reused by every chunk, so the columns of the whole batch (2x the output's
    size times C * prod(K) / O) are never held and each chunk's stays in the cache from
    its product to its additions.

    Measured (1 thread, float32, ms, same process; the whole batch at once / by chunks of
    at most 2**19): 32 x 64 channels at 32x32, 3x3 pad 1: 56.4 / 41.4; 16 x 32 at 56x56:
    58.0 / 29.2; 16 x 32 at 16x16: 4.3 / 3.6; dilation 2 there: 4.4 / 4.1; 2 groups: 2.8 /
    2.3; 64 depthwise channels at 16x16: 23.4 / 23.4 (one chunk). LeNet's second
    convolution (16 -> 6 channels, 10x10 -> 14x14, 5x5) varied with the allocator's state
    between runs: 1.06 / 1.14, 3.35 / 1.90 (2**18: 2.42, 2**20: 2.91); 6 -> 1 channels at
    28x28, pad 2: 0.77 / 1.02, 1.92 / 1.40; inside the generated LeNet step the two took
    the same time (2.0 ms). Results differ from the whole batch's by the rounding of the
    product's sums only (at most 1.7e-05 above, as far from the float64 result).

    Earlier (by this kernel / by conv_matmul_grad_cols then col2im / by the windows
    below): LeNet's second convolution (16 -> 6 channels, 10x10 -> 14x14, 5x5) 1.53 /
    2.88 / 1.82 ms; 6 -> 1 channels at 28x28, pad 2: 1.42 / 2.05 / 2.06 ms; 32 -> 16
    channels at 16x16, 3x3, pad 1: 1.76 / 2.95 / 2.20 ms; larger ones (above
    IM2COL_LIMIT), 32 x 64 channels at 32x32, 3x3: 39.8 against 53.0 ms by the windows,
    16 x 32 at 56x56: 18.7 against 27.7, 64 depthwise channels at 16x16: 6.0 against 6.5.
    The product is P / prod(M) longer (1.96x for the first) but the additions' runs are
    N * P long, not M[-1] (or Wp).
    """
    n, c, o = x_shape[0], x_shape[1], w.shape[0]
    outs, ins, kernel = o // group, w.shape[1], tuple(w.shape[2:])
    size = tuple(length + 2 * p for length, p in zip(x_shape[2:], pad, strict=True))
    image = int(numpy.prod(size))
    total = n * image
    steps = [int(numpy.prod(size[i + 1:])) for i in range(len(size))]
    offsets = [sum(ki * d * t for ki, d, t in zip(k, dilation, steps, strict=True))
               for k in numpy.ndindex(*kernel)]
    dtype = numpy.result_type(dy, w)
    rows = ins * len(offsets)
    samples = max(1, min(n, 2**19 // max(1, rows * image)))  # per chunk
    placed = numpy.zeros((o, samples) + size, dtype=dtype)
    outputs = (slice(None), slice(None)) + tuple(slice(0, m) for m in dy.shape[2:])
    flat = numpy.zeros((c, total + offsets[-1]), dtype=dtype)
    weights = [numpy.reshape(w[j * outs:(j + 1) * outs], (outs, -1)).T for j in range(group)]
    buffer = numpy.empty((rows, samples * image), dtype=dtype)
    for start in range(0, n, samples):
        count = min(samples, n - start)
        placed = placed[:, :count]
        placed[outputs] = numpy.moveaxis(dy[start:start + count], 1, 0)
        length, base = count * image, start * image
        columns_in = numpy.reshape(placed, (o, length))
        for j in range(group):
            columns = numpy.matmul(weights[j], columns_in[j * outs:(j + 1) * outs],
                                   out=buffer[:, :length])
            columns = numpy.reshape(columns, (ins, len(offsets), length))
            part = flat[j * ins:(j + 1) * ins]
            for i, offset in enumerate(offsets):
                part[:, base + offset:base + offset + length] += columns[:, i]
    padded = numpy.reshape(flat[:, :total], (c, n) + size)
    inside = tuple(slice(p, p + length) for length, p in zip(x_shape[2:], pad, strict=True))
    return numpy.moveaxis(padded[(slice(None), slice(None)) + inside], 0, 1)


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


# --- convolution through its im2col matrix (Im2Col and the products that read it) ---------

def im2col(x, kernel, pad, stride, dilation):
    """x's im2col matrix: cols[(c, k), (n, m)] = xpad[n, c, m*stride + k*dilation],
    (C * prod(K), N * prod(M)).

    With stride 1 along the last axis, every window row is a run of M[-1] contiguous
    elements of xpad, and the matrix is copied run by run: xpad is viewed with one run
    per element (a void dtype of M[-1] elements' bytes), since NumPy's copies cost per
    element of their innermost loop (a few ns) more than per byte where runs are short.
    Where runs are shorter than 64 bytes and the stride along the last-but-one axis is 1
    too, in two copies: first every run of every row of xpad, one per kernel position
    along the last axis (runs[c, k[-1], n, l] = xpad[n, c, l, k[-1]*dilation + :M[-1]]),
    then the matrix block by block, as the window rows of one output row each follow in
    runs: a block of M[-2] * M[-1] elements per (c, k, n) (and outer output position).
    Otherwise (a stride along the last axis, or a kernel 1 wide: whole rows, which the
    copy joins into longer runs itself) one copy of the windows' view in that order.

    Measured (1 thread, float32, ms; by the windows' view / by runs / in two copies):
    LeNet's (64, 1, 28, 28), 5x5, pad 2: 0.233 / 0.105 / 0.135; (64, 6, 14, 14), 5x5:
    0.367 / 0.173 / 0.127; (64, 64, 8, 8), 3x3, pad 1: 1.23 / 0.689 / 0.567; (8, 16, 56,
    56), 3x3, pad 1: 0.489 / 0.369 / 0.453; (2, 3, 224, 224): 0.252 / 0.233 / 0.294;
    (8, 8, 10, 10, 10), 3x3x3, pad 1: 0.790 / - / 0.230."""
    rank = len(kernel)
    padded = conv_padded(x, pad)
    rows = x.shape[1] * int(numpy.prod(kernel))
    if stride[-1] != 1 or kernel[-1] == 1 or not padded.size:
        windows = conv_windows(padded, kernel, stride, dilation)  # (*K, N, C, *M)
        order = (rank + 1, *range(rank + 1), *range(rank + 2, 2 * rank + 2))  # (C, *K, N, *M)
        return numpy.reshape(numpy.transpose(windows, order), (rows, -1))
    padded = numpy.ascontiguousarray(padded)
    out = conv_output_size(padded.shape[2:], kernel, (0,) * rank, stride, dilation)
    dtype, item, steps = padded.dtype, padded.itemsize, padded.strides  # (N, C, *L) in bytes
    run = numpy.dtype((numpy.void, out[-1] * item))
    if rank < 2 or stride[-2] != 1 or run.itemsize >= 64:
        # cols (C, *K, N, *M[:-1]) of runs
        windows = numpy.ndarray(
            (padded.shape[1], *kernel, padded.shape[0], *out[:-1]), run, padded, 0,
            (steps[1], *(d * t for d, t in zip(dilation, steps[2:], strict=True)), steps[0],
             *(s * t for s, t in zip(stride[:-1], steps[2:-1], strict=True))))
        cols = numpy.empty(windows.shape, run)
        cols[...] = windows
        return numpy.reshape(cols.view(dtype), (rows, -1))
    # runs (C, K[-1], N, *L[:-1]) of runs
    windows = numpy.ndarray((padded.shape[1], kernel[-1], padded.shape[0], *padded.shape[2:-1]),
                            run, padded, 0, (steps[1], dilation[-1] * item, steps[0], *steps[2:-1]))
    runs = numpy.empty(windows.shape, run)
    runs[...] = windows
    # cols (C, *K, N, *M[:-2]) of blocks, runs' strides (C, K[-1], N, *L[:-1]) in bytes
    block, steps = numpy.dtype((numpy.void, out[-2] * run.itemsize)), runs.strides
    outer = range(rank - 2)
    windows = numpy.ndarray(
        (runs.shape[0], *kernel, runs.shape[2], *out[:-2]), block, runs, 0,
        (steps[0], *(dilation[i] * steps[3 + i] for i in outer), dilation[-2] * run.itemsize,
         steps[1], steps[2], *(stride[i] * steps[3 + i] for i in outer)))
    cols = numpy.empty(windows.shape, block)
    cols[...] = windows
    return numpy.reshape(cols.view(dtype), (rows, -1))


def col2im(cols, x_shape, kernel, pad, stride, dilation):
    """The transpose of im2col: dxpad[n, c, m*stride + k*dilation] += cols[(c, k), (n, m)],
    added through the windows' view one kernel position k at a time (within one position
    the windows do not overlap); dx is dxpad without the padding."""
    n, c = x_shape[0], x_shape[1]
    out = conv_output_size(tuple(x_shape[2:]), kernel, pad, stride, dilation)
    size = tuple(length + 2 * p for length, p in zip(x_shape[2:], pad, strict=True))
    padded = numpy.zeros((n, c) + size, dtype=cols.dtype)
    windows = conv_windows(padded, kernel, stride, dilation, writeable=True)  # (*K, N, C, *M)
    values = numpy.reshape(cols, (c, *kernel, n, *out))
    for k in numpy.ndindex(*kernel):
        windows[k] += numpy.moveaxis(values[(slice(None), *k)], 0, 1)
    inside = tuple(slice(p, p + length) for length, p in zip(x_shape[2:], pad, strict=True))
    return padded[(slice(None), slice(None), *inside)]


def conv_group_matrices(a, group):
    """a (N, O, *M) as one matrix (O / group, N * prod(M)) per group of its channels."""
    outs = a.shape[1] // group
    return [numpy.reshape(numpy.moveaxis(a[:, j * outs:(j + 1) * outs], 1, 0), (outs, -1))
            for j in range(group)]


def conv_matmul(cols, w, y_shape, group):
    """The convolution from x's im2col matrix, per group j: y[n, o, m] = sum over r of
    w[o, r] * cols[j*R + r, (n, m)], w read as (C', R): one matrix product per group.
    Without groups y is a view of the product (O, N, *M) in y's axis order, not copied:
    its consumer (the bias added) makes the contiguous array. Measured (1 thread, the
    bench/cnn.py LeNet's step, two convolutions): 10.7 ms a step against 10.9 copying
    here (the copy alone: 0.08 ms a convolution)."""
    outs, rows = w.shape[0] // group, cols.shape[0] // group
    n, spatial = y_shape[0], tuple(y_shape[2:])
    parts = [numpy.moveaxis(numpy.reshape(
        numpy.reshape(w[j * outs:(j + 1) * outs], (outs, -1)) @ cols[j * rows:(j + 1) * rows],
        (outs, n, *spatial)), 0, 1) for j in range(group)]
    if group == 1:
        return parts[0]
    y = numpy.empty(tuple(y_shape), dtype=parts[0].dtype)
    for j, part in enumerate(parts):
        y[:, j * outs:(j + 1) * outs] = part
    return y


def conv_matmul_grad_cols(dy, w, cols_shape, group):
    """d loss / d cols of conv_matmul, per group j: dcols[j*R + r, (n, m)] = sum over o of
    w[o, r] * dy[n, o, m], one matrix product w_j.T dy_j per group."""
    outs = w.shape[0] // group
    parts = [numpy.reshape(w[j * outs:(j + 1) * outs], (outs, -1)).T @ g
             for j, g in enumerate(conv_group_matrices(dy, group))]
    return parts[0] if group == 1 else numpy.concatenate(parts, axis=0)


def conv_matmul_grad_w(cols, dy, w_shape, group):
    """d loss / d w of conv_matmul, per group j: dw[o, r] = sum over n, m of dy[n, o, m] *
    cols[j*R + r, (n, m)], one matrix product dy_j cols_j.T per group."""
    rows = cols.shape[0] // group
    parts = [g @ cols[j * rows:(j + 1) * rows].T
             for j, g in enumerate(conv_group_matrices(dy, group))]
    dw = parts[0] if group == 1 else numpy.concatenate(parts, axis=0)
    return numpy.reshape(dw, tuple(w_shape))


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
    The windows view is first copied whole (one pass: what each kernel position reads,
    contiguous), so the windows' maxima and, for each kernel position k, the mask of the
    windows whose maximum k holds and no earlier position did (boolean masks, where an
    index of the first maximum took a slow masked copy) are passes over contiguous
    arrays, not over strided views; the masks are all taken before the gradient is
    allocated (the copy freed, its memory reused). Then dy times each mask is added (or,
    when windows do not overlap, written) through the writable windows view of the
    padded gradient (within one position the windows do not overlap).

    Measured (1 thread, float32, ms, same process, two runs; before, reading the strided
    views for the maxima and masks / now): LeNet's (64, 6, 28, 28) 2x2 0.72 / 0.53, 0.65 /
    0.54, and (64, 16, 10, 10) 0.27 / 0.24, 0.25 / 0.21 (inside the generated LeNet step
    1.04 / 0.97 and 0.60 / 0.61); (64, 32, 32, 32) 2x2 5.3 / 3.2; (64, 16, 56, 56) 2x2
    7.6 / 6.2, 3x3 pad 1 14.4 / 10.0; overlapping 3x3 stride 2 pad 1 at 28x28 2.0 / 1.8;
    3-D (64, 16, 16, 16, 16) 2x2x2 18.1 / 11.0; 1-D (64, 16, 1000) by 4 1.8 / 1.25.
    Gathering each window's rows as void items into a (positions, windows) layout
    instead was faster at 10x10 (0.21) but far slower at 28x28 (2.8: more large
    temporaries, whose fresh pages cost here)."""
    rank = len(kernel)
    out, after = pool_geometry(x.shape[x.ndim - rank:], kernel, stride, pad, ignore_border)
    padded = pool_padded(x, rank, pad, after, -numpy.inf)
    windows = numpy.ascontiguousarray(conv_windows(padded, kernel, stride, (1,) * rank))
    positions = list(numpy.ndindex(*kernel))
    best = windows[positions[0]].copy()
    for k in positions[1:]:
        numpy.maximum(best, windows[k], out=best)
    hits = numpy.empty(windows.shape, dtype=bool)
    open_ = numpy.ones(best.shape, dtype=bool)  # windows whose maximum is not yet taken
    for k in positions:
        hit = hits[k]
        numpy.equal(windows[k], best, out=hit)
        numpy.logical_and(hit, open_, out=hit)
        numpy.logical_xor(open_, hit, out=open_)
    del windows, best, open_
    dy = numpy.reshape(dy, hits.shape[rank:])
    grad = numpy.zeros(padded.shape, dtype=numpy.result_type(x, dy))
    spread = conv_windows(grad, kernel, stride, (1,) * rank, writeable=True)
    apart = bool(numpy.all(numpy.greater_equal(stride, kernel)))
    for k in positions:
        if apart:
            numpy.multiply(dy, hits[k], out=spread[k])
        else:
            spread[k] += dy * hits[k]
    return pool_cropped(grad, x.shape, pad)


def pool_max_pick(x, c, kernel, stride, pad, ignore_border):
    """The transpose of pool_max_grad in dy: each window of c (of x's shape) read at the
    first maximum of x's window in C order (pool_max_grad's masks), the output of
    pool_max's shape: y[m] = c[argmax of window m of x]."""
    rank = len(kernel)
    out, after = pool_geometry(x.shape[x.ndim - rank:], kernel, stride, pad, ignore_border)
    windows = conv_windows(pool_padded(x, rank, pad, after, -numpy.inf), kernel, stride,
                           (1,) * rank)
    picked = conv_windows(pool_padded(c, rank, pad, after, 0), kernel, stride, (1,) * rank)
    positions = list(numpy.ndindex(*kernel))
    best = windows[positions[0]].copy()
    for k in positions[1:]:
        numpy.maximum(best, windows[k], out=best)
    open_ = numpy.ones(best.shape, dtype=bool)  # windows whose maximum is not yet taken
    hit = numpy.empty(best.shape, dtype=bool)
    y = numpy.zeros(best.shape, dtype=numpy.result_type(x, c))
    for k in positions:
        numpy.equal(windows[k], best, out=hit)
        numpy.logical_and(hit, open_, out=hit)
        numpy.logical_xor(open_, hit, out=open_)
        y += picked[k] * hit
    return numpy.reshape(y, x.shape[:x.ndim - rank] + out)


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


def arange_accumulated(start, step, count, dtype):
    """nnabla's F.arange: y[0] = start, y[i] = y[i-1] + step, each sum rounded to `dtype`
    (a cumulative sum adds in order, as nnabla's loop does)."""
    steps = numpy.full(count, step, dtype=dtype)
    steps[:1] = start
    return numpy.cumsum(steps, dtype=dtype)


def linspace_values(start, stop, num, dtype):
    """nnabla's F.linspace: y[i] = start + i*step with step = (stop - start)/(num - 1),
    the difference in `dtype`, the rest in float64, rounded to `dtype` at the end."""
    first = numpy.float64(dtype(start))
    step = numpy.float64(dtype(stop) - dtype(start)) / (num - 1) if num > 1 else 0.0
    return (first + step * numpy.arange(num)).astype(dtype)


def random_uniform(rng, shape, low, high, dtype):
    """Uniform in [low, high), drawn from `rng` (F.rand)."""
    return rng.uniform(low, high, shape).astype(dtype)


def random_normal(rng, shape, mu, sigma, dtype):
    """Normal with mean mu and standard deviation sigma, drawn from `rng` (F.randn)."""
    return rng.normal(mu, sigma, shape).astype(dtype)


def random_integers(rng, shape, low, high, dtype):
    """Integers in [low, high), drawn from `rng`, as numbers of `dtype` (F.randint)."""
    return rng.integers(int(low), int(high), shape).astype(dtype)


# --- fixed gathers, cumulative sums and products, prod, sorting, indices of extrema --------


def gather_axis(x, indices, axis):
    """y[..., j, ...] = x[..., indices[j], ...] along `axis` (reflect/repeat padding,
    shifts, diagonals: the indices are fixed when the graph is compiled)."""
    return numpy.take(x, indices, axis=axis)


def gather_axis_grad(dy, indices, axis, length):
    """The transpose of gather_axis: dx[..., i, ...] = sum over j with indices[j] == i of
    dy[..., j, ...], dx of `length` along `axis` (numpy.add.at adds repeated indices)."""
    shape = list(dy.shape)
    shape[axis] = length
    dx = numpy.zeros(shape, dtype=dy.dtype)
    numpy.add.at(numpy.moveaxis(dx, axis, 0), numpy.asarray(indices, dtype=numpy.intp),
                 numpy.moveaxis(dy, axis, 0))
    return dx


def nd_positions(indices, shape):
    """The columns of N-d indices (M, *Y) as flat positions into an array of shape[:M]
    (negative indices count from the end, as nnabla's), (positions, inside): a column
    with an index outside [-n, n) on some axis (computed indices only: inputs are checked
    on entry) is not inside, and its position is 0."""
    m = indices.shape[0]
    columns = numpy.reshape(indices, (m, -1))
    finite = numpy.isfinite(columns)
    sizes = numpy.reshape(numpy.asarray(shape[:m], dtype=numpy.int64), (m, 1))
    if columns.dtype.kind == "f":  # into [-n - 1, n] first, so that the cast is exact
        columns = numpy.clip(numpy.where(finite, columns, 0), -sizes - 1, sizes)
    columns = columns.astype(numpy.int64)  # truncated towards zero, as nnabla casts them
    inside = numpy.all(finite & (columns >= -sizes) & (columns < sizes), axis=0)
    columns = numpy.where(inside, numpy.where(columns < 0, columns + sizes, columns), 0)
    return numpy.ravel_multi_index(tuple(columns), tuple(shape[:m])), inside


def nd_last(positions, inside):
    """Which columns are the last (inside) one to name their position."""
    count = positions.shape[0]
    named = numpy.where(inside, positions, -1)[::-1]
    _, first = numpy.unique(named, return_index=True)  # first from the end: the last
    last = numpy.zeros(count, dtype=bool)
    last[count - 1 - first] = True
    return last & inside


def gather_nd(x, indices, last):
    """y[y..., r...] = x[indices[:, y...], r...] (F.gather_nd), 0 where a computed index
    is outside x or, with `last`, where a later column names the same position (the
    transpose of scatter_nd's assignment)."""
    m = indices.shape[0]
    rest = x.shape[m:]
    positions, keep = nd_positions(indices, x.shape)
    if last:
        keep = nd_last(positions, keep)
    y = numpy.reshape(x, (-1,) + rest)[positions]
    y = numpy.where(numpy.reshape(keep, (-1,) + (1,) * len(rest)), y, x.dtype.type(0))
    return numpy.reshape(y, indices.shape[1:] + rest)


def bool_rows(function, mask, nnz):
    """Where `mask` is not 0 (NaN is not 0), refusing a mask whose count of such elements
    is not `nnz`, the rows its function reads or writes (nnabla's reads past them)."""
    where = mask != 0
    count = int(numpy.count_nonzero(where))
    if count != nnz:
        raise ValueError(f"F.{function}: the mask has {count} non-zero elements, but the "
                         f"data has {nnz} rows (one per non-zero element): give a mask with "
                         f"{nnz} non-zeros, or data of {count} rows")
    return where


def bool_scatter(x, mask):
    """The rows of x, in order, where mask is not 0; zeros elsewhere (F.bool_scatter)."""
    out = numpy.zeros(mask.shape + x.shape[1:], dtype=x.dtype)
    out[bool_rows("bool_scatter", mask, x.shape[0])] = x
    return out


def bool_gather(y, mask, nnz):
    """The rows of y where mask is not 0, in order (bool_scatter's gradient)."""
    return y[bool_rows("bool_scatter", mask, nnz)]


def counts_above(values, n):
    """counts[i], i < n: how many of `values` (1-D, truncated to integers, as nnabla reads
    lengths and batch sizes) are over i, as numbers of their dtype (a padded batch's
    batch sizes from its lengths, and its lengths from its batch sizes)."""
    over = numpy.trunc(values)[None, :] > numpy.arange(n)[:, None]
    return numpy.count_nonzero(over, axis=1).astype(values.dtype)


def packed_positions(function, sizes, steps, batch, batch_first, rows, exact_batch):
    """Where each packed row lives in the padded (steps, batch) grid, flattened ((batch,
    steps) with batch_first): step-major, at step t the first sizes[t] sequences.
    Refuses sizes that do not sum to `rows`, or whose largest is not `batch` (with
    `exact_batch`) or is over it: the shapes were fixed from them when the graph was
    built."""
    s = numpy.trunc(sizes).astype(numpy.int64)
    if int(s.sum()) != rows:
        refuse_count_change(function, "the number of packed rows (the sum of the batch "
                            "sizes)", int(s.sum()), rows)
    largest = int(s.max()) if s.size else 0
    if (exact_batch and largest != batch) or largest > batch or (s.size and s.min() < 0):
        refuse_count_change(function, "the largest batch size", largest, batch)
    t = numpy.repeat(numpy.arange(s.shape[0]), s)
    b = numpy.arange(rows) - numpy.repeat(numpy.cumsum(s) - s, s)
    return b * steps + t if batch_first else t * batch + b


def sequence_pack(x, sizes, batch_first, rows):
    """The rows of the padded x (steps, batch, ...) ((batch, steps, ...) with batch_first)
    packed step by step, the first sizes[t] sequences at step t: (rows, ...)."""
    steps, batch = (x.shape[1], x.shape[0]) if batch_first else x.shape[:2]
    where = packed_positions("pack_padded_sequence", sizes, steps, batch, batch_first, rows,
                             False)
    return x.reshape((steps * batch,) + x.shape[2:])[where]


def sequence_unpack(p, sizes, batch_first, steps, batch, fill, exact_batch):
    """The packed rows p (rows, ...) placed back into a padded (steps, batch, ...) array
    ((batch, steps, ...) with batch_first), `fill` elsewhere (sequence_pack's inverse)."""
    where = packed_positions("pad_packed_sequence", sizes, steps, batch, batch_first,
                             p.shape[0], exact_batch)
    out = numpy.full((steps * batch,) + p.shape[1:], fill, dtype=p.dtype)
    out[where] = p
    return out.reshape(((batch, steps) if batch_first else (steps, batch)) + p.shape[1:])


def bool_gather_built(y, mask, nnz):
    """The rows of y where mask is not 0, in order (F.bool_gather), nnz the mask's count
    of non-zeros when the graph was built, which it must still have."""
    where = mask != 0
    count = int(numpy.count_nonzero(where))
    if count != nnz:
        refuse_count_change("bool_gather", "the mask's number of non-zero elements", count,
                            nnz)
    return y[where]


def nonzero_indices(x, nnz):
    """The indices of x's non-zero elements (NaN is not 0) in C order, (x.ndim, nnz): row d
    their positions along axis d, as numbers of x's dtype (F.nonzero); nnz their count
    when the graph was built, which x must still have."""
    found = numpy.nonzero(x.reshape(-1))[0]
    if found.shape[0] != nnz:
        refuse_count_change("nonzero", "the number of non-zero elements", found.shape[0],
                            nnz)
    if not x.ndim:  # an index of no axes: nnabla's (0, nnz)
        return numpy.zeros((0, nnz), dtype=x.dtype)
    return numpy.array(numpy.unravel_index(found, x.shape), dtype=x.dtype)


def unique_part(x, part, flatten, axis, ascending, count):
    """One of F.unique's index outputs, as numbers of x's dtype: part 0 the index of each
    unique value's first occurrence (of each unique slice along `axis` without
    `flatten`), 1 the inverse (which unique value each element or slice is), 2 the
    counts. Unique values sorted lexicographically (a stable sort: equal ones keep x's
    order, so the first is the first occurrence; -0 equals 0, NaN equals nothing), or
    without `ascending` in the order of their first occurrences, as nnabla's; `count` the
    number of unique values when the graph was built, which x must still have."""
    rows = x.reshape(-1, 1) if flatten else numpy.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)
    order = numpy.lexsort(rows.T[::-1])  # the first column is the primary key
    ordered = rows[order]
    new = numpy.ones(order.shape[0], dtype=bool)
    new[1:] = numpy.any(ordered[1:] != ordered[:-1], axis=1)
    found = int(numpy.count_nonzero(new))
    if found != count:
        refuse_count_change("unique", "the number of unique values", found, count)
    starts = numpy.flatnonzero(new)
    first = order[starts]
    counts = numpy.diff(numpy.append(starts, order.shape[0]))
    inverse = numpy.empty_like(order)
    inverse[order] = numpy.cumsum(new) - 1
    if not ascending:
        by_first = numpy.argsort(first, kind="stable")
        rank = numpy.empty_like(by_first)
        rank[by_first] = numpy.arange(by_first.shape[0])
        first, counts, inverse = first[by_first], counts[by_first], rank[inverse]
    return (first, inverse, counts)[part].astype(x.dtype)


def scatter_nd(data, indices, shape, add):
    """Zeros of `shape` with data[y..., r...] written at [indices[:, y...], r...]
    (F.scatter_nd): added with `add` (repeated positions sum), else assigned (the last
    of repeated positions wins, as nnabla's loop); outside positions write nothing."""
    m = indices.shape[0]
    rest = tuple(shape[m:])
    positions, keep = nd_positions(indices, shape)
    if not add:
        keep = nd_last(positions, keep)
    out = numpy.zeros((int(numpy.prod(shape[:m], dtype=numpy.int64)),) + rest,
                      dtype=data.dtype)
    values = numpy.reshape(data, (positions.shape[0],) + rest)
    if add and rest:
        # one add.at of single elements, NumPy's fast path, in the same order (so the
        # same sums): rows of `rest` take 3-5 times longer (measured: deformable
        # convolution's x-gradient, 295k rows of 16, 31 ms against 104)
        width = int(numpy.prod(rest, dtype=numpy.int64))
        flat = numpy.reshape(positions[keep], (-1, 1)) * width + numpy.arange(width)
        numpy.add.at(numpy.reshape(out, (-1,)), numpy.reshape(flat, (-1,)),
                     numpy.reshape(values[keep], (-1,)))
    elif add:
        numpy.add.at(out, positions[keep], values[keep])
    else:
        out[positions[keep]] = values[keep]  # no position twice
    return numpy.reshape(out, tuple(shape))


def reduce_sum(x, axes, keepdims):
    """x.sum(axis=axes, keepdims=keepdims) by BLAS products (reduce_sum_of_products)."""
    return reduce_sum_of_products(x, None, axes, keepdims)


def reduce_sum_of_products(x, y, axes, keepdims):
    """(x * y).sum(axis=axes, keepdims=keepdims), y None meaning x alone, by BLAS products
    instead of NumPy's reduction, which makes the product x * y first and sums over axes
    on both sides of the kept ones slowly. With the kept axes consecutive, x is seen as
    (A, C, B) (the reduced axes before them, theirs, the reduced axes after them) and
    s[c] = sum over a of (sum over b of x[a, c, b] * y[a, c, b]): one dot product per
    (a, c) as a stack of (1, B) @ (B, 1) products (x alone: x @ ones(B)), then ones(A)
    @ s. The sums are BLAS's, blocked, as close to the float64 sum as NumPy's.

    Measured (1 thread, float32, ms; NumPy's / this): batch normalization's channel sums
    (axes 0, 2, 3) of (64, 6, 28, 28): x 0.053 / 0.024, x*y 0.095 / 0.032, x**2 0.079 /
    0.026; of (64, 16, 10, 10): 0.033 / 0.010, 0.045 / 0.026, 0.044 / 0.017; (1024, 256)
    over axis 0: x 0.036 / 0.021, x*y 0.078 / 0.042; (64, 1024) over axis 1: 0.012 /
    0.005, 0.020 / 0.008. Slower below about 8192 elements ((64, 120) over axis 0:
    0.0022 / 0.0025), where the printer keeps NumPy's sum."""
    kept = [i for i in range(x.ndim) if i not in axes]
    if keepdims:
        shape = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
    else:
        shape = tuple(x.shape[i] for i in kept)
    if not kept or kept != list(range(kept[0], kept[-1] + 1)):  # (the printer avoids these)
        return (x if y is None else x * y).sum(axis=tuple(axes), keepdims=keepdims)
    outer = int(numpy.prod(x.shape[:kept[0]]))
    inner = int(numpy.prod(x.shape[kept[-1] + 1:]))
    count = int(numpy.prod(x.shape[kept[0]:kept[-1] + 1]))
    dtype = x.dtype if y is None else numpy.result_type(x, y)
    if y is None:
        sums = numpy.reshape(x, (outer, count, inner)) @ numpy.ones(inner, dtype) \
            if inner > 1 else numpy.reshape(x, (outer, count))
    elif inner > 1:
        sums = numpy.reshape(numpy.reshape(x, (outer, count, 1, inner))
                             @ numpy.reshape(y, (outer, count, inner, 1)), (outer, count))
    else:
        sums = numpy.einsum("ac,ac->c" if outer != 1 else "ac,ac->ac",
                            numpy.reshape(x, (outer, count)), numpy.reshape(y, (outer, count)))
        return numpy.reshape(sums, shape)
    if outer != 1:  # (none: zeros)
        sums = numpy.ones(outer, dtype) @ sums
    return numpy.reshape(sums, shape)


def cumulative_sum(x, axis):
    """y[i] = x[0] + x[1] + ... + x[i] along `axis`."""
    return numpy.cumsum(x, axis=axis)


def cumulative_prod(x, axis):
    """y[i] = x[0] * x[1] * ... * x[i] along `axis`."""
    return numpy.cumprod(x, axis=axis)


def cumulative_prod_grad(x, dy, axis):
    """d loss / d x of y = cumulative_prod(x), exact where x holds zeros (no division):
    dx[i] = P[i] * S[i] along `axis`, with P[i] = x[0] * ... * x[i-1] (P[0] = 1) and
    S[i] = sum over j >= i of dy[j] * x[i+1] * ... * x[j], computed from the end as
    S[n-1] = dy[n-1], S[i] = dy[i] + x[i+1] * S[i+1]."""
    x, dy = numpy.moveaxis(x, axis, 0), numpy.moveaxis(dy, axis, 0)
    suffix = numpy.empty(dy.shape, dtype=numpy.result_type(x, dy))
    suffix[-1] = dy[-1]
    for i in range(x.shape[0] - 2, -1, -1):
        suffix[i] = dy[i] + x[i + 1] * suffix[i + 1]
    prefix = numpy.ones_like(suffix)
    prefix[1:] = numpy.cumprod(x[:-1], axis=0)
    return numpy.moveaxis(prefix * suffix, 0, axis)


def cumulative_prod_jvp(x, t, axis):
    """The change of y = cumulative_prod(x) when x changes by t (J t, the VJP of
    cumulative_prod_grad in dy), without division: u[0] = t[0] and
    u[i] = u[i-1] * x[i] + y[i-1] * t[i] along `axis`."""
    x, t = numpy.moveaxis(x, axis, 0), numpy.moveaxis(t, axis, 0)
    y = numpy.cumprod(x, axis=0)
    u = numpy.empty(t.shape, dtype=numpy.result_type(x, t))
    u[0] = t[0]
    for i in range(1, x.shape[0]):
        u[i] = u[i - 1] * x[i] + y[i - 1] * t[i]
    return numpy.moveaxis(u, 0, axis)


def cumulative_prod_grad_jvp(x, dy, t, axis):
    """The change of dx = cumulative_prod_grad(x, dy) when x changes by t (the Hessian of
    sum(dy * cumulative_prod(x)) times t, which is also the VJP of cumulative_prod_grad
    in x, the Hessian being symmetric): dx = P * S differentiated through the recurrences
    of P and S, dP[i] = dP[i-1] * x[i-1] + P[i-1] * t[i-1] (dP[0] = 0) and
    dS[i] = t[i+1] * S[i+1] + x[i+1] * dS[i+1] (dS[n-1] = 0)."""
    x, dy, t = (numpy.moveaxis(a, axis, 0) for a in (x, dy, t))
    dtype = numpy.result_type(x, dy, t)
    prefix, d_prefix = numpy.ones(x.shape, dtype), numpy.zeros(x.shape, dtype)
    suffix, d_suffix = numpy.empty(x.shape, dtype), numpy.zeros(x.shape, dtype)
    suffix[-1] = dy[-1]
    for i in range(1, x.shape[0]):
        prefix[i] = prefix[i - 1] * x[i - 1]
        d_prefix[i] = d_prefix[i - 1] * x[i - 1] + prefix[i - 1] * t[i - 1]
    for i in range(x.shape[0] - 2, -1, -1):
        suffix[i] = dy[i] + x[i + 1] * suffix[i + 1]
        d_suffix[i] = t[i + 1] * suffix[i + 1] + x[i + 1] * d_suffix[i + 1]
    return numpy.moveaxis(d_prefix * suffix + prefix * d_suffix, 0, axis)


def reduce_prod(x, axes, keepdims):
    """The product of x over `axes`: y = prod over those axes of x."""
    return numpy.prod(x, axis=tuple(axes), keepdims=bool(keepdims))


def sort_order(x, axis, reverse):
    """The indices that sort x along `axis`, ascending (descending if `reverse`), equal
    elements in their order in x (a stable sort): y = take_along_axis(x, order)."""
    return numpy.argsort(-x if reverse else x, axis=axis, kind="stable")


def sort_values(x, axis, reverse):
    """x sorted along `axis`: y[j] = x[order[j]] (see sort_order)."""
    return numpy.take_along_axis(x, sort_order(x, axis, reverse), axis=axis)


def sort_grad(x, dy, axis, reverse):
    """d loss / d x of sort_values: each dy goes back where its element came from,
    dx[order[j]] = dy[j] along `axis`."""
    dx = numpy.empty(dy.shape, dtype=dy.dtype)
    numpy.put_along_axis(dx, sort_order(x, axis, reverse), dy, axis=axis)
    return dx


def sort_index(x, axis, reverse):
    """The order of sort_values (its indices into x) as numbers of x's dtype."""
    return sort_order(x, axis, reverse).astype(x.dtype)


def search_sorted(s, v, right):
    """numpy.searchsorted of each row of v's last axis in the same row of s's, side
    "right" with `right` else "left", as numbers of v's dtype."""
    side = "right" if right else "left"
    rows, values = s.reshape(-1, s.shape[-1]), v.reshape(-1, v.shape[-1])
    found = numpy.empty(values.shape, dtype=v.dtype)
    for i in range(values.shape[0]):
        found[i] = numpy.searchsorted(rows[i], values[i], side=side)
    return found.reshape(v.shape)


def arg_extremum(x, axis, keepdims, is_max):
    """The index of the first maximum (is_max) or minimum along `axis`, as a number of x's
    dtype: argmax/argmin of x."""
    find = numpy.argmax if is_max else numpy.argmin
    return find(x, axis=axis, keepdims=bool(keepdims)).astype(x.dtype)


def top_k_order(x, k, absolute, largest):
    """The indices of the k elements of each row of x (N, S) with the largest key (the
    smallest if not `largest`), key = |x| if `absolute` else x, in the key's order, equal
    keys first in x's order (a stable sort)."""
    key = numpy.abs(x) if absolute else x
    return numpy.argsort(-key if largest else key, axis=1, kind="stable")[:, :k]


def top_k_values(x, k, absolute, largest):
    """y[n, j] = x[n, order[n, j]] for the top_k_order of x."""
    return numpy.take_along_axis(x, top_k_order(x, k, absolute, largest), axis=1)


def top_k_grad(x, dy, k, absolute, largest):
    """d loss / d x of top_k_values: dx[n, order[n, j]] = dy[n, j], zeros elsewhere."""
    dx = numpy.zeros(x.shape, dtype=dy.dtype)
    numpy.put_along_axis(dx, top_k_order(x, k, absolute, largest), dy, axis=1)
    return dx


def top_k_index(x, k, absolute, largest, kind):
    """top_k_order of x as numbers of x's dtype (kind 0), or the mask (kind 1):
    mask[n, i] = 1 where i is in order[n], else 0."""
    order = top_k_order(x, k, absolute, largest)
    if not kind:
        return order.astype(x.dtype)
    mask = numpy.zeros(x.shape, dtype=x.dtype)
    numpy.put_along_axis(mask, order, 1, axis=1)
    return mask


def sort_take(x, values, axis, reverse):
    """`values` read in the order that sorts x along `axis`: y[j] = values[order[j]]
    (the transpose of sort_grad in dy, for second derivatives)."""
    return numpy.take_along_axis(values, sort_order(x, axis, reverse), axis=axis)


def top_k_take(x, values, k, absolute, largest):
    """`values` (N, S) read where top_k_order chooses in x: y[n, j] = values[n,
    order[n, j]] (the transpose of top_k_grad in dy, for second derivatives)."""
    return numpy.take_along_axis(values, top_k_order(x, k, absolute, largest), axis=1)


# --- the error function, interpolation, random flips, shifts and crops ---------------------


def erf_values(x):
    """erf(x) = 2/sqrt(pi) * integral of exp(-t**2) from 0 to x (NumPy has none), by
    fdlibm's rational approximations (s_erf.c, within 1 ulp in double), in float64 and
    rounded to x's dtype: |x| < 0.84375: x + x*P(x**2)/Q(x**2); < 1.25: erx + P(s)/Q(s),
    s = |x| - 1; < 6: 1 - exp(-z*z - 0.5625 + (z - |x|)*(z + |x|) + R(1/x**2)/S(1/x**2))/|x|,
    z = |x| rounded to float32 (so z*z is exact); beyond: 1; the sign of x. Each branch
    reads |x| clipped to its interval, so that none overflows; NaN stays NaN."""
    v = numpy.asarray(x, dtype=numpy.float64)
    a = numpy.abs(v)
    u = numpy.minimum(a, 0.84375)
    z = u * u
    r = 1.28379167095512558561e-01 + z * (-3.25042107247001499370e-01 + z * (
        -2.84817495755985104766e-02 + z * (-5.77027029648944159157e-03
                                           + z * -2.37630166566501626084e-05)))
    s = 1.0 + z * (3.97917223959155352819e-01 + z * (6.50222499887672944485e-02 + z * (
        5.08130628187576562776e-03 + z * (1.32494738004321644526e-04
                                          + z * -3.96022827877536812320e-06))))
    small = u + u * (r / s)
    m = numpy.minimum(a, 1.25) - 1.0
    p = -2.36211856075265944077e-03 + m * (4.14856118683748331666e-01 + m * (
        -3.72207876035701323847e-01 + m * (3.18346619901161753674e-01 + m * (
            -1.10894694282396677476e-01 + m * (3.54783043256182359371e-02
                                               + m * -2.16637559486879084300e-03)))))
    q = 1.0 + m * (1.06420880400844228286e-01 + m * (5.40397917702171048937e-01 + m * (
        7.18286544141962662868e-02 + m * (1.26171219808761642112e-01 + m * (
            1.36370839120290507362e-02 + m * 1.19844998467991074170e-02)))))
    middle = 8.45062911510467529297e-01 + p / q
    t = numpy.minimum(numpy.maximum(a, 1.25), 6.0)
    w = 1.0 / (t * t)
    ra = -9.86494403484714822705e-03 + w * (-6.93858572707181764372e-01 + w * (
        -1.05586262253232909814e+01 + w * (-6.23753324503260060396e+01 + w * (
            -1.62396669462573470355e+02 + w * (-1.84605092906711035994e+02 + w * (
                -8.12874355063065934246e+01 + w * -9.81432934416914548592e+00))))))
    sa = 1.0 + w * (1.96512716674392571292e+01 + w * (1.37657754143519042600e+02 + w * (
        4.34565877475229228821e+02 + w * (6.45387271733267880336e+02 + w * (
            4.29008140027567833386e+02 + w * (1.08635005541779435134e+02 + w * (
                6.57024977031928170135e+00 + w * -6.04244152148580987438e-02)))))))
    rb = -9.86494292470009928597e-03 + w * (-7.99283237680523006574e-01 + w * (
        -1.77579549177547519889e+01 + w * (-1.60636384855821916062e+02 + w * (
            -6.37566443368389627722e+02 + w * (-1.02509513161107724954e+03
                                               + w * -4.83519191608651397019e+02)))))
    sb = 1.0 + w * (3.03380607434824582924e+01 + w * (3.25792512996573918826e+02 + w * (
        1.53672958608443695994e+03 + w * (3.19985821950859553908e+03 + w * (
            2.55305040643316442583e+03 + w * (4.74528541206955367215e+02
                                              + w * -2.24409524465858183362e+01))))))
    near = t < 1 / 0.35
    ratio = numpy.where(near, ra, rb) / numpy.where(near, sa, sb)
    split = t.astype(numpy.float32).astype(numpy.float64)
    tail = 1.0 - numpy.exp(-split * split - 0.5625 + (split - t) * (split + t) + ratio) / t
    y = numpy.where(a < 0.84375, small,
                    numpy.where(a < 1.25, middle, numpy.where(a >= 6.0, 1.0, tail)))
    return numpy.copysign(y, v).astype(numpy.result_type(x, numpy.float32))


def interpolate_axis(x, low, high, frac, scale, axis):
    """Linear interpolation along `axis`: y[..., o, ...] = (1 - w[o]) * x[..., low[o], ...]
    + w[o] * x[..., high[o], ...], w = frac / scale (nnabla's interpolate, one axis)."""
    shape = [1] * x.ndim
    shape[axis] = len(low)
    w = numpy.reshape((numpy.asarray(frac, dtype=numpy.float64) / scale).astype(x.dtype), shape)
    return (1 - w) * numpy.take(x, low, axis=axis) + w * numpy.take(x, high, axis=axis)


def interpolate_axis_grad(dy, low, high, frac, scale, axis, length):
    """The transpose of interpolate_axis: dx[..., i, ...] = sum over o with low[o] == i of
    (1 - w[o]) * dy[..., o, ...] + sum over o with high[o] == i of w[o] * dy[..., o, ...]
    (numpy.add.at adds repeated indices)."""
    shape = [1] * dy.ndim
    shape[axis] = len(low)
    w = numpy.reshape((numpy.asarray(frac, dtype=numpy.float64) / scale).astype(dy.dtype), shape)
    dx_shape = list(dy.shape)
    dx_shape[axis] = length
    dx = numpy.zeros(dx_shape, dtype=dy.dtype)
    moved = numpy.moveaxis(dx, axis, 0)
    numpy.add.at(moved, numpy.asarray(low, dtype=numpy.intp), numpy.moveaxis((1 - w) * dy, axis, 0))
    numpy.add.at(moved, numpy.asarray(high, dtype=numpy.intp), numpy.moveaxis(w * dy, axis, 0))
    return dx


def chosen_sources(choice, kind, x_sizes, sizes, shifts, mode):
    """Per sample s and axis a of a random flip, shift or crop, the positions its output
    reads, src[a] of shape (S, sizes[a]), and where they are inside (ok[a], or None),
    from the draw choice (S, A) uniform in [0, 1): kind 0 (flip) j or n - 1 - j, flipped
    where choice < 1/2 and shifts[a] is 1; kind 1 (shift) j - t, t = floor(choice*(2k +
    1)) - k with k = shifts[a], borders "nearest" (mode 0, clamped), "reflect" (1: r =
    |j - t + 2n| mod 2n, 2n - 1 - r past the end) or "constant" (2: ok[a] says which are
    inside); kind 2 (crop) o + j, o = floor(choice*(n - sizes[a] + 1))."""
    sources, oks = [], []
    for a, (n, m, k) in enumerate(zip(x_sizes, sizes, shifts, strict=True)):
        j = numpy.arange(m)
        u = choice[:, a:a + 1].astype(numpy.float64)
        ok = None
        if kind == 0:
            src = numpy.where((u < 0.5) & bool(k), n - 1 - j, j)
        elif kind == 1:
            src = j - (numpy.minimum(numpy.floor(u * (2 * k + 1)), 2 * k).astype(numpy.int64) - k)
            if mode == 1:
                r = numpy.abs(src + 2 * n) % (2 * n)
                src = numpy.where(r >= n, 2 * n - 1 - r, r) if n > 1 else 0 * src
            elif mode == 2:
                ok = (src >= 0) & (src < n)
            src = numpy.clip(src, 0, n - 1)
        else:
            src = j + numpy.minimum(numpy.floor(u * (n - m + 1)), n - m).astype(numpy.int64)
        sources.append(numpy.broadcast_to(src, (choice.shape[0], m)))
        oks.append(ok)
    return sources, oks


def chosen_index(sources, samples):
    """The open mesh (sample, src[0], src[1], ...) that reads every output element."""
    rank = len(sources)
    index = [numpy.reshape(numpy.arange(samples), (samples,) + (1,) * rank)]
    for a, src in enumerate(sources):
        index.append(numpy.reshape(src, (samples,) + tuple(-1 if b == a else 1
                                                           for b in range(rank))))
    return tuple(index)


def choice_indices(w, u, replace, count):
    """F.random_choice's positions: per row r of the weights w (rows, n), `count` of
    them; with `replace`, the first i whose cumulative weight exceeds u[r, j] * sum(w[r])
    for each uniform u[r, j] (one sorted search over all rows, each offset by its row
    number); without, the `count` largest log(w[r, i]) - log(-log(u[r, i])) in order
    (Gumbel top-k: successive sampling without replacement). Weights nnabla refuses are
    refused (ValueError), as its CPU implementation does."""
    rows, n = w.shape
    weights = numpy.asarray(w, dtype=numpy.float64)
    positive = (weights > 0).sum(axis=1)
    if numpy.any(weights < 0) or not numpy.all(numpy.isfinite(weights)):
        raise ValueError("F.random_choice: the weights must be finite and non-negative")
    if numpy.any(positive == 0):
        raise ValueError("F.random_choice: each population needs a weight greater than 0 "
                         f"(population {int(numpy.argmin(positive))} has none)")
    if replace:
        cumulative = numpy.cumsum(weights, axis=1)
        cumulative /= cumulative[:, -1:]
        offsets = numpy.arange(rows, dtype=numpy.float64)[:, None]
        found = numpy.searchsorted((cumulative + offsets).ravel(), (u + offsets).ravel(),
                                   side="right")
        positions = numpy.minimum(found.reshape(rows, count) - offsets.astype(numpy.int64) * n,
                                  n - 1)
    else:
        if numpy.any(positive < count):
            raise ValueError(f"F.random_choice: sampling {count} without replacement needs "
                             f"{count} positive weights per population (population "
                             f"{int(numpy.argmin(positive))} has {int(positive.min())})")
        with numpy.errstate(divide="ignore"):
            keys = numpy.log(weights) - numpy.log(-numpy.log(numpy.maximum(u, 1e-300)))
        positions = numpy.argsort(-keys, axis=1, kind="stable")[:, :count]
    return positions.astype(u.dtype)


def erase_mask(draws, prob, area_ratios, aspect_ratios, x_shape):
    """F.random_erase's mask (1: erased) of x (B, C, H, W) from the uniform draws (n, B, 1
    or C, 5) of its rectangles: per rectangle (area, aspect ratio, apply, top, left) as
    nnabla's generate_random_coords turns them into H_e, W_e and a corner, rows and
    columns inclusive at both ends; any round erases."""
    _, _, height, width = x_shape
    u = numpy.asarray(draws, dtype=numpy.float64)
    area = (area_ratios[0] + (area_ratios[1] - area_ratios[0]) * u[..., 0]) * (height * width)
    ratio = aspect_ratios[0] + (aspect_ratios[1] - aspect_ratios[0]) * u[..., 1]
    tall = numpy.minimum(numpy.floor(numpy.sqrt(area * ratio)), height)
    wide = numpy.minimum(numpy.floor(numpy.sqrt(area / ratio)), width)
    top = numpy.floor(u[..., 3] * (height - tall + 1))  # uniform in [0, H - H_e]
    left = numpy.floor(u[..., 4] * (width - wide + 1))
    rows = numpy.arange(height)
    columns = numpy.arange(width)
    in_rows = (top[..., None] <= rows) & (rows <= (top + tall)[..., None])
    in_columns = (left[..., None] <= columns) & (columns <= (left + wide)[..., None])
    applied = (u[..., 2] <= prob)[..., None, None]
    erased = numpy.any(applied & in_rows[..., :, None] & in_columns[..., None, :], axis=0)
    return numpy.broadcast_to(erased, tuple(x_shape)).astype(draws.dtype)


def row_take(x, positions):
    """y[r, j] = x[r, positions[r, j]] (positions numbers, computed at run time)."""
    return numpy.take_along_axis(x, positions.astype(numpy.intp), axis=1)


def row_take_grad(dy, positions, length):
    """The transpose of row_take: dx[r, i] = sum over j with positions[r, j] == i of
    dy[r, j] (numpy.add.at adds repeated positions)."""
    dx = numpy.zeros((dy.shape[0], length), dtype=dy.dtype)
    rows = numpy.arange(dy.shape[0])[:, None]
    numpy.add.at(dx, (rows, positions.astype(numpy.intp)), dy)
    return dx


def chosen_take(x, choice, kind, base_axis, sizes, shifts, mode, value):
    """A random flip, shift or crop of x: y[s, j] = x[s, src(s, j)] (chosen_sources) for
    each sample s (the axes before base_axis), `value` where a shift reads outside."""
    lead = x.shape[:base_axis]
    samples = int(numpy.prod(lead, dtype=numpy.int64))
    xs = numpy.reshape(x, (samples,) + x.shape[base_axis:])
    sources, oks = chosen_sources(choice, kind, xs.shape[1:], sizes, shifts, mode)
    y = xs[chosen_index(sources, samples)]
    for a, ok in enumerate(oks):
        if ok is not None:
            shape = (samples,) + tuple(-1 if b == a else 1 for b in range(len(sizes)))
            y = numpy.where(numpy.reshape(ok, shape), y, x.dtype.type(value))
    return numpy.reshape(y, lead + tuple(sizes))


def chosen_take_grad(dy, choice, kind, base_axis, sizes, shifts, mode, value, x_shape):
    """The transpose of chosen_take: dx[s, i] = sum over j with src(s, j) == i (and
    inside) of dy[s, j] (numpy.add.at adds repeated positions)."""
    lead = tuple(x_shape[:base_axis])
    samples = int(numpy.prod(lead, dtype=numpy.int64))
    dys = numpy.reshape(dy, (samples,) + tuple(sizes))
    dx = numpy.zeros((samples,) + tuple(x_shape[base_axis:]), dtype=dy.dtype)
    sources, oks = chosen_sources(choice, kind, dx.shape[1:], sizes, shifts, mode)
    for a, ok in enumerate(oks):
        if ok is not None:
            shape = (samples,) + tuple(-1 if b == a else 1 for b in range(len(sizes)))
            dys = numpy.where(numpy.reshape(ok, shape), dys, 0)
    numpy.add.at(dx, chosen_index(sources, samples), dys)
    return numpy.reshape(dx, tuple(x_shape))


# --- image augmentation (F.image_augmentation) --------------------------------------------


def image_augment(x, draws, normal, size, pad, min_scale, max_scale, angle, aspect_ratio,
                  distortion, flip_lr, flip_ud, brightness, brightness_each, contrast,
                  contrast_center, contrast_each, noise):
    """nnabla 1.39's image_augmentation of x (..., C, H, W) to (..., C, h, w), (h, w) =
    size, per image n, in x's dtype. From its draws u[n] (uniform in [0, 1), put on
    nnabla's grid q = floor(1001*u)/1000): scale s = min_scale * (max_scale /
    min_scale)**q0, sx = aspect_ratio**(q1 - 1/2), sy = 1/sx, angle t = angle*(2*q2 - 1),
    crop centre (cxs, cys) = (q3 * (Wp*s*sx - w), q4 * (Hp*s*sy - h)) + (cx, cy), Wp = W +
    2*pad[1], Hp = H + 2*pad[0], (cx, cy) = ((w - 1)/2, (h - 1)/2); flips fl = flip_lr
    and u5 < 1/2, fu = flip_ud and u6 < 1/2; brightness b = brightness*(2*q - 1) and
    contrast c = contrast**(2*q - 1) (q7, q8, or per channel q[9 + ch], q[9 + C + ch]);
    distortion d = exp(distortion*(2*q[9 + 2C] - 1)) - 1, sigma = noise*q[10 + 2C].
    Output pixel (i, j) reads (X, Y) = (X0, Y0) + J*(x_ax, x_ay) + I*(y_ax, y_ay) with
    x_ax = -+cos t/(s*sx) (- if fl), y_ax = +-sin t/(s*sy) (+ if fl), x_ay = -+sin t/(s*sx)
    (- if fu), y_ay = -+cos t/(s*sy) (- if fu), X0 = cxs/(s*sx) - x_ax*cx - y_ax*cy -
    pad[1] (Y0 alike), and (J, I) = (j, i), or where d != 0 ((j - w/2)/(w/2) * (1 +
    d*r**2) * (w/2)/(1 + d) + w/2, same for i), r**2 the sum of both squared fractions;
    X clamped to [0, W - 1], Y to [0, H - 1], read bilinearly (the neighbour past the
    last pixel is the last); then y = (v + b - contrast_center) * c + contrast_center +
    sigma * normal (normal: the normal draw of y's shape, read only if noise > 0)."""
    dtype = x.dtype
    h_in, w_in = x.shape[-2], x.shape[-1]
    h_out, w_out = size
    channels = x.shape[-3] if x.ndim >= 3 else 1
    images = numpy.reshape(x, (-1, channels, h_in * w_in))
    samples = images.shape[0]
    u = numpy.asarray(draws, dtype=dtype).reshape(samples, -1)
    q = numpy.minimum(numpy.floor(u * 1001), 1000) * 0.001

    def log(value):  # a Python float: it keeps the arrays in x's dtype
        return float(numpy.log(value))

    scale = min_scale * numpy.exp(q[:, 0] * log(max_scale / min_scale))
    scale_x = numpy.exp(-log(aspect_ratio) * 0.5 + q[:, 1] * log(aspect_ratio))
    scale_y = 1 / scale_x
    inv_x, inv_y = 1 / (scale * scale_x), 1 / (scale * scale_y)
    theta = -angle + q[:, 2] * angle * 2
    cx, cy = (w_out - 1) * 0.5, (h_out - 1) * 0.5
    centre_x = q[:, 3] * ((w_in + 2 * pad[1]) * scale * scale_x - w_out) + cx
    centre_y = q[:, 4] * ((h_in + 2 * pad[0]) * scale * scale_y - h_out) + cy
    lr = u[:, 5] < (0.5 if flip_lr else -1.0)
    ud = u[:, 6] < (0.5 if flip_ud else -1.0)
    cos, sin = numpy.cos(theta), numpy.sin(theta)
    x_ax = numpy.where(lr, -cos, cos) * inv_x
    y_ax = numpy.where(lr, sin, -sin) * inv_y
    x_ay = numpy.where(ud, -sin, sin) * inv_x
    y_ay = numpy.where(ud, -cos, cos) * inv_y
    x0 = centre_x * inv_x - (x_ax * cx + y_ax * cy) - pad[1]
    y0 = centre_y * inv_y - (x_ay * cx + y_ay * cy) - pad[0]
    col = numpy.arange(w_out, dtype=dtype).reshape(1, 1, w_out)
    row = numpy.arange(h_out, dtype=dtype).reshape(1, h_out, 1)
    bend = (numpy.exp(q[:, 9 + 2 * channels] * 2 * distortion - distortion) - 1)
    bend = bend.reshape(samples, 1, 1)
    half_w, half_h = w_out * 0.5, h_out * 0.5
    fx, fy = (col - half_w) / half_w, (row - half_h) / half_h
    radial = 1 + bend * (fx * fx + fy * fy)
    cols = numpy.where(bend != 0, fx * radial * half_w / (1 + bend) + half_w, col)
    rows = numpy.where(bend != 0, fy * radial * half_h / (1 + bend) + half_h, row)

    def per_image(a):
        return a.reshape(samples, 1, 1)

    xs = per_image(x0) + cols * per_image(x_ax) + rows * per_image(y_ax)
    ys = per_image(y0) + cols * per_image(x_ay) + rows * per_image(y_ay)
    xs = numpy.clip(xs, 0, w_in - 1).reshape(samples, 1, -1)
    ys = numpy.clip(ys, 0, h_in - 1).reshape(samples, 1, -1)
    left, top = numpy.floor(xs), numpy.floor(ys)
    wx, wy = xs - left, ys - top
    left, top = left.astype(numpy.int64), top.astype(numpy.int64)
    right, bottom = numpy.minimum(left + 1, w_in - 1), numpy.minimum(top + 1, h_in - 1)

    def at(r, c):
        return numpy.take_along_axis(images, r * w_in + c, axis=2)

    v = (at(top, left) * ((1 - wx) * (1 - wy)) + at(top, right) * (wx * (1 - wy))
         + at(bottom, left) * ((1 - wx) * wy) + at(bottom, right) * (wx * wy))
    if brightness_each:
        b = q[:, 9:9 + channels] * brightness * 2 - brightness
    else:
        b = numpy.broadcast_to((q[:, 7] * brightness * 2 - brightness)[:, None],
                               (samples, channels))
    if contrast_each:
        c = numpy.exp(q[:, 9 + channels:9 + 2 * channels] * log(contrast) * 2) / contrast
    else:
        c = numpy.broadcast_to((numpy.exp(q[:, 8] * log(contrast) * 2) / contrast)[:, None],
                               (samples, channels))
    y = (v + (b - contrast_center)[:, :, None]) * c[:, :, None] + contrast_center
    if noise > 0:
        sigma = (q[:, 10 + 2 * channels] * noise).reshape(samples, 1, 1)
        y = y + numpy.reshape(normal, (samples, channels, -1)) * sigma
    return numpy.reshape(y, tuple(x.shape[:-2]) + (h_out, w_out)).astype(dtype)


# --- batched linear algebra: batch_inv, batch_det, batch_logdet, batch_cholesky ---------------

def linalg_inv(x):
    """inv of each matrix of x (B, N, N), in x's dtype."""
    return numpy.linalg.inv(x).astype(x.dtype, copy=False)


def linalg_det(x):
    """det of each matrix of x (B, N, N): shape (B,), x's dtype."""
    return numpy.asarray(numpy.linalg.det(x), dtype=x.dtype).reshape(x.shape[:1])


def linalg_logdet(x):
    """log |det| of each matrix of x (B, N, N) (nnabla's batch_logdet): shape (B,)."""
    return numpy.asarray(numpy.linalg.slogdet(x)[1], dtype=x.dtype).reshape(x.shape[:1])


def linalg_cholesky(x):
    """The lower Cholesky factor of each matrix of x (B, N, N), read from its lower
    triangle (numpy.linalg.cholesky's, as nnabla's Eigen LLT)."""
    return numpy.linalg.cholesky(x).astype(x.dtype, copy=False)


def linalg_cholesky_grad(factor, g):
    """nnabla's batch_cholesky gradient for the lower factor L and its cotangent g:
    P = L^T g, lower triangle kept, diagonal halved; S = L^-T P L^-1; (S + S^T) / 2."""
    n = factor.shape[-1]
    p = numpy.tril(numpy.matmul(numpy.swapaxes(factor, -1, -2), g))
    p[..., numpy.arange(n), numpy.arange(n)] *= 0.5
    inverse = numpy.linalg.inv(factor)
    s = numpy.matmul(numpy.matmul(numpy.swapaxes(inverse, -1, -2), p), inverse)
    return ((s + numpy.swapaxes(s, -1, -2)) * 0.5).astype(g.dtype, copy=False)


# --- rand_binomial, rand_beta, rand_gamma ------------------------------------------------------

def random_binomial(rng, shape, n, p, dtype):
    """Binomial B(n, p), drawn from `rng` (F.rand_binomial), as numbers of `dtype`."""
    return rng.binomial(int(n), p, shape).astype(dtype)


def random_beta(rng, shape, alpha, beta, dtype):
    """Beta(alpha, beta), drawn from `rng` (F.rand_beta)."""
    return rng.beta(alpha, beta, shape).astype(dtype)


def random_gamma(rng, shape, k, theta, dtype):
    """Gamma of shape k and scale theta, drawn from `rng` (F.rand_gamma)."""
    return rng.gamma(k, theta, shape).astype(dtype)


# --- fft, ifft: the DFT of complex pairs ------------------------------------------------------

def complex_dft(x, signal_ndim, inverse, scale):
    """The DFT of the complex numbers x[..., 0] + j x[..., 1] over the signal_ndim axes
    before the last, as real pairs again (F.fft, F.ifft):
    y[k] = scale * sum over n of x[n] exp(-+2 pi j sum_i k_i n_i / N_i),
    the sign + when `inverse` (no 1/N: `scale` holds it)."""
    z = x[..., 0] + 1j * x[..., 1]
    axes = tuple(range(-signal_ndim, 0))
    y = numpy.fft.ifftn(z, axes=axes, norm="forward") if inverse else numpy.fft.fftn(z, axes=axes)
    if scale != 1:
        y = y * scale
    return numpy.stack([y.real, y.imag], axis=-1).astype(x.dtype, copy=False)


# --- patch_correlation: products with shifted copies (ir/correlation.py) ----------------------
# Offsets (dy, dx) from ys x xs; the shifted array reads 0 outside its bounds.

def shifted_products(x1, x2, ys, xs):
    """q[n, i, j, y, x] = sum_c x1[n, c, y, x] * x2[n, c, y + ys[i], x + xs[j]]."""
    n, _, h, w = x1.shape
    q = numpy.zeros((n, len(ys), len(xs), h, w), dtype=numpy.result_type(x1, x2))
    for i, dy in enumerate(ys):
        top, bottom = shift_overlap(h, dy)
        for j, dx in enumerate(xs):
            left, right = shift_overlap(w, dx)
            q[:, i, j, top:bottom, left:right] = numpy.einsum(
                "nchw,nchw->nhw", x1[:, :, top:bottom, left:right],
                x2[:, :, top + dy:bottom + dy, left + dx:right + dx])
    return q


def shifted_gather(g, x, ys, xs):
    """out[n, c, y, x] = sum_ij g[n, i, j, y, x] * x[n, c, y + ys[i], x + xs[j]]."""
    _, _, h, w = x.shape
    out = numpy.zeros(x.shape, dtype=numpy.result_type(g, x))
    for i, dy in enumerate(ys):
        top, bottom = shift_overlap(h, dy)
        for j, dx in enumerate(xs):
            left, right = shift_overlap(w, dx)
            out[:, :, top:bottom, left:right] += (
                g[:, i, j, None, top:bottom, left:right]
                * x[:, :, top + dy:bottom + dy, left + dx:right + dx])
    return out


def shifted_scatter(g, x, ys, xs):
    """out[n, c, y, x] = sum_ij g[n, i, j, y - ys[i], x - xs[j]] * x[n, c, y - ys[i], x - xs[j]]
    (the shifted_products gradient to its second array)."""
    _, _, h, w = x.shape
    out = numpy.zeros(x.shape, dtype=numpy.result_type(g, x))
    for i, dy in enumerate(ys):
        top, bottom = shift_overlap(h, dy)
        for j, dx in enumerate(xs):
            left, right = shift_overlap(w, dx)
            out[:, :, top + dy:bottom + dy, left + dx:right + dx] += (
                g[:, i, j, None, top:bottom, left:right] * x[:, :, top:bottom, left:right])
    return out


# --- roi_align: bilinear samples of boxes, averaged per bin (ir/detection.py) -----------------
# nnabla 1.39's roi_align.cpp, in the boxes' dtype and its order of operations. The axes are
# separate: a bin's samples are every pair of a row sample and a column sample, and each
# sample's bilinear weights are a row weight times a column weight, so with Wy[k] (Ho, H)
# and Wx[k] (Wo, W) summing the weights of box k's samples, its bins are Wy[k] @ x[b] @
# Wx[k]^T over the count of samples.

def roi_align_axis(low, high, size, bins, ratio):
    """One axis of every box, from its edges low and high (K,) in pixels: (the weights
    (K, bins, size) of its samples, the number of samples per bin (K,)). Bin o's samples
    s = 0 .. n - 1 are at low + o*step + s*sub + sub/2, step = (high - low)/bins, sub =
    step/n, n = ratio, or ceil(step) where ratio <= 0; one outside [-1, size] weighs
    nothing, one inside is clamped into [0, size - 1] and weighs 1 - f on the pixel
    below it and f on the next (f its fraction)."""
    dtype = low.dtype
    step = (high - low) / dtype.type(bins)
    if ratio > 0:
        samples = numpy.full(step.shape, ratio, dtype=numpy.int64)
    else:  # (no sample where the box is not finite: its bins are NaN)
        samples = numpy.ceil(numpy.where(numpy.isfinite(step), step, 0)).astype(numpy.int64)
    width = max(int(samples.max(initial=0)), 1)
    sub = step / numpy.maximum(samples, 1).astype(dtype)
    o = numpy.arange(bins, dtype=dtype)[:, None]
    s = numpy.arange(width, dtype=dtype)
    pos = ((low[:, None, None] + o * step[:, None, None]) + s * sub[:, None, None]
           + (dtype.type(0.5) * sub)[:, None, None])
    used = (numpy.arange(width) < samples[:, None, None]) & (pos >= -1) & (pos <= size)
    pos = numpy.clip(numpy.where(used, pos, 0), 0, size - 1)
    cell = numpy.floor(pos)
    frac = pos - cell
    below = cell.astype(numpy.int64)
    above = numpy.minimum(below + 1, size - 1)
    count = len(low) * bins * size
    rows = (numpy.arange(len(low))[:, None, None] * bins + numpy.arange(bins)[:, None]) * size
    weights = numpy.bincount((rows + below).ravel(), numpy.where(used, 1 - frac, 0).ravel(),
                             minlength=count)
    weights += numpy.bincount((rows + above).ravel(), numpy.where(used, frac, 0).ravel(),
                              minlength=count)
    return weights.reshape(len(low), bins, size).astype(dtype), samples


def roi_align_boxes(boxes, x_shape, output_size, spatial_scale, sampling_ratio):
    """(the sample each box reads (K,), the row weights (K, Ho, H) and column weights (K,
    Wo, W) of its samples, 1 / its count of samples (K,), NaN where that count is 0 or a
    coordinate is not finite) of boxes (K, 5) rows (b, x1, y1, x2, y2) on x of x_shape
    (N, C, H, W). ValueError for a b that is not a sample of x once truncated towards
    zero, as nnabla's."""
    n, _, h, w = x_shape
    where = first_outside(boxes[:, 0], 0, n)
    if where is not None:
        raise ValueError(f"F.roi_align: boxes[{where[0]}, 0] holds "
                         f"{boxes[where[0], 0].item()!r}, which is not the index of one of "
                         f"the input's {n} samples: it is truncated towards zero, as nnabla "
                         f"reads it, and must then be from 0 to {n - 1}")
    one = boxes.dtype.type
    sy, sx, half = one(spatial_scale[0]), one(spatial_scale[1]), one(0.5)
    x1, y1, x2, y2 = (boxes[:, 1] * sx - half, boxes[:, 2] * sy - half,
                      boxes[:, 3] * sx - half, boxes[:, 4] * sy - half)
    wy, gy = roi_align_axis(y1, y2, h, output_size[0], sampling_ratio)
    wx, gx = roi_align_axis(x1, x2, w, output_size[1], sampling_ratio)
    count = gy * gx
    ok = numpy.isfinite(boxes[:, 1:]).all(axis=1) & (count != 0)
    scale = numpy.where(ok, one(1) / numpy.where(ok, count, 1).astype(boxes.dtype), numpy.nan)
    return boxes[:, 0].astype(numpy.int64), wy, wx, scale.astype(boxes.dtype)


def roi_align_forward(x, boxes, output_size, spatial_scale, sampling_ratio):
    """y[k, c] = Wy[k] @ x[b_k, c] @ Wx[k]^T / (box k's count of samples) (F.roi_align:
    nnabla's bins of bilinear samples, see roi_align_axis), for the boxes of each sample
    of x at once."""
    index, wy, wx, scale = roi_align_boxes(boxes, x.shape, output_size, spatial_scale,
                                           sampling_ratio)
    y = numpy.zeros((len(index), x.shape[1]) + tuple(output_size),
                    dtype=numpy.result_type(x, wy))
    for sample in numpy.unique(index):
        mine = index == sample
        rows = numpy.tensordot(wy[mine], x[sample], axes=(2, 1)).transpose(0, 2, 1, 3)
        y[mine] = rows @ numpy.swapaxes(wx[mine], 1, 2)[:, None]
    return y * scale[:, None, None, None]


def roi_align_grad(dy, boxes, x_shape, output_size, spatial_scale, sampling_ratio):
    """dx[b, c] = sum over the boxes k of sample b of Wy[k]^T @ dy[k, c] @ Wx[k] / (box
    k's count of samples): the transpose of roi_align_forward, the scatter-add of each
    box's samples into x; a box of NaN bins adds nothing (nnabla's loops have no sample to
    add to)."""
    index, wy, wx, scale = roi_align_boxes(boxes, x_shape, output_size, spatial_scale,
                                           sampling_ratio)
    keep = ~numpy.isnan(scale)[:, None, None, None]
    g = numpy.where(keep, dy, 0) * numpy.where(keep, scale[:, None, None, None], 0)
    columns = g.astype(wy.dtype, copy=False) @ wx[:, None]  # (K, C, Ho, W)
    dx = numpy.zeros(x_shape, dtype=columns.dtype)
    for sample in numpy.unique(index):
        mine = index == sample
        dx[sample] = numpy.tensordot(wy[mine], columns[mine], axes=((0, 1), (0, 2))
                                     ).transpose(1, 0, 2)
    return dx


def onnx_box_extents(boxes, center_point_box):
    """Per box of boxes (..., 4): (y begin, y end, x begin, x end, height, width) in
    nnabla's arithmetic: corners (y1, x1, y2, x2) of any diagonal ordered by min and max,
    or (x centre, y centre, width, height) as centre -/+ size / 2."""
    half = boxes.dtype.type(2)
    if center_point_box:
        xc, yc, w, h = (boxes[..., i] for i in range(4))
        return yc - h / half, yc + h / half, xc - w / half, xc + w / half, h, w
    y0, y1 = numpy.minimum(boxes[..., 0], boxes[..., 2]), numpy.maximum(boxes[..., 0],
                                                                        boxes[..., 2])
    x0, x1 = numpy.minimum(boxes[..., 1], boxes[..., 3]), numpy.maximum(boxes[..., 1],
                                                                        boxes[..., 3])
    return y0, y1, x0, x1, y1 - y0, x1 - x0


def onnx_nms_selected(boxes, scores, center_point_box, max_boxes, iou_threshold,
                      score_threshold):
    """ONNX NonMaxSuppression as nnabla 1.39's: per batch and class, the boxes in order of
    decreasing score (equal scores in the boxes' order), those scoring below
    score_threshold dropped, each kept box dropping every later one whose IoU with it
    exceeds iou_threshold (computed as nnabla's, in the boxes' dtype), the first
    max_boxes kept: rows (batch, class, box), as numbers of the boxes' dtype."""
    dtype = boxes.dtype
    iou_threshold, score_threshold = (dtype.type(numpy.float32(t))
                                      for t in (iou_threshold, score_threshold))
    found = []
    if max_boxes == 0:
        return numpy.zeros((0, 3), dtype=dtype)
    for b in range(boxes.shape[0]):
        y0, y1, x0, x1, h, w = onnx_box_extents(boxes[b], center_point_box)
        wi = numpy.minimum(x1[:, None], x1[None, :]) - numpy.maximum(x0[:, None], x0[None, :])
        hi = numpy.minimum(y1[:, None], y1[None, :]) - numpy.maximum(y0[:, None], y0[None, :])
        with numpy.errstate(divide="ignore", invalid="ignore"):
            inter = wi * hi
            iou = inter / ((w * h)[:, None] + (w * h)[None, :] - inter)
        iou = numpy.where((wi <= 0) | (hi <= 0), dtype.type(0), iou)
        for k in range(scores.shape[1]):
            order = numpy.argsort(-scores[b, k], kind="stable")
            alive = scores[b, k][order] >= score_threshold
            ranked = iou[numpy.ix_(order, order)] > iou_threshold
            for i in range(order.shape[0]):
                if alive[i]:
                    alive[i + 1:] &= ~ranked[i, i + 1:]
            chosen = order[alive][:max_boxes]
            found.append(numpy.stack([numpy.full_like(chosen, b), numpy.full_like(chosen, k),
                                      chosen], axis=1))
    return numpy.concatenate(found, axis=0).astype(dtype) if found else numpy.zeros(
        (0, 3), dtype=dtype)


def onnx_nms(boxes, scores, center_point_box, max_boxes, iou_threshold, score_threshold,
             count):
    """onnx_nms_selected's rows, `count` of them as when the graph was built (refused
    otherwise: the output's shape was fixed then)."""
    rows = onnx_nms_selected(boxes, scores, center_point_box, max_boxes, iou_threshold,
                             score_threshold)
    if rows.shape[0] != count:
        refuse_count_change("onnx_non_max_suppression", "the number of selected boxes",
                            rows.shape[0], count)
    return rows


def onnx_nms_count(boxes, scores, center_point_box, max_boxes, iou_threshold,
                   score_threshold):
    """How many rows onnx_nms_selected gives (the output's shape, when the graph is built)."""
    return numpy.array(onnx_nms_selected(boxes, scores, center_point_box, max_boxes,
                                         iou_threshold, score_threshold).shape[0],
                       dtype=boxes.dtype)


def nms_detection2d(x, thresh, nms, per_class):
    """nnabla's NmsDetection2d on x (B, N, 5 + C): boxes (x, y, w, h, objectness, class
    probabilities); objectness below thresh set to 0, the class probabilities times it (below
    thresh 0); then boxes suppressed (probabilities 0) by a higher-scoring one whose IoU
    with them exceeds nms: per class by the class scores, greedily (a suppressed box
    suppresses nothing), or (not per_class) by objectness, where any higher-ranked box
    suppresses, suppressed or not (nnabla's loop)."""
    dtype = x.dtype
    thresh, nms = dtype.type(thresh), dtype.type(nms)
    y = x.copy()
    objectness = numpy.where(x[..., 4] < thresh, dtype.type(0), x[..., 4])
    scores = objectness[..., None] * x[..., 5:]
    scores = numpy.where(scores < thresh, dtype.type(0), scores)
    iou = box_iou(x[..., :4])
    batch = numpy.arange(x.shape[0])[:, None]
    if per_class:
        s = numpy.ascontiguousarray(numpy.moveaxis(scores, 2, 1))  # (B, C, N)
        order = numpy.argsort(-s, axis=2, kind="stable")
        b3, k3 = batch[:, :, None], numpy.arange(s.shape[1])[None, :, None]
        for i in range(s.shape[2] - 1):
            current = order[:, :, i]
            alive = s[batch, k3[..., 0], current] != 0
            if not alive.any():
                continue
            later = order[:, :, i + 1:]
            kill = (iou[b3, current[..., None], later] > nms) & alive[..., None]
            s[b3, k3, later] = numpy.where(kill, dtype.type(0), s[b3, k3, later])
        scores = numpy.moveaxis(s, 1, 2)
    else:
        order = numpy.argsort(-objectness, axis=1, kind="stable")
        rank = numpy.empty_like(order)
        rank[batch, order] = numpy.arange(order.shape[1])
        before = rank[:, None, :] < rank[:, :, None]  # [b, i, j]: j ranked before i
        killed = (objectness != 0) & ((iou > nms) & before).any(axis=2)
        objectness = numpy.where(killed, dtype.type(0), objectness)
        scores = numpy.where(killed[..., None], dtype.type(0), scores)
    y[..., 4] = objectness
    y[..., 5:] = scores
    return y


def box_iou(boxes):
    """IoU of every pair of boxes (B, N, 4: centre x, y, width, height), as nnabla computes
    it: 0 where they do not overlap."""
    x, y, w, h = (boxes[..., i] for i in range(4))
    half_w, half_h = w / 2, h / 2
    ow = numpy.minimum((x + half_w)[:, :, None], (x + half_w)[:, None, :]) \
        - numpy.maximum((x - half_w)[:, :, None], (x - half_w)[:, None, :])
    oh = numpy.minimum((y + half_h)[:, :, None], (y + half_h)[:, None, :]) \
        - numpy.maximum((y - half_h)[:, :, None], (y - half_h)[:, None, :])
    overlap = (ow > 0) & (oh > 0)
    inter = numpy.where(overlap, ow * oh, 0)
    area = w * h
    union = area[:, :, None] + area[:, None, :] - inter
    with numpy.errstate(divide="ignore", invalid="ignore"):
        return numpy.where(overlap, inter / numpy.where(overlap, union, 1), 0).astype(boxes.dtype)


def inq_scheduled(indicators, count, iterations):
    """The indicators truncated to ints (as nnabla reads them), and what this pass makes
    of them when it selects no weights: themselves (a pass count not in `iterations`),
    all 1 (the last entry), or None (another entry: the caller fixes more)."""
    fixed = numpy.trunc(indicators)
    step = int(count.reshape(-1)[0])
    if step not in iterations:
        return fixed, fixed
    if step == iterations[-1]:
        return fixed, numpy.ones_like(fixed)
    return fixed, None


def inq_fix_largest(w, indicators, count, iterations):
    """nnabla's INQ indicators after a forward pass (selection_algorithm='largest_abs'):
    the indicators truncated to ints (as nnabla reads them); when the pass count is
    listed in `iterations`, all 1 at the last entry, else count(== 0) // 2 more learnable
    weights (0) become 1, those of largest |w| in the order of nnabla's std::sort (with
    fewer than two learnable, the first in that order, if learnable). A stable argsort
    gives that order unless weights of one |w| straddle the cut; then the sort is
    replayed (inq_sort_order)."""
    fixed, done = inq_scheduled(indicators, count, iterations)
    if done is not None:
        return done
    flat = fixed.reshape(-1)
    magnitude = numpy.abs(w).reshape(-1)
    learnable = flat == 0
    half = int(learnable.sum()) // 2
    order = numpy.argsort(-magnitude, kind="stable")
    candidates = order[learnable[order]]
    if half:
        tie = half < candidates.size \
            and magnitude[candidates[half - 1]] == magnitude[candidates[half]]
    else:
        tie = order.size > 1 and magnitude[order[0]] == magnitude[order[1]]
    if tie:
        order = numpy.asarray(inq_sort_order(magnitude.tolist()), dtype=numpy.int64)
        candidates = order[learnable[order]]
    chosen = candidates[:half] if half else order[:1][learnable[order[:1]]]
    flat = flat.copy()
    flat[chosen] = 1
    return flat.reshape(fixed.shape)


def inq_fix_random(indicators, count, coin, iterations):
    """nnabla's INQ indicators after a forward pass (selection_algorithm='random'): the
    indicators truncated to ints; when the pass count is listed in `iterations`, all 1 at
    the last entry, else each learnable one (0) takes `coin` (1 with probability 1/2)."""
    fixed, done = inq_scheduled(indicators, count, iterations)
    if done is not None:
        return done
    return numpy.where(fixed == 0, coin, fixed).astype(fixed.dtype)


def inq_pow2(w, indicators, num_bits):
    """nnabla's INQ quantization: w where the indicator is not 1; where it is, sign(w) *
    2^e with e = floor(log2 |w|) + (frac >= log2 1.5) limited to [n2, n1], or 0 below
    2^(n2 - 1), from m = max |w| (1 if 0): n1 = floor(log2 m) + (frac(log2 m) >= log2 1.5,
    compared in double as nnabla's), n2 = n1 + 1 - int(2^(num_bits - 2)); in w's dtype."""
    dtype = w.dtype.type
    magnitude = numpy.abs(w)
    # nnabla's running maximum skips NaN (no comparison holds); an infinite one leaves
    # no power of two to round to (nnabla's ints overflow): w is left as it is
    top = numpy.where(numpy.isnan(magnitude), dtype(0), magnitude).max() \
        if magnitude.size else dtype(0)
    top = dtype(1) if top == 0 else top
    if not numpy.isfinite(top):
        return w
    # log2 in double, rounded once to w's dtype: nnabla's log2f is correctly rounded where
    # the rule looks (|w| near 1.5 * 2^k), NumPy's float32 loop is up to 2 ulp off there
    log_top = numpy.log2(numpy.float64(top)).astype(w.dtype)
    n1 = int(numpy.floor(log_top)) + int(float(log_top - numpy.floor(log_top))
                                         >= 0.5849625007211562)
    n2 = n1 + 1 - int(2.0 ** (num_bits - 2))
    threshold = dtype(2.0 ** (n2 - 1))
    with numpy.errstate(divide="ignore", invalid="ignore"):  # (log2(0) is -inf)
        b = numpy.log2(magnitude.astype(numpy.float64)).astype(w.dtype)
        whole = numpy.floor(b)
        e = whole + ((b - whole) >= dtype(0.58496250072115619))
    # (non-finite exponents are x86's int of them, INT_MIN; n2 wins when n2 > n1, as
    # nnabla's two clamps in turn)
    e = numpy.maximum(numpy.minimum(numpy.nan_to_num(e, nan=n2, posinf=n2, neginf=n2), n1), n2)
    q = numpy.ldexp(numpy.where(w < 0, dtype(-1), dtype(1)), e.astype(numpy.int32))
    q = numpy.where(magnitude < threshold, dtype(0), q)
    return numpy.where(indicators == 1, q, w).astype(w.dtype, copy=False)


def all_reduce_sum(x, all_reduce, group):
    """x summed elementwise over the processes of `group`, the sum received by each:
    ``all_reduce(x, group)``, with the function the caller passed as `all_reduce` (the
    runtime passes its communicator's; any function returning that sum will do); x itself
    when it passed None (this process alone)."""
    if all_reduce is None:
        return x
    # (a copy of its own: the function may sum into the array it is given)
    total = numpy.asarray(all_reduce(numpy.array(x, copy=True), group))
    if total.shape != x.shape:
        raise ValueError(f"all_reduce(x, {group!r}) returned an array of shape {total.shape} "
                         f"for x of shape {x.shape}; it must return x summed elementwise "
                         f"over the processes of the group, in x's shape")
    return total.astype(x.dtype, copy=False)
