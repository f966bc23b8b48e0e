"""The backends by name: what `compile(..., backend=...)` and `--backend` choose from."""

from __future__ import annotations

from symcompile.backends.array_api import ArrayAPIBackend
from symcompile.backends.base import Backend
from symcompile.backends.numpy_backend import NumPyBackend

BACKENDS: dict[str, Backend] = {b.name: b for b in (NumPyBackend(), ArrayAPIBackend())}


def get(name: str) -> Backend:
    """The backend called `name` ("array-api" is "array_api", as the command line spells
    it); ValueError listing the known ones otherwise."""
    backend = BACKENDS.get(str(name).replace("-", "_"))
    if backend is None:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    return backend
