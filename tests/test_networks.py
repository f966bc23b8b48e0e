"""Networks end to end: fused code for MLPs, and the digits example's accuracy."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
from conftest import ROOT
from gradcheck import check_gradients, compile_f64

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF


def three_layer_tanh_mlp(batch=8, features=5, hidden=(7, 6), classes=4):
    x = nn.Variable((batch, features))
    x.name = "x"
    t = nn.Variable((batch, 1))
    t.name = "t"
    h = x
    for i, size in enumerate(hidden):
        h = F.tanh(PF.affine(h, size, name=f"layer{i + 1}"))
    y = PF.affine(h, classes, name="out")
    return F.mean(F.softmax_cross_entropy(y, t))


def test_parameters_are_named_and_initialised_as_nnabla_does():
    x = nn.Variable((4, 6))
    with nn.parameter_scope("net"):
        PF.affine(x, 3)
        PF.affine(x, (2, 5), name="wide", with_bias=False)
        PF.affine(x, 3, name="frozen", fix_parameters=True)
    params = nn.get_parameters()
    assert list(params) == ["net/affine/W", "net/affine/b", "net/wide/affine/W",
                            "net/frozen/affine/W", "net/frozen/affine/b"]
    w = params["net/affine/W"].d
    limit = np.sqrt(6 / (6 + 3))
    assert w.shape == (6, 3) and np.abs(w).max() <= limit and np.abs(w).max() > 0
    assert (params["net/affine/b"].d == 0).all()
    assert params["net/wide/affine/W"].shape == (6, 2, 5)
    assert params["net/frozen/affine/W"].need_grad  # registered as trainable...
    nn.seed(7)
    again = nn.Variable((4, 6))
    with nn.parameter_scope("fresh"):
        a = PF.affine(again, 3)
    nn.seed(7)
    with nn.parameter_scope("fresh2"):
        b = PF.affine(again, 3)
    w1 = nn.get_parameters()["fresh/affine/W"].d
    w2 = nn.get_parameters()["fresh2/affine/W"].d
    np.testing.assert_array_equal(w1, w2)  # nn.seed makes initialisation reproducible
    assert a.shape == b.shape == (4, 3)


def test_fixed_parameters_get_no_gradient():
    x = nn.Variable((4, 6))
    x.d = np.random.RandomState(0).randn(4, 6)
    with nn.parameter_scope("frozen"):
        y = PF.affine(x, 3, fix_parameters=True)
    with nn.parameter_scope("free"):
        z = PF.affine(y, 2)
    loss = F.sum(z)
    loss.forward()
    loss.backward()
    params = nn.get_parameters()
    assert np.abs(params["free/affine/W"].g).sum() > 0
    assert (params["frozen/affine/W"].g == 0).all()


def test_three_layer_tanh_mlp_gradient_matches_finite_differences(tmp_path, rng):
    loss = three_layer_tanh_mlp()
    result = compile_f64(loss, tmp_path, "mlp3")
    values = {"x": rng.normal(size=(8, 5)), "t": rng.integers(0, 4, (8, 1)).astype(float)}
    values["t"][0, 0] = -1
    for name, param in nn.get_parameters().items():
        values[name] = rng.normal(size=param.shape) * 0.5
    check_gradients(result.module, values, rtol=1e-5, atol=1e-8)


def test_mlp_code_has_one_fused_statement_per_chain(tmp_path):
    loss = three_layer_tanh_mlp()
    source = nn.compile(loss, name="mlp3", output_dir=tmp_path).function_source("sgd_step")
    body = [line.strip() for line in source.splitlines()
            if line.strip() and not line.strip().startswith(("#", '"""', "def "))]
    # forward: each layer's affine + bias + tanh is one statement, computing its array once
    tanh_lines = [line for line in body if "numpy.tanh(" in line]
    assert len(tanh_lines) == 2
    assert all(re.match(r"h(_\d)? = numpy\.tanh\(.* @ .* \+ .*\)$", line) for line in tanh_lines)
    # backward: tanh' reuses the forward value, and matmul gradients are matmuls
    assert "1 - h**2" in source and "1 - h_2**2" in source
    assert source.count("numpy.tanh(") == 2
    # the weight gradient is a matmul, computed in the update with lr on the smaller side
    assert re.search(r"layer1_affine_W -= (lr\*x\.T @ _t\d+|x\.T @ \(lr\*_t\d+\))", source)
    assert re.search(r"@ layer2_affine_W\.T", source)
    # softmax cross-entropy's gradient: softmax - onehot, one exp for forward and backward
    assert source.count("numpy.exp(") == 1
    assert "numpy.select" not in source and "functools" not in source


def test_relu_prints_as_maximum_and_its_derivative_as_a_mask(tmp_path):
    x = nn.Variable((3, 4), need_grad=True)
    loss = F.sum(F.pow_scalar(F.relu(x), 2))
    source = nn.compile(loss, name="relu", output_dir=tmp_path).source
    assert "numpy.maximum(x, 0)" in source and "(x > 0)" in source
    assert "numpy.select" not in source and "reduce" not in source


@pytest.mark.skipif("sklearn" not in sys.modules and
                    __import__("importlib").util.find_spec("sklearn") is None,
                    reason="scikit-learn is not installed")
def test_digits_mlp_reaches_95_percent(capsys):
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import digits_mlp
    finally:
        sys.path.remove(str(ROOT / "examples"))
    accuracy = digits_mlp.main(["--epochs", "30"])
    out = capsys.readouterr().out
    assert accuracy >= 0.95, out
    assert "epoch  30/30" in out and "held-out accuracy" in out


@pytest.mark.skipif(__import__("importlib").util.find_spec("sklearn") is None,
                    reason="scikit-learn is not installed")
def test_digits_cnn_reaches_97_percent(capsys):
    """nnabla's tutorial CNN (convolution, batch normalization, pooling, tanh, affine)
    trained with nnabla's loop; held-out accuracy through the batch_stat=False graph."""
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import digits_cnn
    finally:
        sys.path.remove(str(ROOT / "examples"))
    accuracy = digits_cnn.main([])
    out = capsys.readouterr().out
    assert accuracy >= 0.97, out
    assert "step  1500/1500" in out and "held-out accuracy" in out
