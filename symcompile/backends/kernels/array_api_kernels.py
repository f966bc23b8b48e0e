"""Kernels of the array API backend: the helpers a generated array API module may call.

Each function here is copied, by its source, into the modules that use it (see
`symcompile.backends.base.Kernels`). They use only the namespace of the arrays they are
given (the Python array API standard), builtins, and `array_api_compat` for libraries
whose arrays do not carry their namespace (PyTorch), imported on first need.
"""

# shared with every backend; inlined from there where a module calls it
from symcompile.backends.kernels.portable_kernels import (
    conv_output_size,
    inq_sort_order,
    pool_geometry,
    refuse_count_change,
    shift_overlap,
)


def namespace(function, argument, array):
    """(the array API namespace, the array type) of `array`'s library, which the other
    arguments must share: the array's own namespace (``__array_namespace__``: NumPy >= 2,
    CuPy, array-api-strict, JAX), else array-api-compat's wrapper (PyTorch), imported
    only then. ValueError, naming `argument` of `function`, when it is not an array."""
    try:
        return array.__array_namespace__(), type(array)
    except AttributeError:
        pass
    try:
        import array_api_compat
    except ImportError:
        raise ValueError(f"{function}(): argument {argument!r} must be an array of an array "
                         f"API library, got {type(array).__name__} (for libraries such as "
                         f"PyTorch, install array-api-compat: pip install array-api-compat)"
                         ) from None
    try:
        return array_api_compat.array_namespace(array), type(array)
    except TypeError:
        raise ValueError(f"{function}(): argument {argument!r} must be an array, got "
                         f"{type(array).__name__}") from None


def device_of(array):
    """Where `array` lives, for the arrays a function creates (array-api-compat knows
    the libraries whose arrays have no ``device`` attribute)."""
    try:
        return array.device
    except AttributeError:
        pass
    import array_api_compat

    return array_api_compat.device(array)


def assign(target, value):
    """`value` written into the caller's array `target` where the library's arrays are
    mutable, and returned; where they are immutable (JAX), `value` itself."""
    try:
        target[...] = value
    except (TypeError, ValueError, AttributeError):
        return value
    return target


def index_array(function, argument, value, shape, kind, what):
    """The namespace of `value`; ValueError unless it is an array of numbers of `shape` of
    the other arguments' type `kind` (`what` it holds names it: class labels, indices)."""
    if not isinstance(value, kind):
        raise ValueError(f"{function}(): argument {argument!r} must be an array of {what} "
                         f"of shape {shape} of the first argument's library "
                         f"({kind.__name__}), got {type(value).__name__}")
    try:
        (xp, _), found = namespace(function, argument, value), tuple(value.shape)
        numeric = xp.isdtype(value.dtype, ("real floating", "integral"))
    except (AttributeError, TypeError, ValueError):
        found, numeric = type(value).__name__, False
    if not numeric or found != shape:
        raise ValueError(f"{function}(): argument {argument!r} must be an array of {what} "
                         f"of shape {shape}, got {found}")
    return xp


def first_outside(xp, value, low, high):
    """(the index of the first element of `value` that is not an integer in [low, high)
    once truncated towards zero as nnabla reads it, NaN and infinities included, and that
    element), or None; `low` and `high` broadcast against `value`."""
    if xp.isdtype(value.dtype, "real floating"):
        bad = ~((value > low - 1) & (value < high))  # truncates into the range; not NaN
    else:
        bad = (value < low) | (value >= high)
    if not bool(xp.any(bad)):
        return None
    first = int(xp.argmax(xp.astype(xp.reshape(bad, (-1,)), xp.int8)))
    where, rest = [], first
    for size in reversed(tuple(value.shape)):
        where.insert(0, rest % size)
        rest //= size
    return tuple(where), float(xp.reshape(value, (-1,))[first])


def class_labels(function, argument, value, shape, classes, kind, ignore=True):
    """`value` as integer class labels, truncated towards zero as nnabla reads them (1.7 is
    class 1): each must name one of `classes` classes, or be -1 (the sample is ignored)
    where `ignore` (indices may not), in an array of the other arguments' type `kind`.
    Raises ValueError otherwise (NaN and infinities included)."""
    xp = index_array(function, argument, value, shape, kind, "class labels")
    outside = first_outside(xp, value, -1 if ignore else 0, classes)
    if outside is not None:
        where, found = outside
        rule = (f"class labels must be integers from 0 to {classes - 1}, or -1 to ignore a "
                f"sample" if ignore else f"indices must be integers from 0 to {classes - 1}")
        raise ValueError(f"{function}(): argument {argument!r} holds {found!r} at index "
                         f"{where}; {rule}")
    return xp.astype(value, xp.int32)  # every library has it (JAX without x64: no int64)


def nd_indices(function, argument, value, shape, rows, kind, reader=""):
    """`value` as integer N-d indices (F.gather_nd's, (M, ...): row m indexes axis m of an
    array), truncated towards zero as nnabla reads them, in an array of the other
    arguments' type `kind`: row m must hold integers in [rows[m][0], rows[m][1]) (nnabla's
    [-n, n) for an axis of n, negative ones counting from its end), for the functions
    `reader` names. Raises ValueError otherwise (NaN and infinities included)."""
    xp = index_array(function, argument, value, shape, kind, "indices")
    per_row, device = (len(rows),) + (1,) * (len(shape) - 1), device_of(value)
    floating = xp.isdtype(value.dtype, "real floating")
    bound = value.dtype if floating else xp.int64
    low = xp.reshape(xp.asarray([a for a, _ in rows], dtype=bound, device=device), per_row)
    high = xp.reshape(xp.asarray([b for _, b in rows], dtype=bound, device=device), per_row)
    outside = first_outside(xp, value if floating else xp.astype(value, xp.int64), low, high)
    if outside is not None:
        where, found = outside
        a, b = rows[where[0]]
        raise ValueError(f"{function}(): argument {argument!r} holds {found!r} at index "
                         f"{where}; row {where[0]} indexes axis {where[0]} (for "
                         f"{reader}): it must hold integers from {a} to {b - 1}")
    return xp.astype(value, xp.int32)  # every library has it (JAX without x64: no int64)


def require_finite(parameter, gradient):
    """Raise FloatingPointError naming `parameter` if its gradient holds NaN or Inf."""
    xp, _ = namespace("require_finite", parameter, gradient)
    if not bool(xp.all(xp.isfinite(gradient))):
        raise FloatingPointError(
            f"the gradient of {parameter!r} holds NaN or Inf; no parameter was updated. "
            f"Look for NaN or Inf in the inputs, a learning rate that is too large, or "
            f"log/division of zero")


# --- convolution (nnabla's: a cross-correlation of zero-padded inputs) --------------------
# x (N, C, *L), w (O, C/group, *K), y (N, O, *M) with M = (L + 2*pad - dilation*(K - 1) -
# 1) // stride + 1 per spatial axis; output channel o reads the input channels of its group
# (o // (O/group)). Per group:
#     y[n, o, m] = sum over c, k of w[o, c, k] * xpad[n, c, m*stride + k*dilation]
# Only the standard's functions: strided slices, stack, concat and tensordot; no item
# assignment (JAX's arrays are immutable), so padding and scattering concatenate zeros.


def conv_zeros(xp, like, axis, size):
    """Zeros of `like`'s dtype, device and shape, but `size` long along `axis`."""
    shape = tuple(size if i == axis else n for i, n in enumerate(like.shape))
    return xp.zeros(shape, dtype=like.dtype, device=device_of(like))


def conv_padded(xp, x, pad):
    """x (N, C, *L) with pad[i] zeros before and after spatial axis i."""
    for axis, p in enumerate(pad, start=2):
        if p:
            zeros = conv_zeros(xp, x, axis, p)
            x = xp.concat([zeros, x, zeros], axis=axis)
    return x


def conv_positions(kernel):
    """Every position in a kernel of shape `kernel`, in C order: (0, 0), (0, 1), ..."""
    positions = [()]
    for size in kernel:
        positions = [p + (i,) for p in positions for i in range(size)]
    return positions


def conv_window(x, position, out, stride, dilation):
    """What kernel position k reads of x (N, C, *L): the strided slice (N, C, *M) with
    window[n, c, m] = x[n, c, m*stride + k*dilation] (per spatial axis)."""
    return x[(slice(None), slice(None)) + tuple(
        slice(k * d, k * d + s * (m - 1) + 1, s)
        for k, m, s, d in zip(position, out, stride, dilation, strict=True))]


def conv_columns(xp, x, kernel, out, stride, dilation):
    """im2col: the windows of every kernel position of x (N, C, *L), stacked as (N, C,
    prod(K), *M)."""
    return xp.stack([conv_window(x, k, out, stride, dilation) for k in conv_positions(kernel)],
                    axis=2)


def conv_spread(xp, values, position, size, stride, dilation):
    """The transpose of conv_window: values (N, C, *M) where kernel position k reads them,
    at m*stride + k*dilation along each spatial axis, zeros elsewhere: (N, C, *size)."""
    start = (0, 0) + tuple(k * d for k, d in zip(position, dilation, strict=True))
    x_shape = tuple(values.shape[:2]) + tuple(size)
    return slice_grad(xp, values, x_shape, start, (1, 1) + tuple(stride))


def slice_grad(xp, dy, x_shape, start, step):
    """The transpose of the slice x[start::step] (per axis; its stop follows from dy's
    shape): dy at start + m*step along each axis, zeros elsewhere (built by stacking and
    concatenating, as immutable arrays allow)."""
    values = dy
    for axis, (b, s, n) in enumerate(zip(start, step, x_shape, strict=True)):
        m = values.shape[axis]
        if s > 1:  # s - 1 zeros after each value (a new axis after `axis`, merged), trimmed
            spread = xp.stack([values] + [xp.zeros_like(values)] * (s - 1), axis=axis + 1)
            spread = xp.reshape(spread, tuple(values.shape[:axis]) + (m * s,)
                                + tuple(values.shape[axis + 1:]))
            values = spread[(slice(None),) * axis + (slice(0, s * (m - 1) + 1), ...)]
        after = n - b - s * (m - 1) - 1
        parts = [conv_zeros(xp, values, axis, b)] if b else []
        parts += [values] + ([conv_zeros(xp, values, axis, after)] if after else [])
        values = xp.concat(parts, axis=axis) if len(parts) > 1 else values
    return values


def pad_constant(xp, x, before, after, value):
    """x with before[i] and after[i] elements equal to `value` around axis i (the
    standard has no pad: arrays of the value concatenated on each side)."""
    for axis, (b, a) in enumerate(zip(before, after, strict=True)):
        parts = []
        for count in (b, a):
            shape = tuple(count if i == axis else n for i, n in enumerate(x.shape))
            parts.append(xp.full(shape, value, dtype=x.dtype, device=device_of(x))
                         if count else None)
        pieces = [p for p in (parts[0], x, parts[1]) if p is not None]
        x = xp.concat(pieces, axis=axis) if len(pieces) > 1 else x
    return x


def conv_forward(xp, x, w, pad, stride, dilation, group):
    """nnabla's convolution of x (N, C, *L) with w (O, C/group, *K), per group:
    y[n, o, m] = sum over c, k of w[o, c, k] * xpad[n, c, m*stride + k*dilation], one
    tensordot of w with the stacked windows (im2col) per group."""
    rank, outs, ins, kernel = len(pad), w.shape[0] // group, w.shape[1], tuple(w.shape[2:])
    padded = conv_padded(xp, x, pad)
    out = conv_output_size(x.shape[2:], kernel, pad, stride, dilation)
    parts = []
    for j in range(group):
        columns = conv_columns(xp, padded[:, j * ins:(j + 1) * ins, ...], kernel, out, stride,
                               dilation)
        # (outs, ins, prod(K)) . (N, ins, prod(K), *M) over ins and K -> (outs, N, *M)
        part = xp.tensordot(xp.reshape(w[j * outs:(j + 1) * outs, ...], (outs, ins, -1)), columns,
                            axes=((1, 2), (1, 2)))
        parts.append(xp.permute_dims(part, (1, 0, *range(2, rank + 2))))
    return parts[0] if group == 1 else xp.concat(parts, axis=1)


def conv_grad_x(xp, dy, w, x_shape, pad, stride, dilation, group):
    """d loss / d x of conv_forward, dy being d loss / d y (col2im), per group:
    dxpad[n, c, m*stride + k*dilation] += sum over o of dy[n, o, m] * w[o, c, k].
    One tensordot per group gives the columns w.T dy; each kernel position's column is
    spread to where it was read and the spreads summed; dx is dxpad without the padding."""
    rank, outs, ins, kernel = len(pad), w.shape[0] // group, w.shape[1], tuple(w.shape[2:])
    size = tuple(n + 2 * p for n, p in zip(x_shape[2:], pad, strict=True))
    parts = []
    for j in range(group):
        # (outs, ins, prod(K)) . (N, outs, *M) over outs -> (ins, prod(K), N, *M)
        columns = xp.tensordot(xp.reshape(w[j * outs:(j + 1) * outs, ...], (outs, ins, -1)),
                               dy[:, j * outs:(j + 1) * outs, ...], axes=((0,), (1,)))
        total = None
        for i, position in enumerate(conv_positions(kernel)):
            column = xp.permute_dims(columns[:, i, ...], (1, 0, *range(2, rank + 2)))
            spread = conv_spread(xp, column, position, size, stride, dilation)
            total = spread if total is None else total + spread
        parts.append(total)
    padded = parts[0] if group == 1 else xp.concat(parts, axis=1)
    if not any(pad):
        return padded
    return padded[(slice(None), slice(None))
                  + tuple(slice(p, p + n) for n, p in zip(x_shape[2:], pad, strict=True))]


def conv_grad_w(xp, x, dy, w_shape, pad, stride, dilation, group):
    """d loss / d w of conv_forward, dy being d loss / d y, per group:
    dw[o, c, k] = sum over n, m of dy[n, o, m] * xpad[n, c, m*stride + k*dilation], one
    tensordot of dy with the stacked windows (im2col) per group."""
    rank, outs, ins, kernel = len(pad), w_shape[0] // group, w_shape[1], tuple(w_shape[2:])
    padded = conv_padded(xp, x, pad)
    out = tuple(dy.shape[2:])
    parts = []
    for j in range(group):
        columns = conv_columns(xp, padded[:, j * ins:(j + 1) * ins, ...], kernel, out, stride,
                               dilation)
        # (N, outs, *M) . (N, ins, prod(K), *M) over N and M -> (outs, ins, prod(K))
        part = xp.tensordot(dy[:, j * outs:(j + 1) * outs, ...], columns,
                            axes=((0, *range(2, rank + 2)), (0, *range(3, rank + 3))))
        parts.append(xp.reshape(part, (outs, ins, *kernel)))
    return parts[0] if group == 1 else xp.concat(parts, axis=0)


# --- convolution through its im2col matrix (Im2Col and the products that read it) ---------

def im2col(xp, x, kernel, pad, stride, dilation):
    """x's im2col matrix: cols[(c, k), (n, m)] = xpad[n, c, m*stride + k*dilation],
    (C * prod(K), N * prod(M)): the stacked windows (N, C, prod(K), *M) reordered."""
    rank = len(kernel)
    out = conv_output_size(tuple(x.shape[2:]), kernel, pad, stride, dilation)
    columns = conv_columns(xp, conv_padded(xp, x, pad), kernel, out, stride, dilation)
    columns = xp.permute_dims(columns, (1, 2, 0, *range(3, rank + 3)))  # (C, K, N, *M)
    return xp.reshape(columns, (x.shape[1] * len(conv_positions(kernel)), -1))


def col2im(xp, cols, x_shape, kernel, pad, stride, dilation):
    """The transpose of im2col: dxpad[n, c, m*stride + k*dilation] += cols[(c, k), (n, m)],
    each kernel position's part spread to where it was read and the spreads summed; dx
    is dxpad without the padding."""
    rank = len(kernel)
    n, c = x_shape[0], x_shape[1]
    out = conv_output_size(tuple(x_shape[2:]), kernel, pad, stride, dilation)
    size = tuple(length + 2 * p for length, p in zip(x_shape[2:], pad, strict=True))
    positions = conv_positions(kernel)
    values = xp.reshape(cols, (c, len(positions), n, *out))
    total = None
    for i, position in enumerate(positions):
        part = xp.permute_dims(values[:, i, ...], (1, 0, *range(2, rank + 2)))  # (N, C, *M)
        spread = conv_spread(xp, part, position, size, stride, dilation)
        total = spread if total is None else total + spread
    if not any(pad):
        return total
    return total[(slice(None), slice(None))
                 + tuple(slice(p, p + length) for length, p in zip(x_shape[2:], pad, strict=True))]


def conv_group_matrices(xp, a, group):
    """a (N, O, *M) as one matrix (O / group, N * prod(M)) per group of its channels."""
    outs = a.shape[1] // group
    rank = a.ndim - 2
    return [xp.reshape(xp.permute_dims(a[:, j * outs:(j + 1) * outs, ...],
                                       (1, 0, *range(2, rank + 2))), (outs, -1))
            for j in range(group)]


def conv_matmul(xp, cols, w, y_shape, group):
    """The convolution from x's im2col matrix, per group j: y[n, o, m] = sum over r of
    w[o, r] * cols[j*R + r, (n, m)], w read as (C', R): one matrix product per group."""
    outs, rows = w.shape[0] // group, cols.shape[0] // group
    n, spatial = y_shape[0], tuple(y_shape[2:])
    parts = []
    for j in range(group):
        part = xp.matmul(xp.reshape(w[j * outs:(j + 1) * outs, ...], (outs, -1)),
                         cols[j * rows:(j + 1) * rows, ...])
        part = xp.reshape(part, (outs, n, *spatial))
        parts.append(xp.permute_dims(part, (1, 0, *range(2, len(spatial) + 2))))
    return parts[0] if group == 1 else xp.concat(parts, axis=1)


def conv_matmul_grad_cols(xp, dy, w, cols_shape, group):
    """d loss / d cols of conv_matmul, per group j: dcols[j*R + r, (n, m)] = sum over o of
    w[o, r] * dy[n, o, m], one matrix product w_j.T dy_j per group."""
    outs = w.shape[0] // group
    parts = [xp.matmul(xp.matrix_transpose(xp.reshape(w[j * outs:(j + 1) * outs, ...],
                                                      (outs, -1))), g)
             for j, g in enumerate(conv_group_matrices(xp, dy, group))]
    return parts[0] if group == 1 else xp.concat(parts, axis=0)


def conv_matmul_grad_w(xp, cols, dy, w_shape, group):
    """d loss / d w of conv_matmul, per group j: dw[o, r] = sum over n, m of dy[n, o, m] *
    cols[j*R + r, (n, m)], one matrix product dy_j cols_j.T per group."""
    rows = cols.shape[0] // group
    parts = [xp.matmul(g, xp.matrix_transpose(cols[j * rows:(j + 1) * rows, ...]))
             for j, g in enumerate(conv_group_matrices(xp, dy, group))]
    dw = parts[0] if group == 1 else xp.concat(parts, axis=0)
    return xp.reshape(dw, tuple(w_shape))


# --- pooling (nnabla's max, sum and average pooling) ---------------------------------------
# x (*maps, *L) pooled over its last len(kernel) axes; output m reads the window
# [m*stride - pad, m*stride - pad + kernel) per axis, clipped to the input. The maps are
# flattened into one axis (N = 1, C = maps), the input padded (-inf for max, zeros
# otherwise) so that each window is whole, and each kernel position read as conv_window
# reads it (dilation 1); gradients spread back with conv_spread.



def pool_padded(xp, x, rank, before, after, fill):
    """x (*maps, *L) as (1, maps, *L), with before[i] and after[i] `fill` values around
    pooled axis i."""
    size = tuple(x.shape[x.ndim - rank:])
    x = xp.reshape(x, (1, -1) + size)
    for axis, (b, a) in enumerate(zip(before, after, strict=True), start=2):
        parts = []
        for count in (b, a):
            shape = tuple(count if i == axis else n for i, n in enumerate(x.shape))
            parts.append(xp.full(shape, fill, dtype=x.dtype, device=device_of(x))
                         if count else None)
        pieces = [p for p in (parts[0], x, parts[1]) if p is not None]
        x = xp.concat(pieces, axis=axis) if len(pieces) > 1 else x
    return x


def pool_cropped(xp, padded, x_shape, pad):
    """The inverse of pool_padded: the input's part of `padded`, shaped as x_shape."""
    rank = len(pad)
    inside = tuple(slice(p, p + n)
                   for n, p in zip(tuple(x_shape)[len(x_shape) - rank:], pad, strict=True))
    return xp.reshape(padded[(slice(None), slice(None)) + inside], tuple(x_shape))


def pool_max(xp, x, kernel, stride, pad, ignore_border):
    """The maximum of each window, padding ignored: the elementwise maximum of what each
    kernel position reads."""
    rank = len(kernel)
    out, after = pool_geometry(tuple(x.shape[x.ndim - rank:]), kernel, stride, pad,
                               ignore_border)
    padded = pool_padded(xp, x, rank, pad, after, -float("inf"))
    y = None
    for k in conv_positions(kernel):
        window = conv_window(padded, k, out, stride, (1,) * rank)
        y = window if y is None else xp.maximum(y, window)
    return xp.reshape(y, tuple(x.shape[:x.ndim - rank]) + out)


def pool_max_grad(xp, x, dy, kernel, stride, pad, ignore_border):
    """d loss / d x of pool_max: each window's dy goes to its first maximum in C order
    (found by comparisons: a position takes it where it equals the maximum and no earlier
    position did), spread back per kernel position and summed."""
    rank = len(kernel)
    out, after = pool_geometry(tuple(x.shape[x.ndim - rank:]), kernel, stride, pad,
                               ignore_border)
    padded = pool_padded(xp, x, rank, pad, after, -float("inf"))
    size = tuple(padded.shape[2:])
    windows = [conv_window(padded, k, out, stride, (1,) * rank) for k in conv_positions(kernel)]
    y = windows[0]
    for window in windows[1:]:
        y = xp.maximum(y, window)
    dy = xp.reshape(dy, tuple(y.shape))
    zeros = xp.zeros_like(dy)
    taken = None
    total = None
    for position, window in zip(conv_positions(kernel), windows, strict=True):
        hit = window == y
        if taken is not None:
            hit = xp.logical_and(hit, xp.logical_not(taken))
        taken = hit if taken is None else xp.logical_or(taken, hit)
        spread = conv_spread(xp, xp.where(hit, dy, zeros), position, size, stride, (1,) * rank)
        total = spread if total is None else total + spread
    return pool_cropped(xp, total, tuple(x.shape), pad)


def pool_max_pick(xp, x, c, kernel, stride, pad, ignore_border):
    """The transpose of pool_max_grad in dy: each window of c (of x's shape) read at the
    first maximum of x's window in C order (pool_max_grad's comparisons)."""
    rank = len(kernel)
    out, after = pool_geometry(tuple(x.shape[x.ndim - rank:]), kernel, stride, pad,
                               ignore_border)
    padded = pool_padded(xp, x, rank, pad, after, -float("inf"))
    values = pool_padded(xp, c, rank, pad, after, 0)
    windows = [conv_window(padded, k, out, stride, (1,) * rank) for k in conv_positions(kernel)]
    y = windows[0]
    for window in windows[1:]:
        y = xp.maximum(y, window)
    zeros = xp.zeros_like(y)
    taken, total = None, None
    for position, window in zip(conv_positions(kernel), windows, strict=True):
        hit = window == y
        if taken is not None:
            hit = xp.logical_and(hit, xp.logical_not(taken))
        taken = hit if taken is None else xp.logical_or(taken, hit)
        value = xp.where(hit, conv_window(values, position, out, stride, (1,) * rank), zeros)
        total = value if total is None else total + value
    return xp.reshape(total, tuple(x.shape[:x.ndim - rank]) + out)


def pool_sum(xp, x, kernel, stride, pad, ignore_border):
    """The sum of each window, padding zeros."""
    rank = len(kernel)
    out, after = pool_geometry(tuple(x.shape[x.ndim - rank:]), kernel, stride, pad,
                               ignore_border)
    padded = pool_padded(xp, x, rank, pad, after, 0)
    total = None
    for k in conv_positions(kernel):
        window = conv_window(padded, k, out, stride, (1,) * rank)
        total = window if total is None else total + window
    return xp.reshape(total, tuple(x.shape[:x.ndim - rank]) + out)


def pool_sum_grad(xp, dy, x_shape, kernel, stride, pad, ignore_border):
    """d loss / d x of pool_sum: each window's dy spread to the window's elements, per
    kernel position, summed."""
    rank = len(kernel)
    x_shape = tuple(x_shape)
    size = x_shape[len(x_shape) - rank:]
    out, after = pool_geometry(size, kernel, stride, pad, ignore_border)
    padded_size = tuple(p + n + a for n, p, a in zip(size, pad, after, strict=True))
    dy = xp.reshape(dy, (1, -1) + out)
    total = None
    for k in conv_positions(kernel):
        spread = conv_spread(xp, dy, k, padded_size, stride, (1,) * rank)
        total = spread if total is None else total + spread
    return pool_cropped(xp, total, x_shape, pad)


def pool_divisor(xp, like, size, kernel, stride, pad, ignore_border, including_pad):
    """What average pooling divides each window's sum by, of shape out, in `like`'s dtype
    and device: the window's size clipped to [-pad, L + pad) (including_pad) or to the
    input [0, L), per axis, the product over the axes."""
    out, _ = pool_geometry(size, kernel, stride, pad, ignore_border)
    divisor = xp.ones((), dtype=like.dtype, device=device_of(like))
    for m, n, k, s, p in zip(out, size, kernel, stride, pad, strict=True):
        starts = [i * s - p for i in range(m)]
        if including_pad:
            lengths = [min(a + k, n + p) - a for a in starts]
        else:
            lengths = [min(a + k, n) - max(a, 0) for a in starts]
        length = xp.asarray(lengths, dtype=like.dtype, device=device_of(like))
        divisor = xp.reshape(divisor, tuple(divisor.shape) + (1,)) * length
    return divisor


def pool_average(xp, x, kernel, stride, pad, ignore_border, including_pad):
    """The sum of each window divided by pool_divisor."""
    rank = len(kernel)
    divisor = pool_divisor(xp, x, tuple(x.shape[x.ndim - rank:]), kernel, stride, pad,
                           ignore_border, including_pad)
    return pool_sum(xp, x, kernel, stride, pad, ignore_border) / divisor


def pool_average_grad(xp, dy, x_shape, kernel, stride, pad, ignore_border, including_pad):
    """d loss / d x of pool_average: pool_sum_grad of dy / pool_divisor."""
    rank = len(kernel)
    divisor = pool_divisor(xp, dy, tuple(x_shape)[len(x_shape) - rank:], kernel, stride, pad,
                           ignore_border, including_pad)
    return pool_sum_grad(xp, dy / divisor, x_shape, kernel, stride, pad, ignore_border)


def random_generator(rng):
    """The generator a function draws dropout's masks from: `rng` itself if it is a
    numpy.random.Generator, else one seeded with it (an int, or None for fresh entropy).
    The standard has no random numbers: masks are drawn with NumPy, then moved."""
    import numpy

    return numpy.random.default_rng(rng)


def random_mask(xp, rng, shape, keep, dtype, device):
    """1 with probability `keep`, else 0 (dropout's mask), drawn from `rng` (NumPy) and
    made an array of `xp` on `device`."""
    return xp.astype(xp.asarray(rng.random(shape) < keep, device=device), dtype)


def random_moved(xp, values, dtype, device):
    """NumPy `values` as an array of `xp` of `dtype` on `device`, cast on the host first
    (a device may have no float64)."""
    import numpy

    host = values.astype(numpy.float32 if xp.finfo(dtype).bits == 32 else numpy.float64)
    return xp.asarray(host, device=device)


def arange_accumulated(xp, start, step, count, dtype, device):
    """nnabla's F.arange: y[0] = start, y[i] = y[i-1] + step, each sum rounded to `dtype`
    (the standard's cumulative sum adds in order, as nnabla's loop does)."""
    steps = xp.full((count,), step, dtype=dtype, device=device)
    if count:
        steps = xp.concat([xp.full((1,), start, dtype=dtype, device=device), steps[1:]])
    return xp.cumulative_sum(steps, dtype=dtype)


def linspace_values(xp, start, stop, num, dtype, device):
    """nnabla's F.linspace: y[i] = start + i*step with step = (stop - start)/(num - 1),
    computed on the host in float64 (a device may have none) and moved to `device`."""
    import numpy

    host = numpy.float32 if xp.finfo(dtype).bits == 32 else numpy.float64
    first = numpy.float64(host(start))
    step = numpy.float64(host(stop) - host(start)) / (num - 1) if num > 1 else 0.0
    return random_moved(xp, first + step * numpy.arange(num), dtype, device)


def random_uniform(xp, rng, shape, low, high, dtype, device):
    """Uniform in [low, high), drawn from `rng` (NumPy), moved to `device` (F.rand)."""
    return random_moved(xp, rng.uniform(low, high, shape), dtype, device)


def random_normal(xp, rng, shape, mu, sigma, dtype, device):
    """Normal (mean mu, standard deviation sigma), drawn from `rng` (NumPy) (F.randn)."""
    return random_moved(xp, rng.normal(mu, sigma, shape), dtype, device)


def random_integers(xp, rng, shape, low, high, dtype, device):
    """Integers in [low, high), drawn from `rng` (NumPy), as numbers (F.randint)."""
    return random_moved(xp, rng.integers(int(low), int(high), shape), dtype, device)


# --- fixed gathers, cumulative sums and products, prod, sorting, indices of extrema --------


def gather_axis(xp, x, indices, axis):
    """y[..., j, ...] = x[..., indices[j], ...] along `axis` (reflect/repeat padding,
    shifts, diagonals: the indices are fixed when the graph is compiled)."""
    return xp.take(x, xp.asarray(indices, device=device_of(x)), axis=axis)


def gather_axis_grad(xp, dy, indices, axis, length):
    """The transpose of gather_axis: dx[..., i, ...] = sum over j with indices[j] == i of
    dy[..., j, ...], dx of `length` along `axis`. The standard has no scatter-add: a
    tensordot of dy with the one-hot matrix onehot[j, i] = (indices[j] == i)."""
    device = device_of(dy)
    picked = xp.reshape(xp.asarray(indices, device=device), (-1, 1))
    onehot = xp.astype(picked == xp.arange(length, device=device), dy.dtype)
    moved = xp.tensordot(dy, onehot, axes=((axis,), (0,)))  # that axis moves last
    return xp.moveaxis(moved, -1, axis)


def nd_positions(xp, indices, shape):
    """The columns of N-d indices (M, *Y) as flat positions (int64) into an array of
    shape[:M] (negative indices count from the end, as nnabla's), (positions, inside): a
    column with an index outside [-n, n) on some axis (computed indices only: inputs are
    checked on entry) is not inside, and its position is 0."""
    m, device = indices.shape[0], device_of(indices)
    columns = xp.reshape(indices, (m, -1))
    sizes = xp.reshape(xp.asarray(list(shape[:m]), dtype=xp.int64, device=device), (m, 1))
    inside = xp.ones(columns.shape, dtype=xp.bool, device=device)
    if xp.isdtype(columns.dtype, "real floating"):  # into [-n - 1, n], so the cast is exact
        inside = xp.isfinite(columns)
        columns = xp.where(inside, columns, xp.zeros_like(columns))
        bounds = xp.astype(sizes, columns.dtype)
        columns = xp.minimum(xp.maximum(columns, -bounds - 1), bounds)
    columns = xp.astype(columns, xp.int64)  # truncated towards zero, as nnabla casts them
    inside = xp.all(inside & (columns >= -sizes) & (columns < sizes), axis=0)
    columns = xp.where(columns < 0, columns + sizes, columns)
    strides, stride = [], 1
    for n in reversed(shape[:m]):
        strides.insert(0, stride)
        stride *= n
    strides = xp.reshape(xp.asarray(strides, dtype=xp.int64, device=device), (m, 1))
    positions = xp.sum(columns * strides, axis=0)
    return xp.where(inside, positions, xp.zeros_like(positions)), inside


def nd_writer(xp, positions, inside, count):
    """Per position of an array of `count` (flat), the last (inside) column of N-d indices
    that names it, or -1: the largest column number of the one-hot comparison's."""
    device = device_of(positions)
    hits = (xp.reshape(positions, (-1, 1)) == xp.reshape(
        xp.arange(count, dtype=xp.int64, device=device), (1, -1))) & xp.reshape(inside, (-1, 1))
    columns = xp.reshape(xp.arange(positions.shape[0], dtype=xp.int64, device=device), (-1, 1))
    return xp.max(xp.where(hits, columns, xp.asarray(-1, dtype=xp.int64, device=device)),
                  axis=0)


def gather_nd(xp, x, indices, last):
    """y[y..., r...] = x[indices[:, y...], r...] (F.gather_nd), 0 where a computed index
    is outside x or, with `last`, where a later column names the same position (the
    transpose of scatter_nd's assignment)."""
    m = indices.shape[0]
    rest, count = tuple(x.shape[m:]), 1
    for n in x.shape[:m]:
        count *= n
    positions, keep = nd_positions(xp, indices, tuple(x.shape))
    if last:
        mine = xp.arange(positions.shape[0], dtype=xp.int64, device=device_of(positions))
        keep = keep & (xp.take(nd_writer(xp, positions, keep, count), positions) == mine)
    y = xp.take(xp.reshape(x, (count,) + rest), positions, axis=0)
    y = xp.where(xp.reshape(keep, (-1,) + (1,) * len(rest)), y, xp.zeros_like(y))
    return xp.reshape(y, tuple(indices.shape[1:]) + rest)


def bool_rows(xp, function, mask, nnz):
    """(where `mask` is not 0, flattened; the flat positions of those elements, in order),
    refusing a mask whose count of them is not `nnz`. Positions by a stable sort of the
    zeros after the non-zeros: the standard's boolean indexing has data-dependent shapes,
    which not every library supports."""
    where = xp.reshape(mask != 0, (-1,))
    count = int(xp.sum(xp.astype(where, xp.int64)))
    if count != nnz:
        raise ValueError(f"F.{function}: the mask has {count} non-zero elements, but the "
                         f"data has {nnz} rows (one per non-zero element): give a mask with "
                         f"{nnz} non-zeros, or data of {count} rows")
    order = xp.argsort(xp.astype(~where, xp.int8), stable=True)
    return where, order[:nnz]


def bool_scatter(xp, x, mask):
    """The rows of x, in order, where mask is not 0; zeros elsewhere (F.bool_scatter):
    element i of the flat mask reads row (number of non-zeros before it)."""
    where, _ = bool_rows(xp, "bool_scatter", mask, x.shape[0])
    width = 1
    for n in x.shape[1:]:
        width *= n
    rows = xp.reshape(x, (x.shape[0], width))
    before = xp.cumulative_sum(xp.astype(where, xp.int64)) - 1
    read = xp.take(rows, xp.clip(before, 0, max(x.shape[0] - 1, 0)), axis=0) \
        if x.shape[0] else xp.zeros((where.shape[0], rows.shape[1]), dtype=x.dtype)
    out = xp.where(xp.reshape(where, (-1, 1)), read, xp.zeros_like(read))
    return xp.reshape(out, tuple(mask.shape) + tuple(x.shape[1:]))


def bool_gather(xp, y, mask, nnz):
    """The rows of y where mask is not 0, in order (bool_scatter's gradient)."""
    _, positions = bool_rows(xp, "bool_scatter", mask, nnz)
    rows = xp.reshape(y, (-1,) + tuple(y.shape[mask.ndim:]))
    return xp.take(rows, positions, axis=0)


def counts_above(xp, values, n):
    """counts[i], i < n: how many of `values` (1-D, truncated to integers, as nnabla reads
    lengths and batch sizes) are over i, as numbers of their dtype (a padded batch's
    batch sizes from its lengths, and its lengths from its batch sizes)."""
    numbers = xp.arange(n, dtype=values.dtype, device=device_of(values))
    over = xp.reshape(xp.trunc(values), (1, -1)) > xp.reshape(numbers, (-1, 1))
    return xp.astype(xp.sum(xp.astype(over, xp.int64), axis=1), values.dtype)


def packed_grid(xp, function, sizes, steps, batch, batch_first, rows, exact_batch):
    """For every position of the padded grid, flattened ((steps, batch), or (batch, steps)
    with batch_first), whether a packed row lives there and which (step-major, the first
    sizes[t] sequences at step t), by arithmetic on the grid (no scatter); refuses sizes
    that do not sum to `rows`, or whose largest is not `batch` (with `exact_batch`) or is
    over it."""
    s = xp.astype(xp.trunc(sizes), xp.int64)
    total = int(xp.sum(s))
    if total != rows:
        refuse_count_change(function, "the number of packed rows (the sum of the batch "
                            "sizes)", total, rows)
    largest = int(xp.max(s)) if s.shape[0] else 0
    if (exact_batch and largest != batch) or largest > batch or (
            s.shape[0] and int(xp.min(s)) < 0):
        refuse_count_change(function, "the largest batch size", largest, batch)
    device = device_of(sizes)
    t = xp.arange(steps, dtype=xp.int64, device=device)
    b = xp.arange(batch, dtype=xp.int64, device=device)
    t, b = (xp.reshape(t, (1, -1)), xp.reshape(b, (-1, 1))) if batch_first else (
        xp.reshape(t, (-1, 1)), xp.reshape(b, (1, -1)))
    known = t < s.shape[0]
    step = xp.where(known, t, xp.zeros_like(t))
    before = xp.cumulative_sum(s) - s
    size = xp.reshape(xp.take(s, xp.reshape(step, (-1,)), axis=0), step.shape)
    valid = known & (b < size)
    row = xp.reshape(xp.take(before, xp.reshape(step, (-1,)), axis=0), step.shape) + b
    row = xp.where(valid, row, xp.zeros_like(row))
    return xp.reshape(valid, (-1,)), xp.reshape(row, (-1,))


def sequence_pack(xp, x, sizes, batch_first, rows):
    """The rows of the padded x (steps, batch, ...) ((batch, steps, ...) with batch_first)
    packed step by step, the first sizes[t] sequences at step t: (rows, ...); each packed
    row's grid position found by a search over the grid's row numbers."""
    steps, batch = (x.shape[1], x.shape[0]) if batch_first else (x.shape[0], x.shape[1])
    valid, row = packed_grid(xp, "pack_padded_sequence", sizes, steps, batch, batch_first,
                             rows, False)
    order = xp.where(valid, row, xp.full_like(row, rows))  # the grid's rows, in grid order
    position = xp.argsort(order, stable=True)[:rows]  # the grid position of each row
    flat = xp.reshape(x, (steps * batch,) + tuple(x.shape[2:]))
    return xp.take(flat, position, axis=0)


def sequence_unpack(xp, p, sizes, batch_first, steps, batch, fill, exact_batch):
    """The packed rows p (rows, ...) placed back into a padded (steps, batch, ...) array
    ((batch, steps, ...) with batch_first), `fill` elsewhere: each grid position reads
    its row (a gather)."""
    valid, row = packed_grid(xp, "pad_packed_sequence", sizes, steps, batch, batch_first,
                             p.shape[0], exact_batch)
    width = 1
    for n in p.shape[1:]:
        width *= n
    rows = xp.reshape(p, (p.shape[0], width))
    read = xp.take(rows, row, axis=0) if p.shape[0] else xp.zeros(
        (row.shape[0], width), dtype=p.dtype, device=device_of(p))
    out = xp.where(xp.reshape(valid, (-1, 1)), read, xp.full_like(read, fill))
    return xp.reshape(out, ((batch, steps) if batch_first else (steps, batch))
                      + tuple(p.shape[1:]))


def bool_gather_built(xp, y, mask, nnz):
    """The rows of y where mask is not 0, in order (F.bool_gather), nnz the mask's count
    of non-zeros when the graph was built, which it must still have."""
    count = int(xp.sum(xp.astype(mask != 0, xp.int64)))
    if count != nnz:
        refuse_count_change("bool_gather", "the mask's number of non-zero elements", count,
                            nnz)
    return bool_gather(xp, y, mask, nnz)


def nonzero_indices(xp, x, nnz):
    """The indices of x's non-zero elements (NaN is not 0) in C order, (x.ndim, nnz): row d
    their positions along axis d, as numbers of x's dtype (F.nonzero); nnz their count
    when the graph was built, which x must still have. Positions by a stable sort of the
    zeros after the non-zeros (boolean indexing's shapes are data-dependent)."""
    where = xp.reshape(x != 0, (-1,))
    count = int(xp.sum(xp.astype(where, xp.int64)))
    if count != nnz:
        refuse_count_change("nonzero", "the number of non-zero elements", count, nnz)
    flat = xp.argsort(xp.astype(~where, xp.int8), stable=True)[:nnz]
    rows, stride = [], 1
    for length in reversed(x.shape):
        rows.insert(0, (flat // stride) % length)
        stride *= length
    if not rows:
        return xp.zeros((0, nnz), dtype=x.dtype, device=device_of(x))
    return xp.astype(xp.stack(rows, axis=0), x.dtype)


def unique_part(xp, x, part, flatten, axis, ascending, count):
    """One of F.unique's index outputs, as numbers of x's dtype: part 0 the index of each
    unique value's first occurrence (of each unique slice along `axis` without
    `flatten`), 1 the inverse, 2 the counts; sorted lexicographically by stable sorts from
    the last column to the first, or without `ascending` in the order of first occurrences,
    as nnabla's. Group boundaries by searchsorted over the group numbers (boolean
    indexing's shapes are data-dependent); `count` the number of unique values when the
    graph was built, which x must still have."""
    if flatten:
        rows = xp.reshape(x, (-1, 1))
    else:
        rows = xp.reshape(xp.moveaxis(x, axis, 0), (x.shape[axis], -1))
    n = rows.shape[0]
    device = device_of(x)
    order = xp.arange(n, dtype=xp.int64, device=device)
    for column in range(rows.shape[1] - 1, -1, -1):
        key = xp.take(rows[:, column], order, axis=0)
        order = xp.take(order, xp.argsort(key, stable=True), axis=0)
    ordered = xp.take(rows, order, axis=0)
    new = xp.concat([xp.ones((1,), dtype=xp.bool, device=device),
                     xp.any(ordered[1:, :] != ordered[:-1, :], axis=1)])
    found = int(xp.sum(xp.astype(new, xp.int64)))
    if found != count:
        refuse_count_change("unique", "the number of unique values", found, count)
    group = xp.cumulative_sum(xp.astype(new, xp.int64)) - 1
    numbers = xp.arange(count, dtype=xp.int64, device=device)
    starts = xp.searchsorted(group, numbers, side="left")
    counts = xp.searchsorted(group, numbers, side="right") - starts
    first = xp.take(order, starts, axis=0)
    inverse = xp.take(group, xp.argsort(order), axis=0)
    if not ascending:
        by_first = xp.argsort(first, stable=True)
        rank = xp.argsort(by_first)
        first, counts = xp.take(first, by_first, axis=0), xp.take(counts, by_first, axis=0)
        inverse = xp.take(rank, inverse, axis=0)
    return xp.astype((first, inverse, counts)[part], x.dtype)


def segment_sums(xp, positions, values, count):
    """out[p] = the sum of the rows of values (P, W) whose position is p, for p < count
    (rows at other positions are dropped): the rows sorted by position (stably), a
    segmented inclusive scan by doubling (each row adds the partial sum `shift` rows back
    while that row has its position: log2(P) passes, sums of pairs, no running total to
    cancel), each position's sum read at its last row (searchsorted); the standard has no
    scatter-add."""
    device = device_of(values)
    if not positions.shape[0]:
        return xp.zeros((count, values.shape[1]), dtype=values.dtype, device=device)
    order = xp.argsort(positions, stable=True)
    keys = xp.take(positions, order, axis=0)
    sums = xp.take(values, order, axis=0)
    rows, shift = keys.shape[0], 1
    while shift < rows:
        same = xp.reshape(keys[shift:] == keys[:-shift], (-1, 1))
        moved = xp.where(same, sums[:-shift, :], xp.zeros_like(sums[:-shift, :]))
        sums = xp.concat([sums[:shift, :], sums[shift:, :] + moved], axis=0)
        shift *= 2
    slots = xp.arange(count, dtype=keys.dtype, device=device)
    last = xp.searchsorted(keys, slots, side="right") - 1
    found = (last >= 0) & (xp.take(keys, xp.where(last >= 0, last, xp.zeros_like(last)),
                                   axis=0) == slots)
    read = xp.take(sums, xp.where(found, last, xp.zeros_like(last)), axis=0)
    return xp.where(xp.reshape(found, (-1, 1)), read, xp.zeros_like(read))


def scatter_nd(xp, data, indices, shape, add):
    """Zeros of `shape` with data[y..., r...] written at [indices[:, y...], r...]
    (F.scatter_nd): added with `add` (repeated positions sum: segment_sums), else
    assigned (the last of repeated positions wins, as nnabla's loop: each position reads
    its last writer); outside positions write nothing."""
    m = indices.shape[0]
    rest, count, width = tuple(shape[m:]), 1, 1
    for n in shape[:m]:
        count *= n
    for n in rest:
        width *= n
    positions, keep = nd_positions(xp, indices, tuple(shape))
    values = xp.reshape(data, (positions.shape[0], width))
    if add:
        out = segment_sums(xp, xp.where(keep, positions, xp.full_like(positions, count)),
                           values, count)
    else:
        writer = nd_writer(xp, positions, keep, count)
        read = xp.take(values, xp.where(writer < 0, xp.zeros_like(writer), writer), axis=0)
        out = xp.where(xp.reshape(writer >= 0, (-1, 1)), read, xp.zeros_like(read))
    return xp.reshape(out, tuple(shape))


def cumulative_sum(xp, x, axis):
    """y[i] = x[0] + x[1] + ... + x[i] along `axis`."""
    return xp.cumulative_sum(x, axis=axis)


def cumulative_prod(xp, x, axis):
    """y[i] = x[0] * x[1] * ... * x[i] along `axis`."""
    return xp.cumulative_prod(x, axis=axis)


def cumulative_prod_grad(xp, x, dy, axis):
    """d loss / d x of y = cumulative_prod(x), exact where x holds zeros (no division):
    dx[i] = P[i] * S[i] along `axis`, with P[i] = x[0] * ... * x[i-1] (P[0] = 1) and
    S[i] = sum over j >= i of dy[j] * x[i+1] * ... * x[j], computed from the end as
    S[n-1] = dy[n-1], S[i] = dy[i] + x[i+1] * S[i+1] (a list of slices, stacked: arrays
    may be immutable)."""
    x, dy = xp.moveaxis(x, axis, 0), xp.moveaxis(dy, axis, 0)
    n = x.shape[0]
    suffix = [dy[n - 1, ...]]
    for i in range(n - 2, -1, -1):
        suffix.insert(0, dy[i, ...] + x[i + 1, ...] * suffix[0])
    ones = xp.ones((1,) + tuple(x.shape[1:]), dtype=x.dtype, device=device_of(x))
    prefix = xp.concat([ones, xp.cumulative_prod(x[:n - 1, ...], axis=0)], axis=0) \
        if n > 1 else ones
    return xp.moveaxis(prefix * xp.stack(suffix, axis=0), 0, axis)


def cumulative_prod_jvp(xp, x, t, axis):
    """The change of y = cumulative_prod(x) when x changes by t (J t, the VJP of
    cumulative_prod_grad in dy), without division: u[0] = t[0] and
    u[i] = u[i-1] * x[i] + y[i-1] * t[i] along `axis` (slices, stacked)."""
    x, t = xp.moveaxis(x, axis, 0), xp.moveaxis(t, axis, 0)
    y = xp.cumulative_prod(x, axis=0)
    u = [t[0, ...]]
    for i in range(1, x.shape[0]):
        u.append(u[-1] * x[i, ...] + y[i - 1, ...] * t[i, ...])
    return xp.moveaxis(xp.stack(u, axis=0), 0, axis)


def cumulative_prod_grad_jvp(xp, x, dy, t, axis):
    """The change of dx = cumulative_prod_grad(x, dy) when x changes by t (the Hessian of
    sum(dy * cumulative_prod(x)) times t, also the VJP of cumulative_prod_grad in x, the
    Hessian being symmetric): dx = P * S differentiated through the recurrences of P and
    S, dP[i] = dP[i-1] * x[i-1] + P[i-1] * t[i-1] (dP[0] = 0) and
    dS[i] = t[i+1] * S[i+1] + x[i+1] * dS[i+1] (dS[n-1] = 0) (slices, stacked)."""
    x, dy, t = (xp.moveaxis(a, axis, 0) for a in (x, dy, t))
    n = x.shape[0]
    prefix = [xp.ones_like(x[0, ...])]
    d_prefix = [xp.zeros_like(x[0, ...])]
    for i in range(1, n):
        d_prefix.append(d_prefix[-1] * x[i - 1, ...] + prefix[-1] * t[i - 1, ...])
        prefix.append(prefix[-1] * x[i - 1, ...])
    suffix, d_suffix = [dy[n - 1, ...]], [xp.zeros_like(dy[n - 1, ...])]
    for i in range(n - 2, -1, -1):
        d_suffix.insert(0, t[i + 1, ...] * suffix[0] + x[i + 1, ...] * d_suffix[0])
        suffix.insert(0, dy[i, ...] + x[i + 1, ...] * suffix[0])
    result = [dp * s + p * ds for p, dp, s, ds in zip(prefix, d_prefix, suffix, d_suffix,
                                                        strict=True)]
    return xp.moveaxis(xp.stack(result, axis=0), 0, axis)


def reduce_prod(xp, x, axes, keepdims):
    """The product of x over `axes`: y = prod over those axes of x."""
    return xp.prod(x, axis=tuple(axes), keepdims=bool(keepdims))


def sort_order(xp, x, axis, reverse):
    """The indices that sort x along `axis`, ascending (descending if `reverse`), equal
    elements in their order in x (a stable sort): y = take_along_axis(x, order)."""
    return xp.argsort(x, axis=axis, descending=bool(reverse), stable=True)


def sort_values(xp, x, axis, reverse):
    """x sorted along `axis`: y[j] = x[order[j]] (see sort_order)."""
    return xp.take_along_axis(x, sort_order(xp, x, axis, reverse), axis=axis)


def sort_grad(xp, x, dy, axis, reverse):
    """d loss / d x of sort_values: each dy goes back where its element came from,
    dx[order[j]] = dy[j] along `axis`, i.e. dx = take_along_axis(dy, inverse) with the
    inverse permutation inverse = argsort(order) (the standard has no scatter)."""
    inverse = xp.argsort(sort_order(xp, x, axis, reverse), axis=axis, stable=True)
    return xp.take_along_axis(dy, inverse, axis=axis)


def sort_index(xp, x, axis, reverse):
    """The order of sort_values (its indices into x) as numbers of x's dtype."""
    return xp.astype(sort_order(xp, x, axis, reverse), x.dtype)


def search_sorted(xp, s, v, right):
    """xp.searchsorted of each row of v's last axis in the same row of s's (the standard
    takes one sorted row at a time), side "right" with `right` else "left", as numbers of
    v's dtype."""
    side = "right" if right else "left"
    rows = xp.reshape(s, (-1, s.shape[-1]))
    values = xp.reshape(v, (-1, v.shape[-1]))
    found = [xp.astype(xp.searchsorted(rows[i, :], values[i, :], side=side), v.dtype)
             for i in range(values.shape[0])]
    return xp.reshape(xp.stack(found), v.shape)


def arg_extremum(xp, x, axis, keepdims, is_max):
    """The index of the first maximum (is_max) or minimum along `axis`, as a number of x's
    dtype: argmax/argmin of x."""
    find = xp.argmax if is_max else xp.argmin
    return xp.astype(find(x, axis=axis, keepdims=bool(keepdims)), x.dtype)


def top_k_order(xp, x, k, absolute, largest):
    """The indices of the k elements of each row of x (N, S) with the largest key (the
    smallest if not `largest`), key = |x| if `absolute` else x, in the key's order, equal
    keys first in x's order (a stable sort)."""
    key = xp.abs(x) if absolute else x
    return xp.argsort(key, axis=1, descending=bool(largest), stable=True)[:, :k]


def top_k_values(xp, x, k, absolute, largest):
    """y[n, j] = x[n, order[n, j]] for the top_k_order of x."""
    return xp.take_along_axis(x, top_k_order(xp, x, k, absolute, largest), axis=1)


def top_k_onehot(xp, x, order):
    """onehot[n, j, i] = (order[n, j] == i), in x's dtype (the standard has no scatter)."""
    positions = xp.arange(x.shape[1], device=device_of(x))
    return xp.astype(xp.expand_dims(order, axis=2) == positions, x.dtype)


def top_k_grad(xp, x, dy, k, absolute, largest):
    """d loss / d x of top_k_values: dx[n, order[n, j]] = dy[n, j], zeros elsewhere, as
    dx[n, i] = sum over j of dy[n, j] * onehot[n, j, i]."""
    onehot = top_k_onehot(xp, x, top_k_order(xp, x, k, absolute, largest))
    return xp.sum(xp.expand_dims(dy, axis=2) * onehot, axis=1)


def top_k_index(xp, x, k, absolute, largest, kind):
    """top_k_order of x as numbers of x's dtype (kind 0), or the mask (kind 1):
    mask[n, i] = 1 where i is in order[n], else 0 (the one-hot rows summed)."""
    order = top_k_order(xp, x, k, absolute, largest)
    if not kind:
        return xp.astype(order, x.dtype)
    return xp.sum(top_k_onehot(xp, x, order), axis=1)


def sort_take(xp, x, values, axis, reverse):
    """`values` read in the order that sorts x along `axis`: y[j] = values[order[j]]
    (the transpose of sort_grad in dy, for second derivatives)."""
    return xp.take_along_axis(values, sort_order(xp, x, axis, reverse), axis=axis)


def top_k_take(xp, x, values, k, absolute, largest):
    """`values` (N, S) read where top_k_order chooses in x: y[n, j] = values[n,
    order[n, j]] (the transpose of top_k_grad in dy, for second derivatives)."""
    return xp.take_along_axis(values, top_k_order(xp, x, k, absolute, largest), axis=1)


# --- the error function, interpolation, random flips, shifts and crops ---------------------


def erf_values(xp, x):
    """erf(x) = 2/sqrt(pi) * integral of exp(-t**2) from 0 to x (the standard has none),
    by fdlibm's rational approximations (s_erf.c, within 1 ulp in double), in x's dtype:
    |x| < 0.84375: x + x*P(x**2)/Q(x**2); < 1.25: erx + P(s)/Q(s), s = |x| - 1; < 6:
    1 - exp(-z*z - 0.5625 + (z - |x|)*(z + |x|) + R(1/x**2)/S(1/x**2))/|x|, z = |x|
    rounded to float32 (so z*z is exact); beyond: 1; the sign of x. Each branch reads |x|
    clipped to its interval, so that none overflows; NaN stays NaN."""
    a = xp.abs(x)
    u = xp.minimum(a, 0.84375)
    z = u * u
    r = 1.28379167095512558561e-01 + z * (-3.25042107247001499370e-01 + z * (
        -2.84817495755985104766e-02 + z * (-5.77027029648944159157e-03
                                           + z * -2.37630166566501626084e-05)))
    s = 1.0 + z * (3.97917223959155352819e-01 + z * (6.50222499887672944485e-02 + z * (
        5.08130628187576562776e-03 + z * (1.32494738004321644526e-04
                                          + z * -3.96022827877536812320e-06))))
    small = u + u * (r / s)
    m = xp.minimum(a, 1.25) - 1.0
    p = -2.36211856075265944077e-03 + m * (4.14856118683748331666e-01 + m * (
        -3.72207876035701323847e-01 + m * (3.18346619901161753674e-01 + m * (
            -1.10894694282396677476e-01 + m * (3.54783043256182359371e-02
                                               + m * -2.16637559486879084300e-03)))))
    q = 1.0 + m * (1.06420880400844228286e-01 + m * (5.40397917702171048937e-01 + m * (
        7.18286544141962662868e-02 + m * (1.26171219808761642112e-01 + m * (
            1.36370839120290507362e-02 + m * 1.19844998467991074170e-02)))))
    middle = 8.45062911510467529297e-01 + p / q
    t = xp.minimum(xp.maximum(a, 1.25), 6.0)
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
    ratio = xp.where(near, ra, rb) / xp.where(near, sa, sb)
    split = xp.astype(xp.astype(t, xp.float32), t.dtype)
    tail = 1.0 - xp.exp(-split * split - 0.5625 + (split - t) * (split + t) + ratio) / t
    one = xp.ones_like(x)
    y = xp.where(a < 0.84375, small,
                 xp.where(a < 1.25, middle, xp.where(a >= 6.0, one, tail)))
    return xp.copysign(y, x)


def interpolate_axis(xp, x, low, high, frac, scale, axis):
    """Linear interpolation along `axis`: y[..., o, ...] = (1 - w[o]) * x[..., low[o], ...]
    + w[o] * x[..., high[o], ...], w = frac / scale (nnabla's interpolate, one axis)."""
    device = device_of(x)
    shape = [1] * x.ndim
    shape[axis] = len(low)
    w = xp.reshape(xp.asarray([f / scale for f in frac], dtype=x.dtype, device=device),
                   tuple(shape))
    lows = xp.take(x, xp.asarray(low, device=device), axis=axis)
    highs = xp.take(x, xp.asarray(high, device=device), axis=axis)
    return (1 - w) * lows + w * highs


def interpolate_axis_grad(xp, dy, low, high, frac, scale, axis, length):
    """The transpose of interpolate_axis: dx[..., i, ...] = sum over o of dy[..., o, ...] *
    ((1 - w[o]) * (low[o] == i) + w[o] * (high[o] == i)), a tensordot of dy with that
    (out, length) matrix (the standard has no scatter-add)."""
    device = device_of(dy)
    positions = xp.arange(length, device=device)
    w = xp.reshape(xp.asarray([f / scale for f in frac], dtype=dy.dtype, device=device),
                   (-1, 1))
    lows = xp.astype(xp.reshape(xp.asarray(low, device=device), (-1, 1)) == positions,
                     dy.dtype)
    highs = xp.astype(xp.reshape(xp.asarray(high, device=device), (-1, 1)) == positions,
                      dy.dtype)
    moved = xp.tensordot(dy, (1 - w) * lows + w * highs, axes=((axis,), (0,)))
    return xp.moveaxis(moved, -1, axis)


def chosen_sources(xp, choice, kind, x_sizes, sizes, shifts, mode):
    """Per sample s and axis a of a random flip, shift or crop, the positions its output
    reads, src[a] of shape (S, sizes[a]) (int64), and where they are inside (ok[a], or
    None), from the draw choice (S, A) uniform in [0, 1): kind 0 (flip) j or n - 1 - j,
    flipped where choice < 1/2 and shifts[a] is 1; kind 1 (shift) j - t, t =
    floor(choice*(2k + 1)) - k with k = shifts[a], borders "nearest" (mode 0, clamped),
    "reflect" (1: r = |j - t + 2n| mod 2n, 2n - 1 - r past the end) or "constant" (2:
    ok[a] says which are inside); kind 2 (crop) o + j, o = floor(choice*(n - sizes[a] +
    1))."""
    device = device_of(choice)
    sources, oks = [], []
    for a, (n, m, k) in enumerate(zip(x_sizes, sizes, shifts, strict=True)):
        j = xp.reshape(xp.arange(m, dtype=xp.int64, device=device), (1, -1))
        u = choice[:, a:a + 1]
        ok = None
        if kind == 0:
            flip = xp.logical_and(u < 0.5, xp.asarray(bool(k), device=device))
            src = xp.where(flip, n - 1 - j, j)
        elif kind == 1:
            t = xp.astype(xp.minimum(xp.floor(u * (2 * k + 1)), 2.0 * k), xp.int64) - k
            src = j - t
            if mode == 1:
                r = xp.abs(src + 2 * n) % (2 * n)
                src = xp.where(r >= n, 2 * n - 1 - r, r) if n > 1 else 0 * src
            elif mode == 2:
                ok = xp.logical_and(src >= 0, src < n)
            src = xp.clip(src, 0, n - 1)
        else:
            src = j + xp.astype(xp.minimum(xp.floor(u * (n - m + 1)), 1.0 * (n - m)), xp.int64)
        sources.append(xp.broadcast_to(src, (choice.shape[0], m)))
        oks.append(ok)
    return sources, oks


def chosen_take(xp, x, choice, kind, base_axis, sizes, shifts, mode, value):
    """A random flip, shift or crop of x: y[s, j] = x[s, src(s, j)] (chosen_sources) for
    each sample s (the axes before base_axis), `value` where a shift reads outside; one
    take_along_axis per axis (the standard has no multi-axis indexing by arrays)."""
    lead = tuple(x.shape[:base_axis])
    samples = 1
    for n in lead:
        samples *= n
    y = xp.reshape(x, (samples,) + tuple(x.shape[base_axis:]))
    sources, oks = chosen_sources(xp, choice, kind, tuple(y.shape[1:]), sizes, shifts, mode)
    rank = len(sizes)
    for a, (src, ok) in enumerate(zip(sources, oks, strict=True)):
        shape = (samples,) + tuple(-1 if b == a else 1 for b in range(rank))
        target = tuple(m if b == a + 1 else d for b, (d, m) in
                       enumerate(zip(y.shape, (samples,) + tuple(sizes), strict=True)))
        y = xp.take_along_axis(y, xp.broadcast_to(xp.reshape(src, shape), target), axis=a + 1)
        if ok is not None:
            y = xp.where(xp.reshape(ok, shape), y, xp.asarray(value, dtype=x.dtype,
                                                               device=device_of(x)))
    return xp.reshape(y, lead + tuple(sizes))


def chosen_take_grad(xp, dy, choice, kind, base_axis, sizes, shifts, mode, value, x_shape):
    """The transpose of chosen_take: dx[s, i] = sum over j with src(s, j) == i (and
    inside) of dy[s, j], one batched matrix product per axis with the one-hot matrices
    onehot[s, j, i] = (src(s, j) == i) (the standard has no scatter-add)."""
    lead = tuple(x_shape[:base_axis])
    samples = 1
    for n in lead:
        samples *= n
    x_sizes = tuple(x_shape[base_axis:])
    g = xp.reshape(dy, (samples,) + tuple(sizes))
    sources, oks = chosen_sources(xp, choice, kind, x_sizes, sizes, shifts, mode)
    rank = len(sizes)
    for a, (src, ok) in enumerate(zip(sources, oks, strict=True)):
        positions = xp.arange(x_sizes[a], dtype=xp.int64, device=device_of(dy))
        onehot = xp.astype(xp.expand_dims(src, axis=2) == positions, dy.dtype)
        if ok is not None:
            onehot = onehot * xp.astype(xp.expand_dims(ok, axis=2), dy.dtype)
        moved = xp.moveaxis(g, a + 1, -1)  # (S, ..., m_a)
        onehot = xp.reshape(onehot, (samples,) + (1,) * (rank - 1) + tuple(onehot.shape[1:]))
        g = xp.moveaxis(xp.squeeze(xp.matmul(xp.expand_dims(moved, axis=-2), onehot),
                                   axis=-2), -1, a + 1)
    return xp.reshape(g, tuple(x_shape))


def choice_indices(xp, w, u, replace, count):
    """F.random_choice's positions (see the NumPy kernel): with `replace`, the count of
    cumulative weights at most u[r, j] * sum(w[r]) (a comparison with every position:
    the standard has no sorted search over rows); without, the `count` largest Gumbel
    keys log(w) - log(-log(u)) in order. Weights nnabla refuses are refused."""
    if bool(xp.any(w < 0)) or not bool(xp.all(xp.isfinite(w))):
        raise ValueError("F.random_choice: the weights must be finite and non-negative")
    positive = xp.sum(xp.astype(w > 0, xp.int64), axis=1)
    if bool(xp.any(positive == 0)):
        raise ValueError("F.random_choice: each population needs a weight greater than 0")
    if replace:
        cumulative = xp.cumulative_sum(w, axis=1)
        total = cumulative[:, -1:]
        below = xp.expand_dims(cumulative, axis=1) <= xp.expand_dims(u * total, axis=2)
        positions = xp.minimum(xp.sum(xp.astype(below, xp.int64), axis=2), w.shape[1] - 1)
    else:
        if bool(xp.any(positive < count)):
            raise ValueError(f"F.random_choice: sampling {count} without replacement needs "
                             f"{count} positive weights per population")
        tiny = xp.full(u.shape, 1e-300 if u.dtype == xp.float64 else 1e-38, dtype=u.dtype,
                       device=device_of(u))
        keys = xp.where(w > 0, xp.log(xp.where(w > 0, w, xp.ones_like(w))),
                        xp.full(w.shape, -xp.inf, dtype=w.dtype, device=device_of(w)))
        keys = keys - xp.log(-xp.log(xp.maximum(u, tiny)))
        positions = xp.argsort(keys, axis=1, descending=True, stable=True)[:, :count]
    return xp.astype(positions, u.dtype)


def erase_mask(xp, draws, prob, area_ratios, aspect_ratios, x_shape):
    """F.random_erase's mask (1: erased) of x (B, C, H, W): see the NumPy kernel."""
    _, _, height, width = x_shape
    device = device_of(draws)
    u = draws
    area = (area_ratios[0] + (area_ratios[1] - area_ratios[0]) * u[..., 0]) * (height * width)
    ratio = aspect_ratios[0] + (aspect_ratios[1] - aspect_ratios[0]) * u[..., 1]
    tall = xp.clip(xp.floor(xp.sqrt(area * ratio)), max=height)
    wide = xp.clip(xp.floor(xp.sqrt(area / ratio)), max=width)
    top = xp.floor(u[..., 3] * (height - tall + 1))  # uniform in [0, H - H_e]
    left = xp.floor(u[..., 4] * (width - wide + 1))
    rows = xp.arange(height, dtype=draws.dtype, device=device)
    columns = xp.arange(width, dtype=draws.dtype, device=device)
    in_rows = (xp.expand_dims(top, axis=-1) <= rows) & (
        rows <= xp.expand_dims(top + tall, axis=-1))
    in_columns = (xp.expand_dims(left, axis=-1) <= columns) & (
        columns <= xp.expand_dims(left + wide, axis=-1))
    applied = xp.expand_dims(xp.expand_dims(u[..., 2] <= prob, axis=-1), axis=-1)
    erased = xp.any(applied & xp.expand_dims(in_rows, axis=-1)
                    & xp.expand_dims(in_columns, axis=-2), axis=0)
    return xp.astype(xp.broadcast_to(erased, tuple(x_shape)), draws.dtype)


def row_take(xp, x, positions):
    """y[r, j] = x[r, positions[r, j]]: a one-hot comparison with every position, summed
    (the standard's take reads one axis with one index vector)."""
    device = device_of(x)
    onehot = xp.expand_dims(xp.astype(positions, xp.int64), axis=2) == xp.arange(
        x.shape[1], dtype=xp.int64, device=device)
    return xp.sum(xp.where(onehot, xp.expand_dims(x, axis=1), xp.zeros_like(x[:1, None, :])),
                  axis=2)


def row_take_grad(xp, dy, positions, length):
    """The transpose of row_take: a batched product of dy with the one-hot matrices
    (the standard has no scatter-add)."""
    device = device_of(dy)
    onehot = xp.astype(xp.expand_dims(xp.astype(positions, xp.int64), axis=2) == xp.arange(
        length, dtype=xp.int64, device=device), dy.dtype)
    return xp.squeeze(xp.matmul(xp.expand_dims(dy, axis=1), onehot), axis=1)


# --- image augmentation (F.image_augmentation) --------------------------------------------


def image_augment(xp, x, draws, normal, size, pad, min_scale, max_scale, angle, aspect_ratio,
                  distortion, flip_lr, flip_ud, brightness, brightness_each, contrast,
                  contrast_center, contrast_each, noise):
    """nnabla 1.39's image_augmentation of x (..., C, H, W) to (..., C, h, w), per image
    from its draws: the NumPy kernel's computation (its docstring gives the formulas), in
    the standard's functions."""
    dtype, device = x.dtype, device_of(x)
    h_in, w_in = x.shape[-2], x.shape[-1]
    h_out, w_out = size
    channels = x.shape[-3] if x.ndim >= 3 else 1
    images = xp.reshape(x, (-1, channels, h_in * w_in))
    samples = images.shape[0]
    u = xp.reshape(xp.astype(draws, dtype), (samples, -1))
    q = xp.minimum(xp.floor(u * 1001), xp.asarray(1000, dtype=dtype, device=device)) * 0.001

    def log(value):  # a Python float: it keeps the arrays in x's dtype
        return float(xp.log(xp.asarray(value, dtype=dtype, device=device)))

    def per_image(a):
        return xp.reshape(a, (samples, 1, 1))

    def per_channel(a):
        return xp.broadcast_to(xp.reshape(a, (samples, 1)), (samples, channels))

    scale = min_scale * xp.exp(q[:, 0] * log(max_scale / min_scale))
    scale_x = xp.exp(-log(aspect_ratio) * 0.5 + q[:, 1] * log(aspect_ratio))
    scale_y = 1 / scale_x
    inv_x, inv_y = 1 / (scale * scale_x), 1 / (scale * scale_y)
    theta = -angle + q[:, 2] * angle * 2
    cx, cy = (w_out - 1) * 0.5, (h_out - 1) * 0.5
    centre_x = q[:, 3] * ((w_in + 2 * pad[1]) * scale * scale_x - w_out) + cx
    centre_y = q[:, 4] * ((h_in + 2 * pad[0]) * scale * scale_y - h_out) + cy
    lr = u[:, 5] < (0.5 if flip_lr else -1.0)
    ud = u[:, 6] < (0.5 if flip_ud else -1.0)
    cos, sin = xp.cos(theta), xp.sin(theta)
    x_ax = xp.where(lr, -cos, cos) * inv_x
    y_ax = xp.where(lr, sin, -sin) * inv_y
    x_ay = xp.where(ud, -sin, sin) * inv_x
    y_ay = xp.where(ud, -cos, cos) * inv_y
    x0 = centre_x * inv_x - (x_ax * cx + y_ax * cy) - pad[1]
    y0 = centre_y * inv_y - (x_ay * cx + y_ay * cy) - pad[0]
    col = xp.reshape(xp.arange(w_out, dtype=dtype, device=device), (1, 1, w_out))
    row = xp.reshape(xp.arange(h_out, dtype=dtype, device=device), (1, h_out, 1))
    bend = per_image(xp.exp(q[:, 9 + 2 * channels] * 2 * distortion - distortion) - 1)
    half_w, half_h = w_out * 0.5, h_out * 0.5
    fx, fy = (col - half_w) / half_w, (row - half_h) / half_h
    radial = 1 + bend * (fx * fx + fy * fy)
    cols = xp.where(bend != 0, fx * radial * half_w / (1 + bend) + half_w, col)
    rows = xp.where(bend != 0, fy * radial * half_h / (1 + bend) + half_h, row)
    xs = per_image(x0) + cols * per_image(x_ax) + rows * per_image(y_ax)
    ys = per_image(y0) + cols * per_image(x_ay) + rows * per_image(y_ay)
    xs = xp.reshape(xp.clip(xs, 0.0, float(w_in - 1)), (samples, 1, -1))
    ys = xp.reshape(xp.clip(ys, 0.0, float(h_in - 1)), (samples, 1, -1))
    left, top = xp.floor(xs), xp.floor(ys)
    wx, wy = xs - left, ys - top
    left, top = xp.astype(left, xp.int64), xp.astype(top, xp.int64)
    right, bottom = xp.minimum(left + 1, w_in - 1), xp.minimum(top + 1, h_in - 1)
    reads = (samples, channels, h_out * w_out)

    def at(r, c):
        return xp.take_along_axis(images, xp.broadcast_to(r * w_in + c, reads), axis=2)

    v = (at(top, left) * ((1 - wx) * (1 - wy)) + at(top, right) * (wx * (1 - wy))
         + at(bottom, left) * ((1 - wx) * wy) + at(bottom, right) * (wx * wy))
    if brightness_each:
        b = q[:, 9:9 + channels] * brightness * 2 - brightness
    else:
        b = per_channel(q[:, 7] * brightness * 2 - brightness)
    if contrast_each:
        c = xp.exp(q[:, 9 + channels:9 + 2 * channels] * log(contrast) * 2) / contrast
    else:
        c = per_channel(xp.exp(q[:, 8] * log(contrast) * 2) / contrast)
    y = (v + xp.reshape(b - contrast_center, (samples, channels, 1))) \
        * xp.reshape(c, (samples, channels, 1)) + contrast_center
    if noise > 0:
        sigma = per_image(q[:, 10 + 2 * channels] * noise)
        y = y + xp.reshape(normal, (samples, channels, -1)) * sigma
    return xp.astype(xp.reshape(y, tuple(x.shape[:-2]) + (h_out, w_out)), dtype)


# --- batched linear algebra: batch_inv, batch_det, batch_logdet, batch_cholesky ---------------
# The array API's linalg extension (xp.linalg).

def linalg_inv(xp, x):
    """inv of each matrix of x (B, N, N)."""
    return xp.linalg.inv(x)


def linalg_det(xp, x):
    """det of each matrix of x (B, N, N): shape (B,)."""
    return xp.reshape(xp.linalg.det(x), (x.shape[0],))


def linalg_logdet(xp, x):
    """log |det| of each matrix of x (B, N, N) (nnabla's batch_logdet): shape (B,)."""
    return xp.reshape(xp.linalg.slogdet(x)[1], (x.shape[0],))


def linalg_cholesky(xp, x):
    """The lower Cholesky factor of each matrix of x (B, N, N)."""
    return xp.linalg.cholesky(x)


def linalg_cholesky_grad(xp, factor, g):
    """nnabla's batch_cholesky gradient (see the NumPy kernel): P = L^T g, lower triangle
    kept, diagonal halved; S = L^-T P L^-1; (S + S^T) / 2."""
    p = xp.tril(xp.matmul(xp.matrix_transpose(factor), g))
    n = factor.shape[-1]
    eye = xp.eye(n, dtype=g.dtype, device=device_of(g))
    p = p - p * eye * 0.5
    inverse = xp.linalg.inv(factor)
    s = xp.matmul(xp.matmul(xp.matrix_transpose(inverse), p), inverse)
    return (s + xp.matrix_transpose(s)) * 0.5


# --- rand_binomial, rand_beta, rand_gamma ------------------------------------------------------
# Drawn with NumPy (the standard has no random numbers), then moved, as random_normal.

def random_binomial(xp, rng, shape, n, p, dtype, device):
    """Binomial B(n, p), drawn from `rng` (NumPy) (F.rand_binomial), as numbers."""
    return random_moved(xp, rng.binomial(int(n), p, shape), dtype, device)


def random_beta(xp, rng, shape, alpha, beta, dtype, device):
    """Beta(alpha, beta), drawn from `rng` (NumPy) (F.rand_beta)."""
    return random_moved(xp, rng.beta(alpha, beta, shape), dtype, device)


def random_gamma(xp, rng, shape, k, theta, dtype, device):
    """Gamma of shape k and scale theta, drawn from `rng` (NumPy) (F.rand_gamma)."""
    return random_moved(xp, rng.gamma(k, theta, shape), dtype, device)


# --- fft, ifft: the DFT of complex pairs, with the array API's fft extension ------------------

def complex_dft(xp, x, signal_ndim, inverse, scale):
    """The DFT of x[..., 0] + j x[..., 1] over the signal_ndim axes before the last, as real
    pairs (see the NumPy kernel): y[k] = scale * sum over n of x[n] exp(-+2 pi j k.n / N)."""
    complex_dtype = xp.complex64 if x.dtype == xp.float32 else xp.complex128
    z = xp.astype(x[..., 0], complex_dtype) + 1j * xp.astype(x[..., 1], complex_dtype)
    axes = tuple(range(-signal_ndim, 0))
    y = xp.fft.ifftn(z, axes=axes, norm="forward") if inverse else xp.fft.fftn(z, axes=axes)
    if scale != 1:
        y = y * scale
    return xp.astype(xp.stack([xp.real(y), xp.imag(y)], axis=-1), x.dtype)


# --- patch_correlation: products with shifted copies (ir/correlation.py) ----------------------
# Offsets (dy, dx) from ys x xs; the shifted array reads 0 outside its bounds.

def shifted_copy(xp, x, dy, dx):
    """s[..., y, x] = x[..., y + dy, x + dx], 0 where that is outside x."""
    h, w = x.shape[-2:]
    top, bottom = shift_overlap(h, dy)
    left, right = shift_overlap(w, dx)
    lead = (0,) * (x.ndim - 2)
    return pad_constant(xp, x[..., top + dy:bottom + dy, left + dx:right + dx],
                        lead + (top, left), lead + (h - bottom, w - right), 0)


def shifted_products(xp, x1, x2, ys, xs):
    """q[n, i, j, y, x] = sum_c x1[n, c, y, x] * x2[n, c, y + ys[i], x + xs[j]]."""
    n, _, h, w = x1.shape
    rows = [xp.sum(x1 * shifted_copy(xp, x2, dy, dx), axis=1) for dy in ys for dx in xs]
    return xp.reshape(xp.stack(rows, axis=1), (n, len(ys), len(xs), h, w))


def shifted_gather(xp, g, x, ys, xs):
    """out[n, c, y, x] = sum_ij g[n, i, j, y, x] * x[n, c, y + ys[i], x + xs[j]]."""
    total = None
    for i, dy in enumerate(ys):
        for j, dx in enumerate(xs):
            term = g[:, i, j, None, ...] * shifted_copy(xp, x, dy, dx)
            total = term if total is None else total + term
    return total


def shifted_scatter(xp, g, x, ys, xs):
    """out[n, c, y, x] = sum_ij g[n, i, j, y - ys[i], x - xs[j]] * x[n, c, y - ys[i], x - xs[j]]
    (the shifted_products gradient to its second array)."""
    total = None
    for i, dy in enumerate(ys):
        for j, dx in enumerate(xs):
            term = shifted_copy(xp, g[:, i, j, None, ...] * x, -dy, -dx)
            total = term if total is None else total + term
    return total


# --- roi_align: bilinear samples of boxes, averaged per bin (ir/detection.py) -----------------
# As the NumPy kernels (which say how): per box, row weights Wy[k] and column weights Wx[k]
# of its samples, y[k] = Wy[k] @ x[b] @ Wx[k]^T over the count of samples. The standard has
# no scatter-add: the weights are sums of one-hot comparisons, and the boxes of one sample
# (a slice of the boxes sorted by sample) go into it with one tensordot.

def roi_align_axis(xp, low, high, size, bins, ratio):
    """One axis of every box, from its edges low and high (K,) in pixels: (the weights
    (K, bins, size) of its samples, the number of samples per bin (K,)); see the NumPy
    kernel."""
    dtype, device = low.dtype, device_of(low)
    step = (high - low) / bins
    if ratio > 0:
        samples = xp.full(step.shape, ratio, dtype=xp.int64, device=device)
    else:  # (no sample where the box is not finite: its bins are NaN)
        finite = xp.where(xp.isfinite(step), step, xp.zeros_like(step))
        samples = xp.astype(xp.ceil(finite), xp.int64)
    width = max(int(xp.max(samples)) if samples.shape[0] else 0, 1)
    sub = step / xp.astype(xp.where(samples > 0, samples, xp.ones_like(samples)), dtype)

    def column(a):
        return xp.reshape(a, (-1, 1, 1))

    o = xp.reshape(xp.arange(bins, dtype=dtype, device=device), (1, bins, 1))
    s = xp.reshape(xp.arange(width, dtype=dtype, device=device), (1, 1, width))
    pos = (column(low) + o * column(step)) + s * column(sub) + column(0.5 * sub)
    first = xp.reshape(xp.arange(width, dtype=xp.int64, device=device), (1, 1, width))
    used = (first < column(samples)) & (pos >= -1) & (pos <= size)
    pos = xp.clip(xp.where(used, pos, xp.zeros_like(pos)), min=0.0, max=float(size - 1))
    cell = xp.floor(pos)
    frac = pos - cell
    below = xp.astype(cell, xp.int64)
    above = xp.where(below < size - 1, below + 1, below)
    cells = xp.reshape(xp.arange(size, dtype=xp.int64, device=device), (1, 1, 1, size))
    nothing = xp.zeros_like(frac)[..., None]
    lower = xp.where(used, 1 - frac, xp.zeros_like(frac))[..., None]
    upper = xp.where(used, frac, xp.zeros_like(frac))[..., None]
    weights = (xp.where(below[..., None] == cells, lower, nothing)
               + xp.where(above[..., None] == cells, upper, nothing))
    return xp.sum(weights, axis=2), samples


def roi_align_boxes(xp, boxes, x_shape, output_size, spatial_scale, sampling_ratio):
    """(the sample each box reads (K,), its row weights (K, Ho, H) and column weights (K,
    Wo, W), 1 / its count of samples (K,), NaN where that count is 0 or a coordinate is
    not finite); ValueError for a batch index that is not a sample of x (see the NumPy
    kernel)."""
    n, _, h, w = x_shape
    bad = first_outside(xp, boxes[:, 0], 0, n)
    if bad is not None:
        raise ValueError(f"F.roi_align: boxes[{bad[0][0]}, 0] holds {bad[1]!r}, which is not "
                         f"the index of one of the input's {n} samples: it is truncated "
                         f"towards zero, as nnabla reads it, and must then be from 0 to "
                         f"{n - 1}")
    sy, sx = float(spatial_scale[0]), float(spatial_scale[1])
    x1, y1, x2, y2 = (boxes[:, 1] * sx - 0.5, boxes[:, 2] * sy - 0.5,
                      boxes[:, 3] * sx - 0.5, boxes[:, 4] * sy - 0.5)
    wy, gy = roi_align_axis(xp, y1, y2, h, output_size[0], sampling_ratio)
    wx, gx = roi_align_axis(xp, x1, x2, w, output_size[1], sampling_ratio)
    count = gy * gx
    ok = xp.all(xp.isfinite(boxes[:, 1:]), axis=1) & (count != 0)
    safe = xp.astype(xp.where(ok, count, xp.ones_like(count)), boxes.dtype)
    scale = xp.where(ok, 1 / safe, xp.full_like(safe, float("nan")))
    return xp.astype(boxes[:, 0], xp.int64), wy, wx, scale


def roi_align_groups(xp, index, samples):
    """(the boxes in order of their sample (K,), how many boxes each of the `samples`
    samples has, as ints): the boxes of one sample are a slice of that order."""
    order = xp.argsort(index)
    mine = xp.reshape(index, (-1, 1)) == xp.reshape(
        xp.arange(samples, dtype=xp.int64, device=device_of(index)), (1, -1))
    counts = xp.sum(xp.astype(mine, xp.int64), axis=0)
    return order, [int(counts[i]) for i in range(samples)]


def roi_align_forward(xp, x, boxes, output_size, spatial_scale, sampling_ratio):
    """y[k, c] = Wy[k] @ x[b_k, c] @ Wx[k]^T / (box k's count of samples) (F.roi_align),
    for the boxes of each sample of x at once."""
    index, wy, wx, scale = roi_align_boxes(xp, boxes, tuple(x.shape), output_size,
                                           spatial_scale, sampling_ratio)
    order, counts = roi_align_groups(xp, index, x.shape[0])
    pieces, start = [], 0
    for sample, count in enumerate(counts):
        if count:
            mine = order[start:start + count]
            rows = xp.tensordot(xp.take(wy, mine, axis=0), x[sample, ...], axes=((2,), (1,)))
            pieces.append(xp.matmul(xp.permute_dims(rows, (0, 2, 1, 3)), xp.matrix_transpose(
                xp.take(wx, mine, axis=0))[:, None, ...]))
            start += count
    if not pieces:  # no box
        return xp.zeros((0, x.shape[1]) + tuple(output_size), dtype=x.dtype,
                        device=device_of(x))
    y = xp.take(xp.concat(pieces, axis=0), xp.argsort(order), axis=0)
    return y * xp.reshape(scale, (-1, 1, 1, 1))


def roi_align_grad(xp, dy, boxes, x_shape, output_size, spatial_scale, sampling_ratio):
    """dx[b, c] = sum over the boxes k of sample b of Wy[k]^T @ dy[k, c] @ Wx[k] / (box
    k's count of samples): the transpose of roi_align_forward; a box of NaN bins adds
    nothing."""
    index, wy, wx, scale = roi_align_boxes(xp, boxes, tuple(x_shape), output_size,
                                           spatial_scale, sampling_ratio)
    keep = xp.reshape(~xp.isnan(scale), (-1, 1, 1, 1))
    scale = xp.reshape(scale, (-1, 1, 1, 1))
    g = xp.where(keep, dy, xp.zeros_like(dy)) * xp.where(keep, scale, xp.zeros_like(scale))
    columns = xp.matmul(g, wx[:, None, ...])  # (K, C, Ho, W)
    order, counts = roi_align_groups(xp, index, x_shape[0])
    parts, start = [], 0
    for count in counts:
        if count:
            mine = order[start:start + count]
            part = xp.tensordot(xp.take(wy, mine, axis=0), xp.take(columns, mine, axis=0),
                                axes=((0, 1), (0, 2)))
            parts.append(xp.permute_dims(part, (1, 0, 2)))
            start += count
        else:
            parts.append(xp.zeros(tuple(x_shape[1:]), dtype=columns.dtype,
                                  device=device_of(dy)))
    return xp.stack(parts, axis=0)


def onnx_box_extents(xp, boxes, center_point_box):
    """Per box of boxes (..., 4): (y begin, y end, x begin, x end, height, width) in
    nnabla's arithmetic: corners (y1, x1, y2, x2) of any diagonal ordered by min and max,
    or (x centre, y centre, width, height) as centre -/+ size / 2."""
    if center_point_box:
        xc, yc, w, h = (boxes[..., i] for i in range(4))
        return yc - h / 2, yc + h / 2, xc - w / 2, xc + w / 2, h, w
    y0, y1 = xp.minimum(boxes[..., 0], boxes[..., 2]), xp.maximum(boxes[..., 0], boxes[..., 2])
    x0, x1 = xp.minimum(boxes[..., 1], boxes[..., 3]), xp.maximum(boxes[..., 1], boxes[..., 3])
    return y0, y1, x0, x1, y1 - y0, x1 - x0


def onnx_nms_selected(xp, boxes, scores, center_point_box, max_boxes, iou_threshold,
                      score_threshold):
    """ONNX NonMaxSuppression as nnabla 1.39's (see the NumPy kernel): rows (batch, class,
    box) as numbers of the boxes' dtype; the greedy pass over each class's ranking with
    new boolean arrays (arrays may be immutable)."""
    device, dtype = device_of(boxes), boxes.dtype
    found = []
    if max_boxes == 0:
        return xp.zeros((0, 3), dtype=dtype, device=device)
    n = boxes.shape[1]
    position = xp.arange(n, dtype=xp.int64, device=device)
    for b in range(boxes.shape[0]):
        y0, y1, x0, x1, h, w = onnx_box_extents(xp, boxes[b, ...], center_point_box)
        y0, y1, x0, x1, area = (xp.reshape(v, (-1, 1)) for v in (y0, y1, x0, x1, w * h))
        wi = xp.minimum(x1, xp.matrix_transpose(x1)) - xp.maximum(x0, xp.matrix_transpose(x0))
        hi = xp.minimum(y1, xp.matrix_transpose(y1)) - xp.maximum(y0, xp.matrix_transpose(y0))
        inter = wi * hi
        union = area + xp.matrix_transpose(area) - inter
        overlaps = (wi > 0) & (hi > 0)
        iou = xp.where(overlaps, inter / xp.where(overlaps, union, xp.ones_like(union)),
                       xp.zeros_like(inter))
        for k in range(scores.shape[1]):
            order = xp.argsort(-scores[b, k, ...], stable=True)
            alive = xp.take(scores[b, k, ...], order, axis=0) >= float(
                xp.asarray(score_threshold, dtype=xp.float32))
            ranked = xp.take(xp.take(iou, order, axis=0), order, axis=1) > float(
                xp.asarray(iou_threshold, dtype=xp.float32))
            for i in range(n):
                if bool(alive[i]):
                    alive = alive & ~(ranked[i, :] & (position > i))
            kept = int(xp.sum(xp.astype(alive, xp.int64)))
            first = xp.argsort(xp.astype(~alive, xp.int8), stable=True)[:min(kept, max_boxes)]
            chosen = xp.take(order, first, axis=0)
            found.append(xp.stack([xp.full_like(chosen, b), xp.full_like(chosen, k), chosen],
                                  axis=1))
    return xp.astype(xp.concat(found, axis=0), dtype) if found else xp.zeros(
        (0, 3), dtype=dtype, device=device)


def onnx_nms(xp, boxes, scores, center_point_box, max_boxes, iou_threshold,
             score_threshold, count):
    """onnx_nms_selected's rows, `count` of them as when the graph was built (refused
    otherwise: the output's shape was fixed then)."""
    rows = onnx_nms_selected(xp, boxes, scores, center_point_box, max_boxes, iou_threshold,
                             score_threshold)
    if rows.shape[0] != count:
        refuse_count_change("onnx_non_max_suppression", "the number of selected boxes",
                            rows.shape[0], count)
    return rows


def onnx_nms_count(xp, boxes, scores, center_point_box, max_boxes, iou_threshold,
                   score_threshold):
    """How many rows onnx_nms_selected gives (the output's shape, when the graph is built)."""
    rows = onnx_nms_selected(xp, boxes, scores, center_point_box, max_boxes, iou_threshold,
                             score_threshold)
    return xp.asarray(rows.shape[0], dtype=boxes.dtype, device=device_of(boxes))


def nms_detection2d(xp, x, thresh, nms, per_class):
    """nnabla's NmsDetection2d on x (B, N, 5 + C) (see the NumPy kernel): thresholds, then
    the suppression, one batch (and class) at a time in the order of the scores (the
    standard has no assignment at integer positions, so each row is permuted into its
    order, suppressed there with `where`, and permuted back)."""
    dtype = x.dtype
    zero = xp.zeros((), dtype=dtype, device=device_of(x))
    thresh, nms = zero + thresh, zero + nms  # (compared in x's dtype, as nnabla's floats)
    objectness = xp.where(x[..., 4] < thresh, zero, x[..., 4])
    scores = objectness[..., None] * x[..., 5:]
    scores = xp.where(scores < thresh, zero, scores)
    iou = box_iou(xp, x[..., :4])
    n = x.shape[1]
    positions = xp.arange(n, device=device_of(x))
    if per_class:
        columns = []
        for b in range(x.shape[0]):
            rows = []
            for k in range(scores.shape[2]):
                order = xp.argsort(-scores[b, :, k], stable=True)
                s = xp.take(scores[b, :, k], order)
                ranked = xp.take(xp.take(iou[b, :, :], order, axis=0), order, axis=1)
                for i in range(n - 1):
                    kill = (ranked[i, :] > nms) & (positions > i) & (s[i] != 0)
                    s = xp.where(kill, zero, s)
                rows.append(xp.take(s, xp.argsort(order, stable=True)))
            columns.append(xp.stack(rows, axis=1))
        scores = xp.stack(columns)
    else:
        order = xp.argsort(-objectness, axis=1, stable=True)
        rank = xp.argsort(order, axis=1, stable=True)
        before = xp.expand_dims(rank, axis=1) < xp.expand_dims(rank, axis=2)
        killed = (objectness != 0) & xp.any((iou > nms) & before, axis=2)
        objectness = xp.where(killed, zero, objectness)
        scores = xp.where(xp.expand_dims(killed, axis=2), zero, scores)
    return xp.concat([x[..., :4], objectness[..., None], scores], axis=2)


def box_iou(xp, boxes):
    """IoU of every pair of boxes (B, N, 4: centre x, y, width, height), as nnabla computes
    it: 0 where they do not overlap."""
    x, y, w, h = (boxes[..., i] for i in range(4))
    half_w, half_h = w / 2, h / 2
    ow = xp.minimum((x + half_w)[:, :, None], (x + half_w)[:, None, :]) \
        - xp.maximum((x - half_w)[:, :, None], (x - half_w)[:, None, :])
    oh = xp.minimum((y + half_h)[:, :, None], (y + half_h)[:, None, :]) \
        - xp.maximum((y - half_h)[:, :, None], (y - half_h)[:, None, :])
    overlap = (ow > 0) & (oh > 0)
    zero = xp.zeros((), dtype=boxes.dtype, device=device_of(boxes))
    inter = xp.where(overlap, ow * oh, zero)
    area = w * h
    union = area[:, :, None] + area[:, None, :] - inter
    return xp.where(overlap, inter / xp.where(overlap, union, zero + 1), zero)


def inq_scheduled(xp, indicators, count, iterations):
    """The indicators truncated to ints (as nnabla reads them), and what this pass makes
    of them when it selects no weights: themselves (a pass count not in `iterations`),
    all 1 (the last entry), or None (another entry: the caller fixes more)."""
    fixed = xp.trunc(indicators)
    step = int(xp.reshape(count, (-1,))[0])
    if step not in iterations:
        return fixed, fixed
    if step == iterations[-1]:
        return fixed, xp.ones_like(fixed)
    return fixed, None


def inq_fix_largest(xp, w, indicators, count, iterations):
    """nnabla's INQ indicators after a forward pass (selection_algorithm='largest_abs'; see
    the NumPy kernel): the weights to fix marked in sorted order by a cumulative count of
    the learnable ones, then put back by the inverse permutation."""
    fixed, done = inq_scheduled(xp, indicators, count, iterations)
    if done is not None:
        return done
    flat = xp.reshape(fixed, (-1,))
    magnitude = xp.reshape(xp.abs(w), (-1,))
    n = flat.shape[0]
    learnable = flat == 0
    half = int(xp.sum(xp.astype(learnable, xp.int64))) // 2

    def chosen_in(order):
        ranked = xp.take(learnable, order)
        if half:
            return ranked, ranked & (xp.cumulative_sum(xp.astype(ranked, xp.int64)) <= half)
        return ranked, ranked & (xp.arange(n, device=device_of(w)) == 0)

    order = xp.argsort(-magnitude, stable=True)
    ranked, chosen = chosen_in(order)
    values = xp.take(magnitude, order)
    if half:
        cut = xp.min(xp.where(chosen, values, values[0]))
        tie = bool(xp.any(ranked & ~chosen & (values == cut)))
    else:
        tie = n > 1 and bool(values[0] == values[1])
    if tie:
        replayed = inq_sort_order([float(magnitude[i]) for i in range(n)])
        order = xp.asarray(replayed, dtype=order.dtype, device=device_of(w))
        ranked, chosen = chosen_in(order)
    mark = xp.take(chosen, xp.argsort(order, stable=True))
    return xp.reshape(xp.where(mark, xp.ones_like(flat), flat), fixed.shape)


def inq_fix_random(xp, indicators, count, coin, iterations):
    """nnabla's INQ indicators after a forward pass (selection_algorithm='random'; see the
    NumPy kernel)."""
    fixed, done = inq_scheduled(xp, indicators, count, iterations)
    if done is not None:
        return done
    return xp.where(fixed == 0, xp.astype(coin, fixed.dtype), fixed)


def inq_pow2(xp, w, indicators, num_bits):
    """nnabla's INQ quantization of the weights whose indicator is 1 (see the NumPy
    kernel); 2^e as a power in w's dtype (the standard has no ldexp)."""
    zero = xp.zeros((), dtype=w.dtype, device=device_of(w))
    magnitude = xp.abs(w)
    top = float(xp.max(xp.where(xp.isnan(magnitude), zero, magnitude))) if w.size else 0.0
    top = zero + (1.0 if top == 0 else top)
    if not bool(xp.isfinite(top)):
        return w
    log_top = inq_log2(xp, top)
    n1 = int(xp.floor(log_top)) + int(float(log_top - xp.floor(log_top))
                                      >= 0.5849625007211562)
    n2 = n1 + 1 - int(2.0 ** (num_bits - 2))
    threshold = zero + 2.0 ** (n2 - 1)
    b = inq_log2(xp, xp.where(magnitude > zero, magnitude, zero + 1))  # (0 is pruned)
    whole = xp.floor(b)
    e = whole + xp.astype((b - whole) >= zero + 0.58496250072115619, w.dtype)
    e = xp.where(xp.isfinite(e) & (magnitude > zero), e, zero + n2)  # (x86's int(-inf))
    e = xp.maximum(xp.minimum(e, zero + n1), zero + n2)
    q = xp.where(w < zero, -(zero + 1), zero + 1) * xp.pow(zero + 2, e)
    q = xp.where(magnitude < threshold, zero, q)
    return xp.where(indicators == zero + 1, q, w)


def inq_log2(xp, x):
    """log2 of x rounded once to x's dtype: computed in float64 where x's device has it
    (nnabla's log2f is correctly rounded where INQ's rule looks, |w| near 1.5 * 2^k; a
    float32 log2, such as NumPy's, may be 2 ulp off there), else in x's dtype."""
    if x.dtype == xp.float64:
        return xp.log2(x)
    try:
        wide = xp.astype(x, xp.float64)
    except (ValueError, TypeError):  # (a device without float64)
        return xp.log2(x)
    return xp.astype(xp.log2(wide), x.dtype)


def all_reduce_sum(xp, x, all_reduce, group):
    """x summed elementwise over the processes of `group`, the sum received by each:
    ``all_reduce(x, group)``, with the function the caller passed as `all_reduce` (the
    runtime passes its communicator's; any function returning that sum, as an array of
    this namespace or a NumPy array, will do); x itself when it passed None (this process
    alone)."""
    if all_reduce is None:
        return x
    # (a copy of its own: the function may sum into the array it is given)
    total = xp.asarray(all_reduce(xp.asarray(x, copy=True), group), dtype=x.dtype,
                       device=x.device)
    if tuple(total.shape) != tuple(x.shape):
        raise ValueError(f"all_reduce(x, {group!r}) returned an array of shape "
                         f"{tuple(total.shape)} for x of shape {tuple(x.shape)}; it must "
                         f"return x summed elementwise over the processes of the group, "
                         f"in x's shape")
    return total
