"""F.sync_batch_normalization / PF.sync_batch_normalization: batch normalization with the
statistics of every process's batch.

Several processes are simulated by threads that call one generated module, each with
its own batch and an `all_reduce` summing over the threads; the results are compared
with batch normalization of the concatenated batches written in NumPy (the mean and
variance over every process's samples, beta's and gamma's gradients the global sums on
each process, x's that of the sum of the processes' losses), and x's gradient with
central differences of that sum. One process (all_reduce None, or the one-process
communicator) is F.batch_normalization. With mpi4py and mpirun, two real processes
train through the runtime (``python tests/test_sync_batch_normalization.py ranks``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import symcompile as nn
import symcompile.communicators as C
import symcompile.functions as F
import symcompile.parametric_functions as PF
import symcompile.solvers as S
from symcompile.tools.compile import compile as compile_graph

sys.path.insert(0, str(Path(__file__).resolve().parent))
from numpy_only import BLOCKER  # noqa: E402
from test_communicators import run_ranks  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # one process, whatever is installed
    nn.clear_parameters()
    yield
    nn.clear_parameters()


def _comm():
    comm = C.MultiProcessDataParallelCommunicator()
    comm.init()
    return comm


class Threads:
    """`size` threads standing for processes: all_reduce sums over them (in rank order,
    so every one receives the same bits)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.barrier = threading.Barrier(size, timeout=60)
        self.slots = [None] * size
        self.calls = [0] * size

    def all_reduce(self, rank: int):
        def all_reduce(array, group):
            assert group == "world", group
            self.calls[rank] += 1
            self.slots[rank] = np.array(array, copy=True)
            self.barrier.wait()
            total = self.slots[0].copy()
            for other in self.slots[1:]:
                total += other
            self.barrier.wait()
            return total
        return all_reduce

    def run(self, function) -> list:
        """[function(rank, all_reduce) for each rank], run at once."""
        results, errors = [None] * self.size, []

        def body(rank):
            try:
                results[rank] = function(rank, self.all_reduce(rank))
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)
                self.barrier.abort()

        threads = [threading.Thread(target=body, args=(r,)) for r in range(self.size)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return results


def _module(tmp_path, shape, axes=(1,), dtype="float64", backend="numpy", solver=None,
            output_stat=False):
    """A compiled graph: loss = sum(weights * sync_batch_normalization(x)) (+ the
    statistics' weighted sums with output_stat); arguments x, weights, beta, gamma,
    mean, variance."""
    x = nn.Variable(shape, need_grad=True)
    x.name = "x"
    weights = nn.Variable(shape)
    weights.name = "weights"
    out = PF.sync_batch_normalization(x, _comm(), axes=list(axes), output_stat=output_stat)
    if output_stat:
        y, mean, variance = out
        loss = F.sum(y * weights) + F.sum(mean * 3.0) + F.sum(variance * 5.0)
    else:
        loss = F.sum(out * weights)
    loss.name = "loss"
    result = compile_graph(loss, output_dir=tmp_path, dtype=dtype, backend=backend,
                           solver=solver, name=f"sync_{backend}_{dtype}_{len(shape)}")
    return result.module


def _reference(xs, dys, beta, gamma, mean, var, axes, eps=1e-5, decay=0.9):
    """Batch normalization of the concatenated batches (axis 0), in float64: each rank's
    y and dx, the global d beta and d gamma, the new running statistics."""
    full, dy = np.concatenate(xs), np.concatenate(dys)
    reduced = tuple(i for i in range(full.ndim) if i not in axes)
    n = np.prod([full.shape[i] for i in reduced])
    mu = full.mean(axis=reduced, keepdims=True)
    sigma2 = full.var(axis=reduced, keepdims=True)
    xhat = (full - mu) / np.sqrt(sigma2 + eps)
    y = xhat * gamma + beta
    dxhat = dy * gamma
    dx = (dxhat - dxhat.mean(axis=reduced, keepdims=True)
          - xhat * (dxhat * xhat).mean(axis=reduced, keepdims=True)) / np.sqrt(sigma2 + eps)
    dbeta = dy.sum(axis=reduced, keepdims=True)
    dgamma = (dy * xhat).sum(axis=reduced, keepdims=True)
    bounds = np.cumsum([0] + [len(x) for x in xs])
    pieces = list(zip(bounds, bounds[1:], strict=False))
    return ([y[a:b] for a, b in pieces], [dx[a:b] for a, b in pieces], dbeta, dgamma,
            decay * mean + (1 - decay) * mu, decay * var + (1 - decay) * sigma2 * n / (n - 1))


def _data(shapes, axes, seed=0):
    rng = np.random.default_rng(seed)
    xs = [rng.normal(1.0, 2.0, s) for s in shapes]
    dys = [rng.normal(size=s) for s in shapes]
    stat = tuple(d if i in axes else 1 for i, d in enumerate(shapes[0]))
    beta, gamma = rng.normal(size=stat), rng.uniform(0.5, 1.5, stat)
    mean, var = rng.normal(size=stat), rng.uniform(0.5, 1.5, stat)
    return xs, dys, beta, gamma, mean, var


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
@pytest.mark.parametrize("shape, axes, size", [
    ((3, 4, 2, 3), (1,), 2),    # NCHW
    ((2, 3, 5), (2,), 3),       # channel last, three processes
    ((4, 3, 2), (1, 2), 2),     # statistics per (channel, position)
])
def test_processes_see_the_batch_norm_of_all_their_batches(tmp_path, backend, shape, axes,
                                                           size):
    module = _module(tmp_path, shape, axes, backend=backend)
    xs, dys, beta, gamma, mean, var = _data([shape] * size, axes)
    group = Threads(size)

    def rank(r, all_reduce):
        m, v = mean.copy(), var.copy()
        loss, gx, gbeta, ggamma = module.gradient(xs[r].copy(), dys[r].copy(), beta.copy(),
                                                  gamma.copy(), m, v, all_reduce=all_reduce)
        return float(loss), np.asarray(gx), np.asarray(gbeta), np.asarray(ggamma), m, v

    results = group.run(rank)
    ys, dxs, dbeta, dgamma, new_mean, new_var = _reference(xs, dys, beta, gamma, mean, var,
                                                           axes)
    for r, (loss, gx, gbeta, ggamma, m, v) in enumerate(results):
        np.testing.assert_allclose(loss, np.sum(ys[r] * dys[r]), rtol=1e-10)
        np.testing.assert_allclose(gx, dxs[r], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(gbeta, dbeta, rtol=1e-10)  # global, on every process
        np.testing.assert_allclose(ggamma, dgamma, rtol=1e-10)
        np.testing.assert_allclose(m, new_mean, rtol=1e-10)
        np.testing.assert_allclose(v, new_var, rtol=1e-10)
    # one all-reduce of the statistics forward, one of their cotangents and one each
    # for beta's and gamma's gradients backward
    assert group.calls == [4] * size


def test_x_gradient_is_that_of_the_sum_of_the_losses(tmp_path):
    """Central differences of sum over processes of loss_r, moving one element of one
    process's batch (which moves every process's statistics)."""
    shape, axes = (2, 3, 2), (1,)
    module = _module(tmp_path, shape, axes)
    xs, dys, beta, gamma, mean, var = _data([shape, shape], axes, seed=3)

    def total(batches, function):
        def rank(r, all_reduce):
            return function(batches[r].copy(), dys[r], beta, gamma, mean.copy(), var.copy(),
                            all_reduce=all_reduce)
        return Threads(2).run(rank)

    grads = [np.asarray(out[1]) for out in total(xs, module.gradient)]
    h = 1e-6
    for r, index in [(0, (0, 1, 1)), (1, (1, 2, 0)), (0, (1, 0, 0))]:
        plus = [x.copy() for x in xs]
        minus = [x.copy() for x in xs]
        plus[r][index] += h
        minus[r][index] -= h
        numeric = (sum(float(v) for v in total(plus, module.forward))
                   - sum(float(v) for v in total(minus, module.forward))) / (2 * h)
        assert grads[r][index] == pytest.approx(numeric, rel=1e-6, abs=1e-8)


def test_unequal_batches_pool_every_sample(tmp_path):
    """Processes with batches of different sizes: the statistics are those of all the
    samples (nnabla averages the processes' means, which equals this for equal batches)."""
    axes = (1,)
    xs, dys, beta, gamma, mean, var = _data([(3, 2, 2), (1, 2, 2)], axes, seed=5)
    modules = []
    for shape in ((3, 2, 2), (1, 2, 2)):
        nn.clear_parameters()
        modules.append(_module(tmp_path, shape, axes))

    def rank(r, all_reduce):
        m = mean.copy()
        out = modules[r].gradient(xs[r], dys[r], beta, gamma, m, var.copy(),
                                  all_reduce=all_reduce)
        return np.asarray(out[1]), m

    results = Threads(2).run(rank)
    _, dxs, _, _, new_mean, _ = _reference(xs, dys, beta, gamma, mean, var, axes)
    for r, (gx, m) in enumerate(results):
        np.testing.assert_allclose(gx, dxs[r], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(m, new_mean, rtol=1e-10)


def test_output_stat_gives_the_processes_statistics(tmp_path):
    """The mean and variance outputs are global; their own cotangents reach x from this
    process only (nnabla's backward adds dmean/n and dvar*2(x - mean)/n, not summed)."""
    shape, axes = (2, 2, 3), (1,)
    module = _module(tmp_path, shape, axes, output_stat=True)
    xs, dys, beta, gamma, mean, var = _data([shape, shape], axes, seed=7)

    def rank(r, all_reduce):
        return module.gradient(xs[r], dys[r], beta, gamma, mean.copy(), var.copy(),
                               all_reduce=all_reduce)

    results = Threads(2).run(rank)
    full = np.concatenate(xs)
    mu = full.mean(axis=(0, 2), keepdims=True)
    sigma2 = full.var(axis=(0, 2), keepdims=True)
    _, dxs, _, _, _, _ = _reference(xs, dys, beta, gamma, mean, var, axes)
    n = full.shape[0] * full.shape[2]
    ys = [(x - mu) / np.sqrt(sigma2 + 1e-5) * gamma + beta for x in xs]
    for r, (loss, gx, *_) in enumerate(results):
        expected = np.sum(ys[r] * dys[r]) + 3 * mu.sum() + 5 * sigma2.sum()
        assert float(loss) == pytest.approx(expected, rel=1e-10)
        local = dxs[r] + 3.0 / n + 5.0 * 2 * (xs[r] - mu) / n
        np.testing.assert_allclose(np.asarray(gx), local, rtol=1e-9, atol=1e-12)


def test_the_module_runs_with_numpy_alone(tmp_path):
    """Two threads drive the generated module where sympy, jinja2 and symcompile cannot be
    imported; the batch statistics are the pooled ones."""
    module = _module(tmp_path, (2, 3, 2), (1,), dtype="float32", solver="sgd")
    script = BLOCKER + textwrap.dedent(f"""
        import importlib.util, threading
        import numpy as np
        spec = importlib.util.spec_from_file_location("m", {module.__file__!r})
        m = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(m)
        assert m.PROCESS_GROUPS == ("world",), m.PROCESS_GROUPS
        barrier, slots, out = threading.Barrier(2), [None, None], [None, None]
        def reducer(rank):
            def all_reduce(array, group):
                slots[rank] = array.copy()
                barrier.wait()
                total = slots[0] + slots[1]
                barrier.wait()
                return total
            return all_reduce
        rng = np.random.default_rng(0)
        xs = [rng.normal(size=(2, 3, 2)).astype(np.float32) for _ in range(2)]
        def rank(r):
            params = m.init_parameters(seed=0)
            args = [xs[r], np.ones((2, 3, 2), np.float32)] + [
                params[spec["argument"]] for spec in m.PARAMETERS.values()]
            out[r] = (m.sgd_step(*args, lr=0.1, all_reduce=reducer(r)), args)
        threads = [threading.Thread(target=rank, args=(r,)) for r in range(2)]
        [t.start() for t in threads]; [t.join() for t in threads]
        full = np.concatenate(xs)
        running_mean = 0.1 * full.mean(axis=(0, 2), keepdims=True)
        for loss, args in out:
            np.testing.assert_allclose(args[4], running_mean, rtol=1e-5, atol=1e-7)
        # beta's gradient: the global sum of the ones of a channel (8), on both
        np.testing.assert_allclose(out[0][1][2], np.full((1, 3, 1), -0.1 * 8), rtol=1e-6)
        np.testing.assert_array_equal(out[0][1][2], out[1][1][2])
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


@pytest.mark.parametrize("axes, shape", [([1], (4, 3, 2, 2)), ([2], (3, 2, 4)),
                                         ([0, 2], (2, 3, 2))])
@pytest.mark.parametrize("batch_stat, output_stat", [(True, False), (True, True),
                                                     (False, False)])
def test_one_process_is_batch_normalization(axes, shape, batch_stat, output_stat):
    """The one-process communicator: F.batch_normalization's values, gradients and
    running statistics (float32: the one-pass variance rounds otherwise)."""
    rng = np.random.default_rng(1)
    x_values = rng.normal(0.5, 1.0, shape).astype(np.float32)
    gamma = rng.uniform(0.5, 1.5, [d if i in axes else 1 for i, d in enumerate(shape)])
    results = []
    for sync in (True, False):
        nn.clear_parameters()
        x = nn.Variable.from_numpy_array(x_values.copy(), need_grad=True)
        with nn.parameter_scope("layer"):
            if sync:
                out = PF.sync_batch_normalization(x, _comm(), axes=axes, batch_stat=batch_stat,
                                                  output_stat=output_stat)
            else:
                out = PF.batch_normalization(x, axes=axes, batch_stat=batch_stat,
                                             output_stat=output_stat)
        outs = out if output_stat else (out,)
        params = nn.get_parameters(grad_only=False)
        params["layer/bn/gamma"].d = gamma
        loss = sum((F.sum(F.tanh(o) * (k + 1.0)) for k, o in enumerate(outs)), F.constant(0))
        loss.forward()
        loss.backward()
        results.append([o.d.copy() for o in outs] + [x.g.copy()]
                       + [p.d.copy() for p in params.values()]
                       + [p.g.copy() for p in params.values() if p.need_grad])
    for sync_value, value in zip(*results, strict=True):
        np.testing.assert_allclose(sync_value, value, rtol=1e-4, atol=3e-5)


def test_training_graph_and_inference_graph_share_parameters():
    comm = _comm()
    x = nn.Variable.from_numpy_array(np.random.default_rng(0).normal(size=(4, 2, 3)))
    train = PF.sync_batch_normalization(x, comm)
    train.forward()
    test = PF.sync_batch_normalization(x, comm, batch_stat=False)
    test.forward()
    params = nn.get_parameters(grad_only=False)
    assert sorted(params) == ["bn/beta", "bn/gamma", "bn/mean", "bn/var"]
    expected = (x.d - params["bn/mean"].d) / np.sqrt(params["bn/var"].d + 1e-5)
    np.testing.assert_allclose(test.d, expected, rtol=1e-5, atol=1e-6)
    assert test.parent.info.type_name == "SyncBatchNormalization"


class Counting:
    """A communicator of one process that counts its all-reduces."""

    def __init__(self) -> None:
        self.calls = 0

    def all_reduce_sum(self, array, group="world"):
        self.calls += 1
        return array.copy()

    @staticmethod
    def find_group(group):
        return [0] if group == "world" else []


def test_a_recompute_on_one_process_replays_the_sums_of_its_pass():
    """Reading an intermediate's .d or .g the first time recomputes the latest pass on
    this process alone: it reuses what that pass's all-reduces received, sending
    nothing (the other processes would never answer)."""
    comm = Counting()
    x = nn.Variable.from_numpy_array(np.random.default_rng(4).normal(size=(4, 3)),
                                     need_grad=True)
    h = F.tanh(x)
    y = PF.sync_batch_normalization(h, comm)
    z = F.sin(y)
    loss = F.sum(z * z)
    loss.forward()
    loss.backward()
    # at once, not deferred to the first touch of a leaf (which one process alone may
    # make): statistics forward; their cotangents, beta's and gamma's gradients backward
    calls = comm.calls
    assert calls == 4
    values, gradients = z.d.copy(), y.g.copy()
    assert comm.calls == calls
    nn.clear_parameters()
    reference_x = nn.Variable.from_numpy_array(x.d.copy(), need_grad=True)
    reference = PF.batch_normalization(F.tanh(reference_x))
    F.sum(F.sin(reference) ** 2).forward()
    np.testing.assert_allclose(values, np.sin(reference.d), rtol=1e-5, atol=1e-6)
    expected = 2 * np.sin(reference.d) * np.cos(reference.d)
    np.testing.assert_allclose(gradients, expected, rtol=1e-5, atol=1e-6)


def test_a_value_read_after_an_update_is_that_of_the_latest_pass():
    """After update() the parameters differ from those the pass read: the recompute uses
    the pass's sums in their order (nothing sent), and the new weights, as the runtime
    recomputes a plain graph."""
    comm = Counting()
    x = nn.Variable.from_numpy_array(np.random.default_rng(6).normal(size=(4, 5)))
    h = PF.affine(x, 3)
    loss = F.sum(F.sin(PF.sync_batch_normalization(h, comm)))
    solver = S.Sgd(lr=0.5)
    solver.set_parameters(nn.get_parameters())
    loss.forward()
    solver.zero_grad()
    loss.backward()
    solver.update()
    calls = comm.calls
    params = nn.get_parameters()
    np.testing.assert_allclose(h.d, x.d @ params["affine/W"].d + params["affine/b"].d,
                               rtol=1e-5, atol=1e-6)
    assert comm.calls == calls


def test_bad_arguments_are_named():
    x = nn.Variable((4, 3))
    beta, gamma = nn.Variable((1, 3)), nn.Variable((1, 3))
    mean, var = nn.Variable((1, 3)), nn.Variable((1, 3))
    with pytest.raises(TypeError, match=r"F.sync_batch_normalization: comm must be a "
                                        r"communicator .*got NoneType"):
        F.sync_batch_normalization(x, beta, gamma, mean, var, None)
    with pytest.raises(ValueError, match=r"no group 'pair': its groups are \['world'\]; "
                                         r"make one with comm.new_group"):
        F.sync_batch_normalization(x, beta, gamma, mean, var, _comm(), group="pair")
    with pytest.raises(ValueError, match=r"no group 'world': call comm.init\(\) first"):
        F.sync_batch_normalization(x, beta, gamma, mean, var,
                                   C.MultiProcessDataParallelCommunicator())
    with pytest.raises(ValueError, match=r"mean of shape \(1, 4\) does not fit"):
        F.sync_batch_normalization(x, beta, gamma, nn.Variable((1, 4)), var, _comm())
    first = F.sync_batch_normalization(x, beta, gamma, mean, var, _comm())
    other = F.sync_batch_normalization(x, beta, gamma, nn.Variable((1, 3)),
                                       nn.Variable((1, 3)), _comm())
    with pytest.raises(ValueError, match=r"group 'world' is of another communicator"):
        F.sum(first + other).forward()


def test_all_reduce_returning_another_shape_is_refused(tmp_path):
    module = _module(tmp_path, (2, 3), (1,))
    xs, dys, beta, gamma, mean, var = _data([(2, 3)], (1,))
    with pytest.raises(ValueError, match=r"all_reduce\(x, 'world'\) returned an array of "
                                         r"shape \(3,\) for x of shape \(7,\)"):
        module.forward(xs[0], dys[0], beta, gamma, mean, var,
                       all_reduce=lambda array, group: array[:3])


def test_a_file_holds_it_for_inference_as_batch_normalization(tmp_path):
    """nnabla's format cannot hold a communicator (its message is empty): a file's
    SyncBatchNormalization reads as F.batch_normalization with batch_stat=False, which it
    then is, and is refused with batch_stat=True."""
    from symcompile.frontend.nnp_network import NnpError
    from symcompile.utils import save
    from symcompile.utils.nnp_graph import NnpLoader

    x = nn.Variable.from_numpy_array(np.random.default_rng(2).normal(size=(4, 3)))
    x.name = "x"
    for batch_stat in (False, True):
        nn.clear_parameters()
        y = PF.sync_batch_normalization(x, _comm(), batch_stat=batch_stat)
        params = nn.get_parameters(grad_only=False)
        params["bn/mean"].d = [[0.5, -1.0, 2.0]]
        params["bn/var"].d = [[2.0, 0.5, 1.5]]
        path = tmp_path / f"sync_{batch_stat}.nnp"
        save.save(path, {"networks": [{"name": "net", "batch_size": 4, "outputs": {"y": y},
                                       "names": {"x": x}}],
                         "executors": [{"name": "runtime", "network": "net"}]})
        if batch_stat:
            nn.clear_parameters()
            no_bias = PF.sync_batch_normalization(x, _comm(), no_bias=True)
            with pytest.raises(NnpError, match=r"nnabla's SyncBatchNormalization needs both "
                                               r"beta and gamma"):
                save.save(tmp_path / "no_bias.nnp", {"networks": [{
                    "name": "net", "batch_size": 4, "outputs": {"y": no_bias},
                    "names": {"x": x}}]})
            with pytest.raises(NnpError, match=r"SyncBatchNormalization, group 'world', "
                                               r"batch_stat=True\) sums its statistics"):
                NnpLoader(path).get_network("net")
            continue
        y.forward()
        net = NnpLoader(path).get_network("net")
        read = net.outputs["y"]
        assert read.parent.info.type_name == "BatchNormalization"
        net.inputs["x"].d = x.d
        read.forward()
        np.testing.assert_allclose(read.d, y.d, rtol=1e-6)


# --- under mpirun ---------------------------------------------------------------------------

def test_two_processes_train_through_the_runtime(monkeypatch):
    monkeypatch.delitem(sys.modules, "mpi4py")  # (whether it is installed: see run_ranks)
    done = run_ranks(2, __file__, "ranks", timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # (mpirun may forward the ranks' lines run together)
    assert sorted(re.findall(r"rank\d-ok", done.stdout)) == ["rank0-ok", "rank1-ok"], done.stdout


def _ranks() -> None:
    """Each rank trains on its half of a batch with the nnabla loop (forward, backward,
    all_reduce of the gradients, update); rank 0 checks the values against one process's
    batch normalization of the whole batch, and both that their parameters agree."""
    comm = C.MultiProcessDataParallelCommunicator()
    comm.init()
    r = comm.rank
    rng = np.random.default_rng(0)
    full = rng.normal(1.0, 2.0, (4, 3, 2)).astype(np.float32)
    dy = rng.normal(size=(4, 3, 2)).astype(np.float32)
    x = nn.Variable.from_numpy_array(full[2 * r:2 * r + 2].copy(), need_grad=True)
    weights = nn.Variable.from_numpy_array(dy[2 * r:2 * r + 2].copy())
    y = PF.sync_batch_normalization(x, comm)
    loss = F.sum(y * weights)
    solver = S.Sgd(lr=0.1)
    solver.set_parameters(nn.get_parameters())
    params = nn.get_parameters(grad_only=False)
    ys, dxs, dbeta, dgamma, new_mean, new_var = _reference(
        [full[:2].astype(np.float64), full[2:].astype(np.float64)],
        [dy[:2].astype(np.float64), dy[2:].astype(np.float64)],
        np.zeros((1, 3, 1)), np.ones((1, 3, 1)), np.zeros((1, 3, 1)), np.ones((1, 3, 1)),
        (1,))
    loss.forward()
    solver.zero_grad()
    loss.backward()
    np.testing.assert_allclose(y.d, ys[r], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(x.g, dxs[r], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(params["bn/beta"].g, dbeta, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(params["bn/gamma"].g, dgamma, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(params["bn/mean"].d, new_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(params["bn/var"].d, new_var, rtol=1e-5, atol=1e-6)
    comm.all_reduce([p.grad for p in nn.get_parameters().values()], division=True)
    solver.update()
    np.testing.assert_allclose(params["bn/beta"].d, -0.1 * dbeta, rtol=1e-5, atol=1e-5)
    for _ in range(3):  # the fused loop, and parameters stay equal across the ranks
        loss.forward()
        solver.zero_grad()
        loss.backward()
        comm.all_reduce([p.grad for p in nn.get_parameters().values()], division=True)
        solver.update()
    gathered = comm.transport.allgather_object(
        {k: v.d.tobytes() for k, v in params.items()}, "parameters")
    assert gathered[0] == gathered[1]
    # symcompile.distributed.train drives a generated module with the communicator too:
    # the running mean after one step is that of the whole batch, on both ranks
    import tempfile

    from symcompile.distributed import train
    nn.clear_parameters()
    y = PF.sync_batch_normalization(nn.Variable((2, 3, 2)), comm)
    weights_in = nn.Variable((2, 3, 2))
    loss = F.sum(y * weights_in)
    with tempfile.TemporaryDirectory() as where:
        module = compile_graph(loss, output_dir=where, name="sync_train").module
    inputs = list(module.INPUTS)
    batch = {inputs[0]: full[2 * r:2 * r + 2], inputs[1]: dy[2 * r:2 * r + 2]}
    result = train(module, iter([batch]), steps=1, comm=comm, hyper={"lr": 0.1})
    mean_argument = module.PARAMETERS["bn/mean"]["argument"]
    np.testing.assert_allclose(result.params[mean_argument], new_mean, rtol=1e-5, atol=1e-6)
    comm.barrier()
    print(f"rank{r}-ok", flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["ranks"]:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        _ranks()
