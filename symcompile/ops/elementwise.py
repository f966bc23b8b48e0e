"""Elementwise ops: one scalar SymPy formula each, so chains fuse and `sympy.diff` works.

Binary ops broadcast size-1 axes between inputs of equal rank, as nnabla does.
"""

from __future__ import annotations

from symcompile.common.deferred import Deferred
from symcompile.ops.opdef import OpDef, broadcast_shape

# SymPy and the function classes built on it load when the first graph is lowered.
sympy = Deferred("sympy")
E = Deferred("symcompile.ops.sympy_functions")
P = Deferred("symcompile.ir.primitives")

OPS: dict[str, OpDef] = {}


def elementwise(name: str, type_name: str, arity: int):
    """Register an elementwise function given its scalar SymPy formula."""

    def register(formula):
        def lower(args, attrs, ctx):
            return formula(*args, **attrs)

        def infer(shapes, attrs):
            return broadcast_shape(name, shapes) if arity > 1 else shapes[0]

        OPS[name] = OpDef(name, type_name, arity, True, infer, lower)
        return formula

    return register


@elementwise("add2", "Add2", 2)
def _add2(x0, x1):
    return x0 + x1


@elementwise("sub2", "Sub2", 2)
def _sub2(x0, x1):
    return x0 - x1


@elementwise("mul2", "Mul2", 2)
def _mul2(x0, x1):
    return x0 * x1


@elementwise("div2", "Div2", 2)
def _div2(x0, x1):
    return x0 / x1


@elementwise("pow2", "Pow2", 2)
def _pow2(x0, x1):
    return x0**x1


@elementwise("squared_error", "SquaredError", 2)
def _squared_error(x0, x1):
    return (x0 - x1) ** 2


@elementwise("add_scalar", "AddScalar", 1)
def _add_scalar(x, val):
    return x + val


@elementwise("mul_scalar", "MulScalar", 1)
def _mul_scalar(x, val):
    return x * val


@elementwise("pow_scalar", "PowScalar", 1)
def _pow_scalar(x, val):
    return x**val


@elementwise("r_sub_scalar", "RSubScalar", 1)
def _r_sub_scalar(x, val):
    return val - x


@elementwise("r_div_scalar", "RDivScalar", 1)
def _r_div_scalar(x, val):
    return val / x


@elementwise("r_pow_scalar", "RPowScalar", 1)
def _r_pow_scalar(x, val):
    return val**x


@elementwise("identity", "Identity", 1)
def _identity(x):
    return x




# --- activations and maths ---------------------------------------------------------------

@elementwise("tanh", "Tanh", 1)
def _tanh(x):
    return E.tanh(x)


@elementwise("sigmoid", "Sigmoid", 1)
def _sigmoid(x):
    return E.Sigmoid(x)


@elementwise("relu", "ReLU", 1)
def _relu(x):
    return E.Maximum(x, sympy.Integer(0))  # d/dx is (x > 0): relu'(0) = 0, as in nnabla


@elementwise("leaky_relu", "LeakyReLU", 1)
def _leaky_relu(x, alpha):
    return E.LeakyRelu(x, alpha)


@elementwise("elu", "ELU", 1)
def _elu(x, alpha):
    return E.Elu(x, alpha)


@elementwise("softplus", "SoftPlus", 1)
def _softplus(x, beta):
    return E.Softplus(beta * x) / beta


@elementwise("exp", "Exp", 1)
def _exp(x):
    return sympy.exp(x)


@elementwise("log", "Log", 1)
def _log(x):
    return E.log(x)  # log(sigmoid(u)) is -softplus(-u)


@elementwise("abs", "Abs", 1)
def _abs(x):
    return E.Absolute(x, sympy.Integer(1))  # nnabla: d|x|/dx = +1 at 0


@elementwise("sin", "Sin", 1)
def _sin(x):
    return E.sin(x)


@elementwise("cos", "Cos", 1)
def _cos(x):
    return E.cos(x)


@elementwise("maximum2", "Maximum2", 2)
def _maximum2(x0, x1):
    return E.Maximum(x0, x1)


@elementwise("minimum2", "Minimum2", 2)
def _minimum2(x0, x1):
    return E.Minimum(x0, x1)


@elementwise("maximum_scalar", "MaximumScalar", 1)
def _maximum_scalar(x, val):
    return E.Maximum(x, val)  # d/dx is (x > val): 0 on a tie, as in nnabla


@elementwise("minimum_scalar", "MinimumScalar", 1)
def _minimum_scalar(x, val):
    return E.Minimum(x, val)  # d/dx is (val > x): 0 on a tie


# --- losses ------------------------------------------------------------------------------

@elementwise("absolute_error", "AbsoluteError", 2)
def _absolute_error(x0, x1):
    return E.Absolute(x0 - x1, sympy.Integer(-1))  # nnabla: d/dx0 = -1 where x0 == x1


@elementwise("huber_loss", "HuberLoss", 2)
def _huber_loss(x0, x1, delta):
    return E.Huber(x0 - x1, delta)


@elementwise("sigmoid_cross_entropy", "SigmoidCrossEntropy", 2)
def _sigmoid_cross_entropy(x, target):
    # -(t log s(x) + (1 - t) log(1 - s(x))) = softplus(x) - t x; d/dx = sigmoid(x) - t.
    # nnabla reads the target as integer labels (truncating) and sends it no gradient.
    return E.Softplus(x) - x * P.StopGradient(E.Truncate(target))


@elementwise("binary_cross_entropy", "BinaryCrossEntropy", 2)
def _binary_cross_entropy(x, target):
    # E.log: of x = sigmoid(u), t*softplus(-u) + (1 - t)*softplus(u), finite for every u
    # (each term negated on its own, so that the softpluses' signs cancel)
    return -(target * E.log(x)) - (1 - target) * E.log(1 - x)
