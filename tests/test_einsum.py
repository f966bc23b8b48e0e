"""F.einsum: Einstein summation as matrix products.

- values against numpy.einsum and gradients to every input against central finite
  differences (gradcheck.check_function, float64), for products, contractions, batch
  labels, outer products, diagonals, sums, transposes, ``...`` and implicit outputs;
- two operands sharing a summed label compile to one matrix product;
- nnabla 1.39's numbers where it is installed; bad equations refused at graph-build time
  with the equation and the shapes named.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from gradcheck import check_function
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.functions as F

CASES = [
    ("ij,jk->ik", (2, 3), (3, 4)),
    ("ij,jk", (2, 3), (3, 4)),  # implicit output: ik
    ("ij,jk->ki", (2, 3), (3, 4)),
    ("bij,bjk->bik", (2, 2, 3), (2, 3, 4)),
    ("bhqd,bhkd->bhqk", (2, 2, 3, 4), (2, 2, 5, 4)),  # attention scores
    ("...ij,...jk->...ik", (5, 2, 3), (5, 3, 4)),
    ("...i,i", (2, 3), (3,)),
    ("i,i->", (3,), (3,)),
    ("i,j->ij", (3,), (2,)),
    ("ij,kl->ijkl", (2, 3), (1, 2)),
    ("ij,i->j", (2, 3), (2,)),
    ("ab,bc,cd->ad", (2, 3), (3, 4), (4, 2)),
    ("ij,ij,ij->i", (2, 3), (2, 3), (2, 3)),
    ("ii->i", (3, 3)),
    ("ii", (3, 3)),  # the trace
    ("iij->ji", (2, 2, 3)),
    ("ij->", (2, 3)),
    ("ijk->ik", (2, 3, 4)),
    ("ij->ji", (2, 3)),
    (" ij , jk -> ik ", (2, 3), (3, 4)),
]
IDS = [c[0].replace(" ", "_") or "empty" for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_values_and_gradients(case, tmp_path, rng):
    equation, *shapes = case
    arrays = [np.random.default_rng(i).normal(size=s) for i, s in enumerate(shapes)]
    check_function(lambda *v: F.einsum(*v, equation=equation),
                   lambda *a: np.einsum(equation.replace(" ", ""), *a), arrays, tmp_path, rng)


def test_array_api_backend_gives_the_same(tmp_path):
    arrays = [np.random.default_rng(i).normal(size=s).astype(np.float32)
              for i, s in enumerate([(2, 3, 4), (2, 4, 5)])]
    outputs = []
    for backend in ("numpy", "array_api"):
        xs = [nn.Variable.from_numpy_array(a, need_grad=True) for a in arrays]
        loss = F.sum(F.einsum(*xs, equation="bij,bjk->bik") ** 2)
        result = nn.compile(loss, name=f"einsum_{backend}", output_dir=tmp_path,
                            backend=backend)
        outputs.append(result.module.gradient(*[x.d for x in xs]))
    for got, expected in zip(*outputs, strict=True):
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6)


def test_a_contraction_is_one_matrix_product(tmp_path):
    q, k = nn.Variable((2, 3, 4)), nn.Variable((2, 5, 4))
    q.name, k.name = "q", "k"
    source = nn.compile(F.sum(F.einsum(q, k, equation="bqd,bkd->bqk")), name="scores",
                        output_dir=tmp_path).source
    forward = source[source.index("def forward"):source.index("def gradient")]
    code = [line for line in forward.splitlines() if not line.strip().startswith("#")]
    assert sum(line.count(" @ ") for line in code) == 1, forward


@pytest.mark.parametrize("call,error,message", [
    (lambda a, b: F.einsum(a, b, equation="ij,jk->ik,"), ValueError,
     r"equation 'ij,jk->ik,' for inputs of shapes \[\(2, 3\), \(3, 4\)\]: the output after "
     r"'->' is one term"),
    (lambda a, b: F.einsum(a, b, equation="ij,jk->i1"), ValueError,
     r"an equation is letters, ',', '\.\.\.' and '->' only"),
    (lambda a, b: F.einsum(a, b, equation="ij->ij"), ValueError,
     r"1 operands in the equation, 2 inputs given"),
    (lambda a, b: F.einsum(a, a, equation="ij,ij->ij"), None, None),
    (lambda a, b: F.einsum(a, a, equation="ij,jk->ik"), ValueError,
     r"label 'j' has lengths 3 and 2; it must have one length in every input"),
    (lambda a, b: F.einsum(a, b, equation="ij,jk->iq"), ValueError,
     r"each output label must appear once, and in an input \('q'\)"),
    (lambda a, b: F.einsum(a, b, equation="ij,jk->ii"), ValueError, r"a repeated label"),
    (lambda a, b: F.einsum(a, b, equation="ijk,jk->ik"), ValueError,
     r"'ijk' names 3 axes of an input with 2"),
    (lambda a, b: F.einsum(a, b, equation="i..j,jk"), ValueError, r"'\.\.\.' may appear once"),
    (lambda a, b: F.einsum(a, b, equation="ij->jk->k"), ValueError, r"'->' may appear once"),
    (lambda a, b: F.einsum(a, b, equation=3), TypeError, r"equation must be a str"),
    (lambda a, b: F.einsum(a, b, eq="ij,jk"), TypeError, r"unexpected keyword arguments"),
])
def test_bad_equations(call, error, message):
    a, b = nn.Variable((2, 3)), nn.Variable((3, 4))
    if error is None:
        assert call(a, b).shape == (2, 3)
        return
    with pytest.raises(error, match=message):
        call(a, b)


NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")

# Run as written by symcompile here and by nnabla 1.39, for `equation` and `arrays`.
SCENARIO = """
xs = [nn.Variable.from_numpy_array(np.array(a, np.float32), need_grad=True) for a in arrays]
y = F.einsum(*xs, equation=equation)
loss = F.sum(y * y)
loss.forward()
for x in xs:
    x.grad.zero()
loss.backward()
result = {"y": y.d.tolist(), "grads": [x.g.tolist() for x in xs]}
"""

_NNABLA_SCRIPT = """
import json, sys
import numpy as np
import nnabla as nn
import nnabla.functions as F
scenario, calls = json.loads(sys.argv[1])
for equation, arrays in calls:
    exec(scenario)
    print(json.dumps(result))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set")
def test_nnablas_numbers(tmp_path):
    calls = [[equation, [np.random.default_rng(i).normal(size=s).astype(np.float32).tolist()
                         for i, s in enumerate(shapes)]] for equation, *shapes in CASES]
    rows = nnabla_rows(NNABLA, _NNABLA_SCRIPT, [SCENARIO, calls], tmp_path)
    for (equation, arrays), row in zip(calls, rows, strict=True):
        names = {"nn": nn, "F": F, "np": np, "equation": equation, "arrays": arrays}
        exec(SCENARIO, names)  # noqa: S102 - the test's own text
        ours = names["result"]
        np.testing.assert_allclose(ours["y"], row["y"], rtol=1e-5, atol=1e-6,
                                   err_msg=equation)
        for got, grad in zip(ours["grads"], row["grads"], strict=True):
            np.testing.assert_allclose(got, grad, rtol=1e-5, atol=1e-5, err_msg=equation)
