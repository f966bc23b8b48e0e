"""Solver update rules, written once as SymPy and printed into every generated module.

A rule says how one parameter `w`, its gradient `g`, the solver's state arrays, the
update count `t` (1 for the first update) and the hyper-parameters become the new `w`
and state. Rules are written as in-place statements (``m *= beta1; m += (1 - beta1)*g``)
so the generated code makes no temporaries the formula does not need. The same rule is
printed into the fused training step of a graph's module (``adam_step``) and into the
per-solver module that the runtime's `solver.update()` calls: one source of truth per
formula.

A rule is also its nnabla solver: the entry names the class, its arguments with nnabla's
defaults, its options, how its weight decay acts and the values it refuses, and
`symcompile.solvers` makes the class from that. Adding a solver is one `@rule` entry here
(plus its test).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from symcompile.common.deferred import Deferred

# The rule table (names, defaults, states) is read by the solvers without compiling
# anything; SymPy and the classes built on it load when a rule is first instantiated.
sympy = Deferred("sympy")
E = Deferred("symcompile.ops.sympy_functions")
P = Deferred("symcompile.ir.primitives")


@dataclass(frozen=True)
class Update:
    """One in-place statement: ``target op expr`` with op "=", "+=", "-=" or "*=".

    `scalar` marks a scalar coefficient (computed once, named, then used by arrays).
    """

    target: sympy.Symbol
    op: str
    expr: sympy.Expr
    scalar: bool = False
    local: bool = False  # a temporary array of the rule (not a state)


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
    local: Callable[[str], sympy.Symbol]  # a temporary array shaped like the parameter


COUPLED, FUSED = "coupled", "fused"  # how solver.weight_decay(rate) acts (see `rule`)

# The range the meaning of each argument gives it (nnabla's solvers.yaml), with that
# meaning for the error message. nnabla itself checks nothing; these are only the bounds
# outside which a formula stops meaning what its documentation says (a decay rate above 1
# grows, a negative eps can divide by 0 or take the square root of a negative number, a
# negative rate ascends), so values that a working nnabla script uses pass. A rule's
# numeric arguments must each have an entry (`rule` checks).
_STEP = (0.0, math.inf, "a step size; to maximise something, minimise its negative")
_DECAY = (0.0, 1.0, "a decay rate: the weight that the running average keeps")
RANGES: dict[str, tuple[float, float, str]] = {
    "lr": _STEP, "alpha": _STEP, "eta": _STEP, "final_lr": _STEP,
    "coefficient": (0.0, math.inf, "LARS's trust coefficient, a factor of the step size"),
    "wd": (0.0, math.inf, "a weight decay rate"),
    "eps": (0.0, math.inf, "it keeps a denominator away from 0"),
    "gamma": (0.0, math.inf, "the convergence speed of the step-size bounds"),
    "gamma_l": (0.0, math.inf, "a bound of the weight norm"),
    "gamma_u": (0.0, math.inf, "a bound of the weight norm"),
    "momentum": _DECAY, "decay": _DECAY, "beta1": _DECAY, "beta2": _DECAY,
}


@dataclass(frozen=True)
class Refusal:
    """Values that each lie in their range but together make the update NaN whatever the
    gradients (as nnabla computes it), so the solver refuses them when it is made and when
    set_learning_rate() would reach them, rather than train into NaN weights.

    `when` and the `message` template read the solver's values by name: its arguments,
    its options and ``init_<rate>``, the learning rate it was made with.
    """

    when: Callable[[dict], bool]
    message: str  # str.format()ted: which values, why, and what to pass instead


@dataclass(frozen=True)
class UpdateRule:
    """One solver, once: the update formula and everything its nnabla class needs.

    `symcompile.solvers.<solver>` is made from this entry (frontend/solvers.py): its
    constructor is `constructor` (nnabla's names, order and defaults), its learning rate
    is `lr_name`, its arguments are checked against `RANGES` and `refusals`.
    """

    name: str  # nnabla's snake name; the fused step is f"{name}_step"
    hyper: tuple[tuple[str, float], ...]  # the update's scalar arguments, in order, defaults
    states: tuple[str, ...]  # nnabla's state names, arrays shaped like the parameter
    uses_t: bool
    build: Callable[[RuleContext], list[Update]]
    doc: str
    options: tuple[tuple[str, bool], ...] = ()  # (name, default): switches, not arguments
    solver: str = ""  # nnabla's class name
    summary: str = ""  # what the solver is, one line (its class docstring)
    arguments: tuple[str, ...] = ()  # the hyper-parameters the constructor takes, in order
    decay: str = COUPLED  # COUPLED, FUSED, or the option that makes weight decay fused
    option_states: tuple[tuple[str, str], ...] = ()  # (state, the option that adds it)
    refusals: tuple[Refusal, ...] = ()

    @property
    def hyper_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.hyper)

    @property
    def lr_name(self) -> str:
        """The learning rate (set_learning_rate()): nnabla's first argument."""
        return self.arguments[0]

    @property
    def constructor(self) -> tuple[tuple[str, float | bool], ...]:
        """nnabla's constructor: (name, default) of the arguments, then of the options."""
        defaults = dict(self.hyper)
        return tuple((name, defaults[name]) for name in self.arguments) + self.options

    def fused_decay(self, options: dict) -> bool:
        """Whether weight_decay(rate) is stored and applied inside the next update."""
        return self.decay == FUSED or (self.decay != COUPLED and bool(options[self.decay]))


RULES: dict[str, UpdateRule] = {}


def rule(name: str, solver: str, arguments, *, summary: str, doc: str, states=(),
         uses_t=False, options=(), decay=COUPLED, initial_rate=False, option_states=(),
         refusals=()):
    """Register the update rule `name` and the nnabla solver `solver` it is.

    `arguments` are the constructor's numeric arguments as (name, nnabla's default), in
    nnabla's order, the learning rate first; `options` its switches, which follow them.
    The update's scalar arguments are these, then ``wd`` (the rate weight_decay() gives)
    when the decay is fused and ``wd`` is no argument, then ``init_<rate>`` when
    `initial_rate` (the update scales by the rate over the rate the solver was made with,
    so 0 is refused at construction). `decay`: COUPLED (weight_decay(r) adds r*w to the
    gradients at once), FUSED, or the name of the option that makes it fused.
    """
    arguments = tuple(arguments)
    names = tuple(argument for argument, _ in arguments)
    unranged = [argument for argument in names if argument not in RANGES]
    if unranged:
        raise ValueError(f"update rule {name}: arguments {unranged} have no range in "
                         "update_rules.RANGES; add each one's (low, high, meaning) there")
    switches = dict(options)
    if decay not in (COUPLED, FUSED) and decay not in switches:
        raise ValueError(f"update rule {name}: decay={decay!r} is neither COUPLED, FUSED "
                         f"nor one of its options {sorted(switches)}")
    hyper = list(arguments)
    if decay != COUPLED and "wd" not in names:
        hyper.append(("wd", 0.0))
    lr = names[0]
    refusals = tuple(refusals)
    if initial_rate:
        hyper.append((f"init_{lr}", dict(arguments)[lr]))
        refusals = (Refusal(lambda v: v[f"init_{lr}"] == 0, (
            f"{lr}=0 is not allowed: the update scales by {lr} / initial {lr}, 0/0 (NaN "
            "weights in nnabla); construct the solver with a rate > 0, then call "
            "set_learning_rate(0) to start at 0")),) + refusals

    def register(build):
        RULES[name] = UpdateRule(name, tuple(hyper), tuple(states), uses_t, build, doc,
                                 tuple(options), solver, summary, names, decay,
                                 tuple(option_states), refusals)
        return build

    return register


def divides_by_one_minus(beta: str, option: str = "") -> Refusal:
    """beta = 1 where the update divides by 1 - beta**t (with `option` on, if given)."""
    return Refusal(lambda v: v[beta] == 1 and (not option or bool(v[option])), (
        f"{beta}={{{beta}:g}} is not allowed: the update divides by 1 - {beta}**t (NaN "
        "weights in nnabla); use a value below 1"))


def sqrt(x):
    return sympy.sqrt(x)


def norm(x):
    """The L2 norm of a whole array (a scalar)."""
    return sympy.sqrt(P.Dot(x, x))


# --- the rules ---------------------------------------------------------------------------
# One entry per nnabla solver: what the class is (name, arguments, options, weight decay,
# refused values) and its formula. symcompile.solvers makes the class from the entry.

@rule("sgd", "Sgd", [("lr", 1e-3)],
      summary="Stochastic gradient descent.", doc="w -= lr * g")
def _sgd(c: RuleContext):
    return [Update(c.w, "-=", c.hyper["lr"] * c.g)]


@rule("momentum", "Momentum", [("lr", 1e-3), ("momentum", 0.9)], states=("m",),
      summary="SGD with momentum.", doc="m = momentum*m + lr*g; w -= m")
def _momentum(c: RuleContext):
    m, lr, gamma = c.state["m"], c.hyper["lr"], c.hyper["momentum"]
    return [Update(m, "*=", gamma), Update(m, "+=", lr * c.g), Update(c.w, "-=", m)]


@rule("nesterov", "Nesterov", [("lr", 1e-3), ("momentum", 0.9)], states=("m",),
      summary="Nesterov's accelerated gradient.",
      doc="m_prev = m; m = momentum*m - lr*g; w += -momentum*m_prev + (1 + momentum)*m")
def _nesterov(c: RuleContext):
    m, lr, gamma = c.state["m"], c.hyper["lr"], c.hyper["momentum"]
    return [Update(c.w, "-=", gamma * m),  # m is still m_prev here
            Update(m, "*=", gamma), Update(m, "-=", lr * c.g),
            Update(c.w, "+=", (1 + gamma) * m)]


@rule("adagrad", "Adagrad", [("lr", 1e-2), ("eps", 1e-8)], states=("v",),
      summary="AdaGrad: steps scaled by the accumulated squared gradients.",
      doc="v += g**2; w -= lr*g/(sqrt(v) + eps)")
def _adagrad(c: RuleContext):
    v, lr, eps = c.state["v"], c.hyper["lr"], c.hyper["eps"]
    return [Update(v, "+=", c.g**2), Update(c.w, "-=", lr * c.g / (sqrt(v) + eps))]


@rule("adadelta", "Adadelta", [("lr", 1.0), ("decay", 0.95), ("eps", 1e-6)],
      states=("e_sqr_grad", "e_sqr_delta"),
      summary="AdaDelta: steps scaled by the ratio of running RMS of updates and gradients.",
      doc="E[g**2] = decay*E[g**2] + (1 - decay)*g**2; delta = sqrt((E[delta**2] + eps)/"
          "(E[g**2] + eps))*g; E[delta**2] = decay*E[delta**2] + (1 - decay)*delta**2; "
          "w -= lr*delta")
def _adadelta(c: RuleContext):
    eg, ed = c.state["e_sqr_grad"], c.state["e_sqr_delta"]
    decay, eps = c.hyper["decay"], c.hyper["eps"]
    delta = c.local("delta")
    return [Update(eg, "*=", decay), Update(eg, "+=", (1 - decay) * c.g**2),
            Update(delta, "=", sqrt((ed + eps) / (eg + eps)) * c.g, local=True),
            Update(ed, "*=", decay), Update(ed, "+=", (1 - decay) * delta**2),
            Update(c.w, "-=", c.hyper["lr"] * delta)]


@rule("rmsprop", "RMSprop", [("lr", 1e-3), ("decay", 0.9), ("eps", 1e-8)], states=("v",),
      summary="RMSprop (Hinton).",
      doc="v = decay*v + (1 - decay)*g**2; w -= lr*g/(sqrt(v) + eps)")
def _rmsprop(c: RuleContext):
    v, lr, decay, eps = c.state["v"], c.hyper["lr"], c.hyper["decay"], c.hyper["eps"]
    return [Update(v, "*=", decay), Update(v, "+=", (1 - decay) * c.g**2),
            Update(c.w, "-=", lr * c.g / (sqrt(v) + eps))]


@rule("rmsprop_graves", "RMSpropGraves",
      [("lr", 1e-4), ("decay", 0.95), ("momentum", 0.9), ("eps", 1e-4)],
      states=("n", "g", "d"), summary="RMSprop as in Graves (2013), with momentum.",
      doc="n = decay*n + (1 - decay)*g**2; g_avg = decay*g_avg + (1 - decay)*g; "
          "d = momentum*d - lr*g/sqrt(n - g_avg**2 + eps); w += d")
def _rmsprop_graves(c: RuleContext):
    n, mean, d = c.state["n"], c.state["g"], c.state["d"]
    decay = c.hyper["decay"]
    return [Update(n, "*=", decay), Update(n, "+=", (1 - decay) * c.g**2),
            Update(mean, "*=", decay), Update(mean, "+=", (1 - decay) * c.g),
            Update(d, "*=", c.hyper["momentum"]),
            Update(d, "-=", c.hyper["lr"] * c.g / sqrt(n - mean**2 + c.hyper["eps"])),
            Update(c.w, "+=", d)]


def _moments(c: RuleContext, mean: str, var: str):
    """Adam's moving averages of g and g**2, updated in place."""
    m, v = c.state[mean], c.state[var]
    b1, b2 = c.hyper["beta1"], c.hyper["beta2"]
    return m, v, [Update(m, "*=", b1), Update(m, "+=", (1 - b1) * c.g),
                  Update(v, "*=", b2), Update(v, "+=", (1 - b2) * c.g**2)]


def _bias_corrected(c: RuleContext, rate: str = "alpha"):
    """alpha * sqrt(1 - beta2**t) / (1 - beta1**t), as one named scalar."""
    b1, b2, t = c.hyper["beta1"], c.hyper["beta2"], c.t
    step = c.scalar(f"{rate}_t")
    return step, Update(step, "=", c.hyper[rate] * sqrt(1 - b2**t) / (1 - b1**t), scalar=True)


_ADAM = [("alpha", 1e-3), ("beta1", 0.9), ("beta2", 0.999), ("eps", 1e-8)]


@rule("adam", "Adam", _ADAM, states=("mean", "var"), uses_t=True,
      refusals=[divides_by_one_minus("beta1")],
      summary="Adam with nnabla's bias correction.",
      doc="mean, var = EMAs of g, g**2; w -= alpha*sqrt(1 - beta2**t)/(1 - beta1**t)"
          " * mean/(sqrt(var) + eps)")
def _adam(c: RuleContext):
    m, v, moments = _moments(c, "mean", "var")
    step, coefficient = _bias_corrected(c)
    return [*moments, coefficient, Update(c.w, "-=", step * m / (sqrt(v) + c.hyper["eps"]))]


@rule("adamw", "AdamW", [*_ADAM, ("wd", 1e-4)], states=("mean", "var"), uses_t=True,
      decay=FUSED, initial_rate=True, refusals=[divides_by_one_minus("beta1")],
      summary="Adam with decoupled weight decay.",
      doc="Adam, then w -= (alpha/init_alpha)*wd*w (decoupled, from the pre-update w)")
def _adamw(c: RuleContext):
    m, v, moments = _moments(c, "mean", "var")
    step, coefficient = _bias_corrected(c)
    decay = c.hyper["alpha"] / c.hyper["init_alpha"] * c.hyper["wd"]
    return [*moments, coefficient,
            Update(c.w, "-=", step * m / (sqrt(v) + c.hyper["eps"]) + decay * c.w)]


@rule("sgdw", "SgdW", [("lr", 1e-3), ("momentum", 0.9), ("wd", 1e-4)], states=("m",),
      decay=FUSED, initial_rate=True,
      summary="SGD with momentum and decoupled weight decay.",
      doc="m = momentum*m + lr*g; w = w - m - (lr/init_lr)*wd*w (decoupled)")
def _sgdw(c: RuleContext):
    m, lr, gamma = c.state["m"], c.hyper["lr"], c.hyper["momentum"]
    decay = lr / c.hyper["init_lr"] * c.hyper["wd"]
    return [Update(m, "*=", gamma), Update(m, "+=", lr * c.g),
            Update(c.w, "-=", m + decay * c.w)]


@rule("adamax", "Adamax", [("alpha", 2e-3), *_ADAM[1:]], states=("m", "u"), uses_t=True,
      refusals=[divides_by_one_minus("beta1")],
      summary="Adamax: Adam with an infinity-norm second moment.",
      doc="m = EMA of g; u = max(beta2*u, |g|); w -= alpha/(1 - beta1**t)*m/(u + eps)")
def _adamax(c: RuleContext):
    m, u = c.state["m"], c.state["u"]
    b1 = c.hyper["beta1"]
    step = c.scalar("alpha_t")
    return [Update(m, "*=", b1), Update(m, "+=", (1 - b1) * c.g),
            Update(u, "=", sympy.Max(c.hyper["beta2"] * u, sympy.Abs(c.g))),
            Update(step, "=", c.hyper["alpha"] / (1 - b1**c.t), scalar=True),
            Update(c.w, "-=", step * m / (u + c.hyper["eps"]))]


def _amsgrad_moments(c: RuleContext):
    """AMSGrad's m, v and v_hat = max(v_hat, v), and its step size: alpha, or Adam's
    bias-corrected alpha_t with the bias_correction option."""
    m, v, updates = _moments(c, "m", "v")
    v_hat = c.state["v_hat"]
    updates.append(Update(v_hat, "=", sympy.Max(v_hat, v)))
    step = c.hyper["alpha"]
    if c.options["bias_correction"]:
        step, coefficient = _bias_corrected(c)
        updates.append(coefficient)
    return m, v_hat, step, updates


_AMSGRAD = dict(states=("m", "v", "v_hat"), uses_t=True, options=[("bias_correction", False)],
                refusals=[divides_by_one_minus("beta1", "bias_correction")])


@rule("amsgrad", "AMSGRAD", _ADAM, **_AMSGRAD,
      summary="AMSGrad: Adam with a non-decreasing second moment.",
      doc="Adam's m, v; v_hat = max(v_hat, v); w -= alpha_t*m/(sqrt(v_hat) + eps), "
          "alpha_t = alpha, bias-corrected as Adam's with bias_correction")
def _amsgrad(c: RuleContext):
    m, v_hat, step, updates = _amsgrad_moments(c)
    return updates + [Update(c.w, "-=", step * m / (sqrt(v_hat) + c.hyper["eps"]))]


def _bounded(c: RuleContext, m, v, step, upper_bound):
    """AdaBound's step: the Adam step size clipped to [lower, upper] around final_lr, which
    follows learning-rate changes (final_lr * alpha / init_alpha).

    `upper_bound` divides by gamma. At gamma = 0 nnabla's float division makes the upper
    bound final_lr*(1 + inf): infinite, so the step is only clipped below (at 0: the
    lower bound is then 0 too), or NaN once the scaled final_lr is 0 (refused by the
    solver; a fused step given alpha=0 makes NaN weights, as nnabla does).
    """
    t, gamma = c.t, c.hyper["gamma"]
    final = c.scalar("final_lr_t")
    lower, upper = c.scalar("lower"), c.scalar("upper")
    return [Update(final, "=", c.hyper["final_lr"] * c.hyper["alpha"] / c.hyper["init_alpha"],
                   scalar=True),
            Update(lower, "=", final * (1 - 1 / (gamma * t + 1)), scalar=True),
            Update(upper, "=", sympy.Piecewise((final * (1 + upper_bound), gamma > 0),
                                               (sympy.oo, final > 0), (sympy.nan, True)),
                   scalar=True),
            Update(c.w, "-=", E.Clip(step / (sqrt(v) + c.hyper["eps"]), lower, upper) * m)]


_BOUND = [*_ADAM, ("final_lr", 0.1), ("gamma", 0.001)]
# gamma = 0 is allowed (no upper bound), except where that bound would be 0 * inf.
_UNBOUNDED_AT_ZERO = Refusal(lambda v: v["gamma"] == 0 and v["final_lr"] * v["alpha"] == 0, (
    "gamma=0 is not allowed with final_lr={final_lr:g} and alpha={alpha:g}: the upper "
    "step-size bound is then final_lr*(alpha/init_alpha)*(1 + 1/0) = 0*inf (NaN weights in "
    "nnabla); keep final_lr and alpha above 0 (gamma=0 only lifts the upper bound), or "
    "use gamma > 0"))


@rule("adabound", "AdaBound", _BOUND, states=("mean", "var"), uses_t=True,
      initial_rate=True, refusals=[divides_by_one_minus("beta1"), _UNBOUNDED_AT_ZERO],
      summary="AdaBound: Adam with dynamic bounds on the step size.",
      doc="Adam whose step size alpha_t/(sqrt(var) + eps) is clipped to [final_lr*(1 - "
          "1/(gamma*t + 1)), final_lr*(1 + 1/(gamma*t))] (no upper bound at gamma=0)")
def _adabound(c: RuleContext):
    m, v, moments = _moments(c, "mean", "var")
    step, coefficient = _bias_corrected(c)
    return [*moments, coefficient,
            *_bounded(c, m, v, step, 1 / (c.hyper["gamma"] * c.t))]


@rule("amsbound", "AMSBound", _BOUND, initial_rate=True,
      **{**_AMSGRAD, "refusals": [*_AMSGRAD["refusals"], _UNBOUNDED_AT_ZERO]},
      summary="AMSBound: AMSGrad with dynamic bounds on the step size.",
      doc="AMSGrad whose step size is clipped to [final_lr*(1 - 1/(gamma*t + 1)), "
          "final_lr*(1 + t/gamma)] (nnabla's upper bound; none at gamma=0)")
def _amsbound(c: RuleContext):
    m, v_hat, step, updates = _amsgrad_moments(c)
    # nnabla computes the upper bound as final_lr * (1 + 1 / gamma * t): t/gamma.
    return updates + _bounded(c, m, v_hat, step, c.t / c.hyper["gamma"])


@rule("adabelief", "AdaBelief", [*_ADAM, ("wd", 0.0)], states=("mean", "var"), uses_t=True,
      options=[("amsgrad", False), ("weight_decouple", False), ("fixed_decay", False),
               ("rectify", False)],
      decay="weight_decouple", option_states=[("s_max", "amsgrad")],
      refusals=[divides_by_one_minus("beta1"), divides_by_one_minus("beta2", "rectify")],
      summary="AdaBelief: Adam whose second moment tracks the belief (g - mean)**2.",
      doc="mean = EMA of g; var = EMA of (g - mean)**2, plus eps; w -= alpha*r_t/(1 - "
          "beta1**t)*mean/(sqrt(var)/sqrt(1 - beta2**t) + eps)")
def _adabelief(c: RuleContext):
    m, s = c.state["mean"], c.state["var"]
    alpha, b1, b2, eps, t = (c.hyper["alpha"], c.hyper["beta1"], c.hyper["beta2"],
                             c.hyper["eps"], c.t)
    updates = [Update(m, "*=", b1), Update(m, "+=", (1 - b1) * c.g),
               Update(s, "*=", b2), Update(s, "+=", (1 - b2) * (c.g - m)**2)]
    if c.options["weight_decouple"]:
        decay = c.hyper["wd"] if c.options["fixed_decay"] else c.hyper["wd"] * alpha
        updates.append(Update(c.w, "-=", decay * c.w))
    if "s_max" in c.state:
        s_max = c.state["s_max"]
        updates += [Update(s_max, "=", sympy.Max(s_max, s)), Update(s_max, "+=", eps)]
        s = s_max
    else:
        updates.append(Update(s, "+=", eps))
    correction = c.scalar("bias_correction2")
    updates.append(Update(correction, "=", sqrt(1 - b2**t), scalar=True))
    adaptive = m / (sqrt(s) / correction + eps)
    if not c.options["rectify"]:
        step = c.scalar("alpha_t")
        updates.append(Update(step, "=", alpha / (1 - b1**t), scalar=True))
        return updates + [Update(c.w, "-=", step * adaptive)]
    rho_inf, rho_t, rate = c.scalar("rho_inf"), c.scalar("rho_t"), c.scalar("alpha_t")
    updates += [
        Update(rho_inf, "=", 2 / (1 - b2) - 1, scalar=True),
        Update(rho_t, "=", rho_inf - 2 * t * b2**t / (1 - b2**t), scalar=True),
        Update(rate, "=", sympy.Piecewise(
            (alpha * sqrt((rho_t - 4) * (rho_t - 2) * rho_inf
                          / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) / (1 - b1**t), rho_t > 4),
            (alpha, True)), scalar=True)]
    # While rho_t <= 4 (the first few updates) the step is plain SGD with momentum.
    return updates + [Update(c.w, "-=", sympy.Piecewise((rate * adaptive, rho_t > 4),
                                                        (rate * m, True)))]


@rule("lamb", "Lamb", [("eta", 1e-3), ("beta1", 0.9), ("beta2", 0.999), ("gamma_l", 0.0),
                      ("gamma_u", 10.0), ("eps", 1e-6)],
      states=("mean", "var"), uses_t=True, options=[("bias_correction", False)], decay=FUSED,
      refusals=[divides_by_one_minus("beta1", "bias_correction"),
                divides_by_one_minus("beta2", "bias_correction"),
                Refusal(lambda v: v["gamma_l"] > v["gamma_u"], (
                    "gamma_l={gamma_l!r} is above gamma_u={gamma_u!r}: they are the lower "
                    "and upper bounds of the weight norm; pass gamma_l <= gamma_u"))],
      summary="LAMB: Adam's direction scaled per layer by a clipped trust ratio.",
      doc="r = mean_hat/(sqrt(var_hat) + eps) + wd*w; w -= eta*clip(||w||, gamma_l, "
          "gamma_u)/||r||*r (ratio 1 when ||r|| <= eps)")
def _lamb(c: RuleContext):
    m, v, moments = _moments(c, "mean", "var")
    b1, b2, t, eps = c.hyper["beta1"], c.hyper["beta2"], c.t, c.hyper["eps"]
    if c.options["bias_correction"]:
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
    else:
        m_hat, v_hat = m, v
    r = c.local("r")
    r_norm, w_norm, ratio = c.scalar("r_norm"), c.scalar("w_norm"), c.scalar("trust_ratio")
    return [*moments,
            Update(r, "=", m_hat / (sqrt(v_hat) + eps) + c.hyper["wd"] * c.w, local=True),
            Update(r_norm, "=", norm(r), scalar=True),
            Update(w_norm, "=", sympy.Min(sympy.Max(norm(c.w), c.hyper["gamma_l"]),
                                          c.hyper["gamma_u"]), scalar=True),
            Update(ratio, "=", sympy.Piecewise((w_norm / r_norm, r_norm > eps), (1, True)),
                   scalar=True),
            Update(c.w, "-=", c.hyper["eta"] * ratio * r)]


@rule("lars", "Lars",
      [("lr", 1e-3), ("momentum", 0.9), ("coefficient", 0.001), ("eps", 1e-6)],
      states=("v",), decay=FUSED,
      summary="LARS: momentum SGD with a per-layer trust ratio.",
      doc="x = ||g|| + wd*||w|| (+ eps when below eps); local_lr = lr*coefficient*||w||/x "
          "(lr when ||w|| < eps); g += wd*w; v = momentum*v + local_lr*g; w -= v")
def _lars(c: RuleContext):
    v, lr, eps, wd = c.state["v"], c.hyper["lr"], c.hyper["eps"], c.hyper["wd"]
    g_norm, w_norm = c.scalar("g_norm"), c.scalar("w_norm")
    x, local = c.scalar("denominator"), c.scalar("local_lr")
    return [Update(g_norm, "=", norm(c.g), scalar=True),
            Update(w_norm, "=", norm(c.w), scalar=True),
            Update(x, "=", sympy.Piecewise((g_norm + wd * w_norm + eps,
                                            g_norm + wd * w_norm < eps),
                                           (g_norm + wd * w_norm, True)), scalar=True),
            Update(local, "=", sympy.Piecewise((lr, w_norm < eps),
                                               (lr * c.hyper["coefficient"] * w_norm / x, True)),
                   scalar=True),
            Update(c.g, "+=", wd * c.w),  # in place on the gradient, as nnabla does
            Update(v, "*=", c.hyper["momentum"]), Update(v, "+=", local * c.g),
            Update(c.w, "-=", v)]


@rule("lion", "Lion", [("lr", 1e-4), ("beta1", 0.9), ("beta2", 0.99)], states=("m",),
      decay=FUSED, summary="Lion: signed momentum updates with decoupled weight decay.",
      doc="w -= lr*(sign(beta1*m + (1 - beta1)*g) + wd*w); m = beta2*m + (1 - beta2)*g")
def _lion(c: RuleContext):
    m, b1, b2, lr = c.state["m"], c.hyper["beta1"], c.hyper["beta2"], c.hyper["lr"]
    # w - lr*(u + wd*w) == w*(1 - lr*wd) - lr*u: the decay as one in-place scaling.
    return [Update(c.w, "*=", 1 - lr * c.hyper["wd"]),
            Update(c.w, "-=", lr * sympy.sign(b1 * m + (1 - b1) * c.g)),  # the old m
            Update(m, "*=", b2), Update(m, "+=", (1 - b2) * c.g)]


def state_names(rule: UpdateRule, options: dict) -> tuple[str, ...]:
    """The rule's state arrays for these options (AdaBelief keeps s_max with amsgrad)."""
    return rule.states + tuple(state for state, option in rule.option_states
                               if options.get(option))


def instantiate(rule: UpdateRule, w, g, state: dict, hyper: dict, t, options: dict,
                scalar_name: Callable[[str], sympy.Symbol],
                local_name: Callable[[str], sympy.Symbol]) -> list[Update]:
    """The rule's statements for one parameter, in the given symbols."""
    missing = set(dict(rule.options)) - set(options)
    if missing:
        raise ValueError(f"update rule {rule.name}: options {sorted(missing)} not given")
    return rule.build(RuleContext(w, g, state, hyper, t, scalar_name, dict(options),
                                  local_name))


# Names the fused steps use as arguments; graph values never take them.
RULE_ARGUMENTS = frozenset({"step"} | {n for r in RULES.values() for n in r.hyper_names})
