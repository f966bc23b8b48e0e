"""nnabla's `nnabla.ext_utils` (get_extension_context, list_extensions,
import_extension_module) under the name nnabla scripts import.

It is defined in `symcompile.frontend.context`; this name is the very same module object.
"""

import sys

from symcompile.frontend import context

sys.modules[__name__] = context
