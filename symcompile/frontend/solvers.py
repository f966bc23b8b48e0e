"""`symcompile.solvers` (S): nnabla's solvers, updating parameters with generated code.

A solver holds a name -> Variable dict of parameters and, per parameter, its state
arrays and update count `t`. `update()` calls the generated update function of the
solver's rule (`update_rules`) on every parameter whose gradient was written since
`zero_grad()`, exactly as nnabla skips parameters that received no gradient.

The classes (`Sgd`, `Adam`, ...) are not written here: each is made from its entry in
`update_rules.RULES`, which gives the class its name, nnabla's constructor signature, its
learning rate, how its weight decay acts and the values it refuses. A new solver is a new
rule entry.

Weight decay follows nnabla: for most solvers `weight_decay(r)` adds ``r * w`` to the
gradients at once (coupled); for SgdW, AdamW, Lars, Lamb, Lion (and AdaBelief with
``weight_decouple=True``) the rate is stored, applied inside the next update and then
reset to the solver's own ``wd`` (decoupled, fused).
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections import OrderedDict

import numpy

from symcompile.common import checkpoint
from symcompile.frontend import executor
from symcompile.frontend.variable import Variable
from symcompile.ops.update_rules import (
    COUPLED,
    FUSED,
    RANGES,
    RULES,
    UpdateRule,
    state_names,
)

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
    """Base class: parameters, states, gradient utilities and the update loop. Each
    solver class is made from its update rule (`_solver_class`); this one is not made."""

    rule = ""  # the update rule's name in update_rules.RULES
    lr_name = "lr"  # the hyper-parameter set_learning_rate() changes (the rule's first)

    def __init__(self, *args, **kwargs) -> None:
        raise TypeError("Solver is the base class of symcompile.solvers' solvers; make one "
                        "of them, e.g. S.Sgd(lr=0.1) (S.SOLVERS lists them)")

    def _configure(self, values: dict) -> None:
        """Check and keep the constructor's values (nnabla's arguments, by name)."""
        spec = self._spec()
        self._hyper = OrderedDict((name, _hyper_parameter(self.name, name, values[name]))
                                  for name in spec.arguments)
        self._options = OrderedDict((name, _switch(self.name, name, values[name]))
                                    for name, _ in spec.options)
        self._initial_lr = self._hyper[self.lr_name]
        self._refuse(self._hyper)
        self._default_wd = self._hyper.get("wd", 0.0)
        self._wd = self._default_wd
        # What update() calls, worked out once: (the executor, its generated update rule)
        # and the rule's hyper-parameters, until set_learning_rate() or weight_decay()
        # changes them
        self._kernel: tuple | None = None
        self._hyper_values: tuple | None = None
        self._fused_arguments: tuple = ((), {})  # (options, hyper by name), as _hyper_values
        self._params: OrderedDict[str, Variable] = OrderedDict()
        self._states: OrderedDict[str, SolverState] = OrderedDict()

    def _spec(self) -> UpdateRule:
        return RULES[self.rule]

    def _refuse(self, hyper: dict) -> None:
        """Raise for values that the rule refuses together (update_rules.Refusal)."""
        values = {**hyper, **self._options, f"init_{self.lr_name}": self._initial_lr}
        for refusal in self._spec().refusals:
            if refusal.when(values):
                raise ValueError(f"{self.name}: {refusal.message.format(**values)}")

    # --- description ---------------------------------------------------------------------
    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def info(self) -> dict:
        """The solver's name, hyper-parameters and options (nnabla's info has the last
        two: nnabla.utils.save reads info["bias_correction"], info["amsgrad"], ...)."""
        return {"name": self.name, **self._hyper, **self._options}

    def __repr__(self) -> str:
        values = {**self._hyper, **self._options}
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in values.items())})"

    def options(self) -> dict[str, bool]:
        """Switches that select a variant of the update formula (see update_rules)."""
        return dict(self._options)

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
        names = state_names(self._spec(), self._options)
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
        return self._spec().fused_decay(self._options)

    @property
    def fused_weight_decay(self) -> bool:
        return self.weight_decay_is_fused()

    def weight_decay(self, decay_rate, pre_hook=None, post_hook=None) -> None:
        """L2 weight decay at `decay_rate`: g += rate*w now, or, for decoupled solvers,
        inside the next update()."""
        if self.weight_decay_is_fused():
            self._wd = float(decay_rate)
            self._hyper_values = None
            return
        if decay_rate == 0:
            return
        written = list(self._written())
        if pre_hook is None and post_hook is None and written \
                and executor.current().defer_weight_decay([s for _, s in written], decay_rate):
            return  # (applied where the deferred backward() computes the gradients)
        for key, storage in written:
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
        """Checked as the constructor checks it; a refused rate changes nothing."""
        hyper = {**self._hyper,
                 self.lr_name: _hyper_parameter(self.name, self.lr_name, learning_rate)}
        self._refuse(hyper)
        self._hyper[self.lr_name] = hyper[self.lr_name]
        self._hyper_values = None

    def learning_rate(self) -> float:
        return self._hyper[self.lr_name]

    def rule_arguments(self) -> OrderedDict:
        """The update rule's hyper-parameters, in its order, for the current update."""
        known = {**self._hyper, "wd": self._wd, f"init_{self.lr_name}": self._initial_lr}
        return OrderedDict((name, known[name]) for name in self._spec().hyper_names)

    def _update_kernel(self):
        """The executor's generated update rule, looked up once per executor."""
        runner = executor.current()
        if self._kernel is None or self._kernel[0] is not runner:
            self._kernel = (runner, runner.update_function(
                self.rule, tuple(sorted(self._options.items()))))
        return self._kernel[1]

    def update(self, update_pre_hook=None, update_post_hook=None) -> None:
        """Apply the update rule to every parameter whose gradient was written."""
        if self._hyper_values is None:
            self._hyper_values = tuple(self.rule_arguments().values())
            self._fused_arguments = (tuple(sorted(self._options.items())),
                                     dict(zip(self._spec().hyper_names, self._hyper_values,
                                              strict=True)))
        hyper = self._hyper_values
        uses_t = self._spec().uses_t
        written = [(key, var._storage) for key, var in self._params.items()
                   if not var._storage.grad_zeroing]  # (as `_written`, inlined: the loop's)
        taken = None
        if written and update_pre_hook is None and update_post_hook is None:
            if self._fused_update(written, uses_t):
                return
            # the gradients of a backward() the runtime deferred, when they are exactly
            # these: read from where they were computed, not from `.g`
            taken = executor.current().take_gradients([storage for _, storage in written])
        kernel = self._update_kernel()
        for key, storage in written:
            _hook(update_pre_hook, key)
            state = self._states[key]
            state.t = min(state.t + 1, T_MAX)
            states = [v._storage.data for v in state.pstate.values()]
            # (updated as float32, which becomes their dtype, as nnabla's solvers do to a
            # parameter given values of another dtype, e.g. `W.d = numpy.random.randn(..)`)
            data = storage.cast(numpy.float32)
            grad = taken[storage] if taken else storage.cast_grad(numpy.float32)
            if uses_t:
                kernel(data, grad, *states, state.t, *hyper)
            else:
                kernel(data, grad, *states, *hyper)
            _hook(update_post_hook, key)
        self._decay_used()

    def _decay_used(self) -> None:
        if self._wd != self._default_wd:  # a stored weight_decay() rate lasts one update
            self._wd = self._default_wd
            self._hyper_values = None

    def _fused_update(self, written, uses_t: bool) -> bool:
        """The update of `written` done by the runtime together with the backward() it
        deferred (runtime.deferred), in one generated call, when it can: the same bits
        as the update below."""
        all_states = self._states
        states = [all_states[key] for key, _ in written]
        count = states[0].t
        for state in states:
            if state.t != count:
                return False  # (the fused update takes one update count for all)
        step = min(count + 1, T_MAX) if uses_t else None
        options, hyper = self._fused_arguments
        if not executor.current().fused_update(
                self.rule, options, [storage for _, storage in written],
                [[v._storage.data for v in state.pstate.values()] for state in states], step,
                hyper):
            return False
        count = min(count + 1, T_MAX)
        for state in states:
            state.t = count
        if self._wd != self._default_wd:
            self._decay_used()
        return True

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
        if str(path).lower().endswith(".protobuf"):
            raise ValueError(f"save_states({str(path)!r}): solver states are written as .h5 "
                             "(nnabla's layout) or .npz; .protobuf holds parameters only here")
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


def _hyper_parameter(solver: str, name: str, value) -> float:
    """`value` as a Python float, checked here rather than failing inside update(); a
    float because it becomes the literal default of a generated step's argument. The
    range is the one its meaning gives it (update_rules.RANGES)."""
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
    low, high, meaning = RANGES[name]
    if not low <= number <= high:
        allowed = f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
        raise ValueError(f"{solver}: {name} must be {allowed} ({meaning}), got {number!r}")
    return number


def _switch(solver: str, name: str, value) -> bool:
    """An option as a bool: True/False, or 0/1 as nnabla's C++ bool takes them (a string
    such as "False" would otherwise switch the option on)."""
    if isinstance(value, (bool, numpy.bool_)) or (isinstance(value, numbers.Integral)
                                                  and value in (0, 1)):
        return bool(value)
    raise TypeError(f"{solver}: {name} is a switch and must be True or False, got "
                    f"{value!r} ({type(value).__name__})")


# --- the solvers: one class per update rule -----------------------------------------------

_LEARNING_RATE_NAMES = {"lr", "alpha", "eta", "learning_rate"}


def _solver_class(rule: UpdateRule) -> type[Solver]:
    """The nnabla solver class of `rule`: nnabla's name, and a constructor with nnabla's
    argument names, order and defaults (as inspect.signature and help() show it)."""
    solver = rule.solver
    parameters = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                    default=default) for name, default in rule.constructor]
    signature = inspect.Signature(parameters)

    def __init__(self, *args, **kwargs):
        unknown = [name for name in kwargs if name not in signature.parameters]
        if unknown:
            hint = (f"; the learning rate of {solver} is {rule.lr_name}"
                    if unknown[0] in _LEARNING_RATE_NAMES else "")
            raise TypeError(f"{solver}: unknown argument {unknown[0]!r}{hint}; nnabla's "
                            f"{solver} takes {signature}")
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as error:  # too many positional arguments
            raise TypeError(f"{solver}: {error}; nnabla's {solver} takes {signature}") from None
        bound.apply_defaults()
        self._configure(bound.arguments)

    self_parameter = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    __init__.__signature__ = signature.replace(parameters=[self_parameter, *parameters])
    __init__.__qualname__ = f"{solver}.__init__"
    __init__.__doc__ = f"nnabla's {solver}{signature}, checked (update_rules.RANGES)."
    doc = f"{rule.summary}\n\n{rule.doc}."
    if rule.decay != COUPLED:
        doc += ("\n\nWeight decay is decoupled: weight_decay(r) sets the rate of the next "
                "update" + ("" if rule.decay == FUSED else f" (with {rule.decay}=True)")
                + ".")
    return type(solver, (Solver,), {"__init__": __init__, "__doc__": doc, "rule": rule.name,
                                    "lr_name": rule.lr_name, "__module__": __name__,
                                    "__qualname__": solver})


SOLVERS: dict[str, type[Solver]] = {rule.solver: _solver_class(rule) for rule in RULES.values()}
globals().update(SOLVERS)  # S.Sgd, S.Adam, ...: nnabla's names
