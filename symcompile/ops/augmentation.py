"""image_augmentation: nnabla's random train-time augmentation of images (scale, aspect
ratio, rotation, crop or pad to a shape, flips, distortion, brightness, contrast, noise),
drawn anew by every forward pass; the primitive is in `ir.augmentation`.

nnabla 1.39 (src/nbla/function/generic/image_augmentation.cpp), per image (the axes before
the channel axis, which is the third last, or none for a 2-D input): numbers drawn on the
grid k/1000 (k uniform in 0..1000), the flips with probability 1/2; the output window
read through the inverse of a random similarity around a random centre, bilinearly, with
positions outside the (padded) image clamped to its edge pixels; then (v + brightness -
contrast_center) * contrast + contrast_center, then normal noise of a random sigma in
[0, noise]. nnabla's backward does nothing (its grad is not implemented): no gradient here.
"""

from __future__ import annotations

import math

from symcompile.common.deferred import Deferred
from symcompile.ops.opdef import OpDef, registrar

sympy = Deferred("sympy")
P = Deferred("symcompile.ir.primitives")
A = Deferred("symcompile.ir.augmentation")

OPS: dict[str, OpDef] = {}

_register = registrar(OPS)

FLAGS = ("flip_lr", "flip_ud", "brightness_each", "contrast_each")
NUMBERS = ("min_scale", "max_scale", "angle", "aspect_ratio", "distortion", "brightness",
           "contrast", "contrast_center", "noise")


def _fail(x, message: str):
    raise ValueError(f"F.image_augmentation: input of shape {tuple(x)}: {message}")


def _shape(shapes, attrs):
    """The output shape: x's, its last len(shape) axes replaced by `shape` (nnabla's
    rule), after nnabla's checks and those of what nnabla leaves undefined."""
    x, shape, pad = tuple(shapes[0]), tuple(attrs["shape"]), tuple(attrs["pad"])
    if len(x) < 2:
        _fail(x, "the input must have at least 2 axes (height and width, the last two)")
    if len(shape) < 2:
        _fail(x, f"shape={shape} must give at least 2 sizes (the output's height and width)")
    if len(shape) > len(x):
        _fail(x, f"shape={shape} has more axes than the input; give the output's last "
                 f"axes, e.g. shape={x[-2:]}")
    if any(s < 1 for s in shape[-2:]):
        _fail(x, f"shape={shape}: the output's height and width must be at least 1")
    lead = x[len(x) - len(shape):-2]
    if shape[:-2] != lead:
        _fail(x, f"shape={shape} changes the channel (or sample) axes {lead} to "
                 f"{shape[:-2]}; nnabla only resizes the last two (height and width): give "
                 f"shape={lead + shape[-2:]}, or only the two sizes")
    if len(pad) != 2:
        _fail(x, f"pad={pad} must give 2 sizes (height and width), as nnabla requires")
    if any(p < 0 for p in pad):
        _fail(x, f"pad={pad} must be non-negative (the border added on each side)")
    for name in ("min_scale", "max_scale", "aspect_ratio", "contrast"):
        if not attrs[name] > 0 or math.isinf(attrs[name]):
            _fail(x, f"{name}={attrs[name]} must be a positive finite number (nnabla draws "
                     f"its logarithm; 1 leaves the images as they are)")
    for name in ("angle", "distortion", "brightness", "contrast_center", "noise"):
        if not math.isfinite(attrs[name]):
            _fail(x, f"{name}={attrs[name]} must be a finite number")
    if attrs["noise"] < 0:
        _fail(x, f"noise={attrs['noise']} must be non-negative (the largest sigma of the "
                 f"normal noise; 0: none)")
    return x[:-2] + shape[-2:]


@_register("image_augmentation", "ImageAugmentation", 1, _shape)
def _image_augmentation(args, attrs, ctx):
    """One `ImageAugment` of x with its uniform draw (one row per image, see
    ir.augmentation.DRAWS_PER_IMAGE) and, with noise, a normal draw of the output's shape;
    through a StopGradient (nnabla's backward does nothing)."""
    shape = tuple(ctx.in_shapes[0])
    size = tuple(attrs["shape"])[-2:]
    channels = shape[-3] if len(shape) >= 3 else 1
    images = math.prod(shape[:-3]) if len(shape) >= 3 else 1
    zero, one = sympy.Integer(0), sympy.Integer(1)
    draws = P.UniformDraw(P.shape_tuple((images, A.DRAWS_PER_IMAGE + 2 * channels)),
                          zero, one, zero)
    noise = (P.NormalDraw(P.shape_tuple(shape[:-2] + size), zero, one, zero)
             if attrs["noise"] > 0 else zero)
    numbers = {name: sympy.Float(float(attrs[name])) for name in NUMBERS}
    flags = {name: sympy.Integer(int(bool(attrs[name]))) for name in FLAGS}
    return P.StopGradient(A.ImageAugment(
        args[0], draws, noise, P.shape_tuple(size), P.shape_tuple(tuple(attrs["pad"])),
        numbers["min_scale"], numbers["max_scale"], numbers["angle"],
        numbers["aspect_ratio"], numbers["distortion"], flags["flip_lr"], flags["flip_ud"],
        numbers["brightness"], flags["brightness_each"], numbers["contrast"],
        numbers["contrast_center"], flags["contrast_each"], numbers["noise"]))
