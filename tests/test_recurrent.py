"""F.rnn, F.lstm, F.gru and PF.rnn, PF.lstm, PF.gru (nnabla 1.39's N-step layers).

Values and the gradients of every input and parameter are checked against a NumPy
implementation of nnabla's formulas written here (one step at a time, gate by gate) and
against central finite differences; the PF layers' parameters, the refused shapes and,
where SYMCOMPILE_NNABLA_PYTHON names nnabla 1.39's Python, nnabla's own numbers.
"""

from __future__ import annotations

import inspect
import os

import numpy as np
import pytest
from gradcheck import check_function
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF

GATES = {"rnn": (), "lstm": (4,), "gru": (3,)}
BIAS_GATES = {"rnn": (), "lstm": (4,), "gru": (4,)}


# --- the NumPy reference -------------------------------------------------------------------

def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _step(kind, x, h, c, w, b, nonlinearity):
    """One step of one direction: w ([G,] H, n_in + H), the input's columns first."""
    n_in = x.shape[1]

    def gate(k):  # W_x x + W_h h for gate k
        wk = w if k is None else w[k]
        return x @ wk[:, :n_in].T + h @ wk[:, n_in:].T

    if kind == "rnn":
        a = gate(None) + (0 if b is None else b)
        return (np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0)), None
    if kind == "lstm":
        i, f, g, o = (gate(k) + (0 if b is None else b[k]) for k in range(4))
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        return _sigmoid(o) * np.tanh(c), c
    b_r, b_z, b_in, b_hn = np.zeros((4, h.shape[1])) if b is None else b
    r = _sigmoid(gate(0) + b_r)
    z = _sigmoid(gate(1) + b_z)
    n = np.tanh(x @ w[2][:, :n_in].T + b_in + r * (h @ w[2][:, n_in:].T + b_hn))
    return (1 - z) * n + z * h, None


def reference(kind, x, h, c, w0, w, b, num_layers, bidirectional, nonlinearity="tanh"):
    """(y, h_n[, c_n]) of nnabla's N-step layers, in NumPy."""
    steps = x.shape[0]
    directions = 2 if bidirectional else 1
    inputs, last_h, last_c = list(x), [], []
    for layer in range(num_layers):
        weights = w0 if layer == 0 else w[layer - 1]
        outputs = []
        for d in range(directions):
            state = h[layer, d]
            cell = None if c is None else c[layer, d]
            states = [None] * steps
            for t in (range(steps) if d == 0 else reversed(range(steps))):
                state, cell = _step(kind, inputs[t], state, cell, weights[d],
                                    None if b is None else b[layer, d], nonlinearity)
                states[t] = state
            outputs.append(states)
            last_h.append(state)
            last_c.append(cell)
        inputs = [np.concatenate([o[t] for o in outputs], axis=1) for t in range(steps)]
    shape = (num_layers, directions) + h.shape[2:]
    result = [np.stack(inputs), np.reshape(last_h, shape)]
    return tuple(result + ([np.reshape(last_c, shape)] if kind == "lstm" else []))


def _arrays(kind, rng, steps, batch, n_in, hidden, num_layers, bidirectional, with_bias,
            scale=0.7):
    """{name: array} of random inputs for one configuration (None for those left out)."""
    D, L, H = 2 if bidirectional else 1, num_layers, hidden  # noqa: N806
    g, bg = GATES[kind], BIAS_GATES[kind]
    return {
        "x": rng.normal(size=(steps, batch, n_in)),
        "h": rng.normal(size=(L, D, batch, H)),
        "c": rng.normal(size=(L, D, batch, H)) if kind == "lstm" else None,
        "weight_l0": scale * rng.normal(size=(D,) + g + (H, n_in + H)),
        "weight": scale * rng.normal(size=(L - 1, D) + g + (H, D * H + H)) if L > 1 else None,
        "bias": rng.normal(size=(L, D) + bg + (H,)) if with_bias else None,
    }


def _call(kind, v, num_layers, bidirectional, nonlinearity="tanh", **more):
    """F.<kind> of the Variables (or arrays) `v` by name."""
    common = dict(weight=v["weight"], bias=v["bias"], num_layers=num_layers,
                  bidirectional=bidirectional, **more)
    if kind == "rnn":
        return F.rnn(v["x"], v["h"], v["weight_l0"], nonlinearity=nonlinearity, **common)
    if kind == "lstm":
        return F.lstm(v["x"], v["h"], v["c"], v["weight_l0"], **common)
    return F.gru(v["x"], v["h"], v["weight_l0"], **common)


CASES = [  # kind, num_layers, bidirectional, nonlinearity, with_bias, steps
    ("rnn", 1, False, "tanh", True, 3),
    ("rnn", 2, True, "relu", True, 3),
    ("rnn", 2, False, "tanh", False, 2),
    ("lstm", 1, False, "tanh", True, 3),
    ("lstm", 1, True, "tanh", False, 2),
    ("lstm", 2, True, "tanh", True, 2),
    ("gru", 1, True, "tanh", True, 3),
    ("gru", 2, False, "tanh", False, 2),
    ("gru", 2, True, "tanh", True, 1),
]


@pytest.mark.parametrize("kind, num_layers, bidirectional, nonlinearity, with_bias, steps",
                         CASES)
def test_values_and_gradients(kind, num_layers, bidirectional, nonlinearity, with_bias, steps,
                              tmp_path, rng):
    given = _arrays(kind, rng, steps, 2, 3, 2, num_layers, bidirectional, with_bias)
    names = [name for name, a in given.items() if a is not None]

    def outputs(values):
        return _call(kind, {**dict.fromkeys(given), **values}, num_layers, bidirectional,
                     nonlinearity)

    def build(*variables):  # every output, flattened into one vector
        out = outputs(dict(zip(names, variables, strict=True)))
        return F.concatenate(*(F.reshape(o, (-1,)) for o in out), axis=0)

    def expected(*arrays):
        values = {**dict.fromkeys(given), **dict(zip(names, arrays, strict=True))}
        out = reference(kind, values["x"], values["h"], values["c"], values["weight_l0"],
                        values["weight"], values["bias"], num_layers, bidirectional,
                        nonlinearity)
        return np.concatenate([o.ravel() for o in out])

    arrays = [given[name] for name in names]
    check_function(build, expected, arrays, tmp_path, rng, rtol=1e-5, atol=1e-7)


def test_output_shapes_and_runtime_values(rng):
    given = _arrays("lstm", rng, 3, 2, 4, 5, 2, True, True)
    variables = {k: None if a is None else nn.Variable.from_numpy_array(a, need_grad=True)
                 for k, a in given.items()}
    y, h_n, c_n = _call("lstm", variables, 2, True)
    assert (y.shape, h_n.shape, c_n.shape) == ((3, 2, 10), (2, 2, 2, 5), (2, 2, 2, 5))
    F.sink(y, h_n, c_n).forward()
    for got, want in zip((y, h_n, c_n), reference("lstm", *given.values(), 2, True),
                         strict=True):
        np.testing.assert_allclose(got.d, want, rtol=1e-5, atol=1e-6)


def test_dropout_is_not_applied_and_training_false_still_differentiates(rng):
    """nnabla 1.39's CPU layers give dropout=0's outputs whatever dropout is; with
    training=False its backward refuses to run, here it gives the derivatives."""
    given = _arrays("gru", rng, 3, 2, 3, 4, 2, False, True)
    results = []
    for more in ({}, {"dropout": 0.5}, {"training": False}, {"dropout": 0.5,
                                                              "training": False}):
        variables = {k: None if a is None else nn.Variable.from_numpy_array(a, need_grad=True)
                     for k, a in given.items()}
        y, h_n = _call("gru", variables, 2, False, **more)
        loss = F.sum(y * y) + F.sum(h_n)
        loss.forward()
        for v in variables.values():
            if v is not None:
                v.grad.zero()
        loss.backward()
        results.append([y.d.copy()] + [variables[k].g.copy() for k in ("x", "weight")])
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert np.abs(results[0][2]).sum() > 0


def test_ndarrays_are_computed_at_once(rng):
    given = _arrays("rnn", rng, 2, 2, 3, 2, 1, False, True)
    arrays = {k: None if a is None else nn.NdArray.from_numpy_array(a.astype(np.float32))
              for k, a in given.items()}
    y, h_n = _call("rnn", arrays, 1, False)
    assert isinstance(y, nn.NdArray)
    np.testing.assert_allclose(y.data, reference("rnn", *given.values(), 1, False)[0],
                               rtol=1e-5, atol=1e-6)


def test_signatures_are_nnablas():
    common = ("num_layers=1, dropout=None, bidirectional=False, training=True, "
              "n_outputs=-1, outputs=None)")
    assert str(inspect.signature(F.rnn)) == (
        "(x, h, weight_l0, weight=None, bias=None, num_layers=1, nonlinearity='tanh', "
        "dropout=None, bidirectional=False, training=True, n_outputs=-1, outputs=None)")
    assert str(inspect.signature(F.lstm)) == (
        "(x, h, c, weight_l0, weight=None, bias=None, " + common)
    assert str(inspect.signature(F.gru)) == "(x, h, weight_l0, weight=None, bias=None, " \
        + common
    pf_common = ("dropout=0.0, bidirectional=False, training=True, rng=None, with_bias=True, "
                 "fix_parameters=False)")
    assert str(inspect.signature(PF.rnn)) == (
        "(x, h, w0_init=None, w_init=None, b_init=None, num_layers=1, nonlinearity='tanh', "
        + pf_common)
    for layer, state in ((PF.lstm, "x, h, c"), (PF.gru, "x, h")):
        assert str(inspect.signature(layer)) == (
            f"({state}, w0_init=None, w_init=None, b_init=None, num_layers=1, " + pf_common)


# --- PF layers -----------------------------------------------------------------------------

@pytest.mark.parametrize("kind, bidirectional, num_layers, with_bias, expected", [
    ("rnn", False, 1, True, {"rnn/weight_l0": (1, 5, 7), "rnn/bias": (1, 1, 5)}),
    ("rnn", True, 2, True, {"rnn/weight_l0": (2, 5, 7), "rnn/weight": (1, 2, 5, 15),
                            "rnn/bias": (2, 2, 5)}),
    ("lstm", True, 2, True, {"lstm/weight_l0": (2, 4, 5, 7), "lstm/weight": (1, 2, 4, 5, 15),
                             "lstm/bias": (2, 2, 4, 5)}),
    ("lstm", False, 3, False, {"lstm/weight_l0": (1, 4, 5, 7),
                               "lstm/weight": (2, 1, 4, 5, 10)}),
    ("gru", False, 1, True, {"gru/weight_l0": (1, 3, 5, 7), "gru/bias": (1, 1, 4, 5)}),
    ("gru", True, 2, True, {"gru/weight_l0": (2, 3, 5, 7), "gru/weight": (1, 2, 3, 5, 15),
                            "gru/bias": (2, 2, 4, 5)}),
])
def test_pf_parameters(kind, bidirectional, num_layers, with_bias, expected):
    D = 2 if bidirectional else 1  # noqa: N806
    x = nn.Variable((3, 2, 2))
    h = nn.Variable((num_layers, D, 2, 5))
    layer = {"rnn": PF.rnn, "lstm": PF.lstm, "gru": PF.gru}[kind]
    args = (x, h, nn.Variable(h.shape)) if kind == "lstm" else (x, h)
    out = layer(*args, bidirectional=bidirectional, with_bias=with_bias)
    assert out[0].shape == (3, 2, D * 5)
    params = nn.get_parameters()
    assert {k: v.shape for k, v in params.items()} == expected
    if with_bias:
        assert np.all(params[f"{kind}/bias"].d == 0)
    w0 = params[f"{kind}/weight_l0"].d
    lim = np.sqrt(6.0 / (2 + 5))  # Glorot's for the input columns, I = 2 -> H = 5
    assert np.all(np.abs(w0[..., :2]) <= lim) and np.abs(w0[..., :2]).max() > lim / 2
    assert np.all(np.abs(w0[..., 2:]) <= np.sqrt(6.0 / 10))
    # a second call in the scope reuses them; `name` nests them; fixed ones get no grad
    layer(*args, bidirectional=bidirectional, with_bias=with_bias)
    assert len(nn.get_parameters()) == len(expected)
    for v in args:
        v.d = np.random.default_rng(0).normal(size=v.shape)
    for fixed in (False, True):
        nn.clear_parameters()
        loss = F.sum(layer(*args, bidirectional=bidirectional, with_bias=with_bias,
                           name="enc", fix_parameters=fixed)[0])
        w0 = nn.get_parameters()[f"enc/{kind}/weight_l0"]
        w0.grad.zero()
        loss.forward()
        loss.backward()
        assert (np.abs(w0.g).sum() == 0) == fixed


def test_pf_initializers_and_values(rng):
    x = nn.Variable.from_numpy_array(rng.normal(size=(2, 1, 3)))
    h = nn.Variable.from_numpy_array(rng.normal(size=(1, 1, 1, 2)))
    w0 = rng.normal(size=(1, 3, 2, 5)).astype(np.float32)
    y, h_n = PF.gru(x, h, w0_init=w0, b_init=nn.initializer.ConstantInitializer(0.5))
    params = nn.get_parameters()
    np.testing.assert_array_equal(params["gru/weight_l0"].d, w0)
    assert np.all(params["gru/bias"].d == 0.5)
    y.forward()
    want = reference("gru", x.d, h.d, None, w0, None, np.full((1, 1, 4, 2), 0.5), 1, False)
    np.testing.assert_allclose(y.d, want[0], rtol=1e-5, atol=1e-6)


# --- refused arguments ---------------------------------------------------------------------

def _v(*shape):
    return nn.Variable(shape)


BAD = [
    (lambda: F.rnn(_v(3, 4), _v(1, 1, 2, 5), _v(1, 5, 9)), "F.rnn: x has shape \\(3, 4\\)"),
    (lambda: F.rnn(_v(3, 2, 4), _v(1, 2, 5), _v(1, 5, 9)), "F.rnn: h has shape \\(1, 2, 5\\)"),
    (lambda: F.gru(_v(0, 2, 4), _v(1, 1, 2, 5), _v(1, 3, 5, 9)), "no time steps"),
    (lambda: F.rnn(_v(3, 2, 4), _v(2, 1, 2, 5), _v(1, 5, 9)),
     r"h has shape \(2, 1, 2, 5\); it must be .* = \(1, 1, 2, 5\)"),
    (lambda: F.rnn(_v(3, 2, 4), _v(1, 2, 2, 5), _v(1, 5, 9)), "bidirectional=False"),
    (lambda: F.rnn(_v(3, 2, 4), _v(1, 1, 3, 5), _v(1, 5, 9)), r"= \(1, 1, 2, 5\)"),
    (lambda: F.rnn(_v(3, 2, 4), _v(1, 1, 2, 5), _v(1, 5, 5)),
     r"F.rnn: weight_l0 has shape \(1, 5, 5\); it must be \(num_directions, hidden_size, "
     r"input_size \+ hidden_size\) = \(1, 5, 9\)"),
    (lambda: F.rnn(_v(3, 2, 4), _v(1, 1, 2, 5), _v(1, 5, 9), nonlinearity="sigmoid"),
     "nonlinearity='sigmoid'"),
    (lambda: F.rnn(_v(3, 2, 4), _v(1, 1, 2, 5), _v(1, 5, 9), _v(1, 1, 5, 10)),
     "weight .* cannot be passed when num_layers == 1"),
    (lambda: F.rnn(_v(3, 2, 4), _v(2, 1, 2, 5), _v(1, 5, 9), num_layers=2),
     r"weight is required when num_layers = 2 > 1.* \(1, 1, 5, 10\)"),
    (lambda: F.rnn(_v(3, 2, 4), _v(2, 1, 2, 5), _v(1, 5, 9), _v(1, 1, 5, 9), num_layers=2),
     r"F.rnn: weight has shape \(1, 1, 5, 9\); it must be .* = \(1, 1, 5, 10\)"),
    (lambda: F.rnn(_v(3, 2, 4), _v(1, 1, 2, 5), _v(1, 5, 9), bias=_v(1, 5)),
     r"F.rnn: bias has shape \(1, 5\); it must be \(1, 1, 5\)"),
    (lambda: F.rnn(_v(3, 2, 4), _v(1, 1, 2, 5), _v(1, 5, 9), dropout=1.5), "dropout=1.5"),
    (lambda: F.rnn(_v(3, 2, 4), _v(1, 1, 2, 5), _v(1, 5, 9), num_layers=0), "num_layers=0"),
    (lambda: F.lstm(_v(3, 2, 4), _v(1, 1, 2, 5), _v(1, 1, 2, 4), _v(1, 4, 5, 9)),
     r"F.lstm: c has shape \(1, 1, 2, 4\); it must have h's shape \(1, 1, 2, 5\)"),
    (lambda: F.lstm(_v(3, 2, 4), _v(1, 1, 2, 5), _v(1, 1, 2, 5), _v(1, 3, 5, 9)),
     r"F.lstm: weight_l0 has shape \(1, 3, 5, 9\); it must be \(num_directions, 4, "
     r"hidden_size, input_size \+ hidden_size\) = \(1, 4, 5, 9\)"),
    (lambda: F.lstm(_v(3, 2, 4), _v(1, 1, 2, 5), _v(1, 1, 2, 5), _v(1, 4, 5, 9),
                    bias=_v(1, 1, 20)), r"bias has shape \(1, 1, 20\); it must be \(1, 1, 4, 5\)"),
    (lambda: F.gru(_v(3, 2, 4), _v(1, 1, 2, 5), _v(1, 3, 5, 9), bias=_v(1, 1, 3, 5)),
     r"F.gru: bias has shape \(1, 1, 3, 5\); it must be \(1, 1, 4, 5\) \(GRU's four biases: "
     "b_r, b_z, b_in and b_hn\\)"),
    (lambda: F.gru(_v(3, 2, 4), _v(2, 2, 2, 5), _v(2, 3, 5, 9), _v(1, 2, 3, 5, 10),
                   num_layers=2, bidirectional=True),
     r"F.gru: weight has shape \(1, 2, 3, 5, 10\); it must be \(num_layers - 1, "
     r"num_directions, 3, hidden_size, num_directions \* hidden_size \+ hidden_size\) = "
     r"\(1, 2, 3, 5, 15\)"),
    (lambda: PF.lstm(_v(3, 4), _v(1, 1, 2, 5), _v(1, 1, 2, 5)), "PF.lstm: x has shape"),
    (lambda: PF.gru(_v(3, 2, 4), _v(2, 5)), "PF.gru: h has shape"),
]


@pytest.mark.parametrize("call, message", BAD)
def test_bad_arguments_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()
    assert not nn.get_parameters()  # (the PF layers check before creating any)


def test_non_variables_are_refused():
    with pytest.raises(TypeError, match="F.gru: weight_l0 must be a Variable"):
        F.gru(_v(3, 2, 4), _v(1, 1, 2, 5), [[1.0]])
    with pytest.raises(TypeError, match="F.lstm: c is required"):
        F.lstm(_v(3, 2, 4), _v(1, 1, 2, 5), None, _v(1, 4, 5, 9))


# --- nnabla 1.39 itself --------------------------------------------------------------------

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")

_NNABLA_SCRIPT = """
import json, sys
import numpy as np
import nnabla as nn
import nnabla.functions as F
import nnabla.parametric_functions as PF
request = json.loads(sys.argv[1])
for kind, L, bidirectional, nonlinearity, arrays, weights in request["calls"]:
    v = {k: None if a is None else nn.Variable.from_numpy_array(np.array(a, np.float32),
                                                                  need_grad=True)
         for k, a in arrays.items()}
    common = dict(weight=v["weight"], bias=v["bias"], num_layers=L,
                  bidirectional=bidirectional)
    if kind == "rnn":
        out = F.rnn(v["x"], v["h"], v["weight_l0"], nonlinearity=nonlinearity, **common)
    elif kind == "lstm":
        out = F.lstm(v["x"], v["h"], v["c"], v["weight_l0"], **common)
    else:
        out = F.gru(v["x"], v["h"], v["weight_l0"], **common)
    loss = F.add_n(*(F.sum(o * nn.Variable.from_numpy_array(np.array(w, np.float32)))
                     for o, w in zip(out, weights)))
    loss.forward()
    for x in v.values():
        if x is not None:
            x.grad.zero()
    loss.backward()
    print(json.dumps({"outputs": [o.d.tolist() for o in out],
                      "grads": {k: x.g.tolist() for k, x in v.items() if x is not None}}))
for kind, seed, bidirectional in request["layers"]:
    nn.clear_parameters()
    nn.seed(seed)
    x, h = nn.Variable((3, 2, 4)), nn.Variable((2, 2 if bidirectional else 1, 2, 5))
    args = (x, h, nn.Variable(h.shape)) if kind == "lstm" else (x, h)
    getattr(PF, kind)(*args, bidirectional=bidirectional)
    print(json.dumps({"parameters": {k: p.d.tolist() for k, p in
                                     nn.get_parameters().items()}}))
"""

NNABLA_LAYERS = [("rnn", 7, True), ("lstm", 8, True), ("gru", 9, False)]


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set")
def test_nnablas_numbers(tmp_path):
    rng = np.random.default_rng(5)
    calls = []
    for kind, L, bidirectional, nonlinearity, with_bias, steps in CASES:
        given = _arrays(kind, rng, steps, 2, 3, 4, L, bidirectional, with_bias)
        given = {k: None if a is None else a.astype(np.float32) for k, a in given.items()}
        out = reference(kind, *given.values(), L, bidirectional, nonlinearity)
        weights = [rng.normal(size=o.shape).astype(np.float32) for o in out]
        calls.append([kind, L, bidirectional, nonlinearity,
                      {k: None if a is None else a.tolist() for k, a in given.items()},
                      [w.tolist() for w in weights]])
    request = {"calls": calls, "layers": NNABLA_LAYERS}
    rows = nnabla_rows(NNABLA, _NNABLA_SCRIPT, request, tmp_path)
    assert len(rows) == len(calls) + len(NNABLA_LAYERS)
    for call, row in zip(calls, rows, strict=False):
        kind, L, bidirectional, nonlinearity, arrays, weights = call
        label = f"{kind} L={L} bidirectional={bidirectional} {nonlinearity}"
        v = {k: None if a is None else nn.Variable.from_numpy_array(np.array(a, np.float32),
                                                                    need_grad=True)
             for k, a in arrays.items()}
        out = _call(kind, v, L, bidirectional, nonlinearity)
        loss = F.sum(out[0] * nn.Variable.from_numpy_array(np.array(weights[0], np.float32)))
        for o, w in zip(out[1:], weights[1:], strict=True):
            loss = loss + F.sum(o * nn.Variable.from_numpy_array(np.array(w, np.float32)))
        loss.forward()
        for x in v.values():
            if x is not None:
                x.grad.zero()
        loss.backward()
        assert len(row["outputs"]) == len(out)
        for o, want in zip(out, row["outputs"], strict=True):
            np.testing.assert_allclose(o.d, np.array(want), rtol=1e-5, atol=1e-5,
                                       err_msg=label)
        assert set(row["grads"]) == {k for k, x in v.items() if x is not None}
        for name, want in row["grads"].items():
            np.testing.assert_allclose(v[name].g, np.array(want), rtol=1e-4, atol=1e-5,
                                       err_msg=f"{label}: gradient of {name}")
    layers = {"rnn": PF.rnn, "lstm": PF.lstm, "gru": PF.gru}
    for (kind, seed, bidirectional), row in zip(NNABLA_LAYERS, rows[len(calls):],
                                                strict=True):
        nn.clear_parameters()
        nn.seed(seed)
        x, h = nn.Variable((3, 2, 4)), nn.Variable((2, 2 if bidirectional else 1, 2, 5))
        args = (x, h, nn.Variable(h.shape)) if kind == "lstm" else (x, h)
        layers[kind](*args, bidirectional=bidirectional)
        params = nn.get_parameters()
        assert list(params) == list(row["parameters"])
        for name, want in row["parameters"].items():
            np.testing.assert_array_equal(params[name].d, np.array(want, np.float32),
                                          err_msg=name)


# --- PF.lstm_cell and PF.LSTMCell --------------------------------------------------------

def _lstm_cell_reference(x, h, c, w, b):
    """nnabla's lstm_cell: gates concat(x, h) @ W + b of shape (B, 4, H), in the order
    i, o, f, g."""
    gates = np.einsum("bk,kgh->bgh", np.concatenate([x, h], axis=1), w) + b
    i, o, f, g = (gates[:, k] for k in range(4))
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    c_next = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c_next), c_next


def test_lstm_cell_values_gradients_and_parameters(tmp_path):
    """Values against the reference; the gradients of x, h, c and both parameters against
    central differences (check_gradient, float64)."""
    draw = np.random.default_rng(4)
    x, h, c = (nn.Variable.from_numpy_array(draw.normal(size=(2, n)), need_grad=True)
               for n in (3, 4, 4))
    w, b = draw.normal(size=(7, 4, 4)) * 0.5, draw.normal(size=(4, 4)) * 0.5
    h_next, c_next = PF.lstm_cell(x, h, c, 4, w_init=w, b_init=b)
    assert {k: v.shape for k, v in nn.get_parameters().items()} == {
        "lstm/affine/W": (7, 4, 4), "lstm/affine/b": (4, 4)}
    F.sink(h_next, c_next).forward()
    for got, expected in zip((h_next, c_next),
                             _lstm_cell_reference(x.d, h.d, c.d, w, b), strict=True):
        np.testing.assert_allclose(got.d, expected, rtol=1e-5, atol=1e-6)
    weights = nn.Variable.from_numpy_array(draw.normal(size=(2, 4)))
    loss = F.sum(h_next * weights) + F.sum(c_next * c_next)
    report = nn.check_gradient(loss, output_dir=tmp_path)
    assert len(report) == 5 and all(passed for _, _, passed in report.values()), report


# Run as written by symcompile here and by nnabla 1.39 (the weights nnabla's initializers
# draw for one seed, two steps of an LSTMCell, the gradients).
CELL_SCENARIO = """
nn.clear_parameters()
nn.seed(3)
x = nn.Variable.from_numpy_array(np.array(x_values, np.float32), need_grad=True)
cell = PF.LSTMCell(2, 4, name="cell")
h1 = cell(x)
h2 = cell(x * 2)
loss = F.sum(h2 * h2) + F.sum(cell.c)
loss.forward()
x.grad.zero()
for p in nn.get_parameters().values():
    p.grad.zero()
loss.backward()
result = {"loss": float(loss.d), "x_grad": x.g.tolist(),
          "parameters": {k: [p.d.tolist(), p.g.tolist()]
                         for k, p in nn.get_parameters().items()}}
fresh = PF.LSTMCell(2, 4)
fresh.h.d, fresh.c.d = 1.0, 2.0
fresh.reset_state()
result["reset"] = [float(abs(fresh.h.d).max()), float(abs(fresh.c.d).max())]
"""

_CELL_SCRIPT = """
import json, sys
import numpy as np
import nnabla as nn
import nnabla.functions as F
import nnabla.parametric_functions as PF
scenario, x_values = json.loads(sys.argv[1])
exec(scenario)
print(json.dumps(result))
"""


def _cell_scenario(x_values) -> dict:
    names = {"nn": nn, "F": F, "PF": PF, "np": np, "x_values": x_values}
    exec(CELL_SCENARIO, names)  # noqa: S102 - the test's own text
    return names["result"]


def test_lstm_cell_keeps_its_state_and_resets_it():
    result = _cell_scenario([[0.5, -1.0, 0.25], [1.0, 0.0, -0.5]])
    assert set(result["parameters"]) == {"cell/lstm/affine/W", "cell/lstm/affine/b"}
    assert result["reset"] == [0.0, 0.0]
    assert np.isfinite(result["loss"])


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set")
def test_lstm_cell_gives_nnablas_numbers(tmp_path):
    x_values = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32).tolist()
    (row,) = nnabla_rows(NNABLA, _CELL_SCRIPT, [CELL_SCENARIO, x_values], tmp_path)
    ours = _cell_scenario(x_values)
    assert ours["loss"] == pytest.approx(row["loss"], rel=1e-5)
    np.testing.assert_allclose(ours["x_grad"], row["x_grad"], rtol=1e-5, atol=1e-6)
    assert set(ours["parameters"]) == set(row["parameters"])
    for key, (value, grad) in row["parameters"].items():
        np.testing.assert_array_equal(ours["parameters"][key][0], value, err_msg=key)
        np.testing.assert_allclose(ours["parameters"][key][1], grad, rtol=1e-5, atol=1e-6,
                                   err_msg=key)
    assert ours["reset"] == row["reset"]


def test_a_compiled_module_draws_the_layers_weights_alike(tmp_path):
    """init_parameters() of a module with PF.lstm draws weight_l0 as nnabla's layer does:
    Glorot uniform for the input's columns, then for the state's (not zeros)."""
    x, h, c = nn.Variable((3, 2, 4)), nn.Variable((1, 1, 2, 5)), nn.Variable((1, 1, 2, 5))
    x.name, h.name, c.name = "x", "h", "c"
    y, _, _ = PF.lstm(x, h, c)
    module = nn.compile(F.sum(y), name="lstm_init", output_dir=tmp_path).module
    w = module.init_parameters(seed=0)["lstm_weight_l0"]
    assert w.shape == (1, 4, 5, 9) and w.dtype == np.float32
    for columns, n_in in ((w[..., :4], 4), (w[..., 4:], 5)):
        limit = np.sqrt(6.0 / (n_in + 5))
        assert np.abs(columns).max() <= limit and np.abs(columns).max() > 0.8 * limit
    np.testing.assert_array_equal(w, module.init_parameters(seed=0)["lstm_weight_l0"])
