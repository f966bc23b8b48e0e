"""`sympy_function`: SymPy's own functions, safe for the compiler: no sign flipping under
distribute(False), no rewriting beyond SymPy's values of numbers and its minus sign,
derivatives in safe functions, quick answers from the assumption system."""

from __future__ import annotations

import time

import numpy as np
import pytest
import sympy
from gradcheck import check_gradients, compile_f64
from sympy.core.parameters import distribute

import symcompile as nn
import symcompile.functions as F
from symcompile.ops.sympy_functions import sympy_function

ODD = ["sin", "tan", "tanh", "sinh", "asin", "atan", "asinh", "atanh"]
EVEN = ["cos", "cosh"]
NEITHER = ["acos", "acosh"]
x, y = sympy.symbols("x y")


@pytest.mark.parametrize("name", ODD + EVEN + NEITHER)
def test_a_negated_sum_does_not_flip_forever(name):
    """SymPy's own odd and even functions recurse until the limit on -x - y here."""
    f = sympy_function(name)
    with distribute(False):
        value = f(-x - y)
        again = f(-(x + y))
    if name in ODD:
        assert value == again == -f(x + y)
    elif name in EVEN:
        assert value == again == f(x + y)
    else:
        assert value.args == (-x - y,)  # SymPy takes no sign out of acos, acosh


def test_classes_keep_sympy_s_names_and_printing():
    from sympy.printing.numpy import NumPyPrinter

    for name in ODD + EVEN + NEITHER + ["atan2"]:
        cls = sympy_function(name)
        assert cls.__name__ == name and issubclass(cls, getattr(sympy, name))
        assert sympy_function(name) is cls  # one class per function: expressions compare
    printed = NumPyPrinter().doprint(sympy_function("atan2")(x, y) + sympy_function("asinh")(x))
    assert printed == "numpy.arcsinh(x) + numpy.arctan2(x, y)"


def test_numbers_get_sympy_s_real_values_only():
    one, zero, two = sympy.Integer(1), sympy.Integer(0), sympy.Integer(2)
    assert sympy_function("atan")(one) == sympy.pi / 4
    assert sympy_function("cosh")(zero) == 1
    assert sympy_function("atan2")(one, two) == sympy.atan(sympy.Rational(1, 2))
    # SymPy's values here are complex (I*pi/2) or NaN: the calls stay, for NumPy (and
    # nnabla) to compute as NaN, and 0
    assert sympy_function("acosh")(zero).args == (zero,)
    assert sympy_function("atan2")(zero, zero).args == (zero, zero)


def test_inverses_are_not_cancelled():
    """sin(asin(x)) is x only inside asin's domain; nnabla gives NaN outside it."""
    asin, sin = sympy_function("asin"), sympy_function("sin")
    assert sin(asin(x)).args == (asin(x),)


def test_derivatives_are_sympy_s_in_safe_functions():
    assert sympy.diff(sympy_function("sinh")(x), x).func is sympy_function("cosh")
    assert sympy.diff(sympy_function("cos")(x), x) == -sympy_function("sin")(x)
    assert sympy.diff(sympy_function("tan")(x), x) == 1 + sympy_function("tan")(x) ** 2
    atan2 = sympy_function("atan2")(y, x)
    assert sympy.diff(atan2, y) == x / (x**2 + y**2)
    assert sympy.diff(atan2, x) == -y / (x**2 + y**2)
    with distribute(False):
        assert sympy.diff(sympy_function("sinh")(-x - y), x) == -sympy_function("cosh")(x + y)


def test_an_unknown_name_is_refused():
    with pytest.raises(TypeError, match=r"sympy\.Rational is not a SymPy function class"):
        sympy_function("Rational")


@pytest.mark.parametrize("name", ["tanh", "sinh", "cosh"])
def test_assumptions_of_a_chain_are_quick(name):
    """SymPy's own answers split every level into real and imaginary parts: 8 seconds for
    a chain of 8 tanh. Real arguments give SymPy's answer, at once."""
    f = sympy_function(name)
    chain = x
    for _ in range(12):
        chain = f(chain + 1)
    sympy.core.cache.clear_cache()
    start = time.perf_counter()
    assert chain.is_real is None and chain.is_positive is None
    assert time.perf_counter() - start < 1.0
    real = sympy.Symbol("r", real=True)
    assert f(real).is_real and f(real).is_finite
    assert (f(real).is_positive is True) == (name == "cosh")


def test_a_deep_mixed_chain_compiles_and_is_right(tmp_path, rng):
    """Each function of a long chain fused into one expression, and its gradient."""
    x_var = nn.Variable((3, 2), need_grad=True)
    x_var.name = "x"
    h = x_var
    for f in [F.tanh, F.sinh, F.atan, F.cosh, F.asinh, F.tan, F.sin, F.atan] * 3:
        h = f(h * 0.5)
    result = compile_f64(F.sum(h), tmp_path)
    check_gradients(result.module, {"x": rng.uniform(-1, 1, size=(3, 2))})
    assert result.function_source("forward").count("numpy.arctan(") == 6
    assert np.isfinite(result.module.forward(np.zeros((3, 2))))


# symcompile's own functions of numbers: their value (so that no module calls a function on
# Python numbers), equal to what the printed NumPy code computes.
def _own_functions():
    from symcompile.ops import sympy_functions as E

    def where(c, a, b):
        return np.where(c, a, b)

    return {
        "Absolute": (E.Absolute, lambda v: np.abs(v), (1,)),
        "Sign+": (E.Sign, lambda v: where(v < 0, -1.0, 1.0), (1,)),
        "Sign-": (E.Sign, lambda v: where(v > 0, 1.0, -1.0), (-1,)),
        "Sigmoid": (E.Sigmoid, lambda v: 1 / (1 + np.exp(-v)), ()),
        "Softplus": (E.Softplus, lambda v: np.logaddexp(0, v), ()),
        "LeakyRelu": (E.LeakyRelu, lambda v: where(v > 0, v, 0.1 * v), (sympy.Rational(1, 10),)),
        "LeakyReluGrad": (E.LeakyReluGrad, lambda v: where(v > 0, 1.0, 0.1),
                          (sympy.Rational(1, 10),)),
        "Elu": (E.Elu, lambda v: where(v >= 0, v, 2 * np.expm1(min(v, 0))), (2,)),
        "EluGrad": (E.EluGrad, lambda v: where(v >= 0, 1.0, 2 * np.exp(min(v, 0))), (2,)),
        "Huber": (E.Huber, lambda v: where(abs(v) < 1.5, v * v, 1.5 * (2 * abs(v) - 1.5)),
                  (sympy.Rational(3, 2),)),
        "Clip": (E.Clip, lambda v: np.clip(v, -1, 2), (-1, 2)),
        "Truncate": (E.Truncate, lambda v: np.trunc(v), ()),
        "IsGreater": (E.IsGreater, lambda v: float(v > 0.5), (sympy.Rational(1, 2),)),
        "IsLessEqual": (E.IsLessEqual, lambda v: float(v <= 0.5), (sympy.Rational(1, 2),)),
        "Maximum": (E.Maximum, lambda v: max(v, 0.5), (sympy.Rational(1, 2),)),
        "Minimum": (E.Minimum, lambda v: min(v, 0.5), (sympy.Rational(1, 2),)),
    }


@pytest.mark.parametrize("name", list(_own_functions()))
@pytest.mark.parametrize("value", [-2.5, -1, 0, sympy.Rational(1, 2), 0.7, 3])
def test_own_functions_of_numbers_are_numbers(name, value):
    function, reference, rest = _own_functions()[name]
    number = sympy.sympify(value)
    result = function(number, *map(sympy.sympify, rest))
    assert result.is_number and not result.has(function), result
    assert float(result) == pytest.approx(float(reference(float(number))), rel=1e-12, abs=1e-15)
    assert function(x, *map(sympy.sympify, rest)).has(function)  # of a symbol it stays


def test_own_functions_of_nan_stay_calls():
    """NaN has no order: the call stays, and NumPy computes it as nnabla does."""
    from symcompile.ops.sympy_functions import LeakyRelu, Sigmoid

    assert isinstance(Sigmoid(sympy.nan), Sigmoid)
    assert isinstance(LeakyRelu(sympy.nan, sympy.Rational(1, 10)), LeakyRelu)
