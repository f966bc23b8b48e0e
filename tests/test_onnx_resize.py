"""F.onnx_resize: ONNX's Resize, as nnabla 1.39's ONNXResize computes it.

- against an independent reference written from ONNX's specification
  (onnx_resize_reference.py: float64, one output element at a time) over every mode,
  coordinate transformation mode and nearest mode, up- and down-sampling, by scales and
  by sizes, 1, 2 and 3 resized axes of inputs of 1 to 5 axes, through the runtime
  (float32); 4 resized axes are refused, as nnabla refuses them;
- compiled modules of both backends (float64; the array API one on array-api-strict
  arrays): the value against the reference, the gradient against central differences and
  against the transpose of the reference's linear map. nnabla 1.39 has no backward for
  ONNXResize (it raises not_implemented); symcompile's gradient is the true one, through
  the runtime's backward() and nn.grad (a gradient of the gradient) too;
- where nnabla departs from the specification, nnabla's rule: its float32 arithmetic
  (an output size, a rounding), axes of scale 1 left alone, the output size with scales
  and a roi; empty outputs, as nnabla gives them;
- bad input refused when the graph is built, and the arguments recorded as nnabla's;
- nnabla 1.39's numbers, refusals and failing backward, where it is installed.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
from gradcheck import arguments, numeric_gradient
from nnabla_run import nnabla_rows
from onnx_resize_reference import nnabla_resize

import symcompile as nn
import symcompile.functions as F

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
needs_nnabla = pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                                  "(a Python 3.10 with `pip install nnabla`)")
COORDINATES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
               "tf_half_pixel_for_nn", "tf_crop_and_resize")
NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")

# (input shape, scales or sizes): up and down, 1 to 3 resized axes (an axis of scale 1
# among them in the last), inputs of 1 to 5 axes. Every ratio is exact in binary (or, by
# sizes, not one that a nearest rounding or the crop's edge decides), so the float64
# reference and nnabla's float32 coordinates pick the same elements.
RESIZES = [
    ((5,), {"scales": (2.0,)}),
    ((8,), {"scales": (0.75,)}),
    ((2, 6), {"sizes": (2, 3)}),
    ((2, 3, 4), {"scales": (1.0, 1.5, 0.5)}),
    ((4, 3, 2), {"scales": (0.5, 1.5, 2.0)}),
    ((1, 2, 4, 3), {"sizes": (1, 2, 6, 6)}),
    ((1, 2, 3, 4, 2), {"scales": (1.0, 1.0, 2.0, 0.75, 1.5)}),
    ((3, 4, 2, 2), {"scales": (1.0, 0.5, 1.0, 2.0)}),
]
# roi of tf_crop_and_resize per resized axis (start, end), exact in binary; some outside
# [0, 1], so that outputs fall outside the input (extrapolation_value)
CROPS = [(0.25, 0.75), (-0.25, 1.25), (0.125, 1.0)]


def resized_axes(shape, given) -> list[int]:
    factors = given.get("sizes") or given["scales"]
    if "sizes" in given:
        factors = [m / n for m, n in zip(factors, shape, strict=True)]
    return [a for a, f in enumerate(factors) if f != 1]


def with_roi(shape, given, coordinate) -> dict:
    if coordinate != "tf_crop_and_resize":
        return dict(given)
    rank, axes = len(shape), resized_axes(shape, given)
    starts, ends = [0.0] * rank, [1.0] * rank
    for k, a in enumerate(axes):
        starts[a], ends[a] = CROPS[k]
    return dict(given, roi=tuple(starts + ends), extrapolation_value=-2.5)


CUBIC = ({}, {"exclude_outside": 1}, {"cubic_coeff_a": -0.5})


def modes(turn: int):
    """(mode, keyword arguments) for the resize and coordinate mode of index sum `turn`:
    nearest (its nearest modes in turn), linear, and cubic (with its defaults, with
    exclude_outside and with another coefficient, in turn). Over the resizes each
    coordinate mode meets every nearest mode and every cubic variant twice or more."""
    yield "nearest", {"nearest_mode": NEAREST[turn % len(NEAREST)]}
    yield "linear", {}
    yield "cubic", CUBIC[turn % len(CUBIC)]


CONFIGS = [(shape, dict(with_roi(shape, given, coordinate), mode=mode,
                        coordinate_transformation_mode=coordinate, **extra))
           for (i, (shape, given)), (j, coordinate) in itertools.product(
               enumerate(RESIZES), enumerate(COORDINATES))
           for mode, extra in modes(i + j)]


def values(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).round(3).astype(np.float32)


def config_id(config) -> str:
    shape, kw = config
    extra = {k: v for k, v in kw.items() if k not in ("mode", "coordinate_transformation_mode",
                                                      "roi", "extrapolation_value")}
    return (f"{shape}-{kw['mode']}-{kw['coordinate_transformation_mode']}-"
            + "-".join(f"{k}={v}" for k, v in extra.items()))


@pytest.mark.parametrize("config", CONFIGS, ids=[config_id(c) for c in CONFIGS])
def test_runtime_values_are_the_specification_s(config):
    shape, kw = config
    x = values(shape)
    y = F.onnx_resize(nn.Variable.from_numpy_array(x), **kw)
    y.forward()
    expected = nnabla_resize(x, **kw)
    assert y.shape == expected.shape and y.d.dtype == np.float32
    np.testing.assert_allclose(y.d, expected, rtol=1e-5, atol=1e-5)


# --- compiled modules, gradients -------------------------------------------------------------

def linear_map(x_shape, kw) -> np.ndarray:
    """The reference's resize as a matrix (out size, in size): column i resizes the i-th
    unit array (the resize is linear in x, extrapolation_value aside)."""
    zero = nnabla_resize(np.zeros(x_shape), **kw).ravel()
    columns = []
    for i in range(int(np.prod(x_shape))):
        unit = np.zeros(int(np.prod(x_shape)))
        unit[i] = 1
        columns.append(nnabla_resize(unit.reshape(x_shape), **kw).ravel() - zero)
    return np.stack(columns, axis=1)


GRADIENT_CASES = [
    ((2, 5), {"scales": (1.0, 2.0), "mode": "nearest", "nearest_mode": "ceil",
              "coordinate_transformation_mode": "asymmetric"}),
    ((1, 2, 3, 4), {"sizes": (1, 2, 5, 3), "mode": "linear"}),
    ((2, 3, 4), {"scales": (1.0, 1.5, 0.75), "mode": "cubic", "exclude_outside": 1,
                 "coordinate_transformation_mode": "pytorch_half_pixel"}),
    ((1, 1, 3, 4), {"sizes": (1, 1, 5, 4), "mode": "cubic", "roi": (0, 0, -0.25, 0.25, 1, 1,
                                                                     1.25, 0.75),
                    "coordinate_transformation_mode": "tf_crop_and_resize",
                    "extrapolation_value": 3.0}),
    ((2, 2, 3, 2), {"scales": (1.0, 2.0, 0.5, 2.0), "mode": "linear",
                    "coordinate_transformation_mode": "align_corners"}),
]


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
@pytest.mark.parametrize("case", range(len(GRADIENT_CASES)))
def test_compiled_module_values_and_true_gradient(case, backend, tmp_path):
    """sum(w * onnx_resize(x)) in a float64 module: its value is the reference's, its
    gradient the transpose of the reference's linear map times w, and central
    differences of its forward(). (The array API module runs on array-api-strict.)"""
    shape, kw = GRADIENT_CASES[case]
    rng = np.random.default_rng(case)
    x = rng.normal(size=shape)
    expected = nnabla_resize(x, **kw)
    xv, wv = nn.Variable(shape, need_grad=True), nn.Variable(expected.shape)
    xv.name, wv.name = "x", "w"
    module = nn.compile(F.sum(F.onnx_resize(xv, **kw) * wv), name=f"resized{case}",
                        output_dir=tmp_path / backend, dtype="float64", solver=None,
                        backend=backend).module
    weights = rng.normal(size=expected.shape)
    args = arguments(module, {"x": x, "w": weights})
    convert, back = np.asarray, np.asarray
    if backend == "array_api":
        import array_api_strict as xp

        convert, back = xp.asarray, np.from_dlpack
    loss, grad = module.gradient(*[convert(a) for a in args])
    np.testing.assert_allclose(float(back(loss)), np.sum(expected * weights), rtol=1e-6)
    transpose = linear_map(shape, kw).T @ weights.ravel()
    np.testing.assert_allclose(back(grad), transpose.reshape(shape), rtol=1e-6, atol=1e-6)
    if backend == "numpy":
        numeric = numeric_gradient(module.forward, args, list(module.INPUTS).index("x"))
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_runtime_backward_gives_the_true_gradient():
    """nnabla 1.39's backward raises; here x.g is J^T dy, accumulated as nnabla's are."""
    shape, kw = (1, 2, 3, 4), {"scales": (1.0, 1.0, 2.0, 0.5), "mode": "cubic"}
    x = nn.Variable.from_numpy_array(values(shape), need_grad=True)
    y = F.onnx_resize(x, **kw)
    dy = values(y.shape, seed=1)
    loss = F.sum(y * nn.Variable.from_numpy_array(dy))
    loss.forward()
    x.grad.zero()
    loss.backward()
    expected = (linear_map(shape, kw).T @ dy.ravel().astype(np.float64)).reshape(shape)
    np.testing.assert_allclose(x.g, expected, rtol=1e-5, atol=1e-5)
    loss.backward()  # (accumulates)
    np.testing.assert_allclose(x.g, 2 * expected, rtol=1e-5, atol=1e-5)


def test_gradient_of_the_gradient():
    """nn.grad of sum(y**2), y = J x, is 2 J^T J x; its own gradient, of |g|^2, is
    8 (J^T J)^2 x."""
    shape, kw = (2, 3), {"scales": (1.0, 2.5), "mode": "linear"}
    x0 = values(shape)
    x = nn.Variable.from_numpy_array(x0, need_grad=True)
    y = F.onnx_resize(x, **kw)
    g = nn.grad([F.sum(y * y)], [x])[0]
    loss = F.sum(g * g)
    loss.forward()
    x.grad.zero()
    loss.backward()
    j = linear_map(shape, kw)
    jtj = j.T @ j
    flat = x0.ravel().astype(np.float64)
    np.testing.assert_allclose(g.d.ravel(), 2 * jtj @ flat, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(x.g.ravel(), 8 * jtj @ jtj @ flat, rtol=1e-5, atol=1e-5)


# --- nnabla's rules where it departs from the specification --------------------------------

def resized(x, **kw):
    y = F.onnx_resize(nn.Variable.from_numpy_array(np.asarray(x, np.float32)), **kw)
    y.forward()
    return y.d


def test_coordinates_and_sizes_are_float32_as_nnabla_s():
    """scales=(0.7,) of 10 elements: floor(10 * 0.7f) = 7 in float32 (6 in float64);
    half_pixel 0.6f reads (1 + 1/2)/0.6f - 1/2 = 2.0 exactly in float32 (1.9999999 in
    float64, whose floor is 1)."""
    assert resized(np.arange(10), scales=(0.7,)).shape == (7,)
    y = resized(np.arange(5), scales=(0.6,), nearest_mode="floor")
    np.testing.assert_array_equal(y, [0, 2, 3])  # o = 0: floor(1/3), 1: 2, 2: floor(3.67)


def test_an_axis_of_scale_1_is_left_alone():
    """Whatever the mode: tf_half_pixel_for_nn reads o + 1/2 (ceil: o + 1) on the other
    axes, o on one of scale 1; tf_crop_and_resize ignores its roi there."""
    x = np.arange(6.0).reshape(2, 3)
    y = resized(x, scales=(2.0, 1.0), coordinate_transformation_mode="tf_half_pixel_for_nn",
                nearest_mode="ceil")
    np.testing.assert_array_equal(y, x[[1, 1, 1, 1]])  # ceil((o + 1/2)/2) = 1, clamped
    y = resized(x, sizes=(3, 3), mode="linear", roi=(0, 0.25, 1, 0.75),
                coordinate_transformation_mode="tf_crop_and_resize")
    np.testing.assert_array_equal(y, [[0, 1, 2], [1.5, 2.5, 3.5], [3, 4, 5]])


def test_crop_output_size_from_scales_ignores_the_roi():
    """nnabla's floor(size * scale); the specification's floor(size * (end - start) *
    scale) would be floor(4 * 0.5 * 2) = 4."""
    kw = {"scales": (1.0, 2.0), "roi": (0, 0.25, 1, 0.75), "mode": "linear",
          "coordinate_transformation_mode": "tf_crop_and_resize"}
    y = resized(np.arange(8.0).reshape(2, 4), **kw)
    assert y.shape == (2, 8)
    np.testing.assert_allclose(y, nnabla_resize(np.arange(8.0).reshape(2, 4), **kw),
                               rtol=1e-6)


def test_empty_outputs_as_nnabla_s():
    x = nn.Variable.from_numpy_array(values((1, 1, 3, 4)), need_grad=True)
    y = F.onnx_resize(x, scales=(1.0, 1.0, 0.2, 0.2))
    assert y.shape == (1, 1, 0, 0)
    loss = F.sum(y) + F.sum(x)
    loss.forward()
    x.grad.zero()
    loss.backward()
    np.testing.assert_array_equal(x.g, np.ones((1, 1, 3, 4)))
    assert F.onnx_resize(x, sizes=(1, 1, 0, 4), mode="cubic").shape == (1, 1, 0, 4)


def test_recorded_arguments_are_nnabla_s():
    """nnabla's Function.info: type ONNXResize, every argument, floats as float32."""
    y = F.onnx_resize(nn.Variable((1, 3, 4)), scales=[1, 0.6, 2], mode="cubic",
                      exclude_outside=True)
    assert y.parent.info.type_name == "ONNXResize"
    assert y.parent.info.args == {
        "roi": [], "scales": [1.0, 0.6000000238418579, 2.0], "sizes": [], "mode": "cubic",
        "coordinate_transformation_mode": "half_pixel", "cubic_coeff_a": -0.75,
        "exclude_outside": 1, "extrapolation_value": 0.0, "nearest_mode": "round_prefer_floor"}


# --- bad input -------------------------------------------------------------------------------
# (input shape, keyword arguments, error, message): each refused when the graph is built,
# the ValueErrors as nnabla 1.39 refuses them (test_nnabla_refuses_the_same)

X = (1, 1, 3, 4)
REFUSED = [
    (X, {}, ValueError, r"give one of scales and sizes .*not neither"),
    (X, {"scales": (1, 1, 2, 2), "sizes": (1, 1, 6, 8)}, ValueError, r"not both"),
    (X, {"scales": (2, 2)}, ValueError, r"scales=\(2.0, 2.0\) must have one entry per axis"),
    (X, {"sizes": (1, 1, 6)}, ValueError, r"sizes=\(1, 1, 6\) must have one entry per axis"),
    (X, {"scales": (2, 1, 1, 1)}, ValueError,
     r"axes 0 to 3 are resized .*: 4\); nnabla 1.39 resizes 1, 2 or 3 trailing axes"),
    ((1, 2, 2, 2), {"sizes": (2, 4, 4, 4), "mode": "linear"}, ValueError,
     r"resizes 1, 2 or 3 trailing axes"),
    (X, {"scales": (1, 1, 1, 1)}, ValueError, r"every scale is 1: nothing to resize"),
    (X, {"sizes": X}, ValueError, r"every scale is 1"),
    (X, {"scales": (1, 1, 2, 2), "mode": "area"}, ValueError,
     r"mode='area' is not one of nnabla's 'nearest', 'linear', 'cubic'"),
    (X, {"scales": (1, 1, 2, 2), "coordinate_transformation_mode": "half_pixel_symmetric"},
     ValueError, r"coordinate_transformation_mode='half_pixel_symmetric' is not one of"),
    (X, {"scales": (1, 1, 2, 2), "mode": "linear", "nearest_mode": "bogus"}, ValueError,
     r"nearest_mode='bogus' is not one of .*whatever the mode"),
    (X, {"scales": (1, 1, 2, 2), "coordinate_transformation_mode": "tf_crop_and_resize"},
     ValueError, r"roi=\(\) must hold 8 numbers for tf_crop_and_resize"),
    (X, {"scales": (1, 1, 2, 2), "coordinate_transformation_mode": "tf_crop_and_resize",
         "roi": (0, 0.5, 0, 0, 1, 1, 1, 1)}, ValueError,
     r"must be \(0, 1\) on the axes not resized \(0 to 1\)"),
]
REFUSED_HERE_ONLY = [  # (nnabla 1.39 crashes on these, or converts them)
    (X, {"scales": (1, 1, -1, 2)}, ValueError, r"must be finite and not negative"),
    (X, {"scales": (1, 1, float("nan"), 2)}, ValueError, r"must be finite"),
    (X, {"sizes": (1, 1, -3, 4)}, ValueError, r"sizes=\(1, 1, -3, 4\) must not be negative"),
    ((1, 0, 2), {"sizes": (1, 2, 2)}, ValueError, r"an empty axis cannot be resized"),
    (X, {"sizes": (1, 1, 6.0, 8)}, TypeError, r"sizes must be an int, got 6.0"),
    (X, {"scales": 2.0}, TypeError, r"scales must be a tuple of numbers"),
    (X, {"scales": "2222"}, TypeError, r"scales must be a tuple of numbers"),
    (X, {"scales": (1, 1, 2, 2), "mode": None}, TypeError, r"mode must be a string"),
    (X, {"scales": (1, 1, 2, 2), "exclude_outside": 0.5}, TypeError,
     r"exclude_outside must be an int"),
    (X, {"scales": (1, 1, 2, 2), "cubic_coeff_a": "a"}, TypeError,
     r"cubic_coeff_a must be a real number"),
]


@pytest.mark.parametrize("shape,kw,error,message", REFUSED + REFUSED_HERE_ONLY)
def test_bad_input_is_refused_when_the_graph_is_built(shape, kw, error, message):
    with pytest.raises(error, match=r"F.onnx_resize: " + ("" if error is TypeError else
                                                          r"input of shape .*") + message):
        F.onnx_resize(nn.Variable(shape), **kw)


def test_a_non_variable_input_is_refused():
    with pytest.raises(TypeError, match=r"F.onnx_resize: input 0 must be a Variable"):
        F.onnx_resize(np.zeros((2, 2)), scales=(2, 2))


# --- against nnabla 1.39 ---------------------------------------------------------------------

NNABLA_SCRIPT = r"""
import json, sys
import numpy as np
import nnabla as nn
import nnabla.functions as F

for shape, kw in json.loads(sys.argv[1]):
    x = nn.Variable.from_numpy_array(
        np.random.default_rng(0).normal(size=shape).round(3).astype(np.float32),
        need_grad=True)
    try:
        y = F.onnx_resize(x, **kw)
        y.forward()
    except Exception as e:
        print(json.dumps({"error": str(e).strip().splitlines()[-1]}))
        continue
    try:
        y.backward()
        backward = "ran"
    except Exception as e:
        backward = str(e).strip().splitlines()[-1]
    print(json.dumps({"y": y.d.tolist(), "shape": list(y.shape), "backward": backward,
                      "type": y.parent.info.type_name, "args": y.parent.info.args}))
"""

# nnabla's numbers where its float32 arithmetic decides what the float64 reference
# cannot: ratios and rois that are not exact in binary (sizes 5 -> 7, roi 0.1), ties of
# the nearest rounding and crop edges reached through that rounding, output sizes by
# float32 products, 4-D inputs resized on their last 1, 2 and 3 axes
NNABLA_ONLY = [((1, 2, 3, 5), dict(scales=(1.0, 1.0, 1.7, 0.6), mode=mode,
                                   coordinate_transformation_mode=coordinate,
                                   nearest_mode=nearest, roi=(0, 0, 0.1, -0.2, 1, 1, 0.8, 1.2)))
               for mode, coordinate, nearest in itertools.product(
                   ("nearest", "linear", "cubic"), COORDINATES, NEAREST)
               if mode == "nearest" or nearest == "round_prefer_floor"] + [
    ((2, 5), {"sizes": (2, 7), "mode": "nearest", "nearest_mode": "ceil"}),
    ((2, 5), {"sizes": (2, 7), "mode": "nearest", "nearest_mode": "ceil",
              "coordinate_transformation_mode": "asymmetric"}),
    ((10,), {"scales": (0.7,), "mode": "linear"}),
    ((5,), {"scales": (0.6,), "nearest_mode": "floor"}),
    ((2, 3), {"scales": (2.0, 1.0), "nearest_mode": "ceil",
              "coordinate_transformation_mode": "tf_half_pixel_for_nn"}),
    ((2, 3), {"sizes": (3, 3), "mode": "linear", "roi": (0, 0.25, 1, 0.75),
              "coordinate_transformation_mode": "tf_crop_and_resize"}),
    ((2, 4), {"scales": (1.0, 2.0), "roi": (0, 0.25, 1, 0.75), "mode": "cubic",
              "coordinate_transformation_mode": "tf_crop_and_resize"}),
    ((1, 1, 3, 4), {"scales": (1.0, 1.0, 0.2, 0.2)}),
    ((2, 3, 4, 5), {"sizes": (2, 3, 4, 9), "mode": "cubic", "exclude_outside": 1}),
    ((2, 3, 4, 5), {"sizes": (2, 3, 7, 2), "mode": "linear",
                    "coordinate_transformation_mode": "align_corners"}),
    ((2, 3, 4, 5), {"sizes": (2, 5, 3, 8), "mode": "cubic", "cubic_coeff_a": -0.5,
                    "coordinate_transformation_mode": "asymmetric"}),
    ((2, 3, 4, 5), {"scales": (1.0, 2.0, 1.0, 0.5), "mode": "nearest",
                    "coordinate_transformation_mode": "align_corners"}),
]


def _plain(kw: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()}


@needs_nnabla
def test_nnabla_gives_the_same_numbers_and_has_no_backward(tmp_path):
    """Every configuration of the runtime test, and those where nnabla's float32 rules
    decide, give nnabla 1.39's numbers (the same float32 operations, so the same bits
    but for summation order), type and arguments; nnabla's backward raises."""
    calls = [(list(shape), _plain(kw)) for shape, kw in CONFIGS + NNABLA_ONLY]
    rows = nnabla_rows(NNABLA, NNABLA_SCRIPT, calls, tmp_path)
    assert len(rows) == len(calls)
    for (shape, kw), row in zip(calls, rows, strict=True):
        assert "error" not in row, (shape, kw, row)
        y = F.onnx_resize(nn.Variable.from_numpy_array(values(shape)), **kw)
        y.forward()
        assert list(y.shape) == row["shape"], (shape, kw)
        np.testing.assert_allclose(y.d, np.array(row["y"], np.float32).reshape(y.shape),
                                   rtol=1e-6, atol=1e-6, err_msg=str((shape, kw)))
        assert (y.parent.info.type_name, y.parent.info.args) == (row["type"], row["args"])
        if np.prod(row["shape"]):
            assert "backward is currently not implemented" in row["backward"], row["backward"]


@needs_nnabla
def test_nnabla_refuses_the_same(tmp_path):
    calls = [(list(shape), _plain(kw)) for shape, kw, _, _ in REFUSED]
    rows = nnabla_rows(NNABLA, NNABLA_SCRIPT, calls, tmp_path)
    assert len(rows) == len(calls)
    for (shape, kw), row in zip(calls, rows, strict=True):
        assert "error" in row, (shape, kw, row)
