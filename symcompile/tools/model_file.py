"""Model files for the command line: run the file, call its `build()`, get the loss.

The convention: a Python file with a module-level function ``build()`` that builds the
graph with symcompile's nnabla API and returns the loss Variable, or a tuple whose
first item is the loss. The file is executed with ``__name__`` set to
``"__symcompile_model__"``, so its ``if __name__ == "__main__":`` block does not run.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from symcompile.frontend import parameter
from symcompile.frontend.variable import Variable


class ModelFileError(Exception):
    """A model file is missing, has no build(), or build() did not return a loss."""


def load_loss(path: str | Path) -> Variable:
    """Execute the model file at `path` and return the loss its `build()` builds."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    parameter.clear_parameters()
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    try:
        try:
            namespace = runpy.run_path(str(path), run_name="__symcompile_model__")
        except Exception as exc:
            raise ModelFileError(f"{path}: running the model file raised "
                                 f"{type(exc).__name__}: {exc}") from exc
        build = namespace.get("build")
        if not callable(build):
            raise ModelFileError(
                f"{path}: no build() function. A model file defines build(), which builds "
                "the graph and returns the loss Variable (or a tuple starting with it)."
            )
        try:
            result = build()
        except Exception as exc:
            raise ModelFileError(f"{path}: build() raised {type(exc).__name__}: {exc}") from exc
    finally:
        try:
            sys.path.remove(folder)
        except ValueError:
            pass
    loss = result[0] if isinstance(result, (tuple, list)) and result else result
    if not isinstance(loss, Variable):
        raise ModelFileError(
            f"{path}: build() returned {type(result).__name__}, expected the loss Variable "
            "(or a tuple whose first item is the loss)"
        )
    return loss
