"""Run a script under real nnabla 1.39 (the Python SYMCOMPILE_NNABLA_PYTHON names) for the
differential tests, which compare what it prints with symcompile's numbers."""

from __future__ import annotations

import json
import os
import subprocess


def nnabla_rows(python: str, script: str, argument, cwd) -> list[dict]:
    """The JSON lines `script` prints when nnabla's `python` runs it with `argument` (as
    JSON) in `cwd`; fails the test, with nnabla's error, if it does not succeed."""
    done = subprocess.run([python, "-c", script, json.dumps(argument)], capture_output=True,
                          text=True, timeout=600, cwd=cwd,
                          env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
