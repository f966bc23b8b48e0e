"""Compile cost: graphs that used to blow SymPy up compile at default settings, deep
chains compile without raising the recursion limit, long compiles show progress, and a
cached graph runs without importing the compiler.

The graphs are the ones symbolic compilers choke on: nested transcendental functions
(each level of tanh(tanh(...)) copies everything beneath it into the derivative), a
recurrent state used by the next step, and chains thousands of nodes long.
"""

from __future__ import annotations

import functools
import io
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from gradcheck import check_gradients, compile_f64

import symcompile as nn
import symcompile.functions as F


def _mixed_chain(length: int, shape=(3, 2)):
    """tanh, *1.1, sin, +0.1, repeated: the mix that made fusion explode."""
    x = nn.Variable(shape, need_grad=True)
    x.name = "x"
    h = x
    for i in range(length):
        step = i % 4
        h = F.tanh(h) if step == 0 else h * 1.1 if step == 1 else F.sin(h) if step == 2 \
            else h + 0.1
    return F.sum(h), x


def _rnn(steps: int):
    """y = tanh(0.5*y + x), unrolled: the state is read by the next step."""
    x, y = nn.Variable((3, 2), need_grad=True), nn.Variable((3, 2), need_grad=True)
    x.name, y.name = "x", "y0"
    for _ in range(steps):
        y = F.tanh(0.5 * y + x)
    return F.sum(y), x, y


def test_a_chain_of_40_mixed_elementwise_functions_compiles_and_is_right(tmp_path, rng):
    loss, _ = _mixed_chain(40)
    result = compile_f64(loss, tmp_path)
    check_gradients(result.module, {"x": rng.normal(size=(3, 2))})


def test_ten_nested_tanh_compile_at_the_default_fusion_limit(tmp_path, rng):
    x = nn.Variable((3, 2), need_grad=True)
    x.name = "x"
    h = x
    for _ in range(10):
        h = F.tanh(h)
    result = compile_f64(F.sum(h), tmp_path)
    check_gradients(result.module, {"x": rng.normal(size=(3, 2))})
    # the forward pass stays fused: a few statements, not one per tanh
    assert result.function_source("forward").count("numpy.tanh(") == 10
    assert len(result.program.forward) <= 3


def test_an_rnn_unrolled_50_steps_compiles_and_is_right(tmp_path, rng):
    loss, _, _ = _rnn(50)
    result = compile_f64(loss, tmp_path)
    check_gradients(result.module, {"x": 0.5 * rng.normal(size=(3, 2)),
                                    "y0": rng.normal(size=(3, 2))})


def test_a_chain_of_4000_nodes_compiles_within_the_recursion_limit(tmp_path, rng):
    """Every pass is iterative or bounded by the region size: the default recursion
    limit (1000) is enough for a chain of 4,000 functions, and the gradient is right
    (bench/compile.py times chains up to 10,000; this test took 40 s of the suite)."""
    limit = sys.getrecursionlimit()
    loss, _ = _mixed_chain(4_000, shape=(2,))
    result = compile_f64(loss, tmp_path)
    assert sys.getrecursionlimit() == limit
    module = result.module
    x = 0.3 * rng.normal(size=(2,))
    value, gradient = module.gradient(x)
    eps = 1e-6
    for i in range(2):
        step = np.zeros(2)
        step[i] = eps
        numeric = (module.forward(x + step) - module.forward(x - step)) / (2 * eps)
        assert gradient[i] == pytest.approx(numeric, rel=1e-5, abs=1e-8)
    assert np.isfinite(value)


def test_the_first_forward_shows_progress_on_a_terminal(monkeypatch):
    """The nnabla loop compiles on the first forward(); on a terminal a line on stderr
    says what it is doing (here shown at once instead of after a second)."""
    from symcompile.common import progress
    from symcompile.runtime import execution as runtime

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(runtime, "ProgressLine",
                        functools.partial(progress.ProgressLine, delay=0.0))
    loss, x = _mixed_chain(8)
    x.d = np.ones((3, 2))
    loss.forward()
    text = terminal.getvalue()
    assert "\r\x1b[Ksymcompile: lowering the graph built at " in text
    assert "nodes..." in text and "differentiating" in text
    assert text.endswith("\r\x1b[K")  # erased when the compile is done


_CACHED_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import symcompile as nn
    import symcompile.functions as F
    import symcompile.parametric_functions as PF
    import symcompile.solvers as S

    x, t = nn.Variable((4, 3)), nn.Variable((4, 1))
    x.d = np.linspace(-1, 1, 12).reshape(4, 3)
    t.d = np.ones((4, 1))
    loss = F.mean(F.squared_error(PF.affine(F.tanh(PF.affine(x, 5, name="l1")), 1,
                                            name="l2"), t))
    solver = S.Adam(alpha=0.01)
    solver.set_parameters(nn.get_parameters())
    losses = []
    for _ in range(3):
        loss.forward()
        solver.zero_grad()
        loss.backward()
        solver.update()
        losses.append(float(loss.d))
    print(json.dumps({"losses": losses,
                      "loaded": [m for m in ("sympy", "jinja2") if m in sys.modules]}))
""")


def test_a_cached_graph_trains_without_importing_sympy_or_jinja2(tmp_path):
    """The second run of a script finds its modules in the runtime cache: it never
    imports the compiler, SymPy or jinja2, and computes the same numbers."""
    script = tmp_path / "train.py"
    script.write_text(_CACHED_SCRIPT)
    import os

    env = {**os.environ, "SYMCOMPILE_CACHE_DIR": str(tmp_path / "cache")}
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=300)
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout))
    first, second = runs
    assert set(first["loaded"]) == {"sympy", "jinja2"}  # it compiled
    assert second["loaded"] == []
    assert second["losses"] == first["losses"]


def test_importing_symcompile_does_not_import_the_compiler():
    done = subprocess.run(
        [sys.executable, "-c", "import sys, symcompile, symcompile.functions, "
         "symcompile.parametric_functions, symcompile.solvers; "
         "print([m for m in ('sympy', 'jinja2', 'symcompile.compiler.pipeline') "
         "if m in sys.modules])"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
