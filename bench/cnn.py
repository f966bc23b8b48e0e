"""A small CNN workload, timed side by side in one process (one thread):

  x (32, 1, 28, 28) -> convolution 16 3x3 pad 1 -> relu -> convolution 32 3x3 stride 2
  pad 1 -> relu -> affine 10 -> softmax cross-entropy, Sgd(0.1)

  generated sgd_step   the fused step symcompile generates for the nnabla-API graph
                       (its convolutions are the NumPy backend's kernels)
  torch eager / jax.jit  the same network and step, when installed

Prints milliseconds per step with ratios to torch eager (or to the generated step when
torch is missing) and the compile time of the graph (SymPy already imported). No target
yet: this measures where the convolution kernels stand (issue 15 sets the targets).

Usage: python bench/cnn.py [--steps N] [--repeats R]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("XLA_FLAGS",
                      "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from common import interleaved, table  # noqa: E402

BS, SIDE, C1, C2, CLASSES, LR = 32, 28, 16, 32, 10, 0.1
FLAT = C2 * (SIDE // 2) ** 2
rng = np.random.default_rng(0)
NB = 8
XS = rng.standard_normal((NB, BS, 1, SIDE, SIDE)).astype(np.float32)
TS = rng.integers(0, CLASSES, (NB, BS))
W1_0 = (rng.standard_normal((C1, 1, 3, 3)) / 3).astype(np.float32)
W2_0 = (rng.standard_normal((C2, C1, 3, 3)) / np.sqrt(9 * C1)).astype(np.float32)
W3_0 = (rng.standard_normal((FLAT, CLASSES)) / np.sqrt(FLAT)).astype(np.float32)
BATCHES = [(XS[i], TS[i]) for i in range(NB)]


def initial():
    return {"w1": W1_0.copy(), "b1": np.zeros(C1, np.float32), "w2": W2_0.copy(),
            "b2": np.zeros(C2, np.float32), "w3": W3_0.copy(),
            "b3": np.zeros(CLASSES, np.float32)}


def compile_module(directory):
    import symcompile as nn
    import symcompile.functions as F

    nn.clear_parameters()
    get = nn.parameter.get_parameter_or_create
    x, t = nn.Variable((BS, 1, SIDE, SIDE)), nn.Variable((BS, 1))
    h = F.relu(F.convolution(x, get("w1", W1_0.shape), get("b1", (C1,)), pad=(1, 1)))
    h = F.relu(F.convolution(h, get("w2", W2_0.shape), get("b2", (C2,)), pad=(1, 1),
                             stride=(2, 2)))
    y = F.affine(h, get("w3", W3_0.shape), get("b3", (CLASSES,)))
    loss = F.mean(F.softmax_cross_entropy(y, t))
    started = time.perf_counter()
    result = nn.compile(loss, name="cnn_bench", output_dir=directory)
    return result.module, time.perf_counter() - started


def generated_factory(module):
    def factory():
        p = initial()
        labels = {}

        def run(x, t):
            if id(t) not in labels:
                labels[id(t)] = t.reshape(BS, 1).astype(np.float32)
            return module.sgd_step(x, labels[id(t)], p["w1"], p["b1"], p["w2"], p["b2"],
                                   p["w3"], p["b3"], LR)

        return run

    return factory


def torch_factory():
    import torch

    torch.set_num_threads(1)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in initial().items()}
    opt = torch.optim.SGD(list(p.values()), lr=LR)
    conv = torch.nn.functional.conv2d

    def step(x, t):
        h = torch.relu(conv(torch.from_numpy(x), p["w1"], p["b1"], padding=1))
        h = torch.relu(conv(h, p["w2"], p["b2"], padding=1, stride=2))
        y = h.reshape(BS, -1) @ p["w3"] + p["b3"]
        loss = torch.nn.functional.cross_entropy(y, torch.from_numpy(t))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return step


def jax_factory():
    import jax
    import jax.numpy as jnp

    def conv(x, w, b, stride):
        y = jax.lax.conv_general_dilated(x, w, (stride, stride), ((1, 1), (1, 1)))
        return y + b[None, :, None, None]

    def loss_fn(p, x, t):
        h = jax.nn.relu(conv(x, p["w1"], p["b1"], 1))
        h = jax.nn.relu(conv(h, p["w2"], p["b2"], 2))
        y = h.reshape(BS, -1) @ p["w3"] + p["b3"]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(y), t[:, None], 1))

    @jax.jit
    def jstep(p, x, t):
        value, g = jax.value_and_grad(loss_fn)(p, x, t)
        return {k: p[k] - LR * g[k] for k in p}, value

    state = [{k: jnp.array(v) for k, v in initial().items()}]

    def step(x, t):
        state[0], value = jstep(state[0], x, t)
        return float(value)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description="CNN workload benchmark")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import sympy  # noqa: F401 - compile time is measured with SymPy already imported

    with tempfile.TemporaryDirectory() as directory:
        os.environ["SYMCOMPILE_CACHE_DIR"] = directory
        module, seconds = compile_module(directory)
        factories = {"generated sgd_step": generated_factory(module)}
        if importlib.util.find_spec("torch"):
            factories["torch eager"] = torch_factory
        if importlib.util.find_spec("jax"):
            factories["jax.jit"] = jax_factory
        results = interleaved(factories, BATCHES, args.steps, args.repeats)
    reference = "torch eager" if "torch eager" in results else "generated sgd_step"
    print(f"cnn workload: ({BS}, 1, {SIDE}, {SIDE}) -> conv {C1} 3x3 -> relu -> conv {C2} "
          f"3x3 /2 -> relu -> affine {CLASSES}, Sgd({LR}), one thread; {args.steps} steps x "
          f"{args.repeats} repeats, median")
    table(results, reference, "ms/step", 1e3, {})
    print(f"\ncompile time of this graph: {seconds * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
