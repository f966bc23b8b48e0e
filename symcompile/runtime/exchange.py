"""The `all_reduce` a bound module's calls pass, when its code sums values over processes.

Every process runs the same nnabla loop, so each calls forward() and backward() in the
same order, and the module's all-reduces meet. The runtime also recomputes on its own:
the first read of an intermediate's `.d` or `.g` runs the latest pass again, on the one
process that reads it (a script printing a value on rank 0). A collective there would
wait for ever for processes that never call it. So each pass the loop runs records what
its all-reduces received, and a recompute of that pass replays them: the same values,
with no message sent.
"""

from __future__ import annotations

import numpy

FORWARD, BACKWARD = "forward", "backward"


class Exchange:
    """The all-reduces of one binding: `live(kind)` sums over the processes (through
    `communicators`, by group) and records what each one sent and received in that pass;
    `replay(kind)` gives, for an array the latest such pass sent, what it received (or
    goes live if no pass of that kind ran yet)."""

    def __init__(self, communicators: dict) -> None:
        self.communicators = communicators
        self.records: dict[str, list | None] = {FORWARD: None, BACKWARD: None}

    def live(self, kind: str) -> dict:
        record = self.records[kind] = []

        def all_reduce(array, group):
            total = self.communicators[group].all_reduce_sum(array, group)
            record.append((group, numpy.array(array, copy=True), total.copy()))
            return total

        return {"all_reduce": all_reduce}

    def replay(self, kind: str) -> dict:
        if self.records[kind] is None:  # (no such pass ran: this one is the first)
            return self.live(kind)
        unused = list(self.records[kind])

        def all_reduce(array, group):
            # the sum recorded for this very array (a recompiled module may order its
            # all-reduces otherwise; the same local values have the same sum), else the
            # next one of its group and shape (the parameters changed since the pass: an
            # update; what that pass received, as the recompute stands for that pass)
            alike = [entry for entry in unused
                     if entry[0] == group and entry[1].shape == numpy.shape(array)]
            found = next((entry for entry in alike if numpy.array_equal(entry[1], array)),
                         alike[0] if alike else None)
            if found is None:
                raise RuntimeError(
                    f"recomputing the latest {kind} pass of a graph whose statistics are "
                    f"summed over processes (F.sync_batch_normalization), this process "
                    f"found no sum of that pass to reuse, and cannot ask the others for "
                    f"one; make the value an output of the graph (F.sink(loss, h)) so "
                    f"that the pass itself computes it")
            unused.remove(found)
            return found[2].copy()

        return {"all_reduce": all_reduce}


def exchange_for(module, communicators: dict) -> Exchange | None:
    """The Exchange for `module` when its code sums values over processes (its
    PROCESS_GROUPS), through the communicators the graph's functions were given; None
    otherwise."""
    groups = getattr(module, "PROCESS_GROUPS", ())
    if not groups:
        return None
    missing = [g for g in groups if g not in communicators]
    if missing:
        raise ValueError(
            f"generated module {module.__file__} sums values over the processes of the "
            f"groups {list(groups)}, but the graph gives no communicator for {missing}; "
            f"build it with F.sync_batch_normalization(..., comm, group) as it was compiled")
    return Exchange({g: communicators[g] for g in groups})
