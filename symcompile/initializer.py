"""nnabla's `nnabla.initializer` under the name nnabla scripts import.

It is defined in `symcompile.frontend.initializer`; this name is the very same module object,
so both names share one state.
"""

import sys

from symcompile.frontend import initializer

sys.modules[__name__] = initializer
