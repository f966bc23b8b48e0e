"""The discrete Fourier transform of F.fft and F.ifft: complex arrays held as real pairs
(..., N_1, ..., N_d, 2), x[..., 0] the real part and x[..., 1] the imaginary part,
transformed over the d = signal_ndim axes before the last by a kernel over the backend's
FFT (numpy.fft, the array API's fft extension):

    y[k] = scale * sum over n of x[n] * exp(-+2 pi j sum_i k_i n_i / N_i)

(the sign - for the forward transform, + for the inverse, no 1/N of its own: the scale
says it). As a map of real pairs it is linear, and its transpose is the transform of the
other sign with the same scale (the DFT matrix is symmetric, its adjoint its conjugate),
so the VJP is one `Dft` again: it differentiates any number of times. nnabla's fft
backward is ifft * N (ifft when normalized), and its ifft backward fft / N: the same.
"""

from __future__ import annotations

import sympy

from symcompile.ir.primitives import KernelBase, exact


class Dft(KernelBase):
    """The d-D DFT (``inverse`` 0) or unnormalised inverse DFT (``inverse`` 1) of the
    complex pairs x (..., N_1, ..., N_d, 2), times ``scale``; args (x, signal_ndim,
    inverse, scale)."""

    nargs = 4
    linear = True
    kernel = "complex_dft"
    options = ("signal_ndim", "inverse", "scale")

    def shape(self, shapes):
        return shapes.of(self.args[0])

    def vjp(self, index, g, shapes):
        x, signal_ndim, inverse, scale = self.args
        g = exact(g, self.shape(shapes), shapes)
        return Dft(g, signal_ndim, sympy.Integer(1 - int(inverse)), scale)


__all__ = ["Dft"]
