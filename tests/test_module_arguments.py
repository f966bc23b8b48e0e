"""Generated modules check their arguments where they enter, and their checkpoints.

Every public function refuses, with a ValueError naming the function, the argument (and
the graph variable it stands for), the expected and the given shape or dtype, anything
but arrays of the shape and dtype it was compiled for; a training step changes nothing
unless every check passes. Checkpoints are written atomically and read defensively.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile

import numpy as np
import pytest
from numpy_only import BLOCKER

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF

BATCH = 8
FUNCTIONS = ["forward", "gradient", "adam_step", "forward_saving", "backward"]


# --- modules and valid arguments --------------------------------------------------------

@pytest.fixture(scope="module")
def adam_module(tmp_path_factory):
    """loss = mean((affine(x) - y_true)**2), x (8, 3), with an adam_step."""
    nn.clear_parameters()
    x = nn.Variable((BATCH, 3))
    x.name = "x"
    y = nn.Variable((BATCH, 1))
    y.name = "y_true"
    loss = F.mean(F.squared_error(PF.affine(x, 1), y))
    module = nn.compile(loss, name="affine_adam", output_dir=tmp_path_factory.mktemp("adam"),
                        solver="adam").module
    nn.clear_parameters()
    return module


@pytest.fixture(scope="module")
def sgd_module(tmp_path_factory):
    """nnabla's linear regression: y = a * x + b, loss = mean((y_true - y)**2)."""
    nn.clear_parameters()
    x = nn.Variable((BATCH, 1))
    x.name = "x"
    y_true = nn.Variable((BATCH, 1))
    y_true.name = "y_true"
    a = nn.parameter.get_parameter_or_create("a", (1, 1))
    b = nn.parameter.get_parameter_or_create("b", (1, 1))
    loss = F.mean(F.pow_scalar(F.sub2(y_true, F.add2(F.mul2(a, x), b)), 2))
    module = nn.compile(loss, name="linear_sgd", output_dir=tmp_path_factory.mktemp("sgd"),
                        solver="sgd").module
    nn.clear_parameters()
    return module


def valid_arguments(m, function: str, seed: int = 0) -> dict:
    """Keyword arguments that `function` of module `m` accepts."""
    rng = np.random.default_rng(seed)
    args = {name: rng.standard_normal(spec["shape"]).astype(np.float32)
            for name, spec in m.INPUTS.items()}
    args.update({spec["argument"]: rng.standard_normal(spec["shape"]).astype(np.float32)
                 for spec in m.PARAMETERS.values()})
    if function.endswith("_step"):
        args.update(m.init_state() if m.STATE else {})
        if function == "adam_step":
            args["step"] = 1
    if function == "backward":
        _, saved = m.forward_saving(**args)
        args = {"saved": saved, **args, "g_loss": np.float32(1.0)}
    return args


def call(m, function: str, **changes):
    args = valid_arguments(m, function)
    args.update(changes)
    return getattr(m, function)(**args), args


def snapshot(args: dict) -> dict:
    return {k: v.copy() for k, v in args.items() if isinstance(v, np.ndarray)}


def assert_unchanged(args: dict, before: dict) -> None:
    for name, value in before.items():
        np.testing.assert_array_equal(args[name], value, err_msg=f"{name} was changed")


def refused(m, function: str, **changes) -> tuple[str, dict, dict]:
    """Call `function` with valid arguments but `changes`; expect a ValueError.

    Returns the message, the arguments and their values before the call."""
    args = valid_arguments(m, function)
    args.update(changes)
    before = snapshot(args)
    with pytest.raises(ValueError) as error:
        getattr(m, function)(**args)
    return str(error.value), args, before


# --- shapes, dtypes, types --------------------------------------------------------------

@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_batch_of_another_size_is_refused_with_what_to_do(adam_module, function):
    small = np.ones((5, 3), np.float32)
    message, args, before = refused(adam_module, function, x=small)
    assert f"{function}()" in message and "'x'" in message
    assert "(5, 3)" in message and "(8, 3)" in message
    assert "8" in message and "batch size 5" in message
    assert "drop or pad" in message and "compile the graph again" in message
    assert_unchanged(args, before)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_float64_into_a_float32_module_says_how_to_cast(adam_module, function):
    message, args, before = refused(adam_module, function,
                                    y_true=np.zeros((BATCH, 1), np.float64))
    assert f"{function}()" in message and "'y_true'" in message
    assert "float64" in message and "float32" in message
    assert ".astype(numpy.float32)" in message
    assert_unchanged(args, before)


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("value", [1.0, [[0.5], [0.5], [0.5]]], ids=["float", "list"])
def test_a_python_number_or_list_for_a_parameter_is_refused(adam_module, function, value):
    message, args, before = refused(adam_module, function, affine_W=value)
    assert f"{function}()" in message and "'affine_W'" in message
    assert "'affine/W'" in message  # the graph's name of the parameter
    assert "(3, 1)" in message and "float32" in message
    assert type(value).__name__ in message
    assert_unchanged(args, before)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_parameter_of_another_shape_names_both_shapes(adam_module, function):
    message, args, before = refused(adam_module, function,
                                    affine_b=np.zeros((1, 1), np.float32))
    assert f"{function}()" in message and "'affine_b'" in message and "'affine/b'" in message
    assert "(1, 1)" in message and "(1,)" in message
    assert "batch" not in message  # not an input: no batch-size advice
    assert_unchanged(args, before)


def test_a_read_only_parameter_is_refused_by_the_step_and_nothing_changes(adam_module):
    frozen = np.full((3, 1), 0.5, np.float32)
    frozen.flags.writeable = False
    message, args, before = refused(adam_module, "adam_step", affine_W=frozen)
    assert "adam_step()" in message and "'affine_W'" in message and "'affine/W'" in message
    assert "read-only" in message
    assert_unchanged(args, before)
    # read-only arrays are fine where nothing is written
    loss, _ = call(adam_module, "forward", affine_W=frozen)
    assert np.isfinite(loss)


def test_a_solver_state_of_a_wrong_shape_is_refused_before_any_update(adam_module):
    last = list(adam_module.STATE)[-1]
    assert adam_module.STATE[last]["parameter"] == "affine/b"
    message, args, before = refused(adam_module, "adam_step",
                                    **{last: np.zeros((2, 2), np.float32)})
    assert "adam_step()" in message and repr(last) in message and "'affine/b'" in message
    assert "(2, 2)" in message and "(1,)" in message
    assert_unchanged(args, before)  # parameters and the other states too


@pytest.mark.parametrize("step", [0, -1])
def test_adam_steps_count_from_one(adam_module, step):
    message, args, before = refused(adam_module, "adam_step", step=step)
    assert "adam_step()" in message and "from 1" in message and repr(step) in message
    assert_unchanged(args, before)


def test_adam_first_step_moves_each_parameter_by_alpha(adam_module):
    loss, args = call(adam_module, "adam_step", alpha=0.01)
    before = valid_arguments(adam_module, "adam_step")
    _, g_W, g_b = adam_module.gradient(**{k: before[k] for k in ("x", "y_true", "affine_W",
                                                                  "affine_b")})
    np.testing.assert_allclose(args["affine_W"], before["affine_W"] - 0.01 * np.sign(g_W),
                               atol=1e-5)
    np.testing.assert_allclose(args["affine_b"], before["affine_b"] - 0.01 * np.sign(g_b),
                               atol=1e-5)


# --- calling conventions ----------------------------------------------------------------

def test_keyword_arguments_in_any_order_equal_positional(sgd_module):
    m = sgd_module
    order = [*m.INPUTS, *(spec["argument"] for spec in m.PARAMETERS.values())]
    assert set(order) == {"x", "y_true", "a", "b"}
    base = valid_arguments(m, "sgd_step", seed=3)
    positional = {k: v.copy() for k, v in base.items()}
    loss_positional = m.sgd_step(*(positional[k] for k in order), 0.1)
    keywords = {k: v.copy() for k, v in base.items()}
    loss_keywords = m.sgd_step(x=keywords["x"], y_true=keywords["y_true"], a=keywords["a"],
                               b=keywords["b"], lr=0.1)
    assert loss_keywords == loss_positional
    for name in ("a", "b"):
        np.testing.assert_array_equal(keywords[name], positional[name])
        assert not np.array_equal(keywords[name], base[name])
    shuffled = {k: v.copy() for k, v in base.items()}
    assert m.sgd_step(lr=0.1, b=shuffled["b"], a=shuffled["a"], y_true=shuffled["y_true"],
                      x=shuffled["x"]) == loss_positional
    np.testing.assert_array_equal(shuffled["a"], positional["a"])


def test_zero_dimensional_arguments_may_be_numpy_scalars_where_only_read(tmp_path):
    s = nn.Variable(())
    s.name = "s"
    c = nn.parameter.get_parameter_or_create("c", ())
    loss = F.add2(F.mul2(s, c), F.pow_scalar(c, 2))
    m = nn.compile(loss, name="scalars", output_dir=tmp_path).module
    assert float(m.forward(s=np.float32(2.0), c=np.float32(3.0))) == 15.0
    value, g_c = m.gradient(s=np.float32(2.0), c=np.float32(3.0))
    assert float(value) == 15.0 and float(g_c) == 8.0  # s + 2c
    _, saved = m.forward_saving(s=np.float32(2.0), c=np.float32(3.0))
    (g,) = m.backward(saved, s=np.float32(2.0), c=np.float32(3.0), g_loss=np.float32(1.0))
    assert float(g) == 8.0
    with pytest.raises(ValueError, match=r"forward\(\).*'s'.*float64.*float32"):
        m.forward(s=np.float64(2.0), c=np.float32(3.0))
    # the step updates c in place: a scalar (immutable) is refused, a 0-d array works
    with pytest.raises(ValueError, match=r"sgd_step\(\).*'c'"):
        m.sgd_step(s=np.float32(2.0), c=np.float32(3.0), lr=0.5)
    c_array = np.array(3.0, np.float32)
    m.sgd_step(s=np.float32(2.0), c=c_array, lr=0.5)
    assert float(c_array) == pytest.approx(3.0 - 0.5 * 8.0)


# --- checkpoints ------------------------------------------------------------------------

def parameters(m, value: float) -> dict:
    return {spec["argument"]: np.full(spec["shape"], value, np.float32)
            for spec in m.PARAMETERS.values()}


def write_npz(path, m, omit: str = "", **replace) -> None:
    """A checkpoint as save_checkpoint() lays it out, with members replaced (or one
    left out)."""
    arrays = {"meta/graph_hash": np.array(m.GRAPH_HASH), "meta/step": np.array(3)}
    arrays.update({"param/" + key: np.full(spec["shape"], 0.5, np.float32)
                   for key, spec in m.PARAMETERS.items()})
    arrays.update({"state/" + key: np.zeros(spec["shape"], np.float32)
                   for key, spec in m.STATE.items()})
    arrays.update(replace)
    arrays.pop(omit, None)
    np.savez(path, **arrays)


def test_checkpoints_round_trip(adam_module, tmp_path):
    m = adam_module
    state = {k: np.full(v.shape, 0.25, np.float32) for k, v in m.init_state().items()}
    m.save_checkpoint(tmp_path / "c.npz", parameters(m, 1.5), state, step=7)
    params, loaded_state, step = m.load_checkpoint(tmp_path / "c.npz")
    assert step == 7 and set(params) == {"affine_W", "affine_b"}
    np.testing.assert_array_equal(params["affine_W"], np.full((3, 1), 1.5, np.float32))
    assert set(loaded_state) == set(m.STATE)
    assert all((v == 0.25).all() and v.dtype == np.float32 for v in loaded_state.values())


def test_save_checkpoint_is_atomic(adam_module, tmp_path, monkeypatch):
    m = adam_module
    path = tmp_path / "ckpt.npz"
    m.save_checkpoint(path, parameters(m, 1.0), m.init_state(), step=1)
    good = path.read_bytes()
    real_savez = np.savez

    def savez_then_fail(file, *args, **kwds):
        file.write(b"PK\x03\x04 half a zip file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", savez_then_fail)
    with pytest.raises(OSError, match="disk full"):
        m.save_checkpoint(path, parameters(m, 2.0), m.init_state(), step=2)
    monkeypatch.setattr(np, "savez", real_savez)
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]  # no temporary left
    params, _, step = m.load_checkpoint(path)
    assert step == 1 and (params["affine_W"] == 1.0).all()


def test_save_checkpoint_refuses_parameters_of_the_wrong_shape(adam_module, tmp_path):
    m = adam_module
    params = parameters(m, 1.0)
    params["affine_W"] = np.ones((1, 3), np.float32)
    with pytest.raises(ValueError, match=r"'affine/W'.*\(1, 3\).*\(3, 1\)"):
        m.save_checkpoint(tmp_path / "bad.npz", params)
    assert list(tmp_path.iterdir()) == []


def test_load_refuses_a_member_that_decompresses_far_beyond_its_shape(adam_module, tmp_path):
    m = adam_module
    path = tmp_path / "bomb.npz"
    write_npz(path, m, omit="param/affine/b")
    add_huge_compressible_member(path, "param/affine/b")
    assert path.stat().st_size < 2_000_000
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"affine/b'"):
            m.load_checkpoint(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50_000_000, f"load_checkpoint allocated {peak} bytes before refusing"


def add_huge_compressible_member(path, name: str, elements: int = 25_000_000) -> None:
    """Add to the .npz at `path`, as `name`, a float32 array of `elements` zeros (100 MB
    decompressed, a few hundred KB compressed), never holding it in memory."""
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open(name + ".npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(
                member, {"descr": "<f4", "fortran_order": False, "shape": (elements,)})
            chunk = bytes(1 << 20)
            left = 4 * elements
            while left:
                member.write(chunk[:min(left, len(chunk))])
                left -= min(left, len(chunk))


@pytest.mark.parametrize("value, problem", [
    (np.full((3, 1), 1 + 2j, np.complex64), "complex64"),
    (np.full((3, 1), 1e300, np.float64), "beyond the range of float32"),
    (np.array([["a"], ["b"], ["c"]]), "<U1"),
], ids=["complex", "1e300", "strings"])
def test_load_refuses_arrays_that_are_not_float32_numbers(adam_module, tmp_path, value,
                                                          problem):
    m = adam_module
    write_npz(tmp_path / "c.npz", m, **{"param/affine/W": value})
    with pytest.raises(ValueError) as error:
        m.load_checkpoint(tmp_path / "c.npz")
    assert "'param/affine/W'" in str(error.value) and problem in str(error.value)


def test_load_refuses_a_checkpoint_written_for_another_graph(adam_module, tmp_path):
    write_npz(tmp_path / "other.npz", adam_module,
              **{"meta/graph_hash": np.array("0123456789abcdef")})
    with pytest.raises(ValueError, match=r"written for graph '0123456789abcdef', not this "
                                         r"module's graph"):
        adam_module.load_checkpoint(tmp_path / "other.npz")


def test_a_checkpoint_of_a_different_model_is_reported_as_another_graph(adam_module,
                                                                         sgd_module,
                                                                         tmp_path):
    """Its arrays are not this module's either, but the helpful diagnosis is that the
    file belongs to another graph (as it was before the size checks were added)."""
    sgd_module.save_checkpoint(tmp_path / "other.npz", parameters(sgd_module, 1.0))
    with pytest.raises(ValueError, match=r"written for graph"):
        adam_module.load_checkpoint(tmp_path / "other.npz")


def test_load_refuses_a_parameter_array_of_the_wrong_shape(adam_module, tmp_path):
    write_npz(tmp_path / "c.npz", adam_module,
              **{"param/affine/W": np.ones((1, 3), np.float32)})
    with pytest.raises(ValueError, match=r"affine/W'.*\(1, 3\).*\(3, 1\)"):
        adam_module.load_checkpoint(tmp_path / "c.npz")


# --- without symcompile -----------------------------------------------------------------


CHECKS = textwrap.dedent("""
    import numpy as np
    spec = importlib.util.spec_from_file_location("m", sys.argv[1])
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    params, state = m.init_parameters(0), m.init_state()
    x, y = np.ones((8, 3), np.float32), np.ones((8, 1), np.float32)

    def refusal(function, *args, **kwargs):
        try:
            function(*args, **kwargs)
        except ValueError as error:
            return str(error)
        raise SystemExit(f"{function.__name__} accepted bad arguments")

    before = {k: v.copy() for k, v in params.items()}
    print(refusal(m.adam_step, x[:5], y[:5], **params, **state, step=1))
    print(refusal(m.adam_step, x, y, **params, **state, step=0))
    print(refusal(m.forward, x.astype(np.float64), y, **params))
    assert all((params[k] == before[k]).all() for k in params), "a refused step updated"
    np.savez(sys.argv[2], **{"meta/graph_hash": np.array(m.GRAPH_HASH),
                             "meta/step": np.array(1),
                             "param/affine/W": np.full((3, 1), 1e300),
                             "param/affine/b": np.zeros(1, np.float32),
                             **{"state/" + k: v for k, v in state.items()}})
    print(refusal(m.load_checkpoint, sys.argv[2]))
    m.adam_step(x, y, **params, **state, step=1)
    print("trained", float(m.forward(x, y, **params)) < float(m.forward(x, y, **before)))
""")


def test_checks_run_where_only_numpy_can_be_imported(adam_module, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-I", "-c", BLOCKER + CHECKS, adam_module.__file__,
                           str(tmp_path / "big.npz")], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    batch, step, dtype, checkpoint, trained = done.stdout.strip().split("\n")
    assert "adam_step()" in batch and "'x'" in batch and "batch size 5" in batch
    assert "adam_step()" in step and "from 1" in step
    assert "forward()" in dtype and ".astype(numpy.float32)" in dtype
    assert "'param/affine/W'" in checkpoint and "float32" in checkpoint
    assert trained == "trained True"
