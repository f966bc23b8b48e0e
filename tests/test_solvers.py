"""Every solver against an independent NumPy implementation of nnabla's formulas.

tests/solver_reference.py was written separately from symcompile's update rules and
checked bit for bit against nnabla 1.39; here both run the same updates on random
gradients, with weight decay toggled and gradient clipping applied, and must agree. With
SYMCOMPILE_NNABLA_PYTHON pointing at a Python that has nnabla, every configuration is
also run on nnabla itself; without it that test skips.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess

import numpy as np
import pytest
import solver_reference as R

import symcompile as nn
import symcompile.solvers as S

SHAPES = [(2, 3, 4), (3, 4, 1, 2), ()]

CONFIGS = [
    ("Sgd", {"lr": 0.1}),
    ("Momentum", {"lr": 0.1, "momentum": 0.8}),
    ("Nesterov", {"lr": 0.1, "momentum": 0.8}),
    ("Adagrad", {"lr": 0.1}),
    ("Adadelta", {}),
    ("Adadelta", {"lr": 0.5, "decay": 0.9}),
    ("RMSprop", {"lr": 0.01}),
    ("RMSpropGraves", {"lr": 0.01}),
    ("Adam", {}),
    ("Adam", {"alpha": 0.01, "beta1": 0.8, "beta2": 0.9}),
    ("AdamW", {"alpha": 0.01, "wd": 0.01}),
    ("SgdW", {"lr": 0.1, "wd": 0.01}),
    ("Adamax", {"alpha": 0.01}),
    ("AMSGRAD", {"alpha": 0.01}),
    ("AMSGRAD", {"alpha": 0.01, "bias_correction": True}),
    ("AdaBound", {"alpha": 0.01, "final_lr": 0.05, "gamma": 0.1}),
    ("AMSBound", {"alpha": 0.01, "final_lr": 0.05, "gamma": 0.1}),
    ("AMSBound", {"alpha": 0.01, "final_lr": 0.05, "gamma": 0.1, "bias_correction": True}),
    ("AdaBound", {"alpha": 0.01, "gamma": 0.0}),  # no upper bound, as nnabla computes it
    ("AMSBound", {"alpha": 0.01, "gamma": 0.0, "bias_correction": True}),
    ("AdaBelief", {"alpha": 0.01}),
    ("AdaBelief", {"alpha": 0.01, "wd": 0.1, "weight_decouple": True}),
    ("AdaBelief", {"alpha": 0.01, "wd": 0.1, "weight_decouple": True, "fixed_decay": True,
                   "amsgrad": True}),
    ("AdaBelief", {"alpha": 0.01, "rectify": True, "amsgrad": True}),
    ("Lamb", {"eta": 0.01}),
    ("Lamb", {"eta": 0.01, "bias_correction": True, "gamma_l": 0.5, "gamma_u": 2.0}),
    ("Lars", {"lr": 0.1}),
    ("Lion", {"lr": 0.01}),
]


def ids(config):
    name, kwargs = config
    return name + ("-" + "-".join(f"{k}={v}" for k, v in kwargs.items()) if kwargs else "")


def test_every_nnabla_solver_is_covered():
    assert set(S.SOLVERS) == set(R.SOLVERS)
    assert {name for name, _ in CONFIGS} == set(S.SOLVERS)


@pytest.mark.parametrize("config", CONFIGS, ids=[ids(c) for c in CONFIGS])
def test_updates_match_the_reference(config):
    name, kwargs = config
    rng = np.random.default_rng(7)
    start = {f"p{i}": np.array(rng.normal(size=shape), dtype=np.float32) for i, shape in
             enumerate(SHAPES)}
    params = {key: nn.parameter.get_parameter_or_create(key, value.shape,
                                                        initializer=value.copy())
              for key, value in start.items()}
    solver = getattr(S, name)(**kwargs)
    solver.set_parameters(params)
    reference = R.SOLVERS[name](**kwargs)
    ref_params = {key: value.copy() for key, value in start.items()}
    reference.set_parameters(ref_params)

    steps = 6
    for step in range(steps):
        grads = {key: np.array(rng.normal(size=value.shape) * 2, dtype=np.float32)
                 for key, value in start.items()}
        solver.zero_grad()
        for key, var in params.items():
            var.g = grads[key]
        ref_grads = {key: g.copy() for key, g in grads.items()}
        if step % 2 == 0:  # weight decay toggled between updates
            solver.weight_decay(0.05)
            reference.weight_decay(ref_grads, 0.05)
        solver.clip_grad_by_norm(3.0)
        reference.clip_grad_by_norm(ref_grads, 3.0)
        if step == 3:  # a new rate between updates (update() caches the hyper-parameters)
            rate = solver.learning_rate() / 2
            solver.set_learning_rate(rate)
            reference.set_learning_rate(rate)
        solver.update()
        reference.update(ref_grads)
        for key, var in params.items():
            np.testing.assert_allclose(var.d, ref_params[key], rtol=1e-5, atol=1e-6,
                                       err_msg=f"{name} {key} after update {step + 1}")
            assert var.d.dtype == np.float32

    states = solver.get_states()
    for key in params:
        assert states[key].t == steps == reference.states[key]["t"]
        for state, value in states[key].pstate.items():
            np.testing.assert_allclose(value.d, reference.states[key][state], rtol=1e-5,
                                       atol=1e-6, err_msg=f"{name} {key} state {state}")


@pytest.mark.parametrize("name", sorted(S.SOLVERS))
def test_zero_grad_then_update_changes_nothing(name):
    w = nn.parameter.get_parameter_or_create("w", (3, 2), initializer=np.ones((3, 2)))
    solver = S.SOLVERS[name]()
    solver.set_parameters(nn.get_parameters())
    w.g = 1.0
    solver.update()
    moved = w.d.copy()
    assert not np.array_equal(moved, np.ones((3, 2))) or name in ("Lamb", "Lars")
    solver.zero_grad()
    solver.weight_decay(0.5)
    solver.update()
    np.testing.assert_array_equal(w.d, moved)
    assert solver.get_states()["w"].t == 1


def test_unknown_arguments_are_type_errors():
    with pytest.raises(TypeError):
        S.Adam(lr=0.1)
    with pytest.raises(TypeError):
        S.Sgd(0.1, momentum=0.9)


def test_learning_rate_and_names():
    adam = S.Adam(alpha=0.01)
    assert adam.name == "Adam" and adam.learning_rate() == 0.01
    adam.set_learning_rate(0.5)
    assert adam.learning_rate() == 0.5 and adam.info["alpha"] == 0.5
    assert S.Lamb().learning_rate() == 1e-3 and S.Adadelta().learning_rate() == 1.0


def test_set_parameters_reset_and_retain_state():
    a = nn.parameter.get_parameter_or_create("a", (2,), initializer=np.ones(2))
    b = nn.parameter.get_parameter_or_create("b", (2,), initializer=np.ones(2))
    solver = S.Momentum(lr=0.1)
    solver.set_parameters({"a": a})
    a.g = 1.0
    solver.update()
    kept = solver.get_states()["a"].pstate["m"].d.copy()
    solver.set_parameters({"a": a, "b": b}, reset=False, retain_state=True)
    np.testing.assert_array_equal(solver.get_states()["a"].pstate["m"].d, kept)
    solver.set_parameters({"a": a})
    assert (solver.get_states()["a"].pstate["m"].d == 0).all()
    assert list(solver.get_parameters()) == ["a"]


def test_gradient_utilities():
    a = nn.parameter.get_parameter_or_create("a", (2,), initializer=np.zeros(2))
    b = nn.parameter.get_parameter_or_create("b", (2,), initializer=np.zeros(2))
    solver = S.Sgd()
    solver.set_parameters(nn.get_parameters())
    solver.zero_grad()
    a.g = [3.0, 4.0]
    assert not solver.check_inf_or_nan_grad()
    solver.scale_grad(2.0)
    np.testing.assert_allclose(a.g, [6.0, 8.0])
    assert b.grad.zeroing  # untouched gradients stay lazily zero
    assert solver.clip_grad_by_global_norm(5.0) == pytest.approx(10.0)
    np.testing.assert_allclose(a.g, [3.0, 4.0], rtol=1e-6)
    b.g = [np.inf, 0.0]
    assert solver.check_inf_grad() and not solver.check_nan_grad()
    b.g = [np.nan, 0.0]
    assert solver.check_nan_grad() and solver.check_inf_or_nan_grad()


@pytest.mark.parametrize("config", CONFIGS, ids=[ids(c) for c in CONFIGS])
def test_fused_step_matches_the_runtime_loop(config, tmp_path):
    """A graph compiled for a solver: its <rule>_step does what loss.backward() +
    solver.update() do, with the hyper-parameters of the solver given."""
    import symcompile.functions as F
    import symcompile.parametric_functions as PF

    name, kwargs = config
    nn.seed(3)
    x, t = nn.Variable((6, 4)), nn.Variable((6, 1))
    hidden = F.tanh(PF.affine(x, 5, name="hidden"))
    loss = F.mean(F.softmax_cross_entropy(PF.affine(hidden, 3, name="out"), t))
    solver = getattr(S, name)(**kwargs)
    module = nn.compile(loss, name="fused", output_dir=tmp_path, solver=solver).module
    params = nn.get_parameters()
    arrays = {spec["argument"]: params[key].d.copy() for key, spec in module.PARAMETERS.items()}
    state = module.init_state() if hasattr(module, "init_state") else {}
    solver.set_parameters(params)
    rng = np.random.default_rng(0)
    for step in range(1, 5):
        x.d = np.float32(rng.normal(size=(6, 4)))  # (float32, as the module takes it)
        t.d = rng.integers(0, 3, (6, 1))  # (int64 labels: t.d keeps them, the module takes them)
        loss.forward()
        solver.zero_grad()
        loss.backward()
        solver.update()
        step_function = getattr(module, f"{solver.rule}_step")
        extra = {"step": step} if "step" in step_function.__code__.co_varnames else {}
        step_function(x.d, t.d, **arrays, **state, **extra)
    for key, spec in module.PARAMETERS.items():
        np.testing.assert_allclose(arrays[spec["argument"]], params[key].d, rtol=1e-5,
                                   atol=1e-6, err_msg=f"{name} {key}")


# --- AdaBound/AMSBound with gamma = 0 ---------------------------------------------------------

@pytest.mark.parametrize("bounded,plain,kwargs", [
    ("AdaBound", "Adam", {}),
    ("AMSBound", "AMSGRAD", {}),
    ("AMSBound", "AMSGRAD", {"bias_correction": True}),
])
def test_gamma_0_lifts_the_bounds(bounded, plain, kwargs):
    """At gamma=0 nnabla's bounds are [0, inf): AdaBound steps as Adam, AMSBound as
    AMSGrad (checked against the reference of the unbounded solver), whatever final_lr."""
    rng = np.random.default_rng(5)
    start = np.array(rng.normal(size=(4, 3)), dtype=np.float32)
    w = nn.parameter.get_parameter_or_create("w", start.shape, initializer=start.copy())
    solver = getattr(S, bounded)(alpha=0.01, gamma=0.0, final_lr=1e-6, **kwargs)
    solver.set_parameters({"w": w})
    reference = R.SOLVERS[plain](alpha=0.01, **kwargs)
    expected = start.copy()
    reference.set_parameters({"w": expected})
    for step in range(8):
        grad = np.array(rng.normal(size=start.shape) * 3, dtype=np.float32)
        solver.zero_grad()
        w.g = grad
        solver.update()
        reference.update({"w": grad.copy()})
        # atol: nnabla rounds beta2 to float32, so without bias correction its step
        # differs from symcompile's by ~6e-6 relatively (plain AMSGRAD alike)
        np.testing.assert_allclose(w.d, expected, rtol=1e-5, atol=1e-5,
                                   err_msg=f"{bounded}(gamma=0) after update {step + 1}")


@pytest.mark.parametrize("name", ["AdaBound", "AMSBound"])
def test_gamma_0_refuses_a_zero_final_rate(name):
    """The upper bound is final_lr * alpha/init_alpha * (1 + inf): 0*inf = NaN weights in
    nnabla once the scaled final_lr is 0, refused at construction and in
    set_learning_rate() (which then changes nothing)."""
    with pytest.raises(ValueError, match=rf"^{name}: gamma=0 is not allowed with final_lr=0 "
                                         r"and alpha=0.001: .*0\*inf"):
        getattr(S, name)(gamma=0, final_lr=0)
    solver = getattr(S, name)(gamma=0, final_lr=0.1)
    with pytest.raises(ValueError, match=rf"^{name}: gamma=0 is not allowed with "
                                         r"final_lr=0.1 and alpha=0: .*or use gamma > 0"):
        solver.set_learning_rate(0)
    assert solver.learning_rate() == 1e-3
    solver.set_learning_rate(1e-4)  # any rate above 0 is fine
    getattr(S, name)(gamma=1e-3).set_learning_rate(0)  # with bounds, 0 stops the updates


# --- real nnabla ----------------------------------------------------------------------------

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
needs_nnabla = pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                                  "(a Python 3.10 with `pip install nnabla`)")


def run_configs(backend: str, configs: list) -> list:
    """Six updates of each (solver, kwargs) on fixed arrays, with weight decay every other
    update and clipping: the parameters, states and t after them. Runs on nnabla too, so
    it imports nothing but NumPy and the backend."""
    import importlib

    import numpy

    nnb = importlib.import_module(backend)
    solvers = importlib.import_module(backend + ".solvers")
    results = []
    for name, kwargs in configs:
        nnb.clear_parameters()
        rng = numpy.random.default_rng(11)
        params = {}
        for i, shape in enumerate([(3, 4), (5,), ()]):
            params[f"p{i}"] = nnb.Variable(shape, need_grad=True)
            params[f"p{i}"].d = rng.normal(size=shape).astype(numpy.float32)
        solver = getattr(solvers, name)(**kwargs)
        solver.set_parameters(params)
        for step in range(6):
            solver.zero_grad()
            for var in params.values():
                var.g = (rng.normal(size=var.shape) * 2).astype(numpy.float32)
            if step % 2 == 0:
                solver.weight_decay(0.05)
            solver.clip_grad_by_norm(3.0)
            solver.update()
        states = solver.get_states()
        results.append({key: {"w": var.d.tolist(), "t": int(states[key].t),
                              **{n: s.d.tolist() for n, s in states[key].pstate.items()}}
                        for key, var in params.items()})
    return results


@needs_nnabla
def test_every_configuration_gives_nnabla_s_numbers(tmp_path):
    """Each configuration above (the gamma=0 variants included) on nnabla itself."""
    program = (inspect.getsource(run_configs) + "\nimport json, sys\n"
               "print(json.dumps(run_configs('nnabla', json.loads(sys.argv[1]))))\n")
    done = subprocess.run([NNABLA, "-c", program, json.dumps(CONFIGS)], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path,
                          env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    mine = run_configs("symcompile", CONFIGS)
    for config, got, expected in zip(CONFIGS, mine, theirs, strict=True):
        assert got.keys() == expected.keys()
        for key in expected:
            assert got[key].keys() == expected[key].keys(), (ids(config), key)
            assert got[key]["t"] == expected[key]["t"]
            for array in expected[key].keys() - {"t"}:
                np.testing.assert_allclose(got[key][array], expected[key][array], rtol=1e-5,
                                           atol=1e-6, err_msg=f"{ids(config)} {key} {array}")
