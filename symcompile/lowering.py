"""Graph -> forward equations: each node becomes SymPy, and single-use values fuse.

Every node's value is written as one SymPy expression over its inputs' expressions
(`OpDef.lower`). A value is *inlined* into its consumer, so a chain of elementwise ops
becomes one expression and one NumPy statement, unless it must exist as an array of
its own: it is an output, it has several consumers, or it stops the gradient
(`need_grad=False` on an intermediate that depends on trainable leaves), or its
expression has grown past `FUSION_OPS_LIMIT` operations (a long chain is cut into
statements, which keeps SymPy's work and the printed lines bounded).
"""

from __future__ import annotations

import sympy

from .graph import Graph, Value
from .naming import RESERVED, Namer
from .ops import OPS, LowerContext
from .primitives import Shapes, materialize
from .program import FORWARD, Equation, Program
from .update_rules import RULE_ARGUMENTS

FUSION_OPS_LIMIT = 40


def lower(graph: Graph, dtype: str = "float32") -> Program:
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
    for node in graph.nodes:
        op = OPS[node.op]
        out = graph.values[node.output]
        ctx = LowerContext(tuple(graph.values[i].shape for i in node.inputs), out.shape,
                           program.shapes)
        expr = op.lower([exprs[i] for i in node.inputs], node.attr_dict, ctx)
        origin = tuple(sorted({node.index, *(o for i in node.inputs for o in origins[i])}))
        program.value_exprs[out.index] = expr
        program.value_origins[out.index] = origin
        if _materialized(graph, out, node.inputs, consumers) or \
                sympy.count_ops(expr) > FUSION_OPS_LIMIT:
            sym = program.symbol(out.name or _fallback_name(graph, out, op.name), out.shape)
            program.forward.append(
                Equation(sym, materialize(expr, out.shape, program.shapes), FORWARD, origin)
            )
            program.symbols[out.index] = sym
            exprs[out.index] = sym
            origins[out.index] = ()
            if out.need_grad:
                program.needs_grad.add(sym)
        else:
            exprs[out.index] = expr
            origins[out.index] = origin
    program.outputs = [program.symbols[i] for i in graph.outputs]
    return program


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
