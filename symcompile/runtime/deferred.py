"""backward() computed when its gradients are first needed, so that update() can use them
without a copy into `.g` (and, with the module's fused backward-update, in the same pass).

nnabla's loop is ``forward(); zero_grad(); backward(); update()``. Run literally, the
gradients are computed, copied into every parameter's `.g`, and read again by a separate
update per parameter. Here `backward()` of a graph whose leaves nobody else can reach (no
array or view of theirs held outside the Variables, checked by reference counts) only
records what it would compute, a `DeferredBackward` hung on every leaf's Storage
(`Storage.pending`). Whatever touches one of those Storages first settles it:

- `solver.update()` over exactly the deferred gradients takes them (`take`) and updates
  from them directly; their `.g` are then written only if someone reads them
  (`ComputedGradients`), which the next `zero_grad()` makes unnecessary;
- anything else (reading or writing `.d` or `.g` of a leaf, `zero_grad()`, another
  forward or backward, a solver over other parameters) runs the deferred backward as
  backward() would have, and writes `.g` before it goes on.

Values cannot change under a deferred backward: every way to a leaf's arrays goes through
its Storage, which settles first, or through an array someone held before backward(),
which prevents the deferral. So the results are those of the eager order, bit for bit.
"""

from __future__ import annotations

import sys

import numpy

from symcompile.frontend.variable import Storage
from symcompile.runtime.exchange import BACKWARD

_current: DeferredBackward | None = None  # the one deferred backward(), if any
_FLOAT = numpy.dtype(numpy.float32)


class DeferredBackward:
    """A binding's backward() with seed `seed`, not run yet: `grads` are the Storages it
    writes (each zeroed before, so it assigns), `leaves` every Storage it reads."""

    def __init__(self, binding, root, seed, grads: list[Storage], leaves: list[Storage]):
        self.binding, self.root, self.seed = binding, root, seed
        self.backward = binding.module.backward  # (of the module whose forward saved)
        self.grads, self.leaves = grads, leaves
        # solver.weight_decay(rate) called since, as the float32 rate: g += rate*w once
        # the gradients are computed, as that call would have done to `.g`
        self.decay: numpy.float32 | None = None

    def touch(self, storage: Storage, field: str) -> None:
        """Something is about to read or write `storage`: compute first (see module doc)."""
        self.run()

    def _detach(self) -> None:
        global _current
        for storage in self.leaves:
            storage.pending = None
        if _current is self:
            _current = None

    def _gradients(self, call=None) -> tuple:
        """backward()'s gradients, from `call(saved, args, seed)` if given (a function
        computing them as backward() does, and more)."""
        self._detach()
        bound = self.binding
        if call is None:
            return bound._run(self.root, "backward", self.backward, bound.saved,
                              *bound.args, self.seed, **bound.collectives(BACKWARD))
        return bound._run(self.root, "backward", call, bound.saved, bound.args, self.seed)

    def run(self) -> None:
        """What backward() would have done: write each gradient into its `.g`."""
        self._write(self._gradients())

    def _write(self, gradients) -> None:
        for storage, value in zip(self.grads, gradients, strict=False):
            if storage is not None:
                storage.set_grad(value)
        if self.decay is not None:  # (Solver.weight_decay's own statement)
            for storage in self.grads:
                if storage is not None:
                    grad = storage.grad
                    grad += self.decay * storage.data

    def take(self, call=None) -> dict[Storage, numpy.ndarray]:
        """The gradients, by Storage, for an update that reads them at once (or that
        `call` makes, see `_gradients`); each `.g` is written only if read later (or
        dropped by zero_grad)."""
        try:
            gradients = self._gradients(call)
        except Exception:
            if call is not None:  # (refused at its entry: `.g` as backward() would write it)
                self._write(self._gradients())
            raise
        later = ComputedGradients({})
        values = later.values
        for storage, value in zip(self.grads, gradients, strict=False):
            if storage is not None:
                values[storage] = value
                storage.pending = later
        return values


class ComputedGradients:
    """Gradients computed and used by an update but not yet written into their `.g`:
    written when read, dropped by zero_grad()."""

    def __init__(self, values: dict[Storage, numpy.ndarray]) -> None:
        self.values = values

    def touch(self, storage: Storage, field: str) -> None:
        if field == "data":
            return  # (the values were read by the gradient's computation already)
        value = self.values.pop(storage)
        storage.pending = None
        if field != "zero":
            storage.set_grad(value)


def current() -> DeferredBackward | None:
    return _current


def settle() -> None:
    """Run the deferred backward(), if any: before anything else runs generated code."""
    if _current is not None:
        _current.run()


def defer(binding, root, seed) -> bool:
    """Defer `binding`'s backward() (see the module doc) if nobody can see the difference:
    every gradient it writes was zeroed and no array of a leaf is reachable but through
    its Variable. Returns whether it did."""
    global _current
    plan = binding.defer_plan
    if plan is None:
        plan = binding.defer_plan = _plan(binding)
    if not plan or _current is not None or binding.saved is None:
        return False
    written, static_refs = plan
    for storage in written:
        if storage.grad_dtype != _FLOAT or not (storage._grad is None or storage.grad_zeroing):
            return False
    leaves = binding.leaves
    for storage in leaves:
        if storage.pending is not None:
            return False
    held = _with_saved(static_refs, binding.saved)
    for storage in leaves:
        if _reachable(storage, held, _OWN):
            return False
    deferred = DeferredBackward(binding, root, seed, binding.grads, leaves)
    for storage in leaves:
        storage.pending = deferred
    for storage in written:
        storage.grad_zeroing = False  # (written, as far as solvers and NdArray.zeroing ask)
    _current = deferred
    return True


def _plan(binding) -> tuple | bool:
    """What `defer` needs of `binding` that does not change between calls: the gradients
    it writes and how many references the runtime itself holds to each leaf array (the
    binding's arguments and copies); False if it can never defer (intermediates' gradients
    read, a gradient written twice, a leaf seen through another's arrays)."""
    written = [s for s in binding.grads if s is not None]
    if binding.output_grads or len({id(s) for s in written}) != len(written) \
            or any(type(s) is not Storage for s in (*written, *binding.leaves)):
        return False
    refs: dict[int, int] = {}
    for array in (*binding.args, *(source for _, source in binding.copies)):
        refs[id(array)] = refs.get(id(array), 0) + 1
    return written, refs


def _with_saved(refs: dict[int, int], saved) -> dict[int, int]:
    """`refs` plus the references of the saved values to the arrays they are or view (a
    function of its own: a loop variable left in the caller's frame would count too)."""
    held = dict(refs)
    for value in saved:
        if isinstance(value, numpy.ndarray):
            key = id(value if value.base is None else value.base)
            held[key] = held.get(key, 0) + 1
    return held


def _reachable(storage: Storage, held: dict[int, int], own: int) -> bool:
    """Whether an array (or view) of `storage` may be held outside it, i.e. someone could
    change or read it without the Storage knowing: for its values and for its gradient,
    whether the array has references beyond those known (`own`, the Storage's own as the
    interpreter counts them here; the cached view's reference to its base; what the
    runtime holds, `held`), or is itself a view of another array (whose references are
    not counted), or its cached view for the user (`_data_view`, `_grad_view`) has
    references beyond the Storage's. More than that (a slice of `.d` kept, `.g` kept) and
    it may be read or written unseen. (One function, no calls: `_own_references` measures
    `own` through it.)"""
    array = storage._data
    if array is not None:
        if array.base is not None:
            return True
        view = storage._data_view
        if view is None:
            if _references(array) - held.get(id(array), 0) > own:
                return True
        elif _references(array) - held.get(id(array), 0) - 1 > own \
                or _references(view) > own:
            return True
    array = storage._grad
    if array is not None:
        if array.base is not None:
            return True
        view = storage._grad_view
        if view is None:
            if _references(array) - held.get(id(array), 0) > own:
                return True
        elif _references(array) - held.get(id(array), 0) - 1 > own \
                or _references(view) > own:
            return True
    return False


_references = sys.getrefcount


def _own_references() -> int:
    """How many references `_reachable` sees to an array only a Storage holds: measured
    through `_reachable` itself on a Storage holding one (the smallest count it accepts),
    so that the interpreter's own references (locals, arguments, which an interpreter may
    count or not) cancel out."""
    storage = Storage((1,))
    storage._data = numpy.zeros(1)
    own = 0
    while _reachable(storage, {}, own):
        own += 1
    return own


_OWN = _own_references()
