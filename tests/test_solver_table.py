"""The solver classes follow from the update-rule table: one `@rule` entry in
symcompile/ops/update_rules.py is the whole of a solver (its formula, its class, nnabla's
signature, its learning rate, its weight decay, the values it refuses)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import symcompile as nn
import symcompile.solvers as S
from symcompile.frontend import solvers as frontend
from symcompile.ops import update_rules
from symcompile.ops.update_rules import RULES

# nnabla 1.39's constructors, as inspect.signature(nnabla.solvers.X) prints them.
NNABLA_SIGNATURES = {
    "Sgd": "(lr=0.001)",
    "Momentum": "(lr=0.001, momentum=0.9)",
    "Nesterov": "(lr=0.001, momentum=0.9)",
    "Adagrad": "(lr=0.01, eps=1e-08)",
    "Adadelta": "(lr=1.0, decay=0.95, eps=1e-06)",
    "RMSprop": "(lr=0.001, decay=0.9, eps=1e-08)",
    "RMSpropGraves": "(lr=0.0001, decay=0.95, momentum=0.9, eps=0.0001)",
    "Adam": "(alpha=0.001, beta1=0.9, beta2=0.999, eps=1e-08)",
    "AdamW": "(alpha=0.001, beta1=0.9, beta2=0.999, eps=1e-08, wd=0.0001)",
    "SgdW": "(lr=0.001, momentum=0.9, wd=0.0001)",
    "Adamax": "(alpha=0.002, beta1=0.9, beta2=0.999, eps=1e-08)",
    "AMSGRAD": "(alpha=0.001, beta1=0.9, beta2=0.999, eps=1e-08, bias_correction=False)",
    "AdaBound": "(alpha=0.001, beta1=0.9, beta2=0.999, eps=1e-08, final_lr=0.1, gamma=0.001)",
    "AMSBound": "(alpha=0.001, beta1=0.9, beta2=0.999, eps=1e-08, final_lr=0.1, gamma=0.001, "
                "bias_correction=False)",
    "AdaBelief": "(alpha=0.001, beta1=0.9, beta2=0.999, eps=1e-08, wd=0.0, amsgrad=False, "
                 "weight_decouple=False, fixed_decay=False, rectify=False)",
    "Lamb": "(eta=0.001, beta1=0.9, beta2=0.999, gamma_l=0.0, gamma_u=10.0, eps=1e-06, "
            "bias_correction=False)",
    "Lars": "(lr=0.001, momentum=0.9, coefficient=0.001, eps=1e-06)",
    "Lion": "(lr=0.0001, beta1=0.9, beta2=0.99)",
}
# nnabla's weight_decay_is_fused() with default options.
NNABLA_FUSED = {"AdamW", "SgdW", "Lamb", "Lars", "Lion"}


def test_every_rule_is_a_solver_with_nnabla_s_signature():
    assert list(S.SOLVERS) == [rule.solver for rule in RULES.values()]
    assert S.SOLVERS.keys() == NNABLA_SIGNATURES.keys()
    for name, cls in S.SOLVERS.items():
        assert getattr(S, name) is cls and cls.__name__ == name
        assert str(inspect.signature(cls)) == NNABLA_SIGNATURES[name], name
        parameters = inspect.signature(cls.__init__).parameters.values()
        assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in parameters), name
        solver = cls()
        assert solver.weight_decay_is_fused() == (name in NNABLA_FUSED), name
        assert solver.learning_rate() == next(iter(inspect.signature(cls).parameters.values())
                                              ).default
        assert cls.__doc__ and RULES[solver.rule].doc in cls.__doc__


def test_positional_arguments_follow_nnabla_s_order():
    """nnabla.utils.load makes solvers positionally, e.g. AdaBelief(alpha, ..., rectify)."""
    solver = S.AdaBelief(0.01, 0.8, 0.99, 1e-6, 0.1, True, True, False, True)
    assert solver.info == {"name": "AdaBelief", "alpha": 0.01, "beta1": 0.8, "beta2": 0.99,
                           "eps": 1e-6, "wd": 0.1, "amsgrad": True, "weight_decouple": True,
                           "fixed_decay": False, "rectify": True}
    assert solver.weight_decay_is_fused()
    assert repr(S.Lamb(0.1, bias_correction=True)) == (
        "Lamb(eta=0.1, beta1=0.9, beta2=0.999, gamma_l=0.0, gamma_u=10.0, eps=1e-06, "
        "bias_correction=True)")


def test_options_are_in_info_as_nnabla_has_them():
    """nnabla.utils.save reads info["bias_correction"], info["amsgrad"], ..."""
    assert S.AMSGRAD(bias_correction=True).info["bias_correction"] is True
    assert S.AMSBound().info["bias_correction"] is False
    assert S.Lamb().info["bias_correction"] is False


@pytest.mark.parametrize("make,error,message", [
    (lambda: S.Adam(lr=0.1), TypeError,
     r"^Adam: unknown argument 'lr'; the learning rate of Adam is alpha; nnabla's Adam "
     r"takes \(alpha=0.001, beta1=0.9, beta2=0.999, eps=1e-08\)$"),
    (lambda: S.Lamb(wd=0.1), TypeError, r"^Lamb: unknown argument 'wd'; nnabla's Lamb takes"),
    (lambda: S.Sgd(0.1, 0.9), TypeError, r"^Sgd: too many positional arguments; nnabla's Sgd"),
    (lambda: S.AMSGRAD(bias_correction="False"), TypeError,
     r"^AMSGRAD: bias_correction is a switch and must be True or False, got 'False' \(str\)"),
    (lambda: S.AdaBelief(rectify=2), TypeError, r"^AdaBelief: rectify is a switch"),
    (lambda: frontend.Solver(), TypeError, r"^Solver is the base class"),
])
def test_wrong_arguments_name_the_solver_and_the_fix(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_options_take_what_nnabla_s_bool_takes():
    assert S.AMSGRAD(bias_correction=1).options() == {"bias_correction": True}
    assert S.AMSGRAD(bias_correction=np.bool_(False)).options() == {"bias_correction": False}


def test_every_argument_has_a_range():
    for rule in RULES.values():
        assert set(rule.arguments) <= update_rules.RANGES.keys(), rule.name
    with pytest.raises(ValueError, match=r"update rule toy: arguments \['partial'\] have no "
                                         r"range in update_rules.RANGES"):
        update_rules.rule("toy", "Toy", [("lr", 0.1), ("partial", 0.25)], summary="", doc="")


def test_one_rule_entry_is_a_whole_solver(monkeypatch):
    """A rule registered with `rule` alone gets a class with its signature, learning rate,
    fused weight decay and refusals, and updates through generated code."""
    monkeypatch.setitem(RULES, "test_signum", None)  # removed again after the test
    register = update_rules.rule(
        "test_signum", "Signum", [("lr", 0.01), ("momentum", 0.0)], decay=update_rules.FUSED,
        refusals=[update_rules.Refusal(lambda v: v["lr"] == v["momentum"] == 0,
                                       "lr=0 with momentum=0 never moves; use lr > 0")],
        summary="Signed SGD.", doc="w -= lr*(sign(g) + wd*w)")

    @register
    def _signum(c):
        return [update_rules.Update(c.w, "-=", c.hyper["lr"] * (update_rules.sympy.sign(c.g)
                                                                 + c.hyper["wd"] * c.w))]

    cls = frontend._solver_class(RULES["test_signum"])
    assert cls.__name__ == "Signum" and str(inspect.signature(cls)) == "(lr=0.01, momentum=0.0)"
    assert RULES["test_signum"].hyper_names == ("lr", "momentum", "wd")  # wd: fused decay
    with pytest.raises(ValueError, match=r"^Signum: lr=0 with momentum=0 never moves"):
        cls(lr=0)
    with pytest.raises(ValueError, match=r"^Signum: lr must be >= 0 \(a step size"):
        cls(lr=-1)

    solver = cls(lr=0.5)
    assert solver.learning_rate() == 0.5 and solver.weight_decay_is_fused()
    w = nn.Variable.from_numpy_array(np.array([1.0, -2.0, 4.0], dtype=np.float32),
                                     need_grad=True)
    solver.set_parameters({"w": w})
    solver.zero_grad()
    w.g = [3.0, 0.0, -1.0]
    solver.weight_decay(0.25)  # stored, used by this update only
    solver.update()
    np.testing.assert_allclose(w.d, [1 - 0.5 * (1 + 0.25), -2 - 0.5 * (0 - 0.5),
                                     4 - 0.5 * (-1 + 1.0)], rtol=1e-6)
    solver.set_learning_rate(0.1)
    solver.zero_grad()
    w.g = [1.0, 1.0, 1.0]
    before = w.d.copy()
    solver.update()
    np.testing.assert_allclose(w.d, before - 0.1, rtol=1e-6)  # the default wd is 0
