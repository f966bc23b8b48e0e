"""nn.grad: gradients as Variables of the graph, differentiable again.

- first derivatives against closed forms; second derivatives (a loss built on nn.grad's
  output, then backward()) against central finite differences in float64, through
  elementwise functions, affine layers, convolutions and pooling-free CNNs, softmax
  cross-entropy;
- grad_outputs as None, a number, an array or a Variable; several outputs and inputs; an
  input the outputs do not depend on gets zeros;
- nnabla 1.39's numbers for a gradient penalty where it is installed.
"""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF


def _passes(module):
    report = module.check_gradient()
    assert report and all(passed for *_, passed in report.values()), report


def test_first_and_second_derivative_of_an_elementwise_chain(tmp_path):
    x = nn.Variable.from_numpy_array(np.array([[0.3, -0.8, 1.2]]), need_grad=True)
    (gx,) = nn.grad([F.sum(F.tanh(x) ** 2 * 3)], [x])
    gx.forward()
    t = np.tanh(x.d)
    np.testing.assert_allclose(gx.d, 6 * t * (1 - t ** 2), rtol=1e-5)
    _passes(nn.compile(F.sum(gx ** 2), name="second", output_dir=tmp_path,
                       dtype="float64").module)


def test_gradient_penalty_on_an_mlp(tmp_path):
    rng = np.random.default_rng(0)
    x = nn.Variable.from_numpy_array(rng.normal(size=(4, 3)), need_grad=True)
    t = nn.Variable.from_numpy_array(rng.integers(0, 2, size=(4, 1)))
    y = PF.affine(F.tanh(PF.affine(x, 5, name="l1")), 2, name="l2")
    (gx,) = nn.grad([F.sum(y)], [x])
    penalty = F.mean((F.sum(gx ** 2, axis=1) ** 0.5 - 1) ** 2)
    loss = F.mean(F.softmax_cross_entropy(y, t)) + penalty
    _passes(nn.compile(loss, name="penalty", output_dir=tmp_path, dtype="float64").module)


def test_second_derivative_through_convolutions(tmp_path):
    rng = np.random.default_rng(1)
    x = nn.Variable.from_numpy_array(rng.normal(size=(2, 2, 5, 5)), need_grad=True)
    h = F.tanh(PF.convolution(x, 3, (3, 3), pad=(1, 1), name="c1"))
    y = PF.affine(PF.convolution(h, 2, (3, 3), stride=(2, 2), name="c2"), 1)
    (gx,) = nn.grad([y], [x])
    _passes(nn.compile(F.sum(gx ** 2) + F.sum(y), name="conv2", output_dir=tmp_path,
                       dtype="float64").module)


def test_grad_outputs_and_several_inputs():
    rng = np.random.default_rng(2)
    a = nn.Variable.from_numpy_array(rng.normal(size=(3,)), need_grad=True)
    b = nn.Variable.from_numpy_array(rng.normal(size=(3,)), need_grad=True)
    unused = nn.Variable.from_numpy_array(rng.normal(size=(2,)), need_grad=True)
    y1, y2 = a * b, F.sin(a)
    seed = rng.normal(size=(3,))
    for grad_outputs, scale in ((None, (1.0, 1.0)), ([2.0, 1.0], (2.0, 1.0)),
                                ([seed, nn.Variable.from_numpy_array(seed)], (seed, seed))):
        ga, gb, gu = nn.grad([y1, y2], [a, b, unused], grad_outputs=grad_outputs)
        F.sink(ga, gb, gu).forward()
        np.testing.assert_allclose(ga.d, scale[0] * b.d + scale[1] * np.cos(a.d), rtol=1e-5)
        np.testing.assert_allclose(gb.d, scale[0] * a.d, rtol=1e-5)
        np.testing.assert_array_equal(gu.d, 0)


@pytest.mark.parametrize("call,error,message", [
    (lambda x: nn.grad([], [x]), TypeError, r"nn.grad: outputs must be a Variable"),
    (lambda x: nn.grad([F.sum(x)], [np.zeros(3)]), TypeError, r"inputs must be a Variable"),
    (lambda x: nn.grad([F.sum(x)], [x], grad_outputs=[1, 2]), ValueError,
     r"2 grad_outputs for 1 outputs"),
    (lambda x: nn.grad([x * 2], [x], grad_outputs=[np.ones(4)]), ValueError,
     r"grad_outputs\[0\] of shape \(4,\) does not fit output 0 of shape \(3,\)"),
])
def test_bad_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call(nn.Variable((3,), need_grad=True))


NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
NNABLA_PENALTY = r"""
import json
import numpy as np
import nnabla as nn, nnabla.functions as F, nnabla.parametric_functions as PF
rng = np.random.RandomState(0)
x = nn.Variable.from_numpy_array(rng.randn(4, 3).astype(np.float32), need_grad=True)
y = PF.affine(F.tanh(PF.affine(x, 5, name="l1")), 2, name="l2")
gx = nn.grad([F.sum(y)], [x])[0]
penalty = F.mean((F.sum(gx ** 2, axis=1) ** 0.5 - 1) ** 2)
params = nn.get_parameters()
penalty.forward()
for p in params.values():
    p.grad.zero()
x.grad.zero()
penalty.backward()
print(json.dumps({"x": x.d.tolist(), "params": {k: p.d.tolist() for k, p in params.items()},
                  "gx": gx.d.tolist(), "penalty": float(penalty.d),
                  "grads": {k: p.g.tolist() for k, p in params.items()}}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_gradient_penalty_against_nnabla(tmp_path):
    done = subprocess.run([NNABLA, "-c", NNABLA_PENALTY], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path,
                          env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert done.returncode == 0, done.stderr[-3000:]
    row = json.loads(done.stdout.splitlines()[-1])
    x = nn.Variable.from_numpy_array(np.array(row["x"], np.float32), need_grad=True)
    y = PF.affine(F.tanh(PF.affine(x, 5, name="l1")), 2, name="l2")
    params = nn.get_parameters()
    for key, p in params.items():
        p.d = np.array(row["params"][key], np.float32)
    gx = nn.grad([F.sum(y)], [x])[0]
    penalty = F.mean((F.sum(gx ** 2, axis=1) ** 0.5 - 1) ** 2)
    penalty.forward()
    penalty.backward()
    np.testing.assert_allclose(gx.d, row["gx"], rtol=1e-5, atol=1e-6)
    assert np.isclose(float(penalty.d), row["penalty"], rtol=1e-5)
    for key, p in params.items():
        np.testing.assert_allclose(p.g, row["grads"][key], rtol=1e-4, atol=1e-6, err_msg=key)
