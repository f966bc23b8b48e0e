"""The MLP workload (784-256-10, tanh, softmax cross-entropy, Sgd 0.1, batch 128, one
thread), timed side by side in one process:

  generated sgd_step   the fused step symcompile generates for the nnabla-API graph
  numpy (hand)         the hand-written NumPy step of the reference workloads
                       (../shared/bench/mlp.py, IMPL=numpy), reproduced verbatim
  torch eager / jax.jit  the reference workloads' steps, when installed

Prints milliseconds per step with ratios to the hand-written step, the peak memory of a
training run with ratios, and the compile time of the graph (SymPy already imported).

With ``--backend array-api`` it also times the module of the array API backend on NumPy
arrays and, with torch installed, on torch CPU tensors (next to torch eager).

Usage: python bench/mlp.py [--steps N] [--repeats R] [--backend numpy|array-api]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("XLA_FLAGS",
                      "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from common import interleaved, peak_memory, pin_to_one_cpu, table  # noqa: E402

BS, DIN, DH, DOUT, LR = 128, 784, 256, 10, 0.1
rng = np.random.default_rng(0)
NB = 16
XS = rng.standard_normal((NB, BS, DIN)).astype(np.float32)
TS = rng.integers(0, DOUT, (NB, BS))
W1_0 = (rng.standard_normal((DIN, DH)) / np.sqrt(DIN)).astype(np.float32)
W2_0 = (rng.standard_normal((DH, DOUT)) / np.sqrt(DH)).astype(np.float32)
BATCHES = [(XS[i], TS[i]) for i in range(NB)]


def build_graph():
    """The workload's graph with symcompile's nnabla API."""
    import symcompile as nn
    import symcompile.functions as F

    nn.clear_parameters()
    x = nn.Variable((BS, DIN))
    t = nn.Variable((BS, 1))
    w1 = nn.parameter.get_parameter_or_create("W1", (DIN, DH))
    b1 = nn.parameter.get_parameter_or_create("b1", (DH,))
    w2 = nn.parameter.get_parameter_or_create("W2", (DH, DOUT))
    b2 = nn.parameter.get_parameter_or_create("b2", (DOUT,))
    z = F.affine(F.tanh(F.affine(x, w1, b1)), w2, b2)
    return F.mean(F.softmax_cross_entropy(z, t))


def compile_module(directory, backend="numpy"):
    import symcompile as nn

    loss = build_graph()
    started = time.perf_counter()
    result = nn.compile(loss, name=f"mlp_bench_{backend}", output_dir=directory,
                        backend=backend)
    return result.module, time.perf_counter() - started


def generated_factory(module, convert=None):
    """The module's fused step; `convert` makes its arrays another library's (torch)."""
    convert = convert or (lambda array: array)

    def factory():
        params = {name: convert(value) for name, value in (
            ("W1", W1_0.copy()), ("b1", np.zeros(DH, np.float32)), ("W2", W2_0.copy()),
            ("b2", np.zeros(DOUT, np.float32)))}
        arrays = {}
        step = module.sgd_step

        def run(x, t):
            key = id(x)
            if key not in arrays:  # inputs as the library's arrays; labels (batch, 1) floats
                arrays[key] = (convert(x), convert(t.reshape(BS, 1).astype(np.float32)))
            return step(*arrays[key], params["W1"], params["b1"], params["W2"],
                        params["b2"], LR)

        return run

    return factory


def numpy_factory():
    """Verbatim the IMPL=numpy step of ../shared/bench/mlp.py."""
    W1, W2 = W1_0.copy(), W2_0.copy()
    b1 = np.zeros(DH, np.float32)
    b2 = np.zeros(DOUT, np.float32)
    bs, lr = BS, LR

    def step(x, t):
        h = np.tanh(x @ W1 + b1)
        z = h @ W2 + b2
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z); s = e.sum(axis=1, keepdims=True)  # noqa: E702
        logp = z - np.log(s)
        loss = -logp[np.arange(bs), t].mean()
        dz = e / s; dz[np.arange(bs), t] -= 1; dz /= bs  # noqa: E702
        gW2 = h.T @ dz; gb2 = dz.sum(0)  # noqa: E702
        dh_ = (dz @ W2.T) * (1 - h * h)
        gW1 = x.T @ dh_; gb1 = dh_.sum(0)  # noqa: E702
        for p_, g_ in ((W1, gW1), (b1, gb1), (W2, gW2), (b2, gb2)):
            p_ -= lr * g_
        return loss

    return step


def torch_factory():
    import torch

    torch.set_num_threads(1)
    W1 = torch.tensor(W1_0, requires_grad=True)
    W2 = torch.tensor(W2_0, requires_grad=True)
    b1 = torch.zeros(DH, requires_grad=True)
    b2 = torch.zeros(DOUT, requires_grad=True)
    opt = torch.optim.SGD([W1, b1, W2, b2], lr=LR)

    def step(x, t):
        x = torch.from_numpy(x)
        t = torch.from_numpy(t)
        loss = torch.nn.functional.cross_entropy(torch.tanh(x @ W1 + b1) @ W2 + b2, t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return step


def jax_factory():
    import jax
    import jax.numpy as jnp

    def loss_fn(p, x, t):
        W1, b1, W2, b2 = p
        z = jnp.tanh(x @ W1 + b1) @ W2 + b2
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), t[:, None], 1))

    @jax.jit
    def jstep(p, x, t):
        value, g = jax.value_and_grad(loss_fn)(p, x, t)
        return tuple(pi - LR * gi for pi, gi in zip(p, g, strict=True)), value

    state = [(jnp.array(W1_0), jnp.zeros(DH), jnp.array(W2_0), jnp.zeros(DOUT))]

    def step(x, t):
        state[0], value = jstep(state[0], x, t)
        return float(value)  # wait for the result, as the reference does via float(l)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description="MLP workload benchmark")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backend", choices=["numpy", "array-api"], default="numpy",
                        help="array-api: also time the array API backend's module")
    args = parser.parse_args()

    import sympy  # noqa: F401 - compile time is measured with SymPy already imported

    with tempfile.TemporaryDirectory() as directory:
        os.environ["SYMCOMPILE_CACHE_DIR"] = directory
        compile_times = []
        for _ in range(3):
            module, seconds = compile_module(directory)
            compile_times.append(seconds)
        factories = {"generated sgd_step": generated_factory(module),
                     "numpy (hand)": numpy_factory}
        if args.backend == "array-api":
            portable, _ = compile_module(directory, "array_api")
            factories["array-api module, numpy"] = generated_factory(portable)
            if importlib.util.find_spec("torch"):
                import torch

                factories["array-api module, torch"] = generated_factory(
                    portable, torch.from_numpy)
        if importlib.util.find_spec("torch"):
            factories["torch eager"] = torch_factory
        if importlib.util.find_spec("jax"):
            factories["jax.jit"] = jax_factory
        results = interleaved(factories, BATCHES, args.steps, args.repeats)
        memory = {name: peak_memory(factory, BATCHES, 20)
                  for name, factory in factories.items()
                  if name in ("generated sgd_step", "numpy (hand)")}

    print(f"mlp workload: {DIN}-{DH}-{DOUT} tanh, softmax cross-entropy, Sgd({LR}), batch {BS},"
          f" one thread; {args.steps} steps x {args.repeats} repeats, median")
    targets = {"generated sgd_step": "<= 0.90"}
    notes = {}
    if "array-api module, numpy" in results:
        notes["array-api module, numpy"] = (
            f"{results['array-api module, numpy'] / results['generated sgd_step']:.2f}x "
            "the numpy backend's module (<= 1.2)")
    if "array-api module, torch" in results and "torch eager" in results:
        notes["array-api module, torch"] = (
            f"{results['array-api module, torch'] / results['torch eager']:.2f}x torch eager")
    if "torch eager" in results:
        notes["generated sgd_step"] = (
            f"{results['generated sgd_step'] / results['torch eager']:.2f}x torch (< 1)")
    if "jax.jit" in results:
        notes["generated sgd_step"] += (
            f", {results['generated sgd_step'] / results['jax.jit']:.2f}x jax.jit (<= 1.15)")
    table(results, "numpy (hand)", "ms/step", 1e3, targets, notes)
    print()
    hand = memory["numpy (hand)"]
    print(f"{'peak memory, 20 steps':<24}{'MiB':>10}{'ratio':>9}{'target':>10}")
    for name, peak in memory.items():
        target = "<= 1.20" if name == "generated sgd_step" else ""
        print(f"{name:<24}{peak / 2**20:>10.2f}{peak / hand:>8.2f}x{target:>10}")
    print()
    print(f"compile time of this graph: {statistics.median(compile_times) * 1e3:.0f} ms "
          "(target < 1000 ms)")


if __name__ == "__main__":
    pin_to_one_cpu()  # (before jax starts its threads; not on import, as peers.py imports)
    main()
