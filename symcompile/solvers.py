"""`symcompile.solvers` (S): nnabla's solvers, updating parameters with generated code.

A solver holds a name -> Variable dict of parameters and, per parameter, its state
arrays and step count `t`. `update()` calls the generated update function of the
solver's rule (`update_rules`) on every parameter whose gradient was written since
`zero_grad()`, exactly as nnabla skips parameters that received no gradient.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy

from .variable import Variable


class SolverState:
    """One parameter's solver state: named arrays (`pstate`) and the update count `t`."""

    def __init__(self, pstate: dict | None = None, t: int = 0) -> None:
        self.pstate = OrderedDict(pstate or {})
        self.t = t

    def __repr__(self) -> str:
        return f"SolverState(t={self.t}, pstate={list(self.pstate)})"


class Solver:
    """Base class: parameter registration, gradient utilities and the update loop."""

    rule = ""  # name of the update rule in update_rules.RULES
    state_names: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._params: OrderedDict[str, Variable] = OrderedDict()
        self._states: OrderedDict[str, SolverState] = OrderedDict()
        self._weight_decay_rate = 0.0

    # --- nnabla's API ----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return type(self).__name__

    def info(self) -> str:
        return f"{self.name}({', '.join(f'{k}={v}' for k, v in self._hyper().items())})"

    def set_parameters(self, param_dict, reset=True, retain_state=False) -> None:
        """Register parameters to update (name -> Variable); `reset` drops the old ones."""
        if not isinstance(param_dict, dict):
            raise TypeError("set_parameters: expected a dict of name -> Variable, e.g. "
                            "nn.get_parameters()")
        previous = self._states
        if reset:
            self._params = OrderedDict()
            self._states = OrderedDict()
        for key, var in param_dict.items():
            if not isinstance(var, Variable):
                raise TypeError(f"set_parameters: {key!r} is a {type(var).__name__}, "
                                "not a Variable")
            self._params[key] = var
            old = previous.get(key)
            if retain_state and old is not None and all(
                    a.shape == var.shape for a in old.pstate.values()):
                self._states[key] = old
            elif key not in self._states or reset:
                self._states[key] = self._new_state(var)

    def remove_parameters(self, keys) -> None:
        for key in keys:
            self._params.pop(key, None)
            self._states.pop(key, None)

    def clear_parameters(self) -> None:
        self._params.clear()
        self._states.clear()

    def get_parameters(self) -> OrderedDict:
        return OrderedDict(self._params)

    def get_states(self) -> OrderedDict:
        return OrderedDict(self._states)

    def zero_grad(self) -> None:
        """Zero every registered gradient (lazily: update() skips untouched ones)."""
        for var in self._params.values():
            var._storage.zero_grad()

    def weight_decay(self, decay_rate, pre_hook=None, post_hook=None) -> None:
        """Coupled L2 decay: g += decay_rate * w for every parameter that has a gradient."""
        if decay_rate == 0:
            return
        for var in self._params.values():
            storage = var._storage
            if not storage.grad_zeroing:
                grad = storage.grad
                grad += numpy.float32(decay_rate) * storage.data

    def set_learning_rate(self, learning_rate) -> None:
        self.lr = float(learning_rate)

    def learning_rate(self) -> float:
        return self.lr

    def update(self, update_pre_hook=None, update_post_hook=None) -> None:
        """Apply the update rule to every parameter whose gradient was written."""
        from .runtime import update_function

        kernel = update_function(self.rule)
        hyper = tuple(self._hyper().values())
        for key, var in self._params.items():
            storage = var._storage
            if storage.grad_zeroing:
                continue
            if update_pre_hook is not None:
                update_pre_hook(key)
            state = self._states[key]
            state.t = min(state.t + 1, 2**32 - 2)
            kernel(storage.data, storage.grad, *(a.d for a in state.pstate.values()), *hyper)
            if update_post_hook is not None:
                update_post_hook(key)

    # --- subclass hooks --------------------------------------------------------------------
    def _hyper(self) -> OrderedDict:
        raise NotImplementedError

    def _new_state(self, var: Variable) -> SolverState:
        return SolverState({name: Variable(var.shape) for name in self.state_names})


class Sgd(Solver):
    """Stochastic gradient descent: w <- w - lr * g.

    Args:
        lr: Learning rate.
    """

    rule = "sgd"

    def __init__(self, lr=1e-3) -> None:
        super().__init__()
        self.lr = float(lr)

    def _hyper(self) -> OrderedDict:
        return OrderedDict(lr=self.lr)
