"""F.fixed_point_quantize, F.pow2_quantize, F.min_max_quantize, F.prune, F.quantize_linear,
F.dequantize_linear, F.binary_connect_affine / _convolution and F.binary_weight_affine /
_convolution.

- forward against independent NumPy references (written from nnabla's docs and C++:
  halves away from zero, saturation, the geometric-mean thresholds of pow2, prune's
  sorted threshold, ONNX's quantize_linear) in float64 through a compiled module and in
  float32 through the runtime;
- the straight-through gradients checked exactly (they are nnabla's definitions, not
  derivatives: dy, dy masked by ste_fine_grained, dy / scale, the binarized weight's
  gradient for the real weight); smooth gradients (dequantize_linear, the binary layers'
  input and bias) against central finite differences; the array API twin's gradients;
- the binary layers write sign(weight) and alpha into their inputs, as nnabla's;
- bad arguments refused when the graph is built; nnabla 1.39's numbers where installed.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from gradcheck import arguments, check_array_api, check_function, compile_f64, named_inputs
from nnabla_run import nnabla_rows, replay_row
from test_catalogue_more import np_convolution

import symcompile as nn
import symcompile.functions as F

X = (2, 3, 4)


# --- NumPy references ----------------------------------------------------------------------------

def round_half_away(a):
    return np.sign(a) * np.floor(np.abs(a) + 0.5)


def np_fixed_point(a, sign=True, n=8, delta=2**-4):
    bits = n - 1 if sign else n
    high = (2**bits - 1) * delta
    low = -high if sign else 0.0
    return np.clip(round_half_away(a / delta) * delta, low, high)


def np_fixed_point_grad(a, sign=True, n=8, delta=2**-4, fine=True):
    bits = n - 1 if sign else n
    high = (2**bits - 1) * delta
    low = -high if sign else 0.0
    return ((a >= low) & (a <= high)).astype(float) if fine else np.ones_like(a)


def _pow2_limits(sign, with_zero, n, m):
    bits = n - int(sign) - int(with_zero)
    p_min = 2.0 ** (m - (2**bits - 1))
    return p_min, 2.0**m


def np_pow2(a, sign=True, with_zero=True, n=8, m=1):
    """The docs' cases, one element at a time."""
    p_min, p_max = _pow2_limits(sign, with_zero, n, m)
    out = np.zeros_like(a)
    for i, v in np.ndenumerate(a):
        q = 0.0 if v == 0 else 2.0 ** round_half_away(np.log2(abs(v)))
        if q > p_max:
            q = p_max
        elif q < p_min:
            q = (0.0 if abs(v) < p_min / np.sqrt(2) else p_min) if with_zero else p_min
        if v < 0:
            q = -q if sign else (0.0 if with_zero else p_min)
        out[i] = q
    return out


def np_pow2_grad(a, sign=True, with_zero=True, n=8, m=1, fine=True):
    if not fine:
        return np.ones_like(a)
    _, p_max = _pow2_limits(sign, with_zero, n, m)
    with np.errstate(divide="ignore"):
        q = 2.0 ** round_half_away(np.log2(np.abs(a)))
    kept = q <= p_max
    return (kept & (a >= 0 if not sign else kept)).astype(float)


def np_prune(a, rate=0.9):
    magnitudes = np.sort(np.abs(a).ravel())
    threshold = magnitudes[int((a.size - 1) * rate)] + (1.0 if rate == 1 else 0.0)
    return np.where(np.abs(a) < threshold, 0.0, a)


def np_quantize_linear(a, scale, zero_point, mode="HALF_AWAY_FROM_ZERO", narrow=False,
                       dtype=np.int8):
    info = np.iinfo(dtype)
    low, high = info.min + int(narrow), info.max
    rounding = round_half_away if mode == "HALF_AWAY_FROM_ZERO" else np.rint
    offset = np.clip(rounding(zero_point), low, high)
    return np.clip(rounding(a / scale) + offset, low, high)


def np_binary(w, zero_to=1.0):
    return np.where(w > 0, 1.0, np.where(w < 0, -1.0, zero_to))


def np_affine(a, w, b=None):
    y = a.reshape(a.shape[0], -1) @ w.reshape(w.shape[0], -1)
    y = y.reshape((a.shape[0],) + w.shape[1:])
    return y if b is None else y + b


def affine_alpha(w):
    return np.abs(w).reshape(w.shape[0], -1).mean(axis=0)


def convolution_alpha(w):
    return np.abs(w).reshape(w.shape[0], -1).mean(axis=1)


def np_binary_weight_affine(a, w, b=None, zero_to=1.0):
    scaled = np_binary(w, zero_to) * affine_alpha(w).reshape((1,) + w.shape[1:])
    return np_affine(a, scaled, b)


def np_binary_weight_convolution(a, w, b=None, zero_to=1.0, **geometry):
    scaled = np_binary(w, zero_to) * convolution_alpha(w).reshape((-1, 1, 1, 1))
    return np_convolution(a, scaled, b, **geometry)


# --- inputs -------------------------------------------------------------------------------

def spread(*shapes, scale=2.0):
    """Normal numbers times `scale`, with exact zeros and exact halves of 1/16 (ties of
    fixed_point_quantize's default delta) among them."""
    def draw():
        out = []
        for i, s in enumerate(shapes):
            a = np.random.default_rng(i).normal(size=s) * scale
            a.flat[::5] = 0.0
            a.flat[1::7] = np.arange(len(a.flat[1::7])) / 32 - 0.34375  # odd multiples of 1/32
            out.append(a)
        return out
    return draw


def positive(shape, low=0.2, high=1.0, seed=3):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


IMAGE, KERNEL = (2, 3, 4, 4), (2, 3, 3, 3)


# --- the straight-through functions: value and exact gradient ----------------------------------
# (name, build, reference, d out / d input as an elementwise factor (None: no gradient),
# inputs, need_grad)

STRAIGHT_THROUGH = [
    ("fixed_point_quantize", F.fixed_point_quantize, np_fixed_point,
     [np_fixed_point_grad], spread(X, scale=6.0), None),
    ("fixed_point_quantize unsigned n=4 delta=0.25, coarse STE",
     lambda x: F.fixed_point_quantize(x, sign=False, n=4, delta=0.25, ste_fine_grained=False),
     lambda a: np_fixed_point(a, False, 4, 0.25),
     [lambda a: np_fixed_point_grad(a, False, 4, 0.25, False)], spread(X), None),
    ("fixed_point_quantize n=3 delta=0.5 saturating",
     lambda x: F.fixed_point_quantize(x, n=3, delta=0.5),
     lambda a: np_fixed_point(a, True, 3, 0.5),
     [lambda a: np_fixed_point_grad(a, True, 3, 0.5)], spread(X), None),
    ("pow2_quantize", F.pow2_quantize, np_pow2, [np_pow2_grad], spread(X), None),
    ("pow2_quantize n=4 m=0 with zero",
     lambda x: F.pow2_quantize(x, n=4, m=0), lambda a: np_pow2(a, True, True, 4, 0),
     [lambda a: np_pow2_grad(a, True, True, 4, 0)], spread(X, scale=0.5), None),
    ("pow2_quantize unsigned without zero",
     lambda x: F.pow2_quantize(x, sign=False, with_zero=False, n=3, m=1),
     lambda a: np_pow2(a, False, False, 3, 1),
     [lambda a: np_pow2_grad(a, False, False, 3, 1)], spread(X), None),
    ("pow2_quantize unsigned with zero, coarse STE",
     lambda x: F.pow2_quantize(x, sign=False, n=4, m=2, ste_fine_grained=False),
     lambda a: np_pow2(a, False, True, 4, 2),
     [lambda a: np_pow2_grad(a, False, True, 4, 2, False)], spread(X), None),
    ("prune", F.prune, np_prune, [np.ones_like], spread(X), None),
    ("prune rate 0.5", lambda x: F.prune(x, 0.5), lambda a: np_prune(a, 0.5),
     [np.ones_like], spread((5, 3)), None),
    ("prune rate 1 prunes everything", lambda x: F.prune(x, 1.0), lambda a: np_prune(a, 1.0),
     [np.ones_like], spread((7,)), None),
    ("prune rate 0 keeps everything", lambda x: F.prune(x, 0), lambda a: np_prune(a, 0.0),
     [np.ones_like], spread(X), None),
    ("quantize_linear", F.quantize_linear, np_quantize_linear,
     [lambda a, s, z: 1 / s, None, None],
     lambda: [spread(X, scale=40.0)()[0], positive((1, 3, 1)), np.array([[[2.5]]])],
     [True, False, False]),
    ("quantize_linear half to even, uint8, narrow",
     lambda x, s, z: F.quantize_linear(x, s, z, "HALF_TO_EVEN", True, np.uint8),
     lambda a, s, z: np_quantize_linear(a, s, z, "HALF_TO_EVEN", True, np.uint8),
     [lambda a, s, z: 1 / s, None, None],
     lambda: [spread(X, scale=100.0)()[0], np.full((1, 1, 1), 0.5),
              np.array([[[2.5], [-3.0], [300.0]]])], [True, False, False]),
]
ST_IDS = [case[0] for case in STRAIGHT_THROUGH]


def _expected_gradients(factors, arrays, weights):
    return [None if factor is None else weights * np.broadcast_to(factor(*arrays), weights.shape)
            for factor in factors]


@pytest.mark.parametrize("name,build,reference,factors,draw,need_grad", STRAIGHT_THROUGH,
                         ids=ST_IDS)
def test_straight_through_in_a_compiled_module(name, build, reference, factors, draw,
                                               need_grad, tmp_path):
    """float64: the output is the reference's, the gradient of sum(w * out) is w times
    nnabla's straight-through factor, exactly; the array API module agrees."""
    arrays = draw()
    need_grad = need_grad or [True] * len(arrays)
    out = build(*named_inputs(arrays, need_grad))
    direct = compile_f64(out, tmp_path, "direct").module
    values = {f"in{i}": a for i, a in enumerate(arrays)}
    np.testing.assert_allclose(direct.forward(*arguments(direct, values)), reference(*arrays),
                               rtol=1e-12, atol=1e-12)
    weights = np.random.default_rng(9).normal(size=out.shape)
    w = nn.Variable(out.shape)
    w.name = "weights"
    module = compile_f64(F.sum(out * w), tmp_path, "weighted").module
    values["weights"] = weights
    result = module.gradient(*arguments(module, values))
    grads = dict(zip(module.GRADIENTS, result[len(module.OUTPUTS):], strict=True))
    expected = _expected_gradients(factors, arrays, weights)
    for i, want in enumerate(expected):
        if want is None:
            assert f"in{i}" not in grads
            continue
        np.testing.assert_array_equal(grads[f"in{i}"], want, err_msg=f"{name}: input {i}")
    nn.clear_parameters()
    check_array_api(build, arrays, module, tmp_path, need_grad=need_grad)


def _leaf(array, need_grad=True):
    return nn.Variable.from_numpy_array(np.asarray(array, np.float32), need_grad=need_grad)


@pytest.mark.parametrize("name,build,reference,factors,draw,need_grad", STRAIGHT_THROUGH,
                         ids=ST_IDS)
def test_straight_through_at_run_time(name, build, reference, factors, draw, need_grad):
    """float32 through forward() and backward(): the reference's values (computed on the
    float32 inputs) and gradients."""
    arrays = [np.asarray(a, np.float32).astype(np.float64) for a in draw()]
    need_grad = need_grad or [True] * len(arrays)
    leaves = [_leaf(a, g) for a, g in zip(arrays, need_grad, strict=True)]
    out = build(*leaves)
    weights = np.random.default_rng(5).normal(size=out.shape).astype(np.float32)
    out.forward()
    for v in leaves:
        v.grad.zero()
    out.backward(weights)
    np.testing.assert_allclose(out.d, reference(*arrays), rtol=1e-6, atol=1e-6)
    expected = _expected_gradients(factors, arrays, weights.astype(np.float64))
    for i, (leaf, want) in enumerate(zip(leaves, expected, strict=True)):
        if want is not None:
            np.testing.assert_allclose(leaf.g, want, rtol=1e-6, atol=1e-7, err_msg=f"input {i}")


def test_nnablas_conventions_at_ties_zero_and_the_limits():
    """Halves of delta round away from zero (NumPy's round would go to even: 0.5 -> 0);
    0 quantizes to 0; saturation is at (2^(n-1) - 1) * delta; pow2's threshold between 2^k
    and 2^(k+1) is their geometric mean, with_zero's below p_min / sqrt(2)."""
    x = _leaf([0.03125, -0.03125, 0.09375, 0.0, 8.0, -8.0, 7.9375])
    y = F.fixed_point_quantize(x)
    y.forward()
    np.testing.assert_array_equal(y.d, [0.0625, -0.0625, 0.125, 0, 7.9375, -7.9375, 7.9375])
    y = F.fixed_point_quantize(x, sign=False, n=3, delta=1.0)
    y.forward()
    np.testing.assert_array_equal(y.d, [0, 0, 0, 0, 7, 0, 7])
    edges = [1.4142, 1.4143, 2.8284, 2.8285, 0.0, -1.4143, 2.0**-126 * 0.7, 2.0**-126 * 0.71]
    p = _leaf(edges)
    y = F.pow2_quantize(p)  # n=8, m=1: p_min = 2^(1 - 63)
    y.forward()
    np.testing.assert_array_equal(y.d, [1, 2, 2, 2, 0, -2, 0, 0])
    y = F.pow2_quantize(_leaf([0.7, 0.71, 3.0, -0.1]), n=3, m=0)  # p_min = 1/2, threshold 0.354
    y.forward()
    np.testing.assert_array_equal(y.d, [0.5, 1, 1, 0])  # (0.71 > sqrt(1/2): 1)
    y = F.pow2_quantize(_leaf([0.3, 0.36, -3.0]), n=3, m=0)
    y.forward()
    np.testing.assert_array_equal(y.d, [0, 0.5, -1])


def test_quantize_linear_rounds_the_zero_point_and_saturates():
    """zero_point 2.5 rounds to 3 (half away) or 2 (to even) before it is added; the sum
    saturates at the dtype's range; the values are float32."""
    x = _leaf([[-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 300, -300]])
    one = _leaf([[1.0]], need_grad=False)
    zero_point = _leaf([[2.5]], need_grad=False)
    y = F.quantize_linear(x, one, zero_point)
    y.forward()
    assert y.d.dtype == np.float32
    np.testing.assert_array_equal(y.d, [[0, 1, 2, 4, 5, 6, 127, -128]])
    y = F.quantize_linear(x, one, zero_point, round_mode="HALF_TO_EVEN", dtype=np.uint8,
                          narrow_range=True)
    y.forward()
    np.testing.assert_array_equal(y.d, [[1, 1, 2, 2, 4, 4, 255, 1]])
    np.testing.assert_array_equal(zero_point.d, [[2.5]])  # (nnabla rounds it in place)


# --- smooth gradients: finite differences ------------------------------------------------------

SMOOTH = [
    ("dequantize_linear", F.dequantize_linear,
     lambda a, s, z: (a - z) * s,
     lambda: [np.random.default_rng(0).normal(size=X) * 50, positive((1, 3, 1)),
              np.array([[[3.0]]])], [True, False, False]),
    ("dequantize_linear per element", F.dequantize_linear,
     lambda a, s, z: (a - z) * s,
     lambda: [np.random.default_rng(1).normal(size=(3, 2)), positive((3, 2)),
              np.random.default_rng(2).normal(size=(3, 1))], [True, False, False]),
    ("binary_connect_affine, x and bias", lambda x, w, wb, b: F.binary_connect_affine(
        x, w, wb, b), lambda a, w, wb, b: np_affine(a, np_binary(w), b),
     lambda: [*spread(X, (12, 5))(), np.zeros((12, 5)), np.ones(5)], [True, False, False, True]),
    ("binary_connect_convolution, quantize_zero_to -1", lambda x, w, wb: (
        F.binary_connect_convolution(x, w, wb, pad=(1, 1), quantize_zero_to=-1.0)),
     lambda a, w, wb: np_convolution(a, np_binary(w, -1.0), pad=(1, 1)),
     lambda: [*spread(IMAGE, KERNEL)(), np.zeros(KERNEL)], [True, False, False]),
    ("binary_weight_affine, base_axis 2", lambda x, w, wb, alpha: F.binary_weight_affine(
        x, w, wb, alpha, base_axis=2),
     lambda a, w, wb, alpha: np_binary_weight_affine(a.reshape(6, 4), w).reshape(2, 3, 5),
     lambda: [*spread(X, (4, 5))(), np.zeros((4, 5)), np.zeros(5)], [True, False, False, False]),
    ("binary_weight_convolution, stride 2, bias", lambda x, w, wb, alpha, b: (
        F.binary_weight_convolution(x, w, wb, alpha, b, stride=(2, 2))),
     lambda a, w, wb, alpha, b: np_binary_weight_convolution(a, w, b, stride=(2, 2)),
     lambda: [*spread((2, 3, 5, 5), KERNEL)(), np.zeros(KERNEL), np.zeros(2), np.ones(2)],
     [True, False, False, False, True]),
]


@pytest.mark.parametrize("name,build,reference,draw,need_grad", SMOOTH,
                         ids=[case[0] for case in SMOOTH])
def test_smooth_gradients(name, build, reference, draw, need_grad, tmp_path, rng):
    arrays = draw()
    module = check_function(build, reference, arrays, tmp_path, rng, need_grad=need_grad)
    nn.clear_parameters()
    check_array_api(build, arrays, module, tmp_path, need_grad=need_grad)


# --- the binary layers: the weight's gradient and the written parameters ---------------------

def _numeric_weight_gradient(layer, weights, effective):
    """d sum(weights * layer(W)) / dW at W = effective, by central differences (the layer
    is linear in W, so this is exact up to rounding)."""
    grad = np.zeros_like(effective)
    for i in np.ndindex(effective.shape):
        for sign in (1, -1):
            shifted = effective.copy()
            shifted[i] += sign * 1e-3
            grad[i] += sign * np.sum(weights * layer(shifted)) / 2e-3
    return grad


@pytest.mark.parametrize("kind", ["binary_connect_affine", "binary_connect_convolution",
                                  "binary_weight_affine", "binary_weight_convolution"])
def test_binary_layers_write_their_weights_and_pass_the_gradient_straight(kind):
    """forward() writes sign(W) (quantize_zero_to at 0) into binary_weight and, for the
    binary weight layers, mean |W| per output into alpha; W's gradient is the gradient of
    the binarized (scaled) weight the layer used, unchanged, as nnabla's; x's is the
    layer's with that weight."""
    rng = np.random.default_rng(4)
    convolution = kind.endswith("convolution")
    a = rng.normal(size=IMAGE if convolution else X)
    w = rng.normal(size=KERNEL if convolution else (12, 5))
    w.flat[::6] = 0.0
    x, weight = _leaf(a), _leaf(w)
    binary = _leaf(np.full(w.shape, 9.0), need_grad=False)
    inputs = [x, weight, binary]
    if kind.startswith("binary_weight"):
        alpha = _leaf(np.zeros(w.shape[0] if convolution else 5), need_grad=False)
        inputs.append(alpha)
    y = getattr(F, kind)(*inputs, quantize_zero_to=0.5)
    weights = rng.normal(size=y.shape).astype(np.float32)
    y.forward()
    x.grad.zero()
    weight.grad.zero()
    y.backward(weights)
    np.testing.assert_array_equal(binary.d, np_binary(np.float32(w), 0.5))
    effective = np_binary(np.float32(w), 0.5)
    if kind.startswith("binary_weight"):
        scale = convolution_alpha(weight.d) if convolution else affine_alpha(weight.d)
        np.testing.assert_allclose(alpha.d, scale, rtol=1e-6)
        effective = effective * (scale.reshape(-1, 1, 1, 1) if convolution else scale)
    layer = (lambda W: np_convolution(x.d.astype(float), W)) if convolution \
        else (lambda W: np_affine(x.d.astype(float), W))
    np.testing.assert_allclose(y.d, layer(effective), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(weight.g, _numeric_weight_gradient(layer, weights, effective),
                               rtol=1e-4, atol=1e-4)
    nn.clear_parameters()


# --- min_max_quantize -------------------------------------------------------------------------

def np_min_max_parts(a, qr_min, qr_max, ql_min, ql_max, eps=0.01):
    """nnabla's docs: the range widened to eps, the zero point nudged to a level, then
    (value, m, M) with value = round((clip(a, m, M) - m) / scale) * scale + m."""
    qr_max = np.where(qr_max - qr_min < eps, qr_min + eps, qr_max)
    scale = (qr_max - qr_min) / (ql_max - ql_min)
    zero_point = ql_min - qr_min / scale
    nudged = np.where(zero_point <= ql_min, ql_min,
                      np.where(zero_point >= ql_max, ql_max, round_half_away(zero_point)))
    low, high = (ql_min - nudged) * scale, (ql_max - nudged) * scale
    value = round_half_away((np.clip(a, low, high) - low) / scale) * scale + low
    return value, low, high


RANGE = (1, 3, 1)


def _ranges():
    rng = np.random.default_rng(8)
    return [rng.normal(size=X) * 1.5, rng.uniform(-2, -0.5, RANGE), rng.uniform(0.5, 2, RANGE),
            np.zeros(RANGE), np.full(RANGE, 15.0)]


@pytest.mark.parametrize("fine", [True, False])
def test_min_max_quantize_trained_range_in_a_compiled_module(fine, tmp_path):
    """float64: the value is the reference's; x's gradient is w where m <= x <= M (or w),
    qr_min's the sum of w where x < m, qr_max's where x > M (nnabla's estimator), the
    levels get none; the array API module agrees."""
    arrays = _ranges()
    need_grad = [True, True, True, False, False]

    def build(*v):
        return F.min_max_quantize(*v, ste_fine_grained=fine)

    out = build(*named_inputs(arrays, need_grad))
    w = nn.Variable(out.shape)
    w.name = "weights"
    module = compile_f64(F.sum(out * w), tmp_path, "weighted").module
    weights = np.random.default_rng(2).normal(size=X)
    values = {**{f"in{i}": a for i, a in enumerate(arrays)}, "weights": weights}
    result = module.gradient(*arguments(module, values))
    value, low, high = np_min_max_parts(*arrays)
    np.testing.assert_allclose(result[0], np.sum(weights * value), rtol=1e-12)
    grads = dict(zip(module.GRADIENTS, result[len(module.OUTPUTS):], strict=True))
    assert set(grads) == {"in0", "in1", "in2"}
    a = arrays[0]
    inside = (a >= low) & (a <= high)
    np.testing.assert_array_equal(grads["in0"], weights * inside if fine else weights)
    np.testing.assert_allclose(grads["in1"], np.sum(weights * (a < low), (0, 2), keepdims=True),
                               rtol=1e-12)
    np.testing.assert_allclose(grads["in2"], np.sum(weights * (a > high), (0, 2), keepdims=True),
                               rtol=1e-12)
    assert 0 < inside.sum() < a.size  # (both sides of the range are exercised)
    nn.clear_parameters()
    check_array_api(build, arrays, module, tmp_path, need_grad=need_grad)


def test_min_max_quantize_writes_the_observed_range():
    """x_min_max: qr_min and qr_max become min(x) and max(x) over the ranges' size-1 axes
    (with ema, decay * old + (1 - decay) * new) and the value uses them; a range below
    eps is widened to qr_min + eps and qr_max keeps that; only x gets a gradient."""
    a, *_ = _ranges()
    x = _leaf(a)
    low, high = _leaf(np.full(RANGE, -1.0)), _leaf(np.ones(RANGE))
    levels = _leaf(np.zeros(RANGE), False), _leaf(np.full(RANGE, 255.0), False)
    y = F.min_max_quantize(x, low, high, *levels, x_min_max=True)
    y.forward()
    observed = (np.min(x.d, (0, 2), keepdims=True), np.max(x.d, (0, 2), keepdims=True))
    np.testing.assert_allclose(low.d, observed[0], rtol=1e-6)
    np.testing.assert_allclose(high.d, observed[1], rtol=1e-6)
    np.testing.assert_allclose(y.d, np_min_max_parts(x.d.astype(float), *observed, 0, 255)[0],
                               rtol=1e-5, atol=1e-6)
    for v in (x, low, high):
        v.grad.zero()
    y.backward()
    np.testing.assert_array_equal(low.g, 0)
    np.testing.assert_array_equal(high.g, 0)
    before = low.d.copy(), high.d.copy()
    y = F.min_max_quantize(x, low, high, *levels, x_min_max=True, ema=True, decay=0.75)
    y.forward()
    np.testing.assert_allclose(low.d, 0.75 * before[0] + 0.25 * observed[0], rtol=1e-6)
    np.testing.assert_allclose(high.d, 0.75 * before[1] + 0.25 * observed[1], rtol=1e-6)
    narrow_low, narrow_high = _leaf(np.full(RANGE, 0.5)), _leaf(np.full(RANGE, 0.501))
    y = F.min_max_quantize(x, narrow_low, narrow_high, *levels, eps=0.25)
    y.forward()
    np.testing.assert_allclose(narrow_high.d, 0.75, rtol=1e-6)
    np.testing.assert_array_equal(narrow_low.d, 0.5)
    np.testing.assert_allclose(y.d, np_min_max_parts(x.d.astype(float), 0.5, 0.75, 0, 255,
                                                     eps=0.25)[0], rtol=1e-5, atol=1e-6)


# --- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("call,error,message", [
    (lambda x: F.fixed_point_quantize(x, n=0), ValueError,
     r"F.fixed_point_quantize: n=0 and delta=0.0625 must both be positive"),
    (lambda x: F.fixed_point_quantize(x, delta=-1), ValueError,
     r"F.fixed_point_quantize: n=8 and delta=-1 must both be positive"),
    (lambda x: F.fixed_point_quantize(x, n=1), ValueError,
     r"F.fixed_point_quantize: n=1 leaves no bit for the value once sign=True"),
    (lambda x: F.fixed_point_quantize(x, sign=1), TypeError,
     r"F.fixed_point_quantize: sign must be True or False, got 1"),
    (lambda x: F.fixed_point_quantize(x, n=4.0), TypeError,
     r"F.fixed_point_quantize: n must be an int"),
    (lambda x: F.fixed_point_quantize(np.zeros(3)), TypeError,
     r"F.fixed_point_quantize: x must be a Variable, got ndarray"),
    (lambda x: F.pow2_quantize(x, n=2), ValueError,
     r"F.pow2_quantize: n=2 leaves no bit .* sign=True and with_zero=True .* give n >= 3"),
    (lambda x: F.pow2_quantize(x, m=0.5), TypeError, r"F.pow2_quantize: m must be an int"),
    (lambda x: F.pow2_quantize(x, ste_fine_grained=None), TypeError,
     r"F.pow2_quantize: ste_fine_grained must be True or False"),
    (lambda x: F.prune(x, rate=1.5), ValueError, r"F.prune: rate=1.5 must be in \[0, 1\]"),
    (lambda x: F.quantize_linear(x, nn.Variable((3, 1)), nn.Variable((1, 1, 1))), ValueError,
     r"F.quantize_linear: scale of shape \(3, 1\) does not fit the input of shape \(2, 3, 4\)"),
    (lambda x: F.quantize_linear(x, nn.Variable((1, 1, 1)), nn.Variable((1, 2, 1))),
     ValueError, r"F.quantize_linear: zero_point of shape \(1, 2, 1\) does not fit"),
    (lambda x: F.quantize_linear(x, nn.Variable((1, 1, 1)), nn.Variable((1, 1, 1)),
                                 round_mode="UP"), ValueError,
     r"F.quantize_linear: round_mode='UP' is not one of nnabla's"),
    (lambda x: F.quantize_linear(x, nn.Variable((1, 1, 1)), nn.Variable((1, 1, 1)),
                                 dtype=np.int16), ValueError,
     r"F.quantize_linear: dtype=<class 'numpy.int16'> is not one nnabla quantizes to"),
    (lambda x: F.dequantize_linear(x, 2.0, nn.Variable((1, 1, 1))), TypeError,
     r"F.dequantize_linear: scale must be a Variable, got float"),
    (lambda x: F.binary_connect_affine(x, nn.Variable((12, 5)), nn.Variable((12, 4))),
     ValueError, r"F.binary_connect_affine: binary_weight of shape \(12, 4\) must have the "
                 r"weight's shape \(12, 5\)"),
    (lambda x: F.binary_connect_affine(x, nn.Variable((10, 5)), nn.Variable((10, 5))),
     ValueError, r"F.binary_connect_affine: F.affine: input of shape \(2, 3, 4\) flattens to "
                 r"12 features"),
    (lambda x: F.binary_weight_affine(x, nn.Variable((12, 5)), nn.Variable((12, 5)),
                                      nn.Variable((12,))), ValueError,
     r"F.binary_weight_affine: alpha of shape \(12,\) must have one element per output \(5"),
    (lambda x: F.binary_weight_convolution(nn.Variable(IMAGE), nn.Variable(KERNEL),
                                           nn.Variable(KERNEL), nn.Variable((3,))), ValueError,
     r"F.binary_weight_convolution: alpha of shape \(3,\) must have one element per output "
     r"\(2"),
    (lambda x: F.binary_connect_convolution(nn.Variable(IMAGE), nn.Variable((2, 2, 3, 3)),
                                            nn.Variable((2, 2, 3, 3))), ValueError,
     r"F.binary_connect_convolution: F.convolution: input of shape \(2, 3, 4, 4\), weight of "
     r"shape \(2, 2, 3, 3\)"),
    (lambda x: F.min_max_quantize(x, *[nn.Variable(RANGE)] * 3, nn.Variable((1, 1, 1))),
     ValueError, r"F.min_max_quantize: ql_max of shape \(1, 1, 1\) differs from qr_min of "
                 r"shape \(1, 3, 1\)"),
    (lambda x: F.min_max_quantize(x, *[nn.Variable((3, 1))] * 4), ValueError,
     r"F.min_max_quantize: the ranges of shape \(3, 1\) do not fit the input of shape "
     r"\(2, 3, 4\)"),
    (lambda x: F.min_max_quantize(x, *[nn.Variable(RANGE)] * 4, eps=0), ValueError,
     r"F.min_max_quantize: eps=0 must be positive"),
    (lambda x: F.min_max_quantize(x, *[nn.Variable(RANGE)] * 3, 255), TypeError,
     r"F.min_max_quantize: ql_max must be a Variable, got int"),
    (lambda x: F.min_max_quantize(x, *[nn.Variable(RANGE)] * 4, ema=1), TypeError,
     r"F.min_max_quantize: ema must be True or False"),
    (lambda x: F.binary_weight_affine(x, nn.Variable((12, 5)), nn.Variable((12, 5)), None),
     TypeError, r"F.binary_weight_affine: alpha must be a Variable, got NoneType"),
])
def test_bad_input_is_refused_when_the_graph_is_built(call, error, message):
    with pytest.raises(error, match=message):
        call(nn.Variable(X))


def test_quantize_false_returns_the_input():
    """nnabla's Python functions return x itself when quantize=False."""
    x = nn.Variable(X)
    assert F.fixed_point_quantize(x, quantize=False) is x
    assert F.pow2_quantize(x, quantize=False) is x
    assert F.min_max_quantize(x, None, None, None, None, quantize=False) is x


# --- nnabla 1.39 -------------------------------------------------------------------------------

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
# expressions of x (2, 3, 4) (xt: with zeros and ties of 1/16), an image and kernels, the
# weights' binary and alpha parameters, scale and zero point, min_max_quantize's ranges
# and levels: the same text in nnabla and here; every input's gradient is compared, and
# every input after the forward pass (the ones nnabla writes)
EXPRESSIONS = [
    "F.fixed_point_quantize(x)",
    "F.fixed_point_quantize(xt)",
    "F.fixed_point_quantize(x * 4, n=4, delta=0.5)",
    "F.fixed_point_quantize(xt, sign=False, n=5, delta=0.125)",
    "F.fixed_point_quantize(x, n=3, delta=0.25, ste_fine_grained=False)",
    "F.pow2_quantize(x)",
    "F.pow2_quantize(xt, n=4, m=0)",
    "F.pow2_quantize(x, sign=False, n=4, m=1)",
    "F.pow2_quantize(xt, sign=False, with_zero=False, n=3, m=0)",
    "F.pow2_quantize(x * 0.1, with_zero=False, n=4, m=-1, ste_fine_grained=False)",
    "F.prune(x)",
    "F.prune(xt, 0.5)",
    "F.prune(x, 1.0)",
    "F.prune(x, 0.0)",
    "F.quantize_linear(x * 50, scale, zp)",
    "F.quantize_linear(x * 90, scale, zp, 'HALF_TO_EVEN', True, np.uint8)",
    "F.quantize_linear(xt, unit, half, 'HALF_TO_EVEN')",
    "F.dequantize_linear(x * 20, scale, zp)",
    "F.binary_connect_affine(x, aw, awb, ab)",
    "F.binary_connect_affine(xt, awz, awb, quantize_zero_to=-1.0)",
    "F.binary_connect_convolution(image, cw, cwb, cb, pad=(1, 1))",
    "F.binary_weight_affine(x, aw, awb, aalpha, ab)",
    "F.binary_weight_affine(x, awz, awb, aalpha, quantize_zero_to=0.0)",
    "F.binary_weight_convolution(image, cw, cwb, calpha, cb, stride=(2, 1))",
    "F.binary_weight_convolution(image, cwz, cwb, calpha, pad=(1, 1), dilation=(1, 2))",
    "F.min_max_quantize(x, qmn, qmx, ql0, ql255)",  # trained range: its gradients
    "F.min_max_quantize(x * 2, qmn, qmx, ql0, ql15, ste_fine_grained=False)",
    "F.min_max_quantize(x, qmn, qnarrow, ql0, ql255)",  # below eps: qr_max widened, written
    "F.min_max_quantize(x, rmn, rmx, ql0, ql255, x_min_max=True)",
    "F.min_max_quantize(x, rmn, rmx, ql0, ql15, x_min_max=True, ema=True, decay=0.9)",
    "F.min_max_quantize(x, rmn, rmx, ql0, ql255, ema=True, eps=0.5)",
    "F.min_max_quantize(x, smn, smx, sl0, sl255, x_min_max=True)",  # per element of axis 2
    "F.min_max_quantize(x * 3, smn, smx, sl0, sl255)",
]
NNABLA_SCRIPT = r"""
import json, sys
import numpy as np
import nnabla as nn, nnabla.functions as F

for i, text in enumerate(json.loads(sys.argv[1])):
    rng = np.random.RandomState(i)
    def leaf(array, need_grad=True):
        return nn.Variable.from_numpy_array(np.asarray(array, np.float32), need_grad=need_grad)
    ties = rng.randn(2, 3, 4) * 2
    ties.flat[::5] = 0
    ties.flat[1::7] = np.arange(len(ties.flat[1::7])) / 32 - 0.34375
    with_zeros = rng.randn(12, 5)
    with_zeros.flat[::4] = 0
    kernel_zeros = rng.randn(2, 3, 3, 3)
    kernel_zeros.flat[::4] = 0
    values = dict(x=leaf(rng.randn(2, 3, 4)), xt=leaf(ties), image=leaf(rng.randn(2, 3, 4, 4)),
                  aw=leaf(rng.randn(12, 5)), awz=leaf(with_zeros), ab=leaf(rng.randn(5)),
                  cw=leaf(rng.randn(2, 3, 3, 3)), cwz=leaf(kernel_zeros), cb=leaf(rng.randn(2)),
                  awb=leaf(np.zeros((12, 5)), False), aalpha=leaf(np.zeros(5), False),
                  cwb=leaf(np.zeros((2, 3, 3, 3)), False), calpha=leaf(np.zeros(2), False),
                  scale=leaf(rng.uniform(0.2, 1, (1, 3, 1)), False),
                  zp=leaf([[[2.5]]], False), unit=leaf([[[1.0]]], False),
                  half=leaf([[[-1.5]]], False),
                  qmn=leaf(rng.uniform(-2, -0.5, (1, 3, 1))),
                  qmx=leaf(rng.uniform(0.5, 2, (1, 3, 1))),
                  qnarrow=leaf([[[-0.5], [0.3], [-1.995]]]),
                  rmn=leaf(np.full((1, 3, 1), -1.0), False), rmx=leaf(np.ones((1, 3, 1)), False),
                  smn=leaf(rng.uniform(-2, -0.5, (1, 1, 4))),
                  smx=leaf(rng.uniform(0.5, 2, (1, 1, 4))),
                  ql0=leaf(np.zeros((1, 3, 1)), False),
                  ql255=leaf(np.full((1, 3, 1), 255.0), False),
                  ql15=leaf(np.full((1, 3, 1), 15.0), False), sl0=leaf(np.zeros((1, 1, 4)), False),
                  sl255=leaf(np.full((1, 1, 4), 255.0), False))
    inputs = {k: v.d.tolist() for k, v in values.items()}
    out = eval(text, {"F": F, "np": np, **values})
    g = np.asarray(rng.randn(*out.shape), np.float32)
    out.forward()
    for v in values.values():
        v.grad.zero()
    out.backward(g)
    print(json.dumps({"inputs": inputs, "g": g.tolist(),
                      "out": np.asarray(out.d, np.float64).tolist(),
                      "after": {k: v.d.tolist() for k, v in values.items()},
                      "grads": {k: v.g.tolist() for k, v in values.items() if v.need_grad}}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_functions_against_nnabla(tmp_path):
    """The output, every input's gradient and the inputs nnabla's forward writes (the
    binary layers' weights and alphas, min_max_quantize's observed or widened ranges)
    equal nnabla 1.39's (zero_point, which nnabla rounds in place, excepted)."""
    rows = nnabla_rows(NNABLA, NNABLA_SCRIPT, EXPRESSIONS, tmp_path)
    assert len(rows) == len(EXPRESSIONS)
    for text, row in zip(EXPRESSIONS, rows, strict=True):
        out, leaves = replay_row(text, row, need_grad=row["grads"])
        np.testing.assert_allclose(out.d, row["out"], rtol=1e-5, atol=1e-5, err_msg=text)
        for k, grad in row["grads"].items():
            np.testing.assert_allclose(leaves[k].g, grad, rtol=1e-4, atol=1e-5,
                                       err_msg=f"{text}: d{k}")
        for k, after in row["after"].items():
            if k not in ("zp", "half"):
                np.testing.assert_allclose(leaves[k].d, after, rtol=1e-6, atol=1e-7,
                                           err_msg=f"{text}: {k} after the forward pass")


# --- PF: the layers' parameters, as nnabla's ---------------------------------------------------

PF_CALLS = [
    "PF.binary_connect_affine(x, 5)",
    "PF.binary_connect_convolution(x, 2, (3, 3), pad=(1, 1), quantize_zero_to=-1.0)",
    "PF.binary_weight_affine(x, (2, 3), with_bias=False)",
    "PF.binary_weight_convolution(x, 4, (2, 2), stride=(2, 2))",
    "PF.fixed_point_quantized_affine(x, 5, n_w=4, delta_w=0.25)",
    "PF.fixed_point_quantized_convolution(x, 2, (3, 3), sign_b=False, quantize_w=False)",
    "PF.pow2_quantized_affine(x, 5, with_zero_w=True, m_b=1)",
    "PF.pow2_quantized_convolution(x, 2, (3, 3), n_w=4, with_bias=False)",
    "PF.min_max_quantize(x)",
    "PF.min_max_quantize(x, x_min_max=True, ema=True, decay=0.5)",
    "PF.min_max_quantized_affine(x, 5, ql_max_w=15)",
    "PF.min_max_quantized_convolution(x, 2, (3, 3), w_min_max=True, quantize_b=False)",
]
IMAGE_INPUT = (2, 3, 4, 4)
PF_SCRIPT = r"""
import json, sys
import numpy as np
import nnabla as nn, nnabla.parametric_functions as PF

for i, text in enumerate(json.loads(sys.argv[1])):
    nn.clear_parameters()
    np.random.seed(i)
    x = nn.Variable.from_numpy_array(np.random.randn(2, 3, 4, 4).astype(np.float32))
    y = eval(text, {"PF": PF, "x": x, "np": np})
    params = nn.get_parameters(grad_only=False)
    for p in params.values():  # (the rng of each initializer is its own: set them here)
        if p.need_grad:
            p.d = np.random.randn(*p.shape) * 0.7
    before = {k: v.d.tolist() for k, v in params.items()}
    y.forward()
    print(json.dumps({"x": x.d.tolist(), "out": y.d.tolist(), "before": before,
                      "need_grad": {k: bool(v.need_grad) for k, v in params.items()},
                      "after": {k: v.d.tolist() for k, v in params.items()}}))
"""


def _our_parameters():
    return nn.get_parameters(grad_only=False)


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_parametric_functions_against_nnabla(tmp_path):
    """Each layer creates nnabla's parameters (names, shapes, whether trained) and, given
    nnabla's values, computes nnabla's output and writes what nnabla writes (Wb, alpha,
    observed ranges; not W_q and b_q, see PF's quantization section)."""
    import symcompile.parametric_functions as PF

    rows = nnabla_rows(NNABLA, PF_SCRIPT, PF_CALLS, tmp_path)
    assert len(rows) == len(PF_CALLS)
    for text, row in zip(PF_CALLS, rows, strict=True):
        nn.clear_parameters()
        x = nn.Variable.from_numpy_array(np.array(row["x"], np.float32))
        y = eval(text, {"PF": PF, "x": x, "np": np})
        params = _our_parameters()
        assert list(params) == list(row["before"]), text
        for k, v in params.items():
            assert v.shape == np.shape(row["before"][k]), (text, k)
            assert v.need_grad == row["need_grad"][k], (text, k)
            v.d = np.array(row["before"][k], np.float32)
        y.forward()
        np.testing.assert_allclose(y.d, row["out"], rtol=1e-5, atol=1e-5, err_msg=text)
        for k, v in params.items():
            if not k.endswith(("/W_q", "/b_q")):
                np.testing.assert_allclose(v.d, row["after"][k], rtol=1e-6, atol=1e-6,
                                           err_msg=f"{text}: {k}")
    nn.clear_parameters()


def test_parametric_functions_are_their_functions():
    """PF.binary_weight_convolution is F.binary_weight_convolution of its parameters;
    PF.pow2_quantized_affine is F.affine of F.pow2_quantize'd W and b; PF.min_max_quantize
    makes ql_min/ql_max of shape (1,) * ndim and qr_min/qr_max -6 and 6, trained unless
    x_min_max and ema; channel_last=True for the quantized convolution is refused."""
    import symcompile.parametric_functions as PF

    nn.clear_parameters()
    x = _leaf(np.random.default_rng(0).normal(size=IMAGE_INPUT))
    y = PF.binary_weight_convolution(x, 4, (2, 2), rng=np.random.RandomState(0))
    params = _our_parameters()
    assert {k: v.shape for k, v in params.items()} == {
        "bwn_conv/W": (4, 3, 2, 2), "bwn_conv/Wb": (4, 3, 2, 2), "bwn_conv/alpha": (4,),
        "bwn_conv/b": (4,)}
    assert [v.need_grad for v in params.values()] == [True, False, False, True]
    y.forward()
    w = params["bwn_conv/W"].d.astype(float)
    np.testing.assert_allclose(y.d, np_binary_weight_convolution(x.d.astype(float), w),
                               rtol=1e-5, atol=1e-5)
    nn.clear_parameters()
    y = PF.pow2_quantized_affine(x, 5, with_zero_w=True, b_init=np.full(5, 0.3))
    params = _our_parameters()
    assert list(params) == ["pow2_quantized_affine/W", "pow2_quantized_affine/W_q",
                            "pow2_quantized_affine/b", "pow2_quantized_affine/b_q"]
    y.forward()
    w = np_pow2(params["pow2_quantized_affine/W"].d.astype(float), True, True, 8, 2)
    b = np_pow2(np.full(5, np.float32(0.3)).astype(float), True, False, 8, 2)
    np.testing.assert_allclose(y.d, np_affine(x.d.astype(float), w, b), rtol=1e-5, atol=1e-5)
    nn.clear_parameters()
    PF.min_max_quantize(x, x_min_max=True, ema=True)
    params = _our_parameters()
    assert {k: (v.shape, v.need_grad, float(v.d.flat[0])) for k, v in params.items()} == {
        "min_max_quantize/ql_min": ((1, 1, 1, 1), False, 0.0),
        "min_max_quantize/ql_max": ((1, 1, 1, 1), False, 255.0),
        "min_max_quantize/qr_min": ((1, 1, 1, 1), False, -6.0),
        "min_max_quantize/qr_max": ((1, 1, 1, 1), False, 6.0)}
    with pytest.raises(ValueError, match=r"PF.min_max_quantized_convolution: channel_last=True"):
        PF.min_max_quantized_convolution(x, 2, (3, 3), channel_last=True)
    nn.clear_parameters()
