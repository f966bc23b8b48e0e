"""Print, as one JSON object, the signature of each function named on the command line
(of nnabla.functions or symcompile.functions, by SYMCOMPILE_DIFF_BACKEND; None where the
module has no such function). run.py --record stores nnabla's."""

import inspect
import json
import sys

from _api import F

signatures = {name: str(inspect.signature(getattr(F, name))) if hasattr(F, name) else None
              for name in sys.argv[1:]}
json.dump(signatures, sys.stdout, indent=1, sort_keys=True)
sys.stdout.write("\n")
