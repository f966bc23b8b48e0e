"""Errors of the compiler that users catch, importable without loading the compiler."""

from __future__ import annotations


class ExpressionTooLarge(ValueError):
    """A fused expression too large to differentiate symbolically in reasonable time."""
