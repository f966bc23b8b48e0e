"""F.onnx_non_max_suppression: ONNX's NonMaxSuppression, as nnabla 1.39's.

- against a loop written from ONNX's and nnabla's description (per batch and class, by
  decreasing score, score threshold, greedy IoU suppression, the first few kept), through
  the runtime on both backends and a generated module: corner boxes of either diagonal
  and centre boxes, several thresholds and limits, tied scores;
- the number of selected boxes is counted when the graph is built; values that select
  another number are refused when the module runs; bad arguments when it is built;
- nnabla 1.39's indices, dtype and info where it is installed.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.functions as F
from symcompile.runtime import execution

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")


def _extent(box, center_point_box):
    """(y0, y1, x0, x1) of one box."""
    if center_point_box:
        xc, yc, w, h = box
        return yc - h / 2, yc + h / 2, xc - w / 2, xc + w / 2
    return min(box[0], box[2]), max(box[0], box[2]), min(box[1], box[3]), max(box[1], box[3])


def _iou(a, b):
    ay0, ay1, ax0, ax1 = a
    by0, by1, bx0, bx1 = b
    wi, hi = min(ax1, bx1) - max(ax0, bx0), min(ay1, by1) - max(ay0, by0)
    if wi <= 0 or hi <= 0:
        return 0.0
    inter = wi * hi
    return inter / ((ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter)


def reference(boxes, scores, center_point_box=0, max_output_boxes_per_class=0,
              iou_threshold=0.0, score_threshold=0.0):
    """One batch, class and box at a time."""
    rows = []
    for b in range(boxes.shape[0]):
        extents = [_extent(box, center_point_box) for box in boxes[b]]
        for k in range(scores.shape[1]):
            order = sorted(range(boxes.shape[1]), key=lambda i: -scores[b, k, i])  # stable
            kept = []
            for i in order:
                if scores[b, k, i] < score_threshold:
                    continue
                if all(_iou(extents[j], extents[i]) <= iou_threshold for j in kept):
                    kept.append(i)
            rows += [(b, k, i) for i in kept[:max_output_boxes_per_class]]
    return np.array(rows, dtype=np.uint64).reshape(-1, 3)


def _case(seed, center_point_box, flip=False, batch=2, classes=3, n=12):
    rng = np.random.default_rng(seed)
    centre = rng.random((batch, n, 2))
    size = rng.random((batch, n, 2)) * 0.4 + 0.05
    if center_point_box:
        boxes = np.concatenate([centre, size], axis=2)
    else:
        corners = np.concatenate([centre - size / 2, centre + size / 2], axis=2)
        boxes = corners[..., [3, 2, 1, 0] if flip else [1, 0, 3, 2]]  # (y1, x1, y2, x2)
    scores = rng.random((batch, classes, n)).round(1)  # ties among them
    return boxes.astype(np.float32), scores.astype(np.float32)


ARGUMENTS = [
    (0, False, dict(max_output_boxes_per_class=3, iou_threshold=0.3)),
    (1, False, dict(center_point_box=1, max_output_boxes_per_class=100, iou_threshold=0.5,
                    score_threshold=0.2)),
    (0, True, dict(max_output_boxes_per_class=5, iou_threshold=0.0, score_threshold=0.5)),
    (1, False, dict(center_point_box=1, max_output_boxes_per_class=2, iou_threshold=0.7)),
    (0, False, dict()),  # (max_output_boxes_per_class 0 selects none)
]


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
@pytest.mark.parametrize("case", range(len(ARGUMENTS)))
def test_against_the_loop(backend, case):
    center, flip, kwargs = ARGUMENTS[case]
    boxes, scores = _case(case, center, flip)
    previous = execution.set_backend(backend)
    try:
        y = F.onnx_non_max_suppression(nn.Variable.from_numpy_array(boxes),
                                       nn.Variable.from_numpy_array(scores), **kwargs)
        y.forward()
    finally:
        execution.set_backend(previous)
    expected = reference(boxes.astype(float), scores, **kwargs)
    assert y.d.dtype == np.uint64 and y.shape == expected.shape
    np.testing.assert_array_equal(y.d, expected)


def test_the_generated_module_selects_and_refuses_another_count(tmp_path):
    boxes, scores = _case(7, 0)
    b, s = nn.Variable.from_numpy_array(boxes), nn.Variable.from_numpy_array(scores)
    b.name, s.name = "boxes", "scores"
    y = F.onnx_non_max_suppression(b, s, max_output_boxes_per_class=4, iou_threshold=0.4)
    module = nn.compile(y, name="onnx_nms", output_dir=tmp_path).module
    expected = reference(boxes.astype(float), scores, max_output_boxes_per_class=4,
                         iou_threshold=0.4)
    np.testing.assert_array_equal(module.forward(boxes, scores), expected)
    fewer = scores.copy()
    fewer[0] = 0.0  # (still at the threshold 0: kept; below it, dropped)
    fewer[0, 0] = -1.0
    with pytest.raises(ValueError, match=r"F.onnx_non_max_suppression: the number of selected "
                                         r"boxes is \d+ now, but was 24 when the graph was "
                                         r"built"):
        module.forward(boxes, fewer)


def test_under_auto_forward_it_is_computed_as_called():
    boxes, scores = _case(3, 1)
    with nn.auto_forward():
        y = F.onnx_non_max_suppression(nn.Variable.from_numpy_array(boxes),
                                       nn.Variable.from_numpy_array(scores), 1, 2, 0.5)
    np.testing.assert_array_equal(y.d, reference(boxes.astype(float), scores, 1, 2, 0.5))


@pytest.mark.parametrize("call,error,message", [
    (lambda: F.onnx_non_max_suppression(nn.Variable((1, 4, 3)), nn.Variable((1, 2, 4))),
     ValueError, r"boxes of shape \(1, 4, 3\), scores of shape \(1, 2, 4\): boxes must be "
                 r"\(B, N, 4\)"),
    (lambda: F.onnx_non_max_suppression(nn.Variable((1, 4, 4)), nn.Variable((1, 2, 5))),
     ValueError, r"scores must be \(B, C, N\), B and N those of boxes"),
    (lambda: F.onnx_non_max_suppression(nn.Variable((1, 4, 4)), nn.Variable((1, 2, 4)), 2),
     ValueError, r"center_point_box must be 0 \(corners y1, x1, y2, x2\) or 1"),
    (lambda: F.onnx_non_max_suppression(nn.Variable((1, 4, 4)), nn.Variable((1, 2, 4)), 0, -1),
     ValueError, r"max_output_boxes_per_class must be non-negative, got -1"),
    (lambda: F.onnx_non_max_suppression(nn.Variable((1, 4, 4)), nn.Variable((1, 2, 4)), 0, 1.5),
     TypeError, r"max_output_boxes_per_class must be an int"),
])
def test_bad_arguments_are_refused_when_the_graph_is_built(call, error, message):
    with pytest.raises(error, match=message):
        call()


NNABLA_SCRIPT = """
import json, sys
import numpy as np
import nnabla as nn
import nnabla.functions as F

nn.set_auto_forward(True)
for boxes, scores, kwargs in json.loads(sys.argv[1]):
    y = F.onnx_non_max_suppression(nn.Variable.from_numpy_array(np.array(boxes, np.float32)),
                                   nn.Variable.from_numpy_array(np.array(scores, np.float32)),
                                   **kwargs)
    print(json.dumps({"y": y.d.tolist(), "shape": list(y.shape), "dtype": str(y.d.dtype),
                      "info": y.parent.info.args}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_against_nnabla(tmp_path):
    calls = []
    for case, (center, flip, kwargs) in enumerate(ARGUMENTS):
        boxes, scores = _case(case + 10, center, flip)
        calls.append((boxes.tolist(), scores.tolist(), kwargs))
    rows = nnabla_rows(NNABLA, NNABLA_SCRIPT, calls, tmp_path)
    assert len(rows) == len(calls)
    for (boxes, scores, kwargs), row in zip(calls, rows, strict=True):
        y = F.onnx_non_max_suppression(
            nn.Variable.from_numpy_array(np.array(boxes, np.float32)),
            nn.Variable.from_numpy_array(np.array(scores, np.float32)), **kwargs)
        y.forward()
        assert list(y.shape) == row["shape"] and str(y.d.dtype) == row["dtype"]
        np.testing.assert_array_equal(y.d, np.reshape(row["y"], row["shape"]))
        assert y.parent.info.args == row["info"]
