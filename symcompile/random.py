"""nnabla's `nnabla.random` under the name nnabla scripts import.

It is defined in `symcompile.frontend.random`; this name is the very same module object,
so both names share one state.
"""

import sys

from symcompile.frontend import random

sys.modules[__name__] = random
