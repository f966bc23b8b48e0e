"""The nnabla API for a differential scenario: real nnabla or symcompile, by environment.

A scenario imports ``nn, F, PF, S, I`` from here and reports numbers with `report`;
tests/test_nnabla_differential.py runs it once per backend (SYMCOMPILE_DIFF_BACKEND) and
compares what each reported.
"""

import json
import os
import sys

import numpy as np

if os.environ.get("SYMCOMPILE_DIFF_BACKEND") == "nnabla":
    import nnabla as nn
    import nnabla.functions as F
    import nnabla.initializer as I
    import nnabla.parametric_functions as PF
    import nnabla.solvers as S
else:
    import symcompile as nn
    import symcompile.functions as F
    import symcompile.initializer as I
    import symcompile.parametric_functions as PF
    import symcompile.solvers as S

__all__ = ["F", "I", "PF", "S", "nn", "np", "report"]


def report(name: str, value) -> None:
    """One named result, as a JSON line on stdout (arrays as nested lists of floats)."""
    data = np.asarray(value, dtype=np.float64)
    json.dump({"name": name, "shape": list(data.shape), "value": data.ravel().tolist()},
              sys.stdout)
    sys.stdout.write("\n")
