"""F.bool_scatter: the rows of an input written where a mask is not 0.

- against a loop over the mask (float64), gradients of the input against central
  differences, through a compiled module and its array API twin on array-api-strict
  arrays (masks of several ranks, rows of several ranks, negative, fractional and NaN
  mask values counting as non-zero);
- with `output`: its values kept where the mask is 0, overwritten in place by every
  forward pass, its gradient dy there (nnabla's);
- a mask with another count of non-zeros refused when the module runs; bad shapes when
  the graph is built; nnabla 1.39's outputs and gradients where it is installed.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from gradcheck import check_array_api, check_function
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.functions as F

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")


def reference(x, mask, output=None):
    """One mask element at a time: the next row of x where it is not 0."""
    out = np.zeros(mask.shape + x.shape[1:]) if output is None else np.array(output, float)
    row = 0
    for position in np.ndindex(*mask.shape):
        if mask[position] != 0:
            out[position] = x[row]
            row += 1
    assert row == x.shape[0]
    return out


def _mask(shape, nonzero, seed):
    """A mask of `shape` with `nonzero` non-zero elements: 1, -2.5, 0.25 and NaN among
    them."""
    rng = np.random.default_rng(seed)
    flat = np.zeros(int(np.prod(shape)))
    chosen = rng.choice(flat.size, nonzero, replace=False)
    flat[chosen] = rng.choice([1.0, -2.5, 0.25, np.nan, 3.0], nonzero)
    return flat.reshape(shape)


CONFIGS = [((5,), (3,)), ((5,), (3, 2)), ((2, 3), (4, 2, 2)), ((2, 2, 3), (5, 3)),
           ((4,), (0, 3))]


@pytest.mark.parametrize("mask_shape,x_shape", CONFIGS, ids=str)
def test_forward_and_gradients(mask_shape, x_shape, tmp_path, rng):
    mask = _mask(mask_shape, x_shape[0], seed=len(x_shape))
    arrays = [np.random.default_rng(0).normal(size=x_shape), mask]
    module = check_function(F.bool_scatter, reference, arrays, tmp_path, rng,
                            need_grad=[True, False])
    check_array_api(F.bool_scatter, arrays, module, tmp_path, need_grad=[True, False])


def test_the_runtime_writes_output_in_place_and_gives_it_the_gradient_where_the_mask_is_0():
    rng = np.random.default_rng(3)
    x_value, mask_value = rng.normal(size=(3, 2)), _mask((2, 3), 3, seed=4)
    start = rng.normal(size=(2, 3, 2))
    x = nn.Variable.from_numpy_array(x_value.astype(np.float32), need_grad=True)
    mask = nn.Variable.from_numpy_array(mask_value.astype(np.float32))
    output = nn.Variable.from_numpy_array(start.astype(np.float32), need_grad=True)
    y = F.bool_scatter(x, mask, output)
    weights = rng.normal(size=y.shape).astype(np.float32)
    loss = F.sum(y * nn.Variable.from_numpy_array(weights))
    loss.forward()
    expected = reference(x_value, mask_value, start)
    np.testing.assert_allclose(y.d, expected, rtol=1e-6)
    np.testing.assert_allclose(output.d, expected, rtol=1e-6)  # (in place, as nnabla's)
    x.grad.zero()
    output.grad.zero()
    loss.backward()
    where = np.reshape(mask_value != 0, (2, 3, 1))
    np.testing.assert_allclose(output.g, np.where(where, 0, weights), rtol=1e-6)
    np.testing.assert_allclose(x.g, weights[mask_value != 0], rtol=1e-6)
    x_value = x_value + 1  # a second pass writes into output again
    x.d = x_value
    loss.forward()
    np.testing.assert_allclose(output.d, reference(x_value, mask_value, expected), rtol=1e-6)


@pytest.mark.parametrize("nonzero", [2, 4])
def test_a_mask_with_another_count_of_non_zeros_is_refused_when_the_module_runs(nonzero):
    x = nn.Variable.from_numpy_array(np.ones((3, 2), np.float32))
    mask = nn.Variable.from_numpy_array(_mask((6,), nonzero, seed=0).astype(np.float32))
    y = F.bool_scatter(x, mask)
    with pytest.raises(ValueError, match=rf"F.bool_scatter: the mask has {nonzero} non-zero "
                                         rf"elements, but the data has 3 rows"):
        y.forward()


@pytest.mark.parametrize("call,error,message", [
    (lambda: F.bool_scatter(nn.Variable(()), nn.Variable((3,))), ValueError,
     r"F.bool_scatter: input of shape \(\), mask of shape \(3,\): input must be \(nnz, D...\)"),
    (lambda: F.bool_scatter(nn.Variable((4, 2)), nn.Variable((3,))), ValueError,
     r"4 rows cannot go to a mask of 3 elements"),
    (lambda: F.bool_scatter(nn.Variable((2, 2)), nn.Variable((3,)), nn.Variable((3, 3))),
     ValueError, r"output must be of shape mask.shape \+ input.shape\[1:\] = \(3, 2\)"),
    (lambda: F.bool_scatter(nn.Variable((2, 2)), nn.Variable((3,)), np.zeros((3, 2))),
     TypeError, r"F.bool_scatter: output must be a Variable, got ndarray"),
    (lambda: F.bool_scatter(nn.Variable((2, 2)), nn.Variable((3,)),
                            F.exp(nn.Variable((3, 2)))),
     ValueError, r"F.bool_scatter: with output the forward pass updates output in place"),
])
def test_bad_input_is_refused_when_the_graph_is_built(call, error, message):
    with pytest.raises(error, match=message):
        call()


NNABLA_SCRIPT = """
import json, sys
import numpy as np
import nnabla as nn
import nnabla.functions as F

for x, mask, output, g in json.loads(sys.argv[1]):
    xv = nn.Variable.from_numpy_array(np.array(x, np.float32), need_grad=True)
    mv = nn.Variable.from_numpy_array(np.array(mask, np.float32))
    ov = None if output is None else nn.Variable.from_numpy_array(
        np.array(output, np.float32), need_grad=True)
    y = F.bool_scatter(xv, mv) if ov is None else F.bool_scatter(xv, mv, ov)
    y.forward()
    xv.grad.zero()
    if ov is not None:
        ov.grad.zero()
    y.backward(np.array(g, np.float32))
    print(json.dumps({"y": y.d.tolist(), "x_g": xv.g.tolist(),
                      "output_g": None if ov is None else ov.g.tolist()}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_against_nnabla(tmp_path):
    rng = np.random.default_rng(5)
    calls = []
    for i, (mask_shape, x_shape) in enumerate(CONFIGS[:4]):
        mask = np.nan_to_num(_mask(mask_shape, x_shape[0], seed=i), nan=7.0)
        x = rng.normal(size=x_shape)
        g = rng.normal(size=mask_shape + x_shape[1:])
        output = rng.normal(size=g.shape) if i % 2 else None
        calls.append((x.tolist(), mask.tolist(), None if output is None else output.tolist(),
                      g.tolist()))
    rows = nnabla_rows(NNABLA, NNABLA_SCRIPT, calls, tmp_path)
    assert len(rows) == len(calls)
    for (x, mask, output, g), row in zip(calls, rows, strict=True):
        xv = nn.Variable.from_numpy_array(np.array(x, np.float32), need_grad=True)
        mv = nn.Variable.from_numpy_array(np.array(mask, np.float32))
        ov = None if output is None else nn.Variable.from_numpy_array(
            np.array(output, np.float32), need_grad=True)
        y = F.bool_scatter(xv, mv) if ov is None else F.bool_scatter(xv, mv, ov)
        y.forward()
        xv.grad.zero()
        if ov is not None:
            ov.grad.zero()
        y.backward(np.array(g, np.float32))
        np.testing.assert_allclose(y.d, row["y"], rtol=1e-6)
        np.testing.assert_allclose(xv.g, row["x_g"], rtol=1e-6)
        if ov is not None:
            np.testing.assert_allclose(ov.g, row["output_g"], rtol=1e-6)
