"""Modules imported when first used, so that `import symcompile` stays cheap.

A script whose graph is already in the runtime cache never compiles, so it must not pay
for importing SymPy (seconds on a loaded machine) or jinja2. The op table's lowering
rules and the compiler are needed only when compiling: the modules that hold them are
reached through a `Deferred` stand-in, which imports the real module on the first
attribute read. Until then nothing is imported and nothing is put in `sys.modules`
(importlib's LazyLoader would put a placeholder there).
"""

from __future__ import annotations

import importlib


class Deferred:
    """A stand-in for the module `name`, imported on first attribute access."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str):
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<deferred module {self._name!r}>"
