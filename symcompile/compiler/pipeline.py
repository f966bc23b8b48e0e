"""The compiler's passes in order: graph -> SymPy -> derivatives -> module source.

Each phase lives in its own module (`symcompile.passes`, `symcompile.backends`); this
one sequences them and times them. Reached only through `symcompile.compiler`.
"""

from __future__ import annotations

import contextlib
import gc
import time

from sympy.core.parameters import distribute

from symcompile.backends import registry as backends
from symcompile.backends.emit import EmitOptions, module_source, update_module_source
from symcompile.common.progress import Progress, ignore
from symcompile.compiler.options import DTYPES, Options
from symcompile.ir.graph import Graph
from symcompile.ir.program import Program
from symcompile.ops.update_rules import RULES
from symcompile.passes.autodiff import differentiate
from symcompile.passes.lowering import lower
from symcompile.passes.optimize import optimize
from symcompile.passes.schedule import schedule
from symcompile.passes.training_step import plan_training_step


def generate(graph: Graph, options: Options, progress: Progress | None = None
             ) -> tuple[str, Program, dict[str, float]]:
    """Module source for `graph` (deterministic: same graph and options, same text), the
    program it was printed from and the seconds each phase took.

    `progress`, if given, is called as ``progress(phase, done, total)`` when each phase
    ("lower", "differentiate", "optimize", "schedule", "emit") starts and, in the phases
    that walk the graph, as nodes are done (`progress.ProgressLine` shows it on a
    terminal).
    """
    if options.dtype not in DTYPES:
        raise ValueError(f"compile: dtype must be one of {DTYPES}, got {options.dtype!r}")
    report = progress or ignore
    with _without_cycle_collection():
        try:
            # Numbers stay outside sums (2*(y - (a*x + b)) keeps y - (a*x + b)) so CSE can
            # share them...
            with distribute(False):
                return _phases(graph, options, report)
        except RecursionError:
            # ...but then SymPy's Abs, which its assumption system calls on some powers
            # and derivatives, can flip the sign of a sum forever. Such a graph compiles
            # with SymPy's default distribution; its code shares fewer subexpressions.
            with distribute(True):
                return _phases(graph, options, report)


@contextlib.contextmanager
def _without_cycle_collection():
    """Python's cycle collector paused while compiling: a compile allocates millions of
    SymPy and AST objects that live until it ends, and each collection walks all of them
    again (a tenth of the compile time of large graphs). Their garbage has few cycles;
    what it has is collected when the collector runs again afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _PhaseClock:
    """Seconds per phase, in the order the phases ran."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._clock = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.timings[phase] = self.timings.get(phase, 0.0) + now - self._clock
        self._clock = now


def _phases(graph: Graph, options: Options, report: Progress
            ) -> tuple[str, Program, dict[str, float]]:
    clock = _PhaseClock()
    nodes = len(graph.nodes)
    report("lower", 0, nodes)
    program = lower(graph, options.dtype, options.fusion_limit,
                    progress=lambda done: report("lower", done, nodes))
    clock.lap("lower")
    report("differentiate", 0, nodes)
    differentiate(program, progress=lambda done: report("differentiate", done, nodes))
    clock.lap("differentiate")
    report("optimize", 0, 0)
    optimize(program, options.fusion_limit, lap=clock.lap)
    report("schedule", 0, 0)
    plan = schedule(program)
    step = plan_training_step(program, RULES[options.solver], options.solver_options,
                              options.hyper, options.check_finite) if options.solver else None
    clock.lap("schedule")
    report("emit", 0, 0)
    emit_options = EmitOptions(options.name, backends.get(options.backend),
                               options.regenerate, options.source, step,
                               options.check_finite, options.split_update)
    source = module_source(program, plan, graph.fingerprint(), emit_options, lap=clock.lap)
    return source, program, clock.timings


def update_source(rule_name: str, options: tuple, backend: str = "numpy") -> str:
    """The module with the standalone ``update(w, g, *states, [t], *hyper)`` of a rule."""
    return update_module_source(RULES[rule_name], options, backends.get(backend))
