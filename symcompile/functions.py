"""nnabla's `nnabla.functions` under the name nnabla scripts import.

It is defined in `symcompile.frontend.functions`; this name is the very same module object,
so both names share one state.
"""

import sys

from symcompile.frontend import functions

sys.modules[__name__] = functions
