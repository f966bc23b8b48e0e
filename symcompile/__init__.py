"""symcompile: nnabla's training API, compiled to standalone NumPy with SymPy derivatives.

Use it as nnabla::

    import symcompile as nn
    import symcompile.functions as F
    import symcompile.solvers as S
"""

from . import functions, initializer, parameter, parametric_functions, random, solvers, utils
from ._version import __version__
from .cache import GraphMismatchError, ModuleEditedError
from .cache_auth import UnsafeCacheError, UntrustedCacheWarning
from .errors import ExpressionTooLarge
from .parameter import (
                        clear_parameters,
                        get_parameters,
                        load_parameters,
                        parameter_scope,
                        save_parameters,
)
from .random import seed
from .runtime import load
from .variable import NdArray, Variable


def __getattr__(name: str):
    """The compiler (and with it SymPy and jinja2) loads on first use: a script whose
    graphs are all in the runtime cache never imports it."""
    if name in _COMPILER:
        from . import compiler

        return getattr(compiler, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_COMPILER = ("CompileResult", "check_gradient", "compile")

__all__ = [
    "CompileResult", "ExpressionTooLarge", "GraphMismatchError", "ModuleEditedError",
    "NdArray", "UnsafeCacheError", "UntrustedCacheWarning", "Variable", "__version__",
    "check_gradient", "clear_parameters", "compile", "functions", "get_parameters",
    "initializer", "load", "load_parameters", "save_parameters", "utils",
    "parameter", "parameter_scope", "parametric_functions", "random", "seed", "solvers",
]
