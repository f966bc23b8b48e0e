"""What a backend is: everything that decides what the generated text computes with.

The passes produce a scheduled Program that knows nothing of NumPy; a `Backend` turns it
into source. It owns the expression printer, the templates, the literals the module
writes (dtypes, seeds, zeros, initial values), the checks where arguments enter, how an
update statement writes its result, and the *kernels*: helper functions a module calls
for work that is not one expression. A module inlines exactly the kernels it uses, so it
stays standalone.

A new backend is a small subclass: `array_api.ArrayAPIBackend` overrides the printer,
the templates, the literals and the checks of `numpy_backend.NumPyBackend`, much as
SymPy's CuPy printer is a few lines over its NumPy printer.
"""

from __future__ import annotations

import ast
import inspect
import types
from collections.abc import Iterable

from symcompile.backends.code_lines import Line
from symcompile.backends.entry_checks import Argument
from symcompile.backends.verify import Source
from symcompile.ops.update_rules import Update


class Kernels:
    """Helper functions a module may call, kept as real Python in modules of their own
    (so they are linted, tested and read like any code) and inlined by source.

    A kernel is looked up in `modules` in order (a backend's own, then the portable
    ones). The kernels a kernel calls are found in its code (the names it reads that are
    kernels').
    """

    def __init__(self, *modules: types.ModuleType) -> None:
        self._modules = modules
        self._calls: dict[str, tuple[str, ...]] = {}

    def _functions(self) -> dict[str, types.FunctionType]:
        found: dict[str, types.FunctionType] = {}
        for module in self._modules:
            for name, value in vars(module).items():
                if isinstance(value, types.FunctionType) and value.__module__ == module.__name__ \
                        and not name.startswith("_"):
                    found.setdefault(name, value)
        return found

    def names(self) -> tuple[str, ...]:
        return tuple(self._functions())

    def closure(self, used: Iterable[str]) -> tuple[str, ...]:
        """`used` and every kernel they call, in the kernel module's order."""
        wanted, stack = set(), list(used)
        while stack:
            name = stack.pop()
            if name not in wanted:
                if name not in self.names():
                    where = ", ".join(m.__name__ for m in self._modules)
                    raise KeyError(f"no kernel named {name!r} in {where}")
                wanted.add(name)
                stack.extend(self.calls(name))
        return tuple(name for name in self.names() if name in wanted)

    def calls(self, name: str) -> tuple[str, ...]:
        """The kernels `name` calls: those its code reads."""
        if name not in self._calls:
            tree = ast.parse(self.source(name))
            read = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
            found = sorted((read & set(self.names())) - {name})
            self._calls[name] = tuple(found)
        return self._calls[name]

    def source(self, name: str) -> str:
        return inspect.getsource(self._functions()[name]).rstrip() + "\n"


class Backend:
    """The interface the emitter prints through; see `NumPyBackend` for the reference
    implementation."""

    name: str = ""
    module_template: str = ""
    update_template: str = ""
    imports: tuple[str, ...] = ()  # what the module's template imports
    update_imports: tuple[str, ...] = ()
    lazy_imports: tuple[str, ...] = ()  # modules a kernel may import when first called
    kernels: Kernels
    always_kernels: tuple[str, ...] = ()  # kernels every module uses
    template_helpers: tuple[str, ...] = ()  # functions the module template defines
    reserved_names: frozenset[str] = frozenset()  # locals its functions define
    in_place: str = ""  # the module docstring's sentence about updates
    # whether updates write into the arrays passed in, always (not only where the arrays'
    # library allows it): what the runtime's <rule>_backward_update relies on
    updates_in_place: bool = False

    def printer(self, shapes, dtype: str):
        raise NotImplementedError

    def dtype_constant(self, dtype: str) -> Source:
        raise NotImplementedError

    def seed_value(self, shape: tuple[int, ...], dtype: str) -> str:
        raise NotImplementedError

    def zeros(self, shape: tuple[int, ...], dtype: str) -> str:
        raise NotImplementedError

    def initializer(self, init, shape: tuple[int, ...], dtype: str) -> tuple[str, str]:
        raise NotImplementedError

    def argument_checks(self, function: str, arguments: list[Argument],
                        keep_labels: bool = True
                        ) -> tuple[tuple[Line, ...], tuple[str, ...]]:
        """The checks at the top of `function` and the kernels they call (class labels'
        integer form kept unless not `keep_labels`)."""
        raise NotImplementedError

    def checked_labels(self, arguments: list[Argument]) -> tuple[Line, ...]:
        """The integer form of the class-label arguments without their checks (for a
        backend that `updates_in_place`: the runtime's unchecked backward-and-update)."""
        raise NotImplementedError

    def step_check(self, function: str, step: str) -> tuple[Line, tuple[str, ...]]:
        raise NotImplementedError

    def prologue(self, function: str, arguments: Iterable[str], dtype: str
                 ) -> tuple[Line, ...]:
        """Lines every compiled function starts with (after its docstring)."""
        return ()

    def update_statement(self, update: Update, text: str) -> str:
        """One update statement (``w -= ...``), `text` being its printed expression."""
        raise NotImplementedError

    def step_returns(self, outputs: str, updated: list[str]) -> str:
        """What a training step returns, given its outputs and the arrays it updated."""
        raise NotImplementedError

    def step_returns_doc(self, outputs: str) -> str:
        """The training step's docstring on what it returns."""
        raise NotImplementedError

    def update_returns(self, updated: list[str]) -> str:
        """What the standalone update kernel (`solver.update()`'s) returns."""
        raise NotImplementedError
