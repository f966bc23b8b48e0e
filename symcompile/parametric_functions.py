"""nnabla's `nnabla.parametric_functions` under the name nnabla scripts import.

It is defined in `symcompile.frontend.parametric_functions`; this name is the very same
module object, so both names share one state.
"""

import sys

from symcompile.frontend import parametric_functions

sys.modules[__name__] = parametric_functions
