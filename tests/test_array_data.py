"""`.d` and `.g`: live arrays that convert to Python numbers as nnabla users expect.

nnabla's tutorials write ``float(loss.d)`` and ``f"{a.d:.4f}"`` for arrays of shape
(1, 1), which NumPy 2.4 refuses for arrays with axes. `.d` / `.g` return a view
(`symcompile.variable.ArrayData`) that allows it for any size-1 array and is otherwise a
plain ndarray sharing the variable's memory. Assignments of things that are not real
numbers fail at the assignment, saying what was wrong.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import symcompile as nn
import symcompile.functions as F


def array_data_type():
    from symcompile.variable import ArrayData

    return ArrayData


def linear(batch=4):
    """loss = mean((a * x + b - y)**2) with a, b of shape (1, 1)."""
    x = nn.Variable((batch, 1))
    y = nn.Variable((batch, 1))
    a = nn.parameter.get_parameter_or_create("a", (1, 1))
    b = nn.parameter.get_parameter_or_create("b", (1, 1))
    loss = F.mean(F.squared_error(F.add2(F.mul2(a, x), b), y))
    x.d = np.arange(batch).reshape(batch, 1)
    y.d = 1.0
    a.d, b.d = 0.5, 0.25
    return loss, x, y, a, b


# --- conversions ------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(), (1,), (1, 1), (1, 1, 1)])
def test_size_one_arrays_convert_to_python_numbers(shape):
    v = nn.Variable(shape)
    v.d = 2.75
    v.g = -1.5
    assert isinstance(v.d, array_data_type()) and isinstance(v.g, array_data_type())
    assert float(v.d) == 2.75 and type(float(v.d)) is float
    assert int(v.d) == 2 and float(v.g) == -1.5 and int(v.g) == -1
    assert f"{v.d:.4f}" == "2.7500"
    assert "{:.3f}".format(v.g) == "-1.500"  # noqa: UP032 - the tutorials' spelling
    assert f"{v.d:>8.2f}" == "    2.75" and f"{v.d:e}" == "2.750000e+00"
    if shape:  # what ArrayData is for: NumPy 2.4 refuses float() of an array with axes
        with pytest.raises(TypeError):
            float(v.d.view(np.ndarray))


def test_loss_and_parameters_of_the_tutorial_print_as_numbers():
    loss, x, y, a, b = linear()
    loss.forward()
    loss.backward()
    expected = np.mean((0.5 * np.arange(4) + 0.25 - 1.0) ** 2)
    assert float(loss.d) == pytest.approx(expected, rel=1e-6)
    assert f"{loss.d:.4f}" == f"{expected:.4f}"
    g_a = np.mean(2 * (0.5 * np.arange(4) + 0.25 - 1) * np.arange(4))
    shown = "a = {:.3f}, g = {:.3f}".format(a.d, a.g)  # noqa: UP032 - the tutorials' spelling
    assert shown == f"a = 0.500, g = {g_a:.3f}"


@pytest.mark.parametrize("shape", [(2,), (1, 2), (2, 2)])
def test_larger_arrays_still_refuse_to_become_one_number(shape):
    v = nn.Variable(shape)
    v.d = 1.0
    with pytest.raises(TypeError):
        float(v.d)
    with pytest.raises(TypeError):
        int(v.g)
    with pytest.raises(TypeError):
        f"{v.d:.3f}"
    assert f"{v.d}" == str(np.ones(shape, np.float32))  # no spec: printed as an array


def test_repr_and_str_look_like_a_plain_ndarray():
    v = nn.Variable((2, 2))
    v.d = [[1.0, 2.0], [3.0, 4.0]]  # (a list of floats: float64 from now on, as nnabla)
    assert repr(v.d) == "array([[1., 2.],\n       [3., 4.]])"
    assert str(v.d) == str(np.array([[1.0, 2.0], [3.0, 4.0]]))
    v.d = np.float32([[1.0, 2.0], [3.0, 4.0]])
    assert repr(v.d) == "array([[1., 2.],\n       [3., 4.]], dtype=float32)"
    one = nn.Variable((1, 1))
    one.d = 0.5
    assert repr(one.d) == "array([[0.5]], dtype=float32)"


def test_results_of_arithmetic_are_ordinary_arrays():
    v = nn.Variable((1, 1))
    v.d = 3.0
    assert isinstance(v.d, np.ndarray) and v.d.dtype == np.float32 and v.d.shape == (1, 1)
    np.testing.assert_array_equal(v.d * 2, [[6.0]])
    assert float(v.d + 1) == 4.0


# --- a live view ------------------------------------------------------------------------

def test_writes_through_d_reach_the_variable():
    loss, x, y, a, b = linear()
    view = x.d
    view[0, 0] = 5
    loss.forward()
    xs = np.array([5, 1, 2, 3], np.float64)
    assert float(loss.d) == pytest.approx(np.mean((0.5 * xs + 0.25 - 1) ** 2), rel=1e-6)
    a.d[0, 0] = 2.0  # a parameter too
    loss.forward()
    assert float(loss.d) == pytest.approx(np.mean((2 * xs + 0.25 - 1) ** 2), rel=1e-6)
    assert x.d is view and isinstance(view, array_data_type())


def test_writes_through_g_reach_the_solver():
    import symcompile.solvers as S

    loss, x, y, a, b = linear()
    solver = S.Sgd(lr=0.5)
    solver.set_parameters(nn.get_parameters())
    solver.zero_grad()
    a.g[...] = 2.0
    b.g[0, 0] = -4.0
    solver.update()
    assert float(a.d) == pytest.approx(0.5 - 1.0) and float(b.d) == pytest.approx(0.25 + 2.0)


def test_generated_code_gets_plain_ndarrays_from_the_runtime(monkeypatch):
    loss, x, y, a, b = linear()
    assert type(x.d) is array_data_type()
    loss.forward()
    module = loss._compiled.module
    seen = []
    for name in ("forward_saving", "backward"):
        real = getattr(module, name)

        def spy(*args, real=real):
            seen.extend(type(arg) for arg in args if isinstance(arg, np.ndarray))
            return real(*args)

        monkeypatch.setattr(module, name, spy)
    loss.forward()
    loss.backward()
    assert seen and set(seen) == {np.ndarray}


# --- bad assignments --------------------------------------------------------------------

@pytest.mark.parametrize("value, words", [
    (None, "None"),
    ("abc", "string"),
    (np.array(["1.5"]), "dtype <U3"),
    (np.array([1 + 2j]), "complex"),
    (np.array([1.0], dtype=object), "dtype object"),
    (1 + 2j, "complex"),
], ids=["None", "str", "str-array", "complex-array", "object-array", "complex"])
@pytest.mark.parametrize("field", ["d", "g"])
def test_assigning_what_is_not_real_numbers_is_a_clear_type_error(value, words, field):
    v = nn.Variable((1,), need_grad=True)
    v.name = "w"
    v.d = 3.0
    v.g = 4.0
    with pytest.raises(TypeError) as error:
        setattr(v, field, value)
    message = str(error.value)
    assert f"w.{field}" in message and words in message, message
    assert float(v.d) == 3.0 and float(v.g) == 4.0  # unchanged


def test_a_complex_assignment_never_silently_drops_the_imaginary_part():
    v = nn.Variable((2,))
    v.d = [1.0, 2.0]
    with pytest.raises(TypeError, match=r"\.real"):
        v.d = np.array([3 + 1j, 4 + 0j])
    np.testing.assert_array_equal(v.d, [1.0, 2.0])


@pytest.mark.parametrize("shape", [(2.5, 3), (2, 3.0), ("2", 3), (True, 2)])
def test_a_shape_with_a_dimension_that_is_not_an_int_is_refused(shape):
    with pytest.raises(TypeError, match="not an int"):
        nn.Variable(shape)


def test_numpy_integers_are_fine_dimensions():
    v = nn.Variable((np.int64(2), np.int32(3)))
    assert v.shape == (2, 3) and all(type(d) is int for d in v.shape)


def test_assigning_a_wrongly_shaped_array_names_both_shapes():
    v = nn.Variable((2, 3))
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(2, 3\)"):
        v.d = np.ones((3, 2))
    with pytest.raises(ValueError, match=r"\(4,\).*\(2, 3\)"):
        v.g = np.ones(4)


# --- nnabla's tutorial ------------------------------------------------------------------

TUTORIAL = textwrap.dedent("""
    import numpy as np
    import symcompile as nn
    import symcompile.functions as F
    import symcompile.initializer as I
    import symcompile.solvers as S

    np.random.seed(0)
    batch_size = 32
    x = nn.Variable((batch_size, 1))
    y_true = nn.Variable((batch_size, 1))
    a = nn.parameter.get_parameter_or_create(
        "a", (1, 1), initializer=I.UniformInitializer((0.5, 1.5)))
    b = nn.parameter.get_parameter_or_create(
        "b", (1, 1), initializer=I.UniformInitializer((0.5, 1.5)))
    y = F.add2(F.mul2(a, x), b)
    loss = F.mean(F.pow_scalar(F.sub2(y_true, y), 2))
    solver = S.Sgd(0.01)
    solver.set_parameters(nn.get_parameters())


    def show_result():
        print("a = {:.4f}, b = {:.4f}, loss = {:.6f}".format(
            float(a.d), float(b.d), float(loss.d)))


    for i in range(200):
        x.d = np.random.randn(*x.shape)
        y_true.d = 0.3 * x.d + 1.5 + 0.01 * np.random.randn(*x.shape)
        loss.forward()
        solver.zero_grad()
        loss.backward()
        solver.update()
        if i % 50 == 0:
            print(f"iteration {i}: loss {loss.d:.5f}")
    show_result()
    print("done")
""")


def test_the_tutorial_script_runs_to_the_end(tmp_path, capsys):
    import runpy

    script = tmp_path / "tutorial.py"
    script.write_text(TUTORIAL)
    runpy.run_path(str(script), run_name="__main__")
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:4]] == [
        "iteration 0", "iteration 50", "iteration 100", "iteration 150"]
    assert lines[-1] == "done"
    numbers = dict(part.split(" = ") for part in lines[-2].split(", "))
    assert float(numbers["a"]) == pytest.approx(0.3, abs=0.05)
    assert float(numbers["b"]) == pytest.approx(1.5, abs=0.05)
    assert 0 <= float(numbers["loss"]) < 0.01
