"""Independent plain-NumPy reference for the update rules of nnabla 1.39's 18 solvers.

This module is a *test oracle*: it re-implements, element by element and in the
same floating-point precision, what nnabla's CPU solver kernels do, so that
another implementation can be checked against it.  It imports nothing but
NumPy (and the standard library) and in particular nothing from symcompile.

Sources read (sony/nnabla, Apache-2.0; formulas re-derived, no code copied):

* ``build-tools/code_generator/solvers.yaml`` -- argument names, defaults and the
  documented formulas (identical to the docstrings of ``nnabla.solvers.*`` in the
  1.39.0 wheel, which were read directly);
* ``include/nbla/solver.hpp`` / ``src/nbla/solver.cpp`` -- ``update``,
  ``weight_decay`` (fused vs. coupled), the per-update reset of the fused rate;
* ``src/nbla/solver/generic/*.cpp`` -- the CPU update loops;
* ``include/nbla/solver/weight_decay.hpp``, ``clip_grad.hpp``,
  ``mixed_precision_training.hpp`` -- the gradient helpers.

The index of nnabla sources that was read holds some pre-1.39 snapshots (e.g. the
pre-2022 SgdW/AdamW/Lars/AdaBelief without the fused ``weight_decay_rate_``), so
every rule below was additionally checked **bit for bit** (0 ulp on parameters
and on every state array, and ``t``) against the real ``nnabla==1.39.0`` CPU
wheel (Python 3.10, NumPy 1.26): all 18 solvers, default and non-default
hyper-parameters, all 16 AdaBelief flag combinations, AMSGRAD/AMSBound/Lamb
``bias_correction``, Lamb's clamp, ``set_learning_rate`` schedules,
``weight_decay`` (coupled, fused, fused with 0), ``clip_grad_by_norm``,
``scale_grad``, skipped (zeroing) gradients, zero weights/gradients, tiny and
huge gradients and ``t`` up to 2**31 via ``set_states``.  (That comparison
harness lives outside the repository; it needs nnabla, which this project does
not depend on.)  Where the yaml doc and the code disagree, the code wins and the
class docstring says so (Adamax, AdaBound, AMSBound, AdamW, AdaBelief, Lars).

Floating-point conventions (mirroring nnabla's C++)
---------------------------------------------------
* Parameters, gradients and all state arrays are ``float32``.
* Every hyper-parameter is stored by nnabla's C++ as a ``float`` member, so it is
  rounded to float32 *before* use (``f32(lr)``); the Python-visible attributes of
  the classes here keep the Python floats that were passed.
* Element-wise expressions are evaluated in float32 in the same order as the C++
  expression (C++ is left-associative: ``a * b * c == (a * b) * c``; this matters
  for bit-exactness, e.g. RMSprop's ``g*g*(1-decay)`` versus RMSpropGraves'
  ``(1-decay)*g*g``).
* Scalar coefficients built with ``std::pow(float, uint32_t)`` are computed in
  **double** (C++ promotes both arguments to double), from the float32-rounded
  betas, and are rounded to float32 where the C++ assigns them to a ``T``/``float``
  variable.  Where the C++ keeps a double (Lamb's ``local_lr``, AdaBelief's
  ``rho_inf``), the double is kept here too.
* Reductions (``std::accumulate`` / plain ``for`` loops) are sequential float32
  sums: they are reproduced with ``np.add.accumulate`` (sequential), never with
  ``np.sum`` (pairwise).
* ``std::max(a, b)`` is ``b if a < b else a`` and ``std::min(a, b)`` is
  ``b if b < a else a``; these are mirrored with ``np.where`` so that NaN
  propagation matches too.

Solver protocol (mirrors ``nnabla.solver.Solver``)
--------------------------------------------------
``set_parameters`` keeps *references* to the float32 arrays and updates them in
place.  ``update(grads)`` skips any parameter whose gradient is absent/None
(nnabla skips parameters whose gradient is still "zeroing" after
``zero_grad()``, and so does not advance their ``t``), increments that
parameter's ``t`` *before* using it (C++ ``uint32_t``, saturating at
``2**32 - 2``; nnabla's Python ``get_states()[k].t`` shows it as a signed 32-bit
value, a binding detail not mirrored here) and applies the rule.  Weight decay:

* *coupled* solvers (everything except the fused ones): nnabla's
  ``solver.weight_decay(r)`` immediately does ``g <- g + r*w`` (float32, skipped
  when ``r == 0`` or when the gradient is zeroing).  Tests call
  :func:`apply_coupled_weight_decay` (or :meth:`ReferenceSolver.weight_decay`)
  before ``update``; the ``weight_decay_rate`` argument of ``update`` is ignored
  for these solvers.
* *fused/decoupled* solvers -- SgdW, AdamW, Lars, Lamb, Lion, and AdaBelief with
  ``weight_decouple=True`` (``weight_decay_is_fused() == True`` in nnabla):
  ``solver.weight_decay(r)`` only stores ``r``; the next ``update()`` uses it and
  then resets the stored rate to the default (the ``wd`` constructor argument for
  SgdW/AdamW/AdaBelief, ``0`` for Lars/Lamb/Lion, which have no ``wd`` argument).
  ``weight_decay(0)`` therefore *disables* the default decay for one update.
  Here the rate for the current update is passed as ``update(grads,
  weight_decay_rate=r)``; ``None`` (the default) means "what nnabla would use":
  the rate stored by :meth:`ReferenceSolver.weight_decay` if it was called since
  the last update, else the default.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "SOLVERS",
    "ReferenceSolver",
    "apply_coupled_weight_decay",
    "clip_grad_by_norm",
    "scale_grad",
    "check_inf_grad",
    "check_nan_grad",
    "check_inf_or_nan_grad",
    "Sgd", "Momentum", "Nesterov", "Adagrad", "Adadelta", "RMSprop",
    "RMSpropGraves", "Adam", "AdamW", "SgdW", "Adamax", "AMSGRAD", "AdaBound",
    "AMSBound", "AdaBelief", "Lamb", "Lars", "Lion",
]

F32 = np.float32
ONE = np.float32(1.0)
_T_MAX = 2**32 - 2  # nnabla: t = min(t + 1, numeric_limits<uint32_t>::max() - 1)


def f32(x) -> np.float32:
    """Round a Python/NumPy scalar to float32 (a C++ ``float`` member)."""
    return np.float32(x)


def _seq_sumsq(x: np.ndarray) -> np.float32:
    """``T acc = 0; for (i) acc += x[i] * x[i];`` in float32, sequential order."""
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    if flat.size == 0:
        return F32(0.0)
    sq = flat * flat  # each product rounded to float32 (no FMA on x86-64 SSE)
    return F32(np.add.accumulate(sq, dtype=np.float32)[-1])


def _cmax(a, b):
    """``std::max(a, b)``: returns ``b`` if ``a < b`` else ``a``."""
    return np.where(a < b, b, a)


def _cmin(a, b):
    """``std::min(a, b)``: returns ``b`` if ``b < a`` else ``a``."""
    return np.where(b < a, b, a)


def _pow_d(base_f32, t: int) -> float:
    """``std::pow(float base, uint32_t t)``: both promoted to double."""
    return float(base_f32) ** float(t)


# --------------------------------------------------------------------------
# Gradient helpers (nnabla's solver.weight_decay / clip_grad_by_norm / scale_grad)
# --------------------------------------------------------------------------

def apply_coupled_weight_decay(grads: dict, params: dict, rate: float) -> None:
    """nnabla ``solver.weight_decay(rate)`` for a non-fused solver, in place.

    ``include/nbla/solver/weight_decay.hpp``: ``g = g + decay_rate * x`` with
    ``decay_rate`` a C++ ``float``.  ``src/nbla/solver.cpp`` returns early when
    ``decay_rate == 0`` and skips parameters whose gradient is zeroing (here:
    missing or ``None`` in ``grads``).
    """
    r = f32(rate)
    if r == 0:
        return
    for name, g in grads.items():
        if g is None or name not in params:
            continue
        g[...] = g + r * params[name]


def clip_grad_by_norm(grads: dict, clip_norm: float) -> None:
    """nnabla ``solver.clip_grad_by_norm(clip_norm)``, per parameter, in place.

    ``include/nbla/solver/clip_grad.hpp`` (``clip_grad_by_norm_cpu``)::

        T sum = 0; for (i) sum += g[i] * g[i];            // float32, sequential
        if (sum > 0.0 && sum > clip_norm * clip_norm) {   // float32 compare
            T norm = sqrt(sum);
            for (i) g[i] = clip_norm * g[i] / norm;       // (c * g) / norm
        }

    i.e. it is a *condition*, not ``c*g/max(c, ||g||)`` (equal in exact
    arithmetic, not always bitwise).  ``clip_norm == 0`` leaves the gradient
    unchanged (verified against nnabla 1.39: ``clip_grad_by_norm(0)`` is a no-op).
    The norm is per parameter, never global.
    """
    c = f32(clip_norm)
    if c == 0:
        return
    for g in grads.values():
        if g is None:
            continue
        s = _seq_sumsq(g)
        if s > 0.0 and s > c * c:
            norm = np.sqrt(s, dtype=np.float32)
            g[...] = (c * g) / norm


def scale_grad(grads: dict, scale: float) -> None:
    """nnabla ``solver.scale_grad(scale)``: ``g = g * scale`` (float32), in place.

    ``include/nbla/solver/mixed_precision_training.hpp`` (``scale_grad_impl_cpu``).
    """
    s = f32(scale)
    for g in grads.values():
        if g is None:
            continue
        g[...] = g * s


def check_inf_grad(grads: dict) -> bool:
    return any(g is not None and bool(np.isinf(g).any()) for g in grads.values())


def check_nan_grad(grads: dict) -> bool:
    return any(g is not None and bool(np.isnan(g).any()) for g in grads.values())


def check_inf_or_nan_grad(grads: dict) -> bool:
    return any(g is not None and not bool(np.isfinite(g).all()) for g in grads.values())


# --------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------

class ReferenceSolver:
    """Base class: parameter registry, per-parameter states and ``t``.

    Subclasses define ``state_names``, ``lr_name`` (nnabla's name of the
    learning-rate argument: ``lr``, ``alpha`` or ``eta``), whether their weight
    decay is fused, and ``_update_one``.
    """

    name: str = "ReferenceSolver"
    state_names: tuple = ()
    lr_name: str = "lr"

    def __init__(self) -> None:
        self.params: dict = {}
        self.states: dict = {}
        self._pending_wd = None  # rate stored by weight_decay() for fused solvers

    # ---- learning rate --------------------------------------------------
    def learning_rate(self) -> float:
        # nnabla returns the C++ float widened to double.
        return float(f32(getattr(self, self.lr_name)))

    def set_learning_rate(self, lr: float) -> None:
        setattr(self, self.lr_name, lr)

    # ---- weight decay ---------------------------------------------------
    def weight_decay_is_fused(self) -> bool:
        return False

    @property
    def default_weight_decay_rate(self) -> float:
        """Rate a fused solver uses when ``weight_decay()`` was not called."""
        return 0.0

    def weight_decay(self, grads: dict, decay_rate: float) -> None:
        """Stateful mirror of nnabla's ``solver.weight_decay(decay_rate)``.

        Coupled solvers: ``g += rate * w`` now.  Fused solvers: store the rate
        for the next :meth:`update` only (then it reverts to the default).
        """
        if self.weight_decay_is_fused():
            self._pending_wd = float(decay_rate)
        else:
            apply_coupled_weight_decay(grads, self.params, decay_rate)

    def clip_grad_by_norm(self, grads: dict, clip_norm: float) -> None:
        clip_grad_by_norm(grads, clip_norm)

    def scale_grad(self, grads: dict, scale: float) -> None:
        scale_grad(grads, scale)

    # ---- parameters and states -----------------------------------------
    def _state_names(self) -> tuple:
        return tuple(self.state_names)

    def set_parameters(self, params: dict, reset: bool = True,
                       retain_state: bool = False) -> None:
        """Register float32 arrays (kept by reference, updated in place).

        Like nnabla, ``reset=True`` forgets every parameter first; with
        ``reset=False`` and ``retain_state=True`` an already registered name keeps
        its state (shapes must match).  New states are zero with ``t = 0``.
        """
        if reset:
            self.params.clear()
            self.states.clear()
        for key, arr in params.items():
            if not isinstance(arr, np.ndarray) or arr.dtype != np.float32:
                raise TypeError(f"parameter {key!r} must be a float32 numpy array")
            if key in self.params and not reset and retain_state:
                if self.params[key].shape != arr.shape:
                    raise ValueError(f"Could not retain state of {key!r}: shape mismatch")
                continue
            self.params[key] = arr
            st = {"t": 0}
            for sn in self._state_names():
                st[sn] = np.zeros(arr.shape, dtype=np.float32)
            self.states[key] = st

    def remove_parameters(self, keys) -> None:
        for k in keys:
            self.params.pop(k, None)
            self.states.pop(k, None)

    def clear_parameters(self) -> None:
        self.params.clear()
        self.states.clear()

    def get_parameters(self) -> dict:
        return dict(self.params)

    # ---- update ---------------------------------------------------------
    def update(self, grads: dict, weight_decay_rate: float | None = None) -> None:
        """One nnabla ``solver.update()``.

        ``grads``: name -> float32 array (a missing name or ``None`` = gradient not
        computed since ``zero_grad()``; nnabla skips that parameter and does not
        advance its ``t``).  ``weight_decay_rate`` is only used by fused solvers
        (see the module docstring); ``None`` means nnabla's choice (the rate
        stored by :meth:`weight_decay`, else the default).
        """
        if weight_decay_rate is None:
            rate = (self._pending_wd if self._pending_wd is not None
                    else self.default_weight_decay_rate)
        else:
            rate = float(weight_decay_rate)
        self._pending_wd = None  # nnabla: weight_decay_rate_ = default after update()
        for key, w in self.params.items():
            g = grads.get(key)
            if g is None:
                continue
            st = self.states[key]
            st["t"] = min(st["t"] + 1, _T_MAX)
            self._update_one(w, g, st, st["t"], f32(rate))

    def _update_one(self, w, g, st, t, wd):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ", ".join(
            f"{k}={getattr(self, k)!r}" for k in self._hyper) + ")"

    _hyper: tuple = ()


# --------------------------------------------------------------------------
# 1. Sgd
# --------------------------------------------------------------------------

class Sgd(ReferenceSolver):
    """SGD.  ``Sgd(lr=1e-3)``; states: none (only ``t``).

    ``w <- w - lr * g``  (float32).

    nnabla: ``src/nbla/solver/generic/sgd.cpp``
    (``std::transform(..., [](g, x){ return x - lr_ * g; })``).
    """

    name = "Sgd"
    _hyper = ("lr",)

    def __init__(self, lr=1e-3):
        super().__init__()
        self.lr = lr
        self.init_lr = lr

    def _update_one(self, w, g, st, t, wd):
        w[...] = w - f32(self.lr) * g


# --------------------------------------------------------------------------
# 2. Momentum
# --------------------------------------------------------------------------

class Momentum(ReferenceSolver):
    """SGD with momentum.  ``Momentum(lr=1e-3, momentum=0.9)``; state ``m``.

    ``m <- momentum*m + lr*g;  w <- w - m``  (float32).

    nnabla: ``src/nbla/solver/generic/momentum.cpp``.
    """

    name = "Momentum"
    state_names = ("m",)
    _hyper = ("lr", "momentum")

    def __init__(self, lr=1e-3, momentum=0.9):
        super().__init__()
        self.lr = lr
        self.momentum = momentum
        self.init_lr = lr

    def _update_one(self, w, g, st, t, wd):
        v = st["m"]
        v[...] = f32(self.momentum) * v + f32(self.lr) * g
        w[...] = w - v


# --------------------------------------------------------------------------
# 3. Nesterov
# --------------------------------------------------------------------------

class Nesterov(ReferenceSolver):
    """Nesterov accelerated gradient.  ``Nesterov(lr=1e-3, momentum=0.9)``; state ``m``.

    Per element (float32, C++ evaluation order)::

        v_prev = m
        m      = momentum*m - lr*g
        w      = w + ((-momentum)*v_prev + (1 + momentum)*m)

    i.e. ``w_{t+1} = w_t - gamma*v_{t-1} + (1+gamma)*v_t`` with
    ``v_t = gamma*v_{t-1} - lr*g`` (note the *minus*: ``m`` holds the negative
    velocity, unlike Momentum's ``m``).

    nnabla: ``src/nbla/solver/generic/nesterov.cpp``.
    """

    name = "Nesterov"
    state_names = ("m",)
    _hyper = ("lr", "momentum")

    def __init__(self, lr=1e-3, momentum=0.9):
        super().__init__()
        self.lr = lr
        self.momentum = momentum
        self.init_lr = lr

    def _update_one(self, w, g, st, t, wd):
        mom = f32(self.momentum)
        v = st["m"]
        v_prev = v.copy()
        v[...] = mom * v - f32(self.lr) * g
        w[...] = w + ((-mom) * v_prev + (ONE + mom) * v)


# --------------------------------------------------------------------------
# 4. Adagrad
# --------------------------------------------------------------------------

class Adagrad(ReferenceSolver):
    """Adagrad.  ``Adagrad(lr=1e-2, eps=1e-8)``; state ``v``.

    ``v <- v + g*g;  w <- w - (lr*g) / (sqrt(v) + eps)``  (float32).

    nnabla: ``src/nbla/solver/generic/adagrad.cpp``.
    """

    name = "Adagrad"
    state_names = ("v",)
    _hyper = ("lr", "eps")

    def __init__(self, lr=1e-2, eps=1e-8):
        super().__init__()
        self.lr = lr
        self.eps = eps
        self.init_lr = lr

    def _update_one(self, w, g, st, t, wd):
        G = st["v"]
        G[...] = G + g * g
        w[...] = w - (f32(self.lr) * g) / (np.sqrt(G) + f32(self.eps))


# --------------------------------------------------------------------------
# 5. Adadelta
# --------------------------------------------------------------------------

class Adadelta(ReferenceSolver):
    """AdaDelta.  ``Adadelta(lr=1.0, decay=0.95, eps=1e-6)``;
    states ``e_sqr_grad``, ``e_sqr_delta``.

    Per element (float32, C++ order)::

        e_sqr_grad  = e_sqr_grad*decay + (g*g)*(1 - decay)
        delta       = sqrt((e_sqr_delta + eps) / (e_sqr_grad + eps)) * g
        e_sqr_delta = e_sqr_delta*decay + (delta*delta)*(1 - decay)
        w           = w - lr*delta

    ``lr`` (default 1.0, so the plain paper rule by default) simply multiplies
    the AdaDelta step; ``e_sqr_delta`` is updated with the *unscaled* delta.
    ``set_learning_rate`` changes ``lr``.

    nnabla: ``src/nbla/solver/generic/adadelta.cpp``; yaml doc
    ``w <- w + eta * v_t`` with ``v_t = -RMS[v]_{t-1}/RMS[g]_t * g_t``.
    """

    name = "Adadelta"
    state_names = ("e_sqr_grad", "e_sqr_delta")
    _hyper = ("lr", "decay", "eps")

    def __init__(self, lr=1.0, decay=0.95, eps=1e-6):
        super().__init__()
        self.lr = lr
        self.decay = decay
        self.eps = eps
        self.init_lr = lr

    def _update_one(self, w, g, st, t, wd):
        decay, eps = f32(self.decay), f32(self.eps)
        eg, ed = st["e_sqr_grad"], st["e_sqr_delta"]
        eg[...] = eg * decay + (g * g) * (ONE - decay)
        delta = np.sqrt((ed + eps) / (eg + eps)) * g
        ed[...] = ed * decay + (delta * delta) * (ONE - decay)
        w[...] = w - f32(self.lr) * delta


# --------------------------------------------------------------------------
# 6. RMSprop
# --------------------------------------------------------------------------

class RMSprop(ReferenceSolver):
    """RMSprop (Hinton).  ``RMSprop(lr=1e-3, decay=0.9, eps=1e-8)``; state ``v``.

    ``v <- v*decay + (g*g)*(1 - decay);  w <- w - (lr / (sqrt(v) + eps)) * g``
    (float32; note the C++ divides ``lr`` first, then multiplies by ``g``).

    nnabla: ``src/nbla/solver/generic/rmsprop.cpp``.
    """

    name = "RMSprop"
    state_names = ("v",)
    _hyper = ("lr", "decay", "eps")

    def __init__(self, lr=1e-3, decay=0.9, eps=1e-8):
        super().__init__()
        self.lr = lr
        self.decay = decay
        self.eps = eps
        self.init_lr = lr

    def _update_one(self, w, g, st, t, wd):
        decay = f32(self.decay)
        v = st["v"]
        v[...] = v * decay + (g * g) * (ONE - decay)
        w[...] = w - (f32(self.lr) / (np.sqrt(v) + f32(self.eps))) * g


# --------------------------------------------------------------------------
# 7. RMSpropGraves
# --------------------------------------------------------------------------

class RMSpropGraves(ReferenceSolver):
    """RMSprop (Graves).  ``RMSpropGraves(lr=1e-4, decay=0.95, momentum=0.9, eps=1e-4)``;
    states ``n``, ``g``, ``d``.

    Per element (float32, C++ order; ``e`` is the gradient)::

        n = decay*n + ((1 - decay)*e)*e
        g = decay*g + (1 - decay)*e
        d = momentum*d - (lr*e) / sqrt((n - g*g) + eps)
        w = w + d

    ``eps`` is inside the square root (``sqrt(n - g^2 + eps)``), as documented.

    nnabla: ``src/nbla/solver/generic/rmsprop_graves.cpp``.
    """

    name = "RMSpropGraves"
    state_names = ("n", "g", "d")
    _hyper = ("lr", "decay", "momentum", "eps")

    def __init__(self, lr=1e-4, decay=0.95, momentum=0.9, eps=1e-4):
        super().__init__()
        self.lr = lr
        self.decay = decay
        self.momentum = momentum
        self.eps = eps
        self.init_lr = lr

    def _update_one(self, w, e, st, t, wd):
        decay = f32(self.decay)
        n, gm, d = st["n"], st["g"], st["d"]
        n[...] = decay * n + ((ONE - decay) * e) * e
        gm[...] = decay * gm + (ONE - decay) * e
        d[...] = (f32(self.momentum) * d
                  - (f32(self.lr) * e) / np.sqrt((n - gm * gm) + f32(self.eps)))
        w[...] = w + d


# --------------------------------------------------------------------------
# Adam family helpers
# --------------------------------------------------------------------------

def _adam_bias_correction(beta1, beta2, t) -> np.float32:
    """``const T bc = std::sqrt(1 - std::pow(beta1_? ...`` computed in double.

    ``sqrt(1 - beta2^t) / (1 - beta1^t)`` with float32-rounded betas promoted to
    double, the result rounded to float32.
    """
    b1, b2 = f32(beta1), f32(beta2)
    return f32(math.sqrt(1.0 - _pow_d(b2, t)) / (1.0 - _pow_d(b1, t)))


def _moments(m, v, g, beta1, beta2):
    """``m = b1*m + (1-b1)*g;  v = b2*v + ((1-b2)*g)*g``  (float32)."""
    b1, b2 = f32(beta1), f32(beta2)
    m[...] = b1 * m + (ONE - b1) * g
    v[...] = b2 * v + ((ONE - b2) * g) * g


# --------------------------------------------------------------------------
# 8. Adam
# --------------------------------------------------------------------------

class Adam(ReferenceSolver):
    """Adam.  ``Adam(alpha=1e-3, beta1=0.9, beta2=0.999, eps=1e-8)``;
    states ``mean``, ``var``.

    ::

        bc      = f32( sqrt(1 - b2^t) / (1 - b1^t) )    # double, f32 betas
        alpha_t = alpha * bc                             # float32
        m = b1*m + (1-b1)*g
        v = b2*v + ((1-b2)*g)*g
        w = w - (alpha_t*m) / (sqrt(v) + eps)

    ``eps`` is added to ``sqrt(v)`` (not to ``sqrt(v_hat)``), as documented.

    nnabla: ``src/nbla/solver/generic/adam.cpp``.
    """

    name = "Adam"
    state_names = ("mean", "var")
    lr_name = "alpha"
    _hyper = ("alpha", "beta1", "beta2", "eps")

    def __init__(self, alpha=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__()
        self.alpha = alpha
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.init_alpha = alpha

    def _update_one(self, w, g, st, t, wd):
        alpha_t = f32(self.alpha) * _adam_bias_correction(self.beta1, self.beta2, t)
        m, v = st["mean"], st["var"]
        _moments(m, v, g, self.beta1, self.beta2)
        w[...] = w - (alpha_t * m) / (np.sqrt(v) + f32(self.eps))


# --------------------------------------------------------------------------
# 9. AdamW
# --------------------------------------------------------------------------

class AdamW(ReferenceSolver):
    """AdamW (decoupled, fused weight decay).
    ``AdamW(alpha=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, wd=1e-4)``;
    states ``mean``, ``var``.

    ::

        eta_t   = alpha / init_alpha                     # float32 (1 unless rescheduled)
        alpha_t = alpha * f32(sqrt(1-b2^t)/(1-b1^t))     # as Adam
        m, v    as Adam
        w = (w - (alpha_t*m)/(sqrt(v) + eps)) - (eta_t*lambda)*w_old

    ``lambda`` = rate for this update (``weight_decay(r)`` before it, else the
    default ``wd``).  The decay uses the pre-update ``w``.  As in Adam, ``eps``
    is added to ``sqrt(v)`` of the *uncorrected* ``v`` (the yaml doc writes
    ``sqrt(v_hat) + eps``; the code scales ``alpha`` instead).  The decay is scaled
    by ``alpha/alpha0`` only, not by ``alpha`` itself (doc: ``eta_t * lambda * w``).

    nnabla: ``src/nbla/solver/generic/adamw.cpp``.
    """

    name = "AdamW"
    state_names = ("mean", "var")
    lr_name = "alpha"
    _hyper = ("alpha", "beta1", "beta2", "eps", "wd")

    def __init__(self, alpha=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, wd=1e-4):
        super().__init__()
        self.alpha = alpha
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.wd = wd
        self.init_alpha = alpha

    def weight_decay_is_fused(self):
        return True

    @property
    def default_weight_decay_rate(self):
        return self.wd

    def _update_one(self, w, g, st, t, wd):
        eta_t = f32(self.alpha) / f32(self.init_alpha)
        alpha_t = f32(self.alpha) * _adam_bias_correction(self.beta1, self.beta2, t)
        m, v = st["mean"], st["var"]
        _moments(m, v, g, self.beta1, self.beta2)
        w[...] = (w - (alpha_t * m) / (np.sqrt(v) + f32(self.eps))) - (eta_t * wd) * w


# --------------------------------------------------------------------------
# 10. SgdW
# --------------------------------------------------------------------------

class SgdW(ReferenceSolver):
    """Momentum SGD with decoupled (fused) weight decay.
    ``SgdW(lr=1e-3, momentum=0.9, wd=1e-4)``; state ``m``.

    ::

        decay = (lr / init_lr) * lambda          # float32 scalar
        m = momentum*m + lr*g
        w = (w - m) - decay*w_old

    ``lambda`` = rate for this update (``weight_decay(r)`` else default ``wd``).
    The decay is scaled by ``lr/lr0`` only (``eta_t`` of the doc), *not* by lr.

    nnabla: ``src/nbla/solver/generic/sgdw.cpp`` (2022 version:
    ``decay_rate = (lr_ / init_lr_) * weight_decay_rate_``).
    """

    name = "SgdW"
    state_names = ("m",)
    _hyper = ("lr", "momentum", "wd")

    def __init__(self, lr=1e-3, momentum=0.9, wd=1e-4):
        super().__init__()
        self.lr = lr
        self.momentum = momentum
        self.wd = wd
        self.init_lr = lr

    def weight_decay_is_fused(self):
        return True

    @property
    def default_weight_decay_rate(self):
        return self.wd

    def _update_one(self, w, g, st, t, wd):
        decay = (f32(self.lr) / f32(self.init_lr)) * wd
        v = st["m"]
        v[...] = f32(self.momentum) * v + f32(self.lr) * g
        w[...] = (w - v) - decay * w


# --------------------------------------------------------------------------
# 11. Adamax
# --------------------------------------------------------------------------

class Adamax(ReferenceSolver):
    """Adamax.  ``Adamax(alpha=2e-3, beta1=0.9, beta2=0.999, eps=1e-8)``;
    states ``m``, ``u``.

    ::

        alpha_t = alpha * f32( 1 / (1 - b1^t) )        # double, f32 beta1
        m = b1*m + (1-b1)*g
        u = max(b2*u, |g|)
        w = w - (alpha_t*m) / (u + eps)

    The code has **no** ``sqrt(1 - b2^t)`` factor although the yaml doc formula
    shows one (the paper's Adamax has none either).

    nnabla: ``src/nbla/solver/generic/adamax.cpp``.
    """

    name = "Adamax"
    state_names = ("m", "u")
    lr_name = "alpha"
    _hyper = ("alpha", "beta1", "beta2", "eps")

    def __init__(self, alpha=2e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__()
        self.alpha = alpha
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.init_alpha = alpha

    def _update_one(self, w, g, st, t, wd):
        b1, b2 = f32(self.beta1), f32(self.beta2)
        alpha_t = f32(self.alpha) * f32(1.0 / (1.0 - _pow_d(b1, t)))
        m, u = st["m"], st["u"]
        m[...] = b1 * m + (ONE - b1) * g
        u[...] = _cmax(b2 * u, np.abs(g))
        w[...] = w - (alpha_t * m) / (u + f32(self.eps))


# --------------------------------------------------------------------------
# 12. AMSGRAD
# --------------------------------------------------------------------------

class AMSGRAD(ReferenceSolver):
    """AMSGrad.  ``AMSGRAD(alpha=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
    bias_correction=False)``; states ``m``, ``v``, ``v_hat``.

    ::

        alpha_t = alpha * (f32(sqrt(1-b2^t)/(1-b1^t)) if bias_correction else 1)
        m, v as Adam
        v_hat = max(v_hat, v)
        w = w - (alpha_t*m) / (sqrt(v_hat) + eps)

    By default (``bias_correction=False``) there is no bias correction at all.

    nnabla: ``src/nbla/solver/generic/amsgrad.cpp``.
    """

    name = "AMSGRAD"
    state_names = ("m", "v", "v_hat")
    lr_name = "alpha"
    _hyper = ("alpha", "beta1", "beta2", "eps", "bias_correction")

    def __init__(self, alpha=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                 bias_correction=False):
        super().__init__()
        self.alpha = alpha
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.bias_correction = bias_correction
        self.init_alpha = alpha

    def _update_one(self, w, g, st, t, wd):
        bc = _adam_bias_correction(self.beta1, self.beta2, t) if self.bias_correction else ONE
        alpha_t = f32(self.alpha) * bc
        m, v, vh = st["m"], st["v"], st["v_hat"]
        _moments(m, v, g, self.beta1, self.beta2)
        vh[...] = _cmax(vh, v)
        w[...] = w - (alpha_t * m) / (np.sqrt(vh) + f32(self.eps))


# --------------------------------------------------------------------------
# 13./14. AdaBound, AMSBound
# --------------------------------------------------------------------------

def _bounded_step(w, m, denom_src, alpha_t, final_lr, gamma, t, eps, amsbound_upper=False):
    """Shared AdaBound/AMSBound element loop (float32)::

        lower = final_lr * (1 - 1/(gamma*t + 1))
        upper = final_lr * (1 + 1/(gamma*t))        # AdaBound
        upper = final_lr * (1 + (1/gamma)*t)        # AMSBound (C++ ``1 / gamma_ * t``)
        eta   = min(upper, max(alpha_t / (sqrt(v) + eps), lower))
        w     = w - eta*m

    ``gamma = 0`` is IEEE float arithmetic, as in the C++: ``1/0 = inf``, so
    ``upper = inf`` and ``lower = 0`` (the step is Adam's/AMSGrad's, clipped at 0 only),
    and ``upper = 0*inf = NaN`` (NaN weights) when ``final_lr`` is 0.  Verified
    against nnabla 1.39: ``AdaBound(gamma=0)`` steps exactly as ``Adam()``.
    """
    g32, t32 = f32(gamma), f32(t)  # float * uint32 -> float
    lower = final_lr * (ONE - ONE / (g32 * t32 + ONE))
    with np.errstate(divide="ignore", invalid="ignore"):
        if amsbound_upper:
            upper = final_lr * (ONE + (ONE / g32) * t32)
        else:
            upper = final_lr * (ONE + ONE / (g32 * t32))
    denom = np.sqrt(denom_src) + f32(eps)
    eta = _cmin(upper, _cmax(alpha_t / denom, lower))
    w[...] = w - eta * m


class AdaBound(ReferenceSolver):
    """AdaBound.  ``AdaBound(alpha=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
    final_lr=0.1, gamma=0.001)``; states ``mean``, ``var``.

    ::

        alpha_t  = alpha * f32(sqrt(1-b2^t)/(1-b1^t))    # as Adam (always corrected)
        final_lr = final_lr0 * (alpha / init_alpha)      # float32: scheduled with alpha
        m, v as Adam
        lower = final_lr * (1 - 1/(gamma*t + 1))
        upper = final_lr * (1 + 1/(gamma*t))
        eta   = min(upper, max(alpha_t/(sqrt(v) + eps), lower))
        w     = w - eta*m

    Note: the code uses ``gamma*t`` where the yaml doc writes ``(1-gamma)*t``
    (the paper's bound functions use ``gamma*t``).  ``final_lr`` *is* rescaled by
    ``alpha / initial alpha`` after ``set_learning_rate``.

    nnabla: ``src/nbla/solver/generic/adabound.cpp``.
    """

    name = "AdaBound"
    state_names = ("mean", "var")
    lr_name = "alpha"
    _hyper = ("alpha", "beta1", "beta2", "eps", "final_lr", "gamma")

    def __init__(self, alpha=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                 final_lr=0.1, gamma=0.001):
        super().__init__()
        self.alpha = alpha
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.final_lr = final_lr
        self.gamma = gamma
        self.init_alpha = alpha

    def _update_one(self, w, g, st, t, wd):
        alpha_t = f32(self.alpha) * _adam_bias_correction(self.beta1, self.beta2, t)
        final_lr = f32(self.final_lr) * (f32(self.alpha) / f32(self.init_alpha))
        m, v = st["mean"], st["var"]
        _moments(m, v, g, self.beta1, self.beta2)
        _bounded_step(w, m, v, alpha_t, final_lr, self.gamma, t, self.eps)


class AMSBound(ReferenceSolver):
    """AMSBound.  ``AMSBound(alpha=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
    final_lr=0.1, gamma=0.001, bias_correction=False)``; states ``m``, ``v``, ``v_hat``.

    As AdaBound but with ``v_hat = max(v_hat, v)`` in the denominator, the
    Adam bias correction of ``alpha_t`` applied only if ``bias_correction``, and
    a *different upper bound* (the C++ writes ``1 / gamma_ * t``, which parses as
    ``(1/gamma)*t``, so the upper bound grows with ``t`` instead of shrinking
    towards ``final_lr``; verified bit for bit against nnabla 1.39)::

        alpha_t  = alpha * (f32(sqrt(1-b2^t)/(1-b1^t)) if bias_correction else 1)
        final_lr = final_lr0 * (alpha / init_alpha)      # float32
        m, v as Adam;  v_hat = max(v_hat, v)
        lower = final_lr * (1 - 1/(gamma*t + 1))
        upper = final_lr * (1 + (1/gamma)*t)             # NOT 1 + 1/(gamma*t)
        eta   = min(upper, max(alpha_t/(sqrt(v_hat) + eps), lower))
        w     = w - eta*m

    With the default ``gamma=0.001`` both bound forms are huge early on, so the
    difference only shows with larger ``gamma``/small ``alpha/final_lr`` ratios.

    nnabla: ``src/nbla/solver/generic/amsbound.cpp``.
    """

    name = "AMSBound"
    state_names = ("m", "v", "v_hat")
    lr_name = "alpha"
    _hyper = ("alpha", "beta1", "beta2", "eps", "final_lr", "gamma", "bias_correction")

    def __init__(self, alpha=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                 final_lr=0.1, gamma=0.001, bias_correction=False):
        super().__init__()
        self.alpha = alpha
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.final_lr = final_lr
        self.gamma = gamma
        self.bias_correction = bias_correction
        self.init_alpha = alpha

    def _update_one(self, w, g, st, t, wd):
        bc = _adam_bias_correction(self.beta1, self.beta2, t) if self.bias_correction else ONE
        alpha_t = f32(self.alpha) * bc
        final_lr = f32(self.final_lr) * (f32(self.alpha) / f32(self.init_alpha))
        m, v, vh = st["m"], st["v"], st["v_hat"]
        _moments(m, v, g, self.beta1, self.beta2)
        vh[...] = _cmax(vh, v)
        _bounded_step(w, m, vh, alpha_t, final_lr, self.gamma, t, self.eps,
                      amsbound_upper=True)


# --------------------------------------------------------------------------
# 15. AdaBelief
# --------------------------------------------------------------------------

class AdaBelief(ReferenceSolver):
    """AdaBelief.  ``AdaBelief(alpha=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, wd=0.0,
    amsgrad=False, weight_decouple=False, fixed_decay=False, rectify=False)``;
    states ``mean``, ``var`` (+ ``s_max`` when ``amsgrad=True``).

    Scalars per update (``t`` already incremented)::

        beta1_t = f32(b1^t);  beta2_t = f32(b2^t)                 # double pow
        bc1 = f32(1.0 - beta1_t);  bc2 = f32(sqrt(1.0 - beta2_t))  # double
        r_t = 1, rho_t = 0                                         # float32
        if rectify:
            rho_inf = 2/(1 - b2) - 1                               # double
            rho_t   = f32(rho_inf - 2*t*beta2_t/(1 - beta2_t))
            r_t     = f32(sqrt((rho_t-4)(rho_t-2)rho_inf / ((rho_inf-4)(rho_inf-2)rho_t)))
        sgd     = rectify and rho_t <= 4
        alpha_t = alpha if sgd else (alpha*r_t)/bc1                 # float32
        decay   = lambda if fixed_decay else lambda*alpha           # float32

    Per element (float32 unless noted)::

        m = b1*m + (1-b1)*g
        s = f32( double(b2*s) + double(1-b2) * double(g-m)^2 )     # std::pow -> double
        if weight_decouple: w = w - w*decay
        if amsgrad: s_max = max(s_max, s); s_max = s_max + eps
        else:       s = s + eps                                    # eps accumulates in the state
        if sgd:  w = w - alpha_t*m
        else:    w = w - (alpha_t*m) / (sqrt(s_max or s)/bc2 + eps)

    ``lambda``: when ``weight_decouple=True`` the solver is fused and ``lambda`` is
    the rate for this update (``weight_decay(r)`` else the default ``wd``); when
    ``weight_decouple=False`` no decay happens inside the update (coupled
    ``weight_decay(r)`` adds ``r*w`` to ``g`` beforehand as for Adam), and
    ``fixed_decay`` has no effect.  ``rectify`` gives the RAdam variant (SGD-style
    steps with the bias-uncorrected ``alpha`` while ``rho_t <= 4``, i.e. the first
    ~4 steps with the default betas).

    nnabla: ``src/nbla/solver/generic/adabelief.cpp``.
    """

    name = "AdaBelief"
    state_names = ("mean", "var")
    lr_name = "alpha"
    _hyper = ("alpha", "beta1", "beta2", "eps", "wd", "amsgrad",
              "weight_decouple", "fixed_decay", "rectify")

    def __init__(self, alpha=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, wd=0.0,
                 amsgrad=False, weight_decouple=False, fixed_decay=False,
                 rectify=False):
        super().__init__()
        self.alpha = alpha
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.wd = wd
        self.amsgrad = amsgrad
        self.weight_decouple = weight_decouple
        self.fixed_decay = fixed_decay
        self.rectify = rectify
        self.init_alpha = alpha
        # nnabla creates "s_max" only when amsgrad=True.
        self.state_names = ("mean", "var", "s_max") if amsgrad else ("mean", "var")

    def weight_decay_is_fused(self):
        return bool(self.weight_decouple)

    @property
    def default_weight_decay_rate(self):
        return self.wd if self.weight_decouple else 0.0

    def _update_one(self, w, g, st, t, wd):
        b1, b2 = f32(self.beta1), f32(self.beta2)
        alpha, eps = f32(self.alpha), f32(self.eps)
        beta1_t = f32(_pow_d(b1, t))
        beta2_t = f32(_pow_d(b2, t))
        bc1 = f32(1.0 - float(beta1_t))
        bc2 = f32(math.sqrt(1.0 - float(beta2_t)))
        r_t = F32(1.0)
        rho_t = F32(0.0)
        if self.rectify:
            rho_inf = 2.0 / (1.0 - float(b2)) - 1.0
            rho_t = f32(rho_inf - 2.0 * t * float(beta2_t) / (1.0 - float(beta2_t)))
            num = (float(rho_t) - 4.0) * (float(rho_t) - 2.0) * rho_inf
            den = (rho_inf - 4.0) * (rho_inf - 2.0) * float(rho_t)
            ratio = num / den if den != 0.0 else math.nan
            r_t = f32(math.sqrt(ratio)) if ratio >= 0.0 else F32(np.nan)
        sgd_update = bool(self.rectify and float(rho_t) <= 4.0)
        alpha_t = alpha if sgd_update else (alpha * r_t) / bc1
        decay_ratio = wd if self.fixed_decay else wd * alpha
        if not self.weight_decouple:
            decay_ratio = None

        m, s = st["mean"], st["var"]
        m[...] = b1 * m + (ONE - b1) * g
        diff = (g - m).astype(np.float64)
        s[...] = ((b2 * s).astype(np.float64)
                  + float(ONE - b2) * (diff * diff)).astype(np.float32)
        if decay_ratio is not None:
            w[...] = w - w * decay_ratio
        if self.amsgrad:
            smax = st["s_max"]
            smax[...] = _cmax(smax, s)
            smax[...] = smax + eps
            s_t = smax
        else:
            s[...] = s + eps
            s_t = s
        if sgd_update:
            w[...] = w - alpha_t * m
        else:
            w[...] = w - (alpha_t * m) / (np.sqrt(s_t) / bc2 + eps)


# --------------------------------------------------------------------------
# 16. Lamb
# --------------------------------------------------------------------------

class Lamb(ReferenceSolver):
    """LAMB.  ``Lamb(eta=1e-3, beta1=0.9, beta2=0.999, gamma_l=0.0, gamma_u=10.0,
    eps=1e-6, bias_correction=False)``; states ``mean``, ``var``.  Fused decay
    (default rate 0: Lamb has no ``wd`` argument; use ``weight_decay(r)``).

    ::

        c1 = f32(1 - b1^t) if bias_correction else 1     # double pow, f32
        c2 = f32(1 - b2^t) if bias_correction else 1
        m = b1*m + (1-b1)*g
        v = b2*v + ((1-b2)*g)*g
        r = (m/c1) / (sqrt(v/c2) + eps) + lambda*w_old   # float32 array
        g_norm = sqrt(sum_seq(r*r));  w_norm = sqrt(sum_seq(w_old*w_old))   # float32
        phi    = min(max(w_norm, gamma_l), gamma_u)      # clamp (l then u)
        local_lr = phi / g_norm  if g_norm > eps else 1.0    # float32 ratio, held as double
        w = f32( double(w) - (double(eta)*local_lr) * double(r) )   # in double

    The trust ratio is ``phi(||w||)/||r + lambda w||``; the final multiply-subtract
    is done in double (``local_lr`` is ``auto local_lr = 1.0``, a double) and
    rounded once to float32.  Norms are per parameter.

    nnabla: ``src/nbla/solver/generic/lamb.cpp`` (2022).
    """

    name = "Lamb"
    state_names = ("mean", "var")
    lr_name = "eta"
    _hyper = ("eta", "beta1", "beta2", "gamma_l", "gamma_u", "eps", "bias_correction")

    def __init__(self, eta=1e-3, beta1=0.9, beta2=0.999, gamma_l=0.0, gamma_u=10.0,
                 eps=1e-6, bias_correction=False):
        super().__init__()
        self.eta = eta
        self.beta1 = beta1
        self.beta2 = beta2
        self.gamma_l = gamma_l
        self.gamma_u = gamma_u
        self.eps = eps
        self.bias_correction = bias_correction
        self.init_eta = eta

    def weight_decay_is_fused(self):
        return True

    def _update_one(self, w, g, st, t, wd):
        b1, b2 = f32(self.beta1), f32(self.beta2)
        eps = f32(self.eps)
        if self.bias_correction:
            c1 = f32(1.0 - _pow_d(b1, t))
            c2 = f32(1.0 - _pow_d(b2, t))
        else:
            c1 = c2 = ONE
        m, v = st["mean"], st["var"]
        m[...] = b1 * m + (ONE - b1) * g
        v[...] = b2 * v + ((ONE - b2) * g) * g
        r = (m / c1) / (np.sqrt(v / c2) + eps)
        r = r + wd * w
        g_norm = np.sqrt(_seq_sumsq(r), dtype=np.float32)
        v_norm = np.sqrt(_seq_sumsq(w), dtype=np.float32)
        if v_norm < f32(self.gamma_l):
            v_norm = f32(self.gamma_l)
        if v_norm > f32(self.gamma_u):
            v_norm = f32(self.gamma_u)
        local_lr = 1.0
        if g_norm > eps:
            local_lr = float(F32(v_norm / g_norm))
        coef = float(f32(self.eta)) * local_lr
        w[...] = (w.astype(np.float64) - coef * r.astype(np.float64)).astype(np.float32)


# --------------------------------------------------------------------------
# 17. Lars
# --------------------------------------------------------------------------

class Lars(ReferenceSolver):
    """LARS with momentum.  ``Lars(lr=1e-3, momentum=0.9, coefficient=0.001, eps=1e-6)``;
    state ``v``.  Fused decay (default rate 0: no ``wd`` argument; the rate
    ``beta`` comes from ``weight_decay(r)``).

    ::

        g_norm = sqrt(sum_seq(g*g));  d_norm = sqrt(sum_seq(w*w))   # float32
        x = g_norm + beta*d_norm;  if x < eps: x = x + eps
        lr_local = lr if d_norm < eps else ((lr*coefficient)*d_norm)/x   # float32
        g = g + beta*w            # *in place on the gradient*, like nnabla's CPU kernel
        v = momentum*v + lr_local*g
        w = w - v

    i.e. ``lambda = coefficient*||w||/(||g|| + beta*||w||)`` (doc:
    ``||g|| + ||beta w||``), ``v <- m v + lr*lambda*(g + beta w)``.  ``eps`` is
    only used for the two guards above.  The gradient array passed in is left
    holding ``g + beta*w`` after the update (nnabla 1.39 CPU does the same to
    ``param.g``).

    nnabla: ``src/nbla/solver/generic/lars.cpp``.
    """

    name = "Lars"
    state_names = ("v",)
    _hyper = ("lr", "momentum", "coefficient", "eps")

    def __init__(self, lr=1e-3, momentum=0.9, coefficient=0.001, eps=1e-6):
        super().__init__()
        self.lr = lr
        self.momentum = momentum
        self.coefficient = coefficient
        self.eps = eps
        self.init_lr = lr

    def weight_decay_is_fused(self):
        return True

    def _update_one(self, w, g, st, t, wd):
        eps = f32(self.eps)
        lr = f32(self.lr)
        g_norm = np.sqrt(_seq_sumsq(g), dtype=np.float32)
        d_norm = np.sqrt(_seq_sumsq(w), dtype=np.float32)
        x = g_norm + wd * d_norm
        if not x >= 0:
            raise ValueError("local learning rate should be positive or zero.")
        if x < eps:
            x = x + eps
        if d_norm < eps:
            lr_local = lr
        else:
            lr_local = ((lr * f32(self.coefficient)) * d_norm) / x
        g[...] = g + wd * w
        v = st["v"]
        v[...] = f32(self.momentum) * v + lr_local * g
        w[...] = w - v


# --------------------------------------------------------------------------
# 18. Lion
# --------------------------------------------------------------------------

class Lion(ReferenceSolver):
    """Lion.  ``Lion(lr=1e-4, beta1=0.9, beta2=0.99)``; state ``m``.  Fused decay
    (default rate 0: no ``wd`` argument; ``lambda`` comes from ``weight_decay(r)``).

    Per element, with ``lerp(a, b, s) = a + s*(b - a)`` in float32::

        u = sign(lerp(g, m, beta1))          # = sign(beta1*m + (1-beta1)*g); sign(0)=0
        m = lerp(g, m, beta2)                # = beta2*m + (1-beta2)*g
        w = w - lr*(u + lambda*w_old)

    The decay is ``lr*lambda*w`` (scaled by the *current* lr, not lr/lr0).

    nnabla: ``src/nbla/solver/generic/lion.cpp`` (2023).
    """

    name = "Lion"
    state_names = ("m",)
    _hyper = ("lr", "beta1", "beta2")

    def __init__(self, lr=1e-4, beta1=0.9, beta2=0.99):
        super().__init__()
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.init_lr = lr

    def weight_decay_is_fused(self):
        return True

    def _update_one(self, w, g, st, t, wd):
        m = st["m"]
        c = g + f32(self.beta1) * (m - g)
        u = ((c > 0).astype(np.int8) - (c < 0).astype(np.int8)).astype(np.float32)
        m[...] = g + f32(self.beta2) * (m - g)
        w[...] = w - f32(self.lr) * (u + wd * w)


SOLVERS = {
    "Sgd": Sgd,
    "Momentum": Momentum,
    "Nesterov": Nesterov,
    "Adagrad": Adagrad,
    "Adadelta": Adadelta,
    "RMSprop": RMSprop,
    "RMSpropGraves": RMSpropGraves,
    "Adam": Adam,
    "AdamW": AdamW,
    "SgdW": SgdW,
    "Adamax": Adamax,
    "AMSGRAD": AMSGRAD,
    "AdaBound": AdaBound,
    "AMSBound": AMSBound,
    "AdaBelief": AdaBelief,
    "Lamb": Lamb,
    "Lars": Lars,
    "Lion": Lion,
}


if __name__ == "__main__":
    # Tiny self-check: 5 steps of every solver (defaults) on random float32 data,
    # with nnabla's canonical loop order weight_decay -> clip_grad_by_norm -> update.
    for i, (sname, cls) in enumerate(SOLVERS.items()):
        rng = np.random.RandomState(i)
        opt = cls()
        params = {"W": rng.randn(4, 3).astype(np.float32),
                  "b": rng.randn(3).astype(np.float32)}
        opt.set_parameters(params)
        for _ in range(5):
            grads = {k: rng.randn(*v.shape).astype(np.float32) for k, v in params.items()}
            opt.weight_decay(grads, 1e-4)   # coupled: g += 1e-4*w; fused: rate for this update
            opt.clip_grad_by_norm(grads, 10.0)
            opt.update(grads)
        assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in params.values())
        norms = ", ".join(f"|{k}|={float(np.linalg.norm(v)):.7f}" for k, v in params.items())
        fused = opt.weight_decay_is_fused()
        print(f"{sname:14s} t={opt.states['W']['t']}  fused={fused!s:5s}  {norms}")
