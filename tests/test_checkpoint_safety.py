"""Parameter and solver-state files that are hostile or wrong: refused, naming the array,
with nothing changed and without reading more than the expected arrays."""

from __future__ import annotations

import importlib.util
import time
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest
from numpy.lib import format as npy

import symcompile as nn
import symcompile.solvers as S
from symcompile.common import checkpoint, memory
from symcompile.common.checkpoint import CheckpointError

HAVE_H5PY = importlib.util.find_spec("h5py") is not None
FORMATS = [".npz"] + ([".h5"] if HAVE_H5PY else [])
needs_h5py = pytest.mark.skipif(not HAVE_H5PY, reason="needs h5py")
HUGE = (20000, 20000)  # 1.6 GB of float32


def make_params():
    a = nn.parameter.get_parameter_or_create("layer/a", (2, 3),
                                             initializer=np.arange(6.0).reshape(2, 3))
    b = nn.parameter.get_parameter_or_create("b", (4,), initializer=np.ones(4))
    return a, b


def npz_member(archive, name, shape, dtype, data_bytes):
    """A .npy member whose header says `shape` and `dtype`, followed by `data_bytes`
    zero bytes streamed in chunks (so neither this test nor the file is large)."""
    with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
        npy.write_array_header_1_0(member, {"descr": npy.dtype_to_descr(np.dtype(dtype)),
                                            "fortran_order": False, "shape": shape})
        chunk = bytes(1 << 24)
        while data_bytes > 0:
            member.write(chunk[:data_bytes])
            data_bytes -= len(chunk)


def npz_array(archive, name, array):
    with archive.open(f"{name}.npy", "w") as member:
        npy.write_array(member, np.asarray(array), allow_pickle=False)


@pytest.fixture(scope="module")
def huge_files(tmp_path_factory):
    """ext -> a small file holding "w/m", a huge array of zeros, and "w/t" = 3."""
    folder = tmp_path_factory.mktemp("huge")
    files = {".npz": folder / "huge.npz"}
    with zipfile.ZipFile(files[".npz"], "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        npz_member(archive, "w/m", HUGE, np.float32, int(np.prod(HUGE)) * 4)
        npz_array(archive, "w/t", np.uint32(3))
    assert files[".npz"].stat().st_size < 10 * 2**20
    if HAVE_H5PY:
        import h5py

        files[".h5"] = folder / "huge.h5"
        with h5py.File(files[".h5"], "w") as handle:  # unwritten chunks: all fill value
            handle.create_dataset("w/m", HUGE, np.float32, compression="gzip", chunks=True)
            handle["w/t"] = np.uint32(3)
        assert files[".h5"].stat().st_size < 2**20
    return files


def refused_cheaply(load, match):
    """`load()` raises CheckpointError matching `match`, quickly and without allocating
    anywhere near the size of the huge array."""
    tracemalloc.start()
    try:
        start = time.perf_counter()
        with pytest.raises(CheckpointError, match=match):
            load()
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20, f"allocated {peak / 2**20:.0f} MiB before refusing"
    assert elapsed < 2.0


# --- zip bombs and huge arrays -----------------------------------------------------------------

@pytest.mark.parametrize("ext", FORMATS)
def test_a_huge_array_behind_an_expected_parameter_is_refused_unread(huge_files, ext):
    existing = nn.parameter.get_parameter_or_create("w/m", (2, 3), initializer=np.ones((2, 3)))
    refused_cheaply(lambda: nn.load_parameters(huge_files[ext]),
                    r"parameter 'w/m' has shape \(20000, 20000\)")
    np.testing.assert_array_equal(existing.d, 1)
    assert list(nn.get_parameters(grad_only=False)) == ["w/m"]


@pytest.mark.parametrize("ext", FORMATS)
def test_a_huge_array_behind_an_expected_state_is_refused_unread(huge_files, ext):
    w = nn.parameter.get_parameter_or_create("w", (2, 3))
    solver = S.Momentum()
    solver.set_parameters({"w": w})
    refused_cheaply(lambda: solver.load_states(huge_files[ext]),
                    r"'m' state .*'w' has shape \(20000, 20000\)")
    assert solver.get_states()["w"].t == 0


def test_a_member_that_inflates_beyond_its_header_is_refused_undecompressed(tmp_path):
    path = tmp_path / "lying.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        npz_member(archive, "w", (2, 3), np.float32, 24 + 200 * 2**20)  # 200 MiB too many
    refused_cheaply(lambda: nn.load_parameters(path),
                    r"lying\.npz: array 'w' declares \d+ bytes but its header .* needs 152")
    assert nn.get_parameters(grad_only=False) == {}


@pytest.mark.parametrize("ext", FORMATS)
def test_arrays_larger_than_this_machine_are_refused_before_reading(tmp_path, ext,
                                                                    monkeypatch):
    nn.parameter.get_parameter_or_create("w", (600, 1024))  # 2.4 MiB
    path = tmp_path / f"params{ext}"
    nn.save_parameters(path)
    nn.clear_parameters()
    monkeypatch.setattr(memory, "physical_memory", lambda: 2**20)
    with pytest.raises(CheckpointError, match=r"with 'w', the file's arrays need 2\.3 MiB, "
                                              r"more than this machine's 1\.0 MiB"):
        nn.load_parameters(path)
    assert nn.get_parameters(grad_only=False) == {}


@pytest.mark.parametrize("member, message", [
    ("notes.txt", r"member 'notes\.txt' is not a \.npy array"),
    ("b.npy", r"array 'b' is stored twice"),
])
def test_npz_files_hold_each_array_once_and_nothing_else(tmp_path, member, message):
    path = tmp_path / "params.npz"
    with zipfile.ZipFile(path, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name
        npz_array(archive, "b", np.ones(4))
        with archive.open(member, "w") as extra:
            npy.write_array(extra, np.zeros(4))
    with pytest.raises(CheckpointError, match=message):
        nn.load_parameters(path)
    assert nn.get_parameters(grad_only=False) == {}


# --- all or nothing, and what is refused ------------------------------------------------------

BAD_ARRAYS = {
    "complex": (np.array([1 + 2j, 3j], np.complex64), r"dtype complex64"),
    "bool": (np.array([True, False]), r"dtype bool"),
    "structured": (np.zeros(2, [("x", "<f4"), ("y", "<i4")]), r"dtype \[\('x'"),
    "bytes": (np.array([b"ab", b"c"]), r"dtype \|S2"),
    "text": (np.array(["ab", "c"]), r"dtype <U2"),
    "object": (np.array([{}, None], dtype=object), r"holds Python objects"),
    "overflow": (np.array([1.0, 1e39]), r"finite values beyond float32's range, e\.g\. 1e\+39"),
    "big integers": (np.array([1, 2**24 + 1]), r"integers beyond ±2\*\*24"),
}
H5_CANNOT_STORE = {"text", "object"}


@pytest.mark.parametrize("ext", FORMATS)
@pytest.mark.parametrize("kind", list(BAD_ARRAYS))
def test_a_bad_array_anywhere_in_a_parameter_file_changes_nothing(tmp_path, ext, kind):
    if ext == ".h5" and kind in H5_CANNOT_STORE:
        pytest.skip("h5py cannot write this dtype")
    a, b = make_params()
    bad, message = BAD_ARRAYS[kind]
    path = tmp_path / f"file{ext}"
    checkpoint.save_arrays(path, {"layer/a": np.full((2, 3), 5.0), "new": np.ones(3),
                                  "bad": bad})
    with pytest.raises(CheckpointError, match=rf"file{ext}: .*'bad'.*{message}"):
        nn.load_parameters(path)
    np.testing.assert_array_equal(a.d, np.arange(6.0).reshape(2, 3))
    assert list(nn.get_parameters(grad_only=False)) == ["layer/a", "b"]


@pytest.mark.parametrize("ext", FORMATS)
def test_nan_inf_and_exact_integers_load_as_they_are(tmp_path, ext):
    f32max = float(np.finfo(np.float32).max)
    arrays = {"odd": np.array([np.nan, np.inf, -np.inf, -0.0, f32max, 1e-50]),
              "ints": np.array([-2**24, 0, 2**24]), "half": np.array([0.5, 2.0], np.float16)}
    path = tmp_path / f"file{ext}"
    checkpoint.save_arrays(path, arrays)
    nn.load_parameters(path)
    params = nn.get_parameters(grad_only=False)
    for name, array in arrays.items():
        assert params[name].d.dtype == np.float32
        np.testing.assert_array_equal(params[name].d, array.astype(np.float32))


@pytest.mark.parametrize("names", [
    {"b": np.full(4, 7.0), "layer": np.zeros(2)},
    {"b": np.full(4, 7.0), "b/c": np.zeros(2)},
    {"b": np.full(4, 7.0), "layer//a": np.zeros((2, 3))},
    {"b": np.full(4, 7.0), "c": np.zeros(2), "c/d": np.zeros(2)},
])
def test_names_that_cannot_be_stored_change_nothing(tmp_path, names):
    _, b = make_params()
    path = tmp_path / "file.npz"
    np.savez(path, **names)
    with pytest.raises(CheckpointError, match=r"file\.npz: parameter '[^']*' (is|cannot)"):
        nn.load_parameters(path)
    np.testing.assert_array_equal(b.d, 1)
    assert list(nn.get_parameters(grad_only=False)) == ["layer/a", "b"]


def test_attributes_are_single_numbers(tmp_path):
    path = tmp_path / "file.npz"
    np.savez(path, b=np.ones(4), **{"need_grad:b": np.array([True, False])})
    with pytest.raises(CheckpointError, match=r"attribute 'need_grad' of 'b' is not a single"):
        nn.load_parameters(path)
    assert nn.get_parameters(grad_only=False) == {}


# --- solver states ----------------------------------------------------------------------------

def trained_solver():
    a, b = make_params()
    solver = S.Momentum(lr=0.1)
    solver.set_parameters(nn.get_parameters())
    a.g, b.g = 1.0, 2.0
    solver.update()
    return solver


def snapshot(solver):
    return {key: (state.t, state.pstate["m"].d.copy())
            for key, state in solver.get_states().items()}


def assert_unchanged(solver, before):
    for key, (t, m) in before.items():
        state = solver.get_states()[key]
        assert state.t == t
        np.testing.assert_array_equal(state.pstate["m"].d, m)


def state_arrays(solver):
    arrays = {}
    for key, state in solver.get_states().items():
        arrays.update({f"{key}/{name}": value.d for name, value in state.pstate.items()})
        arrays[f"{key}/t"] = np.uint32(state.t)
    return arrays


BAD_COUNTS = {"negative": -1, "beyond uint32": 2**32, "float": 3.0, "bool": True,
              "not a scalar": np.array([1, 2], np.uint32)}


@pytest.mark.parametrize("kind", list(BAD_COUNTS))
def test_set_states_refuses_a_bad_update_count_and_changes_nothing(kind):
    solver = trained_solver()
    before = snapshot(solver)
    states = {key: S.SolverState({"m": np.full(state.pstate["m"].shape, 9.0)}, state.t)
              for key, state in solver.get_states().items()}
    states["b"].t = BAD_COUNTS[kind]
    with pytest.raises(CheckpointError, match=r"set_states: update count t for parameter 'b'"):
        solver.set_states(states)
    assert_unchanged(solver, before)


@pytest.mark.parametrize("ext", FORMATS)
@pytest.mark.parametrize("kind", list(BAD_COUNTS))
def test_load_states_refuses_a_bad_update_count_and_changes_nothing(tmp_path, ext, kind):
    solver = trained_solver()
    before = snapshot(solver)
    arrays = state_arrays(solver)
    arrays.update({"layer/a/m": np.full((2, 3), 9.0), "b/t": np.asarray(BAD_COUNTS[kind])})
    path = tmp_path / f"states{ext}"
    checkpoint.save_arrays(path, arrays)
    with pytest.raises(CheckpointError, match=rf"states{ext}: update count t for parameter 'b'"):
        solver.load_states(path)
    assert_unchanged(solver, before)


@pytest.mark.parametrize("ext", FORMATS)
def test_a_bad_state_array_changes_no_state(tmp_path, ext):
    solver = trained_solver()
    before = snapshot(solver)
    arrays = state_arrays(solver)
    arrays["layer/a/m"] = np.full((2, 3), 9.0)
    arrays["b/m"] = np.ones(4, np.complex64)
    path = tmp_path / f"states{ext}"
    checkpoint.save_arrays(path, arrays)
    with pytest.raises(CheckpointError, match=r"'m' state for parameter 'b' has dtype complex64"):
        solver.load_states(path)
    assert_unchanged(solver, before)


def test_set_states_copies_valid_states_up_to_the_largest_count():
    solver = trained_solver()
    other = S.Momentum(lr=0.1)
    other.set_parameters(nn.get_parameters())
    states = solver.get_states()
    states["b"].t = 2**32 - 1
    other.set_states(states)
    assert [s.t for s in other.get_states().values()] == [1, 2**32 - 1]
    for key, state in other.get_states().items():
        np.testing.assert_array_equal(state.pstate["m"].d, states[key].pstate["m"].d)


# --- HDF5 files stay inside themselves --------------------------------------------------------

@needs_h5py
@pytest.mark.parametrize("kind", ["external link", "soft link", "external storage", "virtual"])
def test_h5_files_never_read_other_files(tmp_path, kind):
    import h5py

    make_params()
    path, other, raw = tmp_path / "params.h5", tmp_path / "other.h5", tmp_path / "raw.bin"
    nn.save_parameters(path)
    nn.clear_parameters()
    with h5py.File(other, "w") as handle:
        handle["data"] = np.full((2, 3), 7.0)
    raw.write_bytes(np.full(6, 7.0, np.float32).tobytes())
    with h5py.File(path, "a") as handle:
        if kind == "external link":
            handle["x"] = h5py.ExternalLink(str(other), "/data")
        elif kind == "soft link":
            handle["x"] = h5py.SoftLink("/layer/a")
        elif kind == "external storage":
            handle.create_dataset("x", (6,), np.float32, external=[(str(raw), 0, 24)])
        else:
            layout = h5py.VirtualLayout((2, 3), np.float64)
            layout[...] = h5py.VirtualSource(str(other), "data", shape=(2, 3))
            handle.create_virtual_dataset("x", layout)
    with pytest.raises(CheckpointError, match=rf"params\.h5: .*'x' is .*{kind}"):
        nn.load_parameters(path)
    assert nn.get_parameters(grad_only=False) == {}
