"""Where in the user's code a graph node was created, and the name it was assigned to.

Every `F.*` call and `nn.Variable(...)` records the first stack frame outside the
symcompile package (file, line and the call's column span). At compile time that
position gives the provenance comment of each generated statement and, when the call
is the whole right-hand side of ``name = ...`` (or its element in ``x, t = ..., ...``), a
readable name for the value.
"""

from __future__ import annotations

import ast
import functools
import itertools
import linecache
import os
import sys
from dataclasses import dataclass
from pathlib import Path

_PACKAGE = __name__.partition(".")[0]  # "symcompile": frames in it are not user code


@dataclass(frozen=True)
class CallSite:
    """The position of one call in the user's source (1-based lines, 0-based columns)."""

    filename: str
    lineno: int
    end_lineno: int | None = None
    col: int | None = None
    end_col: int | None = None

    @property
    def display(self) -> str:
        return f"{display_path(self.filename)}:{self.lineno}"


def capture() -> CallSite | None:
    """The call site of the innermost frame that is not symcompile's own code."""
    frame = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module != _PACKAGE and not module.startswith(_PACKAGE + "."):
            break
        frame = frame.f_back
    if frame is None:
        return None
    code = frame.f_code
    position = None
    if frame.f_lasti >= 0:
        position = next(itertools.islice(code.co_positions(), frame.f_lasti // 2, None), None)
    if position is None or position[0] is None:
        return CallSite(code.co_filename, frame.f_lineno)
    return CallSite(code.co_filename, position[0], position[1], position[2], position[3])


def assigned_name(site: CallSite | None) -> str | None:
    """``x`` when the call at `site` is the entire value of ``x = <call>``, else None."""
    if site is None or site.col is None:
        return None
    return _assignments(site.filename).get((site.lineno, site.col, site.end_lineno, site.end_col))


def display_path(filename: str) -> str:
    """`filename` relative to the working directory when inside it, else its base name.

    Keeps provenance comments identical on every machine that runs from the project root.
    """
    try:
        relative = Path(os.path.abspath(filename)).relative_to(Path.cwd())
        return relative.as_posix()
    except ValueError:
        return Path(filename).name


@functools.lru_cache(maxsize=64)
def _assignments_cached(filename: str, mtime: float) -> dict:
    lines = linecache.getlines(filename)
    if not lines:
        return {}
    try:
        tree = ast.parse("".join(lines), filename)
    except SyntaxError:
        return {}
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target = node.target
        else:
            continue
        for name, value in _pairs(target, node.value):
            key = (value.lineno, value.col_offset, value.end_lineno, value.end_col_offset)
            found[key] = name
    return found


def _pairs(target, value):
    """(name, value) for ``x = v`` and, element by element, ``x, t = v, u``."""
    if isinstance(target, ast.Name):
        yield target.id, value
    elif isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)) \
            and len(target.elts) == len(value.elts) \
            and not any(isinstance(e, ast.Starred) for e in target.elts + value.elts):
        for element, part in zip(target.elts, value.elts, strict=True):
            yield from _pairs(element, part)


def _assignments(filename: str) -> dict:
    try:
        mtime = os.path.getmtime(filename)
    except OSError:
        mtime = 0.0
    return _assignments_cached(filename, mtime)
