"""F.searchsorted: insertion indices of values into the rows of a sorted sequence.

- against numpy.searchsorted row by row (both sides, ties, values outside the range,
  1-D to 3-D), through the runtime and through compiled modules of both backends;
- no gradient: a loss through it gives its inputs none (nnabla has no backward);
- nnabla 1.39's indices where it is installed; bad input refused when the graph is built.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.functions as F

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")


def reference(s, v, right=False):
    side = "right" if right else "left"
    rows, values = s.reshape(-1, s.shape[-1]), v.reshape(-1, v.shape[-1])
    return np.array([np.searchsorted(a, b, side=side) for a, b in zip(rows, values,
                                                                     strict=True)],
                    dtype=float).reshape(v.shape)


def cases():
    """(sorted sequence, values), with ties in the sequence and values equal to its
    entries, below its first and above its last."""
    rng = np.random.default_rng(0)
    out = [(np.array([1.0, 2.0, 2.0, 3.0]), np.array([2.0, 2.5, 0.0, 9.0, 1.0, 3.0]))]
    for s_shape, m in (((2, 5), 4), ((2, 3, 6), 3), ((1, 7), 7)):
        s = np.sort(np.round(rng.normal(size=s_shape), 1), axis=-1)
        v = np.round(rng.normal(size=s_shape[:-1] + (m,)), 1)
        v[..., 0] = s[..., 1]  # a value equal to an entry
        out.append((s, v))
    return out


CASES = cases()


@pytest.mark.parametrize("right", [None, False, True])
@pytest.mark.parametrize("index", range(len(CASES)))
def test_runtime_indices_are_numpy_s(index, right):
    s, v = CASES[index]
    y = F.searchsorted(nn.Variable.from_numpy_array(s), nn.Variable.from_numpy_array(v),
                       right=right)
    y.forward()
    assert y.d.dtype == np.float32 and y.shape == v.shape
    np.testing.assert_array_equal(y.d, reference(s, v, bool(right)))


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
@pytest.mark.parametrize("right", [False, True])
def test_compiled_modules_give_the_indices_and_no_gradient(backend, right, tmp_path):
    """A module computing sum(w * searchsorted(s, v)): the indices, and gradients of 0 for
    s and v (float64 module; the array API one on array-api-strict arrays)."""
    s, v = CASES[2]
    sv, vv, w = nn.Variable(s.shape, need_grad=True), nn.Variable(v.shape, need_grad=True), \
        nn.Variable(v.shape)
    sv.name, vv.name, w.name = "s", "v", "w"
    weights = np.random.default_rng(1).normal(size=v.shape)
    y = F.searchsorted(sv, vv, right=right)
    module = nn.compile(F.sum(y * w), name="searched", output_dir=tmp_path / backend,
                        dtype="float64", solver=None, backend=backend).module
    convert = np.asarray
    if backend == "array_api":
        import array_api_strict as xp

        convert = xp.asarray
    loss, gs, gv = module.gradient(convert(s), convert(v), convert(weights))
    np.testing.assert_allclose(float(loss), np.sum(reference(s, v, right) * weights),
                               rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(gs), np.zeros(s.shape))
    np.testing.assert_array_equal(np.asarray(gv), np.zeros(v.shape))


@pytest.mark.parametrize("call,error,message", [
    (lambda: F.searchsorted(nn.Variable((4,)), nn.Variable((2, 3))), ValueError,
     r"F.searchsorted: sorted_sequence of shape \(4,\) and values of shape \(2, 3\) must "
     r"have the same number of axes"),
    (lambda: F.searchsorted(nn.Variable((2, 4)), nn.Variable((3, 3))), ValueError,
     r"the same lengths but along the last"),
    (lambda: F.searchsorted(nn.Variable(()), nn.Variable(())), ValueError,
     r"sorted_sequence of shape \(\)"),
    (lambda: F.searchsorted(nn.Variable((4,)), nn.Variable((3,)), right="yes"), TypeError,
     r"F.searchsorted: right must be True, False or None, got 'yes'"),
    (lambda: F.searchsorted(np.zeros(4), nn.Variable((3,))), TypeError,
     r"F.searchsorted: input 0 must be a Variable"),
])
def test_bad_input_is_refused_when_the_graph_is_built(call, error, message):
    with pytest.raises(error, match=message):
        call()


NNABLA_SCRIPT = """
import json, sys
import numpy as np
import nnabla as nn
import nnabla.functions as F

for s, v, right in json.loads(sys.argv[1]):
    y = F.searchsorted(nn.Variable.from_numpy_array(np.array(s, np.float32)),
                       nn.Variable.from_numpy_array(np.array(v, np.float32)), right=right)
    y.forward()
    print(json.dumps({"y": y.d.tolist(), "type": y.parent.info.type_name,
                      "args": y.parent.info.args}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_against_nnabla(tmp_path):
    calls = [(s.tolist(), v.tolist(), right) for s, v in CASES for right in (None, True)]
    rows = nnabla_rows(NNABLA, NNABLA_SCRIPT, calls, tmp_path)
    assert len(rows) == len(calls)
    for (s, v, right), row in zip(calls, rows, strict=True):
        y = F.searchsorted(nn.Variable.from_numpy_array(np.array(s, np.float32)),
                           nn.Variable.from_numpy_array(np.array(v, np.float32)), right=right)
        y.forward()
        np.testing.assert_array_equal(y.d, row["y"])
        assert (y.parent.info.type_name, y.parent.info.args) == (row["type"], row["args"])
