"""Attribute values of graph nodes that need a type of their own."""

from __future__ import annotations


class Scalar(float):
    """A number argument of an F.* call (``val``, ``alpha``), checked and stored as a
    float; the lowering takes its exact SymPy form (`sympy_number`): an integer where
    the value is one, so ``pow_scalar(x, 2)`` is x**2, not x**2.0."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(int(self)) if self.is_integer() and abs(self) < 2**53 else float.__repr__(self)

    __str__ = __repr__
