"""Primitives of batched linear algebra (F.batch_inv, batch_det, batch_logdet,
batch_cholesky): matrices (B, N, N) computed by kernels over the backend's linalg.

The VJPs of the inverse, the determinant and the log absolute determinant are written
with these primitives and matrix products, so they differentiate again:

- inv:    dA = -inv(A)^T G inv(A)^T
- det:    dA = g * det(A) * inv(A)^T  (g (B,) per matrix)
- logdet: dA = g * inv(A)^T           (log |det A|, nnabla's)

The Cholesky factor's VJP is a kernel of its own (`CholeskyGrad`, nnabla's formula from
Murray, arXiv:1602.07527): with L = cholesky(A) lower and its cotangent G,
P = phi(L^T G) (the lower triangle, its diagonal halved), S = L^-T P L^-1, and
dA = (S + S^T) / 2, a symmetric matrix. It has no VJP of its own (no second derivative).
"""

from __future__ import annotations

from symcompile.ir.primitives import KernelBase, exact, matmul, reshape, swap_last


class BatchInv(KernelBase):
    """inv(x[b]) of each matrix of x (B, N, N); args (x,)."""

    nargs = 1
    kernel = "linalg_inv"

    def shape(self, shapes):
        return shapes.of(self.args[0])

    def vjp(self, index, g, shapes):
        g = exact(g, self.shape(shapes), shapes)
        inverse_t = swap_last(self, shapes)
        return -matmul(inverse_t, matmul(g, inverse_t, shapes), shapes)


class _Scalar(KernelBase):
    """One number per matrix of x (B, N, N): an output of shape (B,)."""

    nargs = 1

    def shape(self, shapes):
        return shapes.of(self.args[0])[:1]

    def per_matrix(self, g, shapes):
        """g (B,) as (B, N, N), each matrix's number repeated."""
        shape = shapes.of(self.args[0])
        g = exact(g, shape[:1], shapes)
        return exact(reshape(g, (shape[0], 1, 1), shapes), shape, shapes)


class BatchDet(_Scalar):
    """det(x[b]) of each matrix of x (B, N, N), shape (B,); args (x,)."""

    kernel = "linalg_det"

    def vjp(self, index, g, shapes):
        x = self.args[0]
        return (self.per_matrix(g, shapes) * self.per_matrix(self, shapes)
                * swap_last(BatchInv(x), shapes))


class BatchLogdet(_Scalar):
    """log |det(x[b])| of each matrix of x (B, N, N), shape (B,); args (x,)."""

    kernel = "linalg_logdet"

    def vjp(self, index, g, shapes):
        return self.per_matrix(g, shapes) * swap_last(BatchInv(self.args[0]), shapes)


class BatchCholesky(KernelBase):
    """The lower Cholesky factor L of each matrix of x (B, N, N) (read from its lower
    triangle, not checked to be symmetric positive definite); args (x,)."""

    nargs = 1
    kernel = "linalg_cholesky"

    def shape(self, shapes):
        return shapes.of(self.args[0])

    def vjp(self, index, g, shapes):
        return CholeskyGrad(self, exact(g, self.shape(shapes), shapes))


class CholeskyGrad(KernelBase):
    """The VJP of `BatchCholesky`: the symmetric (S + S^T) / 2, S = L^-T phi(L^T g) L^-1
    (see the module); args (L, g)."""

    nargs = 2
    tensor_args = (0, 1)
    kernel = "linalg_cholesky_grad"
    linear_in = (1,)

    def shape(self, shapes):
        return shapes.of(self.args[0])


__all__ = ["BatchCholesky", "BatchDet", "BatchInv", "BatchLogdet", "CholeskyGrad"]
