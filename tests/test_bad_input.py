"""Mistakes are reported when the graph is built or compiled, naming what is wrong."""

from __future__ import annotations

import ast

import numpy as np
import pytest
from gradcheck import check_gradients, compile_f64

import symcompile as nn
import symcompile.functions as F


def test_non_broadcastable_shapes_name_the_op_and_both_shapes():
    x = nn.Variable((2, 3))
    y = nn.Variable((3, 2))
    with pytest.raises(ValueError) as err:
        F.add2(x, y)
    message = str(err.value)
    assert "F.add2" in message and "(2, 3)" in message and "(3, 2)" in message


@pytest.mark.parametrize("op", ["sub2", "mul2", "div2", "pow2", "squared_error"])
def test_every_binary_op_checks_shapes(op):
    with pytest.raises(ValueError, match=rf"F\.{op}.*\(4, 5\).*\(4, 6\)"):
        getattr(F, op)(nn.Variable((4, 5)), nn.Variable((4, 6)))


def test_operators_check_shapes_too():
    with pytest.raises(ValueError, match=r"F\.mul2"):
        nn.Variable((2, 3)) * nn.Variable((2, 4))


def test_different_ranks_are_refused_with_a_reshape_hint():
    with pytest.raises(ValueError, match=r"F\.add2.*\(32, 1\).*\(1,\).*reshape the \(1,\) "
                                         r"input to \(1, 1\)"):
        F.add2(nn.Variable((32, 1)), nn.Variable((1,)))


def test_axis_out_of_range():
    with pytest.raises(ValueError, match=r"F\.sum: axis 3 is out of range.*\(2, 3, 4\)"):
        F.sum(nn.Variable((2, 3, 4)), axis=3)
    with pytest.raises(ValueError, match=r"F\.mean: axis -4"):
        F.mean(nn.Variable((2, 3, 4)), axis=-4)
    with pytest.raises(ValueError, match="same axis twice"):
        F.sum(nn.Variable((2, 3)), axis=(1, -1))


def test_non_variable_inputs():
    with pytest.raises(TypeError, match=r"F\.add2: input 1 must be a Variable.*from_numpy_array"):
        F.add2(nn.Variable((2,)), np.ones(2))
    with pytest.raises(TypeError, match=r"F\.add_scalar: val must be a real number"):
        F.add_scalar(nn.Variable((2,)), "1")


def test_conflicting_parameter_shape():
    nn.parameter.get_parameter_or_create("w", (2, 3))
    with pytest.raises(ValueError, match=r"'w'.*\(2, 3\).*\(3, 2\).*clear_parameters"):
        nn.parameter.get_parameter_or_create("w", (3, 2))
    with nn.parameter_scope("layer"):
        nn.parameter.get_parameter_or_create("w", (4,))
        with pytest.raises(ValueError, match=r"'layer/w'"):
            nn.parameter.get_parameter_or_create("w", (5,))


def test_parameter_without_shape():
    with pytest.raises(ValueError, match="shape"):
        nn.parameter.get_parameter_or_create("nothing")


def test_assigning_a_wrongly_shaped_array():
    x = nn.Variable((2, 3))
    with pytest.raises(ValueError, match=r"\(4,\).*\(2, 3\)"):
        x.d = np.ones(4)


def test_compiling_a_leaf_is_refused(tmp_path):
    with pytest.raises(ValueError, match="leaf"):
        nn.compile(nn.Variable((2,)), output_dir=tmp_path)


@pytest.mark.parametrize("name", ["a; import os", "1x", "class", "a\nb = 1", 'q"""q',
                                  "α/β", "../../etc/passwd", "g_a", "lr", "numpy"])
def test_hostile_parameter_names_compile_to_safe_code(name, tmp_path):
    x = nn.Variable((4, 1))
    x.name = "x"
    w = nn.parameter.get_parameter_or_create(name, (1, 1))
    a = nn.parameter.get_parameter_or_create("a", (1, 1))
    loss = F.mean(F.pow_scalar(F.add2(F.mul2(w, x), a), 2))
    assert name in nn.get_parameters() or "/" in name
    result = compile_f64(loss, tmp_path, name="hostile")
    tree = ast.parse(result.source)
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    # numpy, and os for atomic checkpoint writes
    assert [alias.name for n in imports for alias in n.names] == ["os", "numpy"]
    assert list(result.module.PARAMETERS) == [k for k in nn.get_parameters()]
    for spec in result.module.PARAMETERS.values():
        assert spec["argument"].isidentifier() and spec["argument"].isascii()
    assert list(tmp_path.glob("gen/*.py")) == [tmp_path / "gen" / "hostile.py"]
    values = {"x": np.linspace(-1, 1, 4).reshape(4, 1), name: [[0.5]], "a": [[0.25]]}
    check_gradients(result.module, values)


def test_hostile_module_name_stays_inside_the_output_directory(tmp_path):
    loss = F.sum(nn.Variable((2,), need_grad=True))
    result = nn.compile(loss, name="../../evil name", output_dir=tmp_path / "out")
    assert result.path.parent == tmp_path / "out"
    assert result.path.name == "evil_name.py"


def test_loading_a_module_for_another_graph_is_refused(tmp_path):
    x = nn.Variable((3,), need_grad=True)
    first = nn.compile(F.sum(F.mul2(x, x)), name="m", output_dir=tmp_path)
    nn.clear_parameters()
    other = F.sum(F.add2(x, x))
    from symcompile.frontend.capture import capture
    from symcompile.runtime.cache import load_module

    with pytest.raises(nn.GraphMismatchError, match="graph changed|Regenerate"):
        load_module(first.path, capture(other).graph.fingerprint())
