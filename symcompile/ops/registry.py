"""The op table: every nnabla function symcompile knows, by its `F.*` name.

Elementwise ops (`ops_elementwise`) lower to plain SymPy, so chains of them fuse into
one expression and `partials` differentiates them; structural ops (`ops_structural`)
lower to tensor primitives with hand-written VJPs.
"""

from __future__ import annotations

from symcompile.ops.activations import OPS as ACTIVATION_OPS
from symcompile.ops.adversarial import OPS as ADVERSARIAL_OPS
from symcompile.ops.arrays import OPS as ARRAY_OPS
from symcompile.ops.augmentation import OPS as AUGMENTATION_OPS
from symcompile.ops.correlation import OPS as CORRELATION_OPS
from symcompile.ops.deformable import OPS as DEFORMABLE_OPS
from symcompile.ops.detection import OPS as DETECTION_OPS
from symcompile.ops.einsum import OPS as EINSUM_OPS
from symcompile.ops.elementwise import OPS as ELEMENTWISE_OPS
from symcompile.ops.geometry import OPS as GEOMETRY_OPS
from symcompile.ops.inq import OPS as INQ_OPS
from symcompile.ops.normalization import OPS as NORMALIZATION_OPS
from symcompile.ops.opdef import LowerContext, OpDef, normalize_axes, number
from symcompile.ops.quantization import OPS as QUANTIZATION_OPS
from symcompile.ops.resampling import OPS as RESAMPLING_OPS
from symcompile.ops.structural import OPS as STRUCTURAL_OPS

OPS: dict[str, OpDef] = {**ELEMENTWISE_OPS, **STRUCTURAL_OPS, **NORMALIZATION_OPS, **ARRAY_OPS,
                      **ACTIVATION_OPS, **RESAMPLING_OPS, **EINSUM_OPS, **AUGMENTATION_OPS,
                      **QUANTIZATION_OPS, **GEOMETRY_OPS, **CORRELATION_OPS,
                      **DETECTION_OPS, **DEFORMABLE_OPS, **ADVERSARIAL_OPS, **INQ_OPS}

__all__ = ["OPS", "LowerContext", "OpDef", "normalize_axes", "number"]
