"""The nnabla-style loop on generated code: caching, recompiling, accumulation, solvers."""

from __future__ import annotations

import numpy as np
import pytest

import symcompile as nn
import symcompile.functions as F
import symcompile.solvers as S
from symcompile import compiler
from symcompile.runtime import cache
from symcompile.runtime import execution as runtime


def linreg(batch=8):
    x = nn.Variable((batch, 1))
    y = nn.Variable((batch, 1))
    a = nn.parameter.get_parameter_or_create("a", (1, 1))
    b = nn.parameter.get_parameter_or_create("b", (1, 1))
    loss = F.mean(F.squared_error(F.add2(F.mul2(a, x), b), y))
    rng = np.random.default_rng(0)
    x.d = rng.normal(size=(batch, 1))
    y.d = rng.normal(size=(batch, 1))
    a.d = 0.5
    b.d = -0.25
    return loss, x, y, a, b


def test_forward_backward_values():
    loss, x, y, a, b = linreg()
    loss.forward()
    r = 0.5 * x.d.astype(np.float64) - 0.25 - y.d
    np.testing.assert_allclose(loss.d, np.mean(r**2), rtol=1e-6)
    loss.backward()
    np.testing.assert_allclose(a.g, [[np.mean(2 * r * x.d)]], rtol=1e-5)
    np.testing.assert_allclose(b.g, [[np.mean(2 * r)]], rtol=1e-5)
    assert a.g.dtype == np.float32 and loss.d.dtype == np.float32


def test_backward_seed_scales_and_accumulates():
    loss, _, _, a, _ = linreg()
    loss.forward()
    loss.backward()
    one = a.g.copy()
    a.grad.zero()
    loss.backward(grad=3)
    np.testing.assert_allclose(a.g, 3 * one, rtol=1e-6)
    loss.backward(grad=1)
    np.testing.assert_allclose(a.g, 4 * one, rtol=1e-6)


def test_backward_without_forward_computes_what_it_needs():
    loss, _, _, a, _ = linreg()
    loss.backward()
    reference = a.g.copy()
    a.grad.zero()
    loss.forward()
    loss.backward()
    np.testing.assert_allclose(a.g, reference)


def test_non_scalar_output_is_seeded_with_ones():
    x = nn.Variable((3, 2), need_grad=True)
    y = F.mul_scalar(F.pow_scalar(x, 2), 0.5)
    x.d = np.arange(6).reshape(3, 2)
    y.forward()
    np.testing.assert_allclose(y.d, 0.5 * x.d**2)
    y.backward()
    np.testing.assert_allclose(x.g, x.d)
    x.grad.zero()
    y.backward(grad=np.full((3, 2), 2.0))
    np.testing.assert_allclose(x.g, 2 * x.d)


def test_leaf_gradients_only_for_need_grad():
    x = nn.Variable((4,), need_grad=False)
    w = nn.Variable((4,), need_grad=True)
    x.d, w.d = 1.0, 2.0
    loss = F.sum(F.mul2(x, w))
    loss.forward()
    loss.backward()
    np.testing.assert_allclose(w.g, x.d)
    np.testing.assert_allclose(x.g, 0)


def test_need_grad_false_on_an_intermediate_stops_the_gradient():
    w = nn.Variable((3,), need_grad=True)
    w.d = [1.0, 2.0, 3.0]
    h = F.mul2(w, w)
    h.need_grad = False
    loss = F.sum(F.add2(h, w))
    loss.forward()
    loss.backward()
    np.testing.assert_allclose(w.g, 1.0)  # only the direct path


def test_changing_the_graph_recompiles_and_need_grad_changes_are_seen():
    loss, x, y, a, b = linreg()
    loss.forward()
    first = loss._compiled.module
    other = F.mean(F.absolute_error(a, b)) if hasattr(F, "absolute_error") else F.sum(
        F.mul2(a, b))
    other.forward()
    assert other._compiled.module is not first
    a.need_grad = False
    loss.forward()
    assert loss._compiled.module is not first
    assert len(loss._compiled.module.GRADIENTS) == 1


def test_reading_an_intermediate_keeps_it_up_to_date():
    loss, x, y, a, b = linreg()
    pred = loss.parent.inputs[0].parent.inputs[0]  # a*x + b
    loss.forward()
    np.testing.assert_allclose(pred.d, 0.5 * x.d - 0.25, rtol=1e-6)
    a.d = 2.0
    loss.forward()
    # (x.d is float64, the dtype assigned; the graph computes from it as float32)
    np.testing.assert_allclose(pred.d, 2.0 * x.d.astype(np.float32) - 0.25, rtol=1e-6)
    assert "a*x + b" not in loss._compiled.module.forward.__doc__  # sanity: module reloaded
    assert len(loss._compiled.module.OUTPUTS) == 2


def test_modules_are_cached_in_memory_and_on_disk(monkeypatch):
    loss, *_ = linreg()
    loss.forward()
    path = loss._compiled.module.__file__
    assert str(cache.cache_dir()) in path

    def refuse(*args, **kwargs):
        raise AssertionError("compiled again although the module was cached")

    nn.clear_parameters()
    again, *_ = linreg()
    monkeypatch.setattr(compiler, "generate", refuse)
    again.forward()  # in-process hit
    assert again._compiled.module.__file__ == path
    runtime._modules.clear()
    nn.clear_parameters()
    third, *_ = linreg()
    third.forward()  # on-disk hit
    assert third._compiled.module.__file__ == path


def test_a_cached_module_for_another_graph_is_never_used(monkeypatch):
    loss, *_ = linreg()
    loss.forward()
    path = loss._compiled.module.__file__
    runtime._modules.clear()
    # Corrupt the cache: the file now claims another graph.
    text = open(path).read().replace("GRAPH_HASH = '", "GRAPH_HASH = 'x")
    open(path, "w").write(text)
    nn.clear_parameters()
    again, *_ = linreg()
    again.forward()
    assert "GRAPH_HASH = 'x" not in open(again._compiled.module.__file__).read()


def test_sgd_update_is_exact_and_skips_untouched_parameters():
    loss, _, _, a, b = linreg()
    solver = S.Sgd(lr=0.1)
    solver.set_parameters(nn.get_parameters())
    loss.forward()
    solver.zero_grad()
    loss.backward()
    a0, b0, ga, gb = a.d.copy(), b.d.copy(), a.g.copy(), b.g.copy()
    solver.update()
    np.testing.assert_array_equal(a.d, a0 - np.float32(0.1) * ga)
    np.testing.assert_array_equal(b.d, b0 - np.float32(0.1) * gb)
    solver.zero_grad()
    a1 = a.d.copy()
    solver.update()  # no backward since zero_grad: nothing moves
    np.testing.assert_array_equal(a.d, a1)
    assert a.grad.zeroing


def test_solver_learning_rate_and_weight_decay():
    loss, _, _, a, b = linreg()
    solver = S.Sgd()
    assert solver.learning_rate() == pytest.approx(1e-3)
    solver.set_learning_rate(0.5)
    assert solver.learning_rate() == 0.5
    solver.set_parameters(nn.get_parameters())
    loss.forward()
    solver.zero_grad()
    loss.backward()
    g = a.g.copy()
    solver.weight_decay(0.1)
    np.testing.assert_allclose(a.g, g + np.float32(0.1) * a.d)
    assert list(solver.get_parameters()) == ["a", "b"]
    solver.remove_parameters(["b"])
    assert list(solver.get_parameters()) == ["a"]
    solver.clear_parameters()
    assert not solver.get_parameters()


def test_variable_data_semantics():
    x = nn.Variable((2, 3), need_grad=True)
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and x.need_grad
    assert nn.Variable((2,)).need_grad is False
    x.d = 1.5
    assert (x.d == 1.5).all() and x.d.dtype == np.float32
    d = x.d
    x.d = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert d is x.d and d[1, 2] == 5  # live array, updated in place
    x.d = np.arange(6).reshape(2, 3)  # an int64 array: its dtype becomes x's (nnabla's)
    assert x.d.dtype == np.int64 and x.d[1, 2] == 5
    x.g = 2
    assert (x.g == 2).all()
    x.g = 0
    assert x.grad.zeroing and (x.g == 0).all() and not x.grad.zeroing
    v = nn.Variable.from_numpy_array(np.ones((2, 2)), need_grad=True)
    assert v.d.dtype == np.float64 and v.need_grad  # the array's dtype kept, as nnabla
    u = x.get_unlinked_variable()
    u.d[0, 0] = 42
    assert x.d[0, 0] == 42 and u.parent is None


def test_parameter_registry():
    with nn.parameter_scope("net"):
        with nn.parameter_scope("fc"):
            w = nn.parameter.get_parameter_or_create("W", (2, 2))
        nn.parameter.get_parameter_or_create("b", (2,), need_grad=False)
    nn.parameter.get_parameter_or_create("top/c", (1,))
    assert list(nn.get_parameters()) == ["net/fc/W", "top/c"]
    assert list(nn.get_parameters(grad_only=False)) == ["net/fc/W", "net/b", "top/c"]
    again = nn.parameter.get_parameter_or_create("net/fc/W", (2, 2))
    again.d[0, 0] = 7
    assert w.d[0, 0] == 7 and again.name == "W"
    with nn.parameter_scope("net"):
        assert list(nn.get_parameters(grad_only=False)) == ["fc/W", "b"]
        nn.clear_parameters()
    assert list(nn.get_parameters(grad_only=False)) == ["top/c"]


def test_shared_parameter_views_are_one_leaf():
    x = nn.Variable((3,))
    x.d = [1, 2, 3]
    w1 = nn.parameter.get_parameter_or_create("w", (3,))
    w2 = nn.parameter.get_parameter_or_create("w", (3,))
    w1.d = 2.0
    loss = F.sum(F.add2(F.mul2(w1, x), F.mul2(w2, x)))
    loss.forward()
    loss.backward()
    np.testing.assert_allclose(loss.d, 24.0)
    np.testing.assert_allclose(w1.g, 2 * x.d)
    assert len(loss._compiled.module.PARAMETERS) == 1


def test_load_binds_a_checked_in_module_and_refuses_another_graph(tmp_path):
    from conftest import ROOT

    from symcompile.tools.model_file import load_loss

    loss = load_loss(ROOT / "examples" / "linear_regression.py")
    module = nn.load(ROOT / "generated" / "linear_regression.py", loss)
    loss.forward()
    assert loss._compiled.module is module
    nn.clear_parameters()
    x = nn.Variable((32, 1))
    other = F.mean(F.pow_scalar(F.add2(x, nn.parameter.get_parameter_or_create("a", (1, 1))), 2))
    with pytest.raises(nn.GraphMismatchError, match=r"generated for a graph with hash .* "
                                                    r"Regenerate"):
        nn.load(ROOT / "generated" / "linear_regression.py", other)


def test_compile_binds_its_module_to_the_loss(tmp_path):
    loss, *_ = linreg()
    result = nn.compile(loss, name="lin", output_dir=tmp_path)
    loss.forward()
    assert loss._compiled.module is result.module
