"""Second derivatives of every function, through nn.grad then backward(), against central
differences of the first, in float64.

Each case of tests/test_array_api_backend.py (every function symcompile has, at several
shapes and arguments) becomes the graph

    s = sum_k sum(out_k * w_k)            (the case's outputs, fixed random weights)
    g = nn.grad([s], inputs)              (first derivatives, values of the graph)
    loss = sum_j sum(g_j * d_j)           (fixed random directions)

whose compiled gradient d loss / d input (a second derivative of s, contracted) must equal
the central differences of the compiled forward (a first derivative). The inputs are moved
by 0.0137 off the points the cases place on purpose at kinks and ties (where a finite
difference of a derivative that jumps means nothing); the cases made of kinks and ties
only are left out, and so is spectral_norm, whose gradient is not a derivative (see
NOT_DERIVATIVES). A function whose second derivative is not implemented must say so when
the graph is compiled (UNSUPPORTED), so a silent wrong number cannot pass for one.
"""

from __future__ import annotations

import tempfile

import numpy as np
import pytest
from gradcheck import numeric_gradient
from test_array_api_backend import CASES, DEVICE_64, _draw, as_tuple, compile_both, on_device

import symcompile as nn
import symcompile.functions as F

# Kinks and ties by design: the first derivative jumps at the drawn points.
AT_KINKS = {name for name in CASES if name.startswith("kink ") or "with ties" in name}
# No second derivative yet: compiling says which primitive lacks one.
UNSUPPORTED: dict[str, str] = {
    # nnabla's symmetric Cholesky gradient is one kernel, not yet differentiated in L
    "batch_cholesky": "CholeskyGrad has no VJP",
}
# Nothing to differentiate: the random draws take no input.
NO_INPUTS = {"rand, randn, randint", "rand_binomial, rand_beta, rand_gamma",
             "onnx_non_max_suppression"}
# Gradients that are not derivatives of the forward function, by nnabla's definition: the
# power iteration's u and v are constants to spectral_norm's gradient, though the forward
# pass computes them from the weight, so differences of that gradient move them too; and
# image_augmentation has no gradient (nnabla's), so differences of a gradient that holds
# its value see a derivative the gradient does not; likewise unlink's zero gradient and the
# binary layers' straight-through one.
NOT_DERIVATIVES = {"spectral_norm", "image_augmentation", "trilu, eye_like, unlink, shape",
                   "binary_connect_*, binary_weight_*", "inq_affine, inq_convolution",
                   "nms_detection2d",  # (no gradient, as nnabla's, though it copies x)
                   "vat_noise",  # (no gradient: its backward writes eps * dy into w)
                   # (its case repeats values, whose ties a finite difference breaks;
                   # test_value_shaped.py checks unique's gradient on distinct values)
                   "unique nonzero"}
OFF_KINK = 0.0137
OUTPUT = tempfile.TemporaryDirectory(prefix="symcompile-second-derivatives-")


def second_derivative_graph(name: str):
    """The graph above for the case `name`, and its leaf values by name."""
    case = CASES[name]
    arrays = _draw(name, case)
    variables, values = [], {}
    for i, a in enumerate(arrays):
        v = nn.Variable(a.shape, need_grad=i not in case.labels)
        v.name = f"in{i}"
        variables.append(v)
        values[v.name] = a if i in case.labels else a + OFF_KINK
    rng = np.random.default_rng(len(name))
    s = None
    for k, out in enumerate(as_tuple(case.build(*variables))):
        weights = nn.Variable(out.shape)
        weights.name = f"weights{k}"
        values[weights.name] = rng.normal(size=out.shape)
        term = F.sum(out * weights)
        s = term if s is None else s + term
    grads = nn.grad([s], [v for v in variables if v.need_grad])
    loss = None
    for j, g in enumerate(grads):
        direction = nn.Variable(g.shape)
        direction.name = f"direction{j}"
        values[direction.name] = rng.normal(size=g.shape)
        term = F.sum(g * direction)
        loss = term if loss is None else loss + term
    return loss, values


def arguments(module, values) -> list[np.ndarray]:
    names = [spec["name"] for spec in module.INPUTS.values()] + list(module.PARAMETERS)
    return [np.asarray(values[name], dtype=np.float64) for name in names]


def pure(function, module):
    """`function` of the module on copies of the running statistics it updates in place
    and with the same random draws each call, so that every call sees the same state."""
    running = {i for i, name in enumerate([*module.INPUTS, *module.PARAMETERS])
               if name in getattr(module, "RUNNING", ())}
    draws = {"rng": 0} if getattr(module, "RANDOM_DRAWS", ()) else {}

    def call(*args):
        return function(*(a.copy() if i in running else a for i, a in enumerate(args)),
                        **draws)

    return call


CHECKED = [name for name in CASES
           if name not in AT_KINKS | set(UNSUPPORTED) | NO_INPUTS | NOT_DERIVATIVES]


@pytest.mark.parametrize("name", CHECKED)
def test_second_derivative_matches_differences_of_the_first(name):
    nn.clear_parameters()
    loss, values = second_derivative_graph(name)
    module = nn.compile(loss, name="second", output_dir=OUTPUT.name, dtype="float64",
                        solver=None).module
    args = arguments(module, values)
    result = pure(module.gradient, module)(*args)
    result = result if module.GRADIENTS else (result,)
    forward = pure(module.forward, module)
    np.testing.assert_allclose(result[0], forward(*args), rtol=1e-12, atol=1e-12)
    names = [spec["name"] for spec in module.INPUTS.values()] + list(module.PARAMETERS)
    for gradient_name, second in zip(module.GRADIENTS, result[1:], strict=True):
        expected = numeric_gradient(forward, args, names.index(gradient_name))
        np.testing.assert_allclose(second, expected, rtol=1e-5, atol=1e-6,
                                   err_msg=f"d loss / d {gradient_name}")


@pytest.mark.parametrize("name", [name for name in CHECKED if name.startswith("max_pooling")])
def test_array_api_second_derivative_of_max_pooling(name, tmp_path):
    """The array API backend's kernel of max pooling's second derivative (pool_max_pick),
    on array-api-strict arrays, gives the NumPy one's numbers."""
    nn.clear_parameters()
    loss, values = second_derivative_graph(name)
    modules = compile_both(loss, tmp_path, "pick", dtype="float64")
    args = arguments(modules["numpy"], values)
    expected = modules["numpy"].gradient(*args)
    got = modules["array_api"].gradient(*on_device(DEVICE_64)(args))
    for mine, theirs in zip(got, expected, strict=True):
        np.testing.assert_allclose(np.from_dlpack(mine), theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_missing_second_derivatives_are_refused_by_name(name):
    nn.clear_parameters()
    with pytest.raises(NotImplementedError, match=UNSUPPORTED[name]):
        loss, _ = second_derivative_graph(name)
        nn.compile(loss, name="second", output_dir=OUTPUT.name, dtype="float64", solver=None)


def test_a_missing_third_derivative_is_refused_by_name():
    """cumprod's second derivative is two kernels without VJPs of their own: a third
    derivative says so when compiled, rather than giving a number."""
    nn.clear_parameters()
    x = nn.Variable((2, 3), need_grad=True)
    (g,) = nn.grad([F.sum(F.cumprod(x, axis=1) ** 2)], [x])
    (h,) = nn.grad([F.sum(g ** 2)], [x])
    with pytest.raises(NotImplementedError, match="CumProd(Grad)?Jvp has no VJP"):
        nn.compile(F.sum(h ** 2), name="third", output_dir=OUTPUT.name, dtype="float64",
                   solver=None)


def test_every_case_is_checked_or_listed():
    assert set(CASES) == set(CHECKED) | AT_KINKS | set(UNSUPPORTED) | NO_INPUTS | NOT_DERIVATIVES
    assert len(CHECKED) > 200
