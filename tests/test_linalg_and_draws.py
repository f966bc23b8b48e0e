"""F.batch_inv, F.batch_det, F.batch_logdet and F.batch_cholesky (batched matrices
(B, N, N)); F.rand_binomial, F.rand_beta and F.rand_gamma (draws).

- forward against numpy.linalg in float64 (and a loop over the batch for the Cholesky
  factor, by the textbook recurrence) and gradients against central finite differences,
  through a compiled module (and its array API twin on array-api-strict arrays) and
  through the runtime (loss.forward(); loss.backward());
- nnabla's conventions: batch_logdet is log |det| (a negative determinant gives the log
  of its absolute value, gradient inv(x)^T still); batch_cholesky reads the lower
  triangle, `upper` gives the transpose, and its gradient is nnabla's symmetric one (so
  the cases differentiate through a symmetrised input, whose central differences see it);
- the draws: their moments and distributions (a KS test, a binomial's frequencies) at
  fixed seeds, with tolerances of several standard errors (the seeds fixed, nothing can
  flake), through the runtime and both backends' modules; seeded as rand is;
- bad input refused when the graph is built; nnabla 1.39's numbers (the draws: its
  moments) where it is installed.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from gradcheck import check_array_api, check_function, compile_f64, numeric_gradient
from nnabla_run import nnabla_rows, replay_row

import symcompile as nn
import symcompile.functions as F


def well_conditioned(batch=2, n=3, seed=0, sign=1.0):
    """Matrices near 2 I (or -2 I): determinants far from 0, condition numbers small."""
    def draw():
        rng = np.random.default_rng(seed)
        return [sign * (0.3 * rng.normal(size=(batch, n, n)) + 2 * np.eye(n))]
    return draw


def spd(batch=2, n=3, seed=0):
    """Symmetric positive definite matrices, well conditioned."""
    def draw():
        a = np.random.default_rng(seed).normal(size=(batch, n, n))
        return [a @ np.swapaxes(a, 1, 2) / n + np.eye(n)]
    return draw


def symmetric(x):
    """(x + x^T) / 2: the graph's input to batch_cholesky, so that a difference of one
    element moves the matrix symmetrically, as nnabla's symmetric gradient assumes."""
    return (x + F.transpose(x, (0, 2, 1))) * 0.5


def np_cholesky(a):
    """The lower factor of each matrix by the Cholesky-Banachiewicz recurrence (loops)."""
    out = np.zeros_like(a)
    for b in range(a.shape[0]):
        for i in range(a.shape[1]):
            for j in range(i + 1):
                s = a[b, i, j] - sum(out[b, i, k] * out[b, j, k] for k in range(j))
                out[b, i, j] = np.sqrt(s) if i == j else s / out[b, j, j]
    return out


def np_logdet(a):
    return np.array([np.log(abs(np.linalg.det(m))) for m in a])


def np_symmetric(a):
    return (a + np.swapaxes(a, 1, 2)) / 2


# (name, build, NumPy reference, inputs)
CASES = [
    ("batch_inv", F.batch_inv, np.linalg.inv, well_conditioned()),
    ("batch_inv three 4x4", F.batch_inv, np.linalg.inv,
     well_conditioned(3, 4, seed=1)),
    ("batch_inv of one 1x1", F.batch_inv, lambda a: 1 / a, well_conditioned(1, 1, seed=2)),
    ("batch_det", F.batch_det, np.linalg.det, well_conditioned()),
    ("batch_det negative", F.batch_det, np.linalg.det, well_conditioned(3, 3, 3, sign=-1.0)),
    ("batch_det 4x4", F.batch_det, np.linalg.det, well_conditioned(2, 4, seed=4)),
    ("batch_logdet", F.batch_logdet, np_logdet, well_conditioned()),
    ("batch_logdet negative determinant", F.batch_logdet, np_logdet,
     well_conditioned(2, 3, seed=5, sign=-1.0)),
    ("batch_logdet inside a product", lambda x: F.batch_logdet(x) * F.batch_det(x),
     lambda a: np_logdet(a) * np.linalg.det(a), well_conditioned(2, 2, seed=6)),
    ("batch_inv then batch_det", lambda x: F.batch_det(F.batch_inv(x) + x),
     lambda a: np.linalg.det(np.linalg.inv(a) + a), well_conditioned(2, 3, seed=7)),
    ("batch_cholesky", lambda x: F.batch_cholesky(symmetric(x)),
     lambda a: np_cholesky(np_symmetric(a)), spd()),
    ("batch_cholesky upper", lambda x: F.batch_cholesky(symmetric(x), upper=True),
     lambda a: np.swapaxes(np_cholesky(np_symmetric(a)), 1, 2), spd(3, 4, seed=1)),
    ("batch_cholesky 1x1", lambda x: F.batch_cholesky(symmetric(x)),
     lambda a: np.sqrt(a), spd(2, 1, seed=2)),
    ("batch_cholesky of a product", lambda x: F.batch_cholesky(
        F.batch_matmul(x, x, transpose_b=True) + 0.5 * F.constant(1.0, (1, 3, 3)) *
        F.reshape(F.eye_like(F.constant(0.0, (3, 3))), (1, 3, 3))),
     lambda a: np_cholesky(a @ np.swapaxes(a, 1, 2) + 0.5 * np.eye(3)), spd(2, 3, seed=3)),
]
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("name,build,reference,draw", CASES, ids=IDS)
def test_forward_and_gradients(name, build, reference, draw, tmp_path, rng):
    arrays = draw()
    module = check_function(build, reference, arrays, tmp_path, rng)
    nn.clear_parameters()
    check_array_api(build, arrays, module, tmp_path)


def test_cholesky_reference_is_numpys():
    (a,) = spd(2, 4)()
    np.testing.assert_allclose(np_cholesky(a), np.linalg.cholesky(a), rtol=1e-12)


# --- through the runtime: forward() and backward() on the Variables (float32) -----------------

def _leaf(array, need_grad=True):
    return nn.Variable.from_numpy_array(np.asarray(array, np.float32), need_grad=need_grad)


@pytest.mark.parametrize("name", ["batch_inv", "batch_det negative", "batch_logdet",
                                  "batch_cholesky", "batch_cholesky upper"])
def test_runtime_forward_and_backward(name, tmp_path):
    """loss.forward(); loss.backward() give the reference's values and the central
    differences of a float64 compiled forward, within float32 rounding."""
    _, build, reference, draw = CASES[IDS.index(name)]
    (a,) = draw()
    x = _leaf(a)
    out = build(x)
    weights = np.random.default_rng(5).normal(size=out.shape)
    loss = F.sum(out * _leaf(weights, False))
    loss.forward()
    x.grad.zero()
    loss.backward()
    np.testing.assert_allclose(out.d, reference(a), rtol=2e-4, atol=2e-5)
    v = nn.Variable(a.shape)
    v.name = "in0"
    w = nn.Variable(weights.shape)
    w.name = "weights"
    module = compile_f64(F.sum(build(v) * w), tmp_path, "fd").module
    order = [spec["name"] for spec in module.INPUTS.values()]
    values = {"in0": a, "weights": weights}

    def f(x_value):
        values["in0"] = x_value
        return module.forward(*[values[k] for k in order])

    expected = numeric_gradient(f, [a], 0)
    np.testing.assert_allclose(x.g, expected, rtol=2e-3, atol=2e-4, err_msg=name)


def test_cholesky_gradient_is_symmetric_and_upper_is_the_transposed_one():
    """nnabla's gradient is (S + S^T)/2; upper's is lower's for the transposed cotangent."""
    (a,) = spd(2, 3, seed=9)()
    g = np.random.default_rng(1).normal(size=a.shape)
    grads = []
    for upper, cotangent in ((False, g), (True, np.swapaxes(g, 1, 2))):
        x = _leaf(a)
        loss = F.sum(F.batch_cholesky(x, upper=upper) * _leaf(cotangent, False))
        loss.forward()
        x.grad.zero()
        loss.backward()
        grads.append(x.g.copy())
    np.testing.assert_allclose(grads[0], np.swapaxes(grads[0], 1, 2), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-5, atol=1e-6)


def test_logdet_is_of_the_absolute_value():
    (a,) = well_conditioned(2, 3, sign=-1.0)()
    assert np.all(np.linalg.det(a) < 0)
    y = F.batch_logdet(_leaf(a))
    y.forward()
    np.testing.assert_allclose(y.d, np.log(np.abs(np.linalg.det(a))), rtol=1e-5)


@pytest.mark.parametrize("call,error,message", [
    (lambda: F.batch_inv(nn.Variable((3, 3))), ValueError,
     r"F.batch_inv: the input of shape \(3, 3\) is not 3-D.*\(1, N, N\)"),
    (lambda: F.batch_det(nn.Variable((2, 3, 4))), ValueError,
     r"F.batch_det: the matrices of the input of shape \(2, 3, 4\) are not square"),
    (lambda: F.batch_logdet(nn.Variable((2, 1, 3, 3))), ValueError,
     r"F.batch_logdet: the input of shape \(2, 1, 3, 3\) is not 3-D"),
    (lambda: F.batch_cholesky(nn.Variable((2, 2, 3))), ValueError,
     r"F.batch_cholesky: the matrices .* are not square"),
    (lambda: F.batch_cholesky(nn.Variable((2, 3, 3)), upper="yes"), TypeError,
     r"F.batch_cholesky: upper must be True .* or False"),
])
def test_bad_input_is_refused_when_the_graph_is_built(call, error, message):
    with pytest.raises(error, match=message):
        call()


# --- nnabla 1.39 -------------------------------------------------------------------------------

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
# expressions of well-conditioned matrices m (2, 3, 3), n (3, 4, 4), a negative-determinant
# q (2, 3, 3) and SPD s (2, 3, 3), the same text in nnabla and here
EXPRESSIONS = [
    "F.batch_inv(m)",
    "F.batch_inv(n)",
    "F.batch_det(m)",
    "F.batch_det(q)",
    "F.batch_logdet(m)",
    "F.batch_logdet(q)",
    "F.batch_logdet(n) * F.batch_det(n)",
    "F.batch_cholesky(s)",
    "F.batch_cholesky(s, upper=True)",
    "F.batch_cholesky(s, upper=False) * 2",
    "F.batch_inv(F.batch_cholesky(s))",
]
NNABLA_SCRIPT = r"""
import json, sys
import numpy as np
import nnabla as nn, nnabla.functions as F

for i, text in enumerate(json.loads(sys.argv[1])):
    rng = np.random.RandomState(i)
    def leaf(array):
        return nn.Variable.from_numpy_array(np.asarray(array, np.float32), need_grad=True)
    a = rng.randn(2, 3, 3)
    values = dict(m=leaf(0.3 * rng.randn(2, 3, 3) + 2 * np.eye(3)),
                  n=leaf(0.3 * rng.randn(3, 4, 4) + 2 * np.eye(4)),
                  q=leaf(-0.3 * rng.randn(2, 3, 3) - 2 * np.eye(3)),
                  s=leaf(a @ a.transpose(0, 2, 1) / 3 + np.eye(3)))
    inputs = {k: v.d.tolist() for k, v in values.items()}
    out = eval(text, {"F": F, **values})
    g = np.asarray(rng.randn(*out.shape), np.float32)
    out.forward()
    for v in values.values():
        v.grad.zero()
    out.backward(g)
    print(json.dumps({"inputs": inputs, "g": g.tolist(),
                      "out": np.asarray(out.d, np.float64).tolist(),
                      "grads": {k: v.g.tolist() for k, v in values.items()}}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_functions_against_nnabla(tmp_path):
    """The output and every input's gradient of each expression equal nnabla 1.39's."""
    rows = nnabla_rows(NNABLA, NNABLA_SCRIPT, EXPRESSIONS, tmp_path)
    assert len(rows) == len(EXPRESSIONS)
    for text, row in zip(EXPRESSIONS, rows, strict=True):
        out, leaves = replay_row(text, row)
        np.testing.assert_allclose(out.d, row["out"], rtol=1e-4, atol=1e-5, err_msg=text)
        for k, grad in row["grads"].items():
            np.testing.assert_allclose(leaves[k].g, grad, rtol=1e-3, atol=1e-4,
                                       err_msg=f"{text}: d{k}")


# --- rand_binomial, rand_beta, rand_gamma ------------------------------------------------------

SAMPLES = 40000
# (expression, mean, variance): Beta(a, b) has mean a/(a+b) and variance
# ab/((a+b)^2 (a+b+1)); Gamma(k, theta) k*theta and k*theta^2; B(n, p) np and np(1-p).
DRAWS = [
    ("F.rand_binomial(5, 0.3, shape=(SAMPLES,), seed=3)", 1.5, 1.05),
    ("F.rand_binomial(shape=(SAMPLES,), seed=4)", 0.5, 0.25),  # nnabla's defaults: n=1, p=0.5
    ("F.rand_beta(2, 0.5, shape=(SAMPLES,), seed=5)", 0.8, 1 / (6.25 * 3.5)),
    ("F.rand_beta(shape=(SAMPLES,), seed=6)", 0.5, 0.125),  # alpha, beta <= 1: Johnk's in nnabla
    ("F.rand_gamma(1.5, 2, shape=(SAMPLES,), seed=7)", 3.0, 6.0),
    ("F.rand_gamma(shape=(SAMPLES,), seed=8)", 0.5, 0.5),  # k=0.5, theta=1
]


def _check_moments(values, mean, variance, what):
    """Mean within 6 standard errors, variance within 8% (a sample of 40000: its standard
    error is at most about 2% for these distributions)."""
    values = np.asarray(values, np.float64)
    assert abs(values.mean() - mean) < 6 * np.sqrt(variance / values.size), what
    assert abs(values.var() - variance) < 0.08 * variance, what


@pytest.mark.parametrize("text,mean,variance", DRAWS)
def test_draws_have_the_distributions_moments(text, mean, variance):
    y = eval(text, {"F": F, "SAMPLES": SAMPLES})
    y.forward()
    assert y.shape == (SAMPLES,) and y.d.dtype == np.float32
    _check_moments(y.d, mean, variance, text)
    first = y.d.copy()
    y.forward()  # a new draw every forward pass
    assert not np.array_equal(first, y.d)
    _check_moments(y.d, mean, variance, text)


def test_draws_follow_their_distributions():
    """A KS test for beta and gamma, the frequencies for the binomial (all at fixed
    seeds: p-values far from the thresholds)."""
    stats = pytest.importorskip("scipy.stats")
    for text, cdf in [("F.rand_beta(2, 0.5, shape=(SAMPLES,), seed=11)",
                       stats.beta(2, 0.5).cdf),
                      ("F.rand_beta(0.3, 0.8, shape=(SAMPLES,), seed=12)",
                       stats.beta(0.3, 0.8).cdf),
                      ("F.rand_gamma(1.5, 2, shape=(SAMPLES,), seed=13)",
                       stats.gamma(1.5, scale=2).cdf),
                      ("F.rand_gamma(0.5, 0.1, shape=(SAMPLES,), seed=14)",
                       stats.gamma(0.5, scale=0.1).cdf)]:
        y = eval(text, {"F": F, "SAMPLES": SAMPLES})
        y.forward()
        assert stats.kstest(y.d.astype(np.float64), cdf).pvalue > 1e-3, text
    y = F.rand_binomial(6, 0.4, shape=(SAMPLES,), seed=15)
    y.forward()
    counts = np.bincount(y.d.astype(int), minlength=7)
    assert counts.size == 7 and np.all(y.d == np.round(y.d))
    frequencies = counts / SAMPLES
    np.testing.assert_allclose(frequencies, stats.binom(6, 0.4).pmf(np.arange(7)), atol=0.01)


def test_draws_are_seeded_as_rand_is():
    """A seed gives the same numbers in every graph; -1 takes nn.seed's sequence."""
    values = []
    for _ in range(2):
        nn.clear_parameters()
        y = F.rand_gamma(2.0, 1.0, shape=(5,), seed=21) + F.rand_beta(shape=(5,))
        y.forward()
        values.append(y.d.copy())
    np.testing.assert_array_equal(values[0], values[1])
    runs = []
    for _ in range(2):
        nn.seed(313)
        y = F.rand_binomial(4, 0.5, shape=(6,))
        y.forward()
        runs.append(y.d.copy())
    np.testing.assert_array_equal(runs[0], runs[1])


def test_compiled_draws_on_both_backends(tmp_path):
    """The NumPy module and the array API module (array-api-strict) draw the same numbers
    from one seed, with the distributions' moments."""
    pytest.importorskip("array_api_strict")
    outputs = [eval(text, {"F": F, "SAMPLES": SAMPLES}) for text, _, _ in DRAWS]
    total = F.add_n(*outputs)
    numpy_module = nn.compile(total, name="draws", output_dir=tmp_path / "np",
                              dtype="float64").module
    strict = nn.compile(total, name="draws", output_dir=tmp_path / "xp", dtype="float64",
                        backend="array_api").module
    assert len(numpy_module.RANDOM_DRAWS) == len(DRAWS)
    ours = numpy_module.forward(rng=0)
    theirs = np.from_dlpack(strict.forward(rng=0))
    np.testing.assert_array_equal(ours, theirs)
    _check_moments(ours, sum(m for _, m, _ in DRAWS), sum(v for _, _, v in DRAWS),
                   "the sum of the draws")


@pytest.mark.parametrize("call,message", [
    (lambda: F.rand_binomial(0, 0.5, shape=(2,)), r"F.rand_binomial: n=0 must be a positive int"),
    (lambda: F.rand_binomial(2.5, 0.5), r"F.rand_binomial: n=2.5 must be a positive int"),
    (lambda: F.rand_binomial(2, 1.0), r"F.rand_binomial: p=1.0 must be in \(0, 1\)"),
    (lambda: F.rand_binomial(2, 0), r"F.rand_binomial: p=0 must be in \(0, 1\)"),
    (lambda: F.rand_beta(0, 1), r"F.rand_beta: alpha=0 must be greater than 0"),
    (lambda: F.rand_beta(1, -2), r"F.rand_beta: beta=-2 must be greater than 0"),
    (lambda: F.rand_gamma(-1), r"F.rand_gamma: k=-1 must be greater than 0"),
    (lambda: F.rand_gamma(1, 0), r"F.rand_gamma: theta=0 must be greater than 0"),
])
def test_bad_draw_arguments_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_bad_draw_seed_is_refused():
    with pytest.raises(TypeError, match="F.rand_gamma: seed must be an int"):
        F.rand_gamma(seed=1.5)


NNABLA_DRAWS_SCRIPT = r"""
import json, sys
import numpy as np
import nnabla as nn, nnabla.functions as F

for text, _, _ in json.loads(sys.argv[1]):
    y = eval(text, {"F": F, "SAMPLES": 40000})
    y.forward()
    d = np.asarray(y.d, np.float64)
    print(json.dumps({"shape": list(y.shape), "dtype": str(y.d.dtype), "mean": d.mean(),
                      "var": d.var(), "integers": bool(np.all(d == np.round(d)))}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_draws_against_nnabla(tmp_path):
    """nnabla 1.39's draws (its own generator: other numbers) have the shapes, dtype and
    moments ours have, under the same arguments and defaults."""
    rows = nnabla_rows(NNABLA, NNABLA_DRAWS_SCRIPT, DRAWS, tmp_path)
    assert len(rows) == len(DRAWS)
    for (text, mean, variance), row in zip(DRAWS, rows, strict=True):
        assert row["shape"] == [SAMPLES] and row["dtype"] == "float32", text
        assert abs(row["mean"] - mean) < 6 * np.sqrt(variance / SAMPLES), text
        assert abs(row["var"] - variance) < 0.08 * variance, text
        assert row["integers"] == text.startswith("F.rand_binomial"), text
