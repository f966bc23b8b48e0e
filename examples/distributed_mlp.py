"""Data-parallel training of an MLP on the 8x8 digits, written as nnabla's distributed
scripts are: a context, a communicator, a data iterator sharded by rank, gradients
all-reduced between backward() and update(), monitors and saving on rank 0 only.

Run it on 2 processes (mpi4py and an MPI: pip install '.[mpi,examples]'):

    mpirun -n 2 python examples/distributed_mlp.py

(as root in a container, add --allow-run-as-root; with more processes than cores,
--oversubscribe). Without mpirun, or without mpi4py, it trains in one process: the
communicator is then of size 1. With N processes and --batch-size B each step trains on
N*B examples: the same steps as one process with a batch of N*B (tests/test_distributed.py
checks it).
"""

import argparse
import os
import sys

import numpy as np

import symcompile as nn
import symcompile.communicators as C
import symcompile.functions as F
import symcompile.parametric_functions as PF
import symcompile.solvers as S
from symcompile.ext_utils import get_extension_context
from symcompile.monitor import Monitor, MonitorSeries, MonitorTimeElapsed
from symcompile.utils.data_iterator import data_iterator_simple

CLASSES = 10


def mlp(x, hidden=(64, 32)):
    h = x
    for i, size in enumerate(hidden):
        with nn.parameter_scope(f"affine{i + 1}"):
            h = F.tanh(PF.affine(h, size))
    with nn.parameter_scope("classifier"):
        return PF.affine(h, CLASSES)


def load_digits():
    """scikit-learn's 1797 images, pixels scaled to [0, 1], and their labels."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        sys.exit("this example needs scikit-learn: pip install 'symcompile[examples]'")
    digits = sklearn_digits()
    return (digits.data / 16.0).astype(np.float32), digits.target.reshape(-1, 1)


def data_iterator(batch_size, seed):
    """The whole data set, shuffled each epoch (the same order on every rank)."""
    images, labels = load_digits()

    def load(i):
        return images[i], labels[i]

    return data_iterator_simple(load, len(images), batch_size, shuffle=True,
                                rng=np.random.RandomState(seed))


def parameters_file(directory):
    """Where rank 0 saves the parameters: .h5 as nnabla's, .npz without h5py."""
    try:
        import h5py  # noqa: F401
    except ImportError:
        return os.path.join(directory, "parameters.npz")
    return os.path.join(directory, "parameters.h5")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", "-c", default="cpu")
    parser.add_argument("--batch-size", "-b", type=int, default=32, help="per process")
    parser.add_argument("--iterations", "-i", type=int, default=300)
    parser.add_argument("--learning-rate", "-l", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=313)
    parser.add_argument("--monitor-path", "-m", default="tmp.monitor.distributed")
    parser.add_argument("--model-save-interval", type=int, default=100)
    args = parser.parse_args(argv)

    # Communicator and context: one process per rank; the device follows the local rank.
    ctx = get_extension_context(args.context)
    comm = C.MultiProcessDataParalellCommunicator(ctx)
    comm.init()
    ctx.device_id = str(comm.local_rank)
    nn.set_default_context(ctx)

    # Each rank reads its own shard of the data.
    data = data_iterator(args.batch_size, args.seed).slice(
        rng=None, num_of_slices=comm.size, slice_pos=comm.rank)

    nn.seed(args.seed)
    nn.clear_parameters()
    x = nn.Variable((args.batch_size, 64))
    t = nn.Variable((args.batch_size, 1))
    loss = F.mean(F.softmax_cross_entropy(mlp(x), t))
    params = nn.get_parameters()
    solver = S.Sgd(args.learning_rate)
    solver.set_parameters(params)
    # every rank starts from rank 0's parameters
    comm.bcast([p.data for p in params.values()], src=0)

    if comm.rank == 0:
        os.makedirs(args.monitor_path, exist_ok=True)
        monitor = Monitor(args.monitor_path)
        monitor_loss = MonitorSeries("Training loss", monitor, interval=10)
        monitor_time = MonitorTimeElapsed("Training time", monitor, interval=100)

    for i in range(args.iterations):
        x.d, t.d = data.next()
        loss.forward(clear_no_need_grad=True)
        solver.zero_grad()
        loss.backward(clear_buffer=True)
        comm.all_reduce([p.grad for p in params.values()], division=True, inplace=False)
        solver.update()
        if comm.rank == 0:
            monitor_loss.add(i, loss.d.copy())
            monitor_time.add(i)
            if (i + 1) % args.model_save_interval == 0:
                nn.save_parameters(parameters_file(args.monitor_path))
    if comm.rank == 0:
        nn.save_parameters(parameters_file(args.monitor_path))
    return params


if __name__ == "__main__":
    main()
