"""Python source for constant values, laid out to fit the generated code's width.

A literal is always printed whole, by `repr`: a long dict or tuple is laid out one item
per line, but a string is never wrapped or split, so no text a user gave (a parameter
name, a variable name) can end its literal early and run as code. A line holding one
long literal is simply long.
"""

from __future__ import annotations

import math

from symcompile.backends.code_lines import LINE_WIDTH

WIDTH = LINE_WIDTH


def literal(value) -> str:
    """One-line source for a constant: str, int, float, bool, None, and tuples and dicts
    of them."""
    if isinstance(value, tuple):
        items = ", ".join(literal(v) for v in value)
        return f"({items},)" if len(value) == 1 else f"({items})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"no literal for the non-finite float {value!r}")
    if isinstance(value, (str, int, float, bool)) or value is None:
        return repr(value)
    raise TypeError(f"no literal for {value!r}")


def block(value, indent: int = 0, used: int | None = None, width: int = WIDTH,
          table: bool = False) -> str:
    """Source for `value`, starting at column `used` (default: `indent`) of a line
    indented by `indent`: on one line if it fits, else a dict or tuple puts each item on
    a line of its own, one level deeper (recursively). A `table` (a non-empty dict) always
    puts its items on lines of their own."""
    used = indent if used is None else used
    flat = literal(value)
    expand = table and isinstance(value, dict) and value
    if not expand and (used + len(flat) <= width or not isinstance(value, (dict, tuple))
                       or not value):
        return flat
    inner = " " * (indent + 4)
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            head = f"{inner}{literal(key)}: "
            lines.append(f"{head}{block(item, indent + 4, len(head), width)},")
        opening, closing = "{", "}"
    else:
        lines = [f"{inner}{block(item, indent + 4, len(inner), width)}," for item in value]
        opening, closing = "(", ")"
    return "\n".join([opening, *lines, " " * indent + closing])
