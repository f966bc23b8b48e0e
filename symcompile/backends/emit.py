"""Program -> module source: build the template context, render it with jinja2.

Everything the templates print is decided here as ready strings: each statement's text
(from the printer), its provenance comment, function signatures and module constants.
The templates (`templates/*.py.jinja`) only lay them out. There is one jinja2
environment, created once; the template directory is resolved in one place.
"""

from __future__ import annotations

import functools
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field

import jinja2
import sympy

from symcompile._version import __version__
from symcompile.backends.base import Backend
from symcompile.backends.code_lines import LINE_WIDTH, Block, Line, fit
from symcompile.backends.entry_checks import Argument
from symcompile.backends.printer import shape_text
from symcompile.backends.source_literals import block, literal
from symcompile.backends.verify import Source, verify_module
from symcompile.common.integrity import seal
from symcompile.common.resources import template_dir
from symcompile.ir import formula
from symcompile.ir.collectives import process_groups
from symcompile.ir.graph import Graph
from symcompile.ir.naming import comment_text, docstring_text
from symcompile.ir.primitives import Shapes, materialize
from symcompile.ir.program import Equation, Program
from symcompile.ops.registry import OPS
from symcompile.ops.update_rules import Update, UpdateRule, instantiate, state_names
from symcompile.passes.schedule import Schedule, schedule
from symcompile.passes.training_step import TrainingStep


@functools.cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        autoescape=False,  # we emit Python, not HTML: "h > 0" must stay "h > 0"
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)


def wrap_doc(text: str, width: int = LINE_WIDTH - 16) -> tuple[str, ...]:
    """A docstring as lines that fit the generated code's width, made safe to embed."""
    return tuple(textwrap.wrap(docstring_text(text), width)) or ("",)


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    arguments: tuple[str, ...]  # ``x``, ``lr=0.001``: identifiers and whole literals

    doc: tuple[str, ...]  # docstring lines, already wrapped
    blocks: tuple[Block, ...]
    returns: str
    prologue: tuple[Line, ...] = ()

    @property
    def return_text(self) -> str:
        """``return a, b``'s values; past the line width, continued inside their brackets
        (see code_lines.fit), indented for the function body."""
        text = fit(f"return {self.returns}", 4)
        if "\n" not in text and len(text) > LINE_WIDTH - 4:  # a bare tuple: parenthesised
            text = fit(f"return ({self.returns})", 4)
        return text.removeprefix("return ").replace("\n", "\n    ")

    @property
    def def_lines(self) -> tuple[str, ...]:
        """``def name(args):``; past the line width, one line of arguments after another
        with a hanging indent, breaking only between arguments."""
        line = f"def {self.name}({', '.join(self.arguments)}):"
        if len(line) <= LINE_WIDTH:
            return (line,)
        rows, row = [], ""
        for argument in self.arguments:
            piece = f"{argument},"
            if row and len(row) + 1 + len(piece) > LINE_WIDTH - 8:  # after 8 of indent
                rows.append(row)
                row = piece
            else:
                row = f"{row} {piece}" if row else piece
        rows.append(row)
        return (f"def {self.name}(", *(f"        {r}" for r in rows), "):")


@dataclass(frozen=True)
class ModuleSpec:
    header: tuple[str, ...]  # comment lines, without "# "
    doc: tuple[str, ...]  # module docstring lines
    constants: tuple[tuple[str, object], ...]  # (name, value or verify.Source)
    functions: tuple[FunctionSpec, ...]
    template: str
    imports: tuple[str, ...]  # what the template imports
    kernels: tuple[str, ...] = ()  # the source of each kernel the functions call
    extra: dict = field(default_factory=dict)
    lazy_imports: tuple[str, ...] = ()  # what a kernel may import when first called

    @property
    def constant_lines(self) -> tuple[tuple[str, str], ...]:
        """(name, source of its value): tables one row per line, literals never split."""
        return tuple((name, value.text if isinstance(value, Source)
                      else block(value, used=len(name) + 3, table=True))
                     for name, value in self.constants)

    def source(self, version: str, lap: Callable[[str], None] | None = None) -> str:
        """The module's text, verified (see `verify`) and sealed (see `integrity`)."""
        text = render(self.template, spec=self, version=version)
        if lap:
            lap("render")
        verify_module(text, dict(self.constants), [f.name for f in self.functions]
                      + list(self.extra.get("helpers", ())),
                      imports=self.imports, what=self.template, lazy_imports=self.lazy_imports)
        sealed = seal(text)
        if lap:
            lap("verify")
        return sealed


@dataclass(frozen=True)
class EmitOptions:
    name: str
    backend: Backend
    regenerate: str  # the command (or instructions) that regenerates the module
    source: str  # where the graph was built, for the header
    step: TrainingStep | None = None  # the fused training step, if the module has one
    check_finite: bool = False  # the fused step refuses NaN/Inf gradients before updating
    split_update: bool = False  # add <rule>_backward_update (see compiler.Options)


def module_source(program: Program, plan: Schedule, graph_hash: str,
                  options: EmitOptions, lap: Callable[[str], None] | None = None) -> str:
    """The module's text; `lap(phase)` is called after printing the statements ("print"),
    rendering the template ("render") and verifying the result ("verify")."""
    spec = _ModuleBuilder(program, plan, graph_hash, options).build()
    if lap:
        lap("print")
    return spec.source(__version__, lap)


class _ModuleBuilder:
    def __init__(self, program: Program, plan: Schedule, graph_hash: str,
                 options: EmitOptions) -> None:
        self.program = program
        self.graph: Graph = program.graph
        self.plan = plan
        self.hash = graph_hash
        self.options = options
        self.backend = options.backend
        self.printer = self.backend.printer(program.shapes, program.dtype)
        self.kernels: set[str] = set(self.backend.always_kernels)  # the kernels called
        self.root = program.outputs[0]
        self.step = options.step
        self.solver = options.step.solver if options.step is not None else None
        self._leaf_of_gradient: dict[sympy.Expr, int] = {}
        for index, grad in program.gradients.items():
            self._leaf_of_gradient.setdefault(grad, index)
        self._readers: dict[int, list[int]] = {}  # value -> the nodes that read it
        for node in self.graph.nodes:
            for i in dict.fromkeys(node.inputs):
                self._readers.setdefault(i, []).append(node.index)
        self._derivative_texts: dict[int, str] = {}
        # the process groups the code exchanges values with (F.sync_batch_normalization)
        equations = [*program.forward, *program.backward, *program.temps]
        if self.step is not None and self.step.plan is not None:
            equations += [*self.step.plan.forward, *self.step.plan.backward]
        self.groups = process_groups(eq.expr for eq in equations)

    # --- statements -------------------------------------------------------------------
    def statement(self, eq: Equation, exact: bool = False) -> Line:
        expr, shape = eq.expr, self.program.shapes.of(eq.target)
        if exact:
            shape = self._value_shape(eq.target)
            expr = materialize(expr, shape, self.program.shapes)
        return Line(f"{eq.target.name} = {self.printer.doprint(expr)}", self.comment(eq, shape))

    def _value_shape(self, sym: sympy.Symbol) -> tuple[int, ...]:
        index = self._leaf_of_gradient.get(sym)
        if index is None:
            index = next((i for i, grad in self.program.output_gradients.items()
                          if grad == sym), None)
        return self.graph.values[index].shape if index is not None \
            else self.program.shapes.of(sym)

    def comment(self, eq: Equation, shape: tuple[int, ...] | None = None) -> str:
        """Where a statement comes from: the nodes it computes, or the gradient it is;
        then the shape of the array it makes (default: its expression's)."""
        if eq.section == "forward":
            text = self._places(eq.origin)
        elif eq.section == "backward":
            what = eq.note or f"d {self.root.name} / d {eq.target.name.removeprefix('g_')}"
            derivative = self._derivative_of(eq.target)
            if derivative:
                what += f" = {derivative}"
            if eq.wrt is not None:
                wrt = formula.as_text(eq.wrt.xreplace(self.program.fused_names),
                                      self.program.shapes)
                what = f"d {self.root.name} / d ({wrt})"
            through = self._consumers(eq.target)
            text = f"{what}, through {through}" if through else what
        else:  # a value several statements share: where it is a graph value, its nodes
            text = self._places(eq.origin)
        if shape is None:
            shape = self.program.shapes.of(eq.target)
        made = f"-> {shape_text(shape)}"
        return comment_text(f"{text}  {made}" if text else made)

    def _derivative_of(self, grad: sympy.Symbol) -> str:
        """The formula of a leaf's gradient, opening its statement's comment."""
        index = self._leaf_of_gradient.get(grad)
        return self.derivative_text(index) if index in self.program.derivatives else ""

    def derivative_text(self, index: int) -> str:
        """d root / d leaf as text, printed once (the header and the comments show it)."""
        text = self._derivative_texts.get(index)
        if text is None:
            text = formula.as_text(self.program.derivatives[index], self.program.shapes)
            self._derivative_texts[index] = text
        return text

    def _consumers(self, grad: sympy.Symbol) -> str:
        """The nodes that use the leaf whose gradient `grad` is (its gradient flows back
        through them)."""
        index = self._leaf_of_gradient.get(grad)
        return self._places(self._readers.get(index, ())) if index is not None else ""

    def _places(self, origin) -> str:
        """``mul2, add2 (y) @ model.py:12; sub2 @ :13`` for the nodes in `origin`."""
        groups: list[tuple[object, object, list[str]]] = []
        for index in origin:
            node = self.graph.nodes[index]
            label = self.graph.values[node.output].name
            op = f"{node.op} ({label})" if label else node.op
            line = (node.site.filename, node.site.lineno) if node.site else None
            if groups and groups[-1][0] == line:
                groups[-1][2].append(op)
            else:
                groups.append((line, node.site, [op]))
        parts, last_file = [], None
        for _, site, ops in groups:
            if site is None:
                where = "unknown location"
            elif site.filename == last_file:
                where = f":{site.lineno}"
            else:
                where = site.display
            last_file = site.filename if site is not None else None
            parts.append(f"{', '.join(ops)} @ {where}")
        return "; ".join(parts)

    def lines(self, equations, exact=frozenset()) -> tuple[Line, ...]:
        return tuple(self.statement(eq, eq.target in exact) for eq in equations)

    def forward_block(self, equations) -> Block:
        """The forward statements, but for the running statistics' new values, which
        `running_block` writes at the end."""
        running = set(self.program.running.values())
        return Block("forward", self.lines([eq for eq in equations if eq.target not in running]))

    def running_block(self, equations) -> tuple[Block, ...]:
        """The running statistics the forward in `equations` updates, written into their
        arguments after forward and backward, which read their old values (a training
        step's update reads the new ones)."""
        return self._leaf_writes(equations, self.program.running, "updated in place (RUNNING)",
                                 "written into their arguments, as nnabla's forward() does")

    def _leaf_writes(self, equations, writes: dict, title: str, doc: str) -> tuple[Block, ...]:
        """A block writing the new values `writes` (leaf -> its new value's symbol) that
        `equations` compute into the leaves' arguments; none if they compute none."""
        new_values = {eq.target: eq for eq in equations}
        lines = []
        for leaf, new in writes.items():
            if new in new_values:
                eq = new_values[new]
                text = self.printer.doprint(eq.expr)
                lines.append(Line(self.backend.update_statement(Update(leaf, "=", eq.expr),
                                                                text),
                                  comment_text(f"{self._places(eq.origin)}: {eq.note}")))
        return (Block(title, tuple(lines), doc),) if lines else ()

    def random_parts(self, equations) -> tuple[tuple[str, ...], tuple[Line, ...], str]:
        """For a function whose `equations` draw at random (dropout, rand): its `rng` argument,
        the line making it a generator, and the docstring's sentence; else nothing."""
        draws = set(self.program.draws)
        if not any(eq.target in draws for eq in equations):
            return (), (), ""
        self.kernels.add("random_generator")
        line = Line("rng = random_generator(rng)", "the generator random draws come from")
        return (("rng=None",), (line,),
                " rng: a numpy.random.Generator, an int seed or None (fresh entropy), which "
                "the random draws (RANDOM_DRAWS: dropout's masks, rand's values) come from; "
                "one seed gives the same draws.")

    def collective_arguments(self) -> tuple[str, ...]:
        """The `all_reduce` argument of every function of a module whose code sums values
        over processes (PROCESS_GROUPS), after the others."""
        return ("all_reduce=None",) if self.groups else ()

    def collective_note(self) -> str:
        if not self.groups:
            return ""
        return (" all_reduce: a function all_reduce(array, group) returning the array summed "
                "elementwise over the processes of the group (one of PROCESS_GROUPS), for "
                "the statistics F.sync_batch_normalization shares; the runtime passes its "
                "communicator's. None: this process alone.")

    def running_note(self) -> str:
        return (" Updates the arrays in RUNNING (running statistics, F.assign's dst) in "
                "place, as nnabla's forward does." if self.program.running else "")

    def written_block(self, equations) -> tuple[Block, ...]:
        """The leaves the backward in `equations` overwrites (BACKWARD_WRITES: F.vat_noise's
        w), written into their arguments after the backward statements, which read their
        old values (a training step's update reads the new ones)."""
        return self._leaf_writes(equations, self.program.backward_writes,
                                 "written by backward (BACKWARD_WRITES)",
                                 "written into their arguments, as nnabla's backward() does")

    def written_note(self) -> str:
        return (" Writes the arrays in BACKWARD_WRITES (F.vat_noise's w) in place, as "
                "nnabla's backward does." if self.program.backward_writes else "")

    def seed_line(self) -> Line:
        shape = self.graph.root.shape
        value = self.backend.seed_value(shape, self.program.dtype)
        what = "1" if shape == () else "ones, as backward() seeds it"
        return Line(f"{self.program.seed.name} = {value}",
                    f"d {self.root.name} / d {self.root.name} = {what}")

    def step_arguments(self) -> tuple[str, ...]:
        """The step's arguments after the arrays: the update count, the hyper-parameters
        with their defaults."""
        solver = self.solver
        parts = [solver.step.name] if solver.step is not None else []
        parts += [f"{name}={literal(float(solver.defaults[name]))}" for name in solver.hyper]
        return tuple(parts)

    def step_argument_names(self) -> tuple[str, ...]:
        """The names of `step_arguments`, as a call passes them on."""
        solver = self.solver
        return (*([solver.step.name] if solver.step is not None else []), *solver.hyper)

    # --- functions ----------------------------------------------------------------------
    def outputs_text(self) -> str:
        return ", ".join(s.name for s in self.program.outputs)

    def gradients(self) -> list[sympy.Symbol]:
        return list(self.program.gradients.values())

    def backward_block(self, plan: Schedule, exact: bool, skip=frozenset()) -> Block:
        """The backward statements; `exact` returns gradients of their leaves' shapes, and
        `skip` leaves out gradients that the update section computes itself."""
        grads = frozenset(self.gradients()) if exact else frozenset()
        seed = (self.seed_line(),) if plan.uses_seed else ()
        skip = {*skip, *self.program.backward_writes.values()}  # (see written_block)
        equations = [eq for eq in plan.backward if eq.target not in skip]
        return Block("backward", seed + self.lines(equations, grads))

    def arguments(self, writable: bool = False, equations=()) -> list[Argument]:
        """The leaves as a function takes them; with `writable`, the trainable parameters
        must be writable; class labels get their integer form where `equations` read it."""
        read = set().union(*(eq.expr.free_symbols for eq in equations))
        defined = {eq.target for eq in equations}
        labels_of = {source: (name, classes, ignore)
                     for name, (source, classes, ignore) in self.program.labels.items()}
        result = []
        for value, sym in zip([*self.graph.inputs, *self.graph.parameters],
                              self.program.leaves, strict=True):
            name, classes, ignore = labels_of.get(sym, (None, 0, True))
            runs = self.program.running.get(sym) in defined \
                or self.program.backward_writes.get(sym) in defined
            result.append(Argument(
                sym.name, value.shape,
                writable=runs or (writable and value.kind == "parameter" and value.need_grad),
                labels_name=name.name if name is not None and name in read else "",
                classes=classes, ignore=ignore))
        return result

    def checked(self, function: str, arguments: list[Argument], blocks, returns: str,
                doc: str, extra_arguments=(), prologue=(), extra_checks=(),
                leading_arguments=(), keep_labels: bool = True) -> FunctionSpec:
        """A function whose body opens with the checks of its array arguments (without
        `keep_labels`, class labels are checked but their integer form is not kept)."""
        lines, kernels = self.backend.argument_checks(function, arguments, keep_labels)
        self.kernels.update(kernels)
        checks = Block("arguments", lines + tuple(extra_checks),
                       "shapes and dtypes as compiled (INPUTS, PARAMETERS)")
        names = (*leading_arguments, *(a.name for a in arguments), *extra_arguments,
                 *self.collective_arguments())
        opening = self.backend.prologue(function, [a.name for a in arguments],
                                        self.program.dtype)
        return FunctionSpec(function, names, wrap_doc(doc + self.collective_note()),
                            (checks, *blocks), returns, (*opening, *prologue))

    def functions(self) -> list[FunctionSpec]:
        program, plan = self.program, self.plan
        grads = self.gradients()
        outputs = self.outputs_text()
        forward = self.forward_block(plan.forward)
        running = self.running_block(plan.forward)
        note = self.running_note()
        grad_text = ", ".join(g.name for g in grads)
        root = self.root.name
        backward_all = self.backward_block(plan, exact=True)
        rng, rng_line, rng_doc = self.random_parts(plan.forward)
        functions = [
            self.checked("forward", self.arguments(equations=plan.forward),
                         (forward, *running), outputs, "The graph's outputs." + note + rng_doc,
                         extra_arguments=rng, prologue=rng_line),
            self.checked("gradient", self.arguments(equations=(*plan.forward, *plan.backward)),
                         (forward, backward_all, *running, *self.written_block(plan.backward)),
                         ", ".join(filter(None, [outputs, grad_text])),
                         f"{outputs} and d {root} / d (each of GRADIENTS)." + note
                         + self.written_note() + rng_doc,
                         extra_arguments=rng, prologue=rng_line),
        ]
        if self.step is not None and self.step.plan is not None:
            rule, train = self.step.rule, self.step.plan
            name = f"{rule.name}_step"
            updates, states, step = self.update_parts(name, self.step.updates)
            backward = self.backward_block(train, exact=False, skip=self.step.fused)
            updated = [s.name for s in (*self.step.updated, *program.running,
                                        *program.backward_writes)]
            rng, rng_line, rng_doc = self.random_parts(train.forward)
            functions.append(self.checked(
                name, self.arguments(writable=True,
                                     equations=(*train.forward, *train.backward)) + states,
                (self.forward_block(train.forward), backward,
                 Block("check", self.finite_checks(),
                       "no update unless every gradient is finite"),
                 # before the update, which moves a trained dst (F.assign) from the
                 # value forward wrote, as nnabla's update() after forward() does
                 *self.running_block(train.forward),
                 *self.written_block(train.backward),
                 Block("update", updates, comment_text(rule.doc))),
                self.backend.step_returns(outputs, updated),
                f"One fused training step: forward, backward and the {rule.name} "
                f"update ({rule.doc}) of every trainable parameter, in place"
                + (" with its state arrays (see init_state())" if rule.states else "")
                + (", step being the number of this update (1 for the first)"
                   if rule.uses_t else "") + f". Returns {self.backend.step_returns_doc(outputs)}."
                + note + self.written_note() + rng_doc,
                extra_arguments=(*self.step_arguments(), *rng), extra_checks=step,
                prologue=rng_line))
        # forward_saving and backward also return the gradients of the intermediates the
        # user reads (OUTPUT_GRADIENTS), so they may save more than gradient() computes.
        split = schedule(program, program.returned_gradients()) \
            if program.output_gradients else plan
        returned = program.returned_gradients()
        saved = ", ".join(s.name for s in split.saved)
        saved_tuple = f"({saved},)" if len(split.saved) == 1 else f"({saved})"
        rng, rng_line, rng_doc = self.random_parts(split.forward)
        functions.append(self.checked(
            "forward_saving", self.arguments(equations=split.forward),
            (self.forward_block(split.forward), *self.running_block(split.forward)),
            f"{outputs}, {saved_tuple}",
            "forward(), plus the values backward() reuses (for a split forward and "
            "backward, as the runtime does)." + note + rng_doc, extra_arguments=rng,
            prologue=rng_line))
        unpack = ()
        if split.saved:
            unpack = (Line(f"{saved}{',' if len(split.saved) == 1 else ''} = saved"),)
        seed = Argument(program.seed.name, self.graph.root.shape)
        returned_text = ", ".join(g.name for g in returned)
        functions.append(self.checked(
            "backward", self.arguments(equations=split.backward) + [seed],
            (Block("backward", self.lines(self.unwritten(split.backward),
                                          frozenset(returned))),
             *self.written_block(split.backward)),
            f"({returned_text},)" if len(returned) == 1 else f"({returned_text})",
            f"d {root} / d (each of GRADIENTS"
            + (", then each of OUTPUT_GRADIENTS" if program.output_gradients else "")
            + f"), given forward_saving()'s saved values and the cotangent "
            f"{program.seed.name} of {root}." + self.written_note(), prologue=unpack,
            leading_arguments=("saved",)))
        if self.options.split_update and self.backend.updates_in_place \
                and self.step is not None and self.step.plan is not None:
            functions += self.backward_update(split, returned, seed, unpack)
        return functions

    def unwritten(self, equations) -> list[Equation]:
        """`equations` but the new values of the leaves the backward overwrites, which
        `written_block` writes."""
        written = set(self.program.backward_writes.values())
        return [eq for eq in equations if eq.target not in written]

    def update_parts(self, function: str, step_updates) -> tuple:
        """What a function applying the solver's updates needs: the update statements,
        the state arrays as arguments, and the check of the update count (if the rule
        counts updates)."""
        updates = tuple(
            Line(self.backend.update_statement(u.update, self.printer.doprint(u.expr)),
                 comment_text(u.note)) for u in step_updates)
        states = [Argument(s.name, self.program.shapes.of(s), writable=True)
                  for s in self.solver.state_symbols]
        step = ()
        if self.solver.step:
            check, kernels = self.backend.step_check(function, self.solver.step.name)
            step = (check,)
            self.kernels.update(kernels)
        return updates, states, step

    def backward_update(self, split: Schedule, returned, seed: Argument, unpack
                        ) -> tuple[FunctionSpec, FunctionSpec]:
        """``<rule>_backward_update``: backward() and the rule's update of every trainable
        parameter in one call, for the runtime's nnabla loop. The gradients are computed
        as backward() computes them and the updates read them as update() does, so the
        parameters get the bits of backward() then update(); it returns the gradients (the
        runtime writes them into `.g` if they are read). Its body is a private function
        of its own, ``_<rule>_backward_update``, without the entry checks: the runtime
        calls it directly when forward_saving() has just checked the very arrays it
        passes (at a small batch the checks, class labels' above all, cost as much as a
        layer's backward)."""
        program, rule = self.program, self.step.rule
        name = f"{rule.name}_backward_update"
        body = f"_{name}"
        updates, states, step = self.update_parts(name, self.step.split_updates)
        returned_text = ", ".join(g.name for g in returned)
        arguments = self.arguments(writable=True, equations=split.backward) + [seed] + states
        decay = self.coupled_decay()
        extra = (*self.step_arguments(), *(("wd=0.0",) if decay else ()))
        names = ("saved", *(a.name for a in arguments), *self.step_argument_names(),
                 *(("wd",) if decay else ()), *(("all_reduce",) if self.groups else ()))
        labels = self.backend.checked_labels(arguments)
        what = (f"backward() and the {rule.name} update ({rule.doc}) of every trainable "
                f"parameter in place, given forward_saving()'s saved values and the "
                f"cotangent {program.seed.name} of {self.root.name}: the bits of backward() "
                f"then update(), in one call (the runtime's loop)"
                + (": with wd, after solver.weight_decay(wd) (g += wd*w first)" if decay
                   else "") + ". Returns backward()'s gradients.")
        public = self.checked(
            name, arguments, (), f"{body}({', '.join(names)})", what + f" (Checks its "
            f"arguments, then runs {body}.)", extra_arguments=extra, extra_checks=step,
            leading_arguments=("saved",), keep_labels=False)
        private = FunctionSpec(
            body, ("saved", *(a.name for a in arguments), *extra,
                   *self.collective_arguments()),
            wrap_doc(f"{name}() without its entry checks, for the runtime, which calls it "
                     f"only with the arrays forward_saving() has just checked, unchanged "
                     f"since (anything else goes through {name}())."),
            (*((Block("labels", labels, "as forward_saving() checked them"),) if labels
               else ()),
             Block("backward", self.lines(self.unwritten(split.backward),
                                          frozenset(returned))),
             *self.written_block(split.backward),
             Block("weight decay", decay, "solver.weight_decay(wd) before update()"),
             Block("update", updates, comment_text(rule.doc))),
            f"({returned_text},)" if len(returned) == 1 else f"({returned_text})",
            (*self.backend.prologue(body, [a.name for a in arguments], self.program.dtype),
             *unpack))
        return public, private

    def coupled_decay(self) -> tuple[Line, ...]:
        """For a rule whose weight_decay(rate) adds rate*w to the gradients at once (not
        inside its update): that addition, as the solver makes it, for every parameter
        the update reads, when the call passes a rate (the runtime's loop, keeping a
        weight_decay() between backward() and update() on its fused path). A new array
        (``g = g + wd*w``): a gradient may be a view of another value."""
        rule = self.step.rule
        if rule.fused_decay(self.solver.options) or "wd" in rule.hyper_names:
            return ()
        lines = []
        for index, grad in self.program.gradients.items():
            value = self.graph.values[index]
            if value.kind != "parameter" or not value.need_grad \
                    or index in self.program.unreached:
                continue
            param = self.program.symbols[index].name
            lines.append(Line("if wd:", comment_text(f"weight decay of {value.name}"),
                              body=f"{grad.name} = {grad.name} + wd*{param}"))
        return tuple(lines)

    # --- module -------------------------------------------------------------------------
    def header(self) -> tuple[str, ...]:
        graph, program = self.graph, self.program
        lines = [
            f"Generated by symcompile {__version__} from template "
            f"{self.backend.module_template}. Do not edit: regenerate.",
            f"Graph:      {comment_text(self.options.name)} ({comment_text(self.options.source)}), "
            f"{len(graph.nodes)} nodes, {len(graph.parameters)} parameters",
            f"Graph hash: {self.hash}",
            # whole, however long: a command to copy
            f"Regenerate: {comment_text(self.options.regenerate)}",
            "Names:      <v> = value of graph variable v; g_<v> = d(loss)/d(v); "
            "_tN = a shared value",
        ]
        if graph.differentiates_gradients:
            lines.append("            grad_<v> = a gradient nn.grad made a value of the graph")
        if program.derivatives:
            lines.append("")
            lines.append("Derivatives (what the backward section computes):")
            for index in program.derivatives:
                name = self.graph.values[index].name or program.symbols[index].name
                text = comment_text(f"d {self.root.name} / d {name} = "
                                    f"{self.derivative_text(index)}", 4000)
                lines += textwrap.wrap(text, LINE_WIDTH - 4, initial_indent="  ",
                                       subsequent_indent="      ", break_on_hyphens=False)
        return tuple(lines)

    def constants(self) -> tuple[tuple[str, object], ...]:
        """The module's constants as values (the template prints them as literals and
        `verify` checks the printed text holds exactly these values)."""
        graph, program = self.graph, self.program

        def argument(value) -> str:
            return program.symbols[value.index].name

        labels = self.label_classes()
        inputs = {argument(v): {"name": v.name, "shape": v.shape, "dtype": v.dtype,
                                "need_grad": v.need_grad,
                                **({"labels": labels[v.index]} if v.index in labels else {})}
                  for v in graph.inputs}
        parameters = {v.name: {"argument": argument(v), "shape": v.shape, "dtype": v.dtype,
                               "need_grad": v.need_grad}
                      for v in graph.parameters}
        outputs = {argument(graph.values[i]): {"shape": graph.values[i].shape,
                                               "dtype": graph.values[i].dtype}
                   for i in graph.outputs}
        return (
            ("GRAPH_NAME", self.options.name),
            ("GRAPH_HASH", self.hash),
            ("SOURCE_HASH", ""),  # filled in by integrity.seal
            ("SYMCOMPILE_VERSION", __version__),
            ("DTYPE", self.backend.dtype_constant(program.dtype)),
            ("INPUTS", inputs),
            ("PARAMETERS", parameters),
            ("OUTPUTS", outputs),
            ("GRADIENTS", tuple(argument(graph.values[i]) for i in program.gradients)),
            # Leaves the root does not depend on: their gradient is 0 and backward() leaves
            # them untouched (nnabla's solvers then skip them).
            ("UNREACHED", tuple(argument(graph.values[i]) for i in sorted(program.unreached))),
            # Outputs whose gradient backward() returns after GRADIENTS' (intermediates
            # whose .g the user reads; nnabla keeps them).
            ("OUTPUT_GRADIENTS", tuple(argument(graph.values[i])
                                       for i in program.output_gradients)),
            # Inputs whose values (not only shapes) the entry checks: class labels, indices
            ("CHECKED_VALUES", tuple(sorted({source.name for source, _, _
                                             in self.program.labels.values()}))),
            ("SOLVER", self.step.rule.name if self.step else None),
            # the switches of the solver's rule the steps were compiled with
            ("SOLVER_OPTIONS", tuple(sorted(self.solver.options.items()))
             if self.solver else ()),
            ("STATE", self.state_table()),
            # Leaves every forward pass overwrites: batch normalization's running
            # statistics in training mode (the step returns them too).
            ("RUNNING", tuple(leaf.name for leaf in program.running)),
            # Arrays drawn at random by every forward pass (dropout's masks, F.rand's
            # values), from the functions' `rng` argument.
            ("RANDOM_DRAWS", tuple(sym.name for sym in program.draws)),
            # Leaves every backward pass overwrites (F.vat_noise's w gets eps * dy; their
            # gradients are left as they are): only in modules that have some.
            *((("BACKWARD_WRITES", tuple(leaf.name for leaf in program.backward_writes)),)
              if program.backward_writes else ()),
            # The groups of processes the code sums values over (the `all_reduce` argument
            # every function takes): only in modules that have some.
            *((("PROCESS_GROUPS", self.groups),) if self.groups else ()),
        )

    def label_classes(self) -> dict[int, int]:
        """Inputs used as class labels (how many classes), so that check_gradient()
        draws valid labels for them (the fewest classes of the functions reading one)."""
        found: dict[int, int] = {}
        for node in self.graph.nodes:
            labels = OPS[node.op].labels
            if labels is not None:
                shapes = tuple(self.graph.values[i].shape for i in node.inputs)
                for position, classes in labels(shapes, node.attr_dict).items():
                    index = node.inputs[position]
                    found[index] = min(classes, found.get(index, classes))
        return found

    def state_table(self) -> dict:
        """STATE: each solver-state argument with its parameter, state name and shape."""
        if self.solver is None:
            return {}
        return {symbol.name: {"parameter": self.graph.values[index].name, "state": name,
                              "shape": self.graph.values[index].shape}
                for index, states in self.solver.states.items()
                for name, symbol in states.items()}

    def init_lines(self) -> tuple[Line, ...]:
        lines = []
        for value in self.graph.parameters:
            arg = self.program.symbols[value.index].name
            code, note = self.backend.initializer(value.init, value.shape, self.program.dtype)
            lines.append(Line(f"{literal(arg)}: {code},", comment_text(f"{value.name}: {note}")))
        return tuple(lines)

    def finite_checks(self) -> tuple[Line, ...]:
        """With check_finite: one `require_finite` call per trainable parameter's gradient,
        before any parameter or state is changed."""
        if not self.options.check_finite:
            return ()
        gradients = self.program.gradients
        self.kernels.add("require_finite")
        return tuple(Line(f"require_finite({literal(v.name)}, {gradients[v.index].name})")
                     for v in self.graph.parameters if v.need_grad)

    def uses_rng(self) -> bool:
        return any(_draws(v.init) for v in self.graph.parameters)

    def build(self) -> ModuleSpec:
        backend = self.backend
        step_name = f"{self.step.rule.name}_step" if self.step else ""
        doc = wrap_doc(f"Forward, gradient and training step for the graph "
                       f"`{self.options.name}`, generated by symcompile."
                       + (f" {backend.in_place}" if step_name else ""), LINE_WIDTH - 12)
        state = ()
        if self.solver is not None:
            dtype = self.program.dtype
            state = tuple(
                Line(f"{literal(sym.name)}: "
                     f"{backend.zeros(self.program.shapes.of(sym), dtype)},")
                for sym in self.solver.state_symbols)
        functions = tuple(self.functions())  # records the kernels the functions call
        # those of the checks and steps (self.kernels), and those the printed statements
        # call (the printer records them)
        kernels = backend.kernels.closure(sorted(self.kernels | self.printer.kernels))
        helpers = (*backend.template_helpers, *kernels, *(["init_state"] if state else []))
        return ModuleSpec(self.header(), doc, self.constants(), functions,
                          template=backend.module_template, imports=backend.imports,
                          kernels=tuple(backend.kernels.source(k) for k in kernels),
                          lazy_imports=backend.lazy_imports,
                          extra={"init": self.init_lines(), "uses_rng": self.uses_rng(),
                                 "state": state, "step_name": step_name, "helpers": helpers})



def update_module_source(rule: UpdateRule, options, backend: Backend) -> str:
    """The module behind `solver.update()` for `rule`: one function
    ``update(w, g, *states, t, *hyper)`` that updates w and the states in place."""
    shapes = Shapes()
    values = {**dict(rule.options), **dict(options)}
    names = state_names(rule, values)
    w, g = (shapes.declare(sympy.Symbol(n), (2,)) for n in ("w", "g"))
    # A state named like another argument (RMSpropGraves' "g") gets a suffix.
    taken = {"w", "g", "t", *rule.hyper_names}
    arguments = {name: f"{name}_state" if name in taken else name for name in names}
    states = {name: shapes.declare(sympy.Symbol(arguments[name]), (2,)) for name in names}
    hyper = {name: shapes.declare(sympy.Symbol(name), ()) for name in rule.hyper_names}
    t = shapes.declare(sympy.Symbol("t"), ())
    printer = backend.printer(shapes, "float32")

    def scalar_name(name: str) -> sympy.Symbol:
        return shapes.declare(sympy.Symbol(name), ())

    def local_name(name: str) -> sympy.Symbol:
        return shapes.declare(sympy.Symbol(name), (2,))

    lines = [Line(backend.update_statement(u, printer.doprint(u.expr)))
             for u in instantiate(rule, w, g, states, hyper, t, values, scalar_name,
                                  local_name)]
    signature = ("w", "g", *arguments.values(), *(["t"] if rule.uses_t else []),
                 *rule.hyper_names)
    flags = ", ".join(f"{k}={v}" for k, v in sorted(values.items()))
    function = FunctionSpec(
        "update", signature,
        wrap_doc(f"Update parameter w (and the state arrays) in place from its gradient g: "
                 f"{rule.doc}."),
        (Block("update", tuple(lines)),), backend.update_returns(["w", *arguments.values()]),
        backend.prologue("update", ["w", "g", *arguments.values()], "float32"))
    kernels = backend.kernels.closure((*backend.always_kernels, *sorted(printer.kernels)))
    spec = ModuleSpec(
        header=(f"Generated by symcompile {__version__} from template "
                f"{backend.update_template}. Do not edit: regenerate.",
                comment_text(f"The {rule.name} update rule{' (' + flags + ')' if flags else ''},"
                             f" as solver.update() runs it: {rule.doc}", 1000)),
        doc=wrap_doc(f"The {rule.name} update rule, generated by symcompile."),
        constants=(("SOURCE_HASH", ""), ("RULE", rule.name), ("STATES", tuple(names)),
                   ("HYPER", tuple(rule.hyper_names)),
                   ("OPTIONS", tuple(sorted(values.items())))),
        functions=(function,), template=backend.update_template,
        imports=backend.update_imports, lazy_imports=backend.lazy_imports,
        kernels=tuple(backend.kernels.source(k) for k in kernels),
        extra={"helpers": kernels})
    return spec.source(__version__)


def _draws(init) -> bool:
    """Whether an initializer's description (initializer.describe) draws at random."""
    if not init:
        return False
    if init[0] == "joined":
        return any(_draws(part) for part, _ in init[1:])
    return init[0] in ("uniform", "normal")
