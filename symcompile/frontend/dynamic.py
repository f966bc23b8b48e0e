"""nnabla's dynamic graphs: `nn.auto_forward()` computes each function as it is called.

With auto-forward on, every F call (and so every PF layer and operator on Variables)
computes its output right away, from its inputs' current values: the runtime runs the
node alone, as a graph over leaves that share the inputs' arrays. That one-node graph is
compiled once per function, arguments and shapes (and per parameter it reads, whose name
is part of the graph) and then comes from the cache, so a dynamic graph costs one small
module per distinct layer, not one per call. The graph is still recorded: `backward()`
on its output compiles and runs the whole graph, as for a static one, unless it was built
under `nn.no_grad()`.
"""

from __future__ import annotations

from contextlib import contextmanager

from symcompile.frontend import executor

_enabled = False
_no_grad = False


def get_auto_forward() -> bool:
    """Whether F calls compute their outputs as they are called."""
    return _enabled


def set_auto_forward(auto: bool) -> None:
    """Turn auto-forward on (dynamic graphs) or off (static graphs, nnabla's default)."""
    global _enabled
    _enabled = bool(auto)


@contextmanager
def auto_forward(auto: bool = True):
    """``with nn.auto_forward():`` graphs built inside compute as they are built."""
    previous = get_auto_forward()
    set_auto_forward(auto)
    try:
        yield
    finally:
        set_auto_forward(previous)


@contextmanager
def no_grad(no_grad_: bool = True):
    """``with nn.no_grad():`` as nnabla's: with auto-forward on, each function's output is
    computed and then cut from the graph (no parent, need_grad False), so nothing is kept
    for a backward pass; static graphs are built as usual (nnabla then only lets
    ``forward(clear_no_need_grad=True)`` free buffers, which generated code never keeps)."""
    global _no_grad
    previous = _no_grad
    _no_grad = bool(no_grad_)
    try:
        yield
    finally:
        _no_grad = previous


def compute(out) -> None:
    """Fill `out`'s value, the output of a function just recorded, from its inputs' current
    values: the function over leaves that share the inputs' arrays, run by the executor
    (running statistics the function updates are updated in place, as by nnabla)."""
    from symcompile.frontend.variable import Function, Variable

    func = out._parent
    leaves = []
    for position, inp in enumerate(func._inputs):
        leaf = inp.get_unlinked_variable(need_grad=False)
        leaf._name = f"x{position}"  # (a parameter is named by its key, whatever this)
        leaves.append(leaf)
    alone = Variable(out.shape)
    alone._parent = Function(func.op, tuple(leaves), func.args, func.callsite,
                             func.communicator)
    alone._callsite = out._callsite
    alone._name = "y"
    alone._parent.add_output(alone)
    executor.current().forward(alone)
    out._storage.data[...] = alone._storage.data
    out._storage.computed = True
    if _no_grad:
        out._parent = None
        out._need_grad = False
