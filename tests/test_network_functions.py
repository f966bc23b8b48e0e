"""Issue 3's functions: forward against NumPy, gradients against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import check_function, check_gradients

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF

SHAPES = [(2, 3, 4), (32, 1), (5,)]


def normal(rng, *shape):
    return rng.normal(size=shape)


def positive(rng, *shape):
    return rng.uniform(0.5, 2.0, size=shape)


def softmax_ref(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def sigmoid_ref(x):
    return 1 / (1 + np.exp(-x))


UNARY = [
    ("tanh", F.tanh, np.tanh, normal),
    ("sigmoid", F.sigmoid, sigmoid_ref, normal),
    ("relu", F.relu, lambda x: np.maximum(x, 0), normal),
    ("leaky_relu", F.leaky_relu, lambda x: np.where(x > 0, x, 0.1 * x), normal),
    ("leaky_relu 0.3", lambda x: F.leaky_relu(x, alpha=0.3),
     lambda x: np.where(x > 0, x, 0.3 * x), normal),
    ("elu", F.elu, lambda x: np.where(x >= 0, x, np.expm1(x)), normal),
    ("elu 0.5", lambda x: F.elu(x, alpha=0.5), lambda x: np.where(x >= 0, x, 0.5 * np.expm1(x)),
     normal),
    ("softplus", F.softplus, lambda x: np.log1p(np.exp(x)), normal),
    ("softplus beta", lambda x: F.softplus(x, beta=2.0), lambda x: np.log1p(np.exp(2 * x)) / 2,
     normal),
    ("exp", F.exp, np.exp, normal),
    ("log", F.log, np.log, positive),
    ("abs", F.abs, np.abs, normal),
    ("sin", F.sin, np.sin, normal),
    ("cos", F.cos, np.cos, normal),
    ("maximum_scalar", lambda x: F.maximum_scalar(x, 0.2), lambda x: np.maximum(x, 0.2), normal),
    ("minimum_scalar", lambda x: F.minimum_scalar(x, -0.2), lambda x: np.minimum(x, -0.2),
     normal),
    ("maximum_scalar default", F.maximum_scalar, lambda x: np.maximum(x, 1.0), normal),
    ("clip_by_value", lambda x: F.clip_by_value(x, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5),
     normal),
    ("identity", F.identity, lambda x: x, normal),
    ("chain", lambda x: F.tanh(F.sigmoid(F.mul_scalar(F.exp(x), 0.5))),
     lambda x: np.tanh(sigmoid_ref(0.5 * np.exp(x))), normal),
]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name,build,reference,sample", UNARY, ids=[c[0] for c in UNARY])
def test_unary(name, build, reference, sample, shape, tmp_path, rng):
    check_function(build, reference, [sample(rng, *shape)], tmp_path, rng)


BINARY = [
    ("maximum2", F.maximum2, np.maximum),
    ("minimum2", F.minimum2, np.minimum),
    ("absolute_error", F.absolute_error, lambda a, b: np.abs(a - b)),
    ("huber_loss", F.huber_loss,
     lambda a, b: np.where(np.abs(a - b) < 1, (a - b) ** 2, 2 * np.abs(a - b) - 1)),
    ("huber_loss 0.5", lambda a, b: F.huber_loss(a, b, delta=0.5),
     lambda a, b: np.where(np.abs(a - b) < 0.5, (a - b) ** 2, 0.5 * (2 * np.abs(a - b) - 0.5))),
    ("squared_error", F.squared_error, lambda a, b: (a - b) ** 2),
    ("clip_by_value variables", lambda x, lo: F.clip_by_value(x, lo, F.add_scalar(lo, 1.0)),
     lambda x, lo: np.minimum(np.maximum(x, lo), lo + 1.0)),
]


@pytest.mark.parametrize("shapes", [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (1, 3, 1)),
                                    ((1, 1), (32, 1))], ids=str)
@pytest.mark.parametrize("name,build,reference", BINARY, ids=[c[0] for c in BINARY])
def test_binary(name, build, reference, shapes, tmp_path, rng):
    check_function(build, reference, [rng.normal(size=s) for s in shapes], tmp_path, rng)


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 4)], ids=str)
def test_sigmoid_cross_entropy(shape, tmp_path, rng):
    """nnabla reads the target as integer labels: 0.7 counts as 0."""
    x = rng.normal(size=shape) * 3
    t = rng.integers(0, 2, size=shape).astype(np.float64)
    t.flat[0] = 0.7

    def reference(x, t):
        t = np.trunc(t)
        return -(t * np.log(sigmoid_ref(x)) + (1 - t) * np.log(1 - sigmoid_ref(x)))

    check_function(F.sigmoid_cross_entropy, reference, [x, t], tmp_path, rng,
                   need_grad=[True, False])


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 4)], ids=str)
def test_binary_cross_entropy(shape, tmp_path, rng):
    x, t = rng.uniform(0.1, 0.9, size=shape), rng.uniform(size=shape)
    check_function(F.binary_cross_entropy,
                   lambda x, t: -(t * np.log(x) + (1 - t) * np.log(1 - x)),
                   [x, t], tmp_path, rng, need_grad=[True, False])


REDUCTION_AXES = [(None, False), (None, True), (0, False), (1, True), (-1, False), (-1, True),
                  ((0, 2), False), ((0, 2), True), ((1, 2), False), ((0, 1, 2), True)]


@pytest.mark.parametrize("axis,keepdims", REDUCTION_AXES, ids=str)
@pytest.mark.parametrize("op", ["max", "min", "sum", "mean"])
def test_reductions(op, axis, keepdims, tmp_path, rng):
    check_function(lambda x: getattr(F, op)(x, axis=axis, keepdims=keepdims),
                   lambda x: getattr(np, op)(x, axis=axis, keepdims=keepdims),
                   [rng.normal(size=(2, 3, 4))], tmp_path, rng)


def test_max_gradient_goes_to_the_first_maximum(tmp_path):
    x = nn.Variable((2, 4), need_grad=True)
    x.d = [[1, 3, 3, 0], [2, 2, 2, 2]]
    y = F.sum(F.max(x, axis=1))
    y.forward()
    y.backward()
    np.testing.assert_array_equal(x.g, [[0, 1, 0, 0], [1, 0, 0, 0]])
    assert y.d == 5


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_family_over_every_axis(op, axis, tmp_path, rng):
    def reference(x):
        s = softmax_ref(x, axis)
        return s if op == "softmax" else np.log(s)

    check_function(lambda x: getattr(F, op)(x, axis=axis), reference,
                   [rng.normal(size=(2, 3, 4)) * 3], tmp_path, rng)


def test_softmax_default_axis_is_the_last(tmp_path, rng):
    check_function(F.softmax, lambda x: softmax_ref(x, -1), [rng.normal(size=(3, 5))],
                   tmp_path, rng)


def sce_reference(axis):
    def reference(x, t):
        logp = np.log(softmax_ref(x, axis))
        labels = t.astype(int)
        picked = np.take_along_axis(logp, np.maximum(labels, 0), axis=axis)
        return np.where(labels == -1, 0.0, -picked)

    return reference


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_softmax_cross_entropy_over_every_axis_with_ignored_labels(axis, tmp_path, rng):
    shape = (3, 4, 5)
    x = rng.normal(size=shape) * 2
    label_shape = list(shape)
    label_shape[axis] = 1
    t = rng.integers(0, shape[axis], size=label_shape).astype(np.float64)
    t.flat[0] = -1  # nnabla's "ignore" label: zero loss, zero gradient
    module = check_function(lambda x, t: F.softmax_cross_entropy(x, t, axis=axis),
                            sce_reference(axis), [x, t], tmp_path, rng,
                            need_grad=[True, False])
    assert module is not None


def test_softmax_cross_entropy_gradient_is_softmax_minus_onehot(tmp_path):
    x = nn.Variable((4, 3), need_grad=True)
    t = nn.Variable((4, 1))
    loss = F.mean(F.softmax_cross_entropy(x, t))
    result = nn.compile(loss, name="sce", output_dir=tmp_path)
    source = result.function_source("gradient")
    assert "numpy.exp" in source and "numpy.arange(3)" in source
    assert source.count("numpy.exp") == 1  # the forward's exp is reused by the gradient
    assert "softmax(x, axis=1)" in result.derivative_text()["x"]
    assert "onehot(t, 3)" in result.derivative_text()["x"]


@pytest.mark.parametrize("x_shape,w_shape,base_axis,bias", [
    ((4, 3), (3, 5), 1, True),
    ((4, 3), (3, 5), 1, False),
    ((2, 3, 4), (12, 5), 1, True),
    ((2, 3, 4), (4, 5), 2, True),
    ((4, 3), (3, 2, 5), 1, True),
    ((3,), (3, 2), 0, True),
])
def test_affine(x_shape, w_shape, base_axis, bias, tmp_path, rng):
    def reference(x, w, b=None):
        batch = int(np.prod(x_shape[:base_axis]))
        y = (x.reshape(batch, -1) @ w.reshape(w_shape[0], -1)).reshape(
            x_shape[:base_axis] + w_shape[1:])
        return y + b if b is not None else y

    arrays = [rng.normal(size=x_shape), rng.normal(size=w_shape)]
    if bias:
        arrays.append(rng.normal(size=w_shape[1:]))
    check_function(lambda *v: F.affine(*v[:2], v[2] if bias else None, base_axis=base_axis),
                   reference, arrays, tmp_path, rng)


@pytest.mark.parametrize("a_shape,b_shape,ta,tb", [
    ((2, 3, 4), (2, 4, 5), False, False),
    ((2, 4, 3), (2, 4, 5), True, False),
    ((2, 3, 4), (2, 5, 4), False, True),
    ((2, 1, 3, 4), (1, 3, 4, 2), False, False),
    ((1, 3, 4), (1, 4, 2), False, False),
])
def test_batch_matmul(a_shape, b_shape, ta, tb, tmp_path, rng):
    def reference(a, b):
        a = np.swapaxes(a, -1, -2) if ta else a
        b = np.swapaxes(b, -1, -2) if tb else b
        return a @ b

    check_function(lambda a, b: F.batch_matmul(a, b, transpose_a=ta, transpose_b=tb),
                   reference, [rng.normal(size=a_shape), rng.normal(size=b_shape)],
                   tmp_path, rng)


@pytest.mark.parametrize("a_shape,b_shape", [((3, 4), (4, 2)), ((4,), (4,)), ((4,), (4, 2)),
                                             ((3, 4), (4,)), ((2, 3, 4), (4, 5)),
                                             ((2, 3, 4), (4,)), ((3, 4), (2, 4, 5)),
                                             ((4,), (2, 4, 5)), ((4,), (3, 2, 4, 5))])
def test_matmul_operator(a_shape, b_shape, tmp_path, rng):
    check_function(lambda a, b: a @ b, np.matmul,
                   [rng.normal(size=a_shape), rng.normal(size=b_shape)], tmp_path, rng)


def test_reshape_transpose_broadcast(tmp_path, rng):
    check_function(lambda x: F.reshape(x, (4, -1)), lambda x: x.reshape(4, -1),
                   [rng.normal(size=(2, 3, 4))], tmp_path, rng)
    check_function(lambda x: F.transpose(x, (2, 0, 1)), lambda x: x.transpose(2, 0, 1),
                   [rng.normal(size=(2, 3, 4))], tmp_path, rng)
    check_function(lambda x: F.broadcast(x, (2, 3, 4)),
                   lambda x: np.broadcast_to(x, (2, 3, 4)),
                   [rng.normal(size=(1, 3, 1))], tmp_path, rng)
    check_function(lambda x: F.tanh(F.reshape(F.transpose(x, (1, 0)), (6,))),
                   lambda x: np.tanh(x.T.reshape(6)), [rng.normal(size=(2, 3))],
                   tmp_path, rng)


def test_bad_network_input():
    x = nn.Variable((8, 3, 4))
    with pytest.raises(ValueError, match=r"F\.affine.*\(8, 3, 4\).*12.*\(10, 5\)"):
        F.affine(x, nn.Variable((10, 5)))
    with pytest.raises(ValueError, match=r"bias of shape \(4,\).*\(12, 5\)"):
        F.affine(x, nn.Variable((12, 5)), nn.Variable((4,)))
    with pytest.raises(ValueError, match=r"F\.softmax: axis 3 is out of range"):
        F.softmax(x, axis=3)
    with pytest.raises(ValueError, match=r"F\.max: axis -4"):
        F.max(x, axis=-4)
    with pytest.raises(ValueError, match=r"target of shape \(8,\).*\(8, 3, 4\).*"
                                         r"\(8, 1, 4\)"):
        F.softmax_cross_entropy(x, nn.Variable((8,)), axis=1)
    with pytest.raises(ValueError, match=r"F\.reshape: cannot reshape \(8, 3, 4\)"):
        F.reshape(x, (5, -1))
    with pytest.raises(ValueError, match=r"F\.transpose"):
        F.transpose(x, (0, 0, 1))
    with pytest.raises(ValueError, match=r"F\.broadcast"):
        F.broadcast(x, (8, 2, 4))
    with pytest.raises(ValueError, match=r"F\.batch_matmul.*inner sizes differ"):
        F.batch_matmul(nn.Variable((2, 3, 4)), nn.Variable((2, 3, 4)))
    # nnabla: "Input must be >=3 dimensions", and "ndim of inputs[0] (3) must be ndim of
    # inputs[1] (4)"
    for a, b in [((3, 4), (4, 2)), ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 2, 4, 5))]:
        with pytest.raises(ValueError, match=r"F\.batch_matmul: inputs of shapes .* must "
                                             r"have the same rank, at least 3.*F\.affine"):
            F.batch_matmul(nn.Variable(a), nn.Variable(b))


def test_nnabla_conventions_at_kinks_and_ties():
    """Derivatives where the function is not differentiable follow nnabla's backward()."""
    x0 = nn.Variable((4,), need_grad=True)
    x1 = nn.Variable((4,), need_grad=True)
    x0.d = [0.0, 1.0, 2.0, -1.0]
    x1.d = [0.0, 1.0, 1.0, 0.0]
    cases = [
        (lambda: F.maximum2(x0, x1), [0, 0, 1, 0], [1, 1, 0, 1]),  # ties go to x1
        (lambda: F.minimum2(x0, x1), [0, 0, 0, 1], [1, 1, 1, 0]),
        (lambda: F.abs(x0), [1, 1, 1, -1], [0, 0, 0, 0]),  # +1 at 0
        (lambda: F.absolute_error(x0, x1), [-1, -1, 1, -1], [1, 1, -1, 1]),  # -1 at d == 0
        (lambda: F.relu(x0), [0, 1, 1, 0], [0, 0, 0, 0]),
        (lambda: F.leaky_relu(x0, 0.25), [0.25, 1, 1, 0.25], [0, 0, 0, 0]),
        (lambda: F.elu(x0, 2.0), [1, 1, 1, 2 * np.exp(-1)], [0, 0, 0, 0]),
        (lambda: F.maximum_scalar(x0, 1.0), [0, 0, 1, 0], [0, 0, 0, 0]),
        (lambda: F.clip_by_value(x0, 0.0, 2.0), [0, 1, 0, 0], [0, 0, 0, 0]),
    ]
    for build, g0, g1 in cases:
        x0.grad.zero()
        x1.grad.zero()
        y = F.sum(build())
        y.forward()
        y.backward()
        np.testing.assert_allclose(x0.g, g0, rtol=1e-6)
        np.testing.assert_allclose(x1.g, g1, rtol=1e-6)
        assert x0.g.dtype == np.float32


def test_initializers_draw_from_nnabla_prng():
    import symcompile.initializer as I

    nn.seed(313)
    first = I.UniformInitializer((-1, 1))((3,))
    nn.seed(313)
    again = I.UniformInitializer((-1, 1))((3,))
    np.testing.assert_array_equal(first, again)
    # (as float32, the dtype nnabla's initializers return)
    np.testing.assert_array_equal(first,
                                  np.float32(np.random.RandomState(313).uniform(-1, 1, 3)))
    assert first.dtype == np.float32


@pytest.mark.parametrize("name,build", [
    ("tanh of -x - y", lambda x, y: F.tanh(-x - y)),
    ("sin of x - y - exp(x)", lambda x, y: F.sin(x - y - F.exp(x))),
    ("cos of -x - y", lambda x, y: F.cos(-x - y)),
    ("abs of -x - y", lambda x, y: F.abs(-x - y)),
    ("tanh of log_softmax", lambda x, y: F.tanh(F.log_softmax(x)) * y),
    ("tanh of tanh of sum", lambda x, y: F.tanh(F.tanh(F.sum(x * y, axis=1, keepdims=True)))),
], ids=lambda v: v if isinstance(v, str) else "")
def test_functions_of_sums_with_leading_minus_signs(name, build, tmp_path, rng):
    """SymPy flips tanh(-u) to -tanh(u) endlessly under the compiler's distribute(False)
    when both u and -u look negative; and the display sum once printed as SymPy's Sum."""
    x, y = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    references = {
        "tanh of -x - y": lambda x, y: np.tanh(-x - y),
        "sin of x - y - exp(x)": lambda x, y: np.sin(x - y - np.exp(x)),
        "cos of -x - y": lambda x, y: np.cos(-x - y),
        "abs of -x - y": lambda x, y: np.abs(-x - y),
        "tanh of log_softmax": lambda x, y: np.tanh(np.log(softmax_ref(x, -1))) * y,
        "tanh of tanh of sum": lambda x, y: np.tanh(np.tanh((x * y).sum(1, keepdims=True))),
    }
    check_function(build, references[name], [x, y], tmp_path, rng)


def test_sympy_functions_of_composites(tmp_path, rng):
    """SymPy's sin evaluation calls expand(complex=True) on its argument: a composite's
    own expansion must not be called `expand`."""
    x = rng.normal(size=(2, 3))
    check_function(lambda v: F.sin(F.mul_scalar(F.log_softmax(v), 1.5)),
                   lambda v: np.sin(1.5 * np.log(softmax_ref(v, -1))), [x], tmp_path, rng)


def test_shared_temporaries_keep_their_shapes_when_renumbered(tmp_path, rng):
    """Renumbering _t3 -> _t5 while _t5 -> _t2 once left _t5 with _t2's shape, and a
    matrix product then met a "scalar" operand."""
    arrays = [rng.normal(size=(3, 1)), rng.normal(size=(1, 2)), rng.normal(size=(2, 2))]

    def build(x, w, v):
        h = F.affine(F.affine(x, w), v)
        return F.add2(F.mean(h), F.mean(F.sigmoid(F.softmax(x, axis=0))))

    def reference(x, w, v):
        return (x @ w @ v).mean() + (1 / (1 + np.exp(-softmax_ref(x, 0)))).mean()

    check_function(build, reference, arrays, tmp_path, rng)


@pytest.mark.parametrize("name", ["sum of a broadcast", "reshape of x - x",
                                  "softmax of a sum", "log_softmax over a length-1 axis"])
def test_constants_and_cancelling_gradients_keep_their_shapes(name, tmp_path, rng):
    """A gradient smaller than its array (a sum's scalar), a value SymPy folds to a
    constant (x - x) and a gradient that cancels to 0 must keep their arrays' shapes."""
    cases = {
        "sum of a broadcast": ((1,), lambda x: F.broadcast(x, (3,)),
                               lambda x: np.broadcast_to(x, (3,))),
        "reshape of x - x": ((2,), lambda x: F.reshape(F.sub2(x, x), (1, 2)),
                             lambda x: np.zeros((1, 2))),
        "softmax of a sum": ((4, 2), lambda x: F.softmax(F.sum(x, axis=1)),
                             lambda x: softmax_ref(x.sum(1), 0)),
        "log_softmax over a length-1 axis": ((3, 1), lambda x: F.log_softmax(x, axis=1),
                                             lambda x: np.zeros((3, 1))),
    }
    shape, build, reference = cases[name]
    check_function(build, reference, [rng.normal(size=shape)], tmp_path, rng)
    x = nn.Variable(shape, need_grad=True)  # and with the plain sum's scalar cotangent
    result = nn.compile(F.sum(build(x)), output_dir=tmp_path / "sum", dtype="float64")
    values = rng.normal(size=shape)
    gradient = result.module.gradient(values)[1]
    expected = {"sum of a broadcast": np.full(shape, 3.0)}.get(name)
    assert gradient.shape == shape
    if expected is not None:
        np.testing.assert_allclose(gradient, expected)


@pytest.mark.parametrize("name", ["relu + maximum_scalar", "relu - maximum_scalar",
                                  "clip with broadcast bounds"])
def test_kink_derivatives_combine_as_numbers(name, tmp_path, rng):
    """Kink derivatives are boolean masks; summed, subtracted or dotted together they must
    count as 0 and 1 (NumPy's bool + bool is a logical or)."""
    x = rng.choice([-1.5, -0.7, 0.8, 1.9], size=(4, 2))
    cases = {
        "relu + maximum_scalar": ([x], lambda v: F.relu(v) + F.maximum_scalar(v, 0.5),
                                  lambda v: np.maximum(v, 0) + np.maximum(v, 0.5)),
        "relu - maximum_scalar": ([x], lambda v: F.relu(v) - F.maximum_scalar(v, 0.5),
                                  lambda v: np.maximum(v, 0) - np.maximum(v, 0.5)),
        "clip with broadcast bounds": (
            [x, np.array([[-0.3]]), np.array([[1.2, -1.0]])],
            lambda v, lo, hi: F.clip_by_value(v, lo, hi),
            lambda v, lo, hi: np.minimum(np.maximum(v, lo), hi)),
    }
    arrays, build, reference = cases[name]
    check_function(build, reference, arrays, tmp_path, rng)
    leaves = [nn.Variable(a.shape, need_grad=True) for a in arrays]
    for i, leaf in enumerate(leaves):
        leaf.name = f"v{i}"
    module = nn.compile(F.sum(build(*leaves)), output_dir=tmp_path / "s", dtype="float64").module
    check_gradients(module, {f"v{i}": a for i, a in enumerate(arrays)})


def test_pf_affine_takes_array_initializers():
    x = nn.Variable((2, 3))
    PF.affine(x, 4, w_init=np.ones((3, 4)), b_init=np.arange(4.0))
    params = nn.get_parameters()
    np.testing.assert_array_equal(params["affine/W"].d, np.ones((3, 4)))
    np.testing.assert_array_equal(params["affine/b"].d, np.arange(4.0))
