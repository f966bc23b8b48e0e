"""The command line: compile, show, help, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT

from symcompile.tools.cli import main

MODEL = str(ROOT / "examples" / "linear_regression.py")


def test_compile_writes_the_module(tmp_path, capsys):
    assert main(["compile", MODEL, "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "compiled linear_regression: 5 nodes, 2 parameters" in out
    text = (tmp_path / "linear_regression.py").read_text()
    assert "def sgd_step(" in text and "Regenerate: symcompile compile" in text


def test_compile_options(tmp_path, capsys):
    assert main(["compile", MODEL, "-o", str(tmp_path), "--name", "lin", "--solver", "none",
                 "--dtype", "float64"]) == 0
    text = (tmp_path / "lin.py").read_text()
    assert "def sgd_step(" not in text and "DTYPE = numpy.float64" in text


def test_show_prints_derivatives_and_gradient_source(capsys):
    assert main(["show", MODEL]) == 0
    out = capsys.readouterr().out
    assert "d loss / d a = mean(-2*x*(y_true - (a*x + b)))" in out
    assert "d loss / d b = mean(-2*(y_true - (a*x + b)))" in out
    assert "def gradient(" in out and "# --- backward ---" in out


def test_show_latex_and_function(capsys):
    assert main(["show", MODEL, "--latex", "--function", "sgd_step"]) == 0
    out = capsys.readouterr().out
    assert r"\operatorname{mean}" in out and "def sgd_step(" in out


@pytest.mark.parametrize("argv,message", [
    (["compile", "missing.py"], "no such model file"),
    (["show", str(ROOT / "README.md")], "running the model file raised SyntaxError"),
    (["show", MODEL, "--function", "nope"], "no function 'nope'"),
])
def test_errors_are_one_line_without_traceback(argv, message, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_model_without_build_and_build_that_raises(tmp_path, capsys):
    no_build = tmp_path / "nobuild.py"
    no_build.write_text("x = 1\n")
    assert main(["compile", str(no_build)]) == 1
    assert "no build() function" in capsys.readouterr().err
    raising = tmp_path / "raising.py"
    raising.write_text("def build():\n    raise RuntimeError('boom')\n")
    assert main(["compile", str(raising)]) == 1
    assert "build() raised RuntimeError: boom" in capsys.readouterr().err
    with pytest.raises(Exception, match="boom"):
        main(["--debug", "compile", str(raising)])


def test_main_block_of_the_model_file_is_not_run(tmp_path, capsys):
    model = tmp_path / "model.py"
    model.write_text(
        "import symcompile as nn\nimport symcompile.functions as F\n"
        "def build():\n    return F.sum(nn.Variable((2,), need_grad=True))\n"
        "if __name__ == '__main__':\n    raise SystemExit('main ran')\n")
    assert main(["compile", str(model), "-o", str(tmp_path / "out")]) == 0


@pytest.mark.parametrize("command", [[], ["compile"], ["show"], ["check"]])
def test_help(command):
    done = subprocess.run([sys.executable, "-m", "symcompile", *command, "--help"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0
    assert "usage: symcompile" in done.stdout and "trust" in done.stdout


NO_PARAMETERS = ("import symcompile as nn\nimport symcompile.functions as F\n"
                 "def build():\n    x = nn.Variable((3,))\n    return F.sum(F.mul2(x, x))\n")


def test_check_of_a_graph_without_gradients_says_so(tmp_path, capsys):
    model = tmp_path / "constant.py"
    model.write_text(NO_PARAMETERS)
    assert main(["check", str(model)]) == 1
    err = capsys.readouterr().err
    assert (f"symcompile check: error: {model}'s graph has no parameters or need_grad "
            "inputs to check") in err
    assert "need_grad=True" in err and "Traceback" not in err and err.count("\n") == 1
    # the same for the generated module, checked as it is
    assert main(["compile", str(model), "-o", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    module = tmp_path / "out" / "constant.py"
    assert main(["check", str(module)]) == 1
    assert f"{module}'s graph has no parameters or need_grad inputs" in capsys.readouterr().err


def test_check_of_a_need_grad_input_without_parameters(tmp_path, capsys):
    model = tmp_path / "input_only.py"
    model.write_text(NO_PARAMETERS.replace("nn.Variable((3,))",
                                           "nn.Variable((3,), need_grad=True)"))
    assert main(["check", str(model)]) == 0
    assert "\nx " in capsys.readouterr().out


@pytest.mark.parametrize("option,value,message", [
    ("--tolerance", "-1", "expected a finite number > 0, got '-1'"),
    ("--tolerance", "0", "expected a finite number > 0, got '0'"),
    ("--tolerance", "nan", "expected a finite number > 0, got 'nan'"),
    ("--tolerance", "inf", "expected a finite number > 0, got 'inf'"),
    ("--tolerance", "tight", "expected a finite number > 0, got 'tight'"),
    ("--samples", "0", "expected an integer >= 1, got '0'"),
    ("--samples", "-5", "expected an integer >= 1, got '-5'"),
    ("--samples", "2.5", "expected an integer >= 1, got '2.5'"),
])
def test_check_options_out_of_range_are_usage_errors(option, value, message, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["check", MODEL, option, value])
    assert caught.value.code == 2
    assert f"argument {option}: {message}" in capsys.readouterr().err


def test_a_full_disk_names_the_module_that_could_not_be_written(tmp_path, capsys,
                                                                 monkeypatch):
    import errno
    import os

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    out = tmp_path / "out"
    monkeypatch.setattr(os, "replace", full)
    assert main(["compile", MODEL, "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert (f"symcompile compile: error: [Errno {errno.ENOSPC}] cannot write "
            f"{out / 'linear_regression.py'}: No space left on device; free some "
            "space") in err
    assert err.count("\n") == 1 and list(out.iterdir()) == []  # no temporary left
