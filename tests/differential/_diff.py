"""Show where symcompile and real nnabla differ on one scenario, row by row.

    SYMCOMPILE_NNABLA_PYTHON=/path/to/python python tests/differential/_diff.py dtypes

prints every reported name with nnabla's value and symcompile's, marking the rows that
differ (a scenario such as dtypes.py puts each result's dtype in its name).
"""

import os
import sys

import numpy as np
import run


def main(name: str) -> int:
    scenario = run.HERE / f"{name}.py"
    theirs = run.results(scenario, "nnabla", os.environ["SYMCOMPILE_NNABLA_PYTHON"])
    mine = run.results(scenario, "symcompile")
    width = max(len(r["name"]) for r in theirs + mine)
    differ = 0
    for k in range(max(len(theirs), len(mine))):
        a = theirs[k] if k < len(theirs) else {"name": "-", "value": []}
        b = mine[k] if k < len(mine) else {"name": "-", "value": []}
        same = a["name"] == b["name"] and np.allclose(a["value"], b["value"], rtol=2e-6,
                                                      atol=1e-7) \
            and len(a["value"]) == len(b["value"])
        differ += not same
        print(f"{' ' if same else '*'} {a['name']:<{width}} {a['value'][:6]}")
        if not same:
            print(f"  {b['name']:<{width}} {b['value'][:6]}   <- symcompile")
    print(f"{differ} of {max(len(theirs), len(mine))} rows differ")
    return 1 if differ else 0


if __name__ == "__main__":
    if len(sys.argv) != 2 or not os.environ.get("SYMCOMPILE_NNABLA_PYTHON"):
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
