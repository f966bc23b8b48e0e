"""F.assign: every forward pass writes src into dst; the output is src's values, and its
gradient goes to dst (g_dst = g_y, nnabla's), none to src.

Checked against nnabla's documented semantics, and against nnabla 1.39 itself where it
is installed; an intermediate dst (which a forward pass cannot overwrite) and mismatched
shapes are refused when the graph is built.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.functions as F
from symcompile.runtime import execution

SRC = np.arange(6.0, dtype=np.float32).reshape(2, 3)
# Run as written by symcompile here and by nnabla 1.39 (test_nnablas_numbers).
SCENARIO = """
dst = nn.Variable.from_numpy_array(np.zeros((2, 3), np.float32), need_grad=True)
src = nn.Variable.from_numpy_array(np.arange(6.0, dtype=np.float32).reshape(2, 3),
                                   need_grad=True)
y = F.assign(dst, src)
loss = F.sum(y * y)
loss.forward()
updated = dst.d.copy()
dst.grad.zero()
src.grad.zero()
loss.backward()
result = {"y": y.d.tolist(), "dst": updated.tolist(), "g_dst": dst.g.tolist(),
          "g_src": src.g.tolist(), "loss": float(loss.d)}
"""


def _run(backend) -> dict:
    previous = execution.set_backend(backend)
    try:
        names = {"nn": nn, "F": F, "np": np}
        exec(SCENARIO, names)  # noqa: S102 - the test's own text
        return names["result"]
    finally:
        execution.set_backend(previous)


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
def test_forward_writes_src_into_dst_and_the_gradient_goes_to_dst(backend):
    result = _run(backend)
    np.testing.assert_array_equal(result["y"], SRC)
    np.testing.assert_array_equal(result["dst"], SRC)
    np.testing.assert_array_equal(result["g_dst"], 2 * SRC)  # d sum(y*y) / dy, to dst
    np.testing.assert_array_equal(result["g_src"], 0)
    assert result["loss"] == pytest.approx(float(np.sum(SRC * SRC)))


def test_the_generated_forward_writes_dst_in_place(tmp_path):
    dst, src = nn.Variable((2, 3), need_grad=True), nn.Variable((2, 3))
    dst.name, src.name = "target", "online"
    module = nn.compile(F.sum(F.assign(dst, src)), name="sync", output_dir=tmp_path).module
    target = np.zeros((2, 3), np.float32)
    assert module.forward(target, SRC) == pytest.approx(15.0)
    np.testing.assert_array_equal(target, SRC)
    assert "target" in module.RUNNING


def test_refused():
    with pytest.raises(ValueError, match=r"F.assign: .* updates dst in place, so it must be a "
                                         r"leaf Variable .* not the output of MulScalar"):
        F.assign(nn.Variable((2, 3)) * 2, nn.Variable((2, 3)))
    with pytest.raises(ValueError, match=r"F.assign: dst of shape \(2, 3\) and src of shape "
                                         r"\(3, 2\) must have the same shape"):
        F.assign(nn.Variable((2, 3)), nn.Variable((3, 2)))


NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")

_NNABLA_SCRIPT = """
import json, sys
import numpy as np
import nnabla as nn
import nnabla.functions as F
exec(json.loads(sys.argv[1]))
print(json.dumps(result))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set")
def test_nnablas_numbers(tmp_path):
    (row,) = nnabla_rows(NNABLA, _NNABLA_SCRIPT, SCENARIO, tmp_path)
    assert _run("numpy") == row  # (small integers: exact in float32)


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
def test_the_fused_step_updates_dst_after_the_forward_wrote_it(tmp_path, backend):
    """nnabla's order: forward writes src into dst, then the solver moves dst by its
    gradient; the fused step must not write src back over the update."""
    nn.clear_parameters()
    dst = nn.parameter.get_parameter_or_create("dst", (2, 3), need_grad=True)
    src = nn.Variable((2, 3))
    src.name = "src"
    loss = F.sum(F.assign(dst, src) ** 2)
    module = nn.compile(loss, name=f"assign_step_{backend.replace('_', '')}",
                        output_dir=tmp_path, solver="sgd",
                        backend=backend.replace("_", "-")).module
    xp = np if backend == "numpy" else pytest.importorskip("array_api_strict")
    target = xp.asarray(np.full((2, 3), 7.0, np.float32))
    returned = module.sgd_step(xp.asarray(SRC), target, lr=0.25)
    if backend == "array_api":  # arrays it cannot write in place come back
        returned, updated = returned
        target = updated["dst"]
    expected = SRC - 0.25 * 2 * SRC  # dst = src, then dst -= lr * d sum(dst**2) / d dst
    np.testing.assert_array_equal(np.asarray(target), expected)
    assert float(returned) == pytest.approx(float(np.sum(SRC * SRC)))
    nn.clear_parameters()


def test_a_gradient_reading_dst_uses_the_value_forward_read(tmp_path):
    """W's gradient x.T @ dy reads the dst forward overwrites; the step's update must use
    the value gradient() uses (the one forward read), not the one forward wrote."""
    nn.clear_parameters()
    rng = np.random.default_rng(3)
    dst, src = nn.Variable((2, 3)), nn.Variable((2, 3))
    dst.name, src.name = "x_dst", "x_src"
    w = nn.parameter.get_parameter_or_create("w", (3, 4), need_grad=True)
    loss = F.sum(F.affine(dst, w) ** 2) + F.sum(F.assign(dst, src))
    module = nn.compile(loss, name="assign_matmul", output_dir=tmp_path, solver="sgd").module
    old, new = (rng.normal(size=(2, 3)).astype(np.float32) for _ in range(2))
    weights = rng.normal(size=(3, 4)).astype(np.float32)
    args = {"x_dst": old, "x_src": new, "w": weights}
    order = [*module.INPUTS, *module.PARAMETERS]
    _, g_w = module.gradient(*(args[k].copy() for k in order))
    step_args = {k: v.copy() for k, v in args.items()}
    module.sgd_step(*(step_args[k] for k in order), lr=0.125)
    np.testing.assert_allclose(step_args["w"], weights - 0.125 * g_w, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(step_args["x_dst"], new)
    nn.clear_parameters()
