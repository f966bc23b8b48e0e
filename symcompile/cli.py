"""The `symcompile` command: compile a model file, or show its derivatives and code.

Only argument parsing and printing live here; the work is done by `model_file`,
`compiler` and `formula`. Errors print one line and exit with status 1 (2 for usage
errors); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ._version import __version__

EXECUTES = ("MODEL.py is executed as Python (its if __name__ == '__main__' block is "
            "skipped): only run model files you trust.")


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
    _common(compile_)

    show = commands.add_parser(
        "show", help="print the derivatives and the generated gradient code",
        description="Print d(loss)/d(parameter) for every parameter of MODEL.py's graph and "
                    "the generated source of its gradient function. " + EXECUTES)
    show.add_argument("model", metavar="MODEL.py")
    show.add_argument("--latex", action="store_true", help="derivatives as LaTeX")
    show.add_argument("--function", default="gradient", metavar="NAME",
                      help="which generated function to print (default: gradient)")
    _common(show)
    return parser


def _common(sub: argparse.ArgumentParser) -> None:
    from .update_rules import RULES

    sub.add_argument("--solver", default="sgd", choices=[*sorted(RULES), "none"],
                     metavar="SOLVER",
                     help="update rule of the fused training step: "
                          f"{', '.join(sorted(RULES))} or none (default: sgd)")
    sub.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                     help="array dtype of the generated code (default: float32)")
    sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                     help="show tracebacks on errors")


def _compile(args, output_dir: Path, regenerate: str):
    from . import compiler
    from .model_file import load_loss

    loss = load_loss(args.model)
    name = getattr(args, "name", None) or Path(args.model).stem
    solver = args.solver
    return compiler.compile(loss, name=name, output_dir=output_dir, solver=solver,
                            dtype=args.dtype, regenerate=regenerate)


def regenerate_command(model: str, output_dir: str, name: str | None = None) -> str:
    """The command line that regenerates a module, as written in its header."""
    from .callsite import display_path

    out = Path(output_dir).as_posix().rstrip("/") + "/"
    parts = ["symcompile compile", display_path(model), "-o", out]
    if name:
        parts += ["--name", name]
    return " ".join(parts)


def cmd_compile(args) -> int:
    started = time.perf_counter()
    result = _compile(args, Path(args.output_dir),
                      regenerate_command(args.model, args.output_dir, args.name))
    graph = result.graph
    print(f"compiled {graph.name}: {len(graph.nodes)} nodes, {len(graph.parameters)} "
          f"parameters -> {result.path}  ({time.perf_counter() - started:.2f} s)")
    return 0


def cmd_show(args) -> int:
    from .cache import cache_dir

    result = _compile(args, cache_dir() / "show", regenerate_command(args.model, "generated"))
    root = result.graph.label(result.graph.outputs[0])
    for name, text in result.derivative_text(latex=args.latex).items():
        if args.latex:
            print(rf"\frac{{\partial\,\mathrm{{{root}}}}}{{\partial\,\mathrm{{{name}}}}} = {text}")
        else:
            print(f"d {root} / d {name} = {text}")
    print()
    print(result.function_source(args.function), end="")
    return 0


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    handler = {"compile": cmd_compile, "show": cmd_show}[args.command]
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
