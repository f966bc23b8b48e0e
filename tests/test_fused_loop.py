"""The nnabla loop's fast path (runtime.deferred): backward() deferred until update() or
until anything touches the leaves, the update fused with it in one generated call.

The fast path must give the bits of the plain order (backward() writing every `.g`, then
update() per parameter), and whatever a script does between backward() and update() must
see what it would have seen without it.
"""

import contextlib

import numpy as np
import pytest

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF
import symcompile.solvers as S
from symcompile.runtime import deferred, execution


@contextlib.contextmanager
def _order(monkeypatch, eager: bool):
    """The loop's order: the fast path, or (`eager`) backward() run when it is called."""
    with monkeypatch.context() as patch:
        if eager:
            patch.setattr(deferred, "defer", lambda *args: False)
        yield


def _mlp(batch=8, seed=0):
    nn.clear_parameters()
    rng = np.random.default_rng(seed)
    x = nn.Variable((batch, 12))
    t = nn.Variable((batch, 1))
    h = F.tanh(PF.affine(x, 16, name="l1", rng=np.random.RandomState(seed)))
    y = PF.affine(h, 5, name="l2", rng=np.random.RandomState(seed + 1))
    loss = F.mean(F.softmax_cross_entropy(y, t))
    batches = [(rng.standard_normal((batch, 12)).astype(np.float32),
                rng.integers(0, 5, (batch, 1))) for _ in range(4)]
    return x, t, loss, batches


def _train(solver_class, eager, monkeypatch, steps=6, decay=None, **options):
    """Parameters after `steps` of the nnabla loop, with the fast path or without it (and
    with solver.weight_decay(decay) before each update, as nnabla's examples do)."""
    with _order(monkeypatch, eager):
        x, t, loss, batches = _mlp()
        solver = solver_class(**options)
        solver.set_parameters(nn.get_parameters())
        for i in range(steps):
            x.d, t.d = batches[i % len(batches)]
            loss.forward()
            solver.zero_grad()
            loss.backward()
            if decay is not None:
                solver.weight_decay(decay)
            solver.update()
        return {k: v.d.copy() for k, v in nn.get_parameters().items()}


@pytest.mark.parametrize("decay", [None, 0.05])
@pytest.mark.parametrize("solver_class, options", [
    (S.Sgd, {"lr": 0.1}), (S.Momentum, {"lr": 0.1, "momentum": 0.9}), (S.Adam, {}),
    (S.AdamW, {"wd": 0.01}),
])
def test_the_fast_path_gives_the_bits_of_backward_then_update(solver_class, options, decay,
                                                              monkeypatch):
    fast = _train(solver_class, False, monkeypatch, decay=decay, **options)
    plain = _train(solver_class, True, monkeypatch, decay=decay, **options)
    assert fast.keys() == plain.keys()
    for key in fast:
        np.testing.assert_array_equal(fast[key], plain[key], err_msg=key)


@pytest.mark.parametrize("decay", [False, True])
@pytest.mark.parametrize("solver_class, first", [(S.Sgd, True), (S.Adam, False),
                                                  (S.Momentum, False), (S.AdamW, False)])
def test_the_standard_loop_runs_one_fused_backward_and_update(solver_class, first, decay,
                                                              monkeypatch):
    """Sgd's at once (the runtime compiles graphs for it); another solver's from its second
    update on, once the graph has been compiled for it; with a solver.weight_decay()
    between backward() and update() too (nnabla's examples call it every step)."""
    x, t, loss, batches = _mlp()
    solver = solver_class()
    solver.set_parameters(nn.get_parameters())
    calls = []
    real = execution.fused_update

    def spy(*args, **kwargs):
        calls.append(real(*args, **kwargs))
        return calls[-1]

    monkeypatch.setattr(execution, "fused_update", spy)
    for x_value, t_value in batches:
        x.d, t.d = x_value, t_value
        loss.forward()
        solver.zero_grad()
        loss.backward()
        if decay:
            solver.weight_decay(1e-4)
        assert deferred.current() is not None
        solver.update()
        assert deferred.current() is None
    assert calls == [first] + [True] * (len(batches) - 1)
    rule = loss._compiled.module.SOLVER
    assert rule == solver.rule and hasattr(loss._compiled.module, f"{rule}_backward_update")


def _one_step(edit, monkeypatch, eager=False):
    """Parameters and gradients after one loop step with `edit(x, t, params, solver)`
    run between backward() and update()."""
    with _order(monkeypatch, eager):
        x, t, loss, batches = _mlp()
        solver = S.Sgd(lr=0.5)
        params = nn.get_parameters()
        solver.set_parameters(params)
        x.d, t.d = batches[0]
        loss.forward()
        solver.zero_grad()
        loss.backward()
        edit(x, t, params, solver)
        solver.update()
        return ({k: v.d.copy() for k, v in params.items()},
                {k: v.g.copy() for k, v in params.items()})


def _nothing(x, t, params, solver):
    pass  # the fast path: the gradients, read after update(), are backward()'s


def _set_gradient(x, t, params, solver):
    params["l1/affine/W"].g = 15  # the tutorial's edit


def _write_input(x, t, params, solver):
    x.d = np.zeros(x.shape, np.float32)  # the next batch, before the update


def _write_input_in_place(x, t, params, solver):
    x.d[...] = 3  # through a view taken after backward()


def _scale_and_decay(x, t, params, solver):
    solver.weight_decay(0.01)
    solver.scale_grad(0.5)


def _decay(x, t, params, solver):
    solver.weight_decay(0.01)  # (the fast path: g += 0.01*w inside the fused call)


def _decay_twice(x, t, params, solver):
    solver.weight_decay(0.01)
    solver.weight_decay(0.02)


def _decay_then_read_gradient(x, t, params, solver):
    solver.weight_decay(0.01)
    assert np.abs(params["l1/affine/W"].g).sum() > 0


def _decay_then_edit_weight(x, t, params, solver):
    solver.weight_decay(0.01)
    params["l2/affine/W"].d *= 2  # (after the decay read the weight: g has the old one)


def _read_gradient(x, t, params, solver):
    assert np.abs(params["l2/affine/W"].g).sum() > 0


def _edit_weight(x, t, params, solver):
    params["l2/affine/W"].d *= 2  # the update then starts from the doubled weight


def _freeze(x, t, params, solver):
    params["l1/affine/b"].need_grad = False


@pytest.mark.parametrize("edit", [_nothing, _set_gradient, _write_input, _write_input_in_place,
                                  _scale_and_decay, _decay, _decay_twice,
                                  _decay_then_read_gradient, _decay_then_edit_weight,
                                  _read_gradient, _edit_weight, _freeze])
def test_whatever_runs_between_backward_and_update_sees_the_eager_state(edit, monkeypatch):
    fast_params, fast_grads = _one_step(edit, monkeypatch)
    plain_params, plain_grads = _one_step(edit, monkeypatch, eager=True)
    for key in fast_params:
        np.testing.assert_array_equal(fast_params[key], plain_params[key], err_msg=key)
        np.testing.assert_array_equal(fast_grads[key], plain_grads[key], err_msg=key)


def test_a_second_backward_accumulates_before_the_update(monkeypatch):
    def twice(eager):
        with _order(monkeypatch, eager):
            x, t, loss, batches = _mlp()
            solver = S.Sgd(lr=0.5)
            solver.set_parameters(nn.get_parameters())
            x.d, t.d = batches[0]
            loss.forward()
            solver.zero_grad()
            loss.backward()
            loss.backward()
            solver.update()
            return {k: (v.d.copy(), v.g.copy()) for k, v in nn.get_parameters().items()}

    fast, plain = twice(False), twice(True)
    for key in fast:
        for a, b in zip(fast[key], plain[key], strict=True):
            np.testing.assert_array_equal(a, b, err_msg=key)
    x, t, loss, batches = _mlp()
    x.d, t.d = batches[0]
    loss.forward()
    loss.backward()
    once = nn.get_parameters()["l1/affine/W"].g.copy()
    np.testing.assert_allclose(fast["l1/affine/W"][1], 2 * once, rtol=1e-6)


def test_zero_grad_after_a_fast_update_drops_the_gradients_not_yet_written():
    x, t, loss, batches = _mlp()
    solver = S.Sgd(lr=0.5)
    params = nn.get_parameters()
    solver.set_parameters(params)
    x.d, t.d = batches[0]
    loss.forward()
    solver.zero_grad()
    loss.backward()
    solver.update()
    assert all(isinstance(v._storage.pending, deferred.ComputedGradients)
               for v in params.values())
    solver.zero_grad()
    assert all(v._storage.pending is None and not v.g.any() for v in params.values())


def test_a_view_held_across_backward_keeps_the_eager_order():
    x, t, loss, batches = _mlp()
    solver = S.Sgd(lr=0.5)
    params = nn.get_parameters()
    solver.set_parameters(params)
    held_input = x.d  # a view the Storage cannot watch
    held_gradient = params["l1/affine/W"].g
    x.d, t.d = batches[0]
    loss.forward()
    solver.zero_grad()
    loss.backward()
    assert deferred.current() is None  # not deferred: someone could look
    assert np.abs(held_gradient).sum() > 0  # the gradient is there at once
    before = {k: v.d.copy() for k, v in params.items()}
    grads = {k: v.g.copy() for k, v in params.items()}
    held_input[...] = 7  # too late to change this step's gradient
    solver.update()
    for key in params:
        np.testing.assert_array_equal(params[key].d, before[key] - np.float32(0.5) * grads[key])


def test_another_graph_between_backward_and_update_sees_the_eager_state(monkeypatch):
    def run(eager):
        with _order(monkeypatch, eager):
            x, t, loss, batches = _mlp()
            probe = F.sum(nn.get_parameters()["l2/affine/W"] * 2)
            solver = S.Sgd(lr=0.5)
            solver.set_parameters(nn.get_parameters())
            x.d, t.d = batches[0]
            loss.forward()
            solver.zero_grad()
            loss.backward()
            probe.forward()
            probe.backward()  # adds 2 to l2/affine/W's gradient
            solver.update()
            return {k: v.d.copy() for k, v in nn.get_parameters().items()}

    fast, plain = run(False), run(True)
    for key in fast:
        np.testing.assert_array_equal(fast[key], plain[key], err_msg=key)


def test_a_fused_update_refused_at_its_entry_leaves_the_gradients_as_backward_wrote_them(
        monkeypatch):
    x, t, loss, batches = _mlp()
    solver = S.Momentum(lr=0.1)
    params = nn.get_parameters()
    solver.set_parameters(params)
    for x_value, t_value in batches[:2]:  # (the second update runs the fused call)
        x.d, t.d = x_value, t_value
        loss.forward()
        solver.zero_grad()
        loss.backward()
        solver.update()
    state = solver.get_states()["l1/affine/W"].pstate["m"]
    state._storage.reset_shape((3, 3))  # a state the module refuses by its shape
    loss.forward()
    before = {k: v.d.copy() for k, v in params.items()}  # (before backward: reading
    solver.zero_grad()                                    # them after it would run it)
    loss.backward()
    assert deferred.current() is not None
    with pytest.raises(ValueError, match="momentum_backward_update"):
        solver.update()
    written = {k: v.g.copy() for k, v in params.items()}
    with _order(monkeypatch, eager=True):
        solver.zero_grad()
        loss.backward()
    for key, value in params.items():
        np.testing.assert_array_equal(value.d, before[key], err_msg=key)  # not updated
        np.testing.assert_array_equal(written[key], value.g, err_msg=key)


@pytest.mark.parametrize("solver_class", [S.Sgd, S.Adam])
def test_the_loop_runs_the_unchecked_body_after_forward_saving_checked(solver_class,
                                                                       monkeypatch):
    """update() calls the module's `_<rule>_backward_update`, not the checked function:
    forward_saving() has just checked the same arrays (class labels included)."""
    x, t, loss, batches = _mlp()
    solver = solver_class()
    solver.set_parameters(nn.get_parameters())

    def step(x_value, t_value):
        x.d, t.d = x_value, t_value
        loss.forward()
        solver.zero_grad()
        loss.backward()
        solver.update()

    for x_value, t_value in batches[:2]:  # (Adam's graph is compiled for it at the first)
        step(x_value, t_value)
    module, rule = loss._compiled.module, solver.rule
    body, calls = getattr(module, f"_{rule}_backward_update"), []

    def refuse(*args, **kwargs):
        raise AssertionError("the checked function ran")

    def count(*args, **kwargs):
        calls.append(1)
        return body(*args, **kwargs)

    monkeypatch.setattr(module, f"{rule}_backward_update", refuse)
    monkeypatch.setattr(module, f"_{rule}_backward_update", count)
    loss._compiled.fused_plans.clear()
    for x_value, t_value in batches[2:]:
        step(x_value, t_value)
    assert len(calls) == len(batches) - 2


def test_a_read_only_parameter_goes_to_the_checked_function_which_refuses_it():
    x, t, loss, batches = _mlp()
    solver = S.Sgd(lr=0.1)
    params = nn.get_parameters()
    solver.set_parameters(params)
    for x_value, t_value in batches[:2]:
        x.d, t.d = x_value, t_value
        loss.forward()
        solver.zero_grad()
        loss.backward()
        solver.update()
    params["l2/affine/W"]._storage._data.flags.writeable = False  # (a read-only buffer)
    loss.forward()
    before = {k: v.d.copy() for k, v in params.items()}
    solver.zero_grad()
    loss.backward()
    assert deferred.current() is not None
    with pytest.raises(ValueError, match="sgd_backward_update.*read-only"):
        solver.update()
    for key, value in params.items():
        np.testing.assert_array_equal(value.d, before[key], err_msg=key)  # none updated


@pytest.mark.parametrize("hold", [
    lambda x, params: x.d,  # the cached view of the values
    lambda x, params: x.d[:1],  # a slice of it
    lambda x, params: np.asarray(params["l1/affine/W"].d),  # the view, as a plain array
    lambda x, params: params["l2/affine/b"].g,  # a gradient
    lambda x, params: params["l1/affine/b"].data.data,  # through NdArray
])
def test_any_array_of_a_leaf_held_outside_prevents_the_deferral(hold):
    """(The reference counts `runtime.deferred` compares are calibrated through the very
    check that reads them: one reference too many, however taken, is seen.)"""
    x, t, loss, batches = _mlp()
    solver = S.Sgd(lr=0.5)
    params = nn.get_parameters()
    solver.set_parameters(params)
    for step in range(2):
        held = hold(x, params) if step else None
        x.d, t.d = batches[step]
        loss.forward()
        solver.zero_grad()
        loss.backward()
        assert (deferred.current() is None) == (held is not None)
        solver.update()
        del held


def test_assigning_an_array_of_the_same_dtype_and_shape_copies_into_the_buffer():
    """nnabla's `x.d = array` copies: a view taken before sees the new values, and the
    array assigned stays the caller's (neither sees later writes to the other)."""
    x = nn.Variable((2, 3))
    view = x.d
    buffer = x._storage._data
    value = np.arange(6, dtype=np.float32).reshape(2, 3)
    x.d = value
    assert x._storage._data is buffer and not np.shares_memory(buffer, value)
    np.testing.assert_array_equal(view, value)
    value[...] = -1
    assert x.d.min() == 0
    x.d[...] = 7
    assert value.max() == -1
    x.d = np.ones((2, 3), np.float64)  # another dtype: it becomes the current one
    assert x.d.dtype == np.float64 and x._storage._data is not buffer
    with pytest.raises(TypeError, match="complex"):
        x.d = np.ones((2, 3), np.complex64)
