"""nnabla's `nnabla.solvers` under the name nnabla scripts import.

It is defined in `symcompile.frontend.solvers`; this name is the very same module object,
so both names share one state.
"""

import sys

from symcompile.frontend import solvers

sys.modules[__name__] = solvers
