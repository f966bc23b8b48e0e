"""A LeNet-like CNN workload, timed side by side in one process (one thread):

  x (64, 1, 28, 28) -> convolution 6 5x5 pad 2 -> batch normalization -> relu -> max
  pooling 2x2 -> convolution 16 5x5 -> batch normalization -> relu -> max pooling 2x2 ->
  affine 120 -> relu -> affine 10 -> softmax cross-entropy, Sgd(0.1)

  generated sgd_step     the fused step symcompile generates for the nnabla-API graph
                         (its convolutions and poolings are the NumPy backend's kernels;
                         batch normalization in training mode, running statistics
                         updated in place)
  torch eager / jax.jit  the same network and step (batch normalization with the batch's
                         statistics, running statistics updated), when installed

Prints milliseconds per step with ratios to torch eager (or to the generated step when
torch is missing), the compile time of the graph (SymPy already imported), and each
convolution's forward alone: the generated module's kernels (im2col, alone too, then
conv_matmul, the product with the weights, whose result is a view the bias addition
copies: with it too) and the fused conv_forward kernel (used for convolutions whose
im2col matrix exceeds IM2COL_LIMIT) against the one matrix product of its im2col shapes
(and torch's conv2d), with the floor of any im2col that is written out: filling an
array of the matrix's size ("write", memory bandwidth; "floor" is the matmul plus that
write over the matmul, the best ratio such a convolution can reach); then the second
convolution's x-gradient alone: the generated module's conv_grad_x (over the flattened
batch for stride 1), the columns' gradient and col2im it replaced, and the one matrix
product of the columns' gradient's shapes. Targets (issue 13): the step within 1.2x of
torch eager, each forward within 1.3x of its matrix product.

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
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from common import interleaved, pin_to_one_cpu, table  # noqa: E402

BS, SIDE, C1, C2, HIDDEN, CLASSES, LR = 64, 28, 6, 16, 120, 10, 0.1
K, PAD1, EPS, MOMENTUM = 5, 2, 1e-5, 0.1  # torch's momentum is nnabla's 1 - decay_rate
S1 = SIDE // 2  # after the first convolution (same size) and pooling: 14
S2 = (S1 - K + 1) // 2  # after the second convolution (valid) and pooling: 5
FLAT = C2 * S2 * S2
rng = np.random.default_rng(0)
NB = 8
XS = rng.standard_normal((NB, BS, 1, SIDE, SIDE)).astype(np.float32)
TS = rng.integers(0, CLASSES, (NB, BS))
W1_0 = (rng.standard_normal((C1, 1, K, K)) / K).astype(np.float32)
W2_0 = (rng.standard_normal((C2, C1, K, K)) / np.sqrt(K * K * C1)).astype(np.float32)
W3_0 = (rng.standard_normal((FLAT, HIDDEN)) / np.sqrt(FLAT)).astype(np.float32)
W4_0 = (rng.standard_normal((HIDDEN, CLASSES)) / np.sqrt(HIDDEN)).astype(np.float32)
BATCHES = [(XS[i], TS[i]) for i in range(NB)]
# (name, shape): the argument order of the generated step after x and t
SHAPES = [("w1", W1_0.shape), ("b1", (C1,)),
          ("beta1", (1, C1, 1, 1)), ("gamma1", (1, C1, 1, 1)),
          ("mean1", (1, C1, 1, 1)), ("var1", (1, C1, 1, 1)),
          ("w2", W2_0.shape), ("b2", (C2,)),
          ("beta2", (1, C2, 1, 1)), ("gamma2", (1, C2, 1, 1)),
          ("mean2", (1, C2, 1, 1)), ("var2", (1, C2, 1, 1)),
          ("w3", W3_0.shape), ("b3", (HIDDEN,)), ("w4", W4_0.shape), ("b4", (CLASSES,))]
RUNNING = ("mean1", "var1", "mean2", "var2")


def initial():
    p = {"w1": W1_0.copy(), "w2": W2_0.copy(), "w3": W3_0.copy(), "w4": W4_0.copy()}
    for name, shape in SHAPES:
        if name not in p:
            fill = 1.0 if name.startswith(("gamma", "var")) else 0.0
            p[name] = np.full(shape, fill, np.float32)
    return p


def compile_module(directory):
    import symcompile as nn
    import symcompile.functions as F

    nn.clear_parameters()
    shapes = dict(SHAPES)

    def get(name):
        return nn.parameter.get_parameter_or_create(name, shapes[name],
                                                    need_grad=name not in RUNNING)

    def block(h, i, **conv):
        h = F.convolution(h, get(f"w{i}"), get(f"b{i}"), **conv)
        h = F.batch_normalization(h, get(f"beta{i}"), get(f"gamma{i}"), get(f"mean{i}"),
                                  get(f"var{i}"), decay_rate=1 - MOMENTUM, eps=EPS)
        return F.max_pooling(F.relu(h), (2, 2))

    x, t = nn.Variable((BS, 1, SIDE, SIDE)), nn.Variable((BS, 1))
    h = block(block(x, 1, pad=(PAD1, PAD1)), 2)
    h = F.relu(F.affine(h, get("w3"), get("b3")))
    y = F.affine(h, get("w4"), get("b4"))
    loss = F.mean(F.softmax_cross_entropy(y, t))
    started = time.perf_counter()
    result = nn.compile(loss, name="cnn_bench", output_dir=directory)
    module = result.module
    assert list(module.PARAMETERS) == [name for name, _ in SHAPES], list(module.PARAMETERS)
    assert set(module.RUNNING) == set(RUNNING), module.RUNNING
    return module, time.perf_counter() - started


def generated_factory(module):
    def factory():
        p = initial()
        args = [p[name] for name, _ in SHAPES]
        labels = {}

        def run(x, t):
            if id(t) not in labels:
                labels[id(t)] = t.reshape(BS, 1).astype(np.float32)
            return module.sgd_step(x, labels[id(t)], *args, LR)

        return run

    return factory


def torch_factory():
    import torch
    import torch.nn.functional as tf

    torch.set_num_threads(1)
    p = {k: torch.tensor(v) for k, v in initial().items()}
    for name in RUNNING:
        p[name] = p[name].reshape(-1)
    for name in ("beta1", "gamma1", "beta2", "gamma2"):
        p[name] = p[name].reshape(-1)
    trainable = [p[name] for name, _ in SHAPES if name not in RUNNING]
    for tensor in trainable:
        tensor.requires_grad_(True)
    opt = torch.optim.SGD(trainable, lr=LR)

    def block(h, i, padding):
        h = tf.conv2d(h, p[f"w{i}"], p[f"b{i}"], padding=padding)
        h = tf.batch_norm(h, p[f"mean{i}"], p[f"var{i}"], p[f"gamma{i}"], p[f"beta{i}"],
                          training=True, momentum=MOMENTUM, eps=EPS)
        return tf.max_pool2d(torch.relu(h), 2)

    def step(x, t):
        h = block(block(torch.from_numpy(x), 1, PAD1), 2, 0)
        h = torch.relu(h.reshape(BS, -1) @ p["w3"] + p["b3"])
        y = h @ p["w4"] + p["b4"]
        loss = tf.cross_entropy(y, torch.from_numpy(t))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return step


def jax_factory():
    import jax
    import jax.numpy as jnp

    def block(h, p, i, pad):
        h = jax.lax.conv_general_dilated(h, p[f"w{i}"], (1, 1), ((pad, pad), (pad, pad)))
        h = h + p[f"b{i}"][None, :, None, None]
        mean = jnp.mean(h, axis=(0, 2, 3), keepdims=True)
        var = jnp.mean(jnp.square(h - mean), axis=(0, 2, 3), keepdims=True)
        h = (h - mean) / jnp.sqrt(var + EPS) * p[f"gamma{i}"] + p[f"beta{i}"]
        h = jax.nn.relu(h)
        h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2),
                                  "VALID")
        count = h.shape[0] * h.shape[2] * h.shape[3] * 4
        return h, (mean, var * count / (count - 1))

    def loss_fn(p, x, t):
        h, stats1 = block(x, p, 1, PAD1)
        h, stats2 = block(h, p, 2, 0)
        h = jax.nn.relu(h.reshape(BS, -1) @ p["w3"] + p["b3"])
        y = h @ p["w4"] + p["b4"]
        loss = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(y), t[:, None], 1))
        return loss, (stats1, stats2)

    @jax.jit
    def jstep(p, x, t):
        (value, stats), g = jax.value_and_grad(loss_fn, has_aux=True)(p, x, t)
        new = {k: p[k] - LR * g[k] for k in p if k not in RUNNING}
        for i, (mean, var) in enumerate(stats, 1):
            new[f"mean{i}"] = (1 - MOMENTUM) * p[f"mean{i}"] + MOMENTUM * mean
            new[f"var{i}"] = (1 - MOMENTUM) * p[f"var{i}"] + MOMENTUM * var
        return new, value

    state = [{k: jnp.array(v) for k, v in initial().items()}]

    def step(x, t):
        state[0], value = jstep(state[0], x, t)
        return float(value)

    return step


def seconds_per_call(function, repeats: int, calls: int = 20) -> float:
    """Median over `repeats` runs of the mean seconds per call, after a warm-up."""
    for _ in range(3):
        function()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        runs.append((time.perf_counter() - start) / calls)
    return statistics.median(runs)


def seconds_per_call_each(functions: dict, repeats: int, calls: int = 20) -> dict:
    """seconds_per_call of each of `functions`, their runs interleaved (one run of each
    per repeat), so that machine drift affects their ratios less."""
    for function in functions.values():
        for _ in range(3):
            function()
    runs = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            for _ in range(calls):
                function()
            runs[name].append((time.perf_counter() - start) / calls)
    return {name: statistics.median(values) for name, values in runs.items()}


def convolutions_alone(module, repeats: int) -> None:
    """Each convolution's forward: the generated kernels (im2col, alone too, then the
    product with the weights), the fused kernel, one matrix product of its im2col shapes
    (weights (O, C*K*K) times columns (C*K*K, N*M), contiguous), torch; interleaved."""
    from symcompile.backends.kernels.numpy_kernels import conv_forward

    layers = [("conv1", (BS, 1, SIDE, SIDE), W1_0, PAD1),
              ("conv2", (BS, C1, S1, S1), W2_0, 0)]
    torch = None
    if importlib.util.find_spec("torch"):
        import torch
    print(f"\nconvolution forward alone, ms/call (median of {repeats}, interleaved); ratios over "
          "the matmul of its im2col shapes")
    print(f"{'layer':<8}{'im2col matmul':>22}{'matmul':>9}{'im2col':>9}{'generated':>11}"
          f"{'ratio':>7}{'+ bias':>9}{'fused':>9}{'ratio':>7}{'write':>8}{'floor':>7}"
          f"{'torch conv2d':>14}")
    for name, shape, w, pad in layers:
        x = rng.standard_normal(shape).astype(np.float32)
        out = shape[2] + 2 * pad - K + 1
        rows, cols = w.shape[0], int(np.prod(w.shape[1:]))
        a = w.reshape(rows, cols)
        b = rng.standard_normal((cols, BS * out * out)).astype(np.float32)
        y_shape = (BS, w.shape[0], out, out)
        bias = np.ones((1, rows, 1, 1), np.float32)
        geometry = ((K, K), (pad, pad), (1, 1), (1, 1))
        written = np.empty_like(b)
        functions = {
            "matmul": lambda a=a, b=b: a @ b,
            "write": lambda written=written: written.fill(1.0),
            "im2col": lambda x=x, g=geometry: module.im2col(x, *g),
            "generated": lambda x=x, w=w, g=geometry, y_shape=y_shape: module.conv_matmul(
                module.im2col(x, *g), w, y_shape, 1),
            "+ bias": lambda x=x, w=w, g=geometry, y_shape=y_shape, bias=bias: module.conv_matmul(
                module.im2col(x, *g), w, y_shape, 1) + bias,
            "fused": lambda x=x, w=w, pad=pad: conv_forward(x, w, (pad, pad), (1, 1), (1, 1), 1),
        }
        if torch is not None:
            tx, tw = torch.from_numpy(x), torch.from_numpy(w)

            def conv(tx=tx, tw=tw, pad=pad):
                with torch.no_grad():
                    return torch.nn.functional.conv2d(tx, tw, padding=pad)

            functions["torch"] = conv
        t = seconds_per_call_each(functions, repeats)
        line = (f"{name:<8}{f'({rows}x{cols})@({cols}x{BS * out * out})':>22}"
                f"{t['matmul'] * 1e3:>9.3f}{t['im2col'] * 1e3:>9.3f}{t['generated'] * 1e3:>11.3f}"
                f"{t['generated'] / t['matmul']:>6.2f}x{t['+ bias'] * 1e3:>9.3f}"
                f"{t['fused'] * 1e3:>9.3f}{t['fused'] / t['matmul']:>6.2f}x"
                f"{t['write'] * 1e3:>8.3f}{(t['matmul'] + t['write']) / t['matmul']:>6.2f}x")
        if torch is not None:
            line += f"{t['torch'] * 1e3:>14.3f}"
        print(line)
    x_gradient_alone(module, repeats)


def x_gradient_alone(module, repeats: int) -> None:
    """The second convolution's x-gradient (the step's only one): the generated module's
    conv_grad_x, conv_matmul_grad_cols then col2im (what the im2col path computed before
    it), and one matrix product of the columns' gradient's shapes (weights (C*K*K, O)
    times dy (O, N*M), contiguous)."""
    from symcompile.backends.kernels.numpy_kernels import col2im, conv_matmul_grad_cols

    out = S1 - K + 1
    x_shape, w = (BS, C1, S1, S1), W2_0
    dy = rng.standard_normal((BS, C2, out, out)).astype(np.float32)
    cols_shape = (C1 * K * K, BS * out * out)
    a = np.ascontiguousarray(w.reshape(C2, -1).T)
    b = rng.standard_normal((C2, BS * out * out)).astype(np.float32)
    matmul = seconds_per_call(lambda: a @ b, repeats)
    generated = seconds_per_call(lambda: module.conv_grad_x(
        dy, w, x_shape, (0, 0), (1, 1), (1, 1), 1), repeats)
    columns = seconds_per_call(lambda: col2im(conv_matmul_grad_cols(dy, w, cols_shape, 1),
                                              x_shape, (K, K), (0, 0), (1, 1), (1, 1)), repeats)
    print(f"\nconv2 x-gradient alone, ms/call (median of {repeats}); ratios over the matmul")
    print(f"{'columns matmul':>22}{'matmul':>9}{'conv_grad_x':>13}{'ratio':>7}"
          f"{'cols + col2im':>15}{'ratio':>7}")
    print(f"{f'({cols_shape[0]}x{C2})@({C2}x{cols_shape[1]})':>22}{matmul * 1e3:>9.3f}"
          f"{generated * 1e3:>13.3f}{generated / matmul:>6.1f}x{columns * 1e3:>15.3f}"
          f"{columns / matmul:>6.1f}x")


def agreement(factories, steps: int = 3) -> str:
    """The largest difference between the losses of the first steps of each implementation
    and the generated step's, from the same start on the same batches."""
    losses = {}
    for name, factory in factories.items():
        step = factory()
        losses[name] = [float(step(*BATCHES[i])) for i in range(steps)]
    base = losses["generated sgd_step"]
    worst = max(abs(a - b) for values in losses.values() for a, b in zip(values, base, strict=True))
    return (f"losses of the first {steps} steps agree within {worst:.1e} "
            f"(generated: {', '.join(f'{v:.5f}' for v in base)})")


def main() -> None:
    parser = argparse.ArgumentParser(description="LeNet-like CNN workload benchmark")
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
        check = agreement(factories)
        results = interleaved(factories, BATCHES, args.steps, args.repeats)
        reference = "torch eager" if "torch eager" in results else "generated sgd_step"
        print(f"cnn workload: ({BS}, 1, {SIDE}, {SIDE}) -> conv {C1} {K}x{K} pad {PAD1} -> BN "
              f"-> relu -> max pool 2 -> conv {C2} {K}x{K} -> BN -> relu -> max pool 2 -> "
              f"affine {HIDDEN} -> relu -> affine {CLASSES}, Sgd({LR}), one thread; "
              f"{args.steps} steps x {args.repeats} repeats, median")
        table(results, reference, "ms/step", 1e3,
              {"generated sgd_step": "1.2x"} if reference == "torch eager" else {})
        print(check)
        print(f"\ncompile time of this graph: {seconds * 1e3:.0f} ms")
        convolutions_alone(module, args.repeats)


if __name__ == "__main__":
    pin_to_one_cpu()  # (before jax starts its threads; not on import, as peers.py imports)
    main()
