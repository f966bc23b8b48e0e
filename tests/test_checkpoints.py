"""Parameter and solver-state files, resuming training, and learning-rate schedules."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import ROOT

import symcompile as nn
import symcompile.parametric_functions as PF
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


# --- nnabla's .protobuf parameter files ---------------------------------------------------

def test_protobuf_parameters_round_trip(tmp_path):
    pytest.importorskip("google.protobuf")
    x = nn.Variable((2, 3))
    PF.batch_normalization(PF.affine(x, 4))
    before = {k: (v.d.copy(), v.need_grad) for k, v in nn.get_parameters(grad_only=False).items()}
    path = tmp_path / "params.protobuf"
    nn.save_parameters(path)
    nn.clear_parameters()
    nn.load_parameters(path)
    after = nn.get_parameters(grad_only=False)
    assert list(after) == list(before)
    for key, (value, need_grad) in before.items():
        np.testing.assert_array_equal(after[key].d, value)
        assert after[key].need_grad == need_grad


def test_protobuf_with_a_bad_shape_is_refused(tmp_path):
    pytest.importorskip("google.protobuf")
    from symcompile.common.nnabla_proto import messages

    document, _ = messages()
    message = document()
    entry = message.parameter.add(variable_name="w")
    entry.shape.dim.extend([2, 3])
    entry.data.extend([1.0, 2.0])
    path = tmp_path / "bad.protobuf"
    path.write_bytes(message.SerializeToString())
    with pytest.raises(CheckpointError, match=r"parameter 'w' has shape \(2, 3\) but 2 values"):
        nn.load_parameters(path)
    assert nn.get_parameters(grad_only=False) == {}


NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set")
@pytest.mark.parametrize("suffix", [".h5", ".protobuf"])
def test_parameter_files_are_nnablas(suffix, tmp_path):
    """A file nnabla 1.39 writes loads here with the same values and need_grad flags, and
    the file written back from here loads in nnabla with the same values."""
    pytest.importorskip("google.protobuf" if suffix == ".protobuf" else "h5py")
    script = (
        "import sys, json, numpy as np, nnabla as nn, nnabla.parametric_functions as PF\n"
        "mode, path = sys.argv[1], sys.argv[2]\n"
        "if mode == 'write':\n"
        "    PF.batch_normalization(PF.affine(nn.Variable((2, 3)), 4))\n"
        "    nn.save_parameters(path)\n"
        "else:\n"
        "    nn.load_parameters(path)\n"
        "params = nn.get_parameters(grad_only=False)\n"
        "print(json.dumps({k: [v.d.tolist(), bool(v.need_grad)] for k, v in params.items()}))\n")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    theirs = tmp_path / f"nnabla{suffix}"
    done = subprocess.run([NNABLA, "-c", script, "write", str(theirs)], capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    written = json.loads(done.stdout.splitlines()[-1])
    nn.load_parameters(theirs)
    params = nn.get_parameters(grad_only=False)
    assert list(params) == list(written)
    for key, (value, need_grad) in written.items():
        np.testing.assert_array_equal(params[key].d, np.array(value, np.float32))
        assert params[key].need_grad == need_grad
    ours = tmp_path / f"ours{suffix}"
    nn.save_parameters(ours)
    done = subprocess.run([NNABLA, "-c", script, "read", str(ours)], capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == written
