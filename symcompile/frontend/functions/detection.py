"""Object detection: roi_align and nms_detection2d (`ops.detection`)."""

from __future__ import annotations

from symcompile.frontend import dynamic
from symcompile.frontend.functions._base import _flag, _int_argument, _layout, _record
from symcompile.frontend.variable import Variable
from symcompile.ops.registry import number

__all__ = ["roi_align", "nms_detection2d", "onnx_non_max_suppression"]


def _pair(name: str, value, kind: str):
    """`value` as a tuple of 2 items (output_size's ints or spatial_scale's numbers)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise TypeError(f"F.roi_align: {name} must be a tuple of 2 {kind}, (height, width) "
                        f"for output_size and (y, x) for spatial_scale, got {value!r}")
    return tuple(value)


def roi_align(input, boxes, output_size, spatial_scale=(1.0, 1.0), sampling_ratio=None,
              channel_last=None, n_outputs=-1, outputs=None):
    """The regions of `input` (N, C, H, W) that `boxes` (K, 5) outline, each read as
    output_size = (Ho, Wo) bins: y (K, C, Ho, Wo), y[k, c, i, j] the mean of input[b, c]
    read bilinearly at a grid of samples in bin (i, j), as nnabla 1.39's RoiAlign (Mask
    R-CNN's RoIAlign).

    A row of boxes is (b, x1, y1, x2, y2): b the sample (truncated towards zero; outside
    0 .. N - 1 the module raises ValueError, as nnabla's forward does) and the corners,
    scaled by spatial_scale = (y, x) and shifted by half a pixel (x1 * spatial_scale[1] -
    0.5, ...: pixel centres are at integers). Each bin has sampling_ratio x
    sampling_ratio samples, evenly inside it, or, for sampling_ratio <= 0 (None is -1,
    nnabla's default), ceil(bin height) x ceil(bin width) for each box. Samples more than
    one pixel outside the image read nothing but still count in the mean; those less
    than one pixel outside read the edge. As nnabla's, x2 < x1 or y2 < y1 is not
    reordered (the bins run backwards), and with sampling_ratio <= 0 a bin size of 0 or
    less is no sample: the box's bins are NaN where its count of samples is 0 (a bin
    size in (-1, 0]: a box of zero width, say) and 0 where it is negative. A box with a
    NaN or infinite coordinate gives NaN (nnabla's numbers there are accidents of its
    C++ casts).

    The gradient goes to `input` (the samples' bilinear weights, a scatter-add), none to
    the boxes, as nnabla's backward. ``channel_last=True`` (None is False): input (N, H,
    W, C) and y (K, Ho, Wo, C); nnabla builds that graph, its CPU implementation refuses
    to run it."""
    if not (isinstance(input, Variable) and isinstance(boxes, Variable)):
        return _record("roi_align", (input, boxes))  # raises the TypeError
    size = _pair("output_size", output_size, "ints")
    size = tuple(_int_argument("roi_align", "output_size", n) for n in size)
    if min(size) < 1:
        raise ValueError(f"F.roi_align: output_size={size} must be 2 ints of at least 1 "
                         f"(the output's height and width)")
    scale = _pair("spatial_scale", spatial_scale, "numbers")
    scale = tuple(number(s, "roi_align", "spatial_scale") for s in scale)
    ratio = -1 if sampling_ratio is None else _int_argument("roi_align", "sampling_ratio",
                                                            sampling_ratio)
    last = False if channel_last is None else _flag("roi_align", "channel_last", channel_last)
    return _record("roi_align", (input, boxes), output_size=size, spatial_scale=scale,
                   sampling_ratio=ratio, **_layout(last))


def nms_detection2d(x, thresh=None, nms=None, nms_per_class=None, n_outputs=-1,
                    outputs=None):
    """YOLO's non-maximum suppression of detections x (B, N, 5 + C), rows (x, y, w, h,
    objectness, C class probabilities) of boxes centred at (x, y), as nnabla 1.39's: the
    same array with objectness below `thresh` (None: 0.5) set to 0 and each probability
    replaced by objectness * probability (0 below thresh), then, of every pair of boxes
    whose IoU exceeds `nms` (None: 0.45), the lower-scoring one zeroed: per class by the
    class scores (`nms_per_class`, None: True; a zeroed box zeroes nothing more), or by
    objectness, its objectness and every probability (any box ranked before it counts,
    zeroed or not, as nnabla's loop). Equal scores rank in the boxes' order (nnabla's
    sort leaves it unspecified). No gradient, as nnabla's backward, which writes none
    (though the output copies x's boxes and scales its scores)."""
    thresh = 0.5 if thresh is None else number(thresh, "nms_detection2d", "thresh")
    nms = 0.45 if nms is None else number(nms, "nms_detection2d", "nms")
    per_class = True if nms_per_class is None else _flag("nms_detection2d", "nms_per_class",
                                                         nms_per_class)
    return _record("nms_detection2d", (x,), thresh=float(thresh), nms=float(nms),
                   nms_per_class=per_class)


def onnx_non_max_suppression(boxes, scores, center_point_box=None,
                             max_output_boxes_per_class=None, iou_threshold=None,
                             score_threshold=None, n_outputs=-1, outputs=None):
    """ONNX's NonMaxSuppression of boxes (B, N, 4) by scores (B, C, N), as nnabla 1.39's:
    per batch and class, the boxes in order of decreasing score, those scoring below
    `score_threshold` (None: 0) dropped, each kept box dropping every later one whose IoU
    with it exceeds `iou_threshold` (None: 0), the first `max_output_boxes_per_class`
    (None: 0, which selects none) kept. Boxes are (y1, x1, y2, x2), any diagonal, or with
    `center_point_box` 1 (x centre, y centre, width, height). Returns the selected (batch,
    class, box) indices, (M, 3) uint64.

    M follows from the values: it is counted from the inputs' values when the call is
    made (nnabla's setup does the same), by the compiled kernel itself; every forward
    pass selects again and refuses values that select another number. Equal scores rank
    in the boxes' order (nnabla's std::sort leaves it open). No gradient, as nnabla's."""
    if not (isinstance(boxes, Variable) and isinstance(scores, Variable)):
        return _record("onnx_non_max_suppression", (boxes, scores))  # raises the TypeError
    center = 0 if center_point_box is None else _int_argument(
        "onnx_non_max_suppression", "center_point_box", center_point_box)
    if center not in (0, 1):
        raise ValueError(f"F.onnx_non_max_suppression: center_point_box must be 0 (corners "
                         f"y1, x1, y2, x2) or 1 (centre and size), got {center}")
    most = 0 if max_output_boxes_per_class is None else _int_argument(
        "onnx_non_max_suppression", "max_output_boxes_per_class", max_output_boxes_per_class)
    if most < 0:
        raise ValueError(f"F.onnx_non_max_suppression: max_output_boxes_per_class must be "
                         f"non-negative, got {most}")
    attrs = {"center_point_box": center, "max_output_boxes_per_class": most,
             "iou_threshold": float(number(0.0 if iou_threshold is None else iou_threshold,
                                           "onnx_non_max_suppression", "iou_threshold")),
             "score_threshold": float(number(0.0 if score_threshold is None
                                             else score_threshold, "onnx_non_max_suppression",
                                             "score_threshold"))}
    counter = _record("onnx_non_max_suppression_count", (boxes, scores), **attrs)
    if not dynamic.get_auto_forward():  # (else _record has computed it)
        dynamic.compute(counter)
    return built_onnx_non_max_suppression(boxes, scores, int(counter.d), **attrs)


def built_onnx_non_max_suppression(boxes, scores, count: int, **attrs):
    """F.onnx_non_max_suppression's node for `count` selected boxes (a file's reader knows
    it from the output's declared shape)."""
    return _record("onnx_non_max_suppression", (boxes, scores), **attrs, count=count)
