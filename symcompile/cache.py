"""Loading generated modules, checking they belong to the graph, and where they are cached.

Needs only the standard library and NumPy (which the generated module imports), so the
runtime can load modules without SymPy or jinja2. A module is used only if its
`GRAPH_HASH` matches the graph it is bound to; anything else is refused with an error
that says how to regenerate it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
import types
from pathlib import Path


class GraphMismatchError(ValueError):
    """A generated module was made for a different graph than the one it is used with."""


def cache_dir() -> Path:
    """Where the runtime keeps modules it compiles on first use.

    ``$SYMCOMPILE_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/symcompile`` or
    ``~/.cache/symcompile``. Safe to delete at any time.
    """
    explicit = os.environ.get("SYMCOMPILE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "symcompile"


def load_module(path: str | os.PathLike, expected_hash: str | None = None) -> types.ModuleType:
    """Import the generated module at `path`; refuse it if its GRAPH_HASH is not `expected_hash`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no generated module at {path}")
    # One module object per (file, content): an edited or replaced file is imported anew.
    digest = hashlib.sha256(str(path.resolve()).encode() + b"\0" + path.read_bytes())
    digest = digest.hexdigest()[:12]
    name = f"_symcompile_generated_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{digest}"
    if name in sys.modules:
        module = sys.modules[name]
    else:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import generated module {path}")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except SyntaxError as exc:
            raise ImportError(f"generated module {path} is not valid Python ({exc}); "
                              "delete it and compile again") from exc
        sys.modules[name] = module
    found = getattr(module, "GRAPH_HASH", None)
    if expected_hash is not None and found != expected_hash:
        graph_name = getattr(module, "GRAPH_NAME", path.stem)
        raise GraphMismatchError(
            f"{path} was generated for a graph with hash {found!r} but this graph hashes to "
            f"{expected_hash!r}: the graph changed since the module was generated (graph "
            f"{graph_name!r}). Regenerate it (see the 'Regenerate:' line at the top of the "
            "file, or call symcompile.compile(loss, ...)) or build the graph it was made for."
        )
    return module
