"""More array functions: F.broadcast_to, F.pad's reflect and repeat modes, F.cumsum,
F.cumprod, F.prod, F.max/F.min with indices, F.sort, F.top_k_data, F.shift,
F.matrix_diag, F.matrix_diag_part, F.meshgrid, F.gather and F.scatter_add.

- forward against an independent NumPy reference (float64), gradients against central
  finite differences (gradcheck.check_function), on the NumPy backend; the array API
  backend's module on array-api-strict arrays gives the same forward and gradients;
- nnabla semantics at the edges: prod's gradient at zeros (0, as nnabla's dy * y / x),
  cumprod's (exact), ties (the first extremum, a stable sort);
- bad input, refused when the graph is built, naming the function, the shapes and the fix;
- nnabla 1.39's numbers where it is installed (forward and backward).
"""

from __future__ import annotations

import json
import os
import subprocess

import array_api_strict as xps
import numpy as np
import pytest
from gradcheck import check_array_api, check_function
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.functions as F

X = (2, 3, 4)


def normal(*shapes):
    return lambda: [np.random.default_rng(i).normal(size=s) for i, s in enumerate(shapes)]


def np_shift(a, shifts, mode):
    """nnabla's shift (shift.cpp): y[i] = x[j], j = i - s clamped to the axis ("nearest"),
    or ("reflect") a = |i - s + 2n| mod 2n and j = a, or 2n - 1 - a past the end: NumPy's
    "symmetric" padding while i - s >= -2n, and beyond, not (the absolute value)."""
    out = a
    for axis, s in zip(range(a.ndim - len(shifts), a.ndim), shifts, strict=True):
        n = a.shape[axis]
        if mode == "nearest":
            source = np.clip(np.arange(n) - s, 0, n - 1)
        else:
            folded = np.abs(np.arange(n) - s + 2 * n) % (2 * n)
            source = np.where(folded >= n, 2 * n - 1 - folded, folded)
        out = np.take(out, source, axis=axis)
    return out


def np_top_k(a, k, base, largest=True, absolute=False, reduce=True):
    rows = a.reshape(int(np.prod(a.shape[:base])), -1)
    key = np.abs(rows) if absolute else rows
    order = np.argsort(-key if largest else key, axis=1, kind="stable")[:, :k]
    if reduce:
        return np.take_along_axis(rows, order, 1).reshape(a.shape[:base] + (k,))
    mask = np.zeros(rows.shape)
    np.put_along_axis(mask, order, 1, axis=1)
    return (rows * mask).reshape(a.shape)


def np_gather(x, indices, axis, batch_dims):
    if batch_dims == 0:
        return np.take(x, indices, axis=axis)
    return np.stack([np_gather(x[i], indices[i], axis - 1, batch_dims - 1)
                     for i in range(x.shape[0])])


def np_scatter_add(x0, indices, x1, axis):
    out = x0.copy()
    for p in np.ndindex(indices.shape):
        q = list(p)
        q[axis] = int(indices[p])
        out[tuple(q)] += x1[p]
    return out


def np_cumulative(a, axis, exclusive, reverse, product):
    a = np.flip(a, axis) if reverse else a
    y = (np.cumprod if product else np.cumsum)(a, axis=axis)
    if exclusive:
        y = np.concatenate([np.ones_like(np.take(a, [0], axis)) * (1 if product else 0),
                            np.take(y, range(a.shape[axis] - 1), axis)], axis=axis)
    return np.flip(y, axis) if reverse else y


INDICES = np.array([[2.0, 0], [1, 1]])  # gather's, for x (2, 3, 4)
SCATTERED = np.array([[1.0, 1, 3], [0, 2, 0]])  # scatter_add's, into x0 (2, 4)

# (name, build from Variables, the same with NumPy, the inputs, which inputs are indices)
CASES = [
    ("broadcast_to last axes", lambda x, y: F.broadcast_to(x, y),
     lambda a, b: np.broadcast_to(b, a.shape), normal(X, (3, 4)), ()),
    ("broadcast_to axis", lambda x, y: F.broadcast_to(x, y, axis=1),
     lambda a, b: np.broadcast_to(b[None, :, None], a.shape), normal(X, (3,)), ()),
    ("pad reflect", lambda x: F.pad(x, (2, 3, 1, 2), mode="reflect"),
     lambda a: np.pad(a, ((0, 0), (2, 3), (1, 2)), mode="reflect"), normal(X), ()),
    ("pad reflect wider than the axis", lambda x: F.pad(x, (7, 9), mode="reflect"),
     lambda a: np.pad(a, ((0, 0), (0, 0), (7, 9)), mode="reflect"), normal(X), ()),
    ("pad repeat", lambda x: F.pad(x, (1, 2, 5, 0, 3, 3), mode="repeat"),
     lambda a: np.pad(a, ((1, 2), (5, 0), (3, 3)), mode="edge"), normal(X), ()),
    ("cumsum", lambda x: F.cumsum(x, axis=1), lambda a: np.cumsum(a, 1), normal(X), ()),
    ("cumsum axis None is 0", F.cumsum, lambda a: np.cumsum(a, 0), normal(X), ()),
    ("cumsum exclusive reverse", lambda x: F.cumsum(x, axis=2, exclusive=True, reverse=True),
     lambda a: np_cumulative(a, 2, True, True, False), normal(X), ()),
    ("cumprod", lambda x: F.cumprod(x, axis=-1), lambda a: np.cumprod(a, 2), normal(X), ()),
    ("cumprod exclusive", lambda x: F.cumprod(x, axis=1, exclusive=True),
     lambda a: np_cumulative(a, 1, True, False, True), normal(X), ()),
    ("cumprod reverse", lambda x: F.cumprod(x, axis=2, reverse=True),
     lambda a: np_cumulative(a, 2, False, True, True), normal(X), ()),
    ("prod", lambda x: F.prod(x, axis=1), lambda a: np.prod(a, 1), normal(X), ()),
    ("prod of all, keepdims", lambda x: F.prod(x, keepdims=True),
     lambda a: np.prod(a, keepdims=True), normal((2, 3)), ()),
    ("prod two axes", lambda x: F.prod(x, axis=(0, 2)), lambda a: np.prod(a, (0, 2)),
     normal(X), ()),
    ("max with_index", lambda x: F.max(x, axis=1, with_index=True)[1] + F.max(x, axis=1),
     lambda a: np.argmax(a, 1) + np.max(a, 1), normal(X), ()),
    ("min only_index over two axes", lambda x: F.min(x, axis=(0, 2), keepdims=True,
                                                     only_index=True) * 1.5 + x,
     lambda a: 1.5 * np.argmin(np.moveaxis(a, 1, 0).reshape(3, -1), 1)[None, :, None] + a,
     normal(X), ()),
    ("max with_index over all axes", lambda x: F.max(x, with_index=True)[1],
     lambda a: np.argmax(a), normal(X), ()),
    ("sort", F.sort, lambda a: np.sort(a, -1), normal(X), ()),
    ("sort reverse axis 1", lambda x: F.sort(x, axis=1, reverse=True),
     lambda a: -np.sort(-a, 1), normal(X), ()),
    ("sort with_index", lambda x: F.sort(x, axis=0, with_index=True)[1] + F.sort(x, axis=0),
     lambda a: np.argsort(a, 0, kind="stable") + np.sort(a, 0), normal(X), ()),
    ("top_k_data", lambda x: F.top_k_data(x, 5), lambda a: np_top_k(a, 5, 1), normal(X), ()),
    ("top_k_data abs smallest base_axis 2",
     lambda x: F.top_k_data(x, 2, abs=True, largest=False, base_axis=2),
     lambda a: np_top_k(a, 2, 2, largest=False, absolute=True), normal(X), ()),
    ("top_k_data not reduced", lambda x: F.top_k_data(x, 7, reduce=False, base_axis=0),
     lambda a: np_top_k(a, 7, 0, reduce=False), normal(X), ()),
    ("top_k_data with_index", lambda x: F.top_k_data(x, 3, with_index=True)[1],
     lambda a: np.argsort(-a.reshape(2, -1), 1, kind="stable")[:, :3], normal(X), ()),
    ("shift nearest", lambda x: F.shift(x, (1, -2)), lambda a: np_shift(a, (1, -2), "nearest"),
     normal(X), ()),
    ("shift reflect", lambda x: F.shift(x, (-5, 3), border_mode="reflect"),
     lambda a: np_shift(a, (-5, 3), "reflect"), normal(X), ()),
    ("shift reflect by more than the axis", lambda x: F.shift(x, (9,), border_mode="reflect"),
     lambda a: np_shift(a, (9,), "reflect"), normal(X), ()),
    ("matrix_diag", F.matrix_diag, lambda a: np.einsum("...i,ij->...ij", a, np.eye(4)),
     normal(X), ()),
    ("matrix_diag_part", F.matrix_diag_part,
     lambda a: np.diagonal(a, axis1=-2, axis2=-1), normal((2, 3, 3)), ()),
    ("meshgrid xy", lambda a, b, c: F.meshgrid(a, b, c)[0] * F.meshgrid(a, b, c)[2],
     lambda a, b, c: np.meshgrid(a, b, c)[0] * np.meshgrid(a, b, c)[2],
     normal((3,), (2,), (4,)), ()),
    ("meshgrid ij", lambda a, b: F.meshgrid(a, b, ij_indexing=True)[1] ** 2,
     lambda a, b: np.meshgrid(a, b, indexing="ij")[1] ** 2, normal((3,), (2,)), ()),
    ("gather", lambda x, i: F.gather(x, i, axis=1),
     lambda a, i: np_gather(a, i.astype(int), 1, 0),
     lambda: [normal(X)()[0], INDICES], (1,)),
    ("gather axis None", F.gather, lambda a, i: np_gather(a, i.astype(int), 0, 0),
     lambda: [normal(X)()[0], np.array([[1.0, 0], [1, 1]])], (1,)),
    ("gather batch_dims", lambda x, i: F.gather(x, i, 2, 1),
     lambda a, i: np_gather(a, i.astype(int), 2, 1),
     lambda: [normal(X)()[0], np.array([[3.0, 0], [1, 1]])], (1,)),
    ("scatter_add", lambda x0, i, x1: F.scatter_add(x0, i, x1, axis=1),
     lambda a, i, b: np_scatter_add(a, i.astype(int), b, 1),
     lambda: [normal((2, 4))()[0], SCATTERED, normal((3, 3))()[0][:2]], (1,)),
    ("scatter_add of fewer indices", lambda x0, i, x1: F.scatter_add(x0, i, x1),
     lambda a, i, b: np_scatter_add(a, i.astype(int), b, 0),
     lambda: [normal((3, 4))()[0], np.array([[2.0, 0]]), normal((3, 4))()[0] + 1], (1,)),
    # x0 of length 1 along the axis: the per-index sums are dot products of length 2
    ("scatter_add into one row", lambda x0, i, x1: F.scatter_add(x0, i, x1),
     lambda a, i, b: np_scatter_add(a, i.astype(int), b, 0),
     lambda: [normal((1, 1))()[0], np.array([[0.0], [0]]), normal((2, 1))()[0]], (1,)),
    # gradients differentiated again (nn.grad): sum(sort(x)**3) is sum(x**3)
    ("grad of sort, differentiated again",
     lambda x: nn.grad([F.sum(F.sort(x, axis=1) ** 3 * F.sort(x, axis=1))], [x])[0],
     lambda a: 4 * a ** 3, normal(X), ()),
    ("grad of top_k_data, differentiated again",
     lambda x: nn.grad([F.sum(F.top_k_data(x, 5) ** 3)], [x])[0],
     lambda a: 3 * a ** 2 * (np_top_k(a, 5, 1, reduce=False) != 0), normal(X), ()),
    ("grad of prod and of a pad, differentiated again",
     lambda x: nn.grad([F.sum(F.prod(F.pad(x, (1, 2), mode="reflect"), axis=1))], [x])[0],
     lambda a: _prod_of_reflected_gradient(a), normal((2, 3)), ()),
]


def _prod_of_reflected_gradient(a):
    """d/da of sum(prod(reflect-pad(a, (1, 2)), axis=-1)) by the product rule: each
    element's count of copies c times prod / a."""
    padded = np.pad(a, ((0, 0), (1, 2)), mode="reflect")
    counts = np.array([2, 3, 1])  # the padded row is a1 a0 a1 a2 a1 a0
    return np.prod(padded, axis=-1, keepdims=True) * counts / a
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("name,build,reference,draw,indices", CASES, ids=IDS)
def test_forward_and_gradients(name, build, reference, draw, indices, tmp_path, rng):
    arrays = draw()
    need_grad = [i not in indices for i in range(len(arrays))]
    module = check_function(build, reference, arrays, tmp_path, rng, need_grad=need_grad)
    nn.clear_parameters()
    check_array_api(build, arrays, module, tmp_path, need_grad)


def _gradient(build, arrays, tmp_path):
    """The output and the gradient of sum(build(x)) (weights 1..n) with respect to x."""
    x = nn.Variable.from_numpy_array(np.asarray(arrays, np.float64), need_grad=True)
    out = build(x)
    weights = nn.Variable.from_numpy_array(np.arange(1.0, out.size + 1).reshape(out.shape))
    loss = F.sum(out * weights)
    loss.forward()
    x.grad.zero()
    loss.backward()
    return out.d, x.g


def test_prod_gradient_is_nnablas_at_zeros(tmp_path):
    """nnabla's prod backward is dy * y / x, and 0 where x is 0 (not the product of the
    others, the true derivative there): its numbers for [[2, 0, 3, -1], [0, 2, 0, 3]]."""
    y, g = _gradient(lambda x: F.prod(x, axis=1), [[2, 0, 3, -1], [0, 2, 0, 3], [1, 2, 3, 4]],
                     tmp_path)
    np.testing.assert_array_equal(y, [0, 0, 24])
    np.testing.assert_array_equal(g, [[0, 0, 0, 0], [0, 0, 0, 0], [72, 36, 24, 18]])


def test_cumprod_gradient_is_exact_at_zeros(tmp_path):
    """cumprod's gradient is the true one where x holds zeros, dx[i] = sum over j >= i of
    dy[j] * prod over k <= j, k != i of x[k] (as nnabla's: [[5, 6, 0, 0]] for x = [[2, 0,
    3, -1]] and dy = [[5, 6, 7, 8]]); here dy = [[1, 2, 3, 4], [5, 6, 7, 8]]."""
    _, g = _gradient(lambda x: F.cumprod(x, axis=1), [[2, 0, 3, -1], [0, 2, 0, 3]], tmp_path)
    # row 0: dx0 = 1, dx1 = 2*2 + 3*2*3 + 4*2*3*(-1) = -2; row 1: dx0 = 5 + 6*2 = 17
    np.testing.assert_array_equal(g, [[1, -2, 0, 0], [17, 0, 0, 0]])


def test_ties_go_to_the_first_element():
    """max's index and gradient pick the first maximum; sort keeps ties in x's order (the
    indices nnabla 1.39 gives for [3, 1, 3, 2, 1]: [1, 4, 3, 0, 2], reversed [0, 2, 3, 1,
    4])."""
    with nn.auto_forward():
        x = nn.Variable.from_numpy_array(np.array([[3.0, 1, 3, 2, 1]]))
        assert F.max(x, axis=1, only_index=True).d.tolist() == [0]
        assert F.min(x, axis=1, only_index=True).d.tolist() == [1]
        assert F.sort(x, only_index=True).d.tolist() == [[1, 4, 3, 0, 2]]
        assert F.sort(x, reverse=True, only_index=True).d.tolist() == [[0, 2, 3, 1, 4]]


def test_outputs_and_parent_names_are_nnablas():
    x = nn.Variable(X)
    y, index = F.max(x, axis=1, with_index=True)
    assert y.shape == index.shape == (2, 4)
    assert y.parent.name == index.parent.name == "Max"
    values, order = F.sort(x, with_index=True)
    assert values.parent.name == order.parent.name == "Sort"
    assert F.sort(x, only_index=True).shape == X
    assert F.cumsum(x).parent.name == "CumSum" and F.prod(x).parent.name == "Prod"
    assert F.broadcast_to(x, nn.Variable((4,))).parent.name == "BroadcastTo"
    assert [v.shape for v in F.meshgrid(nn.Variable((3,)), nn.Variable((2,)))] == [(2, 3)] * 2
    assert F.top_k_data(x, 2, with_index=True)[1].shape == (2, 2)
    assert F.gather(x, nn.Variable((5, 1)), axis=2).shape == (2, 3, 5, 1)


# --- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("call,error,message", [
    (lambda x: F.broadcast_to(x, nn.Variable((3,))), ValueError,
     r"F.broadcast_to: y of shape \(3,\) does not fit x of shape \(2, 3, 4\): y's shape must "
     r"equal x's along the last axes .* Fix: pass axis="),
    (lambda x: F.broadcast_to(x, nn.Variable((3, 5)), axis=1), ValueError,
     r"y of shape \(3, 5\) does not fit x of shape \(2, 3, 4\).* from axis 1 on"),
    (lambda x: F.broadcast_to(x, nn.Variable((3,)), axis=5), ValueError,
     r"F.broadcast_to: axis 5 is out of range for x of shape \(2, 3, 4\)"),
    (lambda x: F.pad(x, (1, 1), mode="wrap"), ValueError,
     r"F.pad: mode='wrap' is not one of nnabla's 'constant', 'reflect' and 'repeat' "
     r"\(input of shape \(2, 3, 4\)\)"),
    (lambda x: F.pad(x, (1, 1, 1), mode="reflect"), ValueError, r"must hold pairs"),
    (lambda x: F.cumsum(x, axis=3), ValueError,
     r"F.cumsum: axis 3 is out of range for an input of shape \(2, 3, 4\)"),
    (lambda x: F.cumprod(x, axis=1.5), TypeError, r"F.cumprod: axis must be an int"),
    (lambda x: F.cumsum(nn.Variable(())), ValueError, r"F.cumsum: the input of shape \(\)"),
    (lambda x: F.prod(x, axis=(0, 0)), ValueError, r"F.prod: axis \(0, 0\) names the same axis"),
    (lambda x: F.max(x, axis=4, with_index=True), ValueError,
     r"F.max: axis 4 is out of range for an input of shape \(2, 3, 4\)"),
    (lambda x: F.sort(x, axis=-4), ValueError,
     r"F.sort: axis -4 is out of range for an input of shape \(2, 3, 4\)"),
    (lambda x: F.top_k_data(x, 13), ValueError,
     r"F.top_k_data: k=13 must be from 1 to the sample size 12 \(the axes of the input of "
     r"shape \(2, 3, 4\) from base_axis 1 on\)"),
    (lambda x: F.top_k_data(x, 2, base_axis=3), ValueError,
     r"F.top_k_data: base_axis 3 is out of range"),
    (lambda x: F.top_k_data(x, 2, reduce=False, with_index=True), ValueError,
     r"with_index=True needs reduce=True"),
    (lambda x: F.shift(x, (1, 1, 1, 1)), ValueError,
     r"F.shift: shifts=\(1, 1, 1, 1\) has more entries than the input of shape \(2, 3, 4\)"),
    (lambda x: F.shift(x, (1,), border_mode="wrap"), ValueError,
     r"F.shift: border_mode='wrap' is not one of nnabla's"),
    (lambda x: F.matrix_diag_part(x), ValueError,
     r"F.matrix_diag_part: input of shape \(2, 3, 4\) must end in square matrices"),
    (lambda x: F.matrix_diag(nn.Variable(())), ValueError, r"F.matrix_diag: the input of "),
    (lambda x: F.meshgrid(x, nn.Variable((2,))), ValueError,
     r"F.meshgrid: input 0 of shape \(2, 3, 4\) must be 1-D"),
    (lambda x: F.meshgrid(), ValueError, r"F.meshgrid: give at least one Variable"),
    (lambda x: F.gather(x, nn.Variable((3, 2)), axis=1, batch_dims=1), ValueError,
     r"F.gather: x of shape \(2, 3, 4\), indices of shape \(3, 2\): the first batch_dims=1 "
     r"axes of x and indices must be equal"),
    (lambda x: F.gather(x, nn.Variable((2,)), axis=0, batch_dims=1), ValueError,
     r"batch_dims=1 must be from 0 to"),
    (lambda x: F.gather(x, np.zeros(2)), TypeError, r"F.gather: input 1 must be a Variable"),
    (lambda x: F.scatter_add(nn.Variable((2, 4)), nn.Variable((2, 3)), nn.Variable((2, 2)),
                             axis=1), ValueError,
     r"F.scatter_add: x0 of shape \(2, 4\), indices of shape \(2, 3\), x1 of shape \(2, 2\): "
     r"indices must be no longer than x1"),
    (lambda x: F.scatter_add(x, nn.Variable((2, 3)), nn.Variable((2, 3))), ValueError,
     r"F.scatter_add: .* the three must have the same rank"),
])
def test_bad_input_is_refused_when_the_graph_is_built(call, error, message):
    with pytest.raises(error, match=message):
        call(nn.Variable(X))


def test_out_of_range_indices_are_refused_when_the_module_is_called(tmp_path):
    x, i = nn.Variable(X, need_grad=True), nn.Variable((2,))
    x.name, i.name = "x", "i"
    module = nn.compile(F.sum(F.gather(x, i, axis=1)), name="g", output_dir=tmp_path).module
    with pytest.raises(ValueError, match=r"argument 'i' holds 3\.0 at index \(1,\); "
                                         r"indices must be integers from 0 to 2$"):
        module.forward(np.zeros(X, np.float32), np.array([0, 3], np.float32))
    # -1 is refused too, as nnabla's gather refuses it (it ignores a sample only for the
    # losses, which allow it: F.embed of the same input keeps the gather's rule)
    for backend in ("numpy", "array_api"):
        module = nn.compile(F.sum(F.gather(x, i, axis=1)) + F.sum(F.embed(i, x[0])),
                            name=f"g_{backend}", output_dir=tmp_path, backend=backend).module
        values = {"x": np.zeros(X, np.float32), "i": np.array([0, -1], np.float32)}
        args = [values[name] for name in module.INPUTS]
        if backend == "array_api":
            args = [xps.asarray(a) for a in args]
        with pytest.raises(ValueError, match=r"holds -1\.0 at index \(1,\); indices must"):
            module.forward(*args)
    module = nn.compile(F.sum(F.embed(i, x[0])), name="e", output_dir=tmp_path).module
    values = {"x": np.ones(X, np.float32), "i": np.array([0, -1], np.float32)}
    assert module.forward(*(values[name] for name in module.INPUTS)) == 4  # (row -1: zeros)


# --- nnabla 1.39 ---------------------------------------------------------------------------

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
# expressions of x (2, 3, 4), the same text in nnabla and here, and whether nnabla's
# backward is compared too (index outputs have none here; nnabla's broadcast_to has no
# backward, its sort backward permutes dy the other way, see F.sort)
EXPRESSIONS = [
    ("F.broadcast_to(F.stack(x, x) * 0, x[0])", False),
    ("F.broadcast_to(x * 0, x[:, :, 1], axis=0)", False),
    ("F.pad(x, (2, 3, 1, 2), mode='reflect')", True),
    ("F.pad(x, (6, 9), mode='reflect')", True),
    ("F.pad(x, (1, 2, 5, 0, 3, 3), mode='repeat')", True),
    ("F.cumsum(x, axis=1)", True),
    ("F.cumsum(x)", True),
    ("F.cumsum(x, axis=2, exclusive=True, reverse=True)", True),
    ("F.cumprod(x, axis=2)", True),
    ("F.cumprod(x, axis=1, exclusive=True)", True),
    ("F.cumprod(x, axis=2, exclusive=True, reverse=True)", True),
    ("F.cumprod(F.relu(x), axis=2)", True),
    ("F.prod(x, axis=1)", True),
    ("F.prod(x, axis=(0, 2), keepdims=True)", True),
    ("F.prod(F.relu(x), axis=2)", True),
    ("F.max(x, axis=1, with_index=True)[0]", True),
    ("F.max(x, axis=1, with_index=True)[1]", False),
    ("F.min(x, axis=(0, 2), keepdims=True, only_index=True)", False),
    ("F.max(x, with_index=True)[1]", False),
    ("F.sort(x)", False),
    ("F.sort(x, axis=0, reverse=True)", True),  # an order of two is its own inverse
    ("F.sort(x, axis=1, reverse=True, with_index=True)[1]", False),
    ("F.sort(x, axis=1, only_index=True)", False),
    ("F.top_k_data(x, 5)", True),
    ("F.top_k_data(x, 2, abs=True, largest=False, base_axis=2)", True),
    ("F.top_k_data(x, 7, reduce=False, base_axis=0)", False),
    ("F.top_k_data(x, 3, with_index=True)[1]", False),
    ("F.shift(x, (1, -2))", True),
    ("F.shift(x, (-5, 3), border_mode='reflect')", True),
    ("F.shift(x, (9,), border_mode='reflect')", True),
    ("F.matrix_diag(x)", True),
    ("F.matrix_diag_part(x[:, :, :3])", True),
    ("F.meshgrid(x[0, 0], x[1, 1, :2], x[0, 1, :3])[0]", True),
    ("F.meshgrid(x[0, 0], x[1, 1, :2], ij_indexing=True)[1]", True),
    ("F.gather(x, index([[2, 0], [1, 1]]), axis=1)", True),
    ("F.gather(x, index([[3, 0], [1, 1]]), axis=2, batch_dims=1)", True),
    ("F.gather(x, index([1, 0, 1]))", True),
    ("F.scatter_add(x[:, 0], index([[1, 1, 3], [0, 2, 0]]), x[:, 1, :3], axis=1)", True),
    ("F.scatter_add(x[0], index([[2, 0]]), x[1])", True),
]
NNABLA_ARRAYS = r"""
import json, sys
import numpy as np
import nnabla as nn, nnabla.functions as F


def index(values):
    return nn.Variable.from_numpy_array(np.array(values))


for i, (text, _) in enumerate(json.loads(sys.argv[1])):
    rng = np.random.RandomState(i)
    x = nn.Variable.from_numpy_array(rng.randn(2, 3, 4).astype(np.float32), need_grad=True)
    out = eval(text)
    g = np.asarray(rng.randn(*out.shape), np.float32)
    out.forward()
    x.grad.zero()
    if _:
        out.backward(g)
    print(json.dumps({"x": x.d.tolist(), "g": g.tolist(),
                      "out": np.asarray(out.d, np.float64).tolist(), "dx": x.g.tolist()}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_array_functions_against_nnabla(tmp_path):
    """The output (and where marked, the gradient of x) of each expression equals nnabla
    1.39's."""
    rows = nnabla_rows(NNABLA, NNABLA_ARRAYS, EXPRESSIONS, tmp_path)
    assert len(rows) == len(EXPRESSIONS)

    def index(values):
        return nn.Variable.from_numpy_array(np.array(values, np.float32))

    for (text, backward), row in zip(EXPRESSIONS, rows, strict=True):
        nn.clear_parameters()
        x = nn.Variable.from_numpy_array(np.array(row["x"], np.float32), need_grad=True)
        out = eval(text, {"F": F, "x": x, "index": index})
        loss = F.sum(out * nn.Variable.from_numpy_array(np.array(row["g"], np.float32)))
        loss.forward()
        loss.backward()
        np.testing.assert_allclose(out.d, row["out"], rtol=1e-5, atol=1e-6, err_msg=text)
        if backward:
            np.testing.assert_allclose(x.g, row["dx"], rtol=1e-5, atol=1e-5, err_msg=text)


NNABLA_SORT = r"""
import numpy as np
import nnabla as nn, nnabla.functions as F
x = nn.Variable.from_numpy_array(np.array([[3.0, 1, 3, 2, 1]], np.float32), need_grad=True)
y = F.sort(x)
y.forward()
x.grad.zero()
y.backward(np.array([[1.0, 2, 3, 4, 5]], np.float32))
print(x.g.tolist())
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set")
def test_sort_gradient_where_nnabla_differs(tmp_path):
    """nnabla 1.39's sort backward gives dx[i] = dy[index[i]] (index [1, 4, 3, 0, 2]):
    [2, 5, 4, 1, 3]; the derivative, dx[index[j]] = dy[j], is [4, 1, 5, 3, 2]."""
    done = subprocess.run([NNABLA, "-c", NNABLA_SORT], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == [[2, 5, 4, 1, 3]]
    _, g = _gradient(F.sort, [[3.0, 1, 3, 2, 1]], tmp_path)
    np.testing.assert_array_equal(g, [[4, 1, 5, 3, 2]])
