"""F.constant, F.arange and F.linspace: arrays their arguments fix.

- values against nnabla's loops written out here in float32 (arange adds step to the
  previous value, so its rounding and its count are those of float32 sums; linspace
  computes start + i*step in float64), on both backends;
- no gradient flows into them, and they fold into the expressions that use them;
- nnabla 1.39's numbers where it is installed; bad arguments refused when the graph is
  built.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.functions as F
from symcompile.runtime import execution


def nnabla_arange(start, stop, step):
    """nnabla's arange.cpp: ``for (float v = start; v < stop; v += step)``."""
    values, value = [], np.float32(start)
    while (value < np.float32(stop)) if step > 0 else (value > np.float32(stop)):
        values.append(value)
        value = np.float32(value + np.float32(step))
    return np.array(values, dtype=np.float32)


def nnabla_linspace(start, stop, num):
    """nnabla's linspace.cpp: step = double(stop - start) / (num - 1) (the difference in
    float), y[i] = start + step * i in double, stored as float."""
    step = float(np.float32(stop) - np.float32(start)) / (num - 1) if num > 1 else 0.0
    return np.array([float(np.float32(start)) + step * i for i in range(num)], np.float32)


ARANGES = [(0, 5, 2), (5, 0, -1.5), (0, 1, 0.3), (0.1, 2.3, 0.7), (-1, 1, 0.1), (1, 1, 1),
           (3, 1, 1), (0, 1, 1 / 3)]
LINSPACES = [(0, 1, 1), (0, 1, 5), (1, 0, 4), (-0.3, 0.7, 7), (2, 2, 3), (0, 1, 0)]


@pytest.fixture(params=["numpy", "array_api"])
def backend(request):
    previous = execution.set_backend(request.param)
    yield request.param
    execution.set_backend(previous)


def _computed(y, backend):
    """y.d; on the array API backend also through a module with an input (whose library
    it computes with)."""
    y.forward()
    if backend == "array_api":
        zero = nn.Variable.from_numpy_array(np.zeros(y.shape, np.float32))
        total = y + zero
        total.forward()
        np.testing.assert_array_equal(total.d, y.d)
    return y.d


@pytest.mark.parametrize("start,stop,step", ARANGES)
def test_arange_is_nnablas_float32_loop(start, stop, step, backend):
    y = F.arange(start, stop, step)
    expected = nnabla_arange(start, stop, step)
    assert y.shape == expected.shape
    got = _computed(y, backend)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("start,stop,num", LINSPACES)
def test_linspace_is_nnablas(start, stop, num, backend):
    y = F.linspace(start, stop, num)
    assert y.shape == (num,)
    got = _computed(y, backend)
    np.testing.assert_array_equal(got, nnabla_linspace(start, stop, num))


def test_constant_fills_its_shape_and_defaults_to_a_zero_scalar(backend):
    y = F.constant(0.1, (2, 3))
    np.testing.assert_array_equal(_computed(y, backend), np.full((2, 3), 0.1, np.float32))
    default = F.constant()
    assert default.shape == ()
    assert _computed(default, backend) == 0
    assert not y.need_grad and y.parent.name == "Constant"


def test_no_gradient_flows_into_constants_and_they_fold(tmp_path):
    """d/dx of sum(x*constant(2) + reshape(arange(0, 6), (2, 3))*x) is 2 + arange; the
    constant is a number in the generated code, not an array."""
    x = nn.Variable.from_numpy_array(np.ones((2, 3), np.float32), need_grad=True)
    terms = x * F.constant(2.0, (2, 3)) + F.reshape(F.arange(0, 6), (2, 3)) * x
    loss = F.sum(terms + F.reshape(F.linspace(0, 1, 3), (1, 3)))
    loss.forward()
    x.grad.zero()
    loss.backward()
    assert loss.d == pytest.approx(2 * 6 + 15 + 3)
    np.testing.assert_array_equal(x.g, 2 + np.arange(6.0).reshape(2, 3))
    source = nn.compile(loss, name="folded", output_dir=tmp_path).source
    assert "numpy.full((2, 3)" not in source and "arange_accumulated(0.0, 1.0, 6" in source


@pytest.mark.parametrize("call,error,message", [
    (lambda: F.arange(0, 5, 0), ValueError, r"F.arange: step=0.* must not be zero"),
    (lambda: F.arange(1e9, 1e9 + 100), ValueError,
     r"F.arange: step=1.0 is too small to move 1000000000.0 towards .* float32"),
    (lambda: F.arange(0, 1, 1e-9), ValueError, r"about 1e\+09 values"),
    (lambda: F.linspace(0, 1, -1), ValueError, r"F.linspace: num=-1 must be a non-negative"),
    (lambda: F.linspace(0, 1, 2.0), ValueError, r"F.linspace: num=2.0 must be"),
    (lambda: F.constant(1, (2, -1)), ValueError, r"F.constant: shape \(2, -1\) has a neg"),
    (lambda: F.constant("a"), TypeError, r"F.constant"),
])
def test_bad_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_array_api_module_of_constants_alone_computes_with_numpy():
    """Without an argument to take the library from, the array API module takes NumPy's
    (the runtime's arrays are NumPy's)."""
    previous = execution.set_backend("array_api")
    try:
        y = F.arange(0, 3) * F.constant(2.0, (3,))
        y.forward()
    finally:
        execution.set_backend(previous)
    np.testing.assert_array_equal(y.d, [0, 2, 4])


NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")

_NNABLA_SCRIPT = """
import json, sys
import nnabla.functions as F
for name, args in json.loads(sys.argv[1]):
    y = getattr(F, name)(*args)
    y.forward()
    print(json.dumps({"values": y.d.tolist()}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set")
def test_nnablas_numbers(tmp_path):
    calls = [["arange", list(a)] for a in ARANGES] + [["linspace", list(a)] for a in LINSPACES]
    calls += [["constant", [0.1, [2, 2]]], ["constant", []]]
    rows = nnabla_rows(NNABLA, _NNABLA_SCRIPT, calls, tmp_path)
    for (name, args), row in zip(calls, rows, strict=True):
        y = getattr(F, name)(*args)
        y.forward()
        np.testing.assert_array_equal(y.d, np.array(row["values"], np.float32),
                                      err_msg=f"F.{name}{tuple(args)}")
