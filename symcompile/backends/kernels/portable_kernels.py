"""Kernels every backend shares: they touch no array, only their arguments."""


def refuse_step(function, step):
    """Raise ValueError: update counts start at 1 (bias corrections divide by 1 - beta**step)."""
    raise ValueError(f"{function}(): step is the number of this update, counting from 1 for "
                     f"the first (as nnabla's solvers count), got {step!r}")


def conv_output_size(size, kernel, pad, stride, dilation):
    """A convolution's output size M = (L + 2*pad - dilation*(K - 1) - 1) // stride + 1,
    per spatial axis (L = size)."""
    return tuple((n + 2 * p - d * (k - 1) - 1) // s + 1
                 for n, k, p, s, d in zip(size, kernel, pad, stride, dilation, strict=True))


def pool_geometry(size, kernel, stride, pad, ignore_border):
    """(the output size, the padding after each axis) of pooling an input of `size`: the
    padding after is what the last window needs (at least 0; with ignore_border at most
    pad, without it the last window may run past the padding, whose elements count as
    padding)."""
    if ignore_border:
        out = tuple((n + 2 * p - k) // s + 1
                    for n, k, s, p in zip(size, kernel, stride, pad, strict=True))
    else:
        out = tuple((n + p - 1) // s + 1 for n, s, p in zip(size, stride, pad, strict=True))
    after = tuple((m - 1) * s + k - n - p if (m - 1) * s + k > n + p else 0
                  for m, n, k, s, p in zip(out, size, kernel, stride, pad, strict=True))
    return out, after


def shift_overlap(length, offset):
    """The positions p in [0, length) whose p + offset is in [0, length) too, as (start,
    stop): where an array and its copy shifted by `offset` overlap along one axis."""
    return max(0, -offset), min(length, length - offset)


def refuse_count_change(function, what, count, built):
    """Raise ValueError: an output whose shape follows from its input's values (the
    number of non-zeros, of unique values) was given that shape when the graph was built,
    and the values now give another."""
    raise ValueError(
        f"F.{function}: {what} is {count} now, but was {built} when the graph was built; "
        f"the output's shape follows from it and was fixed then, from the values its input "
        f"had (as nnabla's setup fixes it). Build the graph again once the input has the "
        f"values it is run with (under nn.auto_forward(), every call builds it anew)")
