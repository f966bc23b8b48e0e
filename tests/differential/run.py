"""Run the differential scenarios (and nnabla's tutorial) on nnabla or on symcompile.

    python tests/differential/run.py --record    # with SYMCOMPILE_NNABLA_PYTHON set

re-records `nnabla_1.39.json`, the numbers real nnabla gives, which the tests compare
symcompile's with, and `nnabla_1.39_signatures.json`, the signature of nnabla's function
of each name in symcompile.functions.__all__ (nnabla 1.39 needs Python 3.10: `python3.10
-m venv V; V/bin/pip install nnabla`, then SYMCOMPILE_NNABLA_PYTHON=V/bin/python).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TUTORIAL = HERE.parent / "tutorials" / "linear_regression_nnabla.py"
RECORDED = HERE / "nnabla_1.39.json"
SIGNATURES = HERE / "nnabla_1.39_signatures.json"
NUMBER = re.compile(r"-?\d+\.\d+(?:e[-+]?\d+)?")


def scenarios() -> list[Path]:
    return sorted(p for p in HERE.glob("*.py") if not p.name.startswith("_")
                  and p.name != "run.py")


def _run(argv: list[str], backend: str, python: str) -> str:
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, SYMCOMPILE_DIFF_BACKEND=backend, SYMCOMPILE_CACHE_DIR=cache,
                   PYTHONPATH=str(HERE), PYTHONWARNINGS="ignore")
        done = subprocess.run([python, *argv], env=env, capture_output=True, text=True,
                              timeout=600, cwd=cache)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} on {backend} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def results(scenario: Path, backend: str, python: str = sys.executable) -> list[dict]:
    """What `scenario` reported, in order: [{"name", "shape", "value"}]."""
    out = _run([str(scenario)], backend, python)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def tutorial_numbers(backend: str, python: str = sys.executable) -> list[float]:
    """Every number nnabla's tutorial prints (symcompile: with only the imports swapped)."""
    source = TUTORIAL.read_text(encoding="utf-8")
    if backend != "nnabla":
        source = source.replace("import nnabla", "import symcompile")
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / TUTORIAL.name
        script.write_text(source, encoding="utf-8")
        out = _run([str(script)], backend, python)
    lines = [line for line in out.splitlines() if "Variable(" not in line]  # addresses
    return [float(n) for line in lines for n in NUMBER.findall(line)]


def signatures(names: list[str], backend: str, python: str = sys.executable) -> dict:
    """{name: str(inspect.signature(F.<name>)) or None} on `backend` (see _signatures.py)."""
    return json.loads(_run([str(HERE / "_signatures.py"), *names], backend, python))


def record(python: str) -> None:
    recorded = {p.stem: results(p, "nnabla", python) for p in scenarios()}
    recorded["tutorial"] = tutorial_numbers("nnabla", python)
    lines = ["{"]
    for i, (name, items) in enumerate(recorded.items()):
        rows = ",\n".join(f"  {json.dumps(item)}" for item in items)
        lines.append(f" {json.dumps(name)}: [\n{rows}\n ]" + ("," if i < len(recorded) - 1 else ""))
    RECORDED.write_text("\n".join([*lines, "}"]) + "\n", encoding="utf-8")
    print(f"recorded {len(recorded)} scenarios in {RECORDED}")
    import symcompile.functions as F

    found = signatures(sorted(F.__all__), "nnabla", python)
    SIGNATURES.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"recorded {len(found)} signatures in {SIGNATURES}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"] or not os.environ.get("SYMCOMPILE_NNABLA_PYTHON"):
        sys.exit(__doc__)
    record(os.environ["SYMCOMPILE_NNABLA_PYTHON"])
