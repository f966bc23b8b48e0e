"""Graph -> forward equations: each node becomes SymPy, and single-use values fuse.

Every node's value is written as one SymPy expression over its inputs' expressions
(`OpDef.lower`). A value is *inlined* into its consumer, so a chain of elementwise ops
becomes one expression and one NumPy statement, unless it must exist as an array of
its own: it is an output, it has several consumers (the state of an RNN, a value read by
two branches), or it stops the gradient (`need_grad=False` on an intermediate that
depends on trainable leaves), or the region has grown as far as the fusion policy allows.

The policy (`fusion_cost`) predicts the symbolic work of a region from its expression,
before SymPy differentiates anything: its operations (at most the fusion limit,
`FUSION_OPS_LIMIT` by default) and the size of its derivative (nested functions make it
grow with the square of the nesting). Each region's work is then bounded by a constant,
and compile time grows linearly with the graph. Whatever the user's fusion limit, an
expression past the hard limits (`EXPRESSION_OPS_LIMIT`, `EXPRESSION_DEPTH_LIMIT`) is cut
before the node that would pass them; a single node past them on its own stops
compilation with `ExpressionTooLarge`, naming it.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy
from sympy.core.parameters import distribute

from symcompile.common.errors import ExpressionTooLarge
from symcompile.ir.graph import Graph, Value
from symcompile.ir.naming import RESERVED, Namer
from symcompile.ir.primitives import (
    Bernoulli,
    Composite,
    DrawBase,
    Full,
    Shapes,
    as_number,
    exact,
    materialize,
    shape_tuple,
)
from symcompile.ir.program import FORWARD, CotangentWrite, Equation, IndexBounds, Program
from symcompile.ops.opdef import Scalar, sympy_number
from symcompile.ops.registry import OPS, LowerContext
from symcompile.ops.sympy_functions import Truncate
from symcompile.ops.update_rules import RULE_ARGUMENTS
from symcompile.passes.autodiff import gradient_value
from symcompile.passes.fusion_cost import DERIVATIVE_PER_OPERATION, CostModel, RegionCost

# Past this many operations, differentiating and simplifying one expression takes SymPy
# seconds to minutes (its derivative grows roughly with the square of its size).
EXPRESSION_OPS_LIMIT = 1000
# Functions nested inside one another in one expression: SymPy recurses into each, and
# a few hundred levels exhaust Python's recursion limit before any operation count would.
EXPRESSION_DEPTH_LIMIT = 100


def lower(graph: Graph, dtype: str, fusion_limit: int,
          progress: Callable[[int], None] | None = None) -> Program:
    """Forward equations of `graph`; chains fuse up to `fusion_limit` operations
    (0: one statement per node) and as far as `fusion_cost` predicts the symbolic work
    stays bounded. `progress` is called with the number of nodes lowered so far."""
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

    def class_labels(expr: sympy.Expr, classes: int | IndexBounds,
                     ignore: bool = True) -> sympy.Expr:
        """An input's labels are checked and cast to integers where they enter each
        function (see entry_checks); computed labels are truncated as nnabla casts them.
        An input read as labels by several functions is checked once, against the fewest
        classes any of them has (a label past that would be out of range for one), and
        allowed -1 only if all of them allow it. N-d indices (`classes` an IndexBounds,
        a range per row) are checked against the ranges every reader allows."""
        if expr not in inputs:
            return Truncate(expr)
        for labels, (source, count, ignored) in program.labels.items():
            if source == expr:
                if isinstance(count, IndexBounds):
                    merged = count.merged(classes, ignore)
                elif isinstance(classes, IndexBounds):
                    merged = classes.merged(count, ignored)
                else:
                    merged = min(count, classes)
                program.labels[labels] = (source, merged, ignored and ignore)
                return labels
        labels = program.symbol(f"{expr.name}_labels", program.shapes.of(expr))
        program.labels[labels] = (expr, classes, ignore)
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

    twice = graph.differentiates_gradients
    shared: dict[sympy.Expr, sympy.Symbol] = {}  # (see array_of)

    def array_of(node, expr: sympy.Expr, name: str) -> sympy.Symbol:
        """A value a rule of `node` computes, as an array of its own (one forward equation;
        one for one expression, whichever rule asks): the gradients of all its reads are
        summed before its own VJP runs once (sync batch normalization's all-reduce)."""
        sym = shared.get(expr)
        if sym is None:
            sym = shared[expr] = program.symbol(name, program.shapes.of(expr))
            program.forward.append(Equation(sym, expr, FORWARD, (node.index,)))
            if expr.free_symbols & program.needs_grad:
                program.needs_grad.add(sym)
        return sym

    def context(node) -> LowerContext:
        return LowerContext(tuple(graph.values[i].shape for i in node.inputs),
                            graph.values[node.output].shape, program.shapes, class_labels,
                            twice, lambda expr, name: array_of(node, expr, name))

    def lowered(node) -> sympy.Expr:
        """The node's value as one expression over its inputs' expressions."""
        if node.op == "grad":
            return gradient_of(node)
        op = OPS[node.op]
        out = graph.values[node.output]
        ctx = context(node)
        attrs = {key: sympy_number(value) if isinstance(value, Scalar) else value
                 for key, value in node.attrs}
        expr = as_number(op.lower(operands(node, op), attrs, ctx), program.shapes)
        if _nests_composites(expr):
            # A softmax of a softmax: each expands its argument twice (x - max(x)), so
            # nested expansions grow exponentially. The inner one gets its own array.
            for i in node.inputs:
                if exprs[i].has(Composite) and not isinstance(exprs[i], sympy.Symbol):
                    own_array(graph.values[i], exprs[i], origins[i])
            expr = as_number(op.lower(operands(node, op), attrs, ctx), program.shapes)
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
        return expr

    def operands(node, op) -> list[sympy.Expr]:
        """The inputs' expressions; an elementwise op takes a filled constant (F.constant)
        as its number, which broadcasts (the result gets its array's shape back)."""
        inputs = [exprs[i] for i in node.inputs]
        if not op.elementwise:
            return inputs
        return [e.args[0] if isinstance(e, Full) and e.args[0].is_Number else e
                for e in inputs]

    def gradient_of(node) -> sympy.Expr:
        """nn.grad's node (inputs: the outputs, their seeds if given, the input): the
        gradient as forward equations over the arrays computed so far."""
        count, seeded = node.attr_dict["n_outputs"], node.attr_dict["seeded"]
        outputs = [exprs[i] for i in node.inputs[:count]]
        given = iter(exprs[i] for i in node.inputs[count:-1])
        seeds = [next(given) if flag else sympy.Integer(1) for flag in seeded]
        return gradient_value(program, outputs, seeds, exprs[node.inputs[-1]], (node.index,))

    def split_inputs(node) -> bool:
        """Give each input fused into `node` an array of its own; whether there was one."""
        fused = [i for i in dict.fromkeys(node.inputs) if not isinstance(exprs[i], sympy.Symbol)]
        for i in fused:
            own_array(graph.values[i], exprs[i], origins[i])
        return bool(fused)

    def leaf_rule(node, rule) -> dict:
        """An op's rule for the leaves it overwrites (OpDef.running, .backward_writes),
        called as its lowering is: on the input expressions, attributes and context."""
        attrs = {key: sympy_number(value) if isinstance(value, Scalar) else value
                 for key, value in node.attrs}
        return rule([exprs[i] for i in node.inputs], attrs, context(node))

    def record_running(node) -> None:
        """The new values of the leaves `node`'s forward overwrites (OpDef.running), as
        forward equations; a leaf two nodes update gets the second update of the first."""
        updates = leaf_rule(node, OPS[node.op].running)
        for position, (expr, note) in updates.items():
            value = graph.values[node.inputs[position]]
            leaf = program.symbols[value.index]
            previous = program.running.get(leaf)
            if previous is not None:
                expr = expr.xreplace({leaf: previous})
            target = program.symbol(f"{leaf.name}_new", value.shape)
            program.forward.append(Equation(
                target, materialize(expr, value.shape, program.shapes), FORWARD,
                (node.index,), note=f"{value.name or leaf.name}: {note}"))
            program.running[leaf] = target

    def record_backward_writes(node) -> None:
        """The leaves `node`'s backward overwrites (OpDef.backward_writes), as values of
        its output's cotangent, which autodiff makes backward equations."""
        writes = leaf_rule(node, OPS[node.op].backward_writes)
        for position, (new_value, note) in writes.items():
            value = graph.values[node.inputs[position]]
            leaf = program.symbols[value.index]
            program.cotangent_writes.append(CotangentWrite(
                leaf, program.symbols[node.output], new_value,
                f"{value.name or leaf.name}: {note}", (node.index,)))

    def own_draws(node, expr: sympy.Expr) -> sympy.Expr:
        """`expr` with each random draw (DrawBase) replaced by an array of its own, so
        that it is drawn once and the backward pass reads the same values."""
        draws = sorted(expr.atoms(DrawBase), key=sympy.default_sort_key)
        if not draws:
            return expr
        label = graph.values[node.output].name or node.op
        replaced = {}
        for draw in draws:
            # (F.rand's value is its draw; a flip's or a choice's draw is what it reads by)
            name = label if draw == expr else \
                f"{label}_{'mask' if isinstance(draw, Bernoulli) else 'draw'}"
            sym = program.symbol(name, program.shapes.of(draw))
            program.forward.append(Equation(sym, draw.tagged(len(program.draws)), FORWARD,
                                            (node.index,),
                                            note=f"{node.op}'s random {draw.kind}"))
            program.draws.append(sym)
            replaced[draw] = sym
        return expr.xreplace(replaced)

    costs = CostModel()
    for node in graph.nodes:
        out = graph.values[node.output]
        depth = 1 + max((depths[i] for i in node.inputs), default=0)
        if OPS[node.op].array_inputs and split_inputs(node):
            depth = 1
        if depth > EXPRESSION_DEPTH_LIMIT:
            # SymPy recurses once per nested function. Only fused inputs are nested (an
            # array's depth is 0), so once they are arrays this node is one level deep.
            split_inputs(node)
            depth = 1
        expr = lowered(node)
        cost = costs.cost(expr)
        if not _within_hard_limits(cost) and split_inputs(node):
            # Too costly for SymPy even under the user's fusion limit: cut before it.
            depth = 1
            expr = lowered(node)
            cost = costs.cost(expr)
        if not _within_hard_limits(cost):
            raise ExpressionTooLarge(_too_large(graph, node, cost))
        expr = own_draws(node, expr)
        origin = tuple(sorted({node.index, *(o for i in node.inputs for o in origins[i])}))
        program.value_exprs[out.index] = expr
        program.value_origins[out.index] = origin
        depths[out.index] = depth
        if _materialized(graph, out, node.inputs, consumers) or not cost.fits(fusion_limit) \
                or OPS[node.op].backward_writes is not None:  # (its cotangent is read)
            own_array(out, expr, origin)
        else:
            exprs[out.index] = expr
            origins[out.index] = origin
        if OPS[node.op].running is not None:
            record_running(node)
        if OPS[node.op].backward_writes is not None:
            record_backward_writes(node)
        if progress is not None:
            progress(node.index + 1)
    program.outputs = [program.symbols[i] for i in graph.outputs]
    return program


def _within_hard_limits(cost: RegionCost) -> bool:
    return (cost.operations <= EXPRESSION_OPS_LIMIT
            and cost.derivative <= DERIVATIVE_PER_OPERATION * EXPRESSION_OPS_LIMIT)


def _too_large(graph: Graph, node, cost: RegionCost) -> str:
    return (
        f"{node.op} '{graph.label(node.output)}' at {node.location}: on its own (every input "
        f"already an array) its expression has {cost.operations} operations and a predicted "
        f"derivative of {cost.derivative}, more than the {EXPRESSION_OPS_LIMIT} symcompile "
        f"differentiates in one piece (SymPy's work would explode). Fix: build this "
        f"function from smaller ones"
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
    cancels x - (x - 1) to 1.

    Only the sums, products and powers at the top are rebuilt: the argument of a function
    is the expression of an earlier node, cancelled when that node was lowered, so the
    work stays that of this node however long the fused chain is (an RNN's input is
    shared by every step)."""
    with distribute(True):
        return _rebuilt(expr)


def _rebuilt(expr: sympy.Expr) -> sympy.Expr:
    if not (expr.is_Add or expr.is_Mul or expr.is_Pow):
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
