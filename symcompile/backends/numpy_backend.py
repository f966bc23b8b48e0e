"""The NumPy backend: modules that import only NumPy and update arrays in place."""

from __future__ import annotations

from collections.abc import Iterable

from symcompile.backends import entry_checks
from symcompile.backends.base import Backend, Kernels
from symcompile.backends.code_lines import Line
from symcompile.backends.entry_checks import Argument
from symcompile.backends.kernels import numpy_kernels, portable_kernels
from symcompile.backends.printer import NumPyPrinter, shape_text
from symcompile.backends.source_literals import literal
from symcompile.backends.verify import Source
from symcompile.ops.update_rules import Update


class NumPyBackend(Backend):
    name = "numpy"
    module_template = "numpy/module.py.jinja"
    update_template = "numpy/update.py.jinja"
    imports = ("os", "numpy")
    update_imports = ("numpy",)
    kernels = Kernels(numpy_kernels, portable_kernels)
    template_helpers = ("refuse_argument", "init_parameters", "save_checkpoint",
                        "load_checkpoint", "check_gradient")
    in_place = ("The training step updates parameters and solver state in place (the "
                "arrays passed in hold the new values).")
    updates_in_place = True

    def printer(self, shapes, dtype: str) -> NumPyPrinter:
        return NumPyPrinter(shapes, dtype)

    def dtype_constant(self, dtype: str) -> Source:
        return Source(f"numpy.{dtype}")

    def seed_value(self, shape: tuple[int, ...], dtype: str) -> str:
        if shape == ():
            return f"numpy.{dtype}(1)"
        return f"numpy.ones({shape_text(shape)}, dtype=numpy.{dtype})"

    def zeros(self, shape: tuple[int, ...], dtype: str) -> str:
        return f"numpy.zeros({shape_text(shape)}, dtype=numpy.{dtype})"

    def initializer(self, init, shape: tuple[int, ...], dtype: str) -> tuple[str, str]:
        """Source that re-creates a parameter's initial values from `rng` (a
        numpy.random.RandomState, drawn as nnabla's initializers draw), and a note."""
        kind = init[0] if init else "constant"
        if kind == "joined":  # pieces along the last axis, drawn in turn
            pieces = [self.initializer(part, tuple(shape[:-1]) + (width,), dtype)
                      for part, width in init[1:]]
            return (f"numpy.concatenate([{', '.join(text for text, _ in pieces)}], axis=-1)",
                    "joined along the last axis: " + "; ".join(note for _, note in pieces))
        shape = shape_text(shape)
        if kind == "uniform":
            low, high = literal(init[1]), literal(init[2])
            return (f"rng.uniform({low}, {high}, size={shape}).astype(numpy.{dtype})",
                    f"UniformInitializer(({low}, {high}))")
        if kind == "normal":
            sigma = literal(init[1])
            return (f"(rng.randn(*{shape}) * {sigma}).astype(numpy.{dtype})",
                    f"NormalInitializer({sigma})")
        if kind == "constant":
            value = literal(float(init[1]) if init else 0.0)
            return f"numpy.full({shape}, {value}, dtype=numpy.{dtype})", f"constant {value}"
        return (f"numpy.zeros({shape}, dtype=numpy.{dtype})",
                "initialised from an array or a custom initializer when the graph was built; "
                "zeros here: load saved values instead")

    def argument_checks(self, function: str, arguments: list[Argument],
                        keep_labels: bool = True
                        ) -> tuple[tuple[Line, ...], tuple[str, ...]]:
        kernels = tuple(dict.fromkeys(a.labels_kernel for a in arguments if a.labels_name))
        return entry_checks.argument_checks(function, arguments, keep_labels), kernels

    def checked_labels(self, arguments: list[Argument]) -> tuple[Line, ...]:
        return entry_checks.checked_labels(arguments)

    def step_check(self, function: str, step: str) -> tuple[Line, tuple[str, ...]]:
        return entry_checks.step_check(function, step), ("refuse_step",)

    def prologue(self, function: str, arguments: Iterable[str], dtype: str
                 ) -> tuple[Line, ...]:
        return ()

    def update_statement(self, update: Update, text: str) -> str:
        """``m *= beta1``, ``w -= ...``; a state the rule replaces is written into the
        caller's array (``v[...] = ...``)."""
        target = update.target.name
        if update.op == "=" and not (update.scalar or update.local):
            target += "[...]"
        return f"{target} {update.op} {text}"

    def step_returns(self, outputs: str, updated: list[str]) -> str:
        return outputs

    def step_returns_doc(self, outputs: str) -> str:
        return outputs

    def update_returns(self, updated: list[str]) -> str:
        return ""
