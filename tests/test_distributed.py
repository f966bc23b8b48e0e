"""Data-parallel training on several processes: nnabla's loop with a communicator
(examples/distributed_mlp.py, run unchanged) and `symcompile.distributed.train` on a
generated module.

Each multi-process test runs `mpirun -n N` (skipped without mpi4py and mpirun) on this
file as the program (``python tests/test_distributed.py <mode> ...``), then checks what
the ranks saved: the parameters bit-identical on every rank, and equal within float32
tolerance to one process trained on the global batch (every rank's batch of each step,
in rank order). A rank killed mid-training ends the job with an error, not a hang.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_communicators import TIMEOUT, _no_mpi4py, run_ranks  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "distributed_mlp.py"
BATCH, STEPS = 8, 12  # per rank


def _example():
    spec = importlib.util.spec_from_file_location("distributed_mlp_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load(path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _example_arguments(out) -> list[str]:
    return ["-b", str(BATCH), "-i", str(STEPS), "-m", str(out), "--model-save-interval", "4"]


def _reference_nnabla_loop(ranks: int) -> dict[str, np.ndarray]:
    """One process, the example's network and SGD, on every rank's batches together."""
    import symcompile as nn
    import symcompile.functions as F
    import symcompile.solvers as S

    example = _example()
    shards = [example.data_iterator(BATCH, 313).slice(rng=None, num_of_slices=ranks,
                                                      slice_pos=r) for r in range(ranks)]
    nn.seed(313)
    nn.clear_parameters()
    x = nn.Variable((BATCH * ranks, 64))
    t = nn.Variable((BATCH * ranks, 1))
    loss = F.mean(F.softmax_cross_entropy(example.mlp(x), t))
    solver = S.Sgd(0.5)
    solver.set_parameters(nn.get_parameters())
    for _ in range(STEPS):
        batches = [shard.next() for shard in shards]
        x.d = np.concatenate([b[0] for b in batches])
        t.d = np.concatenate([b[1] for b in batches])
        loss.forward()
        solver.zero_grad()
        loss.backward()
        solver.update()
    return {k: v.d.copy() for k, v in nn.get_parameters().items()}


def _assert_ranks_agree_and_match(out: Path, ranks: int, reference: dict) -> None:
    saved = [_load(out / f"rank{r}.npz") for r in range(ranks)]
    for r in range(1, ranks):
        assert saved[r].keys() == saved[0].keys()
        for key in saved[0]:
            assert saved[r][key].tobytes() == saved[0][key].tobytes(), (r, key)
    for key, value in reference.items():
        np.testing.assert_allclose(saved[0][key], value, rtol=2e-5, atol=2e-6, err_msg=key)


def test_the_example_runs_alone_as_one_process(tmp_path, monkeypatch):
    """Without mpirun the script trains in one process (communicator of size 1)."""
    _no_mpi4py(monkeypatch)  # (this process never starts MPI)
    example = _example()
    params = example.main(_example_arguments(tmp_path / "alone"))
    assert (tmp_path / "alone" / "Training-loss.series.txt").exists()
    reference = _reference_nnabla_loop(1)
    for key, value in reference.items():
        np.testing.assert_array_equal(params[key].d, value)


@pytest.mark.parametrize("ranks", [2, 4])
def test_the_example_on_mpi_equals_one_process_on_the_global_batch(tmp_path, ranks):
    out = tmp_path / "run"
    done = run_ranks(ranks, __file__, "example", str(out), *_example_arguments(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _assert_ranks_agree_and_match(out, ranks, _reference_nnabla_loop(ranks))
    # monitors and saving on rank 0 only, as nnabla's scripts do
    series = (out / "Training-loss.series.txt").read_text().split("\n")
    assert [line.split()[0] for line in series if line] == ["9"]
    assert sorted(p.name for p in out.iterdir()) == [
        "Training-loss.series.txt", "Training-time.timer.txt", "parameters.h5",
        *[f"rank{r}.npz" for r in range(ranks)]]


def test_the_example_is_the_script_mpirun_runs(tmp_path):
    """`mpirun -n 2 python examples/distributed_mlp.py`, exactly as a user runs it."""
    out = tmp_path / "direct"
    done = run_ranks(2, str(EXAMPLE), *_example_arguments(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (out / "parameters.h5").exists() and (out / "Training-loss.series.txt").exists()


def test_a_killed_rank_ends_the_job_and_leaves_whole_checkpoints(tmp_path):
    out = tmp_path / "killed"
    done = run_ranks(2, __file__, "example-kill", str(out), *_example_arguments(out),
                     timeout=TIMEOUT, SYMCOMPILE_COMM_TIMEOUT="5")
    assert done.returncode != 0
    assert "rank 1" in done.stderr or "rank 0 of 2 waited" in done.stderr, done.stderr[-3000:]
    import symcompile as nn

    for path in out.iterdir():  # nothing half-written: every file there loads whole
        assert not path.name.endswith(".tmp"), path
        if path.suffix == ".h5":
            nn.clear_parameters()
            nn.load_parameters(str(path))
            assert len(nn.get_parameters()) == 6


# --- symcompile.distributed.train on a generated module ----------------------------------

FEATURES, CLASSES = 8, 4


def _compile(directory: Path, batch: int, solver=None) -> Path:
    import symcompile as nn
    import symcompile.functions as F
    import symcompile.parametric_functions as PF
    import symcompile.solvers as S

    nn.clear_parameters()
    x = nn.Variable((batch, FEATURES))
    t = nn.Variable((batch, 1))
    h = F.tanh(PF.affine(x, 16, name="hidden"))
    loss = F.mean(F.softmax_cross_entropy(PF.affine(h, CLASSES, name="out"), t))
    solver = S.Adam(alpha=0.01) if solver is None else solver
    result = nn.compile(loss, name=f"dp_mlp_{batch}_{type(solver).__name__.lower()}",
                        output_dir=directory, solver=solver)
    return Path(result.path)


def _import(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _global_batches(steps: int, size: int):
    rng = np.random.RandomState(7)
    x = rng.randn(steps, size, FEATURES).astype(np.float32)
    t = (x[..., :CLASSES].argmax(axis=-1)[..., None]).astype(np.float32)
    return x, t


def _shard(steps: int, ranks: int, rank: int):
    x, t = _global_batches(steps, BATCH * ranks)
    part = slice(rank * BATCH, (rank + 1) * BATCH)
    return [{"x": x[s, part], "t": t[s, part]} for s in range(steps)]


def test_train_alone_checks_its_arguments(tmp_path, monkeypatch):
    import symcompile.distributed as D

    _no_mpi4py(monkeypatch)

    module = _import(_compile(tmp_path, BATCH))
    result = D.train(module, _shard(3, 1, 0), steps=3, hyper={"alpha": 0.02})
    assert result.step == 3 and len(result.losses) == 3
    with pytest.raises(ValueError, match=r"\['lr'\] are not hyper-parameters of adam"):
        D.train(module, _shard(3, 1, 0), steps=3, hyper={"lr": 0.1})
    with pytest.raises(ValueError, match=r"ran out after 3 of 4 steps"):
        D.train(module, _shard(3, 1, 0), steps=4)

    import symcompile.solvers as S

    sgd = _import(_compile(tmp_path, BATCH, S.Sgd(lr=0.1)))
    start = sgd.init_parameters(seed=0)
    result = D.train(sgd, _shard(2, 1, 0), steps=2, params=start, hyper={"lr": 0.5})
    by_hand = {k: v.copy() for k, v in start.items()}
    for batch in _shard(2, 1, 0):
        sgd.sgd_step(**batch, **by_hand, lr=0.5)  # the module's own fused step
    for key, value in by_hand.items():
        np.testing.assert_allclose(result.params[key], value, rtol=1e-6, atol=1e-7)
    forward_only = SimpleNamespace(__name__="forward_only", SOLVER=None, GRAPH_HASH="g",
                                   SOURCE_HASH="s")
    with pytest.raises(ValueError, match=r"forward_only was compiled without a solver"):
        D.train(forward_only, [], steps=1)


@pytest.mark.parametrize("ranks", [2])
def test_train_on_mpi_equals_one_process_on_the_global_batch(tmp_path, ranks, monkeypatch):
    import symcompile.distributed as D

    path = _compile(tmp_path, BATCH)
    out = tmp_path / "helper"
    done = run_ranks(ranks, __file__, "helper", str(path), str(out), str(ranks))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _no_mpi4py(monkeypatch)  # the reference: one process, the one-process communicator
    x, t = _global_batches(STEPS, BATCH * ranks)
    whole = _import(_compile(tmp_path, BATCH * ranks))
    reference = D.train(whole, [{"x": x[s], "t": t[s]} for s in range(STEPS)], steps=STEPS,
                        params=_import(path).init_parameters(seed=0))
    assert (out / "checkpoint.npz").exists() and not list(out.glob("*.tmp"))
    saved = [_import(path).load_checkpoint(out / f"rank{r}.npz") for r in range(ranks)]
    for r in range(ranks):
        assert saved[r][2] == STEPS
        for key in saved[0][0]:
            assert saved[r][0][key].tobytes() == saved[0][0][key].tobytes(), (r, key)
            np.testing.assert_allclose(saved[r][0][key], reference.params[key], rtol=2e-5,
                                       atol=2e-6, err_msg=key)


# --- what each rank runs ------------------------------------------------------------------

def _save_own(out: Path) -> None:
    import symcompile as nn
    import symcompile.communicators as C

    comm = C.MultiProcessDataParalellCommunicator(None)
    comm.init()
    nn.save_parameters(str(out / f"rank{comm.rank}.npz"))


def _run_example(out: str, *argv: str) -> None:
    _example().main(list(argv))
    _save_own(Path(out))


def _run_example_killed(out: str, *argv: str) -> None:
    """The example, but rank 1 is killed (SIGKILL) at its 6th all-reduce."""
    from symcompile.frontend import communicators

    original = communicators.Communicator.all_reduce
    calls = [0]

    def all_reduce(self, *args, **kw):
        calls[0] += 1
        if self.rank == 1 and calls[0] == 6:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, *args, **kw)

    communicators.Communicator.all_reduce = all_reduce
    _example().main(list(argv))


def _run_helper(module_path: str, out: str, ranks: str) -> None:
    import symcompile.communicators as C
    import symcompile.distributed as D

    comm = C.MultiProcessDataParalellCommunicator(None)
    comm.init()
    module = _import(Path(module_path))
    start = module.init_parameters(seed=comm.rank)  # differs: rank 0's is broadcast
    result = D.train(module, _shard(STEPS, int(ranks), comm.rank), steps=STEPS, params=start,
                     comm=comm, check_every=5, checkpoint=str(Path(out) / "checkpoint.npz"),
                     checkpoint_every=4)
    module.save_checkpoint(Path(out) / f"rank{comm.rank}.npz", result.params, result.state,
                           result.step)


if __name__ == "__main__":
    modes = {"example": _run_example, "example-kill": _run_example_killed,
             "helper": _run_helper}
    Path(sys.argv[2] if sys.argv[1] != "helper" else sys.argv[3]).mkdir(parents=True,
                                                                        exist_ok=True)
    modes[sys.argv[1]](*sys.argv[2:])
