"""nnabla's `nnabla.communicators` under the name nnabla scripts import.

It is defined in `symcompile.frontend.communicators`; this name is the very same module
object, so both names share one state.
"""

import sys

from symcompile.frontend import communicators

sys.modules[__name__] = communicators
