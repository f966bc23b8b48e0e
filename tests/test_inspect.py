"""Inspecting a compiled graph: `show`'s derivatives, listing and source, `check`, the
expression-size guard and the fusion limit."""

from __future__ import annotations

import re
import shutil

import pytest
import sympy
from conftest import ROOT
from gradcheck import check_gradients

import symcompile as nn
import symcompile.functions as F
from symcompile.tools.cli import main
from symcompile.tools.model_file import load_loss

LINREG = ROOT / "examples" / "linear_regression.py"
DIGITS = ROOT / "examples" / "digits_mlp.py"


def _sections(text: str) -> dict[str, list[str]]:
    """`show`'s output split at its "== title ==" lines."""
    sections, current = {}, None
    for line in text.splitlines():
        heading = re.fullmatch(r"== (.*) ==", line)
        if heading:
            current = heading.group(1)
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    return sections


def _as_sympy(text: str) -> sympy.Expr:
    """A printed formula as SymPy; mean over the batch is linear, so comparing the
    summands pointwise is the stricter test."""
    return sympy.sympify(text, locals={"mean": lambda inner: inner,
                                       "a": sympy.Symbol("a"), "b": sympy.Symbol("b")})


def test_show_prints_the_tutorials_derivatives_and_the_modules_own_source(capsys):
    assert main(["show", str(LINREG), "--color", "never"]) == 0
    sections = _sections(capsys.readouterr().out)
    printed = dict(line.split(" = ", 1) for line in sections["derivatives"] if line)
    expected = {"d loss / d a": "mean(-2*x*(y_true - (a*x + b)))",
                "d loss / d b": "mean(-2*(y_true - (a*x + b)))"}
    assert printed.keys() == expected.keys()
    for key, formula in expected.items():
        assert sympy.simplify(_as_sympy(printed[key]) - _as_sympy(formula)) == 0, key
    [title] = [t for t in sections if t.startswith("gradient (from ")]
    module_path = title[len("gradient (from "):-1]
    code = "\n".join(sections[title]).strip("\n")
    assert code.startswith("def gradient(")
    with open(module_path, encoding="utf-8") as handle:
        assert code in handle.read()


@pytest.mark.parametrize("style,marker", [("pretty", "mean(-2⋅x⋅(y_true - (a⋅x + b)))"),
                                          ("latex", r"\operatorname{mean}")])
def test_show_styles_from_python(style, marker, tmp_path, capsys):
    result = nn.compile(load_loss(str(LINREG)), name="lin", output_dir=tmp_path)
    result.show(style=style, function="sgd_step")
    out = capsys.readouterr().out
    assert marker in out and "def sgd_step(" in out and "== sizes ==" in out


# What each kind of graph line must find on the source line it points to.
EXPECTED_CALL = {"input": "nn.Variable(", "parameter": "PF.affine(", "affine": "PF.affine(",
                 "tanh": "F.tanh(", "softmax_cross_entropy": "F.softmax_cross_entropy(",
                 "mean": "F.mean("}


def test_digits_listing_points_to_the_right_source_lines(capsys):
    assert main(["show", str(DIGITS), "--color", "never"]) == 0
    listing = [line for line in _sections(capsys.readouterr().out)["graph"][1:]
               if "=" in line]
    source = DIGITS.read_text().splitlines()
    assert len(listing) == 15  # 2 inputs, 6 parameters, 7 functions
    for line in listing:
        op = re.search(r"= (\w+)\(", line).group(1)
        number = int(re.search(r"digits_mlp\.py:(\d+)$", line).group(1))
        assert EXPECTED_CALL[op] in source[number - 1], (line, source[number - 1])


@pytest.mark.parametrize("target", ["examples/linear_regression.py", "examples/digits_mlp.py",
                                    "generated/linear_regression.py",
                                    "generated/digits_mlp.py"])
def test_check_passes_on_the_examples_and_their_modules(target, capsys):
    assert main(["check", str(ROOT / target)]) == 0
    out = capsys.readouterr().out
    assert "FAILED" not in out and out.count(" ok") >= 2


def test_check_fails_naming_the_parameter_of_a_corrupted_gradient(tmp_path, capsys):
    corrupted = tmp_path / "linear_regression.py"
    text = (ROOT / "generated" / "linear_regression.py").read_text()
    wrong = text.replace("    g_b = -_t1*", "    g_b = -1.1*_t1*")
    assert wrong != text
    corrupted.write_text(wrong)
    assert main(["check", str(corrupted)]) == 1
    captured = capsys.readouterr()
    assert re.search(r"^a .* ok$", captured.out, re.M)
    assert re.search(r"^b .* FAILED$", captured.out, re.M)
    assert "gradient of b does not match finite differences" in captured.err


def test_check_from_python():
    loss = load_loss(str(DIGITS))
    report = nn.check_gradient(loss, seed=3)
    assert len(report) == 6 and all(passed for _, _, passed in report.values())
    assert max(relative for _, relative, _ in report.values()) < 1e-5


def test_check_exit_status_in_a_subprocess(tmp_path):
    """The standalone trainer can check itself: exit status and message from a shell."""
    import subprocess
    import sys

    shutil.copy(ROOT / "generated" / "linear_regression.py", tmp_path / "mod.py")
    done = subprocess.run([sys.executable, "-m", "symcompile", "check", "mod.py",
                           "--samples", "5"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "gradient check of mod.py (float32)" in done.stdout


def _chain(length: int):
    nn.clear_parameters()
    x = nn.Variable((3, 2), need_grad=True)
    x.name = "x"
    h = x
    for _ in range(length):
        h = F.sin(F.mul_scalar(h, 1.01))
    return F.sum(h), x


def _wide(leaves: int):
    """A balanced sum of `leaves` terms: shallow, but many operations."""
    nn.clear_parameters()
    x = nn.Variable((3,), need_grad=True)
    terms = [F.sin(F.mul_scalar(x, 1 + i / leaves)) for i in range(leaves)]
    while len(terms) > 1:
        terms = [F.add2(a, b) for a, b in zip(terms[::2], terms[1::2], strict=True)]
    return F.sum(terms[0])


@pytest.mark.parametrize("build", [lambda: _chain(60)[0], lambda: _wide(512)],
                         ids=["deep", "wide"])
def test_the_hard_limits_cut_what_any_fusion_limit_would_fuse(build, tmp_path, rng):
    """Fusing everything (a fusion limit of 10**9) still stops before an expression SymPy
    could not differentiate: 120 nested functions, or a sum of 512 terms."""
    loss = build()
    result = nn.compile(loss, output_dir=tmp_path, dtype="float64", fusion_limit=10**9)
    assert len(result.program.forward) > 1  # cut into several statements
    x = next(iter(result.module.INPUTS))
    check_gradients(result.module, {x: rng.normal(size=result.module.INPUTS[x]["shape"])})


def test_expression_size_guard_names_the_node_and_the_fix(tmp_path, monkeypatch):
    """A single function whose expression alone passes the hard limit stops compilation,
    naming it, where it was called and the fix."""
    from symcompile.passes import lowering

    monkeypatch.setattr(lowering, "EXPRESSION_OPS_LIMIT", 2)
    nn.clear_parameters()
    x, y = nn.Variable((3,), need_grad=True), nn.Variable((3,))
    loss = F.sum(F.huber_loss(x, y))
    with pytest.raises(nn.ExpressionTooLarge) as caught:
        nn.compile(loss, output_dir=tmp_path)
    message = str(caught.value)
    assert re.search(r"^huber_loss '%\d+' at (tests/)?test_inspect\.py:\d+: on its own "
                     r"\(every input already an array\) its expression has \d+ operations",
                     message), message
    assert "build this function from smaller ones" in message


def test_fusion_limit_zero_gives_one_statement_per_function(tmp_path, rng):
    loss, x = _chain(3)
    result = nn.compile(loss, output_dir=tmp_path, dtype="float64", fusion_limit=0)
    forward = result.function_source("forward")
    assert forward.count("numpy.sin(") == 3
    check_gradients(result.module, {"x": rng.normal(size=(3, 2))})
    fused = nn.compile(loss, name="fused", output_dir=tmp_path, dtype="float64")
    assert fused.function_source("forward").count("\n    ") < forward.count("\n    ")


@pytest.mark.parametrize("bad", [-1, 2.5, True, "10"])
def test_fusion_limit_must_be_a_non_negative_integer(bad, tmp_path):
    loss, _ = _chain(1)
    with pytest.raises(ValueError, match="fusion_limit must be an integer >= 0"):
        nn.compile(loss, output_dir=tmp_path, fusion_limit=bad)


def test_regenerate_command_keeps_non_default_options(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["compile", "examples/linear_regression.py", "-o", str(tmp_path),
                 "--solver", "adam", "--dtype", "float64", "--fusion-limit", "0"]) == 0
    header = (tmp_path / "linear_regression.py").read_text().splitlines()[:8]
    assert (f"# Regenerate: symcompile compile examples/linear_regression.py -o "
            f"{tmp_path.as_posix()}/ --solver adam --dtype float64 --fusion-limit 0"
            in header)


def test_show_sizes_report_every_phase(capsys):
    assert main(["show", str(LINREG)]) == 0
    sizes = _sections(capsys.readouterr().out)["sizes"]
    assert re.match(r"5 nodes in \d+ fused forward statements", sizes[0])
    assert re.match(r"\d+ operations before common-subexpression elimination, \d+ after",
                    sizes[1])
    for phase in ("capture", "lower", "differentiate", "cse", "schedule", "print", "verify",
                  "total"):
        assert f"{phase} " in sizes[2]


def test_progress_reports_each_phase_in_order_with_node_counts(tmp_path):
    loss, _ = _chain(2)  # 4 nodes and the sum
    calls = []
    nn.compile(loss, output_dir=tmp_path, progress=lambda *call: calls.append(call))
    phases = list(dict.fromkeys(phase for phase, _, _ in calls))
    assert phases == ["lower", "differentiate", "optimize", "schedule", "emit"]
    lowered = [(done, total) for phase, done, total in calls if phase == "lower"]
    assert lowered == [(n, 5) for n in range(6)]
    differentiated = [done for phase, done, _ in calls if phase == "differentiate"]
    assert differentiated == sorted(differentiated) and differentiated[-1] == 5


def test_progress_line_shows_on_a_terminal_after_a_second_only():
    import io

    from symcompile.common.progress import ProgressLine

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    now = [0.0]
    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        now[0] = 0.0
        with ProgressLine(stream, "model.py", clock=lambda: now[0]) as progress:
            progress("lower", 10, 300)  # within the first second: nothing yet
            now[0] = 1.5
            progress("differentiate", 120, 300)
            now[0] = 1.52
            progress("differentiate", 121, 300)  # too soon after the last update
    text = terminal.getvalue()
    assert "lowering" not in text and "121/300" not in text
    assert "\r\x1b[Ksymcompile: differentiating model.py: 120/300 nodes... 1.5 s" in text
    assert text.endswith("\r\x1b[K")  # erased at the end
    assert pipe.getvalue() == ""
    quick = Terminal()
    with ProgressLine(quick, "model.py") as progress:
        progress("lower", 1, 2)
    assert quick.getvalue() == ""  # a fast compile leaves no trace
