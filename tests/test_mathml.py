"""The MathML of the HTML page shows the formula the compiler differentiated.

MathML groups only what the reader sees grouped: brackets (<mo>(</mo>, <mfenced>), a
fraction bar, a radical, a superscript. Each formula is read back into infix text by
that rule alone (an <mrow> adds no brackets: it is invisible), parsed by SymPy and
compared with the expression it was printed from.
"""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET

import pytest
import sympy
from sympy.core.parameters import distribute

import symcompile as nn
import symcompile.functions as F
from symcompile.display import html_report
from symcompile.ir import formula
from symcompile.ir.primitives import Shapes

a, b, c, d, x, y, z = sympy.symbols("a b c d x y z")
y_true = sympy.Symbol("y_true")
NAMES = {s.name: s for s in (a, b, c, d, x, y, z, y_true)}
# display functions of formula.py, unknown to SymPy: compared as undefined functions
FUNCTIONS = {"mean": sympy.Function("mean"), "sum": sympy.Function("sum")}

# MathML entities SymPy writes (XML knows none of them) and operators, as infix text
ENTITIES = {"&InvisibleTimes;": "*", "&ExponentialE;": "E", "&ImaginaryI;": "I",
            "&pi;": "pi", "&#xB7;": "*", "&#x2062;": "*", "&#x2212;": "-"}
OPERATORS = {"(": "(", ")": ")", ",": ",", "+": "+", "-": "-", "*": "*", "/": "/",
             "@": "*", "\u2212": "-", "\u00d7": "*", "\u22c5": "*", "\u00b7": "*",
             "|": "|"}  # bars: read with the group they enclose (Abs)


def infix(mathml: str) -> str:
    """Presentation MathML as infix text with exactly the grouping a reader sees."""
    for entity, text in ENTITIES.items():
        mathml = mathml.replace(entity, text)
    return _infix(ET.fromstring(f"<math>{mathml}</math>"))


def _infix(node) -> str:
    kids = list(node)
    parts = [_infix(kid) for kid in kids]
    if node.tag in ("math", "mrow", "mstyle"):
        bars = [k for k in kids if k.tag == "mo" and (k.text or "").strip() == "|"]
        if len(bars) == 2 and kids[0] is bars[0] and kids[-1] is bars[1]:
            return f"Abs({' '.join(parts[1:-1])})"
        return " ".join(parts)
    if node.tag == "mfenced":
        opening, closing = node.get("open", "("), node.get("close", ")")
        return f"{opening}{', '.join(parts)}{closing}"
    if node.tag == "mi":
        return node.text.strip()
    if node.tag == "mn":
        return node.text.strip()
    if node.tag == "mo":
        return OPERATORS[node.text.strip()]
    if node.tag == "mfrac":  # the bar groups numerator and denominator
        return f"(({parts[0]})/({parts[1]}))"
    if node.tag == "msup":  # the superscript is grouped, the base is not
        return f"{parts[0]}**({parts[1]})"
    if node.tag == "msqrt":
        return f"sqrt({' '.join(parts)})"
    if node.tag == "msub":  # only in names that SymPy splits: y_true
        return f"{parts[0]}_{parts[1]}"
    if node.tag == "mroot":
        return f"root({parts[0]}, {parts[1]})"
    raise AssertionError(f"unexpected MathML element <{node.tag}>")


def parse(text: str) -> sympy.Expr:
    return sympy.parse_expr(text, local_dict={**NAMES, **FUNCTIONS})


def assert_same(printed: sympy.Expr, expected: sympy.Expr, mathml: str) -> None:
    difference = sympy.expand(printed - expected)
    if difference != 0:
        difference = sympy.simplify(difference)
    assert difference == 0, (f"the MathML reads as {printed}, not {expected}:\n"
                             f"{infix(mathml)}\n{mathml}")


def displayed(expr: sympy.Expr) -> sympy.Expr:
    """What the formula shows: `readable`'s form, with its sums and means as functions."""
    with distribute(False):
        shown = formula.readable(expr, Shapes())
    return (shown.replace(formula.SumOf, lambda inner, count, axes: FUNCTIONS["sum"](inner))
            .replace(formula.MeanOf, lambda inner, axes: FUNCTIONS["mean"](inner)))


def check(expr: sympy.Expr) -> None:
    """The MathML, and the plain text the page shows next to it, read as `expr`."""
    expected = displayed(expr)
    mathml = formula.as_mathml(expr, Shapes())
    assert_same(parse(infix(mathml)), expected, mathml)
    text = formula.as_text(expr, Shapes())
    assert_same(parse(text), expected, text)


with distribute(False):  # the unexpanded shapes `readable` keeps
    TRICKY = [
        y_true - (a * x + b),                         # the linear regression's residual
        -2 * x * (y_true - (a * x + b)),
        -(a + b),
        -(a + b) + c,
        c - (a - b),
        a - (b - (c - d)),                            # nested minus signs
        a - (b + c) - (d - x),
        -(a - b) * (c - d),
        -(a * (b + c)),
        a - b * c,
        (a - b) * c,
        2 * (a + b),
        -2 * (a - b),
        sympy.Rational(1, 2) * (a - b),
        sympy.Float(0.5) * (a + b),
        sympy.Float(-0.25) * (a - b),
        (a + b) ** 2,                                 # powers of sums
        (a - b) ** 3,
        (-(a + b)) ** x,
        (-x) ** y,
        (a * b) ** c,
        (a ** b) ** c,
        x ** (a + b),
        (a - b) ** -2,
        x ** 2 - (a + b) ** 2,
        (a + b) / (c - d),                            # quotients of sums
        a / (b + c),
        (a + b) / 2,
        -(a + b) / c,
        a - x / (b + c),
        1 / (a - (b + c)),
        sympy.exp(a + b),                             # functions of sums
        sympy.exp(-(a + b)),
        sympy.tanh(a - (b - c)),
        sympy.log(a * b + c),
        sympy.sqrt(a + b),
        1 / sympy.sqrt(a - b),
        (a + b) ** sympy.Rational(3, 2),
        sympy.Abs(a - (b + c)),
        FUNCTIONS["mean"](-2 * x * (y_true - (a * x + b))),
        formula.MeanOf(-(a - (b + c)), sympy.Tuple()),
        formula.SumOf(x - (y + z), sympy.Integer(4), sympy.Tuple()),
        a - formula.SumOf(x - (y + z), sympy.Integer(4), sympy.Tuple()),
    ]


@pytest.mark.parametrize("expr", TRICKY, ids=[str(e) for e in TRICKY])
def test_grouping_of_tricky_expressions(expr):
    check(expr)


def random_expression(rng: random.Random, depth: int) -> sympy.Expr:
    """A random expression of sums, differences, negations, products, quotients, powers
    and functions, built unexpanded."""
    if depth == 0 or rng.random() < 0.2:
        return rng.choice([a, b, c, d, x, y, sympy.Integer(rng.randint(2, 3))])
    left, right = random_expression(rng, depth - 1), random_expression(rng, depth - 1)
    kind = rng.randrange(8)
    if kind == 0:
        return left + right
    if kind == 1:
        return left - right
    if kind == 2:
        return -left
    if kind == 3:
        return left * right
    if kind == 4:
        return left / right
    if kind == 5:
        return left ** rng.choice([2, 3, -1, -2, y])
    if kind == 6:
        # not odd functions: SymPy's tanh(-u) -> -tanh(u) can recurse forever when u is
        # an unexpanded product that could lose a minus sign both ways
        return rng.choice([sympy.exp, sympy.log])(left)
    return rng.choice([2, -3, sympy.Rational(1, 3)]) * left


def test_grouping_of_random_expressions():
    rng = random.Random(20240611)
    with distribute(False):
        expressions = [random_expression(rng, 4) for _ in range(150)]
    for expr in expressions:
        if expr.has(sympy.zoo, sympy.nan):
            continue
        check(expr)


def test_compiled_linear_regression_reads_as_its_text_form(tmp_path):
    xv, yv = nn.Variable((8, 1)), nn.Variable((8, 1))
    xv.name, yv.name = "x", "y_true"
    av = nn.parameter.get_parameter_or_create("a", (1, 1))
    bv = nn.parameter.get_parameter_or_create("b", (1, 1))
    loss = F.mean(F.pow_scalar(F.sub2(yv, F.add2(F.mul2(av, xv), bv)), 2))
    result = nn.compile(loss, name="lin_mathml", output_dir=tmp_path, solver="none")
    found = {d.name: d for d in html_report.derivatives(result)}
    assert found["a"].text == "mean(-2*x*(y_true - (a*x + b)))"
    for derivative in found.values():
        assert_same(parse(infix(derivative.mathml)), parse(derivative.text),
                    str(derivative.mathml))


def small_graphs():
    """Graphs whose derivatives mix differences of sums, quotients, powers and
    functions of sums, all reduced over every axis (so the text form parses)."""
    def leaves():
        p = nn.parameter.get_parameter_or_create("p", (4,))
        q = nn.parameter.get_parameter_or_create("q", (4,))
        u = nn.Variable((4,))
        u.name = "u"
        return p, q, u

    def quotient():
        p, q, u = leaves()
        return F.sum(F.div2(F.sub2(u, F.add2(p, q)), F.add2(q, u)))

    def power():
        p, q, u = leaves()
        return F.mean(F.pow_scalar(F.sub2(u, F.mul2(p, F.add2(q, u))), 3))

    def functions():
        p, q, u = leaves()
        return F.sum(F.tanh(F.sub2(u, F.sub2(p, q))))

    def exponential():
        p, q, u = leaves()
        return F.mean(F.log(F.add_scalar(F.exp(F.sub2(F.mul2(p, u), q)), 1.0)))

    def nested_minus():
        p, q, u = leaves()
        return F.sum(F.mul2(F.sub2(u, F.sub2(p, F.sub2(q, u))), F.r_sub_scalar(p, 2.0)))

    return [quotient, power, functions, exponential, nested_minus]


@pytest.mark.parametrize("build", small_graphs(), ids=lambda f: f.__name__)
def test_compiled_graphs_read_as_their_text_form(build, tmp_path):
    result = nn.compile(build(), name=f"g_{build.__name__}", output_dir=tmp_path,
                        solver="none")
    derivatives = html_report.derivatives(result)
    assert derivatives
    for derivative in derivatives:
        assert_same(parse(infix(derivative.mathml)), parse(derivative.text),
                    str(derivative.mathml))


def test_reader_sees_missing_brackets():
    """The reader is strict: the MathML that SymPy's own printer writes for the
    residual reads as the wrong formula."""
    from sympy.printing.mathml import MathMLPresentationPrinter

    with distribute(False):
        residual = y_true - (a * x + b)
        wrong = MathMLPresentationPrinter().doprint(residual)
    assert sympy.expand(parse(infix(wrong)) - residual) != 0
    check(residual)
