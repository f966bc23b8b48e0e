"""Elementwise ops: one scalar SymPy formula each, so chains fuse and `sympy.diff` works.

Each op is registered in one place, its formula below, which is also its `F.*` function's
specification (see `elementwise`). Binary ops broadcast size-1 axes between inputs of
equal rank, as nnabla does.
"""

from __future__ import annotations

import dataclasses
import inspect

from symcompile.common.deferred import Deferred
from symcompile.ops.opdef import FunctionApi, OpDef, broadcast_shape

# SymPy and the function classes built on it load when the first graph is lowered.
sympy = Deferred("sympy")
E = Deferred("symcompile.ops.sympy_functions")
P = Deferred("symcompile.ir.primitives")

OPS: dict[str, OpDef] = {}

# nnabla's trailing arguments of elementwise functions, accepted and unused: symcompile
# has no in-place computation and every function has one output.
_INPLACE = (("inplace", False),)
_OUTPUTS = (("n_outputs", -1), ("outputs", None))


class _Required:
    """The default of a formula's scalar that nnabla's function requires (it has no
    default there: ``F.epsilon_insensitive_loss(x0, x1, epsilon)``)."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()


def elementwise(name: str, type_name: str, *, inplace: bool = False, labels=None,
                output_dtype=None):
    """Register the elementwise function `name` (nnabla's class `type_name`) given its
    scalar SymPy formula, which also specifies `F.<name>`:

    * its parameters without a default are the Variable inputs, those with one nnabla's
      scalar arguments, with nnabla's names and defaults (the lowering passes them as
      SymPy numbers); a scalar nnabla requires has the default `REQUIRED`;
    * its docstring is F.<name>'s;
    * `inplace` gives F.<name> nnabla's ``inplace=False`` argument (before
      ``n_outputs=-1, outputs=None``, which every function accepts);
    * `labels` says which inputs hold class labels (see `OpDef.labels`), `output_dtype`
      the dtype of its values (see `OpDef.output_dtype`).
    """

    def register(formula):
        if name in OPS:
            raise ValueError(f"elementwise({name!r}): {name} is registered already")
        api = _api(name, formula, inplace)
        arity = len(api.inputs)

        def lower(args, attrs, ctx):
            return formula(*args, **attrs)

        def infer(shapes, attrs):
            return broadcast_shape(name, shapes) if arity > 1 else shapes[0]

        OPS[name] = OpDef(name, type_name, arity, True, infer, lower, api, labels,
                          output_dtype=output_dtype)
        return formula

    return register


def _api(name: str, formula, inplace: bool) -> FunctionApi:
    """F.<name>'s parameters and docstring, read off the formula (see `elementwise`)."""
    if not formula.__doc__:
        raise TypeError(f"elementwise({name!r}): the formula {formula.__name__} has no "
                        f"docstring; write one, it is the docstring of F.{name}")
    inputs, scalars = [], []
    for parameter in inspect.signature(formula).parameters.values():
        if parameter.kind is not parameter.POSITIONAL_OR_KEYWORD:
            raise TypeError(f"elementwise({name!r}): parameter {parameter.name} of "
                            f"{formula.__name__} must be a plain one (an input, or a "
                            "scalar with its default)")
        if parameter.default is parameter.empty:
            inputs.append(parameter.name)  # Python puts them before those with defaults
        elif parameter.default is REQUIRED:
            scalars.append((parameter.name, inspect.Parameter.empty))  # no default in F
        else:
            scalars.append((parameter.name, parameter.default))
    return FunctionApi(tuple(inputs), tuple(scalars),
                       (_INPLACE if inplace else ()) + _OUTPUTS,
                       inspect.cleandoc(formula.__doc__))


# --- arithmetic --------------------------------------------------------------------------

@elementwise("add2", "Add2", inplace=True)
def _add2(x0, x1):
    """Elementwise ``x0 + x1`` (size-1 axes broadcast)."""
    return x0 + x1


@elementwise("sub2", "Sub2", inplace=True)
def _sub2(x0, x1):
    """Elementwise ``x0 - x1`` (size-1 axes broadcast)."""
    return x0 - x1


@elementwise("mul2", "Mul2", inplace=True)
def _mul2(x0, x1):
    """Elementwise ``x0 * x1`` (size-1 axes broadcast)."""
    return x0 * x1


@elementwise("div2", "Div2", inplace=True)
def _div2(x0, x1):
    """Elementwise ``x0 / x1`` (size-1 axes broadcast)."""
    return x0 / x1


@elementwise("pow2", "Pow2", inplace=True)
def _pow2(x0, x1):
    """Elementwise ``x0 ** x1`` (size-1 axes broadcast)."""
    return x0**x1


@elementwise("squared_error", "SquaredError")
def _squared_error(x0, x1):
    """Elementwise ``(x0 - x1) ** 2``, not reduced."""
    return (x0 - x1) ** 2


@elementwise("add_scalar", "AddScalar", inplace=True)
def _add_scalar(x, val=1):
    """``x + val``."""
    return x + val


@elementwise("mul_scalar", "MulScalar", inplace=True)
def _mul_scalar(x, val=1):
    """``x * val``."""
    return x * val


@elementwise("pow_scalar", "PowScalar", inplace=True)
def _pow_scalar(x, val=1):
    """``x ** val``."""
    return x**val


@elementwise("r_sub_scalar", "RSubScalar")
def _r_sub_scalar(x, val=1):
    """``val - x``."""
    return val - x


@elementwise("r_div_scalar", "RDivScalar")
def _r_div_scalar(x, val=1):
    """``val / x``."""
    return val / x


@elementwise("r_pow_scalar", "RPowScalar")
def _r_pow_scalar(x, val=1):
    """``val ** x``."""
    return val**x


@elementwise("identity", "Identity", output_dtype="input")
def _identity(x):
    """``x`` itself, as a new node."""
    return x


# --- activations and maths ---------------------------------------------------------------

@elementwise("tanh", "Tanh")
def _tanh(x):
    """Hyperbolic tangent."""
    return E.sympy_function("tanh")(x)


@elementwise("sigmoid", "Sigmoid")
def _sigmoid(x):
    """Logistic sigmoid, 1 / (1 + exp(-x))."""
    return E.Sigmoid(x)


@elementwise("relu", "ReLU", inplace=True)
def _relu(x):
    """max(x, 0); its derivative at 0 is 0."""
    return E.Maximum(x, sympy.Integer(0))  # d/dx is (x > 0): relu'(0) = 0, as in nnabla


@elementwise("leaky_relu", "LeakyReLU", inplace=True)
def _leaky_relu(x, alpha=0.1):
    """x where x > 0, else alpha * x."""
    return E.LeakyRelu(x, alpha)


@elementwise("elu", "ELU")
def _elu(x, alpha=1.0):
    """x where x >= 0, else alpha * (exp(x) - 1)."""
    return E.Elu(x, alpha)


@elementwise("softplus", "SoftPlus")
def _softplus(x, beta=1.0):
    """log(1 + exp(beta * x)) / beta."""
    return E.Softplus(beta * x) / beta


@elementwise("exp", "Exp")
def _exp(x):
    """Elementwise exponential."""
    return sympy.exp(x)


@elementwise("log", "Log")
def _log(x):
    """Elementwise natural logarithm."""
    return E.log(x)  # log(sigmoid(u)) is -softplus(-u)


@elementwise("abs", "Abs")
def _abs(x):
    """Elementwise absolute value (derivative sign(x), 0 at 0)."""
    return E.Absolute(x, sympy.Integer(1))  # nnabla: d|x|/dx = +1 at 0


@elementwise("maximum2", "Maximum2")
def _maximum2(x0, x1):
    """Elementwise maximum of two arrays (size-1 axes broadcast)."""
    return E.Maximum(x0, x1)


@elementwise("minimum2", "Minimum2")
def _minimum2(x0, x1):
    """Elementwise minimum of two arrays (size-1 axes broadcast)."""
    return E.Minimum(x0, x1)


@elementwise("maximum_scalar", "MaximumScalar")
def _maximum_scalar(x, val=1.0):
    """max(x, val)."""
    return E.Maximum(x, val)  # d/dx is (x > val): 0 on a tie, as in nnabla


@elementwise("minimum_scalar", "MinimumScalar")
def _minimum_scalar(x, val=1.0):
    """min(x, val)."""
    return E.Minimum(x, val)  # d/dx is (val > x): 0 on a tie


# --- trigonometric and hyperbolic functions ----------------------------------------------
# SymPy's own: its NumPy printer writes them (numpy.arctan) and its fdiff differentiates
# them; `sympy_function` keeps them from rewriting their argument (see there).

@elementwise("sin", "Sin")
def _sin(x):
    """Elementwise sine."""
    return E.sympy_function("sin")(x)


@elementwise("cos", "Cos")
def _cos(x):
    """Elementwise cosine."""
    return E.sympy_function("cos")(x)


@elementwise("tan", "Tan")
def _tan(x):
    """Elementwise tangent."""
    return E.sympy_function("tan")(x)


@elementwise("sinh", "Sinh")
def _sinh(x):
    """Elementwise hyperbolic sine."""
    return E.sympy_function("sinh")(x)


@elementwise("cosh", "Cosh")
def _cosh(x):
    """Elementwise hyperbolic cosine."""
    return E.sympy_function("cosh")(x)


@elementwise("asin", "ASin")
def _asin(x):
    """Elementwise arcsine, in [-pi/2, pi/2]; NaN outside -1 <= x <= 1, as in nnabla."""
    return E.sympy_function("asin")(x)


@elementwise("acos", "ACos")
def _acos(x):
    """Elementwise arccosine, in [0, pi]; NaN outside -1 <= x <= 1, as in nnabla."""
    return E.sympy_function("acos")(x)


@elementwise("atan", "ATan")
def _atan(x):
    """Elementwise arctangent, in (-pi/2, pi/2)."""
    return E.sympy_function("atan")(x)


@elementwise("atan2", "ATan2")
def _atan2(x0, x1):
    """Elementwise arctangent of x0 / x1 in [-pi, pi], on the quadrant of the point
    (x1, x0), as NumPy's arctan2(x0, x1) (size-1 axes broadcast)."""
    return E.sympy_function("atan2")(x0, x1)


@elementwise("asinh", "ASinh")
def _asinh(x):
    """Elementwise inverse hyperbolic sine."""
    return E.sympy_function("asinh")(x)


@elementwise("acosh", "ACosh")
def _acosh(x):
    """Elementwise inverse hyperbolic cosine; NaN for x < 1, as in nnabla."""
    return E.sympy_function("acosh")(x)


@elementwise("atanh", "ATanh")
def _atanh(x):
    """Elementwise inverse hyperbolic tangent; infinite at x = +-1, NaN beyond."""
    return E.sympy_function("atanh")(x)


# --- losses ------------------------------------------------------------------------------

@elementwise("absolute_error", "AbsoluteError")
def _absolute_error(x0, x1):
    """Elementwise |x0 - x1|, not reduced."""
    return E.Absolute(x0 - x1, sympy.Integer(-1))  # nnabla: d/dx0 = -1 where x0 == x1


@elementwise("huber_loss", "HuberLoss")
def _huber_loss(x0, x1, delta=1.0):
    """Elementwise d**2 where |d| < delta, else delta * (2 |d| - delta), d = x0 - x1."""
    return E.Huber(x0 - x1, delta)


def _binary_labels(shapes, attrs) -> dict[int, int]:
    return {1: 2}  # the target: 0 or 1


@elementwise("sigmoid_cross_entropy", "SigmoidCrossEntropy", labels=_binary_labels)
def _sigmoid_cross_entropy(x, target):
    """Elementwise -(t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))), stable."""
    # softplus(x) - t x, whose d/dx is sigmoid(x) - t. nnabla reads the target as
    # integer labels (truncating) and sends it no gradient.
    return E.Softplus(x) - x * P.StopGradient(E.Truncate(target))


@elementwise("binary_cross_entropy", "BinaryCrossEntropy", labels=_binary_labels)
def _binary_cross_entropy(x, target):
    """Elementwise -(t log x + (1 - t) log(1 - x)) for probabilities x."""
    # E.log: of x = sigmoid(u), t*softplus(-u) + (1 - t)*softplus(u), finite for every u
    # (each term negated on its own, so that the softpluses' signs cancel)
    return -(target * E.log(x)) - (1 - target) * E.log(1 - x)


# --- more activations --------------------------------------------------------------------

@elementwise("swish", "Swish")
def _swish(x):
    """x * sigmoid(x)."""
    return x * E.Sigmoid(x)


@elementwise("mish", "Mish")
def _mish(x):
    """x * tanh(softplus(x))."""
    return x * E.sympy_function("tanh")(E.Softplus(x))


@elementwise("gelu", "GELU")
def _gelu(x):
    """x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x**3))): nnabla's GELU is this tanh
    approximation, not the form with erf."""
    inner = sympy.sqrt(2 / sympy.pi) * (x + sympy.Float(0.044715) * x**3)
    return x / 2 * (1 + E.sympy_function("tanh")(inner))


@elementwise("selu", "SELU")
def _selu(x, scale=1.05070098735548, alpha=1.673263242354377):
    """scale * x where x > 0, else scale * alpha * (exp(x) - 1); at 0 the derivative is
    scale * alpha, as in nnabla."""
    return E.Selu(x, scale, alpha)


@elementwise("relu6", "ReLU6")
def _relu6(x):
    """min(max(x, 0), 6); its derivative is 0 at 0 and at 6, as in nnabla."""
    return E.Minimum(E.Maximum(x, sympy.Integer(0)), sympy.Integer(6))


@elementwise("hard_sigmoid", "HardSigmoid")
def _hard_sigmoid(x):
    """0.2 x + 0.5 limited to [0, 1]; its derivative is 0.2 on -2.5 <= x <= 2.5 (both
    ends included, as in nnabla), else 0."""
    return E.HardClip(x / 5 + sympy.Rational(1, 2), sympy.Integer(0), sympy.Integer(1))


@elementwise("hard_tanh", "HardTanh")
def _hard_tanh(x):
    """x limited to [-1, 1]; its derivative is 1 on -1 <= x <= 1 (both ends included, as
    in nnabla), else 0."""
    return E.HardClip(x, sympy.Integer(-1), sympy.Integer(1))


@elementwise("log_sigmoid", "LogSigmoid")
def _log_sigmoid(x):
    """log(sigmoid(x)), computed as -softplus(-x)."""
    return -E.Softplus(-x)


@elementwise("softsign", "SoftSign")
def _softsign(x):
    """x / (1 + |x|), with nnabla's derivative 1 / (1 + |x|)**2."""
    return E.SoftSign(x)


@elementwise("tanh_shrink", "TanhShrink")
def _tanh_shrink(x):
    """x - tanh(x), with nnabla's derivative tanh(x)**2."""
    return E.TanhShrink(x)


@elementwise("sinc", "Sinc")
def _sinc(x):
    """sin(x) / x, 1 at x = 0 (nnabla's: of x, not of pi x as NumPy's sinc)."""
    return E.Sinc(x)


# --- signs and rounding (nnabla's gradients pass straight through) -----------------------

@elementwise("sign", "Sign")
def _sign(x, alpha=1.0):
    """-1 where x < 0, +1 where x > 0, alpha at 0; the gradient passes straight through
    (it is 1), as in nnabla."""
    return E.Signum(x, alpha)


@elementwise("binary_tanh", "BinaryTanh")
def _binary_tanh(x):
    """+1 where x > 0, else -1; the gradient passes straight through where |x| < 1 and
    is 0 elsewhere, as in nnabla."""
    return E.Binary(x, sympy.Integer(-1), sympy.Integer(1))


@elementwise("binary_sigmoid", "BinarySigmoid")
def _binary_sigmoid(x):
    """1 where x > 0, else 0; the gradient is 1/2 where |x| < 1 and 0 elsewhere, as in
    nnabla."""
    return E.Binary(x, sympy.Integer(0), sympy.Integer(1))


@elementwise("ceil", "Ceil")
def _ceil(x):
    """The smallest integer >= x; the gradient passes straight through (1), as in nnabla."""
    return E.Ceil(x)


@elementwise("floor", "Floor")
def _floor(x):
    """The largest integer <= x; the gradient passes straight through (1), as in nnabla."""
    return E.Floor(x)


@elementwise("round", "Round")
def _round(x):
    """x rounded to the nearest integer, halves away from zero (as C's round and nnabla;
    NumPy's round rounds them to even); the gradient passes straight through (1)."""
    return E.Round(x)


# --- comparisons and logic: 1.0 or 0.0, and no gradient (nnabla's backward raises) --------

def _compare(a, b, symbol: str):
    code = next(k for k, v in E.RELATIONS.items() if v == symbol)
    return E.Compare(a, b, sympy.Integer(code))


def _true(a):
    """1.0 where `a` is not 0 (nnabla's truth of a float), else 0.0."""
    return _compare(a, sympy.Integer(0), "!=")


@elementwise("greater", "Greater")
def _greater(x0, x1):
    """1.0 where x0 > x1, else 0.0 (size-1 axes broadcast); no gradient."""
    return _compare(x0, x1, ">")


@elementwise("greater_equal", "GreaterEqual")
def _greater_equal(x0, x1):
    """1.0 where x0 >= x1, else 0.0 (size-1 axes broadcast); no gradient."""
    return _compare(x0, x1, ">=")


@elementwise("less", "Less")
def _less(x0, x1):
    """1.0 where x0 < x1, else 0.0 (size-1 axes broadcast); no gradient."""
    return _compare(x0, x1, "<")


@elementwise("less_equal", "LessEqual")
def _less_equal(x0, x1):
    """1.0 where x0 <= x1, else 0.0 (size-1 axes broadcast); no gradient."""
    return _compare(x0, x1, "<=")


@elementwise("equal", "Equal")
def _equal(x0, x1):
    """1.0 where x0 == x1, else 0.0 (size-1 axes broadcast); no gradient."""
    return _compare(x0, x1, "==")


@elementwise("not_equal", "NotEqual")
def _not_equal(x0, x1):
    """1.0 where x0 != x1, else 0.0 (size-1 axes broadcast); no gradient."""
    return _compare(x0, x1, "!=")


@elementwise("greater_scalar", "GreaterScalar")
def _greater_scalar(x0, val=1):
    """1.0 where x0 > val, else 0.0; no gradient."""
    return _compare(x0, val, ">")


@elementwise("greater_equal_scalar", "GreaterEqualScalar")
def _greater_equal_scalar(x0, val=1):
    """1.0 where x0 >= val, else 0.0; no gradient."""
    return _compare(x0, val, ">=")


@elementwise("less_scalar", "LessScalar")
def _less_scalar(x0, val=1):
    """1.0 where x0 < val, else 0.0; no gradient."""
    return _compare(x0, val, "<")


@elementwise("less_equal_scalar", "LessEqualScalar")
def _less_equal_scalar(x0, val=1):
    """1.0 where x0 <= val, else 0.0; no gradient."""
    return _compare(x0, val, "<=")


@elementwise("equal_scalar", "EqualScalar")
def _equal_scalar(x0, val=1):
    """1.0 where x0 == val, else 0.0; no gradient."""
    return _compare(x0, val, "==")


@elementwise("not_equal_scalar", "NotEqualScalar")
def _not_equal_scalar(x0, val=1):
    """1.0 where x0 != val, else 0.0; no gradient."""
    return _compare(x0, val, "!=")


@elementwise("logical_and", "LogicalAnd")
def _logical_and(x0, x1):
    """1.0 where x0 and x1 are both not 0, else 0.0 (size-1 axes broadcast); no gradient."""
    return _true(x0) * _true(x1)


@elementwise("logical_or", "LogicalOr")
def _logical_or(x0, x1):
    """1.0 where x0 or x1 is not 0, else 0.0 (size-1 axes broadcast); no gradient."""
    return _true(_true(x0) + _true(x1))


@elementwise("logical_xor", "LogicalXor")
def _logical_xor(x0, x1):
    """1.0 where exactly one of x0 and x1 is not 0, else 0.0 (size-1 axes broadcast); no
    gradient."""
    return _compare(_true(x0), _true(x1), "!=")


@elementwise("logical_not", "LogicalNot")
def _logical_not(x0):
    """1.0 where x0 is 0, else 0.0; no gradient."""
    return _compare(x0, sympy.Integer(0), "==")


@elementwise("logical_and_scalar", "LogicalAndScalar")
def _logical_and_scalar(x0, val=REQUIRED):
    """1.0 where x0 is not 0 and val is true, else 0.0; no gradient."""
    return _true(x0) * _true(val)


@elementwise("logical_or_scalar", "LogicalOrScalar")
def _logical_or_scalar(x0, val=REQUIRED):
    """1.0 where x0 is not 0 or val is true, else 0.0; no gradient."""
    return _true(_true(x0) + _true(val))


@elementwise("logical_xor_scalar", "LogicalXorScalar")
def _logical_xor_scalar(x0, val=REQUIRED):
    """1.0 where exactly one of x0 (not 0) and val is true, else 0.0; no gradient."""
    return _compare(_true(x0), _true(val), "!=")


@elementwise("isnan", "IsNaN")
def _isnan(x0):
    """1.0 where x0 is NaN, else 0.0; no gradient."""
    return E.Classify(x0, sympy.Integer(0))


@elementwise("isinf", "IsInf")
def _isinf(x0):
    """1.0 where x0 is +-inf, else 0.0; no gradient."""
    return E.Classify(x0, sympy.Integer(1))


@elementwise("reset_nan", "ResetNaN")
def _reset_nan(x0, val=0):
    """x0 with NaNs replaced by val; the gradient is 0 at NaNs, 1 elsewhere."""
    return E.Reset(x0, val, sympy.Integer(0))


@elementwise("reset_inf", "ResetInf")
def _reset_inf(x0, val=0):
    """x0 with +-inf replaced by val; the gradient is 0 at infinities, 1 elsewhere."""
    return E.Reset(x0, val, sympy.Integer(1))


@elementwise("where", "Where")
def _where(condition, x_true, x_false):
    """x_true where condition is not 0, else x_false (size-1 axes broadcast); the
    condition gets no gradient."""
    return E.Select(condition, x_true, x_false)


@elementwise("bool_fill", "BoolFill")
def _bool_fill(data, mask, value=0):
    """data with `value` where mask is not 0 (NaN is not 0), the mask broadcast to data's
    shape; the gradient passes to data where mask is 0, and the mask gets none."""
    return E.Select(mask, value, data)


def _bool_fill_shape(shapes, attrs):
    """data's shape: nnabla broadcasts the mask to it, never data to the mask's."""
    data, mask = (tuple(s) for s in shapes)
    if broadcast_shape("bool_fill", shapes) != data:
        raise ValueError(f"F.bool_fill: the mask of shape {mask} does not broadcast to data's "
                         f"shape {data}; nnabla broadcasts the mask only (its trailing axes "
                         f"equal data's or are 1)")
    return data


OPS["bool_fill"] = dataclasses.replace(OPS["bool_fill"], infer_shape=_bool_fill_shape)


@elementwise("epsilon_insensitive_loss", "EpsilonInsensitiveLoss")
def _epsilon_insensitive_loss(x0, x1, epsilon=REQUIRED):
    """Elementwise max(|x0 - x1| - epsilon, 0), not reduced; its derivative is 0 where
    |x0 - x1| <= epsilon, as in nnabla."""
    return E.Maximum(E.Absolute(x0 - x1, sympy.Integer(1)) - epsilon, sympy.Integer(0))


# --- the error function and the remainder --------------------------------------------------

@elementwise("erf", "Erf")
def _erf(x):
    """The error function, 2/sqrt(pi) times the integral of exp(-t**2) from 0 to x; its
    derivative is 2/sqrt(pi) * exp(-x**2)."""
    return E.sympy_function("erf")(x)


@elementwise("mod2", "Mod2")
def _mod2(x0, x1, fmod=False):
    """The remainder of x0 / x1 with the sign of x0 (C's fmod), NaN where x1 is 0 (size-1
    axes broadcast). nnabla 1.39 computes fmod for floats whatever `fmod` says (it reads
    it for integer arrays only) and has no backward (it raises): here the gradient is
    fmod's derivative, 1 for x0 and -trunc(x0/x1) for x1."""
    return E.Fmod(x0, x1)

