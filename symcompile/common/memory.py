"""Fail fast on arrays this machine cannot hold, with a message that names them.

NumPy allocates zeros lazily, so a (100000, 100000) array "succeeds" and the process is
killed later, somewhere else. Arrays larger than the machine's physical memory are
refused up front instead, naming the variable, its shape and the sizes involved.
"""

from __future__ import annotations

import functools
import math
import os

import numpy


@functools.cache
def physical_memory() -> int | None:
    """Bytes of RAM on this machine (None if the platform will not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def size_text(nbytes: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if nbytes < 1024 or unit == "PiB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    raise AssertionError("unreachable")


def require(shape, dtype, what, fix: str = "use a smaller shape (batch size?)") -> None:
    """Raise MemoryError if an array of `shape` and `dtype` cannot fit in this machine.

    `what` names the array: a string, or a function returning it (called only to raise).
    """
    limit = physical_memory()
    nbytes = math.prod(shape) * numpy.dtype(dtype).itemsize
    if limit is not None and nbytes > limit:
        if callable(what):
            what = what()
        raise MemoryError(
            f"{what}: an array of shape {tuple(shape)} ({numpy.dtype(dtype).name}) needs "
            f"{size_text(nbytes)}, more than this machine's {size_text(limit)} of memory; "
            f"{fix}")
