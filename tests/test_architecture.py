"""The package's layers (ARCHITECTURE.md) hold: imports only go down, and nothing cycles.

The contracts are in pyproject.toml ([tool.importlinter]) and checked by import-linter,
which reads every import statement, those inside functions included. Modules that a
`Deferred` stand-in imports by name are checked here against the same layer list.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "symcompile"


def _layers() -> list[set[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contract = next(c for c in config["tool"]["importlinter"]["contracts"]
                    if c["id"] == "layers")
    return [{name.strip() for name in layer.split("|")} for layer in contract["layers"]]


def _layer_of(module: str, layers: list[set[str]]) -> int | None:
    for depth, layer in enumerate(layers):
        if any(module == name or module.startswith(name + ".") for name in layer):
            return depth
    return None


def test_import_contracts_are_kept():
    """Layers import only downward, the runtime reaches the compiler through its entry
    point, and no modules import each other in a cycle (import-linter's report says
    which import breaks which contract)."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
         "sys.exit(lint_imports(no_cache=True))"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "BROKEN" not in done.stdout and done.stdout.count("KEPT") == 3, done.stdout


def test_every_module_is_in_a_layer():
    """A new folder must be given its place in the layer list, or nothing checks it."""
    layers = _layers()
    outside = sorted(
        str(path.relative_to(ROOT)) for path in PACKAGE.rglob("*.py")
        if path.parent != PACKAGE and path.parent.name != "utils"
        and _layer_of(".".join(path.relative_to(ROOT).with_suffix("").parts), layers) is None)
    assert outside == [], f"modules in no layer of pyproject.toml's contract: {outside}"


def test_deferred_modules_are_at_or_below_their_user():
    """`Deferred("symcompile.x")` imports by name, out of import-linter's sight."""
    layers = _layers()
    upward = []
    for path in PACKAGE.rglob("*.py"):
        importer = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for target in re.findall(r'Deferred\("(symcompile[\w.]*)"\)', path.read_text()):
            low, high = _layer_of(target, layers), _layer_of(importer, layers)
            if low is None or high is None or low < high:
                upward.append(f"{importer} -> {target}")
    assert upward == [], f"deferred imports that go up or out of the layers: {upward}"
