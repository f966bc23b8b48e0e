"""output_stat=True of the per-sample normalizations and weight standardization.

nnabla 1.39 returns (y, mean, variance): the variance biased (its docs say "Std"), both
statistics of x's rank with the normalized axes kept as length 1 (group normalization's
of x with the channel axis split into (num_groups, channels per group)), and gradients
flow through both. Checked here against a NumPy reference in float64 (values), central
finite differences in float64 (gradients of x, beta and gamma with the statistics in the
loss), the array API backend, an nnabla file written and read back, and, when
SYMCOMPILE_NNABLA_PYTHON names a Python with nnabla 1.39, nnabla's own numbers.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from gradcheck import check_array_api, check_function
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
EPS = 1e-5


def _layout(function, shape, kw):
    """The shape the statistics are computed over (group normalization's with the channel
    axis split) and the axes reduced in it."""
    ndim = len(shape)

    def axes(value):
        items = [value] if isinstance(value, int) else list(value)
        return {a % ndim for a in items}

    if function == "weight_standardization":
        channel = kw.get("channel_axis", 0) % ndim
        return tuple(shape), tuple(a for a in range(ndim) if a != channel)
    kept = axes(kw.get("batch_axis", 0))
    if function == "layer_normalization":
        return tuple(shape), tuple(a for a in range(ndim) if a not in kept)
    channel = kw.get("channel_axis", 1) % ndim
    if function == "instance_normalization":
        kept.add(channel)
        return tuple(shape), tuple(a for a in range(ndim) if a not in kept)
    groups = kw["num_groups"]
    split = shape[:channel] + (groups, shape[channel] // groups) + shape[channel + 1:]
    # nnabla 1.39 (measured): the batch axes index the split array as they are, so a batch
    # axis after the channel axis keeps the axis before it
    kept |= {channel}
    return tuple(split), tuple(a for a in range(len(split)) if a not in kept)


def reference(function, x, beta, gamma, kw):
    """y, mean and the biased variance by NumPy (float64), written from nnabla's docs."""
    split, reduced = _layout(function, x.shape, kw)
    grouped = x.reshape(split)
    mean = grouped.mean(axis=reduced, keepdims=True)
    var = ((grouped - mean) ** 2).mean(axis=reduced, keepdims=True)
    y = ((grouped - mean) / np.sqrt(var + kw.get("eps", EPS))).reshape(x.shape)
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return y, mean, var


def _param_shape(function, shape, kw):
    """beta's and gamma's shape, as the PF layer creates them."""
    ndim = len(shape)
    if function == "layer_normalization":
        batch = kw.get("batch_axis", 0)
        batch = {a % ndim for a in ([batch] if isinstance(batch, int) else batch)}
        return tuple(1 if i in batch else d for i, d in enumerate(shape))
    channel = kw.get("channel_axis", 1) % ndim
    return tuple(d if i == channel else 1 for i, d in enumerate(shape))


def _call(function, x, beta, gamma, kw):
    fn = getattr(F, function)
    if function == "weight_standardization":
        return fn(x, output_stat=True, **kw)
    return fn(x, beta, gamma, output_stat=True, **kw)


# (function, x shape, keyword arguments, beta?, gamma?, statistics' shape as nnabla gives)
CASES = [
    ("layer_normalization", (2, 6, 3, 4), {}, True, True, (2, 1, 1, 1)),
    ("layer_normalization", (2, 5, 3), {"batch_axis": [0, 2]}, True, False, (2, 1, 3)),
    ("layer_normalization", (3, 4), {"batch_axis": -1, "eps": 1e-3}, False, True, (1, 4)),
    ("layer_normalization", (4, 5), {"batch_axis": []}, False, False, (1, 1)),
    # nothing normalized: the mean is x, the variance 0 (y is beta), as nnabla's
    ("layer_normalization", (3, 2), {"batch_axis": [0, 1]}, True, True, (3, 2)),
    ("instance_normalization", (2, 3, 4, 2), {}, True, True, (2, 3, 1, 1)),
    ("instance_normalization", (2, 3, 4, 5), {"channel_axis": 3, "batch_axis": [0, 2]},
     True, True, (2, 1, 4, 5)),
    ("instance_normalization", (3, 2, 5), {"channel_axis": -1}, False, True, (3, 1, 5)),
    ("group_normalization", (2, 6, 3, 2), {"num_groups": 3}, True, True, (2, 3, 1, 1, 1)),
    ("group_normalization", (2, 3, 2, 4), {"num_groups": 2, "channel_axis": 3,
                                           "batch_axis": [0, 2]}, True, False,
     (2, 1, 2, 2, 1)),
    # a batch axis after the channel axis, as nnabla computes it (the statistics per
    # sample, group and channel within the group, over the other axes)
    ("group_normalization", (2, 4, 6, 3), {"num_groups": 3, "channel_axis": 2,
                                           "batch_axis": [0, 3]}, True, True,
     (2, 1, 3, 2, 1)),
    ("group_normalization", (2, 6, 4, 5), {"num_groups": 3, "batch_axis": [0, 2]}, False,
     True, (2, 3, 2, 1, 1)),
    ("group_normalization", (3, 4, 5), {"num_groups": 4, "eps": 1e-2}, False, True,
     (3, 4, 1, 1)),
    ("group_normalization", (2, 4, 3), {"num_groups": 1}, False, False, (2, 1, 1, 1)),
    ("weight_standardization", (4, 3, 2, 2), {}, False, False, (4, 1, 1, 1)),
    ("weight_standardization", (5, 3), {"channel_axis": 1}, False, False, (1, 3)),
    ("weight_standardization", (3, 2, 4), {"channel_axis": -1, "eps": 1e-3}, False, False,
     (1, 1, 4)),
    ("weight_standardization", (5,), {}, False, False, (5,)),
]
IDS = [f"{c[0]}-{c[1]}-{c[2]}-{'b' if c[3] else ''}{'g' if c[4] else ''}" for c in CASES]


def _arrays(case, rng):
    function, shape, kw, has_beta, has_gamma, _ = case
    x = rng.normal(size=shape) * 2 + 0.5
    pshape = None if function == "weight_standardization" else _param_shape(function, shape,
                                                                                 kw)
    beta = rng.normal(size=pshape) if has_beta else None
    gamma = rng.uniform(0.5, 1.5, size=pshape) if has_gamma else None
    return x, beta, gamma


def _builder(case):
    """(build, reference) of check_function: y, mean and variance flattened and joined, so
    that its weighted sum puts all three in the loss."""
    function, _, kw, has_beta, has_gamma, _ = case

    def split(values):
        values = list(values)
        x = values.pop(0)
        beta = values.pop(0) if has_beta else None
        gamma = values.pop(0) if has_gamma else None
        return x, beta, gamma

    def build(*variables):
        outs = _call(function, *split(variables), kw)
        return F.concatenate(*[F.reshape(o, (-1,)) for o in outs], axis=0)

    def expected(*arrays):
        return np.concatenate([o.ravel() for o in reference(function, *split(arrays), kw)])

    return build, expected


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_values_and_shapes_are_nnablas(case, rng):
    function, shape, kw, _, _, stat_shape = case
    x, beta, gamma = _arrays(case, rng)
    wrap = [None if a is None else nn.Variable.from_numpy_array(a) for a in (x, beta, gamma)]
    y, mean, var = _call(function, *wrap, kw)
    assert y.shape == shape
    assert mean.shape == var.shape == stat_shape
    F.sink(y, mean, var).forward()
    want = reference(function, x, beta, gamma, kw)
    for got, ref, name in zip((y, mean, var), want, ("y", "mean", "var"), strict=True):
        np.testing.assert_allclose(got.d, ref, rtol=1e-4, atol=1e-4, err_msg=name)  # float32
    # the variance is the biased one, not a standard deviation
    assert np.all(var.d >= 0)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradients_with_the_statistics_in_the_loss(case, tmp_path, rng):
    """float64 values against NumPy, and d/dx, d/dbeta, d/dgamma of sum(w1 y) + sum(w2
    mean) + sum(w3 var) against central finite differences; the array API backend gives
    the same gradients."""
    arrays = [a for a in _arrays(case, rng) if a is not None]
    build, expected = _builder(case)
    module = check_function(build, expected, arrays, tmp_path, rng, rtol=1e-5, atol=1e-7)
    pytest.importorskip("array_api_strict")
    check_array_api(build, arrays, module, tmp_path)


def test_the_statistics_alone_carry_gradients(tmp_path, rng):
    """d/dx of sum(mean) + 3 sum(var), y unused: 1/n + 6 (x - mean)/n per sample."""
    x = nn.Variable.from_numpy_array(rng.normal(size=(3, 4, 5)), need_grad=True)
    _, mean, var = F.layer_normalization(x, None, None, output_stat=True)
    loss = F.sum(mean) + F.sum(var * 3)
    x.grad.zero()
    loss.forward()
    loss.backward()
    values = x.d.astype(np.float64)
    mu = values.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(x.g, 1 / 20 + 6 * (values - mu) / 20, rtol=1e-4, atol=1e-5)


def test_output_stat_false_returns_y_alone(rng):
    x = nn.Variable((2, 6, 3))
    for out in (F.layer_normalization(x, None, None), F.instance_normalization(x, None, None),
                F.group_normalization(x, None, None, 3), F.weight_standardization(x),
                F.layer_normalization(x, None, None, output_stat=np.bool_(False))):
        assert isinstance(out, nn.Variable) and out.shape == (2, 6, 3)


def test_parametric_layers_forward_output_stat(rng):
    nn.clear_parameters()
    x = nn.Variable.from_numpy_array(rng.normal(size=(2, 6, 3, 2)))
    layers = {
        "layer_normalization": (PF.layer_normalization(x, output_stat=True), {},
                                (2, 1, 1, 1)),
        "instance_normalization": (PF.instance_normalization(x, output_stat=True,
                                                             no_bias=True), {}, (2, 6, 1, 1)),
        "group_normalization": (PF.group_normalization(x, 3, output_stat=True, no_scale=True),
                                {"num_groups": 3}, (2, 3, 1, 1, 1)),
    }
    params = nn.get_parameters()
    assert sorted(params) == ["group_normalization/beta", "instance_normalization/gamma",
                              "layer_normalization/beta", "layer_normalization/gamma"]
    for name, (outs, kw, stat_shape) in layers.items():
        y, mean, var = outs
        assert mean.shape == var.shape == stat_shape, name
        F.sink(y, mean, var).forward()
        beta = params.get(f"{name}/beta")
        gamma = params.get(f"{name}/gamma")
        want = reference(name, x.d.astype(np.float64), None if beta is None else beta.d,
                         None if gamma is None else gamma.d, kw)
        for got, ref in zip((y, mean, var), want, strict=True):
            np.testing.assert_allclose(got.d, ref, rtol=1e-4, atol=1e-4, err_msg=name)  # float32
    nn.clear_parameters()


@pytest.mark.parametrize("call,message", [
    (lambda: F.layer_normalization(nn.Variable((2, 6)), None, None, output_stat=1),
     r"F.layer_normalization: output_stat must be True or False, got 1 \(int\) for the "
     r"input of shape \(2, 6\); pass output_stat=True"),
    (lambda: F.instance_normalization(nn.Variable((2, 6, 3)), None, None,
                                      output_stat="False"),
     r"F.instance_normalization: output_stat must be True or False, got 'False' \(str\) "
     r"for the input of shape \(2, 6, 3\)"),
    (lambda: F.group_normalization(nn.Variable((2, 6, 3)), None, None, 3, output_stat=None),
     r"F.group_normalization: output_stat must be True or False, got None"),
    (lambda: F.weight_standardization(nn.Variable((4, 3)), output_stat=[True]),
     r"F.weight_standardization: output_stat must be True or False, got \[True\] \(list\) "
     r"for the input of shape \(4, 3\)"),
    (lambda: PF.layer_normalization(nn.Variable((2, 6)), output_stat="yes"),
     r"F.layer_normalization: output_stat must be True or False"),
    # the other checks still come first where they did
    (lambda: F.group_normalization(nn.Variable((2, 6, 3)), None, None, 4, output_stat=True),
     r"F.group_normalization: num_groups=4 must divide the 6 channels"),
    (lambda: F.instance_normalization(nn.Variable((2, 6, 3)), None, None, channel_axis=0,
                                      output_stat=True),
     r"channel_axis 0 is also a batch axis"),
])
def test_bad_output_stat_is_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_an_nnabla_file_holds_the_statistics(tmp_path, rng):
    """The statistics are nnabla functions (Mean, Sub2, PowScalar, Reshape), so a graph
    returning them is written and reads back as the same graph."""
    pytest.importorskip("google.protobuf")
    from test_nnp import _contents, _structure

    from symcompile.utils import save
    from symcompile.utils.nnp_graph import NnpLoader

    nn.clear_parameters()
    x = nn.Variable((2, 6, 3))
    x.name = "in0"
    outs = F.group_normalization(x, None, None, 3, output_stat=True)
    outputs = {f"out{k}": o for k, o in enumerate(outs)}
    path = tmp_path / "net.nntxt"
    save.save(path, _contents({"in0": x}, outputs), variable_batch_size=False)
    net = NnpLoader(path).get_network("net")
    assert _structure(net.variables[k] for k in outputs) == _structure(outputs.values())


# --- nnabla 1.39 -----------------------------------------------------------------------------

NNABLA_SCRIPT = r"""
import json, sys
import numpy as np
import nnabla as nn, nnabla.functions as F, nnabla.parametric_functions as PF
for i, case in enumerate(json.loads(sys.argv[1])):
    nn.clear_parameters()
    rng = np.random.RandomState(100 + i)
    x = nn.Variable.from_numpy_array(
        (rng.randn(*case["shape"]) * 2 + 0.5).astype(np.float32), need_grad=True)
    fn, kw = case["function"], case["kw"]
    params = {}
    if case["pf"]:
        outs = getattr(PF, fn)(x, output_stat=True, **kw)
        params = nn.get_parameters()
    elif fn == "weight_standardization":
        outs = F.weight_standardization(x, output_stat=True, **kw)
    else:
        for name in ("beta", "gamma"):
            if case[name] is not None:
                params[name] = nn.Variable.from_numpy_array(
                    rng.uniform(0.5, 1.5, size=case[name]).astype(np.float32), need_grad=True)
        outs = getattr(F, fn)(x, params.get("beta"), params.get("gamma"), output_stat=True,
                              **kw)
    for p in params.values():
        p.d = rng.uniform(0.5, 1.5, size=p.shape)
    ws = [rng.randn(*o.shape).astype(np.float32) for o in outs]
    loss = F.sum(outs[0] * nn.Variable.from_numpy_array(ws[0]))
    for o, w in zip(outs[1:], ws[1:]):
        loss = loss + F.sum(o * nn.Variable.from_numpy_array(w))
    loss.forward()
    x.grad.zero()
    for p in params.values():
        p.grad.zero()
    loss.backward()
    print(json.dumps({"x": x.d.tolist(), "ws": [w.tolist() for w in ws],
                      "outs": [o.d.tolist() for o in outs],
                      "shapes": [list(o.shape) for o in outs], "dx": x.g.tolist(),
                      "params": {k: p.d.tolist() for k, p in params.items()},
                      "grads": {k: p.g.tolist() for k, p in params.items()}}))
"""


def _nnabla_cases():
    cases = []
    for function, shape, kw, has_beta, has_gamma, _ in CASES:
        if kw.get("batch_axis") == []:
            continue  # (nnabla 1.39 takes an empty list too, but its PF layers do not)
        pshape = None if function == "weight_standardization" else list(
            _param_shape(function, shape, kw))
        cases.append({"function": function, "shape": list(shape), "kw": kw, "pf": False,
                      "beta": pshape if has_beta else None,
                      "gamma": pshape if has_gamma else None})
    for function, kw in (("layer_normalization", {"batch_axis": [0, 1]}),
                         ("instance_normalization", {"no_scale": True}),
                         ("group_normalization", {"num_groups": 2, "no_bias": True}),
                         # (batch axes before the channel axis only: with one after
                         # it, nnabla 1.39 keeps that axis's index in the split shape,
                         # where it names another axis, and so normalizes other groups)
                         ("group_normalization", {"num_groups": 3, "channel_axis": 2,
                                                  "batch_axis": [0, 1]})):
        cases.append({"function": function, "shape": [2, 4, 6, 3], "kw": kw, "pf": True})
    return cases


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_values_and_gradients_against_nnabla(tmp_path):
    cases = _nnabla_cases()
    rows = nnabla_rows(NNABLA, NNABLA_SCRIPT, cases, tmp_path)
    assert len(rows) == len(cases)
    for case, row in zip(cases, rows, strict=True):
        label = json.dumps(case)
        nn.clear_parameters()
        x = nn.Variable.from_numpy_array(np.array(row["x"], np.float32), need_grad=True)
        fn, kw = case["function"], case["kw"]
        if case["pf"]:
            outs = getattr(PF, fn)(x, output_stat=True, **kw)
            params = nn.get_parameters()
            assert sorted(params) == sorted(row["params"]), label
        else:
            params = {k: nn.Variable.from_numpy_array(np.array(v, np.float32),
                                                      need_grad=True)
                      for k, v in row["params"].items()}
            outs = _call(fn, x, params.get("beta"), params.get("gamma"), kw)
        for key, p in params.items():
            p.d = np.array(row["params"][key], np.float32)
        assert [list(o.shape) for o in outs] == row["shapes"], label
        loss = F.sum(outs[0] * nn.Variable.from_numpy_array(np.array(row["ws"][0],
                                                                        np.float32)))
        for o, w in zip(outs[1:], row["ws"][1:], strict=True):
            loss = loss + F.sum(o * nn.Variable.from_numpy_array(np.array(w, np.float32)))
        x.grad.zero()
        for p in params.values():
            p.grad.zero()
        loss.forward()
        loss.backward()
        for name, o, theirs in zip(("y", "mean", "var"), outs, row["outs"], strict=True):
            np.testing.assert_allclose(o.d, theirs, rtol=1e-4, atol=2e-5,
                                       err_msg=f"{label}: {name}")
        np.testing.assert_allclose(x.g, row["dx"], rtol=1e-4, atol=5e-5,
                                   err_msg=f"{label}: d x")
        for key, p in params.items():
            np.testing.assert_allclose(p.g, row["grads"][key], rtol=1e-4, atol=5e-5,
                                       err_msg=f"{label}: d {key}")
    nn.clear_parameters()


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set")
def test_nnabla_runs_the_written_statistics(tmp_path, rng):
    """nnabla 1.39 loads a file of a graph returning (y, mean, var) and computes our
    values."""
    pytest.importorskip("h5py")
    from test_nnp import _NNABLA_SCRIPT, _contents

    from symcompile.utils import save

    cases = []
    expected = []
    builds = [lambda x: F.layer_normalization(x, None, None, batch_axis=[0, 2],
                                              output_stat=True),
              lambda x: F.instance_normalization(x, None, None, output_stat=True),
              lambda x: F.group_normalization(x, None, None, 2, output_stat=True),
              lambda x: F.weight_standardization(x, channel_axis=1, output_stat=True)]
    for index, build in enumerate(builds):
        nn.clear_parameters()
        array = rng.normal(size=(2, 4, 3)).astype(np.float32)
        x = nn.Variable.from_numpy_array(array)
        x.name = "in0"
        outputs = {f"out{k}": o for k, o in enumerate(build(x))}
        path = tmp_path / f"case{index}.nnp"
        save.save(path, _contents({"in0": x}, outputs), variable_batch_size=False)
        F.sink(*outputs.values()).forward()
        expected.append([o.d.copy() for o in outputs.values()])
        cases.append({"name": str(index), "path": str(path), "outputs": list(outputs),
                      "inputs": {"in0": array.tolist()}})
    listing = tmp_path / "cases.json"
    listing.write_text(json.dumps(cases))
    rows = nnabla_rows(NNABLA, _NNABLA_SCRIPT, str(listing), tmp_path)
    assert [row["case"] for row in rows] == [c["name"] for c in cases]
    for row, want in zip(rows, expected, strict=True):
        assert "error" not in row, row
        for theirs, ours in zip(row["outputs"], want, strict=True):
            np.testing.assert_allclose(np.asarray(theirs).reshape(ours.shape), ours,
                                       rtol=2e-4, atol=2e-5, err_msg=row["case"])
    nn.clear_parameters()
