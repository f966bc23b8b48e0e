"""The tutorial workload (y = a*x + b, MSE, Sgd 0.01, batch 32), timed side by side.

Runs in one process, interleaved, each implementation on the same data:

  generated sgd_step   generated/linear_regression.py's fused step (what symcompile emits)
  runtime loop         x.d = ...; loss.forward(); solver.zero_grad(); loss.backward();
                       solver.update()  -- the nnabla-style loop on generated code
  numpy (hand)         the hand-written NumPy step of the reference workloads
                       (../shared/bench/linreg.py, IMPL=numpy), reproduced verbatim
  numpy (tuned)        a hand-tuned NumPy step (preallocated buffers, out=, dot)
  torch / jax          the reference workloads' steps, when those packages are installed

and prints microseconds per step, ratios to the hand-written step, the targets, and the
compile times (graph -> module on disk with SymPy already imported; cache hits).

Usage: python bench/linreg.py [--steps N] [--repeats R]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import interleaved, pin_to_one_cpu, table

ROOT = Path(__file__).resolve().parent.parent
BS, A, B, LR = 32, 0.3, 1.5, 0.01
A0, B0 = np.float32(0.5), np.float32(0.3)


def load_generated():
    spec = importlib.util.spec_from_file_location(
        "linear_regression", ROOT / "generated" / "linear_regression.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_data(steps: int):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((steps + 1) * BS).astype(np.float32).reshape(-1, BS, 1)
    y = (A * x + B + 0.01 * rng.standard_normal(x.shape)).astype(np.float32)
    return x, y


def generated_step():
    m = load_generated()
    a = np.full((1, 1), A0, np.float32)
    b = np.full((1, 1), B0, np.float32)
    step = m.sgd_step

    def run(x, y):
        return step(y, x, a, b, LR)

    return run, lambda: (a.item(), b.item())


def runtime_step():
    sys.path.insert(0, str(ROOT / "examples"))
    from linear_regression import build

    import symcompile as nn
    import symcompile.solvers as S

    nn.clear_parameters()
    loss, x_var, y_var, _ = build()
    params = nn.get_parameters()
    params["a"].d = A0
    params["b"].d = B0
    solver = S.Sgd(LR)
    solver.set_parameters(params)

    def run(x, y):
        x_var.d = x
        y_var.d = y
        loss.forward()
        solver.zero_grad()
        loss.backward()
        solver.update()

    return run, lambda: (params["a"].d.item(), params["b"].d.item())


def numpy_hand_step():
    """Verbatim the IMPL=numpy step of ../shared/bench/linreg.py."""
    a = np.full((1, 1), A0, np.float32)
    b = np.full((1, 1), B0, np.float32)

    def step(x, y):
        r = a * x + b - y                     # forward residual
        loss = np.mean(r * r)
        ga = 2.0 * np.mean(r * x); gb = 2.0 * np.mean(r)  # noqa: E702
        a[...] -= LR * ga; b[...] -= LR * gb  # noqa: E702
        return loss

    return step, lambda: (a.item(), b.item())


def numpy_tuned_step():
    a = np.full((1, 1), A0, np.float32)
    b = np.full((1, 1), B0, np.float32)
    r = np.empty((BS, 1), np.float32)
    rf = r.ravel()

    def step(x, y):
        np.multiply(a, x, out=r)
        np.add(r, b, out=r)
        np.subtract(r, y, out=r)
        loss = np.dot(rf, rf) / BS
        np.subtract(a, (2.0 * LR / BS) * np.dot(rf, x.ravel()), out=a)
        np.subtract(b, (2.0 * LR / BS) * rf.sum(), out=b)
        return loss

    return step, lambda: (a.item(), b.item())


def torch_step():
    import torch

    torch.set_num_threads(1)
    a = torch.full((1, 1), float(A0), requires_grad=True)
    b = torch.full((1, 1), float(B0), requires_grad=True)
    opt = torch.optim.SGD([a, b], lr=LR)

    def step(x, y):
        x = torch.from_numpy(x)
        y = torch.from_numpy(y)
        loss = torch.mean((y - (a * x + b)) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return step, lambda: (a.item(), b.item())


def jax_step():
    import jax
    import jax.numpy as jnp

    def loss_fn(p, x, y):
        return jnp.mean((y - (p[0] * x + p[1])) ** 2)

    @jax.jit
    def jstep(p, x, y):
        value, g = jax.value_and_grad(loss_fn)(p, x, y)
        return (p[0] - LR * g[0], p[1] - LR * g[1]), value

    state = [(jnp.full((1, 1), A0), jnp.full((1, 1), B0))]

    def step(x, y):
        state[0], value = jstep(state[0], x, y)
        return value

    def final():
        state[0][0].block_until_ready()
        return float(state[0][0][0, 0]), float(state[0][1][0, 0])

    return step, final


def forget_loaded_modules(runtime) -> None:
    """Drop every generated module from memory, so the next use reads it from disk."""
    runtime._modules.clear()
    for name in [n for n in sys.modules if n.startswith("_symcompile_generated_")]:
        del sys.modules[name]


def compile_times(repeats: int) -> dict[str, float]:
    """Graph -> module on disk, and cache hits, in milliseconds (SymPy already imported)."""
    from linear_regression import build

    import symcompile as nn
    from symcompile.runtime import execution as runtime

    cold, disk_hit, memory_hit = [], [], []
    with tempfile.TemporaryDirectory() as cache:
        os.environ["SYMCOMPILE_CACHE_DIR"] = cache
        for i in range(repeats):
            nn.clear_parameters()
            loss = build()[0]
            t = time.perf_counter()
            nn.compile(loss, name=f"linreg_{i}", output_dir=cache)
            cold.append(time.perf_counter() - t)
        for i in range(repeats):
            nn.clear_parameters()
            loss = build()[0]
            forget_loaded_modules(runtime)  # only the disk cache is left
            if i == 0:
                loss.forward()  # populate the disk cache
                nn.clear_parameters()
                loss = build()[0]
                forget_loaded_modules(runtime)
            t = time.perf_counter()
            loss.forward()
            disk_hit.append(time.perf_counter() - t)
            nn.clear_parameters()
            loss = build()[0]
            t = time.perf_counter()
            loss.forward()
            memory_hit.append(time.perf_counter() - t)
    return {"compile (graph -> module on disk)": statistics.median(cold) * 1e3,
            "first forward, module in disk cache": statistics.median(disk_hit) * 1e3,
            "first forward, module already loaded": statistics.median(memory_hit) * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    xs, ys = make_data(args.steps + 50)
    batches = list(zip(xs, ys, strict=True))

    impls = {"generated sgd_step": generated_step, "runtime loop": runtime_step,
             "numpy (hand)": numpy_hand_step, "numpy (tuned)": numpy_tuned_step}
    for name, factory in (("torch eager", torch_step), ("jax.jit", jax_step)):
        if importlib.util.find_spec(name.split()[0].split(".")[0]) is not None:
            impls[name] = factory
    finals = {}

    def stepper(name, factory):
        def make():
            step, final = factory()
            finals[name] = final
            return step

        return make

    results = interleaved({name: stepper(name, f) for name, f in impls.items()}, batches,
                          args.steps, args.repeats)
    print(f"linreg workload: batch {BS}, Sgd({LR}), {args.steps} steps x {args.repeats} "
          "repeats, median")
    notes = {name: "final a, b = {:.4f}, {:.4f}".format(*finals[name]()) for name in impls}
    table(results, "numpy (hand)", "us/step", 1e6,
          {"generated sgd_step": "<= 0.50", "runtime loop": "<= 1.50"}, notes)
    print()
    print(f"{'compile':<40}{'ms':>8}{'target':>10}")
    limits = ["< 300", "< 10", "< 10"]
    for (what, ms), limit in zip(compile_times(args.repeats).items(), limits, strict=True):
        print(f"{what:<40}{ms:>8.2f}{limit:>10}")


if __name__ == "__main__":
    pin_to_one_cpu()  # (before jax starts its threads; not on import, as peers.py imports)
    main()
