"""The LeNet example: its training graph compiles to an Adam step, and it learns the digits."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
from conftest import ROOT

import symcompile as nn
import symcompile.solvers as S


def _lenet():
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import lenet
    finally:
        sys.path.remove(str(ROOT / "examples"))
    return lenet


def test_lenet_adam_step_updates_parameters_and_running_statistics(tmp_path):
    """The model file's build() compiles with Adam; one adam_step on random data moves
    every trainable parameter and the batch normalizations' running statistics."""
    lenet = _lenet()
    nn.seed(0)
    loss, x, t, y = lenet.build()
    assert x.shape == (lenet.BATCH_SIZE, 1, lenet.SIDE, lenet.SIDE)
    assert y.shape == (lenet.BATCH_SIZE, lenet.CLASSES)
    module = nn.compile(loss, name="lenet_adam", output_dir=tmp_path, solver=S.Adam()).module
    assert module.RUNNING == ("lenet_conv1_bn_mean", "lenet_conv1_bn_var",
                              "lenet_conv2_bn_mean", "lenet_conv2_bn_var")
    parameters = nn.get_parameters(grad_only=False)
    params = {spec["argument"]: np.array(parameters[key].d)
              for key, spec in module.PARAMETERS.items()}
    trainable = [spec["argument"] for spec in module.PARAMETERS.values() if spec["need_grad"]]
    assert set(trainable) | set(module.RUNNING) == set(params)
    assert not set(trainable) & set(module.RUNNING)
    before = {name: value.copy() for name, value in params.items()}
    state = module.init_state()
    rng = np.random.default_rng(0)
    images = rng.random(x.shape, dtype=np.float32)
    labels = rng.integers(0, lenet.CLASSES, t.shape).astype(np.float32)
    value = float(module.adam_step(images, labels, *params.values(), *state.values(), 1,
                                   alpha=1e-3))
    assert np.isfinite(value) and 1.0 < value < 5.0  # about log(10) at the start
    for name in params:
        assert not np.array_equal(params[name], before[name]), name
    assert any(np.any(s != 0) for s in state.values())
    # the statistics moved towards the batch's: with momentum 0.9, a tenth of the way
    assert np.all(params["lenet_conv1_bn_var"] != 1)
    assert np.all(params["lenet_conv1_bn_mean"] != 0)


@pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                    reason="scikit-learn is not installed")
def test_lenet_reaches_97_percent(capsys):
    """LeNet (convolution, batch normalization, max pooling, relu, affine) trained with
    Adam through nnabla's loop; held-out accuracy through the batch_stat=False graph.
    One BLAS thread (threadpoolctl comes with scikit-learn): its matrices are small, and
    two threads on a busy two-core machine make the steps many times slower."""
    from threadpoolctl import threadpool_limits

    lenet = _lenet()
    with threadpool_limits(limits=1, user_api="blas"):
        accuracy = lenet.main(["--steps", "400", "--seed", "0"])
    out = capsys.readouterr().out
    assert accuracy >= 0.97, out
    for step in (1, 100, 200, 300, 400):
        assert f"step {step:5d}/400 [" in out, out
    assert "held-out accuracy" in out
