"""Check a generated module's text before it is written or run.

The emitter builds modules from names users gave (parameter keys, variable names). They
reach the text only as whole `repr()` literals and sanitised identifiers, and this
check proves it on every module: the text parses; its top level is exactly a docstring,
``import numpy``, the expected constants and the expected functions; every constant
holds exactly the value the emitter meant (so no name left its literal); and the code
only reads names it defines, its arguments, ``numpy`` and a few builtins, never imports
and never touches dunder attributes. A failure is a bug in symcompile, never the user's.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# The builtins generated code may call or read (the templates' helper functions use them).
BUILTINS = frozenset({
    "abs", "any", "bool", "dict", "enumerate", "float", "int", "isinstance", "len", "list", "max",
    "reversed",
    "min", "open", "range", "repr", "slice", "sorted", "str", "sum", "tuple", "type", "zip",
    "AttributeError", "Exception", "FloatingPointError", "ImportError", "KeyError", "OSError",
    "TypeError", "ValueError",
    "BaseException", "None", "True", "False",
})
# type(value).__name__ in error messages; the array API standard's namespace protocol
SAFE_DUNDERS = frozenset({"__name__", "__array_namespace__"})
_FORBIDDEN = (ast.Import, ast.ImportFrom, ast.Global, ast.Nonlocal, ast.ClassDef,
              ast.AsyncFunctionDef, ast.Await, ast.Yield, ast.YieldFrom, ast.Lambda)


class GeneratedCodeError(RuntimeError):
    """symcompile produced a module that is not what it meant to write (a bug)."""


@dataclass(frozen=True)
class Source:
    """An expected constant given as source text (``numpy.float32``), not a value."""

    text: str


def verify_module(source: str, constants: Mapping[str, object], functions: Iterable[str],
                  imports: Iterable[str] = ("numpy",), what: str = "module",
                  lazy_imports: Iterable[str] = ()) -> None:
    """Raise GeneratedCodeError unless `source` is exactly the module described.

    Args:
        constants: Each module-level constant, in order, with its value (compared with
            the literal in the text) or a `Source` (compared as normalised source).
        functions: The names of the module's functions.
        imports: The modules it imports (``import x`` only).
        lazy_imports: Modules a function may import when called (``import x`` only).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise GeneratedCodeError(f"generated {what} is not valid Python: {error}") from error
    expected_functions = set(functions)
    body = list(tree.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    seen_constants: list[str] = []
    defined = set(imports) | expected_functions | set(constants)
    for node in body:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names if alias.asname is None]
            if len(names) != len(node.names) or not set(names) <= set(imports):
                _fail(what, node, f"unexpected import {ast.unparse(node)!r}")
        elif isinstance(node, ast.Assign):
            seen_constants.append(_check_constant(node, constants, what))
        elif isinstance(node, ast.FunctionDef):
            if node.name not in expected_functions:
                _fail(what, node, f"unexpected function {node.name!r}")
            expected_functions.discard(node.name)
            _check_function(node, defined, what, frozenset(lazy_imports))
        else:
            _fail(what, node, f"unexpected top-level statement {type(node).__name__}")
    if seen_constants != list(constants):
        raise GeneratedCodeError(f"generated {what} defines the constants {seen_constants}, "
                                 f"expected {list(constants)}")
    if expected_functions:
        raise GeneratedCodeError(f"generated {what} lacks the functions "
                                 f"{sorted(expected_functions)}")


def _fail(what: str, node: ast.AST, problem: str):
    raise GeneratedCodeError(f"generated {what}, line {getattr(node, 'lineno', '?')}: {problem}")


def _check_constant(node: ast.Assign, constants: Mapping[str, object], what: str) -> str:
    if len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name):
        _fail(what, node, "an assignment that is not NAME = VALUE")
    name = node.targets[0].id
    if name not in constants:
        _fail(what, node, f"unexpected constant {name!r}")
    expected = constants[name]
    if isinstance(expected, Source):
        if ast.unparse(node.value) != ast.unparse(ast.parse(expected.text, mode="eval").body):
            _fail(what, node, f"{name} is {ast.unparse(node.value)!r}, expected {expected.text!r}")
        return name
    try:
        found = ast.literal_eval(node.value)
    except ValueError:
        _fail(what, node, f"{name} is not a literal")
    if not _same(found, expected):
        _fail(what, node, f"{name} holds {found!r}, expected {expected!r}")
    return name


def _same(a, b) -> bool:
    """Equal values of equal types, all the way down (1 == 1.0 == True is not enough)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _check_function(function: ast.FunctionDef, module_names: set[str], what: str,
                    lazy_imports: frozenset[str] = frozenset()) -> None:
    """Only allowed constructs, and every name read is bound somewhere it may be (one
    walk over the function: module checks are on every compile's path)."""
    local: set[str] = set()
    read: dict[str, ast.Name] = {}
    for node in ast.walk(function):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                read.setdefault(node.id, node)
            else:
                local.add(node.id)
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("__") and node.attr not in SAFE_DUNDERS:
                _fail(what, node, f"dunder attribute {node.attr!r} in {function.name}()")
        elif isinstance(node, ast.arg):
            local.add(node.arg)
        elif isinstance(node, ast.FunctionDef):
            local.add(node.name)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            local.add(node.name)
        elif isinstance(node, ast.Import) and all(
                alias.asname is None and alias.name in lazy_imports for alias in node.names):
            local.update(alias.name for alias in node.names)
        elif isinstance(node, _FORBIDDEN):
            _fail(what, node, f"{type(node).__name__} inside {function.name}()")
    for name, node in read.items():
        if name not in local and name not in module_names and name not in BUILTINS:
            _fail(what, node, f"{function.name}() reads the unknown name {name!r}")
