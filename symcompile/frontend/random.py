"""`nn.random.prng`: the generator initializers draw from when given no `rng`.

As in nnabla, it is a NumPy RandomState seeded with 313, and `nn.seed(value)` replaces
it, so parameter initialisation is reproducible without touching NumPy's global state.
"""

from __future__ import annotations

import numpy

prng = numpy.random.RandomState(313)


def seed(value: int) -> None:
    """Reseed `prng` (initializers created afterwards draw from the new sequence)."""
    global prng
    prng = numpy.random.RandomState(value)
