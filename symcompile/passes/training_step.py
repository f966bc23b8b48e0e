"""The fused training step: the solver's update fused into forward and backward.

Given a scheduled program and an update rule, this pass names the step's solver state,
hyper-parameters and update count, schedules the forward and backward the step needs,
instantiates the rule for every trainable parameter, shares the coefficients all
parameters use (Adam's bias-corrected step size) and decides which gradients are
computed inside their update statement instead of as arrays of their own. The
backends only print what it decided.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from symcompile.ir.primitives import MatMul, scale_into_matmul
from symcompile.ir.program import Program
from symcompile.ops.update_rules import Update, UpdateRule, instantiate, state_names
from symcompile.passes.schedule import Schedule, schedule


class SolverSymbols:
    """The symbols of a solver's fused step: hyper-parameters, update count and, per
    trainable parameter, its state arrays (named ``<parameter>_<state>``)."""

    def __init__(self, program: Program, rule: UpdateRule, options, hyper=()) -> None:
        self.options = {**dict(rule.options), **dict(options)}
        self.names = state_names(rule, self.options)
        # Hyper-parameter names are reserved by the namer: they are keyword arguments.
        self.hyper = {name: program.shapes.declare(sympy.Symbol(name), ())
                      for name in rule.hyper_names}
        self.step = program.shapes.declare(sympy.Symbol("step"), ()) \
            if rule.uses_t else None
        self.states: dict[int, dict[str, sympy.Symbol]] = {}
        for index, symbol in program.symbols.items():
            value = program.graph.values[index]
            if value.kind == "parameter" and value.need_grad:
                self.states[index] = {
                    name: program.symbol(f"{symbol.name}_{name}", value.shape)
                    for name in self.names}
        self.defaults = {**dict(rule.hyper), **dict(hyper)}  # the step's argument defaults

    @property
    def state_symbols(self) -> list[sympy.Symbol]:
        return [sym for states in self.states.values() for sym in states.values()]


@dataclass(frozen=True)
class StepUpdate:
    """One update statement: the rule's update with the expression to print and where
    it comes from."""

    update: Update
    expr: sympy.Expr
    note: str


@dataclass(frozen=True)
class TrainingStep:
    rule: UpdateRule
    solver: SolverSymbols
    plan: Schedule | None  # None: no trainable parameter, so no step
    updates: tuple[StepUpdate, ...] = ()
    fused: frozenset[sympy.Symbol] = frozenset()  # gradients computed inside their update
    updated: tuple[sympy.Symbol, ...] = ()  # the parameters and states the step updates
    # the updates as solver.update() applies them, from the gradient arrays (nothing
    # inlined): the runtime's backward-and-update gives the bits of backward(), update()
    split_updates: tuple[StepUpdate, ...] = ()


def plan_training_step(program: Program, rule: UpdateRule, options=(), hyper=(),
                       check_finite: bool = False) -> TrainingStep:
    """The fused step of `rule` over `program`'s trainable parameters.

    A parameter's gradient that the rule uses once (lr * g for SGD) is computed inside
    the update statement, with the scalar moved into the smaller matmul operand:
    ``W -= x.T @ (lr*_t7)`` instead of a full-size ``lr*g_W`` temporary, unless
    `check_finite` needs the gradient as an array to check it first.
    """
    solver = SolverSymbols(program, rule, options, hyper)
    graph = program.graph
    trainable = [program.gradients[v.index] for v in graph.parameters if v.need_grad]
    if not trainable:
        return TrainingStep(rule, solver, None)
    plan = schedule(program, trainable)
    definitions = {eq.target: eq.expr for eq in plan.backward}
    root = program.outputs[0].name
    updates, fused, split_updates = [], set(), []
    shared: dict[sympy.Expr, sympy.Symbol] = {}  # coefficient expression -> its name
    pool = set(solver.hyper.values()) | {solver.step}
    bases: dict[sympy.Symbol, str] = {}  # per-parameter coefficient -> the rule's name
    # Leaves the forward pass writes (F.assign's dst) or the backward (F.vat_noise's w)
    # get their new values before the update, so a gradient reading one stays in the
    # backward section, which reads the old.
    overwritten = {*program.running, *program.backward_writes}
    for index, grad in program.gradients.items():
        value = graph.values[index]
        if value.kind != "parameter" or not value.need_grad:
            continue
        param = program.symbols[index]

        def scalar_name(name, param=param):
            symbol = program.symbol(f"{param.name}_{name}", ())
            bases[symbol] = name
            return symbol

        def local_name(name, param=param):
            return program.symbol(f"{param.name}_{name}", program.shapes.of(param))

        rule_updates = instantiate(rule, param, grad, solver.states[index], solver.hyper,
                                   solver.step, solver.options, scalar_name, local_name)
        rule_updates = _share_coefficients(program, rule_updates, shared, pool, bases)
        uses = sum(list(sympy.preorder_traversal(u.expr)).count(grad) for u in rule_updates)
        note = f"{rule.name} update of {value.name}"
        inline = {}
        if uses == 1 and grad in definitions and _fusable(program, definitions[grad]) \
                and not check_finite and not overwritten & definitions[grad].free_symbols:
            inline = {grad: definitions[grad]}
            fused.add(grad)
            note += f", with d {root} / d {value.name} computed in the update"
        for upd in rule_updates:
            expr = scale_into_matmul(upd.expr.xreplace(inline), program.shapes)
            updates.append(StepUpdate(upd, expr, f"{rule.name}: coefficient" if upd.scalar
                                      else note))
            split_updates.append(StepUpdate(upd, upd.expr, f"{rule.name}: coefficient"
                                            if upd.scalar else f"{rule.name} update of "
                                            f"{value.name}"))
    updated = (*(program.symbols[v.index] for v in graph.parameters if v.need_grad),
               *solver.state_symbols)
    return TrainingStep(rule, solver, plan, tuple(updates), frozenset(fused), updated,
                        tuple(split_updates))


def _share_coefficients(program: Program, updates, shared: dict, pool: set,
                        bases: dict) -> list[Update]:
    """One statement for a coefficient every parameter shares (Adam's alpha_t), named
    plainly; coefficients of a parameter's own values (Lamb's trust ratio) stay per
    parameter, prefixed with its name."""
    rename: dict[sympy.Symbol, sympy.Symbol] = {}
    kept = []
    for upd in updates:
        expr = upd.expr.xreplace(rename)
        if upd.scalar and expr.free_symbols <= pool:
            if expr in shared:
                rename[upd.target] = shared[expr]
                continue
            plain = program.symbol(bases[upd.target], ())
            shared[expr] = plain
            pool.add(plain)
            rename[upd.target] = plain
            kept.append(Update(plain, upd.op, expr, scalar=True))
        else:
            kept.append(Update(upd.target, upd.op, expr, upd.scalar, upd.local))
    return kept


def _fusable(program: Program, expr: sympy.Expr) -> bool:
    """A gradient worth computing inside its update: a (scaled) matrix product."""
    factors = sympy.Mul.make_args(expr)
    rest = [f for f in factors if not program.shapes.is_scalar(f)]
    return len(rest) == 1 and isinstance(rest[0], MatMul)
