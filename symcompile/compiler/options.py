"""What a compile is keyed by, readable without loading the compiler.

The runtime looks a graph up in its cache by the graph's hash, these options and the
compiler's own fingerprint; on a hit it runs the cached module and never imports the
compiler (nor SymPy, nor jinja2). So the options, their defaults and the fingerprint live
here, apart from the passes that use them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from symcompile._version import __version__
from symcompile.common.resources import PACKAGE_DIR, template_dir

# Operations one fused statement may hold before a chain of elementwise functions is cut
# (see `fusion_cost` for the other limits of a region).
FUSION_OPS_LIMIT = 40

DTYPES = ("float32", "float64")  # the dtypes a module can be compiled for
# The backends by name, readable without loading them (symcompile.backends.registry has
# the objects; a test keeps the two equal).
BACKEND_NAMES = ("numpy", "array_api")


@dataclass(frozen=True)
class Options:
    name: str
    solver: str | None = "sgd"  # an update rule's name (see update_rules.RULES)
    dtype: str = "float32"
    regenerate: str = ""
    source: str = ""
    solver_options: tuple[tuple[str, bool], ...] = ()
    hyper: tuple[tuple[str, float], ...] = ()  # defaults of the fused step's arguments
    fusion_limit: int = FUSION_OPS_LIMIT
    check_finite: bool = False
    backend: str = "numpy"  # what the module computes with (see symcompile.backends)
    # also <solver>_backward_update(saved, ...), backward() and the solver's update in one
    # call, which the runtime's nnabla loop runs (where the backend updates in place)
    split_update: bool = True

    def key(self) -> str:
        return (f"{self.name}|{self.solver}|{self.solver_options}|{self.hyper}|{self.dtype}"
                f"|{self.fusion_limit}|{self.check_finite}|{self.backend}"
                f"|{self.split_update}")


def compiler_fingerprint() -> str:
    """A fingerprint of symcompile's own code and templates: cached modules from another
    version of the compiler are never reused.

    Taken from each file's name, size and modification time (as Python's own bytecode
    cache does), not its bytes: the runtime computes it in every process before it can
    look a graph up, and reading the whole package would be most of a cache hit.
    """
    global _FINGERPRINT
    if _FINGERPRINT is None:
        digest = hashlib.sha256(__version__.encode())
        files = [*PACKAGE_DIR.rglob("*.py"), *template_dir().rglob("*.jinja")]
        for path in sorted(files):
            status = path.stat()
            name = path.relative_to(path.parent.parent).as_posix()
            digest.update(f"{name}|{status.st_size}|{status.st_mtime_ns}\n".encode())
        _FINGERPRINT = digest.hexdigest()[:16]
    return _FINGERPRINT


_FINGERPRINT: str | None = None
