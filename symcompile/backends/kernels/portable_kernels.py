"""Kernels every backend shares: they touch no array, only their arguments."""


def refuse_step(function, step):
    """Raise ValueError: update counts start at 1 (bias corrections divide by 1 - beta**step)."""
    raise ValueError(f"{function}(): step is the number of this update, counting from 1 for "
                     f"the first (as nnabla's solvers count), got {step!r}")
