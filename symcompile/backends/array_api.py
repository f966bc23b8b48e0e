"""The array API backend: modules that compute with whatever library their arrays are from.

Every function asks its arguments for their namespace (the Python array API standard's
``__array_namespace__``; array-api-compat's wrapper for PyTorch) and calls only what the
standard defines, so one module runs on NumPy, CuPy, PyTorch, JAX or array-api-strict
arrays and returns arrays of the same library. Where the standard lacks what the NumPy
printer uses, portable forms stand in: ``vdot`` is ``vecdot`` of flattened arrays, array
methods (``x.sum()``) are namespace functions, boolean masks become numbers with
``astype`` before any arithmetic (the standard defines none on booleans), and an
update that replaces a state array goes through the `assign` kernel (in place where
arrays are mutable, a new array where they are not).
"""

from __future__ import annotations

from collections.abc import Iterable

import sympy

from symcompile.backends import entry_checks
from symcompile.backends.base import Kernels
from symcompile.backends.code_lines import Line
from symcompile.backends.entry_checks import Argument
from symcompile.backends.kernels import array_api_kernels, portable_kernels
from symcompile.backends.numpy_backend import NumPyBackend
from symcompile.backends.printer import NumPyPrinter, shape_text
from symcompile.backends.source_literals import literal
from symcompile.ir.indexing import slice_text
from symcompile.ir.primitives import as_ints
from symcompile.ops.update_rules import Update

# NumPy's names for functions the standard spells otherwise.
_STANDARD_NAMES = {
    "arccos": "acos", "arcsin": "asin", "arctan": "atan", "arctan2": "atan2",
    "arccosh": "acosh", "arcsinh": "asinh", "arctanh": "atanh", "power": "pow",
    "absolute": "abs", "transpose": "permute_dims", "concatenate": "concat",
    "mod": "remainder", "amax": "max", "amin": "min", "bitwise_not": "bitwise_invert",
}


class ArrayAPIPrinter(NumPyPrinter):
    """The NumPy printer, calling the standard's functions on the local namespace ``xp``;
    ``dtype`` and ``device`` are locals of every generated function too."""

    outer_products_by_dot = False  # (the standard has no dot: every product is @)
    sums_by_products_from = None  # (sums are the namespace's own)

    def _print(self, expr, **kwargs):
        """A NumPy function of numbers that does not fold into a float (acosh(0) is complex
        to SymPy, NaN to NumPy) is called on 0-d arrays: the standard's functions take
        arrays."""
        if isinstance(expr, sympy.Function) and type(expr).__name__ in self.known_functions \
                and expr.args and all(arg.is_number for arg in expr.args):
            folded = self._folded(expr)
            if folded is not None:
                return folded
            function = self._module_format(self.known_functions[type(expr).__name__])
            return f"{function}({', '.join(self._typed(arg) for arg in expr.args)})"
        return super()._print(expr, **kwargs)

    def _module_format(self, fqn, register=True):
        if fqn.startswith("numpy."):
            name = fqn.removeprefix("numpy.")
            return "xp." + _STANDARD_NAMES.get(name, name)
        return super()._module_format(fqn, register)

    # Booleans are numbers only in NumPy: masks are made numbers where they are made.
    def _is_mask(self, expr) -> bool:
        return False

    def _as_number(self, text: str) -> str:
        return f"xp.astype({text}, dtype)"

    def _number(self, text: str) -> str:
        return self._as_number(text)

    def _negated_number(self, text: str) -> str:
        return f"-{self._as_number(text)}"

    def _typed(self, value) -> str:
        return f"xp.asarray({self._print(value)}, dtype=dtype, device=device)"

    def _print_Fmod(self, expr):
        """The standard has no fmod: |x0| mod |x1| (exact for positive operands) with the
        sign of x0. A number x1 is printed as its magnitude (xp.abs takes arrays only)."""
        x0, x1 = (self._print(a) for a in expr.args)
        divisor = expr.args[1]
        x1 = self._print(abs(divisor)) if divisor.is_number else f"xp.abs({x1})"
        return f"xp.copysign(xp.remainder(xp.abs({x0}), {x1}), {x0})"

    def _print_Heaviside(self, expr):
        return self._as_number(f"{self._print(expr.args[0])} > 0")

    def _print_IsGreater(self, expr):
        a, b = expr.args
        return self._as_number(f"{self._print(a)} > {self._print(b)}")

    def _print_IsLessEqual(self, expr):
        a, b = expr.args
        return self._as_number(f"{self._print(a)} <= {self._print(b)}")

    def _print_OneHot(self, expr):
        """Labels computed in the module are floats (truncated): they are compared as
        integers with the arange (the standard compares no float with an integer array).
        int32 holds every class index and is every library's (JAX's default is int32);
        an input's labels are int32 already (class_labels), and are not copied."""
        t, classes, axis = expr.args
        rank = len(self._shapes.of(t))
        index = self._index_along(int(classes), int(axis), rank)
        labels = f"xp.astype({self._print(t)}, xp.int32, copy=False)"
        return self._as_number(f"{labels} == {index}")

    def _print_ValidLabel(self, expr):
        t = self._print(expr.args[0])
        return self._as_number(f"({t} >= 0) & ({t} < {int(expr.args[1])})")

    def _print_FirstExtremum(self, expr):
        x, axis, is_max = expr.args
        shape = self._shapes.of(x)
        axis = int(axis)
        find = "xp.argmax" if bool(is_max) else "xp.argmin"
        index = self._index_along(shape[axis], axis, len(shape))
        return self._as_number(f"{index} == {find}({self._print(x)}, axis={axis}, keepdims=True)")

    # Array methods are NumPy's: the standard has namespace functions.
    def _sum(self, x, axis: str, keep: str) -> str:
        return f"xp.sum({self._print(x)}, axis={axis}{keep})"

    def _print_ReduceMax(self, expr):
        x, axis, keep = expr.args
        if self._shapes is not None and self._shapes.of(x) == ():
            return self._print(x)
        keep = ", keepdims=True" if bool(keep) else ""
        return f"xp.{expr.method}({self._print(x)}, axis={int(axis)}{keep})"

    _print_ReduceMin = _print_ReduceMax

    def _print_Dot(self, expr):
        u, v = (self._print(a) for a in expr.args)
        return f"xp.vecdot(xp.reshape({u}, (-1,)), xp.reshape({v}, (-1,)))"

    def _print_ExpandDims(self, expr):
        text = self._print(expr.args[0])
        for axis in sorted(as_ints(expr.args[1])):  # the standard inserts one axis a call
            text = f"xp.expand_dims({text}, axis={axis})"
        return text

    def _print_Copy(self, expr):
        return f"xp.asarray({self._print(expr.args[0])}, copy=True)"

    def _arange(self, length: int) -> str:
        return f"xp.arange({length}, device=device)"

    def _reshaped(self, text: str, shape) -> str:
        return f"xp.reshape({text}, {shape_text(shape)})"

    def _kernel_call(self, name: str, arguments: list[str]) -> str:
        """Kernels compute with the arrays' namespace: ``xp`` comes first."""
        return super()._kernel_call(name, ["xp", *arguments])

    def _mask_dtype(self) -> list[str]:
        return ["dtype", "device"]

    def _print_Slice(self, expr):
        # the standard needs an index for every axis: trailing whole axes as "..."
        return f"{self._receiver(expr.args[0])}{slice_text(expr, self._shapes, ellipsis=True)}"

    def _print_Full(self, expr):
        value, shape = expr.args[0], shape_text(expr.args[1])
        if value.is_Number:
            return f"xp.full({shape}, {self._print(value)}, dtype=dtype, device=device)"
        # the standard fills with Python scalars only: a 0-d array times ones
        ones = f"xp.ones({shape}, dtype=dtype, device=device)"
        return f"{ones}*{self.parenthesize(value, 50)}"


class ArrayAPIBackend(NumPyBackend):
    name = "array_api"
    module_template = "array_api/module.py.jinja"
    update_template = "array_api/update.py.jinja"
    imports = ()  # each function asks its arrays for their namespace
    update_imports = ()
    lazy_imports = ("array_api_compat", "numpy")  # compat for torch; NumPy to draw inits
    kernels = Kernels(array_api_kernels, portable_kernels)
    always_kernels = ("namespace", "device_of", "assign")
    template_helpers = ("refuse_argument", "init_parameters", "check_gradient")
    in_place = ("The training step updates parameters and solver state in place where "
                "the arrays' library allows it (NumPy, CuPy, PyTorch, array-api-strict), and "
                "returns them as well, after the outputs, as a dict keyed by argument name: "
                "for immutable arrays (JAX) those are the new arrays.")
    updates_in_place = False

    def printer(self, shapes, dtype: str) -> ArrayAPIPrinter:
        return ArrayAPIPrinter(shapes, dtype)

    def dtype_constant(self, dtype: str) -> str:
        return dtype  # a name: each function takes the dtype object from its namespace

    def seed_value(self, shape: tuple[int, ...], dtype: str) -> str:
        return f"xp.ones({shape_text(shape) if shape else '()'}, dtype=dtype, device=device)"

    def zeros(self, shape: tuple[int, ...], dtype: str) -> str:
        return f"xp.zeros({shape_text(shape)}, dtype=xp.{dtype}, device=device)"

    def argument_checks(self, function: str, arguments: list[Argument],
                        keep_labels: bool = True
                        ) -> tuple[tuple[Line, ...], tuple[str, ...]]:
        lines, kernels = [], ()
        for arg in arguments:
            if arg.labels_name:
                lines.append(arg.labels_call(function, "kind", keep=keep_labels))
                kernels = tuple(dict.fromkeys((*kernels, arg.labels_kernel)))
                continue
            test = f"isinstance({arg.name}, kind) and {arg.name}.shape == {literal(arg.shape)}"
            if not arg.classes:  # labels may be integers
                test += f" and {arg.name}.dtype == dtype"
            lines.append(Line(entry_checks.condition(test.split(" and ")), body=(
                f"refuse_argument({literal(function)}, {literal(arg.name)}, {arg.name}, "
                f"{literal(arg.shape)}, kind)")))
        return tuple(lines), kernels

    def prologue(self, function: str, arguments: Iterable[str], dtype: str
                 ) -> tuple[Line, ...]:
        first = next(iter(arguments), None)
        if first is None:  # a graph of constants (F.arange, F.constant): NumPy's arrays
            return (Line("import numpy", "no argument to take the library from: NumPy's, "
                                         "the runtime's"),
                    Line(f"xp, kind = namespace({literal(function)}, 'numpy', "
                         f"numpy.empty(0))"),
                    Line(f"dtype, device = xp.{dtype}, device_of(numpy.empty(0))"))
        return (Line(f"xp, kind = namespace({literal(function)}, {literal(first)}, {first})",
                     "the arguments' library (its array API namespace and array type), "
                     "from the first"),
                Line(f"dtype, device = xp.{dtype}, device_of({first})"))

    def update_statement(self, update: Update, text: str) -> str:
        """``w -= ...`` (in place, or a new array where arrays are immutable); a state the
        rule replaces is assigned into the caller's array where that is possible."""
        target = update.target.name
        if update.op == "=" and not (update.scalar or update.local):
            return f"{target} = assign({target}, {text})"
        return f"{target} {update.op} {text}"

    def step_returns(self, outputs: str, updated: list[str]) -> str:
        table = ", ".join(f"{literal(name)}: {name}" for name in updated)
        return f"{outputs}, {{{table}}}"

    def step_returns_doc(self, outputs: str) -> str:
        return f"{outputs}, then the updated arrays by argument name"

    def update_returns(self, updated: list[str]) -> str:
        return f"({updated[0]},)" if len(updated) == 1 else f"({', '.join(updated)})"
