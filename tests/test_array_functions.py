"""Array manipulation: F.slice, Python indexing of Variables, F.flip, F.pad,
F.concatenate, F.stack and F.split.

- forward against NumPy's own indexing, flip, pad, concatenate and stack (float64), and
  gradients against central finite differences (gradcheck.check_function), for negative
  bounds and steps, ints, ``...`` and ``None`` in indices, several axes and inputs;
- nnabla 1.39's numbers where it is installed (forward and backward);
- bad input, refused when the graph is built, naming the function, the shapes and the fix.
(The array API backend runs each of them in test_array_api_backend.py.)
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from gradcheck import check_function
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.functions as F

X = (2, 3, 5)

# (name, build from Variables, the same with NumPy, input shapes)
CASES = [
    ("slice", lambda x: F.slice(x, (0, 1, 1), (2, 3, 5), (1, 1, 2)),
     lambda a: a[0:2, 1:3, 1:5:2], [X]),
    ("slice negative bounds", lambda x: F.slice(x, (-1, -3, 0), (None, -1, 10), None),
     lambda a: a[-1:, -3:-1, 0:10], [X]),
    ("slice negative steps", lambda x: F.slice(x, (None, 2, 4), (None, 0, None), (-1, -1, -2)),
     lambda a: a[::-1, 2:0:-1, 4::-2], [X]),
    # lists shorter than the rank slice the last axes, as in nnabla 1.39
    ("slice the last axes", lambda x: F.slice(x, (0, 1), (2, 5), (1, 2)),
     lambda a: a[:, 0:2, 1:5:2], [X]),
    ("slice the last axis backwards", lambda x: F.slice(x, [3], [0], [-1]),
     lambda a: a[:, :, 3:0:-1], [X]),
    ("index columns", lambda x: x[:, 1:3], lambda a: a[:, 1:3], [X]),
    ("index int", lambda x: x[1], lambda a: a[1], [X]),
    ("index negative int and step", lambda x: x[:, -1, ::2], lambda a: a[:, -1, ::2], [X]),
    ("index ellipsis and new axis", lambda x: x[..., None, 1:], lambda a: a[..., None, 1:], [X]),
    ("index new axes around", lambda x: x[None, 0, :, None], lambda a: a[None, 0, :, None],
     [X]),
    ("index reversed", lambda x: x[::-1, ..., ::-3], lambda a: a[::-1, ..., ::-3], [X]),
    ("flip last", F.flip, lambda a: a[..., ::-1], [X]),
    ("flip two axes", lambda x: F.flip(x, axes=(0, -2)), lambda a: a[::-1, ::-1], [X]),
    ("pad last axis", lambda x: F.pad(x, (1, 2)),
     lambda a: np.pad(a, ((0, 0), (0, 0), (1, 2))), [X]),
    ("pad two axes with a value", lambda x: F.pad(x, (2, 0, 1, 1), constant_value=-0.5),
     lambda a: np.pad(a, ((0, 0), (2, 0), (1, 1)), constant_values=-0.5), [X]),
    ("concatenate last axis", lambda a, b: F.concatenate(a, b),
     lambda a, b: np.concatenate([a, b], axis=-1), [X, (2, 3, 2)]),
    ("concatenate three on axis 0", lambda a, b, c: F.concatenate(a, b, c, axis=0),
     lambda a, b, c: np.concatenate([a, b, c], axis=0), [(1, 4), (3, 4), (2, 4)]),
    ("concatenate a list", lambda a, b: F.concatenate([a, b], axis=1),
     lambda a, b: np.concatenate([a, b], axis=1), [(2, 1), (2, 3)]),
    ("stack", lambda a, b: F.stack(a, b), lambda a, b: np.stack([a, b]), [(2, 3), (2, 3)]),
    ("stack last axis", lambda a, b, c: F.stack(a, b, c, axis=-1),
     lambda a, b, c: np.stack([a, b, c], axis=-1), [(2, 3)] * 3),
    ("split and stack back", lambda x: F.stack(*F.split(x, axis=1), axis=2),
     lambda a: np.stack([a[:, i] for i in range(3)], axis=2), [X]),
    ("split pieces", lambda x: F.mul2(F.split(x, axis=2)[1], F.split(x, axis=2)[4]),
     lambda a: a[:, :, 1] * a[:, :, 4], [X]),
    ("a slice of a pad of a concatenation",
     lambda a, b: F.pad(F.concatenate(a, b, axis=0), (1, 1))[1:, 2:-1],
     lambda a, b: np.pad(np.concatenate([a, b]), ((0, 0), (1, 1)))[1:, 2:-1],
     [(2, 4), (1, 4)]),
]
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("name,build,reference,shapes", CASES, ids=IDS)
def test_forward_and_gradients(name, build, reference, shapes, tmp_path, rng):
    arrays = [np.random.default_rng(i).normal(size=s) for i, s in enumerate(shapes)]
    check_function(build, reference, arrays, tmp_path, rng)


def test_parent_names_are_nnablas():
    x = nn.Variable(X)
    assert x[:, 1:].parent.name == "Slice"
    assert x[1].parent.name == "Reshape"  # nnabla: Slice then Reshape, as here
    assert F.flip(x).parent.name == "Flip"
    assert F.pad(x, (1, 1)).parent.name == "Pad"
    assert F.concatenate(x, x).parent.name == "Concatenate"
    assert F.stack(x, x).parent.name == "Stack"


def test_split_returns_one_variable_per_element():
    parts = F.split(nn.Variable(X), axis=-1)
    assert len(parts) == 5 and all(p.shape == (2, 3) for p in parts)


# --- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("call,error,message", [
    (lambda x: F.slice(x, (0, 1), (2, 3, 5), (1, 1)), ValueError,
     r"F.slice: start, stop and step have 2, 3 and 2 entries for the input of shape "
     r"\(2, 3, 5\); give the three with the same length"),
    (lambda x: F.slice(x, [1]), ValueError, r"start, stop and step have 1, 3 and 3 entries"),
    (lambda x: F.slice(x, (0, 0, 0, 0), (1, 1, 1, 1), (1, 1, 1, 1)), ValueError,
     r"F.slice: start=\[0, 0, 0, 0\] has more entries than the input of shape \(2, 3, 5\) "
     r"has axes \(3\)"),
    (lambda x: F.slice(x, None, None, (1, 0, 1)), ValueError, r"step 0 on axis 1"),
    (lambda x: F.slice(x, (0.5, 0, 0)), TypeError, r"F.slice: start must hold ints"),
    (lambda x: F.pad(x, (1, 1), mode="wrap"), ValueError,
     r"F.pad: mode='wrap' is not one of nnabla's 'constant', 'reflect' and 'repeat'"),
    (lambda x: F.pad(x, (1, 1, 1)), ValueError, r"pad_width=\(1, 1, 1\) must hold pairs"),
    (lambda x: F.pad(x, (1, -1)), ValueError, r"non-negative"),
    (lambda x: F.concatenate(x, nn.Variable((2, 4, 5)), axis=2), ValueError,
     r"F.concatenate: input 1 of shape \(2, 4, 5\) does not fit input 0 of shape \(2, 3, 5\)"
     r": every input must have the same shape but along axis 2"),
    (lambda x: F.stack(x, nn.Variable((2, 3, 4))), ValueError,
     r"F.stack: input 1 of shape \(2, 3, 4\) does not fit"),
    (lambda x: F.concatenate(x, x, axis=3), ValueError, r"axis 3 is out of range"),
    (lambda x: F.concatenate(), ValueError, r"at least one Variable"),
    (lambda x: F.concatenate(x, np.zeros(X)), TypeError, r"F.concatenate: input 1 must be"),
    (lambda x: x[np.array([0, 1])], IndexError, r"only ints, slices, \.\.\. and None"),
    (lambda x: x[0.5], IndexError, r"only ints, slices"),
    (lambda x: x[0, 0, 0, 0], IndexError, r"too many indices .* shape \(2, 3, 5\)"),
    (lambda x: x[:, 3], IndexError, r"index 3 is out of range for axis 1 of length 3"),
    (lambda x: x[..., ...], IndexError, r"single ellipsis"),
    (lambda x: F.flip(x, axes=[3]), ValueError, r"F.flip: axis 3 is out of range"),
])
def test_bad_input_is_refused_when_the_graph_is_built(call, error, message):
    with pytest.raises(error, match=message):
        call(nn.Variable(X))


# --- nnabla 1.39 ---------------------------------------------------------------------------

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
# expressions of x (2, 3, 5) and y (2, 3, 2), the same text in nnabla and here
EXPRESSIONS = [
    "x[:, 1:3]", "x[1]", "x[:, -1, ::2]", "x[..., None, 1:]", "x[::-1, :, 4:0:-2]",
    "F.slice(x, (0, 1, 1), (2, 3, 5), (1, 1, 2))", "F.slice(x, (0, 1), (2, 5), (1, 2))",
    "F.slice(x, [3], [0], [-1])", "F.slice(x, [-3], [100], [1])", "F.flip(x, axes=[0, 2])",
    "F.pad(x, (1, 2))", "F.pad(x, (2, 0, 1, 1), constant_value=-0.5)",
    "F.concatenate(x, y, axis=2)", "F.stack(x, x * 2, axis=1)",
    "F.stack(*F.split(x, axis=2), axis=0)",
]
NNABLA_ARRAYS = r"""
import json, sys
import numpy as np
import nnabla as nn, nnabla.functions as F
rows = []
for i, text in enumerate(json.loads(sys.argv[1])):
    rng = np.random.RandomState(i)
    x = nn.Variable.from_numpy_array(rng.randn(2, 3, 5).astype(np.float32), need_grad=True)
    y = nn.Variable.from_numpy_array(rng.randn(2, 3, 2).astype(np.float32), need_grad=True)
    out = eval(text)
    g = rng.randn(*out.shape).astype(np.float32)
    out.forward()
    x.grad.zero()
    y.grad.zero()
    out.backward(g)
    print(json.dumps({"x": x.d.tolist(), "y": y.d.tolist(), "g": g.tolist(),
                      "out": out.d.tolist(), "dx": x.g.tolist(), "dy": y.g.tolist()}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_array_functions_against_nnabla(tmp_path):
    """The output and the gradients of x and y of each expression equal nnabla 1.39's."""
    rows = nnabla_rows(NNABLA, NNABLA_ARRAYS, EXPRESSIONS, tmp_path)
    assert len(rows) == len(EXPRESSIONS)
    for text, row in zip(EXPRESSIONS, rows, strict=True):
        nn.clear_parameters()
        x = nn.Variable.from_numpy_array(np.array(row["x"], np.float32), need_grad=True)
        y = nn.Variable.from_numpy_array(np.array(row["y"], np.float32), need_grad=True)
        out = eval(text, {"F": F, "x": x, "y": y})
        loss = F.sum(out * nn.Variable.from_numpy_array(np.array(row["g"], np.float32)))
        loss.forward()
        loss.backward()
        np.testing.assert_allclose(out.d, row["out"], rtol=1e-6, atol=1e-6, err_msg=text)
        np.testing.assert_allclose(x.g, row["dx"], rtol=1e-5, atol=1e-6, err_msg=text)
        if "y" in text:
            np.testing.assert_allclose(y.g, row["dy"], rtol=1e-5, atol=1e-6, err_msg=text)
