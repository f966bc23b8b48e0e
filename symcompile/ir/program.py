"""The symbolic program: the straight-line equations generated code is printed from.

An `Equation` assigns one SymPy expression to one array symbol and remembers which
graph nodes it came from. A `Program` holds the forward equations (lowering), the
backward equations (autodiff) and, after optimisation, the common subexpressions, plus
everything needed to print them: symbol shapes, leaf order and output names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sympy

from symcompile.ir.graph import Graph
from symcompile.ir.naming import Namer
from symcompile.ir.primitives import Shapes

FORWARD, BACKWARD = "forward", "backward"


@dataclass(frozen=True)
class IndexBounds:
    """The range of each row of an input read as N-d indices (F.gather_nd's, of shape (M,
    ...): row m indexes axis m of an array): row m must hold integers in
    [rows[m][0], rows[m][1]), nnabla's [-n_m, n_m) with negative ones counting from the
    end. `readers` names the functions that read it (F.gather_nd), for the message."""

    rows: tuple[tuple[int, int], ...]
    readers: tuple[str, ...]

    @classmethod
    def of_axes(cls, sizes, reader: str) -> IndexBounds:
        """Row m indexes an axis of length sizes[m] (negative indices count from its end)."""
        return cls(tuple((-int(n), int(n)) for n in sizes), (reader,))

    def merged(self, other: int | IndexBounds, ignore: bool = False) -> IndexBounds:
        """The ranges both allow: `other` another IndexBounds, or class labels of `other`
        classes (from -1 with `ignore`, else 0) that another function reads the rows as."""
        if isinstance(other, IndexBounds):
            rows, readers = other.rows, other.readers
        else:
            rows = ((-1 if ignore else 0, other),) * len(self.rows)
            readers = ("a function reading them as class labels or indices",)
        both = tuple((max(a[0], b[0]), min(a[1], b[1]))
                     for a, b in zip(self.rows, rows, strict=True))
        return IndexBounds(both, tuple(dict.fromkeys(self.readers + readers)))


@dataclass(frozen=True)
class CotangentWrite:
    """A leaf that a function's backward overwrites with a value of the cotangent of the
    function's output (OpDef.backward_writes): `value(cotangent)` is the new value."""

    leaf: sympy.Symbol
    output: sympy.Symbol  # the function's output (an array of its own)
    value: Callable[[sympy.Expr], sympy.Expr]
    note: str  # what it is, for the comment
    origin: tuple[int, ...]  # the function's node


@dataclass
class Equation:
    target: sympy.Symbol
    expr: sympy.Expr
    section: str  # FORWARD or BACKWARD
    origin: tuple[int, ...] = ()  # indices of the graph nodes it came from
    note: str = ""  # what it computes, for the comment (e.g. "d loss / d a")
    wrt: sympy.Expr | None = None  # for a gradient: the expression it is the gradient of


@dataclass
class Program:
    graph: Graph
    shapes: Shapes
    namer: Namer
    dtype: str
    symbols: dict[int, sympy.Symbol] = field(default_factory=dict)  # value index -> symbol
    leaves: list[sympy.Symbol] = field(default_factory=list)  # argument order
    outputs: list[sympy.Symbol] = field(default_factory=list)
    forward: list[Equation] = field(default_factory=list)
    backward: list[Equation] = field(default_factory=list)
    temps: list[Equation] = field(default_factory=list)  # common subexpressions, after CSE
    value_exprs: dict[int, sympy.Expr] = field(default_factory=dict)  # value -> expression
    value_origins: dict[int, tuple[int, ...]] = field(default_factory=dict)  # value -> nodes
    needs_grad: set = field(default_factory=set)  # symbols a gradient flows through
    seed: sympy.Symbol | None = None  # d root / d root
    gradients: dict[int, sympy.Expr] = field(default_factory=dict)  # leaf value -> gradient
    # intermediate value (graph.grad_outputs) -> its gradient, which backward() returns too
    output_gradients: dict[int, sympy.Expr] = field(default_factory=dict)
    unreached: set[int] = field(default_factory=set)  # need_grad leaves the root ignores
    derivatives: dict[int, sympy.Expr] = field(default_factory=dict)  # leaf -> formula
    fused_names: dict[sympy.Expr, sympy.Symbol] = field(default_factory=dict)  # for display
    # Integer class labels (or indices) of an input: their symbol -> (the input's symbol,
    # classes, whether -1 is allowed: it ignores a sample for the losses, where an index
    # of -1 is refused). For N-d indices (F.gather_nd's) `classes` is an IndexBounds: a
    # range per row.
    # Each generated function that reads one computes it from the input on entry.
    labels: dict[sympy.Symbol, tuple[sympy.Symbol, int | IndexBounds, bool]] = field(
        default_factory=dict)
    # Leaves the forward pass overwrites (running statistics): leaf symbol -> the symbol
    # of its new value, a forward equation every function with a forward computes.
    running: dict[sympy.Symbol, sympy.Symbol] = field(default_factory=dict)
    # Leaves a backward pass overwrites (F.vat_noise's w = eps * dy): lowering records
    # each write of a function's output's cotangent (`cotangent_writes`), autodiff makes
    # it a backward equation: leaf symbol -> the symbol of its new value, which every
    # function with a backward computes and writes into the leaf's argument.
    cotangent_writes: list[CotangentWrite] = field(default_factory=list)
    backward_writes: dict[sympy.Symbol, sympy.Symbol] = field(default_factory=dict)
    # Arrays drawn at random (dropout's masks, F.rand): forward equations of a draw each;
    # the functions that compute one take an `rng` argument.
    draws: list[sympy.Symbol] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)  # sizes, for `symcompile show`

    def symbol(self, name: str, shape: tuple[int, ...]) -> sympy.Symbol:
        """A new array symbol with a unique identifier derived from `name`."""
        sym = sympy.Symbol(self.namer.claim(name))
        self.shapes.declare(sym, shape)
        return sym

    def forward_targets(self) -> list[sympy.Symbol]:
        """What a forward pass computes: the outputs, then the running statistics."""
        return [*self.outputs, *self.running.values()]

    def returned_gradients(self) -> list[sympy.Expr]:
        """Every gradient a generated function returns: the leaves', then the outputs'."""
        return [*self.gradients.values(), *self.output_gradients.values()]

    def backward_targets(self) -> list[sympy.Expr]:
        """What a backward pass computes: the returned gradients, then the new values of
        the leaves it overwrites (`backward_writes`)."""
        return [*self.returned_gradients(), *self.backward_writes.values()]

    def equations(self) -> list[Equation]:
        return [*self.forward, *self.temps, *self.backward]

