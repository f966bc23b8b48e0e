"""F.bool_gather, F.nonzero and F.unique: outputs whose shapes follow from the values of
an input, taken when the graph is built (as nnabla's setup takes them).

- against independent references (a loop over the mask, numpy.nonzero, numpy.unique
  reordered for nnabla's unsorted order), through the runtime, a compiled module and its
  array API twin on array-api-strict arrays; gradients of bool_gather's input and of
  unique's values against central differences (float64);
- values that would give another shape are refused when the module runs, naming the
  function and the counts; bad arguments when the graph is built;
- nnabla 1.39's shapes, values, dtypes and gradients where it is installed.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from gradcheck import check_array_api, check_function
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.functions as F
from symcompile.runtime import execution

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")


def _with_values(function, values, **kwargs):
    """`function` called on Variables that hold `values` first (their shapes follow from
    them), as nnabla's setup reads them."""

    def build(*variables):
        for variable, value in zip(variables, values, strict=True):
            variable.d = value
        return function(*variables, **kwargs)

    return build


# --- bool_gather --------------------------------------------------------------------------

def gather_reference(x, mask):
    """One mask element at a time, its row of x where it is not 0; the rows flattened
    after the first axis (nnabla 1.39's shape)."""
    rows = [x[position] for position in np.ndindex(*mask.shape) if mask[position] != 0]
    rest = int(np.prod(x.shape[mask.ndim:]))
    shape = (len(rows), rest) if x.ndim > mask.ndim else (len(rows),)
    return np.reshape(np.array(rows, dtype=float), shape)


GATHER_CONFIGS = [((5,), (5,)), ((5,), (5, 3)), ((2, 3), (2, 3, 4, 2)), ((4,), (4, 2))]
GATHER_MASKS = [np.array([0, 1.5, 0, -1, np.nan]), np.array([1.0, 0, 0, 2, 0]),
                np.array([[0, 1, 1], [0.5, 0, 0]]), np.zeros(4)]


@pytest.mark.parametrize("case", range(len(GATHER_CONFIGS)))
def test_bool_gather_forward_and_gradients(case, tmp_path, rng):
    (_, x_shape), mask = GATHER_CONFIGS[case], GATHER_MASKS[case]
    x = np.random.default_rng(case).normal(size=x_shape)
    build = _with_values(F.bool_gather, [x, mask])
    module = check_function(build, gather_reference, [x, mask], tmp_path, rng,
                            need_grad=[True, False])
    check_array_api(build, [x, mask], module, tmp_path, need_grad=[True, False])


# --- nonzero ------------------------------------------------------------------------------

def nonzero_reference(x):
    """Every element's index, in C order, where it is not 0."""
    found = [index for index in np.ndindex(*x.shape) if x[index] != 0]
    return np.array(found, dtype=float).T.reshape(x.ndim, len(found))


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
@pytest.mark.parametrize("value", [
    np.array([[0, 2, 0], [3, 0, -1]]), np.array([0, np.nan, 2, 0]), np.zeros((2, 2)),
    np.arange(24.0).reshape(2, 3, 4) % 3, np.array(3.0)], ids=lambda v: str(v.shape))
def test_nonzero(backend, value):
    previous = execution.set_backend(backend)
    try:
        x = nn.Variable.from_numpy_array(value.astype(np.float32))
        y = F.nonzero(x)
        y.forward()
    finally:
        execution.set_backend(previous)
    expected = nonzero_reference(value)
    assert y.shape == expected.shape and y.d.dtype == np.uint64
    np.testing.assert_array_equal(y.d, expected)


# --- unique -------------------------------------------------------------------------------

def unique_reference(x, flatten=True, axis=None, sorted=True):  # noqa: A002
    """numpy.unique's values, first indices, inverse and counts (axis=0 of the slices moved
    first), reordered by first occurrence without `sorted` (nnabla's order)."""
    rows = x.reshape(-1) if flatten else np.moveaxis(x, axis, 0)
    values, first, inverse, counts = np.unique(rows, return_index=True, return_inverse=True,
                                               return_counts=True, axis=None if flatten else 0)
    inverse = inverse.reshape(-1)
    if not sorted:
        order = np.argsort(first, kind="stable")
        rank = np.argsort(order)
        values, first, counts, inverse = values[order], first[order], counts[order], \
            rank[inverse]
    if not flatten:
        values = np.moveaxis(values, 0, axis)
    return values, first, inverse, counts


UNIQUE_VALUE = np.array([[3, 1, 3, 2], [0, 5, 0, 2], [3, 1, 3, 2]], dtype=float)
UNIQUE_ARGS = [dict(flatten=True), dict(flatten=True, sorted=False), dict(flatten=False, axis=1),
               dict(flatten=False, axis=0), dict(flatten=False, axis=-1, sorted=False)]


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
@pytest.mark.parametrize("kwargs", UNIQUE_ARGS, ids=str)
def test_unique_outputs(backend, kwargs):
    x = nn.Variable.from_numpy_array(UNIQUE_VALUE.astype(np.float32))
    previous = execution.set_backend(backend)
    try:
        outputs = F.unique(x, with_index=True, with_inverse=True, with_counts=True, **kwargs)
        for output in outputs:
            output.forward()
    finally:
        execution.set_backend(previous)
    axis = kwargs.get("axis")
    expected = unique_reference(UNIQUE_VALUE, kwargs["flatten"],
                                None if axis is None else axis % 2, kwargs.get("sorted", True))
    for output, want, dtype in zip(outputs, expected, ("float32", "int32", "int32", "int32"),
                                   strict=True):
        assert output.d.dtype == dtype
        np.testing.assert_array_equal(output.d, want)


@pytest.mark.parametrize("kwargs", [dict(flatten=True), dict(flatten=False, axis=1),
                                    dict(flatten=False, axis=0, sorted=False)], ids=str)
def test_unique_values_gradient(kwargs, tmp_path, rng):
    """On distinct values, unique is a permutation (a gather): central differences. (A
    perturbation of one of repeated values would change the count.)"""
    x = np.random.default_rng(1).normal(size=(3, 4))
    axis = kwargs.get("axis")

    def reference(value):
        return unique_reference(value, kwargs["flatten"], axis, kwargs.get("sorted", True))[0]

    build = _with_values(F.unique, [x], **kwargs)
    module = check_function(build, reference, [x], tmp_path, rng)
    check_array_api(build, [x], module, tmp_path)


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
def test_unique_gradient_goes_to_first_occurrences(backend):
    """With repeats, dy of each unique slice goes to its first occurrence only."""
    value = np.array([[1.0, 2.0, 1.0, 0.0], [4.0, 5.0, 4.0, 0.0]], np.float32)
    x = nn.Variable.from_numpy_array(value, need_grad=True)
    y = F.unique(x, flatten=False, axis=1, sorted=False)  # slices 0, 1, 3 (2 repeats 0)
    weights = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32)
    loss = F.sum(y * nn.Variable.from_numpy_array(weights))
    previous = execution.set_backend(backend)
    try:
        loss.forward()
        x.grad.zero()
        loss.backward()
    finally:
        execution.set_backend(previous)
    np.testing.assert_array_equal(y.d, value[:, [0, 1, 3]])
    np.testing.assert_array_equal(x.g, [[1.0, 2.0, 0.0, 3.0], [4.0, 5.0, 0.0, 6.0]])


def test_unique_ties_of_zero_and_nan():
    """-0 equals 0 (the first occurrence stays); each NaN is its own value, sorted last."""
    value = np.array([1.0, -0.0, 0.0, np.nan, np.nan, 2.0], np.float32)
    y, index, counts = F.unique(nn.Variable.from_numpy_array(value), with_index=True,
                                with_counts=True)
    for output in (y, index, counts):
        output.forward()
    np.testing.assert_array_equal(y.d, [0.0, 1.0, 2.0, np.nan, np.nan])
    assert np.signbit(y.d[0])
    np.testing.assert_array_equal(index.d, [1, 0, 5, 3, 4])
    np.testing.assert_array_equal(counts.d, [2, 1, 1, 1, 1])


def test_under_auto_forward_the_outputs_are_computed_as_called():
    with nn.auto_forward():
        x = nn.Variable.from_numpy_array(np.array([2.0, 0.0, 2.0, 1.0], np.float32))
        y = F.unique(F.mul_scalar(x, 3.0))
        mask = F.greater_scalar(x, 0.5)
        rows = F.bool_gather(x, mask)
    np.testing.assert_array_equal(y.d, [0.0, 3.0, 6.0])
    np.testing.assert_array_equal(rows.d, [2.0, 2.0, 1.0])


# --- values that would change the shape; bad arguments -----------------------------------

@pytest.mark.parametrize("backend", ["numpy", "array_api"])
@pytest.mark.parametrize("function,message", [
    ("bool_gather", r"F.bool_gather: the mask's number of non-zero elements is 3 now, but "
                    r"was 2 when the graph was built"),
    ("nonzero", r"F.nonzero: the number of non-zero elements is 3 now, but was 2"),
    ("unique", r"F.unique: the number of unique values is 3 now, but was 2"),
])
def test_values_that_change_the_shape_are_refused_when_the_module_runs(backend, function,
                                                                        message):
    x = nn.Variable.from_numpy_array(np.array([1.0, 0.0, 1.0], np.float32))
    y = {"bool_gather": lambda: F.bool_gather(x, x), "nonzero": lambda: F.nonzero(x),
         "unique": lambda: F.unique(x)}[function]()
    previous = execution.set_backend(backend)
    try:
        y.forward()
        x.d = np.array([1.0, 2.0, 3.0], np.float32)
        with pytest.raises(ValueError, match=message + r".*Build the graph again"):
            y.forward()
    finally:
        execution.set_backend(previous)


def test_the_generated_module_refuses_them_too(tmp_path):
    x = nn.Variable.from_numpy_array(np.array([[1.0, 0.0], [1.0, 1.0]], np.float32))
    x.name = "x"
    loss = F.sum(F.unique(x, flatten=False, axis=0)) + F.sum(F.nonzero(x))
    module = nn.compile(loss, name="value_shaped", output_dir=tmp_path).module
    assert module.forward(x.d.copy()) == pytest.approx(3.0 + 0 + 1 + 1 + 0 + 0 + 1)
    with pytest.raises(ValueError, match=r"F.unique: the number of unique values is 1 now"):
        module.forward(np.ones((2, 2), np.float32))


@pytest.mark.parametrize("call,message", [
    (lambda: F.bool_gather(nn.Variable((3, 2)), nn.Variable((2,))),
     r"F.bool_gather: input of shape \(3, 2\), mask of shape \(2,\): the mask must be at "
     r"least 1-D and of the shape of input's leading axes"),
    (lambda: F.bool_gather(nn.Variable((3,)), nn.Variable((3, 1))), r"input.shape\[:mask.ndim\]"),
    (lambda: F.unique(nn.Variable((2, 3)), flatten=False),
     r"F.unique: without flatten, give the axis along which slices are compared"),
    (lambda: F.unique(nn.Variable((0, 3))), r"F.unique: x of shape \(0, 3\) has no values"),
    (lambda: F.unique(nn.Variable((2, 3)), flatten=False, axis=2), r"F.unique"),
])
def test_bad_arguments_are_refused_when_the_graph_is_built(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- nnabla 1.39 ----------------------------------------------------------------------------

NNABLA_SCRIPT = """
import json, sys
import numpy as np
import nnabla as nn
import nnabla.functions as F

nn.set_auto_forward(True)
for kind, value, extra, kwargs in json.loads(sys.argv[1]):
    x = nn.Variable.from_numpy_array(np.array(value, np.float32), need_grad=True)
    if kind == "bool_gather":
        mask = nn.Variable.from_numpy_array(np.array(extra, np.float32))
        outputs = [F.bool_gather(x, mask)]
        g = np.arange(outputs[0].size, dtype=np.float32).reshape(outputs[0].shape)
        x.grad.zero()
        outputs[0].backward(g)
        grad = x.g.tolist()
    elif kind == "nonzero":
        outputs, grad = [F.nonzero(x)], None
    else:
        outputs, grad = list(F.unique(x, **kwargs)), None
    print(json.dumps({"outputs": [o.d.tolist() for o in outputs],
                      "shapes": [list(o.shape) for o in outputs],
                      "dtypes": [str(o.d.dtype) for o in outputs], "grad": grad,
                      "info": [[o.parent.info.type_name, o.parent.info.args]
                               for o in outputs]}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_against_nnabla(tmp_path):
    rng = np.random.default_rng(4)
    calls = []
    # (0/1 masks, as nnabla documents them: its count of rows is the mask's sum)
    for (_, x_shape), mask in zip(GATHER_CONFIGS[:3], GATHER_MASKS, strict=False):
        calls.append(("bool_gather", rng.normal(size=x_shape).tolist(),
                      (mask != 0).astype(float).tolist(), {}))
    for value in (np.array([[0, 2, 0], [3, 0, -1]]), np.arange(24.0).reshape(2, 3, 4) % 3):
        calls.append(("nonzero", value.tolist(), None, {}))
    flags = dict(with_index=True, with_inverse=True, with_counts=True)
    for kwargs in UNIQUE_ARGS:
        kwargs = {"axis": 0, **kwargs}  # (nnabla 1.39 refuses its own default axis=None)
        calls.append(("unique", UNIQUE_VALUE.tolist(), None, {**kwargs, **flags}))
    calls.append(("unique", rng.integers(0, 4, size=(3, 5)).tolist(), None,
                  {"flatten": False, "axis": 1, "sorted": False, "with_counts": True}))
    rows = nnabla_rows(NNABLA, NNABLA_SCRIPT, calls, tmp_path)
    assert len(rows) == len(calls)
    for (kind, value, extra, kwargs), row in zip(calls, rows, strict=True):
        x = nn.Variable.from_numpy_array(np.array(value, np.float32), need_grad=True)
        if kind == "bool_gather":
            outputs = [F.bool_gather(x, nn.Variable.from_numpy_array(np.array(extra,
                                                                              np.float32)))]
        elif kind == "nonzero":
            outputs = [F.nonzero(x)]
        else:
            outputs = list(F.unique(x, **kwargs))
        for output, want, shape, dtype, info in zip(outputs, row["outputs"], row["shapes"],
                                                    row["dtypes"], row["info"], strict=True):
            assert [output.parent.info.type_name, output.parent.info.args] == info, kind
            output.forward()
            assert list(output.shape) == shape and str(output.d.dtype) == dtype, kind
            np.testing.assert_allclose(output.d, np.array(want, dtype=float).reshape(shape),
                                       rtol=1e-6)
        if row["grad"] is not None:
            x.grad.zero()
            g = np.arange(outputs[0].size, dtype=np.float32).reshape(outputs[0].shape)
            outputs[0].backward(g)
            np.testing.assert_allclose(x.g, row["grad"], rtol=1e-6)
