"""Primitives of F.inq_affine and F.inq_convolution (Incremental Network Quantization),
as nnabla 1.39's inq_affine.cpp and inq_convolution.cpp compute them.

Every forward pass of nnabla's function, with w the weight (after the weights fixed
before got their previous values back), I the indicators read as ints (truncated: 0
learnable, 1 fixed, anything else neither) and t the number of forward passes before:

- `InqFixed` / `InqFixedRandom`: the indicators after this pass. When t is one of
  `inq_iterations`: all 1 at its last entry; else count(I == 0) // 2 more learnable
  weights become 1, those of largest |w| in the order of nnabla's std::sort (at least
  one slot: with fewer than two learnable weights, the weight of largest |w| is fixed
  if it is learnable), or (random) each learnable one with probability 1/2.
- `InqQuantized`: w with each fixed weight rounded to a power of two: with m = max |w|
  over all weights, n1 = floor(log2 m) + (frac(log2 m) >= log2 1.5), n2 = n1 + 1 -
  2^(num_bits - 2); 0 below 2^(n2 - 1), else sign(w) * 2^e, e = floor(log2 |w|) +
  (frac(log2 |w|) >= log2 1.5) limited to [n2, n1], in w's precision as nnabla's float.

Both are piecewise constant: lowering wraps them in StopGradient and passes the
layer's gradient straight through to the weight, as nnabla's backward does.
"""

from __future__ import annotations

from symcompile.ir.primitives import KernelBase


class InqFixed(KernelBase):
    """The indicators after a forward pass with selection_algorithm='largest_abs'; args
    (w, indicators, count, inq_iterations): w the weights the selection reads, count
    (1,) the forward passes before this one."""

    nargs = 4
    tensor_args = (0, 1, 2)
    kernel = "inq_fix_largest"
    options = ("iterations",)

    def shape(self, shapes):
        return shapes.of(self.args[1])


class InqFixedRandom(KernelBase):
    """The indicators after a forward pass with selection_algorithm='random'; args
    (indicators, count, draw, inq_iterations): draw, of the indicators' shape, 1 with
    probability 1/2 (the learnable weights it is 1 at become fixed)."""

    nargs = 4
    tensor_args = (0, 1, 2)
    kernel = "inq_fix_random"
    options = ("iterations",)

    def shape(self, shapes):
        return shapes.of(self.args[0])


class InqQuantized(KernelBase):
    """w with the weights whose indicator is 1 rounded to powers of two (see the module);
    args (w, indicators, num_bits)."""

    nargs = 3
    tensor_args = (0, 1)
    kernel = "inq_pow2"
    options = ("num_bits",)

    def shape(self, shapes):
        return shapes.of(self.args[0])


__all__ = ["InqFixed", "InqFixedRandom", "InqQuantized"]
