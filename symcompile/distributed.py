"""`symcompile.distributed`: data-parallel training of a generated module under mpirun.

It is defined in `symcompile.tools.distributed`; this name is the very same module object.
"""

import sys

from symcompile.tools import distributed

sys.modules[__name__] = distributed
