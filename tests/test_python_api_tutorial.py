"""nnabla's Python API tutorial (tests/tutorials/python_api_nnabla.py) with the imports
swapped for symcompile's prints what nnabla 1.39 printed (python_api_nnabla.out, recorded
from the same script; set SYMCOMPILE_NNABLA_PYTHON to check the record against nnabla):
the same text, and the same numbers to float32 rounding, from the NdArray cells through
the gradients it prints, the imperative cells, 2000 Adam steps and the reloaded
parameters."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

TUTORIALS = Path(__file__).resolve().parent / "tutorials"
SCRIPT = TUTORIALS / "python_api_nnabla.py"
RECORDED = TUTORIALS / "python_api_nnabla.out"
NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
NUMBER = re.compile(r"-?\d+\.?\d*(?:e[-+]?\d+)?")
# What may differ: addresses in reprs, and the first NdArray's uninitialised values
# (nnabla's are whatever its memory held; symcompile's are zeros).
ADDRESS = re.compile(r"0x[0-9a-f]+")


def run(source: str, folder: Path, python: str = sys.executable) -> str:
    script = folder / "python_api.py"
    script.write_text(source, encoding="utf-8")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONWARNINGS="ignore",
               SYMCOMPILE_CACHE_DIR=str(folder / "cache"))
    done = subprocess.run([python, str(script)], capture_output=True, text=True, timeout=600,
                          cwd=folder, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def tokens(output: str) -> tuple[list[str], list[float]]:
    """The printed text without its numbers (split at white space, so that a float64 and
    a float32 array printed with other widths compare equal), and the numbers."""
    lines = output.split("\n")
    first = next(i for i, line in enumerate(lines) if line.startswith("[Substituting"))
    text = ADDRESS.sub("0x", "\n".join(lines[first:]))  # (before: the uninitialised array)
    return NUMBER.sub(" # ", text).split(), [float(n) for n in NUMBER.findall(text)]


def assert_same_output(got: str, expected: str) -> None:
    got_text, got_numbers = tokens(got)
    expected_text, expected_numbers = tokens(expected)
    assert got_text == expected_text
    # float32 rounding; after 2000 Adam steps the losses differ by up to 1.3e-5 relative
    np.testing.assert_allclose(got_numbers, expected_numbers, rtol=1e-4, atol=1e-6)


def swapped(source: str) -> str:
    return source.replace("import nnabla", "import symcompile").replace(
        "from nnabla import", "from symcompile import")


def test_tutorial_prints_nnabla_s_output(tmp_path):
    source = SCRIPT.read_text(encoding="utf-8")
    assert "symcompile" not in source.split('"""')[2]  # the script is nnabla's
    assert_same_output(run(swapped(source), tmp_path), RECORDED.read_text(encoding="utf-8"))


def test_the_comparison_notices_a_different_number():
    expected = RECORDED.read_text(encoding="utf-8")
    changed = expected.replace("Loss@1999: 0.00042", "Loss@1999: 0.00052")
    assert changed != expected
    with pytest.raises(AssertionError):
        assert_same_output(changed, expected)


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set (a Python 3.10 "
                    "with `pip install nnabla`)")
def test_recorded_output_is_nnabla_s(tmp_path):
    assert_same_output(run(SCRIPT.read_text(encoding="utf-8"), tmp_path, NNABLA),
                       RECORDED.read_text(encoding="utf-8"))
