"""The convolution kernels called directly, in both backends.

- `im2col`, `conv_matmul` (a view without groups), `conv_matmul_grad_cols` with
  `col2im`, and `conv_matmul_grad_w` against an independent reference (the convolution
  by slices of the padded input and `numpy.einsum`, float64) and its gradients by
  central differences, for odd sizes, stride, dilation, pad, group, 1-D to 3-D;
- `col2im` is the transpose of `im2col` (<im2col(x), c> = <x, col2im(c)>), and im2col's
  entries are the windows of xpad read one by one;
- the NumPy `conv_grad_x` (the im2col path's x-gradient too), over the flattened batch
  (`conv_grad_x_flat`) for stride 1 and over windows otherwise, by central differences.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from symcompile.backends.kernels import array_api_kernels as A
from symcompile.backends.kernels import numpy_kernels as K


def reference(x, w, pad, stride, dilation, group):
    """The convolution by its definition: one einsum per kernel position over a strided
    slice of the zero-padded x (float64)."""
    padded = np.pad(x, ((0, 0), (0, 0)) + tuple((p, p) for p in pad))
    kernel, outs, ins = w.shape[2:], w.shape[0] // group, w.shape[1]
    out = tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, p, s, d in
                zip(x.shape[2:], kernel, pad, stride, dilation, strict=True))
    y = np.zeros((x.shape[0], w.shape[0]) + out)
    for k in np.ndindex(*kernel):
        window = padded[(slice(None), slice(None)) + tuple(
            slice(ki * d, ki * d + s * (m - 1) + 1, s)
            for ki, m, s, d in zip(k, out, stride, dilation, strict=True))]
        for j in range(group):
            y[:, j * outs:(j + 1) * outs] += np.einsum(
                "oc,nc...->no...", w[(slice(j * outs, (j + 1) * outs), slice(None)) + k],
                window[:, j * ins:(j + 1) * ins])
    return y


def differences(f, a, eps=1e-6):
    """The gradient of the scalar f at a by central differences."""
    grad = np.zeros_like(a)
    for i in np.ndindex(*a.shape):
        step = np.zeros_like(a)
        step[i] = eps
        grad[i] = (f(a + step) - f(a - step)) / (2 * eps)
    return grad


# (name, x shape, w shape, pad, stride, dilation, group)
CASES = [
    ("2-D odd", (2, 3, 5, 7), (4, 3, 3, 2), (0, 0), (1, 1), (1, 1), 1),
    ("2-D pad", (1, 2, 6, 5), (3, 2, 3, 3), (1, 2), (1, 1), (1, 1), 1),
    ("2-D stride rows", (2, 2, 7, 6), (2, 2, 3, 3), (1, 0), (2, 1), (1, 1), 1),
    ("2-D stride last", (1, 2, 6, 7), (3, 2, 2, 3), (1, 1), (1, 2), (1, 1), 1),
    ("2-D dilation", (1, 2, 7, 7), (2, 2, 2, 3), (0, 1), (1, 1), (2, 2), 1),
    ("2-D group", (2, 4, 5, 6), (6, 2, 3, 3), (1, 1), (1, 1), (1, 1), 2),
    ("2-D depthwise", (1, 3, 4, 5), (3, 1, 3, 2), (1, 0), (1, 1), (1, 2), 3),
    ("2-D width 1 kernel", (1, 2, 5, 4), (2, 2, 3, 1), (1, 0), (1, 1), (1, 1), 1),
    ("1-D", (2, 3, 9), (2, 3, 3), (2,), (1,), (2,), 1),
    ("1-D stride", (1, 2, 8), (4, 1, 2), (1,), (3,), (1,), 2),
    ("3-D", (1, 2, 4, 3, 5), (3, 2, 2, 2, 3), (1, 0, 1), (1, 2, 1), (1, 1, 2), 1),
    ("3-D group", (1, 4, 3, 4, 4), (2, 2, 2, 2, 2), (0, 1, 0), (1, 1, 1), (1, 1, 1), 2),
]
IDS = [c[0] for c in CASES]


def params():
    return [pytest.param(*case[1:], id=case[0]) for case in CASES]


class NumPyKernels:
    """The NumPy backend's kernels on float64 NumPy arrays."""

    def call(self, name, *args, **kwargs):
        return np.asarray(getattr(K, name)(*args, **kwargs))

    def array(self, a):
        return a


class ArrayAPIKernels:
    """The array API backend's kernels on array-api-strict arrays (or NumPy's namespace)."""

    def __init__(self):
        try:
            import array_api_strict as xp
        except ImportError:  # NumPy 2 implements the standard
            xp = np
        self.xp = xp

    def call(self, name, *args, **kwargs):
        return np.asarray(getattr(A, name)(self.xp, *args, **kwargs))

    def array(self, a):
        return self.xp.asarray(a)


BACKENDS = {"numpy": NumPyKernels, "array_api": ArrayAPIKernels}


@pytest.fixture(params=sorted(BACKENDS))
def kernels(request):
    return BACKENDS[request.param]()


@pytest.mark.parametrize("x_shape,w_shape,pad,stride,dilation,group", params())
def test_products_of_columns_against_the_reference_and_differences(
        kernels, x_shape, w_shape, pad, stride, dilation, group):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    kernel = w_shape[2:]
    expected = reference(x, w, pad, stride, dilation, group)
    dy = rng.standard_normal(expected.shape)
    geometry = (kernel, pad, stride, dilation)
    cols = kernels.call("im2col", kernels.array(x), *geometry)
    assert cols.shape == (x_shape[1] * math.prod(kernel),
                          x_shape[0] * math.prod(expected.shape[2:]))
    y = kernels.call("conv_matmul", kernels.array(cols), kernels.array(w), expected.shape, group)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)

    def loss_x(a):
        return float(np.vdot(reference(a, w, pad, stride, dilation, group), dy))

    def loss_w(a):
        return float(np.vdot(reference(x, a, pad, stride, dilation, group), dy))

    dcols = kernels.call("conv_matmul_grad_cols", kernels.array(dy), kernels.array(w),
                         cols.shape, group)
    assert dcols.shape == cols.shape
    dx = kernels.call("col2im", kernels.array(dcols), x_shape, *geometry)
    np.testing.assert_allclose(dx, differences(loss_x, x), rtol=1e-7, atol=1e-7)
    dw = kernels.call("conv_matmul_grad_w", kernels.array(cols), kernels.array(dy), w_shape,
                      group)
    np.testing.assert_allclose(dw, differences(loss_w, w), rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("x_shape,w_shape,pad,stride,dilation,group", params())
def test_col2im_is_the_transpose_of_im2col(kernels, x_shape, w_shape, pad, stride, dilation,
                                           group):
    """<im2col(x), c> = <x, col2im(c)> for any c, and im2col's entries are the windows of
    xpad read one by one."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(x_shape)
    geometry = (w_shape[2:], pad, stride, dilation)
    cols = kernels.call("im2col", kernels.array(x), *geometry)
    c = rng.standard_normal(cols.shape)
    back = kernels.call("col2im", kernels.array(c), x_shape, *geometry)
    assert back.shape == x_shape
    np.testing.assert_allclose(np.vdot(cols, c), np.vdot(x, back), rtol=1e-12)
    out = K.conv_output_size(x_shape[2:], w_shape[2:], pad, stride, dilation)
    compact = np.reshape(cols, (cols.shape[0], x_shape[0], *out))
    padded = np.pad(x, ((0, 0), (0, 0)) + tuple((p, p) for p in pad))
    kernel = w_shape[2:]
    for row, (ci, *k) in enumerate(np.ndindex(x_shape[1], *kernel)):
        for n in range(x_shape[0]):
            for m in np.ndindex(*out):
                at = tuple(mi * s + ki * d for mi, ki, s, d in
                           zip(m, k, stride, dilation, strict=True))
                assert compact[(row, n) + m] == padded[(n, ci) + at]


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_float32_columns_stay_float32(backend):
    kernels = BACKENDS[backend]()
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    geometry = ((3, 3), (1, 1), (1, 1), (1, 1))
    cols = kernels.call("im2col", kernels.array(x), *geometry)
    y = kernels.call("conv_matmul", kernels.array(cols), kernels.array(w), (2, 4, 6, 6), 1)
    dy = np.ones(y.shape, np.float32)
    dx = kernels.call("col2im", kernels.array(kernels.call(
        "conv_matmul_grad_cols", kernels.array(dy), kernels.array(w), cols.shape, 1)),
        x.shape, *geometry)
    dw = kernels.call("conv_matmul_grad_w", kernels.array(cols), kernels.array(dy), w.shape, 1)
    assert {a.dtype for a in (cols, y, dx, dw)} == {np.dtype(np.float32)}
    np.testing.assert_allclose(y, reference(x.astype(float), w.astype(float), (1, 1), (1, 1),
                                            (1, 1), 1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("x_shape,w_shape,pad,stride,dilation,group",
                         [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_the_fused_x_gradient_against_differences(x_shape, w_shape, pad, stride, dilation,
                                                  group):
    """conv_grad_x (the x-gradient of the im2col path too): over the flattened batch
    (conv_grad_x_flat) for stride 1, over windows otherwise; float64 and float32."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    dy = rng.standard_normal(reference(x, w, pad, stride, dilation, group).shape)
    expected = differences(
        lambda a: float(np.vdot(reference(a, w, pad, stride, dilation, group), dy)), x)
    dx = K.conv_grad_x(dy, w, x_shape, pad, stride, dilation, group)
    assert dx.shape == x_shape
    np.testing.assert_allclose(dx, expected, rtol=1e-7, atol=1e-7)
    if not any(s != 1 for s in stride):
        np.testing.assert_allclose(K.conv_grad_x_flat(dy, w, x_shape, pad, dilation, group),
                                   expected, rtol=1e-7, atol=1e-7)
    single = K.conv_grad_x(dy.astype(np.float32), w.astype(np.float32), x_shape, pad, stride,
                           dilation, group)
    assert single.dtype == np.float32
    np.testing.assert_allclose(single, expected, rtol=1e-4, atol=1e-4)
