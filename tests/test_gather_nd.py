"""F.gather_nd and F.scatter_nd: N-d indices (M, *Y), column y a position in the first M
axes of an array, negative indices counting from the end (nnabla's).

- forward against an independent NumPy reference (float64), gradients against central
  finite differences (gradcheck.check_function), on the NumPy backend; the array API
  backend's module on array-api-strict arrays gives the same forward and gradients;
  full and partial indexing (M < rank), repeated positions (summed by the gather's
  gradient and by scatter_nd's add, the last one winning without add);
- through the runtime (forward(), backward()) on both backends, and scatter_nd's `out`,
  which every forward pass overwrites in place, as nnabla's;
- indices outside [-X_m, X_m) refused when the module is called, naming the function,
  the row and its range; bad shapes and arguments refused when the graph is built;
- nnabla 1.39's numbers where it is installed, and its backward where it is not the
  derivative (scatter_nd's at repeated positions).
"""

from __future__ import annotations

import os

import array_api_strict as xps
import numpy as np
import pytest
from gradcheck import check_array_api, check_function
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.functions as F
from symcompile.runtime import execution


def np_gather_nd(data, indices):
    """nnabla's definition: data[indices[0], ..., indices[M-1], ...] (NumPy's indexing
    counts negative indices from the end too)."""
    return data[tuple(np.trunc(indices).astype(int))]


def np_scatter_nd(data, indices, shape, add=False, out=None):
    """nnabla's CPU loop: column by column, in order, written (or added) into zeros of
    `shape` (or a copy of `out`)."""
    result = np.zeros(shape) if out is None else np.array(out, dtype=np.float64)
    columns = np.trunc(indices).astype(int).reshape(indices.shape[0], -1)
    values = data.reshape((columns.shape[1],) + tuple(shape[indices.shape[0]:]))
    for k in range(columns.shape[1]):
        position = tuple(columns[:, k])
        result[position] = result[position] + values[k] if add else values[k]
    return result


def normal(*shapes):
    return lambda: [np.random.default_rng(i).normal(size=s) for i, s in enumerate(shapes)]


def with_indices(indices, *shapes, at=1):
    """Normal arrays of `shapes` with the float array `indices` inserted at position `at`."""
    def draw():
        arrays = normal(*shapes)()
        arrays.insert(at, np.array(indices, dtype=np.float64))
        return arrays
    return draw


REPEATED = [[1, 1, -1, 0]]  # positions 1, 1, 3, 0 of an axis of 4
# (name, build from Variables, the same with NumPy, the inputs, which inputs are indices)
CASES = [
    ("gather_nd every axis, negative indices", F.gather_nd, np_gather_nd,
     with_indices([[0, -1, 2, 0, -3], [1, 3, -4, 1, 0]], (3, 4)), (1,)),
    ("gather_nd partial (M=1 of 3), 2-D columns",
     F.gather_nd, np_gather_nd, with_indices([[[2, 0, -1], [1, 1, 0]]], (3, 4, 2)), (1,)),
    ("gather_nd partial (M=2 of 3), repeated positions",
     lambda x, i: F.gather_nd(x, i) * 2, lambda a, i: 2 * np_gather_nd(a, i),
     with_indices([[0, 1, 1, 0], [2, -1, 3, 2]], (2, 4, 3)), (1,)),
    ("scatter_nd into shape, M=2 of 3",
     lambda d, i: F.scatter_nd(d, i, shape=(4, 4, 4)),
     lambda d, i: np_scatter_nd(d, i, (4, 4, 4)), with_indices([[0, 1], [2, 3]], (2, 4)), (1,)),
    ("scatter_nd add, repeated positions",
     lambda d, i: F.scatter_nd(d, i, shape=(4, 2), add=True),
     lambda d, i: np_scatter_nd(d, i, (4, 2), add=True), with_indices(REPEATED, (4, 2)), (1,)),
    ("scatter_nd assign, repeated positions: the last wins",
     lambda d, i: F.scatter_nd(d, i, shape=[4, 2]),
     lambda d, i: np_scatter_nd(d, i, (4, 2)), with_indices(REPEATED, (4, 2)), (1,)),
    ("gather_nd of scatter_nd, every axis, 2-D columns",
     lambda d, i: F.gather_nd(F.scatter_nd(d, i, shape=(3, 3)) + 1, i),
     lambda d, i: np_gather_nd(np_scatter_nd(d, i, (3, 3)) + 1, i),
     with_indices([[[0, 2], [2, 0]], [[1, 1], [-1, 1]]], (2, 2)), (1,)),
    ("grad of gather_nd, differentiated again",
     lambda x, i: nn.grad([F.sum(F.gather_nd(x, i) ** 3)], [x])[0],
     lambda a, i: _cubes_gradient(a, i), with_indices([[0, 2, 0], [-1, 1, 3]], (3, 4)), (1,)),
]
IDS = [c[0] for c in CASES]


def _cubes_gradient(a, indices):
    """d/da of sum(gather_nd(a, indices)**3): 3 a**2 once per column reading it."""
    counts = np.zeros(a.shape)
    np.add.at(counts, tuple(np.trunc(indices).astype(int)), 1)
    return 3 * a ** 2 * counts


@pytest.mark.parametrize("name,build,reference,draw,indices", CASES, ids=IDS)
def test_forward_and_gradients(name, build, reference, draw, indices, tmp_path, rng):
    arrays = draw()
    need_grad = [i not in indices for i in range(len(arrays))]
    module = check_function(build, reference, arrays, tmp_path, rng, need_grad=need_grad)
    nn.clear_parameters()
    check_array_api(build, arrays, module, tmp_path, need_grad)


def test_scatter_nd_gradient_without_add_goes_to_the_last_writer():
    """The derivative: of repeated positions only the one that wins gets dy (nnabla 1.39
    gives dy to each, see test_nnabla_backward_where_it_is_not_the_derivative)."""
    data = nn.Variable.from_numpy_array(np.array([1.0, 2, 3, 4]), need_grad=True)
    y = F.scatter_nd(data, [[1, 1, -1, 0]], shape=(4,))
    loss = F.sum(y * nn.Variable.from_numpy_array(np.array([10.0, 20, 30, 40])))
    loss.forward()
    data.grad.zero()
    loss.backward()
    np.testing.assert_array_equal(y.d, [4, 2, 0, 3])
    np.testing.assert_array_equal(data.g, [0, 20, 40, 10])


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
def test_runtime_forward_and_backward(backend):
    """loss.forward() and loss.backward() (the runtime) on either backend: the NumPy
    reference's output and gradient, indices given as a list (converted, as nnabla's)."""
    data = np.random.default_rng(3).normal(size=(3, 4, 2))
    indices = np.array([[2, -1, 0, 2], [1, 3, -4, 1]])
    previous = execution.set_backend(backend)
    try:
        x = nn.Variable.from_numpy_array(data, need_grad=True)
        y = F.gather_nd(x, indices.tolist())
        z = F.scatter_nd(y, indices, shape=(3, 4, 2), add=True)
        loss = F.sum(z * z)
        loss.forward()
        x.grad.zero()
        loss.backward()
    finally:
        execution.set_backend(previous)
    expected = np_scatter_nd(np_gather_nd(data, indices), indices, (3, 4, 2), add=True)
    np.testing.assert_allclose(z.d, expected, rtol=1e-6)
    counts = np.zeros(data.shape)
    np.add.at(counts, tuple(indices), 1)  # z = counts * x where read, dz/dx = counts**2 x
    np.testing.assert_allclose(x.g, 2 * counts ** 2 * data, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("add", [False, True])
def test_scatter_nd_out_is_updated_in_place_by_every_forward(add):
    """With `out` (a leaf), y is out with data written (or added) at the indices, and
    every forward pass stores y in out, as nnabla's (shared arrays): with add a second
    pass adds again. out gets no gradient (nnabla's backward gives it none)."""
    data = nn.Variable.from_numpy_array(np.array([1.0, 2, 3]), need_grad=True)
    out = nn.Variable.from_numpy_array(np.array([5.0, 6, 7, 8]), need_grad=True)
    y = F.scatter_nd(data, [[1, 1, -1]], out=out, add=add)
    loss = F.sum(y * nn.Variable.from_numpy_array(np.array([10.0, 20, 30, 40])))
    loss.forward()
    first = np_scatter_nd(data.d, np.array([[1, 1, -1]]), (4,), add, out=[5.0, 6, 7, 8])
    np.testing.assert_array_equal(y.d, first)
    np.testing.assert_array_equal(out.d, first)
    data.grad.zero()
    out.grad.zero()
    loss.backward()
    np.testing.assert_array_equal(data.g, [20, 20, 40] if add else [0, 20, 40])
    np.testing.assert_array_equal(out.g, [0, 0, 0, 0])
    np.testing.assert_array_equal(out.d, first)  # backward runs no forward again
    loss.forward()
    again = np_scatter_nd(data.d, np.array([[1, 1, -1]]), (4,), add, out=first)
    np.testing.assert_array_equal(y.d, again)
    np.testing.assert_array_equal(out.d, again)


# --- indices out of range, refused when the module is called ------------------------------

@pytest.mark.parametrize("backend", ["numpy", "array_api"])
@pytest.mark.parametrize("bad,message", [
    ([[3, 0], [0, 0]], r"holds 3\.0 at index \(0, 0\); row 0 indexes axis 0 \(for F\.gather_nd "
                       r"and F\.scatter_nd\): it must hold integers from -3 to 2$"),
    ([[0, 0], [0, -5]], r"holds -5\.0 at index \(1, 1\); row 1 .* from -4 to 3$"),
    ([[0, 0], [4.0, 0]], r"holds 4\.0 at index \(1, 0\); row 1 .* from -4 to 3$"),
    ([[-3.9, np.nan], [0, 0]], r"holds nan at index \(0, 1\); row 0 .* from -3 to 2$"),
])
def test_out_of_range_indices_are_refused_when_the_module_is_called(backend, bad, message,
                                                                     tmp_path):
    """Each row has its own range, [-X_m, X_m) for axis m of X (3, 4); -3.9 is -3, as
    nnabla truncates it. An input read by gather_nd and scatter_nd is checked against
    the ranges both allow (here the same)."""
    x, i = nn.Variable((3, 4), need_grad=True), nn.Variable((2, 2))
    x.name, i.name = "x", "i"
    loss = F.sum(F.gather_nd(x, i)) + F.sum(F.scatter_nd(x[0, :2], i, shape=(3, 4)))
    module = nn.compile(loss, name=f"bad_{backend}", output_dir=tmp_path,
                        backend=backend).module
    convert = xps.asarray if backend == "array_api" else np.asarray
    args = [convert(np.zeros((3, 4), np.float32)), convert(np.array(bad, np.float32))]
    for function in (module.forward, module.gradient):
        with pytest.raises(ValueError, match=r"argument 'i' " + message):
            function(*args)
    good = [[-3.9, 2], [3, -4]]  # columns (-3 -> 0, 3) and (2, 0)
    assert float(module.forward(args[0], convert(np.array(good, np.float32)))) == 0


def test_an_input_read_as_indices_and_as_labels_gets_the_ranges_both_allow(tmp_path):
    """F.gather along axis 0 of (2, 4) reads the indices (2, 3) as 0 or 1; gather_nd into
    (3, 4) reads row 0 from -3 to 2 and row 1 from -4 to 3: they must be 0 or 1."""
    x, i = nn.Variable((3, 4), need_grad=True), nn.Variable((2, 3))
    x.name, i.name = "x", "i"
    loss = F.sum(F.gather_nd(x, i)) + F.sum(F.gather(x[:2], i))
    module = nn.compile(loss, name="both", output_dir=tmp_path).module
    zeros = np.zeros((3, 4), np.float32)
    module.forward(zeros, np.array([[0, 1, 1], [1, 0, 0]], np.float32))
    with pytest.raises(ValueError, match=r"holds 2\.0 at index \(1, 2\); row 1 indexes axis 1 "
                                         r"\(for F\.gather_nd and a function reading them "
                                         r"as class labels or indices\): it must hold "
                                         r"integers from 0 to 1$"):
        module.forward(zeros, np.array([[0, 1, 1], [1, 0, 2]], np.float32))


def test_runtime_refuses_out_of_range_indices():
    x = nn.Variable.from_numpy_array(np.ones((3, 4)), need_grad=True)
    y = F.gather_nd(x, [[0], [4]])
    with pytest.raises(ValueError, match=r"holds 4\.0 at index \(1, 0\); row 1 indexes axis 1 "
                                         r"\(for F\.gather_nd\): it must hold integers "
                                         r"from -4 to 3"):
        y.forward()


# --- bad graphs, refused when they are built ----------------------------------------------

@pytest.mark.parametrize("make,error,message", [
    (lambda x: F.gather_nd(x, nn.Variable((2,))), ValueError,
     r"F\.gather_nd: data of shape \(3, 4\), indices of shape \(2,\): indices must have at "
     r"least 2 axes"),
    (lambda x: F.gather_nd(x, nn.Variable((3, 5))), ValueError,
     r"indices\.shape\[0\] \(M=3, .*\) must be from 1 to data's rank \(2\)"),
    (lambda x: F.gather_nd(x, nn.Variable((0, 5))), ValueError, r"must be from 1 to"),
    (lambda x: F.gather_nd(x.d, [[0]]), TypeError, r"F\.gather_nd: input 0 must be a Variable"),
    (lambda x: F.scatter_nd(x, [[0, 1]], shape=(4, 4)), ValueError,
     r"F\.scatter_nd: data of shape \(3, 4\), indices of shape \(1, 2\), shape \(4, 4\): data "
     r"must be of shape indices\.shape\[1:\] \+ shape\[M:\] = \(2, 4\)"),
    (lambda x: F.scatter_nd(x, [[0, 1, 2]], shape=(4, 5)), ValueError, r"= \(3, 5\)"),
    (lambda x: F.scatter_nd(x, [[0, 1, 2]]), TypeError,
     r"one of `shape` or `out` argument must be supplied"),
    (lambda x: F.scatter_nd(x, [[0, 1, 2]], shape=(4, 4), out=nn.Variable((4, 4))), TypeError,
     r"only one of `shape` or `out` argument may be used"),
    (lambda x: F.scatter_nd(x, [[0, 1, 2]], out=np.zeros((4, 4))), TypeError,
     r"`out` must be a Variable"),
    (lambda x: F.scatter_nd(x, [[0, 1, 2]], out=F.identity(nn.Variable((5, 4)))), ValueError,
     r"F\.scatter_nd: with out the forward pass updates out in place, so it must be a leaf"),
    (lambda x: F.scatter_nd(x, [[0, 1, 2]], out=nn.Variable((5, 3))), ValueError,
     r"= \(3, 3\)"),
])
def test_bad_graphs_are_refused_when_built(make, error, message):
    with pytest.raises(error, match=message):
        make(nn.Variable((3, 4)))


def test_shapes_and_arguments_as_nnabla():
    x = nn.Variable((2, 5))
    assert F.gather_nd(x, [[1, 1, 0]]).shape == (3, 5)
    assert F.gather_nd(x, [[1, 1, 0], [0, 1, 0]]).shape == (3,)
    assert F.gather_nd(nn.Variable((3, 4, 2)), nn.Variable((2, 5, 6))).shape == (5, 6, 2)
    assert F.scatter_nd(nn.Variable((2, 4)), [[0, 1], [2, 3]], shape=(4, 4, 4)).shape == (4, 4, 4)
    assert F.scatter_nd(nn.Variable((3,)), [[0, 1, 0]], shape=[2]).shape == (2,)
    out = nn.Variable((8,))
    assert F.scatter_nd(nn.Variable((4,)), [[4, 3, 1, 7]], shape=(), out=out).shape == (8,)
    node = F.scatter_nd(nn.Variable((4,)), [[4, 3, 1, 7]], (8,), None, True).parent
    assert node.info.type_name == "ScatterNd" and node.args == {"shape": (8,), "add": True}


# --- nnabla 1.39 ---------------------------------------------------------------------------

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
needs_nnabla = pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                                  "(a Python 3.10 with `pip install nnabla`)")
# expressions of x (3, 4, 2), the same text in nnabla and here; the indices are leaves
EXPRESSIONS = [
    "F.gather_nd(x, index([[0, -1, 2, 0], [1, 3, -4, 1]]))",
    "F.gather_nd(x, index([[[2, 0, -1], [1, 1, 0]]]))",
    "F.gather_nd(x, index([[2, 0, -1], [1, 3, -2], [0, 1, -1]]))",
    "F.scatter_nd(x, index([[1, 4, -2]]), shape=(5, 4, 2))",  # (no repeats: see below)
    "F.scatter_nd(x[0], index([[1, 4, -1, 0], [0, 1, 2, 2]]), shape=(5, 3, 2), add=True)",
    "F.scatter_nd(x[:, :, 0], index([[2, 0, 2], [1, 1, 1]]), shape=(3, 2, 4), add=True)",
    "F.gather_nd(F.scatter_nd(x, index([[3, 0, 1]]), shape=(4, 4, 2)) * 2, index([[0, 3]]))",
]
NNABLA_GATHER_ND = r"""
import json, sys
import numpy as np
import nnabla as nn, nnabla.functions as F


def index(values):
    return nn.Variable.from_numpy_array(np.array(values))


for i, text in enumerate(json.loads(sys.argv[1])):
    rng = np.random.RandomState(i)
    x = nn.Variable.from_numpy_array(rng.randn(3, 4, 2).astype(np.float32), need_grad=True)
    out = eval(text)
    g = np.asarray(rng.randn(*out.shape), np.float32)
    out.forward()
    x.grad.zero()
    out.backward(g)
    print(json.dumps({"x": x.d.tolist(), "g": g.tolist(), "out": out.d.tolist(),
                      "dx": x.g.tolist()}))
"""


def _index(values):
    return nn.Variable.from_numpy_array(np.array(values, np.float32))


@needs_nnabla
def test_forward_and_backward_against_nnabla(tmp_path):
    """The output and the gradient of x of each expression equal nnabla 1.39's (indices
    Variables, negative, partial, repeated where add sums them)."""
    rows = nnabla_rows(NNABLA, NNABLA_GATHER_ND, EXPRESSIONS, tmp_path)
    assert len(rows) == len(EXPRESSIONS)
    for text, row in zip(EXPRESSIONS, rows, strict=True):
        nn.clear_parameters()
        x = nn.Variable.from_numpy_array(np.array(row["x"], np.float32), need_grad=True)
        out = eval(text, {"F": F, "x": x, "index": _index})
        loss = F.sum(out * nn.Variable.from_numpy_array(np.array(row["g"], np.float32)))
        loss.forward()
        x.grad.zero()
        loss.backward()
        np.testing.assert_allclose(out.d, row["out"], rtol=1e-6, atol=1e-6, err_msg=text)
        np.testing.assert_allclose(x.g, row["dx"], rtol=1e-5, atol=1e-6, err_msg=text)


NNABLA_QUIRKS = r"""
import json
import numpy as np
import nnabla as nn, nnabla.functions as F
data = nn.Variable.from_numpy_array(np.array([1.0, 2, 3]), need_grad=True)
w = nn.Variable.from_numpy_array(np.array([10.0, 20, 30, 40]))
for add in (False, True):
    for given in (False, True):
        out = nn.Variable.from_numpy_array(np.array([5.0, 6, 7, 8]), need_grad=True)
        y = F.scatter_nd(data, nn.Variable.from_numpy_array(np.array([[1, 1, -1]])),
                         out=out if given else None, shape=None if given else (4,), add=add)
        loss = F.sum(y * w)
        loss.forward()
        first = out.d.tolist()
        data.grad.zero()
        out.grad.zero()
        loss.backward()
        loss.forward()
        print(json.dumps({"y": y.d.tolist(), "first": first, "out": out.d.tolist(),
                          "dx": data.g.tolist(), "dout": out.g.tolist()}))
"""


@needs_nnabla
def test_nnabla_backward_where_it_is_not_the_derivative(tmp_path):
    """At repeated positions (1, 1, -1 into 4) nnabla 1.39's forward is ours (the last
    write wins; `out` updated in place, add adding again each pass), but its data
    gradient is not the derivative: without out it passes dy to every repeated position
    (with add=False only the last should get it), with out only to the first (with add
    every one should). out gets no gradient in either."""
    rows = nnabla_rows(NNABLA, NNABLA_QUIRKS, None, tmp_path)
    expected_dx = [[20, 20, 40], [20, 0, 40], [20, 20, 40], [20, 0, 40]]
    for (add, given), row, theirs in zip([(False, False), (False, True), (True, False),
                                          (True, True)], rows, expected_dx, strict=True):
        assert row["dx"] == theirs and row["dout"] == [0, 0, 0, 0]
        nn.clear_parameters()
        data = nn.Variable.from_numpy_array(np.array([1.0, 2, 3]), need_grad=True)
        out = nn.Variable.from_numpy_array(np.array([5.0, 6, 7, 8]), need_grad=True)
        y = F.scatter_nd(data, [[1, 1, -1]], out=out if given else None,
                         shape=None if given else (4,), add=add)
        loss = F.sum(y * nn.Variable.from_numpy_array(np.array([10.0, 20, 30, 40])))
        loss.forward()
        np.testing.assert_array_equal(out.d, row["first"])
        data.grad.zero()
        out.grad.zero()
        loss.backward()
        np.testing.assert_array_equal(data.g, [20, 20, 40] if add else [0, 20, 40])
        np.testing.assert_array_equal(out.g, row["dout"])
        loss.forward()
        np.testing.assert_array_equal(y.d, row["y"])
        np.testing.assert_array_equal(out.d, row["out"])


@pytest.mark.parametrize("rows,count,width", [(0, 4, 3), (1, 1, 1), (37, 9, 4), (300, 50, 2)])
def test_the_array_api_scatter_add_sums_each_position_rows(rows, count, width):
    """segment_sums (the array API backend's scatter-add: sorted rows, a segmented scan)
    against numpy.add.at, positions repeated, missing and outside (dropped)."""
    xps = pytest.importorskip("array_api_strict")
    from symcompile.backends.kernels.array_api_kernels import segment_sums

    rng = np.random.default_rng(rows)
    positions = rng.integers(0, count + 3, size=rows)  # (count and above: dropped)
    values = rng.normal(size=(rows, width))
    expected = np.zeros((count + 3, width))
    np.add.at(expected, positions, values)
    got = segment_sums(xps, xps.asarray(positions), xps.asarray(values), count)
    np.testing.assert_allclose(np.from_dlpack(got), expected[:count], rtol=1e-12, atol=1e-12)
