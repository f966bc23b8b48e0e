"""F.erf, F.celu, F.prelu (and PF.prelu), F.kl_multinomial, F.mod2, F.interpolate and the
random augmentations F.random_flip, F.random_shift and F.random_crop.

- forward against independent NumPy references in float64, gradients against central
  finite differences, and the array API module on array-api-strict arrays giving the
  NumPy module's numbers;
- nnabla's conventions: celu is elu(x) and elu(-x) concatenated along `axis`; prelu's
  d/dx is 1 at 0; kl_multinomial adds 1e-8 inside its logs; mod2 of floats is C's fmod
  whatever `fmod` says (nnabla's backward raises; here it is fmod's derivative);
- the augmentations: every output is a flip/shift/crop of its input, the gradient goes
  back through the same choice, choices vary across forward passes and repeat for one
  seed;
- bad input refused when the graph is built; nnabla 1.39's numbers where it is installed.
"""

from __future__ import annotations

import math
import os

import array_api_strict as xps
import numpy as np
import pytest
from gradcheck import check_array_api, check_function
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF

X = (2, 3, 4)


def normal(*shapes):
    return lambda: [np.random.default_rng(i).normal(size=s) for i, s in enumerate(shapes)]


def probabilities(*shapes):
    def draw():
        out = []
        for i, s in enumerate(shapes):
            a = np.random.default_rng(i).uniform(0.1, 1.0, size=s)
            out.append(a / a.sum(axis=tuple(range(1, len(s))), keepdims=True))
        return out
    return draw


def np_elu(a, alpha):
    return np.where(a >= 0, a, alpha * np.expm1(np.minimum(a, 0)))


def np_coordinate(o, n, m, align_corners, half_pixel):
    """nnabla's source coordinate of output o of m along an axis of n (float64)."""
    scale = 0.0 if m <= 1 else ((n - 1) / (m - 1) if align_corners else n / m)
    return max(0.0, (o + 0.5) * scale - 0.5) if half_pixel else o * scale


def np_interpolate(a, sizes, mode="linear", align_corners=False, half_pixel=False,
                   half_pixel_for_nn=False, channel_last=False):
    """Resampling matrices (m, n) applied along the last len(sizes) axes (or before the
    last), built from the coordinates one output at a time."""
    end = a.ndim - int(channel_last)
    for axis, m in zip(range(end - len(sizes), end), sizes, strict=True):
        n = a.shape[axis]
        matrix = np.zeros((m, n))
        for o in range(m):
            c = np_coordinate(o, n, m, align_corners, half_pixel)
            if mode == "nearest":
                i = math.floor((o + 0.5) * n / m) if half_pixel_for_nn else math.floor(c + 1e-9)
                matrix[o, min(i, n - 1)] = 1
            else:
                low = math.floor(c + 1e-12)
                matrix[o, low] += 1 - (c - low)
                matrix[o, min(low + 1, n - 1)] += c - low
        a = np.moveaxis(np.tensordot(matrix, a, axes=(1, axis)), 0, axis)
    return a


# (name, build, NumPy reference, inputs)
CASES = [
    ("erf", F.erf, lambda a: np.vectorize(math.erf)(a), normal(X)),
    ("erf far out", lambda x: F.erf(x * 3), lambda a: np.vectorize(math.erf)(3 * a), normal(X)),
    ("celu", F.celu, lambda a: np.concatenate([np_elu(a, 1), np_elu(-a, 1)], 1), normal(X)),
    ("celu alpha axis -1", lambda x: F.celu(x, alpha=2.0, axis=-1),
     lambda a: np.concatenate([np_elu(a, 2), np_elu(-a, 2)], 2), normal(X)),
    ("prelu shared", F.prelu, lambda a, w: np.where(a >= 0, a, w * a), normal(X, ())),
    ("prelu per channel", F.prelu,
     lambda a, w: np.where(a >= 0, a, w[None, :, None] * a), normal(X, (3,))),
    ("prelu base_axis 2 and one slope (1,)",
     lambda x, w: F.prelu(x, w, base_axis=2) + F.prelu(x, w[:1] * 1, base_axis=-1),
     lambda a, w: np.where(a >= 0, a, w * a) + np.where(a >= 0, a, w[0] * a),
     normal(X, (4,))),
    ("kl_multinomial", F.kl_multinomial,
     lambda p, q: np.sum(p * (np.log(p + 1e-8) - np.log(q + 1e-8)), axis=(1, 2))[:, None],
     probabilities(X, X)),
    ("kl_multinomial base_axis 2", lambda p, q: F.kl_multinomial(p, q, base_axis=2),
     lambda p, q: np.sum(p * (np.log(p + 1e-8) - np.log(q + 1e-8)), axis=2)[..., None],
     lambda: [np.random.default_rng(3).uniform(0.1, 1, X), np.random.default_rng(4).uniform(
         0.1, 1, X)]),
    ("interpolate linear 1-D", lambda x: F.interpolate(x, output_size=(7,)),
     lambda a: np_interpolate(a, (7,)), normal(X)),
    ("interpolate linear 2-D align_corners",
     lambda x: F.interpolate(x, output_size=(5, 3), align_corners=True),
     lambda a: np_interpolate(a, (5, 3), align_corners=True), normal(X)),
    ("interpolate linear 2-D half_pixel by scale",
     lambda x: F.interpolate(x, scale=(1.5, 2.5), half_pixel=True),
     lambda a: np_interpolate(a, (4, 10), half_pixel=True), normal(X)),
    ("interpolate linear 3-D", lambda x: F.interpolate(x, output_size=(3, 5, 2)),
     lambda a: np_interpolate(a, (3, 5, 2)), normal((1, 2, 3, 4))),
    ("interpolate nearest", lambda x: F.interpolate(x, output_size=(5, 7), mode="nearest"),
     lambda a: np_interpolate(a, (5, 7), "nearest"), normal(X)),
    ("interpolate nearest half_pixel", lambda x: F.interpolate(
        x, output_size=(2, 7), mode="nearest", half_pixel=True),
     lambda a: np_interpolate(a, (2, 7), "nearest", half_pixel=True), normal(X)),
    ("interpolate nearest half_pixel_for_nn", lambda x: F.interpolate(
        x, output_size=(8,), mode="nearest", half_pixel_for_nn=True),
     lambda a: np_interpolate(a, (8,), "nearest", half_pixel_for_nn=True), normal(X)),
    # gradients differentiated again (nn.grad): the transposes' transposes
    ("grad of interpolate, differentiated again",
     lambda x: nn.grad([F.sum(F.interpolate(x, output_size=(3, 7), half_pixel=True) ** 3)],
                       [x])[0],
     lambda a: _interpolate_cubed_gradient(a), normal(X)),
    # a flip permutes: d/dx sum(flip(x)**3) is 3x**2 whatever the draw
    ("grad of random_flip, differentiated again",
     lambda x: nn.grad([F.sum(F.random_flip(x, axes=(1, 2)) ** 3)], [x])[0],
     lambda a: 3 * a**2, normal(X)),
]


def _interpolate_cubed_gradient(a):
    """d/da of sum(M(a)**3) for the linear resampling M of the case: M^T (3 M(a)**2), M^T
    read off M applied to the unit arrays."""
    y = np_interpolate(a, (3, 7), half_pixel=True)
    out = np.zeros_like(a)
    for i in np.ndindex(a.shape[1:]):
        unit = np.zeros(a.shape[1:])
        unit[i] = 1
        column = np_interpolate(unit[None], (3, 7), half_pixel=True)[0]
        out[(slice(None),) + i] = np.sum(3 * y**2 * column, axis=(1, 2))
    return out
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("name,build,reference,draw", CASES, ids=IDS)
def test_forward_and_gradients(name, build, reference, draw, tmp_path, rng):
    arrays = draw()
    # kl_multinomial's gradients are nnabla's, which drop the 1e-8 of the forward's logs
    # (1 for p/(p + 1e-8), -p/q for -p/(q + 1e-8)): off by about 1e-8/p, relative
    kl = name.startswith("kl")
    module = check_function(build, reference, arrays, tmp_path, rng, rtol=1e-5 if kl else 1e-6,
                            atol=1e-6 if kl else 1e-8)
    nn.clear_parameters()
    check_array_api(build, arrays, module, tmp_path)


def test_kl_multinomial_of_a_distribution_with_itself_is_zero():
    """KL(p || p) is 0 and so are its gradients (nnabla's: 1 for p, -p/q = -1 for q)."""
    p = nn.Variable.from_numpy_array(np.array([[0.2, 0.8], [0.5, 0.5]]), need_grad=True)
    kl = F.kl_multinomial(p, p)
    loss = F.sum(kl) + F.sum(p * p)
    loss.forward()
    p.grad.zero()
    loss.backward()
    np.testing.assert_array_equal(kl.d, np.zeros((2, 1)))
    np.testing.assert_allclose(p.g, 2 * p.d, rtol=1e-6)


def test_mod2_is_fmod_with_its_derivative(tmp_path):
    """nnabla 1.39's mod2 of floats is fmod (the sign of x0) for both values of `fmod`:
    [5, -5, 5.5, -5.5] mod [3, 3, -2, -2] is [2, -2, 1.5, -1.5]; its backward raises, and
    here the gradient is fmod's: 1 for x0, -trunc(x0/x1) for x1 (infinite where x1 is 0)."""
    for fmod in (False, True):
        x0 = nn.Variable.from_numpy_array(np.array([5.0, -5, 5.5, -5.5, 7, -0.0]),
                                          need_grad=True)
        x1 = nn.Variable.from_numpy_array(np.array([3.0, 3, -2, -2, 0, 2]), need_grad=True)
        y = F.mod2(x0, x1, fmod=fmod)
        loss = F.sum(y * 2 + x0)
        with np.errstate(invalid="ignore", divide="ignore"):  # fmod(7, 0), 7/0
            loss.forward()
            x0.grad.zero()
            x1.grad.zero()
            loss.backward()
            value = y.d  # an intermediate's .d is computed again
        np.testing.assert_array_equal(value, [2, -2, 1.5, -1.5, np.nan, -0.0])
        assert np.signbit(value[-1])
        np.testing.assert_array_equal(x0.g, 3)  # 2 * 1 from y, 1 from + x0
        np.testing.assert_array_equal(x1.g[[0, 1, 2, 3, 5]], [-2, 2, 4, -4, 0])
        assert not np.isfinite(x1.g[4])  # (x1 = 0: -trunc(7/0))
    for backend in ("numpy", "array_api"):
        a, b = nn.Variable((5,)), nn.Variable((5,))
        a.name, b.name = "a", "b"
        module = nn.compile(F.mod2(a, b), name=f"m_{backend}", output_dir=tmp_path,
                            dtype="float64", backend=backend).module
        args = [np.array([5.0, -5, 5.5, -5.5, 1e10]), np.array([3.0, 3, -2, -2, 7])]
        if backend == "array_api":
            args = [xps.asarray(v) for v in args]
        got = np.asarray(np.from_dlpack(module.forward(*args)) if backend == "array_api"
                         else module.forward(*args))
        np.testing.assert_array_equal(got, np.fmod([5.0, -5, 5.5, -5.5, 1e10], [3, 3, -2, -2, 7]))


def test_prelu_and_celu_conventions_at_zero():
    """nnabla's prelu passes dy at x = 0 (slope 1), and its slope gets x only where x < 0;
    celu's elu'(0) is 1 in both halves: dy of the second half comes back negated."""
    with nn.auto_forward():
        x = nn.Variable.from_numpy_array(np.array([[0.0, -2.0, 3.0]]), need_grad=True)
        w = nn.Variable.from_numpy_array(np.array(0.25), need_grad=True)
        y = F.prelu(x, w)
    y.backward(np.ones((1, 3)))
    np.testing.assert_array_equal(x.g, [[1, 0.25, 1]])
    assert float(w.g) == -2.0
    x = nn.Variable.from_numpy_array(np.zeros((1, 2)), need_grad=True)
    y = F.celu(x, alpha=2.0)
    y.forward()
    x.grad.zero()
    y.backward(np.array([[1.0, 1, 0, 0]]))
    np.testing.assert_array_equal(x.g, [[1, 1]])
    x.grad.zero()
    y.backward(np.array([[0.0, 0, 1, 1]]))
    np.testing.assert_array_equal(x.g, [[-1, -1]])


def test_pf_prelu_parameters_are_nnablas():
    """PF.prelu creates ``prelu/slope``: shape () when shared, (channels,) otherwise,
    0.25 by default (nnabla 1.39's code; its docstring says -1)."""
    nn.clear_parameters()
    x = nn.Variable(X)
    PF.prelu(x)
    PF.prelu(x, shared=False, name="c")
    PF.prelu(x, base_axis=2, shared=False, slope_init=np.arange(4.0), name="d")
    params = nn.get_parameters()
    assert list(params) == ["prelu/slope", "c/prelu/slope", "d/prelu/slope"]
    assert params["prelu/slope"].shape == () and float(params["prelu/slope"].d) == 0.25
    np.testing.assert_array_equal(params["c/prelu/slope"].d, [0.25] * 3)
    np.testing.assert_array_equal(params["d/prelu/slope"].d, np.arange(4.0))
    assert len(nn.get_parameters(grad_only=True)) == 3
    y = PF.prelu(x, fix_parameters=True, name="e")
    assert not y.parent.inputs[1].need_grad  # as nnabla's: a view that gets no gradient


# --- random flips, shifts and crops ---------------------------------------------------------

def _every_choice(kind, a, base_axis=1, **kw):
    """Every output one augmentation can give for each sample of `a` (NumPy)."""
    if kind == "flip":
        axes = kw["axes"]
        outs = []
        for mask in np.ndindex(*(2,) * len(axes)):
            chosen = tuple(ax for ax, m in zip(axes, mask, strict=True) if m)
            outs.append((chosen, np.flip(a, chosen) if chosen else a))
        return outs
    if kind == "shift":
        from test_array_functions_more import np_shift

        shifts, mode = kw["shifts"], kw.get("border_mode", "nearest")
        outs = []
        for t in np.ndindex(*(2 * s + 1 for s in shifts)):
            t = tuple(v - s for v, s in zip(t, shifts, strict=True))
            if mode == "constant":
                out = a.copy()
                for axis, s in zip(range(a.ndim - len(t), a.ndim), t, strict=True):
                    n = a.shape[axis]
                    src = np.arange(n) - s
                    ok = (src >= 0) & (src < n)
                    out = np.take(out, np.clip(src, 0, n - 1), axis=axis)
                    shape = [1] * a.ndim
                    shape[axis] = n
                    out = np.where(ok.reshape(shape), out, kw["constant_value"])
            else:
                out = np_shift(a, t, mode)
            outs.append((t, out))
        return outs
    shape = kw["shape"]
    lead = a.ndim - len(shape)
    outs = []
    for off in np.ndindex(*(n - s + 1 for n, s in zip(a.shape[lead:], shape, strict=True))):
        index = (slice(None),) * lead + tuple(slice(o, o + s) for o, s in zip(off, shape,
                                                                              strict=True))
        outs.append((off, index))
    return outs


AUGMENTATIONS = [
    ("flip", lambda x: F.random_flip(x, axes=(1, 2)), {"axes": (0, 1)}),
    ("flip default axis", F.random_flip, {"axes": (1,)}),
    ("shift nearest", lambda x: F.random_shift(x, (1, 2)), {"shifts": (1, 2)}),
    ("shift reflect", lambda x: F.random_shift(x, (3,), border_mode="reflect"),
     {"shifts": (3,), "border_mode": "reflect"}),
    ("shift constant", lambda x: F.random_shift(x, (2, 1), border_mode="constant",
                                                constant_value=-7.0),
     {"shifts": (2, 1), "border_mode": "constant", "constant_value": -7.0}),
    ("crop", lambda x: F.random_crop(x, (2, 3)), {"shape": (2, 3)}),
]


def _match(kind, sample, out, grad, dy, **kw):
    """The choice that gives `out` of `sample`, and that the gradient went back through
    it: dx = the transpose of that choice applied to dy."""
    for choice, value in _every_choice(kind, sample, **kw):
        if kind == "crop":
            if np.array_equal(sample[value], out):
                expected = np.zeros_like(sample)
                expected[value] = dy
                if np.allclose(grad, expected):
                    return choice
            continue
        if np.array_equal(value, out):
            # the transpose by finite differences of the (linear) choice
            expected = np.zeros_like(sample)
            for i in np.ndindex(sample.shape):
                basis = np.zeros_like(sample)
                basis[i] = 1
                other = dict(kw, constant_value=0.0) if "constant_value" in kw else kw
                moved = dict(_every_choice(kind, basis, **other))[choice]
                expected[i] = np.sum(moved * dy)
            if np.allclose(grad, expected):
                return choice
    raise AssertionError(f"no {kind} of the sample gives the output and the gradient")


@pytest.mark.parametrize("name,build,kw", AUGMENTATIONS, ids=[a[0] for a in AUGMENTATIONS])
def test_augmentations_choose_and_backpropagate(name, build, kw):
    kind = name.split()[0]
    nn.clear_parameters()
    nn.seed(0)
    x = nn.Variable.from_numpy_array(  # float32: its values, as the module reads them
        np.random.default_rng(1).normal(size=(6, 3, 4)).astype(np.float32), need_grad=True)
    y = build(x)
    w = nn.Variable.from_numpy_array(
        np.random.default_rng(2).normal(size=y.shape).astype(np.float32))
    loss = F.sum(y * w)
    seen = []
    for _ in range(4):
        loss.forward()
        x.grad.zero()
        loss.backward()
        seen.append([_match(kind, x.d[s], y.d[s], x.g[s], w.d[s], **kw) for s in range(6)])
    assert len({str(choices) for choices in seen}) > 1  # each forward pass draws anew


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
def test_augmentations_repeat_for_one_seed(backend, tmp_path):
    """One seed, one choice: the modules' rng and the runtime's seed= (as dropout's); the
    array API module draws the NumPy module's choices."""
    def run(seed):
        nn.clear_parameters()
        x = nn.Variable.from_numpy_array(np.arange(48.0).reshape(4, 3, 4))
        y = F.random_crop(F.random_shift(F.random_flip(x, (1, 2), seed=seed), (1, 1)), (2, 2))
        out = []
        for _ in range(3):
            y.forward()
            out.append(y.d.copy())
        return out

    assert all(np.array_equal(a, b) for a, b in zip(run(5), run(5), strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(run(5), run(6), strict=True))
    nn.clear_parameters()
    x = nn.Variable((4, 3, 4), need_grad=True)
    x.name = "x"
    loss = F.sum(F.random_shift(F.random_flip(x, (1, 2)), (1, 2), border_mode="reflect") ** 2)
    numpy_module = nn.compile(loss, name="aug", output_dir=tmp_path / "n", dtype="float64").module
    other = nn.compile(loss, name="aug", output_dir=tmp_path / "a", dtype="float64",
                       backend=backend).module
    data = np.random.default_rng(0).normal(size=(4, 3, 4))
    arg = xps.asarray(data) if backend == "array_api" else data
    for seed in (1, 2):
        expected = numpy_module.gradient(data, rng=seed)
        got = other.gradient(arg, rng=seed)
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_allclose(np.from_dlpack(a) if backend == "array_api" else a, b,
                                       rtol=1e-12)
    assert numpy_module.forward(data, rng=1) != numpy_module.forward(data, rng=3)


# --- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("call,error,message", [
    (lambda x: F.celu(x, axis=3), ValueError,
     r"F.celu: axis 3 is out of range for an input of shape \(2, 3, 4\)"),
    (lambda x: F.prelu(x, nn.Variable((4,))), ValueError,
     r"F.prelu: slopes x1 of shape \(4,\) do not fit x0 of shape \(2, 3, 4\) at base_axis "
     r"1: give one slope .* of shape \(3,\)"),
    (lambda x: F.prelu(x, nn.Variable(()), base_axis=3), ValueError,
     r"F.prelu: base_axis 3 is out of range for an input of shape \(2, 3, 4\)"),
    (lambda x: F.kl_multinomial(x, nn.Variable((2, 3, 1))), ValueError,
     r"F.kl_multinomial: p of shape \(2, 3, 4\) and q of shape \(2, 3, 1\) must have the "
     r"same shape"),
    (lambda x: F.kl_multinomial(x, x, base_axis=0), ValueError,
     r"F.kl_multinomial: base_axis 0 .* use base_axis=1"),
    (lambda x: F.mod2(x, nn.Variable((3, 4))), ValueError,
     r"F.mod2: inputs of shapes \(2, 3, 4\) and \(3, 4\) have different ranks"),
    (lambda x: F.interpolate(x, output_size=(3,), mode="cubic"), ValueError,
     r"F.interpolate: input of shape \(2, 3, 4\): mode='cubic' is not one of nnabla's"),
    (lambda x: F.interpolate(x, output_size=(3,), align_corners=True, half_pixel=True),
     ValueError, r"align_corners=True and half_pixel=True together are not supported"),
    (lambda x: F.interpolate(x), ValueError, r"F.interpolate: .* give scale or output_size"),
    (lambda x: F.interpolate(x, output_size=(3, 3, 3), channel_last=True), ValueError,
     r"F.interpolate: input of shape \(2, 3, 4\): 3 resized axes; nnabla interpolates 1 to 3 "
     r"axes, and the input must have them before its channels \(channel_last=True\)"),
    (lambda x: F.interpolate(x, output_size=(2, 2, 2, 2)), ValueError,
     r"F.interpolate: input of shape \(2, 3, 4\): 4 resized axes; nnabla interpolates 1 to 3"),
    (lambda x: F.interpolate(x, scale=(0.1,)), ValueError,
     r"the output size \(0,\) along axes \(2,\) must be at least 1"),
    (lambda x: F.random_flip(x, axes=(0,)), ValueError,
     r"F.random_flip: axes \(0,\) include sample axes of the input of shape \(2, 3, 4\)"),
    (lambda x: F.random_flip(x, seed=0.5), TypeError, r"F.random_flip: seed must be an int"),
    (lambda x: F.random_shift(x, (1,), border_mode="wrap"), ValueError,
     r"F.random_shift: border_mode='wrap' is not one of nnabla's"),
    (lambda x: F.random_shift(x, (1, 0, 0)), ValueError,
     r"F.random_shift: shifts=\(1, 0, 0\) acts on the sample axes"),
    (lambda x: F.random_crop(x, (4, 4)), ValueError,
     r"F.random_crop: shape \(4, 4\) does not fit the input of shape \(2, 3, 4\)"),
    (lambda x: F.random_crop(x, base_axis=3), ValueError,
     r"F.random_crop: base_axis 3 is out of range"),
    (lambda x: F.erf(np.zeros(3)), TypeError, r"F.erf: input 0 must be a Variable"),
])
def test_bad_input_is_refused_when_the_graph_is_built(call, error, message):
    with pytest.raises(error, match=message):
        call(nn.Variable(X))


# --- nnabla 1.39 ---------------------------------------------------------------------------

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
# expressions of x (2, 3, 4) and of probabilities p, q (2, 3, 4), the same text in nnabla
# and here, and whether the backward is compared too (mod2 has none in nnabla)
EXPRESSIONS = [
    ("F.erf(x * 2)", True),
    ("F.celu(x, alpha=2.0)", True),
    ("F.celu(x, axis=-1)", True),
    ("F.prelu(x, x[0, :, 0])", True),
    ("F.prelu(x, x[0, 0, 0], base_axis=2)", True),
    ("F.kl_multinomial(p, q)", True),
    ("F.kl_multinomial(p, q, base_axis=2)", True),
    ("F.mod2(x * 5, x[:, :, :1] + 0.5)", False),
    ("F.mod2(x * 5, x[:, :, :1] + 0.5, fmod=True)", False),
    ("F.interpolate(x, output_size=(7,))", True),
    ("F.interpolate(x, output_size=(5, 3), align_corners=True)", True),
    ("F.interpolate(x, scale=(1.5, 2.5), half_pixel=True)", True),
    ("F.interpolate(F.reshape(x, (1, 2, 3, 4)), output_size=(3, 5, 2))", True),
    ("F.interpolate(x, output_size=(5, 7), mode='nearest')", True),
    ("F.interpolate(x, output_size=(2, 7), mode='nearest', half_pixel=True)", True),
    ("F.interpolate(x, output_size=(8,), mode='nearest', half_pixel_for_nn=True)", True),
    ("F.interpolate(x, output_size=(5,), mode='nearest', align_corners=True)", True),
]
NNABLA_EXTRA = r"""
import json, sys
import numpy as np
import nnabla as nn, nnabla.functions as F

for i, (text, backward) in enumerate(json.loads(sys.argv[1])):
    rng = np.random.RandomState(i)
    x = nn.Variable.from_numpy_array(rng.randn(2, 3, 4).astype(np.float32), need_grad=True)
    a, b = rng.uniform(0.1, 1, (2, 2, 3, 4)).astype(np.float32)
    p = nn.Variable.from_numpy_array(a / a.sum((1, 2), keepdims=True), need_grad=True)
    q = nn.Variable.from_numpy_array(b / b.sum((1, 2), keepdims=True), need_grad=True)
    out = eval(text)
    g = np.asarray(rng.randn(*out.shape), np.float32)
    out.forward()
    for v in (x, p, q):
        v.grad.zero()
    if backward:
        out.backward(g)
    print(json.dumps({"x": x.d.tolist(), "p": p.d.tolist(), "q": q.d.tolist(), "g": g.tolist(),
                      "out": np.asarray(out.d, np.float64).tolist(), "dx": x.g.tolist(),
                      "dp": p.g.tolist(), "dq": q.g.tolist()}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_functions_against_nnabla(tmp_path):
    """The output (and where marked, the gradients of x, p and q) of each expression
    equals nnabla 1.39's."""
    rows = nnabla_rows(NNABLA, NNABLA_EXTRA, EXPRESSIONS, tmp_path)
    assert len(rows) == len(EXPRESSIONS)
    for (text, backward), row in zip(EXPRESSIONS, rows, strict=True):
        nn.clear_parameters()
        leaves = {k: nn.Variable.from_numpy_array(np.array(row[k], np.float32), need_grad=True)
                  for k in ("x", "p", "q")}
        out = eval(text, {"F": F, **leaves})
        loss = F.sum(out * nn.Variable.from_numpy_array(np.array(row["g"], np.float32)))
        loss.forward()
        for v in leaves.values():
            v.grad.zero()
        loss.backward()
        np.testing.assert_allclose(out.d, row["out"], rtol=1e-5, atol=1e-6, err_msg=text)
        if backward:
            for k in ("x", "p", "q"):
                np.testing.assert_allclose(leaves[k].g, row["d" + k], rtol=1e-4, atol=1e-5,
                                           err_msg=f"{text}: d{k}")


NNABLA_AUGMENTATIONS = r"""
import json, sys
import numpy as np
import nnabla as nn, nnabla.functions as F

nn.seed(0)
for i, text in enumerate(json.loads(sys.argv[1])):
    rng = np.random.RandomState(i)
    x = nn.Variable.from_numpy_array(rng.randn(6, 3, 4).astype(np.float32), need_grad=True)
    out = eval(text)
    g = np.asarray(rng.randn(*out.shape), np.float32)
    out.forward()
    x.grad.zero()
    out.backward(g)
    print(json.dumps({"x": x.d.tolist(), "g": g.tolist(), "out": out.d.tolist(),
                      "dx": x.g.tolist()}))
"""
# nnabla's expressions, with the choices symcompile's enumerate (AUGMENTATIONS)
NNABLA_CHOICES = [
    ("F.random_flip(x, axes=(1, 2), seed=3)", "flip", {"axes": (0, 1)}),
    ("F.random_flip(x)", "flip", {"axes": (1,)}),
    ("F.random_shift(x, (1, 2), seed=4)", "shift", {"shifts": (1, 2)}),
    ("F.random_shift(x, (3,), border_mode='reflect')", "shift",
     {"shifts": (3,), "border_mode": "reflect"}),
    ("F.random_shift(x, (2, 1), border_mode='constant', constant_value=-7.0)", "shift",
     {"shifts": (2, 1), "border_mode": "constant", "constant_value": -7.0}),
    ("F.random_crop(x, (2, 3), seed=5)", "crop", {"shape": (2, 3)}),
]


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set")
def test_nnabla_chooses_among_the_same_choices(tmp_path):
    """Each sample of nnabla 1.39's random_flip/shift/crop, and its gradient, is one of the
    flips/shifts/crops symcompile's can give (the streams differ, the choices do not):
    the shift's direction y[j] = x[j - t], its reflect and constant borders, the crop's
    offsets."""
    rows = nnabla_rows(NNABLA, NNABLA_AUGMENTATIONS,
                       [text for text, _, _ in NNABLA_CHOICES], tmp_path)
    assert len(rows) == len(NNABLA_CHOICES)
    for (text, kind, kw), row in zip(NNABLA_CHOICES, rows, strict=True):
        x, out, dx, g = (np.array(row[k], np.float64) for k in ("x", "out", "dx", "g"))
        choices = [_match(kind, x[s], out[s], dx[s], g[s], **kw) for s in range(6)]
        assert len(choices) == 6, text
