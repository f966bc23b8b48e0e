"""runtime.allocator: glibc's thresholds raised once by the runtime, unless opted out."""

import os
import platform
import subprocess
import sys

import pytest

PROBE = ("import ctypes, ctypes.util\n"
         "from symcompile.runtime import allocator\n"
         "print(allocator.tune(), allocator.tune())\n")


def _run(**env):
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120, check=True)
    return done.stdout.split()


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="glibc's malloc only")
def test_the_thresholds_are_set_once_on_glibc():
    assert _run() == ["True", "True"]


def test_symcompile_malloc_tuning_0_leaves_malloc_alone():
    assert _run(SYMCOMPILE_MALLOC_TUNING="0") == ["False", "False"]
