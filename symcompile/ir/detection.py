"""Primitives of F.roi_align (Mask R-CNN's RoIAlign), as nnabla 1.39 computes it.

Box k = boxes[k] = (b, x1, y1, x2, y2) reads sample b of x (N, C, H, W); in pixels its
corners are (x1 * sx - 1/2, y1 * sy - 1/2) and (x2 * sx - 1/2, y2 * sy - 1/2), with
spatial_scale = (sy, sx) (the half pixel: pixel centres are at integers). Each of its
Ho x Wo bins is averaged over a grid of gy x gx bilinear samples (sampling_ratio, or
ceil(bin size) per box where it is <= 0), and the average counts every sample of the
grid, also those more than a pixel outside the image, which read nothing:

- RoiAlign(x, boxes)[k, c, i, j] = sum over the samples (p, q) of bin (i, j) of
  bilinear(x[b, c], p, q) / (gy * gx)
- RoiAlignGrad(dy, boxes)[n, c, h, w] = its transpose: every dy[k, c, i, j] / (gy * gx)
  added back into x[b, c] with the same bilinear weights (a scatter-add)

Both are linear in their first array and each one's VJP to it is the other, so
derivatives of any order stay in the pair. The boxes get no gradient, as in nnabla
(whose backward writes none): the sample positions are constants to the gradient.
"""

from __future__ import annotations

import sympy

from symcompile.ir.primitives import KernelBase, _folded_operand, as_ints, exact, shape_tuple


class _RoiAlignBase(KernelBase):
    """An array, the boxes (K, 5), then the options."""

    tensor_args = (0, 1)
    linear_in = (0,)  # linear in its first array, not in the boxes
    defaults = (("sampling_ratio", -1),)

    def _boxes(self, shapes) -> int:
        boxes = shapes.of(self.args[1])
        if len(boxes) != 2:
            raise _folded_operand("roi_align", self.args[1])
        return boxes[0]

    def _cotangent(self, g, shapes):
        return exact(g, self.shape(shapes), shapes)


class RoiAlign(_RoiAlignBase):
    """(K, C, Ho, Wo) from x (N, C, H, W) and boxes (K, 5); args (x, boxes, output_size,
    spatial_scale, sampling_ratio)."""

    nargs = 5
    kernel = "roi_align_forward"
    options = ("output_size", "spatial_scale", "sampling_ratio")

    def shape(self, shapes):
        x = shapes.of(self.args[0])
        if len(x) != 4:
            raise _folded_operand("roi_align", self.args[0])
        return (self._boxes(shapes), x[1]) + as_ints(self.args[2])

    def vjp(self, index, g, shapes):
        if index == 1:
            return sympy.Integer(0)  # nnabla's: no gradient to the boxes
        x, boxes, output_size, spatial_scale, sampling_ratio = self.args
        return RoiAlignGrad(self._cotangent(g, shapes), boxes, shape_tuple(shapes.of(x)),
                            output_size, spatial_scale, sampling_ratio)


class RoiAlignGrad(_RoiAlignBase):
    """x_shape (N, C, H, W) from dy (K, C, Ho, Wo) and boxes (K, 5): RoiAlign's gradient
    to x; args (dy, boxes, x_shape, output_size, spatial_scale, sampling_ratio)."""

    nargs = 6
    kernel = "roi_align_grad"
    options = ("x_shape", "output_size", "spatial_scale", "sampling_ratio")
    unshown = ("x_shape", "output_size")

    def shape(self, shapes):
        return as_ints(self.args[2])

    def vjp(self, index, g, shapes):
        """Linear in dy, the transpose of RoiAlign: <G, RoiAlignGrad(dy)> = <RoiAlign(G),
        dy>, so d/d dy is RoiAlign of the cotangent."""
        if index == 1:
            return sympy.Integer(0)
        _, boxes, _, output_size, spatial_scale, sampling_ratio = self.args
        return RoiAlign(self._cotangent(g, shapes), boxes, output_size, spatial_scale,
                        sampling_ratio)



class NmsDetection2d(KernelBase):
    """nnabla's NmsDetection2d of x (B, N, 5 + C), rows (x, y, w, h, objectness, class
    probabilities), boxes centred at (x, y): the same array with objectness below thresh
    set to 0 and each probability replaced by objectness * probability (0 below
    thresh), then suppressed (0) by NMS: per class (`per_class` 1), greedily in the order
    of that class's scores, a box whose score is not 0 zeroing every later one whose IoU
    with it exceeds `nms`; else in the order of objectness, a box (objectness and every
    probability) zeroed if any box ranked before it overlaps it by more than `nms`,
    suppressed or not (nnabla's loop). Ties keep the boxes' order (nnabla's std::sort
    leaves it unspecified). Args (x, thresh, nms, per_class). No gradient, as nnabla's
    backward writes none (though the output copies x's boxes and scales its scores):
    lowering wraps it in StopGradient."""

    nargs = 4
    tensor_args = (0,)
    kernel = "nms_detection2d"
    options = ("thresh", "nms", "per_class")

    def shape(self, shapes):
        return shapes.of(self.args[0])

__all__ = ["RoiAlign", "RoiAlignGrad"]


class OnnxNonMaxSuppression(KernelBase):
    """ONNX NonMaxSuppression of boxes (B, N, 4) by scores (B, C, N), as nnabla 1.39's:
    per batch and class, boxes in order of decreasing score (equal scores in the boxes'
    order, where nnabla's std::sort leaves it open), those below score_threshold dropped,
    each kept box dropping every later one whose IoU exceeds iou_threshold, the first
    max_boxes kept: rows (batch, class, box), `count` of them (the number when the graph
    was built; the kernel refuses another), as numbers of the boxes' dtype. Args (boxes,
    scores, center_point_box, max_boxes, iou_threshold, score_threshold, count). Indices:
    lowering wraps it in StopGradient."""

    nargs = 7
    tensor_args = (0, 1)
    kernel = "onnx_nms"
    options = ("center_point_box", "max_boxes", "iou_threshold", "score_threshold", "count")
    unshown = ("count",)

    def shape(self, shapes):
        return (int(self.args[6]), 3)


class OnnxNonMaxSuppressionCount(KernelBase):
    """How many rows `OnnxNonMaxSuppression` selects, a 0-d number: evaluated once when the
    graph is built, for the output's shape. Args (boxes, scores, center_point_box,
    max_boxes, iou_threshold, score_threshold)."""

    nargs = 6
    tensor_args = (0, 1)
    kernel = "onnx_nms_count"
    options = ("center_point_box", "max_boxes", "iou_threshold", "score_threshold")

    def shape(self, shapes):
        return ()
