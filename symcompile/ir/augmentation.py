"""The primitive of F.image_augmentation: nnabla's train-time image augmentation.

`ImageAugment` reads the images of x (the last two axes, the one before them the
channels) through a random affine map (scale, aspect ratio, rotation, flips, crop
position) and a radial distortion, bilinearly, clamped to the image's edge, then changes
brightness and contrast and adds noise. Its random numbers are draws (`UniformDraw`,
`NormalDraw` in primitives.py), so the lowering pass gives them arrays of their own,
drawn once per forward pass from the function's `rng`. Like nnabla's (whose backward does
nothing), it has no gradient: the op wraps it in a StopGradient.
"""

from __future__ import annotations

import sympy

from symcompile.ir.primitives import KernelBase, as_ints

# The columns of the uniform draw (one row per image): the numbers nnabla draws per
# image, in its order, then one brightness and one contrast per channel, distortion, noise.
DRAWS_PER_IMAGE = 11  # + 2 per channel


class ImageAugment(KernelBase):
    """nnabla's image_augmentation of x (..., C, H, W) (or (H, W): one image of one
    channel) to (..., C, h, w), `size` = (h, w). Per image, from its row u of the draw
    (uniform in [0, 1), on nnabla's grid k/1000, k = floor(1001*u)): scale s, aspect
    a, angle t, crop centre, flips, brightness b and contrast c (per channel with
    brightness_each / contrast_each), distortion d and noise sigma; output pixel (i, j)
    reads the input at (y, x) = o + A (j', i') (A the flipped rotation scaled by
    1/(s*a), 1/(s/a), (j', i') = (j, i) radially distorted by d), clamped to the image,
    bilinearly, and y = (v + b - contrast_center) * c + contrast_center + sigma * n, n
    the normal draw. Args (x, draws, normal (0: no noise), size, pad, min_scale,
    max_scale, angle, aspect_ratio, distortion, flip_lr, flip_ud, brightness,
    brightness_each, contrast, contrast_center, contrast_each, noise)."""

    nargs = 18
    tensor_args = (0, 1, 2)
    kernel = "image_augment"
    options = ("size", "pad", "min_scale", "max_scale", "angle", "aspect_ratio", "distortion",
               "flip_lr", "flip_ud", "brightness", "brightness_each", "contrast",
               "contrast_center", "contrast_each", "noise")
    unshown = ("size",)
    defaults = (("pad", 0), ("flip_lr", 0), ("flip_ud", 0), ("brightness_each", 0),
                ("contrast_each", 0))

    def shape(self, shapes):
        return tuple(shapes.of(self.args[0])[:-2]) + as_ints(self.args[3])

    def vjp(self, index, g, shapes):
        return sympy.Integer(0)  # nnabla's backward does nothing (and the op stops it)
