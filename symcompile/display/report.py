"""What `symcompile show` prints: the graph, the derivatives, the code, the sizes.

Each piece is a function of a `CompileResult`, so the command line, Python users
(``result.show()``) and the HTML page share one implementation.
"""

from __future__ import annotations

from symcompile.display import highlight
from symcompile.ir import formula

STYLES = ("text", "pretty", "latex")


def graph_listing(result) -> str:
    """One line per node: name, op, shape, and where in the user's file it was created."""
    return str(result.graph)


def derivative_lines(result, style: str = "text") -> list[str]:
    """d root / d parameter for every parameter (and input) that has a gradient."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    program, graph = result.program, result.graph
    root = graph.label(graph.outputs[0])
    lines = []
    for index, expr in program.derivatives.items():
        name = graph.values[index].name or program.symbols[index].name
        if style == "latex":
            text = formula.as_latex(expr, program.shapes)
            lines.append(rf"\frac{{\partial\,\mathrm{{{root}}}}}{{\partial\,\mathrm{{{name}}}}}"
                         f" = {text}")
        elif style == "pretty":
            lines.append(f"d {root} / d {name} =\n{formula.as_pretty(expr, program.shapes)}")
        else:
            lines.append(f"d {root} / d {name} = {formula.as_text(expr, program.shapes)}")
    return lines


def sizes(result) -> list[str]:
    """Nodes, fused regions, operation counts around CSE and compile time per phase."""
    program, stats = result.program, result.program.stats
    phases = ", ".join(f"{phase} {seconds * 1e3:.0f} ms"
                       for phase, seconds in result.timings.items())
    return [
        f"{len(result.graph.nodes)} nodes in {len(program.forward)} fused forward statements "
        f"and {len(program.backward)} backward statements",
        f"{stats.get('operations before CSE', 0)} operations before common-subexpression "
        f"elimination, {stats.get('operations after CSE', 0)} after "
        f"({stats.get('shared subexpressions', 0)} shared subexpressions)",
        f"compile time: {phases}",
    ]


def source(result, function: str = "gradient", colour: bool = False) -> str:
    """The generated source of one function of the module, as the module file has it."""
    text = result.function_source(function)
    return highlight.ansi(text) if colour else text


def show(result, style: str = "text", function: str = "gradient",
         colour: bool = False) -> str:
    """Everything `symcompile show` prints."""
    parts = [
        "== graph ==", graph_listing(result), "",
        "== derivatives ==", *derivative_lines(result, style), "",
        f"== {function} (from {result.path}) ==", source(result, function, colour).rstrip(), "",
        "== sizes ==", *sizes(result),
    ]
    return "\n".join(parts) + "\n"
