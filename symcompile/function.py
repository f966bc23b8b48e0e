"""nnabla's `nnabla.function`: the `Function` records a graph is made of (a Variable's
`parent`, the items of `function_references`), for ``isinstance`` checks and
``function.info.type_name``.

It is defined in `symcompile.frontend.variable`.
"""

from symcompile.frontend.variable import Function

__all__ = ["Function"]
