"""nnabla's `nnabla.parameter` under the name nnabla scripts import.

It is defined in `symcompile.frontend.parameter`; this name is the very same module object,
so both names share one state.
"""

import sys

from symcompile.frontend import parameter

sys.modules[__name__] = parameter
