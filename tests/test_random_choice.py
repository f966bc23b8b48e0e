"""F.random_choice: samples of each population (the last axis of x) drawn with the
probabilities its weights w give, with or without replacement.

nnabla's draws cannot be reproduced, so the draws are checked by their statistics and
their semantics, and nnabla 1.39 for shapes and the gradient's rule:
- with replacement, each position's frequency over many samples against w / sum(w);
  without, the frequency of each ordered pair against successive sampling's
  probabilities, no position twice in a row, zero weights never drawn;
- the gradient, as nnabla's: dy added into x where each sample was read, and into w at
  the same places (measured on nnabla 1.39: both gradients equal); d/dx against central
  finite differences at fixed draws (one rng seed);
- the NumPy and array API modules draw the same samples from one seed, and one seed
  repeats them;
- weights nnabla refuses are refused when the module runs, shapes when the graph is
  built; with SYMCOMPILE_NNABLA_PYTHON set, nnabla infers the same output shapes.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
from gradcheck import named_inputs
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.functions as F

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
WEIGHTS = np.array([[1.0, 2.0, 7.0, 0.0], [7.0, 0.0, 2.0, 1.0]])
POPULATION = np.array([[11.0, 22.0, 33.0, 44.0], [110.0, 220.0, 330.0, 440.0]])


def _module(tmp_path, shape, replace, backend="numpy", name="choice"):
    x, w = named_inputs([POPULATION, WEIGHTS])
    y = F.random_choice(x, w, shape=shape, replace=replace)
    return nn.compile(y, name=name, output_dir=tmp_path / backend, dtype="float64",
                      backend=backend).module


def _positions(y):
    """Which element of its population each sample is (the populations' values are
    distinct)."""
    flat = y.reshape(2, -1)
    return np.stack([np.searchsorted(POPULATION[r], flat[r]) for r in range(2)])


def test_with_replacement_each_position_comes_as_often_as_its_weight(tmp_path):
    module = _module(tmp_path, (100, 100), True)
    y = module.forward(POPULATION, WEIGHTS, rng=1)
    assert y.shape == (2, 100, 100)
    positions = _positions(y)
    for r in range(2):
        frequency = np.bincount(positions[r], minlength=4) / positions.shape[1]
        expected = WEIGHTS[r] / WEIGHTS[r].sum()
        # 10,000 samples: a standard error of at most 0.005
        np.testing.assert_allclose(frequency, expected, atol=0.02)
        assert frequency[WEIGHTS[r] == 0].sum() == 0


def test_without_replacement_pairs_come_as_successive_sampling_gives(tmp_path):
    module = _module(tmp_path, (2,), False)
    counts = {}
    runs = 3000
    for seed in range(runs):
        first_row = tuple(_positions(module.forward(POPULATION, WEIGHTS, rng=seed))[0])
        assert first_row[0] != first_row[1]
        counts[first_row] = counts.get(first_row, 0) + 1
    p = WEIGHTS[0] / WEIGHTS[0].sum()
    for a, b in itertools.permutations(range(4), 2):
        expected = p[a] * p[b] / (1 - p[a])  # (0 where either weight is 0)
        assert counts.get((a, b), 0) / runs == pytest.approx(expected, abs=0.03), (a, b)


def test_every_sample_without_replacement_is_a_different_element(tmp_path):
    module = _module(tmp_path, (3,), False)
    for seed in range(20):
        positions = _positions(module.forward(POPULATION, WEIGHTS, rng=seed))
        assert all(len(set(row)) == 3 for row in positions)
        assert all(WEIGHTS[r, p] > 0 for r in range(2) for p in positions[r])


def test_gradients_go_to_x_and_w_where_the_samples_were_read(tmp_path):
    x, w = named_inputs([POPULATION, WEIGHTS])
    y = F.random_choice(x, w, shape=(3, 5))
    dy = nn.Variable(y.shape)
    dy.name = "dy"
    module = nn.compile(F.sum(y * dy), name="weighted", output_dir=tmp_path,
                        dtype="float64").module
    cotangent = np.random.default_rng(0).normal(size=y.shape)
    forward = _module(tmp_path, (3, 5), True, name="same")
    for seed in range(3):
        total, dx, dw = module.gradient(POPULATION, WEIGHTS, cotangent, rng=seed)
        positions = _positions(forward.forward(POPULATION, WEIGHTS, rng=seed))
        expected = np.zeros((2, 4))
        for r in range(2):
            np.add.at(expected[r], positions[r], cotangent[r].ravel())
        np.testing.assert_allclose(dx, expected, rtol=1e-12)
        np.testing.assert_array_equal(dw, dx)  # nnabla's rule
        # d/dx by central differences at the same draws (the output is linear in x)
        eps = 1e-6
        for index in np.ndindex(2, 4):
            step = np.zeros((2, 4))
            step[index] = eps
            up = module.forward(POPULATION + step, WEIGHTS, cotangent, rng=seed)
            down = module.forward(POPULATION - step, WEIGHTS, cotangent, rng=seed)
            assert (up - down) / (2 * eps) == pytest.approx(dx[index], abs=1e-6)
        assert total == pytest.approx(np.sum(cotangent * POPULATION[np.arange(2)[:, None],
                                                                   positions].reshape(2, 3, 5)))


@pytest.mark.parametrize("replace,shape", [(True, (4, 3)), (False, (3,))])
def test_one_seed_gives_the_same_samples_on_both_backends(replace, shape, tmp_path):
    xps = pytest.importorskip("array_api_strict")
    numpy_module = _module(tmp_path, shape, replace)
    other = _module(tmp_path, shape, replace, backend="array_api")
    for seed in range(5):
        expected = numpy_module.forward(POPULATION, WEIGHTS, rng=seed)
        got = other.forward(xps.asarray(POPULATION), xps.asarray(WEIGHTS), rng=seed)
        np.testing.assert_array_equal(np.from_dlpack(got), expected)
        np.testing.assert_array_equal(numpy_module.forward(POPULATION, WEIGHTS, rng=seed),
                                      expected)
    assert not np.array_equal(numpy_module.forward(POPULATION, WEIGHTS, rng=1),
                              numpy_module.forward(POPULATION, WEIGHTS, rng=2))


def test_the_runtime_draws_anew_each_forward_pass():
    nn.seed(0)
    x = nn.Variable.from_numpy_array(POPULATION)
    w = nn.Variable.from_numpy_array(WEIGHTS)
    y = F.random_choice(x, w, shape=(8,))
    draws = set()
    for _ in range(4):
        y.forward()
        draws.add(y.d.tobytes())
        assert np.isin(y.d, POPULATION).all()
    assert len(draws) > 1
    assert y.shape == (2, 8) and F.random_choice(x, w).shape == (2, 1)


@pytest.mark.parametrize("weights,replace,message", [
    ([[1.0, -1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]], True,
     r"the weights must be finite and non-negative"),
    ([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]], True,
     r"each population needs a weight greater than 0"),
    ([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]], False,
     r"sampling 3 without replacement needs 3 positive weights"),
])
@pytest.mark.parametrize("backend", ["numpy", "array_api"])
def test_weights_nnabla_refuses_are_refused_when_the_module_runs(weights, replace, message,
                                                                 backend, tmp_path):
    if backend == "array_api":
        xps = pytest.importorskip("array_api_strict")
    module = _module(tmp_path, (3,), replace, backend=backend)
    args = [POPULATION, np.asarray(weights)]
    if backend == "array_api":
        args = [xps.asarray(a) for a in args]
    with pytest.raises(ValueError, match=r"F\.random_choice: " + message):
        module.forward(*args, rng=0)


def test_bad_shapes_are_refused_when_the_graph_is_built():
    x = nn.Variable((2, 3))
    with pytest.raises(ValueError, match=r"F\.random_choice: x of shape \(2, 3\), w of shape "
                                         r"\(2, 4\): x and w must have one shape"):
        F.random_choice(x, nn.Variable((2, 4)))
    with pytest.raises(ValueError, match=r"asks 4 samples without replacement of populations "
                                         r"of 3; draw at most 3, or replace=True"):
        F.random_choice(x, nn.Variable((2, 3)), shape=(2, 2), replace=False)
    with pytest.raises(TypeError, match=r"F\.random_choice: seed must be an int"):
        F.random_choice(x, nn.Variable((2, 3)), seed=1.5)


_NNABLA = r"""
import json, sys
import nnabla as nn
import nnabla.functions as F
for shape, kwargs in json.loads(sys.argv[1]):
    y = F.random_choice(nn.Variable(shape), nn.Variable(shape), **kwargs)
    print(json.dumps({"shape": list(y.shape)}))
"""
CALLS = [((2, 3), {}), ((3,), {}), ((3,), {"shape": [2, 2]}), ((2, 2, 5), {"shape": [3]}),
         ((2, 3), {"shape": [3], "replace": False})]


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set")
def test_nnabla_gives_the_same_shapes(tmp_path):
    rows = nnabla_rows(NNABLA, _NNABLA, CALLS, tmp_path)
    ours = [list(F.random_choice(nn.Variable(s), nn.Variable(s), **kw).shape)
            for s, kw in CALLS]
    assert [row["shape"] for row in rows] == ours
