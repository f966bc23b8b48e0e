"""nnabla's vat_noise: the noise of virtual adversarial training, whose backward pass
writes into its second input's values instead of giving gradients.

    forward:   y = eps * x / sqrt(sum(x**2) + 1e-8), the sum per sample (over the axes
               from base_axis), as nnabla 1.39's vat_noise.cpp
    backward:  w = eps * dy, written into w's values (`OpDef.backward_writes`); x and w
               get no gradient (their `.g` are left as they are)

The buffer w carries the adversarial direction from one power iteration to the next
(Neural Network Console's VAT networks feed it back as the next x).
"""

from __future__ import annotations

from symcompile.common.deferred import Deferred
from symcompile.ops.opdef import OpDef

sympy = Deferred("sympy")
P = Deferred("symcompile.ir.primitives")

OPS: dict[str, OpDef] = {}

# what nnabla adds to each sample's sum of squares before the root
_OFFSET = 1e-8


def _shape(shapes, attrs):
    x, w = (tuple(s) for s in shapes)
    if x != w:
        raise ValueError(f"F.vat_noise: x of shape {x} and w of shape {w} must have the same "
                         f"shape (nnabla's rule): w receives eps times the gradient of the "
                         f"output, which has x's shape")
    return x


def _vat_noise(args, attrs, ctx):
    """eps * x / sqrt(sum(x**2) + 1e-8) per sample, as a constant: nnabla's backward
    gives x no gradient."""
    x = args[0]
    shape = ctx.in_shapes[0]
    squares = P.reduce_sum(x ** 2, tuple(range(attrs["base_axis"], len(shape))), True, shape,
                           ctx.shapes)
    return P.StopGradient(attrs["eps"] * x / sympy.sqrt(squares + sympy.Float(_OFFSET)))


def _vat_noise_writes(args, attrs, ctx):
    eps = attrs["eps"]
    return {1: (lambda dy: eps * dy, "w = eps * dy (F.vat_noise)")}


OPS["vat_noise"] = OpDef("vat_noise", "VATNoise", 2, False, _shape, _vat_noise,
                         backward_writes=_vat_noise_writes, array_inputs=True)
