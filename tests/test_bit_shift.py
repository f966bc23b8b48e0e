"""F.bit_shift: unsigned integers shifted left (wrapping around their width) or right.

- against NumPy's integer left_shift / right_shift on uint8 and uint16, with nnabla's
  broadcasting and float shifts truncated, through the runtime on both backends and a
  generated module; no gradient;
- what nnabla refuses (inputs that are not unsigned integers) and what floating-point
  modules cannot hold exactly (uint32, uint64) are refused when the graph is built;
- nnabla 1.39's values, dtype and info where it is installed.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.functions as F
from symcompile.runtime import execution

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")


def reference(x, shift, left):
    """NumPy's shifts on the integers, wrapped to x's width."""
    s = np.trunc(shift).astype(np.uint64)
    wide = x.astype(np.uint64)
    shifted = np.left_shift(wide, s) if left else np.right_shift(wide, s)
    return (shifted & np.uint64(np.iinfo(x.dtype).max)).astype(x.dtype)


CASES = [
    (np.array([[200, 3, 255]], np.uint8), np.array([[1], [2]], np.uint8)),
    (np.array([200, 3, 65535, 1], np.uint16), np.array([1, 15, 16, 3.7], np.float32)),
    (np.arange(24, dtype=np.uint8).reshape(2, 3, 4) * 10, np.array([[[0, 1, 7, 9]]], np.uint8)),
]


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_against_integer_shifts(backend, direction, case):
    x_value, shift_value = CASES[case]
    x = nn.Variable.from_numpy_array(x_value, need_grad=True)
    shift = nn.Variable.from_numpy_array(shift_value)
    previous = execution.set_backend(backend)
    try:
        y = F.bit_shift(x, shift, direction)
        loss = F.sum(y * 1.0)
        loss.forward()
        x.grad.zero()
        loss.backward()
    finally:
        execution.set_backend(previous)
    expected = reference(x_value, shift_value, direction == "LEFT")
    assert y.d.dtype == x_value.dtype
    np.testing.assert_array_equal(y.d, np.broadcast_to(expected, y.shape))
    np.testing.assert_array_equal(x.g, 0)  # (no gradient, as nnabla's)


def test_the_generated_module(tmp_path):
    x, shift = nn.Variable.from_numpy_array(CASES[0][0]), nn.Variable.from_numpy_array(
        CASES[0][1])
    x.name, shift.name = "x", "shift"
    module = nn.compile(F.bit_shift(x, shift), name="bits", output_dir=tmp_path).module
    got = module.forward(CASES[0][0].astype(np.float32), CASES[0][1].astype(np.float32))
    np.testing.assert_array_equal(got, reference(*CASES[0], True))


@pytest.mark.parametrize("call,error,message", [
    (lambda: F.bit_shift(nn.Variable((3,)), nn.Variable((3,))), TypeError,
     r"F.bit_shift: x must hold unsigned integers \(as nnabla's\), got float32"),
    (lambda: F.bit_shift(nn.Variable.from_numpy_array(np.ones(3, np.int32)), nn.Variable((3,))),
     TypeError, r"got int32"),
    (lambda: F.bit_shift(nn.Variable.from_numpy_array(np.ones(3, np.uint32)), nn.Variable((3,))),
     ValueError, r"x of dtype uint32: symcompile's modules compute in floating point"),
    (lambda: F.bit_shift(nn.Variable.from_numpy_array(np.ones(3, np.uint8)), nn.Variable((3,)),
                         "UP"), ValueError, r"direction must be 'LEFT' or 'RIGHT', got 'UP'"),
    (lambda: F.bit_shift(nn.Variable.from_numpy_array(np.ones(3, np.uint8)), nn.Variable((2,))),
     ValueError, r"bit_shift"),
])
def test_refused_when_the_graph_is_built(call, error, message):
    with pytest.raises(error, match=message):
        call()


NNABLA_SCRIPT = """
import json, sys
import numpy as np
import nnabla as nn
import nnabla.functions as F

nn.set_auto_forward(True)
for x, x_dtype, shift, shift_dtype, direction in json.loads(sys.argv[1]):
    y = F.bit_shift(nn.Variable.from_numpy_array(np.array(x, x_dtype)),
                    nn.Variable.from_numpy_array(np.array(shift, shift_dtype)), direction)
    print(json.dumps({"y": y.d.tolist(), "dtype": str(y.d.dtype),
                      "info": y.parent.info.args}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_against_nnabla(tmp_path):
    calls = [(x.tolist(), x.dtype.name, s.tolist(), s.dtype.name, direction)
             for x, s in CASES for direction in ("LEFT", "RIGHT")]
    rows = nnabla_rows(NNABLA, NNABLA_SCRIPT, calls, tmp_path)
    assert len(rows) == len(calls)
    for (x, x_dtype, s, s_dtype, direction), row in zip(calls, rows, strict=True):
        y = F.bit_shift(nn.Variable.from_numpy_array(np.array(x, x_dtype)),
                        nn.Variable.from_numpy_array(np.array(s, s_dtype)), direction)
        y.forward()
        assert str(y.d.dtype) == row["dtype"] and y.parent.info.args == row["info"]
        np.testing.assert_array_equal(y.d, row["y"])
