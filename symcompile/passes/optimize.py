"""Clean up the program before it is printed: inline, reuse, and share subexpressions.

1. Backward values used once are inlined into their consumer (one statement per chain,
   as far as the fusion policy allows).
2. Composite primitives (the softmax family), which autodiff needed whole for their
   closed-form gradients, are expanded into stable exp/log/sum form.
3. A backward expression that recomputes a forward value uses the forward array
   instead (``1 - tanh(z)**2`` becomes ``1 - h**2`` when ``h = tanh(z)`` exists).
4. `sympy.cse` runs jointly over the forward and backward expressions, so the fused
   step computes each common subexpression once; a subexpression that is a value the
   user named gets that name, others are ``_t0, _t1, ...``; each remembers the graph
   nodes it computes, for its comment.

It also records, per parameter, the derivative as one readable formula for headers and
`symcompile show` (before CSE, so it reads in the user's names).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable

import sympy

from symcompile.ir.collectives import ProcessShared
from symcompile.ir.formula import as_text
from symcompile.ir.primitives import Bernoulli, Full, exact, shape_tuple, substitute
from symcompile.ir.program import Equation, Program
from symcompile.ops.softmax import expand_composites
from symcompile.passes.fusion_cost import CostModel, operation_count
from symcompile.passes.schedule import order

# Past this many operations a derivative formula keeps intermediate gradients by name...
FORMULA_OPS_LIMIT = 80
# ...and past this many characters it uses the names the user gave to intermediate values.
NAMING_TEXT_LIMIT = 80
_TEMP = re.compile(r"_t\d+$")


def optimize(program: Program, fusion_limit: int,
             lap: Callable[[str], None] | None = None) -> None:
    """The steps above, in order; `lap(phase)` is called after the simplifications
    ("simplify"), the common subexpressions ("cse") and the final rewrites ("tidy")."""
    lap = lap or (lambda phase: None)
    _inline_single_use(program, fusion_limit)
    _reuse_forward_values(program)
    names = _name_fused_values(program)
    program.fused_names = {program.value_exprs[i]: sym for i, sym in names.items()}
    _record_derivatives(program, program.fused_names)
    _expand_composites(program)
    _drop_shared_markers(program)
    _idempotent_masks(program)
    _fold_constant_gradients(program)
    _reuse_forward_values(program)
    program.stats["operations before CSE"] = _operations(program)
    lap("simplify")
    _eliminate_common_subexpressions(program, names)
    lap("cse")
    _values_keep_shapes(program)
    program.stats["operations after CSE"] = _operations(program)
    program.stats["shared subexpressions"] = len(program.temps)
    _reduce_powers(program)
    _renumber_temporaries(program)
    lap("tidy")


def _operations(program: Program) -> int:
    return sum(operation_count(eq.expr) for eq in program.equations())


def _uses(exprs) -> dict[sympy.Symbol, int]:
    counts: dict[sympy.Symbol, int] = {}
    for expr in exprs:
        for sym in _symbols_with_multiplicity(expr):
            counts[sym] = counts.get(sym, 0) + 1
    return counts


def _symbols_with_multiplicity(expr: sympy.Basic):
    """Each symbol once per place it occurs (x*x**2 counts x twice)."""
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, sympy.Symbol):
            yield node


def _inline_single_use(program: Program, fusion_limit: int) -> None:
    """Backward values read once are inlined into their reader while the reader's
    expression stays within the fusion policy (so the gradient of a long chain is not one
    expression of the whole chain)."""
    outputs = set(program.backward_targets())
    uses = _uses(eq.expr for eq in program.backward)
    substitutions: dict[sympy.Symbol, sympy.Expr] = {}
    kept: list[Equation] = []
    costs = CostModel()
    for eq in program.backward:
        if substitutions and not eq.expr.free_symbols.isdisjoint(substitutions):
            eq.expr = eq.expr.xreplace(substitutions)
        single = uses.get(eq.target, 0) == 1 or isinstance(eq.expr, sympy.Symbol)
        if single and eq.target not in outputs and (
                isinstance(eq.expr, sympy.Symbol) or costs.cost(eq.expr).fits(fusion_limit)):
            substitutions[eq.target] = eq.expr
        else:
            kept.append(eq)
    program.backward = kept


def _drop_shared_markers(program: Program) -> None:
    """ProcessShared(x) is x once differentiated (it only says how x's gradient is
    summed), so that no statement copies a parameter under a new name."""
    for eq in program.equations():
        if eq.expr.has(ProcessShared):
            eq.expr = eq.expr.replace(ProcessShared, lambda x, group: x)


def _expand_composites(program: Program) -> None:
    shapes = program.shapes
    for eq in program.equations():
        eq.expr = expand_composites(eq.expr, shapes)
    for index, expr in program.value_exprs.items():
        program.value_exprs[index] = expand_composites(expr, shapes)


def _idempotent_masks(program: Program) -> None:
    """mask**k -> mask for the random masks (0 or 1): the derivative of (x*mask)**2 has
    mask**2, which SymPy cannot know is the mask."""
    draws = {eq.target for eq in program.forward if isinstance(eq.expr, Bernoulli)}
    if not draws:
        return

    def powers(expr):
        return (isinstance(expr, sympy.Pow) and expr.base in draws and expr.exp.is_Integer
                and expr.exp > 0)

    for eq in program.equations():
        if eq.expr.has(*draws):
            eq.expr = eq.expr.replace(powers, lambda expr: expr.base)
    for index, expr in program.derivatives.items():
        if expr.has(*draws):
            program.derivatives[index] = expr.replace(powers, lambda expr: expr.base)


def _fold_constant_gradients(program: Program) -> None:
    """Backward values that expansion folded into 0 (the gradient through a softmax
    summed over its axis) are substituted into their consumers, where products and sums
    of them fold to zero too. (Any other number keeps its equation and gets its array's
    shape back in _values_keep_shapes.)"""
    keep = set(program.backward_targets())
    zeros: dict[sympy.Symbol, sympy.Expr] = {}
    kept: list[Equation] = []
    for eq in program.backward:
        eq.expr = substitute(eq.expr, zeros, program.shapes) if zeros else eq.expr
        if eq.expr == 0 and eq.target not in keep:
            zeros[eq.target] = sympy.Integer(0)
        else:
            kept.append(eq)
    program.backward = kept


def _values_keep_shapes(program: Program) -> None:
    """A value whose expression simplified to something smaller than its array (e - e is
    0 once CSE sees both sides are the same; a softmax summed over its axis is 1) still
    has its array's shape: the matrix products and dot products after it need it."""
    for eq in program.equations():
        shape = program.shapes.of(eq.target)
        if program.shapes.of(eq.expr) == shape and not eq.expr.is_Number:
            continue  # (a number is an array too: a loss that is 0 is a 0-d array of 0)
        if eq.expr.free_symbols:
            eq.expr = exact(eq.expr, shape, program.shapes)
        else:
            eq.expr = Full(eq.expr, shape_tuple(shape))


def _reuse_forward_values(program: Program) -> None:
    # (not a running statistic's new value: it is written into its argument, not named)
    updates = set(program.running.values())
    # (not a constant: a loss that simplified to 0 must not replace every 0, shapes' too)
    known = {eq.expr: eq.target for eq in program.forward
             if not isinstance(eq.expr, Full) and eq.target not in updates
             and eq.expr.free_symbols}
    if not known:
        return
    for eq in program.backward:
        eq.expr = eq.expr.xreplace(known)


def _name_fused_values(program: Program) -> dict[int, sympy.Symbol]:
    """Value index -> symbol, for each value the user named that was fused into another
    expression (and so has no array of its own unless CSE gives it one).

    The names are claimed once, in graph order, so formulas and generated code agree
    (the second ``h`` of a loop is ``h_2`` in both).
    """
    names: dict[int, sympy.Symbol] = {}
    seen = set()
    for index, expr in program.value_exprs.items():
        value = program.graph.values[index]
        # (a constant is not named: x - x is 0, and every 0 in a formula is not x - x)
        if value.name and index not in program.symbols and not isinstance(expr, sympy.Symbol) \
                and expr.free_symbols and expr not in seen:
            seen.add(expr)
            names[index] = program.symbol(value.name, program.shapes.of(expr))
    return names


def _record_derivatives(program: Program, named: dict) -> None:
    """d root / d leaf as one formula per leaf, written with the names of the values the
    user named (``h``, ``z``) instead of their expansions when those would bloat it."""
    definitions = {eq.target: eq.expr for eq in program.backward}
    # d root / d root is 1 for a scalar root (a 0-d array, so that the reshapes and matrix
    # products of it keep their shapes); a non-scalar root keeps its cotangent symbol.
    seed = ({program.seed: Full(sympy.Integer(1), shape_tuple(()))}
            if program.graph.root.shape == () else {})
    # Labels read as integers are the user's label input in the formula.
    seed.update({labels: source for labels, (source, *_) in program.labels.items()})
    costs = CostModel()
    for index, grad in program.gradients.items():
        formula = grad
        for _ in range(len(definitions) + 1):
            expanded = formula.xreplace(definitions)
            if expanded == formula or costs.cost(expanded).operations > FORMULA_OPS_LIMIT:
                break
            formula = expanded
        formula = formula.xreplace(seed)
        # (every operation prints as two characters or more: a formula of more than half
        # as many operations as characters allowed is long without printing it)
        if costs.cost(formula).operations > NAMING_TEXT_LIMIT // 2 \
                or len(as_text(formula, program.shapes)) > NAMING_TEXT_LIMIT:
            formula = formula.xreplace(named)
        program.derivatives[index] = formula


def _eliminate_common_subexpressions(program: Program, names: dict[int, sympy.Symbol]) -> None:
    equations = [*program.forward, *program.backward]
    if not equations:
        return
    counter = [0]

    def temporaries():
        # Named as temporaries from the start (renumbered in print order at the end), so
        # that only the few that are values the user named are renamed afterwards.
        while True:
            yield sympy.Symbol(program.namer.temp(counter))

    replacements, reduced = sympy.cse([eq.expr for eq in equations], symbols=temporaries(),
                                      order="none")
    for eq, expr in zip(equations, reduced, strict=True):
        eq.expr = expr
    fused = _fused_values(program)
    rename: dict[sympy.Symbol, sympy.Symbol] = {}
    expanded: dict[sympy.Symbol, sympy.Expr] = {}
    temps: list[Equation] = []
    for temporary, expr in replacements:
        if rename and not expr.free_symbols.isdisjoint(rename):
            expr = expr.xreplace(rename)
        full = expr.xreplace(expanded)
        value = fused.get(full)
        sym = names[value.index] if value is not None and value.index in names else temporary
        program.shapes.declare(sym, program.shapes.of(expr))
        if program.shapes.is_mask(expr):
            program.shapes.declare_mask(sym)
        if sym != temporary:
            rename[temporary] = sym
        expanded[sym] = full
        origin = program.value_origins[value.index] if value is not None else ()
        temps.append(Equation(sym, expr, "", origin))
    if rename:
        for eq in equations:
            if not eq.expr.free_symbols.isdisjoint(rename):
                eq.expr = eq.expr.xreplace(rename)
    # A returned gradient may be widened to its leaf's shape where it is returned, and a
    # running statistic's new value is written into its argument after the outputs, so no
    # other statement may read either in place of the shared subexpression it equals.
    _merge_aliases(equations, temps,
                   protected={*program.backward_targets(), *program.running.values()})
    _attribute_origins(temps, program.forward, equations)
    program.temps = temps


def _attribute_origins(temps: list[Equation], forward: list[Equation],
                       equations: list[Equation]) -> None:
    """Each statement's origin, for its comment: the graph nodes it computes itself.

    A value fused at lowering came from every node upstream of it; once CSE gives its
    fused inputs statements of their own, it computes only the nodes after them (h_2 =
    tanh(h @ W2 + b2) is the second layer's affine and tanh, not the first's too). A
    shared value that is no graph value takes the nodes of the first forward statement
    that reads it; one of the backward pass, those of the forward values it reads (the
    nodes it differentiates), else those of the first temporary that reads it, else none.
    """
    definitions = {eq.target: eq for eq in [*temps, *forward]}
    reach: dict[sympy.Symbol, frozenset] = {}

    def upstream(sym) -> frozenset:
        """The nodes that the forward value `sym` depends on, itself included."""
        if sym not in reach:
            eq = definitions[sym]
            reach[sym] = frozenset(eq.origin).union(
                *(upstream(s) for s in eq.expr.free_symbols if s in definitions))
        return reach[sym]

    def read(eq) -> frozenset:
        return frozenset().union(*(upstream(s) for s in eq.expr.free_symbols
                                   if s in definitions and s != eq.target))

    for eq in [*temps, *forward]:
        if eq.origin:
            own = tuple(index for index in eq.origin if index not in read(eq))
            eq.origin = own or eq.origin  # all upstream: keep them
    forward_reads: set[sympy.Symbol] = set()
    pending = [s for eq in forward for s in eq.expr.free_symbols]
    while pending:  # the temporaries the forward statements read, directly or not
        sym = pending.pop()
        if sym in definitions and sym not in forward_reads:
            forward_reads.add(sym)
            pending.extend(definitions[sym].expr.free_symbols)
    first_reader: dict[sympy.Symbol, Equation] = {}
    for eq in itertools.chain(temps, equations):
        for sym in eq.expr.free_symbols:
            if sym not in forward_reads or eq.target in forward_reads or eq in forward:
                first_reader.setdefault(sym, eq)  # a forward value: by a forward statement
    forward_values = forward_reads | {eq.target for eq in forward}
    # forward temporaries first: the backward ones read their nodes
    for temp in sorted(reversed(temps), key=lambda t: t.target not in forward_reads):
        if temp.origin:
            continue
        if temp.target not in forward_reads:
            temp.origin = tuple(sorted({index for s in temp.expr.free_symbols
                                        if s in forward_values
                                        for index in definitions[s].origin}))
            if temp.origin:
                continue
        # read only by later ones: theirs (not a backward statement's, whose origin is
        # every node of the forward statement it differentiates: the comment says nothing)
        first = first_reader.get(temp.target)
        if first is not None and (temp.target in forward_reads or first.target in definitions):
            temp.origin = first.origin


def _renumber_temporaries(program: Program) -> None:
    """_t0, _t1, ... in the order the statements compute them (CSE numbers them in the
    order it finds them, which is not the order they are printed in)."""
    sequence = order(program, [*program.forward_targets(), *program.backward_targets()],
                     set(program.leaves) | {program.seed})
    temps = [eq.target for eq in sequence if _TEMP.match(eq.target.name)]
    ordered = set(temps)
    temps += [t.target for t in program.temps
              if _TEMP.match(t.target.name) and t.target not in ordered]
    rename = {old: sympy.Symbol(f"_t{n}") for n, old in enumerate(temps)}
    # New names are old names permuted: read every shape before declaring any.
    shapes = program.shapes
    declared = {new: (shapes.of(old), shapes.is_mask(old)) for old, new in rename.items()}
    for new, (shape, mask) in declared.items():
        shapes.declare(new, shape)
        shapes.declare_mask(new, mask)
    for eq in program.equations():
        eq.target = rename.get(eq.target, eq.target)
        eq.expr = eq.expr.xreplace(rename)


def _reduce_powers(program: Program) -> None:
    """x**3 -> _t1*x where _t1 = x**2 exists (else x**2*x): NumPy's ** calls pow() for
    exponents above 2, many times slower than multiplying.

    The last rewrite of the program: the results are built unevaluated (SymPy would merge
    x**2*x back into x**3) and are only printed afterwards.
    """
    powers: dict[tuple[sympy.Expr, int], sympy.Symbol] = {}
    for eq in program.equations():
        if eq.expr.is_Pow and eq.expr.exp.is_Integer and eq.expr.exp >= 2:
            powers.setdefault((eq.expr.base, int(eq.expr.exp)), eq.target)

    def product(base, n: int, exclude) -> sympy.Expr:
        factors, left = [], n
        while left > 0:
            known = [k for (b, k), sym in powers.items() if b == base and k <= left
                     and sym != exclude]
            k = max(known) if known else min(left, 2)
            factors.append(powers[(base, k)] if known else
                           (sympy.Pow(base, 2, evaluate=False) if k == 2 else base))
            left -= k
        return factors[0] if len(factors) == 1 else sympy.Mul(*factors, evaluate=False)

    def rewrite(expr, exclude):
        if not expr.args or isinstance(expr, sympy.Symbol):
            return expr
        args = [rewrite(a, exclude) for a in expr.args]
        if expr.is_Pow and expr.exp.is_Integer and expr.exp >= 3:
            return product(args[0], int(expr.exp), exclude)
        if all(new is old for new, old in zip(args, expr.args, strict=True)):
            return expr  # nothing below was rewritten
        if isinstance(expr, (sympy.Add, sympy.Mul, sympy.Pow)):
            return expr.func(*args, evaluate=False)
        return expr.func(*args)

    for eq in program.equations():
        eq.expr = rewrite(eq.expr, eq.target)


def _merge_aliases(equations: list[Equation], temps: list[Equation], protected=frozenset()) -> None:
    """``g = _t6`` after CSE: let g compute _t6's expression itself and use g for _t6
    (unless g is `protected`)."""
    defined = {t.target: t for t in temps}
    rename = {}
    for eq in equations:
        if eq.target in protected:
            continue
        temp = defined.get(eq.expr)
        if temp is not None and temp.target not in rename:
            rename[temp.target] = eq.target
            eq.expr = temp.expr
            temps.remove(temp)
    if rename:
        for eq in [*equations, *temps]:
            eq.expr = eq.expr.xreplace(rename)


def _fused_values(program: Program) -> dict:
    """Expression -> graph value, for the intermediates that were fused into others."""
    found = {}
    for index, expr in program.value_exprs.items():
        if index not in program.symbols and not isinstance(expr, sympy.Symbol) \
                and expr.free_symbols:
            found.setdefault(expr, program.graph.values[index])
    return found
