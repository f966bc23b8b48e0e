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


def inq_sort_order(values):
    """The indices 0..n-1 in the order libstdc++'s std::sort leaves them when it sorts them
    by `values` (a list of numbers), largest first: nnabla's INQ selection (ties are in
    its introsort's order, which is not stable). A replay of that algorithm: introsort
    (median-of-three pivots, unguarded partitions, heapsort past 2*floor(log2 n) levels)
    down to runs of 16, then one insertion sort."""
    order = list(range(len(values)))

    def before(a, b):  # the comparator: |w[a]| > |w[b]|
        return values[a] > values[b]

    def sift_down(first, hole, length, value):
        top, child = hole, hole
        while child < (length - 1) // 2:
            child = 2 * (child + 1)
            if before(order[first + child], order[first + child - 1]):
                child -= 1
            order[first + hole] = order[first + child]
            hole = child
        if length % 2 == 0 and child == (length - 2) // 2:
            child = 2 * (child + 1)
            order[first + hole] = order[first + child - 1]
            hole = child - 1
        parent = (hole - 1) // 2
        while hole > top and before(order[first + parent], value):
            order[first + hole] = order[first + parent]
            hole = parent
            parent = (hole - 1) // 2
        order[first + hole] = value

    def heap_sort(first, last):
        length = last - first
        if length >= 2:
            for parent in range((length - 2) // 2, -1, -1):
                sift_down(first, parent, length, order[first + parent])
        while last - first > 1:
            last -= 1
            value = order[last]
            order[last] = order[first]
            sift_down(first, 0, last - first, value)

    def median_to_first(result, a, b, c):
        x, y, z = order[a], order[b], order[c]
        if before(x, y):
            pick = b if before(y, z) else (c if before(x, z) else a)
        else:
            pick = a if before(x, z) else (c if before(y, z) else b)
        order[result], order[pick] = order[pick], order[result]

    def partition(first, last, pivot):
        while True:
            while before(order[first], order[pivot]):
                first += 1
            last -= 1
            while before(order[pivot], order[last]):
                last -= 1
            if not first < last:
                return first
            order[first], order[last] = order[last], order[first]
            first += 1

    def introsort(first, last, depth):
        while last - first > 16:
            if depth == 0:
                heap_sort(first, last)
                return
            depth -= 1
            median_to_first(first, first + 1, first + (last - first) // 2, last - 1)
            cut = partition(first + 1, last, first)
            introsort(cut, last, depth)
            last = cut

    def insert(position):
        value = order[position]
        while before(value, order[position - 1]):
            order[position] = order[position - 1]
            position -= 1
        order[position] = value

    n = len(order)
    if n > 1:
        introsort(0, n, 2 * (n.bit_length() - 1))
        for i in range(1, min(n, 16)):  # a guarded insertion sort of the first 16
            if before(order[i], order[0]):
                value = order[i]
                order[1:i + 1] = order[0:i]
                order[0] = value
            else:
                insert(i)
        for i in range(16, n):  # the rest unguarded: the smallest of the first 16 bounds it
            insert(i)
    return order
