"""The compiler's one entry point: a captured graph and options in, module source out.

Everything above the compiler (the runtime on a cache miss, `symcompile.compile`, the
CLI) reaches it only through the functions here. Importing this package is cheap: the
options and the compiler's fingerprint (the runtime's cache key) load without SymPy or
jinja2, and the passes load on the first compile.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from symcompile.compiler.options import (
    BACKEND_NAMES,
    DTYPES,
    FUSION_OPS_LIMIT,
    Options,
    compiler_fingerprint,
)

if TYPE_CHECKING:
    from symcompile.common.progress import Progress
    from symcompile.ir.graph import Graph
    from symcompile.ir.program import Program

__all__ = ["BACKEND_NAMES", "DTYPES", "FUSION_OPS_LIMIT", "Options", "compiler_fingerprint",
           "generate", "update_source"]


def generate(graph: Graph, options: Options, progress: Progress | None = None
             ) -> tuple[str, Program, dict[str, float]]:
    """Module source for `graph` (deterministic: same graph and options, same text), the
    program it was printed from and the seconds each phase took (see
    `symcompile.compiler.pipeline.generate`)."""
    from symcompile.compiler import pipeline

    return pipeline.generate(graph, options, progress)


def update_source(rule_name: str, options: tuple = (), backend: str = "numpy") -> str:
    """Source of the module holding the standalone update kernel of an update rule."""
    from symcompile.compiler import pipeline

    return pipeline.update_source(rule_name, options, backend)
