"""Data-parallel training of a generated module under ``mpirun``.

A generated module is a pure function from parameters and a batch to gradients, which
makes it the natural unit of data parallelism. Every rank runs this with its own shard
of the data::

    import symcompile.distributed as D
    from generated import digits_mlp as m

    result = D.train(m, my_batches, steps=1000, hyper={"lr": 0.5})

and each step is: the module's ``gradient`` on this rank's batch; one all-reduce of all
gradients (and the loss) packed in one contiguous buffer, divided by the number of
ranks; then the update rule the module was compiled for (``SOLVER``, ``SOLVER_OPTIONS``:
the same generated update kernel ``solver.update()`` runs), with the module's own
hyper-parameter defaults, applied identically on every rank. Because every rank applies
the same update to the same bits, the parameters stay bit-identical; `train` checks it
(and that every rank runs the same module) instead of trusting it: it broadcasts rank 0's
initial parameters, compares checksums of the parameters every `check_every` steps and
at the end, and raises naming the ranks that differ.
"""

from __future__ import annotations

import inspect
import zlib
from dataclasses import dataclass, field

import numpy

from symcompile.frontend import communicators
from symcompile.ops.update_rules import RULES, state_names
from symcompile.runtime import execution

__all__ = ["RanksDisagree", "TrainResult", "train"]


class RanksDisagree(RuntimeError):
    """The ranks do not hold the same module or the same parameters."""


@dataclass
class TrainResult:
    """What `train` returns: parameters (by argument name, views of one buffer) and
    solver state after `step` updates; `losses` the loss of each step, averaged over the
    ranks (the loss of the global batch)."""

    params: dict[str, numpy.ndarray]
    state: dict[str, numpy.ndarray]
    step: int
    losses: list[float] = field(default_factory=list)


class FlatArrays:
    """Named arrays that are views of one contiguous buffer, so that a collective on all
    of them is one message on memory MPI reads in place (no packing, no unpacking)."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], dtype, extra: int = 0) -> None:
        sizes = {name: int(numpy.prod(shape, dtype=numpy.int64)) for name, shape in
                 shapes.items()}
        self.flat = numpy.zeros(sum(sizes.values()) + extra, dtype)
        self.views: dict[str, numpy.ndarray] = {}
        offset = 0
        for name, shape in shapes.items():
            self.views[name] = self.flat[offset:offset + sizes[name]].reshape(shape)
            offset += sizes[name]
        self.extra = self.flat[offset:]

    def checksum(self, names=None) -> int:
        """CRC-32 of the arrays `names` (default: all), in their order."""
        if names is None:
            return zlib.crc32(self.flat.view(numpy.uint8))
        value = 0
        for name in names:
            value = zlib.crc32(numpy.ascontiguousarray(self.views[name]).view(numpy.uint8),
                               value)
        return value


class SolverStep:
    """The update rule a module was compiled for, applied to given gradients in place:
    its generated ``update(w, g, *states, [t], *hyper)`` (the kernel `solver.update()`
    runs), with the hyper-parameter defaults of the module's own ``<solver>_step``."""

    def __init__(self, module, hyper: dict | None) -> None:
        rule_name = getattr(module, "SOLVER", None)
        if rule_name is None or rule_name not in RULES:
            raise ValueError(f"train: module {module.__name__} was compiled without a solver "
                             f"(SOLVER={rule_name!r}); compile it with one, e.g. "
                             f"symcompile.compile(loss, solver=S.Sgd(lr=0.1))")
        self.rule = RULES[rule_name]
        options = tuple(module.SOLVER_OPTIONS)
        self.kernel = execution.update_function(rule_name, options)
        defaults = {name: p.default for name, p in
                    inspect.signature(getattr(module, f"{rule_name}_step")).parameters.items()
                    if p.default is not inspect.Parameter.empty}
        unknown = sorted(set(hyper or {}) - set(self.rule.hyper_names))
        if unknown:
            raise ValueError(f"train: {unknown} are not hyper-parameters of {rule_name}; its "
                             f"hyper-parameters are {list(self.rule.hyper_names)}")
        chosen = {**defaults, **(hyper or {})}
        self.hyper = tuple(chosen[name] for name in self.rule.hyper_names)
        names = state_names(self.rule, dict(options))
        by_parameter = {(spec["parameter"], spec["state"]): argument
                        for argument, spec in module.STATE.items()}
        self.states = {spec["argument"]: [by_parameter[(graph_name, n)] for n in names]
                       for graph_name, spec in module.PARAMETERS.items()
                       if spec["argument"] in module.GRADIENTS}

    def __call__(self, params, grads, state, t: int) -> None:
        for argument, g in grads.items():
            states = [state[name] for name in self.states[argument]]
            if self.rule.uses_t:
                self.kernel(params[argument], g, *states, t, *self.hyper)
            else:
                self.kernel(params[argument], g, *states, *self.hyper)


def _inputs(module, batch, step: int) -> dict:
    """This rank's batch as the module's input arguments (a dict, or a tuple in INPUTS
    order)."""
    names = list(module.INPUTS)
    if isinstance(batch, dict):
        missing = sorted(set(names) - set(batch))
        if missing:
            raise ValueError(f"train: batch {step} has no {missing}; the module's inputs are "
                             f"{names}")
        return {name: batch[name] for name in names}
    batch = tuple(batch)
    if len(batch) != len(names):
        raise ValueError(f"train: batch {step} holds {len(batch)} arrays; the module takes "
                         f"{len(names)} inputs, {names}, in this order (or pass a dict)")
    return dict(zip(names, batch, strict=True))


def _same_everywhere(transport, value, what: str) -> None:
    values = transport.allgather_object(value, f"train's check of {what}")
    if any(v != values[0] for v in values):
        described = ", ".join(f"rank {r}: {v}" for r, v in enumerate(values))
        raise RanksDisagree(f"train: the ranks disagree on {what} ({described}); every rank "
                            f"must run the same module file with the same arguments")


def train(module, batches, *, steps: int, params: dict | None = None,
          state: dict | None = None, comm=None, hyper: dict | None = None,
          check_every: int = 100, checkpoint: str | None = None,
          checkpoint_every: int = 0) -> TrainResult:
    """Train `module` for `steps` steps, data-parallel over the ranks of `comm`.

    `batches` yields this rank's batches (dicts by input argument, or tuples in INPUTS
    order); `params` the starting parameters (default: `init_parameters(seed=0)`; rank 0's
    are broadcast either way), `state` the solver state (default `init_state()`), `comm` a
    `symcompile.communicators` communicator (default: one, initialised here: MPI's world,
    or size 1 without mpi4py). `hyper` overrides the module's hyper-parameter defaults,
    e.g. ``{"lr": 0.1}``. With `checkpoint`, rank 0 writes the module's checkpoint there
    (atomically) every `checkpoint_every` steps and at the end.
    """
    if comm is None:
        comm = communicators.MultiProcessDataParalellCommunicator(None)
        comm.init()
    transport = comm.transport
    if check_every < 1:
        raise ValueError(f"train: check_every={check_every!r}; give a number of steps >= 1")
    _same_everywhere(transport, (module.GRAPH_HASH, module.SOURCE_HASH, int(steps)),
                     "(GRAPH_HASH, SOURCE_HASH, steps)")
    step_rule = SolverStep(module, hyper)
    dtype = numpy.dtype(module.DTYPE)
    specs = {spec["argument"]: spec for spec in module.PARAMETERS.values()}
    weights = FlatArrays({name: tuple(spec["shape"]) for name, spec in specs.items()}, dtype)
    start = module.init_parameters(seed=0) if params is None else params
    for name, view in weights.views.items():
        view[...] = start[name]
    transport.bcast(weights.flat, 0, "train's broadcast of rank 0's parameters")
    # Running statistics (batch normalization's, RUNNING) are each rank's own, from its own
    # batches, as in nnabla's data-parallel scripts: the ranks agree on the rest.
    running = set(getattr(module, "RUNNING", ()))
    agreed = [name for name in weights.views if name not in running]
    grads = FlatArrays({name: tuple(specs[name]["shape"]) for name in module.GRADIENTS},
                       dtype, extra=1)  # the last element carries the loss
    if state is None:  # (stateless rules, Sgd, have no init_state)
        state = module.init_state() if hasattr(module, "init_state") else {}
    # a module summing values over processes (F.sync_batch_normalization's statistics)
    # does so through `comm`, by group
    collectives = {"all_reduce": comm.all_reduce_sum} \
        if getattr(module, "PROCESS_GROUPS", ()) else {}
    losses = []
    iterator = iter(batches)
    for t in range(1, steps + 1):
        try:
            batch = next(iterator)
        except StopIteration:
            raise ValueError(f"train: the batches ran out after {t - 1} of {steps} steps; "
                             f"give an endless iterator or fewer steps") from None
        outputs = module.gradient(**_inputs(module, batch, t), **weights.views,
                                  **collectives)
        grads.extra[0] = numpy.mean(outputs[0])
        for view, g in zip(grads.views.values(), outputs[len(module.OUTPUTS):], strict=True):
            view[...] = g
        transport.allreduce(grads.flat, f"train's all_reduce of step {t}")
        numpy.divide(grads.flat, transport.size, out=grads.flat)
        losses.append(float(grads.extra[0]))
        step_rule(weights.views, grads.views, state, t)
        if t % check_every == 0 or t == steps:
            _same_everywhere(transport, weights.checksum(agreed),
                             f"the parameters' CRC-32 after step {t}")
        if checkpoint and transport.rank == 0 and (
                t == steps or (checkpoint_every and t % checkpoint_every == 0)):
            module.save_checkpoint(checkpoint, weights.views, state, t)
    return TrainResult(weights.views, state, steps, losses)
