"""symcompile: nnabla's training API, compiled to standalone NumPy with SymPy derivatives.

Use it as nnabla::

    import symcompile as nn
    import symcompile.functions as F
    import symcompile.solvers as S

The package is layered (see ARCHITECTURE.md); this file wires the layers together: it
gives the front end its operators and the runtime as its executor, and exposes nnabla's
top-level names. The compiler (and with it SymPy and jinja2) loads on first use.
"""

from symcompile import (
    ext_utils,
    function,
    functions,
    initializer,
    parameter,
    parametric_functions,
    random,
    solvers,
    utils,
)
from symcompile._version import __version__
from symcompile.common.errors import ExpressionTooLarge
from symcompile.frontend import arithmetic, attention, executor, recurrent
from symcompile.frontend.context import (
    Context,
    context_scope,
    get_current_context,
    set_default_context,
)
from symcompile.frontend.dynamic import auto_forward, get_auto_forward, no_grad, set_auto_forward
from symcompile.frontend.grad import grad
from symcompile.frontend.parameter import (
    clear_parameters,
    get_parameters,
    load_parameters,
    parameter_scope,
    save_parameters,
)
from symcompile.frontend.random import seed
from symcompile.frontend.variable import NdArray, Variable
from symcompile.runtime import execution
from symcompile.runtime.cache import GraphMismatchError, ModuleEditedError
from symcompile.runtime.cache_auth import UnsafeCacheError, UntrustedCacheWarning
from symcompile.runtime.execution import load

executor.install(execution)  # Variable.forward()/backward(), Solver.update() run modules
del arithmetic  # imported for its effect: Python's operators on Variables
del recurrent  # imported for its effect: F.rnn, F.lstm, F.gru and their PF layers
del attention  # imported for its effect: F/PF.multi_head_attention and PF.transformer*


def __getattr__(name: str):
    """The compile step loads on first use: a script whose graphs are all in the
    runtime cache never imports the compiler."""
    if name in _COMPILER:
        from symcompile.tools import compile as compile_step

        return getattr(compile_step, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_COMPILER = ("CompileResult", "check_gradient", "compile")

__all__ = [
    "CompileResult", "Context", "ExpressionTooLarge", "GraphMismatchError", "ModuleEditedError",
    "NdArray", "UnsafeCacheError", "UntrustedCacheWarning", "Variable", "__version__",
    "auto_forward", "check_gradient", "clear_parameters", "compile", "context_scope",
    "ext_utils", "function", "functions",
    "get_auto_forward", "get_current_context", "get_parameters", "grad",
    "initializer", "load", "load_parameters", "no_grad", "save_parameters", "utils",
    "parameter", "parameter_scope", "parametric_functions", "random", "seed",
    "set_auto_forward", "set_default_context", "solvers",
]
