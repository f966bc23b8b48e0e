"""nn.NdArray and imperative mode: arrays on their own, NdArray arithmetic, F on NdArrays.

- construction (zeros of float32; from_numpy_array keeping the dtype, as nnabla),
  `.data`, `fill`, `zero`, `copy_from`, `cast`;
- arithmetic giving new NdArrays, in-place arithmetic writing the array, including a
  Variable's ``x.data -= x.grad * lr`` (a hand-written SGD step that trains);
- F functions on NdArrays computing at once (float32 NdArrays), mixing refused.
"""

from __future__ import annotations

import numpy as np
import pytest

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF


def test_construction_and_data():
    a = nn.NdArray((2, 3))
    assert a.shape == (2, 3) and a.ndim == 2 and a.size == 6 and a.dtype == np.float32
    np.testing.assert_array_equal(a.data, 0)
    a.fill(2.5)
    np.testing.assert_array_equal(a.data, 2.5)
    a.data = np.arange(6).reshape(2, 3)
    assert a.data[1, 2] == 5
    a.zero()
    np.testing.assert_array_equal(a.data, 0)
    assert nn.NdArray.from_numpy_array(np.ones(3)).dtype == np.float64
    assert nn.NdArray.from_numpy_array(np.arange(3)).dtype == np.int64
    b = nn.NdArray((2, 3))
    b.copy_from(nn.NdArray.from_numpy_array(np.full((2, 3), 7.0)))
    np.testing.assert_array_equal(b.data, 7)
    assert b.cast(np.float64).dtype == np.float64
    with pytest.raises(TypeError, match="expected real numbers"):
        nn.NdArray.from_numpy_array(np.array(["a"]))


def test_arithmetic():
    x = nn.NdArray.from_numpy_array(np.array([1.0, 2.0, 4.0], np.float32))
    y = (x + 1) * 2 - x / 2
    assert isinstance(y, nn.NdArray)
    np.testing.assert_allclose(y.data, (x.data + 1) * 2 - x.data / 2)
    np.testing.assert_allclose((1 - x).data, 1 - x.data)
    np.testing.assert_allclose((x ** 2).data, x.data ** 2)
    np.testing.assert_allclose((-x).data, -x.data)
    same = x
    x += x
    x *= 3
    x -= 1
    x /= 2
    assert x is same
    np.testing.assert_allclose(x.data, (np.array([1, 2, 4]) * 2 * 3 - 1) / 2)


def test_hand_written_sgd_with_data_and_grad():
    """nnabla's tutorial update: ``param.data -= param.grad * lr`` for every parameter."""
    rng = np.random.default_rng(0)
    x = nn.Variable.from_numpy_array(rng.normal(size=(32, 3)).astype(np.float32))
    target = x.d @ np.array([[1.0], [-2.0], [0.5]], np.float32) + 0.3
    t = nn.Variable.from_numpy_array(target)
    loss = F.mean(F.squared_error(PF.affine(x, 1), t))
    first = None
    for _ in range(200):
        loss.forward()
        first = float(loss.d) if first is None else first
        for p in nn.get_parameters().values():
            p.grad.zero()
        loss.backward()
        for p in nn.get_parameters().values():
            p.data -= p.grad * 0.1
    assert float(loss.d) < 1e-3 * first
    np.testing.assert_allclose(nn.get_parameters()["affine/W"].d.ravel(), [1, -2, 0.5],
                               atol=1e-2)


def test_functions_on_ndarrays_compute_at_once():
    x = nn.NdArray.from_numpy_array(np.array([[-1.0, 0.5], [2.0, -3.0]]))
    y = F.relu(x)
    assert isinstance(y, nn.NdArray) and y.dtype == np.float32
    np.testing.assert_array_equal(y.data, np.maximum(x.data, 0))
    z = F.add2(F.tanh(y), F.sum(y, axis=1, keepdims=True))
    np.testing.assert_allclose(z.data, np.tanh(y.data) + y.data.sum(axis=1, keepdims=True),
                               rtol=1e-6)
    # A Variable with an NdArray takes part with its values, as in nnabla (a PF layer's
    # parameters on an NdArray input); the result is an NdArray.
    v = nn.Variable.from_numpy_array(np.full((2, 2), 3.0))
    for mixed in (F.add2(y, v), F.add2(v, y)):
        assert isinstance(mixed, nn.NdArray)
        np.testing.assert_allclose(mixed.data, y.data + 3)
