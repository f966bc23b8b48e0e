"""Partial derivatives of elementwise expressions, in time linear in their size.

`partial(expr, s)` gives the same expression as ``sympy.diff(expr, s)`` for the
expressions the compiler builds (sums, products, powers and functions with an `fdiff`),
using the same rule per node as SymPy's `_eval_derivative`. What it leaves out is the
`Derivative` object SymPy builds around every node it visits: its constructor asks the
assumption system whether the result is zero, and that query walks the whole
subexpression each time (about 9 ms for ``tanh(x)`` alone, more the deeper the
expression). Here each subexpression is differentiated once (memoised), and zero is
recognised only when it is the number 0, which is what the rules produce whenever a
subexpression does not depend on `s`.

A node type with a rule of its own that is not listed here (`Abs`, `sign`) is handed to
`sympy.diff`, which is correct, only slower.
"""

from __future__ import annotations

import sympy
from sympy.core.function import ArgumentIndexError

_ZERO, _ONE = sympy.S.Zero, sympy.S.One
_GENERIC_FUNCTION_RULE = sympy.Function._eval_derivative


def partial(expr: sympy.Expr, s: sympy.Symbol) -> sympy.Expr:
    """d expr / d s."""
    memo: dict[sympy.Basic, sympy.Expr] = {}
    return _partial(expr, s, memo)


def _partial(expr: sympy.Basic, s: sympy.Symbol, memo: dict) -> sympy.Expr:
    if expr == s:
        return _ONE
    if s not in expr.free_symbols:
        return _ZERO
    known = memo.get(expr)
    if known is not None:
        return known
    result = _rule(expr, s, memo)
    memo[expr] = result
    return result


def _rule(expr: sympy.Basic, s: sympy.Symbol, memo: dict) -> sympy.Expr:
    if expr.is_Add:
        return expr.func(*[_partial(a, s, memo) for a in expr.args])
    if expr.is_Mul:
        args = expr.args
        terms = []
        for i, arg in enumerate(args):
            d = _partial(arg, s, memo)
            if d != 0:
                terms.append(sympy.Mul(*args[:i], d, *args[i + 1:]))
        return sympy.Add.fromiter(terms)
    if expr.is_Pow:
        base, exponent = expr.args
        dbase, dexp = _partial(base, s, memo), _partial(exponent, s, memo)
        return expr * (dexp * sympy.log(base) + dbase * exponent / base)
    if isinstance(expr, sympy.Function) \
            and type(expr)._eval_derivative is _GENERIC_FUNCTION_RULE:
        terms = []
        for i, arg in enumerate(expr.args, start=1):
            da = _partial(arg, s, memo)
            if da == 0:
                continue
            try:
                df = expr.fdiff(i)
            except ArgumentIndexError:
                df = sympy.Function.fdiff(expr, i)
            terms.append(df * da)
        return sympy.Add(*terms)
    return sympy.diff(expr, s)
