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


def replay_row(text: str, row: dict, need_grad=None, namespace=None):
    """Evaluate the expression `text` as nnabla did for `row` (its "inputs" as float32
    leaves, and the cotangent "g" of the output) and run its backward pass: returns the
    output Variable and the leaves by name, to compare with the row's "out" and grads.
    `need_grad` names the leaves that get a gradient (default: all of them)."""
    import numpy as np

    import symcompile as nn
    import symcompile.functions as F

    nn.clear_parameters()
    leaves = {k: nn.Variable.from_numpy_array(np.array(v, np.float32),
                                              need_grad=need_grad is None or k in need_grad)
              for k, v in row["inputs"].items()}
    out = eval(text, {"F": F, "np": np, **(namespace or {}), **leaves})  # noqa: S307
    loss = F.sum(out * nn.Variable.from_numpy_array(np.array(row["g"], np.float32)))
    loss.forward()
    for v in leaves.values():
        v.grad.zero()
    loss.backward()
    return out, leaves
