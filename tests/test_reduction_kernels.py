"""Sums over axes as BLAS products (reduce_sum, reduce_sum_of_products): the kernels
against NumPy's float64 sums, what the printer routes to them, and compiled graphs
large enough to use them against central differences."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import sympy
from gradcheck import arguments

import symcompile as nn
import symcompile.functions as F
from symcompile.backends.array_api import ArrayAPIPrinter
from symcompile.backends.kernels.numpy_kernels import reduce_sum, reduce_sum_of_products
from symcompile.backends.printer import NumPyPrinter
from symcompile.ir.primitives import ReduceSum, Shapes, shape_tuple

CASES = [
    ((64, 6, 28, 28), (0, 2, 3)),  # batch normalization's channels
    ((5, 3, 7), (0, 2)),
    ((1024, 16), (0,)),  # a bias's gradient: nothing after the kept axis
    ((16, 512), (1,)),  # layer normalization: nothing before it
    ((4, 3, 5, 6), (0, 1)),  # two kept axes at the end
    ((4, 3, 5, 6), (0, 3)),  # two kept axes in the middle
    ((2, 3, 4, 5, 6), (0, 1, 4)),
    ((7, 1, 9), (0, 2)),  # a kept axis of length 1
    ((4, 3, 5), (1, 2)),
    ((3, 4, 5), (0, 2)),
    ((4, 3, 5), (0, 2, 1)),  # every axis: NumPy's sum (no kept axis to batch over)
    ((6, 4, 5), (1,)),  # kept axes on both sides: NumPy's sum
]


@pytest.mark.parametrize("keepdims", [True, False])
@pytest.mark.parametrize(("shape", "axes"), CASES)
def test_the_kernels_are_numpys_sums(shape, axes, keepdims):
    rng = np.random.default_rng(sum(shape) + len(axes))
    x = rng.standard_normal(shape)
    y = rng.standard_normal(shape)
    exact = {"x": x.sum(axis=axes, keepdims=keepdims),
             "x*y": (x * y).sum(axis=axes, keepdims=keepdims),
             "x**2": (x * x).sum(axis=axes, keepdims=keepdims)}
    got = {"x": reduce_sum(x, axes, keepdims),
           "x*y": reduce_sum_of_products(x, y, axes, keepdims),
           "x**2": reduce_sum_of_products(x, x, axes, keepdims)}
    for name, value in got.items():
        assert value.shape == exact[name].shape, name
        assert value.dtype == np.float64, name
        np.testing.assert_allclose(value, exact[name], rtol=1e-12, atol=1e-12, err_msg=name)
    # float32, as a module computes: as close to the float64 sum as NumPy's own float32 sum
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    exact64 = (x32.astype(np.float64) * y32).sum(axis=axes, keepdims=keepdims)
    ours = reduce_sum_of_products(x32, y32, axes, keepdims)
    numpys = (x32 * y32).sum(axis=axes, keepdims=keepdims)
    assert ours.dtype == np.float32
    bound = max(2 * np.abs(numpys - exact64).max(), 1e-6 * math.prod(shape) ** 0.5)
    assert np.abs(ours - exact64).max() <= bound


def test_views_and_empty_axes_of_length_zero():
    rng = np.random.default_rng(3)
    base = rng.standard_normal((8, 6, 10, 12))
    view = np.moveaxis(base, 1, 0)  # not contiguous: (6, 8, 10, 12)
    np.testing.assert_allclose(reduce_sum_of_products(view, view, (0, 2, 3), True),
                               (view**2).sum(axis=(0, 2, 3), keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(reduce_sum(view[:, ::2], (0, 3), False),
                               view[:, ::2].sum(axis=(0, 3)), rtol=1e-12)
    empty = np.zeros((0, 3, 4))
    assert reduce_sum(empty, (0, 2), True).shape == (1, 3, 1)
    assert not reduce_sum(empty, (0, 2), True).any()


def _printed(printer_class, shape, axes, build, mask=False):
    a, b = sympy.symbols("a b", real=True)
    shapes = Shapes()
    shapes.declare(a, shape)
    shapes.declare(b, shape)
    if mask:
        shapes.declare_mask(a)
    return printer_class(shapes).doprint(
        ReduceSum(build(a, b), shape_tuple(axes), sympy.Integer(1), shape_tuple(shape)))


def test_the_printer_routes_large_sums_around_consecutive_kept_axes():
    big, small = (64, 6, 28, 28), (8, 6, 4, 4)
    assert _printed(NumPyPrinter, big, (0, 2, 3), lambda a, b: a * b) == \
        "reduce_sum_of_products(a, b, axes=(0, 2, 3), keepdims=True)"
    assert _printed(NumPyPrinter, big, (0, 2, 3), lambda a, b: a**2) == \
        "reduce_sum_of_products(a, a, axes=(0, 2, 3), keepdims=True)"
    assert _printed(NumPyPrinter, big, (0, 2, 3), lambda a, b: a) == \
        "reduce_sum(a, axes=(0, 2, 3), keepdims=True)"
    assert _printed(NumPyPrinter, big, (0, 2, 3), lambda a, b: sympy.exp(a) + b) == \
        "reduce_sum(numpy.exp(a) + b, axes=(0, 2, 3), keepdims=True)"
    # below the size, around kept axes on both sides, or of a mask: NumPy's sum
    assert _printed(NumPyPrinter, small, (0, 2, 3), lambda a, b: a * b) == \
        "(a*b).sum(axis=(0, 2, 3), keepdims=True)"
    assert _printed(NumPyPrinter, big, (1,), lambda a, b: a) == \
        "a.sum(axis=1, keepdims=True)"
    assert _printed(NumPyPrinter, big, (0, 2, 3), lambda a, b: a, mask=True) == \
        "a.sum(axis=(0, 2, 3), keepdims=True, dtype=numpy.float32)"
    # the array API backend sums with its namespace
    assert "reduce_sum" not in _printed(ArrayAPIPrinter, big, (0, 2, 3), lambda a, b: a * b)


def _directional_check(module, arrays, rng, directions=3, eps=1e-6):
    """<gradient, v> against the central difference of forward along v, per leaf, for
    random directions v (the leaves are too large for one difference per element)."""
    outputs = module.gradient(*arrays)
    grads = dict(zip(module.GRADIENTS, outputs[len(module.OUTPUTS):], strict=True))
    names = list(module.INPUTS) + [p["argument"] for p in module.PARAMETERS.values()]
    for name, grad in grads.items():
        index = names.index(name)
        for _ in range(directions):
            v = rng.standard_normal(arrays[index].shape)
            moved = [a.copy() for a in arrays]
            moved[index] = arrays[index] + eps * v
            plus = float(np.ravel(module.forward(*moved))[0])
            moved[index] = arrays[index] - eps * v
            minus = float(np.ravel(module.forward(*moved))[0])
            expected = (plus - minus) / (2 * eps)
            assert np.vdot(grad, v) == pytest.approx(expected, rel=1e-6, abs=1e-7), name


def _named(name, shape, need_grad=False):
    variable = nn.Variable(shape, need_grad=need_grad)
    variable.name = name
    return variable


def test_a_batch_normalization_large_enough_for_the_kernels(tmp_path: Path):
    rng = np.random.default_rng(0)
    shape, stat = (16, 8, 8, 8), (1, 8, 1, 1)  # 8192 elements
    nn.clear_parameters()
    x, weights = _named("x", shape, True), _named("r", shape)
    beta, gamma = _named("beta", stat, True), _named("gamma", stat, True)
    mean, var = _named("mean", stat), _named("var", stat)
    loss = F.sum(F.batch_normalization(x, beta, gamma, mean, var, batch_stat=True) * weights)
    module = nn.compile(loss, name="bn_kernels", output_dir=tmp_path, dtype="float64").module
    source = Path(module.__file__).read_text()
    assert "reduce_sum_of_products(" in source and "reduce_sum(" in source
    values = {"x": rng.standard_normal(shape) * 2 + 1, "r": rng.standard_normal(shape),
              "beta": rng.standard_normal(stat), "gamma": rng.standard_normal(stat),
              "mean": np.zeros(stat), "var": np.ones(stat)}
    arrays = arguments(module, values)
    xs = values["x"]  # forward against NumPy
    normalized = (xs - xs.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(
        xs.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
    expected = ((normalized * values["gamma"] + values["beta"]) * values["r"]).sum()
    assert float(np.ravel(module.forward(*arrays))[0]) == pytest.approx(expected, rel=1e-12)
    _directional_check(module, arrays, rng)


def test_layer_normalization_and_a_bias_gradient_large_enough(tmp_path: Path):
    rng = np.random.default_rng(1)
    nn.clear_parameters()
    x, r = _named("x", (1024, 16), True), _named("r", (1024, 16))
    w, b = _named("w", (16, 16), True), _named("b", (16,), True)
    beta, gamma = _named("beta", (1, 16), True), _named("gamma", (1, 16), True)
    loss = F.sum(F.tanh(F.layer_normalization(F.affine(x, w, b), beta, gamma)) * r)
    module = nn.compile(loss, name="ln_kernels", output_dir=tmp_path, dtype="float64").module
    source = Path(module.__file__).read_text()
    assert "reduce_sum(" in source and "reduce_sum_of_products(" in source
    values = {"x": rng.standard_normal((1024, 16)), "r": rng.standard_normal((1024, 16)),
              "w": rng.standard_normal((16, 16)) / 4, "b": rng.standard_normal(16),
              "beta": rng.standard_normal((1, 16)), "gamma": rng.standard_normal((1, 16))}
    _directional_check(module, arguments(module, values), rng)
