"""Order the equations into the statements of each generated function.

Every function computes some symbols from some others: `forward` the outputs from the
leaves, the backward part the gradients from the leaves, the seed and what the forward
part already computed. `order` emits exactly the equations needed, dependencies first
and otherwise in program order (forward, common subexpressions, backward), so each
function is straight-line code without dead statements.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from symcompile.ir.program import Equation, Program


@dataclass(frozen=True)
class Schedule:
    forward: tuple[Equation, ...]  # computes the outputs from the leaves
    backward: tuple[Equation, ...]  # computes the gradients; may read `saved`
    saved: tuple[sympy.Symbol, ...]  # forward values the backward part reads
    uses_seed: bool  # whether the backward part reads d root / d root


def order(program: Program, targets, available) -> list[Equation]:
    """The equations that compute `targets` from `available`, dependencies first."""
    definitions: dict[sympy.Symbol, Equation] = {}
    position: dict[sympy.Symbol, int] = {}
    for i, eq in enumerate([*program.forward, *program.temps, *program.backward]):
        definitions[eq.target] = eq
        position[eq.target] = i
    done = set(available)
    result: list[Equation] = []
    for target in targets:
        stack = [(target, False)]
        while stack:
            sym, expanded = stack.pop()
            if sym in done or sym not in definitions:
                continue
            eq = definitions[sym]
            if expanded:
                done.add(sym)
                result.append(eq)
                continue
            stack.append((sym, True))
            deps = [s for s in eq.expr.free_symbols if s in definitions and s not in done]
            for dep in sorted(deps, key=position.__getitem__, reverse=True):
                stack.append((dep, False))
    return result


def schedule(program: Program, gradients=None) -> Schedule:
    """The forward and backward statements for the outputs and `gradients`.

    `gradients` defaults to every gradient the program has (a fused training step asks
    only for the parameters' gradients, so it computes nothing it does not use); the new
    values of the leaves the backward overwrites (F.vat_noise's w) are computed too.
    """
    leaves = set(program.leaves)
    forward = order(program, program.forward_targets(), leaves)
    computed = {eq.target for eq in forward}
    if gradients is None:
        gradients = list(program.gradients.values())
    backward = order(program, [*gradients, *program.backward_writes.values()],
                     leaves | computed | {program.seed})
    read = set()
    for eq in backward:
        read |= eq.expr.free_symbols
    saved = tuple(eq.target for eq in forward if eq.target in read)
    return Schedule(tuple(forward), tuple(backward), saved, program.seed in read)
