"""F.top_n_error, F.binary_error, F.one_hot (metrics and encodings: no gradient),
F.tile, F.sink and Variable.reshape.

- values against NumPy definitions (ties count against the label in top_n_error, -1
  labels give 0); tile's gradient against finite differences; sink seeds every input
  with ones; a metric in a loss adds no gradient;
- nnabla 1.39's numbers where it is installed; bad input refused at graph-build time.
"""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
from gradcheck import check_function

import symcompile as nn
import symcompile.functions as F
from symcompile.runtime import execution


def top_n_reference(x, t, n, axis=-1):
    x, t = np.moveaxis(x, axis, -1), np.moveaxis(t, axis, -1)[..., 0].astype(int)
    picked = np.take_along_axis(x, np.maximum(t, 0)[..., None], axis=-1)
    error = (np.sum(x >= picked, axis=-1) > n).astype(float) * (t >= 0)
    return np.moveaxis(error[..., None], -1, axis)


@pytest.mark.parametrize("n,axis", [(1, -1), (2, -1), (1, 0), (3, 1)])
def test_top_n_error(n, axis):
    rng = np.random.default_rng(n)
    x = np.round(rng.normal(size=(5, 4, 3)), 1)  # rounded: some ties
    shape = list(x.shape)
    shape[axis] = 1
    t = rng.integers(-1, x.shape[axis], size=shape).astype(np.float32)
    out = F.top_n_error(nn.Variable.from_numpy_array(x), nn.Variable.from_numpy_array(t),
                        axis=axis, n=n)
    out.forward()
    assert out.shape == tuple(shape)
    np.testing.assert_array_equal(out.d, top_n_reference(x.astype(np.float32), t, n, axis))


def test_binary_error_and_one_hot():
    x = nn.Variable.from_numpy_array(np.array([[0.2, 0.7], [0.5, 0.49]]))
    t = nn.Variable.from_numpy_array(np.array([[1.0, 1.0], [0.0, 0.0]]))
    e = F.binary_error(x, t)
    i = nn.Variable.from_numpy_array(np.array([[[0], [2]], [[1], [1]]]))
    h = F.one_hot(i, (3,))
    F.sink(e, h).forward()
    np.testing.assert_array_equal(e.d, [[1, 0], [1, 0]])
    np.testing.assert_array_equal(h.d, np.eye(3)[[[0, 2], [1, 1]]])


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
def test_functions_of_metrics_compute_in_float32(backend):
    """A one-hot or a metric is a float32 array, as in nnabla: a function of it is not
    computed on booleans (NumPy takes cosh of a bool array in float16), and a sum of two
    is 2 where both are 1 (not a logical or)."""
    labels = nn.Variable.from_numpy_array(np.array([[0], [2], [1]]))
    x = nn.Variable.from_numpy_array(np.array([[0.1, 0.5, 0.2]] * 3, np.float32))
    h, e = F.one_hot(labels, (3,)), F.top_n_error(x, labels)
    outputs = [F.cosh(h), h + h, F.exp(e), F.sin(F.binary_error(x, x * 0 + 0.3)), F.sum(e)]
    previous = execution.set_backend(backend)
    try:
        F.sink(*outputs).forward()
    finally:
        execution.set_backend(previous)
    one_hot = np.eye(3, dtype=np.float32)[[0, 2, 1]]
    error = np.array([[1], [1], [0]], np.float32)
    expected = [np.cosh(one_hot), 2 * one_hot, np.exp(error),
                np.sin(np.float32([[0, 1, 0]] * 3)), np.float32(2)]
    for out, want in zip(outputs, expected, strict=True):
        assert out.d.dtype == np.float32
        np.testing.assert_allclose(out.d, want, rtol=1e-6)


def test_metrics_add_no_gradient():
    x = nn.Variable.from_numpy_array(np.array([[0.1, 0.5, 0.2]]), need_grad=True)
    t = nn.Variable.from_numpy_array(np.array([[2.0]]))
    loss = F.sum(x * x) + F.mean(F.top_n_error(x, t)) + F.sum(F.binary_error(x, x * 0))
    x.grad.zero()
    loss.forward()
    loss.backward()
    np.testing.assert_allclose(x.g, 2 * x.d, rtol=1e-6)


@pytest.mark.parametrize("shape,reps", [((2, 3), (2, 1)), ((2, 3), 2), ((3,), (2, 2)),
                                        ((2, 1, 2), (1, 3, 2))])
def test_tile(shape, reps, tmp_path, rng):
    x = np.random.default_rng(0).normal(size=shape)
    check_function(lambda v: F.tile(v, reps), lambda a: np.tile(a, reps), [x], tmp_path, rng)


def test_sink_seeds_every_input_with_ones():
    x = nn.Variable.from_numpy_array(np.array([0.5, -1.0]), need_grad=True)
    a, b = F.tanh(x), x * 3
    x.grad.zero()
    s = F.sink(a, b)
    s.forward()
    s.backward()
    np.testing.assert_allclose(x.g, (1 - np.tanh(x.d) ** 2) + 3, rtol=1e-6)
    with pytest.raises(ValueError, match="one_input_grad=False"):
        F.sink(a, one_input_grad=False)


def test_variable_reshape():
    x = nn.Variable.from_numpy_array(np.arange(6.0).reshape(2, 3), need_grad=True)
    y = x.reshape((3, 2))
    assert y.shape == (3, 2) and y.parent.name == "Reshape"
    y.forward()
    np.testing.assert_array_equal(y.d, np.arange(6.0).reshape(3, 2))
    # unlink=True: a leaf sharing x's arrays in the new shape, as nnabla's
    flat = x.reshape((-1,), unlink=True)
    assert flat.parent is None and flat.need_grad and flat.shape == (6,)
    flat.d[0] = 9
    assert x.d[0, 0] == 9
    loss = F.sum(flat * 2)
    loss.forward()
    x.grad.zero()
    loss.backward()
    np.testing.assert_array_equal(x.g, np.full((2, 3), 2.0))  # its gradient is x's too
    intermediate = F.tanh(x).reshape((3, 2), unlink=True)  # computed when taken
    np.testing.assert_allclose(intermediate.d, np.tanh(x.d).reshape(3, 2), rtol=1e-6)
    with pytest.raises(ValueError, match=r"cannot reshape \(2, 3\) \(6 elements\) to \(4,\)"):
        x.reshape((4,), unlink=True)


@pytest.mark.parametrize("call,message", [
    (lambda x: F.top_n_error(x, nn.Variable((4, 2))), r"target of shape \(4, 2\) does not fit"),
    (lambda x: F.top_n_error(x, nn.Variable((4, 1)), n=0), r"n must be a positive int"),
    (lambda x: F.binary_error(x, nn.Variable((4,))), r"must have the same shape"),
    (lambda x: F.one_hot(nn.Variable((4, 2)), (3, 3)), r"only one index per row"),
    (lambda x: F.tile(x, (0, 1)), r"reps=\[0, 1\] must hold positive ints"),
])
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call(nn.Variable((4, 3)))


NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
NNABLA_METRICS = r"""
import json, sys
import numpy as np
import nnabla as nn, nnabla.functions as F
rng = np.random.RandomState(0)
x = np.round(rng.randn(6, 4), 1).astype(np.float32)
t = rng.randint(0, 4, size=(6, 1))  # (nnabla reads outside the row for label -1)
xv, tv = nn.Variable.from_numpy_array(x), nn.Variable.from_numpy_array(t)
outs = {"top1": F.top_n_error(xv, tv), "top2": F.top_n_error(xv, tv, n=2),
        "binary": F.binary_error(F.sigmoid(xv), F.sigmoid(xv * -1 + 0.3)),
        "tile": F.tile(xv, (2, 3)), "one_hot": F.one_hot(nn.Variable.from_numpy_array(
            np.maximum(t, 0)), (4,))}
for v in outs.values():
    v.forward()
print(json.dumps({"x": x.tolist(), "t": t.tolist(),
                  **{k: v.d.tolist() for k, v in outs.items()}}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_against_nnabla(tmp_path):
    done = subprocess.run([NNABLA, "-c", NNABLA_METRICS], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path, env=dict(os.environ,
                                                              PYTHONWARNINGS="ignore"))
    assert done.returncode == 0, done.stderr[-3000:]
    row = json.loads(done.stdout.splitlines()[-1])
    xv = nn.Variable.from_numpy_array(np.array(row["x"], np.float32))
    tv = nn.Variable.from_numpy_array(np.array(row["t"]))
    outs = {"top1": F.top_n_error(xv, tv), "top2": F.top_n_error(xv, tv, n=2),
            "binary": F.binary_error(F.sigmoid(xv), F.sigmoid(xv * -1 + 0.3)),
            "tile": F.tile(xv, (2, 3)),
            "one_hot": F.one_hot(nn.Variable.from_numpy_array(np.maximum(row["t"], 0)), (4,))}
    F.sink(*outs.values()).forward()
    for key, var in outs.items():
        np.testing.assert_array_equal(var.d, np.array(row[key], np.float32), err_msg=key)
