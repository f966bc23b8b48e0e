"""Run the nnabla-style loop on generated code: forward, backward, solver updates.

The first `forward()`/`backward()` on a variable captures its graph, finds or compiles
the module for it (in-process cache, then the on-disk cache, then the compiler) and
binds the module's arguments to the Variables' arrays. Later calls only check that
nothing the code depends on changed (`graph_epoch`) and call generated functions.
"""

from __future__ import annotations

import collections
import hashlib
import sys
import types
import weakref

import numpy

from symcompile import compiler
from symcompile.common import memory
from symcompile.common.progress import ProgressLine
from symcompile.compiler import Options, compiler_fingerprint
from symcompile.frontend import context, random
from symcompile.frontend.capture import capture, user_name
from symcompile.frontend.variable import Storage, Variable, graph_epoch
from symcompile.ir.naming import identifier
from symcompile.runtime import allocator, cache, deferred, exchange

_modules: dict[str, types.ModuleType] = {}  # compile key -> loaded module
# what graphs compiled from now on compute with: set_backend's choice, else the current
# context's (nn.set_default_context)
_backend: str | None = None
_updates: dict[str, object] = {}  # update rule name -> generated update function
# The solver the runtime compiles a graph's fused functions for until a solver's update()
# asks for another (fused_update): (update rule, its options)
DEFAULT_SOLVER = ("sgd", ())


class Binding:
    """A generated module bound to the arrays of the graph it was compiled from."""

    def __init__(self, module, epoch: int, args: list[numpy.ndarray], outputs: list[Storage],
                 grads: list[Storage], root_shape: tuple[int, ...],
                 output_grads: list[Storage] = (), intermediates: frozenset = frozenset(),
                 copies: list = (), leaves: list[Storage] = ()) -> None:
        self.module = module
        self.epoch = epoch
        self.args = args  # leaf arrays in the module's argument order
        self.leaves = list(leaves)  # their Storages (a deferred backward() guards them)
        self.defer_plan = None  # worked out by deferred.defer on first use
        # (rule, the parameters' Storages) -> how fused_update calls <rule>_backward_update
        self.fused_plans: dict[tuple, tuple | None] = {}
        # (copy, array): the module's float32 copy of a leaf array of another dtype (an
        # int label, a float64 input), refreshed before every call (see `_refresh`)
        self.copies = list(copies)
        self.outputs = outputs  # storages of the module's OUTPUTS
        self.grads = grads  # storages receiving the module's GRADIENTS
        self.output_grads = list(output_grads)  # storages of OUTPUT_GRADIENTS
        self.intermediates = intermediates  # id() of every intermediate Variable bound
        self.root_shape = root_shape
        names = [*module.INPUTS, *(p["argument"] for p in module.PARAMETERS.values())]
        running = set(getattr(module, "RUNNING", ()))
        self.running = {i for i, name in enumerate(names) if name in running}
        # the arguments every backward overwrites (BACKWARD_WRITES: F.vat_noise's w)
        written = set(getattr(module, "BACKWARD_WRITES", ()))
        self.written = {i for i, name in enumerate(names) if name in written}
        self.names = names
        # the arguments whose values the module's entry checks (labels, indices), and
        # their values as the latest forward() checked them: a backward() seeing other
        # values runs at once, so that it refuses them when it is called
        # (a module from before CHECKED_VALUES: None, and backward() runs at once)
        checked = getattr(module, "CHECKED_VALUES", None)
        self.checked = None if checked is None else [
            i for i, name in enumerate(names) if name in set(checked)]
        self.checked_values: list = []
        # the arguments of the parameters a training step updates (in the module's order)
        self.trainable = {p["argument"] for p in module.PARAMETERS.values() if p["need_grad"]}
        # the running statistics as the latest forward() found them (a replay reads these)
        self.running_before: dict[str, numpy.ndarray] = {}
        # dropout's masks: drawn from the binding's generator (see `draws`)
        self.draws = {"rng": None} if getattr(module, "RANDOM_DRAWS", ()) else {}
        self.draw_state = None  # the generator's state before the latest forward()
        # the all-reduces of a module summing over processes (PROCESS_GROUPS), which
        # every call passes (see `collectives`)
        self.exchange: exchange.Exchange | None = None
        self.saved = None
        self.fingerprint = ""
        # (rule, options) of the module's fused functions
        self.solver = (module.SOLVER, tuple(getattr(module, "SOLVER_OPTIONS", ())))
        # whether the runtime compiled the module (and may compile it for another solver);
        # not one the user compiled or loaded
        self.owned = False
        self._ones = numpy.ones(root_shape, numpy.float32)

    def forward(self, root: Variable, side_effects: bool = True, replay=None,
                running_before=None) -> None:
        """Run forward_saving; without `side_effects`, on copies of the leaves it updates
        (RUNNING: running statistics), so they keep their values; with `replay` (a state
        of the generator, see `draw_state`), drawing the masks that state draws, and with
        `running_before` (see `running_before`) from the statistics that forward read."""
        if self.copies:
            self._refresh()
        if side_effects:
            args = self.args
            if self.running:  # (else it stays empty)
                self.running_before = {self.names[i]: args[i].copy() for i in self.running}
        elif running_before:
            args = [running_before[name].copy() if name in running_before else a
                    for name, a in zip(self.names, self.args, strict=True)]
        else:
            args = self._without_side_effects()
        draws = self.draws
        if draws:
            if replay is not None:
                generator = numpy.random.default_rng()
                generator.bit_generator.state = replay
                draws = {"rng": generator}
            else:
                self.draw_state = draws["rng"].bit_generator.state
        *outputs, self.saved = self._run(root, "forward", self.module.forward_saving, *args,
                                         **draws, **self.collectives(
                                             exchange.FORWARD, replay=not side_effects))
        if self.checked:
            self.checked_values = [self.args[i].copy() for i in self.checked]
        for storage, value in zip(self.outputs, outputs, strict=True):
            storage.write_output(value)

    def backward(self, grad, root: Variable) -> None:
        """Accumulate into the leaves' `.g`; overwrite the `.g` of the intermediates whose
        gradient the user reads (nnabla's semantics for both)."""
        if self.copies:
            self._refresh()
        if self.saved is None:  # (a recompute: nnabla's backward() updates no statistics)
            *_, self.saved = self._run(root, "backward", self.module.forward_saving,
                                       *self._without_side_effects(), **self.draws,
                                       **self.collectives(exchange.FORWARD))
        seed = self._seed(grad, root)
        # (a number: an array given as the seed could be changed before it is read; not
        # with all-reduces, which must run now, when every process calls backward(): a
        # deferred one would run when this process first touches a leaf, out of step
        # with the others' collectives)
        if isinstance(grad, (int, float)) and self.exchange is None \
                and self._checked_unchanged() and deferred.defer(self, root, seed):
            _remember_backward(root, seed, copy=False)
            return  # (computed when its gradients are first needed: runtime.deferred)
        gradients = self._run(root, "backward", self.module.backward, self.saved, *self.args,
                              seed, **self.collectives(exchange.BACKWARD))
        for storage, value in zip(self.grads, gradients, strict=False):
            if storage is not None:  # None: a leaf the root does not depend on
                storage.accumulate_grad(value)
        self._write_output_gradients(gradients)
        _remember_backward(root, seed, copy=grad is None)

    def _checked_unchanged(self) -> bool:
        """Whether the values the entry checks are those the latest forward() checked."""
        if self.checked is None or len(self.checked_values) != len(self.checked):
            return False
        # (the bytes the latest forward() that ran to its end checked: a quick compare)
        return all(self.args[i].tobytes() == value.tobytes()
                   for i, value in zip(self.checked, self.checked_values, strict=True))

    def _refresh(self) -> None:
        """The float32 copies of the leaf arrays of other dtypes, from their values now
        (nnabla's functions read every input as float32, leaving its dtype as it is)."""
        for copy, array in self.copies:
            numpy.copyto(copy, array, casting="unsafe")

    def _without_side_effects(self) -> list:
        """The arguments, with copies of those forward_saving updates in place."""
        if not self.running:
            return self.args
        return [a.copy() if i in self.running else a for i, a in enumerate(self.args)]

    def seed_draws(self, graph) -> None:
        """The generator random draws (dropout's masks, F.rand's values, the augmentations'
        choices) come from: seeded with the `seed` of the first random function that gave
        one, else from nn.seed's sequence (reproducible either way)."""
        if not self.draws:
            return
        seeds = [dict(n.attrs).get("seed", -1) for n in graph.nodes]  # (random ones have it)
        given = [s for s in seeds if s != -1]
        seed = given[0] if given else random.prng.randint(2**31 - 1)
        self.draws["rng"] = numpy.random.default_rng(seed)

    @staticmethod
    def _run(root: Variable, method: str, function, *args, **keywords):
        """Call generated code; a value it refuses (a label out of range) is reported as
        the error of the user's call."""
        try:
            return function(*args, **keywords)
        except ValueError as error:
            name = root.name or "the variable"
            raise ValueError(f"{name}.{method}(): the graph's inputs were refused by the "
                             f"generated code: {error}") from None

    def recompute_output_gradients(self, seed) -> None:
        """The intermediates' gradients for cotangent `seed` (leaves are left alone)."""
        self._refresh()
        *_, self.saved = self.module.forward_saving(
            *self._without_side_effects(), **self.draws,
            **self.collectives(exchange.FORWARD, replay=True))
        # (on copies of the leaves the backward overwrites: reading a .g writes no .d)
        args = [a.copy() if i in self.written else a for i, a in enumerate(self.args)]
        self._write_output_gradients(self.module.backward(
            self.saved, *args, seed, **self.collectives(exchange.BACKWARD, replay=True)))

    def collectives(self, kind: str, replay: bool = False) -> dict:
        """The `all_reduce` keyword of a call running a `kind` pass (exchange.FORWARD or
        BACKWARD) of a module that sums over processes: live in the nnabla loop, which
        every process runs; `replay`ing the latest such pass in a recompute, which one
        process may run alone (see runtime.exchange). Nothing for other modules."""
        if self.exchange is None:
            return {}
        return self.exchange.replay(kind) if replay else self.exchange.live(kind)

    def _write_output_gradients(self, gradients) -> None:
        if self.output_grads:
            for storage, value in zip(self.output_grads, gradients[len(self.grads):],
                                      strict=True):
                storage.set_grad(value)

    def _seed(self, grad, root: Variable):
        if grad is None:
            seed = root._storage.grad
            return seed if seed.dtype == numpy.float32 else seed.astype(numpy.float32)
        if isinstance(grad, (int, float)) and not isinstance(grad, bool):
            return self._ones if grad == 1 else numpy.full(self.root_shape, grad, numpy.float32)
        value = numpy.asarray(grad, dtype=numpy.float32)
        try:
            return numpy.broadcast_to(value, self.root_shape)
        except ValueError:
            raise ValueError(f"backward(grad=...): a gradient of shape {value.shape} does not "
                             f"fit the variable's shape {self.root_shape}") from None


# The latest backward() calls, newest last: (the root, weakly; the cotangent it used). The
# first read of an intermediate's .g computes what the latest backward() through it gave.
_recent_backward: collections.deque = collections.deque(maxlen=8)


def _remember_backward(root: Variable, seed, copy: bool) -> None:
    """Note the cotangent `root`'s backward() used (`copy` it: it is the root's live .g)."""
    if _recent_backward:
        last_root, last_seed = _recent_backward[-1]
        if last_root() is root:
            if last_seed is seed and not copy:
                return  # the usual loop: the same root, seeded with ones, again
            _recent_backward.pop()
    _recent_backward.append((weakref.ref(root), seed.copy() if copy else seed))


def recompute_gradient(var: Variable) -> None:
    """Fill `.g` of the intermediate `var`, read for the first time, with the gradient
    the latest backward() through it computed (from the leaves' current values)."""
    deferred.settle()
    for ref, seed in reversed(_recent_backward):
        root = ref()
        if root is not None and root._compiled is not None \
                and id(var) in root._compiled.intermediates:
            binding(root).recompute_output_gradients(seed)
            return


def forward(root: Variable, side_effects: bool = True) -> None:
    deferred.settle()
    binding(root).forward(root, side_effects)
    if side_effects:
        _remember(_recent_forward, root)
        _newest_forward[:] = [root]


# The latest forward() calls' roots (weakly), newest last: the first read of an
# intermediate's .d recomputes what the latest forward() through it computed. The newest
# is also held strongly: nnabla's F.sink(y, w).forward() drops its root at once, and y.d
# and w.d must still be that pass's values (its dropout masks), not a new pass's.
_recent_forward: collections.deque = collections.deque(maxlen=8)
_newest_forward: list[Variable] = []


def _remember(recent: collections.deque, root: Variable) -> None:
    if recent and recent[-1]() is root:
        return
    recent.append(weakref.ref(root))


def recompute_value(var: Variable) -> None:
    """Fill `.d` of the intermediate `var` with what the latest forward() through it
    computed: that root's graph, now with `var` among its outputs, run again with the
    generator state and the running statistics that forward() started from (it updated
    them since), changing none."""
    deferred.settle()
    for ref in reversed(_recent_forward):
        root = ref()
        if root is not None and root._compiled is not None \
                and id(var) in root._compiled.intermediates:
            bound = root._compiled
            binding(root).forward(root, side_effects=False, replay=bound.draw_state,
                                  running_before=bound.running_before)
            return
    binding(var).forward(var, side_effects=False)


def backward(root: Variable, grad) -> None:
    deferred.settle()
    binding(root).backward(grad, root)


def fused_update(rule: str, options: tuple, storages, states, step, hyper) -> bool:
    """Run the deferred backward() together with update rule `rule` (options `options`)
    of exactly `storages` (their solver states `states`, lists of arrays; `step` the
    update number they share; `hyper` the rule's hyper-parameters by name) in one call of
    the module's ``<rule>_backward_update``, when the module has it for this rule and
    every array is the very one it updates; else False, nothing done."""
    pending = deferred.current()
    if pending is None:
        return False
    bound = pending.binding
    if bound.solver != (rule, options):
        if bound.owned:
            _adopt_solver(bound, pending.root, (rule, options))
        return False
    key = (rule, *map(id, storages))
    plan = bound.fused_plans.get(key, False)
    if plan is False:
        plan = bound.fused_plans[key] = _fused_plan(bound, rule, storages)
    if plan is None:
        return False
    function, body, checked, order, state_shapes, takes_decay = plan
    args = bound.args
    for storage, position in checked:
        if args[position] is not storage._data:  # (a value of another dtype was assigned)
            return False
        if not storage._data.flags.writeable:
            body = function  # (which refuses it, saying why)
    flat = [array for i in order for array in states[i]]
    if len(flat) != len(state_shapes):
        return False
    for array, shape in zip(flat, state_shapes, strict=True):
        if array.dtype != numpy.float32:
            return False
        if array.shape != shape or not array.flags.writeable:
            body = function
    if pending.decay is not None:  # (a weight_decay() since backward())
        if not takes_decay or "wd" in hyper:  # (a rule's own wd is its decoupled decay)
            return False
        hyper = {**hyper, "wd": pending.decay}
    extra = (step,) if step is not None else ()
    hyper = {**hyper, **bound.collectives(exchange.BACKWARD)}
    pending.take(lambda saved, args, seed: body(saved, *args, seed, *flat, *extra, **hyper))
    return True


def defer_weight_decay(storages, rate) -> bool:
    """Record solver.weight_decay(rate) of exactly `storages` on the deferred backward()
    (see runtime.deferred), so that update() can still run the fused call; False if
    there is none, it writes other gradients, or a rate is recorded already."""
    pending = deferred.current()
    if pending is None or pending.decay is not None \
            or {id(s) for s in storages} != {id(s) for s in pending.grads if s is not None}:
        return False
    pending.decay = numpy.float32(rate)
    return True


def _adopt_solver(bound: Binding, root: Variable, solver: tuple) -> None:
    """Give `bound` the module whose fused functions are `solver`'s (compiled once: the
    same graph, so the same forward and backward), for the next update() to use; none
    where the backend has no fused backward-and-update (it updates out of place)."""
    if not hasattr(bound.module, f"{bound.solver[0]}_backward_update"):
        return
    captured = capture(root, name=_module_name(root), observed=True)
    bound.module = _module_for(captured.graph, root, solver)
    bound.solver = (bound.module.SOLVER, tuple(bound.module.SOLVER_OPTIONS))
    bound.fused_plans.clear()


def _fused_plan(bound: Binding, rule: str, storages) -> tuple | None:
    """(the module's <rule>_backward_update, its unchecked body, (Storage, its argument's
    position) to check the module updates the Storage's own array, the positions in
    `storages` in the module's parameter order, the shapes of the state arrays), or None
    when the module cannot update exactly `storages` with `rule`. (It holds no array:
    that would count as a reference held outside.)

    The body, ``_<rule>_backward_update`` (the checked function in a module without one),
    is called with the saved values, arguments and seed of the forward_saving() that
    checked them (backward() was deferred, so nothing has changed them since; the class
    labels it checked are unchanged, or backward() would have run at once), and with
    state arrays and parameters whose shapes and writability `fused_update` checks itself
    (else it calls the checked function, which refuses them)."""
    module = bound.module
    function = getattr(module, f"{rule}_backward_update", None)
    if function is None or module.SOLVER != rule:
        return None
    body = getattr(module, f"_{rule}_backward_update", function)
    trainable = [s for s in bound.grads if s is not None]  # (the module's order)
    order = {id(s): i for i, s in enumerate(storages)}
    if len(trainable) != len(storages) or any(id(s) not in order for s in trainable):
        return None
    positions = {id(s): i for i, s in enumerate(bound.leaves)}
    checked = []
    for storage in trainable:
        position = positions.get(id(storage))
        if position is None or bound.names[position] not in bound.trainable:
            return None
        checked.append((storage, position))
    state_shapes = tuple(tuple(spec["shape"]) for spec in module.STATE.values())
    # (whether it applies a weight_decay() rate: a module from before them does not)
    takes_decay = "wd" in body.__code__.co_varnames[:body.__code__.co_argcount]
    return (function, body, tuple(checked), tuple(order[id(s)] for s in trainable),
            state_shapes, takes_decay)


def take_gradients(storages) -> dict | None:
    """The gradients of exactly `storages` from the deferred backward() (see
    `runtime.deferred`), for an update that reads them now, without writing their `.g`
    first; None if there is none or it writes other gradients too (it has run then)."""
    pending = deferred.current()
    if pending is None:
        return None
    if pending.decay is not None \
            or {id(s) for s in storages} != {id(s) for s in pending.grads if s is not None}:
        pending.run()  # (the update reads `.g`, as backward() and weight_decay() left it)
        return None
    return pending.take()


def binding(root: Variable) -> Binding:
    """The bound module for `root`, compiling it if the graph has not been seen."""
    bound = root._compiled
    epoch = graph_epoch()
    if bound is not None and bound.epoch == epoch:
        return bound
    captured = capture(root, name=_module_name(root), observed=True)
    _require_memory(captured.graph)
    fingerprint = captured.graph.fingerprint()
    solver = bound.solver if bound is not None and bound.owned else DEFAULT_SOLVER
    if bound is not None and bound.fingerprint == fingerprint:
        module = bound.module  # something changed elsewhere; this graph did not
    else:
        module = _module_for(captured.graph, root, solver)
    bound = bind(root, module, captured, epoch)
    bound.owned = True
    return bound


def _require_memory(graph) -> None:
    """Refuse, before compiling or running, a graph with an array this machine cannot hold."""
    producers = {node.output: node for node in graph.nodes}

    def describe(value) -> str:
        node = producers.get(value.index)
        return (f"{node.op} '{graph.label(value.index)}' at {node.location}" if node
                else f"{value.kind} '{graph.label(value.index)}'")

    for value in graph.values:
        memory.require(value.shape, value.dtype, lambda value=value: describe(value))


def bind(root: Variable, module, captured, epoch: int | None = None) -> Binding:
    """Make `module` the code that forward()/backward() of `root` run."""
    allocator.tune()  # (once: large temporaries reused, not faulted in every step)
    graph = captured.graph
    leaves = [*graph.inputs, *graph.parameters]
    names = [*module.INPUTS, *(p["argument"] for p in module.PARAMETERS.values())]
    unreached = set(getattr(module, "UNREACHED", ()))
    grads = [None if name in unreached else captured.storages[v.index]
             for v, name in zip(leaves, names, strict=True) if v.need_grad]
    output_grads = [v._storage for v in captured.grad_vars]
    if len(grads) != len(module.GRADIENTS) or len(graph.outputs) != len(module.OUTPUTS) \
            or len(output_grads) != len(getattr(module, "OUTPUT_GRADIENTS", ())):
        raise cache.GraphMismatchError(
            f"generated module {module.__file__} computes {len(module.OUTPUTS)} outputs and "
            f"{len(module.GRADIENTS)} gradients; the graph has {len(graph.outputs)} and "
            f"{len(grads)}")
    args, copies = _arguments(module, leaves, captured.storages)
    bound = Binding(module, graph_epoch() if epoch is None else epoch, args,
                    [v._storage for v in captured.output_vars], grads, graph.root.shape,
                    output_grads, captured.intermediates, copies,
                    [captured.storages[v.index] for v in leaves])
    bound.fingerprint = graph.fingerprint()
    bound.exchange = exchange.exchange_for(module, captured.communicators)
    previous = root._compiled
    if previous is not None and previous.exchange and bound.exchange:
        # (the same root recompiled: a recompute replays the passes it ran)
        bound.exchange.records = previous.exchange.records
    if previous is not None and previous.draws and bound.draws:
        # the same root recompiled (an intermediate read): its masks go on from where
        # they were
        bound.draws, bound.draw_state = previous.draws, previous.draw_state
    else:
        bound.seed_draws(graph)
    root._compiled = bound
    return bound


def _arguments(module, leaves, storages) -> tuple[list, list]:
    """The module's leaf arguments: each leaf's array, or for one of another dtype than
    the module computes in (an int label, a float64 input) a copy of that dtype, which
    the binding refreshes before every call: [array], [(copy, array)]. A leaf the module
    updates in place (running statistics, BACKWARD_WRITES) is cast to the module's dtype
    instead, as nnabla's function writing it does."""
    names = [*module.INPUTS, *(p["argument"] for p in module.PARAMETERS.values())]
    running = {*getattr(module, "RUNNING", ()), *getattr(module, "BACKWARD_WRITES", ())}
    args, copies = [], []
    for value, name in zip(leaves, names, strict=True):
        storage = storages[value.index]
        dtype = numpy.dtype(value.dtype)
        if storage.dtype != dtype and name in running:
            storage.cast(dtype)
        array = storage.data
        if array.dtype != dtype:
            memory.require(array.shape, dtype, name)
            copy = numpy.empty(array.shape, dtype)
            copies.append((copy, array))
            array = copy
        args.append(array)
    return args, copies


def load(path, loss: Variable, allow_edited: bool = False):
    """Load the generated module at `path` and run `loss`'s forward()/backward() with it.

    Raises GraphMismatchError, saying how to regenerate it, when the module was generated
    for another graph (its GRAPH_HASH differs from this graph's), and ModuleEditedError
    when its text was changed after generation, unless `allow_edited` (your edits, your
    responsibility: `check_gradient()` in the module tests them).
    """
    captured = capture(loss, name=_module_name(loss), observed=True)
    module = cache.load_module(path, captured.graph.fingerprint(), allow_edited)
    bind(loss, module, captured)
    return module


def _module_name(root: Variable) -> str:
    return identifier(user_name(root) or "graph")


def _module_for(graph, root: Variable, solver: tuple = None) -> types.ModuleType:
    """The module for `graph`, from this process's modules, the cache or the compiler;
    its fused steps are those of `solver` ((rule name, options), by default Sgd's)."""
    rule, solver_options = solver or DEFAULT_SOLVER
    fingerprint = graph.fingerprint()
    site = root._callsite.display if root._callsite else "unknown location"
    options = Options(
        graph.name, rule, graph.root.dtype,
        "compiled on first use by symcompile's runtime; delete this file to recompile",
        f"graph built at {site}", backend=current_backend(), solver_options=solver_options,
    )
    key = hashlib.sha256(
        f"{fingerprint}|{options.key()}|{compiler_fingerprint()}".encode()
    ).hexdigest()[:20]
    module = _modules.get(key)
    if module is not None:
        return module
    path = cache.cache_dir() / f"{graph.name}_{key}.py"
    # Run only an entry that authenticates (cache.cached_module); else compile and cache.
    # A long first compile shows its progress on a terminal (one line on stderr).
    with ProgressLine(sys.stderr, f"the graph built at {site}") as progress:
        module = cache.cached_module(
            path, lambda: compiler.generate(graph, options, progress)[0], fingerprint)
    _modules[key] = module
    return module


def set_backend(name: str | None) -> str | None:
    """Compile the graphs run from now on for backend `name` ("numpy" or "array_api"),
    whatever the context; None gives the choice back to the context (nnabla's
    `nn.set_default_context`). Returns the previous setting. The runtime's arrays stay
    NumPy arrays either way."""
    global _backend
    if name is not None:
        name = str(name).replace("-", "_")
        if name not in compiler.BACKEND_NAMES:
            raise ValueError(f"set_backend: unknown backend {name!r}; known: "
                             f"{', '.join(compiler.BACKEND_NAMES)}")
    previous, _backend = _backend, name
    return previous


def current_backend() -> str:
    """The backend graphs compile for now: set_backend's, else the current context's."""
    return _backend or context.backend_of(context.get_current_context())


def update_function(rule_name: str, options: tuple = ()):
    """The generated ``update(w, g, *states, [t], *hyper)`` of an update rule (cached)."""
    key = f"{rule_name}{options}"
    function = _updates.get(key)
    if function is not None:
        return function
    digest = hashlib.sha256(f"{key}|{compiler_fingerprint()}".encode()).hexdigest()[:16]
    path = cache.cache_dir() / f"update_{rule_name}_{digest}.py"
    # authenticated, as above; generated only when the cache has no valid entry
    function = cache.cached_module(path, lambda: compiler.update_source(rule_name, options)).update
    _updates[key] = function
    return function

