"""code_lines.fit: long generated statements continue inside their brackets, stay the same
Python, and never split a string."""

from __future__ import annotations

import ast
import io
import tokenize

import pytest

from symcompile.backends.code_lines import LINE_WIDTH, fit

STATEMENTS = [
    "refuse_argument('forward_saving', 'mlp_classifier_affine_W', mlp_classifier_affine_W, "
    "(32, 10), kind)",
    "_t3 = xp.astype(xp.astype(t_labels, xp.int32, copy=False) == xp.arange(10, "
    "device=device), dtype)",
    "return (loss, {" + ", ".join(f"'layer{i}/affine/W': layer{i}_affine_W" for i in range(8))
    + "})",
    # commas and brackets inside strings are not places to break
    "raise_(" + ", ".join(repr(f"a, b) [c, {i}") for i in range(8)) + ")",
    "values = [" + ", ".join(f"f(x{i}, y{i})" for i in range(20)) + "]",
    "x = y[" + ", ".join(f"i{i}" for i in range(30)) + "]",
    "z = f'{a}, {b}, {c}' + g(" + ", ".join(f"argument_{i}" for i in range(12)) + ")",
    # a trailing comma makes a tuple of one (forward_saving's saved values): it must stay
    "return loss, " + ", ".join(f"output_number_{i}" for i in range(4)) + ", ("
    "pack_padded_sequence_batch_sizes_of_a_long_name,)",
    "t = (" + ", ".join(f"item_{i}" for i in range(16)) + ",)",
    # a sum at the outermost level continues at its own signs, inside new parentheses
    "g_h = _t5*gamma1*g_h_2 - _t27*gamma1/50176/_t4**(3/2)*_t2 - _t26*_t6/50176 + "
    + " - ".join(f"-t_{i}*numpy.exp(-u_{i})" for i in range(6)),
    "w[...] -= " + " + ".join(f"f(a_{i}, b_{i})[1:-1]**-2" for i in range(8)),
]


def _same_python(a: str, b: str) -> bool:
    return ast.dump(ast.parse(a)) == ast.dump(ast.parse(b))


def _strings(statement: str) -> list[str]:
    tokens = tokenize.generate_tokens(io.StringIO(statement).readline)
    return [token.string for token in tokens if token.type == tokenize.STRING]


@pytest.mark.parametrize("column", [0, 4, 8])
@pytest.mark.parametrize("statement", STATEMENTS)
def test_fitted_statement_is_the_same_python_within_the_width(statement, column):
    """Every line within the width once the first starts at `column` (continuation lines
    are indented relative to it), the same syntax tree, each string literal whole."""
    text = fit(statement, column)
    assert ("\n" in text) == (column + len(statement) > LINE_WIDTH)
    assert _same_python(text, statement)
    for line in text.splitlines():
        assert column + len(line) <= LINE_WIDTH, line
    for literal in _strings(statement):
        assert literal in text


def test_a_statement_that_fits_is_left_alone():
    assert fit("y = f(a, b)", 8) == "y = f(a, b)"


def test_what_cannot_be_broken_is_left_alone():
    long_name = "x" * 120
    assert fit(f"y = {long_name}", 4) == f"y = {long_name}"
    assert fit("a = b\nc = d" + "e" * 100, 0) == "a = b\nc = d" + "e" * 100
    assert fit("s = '" + "word " * 30 + "'", 4) == "s = '" + "word " * 30 + "'"


def test_a_long_sum_continues_at_its_signs():
    statement = ("g_convolution = _t5*cnn_conv1_bn_gamma*g_batch_normalization - "
                 "_t24*cnn_conv1_bn_gamma/1024/_t4**(3/2)*_t2 - _t23*_t6/1024")
    assert fit(statement, 4) == (
        "g_convolution = (\n"
        "    _t5*cnn_conv1_bn_gamma*g_batch_normalization"
        " - _t24*cnn_conv1_bn_gamma/1024/_t4**(3/2)*_t2\n"
        "    - _t23*_t6/1024\n"
        ")")
    # unary signs (a leading minus, an exponent's) are not places to break
    assert fit("y = -" + "a" * 60 + "**-" + "b" * 40, 4) == "y = -" + "a" * 60 + "**-" + "b" * 40
