"""`symcompile.solvers` (S): nnabla's solvers, updating parameters with generated code.

A solver holds a name -> Variable dict of parameters and, per parameter, its state
arrays and update count `t`. `update()` calls the generated update function of the
solver's rule (`update_rules`) on every parameter whose gradient was written since
`zero_grad()`, exactly as nnabla skips parameters that received no gradient.

Weight decay follows nnabla: for most solvers `weight_decay(r)` adds ``r * w`` to the
gradients at once (coupled); for SgdW, AdamW, Lars, Lamb, Lion (and AdaBelief with
``weight_decouple=True``) the rate is stored, applied inside the next update and then
reset to the solver's own ``wd`` (decoupled, fused).
"""

from __future__ import annotations

import math
import numbers
from collections import OrderedDict

import numpy

from symcompile.common import checkpoint
from symcompile.frontend import executor
from symcompile.frontend.variable import Variable
from symcompile.ops.update_rules import RULES, state_names

T_MAX = 2**32 - 2  # nnabla's update count saturates here


class SolverState:
    """One parameter's solver state: named arrays (`pstate`, as Variables) and the number
    of updates `t`."""

    def __init__(self, pstate: dict | None = None, t: int = 0) -> None:
        self.pstate = OrderedDict(pstate or {})
        self.t = t

    def __repr__(self) -> str:
        return f"SolverState(t={self.t}, pstate={list(self.pstate)})"


class Solver:
    """Base class: parameters, states, gradient utilities and the update loop."""

    rule = ""  # the update rule's name in update_rules.RULES
    lr_name = "lr"  # the hyper-parameter set_learning_rate() changes
    fused_weight_decay = False
    # hyper-parameters b that the update divides by 1 - b**t (bias correction, AdaBelief's
    # rectification) -> the option that makes it do so ("" for always)
    bias_corrected: dict[str, str] = {}

    def __init__(self, **hyper) -> None:
        self._hyper = OrderedDict((name, _hyper_parameter(self.name, name, value))
                                  for name, value in hyper.items())
        for name, (value, reason) in self._singular().items():
            if self._hyper[name] == value:
                raise ValueError(f"{self.name}: {name}={value:g} is not allowed: {reason}")
        self._initial_lr = self._hyper[self.lr_name]
        self._default_wd = self._hyper.get("wd", 0.0)
        self._wd = self._default_wd
        self._params: OrderedDict[str, Variable] = OrderedDict()
        self._states: OrderedDict[str, SolverState] = OrderedDict()

    # --- description ---------------------------------------------------------------------
    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def info(self) -> dict:
        """The solver's name and hyper-parameters."""
        return {"name": self.name, **self._hyper}

    def __repr__(self) -> str:
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in self._hyper.items())})"

    def options(self) -> dict[str, bool]:
        """Switches that select a variant of the update formula (see update_rules)."""
        return {}

    def _singular(self) -> dict[str, tuple[float, str]]:
        """name -> (value, why): values within the ranges at which this solver's update
        divides by zero whatever the gradients, refused at construction (subclasses set
        their options() before calling Solver.__init__)."""
        names, options = _rule_hyper_names(self.rule), self.options()
        singular = {name: (1.0, f"the update divides by 1 - {name}**t (NaN weights in "
                                f"nnabla); use a value below 1")
                    for name, option in self.bias_corrected.items()
                    if not option or options[option]}
        if f"init_{self.lr_name}" in names:
            singular[self.lr_name] = (0.0, (
                f"the update scales by {self.lr_name} / initial {self.lr_name}, 0/0 (NaN "
                "weights in nnabla); construct the solver with a rate > 0, then call "
                "set_learning_rate(0) to start at 0"))
        if "gamma" in names:
            singular["gamma"] = (0.0, (
                "the upper step-size bound divides by gamma (nnabla makes it infinite; "
                "symcompile's generated update cannot); use a tiny gamma such as 1e-30"))
        return singular

    # --- parameters ----------------------------------------------------------------------
    def set_parameters(self, param_dict, reset=True, retain_state=False) -> None:
        """Register parameters to update (name -> Variable).

        As in nnabla, any leaf Variable may be registered, not only those of
        nn.parameter: a leaf with need_grad=False is accepted (and simply skipped by
        update() while no gradient is written to it), so that need_grad can be toggled
        after registration, e.g. to freeze a part of a model. Intermediates (outputs of
        functions) are refused: their values are recomputed by forward().

        Args:
            param_dict: e.g. ``nn.get_parameters()``.
            reset: Forget previously registered parameters first.
            retain_state: Keep the state of a parameter that is registered again under the
                same name with the same shape.
        """
        if not isinstance(param_dict, dict):
            raise TypeError("set_parameters: expected a dict of name -> Variable, e.g. "
                            "nn.get_parameters()")
        for key, var in param_dict.items():
            if not isinstance(var, Variable):
                raise TypeError(f"set_parameters: {key!r} is a {type(var).__name__}, "
                                "not a Variable")
            if var.parent is not None:
                site = var.parent.callsite
                raise ValueError(
                    f"set_parameters: {key!r} is the output of {var.parent.name}"
                    f"{f' at {site.display}' if site else ''}, an intermediate Variable that "
                    "forward() overwrites, so an update would be lost; a solver updates "
                    "leaves: pass nn.get_parameters(), or leaf Variables made with "
                    "nn.Variable(shape, need_grad=True)")
        previous = self._states
        if reset:
            self._params, self._states = OrderedDict(), OrderedDict()
        for key, var in param_dict.items():
            self._params[key] = var
            old = previous.get(key)
            keep = retain_state and old is not None and all(
                s.shape == var.shape for s in old.pstate.values())
            self._states[key] = old if keep else self._new_state(var)

    def remove_parameters(self, keys) -> None:
        for key in keys:
            self._params.pop(key, None)
            self._states.pop(key, None)

    def clear_parameters(self) -> None:
        self._params.clear()
        self._states.clear()

    def get_parameters(self) -> OrderedDict:
        return OrderedDict(self._params)

    def _new_state(self, var: Variable) -> SolverState:
        names = state_names(RULES[self.rule], self.options())
        return SolverState({name: Variable(var.shape) for name in names})

    # --- gradients -----------------------------------------------------------------------
    def _written(self):
        """(name, storage) of the parameters whose gradient was written since zero_grad."""
        for key, var in self._params.items():
            if not var._storage.grad_zeroing:
                yield key, var._storage

    def zero_grad(self) -> None:
        """Zero every registered gradient (lazily: update() skips untouched ones)."""
        for var in self._params.values():
            var._storage.zero_grad()

    def weight_decay_is_fused(self) -> bool:
        """Whether weight_decay() is applied inside the update (decoupled) rather than
        added to the gradients at once."""
        return self.fused_weight_decay

    def weight_decay(self, decay_rate, pre_hook=None, post_hook=None) -> None:
        """L2 weight decay at `decay_rate`: g += rate*w now, or, for decoupled solvers,
        inside the next update()."""
        if self.fused_weight_decay:
            self._wd = float(decay_rate)
            return
        if decay_rate == 0:
            return
        for key, storage in self._written():
            _hook(pre_hook, key)
            grad = storage.grad
            grad += numpy.float32(decay_rate) * storage.data
            _hook(post_hook, key)

    def clip_grad_by_norm(self, clip_norm, pre_hook=None, post_hook=None) -> None:
        """Per parameter: if ||g|| > clip_norm, g *= clip_norm / ||g|| (nnabla's)."""
        if clip_norm == 0:
            return
        for key, storage in self._written():
            _hook(pre_hook, key)
            grad = storage.grad
            total = float(numpy.vdot(grad, grad))
            if total > clip_norm * clip_norm:
                grad *= numpy.float32(clip_norm / math.sqrt(total))
            _hook(post_hook, key)

    def clip_grad_by_global_norm(self, max_norm) -> float:
        """Beyond nnabla: scale all gradients together so that their joint L2 norm is at
        most `max_norm`. Returns the norm before clipping."""
        grads = [storage.grad for _, storage in self._written()]
        total = math.sqrt(sum(float(numpy.vdot(g, g)) for g in grads))
        if max_norm > 0 and total > max_norm:
            scale = numpy.float32(max_norm / total)
            for grad in grads:
                grad *= scale
        return total

    def scale_grad(self, scale, pre_hook=None, post_hook=None) -> None:
        """g *= scale for every parameter that has a gradient."""
        for key, storage in self._written():
            _hook(pre_hook, key)
            grad = storage.grad
            grad *= numpy.float32(scale)
            _hook(post_hook, key)

    def check_inf_grad(self, pre_hook=None, post_hook=None) -> bool:
        return any(numpy.isinf(storage.grad).any() for _, storage in self._written())

    def check_nan_grad(self, pre_hook=None, post_hook=None) -> bool:
        return any(numpy.isnan(storage.grad).any() for _, storage in self._written())

    def check_inf_or_nan_grad(self, pre_hook=None, post_hook=None) -> bool:
        return any(not numpy.isfinite(storage.grad).all() for _, storage in self._written())

    # --- learning rate and update --------------------------------------------------------
    def set_learning_rate(self, learning_rate) -> None:
        self._hyper[self.lr_name] = _hyper_parameter(self.name, self.lr_name, learning_rate)

    def learning_rate(self) -> float:
        return self._hyper[self.lr_name]

    def rule_arguments(self) -> OrderedDict:
        """The update rule's hyper-parameters, in its order, for the current update."""
        known = {**self._hyper, "wd": self._wd, f"init_{self.lr_name}": self._initial_lr}
        return OrderedDict((name, known[name]) for name in RULES[self.rule].hyper_names)

    def update(self, update_pre_hook=None, update_post_hook=None) -> None:
        """Apply the update rule to every parameter whose gradient was written."""
        kernel = executor.current().update_function(
            self.rule, tuple(sorted(self.options().items())))
        hyper = tuple(self.rule_arguments().values())
        uses_t = RULES[self.rule].uses_t
        for key, storage in self._written():
            _hook(update_pre_hook, key)
            state = self._states[key]
            state.t = min(state.t + 1, T_MAX)
            states = [v._storage.data for v in state.pstate.values()]
            if uses_t:
                kernel(storage.data, storage.grad, *states, state.t, *hyper)
            else:
                kernel(storage.data, storage.grad, *states, *hyper)
            _hook(update_post_hook, key)
        self._wd = self._default_wd  # a stored weight_decay() rate lasts one update

    # --- states ---------------------------------------------------------------------------
    def get_states(self) -> OrderedDict:
        """name -> SolverState (its arrays are the live state)."""
        return OrderedDict(self._states)

    def set_states(self, states) -> None:
        """Replace the states of the registered parameters (set_parameters() first).

        Checked as load_states() checks a file: on any problem nothing changes."""
        arrays = {}
        for key, state in states.items():
            for name, value in state.pstate.items():
                arrays[f"{key}/{name}"] = value.d if isinstance(value, Variable) else value
            arrays[f"{key}/t"] = state.t
        self._assign_states("set_states", lambda plan: checkpoint.check_arrays(
            "set_states", arrays, plan))

    def save_states(self, path) -> None:
        """Write every parameter's state arrays and t (as nnabla: ``{param}/{state}``,
        ``{param}/t``) to a .npz or .h5 file, atomically."""
        arrays = {}
        for key, state in self._states.items():
            for name, value in state.pstate.items():
                arrays[f"{key}/{name}"] = value.d
            arrays[f"{key}/t"] = numpy.asarray(state.t, dtype=numpy.uint32)
        checkpoint.save_arrays(path, arrays)

    def load_states(self, path) -> None:
        """Read states written by save_states(); on any problem nothing changes.

        Names and shapes are checked against this solver's states before any data is
        read, so a file cannot make the solver read more than its own states' size."""
        self._assign_states(str(path), lambda plan: checkpoint.load_arrays(path, plan)[0])

    def _assign_states(self, where: str, read) -> None:
        """Assign the arrays `read(plan)` returns, once `plan` has checked that they are
        exactly this solver's states (state arrays of float32 values, t a count)."""
        specs = OrderedDict()
        for key, state in self._states.items():
            for name, value in state.pstate.items():
                specs[f"{key}/{name}"] = checkpoint.Spec(
                    f"{name!r} state for parameter {key!r}", value.shape)
            specs[f"{key}/t"] = checkpoint.Spec(f"update count t for parameter {key!r}", (),
                                                checkpoint.COUNT)

        def plan(names):
            present = set(names)
            missing = [name for name in specs if name not in present]
            if missing:
                raise checkpoint.CheckpointError(
                    f"{where}: no {specs[missing[0]].label}; nothing was loaded")
            extra = sorted(present - set(specs))
            if extra:
                raise checkpoint.CheckpointError(
                    f"{where}: states for unknown parameters or states {extra[:5]}; this "
                    f"solver has {list(self._states)}; nothing was loaded")
            return specs

        arrays = read(plan)
        for key, state in self._states.items():
            for name, value in state.pstate.items():
                value.d = arrays[f"{key}/{name}"]
            state.t = arrays[f"{key}/t"]


def _hook(hook, key) -> None:
    if hook is not None:
        hook(key)


# The range the meaning of each hyper-parameter gives it (nnabla's solvers.yaml), with
# that meaning for the error message. nnabla itself checks nothing; these are only the
# bounds outside which a formula stops meaning what its documentation says (a decay rate
# above 1 grows, a negative eps can divide by 0 or take the square root of a negative
# number, a negative rate ascends), so values that a working nnabla script uses pass.
_STEP = (0.0, math.inf, "a step size; to maximise something, minimise its negative")
_DECAY = (0.0, 1.0, "a decay rate: the weight that the running average keeps")
_RANGES = {
    "lr": _STEP, "alpha": _STEP, "eta": _STEP, "final_lr": _STEP,
    "coefficient": (0.0, math.inf, "LARS's trust coefficient, a factor of the step size"),
    "wd": (0.0, math.inf, "a weight decay rate"),
    "eps": (0.0, math.inf, "it keeps a denominator away from 0"),
    "gamma": (0.0, math.inf, "the convergence speed of the step-size bounds"),
    "gamma_l": (0.0, math.inf, "a bound of the weight norm"),
    "gamma_u": (0.0, math.inf, "a bound of the weight norm"),
    "momentum": _DECAY, "decay": _DECAY, "beta1": _DECAY, "beta2": _DECAY,
}


def _hyper_parameter(solver: str, name: str, value) -> float:
    """`value` as a Python float, checked here rather than failing inside update(); a
    float because it becomes the literal default of a generated step's argument."""
    if isinstance(value, (bool, numpy.bool_)) or not isinstance(value, numbers.Real):
        hint = ""
        if isinstance(value, str):
            try:
                hint = f"; pass {name}={float(value)!r}, not the string {value!r}"
            except ValueError:
                pass
        raise TypeError(f"{solver}: {name} must be a real number, got {value!r} "
                        f"({type(value).__name__}){hint}")
    number = float(value)
    if not math.isfinite(number):
        hint = "; for no bound, use a large finite number" if number == math.inf else ""
        raise ValueError(f"{solver}: {name} must be finite, got {number!r}{hint}")
    low, high, meaning = _RANGES.get(name, (-math.inf, math.inf, ""))
    if not low <= number <= high:
        allowed = f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
        raise ValueError(f"{solver}: {name} must be {allowed} ({meaning}), got {number!r}")
    return number


def _rule_hyper_names(rule: str) -> tuple[str, ...]:
    return RULES[rule].hyper_names


# --- the solvers -----------------------------------------------------------------------------

class Sgd(Solver):
    """Stochastic gradient descent: w -= lr * g."""

    rule = "sgd"

    def __init__(self, lr=1e-3):
        super().__init__(lr=lr)


class Momentum(Solver):
    """SGD with momentum: m = momentum*m + lr*g; w -= m."""

    rule = "momentum"

    def __init__(self, lr=1e-3, momentum=0.9):
        super().__init__(lr=lr, momentum=momentum)


class Nesterov(Solver):
    """Nesterov's accelerated gradient."""

    rule = "nesterov"

    def __init__(self, lr=1e-3, momentum=0.9):
        super().__init__(lr=lr, momentum=momentum)


class Adagrad(Solver):
    """AdaGrad: v += g**2; w -= lr*g/(sqrt(v) + eps)."""

    rule = "adagrad"

    def __init__(self, lr=1e-2, eps=1e-8):
        super().__init__(lr=lr, eps=eps)


class Adadelta(Solver):
    """AdaDelta: steps scaled by the ratio of running RMS of updates and gradients."""

    rule = "adadelta"

    def __init__(self, lr=1.0, decay=0.95, eps=1e-6):
        super().__init__(lr=lr, decay=decay, eps=eps)


class RMSprop(Solver):
    """RMSprop: v = decay*v + (1 - decay)*g**2; w -= lr*g/(sqrt(v) + eps)."""

    rule = "rmsprop"

    def __init__(self, lr=1e-3, decay=0.9, eps=1e-8):
        super().__init__(lr=lr, decay=decay, eps=eps)


class RMSpropGraves(Solver):
    """RMSprop as in Graves (2013), with momentum."""

    rule = "rmsprop_graves"

    def __init__(self, lr=1e-4, decay=0.95, momentum=0.9, eps=1e-4):
        super().__init__(lr=lr, decay=decay, momentum=momentum, eps=eps)


class Adam(Solver):
    """Adam with nnabla's bias correction."""

    rule = "adam"
    lr_name = "alpha"
    bias_corrected = {"beta1": ""}

    def __init__(self, alpha=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(alpha=alpha, beta1=beta1, beta2=beta2, eps=eps)


class AdamW(Solver):
    """Adam with decoupled weight decay."""

    rule = "adamw"
    lr_name = "alpha"
    bias_corrected = {"beta1": ""}
    fused_weight_decay = True

    def __init__(self, alpha=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, wd=1e-4):
        super().__init__(alpha=alpha, beta1=beta1, beta2=beta2, eps=eps, wd=wd)


class SgdW(Solver):
    """SGD with momentum and decoupled weight decay."""

    rule = "sgdw"
    fused_weight_decay = True

    def __init__(self, lr=1e-3, momentum=0.9, wd=1e-4):
        super().__init__(lr=lr, momentum=momentum, wd=wd)


class Adamax(Solver):
    """Adamax: Adam with an infinity-norm second moment."""

    rule = "adamax"
    lr_name = "alpha"
    bias_corrected = {"beta1": ""}

    def __init__(self, alpha=2e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(alpha=alpha, beta1=beta1, beta2=beta2, eps=eps)


class AMSGRAD(Solver):
    """AMSGrad: Adam with a non-decreasing second moment."""

    rule = "amsgrad"
    lr_name = "alpha"
    bias_corrected = {"beta1": "bias_correction"}

    def __init__(self, alpha=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, bias_correction=False):
        self.bias_correction = bool(bias_correction)
        super().__init__(alpha=alpha, beta1=beta1, beta2=beta2, eps=eps)

    def options(self):
        return {"bias_correction": self.bias_correction}


class AdaBound(Solver):
    """AdaBound: Adam with dynamic bounds on the step size."""

    rule = "adabound"
    lr_name = "alpha"
    bias_corrected = {"beta1": ""}

    def __init__(self, alpha=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, final_lr=0.1,
                 gamma=0.001):
        super().__init__(alpha=alpha, beta1=beta1, beta2=beta2, eps=eps, final_lr=final_lr,
                         gamma=gamma)


class AMSBound(Solver):
    """AMSBound: AMSGrad with dynamic bounds on the step size."""

    rule = "amsbound"
    lr_name = "alpha"
    bias_corrected = {"beta1": "bias_correction"}

    def __init__(self, alpha=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, final_lr=0.1,
                 gamma=0.001, bias_correction=False):
        self.bias_correction = bool(bias_correction)
        super().__init__(alpha=alpha, beta1=beta1, beta2=beta2, eps=eps, final_lr=final_lr,
                         gamma=gamma)

    def options(self):
        return {"bias_correction": self.bias_correction}


class AdaBelief(Solver):
    """AdaBelief: Adam whose second moment tracks the belief (g - mean)**2."""

    rule = "adabelief"
    lr_name = "alpha"
    bias_corrected = {"beta1": "", "beta2": "rectify"}

    def __init__(self, alpha=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, wd=0.0, amsgrad=False,
                 weight_decouple=False, fixed_decay=False, rectify=False):
        self.flags = {"amsgrad": bool(amsgrad), "weight_decouple": bool(weight_decouple),
                      "fixed_decay": bool(fixed_decay), "rectify": bool(rectify)}
        self.fused_weight_decay = self.flags["weight_decouple"]
        super().__init__(alpha=alpha, beta1=beta1, beta2=beta2, eps=eps, wd=wd)

    def options(self):
        return dict(self.flags)


class Lamb(Solver):
    """LAMB: Adam's direction scaled per layer by a clipped trust ratio."""

    rule = "lamb"
    lr_name = "eta"
    fused_weight_decay = True
    bias_corrected = {"beta1": "bias_correction", "beta2": "bias_correction"}

    def __init__(self, eta=1e-3, beta1=0.9, beta2=0.999, gamma_l=0.0, gamma_u=10.0, eps=1e-6,
                 bias_correction=False):
        self.bias_correction = bool(bias_correction)
        super().__init__(eta=eta, beta1=beta1, beta2=beta2, gamma_l=gamma_l, gamma_u=gamma_u,
                         eps=eps)
        if self._hyper["gamma_l"] > self._hyper["gamma_u"]:
            raise ValueError(f"Lamb: gamma_l={gamma_l!r} is above gamma_u={gamma_u!r}: they "
                             "are the lower and upper bounds of the weight norm")

    def options(self):
        return {"bias_correction": self.bias_correction}


class Lars(Solver):
    """LARS: momentum SGD with a per-layer trust ratio."""

    rule = "lars"
    fused_weight_decay = True

    def __init__(self, lr=1e-3, momentum=0.9, coefficient=0.001, eps=1e-6):
        super().__init__(lr=lr, momentum=momentum, coefficient=coefficient, eps=eps)


class Lion(Solver):
    """Lion: signed momentum updates with decoupled weight decay."""

    rule = "lion"
    fused_weight_decay = True

    def __init__(self, lr=1e-4, beta1=0.9, beta2=0.99):
        super().__init__(lr=lr, beta1=beta1, beta2=beta2)


SOLVERS = {cls.__name__: cls for cls in (
    Sgd, Momentum, Nesterov, Adagrad, Adadelta, RMSprop, RMSpropGraves, Adam, AdamW, SgdW,
    Adamax, AMSGRAD, AdaBound, AMSBound, AdaBelief, Lamb, Lars, Lion)}
