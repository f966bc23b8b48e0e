"""Losses and metrics with logic of their own: softmax_cross_entropy,
categorical_cross_entropy, kl_multinomial, top_n_error, binary_error, confusion_matrix.
"""

from __future__ import annotations

import numbers

from symcompile.frontend.functions._base import _base_axis, _one_axis, _record
from symcompile.frontend.variable import Variable

__all__ = [
    "softmax_cross_entropy", "top_n_error", "binary_error", "kl_multinomial",
    "categorical_cross_entropy", "confusion_matrix",
]

# --- softmax and its loss ----------------------------------------------------------------

def softmax_cross_entropy(x, target, axis=None, n_outputs=-1, outputs=None):
    """-log softmax(x)[target] along `axis` (default: the last); label -1 gives 0.

    `target` holds integer labels with the shape of `x` but length 1 along `axis`.
    """
    axis = _one_axis("softmax_cross_entropy", x, axis)
    return _record("softmax_cross_entropy", (x, target), axis=axis)


def top_n_error(x, target, axis=None, n=1, n_outputs=-1, outputs=None):
    """1 where the label's score is not among the n highest along `axis` (default: the
    last), ties counting against it; 0 for label -1 (nnabla 1.39 reads the element before
    the row for it). The output has the target's shape (length 1 along `axis`); no
    gradient."""
    axis = _one_axis("top_n_error", x, axis)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"F.top_n_error: n must be a positive int, got {n!r}")
    return _record("top_n_error", (x, target), axis=axis, n=int(n))


def binary_error(x, target, n_outputs=-1, outputs=None):
    """1 where x and the target fall on different sides of 0.5, else 0; no gradient."""
    return _record("binary_error", (x, target))


def kl_multinomial(p, q, base_axis=1, n_outputs=-1, outputs=None):
    """The KL divergence of the multinomials p and q (probabilities over the axes from
    `base_axis` on), sum of p*(log(p + 1e-8) - log(q + 1e-8)), of shape
    p.shape[:base_axis] + (1,); its gradients are nnabla's (see ops.sympy_functions.KLTerm).
    base_axis 0 is refused (nnabla 1.39 reads outside the arrays)."""
    if not (isinstance(p, Variable) and isinstance(q, Variable)):
        return _record("kl_multinomial", (p, q))  # raises the TypeError
    if not p.shape:
        raise ValueError("F.kl_multinomial: p of shape () has no axis to sum over; reshape "
                         "it to (1,)")
    base = _base_axis("kl_multinomial", p, base_axis)
    if base == 0:
        raise ValueError(f"F.kl_multinomial: base_axis {base_axis} sums over every axis of p "
                         f"of shape {p.shape}, which nnabla 1.39 computes wrongly; add a "
                         f"batch axis of 1 (F.reshape(p, (1,) + p.shape)) and use base_axis=1")
    return _record("kl_multinomial", (p, q), base_axis=base)


def categorical_cross_entropy(x, target, axis=None, n_outputs=-1, outputs=None):
    """-log(x[target]) along `axis` (default: the last), x holding probabilities: nnabla
    clamps x[target] at float32's smallest normal number (1.18e-38), in the log and in the
    gradient -dy/x[target]; label -1 gives 0. The output has the target's shape (length 1
    along `axis`); the target gets no gradient (nnabla raises if asked for one)."""
    axis = _one_axis("categorical_cross_entropy", x, axis)
    return _record("categorical_cross_entropy", (x, target), axis=axis)


def confusion_matrix(x, target, axis=None, n_outputs=-1, outputs=None):
    """counts[label, predicted] (classes, classes), summed over every row along `axis`
    (default: the last): the prediction is the first largest score of x, the label the
    target's (length 1 along `axis`). A row labelled -1 counts nowhere (nnabla 1.39 writes
    it outside its output). nnabla's output is int32; here it holds the counts as numbers
    of the module's dtype. No gradient."""
    axis = _one_axis("confusion_matrix", x, axis)
    return _record("confusion_matrix", (x, target), axis=axis)
