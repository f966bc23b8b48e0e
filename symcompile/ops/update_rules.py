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
    return sympy.sqrt(P.Dot(x, x))


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


@rule("adadelta", [("lr", 1.0), ("decay", 0.95), ("eps", 1e-6)],
      states=("e_sqr_grad", "e_sqr_delta"),
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


@rule("rmsprop", [("lr", 1e-3), ("decay", 0.9), ("eps", 1e-8)], states=("v",),
      doc="v = decay*v + (1 - decay)*g**2; w -= lr*g/(sqrt(v) + eps)")
def _rmsprop(c: RuleContext):
    v, lr, decay, eps = c.state["v"], c.hyper["lr"], c.hyper["decay"], c.hyper["eps"]
    return [Update(v, "*=", decay), Update(v, "+=", (1 - decay) * c.g**2),
            Update(c.w, "-=", lr * c.g / (sqrt(v) + eps))]


@rule("rmsprop_graves", [("lr", 1e-4), ("decay", 0.95), ("momentum", 0.9), ("eps", 1e-4)],
      states=("n", "g", "d"),
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


@rule("adam", [("alpha", 1e-3), ("beta1", 0.9), ("beta2", 0.999), ("eps", 1e-8)],
      states=("mean", "var"), uses_t=True,
      doc="mean, var = EMAs of g, g**2; w -= alpha*sqrt(1 - beta2**t)/(1 - beta1**t)"
          " * mean/(sqrt(var) + eps)")
def _adam(c: RuleContext):
    m, v, moments = _moments(c, "mean", "var")
    step, coefficient = _bias_corrected(c)
    return [*moments, coefficient, Update(c.w, "-=", step * m / (sqrt(v) + c.hyper["eps"]))]


@rule("adamw", [("alpha", 1e-3), ("beta1", 0.9), ("beta2", 0.999), ("eps", 1e-8),
                ("wd", 1e-4), ("init_alpha", 1e-3)],
      states=("mean", "var"), uses_t=True,
      doc="Adam, then w -= (alpha/init_alpha)*wd*w (decoupled, from the pre-update w)")
def _adamw(c: RuleContext):
    m, v, moments = _moments(c, "mean", "var")
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
      states=("m", "u"), uses_t=True,
      doc="m = EMA of g; u = max(beta2*u, |g|); w -= alpha/(1 - beta1**t)*m/(u + eps)")
def _adamax(c: RuleContext):
    m, u = c.state["m"], c.state["u"]
    b1 = c.hyper["beta1"]
    step = c.scalar("alpha_t")
    return [Update(m, "*=", b1), Update(m, "+=", (1 - b1) * c.g),
            Update(u, "=", sympy.Max(c.hyper["beta2"] * u, sympy.Abs(c.g))),
            Update(step, "=", c.hyper["alpha"] / (1 - b1**c.t), scalar=True),
            Update(c.w, "-=", step * m / (u + c.hyper["eps"]))]


@rule("amsgrad", [("alpha", 1e-3), ("beta1", 0.9), ("beta2", 0.999), ("eps", 1e-8)],
      states=("m", "v", "v_hat"), uses_t=True, options=[("bias_correction", False)],
      doc="Adam's m, v; v_hat = max(v_hat, v); w -= alpha_t*m/(sqrt(v_hat) + eps), "
          "alpha_t = alpha, bias-corrected as Adam's with bias_correction")
def _amsgrad(c: RuleContext):
    m, v, moments = _moments(c, "m", "v")
    v_hat = c.state["v_hat"]
    updates = [*moments, Update(v_hat, "=", sympy.Max(v_hat, v))]
    step = c.hyper["alpha"]
    if c.options["bias_correction"]:
        step, coefficient = _bias_corrected(c)
        updates.append(coefficient)
    return updates + [Update(c.w, "-=", step * m / (sqrt(v_hat) + c.hyper["eps"]))]


def _bounded(c: RuleContext, m, v, step, upper_bound):
    """AdaBound's step: the Adam step size clipped to [lower, upper] around final_lr, which
    follows learning-rate changes (final_lr * alpha / init_alpha)."""
    t, gamma = c.t, c.hyper["gamma"]
    final = c.scalar("final_lr_t")
    lower, upper = c.scalar("lower"), c.scalar("upper")
    return [Update(final, "=", c.hyper["final_lr"] * c.hyper["alpha"] / c.hyper["init_alpha"],
                   scalar=True),
            Update(lower, "=", final * (1 - 1 / (gamma * t + 1)), scalar=True),
            Update(upper, "=", final * (1 + upper_bound), scalar=True),
            Update(c.w, "-=", E.Clip(step / (sqrt(v) + c.hyper["eps"]), lower, upper) * m)]


_BOUND_HYPER = [("alpha", 1e-3), ("beta1", 0.9), ("beta2", 0.999), ("eps", 1e-8),
                ("final_lr", 0.1), ("gamma", 0.001), ("init_alpha", 1e-3)]


@rule("adabound", _BOUND_HYPER, states=("mean", "var"), uses_t=True,
      doc="Adam whose step size alpha_t/(sqrt(var) + eps) is clipped to [final_lr*(1 - "
          "1/(gamma*t + 1)), final_lr*(1 + 1/(gamma*t))]")
def _adabound(c: RuleContext):
    m, v, moments = _moments(c, "mean", "var")
    step, coefficient = _bias_corrected(c)
    return [*moments, coefficient,
            *_bounded(c, m, v, step, 1 / (c.hyper["gamma"] * c.t))]


@rule("amsbound", _BOUND_HYPER, states=("m", "v", "v_hat"), uses_t=True,
      options=[("bias_correction", False)],
      doc="AMSGrad whose step size is clipped to [final_lr*(1 - 1/(gamma*t + 1)), "
          "final_lr*(1 + t/gamma)] (nnabla's upper bound)")
def _amsbound(c: RuleContext):
    m, v, moments = _moments(c, "m", "v")
    v_hat = c.state["v_hat"]
    updates = [*moments, Update(v_hat, "=", sympy.Max(v_hat, v))]
    step = c.hyper["alpha"]
    if c.options["bias_correction"]:
        step, coefficient = _bias_corrected(c)
        updates.append(coefficient)
    # nnabla computes the upper bound as final_lr * (1 + 1 / gamma * t): t/gamma.
    return updates + _bounded(c, m, v_hat, step, c.t / c.hyper["gamma"])


@rule("adabelief", [("alpha", 1e-3), ("beta1", 0.9), ("beta2", 0.999), ("eps", 1e-8),
                    ("wd", 0.0)],
      states=("mean", "var"), uses_t=True,
      options=[("amsgrad", False), ("weight_decouple", False), ("fixed_decay", False),
               ("rectify", False)],
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


@rule("lamb", [("eta", 1e-3), ("beta1", 0.9), ("beta2", 0.999), ("gamma_l", 0.0),
               ("gamma_u", 10.0), ("eps", 1e-6), ("wd", 0.0)],
      states=("mean", "var"), uses_t=True, options=[("bias_correction", False)],
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


@rule("lars", [("lr", 1e-3), ("momentum", 0.9), ("coefficient", 0.001), ("eps", 1e-6),
               ("wd", 0.0)],
      states=("v",),
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


@rule("lion", [("lr", 1e-4), ("beta1", 0.9), ("beta2", 0.99), ("wd", 0.0)], states=("m",),
      doc="w -= lr*(sign(beta1*m + (1 - beta1)*g) + wd*w); m = beta2*m + (1 - beta2)*g")
def _lion(c: RuleContext):
    m, b1, b2, lr = c.state["m"], c.hyper["beta1"], c.hyper["beta2"], c.hyper["lr"]
    # w - lr*(u + wd*w) == w*(1 - lr*wd) - lr*u: the decay as one in-place scaling.
    return [Update(c.w, "*=", 1 - lr * c.hyper["wd"]),
            Update(c.w, "-=", lr * sympy.sign(b1 * m + (1 - b1) * c.g)),  # the old m
            Update(m, "*=", b2), Update(m, "+=", (1 - b2) * c.g)]


def state_names(rule: UpdateRule, options: dict) -> tuple[str, ...]:
    """The rule's state arrays for these options (AdaBelief keeps s_max with amsgrad)."""
    if rule.name == "adabelief" and options.get("amsgrad"):
        return rule.states + ("s_max",)
    return rule.states


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
