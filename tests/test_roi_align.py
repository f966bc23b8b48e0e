"""F.roi_align (Mask R-CNN's RoIAlign, nnabla 1.39's roi_align.cpp).

- forward against a reference written from the formula (a loop over boxes, bins and
  samples, float64), the gradient to the input against central differences, through a
  compiled module and its array API twin on array-api-strict arrays, in several
  configurations (sampling_ratio -1, 0, 1, 2, 3; spatial_scale; output sizes; boxes
  partly or wholly outside the image, reversed, tiny, on every sample; channel_last);
- second derivatives: the gradient's gradient to the cotangent is roi_align again;
- the graph is nnabla's RoiAlign with its arguments; the boxes get no gradient;
- nnabla's NaN for boxes without samples, 0 for negative counts; a batch index outside
  the input refused when the module runs, on both backends;
- through the runtime, and against nnabla 1.39's numbers where it is installed;
- bad input refused when the graph is built.
"""

from __future__ import annotations

import math
import os

import array_api_strict as xps
import numpy as np
import pytest
from gradcheck import check_array_api, check_function, numeric_gradient
from nnabla_run import nnabla_rows, replay_row

import symcompile as nn
import symcompile.functions as F

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")


def _bilinear(image, y, x):
    """image (C, H, W) at (y, x), both inside [0, H - 1] x [0, W - 1]."""
    h, w = image.shape[1:]
    y0, x0 = int(math.floor(y)), int(math.floor(x))
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * image[:, y0, x0] + (1 - ly) * lx * image[:, y0, x1]
            + ly * (1 - lx) * image[:, y1, x0] + ly * lx * image[:, y1, x1])


def reference(x, boxes, output_size, spatial_scale=(1.0, 1.0), sampling_ratio=None,
              channel_last=None):
    """RoIAlign from its definition, one sample at a time: box (b, x1, y1, x2, y2) in
    pixels is (x1 * sx - 1/2, ...), bin (i, j) the mean of gy x gx bilinear samples at
    y1 + (i + (p + 1/2) / gy) * (y2 - y1) / Ho (and x alike), g = sampling_ratio or
    ceil(bin size); samples beyond one pixel outside read nothing, nearer ones the edge;
    NaN for a count of 0."""
    ratio = -1 if sampling_ratio is None else sampling_ratio
    if channel_last:
        x = np.moveaxis(x, 3, 1)
    _, c, h, w = x.shape
    out_h, out_w = output_size
    sy, sx = spatial_scale
    out = np.zeros((len(boxes), c, out_h, out_w))
    for k, (b, x1, y1, x2, y2) in enumerate(boxes):
        image = x[int(b)]
        x1, x2, y1, y2 = x1 * sx - 0.5, x2 * sx - 0.5, y1 * sy - 0.5, y2 * sy - 0.5
        bin_h, bin_w = (y2 - y1) / out_h, (x2 - x1) / out_w
        gy = ratio if ratio > 0 else math.ceil(bin_h)
        gx = ratio if ratio > 0 else math.ceil(bin_w)
        for i in range(out_h):
            for j in range(out_w):
                total = np.zeros(c)
                for p in range(gy):
                    yy = y1 + (i + (p + 0.5) / gy) * bin_h
                    if not -1 <= yy <= h:
                        continue
                    for q in range(gx):
                        xx = x1 + (j + (q + 0.5) / gx) * bin_w
                        if -1 <= xx <= w:
                            total += _bilinear(image, min(max(yy, 0), h - 1),
                                               min(max(xx, 0), w - 1))
                out[k, :, i, j] = total / (gy * gx) if gy * gx else np.nan
    return np.moveaxis(out, 1, 3) if channel_last else out


# Boxes (b, x1, y1, x2, y2) for an image of H = 4, W = 5 (and more samples): inside,
# partly outside on every side, wholly outside, reversed, small, on the second sample.
BOXES = np.array([[0, 0.3, 0.6, 3.7, 2.9], [1, -1.4, 0.2, 2.2, 4.6], [1, 2.1, -0.7, 6.3, 3.4],
                  [0, -3.1, -2.6, 7.2, 6.3], [1.7, 3.6, 2.8, 0.9, 0.4], [0, 1.2, 1.1, 1.6, 1.4],
                  [0, 5.9, -3.3, 8.4, -1.9]])

CONFIGS = [
    ((2, 3, 4, 5), BOXES, {"output_size": (2, 2)}),
    ((2, 3, 4, 5), BOXES, {"output_size": (2, 3), "sampling_ratio": 1}),
    ((2, 3, 4, 5), BOXES, {"output_size": (3, 2), "sampling_ratio": 2}),
    ((2, 2, 4, 5), BOXES, {"output_size": (1, 1), "sampling_ratio": 3}),
    ((2, 2, 4, 5), BOXES, {"output_size": (2, 2), "sampling_ratio": 0}),  # ceil, as -1
    ((2, 2, 8, 10), BOXES * [1, 2, 2, 2, 2], {"output_size": (2, 3),
                                              "spatial_scale": (0.5, 0.5)}),
    ((2, 2, 7, 3), BOXES, {"output_size": (2, 2), "spatial_scale": (1.5, 0.6),
                           "sampling_ratio": 2}),
    ((2, 3, 5, 4), BOXES, {"output_size": (2, 3), "channel_last": True}),  # (N, H, W, C)
    ((2, 3, 5, 4), BOXES, {"output_size": (3, 1), "spatial_scale": (0.8, 1.2),
                           "sampling_ratio": 2, "channel_last": True}),
    ((1, 1, 1, 1), BOXES[[0, 3, 5]] * [0, 1, 1, 1, 1], {"output_size": (2, 2)}),
]
IDS = [str(kw) for _, _, kw in CONFIGS]


def _input(shape, channel_last, seed=0):
    """x of the config's shape; channel_last configs give (N, C, H, W) and take NHWC."""
    x = np.random.default_rng(seed).normal(size=shape)
    return np.moveaxis(x, 1, 3) if channel_last else x


@pytest.mark.parametrize("shape,boxes,kwargs", CONFIGS, ids=IDS)
def test_forward_and_gradient(shape, boxes, kwargs, tmp_path, rng):
    x = _input(shape, kwargs.get("channel_last"))
    # (without the boxes whose bins have no sample, NaN: differences of a NaN loss mean
    # nothing; they are checked in test_boxes_without_samples_are_nnabla_s_nan_or_zero)
    finite = np.isfinite(reference(x, boxes, **kwargs)).reshape(len(boxes), -1).all(axis=1)
    assert finite.sum() >= 3
    arrays = [x, boxes[finite]]

    def build(x, b):
        return F.roi_align(x, b, **kwargs)

    module = check_function(build, lambda x, b: reference(x, b, **kwargs), arrays, tmp_path,
                            rng, need_grad=[True, False])
    check_array_api(build, arrays, module, tmp_path, need_grad=[True, False])


def test_the_reference_agrees_with_nnabla_s_documented_example():
    """nnabla's docstring: a 4x4 image of 1s with a 2x2 block of 2s inside."""
    x = np.pad(np.full((1, 1, 2, 2), 2.0), ((0, 0), (0, 0), (1, 1), (1, 1)),
               constant_values=1)
    boxes = np.array([[0, 0, 0, 4, 4], [0, 1, 1, 3, 3]], dtype=float)
    expected = np.array([np.full((1, 2, 2), 1.25), np.full((1, 2, 2), 2.0)])
    np.testing.assert_allclose(reference(x, boxes, (2, 2)), expected)
    y = F.roi_align(nn.Variable.from_numpy_array(x), nn.Variable.from_numpy_array(boxes),
                    (2, 2))
    y.forward()
    np.testing.assert_allclose(y.d, expected)


def test_the_graph_is_nnabla_s():
    x = nn.Variable((2, 3, 5, 6))
    boxes = nn.Variable((4, 5))
    y = F.roi_align(x, boxes, (2, 3), spatial_scale=(0.5, 0.25), sampling_ratio=2)
    assert y.shape == (4, 3, 2, 3)
    assert y.parent.info.type_name == "RoiAlign"
    assert y.parent.info.args == {"output_size": [2, 3], "spatial_scale": [0.5, 0.25],
                                  "sampling_ratio": 2, "channel_last": False}
    default = F.roi_align(x, boxes, [1, 1])
    assert default.parent.info.args == {"output_size": [1, 1], "spatial_scale": [1.0, 1.0],
                                        "sampling_ratio": -1, "channel_last": False}
    nhwc = F.roi_align(nn.Variable((2, 5, 6, 3)), boxes, (2, 3), channel_last=True)
    assert nhwc.shape == (4, 2, 3, 3) and nhwc.parent.info.args["channel_last"] is True


def test_boxes_get_no_gradient_and_the_module_shows_the_kernels(tmp_path):
    """nnabla's backward writes no gradient into the boxes: here it is 0 (the boxes' .g
    accumulates nothing); the module inlines the two kernels and its formula reads as
    the kernel call."""
    rng = np.random.default_rng(4)
    x = nn.Variable.from_numpy_array(rng.normal(size=(2, 3, 4, 5)), need_grad=True)
    boxes = nn.Variable.from_numpy_array(BOXES, need_grad=True)
    loss = F.sum(F.roi_align(x, boxes, (2, 2), sampling_ratio=2) ** 2)
    loss.forward()
    x.grad.zero()
    boxes.grad.fill(7.0)
    loss.backward()
    np.testing.assert_array_equal(boxes.g, np.full(BOXES.shape, 7.0))
    assert np.abs(x.g).sum() > 0
    nn.compile(loss, name="roi", output_dir=tmp_path)
    source = (tmp_path / "roi.py").read_text()
    assert "def roi_align_forward(" in source and "def roi_align_grad(" in source
    assert "= roi_align_forward(" in source and "= roi_align_grad(" in source
    assert "# d loss / d x = roi_align_grad(2*roi_align_forward(x, boxes, output_size=(2, 2)," \
        in source  # (the formula: sampling_ratio shown, the default spatial_scale too)
    assert "import sympy" not in source


def test_runtime_forward_and_backward():
    """loss.forward(); loss.backward() give the reference and its gradient written out:
    the transpose of the forward, dy spread back over each sample's four pixels."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=(2, 2, 4, 5))
    x = nn.Variable.from_numpy_array(a, need_grad=True)
    boxes = nn.Variable.from_numpy_array(BOXES)
    y = F.roi_align(x, boxes, (2, 3), spatial_scale=(1.0, 0.9), sampling_ratio=2)
    w = rng.normal(size=y.shape)
    loss = F.sum(y * nn.Variable.from_numpy_array(w))
    loss.forward()
    x.grad.zero()
    loss.backward()
    np.testing.assert_allclose(y.d, reference(a, BOXES, (2, 3), (1.0, 0.9), 2), rtol=1e-5,
                               atol=1e-5)
    # the gradient of a linear map: its matrix, column by column, transposed onto w
    basis = np.eye(a.size).reshape((a.size,) + a.shape)
    expected = np.array([np.sum(reference(e, BOXES, (2, 3), (1.0, 0.9), 2) * w) for e in basis])
    np.testing.assert_allclose(x.g, expected.reshape(a.shape), rtol=1e-4, atol=1e-5)


def test_second_derivatives(tmp_path):
    """d/dw of <nn.grad(<roi_align(x), w>, x), d> is roi_align(d) (the gradient is linear
    in w), against central differences; and it does not depend on x (0)."""
    rng = np.random.default_rng(5)
    values = {"x": rng.normal(size=(2, 2, 4, 5)), "w": rng.normal(size=(7, 2, 2, 3)),
              "d": rng.normal(size=(2, 2, 4, 5))}
    leaves = {}
    for name, value in values.items():
        leaves[name] = nn.Variable(value.shape, need_grad=name != "d")
        leaves[name].name = name
    boxes = nn.Variable(BOXES.shape)
    boxes.name = "boxes"
    values["boxes"] = BOXES
    y = F.roi_align(leaves["x"], boxes, (2, 3), sampling_ratio=2)
    (g,) = nn.grad([F.sum(y * leaves["w"])], [leaves["x"]])
    loss = F.sum(g * leaves["d"])
    module = nn.compile(loss, name="second", output_dir=tmp_path, dtype="float64").module
    names = [spec["name"] for spec in module.INPUTS.values()]
    args = [np.asarray(values[n]) for n in names]
    result = module.gradient(*args)
    got = dict(zip(module.GRADIENTS, result[1:], strict=True))
    np.testing.assert_allclose(got["w"], reference(values["d"], BOXES, (2, 3), sampling_ratio=2),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got["w"], numeric_gradient(module.forward, args,
                                                          names.index("w")), rtol=1e-6,
                               atol=1e-8)
    np.testing.assert_array_equal(got["x"], 0)


NO_SAMPLES = np.array([[0, 1.0, 1.0, 1.0, 3.0],   # zero width: ceil(0) = 0 columns -> NaN
                       [0, 1.0, 1.0, 0.5, 3.0],   # bin width -0.25: ceil is 0 -> NaN
                       [0, 3.0, 3.0, 0.0, 0.0],   # bins of -1.5: -1 x -1 samples -> 0
                       [1, 3.0, 1.0, 0.0, 3.0],   # -1 x 1 samples: -1 -> 0
                       [1, 0.5, 0.5, 3.5, 3.5]])  # an ordinary box


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
def test_boxes_without_samples_are_nnabla_s_nan_or_zero(backend, tmp_path):
    """With sampling_ratio <= 0 a box whose bins are 0 or less wide has no sample: NaN
    where its count is 0, 0 where it is negative (nnabla's 0 * 1/count), and no
    gradient either way; a NaN coordinate gives NaN."""
    rng = np.random.default_rng(6)
    a = rng.normal(size=(2, 1, 4, 4))
    boxes = np.concatenate([NO_SAMPLES, [[1, np.nan, 0.5, 2.0, 2.0]]])
    x, b = nn.Variable(a.shape, need_grad=True), nn.Variable(boxes.shape)
    x.name, b.name = "x", "boxes"
    w = nn.Variable((6, 1, 2, 2))
    w.name = "w"
    y = F.roi_align(x, b, (2, 2))
    y.persistent = True
    module = nn.compile(F.sum(y * w), name=f"empty_{backend}", output_dir=tmp_path,
                        dtype="float64", backend=backend).module
    weights = rng.normal(size=(6, 1, 2, 2))
    weights[[0, 1, 5]] = np.nan  # the cotangent of NaN bins, which adds nothing
    wrap = xps.asarray if backend == "array_api" else np.asarray
    assert list(module.INPUTS) == ["x", "boxes", "w"] and list(module.GRADIENTS) == ["x"]
    _, out, grad = module.gradient(wrap(a), wrap(boxes), wrap(weights))
    out, grad = np.from_dlpack(out), np.from_dlpack(grad)
    assert np.isnan(out[[0, 1, 5]]).all()
    np.testing.assert_array_equal(out[[2, 3]], 0)
    np.testing.assert_allclose(out[4], reference(a, NO_SAMPLES[4:], (2, 2))[0])
    np.testing.assert_allclose(out[:5], reference(a, NO_SAMPLES, (2, 2)))
    basis = np.eye(a.size).reshape((a.size,) + a.shape)
    expected = [np.sum(reference(e, NO_SAMPLES[4:], (2, 2))[0] * weights[4]) for e in basis]
    np.testing.assert_allclose(grad.reshape(-1), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
@pytest.mark.parametrize("index", [2.0, -1.0, np.nan])
def test_a_batch_index_outside_the_input_is_refused_when_the_module_runs(backend, index,
                                                                         tmp_path):
    x, b = nn.Variable((2, 1, 4, 4), need_grad=True), nn.Variable((2, 5))
    module = nn.compile(F.sum(F.roi_align(x, b, (2, 2))), name=f"bad_{backend}",
                        output_dir=tmp_path, backend=backend).module
    boxes = np.array([[1.9, 0, 0, 2, 2], [index, 0, 0, 2, 2]], dtype=np.float32)
    wrap = xps.asarray if backend == "array_api" else np.asarray
    args = (wrap(np.zeros((2, 1, 4, 4), np.float32)), wrap(boxes))
    for function in (module.forward, module.gradient):
        with pytest.raises(ValueError, match=r"F\.roi_align: boxes\[1, 0\] holds .*, which "
                           r"is not the index of one of the input's 2 samples"):
            function(*args)
    boxes[1, 0] = -0.5  # truncated towards zero: sample 0, as nnabla reads it
    module.forward(wrap(np.zeros((2, 1, 4, 4), np.float32)), wrap(boxes))


@pytest.mark.parametrize("call,error,message", [
    (lambda: F.roi_align(nn.Variable((2, 3, 4)), nn.Variable((1, 5)), (2, 2)), ValueError,
     r"F\.roi_align: input of shape \(2, 3, 4\) and boxes of shape \(1, 5\): the input "
     r"must be 4-D"),
    (lambda: F.roi_align(nn.Variable((2, 3, 4, 4)), nn.Variable((1, 4)), (2, 2)),
     ValueError, r"boxes must be \(K, 5\), one row \(b, x1, y1, x2, y2\) per box"),
    (lambda: F.roi_align(nn.Variable((2, 3, 4, 4)), nn.Variable((5,)), (2, 2)),
     ValueError, r"boxes must be \(K, 5\)"),
    (lambda: F.roi_align(nn.Variable((2, 3, 4)), nn.Variable((1, 5)), (2, 2),
                         channel_last=True), ValueError, r"must be 4-D.*channel_last=True"),
    (lambda: F.roi_align(nn.Variable((1, 1, 4, 4)), nn.Variable((1, 5)), (0, 2)), ValueError,
     r"output_size=\(0, 2\) must be 2 ints of at least 1"),
    (lambda: F.roi_align(nn.Variable((1, 1, 4, 4)), nn.Variable((1, 5)), 2), TypeError,
     r"F\.roi_align: output_size must be a tuple of 2 ints"),
    (lambda: F.roi_align(nn.Variable((1, 1, 4, 4)), nn.Variable((1, 5)), (2, 2, 2)),
     TypeError, r"output_size must be a tuple of 2 ints"),
    (lambda: F.roi_align(nn.Variable((1, 1, 4, 4)), nn.Variable((1, 5)), (2.0, 2)), TypeError,
     r"F\.roi_align: output_size must be an int, got 2\.0"),
    (lambda: F.roi_align(nn.Variable((1, 1, 4, 4)), nn.Variable((1, 5)), (2, 2),
                         spatial_scale=0.5), TypeError,
     r"spatial_scale must be a tuple of 2 numbers"),
    (lambda: F.roi_align(nn.Variable((1, 1, 4, 4)), nn.Variable((1, 5)), (2, 2),
                         spatial_scale=(1, "a")), TypeError,
     r"F\.roi_align: spatial_scale must be a real number, got 'a'"),
    (lambda: F.roi_align(nn.Variable((1, 1, 4, 4)), nn.Variable((1, 5)), (2, 2),
                         sampling_ratio=1.5), TypeError,
     r"F\.roi_align: sampling_ratio must be an int"),
    (lambda: F.roi_align(nn.Variable((1, 1, 4, 4)), nn.Variable((1, 5)), (2, 2),
                         channel_last=1), TypeError,
     r"F\.roi_align: channel_last must be True or False"),
    (lambda: F.roi_align(np.zeros((1, 1, 4, 4)), nn.Variable((1, 5)), (2, 2)), TypeError,
     r"F\.roi_align: input 0 must be a Variable"),
])
def test_bad_input_is_refused_when_the_graph_is_built(call, error, message):
    with pytest.raises(error, match=message):
        call()


NNABLA_SCRIPT = """
import json, sys
import numpy as np
import nnabla as nn
import nnabla.functions as F

for i, (text, shape, boxes) in enumerate(json.loads(sys.argv[1])):
    rng = np.random.RandomState(i)
    inputs = {"x": rng.randn(*shape).astype(np.float32),
              "boxes": np.array(boxes, dtype=np.float32)}
    leaves = {k: nn.Variable.from_numpy_array(v, need_grad=True) for k, v in inputs.items()}
    out = eval(text, {"F": F, **leaves})
    g = rng.randn(*out.shape).astype(np.float32)
    out.forward()
    for v in leaves.values():
        v.grad.zero()
    out.backward(g)
    print(json.dumps({"inputs": {k: v.tolist() for k, v in inputs.items()}, "g": g.tolist(),
                      "out": out.d.tolist(),
                      "grads": {k: v.g.tolist() for k, v in leaves.items()}}))
"""


def _nnabla_cases():
    """(text for nnabla, text for symcompile, x's shape, boxes): nnabla's CPU refuses
    channel_last, so those configs run channels first there, transposed around here."""
    cases = []
    for shape, boxes, kwargs in CONFIGS + [((2, 1, 4, 4), NO_SAMPLES, {"output_size": (2, 2)})]:
        kwargs = dict(kwargs)
        if kwargs.pop("channel_last", False):
            theirs = f"F.roi_align(x, boxes, **{kwargs!r})"
            ours = (f"F.transpose(F.roi_align(F.transpose(x, (0, 2, 3, 1)), boxes, "
                    f"channel_last=True, **{kwargs!r}), (0, 3, 1, 2))")
        else:
            theirs = ours = f"F.roi_align(x, boxes, **{kwargs!r})"
        cases.append((theirs, ours, list(shape), np.float32(boxes).tolist()))
    return cases


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_against_nnabla(tmp_path):
    """The output and the input's gradient equal nnabla 1.39's, and the boxes' gradient is
    its 0, in every configuration above (channel_last ones against nnabla's channels-first
    numbers), and for nnabla's NaN and 0 of boxes without samples."""
    cases = _nnabla_cases()
    rows = nnabla_rows(NNABLA, NNABLA_SCRIPT, [(t, s, b) for t, _, s, b in cases], tmp_path)
    assert len(rows) == len(cases)
    for (_, text, _, _), row in zip(cases, rows, strict=True):
        out, leaves = replay_row(text, row)
        np.testing.assert_allclose(out.d, row["out"], rtol=1e-5, atol=1e-5, err_msg=text)
        for k, grad in row["grads"].items():
            np.testing.assert_allclose(leaves[k].g, grad, rtol=1e-5, atol=1e-5,
                                       err_msg=f"{text}: d{k}")
    assert any(np.isnan(row["out"]).any() for row in rows)
