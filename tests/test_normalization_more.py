"""F.fused_batch_normalization, F.mean_subtraction, the gradient clipping functions
(F.clip_grad_by_value, F.clip_grad_by_norm, F.clip_by_norm), F.norm_normalization,
F.weight_standardization, F.weight_normalization, F.spectral_norm and their PF layers.

- forward against NumPy references (float64); gradients against central finite
  differences, except where nnabla's backward is no derivative (clip_grad_*, training
  mean_subtraction): there against nnabla's rule, written in NumPy;
- the running mean and count mean_subtraction updates, and spectral_norm's vector u, in
  the runtime and the generated functions;
- PF parameter names, shapes and initial values as nnabla's;
- bad input, refused when the graph is built, naming the function and the fix;
- nnabla 1.39's numbers where SYMCOMPILE_NNABLA_PYTHON names a Python that has it.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from gradcheck import arguments, check_formulas, check_function, compile_f64
from nnabla_run import nnabla_rows
from test_normalization import reference as bn_reference
from test_normalization import running_reference

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF

# --- NumPy references (nnabla's definitions, float64) -----------------------------------


def relu(a):
    return np.maximum(a, 0)


def p_norm(x, p, axes):
    return np.sum(np.abs(x) ** p, axis=axes, keepdims=True) ** (1 / p)


def standardize(w, channel_axis, eps=1e-5):
    axes = tuple(i for i in range(w.ndim) if i != channel_axis % w.ndim)
    return (w - w.mean(axis=axes, keepdims=True)) / np.sqrt(w.var(axis=axes, keepdims=True)
                                                            + eps)


def weight_normalized(w, g, dim, eps=1e-12):
    axes = tuple(i for i in range(w.ndim) if i != dim)
    shape = [1] * w.ndim
    shape[dim] = w.shape[dim]
    return w * g.reshape(shape) / np.sqrt(np.sum(w ** 2, axis=axes, keepdims=True) + eps)


def clipped_by_norm(x, clip_norm, axes):
    norm = np.sqrt(np.sum(x ** 2, axis=axes, keepdims=True))
    return x * clip_norm / np.maximum(norm, clip_norm)


# --- forward and gradients (finite differences) ------------------------------------------

def _draw(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape) for shape in shapes]


# (name, build on Variables, reference on arrays, arrays)
SMOOTH = [
    ("norm_normalization", lambda x: F.norm_normalization(x),
     lambda x: x / p_norm(x, 2, None), _draw((3, 4))),
    ("norm_normalization axes=[1]", lambda x: F.norm_normalization(x, axes=[1]),
     lambda x: x / p_norm(x, 2, (1,)), _draw((3, 4, 2))),
    ("norm_normalization p=1", lambda x: F.norm_normalization(x, p=1, axes=(1, 2)),
     lambda x: x / p_norm(x, 1, (1, 2)), _draw((2, 3, 2))),
    ("norm_normalization p=3", lambda x: F.norm_normalization(x, p=3, axes=0),
     lambda x: x / p_norm(x, 3, (0,)), _draw((3, 4))),
    ("norm_normalization p=4 eps ignored", lambda x: F.norm_normalization(x, 4, eps=10.0),
     lambda x: x / p_norm(x, 4, None), _draw((5,))),
    ("weight_standardization", lambda w: F.weight_standardization(w),
     lambda w: standardize(w, 0), _draw((4, 3, 2, 2))),
    ("weight_standardization channel_axis=1",
     lambda w: F.weight_standardization(w, channel_axis=1, eps=1e-3),
     lambda w: standardize(w, 1, 1e-3), _draw((3, 5))),
    ("weight_standardization channel_axis=-1",
     lambda w: F.weight_standardization(w, channel_axis=-1),
     lambda w: standardize(w, 2), _draw((2, 3, 4))),
    ("weight_normalization", lambda w, g: F.weight_normalization(w, g),
     lambda w, g: weight_normalized(w, g, 0), _draw((4, 3, 2), (4,))),
    ("weight_normalization dim=1", lambda w, g: F.weight_normalization(w, g, dim=1, eps=0.1),
     lambda w, g: weight_normalized(w, g, 1, 0.1), _draw((3, 5), (5,))),
    ("weight_normalization dim=-1", lambda w, g: F.weight_normalization(w, g, dim=-1),
     lambda w, g: weight_normalized(w, g, 2), _draw((2, 3, 4), (4,))),
    ("weight_normalization 1-D", lambda w, g: F.weight_normalization(w, g, eps=0.5),
     lambda w, g: weight_normalized(w, g, 0, 0.5), _draw((3,), (3,))),
    ("clip_by_norm", lambda x: F.clip_by_norm(x, 1.5),
     lambda x: clipped_by_norm(x, 1.5, None), _draw((3, 4))),
    ("clip_by_norm axis=1 (rows above and below the norm)",
     lambda x: F.clip_by_norm(x, 2.0, axis=1),
     lambda x: clipped_by_norm(x, 2.0, (1,)), [np.array([[0.5, 1.0, -0.5], [3.0, -2.0, 1.0]])]),
    ("clip_by_norm, a Variable clip_norm", lambda x, c: F.clip_by_norm(x, c, axis=(0, 2)),
     lambda x, c: clipped_by_norm(x, c, (0, 2)),
     [_draw((2, 3, 2))[0], np.array([[[1.2]]])]),
]


@pytest.mark.parametrize("name,build,expected,arrays", SMOOTH, ids=[c[0] for c in SMOOTH])
def test_forward_and_gradients(name, build, expected, arrays, tmp_path, rng):
    check_function(build, expected, arrays, tmp_path, rng, rtol=1e-5, atol=1e-7)


def test_weight_standardization_of_a_vector_is_zero(tmp_path, rng):
    """nnabla: a 1-D weight has one element per channel, its own mean: 0 everywhere."""
    check_function(lambda w: F.weight_standardization(w), lambda w: 0 * w, _draw((3,)),
                   tmp_path, rng)


# (name, z shape or None, axes, batch_stat, beta and gamma)
FUSED = [
    ("no residual", None, (1,), True, True),
    ("residual", (4, 3, 2), (1,), True, True),
    ("broadcast residual", (1, 3, 1), (1,), True, True),
    ("inference", (4, 3, 2), (1,), False, True),
    ("two axes", (4, 3, 2), (1, 2), True, True),
    ("neither beta nor gamma", (4, 3, 2), (1,), True, False),
]


@pytest.mark.parametrize("name,z_shape,axes,batch_stat,scale", FUSED, ids=[c[0] for c in FUSED])
def test_fused_batch_normalization(name, z_shape, axes, batch_stat, scale, tmp_path, rng):
    """relu(batch normalization + z) against the reference; the gradients to x, beta,
    gamma and z against finite differences."""
    draw = np.random.default_rng(1)
    stat = tuple(d if i in axes else 1 for i, d in enumerate((4, 3, 2)))
    arrays = {"x": draw.normal(1.0, 2.0, size=(4, 3, 2))}
    if scale:
        arrays["beta"] = draw.normal(size=stat)
        arrays["gamma"] = draw.uniform(0.5, 1.5, size=stat)
    arrays["mean"] = draw.normal(size=stat)
    arrays["var"] = draw.uniform(0.5, 2.0, size=stat)
    if z_shape:
        arrays["z"] = draw.normal(size=z_shape)
    names = list(arrays)

    def build(*variables):
        given = dict(zip(names, variables, strict=True))
        return F.fused_batch_normalization(given["x"], given.get("beta"), given.get("gamma"),
                                           given["mean"], given["var"], given.get("z"),
                                           axes=list(axes), batch_stat=batch_stat)

    def expected(*values):
        given = dict(zip(names, values, strict=True))
        y = bn_reference(given["x"], given.get("beta"), given.get("gamma"), given["mean"],
                         given["var"], axes, batch_stat)
        return relu(y + given.get("z", 0))

    need_grad = [n not in ("mean", "var") for n in names]
    check_function(build, expected, list(arrays.values()), tmp_path, rng, need_grad,
                   rtol=1e-5, atol=1e-7)


def test_fused_batch_normalization_updates_the_running_statistics():
    x = nn.Variable.from_numpy_array(np.random.default_rng(0).normal(size=(6, 3, 2)))
    y = PF.fused_batch_normalization(x, decay_rate=0.8)
    y.forward()
    params = nn.get_parameters(grad_only=False)
    mean, var = running_reference(x.d.astype(np.float64), 0.0, 1.0, (1,), decay=0.8)
    np.testing.assert_allclose(params["bn/mean"].d, mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(params["bn/var"].d, var, rtol=1e-5, atol=1e-6)


# --- clip_grad_by_value and clip_grad_by_norm: nnabla's backward, not a derivative ---------

def _gradient(build, arrays, tmp_path):
    """The compiled float64 module's output and d sum(tanh(out) * w) / d each input."""
    variables = []
    for i, a in enumerate(arrays):
        v = nn.Variable(a.shape, need_grad=True)
        v.name = f"in{i}"
        variables.append(v)
    out = build(*variables)
    w = nn.Variable(out.shape)
    w.name = "w"
    weights = np.random.default_rng(5).normal(size=out.shape)
    result = compile_f64(F.sum(F.tanh(out) * w), tmp_path)
    check_formulas(result)  # (the clipped gradient reads as a formula too)
    module = result.module
    values = {f"in{i}": a for i, a in enumerate(arrays)} | {"w": weights}
    _, *grads = module.gradient(*arguments(module, values))
    cotangent = weights * (1 - np.tanh(arrays[0] * 2) ** 2)  # d loss / d out, out = 2 x
    return dict(zip(module.GRADIENTS, grads, strict=True)), cotangent


def test_clip_grad_by_value_clips_the_gradient(tmp_path):
    """Identity forward; d/dx = 2 * clip(d loss / d out, min, max), and the bounds get 0
    (nnabla's ClipGradByValue::backward)."""
    x, = _draw((3, 4))
    low = -np.random.default_rng(2).uniform(0, 0.5, size=(3, 4))
    high = np.random.default_rng(3).uniform(0, 0.5, size=(3, 4))
    grads, cotangent = _gradient(lambda v, lo, hi: F.clip_grad_by_value(v * 2, lo, hi),
                                 [x, low, high], tmp_path)
    np.testing.assert_allclose(grads["in0"], 2 * np.clip(cotangent, low, high), rtol=1e-12)
    assert 0 < np.mean(np.clip(cotangent, low, high) != cotangent) < 1  # both kinds
    np.testing.assert_array_equal(grads["in1"], 0)
    np.testing.assert_array_equal(grads["in2"], 0)


@pytest.mark.parametrize("clip_norm,axes,reduced", [
    (None, None, (0, 1, 2)), (0.5, [1], (1,)), (2.0, (0, 2), (0, 2)), (1.0, [], ())])
def test_clip_grad_by_norm_rescales_the_gradient(clip_norm, axes, reduced, tmp_path):
    """d/dx = 2 * clip_norm * g / ||g|| over axes, g = d loss / d out: rescaled even when
    ||g|| is below clip_norm (nnabla's ClipGradByNorm::backward); axes=[] normalizes each
    element on its own (g / |g|), as nnabla's kernel does."""
    x, = _draw((2, 3, 2))
    grads, g = _gradient(lambda v: F.clip_grad_by_norm(v * 2, clip_norm, axes), [x],
                         tmp_path)
    norm = np.sqrt(np.sum(g ** 2, axis=reduced, keepdims=True))
    expected = 2 * (1.0 if clip_norm is None else clip_norm) * g / norm
    np.testing.assert_allclose(grads["in0"], expected, rtol=1e-12)


def test_top_k_grad_passes_the_k_largest_gradients_of_each_sample():
    """Identity forward; backward the k largest gradients of each sample pass (by
    magnitude with abs), the others are 0: nnabla 1.39's numbers for these values."""
    values = np.array([[1.0, 2, 3, 4], [5, 6, 7, 8]])
    weights = nn.Variable.from_numpy_array(np.array([[0.1, -3, 2, 0.5], [4, -1, 0.2, -5]]))
    for k, absolute, expected in [(2, True, [[0, -3, 2, 0], [4, 0, 0, -5]]),
                                  (1, False, [[0, 0, 2, 0], [4, 0, 0, 0]])]:
        x = nn.Variable.from_numpy_array(values, need_grad=True)
        y = F.top_k_grad(x, k, abs=absolute)
        loss = F.sum(y * weights)
        loss.forward()
        x.grad.zero()
        loss.backward()
        assert float(loss.d) == pytest.approx(-22.5)
        np.testing.assert_array_equal(x.g, expected)
    with pytest.raises(ValueError, match=r"F.top_k_grad: k=9 must be from 1 to the sample "
                                         r"size 4"):
        F.top_k_grad(nn.Variable((2, 4)), 9)


def test_clip_grad_by_norm_of_a_scalar_seed(tmp_path):
    """sum(clip_grad_by_norm(x)): the cotangent is the scalar 1 for every element, so the
    norm counts them all: d/dx = 1 / sqrt(size)."""
    x = nn.Variable((3, 4), need_grad=True)
    x.name = "x"
    module = compile_f64(F.sum(F.clip_grad_by_norm(x, 2.0)), tmp_path).module
    loss, grad = module.gradient(np.ones((3, 4)))
    assert loss == 12
    np.testing.assert_allclose(grad, np.full((3, 4), 2 / np.sqrt(12)), rtol=1e-12)


def test_clip_grad_is_the_identity_forward_and_clips_what_flows_into_it():
    """In the runtime: y is x; two readers of y have their gradients summed before the
    clipping (it is of y's whole gradient), and upstream layers get the clipped one."""
    x = nn.Variable.from_numpy_array(np.array([[1.0, -2.0, 3.0]]), need_grad=True)
    h = x * 3
    y = F.clip_grad_by_value(h, nn.Variable.from_numpy_array(np.full((1, 3), -1.0)),
                             nn.Variable.from_numpy_array(np.full((1, 3), 2.0)))
    y.persistent = True
    loss = F.sum(y * 2) + F.sum(y * 0.5)
    loss.forward()
    np.testing.assert_array_equal(y.d, h.d)
    x.grad.zero()
    loss.backward()
    # d loss / d y = 2.5 everywhere, clipped to 2, then * 3 through h = 3 x
    np.testing.assert_allclose(x.g, np.full((1, 3), 6.0))


# --- mean subtraction ------------------------------------------------------------------------

def test_mean_subtraction_in_inference(tmp_path, rng):
    """update_running_mean=False: x - mean, gradient dy to x and none to mean or t."""
    x, mean = _draw((4, 3, 2), (3, 2))
    check_function(lambda a, m, t: F.mean_subtraction(a, m, t, update_running_mean=False),
                   lambda a, m, t: a - m, [x, mean, np.array([5.0])], tmp_path, rng,
                   need_grad=[True, False, False])


def _ms_reference(x, mean, t, base_axis):
    """nnabla's MeanSubtraction forward (training): the running mean and count after
    the batch, and y = x - that mean."""
    batch = x.reshape((-1,) + x.shape[base_axis:])
    new_mean = mean + (batch.mean(axis=0) - mean) / (t + 1)
    return x - new_mean, new_mean, t + 1


@pytest.mark.parametrize("shape,base_axis", [((4, 3), 1), ((2, 3, 2), 2), ((2, 3), 0)])
def test_mean_subtraction_in_training(shape, base_axis, tmp_path):
    """Each of forward(), gradient(), forward_saving() updates mean and t in place as
    nnabla's forward does and subtracts the updated mean; the gradient (also backward()'s,
    after the update) is nnabla's dy * (1 - 1/(t * M)), t the count after the update and M
    the batch's samples (the Jacobian's diagonal)."""
    x = nn.Variable(shape, need_grad=True)
    x.name = "x"
    y = PF.mean_subtraction(x, base_axis=base_axis)
    w = nn.Variable(shape)
    w.name = "w"
    module = compile_f64(F.sum(y * w), tmp_path).module
    assert module.RUNNING == ("mean_subtraction_mean", "mean_subtraction_t")
    rng = np.random.default_rng(0)
    mean, t = rng.normal(size=shape[base_axis:]), np.array([2.0])
    samples = int(np.prod(shape[:base_axis]))
    for function in ("forward", "gradient", "forward_saving"):
        data, weights = rng.normal(size=shape), rng.normal(size=shape)
        start = mean.copy(), t.copy()
        given = {"x": data, "w": weights}
        inputs = [given[spec["name"]] for spec in module.INPUTS.values()]
        result = getattr(module, function)(*inputs, mean, t)
        if function == "forward_saving":  # the runtime's split: backward() after the update
            result = (result[0], *module.backward(result[-1], *inputs, mean, t, np.float64(1)))
        expected_y, expected_mean, expected_t = _ms_reference(data, *start, base_axis)
        np.testing.assert_allclose(mean, expected_mean, rtol=1e-12)
        np.testing.assert_array_equal(t, expected_t)
        loss = result if function == "forward" else result[0]
        np.testing.assert_allclose(loss, np.sum(expected_y * weights), rtol=1e-10)
        if function != "forward":
            np.testing.assert_allclose(result[1], weights * (1 - 1 / (t * samples)),
                                       rtol=1e-12)


def test_pf_mean_subtraction_runs_the_average_of_the_batches():
    """Three forward passes: the running mean is the mean of all three batches, t is 3."""
    x = nn.Variable((4, 3))
    y = PF.mean_subtraction(x)
    y.persistent = True  # (read after forward, not recomputed from the updated mean)
    every = nn.get_parameters(grad_only=False)
    assert {k: (v.shape, v.need_grad) for k, v in every.items()} == {
        "mean_subtraction/mean": ((3,), False), "mean_subtraction/t": ((1,), False)}
    assert nn.get_parameters() == {}
    batches = [np.random.default_rng(i).normal(size=(4, 3)) for i in range(3)]
    for batch in batches:
        x.d = batch
        y.forward()
    average = np.mean([b.mean(axis=0) for b in batches], axis=0)
    np.testing.assert_allclose(every["mean_subtraction/mean"].d, average, rtol=1e-5)
    np.testing.assert_array_equal(every["mean_subtraction/t"].d, [3])
    np.testing.assert_allclose(y.d, x.d - average, rtol=1e-5, atol=1e-6)
    test = PF.mean_subtraction(x, update_running_mean=False)
    test.forward()
    np.testing.assert_array_equal(every["mean_subtraction/t"].d, [3])  # unchanged


def test_reading_an_intermediate_after_forward_uses_the_statistics_forward_read():
    """y.d of a non-persistent intermediate is recomputed when first read; from the running
    mean and count the forward pass started from (nnabla's y subtracts the mean that pass
    updated), not from the updated ones (which updated them a second time: -2.75 for
    nnabla's -2.1667), and the read leaves the statistics alone."""
    x = nn.Variable.from_numpy_array(np.arange(12.0).reshape(4, 3))
    y = PF.mean_subtraction(x)
    every = nn.get_parameters(grad_only=False)
    every["mean_subtraction/mean"].d = [1, 2, 3]
    every["mean_subtraction/t"].d = 2
    loss = F.sum(y * 2)
    loss.forward()
    mean = every["mean_subtraction/mean"].d.copy()
    np.testing.assert_allclose(mean, [13 / 6, 19 / 6, 25 / 6], rtol=1e-6)
    np.testing.assert_allclose(y.d, x.d - mean, rtol=1e-6)
    np.testing.assert_array_equal(every["mean_subtraction/mean"].d, mean)
    np.testing.assert_array_equal(every["mean_subtraction/t"].d, [3])


# --- spectral normalization ----------------------------------------------------------------

def _power_iteration(matrix, u, itr, eps=1e-12):
    """nnabla's steps from the row u, for a weight with dim 0: (u, v) after them."""
    for _ in range(itr):
        v = u @ matrix
        v = v / np.sqrt(np.sum(v ** 2) + eps)
        u = matrix @ v.T
        u = (u / np.sqrt(np.sum(u ** 2) + eps)).T
    return u, v


@pytest.mark.parametrize("itr,test", [(1, False), (5, False), (2, True)])
def test_spectral_norm_forward_gradient_and_u(itr, test, tmp_path):
    """w / (u W v), u and v after `itr` power iteration steps; the gradient treats u and v
    as constants (nnabla: need_grad=False on both), d/dW = G/sigma - sum(G W)/sigma**2 u^T
    v^T; each call of gradient() overwrites u with the last step's, unless `test`."""
    rng = np.random.default_rng(itr)
    w_value, u_value, weights = rng.normal(size=(4, 3)), rng.normal(size=(4,)), rng.normal(
        size=(4, 3))
    w, u, g = nn.Variable((4, 3), need_grad=True), nn.Variable((4,)), nn.Variable((4, 3))
    w.name, u.name, g.name = "w", "u", "g"
    module = compile_f64(F.sum(F.spectral_norm(w, u, itr=itr, test=test) * g),
                         tmp_path).module
    assert module.RUNNING == (() if test else ("u",))
    values = {"w": w_value, "u": u_value.copy(), "g": weights}
    args = arguments(module, values)
    loss, grad = module.gradient(*args)
    last_u, last_v = _power_iteration(w_value, u_value[None, :], itr)
    sigma = (last_u @ w_value @ last_v.T).item()
    np.testing.assert_allclose(loss, np.sum(w_value / sigma * weights), rtol=1e-10)
    expected = weights / sigma - np.sum(weights * w_value) / sigma ** 2 * last_u.T @ last_v
    np.testing.assert_allclose(grad, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(values["u"], u_value if test else last_u[0], rtol=1e-10)


def test_pf_spectral_norm_u_converges_to_the_singular_vector():
    """PF.spectral_norm's ``spectral-norm/u`` (nnabla's name; normal, no gradient): each
    forward pass is one more power iteration step, so w / sigma tends to w / ||w||_2."""
    w = nn.Variable.from_numpy_array(np.random.default_rng(0).normal(size=(5, 2, 3)))
    y = PF.spectral_norm(w, dim=2)
    y.persistent = True
    every = nn.get_parameters(grad_only=False)
    assert {k: (v.shape, v.need_grad) for k, v in every.items()} == {
        "spectral-norm/u": ((3,), False)}
    for _ in range(30):
        y.forward()
    sigma = np.linalg.svd(w.d.reshape(10, 3), compute_uv=False)[0]
    np.testing.assert_allclose(y.d, w.d / sigma, rtol=1e-4, atol=1e-6)
    u = every["spectral-norm/u"].d.copy()
    PF.spectral_norm(w, dim=2, test=True).forward()
    np.testing.assert_array_equal(every["spectral-norm/u"].d, u)  # test=True: unchanged


# --- PF parameters -----------------------------------------------------------------------

def test_pf_fused_batch_normalization_creates_batch_normalizations_parameters():
    x = nn.Variable((4, 3, 2, 2))
    PF.fused_batch_normalization(x, nn.Variable((4, 3, 2, 2)))
    every = nn.get_parameters(grad_only=False)
    assert list(every) == ["bn/beta", "bn/gamma", "bn/mean", "bn/var"]
    assert list(nn.get_parameters()) == ["bn/beta", "bn/gamma"]
    for key, value in (("beta", 0), ("gamma", 1), ("mean", 0), ("var", 1)):
        assert every[f"bn/{key}"].shape == (1, 3, 1, 1)
        np.testing.assert_array_equal(every[f"bn/{key}"].d, value)
    nn.clear_parameters()
    PF.fused_batch_normalization(nn.Variable((4, 6)), no_scale=True, name="block")
    assert list(nn.get_parameters(grad_only=False)) == ["block/bn/beta", "block/bn/mean",
                                                        "block/bn/var"]


def test_pf_weight_normalization_starts_at_the_weight():
    """wn/g of shape (w.shape[dim],), initialised to the norms of w's slices (nnabla's
    WeightNormalizationScaleInitializer), so the normalized weight starts equal to w."""
    x = nn.Variable.from_numpy_array(np.random.default_rng(0).normal(size=(2, 3)))
    y = PF.affine(x, 4, apply_w=lambda w: PF.weight_normalization(w, dim=1))
    every = nn.get_parameters()
    assert {k: v.shape for k, v in every.items()} == {
        "affine/W": (3, 4), "affine/wn/g": (4,), "affine/b": (4,)}
    w = every["affine/W"].d
    np.testing.assert_allclose(every["affine/wn/g"].d, np.sqrt(np.sum(w ** 2, axis=0)),
                               rtol=1e-6)
    y.forward()
    np.testing.assert_allclose(y.d, x.d @ w, rtol=1e-5, atol=1e-6)
    nn.clear_parameters()
    PF.weight_normalization(nn.Variable((4, 2)), g_init=nn.initializer.ConstantInitializer(2),
                            fix_parameters=True)
    assert list(nn.get_parameters()) == ["wn/g"]  # as nnabla: the stored flag stays True
    np.testing.assert_array_equal(nn.get_parameters()["wn/g"].d, 2)


# --- bad input -----------------------------------------------------------------------------

def _v(*shape):
    return nn.Variable(shape)


@pytest.mark.parametrize("call,error,message", [
    (lambda: F.clip_grad_by_value(_v(2, 3), _v(1, 1), _v(2, 3)), ValueError,
     r"F.clip_grad_by_value: min of shape \(1, 1\) must have the input's shape \(2, 3\) .*"
     r"F.broadcast\(min, \(2, 3\)\)"),
    (lambda: F.clip_grad_by_value(_v(2, 3), -1.0, 1.0), TypeError,
     r"F.clip_grad_by_value: min must be a Variable of the input's shape"),
    (lambda: F.clip_grad_by_norm(_v(2, 3), axes=[2]), ValueError,
     r"F.clip_grad_by_norm: axis 2 is out of range for an input of shape \(2, 3\)"),
    (lambda: F.clip_by_norm(_v(2, 3), -1.0), ValueError,
     r"F.clip_by_norm: clip_norm must be positive"),
    (lambda: F.clip_by_norm(_v(2, 3), _v()), ValueError,
     r"F.clip_by_norm: clip_norm of shape \(\) must have the input's rank 2 .* reshape it to "
     r"\(1, 1\)"),
    (lambda: F.norm_normalization(_v(2, 3), p=0.5), ValueError,
     r"F.norm_normalization: p must be >= 1"),
    (lambda: F.weight_standardization(_v(2, 3), channel_axis=2), ValueError,
     r"F.weight_standardization: axis 2 is out of range"),
    (lambda: F.weight_standardization(_v(2, 3), output_stat=2), ValueError,
     r"F.weight_standardization: output_stat must be True or False, got 2"),
    (lambda: F.weight_normalization(_v(4, 3), _v(3)), ValueError,
     r"F.weight_normalization: g of shape \(3,\) does not fit the weight of shape \(4, 3\) "
     r"with dim=0: it must be 1-D of shape \(4,\)"),
    (lambda: F.mean_subtraction(_v(4, 3), _v(4, 3), _v(1)), ValueError,
     r"F.mean_subtraction: mean of shape \(4, 3\) does not fit .* must have shape \(3,\)"),
    (lambda: F.mean_subtraction(_v(4, 3), _v(3), _v(2)), ValueError,
     r"F.mean_subtraction: t .* must hold one number, got shape \(2,\)"),
    (lambda: F.mean_subtraction(_v(4, 3), _v(3), _v(1), base_axis=2), ValueError,
     r"F.mean_subtraction: base_axis must be an int in \[0, 2\)"),
    (lambda: F.mean_subtraction(_v(4, 3), F.exp(_v(3)), _v(1)), ValueError,
     r"F.mean_subtraction: .* updates mean in place, so it must be a leaf Variable"),
    (lambda: PF.mean_subtraction(_v(4, 3), base_axis=3), ValueError,
     r"F.mean_subtraction: base_axis must be an int in \[0, 2\)"),
    (lambda: F.fused_batch_normalization(_v(4, 3), None, None, None, None,
                                         nonlinearity="tanh"), ValueError,
     r"F.fused_batch_normalization: nonlinearity='tanh' is not supported; nnabla has only "
     r"'relu'"),
    (lambda: F.fused_batch_normalization(_v(4, 3), _v(1, 2), None, None, None), ValueError,
     r"F.fused_batch_normalization: beta of shape \(1, 2\) does not fit the input of shape "
     r"\(4, 3\) with axes=\[1\]; it must have shape \(1, 3\)"),
    (lambda: F.fused_batch_normalization(_v(4, 3), None, None, None, None, _v(4, 1, 1)),
     ValueError, r"F.fused_batch_normalization: z of shape \(4, 1, 1\) does not broadcast to "
     r"the input of shape \(4, 3\)"),
    (lambda: F.fused_batch_normalization(_v(4, 3), None, None, None, None, batch_stat=False,
                                         output_stat=True),
     ValueError, r"F.fused_batch_normalization: output_stat=True .* needs batch_stat=True"),
    (lambda: F.fused_batch_normalization(_v(4, 3), None, None, None, None, batch_stat=False),
     ValueError, r"F.fused_batch_normalization: batch_stat=False .* must be Variables"),
    (lambda: F.spectral_norm(_v(4, 3), _v(3)), ValueError,
     r"F.spectral_norm: u of shape \(3,\) does not fit the weight of shape \(4, 3\) with "
     r"dim=0: it must be 1-D of shape \(4,\)"),
    (lambda: F.spectral_norm(_v(4, 3), _v(4), dim=2), ValueError,
     r"F.spectral_norm: dim must be an int in \[0, 2\)"),
    (lambda: F.spectral_norm(_v(4, 3), _v(4), itr=0), ValueError,
     r"F.spectral_norm: itr \(power iteration steps\) must be an int >= 1"),
    (lambda: F.spectral_norm(_v(4, 3), F.exp(_v(4))), ValueError,
     r"F.spectral_norm: with test=False the forward pass updates u in place"),
    (lambda: F.spectral_norm(_v(4, 3), _v(4), output_u=True), ValueError,
     r"F.spectral_norm: output_u=True .* not implemented"),
    (lambda: PF.spectral_norm(_v(4, 3), dim=-1), ValueError,
     r"F.spectral_norm: dim must be an int in \[0, 2\)"),
    (lambda: F.fused_batch_normalization(_v(4, 3), None, None, None, None, np.ones((4, 3))),
     TypeError, r"F.fused_batch_normalization: input 1 must be a Variable"),
])
def test_bad_input_is_refused_when_the_graph_is_built(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_pf_fused_batch_normalization_refuses_before_creating_parameters():
    with pytest.raises(ValueError, match=r"PF.fused_batch_normalization: nonlinearity='sigmoid'"):
        PF.fused_batch_normalization(_v(4, 3), nonlinearity="sigmoid")
    assert nn.get_parameters(grad_only=False) == {}


# --- nnabla 1.39 ---------------------------------------------------------------------------

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
# Each case: an expression of the Variables named in "arrays" (drawn in order by a seeded
# RandomState); its PF parameters are set to numbers in [0.5, 1.5) (t, a count, to 3).
NNABLA_CASES = r"""
import json, sys
import numpy as np
import nnabla as nn, nnabla.functions as F, nnabla.parametric_functions as PF
for i, case in enumerate(json.loads(sys.argv[1])):
    nn.clear_parameters()
    rng = np.random.RandomState(i)
    arrays = {name: (rng.randn(*shape) * 2 + 0.5).astype(np.float32)
              for name, shape in case["arrays"].items()}
    variables = {name: nn.Variable.from_numpy_array(a, need_grad=True)
                 for name, a in arrays.items()}
    y = eval(case["text"], {"F": F, "PF": PF, "np": np, **variables})
    params = nn.get_parameters(grad_only=False)
    for key, p in params.items():
        if case.get("set_parameters"):
            p.d = 3 if key.endswith("/t") else rng.uniform(0.5, 1.5, size=p.shape)
    start = {key: p.d.tolist() for key, p in params.items()}
    g = rng.randn(*y.shape).astype(np.float32)
    y.forward()
    value = y.d.tolist()  # (before backward(), which may rewrite it: see spectral_norm)
    for v in [*variables.values(), *params.values()]:
        v.grad.zero()
    y.backward(g)
    print(json.dumps({"arrays": {k: a.tolist() for k, a in arrays.items()}, "g": g.tolist(),
                      "y": value, "start": start,
                      "grads": {k: v.g.tolist() for k, v in variables.items()},
                      "after": {k: p.d.tolist() for k, p in params.items()},
                      "param_grads": {k: p.g.tolist() for k, p in params.items()
                                      if p.need_grad}}))
"""
X = {"x": [4, 3, 2, 2]}
CASES = [
    {"text": "F.clip_grad_by_value(x * 3, F.abs(lo) * -1, F.abs(hi))",
     "arrays": {"x": [3, 4], "lo": [3, 4], "hi": [3, 4]}},
    {"text": "F.clip_grad_by_norm(x * 3, 0.5, axes=[1])", "arrays": {"x": [3, 4, 2]}},
    {"text": "F.clip_grad_by_norm(F.tanh(x))", "arrays": {"x": [3, 4]}},
    {"text": "F.clip_by_norm(x, 3.0, axis=1)", "arrays": {"x": [4, 3]}},
    {"text": "F.clip_by_norm(x, F.abs(c) + 1)", "arrays": {"x": [2, 3], "c": [1, 1]}},
    {"text": "F.norm_normalization(x)", "arrays": {"x": [3, 4]}},
    {"text": "F.norm_normalization(x, p=1, axes=[1], eps=1.0)", "arrays": {"x": [3, 4]}},
    {"text": "F.norm_normalization(x, p=3, axes=[0, 2])", "arrays": {"x": [2, 3, 2]}},
    {"text": "F.weight_standardization(w)", "arrays": {"w": [4, 3, 2, 2]}},
    {"text": "F.weight_standardization(w, channel_axis=1, eps=0.01)", "arrays": {"w": [3, 5]}},
    {"text": "F.weight_normalization(w, g)", "arrays": {"w": [4, 3, 2], "g": [4]}},
    {"text": "F.weight_normalization(w, g, dim=1, eps=0.1)", "arrays": {"w": [3, 5], "g": [5]}},
    {"text": "PF.weight_normalization(w, dim=1)", "arrays": {"w": [3, 5]}},
    {"text": "PF.fused_batch_normalization(x)", "arrays": X, "set_parameters": True},
    {"text": "PF.fused_batch_normalization(x, z)", "arrays": {**X, "z": [4, 3, 2, 2]},
     "set_parameters": True},
    # nnabla 1.39's fused backward copies the gradient of relu's input, x.size numbers,
    # into the gradient of a broadcast z without summing it over the broadcast axes (it
    # overruns z's 3 numbers: z.g is that gradient's first 3); symcompile's is the sum
    # (test_fused_batch_normalization checks it against finite differences)
    {"text": "PF.fused_batch_normalization(x, z, decay_rate=0.5)",
     "arrays": {**X, "z": [1, 3, 1, 1]}, "set_parameters": True, "unlike_nnabla": ["z"]},
    {"text": "PF.fused_batch_normalization(x, z, batch_stat=False)",
     "arrays": {**X, "z": [4, 3, 2, 2]}, "set_parameters": True},
    {"text": "PF.spectral_norm(w)", "arrays": {"w": [4, 3]}, "set_parameters": True},
    {"text": "PF.spectral_norm(w, dim=1, itr=3)", "arrays": {"w": [3, 4, 2]},
     "set_parameters": True},
    {"text": "PF.spectral_norm(w, dim=2, itr=2, eps=0.1)", "arrays": {"w": [2, 3, 4]},
     "set_parameters": True},
    # nnabla 1.39's backward with test=True recomputes the forward pass from a copy of u
    # it makes only when test=False: from zeros, so its dw is NaN (and y.d becomes inf);
    # symcompile's is the test=False one, u and v constants
    # (test_spectral_norm_forward_gradient_and_u)
    {"text": "PF.spectral_norm(w, dim=1, test=True)", "arrays": {"w": [3, 5]},
     "set_parameters": True, "unlike_nnabla": ["w"]},
    {"text": "PF.mean_subtraction(x)", "arrays": X, "set_parameters": True},
    {"text": "PF.mean_subtraction(x, base_axis=2)", "arrays": X, "set_parameters": True},
    {"text": "PF.mean_subtraction(x, update_running_mean=False)", "arrays": X,
     "set_parameters": True},
]


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_against_nnabla(tmp_path):
    """y, the gradient to every input and parameter, and the parameters after one
    forward pass (running statistics) equal nnabla 1.39's on the same float32 numbers."""
    rows = nnabla_rows(NNABLA, NNABLA_CASES, CASES, tmp_path)
    assert len(rows) == len(CASES)
    for case, row in zip(CASES, rows, strict=True):
        nn.clear_parameters()
        what = case["text"]
        variables = {name: nn.Variable.from_numpy_array(np.array(a, np.float32),
                                                        need_grad=True)
                     for name, a in row["arrays"].items()}
        y = eval(what, {"F": F, "PF": PF, "np": np, **variables})
        y.persistent = True
        params = nn.get_parameters(grad_only=False)
        assert sorted(params) == sorted(row["start"]), what
        for key, p in params.items():
            if case.get("set_parameters"):
                p.d = np.array(row["start"][key], np.float32)
            else:  # (PF.weight_normalization's g, from w: nnabla's numbers)
                np.testing.assert_allclose(p.d, row["start"][key], rtol=1e-6, err_msg=what)
        loss = F.sum(y * nn.Variable.from_numpy_array(np.array(row["g"], np.float32)))
        loss.forward()
        for v in [*variables.values(), *params.values()]:
            v.grad.zero()
        loss.backward()
        np.testing.assert_allclose(y.d, row["y"], rtol=1e-5, atol=2e-5, err_msg=what)
        for name, v in variables.items():
            if name not in case.get("unlike_nnabla", ()):
                np.testing.assert_allclose(v.g, row["grads"][name], rtol=1e-4, atol=2e-5,
                                           err_msg=f"{what} d {name}")
        for key, value in row["param_grads"].items():
            np.testing.assert_allclose(params[key].g, value, rtol=1e-4, atol=2e-5,
                                       err_msg=f"{what} d {key}")
        for key, value in row["after"].items():
            np.testing.assert_allclose(params[key].d, value, rtol=1e-5, atol=1e-6,
                                       err_msg=f"{what} {key}")
