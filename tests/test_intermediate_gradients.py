"""`.g` of an intermediate variable after backward(), as nnabla 1.39 gives it.

nnabla writes d root / d v into the `.g` of every intermediate v a gradient flows
through, OVERWRITING it on each backward() (leaves accumulate), seeded by `grad`; the
root's own `.g` is left alone, and a branch cut by need_grad=False gets nothing. The
numbers in the first tests were measured with nnabla 1.39.
"""

from __future__ import annotations

import numpy as np

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF

X = np.array([[-1.0, 0.0, 0.5], [1.0, 2.0, -0.25]])


def sigmoid_chain():
    """out = reduce_sum(3 * sigmoid(x)): d out / d s = 3, d out / d t = 1."""
    x = nn.Variable([2, 3], need_grad=True)
    x.d = X
    s = F.sigmoid(x)
    t = F.mul_scalar(s, 3.0)
    out = F.reduce_sum(t)
    return x, s, t, out


def d_sigmoid(x):
    sig = 1 / (1 + np.exp(-x))
    return sig * (1 - sig)


def test_backward_writes_d_root_d_intermediate():
    x, s, t, out = sigmoid_chain()
    out.forward()
    x.grad.zero()
    out.backward()
    np.testing.assert_array_equal(s.g, np.full((2, 3), 3.0))
    np.testing.assert_array_equal(t.g, np.ones((2, 3)))
    np.testing.assert_allclose(x.g, 3 * d_sigmoid(X), rtol=1e-6)
    assert float(out.g) == 0.0  # the root's own gradient is not written


def test_a_second_backward_overwrites_intermediates_and_accumulates_leaves():
    x, s, t, out = sigmoid_chain()
    out.forward()
    x.grad.zero()
    out.backward()
    first = x.g.copy()
    np.testing.assert_array_equal(s.g, 3.0)
    out.backward()
    np.testing.assert_array_equal(s.g, 3.0)
    np.testing.assert_array_equal(t.g, 1.0)
    np.testing.assert_allclose(x.g, 2 * first, rtol=1e-6)


def test_the_backward_seed_scales_intermediate_gradients():
    x, s, t, out = sigmoid_chain()
    out.forward()
    x.grad.zero()
    out.backward(grad=2)
    np.testing.assert_array_equal(s.g, 6.0)
    np.testing.assert_array_equal(t.g, 2.0)
    np.testing.assert_allclose(x.g, 6 * d_sigmoid(X), rtol=1e-6)
    out.backward(grad=1)
    np.testing.assert_array_equal(s.g, 3.0)


def test_a_value_written_to_an_intermediate_g_is_overwritten_by_backward():
    x, s, t, out = sigmoid_chain()
    out.forward()
    s.g = 5
    t.g = np.full((2, 3), -7.0)
    out.backward()
    np.testing.assert_array_equal(s.g, 3.0)
    np.testing.assert_array_equal(t.g, 1.0)


def test_the_first_read_after_backward_already_gives_the_value():
    """Nothing asked for s.g before backward(): the first read computes what it was."""
    x, s, t, out = sigmoid_chain()
    out.forward()
    x.grad.zero()
    out.backward(grad=2)
    np.testing.assert_array_equal(s.g, 6.0)  # never read before
    np.testing.assert_allclose(x.g, 6 * d_sigmoid(X), rtol=1e-6)  # leaves untouched by it


def test_the_first_read_gives_the_latest_backward():
    x, s, t, out = sigmoid_chain()
    out.forward()
    out.backward(grad=2)
    out.backward(grad=5)
    np.testing.assert_array_equal(t.g, 5.0)  # never read before
    np.testing.assert_array_equal(s.g, 15.0)
    x.grad.zero()
    out.backward()
    np.testing.assert_array_equal(s.g, 3.0)


def test_intermediate_gradients_follow_new_values():
    x, s, t, out = sigmoid_chain()
    y = F.mul2(s, s)  # d loss / d y depends on nothing; d loss / d s on s
    loss = F.sum(F.mul2(y, x))
    loss.forward()
    loss.backward()
    sig = 1 / (1 + np.exp(-X))
    np.testing.assert_allclose(s.g, 2 * sig * X, rtol=1e-6)
    x.d = 2 * X
    loss.forward()
    loss.backward()
    sig = 1 / (1 + np.exp(-2 * X))
    np.testing.assert_allclose(s.g, 2 * sig * 2 * X, rtol=1e-6)
    np.testing.assert_allclose(y.g, 2 * X, rtol=1e-6)


def test_a_persistent_intermediate_keeps_its_gradient():
    x = nn.Variable([2, 3], need_grad=True)
    x.d = X
    y = F.tanh(x)
    y.persistent = True
    z = F.sum(y * y)
    z.forward()
    z.backward()
    np.testing.assert_allclose(y.g, 2 * np.tanh(X), rtol=1e-6)
    x.d = -X
    z.forward()
    z.backward()
    np.testing.assert_allclose(y.g, -2 * np.tanh(X), rtol=1e-6)


def test_an_intermediate_cut_off_by_need_grad_false_gets_no_gradient():
    x = nn.Variable([2, 3], need_grad=True)
    x.d = X
    a = F.sin(x)
    a.need_grad = False
    b = F.exp(a)  # downstream of the cut: no gradient flows through it
    c = F.cos(x)
    loss = F.sum(F.add2(b, c))
    b.g = 7.0
    loss.forward()
    x.grad.zero()
    loss.backward()
    np.testing.assert_array_equal(b.g, 7.0)  # not written
    np.testing.assert_array_equal(c.g, 1.0)
    np.testing.assert_allclose(x.g, -np.sin(X), rtol=1e-6)


# --- a hidden layer ---------------------------------------------------------------------

def mlp():
    """loss = mean((affine(tanh(affine(x, 5)), 2) - y)**2) with its hidden activation h."""
    rng = np.random.default_rng(7)
    x = nn.Variable((6, 4))
    x.d = rng.standard_normal((6, 4))
    y = nn.Variable((6, 2))
    y.d = rng.standard_normal((6, 2))
    with nn.parameter_scope("l1"):
        pre = PF.affine(x, 5)
    h = F.tanh(pre)
    with nn.parameter_scope("l2"):
        out = PF.affine(h, 2)
    loss = F.mean(F.squared_error(out, y))
    params = nn.get_parameters()
    for value in params.values():
        value.d = rng.uniform(-1, 1, size=value.shape)
    return x, y, h, loss, params


def rest_of_network(h, y, W2, b2):
    return np.mean((h @ W2 + b2 - y) ** 2)


def test_hidden_activation_gradient_matches_numpy_and_finite_differences():
    x, y, h, loss, params = mlp()
    loss.forward()
    loss.backward()
    xs, ys = x.d.astype(np.float64), y.d.astype(np.float64)
    W1, b1 = (params[f"l1/affine/{n}"].d.astype(np.float64) for n in "Wb")
    W2, b2 = (params[f"l2/affine/{n}"].d.astype(np.float64) for n in "Wb")
    hidden = np.tanh(xs @ W1 + b1)
    np.testing.assert_allclose(h.d, hidden, rtol=1e-5, atol=1e-6)
    g_out = 2 * (hidden @ W2 + b2 - ys) / ys.size
    expected = g_out @ W2.T
    np.testing.assert_allclose(h.g, expected, rtol=1e-4, atol=1e-6)
    eps = 1e-6
    numeric = np.zeros_like(hidden)
    for i in np.ndindex(hidden.shape):
        plus, minus = hidden.copy(), hidden.copy()
        plus[i] += eps
        minus[i] -= eps
        numeric[i] = (rest_of_network(plus, ys, W2, b2)
                      - rest_of_network(minus, ys, W2, b2)) / (2 * eps)
    np.testing.assert_allclose(h.g, numeric, rtol=1e-4, atol=1e-6)
    # and the first layer's weights get the gradient through h
    np.testing.assert_allclose(params["l1/affine/W"].g,
                               xs.T @ (expected * (1 - hidden**2)), rtol=1e-4, atol=1e-6)


def test_hidden_gradient_is_refreshed_by_each_training_step():
    import symcompile.solvers as S

    x, y, h, loss, params = mlp()
    solver = S.Sgd(lr=0.1)
    solver.set_parameters(params)
    for _ in range(3):
        loss.forward()
        solver.zero_grad()
        loss.backward()
        W2 = params["l2/affine/W"].d.astype(np.float64)
        b2 = params["l2/affine/b"].d.astype(np.float64)
        g_out = 2 * (h.d.astype(np.float64) @ W2 + b2 - y.d) / y.size
        np.testing.assert_allclose(h.g, g_out @ W2.T, rtol=1e-4, atol=1e-6)
        solver.update()
