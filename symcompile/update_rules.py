"""Solver update rules, written once as SymPy and printed into every generated module.

A rule says how one parameter `w`, its gradient `g`, the solver's state arrays and its
hyper-parameters become the new `w` and state. The same rule is printed into the update
section of a graph's fused step (`sgd_step`) and into the per-solver update module the
runtime's `solver.update()` calls, so there is one source of truth for each formula.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy


@dataclass(frozen=True)
class Update:
    """One in-place statement: ``target op= expr`` (op is "-=", "+=" or "=")."""

    target: sympy.Symbol
    op: str
    expr: sympy.Expr


@dataclass(frozen=True)
class UpdateRule:
    name: str  # the generated function is f"{name}_step" / the update module's name
    hyper: tuple[str, ...]  # hyper-parameters, in signature order
    states: tuple[str, ...]  # state arrays (same shape as the parameter)
    build: Callable[..., list[Update]]  # (w, g, states: dict, hyper: dict) -> updates
    doc: str


def _sgd(w, g, states, hyper):
    return [Update(w, "-=", hyper["lr"] * g)]


SGD = UpdateRule("sgd", ("lr",), (), _sgd, "w -= lr * g")

RULES = {rule.name: rule for rule in (SGD,)}


def hyper_symbols(rule: UpdateRule) -> dict[str, sympy.Symbol]:
    return {name: sympy.Symbol(name, real=True) for name in rule.hyper}
