"""Solver update rules, written once as SymPy and printed into every generated module.

A rule says how one parameter `w`, its gradient `g`, the solver's state arrays, the
update count `t` (1 for the first update) and the hyper-parameters become the new `w`
and state. Rules are written as in-place statements (``m *= beta1; m += (1 - beta1)*g``)
so the generated code makes no temporaries the formula does not need. The same rule is
printed into the fused training step of a graph's module (``adam_step``) and into the
per-solver module that the runtime's `solver.update()` calls: one source of truth per
formula.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy

from .primitives import Dot


@dataclass(frozen=True)
class Update:
    """One in-place statement: ``target op expr`` with op "=", "+=", "-=" or "*=".

    `scalar` marks a scalar coefficient (computed once, named, then used by arrays).
    """

    target: sympy.Symbol
    op: str
    expr: sympy.Expr
    scalar: bool = False


@dataclass(frozen=True)
class RuleContext:
    """The symbols a rule is written in."""

    w: sympy.Symbol
    g: sympy.Symbol
    state: dict[str, sympy.Symbol]
    hyper: dict[str, sympy.Symbol]
    t: sympy.Symbol  # the update count of this parameter, starting at 1
    scalar: Callable[[str], sympy.Symbol]  # a fresh scalar temporary named after its use
    options: dict[str, bool]  # switches that change the formula (e.g. bias_correction)


@dataclass(frozen=True)
class UpdateRule:
    name: str  # nnabla's snake name; the fused step is f"{name}_step"
    hyper: tuple[tuple[str, float], ...]  # (name, nnabla's default) in signature order
    states: tuple[str, ...]  # nnabla's state names, arrays shaped like the parameter
    uses_t: bool
    build: Callable[[RuleContext], list[Update]]
    doc: str
    options: tuple[tuple[str, bool], ...] = ()  # (name, default): switches, not arguments

    @property
    def hyper_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.hyper)


RULES: dict[str, UpdateRule] = {}


def rule(name: str, hyper, states=(), uses_t=False, doc="", options=()):
    def register(build):
        RULES[name] = UpdateRule(name, tuple(hyper), tuple(states), uses_t, build, doc,
                                 tuple(options))
        return build

    return register


def sqrt(x):
    return sympy.sqrt(x)


def norm(x):
    """The L2 norm of a whole array (a scalar)."""
    return sympy.sqrt(Dot(x, x))


# --- the rules --------------------------------------------------------------------------

@rule("sgd", [("lr", 1e-3)], doc="w -= lr * g")
def _sgd(c: RuleContext):
    return [Update(c.w, "-=", c.hyper["lr"] * c.g)]


@rule("momentum", [("lr", 1e-3), ("momentum", 0.9)], states=("m",),
      doc="m = momentum*m + lr*g; w -= m")
def _momentum(c: RuleContext):
    m, lr, gamma = c.state["m"], c.hyper["lr"], c.hyper["momentum"]
    return [Update(m, "*=", gamma), Update(m, "+=", lr * c.g), Update(c.w, "-=", m)]


@rule("nesterov", [("lr", 1e-3), ("momentum", 0.9)], states=("m",),
      doc="m_prev = m; m = momentum*m - lr*g; w += -momentum*m_prev + (1 + momentum)*m")
def _nesterov(c: RuleContext):
    m, lr, gamma = c.state["m"], c.hyper["lr"], c.hyper["momentum"]
    return [Update(c.w, "-=", gamma * m),  # m is still m_prev here
            Update(m, "*=", gamma), Update(m, "-=", lr * c.g),
            Update(c.w, "+=", (1 + gamma) * m)]


@rule("adagrad", [("lr", 1e-2), ("eps", 1e-8)], states=("v",),
      doc="v += g**2; w -= lr*g/(sqrt(v) + eps)")
def _adagrad(c: RuleContext):
    v, lr, eps = c.state["v"], c.hyper["lr"], c.hyper["eps"]
    return [Update(v, "+=", c.g**2), Update(c.w, "-=", lr * c.g / (sqrt(v) + eps))]


@rule("rmsprop", [("lr", 1e-3), ("decay", 0.9), ("eps", 1e-8)], states=("v",),
      doc="v = decay*v + (1 - decay)*g**2; w -= lr*g/(sqrt(v) + eps)")
def _rmsprop(c: RuleContext):
    v, lr, decay, eps = c.state["v"], c.hyper["lr"], c.hyper["decay"], c.hyper["eps"]
    return [Update(v, "*=", decay), Update(v, "+=", (1 - decay) * c.g**2),
            Update(c.w, "-=", lr * c.g / (sqrt(v) + eps))]


def _adam_moments(c: RuleContext, mean="mean", var="var"):
    m, v = c.state[mean], c.state[var]
    b1, b2 = c.hyper["beta1"], c.hyper["beta2"]
    return m, v, [Update(m, "*=", b1), Update(m, "+=", (1 - b1) * c.g),
                  Update(v, "*=", b2), Update(v, "+=", (1 - b2) * c.g**2)]


def _bias_corrected(c: RuleContext, rate: str = "alpha"):
    """alpha * sqrt(1 - beta2**t) / (1 - beta1**t), as one named scalar."""
    b1, b2, t = c.hyper["beta1"], c.hyper["beta2"], c.t
    step = c.scalar(f"{rate}_t")
    return step, Update(step, "=", c.hyper[rate] * sqrt(1 - b2**t) / (1 - b1**t), scalar=True)


@rule("adam", [("alpha", 1e-3), ("beta1", 0.9), ("beta2", 0.999), ("eps", 1e-8)],
      states=("mean", "var"), uses_t=True,
      doc="mean, var = EMAs of g, g**2; w -= alpha*sqrt(1 - beta2**t)/(1 - beta1**t)"
          " * mean/(sqrt(var) + eps)")
def _adam(c: RuleContext):
    m, v, moments = _adam_moments(c)
    step, coefficient = _bias_corrected(c)
    return [*moments, coefficient, Update(c.w, "-=", step * m / (sqrt(v) + c.hyper["eps"]))]


@rule("adamw", [("alpha", 1e-3), ("beta1", 0.9), ("beta2", 0.999), ("eps", 1e-8),
                ("wd", 1e-4), ("init_alpha", 1e-3)],
      states=("mean", "var"), uses_t=True,
      doc="Adam, then w -= (alpha/init_alpha)*wd*w (decoupled, from the pre-update w)")
def _adamw(c: RuleContext):
    m, v, moments = _adam_moments(c)
    step, coefficient = _bias_corrected(c)
    decay = c.hyper["alpha"] / c.hyper["init_alpha"] * c.hyper["wd"]
    return [*moments, coefficient,
            Update(c.w, "-=", step * m / (sqrt(v) + c.hyper["eps"]) + decay * c.w)]


@rule("sgdw", [("lr", 1e-3), ("momentum", 0.9), ("wd", 1e-4), ("init_lr", 1e-3)],
      states=("m",),
      doc="m = momentum*m + lr*g; w = w - m - (lr/init_lr)*wd*w (decoupled)")
def _sgdw(c: RuleContext):
    m, lr, gamma = c.state["m"], c.hyper["lr"], c.hyper["momentum"]
    decay = lr / c.hyper["init_lr"] * c.hyper["wd"]
    return [Update(m, "*=", gamma), Update(m, "+=", lr * c.g),
            Update(c.w, "-=", m + decay * c.w)]


@rule("adamax", [("alpha", 2e-3), ("beta1", 0.9), ("beta2", 0.999), ("eps", 1e-8)],
      states=("mean", "u"), uses_t=True,
      doc="mean = EMA of g; u = max(beta2*u, |g|); w -= alpha/(1 - beta1**t)*mean/(u + eps)")
def _adamax(c: RuleContext):
    m, u = c.state["mean"], c.state["u"]
    b1, b2 = c.hyper["beta1"], c.hyper["beta2"]
    step = c.scalar("alpha_t")
    return [Update(m, "*=", b1), Update(m, "+=", (1 - b1) * c.g),
            Update(u, "=", sympy.Max(b2 * u, sympy.Abs(c.g))),
            Update(step, "=", c.hyper["alpha"] / (1 - b1**c.t), scalar=True),
            Update(c.w, "-=", step * m / (u + c.hyper["eps"]))]


@rule("amsgrad", [("alpha", 1e-3), ("beta1", 0.9), ("beta2", 0.999), ("eps", 1e-8)],
      states=("mean", "var", "var_hat"), uses_t=True, options=[("bias_correction", False)],
      doc="Adam's mean, var; var_hat = max(var_hat, var); w -= alpha_t*mean/(sqrt(var_hat)"
          " + eps), alpha_t = alpha, bias-corrected as Adam's with bias_correction")
def _amsgrad(c: RuleContext):
    m, v, moments = _adam_moments(c)
    v_hat = c.state["var_hat"]
    updates = [*moments, Update(v_hat, "=", sympy.Max(v_hat, v))]
    if c.options["bias_correction"]:
        step, coefficient = _bias_corrected(c)
        updates.append(coefficient)
    else:
        step = c.hyper["alpha"]
    return updates + [Update(c.w, "-=", step * m / (sqrt(v_hat) + c.hyper["eps"]))]


def instantiate(rule: UpdateRule, w, g, state: dict, hyper: dict, t, options: dict,
                scalar_name: Callable[[str], sympy.Symbol]) -> list[Update]:
    """The rule's statements for one parameter, in the given symbols."""
    missing = set(dict(rule.options)) - set(options)
    if missing:
        raise ValueError(f"update rule {rule.name}: options {sorted(missing)} not given")
    return rule.build(RuleContext(w, g, state, hyper, t, scalar_name, dict(options)))


# Names the fused steps use as arguments; graph values never take them.
RULE_ARGUMENTS = frozenset({"step"} | {n for r in RULES.values() for n in r.hyper_names})
