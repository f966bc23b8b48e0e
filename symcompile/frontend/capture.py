"""Variables -> the tensor IR: `capture` snapshots the graph a user built.

It walks the Variables reachable from the outputs and produces a `Graph` of `Value`s
(inputs, parameters, intermediates: name, static shape, dtype, need_grad) and `Node`s
(op, attributes, inputs, output, user call site), in an order that depends only on the
graph's structure (see `symcompile.ir.graph`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from symcompile.frontend.parameter import parameter_keys_by_storage
from symcompile.frontend.variable import FLOAT, Variable
from symcompile.ir import callsite
from symcompile.ir.graph import INPUT, INTERMEDIATE, PARAMETER, Graph, Node, Value


@dataclass(frozen=True)
class Captured:
    """A captured graph and the arrays it was captured from."""

    graph: Graph
    storages: dict[int, object]  # leaf value index -> Storage (shared by all its views)
    output_vars: tuple  # the Variables of graph.outputs, in order
    grad_vars: tuple = ()  # the Variables of graph.grad_outputs, in order
    intermediates: frozenset = frozenset()  # id() of every intermediate Variable
    # group name -> the communicator whose processes the graph sums values over in it
    # (sync batch normalization's), for the runtime to pass the module's all_reduce
    communicators: dict = field(default_factory=dict)


def capture(root: Variable, name: str = "graph", dtype: str | None = None,
            observed: bool = False) -> Captured:
    """Snapshot the graph that computes `root`.

    With `observed`, intermediates whose `.d` the user has read become extra outputs, so
    that every forward() keeps them up to date (as nnabla keeps all intermediates).
    Views of one array are one leaf per need_grad flag (see `identity` below).
    """
    keys = parameter_keys_by_storage()
    order: list[Variable] = []
    index_of: dict[tuple, int] = {}

    def identity(var: Variable) -> tuple:
        # Views of one array are one leaf per need_grad flag: a gradient flows into the
        # trainable view only, as in nnabla, where they are distinct nodes sharing arrays.
        if var._parent is not None:
            return ("node", id(var))
        return ("leaf", id(var._storage), bool(var._need_grad))

    stack = [(root, False)]
    while stack:
        var, expanded = stack.pop()
        key = identity(var)
        if key in index_of:
            continue
        if expanded or var._parent is None:
            index_of[key] = len(order)
            order.append(var)
            continue
        stack.append((var, True))
        for inp in reversed(var._parent._inputs):
            if identity(inp) not in index_of:
                stack.append((inp, False))

    communicators = _communicators(order)
    trainable = {id(v._storage) for v in order if v._parent is None and v._need_grad}
    values, nodes, storages = [], [], {}
    need: list[bool] = []
    for i, var in enumerate(order):
        if var._parent is None:
            key = keys.get(id(var._storage))
            needs = bool(var._need_grad)
            # A constant view of a parameter that is also trained here is an input.
            registered = key is not None and (needs or id(var._storage) not in trainable)
            kind = PARAMETER if registered else INPUT
            label = key if key is not None else user_name(var)
            storages[i] = var._storage
        else:
            func = var._parent
            inputs = tuple(index_of[identity(v)] for v in func._inputs)
            needs = var._need_grad is not False and any(need[j] for j in inputs)
            kind, label = INTERMEDIATE, user_name(var)
            nodes.append(Node(len(nodes), func.op.name, inputs, i,
                              tuple(sorted(func.args.items())), func.callsite))
        need.append(needs)
        init = var._storage.init if kind == PARAMETER else None
        # (the dtype the module computes in: functions read every input as float32,
        # whatever the dtype of its array, as nnabla's do; see Storage)
        values.append(Value(i, label, var.shape, dtype or FLOAT.name, kind, needs,
                            var._callsite, init))
    output_vars = [root]
    if observed:
        output_vars += [v for v in order if v._parent is not None and v._observed and v is not root]
    outputs = tuple(index_of[identity(v)] for v in output_vars)
    grad_vars = tuple(v for v in output_vars[1:] if v._grad_observed
                      and values[index_of[identity(v)]].need_grad)
    grad_outputs = tuple(index_of[identity(v)] for v in grad_vars)
    return Captured(Graph(name, tuple(values), tuple(nodes), outputs, grad_outputs), storages,
                    tuple(output_vars), grad_vars,
                    frozenset(id(v) for v in order if v._parent is not None), communicators)


def _communicators(order: list[Variable]) -> dict:
    """Each process group the functions computing `order` sum values over, with its
    communicator; refused when two communicators have a group of one name (the module
    names groups only)."""
    found: dict = {}
    for var in order:
        func = var._parent
        if func is None or func.communicator is None:
            continue
        group = func.args["group"]
        known = found.setdefault(group, func.communicator)
        if known is not func.communicator:
            where = f" at {func.callsite.display}" if func.callsite else ""
            raise ValueError(
                f"F.{func.op.name}{where}: its group {group!r} is of another communicator "
                f"than an earlier function's group {group!r} in the same graph; use one "
                f"communicator (comm.new_group for other groups of processes)")
    return found


def user_name(var: Variable) -> str:
    """The name the user gave: `var.name`, else the variable it was assigned to."""
    return var._name or callsite.assigned_name(var._callsite) or ""
