"""Derivatives as formulas a person reads: ``mean(-2*x*(y_true - (a*x + b)))``.

The compiler's expressions use NumPy-level primitives (`Dot`, `ReduceSum`,
`BroadcastTo`). `readable` rewrites them into display functions `sum` and `mean` (a sum
scaled by one over the number of summed elements reads as a mean), and the printers
render the result as plain text, pretty text, LaTeX or MathML.
"""

from __future__ import annotations

import html
import math

import sympy
from sympy.core.parameters import distribute
from sympy.printing.latex import LatexPrinter
from sympy.printing.mathml import MathMLPresentationPrinter
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.pretty.pretty import PrettyPrinter
from sympy.printing.pretty.stringpict import prettyForm
from sympy.printing.str import StrPrinter

from symcompile.ir.collectives import AllReduceSum, ProcessShared
from symcompile.ir.indexing import Concatenate, Flip, Slice, slice_text
from symcompile.ir.primitives import (
    BroadcastTo,
    Copy,
    Dot,
    ExpandDims,
    Full,
    KernelBase,
    ReduceSum,
    Reshape,
    Shapes,
    Transpose,
    as_ints,
)


class SumOf(sympy.Function):
    """Display form of a sum: SumOf(expr, count, axes); axes () means all axes.

    (Not called Sum: SymPy's printers dispatch on class names, and would print it as
    SymPy's own `Sum`.)

    `count` (how many elements the sum adds) is kept for mean detection, not printed.
    """

    def _eval_is_commutative(self):
        return True


class SliceOf(sympy.Function):
    """Display form of a slice: args (x, the index as a Symbol named ``[1:3, ::2]``); the
    text form prints ``x[1:3, ::2]``, the others ``slice(x, [1:3, ::2])``."""

    nargs = 2


class MeanOf(sympy.Function):
    """Display form of a mean: MeanOf(expr, axes); axes () means all axes."""

    def _eval_is_commutative(self):
        return True


def readable(expr: sympy.Expr, shapes: Shapes) -> sympy.Expr:
    """`expr` with primitives replaced by `SumOf`/`MeanOf` and shape plumbing dropped.

    Call it inside ``sympy.core.parameters.distribute(False)`` (as `as_text` does) so
    that ``-2*(y - (a*x + b))`` keeps the shape the derivative was taken in.
    """
    if isinstance(expr, (BroadcastTo, Full, ExpandDims, Reshape, Copy, ProcessShared)):
        return readable(expr.args[0], shapes)
    if isinstance(expr, AllReduceSum):  # (the group's name is the code's, not the formula's)
        return sympy.Function("all_reduce_sum")(readable(expr.args[0], shapes))
    if isinstance(expr, Dot):
        inner = readable(expr.args[0] * expr.args[1], shapes)
        return _sum(inner, math.prod(shapes.of(expr.args[0])), ())
    if isinstance(expr, ReduceSum):
        inner = readable(expr.args[0], shapes)
        shape = as_ints(expr.args[3])
        axes = tuple(a for a in as_ints(expr.args[1]) if a < len(shape))
        # Summing over every axis longer than 1 reads as a plain sum.
        full = all(d == 1 for i, d in enumerate(shape) if i not in axes)
        return _sum(inner, math.prod(shape[a] for a in axes), () if full else axes)
    if isinstance(expr, Slice):
        return SliceOf(readable(expr.args[0], shapes), sympy.Symbol(slice_text(expr, shapes)))
    if isinstance(expr, Flip):
        return sympy.Function("flip")(readable(expr.args[0], shapes),
                                      sympy.Symbol(f"axis={_axes_text(expr.args[1])}"))
    if isinstance(expr, Concatenate):
        return sympy.Function("concatenate")(*(readable(a, shapes) for a in expr.args[:-1]),
                                             sympy.Symbol(f"axis={expr.axis}"))
    if not expr.args or isinstance(expr, sympy.Symbol):
        return expr
    rebuilt = expr.func(*(readable(a, shapes) for a in expr.args))
    return _as_mean(rebuilt) if isinstance(rebuilt, sympy.Mul) else rebuilt


def _sum(inner, count: int, axes) -> sympy.Expr:
    """SumOf(inner) with its numeric factor outside: c*sum(e), or mean(c*N*e) (see _as_mean)."""
    coeff, rest = inner.as_coeff_Mul()
    total = SumOf(rest, sympy.Integer(count), sympy.Tuple(*axes))
    return _as_mean(sympy.Mul(coeff, total, evaluate=False)) if coeff != 1 else total


def _as_mean(product: sympy.Mul) -> sympy.Expr:
    """c * sum(e) with c*N an integer (N = elements summed) -> mean(c*N*e).

    The other factors of the product were pulled out of the sum because they are
    constant along the summed axes, so they may go back in.
    """
    sums = [f for f in product.args if isinstance(f, SumOf)]
    coeff, rest = product.as_coeff_Mul()
    if len(sums) != 1 or not coeff.is_Rational:
        return product
    total = sums[0]
    count = int(total.args[1])
    scaled = coeff * count
    if count <= 1 or not scaled.is_Integer:
        return product
    others = [f for f in sympy.Mul.make_args(rest) if f is not total]
    return MeanOf(sympy.Mul(scaled, *others, total.args[0]), total.args[2])


class FormulaPrinter(StrPrinter):
    """Plain-text formulas: ``mean(...)``, ``sum(..., axis=0)``, ``x @ W``, ``W.T``."""

    printmethod = "_symcompile_formula"  # our _print_X methods, not Primitive._sympystr

    def _print_MatMul(self, expr):
        a, b = expr.args
        return f"{self.parenthesize(a, 50, strict=True)} @ {self.parenthesize(b, 50)}"

    def _print_Transpose(self, expr):
        inner = self._print(expr.args[0])
        if not isinstance(expr.args[0], sympy.Symbol):
            inner = f"({inner})"
        return f"{inner}.T" if len(expr.args[1]) == 2 else f"transpose({inner}, {expr.args[1]})"

    def _print_Heaviside(self, expr):
        return f"({self._print(expr.args[0])} > 0)"

    def _print_SliceOf(self, expr):
        inner = self._print(expr.args[0])
        if not isinstance(expr.args[0], (sympy.Symbol, sympy.Function)):
            inner = f"({inner})"
        return f"{inner}{expr.args[1].name}"

    def _print_Softmax(self, expr):
        return f"softmax({self._print(expr.args[0])}, axis={expr.args[1]})"

    def _print_LogSoftmax(self, expr):
        return f"log_softmax({self._print(expr.args[0])}, axis={expr.args[1]})"

    def _print_SoftmaxCrossEntropy(self, expr):
        return (f"softmax_cross_entropy({self._print(expr.args[0])}, "
                f"{self._print(expr.args[1])}, axis={expr.args[2]})")

    def _print_OneHot(self, expr):
        return f"onehot({self._print(expr.args[0])}, {expr.args[1]})"

    def _print_ValidLabel(self, expr):
        return f"({self._print(expr.args[0])} != -1)"

    def _print_ReduceMax(self, expr):
        return f"{expr.method}({self._print(expr.args[0])}, axis={expr.args[1]})"

    _print_ReduceMin = _print_ReduceMax

    def _print_FirstExtremum(self, expr):
        kind = "argmax" if bool(expr.args[2]) else "argmin"
        return f"onehot({kind}({self._print(expr.args[0])}, axis={expr.args[1]}))"

    def _print_StopGradient(self, expr):
        return self._print(expr.args[0])

    _print_AsNumber = _print_StopGradient

    def _print_Absolute(self, expr):
        return f"abs({self._print(expr.args[0])})"

    def _print_Sign(self, expr):
        return f"sign({self._print(expr.args[0])})"

    def _print_Maximum(self, expr):
        return f"maximum({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_Minimum(self, expr):
        return f"minimum({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_IsGreater(self, expr):
        return f"({self._print(expr.args[0])} > {self._print(expr.args[1])})"

    def _print_IsLessEqual(self, expr):
        return f"({self._print(expr.args[0])} <= {self._print(expr.args[1])})"

    def _print_Truncate(self, expr):
        return f"trunc({self._print(expr.args[0])})"

    # nnabla's rounding, signs, comparisons and selections, by their nnabla names
    def _print_Signum(self, expr):
        return f"sign({self._print(expr.args[0])})"

    def _print_Floor(self, expr):
        return f"floor({self._print(expr.args[0])})"

    def _print_Ceil(self, expr):
        return f"ceil({self._print(expr.args[0])})"

    def _print_Round(self, expr):
        return f"round({self._print(expr.args[0])})"

    def _print_Sinc(self, expr):
        return f"sinc({self._print(expr.args[0])})"

    def _print_SincGrad(self, expr):
        return f"sinc_grad({self._print(expr.args[0])})"

    def _print_SincGrad2(self, expr):
        return f"sinc_grad2({self._print(expr.args[0])})"

    def _print_HardClip(self, expr):
        return f"clip({', '.join(self._print(a) for a in expr.args)})"

    def _print_SoftSign(self, expr):
        return f"softsign({self._print(expr.args[0])})"

    def _print_TanhShrink(self, expr):
        return f"tanh_shrink({self._print(expr.args[0])})"

    def _print_PRelu(self, expr):
        return f"prelu({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_PReluGrad(self, expr):
        return f"prelu_grad({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_KLTerm(self, expr):
        return self._print(expr.formula())

    def _print_Fmod(self, expr):
        return f"fmod({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_InRange(self, expr):
        x, low, high, closed = (self._print(a) for a in expr.args)
        less = "<=" if bool(expr.args[3]) else "<"
        return f"({low} {less} {x} {less} {high})"

    def _print_Binary(self, expr):
        name = "binary_tanh" if expr.args[1] == -1 else "binary_sigmoid"
        return f"{name}({self._print(expr.args[0])})"

    def _print_Compare(self, expr):
        return f"({self._print(expr.args[0])} {expr.symbol} {self._print(expr.args[1])})"

    def _print_Classify(self, expr):
        return f"{expr.test}({self._print(expr.args[0])})"

    def _print_Reset(self, expr):
        name = "reset_nan" if int(expr.args[2]) == 0 else "reset_inf"
        return f"{name}({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_Select(self, expr):
        return f"where({', '.join(self._print(a) for a in expr.args)})"

    def _print_SumOf(self, expr):
        return _reduction_text("sum", self._print(expr.args[0]), expr.args[2])

    def _print_MeanOf(self, expr):
        return _reduction_text("mean", self._print(expr.args[0]), expr.args[1])

    def _print_KernelBase(self, expr):
        """The kernel's call as the module writes it, without shapes and default options:
        ``conv_grad_w(x, g, pad=(1, 1))``."""
        arrays = [self._print(expr.args[i]) for i in expr.tensor_args]
        return f"{expr.kernel}({', '.join(arrays + _kernel_options(expr))})"


def _kernel_options(expr: KernelBase) -> list[str]:
    """``pad=(1, 1)``, ... : the options of a kernel's call a formula shows."""
    return [f"{name}={option_text(value)}" for name, value in expr.shown_keywords()]


def option_text(value) -> str:
    """A kernel's option as a Python literal: an int, a float, or a tuple of them (the
    generated code's and the formulas')."""
    if isinstance(value, sympy.Tuple):
        items = [option_text(v) for v in value]
        return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
    return str(int(value)) if value.is_Integer else repr(float(value))


def _kernel_arguments(expr: KernelBase) -> list:
    """A kernel's arrays, then its shown options as symbols named ``pad=(1, 1)``."""
    return [expr.args[i] for i in expr.tensor_args] + [
        sympy.Symbol(option) for option in _kernel_options(expr)]


class FormulaLatexPrinter(LatexPrinter):
    """LaTeX formulas with the sums written as operators."""

    printmethod = "_symcompile_latex"
    # \arcsin and arsinh, the names in mathematics, not asin and asinh
    _default_settings = {**LatexPrinter._default_settings, "inv_trig_style": "full"}

    def _print_atan2(self, expr):
        # SymPy writes the 2 as a subscript, which reads as an index
        y, x = (self._print(arg) for arg in expr.args)
        return rf"\operatorname{{atan2}}\left({y}, {x}\right)"

    def _print_MatMul(self, expr):
        a, b = (self.parenthesize(arg, 50) for arg in expr.args)
        return rf"{a} {b}"

    def _print_Transpose(self, expr):
        return rf"{self.parenthesize(expr.args[0], 1000)}^{{\top}}"

    def _print_Softmax(self, expr):
        return rf"\operatorname{{softmax}}\left({self._print(expr.args[0])}\right)"

    def _print_LogSoftmax(self, expr):
        return rf"\log\operatorname{{softmax}}\left({self._print(expr.args[0])}\right)"

    def _print_OneHot(self, expr):
        return rf"\operatorname{{onehot}}\left({self._print(expr.args[0])}\right)"

    # (`exp`: LatexPrinter prints a function to a power, sum(x)**(-3/2), as f^{exp}(x))
    def _print_SumOf(self, expr, exp=None):
        return self._reduction("sum", expr.args[0], expr.args[2], exp)

    def _print_MeanOf(self, expr, exp=None):
        return self._reduction("mean", expr.args[0], expr.args[1], exp)

    def _reduction(self, name, inner, axes, exp=None):
        sub = f"_{{{','.join(str(a) for a in axes)}}}" if axes else ""
        power = f"^{{{exp}}}" if exp is not None else ""
        return rf"\operatorname{{{name}}}{sub}{power}\left({self._print(inner)}\right)"

    def _print_KernelBase(self, expr, exp=None):
        arrays = [self._print(expr.args[i]) for i in expr.tensor_args]
        options = [rf"\text{{{name}}}={option_text(value)}"
                   for name, value in expr.shown_keywords()]
        name = expr.kernel.replace("_", r"\_")
        power = f"^{{{exp}}}" if exp is not None else ""  # a kernel's value to a power
        return rf"\operatorname{{{name}}}{power}\left({', '.join(arrays + options)}\right)"


def _reduction_text(name: str, inner: str, axes) -> str:
    if not axes:
        return f"{name}({inner})"
    axes = as_ints(axes)
    axis = str(axes[0]) if len(axes) == 1 else str(tuple(axes))
    return f"{name}({inner}, axis={axis})"


class FormulaPrettyPrinter(PrettyPrinter):
    """SymPy's 2-D pretty print, with sums, means and matrix products spelled out."""

    printmethod = "_symcompile_pretty"

    def _print_Symbol(self, e, bold_name=False):
        return prettyForm(e.name)  # the user's name as written: y_true, not y with a subscript

    def _function(self, name: str, *args):
        return self._helper_print_function(None, list(args), func_name=name)

    def _print_SumOf(self, expr):
        return self._reduction("sum", expr.args[0], expr.args[2])

    def _print_MeanOf(self, expr):
        return self._reduction("mean", expr.args[0], expr.args[1])

    def _reduction(self, name, inner, axes):
        args = [inner] + ([sympy.Symbol(f"axis={_axes_text(axes)}")] if axes else [])
        return self._helper_print_function(None, args, func_name=name)

    def _print_MatMul(self, expr):
        a, b = (self._print(arg) for arg in expr.args)
        a = prettyForm(*a.parens()) if expr.args[0].is_Add or expr.args[0].is_Mul else a
        b = prettyForm(*b.parens()) if expr.args[1].is_Add or expr.args[1].is_Mul else b
        return prettyForm(*a.right(" @ ", b))

    def _print_Transpose(self, expr):
        inner = self._print(expr.args[0])
        if not isinstance(expr.args[0], sympy.Symbol):
            inner = prettyForm(*inner.parens())
        return prettyForm(*inner.right(".T"))

    def _print_Softmax(self, expr):
        return self._function("softmax", expr.args[0])

    def _print_LogSoftmax(self, expr):
        return self._function("log_softmax", expr.args[0])

    def _print_OneHot(self, expr):
        return self._function("onehot", expr.args[0])

    def _print_KernelBase(self, expr):
        return self._function(expr.kernel, *_kernel_arguments(expr))

    def _print_ValidLabel(self, expr):
        return self._print(sympy.Ne(expr.args[0], -1))

    def _print_Heaviside(self, expr):
        return self._print(sympy.Gt(expr.args[0], 0))

    def _print_Absolute(self, expr):
        return self._print(sympy.Abs(expr.args[0], evaluate=False))


def _axes_text(axes) -> str:
    axes = as_ints(axes)
    return str(axes[0]) if len(axes) == 1 else str(tuple(axes))


def as_pretty(expr: sympy.Expr, shapes: Shapes) -> str:
    with distribute(False):
        return FormulaPrettyPrinter({"use_unicode": True, "wrap_line": False}).doprint(
            readable(expr, shapes))


def as_text(expr: sympy.Expr, shapes: Shapes) -> str:
    with distribute(False):
        return FormulaPrinter().doprint(readable(expr, shapes))


def as_latex(expr: sympy.Expr, shapes: Shapes) -> str:
    with distribute(False):
        return FormulaLatexPrinter().doprint(readable(expr, shapes))


class FormulaMathMLPrinter(MathMLPresentationPrinter):
    """Presentation MathML (rendered natively by browsers) for the HTML page.

    An <mrow> groups nothing the reader sees: every grouping that the expression has and
    precedence does not imply is printed as brackets. SymPy's printer writes the operand
    after a minus sign bare (the unexpanded ``y - (a*x + b)`` that `readable` keeps came
    out as ``y - a*x + b``) and does not bracket superscripts raised again (``(e^u)^y``);
    `_print_Add`, `_print_Mul` and `parenthesize` here do.
    """

    printmethod = "_symcompile_mathml"

    def _print_Symbol(self, sym, style="plain"):
        # SymPy writes text nodes unescaped (to keep its entities), and would split
        # "h_1" into a subscript: user names are printed literally and escaped here.
        mi = self.dom.createElement("mi")
        mi.appendChild(self.dom.createTextNode(html.escape(sym.name, quote=False)))
        return mi

    def _named(self, name: str, *args):
        mrow = self.dom.createElement("mrow")
        mi = self.dom.createElement("mi")
        mi.appendChild(self.dom.createTextNode(name))
        mrow.appendChild(mi)
        mrow.appendChild(self._paren_comma_separated(*args))
        return mrow

    def _row(self, *parts):
        """An mrow of printed parts, with strings as operators (<mo>)."""
        mrow = self.dom.createElement("mrow")
        for part in parts:
            if isinstance(part, str):
                mo = self.dom.createElement("mo")
                mo.appendChild(self.dom.createTextNode(part))
                part = mo
            mrow.appendChild(part)
        return mrow

    def parenthesize(self, item, level, strict=False):
        if isinstance(item, (sympy.exp, Transpose)) and level >= PRECEDENCE["Pow"]:
            # printed as superscripts: raised again, they need brackets, (e^u)^y
            return self._paren_comma_separated(item)
        return super().parenthesize(item, level, strict)

    def _print_Add(self, expr, order=None):
        terms = self._as_ordered_terms(expr, order=order)
        parts = [self._print(terms[0])]
        for term in terms[1:]:
            if term.could_extract_minus_sign():
                # a - (b + c), a - (b - c): only what binds tighter than + goes bare
                parts += ["-", self.parenthesize(-term, PRECEDENCE["Add"])]
            else:
                parts += ["+", self.parenthesize(term, PRECEDENCE["Add"], strict=True)]
        return self._row(*parts)

    def _print_Mul(self, expr):
        if expr.could_extract_minus_sign():
            # -(a + b) is a Mul of -1 and a sum: SymPy would print "-a + b"
            return self._row("-", self.parenthesize(-expr, PRECEDENCE["Mul"], strict=True))
        return super()._print_Mul(expr)

    def _print_SumOf(self, expr):
        return self._reduction("sum", expr.args[0], expr.args[2])

    def _print_MeanOf(self, expr):
        return self._reduction("mean", expr.args[0], expr.args[1])

    def _reduction(self, name, inner, axes):
        if not axes:
            return self._named(name, inner)
        return self._named(f"{name}[axis={_axes_text(axes)}]", inner)

    def _print_MatMul(self, expr):
        a, b = expr.args
        return self._row(self.parenthesize(a, PRECEDENCE["Mul"]), "@",
                         self.parenthesize(b, PRECEDENCE["Mul"]))

    def _print_Transpose(self, expr):
        msup = self.dom.createElement("msup")
        msup.appendChild(self.parenthesize(expr.args[0], PRECEDENCE["Pow"]))
        mi = self.dom.createElement("mi")
        mi.appendChild(self.dom.createTextNode("T"))
        msup.appendChild(mi)
        return msup

    def _print_Softmax(self, expr):
        return self._named("softmax", expr.args[0])

    def _print_LogSoftmax(self, expr):
        return self._named("log_softmax", expr.args[0])

    def _print_OneHot(self, expr):
        return self._named("onehot", expr.args[0])

    def _print_ValidLabel(self, expr):
        # masks multiply other factors: parenthesised, as in the text form "(t != -1)"
        return self._paren_comma_separated(sympy.Ne(expr.args[0], -1))

    def _print_Heaviside(self, expr):
        return self._paren_comma_separated(sympy.Gt(expr.args[0], 0))

    def _print_Absolute(self, expr):
        return self._print(sympy.Abs(expr.args[0], evaluate=False))

    def _print_SoftmaxCrossEntropy(self, expr):
        return self._named("softmax_cross_entropy", expr.args[0], expr.args[1])

    def _print_KernelBase(self, expr):
        return self._named(expr.kernel, *_kernel_arguments(expr))

    def _print_ReduceMax(self, expr):
        return self._reduction(expr.method, expr.args[0], expr.args[1])

    _print_ReduceMin = _print_ReduceMax

    def _print_FirstExtremum(self, expr):
        kind = "argmax" if bool(expr.args[2]) else "argmin"
        return self._named("onehot", sympy.Function(kind)(expr.args[0]))

    def _print_StopGradient(self, expr):
        return self._print(expr.args[0])

    _print_AsNumber = _print_StopGradient

    def _print_Sign(self, expr):
        return self._named("sign", expr.args[0])

    def _print_Maximum(self, expr):
        return self._named("maximum", *expr.args)

    def _print_Minimum(self, expr):
        return self._named("minimum", *expr.args)

    def _print_IsGreater(self, expr):
        return self._paren_comma_separated(sympy.Gt(*expr.args, evaluate=False))

    def _print_IsLessEqual(self, expr):
        return self._paren_comma_separated(sympy.Le(*expr.args, evaluate=False))

    def _print_Truncate(self, expr):
        return self._named("trunc", expr.args[0])

    def _print_atan2(self, expr):
        # SymPy's is arctan(y, x), as if arctan took two arguments
        return self._named("atan2", *expr.args)


def as_mathml(expr: sympy.Expr, shapes: Shapes) -> str:
    with distribute(False):
        return FormulaMathMLPrinter().doprint(readable(expr, shapes))
