"""Parameter and solver-state files, resuming training, and learning-rate schedules."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import ROOT

import symcompile as nn
import symcompile.solvers as S
import symcompile.utils.learning_rate_scheduler as lrs
from symcompile.common.checkpoint import CheckpointError

HERE = os.path.dirname(__file__)
FORMATS = [".npz"] + ([".h5"] if importlib.util.find_spec("h5py") else [])


def make_params():
    a = nn.parameter.get_parameter_or_create("layer/a", (2, 3), initializer=np.arange(6.0)
                                             .reshape(2, 3))
    b = nn.parameter.get_parameter_or_create("b", (4,), initializer=np.ones(4),
                                             need_grad=False)
    return a, b


@pytest.mark.parametrize("ext", FORMATS)
def test_parameters_round_trip(tmp_path, ext):
    a, b = make_params()
    path = tmp_path / f"params{ext}"
    nn.save_parameters(path)
    nn.clear_parameters()
    nn.load_parameters(path)
    params = nn.get_parameters(grad_only=False)
    assert list(params) == ["layer/a", "b"]
    np.testing.assert_array_equal(params["layer/a"].d, a.d)
    assert params["layer/a"].need_grad and not params["b"].need_grad


@pytest.mark.parametrize("ext", FORMATS)
def test_bad_parameter_files_change_nothing(tmp_path, ext):
    a, b = make_params()
    good = tmp_path / f"good{ext}"
    nn.save_parameters(good)
    nn.clear_parameters()
    a, b = make_params()
    nn.parameter.pop_parameter("b")
    nn.parameter.get_parameter_or_create("b", (5,))
    before = a.d.copy()
    with pytest.raises(CheckpointError, match=r"parameter 'b'.*\(4,\).*\(5,\)"):
        nn.load_parameters(good)
    np.testing.assert_array_equal(a.d, before)
    truncated = tmp_path / f"truncated{ext}"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        nn.load_parameters(truncated)
    with pytest.raises(CheckpointError, match="no such file"):
        nn.load_parameters(tmp_path / f"missing{ext}")
    np.testing.assert_array_equal(a.d, before)


@pytest.mark.parametrize("ext", FORMATS)
def test_solver_states_round_trip_and_mismatches(tmp_path, ext):
    a, _ = make_params()
    solver = S.Adam(alpha=0.1)
    solver.set_parameters(nn.get_parameters())
    for _ in range(3):
        a.g = 1.0
        solver.update()
    path = tmp_path / f"states{ext}"
    solver.save_states(path)
    fresh = S.Adam(alpha=0.1)
    fresh.set_parameters(nn.get_parameters())
    fresh.load_states(path)
    state = fresh.get_states()["layer/a"]
    assert state.t == 3
    np.testing.assert_array_equal(state.pstate["mean"].d,
                                  solver.get_states()["layer/a"].pstate["mean"].d)
    other = nn.parameter.get_parameter_or_create("other", (2, 3))
    wrong = S.Adam()
    wrong.set_parameters({"other": other})
    with pytest.raises(CheckpointError, match=r"parameter 'other'"):
        wrong.load_states(path)
    assert wrong.get_states()["other"].t == 0
    momentum = S.Momentum()
    momentum.set_parameters(nn.get_parameters())
    with pytest.raises(CheckpointError, match=r"'m' state for parameter 'layer/a'"):
        momentum.load_states(path)


def run_job(mode, directory, start, stop, extra_env=None):
    env = dict(os.environ, **(extra_env or {}))
    done = subprocess.run([sys.executable, os.path.join(HERE, "resume_job.py"), mode,
                           str(directory), str(start), str(stop)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_resuming_through_the_runtime_is_bit_identical(tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    whole.mkdir()
    parts.mkdir()
    run_job("runtime", whole, 0, 100)
    run_job("runtime", parts, 0, 50)
    run_job("runtime", parts, 50, 100)  # a fresh process
    first, second = np.load(whole / "params.npz"), np.load(parts / "params.npz")
    assert first.files == second.files
    for key in first.files:
        np.testing.assert_array_equal(first[key], second[key])


def test_resuming_through_the_generated_module_alone_is_bit_identical(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {HERE!r})
        from resume_job import build
        import symcompile as nn
        nn.compile(build()[0], name="model", output_dir={str(tmp_path)!r}, solver="adam")
    """)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT, timeout=300)
    blocked = {"PYTHONPATH": ""}
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    for folder in (whole, parts):
        folder.mkdir()
        (folder / "model.py").write_bytes((tmp_path / "model.py").read_bytes())
    run_job("module", whole, 0, 100, blocked)
    run_job("module", parts, 0, 50, blocked)
    run_job("module", parts, 50, 100, blocked)
    first, second = np.load(whole / "checkpoint.npz"), np.load(parts / "checkpoint.npz")
    assert sorted(first.files) == sorted(second.files)
    for key in first.files:
        np.testing.assert_array_equal(first[key], second[key])


def test_module_checkpoints_refuse_other_graphs_and_damage(tmp_path):
    import symcompile.functions as F

    w = nn.parameter.get_parameter_or_create("w", (3,))
    module = nn.compile(F.sum(F.mul2(w, w)), name="m1", output_dir=tmp_path,
                        solver="momentum").module
    params, state = module.init_parameters(), module.init_state()
    module.save_checkpoint(tmp_path / "c.npz", params, state, 7)
    loaded, loaded_state, step = module.load_checkpoint(tmp_path / "c.npz")
    assert step == 7 and set(loaded_state) == set(state)
    nn.clear_parameters()
    v = nn.parameter.get_parameter_or_create("w", (4,))
    other = nn.compile(F.sum(F.mul2(v, v)), name="m2", output_dir=tmp_path).module
    with pytest.raises(ValueError, match="not this module's graph"):
        other.load_checkpoint(tmp_path / "c.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        module.load_checkpoint(tmp_path / "bad.npz")


def test_learning_rate_schedulers():
    assert lrs.PolynomialScheduler(0.1, 100, 2).get_learning_rate(50) == pytest.approx(0.025)
    assert lrs.CosineScheduler(0.1, 100).get_learning_rate(50) == pytest.approx(0.05)
    assert lrs.ExponentialScheduler(0.1, 0.5, 10).get_learning_rate(25) == pytest.approx(0.025)
    assert lrs.StepScheduler(0.1, 0.1, [10, 20]).get_learning_rate(15) == pytest.approx(0.01)
    warm = lrs.LinearWarmupScheduler(lrs.StepScheduler(0.1, 0.1, [100]), 10)
    assert warm.get_learning_rate(4) == pytest.approx(0.05)
    assert warm.get_learning_rate(50) == pytest.approx(0.1)
