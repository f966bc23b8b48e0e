"""Elementwise functions SymPy lacks, as `sympy.Function`s with their own derivatives.

Each class's `fdiff` gives the derivative `sympy.diff` uses, written with other
functions of this module where that keeps the generated code short and stable (the
derivative of softplus is a sigmoid, that of a sigmoid reuses the sigmoid). The printer
has a `_print_<Name>` for each: numerically stable NumPy (sigmoid as 1/(1 + exp(-x))
with the exponent bounded, softplus through logaddexp) and `numpy.where` for the
piecewise ones, whose conventions at the kink follow nnabla. `log` rewrites the log of a
sigmoid into a softplus, which stays finite where the sigmoid underflows.
"""

from __future__ import annotations

import sympy

# --- SymPy's tanh, sin and cos, safe under distribute(False) -----------------------------
# SymPy's odd and even functions move a minus sign out of their argument: tanh(-u) is
# -tanh(u), cos(-u) is cos(u). The compiler works under distribute(False) (so that
# y - (a*x + b) keeps its shared a*x + b), where -(x + y) stays Mul(-1, x + y); for an
# argument like -x - y both u and -u then "could extract a minus sign" and SymPy flips
# between them until the recursion limit. These subclasses flip such a sum by negating
# its terms, which ends the flipping. They keep SymPy's class names, which the printers
# dispatch on.

# SymPy's own `eval` of these functions also looks for multiples of pi and of the
# imaginary unit in the argument and asks the assumption system about it, about 6 ms a
# call on a fused argument; arrays here are real and hold no pi, so only numbers and the
# minus sign are looked at.

def _extracts_minus(arg: sympy.Expr) -> bool:
    """SymPy's `could_extract_minus_sign`, decided the same way without building the
    negated expression: its Mul compares the product with its negation (a new product)
    and a sum asks that of every term, so a tanh of a fused sum cost milliseconds."""
    if arg.is_Number:
        return bool(arg.is_extended_negative)
    if arg.is_Mul:
        first = arg.args[0]
        return bool(first.is_Number and first.is_extended_negative)
    if arg.is_Add:
        negative = sum(1 for term in arg.args if _extracts_minus(term))
        positive = len(arg.args) - negative
        if positive != negative:
            return negative > positive
        return bool(arg.sort_key() < (-arg).sort_key())  # SymPy's tie-break
    return arg.could_extract_minus_sign()


def _symmetric_eval(cls, base, arg: sympy.Expr, odd: bool) -> sympy.Expr | None:
    """f(arg) with the minus sign taken out of arg (f(-u) = -f(u) when f is odd, f(u) when
    even); SymPy's value for a number; None when it stays as it is.

    A sum has its terms negated one by one (see above); anything else is negated whole."""
    if arg.is_Number:
        return base.eval.__func__(cls, arg)
    if not _extracts_minus(arg):
        return None
    flipped = sympy.Add(*(-term for term in arg.args)) if arg.is_Add else -arg
    return -cls(flipped) if odd else cls(flipped)


class tanh(sympy.tanh):  # noqa: N801 - the printers know it by this name
    @classmethod
    def eval(cls, arg):
        return _symmetric_eval(cls, sympy.tanh, arg, odd=True)

    def fdiff(self, argindex=1):
        return 1 - tanh(self.args[0]) ** 2

    # SymPy's tanh answers "is it real / finite?" by splitting its argument into real and
    # imaginary parts, which for tanh(tanh(...)) splits every level again: asked of a
    # chain of 8, the questions took seconds. Real arguments give a real, finite tanh
    # (as SymPy's sin and cos answer); anything else is left unknown.
    def _eval_is_real(self):
        return True if self.args[0].is_real else None

    def _eval_is_finite(self):
        return True if self.args[0].is_extended_real else None


class sin(sympy.sin):  # noqa: N801
    @classmethod
    def eval(cls, arg):
        return _symmetric_eval(cls, sympy.sin, arg, odd=True)

    def fdiff(self, argindex=1):
        return cos(self.args[0])


class cos(sympy.cos):  # noqa: N801
    @classmethod
    def eval(cls, arg):
        return _symmetric_eval(cls, sympy.cos, arg, odd=False)

    def fdiff(self, argindex=1):
        return -sin(self.args[0])


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

    @classmethod
    def eval(cls, a, b):
        return sympy.Max(a, b) if a.is_Number and b.is_Number else None

    def fdiff(self, argindex=1):
        a, b = self.args
        return IsGreater(a, b) if argindex == 1 else IsLessEqual(a, b)


class Minimum(_Elementwise):
    """Elementwise min of two arrays; on a tie the gradient goes to the second."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        return sympy.Min(a, b) if a.is_Number and b.is_Number else None

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


def log(arg: sympy.Expr) -> sympy.Expr:
    """log(arg), with the logs of a sigmoid written as softpluses:
    log(Sigmoid(u)) = -Softplus(-u) and log(1 - Sigmoid(u)) = -Softplus(u).

    A sigmoid leaves float32's normal range below u = -87.3 (and is at most 3e-39 below
    -88.7, see the printer) where its log is a moderate number, about u: the log of the
    sigmoid and the log's derivative Sigmoid(u)*(1 - Sigmoid(u))/Sigmoid(u) lose their
    digits there (and are -inf and NaN where the sigmoid is 0). The softplus is accurate
    for every u and differentiates to a sigmoid. F.log and the formula of
    F.binary_cross_entropy both take their logs here, so the rewrite applies wherever a
    sigmoid is fused into the expression of the log (not to a sigmoid that has an array of
    its own: a value with several consumers or a graph output).

    `1 - Sigmoid(u)` is matched as a sum of exactly the terms 1 and -Sigmoid(u), as
    SymPy keeps it under the compiler's distribute(False); nothing is expanded.
    """
    if isinstance(arg, Sigmoid):
        return -Softplus(-arg.args[0])
    terms = sympy.Add.make_args(arg)
    if len(terms) == 2:
        one, other = terms if terms[0] == 1 else terms[::-1]
        coeff, rest = other.as_coeff_Mul()
        if one == 1 and coeff == -1 and isinstance(rest, Sigmoid):
            return -Softplus(rest.args[0])
    return sympy.log(arg)


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
