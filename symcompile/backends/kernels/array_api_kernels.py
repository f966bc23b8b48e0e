"""Kernels of the array API backend: the helpers a generated array API module may call.

Each function here is copied, by its source, into the modules that use it (see
`symcompile.backends.base.Kernels`). They use only the namespace of the arrays they are
given (the Python array API standard), builtins, and `array_api_compat` for libraries
whose arrays do not carry their namespace (PyTorch), imported on first need.
"""


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


def class_labels(function, argument, value, shape, classes, kind):
    """`value` as integer class labels, truncated towards zero as nnabla reads them (1.7 is
    class 1): each must name one of `classes` classes, or be -1 (the sample is ignored),
    in an array of the other arguments' type `kind`. Raises ValueError otherwise (NaN and
    infinities included)."""
    if not isinstance(value, kind):
        raise ValueError(f"{function}(): argument {argument!r} must be an array of class "
                         f"labels of shape {shape} of the first argument's library "
                         f"({kind.__name__}), got {type(value).__name__}")
    try:
        (xp, _), found = namespace(function, argument, value), tuple(value.shape)
        numeric = xp.isdtype(value.dtype, ("real floating", "integral"))
    except (AttributeError, TypeError, ValueError):
        found, numeric = type(value).__name__, False
    if not numeric or found != shape:
        got = found
        raise ValueError(f"{function}(): argument {argument!r} must be an array of class "
                         f"labels of shape {shape}, got {got}")
    if xp.isdtype(value.dtype, "real floating"):
        bad = ~((value > -2) & (value < classes))  # truncates into -1..classes-1; not NaN
    else:
        bad = (value < -1) | (value >= classes)
    if bool(xp.any(bad)):
        flat = xp.reshape(bad, (-1,))
        first = int(xp.argmax(xp.astype(flat, xp.int8)))
        found = float(xp.reshape(value, (-1,))[first])
        where, rest = [], first
        for size in reversed(shape):
            where.insert(0, rest % size)
            rest //= size
        raise ValueError(f"{function}(): argument {argument!r} holds {found!r} at index "
                         f"{tuple(where)}; class labels must be integers from 0 to "
                         f"{classes - 1}, or -1 to ignore a sample")
    return xp.astype(value, xp.int32)  # every library has it (JAX without x64: no int64)


def require_finite(parameter, gradient):
    """Raise FloatingPointError naming `parameter` if its gradient holds NaN or Inf."""
    xp, _ = namespace("require_finite", parameter, gradient)
    if not bool(xp.all(xp.isfinite(gradient))):
        raise FloatingPointError(
            f"the gradient of {parameter!r} holds NaN or Inf; no parameter was updated. "
            f"Look for NaN or Inf in the inputs, a learning rate that is too large, or "
            f"log/division of zero")
