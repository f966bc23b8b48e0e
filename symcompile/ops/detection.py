"""nnabla's roi_align (Mask R-CNN's RoIAlign), as generated code.

    y[k, c, i, j] = the mean of x[b, c] read bilinearly at the gy x gx samples of bin
                    (i, j) of box k = (b, x1, y1, x2, y2)

for x (N, C, H, W) and boxes (K, 5), y (K, C, Ho, Wo) with (Ho, Wo) = output_size (the
exact rule, nnabla 1.39's roi_align.cpp, is in `ir.detection`). One kernel computes it
(`ir.detection.RoiAlign`) and its transpose, a scatter-add, is the gradient to x; the
boxes get none, as in nnabla. ``channel_last=True`` (x (N, H, W, C), y (K, Ho, Wo, C)),
which nnabla's CPU implementation refuses to run, runs channels first between transposes
(`ops.layout`).
"""

from __future__ import annotations

from symcompile.common.deferred import Deferred
from symcompile.ops.layout import with_channel_last
from symcompile.ops.opdef import OpDef, registrar

sympy = Deferred("sympy")
P = Deferred("symcompile.ir.primitives")
D = Deferred("symcompile.ir.detection")

OPS: dict[str, OpDef] = {}

_register = registrar(OPS)


def _shape(shapes, attrs):
    """(K, C, Ho, Wo), with nnabla's checks of the input and the boxes."""
    x, boxes = (tuple(s) for s in shapes)
    where = f"F.roi_align: input of shape {x} and boxes of shape {boxes}"
    if len(x) != 4:
        raise ValueError(f"{where}: the input must be 4-D, (N, C, H, W), or (N, H, W, C) "
                         f"with channel_last=True (nnabla's rule)")
    if len(boxes) != 2 or boxes[1] != 5:
        raise ValueError(f"{where}: boxes must be (K, 5), one row (b, x1, y1, x2, y2) per "
                         f"box, b the index of the input's sample it is in")
    return (boxes[0], x[1]) + tuple(attrs["output_size"])


def _layout(shapes, attrs):
    """x (N, H, W, C) to (N, C, H, W), the boxes as they are; y back to (K, Ho, Wo, C)."""
    return ((0, 3, 1, 2), None), (0, 2, 3, 1)


@_register("roi_align", "RoiAlign", 2, _shape)
def _roi_align(args, attrs, ctx):
    x, boxes = args
    return D.RoiAlign(x, boxes, P.shape_tuple(attrs["output_size"]),
                      sympy.Tuple(*(sympy.Float(float(s)) for s in attrs["spatial_scale"])),
                      sympy.Integer(attrs["sampling_ratio"]))


OPS["roi_align"] = with_channel_last(OPS["roi_align"], _layout)


def _nms_shape(shapes, attrs):
    x = tuple(shapes[0])
    if len(x) != 3 or x[2] <= 5:
        raise ValueError(f"F.nms_detection2d: x of shape {x} must be 3-D, (B, N, 5 + C): per "
                         f"box x, y, w, h, objectness and C >= 1 class probabilities "
                         f"(nnabla's rule)")
    return x


@_register("nms_detection2d", "NmsDetection2d", 1, _nms_shape)
def _nms_detection2d(args, attrs, ctx):
    """Thresholds and suppression, with no gradient: nnabla's backward writes none,
    though the output copies x's boxes and scales its scores."""
    return P.StopGradient(D.NmsDetection2d(
        args[0], sympy.Float(float(attrs["thresh"])), sympy.Float(float(attrs["nms"])),
        sympy.Integer(int(attrs["nms_per_class"]))))


# --- onnx_non_max_suppression: selected boxes, their number from the values --------------

def _onnx_nms_inputs(shapes, attrs) -> tuple:
    boxes, scores = (tuple(s) for s in shapes)
    where = f"F.onnx_non_max_suppression: boxes of shape {boxes}, scores of shape {scores}"
    if len(boxes) != 3 or boxes[2] != 4:
        raise ValueError(f"{where}: boxes must be (B, N, 4)")
    if len(scores) != 3 or scores[0] != boxes[0] or scores[2] != boxes[1]:
        raise ValueError(f"{where}: scores must be (B, C, N), B and N those of boxes")
    return boxes, scores


def _onnx_nms_options(attrs) -> tuple:
    return (sympy.Integer(attrs["center_point_box"]),
            sympy.Integer(attrs["max_output_boxes_per_class"]),
            sympy.Float(float(attrs["iou_threshold"])),
            sympy.Float(float(attrs["score_threshold"])))


def _onnx_nms_shape(shapes, attrs):
    _onnx_nms_inputs(shapes, attrs)
    return (attrs["count"], 3)


@_register("onnx_non_max_suppression", "ONNXNonMaxSuppression", 2, _onnx_nms_shape,
           output_dtype="uint64")
def _onnx_non_max_suppression(args, attrs, ctx):
    return P.StopGradient(D.OnnxNonMaxSuppression(*args, *_onnx_nms_options(attrs),
                                                  sympy.Integer(attrs["count"])))


def _onnx_nms_count_shape(shapes, attrs):
    _onnx_nms_inputs(shapes, attrs)
    return ()


@_register("onnx_non_max_suppression_count", "ONNXNonMaxSuppression", 2,
           _onnx_nms_count_shape)
def _onnx_nms_count(args, attrs, ctx):
    """The number of selected boxes: the frontend evaluates it once for the shape."""
    return P.StopGradient(D.OnnxNonMaxSuppressionCount(*args, *_onnx_nms_options(attrs)))
