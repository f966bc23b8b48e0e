"""How much symbolic work a fused expression costs, predicted before SymPy does any.

Fusing a chain of elementwise functions into one expression gives one readable NumPy
statement, but what SymPy then does with the expression (differentiate it, simplify,
share subexpressions, print) costs far more than its forward operation count says: the
derivative of f(g(h(x))) is f'(g(h(x)))*g'(h(x))*h'(x), so every level of nesting copies
everything beneath it once more, and an argument used twice (x*sigmoid(x)) doubles the
tree the next function sees. `CostModel` measures two things in one pass over the
expression (linear in its DAG, however much of it is shared):

- `operations`: arithmetic operations and function calls as printed, counting shared
  subexpressions once per use (the tree the printer and SymPy's tree walks see);
- `derivative`: the predicted size of its partial derivatives, by the rules of
  differentiation applied to sizes (a product copies its other factors into each term,
  a function's derivative copies its argument), which grows with the square of the
  nesting.

The lowering cuts a region (gives the value an array of its own) as soon as either
passes its limit, so the work per region is bounded by a constant and the compile time of
a graph grows linearly with its size.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from symcompile.ir.primitives import Primitive

# Predicted derivative size per allowed forward operation: 80 terms at the default limit
# of 40 operations. The fused MLP layers, activations and losses of the examples stay
# under 40; a chain of nested functions is cut every 10 to 15 levels, where (measured on
# bench/compile.py's chains) its derivative's products start to dominate the compile.
DERIVATIVE_PER_OPERATION = 2


@dataclass(frozen=True)
class RegionCost:
    operations: int
    derivative: int

    def fits(self, operation_limit: int) -> bool:
        """Whether a region of this cost may grow further under `operation_limit`."""
        return (self.operations <= operation_limit
                and self.derivative <= DERIVATIVE_PER_OPERATION * operation_limit)


@dataclass(frozen=True)
class _Measure:
    size: int  # nodes of the tree the differentiator sees (a tensor primitive is one)
    operations: int
    derivative: int  # 0: does not depend on any array


_ATOM = _Measure(1, 0, 0)
_SYMBOL = _Measure(1, 0, 1)


class CostModel:
    """Measures expressions, remembering every subexpression it has measured: the
    lowering asks about each node's expression, which holds the expressions fused into
    it, so each asks only about what the node added."""

    def __init__(self) -> None:
        self._memo: dict[sympy.Basic, _Measure] = {}

    def cost(self, expr: sympy.Basic) -> RegionCost:
        measured = _measure(expr, self._memo)
        return RegionCost(measured.operations, measured.derivative)


def operation_count(expr: sympy.Basic) -> int:
    """Operations of `expr` as printed (a subexpression used twice counts twice), in time
    linear in the expression's DAG; close to `sympy.count_ops` without its assumption
    queries (count_ops spends milliseconds per fused expression deciding which products
    are divisions and negations)."""
    return _measure(expr, {}).operations


def _measure(root: sympy.Basic, memo: dict) -> _Measure:
    """Bottom-up over the DAG with an explicit stack: expressions may be deep."""
    stack: list[tuple[sympy.Basic, bool]] = [(root, False)]
    while stack:
        expr, ready = stack.pop()
        if expr in memo:
            continue
        if not expr.args:
            memo[expr] = _SYMBOL if isinstance(expr, sympy.Symbol) else _ATOM
            continue
        if not ready:
            stack.append((expr, True))
            stack.extend((a, False) for a in expr.args if a not in memo)
            continue
        memo[expr] = _combine(expr, [memo[a] for a in expr.args])
    return memo[root]


def _combine(expr: sympy.Basic, parts: list[_Measure]) -> _Measure:
    size = 1 + sum(p.size for p in parts)
    below = sum(p.operations for p in parts)
    inner = sum(p.derivative for p in parts)
    if expr.is_Add:
        return _Measure(size, below + len(parts) - 1, inner + 1 if inner else 0)
    if expr.is_Mul:
        # product rule: each factor's derivative times all the other factors
        derivative = sum(p.derivative + size - p.size for p in parts if p.derivative)
        return _Measure(size, below + len(parts) - 1, derivative)
    if expr.is_Pow:
        # d b**e = b**e*(e*db/b + de*log(b))
        return _Measure(size, below + 1, inner + 2 * size + 4 if inner else 0)
    if isinstance(expr, Primitive):
        # A matrix product, a reduction: autodiff differentiates around it (it is one
        # symbol to sympy.diff) and passes the cotangent through its hand-written VJP, so
        # its arguments' derivatives add up instead of multiplying with what surrounds it.
        return _Measure(1, below + 1, inner + 1 if inner else 0)
    if isinstance(expr, sympy.Function):
        # f'(a) repeats f's arguments once, times the derivative of each argument
        derivative = sum(p.derivative + size for p in parts if p.derivative)
        return _Measure(size, below + 1, derivative)
    # containers (a Tuple of axes) and anything else: no operation of its own
    return _Measure(size, below, inner)
