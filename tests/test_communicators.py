"""symcompile.communicators: nnabla's communicator API, on MPI and alone.

Without MPI (mpi4py absent, which the tests force by hiding it) a communicator is the
one-process one. With mpi4py and an `mpirun` on the PATH, this file is also the program
`mpirun -n 2` runs (``python tests/test_communicators.py collectives``): each rank checks
every collective's result against what the ranks' known inputs make it, and exits 0.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60


def _no_mpi4py(monkeypatch):
    """Make `import mpi4py` fail in this process, as where it is not installed."""
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    for name in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):
        monkeypatch.delenv(name, raising=False)


def _comm(monkeypatch):
    import symcompile.communicators as C

    _no_mpi4py(monkeypatch)
    comm = C.MultiProcessDataParalellCommunicator(None)
    comm.init()
    return comm


def test_names_are_nnablas_and_one_module():
    import symcompile.communicators as C
    from symcompile.frontend import communicators

    assert C is communicators
    assert C.MultiProcessDataParallelCommunicator is C.MultiProcessDataParalellCommunicator
    assert C.MultiProcessCommunicator is C.MultiProcessDataParalellCommunicator


def test_without_mpi_it_is_one_process(monkeypatch):
    import symcompile as nn

    comm = _comm(monkeypatch)
    assert (comm.size, comm.rank, comm.local_rank) == (1, 0, 0)
    assert comm.name.endswith("SingleProcess")
    a = nn.NdArray.from_numpy_array(np.arange(6, dtype=np.float32).reshape(2, 3))
    b = nn.NdArray.from_numpy_array(np.full(4, 3.0, np.float32))
    comm.all_reduce([a, b], division=True, inplace=False)
    comm.all_reduce(a, division=False, inplace=True)
    comm.bcast([a, b], src=0)
    comm.reduce([a, b], dst=0, division=True)
    comm.barrier()
    np.testing.assert_array_equal(a.data, np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(b.data, np.full(4, 3.0, np.float32))
    out = nn.NdArray((2, 3))
    comm.all_gather(a, [out])
    np.testing.assert_array_equal(out.data, a.data)
    comm.reduce_scatter([a], out, division=True)
    np.testing.assert_array_equal(out.data, a.data)
    assert comm.list_groups() == {"world": [0]}
    assert comm.new_group(("solo", [0])) == "solo" and comm.find_group("solo") == [0]


def test_gradients_of_the_nnabla_loop_and_the_older_api(monkeypatch):
    import symcompile as nn
    import symcompile.functions as F
    import symcompile.parametric_functions as PF

    comm = _comm(monkeypatch)
    nn.clear_parameters()
    x = nn.Variable((4, 3))
    x.d = np.linspace(-1, 1, 12).reshape(4, 3)
    loss = F.mean(F.tanh(PF.affine(x, 2, name="fc")))
    loss.forward()
    loss.backward()
    params = nn.get_parameters()
    before = {k: v.g.copy() for k, v in params.items()}
    assert any(np.any(g != 0) for g in before.values())
    comm.all_reduce([v.grad for v in params.values()], division=True, inplace=False)
    comm.add_context_and_parameters((None, params))
    comm.allreduce(division=False, inplace=True)
    for key, var in params.items():
        np.testing.assert_array_equal(var.g, before[key])


def test_arguments_are_checked_with_nnablas_shapes(monkeypatch):
    import symcompile as nn

    comm = _comm(monkeypatch)
    var = nn.Variable((2,))
    with pytest.raises(TypeError, match=r"Variable: pass its gradient or values, v.grad"):
        comm.all_reduce([var])
    with pytest.raises(TypeError, match=r"NdArray.from_numpy_array"):
        comm.all_reduce(np.zeros(3, np.float32))
    ints = nn.NdArray.from_numpy_array(np.arange(3))
    with pytest.raises(TypeError, match=r"division=True\) of int64 arrays"):
        comm.all_reduce(ints, division=True)
    with pytest.raises(ValueError, match=r"src=1 is not a rank; ranks are 0 to 0"):
        comm.bcast(ints, src=1)
    with pytest.raises(ValueError, match=r"one per process \(1\)"):
        comm.all_gather(ints, [nn.NdArray((3,)), nn.NdArray((3,))])
    with pytest.raises(ValueError, match=r"no group 'node0'"):
        comm.all_reduce(ints, group="node0")
    with pytest.raises(RuntimeError, match=r"no parameters were added"):
        comm.allreduce()
    with pytest.raises(TypeError, match=r"tuple \(ctx, \{name: Variable\}\)"):
        comm.add_context_and_parameters({"a": var})
    fresh = type(comm)(None)
    with pytest.raises(RuntimeError, match=r"call comm.init\(\) first"):
        fresh.rank  # noqa: B018 - the property is what is checked


def test_launched_by_mpirun_without_mpi4py_is_refused(monkeypatch):
    import symcompile.communicators as C

    _no_mpi4py(monkeypatch)
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match=r"one of 2 .*OMPI_COMM_WORLD_SIZE=2.*"
                                           r"pip install 'symcompile\[mpi\]'"):
        C.MultiProcessDataParalellCommunicator(None).init()


def test_bad_timeout_is_named(monkeypatch):
    import symcompile.communicators as C

    monkeypatch.setenv("SYMCOMPILE_COMM_TIMEOUT", "soon")
    with pytest.raises(ValueError, match=r"SYMCOMPILE_COMM_TIMEOUT='soon'"):
        C.timeout_seconds()


def test_packing_makes_one_buffer_per_dtype_and_bounded_chunks():
    from symcompile.frontend.communicators import Packer

    arrays = [np.ones((3, 4), np.float32), np.ones(5, np.float32), np.ones(2, np.float64)]
    groups = Packer.by_dtype(arrays)
    assert [len(g) for g in groups.values()] == [2, 1]
    assert [len(run) for run in Packer.chunks(groups[np.dtype(np.float32)], None)] == [2]
    assert [len(run) for run in Packer.chunks(groups[np.dtype(np.float32)], 12)] == [1, 1]
    packer = Packer()
    flat = packer.pack(groups[np.dtype(np.float32)])
    assert flat.shape == (17,) and flat.flags.c_contiguous
    flat *= 2
    Packer.unpack(flat, groups[np.dtype(np.float32)])
    assert arrays[0].sum() == 24 and arrays[1].sum() == 10
    assert packer.pack(groups[np.dtype(np.float32)]).base is flat.base  # reused


# --- under mpirun ---------------------------------------------------------------------------

def mpirun_command(ranks: int) -> list[str] | None:
    """`mpirun -n <ranks>` with the flags a container's root needs, or None without MPI."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None
    mpirun = shutil.which("mpirun")
    if mpirun is None:
        return None
    command = [mpirun, "-n", str(ranks)]
    version = subprocess.run([mpirun, "--version"], capture_output=True, text=True).stdout
    if "Open MPI" in version:
        command += ["--oversubscribe", "--bind-to", "none"]
        if os.geteuid() == 0:
            command.append("--allow-run-as-root")
    return command


def mpi_environment(**extra) -> dict[str, str]:
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               OMPI_MCA_btl_vader_single_copy_mechanism="none",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                       os.environ.get("PYTHONPATH")])))
    env.update(extra)
    return env


def run_ranks(ranks: int, *arguments: str, timeout: float = TIMEOUT, **env):
    command = mpirun_command(ranks)
    if command is None:
        pytest.skip("needs mpi4py and mpirun (pip install 'symcompile[mpi]')")
    return subprocess.run([*command, sys.executable, *arguments], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env=mpi_environment(**env))


@pytest.mark.parametrize("ranks", [2, 4])
def test_collectives_on_mpi(ranks):
    done = run_ranks(ranks, __file__, "collectives")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(re.findall(r"rank\d+-ok", done.stdout)) == [f"rank{r}-ok" for r in range(ranks)]


def test_a_hung_rank_ends_the_job_with_the_timeout():
    done = run_ranks(2, __file__, "hang", timeout=TIMEOUT, SYMCOMPILE_COMM_TIMEOUT="2")
    assert done.returncode != 0
    assert "rank 0 of 2 waited" in done.stderr and "all_reduce" in done.stderr, done.stderr


def test_an_exception_on_one_rank_ends_the_job_at_once():
    """Not a hang in MPI_Finalize: the failing rank aborts the job (no timeout needed)."""
    done = run_ranks(2, __file__, "raise", timeout=TIMEOUT, SYMCOMPILE_COMM_TIMEOUT="600")
    assert done.returncode != 0
    assert "rank 1 of 2 stopped on an uncaught exception" in done.stderr, done.stderr[-3000:]
    assert "ValueError: rank 1 fails" in done.stderr


def _collectives() -> None:
    """Each rank r holds known values; check what every collective leaves on each."""
    import symcompile as nn
    import symcompile.communicators as C
    from symcompile.ext_utils import get_extension_context

    comm = C.MultiProcessDataParalellCommunicator(get_extension_context("cpu"))
    comm.init()
    r, n = comm.rank, comm.size
    assert n == int(os.environ["OMPI_COMM_WORLD_SIZE"]), (n, os.environ)
    assert 0 <= comm.local_rank < n

    def arrays():
        return [nn.NdArray.from_numpy_array(np.full((3, 2), r + 1, np.float32)),
                nn.NdArray.from_numpy_array(np.arange(5, dtype=np.float32) * (r + 1)),
                nn.NdArray.from_numpy_array(np.full(2, r, np.float64))]

    total = n * (n + 1) / 2  # sum of r + 1 over the ranks
    for inplace in (False, True):
        a = arrays()
        comm.all_reduce(a, division=False, inplace=inplace)
        np.testing.assert_array_equal(a[0].data, np.full((3, 2), total))
        np.testing.assert_array_equal(a[1].data, np.arange(5) * total)
        np.testing.assert_array_equal(a[2].data, np.full(2, total - n))
        assert a[0].dtype == np.float32 and a[2].dtype == np.float64
        a = arrays()
        comm.all_reduce(a[:2], division=True, inplace=inplace)
        np.testing.assert_array_equal(a[0].data, np.full((3, 2), np.float32(total) / n))
    a = arrays()
    comm.bcast(a, src=n - 1)
    np.testing.assert_array_equal(a[0].data, np.full((3, 2), n))
    a = arrays()
    comm.reduce(a[0], dst=1, division=True)
    np.testing.assert_array_equal(a[0].data, np.full((3, 2), total / n if r == 1 else r + 1))
    single = nn.NdArray.from_numpy_array(np.full(4, r, np.float32))
    gathered = [nn.NdArray((4,)) for _ in range(n)]
    comm.all_gather(single, gathered)
    for source, array in enumerate(gathered):
        np.testing.assert_array_equal(array.data, np.full(4, source))
    pieces = [nn.NdArray.from_numpy_array(np.full(4, 10 * r + k, np.float32)) for k in range(n)]
    comm.reduce_scatter(pieces, single)
    np.testing.assert_array_equal(single.data, np.full(4, 10 * total - 10 * n + r * n))
    comm.new_group(("pair", [0, 1]))
    if r < 2:
        b = arrays()[0]
        comm.all_reduce(b, group="pair")
        np.testing.assert_array_equal(b.data, np.full((3, 2), 3))
    assert comm.find_group("pair") == [0, 1]
    # gradients reduced together move into one buffer, which later calls reduce in place
    params = [nn.Variable((3, 2), need_grad=True), nn.Variable((5,), need_grad=True)]
    for step in range(3):
        params[0].g = np.full((3, 2), r + step, np.float32)
        params[1].g = np.arange(5, dtype=np.float32) * (r + 1)
        comm.all_reduce([p.grad for p in params], division=True)
        np.testing.assert_array_equal(params[0].g, np.full((3, 2), np.float32(
            n * step + n * (n - 1) / 2) / n))
        np.testing.assert_array_equal(params[1].g, np.arange(5, dtype=np.float32)
                                      * np.float32(total) / n)
    bases = [p._storage._grad.base for p in params]
    assert bases[0] is not None and all(base is bases[0] for base in bases), bases
    comm.barrier()
    print(f"rank{r}-ok", flush=True)


def _hang() -> None:
    """Rank 1 stops taking part (alive, never reaching the collective); rank 0 waits."""
    import time

    import symcompile as nn
    import symcompile.communicators as C

    comm = C.MultiProcessDataParalellCommunicator(None)
    comm.init()
    if comm.rank == 1:
        time.sleep(3 * TIMEOUT)
    comm.all_reduce([nn.NdArray.from_numpy_array(np.ones(3, np.float32))])


def _raise() -> None:
    import symcompile as nn
    import symcompile.communicators as C

    comm = C.MultiProcessDataParalellCommunicator(None)
    comm.init()
    if comm.rank == 1:
        raise ValueError("rank 1 fails")
    comm.all_reduce([nn.NdArray.from_numpy_array(np.ones(3, np.float32))])


if __name__ == "__main__":
    {"collectives": _collectives, "hang": _hang, "raise": _raise}[sys.argv[1]]()
