"""F.batch_normalization and PF.batch_normalization.

- forward against a NumPy reference (float64) for several ranks, `axes` (one or several,
  first or last), training and inference mode, without beta or gamma; gradients to x,
  beta and gamma against central finite differences (gradcheck.check_function);
- the running statistics: every training forward pass (runtime, generated forward,
  gradient and fused step) updates them as nnabla does, with the unbiased variance; an
  inference graph built with batch_stat=False shares the training graph's parameters and
  changes nothing;
- the array API backend: the NumPy module's numbers, and the step returns the running
  statistics with the other updated arrays;
- nnabla 1.39's numbers where it is installed;
- bad input, refused when the graph is built, naming the function and the shapes.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from gradcheck import check_function, compile_f64
from nnabla_run import nnabla_rows
from test_array_api_backend import DEVICE, compare_runs, compile_both, on_device, run_all

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF
import symcompile.solvers as S

EPS = 1e-5


def statistics_shape(shape, axes):
    return tuple(d if i in axes else 1 for i, d in enumerate(shape))


def reference(x, beta, gamma, mean, var, axes, batch_stat, eps=EPS):
    """nnabla's definition (batch_normalization.cpp), in float64."""
    reduced = tuple(i for i in range(x.ndim) if i not in axes)
    if batch_stat:
        mean = x.mean(axis=reduced, keepdims=True)
        var = x.var(axis=reduced, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    if gamma is not None:
        y = y * gamma
    return y + beta if beta is not None else y


def running_reference(x, mean, var, axes, decay=0.9):
    """nnabla's running statistics after one training forward pass."""
    reduced = tuple(i for i in range(x.ndim) if i not in axes)
    count = np.prod([x.shape[i] for i in reduced])
    batch_mean = x.mean(axis=reduced, keepdims=True)
    batch_var = x.var(axis=reduced, keepdims=True) * count / (count - 1)
    return decay * mean + (1 - decay) * batch_mean, decay * var + (1 - decay) * batch_var


# (name, x shape, axes, batch_stat, with beta, with gamma)
CONFIGS = [
    ("images", (4, 3, 2, 2), (1,), True, True, True),
    ("features", (5, 4), (1,), True, True, True),
    ("channels last", (3, 2, 4), (2,), True, True, True),
    ("two axes", (3, 2, 3, 2), (1, 3), True, True, True),
    ("first axis", (3, 4, 2), (0,), True, True, True),
    ("no scale", (4, 3, 2), (1,), True, True, False),
    ("no bias", (4, 3, 2), (1,), True, False, True),
    ("neither", (4, 3, 2), (1,), True, False, False),
    ("inference", (4, 3, 2, 2), (1,), False, True, True),
    ("inference two axes", (2, 3, 2, 3), (1, 2), False, True, True),
]
IDS = [c[0] for c in CONFIGS]


def _arrays(shape, axes, beta, gamma, seed=0):
    rng = np.random.default_rng(seed)
    stat = statistics_shape(shape, axes)
    x = rng.normal(1.0, 2.0, size=shape)
    arrays = {"x": x}
    if beta:
        arrays["beta"] = rng.normal(size=stat)
    if gamma:
        arrays["gamma"] = rng.uniform(0.5, 1.5, size=stat)
    arrays["mean"] = rng.normal(size=stat)
    arrays["var"] = rng.uniform(0.5, 2.0, size=stat)
    return arrays


@pytest.mark.parametrize("name,shape,axes,batch_stat,beta,gamma", CONFIGS, ids=IDS)
def test_forward_and_gradients(name, shape, axes, batch_stat, beta, gamma, tmp_path, rng):
    """y against the reference; d/dx, d/dbeta and d/dgamma against finite differences
    (the running statistics are constants: nnabla gives them no gradient)."""
    arrays = _arrays(shape, axes, beta, gamma)
    names = list(arrays)

    def build(*variables):
        given = dict(zip(names, variables, strict=True))
        return F.batch_normalization(given["x"], given.get("beta"), given.get("gamma"),
                                     given["mean"], given["var"], axes=axes,
                                     batch_stat=batch_stat)

    def expected(*values):
        given = dict(zip(names, values, strict=True))
        return reference(given["x"], given.get("beta"), given.get("gamma"), given["mean"],
                         given["var"], axes, batch_stat)

    need_grad = [n not in ("mean", "var") for n in names]
    check_function(build, expected, list(arrays.values()), tmp_path, rng, need_grad,
                   rtol=1e-5, atol=1e-7)


def _bn_graph(shape, batch_stat=True, name="bn_model"):
    x = nn.Variable(shape)
    x.name = "x"
    with nn.parameter_scope(name):
        y = PF.batch_normalization(x, batch_stat=batch_stat)
        loss = F.mean(F.tanh(PF.affine(y, 3)))
    return x, y, loss


def _stats(name="bn_model"):
    params = nn.get_parameters(grad_only=False)
    return params[f"{name}/bn/mean"].d.copy(), params[f"{name}/bn/var"].d.copy()


def test_pf_creates_nnablas_parameters():
    """bn/beta (zeros), bn/gamma (ones) trainable; bn/mean (zeros), bn/var (ones) not."""
    x = nn.Variable((4, 3, 5, 5))
    PF.batch_normalization(x)
    every = nn.get_parameters(grad_only=False)
    assert list(every) == ["bn/beta", "bn/gamma", "bn/mean", "bn/var"]
    assert list(nn.get_parameters()) == ["bn/beta", "bn/gamma"]
    for key, value in (("beta", 0), ("gamma", 1), ("mean", 0), ("var", 1)):
        assert every[f"bn/{key}"].shape == (1, 3, 1, 1)
        np.testing.assert_array_equal(every[f"bn/{key}"].d, value)
    assert not every["bn/mean"].need_grad and not every["bn/var"].need_grad
    nn.clear_parameters()
    PF.batch_normalization(nn.Variable((4, 6)), no_bias=True, fix_parameters=True,
                           param_init={"gamma": nn.initializer.ConstantInitializer(2)})
    every = nn.get_parameters(grad_only=False)
    assert list(every) == ["bn/gamma", "bn/mean", "bn/var"]
    np.testing.assert_array_equal(every["bn/gamma"].d, 2)
    assert list(nn.get_parameters()) == ["bn/gamma"]  # as nnabla: the stored flag is True


def test_runtime_forward_updates_the_running_statistics():
    """Each loss.forward() of a training graph updates bn/mean and bn/var as nnabla's
    forward does (decay 0.9, unbiased variance); backward() does not."""
    x, y, loss = _bn_graph((8, 3, 2, 2))
    mean, var = _stats()
    for step in range(3):
        x.d = np.random.default_rng(step).normal(2.0, 3.0, size=x.shape)
        loss.forward()
        mean, var = running_reference(x.d.astype(np.float64), mean, var, (1,))
        got_mean, got_var = _stats()
        np.testing.assert_allclose(got_mean, mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got_var, var, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(y.d, reference(x.d.astype(np.float64), 0, 1, 0, 1, (1,),
                                                  True), rtol=1e-4, atol=1e-5)
        loss.backward()
        np.testing.assert_array_equal(_stats()[0], got_mean)


def test_inference_graph_shares_the_training_parameters():
    """nnabla's train/test switch: the batch_stat=False graph, built in the same scope,
    normalizes with the running statistics the training graph updated, and leaves them
    (and every other parameter) alone; training reaches its parameters."""
    x, _, loss = _bn_graph((8, 3, 2, 2))
    xt, yt, _ = _bn_graph((2, 3, 2, 2), batch_stat=False)
    assert len(nn.get_parameters(grad_only=False)) == 6  # beta, gamma, mean, var, W, b
    solver = S.Sgd(0.1)
    solver.set_parameters(nn.get_parameters())
    rng = np.random.default_rng(0)
    for _ in range(5):
        x.d = rng.normal(1.0, 2.0, size=x.shape)
        loss.forward()
        solver.zero_grad()
        loss.backward()
        solver.update()
    params = nn.get_parameters(grad_only=False)
    mean, var = _stats()
    assert not np.allclose(mean, 0) and not np.allclose(var, 1)
    xt.d = rng.normal(size=xt.shape)
    yt.forward()
    beta, gamma = params["bn_model/bn/beta"].d, params["bn_model/bn/gamma"].d
    np.testing.assert_allclose(yt.d, reference(xt.d, beta, gamma, mean, var, (1,), False),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(_stats()[0], mean)
    np.testing.assert_array_equal(_stats()[1], var)


def test_generated_functions_update_running_statistics(tmp_path):
    """forward(), gradient(), forward_saving() and the fused step each update RUNNING once
    per call, in place; backward() does not; the step's parameters and statistics equal
    the runtime's after the same steps."""
    x, _, loss = _bn_graph((6, 3, 2, 2))
    result = nn.compile(loss, name="bn_step", output_dir=tmp_path / "gen", solver="sgd")
    module = result.module
    assert module.RUNNING == ("bn_model_bn_mean", "bn_model_bn_var")
    data = np.random.default_rng(3).normal(size=x.shape).astype(np.float32)
    params = {spec["argument"]: np.array(nn.get_parameters(grad_only=False)[key].d)
              for key, spec in module.PARAMETERS.items()}

    def arguments():
        return [data] + list(params.values())

    mean, var = params["bn_model_bn_mean"].copy(), params["bn_model_bn_var"].copy()
    for function in ("forward", "gradient", "forward_saving"):
        out = getattr(module, function)(*arguments())
        mean, var = running_reference(data.astype(np.float64), mean, var, (1,))
        np.testing.assert_allclose(params["bn_model_bn_mean"], mean, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(params["bn_model_bn_var"], var, rtol=1e-5, atol=1e-7)
    before = params["bn_model_bn_mean"].copy()
    module.backward(out[-1], *arguments(), np.float32(1))
    np.testing.assert_array_equal(params["bn_model_bn_mean"], before)
    # the fused step against the runtime's loop, from the same start
    for key, spec in module.PARAMETERS.items():
        nn.get_parameters(grad_only=False)[key].d = params[spec["argument"]]
    solver = S.Sgd(0.5)
    solver.set_parameters(nn.get_parameters())
    x.d = data
    for _ in range(3):
        module.sgd_step(*arguments(), lr=0.5)
        loss.forward()
        solver.zero_grad()
        loss.backward()
        solver.update()
    for key, spec in module.PARAMETERS.items():
        np.testing.assert_allclose(params[spec["argument"]],
                                   nn.get_parameters(grad_only=False)[key].d,
                                   rtol=1e-5, atol=1e-6, err_msg=key)


def test_inference_module_has_no_running_statistics(tmp_path):
    _, y, _ = _bn_graph((2, 3, 2, 2), batch_stat=False)
    module = nn.compile(F.sum(y), name="bn_test", output_dir=tmp_path / "gen").module
    assert module.RUNNING == ()
    assert "running statistics" not in open(module.__file__).read()


def test_one_sample_per_statistic_is_refused():
    with pytest.raises(ValueError, match=r"batch_normalization: .*\(1, 3\).*at least 2"):
        PF.batch_normalization(nn.Variable((1, 3)))
    PF.batch_normalization(nn.Variable((1, 3)), batch_stat=False)  # inference: fine


# --- the array API backend ---------------------------------------------------------------

@pytest.mark.parametrize("batch_stat", [True, False])
def test_array_api_backend_gives_the_numpy_numbers(batch_stat, tmp_path):
    x = nn.Variable((4, 3, 2, 2), need_grad=True)
    x.name = "x"
    y = PF.batch_normalization(x, batch_stat=batch_stat)
    weights = nn.Variable(y.shape)
    weights.name = "weights"
    values = {"x": np.random.default_rng(0).normal(size=x.shape),
              "weights": np.random.default_rng(1).normal(size=y.shape)}
    values.update({key: v.d for key, v in nn.get_parameters(grad_only=False).items()})
    modules = compile_both(F.sum(y * weights), tmp_path, "bn")
    compare_runs(run_all(modules, values, on_device(DEVICE)), device=DEVICE)


def test_array_api_step_returns_the_running_statistics(tmp_path):
    import array_api_strict as xps

    x, _, loss = _bn_graph((6, 3, 2, 2))
    module = compile_both(loss, tmp_path, "bn_step", solver="sgd")["array_api"]
    data = np.random.default_rng(3).normal(size=x.shape).astype(np.float32)
    params = {spec["argument"]: xps.asarray(nn.get_parameters(grad_only=False)[key].d)
              for key, spec in module.PARAMETERS.items()}
    _, updated = module.sgd_step(xps.asarray(data), *params.values())
    assert set(module.RUNNING) <= set(updated)
    mean, _ = running_reference(data.astype(np.float64), 0.0, 1.0, (1,))
    np.testing.assert_allclose(np.from_dlpack(updated["bn_model_bn_mean"]), mean, rtol=1e-5,
                               atol=1e-6)


# --- bad input -----------------------------------------------------------------------------

def _params(shape):
    return [nn.Variable(shape) for _ in range(4)]


@pytest.mark.parametrize("call,message", [
    (lambda: F.batch_normalization(nn.Variable((4, 3, 2)), *_params((1, 2, 1))),
     r"F.batch_normalization: beta of shape \(1, 2, 1\) does not fit the input of shape "
     r"\(4, 3, 2\) with axes=\[1\]; it must have shape \(1, 3, 1\)"),
    (lambda: F.batch_normalization(nn.Variable((4, 3)), *_params((1, 3)), axes=2),
     r"F.batch_normalization: axis 2 is out of range for an input of shape \(4, 3\)"),
    (lambda: F.batch_normalization(nn.Variable((4, 3)), None, None, None, None,
                                   batch_stat=False),
     r"batch_stat=False .* mean and variance must be Variables"),
    (lambda: F.batch_normalization(nn.Variable((4, 3)), *_params((1, 3)), batch_stat=False,
                                   output_stat=True),
     r"output_stat=True returns the batch's statistics, so it needs batch_stat=True"),
    (lambda: F.batch_normalization(nn.Variable((4, 3)), *_params((1, 3))[:3],
                                   F.exp(nn.Variable((1, 3)))),
     r"updates variance in place, so it must be a leaf Variable .* not the output of"),
    (lambda: PF.batch_normalization(nn.Variable((4, 3)), param_init={"mu": 0}),
     r"param_init has unknown keys \['mu'\]"),
])
def test_bad_input_is_refused_when_the_graph_is_built(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_output_stat_returns_the_batch_statistics_with_their_gradients(tmp_path, rng):
    """output_stat=True: (y, the batch mean, its biased variance), nnabla's shapes (those of
    the running statistics); d/dx of 2 sum(mean) + 3 sum(var) + sum(y) is 2/n + 6 (x -
    mean)/n (sum(y) is constant in x with gamma 1), as nnabla 1.39 gives."""
    x = nn.Variable.from_numpy_array(rng.standard_normal((4, 3, 2, 2)), need_grad=True)
    x.name = "x"
    beta, gamma, mean, variance = _params((1, 3, 1, 1))
    gamma.d, variance.d = 1, 1
    y, batch_mean, batch_var = F.batch_normalization(x, beta, gamma, mean, variance,
                                                     output_stat=True)
    assert batch_mean.shape == batch_var.shape == (1, 3, 1, 1)
    loss = F.sum(batch_mean * 2) + F.sum(batch_var * 3) + F.sum(y)
    module = compile_f64(loss, tmp_path).module
    values = x.d.astype(np.float64)
    args = [values] + [np.asarray(p.d, np.float64) for p in (beta, gamma, mean, variance)]
    names = list(module.INPUTS) + list(module.PARAMETERS)
    assert names[0] == "x"
    loss_value, grad_x, *_ = module.gradient(*args)
    mu = values.mean(axis=(0, 2, 3), keepdims=True)
    expected = 2 * mu.sum() + 3 * values.var(axis=(0, 2, 3)).sum()
    np.testing.assert_allclose(loss_value, expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(grad_x, 2 / 16 + 6 * (values - mu) / 16, rtol=1e-9, atol=1e-10)


# --- nnabla 1.39 ---------------------------------------------------------------------------

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
NNABLA_BN = r"""
import json, sys
import numpy as np
import nnabla as nn, nnabla.functions as F, nnabla.parametric_functions as PF
for case in json.loads(sys.argv[1]):
    nn.clear_parameters()
    rng = np.random.RandomState(case["seed"])
    x = nn.Variable.from_numpy_array(rng.randn(*case["shape"]).astype(np.float32) * 2 + 1,
                                     need_grad=True)
    y = PF.batch_normalization(x, axes=case["axes"], batch_stat=case["batch_stat"])
    params = nn.get_parameters(grad_only=False)
    for key, p in params.items():
        p.d = rng.uniform(0.5, 1.5, size=p.shape)
    start = {key: p.d.tolist() for key, p in params.items()}
    g = rng.randn(*y.shape).astype(np.float32)
    y.forward()
    x.grad.zero()
    for p in params.values():
        p.grad.zero()
    y.backward(g)
    print(json.dumps({"x": x.d.tolist(), "g": g.tolist(), "y": y.d.tolist(),
                      "dx": x.g.tolist(), "start": start,
                      "after": {k: p.d.tolist() for k, p in params.items()},
                      "grads": {k: p.g.tolist() for k, p in params.items() if p.need_grad}}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_batch_normalization_against_nnabla(tmp_path):
    """y, dx, d beta, d gamma and the running statistics after one forward pass equal
    nnabla 1.39's on the same float32 inputs, to float32 rounding (but for the running
    statistics over several axes, which nnabla 1.39 does not update; see below)."""
    cases = [{"shape": [4, 3, 2, 2], "axes": [1], "batch_stat": True},
             {"shape": [6, 5], "axes": [1], "batch_stat": True},
             {"shape": [3, 2, 4], "axes": [2], "batch_stat": True},
             {"shape": [3, 4, 2, 3], "axes": [1, 3], "batch_stat": True},
             {"shape": [4, 3, 2, 2], "axes": [1], "batch_stat": False}]
    cases = [dict(case, seed=i) for i, case in enumerate(cases)]
    rows = nnabla_rows(NNABLA, NNABLA_BN, cases, tmp_path)
    assert len(rows) == len(cases)
    for case, row in zip(cases, rows, strict=True):
        nn.clear_parameters()
        x = nn.Variable.from_numpy_array(np.array(row["x"], np.float32), need_grad=True)
        y = PF.batch_normalization(x, axes=case["axes"], batch_stat=case["batch_stat"])
        params = nn.get_parameters(grad_only=False)
        for key, p in params.items():
            p.d = np.array(row["start"][key], np.float32)
        loss = F.sum(y * nn.Variable.from_numpy_array(np.array(row["g"], np.float32)))
        loss.forward()
        loss.backward()
        what = str(case)
        np.testing.assert_allclose(y.d, row["y"], rtol=1e-5, atol=2e-5, err_msg=what)
        np.testing.assert_allclose(x.g, row["dx"], rtol=1e-4, atol=2e-5, err_msg=what)
        for key, value in row["grads"].items():
            np.testing.assert_allclose(params[key].g, value, rtol=1e-4, atol=2e-5,
                                       err_msg=f"{what} d {key}")
        if len(case["axes"]) > 1:
            # nnabla 1.39 normalizes over several axes through transposed copies of the
            # running statistics and updates those copies, so the parameters never change
            # (its docs say they are "modified during forward execution"); symcompile
            # updates them as documented
            for key in ("bn/mean", "bn/var"):
                np.testing.assert_array_equal(row["after"][key], row["start"][key])
            expected, _ = running_reference(np.array(row["x"]),
                                            np.array(row["start"]["bn/mean"]), 0.0,
                                            tuple(case["axes"]))
            np.testing.assert_allclose(params["bn/mean"].d, expected, rtol=1e-5, atol=1e-6)
            continue
        for key, value in row["after"].items():
            np.testing.assert_allclose(params[key].d, value, rtol=1e-5, atol=1e-6,
                                       err_msg=f"{what} {key}")


# --- layer, instance and group normalization ------------------------------------------------

def standardized(x, reduced, eps=EPS):
    return (x - x.mean(axis=reduced, keepdims=True)) / np.sqrt(
        x.var(axis=reduced, keepdims=True) + eps)


def group_reference(x, groups, eps=EPS):
    n, c = x.shape[:2]
    split = x.reshape((n, groups, c // groups) + x.shape[2:])
    return standardized(split, tuple(range(2, split.ndim)), eps).reshape(x.shape)


# (name, F call on (x, beta, gamma), reference on (x, beta, gamma), x shape, scale shape)
PER_SAMPLE = [
    ("layer", lambda x, b, g: F.layer_normalization(x, b, g),
     lambda x, b, g: standardized(x, (1, 2, 3)) * g + b, (2, 3, 2, 2), (1, 3, 2, 2)),
    ("layer, a batch axis 1", lambda x, b, g: F.layer_normalization(x, b, g, batch_axis=1),
     lambda x, b, g: standardized(x, (0, 2)) * g + b, (3, 4, 2), (3, 1, 2)),
    ("instance, scale per sample", lambda x, b, g: F.instance_normalization(x, b, g),
     lambda x, b, g: standardized(x, (2,)) * g + b, (3, 4, 2), (3, 4, 1)),
    ("layer, two batch axes", lambda x, b, g: F.layer_normalization(x, b, g, batch_axis=[0, 1]),
     lambda x, b, g: standardized(x, (2,)) * g + b, (2, 3, 4), (1, 1, 4)),
    ("instance", lambda x, b, g: F.instance_normalization(x, b, g),
     lambda x, b, g: standardized(x, (2, 3)) * g + b, (2, 3, 2, 3), (1, 3, 1, 1)),
    ("instance, channel last", lambda x, b, g: F.instance_normalization(x, b, g,
                                                                        channel_axis=2),
     lambda x, b, g: standardized(x, (1,)) * g + b, (2, 4, 3), (1, 1, 3)),
    ("group", lambda x, b, g: F.group_normalization(x, b, g, 2),
     lambda x, b, g: group_reference(x, 2) * g + b, (2, 4, 2, 3), (1, 4, 1, 1)),
    ("group of one channel", lambda x, b, g: F.group_normalization(x, b, g, 3),
     lambda x, b, g: group_reference(x, 3) * g + b, (2, 3, 4), (1, 3, 1)),
]


@pytest.mark.parametrize("name,build,expected,shape,scale", PER_SAMPLE,
                         ids=[c[0] for c in PER_SAMPLE])
def test_per_sample_normalizations(name, build, expected, shape, scale, tmp_path, rng):
    draw = np.random.default_rng(0)
    arrays = [draw.normal(1.0, 2.0, size=shape), draw.normal(size=scale),
              draw.uniform(0.5, 1.5, size=scale)]
    check_function(build, expected, arrays, tmp_path, rng, rtol=1e-5, atol=1e-7)


def test_per_sample_normalizations_without_beta_or_gamma(tmp_path, rng):
    x = np.random.default_rng(0).normal(size=(2, 4, 3))
    check_function(lambda v: F.group_normalization(v, None, None, 2),
                   lambda a: group_reference(a, 2), [x], tmp_path, rng, rtol=1e-5, atol=1e-7)


def test_per_sample_layers_create_nnablas_parameters():
    x = nn.Variable((2, 6, 3, 3))
    PF.layer_normalization(x)
    PF.instance_normalization(x)
    PF.group_normalization(x, 3, no_bias=True)
    assert {k: v.shape for k, v in nn.get_parameters().items()} == {
        "layer_normalization/beta": (1, 6, 3, 3), "layer_normalization/gamma": (1, 6, 3, 3),
        "instance_normalization/beta": (1, 6, 1, 1),
        "instance_normalization/gamma": (1, 6, 1, 1),
        "group_normalization/gamma": (1, 6, 1, 1)}


@pytest.mark.parametrize("call,message", [
    (lambda: F.group_normalization(nn.Variable((2, 6, 3)), None, None, 4),
     r"F.group_normalization: num_groups=4 must divide the 6 channels"),
    (lambda: F.layer_normalization(nn.Variable((2, 6)), nn.Variable((6,)), None),
     r"F.layer_normalization: beta of shape \(6,\) does not fit the input of shape \(2, 6\): "
     r"nnabla wants the input's shape with the batch axes \[0\] of length 1, e.g. \(1, 6\)"),
    # nnabla 1.39: "Shape of beta(inputs[1]) does not match. beta: (1, 4, 1) != expected:
    # (1, 4, 3)", "... beta: (1, 4, 3) != expected: (1, 4, 1)", "channel size of beta: 1 !=
    # channel size of x (4)"
    (lambda: F.layer_normalization(nn.Variable((2, 4, 3)), None, nn.Variable((1, 4, 1))),
     r"gamma of shape \(1, 4, 1\) does not fit .* e.g. \(1, 4, 3\)"),
    (lambda: F.group_normalization(nn.Variable((2, 4, 3)), nn.Variable((1, 4, 3)), None, 2),
     r"F.group_normalization: beta .* 1 on every axis but the channel axis 1, which has the "
     r"input's 4, e.g. \(1, 4, 1\)"),
    (lambda: F.instance_normalization(nn.Variable((2, 4, 3)), nn.Variable((2, 1, 1)), None),
     r"F.instance_normalization: beta .* the input's 4 channels on axis 1, 1 or the input's "
     r"length on the batch axes \[0\], 1 elsewhere, e.g. \(1, 4, 1\)"),
    (lambda: F.instance_normalization(nn.Variable((2, 6, 3)), None, None, channel_axis=0),
     r"channel_axis 0 is also a batch axis"),
    (lambda: F.layer_normalization(nn.Variable((2, 6)), None, None, output_stat="yes"),
     r"F.layer_normalization: output_stat must be True or False, got 'yes'"),
])
def test_per_sample_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


NNABLA_PER_SAMPLE = r"""
import json, sys
import numpy as np
import nnabla as nn, nnabla.functions as F, nnabla.parametric_functions as PF
for i, text in enumerate(json.loads(sys.argv[1])):
    nn.clear_parameters()
    rng = np.random.RandomState(i)
    x = nn.Variable.from_numpy_array(rng.randn(2, 6, 3, 2).astype(np.float32) * 2 + 1,
                                     need_grad=True)
    y = eval(text)
    params = nn.get_parameters()
    for p in params.values():
        p.d = rng.uniform(0.5, 1.5, size=p.shape)
    g = rng.randn(*y.shape).astype(np.float32)
    y.forward()
    x.grad.zero()
    for p in params.values():
        p.grad.zero()
    y.backward(g)
    print(json.dumps({"x": x.d.tolist(), "g": g.tolist(), "y": y.d.tolist(),
                      "dx": x.g.tolist(), "params": {k: p.d.tolist() for k, p in params.items()},
                      "grads": {k: p.g.tolist() for k, p in params.items()}}))
"""
PER_SAMPLE_LAYERS = ["PF.layer_normalization(x)", "PF.instance_normalization(x)",
                     "PF.group_normalization(x, 3)", "PF.group_normalization(x, 2, eps=1e-3)"]


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_per_sample_layers_against_nnabla(tmp_path):
    rows = nnabla_rows(NNABLA, NNABLA_PER_SAMPLE, PER_SAMPLE_LAYERS, tmp_path)
    assert len(rows) == len(PER_SAMPLE_LAYERS)
    for text, row in zip(PER_SAMPLE_LAYERS, rows, strict=True):
        nn.clear_parameters()
        x = nn.Variable.from_numpy_array(np.array(row["x"], np.float32), need_grad=True)
        y = eval(text, {"PF": PF, "x": x})
        params = nn.get_parameters()
        assert sorted(params) == sorted(row["params"]), text
        for key, p in params.items():
            p.d = np.array(row["params"][key], np.float32)
        loss = F.sum(y * nn.Variable.from_numpy_array(np.array(row["g"], np.float32)))
        loss.forward()
        loss.backward()
        np.testing.assert_allclose(y.d, row["y"], rtol=1e-4, atol=2e-5, err_msg=text)
        np.testing.assert_allclose(x.g, row["dx"], rtol=1e-4, atol=2e-5, err_msg=text)
        for key, p in params.items():
            np.testing.assert_allclose(p.g, row["grads"][key], rtol=1e-4, atol=2e-5,
                                       err_msg=f"{text} d {key}")
