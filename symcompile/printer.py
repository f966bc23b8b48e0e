"""SymPy expression -> NumPy source text. Expressions only: statements live in templates.

A subclass of SymPy's `NumPyPrinter` with the `_print_X` overrides symcompile needs:
its tensor primitives, readable numbers (``0.1``, ``x/32``), products that multiply
scalars before arrays (fewer array operations), and the two stock printings that are
wrong for training code: ``Max(x, 0)`` (``functools.reduce``) and ``Heaviside`` (which
gives relu'(0) = 1/2 through ``numpy.select``).
"""

from __future__ import annotations

import sympy
from sympy.printing.numpy import NumPyPrinter as _SymPyNumPyPrinter
from sympy.printing.precedence import PRECEDENCE, precedence

from .primitives import Shapes, as_ints


def shape_text(shape) -> str:
    dims = as_ints(shape)
    return f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(map(str, dims))})"


class NumPyPrinter(_SymPyNumPyPrinter):
    """Prints array expressions as NumPy code.

    Args:
        shapes: Shape oracle; lets products put scalar factors first. Optional.
        dtype: NumPy dtype name for arrays the printed code creates.
    """

    def __init__(self, shapes: Shapes | None = None, dtype: str = "float32") -> None:
        super().__init__({"fully_qualified_modules": True, "inline": True,
                          "allow_unknown_functions": False})
        self._shapes = shapes
        self._dtype = dtype

    def _is_scalar(self, expr) -> bool:
        if expr.is_Number:
            return True
        if self._shapes is None:
            return False
        try:
            return self._shapes.of(expr) == ()
        except KeyError:
            return False

    # --- numbers ---------------------------------------------------------------------
    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Rational(self, expr):
        return f"{expr.p}/{expr.q}"

    # --- arithmetic --------------------------------------------------------------------
    def _print_Mul(self, expr):
        coeff = sympy.Integer(1)
        factors = []
        for factor in expr.as_ordered_factors():
            if factor.is_Number:
                coeff *= factor
            else:
                factors.append(factor)
        sign = "-" if coeff.is_negative else ""
        coeff = abs(coeff)
        scalar_num, array_num, scalar_den, array_den = [], [], [], []
        if coeff.is_Rational:
            if coeff.p != 1:
                scalar_num.append(sympy.Integer(coeff.p))
            if coeff.q != 1:
                scalar_den.append(sympy.Integer(coeff.q))
        elif coeff != 1:
            scalar_num.append(coeff)
        for factor in factors:
            if factor.is_Pow and factor.exp.is_Rational and factor.exp.is_negative:
                base = factor.base if factor.exp == -1 else sympy.Pow(factor.base, -factor.exp)
                (scalar_den if self._is_scalar(base) else array_den).append(base)
            else:
                (scalar_num if self._is_scalar(factor) else array_num).append(factor)
        level = PRECEDENCE["Mul"]
        num = [self.parenthesize(f, level) for f in scalar_num]
        text = "*".join(num)
        if num:
            text += "".join("/" + self.parenthesize(d, level, strict=True) for d in scalar_den)
            scalar_den = []
        arrays = [self.parenthesize(f, level) for f in array_num]
        if arrays:
            text = "*".join(([text] if text else []) + arrays)
        elif not text:
            text = "1"
        text += "".join("/" + self.parenthesize(d, level, strict=True)
                        for d in scalar_den + array_den)
        return sign + text

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.base, expr.exp
        if exp.is_Integer:
            level = PRECEDENCE["Pow"]
            if exp == -1:
                return "1/" + self.parenthesize(base, PRECEDENCE["Mul"], strict=True)
            if exp < 0:
                return f"1/{self.parenthesize(base, level, strict=True)}**{-exp}"
            return f"{self.parenthesize(base, level, strict=True)}**{exp}"
        return super()._print_Pow(expr, rational=rational)

    # --- training-specific overrides -----------------------------------------------------
    def _print_Max(self, expr):
        """``numpy.maximum(x, 0)``, variable first, instead of ``functools.reduce``."""
        args = sorted(expr.args, key=lambda a: a.is_Number)
        text = self._print(args[-1])
        for arg in reversed(args[:-1]):
            text = f"{self._module_format('numpy.maximum')}({self._print(arg)}, {text})"
        return text

    def _print_Min(self, expr):
        args = sorted(expr.args, key=lambda a: a.is_Number)
        text = self._print(args[-1])
        for arg in reversed(args[:-1]):
            text = f"{self._module_format('numpy.minimum')}({self._print(arg)}, {text})"
        return text

    def _print_Heaviside(self, expr):
        """relu'(x) = (x > 0): the derivative at 0 is 0 by convention, as in nnabla."""
        return f"({self._print(expr.args[0])} > 0)"

    # --- tensor primitives ----------------------------------------------------------------
    def _receiver(self, expr) -> str:
        """`expr` ready for a method call: parenthesised unless it is a name or a call."""
        text = self._print(expr)
        if precedence(expr) >= PRECEDENCE["Func"] and not expr.is_Number:
            return text
        return f"({text})"

    def _print_ReduceSum(self, expr):
        axes = as_ints(expr.args[1])
        axis = str(axes[0]) if len(axes) == 1 else shape_text(axes)
        keep = ", keepdims=True" if bool(expr.args[2]) else ""
        return f"{self._receiver(expr.args[0])}.sum(axis={axis}{keep})"

    def _print_Dot(self, expr):
        u, v = (self._print(a) for a in expr.args)
        return f"{self._module_format('numpy.vdot')}({u}, {v})"

    def _print_ExpandDims(self, expr):
        axes = as_ints(expr.args[1])
        axis = str(axes[0]) if len(axes) == 1 else shape_text(axes)
        return f"{self._module_format('numpy.expand_dims')}({self._print(expr.args[0])}, {axis})"

    def _print_Reshape(self, expr):
        return (f"{self._module_format('numpy.reshape')}({self._print(expr.args[0])}, "
                f"{shape_text(expr.args[1])})")

    def _print_BroadcastTo(self, expr):
        return (f"{self._module_format('numpy.broadcast_to')}({self._print(expr.args[0])}, "
                f"{shape_text(expr.args[1])})")

    def _print_Full(self, expr):
        dtype = self._module_format("numpy." + self._dtype)
        return (f"{self._module_format('numpy.full')}({shape_text(expr.args[1])}, "
                f"{self._print(expr.args[0])}, dtype={dtype})")
