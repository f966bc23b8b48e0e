"""Elementwise functions SymPy lacks, as `sympy.Function`s with their own derivatives.

Each class's `fdiff` gives the derivative `sympy.diff` uses, written with other
functions of this module where that keeps the generated code short and stable (the
derivative of softplus is a sigmoid, that of a sigmoid reuses the sigmoid). The printer
has a `_print_<Name>` for each: numerically stable NumPy (sigmoid through tanh,
softplus through logaddexp) and `numpy.where` for the piecewise ones, whose conventions
at the kink follow nnabla.
"""

from __future__ import annotations

import sympy


class _Elementwise(sympy.Function):
    def _eval_is_real(self):
        return True


class _Derivative(_Elementwise):
    """A derivative function: symcompile never differentiates twice."""

    def fdiff(self, argindex=1):
        raise NotImplementedError(f"second derivatives ({type(self).__name__}) are not supported")


class _Mask(_Derivative):
    """A comparison: a boolean array (the printer multiplies it last, never negates it)."""

    boolean = True


class IsGreater(_Mask):
    """a > b."""

    nargs = 2


class IsLessEqual(_Mask):
    """a <= b."""

    nargs = 2


class Maximum(_Elementwise):
    """Elementwise max of two arrays; on a tie the gradient goes to the second, as in
    nnabla's maximum2."""

    nargs = 2

    def fdiff(self, argindex=1):
        a, b = self.args
        return IsGreater(a, b) if argindex == 1 else IsLessEqual(a, b)


class Minimum(_Elementwise):
    """Elementwise min of two arrays; on a tie the gradient goes to the second."""

    nargs = 2

    def fdiff(self, argindex=1):
        a, b = self.args
        return IsGreater(b, a) if argindex == 1 else IsLessEqual(b, a)


class Absolute(_Elementwise):
    """|x| whose derivative at 0 is `at_zero` (+1 for nnabla's abs, -1 for the first
    input of absolute_error). Args: (x, at_zero)."""

    nargs = 2

    def fdiff(self, argindex=1):
        return Sign(*self.args)


class Sign(_Derivative):
    """-1 for x < 0, +1 for x > 0, `at_zero` at 0. Args: (x, at_zero)."""

    nargs = 2


class Sigmoid(_Elementwise):
    """1 / (1 + exp(-x))."""

    nargs = 1

    def fdiff(self, argindex=1):
        return self * (1 - self)


class Softplus(_Elementwise):
    """log(1 + exp(x)), computed without overflow."""

    nargs = 1

    def fdiff(self, argindex=1):
        return Sigmoid(self.args[0])


class LeakyRelu(_Elementwise):
    """x where x > 0, else alpha*x. Args: (x, alpha)."""

    nargs = 2

    def fdiff(self, argindex=1):
        x, alpha = self.args
        if argindex != 1:
            return sympy.Integer(0)
        return LeakyReluGrad(x, alpha)


class LeakyReluGrad(_Derivative):
    """1 where x > 0, else alpha."""

    nargs = 2


class Elu(_Elementwise):
    """x where x >= 0, else alpha*(exp(x) - 1). Args: (x, alpha)."""

    nargs = 2

    def fdiff(self, argindex=1):
        x, alpha = self.args
        if argindex != 1:
            return sympy.Integer(0)
        return EluGrad(x, alpha)


class EluGrad(_Derivative):
    """1 where x >= 0, else alpha*exp(x)."""

    nargs = 2


class Huber(_Elementwise):
    """nnabla's huber loss of a difference d: d**2 where |d| < delta, else
    delta*(2*|d| - delta). Args: (d, delta)."""

    nargs = 2

    def fdiff(self, argindex=1):
        d, delta = self.args
        if argindex != 1:
            return sympy.Integer(0)
        return 2 * Clip(d, -delta, delta)


class Clip(_Derivative):
    """x limited to [low, high] (the derivative of the huber loss). Args: (x, low, high)."""

    nargs = 3


class Truncate(_Derivative):
    """x rounded towards zero (nnabla reads some targets as integers)."""

    nargs = 1
