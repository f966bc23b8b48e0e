"""Issue 15's harness: every workload through symcompile and its peers, interleaved in one
process, one thread (OMP/OPENBLAS/MKL_NUM_THREADS=1, the XLA_FLAGS of the other scripts,
torch.set_num_threads(1), the process pinned to one CPU).

Workloads (names for --only):

  linreg       the tutorial's y = a*x + b, mean squared error, Sgd(0.01), batch 32
  mlp-bN       784-256-10 tanh MLP, softmax cross-entropy, Sgd(0.1), batch N in
               1, 32, 128, 1024, 4096
  mlp-4x256    the MLP with 4 hidden tanh layers of 256, batch 128
  mlp-16x256   the MLP with 16 hidden tanh layers of 256, batch 128
  adam-mlp     784-256-10 MLP, batch 128, Adam(alpha 1e-3, beta1 0.9, beta2 0.999, eps 1e-8)
  cnn          the LeNet-like CNN of bench/cnn.py (2 convolutions, batch normalization,
               2 max poolings, 2 affine layers) on (64, 1, 28, 28) batches, Sgd(0.1)

Implementations of each workload, each a full training step (forward, gradient, update):

  generated step   the fused sgd_step / adam_step nn.compile() generates for the graph
                   (its compile time, cold, SymPy already imported, is printed too)
  nnabla loop      x.d = ...; loss.forward(); solver.zero_grad(); loss.backward();
                   solver.update() on the same graph (symcompile's runtime)
  numpy (hand)     the step written by hand in NumPy (for linreg and the 784-256-10 MLP
                   verbatim ../shared/bench's IMPL=numpy step, generalised to the batch)
  torch eager      torch.optim.SGD / Adam on autograd, when torch is installed
  jax.jit          one jitted step (optax.adam for Adam; a hand Adam if optax is missing)
  pytensor         pytensor.function with updates, when PyTensor is installed (linreg and
                   the MLPs)
  GEMM floor       only the step's matrix products (forward and backward, the shapes and
                   transposes the step multiplies), on preallocated outputs, each through
                   np.matmul or np.dot, whichever is faster for its operands: the time no
                   NumPy step can beat (none for linreg, which multiplies no matrices)

One thread: the process is pinned to one CPU (os.sched_setaffinity; --no-pin to skip),
since jax.jit ignores the XLA_FLAGS meant to keep it to one thread and otherwise runs on
every core; each table's 'cores' column is the CPU time over the wall time while timing.

Every implementation starts from the same parameters and cycles through the same batches.
Before timing, each runs a few steps from that start and its losses are compared with the
generated step's (a WARNING line when they differ beyond float32 tolerance). Timing: each
repeat builds every implementation afresh (parameters reset) and times it for --steps
steps after a warm-up, the implementations interleaved (the order rotated every repeat) so
that drift of the machine affects all alike; the median over repeats is reported.

Prints one table per workload: time per step, the ratio to the generated step, and the
issue's targets with whether each is met; then a summary of the unmet targets.

Usage: python bench/peers.py [--steps N] [--repeats R] [--only NAME[,NAME]] [--quick]
                             [--no-pin] [--threads N] [--json PATH]
(--steps N: N timed steps per run for every workload; by default each workload has its
own, about 0.2-0.5 s per run; the default run takes about 2.5 minutes. --threads N: N
threads for every library instead of one, the process pinned to N CPUs (bench/threads.py
compares 1 and 2). --json PATH: also write the medians, seconds per step, as JSON.)
"""

from __future__ import annotations

import os
import sys


def _threads_argument() -> int:
    """--threads N, read before NumPy is imported (the BLAS reads its thread count then)."""
    for i, arg in enumerate(sys.argv):
        value = arg.split("=", 1)[1] if arg.startswith("--threads=") else (
            sys.argv[i + 1] if arg == "--threads" and i + 1 < len(sys.argv) else None)
        if value is not None:
            if not value.isdigit() or int(value) < 1:
                raise SystemExit(f"--threads {value}: give a whole number of threads >= 1")
            return int(value)
    return 1


THREADS = _threads_argument()
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, str(THREADS))
if THREADS == 1:
    os.environ.setdefault("XLA_FLAGS",
                          "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

# jax.jit ignores those XLA_FLAGS (jaxlib 0.10: two cores busy during a jitted MLP step, see
# jax-ml/jax#1539): the process is pinned to THREADS CPUs, which holds every library to
# that many cores.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import pin_to_cpus  # noqa: E402

PINNED = None if "--no-pin" in sys.argv else pin_to_cpus(THREADS)
THREADS_TEXT = "one thread" if THREADS == 1 else f"{THREADS} threads"

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from common import time_per_step  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GEN, LOOP, HAND, TORCH, JAX, PYTENSOR, FLOOR = (
    "generated step", "nnabla loop", "numpy (hand)", "torch eager", "jax.jit", "pytensor",
    "GEMM floor")
CHECK_STEPS = 4
TOLERANCE = 1e-4  # relative (to max(1, |loss|)) difference of losses allowed in float32


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def say(message: str) -> None:
    print(f"[peers] {message}", file=sys.stderr, flush=True)


class Workload:
    """One row group of the table: its batches, implementations and targets."""

    def __init__(self, name, title, batches, steps, warmup=10):
        self.name, self.title, self.batches = name, title, batches
        self.steps, self.warmup = steps, warmup
        self.factories: dict = {}  # implementation -> factory returning a fresh step
        self.notes: dict[str, str] = {}  # implementation -> why it is not timed / remark
        self.targets: list[tuple[str, str, float]] = []  # (subject, versus, limit)
        self.compile_ms = None
        self.extra: list[str] = []

    def add_loop(self):
        """The nnabla loop, which building the generated step set up (on its graph)."""
        if GEN in self.factories:
            self.factories[LOOP] = self.loop
        else:
            self.notes[LOOP] = "skipped: the graph did not compile"

    def add(self, name, build, *requires, note=""):
        """Add implementation `name`, built by `build()` (-> factory) when every package
        of `requires` is installed; else a "not installed" row."""
        missing = [package for package in requires if not installed(package)]
        if missing:
            self.notes[name] = f"not installed ({', '.join(missing)})"
            return
        try:
            self.factories[name] = build()
        except Exception as error:  # a broken peer is reported, not fatal
            self.notes[name] = f"failed to build: {type(error).__name__}: {error}"
            return
        if note:
            self.notes[name] = note


# ---------------------------------------------------------------- the generated modules

def compile_timed(loss, name, directory, solver="sgd"):
    import symcompile as nn

    started = time.perf_counter()
    module = nn.compile(loss, name=name, output_dir=directory, solver=solver).module
    return module, (time.perf_counter() - started) * 1e3


def generated_factory(module, init, feed, scalars, solver="sgd"):
    """A factory of the module's fused step; `feed` maps each of the module's INPUTS to
    the index of its array in a batch; `init()` gives fresh parameters by name (the
    module's argument names may differ: PARAMETERS maps one to the other)."""
    inputs = [feed[name] for name in module.INPUTS]
    function = getattr(module, f"{solver}_step")

    def factory():
        params = init()
        args = [params[name] for name in module.PARAMETERS]  # keyed by parameter name
        if solver == "adam":
            args += [np.zeros(spec["shape"], np.float32) for spec in module.STATE.values()]
            count = [0]

            def run(*batch):
                count[0] += 1
                return function(*[batch[i] for i in inputs], *args, count[0], *scalars)

            return run

        def run(*batch):
            return function(*[batch[i] for i in inputs], *args, *scalars)

        return run

    return factory


def loop_factory(loss, feed, init, solver_class, **options):
    """The nnabla-style loop on the graph of `loss`; `feed` maps input Variables to the
    index of their array in a batch."""
    import symcompile as nn

    everything = nn.get_parameters(grad_only=False)
    trainable = nn.get_parameters()
    pairs = list(feed.items())

    def factory():
        for name, value in init().items():
            everything[name].d = value
        solver = solver_class(**options)
        solver.set_parameters(trainable)

        def run(*batch):
            for variable, index in pairs:
                variable.d = batch[index]
            loss.forward()
            solver.zero_grad()
            loss.backward()
            solver.update()
            return loss.d

        return run

    return factory



def _running(calls):
    """The factory of a step that makes each of `calls` (the GEMM floor's products)."""
    def factory():
        def step(*_):
            for call in calls:
                call()

        return step

    return factory


def fastest_product(a, b, out):
    """A call computing a @ b into `out`: np.matmul or np.dot, whichever is faster for
    these operands (np.matmul is far slower than np.dot on some shapes, such as the outer
    product (784, 1) @ (1, 256) of a batch of 1)."""
    candidates = [lambda: np.matmul(a, b, out=out), lambda: np.dot(a, b, out=out)]
    best, best_time = None, float("inf")
    for call in candidates:
        call()
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(5):
                call()
            runs.append(time.perf_counter() - started)
        if min(runs) < best_time:
            best, best_time = call, min(runs)
    return best


# ---------------------------------------------------------------- linear regression

def linreg(steps):
    import linreg as L  # bench/linreg.py: the workload's constants and its peers' steps

    BS, A, B, LR = L.BS, L.A, L.B, L.LR
    a0, b0 = L.A0, L.B0
    rng = np.random.default_rng(0)
    x = rng.standard_normal(64 * BS).astype(np.float32).reshape(-1, BS, 1)
    y = (A * x + B + 0.01 * rng.standard_normal(x.shape)).astype(np.float32)
    w = Workload("linreg", f"linreg: y = a*x + b, MSE, Sgd({LR}), batch {BS}",
                 list(zip(x, y, strict=True)), steps or 20000, warmup=200)

    def init():
        return {"a": np.full((1, 1), a0, np.float32), "b": np.full((1, 1), b0, np.float32)}

    def generated():
        sys.path.insert(0, str(ROOT / "examples"))
        from linear_regression import build

        import symcompile as nn

        nn.clear_parameters()
        loss, xv, yv, _ = build()
        module, w.compile_ms = compile_timed(loss, "peers_linreg", DIRECTORY)
        w.loop = loop_factory(loss, {xv: 0, yv: 1}, init, _solvers().Sgd, lr=LR)
        return generated_factory(module, init, {"x": 0, "y_true": 1}, (LR,))

    def hand():
        return lambda: L.numpy_hand_step()[0]

    def torch_():
        return lambda: L.torch_step()[0]

    def jax_():
        return lambda: L.jax_step()[0]

    def pytensor_():
        import pytensor
        import pytensor.tensor as pt

        def factory():
            p = init()
            a = pytensor.shared(p["a"], shape=(1, 1))
            b = pytensor.shared(p["b"], shape=(1, 1))
            xs, ys = pt.matrix("x", dtype="float32"), pt.matrix("y", dtype="float32")
            loss = pt.mean((ys - (a * xs + b)) ** 2)
            ga, gb = pytensor.grad(loss, [a, b])
            lr = np.float32(LR)
            f = pytensor.function([xs, ys], loss, updates=[(a, a - lr * ga), (b, b - lr * gb)])
            f.trust_input = True
            return f

        factory()  # compile once now: a failure is reported as the row's note
        return factory

    w.add(GEN, generated)
    w.add_loop()
    w.add(HAND, hand)
    w.add(TORCH, torch_, "torch")
    w.add(JAX, jax_, "jax")
    w.add(PYTENSOR, pytensor_, "pytensor")
    w.notes[FLOOR] = "n/a: the step multiplies no matrices"
    w.targets = [(GEN, JAX, 1.0), (GEN, TORCH, 1.0), (GEN, PYTENSOR, 1.0),
                 (LOOP, HAND, 1.0)]
    return w


# ---------------------------------------------------------------- MLPs

def mlp(name, batch, hidden_layers, steps, adam=False):
    """784 -(256 tanh) x hidden_layers- 10 MLP, softmax cross-entropy, at `batch`."""
    sizes = [784] + [256] * hidden_layers + [10]
    layers = len(sizes) - 1
    LR = 0.1
    ALPHA, BETA1, BETA2, EPS = 1e-3, 0.9, 0.999, 1e-8
    nb = 16 if batch <= 128 else 4
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((nb, batch, sizes[0])).astype(np.float32)
    ts = rng.integers(0, sizes[-1], (nb, batch))
    w0 = [(rng.standard_normal((i, o)) / np.sqrt(i)).astype(np.float32)
          for i, o in zip(sizes, sizes[1:], strict=False)]
    batches = [(xs[i], ts[i], ts[i].reshape(batch, 1).astype(np.float32)) for i in range(nb)]
    shape = "-".join(map(str, sizes)) if hidden_layers <= 4 else f"784-256x{hidden_layers}-10"
    solver = (f"Adam({ALPHA}, {BETA1}, {BETA2}, {EPS})" if adam else f"Sgd({LR})")
    title = f"{name}: {shape} tanh MLP, softmax cross-entropy, {solver}, batch {batch}"
    default = {1: 500, 32: 500, 128: 100 if adam else 200, 1024: 30, 4096: 10}[batch]
    if hidden_layers > 1:
        default = 200 // hidden_layers
    w = Workload(name, title, batches, steps or default, warmup=10 if batch < 1024 else 3)
    w.batch = batch

    def init():
        p = {}
        for i, wi in enumerate(w0, 1):
            p[f"W{i}"] = wi.copy()
            p[f"b{i}"] = np.zeros(wi.shape[1], np.float32)
        return p

    names = [f"{kind}{i}" for i in range(1, layers + 1) for kind in ("W", "b")]

    def generated():
        import symcompile as nn
        import symcompile.functions as F

        nn.clear_parameters()
        x = nn.Variable((batch, sizes[0]))
        t = nn.Variable((batch, 1))
        h = x
        for i, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:], strict=False), 1):
            h = F.affine(h, nn.parameter.get_parameter_or_create(f"W{i}", (fan_in, fan_out)),
                         nn.parameter.get_parameter_or_create(f"b{i}", (fan_out,)))
            if i < layers:
                h = F.tanh(h)
        loss = F.mean(F.softmax_cross_entropy(h, t))
        module, w.compile_ms = compile_timed(loss, f"peers_{name.replace('-', '_')}",
                                             DIRECTORY, "adam" if adam else "sgd")
        S = _solvers()
        if adam:
            w.loop = loop_factory(loss, {x: 0, t: 2}, init, S.Adam, alpha=ALPHA, beta1=BETA1,
                                  beta2=BETA2, eps=EPS)
            return generated_factory(module, init, {"x": 0, "t": 2},
                                     (ALPHA, BETA1, BETA2, EPS), "adam")
        w.loop = loop_factory(loss, {x: 0, t: 2}, init, S.Sgd, lr=LR)
        return generated_factory(module, init, {"x": 0, "t": 2}, (LR,))

    def hand():
        def factory():
            p = init()
            params = [p[n] for n in names]
            moments = [(np.zeros_like(v), np.zeros_like(v)) for v in params]
            count = [0]

            def step(x, t, _):
                hs = [x]
                for i in range(layers - 1):
                    hs.append(np.tanh(hs[-1] @ params[2 * i] + params[2 * i + 1]))
                z = hs[-1] @ params[-2] + params[-1]
                z = z - z.max(axis=1, keepdims=True)
                e = np.exp(z); s = e.sum(axis=1, keepdims=True)  # noqa: E702
                logp = z - np.log(s)
                loss = -logp[np.arange(batch), t].mean()
                dz = e / s; dz[np.arange(batch), t] -= 1; dz /= batch  # noqa: E702
                grads = [None] * len(params)
                for i in reversed(range(layers)):
                    grads[2 * i] = hs[i].T @ dz
                    grads[2 * i + 1] = dz.sum(0)
                    if i:
                        dz = (dz @ params[2 * i].T) * (1 - hs[i] * hs[i])
                if adam:
                    count[0] += 1
                    c = count[0]
                    alpha_t = ALPHA * np.sqrt(1 - BETA2 ** c) / (1 - BETA1 ** c)
                    for p_, g_, (m, v) in zip(params, grads, moments, strict=True):
                        m[...] = BETA1 * m + (1 - BETA1) * g_
                        v[...] = BETA2 * v + (1 - BETA2) * g_ * g_
                        p_ -= alpha_t * m / (np.sqrt(v) + EPS)
                else:
                    for p_, g_ in zip(params, grads, strict=True):
                        p_ -= LR * g_
                return loss

            return step

        return factory

    def torch_():
        import torch

        def factory():
            p = init()
            params = [torch.tensor(p[n], requires_grad=True) for n in names]
            opt = (torch.optim.Adam(params, lr=ALPHA, betas=(BETA1, BETA2), eps=EPS) if adam
                   else torch.optim.SGD(params, lr=LR))

            def step(x, t, _):
                h = torch.from_numpy(x)
                for i in range(layers - 1):
                    h = torch.tanh(h @ params[2 * i] + params[2 * i + 1])
                loss = torch.nn.functional.cross_entropy(h @ params[-2] + params[-1],
                                                         torch.from_numpy(t))
                opt.zero_grad()
                loss.backward()
                opt.step()
                return loss.item()

            return step

        return factory

    def jax_():
        import jax
        import jax.numpy as jnp

        def loss_fn(p, x, t):
            h = x
            for i in range(layers - 1):
                h = jnp.tanh(h @ p[2 * i] + p[2 * i + 1])
            z = h @ p[-2] + p[-1]
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), t[:, None], 1))

        if adam and installed("optax"):
            import optax

            optimizer = optax.adam(ALPHA, b1=BETA1, b2=BETA2, eps=EPS)

            @jax.jit
            def jstep(state, x, t):
                p, opt_state = state
                value, g = jax.value_and_grad(loss_fn)(p, x, t)
                updates, opt_state = optimizer.update(g, opt_state, p)
                return (optax.apply_updates(p, updates), opt_state), value

            def fresh(p):
                return (p, optimizer.init(p))
        elif adam:
            @jax.jit
            def jstep(state, x, t):
                p, m, v, c = state
                value, g = jax.value_and_grad(loss_fn)(p, x, t)
                c = c + 1
                alpha_t = ALPHA * jnp.sqrt(1 - BETA2 ** c) / (1 - BETA1 ** c)
                m = tuple(BETA1 * mi + (1 - BETA1) * gi for mi, gi in zip(m, g, strict=True))
                v = tuple(BETA2 * vi + (1 - BETA2) * gi * gi for vi, gi in zip(v, g, strict=True))
                p = tuple(pi - alpha_t * mi / (jnp.sqrt(vi) + EPS)
                          for pi, mi, vi in zip(p, m, v, strict=True))
                return (p, m, v, c), value

            def fresh(p):
                zeros = tuple(jnp.zeros_like(pi) for pi in p)
                return (p, zeros, zeros, jnp.float32(0))
        else:
            @jax.jit
            def jstep(p, x, t):
                value, g = jax.value_and_grad(loss_fn)(p, x, t)
                return tuple(pi - LR * gi for pi, gi in zip(p, g, strict=True)), value

            def fresh(p):
                return p

        def factory():
            p = init()
            state = [fresh(tuple(jnp.array(p[n]) for n in names))]

            def step(x, t, _):
                state[0], value = jstep(state[0], x, t)
                return float(value)  # waits for the result

            return step

        return factory

    def pytensor_():
        import pytensor
        import pytensor.tensor as pt

        def factory():
            p = init()
            params = [pytensor.shared(p[n]) for n in names]
            x = pt.matrix("x", dtype="float32")
            t = pt.vector("t", dtype="int64")
            h = x
            for i in range(layers - 1):
                h = pt.tanh(h @ params[2 * i] + params[2 * i + 1])
            logp = pt.special.log_softmax(h @ params[-2] + params[-1], axis=1)
            loss = -pt.mean(logp[pt.arange(x.shape[0]), t])
            grads = pytensor.grad(loss, params)
            if adam:
                c = pytensor.shared(np.float32(0))
                c1 = c + 1
                alpha_t = ALPHA * pt.sqrt(1 - BETA2 ** c1) / (1 - BETA1 ** c1)
                updates = [(c, c1)]
                for p_, g_ in zip(params, grads, strict=True):
                    m = pytensor.shared(np.zeros_like(p_.get_value()))
                    v = pytensor.shared(np.zeros_like(p_.get_value()))
                    m1 = BETA1 * m + (1 - BETA1) * g_
                    v1 = BETA2 * v + (1 - BETA2) * g_ * g_
                    updates += [(m, m1), (v, v1),
                                (p_, p_ - (alpha_t * m1 / (pt.sqrt(v1) + EPS)).astype("float32"))]
            else:
                lr = np.float32(LR)
                updates = [(p_, p_ - lr * g_) for p_, g_ in zip(params, grads, strict=True)]
            f = pytensor.function([x, t], loss, updates=updates)
            return lambda x, t, _: f(x, t)

        factory()
        return factory

    def floor():
        """The products of the step: per layer x @ W forward, h.T @ dz for the weight's
        gradient and (but for the first layer) dz @ W.T for its input's."""
        r = np.random.default_rng(1)
        products = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
            h = None if i == 0 else r.standard_normal((batch, fan_in), np.float32)
            weight = w0[i].copy()
            dz = r.standard_normal((batch, fan_out), np.float32)
            products.append((h, weight, dz, np.empty((batch, fan_out), np.float32),
                             np.empty((fan_in, fan_out), np.float32),
                             np.empty((batch, fan_in), np.float32)))

        x0 = batches[0][0]
        calls = []
        for i, (h, weight, dz, out, grad_w, grad_h) in enumerate(products):
            h = x0 if i == 0 else h
            calls.append(fastest_product(h, weight, out))
            calls.append(fastest_product(h.T, dz, grad_w))
            if i:
                calls.append(fastest_product(dz, weight.T, grad_h))

        return _running(calls)

    w.add(GEN, generated)
    w.add_loop()
    w.add(HAND, hand)
    w.add(TORCH, torch_, "torch")
    if adam:
        w.add(JAX, jax_, "jax", note="optax.adam" if installed("optax")
              else "hand Adam in jax (optax not installed)")
    else:
        w.add(JAX, jax_, "jax")
    w.add(PYTENSOR, pytensor_, "pytensor")
    w.add(FLOOR, floor)
    w.targets = [(GEN, JAX, 1.0), (GEN, TORCH, 1.0)]
    if batch >= 32:
        w.targets.append((GEN, FLOOR, 1.1))
    w.targets.append((LOOP, GEN, 1.05))
    return w



def _taking_targets(make_step):
    """bench/cnn.py's step factory `make_step` (x, t) as this harness calls steps: (x, t,
    the targets as floats, which its steps do not read)."""
    def factory():
        step = make_step()
        return lambda x, t, _: step(x, t)

    return factory

# ---------------------------------------------------------------- the CNN

def cnn_workload(steps):
    import cnn as C  # bench/cnn.py: the network, its data and its torch step

    BS, K, LR = C.BS, C.K, C.LR
    batches = [(x, t, t.reshape(BS, 1).astype(np.float32)) for x, t in C.BATCHES]
    title = (f"cnn: ({BS}, 1, {C.SIDE}, {C.SIDE}) -> conv {C.C1} {K}x{K} pad {C.PAD1} -> BN -> "
             f"relu -> max pool 2 -> conv {C.C2} {K}x{K} -> BN -> relu -> max pool 2 -> affine "
             f"{C.HIDDEN} -> relu -> affine {C.CLASSES}, softmax cross-entropy, Sgd({LR})")
    w = Workload("cnn", title, batches, steps or 15, warmup=3)
    w.batch = BS
    decay = 1 - C.MOMENTUM

    def generated():
        import symcompile as nn
        import symcompile.functions as F

        nn.clear_parameters()
        shapes = dict(C.SHAPES)

        def get(name):
            return nn.parameter.get_parameter_or_create(name, shapes[name],
                                                        need_grad=name not in C.RUNNING)

        def block(h, i, **conv):
            h = F.convolution(h, get(f"w{i}"), get(f"b{i}"), **conv)
            h = F.batch_normalization(h, get(f"beta{i}"), get(f"gamma{i}"), get(f"mean{i}"),
                                      get(f"var{i}"), decay_rate=decay, eps=C.EPS)
            return F.max_pooling(F.relu(h), (2, 2))

        x = nn.Variable((BS, 1, C.SIDE, C.SIDE))  # one a line: INPUTS is named after them
        t = nn.Variable((BS, 1))
        h = block(block(x, 1, pad=(C.PAD1, C.PAD1)), 2)
        h = F.relu(F.affine(h, get("w3"), get("b3")))
        loss = F.mean(F.softmax_cross_entropy(F.affine(h, get("w4"), get("b4")), t))
        module, w.compile_ms = compile_timed(loss, "peers_cnn", DIRECTORY)
        w.loop = loop_factory(loss, {x: 0, t: 2}, C.initial, _solvers().Sgd, lr=LR)
        return generated_factory(module, C.initial, {"x": 0, "t": 2}, (LR,))

    def conv_forward(x, weight, bias, pad):
        xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x
        n, c, hp, wp = xp.shape
        ho, wo = hp - K + 1, wp - K + 1
        windows = np.lib.stride_tricks.sliding_window_view(xp, (K, K), axis=(2, 3))
        cols = windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * K * K)
        y = cols @ weight.reshape(weight.shape[0], -1).T + bias
        return y.reshape(n, ho, wo, -1).transpose(0, 3, 1, 2), cols

    def conv_backward(gy, cols, weight, x_shape, pad, need_input):
        n, o, ho, wo = gy.shape
        g2 = gy.transpose(0, 2, 3, 1).reshape(-1, o)
        gw = (g2.T @ cols).reshape(weight.shape)
        gb = g2.sum(0)
        if not need_input:
            return None, gw, gb
        c = x_shape[1]
        gcols = (g2 @ weight.reshape(o, -1)).reshape(n, ho, wo, c, K, K)
        gxp = np.zeros((n, c, ho + K - 1, wo + K - 1), np.float32)
        for i in range(K):
            for j in range(K):
                gxp[:, :, i:i + ho, j:j + wo] += gcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
        return (gxp[:, :, pad:-pad, pad:-pad] if pad else gxp), gw, gb

    def hand():
        def factory():
            p = C.initial()

            def block_forward(h, i, pad):
                conv, cols = conv_forward(h, p[f"w{i}"], p[f"b{i}"], pad)
                mean = conv.mean(axis=(0, 2, 3), keepdims=True)
                var = conv.var(axis=(0, 2, 3), keepdims=True)
                count = conv.size // conv.shape[1]
                p[f"mean{i}"][...] = decay * p[f"mean{i}"] + (1 - decay) * mean
                p[f"var{i}"][...] = (decay * p[f"var{i}"]
                                     + (1 - decay) * var * (count / (count - 1)))
                inv = 1 / np.sqrt(var + C.EPS)
                xhat = (conv - mean) * inv
                bn = xhat * p[f"gamma{i}"] + p[f"beta{i}"]
                r = np.maximum(bn, 0)
                n, c, hh, ww = r.shape
                windows = r.reshape(n, c, hh // 2, 2, ww // 2, 2)
                pooled = windows.max(axis=(3, 5))
                return pooled, (h.shape, cols, xhat, inv, bn, windows, pooled, pad)

            def block_backward(g, i, saved, need_input):
                x_shape, cols, xhat, inv, bn, windows, pooled, pad = saved
                mask = windows == pooled[:, :, :, None, :, None]
                g = (mask * g[:, :, :, None, :, None]).reshape(bn.shape) * (bn > 0)
                axes = (0, 2, 3)
                p_grads = {f"beta{i}": g.sum(axis=axes, keepdims=True),
                           f"gamma{i}": (g * xhat).sum(axis=axes, keepdims=True)}
                gx = g * p[f"gamma{i}"]
                gx = (gx - gx.mean(axis=axes, keepdims=True)
                      - xhat * (gx * xhat).mean(axis=axes, keepdims=True)) * inv
                gin, p_grads[f"w{i}"], p_grads[f"b{i}"] = conv_backward(
                    gx, cols, p[f"w{i}"], x_shape, pad, need_input)
                return gin, p_grads

            def step(x, t, _):
                h1, saved1 = block_forward(x, 1, C.PAD1)
                h2, saved2 = block_forward(h1, 2, 0)
                flat = h2.reshape(BS, -1)
                a3 = flat @ p["w3"] + p["b3"]
                h3 = np.maximum(a3, 0)
                z = h3 @ p["w4"] + p["b4"]
                z = z - z.max(axis=1, keepdims=True)
                e = np.exp(z); s = e.sum(axis=1, keepdims=True)  # noqa: E702
                loss = -(z - np.log(s))[np.arange(BS), t].mean()
                dz = e / s; dz[np.arange(BS), t] -= 1; dz /= BS  # noqa: E702
                grads = {"w4": h3.T @ dz, "b4": dz.sum(0)}
                d3 = (dz @ p["w4"].T) * (a3 > 0)
                grads["w3"], grads["b3"] = flat.T @ d3, d3.sum(0)
                g2 = (d3 @ p["w3"].T).reshape(h2.shape)
                g1, more = block_backward(g2, 2, saved2, True)
                grads.update(more)
                grads.update(block_backward(g1, 1, saved1, False)[1])
                for name, g in grads.items():
                    p[name] -= LR * g
                return loss

            return step

        return factory

    def torch_():
        return _taking_targets(C.torch_factory)

    def jax_():
        return _taking_targets(C.jax_factory)

    def floor():
        """The products of the step, operands contiguous as the hand step's: each
        convolution's im2col product forward, its weight gradient and (the second) its
        columns' gradient; each affine layer's forward, weight and input gradients."""
        r = np.random.default_rng(1)
        o1, o2 = C.C1, C.C2
        m1, m2 = BS * C.SIDE * C.SIDE, BS * (C.S1 - K + 1) ** 2
        k1, k2 = K * K, C.C1 * K * K
        shapes = [  # (rows, inner, columns) of each product
            (m1, k1, o1), (o1, m1, k1),                       # conv1: forward, weights
            (m2, k2, o2), (o2, m2, k2), (m2, o2, k2),         # conv2: forward, weights, cols
            (BS, C.FLAT, C.HIDDEN), (C.FLAT, BS, C.HIDDEN), (BS, C.HIDDEN, C.FLAT),
            (BS, C.HIDDEN, C.CLASSES), (C.HIDDEN, BS, C.CLASSES), (BS, C.CLASSES, C.HIDDEN)]
        calls = [fastest_product(r.standard_normal((m, k), np.float32),
                                 r.standard_normal((k, n), np.float32),
                                 np.empty((m, n), np.float32)) for m, k, n in shapes]

        return _running(calls)

    w.add(GEN, generated)
    w.add_loop()
    w.add(HAND, hand)
    w.add(TORCH, torch_, "torch")
    w.add(JAX, jax_, "jax")
    w.notes[PYTENSOR] = ("not installed (pytensor)" if not installed("pytensor")
                         else "not written for this workload")
    w.add(FLOOR, floor)
    w.targets = [(GEN, JAX, 1.0), (GEN, TORCH, 1.0), (GEN, FLOOR, 1.1)]
    return w


# ---------------------------------------------------------------- running and printing

def _solvers():
    import symcompile.solvers as S

    return S


WORKLOADS = {
    "linreg": lambda steps: linreg(steps),
    **{f"mlp-b{b}": (lambda steps, b=b: mlp(f"mlp-b{b}", b, 1, steps))
       for b in (1, 32, 128, 1024, 4096)},
    "mlp-4x256": lambda steps: mlp("mlp-4x256", 128, 4, steps),
    "mlp-16x256": lambda steps: mlp("mlp-16x256", 128, 16, steps),
    "adam-mlp": lambda steps: mlp("adam-mlp", 128, 1, steps, adam=True),
    "cnn": lambda steps: cnn_workload(steps),
}


def as_float(value) -> float:
    """A step's loss as a float (a torch tensor detached first)."""
    return float(value.detach() if hasattr(value, "detach") else value)


def check_losses(w: Workload) -> list[str]:
    """Each implementation's losses over the first CHECK_STEPS steps against the generated
    step's; returns the warning lines (also printed)."""
    losses = {}
    for name, factory in list(w.factories.items()):
        if name == FLOOR:
            continue
        started = time.perf_counter()
        try:
            step = factory()
            losses[name] = [as_float(step(*w.batches[i % len(w.batches)]))
                            for i in range(CHECK_STEPS)]
        except Exception as error:  # a failing peer is reported, not fatal
            w.notes[name] = f"failed: {type(error).__name__}: {error}"[:200]
            del w.factories[name]
            continue
        if name == LOOP:
            w.extra.append(f"first {CHECK_STEPS} steps of the nnabla loop, compiling its "
                           f"modules: {(time.perf_counter() - started) * 1e3:.0f} ms")
    if GEN not in losses:
        w.extra.append("losses not compared: the generated step is missing")
        return [f"WARNING {w.name}: no generated step ({w.notes.get(GEN)})"]
    base = losses[GEN]
    warnings, worst = [], 0.0
    for name, values in losses.items():
        diff = max(abs(a - b) / max(1.0, abs(b)) for a, b in zip(values, base, strict=True))
        worst = max(worst, diff)
        if not diff <= TOLERANCE:
            warnings.append(f"WARNING {w.name}: {name} disagrees with the generated step: "
                            f"losses {', '.join(f'{v:.6f}' for v in values)} vs "
                            f"{', '.join(f'{v:.6f}' for v in base)} (relative {diff:.1e})")
    w.extra.append(f"losses of the first {CHECK_STEPS} steps agree within {worst:.1e} "
                   f"(generated: {', '.join(f'{v:.5f}' for v in base)})" if not warnings
                   else f"losses of the first {CHECK_STEPS} steps: {len(warnings)} "
                   f"implementation(s) disagree (generated: "
                   f"{', '.join(f'{v:.5f}' for v in base)})")
    return warnings


def measure(w: Workload, repeats: int) -> dict[str, float]:
    """Median seconds per step of each implementation; sets w.cores, the process's CPU
    time over wall time while each ran (1.00: one core busy)."""
    names = list(w.factories)
    runs: dict[str, list[float]] = {name: [] for name in names}
    cpu = dict.fromkeys(names, 0.0)
    wall = dict.fromkeys(names, 0.0)
    for r in range(repeats):
        say(f"{w.name}: repeat {r + 1}/{repeats}")
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            step = w.factories[name]()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            runs[name].append(time_per_step(step, w.batches, w.steps, w.warmup))
            cpu[name] += time.process_time() - cpu0
            wall[name] += time.perf_counter() - wall0
    w.cores = {name: cpu[name] / wall[name] for name in names}
    return {name: statistics.median(values) for name, values in runs.items()}


ORDER = [GEN, LOOP, HAND, TORCH, JAX, PYTENSOR, FLOOR]


def report(w: Workload, results: dict[str, float], repeats: int) -> list[str]:
    """Prints the workload's table; returns its unmet targets."""
    if GEN not in results:
        print(f"{w.title}: no generated step ({w.notes.get(GEN)}); nothing compared\n")
        return [f"{w.name}: no generated step"]
    base = results[GEN]
    unit, scale = ("us/step", 1e6) if base < 1e-3 else ("ms/step", 1e3)
    print(f"{w.title}; {THREADS_TEXT}; {w.steps} steps x {repeats} repeats, median")
    print(f"compile time of the generated module: {w.compile_ms:.0f} ms (cold, SymPy imported)")
    print(f"{'implementation':<16}{unit:>11}{'x gen':>9}{'cores':>7}   {'target':<26}"
          f"{'actual':>8}   met")
    unmet = []
    for name in ORDER:
        if name not in results:
            print(f"{name:<16}{'-':>11}{'-':>9}{'-':>7}   {w.notes.get(name, 'not timed')}")
            continue
        lines = []
        for subject, versus, limit in w.targets:
            if subject != name:
                continue
            label = "generated" if versus == GEN else versus
            if versus not in results:
                lines.append(f"{f'<= {limit:.2f}x {label}':<26}{'-':>8}   n/a "
                             f"({w.notes.get(versus, 'not timed')})")
                continue
            ratio = results[name] / results[versus]
            met = ratio <= limit
            lines.append(f"{f'<= {limit:.2f}x {label}':<26}{ratio:>7.2f}x   "
                         f"{'met' if met else 'NOT met'}")
            if not met:
                unmet.append(f"{w.name}: {name} is {ratio:.2f}x {label} "
                             f"(target <= {limit:.2f}x)")
        head = (f"{name:<16}{results[name] * scale:>11.3f}{results[name] / base:>8.2f}x"
                f"{w.cores[name]:>7.2f}   ")
        note = w.notes.get(name, "")
        if not lines:
            print(head + note)
        for i, line in enumerate(lines):
            print((head if i == 0 else " " * len(head)) + line
                  + (f"   ({note})" if note and i == 0 else ""))
    for line in w.extra:
        print(line)
    print()
    return unmet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per repeat for every workload (default: per "
                             "workload, ~0.2-0.5 s per run)")
    parser.add_argument("--repeats", type=int, default=None, help="default 5 (--quick: 1)")
    parser.add_argument("--only", default="",
                        help="comma-separated workloads: " + ", ".join(WORKLOADS))
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin the process to one CPU (jax.jit then uses every core)")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for every library (the process pinned to as many CPUs)")
    parser.add_argument("--json", default=None,
                        help="also write {workload: {implementation: seconds per step}} here")
    args = parser.parse_args()
    chosen = [n.strip() for n in args.only.split(",") if n.strip()] or list(WORKLOADS)
    unknown = [n for n in chosen if n not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; choose from "
                     f"{', '.join(WORKLOADS)}")
    repeats = args.repeats or (1 if args.quick else 5)

    global DIRECTORY
    with tempfile.TemporaryDirectory() as directory:
        DIRECTORY = directory
        os.environ["SYMCOMPILE_CACHE_DIR"] = directory  # cold compiles, no stale modules
        import sympy  # noqa: F401 - compile times are measured with SymPy already imported

        if installed("torch"):
            import torch

            torch.set_num_threads(THREADS)
        unmet, warnings, medians = [], [], {}
        started = time.perf_counter()
        print(f"{THREADS_TEXT}: *_NUM_THREADS={THREADS}, torch.set_num_threads({THREADS}), "
              + (f"process pinned to CPU(s) {', '.join(map(str, PINNED))}"
                 if PINNED is not None
                 else "process NOT pinned (--no-pin): jax.jit may use every core")
              + "; 'cores' = CPU time / wall time while timing\n")
        for name in chosen:
            say(f"{name}: building and compiling")
            w = WORKLOADS[name](args.steps)
            if args.quick and args.steps is None:
                w.steps, w.warmup = max(3, w.steps // 20), min(w.warmup, 3)
            say(f"{name}: checking the losses agree")
            found = check_losses(w)
            for line in found:
                print(line, flush=True)
            warnings += found
            results = measure(w, repeats)
            medians[name] = results
            unmet += report(w, results, repeats)
            sys.stdout.flush()
            say(f"{name}: done ({time.perf_counter() - started:.0f} s so far)")

    if args.json:
        Path(args.json).write_text(json.dumps({"threads": THREADS, "medians": medians},
                                              indent=1), encoding="utf-8")
    print("summary")
    if warnings:
        print(f"  {len(warnings)} loss disagreement(s): those rows compare different "
              "computations (see the WARNING lines)")
    if unmet:
        print(f"  {len(unmet)} unmet target(s):")
        for line in unmet:
            print(f"    {line}")
    else:
        print("  every target met")


DIRECTORY = None

if __name__ == "__main__":
    main()
