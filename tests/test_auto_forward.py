"""nn.auto_forward / nn.set_auto_forward: dynamic graphs that compute as they are built.

- values are there as soon as a function returns, equal to the static graph's, for
  functions, operators and PF layers; backward() afterwards gives the static gradients;
- a layer called again with the same shapes reuses its compiled one-node module;
- batch normalization's running statistics move once per call, as in nnabla;
- the switch: set/get, and the context manager restoring the previous setting;
- nnabla's "by examples" tutorial (auto_forward included) runs unchanged.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF
from symcompile.runtime import execution

TUTORIALS = Path(__file__).parent / "tutorials"


def _network(x):
    h = F.tanh(PF.affine(x, 5, name="l1"))
    h = PF.batch_normalization(h, name="bn")
    y = PF.affine(h[:, 1:] * 2 + 1, 3, name="l2")
    return h, y


def test_values_are_computed_as_functions_are_called():
    rng = np.random.default_rng(0)
    x = nn.Variable.from_numpy_array(rng.normal(size=(6, 4)).astype(np.float32))
    t = nn.Variable.from_numpy_array(rng.integers(0, 3, size=(6, 1)).astype(np.float32))
    with nn.auto_forward():
        h, y = _network(x)
        loss = F.mean(F.softmax_cross_entropy(y, t))
        dynamic = (h.d.copy(), y.d.copy(), float(loss.d))
    stats = nn.get_parameters(grad_only=False)["bn/bn/mean"].d.copy()
    for p in nn.get_parameters().values():
        p.grad.zero()
    loss.backward()
    dynamic_grads = {k: p.g.copy() for k, p in nn.get_parameters().items()}
    # the same graph, static
    nn.get_parameters(grad_only=False)["bn/bn/mean"].d = 0
    nn.get_parameters(grad_only=False)["bn/bn/var"].d = 1
    h2, y2 = _network(x)
    loss2 = F.mean(F.softmax_cross_entropy(y2, t))
    loss2.forward()
    np.testing.assert_allclose(h2.d, dynamic[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(y2.d, dynamic[1], rtol=1e-5, atol=1e-6)
    assert np.isclose(float(loss2.d), dynamic[2], rtol=1e-6)
    np.testing.assert_allclose(nn.get_parameters(grad_only=False)["bn/bn/mean"].d, stats,
                               rtol=1e-6)  # one update per forward, either way
    for p in nn.get_parameters().values():
        p.grad.zero()
    loss2.backward()
    for key, p in nn.get_parameters().items():
        np.testing.assert_allclose(p.g, dynamic_grads[key], rtol=1e-5, atol=1e-7, err_msg=key)


def test_a_layer_called_again_reuses_its_module():
    x = nn.Variable.from_numpy_array(np.ones((2, 3), np.float32))
    with nn.auto_forward():
        F.tanh(PF.affine(x, 4))
        before = len(execution._modules)
        for _ in range(3):
            y = F.tanh(PF.affine(x, 4))
    assert len(execution._modules) == before
    np.testing.assert_allclose(y.d, np.tanh(x.d @ nn.get_parameters()["affine/W"].d),
                               rtol=1e-6)


def test_batch_normalization_updates_once_per_call():
    x = nn.Variable.from_numpy_array(np.arange(12, dtype=np.float32).reshape(4, 3))
    with nn.auto_forward():
        PF.batch_normalization(x)
        PF.batch_normalization(x)
    mean = nn.get_parameters(grad_only=False)["bn/mean"].d
    batch = x.d.mean(axis=0, keepdims=True)
    np.testing.assert_allclose(mean, 0.9 * (0.1 * batch) + 0.1 * batch, rtol=1e-6)


def test_the_switch():
    assert nn.get_auto_forward() is False
    nn.set_auto_forward(True)
    try:
        assert nn.get_auto_forward() is True
        with nn.auto_forward(False):
            assert nn.get_auto_forward() is False
            y = F.exp(nn.Variable.from_numpy_array(np.zeros(2)))
        assert nn.get_auto_forward() is True
        assert not y._storage.computed  # static inside: computed only when asked
    finally:
        nn.set_auto_forward(False)
    assert nn.get_auto_forward() is False


@pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                    reason="scikit-learn is not installed")
def test_by_examples_tutorial_runs_unchanged(tmp_path):
    """The tutorial's script (imports swapped, plots left out) runs to its end: its three
    training loops learn, the Siamese network trains from saved parameters, and the
    embedding of 512 images comes out of auto_forward."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TUTORIALS), *sys.path]),
               OPENBLAS_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(TUTORIALS / "by_examples_nnabla.py")],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "embedding: (512, 2)" in lines
    # the loops print "step loss" every 100 steps: logistic regression, the MLP, the CNN
    # and the RNN (1000 steps each) end below where they began
    loops, current = [], None
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():
            if parts[0] == "0":
                current = []
                loops.append(current)
            current.append(float(parts[1]))
    assert len(loops) >= 4, done.stdout[-2000:]
    for losses in loops[:4]:
        assert len(losses) == 10 and losses[-1] < 0.95 * losses[0], losses
    assert (tmp_path / "tmp.params.cnn.h5").is_file()
