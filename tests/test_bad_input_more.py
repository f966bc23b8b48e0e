"""More mistakes reported where they are made: solver hyper-parameters at construction,
intermediates given to set_parameters, and a full or read-only disk naming the file."""

from __future__ import annotations

import errno
import inspect
import os

import numpy as np
import pytest

import symcompile as nn
import symcompile.functions as F
import symcompile.solvers as S
from symcompile.common import files


def hyper_names(cls) -> list[str]:
    """The numeric hyper-parameters of a solver's constructor (not its bool switches)."""
    return [name for name, p in inspect.signature(cls).parameters.items()
            if not isinstance(p.default, bool)]


EVERY_HYPER = [(name, hyper) for name, cls in sorted(S.SOLVERS.items())
               for hyper in hyper_names(cls)]


# --- solver hyper-parameters ----------------------------------------------------------------

@pytest.mark.parametrize("solver,hyper", EVERY_HYPER, ids=[f"{s}-{h}" for s, h in EVERY_HYPER])
def test_a_string_hyper_parameter_is_refused_at_construction(solver, hyper):
    with pytest.raises(TypeError, match=rf"^{solver}: {hyper} must be a real number, got "
                                        rf"'0.1' \(str\); pass {hyper}=0.1, not the string"):
        S.SOLVERS[solver](**{hyper: "0.1"})


@pytest.mark.parametrize("value", [True, None, 1j, [0.1], np.array([0.1]), "fast"],
                         ids=repr)
def test_non_numbers_are_type_errors(value):
    with pytest.raises(TypeError, match="Adam: beta2 must be a real number"):
        S.Adam(beta2=value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -np.inf])
def test_non_finite_values_are_refused(value):
    with pytest.raises(ValueError, match="Momentum: momentum must be finite"):
        S.Momentum(momentum=value)
    with pytest.raises(ValueError, match="for no bound, use a large finite number"):
        S.Lamb(gamma_u=float("inf"))


@pytest.mark.parametrize("make,message", [
    (lambda: S.Sgd(lr=-0.1), r"Sgd: lr must be >= 0 \(a step size; to maximise something"),
    (lambda: S.Adam(alpha=-1e-3), r"Adam: alpha must be >= 0"),
    (lambda: S.Lamb(eta=-1.0), r"Lamb: eta must be >= 0"),
    (lambda: S.Adam(beta1=1.5), r"Adam: beta1 must be in \[0, 1\] \(a decay rate"),
    (lambda: S.Lion(beta2=-0.1), r"Lion: beta2 must be in \[0, 1\]"),
    (lambda: S.RMSprop(decay=2), r"RMSprop: decay must be in \[0, 1\]"),
    (lambda: S.Nesterov(momentum=1.1), r"Nesterov: momentum must be in \[0, 1\]"),
    (lambda: S.Adagrad(eps=-1e-8), r"Adagrad: eps must be >= 0 \(it keeps a denominator"),
    (lambda: S.AdamW(wd=-1e-4), r"AdamW: wd must be >= 0 \(a weight decay rate\)"),
    (lambda: S.AdaBound(final_lr=-0.1), r"AdaBound: final_lr must be >= 0"),
    (lambda: S.AMSBound(gamma=-1e-3), r"AMSBound: gamma must be >= 0"),
    (lambda: S.Lars(coefficient=-1e-3), r"Lars: coefficient must be >= 0"),
    (lambda: S.Lamb(gamma_l=-1.0), r"Lamb: gamma_l must be >= 0"),
    (lambda: S.Lamb(gamma_l=5.0, gamma_u=1.0), r"Lamb: gamma_l=5.0 is above gamma_u=1.0"),
])
def test_values_outside_their_meaning_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("make,message", [
    (lambda: S.Adam(beta1=1), r"Adam: beta1=1 is not allowed: the update divides by "
                              r"1 - beta1\*\*t .*use a value below 1"),
    (lambda: S.Adamax(beta1=1.0), r"Adamax: beta1=1"),
    (lambda: S.AMSGRAD(beta1=1, bias_correction=True), r"AMSGRAD: beta1=1"),
    (lambda: S.Lamb(beta2=1, bias_correction=True), r"Lamb: beta2=1"),
    (lambda: S.AdaBelief(beta2=1, rectify=True), r"AdaBelief: beta2=1"),
    (lambda: S.AdamW(alpha=0), r"AdamW: alpha=0 is not allowed: the update scales by alpha "
                               r"/ initial alpha, 0/0 .*then call set_learning_rate\(0\)"),
    (lambda: S.SgdW(lr=0.0), r"SgdW: lr=0 is not allowed"),
    (lambda: S.AdaBound(gamma=0, final_lr=0), r"AdaBound: gamma=0 is not allowed with "
                                              r"final_lr=0 .*0\*inf .*or use gamma > 0"),
])
def test_values_that_divide_by_zero_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("make", [
    lambda: S.Sgd(lr=0), lambda: S.Momentum(momentum=0), lambda: S.Adam(beta1=0, eps=0),
    lambda: S.Adam(beta2=1), lambda: S.Adamax(beta2=1), lambda: S.AMSGRAD(beta1=1),
    lambda: S.Lamb(beta2=1), lambda: S.RMSprop(decay=1),
    lambda: S.Lion(beta1=1, beta2=0), lambda: S.Lamb(gamma_l=2.0, gamma_u=2.0),
    lambda: S.AdaBound(gamma=1e-30),
])
def test_edge_values_that_nnabla_runs_are_accepted(make):
    solver = make()
    w = nn.Variable.from_numpy_array(np.ones(3), need_grad=True)
    solver.set_parameters({"w": w})
    w.g = 0.5
    solver.update()
    assert np.isfinite(w.d).all()


def test_numbers_of_any_kind_are_stored_as_python_floats(tmp_path):
    solver = S.Adam(alpha=np.float32(0.5), beta1=np.float64(0.8), beta2=1, eps=np.int64(0))
    assert all(type(value) is float for value in solver.rule_arguments().values())
    assert repr(solver) == "Adam(alpha=0.5, beta1=0.8, beta2=1.0, eps=0.0)"
    solver.set_learning_rate(np.float64(0.25))
    assert type(solver.learning_rate()) is float and solver.info["alpha"] == 0.25
    # the settings become literal defaults of the fused step
    w = nn.parameter.get_parameter_or_create("w", (2,), initializer=np.ones(2))
    result = nn.compile(F.sum(F.mul2(w, w)), name="np_lr", output_dir=tmp_path,
                        solver=S.Sgd(lr=np.float64(0.01)))
    assert "lr=0.01)" in result.source and "np.float64" not in result.source
    compile(result.source, "np_lr.py", "exec")


def test_set_learning_rate_checks_like_the_constructor():
    solver = S.AdamW(alpha=1e-3)
    with pytest.raises(TypeError, match=r"AdamW: alpha must be a real number, got '1e-4'"):
        solver.set_learning_rate("1e-4")
    with pytest.raises(ValueError, match="AdamW: alpha must be >= 0"):
        solver.set_learning_rate(-1e-4)
    with pytest.raises(ValueError, match="AdamW: alpha must be finite"):
        solver.set_learning_rate(float("nan"))
    assert solver.learning_rate() == 1e-3  # unchanged by the refused values
    solver.set_learning_rate(0)  # warm-up from 0: fine once the initial rate is known
    w = nn.Variable.from_numpy_array(np.ones(2), need_grad=True)
    solver.set_parameters({"w": w})
    w.g = 1.0
    solver.update()
    np.testing.assert_array_equal(w.d, np.ones(2))


# --- set_parameters -------------------------------------------------------------------------

def test_intermediates_are_refused_naming_the_key_and_the_fix():
    w = nn.parameter.get_parameter_or_create("w", (3,), initializer=np.ones(3))
    hidden = F.tanh(w)
    solver = S.Sgd(lr=0.1)
    solver.set_parameters({"w": w})
    with pytest.raises(ValueError) as caught:
        solver.set_parameters({"w": w, "hidden": hidden})
    message = str(caught.value)
    assert message.startswith("set_parameters: 'hidden' is the output of Tanh at ")
    assert "test_bad_input_more.py" in message and "nn.get_parameters()" in message
    assert list(solver.get_parameters()) == ["w"]  # nothing changed
    # the leaf that shares its arrays is fine
    solver.set_parameters({"hidden": hidden.get_unlinked_variable(need_grad=True)})


def test_plain_leaves_are_accepted_as_nnabla_accepts_them():
    """nnabla lets solvers train any leaf; one with need_grad=False is skipped while no
    gradient reaches it, and trained once need_grad is switched on."""
    w = nn.Variable.from_numpy_array(np.ones(3), need_grad=True)
    frozen = nn.Variable.from_numpy_array(np.ones(3))
    loss = F.sum(F.mul2(w, frozen))
    solver = S.Sgd(lr=0.5)
    solver.set_parameters({"w": w, "frozen": frozen})
    solver.zero_grad()
    loss.forward()
    loss.backward()
    solver.update()
    np.testing.assert_allclose(w.d, 0.5)
    np.testing.assert_allclose(frozen.d, 1.0)
    frozen.need_grad = True
    solver.zero_grad()
    loss.forward()
    loss.backward()
    solver.update()
    np.testing.assert_allclose(frozen.d, 0.75)


# --- a full or read-only disk -------------------------------------------------------------

def _fail(number):
    def raise_(*args, **kwargs):
        raise OSError(number, os.strerror(number))

    return raise_


@pytest.mark.parametrize("step", ["write", "fsync", "replace"])
@pytest.mark.parametrize("number,remedy", [
    (errno.ENOSPC, "free some space, or write to another directory"),
    (errno.EDQUOT, "free some space, or write to another directory"),
    (errno.EROFS, "write to another directory"),
    (errno.EACCES, "check the permissions of "),
])
def test_write_errors_name_the_file_and_leave_the_old_one(step, number, remedy, tmp_path,
                                                          monkeypatch):
    target = tmp_path / "out" / "model.py"
    target.parent.mkdir()
    target.write_text("old")
    monkeypatch.setattr(os, step, _fail(number))
    with pytest.raises(OSError) as caught:
        files.atomic_write_text(target, "new")
    error = caught.value
    assert error.errno == number
    assert type(error) is type(OSError(number, "x"))  # e.g. PermissionError for EACCES
    assert str(target) in str(error) and remedy in str(error)
    assert "unchanged" in str(error) and os.strerror(number) in str(error)
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.py"]  # no temporary


def test_a_directory_that_cannot_be_created_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError, match=rf"cannot write {blocker / 'page.html'}: .*a file"):
        files.atomic_write_text(blocker / "page.html", "x")


def test_large_writes_are_complete(tmp_path, monkeypatch):
    """os.write may write less than asked: the rest is written too."""
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:1000])))
    data = bytes(range(256)) * 100
    files.atomic_write_bytes(tmp_path / "big.bin", data)
    assert (tmp_path / "big.bin").read_bytes() == data
