"""Signal processing: fft and ifft (a kernel), stft and istft (compositions of pad,
convolution and deconvolution with windowed DFT bases, as nnabla's C++ builds them).
"""

from __future__ import annotations

import builtins
import math
import numbers

import numpy

from symcompile.frontend.functions._base import _record
from symcompile.frontend.functions.arrays import arange, constant, flip, pad, reshape
from symcompile.frontend.functions.elementwise import FUNCTIONS
from symcompile.frontend.functions.layers import convolution, deconvolution
from symcompile.frontend.functions.maths import sum
from symcompile.frontend.variable import Variable

__all__ = ["fft", "ifft", "stft", "istft"]

def fft(x, signal_ndim, normalized=False, n_outputs=-1, outputs=None):
    """The complex-to-complex DFT over the `signal_ndim` (1, 2 or 3) axes before the last
    of x (..., N_1, ..., N_d, 2), whose last axis holds the real and imaginary parts:
    y[k] = sum over n of x[n] exp(-2 pi j sum_i k_i n_i / N_i), times 1/sqrt(N_1 ... N_d)
    when `normalized`. Same shape; the gradient is nnabla's, ifft(dy) * N (unnormalized)."""
    return _record("fft", (x,), **_dft_arguments("fft", signal_ndim, normalized))


def ifft(x, signal_ndim, normalized=False, n_outputs=-1, outputs=None):
    """The inverse DFT of x (..., N_1, ..., N_d, 2) (see `fft`): y[k] = 1/(N_1 ... N_d)
    sum over n of x[n] exp(+2 pi j sum_i k_i n_i / N_i), the factor 1/sqrt(N_1 ... N_d)
    when `normalized`. The gradient is nnabla's, fft(dy) / N (unnormalized)."""
    return _record("ifft", (x,), **_dft_arguments("ifft", signal_ndim, normalized))


def _dft_arguments(op: str, signal_ndim, normalized) -> dict:
    if isinstance(signal_ndim, bool) or not isinstance(signal_ndim, numbers.Integral) \
            or signal_ndim not in (1, 2, 3):
        raise ValueError(f"F.{op}: signal_ndim={signal_ndim!r} must be 1, 2 or 3 (nnabla's "
                         f"{op} transforms 1-D, 2-D or 3-D signals)")
    if not isinstance(normalized, (bool, numpy.bool_)):
        raise TypeError(f"F.{op}: normalized must be True (unitary, 1/sqrt(N)) or False "
                        f"(the default), got {normalized!r}")
    return {"signal_ndim": int(signal_ndim), "normalized": bool(normalized)}

_WINDOWS = ("hanning", "hamming", "rectangular")


def stft(x, window_size, stride, fft_size, window_type="hanning", center=True,
         pad_mode="reflect", as_istft_backward=False):
    """The short-time Fourier transform of x (B, L), as nnabla's C++ builds it: x padded
    by fft_size // 2 on both sides with `pad_mode` when `center`, then convolved (stride
    `stride`) with the windowed DFT basis, W[w, 0, t] = window[t] * (cos, -sin)(2 pi w t /
    fft_size) for the fft_size // 2 + 1 bins w. Returns (y_r, y_i), each (B, fft_size // 2
    + 1, frames). `window_type` "hanning" 0.5 - 0.5 cos(2 pi i / window_size), "hamming"
    0.54 - 0.46 cos(...), "rectangular" (or None) ones, centred in fft_size zeros.
    `as_istft_backward` computes istft's backward instead (pad_mode "constant"): x divided
    by the overlap-added squared window, then convolved with istft's basis. A
    composition: its gradients (istft's with as_stft_backward, as nnabla's) come from
    the parts."""
    op = "stft"
    window_type = _stft_checks(op, window_size, stride, fft_size, window_type, pad_mode,
                               as_istft_backward, "as_istft_backward")
    if not isinstance(x, Variable) or len(x.shape) != 2:
        raise ValueError(f"F.stft: x must be a Variable of time signals (batch_size, "
                         f"sample_size), got {getattr(x, 'shape', x)!r}; reshape it")
    if as_istft_backward and pad_mode != "constant":
        raise ValueError(f"F.stft: pad_mode={pad_mode!r} must be 'constant' when "
                         f"as_istft_backward=True (nnabla's check: a normal istft only "
                         f"slices its output, so its backward pads with zeros)")
    batch, length = x.shape
    half = fft_size // 2
    padded = length + 2 * half if center else length
    if padded < fft_size:
        raise ValueError(f"F.stft: x of shape {x.shape} is shorter than one frame: "
                         f"{padded} samples{' after centre padding' if center else ''} < "
                         f"fft_size={fft_size}; give a longer signal or a smaller fft_size")
    frames = (padded - fft_size) // stride + 1
    window = _stft_window(window_type, window_size, fft_size)
    if not as_istft_backward:
        h = pad(x, (half, half), mode=pad_mode) if center else x
        w_cos, w_sin = _dft_basis(fft_size, window, inverse=False)
    else:
        # conv reads the first `used` padded samples; the ones after take no part
        used = (frames - 1) * stride + fft_size
        inverse = _overlap_added(window * window, frames, stride)  # (1, used)
        start = half if center else 0
        kept = builtins.min(length, used - start)
        _nola(op, window_type, window_size, stride, fft_size, used, start, start + kept,
              "as_istft_backward=True divides x by it (nnabla 1.39 computes inf and nan there)")
        h = x[:, :kept] / inverse[:, start:start + kept]
        if center or kept < used:
            h = pad(h, (start, used - start - kept))
        w_cos, w_sin = _dft_basis(fft_size, window, inverse=True)
    h = reshape(h, (batch, 1, h.shape[1]))
    return (convolution(h, w_cos, stride=(stride,)), convolution(h, w_sin, stride=(stride,)))


def istft(y_r, y_i, window_size, stride, fft_size, window_type="hanning", center=True,
          pad_mode="reflect", as_stft_backward=False):
    """The inverse short-time Fourier transform of y_r, y_i (B, fft_size // 2 + 1,
    frames), as nnabla's C++ builds it: deconvolutions (stride `stride`) with the
    windowed inverse DFT basis a_w window[t] (cos, -sin)(2 pi w t / fft_size), a_w =
    1/fft_size for bin 0 and bin fft_size // 2, else 2/fft_size, summed (an overlap-add),
    divided by the overlap-added squared window, and with `center` the fft_size // 2
    samples at each end cut: x (B, (frames - 1) * stride + fft_size - 2 * (fft_size // 2)
    if center). nnabla refuses the default pad_mode="reflect" unless as_stft_backward
    (give pad_mode="constant"), a fft_size that is not a multiple of stride, and a
    window whose overlap-add has a zero where it divides (NOLA). `as_stft_backward`
    computes stft's backward instead: stft's basis, no division, and the padding's
    backward of `pad_mode`. A composition: its gradients come from the parts."""
    op = "istft"
    window_type = _stft_checks(op, window_size, stride, fft_size, window_type, pad_mode,
                               as_stft_backward, "as_stft_backward")
    bins = fft_size // 2 + 1
    shapes = [getattr(y, "shape", None) for y in (y_r, y_i)]
    if not all(isinstance(y, Variable) for y in (y_r, y_i)) or len(shapes[0]) != 3 \
            or shapes[0] != shapes[1] or shapes[0][1] != bins:
        raise ValueError(f"F.istft: y_r and y_i must be Variables of one shape (batch_size, "
                         f"fft_size // 2 + 1 = {bins}, frames), got {shapes[0]} and "
                         f"{shapes[1]}")
    if fft_size % stride:
        raise ValueError(f"F.istft: fft_size={fft_size} must be a multiple of stride="
                         f"{stride} (nnabla's check)")
    if not as_stft_backward and pad_mode != "constant":
        raise ValueError(f"F.istft: pad_mode={pad_mode!r}: nnabla 1.39 refuses any pad_mode "
                         f"but 'constant' when as_stft_backward=False (it is unused then), "
                         f"the default 'reflect' too; give pad_mode='constant'")
    batch, _, frames = shapes[0]
    half = fft_size // 2
    size = (frames - 1) * stride + fft_size
    if center and size <= 2 * half:
        raise ValueError(f"F.istft: {frames} frame(s) of fft_size={fft_size} leave no sample "
                         f"once fft_size // 2 = {half} are cut at each end (center=True)")
    window = _stft_window(window_type, window_size, fft_size)
    w_cos, w_sin = _dft_basis(fft_size, window, inverse=not as_stft_backward)
    x = (deconvolution(y_r, w_cos, stride=(stride,))
         + deconvolution(y_i, w_sin, stride=(stride,)))
    x = reshape(x, (batch, size))
    if as_stft_backward:
        return _padding_backward(op, x, half, pad_mode) if center else x
    start, stop = (half, size - half) if center else (0, size)
    _nola(op, window_type, window_size, stride, fft_size, size, start, stop,
          "it divides by it (nnabla's check)")
    inverse = _overlap_added(window * window, frames, stride)
    return x[:, start:stop] / inverse[:, start:stop]


def _stft_checks(op, window_size, stride, fft_size, window_type, pad_mode, backward, name):
    for arg, value in (("window_size", window_size), ("stride", stride),
                       ("fft_size", fft_size)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"F.{op}: {arg}={value!r} must be a positive int")
    window_type = "rectangular" if window_type is None else window_type
    if window_type not in _WINDOWS:
        raise ValueError(f"F.{op}: window_type={window_type!r} is not one of nnabla's "
                         f"'hanning', 'hamming', 'rectangular' (or None)")
    if fft_size < window_size:
        raise ValueError(f"F.{op}: fft_size={fft_size} < window_size={window_size}: the FFT "
                         f"size has to be at least the window size (nnabla's check)")
    if pad_mode not in ("constant", "reflect", "repeat"):
        raise ValueError(f"F.{op}: pad_mode={pad_mode!r} is not one of nnabla's 'constant', "
                         f"'reflect' and 'repeat'")
    if not isinstance(backward, (bool, numpy.bool_)):
        raise TypeError(f"F.{op}: {name} must be True or False, got {backward!r}")
    return window_type


def _window_values(window_type: str, window_size: int, fft_size: int):
    """nnabla's window (fft_size,) in float64: the window_size values centred, zeros round."""
    i = numpy.arange(window_size)
    values = {"hanning": 0.5 - 0.5 * numpy.cos(2 * numpy.pi * i / window_size),
              "hamming": 0.54 - 0.46 * numpy.cos(2 * numpy.pi * i / window_size),
              "rectangular": numpy.ones(window_size)}[window_type]
    left = (fft_size - window_size) // 2
    return numpy.pad(values, (left, fft_size - window_size - left))


def _nola(op, window_type, window_size, stride, fft_size, size, start, stop, why):
    """nnabla's NOLA check: the overlap-added squared window is >= 1e-11 on [start, stop)."""
    squared = _window_values(window_type, window_size, fft_size) ** 2
    overlap = numpy.zeros(size)
    for i in range(0, size - fft_size + 1, stride):
        overlap[i:i + fft_size] += squared
    zeros = [i for i in range(start, stop) if not overlap[i] >= 1e-11]
    if zeros:
        raise ValueError(
            f"F.{op}: the NOLA (nonzero overlap-add) condition is not met: the overlap-added "
            f"squared {window_type} window (window_size={window_size}, stride={stride}, "
            f"fft_size={fft_size}) is 0 at sample {zeros[0]}, and {why}; "
            f"use center=True, a smaller stride, or the 'hamming' window")


def _stft_window(window_type: str, window_size: int, fft_size: int) -> Variable:
    """nnabla's window as a constant (1, 1, fft_size) of the graph."""
    i = arange(0, window_size)
    if window_type == "rectangular":
        values = constant(1, (window_size,))
    else:
        a, b = (0.5, 0.5) if window_type == "hanning" else (0.54, 0.46)
        values = a - b * _elementwise("cos", i * (2 * math.pi / window_size))
    left = (fft_size - window_size) // 2
    if fft_size > window_size:
        values = pad(values, (left, fft_size - window_size - left))
    return reshape(values, (1, 1, fft_size))


def _dft_basis(fft_size: int, window: Variable, inverse: bool):
    """The windowed (inverse) DFT basis (bins, 1, fft_size), as a constant of the graph:
    window[t] * (cos, -sin)(2 pi w t / fft_size), each row times a_w (see istft) when
    `inverse`. The phase w t is reduced mod fft_size first (exact), so float32 keeps it."""
    bins = fft_size // 2 + 1
    w = reshape(arange(0, bins), (bins, 1, 1))
    t = reshape(arange(0, fft_size), (1, 1, fft_size))
    phase = _elementwise("mod2", w * t, constant(fft_size, (1, 1, 1))) * (2 * math.pi
                                                                           / fft_size)
    w_cos = _elementwise("cos", phase) * window
    w_sin = -_elementwise("sin", phase) * window
    if inverse:
        ends = 1 / fft_size
        alpha = constant(ends, (1, 1, 1)) if bins == 1 else pad(
            constant(2 / fft_size, (bins - 2, 1, 1)), (1, 1, 0, 0, 0, 0), constant_value=ends)
        w_cos, w_sin = w_cos * alpha, w_sin * alpha
    return w_cos, w_sin


def _elementwise(name: str, *inputs) -> Variable:
    """F.<name> of an elementwise op (made from the registry, `elementwise`)."""
    return FUNCTIONS[name](*inputs)


def _overlap_added(squared: Variable, frames: int, stride: int) -> Variable:
    """The squared window overlap-added over `frames` frames `stride` apart: (1, size)."""
    fft_size = squared.shape[-1]
    added = deconvolution(constant(1, (1, 1, frames)), reshape(squared, (1, 1, fft_size)),
                          stride=(stride,))
    return reshape(added, (1, added.shape[-1]))


def _padding_backward(op: str, g: Variable, width: int, mode: str) -> Variable:
    """The backward of pad(x, (width, width), mode) for x (B, L): each padded sample's g
    added into the sample it copies."""
    length = g.shape[1] - 2 * width
    inside = g[:, width:width + length]
    if width == 0 or mode == "constant":
        return inside
    if mode == "repeat":
        first = sum(g[:, :width], axis=1, keepdims=True)
        last = sum(g[:, width + length:], axis=1, keepdims=True)
        return inside + pad(first, (0, length - 1)) + pad(last, (length - 1, 0))
    if width >= length:
        raise ValueError(f"F.{op}: reflect padding of {width} samples at each end of "
                         f"{length} samples reflects more than once; as_stft_backward=True "
                         f"takes fft_size // 2 < the signal's length")
    before, after = flip(g[:, :width], axes=[1]), flip(g[:, width + length:], axes=[1])
    return inside + pad(before, (1, length - 1 - width)) + pad(after, (length - 1 - width, 1))
