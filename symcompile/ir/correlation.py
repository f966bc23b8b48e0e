"""Primitives of F.patch_correlation: products of x1 with x2 shifted, summed over channels.

With offsets (dy, dx) from `ys` x `xs`, and x2 read as 0 outside its bounds:

- ShiftedProducts(x1, x2)[n, i, j, y, x] = sum_c x1[n, c, y, x] * x2[n, c, y + ys[i], x + xs[j]]
- ShiftedGather(g, x)[n, c, y, x]  = sum_ij g[n, i, j, y, x] * x[n, c, y + ys[i], x + xs[j]]
- ShiftedScatter(g, x)[n, c, y, x] = sum_ij g[n, i, j, y - ys[i], x - xs[j]]
                                                * x[n, c, y - ys[i], x - xs[j]]

All three are bilinear and each one's VJPs are the others (ShiftedProducts' to x1 is a
ShiftedGather, to x2 a ShiftedScatter; and so on), so derivatives of any order stay in the
family. The patch sums over each window are a sum pooling of ShiftedProducts (ops/).
"""

from __future__ import annotations

from symcompile.ir.primitives import KernelBase, as_ints, exact


class _Shifted(KernelBase):
    """Args (a, b, ys, xs): two arrays and the offsets."""

    nargs = 4
    tensor_args = (0, 1)
    linear = True  # in each of a and b
    options = ("ys", "xs")

    @property
    def offsets(self):
        return self.args[2:]

    def _cotangent(self, g, shapes):
        return exact(g, self.shape(shapes), shapes)


class ShiftedProducts(_Shifted):
    """(N, len(ys), len(xs), H, W) from x1 and x2 (N, C, H, W); args (x1, x2, ys, xs)."""

    kernel = "shifted_products"

    def shape(self, shapes):
        n, _, h, w = shapes.of(self.args[0])
        ys, xs = (as_ints(o) for o in self.offsets)
        return (n, len(ys), len(xs), h, w)

    def vjp(self, index, g, shapes):
        g = self._cotangent(g, shapes)
        x1, x2 = self.args[:2]
        if index == 0:
            return ShiftedGather(g, x2, *self.offsets)
        return ShiftedScatter(g, x1, *self.offsets)


class ShiftedGather(_Shifted):
    """(N, C, H, W) from g (N, len(ys), len(xs), H, W) and x (N, C, H, W); args (g, x, ys,
    xs)."""

    kernel = "shifted_gather"

    def shape(self, shapes):
        return shapes.of(self.args[1])

    def vjp(self, index, h, shapes):
        h = self._cotangent(h, shapes)
        g, x = self.args[:2]
        if index == 0:
            return ShiftedProducts(h, x, *self.offsets)
        return ShiftedScatter(g, h, *self.offsets)


class ShiftedScatter(_Shifted):
    """(N, C, H, W) from g (N, len(ys), len(xs), H, W) and x (N, C, H, W); args (g, x, ys,
    xs)."""

    kernel = "shifted_scatter"

    def shape(self, shapes):
        return shapes.of(self.args[1])

    def vjp(self, index, h, shapes):
        h = self._cotangent(h, shapes)
        g, x = self.args[:2]
        if index == 0:
            return ShiftedProducts(x, h, *self.offsets)
        return ShiftedGather(g, h, *self.offsets)


__all__ = ["ShiftedGather", "ShiftedProducts", "ShiftedScatter"]
