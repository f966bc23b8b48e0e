"""Graph -> forward equations: each node becomes SymPy, and single-use values fuse.

Every node's value is written as one SymPy expression over its inputs' expressions
(`OpDef.lower`). A value is *inlined* into its consumer, so a chain of elementwise ops
becomes one expression and one NumPy statement, unless it must exist as an array of
its own: it is an output, it has several consumers, or it stops the gradient
(`need_grad=False` on an intermediate that depends on trainable leaves), or its
expression has grown past the fusion limit (`FUSION_OPS_LIMIT` operations by default:
a long chain is cut into statements, which keeps SymPy's work and the printed lines
bounded). An expression past `EXPRESSION_OPS_LIMIT` stops compilation with
`ExpressionTooLarge` before SymPy differentiates it.
"""

from __future__ import annotations

import sympy
from sympy.core.parameters import distribute

from .elementwise import Truncate
from .graph import Graph, Value
from .naming import RESERVED, Namer
from .ops import OPS, LowerContext
from .primitives import Composite, Full, Shapes, exact, materialize, shape_tuple
from .program import FORWARD, Equation, Program
from .update_rules import RULE_ARGUMENTS

FUSION_OPS_LIMIT = 40
# Past this many operations, differentiating and simplifying one expression takes SymPy
# seconds to minutes (its derivative grows roughly with the square of its size).
EXPRESSION_OPS_LIMIT = 1000
# Functions nested inside one another in one expression: SymPy recurses into each, and
# a few hundred levels exhaust Python's recursion limit before any operation count would.
EXPRESSION_DEPTH_LIMIT = 100


class ExpressionTooLarge(ValueError):
    """A fused expression too large to differentiate symbolically in reasonable time."""


def operation_count(expr: sympy.Expr) -> int:
    """`sympy.count_ops`, with SymPy's default distribution of numbers over sums: under
    the compiler's distribute(False), counting 2**(2*(x - y)) recurses without end (SymPy's
    Abs flips the sign of the sum back and forth)."""
    with distribute(True):
        return sympy.count_ops(expr)


def lower(graph: Graph, dtype: str = "float32",
          fusion_limit: int = FUSION_OPS_LIMIT) -> Program:
    """Forward equations of `graph`; chains fuse up to `fusion_limit` operations
    (0: one statement per node)."""
    program = Program(graph, Shapes(), Namer(RESERVED | RULE_ARGUMENTS), dtype)
    exprs: dict[int, object] = {}
    origins: dict[int, tuple[int, ...]] = {}
    for value in (*graph.inputs, *graph.parameters):
        sym = program.symbol(value.name or "x", value.shape)
        program.symbols[value.index] = sym
        program.leaves.append(sym)
        exprs[value.index] = sym
        origins[value.index] = ()
        if value.need_grad:
            program.needs_grad.add(sym)

    consumers = _consumer_counts(graph)
    producers = {node.output: node for node in graph.nodes}
    inputs = {program.symbols[v.index] for v in graph.inputs}

    def class_labels(expr: sympy.Expr, classes: int) -> sympy.Expr:
        """An input's labels are checked and cast to integers where they enter each
        function (see entry_checks); computed labels are truncated as nnabla casts them."""
        if expr not in inputs:
            return Truncate(expr)
        for labels, (source, count) in program.labels.items():
            if source == expr and count == classes:
                return labels
        labels = program.symbol(f"{expr.name}_labels", program.shapes.of(expr))
        program.labels[labels] = (expr, classes)
        return labels
    depths = dict.fromkeys(exprs, 0)  # how deeply functions nest in each value's expression

    def own_array(value: Value, expr: sympy.Expr, origin: tuple) -> None:
        """Give `value` an array of its own: one forward equation, read by its consumers."""
        name = value.name or _fallback_name(graph, value, producers[value.index].op)
        sym = program.symbol(name, value.shape)
        program.forward.append(
            Equation(sym, materialize(expr, value.shape, program.shapes), FORWARD, origin))
        program.symbols[value.index] = sym
        exprs[value.index] = sym
        origins[value.index] = ()
        depths[value.index] = 0
        if value.need_grad:
            program.needs_grad.add(sym)

    for node in graph.nodes:
        op = OPS[node.op]
        out = graph.values[node.output]
        depth = 1 + max((depths[i] for i in node.inputs), default=0)
        if depth > EXPRESSION_DEPTH_LIMIT:
            raise ExpressionTooLarge(_too_large(graph, node, f"{depth} functions nested",
                                                EXPRESSION_DEPTH_LIMIT, fusion_limit))
        ctx = LowerContext(tuple(graph.values[i].shape for i in node.inputs), out.shape,
                           program.shapes, class_labels)
        expr = op.lower([exprs[i] for i in node.inputs], node.attr_dict, ctx)
        if _nests_composites(expr):
            # A softmax of a softmax: each expands its argument twice (x - max(x)), so
            # nested expansions grow exponentially. The inner one gets its own array.
            for i in node.inputs:
                if exprs[i].has(Composite) and not isinstance(exprs[i], sympy.Symbol):
                    own_array(graph.values[i], exprs[i], origins[i])
            expr = op.lower([exprs[i] for i in node.inputs], node.attr_dict, ctx)
        if _shares_symbols([exprs[i] for i in node.inputs]):
            # x - x, h / h: under distribute(False) SymPy cancels such terms only when a
            # later pass rebuilds the expression, and a value that cancels to something
            # smaller than its array would then lose its shape inside a sum or a reshape.
            # Cancel now, and keep the cancelled form only if it changed the shape.
            cancelled = _cancelled(expr)
            if not cancelled.free_symbols or program.shapes.of(cancelled) != out.shape:
                expr = cancelled
        if not expr.free_symbols and program.shapes.of(expr) != out.shape:
            # a constant: keep the array the next node expects
            expr = Full(expr, shape_tuple(out.shape))
        elif program.shapes.of(expr) != out.shape:
            expr = exact(expr, out.shape, program.shapes)
        origin = tuple(sorted({node.index, *(o for i in node.inputs for o in origins[i])}))
        program.value_exprs[out.index] = expr
        program.value_origins[out.index] = origin
        size = operation_count(expr)
        if size > EXPRESSION_OPS_LIMIT:
            raise ExpressionTooLarge(_too_large(graph, node, f"{size} operations",
                                                EXPRESSION_OPS_LIMIT, fusion_limit))
        depths[out.index] = depth
        if _materialized(graph, out, node.inputs, consumers) or size > fusion_limit:
            own_array(out, expr, origin)
        else:
            exprs[out.index] = expr
            origins[out.index] = origin
    program.outputs = [program.symbols[i] for i in graph.outputs]
    return program


def _too_large(graph: Graph, node, size: str, limit: int, fusion_limit: int) -> str:
    suggestion = min(fusion_limit, FUSION_OPS_LIMIT) // 2 if fusion_limit else 0
    return (
        f"{node.op} '{graph.label(node.output)}' at {node.location}: its fused expression has "
        f"{size}, more than the {limit} symcompile differentiates in one piece (SymPy's "
        f"work would explode). Fix: compile with a smaller fusion "
        f"limit so long chains are cut into statements (it is {fusion_limit}; try "
        f"fusion_limit={suggestion} in symcompile.compile, --fusion-limit {suggestion} on the "
        f"command line), or split this function into smaller ones"
    )


def _shares_symbols(inputs: list) -> bool:
    """Whether two of a node's input expressions depend on a common array."""
    seen: set = set()
    for expr in inputs:
        symbols = expr.free_symbols
        if seen & symbols:
            return True
        seen |= symbols
    return False


def _cancelled(expr: sympy.Expr) -> sympy.Expr:
    """`expr` rebuilt with SymPy's default distribution of numbers over sums, which
    cancels x - (x - 1) to 1."""
    with distribute(True):
        return _rebuilt(expr)


def _rebuilt(expr: sympy.Expr) -> sympy.Expr:
    if not expr.args or isinstance(expr, sympy.Symbol):
        return expr
    return expr.func(*(_rebuilt(a) for a in expr.args))


def _nests_composites(expr: sympy.Expr) -> bool:
    """Whether a softmax-family primitive in `expr` has another one in its argument."""
    return any(isinstance(node, Composite) and node.args[0].has(Composite)
               for node in sympy.preorder_traversal(expr))


def _consumer_counts(graph: Graph) -> dict[int, int]:
    counts: dict[int, int] = {}
    for node in graph.nodes:
        for i in set(node.inputs):
            counts[i] = counts.get(i, 0) + 1
    return counts


def _materialized(graph: Graph, out: Value, inputs, consumers) -> bool:
    if out.index in graph.outputs or consumers.get(out.index, 0) > 1:
        return True
    stops_gradient = not out.need_grad and any(graph.values[i].need_grad for i in inputs)
    return stops_gradient


def _fallback_name(graph: Graph, value: Value, op_name: str) -> str:
    if value.index == graph.outputs[0]:
        return "loss" if value.shape == () else "output"
    return op_name
