"""nnabla's `nnabla.variable` under the name nnabla scripts import.

It is defined in `symcompile.frontend.variable`; this name is the very same module object,
so both names share one state.
"""

import sys

from symcompile.frontend import variable

sys.modules[__name__] = variable
