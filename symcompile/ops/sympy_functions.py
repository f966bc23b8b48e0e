"""SymPy functions for the elementwise ops: SymPy's own, made safe for the compiler, and
those SymPy lacks, with their own derivatives.

`sympy_function("atan")` is SymPy's atan as the compiler uses it (see there): the ops
SymPy has need nothing else, since SymPy's printers and derivatives serve them.

For the others, each class's `fdiff` gives the derivative `sympy.diff` uses, written with
other functions of this module where that keeps the generated code short and stable (the
derivative of softplus is a sigmoid, that of a sigmoid reuses the sigmoid). The printer
has a `_print_<Name>` for each: numerically stable NumPy (sigmoid as 1/(1 + exp(-x))
with the exponent bounded, softplus through logaddexp) and `numpy.where` for the
piecewise ones, whose conventions at the kink follow nnabla. `log` rewrites the log of a
sigmoid into a softplus, which stays finite where the sigmoid underflows.
"""

from __future__ import annotations

import functools
import math

import sympy
from sympy.core.parameters import distribute

# --- SymPy's functions, safe under distribute(False) ------------------------------------
# SymPy's odd and even functions move a minus sign out of their argument: tanh(-u) is
# -tanh(u), cos(-u) is cos(u). The compiler works under distribute(False) (so that
# y - (a*x + b) keeps its shared a*x + b), where -(x + y) stays Mul(-1, x + y); for an
# argument like -x - y both u and -u then "could extract a minus sign" and SymPy flips
# between them until the recursion limit. `sympy_function`'s subclasses flip such a sum
# by negating its terms, which ends the flipping. They keep SymPy's class names, which
# the printers dispatch on.

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


@functools.cache
def sympy_function(name: str) -> type[sympy.Function]:
    """SymPy's elementwise function `name` ("atan", "tanh", ...) as the compiler uses it.

    A subclass of SymPy's class, with its name, which SymPy's printers dispatch on
    (``numpy.arctan``, ``atan``, ``\\operatorname{atan}``), and SymPy's derivative. What
    it changes is what SymPy rewrites when the function is built:

    * of numbers, SymPy's value where it is real (atan(1) is pi/4); elsewhere (acosh(0),
      atan2(0, 0)) the call stays and NumPy computes it, as nnabla does;
    * a minus sign comes out of the argument where SymPy takes it out (-f(u) for an odd
      function, f(u) for an even one), a sum flipped by negating its terms (see above);
    * nothing else: no search for multiples of pi, and no cancelling of inverses, so
      sin(asin(x)) stays, NaN for |x| > 1 as in nnabla.

    SymPy's functions in the derivative (the cosh of sinh') are `sympy_function`s too,
    and questions to the assumption system get quick answers (see `_assumptions`).
    """
    base = getattr(sympy, name, None)
    if not (isinstance(base, type) and issubclass(base, sympy.Function)):
        raise TypeError(f"sympy_function: sympy.{name} is not a SymPy function class; "
                        "name one of SymPy's (sympy.atan is 'atan')")
    namespace = {"__module__": __name__, "__qualname__": name,
                 "__doc__": f"SymPy's {name}, safe for the compiler (see sympy_function).",
                 "_base": base, "_parity": _parity(base),
                 "eval": classmethod(_safe_eval), "fdiff": _safe_fdiff,
                 **_assumptions(base)}
    return type(base)(name, (base,), namespace)


def _parity(base: type[sympy.Function]) -> int:
    """-1 where SymPy writes f(-u) as -f(u), +1 where as f(u), else 0 (asked once, of a
    plain symbol: the minus sign comes out exactly where SymPy takes it out)."""
    if base.nargs != sympy.FiniteSet(1):
        return 0
    u = sympy.Dummy("u")
    with distribute(True):
        value = base(-u)
        return -1 if value == -base(u) else 1 if value == base(u) else 0


def _safe_eval(cls, *args):
    """`sympy_function`'s rewriting: SymPy's real values of numbers, the minus sign."""
    if all(arg.is_Number for arg in args):
        value = cls._base.eval.__func__(cls, *args)
        return value if value is not None and value.is_extended_real else None
    arg = args[0]
    if not cls._parity or not _extracts_minus(arg):
        return None
    flipped = sympy.Add(*(-term for term in arg.args)) if arg.is_Add else -arg
    return -cls(flipped) if cls._parity < 0 else cls(flipped)


def _safe_fdiff(self, argindex=1):
    dummies, derivative = _derivative_template(type(self), len(self.args), argindex)
    return derivative.xreplace(dict(zip(dummies, self.args, strict=True)))


@functools.cache
def _derivative_template(cls, count: int, argindex: int):
    """SymPy's derivative of `cls` as (placeholder arguments, formula in them), with
    SymPy's functions in it replaced by their `sympy_function`.

    Built once on placeholders: SymPy's fdiff called on the real arguments would build
    its own functions of them (sinh' = cosh(arg)), which may flip forever."""
    dummies = tuple(sympy.Dummy(f"u{i}") for i in range(count))
    with distribute(True):
        derivative = cls._base.fdiff(cls(*dummies), argindex)
    safe = derivative.replace(
        lambda e: (isinstance(e, sympy.Function)
                   and getattr(sympy, type(e).__name__, None) is type(e)),
        lambda e: sympy_function(type(e).__name__)(*e.args))
    return dummies, safe


# The facts `_assumptions` answers quickly; other questions get SymPy's answers.
_FACTS = ("real", "extended_real", "finite", "positive", "nonnegative", "negative",
          "nonpositive", "zero")


def _assumptions(base: type[sympy.Function]) -> dict:
    """Quick answers to "is it real / finite / positive?", where SymPy's are slow.

    SymPy's tanh, sinh and cosh answer by splitting an argument not known to be real
    into real and imaginary parts, and for tanh(tanh(...)) every level splits again:
    asked of a chain of 8 tanh, the questions took 8 seconds. Each fact that SymPy
    decides for the function of real arguments (cosh of a real is positive), the class
    answers the same way when its arguments are real, and leaves unknown otherwise.
    """
    probe = base(*(sympy.Dummy(real=True) for _ in range(min(base.nargs))))
    answers = {}
    for fact in _FACTS:
        value = getattr(probe, f"is_{fact}")
        if value is not None:
            answers[f"_eval_is_{fact}"] = _when_arguments_are_real(value)
    return answers


def _when_arguments_are_real(value: bool):
    def answer(self):
        return value if all(arg.is_real for arg in self.args) else None

    return answer


# --- functions SymPy lacks -----------------------------------------------------------------

def _numbers(*args: sympy.Expr) -> bool:
    """Whether every argument is a real number SymPy can order (not NaN): then a function
    of this module evaluates to its value, so no generated code calls it on Python
    numbers (which the array API standard's functions do not take)."""
    return all(arg.is_comparable for arg in args)


class _Elementwise(sympy.Function):
    def _eval_is_real(self):
        return True


class _Derivative(_Elementwise):
    """A derivative function; differentiated again (nn.grad) by its own `fdiff`, which a
    subclass without one refuses."""

    def fdiff(self, argindex=1):
        raise NotImplementedError(f"second derivatives ({type(self).__name__}) are not supported")


class _PiecewiseConstant(_Derivative):
    """A derivative that is constant between its jumps (a mask, a sign): its own
    derivative is 0 wherever it has one, as nnabla's double backward takes it."""

    def fdiff(self, argindex=1):
        return sympy.Integer(0)


class _Mask(_PiecewiseConstant):
    """A comparison: a boolean array (the printer multiplies it last, never negates it)."""

    boolean = True


class IsGreater(_Mask):
    """a > b."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        return sympy.Integer(bool(a > b)) if _numbers(a, b) else None


class IsLessEqual(_Mask):
    """a <= b."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        return sympy.Integer(bool(a <= b)) if _numbers(a, b) else None


class Maximum(_Elementwise):
    """Elementwise max of two arrays; on a tie the gradient goes to the second, as in
    nnabla's maximum2."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        return sympy.Max(a, b) if _numbers(a, b) else None

    def fdiff(self, argindex=1):
        a, b = self.args
        return IsGreater(a, b) if argindex == 1 else IsLessEqual(a, b)


class Minimum(_Elementwise):
    """Elementwise min of two arrays; on a tie the gradient goes to the second."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        return sympy.Min(a, b) if _numbers(a, b) else None

    def fdiff(self, argindex=1):
        a, b = self.args
        return IsGreater(b, a) if argindex == 1 else IsLessEqual(b, a)


class Absolute(_Elementwise):
    """|x| whose derivative at 0 is `at_zero` (+1 for nnabla's abs, -1 for the first
    input of absolute_error). Args: (x, at_zero)."""

    nargs = 2

    @classmethod
    def eval(cls, x, at_zero):
        return sympy.Abs(x) if _numbers(x) else None

    def fdiff(self, argindex=1):
        return Sign(*self.args)


class Sign(_PiecewiseConstant):
    """-1 for x < 0, +1 for x > 0, `at_zero` at 0. Args: (x, at_zero)."""

    nargs = 2

    @classmethod
    def eval(cls, x, at_zero):
        if not _numbers(x):
            return None
        if x == 0:
            return sympy.Integer(1 if int(at_zero) > 0 else -1)
        return sympy.Integer(1 if x > 0 else -1)


class Sigmoid(_Elementwise):
    """1 / (1 + exp(-x))."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        return 1 / (1 + sympy.exp(-x)) if _numbers(x) else None

    def fdiff(self, argindex=1):
        return self * (1 - self)


class Softplus(_Elementwise):
    """log(1 + exp(x)), computed without overflow."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        return sympy.log(1 + sympy.exp(x)) if _numbers(x) else None

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

    @classmethod
    def eval(cls, x, alpha):
        return (x if x > 0 else alpha * x) if _numbers(x, alpha) else None

    def fdiff(self, argindex=1):
        x, alpha = self.args
        if argindex != 1:
            return sympy.Integer(0)
        return LeakyReluGrad(x, alpha)


class LeakyReluGrad(_Derivative):
    """1 where x > 0, else alpha."""

    nargs = 2

    @classmethod
    def eval(cls, x, alpha):
        return (sympy.Integer(1) if x > 0 else alpha) if _numbers(x, alpha) else None

    def fdiff(self, argindex=1):
        x, _ = self.args
        return sympy.Integer(0) if argindex == 1 else IsLessEqual(x, sympy.Integer(0))


class Elu(_Elementwise):
    """x where x >= 0, else alpha*(exp(x) - 1). Args: (x, alpha)."""

    nargs = 2

    @classmethod
    def eval(cls, x, alpha):
        if not _numbers(x, alpha):
            return None
        return x if x >= 0 else alpha * (sympy.exp(x) - 1)

    def fdiff(self, argindex=1):
        x, alpha = self.args
        if argindex != 1:
            return sympy.Integer(0)
        return EluGrad(x, alpha)


class EluGrad(_Derivative):
    """1 where x >= 0, else alpha*exp(x)."""

    nargs = 2

    @classmethod
    def eval(cls, x, alpha):
        if not _numbers(x, alpha):
            return None
        return sympy.Integer(1) if x >= 0 else alpha * sympy.exp(x)

    def fdiff(self, argindex=1):
        x, alpha = self.args
        below = IsGreater(sympy.Integer(0), x)  # x < 0, where the value is alpha*exp(x)
        return below * alpha * sympy.exp(x) if argindex == 1 else below * sympy.exp(x)


class Huber(_Elementwise):
    """nnabla's huber loss of a difference d: d**2 where |d| < delta, else
    delta*(2*|d| - delta). Args: (d, delta)."""

    nargs = 2

    @classmethod
    def eval(cls, d, delta):
        if not _numbers(d, delta):
            return None
        return d**2 if abs(d) < delta else delta * (2 * abs(d) - delta)

    def fdiff(self, argindex=1):
        d, delta = self.args
        if argindex != 1:
            return sympy.Integer(0)
        return 2 * Clip(d, -delta, delta)


class Clip(_Derivative):
    """x limited to [low, high] (the derivative of the huber loss). Args: (x, low, high)."""

    nargs = 3

    @classmethod
    def eval(cls, x, low, high):
        return sympy.Min(sympy.Max(x, low), high) if _numbers(x, low, high) else None

    def fdiff(self, argindex=1):
        x, low, high = self.args
        if argindex == 1:
            return IsGreater(x, low) * IsGreater(high, x)
        return IsLessEqual(x, low) if argindex == 2 else IsLessEqual(high, x)


class Truncate(_PiecewiseConstant):
    """x rounded towards zero (nnabla reads some targets as integers)."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if not _numbers(x):
            return None
        return sympy.floor(x) if x >= 0 else sympy.ceiling(x)


# --- nnabla's activations, rounding, comparisons and selections ---------------------------

class _StraightThrough(_Elementwise):
    """A piecewise-constant function whose gradient nnabla passes straight through (1)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sympy.Integer(1)


class Floor(_StraightThrough):
    """The largest integer <= x; nnabla's gradient is 1 (straight through)."""

    @classmethod
    def eval(cls, x):
        return sympy.floor(x) if _numbers(x) else None


class Ceil(_StraightThrough):
    """The smallest integer >= x; nnabla's gradient is 1 (straight through)."""

    @classmethod
    def eval(cls, x):
        return sympy.ceiling(x) if _numbers(x) else None


class Round(_StraightThrough):
    """x rounded to the nearest integer, halves away from zero (C's round, as nnabla; not
    NumPy's round, which rounds halves to even); nnabla's gradient is 1."""

    @classmethod
    def eval(cls, x):
        if not _numbers(x):
            return None
        whole = sympy.floor(abs(x) + sympy.Rational(1, 2))
        return whole if x >= 0 else -whole


class Signum(_Elementwise):
    """nnabla's sign: -1 for x < 0, +1 for x > 0, `alpha` at 0; its gradient is 1
    (straight through). Args: (x, alpha)."""

    nargs = 2

    @classmethod
    def eval(cls, x, alpha):
        if not _numbers(x):
            return None
        return alpha if x == 0 else sympy.Integer(1 if x > 0 else -1)

    def fdiff(self, argindex=1):
        return sympy.Integer(1 if argindex == 1 else 0)


class Binary(_Elementwise):
    """nnabla's binary_tanh (low = -1) and binary_sigmoid (low = 0): `high` (1) where
    x > 0, else `low`; the gradient is (high - low)/2 where |x| < 1, else 0 (straight
    through in the window). Args: (x, low, high)."""

    nargs = 3

    @classmethod
    def eval(cls, x, low, high):
        return (high if x > 0 else low) if _numbers(x) else None

    def fdiff(self, argindex=1):
        x, low, high = self.args
        if argindex != 1:
            return sympy.Integer(0)
        return (high - low) / 2 * InRange(x, sympy.Integer(-1), sympy.Integer(1),
                                          sympy.Integer(0))


class InRange(_PiecewiseConstant):
    """1 where low < x < high (or low <= x <= high if `closed`), else 0, as a number.
    Args: (x, low, high, closed)."""

    nargs = 4

    @classmethod
    def eval(cls, x, low, high, closed):
        if not _numbers(x, low, high):
            return None
        inside = low <= x <= high if bool(closed) else low < x < high
        return sympy.Integer(1 if inside else 0)


class SoftSign(_Elementwise):
    """x / (1 + |x|), whose derivative is written 1 / (1 + |x|)**2 (as nnabla computes
    it): SymPy's 1/(1 + |x|) - |x|/(1 + |x|)**2 cancels for large |x|."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        return x / (1 + sympy.Abs(x)) if _numbers(x) else None

    def fdiff(self, argindex=1):
        return 1 / (1 + Absolute(self.args[0], sympy.Integer(1))) ** 2

    def formula(self):
        """The value as an expression of SymPy's and ours, for the printers."""
        return self.args[0] / (1 + Absolute(self.args[0], sympy.Integer(1)))


class TanhShrink(_Elementwise):
    """x - tanh(x), whose derivative is written tanh(x)**2 (as nnabla computes it):
    SymPy's 1 - (1 - tanh(x)**2) is exactly 0 for |x| < 1.7e-4 in float32."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        return x - sympy.tanh(x) if _numbers(x) else None

    def fdiff(self, argindex=1):
        return sympy.tanh(self.args[0]) ** 2

    def formula(self):
        return self.args[0] - sympy.tanh(self.args[0])


class HardClip(_Elementwise):
    """x limited to [low, high], whose gradient is 1 on the closed interval (nnabla's
    hard_tanh and hard_sigmoid pass the gradient at the boundaries). Args: (x, low, high)."""

    nargs = 3

    @classmethod
    def eval(cls, x, low, high):
        return sympy.Min(sympy.Max(x, low), high) if _numbers(x, low, high) else None

    def fdiff(self, argindex=1):
        x, low, high = self.args
        if argindex != 1:
            return sympy.Integer(0)
        return InRange(x, low, high, sympy.Integer(1))


class Selu(_Elementwise):
    """scale*x where x > 0, else scale*alpha*(exp(x) - 1). Args: (x, scale, alpha)."""

    nargs = 3

    @classmethod
    def eval(cls, x, scale, alpha):
        if not _numbers(x, scale, alpha):
            return None
        return scale * x if x > 0 else scale * alpha * (sympy.exp(x) - 1)

    def fdiff(self, argindex=1):
        if argindex != 1:
            return sympy.Integer(0)
        return SeluGrad(*self.args)


class SeluGrad(_Derivative):
    """scale where x > 0, else scale*alpha*exp(x)."""

    nargs = 3

    @classmethod
    def eval(cls, x, scale, alpha):
        if not _numbers(x, scale, alpha):
            return None
        return scale if x > 0 else scale * alpha * sympy.exp(x)

    def fdiff(self, argindex=1):
        x, scale, alpha = self.args
        below = IsLessEqual(x, sympy.Integer(0))  # where the value is scale*alpha*exp(x)
        derivatives = {1: below * scale * alpha * sympy.exp(x),
                       2: IsGreater(x, sympy.Integer(0)) + below * alpha * sympy.exp(x),
                       3: below * scale * sympy.exp(x)}
        return derivatives[argindex]


class Sinc(_Elementwise):
    """sin(x)/x, 1 at 0 (nnabla's sinc: not NumPy's, which is of pi*x)."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if not _numbers(x):
            return None
        return sympy.Integer(1) if x == 0 else sympy.sin(x) / x

    def fdiff(self, argindex=1):
        return SincGrad(self.args[0])


class SincGrad(_Derivative):
    """(x cos(x) - sin(x))/x**2, 0 at 0."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if not _numbers(x):
            return None
        return sympy.Integer(0) if x == 0 else (x * sympy.cos(x) - sympy.sin(x)) / x**2

    def fdiff(self, argindex=1):
        return SincGrad2(self.args[0])


class SincGrad2(_Derivative):
    """sinc's second derivative, ((2 - x**2) sin(x) - 2x cos(x))/x**3, -1/3 at 0."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if not _numbers(x):
            return None
        if x == 0:
            return sympy.Rational(-1, 3)
        return ((2 - x**2) * sympy.sin(x) - 2 * x * sympy.cos(x)) / x**3


# The comparisons of nnabla's greater, equal, ... as (symbol, Python operator).
RELATIONS = {0: ">", 1: ">=", 2: "<", 3: "<=", 4: "==", 5: "!="}
_COMPARE = {">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}


class Compare(_Elementwise):
    """1.0 where `a op b` holds, else 0.0, a number (not a boolean mask), with no gradient
    (nnabla's comparisons have none: their backward raises). Args: (a, b, op), op a key
    of RELATIONS."""

    nargs = 3

    @classmethod
    def eval(cls, a, b, op):
        if not _numbers(a, b):
            return None
        return sympy.Integer(1 if _COMPARE[RELATIONS[int(op)]](a, b) else 0)

    def fdiff(self, argindex=1):
        return sympy.Integer(0)

    @property
    def symbol(self) -> str:
        return RELATIONS[int(self.args[2])]


class Classify(_Elementwise):
    """1.0 where x is NaN (kind 0) or infinite (kind 1), else 0.0, with no gradient.
    Args: (x, kind)."""

    nargs = 2

    @classmethod
    def eval(cls, x, kind):
        if x.is_Number:
            test = x is sympy.nan if int(kind) == 0 else x in (sympy.oo, -sympy.oo)
            return sympy.Integer(1 if test else 0)
        return None

    def fdiff(self, argindex=1):
        return sympy.Integer(0)

    @property
    def test(self) -> str:
        return "isnan" if int(self.args[1]) == 0 else "isinf"


class Reset(_Elementwise):
    """x with its NaNs (kind 0) or infinities (kind 1) replaced by val; the gradient is 1
    elsewhere and 0 there, as in nnabla. Args: (x, val, kind)."""

    nargs = 3

    @classmethod
    def eval(cls, x, val, kind):
        if not x.is_Number:
            return None
        return val if Classify(x, kind) == 1 else x

    def fdiff(self, argindex=1):
        x, val, kind = self.args
        return 1 - Classify(x, kind) if argindex == 1 else sympy.Integer(0)


class Select(_Elementwise):
    """nnabla's where: x_true where the condition is not 0, else x_false; no gradient to
    the condition. Args: (condition, x_true, x_false)."""

    nargs = 3

    @classmethod
    def eval(cls, condition, x_true, x_false):
        if not _numbers(condition):
            return None
        return x_true if condition != 0 else x_false

    def fdiff(self, argindex=1):
        condition = self.args[0]
        if argindex == 1:
            return sympy.Integer(0)
        code = 5 if argindex == 2 else 4  # != 0 for x_true, == 0 for x_false
        return Compare(condition, sympy.Integer(0), sympy.Integer(code))


class Fmod(_Elementwise):
    """nnabla's mod2 of floats: C's fmod(x0, x1), x0 - x1*trunc(x0/x1) with the sign of
    x0 (whatever `fmod` says: nnabla 1.39 reads it for integer arrays only), NaN where
    x1 is 0. nnabla's backward raises (not implemented); here it is the derivative of
    x0 - x1*trunc(x0/x1) where trunc is constant: 1 for x0 and -trunc(x0/x1) for x1 (a
    gradient of 0 would be silently wrong). Args: (x0, x1)."""

    nargs = 2

    @classmethod
    def eval(cls, x0, x1):
        if not _numbers(x0, x1):
            return None
        return sympy.nan if x1 == 0 else sympy.Float(math.fmod(float(x0), float(x1)))

    def fdiff(self, argindex=1):
        x0, x1 = self.args
        return sympy.Integer(1) if argindex == 1 else -Truncate(x0 / x1)


class PRelu(_Elementwise):
    """nnabla's prelu: x where x >= 0, else w*x; d/dx is 1 where x >= 0, else w, and
    d/dw is x where x < 0, else 0 (prelu.cpp). Args: (x, w)."""

    nargs = 2

    @classmethod
    def eval(cls, x, w):
        return (x if x >= 0 else w * x) if _numbers(x, w) else None

    def fdiff(self, argindex=1):
        x, w = self.args
        return PReluGrad(x, w) if argindex == 1 else Minimum(x, sympy.Integer(0))


class PReluGrad(_Derivative):
    """1 where x >= 0, else w."""

    nargs = 2

    @classmethod
    def eval(cls, x, w):
        return (sympy.Integer(1) if x >= 0 else w) if _numbers(x, w) else None

    def fdiff(self, argindex=1):
        x, _ = self.args
        return sympy.Integer(0) if argindex == 1 else IsGreater(sympy.Integer(0), x)


KL_EPSILON = sympy.Float(1e-8)


class KLTerm(_Elementwise):
    """One term of nnabla's kl_multinomial, p*(log(p + 1e-8) - log(q + 1e-8)), with
    nnabla's gradients (kl_multinomial.cpp): log(p + 1e-8) - log(q + 1e-8) + 1 for p and
    -p/q for q (not quite the derivatives: they drop the 1e-8 there). Args: (p, q)."""

    nargs = 2

    @classmethod
    def eval(cls, p, q):
        if p == q:  # KL(p || p): its formula and nnabla's gradients (1 - 1) cancel
            return sympy.Integer(0)
        return cls.formula_of(p, q) if _numbers(p, q) else None

    @staticmethod
    def formula_of(p, q):
        return p * (sympy.log(p + KL_EPSILON) - sympy.log(q + KL_EPSILON))

    def formula(self):
        return self.formula_of(*self.args)

    def fdiff(self, argindex=1):
        p, q = self.args
        if argindex == 1:
            return sympy.log(p + KL_EPSILON) - sympy.log(q + KL_EPSILON) + 1
        return -p / q
