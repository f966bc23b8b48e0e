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


def _run(backend):
    previous = execution.set_backend(backend)
    try:
        dst = nn.Variable.from_numpy_array(np.zeros((2, 3), np.float32), need_grad=True)
        src = nn.Variable.from_numpy_array(SRC, need_grad=True)
        y = F.assign(dst, src)
        loss = F.sum(y * y)
        loss.forward()
        updated = dst.d.copy()
        dst.grad.zero()
        src.grad.zero()
        loss.backward()
        return y.d.copy(), updated, dst.g.copy(), src.g.copy(), loss.d
    finally:
        execution.set_backend(previous)


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
def test_forward_writes_src_into_dst_and_the_gradient_goes_to_dst(backend):
    y, updated, g_dst, g_src, loss = _run(backend)
    np.testing.assert_array_equal(y, SRC)
    np.testing.assert_array_equal(updated, SRC)
    np.testing.assert_array_equal(g_dst, 2 * SRC)  # d sum(y*y) / dy, passed to dst
    np.testing.assert_array_equal(g_src, 0)
    assert loss == pytest.approx(float(np.sum(SRC * SRC)))


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
src_values = np.array(json.loads(sys.argv[1]), np.float32)
dst = nn.Variable.from_numpy_array(np.zeros(src_values.shape, np.float32), need_grad=True)
src = nn.Variable.from_numpy_array(src_values, need_grad=True)
y = F.assign(dst, src)
loss = F.sum(y * y)
loss.forward()
updated = dst.d.copy()
dst.grad.zero()
src.grad.zero()
loss.backward()
print(json.dumps({"y": y.d.tolist(), "dst": updated.tolist(), "g_dst": dst.g.tolist(),
                  "g_src": src.g.tolist(), "loss": float(loss.d)}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set")
def test_nnablas_numbers(tmp_path):
    (row,) = nnabla_rows(NNABLA, _NNABLA_SCRIPT, SRC.tolist(), tmp_path)
    y, updated, g_dst, g_src, loss = _run("numpy")
    for name, ours in [("y", y), ("dst", updated), ("g_dst", g_dst), ("g_src", g_src)]:
        np.testing.assert_array_equal(ours, np.array(row[name]), err_msg=name)
    assert loss == pytest.approx(row["loss"])
