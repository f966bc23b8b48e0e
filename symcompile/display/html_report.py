"""`symcompile show --html`: one self-contained page with the graph drawn, the
derivatives typeset and the generated code, for reading and teaching.

Self-contained means viewable offline: the picture is inline SVG, the formulas are
MathML (browsers typeset it natively), the colours are inline CSS; the page refers to
nothing outside itself. This module computes the content and the graph's layout;
`templates/report.html.jinja` lays them out, with autoescaping on, so no name the user
gave reaches the page unescaped.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import jinja2
from markupsafe import Markup

from symcompile.common.files import atomic_write_text
from symcompile.common.resources import template_dir
from symcompile.display import highlight, report
from symcompile.ir import formula
from symcompile.ir.graph import INTERMEDIATE, Graph

# Layout of the graph picture, in SVG pixels.
CHAR_WIDTH = 7.2  # of the 12px monospace font the boxes use
BOX_HEIGHT = 36
BOX_PADDING = 12
COLUMN_GAP = 24
ROW_GAP = 44
MARGIN = 16


@dataclass(frozen=True)
class Box:
    """One value of the graph, drawn as a labelled rectangle."""

    index: int
    title: str  # "h1 = tanh(%3)" or "x"
    detail: str  # "f32[64, 32]  digits_mlp.py:21"
    kind: str  # input, parameter, intermediate, output: the CSS class
    x: float
    y: float
    width: float


@dataclass(frozen=True)
class Edge:
    """An arrow from the bottom of one box to the top of another (a cubic curve)."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def middle(self) -> float:
        return (self.y1 + self.y2) / 2


@dataclass(frozen=True)
class Picture:
    boxes: tuple[Box, ...]
    edges: tuple[Edge, ...]
    width: float
    height: float


def layers(graph: Graph) -> dict[int, int]:
    """Value index -> row. A node sits one row below its deepest input; a leaf sits just
    above the first node that uses it, so parameters appear next to their layer."""
    row = {v.index: 0 for v in graph.leaves}
    for node in graph.nodes:
        row[node.output] = 1 + max((row[i] for i in node.inputs), default=0)
    for leaf in graph.leaves:
        users = [row[n.output] for n in graph.nodes if leaf.index in n.inputs]
        if users:
            row[leaf.index] = min(users) - 1
    return row


def layout(graph: Graph) -> Picture:
    """Place each value in its row, ordered by where its inputs are (barycentre heuristic,
    one top-down sweep: enough for the chain-like graphs of training losses)."""
    rows = layers(graph)
    producers = {n.output: n for n in graph.nodes}
    titles = {v.index: _title(graph, v.index, producers.get(v.index)) for v in graph.values}
    details = {v.index: _detail(v, producers.get(v.index)) for v in graph.values}
    widths = {i: BOX_PADDING * 2 + CHAR_WIDTH * max(len(titles[i]), len(details[i]))
              for i in titles}

    centre: dict[int, float] = {}
    placed: dict[int, Box] = {}
    total_width = 0.0
    for depth in range(max(rows.values(), default=0) + 1):
        members = [v.index for v in graph.values if rows[v.index] == depth]

        def barycentre(index: int) -> float:
            node = producers.get(index)
            inputs = [centre[i] for i in (node.inputs if node else ()) if i in centre]
            return sum(inputs) / len(inputs) if inputs else float(index)

        members.sort(key=lambda i: (barycentre(i), i))
        x = MARGIN
        y = MARGIN + depth * (BOX_HEIGHT + ROW_GAP)
        for index in members:
            placed[index] = Box(index, titles[index], details[index],
                                _kind(graph, index), x, y, widths[index])
            centre[index] = x + widths[index] / 2
            x += widths[index] + COLUMN_GAP
        total_width = max(total_width, x - COLUMN_GAP + MARGIN)

    edges = []
    for node in graph.nodes:
        target = placed[node.output]
        for slot, source_index in enumerate(node.inputs):
            source = placed[source_index]
            # spread the arrow heads of several inputs across the top of the box
            share = (slot + 1) / (len(node.inputs) + 1)
            edges.append(Edge(source.x + source.width / 2, source.y + BOX_HEIGHT,
                              target.x + target.width * share, target.y))
    height = MARGIN * 2 + (max(rows.values(), default=0) + 1) * (BOX_HEIGHT + ROW_GAP) - ROW_GAP
    return Picture(tuple(placed[i] for i in sorted(placed)), tuple(edges),
                   max(total_width, 2 * MARGIN), height)


def _title(graph: Graph, index: int, node) -> str:
    label = graph.label(index)
    if node is None:
        return label
    return f"{label} = {node.op}({', '.join(graph.label(i) for i in node.inputs)})"


def _detail(value, node) -> str:
    shape = f"{value.dtype.replace('float', 'f')}{list(value.shape)}"
    site = (node.site if node else value.site)
    return f"{shape}  {site.display}" if site else shape


def _kind(graph: Graph, index: int) -> str:
    if index == graph.outputs[0]:
        return "output"
    value = graph.values[index]
    return value.kind if value.kind != INTERMEDIATE else "intermediate"


@dataclass(frozen=True)
class Derivative:
    root: str
    name: str
    mathml: Markup  # the printer escapes every name (see FormulaMathMLPrinter)
    text: str


def derivatives(result) -> list[Derivative]:
    program, graph = result.program, result.graph
    root = graph.label(graph.outputs[0])
    return [Derivative(root, graph.values[i].name or program.symbols[i].name,
                       Markup(formula.as_mathml(expr, program.shapes)),
                       formula.as_text(expr, program.shapes))
            for i, expr in program.derivatives.items()]


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_page(result, function: str = "gradient") -> str:
    """The page as a string."""
    return _environment().get_template("report.html.jinja").render(
        title=f"symcompile: {result.graph.name}",
        graph=result.graph,
        picture=layout(result.graph),
        derivatives=derivatives(result),
        listing=report.graph_listing(result),
        function=function,
        function_source=Markup(highlight.as_html(report.source(result, function))),
        module_source=Markup(highlight.as_html(result.source)),
        path=str(result.path),
        sizes=report.sizes(result),
    )


def write_page(result, path: str | Path, function: str = "gradient") -> Path:
    """Write the page atomically; returns its path."""
    return atomic_write_text(path, render_page(result, function))

