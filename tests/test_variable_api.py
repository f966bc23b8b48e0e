"""The Variable API around graphs: function_references, equality, reset_shape, rewire_on,
nn.no_grad and nnabla.function (nnabla's numbers for the same calls are checked by
tests/differential/variable_api.py)."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import numeric_gradient

import symcompile as nn
import symcompile.function
import symcompile.functions as F
import symcompile.parametric_functions as PF


@pytest.fixture(autouse=True)
def _fresh_parameters():
    nn.clear_parameters()
    yield
    nn.clear_parameters()


def test_function_references_are_the_live_readers_latest_first():
    x = nn.Variable((2, 3))
    y = F.tanh(x)
    z = F.sigmoid(x)
    assert [f.info.type_name for f in x.function_references] == ["Sigmoid", "Tanh"]
    assert all(isinstance(f, symcompile.function.Function) for f in x.function_references)
    assert z.parent.inputs[0] is x and z.parent.outputs == [z]
    del z  # its function goes with it, at once (no reference cycle to wait for)
    assert [f.name for f in x.function_references] == ["Tanh"]
    assert y.function_references == []


def test_unlinked_variables_equal_the_original():
    x = nn.Variable((2,))
    u = x.get_unlinked_variable()
    assert u == x and hash(u) == hash(x) and len({x, u}) == 1
    assert x != nn.Variable((2,)) and x != "x"
    y = F.tanh(x)
    assert y != x and y.parent.inputs[0] == u


def test_reset_shape_keeps_the_values_of_the_same_size():
    x = nn.Variable((2, 3))
    x.d = np.arange(6).reshape(2, 3)
    x.reset_shape((3, 2))
    assert x.shape == (3, 2) and x.size == 6
    np.testing.assert_array_equal(x.d, np.arange(6).reshape(3, 2))


def test_reset_shape_of_another_size_needs_force_and_clears():
    x = nn.Variable((2, 3))
    x.d = 1.0
    with pytest.raises(ValueError, match=r"6 elements \(2, 3\).*\(4, 4\) has 16.*force=True"):
        x.reset_shape((4, 4))
    assert x.shape == (2, 3)
    x.reset_shape((4, 4), force=True)
    np.testing.assert_array_equal(x.d, np.zeros((4, 4)))


def test_graphs_built_on_a_resized_leaf_take_its_new_shape(tmp_path):
    """nnabla's pattern for another batch size: resize the input, forward again."""
    x = nn.Variable((2, 3), need_grad=True)
    w = nn.parameter.get_parameter_or_create("w", (3, 4), np.full((3, 4), 0.5))
    y = F.sum(F.tanh(F.affine(x, w)), axis=1)
    x.d = np.ones((2, 3))
    y.forward()
    x.reset_shape((5, 3), force=True)
    rng = np.random.default_rng(0)
    values = rng.standard_normal((5, 3))
    x.d = values
    y.forward()
    assert y.shape == (5,)
    np.testing.assert_allclose(y.d, np.tanh(values @ np.full((3, 4), 0.5)).sum(axis=1),
                               rtol=1e-5)
    x.grad.zero()
    y.backward()

    def f(v):
        return float(np.tanh(v @ np.full((3, 4), 0.5)).sum())

    np.testing.assert_allclose(x.g, numeric_gradient(f, [values], 0), rtol=1e-3, atol=1e-4)


def test_reset_shape_of_an_intermediate_is_refused():
    y = F.tanh(nn.Variable((2, 3)))
    with pytest.raises(ValueError, match="output of Tanh.*F.reshape"):
        y.reset_shape((6,))


def test_rewire_on_puts_a_graph_on_top_of_another():
    xa = nn.Variable((2, 3), need_grad=True)
    ya = F.sum(PF.affine(xa, 2, name="a") ** 2)
    xb = nn.Variable((2, 4), need_grad=True)
    yb = F.tanh(PF.affine(xb, 3, name="b"))
    xa.rewire_on(yb)
    assert yb.parent is None and xa.parent.name == "Tanh" and xa.parent.outputs == [xa]
    xb.d = np.random.default_rng(1).standard_normal((2, 4))
    ya.forward()
    params = {k: v.d.copy() for k, v in nn.get_parameters().items()}

    def composed(x):
        h = np.tanh(x @ params["b/affine/W"] + params["b/affine/b"])
        return float(np.sum((h @ params["a/affine/W"] + params["a/affine/b"]) ** 2))

    np.testing.assert_allclose(ya.d, composed(xb.d.astype(np.float64)), rtol=1e-5)
    xb.grad.zero()
    ya.backward()
    np.testing.assert_allclose(xb.g, numeric_gradient(composed, [xb.d], 0),
                               rtol=1e-3, atol=1e-3)


def test_rewire_on_another_shape_is_refused():
    x = nn.Variable((3,))
    with pytest.raises(ValueError, match=r"shape \(3,\) but .* shape \(2, 2\)"):
        x.rewire_on(F.tanh(nn.Variable((2, 2))))
    with pytest.raises(TypeError, match="expected a Variable"):
        x.rewire_on(np.zeros(3))


def test_no_grad_cuts_dynamic_graphs_only():
    x = nn.Variable((2,), need_grad=True)
    x.d = [0.5, -1.0]
    with nn.no_grad():
        static = F.tanh(x)
    assert static.need_grad and static.parent is not None  # as nnabla: built as usual
    with nn.auto_forward(), nn.no_grad():
        dynamic = F.tanh(x)
    assert not dynamic.need_grad and dynamic.parent is None
    np.testing.assert_allclose(dynamic.d, np.tanh([0.5, -1.0]), rtol=1e-6)
    with nn.auto_forward():
        kept = F.tanh(x)
    assert kept.parent is not None  # the flag is restored on leaving
    with nn.no_grad(False), nn.auto_forward():
        assert F.tanh(x).parent is not None
