"""The array API backend (``backend="array_api"``): modules that compute with the library of
the arrays they are given, checked against the NumPy backend's modules.

Most checks run the modules on array-api-strict arrays, which refuse anything the Python
array API standard does not define (Python scalars where arrays are required, NumPy's
names, arithmetic on booleans, mixed dtypes): a module that runs there is portable. Each
check compiles the same graph for both backends and compares the numbers:

- every elementwise and structural function (the tables of test_functions.py and
  test_network_functions.py, imported, plus the structural cases below): forward(),
  gradient(), forward_saving() + backward(), within float32 rounding;
- every solver's fused step (the configurations of test_solvers.py, and every update
  rule they miss): parameters and states after a few steps, against the NumPy module's
  step and the independent reference formulas of solver_reference.py;
- immutable arrays (a read-only array-api-strict wrapper, and JAX), PyTorch CPU tensors;
- the module alone in a process where sympy, jinja2, symcompile and array-api-compat
  cannot be imported; the runtime (set_backend), the CLI (--backend array-api); and the
  ValueErrors for arguments of the wrong shape, dtype or library.

The random-graph properties run for this backend too (test_random_graphs.py).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import array_api_strict as xps
import numpy as np
import pytest
import solver_reference as R
import test_elementwise_catalogue as catalogue
import test_functions as function_tables
import test_network_functions as network_tables
from conftest import ROOT
from numpy_only import BLOCKER
from test_solvers import CONFIGS
from test_solvers import ids as config_id

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF
import symcompile.solvers as S
from symcompile.ops.registry import OPS
from symcompile.ops.update_rules import RULES
from symcompile.runtime import execution
from symcompile.tools.cli import main

BACKENDS = ("numpy", "array_api")
STRICT_ARRAY = type(xps.asarray(0.0))
# array-api-strict's devices other than the default: arrays of two devices cannot be
# combined, and "no_float64" has no float64, so a module that makes an array without
# `device=device` fails there, and so does a float32 module that makes a float64 array
DEVICE = xps.Device("no_float64")  # for float32 modules
DEVICE_64 = xps.Device("device1")  # for float64 modules
# float32 rounding: both backends compute the same expressions with NumPy underneath, a few
# through other functions (vecdot for vdot, xp.sum for .sum(), masks made numbers first)
RTOL, ATOL = 2e-6, 1e-6


def on_device(device):
    """NumPy arrays as array-api-strict arrays on `device`."""
    return lambda args: [xps.asarray(a, device=device) for a in args]


def compile_both(loss, tmp_path, name, solver=None, dtype="float32") -> dict:
    """`loss`'s graph compiled for each backend: {backend: module}."""
    return {backend: nn.compile(loss, name=f"{name}_{backend}", output_dir=tmp_path / "gen",
                                solver=solver, dtype=dtype, backend=backend).module
            for backend in BACKENDS}


def argument_names(module) -> list[str]:
    return list(module.INPUTS) + [p["argument"] for p in module.PARAMETERS.values()]


def host(array, library=STRICT_ARRAY, dtype="float32") -> np.ndarray:
    """`array` (asserted to be an array of `library` and `dtype`) as a NumPy array."""
    assert isinstance(array, library), f"{type(array).__module__}.{type(array).__name__}"
    assert str(array.dtype).endswith(dtype), array.dtype
    return np.from_dlpack(array)


def as_tuple(result) -> tuple:
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)


def assert_same(got, expected, what, library=STRICT_ARRAY, dtype="float32",
                device=None) -> None:
    """`got` (arrays of `library`, on `device` if given) holds `expected`'s NumPy numbers,
    shape for shape."""
    got, expected = as_tuple(got), as_tuple(expected)
    assert len(got) == len(expected), (what, len(got), len(expected))
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        if device is not None:
            assert a.device == device, (what, i, a.device)
        a = host(a, library, dtype)
        assert a.shape == np.shape(b), (what, i, a.shape, np.shape(b))
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=f"{what} [{i}]")


# --- bugs found and fixed ------------------------------------------------------------------
# Each is the smallest program found whose array API module failed on array-api-strict while
# the NumPy module ran it; each must now give the NumPy module's numbers.

PROLOGUE = """
import numpy as np
import symcompile as nn
import symcompile.functions as F

nn.clear_parameters()


def leaf(name, shape, values, need_grad=True):
    variable = nn.Variable(shape, need_grad=need_grad)
    variable.name = name
    variable.d = values
    return variable
"""

FOUND = {
    # the functions of symcompile.ops.sympy_functions now evaluate on numbers
    "a function of a Python number (loss = x + xp.abs(0))": """
x = leaf("x", (), 0.7)
loss = F.absolute_error(x, x) + x
""",
    "a function of two Python numbers (xp.logaddexp(0, 2), xp.maximum(1, -88.72))": """
x = leaf("x", (), 0.7)
loss = F.softplus(x / x, beta=2.0) + F.sigmoid(x / x) + F.elu(x - x - 1.0) + x
""",
    # SymPy's functions of numbers that do not fold (acosh(0) is complex to SymPy, NaN
    # to NumPy) are called on 0-d arrays
    "a NumPy function of a number that SymPy does not evaluate (xp.acosh(0))": """
x = leaf("x", (2,), [0.7, 1.5])
loss = F.sum(F.acosh(x - x) * 0.0 + F.atan2(x - x, x - x) + x)
""",
    # a number summed over an array's shape fills an array of the module's dtype
    "broadcast_to of a Python number (xp.broadcast_to(3.0, (3, 2)))": """
w = leaf("w", (3, 2), [[0.5, -1.2], [0.3, 0.8], [-0.4, 1.1]])
h = F.softplus(w) + 1.0
ratio = F.pow_scalar(F.mul_scalar(h ** 2, 1.5), 0.5) / h  # sqrt(1.5), once SymPy sees it
loss = F.sum(ratio ** 2 + 1.5) + F.sum(w * w)
""",
    # labels computed in the module are floats: compared as integers with the arange
    "constant class labels (float labels == integer arange)": """
x = leaf("x", (3, 4), np.linspace(-1, 1, 12).reshape(3, 4))
t = leaf("t", (3, 1), [[3], [2], [1]], need_grad=False)
loss = F.sum(F.softmax_cross_entropy(x, t * 0)) + F.sum(F.softmax_cross_entropy(x, t + 0.5))
""",
}


def run_program(code: str, tmp_path, dtype="float64"):
    """Run a graph program, compile its loss for both backends; the array API module's
    forward() and gradient() on array-api-strict arrays give the NumPy module's."""
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - the programs above
    modules = compile_both(namespace["loss"], tmp_path, "program", dtype=dtype)
    values = {name: var.d for name, var in namespace.items()
              if isinstance(var, nn.Variable) and var.parent is None and var.name}
    device = DEVICE_64 if dtype == "float64" else DEVICE
    results = run_all(modules, values, on_device(device), dtype)
    compare_runs(results, dtype=dtype, device=device)


@pytest.mark.parametrize("name", list(FOUND))
def test_found_bug_stays_fixed(name, tmp_path):
    run_program(PROLOGUE + FOUND[name], tmp_path)


# --- every function: forward and gradient equal to the NumPy backend's -------------------

@dataclass(frozen=True)
class Case:
    """``build(*variables)`` on inputs drawn by ``draw(rng)``; `labels` marks the inputs that
    are constants (class labels, targets)."""

    build: Callable
    draw: Callable
    labels: tuple[int, ...] = ()


def _holding(variable, values):
    """`variable`, given `values` (for a function whose output shape follows from them)."""
    variable.d = values
    return variable


def _spd(rng, batch, n):
    """Symmetric positive definite matrices (batch, n, n), well conditioned."""
    a = rng.normal(size=(batch, n, n))
    return a @ np.swapaxes(a, 1, 2) / n + np.eye(n)


def _off_grid(rng, shape, sizes, align_corners=False):
    """Points whose positions in pixels are 0.1 to 0.4 from the nearest integer, inside
    and outside the image (the kinks of sampling, padding, reflecting and rounding are at
    integers and halves): a grid (B, *out, 2) for warp_by_grid of x of spatial `sizes`, or
    with sizes None a flow (N, 2, H, W) (whole pixels plus 0.1 to 0.4)."""
    whole = rng.integers(-2, 3, size=shape)
    part = rng.uniform(0.1, 0.4, size=shape) * rng.choice([-1, 1], size=shape)
    if sizes is None:
        return whole + part
    n = np.array(sizes[::-1], dtype=float)  # (W, H): the grid's (x, y)
    pixels = whole + part + rng.integers(0, 2, size=shape) * (n - 1)  # (-2 .. n + 1)
    return 2 * pixels / (n - 1) - 1 if align_corners else (2 * pixels + 1) / n - 1


def normal(*shapes, scale=1.0):
    return lambda rng: [scale * rng.normal(size=s) for s in shapes]


UNARY_SHAPES = (((2, 3, 4),), ((),))  # per call of the function, the shape of each input
BINARY_SHAPES = (((2, 3, 4), (1, 3, 1)), ((), ()))


def at_two_shapes(build, sample, shapes=UNARY_SHAPES):
    """An elementwise function at two shapes in one graph (arrays with axes and 0-d
    arrays, which the standard treats alike and NumPy does not): one module per backend."""
    def both(*variables):
        half = len(variables) // 2
        return build(*variables[:half]), build(*variables[half:])

    return Case(both, lambda rng: [sample(shape, rng) for call in shapes for shape in call])


def _table_cases() -> dict[str, Case]:
    """The function tables of test_functions.py and test_network_functions.py."""
    cases: dict[str, Case] = {}

    def sampler(positive):
        return (lambda shape, rng: rng.uniform(0.5, 2.0, size=shape)) if positive else (
            lambda shape, rng: rng.normal(size=shape))

    for name, build, _, positive in function_tables.UNARY:
        cases[f"unary {name}"] = at_two_shapes(build, sampler(positive))
    for name, build, _, positive in function_tables.BINARY:
        cases[f"binary {name}"] = at_two_shapes(
            build, sampler(positive), BINARY_SHAPES)
    for name, build, _, domain in function_tables.MATHS:
        cases[f"maths {name}"] = at_two_shapes(build, domain)
    cases["maths atan2"] = at_two_shapes(F.atan2, function_tables.away_from_zero,
                                         BINARY_SHAPES)
    for name, build, _, sample in network_tables.UNARY:
        cases[f"network {name}"] = at_two_shapes(
            build, lambda shape, rng, sample=sample: sample(rng, *shape), (((5, 2),), ((),)))
    for name, build, _ in network_tables.BINARY:
        cases[f"network {name}"] = Case(build, normal((2, 3, 4), (1, 3, 1)))
    return cases


def _softmax_cross_entropy(axis):
    def draw(rng):
        shape = [3, 4, 5]
        x = 2 * rng.normal(size=shape)
        shape[axis] = 1
        t = rng.integers(0, (3, 4, 5)[axis], size=shape).astype(np.float64)
        t.flat[0] = -1  # ignored
        return [x, t]

    return Case(lambda x, t: F.softmax_cross_entropy(x, t, axis=axis), draw, labels=(1,))


def _targets(rng, shape=(4, 3)):
    t = rng.integers(0, 2, size=shape).astype(np.float64)
    t.flat[0] = 0.7  # read as class 0
    return t


def _structural_cases() -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for op in ("max", "min", "sum", "mean"):
        for axis, keepdims in network_tables.REDUCTION_AXES:
            cases[f"{op} axis={axis} keepdims={keepdims}"] = Case(
                lambda x, op=op, axis=axis, keepdims=keepdims: getattr(F, op)(
                    x, axis=axis, keepdims=keepdims), normal((2, 3, 4)))
    cases["max with ties"] = Case(
        lambda x: F.max(x, axis=1), lambda rng: [np.array([[1.0, 3, 3, 0], [2, 2, 2, 2]])])
    cases["min with ties, all axes"] = Case(
        F.min, lambda rng: [np.array([[1.0, -3, 0], [-3, 2, -3]])])
    cases["reduce_sum"] = Case(F.reduce_sum, normal((3, 4)))
    cases["reduce_mean"] = Case(F.reduce_mean, normal((3, 4)))
    for op in ("softmax", "log_softmax"):
        for axis in (0, 1, 2, -1):
            cases[f"{op} axis={axis}"] = Case(
                lambda x, op=op, axis=axis: getattr(F, op)(x, axis=axis),
                normal((2, 3, 4), scale=3.0))
        cases[f"{op} over an axis of length 1"] = Case(
            lambda x, op=op: getattr(F, op)(x, axis=1), normal((3, 1)))
    for axis in (0, 1, 2, -1):
        cases[f"softmax_cross_entropy axis={axis}"] = _softmax_cross_entropy(axis)
    cases["sigmoid_cross_entropy"] = Case(
        F.sigmoid_cross_entropy, lambda rng: [3 * rng.normal(size=(4, 3)), _targets(rng)],
        labels=(1,))
    cases["binary_cross_entropy"] = Case(
        F.binary_cross_entropy,
        lambda rng: [rng.uniform(0.1, 0.9, size=(4, 3)), rng.uniform(size=(4, 3))],
        labels=(1,))
    cases["binary_cross_entropy, target with a gradient"] = Case(
        F.binary_cross_entropy,
        lambda rng: [rng.uniform(0.1, 0.9, size=(4, 3)), rng.uniform(size=(4, 3))])
    for x_shape, w_shape, base_axis, bias in [
            ((4, 3), (3, 5), 1, True), ((4, 3), (3, 5), 1, False), ((2, 3, 4), (12, 5), 1, True),
            ((2, 3, 4), (4, 5), 2, True), ((4, 3), (3, 2, 5), 1, True), ((3,), (3, 2), 0, True)]:
        shapes = (x_shape, w_shape) + ((w_shape[1:],) if bias else ())
        cases[f"affine {x_shape} {w_shape} base_axis={base_axis} bias={bias}"] = Case(
            lambda *v, base_axis=base_axis: F.affine(*v, base_axis=base_axis), normal(*shapes))
    for a_shape, b_shape, ta, tb in [
            ((2, 3, 4), (2, 4, 5), False, False), ((2, 4, 3), (2, 4, 5), True, False),
            ((2, 3, 4), (2, 5, 4), False, True), ((2, 1, 3, 4), (1, 3, 4, 2), False, False),
            ((1, 3, 4), (1, 4, 2), False, False), ((1, 4, 3), (1, 2, 4), True, True)]:
        cases[f"batch_matmul {a_shape} {b_shape} {ta} {tb}"] = Case(
            lambda a, b, ta=ta, tb=tb: F.batch_matmul(a, b, transpose_a=ta, transpose_b=tb),
            normal(a_shape, b_shape))
    for a_shape, b_shape in [((3, 4), (4, 2)), ((4,), (4,)), ((4,), (4, 2)), ((3, 4), (4,)),
                             ((2, 3, 4), (4, 5)), ((2, 3, 4), (4,)), ((3, 4), (2, 4, 5)),
                             ((4,), (2, 4, 5)), ((4,), (3, 2, 4, 5))]:
        cases[f"matmul {a_shape} @ {b_shape}"] = Case(lambda a, b: a @ b,
                                                      normal(a_shape, b_shape))
    # more configurations (3-D, base_axis, against nnabla) in test_convolution.py
    for x_shape, w_shape, bias, kwargs in [
            ((2, 3, 5, 5), (4, 3, 3, 3), True, {"pad": (1, 1), "stride": (2, 2)}),
            ((2, 4, 5, 6), (4, 2, 2, 3), False, {"dilation": (2, 1), "group": 2}),
            ((2, 2, 7), (3, 2, 3), True, {"pad": (2,), "stride": (3,)})]:
        shapes = (x_shape, w_shape) + (((w_shape[0],),) if bias else ())
        cases[f"convolution {x_shape} {w_shape} {kwargs}"] = Case(
            lambda *v, kwargs=kwargs: F.convolution(*v, **kwargs), normal(*shapes))
    # more configurations (1-D to 3-D, groups, against nnabla) in test_deconvolution.py
    cases["deconvolution"] = Case(
        lambda x, w, b: F.deconvolution(x, w, b, stride=(2, 2), pad=(1, 0),
                                        output_padding=(1, 0)),
        normal((2, 3, 3, 4), (3, 2, 3, 2), (2,)))
    cases["depthwise_convolution"] = Case(
        lambda x, w: F.depthwise_convolution(x, w, pad=(1, 1), multiplier=2),
        normal((2, 2, 4, 4), (4, 3, 3)))
    cases["unpooling"] = Case(lambda x: F.unpooling(x, (2, 3)), normal((2, 3, 2, 2)))
    cases["embed"] = Case(
        F.embed, lambda rng: [rng.integers(0, 5, size=(2, 3)).astype(np.float64),
                              rng.normal(size=(5, 4))], labels=(0,))
    # more configurations (3-D, ignore_border, ties, against nnabla) in test_pooling.py
    for op, kwargs in [
            ("max_pooling", {"kernel": (2, 2)}),
            ("max_pooling", {"kernel": (3, 3), "stride": (2, 1), "pad": (1, 1)}),
            ("average_pooling", {"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1)}),
            ("average_pooling", {"kernel": (2, 3), "pad": (1, 1), "including_pad": False,
                                 "ignore_border": False}),
            ("sum_pooling", {"kernel": (2, 2), "stride": (1, 2), "ignore_border": False})]:
        cases[f"{op} {kwargs}"] = Case(
            lambda x, op=op, kwargs=kwargs: getattr(F, op)(x, **kwargs), normal((2, 3, 5, 6)))
    cases["global_average_pooling"] = Case(F.global_average_pooling, normal((2, 3, 4, 5)))
    cases["bool_fill"] = Case(  # (more, and nnabla's numbers: test_elementwise_catalogue.py)
        lambda x, m: F.bool_fill(x, m, -0.5),
        lambda rng: [rng.normal(size=(2, 3, 4)),
                     np.where(rng.normal(size=(2, 1, 4)) > 0, 1.0, 0.0)], labels=(1,))
    cases["bool_scatter"] = Case(  # (more, and nnabla's numbers: test_bool_scatter.py)
        F.bool_scatter, lambda rng: [rng.normal(size=(3, 2)), np.array([[0, 1.5, 0], [-1, 0, 2]])],
        labels=(1,))
    # outputs shaped by an input's values: the build gives the input the draw's values
    # first (more, and nnabla's numbers: test_value_shaped.py)
    mask = np.array([[0, 1.5, 0], [-1, 0, 2]])
    repeats = np.array([[3.0, 1, 3, 2], [0, 5, 0, 2], [3, 1, 3, 2]])
    cases["bool_gather"] = Case(lambda x, m: F.bool_gather(x, _holding(m, mask)),
                                lambda rng: [rng.normal(size=(2, 3, 2)), mask], labels=(1,))
    cases["unique nonzero"] = Case(
        lambda x: (*F.unique(_holding(x, repeats), flatten=False, axis=1, sorted=False,
                             with_index=True, with_inverse=True, with_counts=True),
                   F.unique(x), F.nonzero(x)),
        lambda rng: [repeats])
    boxes = np.random.default_rng(2).random((2, 5, 4))
    scores = np.random.default_rng(3).random((2, 2, 5))
    cases["onnx_non_max_suppression"] = Case(  # (more, and nnabla's: test_onnx_nms.py)
        lambda b, s: F.onnx_non_max_suppression(_holding(b, boxes), _holding(s, scores), 0, 3,
                                                0.2, 0.1),
        lambda rng: [boxes, scores], labels=(0, 1))
    lengths, sizes = np.array([3.0, 1, 2]), np.array([3.0, 2, 1, 1])
    cases["pack_padded_sequence pad_packed_sequence"] = Case(
        lambda x, n, p, s: (*F.pack_padded_sequence(x, _holding(n, lengths)),
                            *F.pad_packed_sequence(p, _holding(s, sizes), batch_first=True,
                                                   padding_value=0.5, total_length=5)),
        lambda rng: [rng.normal(size=(3, 3, 2)), lengths, rng.normal(size=(7, 2)), sizes],
        labels=(1, 3))
    cases["nms_detection2d"] = Case(  # (more, and nnabla's numbers: test_nms_detection2d)
        lambda x: (F.nms_detection2d(x, 0.2, 0.3) * x, F.nms_detection2d(x, 0.1, 0.4, False)),
        lambda rng: [rng.random((2, 6, 7)) * [1, 1, 0.6, 0.6, 1, 1, 1]])
    cases["searchsorted"] = Case(  # (more, and nnabla's indices: test_searchsorted.py)
        lambda s, v: (F.searchsorted(s, v) * v, F.searchsorted(s, v, right=True)),
        lambda rng: [np.sort(rng.normal(size=(2, 6)), axis=-1), rng.normal(size=(2, 4))])
    cases["patch_correlation"] = Case(  # (more, and nnabla's numbers: test_patch_correlation)
        lambda a, b: (F.patch_correlation(a, b, patch=2, shift=(1, 2), shift_step=(1, 2),
                                          padding=(0, 1)),
                      F.patch_correlation(a, b, shift=1, channel_last=True)),
        normal((2, 3, 4, 5), (2, 3, 4, 5)))
    # (more configurations, loop references, nnabla's numbers: test_deformable.py); the
    # offsets put points a pixel and more outside x, the fourth input of one axis is a bias
    cases["deformable_convolution, adaptive_separable_convolution"] = Case(
        lambda x, w, off, m, b, w2, off2, kv, kh: (
            F.deformable_convolution(x, w, off, m, b, pad=(1, 1)),
            F.deformable_convolution(x, w2, off2, None, b, stride=(2, 1), dilation=(1, 2),
                                     pad=(1, 0), group=2, deformable_group=2),
            F.deformable_convolution(x, w, off, b),
            F.deformable_convolution(x, w, off, m),
            F.adaptive_separable_convolution(x, kv, kh)),
        lambda rng: [rng.normal(size=(2, 4, 4, 5)), rng.normal(size=(4, 4, 3, 3)),
                     1.5 * rng.normal(size=(2, 18, 4, 5)), rng.uniform(size=(2, 9, 4, 5)),
                     rng.normal(size=(4,)), rng.normal(size=(4, 2, 3, 2)),
                     1.5 * rng.normal(size=(2, 24, 4, 5)), rng.normal(size=(2, 3, 3, 4)),
                     rng.normal(size=(2, 2, 2, 4))])
    cases["roi_align"] = Case(  # (more, channel_last, and nnabla's numbers: test_roi_align.py)
        lambda x, boxes: (F.roi_align(x, boxes, (2, 3)),
                          F.roi_align(x, boxes, (2, 2), spatial_scale=(0.5, 2.0),
                                      sampling_ratio=2)),
        lambda rng: [rng.normal(size=(2, 3, 4, 5)),  # boxes partly outside the image
                     np.array([[0, 0.3, 0.6, 3.7, 2.9], [1, -1.4, 0.2, 2.2, 4.6],
                               [1.6, 2.1, -0.7, 6.3, 3.4]])],
        labels=(1,))
    cases["max_pooling_backward"] = Case(  # (more, and nnabla's numbers: test_pooling.py)
        lambda dy, x: F.max_pooling_backward(dy, x, (3, 3), (2, 1), True, (1, 1)),
        normal((2, 3, 3, 6), (2, 3, 5, 6)))
    # more in test_metrics_and_tiles.py and test_grad.py
    cases["top_n_error, binary_error, one_hot"] = Case(
        lambda x, t, i: (F.top_n_error(x, t, n=2), F.binary_error(F.sigmoid(x), x * 0 + 0.7),
                         F.one_hot(i, (3,)), x),
        lambda rng: [rng.normal(size=(4, 3)), rng.integers(-1, 3, size=(4, 1)).astype(float),
                     rng.integers(0, 3, size=(4, 1)).astype(float)], labels=(1, 2))
    cases["tile"] = Case(lambda x: F.tile(x, (2, 1, 3)), normal((2, 3)))
    cases["grad, then differentiated again"] = Case(
        lambda x: nn.grad([F.sum(F.tanh(x) ** 3)], [x])[0], normal((2, 3)))
    # more configurations (indexing, negative steps, against nnabla) in
    # test_array_functions.py
    cases["slice"] = Case(lambda x: F.slice(x, (0, 1, -1), (2, 3, 0), (1, 1, -2)),
                          normal((2, 3, 5)))
    cases["indexing"] = Case(lambda x: x[1, ::2, None, 1:], normal((2, 3, 4)))
    cases["flip"] = Case(lambda x: F.flip(x, axes=(0, 2)), normal((2, 3, 4)))
    cases["pad"] = Case(lambda x: F.pad(x, (1, 2, 0, 1), constant_value=0.5), normal((2, 3, 4)))
    cases["concatenate"] = Case(lambda a, b: F.concatenate(a, b, axis=1),
                                normal((2, 3, 4), (2, 1, 4)))
    cases["stack"] = Case(lambda a, b: F.stack(a, b, axis=2), normal((2, 3), (2, 3)))
    cases["split"] = Case(lambda x: F.split(x, axis=1), normal((2, 3, 2)))
    # the masks of both modules come from one seed (see run_all); more in test_dropout.py
    cases["dropout"] = Case(lambda x: F.dropout(F.tanh(x), p=0.4), normal((4, 5)))
    cases["rand, randn, randint"] = Case(
        lambda: (F.rand(-1, 2, shape=(3, 2)), F.randn(0.5, 2, shape=(4,)),
                 F.randint(0, 4, shape=(2, 2))), lambda rng: [])
    cases["rand_binomial, rand_beta, rand_gamma"] = Case(  # (statistics: test_linalg_and_draws)
        lambda: (F.rand_binomial(5, 0.3, shape=(3, 2)), F.rand_beta(2, 0.5, shape=(4,)),
                 F.rand_gamma(1.5, 2, shape=(2, 2))), lambda rng: [])
    cases["einsum"] = Case(  # (more equations, against nnabla, in test_einsum.py)
        lambda a, b: (F.einsum(a, b, equation="bij,bjk->bik"), F.einsum(a, equation="bii->i"),
                      F.einsum(a, b, equation="...ij,...jk")),
        normal((2, 3, 3), (2, 3, 4)))
    cases["rnn, lstm, gru"] = Case(  # x (T, B, I), h and c (L, D, B, H), weights
        lambda x, h, c, w_rnn, w_lstm, w_gru, b_gru: (
            F.rnn(x, h, w_rnn)[0], *F.lstm(x, h, c, w_lstm), F.gru(x, h, w_gru, bias=b_gru)[1]),
        normal((3, 2, 2), (1, 1, 2, 3), (1, 1, 2, 3), (1, 3, 5), (1, 4, 3, 5), (1, 3, 3, 5),
               (1, 1, 4, 3), scale=0.5))
    cases["assign"] = Case(lambda dst, src: F.assign(dst, src * 2), normal((2, 3), (2, 3)))
    cases["vat_noise"] = Case(  # (the write into w, and nnabla's numbers: test_vat_noise.py)
        lambda x, w: (F.vat_noise(x, w, eps=1.5), F.vat_noise(F.tanh(x), w, 2, 0.5) * x),
        normal((2, 3, 4), (2, 3, 4)))
    cases["constant, arange, linspace"] = Case(  # (an input: the module's library)
        lambda x: (x * F.constant(0.5, (3,)) + F.arange(0, 1.5, 0.5), F.linspace(-1, 1, 3) * x),
        normal((3,)))
    # more configurations (axes, no beta or gamma, against nnabla) in test_normalization.py
    def scales(shape):  # beta and gamma of `shape` for x of (2, 4, 3)
        return lambda rng: [rng.normal(size=(2, 4, 3)), rng.normal(size=shape),
                            rng.uniform(0.5, 1.5, size=shape)]
    cases["layer_normalization"] = Case(F.layer_normalization, scales((1, 4, 3)))
    cases["instance_normalization"] = Case(F.instance_normalization, scales((1, 4, 1)))
    cases["group_normalization"] = Case(
        lambda x, b, g: F.group_normalization(x, b, g, 2), scales((1, 4, 1)))
    for batch_stat in (True, False):
        cases[f"batch_normalization batch_stat={batch_stat}"] = Case(
            lambda x, b, g, m, v, batch_stat=batch_stat: F.batch_normalization(
                x, b, g, m, v, batch_stat=batch_stat),
            lambda rng: [rng.normal(size=(4, 3, 2, 2)), rng.normal(size=(1, 3, 1, 1)),
                         rng.normal(size=(1, 3, 1, 1)), rng.normal(size=(1, 3, 1, 1)),
                         rng.uniform(0.5, 2, size=(1, 3, 1, 1))], labels=(3, 4))
    # across processes (threads, both backends) in test_sync_batch_normalization.py
    for output_stat in (False, True):
        cases[f"sync_batch_normalization output_stat={output_stat}"] = Case(
            lambda x, b, g, m, v, output_stat=output_stat: F.sync_batch_normalization(
                x, b, g, m, v, OneProcess(), output_stat=output_stat),
            lambda rng: [rng.normal(size=(4, 3, 2)), rng.normal(size=(1, 3, 1)),
                         rng.normal(size=(1, 3, 1)), rng.normal(size=(1, 3, 1)),
                         rng.uniform(0.5, 2, size=(1, 3, 1))], labels=(3, 4))
    # more configurations (against NumPy references and nnabla) in test_normalization_more.py
    cases["fused_batch_normalization"] = Case(
        lambda x, b, g, m, v, z: F.fused_batch_normalization(x, b, g, m, v, z),
        lambda rng: [rng.normal(size=(4, 3, 2)), rng.normal(size=(1, 3, 1)),
                     rng.normal(size=(1, 3, 1)), rng.normal(size=(1, 3, 1)),
                     rng.uniform(0.5, 2, size=(1, 3, 1)), rng.normal(size=(4, 3, 2))],
        labels=(3, 4))
    cases["mean_subtraction"] = Case(
        lambda x, m, t: F.mean_subtraction(x, m, t),
        lambda rng: [rng.normal(size=(4, 3)), rng.normal(size=(3,)), np.array([2.0])],
        labels=(1, 2))
    cases["clip_grad_by_value, clip_grad_by_norm"] = Case(
        lambda x, lo, hi: (F.clip_grad_by_value(F.tanh(x), lo, hi),
                           F.clip_grad_by_norm(x * 2, 0.5, axes=[1])),
        lambda rng: [rng.normal(size=(3, 4)), -rng.uniform(0, 0.5, size=(3, 4)),
                     rng.uniform(0, 0.5, size=(3, 4))], labels=(1, 2))
    cases["top_k_grad"] = Case(
        lambda x: (F.top_k_grad(F.tanh(x), 3, abs=True), F.top_k_grad(x * 2, 2, base_axis=2)),
        normal((2, 3, 4)))
    cases["clip_by_norm, norm_normalization"] = Case(
        lambda x: (F.clip_by_norm(x, 1.5, axis=1), F.norm_normalization(x, p=3, axes=[0])),
        normal((3, 4)))
    cases["spectral_norm"] = Case(
        lambda w, u: F.spectral_norm(w, u, dim=1, itr=2), normal((3, 4, 2), (4,)),
        labels=(1,))
    cases["weight_standardization, weight_normalization"] = Case(
        lambda w, g: (F.weight_standardization(w), F.weight_normalization(w, g, dim=1)),
        lambda rng: [rng.normal(size=(4, 3, 2)), rng.uniform(0.5, 2, size=(3,))])
    cases["reshape"] = Case(lambda x: F.reshape(x, (4, -1)), normal((2, 3, 4)))
    cases["reshape to 0-d"] = Case(lambda x: F.reshape(x, ()), normal((1, 1)))
    cases["transpose"] = Case(lambda x: F.transpose(x, (2, 0, 1)), normal((2, 3, 4)))
    cases["broadcast"] = Case(lambda x: F.broadcast(x, (2, 3, 4)), normal((1, 3, 1)))
    cases["broadcast of a 0-d array"] = Case(lambda x: F.broadcast(x, (2, 3)), normal(()))
    cases["reshape of a transpose"] = Case(
        lambda x: F.tanh(F.reshape(F.transpose(x, (1, 0)), (6,))), normal((2, 3)))
    # more configurations (against nnabla) in test_array_functions_more.py
    cases["broadcast_to"] = Case(lambda x, y: F.broadcast_to(x, y, axis=1),
                                 normal((2, 3, 4), (3,)))
    cases["pad reflect, repeat"] = Case(
        lambda x: (F.pad(x, (2, 5, 1, 0), mode="reflect"), F.pad(x, (1, 2), mode="repeat")),
        normal((2, 3, 4)))
    cases["cumsum, cumprod"] = Case(
        lambda x: (F.cumsum(x, axis=1), F.cumsum(x, axis=2, exclusive=True, reverse=True),
                   F.cumprod(x, axis=2), F.cumprod(x, axis=1, exclusive=True)),
        normal((2, 3, 4)))
    cases["prod"] = Case(lambda x: (F.prod(x, axis=1), F.prod(x, axis=(0, 2), keepdims=True)),
                         normal((2, 3, 4)))
    cases["max, min with_index, only_index"] = Case(
        lambda x: (*F.max(x, axis=1, with_index=True), F.min(x, axis=(0, 2), only_index=True),
                   *F.min(x, keepdims=True, with_index=True)), normal((2, 3, 4)))
    cases["sort"] = Case(
        lambda x: (F.sort(x), *F.sort(x, axis=1, reverse=True, with_index=True),
                   F.sort(x, axis=0, only_index=True)), normal((2, 3, 4)))
    cases["shift"] = Case(lambda x: (F.shift(x, (1, -2)), F.shift(x, (-4,), "reflect")),
                          normal((2, 3, 4)))
    cases["matrix_diag, matrix_diag_part"] = Case(
        lambda x, m: (F.matrix_diag(x), F.matrix_diag_part(m)), normal((2, 3), (2, 3, 3)))
    cases["meshgrid"] = Case(lambda a, b, c: F.meshgrid(a, b, c), normal((3,), (2,), (4,)))
    cases["top_k_data"] = Case(
        lambda x: (*F.top_k_data(x, 3, with_index=True),
                   F.top_k_data(x, 2, abs=True, reduce=False, base_axis=2, largest=False)),
        normal((2, 3, 4)))
    cases["gather, scatter_add"] = Case(
        lambda x, i, x0, j, x1: (F.gather(x, i, axis=1), F.gather(x, j, axis=2, batch_dims=1),
                                 F.scatter_add(x0, j, x1, axis=1)),
        lambda rng: [rng.normal(size=(2, 3, 4)), np.array([[2.0, 0], [1, 1]]),
                     rng.normal(size=(2, 4)), np.array([[1.0, 1, 3], [0, 2, 0]]),
                     rng.normal(size=(2, 3))], labels=(1, 3))
    # (repeated positions, negative and partial indices; more in test_gather_nd.py)
    cases["gather_nd, scatter_nd"] = Case(
        lambda x, i, d, j: (F.gather_nd(x, i), F.scatter_nd(d, j, shape=(3, 4)),
                            F.scatter_nd(d, j, shape=(3, 4), add=True)),
        lambda rng: [rng.normal(size=(2, 3, 4)), np.array([[1.0, -1, 0], [2, 0, -3]]),
                     rng.normal(size=(3, 4)), np.array([[2.0, -1, 0]])], labels=(1, 3))
    # more configurations (against NumPy references and nnabla) in test_functions_extra.py
    cases["erf, mod2"] = Case(
        lambda x, y: (F.erf(x * 2), F.erf(x * 0), F.mod2(x * 5, y)),
        lambda rng: [rng.normal(size=(2, 3, 4)), rng.uniform(0.5, 2, size=(2, 3, 1))])
    cases["celu, prelu"] = Case(
        lambda x, w: (F.celu(x, alpha=2.0), F.celu(x, axis=-1), F.prelu(x, w),
                      F.prelu(x, w[:1], base_axis=2)), normal((2, 3, 4), (3,)))
    cases["kl_multinomial"] = Case(
        lambda p, q: (F.kl_multinomial(p, q), F.kl_multinomial(p, q, base_axis=2)),
        lambda rng: [rng.uniform(0.1, 1, size=(2, 3, 4)), rng.uniform(0.1, 1, size=(2, 3, 4))])
    cases["interpolate"] = Case(
        lambda x: (F.interpolate(x, output_size=(5, 3), align_corners=True),
                   F.interpolate(x, scale=(1.5,), half_pixel=True),
                   F.interpolate(x, output_size=(2, 7), mode="nearest")),
        normal((2, 3, 4)))
    # (more, against ONNX's specification and nnabla: test_onnx_resize.py)
    cases["onnx_resize"] = Case(
        lambda x: (F.onnx_resize(x, scales=(1.0, 1.5, 0.75), mode="cubic", exclude_outside=1),
                   F.onnx_resize(x, sizes=(2, 5, 3), mode="linear",
                                 coordinate_transformation_mode="align_corners"),
                   F.onnx_resize(x, sizes=(2, 4, 6), mode="cubic", roi=(0, -0.25, 0.25, 1,
                                                                       1.25, 0.75),
                                 coordinate_transformation_mode="tf_crop_and_resize",
                                 extrapolation_value=0.5),
                   F.onnx_resize(x, scales=(1.0, 2.0, 1.0), nearest_mode="ceil")),
        normal((2, 3, 4)))
    # more configurations (against NumPy references and nnabla) in test_catalogue_more.py
    cases["crelu, add_n, mul_n, bc_add2"] = Case(
        lambda x, y, z: (F.crelu(x), F.crelu(x, axis=2), F.add_n(x, y, x), F.mul_n(x, y, y),
                         F.bc_add2(x, z)), normal((2, 3, 4), (2, 3, 4), (1, 3, 1)))
    cases["norm, tensor_normalization"] = Case(
        lambda x, b, g: (F.norm(x), F.norm(x, p=3, axis=1, keepdims=True),
                         F.tensor_normalization(x, 1),
                         F.tensor_normalization(x, (0, 2), b, g, eps=0.01)),
        normal((2, 3, 4), (2, 1, 4), (2, 1, 4)))
    cases["categorical_cross_entropy, confusion_matrix"] = Case(
        lambda p, t: (F.categorical_cross_entropy(p, t, axis=1),
                      F.confusion_matrix(p, t, axis=1)),
        lambda rng: [rng.uniform(0.1, 1, size=(2, 3, 4)),
                     rng.integers(-1, 3, size=(2, 1, 4)).astype(float)], labels=(1,))
    cases["trilu, eye_like, unlink, shape"] = Case(
        lambda x, m: (F.trilu(x, k=1), F.trilu(x, upper=False), F.eye_like(m, k=1) * m,
                      F.unlink(x) * x, F.reshape(F.shape(x), (1, 3, 1)) * x),
        normal((2, 3, 4), (3, 4)))
    cases["depthwise_deconvolution"] = Case(
        lambda x, w, b: (F.depthwise_deconvolution(x, w), F.depthwise_deconvolution(
            x, w, b, divisor=2, stride=(2, 2), pad=(1, 1))),
        normal((2, 4, 3, 3), (4, 3, 2), (2,)))
    cases["fused_convolution"] = Case(
        lambda x, w, bias, b, g, m, v, z: (
            F.fused_convolution(x, w, bias, pad=(1, 1)),
            F.fused_convolution(x, w, None, b, g, m, v, z, nonlinearity="elu",
                                nonlinearity_args=[0.5])),
        lambda rng: [rng.normal(size=(2, 2, 4, 4)), rng.normal(size=(3, 2, 3, 3)),
                     rng.normal(size=(3,)), rng.normal(size=(1, 3, 1, 1)),
                     rng.normal(size=(1, 3, 1, 1)), rng.normal(size=(1, 3, 1, 1)),
                     rng.uniform(0.5, 2, size=(1, 3, 1, 1)), rng.normal(size=(2, 3, 2, 2))],
        labels=(5, 6))
    # more configurations (against NumPy references and nnabla) in test_quantization.py
    cases["fixed_point_quantize, pow2_quantize, prune"] = Case(
        lambda x: (F.fixed_point_quantize(x), F.fixed_point_quantize(x, False, 4, 0.25),
                   F.pow2_quantize(x, n=4, m=1), F.pow2_quantize(x, False, False, 3, 0),
                   F.prune(x, 0.5)),
        lambda rng: [rng.normal(size=(2, 3, 4)) * 3])
    cases["quantize_linear, dequantize_linear"] = Case(
        lambda x, s, z8, zu8, z: (F.quantize_linear(x * 40, s, z8),
                                  F.quantize_linear(x * 90, s, zu8, "HALF_TO_EVEN", True,
                                                    np.uint8),
                                  F.dequantize_linear(x, s, z)),
        # (a zero point per function, each a level of its range: nnabla rounds and
        # saturates quantize_linear's in place, which a second function reading it would
        # see; test_quantization.py checks the rounding one function at a time)
        lambda rng: [rng.normal(size=(2, 3, 4)), rng.uniform(0.2, 1, size=(1, 3, 1)),
                     np.array([[[-3.0]]]), np.array([[[7.0]]]), np.array([[[0.5]]])],
        labels=(1, 2, 3, 4))
    cases["min_max_quantize"] = Case(
        lambda x, low, high, ql0, ql255, observed_low, observed_high: (
            F.min_max_quantize(x, low, high, ql0, ql255),
            F.min_max_quantize(x, observed_low, observed_high, ql0, ql255, x_min_max=True,
                               ema=True, decay=0.9)),
        lambda rng: [rng.normal(size=(2, 3, 4)), rng.uniform(-2, -0.5, size=(1, 3, 1)),
                     rng.uniform(0.5, 2, size=(1, 3, 1)), np.zeros((1, 3, 1)),
                     np.full((1, 3, 1), 255.0), np.full((1, 3, 1), -1.0),
                     np.ones((1, 3, 1))], labels=(3, 4, 5, 6))
    cases["binary_connect_*, binary_weight_*"] = Case(
        lambda x, w, wb, alpha, b, image, k, kb, k_alpha: (
            F.binary_connect_affine(x, w, wb, b), F.binary_weight_affine(x, w, wb, alpha, b),
            F.binary_connect_convolution(image, k, kb, pad=(1, 1)),
            F.binary_weight_convolution(image, k, kb, k_alpha, stride=(2, 2))),
        lambda rng: [rng.normal(size=(2, 3, 4)), rng.normal(size=(12, 5)), np.zeros((12, 5)),
                     np.zeros(5), rng.normal(size=(5,)), rng.normal(size=(2, 3, 4, 4)),
                     rng.normal(size=(2, 3, 3, 3)), np.zeros((2, 3, 3, 3)), np.zeros(2)],
        labels=(2, 3, 7, 8))
    # the first pass (count 0, listed) fixes half the weights, by |w| or at random (one
    # seed for both: run_all); more, and nnabla's numbers, in test_inq.py
    cases["inq_affine, inq_convolution"] = Case(
        lambda x, w, i, b, image, k, ki: (
            F.inq_affine(x, w, i, b, inq_iterations=(0, 4)),
            F.inq_convolution(image, k, ki, pad=(1, 1), num_bits=3, inq_iterations=(0, 2),
                              selection_algorithm="random")),
        lambda rng: [rng.normal(size=(2, 3, 4)), rng.normal(size=(12, 5)),
                     np.array([1.0, 0.0, 0.0, 0.7, 0.0] * 12).reshape(12, 5),
                     rng.normal(size=(5,)), rng.normal(size=(2, 3, 4, 4)),
                     rng.normal(size=(2, 3, 3, 3)), np.zeros((2, 3, 3, 3))],
        labels=(2, 6))
    # the choices of both modules come from one seed (see run_all)
    cases["random_flip, random_shift, random_crop"] = Case(
        lambda x: (F.random_flip(x, axes=(1, 2)),
                   F.random_shift(x, (1, 2), border_mode="reflect"),
                   F.random_shift(x, (2,), border_mode="constant", constant_value=0.5),
                   F.random_crop(x, (2, 3))),
        normal((3, 3, 4)))
    cases["random_choice"] = Case(  # (its draws and their statistics: test_random_choice.py)
        lambda x, w: (F.random_choice(x, F.exp(w), shape=(2, 3)) * 1.5,
                      F.random_choice(x, F.exp(w), shape=(2,), replace=False)),
        normal((2, 4), (2, 4)))
    cases["random_erase"] = Case(  # (its rectangles and statistics: test_random_erase.py)
        lambda x: (F.random_erase(x, prob=0.8, replacements=(-1, 1), n=2) * x,
                   F.random_erase(x, prob=1.0, share=False, ste_fine_grained=False)),
        normal((2, 2, 5, 6)))
    # (more modes, 3-D, channel_last, which nnabla's CPU refuses to run (test_nnp runs these
    # cases in nnabla), NumPy references of nnabla's loops and nnabla: test_geometry.py)
    cases["affine_grid, warp_by_grid, warp_by_flow"] = Case(
        lambda x, g, a, t, d, f: (
            F.warp_by_grid(x, g), F.warp_by_grid(x, g, padding_mode="reflect"),
            F.warp_by_grid(x, a, "linear", "repeat", align_corners=True),
            F.warp_by_grid(x, a, "linear", "reflect", align_corners=True),
            F.warp_by_grid(x, a, "nearest", "reflect", align_corners=True),
            F.affine_grid(t, (3, 2)), F.affine_grid(t, (2, 4), align_corners=True),
            F.warp_by_flow(d, f)),
        lambda rng: [rng.normal(size=(2, 3, 4, 5)), _off_grid(rng, (2, 3, 2, 2), (4, 5)),
                     _off_grid(rng, (2, 2, 3, 2), (4, 5), align_corners=True),
                     rng.normal(size=(2, 2, 3)), rng.normal(size=(1, 2, 3, 4)),
                     _off_grid(rng, (1, 2, 3, 4), None)])
    # (against numpy.linalg, central differences and nnabla: test_linalg_and_draws.py)
    cases["batch_inv, batch_det, batch_logdet"] = Case(
        lambda x: (F.batch_inv(x), F.batch_det(x), F.batch_logdet(x),
                   F.batch_logdet(-x)),  # a negative determinant: log |det|
        lambda rng: [0.3 * rng.normal(size=(2, 3, 3)) + 2 * np.eye(3)])
    cases["batch_cholesky"] = Case(  # of a symmetric matrix, so that differences see it
        lambda s: (F.batch_cholesky((s + F.transpose(s, (0, 2, 1))) * 0.5),
                   F.batch_cholesky((s + F.transpose(s, (0, 2, 1))) * 0.5, upper=True)),
        lambda rng: [_spd(rng, 2, 3)])
    # (against numpy.fft, central differences and nnabla: test_signal.py)
    cases["fft, ifft"] = Case(
        lambda x, y: (F.fft(x, 1), F.ifft(x, 2, normalized=True), F.fft(y, 3, normalized=True),
                      F.ifft(F.fft(x, 2) * x, 1)),
        normal((2, 4, 3, 2), (3, 2, 4, 2)))
    cases["stft, istft"] = Case(
        lambda x: (*F.stft(x, 6, 2, 8), *F.stft(x, 5, 3, 7, "hamming", False),
                   F.istft(*F.stft(x, 8, 2, 8, pad_mode="constant"), 8, 2, 8,
                           pad_mode="constant"),
                   F.istft(*F.stft(x, 8, 4, 8, "hamming"), 8, 4, 8, "hamming",
                           as_stft_backward=True),
                   *F.stft(x, 8, 2, 8, pad_mode="constant", as_istft_backward=True)),
        normal((2, 20)))
    cases["image_augmentation"] = Case(  # its draws too come from one seed
        lambda x: (F.image_augmentation(x, shape=(3, 3), pad=(1, 1), min_scale=0.8,
                                        max_scale=1.2, angle=0.3, aspect_ratio=1.2,
                                        distortion=0.2, flip_lr=True, flip_ud=True,
                                        brightness=0.1, brightness_each=True, contrast=1.2,
                                        contrast_each=True, contrast_center=0.5, noise=0.1)
                   * x[:, :, :3, :3]),
        normal((2, 2, 4, 5)))
    return cases


# nnabla's conventions where a function has a kink or a tie (its derivative there is a
# boolean mask, which the standard cannot multiply before it is made a number)
KINKS = {
    "maximum2": lambda a, b: F.maximum2(a, b), "minimum2": lambda a, b: F.minimum2(a, b),
    "abs": lambda a, b: F.abs(a), "absolute_error": lambda a, b: F.absolute_error(a, b),
    "relu": lambda a, b: F.relu(a), "leaky_relu": lambda a, b: F.leaky_relu(a, 0.25),
    "elu": lambda a, b: F.elu(a, 2.0), "maximum_scalar": lambda a, b: F.maximum_scalar(a, 1.0),
    "clip_by_value": lambda a, b: F.clip_by_value(a, 0.0, 2.0),
    "relu + maximum_scalar": lambda a, b: F.relu(a) + F.maximum_scalar(a, 1.0),
    "relu - maximum_scalar": lambda a, b: F.relu(a) - F.maximum_scalar(a, 1.0),
}


def _catalogue_cases() -> dict[str, Case]:
    """nnabla's activations, rounding, comparisons and selections
    (test_elementwise_catalogue.py), on values with kinks, ties, halves and zeros."""
    def draw(count):
        def sample(rng):
            arrays = []
            for _ in range(count):
                x = 3 * rng.normal(size=(2, 3, 4))
                x.flat[::3] = np.round(x.flat[::3] * 2) / 2
                x.flat[::7] = 0
                arrays.append(x)
            return arrays
        return sample

    cases = {}
    for name, build, _, draws in catalogue.SMOOTH:
        cases[f"catalogue {name}"] = Case(build, draw(len(draws)))
    for name, build, _ in catalogue.CONSTANT:
        cases[f"catalogue {name}"] = Case(build, draw(1))
    for name, build, _ in catalogue.BINARY_CONSTANT:
        cases[f"catalogue {name}"] = Case(build, draw(2))
    return cases


def _kink_cases() -> dict[str, Case]:
    values = [np.array([0.0, 1.0, 2.0, -1.0]), np.array([0.0, 1.0, 1.0, 0.0])]
    return {f"kink {name}": Case(build, lambda rng: [v.copy() for v in values])
            for name, build in KINKS.items()}


CASES = _table_cases() | _structural_cases() | _catalogue_cases() | _kink_cases()


def _draw(name: str, case: Case) -> list[np.ndarray]:
    rng = np.random.default_rng(zlib.crc32(name.encode()))  # the same numbers every run
    return [np.asarray(a, dtype=np.float64) for a in case.draw(rng)]


def _variables(name: str, case: Case):
    """The case's graph: its input Variables and the loss sum(out_k * weights_k) over its
    outputs, each output observed (persistent), so that the module returns it too."""
    arrays = _draw(name, case)
    variables = []
    for i, a in enumerate(arrays):
        v = nn.Variable(a.shape, need_grad=i not in case.labels)
        v.name = f"in{i}"
        variables.append(v)
    outputs = as_tuple(case.build(*variables))
    rng = np.random.default_rng(len(name))
    loss, values = None, {f"in{i}": a for i, a in enumerate(arrays)}
    for k, out in enumerate(outputs):
        out.persistent = True
        weights = nn.Variable(out.shape)
        weights.name = f"weights{k}"
        values[weights.name] = rng.normal(size=out.shape)
        term = F.sum(F.mul2(out, weights))
        loss = term if loss is None else F.add2(loss, term)
    stack, seen = [loss], set()
    while stack:  # leaves a function made (INQ's hidden state) hold their own values
        v = stack.pop()
        if id(v) not in seen:
            seen.add(id(v))
            if v.parent is None and v.name and v.name not in values:
                values[v.name] = np.array(v.d, dtype=np.float64)  # (copied per call)
            stack.extend(v.parent.inputs if v.parent is not None else ())
    return loss, values


def _ops(variable) -> set[str]:
    """The functions of the graph that computes `variable`."""
    seen, stack, ops = set(), [variable], set()
    while stack:
        v = stack.pop()
        if id(v) in seen or v.parent is None:
            continue
        seen.add(id(v))
        ops.add(v.parent.op.name)
        stack.extend(v.parent.inputs)
    return ops


def test_the_cases_call_every_function():
    """Every op symcompile has (the registry's OPS) is in some case below, so a function
    added to symcompile without a table entry here fails this test."""
    called = set()
    for name, case in CASES.items():
        nn.clear_parameters()
        loss, _ = _variables(name, case)
        called |= _ops(loss)
    assert set(OPS) - called - set(OWN_TESTS) == set()


class OneProcess:
    """A communicator of this process alone (without MPI, whatever is installed)."""

    @staticmethod
    def all_reduce_sum(array, group="world"):
        return array.copy()

    @staticmethod
    def find_group(group):
        return [0] if group == "world" else []


# Ops whose cases cannot be written with the table's float Variables, each run on both
# backends by a test of its own.
OWN_TESTS = {
    # evaluated while the front end builds a graph, never part of one: the number of boxes
    # onnx_non_max_suppression selects, its output's shape (test_onnx_nms.py)
    "onnx_non_max_suppression_count": "evaluated when a graph is built",
    "bit_shift": "unsigned integer inputs (test_bit_shift.py)",
}


def run_all(modules, values, library_args, dtype="float32") -> dict:
    """Each backend's forward(), gradient(), forward_saving()'s outputs and backward()
    (seeded with a cotangent of 0.5) on the same values: {backend: (those four)}; the
    array API module's arguments are `library_args` of the NumPy ones."""
    results = {}
    for backend, module in modules.items():
        args = [np.asarray(values[spec["name"]], dtype=dtype) for spec in module.INPUTS.values()]
        args += [np.asarray(values[key], dtype=dtype) for key in module.PARAMETERS]
        seed = np.full((), 0.5, dtype=dtype)
        if backend != "numpy":
            args, seed = library_args(args), library_args([seed])[0]
        draws = {"rng": 0} if getattr(module, "RANDOM_DRAWS", ()) else {}  # same masks
        forward, gradient = module.forward(*args, **draws), module.gradient(*args, **draws)
        *outputs, saved = module.forward_saving(*args, **draws)
        results[backend] = (forward, gradient, tuple(outputs),
                            module.backward(saved, *args, seed))
    return results


def compare_runs(results, library=STRICT_ARRAY, dtype="float32", device=None) -> None:
    """The array API module's results: arrays of `library` (on `device`) with the NumPy
    module's numbers."""
    for what, got, expected in zip(("forward", "gradient", "forward_saving", "backward"),
                                   results["array_api"], results["numpy"], strict=True):
        assert_same(got, as_tuple(expected), what, library, dtype, device)


@pytest.mark.parametrize("name", list(CASES))
def test_function_matches_the_numpy_backend(name, tmp_path):
    """forward(), gradient() and backward() of the case's graph, compiled for both
    backends in float32, give the same numbers; the array API module run on
    array-api-strict arrays (on DEVICE) returns array-api-strict float32 arrays there."""
    loss, values = _variables(name, CASES[name])
    modules = compile_both(loss, tmp_path, "case")
    assert argument_names(modules["array_api"]) == argument_names(modules["numpy"])
    assert modules["array_api"].GRADIENTS == modules["numpy"].GRADIENTS
    compare_runs(run_all(modules, values, on_device(DEVICE)), device=DEVICE)


def test_labels_may_be_integers(tmp_path, rng):
    """Class labels as an integer array (int64) give what float labels give."""
    x, t = nn.Variable((4, 3), need_grad=True), nn.Variable((4, 1))
    x.name, t.name = "x", "t"
    modules = compile_both(F.mean(F.softmax_cross_entropy(x, t)), tmp_path, "labels")
    xv = rng.normal(size=(4, 3)).astype(np.float32)
    labels = np.array([[0], [2], [-1], [1]])
    expected = modules["numpy"].gradient(xv, labels.astype(np.float32))
    got = modules["array_api"].gradient(xps.asarray(xv, device=DEVICE),
                                        xps.asarray(labels, device=DEVICE))
    assert_same(got, expected, "gradient", device=DEVICE)


# --- every solver: the fused step ---------------------------------------------------------

def _solver_configs() -> list:
    """test_solvers.py's configurations, then every update rule they miss (by its name,
    with its defaults)."""
    covered = {getattr(S, name)(**kwargs).rule for name, kwargs in CONFIGS}
    return list(CONFIGS) + [(rule, {}) for rule in RULES if rule not in covered]


SOLVER_CONFIGS = _solver_configs()


def solver_graph():
    """test_solvers.py's graph: two affine layers, a softmax cross-entropy (labels t)."""
    nn.seed(3)
    x, t = nn.Variable((6, 4)), nn.Variable((6, 1))
    x.name, t.name = "x", "t"
    hidden = F.tanh(PF.affine(x, 5, name="hidden"))
    return F.mean(F.softmax_cross_entropy(PF.affine(hidden, 3, name="out"), t))


def make_solver(name, kwargs):
    return getattr(S, name)(**kwargs) if name in S.SOLVERS else name


def step_of(module):
    """The module's fused step and the extra arguments its `step` count needs."""
    function = getattr(module, f"{module.SOLVER}_step")
    uses_step = "step" in inspect.signature(function).parameters
    return function, (lambda step: {"step": step} if uses_step else {})


def trained(module) -> set[str]:
    """The arguments a step updates: trainable parameters and solver states."""
    return set(module.GRADIENTS) | set(getattr(module, "STATE", {}))


def batches(steps=4, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(6, 4)).astype(np.float32),
             rng.integers(0, 3, (6, 1)).astype(np.float32)) for _ in range(steps)]


@pytest.mark.parametrize("config", SOLVER_CONFIGS, ids=[config_id(c) for c in SOLVER_CONFIGS])
def test_fused_step_matches_the_numpy_backend(config, tmp_path):
    """Four steps of the array API module's fused step on array-api-strict arrays (made by
    init_parameters and init_state on DEVICE): the same loss, parameters and states as the
    NumPy module's step (and the parameters of solver_reference.py's independent formulas
    fed the NumPy module's gradients); the step updates the arrays in place and returns
    them in `updated`, keyed by argument."""
    name, kwargs = config
    modules = compile_both(solver_graph(), tmp_path, "solver", solver=make_solver(name, kwargs))
    numpy_module, module = modules["numpy"], modules["array_api"]
    assert module.STATE.keys() == numpy_module.STATE.keys()
    expected = numpy_module.init_parameters(seed=0)
    arrays = module.init_parameters(seed=0, xp=xps, device=DEVICE)
    assert_same(list(arrays.values()), list(expected.values()), "init_parameters",
                device=DEVICE)
    expected |= numpy_module.init_state() if numpy_module.STATE else {}
    state = module.init_state(xp=xps, device=DEVICE) if module.STATE else {}
    assert_same(list(state.values()), [expected[k] for k in state], "init_state",
                device=DEVICE)
    arrays |= state
    reference = None
    if name in R.SOLVERS:
        reference = R.SOLVERS[name](**kwargs)
        reference_params = {key: expected[spec["argument"]].copy()
                            for key, spec in numpy_module.PARAMETERS.items()}
        reference.set_parameters(reference_params)
    numpy_step, numpy_extra = step_of(numpy_module)
    step, extra = step_of(module)
    for count, (x, t) in enumerate(batches(), start=1):
        if reference is not None:
            grads = numpy_module.gradient(x, t, *reference_params.values())[1:]
            reference.update(dict(zip(numpy_module.PARAMETERS, grads, strict=True)))
        loss = numpy_step(x, t, **expected, **numpy_extra(count))
        *outputs, updated = step(*on_device(DEVICE)([x, t]), **arrays, **extra(count))
        assert_same(outputs, [loss], f"loss of step {count}", device=DEVICE)
        assert set(updated) == trained(module), set(updated) ^ trained(module)
        for key, array in updated.items():
            assert array is arrays[key], f"{key} was not updated in place"
            assert_same(array, expected[key], f"{key} after step {count}", device=DEVICE)
    if reference is not None:
        for key, spec in numpy_module.PARAMETERS.items():
            np.testing.assert_allclose(host(arrays[spec["argument"]]), reference_params[key],
                                       rtol=1e-5, atol=1e-6, err_msg=f"{name} {key}")


# --- immutable arrays ---------------------------------------------------------------------

def _refuse(self, *args):
    raise TypeError(f"{type(self).__name__} is immutable")


def _no_in_place(self, other):
    return NotImplemented  # Python then computes `a = a - b`: a new array, as with JAX


class FrozenArray(STRICT_ARRAY):
    """An array-api-strict array that cannot be changed, like a JAX array: assigning into
    it raises TypeError and ``a -= b`` makes a new array. Arithmetic on it gives
    FrozenArrays (array-api-strict builds results of the operand's class), and so do the
    functions of its namespace (FROZEN)."""

    __slots__ = ()
    __setitem__ = _refuse

    def __array_namespace__(self, api_version=None):
        return FROZEN


for _method in ("add", "sub", "mul", "truediv", "floordiv", "pow", "mod", "matmul", "and",
                "or", "xor", "lshift", "rshift"):
    setattr(FrozenArray, f"__i{_method}__", _no_in_place)


def _frozen_result(value):
    if isinstance(value, STRICT_ARRAY) and not isinstance(value, FrozenArray):
        return FrozenArray._new(value._array, device=value.device)
    if isinstance(value, tuple):
        return tuple(_frozen_result(v) for v in value)
    return value


class FrozenNamespace:
    """array-api-strict's namespace, every array it returns a FrozenArray."""

    def __getattr__(self, name):
        value = getattr(xps, name)
        if not callable(value) or isinstance(value, type):
            return value

        def function(*args, **kwargs):
            return _frozen_result(value(*args, **kwargs))

        return function


FROZEN = FrozenNamespace()


def frozen(array) -> FrozenArray:
    """A FrozenArray of a copy of `array` (array-api-strict's own constructor of arrays)."""
    return FrozenArray._new(np.array(array, copy=True), device=None)


def test_the_frozen_arrays_are_immutable():
    a = frozen(np.ones(3, np.float32))
    with pytest.raises(TypeError):
        a[...] = 2.0
    b = a
    b -= 1.0
    assert isinstance(b, FrozenArray) and b is not a
    np.testing.assert_array_equal(np.from_dlpack(a), np.ones(3))
    xp = a.__array_namespace__()
    assert isinstance(xp.maximum(a, b), FrozenArray) and isinstance(xp.zeros(2), FrozenArray)
    assert xp.float32 == xps.float32


def run_immutable_steps(config, tmp_path, convert, library, steps=3):
    """The fused step on immutable arrays (`convert` makes one of a NumPy array): the
    arrays passed in keep their values; `updated` holds new arrays of `library` with the
    NumPy module's numbers, and the next step is given those."""
    name, kwargs = config
    modules = compile_both(solver_graph(), tmp_path, "immutable",
                           solver=make_solver(name, kwargs))
    numpy_module, module = modules["numpy"], modules["array_api"]
    expected = numpy_module.init_parameters(seed=0) | (
        numpy_module.init_state() if numpy_module.STATE else {})
    arrays = {key: convert(value) for key, value in expected.items()}
    numpy_step, numpy_extra = step_of(numpy_module)
    step, extra = step_of(module)
    for count, (x, t) in enumerate(batches(steps), start=1):
        before = {key: np.array(np.from_dlpack(a), copy=True) for key, a in arrays.items()}
        loss = numpy_step(x, t, **expected, **numpy_extra(count))
        *outputs, updated = step(convert(x), convert(t), **arrays, **extra(count))
        assert_same(outputs, [loss], f"loss of step {count}", library)
        assert set(updated) == trained(module), set(updated) ^ trained(module)
        for key, array in arrays.items():
            np.testing.assert_array_equal(np.from_dlpack(array), before[key],
                                          err_msg=f"{key} was changed in place")
        for key, array in updated.items():
            assert array is not arrays[key], key
            assert_same(array, expected[key], f"{key} after step {count}", library)
        arrays |= updated


IMMUTABLE_CONFIGS = [("Sgd", {"lr": 0.1}), ("Momentum", {"lr": 0.1, "momentum": 0.8}),
                     ("Adam", {"alpha": 0.01}), ("AdaBelief", {"alpha": 0.01, "amsgrad": True}),
                     ("Lamb", {"eta": 0.01}), ("Lion", {"lr": 0.01})]


@pytest.mark.parametrize("config", IMMUTABLE_CONFIGS, ids=[config_id(c) for c in IMMUTABLE_CONFIGS])
def test_fused_step_on_immutable_arrays(config, tmp_path):
    run_immutable_steps(config, tmp_path, frozen, FrozenArray)


@pytest.mark.parametrize("config", IMMUTABLE_CONFIGS[:3],
                         ids=[config_id(c) for c in IMMUTABLE_CONFIGS[:3]])
def test_fused_step_on_jax_arrays(config, tmp_path):
    jnp = pytest.importorskip("jax.numpy")
    array_type = type(jnp.zeros(1))
    run_immutable_steps(config, tmp_path, lambda a: jnp.asarray(a), array_type)


def test_forward_and_gradient_on_jax_arrays(tmp_path):
    jnp = pytest.importorskip("jax.numpy")
    name = "affine (2, 3, 4) (4, 5) base_axis=2 bias=True"
    loss, values = _variables(name, CASES[name])
    modules = compile_both(loss, tmp_path, "jax")
    results = run_all(modules, values, lambda args: [jnp.asarray(a) for a in args])
    compare_runs(results, type(jnp.zeros(1)))


# --- PyTorch ------------------------------------------------------------------------------

TORCH_CASES = ["maths atan2", "network softplus beta", "softmax_cross_entropy axis=1",
               "max with ties", "kink relu - maximum_scalar", "matmul (4,) @ (3, 2, 4, 5)",
               "batch_matmul (1, 4, 3) (1, 2, 4) True True", "log_softmax axis=0"]


@pytest.mark.parametrize("name", TORCH_CASES)
def test_function_on_torch_tensors(name, tmp_path):
    """The array API module on PyTorch CPU tensors (through array-api-compat): torch
    tensors back, with the NumPy module's numbers."""
    torch = pytest.importorskip("torch")
    loss, values = _variables(name, CASES[name])
    modules = compile_both(loss, tmp_path, "torch")
    results = run_all(modules, values, lambda args: [torch.from_numpy(a) for a in args])
    compare_runs(results, torch.Tensor)


@pytest.mark.parametrize("config", [("Adam", {"alpha": 0.01}), ("AMSBound", {"alpha": 0.01}),
                                    ("Lars", {"lr": 0.1})], ids=config_id)
def test_fused_step_on_torch_tensors(config, tmp_path):
    """The fused step on torch tensors updates them in place and returns them."""
    torch = pytest.importorskip("torch")
    compat = pytest.importorskip("array_api_compat")
    name, kwargs = config
    modules = compile_both(solver_graph(), tmp_path, "torch_step",
                           solver=make_solver(name, kwargs))
    numpy_module, module = modules["numpy"], modules["array_api"]
    xp = compat.array_namespace(torch.zeros(1))
    expected = numpy_module.init_parameters(seed=0) | numpy_module.init_state()
    arrays = module.init_parameters(seed=0, xp=xp) | module.init_state(xp=xp)
    assert all(isinstance(a, torch.Tensor) for a in arrays.values())
    numpy_step, numpy_extra = step_of(numpy_module)
    step, extra = step_of(module)
    for count, (x, t) in enumerate(batches(), start=1):
        loss = numpy_step(x, t, **expected, **numpy_extra(count))
        *outputs, updated = step(torch.from_numpy(x), torch.from_numpy(t), **arrays,
                                 **extra(count))
        assert_same(outputs, [loss], f"loss of step {count}", torch.Tensor)
        assert set(updated) == trained(module)
        for key, array in updated.items():
            assert array is arrays[key], f"{key} was not updated in place"
            assert_same(array, expected[key], f"{key} after step {count}", torch.Tensor)
    report = module.check_gradient(xp=xp)
    assert report and all(passed for _, _, passed in report.values()), report


# --- the module alone ---------------------------------------------------------------------

BLOCK_COMPAT = textwrap.dedent("""
    class BlockedCompat:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "array_api_compat":
                raise ImportError("array_api_compat is blocked in this test")
            return None

    sys.meta_path.insert(0, BlockedCompat())
""")


def test_module_runs_without_symcompile_on_array_api_strict(tmp_path):
    """In a process where sympy, jinja2, symcompile and array-api-compat cannot be
    imported, the module makes array-api-strict parameters and state, trains with its
    fused step, checks its gradient, and gives the NumPy module's numbers."""
    modules = compile_both(solver_graph(), tmp_path, "alone", solver=S.Adam(alpha=0.01))
    data = batches(3)
    np.savez(tmp_path / "data.npz", **{f"x{i}": x for i, (x, _) in enumerate(data)},
             **{f"t{i}": t for i, (_, t) in enumerate(data)})
    path = tmp_path / "gen" / "alone_array_api.py"
    script = BLOCKER + BLOCK_COMPAT + textwrap.dedent(f"""
        import json
        import array_api_strict as xp
        import numpy as np

        spec = importlib.util.spec_from_file_location("alone", {str(path)!r})
        m = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(m)
        data = np.load({str(tmp_path / "data.npz")!r})
        arrays = m.init_parameters(seed=0, xp=xp) | m.init_state(xp=xp)
        assert all(type(a).__module__.startswith("array_api_strict") for a in arrays.values())
        losses = []
        for i in range(3):
            x, t = xp.asarray(data[f"x{{i}}"]), xp.asarray(data[f"t{{i}}"])
            *outputs, updated = m.adam_step(x, t, **arrays, step=i + 1)
            assert all(updated[k] is arrays[k] for k in updated)
            losses.append(float(outputs[0]))
        report = m.check_gradient(xp=xp)
        assert all(passed for _, _, passed in report.values()), report
        blocked = [name for name in ("sympy", "jinja2", "symcompile", "array_api_compat")
                   if name in sys.modules]
        assert not blocked, blocked
        print(json.dumps({{"losses": losses,
                          "arrays": {{k: np.from_dlpack(a).tolist() for k, a in arrays.items()}}}}))
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True,
                          env=env, cwd="/", timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    numpy_module = modules["numpy"]
    expected = numpy_module.init_parameters(seed=0) | numpy_module.init_state()
    losses = [float(numpy_module.adam_step(x, t, **expected, step=i + 1))
              for i, (x, t) in enumerate(data)]
    np.testing.assert_allclose(result["losses"], losses, rtol=RTOL)
    assert result["arrays"].keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_allclose(np.asarray(result["arrays"][key], np.float32), value,
                                   rtol=RTOL, atol=ATOL, err_msg=key)


# --- the runtime and the command line ------------------------------------------------------

TUTORIAL = ROOT / "tests" / "tutorials" / "linear_regression_nnabla.py"
RECORDED = ("first_a", "first_b", "first_ga", "first_gb", "after_a", "after_b", "once", "twice",
            "manual_a", "manual_b", "manual_after_a", "manual_after_b")


def run_tutorial(backend):
    """nnabla's linear-regression tutorial (imports swapped) with the runtime compiling for
    `backend`; its recorded arrays, then the final .d/.g, y.d and a second y.g read, and the
    modules the runtime compiled."""
    source = TUTORIAL.read_text().replace("import nnabla as nn", "import symcompile as nn")
    source = source.replace("import nnabla.", "import symcompile.")
    nn.clear_parameters()
    nn.seed(313)  # the initializers' draws (nnabla's PRNG, as a new process has it)
    execution._modules.clear()
    previous = execution.set_backend(backend)
    try:
        namespace = {"__name__": "__tutorial__"}
        exec(compile(source, str(TUTORIAL), "exec"), namespace)  # noqa: S102 - the tutorial
        ns = namespace
        values = {name: np.array(ns[name], copy=True) for name in RECORDED}
        values |= {"a.d": ns["a"].d.copy(), "b.d": ns["b"].d.copy(), "a.g": ns["a"].g.copy(),
                   "b.g": ns["b"].g.copy(), "loss.d": ns["loss"].d.copy()}
        values["y.d"] = ns["y"].d.copy()  # an intermediate read: the graph is compiled again
        ns["loss"].forward()
        ns["solver"].zero_grad()
        ns["loss"].backward()
        values |= {"a.g again": ns["a"].g.copy(), "y.d again": ns["y"].d.copy()}
        modules = list(execution._modules.values())
    finally:
        assert execution.set_backend(previous) == backend
    return values, modules


def test_runtime_on_the_array_api_backend(capsys):
    """set_backend("array_api"): the tutorial's forward()/backward()/update() run array
    API modules, on the runtime's NumPy arrays, and give the NumPy backend's .d and .g."""
    expected, numpy_modules = run_tutorial("numpy")
    got, modules = run_tutorial("array_api")
    assert execution.current_backend() == "numpy"  # restored
    assert modules and numpy_modules
    for module in modules:
        assert "from template array_api/module.py.jinja" in inspect.getsource(module)
    for module in numpy_modules:
        assert "from template numpy/module.py.jinja" in inspect.getsource(module)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert isinstance(got[key], np.ndarray) and got[key].dtype == np.float32, key
        np.testing.assert_allclose(got[key], value, rtol=RTOL, atol=ATOL, err_msg=key)
    assert abs(got["a.d"].item() - 0.3) < 0.02 and abs(got["b.d"].item() - 1.5) < 0.02


def test_set_backend_refuses_unknown_names():
    with pytest.raises(ValueError, match="unknown backend 'cupy'"):
        execution.set_backend("cupy")
    previous = execution.set_backend("array-api")
    assert execution.current_backend() == "array_api"
    assert execution.set_backend(previous) == "array_api"


def test_cli_compiles_for_the_array_api_backend(tmp_path, capsys):
    model = ROOT / "examples" / "linear_regression.py"
    assert main(["compile", str(model), "-o", str(tmp_path), "--backend", "array-api"]) == 0
    text = (tmp_path / "linear_regression.py").read_text()
    header = text.split('"""')[0]
    assert "from template array_api/module.py.jinja" in header
    regenerate = next(line for line in header.splitlines() if "Regenerate:" in line)
    assert "symcompile compile" in regenerate and "--backend array-api" in regenerate
    spec = importlib.util.spec_from_file_location("cli_array_api", tmp_path /
                                                  "linear_regression.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    params = module.init_parameters(seed=0, xp=xps)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 1)).astype(np.float32)
    y = (0.3 * x + 1.5).astype(np.float32)
    inputs = {"x": x, "y_true": y}
    args = [xps.asarray(inputs[spec["name"]]) for spec in module.INPUTS.values()]
    before = {k: np.from_dlpack(v).copy() for k, v in params.items()}
    *outputs, updated = module.sgd_step(*args, **params, lr=0.01)
    assert set(updated) == set(params) and isinstance(outputs[0], STRICT_ARRAY)
    for key, array in updated.items():
        assert array is params[key]
        assert not np.array_equal(np.from_dlpack(array), before[key]), key


# --- bad arguments ------------------------------------------------------------------------

@pytest.fixture
def adam_module(tmp_path):
    return compile_both(solver_graph(), tmp_path, "bad", solver="adam")["array_api"]


def strict_arguments(module, dtype=np.float32):
    rng = np.random.default_rng(0)
    values = {"x": rng.normal(size=(6, 4)), "t": rng.integers(0, 3, (6, 1))}
    values |= module.init_parameters(seed=0)
    return {name: xps.asarray(np.asarray(values[name], dtype=dtype))
            for name in argument_names(module)}


BAD_MARKS: dict = {}  # bad inputs whose refusal is not a ValueError yet: none

BAD = {
    # argument name, how to spoil it, the message
    "a NumPy parameter": ("out_affine_W", lambda a: np.from_dlpack(a),
                          r"argument 'out_affine_W' \(graph variable 'out/affine/W'\)"),
    # the first argument sets the library: the next argument (the labels) is refused
    "a NumPy first argument": ("x", lambda a: np.from_dlpack(a),
                               r"argument 't' must be .* \(ndarray\), got Array"),
    "NumPy labels": ("t", lambda a: np.from_dlpack(a), r"argument 't'"),
    "a wrong shape": ("hidden_affine_b", lambda a: xps.reshape(a, (1, 5)),
                      r"argument 'hidden_affine_b'.*shape \(1, 5\).*compiled for shape \(5,\)"),
    "a wrong batch size": ("x", lambda a: a[:4, ...],
                           r"argument 'x' has shape \(4, 4\).*batch size 4"),
    "a wrong dtype": ("out_affine_b", lambda a: xps.astype(a, xps.float64),
                      r"argument 'out_affine_b'.*dtype \S*float64, .*computes in float32"),
    "labels out of range": ("t", lambda a: a + 3.0, r"argument 't' holds 3\.0 at index"),
    "not an array": ("hidden_affine_W", lambda a: [[0.0] * 5] * 4,
                     r"argument 'hidden_affine_W'.*got list"),
    "not an array, first": ("x", lambda a: [[0.0] * 4] * 6, r"argument 'x'.*got list"),
    "labels not an array": ("t", lambda a: [[0.0]] * 6,
                            r"argument 't' must be an array of class labels.*got list"),
}


@pytest.mark.parametrize("function", ["forward", "gradient", "forward_saving", "adam_step"])
@pytest.mark.parametrize("bad", [pytest.param(bad, marks=[BAD_MARKS[bad]] if bad in BAD_MARKS
                                              else [], id=bad) for bad in BAD])
def test_bad_arguments_are_value_errors(bad, function, adam_module):
    """A NumPy array among array-api-strict ones, a wrong shape or dtype: ValueError naming
    the function and the argument, and a refused step changes nothing."""
    module = adam_module
    arguments = strict_arguments(module)
    state = module.init_state(xp=xps)
    argument, spoil, message = BAD[bad]
    arguments[argument] = spoil(arguments[argument])
    extra = {**state, "step": 1} if function == "adam_step" else {}
    before = {k: np.from_dlpack(v).copy() for k, v in {**arguments, **state}.items()
              if isinstance(v, STRICT_ARRAY)}
    with pytest.raises(ValueError, match=rf"^{function}\(\): {message}"):
        getattr(module, function)(*arguments.values(), **extra)
    for key, value in before.items():
        source = arguments.get(key, state.get(key))
        np.testing.assert_array_equal(np.from_dlpack(source), value, err_msg=key)


def test_an_argument_of_another_library_is_refused_as_such(adam_module):
    """The ValueError for an array of another library does not claim a dtype mismatch."""
    module = adam_module
    arguments = strict_arguments(module)
    arguments["out_affine_W"] = np.from_dlpack(arguments["out_affine_W"])
    with pytest.raises(ValueError, match=r"^forward\(\): argument 'out_affine_W'") as refused:
        module.forward(*arguments.values())
    message = str(refused.value)
    assert not re.search(r"has dtype (\S+\.)?float32, but this module computes in float32",
                         message), message


def test_bad_state_and_cotangent_are_value_errors(adam_module):
    module = adam_module
    arguments = strict_arguments(module)
    state = module.init_state(xp=xps)
    state["out_affine_b_var"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"^adam_step\(\): argument 'out_affine_b_var'"):
        module.adam_step(*arguments.values(), **state, step=1)
    *_, saved = module.forward_saving(*arguments.values())
    for seed in (np.ones((), np.float32), xps.ones((1,), dtype=xps.float32),
                 xps.ones((), dtype=xps.float64)):
        with pytest.raises(ValueError, match=r"^backward\(\): argument 'g_loss'"):
            module.backward(saved, *arguments.values(), seed)
    with pytest.raises(ValueError, match=r"adam_step\(\): step is the number of this update"):
        module.adam_step(*arguments.values(), **module.init_state(xp=xps), step=0)
