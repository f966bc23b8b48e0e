"""Each solver's update of the 784-256-10 parameter set (W1 784x256, b1, W2 256x10, b2:
about 200k parameters): the generated update code that `solver.update()` runs, against
the same formula written plainly in NumPy, side by side in one process.

Usage: python bench/solvers.py [--steps N] [--repeats R]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

SHAPES = {"W1": (784, 256), "b1": (256,), "W2": (256, 10), "b2": (10,)}
rng = np.random.default_rng(0)
PARAMS0 = {k: rng.standard_normal(s).astype(np.float32) * 0.1 for k, s in SHAPES.items()}
GRADS = {k: rng.standard_normal(s).astype(np.float32) * 0.01 for k, s in SHAPES.items()}


def sqrt(x):
    return np.sqrt(x)


def norm(x):
    return np.sqrt(np.sum(x * x))


# The plain NumPy formulas: what one writes from the papers / nnabla's docs.
def plain_sgd(w, g, s, t, h):
    w -= h["lr"] * g


def plain_momentum(w, g, s, t, h):
    s["m"][...] = h["momentum"] * s["m"] + h["lr"] * g
    w -= s["m"]


def plain_nesterov(w, g, s, t, h):
    prev = s["m"].copy()
    s["m"][...] = h["momentum"] * s["m"] - h["lr"] * g
    w += -h["momentum"] * prev + (1 + h["momentum"]) * s["m"]


def plain_adagrad(w, g, s, t, h):
    s["v"][...] = s["v"] + g * g
    w -= h["lr"] * g / (sqrt(s["v"]) + h["eps"])


def plain_adadelta(w, g, s, t, h):
    d = h["decay"]
    s["e_sqr_grad"][...] = d * s["e_sqr_grad"] + (1 - d) * g * g
    delta = sqrt((s["e_sqr_delta"] + h["eps"]) / (s["e_sqr_grad"] + h["eps"])) * g
    s["e_sqr_delta"][...] = d * s["e_sqr_delta"] + (1 - d) * delta * delta
    w -= h["lr"] * delta


def plain_rmsprop(w, g, s, t, h):
    s["v"][...] = h["decay"] * s["v"] + (1 - h["decay"]) * g * g
    w -= h["lr"] * g / (sqrt(s["v"]) + h["eps"])


def plain_rmsprop_graves(w, g, s, t, h):
    d = h["decay"]
    s["n"][...] = d * s["n"] + (1 - d) * g * g
    s["g"][...] = d * s["g"] + (1 - d) * g
    s["d"][...] = h["momentum"] * s["d"] - h["lr"] * g / sqrt(s["n"] - s["g"] ** 2 + h["eps"])
    w += s["d"]


def _moments(g, s, h, m="mean", v="var"):
    s[m][...] = h["beta1"] * s[m] + (1 - h["beta1"]) * g
    s[v][...] = h["beta2"] * s[v] + (1 - h["beta2"]) * g * g


def _alpha_t(h, t):
    return h["alpha"] * math.sqrt(1 - h["beta2"] ** t) / (1 - h["beta1"] ** t)


def plain_adam(w, g, s, t, h):
    _moments(g, s, h)
    w -= _alpha_t(h, t) * s["mean"] / (sqrt(s["var"]) + h["eps"])


def plain_adamw(w, g, s, t, h):
    _moments(g, s, h)
    w -= (_alpha_t(h, t) * s["mean"] / (sqrt(s["var"]) + h["eps"])
          + h["alpha"] / h["init_alpha"] * h["wd"] * w)


def plain_sgdw(w, g, s, t, h):
    s["m"][...] = h["momentum"] * s["m"] + h["lr"] * g
    w -= s["m"] + h["lr"] / h["init_lr"] * h["wd"] * w


def plain_adamax(w, g, s, t, h):
    s["m"][...] = h["beta1"] * s["m"] + (1 - h["beta1"]) * g
    s["u"][...] = np.maximum(h["beta2"] * s["u"], np.abs(g))
    w -= h["alpha"] / (1 - h["beta1"] ** t) * s["m"] / (s["u"] + h["eps"])


def plain_amsgrad(w, g, s, t, h):
    _moments(g, s, h, "m", "v")
    s["v_hat"][...] = np.maximum(s["v_hat"], s["v"])
    w -= h["alpha"] * s["m"] / (sqrt(s["v_hat"]) + h["eps"])


def _bounded(w, m, v, t, h, step, upper):
    final = h["final_lr"] * h["alpha"] / h["init_alpha"]
    lower = final * (1 - 1 / (h["gamma"] * t + 1))
    eta = np.clip(step / (sqrt(v) + h["eps"]), lower, final * (1 + upper))
    w -= eta * m


def plain_adabound(w, g, s, t, h):
    _moments(g, s, h)
    _bounded(w, s["mean"], s["var"], t, h, _alpha_t(h, t), 1 / (h["gamma"] * t))


def plain_amsbound(w, g, s, t, h):
    _moments(g, s, h, "m", "v")
    s["v_hat"][...] = np.maximum(s["v_hat"], s["v"])
    _bounded(w, s["m"], s["v_hat"], t, h, h["alpha"], t / h["gamma"])


def plain_adabelief(w, g, s, t, h):
    s["mean"][...] = h["beta1"] * s["mean"] + (1 - h["beta1"]) * g
    s["var"][...] = h["beta2"] * s["var"] + (1 - h["beta2"]) * (g - s["mean"]) ** 2 + h["eps"]
    step = h["alpha"] / (1 - h["beta1"] ** t)
    w -= step * s["mean"] / (sqrt(s["var"]) / math.sqrt(1 - h["beta2"] ** t) + h["eps"])


def plain_lamb(w, g, s, t, h):
    _moments(g, s, h)
    r = s["mean"] / (sqrt(s["var"]) + h["eps"]) + h["wd"] * w
    r_norm = norm(r)
    ratio = min(max(norm(w), h["gamma_l"]), h["gamma_u"]) / r_norm if r_norm > h["eps"] else 1
    w -= h["eta"] * ratio * r


def plain_lars(w, g, s, t, h):
    g_norm, w_norm = norm(g), norm(w)
    x = g_norm + h["wd"] * w_norm
    x = x + h["eps"] if x < h["eps"] else x
    local = h["lr"] if w_norm < h["eps"] else h["lr"] * h["coefficient"] * w_norm / x
    s["v"][...] = h["momentum"] * s["v"] + local * (g + h["wd"] * w)
    w -= s["v"]


def plain_lion(w, g, s, t, h):
    u = np.sign(h["beta1"] * s["m"] + (1 - h["beta1"]) * g)
    s["m"][...] = h["beta2"] * s["m"] + (1 - h["beta2"]) * g
    w -= h["lr"] * (u + h["wd"] * w)


def main() -> None:
    parser = argparse.ArgumentParser(description="solver update benchmark")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import symcompile.solvers as S
    from symcompile.ops.update_rules import RULES, state_names
    from symcompile.runtime.execution import update_function

    with tempfile.TemporaryDirectory() as cache:
        os.environ["SYMCOMPILE_CACHE_DIR"] = cache
        rows = []
        for name, cls in S.SOLVERS.items():
            solver = cls()
            rule = RULES[solver.rule]
            options = tuple(sorted(solver.options().items()))
            kernel = update_function(solver.rule, options)
            hyper = solver.rule_arguments()
            plain = globals()[f"plain_{solver.rule}"]
            names = state_names(rule, dict(options))

            def fresh(names=names):
                params = {k: v.copy() for k, v in PARAMS0.items()}
                states = {k: {n: np.zeros_like(v) for n in names} for k, v in params.items()}
                return params, states

            def generated_run(steps, kernel=kernel, hyper=hyper, rule=rule):
                params, states = fresh()
                values = tuple(hyper.values())
                arrays = {key: tuple(states[key].values()) for key in params}
                start = time.perf_counter()
                for t in range(1, steps + 1):
                    scalars = (t, *values) if rule.uses_t else values
                    for key, w in params.items():
                        grad = GRADS[key].copy() if rule.name == "lars" else GRADS[key]
                        kernel(w, grad, *arrays[key], *scalars)
                return (time.perf_counter() - start) / steps, params

            def plain_run(steps, plain=plain, hyper=hyper):
                params, states = fresh()
                start = time.perf_counter()
                for t in range(1, steps + 1):
                    for key, w in params.items():
                        grad = GRADS[key].copy() if plain is plain_lars else GRADS[key]
                        plain(w, grad, states[key], t, hyper)
                return (time.perf_counter() - start) / steps, params

            generated_run(3)
            plain_run(3)
            gen_times, plain_times = [], []
            for _ in range(args.repeats):
                seconds, gen_params = generated_run(args.steps)
                gen_times.append(seconds)
                seconds, plain_params = plain_run(args.steps)
                plain_times.append(seconds)
            drift = max(float(np.max(np.abs(gen_params[k] - plain_params[k]))) for k in SHAPES)
            gen, ref = statistics.median(gen_times), statistics.median(plain_times)
            rows.append((name, gen, ref, drift))

    print(f"solver updates of {sum(np.prod(s) for s in SHAPES.values())} parameters "
          f"(784-256-10); {args.steps} updates x {args.repeats} repeats, median")
    print(f"{'solver':<16}{'generated us':>14}{'plain us':>12}{'ratio':>9}{'target':>9}"
          f"{'max |diff|':>14}")
    for name, gen, ref, drift in rows:
        print(f"{name:<16}{gen * 1e6:>14.1f}{ref * 1e6:>12.1f}{gen / ref:>8.2f}x{'<= 1.00':>9}"
              f"{drift:>14.2e}")


if __name__ == "__main__":
    main()
