"""The F functions of elementwise ops, built from the op registry: nnabla's signatures
(recorded from nnabla 1.39 in tests/differential/nnabla_1.39_signatures.json), their
docstrings, their argument checks and the errors that name the function and the fix."""

from __future__ import annotations

import inspect
import json
import os
import sys

import numpy as np
import pytest

import symcompile as nn
import symcompile.functions as F
from symcompile.ops import elementwise
from symcompile.ops.registry import OPS

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "differential"))
import run as differential  # noqa: E402  (tests/differential/run.py)

NNABLA_SIGNATURES = json.loads(differential.SIGNATURES.read_text(encoding="utf-8"))
NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
DERIVED = [name for name, op in OPS.items() if op.api is not None]


@pytest.mark.parametrize("name", F.__all__)
def test_signature_is_nnabla_s(name):
    assert name in NNABLA_SIGNATURES, (
        f"F.{name}'s signature is not recorded: re-record with "
        "SYMCOMPILE_NNABLA_PYTHON=... python tests/differential/run.py --record")
    assert NNABLA_SIGNATURES[name] is not None, f"nnabla 1.39 has no F.{name}"
    assert str(inspect.signature(getattr(F, name))) == NNABLA_SIGNATURES[name]


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set")
def test_recorded_signatures_are_nnabla_s():
    assert differential.signatures(sorted(F.__all__), "nnabla", NNABLA) == NNABLA_SIGNATURES


def test_every_op_with_an_api_is_an_exported_function():
    assert len(F.__all__) == len(set(F.__all__))
    assert set(DERIVED) <= set(F.__all__)
    assert {"atan", "atan2", "tanh", "add2"} <= set(DERIVED)


@pytest.mark.parametrize("name", DERIVED)
def test_derived_function_reads_as_written(name):
    function = getattr(F, name)
    api = OPS[name].api
    assert function.__name__ == function.__qualname__ == name
    assert function.__module__ == "symcompile.frontend.functions.elementwise"
    assert function.__doc__ == api.doc and function.__doc__.strip()
    parameters = inspect.signature(function).parameters
    assert list(parameters) == [*api.inputs, *(n for n, _ in api.scalars),
                                *(n for n, _ in api.ignored)]
    assert list(parameters)[-2:] == ["n_outputs", "outputs"]
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in parameters.values())
    assert OPS[name].arity == len(api.inputs)


def test_arguments_by_position_and_by_keyword_record_the_same_node():
    x = nn.Variable((2, 3))
    by_position = F.leaky_relu(x, 0.3, False, -1, None)
    by_keyword = F.leaky_relu(alpha=0.3, x=x, inplace=True)
    default = F.leaky_relu(x)
    assert by_position.parent.args == by_keyword.parent.args == {"alpha": 0.3}
    assert default.parent.args == {"alpha": 0.1}
    assert type(default.parent.args["alpha"]).__name__ == "Scalar"
    assert default.parent.info.type_name == "LeakyReLU"
    assert F.atan2(x0=x, x1=x).parent.inputs == [x, x]  # a list, as nnabla's


def test_wrong_arguments_name_the_function_and_its_signature():
    x = nn.Variable((2,))
    with pytest.raises(TypeError, match=r"^F\.atan: missing a required argument: 'x'; its "
                       r"arguments are F\.atan\(x, n_outputs=-1, outputs=None\)$"):
        F.atan()
    with pytest.raises(TypeError, match=r"^F\.atan2: got an unexpected keyword argument 'y'"):
        F.atan2(x, x, y=x)
    with pytest.raises(TypeError, match=r"^F\.tanh: too many positional arguments"):
        F.tanh(x, -1, None, 4)


def test_scalars_and_inputs_are_checked():
    x = nn.Variable((2,))
    with pytest.raises(TypeError, match=r"^F\.huber_loss: delta must be a real number, got "
                       r"'1'"):
        F.huber_loss(x, x, delta="1")
    with pytest.raises(TypeError, match=r"^F\.atan2: input 1 must be a Variable, got "
                       r"ndarray\. Wrap arrays with nn\.Variable\.from_numpy_array"):
        F.atan2(x, np.ones(2))
    with pytest.raises(ValueError, match=r"^F\.atan2: cannot broadcast shapes"):
        F.atan2(x, nn.Variable((3,)))


def test_a_formula_is_a_specification():
    """What `elementwise` refuses, with a message that says how to write the formula."""

    def no_doc(x):
        return x

    def variadic(*xs):
        """Variadic."""

    def keyword_only(x, *, val=1):
        """Keyword-only."""

    with pytest.raises(TypeError, match=r"^elementwise\('probe'\): the formula no_doc has no "
                       r"docstring; write one, it is the docstring of F\.probe$"):
        elementwise.elementwise("probe", "Probe")(no_doc)
    for formula, parameter in ((variadic, "xs"), (keyword_only, "val")):
        with pytest.raises(TypeError, match=rf"parameter {parameter} of {formula.__name__} "
                           r"must be a plain one \(an input, or a scalar with its default\)"):
            elementwise.elementwise("probe", "Probe")(formula)
    with pytest.raises(ValueError, match=r"^elementwise\('atan'\): atan is registered already"):
        elementwise.elementwise("atan", "ATan")(elementwise._atan)
    assert "probe" not in OPS
