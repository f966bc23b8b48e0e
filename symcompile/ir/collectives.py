"""Primitives that exchange values between the processes of a data-parallel job.

A generated module runs on one process. Where a graph needs other processes' values
(F.sync_batch_normalization's batch statistics) its code calls the `all_reduce` argument
the module's functions take: a function summing an array over the processes of a group,
which the runtime passes from the communicator the graph was built with. Each process
runs the same code, so each makes the same calls in the same order, as collectives need.

Gradients are those of the sum of every process's loss, as in nnabla: the sum over the
processes is linear and its own transpose (each process's cotangent of the sum it
received, summed over the processes, is the cotangent of its input), and a value every
process holds alike (a shared parameter) gets, on each, the sum of their gradients
(`ProcessShared`).
"""

from __future__ import annotations

import sympy
from sympy.core.symbol import Str

from symcompile.ir.primitives import Primitive


class AllReduceSum(Primitive):
    """x summed elementwise over the processes of `group`, which each of them receives;
    args (x, group). Its VJP sums the cotangent over the processes the same way."""

    nargs = 2
    linear = True

    @property
    def group(self) -> str:
        return self.args[1].name

    def shape(self, shapes):
        return shapes.of(self.args[0])

    def vjp(self, index, g, shapes):
        return AllReduceSum(g, self.args[1])


class ProcessShared(Primitive):
    """x, a value every process of `group` holds alike (a parameter), whose gradient on
    each process is the sum of the processes' gradients (nnabla's sync batch
    normalization gives beta and gamma theirs so); args (x, group). Its value is x."""

    nargs = 2
    linear = True

    def shape(self, shapes):
        return shapes.of(self.args[0])

    def vjp(self, index, g, shapes):
        return AllReduceSum(g, self.args[1])


def group_name(group: str) -> Str:
    """A group's name as an argument of these primitives."""
    return Str(group)


def process_groups(expressions) -> tuple[str, ...]:
    """The groups whose processes `expressions` exchange values with, sorted."""
    found = set()
    for expr in expressions:
        if isinstance(expr, sympy.Basic):
            found.update(a.group for a in expr.atoms(AllReduceSum))
    return tuple(sorted(found))
