"""F.fft and F.ifft (a kernel over each backend's FFT), F.stft and F.istft (nnabla's
compositions: padding, convolutions and deconvolutions with windowed DFT bases).

- forward against independent NumPy references in float64 (numpy.fft's fftn/ifftn; for
  stft, frames cut by slicing, windowed and numpy.fft.rfft'ed; for istft, numpy.fft.irfft
  (even fft_size) or nnabla's documented sum (odd), overlap-added and divided by the
  overlap-added squared window; as_istft_backward / as_stft_backward: the transposes of
  those linear maps, as matrices), and gradients against central differences, through a
  compiled module (and its array API twin on array-api-strict arrays) and through the
  runtime (loss.forward(); loss.backward());
- bad input refused when the graph is built, with nnabla's checks (its refusal of
  istft's default pad_mode="reflect" too);
- nnabla 1.39's numbers for stft and istft (all options, and their gradients) where it is
  installed; its CPU fft and ifft are not implemented (it says so), as checked.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from gradcheck import check_array_api, check_function, compile_f64, numeric_gradient
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.functions as F

# --- NumPy references -------------------------------------------------------------------------


def np_dft(x, signal_ndim, normalized, inverse):
    z = x[..., 0] + 1j * x[..., 1]
    axes = tuple(range(z.ndim - signal_ndim, z.ndim))
    n = int(np.prod([z.shape[a] for a in axes]))
    y = np.fft.ifftn(z, axes=axes) if inverse else np.fft.fftn(z, axes=axes)
    if normalized:
        y = y * (np.sqrt(n) if inverse else 1 / np.sqrt(n))
    return np.stack([y.real, y.imag], axis=-1)


def np_window(kind, window_size, fft_size):
    i = np.arange(window_size)
    w = {"hanning": 0.5 - 0.5 * np.cos(2 * np.pi * i / window_size),
         "hamming": 0.54 - 0.46 * np.cos(2 * np.pi * i / window_size),
         "rectangular": np.ones(window_size)}[kind or "rectangular"]
    left = (fft_size - window_size) // 2
    return np.pad(w, (left, fft_size - window_size - left))


NUMPY_PAD = {"constant": "constant", "reflect": "reflect", "repeat": "edge"}


def np_stft(x, window_size, stride, fft_size, window_type="hanning", center=True,
            pad_mode="reflect"):
    if center:
        x = np.pad(x, ((0, 0), (fft_size // 2,) * 2), mode=NUMPY_PAD[pad_mode])
    frames = (x.shape[1] - fft_size) // stride + 1
    cut = np.stack([x[:, f * stride:f * stride + fft_size] for f in range(frames)], axis=1)
    y = np.fft.rfft(cut * np_window(window_type, window_size, fft_size), axis=-1)
    return np.stack([y.real, y.imag]).transpose(0, 1, 3, 2)  # (2, B, bins, frames)


def np_overlap(window, frames, stride):
    n = window.size
    out = np.zeros((frames - 1) * stride + n)
    for f in range(frames):
        out[f * stride:f * stride + n] += window
    return out


def np_istft(y_r, y_i, window_size, stride, fft_size, window_type="hanning", center=True):
    y = (y_r + 1j * y_i).transpose(0, 2, 1)  # (B, frames, bins)
    if fft_size % 2 == 0:
        cut = np.fft.irfft(y, n=fft_size, axis=-1)
    else:  # nnabla's sum: its last bin fft_size // 2 counted once (irfft counts it twice)
        w, t = np.arange(fft_size // 2 + 1), np.arange(fft_size)
        alpha = np.where((w == 0) | (w == fft_size // 2), 1.0, 2.0) / fft_size
        cut = np.real(y @ (alpha[:, None] * np.exp(2j * np.pi * np.outer(w, t) / fft_size)))
    window = np_window(window_type, window_size, fft_size)
    frames = y.shape[1]
    size = (frames - 1) * stride + fft_size
    x = np.zeros((y.shape[0], size))
    for f in range(frames):
        x[:, f * stride:f * stride + fft_size] += cut[:, f] * window
    overlap = np_overlap(window ** 2, frames, stride)
    half = fft_size // 2
    kept = slice(half, size - half) if center else slice(0, size)
    return x[:, kept] / overlap[kept]


def transpose_of(linear, in_shape, cotangent):
    """(J^T cotangent) for the linear map `linear` of arrays of `in_shape`, J built column
    by column: an independent check of the adjoint options."""
    size = int(np.prod(in_shape))
    columns = [np.asarray(linear(np.eye(size)[i].reshape(in_shape))).ravel()
               for i in range(size)]
    return (np.stack(columns, 1).T @ np.asarray(cotangent).ravel()).reshape(in_shape)


def stft_as_istft_backward(x, *args, **kw):
    """stft(..., as_istft_backward=True): the transpose of istft (constant padding)."""
    def istft_map(y):
        return np_istft(y[0], y[1], *args, **kw)

    frames = _frames_for(x.shape[1], *args, **kw)
    bins = args[2] // 2 + 1
    in_shape = (2, x.shape[0], bins, frames)
    kept = istft_map(np.zeros(in_shape)).shape[1]  # (samples past the last frame: none)
    return transpose_of(istft_map, in_shape, x[:, :kept])


def _frames_for(length, window_size, stride, fft_size, window_type="hanning", center=True):
    padded = length + 2 * (fft_size // 2) if center else length
    return (padded - fft_size) // stride + 1


def istft_as_stft_backward(y_r, y_i, window_size, stride, fft_size, window_type="hanning",
                           center=True, pad_mode="reflect"):
    """istft(..., as_stft_backward=True): the transpose of stft."""
    frames = y_r.shape[2]
    size = (frames - 1) * stride + fft_size
    length = size - 2 * (fft_size // 2) if center else size
    return transpose_of(lambda x: np_stft(x, window_size, stride, fft_size, window_type,
                                          center, pad_mode),
                        (y_r.shape[0], length), np.stack([y_r, y_i]))


def normal(*shapes, seed=0):
    def draw():
        rng = np.random.default_rng(seed)
        return [rng.normal(size=s) for s in shapes]
    return draw


def spectra(batch, fft_size, frames, seed=0):
    return normal((batch, fft_size // 2 + 1, frames), (batch, fft_size // 2 + 1, frames),
                  seed=seed)


def both(pair):
    return F.stack(*pair, axis=0)


# (name, build, NumPy reference, inputs)
CASES = [
    ("fft 1-D", lambda x: F.fft(x, 1), lambda a: np_dft(a, 1, False, False),
     normal((3, 5, 2))),
    ("fft 1-D of one signal", lambda x: F.fft(x, 1, normalized=True),
     lambda a: np_dft(a, 1, True, False), normal((6, 2), seed=1)),
    ("fft 2-D", lambda x: F.fft(x, 2), lambda a: np_dft(a, 2, False, False),
     normal((2, 4, 3, 2), seed=2)),
    ("fft 2-D normalized", lambda x: F.fft(x, 2, True), lambda a: np_dft(a, 2, True, False),
     normal((3, 2, 5, 2), seed=3)),
    ("fft 3-D", lambda x: F.fft(x, 3), lambda a: np_dft(a, 3, False, False),
     normal((2, 3, 2, 4, 2), seed=4)),
    ("ifft 1-D", lambda x: F.ifft(x, 1), lambda a: np_dft(a, 1, False, True),
     normal((3, 5, 2), seed=5)),
    ("ifft 2-D normalized", lambda x: F.ifft(x, 2, normalized=True),
     lambda a: np_dft(a, 2, True, True), normal((2, 4, 3, 2), seed=6)),
    ("ifft 3-D", lambda x: F.ifft(x, 3), lambda a: np_dft(a, 3, False, True),
     normal((1, 3, 2, 2, 2), seed=7)),
    ("ifft of fft times x", lambda x: F.ifft(F.fft(x, 1) * x, 1),
     lambda a: np_dft(np_dft(a, 1, False, False) * a, 1, False, True), normal((2, 4, 2), seed=8)),
    ("stft hanning reflect", lambda x: both(F.stft(x, 8, 2, 8)),
     lambda a: np_stft(a, 8, 2, 8), normal((2, 20))),
    ("stft hamming constant, window < fft", lambda x: both(
        F.stft(x, 5, 3, 8, "hamming", pad_mode="constant")),
     lambda a: np_stft(a, 5, 3, 8, "hamming", pad_mode="constant"), normal((2, 17), seed=1)),
    ("stft rectangular repeat, odd fft", lambda x: both(
        F.stft(x, 6, 2, 7, "rectangular", pad_mode="repeat")),
     lambda a: np_stft(a, 6, 2, 7, "rectangular", pad_mode="repeat"), normal((1, 15), seed=2)),
    ("stft window None, not centred", lambda x: both(F.stft(x, 4, 3, 6, None, center=False)),
     lambda a: np_stft(a, 4, 3, 6, None, False), normal((2, 19), seed=3)),
    ("stft reflect shorter than the padding", lambda x: both(F.stft(x, 8, 2, 8)),
     lambda a: np_stft(a, 8, 2, 8), normal((2, 3), seed=4)),
    ("stft as_istft_backward", lambda x: both(
        F.stft(x, 8, 2, 8, pad_mode="constant", as_istft_backward=True)),
     lambda a: stft_as_istft_backward(a, 8, 2, 8), normal((2, 16), seed=5)),
    ("stft as_istft_backward hamming, not centred, a sample left over", lambda x: both(
        F.stft(x, 8, 2, 8, "hamming", False, "constant", True)),
     lambda a: stft_as_istft_backward(a, 8, 2, 8, "hamming", False), normal((1, 17), seed=6)),
    ("istft hanning", lambda r, i: F.istft(r, i, 8, 2, 8, pad_mode="constant"),
     lambda r, i: np_istft(r, i, 8, 2, 8), spectra(2, 8, 9)),
    ("istft hamming not centred", lambda r, i: F.istft(r, i, 6, 3, 6, "hamming", False,
                                                       "constant"),
     lambda r, i: np_istft(r, i, 6, 3, 6, "hamming", False), spectra(2, 6, 4, seed=1)),
    ("istft rectangular odd fft", lambda r, i: F.istft(r, i, 5, 1, 7, None,
                                                       pad_mode="constant"),
     lambda r, i: np_istft(r, i, 5, 1, 7, "rectangular"), spectra(1, 7, 5, seed=2)),
    ("istft as_stft_backward reflect", lambda r, i: F.istft(r, i, 8, 2, 8,
                                                            as_stft_backward=True),
     lambda r, i: istft_as_stft_backward(r, i, 8, 2, 8), spectra(2, 8, 9, seed=3)),
    ("istft as_stft_backward repeat hamming", lambda r, i: F.istft(
        r, i, 6, 2, 8, "hamming", pad_mode="repeat", as_stft_backward=True),
     lambda r, i: istft_as_stft_backward(r, i, 6, 2, 8, "hamming", pad_mode="repeat"),
     spectra(1, 8, 7, seed=4)),
    ("istft as_stft_backward not centred", lambda r, i: F.istft(
        r, i, 8, 4, 8, "rectangular", False, "constant", True),
     lambda r, i: istft_as_stft_backward(r, i, 8, 4, 8, "rectangular", False, "constant"),
     spectra(2, 8, 3, seed=5)),
    ("istft of stft", lambda x: F.istft(*F.stft(x, 8, 2, 8, pad_mode="constant"), 8, 2, 8,
                                        pad_mode="constant"),
     lambda a: a, normal((2, 16), seed=7)),
]
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("name,build,reference,draw", CASES, ids=IDS)
def test_forward_and_gradients(name, build, reference, draw, tmp_path, rng):
    arrays = draw()
    module = check_function(build, reference, arrays, tmp_path, rng)
    nn.clear_parameters()
    check_array_api(build, arrays, module, tmp_path)


def test_references_agree_with_each_other():
    """istft's reference inverts stft's (hanning, stride a quarter of the window), and the
    transposes are those of the maps (the identity <J x, y> = <x, J^T y>)."""
    (x,) = normal((2, 24))()
    y = np_stft(x, 8, 2, 8)
    np.testing.assert_allclose(np_istft(y[0], y[1], 8, 2, 8), x, atol=1e-12)
    g = np.random.default_rng(1).normal(size=y.shape)
    back = istft_as_stft_backward(g[0], g[1], 8, 2, 8)
    np.testing.assert_allclose(np.vdot(y, g), np.vdot(x[:, :back.shape[1]], back), rtol=1e-10)


# --- through the runtime: forward() and backward() on the Variables (float32) -----------------

def _leaf(array, need_grad=True):
    return nn.Variable.from_numpy_array(np.asarray(array, np.float32), need_grad=need_grad)


@pytest.mark.parametrize("name", ["fft 2-D normalized", "ifft 1-D", "stft hanning reflect",
                                  "stft as_istft_backward", "istft hanning",
                                  "istft as_stft_backward reflect"])
def test_runtime_forward_and_backward(name, tmp_path):
    """loss.forward(); loss.backward() give the reference's values and the central
    differences of a float64 compiled forward, within float32 rounding."""
    _, build, reference, draw = CASES[IDS.index(name)]
    arrays = draw()
    leaves = [_leaf(a) for a in arrays]
    out = build(*leaves)
    weights = np.random.default_rng(5).normal(size=out.shape)
    loss = F.sum(out * _leaf(weights, False))
    loss.forward()
    for v in leaves:
        v.grad.zero()
    loss.backward()
    np.testing.assert_allclose(out.d, reference(*arrays), rtol=2e-4, atol=2e-5)
    variables = []
    for i, a in enumerate(arrays):
        v = nn.Variable(a.shape)
        v.name = f"in{i}"
        variables.append(v)
    w = nn.Variable(weights.shape)
    w.name = "weights"
    module = compile_f64(F.sum(build(*variables) * w), tmp_path, "fd").module
    order = [spec["name"] for spec in module.INPUTS.values()]
    for k, leaf in enumerate(leaves):
        values = {f"in{i}": a for i, a in enumerate(arrays)} | {"weights": weights}

        def f(*xs, k=k, values=values):
            values[f"in{k}"] = xs[k]
            return module.forward(*[values[n] for n in order])

        expected = numeric_gradient(f, arrays, k)
        np.testing.assert_allclose(leaf.g, expected, rtol=2e-3, atol=2e-4, err_msg=name)


def test_fft_gradient_is_nnablas_backward():
    """nnabla's backward functions: fft's gradient is ifft(dy) * N (ifft(dy) normalized),
    ifft's fft(dy) / N."""
    (a,) = normal((2, 3, 4, 2), seed=9)()
    g = np.random.default_rng(3).normal(size=a.shape)
    for function, normalized, expected in [
            (F.fft, False, np_dft(g, 2, False, True) * 12), (F.fft, True, np_dft(g, 2, True, True)),
            (F.ifft, False, np_dft(g, 2, False, False) / 12),
            (F.ifft, True, np_dft(g, 2, True, False))]:
        x = _leaf(a)
        loss = F.sum(function(x, 2, normalized) * _leaf(g, False))
        loss.forward()
        x.grad.zero()
        loss.backward()
        np.testing.assert_allclose(x.g, expected, rtol=1e-4, atol=1e-5)


def test_stft_then_istft_reconstructs_the_signal():
    (a,) = normal((3, 40), seed=11)()
    for window, stride in (("hanning", 2), ("hamming", 4), ("rectangular", 8)):
        x = _leaf(a)
        y = F.istft(*F.stft(x, 8, stride, 8, window, pad_mode="constant"), 8, stride, 8,
                    window, pad_mode="constant")
        y.forward()
        np.testing.assert_allclose(y.d, a, atol=2e-5, err_msg=window)


@pytest.mark.parametrize("call,error,message", [
    (lambda: F.fft(nn.Variable((3, 4)), 1), ValueError,
     r"F.fft: the input of shape \(3, 4\) is not complex signals of signal_ndim=1.*"
     r"the last of size 2"),
    (lambda: F.ifft(nn.Variable((4, 2)), 2), ValueError,
     r"F.ifft: the input of shape \(4, 2\) is not complex signals of signal_ndim=2.*"
     r"at least 3 axes"),
    (lambda: F.fft(nn.Variable((2, 2, 2, 2, 2)), 4), ValueError,
     r"F.fft: signal_ndim=4 must be 1, 2 or 3"),
    (lambda: F.fft(nn.Variable((4, 2)), 1, normalized="yes"), TypeError,
     r"F.fft: normalized must be True"),
    (lambda: F.stft(nn.Variable((2, 1, 32)), 8, 2, 8), ValueError,
     r"F.stft: x must be a Variable of time signals \(batch_size, sample_size\), got "
     r"\(2, 1, 32\)"),
    (lambda: F.stft(nn.Variable((2, 32)), 8, 2, 8, window_type="blackman"), ValueError,
     r"F.stft: window_type='blackman' is not one of nnabla's"),
    (lambda: F.stft(nn.Variable((2, 32)), 8, 2, 7), ValueError,
     r"F.stft: fft_size=7 < window_size=8"),
    (lambda: F.stft(nn.Variable((2, 32)), 8, 0, 8), ValueError,
     r"F.stft: stride=0 must be a positive int"),
    (lambda: F.stft(nn.Variable((2, 32)), 8, 2, 8, pad_mode="wrap"), ValueError,
     r"F.stft: pad_mode='wrap' is not one of"),
    (lambda: F.stft(nn.Variable((2, 32)), 8, 2, 8, as_istft_backward=True), ValueError,
     r"F.stft: pad_mode='reflect' must be 'constant' when as_istft_backward=True"),
    (lambda: F.stft(nn.Variable((2, 5)), 8, 2, 8, center=False), ValueError,
     r"F.stft: x of shape \(2, 5\) is shorter than one frame: 5 samples < fft_size=8"),
    (lambda: F.stft(nn.Variable((2, 32)), 8, 2, 8, center=False, pad_mode="constant",
                    as_istft_backward=True), ValueError,
     r"F.stft: the NOLA .* hanning window .* is 0 at sample 0"),
    (lambda: F.istft(nn.Variable((2, 5, 9)), nn.Variable((2, 5, 9)), 8, 2, 8), ValueError,
     r"F.istft: pad_mode='reflect': nnabla 1.39 refuses .* give pad_mode='constant'"),
    (lambda: F.istft(nn.Variable((2, 5, 9)), nn.Variable((2, 5, 9)), 8, 3, 8,
                     pad_mode="constant"), ValueError,
     r"F.istft: fft_size=8 must be a multiple of stride=3"),
    (lambda: F.istft(nn.Variable((2, 5, 9)), nn.Variable((2, 4, 9)), 8, 2, 8,
                     pad_mode="constant"), ValueError,
     r"F.istft: y_r and y_i must be Variables of one shape \(batch_size, fft_size // 2 \+ 1 "
     r"= 5, frames\), got \(2, 5, 9\) and \(2, 4, 9\)"),
    (lambda: F.istft(nn.Variable((2, 4, 9)), nn.Variable((2, 4, 9)), 8, 2, 8,
                     pad_mode="constant"), ValueError, r"= 5, frames\), got \(2, 4, 9\)"),
    (lambda: F.istft(nn.Variable((2, 5, 9)), nn.Variable((2, 5, 9)), 8, 2, 8, center=False,
                     pad_mode="constant"), ValueError,
     r"F.istft: the NOLA \(nonzero overlap-add\) condition is not met.*is 0 at sample 0"),
    (lambda: F.istft(nn.Variable((2, 5, 1)), nn.Variable((2, 5, 1)), 8, 2, 8,
                     pad_mode="constant"), ValueError,
     r"F.istft: 1 frame\(s\) of fft_size=8 leave no sample"),
    (lambda: F.istft(nn.Variable((2, 5, 2)), nn.Variable((2, 5, 2)), 8, 2, 8,
                     as_stft_backward=True), ValueError,
     r"F.istft: reflect padding of 4 samples at each end of 2 samples"),
])
def test_bad_input_is_refused_when_the_graph_is_built(call, error, message):
    with pytest.raises(error, match=message):
        call()


# --- nnabla 1.39 -------------------------------------------------------------------------------

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
# expressions of signals s (2, 20), a short one q (2, 3), and spectra r, i (2, 5, 9) of
# fft_size 8, the same text in nnabla and here (outputs stacked: F.stack of both)
EXPRESSIONS = [
    "F.stack(*F.stft(s, 8, 2, 8))",
    "F.stack(*F.stft(s, 5, 3, 8, 'hamming', pad_mode='constant'))",
    "F.stack(*F.stft(s, 6, 2, 7, 'rectangular', pad_mode='repeat'))",
    "F.stack(*F.stft(s, 4, 3, 6, None, center=False))",
    "F.stack(*F.stft(q, 8, 2, 8))",
    "F.stack(*F.stft(s, 8, 2, 8, pad_mode='constant', as_istft_backward=True))",
    "F.stack(*F.stft(s, 8, 2, 8, 'hamming', False, 'constant', True))",
    "F.istft(r, i, 8, 2, 8, pad_mode='constant')",
    "F.istft(r, i, 8, 2, 8, 'hamming', False, 'constant')",
    "F.istft(r, i, 8, 4, 8, 'rectangular', pad_mode='constant')",
    "F.istft(r, i, 8, 2, 8, as_stft_backward=True)",
    "F.istft(r, i, 6, 2, 8, 'hamming', pad_mode='repeat', as_stft_backward=True)",
    "F.istft(r, i, 8, 4, 8, 'rectangular', False, 'constant', True)",
    "F.istft(*F.stft(s, 8, 2, 8, pad_mode='constant'), 8, 2, 8, pad_mode='constant')",
]
NNABLA_SCRIPT = r"""
import json, sys
import numpy as np
import nnabla as nn, nnabla.functions as F

for k, text in enumerate(json.loads(sys.argv[1])):
    rng = np.random.RandomState(k)
    def leaf(array):
        return nn.Variable.from_numpy_array(np.asarray(array, np.float32), need_grad=True)
    values = dict(s=leaf(rng.randn(2, 20)), q=leaf(rng.randn(2, 3)), r=leaf(rng.randn(2, 5, 9)),
                  i=leaf(rng.randn(2, 5, 9)))
    inputs = {key: v.d.tolist() for key, v in values.items()}
    out = eval(text, {"F": F, **values})
    g = np.asarray(rng.randn(*out.shape), np.float32)
    out.forward()
    for v in values.values():
        v.grad.zero()
    out.backward(g)
    print(json.dumps({"inputs": inputs, "g": g.tolist(),
                      "out": np.asarray(out.d, np.float64).tolist(),
                      "grads": {key: v.g.tolist() for key, v in values.items()}}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_stft_istft_against_nnabla(tmp_path):
    """The output and every input's gradient of each expression equal nnabla 1.39's."""
    rows = nnabla_rows(NNABLA, NNABLA_SCRIPT, EXPRESSIONS, tmp_path)
    assert len(rows) == len(EXPRESSIONS)
    for text, row in zip(EXPRESSIONS, rows, strict=True):
        nn.clear_parameters()
        leaves = {k: nn.Variable.from_numpy_array(np.array(v, np.float32), need_grad=True)
                  for k, v in row["inputs"].items()}
        out = eval(text, {"F": F, **leaves})
        loss = F.sum(out * nn.Variable.from_numpy_array(np.array(row["g"], np.float32)))
        loss.forward()
        for v in leaves.values():
            v.grad.zero()
        loss.backward()
        np.testing.assert_allclose(out.d, row["out"], rtol=1e-4, atol=2e-5, err_msg=text)
        for k, grad in row["grads"].items():
            np.testing.assert_allclose(leaves[k].g, grad, rtol=1e-3, atol=1e-4,
                                       err_msg=f"{text}: d{k}")


NNABLA_FFT_SCRIPT = r"""
import json, sys
import numpy as np
import nnabla as nn, nnabla.functions as F

for name in ("fft", "ifft"):
    x = nn.Variable.from_numpy_array(np.zeros((2, 4, 2), np.float32))
    y = getattr(F, name)(x, 1)
    try:
        y.forward()
        print(json.dumps({"name": name, "shape": list(y.shape), "error": ""}))
    except Exception as e:
        print(json.dumps({"name": name, "shape": list(y.shape), "error": str(e)}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_nnablas_cpu_fft_is_not_implemented(tmp_path):
    """nnabla 1.39 builds fft and ifft graphs (the input's shape) but computes them only on
    CUDA (cuFFT): its CPU forward raises not_implemented, so ours are checked against
    numpy.fft and nnabla's documented formula and backward functions instead."""
    rows = nnabla_rows(NNABLA, NNABLA_FFT_SCRIPT, [], tmp_path)
    assert [r["name"] for r in rows] == ["fft", "ifft"]
    for r in rows:
        assert r["shape"] == [2, 4, 2]
        assert "not implemented in CPU" in r["error"], r
