"""The NumPy printer's overrides, pinned to exact strings (SymPy test_numpy.py style)."""

from __future__ import annotations

import sympy
from sympy.core.parameters import distribute

from symcompile.backends.printer import NumPyPrinter
from symcompile.ir.primitives import (
    BroadcastTo,
    Dot,
    ExpandDims,
    Full,
    ReduceSum,
    Reshape,
    Shapes,
    shape_tuple,
)

x, y, t, g = sympy.symbols("x y t g", real=True)


def printer():
    shapes = Shapes()
    shapes.declare(x, (32, 1))
    shapes.declare(y, (32, 1))
    shapes.declare(t, (32, 1))
    shapes.declare(g, ())
    return NumPyPrinter(shapes)


def test_relu_and_its_derivative():
    p = NumPyPrinter()
    assert p.doprint(sympy.Max(x, 0)) == "numpy.maximum(x, 0)"
    assert p.doprint(sympy.Min(0, x)) == "numpy.minimum(x, 0)"
    assert p.doprint(sympy.diff(sympy.Max(x, 0), x)) == "(x > 0)"
    with distribute(False):
        relu_grad = 2 * (sympy.Max(x, 0) - t) * sympy.Heaviside(x)
    assert p.doprint(relu_grad) == "2*(numpy.maximum(x, 0) - t)*(x > 0)"
    assert p.module_imports == {"numpy": {"maximum", "minimum"}}


def test_numbers_read_as_written():
    p = NumPyPrinter()
    assert p.doprint(sympy.Float(0.1)) == "0.1"
    assert p.doprint(sympy.Float(1e-8) * x) == "1e-08*x"
    assert p.doprint(sympy.Rational(1, 32)) == "1/32"
    assert p.doprint(x / 32) == "x/32"


def test_products_multiply_scalars_before_arrays():
    p = printer()
    assert p.doprint(sympy.Rational(-1, 16) * g * x * t) == "-g/16*t*x"
    assert p.doprint(-2 * x * (y - t)) == "-2*(y - t)*x"  # costliest array factor first
    assert p.doprint(g * x / 32) == "g/32*x"
    assert p.doprint(x / (y * t)) == "x/t/y"


def test_broadcast_factors_combine_before_the_full_size_array():
    a, c, v = sympy.symbols("a c v", real=True)
    shapes = Shapes()
    shapes.declare(x, (64, 6, 28, 28))
    shapes.declare(y, (64, 6, 28, 28))
    for per_channel in (a, c, v):
        shapes.declare(per_channel, (1, 6, 1, 1))
    p = NumPyPrinter(shapes)
    # one pass over x, after the per-channel factors (and the scalar) are combined
    assert p.doprint(a * c * x / (50176 * v**sympy.Rational(3, 2))) == \
        "a*c/50176/v**(3/2)*x"
    assert p.doprint(x / (16 * v)) == "x/(16*v)"  # one division of the array, not two
    assert p.doprint(x * y * a) == "a*x*y"
    # broadcasting to the full size together: no gain, the order stays
    shapes.declare(t, (64, 1, 28, 28))
    shapes.declare(g, (1, 6, 28, 28))
    assert p.doprint(t * g * x) == "g*t*x"


def test_a_negated_sum_is_printed_as_its_negated_terms():
    a = sympy.Symbol("a", real=True)
    shapes = Shapes()
    for name in (x, y, a):
        shapes.declare(name, (8, 4))
    p = NumPyPrinter(shapes)
    negated = sympy.Mul(-1, sympy.Add(x, y, -a), evaluate=False)
    assert p.doprint(negated) == "a - x - y"
    # inside a product it keeps its parentheses
    assert p.doprint(sympy.Mul(negated, sympy.exp(x), evaluate=False)) in \
        {"(a - x - y)*numpy.exp(x)", "numpy.exp(x)*(a - x - y)"}


def test_integer_powers():
    p = NumPyPrinter()
    assert p.doprint(x**2) == "x**2"
    assert p.doprint(1 / x) == "1/x"
    assert p.doprint(x ** -2) == "1/x**2"
    assert p.doprint(sympy.sqrt(x)) == "numpy.sqrt(x)"


def test_tensor_primitives():
    p = printer()
    column = shape_tuple((32, 1))
    assert p.doprint(ReduceSum(x * t, shape_tuple((0,)), sympy.Integer(1), column)) == \
        "(t*x).sum(axis=0, keepdims=True)"
    assert p.doprint(ReduceSum(x, shape_tuple((0, 1)), sympy.Integer(0), column)) == \
        "x.sum(axis=(0, 1))"
    # a summand folded into a constant after the sum was built still counts 32 elements
    assert p.doprint(ReduceSum(g, shape_tuple((0, 1)), sympy.Integer(0), column)) == \
        "numpy.broadcast_to(g, (32, 1)).sum(axis=(0, 1))"
    assert p.doprint(Dot(x, t)) == "numpy.vdot(x, t)"
    assert p.doprint(Full(g, shape_tuple((1, 1)))) == \
        "numpy.full((1, 1), g, dtype=numpy.float32)"
    assert p.doprint(BroadcastTo(g, shape_tuple((3,)))) == "numpy.broadcast_to(g, (3,))"
    # a number spread is filled in the module's dtype (broadcast, it would be float64)
    assert p.doprint(BroadcastTo(sympy.Float(-1.5), shape_tuple((3,)))) == \
        "numpy.full((3,), -1.5, dtype=numpy.float32)"
    assert p.doprint(ExpandDims(g, shape_tuple((0,)))) == "numpy.expand_dims(g, 0)"
    assert p.doprint(Reshape(x, shape_tuple((4, 8)))) == "numpy.reshape(x, (4, 8))"
    assert p.module_imports == {"numpy": {"vdot", "full", "broadcast_to", "expand_dims",
                                          "reshape", "float32"}}


def test_precedence_is_respected():
    """Printed code evaluates to the expression, whatever the nesting."""
    import numpy as np

    from symcompile.ir.primitives import MatMul, Transpose

    a, b, c = sympy.symbols("a b c", real=True)
    shapes = Shapes()
    for sym in (a, b, c):
        shapes.declare(sym, (3, 3))
    p = NumPyPrinter(shapes)
    rng = np.random.default_rng(0)
    env = {"numpy": np, **{s.name: rng.uniform(1, 2, (3, 3)) for s in (a, b, c)}}
    cases = [
        (MatMul(a, b * c), lambda: env["a"] @ (env["b"] * env["c"])),
        (MatMul(a * b, c), lambda: (env["a"] * env["b"]) @ env["c"]),
        (c * MatMul(a, b), lambda: env["c"] * (env["a"] @ env["b"])),
        (MatMul(a, b) * c, lambda: (env["a"] @ env["b"]) * env["c"]),
        (a / MatMul(b, c), lambda: env["a"] / (env["b"] @ env["c"])),
        (1 / MatMul(b, c), lambda: 1 / (env["b"] @ env["c"])),
        (a / (b * c), lambda: env["a"] / (env["b"] * env["c"])),
        (sympy.Pow(sympy.Pow(a, 2, evaluate=False), 3, evaluate=False),
         lambda: (env["a"] ** 2) ** 3),
        (MatMul(Transpose(a + b, shape_tuple((1, 0))), c),
         lambda: (env["a"] + env["b"]).T @ env["c"]),
        (-MatMul(a, b), lambda: -(env["a"] @ env["b"])),
        (sympy.Add(a, sympy.Mul(-1, sympy.Add(b, c, evaluate=False), evaluate=False),
                   evaluate=False), lambda: env["a"] - (env["b"] + env["c"])),
        (sympy.Add(sympy.Mul(-1, a, evaluate=False), b, evaluate=False),
         lambda: env["b"] - env["a"]),
        (sympy.Add(a, sympy.Mul(-2, b, c, evaluate=False), evaluate=False),
         lambda: env["a"] - 2 * env["b"] * env["c"]),
    ]
    for expr, expected in cases:
        text = p.doprint(expr)
        np.testing.assert_allclose(eval(text, env), expected(), err_msg=text)


def test_masks_are_never_negated_or_multiplied_first():
    from symcompile.ops.softmax import OneHot

    shapes = Shapes()
    shapes.declare(x, (4, 3))
    shapes.declare(t, (4, 1))
    shapes.declare(g, ())
    p = NumPyPrinter(shapes)
    onehot = OneHot(t, sympy.Integer(3), sympy.Integer(1))
    assert p.doprint(x - onehot) == "x - (t == numpy.arange(3))"
    assert p.doprint(-onehot) == "-numpy.asarray(t == numpy.arange(3), dtype=numpy.float32)"
    assert p.doprint(2 * onehot * x) == "2*x*(t == numpy.arange(3))"
    assert p.doprint(-g * onehot) == "-g*numpy.asarray(t == numpy.arange(3), dtype=numpy.float32)"


def test_arithmetic_on_masks_is_arithmetic_on_numbers():
    """NumPy's bool + bool is a logical or, bool - bool an error, vdot of bools a bool,
    2*bool an int64 array: masks combined with each other count as 0 and 1."""
    import numpy as np

    from symcompile.ops.sympy_functions import IsGreater

    shapes = Shapes()
    for symbol in (x, y):
        shapes.declare(symbol, (5,))
    shapes.declare(g, ())
    p = NumPyPrinter(shapes)
    a, b = sympy.Heaviside(x), IsGreater(x, y)
    values = {"x": np.array([-1, 0.5, 2, 3, -4], np.float32),
              "y": np.array([0, 1, 1, 4, -5], np.float32), "g": np.float32(0.5)}
    ma = (values["x"] > 0).astype(np.float32)
    mb = (values["x"] > values["y"]).astype(np.float32)
    cases = [(a + b, ma + mb), (a - b, ma - mb), (-a - b, -ma - mb), (2 * a, 2 * ma),
             (g * a * b, 0.5 * ma * mb), (a * b + a, ma * mb + ma), (a**2 - b, ma - mb),
             (Dot(a, b), np.vdot(ma, mb)),
             (ReduceSum(a, shape_tuple((0,)), 0, shape_tuple((5,))), ma.sum())]
    env = {"numpy": np, **values}
    for expr, expected in cases:
        text = p.doprint(expr)
        got = eval(text, env)
        np.testing.assert_array_equal(got, expected, err_msg=text)
        assert np.asarray(got).dtype == np.float32, text


def test_products_with_an_inner_dimension_of_1_are_numpy_dot_calls(tmp_path):
    """A batch-1 weight gradient x.T @ dy is numpy.dot(x.T, dy) in the NumPy module
    (NumPy's matmul is ~6x slower for it), @ on the array API backend, same numbers."""
    import numpy as np

    import symcompile as nn
    import symcompile.functions as F

    x = nn.Variable((1, 6))
    x.name = "x"
    w = nn.Variable((6, 4), need_grad=True)
    w.name = "w"
    loss = F.sum(F.tanh(F.affine(x, w)) ** 2)
    numpy_result = nn.compile(loss, name="outer", output_dir=tmp_path / "n", dtype="float64")
    source = numpy_result.source
    assert "numpy.dot(x.T, " in source
    other = nn.compile(loss, name="outer", output_dir=tmp_path / "a", dtype="float64",
                       backend="array_api")
    assert "x.T @ " in other.source and "xp.dot(" not in other.source
    rng = np.random.default_rng(0)
    xv, wv = rng.normal(size=(1, 6)), rng.normal(size=(6, 4))
    _, grad = numpy_result.module.gradient(xv, wv)
    expected = xv.T @ (2 * np.tanh(xv @ wv) * (1 - np.tanh(xv @ wv) ** 2))
    np.testing.assert_allclose(grad, expected, rtol=1e-12)
    _, other_grad = other.module.gradient(xv, wv)
    np.testing.assert_allclose(np.asarray(other_grad), expected, rtol=1e-12)
