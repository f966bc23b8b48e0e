"""Polynomial regression y = a*x**3 + b*x**2 + c*x + d on 1,000,000 float32 samples, mean
squared error, Sgd: the generated sgd_step against the same step written plainly in
NumPy, side by side in one process. Fusion, CSE of the powers and dot products for the
reductions are what separate them.

Usage: python bench/fused.py [--steps N] [--repeats R]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import tempfile  # noqa: E402

import numpy as np  # noqa: E402
from common import interleaved, peak_memory, table  # noqa: E402

N, LR = 1_000_000, 0.01
TRUE = (0.5, -1.0, 2.0, 0.3)
rng = np.random.default_rng(0)
X = rng.uniform(-1, 1, (N, 1)).astype(np.float32)
Y = (TRUE[0] * X**3 + TRUE[1] * X**2 + TRUE[2] * X + TRUE[3]
     + 0.01 * rng.standard_normal((N, 1))).astype(np.float32)
BATCHES = [(X, Y)]


def build_graph():
    import symcompile as nn
    import symcompile.functions as F

    nn.clear_parameters()
    x = nn.Variable((N, 1))
    y = nn.Variable((N, 1))
    a, b, c, d = (nn.parameter.get_parameter_or_create(name, (1, 1)) for name in "abcd")
    prediction = a * x**3 + b * x**2 + c * x + d
    return F.mean(F.squared_error(prediction, y))


def generated_factory(module):
    def factory():
        params = [np.zeros((1, 1), np.float32) for _ in range(4)]
        step = module.sgd_step

        def run(x, y):
            return step(x, y, *params, LR)

        run.params = params
        return run

    return factory


def numpy_factory():
    """The step written plainly: the formula and its gradient, as one would by hand."""
    a, b, c, d = (np.zeros((1, 1), np.float32) for _ in range(4))

    def step(x, y):
        r = a * x**3 + b * x**2 + c * x + d - y
        loss = np.mean(r**2)
        ga = 2 * np.mean(r * x**3)
        gb = 2 * np.mean(r * x**2)
        gc = 2 * np.mean(r * x)
        gd = 2 * np.mean(r)
        a[...] -= LR * ga
        b[...] -= LR * gb
        c[...] -= LR * gc
        d[...] -= LR * gd
        return loss

    step.params = (a, b, c, d)
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description="polynomial regression benchmark")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import symcompile as nn

    with tempfile.TemporaryDirectory() as directory:
        os.environ["SYMCOMPILE_CACHE_DIR"] = directory
        module = nn.compile(build_graph(), name="poly", output_dir=directory).module
        factories = {"generated sgd_step": generated_factory(module),
                     "numpy (plain)": numpy_factory}
        results = interleaved(factories, BATCHES, args.steps, args.repeats)
        memory = {name: peak_memory(f, BATCHES, 3) for name, f in factories.items()}
        # Same arithmetic: after the same steps both hold the same parameters.
        gen, plain = factories["generated sgd_step"](), numpy_factory()
        for _ in range(5):
            gen(X, Y)
            plain(X, Y)
        drift = max(abs((p - q).item()) for p, q in zip(gen.params, plain.params, strict=True))

    print(f"polynomial regression: {N} float32 samples, Sgd({LR}); {args.steps} steps x "
          f"{args.repeats} repeats, median")
    notes = {name: f"peak {memory[name] / 2**20:.0f} MiB" for name in memory}
    table(results, "numpy (plain)", "ms/step", 1e3, {"generated sgd_step": "<= 0.60"}, notes)
    print(f"parameters after 5 steps differ by at most {drift:.2e} (float32 rounding)")


if __name__ == "__main__":
    main()
