"""Reverse-mode differentiation of the forward equations, at tensor granularity.

Walking the forward equations backwards, each equation's expression is split into its
elementwise part and the tensor primitives inside it (`primitives.Primitive`). The
elementwise part is differentiated by `partials.partial` (SymPy's rules, linear in the
expression), one partial derivative per input array; a primitive passes the cotangent
on through its hand-written `vjp`. A gradient that was broadcast is summed back to its
array's shape (`unbroadcast`). Each array that receives a gradient gets one backward
equation `g_<name> = sum of contributions`, so the gradient program is itself symbolic
and is optimised and printed like the forward one.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy

from symcompile.ir.primitives import Full, Primitive, materialize, shape_tuple, unbroadcast
from symcompile.ir.program import BACKWARD, FORWARD, Equation, Program
from symcompile.passes.partials import partial as partial_derivative


def differentiate(program: Program, progress: Callable[[int], None] | None = None) -> None:
    """Add the backward equations and the gradient of the root w.r.t. every need_grad leaf.

    `progress`, if given, is called with the number of graph nodes differentiated so far.
    """
    graph = program.graph
    root = program.outputs[0]
    program.seed = program.symbol(f"g_{root.name}", graph.root.shape)
    contributions: dict[sympy.Symbol, list[tuple[sympy.Expr, tuple]]] = {
        root: [(program.seed, ())]}
    walker = _Backprop(program, contributions)
    done: set[int] = set()
    for eq in reversed(program.forward):
        if progress is not None:
            done.update(eq.origin)
            progress(len(done))
        if eq.target not in contributions or eq.target not in program.needs_grad:
            continue
        g = walker.adjoint(eq.target, eq.origin)
        walker.origin = eq.origin
        walker.backprop(eq.expr, g)
    for index, sym in program.symbols.items():
        value = graph.values[index]
        if not (value.is_leaf and value.need_grad):
            continue
        note = f"d {root.name} / d {value.name or sym.name}"
        if sym in contributions:
            grad = walker.adjoint(sym, (), note=note)
        else:
            grad = Full(sympy.Integer(0), shape_tuple(value.shape))
            program.unreached.add(index)
        if sym not in walker.created:
            grad = walker.emit(f"g_{sym.name}", grad, (), note)
        program.gradients[index] = grad
    for index in graph.grad_outputs:  # intermediates whose .g the user reads
        sym = program.symbols[index]
        note = f"d {root.name} / d {graph.values[index].name or sym.name}"
        if sym in walker.adjoints:
            grad = walker.adjoints[sym]
        else:  # the gradient does not reach it (need_grad=False further down)
            grad = Full(sympy.Integer(0), shape_tuple(graph.values[index].shape))
        if sym not in walker.created:
            grad = walker.emit(f"g_{sym.name}", grad, (), note)
        program.output_gradients[index] = grad
    # Leaves a function's backward overwrites with a value of its output's cotangent
    # (F.vat_noise's w), when the gradient reaches that output; as nnabla runs the
    # backward in reverse order, the function nearest the leaves writes last.
    for write in reversed(program.cotangent_writes):
        if write.output not in walker.adjoints:
            continue
        new = write.value(walker.adjoints[write.output])
        program.backward_writes[write.leaf] = walker.emit(
            f"{write.leaf.name}_new", materialize(new, program.shapes.of(write.leaf),
                                                  program.shapes), write.origin, write.note)


def gradient_value(program: Program, outputs, seeds, wrt: sympy.Symbol,
                   origin: tuple[int, ...]) -> sympy.Expr:
    """d (sum over k of seeds[k] * outputs[k]) / d `wrt` as a value of the graph (nn.grad):
    the reverse pass over the forward equations so far, emitted as forward equations, so
    that whatever reads the gradient, and the final backward pass through it (a second
    derivative), treat it as any other value."""
    contributions: dict[sympy.Symbol, list[tuple[sympy.Expr, tuple]]] = {}
    for out, seed in zip(outputs, seeds, strict=True):
        contributions.setdefault(out, []).append((seed, origin))
    first_new = len(program.forward)
    walker = _Backprop(program, contributions, section=FORWARD)
    for eq in reversed(program.forward[:first_new]):
        if eq.target not in contributions or eq.target not in program.needs_grad:
            continue
        g = walker.adjoint(eq.target, origin)
        walker.origin = origin
        walker.backprop(eq.expr, g)
    if wrt in contributions:
        grad = walker.adjoint(wrt, origin)
    else:  # the outputs do not depend on it
        grad = Full(sympy.Integer(0), shape_tuple(program.shapes.of(wrt)))
    for eq in program.forward[first_new:]:  # values a later gradient flows through
        if not program.needs_grad.isdisjoint(eq.expr.free_symbols):
            program.needs_grad.add(eq.target)
    return grad


class _Backprop:
    """Accumulates gradient contributions and emits backward equations (or, for nn.grad,
    forward ones)."""

    def __init__(self, program: Program, contributions, section: str = BACKWARD) -> None:
        self.section = section
        # d loss / d v is g_v; a gradient nn.grad made a value of the graph is grad_v, so
        # that the second derivative's g_v does not read as the first one
        self.prefix = "grad_" if section == FORWARD else "g_"
        self.program = program
        self.shapes = program.shapes
        self.contributions = contributions
        self.adjoints: dict[sympy.Symbol, sympy.Expr] = {}
        self.created: set[sympy.Symbol] = set()  # symbols whose adjoint has its own equation
        self.origin: tuple[int, ...] = ()
        self._placeholders = 0
        self._parameters: set[sympy.Symbol] | None = None  # the parameters' symbols

    def adjoint(self, sym: sympy.Symbol, origin, note: str = "") -> sympy.Expr:
        """The gradient of `sym`: the sum of its contributions, as a backward equation."""
        if sym in self.adjoints:
            return self.adjoints[sym]
        parts = [expr for expr, _ in self.contributions[sym]]
        # (nn.grad's seed of ones is a number: as a forward value `g = 1`, later passes
        # would read every 1 of the program as that value)
        plain = (sympy.Symbol, sympy.Number) if self.section == FORWARD else sympy.Symbol
        if len(parts) == 1 and isinstance(parts[0], plain):
            result = parts[0]
        else:
            origin = sorted({*origin, *(o for _, part in self.contributions[sym] for o in part)})
            result = self.emit(f"{self.prefix}{sym.name}", sympy.Add(*parts), origin, note)
            self.created.add(sym)
        self.adjoints[sym] = result
        return result

    def emit(self, name: str, expr: sympy.Expr, origin, note: str = "",
             wrt: sympy.Expr | None = None) -> sympy.Symbol:
        target = self.program.symbol(name, self.shapes.of(expr))
        equations = self.program.forward if self.section == FORWARD else self.program.backward
        equations.append(Equation(target, expr, self.section, tuple(origin), note, wrt))
        return target

    def requires_grad(self, expr: sympy.Basic) -> bool:
        return any(s in self.program.needs_grad for s in expr.free_symbols)

    def backprop(self, expr: sympy.Expr, g: sympy.Expr) -> None:
        """Send the cotangent `g` of `expr` to the arrays `expr` is built from.

        `g` may be smaller than `expr` (a scalar, or size 1 along an axis); sums back to
        the inputs' shapes count `expr`'s full shape, not `g`'s.
        """
        if not self.requires_grad(expr):
            return
        nominal = self.shapes.of(expr)
        if isinstance(expr, sympy.Symbol):
            self.contributions.setdefault(expr, []).append((g, self.origin))
            return
        if isinstance(expr, Primitive):
            self._through_primitive(expr, g)
            return
        # Hide the primitives inside `expr` behind placeholder symbols, differentiate the
        # elementwise remainder, then put the primitives back.
        hidden: dict[sympy.Symbol, Primitive] = {}
        elementwise = self._hide_primitives(expr, hidden)
        for s in sorted(elementwise.free_symbols, key=lambda s: s.name):
            original = hidden.get(s, s)
            if not self.requires_grad(original):
                continue
            partial = partial_derivative(elementwise, s)
            if partial == 0:
                continue
            cotangent = unbroadcast(g * partial.xreplace(hidden), self.shapes.of(original),
                                    self.shapes, nominal)
            if s in hidden:
                self._through_primitive(original, cotangent)
            else:
                self.contributions.setdefault(s, []).append((cotangent, self.origin))

    def _through_primitive(self, prim: Primitive, g: sympy.Expr) -> None:
        # Arguments that are the same expression (u in Dot(u, u)) get one, summed, VJP.
        positions: dict[sympy.Expr, list[int]] = {}
        for i in prim.tensor_args:
            if self.requires_grad(prim.args[i]):
                positions.setdefault(prim.args[i], []).append(i)
        if len(positions) > 1 and not isinstance(g, (sympy.Symbol, sympy.Number)):
            g = self.emit(self._cotangent_name(prim), g, self.origin, wrt=prim)
        for arg, indices in positions.items():
            self.backprop(arg, sympy.Add(*(prim.vjp(i, g, self.shapes) for i in indices)))

    def _cotangent_name(self, prim: Primitive) -> str:
        """The name of d root / d `prim`, after what the user calls its operands: a product
        with a parameter is its layer's output (``x @ affine_W`` -> ``g_affine``: the bias
        added after it does not change the gradient), else ``g_<operand>_<operand>``."""
        if self._parameters is None:
            graph = self.program.graph
            self._parameters = {self.program.symbols[v.index] for v in graph.parameters}
        operands = [prim.args[i] for i in prim.tensor_args]
        names = [a.name for a in operands if isinstance(a, sympy.Symbol)]
        layers = [a.name.rpartition("_")[0] for a in operands
                  if a in self._parameters and "_" in a.name]
        if layers:
            return f"{self.prefix}{layers[0]}"
        return self.prefix + ("_".join(names) if names else "product")

    def _hide_primitives(self, expr: sympy.Expr, hidden: dict) -> sympy.Expr:
        if isinstance(expr, Primitive):
            for placeholder, prim in hidden.items():
                if prim == expr:
                    return placeholder
            # As real as the primitive it stands for: SymPy rewrites (h*h)**y as
            # Abs(h)**(2*y) for a real h, whose derivative needs h real too.
            placeholder = sympy.Symbol(f"_p{self._placeholders}", real=expr.is_real)
            self._placeholders += 1
            self.shapes.declare(placeholder, self.shapes.of(expr))
            hidden[placeholder] = expr
            return placeholder
        if not expr.args or isinstance(expr, sympy.Symbol):
            return expr
        return expr.func(*(self._hide_primitives(a, hidden) for a in expr.args))
