"""Float32 precision of every elementwise function, forward and gradient, far into the tails.

Each function is compiled in float32 (as nnabla runs) and evaluated on float32 inputs
log-spaced over +-[1e-6, 100] plus 0 and a few tail points (within its domain); the
reference is NumPy in float64 on the same (exact) float32 inputs. The criterion:

* where the reference is a normal float32 number: relative error <= `rtol` (a few
  float32 ulps by default, `ULPS` * EPS, EPS = 2**-23 the spacing of floats at 1);
* where it is below float32's smallest normal number TINY: absolute error <= TINY (an
  underflow to 0 or to a subnormal is as good as float32 gets);
* infinities exactly where the reference overflows float32; NaN nowhere; and no
  "overflow"/"invalid"/"divide by zero" warning from NumPy where the reference is finite.

A few results cannot meet it and get an explicit extra absolute bound `atol` (an array,
per element), each justified where it is declared: a derivative computed as 1 - f**2
(tanh) or f*(1 - f) (sigmoid), whose cancellation leaves absolute precision, as in
nnabla; cross entropies whose formulas subtract nearly equal terms, as nnabla's do;
softplus with beta not a power of 2, whose rounded beta*x its condition number
amplifies; pow2's derivatives, which reuse the forward value x0**x1 where it has
overflowed or underflowed; gelu's 1 + tanh(u), sinc's derivative (x cos(x) - sin(x))/x**2
and epsilon_insensitive_loss's |x0 - x1| - epsilon, which cancel, as nnabla's do.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import sympy
from sympy.core.parameters import distribute

import symcompile as nn
import symcompile.functions as F
from symcompile.ops import sympy_functions as E
from symcompile.ops.elementwise import OPS as ELEMENTWISE_OPS

F32 = np.finfo(np.float32)
EPS = float(F32.eps)  # 2**-23: one ulp of 1; one ulp is between EPS/2 and EPS relative
TINY = float(F32.tiny)  # smallest normal float32, 1.18e-38
# A float64 reference at least this large rounds to inf in float32.
OVERFLOW = float(F32.max) * (1 + 2.0**-24)
ULPS = 4  # the default relative bound, in units of EPS (4.8e-7)

# --- inputs --------------------------------------------------------------------------------

# Points where some function changes regime (sigmoid's normal-range end -87.3 and exp's
# overflow at 88.72, float32's tanh = 1 from 9, sigmoid = 1 from 17, ...), both signs.
TAILS = (0.5, 1.0, 2.0, 9.0, 17.0, 20.0, 50.0, 87.3, 88.7, 88.73, 89.0, 100.0)


def magnitudes(n: int = 161, low: float = 1e-6, high: float = 100.0) -> np.ndarray:
    return np.geomspace(low, high, n)


def signed(n: int = 161) -> np.ndarray:
    """+-[1e-6, 100] log-spaced, the tail points, and 0, as float32."""
    m = np.concatenate([magnitudes(n), TAILS])
    return np.unique(np.concatenate([-m, [0.0], m]).astype(np.float32))


def positive(n: int = 161, low: float = 1e-6) -> np.ndarray:
    return np.unique(np.concatenate([magnitudes(n, low), TAILS]).astype(np.float32))


def nonzero(n: int = 161) -> np.ndarray:
    x = signed(n)
    return x[x != 0]


def probabilities(n: int = 80) -> np.ndarray:
    """(0, 1), log-spaced towards both ends (1e-6 ... 0.5 ... 1 - 6e-8, float32's last
    number below 1) and towards 1/2, where log(x) and log(1 - x) cancel."""
    near_zero = np.geomspace(1e-6, 0.5, n)
    near_one = 1 - np.geomspace(2.0**-24, 0.5, n)
    near_half = 0.5 + np.array([-1.0, 1.0]) * np.geomspace(1e-7, 0.1, 20)[:, None]
    return np.unique(np.concatenate([near_zero, near_one, near_half.ravel()]).astype(np.float32))


def open_unit(n: int = 80) -> np.ndarray:
    """(-1, 1): 0, +-[1e-6, 1/2] log-spaced, and towards +-1 down to float32's last number
    below 1 (1 - 6e-8), where asin and atanh steepen."""
    m = np.concatenate([np.geomspace(1e-6, 0.5, n), 1 - np.geomspace(2.0**-24, 0.5, n)])
    return np.unique(np.concatenate([-m, [0.0], m]).astype(np.float32))


def above_one(n: int = 80) -> np.ndarray:
    """(1, 100]: from float32's first number above 1 (1 + 1.2e-7), log-spaced away from 1,
    and the tail points; acosh's domain without its end, where the slope is infinite."""
    x = np.concatenate([1 + np.geomspace(2.0**-23, 1.0, n), positive(n)]).astype(np.float32)
    return np.unique(x[x > 1])


def pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every combination of a value of `a` with one of `b`, as two flat arrays."""
    x0, x1 = np.meshgrid(a, b, indexing="ij")
    return x0.ravel(), x1.ravel()


def binary_signed() -> tuple[np.ndarray, np.ndarray]:
    return pairs(signed(41), signed(41))


def f32(value: float) -> float:
    """A scalar as the generated code uses it: rounded to float32 (nnabla casts its scalar
    arguments to the array's type too)."""
    return float(np.float32(value))


# --- float64 references --------------------------------------------------------------------

def sigmoid64(x):
    return np.exp(-np.logaddexp(0.0, -x))


def softplus64(x):
    return np.logaddexp(0.0, x)


def ones(*xs):
    return np.ones_like(xs[0])


def zeros(*xs):
    return np.zeros_like(xs[0])


def mask(condition):
    return np.where(condition, 1.0, 0.0)


# --- the cases -----------------------------------------------------------------------------

Array = np.ndarray


@dataclass
class Case:
    """One function: how to build it, its inputs, and its float64 reference.

    `gradients[i]` is d output / d input i elementwise (None: the input is a constant, e.g.
    labels). `atol` / `grad_atol[i]` are extra absolute errors allowed, as functions of the
    float64 inputs, each justified where a case uses it; so is `grad_may_overflow`.
    """

    name: str
    build: Callable
    inputs: tuple[Array, ...]
    forward: Callable
    gradients: tuple[Callable | None, ...]
    rtol: float = ULPS * EPS
    grad_rtol: float = ULPS * EPS
    atol: Callable | None = None
    grad_atol: tuple[Callable | None, ...] = ()
    grad_may_overflow: Callable | None = None  # where the gradient may be infinite anyway

    def __str__(self) -> str:
        return self.name


def unary(name, build, forward, gradient, inputs=None, **kw) -> Case:
    return Case(name, build, (signed() if inputs is None else inputs,), forward, (gradient,),
                **kw)


def binary(name, build, forward, g0, g1, inputs=None, **kw) -> Case:
    return Case(name, build, binary_signed() if inputs is None else inputs, forward, (g0, g1),
                **kw)


def tanh_grad_atol(x):
    # 1 - tanh(x)**2 subtracts from 1 a square that tends to 1: tanh's own rounding (1 ulp
    # of a number near 1) leaves the difference 2 ulps of 1 in absolute terms, whatever its
    # size; from |x| = 10 on NumPy's float32 tanh is 1 and the derivative 0 (the true one
    # is below 1e-8). nnabla computes dy*(1 - y**2) the same way.
    return 2 * EPS * np.tanh(x) ** 2


def sigmoid_tail_atol(x):
    # swish and mish multiply x by the sigmoid (or by what the sigmoid bounds), which
    # symcompile keeps at or above 3e-39 below x = -87.3 (see elementwise.log: below it
    # float32 is subnormal); times x that is a normal number, -2.9e-37 at x = -100 where
    # the true value is -3.7e-42. Both are far below anything a network computes with.
    return np.where(x < -87, 4e-39 * np.abs(x), 0.0)


def swish_grad_atol(x):
    # The derivative adds the sigmoid (or tanh(softplus)) and x * sigmoid(x) * (...), each
    # with a relative error of a few EPS: near x = -1.3 they cancel (the sum is 0.004),
    # and for large x, 1 - sigmoid(x) keeps only its absolute precision, times x. Both
    # leave an absolute error within 2 EPS * |x| * sigmoid(x); plus the tail above.
    return sigmoid_tail_atol(x) + 2 * EPS * np.abs(x) * sigmoid64(x)


def sigmoid_grad_atol(x):
    # y*(1 - y) reuses the forward value y (by design: no second exp): for x > 0, y is
    # near 1 and 1 - y keeps only its absolute precision, about EPS/2 (from x = 16.6 on y
    # is 1 and the derivative 0, the true one being below 6e-8). For x <= 0, 1 - y is
    # near 1 and the product keeps its relative precision. nnabla: dy*y*(1 - y).
    return np.where(x > 0, EPS, 0.0)


def softplus_condition(z):
    """Relative error of softplus(z) per relative error of z (its condition number; that
    of sigmoid(z) is no larger): for z near -87 the result is about exp(z), whose relative
    error is |z| times z's."""
    return np.abs(z) * sigmoid64(z) / np.maximum(softplus64(z), 1e-300)


def pow_overflows(x0, x1):
    # The derivatives of y = x0**x1 reuse its value (y*x1/x0 and log(x0)*y, as SymPy's
    # common subexpressions make them; nnabla computes x1*x0**(x1 - 1) afresh): where y
    # overflows float32 they are infinite, also where x1/x0 < 1 makes the true d/dx0
    # finite (just below float32's largest number: 87.3**20*20/87.3 = 1.5e38)...
    return np.abs(x0**x1) >= OVERFLOW


SUBNORMAL_SPACING = 2.0**-149  # the absolute precision of float32 numbers below TINY


def pow_grad_atol(factor):
    # ... and where y underflows to a subnormal number it keeps only float32's absolute
    # precision there, which the derivatives multiply by x1/x0 (up to 1e8 here) or log(x0)
    # into the normal range: 3.98e-5**9 = 2.5e-40 has 5 digits, so has its d/dx0 5.7e-35.
    def atol(x0, x1):
        return np.where(np.abs(x0**x1) < TINY, SUBNORMAL_SPACING * np.abs(factor(x0, x1)), 0)
    return atol


def asin_grad_atol(x):
    # 1/sqrt(1 - x**2), SymPy's derivative of asin (and, negated, of acos), subtracts
    # from 1 the square x**2, rounded by up to EPS/2 * x**2; near |x| = 1, where 1 - x**2
    # is small, that is a large part of it: at x = 0.99984 the slope is 4e-5 off. Its
    # relative error is half that of 1 - x**2. nnabla computes dy/sqrt(1 - x*x) the same
    # way; sqrt((1 - x)*(1 + x)) would be accurate.
    return EPS / 4 * x**2 / np.sqrt((1 - x) * (1 + x)) ** 3


def atanh_grad_atol(x):
    # 1/(1 - x**2): the rounding of x**2 as above, with the full relative error of
    # 1 - x**2. nnabla computes dy/(1 - x*x) the same way.
    return EPS / 2 * x**2 / ((1 - x) * (1 + x)) ** 2


def sce_atol(x, t):
    # softplus(x) - t*x, the formula nnabla differentiates: with t = 1 and x > 0 the
    # loss softplus(-x) is the difference of two numbers near x, so its error is that of
    # softplus(x), a few ulps of x (softplus(20) - 20 is 0, the true value 2e-9). nnabla's
    # forward, -x*(t - (x >= 0)) + log(1 + exp(-|x|)), is no better there (1 + 2e-9 is 1).
    return np.where((t != 0) & (x > 0), 2 * EPS * np.abs(x), 0.0)


def sce_grad_atol(x, t):
    # sigmoid(x) - t: for t = 1 and x > 0, sigmoid(x) is near 1 (see sigmoid_grad_atol).
    return np.where((t != 0) & (x > 0), EPS, 0.0)


def bce_atol(x, t):
    # -(t*log(x) + (1 - t)*log(1 - x)): 1 - x is rounded to float32 (by up to 2**-25 for
    # x < 1/2), so log(1 - x) ~ -x is only absolutely accurate, to about EPS/2: for
    # x < 6e-8 it is 0. nnabla computes log(max(1 - x, eps)) the same way.
    return (1 - t) * EPS


def bce_grad0_atol(x, t):
    # -t/x + (1 - t)/(1 - x): the two terms cancel where x is near t; each is accurate to
    # a few ulps of itself.
    return ULPS * EPS * (t / x + (1 - t) / (1 - x))


def bce_grad1_atol(x, t):
    # log(1 - x) - log(x): the terms cancel near x = 1/2, and log(1 - x) is only absolutely
    # accurate (see bce_atol).
    return ULPS * EPS * (np.abs(np.log(x)) + np.abs(np.log1p(-x)) + 1)


def sigmoid_bce_grad_atol(x, t):
    # -t*sigmoid(-x) + (1 - t)*sigmoid(x) cancels where sigmoid(x) is near t (0 < t < 1):
    # each term is accurate to a few ulps of itself.
    return ULPS * EPS * (t * sigmoid64(-x) + (1 - t) * sigmoid64(x))


SELU_SCALE, SELU_ALPHA = 1.05070098735548, 1.673263242354377  # nnabla's defaults


def gelu_inner(x):
    return np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)


def gelu64(x):
    # x/2*(1 + tanh(u)) = x*sigmoid(2u): no cancellation in the float64 reference
    return x * sigmoid64(2 * gelu_inner(x))


def gelu_grad64(x):
    u = gelu_inner(x)
    du = np.sqrt(2 / np.pi) * (1 + 3 * 0.044715 * x**2)
    return sigmoid64(2 * u) + x * 2 * sigmoid64(2 * u) * sigmoid64(-2 * u) * du


def sinc_grad64(x):
    # (x cos(x) - sin(x))/x**2, by its series near 0, where it cancels
    small = np.abs(x) < 0.1
    xs, safe = np.where(small, x, 0.0), np.where(small, 1.0, x)
    series = -xs / 3 + xs**3 / 30 - xs**5 / 840 + xs**7 / 45360
    return np.where(small, series, (safe * np.cos(safe) - np.sin(safe)) / safe**2)


def sinc64(x):
    safe = np.where(x == 0, 1.0, x)
    return np.where(x == 0, 1.0, np.sin(safe) / safe)


def round64(x):
    """Halves away from zero (exact in float64 for float32 x)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def truth(x):
    return mask(x != 0)


def away_from(x, jumps, gap=1e-4):
    """`x` without the values within a relative `gap` of a jump point (of 0: 0 itself),
    far more than a float32 rounding (6e-8) could move them."""
    jumps = np.asarray(jumps, dtype=np.float64)[:, None]
    near = np.abs(x.astype(np.float64) - jumps) <= gap * np.abs(jumps)
    return x[~near.any(axis=0)]


def with_specials(x, *specials):
    return np.concatenate([x, np.float32(specials)])


def gelu_atol(x):
    # x/2*(1 + tanh(u)), nnabla's formula (its GELU is this tanh form): for x < 0, tanh(u)
    # is near -1 and 1 + tanh(u) keeps only its absolute precision, about an ulp of 1
    # (EPS/2 ... EPS), which x/2 scales; from x = -5.42 on it is 0 (the true value is
    # 1.1e-8 there). x*sigmoid(2u) would be accurate (see the printer's sigmoid).
    return np.where(x < 0, EPS * np.abs(x), 0.0)


def gelu_grad_atol(x):
    # (1 + tanh(u))/2 + x/2*(1 - tanh(u)**2)*u', as SymPy differentiates nnabla's formula
    # (nnabla's backward computes the same two terms): the first cancels for x < 0 as
    # above, the second's 1 - tanh(u)**2 is only absolutely accurate (tanh_grad_atol),
    # which x/2*u' scales.
    u = gelu_inner(x)
    du = np.sqrt(2 / np.pi) * (1 + 3 * 0.044715 * x**2)
    return np.where(x < 0, EPS / 2, 0.0) + tanh_grad_atol(u) * np.abs(x) / 2 * du


def sinc_grad_atol(x):
    # (x cos(x) - sin(x))/x**2, as nnabla computes it: the two terms, each accurate to a
    # few ulps of itself, cancel towards x = 0 (where the difference is -x**3/3) and near
    # the zeros of the slope; the division by x**2 scales their error up, to 4.5 times
    # the true slope at x = 2.5e-4 (below 2.44e-4 float32's cos(x) is 1 and sin(x) is x,
    # and the slope 0).
    safe = np.where(x == 0, 1.0, x)
    return np.where(x == 0, 0.0,
                    ULPS * EPS * (np.abs(safe * np.cos(safe)) + np.abs(np.sin(safe))) / safe**2)


def erf64(x):
    return np.vectorize(math.erf)(x)


def erf_grad_atol(x):
    # 2/sqrt(pi) exp(-x**2), as nnabla computes it: x**2 is rounded (by up to EPS/2 of
    # itself), which exp turns into a relative error of x**2 * EPS/2 (40 ulps at x = 9,
    # where the slope is 1e-35)
    return EPS / 2 * x**2 * 2 / np.sqrt(np.pi) * np.exp(-(x**2))


def eil_atol(a, b):
    # |x0 - x1| - epsilon, as nnabla computes it: x0 - x1 is rounded (by up to EPS/2 of
    # itself), and subtracting epsilon leaves that in absolute terms where |x0 - x1| is
    # near epsilon.
    return EPS / 2 * np.abs(a - b)


P, Q = pairs(positive(41), signed(41))  # pow2: a positive base, any exponent
LABELS = (np.repeat(signed(), 2), np.tile(np.float32([0, 1]), signed().size))
TARGETS = pairs(probabilities(), np.float32([0, 0.25, 0.5, 1]))
SIGMOID_TARGETS = pairs(signed(), np.float32([0, 0.25, 1]))
# atan2 everywhere but at (0, 0), where its slope is 0/0
ATAN2_POINTS = tuple(x[(P0 != 0) | (P1 != 0)] for P0, P1 in [binary_signed()] for x in (P0, P1))

# where: a condition of zeros and non-zeros (of either sign) along the pairs
WHERE_POINTS = (np.resize(np.float32([0, 1, -2.5, 0, 1e-6]), binary_signed()[0].size),
                *binary_signed())
# epsilon_insensitive_loss, epsilon 0.5: pairs whose |x0 - x1| is not near 0.5, where the
# rounding of x0 - x1 could move it across the kink
EIL_POINTS = tuple(x[np.abs(np.abs(B0.astype(np.float64) - B1) - 0.5) > 1e-3]
                   for B0, B1 in [binary_signed()] for x in (B0, B1))

CASES = [
    # --- activations and maths
    unary("tanh", F.tanh, np.tanh, lambda x: 1 - np.tanh(x) ** 2,
          grad_atol=(tanh_grad_atol,)),
    unary("sigmoid", F.sigmoid, sigmoid64, lambda x: sigmoid64(x) * sigmoid64(-x),
          grad_atol=(sigmoid_grad_atol,)),
    unary("relu", F.relu, lambda x: np.maximum(x, 0), lambda x: mask(x > 0), rtol=0,
          grad_rtol=0),
    unary("leaky_relu", F.leaky_relu, lambda x: np.where(x > 0, x, 0.1 * x),
          lambda x: np.where(x > 0, 1, 0.1)),
    unary("leaky_relu 0.3", lambda x: F.leaky_relu(x, alpha=0.3),
          lambda x: np.where(x > 0, x, 0.3 * x), lambda x: np.where(x > 0, 1, 0.3)),
    unary("elu", F.elu, lambda x: np.where(x >= 0, x, np.expm1(x)),
          lambda x: np.where(x >= 0, 1, np.exp(x))),
    unary("elu 0.5", lambda x: F.elu(x, alpha=0.5),
          lambda x: np.where(x >= 0, x, 0.5 * np.expm1(x)),
          lambda x: np.where(x >= 0, 1, 0.5 * np.exp(x))),
    unary("softplus", F.softplus, softplus64, sigmoid64),
    unary("softplus beta 2", lambda x: F.softplus(x, beta=2.0),
          lambda x: softplus64(2 * x) / 2, lambda x: sigmoid64(2 * x)),
    # beta*x is rounded to float32 (by up to EPS/2 relative), and softplus and its
    # derivative, about exp(3x) in the negative tail, multiply that by their condition
    # number (|3x|, up to 87 before they underflow), as nnabla's log(1 + exp(beta*x))/beta
    # does; only a product in higher precision would avoid it. (With beta a power of 2, as
    # above, beta*x is exact and the strict bound holds.)
    unary("softplus beta 3", lambda x: F.softplus(x, beta=3.0),
          lambda x: softplus64(3 * x) / 3, lambda x: sigmoid64(3 * x),
          atol=lambda x: EPS / 2 * softplus_condition(3 * x) * softplus64(3 * x) / 3,
          grad_atol=(lambda x: EPS / 2 * softplus_condition(3 * x) * sigmoid64(3 * x),)),
    unary("exp", F.exp, np.exp, np.exp),
    unary("log", F.log, np.log, lambda x: 1 / x,
          inputs=np.concatenate([positive(), np.float32([1 - 2**-24, 1 + 2**-23, 1e-30])])),
    unary("abs", F.abs, np.abs, lambda x: np.where(x < 0, -1.0, 1.0), rtol=0, grad_rtol=0),
    unary("sin", F.sin, np.sin, np.cos),
    unary("cos", F.cos, np.cos, lambda x: -np.sin(x)),
    unary("identity", F.identity, lambda x: x, ones, rtol=0, grad_rtol=0),
    # --- trigonometric and hyperbolic functions
    unary("tan", F.tan, np.tan, lambda x: 1 + np.tan(x) ** 2),
    unary("sinh", F.sinh, np.sinh, np.cosh),
    unary("cosh", F.cosh, np.cosh, np.sinh),
    unary("asin", F.asin, np.arcsin, lambda x: 1 / np.sqrt((1 - x) * (1 + x)),
          inputs=open_unit(), grad_atol=(asin_grad_atol,)),
    unary("acos", F.acos, np.arccos, lambda x: -1 / np.sqrt((1 - x) * (1 + x)),
          inputs=open_unit(), grad_atol=(asin_grad_atol,)),
    unary("atan", F.atan, np.arctan, lambda x: 1 / (1 + x**2)),
    binary("atan2", F.atan2, np.arctan2, lambda a, b: b / (a**2 + b**2),
           lambda a, b: -a / (a**2 + b**2), inputs=ATAN2_POINTS),
    unary("asinh", F.asinh, np.arcsinh, lambda x: 1 / np.sqrt(x**2 + 1)),
    unary("acosh", F.acosh, np.arccosh, lambda x: 1 / np.sqrt((x - 1) * (x + 1)),
          inputs=above_one()),
    unary("atanh", F.atanh, np.arctanh, lambda x: 1 / ((1 - x) * (1 + x)),
          inputs=open_unit(), grad_atol=(atanh_grad_atol,)),
    # --- scalar arithmetic (the scalar as float32: see f32)
    unary("add_scalar", lambda x: F.add_scalar(x, 0.1), lambda x: x + f32(0.1), ones),
    unary("add_scalar 1", F.add_scalar, lambda x: x + 1, ones),
    unary("mul_scalar", lambda x: F.mul_scalar(x, -0.3), lambda x: x * f32(-0.3),
          lambda x: np.full_like(x, f32(-0.3))),
    unary("pow_scalar 2", lambda x: F.pow_scalar(x, 2), lambda x: x**2, lambda x: 2 * x),
    unary("pow_scalar 3", lambda x: F.pow_scalar(x, 3), lambda x: x**3, lambda x: 3 * x**2),
    unary("pow_scalar -1", lambda x: F.pow_scalar(x, -1), lambda x: 1 / x,
          lambda x: -1 / x**2, inputs=nonzero()),
    unary("pow_scalar 0.5", lambda x: F.pow_scalar(x, 0.5), np.sqrt,
          lambda x: 0.5 / np.sqrt(x), inputs=positive()),
    unary("pow_scalar -1.5", lambda x: F.pow_scalar(x, -1.5), lambda x: x**-1.5,
          lambda x: -1.5 * x**-2.5, inputs=positive()),
    unary("r_sub_scalar", lambda x: F.r_sub_scalar(x, 0.1), lambda x: f32(0.1) - x,
          lambda x: -np.ones_like(x)),
    unary("r_div_scalar", lambda x: F.r_div_scalar(x, 3.0), lambda x: 3 / x,
          lambda x: -3 / x**2, inputs=nonzero()),
    unary("r_pow_scalar 2", lambda x: F.r_pow_scalar(x, 2.0), lambda x: 2.0**x,
          lambda x: 2.0**x * np.log(2)),
    unary("r_pow_scalar 10", lambda x: F.r_pow_scalar(x, 10.0), lambda x: 10.0**x,
          lambda x: 10.0**x * np.log(10)),
    # --- binary arithmetic
    binary("add2", F.add2, np.add, ones, ones),
    binary("sub2", F.sub2, np.subtract, ones, lambda a, b: -np.ones_like(a)),
    binary("mul2", F.mul2, np.multiply, lambda a, b: b, lambda a, b: a),
    binary("div2", F.div2, np.divide, lambda a, b: 1 / b, lambda a, b: -a / b**2,
           inputs=pairs(signed(41), nonzero(41))),
    binary("pow2", F.pow2, np.power, lambda a, b: b * a ** (b - 1),
           lambda a, b: a**b * np.log(a), inputs=(P, Q),
           grad_may_overflow=pow_overflows,
           grad_atol=(pow_grad_atol(lambda a, b: b / a), pow_grad_atol(lambda a, b: np.log(a)))),
    # --- comparisons and clipping: exact
    binary("maximum2", F.maximum2, np.maximum, lambda a, b: mask(a > b),
           lambda a, b: mask(a <= b), rtol=0, grad_rtol=0),
    binary("minimum2", F.minimum2, np.minimum, lambda a, b: mask(a < b),
           lambda a, b: mask(a >= b), rtol=0, grad_rtol=0),
    unary("maximum_scalar", lambda x: F.maximum_scalar(x, 0.2),
          lambda x: np.maximum(x, f32(0.2)), lambda x: mask(x > f32(0.2)), rtol=0,
          grad_rtol=0),
    unary("minimum_scalar", lambda x: F.minimum_scalar(x, -0.2),
          lambda x: np.minimum(x, f32(-0.2)), lambda x: mask(x < f32(-0.2)), rtol=0,
          grad_rtol=0),
    unary("clip_by_value", lambda x: F.clip_by_value(x, -0.5, 2.0),
          lambda x: np.clip(x, -0.5, 2.0), lambda x: mask((x > -0.5) & (x < 2.0)), rtol=0,
          grad_rtol=0),
    binary("clip_by_value variables", lambda x, lo: F.clip_by_value(x, lo, F.add_scalar(lo, 1)),
           lambda x, lo: np.minimum(np.maximum(x, lo), np.float32(lo + 1)),
           lambda x, lo: mask((x > lo) & (x < np.float32(lo + 1))),
           lambda x, lo: mask(x <= lo) + mask(np.maximum(x, lo) >= np.float32(lo + 1)),
           rtol=0, grad_rtol=0),
    # --- losses
    binary("squared_error", F.squared_error, lambda a, b: (a - b) ** 2,
           lambda a, b: 2 * (a - b), lambda a, b: -2 * (a - b)),
    binary("absolute_error", F.absolute_error, lambda a, b: np.abs(a - b),
           lambda a, b: np.where(a > b, 1.0, -1.0), lambda a, b: np.where(a > b, -1.0, 1.0),
           rtol=EPS / 2, grad_rtol=0),
    binary("huber_loss", F.huber_loss,
           lambda a, b: np.where(np.abs(a - b) < 1, (a - b) ** 2, 2 * np.abs(a - b) - 1),
           lambda a, b: 2 * np.clip(a - b, -1, 1), lambda a, b: -2 * np.clip(a - b, -1, 1)),
    binary("huber_loss 0.5", lambda a, b: F.huber_loss(a, b, delta=0.5),
           lambda a, b: np.where(np.abs(a - b) < 0.5, (a - b) ** 2,
                                 0.5 * (2 * np.abs(a - b) - 0.5)),
           lambda a, b: 2 * np.clip(a - b, -0.5, 0.5),
           lambda a, b: -2 * np.clip(a - b, -0.5, 0.5)),
    Case("sigmoid_cross_entropy", F.sigmoid_cross_entropy, LABELS,
         lambda x, t: softplus64(x) - t * x, (lambda x, t: sigmoid64(x) - t, None),
         atol=sce_atol, grad_atol=(sce_grad_atol, None)),
    Case("binary_cross_entropy", F.binary_cross_entropy, TARGETS,
         lambda x, t: -(t * np.log(x) + (1 - t) * np.log1p(-x)),
         (lambda x, t: -t / x + (1 - t) / (1 - x), lambda x, t: np.log1p(-x) - np.log(x)),
         atol=bce_atol, grad_atol=(bce_grad0_atol, bce_grad1_atol)),
    # --- the logs of a sigmoid, rewritten to softpluses (elementwise.log)
    unary("log of sigmoid", lambda x: F.log(F.sigmoid(x)), lambda x: -softplus64(-x),
          lambda x: sigmoid64(-x)),
    unary("log of 1 - sigmoid", lambda x: F.log(F.r_sub_scalar(F.sigmoid(x), 1)),
          lambda x: -softplus64(x), lambda x: -sigmoid64(x)),
    Case("binary_cross_entropy of sigmoid",
         lambda x, t: F.binary_cross_entropy(F.sigmoid(x), t), SIGMOID_TARGETS,
         lambda x, t: t * softplus64(-x) + (1 - t) * softplus64(x),
         (lambda x, t: -t * sigmoid64(-x) + (1 - t) * sigmoid64(x), None),
         grad_atol=(sigmoid_bce_grad_atol, None)),
    # --- more activations
    unary("swish", F.swish, lambda x: x * sigmoid64(x),
          lambda x: sigmoid64(x) * (1 + x * sigmoid64(-x)), atol=sigmoid_tail_atol,
          grad_atol=(swish_grad_atol,)),
    unary("mish", F.mish, lambda x: x * np.tanh(softplus64(x)),
          lambda x: np.tanh(softplus64(x)) + x * sigmoid64(x) / np.cosh(softplus64(x)) ** 2,
          atol=sigmoid_tail_atol, grad_atol=(swish_grad_atol,)),
    unary("softsign", F.softsign, lambda x: x / (1 + np.abs(x)),
          lambda x: 1 / (1 + np.abs(x)) ** 2),
    unary("tanh_shrink", F.tanh_shrink, lambda x: x - np.tanh(x), lambda x: np.tanh(x) ** 2,
          atol=lambda x: 2 * EPS * np.abs(x)),
    unary("gelu", F.gelu, gelu64, gelu_grad64, atol=gelu_atol, grad_atol=(gelu_grad_atol,)),
    unary("selu", F.selu,
          lambda x: np.where(x > 0, SELU_SCALE * x, SELU_SCALE * SELU_ALPHA * np.expm1(x)),
          lambda x: np.where(x > 0, SELU_SCALE, SELU_SCALE * SELU_ALPHA * np.exp(x))),
    unary("relu6", F.relu6, lambda x: np.clip(x, 0, 6), lambda x: mask((x > 0) & (x < 6)),
          rtol=0, grad_rtol=0),
    unary("hard_sigmoid", F.hard_sigmoid, lambda x: np.clip(0.2 * x + 0.5, 0, 1),
          lambda x: np.where(np.abs(x) <= 2.5, 0.2, 0.0)),
    unary("hard_tanh", F.hard_tanh, lambda x: np.clip(x, -1, 1),
          lambda x: mask(np.abs(x) <= 1), rtol=0, grad_rtol=0),
    unary("log_sigmoid", F.log_sigmoid, lambda x: -softplus64(-x), lambda x: sigmoid64(-x)),
    unary("sinc", F.sinc, sinc64, sinc_grad64, grad_atol=(sinc_grad_atol,)),
    unary("erf", F.erf, erf64, lambda x: 2 / np.sqrt(np.pi) * np.exp(-(x**2)),
          grad_atol=(erf_grad_atol,)),
    # C's fmod is exact (its result is representable); its derivative (nnabla's mod2 has
    # none, its backward raises) is 1 and -trunc(x0/x1), the quotient rounded once
    binary("mod2", F.mod2, np.fmod, ones, lambda a, b: -np.trunc(a / b),
           inputs=pairs(signed(41), nonzero(41)), rtol=0, grad_rtol=1),
    # --- signs and rounding: exact, the gradient straight through (binary_*: in |x| < 1)
    unary("sign", F.sign, lambda x: np.where(x > 0, 1.0, np.where(x < 0, -1.0, 1.0)), ones,
          rtol=0, grad_rtol=0),
    unary("sign 0.3", lambda x: F.sign(x, 0.3),
          lambda x: np.where(x > 0, 1.0, np.where(x < 0, -1.0, f32(0.3))), ones, rtol=0,
          grad_rtol=0),
    unary("binary_tanh", F.binary_tanh, lambda x: np.where(x > 0, 1.0, -1.0),
          lambda x: mask(np.abs(x) < 1), rtol=0, grad_rtol=0),
    unary("binary_sigmoid", F.binary_sigmoid, lambda x: mask(x > 0),
          lambda x: 0.5 * mask(np.abs(x) < 1), rtol=0, grad_rtol=0),
    # away from the integers, where ceil and floor jump, and the halves, where round does
    # (the catalogue checks the jump points themselves)
    unary("ceil", F.ceil, np.ceil, ones, rtol=0, grad_rtol=0,
          inputs=away_from(signed(), np.arange(-100, 101))),
    unary("floor", F.floor, np.floor, ones, rtol=0, grad_rtol=0,
          inputs=away_from(signed(), np.arange(-100, 101))),
    unary("round", F.round, round64, ones, rtol=0, grad_rtol=0,
          inputs=away_from(signed(), np.arange(-100, 100) + 0.5)),
    # --- comparisons and logic: 1 or 0 exactly, gradient 0. The inputs are exact float32
    # numbers compared as they are (no arithmetic before the comparison, and 0.5 is exact),
    # so a tie is a tie in float32 as in float64 and nothing can round across it: the
    # pairs include a == b, the scalar forms x = 0.5, the logic and sign above x = 0;
    # distinct inputs differ by 3e-4 relative at least, far more than a rounding.
    binary("greater", F.greater, lambda a, b: mask(a > b), zeros, zeros, rtol=0, grad_rtol=0),
    binary("greater_equal", F.greater_equal, lambda a, b: mask(a >= b), zeros, zeros, rtol=0,
           grad_rtol=0),
    binary("less", F.less, lambda a, b: mask(a < b), zeros, zeros, rtol=0, grad_rtol=0),
    binary("less_equal", F.less_equal, lambda a, b: mask(a <= b), zeros, zeros, rtol=0,
           grad_rtol=0),
    binary("equal", F.equal, lambda a, b: mask(a == b), zeros, zeros, rtol=0, grad_rtol=0),
    binary("not_equal", F.not_equal, lambda a, b: mask(a != b), zeros, zeros, rtol=0,
           grad_rtol=0),
    unary("greater_scalar", lambda x: F.greater_scalar(x, 0.5), lambda x: mask(x > 0.5),
          zeros, rtol=0, grad_rtol=0),
    unary("greater_equal_scalar", lambda x: F.greater_equal_scalar(x, 0.5),
          lambda x: mask(x >= 0.5), zeros, rtol=0, grad_rtol=0),
    unary("less_scalar", lambda x: F.less_scalar(x, 0.5), lambda x: mask(x < 0.5), zeros,
          rtol=0, grad_rtol=0),
    unary("less_equal_scalar", lambda x: F.less_equal_scalar(x, 0.5),
          lambda x: mask(x <= 0.5), zeros, rtol=0, grad_rtol=0),
    unary("equal_scalar", lambda x: F.equal_scalar(x, 0.5), lambda x: mask(x == 0.5), zeros,
          rtol=0, grad_rtol=0),
    unary("not_equal_scalar", lambda x: F.not_equal_scalar(x, 0.5),
          lambda x: mask(x != 0.5), zeros, rtol=0, grad_rtol=0),
    binary("logical_and", F.logical_and, lambda a, b: truth(a) * truth(b), zeros, zeros,
           rtol=0, grad_rtol=0),
    binary("logical_or", F.logical_or, lambda a, b: np.maximum(truth(a), truth(b)), zeros,
           zeros, rtol=0, grad_rtol=0),
    binary("logical_xor", F.logical_xor, lambda a, b: mask(truth(a) != truth(b)), zeros,
           zeros, rtol=0, grad_rtol=0),
    unary("logical_not", F.logical_not, lambda x: mask(x == 0), zeros, rtol=0, grad_rtol=0),
    unary("logical_and_scalar True", lambda x: F.logical_and_scalar(x, True), truth, zeros,
          rtol=0, grad_rtol=0),
    unary("logical_and_scalar False", lambda x: F.logical_and_scalar(x, False), zeros,
          zeros, rtol=0, grad_rtol=0),
    unary("logical_or_scalar True", lambda x: F.logical_or_scalar(x, True), ones, zeros,
          rtol=0, grad_rtol=0),
    unary("logical_or_scalar False", lambda x: F.logical_or_scalar(x, False), truth, zeros,
          rtol=0, grad_rtol=0),
    unary("logical_xor_scalar True", lambda x: F.logical_xor_scalar(x, True),
          lambda x: mask(x == 0), zeros, rtol=0, grad_rtol=0),
    unary("logical_xor_scalar False", lambda x: F.logical_xor_scalar(x, False), truth,
          zeros, rtol=0, grad_rtol=0),
    # --- NaN and infinities: classified and reset (the gradient is 0 where reset)
    unary("isnan", F.isnan, lambda x: mask(np.isnan(x)), zeros, rtol=0, grad_rtol=0,
          inputs=with_specials(signed(), np.nan, np.inf, -np.inf)),
    unary("isinf", F.isinf, lambda x: mask(np.isinf(x)), zeros, rtol=0, grad_rtol=0,
          inputs=with_specials(signed(), np.nan, np.inf, -np.inf)),
    unary("reset_nan", lambda x: F.reset_nan(x, 2.0), lambda x: np.where(np.isnan(x), 2, x),
          lambda x: mask(~np.isnan(x)), rtol=0, grad_rtol=0,
          inputs=with_specials(signed(), np.nan, np.nan)),
    unary("reset_inf", lambda x: F.reset_inf(x, -3.0), lambda x: np.where(np.isinf(x), -3, x),
          lambda x: mask(~np.isinf(x)), rtol=0, grad_rtol=0,
          inputs=with_specials(signed(), np.inf, -np.inf)),
    # --- selection and the epsilon-insensitive loss
    Case("where", F.where, WHERE_POINTS, lambda c, a, b: np.where(c != 0, a, b),
         (None, lambda c, a, b: truth(c), lambda c, a, b: mask(c == 0)), rtol=0,
         grad_rtol=0),
    Case("bool_fill", lambda d, m: F.bool_fill(d, m, 0.75), (WHERE_POINTS[1], WHERE_POINTS[0]),
         lambda d, m: np.where(m != 0, 0.75, d), (lambda d, m: mask(m == 0), None), rtol=0,
         grad_rtol=0),
    binary("epsilon_insensitive_loss", lambda a, b: F.epsilon_insensitive_loss(a, b, 0.5),
           lambda a, b: np.maximum(np.abs(a - b) - 0.5, 0),
           lambda a, b: np.sign(a - b) * mask(np.abs(a - b) > 0.5),
           lambda a, b: -np.sign(a - b) * mask(np.abs(a - b) > 0.5), inputs=EIL_POINTS,
           atol=eil_atol),
]


# --- the check -----------------------------------------------------------------------------

def assert_float32_close(got, reference, inputs, what, rtol, atol=None, may_overflow=None):
    """The module's float32 result against the float64 reference (see the module doc)."""
    got = np.asarray(got)
    assert got.dtype == np.float32, f"{what}: dtype {got.dtype}"
    reference = np.broadcast_to(np.asarray(reference, dtype=np.float64), got.shape)
    assert not np.isnan(reference).any(), f"{what}: the reference has NaN (domain?)"
    assert not np.isnan(got).any(), f"{what}: NaN at {_where(np.isnan(got), inputs)}"
    overflow = np.abs(reference) >= OVERFLOW
    if may_overflow is not None:
        with np.errstate(over="ignore"):
            allowed_inf = overflow | may_overflow(*(x.astype(np.float64) for x in inputs))
        overflow |= allowed_inf & np.isinf(got)
    wrong_inf = np.isinf(got) != overflow
    wrong_inf |= overflow & (np.sign(got) != np.sign(reference))
    assert not wrong_inf.any(), (f"{what}: infinite where the reference is finite or vice "
                                 f"versa, at {_where(wrong_inf, inputs, got, reference)}")
    error = np.where(overflow, 0.0, np.abs(got.astype(np.float64) - np.where(overflow, 0,
                                                                                reference)))
    magnitude = np.abs(reference)
    allowed = np.where(magnitude >= TINY, rtol * magnitude, TINY)
    if atol is not None:
        with np.errstate(over="ignore"):
            allowed = allowed + atol(*(x.astype(np.float64) for x in inputs))
    bad = error > allowed
    assert not bad.any(), (
        f"{what}: {bad.sum()} of {bad.size} values off by more than the bound "
        f"(relative {rtol / EPS:g} EPS); worst: {_where(bad, inputs, got, reference, error)}")


def _where(bad, inputs, got=None, reference=None, error=None, shown=6) -> str:
    indices = np.flatnonzero(bad)
    if error is not None:
        indices = indices[np.argsort(-error.ravel()[indices])]
    rows = []
    for i in indices[:shown]:
        row = "inputs " + ", ".join(f"{x.ravel()[i]!r}" for x in inputs)
        if got is not None:
            ref = reference.ravel()[i]
            rows.append(f"{row}: got {got.ravel()[i]!r}, expected {ref!r} (relative error "
                        f"{abs(float(got.ravel()[i]) - ref) / max(abs(ref), TINY):.3g})")
        else:
            rows.append(row)
    return "; ".join(rows)


def compile_case(case: Case, tmp_path):
    """The case's function of float32 inputs, compiled with its output as the root (whose
    gradient() seeds ones: elementwise derivatives)."""
    variables = []
    for i, (values, gradient) in enumerate(zip(case.inputs, case.gradients, strict=True)):
        v = nn.Variable(values.shape, need_grad=gradient is not None)
        v.name = f"x{i}"
        variables.append(v)
    out = case.build(*variables)
    assert out.shape == case.inputs[0].shape
    result = nn.compile(out, name="case", output_dir=tmp_path, solver=None, dtype="float32")
    return result, out


def _call(module, function, inputs):
    by_name = {f"x{i}": x for i, x in enumerate(inputs)}
    arguments = [by_name[spec["name"]] for spec in module.INPUTS.values()]
    return getattr(module, function)(*arguments)


def _numpy_checked(overflows: bool):
    """NumPy's floating-point warnings become errors, except overflow where the reference
    overflows too (exp(100) is inf, and NumPy says so)."""
    return np.errstate(over="warn" if overflows else "raise", invalid="raise",
                       divide="raise", under="ignore")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_float32_precision(case, tmp_path):
    result, _ = compile_case(case, tmp_path)
    module = result.module
    exact = [x.astype(np.float64) for x in case.inputs]
    with np.errstate(over="ignore"):  # float64 references overflow float32 but not float64
        expected = case.forward(*exact)
        slopes = [None if g is None else g(*exact) for g in case.gradients]
    overflows = any(bool((np.abs(r) >= OVERFLOW).any())
                    for r in [expected, *slopes] if r is not None)
    with _numpy_checked(overflows), warnings.catch_warnings():
        warnings.simplefilter("ignore" if overflows else "error")
        value = _call(module, "forward", case.inputs)
        outputs = _call(module, "gradient", case.inputs)
    assert_float32_close(value, expected, case.inputs, f"{case.name} forward", case.rtol,
                         case.atol)
    assert_float32_close(outputs[0], expected, case.inputs, f"{case.name} gradient()'s value",
                         case.rtol, case.atol)
    grad_atol = dict(enumerate(case.grad_atol))
    gradients = iter(outputs[1:])
    assert len(outputs) - 1 == sum(g is not None for g in case.gradients)
    for i, reference in enumerate(slopes):
        if reference is None:
            continue
        assert_float32_close(next(gradients), reference, case.inputs,
                             f"{case.name} d/dx{i}", case.grad_rtol, grad_atol.get(i),
                             case.grad_may_overflow)


def test_every_elementwise_function_is_covered():
    """The cases above call every elementwise function symcompile registers."""
    used: set[str] = set()
    for case in CASES:
        variables = [nn.Variable(x.shape) for x in case.inputs]
        stack = [case.build(*variables)]
        while stack:
            var = stack.pop()
            if var.parent is not None:
                used.add(var.parent.op.name)
                stack.extend(var.parent.inputs)
    assert set(ELEMENTWISE_OPS) - used == set()


# --- the rewrites of log(sigmoid) --------------------------------------------------------

def test_log_of_sigmoid_is_rewritten_to_softplus():
    u, v = sympy.symbols("u v")
    with distribute(False):
        assert E.log(E.Sigmoid(u)) == -E.Softplus(-u)
        assert E.log(1 - E.Sigmoid(u)) == -E.Softplus(u)
        assert E.log(-E.Sigmoid(u) + 1) == -E.Softplus(u)
        # the argument of a fused chain: -(u + v) stays unexpanded under distribute(False)
        assert E.log(E.Sigmoid(-(u + v))) == -E.Softplus(u + v)
        assert E.log(1 - E.Sigmoid(u + v)) == -E.Softplus(u + v)
        # anything else is SymPy's log
        assert E.log(u) == sympy.log(u)
        assert E.log(2 - E.Sigmoid(u)) == sympy.log(2 - E.Sigmoid(u))
        assert E.log(1 + E.Sigmoid(u)) == sympy.log(1 + E.Sigmoid(u))
        assert E.log(2 * E.Sigmoid(u)) == sympy.log(2 * E.Sigmoid(u))
        assert E.log(1 - E.Sigmoid(u) - v) == sympy.log(1 - E.Sigmoid(u) - v)


@pytest.mark.parametrize("target", [0.0, 1.0, 0.25])
def test_cross_entropy_of_sigmoid_in_the_tails(target, tmp_path):
    """F.log(F.sigmoid(x)) and F.binary_cross_entropy(F.sigmoid(x), t) compile to
    softpluses: finite and accurate values and gradients at x = +-20, +-50, +-100 (the
    tanh form of the sigmoid was 0 there, its log -inf and the cross entropy inf)."""
    x_values = np.float32([-100, -50, -20, 20, 50, 100])
    x = nn.Variable((6,), need_grad=True)
    x.name = "x"
    t = nn.Variable((6,), need_grad=False)
    t.name = "t"
    for name, loss, value, slope, atol in [
        ("log_sigmoid", F.sum(F.log(F.sigmoid(x))), lambda x, t: -softplus64(-x),
         lambda x, t: sigmoid64(-x), None),
        ("bce_sigmoid", F.sum(F.binary_cross_entropy(F.sigmoid(x), t)),
         lambda x, t: t * softplus64(-x) + (1 - t) * softplus64(x),
         lambda x, t: -t * sigmoid64(-x) + (1 - t) * sigmoid64(x), sigmoid_bce_grad_atol),
    ]:
        result = nn.compile(loss, name=name, output_dir=tmp_path, solver=None,
                            dtype="float32")
        t_values = np.full(6, target, dtype=np.float32)
        inputs = {"x": x_values, "t": t_values}
        module = result.module
        arguments = [inputs[spec["name"]] for spec in module.INPUTS.values()]
        with np.errstate(all="raise", under="ignore"):
            total, g_x = module.gradient(*arguments)
        exact = (x_values.astype(np.float64), t_values.astype(np.float64))
        assert np.isfinite(total) and np.all(np.isfinite(g_x))
        np.testing.assert_allclose(total, np.sum(value(*exact)), rtol=ULPS * EPS)
        assert_float32_close(g_x, slope(*exact), (x_values, t_values), name + " d/dx",
                             ULPS * EPS, atol)
        assert "numpy.logaddexp" in result.source
        assert "numpy.log(" not in result.source


def test_sigmoid_has_no_overflow_warning_and_no_nan(tmp_path):
    """Far below -88.72, where exp(-x) would overflow, the sigmoid is 0 or a subnormal
    number (not NaN), and NumPy warns of nothing."""
    x = nn.Variable((5,), need_grad=True)
    x.name = "x"
    module = nn.compile(F.sigmoid(x), name="sigmoid", output_dir=tmp_path, solver=None,
                        dtype="float32").module
    values = np.float32([-np.inf, -1e30, -1000, -88.73, np.inf])
    with np.errstate(all="raise", under="ignore"):
        y, g = module.gradient(values)
    assert np.all((y[:4] >= 0) & (y[:4] < TINY)) and y[4] == 1
    assert np.all((g[:4] >= 0) & (g[:4] < TINY)) and g[4] == 0
