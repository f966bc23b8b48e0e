"""Model files for the command line: a Python file's `build()`, or an nnabla file.

The convention for Python: a file with a module-level function ``build()`` that builds
the graph with symcompile's nnabla API and returns the loss Variable, or a tuple whose
first item is the loss. The file is executed with ``__name__`` set to
``"__symcompile_model__"``, so its ``if __name__ == "__main__":`` block does not run.

nnabla's files (`.nnp`, `.nntxt`, `.prototxt`, `.protobuf`, from nnabla, Neural Network
Console or `symcompile.utils.save`) are read, not run: the graph is the output of one of
their networks (by default the first executor's network and output).
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from symcompile.frontend import parameter
from symcompile.frontend.variable import Variable


class ModelFileError(Exception):
    """A model file is missing, has no build(), or build() did not return a loss."""


NNABLA_FILES = (".nnp", ".nntxt", ".prototxt", ".protobuf")


def load_loss(path: str | Path, network: str | None = None, output: str | None = None
              ) -> Variable:
    """The root of the model file at `path`: the loss a Python file's `build()` builds,
    or the output `output` of network `network` of an nnabla file."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    parameter.clear_parameters()
    if path.suffix in NNABLA_FILES:
        return _nnabla_file_root(path, network, output)
    if network is not None or output is not None:
        raise ModelFileError(f"{path}: --network and --output choose within nnabla's files "
                             f"({', '.join(NNABLA_FILES)}), not Python model files")
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


def _nnabla_file_root(path: Path, network: str | None, output: str | None) -> Variable:
    from symcompile.utils.nnp_graph import NnpError, NnpLoader

    try:
        loader = NnpLoader(path)
        names = loader.get_network_names()
        executors = list(loader.executors.values())
        if network is None:
            if executors:
                network = executors[0][0]
            elif len(names) == 1:
                network = names[0]
            else:
                raise ModelFileError(f"{path}: it has networks {', '.join(map(repr, names))} "
                                     "and no executor; choose one with --network")
        built = loader.get_network(network)
    except NnpError as exc:
        raise ModelFileError(str(exc)) from exc
    if output is None:
        chosen = [outs for net, _, outs in executors if net == network and outs]
        candidates = chosen[0] if chosen else list(built.outputs)
        if len(candidates) != 1 and not chosen:
            raise ModelFileError(f"{path}: network {network!r} has outputs "
                                 f"{', '.join(map(repr, candidates))}; choose one with --output")
        output = candidates[0]
    if output not in built.variables:
        raise ModelFileError(f"{path}: network {network!r} has no variable {output!r}; its "
                             f"outputs are {', '.join(map(repr, built.outputs))}")
    return built.variables[output]
