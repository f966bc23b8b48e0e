"""F.crelu, F.add_n, F.mul_n, F.bc_add2, F.norm, F.categorical_cross_entropy, F.trilu,
F.eye_like, F.unlink, F.depthwise_deconvolution, F.fused_convolution,
F.tensor_normalization, F.confusion_matrix and F.shape.

- forward against independent NumPy references in float64 and gradients against central
  finite differences, through a compiled module (and its array API twin on
  array-api-strict arrays) and through the runtime (loss.forward(); loss.backward());
- nnabla's conventions: crelu's gradient at 0 goes to the second half; norm's is abs's
  (+1 at 0); categorical_cross_entropy clamps at FLT_MIN in its log and its gradient
  (-1/FLT_MIN where the label's probability is 0) and ignores label -1; unlink, eye_like,
  shape and confusion_matrix give no gradient; confusion_matrix's counts are int32;
- bad input refused when the graph is built; nnabla 1.39's numbers where it is installed.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from gradcheck import check_array_api, check_function, compile_f64
from nnabla_run import nnabla_rows, replay_row

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF
from symcompile.initializer import calc_uniform_lim_glorot

X = (2, 3, 4)
FLT_MIN = float(np.finfo(np.float32).tiny)


def normal(*shapes):
    return lambda: [np.random.default_rng(i).normal(size=s) for i, s in enumerate(shapes)]


def away_from_zero(*shapes):
    """Normal numbers at least 0.2 from 0 (mul_n, norm: smooth there)."""
    def draw():
        out = []
        for i, s in enumerate(shapes):
            a = np.random.default_rng(i).normal(size=s)
            out.append(np.where(a >= 0, a + 0.2, a - 0.2))
        return out
    return draw


def probabilities_and_labels(shape, axis, labels):
    def draw():
        p = np.random.default_rng(0).uniform(0.1, 1.0, size=shape)
        p = p / p.sum(axis=axis, keepdims=True)
        return [p, np.asarray(labels, dtype=np.float64)]
    return draw


def np_crelu(a, axis=1):
    return np.concatenate([np.maximum(a, 0), np.maximum(-a, 0)], axis)


def np_norm(a, p=2.0, axis=None, keepdims=False):
    return np.sum(np.abs(a) ** p, axis=axis, keepdims=keepdims) ** (1 / p)


def np_categorical_cross_entropy(p, t, axis):
    labels = t.astype(int)
    picked = np.take_along_axis(p, np.maximum(labels, 0), axis)
    return np.where(labels >= 0, -np.log(np.maximum(picked, FLT_MIN)), 0.0)


def np_confusion_matrix(x, t, axis):
    classes = x.shape[axis]
    predicted = np.argmax(x, axis).ravel()
    labels = np.squeeze(t, axis).astype(int).ravel()
    counts = np.zeros((classes, classes), dtype=np.int64)
    for label, guess in zip(labels, predicted, strict=True):
        if label >= 0:
            counts[label, guess] += 1
    return counts


def np_tensor_normalization(a, axes, beta=None, gamma=None, eps=1e-5):
    reduced = tuple(i for i in range(a.ndim) if i not in axes)
    mean = a.mean(axis=reduced, keepdims=True)
    variance = ((a - mean) ** 2).mean(axis=reduced, keepdims=True)
    y = (a - mean) / np.sqrt(variance + eps)
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return y


def np_depthwise_deconvolution(a, w, divisor=1, stride=(1, 1), pad=(0, 0)):
    """Each input channel c scattered through its kernel into output channel c // divisor
    (the definition, one input element at a time), then cropped by pad."""
    n, c, h, width = a.shape
    kh, kw = w.shape[1:]
    full = np.zeros((n, c // divisor, stride[0] * (h - 1) + kh, stride[1] * (width - 1) + kw))
    for ch in range(c):
        for i in range(h):
            for j in range(width):
                full[:, ch // divisor, i * stride[0]:i * stride[0] + kh,
                     j * stride[1]:j * stride[1] + kw] += a[:, ch, i, j, None, None] * w[ch]
    return full[:, :, pad[0]:full.shape[2] - pad[0], pad[1]:full.shape[3] - pad[1]]


def np_convolution(a, w, b=None, pad=(0, 0), stride=(1, 1)):
    """A 2-D cross-correlation, output element by output element."""
    a = np.pad(a, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    kh, kw = w.shape[2:]
    oh, ow = (a.shape[2] - kh) // stride[0] + 1, (a.shape[3] - kw) // stride[1] + 1
    out = np.zeros((a.shape[0], w.shape[0], oh, ow))
    for i in range(oh):
        for j in range(ow):
            window = a[:, :, i * stride[0]:i * stride[0] + kh, j * stride[1]:j * stride[1] + kw]
            out[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3]))
    return out if b is None else out + b[None, :, None, None]


def np_eye_like(a, k=0):
    return np.eye(a.shape[0], a.shape[1], k)


IMAGE, KERNEL = (2, 2, 4, 4), (3, 2, 3, 3)
STAT = (1, 3, 1, 1)

# (name, build, NumPy reference, inputs, need_grad or None)
CASES = [
    ("crelu", F.crelu, np_crelu, normal(X), None),
    ("crelu axis -1", lambda x: F.crelu(x, axis=-1), lambda a: np_crelu(a, 2), normal(X), None),
    ("crelu axis 0 of a vector", lambda x: F.crelu(x, axis=0), lambda a: np_crelu(a, 0),
     normal((5,)), None),
    ("add_n of three", lambda a, b, c: F.add_n(a, b, c), lambda a, b, c: a + b + c,
     normal(X, X, X), None),
    ("add_n of one, used twice", lambda a: F.add_n(a, a) * a, lambda a: 2 * a * a,
     normal(X), None),
    ("mul_n of three", lambda a, b, c: F.mul_n(a, b, c), lambda a, b, c: a * b * c,
     away_from_zero(X, X, X), None),
    ("mul_n with a repeated input", lambda a, b: F.mul_n(a, b, a), lambda a, b: a * a * b,
     away_from_zero((3, 2), (3, 2)), None),
    ("bc_add2 broadcasting", F.bc_add2, lambda a, b: a + b, normal(X, (1, 3, 1)), None),
    ("bc_add2 broadcasting the first", F.bc_add2, lambda a, b: a + b, normal((2, 1, 4), X),
     None),
    ("norm", F.norm, np_norm, away_from_zero(X), None),
    ("norm p=1 axis 1 keepdims", lambda x: F.norm(x, p=1, axis=1, keepdims=True),
     lambda a: np_norm(a, 1, 1, True), away_from_zero(X), None),
    ("norm p=3 axes (0, 2)", lambda x: F.norm(x, p=3, axis=(0, 2)),
     lambda a: np_norm(a, 3, (0, 2)), away_from_zero(X), None),
    ("norm p=2.5 axis -1", lambda x: F.norm(x, p=2.5, axis=-1),
     lambda a: np_norm(a, 2.5, -1), away_from_zero(X), None),
    ("categorical_cross_entropy last axis", F.categorical_cross_entropy,
     lambda p, t: np_categorical_cross_entropy(p, t, 2),
     probabilities_and_labels(X, 2, [[[0], [3], [1]], [[2], [-1], [0]]]), [True, False]),
    ("categorical_cross_entropy axis 1",
     lambda p, t: F.categorical_cross_entropy(p, t, axis=1),
     lambda p, t: np_categorical_cross_entropy(p, t, 1),
     probabilities_and_labels(X, 1, [[[0, 2, 1, 1]], [[2, 2, -1, 0]]]), [True, False]),
    ("trilu", F.trilu, np.triu, normal(X), None),
    ("trilu k=1 lower", lambda x: F.trilu(x, k=1, upper=False), lambda a: np.tril(a, 1),
     normal(X), None),
    ("trilu k=-1 upper, 4-D", lambda x: F.trilu(x, k=-1), lambda a: np.triu(a, -1),
     normal((2, 1, 4, 3)), None),
    ("trilu k=-5 lower keeps nothing", lambda x: F.trilu(x, k=-5, upper=False) + x,
     lambda a: a, normal(X), None),
    ("trilu k=-5 upper keeps everything", lambda x: F.trilu(x, k=-5), lambda a: a,
     normal(X), None),
    ("eye_like, times its input", lambda x: F.eye_like(x) * x,
     lambda a: np_eye_like(a) * a, normal((3, 4)), None),
    ("eye_like k=2 and k=-1", lambda x: (F.eye_like(x, k=2) - F.eye_like(x, k=-1)) * x,
     lambda a: (np_eye_like(a, 2) - np_eye_like(a, -1)) * a, normal((4, 3)), None),
    ("shape, times its input", lambda x: x * F.reshape(F.shape(x), (1, 3, 1)),
     lambda a: a * np.array([2.0, 3.0, 4.0]).reshape(1, 3, 1), normal(X), None),
    ("shape start end", lambda x: x * F.reshape(F.shape(x, start=-2, end=-1), (1, 1, 1)),
     lambda a: a * 3.0, normal(X), None),
    ("tensor_normalization axes 1", lambda x: F.tensor_normalization(x, (1,)),
     lambda a: np_tensor_normalization(a, (1,)), normal(X), None),
    ("tensor_normalization axes (0, 2) with beta and gamma",
     lambda x, b, g: F.tensor_normalization(x, [0, 2], b, g, eps=0.1),
     lambda a, b, g: np_tensor_normalization(a, (0, 2), b, g, eps=0.1),
     normal(X, (2, 1, 4), (2, 1, 4)), None),
    ("tensor_normalization axes -1 gamma only",
     lambda x, g: F.tensor_normalization(x, -1, gamma=g),
     lambda a, g: np_tensor_normalization(a, (2,), gamma=g), normal(X, (1, 1, 4)), None),
    ("depthwise_deconvolution", F.depthwise_deconvolution,
     lambda a, w: np_depthwise_deconvolution(a, w), normal((2, 4, 3, 3), (4, 2, 2)), None),
    ("depthwise_deconvolution divisor 2, stride 2, pad 1, bias",
     lambda x, w, b: F.depthwise_deconvolution(x, w, b, divisor=2, stride=(2, 2), pad=(1, 1)),
     lambda a, w, b: np_depthwise_deconvolution(a, w, 2, (2, 2), (1, 1))
     + b[None, :, None, None], normal((1, 4, 3, 3), (4, 3, 3), (2,)), None),
    ("fused_convolution with bias, relu",
     lambda x, w, b: F.fused_convolution(x, w, b, pad=(1, 1)),
     lambda a, w, b: np.maximum(np_convolution(a, w, b, pad=(1, 1)), 0),
     normal(IMAGE, KERNEL, (3,)), None),
    ("fused_convolution batch statistics, z, tanh",
     lambda x, w, beta, gamma, m, v, z: F.fused_convolution(
         x, w, None, beta, gamma, m, v, z, stride=(2, 2), nonlinearity="tanh"),
     lambda a, w, beta, gamma, m, v, z: np.tanh(np_tensor_normalization(
         np_convolution(a, w, stride=(2, 2)), (1,), beta, gamma) + z),
     normal((2, 2, 5, 5), KERNEL, STAT, STAT, STAT, STAT, (2, 3, 2, 2)),
     [True, True, True, True, False, False, True]),
    ("fused_convolution running statistics, leaky_relu",
     lambda x, w, beta, gamma, m, v: F.fused_convolution(
         x, w, None, beta, gamma, m, v, batch_stat=False, nonlinearity="leaky_relu",
         nonlinearity_args=[0.2]),
     lambda a, w, beta, gamma, m, v: _leaky_relu(
         (np_convolution(a, w) - m) / np.sqrt(v + 1e-5) * gamma + beta, 0.2),
     lambda: [*normal(IMAGE, KERNEL, STAT, STAT, STAT)(), np.full(STAT, 0.7)],
     [True, True, True, True, False, False]),
    ("fused_convolution channel_last, batch statistics over the last axis",
     lambda x, w, beta, gamma, m, v: F.fused_convolution(
         x, w, None, beta, gamma, m, v, pad=(1, 1), channel_last=True),
     lambda a, w, beta, gamma, m, v: np.maximum(np_tensor_normalization(np.moveaxis(
         np_convolution(np.moveaxis(a, -1, 1), np.moveaxis(w, -1, 1), pad=(1, 1)), 1, -1),
         (3,), beta, gamma), 0),
     normal((2, 4, 4, 2), (3, 3, 3, 2), (1, 1, 1, 3), (1, 1, 1, 3), (1, 1, 1, 3), (1, 1, 1, 3)),
     [True, True, True, True, False, False]),
    ("fused_convolution identity, z only", lambda x, w, z: F.fused_convolution(
        x, w, z=z, nonlinearity="identity"),
     lambda a, w, z: np_convolution(a, w) + z, normal(IMAGE, KERNEL, (2, 3, 2, 2)), None),
]


def _leaky_relu(a, alpha):
    return np.where(a > 0, a, alpha * a)


IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("name,build,reference,draw,need_grad", CASES, ids=IDS)
def test_forward_and_gradients(name, build, reference, draw, need_grad, tmp_path, rng):
    arrays = draw()
    module = check_function(build, reference, arrays, tmp_path, rng, need_grad=need_grad)
    nn.clear_parameters()
    check_array_api(build, arrays, module, tmp_path, need_grad=need_grad)


# --- through the runtime: forward() and backward() on the Variables ---------------------------

def _leaf(array, need_grad=True):
    return nn.Variable.from_numpy_array(np.asarray(array, np.float32), need_grad=need_grad)


@pytest.mark.parametrize("name", ["crelu axis -1", "mul_n of three", "norm p=3 axes (0, 2)",
                                  "categorical_cross_entropy axis 1", "trilu k=1 lower",
                                  "depthwise_deconvolution divisor 2, stride 2, pad 1, bias",
                                  "tensor_normalization axes (0, 2) with beta and gamma",
                                  "fused_convolution with bias, relu"])
def test_runtime_forward_and_backward(name):
    """loss.forward(); loss.backward() give the reference's values and the compiled float64
    module's gradients, within float32 rounding."""
    _, build, reference, draw, need_grad = CASES[IDS.index(name)]
    arrays = draw()
    need_grad = need_grad or [True] * len(arrays)
    leaves = [_leaf(a, g) for a, g in zip(arrays, need_grad, strict=True)]
    out = build(*leaves)
    weights = np.random.default_rng(5).normal(size=out.shape)
    loss = F.sum(out * _leaf(weights, False))
    loss.forward()
    for v in leaves:
        v.grad.zero()
    loss.backward()
    np.testing.assert_allclose(out.d, reference(*arrays), rtol=2e-4, atol=2e-5)
    for index, (leaf, grad) in enumerate(zip(leaves, need_grad, strict=True)):
        if not grad:
            continue
        expected = _finite_difference(build, arrays, weights, index)
        np.testing.assert_allclose(leaf.g, expected, rtol=2e-3, atol=2e-4,
                                   err_msg=f"{name}: input {index}")


def _finite_difference(build, arrays, weights, index, eps=1e-6):
    """d sum(weights * build(arrays)) / d arrays[index] by central differences of a float64
    compiled forward."""
    leaves = []
    for i, a in enumerate(arrays):
        v = nn.Variable(np.shape(a))
        v.name = f"in{i}"
        leaves.append(v)
    w = nn.Variable(np.shape(weights))
    w.name = "weights"
    loss = F.sum(build(*leaves) * w)
    module = _compiled(loss)
    values = {f"in{i}": np.asarray(a, np.float64) for i, a in enumerate(arrays)}
    values["weights"] = weights
    names = list(module.INPUTS) + [p["argument"] for p in module.PARAMETERS.values()]
    args = [values[spec["name"]] for spec in module.INPUTS.values()]
    args += [values[name] for name in module.PARAMETERS]
    position = names.index(f"in{index}") if f"in{index}" in names else None
    assert position is not None
    x = np.array(args[position], dtype=np.float64)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        for sign in (1, -1):
            shifted = x.copy()
            shifted[i] += sign * eps
            args[position] = shifted
            grad[i] += sign * float(module.forward(*args)) / (2 * eps)
    return grad


_TMP = {}


def _compiled(loss):
    import tempfile
    from pathlib import Path

    directory = _TMP.setdefault("dir", Path(tempfile.mkdtemp(prefix="catalogue_more_")))
    return compile_f64(loss, directory, "fd").module


# --- nnabla's conventions ----------------------------------------------------------------------

def test_crelu_at_zero_sends_the_second_halfs_gradient():
    """crelu.cpp: dx = dy[first half] where x > 0, else -dy[second half], so at x = 0 it is
    -dy of the second half (relu(-x)'s side)."""
    x = _leaf([[0.0, 1.0, -1.0]])
    y = F.crelu(x, axis=1)
    y.forward()
    np.testing.assert_array_equal(y.d, [[0, 1, 0, 0, 0, 1]])
    x.grad.zero()
    y.backward(np.arange(6, dtype=np.float32).reshape(1, 6))
    np.testing.assert_array_equal(x.g, [[-3, 1, -5]])


@pytest.mark.filterwarnings("ignore:.*encountered:RuntimeWarning")  # the NaN of 0/0
def test_norm_at_zero_has_abss_gradient():
    """nnabla's Norm backpropagates through abs (+1 at 0) and its powers: p=1 gives 1 at a
    zero; p=2 gives 0 there; a norm of zeros (p=2) gives NaN, as nnabla's."""
    for p, expected in ((1, [[1, 1, -1]]), (2, [[0, 1 / np.sqrt(5), -2 / np.sqrt(5)]])):
        x = _leaf([[0.0, 1.0, -2.0]])
        y = F.norm(x, p=p)
        y.forward()
        x.grad.zero()
        y.backward()
        np.testing.assert_allclose(x.g, expected, rtol=1e-6, atol=1e-7)
    zeros = _leaf([[0.0, 0.0]])
    y = F.norm(zeros)
    y.forward()
    zeros.grad.zero()
    y.backward()
    assert float(y.d) == 0 and np.isnan(zeros.g).all()


def test_categorical_cross_entropy_clamps_at_flt_min():
    """A label's probability of 0 gives -log(FLT_MIN) = 87.34 and the gradient
    -1/FLT_MIN (nnabla's, not 0: its clamp is the identity in the backward); label -1 gives
    0 and no gradient."""
    p = _leaf([[0.5, 0.0, 0.5], [0.2, 0.3, 0.5]])
    t = _leaf([[1], [-1]], need_grad=False)
    y = F.categorical_cross_entropy(p, t)
    y.forward()
    np.testing.assert_allclose(y.d, [[-np.log(FLT_MIN)], [0]], rtol=1e-6)
    p.grad.zero()
    y.backward()
    np.testing.assert_allclose(p.g, [[0, -1 / FLT_MIN, 0], [0, 0, 0]], rtol=1e-6)


def test_unlink_stops_the_gradient(tmp_path):
    """d/dx sum(w * unlink(x) * x) is w * x (only through the second factor), at run time
    and in the compiled module; unlink(x) alone gives no gradient at all."""
    a = np.random.default_rng(1).normal(size=X)
    w = np.random.default_rng(2).normal(size=X)
    x = _leaf(a)
    loss = F.sum(F.unlink(x) * x * _leaf(w, False))
    loss.forward()
    x.grad.zero()
    loss.backward()
    np.testing.assert_allclose(x.g, w * a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss.d, np.sum(w * a * a), rtol=1e-5)
    x2 = _leaf(a)
    alone = F.sum(F.unlink(x2) * 3)
    alone.forward()
    x2.grad.zero()
    alone.backward()
    np.testing.assert_array_equal(x2.g, np.zeros(X))


def test_metrics_have_nnablas_values_and_dtypes():
    """confusion_matrix counts (label, first largest score) pairs over every row, skips
    label -1 and is int32 as nnabla's; shape and eye_like are float32 constants; none
    of them sends a gradient."""
    rng = np.random.default_rng(3)
    x = _leaf(rng.normal(size=(2, 3, 4)))
    t = _leaf([[[0, 2, 1, -1]], [[2, 2, 0, 1]]], need_grad=False)
    counts = F.confusion_matrix(x, t, axis=1)
    counts.forward()
    assert counts.d.dtype == np.int32 and counts.shape == (3, 3)
    labels = np.array([[[0, 2, 1, -1]], [[2, 2, 0, 1]]], float)
    expected = np_confusion_matrix(np.moveaxis(x.d, 1, -1), np.moveaxis(labels, 1, -1), 2)
    np.testing.assert_array_equal(counts.d, expected)
    assert counts.d.sum() == 7
    tied = _leaf([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0]])  # ties: the first largest
    tied_counts = F.confusion_matrix(tied, _leaf([[2], [0]], need_grad=False))
    tied_counts.forward()
    np.testing.assert_array_equal(tied_counts.d, [[0, 1, 0], [0, 0, 0], [1, 0, 0]])
    sizes = F.shape(x, start=1)
    sizes.forward()
    assert sizes.d.dtype == np.float32
    np.testing.assert_array_equal(sizes.d, [3, 4])
    eye = F.eye_like(x[0], k=1)
    eye.forward()
    np.testing.assert_array_equal(eye.d, np.eye(3, 4, 1))
    loss = F.sum(F.eye_like(x[0]) * 2) + F.sum(F.shape(x) * 2) \
        + F.sum(F.confusion_matrix(x, t, axis=1) * 2)
    loss.forward()
    x.grad.zero()
    loss.backward()
    np.testing.assert_array_equal(x.g, np.zeros(X))


@pytest.mark.parametrize("start,end,expected", [
    (None, None, [2, 3, 4]), (1, None, [3, 4]), (None, 2, [2, 3]), (-2, None, [3, 4]),
    (0, -1, [2, 3]), (-1, None, [4]), (1, 7, [3, 4]), (-3, -2, [2])])
def test_shape_slices_as_nnabla(start, end, expected):
    """shape.cpp's range: a negative start or end counts from the end, end 0 (None) is the
    end, an end past the end is the end."""
    y = F.shape(nn.Variable(X), start=start, end=end)
    y.forward()
    np.testing.assert_array_equal(y.d, expected)


def test_compiled_confusion_matrix(tmp_path):
    """The compiled module's confusion matrix equals the runtime's and the reference."""
    rng = np.random.default_rng(4)
    x = nn.Variable((6, 4))
    x.name = "scores"
    t = nn.Variable((6, 1))
    t.name = "labels"
    module = compile_f64(F.confusion_matrix(x, t), tmp_path).module
    scores = rng.normal(size=(6, 4))
    labels = np.array([[0], [3], [1], [-1], [3], [2]], float)
    got = module.forward(scores, labels)
    np.testing.assert_array_equal(got, np_confusion_matrix(scores, labels, 1))


# --- bad input --------------------------------------------------------------------------------

@pytest.mark.parametrize("call,error,message", [
    (lambda x: F.crelu(x, axis=3), ValueError, r"F.crelu: axis 3 is out of range"),
    (lambda x: F.crelu(nn.Variable(())), ValueError, r"F.crelu: the input of shape \(\)"),
    (lambda x: F.add_n(x, nn.Variable((2, 3, 1))), ValueError,
     r"F.add_n: input 1 of shape \(2, 3, 1\) differs from input 0 of shape \(2, 3, 4\)"),
    (lambda x: F.add_n(), ValueError, r"F.add_n: 0 input\(s\) given"),
    (lambda x: F.mul_n(x), ValueError, r"F.mul_n: 1 input\(s\) given, nnabla's mul_n needs "
                                       r"at least 2"),
    (lambda x: F.add_n(x, axis=1), TypeError, r"F.add_n: unexpected arguments \['axis'\]"),
    (lambda x: F.bc_add2(x, nn.Variable((3, 4))), ValueError,
     r"F.bc_add2: inputs of shapes \(2, 3, 4\) and \(3, 4\) have different ranks"),
    (lambda x: F.norm(x, p=0.5), ValueError, r"F.norm: p=0.5 must be at least 1"),
    (lambda x: F.norm(x, axis=3), ValueError, r"F.norm: axis 3 is out of range"),
    (lambda x: F.categorical_cross_entropy(x, nn.Variable((2, 3, 4))), ValueError,
     r"F.categorical_cross_entropy: target of shape \(2, 3, 4\) does not fit input of shape "
     r"\(2, 3, 4\) with axis=2; .* shape \(2, 3, 1\)"),
    (lambda x: F.confusion_matrix(x, nn.Variable((2, 1, 1)), axis=1), ValueError,
     r"F.confusion_matrix: target of shape \(2, 1, 1\) .* shape \(2, 1, 4\)"),
    (lambda x: F.trilu(nn.Variable((4,))), ValueError,
     r"F.trilu: the input of shape \(4,\) has fewer than 2 axes"),
    (lambda x: F.trilu(x, upper=1), TypeError, r"F.trilu: upper must be True"),
    (lambda x: F.trilu(x, k=0.5), TypeError, r"F.trilu: k must be an int"),
    (lambda x: F.eye_like(x), ValueError,
     r"F.eye_like: the input of shape \(2, 3, 4\) is not 2-D"),
    (lambda x: F.shape(x, start=2, end=1), ValueError,
     r"F.shape: start=2, end=1 select no axis of the input of shape \(2, 3, 4\)"),
    (lambda x: F.shape(nn.Variable(())), ValueError, r"F.shape: the input of shape \(\)"),
    (lambda x: F.depthwise_deconvolution(nn.Variable((1, 4, 3, 3)), nn.Variable((4, 2, 2)),
                                         divisor=3), ValueError,
     r"F.depthwise_deconvolution: .* divisor=3 must be a positive divisor of the input's 4"),
    (lambda x: F.depthwise_deconvolution(nn.Variable((1, 4, 3, 3)), nn.Variable((2, 2, 2))),
     ValueError, r"F.depthwise_deconvolution: .* the weight must have shape \(channels, "
                 r"\*kernel\) = \(4, ...\)"),
    (lambda x: F.tensor_normalization(x, 1, beta=nn.Variable((3,))), ValueError,
     r"F.tensor_normalization: beta of shape \(3,\) does not fit .* shape \(1, 3, 1\)"),
    (lambda x: F.tensor_normalization(x, 1, output_stat="yes"), ValueError,
     r"F.tensor_normalization: output_stat must be True or False"),
    (lambda x: F.fused_convolution(nn.Variable(IMAGE), nn.Variable(KERNEL),
                                   pad_mode="reflect"), ValueError,
     r"F.fused_convolution: pad_mode='reflect', .* nnabla 1.39 ignores both"),
    (lambda x: F.fused_convolution(nn.Variable(IMAGE), nn.Variable(KERNEL),
                                   nonlinearity="gelu"), ValueError,
     r"F.fused_convolution: nonlinearity='gelu' is not one of nnabla's"),
    (lambda x: F.fused_convolution(nn.Variable(IMAGE), nn.Variable(KERNEL),
                                   nonlinearity="elu"), ValueError,
     r"F.fused_convolution: nonlinearity='elu' needs nonlinearity_args=\[alpha\]"),
    (lambda x: F.fused_convolution(nn.Variable(IMAGE), nn.Variable(KERNEL),
                                   beta=nn.Variable(STAT)), ValueError,
     r"F.fused_convolution: batch normalization needs .* gamma, mean, variance missing"),
    (lambda x: F.fused_convolution(nn.Variable(IMAGE), nn.Variable(KERNEL), nn.Variable((3,)),
                                   *[nn.Variable(STAT) for _ in range(4)]), ValueError,
     r"F.fused_convolution: a convolution bias and batch normalization together"),
    (lambda x: F.mul_n(np.zeros(3), x), TypeError, r"F.mul_n: input 0 must be a Variable"),
    (lambda x: F.norm([1.0, 2.0]), TypeError, r"F.norm: x must be a Variable, got list"),
    (lambda x: F.depthwise_deconvolution(nn.Variable((1, 4, 3, 3)), nn.Variable((4, 2, 2)),
                                         nn.Variable((3,))), ValueError,
     r"F.depthwise_deconvolution \(a deconvolution of 4 groups\): .* bias of shape \(3,\) "
     r"must have shape \(4,\)"),
    (lambda x: F.fused_convolution(nn.Variable(IMAGE), nn.Variable((3, 3, 3, 3))), ValueError,
     r"F.fused_convolution: F.convolution: input of shape \(2, 2, 4, 4\), weight of shape "
     r"\(3, 3, 3, 3\)"),
    (lambda x: F.fused_convolution(nn.Variable(IMAGE), nn.Variable(KERNEL), None,
                                   *[nn.Variable((1, 2, 1, 1)) for _ in range(4)]), ValueError,
     r"F.fused_convolution: F.batch_normalization: beta of shape \(1, 2, 1, 1\) does not "
     r"fit .* must have shape \(1, 3, 1, 1\)"),
])
def test_bad_input_is_refused_when_the_graph_is_built(call, error, message):
    with pytest.raises(error, match=message):
        call(nn.Variable(X))


# --- nnabla 1.39 -------------------------------------------------------------------------------

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
# expressions of x (2, 3, 4) (xz: with zeros), an image (2, 4, 3, 3) with its kernels and
# statistics, and labels, the same text in nnabla and here; and whether the backward is
# compared too
EXPRESSIONS = [
    ("F.crelu(x)", True),
    ("F.crelu(x, axis=2)", True),
    ("F.crelu(xz)", True),  # zeros: the second half's gradient
    ("F.add_n(x, x * 2, x[:, ::-1])", True),
    ("F.mul_n(x, x + 3, x * 2)", True),
    ("F.bc_add2(x, x[:1, :, :1])", True),
    ("F.bc_add2(x[:, :1], x)", True),
    ("F.norm(x)", True),
    ("F.norm(x, p=1, axis=1, keepdims=True)", True),
    ("F.norm(xz, p=1, axis=2)", True),  # zeros: abs's +1
    ("F.norm(x, p=3, axis=(0, 2))", True),
    ("F.categorical_cross_entropy(F.softmax(x, axis=1), labels1, axis=1)", True),
    ("F.categorical_cross_entropy(F.softmax(x), labels2)", True),
    ("F.trilu(x)", True),
    ("F.trilu(x, k=1, upper=False)", True),
    ("F.trilu(x, k=-1)", True),
    ("F.eye_like(x[0], k=1) * x[0]", True),
    ("F.eye_like(x[1], k=-2) + x[1]", True),
    ("F.unlink(x) * x", True),
    ("F.reshape(F.shape(x), (1, 3, 1)) * x", True),
    ("F.shape(x, start=1)", False),
    ("F.shape(x, -2, -1)", False),
    ("F.tensor_normalization(x, 1)", True),
    ("F.tensor_normalization(x, (0, 2), beta=x[:, :1] * 0.5, gamma=x[:, 1:2] + 1.5)", True),
    ("F.depthwise_deconvolution(image, dw)", True),
    ("F.depthwise_deconvolution(image, dw, db, divisor=2, stride=(2, 2), pad=(1, 1))", True),
    ("F.fused_convolution(image, cw, cb, pad=(1, 1))", True),
    ("F.fused_convolution(image, cw, None, beta, gamma, mean, variance, z, "
     "nonlinearity='elu', nonlinearity_args=[0.5])", True),
    ("F.fused_convolution(image, cw, None, beta, gamma, mean, variance, batch_stat=False, "
     "nonlinearity='sigmoid')", True),
    ("F.confusion_matrix(x, labels1, axis=1)", False),
    ("F.confusion_matrix(x, labels2)", False),
    ("F.crelu(x, axis=0)", True),
    ("F.crelu(x, axis=-1)", True),
    ("F.add_n(x)", True),
    ("F.norm(x, p=1.5, axis=(1,), keepdims=True)", True),
    ("F.categorical_cross_entropy(F.relu(xz), labels2)", True),  # zeros: FLT_MIN's clamp
    ("F.trilu(F.reshape(x, (2, 1, 3, 4)), k=2, upper=False)", True),
    ("F.trilu(x, k=-4, upper=False)", True),
    ("F.eye_like(x[0], k=5) + x[0]", True),
    ("F.shape(x, 0, 0)", False),
    ("F.shape(x, 1, 9)", False),
    ("F.tensor_normalization(x, 1, output_stat=True)[1]", True),
    ("F.tensor_normalization(x, 1, output_stat=True)[2]", True),
    ("F.tensor_normalization(x, [0, 1], eps=0.5)", True),
    ("F.depthwise_deconvolution(image, dw, dilation=(2, 1), divisor=4)", True),
    ("F.fused_convolution(image, cw, None, beta, gamma, mean, variance, z, batch_stat=False, "
     "nonlinearity='relu6')", True),
    ("F.fused_convolution(image, cw, cb, z=z, nonlinearity='leaky_relu', "
     "nonlinearity_args=[0.3])", True),
    ("F.fused_convolution(image, cw, stride=(2, 1), pad=(1, 0), nonlinearity='tanh')", True),
]
NNABLA_SCRIPT = r"""
import json, sys
import numpy as np
import nnabla as nn, nnabla.functions as F

for i, (text, backward) in enumerate(json.loads(sys.argv[1])):
    rng = np.random.RandomState(i)
    def leaf(shape, need_grad=True):
        return nn.Variable.from_numpy_array(rng.randn(*shape).astype(np.float32),
                                            need_grad=need_grad)
    values = dict(x=leaf((2, 3, 4)), image=leaf((2, 4, 3, 3)), dw=leaf((4, 2, 2)),
                  db=leaf((2,)), cw=leaf((3, 4, 2, 2)), cb=leaf((3,)), beta=leaf((1, 3, 1, 1)),
                  gamma=leaf((1, 3, 1, 1)), mean=leaf((1, 3, 1, 1), False),
                  z=leaf((2, 3, 2, 2)))
    with_zeros = rng.randn(2, 3, 4).astype(np.float32)
    with_zeros.flat[::3] = 0
    values["xz"] = nn.Variable.from_numpy_array(with_zeros, need_grad=True)
    values["variance"] = nn.Variable.from_numpy_array(
        rng.uniform(0.5, 2, (1, 3, 1, 1)).astype(np.float32))
    labels1 = rng.randint(0, 3, (2, 1, 4)).astype(np.float32)
    labels1[1, 0, 2] = -1
    labels2 = rng.randint(0, 4, (2, 3, 1)).astype(np.float32)
    values["labels1"] = nn.Variable.from_numpy_array(labels1)
    values["labels2"] = nn.Variable.from_numpy_array(labels2)
    inputs = {k: v.d.tolist() for k, v in values.items()}
    out = eval(text, {"F": F, **values})
    g = np.asarray(rng.randn(*out.shape), np.float32)
    out.forward()
    for v in values.values():
        v.grad.zero()
    if backward:
        out.backward(g)
    print(json.dumps({"inputs": inputs, "g": g.tolist(),
                      "out": np.asarray(out.d, np.float64).tolist(),
                      "grads": {k: v.g.tolist() for k, v in values.items() if v.need_grad}}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_functions_against_nnabla(tmp_path):
    """The output (and where marked, every input's gradient) of each expression equals
    nnabla 1.39's."""
    rows = nnabla_rows(NNABLA, NNABLA_SCRIPT, EXPRESSIONS, tmp_path)
    assert len(rows) == len(EXPRESSIONS)
    for (text, backward), row in zip(EXPRESSIONS, rows, strict=True):
        out, leaves = replay_row(text, row, need_grad=row["grads"])
        np.testing.assert_allclose(out.d, row["out"], rtol=1e-4, atol=1e-5, err_msg=text)
        if backward:
            for k, grad in row["grads"].items():
                np.testing.assert_allclose(leaves[k].g, grad, rtol=1e-3, atol=1e-4,
                                           err_msg=f"{text}: d{k}")


# --- PF.depthwise_deconvolution -------------------------------------------------------------

def test_pf_depthwise_deconvolution_parameters_are_nnablas():
    """depthwise_deconv/W (C, *kernel), uniform within nnabla's Glorot limit for (C, C,
    kernel), and depthwise_deconv/b (C // divisor,) of zeros; the output is
    F.depthwise_deconvolution's with them; with_bias=False makes no b."""
    nn.clear_parameters()
    x = _leaf(np.random.default_rng(6).normal(size=(2, 4, 3, 3)))
    y = PF.depthwise_deconvolution(x, (2, 3), divisor=2, stride=(2, 1),
                                   rng=np.random.RandomState(0))
    params = nn.get_parameters()
    assert {k: v.shape for k, v in params.items()} == {
        "depthwise_deconv/W": (4, 2, 3), "depthwise_deconv/b": (2,)}
    low, limit = calc_uniform_lim_glorot(4, 4, (2, 3))
    assert low == -limit
    w = params["depthwise_deconv/W"].d
    assert np.all(np.abs(w) <= limit) and np.abs(w).max() > limit / 2
    np.testing.assert_array_equal(params["depthwise_deconv/b"].d, 0)
    y.forward()
    np.testing.assert_allclose(y.d, np_depthwise_deconvolution(x.d, w, 2, (2, 1)), rtol=1e-5,
                               atol=1e-5)
    nn.clear_parameters()
    PF.depthwise_deconvolution(x, (2, 2), with_bias=False, name="plain")
    assert list(nn.get_parameters()) == ["plain/depthwise_deconv/W"]  # (nnabla 1.39: the same)
    with pytest.raises(ValueError, match=r"PF.depthwise_deconvolution: divisor=0"):
        PF.depthwise_deconvolution(x, (2, 2), divisor=0)
    nn.clear_parameters()
