"""nnabla's `nnabla.monitor` under the name nnabla scripts import.

It is defined in `symcompile.runtime.monitor`; this name is the very same module object,
so both names share one state.
"""

import sys

from symcompile.runtime import monitor

sys.modules[__name__] = monitor
