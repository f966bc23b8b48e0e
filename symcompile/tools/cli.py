"""The `symcompile` command: compile a model file, or show its derivatives and code.

Only argument parsing and printing live here; the work is done by `model_file`,
`compiler` and `formula`. Errors print one line and exit with status 1 (2 for usage
errors); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from pathlib import Path

from symcompile._version import __version__
from symcompile.common.progress import ProgressLine
from symcompile.compiler.options import FUSION_OPS_LIMIT

EXECUTES = ("MODEL.py is executed as Python (its if __name__ == '__main__' block is "
            "skipped): only run model files you trust. nnabla's files (.nnp, .nntxt, "
            ".protobuf) are read, not run.")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="symcompile",
        description="Compile nnabla-style training graphs into standalone NumPy modules "
                    "with symbolic derivatives.",
        epilog="A model file defines build(), which builds the graph with symcompile's "
               "nnabla API and returns the loss Variable (or a tuple starting with it). "
               + EXECUTES,
    )
    parser.add_argument("--version", action="version", version=f"symcompile {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    compile_ = commands.add_parser(
        "compile", help="generate the module for a model file",
        description="Generate NAME.py (forward, gradient, fused training step) for the "
                    "graph that MODEL.py's build() returns. " + EXECUTES)
    compile_.add_argument("model", metavar="MODEL.py")
    compile_.add_argument("-o", "--output-dir", default="generated",
                          help="directory for the module (default: generated)")
    compile_.add_argument("--name", help="module name (default: the model file's name)")
    compile_.add_argument("--network", help="nnabla files: the network to compile (default: "
                          "the first executor's)")
    compile_.add_argument("--output", help="nnabla files: the variable the module computes "
                          "(default: the executor's output)")
    _common(compile_)

    show = commands.add_parser(
        "show", help="print the derivatives and the generated gradient code",
        description="Print d(loss)/d(parameter) for every parameter of MODEL.py's graph and "
                    "the generated source of its gradient function. " + EXECUTES)
    show.add_argument("model", metavar="MODEL.py")
    style = show.add_mutually_exclusive_group()
    style.add_argument("--latex", action="store_true", help="derivatives as LaTeX")
    style.add_argument("--pretty", action="store_true",
                       help="derivatives as SymPy's 2-D pretty print")
    show.add_argument("--function", default="gradient", metavar="NAME",
                      help="which generated function to print (default: gradient)")
    show.add_argument("--html", metavar="OUT.html",
                      help="also write a self-contained page: graph picture, typeset "
                           "formulas and the generated code")
    show.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                      help="syntax colours for the code (default: auto, on a terminal)")
    _common(show)

    check = commands.add_parser(
        "check", help="check the generated gradient against finite differences",
        description="Compare the generated gradient() with central finite differences of "
                    "forward() at random points, per parameter, and exit with status 1 if "
                    "any error is beyond the tolerance. MODEL.py is compiled in float64 for "
                    "the check; a generated module (generated/NAME.py) is checked as it is, "
                    "with its own check_gradient(). " + EXECUTES)
    check.add_argument("model", metavar="MODEL.py")
    check.add_argument("--seed", type=int, default=0, help="random point (default: 0)")
    check.add_argument("--samples", type=_positive, default=20, metavar="N",
                       help="elements checked per parameter, at least 1 (default: 20)")
    check.add_argument("--tolerance", type=_tolerance, default=None, metavar="TOL",
                       help="relative tolerance, > 0 (default: 1e-5 in float64, 5e-2 in "
                            "float32)")
    check.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks on errors")
    return parser


def _common(sub: argparse.ArgumentParser) -> None:
    from symcompile.ops.update_rules import RULES

    sub.add_argument("--solver", default="sgd", choices=[*sorted(RULES), "none"],
                     metavar="SOLVER",
                     help="update rule of the fused training step: "
                          f"{', '.join(sorted(RULES))} or none (default: sgd)")
    sub.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                     help="array dtype of the generated code (default: float32)")
    sub.add_argument("--fusion-limit", type=_non_negative, default=FUSION_OPS_LIMIT,
                     metavar="N",
                     help="operations one fused statement may hold before a chain is cut "
                          f"(default: {FUSION_OPS_LIMIT}; 0: one statement per function)")
    sub.add_argument("--backend", default="numpy", choices=["numpy", "array-api"],
                     help="what the module computes with: numpy (default), or array-api "
                          "(arrays of any array API library: NumPy, CuPy, PyTorch, JAX)")
    sub.add_argument("--check-finite", action="store_true",
                     help="the fused training step raises, naming the parameter, when a "
                          "gradient holds NaN or Inf (before updating anything)")
    sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                     help="show tracebacks on errors")


def _integer_from(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
        return value

    return parse


_non_negative = _integer_from(0)
_positive = _integer_from(1)  # a check of 0 elements would pass without checking anything


def _tolerance(text: str) -> float:
    """A finite number > 0: with 0 only exact gradients pass, and with a negative one or
    NaN none does, whatever the code."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def _compile(args, output_dir: Path, regenerate: str):
    from symcompile.tools import compile as compiler
    from symcompile.tools.model_file import load_loss

    loss = load_loss(args.model, getattr(args, "network", None), getattr(args, "output", None))
    name = getattr(args, "name", None) or Path(args.model).stem
    solver = args.solver
    with ProgressLine(sys.stderr, Path(args.model).name) as progress:
        return compiler.compile(loss, name=name, output_dir=output_dir, solver=solver,
                                dtype=args.dtype, regenerate=regenerate,
                                fusion_limit=getattr(args, "fusion_limit", FUSION_OPS_LIMIT),
                                check_finite=getattr(args, "check_finite", False),
                                backend=getattr(args, "backend", "numpy"),
                                progress=progress)


def regenerate_command(model: str, output_dir: str, name: str | None = None, *,
                       solver: str = "sgd", dtype: str = "float32",
                       fusion_limit: int = FUSION_OPS_LIMIT, check_finite: bool = False,
                       backend: str = "numpy", network: str | None = None,
                       output: str | None = None) -> str:
    """The command line that regenerates a module, as written in its header: the
    options that differ from their defaults are part of it."""
    try:  # relative to the working directory when inside it: the same on every checkout
        model = Path(model).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:  # elsewhere: as the user gave it, so the command still works
        model = Path(model).as_posix()
    out = Path(output_dir).as_posix().rstrip("/") + "/"
    parts = ["symcompile compile", model, "-o", out]
    if name:
        parts += ["--name", name]
    for option, value in (("--network", network), ("--output", output)):
        if value:
            parts += [option, shlex.quote(value)]
    if solver != "sgd":
        parts += ["--solver", solver]
    if dtype != "float32":
        parts += ["--dtype", dtype]
    if fusion_limit != FUSION_OPS_LIMIT:
        parts += ["--fusion-limit", str(fusion_limit)]
    if check_finite:
        parts.append("--check-finite")
    if backend.replace("_", "-") != "numpy":
        parts += ["--backend", backend.replace("_", "-")]
    return " ".join(parts)


def cmd_compile(args) -> int:
    started = time.perf_counter()
    result = _compile(args, Path(args.output_dir),
                      regenerate_command(args.model, args.output_dir, args.name,
                                         solver=args.solver, dtype=args.dtype,
                                         fusion_limit=args.fusion_limit,
                                         check_finite=args.check_finite,
                                         backend=args.backend, network=args.network,
                                         output=args.output))
    graph = result.graph
    print(f"compiled {graph.name}: {len(graph.nodes)} nodes, {len(graph.parameters)} "
          f"parameters -> {result.path}  ({time.perf_counter() - started:.2f} s)")
    from symcompile.tools.model_file import NNABLA_FILES

    if Path(args.model).suffix in NNABLA_FILES:
        print(f"the file's parameters -> {_file_parameters(result)} (module.load_checkpoint)")
    return 0


def _file_parameters(result) -> Path:
    """The parameters an nnabla file holds, saved beside its module with the module's own
    save_checkpoint (its init_parameters() draws fresh ones, as the file has no
    initializers)."""
    from symcompile.frontend.parameter import get_parameters

    module, values = result.module, get_parameters(grad_only=False)
    path = result.path.with_name(f"{result.path.stem}_parameters.npz")
    module.save_checkpoint(path, {spec["argument"]: values[key].d
                                  for key, spec in module.PARAMETERS.items()})
    return path


def cmd_show(args) -> int:
    from symcompile.display import highlight, report
    from symcompile.runtime.cache import cache_dir

    result = _compile(args, cache_dir() / "show", regenerate_command(args.model, "generated"))
    style = "latex" if args.latex else "pretty" if args.pretty else "text"
    print(report.show(result, style, args.function, highlight.use_colour(args.color)), end="")
    if args.html:
        from symcompile.display.html_report import write_page

        print(f"wrote {write_page(result, args.html, args.function)}")
    return 0


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return ""


def cmd_check(args) -> int:
    from symcompile.common.integrity import is_intact
    from symcompile.runtime.cache import cache_dir, is_generated, load_module

    text = _read_text(args.model)
    if is_generated(text):
        # Checking reads the module, so an edited one is checked too (that is how to test
        # hand edits), with a note that it is not what symcompile generated.
        module = load_module(args.model, allow_edited=True)
        what = f"{args.model} ({module.DTYPE.__name__})"
        if not is_intact(text):
            print(f"note: {args.model} was edited after symcompile generated it; checking "
                  "it as it is now")
    else:
        args.solver, args.dtype = "none", "float64"
        module = _compile(args, cache_dir() / "check", "symcompile check").module
        what = f"{args.model} (compiled in float64)"
    if not module.GRADIENTS:
        # Checked here: the template's check_gradient() fails on such a graph with
        # IndexError, because gradient() then returns the loss alone, not a tuple.
        raise ValueError(f"{args.model}'s graph has no parameters or need_grad inputs to "
                         "check: create parameters with nn.parameter.get_parameter_or_create"
                         "() or PF.*, or give an input need_grad=True")
    report = module.check_gradient(seed=args.seed, samples=args.samples,
                                   tolerance=args.tolerance)
    names = {**{name: name for name in module.INPUTS},
             **{spec["argument"]: key for key, spec in module.PARAMETERS.items()}}
    print(f"gradient check of {what}: up to {args.samples} elements per parameter, "
          f"seed {args.seed}")
    print(f"{'parameter':<36}{'max abs error':>15}{'max rel error':>15}   result")
    failed = []
    for argument, (absolute, relative, passed) in report.items():
        print(f"{names[argument]:<36}{absolute:>15.3e}{relative:>15.3e}   "
              f"{'ok' if passed else 'FAILED'}")
        if not passed:
            failed.append(names[argument])
    if failed:
        print(f"symcompile check: gradient of {', '.join(failed)} does not match finite "
              "differences", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    handler = {"compile": cmd_compile, "show": cmd_show, "check": cmd_check}[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("symcompile: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `symcompile show ... | head`
        sys.stderr.close()
        return 0
    except Exception as exc:  # one clear line unless --debug
        if args.debug:
            raise
        print(f"symcompile {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
