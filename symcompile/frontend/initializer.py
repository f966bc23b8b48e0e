"""`symcompile.initializer` (I): nnabla's parameter initializers, same names and draws.

Each initializer is a callable `init(shape)` returning an array (float32, as nnabla's,
but UniformIntInitializer's int64 draws, which a parameter keeps), drawing from `rng`
(``nn.random.prng`` when None, as in nnabla; `nn.seed` reseeds it). `describe` turns one into the
plain description the generated module's `init_parameters` re-creates.
"""

from __future__ import annotations

import numpy as np

from symcompile.frontend import random


class BaseInitializer:
    """Base class: a callable that returns an array of the requested shape."""

    def __call__(self, shape):
        raise NotImplementedError()


class NormalInitializer(BaseInitializer):
    """Draws from N(0, sigma^2)."""

    def __init__(self, sigma=1.0, rng=None):
        self.rng = random.prng if rng is None else rng
        self.sigma = sigma

    def __repr__(self):
        return f"{type(self).__name__}({self.sigma})"

    def __call__(self, shape):
        return np.float32(self.rng.randn(*shape) * self.sigma)


class UniformInitializer(BaseInitializer):
    """Draws from U(lim[0], lim[1])."""

    def __init__(self, lim=(-1, 1), rng=None):
        self.rng = random.prng if rng is None else rng
        self.lim = lim

    def __repr__(self):
        return f"{type(self).__name__}({self.lim!r})"

    def __call__(self, shape):
        return np.float32(self.rng.uniform(self.lim[0], self.lim[1], size=shape))


class UniformIntInitializer(BaseInitializer):
    """Draws integers from [lim[0], lim[1])."""

    def __init__(self, lim=(0, 10), rng=None):
        self.rng = random.prng if rng is None else rng
        self.lim = lim

    def __repr__(self):
        return f"{type(self).__name__}({self.lim!r})"

    def __call__(self, shape):
        return self.rng.randint(self.lim[0], self.lim[1], size=shape)


class ConstantInitializer(BaseInitializer):
    """Fills with `value`."""

    def __init__(self, value=0):
        self.value = value

    def __repr__(self):
        return f"{type(self).__name__}({self.value})"

    def __call__(self, shape):
        return np.float32(np.ones(shape) * self.value)


class JoinedInitializer(BaseInitializer):
    """Values drawn piece by piece along the last axis, each `(initializer, width)` of
    `parts` in turn, when the layer is built (nnabla's recurrent layers draw their
    weights so: the input's columns, then the state's). It returns those values, and
    `describe` gives the pieces, from which a generated module draws fresh ones alike."""

    def __init__(self, parts, lead: tuple):
        self.parts = tuple(parts)
        self.values = np.concatenate([init(tuple(lead) + (width,)) for init, width in
                                      self.parts], axis=-1)

    def __repr__(self):
        return f"{type(self).__name__}({list(self.parts)!r})"

    def __call__(self, shape):
        if tuple(shape) != self.values.shape:
            raise ValueError(f"{self!r}: drawn for the shape {self.values.shape}, asked for "
                             f"{tuple(shape)}")
        return self.values


def calc_normal_std_he_forward(inmaps, outmaps, kernel=(1, 1)):
    """He et al.'s standard deviation, sqrt(2 / (N K))."""
    return np.sqrt(2.0 / (np.prod(kernel) * inmaps))


def calc_normal_std_he_backward(inmaps, outmaps, kernel=(1, 1)):
    """He et al.'s standard deviation for the backward case, sqrt(2 / (M K))."""
    return np.sqrt(2.0 / (np.prod(kernel) * outmaps))


def calc_normal_std_glorot(inmaps, outmaps, kernel=(1, 1)):
    """Glorot et al.'s standard deviation, sqrt(2 / (K (N + M))), K the kernel's size (as
    nnabla computes it since v1.3)."""
    return np.sqrt(2.0 / (np.prod(kernel) * (inmaps + outmaps)))


def calc_uniform_lim_glorot(inmaps, outmaps, kernel=(1, 1)):
    """Glorot et al.'s uniform bounds, -/+ sqrt(6 / (K (N + M))), K the kernel's size (as
    nnabla computes it since v1.3)."""
    d = np.sqrt(6.0 / (np.prod(kernel) * (inmaps + outmaps)))
    return -d, d


def describe(initializer) -> tuple:
    """A plain, hashable description of how a parameter was initialised.

    ("constant", v), ("uniform", low, high), ("normal", sigma), ("joined", (part,
    width), ...) for pieces along the last axis, ("array",) for an array given directly,
    or ("custom", name) for any other callable.
    """
    if initializer is None:
        return ("constant", 0.0)
    if isinstance(initializer, ConstantInitializer):
        return ("constant", float(initializer.value))
    if isinstance(initializer, UniformInitializer):
        return ("uniform", float(initializer.lim[0]), float(initializer.lim[1]))
    if isinstance(initializer, NormalInitializer):
        return ("normal", float(initializer.sigma))
    if isinstance(initializer, JoinedInitializer):
        return ("joined", *((describe(part), int(width)) for part, width in initializer.parts))
    if isinstance(initializer, np.ndarray):
        return ("array",)
    return ("custom", type(initializer).__name__)
