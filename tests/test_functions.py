"""Every function: forward against NumPy, gradient against finite differences (float64)."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import check_function

import symcompile as nn
import symcompile.functions as F

BROADCAST_SHAPES = [
    ((2, 3, 4), (2, 3, 4)),
    ((2, 3, 4), (1, 3, 1)),
    ((1, 3, 1), (2, 3, 4)),
    ((1, 1), (32, 1)),
    ((32, 1), (1, 1)),
    ((), ()),
]

# name, function of Variables, NumPy reference, inputs must be positive
BINARY = [
    ("add2", F.add2, np.add, False),
    ("sub2", F.sub2, np.subtract, False),
    ("mul2", F.mul2, np.multiply, False),
    ("div2", F.div2, np.divide, True),
    ("pow2", F.pow2, np.power, True),
    ("squared_error", F.squared_error, lambda a, b: (a - b) ** 2, False),
    ("operator +", lambda a, b: a + b, np.add, False),
    ("operator -", lambda a, b: a - b, np.subtract, False),
    ("operator *", lambda a, b: a * b, np.multiply, False),
    ("operator /", lambda a, b: a / b, np.divide, True),
    ("operator **", lambda a, b: a ** b, np.power, True),
]

UNARY = [
    ("add_scalar", lambda x: F.add_scalar(x, 1.5), lambda x: x + 1.5, False),
    ("mul_scalar", lambda x: F.mul_scalar(x, -0.25), lambda x: x * -0.25, False),
    ("pow_scalar 2", lambda x: F.pow_scalar(x, 2), lambda x: x**2, False),
    ("pow_scalar 3", lambda x: F.pow_scalar(x, 3.0), lambda x: x**3, False),
    ("pow_scalar 0.5", lambda x: F.pow_scalar(x, 0.5), np.sqrt, True),
    ("pow_scalar -1.5", lambda x: F.pow_scalar(x, -1.5), lambda x: x**-1.5, True),
    ("r_sub_scalar", lambda x: F.r_sub_scalar(x, 2.0), lambda x: 2.0 - x, False),
    ("r_div_scalar", lambda x: F.r_div_scalar(x, 3.0), lambda x: 3.0 / x, True),
    ("r_pow_scalar", lambda x: F.r_pow_scalar(x, 2.0), lambda x: 2.0**x, False),
    ("identity", F.identity, lambda x: x, False),
    ("defaults add_scalar", F.add_scalar, lambda x: x + 1, False),
    ("defaults pow_scalar", F.pow_scalar, lambda x: x, False),
    ("operator neg", lambda x: -x, np.negative, False),
    ("operator x + 2", lambda x: x + 2, lambda x: x + 2, False),
    ("operator 2 + x", lambda x: 2 + x, lambda x: 2 + x, False),
    ("operator x - 2", lambda x: x - 2, lambda x: x - 2, False),
    ("operator 2 - x", lambda x: 2 - x, lambda x: 2 - x, False),
    ("operator x * 3", lambda x: x * 3, lambda x: x * 3, False),
    ("operator 3 * x", lambda x: 3 * x, lambda x: 3 * x, False),
    ("operator x / 4", lambda x: x / 4, lambda x: x / 4, False),
    ("operator 4 / x", lambda x: 4 / x, lambda x: 4 / x, True),
    ("operator x ** 2", lambda x: x**2, lambda x: x**2, False),
    ("operator 2 ** x", lambda x: 2**x, lambda x: 2.0**x, False),
]



def interval(low, high):
    return lambda shape, rng: rng.uniform(low, high, size=shape)


def normal(scale):
    return lambda shape, rng: scale * rng.normal(size=shape)


def away_from_zero(shape, rng):
    """+-[0.3, 2]: atan2's slope is 0/0 at the origin and its value jumps across x1 < 0,
    x0 = 0, where a finite difference would straddle the jump."""
    return rng.uniform(0.3, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)


# name, function, NumPy reference, inputs drawn inside the function's domain (the
# slopes of tan, asin, acos and atanh are steep near its ends, those of acosh at 1)
MATHS = [
    ("tan", F.tan, np.tan, interval(-1.2, 1.2)),
    ("sinh", F.sinh, np.sinh, normal(2.0)),
    ("cosh", F.cosh, np.cosh, normal(2.0)),
    ("asin", F.asin, np.arcsin, interval(-0.9, 0.9)),
    ("acos", F.acos, np.arccos, interval(-0.9, 0.9)),
    ("atan", F.atan, np.arctan, normal(3.0)),
    ("asinh", F.asinh, np.arcsinh, normal(3.0)),
    ("acosh", F.acosh, np.arccosh, interval(1.1, 4.0)),
    ("atanh", F.atanh, np.arctanh, interval(-0.9, 0.9)),
]

REDUCTIONS = [(axis, keepdims) for axis in (None, 0, 1, -1, 2, (0, 2), (1, -1), (0, 1, 2))
              for keepdims in (False, True)]


def _inputs(shapes, positive, rng):
    arrays = []
    for shape in shapes:
        a = rng.uniform(0.5, 2.0, size=shape) if positive else rng.normal(size=shape)
        arrays.append(np.asarray(a, dtype=np.float64))
    return arrays


def _check(build, reference, arrays, tmp_path, rng):
    check_function(build, reference, arrays, tmp_path, rng)


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("name,build,reference,positive", BINARY, ids=[c[0] for c in BINARY])
def test_binary(name, build, reference, positive, shapes, tmp_path, rng):
    _check(build, reference, _inputs(shapes, positive, rng), tmp_path, rng)


@pytest.mark.parametrize("shape", [(2, 3, 4), (32, 1), (5,), ()], ids=str)
@pytest.mark.parametrize("name,build,reference,positive", UNARY, ids=[c[0] for c in UNARY])
def test_unary(name, build, reference, positive, shape, tmp_path, rng):
    _check(build, reference, _inputs([shape], positive, rng), tmp_path, rng)


@pytest.mark.parametrize("shape", [(2, 3, 4), (32, 1), (5,), ()], ids=str)
@pytest.mark.parametrize("name,build,reference,domain", MATHS, ids=[c[0] for c in MATHS])
def test_trigonometric_and_hyperbolic(name, build, reference, domain, shape, tmp_path, rng):
    _check(build, reference, [domain(shape, rng)], tmp_path, rng)


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
def test_atan2(shapes, tmp_path, rng):
    """nnabla's atan2(x0, x1) is NumPy's arctan2(x0, x1): the angle of the point (x1, x0),
    in all four quadrants."""
    _check(F.atan2, np.arctan2, [away_from_zero(shape, rng) for shape in shapes], tmp_path,
           rng)


def test_atan2_quadrants():
    """The angle of the point (x1, x0) in each quadrant: x0 is the y coordinate, first, as
    in nnabla and NumPy."""
    x0, x1 = nn.Variable((4,)), nn.Variable((4,))
    angle = F.atan2(x0, x1)
    x0.d = [1, 1, -1, -1]
    x1.d = [1, -1, -1, 1]
    angle.forward()
    np.testing.assert_allclose(angle.d, np.pi * np.array([1, 3, -3, -1]) / 4, rtol=1e-6)


@pytest.mark.parametrize("axis,keepdims", REDUCTIONS, ids=str)
@pytest.mark.parametrize("op", ["sum", "mean"])
def test_reductions(op, axis, keepdims, tmp_path, rng):
    function = getattr(F, op)
    reference = getattr(np, op)
    _check(lambda x: function(x, axis=axis, keepdims=keepdims),
           lambda x: reference(x, axis=axis, keepdims=keepdims),
           _inputs([(2, 3, 4)], False, rng), tmp_path, rng)


@pytest.mark.parametrize("op", ["sum", "mean"])
def test_reduction_of_broadcast_product(op, tmp_path, rng):
    """A reduction over an axis along which part of the product is broadcast."""
    function = getattr(F, op)
    reference = getattr(np, op)
    _check(lambda a, b: function(F.mul2(a, b), axis=(0, 2)),
           lambda a, b: reference(a * b, axis=(0, 2)),
           _inputs([(2, 3, 4), (1, 3, 1)], False, rng), tmp_path, rng)


def test_deprecated_reduce_aliases(tmp_path, rng):
    _check(F.reduce_sum, np.sum, _inputs([(3, 4)], False, rng), tmp_path, rng)
    _check(F.reduce_mean, np.mean, _inputs([(3, 4)], False, rng), tmp_path, rng)


def test_shared_subgraph_and_chains(tmp_path, rng):
    """A value used twice (materialised) inside a longer elementwise chain."""

    def build(x, y):
        h = F.mul2(x, y)
        return F.add2(F.pow_scalar(h, 2), F.div2(h, F.add_scalar(F.pow_scalar(y, 2), 1.0)))

    def reference(x, y):
        h = x * y
        return h**2 + h / (y**2 + 1.0)

    _check(build, reference, _inputs([(4, 3), (4, 1)], False, rng), tmp_path, rng)


def test_same_input_twice(tmp_path, rng):
    _check(lambda x: F.mul2(x, x), lambda x: x * x, _inputs([(3, 2)], False, rng),
           tmp_path, rng)
    _check(lambda x: F.sub2(x, x), lambda x: x - x, _inputs([(3, 2)], False, rng),
           tmp_path, rng)


@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, True), (0, False), ((0, 2), True),
                                           (1, False)], ids=str)
@pytest.mark.parametrize("op", ["sum", "mean"])
def test_reduction_right_after_a_broadcast(op, axis, keepdims, tmp_path, rng):
    """The cotangent a reduction sends back is smaller than the value it reduced; summing
    it onto a broadcast input must still count every broadcast element."""
    reduce = getattr(F, op)
    reference = getattr(np, op)
    _check(lambda x, b: reduce(F.add2(x, b), axis=axis, keepdims=keepdims),
           lambda x, b: reference(x + b, axis=axis, keepdims=keepdims),
           _inputs([(2, 3, 4), (1, 3, 1)], False, rng), tmp_path, rng)
    _check(lambda x, b: reduce(F.mul2(b, F.tanh(x)), axis=axis, keepdims=keepdims),
           lambda x, b: reference(b * np.tanh(x), axis=axis, keepdims=keepdims),
           _inputs([(2, 3, 4), (1, 1, 4)], False, rng), tmp_path, rng)


def test_centred_values_have_zero_gradient(tmp_path, rng):
    _check(lambda h: F.sum(F.sub2(h, F.mean(h, axis=1, keepdims=True))),
           lambda h: np.sum(h - h.mean(axis=1, keepdims=True)),
           _inputs([(2, 3)], False, rng), tmp_path, rng)
