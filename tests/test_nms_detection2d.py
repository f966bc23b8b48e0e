"""F.nms_detection2d: YOLO's thresholds and non-maximum suppression, nnabla 1.39's.

- against a loop over the boxes written from nnabla's description (float32 arithmetic),
  per class and by objectness, through the runtime and compiled modules of both backends;
- no gradient (nnabla's backward writes none);
- nnabla 1.39's outputs where it is installed; bad input refused when the graph is built.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.functions as F

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")


def iou(a, b):
    """Boxes (x, y, w, h) centred at (x, y), in float32 as nnabla's calculate_iou."""
    def overlap(x1, w1, x2, w2):
        return min(x1 + w1 / 2, x2 + w2 / 2) - max(x1 - w1 / 2, x2 - w2 / 2)

    w, h = overlap(a[0], a[2], b[0], b[2]), overlap(a[1], a[3], b[1], b[3])
    if w <= 0 or h <= 0:
        return np.float32(0)
    inter = w * h
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def reference(x, thresh, nms, per_class):
    x = x.astype(np.float32)
    thresh, nms = np.float32(thresh), np.float32(nms)
    y = x.copy()
    batches, boxes, width = x.shape
    for b in range(batches):
        for i in range(boxes):
            objectness = x[b, i, 4] if x[b, i, 4] >= thresh else np.float32(0)
            y[b, i, 4] = objectness
            for k in range(5, width):
                score = objectness * x[b, i, k]
                y[b, i, k] = score if score >= thresh else 0
        if per_class:
            for k in range(5, width):
                order = sorted(range(boxes), key=lambda i: -y[b, i, k])  # (stable)
                for n, i in enumerate(order):
                    if y[b, i, k] == 0:
                        continue
                    for j in order[n + 1:]:
                        if y[b, j, k] != 0 and iou(y[b, i], y[b, j]) > nms:
                            y[b, j, k] = 0
        else:
            order = sorted(range(boxes), key=lambda i: -y[b, i, 4])
            for n in range(boxes - 1, -1, -1):
                i = order[n]
                if y[b, i, 4] != 0 and any(iou(y[b, i], y[b, j]) > nms for j in order[:n]):
                    y[b, i, 4:] = 0
    return y


def detections(seed, shape, spread=0.6):
    """Boxes in the unit square, sizes up to `spread`, so that many pairs overlap."""
    x = np.random.default_rng(seed).random(shape).astype(np.float32)
    x[..., 2:4] *= spread
    return x


CONFIGS = [((1, 6, 6), 0.5, 0.45), ((2, 12, 8), 0.2, 0.3), ((2, 25, 7), 0.05, 0.6),
           ((1, 9, 9), 0.0, 0.1)]


@pytest.mark.parametrize("per_class", [True, False])
@pytest.mark.parametrize("index", range(len(CONFIGS)))
def test_runtime_matches_the_loop_and_gives_no_gradient(index, per_class):
    shape, thresh, nms = CONFIGS[index]
    x_value = detections(index, shape)
    x = nn.Variable.from_numpy_array(x_value, need_grad=True)
    y = F.nms_detection2d(x, thresh, nms, per_class)
    y.forward()
    expected = reference(x_value, thresh, nms, per_class)
    np.testing.assert_array_equal(y.d, expected)
    assert (expected[..., 5:] == 0).sum() > (x_value[..., 5:] == 0).sum()  # (something went)
    x.grad.zero()
    y.backward(np.ones(y.shape, np.float32))
    np.testing.assert_array_equal(x.g, 0)


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
@pytest.mark.parametrize("per_class", [True, False])
def test_compiled_modules(backend, per_class, tmp_path):
    shape, thresh, nms = CONFIGS[1]
    x_value = detections(7, shape)
    x = nn.Variable(shape)
    x.name = "x"
    module = nn.compile(F.nms_detection2d(x, thresh, nms, per_class), name="nms",
                        output_dir=tmp_path / backend, solver=None, backend=backend).module
    convert = np.asarray
    if backend == "array_api":
        import array_api_strict as xp

        convert = xp.asarray
    got = np.asarray(module.forward(convert(x_value)))
    np.testing.assert_array_equal(got, reference(x_value, thresh, nms, per_class))


def test_defaults_are_nnabla_s():
    x_value = detections(3, (1, 10, 7))
    y = F.nms_detection2d(nn.Variable.from_numpy_array(x_value))
    y.forward()
    np.testing.assert_array_equal(y.d, reference(x_value, 0.5, 0.45, True))
    # (nnabla's float arguments, as its info reads them: float32)
    assert y.parent.info.args == {"thresh": 0.5, "nms": float(np.float32(0.45)),
                                  "nms_per_class": True}


@pytest.mark.parametrize("call,error,message", [
    (lambda: F.nms_detection2d(nn.Variable((4, 6))), ValueError,
     r"F.nms_detection2d: x of shape \(4, 6\) must be 3-D, \(B, N, 5 \+ C\)"),
    (lambda: F.nms_detection2d(nn.Variable((1, 4, 5))), ValueError, r"C >= 1 class"),
    (lambda: F.nms_detection2d(nn.Variable((1, 4, 6)), nms_per_class=1), TypeError,
     r"F.nms_detection2d: nms_per_class must be True or False, got 1"),
    (lambda: F.nms_detection2d(nn.Variable((1, 4, 6)), thresh="high"), TypeError,
     r"thresh"),
])
def test_bad_input_is_refused_when_the_graph_is_built(call, error, message):
    with pytest.raises(error, match=message):
        call()


NNABLA_SCRIPT = """
import json, sys
import numpy as np
import nnabla as nn
import nnabla.functions as F

for x, thresh, nms, per_class in json.loads(sys.argv[1]):
    y = F.nms_detection2d(nn.Variable.from_numpy_array(np.array(x, np.float32)), thresh, nms,
                          per_class)
    y.forward()
    print(json.dumps({"y": y.d.tolist(), "type": y.parent.info.type_name,
                      "args": y.parent.info.args}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_against_nnabla(tmp_path):
    calls = [(detections(10 + i, shape).tolist(), thresh, nms, per_class)
             for i, (shape, thresh, nms) in enumerate(CONFIGS) for per_class in (True, False)]
    rows = nnabla_rows(NNABLA, NNABLA_SCRIPT, calls, tmp_path)
    assert len(rows) == len(calls)
    for (x, thresh, nms, per_class), row in zip(calls, rows, strict=True):
        y = F.nms_detection2d(nn.Variable.from_numpy_array(np.array(x, np.float32)), thresh,
                              nms, per_class)
        y.forward()
        np.testing.assert_array_equal(y.d, row["y"])
        assert (y.parent.info.type_name, y.parent.info.args) == (row["type"], row["args"])
