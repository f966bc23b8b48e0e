"""`nn.parameter`: the registry of named parameters, nested by `parameter_scope`.

This module owns symcompile's one piece of global state, as nnabla does: a tree of
ordered dicts from scope names to parameter Variables, plus the current scope.
`parameter_scope` is the only way to move the current scope, and it always restores it.
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager

import numpy

from symcompile.common import memory
from symcompile.frontend import initializer as I
from symcompile.frontend.variable import Variable, bump_epoch

_root: OrderedDict = OrderedDict()
# The stack of (path, scope) pairs; the last one is the current scope.
_current: list[tuple[tuple[str, ...], OrderedDict]] = [((), _root)]


def _scope() -> OrderedDict:
    return _current[-1][1]


@contextmanager
def parameter_scope(name: str, scope=None):
    """Group the parameters created inside under `name/` (nestable; "a/b" nests too).

    With `scope` (a scope dict, e.g. from get_current_parameter_scope()), `name` is
    entered inside that scope instead of the current one. An empty name stays put.
    """
    path, target = ((), scope) if scope is not None else _current[-1]
    names = [n for n in str(name).strip("/").split("/") if n]
    for n in names:
        child = target.get(n)
        if child is None:
            child = target[n] = OrderedDict()
        elif not isinstance(child, OrderedDict):
            raise ValueError(f"parameter_scope: {n!r} is a parameter, not a scope")
        target = child
    _current.append((path + tuple(names), target))
    try:
        yield target
    finally:
        _current.pop()


def get_current_parameter_scope() -> OrderedDict:
    return _scope()


def _split(key: str) -> tuple[list[str], str]:
    names = str(key).split("/")
    return names[:-1], names[-1]


def _find(key: str) -> tuple[OrderedDict | None, str]:
    """The scope dict that holds `key` (relative to the current scope) and the leaf name."""
    scopes, leaf = _split(key)
    node = _scope()
    for n in scopes:
        node = node.get(n)
        if not isinstance(node, OrderedDict):
            return None, leaf
    return node, leaf


def get_parameter(key: str):
    """The parameter stored under `key` in the current scope, or None."""
    node, leaf = _find(key)
    value = node.get(leaf) if node is not None else None
    return value if isinstance(value, Variable) else None


def set_parameter(key: str, param: Variable) -> None:
    """Store `param` under `key` in the current scope."""
    scopes, leaf = _split(key)
    if scopes:
        with parameter_scope("/".join(scopes)):
            set_parameter(leaf, param)
        return
    if isinstance(_scope().get(leaf), OrderedDict):
        raise ValueError(f"set_parameter: {key!r} is a parameter scope, not a parameter")
    _scope()[leaf] = param
    bump_epoch()


def pop_parameter(key: str):
    """Remove the parameter `key` from the current scope and return it (or None)."""
    value = get_parameter(key)
    if value is not None:
        node, leaf = _find(key)
        del node[leaf]
        bump_epoch()
    return value


def get_parameter_or_create(name, shape=None, initializer=None, need_grad=True,
                            as_need_grad=None) -> Variable:
    """The parameter `name` in the current scope, created (and initialised) if missing.

    Args:
        name: Parameter name; "a/b" creates or uses scope "a".
        shape: Its shape; required unless `initializer` is an array.
        initializer: None (zeros), an array, or a callable `init(shape=[...])`.
        need_grad: Stored on the parameter (overwrites an existing one's flag).
        as_need_grad: `need_grad` of the returned view (default: the stored flag).

    Returns:
        A view of the stored parameter that shares its arrays (nnabla's unlinked view),
        named after the last component of `name`.
    """
    scopes, leaf = _split(name)
    if scopes:
        with parameter_scope("/".join(scopes)):
            return get_parameter_or_create(leaf, shape, initializer, need_grad, as_need_grad)
    if isinstance(initializer, numpy.ndarray):
        if shape is not None and tuple(shape) != initializer.shape:
            raise ValueError(
                f"get_parameter_or_create({name!r}): shape {tuple(shape)} does not match the "
                f"initializer array's shape {initializer.shape}"
            )
        shape = initializer.shape
    param = get_parameter(leaf)
    if param is None:
        if shape is None:
            raise ValueError(
                f"get_parameter_or_create({name!r}): the parameter does not exist yet, so a "
                "shape (or an array initializer) is required"
            )
        param = Variable(shape, need_grad=need_grad)
        param._name = leaf
        # initializers draw in float64 before the float32 copy
        memory.require(param.shape, numpy.float64, f"parameter {_full_key(leaf)!r}")
        if isinstance(initializer, numpy.ndarray):
            param.d = initializer
        elif initializer is not None:
            param.d = initializer(shape=list(param.shape))
        param._storage.init = I.describe(initializer)
        set_parameter(leaf, param)
    else:
        if shape is not None and tuple(shape) != param.shape:
            raise ValueError(
                f"get_parameter_or_create({_full_key(leaf)!r}): a parameter of shape "
                f"{param.shape} already exists and shape {tuple(shape)} was requested. Use "
                "another name or scope, or call nn.clear_parameters() to start over."
            )
        if bool(need_grad) != param.need_grad:
            param.need_grad = need_grad
    view = param.get_unlinked_variable(need_grad=as_need_grad)
    view._name = leaf
    return view


def _full_key(leaf: str) -> str:
    return "/".join(_current[-1][0] + (leaf,))


def get_parameters(params=None, path="", grad_only=True) -> OrderedDict:
    """`OrderedDict` of "scope/name" -> parameter under the current scope, in creation order.

    By default only parameters with `need_grad=True` (nnabla's `grad_only=True`).
    """
    params = OrderedDict() if params is None else params

    def collect(node, prefix):
        for key, value in node.items():
            full = f"{prefix}/{key}" if prefix else key
            if isinstance(value, OrderedDict):
                collect(value, full)
            elif not grad_only or value.need_grad:
                params[full] = value

    collect(_scope(), path)
    return params


def clear_parameters() -> None:
    """Remove every parameter (and sub-scope) from the current scope."""
    _scope().clear()
    bump_epoch()


def parameter_keys_by_storage() -> dict[int, str]:
    """id(storage) -> full key, over the whole registry (used to name graph leaves)."""
    keys: dict[int, str] = {}

    def collect(node, prefix):
        for key, value in node.items():
            full = f"{prefix}/{key}" if prefix else key
            if isinstance(value, OrderedDict):
                collect(value, full)
            else:
                keys.setdefault(id(value._storage), full)

    collect(_root, "")
    return keys


def save_parameters(path, params=None, extension=None) -> None:
    """Write parameters (default: all, trainable or not) to .npz (or .h5 with h5py),
    atomically, with their need_grad flags and order."""
    from symcompile.common import checkpoint

    params = get_parameters(grad_only=False) if params is None else params
    checkpoint.save_arrays(path, {name: var.d for name, var in params.items()},
                           {name: {"need_grad": bool(var.need_grad)}
                            for name, var in params.items()}, extension)


def load_parameters(path, proto=None, needs_proto=False, extension=None) -> None:
    """Read parameters written by save_parameters() into the current scope.

    All or nothing: every array's name, shape (against the parameter of that name here,
    if any), dtype and values is checked before any is stored, so a bad file raises
    CheckpointError naming the array and changes nothing, not even by creating
    parameters. Float arrays are accepted (NaN and Inf too, as they are) and so are
    integers within ±2**24; see checkpoint._check_values for why.
    """
    from symcompile.common import checkpoint

    def plan(names):
        scopes = {"/".join(name.split("/")[:i]) for name in names
                  for i in range(1, name.count("/") + 1)}
        specs = {}
        for name in names:
            problem = clash(name, scopes)
            if problem:
                raise checkpoint.CheckpointError(
                    f"{path}: parameter {name!r} {problem}; nothing was loaded")
            existing = get_parameter(name)
            specs[name] = checkpoint.Spec(f"parameter {name!r}",
                                          None if existing is None else existing.shape)
        return specs

    def clash(name, scopes):
        """Why `name` cannot be stored here (None if it can), so that storing never fails
        half-way."""
        parts = name.split("/")
        if not all(parts):
            return "is not a scope/name path"
        if name in scopes:
            return "is also a scope of other parameters in the file"
        node = _scope()
        for depth, part in enumerate(parts[:-1], 1):
            node = node.get(part)
            if node is None:
                return None
            if isinstance(node, Variable):
                return f"cannot be stored: {'/'.join(parts[:depth])!r} is a parameter here"
        if isinstance(node.get(parts[-1]), OrderedDict):
            return "cannot be stored: it is a parameter scope here"
        return None

    arrays, attributes = checkpoint.load_arrays(path, plan, extension)
    for name, value in arrays.items():
        need_grad = bool(attributes.get(name, {}).get("need_grad", True))
        param = get_parameter_or_create(name, value.shape, need_grad=need_grad)
        param.d = value
