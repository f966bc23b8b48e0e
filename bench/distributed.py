"""Data-parallel training on this machine: the 784-256-10 MLP (tanh, softmax
cross-entropy, Sgd 0.1, one BLAS thread per rank) with 1 and 2 MPI ranks.

For each number of ranks it runs ``mpirun -n N python bench/distributed.py --worker`` and
prints, per rank and step (the slowest rank's median of --repeats runs):

  nnabla loop      forward(); zero_grad(); backward(); comm.all_reduce(grads,
                   division=True); update() -- the loop of examples/distributed_mlp.py
                   (its all-reduce timed after the runtime's put-off backward has run)
  train()          symcompile.distributed.train on the generated module (gradient, one
                   all-reduce of one buffer, the module's update rule)
  all_reduce       comm.all_reduce of the 6 gradient NdArrays alone (packing included),
                   and train()'s all-reduce of its buffer, against mpi4py's own
                   Allreduce(IN_PLACE) of one float32 buffer of the same size

with the all-reduce's bytes/s (the gradient's bytes over its time). Each rank trains on
--batch examples per step (weak scaling: N ranks train on N times the batch).

--model cnn runs bench/cnn.py's LeNet (convolutions, batch normalization, pooling) instead.

Usage: python bench/distributed.py [--model mlp|cnn] [--ranks 1 2] [--batch N] [--steps 200]
                                   [--repeats 3]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

DIN, DH, DOUT, LR = 784, 256, 10, 0.1
ROOT = Path(__file__).resolve().parent.parent


def build(batch, model="mlp"):
    """The graph of `model` at `batch`: (loss, x, t) and the shape of one example."""
    import symcompile as nn
    import symcompile.functions as F
    import symcompile.parametric_functions as PF

    nn.seed(0)
    nn.clear_parameters()
    t = nn.Variable((batch, 1))
    if model == "mlp":
        x = nn.Variable((batch, DIN))
        h = F.tanh(PF.affine(x, DH, name="l1"))
        y = PF.affine(h, DOUT, name="l2")
    else:  # bench/cnn.py's LeNet: two convolutions with batch normalization and pooling
        x = nn.Variable((batch, 1, 28, 28))
        h = x
        for i, (maps, pad) in enumerate(((6, 2), (16, 0)), 1):
            h = PF.convolution(h, maps, (5, 5), pad=(pad, pad), name=f"conv{i}")
            h = F.max_pooling(F.relu(PF.batch_normalization(h, name=f"bn{i}")), (2, 2))
        y = PF.affine(F.relu(PF.affine(h, 120, name="fc1")), DOUT, name="fc2")
    loss = F.mean(F.softmax_cross_entropy(y, t))
    return loss, x, t


class TimedTransport:
    """A transport that adds up the seconds its all-reduces take (train()'s)."""

    def __init__(self, transport) -> None:
        self._transport = transport
        self.seconds = 0.0

    def allreduce(self, buffer, what):
        start = time.perf_counter()
        self._transport.allreduce(buffer, what)
        self.seconds += time.perf_counter() - start

    def __getattr__(self, name):
        return getattr(self._transport, name)


class TimedComm:
    def __init__(self, comm, transport) -> None:
        self._comm, self.transport = comm, transport

    def __getattr__(self, name):
        return getattr(self._comm, name)


def worker(args) -> None:
    from mpi4py import MPI

    import symcompile as nn
    import symcompile.communicators as C
    import symcompile.distributed as D
    import symcompile.solvers as S

    comm = C.MultiProcessDataParalellCommunicator(None)
    comm.init()
    world = MPI.COMM_WORLD
    rng = np.random.default_rng(comm.rank)
    loss, x, t = build(args.batch, args.model)
    xs = rng.standard_normal((8, *x.shape)).astype(np.float32)
    ts = rng.integers(0, DOUT, (8, args.batch, 1)).astype(np.float32)

    solver = S.Sgd(LR)
    params = nn.get_parameters()
    solver.set_parameters(params)
    grads = [p.grad for p in params.values()]
    size = sum(p.size for p in params.values())

    def nnabla_loop(steps):
        spent = 0.0
        start = time.perf_counter()
        for i in range(steps):
            x.d, t.d = xs[i % 8], ts[i % 8]
            loss.forward()
            solver.zero_grad()
            loss.backward()
            grads[0].data  # noqa: B018 - runs the backward the runtime put off, untimed
            before = time.perf_counter()
            comm.all_reduce(grads, division=True, inplace=False)
            spent += time.perf_counter() - before
            solver.update()
        return (time.perf_counter() - start) / steps, spent / steps

    directory = Path(args.out)
    module = nn.compile(loss, name=f"bench_dp_{args.model}_{args.batch}",
                        output_dir=directory).module
    batches = [{"x": xs[i], "t": ts[i]} for i in range(8)]

    def helper(steps):
        timed = TimedTransport(comm.transport)
        start = time.perf_counter()
        D.train(module, (batches[i % 8] for i in range(steps)), steps=steps,
                comm=TimedComm(comm, timed), check_every=steps)
        return (time.perf_counter() - start) / steps, timed.seconds / steps

    def ours(steps):
        start = time.perf_counter()
        for _ in range(steps):
            comm.all_reduce(grads, division=True, inplace=False)
        return (time.perf_counter() - start) / steps, 0.0

    buffer = np.ones(size, np.float32)

    def mpi4py_raw(steps):
        start = time.perf_counter()
        for _ in range(steps):
            world.Allreduce(MPI.IN_PLACE, buffer)
        return (time.perf_counter() - start) / steps, 0.0

    cases = {"nnabla loop": nnabla_loop, "train()": helper, "all_reduce": ours,
             "mpi4py Allreduce": mpi4py_raw}
    for case in cases.values():  # warm-up (first compiles, MPI's connections)
        case(10)
    runs = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, case in cases.items():
            comm.barrier()
            runs[name].append(case(args.steps))
    medians = {name: [statistics.median(v[0] for v in values),
                      statistics.median(v[1] for v in values)]
               for name, values in runs.items()}
    every = comm.transport.allgather_object(medians, "the benchmark's results")
    slowest = {name: [max(r[name][k] for r in every) for k in (0, 1)] for name in medians}
    if comm.rank == 0:
        print("RESULT " + json.dumps({"ranks": comm.size, "floats": size, "times": slowest}),
              flush=True)


def mpirun(ranks: int) -> list[str]:
    command = [shutil.which("mpirun") or "mpirun", "-n", str(ranks), "--bind-to", "core"]
    if os.geteuid() == 0:
        command.append("--allow-run-as-root")
    return command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--model", choices=("mlp", "cnn"), default="mlp",
                        help="the 784-256-10 MLP, or bench/cnn.py's LeNet on 28x28 images")
    parser.add_argument("--batch", type=int, default=None,
                        help="per rank (default: 128 for the MLP, 64 for the CNN)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.batch is None:
        args.batch = 128 if args.model == "mlp" else 64
    if args.worker:
        worker(args)
        return
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                       os.environ.get("PYTHONPATH")])))
    results = []
    with tempfile.TemporaryDirectory() as out:
        for ranks in args.ranks:
            done = subprocess.run(
                [*mpirun(ranks), sys.executable, __file__, "--worker", "--out", out,
                 "--model", args.model, "--batch", str(args.batch), "--steps", str(args.steps),
                 "--repeats", str(args.repeats)],
                capture_output=True, text=True, env=env, timeout=1800)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if done.returncode != 0 or not lines:
                sys.exit(f"mpirun -n {ranks} failed ({done.returncode}):\n{done.stderr[-3000:]}")
            results.append(json.loads(lines[0][len("RESULT "):]))
    report(results, args.batch, args.model)


def report(results, batch, model) -> None:
    network = "784-256-10 MLP" if model == "mlp" else "LeNet CNN (bench/cnn.py's)"
    print(f"{network}, Sgd {LR}, batch {batch} per rank, one BLAS thread per rank")
    print(f"{'ranks':>5}  {'case':<18}{'ms/step':>9}{'of which all-reduce':>21}"
          f"{'GB/s':>8}{'vs mpi4py':>11}")
    for result in results:
        times, nbytes = result["times"], 4 * result["floats"]
        raw = times["mpi4py Allreduce"][0]
        for name, (step, reduce) in times.items():
            spent = reduce if name in ("nnabla loop", "train()") else step
            exchanged = spent > 0 and raw > 0 and result["ranks"] > 1  # (alone: nothing)
            rate = f"{nbytes / spent / 1e9:.2f}" if exchanged else "-"
            ratio = f"{spent / raw:.2f}x" if exchanged else "-"
            print(f"{result['ranks']:>5}  {name:<18}{1e3 * step:>9.3f}{1e3 * spent:>18.3f} ms"
                  f"{rate:>8}{ratio:>11}")
    print(f"(all-reduce of {results[0]['floats']} float32 = {4 * results[0]['floats']} bytes "
          f"per step)")


if __name__ == "__main__":
    main()
