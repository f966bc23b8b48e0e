"""The dtypes of `.d`, `.data`, `cast`, `from_numpy_array` and of the functions with
integer outputs are nnabla's.

Every expected dtype and value below is what nnabla 1.39 gives for the same code (run
with it; tests/differential/dtypes.py repeats these cases against nnabla itself). In
short: an array keeps the dtype used last (assigning an array or a list, `cast`,
`copy_from`), a scalar fills the array of that dtype, functions read their inputs as
float32 without changing them, operators on NdArrays give float32, F.max/F.min/F.sort/
F.top_k_data's indices are uint64, F.randint's values int32, and F.identity and
F.reshape give their input's dtype.
"""

import numpy as np
import pytest

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF
import symcompile.solvers as S


def check(array, dtype, values):
    array = array.data if isinstance(array, nn.NdArray) else array
    assert isinstance(array, np.ndarray)
    assert array.dtype == np.dtype(dtype), (array.dtype, dtype)
    np.testing.assert_array_equal(array, np.array(values, dtype=dtype))


def var(values, dtype, **kwargs):
    return nn.Variable.from_numpy_array(np.array(values, dtype=dtype), **kwargs)


def ndarray(values, dtype):
    return nn.NdArray.from_numpy_array(np.array(values, dtype=dtype))


# nnabla 1.39: from_numpy_array keeps every dtype, for Variable and NdArray alike
@pytest.mark.parametrize("dtype", ["int64", "int32", "int16", "int8", "uint8", "uint16",
                                   "uint32", "uint64", "float64", "float16", "bool"])
def test_from_numpy_array_keeps_the_dtype(dtype):
    v = var([1, 0], dtype)
    check(v.d, dtype, [1, 0])  # nnabla 1.39
    check(v.data.data, dtype, [1, 0])  # nnabla 1.39
    assert v.data.dtype == np.dtype(dtype)  # nnabla 1.39
    check(ndarray([1, 0], dtype), dtype, [1, 0])  # nnabla 1.39


def test_from_numpy_array_keeps_the_gradient_s_dtype():
    v = var([1.0, 2.0], "float32", grad=np.array([3, 4], dtype=np.int64))
    check(v.g, "int64", [3, 4])  # nnabla 1.39


def test_a_new_variable_is_float32():
    check(nn.Variable((3,)).d, "float32", [0, 0, 0])  # nnabla 1.39
    check(nn.NdArray((2,)), "float32", [0, 0])  # nnabla 1.39
    v = nn.Variable((3,))
    v.data.fill(3)
    check(v.d, "float32", [3, 3, 3])  # nnabla 1.39


@pytest.mark.parametrize("value, dtype, values", [
    # nnabla 1.39: an array or a list gives its dtype, a scalar fills the float32 array
    (np.array([1, 2, 3], dtype=np.int64), "int64", [1, 2, 3]),
    (np.array([1, 2, 3], dtype=np.uint8), "uint8", [1, 2, 3]),
    (np.array([True, False, True]), "bool", [True, False, True]),
    (np.array([1.5, 2.5, 3.5]), "float64", [1.5, 2.5, 3.5]),
    ([1, 2, 3], "int64", [1, 2, 3]),
    ((1, 2, 3), "int64", [1, 2, 3]),
    ([1.5, 2, 3], "float64", [1.5, 2, 3]),
    (5, "float32", [5, 5, 5]),
    (2.5, "float32", [2.5, 2.5, 2.5]),
    (np.float64(2.5), "float32", [2.5, 2.5, 2.5]),
    (np.array(3), "int64", [3, 3, 3]),
    (np.array(3.5), "float64", [3.5, 3.5, 3.5]),
], ids=["int64", "uint8", "bool", "float64", "list of ints", "tuple of ints",
        "list of floats", "int", "float", "numpy float64", "0-d int64", "0-d float64"])
def test_assigning_to_a_new_variable(value, dtype, values):
    v = nn.Variable((3,))
    v.d = value
    check(v.d, dtype, values)


def test_assignment_broadcasts_and_in_place_writes_keep_the_dtype():
    v = nn.Variable((2, 3))
    v.d = np.array([1, 2, 3], dtype=np.int64)
    check(v.d, "int64", [[1, 2, 3], [1, 2, 3]])  # nnabla 1.39
    v = nn.Variable((3,))
    v.d[...] = np.array([1, 2, 3], dtype=np.int64)
    check(v.d, "float32", [1, 2, 3])  # nnabla 1.39
    v = nn.Variable((3,))
    v.g = np.array([1, 2, 3], dtype=np.int64)
    check(v.g, "int64", [1, 2, 3])  # nnabla 1.39


def test_a_refused_assignment_changes_nothing():
    v = var([1, 2, 3], "int64")
    with pytest.raises(ValueError):
        v.d = np.zeros(4)
    check(v.d, "int64", [1, 2, 3])


def test_an_int_variable():
    v = var([1, 2, 3], "int64")
    v.d = 5
    check(v.d, "int64", [5, 5, 5])  # nnabla 1.39
    v.d = 2.7
    check(v.d, "int64", [2, 2, 2])  # nnabla 1.39
    v.d[...] = 7.9
    check(v.d, "int64", [7, 7, 7])  # nnabla 1.39
    v.data.zero()
    check(v.d, "int64", [0, 0, 0])  # nnabla 1.39
    v.data.fill(4.5)
    check(v.d, "int64", [4, 4, 4])  # nnabla 1.39
    v.d = np.array([1.5, 2.5, 3.5], dtype=np.float32)
    check(v.d, "float32", [1.5, 2.5, 3.5])  # nnabla 1.39
    v = var([1, 2, 3], "int64")
    v.d = [7.5, 8.5, 9.5]
    check(v.d, "float64", [7.5, 8.5, 9.5])  # nnabla 1.39
    v = var([1, 2, 3], "int64")
    v.d = np.array(3.5)
    check(v.d, "float64", [3.5, 3.5, 3.5])  # nnabla 1.39
    v.data.fill(4.5)
    check(v.d, "float64", [4.5, 4.5, 4.5])  # nnabla 1.39


def test_cast_makes_the_dtype_current():
    v = var([1, 2, 3], "int64")
    v.d = np.array([1.5, 2.5, 3.5])
    check(v.d, "float64", [1.5, 2.5, 3.5])  # nnabla 1.39
    check(v.data.cast(np.int32), "int32", [1, 2, 3])  # nnabla 1.39
    check(v.d, "int32", [1, 2, 3])  # nnabla 1.39
    v.d[...] = 7.9
    check(v.d, "int32", [7, 7, 7])  # nnabla 1.39


def test_cast_returns_the_live_array():
    v = var([1, 2, 3], "int64")
    c = v.data.cast(np.float32)
    c[0] = 9.5
    check(v.d, "float32", [9.5, 2, 3])  # nnabla 1.39
    check(v.data.cast(np.float32), "float32", [9.5, 2, 3])  # nnabla 1.39
    check(v.data.cast(np.int64), "int64", [9, 2, 3])  # nnabla 1.39
    a = ndarray([1, 2], "int64")
    c = a.cast(np.float32)
    check(c, "float32", [1, 2])  # nnabla 1.39
    c[1] = 5.5
    check(a, "float32", [1, 5.5])  # nnabla 1.39
    assert a.dtype == np.float32  # nnabla 1.39


def test_cast_converts_from_the_current_dtype():
    v = var([1.5, 2.5], "float32")
    v.data.cast(np.int32)
    check(v.data.cast(np.float32), "float32", [1, 2])  # nnabla 1.39: the fractions are gone
    v = nn.Variable((3,))
    v.data.cast(np.int32)
    check(v.d, "int32", [0, 0, 0])  # nnabla 1.39


def test_cast_of_a_gradient():
    v = var([1.0, 2.0], "float32", need_grad=True)
    v.g = 2
    check(v.grad.cast(np.int64), "int64", [2, 2])
    check(v.g, "int64", [2, 2])


def test_assigning_ndarrays():
    v = nn.Variable((2,))
    v.data = ndarray([1, 2], "int64")
    check(v.d, "int64", [1, 2])  # nnabla 1.39
    v = nn.Variable((2,))
    v.data.data = np.array([1, 2], dtype=np.int64)
    check(v.d, "int64", [1, 2])  # nnabla 1.39
    a = nn.NdArray((2,))
    a.data = np.array([1, 2], dtype=np.int64)
    check(a, "int64", [1, 2])  # nnabla 1.39
    a = ndarray([1, 2], "int64")
    a.data = np.array([1.5, 2.5])
    check(a, "float64", [1.5, 2.5])  # nnabla 1.39
    a = ndarray([1.5, 2.5], "float32")
    a.copy_from(ndarray([1, 2], "int64"))
    check(a, "int64", [1, 2])  # nnabla 1.39


def test_operators_on_ndarrays_give_float32():
    a = ndarray([1, 2], "int64")
    check(a + a, "float32", [2, 4])  # nnabla 1.39
    check(a + 1, "float32", [2, 3])  # nnabla 1.39
    check(a * 2.5, "float32", [2.5, 5])  # nnabla 1.39
    check(-a, "float32", [-1, -2])  # nnabla 1.39
    check(ndarray([1, 2], "float64") + 1, "float32", [2, 3])  # nnabla 1.39
    a += 1
    check(a, "float32", [2, 3])  # nnabla 1.39
    a = ndarray([1, 2], "int64")
    a *= 1.5
    check(a, "float32", [1.5, 3])  # nnabla 1.39


def test_functions_read_an_int_input_without_changing_it():
    x = var([[1, 2], [3, 4]], "int64")
    y = F.mul_scalar(x, 2.0)
    y.forward()
    check(y.d, "float32", [[2, 4], [6, 8]])  # nnabla 1.39
    check(x.d, "int64", [[1, 2], [3, 4]])  # nnabla 1.39
    x.d = np.array([[5, 6], [7, 8]], dtype=np.int64)
    y.forward()
    check(y.d, "float32", [[10, 12], [14, 16]])  # nnabla 1.39
    check(x.d, "int64", [[5, 6], [7, 8]])  # nnabla 1.39
    x.d[0, 0] = 1  # in place: the next forward() reads it
    y.forward()
    check(y.d, "float32", [[2, 12], [14, 16]])


def test_a_float64_input():
    x = nn.Variable((2, 2))
    x.d = np.array([[1.76405235, 0.40015721], [0.97873798, 2.2408932]])
    y = F.add_scalar(x, 1.0)
    y.forward()
    # nnabla 1.39: computed from the values as float32; x keeps its float64 values
    check(y.d, "float32", np.float32([[1.76405235, 0.40015721], [0.97873798, 2.2408932]]) + 1)
    check(x.d, "float64", [[1.76405235, 0.40015721], [0.97873798, 2.2408932]])


def test_an_int_label():
    logits = var([[1.0, 2.0, 3.0], [1.0, 0.0, 0.0]], "float32", need_grad=True)
    t = nn.Variable((2, 1))
    t.d = np.array([[2], [0]], dtype=np.int64)
    loss = F.softmax_cross_entropy(logits, t)
    loss.forward()
    np.testing.assert_allclose(loss.d, [[0.40760595], [0.55144465]], rtol=1e-6)  # nnabla
    assert loss.d.dtype == np.float32  # nnabla 1.39
    check(t.d, "int64", [[2], [0]])  # nnabla 1.39
    logits.grad.zero()
    loss.backward()
    check(t.d, "int64", [[2], [0]])  # nnabla 1.39
    np.testing.assert_allclose(logits.g, [[0.09003058, 0.24472849, -0.33475906],
                                          [-0.42388308, 0.21194157, 0.21194157]],
                               rtol=1e-6)  # nnabla 1.39
    # the generated module was given the labels as float32, which it accepts as labels
    module = loss._compiled.module
    assert any("labels" in spec for spec in module.INPUTS.values())


def test_int_indices():
    logits = var([[1.0, 2.0, 3.0], [1.0, 0.0, 0.0]], "float32")
    error = F.top_n_error(logits, var([[0], [0]], "int64"), n=1)
    error.forward()
    check(error.d, "float32", [[1], [0]])  # nnabla 1.39
    for dtype in ("int32", "int64"):
        ids = var([[0], [2]], dtype)
        hot = F.one_hot(ids, (3,))
        hot.forward()
        check(hot.d, "float32", [[1, 0, 0], [0, 0, 1]])  # nnabla 1.39
        check(ids.d, dtype, [[0], [2]])  # nnabla 1.39


X = np.array([[3.0, 1.0, 2.0], [0.5, 4.0, -1.0]], dtype=np.float32)


def computed(y):
    y.forward()
    return y.d


def test_indices_are_uint64():
    x = nn.Variable.from_numpy_array(X)
    check(computed(F.max(x, axis=1, only_index=True)), "uint64", [0, 1])  # nnabla 1.39
    y, index = F.max(x, axis=1, with_index=True)
    check(computed(y), "float32", [3, 4])  # nnabla 1.39
    check(computed(index), "uint64", [0, 1])  # nnabla 1.39
    check(computed(F.min(x, axis=1, only_index=True)), "uint64", [1, 2])  # nnabla 1.39
    y, index = F.min(x, axis=1, with_index=True)
    check(computed(y), "float32", [1, -1])  # nnabla 1.39
    check(computed(index), "uint64", [1, 2])  # nnabla 1.39
    check(computed(F.sort(x, axis=1, only_index=True)), "uint64",
          [[1, 2, 0], [2, 0, 1]])  # nnabla 1.39
    y, index = F.sort(x, axis=1, with_index=True)
    check(computed(y), "float32", [[1, 2, 3], [-1, 0.5, 4]])  # nnabla 1.39
    check(computed(index), "uint64", [[1, 2, 0], [2, 0, 1]])  # nnabla 1.39
    y, index = F.top_k_data(x, 2, with_index=True)
    check(computed(y), "float32", [[3, 2], [4, 0.5]])  # nnabla 1.39
    check(computed(index), "uint64", [[0, 2], [1, 0]])  # nnabla 1.39


def test_functions_of_indices_are_float32():
    x = nn.Variable.from_numpy_array(X)
    index = F.max(x, axis=1, only_index=True)
    check(computed(index + 1), "float32", [1, 2])  # nnabla 1.39
    check(computed(F.one_hot(F.reshape(index, (2, 1)), (3,))), "float32",
          [[1, 0, 0], [0, 1, 0]])  # nnabla 1.39


def test_randint_is_int32():
    r = F.randint(0, 10, shape=(4,), seed=1)
    r.forward()
    assert r.d.dtype == np.int32  # nnabla 1.39
    assert ((r.d >= 0) & (r.d < 10)).all()
    with nn.auto_forward():
        assert F.randint(0, 5, shape=(3,), seed=3).d.dtype == np.int32  # nnabla 1.39


def test_identity_and_reshape_keep_the_input_s_dtype():
    check(computed(F.identity(var([1, 2], "int64"))), "int64", [1, 2])  # nnabla 1.39
    check(computed(F.reshape(var([1, 2], "int64"), (2, 1))), "int64", [[1], [2]])  # nnabla
    check(computed(F.reshape(var([1, 2], "int64"), (2, 1), inplace=False)), "float32",
          [[1], [2]])  # nnabla 1.39: a copy is float32
    check(computed(F.transpose(var([[1, 2]], "int64"), (1, 0))), "float32",
          [[1], [2]])  # nnabla 1.39
    check(computed(F.add_scalar(var([1, 2], "int64"), 0.5)), "float32",
          [1.5, 2.5])  # nnabla 1.39
    check(computed(var([[1, 2], [3, 4]], "int64")[0]), "float32", [1, 2])  # nnabla 1.39


def test_identity_follows_its_input_s_dtype_when_it_runs():
    x = nn.Variable((2,))
    y = F.identity(x)
    x.d = np.array([1, 2], dtype=np.int64)
    check(computed(y), "int64", [1, 2])
    x.d = np.array([1.5, 2.5], dtype=np.float32)
    check(computed(y), "float32", [1.5, 2.5])


def test_imperative_functions():
    a = ndarray([[1, 2]], "int64")
    check(F.relu(a), "float32", [[1, 2]])  # nnabla 1.39
    check(a, "int64", [[1, 2]])  # nnabla 1.39
    check(F.identity(a), "int64", [[1, 2]])  # nnabla 1.39
    check(F.max(nn.NdArray.from_numpy_array(X), axis=1, only_index=True), "uint64",
          [0, 1])  # nnabla 1.39
    with nn.auto_forward():
        x = nn.Variable.from_numpy_array(X)
        index = F.max(x, axis=1, only_index=True)
        check(index.d, "uint64", [0, 1])  # nnabla 1.39
        check(F.sort(x, only_index=True).d, "uint64", [[1, 2, 0], [2, 0, 1]])  # nnabla 1.39
        check((index + 1).d, "float32", [1, 2])  # nnabla 1.39


def test_gradients_become_float32_in_backward():
    v = var([1.0, 2.0], "float32", need_grad=True)
    v.g = np.array([1, 1], dtype=np.int64)
    check(v.g, "int64", [1, 1])  # nnabla 1.39
    y = F.mul_scalar(v, 3.0)
    y.forward()
    y.backward()
    check(v.g, "float32", [4, 4])  # nnabla 1.39 (accumulated)
    v = var([1, 2], "int64", need_grad=True)
    y = F.mul_scalar(v, 3.0)
    y.forward()
    v.grad.zero()
    y.backward()
    check(v.g, "float32", [3, 3])  # nnabla 1.39
    check(v.d, "int64", [1, 2])  # nnabla 1.39
    v = var([1.0, 2.0], "float32", need_grad=True)
    y = F.mul_scalar(v, 3.0)
    y.forward()
    y.g = np.array([1, 2], dtype=np.int64)
    v.grad.zero()
    y.backward(grad=None)
    check(v.g, "float32", [3, 6])  # nnabla 1.39
    check(y.g, "int64", [1, 2])  # nnabla 1.39


def test_a_solver_updates_a_float64_parameter_as_float32():
    x = nn.Variable.from_numpy_array(np.ones((2, 3), np.float32))
    with nn.parameter_scope("dtypes"):
        loss = F.sum(PF.affine(x, 2, name="fc"))
        w = nn.get_parameters()["fc/affine/W"]
        w.d = np.ones((3, 2))
        assert w.d.dtype == np.float64  # nnabla 1.39
        loss.forward()
        assert w.d.dtype == np.float64  # nnabla 1.39
        solver = S.Sgd(0.1)
        solver.set_parameters(nn.get_parameters())
        solver.zero_grad()
        loss.backward()
        assert w.g.dtype == np.float32  # nnabla 1.39
        solver.update()
    check(w.d, "float32", np.full((3, 2), 0.8, np.float32))  # nnabla 1.39
    loss.forward()  # (the graph now reads the float32 array)
    np.testing.assert_allclose(loss.d, 4 * (3 * 0.8 - 0.2), rtol=1e-6)  # b: 0 - 0.1 * 2


def test_reshape_unlink_shares_the_dtype():
    v = var([1, 2, 3, 4], "int64")
    u = v.reshape((2, 2), unlink=True)
    check(u.d, "int64", [[1, 2], [3, 4]])
    u.d = np.array([[1.5, 2.5], [3.5, 4.5]])
    check(v.d, "float64", [1.5, 2.5, 3.5, 4.5])
    v.data.cast(np.int32)
    check(u.d, "int32", [[1, 2], [3, 4]])
