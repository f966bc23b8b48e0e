"""`symcompile.compile`: a graph compiled into a module on disk, loaded and bound.

The compile step users call from Python (and the CLI through it): it captures the graph,
runs the compiler (`symcompile.compiler`), writes the module atomically, loads it back
through the runtime's authenticated loader and makes the loss run it.
"""

from __future__ import annotations

import time
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import sympy
from sympy.core.parameters import distribute

from symcompile import compiler
from symcompile.backends import registry as backends
from symcompile.common.files import atomic_write_text
from symcompile.common.integrity import is_intact, is_sealed
from symcompile.common.progress import Progress
from symcompile.compiler import FUSION_OPS_LIMIT, Options
from symcompile.frontend.capture import capture
from symcompile.frontend.solvers import Solver
from symcompile.frontend.variable import Variable
from symcompile.ir import formula
from symcompile.ir.graph import Graph
from symcompile.ir.naming import identifier
from symcompile.ir.program import Program
from symcompile.ops.update_rules import RULES
from symcompile.runtime import execution
from symcompile.runtime.cache import cache_dir, is_generated, load_module


@dataclass
class CompileResult:
    """What `symcompile.compile` returns: the module, where it is, and what it computes."""

    module: types.ModuleType
    path: Path
    source: str
    graph: Graph
    graph_hash: str
    program: Program = field(repr=False)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def derivatives(self) -> dict[str, sympy.Expr]:
        """Parameter / input name -> d(root)/d(it) as a SymPy expression (display form)."""
        shapes = self.program.shapes
        with distribute(False):
            return {self.graph.values[i].name or self.program.symbols[i].name:
                    formula.readable(expr, shapes)
                    for i, expr in self.program.derivatives.items()}

    def derivative_text(self, latex: bool = False) -> dict[str, str]:
        render = formula.as_latex if latex else formula.as_text
        shapes = self.program.shapes
        return {self.graph.values[i].name or self.program.symbols[i].name: render(expr, shapes)
                for i, expr in self.program.derivatives.items()}

    def function_source(self, name: str = "gradient") -> str:
        """The generated source of one function of the module."""
        import inspect

        try:
            return inspect.getsource(getattr(self.module, name))
        except AttributeError:
            names = [n for n, v in vars(self.module).items() if isinstance(v, types.FunctionType)]
            raise ValueError(f"the generated module has no function {name!r}; it has "
                             f"{', '.join(names)}") from None

    def show(self, style: str = "text", function: str = "gradient", file=None) -> None:
        """Print what `symcompile show` prints: graph, derivatives (style "text",
        "pretty" or "latex"), the source of `function`, sizes."""
        from symcompile.display import report

        print(report.show(self, style, function), end="", file=file)

    def check(self, seed: int = 0, samples: int = 20, tolerance: float | None = None) -> dict:
        """The module's own `check_gradient`: {argument: (max abs error, max rel error,
        passed)}. A float32 module is checked loosely; `check_gradient(loss)` compiles
        in float64 for a tight check."""
        return self.module.check_gradient(seed=seed, samples=samples, tolerance=tolerance)


def solver_options(solver) -> tuple[str | None, tuple, tuple]:
    """(rule name, rule options, hyper-parameter defaults) from a solver name or instance.

    An instance (e.g. ``S.Adam(alpha=1e-2)``) makes its own settings the defaults of the
    fused step's arguments.
    """
    if solver is None or isinstance(solver, str):
        name = None if solver in (None, "none") else solver.lower()
        if name is not None and name not in RULES:
            raise ValueError(f"compile: unknown solver {solver!r}; known: "
                             f"{', '.join(sorted(RULES))}, or a symcompile.solvers instance")
        return name, (), ()
    if not isinstance(solver, Solver):
        raise TypeError(f"compile: solver must be a name or a symcompile.solvers instance, "
                        f"got {type(solver).__name__}")
    return (solver.rule, tuple(sorted(solver.options().items())),
            tuple(solver.rule_arguments().items()))


def check_gradient(loss: Variable, seed: int = 0, samples: int = 20,
                   tolerance: float | None = None, output_dir: str | Path | None = None) -> dict:
    """Compile `loss`'s graph in float64 (into the cache unless `output_dir` is given) and
    compare its gradient with central finite differences at a random point.

    Returns {argument: (max absolute error, max relative error, passed)}; `tolerance` is
    relative (default 1e-5).
    """
    result = compile(loss, name=loss.name or "check", solver=None, dtype="float64",
                     output_dir=output_dir or cache_dir() / "check",
                     regenerate="symcompile.check_gradient(loss)")
    return result.check(seed, samples, tolerance)


def write_module(source: str, path: Path, keep_edits: bool = True) -> bool:
    """Write `source` to `path` atomically unless it already holds exactly that text.

    Never destroys what a user wrote: a file at `path` that symcompile did not generate is
    refused (FileExistsError), and a generated module edited by hand is first kept as
    ``NAME.py.edited`` (unless `keep_edits` is False: the runtime's own cache files).
    """
    try:
        existing = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        existing = None
    except (UnicodeDecodeError, IsADirectoryError):
        existing = ""  # certainly not a module we generated
    if existing == source:
        return False
    if existing is not None and keep_edits:
        if not is_generated(existing):
            raise FileExistsError(
                f"refusing to overwrite {path}: it is not a module symcompile generated "
                "(choose another module name or output directory)")
        if is_sealed(existing) and not is_intact(existing):
            kept = _free_name(path.with_name(path.name + ".edited"))
            atomic_write_text(kept, existing)
            warnings.warn(f"{path} had been edited by hand; your version is kept as {kept}",
                          stacklevel=3)
    atomic_write_text(path, source)
    return True


def _free_name(path: Path) -> Path:
    """`path`, or `path.1`, `path.2`, ... : the first that does not exist."""
    candidate, number = path, 0
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}.{number}")
    return candidate


def compile(loss: Variable, name: str | None = None, output_dir: str | Path = "generated", *,
            solver="sgd", dtype: str = "float32", regenerate: str | None = None,
            fusion_limit: int = FUSION_OPS_LIMIT, check_finite: bool = False,
            backend: str = "numpy", progress: Progress | None = None) -> CompileResult:
    """Compile the graph that computes `loss` into ``output_dir/NAME.py`` and load it.

    Args:
        loss: The graph's output (usually a scalar loss).
        name: Module name (sanitised to an identifier); default: the loss Variable's
            ``name``, else ``model``.
        output_dir: Directory of the generated module (created if missing).
        solver: The fused training step's solver: a rule name (``"sgd"``, ``"adam"``, ...),
            a solver instance (``S.Adam(alpha=1e-2)``: its settings become the step's
            defaults), or None for no training step.
        dtype: ``"float32"`` (nnabla's) or ``"float64"`` (for gradient checks).
        regenerate: The command shown in the header as the way to regenerate the file.
        fusion_limit: Operations one fused statement may hold before a chain of
            elementwise functions is cut (0: one statement per function, handy to read
            the code node by node).
        check_finite: The fused training step raises FloatingPointError, naming the
            parameter, when a gradient holds NaN or Inf, before updating anything.
        backend: What the module computes with: ``"numpy"`` (NumPy arrays, updated in
            place), or ``"array_api"`` (arrays of any library implementing the Python
            array API standard: NumPy, CuPy, PyTorch through array-api-compat, JAX,
            array-api-strict; each function returns arrays of its arguments' library).
        progress: Called as ``progress(phase, done, total)`` while compiling (see
            `generate`); `symcompile.progress.ProgressLine(sys.stderr, what)` shows it.

    Returns:
        A `CompileResult` with the loaded module, its path and source, and the
        symbolic derivatives. With float32, `loss.forward()`/`backward()` run this module.
    """
    if not isinstance(loss, Variable):
        raise TypeError(f"compile: expected the loss Variable, got {type(loss).__name__}")
    if loss.parent is None:
        raise ValueError("compile: the variable is a leaf (no function computes it); pass the "
                         "output of the graph, e.g. the loss")
    if not isinstance(fusion_limit, int) or isinstance(fusion_limit, bool) or fusion_limit < 0:
        raise ValueError(f"compile: fusion_limit must be an integer >= 0, got {fusion_limit!r}")
    backend = backends.get(backend).name  # ValueError naming the known ones
    module_name = identifier(name or loss.name or "model")
    started = time.perf_counter()
    captured = capture(loss, name=module_name, dtype=dtype, observed=True)
    graph = captured.graph
    captured_in = time.perf_counter() - started
    site = loss._callsite.display if loss._callsite else "symcompile.compile"
    rule, flags, hyper = solver_options(solver)
    options = Options(module_name, rule, dtype,
                      regenerate or f"symcompile.compile(...) of the graph built at {site}",
                      site, flags, hyper, fusion_limit, bool(check_finite), backend)
    source, program, phases = compiler.generate(graph, options, progress)
    written = time.perf_counter()
    path = Path(output_dir) / f"{module_name}.py"
    write_module(source, path)
    module = load_module(path, graph.fingerprint())
    timings = {"capture": captured_in, **phases, "write and load": time.perf_counter() - written}
    if dtype == "float32":
        execution.bind(loss, module, captured)  # loss.forward()/backward() now run this module
    timings["total"] = time.perf_counter() - started
    return CompileResult(module, path, source, graph, graph.fingerprint(), program, timings)
