"""`symcompile.functions` (F): nnabla's functions, recording graph nodes.

Each function checks its inputs and arguments, works out the output shape (so shape
errors surface here, at graph-build time) and returns a new Variable whose `parent`
records the call. Nothing is computed until `forward()`.

The functions live in one module per family of nnabla's catalogue (`maths`, `losses`,
`arrays`, `layers`, `normalization`, `stochasticity`, `quantization`, `geometry`,
`detection`, `linalg`, `signal_processing`), over the shared `_base`. The functions of
elementwise ops are not written by hand: each is built from its op's registry entry
(`elementwise`), unless a family module writes one with logic of its own (axes, shapes,
optional inputs). Every function also runs imperatively on NdArrays (`_imperatively`).
"""

from __future__ import annotations

import functools

import numpy

from symcompile.frontend import dynamic
from symcompile.frontend.functions import (
    arrays,
    detection,
    elementwise,
    geometry,
    layers,
    linalg,
    losses,
    maths,
    normalization,
    quantization,
    signal_processing,
    stochasticity,
)
from symcompile.frontend.functions._base import (  # noqa: F401 - used as F._* elsewhere
    _base_axis,
    _record,
)
from symcompile.frontend.functions.arrays import _reshape_target, _sliced  # noqa: F401
from symcompile.frontend.functions.layers import _convolution_attributes  # noqa: F401
from symcompile.frontend.variable import NdArray, Variable

_FAMILIES = (maths, losses, arrays, layers, normalization, stochasticity, quantization,
             geometry, detection, linalg, signal_processing)


def _imperatively(function):
    """`function` on NdArrays (nnabla's imperative mode): computed at once, under
    auto-forward, on Variables holding the NdArrays' values (float32 arrays shared,
    others copied as float32), its result(s) returned as NdArrays. Variables among the
    arguments (a PF layer's parameters, with an NdArray input) take part with their
    current values, as in nnabla; no graph is recorded on them."""

    @functools.wraps(function)
    def call(*args, **kwargs):
        if not any(isinstance(a, NdArray) for a in (*args, *kwargs.values())):
            return function(*args, **kwargs)

        def leaf(value):
            if isinstance(value, Variable):
                _ = value.d  # (an intermediate's values computed, if they are not)
                return value.get_unlinked_variable(need_grad=False)
            if not isinstance(value, NdArray):
                return value
            if value.dtype == numpy.float32:
                return Variable.of_array(value)
            return Variable.from_numpy_array(value.data)

        with dynamic.auto_forward():
            result = function(*(leaf(a) for a in args),
                              **{key: leaf(v) for key, v in kwargs.items()})
        if isinstance(result, (tuple, list)):
            return type(result)(NdArray.view(v._storage, "data") for v in result)
        return NdArray.view(result._storage, "data")

    return call


def _public() -> dict:
    """F's functions by name: the families' and, for the elementwise ops none of them
    writes by hand, the registry's."""
    found = {}
    for family in _FAMILIES:
        for name in family.__all__:
            if name in found:
                raise ImportError(f"F.{name} is defined in {found[name].__module__} and in "
                                  f"{family.__name__}")
            found[name] = getattr(family, name)
    for name, function in elementwise.FUNCTIONS.items():
        found.setdefault(name, function)
    return found


globals().update({name: _imperatively(f) for name, f in _public().items()})
__all__ = list(_public())
