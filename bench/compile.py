"""Compile time: how long symcompile takes to turn a graph into a module, phase by phase,
against jax.jit's first call (trace + compile) on the same graphs.

Graphs, each built with the nnabla API, loss = F.mean of the last value:

  chain N   N elementwise functions on x (4, 8), need_grad=True, repeating tanh, * 1.1,
            sin, + 0.1 (N = 10, 100, 1,000, 10,000)
  rnn T     the unrolled RNN y = tanh(0.5 * y + x), y0 = x0; x0 and x (4, 8),
            need_grad=True (T = 10, 50, 200)
  mlp D     D layers h = tanh(PF.affine(h, 256)), batch 32, input 256, loss F.mean(h):
            no target input (D = 1, 4, 16, 64)

"nodes" counts the F.* calls of a graph (PF.affine is one: affine). For each graph:

  compile        nn.compile(loss, solver="sgd") into a temporary directory, once, with the
                 time of each phase it reports (result.timings, as ms) and in total
  step           the generated step per call: sgd_step where the graph has parameters, else
                 gradient (chain and rnn have none, so no sgd_step); median of --repeats
  jax 1st        jax.jit(jax.value_and_grad(f)) on float32 arrays: the first call, trace +
                 compile + run until block_until_ready(), jax's backend already started
  jax step       jax's step per call, the same work as `step`: for mlp a jitted SGD step,
                 else the value_and_grad above; median of --repeats, one thread
  cache hit      chain 100 and mlp 4 only: a first loss.forward() in this process compiles
                 the graph into the runtime's disk cache, then a fresh Python process builds
                 the same graph and its first loss.forward() is timed (median of 3)

A tiny graph of each family is compiled first, untimed, so that one-time start-up costs
land in no row; then the heap is frozen (gc.freeze) so that garbage collections do not walk
jax's objects during symcompile's phases.
Without jax installed the jax columns print n/a. Progress goes to stderr.

Usage: python bench/compile.py [--quick] [--families chain,rnn,mlp] [--skip-large]
                               [--repeats N]

  --quick       the smallest graph of each family only (a smoke run; the cache hit is then
                measured on the smallest chain and mlp)
  --skip-large  skip chain 10,000 and mlp 64
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("XLA_FLAGS",
                      "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import gc  # noqa: E402
import importlib.util  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from common import time_per_step  # noqa: E402

import symcompile as nn  # noqa: E402
import symcompile.functions as F  # noqa: E402
import symcompile.parametric_functions as PF  # noqa: E402

SIZES = {"chain": (10, 100, 1_000, 10_000), "rnn": (10, 50, 200), "mlp": (1, 4, 16, 64)}
LARGE = {("chain", 10_000), ("mlp", 64)}
CACHE_ROWS = {("chain", 100), ("mlp", 4)}
BATCH, WIDTH, LR = 32, 256, 0.01
SHAPE = (4, 8)  # of x in chain and rnn


def mixed_chain(h, n: int, tanh, sin):
    """n elementwise functions on h: tanh, * 1.1, sin, + 0.1 in turn (either API's)."""
    for i in range(n):
        if i % 4 == 0:
            h = tanh(h)
        elif i % 4 == 1:
            h = h * 1.1
        elif i % 4 == 2:
            h = sin(h)
        else:
            h = h + 0.1
    return h


# --- the graphs, with symcompile's nnabla API: (loss, number of F.* calls) -------------
def build_chain(n: int):
    nn.clear_parameters()
    x = nn.Variable(SHAPE, need_grad=True)
    return F.mean(mixed_chain(x, n, F.tanh, F.sin)), n + 1


def build_rnn(steps: int):
    nn.clear_parameters()
    x0 = nn.Variable(SHAPE, need_grad=True)
    x = nn.Variable(SHAPE, need_grad=True)
    y = x0
    for _ in range(steps):
        y = F.tanh(0.5 * y + x)
    return F.mean(y), 3 * steps + 1


def build_mlp(depth: int):
    nn.clear_parameters()
    h = nn.Variable((BATCH, WIDTH))
    for i in range(depth):
        h = F.tanh(PF.affine(h, WIDTH, name=f"l{i}"))
    return F.mean(h), 2 * depth + 1


BUILDERS = {"chain": build_chain, "rnn": build_rnn, "mlp": build_mlp}


# --- the same graphs in jax: (loss function, its arguments, has parameters) ----------
def jax_graph(family: str, size: int):
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    if family == "chain":
        def chain(x):
            return jnp.mean(mixed_chain(x, size, jnp.tanh, jnp.sin))

        return chain, (rng.standard_normal(SHAPE, np.float32),), False
    if family == "rnn":
        def rnn(x0, x):
            y = x0
            for _ in range(size):
                y = jnp.tanh(0.5 * y + x)
            return jnp.mean(y)

        return rnn, tuple(rng.standard_normal(SHAPE, np.float32) for _ in range(2)), False

    def mlp(params, x):
        h = x
        for w, b in params:
            h = jnp.tanh(h @ w + b)
        return jnp.mean(h)

    params = [(rng.standard_normal((WIDTH, WIDTH), np.float32) / np.sqrt(WIDTH),
               np.zeros(WIDTH, np.float32)) for _ in range(size)]
    return mlp, (params, rng.standard_normal((BATCH, WIDTH), np.float32)), True


def jax_timings(family: str, size: int, repeats: int) -> tuple[float, float]:
    """Seconds of jax.jit(jax.value_and_grad(f))'s first call, and per step after it."""
    import jax

    f, args, trains = jax_graph(family, size)
    args = jax.device_put(args)
    # Gradients w.r.t. what needs them: the parameters, else every input.
    value_and_grad = jax.jit(jax.value_and_grad(f, argnums=0 if trains else
                                                tuple(range(len(args)))))
    start = time.perf_counter()
    jax.block_until_ready(value_and_grad(*args))
    first = time.perf_counter() - start
    if not trains:
        return first, per_call(lambda: jax.block_until_ready(value_and_grad(*args)), repeats)

    @jax.jit
    def sgd_step(params, x):
        value, grads = jax.value_and_grad(f)(params, x)
        return jax.tree.map(lambda p, g: p - LR * g, params, grads), value

    state = {"params": args[0]}

    def step():
        state["params"], value = sgd_step(state["params"], args[1])
        value.block_until_ready()

    return first, per_call(step, repeats)


# --- symcompile -----------------------------------------------------------------------
def per_call(run, repeats: int) -> float:
    """Median seconds per call of `run()` over `repeats` runs of about 0.2 s each."""
    run()
    start = time.perf_counter()
    run()
    once = time.perf_counter() - start
    calls = max(3, min(10_000, int(0.2 / max(once, 1e-6))))
    return statistics.median(time_per_step(run, [()], calls) for _ in range(repeats))


def generated_step(module):
    """The generated step on float32 arguments (INPUTS then PARAMETERS order):
    sgd_step if the module has one (the graph has trainable parameters), else gradient."""
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(spec["shape"]).astype(spec["dtype"])
            for spec in module.INPUTS.values()]
    for spec in module.PARAMETERS.values():
        shape = spec["shape"]
        scale = 1 / math.sqrt(shape[0]) if len(shape) > 1 else 0.0
        args.append((rng.standard_normal(shape) * scale).astype(spec["dtype"]))
    if hasattr(module, "sgd_step"):
        sgd_step = module.sgd_step
        return "sgd_step", lambda: sgd_step(*args, LR)
    gradient = module.gradient
    return "gradient", lambda: gradient(*args)


def cache_hit(family: str, size: int) -> float:
    """Milliseconds of the first loss.forward() in a fresh process, the module on disk."""
    loss, _ = BUILDERS[family](size)
    loss.forward()  # compiles into the runtime's cache ($SYMCOMPILE_CACHE_DIR)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", family, str(size)]
    times = []
    for _ in range(3):
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"the child process failed: {done.stderr.strip()}")
        times.append(float(done.stdout.split()[-1]))
    return statistics.median(times)


def child(family: str, size: int) -> None:
    """In the fresh process: build the graph, print the first forward's milliseconds."""
    loss, _ = BUILDERS[family](size)
    start = time.perf_counter()
    loss.forward()
    print(f"{(time.perf_counter() - start) * 1e3:.4f}")


def measure(row: dict, directory: str, repeats: int, jax: bool, cache: bool) -> None:
    """Fill in one row: nodes, compile timings, step times, jax's times, the cache hit."""
    def say(text: str) -> None:
        print(text, end="", file=sys.stderr, flush=True)

    family, size = row["family"], row["size"]
    loss, row["nodes"] = BUILDERS[family](size)
    say(f"{row['graph']} ({row['nodes']:,} nodes): compile ")
    result = nn.compile(loss, name=f"{family}_{size}", output_dir=directory, solver="sgd")
    row["timings"] = dict(result.timings)
    say(f"{row['timings']['total']:.2f} s, ")
    row["step_fn"], step = generated_step(result.module)
    del result, loss
    row["step"] = per_call(step, repeats)
    say(f"{row['step_fn']} {row['step'] * 1e6:.0f} us")
    if jax:
        say(", jax first call ")
        row["jax_first"], row["jax_step"] = jax_timings(family, size, repeats)
        say(f"{row['jax_first']:.2f} s, jax step {row['jax_step'] * 1e6:.0f} us")
    if cache:
        say(", cache hit ")
        row["cache"] = cache_hit(family, size)
        say(f"{row['cache']:.1f} ms")
    say("\n")


# --- the report -----------------------------------------------------------------------
def phase_names(rows: list[dict]) -> list[str]:
    """The union of the rows' timing keys, each row's order kept (a key new in a later row
    goes after the key it follows there)."""
    names: list[str] = []
    for row in rows:
        at = -1
        for name in row.get("timings", {}):
            if name in names:
                at = names.index(name)
            else:
                at += 1
                names.insert(at, name)
    return names


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    value = seconds * 1e3
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 1000 else f"{value:.0f}"


def cell(value: float | None, form: str, scale: float = 1.0) -> str:
    return "n/a" if value is None else format(value * scale, form)


def exponent(small: float | None, large: float | None, scale: float) -> str:
    """log(large / small) / scale, or "-" where a time is missing or both are under 2 ms."""
    if small is None or large is None or max(small, large) < 2e-3:
        return "-"
    return f"{math.log(large / small) / scale:.2f}"


def print_table(title: str, headers: list[str], lines: list[list[str]]) -> None:
    print(title)
    widths = [max(map(len, column)) for column in zip(headers, *lines, strict=True)]
    for line in (headers, *lines):
        print("  ".join(text.ljust(width) if i == 0 else text.rjust(width)
                        for i, (text, width) in enumerate(zip(line, widths, strict=True))))
    print()


def report(rows: list[dict], repeats: int, jax_version: str | None) -> None:
    phases = phase_names(rows)
    print(f"compile benchmark: nn.compile(loss, solver='sgd'), each graph once; steps: median "
          f"of {repeats} repeats, one thread; jax: {jax_version or 'not installed'}")
    print()
    print_table("compile time per phase, ms (result.timings)", ["graph", "nodes", *phases],
                [[row["graph"], f"{row['nodes']:,}",
                  *(ms(row["timings"].get(name)) if "timings" in row else "error"
                    for name in phases)] for row in rows])

    lines = []
    for row in rows:
        total = row.get("timings", {}).get("total")
        first = row.get("jax_first")
        lines.append([row["graph"], f"{row['nodes']:,}", cell(total, ".3f"),
                      row.get("step_fn", "error"), cell(row.get("step"), ".1f", 1e6),
                      cell(first, ".3f"), cell(first and total and first / total, ".2f"),
                      cell(row.get("jax_step"), ".1f", 1e6), cell(row.get("cache"), ".2f")])
    print_table("compile total, generated step, jax.jit and the cache hit",
                ["graph", "nodes", "compile s", "step", "step us", "jax 1st s",
                 "jax 1st / compile", "jax step us", "cache hit ms"], lines)

    growth = []
    done = [row for row in rows if "timings" in row]
    for small, large in zip(done, done[1:], strict=False):
        if small["family"] != large["family"]:
            continue
        scale = math.log(large["nodes"] / small["nodes"])
        growth.append([f"{large['graph']} / {small['size']:,}",
                       *(exponent(small["timings"].get(n), large["timings"].get(n), scale)
                         for n in phases),
                       exponent(small.get("jax_first"), large.get("jax_first"), scale)])
    if growth:
        print_table("growth with size: log(time ratio) / log(nodes ratio) between consecutive "
                    "sizes; 1 = linear, 2 = quadratic; '-': under 2 ms",
                    ["graphs", *phases, "jax 1st"], growth)
    print_targets(done)
    for row in rows:
        if "error" in row:
            print(f"error in {row['graph']}: {row['error']}")


def print_targets(rows: list[dict]) -> None:
    by = {(row["family"], row["size"]): row for row in rows}
    total = {key: row["timings"]["total"] for key, row in by.items()}
    checks = []
    if ("chain", 100) in by and ("chain", 1_000) in by:
        ratio = total["chain", 1_000] / total["chain", 100]
        checks.append(("linear: chain 1,000 compiles in <= 12x chain 100's time",
                       f"{ratio:.1f}x", ratio <= 12))
    else:
        checks.append(("linear: chain 1,000 compiles in <= 12x chain 100's time", "n/a", None))
    mlp = by.get(("mlp", 16))
    if mlp and mlp.get("jax_first"):
        ratio = mlp["jax_first"] / total["mlp", 16]
        checks.append(("mlp 16 compiles >= 3x faster than jax's first call", f"{ratio:.1f}x",
                       ratio >= 3))
    else:
        checks.append(("mlp 16 compiles >= 3x faster than jax's first call", "n/a", None))
    about = [row for row in rows if 700 <= row["nodes"] <= 1_300]
    checks.append(("graphs of about 1,000 nodes (700 to 1,300) compile in < 2 s",
                   ", ".join(f"{row['graph']}: {total[row['family'], row['size']]:.2f} s"
                             for row in about) or "n/a",
                   all(total[row["family"], row["size"]] < 2 for row in about) if about
                   else None))
    hits = [row for row in rows if row.get("cache") is not None]
    checks.append(("cache hit (first forward, fresh process) < 10 ms",
                   ", ".join(f"{row['graph']}: {row['cache']:.1f} ms" for row in hits) or "n/a",
                   all(row["cache"] < 10 for row in hits) if hits else None))
    print("targets")
    for what, value, met in checks:
        verdict = "n/a" if met is None else "met" if met else "NOT MET"
        print(f"  {verdict:<9}{what}: {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="the smallest graph of each family only (smoke run)")
    parser.add_argument("--families", default="chain,rnn,mlp",
                        help="comma-separated, of: chain, rnn, mlp")
    parser.add_argument("--skip-large", action="store_true",
                        help="skip chain 10,000 and mlp 64")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child", nargs=2, metavar=("FAMILY", "SIZE"),
                        help=argparse.SUPPRESS)  # the fresh process of the cache hit
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    families = [name.strip() for name in args.families.split(",") if name.strip()]
    unknown = sorted(set(families) - set(SIZES))
    if unknown or not families:
        parser.error(f"--families: unknown {', '.join(unknown) or '(none given)'}; "
                     f"choose from {', '.join(SIZES)}")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    graphs = [(family, size) for family in families
              for size in (SIZES[family][:1] if args.quick else SIZES[family])
              if not (args.skip_large and (family, size) in LARGE)]
    cached = ({(family, SIZES[family][0]) for family in ("chain", "mlp")} if args.quick
              else CACHE_ROWS)

    jax_version = None
    if importlib.util.find_spec("jax") is not None:
        import jax

        jax_version = jax.__version__
        jax.block_until_ready(jax.jit(jax.value_and_grad(lambda x: (x * x).sum()))(
            np.ones(SHAPE, np.float32)))  # start jax's backend outside the rows

    rows = []
    with tempfile.TemporaryDirectory(prefix="symcompile-bench-") as directory:
        os.environ["SYMCOMPILE_CACHE_DIR"] = str(Path(directory) / "cache")
        for family, build in BUILDERS.items():  # one-time start-up costs: in no row
            nn.compile(build(2)[0], name=f"warm_up_{family}", output_dir=directory,
                       solver="sgd")
        # Full garbage collections would otherwise walk jax's large heap too, adding tens
        # of ms to whichever phase they land in: keep what exists now out of them.
        gc.collect()
        gc.freeze()
        for index, (family, size) in enumerate(graphs, 1):
            print(f"[{index}/{len(graphs)}] ", end="", file=sys.stderr, flush=True)
            row = {"graph": f"{family} {size:,}", "family": family, "size": size, "nodes": 0}
            rows.append(row)
            try:
                measure(row, directory, args.repeats, jax_version is not None,
                        (family, size) in cached)
            except Exception as error:  # a row that fails is reported, the others still run
                row["error"] = f"{type(error).__name__}: {error}"
                print(f"FAILED: {row['error']}", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    report(rows, args.repeats, jax_version)


if __name__ == "__main__":
    main()
