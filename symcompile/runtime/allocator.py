"""glibc's malloc kept from handing a step's large temporaries back to the OS each step.

A generated step allocates and frees the same multi-megabyte arrays (a convolution's
columns, its gradients) every call. With glibc's defaults, arrays above the mmap
threshold are mapped and unmapped each time, and freed memory at the top of the heap is
trimmed, so the next step faults every page of them in afresh. Measured on bench/cnn.py's
LeNet step run alone (one thread): 21-22 ms with glibc's defaults, 12 ms with both
thresholds raised; the MLPs, whose temporaries are smaller, are unchanged. Array libraries
keep freed memory for reuse in their own allocators; NumPy uses malloc, so the runtime
raises the two thresholds once, when it first binds a module. The cost is that up to
`TRIM_THRESHOLD` bytes of freed memory stay with the process.

`SYMCOMPILE_MALLOC_TUNING=0` leaves glibc's settings alone; elsewhere than glibc this does
nothing. A generated module run on its own gets the same from the environment variables
``MALLOC_MMAP_THRESHOLD_=67108864 MALLOC_TRIM_THRESHOLD_=536870912``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

# mallopt's parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 64 * 2**20  # arrays larger than this are still mapped on their own
TRIM_THRESHOLD = 512 * 2**20  # freed memory kept before the heap's top is given back

_tuned: bool | None = None  # whether the thresholds are set (None: not tried yet)


def tune() -> bool:
    """Raise glibc's mmap and trim thresholds (tried once per process). Returns whether
    they are set."""
    global _tuned
    if _tuned is None:
        _tuned = _set_thresholds()
    return _tuned


def _set_thresholds() -> bool:
    if os.environ.get("SYMCOMPILE_MALLOC_TUNING", "1") == "0":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
