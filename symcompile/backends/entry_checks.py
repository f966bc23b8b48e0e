"""What each public function of a generated module checks where its arguments enter.

Generated code knows every shape in advance, so the checks are cheap: per argument, one
isinstance, one tuple compare and one dtype compare (about 0.1 us each). Arrays a
training step updates in place must also be writable, class labels are cast to
integers as nnabla reads them and must name a class, and the update count starts at
1. A failed check calls the module's `refuse_argument` (or `class_labels` raises), which
says which argument, what was expected and what to do: nothing is ever silently
broadcast, cast or rescaled, and a training step changes nothing before its checks pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from symcompile.backends.code_lines import LINE_WIDTH, Line
from symcompile.backends.source_literals import literal
from symcompile.ir.program import IndexBounds


@dataclass(frozen=True)
class Argument:
    """One array argument of a generated function."""

    name: str  # its identifier
    shape: tuple[int, ...]
    writable: bool = False  # the function updates it in place
    labels_name: str = ""  # for class labels read by the body: the integer form's name
    # for class labels (integers or floats): how many classes there are; for N-d indices
    # (F.gather_nd's), the range of each row
    classes: int | IndexBounds = 0
    ignore: bool = True  # whether a label may be -1 (a sample ignored; indices may not)

    def labels_call(self, function: str, *more: str, keep: bool = True) -> Line:
        """``<labels_name> = class_labels(...)``: the checked integer form of this argument
        (`more`: a backend's extra arguments; without `keep`, only the check)."""
        flag = () if self.ignore else ("ignore=False",)
        classes = str(self.classes)
        what = ("as integer class labels (as nnabla reads them; -1 ignores the sample)"
                if self.ignore else "as integer indices (as nnabla reads them)")
        if isinstance(self.classes, IndexBounds):  # a range per row, and who reads them
            classes = literal(self.classes.rows)
            flag = (f"reader={literal(' and '.join(self.classes.readers))}",)
            what = ("as integer indices, row m into axis m (as nnabla reads them; negative "
                    "ones count from the end)")
        arguments = ", ".join((literal(function), literal(self.name), self.name,
                               literal(self.shape), classes, *more, *flag))
        call = f"{self.labels_kernel}({arguments})"
        if not keep:  # (the function's body converts them itself)
            return Line(call, f"{self.name} checked {what}")
        return Line(f"{self.labels_name} = {call}", f"{self.name} {what}")

    @property
    def labels_kernel(self) -> str:
        """The kernel that checks the labels: class_labels, or nd_indices for N-d indices."""
        return "nd_indices" if isinstance(self.classes, IndexBounds) else "class_labels"


def argument_checks(function: str, arguments: list[Argument],
                    keep_labels: bool = True) -> tuple[Line, ...]:
    """The checks at the top of `function`, one per argument, in argument order (the
    integer form of class labels kept as `labels_name` unless not `keep_labels`)."""
    lines = []
    for arg in arguments:
        if arg.labels_name:
            lines.append(arg.labels_call(function, keep=keep_labels))
            continue
        # A 0-d argument may be a NumPy scalar (numpy.float32(1)); one updated in place
        # cannot (scalars are read-only, which the writeable test refuses).
        kinds = "numpy.ndarray" if arg.shape else "(numpy.ndarray, numpy.generic)"
        test = [f"isinstance({arg.name}, {kinds})",
                f"{arg.name}.shape == {literal(arg.shape)}"]
        if not arg.classes:  # labels may be integers
            test.append(f"{arg.name}.dtype == DTYPE")
        if arg.writable:
            test.append(f"{arg.name}.flags.writeable")
        call = (f"refuse_argument({literal(function)}, {literal(arg.name)}, {arg.name}, "
                f"{literal(arg.shape)}{', True' if arg.writable else ''})")
        lines.append(Line(condition(test), body=call))
    return tuple(lines)


def condition(test: list[str], width: int = LINE_WIDTH - 4) -> str:
    """``if not (a and b ...):``, continued on lines of its own past `width` columns
    (the text is indented by the template; continuation lines hang 8 deeper)."""
    rows = [f"if not ({test[0]}"]
    for part in test[1:]:
        if len(rows[-1]) + len(" and ") + len(part) + len("):") <= width:
            rows[-1] += f" and {part}"
        else:
            rows.append(f"        and {part}")
    return "\n".join(rows) + "):"


def step_check(function: str, step: str) -> Line:
    """Update counts start at 1 (bias corrections divide by 1 - beta**step)."""
    return Line(f"if not {step} >= 1:",
                body=f"refuse_step({literal(function)}, {step})")


def checked_labels(arguments: list[Argument]) -> tuple[Line, ...]:
    """The integer form of each class-label argument, without its check: what
    class_labels and nd_indices return once they have checked it (for a function the
    runtime calls only with labels a checked entry has just accepted)."""
    return tuple(Line(f"{arg.labels_name} = {arg.name}.astype(numpy.int64)",
                      f"{arg.name} as integers, as {arg.labels_kernel} returns them")
                 for arg in arguments if arg.labels_name)
