"""F.dropout (y = x * mask / (1 - p), a fresh mask per forward pass) and the random
draws F.rand, F.randn and F.randint.

- the runtime: the backward pass uses the mask of its forward pass; each forward draws a
  new one; nn.seed and dropout's `seed` make runs reproducible; about 1 - p of the
  elements are kept and the scale keeps the mean;
- generated modules: the masks come from the functions' `rng` argument (a seed gives the
  same masks, so gradient() agrees with finite differences of forward()); the fused step
  equals forward + backward + update with the same seed; the masks are saved for the
  split backward(); both backends draw the same masks from one seed;
- p = 0 is the identity; bad arguments are refused.
"""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import arguments, check_gradients, compile_f64

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF
import symcompile.solvers as S


def _graph(shape=(40, 30), p=0.3, seed=-1):
    x = nn.Variable(shape, need_grad=True)
    x.name = "x"
    y = F.dropout(x, p=p, seed=seed)
    w = nn.Variable.from_numpy_array(np.random.default_rng(1).normal(size=shape))
    return x, y, F.sum(y * w), w


def test_backward_uses_the_mask_of_its_forward():
    x, y, loss, w = _graph()
    x.d = np.random.default_rng(0).uniform(1, 2, size=x.shape)  # never 0
    for _ in range(3):
        loss.forward()
        x.grad.zero()
        loss.backward()
        kept = y.d != 0
        np.testing.assert_allclose(y.d, np.where(kept, x.d / 0.7, 0), rtol=1e-6)
        np.testing.assert_allclose(x.g, np.where(kept, w.d / 0.7, 0), rtol=1e-6)


def test_values_of_a_dropped_sink_are_those_of_its_one_pass():
    """nnabla's idiom F.sink(a, b).forward(), whose root is garbage at once: the values
    read afterwards come from that one forward pass (one mask), not from a new one."""
    x = nn.Variable.from_numpy_array(np.arange(1.0, 13.0, dtype=np.float32).reshape(2, 6))
    dropped = F.dropout(x, p=0.5)
    total = F.sum(dropped, axis=1)
    F.sink(total, dropped).forward()
    np.testing.assert_allclose(total.d, dropped.d.sum(axis=1), rtol=1e-6)


def test_each_forward_draws_a_new_mask_at_rate_p():
    x, y, loss, _ = _graph((200, 100), p=0.3)
    x.d = 1.0
    masks = []
    for _ in range(2):
        loss.forward()
        masks.append(y.d != 0)
    assert not np.array_equal(masks[0], masks[1])
    for mask in masks:
        assert abs(mask.mean() - 0.7) < 0.01  # 20000 draws: 0.7 +- 0.0032 (std)
    assert abs(y.d.mean() - 1.0) < 0.02  # the scale 1 / (1 - p) keeps the mean


def test_runs_are_reproducible():
    def losses(**kwargs):
        nn.clear_parameters()
        nn.seed(7)
        x, _, loss, _ = _graph(**kwargs)
        x.d = 1.0
        out = []
        for _ in range(3):
            loss.forward()
            out.append(float(loss.d))
        return out

    assert losses() == losses()
    assert losses(seed=5) == losses(seed=5)
    assert losses(seed=5) != losses(seed=6)


def test_p_zero_is_the_identity():
    x, y, loss, w = _graph(p=0.0)
    x.d = np.random.default_rng(0).normal(size=x.shape)  # (float64: y is its float32 values)
    loss.forward()
    np.testing.assert_array_equal(y.d, x.d.astype(np.float32))


def test_module_masks_come_from_rng(tmp_path):
    """The same seed gives the same masks, so gradient() is the gradient of forward()
    (finite differences); other seeds give other masks."""
    nn.clear_parameters()
    x = nn.Variable((6, 4), need_grad=True)
    x.name = "x"
    h = F.dropout(F.tanh(PF.affine(x, 5)), p=0.4)
    loss = F.sum(F.dropout(h, p=0.2) ** 2)
    module = compile_f64(loss, tmp_path).module
    assert len(module.RANDOM_DRAWS) == 2
    values = {"x": np.random.default_rng(0).normal(size=(6, 4)),
              **{k: v.d for k, v in nn.get_parameters().items()}}
    args = arguments(module, values)
    assert module.forward(*args, rng=3) == module.forward(*args, rng=3)
    assert module.forward(*args, rng=3) != module.forward(*args, rng=4)
    generator = np.random.default_rng(5)
    assert module.forward(*args, rng=generator) != module.forward(*args, rng=generator)

    class Seeded:  # check_gradients' module, calling with one seed throughout
        def __getattr__(self, name):
            function = getattr(module, name)
            return (lambda *a: function(*a, rng=11)) if callable(function) else function

    check_gradients(Seeded(), values)
    assert all(passed for *_, passed in module.check_gradient().values())


def test_fused_step_and_split_backward_use_the_forward_masks(tmp_path):
    nn.clear_parameters()
    x, t = nn.Variable((8, 6)), nn.Variable((8, 1))
    x.name, t.name = "x", "t"
    y = PF.affine(F.dropout(F.relu(PF.affine(x, 16, name="l1")), p=0.5), 3, name="l2")
    loss = F.mean(F.softmax_cross_entropy(y, t))
    module = nn.compile(loss, name="drop_step", output_dir=tmp_path, solver=S.Sgd(0.1)).module
    rng = np.random.default_rng(0)
    data = [rng.normal(size=(8, 6)).astype(np.float32),
            rng.integers(0, 3, size=(8, 1)).astype(np.float32)]
    params = [np.array(v.d) for v in nn.get_parameters().values()]
    # forward_saving + backward with the same seed = gradient()
    loss_value, *grads = module.gradient(*data, *params, rng=9)
    out, saved = module.forward_saving(*data, *params, rng=9)
    split = module.backward(saved, *data, *params, np.float32(1))
    assert out == loss_value
    for a, b in zip(grads, split, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    # the fused step: the parameters minus lr * gradient() of the same masks
    stepped = [p.copy() for p in params]
    assert module.sgd_step(*data, *stepped, lr=0.1, rng=9) == loss_value
    for before, after, g in zip(params, stepped, grads, strict=True):
        np.testing.assert_allclose(after, before - 0.1 * g, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("call,error,message", [
    (lambda x: F.dropout(x, p=1.0), ValueError, r"F.dropout: p=1.0 must be in \[0, 1\)"),
    (lambda x: F.dropout(x, p=-0.1), ValueError, r"must be in \[0, 1\)"),
    (lambda x: F.dropout(x, p="half"), TypeError, r"F.dropout: p must be a real number"),
    (lambda x: F.dropout(x, seed=1.5), TypeError, r"F.dropout: seed must be an int"),
])
def test_bad_arguments_are_refused(call, error, message):
    with pytest.raises(error, match=message):
        call(nn.Variable((2, 3)))


def test_two_dropouts_of_one_shape_draw_two_masks(tmp_path):
    """Each draw is its own array: two dropouts of the same input and rate are not one."""
    x = nn.Variable.from_numpy_array(np.ones((50, 40), np.float32))
    a, b = F.dropout(x, 0.5), F.dropout(x, 0.5)
    loss = F.sum(F.squared_error(a, b))
    module = nn.compile(loss, name="two_masks", output_dir=tmp_path).module
    assert len(module.RANDOM_DRAWS) == 2
    assert module.forward(x.d, rng=0) > 0
    loss.forward()
    assert float(loss.d) > 0


def test_random_draws():
    nn.seed(3)
    u = F.rand(-1, 2, shape=(4000,))
    n = F.randn(0.5, 2.0, shape=(4000,))
    i = F.randint(1, 5, shape=(4000,))
    F.sink(u, n, i).forward()
    assert u.d.min() >= -1 and u.d.max() < 2 and abs(u.d.mean() - 0.5) < 0.05
    assert abs(n.d.mean() - 0.5) < 0.1 and abs(n.d.std() - 2.0) < 0.1
    assert set(np.unique(i.d)) == {1, 2, 3, 4}
    first = u.d.copy()
    F.sink(u, n, i).forward()
    assert not np.array_equal(first, u.d)  # drawn anew by every forward pass


def test_random_draws_are_seeded_and_the_same_on_both_backends(tmp_path):
    x = nn.Variable((3,), need_grad=True)
    x.name = "x"
    loss = F.sum(x * F.rand(shape=(3,)) + F.randn(shape=(3,)))
    args = [np.ones(3, np.float32)]
    numpy_module = nn.compile(loss, name="r_np", output_dir=tmp_path).module
    api_module = nn.compile(loss, name="r_api", output_dir=tmp_path, backend="array_api").module
    assert numpy_module.forward(*args, rng=5) == numpy_module.forward(*args, rng=5)
    assert float(api_module.forward(*args, rng=5)) == pytest.approx(
        float(numpy_module.forward(*args, rng=5)), rel=1e-6)
    _, g = numpy_module.gradient(*args, rng=5)
    u = np.random.default_rng(5).uniform(0, 1, 3).astype(np.float32)
    np.testing.assert_allclose(g, u, rtol=1e-6)  # d/dx of x * u is the same draw u


@pytest.mark.parametrize("call,message", [
    (lambda: F.rand(1, 1), r"F.rand: low=1 must be less than high=1"),
    (lambda: F.randn(0, 0), r"F.randn: sigma=0 must be positive"),
    (lambda: F.randint(0, 2.5), r"F.randint: low=0 and high=2.5 must be integers"),
])
def test_bad_random_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()
