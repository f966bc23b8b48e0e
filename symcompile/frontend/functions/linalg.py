"""Batched linear algebra: batch_inv, batch_det, batch_logdet, batch_cholesky.
"""

from __future__ import annotations

import numpy

from symcompile.frontend.functions._base import _record

__all__ = ["batch_inv", "batch_det", "batch_logdet", "batch_cholesky"]

def batch_inv(x, n_outputs=-1, outputs=None):
    """The inverse of each matrix of x (B, N, N); gradient -inv(x)^T dy inv(x)^T."""
    return _record("batch_inv", (x,))


def batch_det(x, n_outputs=-1, outputs=None):
    """The determinant of each matrix of x (B, N, N), shape (B,); gradient
    dy det(x) inv(x)^T."""
    return _record("batch_det", (x,))


def batch_logdet(x, n_outputs=-1, outputs=None):
    """log |det| of each matrix of x (B, N, N) (nnabla's: of the absolute value), shape
    (B,); gradient dy inv(x)^T."""
    return _record("batch_logdet", (x,))


def batch_cholesky(x, upper=False, n_outputs=-1, outputs=None):
    """The Cholesky factor of each symmetric positive definite matrix of x (B, N, N):
    lower L (read from x's lower triangle; not checked, as in nnabla), or with upper its
    transpose. The gradient is nnabla's symmetric matrix (Murray, arXiv:1602.07527)."""
    if not isinstance(upper, (bool, numpy.bool_)):
        raise TypeError(f"F.batch_cholesky: upper must be True (an upper triangular factor) "
                        f"or False (lower, the default), got {upper!r}")
    return _record("batch_cholesky", (x,), upper=bool(upper))
