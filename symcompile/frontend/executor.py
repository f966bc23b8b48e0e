"""The seam between the nnabla API and whatever runs its graphs.

`Variable.forward()`, `backward()` and `Solver.update()` only describe what to compute;
the executor the package installs at import (`symcompile.runtime`, which runs generated
modules) does it. So the front end never imports the runtime or the compiler, and a
graph can be built, inspected and captured with nothing else loaded.
"""

from __future__ import annotations

from typing import Protocol


class Executor(Protocol):
    def forward(self, root, side_effects: bool = True) -> None:
        """Compute `root` and the intermediates the user reads; without `side_effects`,
        leave the leaves a forward pass updates (running statistics) as they are."""

    def backward(self, root, grad) -> None:
        """Accumulate d root / d leaf, seeded with `grad`, into the leaves' `.g`."""

    def recompute_value(self, var) -> None:
        """Fill `.d` of intermediate `var`, read for the first time, with what the latest
        forward() through it computed (the same random masks), changing no leaf."""

    def recompute_gradient(self, var) -> None:
        """Bring the `.g` of intermediate `var`, read for the first time, up to date."""

    def fused_update(self, rule: str, options: tuple, storages, states, step, hyper) -> bool:
        """Apply update rule `rule` to exactly `storages` together with the backward()
        the executor has not run yet, in one call, if it can (else False, nothing done)."""

    def defer_weight_decay(self, storages, rate) -> bool:
        """Record solver.weight_decay(rate) (g += rate*w) of exactly `storages` on the
        backward() the executor has not run yet, to be applied when it runs (inside
        fused_update's call, or as it writes `.g`); False, nothing done, if it cannot."""

    def take_gradients(self, storages):
        """The gradients of exactly `storages`, by Storage, from a backward() the executor
        has not run yet (it runs it now, and writes `.g` only if read later); or None,
        their `.g` being up to date."""

    def update_function(self, rule: str, options: tuple):
        """The ``update(w, g, *states, [t], *hyper)`` kernel of an update rule."""


_installed: Executor | None = None


def install(executor: Executor) -> None:
    global _installed
    _installed = executor


def current() -> Executor:
    if _installed is None:
        raise RuntimeError("no executor is installed to run symcompile graphs: import "
                           "symcompile (the package installs its runtime) before running one")
    return _installed
