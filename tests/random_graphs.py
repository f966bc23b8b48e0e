"""Random nnabla-style graphs for property tests: specs, builder, NumPy oracle, source code.

A `GraphSpec` is plain data: leaves (inputs, labels, parameters, with their values) and
steps (``Step("h2", "sum", ("h1",), {"axis": (0, 2), "keepdims": True})``). From one spec

- `build` makes the graph with symcompile's nnabla API,
- `evaluate` computes its loss with NumPy alone (never calling symcompile),
- `as_code` prints it as nnabla-API Python a person can paste; ``repr(spec)`` is that
  code, so hypothesis reports a falsifying example as a program.

`build` runs exactly the code `as_code` prints, so the program a failure reports is the
graph that failed.

`graphs()` draws specs step by step *together with their values*: a step is only taken
where its function is smooth at the values it will see (log of values > 0.1, no value
within MARGIN of a relu/abs/max/clip kink or of a tie, magnitudes at most BOUND), so
central finite differences are a sound oracle for the gradients. Binary functions get
inputs of equal rank with size-1 broadcasting, as nnabla requires.
"""

from __future__ import annotations

import hashlib
import linecache
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st
from hypothesis.internal.conjecture import providers as _providers

# Hypothesis mixes literals it finds in the project's own modules (every imported module
# that is not installed) into its draws, so any edit of symcompile or of a test file
# would change which graphs a fixed seed draws, and an editable install would draw other
# graphs than CI's. The graphs must depend on the seed alone: no local constants.
_NO_CONSTANTS = _providers.Constants()
_providers._get_local_constants = lambda: _NO_CONSTANTS

MARGIN = 0.05  # distance every value keeps from a kink, a tie or a domain edge
BOUND = 10.0  # largest magnitude allowed for any value in the graph
MAX_LEAVES = 8  # leaves (inputs, labels, parameters) per graph
RETRIES = 8  # fresh values tried for a new leaf before a step is given up

OPERATORS = {"neg", "+", "-", "*", "/", "**", "@"}
STRUCTURAL = {"sum", "mean", "max", "min", "reduce_sum", "reduce_mean", "reshape", "transpose",
              "broadcast", "slice", "flip", "pad", "concatenate", "affine", "pf_affine",
              "batch_matmul", "@", "softmax",
              "log_softmax", "softmax_cross_entropy", "loss"}



@dataclass(frozen=True)
class Leaf:
    """An array the graph starts from.

    kind: "input" (``nn.Variable``), "label" (an ``nn.Variable`` of integer labels, or of
    targets in [0, 1] for binary_cross_entropy, which may need a gradient), "parameter"
    (``get_parameter_or_create``) or "pf" (created by a ``PF.affine`` step, which prints
    it). Only inputs and parameters of at most 3 axes are operands of later steps.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    need_grad: bool
    values: np.ndarray = field(compare=False, repr=False)


@dataclass(frozen=True)
class Step:
    """``out = op(*args, **kwargs)``; an argument is a value's name (str) or a number."""

    out: str
    op: str
    args: tuple
    kwargs: dict = field(default_factory=dict, compare=False)


class GraphSpec:
    """A graph: leaves then steps; the last step's output is the scalar ``loss``."""

    def __init__(self, leaves: list[Leaf], steps: list[Step]) -> None:
        self.leaves = leaves
        self.steps = steps

    def values(self) -> dict[str, np.ndarray]:
        """Leaf values by graph name (``x0``, ``w1``, ``fc0/affine/W``), float64."""
        return {leaf.name: leaf.values for leaf in self.leaves}

    def ops(self) -> set[str]:
        return {step.op for step in self.steps}

    def __repr__(self) -> str:
        return as_code(self)

    def _repr_pretty_(self, printer, cycle) -> None:
        """How hypothesis prints a falsifying example: the code, as `__repr__`."""
        printer.text(as_code(self))


# --- NumPy reference of every function (independent of symcompile) -----------------------

def _np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _np_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _np_log_softmax(x, axis=-1):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _np_softmax_cross_entropy(x, t, axis=-1):
    labels = t.astype(int)
    picked = np.take_along_axis(_np_log_softmax(x, axis), np.maximum(labels, 0), axis=axis)
    return np.where(labels == -1, 0.0, -picked)  # label -1: ignored


def _np_sigmoid_cross_entropy(x, t):
    t = np.trunc(t)  # nnabla reads the target as integer labels
    return -(t * np.log(_np_sigmoid(x)) + (1 - t) * np.log(_np_sigmoid(-x)))


def _np_huber(a, b, delta=1.0):
    d = np.abs(a - b)
    return np.where(d < delta, d**2, delta * (2 * d - delta))


def _np_affine(x, w, b=None, base_axis=1):
    batch = x.shape[:base_axis]
    y = x.reshape(math.prod(batch), -1) @ w.reshape(w.shape[0], -1)
    y = y.reshape(batch + w.shape[1:])
    return y if b is None else y + b


def _np_batch_matmul(a, b, transpose_a=False, transpose_b=False):
    a = np.swapaxes(a, -1, -2) if transpose_a else a
    b = np.swapaxes(b, -1, -2) if transpose_b else b
    return np.matmul(a, b)


def _np_loss(*terms, reducers=()):
    return sum(np.sum(t) if r == "sum" else np.mean(t) for t, r in zip(terms, reducers,
                                                                       strict=True))


REFERENCE: dict[str, Callable] = {
    "add2": np.add, "sub2": np.subtract, "mul2": np.multiply, "div2": np.divide,
    "pow2": np.power,
    "add_scalar": lambda x, val=1: x + val,
    "mul_scalar": lambda x, val=1: x * val,
    "pow_scalar": lambda x, val=1: x**val,
    "r_sub_scalar": lambda x, val=1: val - x,
    "r_div_scalar": lambda x, val=1: val / x,
    "r_pow_scalar": lambda x, val=1: val**x,
    "identity": lambda x: x + 0.0,
    "tanh": np.tanh, "sigmoid": _np_sigmoid,
    "relu": lambda x: np.where(x > 0, x, 0.0),
    "leaky_relu": lambda x, alpha=0.1: np.where(x > 0, x, alpha * x),
    "elu": lambda x, alpha=1.0: np.where(x >= 0, x, alpha * np.expm1(x)),
    "softplus": lambda x, beta=1.0: np.logaddexp(0.0, beta * x) / beta,
    "exp": np.exp, "log": np.log, "abs": np.abs, "sin": np.sin, "cos": np.cos,
    "maximum2": np.maximum, "minimum2": np.minimum,
    "maximum_scalar": lambda x, val=1.0: np.maximum(x, val),
    "minimum_scalar": lambda x, val=1.0: np.minimum(x, val),
    "clip_by_value": lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi),
    "sum": lambda x, axis=None, keepdims=False: np.sum(x, axis=axis, keepdims=keepdims),
    "mean": lambda x, axis=None, keepdims=False: np.mean(x, axis=axis, keepdims=keepdims),
    "max": lambda x, axis=None, keepdims=False: np.max(x, axis=axis, keepdims=keepdims),
    "min": lambda x, axis=None, keepdims=False: np.min(x, axis=axis, keepdims=keepdims),
    "reduce_sum": np.sum, "reduce_mean": np.mean,
    "reshape": lambda x, shape: np.reshape(x, shape),
    "transpose": lambda x, axes: np.transpose(x, axes),
    "broadcast": lambda x, shape: np.broadcast_to(x, shape),
    "slice": lambda x, start, stop, step: x[tuple(
        slice(b, e, s) for b, e, s in zip(start, stop, step, strict=True))],
    "flip": lambda x, axes: np.flip(x, axes),
    "pad": lambda x, pad_width, constant_value: np.pad(
        x, [(0, 0)] * (x.ndim - len(pad_width) // 2)
        + list(zip(pad_width[0::2], pad_width[1::2], strict=True)),
        constant_values=constant_value),
    "concatenate": lambda *xs, axis: np.concatenate(xs, axis=axis),
    "affine": _np_affine,
    "pf_affine": lambda x, w, b=None, n_outmaps=None, base_axis=1, name=None: _np_affine(
        x, w, b, base_axis),
    "batch_matmul": _np_batch_matmul,
    "softmax": _np_softmax, "log_softmax": _np_log_softmax,
    "softmax_cross_entropy": _np_softmax_cross_entropy,
    "sigmoid_cross_entropy": _np_sigmoid_cross_entropy,
    "binary_cross_entropy": lambda p, t: -(t * np.log(p) + (1 - t) * np.log(1 - p)),
    "squared_error": lambda a, b: (a - b) ** 2,
    "absolute_error": lambda a, b: np.abs(a - b),
    "huber_loss": _np_huber,
    "neg": np.negative, "+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide,
    "**": np.power, "@": np.matmul,
    "loss": _np_loss,
}
ELEMENTWISE = set(REFERENCE) - STRUCTURAL


def _apply(step: Step, env: dict) -> np.ndarray:
    args = [env[a] if isinstance(a, str) else a for a in step.args]
    with np.errstate(all="ignore"):  # out-of-domain candidates are rejected by the caller
        return np.asarray(REFERENCE[step.op](*args, **step.kwargs), dtype=np.float64)


def evaluate(spec: GraphSpec, values: dict[str, np.ndarray] | None = None) -> float:
    """The loss of `spec` at `values` (default: the spec's own), computed with NumPy only."""
    env = dict(spec.values() if values is None else values)
    for step in spec.steps:
        env[step.out] = _apply(step, env)
    return float(env["loss"])


# --- the graph as nnabla-API source -------------------------------------------------------

def _literal(value) -> str:
    if isinstance(value, np.ndarray):
        return f"np.array({value.tolist()!r})"
    return repr(value)


def _operand(arg) -> str:
    """An operator's operand: a name, or a number (parenthesised when negative)."""
    if isinstance(arg, str):
        return arg
    return f"({arg!r})" if arg < 0 else repr(arg)


def _call(function: str, step: Step) -> str:
    parts = [a if isinstance(a, str) else _literal(a) for a in step.args]
    parts += [f"{k}={_literal(v)}" for k, v in step.kwargs.items()]
    return f"{function}({', '.join(parts)})"


def _step_lines(step: Step, values: dict[str, np.ndarray]) -> list[str]:
    if step.op == "neg":
        return [f"{step.out} = -{step.args[0]}"]
    if step.op in OPERATORS:
        left, right = (_operand(a) for a in step.args)
        return [f"{step.out} = {left} {step.op} {right}"]
    if step.op == "loss":
        terms = [f"F.{r}({t})" for t, r in zip(step.args, step.kwargs["reducers"], strict=True)]
        return [f"{step.out} = {' + '.join(terms)}"]
    if step.op == "pf_affine":
        kw = step.kwargs
        x, w = step.args[:2]
        line = (f"{step.out} = PF.affine({x}, {kw['n_outmaps']!r}, base_axis={kw['base_axis']}, "
                f"w_init={_literal(values[w])}")
        if len(step.args) == 2:
            return [line + f", with_bias=False, name={kw['name']!r})"]
        b = step.args[2]
        return [line + f", b_init={_literal(values[b])}, name={kw['name']!r})"]
    return [f"{step.out} = {_call('F.' + step.op, step)}"]


def _leaf_lines(leaf: Leaf) -> list[str]:
    if leaf.kind == "parameter":
        flag = "" if leaf.need_grad else ", need_grad=False"
        return [f"{leaf.name} = nn.parameter.get_parameter_or_create({leaf.name!r}, "
                f"{leaf.shape!r}, {_literal(leaf.values)}{flag})"]
    return [f"{leaf.name} = nn.Variable({leaf.shape!r}, need_grad={leaf.need_grad})",
            f"{leaf.name}.name = {leaf.name!r}",
            f"{leaf.name}.d = {_literal(leaf.values)}"]


def as_code(spec: GraphSpec) -> str:
    """`spec` as a runnable nnabla-API program that ends with ``loss = ...``."""
    lines = ["import numpy as np", "", "import symcompile as nn",
             "import symcompile.functions as F", "import symcompile.parametric_functions as PF",
             "", "nn.clear_parameters()"]
    for leaf in spec.leaves:
        if leaf.kind != "pf":
            lines += _leaf_lines(leaf)
    values = spec.values()
    for step in spec.steps:
        lines += _step_lines(step, values)
    return "\n".join(lines) + "\n"


def build(spec: GraphSpec):
    """Build `spec` with symcompile by running `as_code(spec)` (which clears the parameters).

    Returns:
        (loss Variable, {graph name: leaf Variable}).
    """
    import symcompile as nn

    code = as_code(spec)
    # A unique pseudo-file holding the source, so symcompile's call-site comments and
    # value names (h0, h1, ...) can read it back as they read a user's file.
    filename = f"<random graph {hashlib.sha256(code.encode()).hexdigest()[:12]}>"
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    namespace: dict = {}
    exec(compile(code, filename, "exec"), namespace)  # noqa: S102 - our own generated code
    parameters = nn.get_parameters(grad_only=False)
    leaves = {leaf.name: namespace[leaf.name] if leaf.kind != "pf" else parameters[leaf.name]
              for leaf in spec.leaves}
    return namespace["loss"], leaves


# --- values of new leaves ----------------------------------------------------------------

def _signed(rng, shape, low, high):
    magnitude = rng.uniform(low, high, size=shape)
    return np.where(rng.random(size=shape) < 0.5, -magnitude, magnitude)


DOMAINS: dict[str, Callable] = {
    "normal": lambda rng, shape, n: _signed(rng, shape, 0.1, 2.0),
    "away": lambda rng, shape, n: _signed(rng, shape, 0.3, 2.0),  # denominators
    "positive": lambda rng, shape, n: rng.uniform(0.2, 2.0, size=shape),
    "probability": lambda rng, shape, n: rng.uniform(0.05, 0.95, size=shape),
    "unit": lambda rng, shape, n: rng.uniform(0.0, 1.0, size=shape),
    "binary": lambda rng, shape, n: rng.integers(0, 2, size=shape).astype(float),
    "labels": lambda rng, shape, n: rng.integers(-1, n, size=shape).astype(float),
    "weight": lambda rng, shape, n: _signed(rng, shape, 0.1, 1.5) / math.sqrt(n),
}


def _values(domain: str, rng, shape, n=1) -> np.ndarray:
    """Values rounded to 2 decimals (3 for small weights), so the printed code stays short."""
    decimals = 3 if domain == "weight" else 2
    return np.asarray(np.round(DOMAINS[domain](rng, shape, n), decimals), dtype=np.float64)


# --- preconditions ------------------------------------------------------------------------

def _far(a, b=0.0) -> bool:
    return bool(np.all(np.abs(np.asarray(a) - b) > MARGIN))


def _bounded(y) -> bool:
    return bool(np.all(np.isfinite(y)) and np.all(np.abs(y) <= BOUND))


def _pow_ok(x, val) -> bool:
    if float(val).is_integer():
        return val >= 0 or bool(np.all(np.abs(x) > 0.3))
    return bool(np.all(x > 0.1))


def _unique_extremum(x, axes, largest) -> bool:
    """Along every reduced slice, the max (min) beats every other element by MARGIN."""
    x = np.asarray(x)
    if x.ndim == 0:
        return True
    axes = tuple(range(x.ndim)) if axes is None else tuple(
        a % x.ndim for a in ((axes,) if isinstance(axes, int) else axes))
    rest = [i for i in range(x.ndim) if i not in axes]
    rows = np.transpose(x, rest + list(axes)).reshape(-1, math.prod(x.shape[a] for a in axes))
    if rows.shape[1] < 2:
        return True
    rows = np.sort(rows if largest else -rows, axis=1)
    return bool(np.all(rows[:, -1] - rows[:, -2] > MARGIN))


# --- drawing graphs -----------------------------------------------------------------------

SIZES = st.integers(1, 4)
SEEDS = st.integers(0, 2**32 - 1)
SCALARS = st.sampled_from([1.5, -0.5, 2.0, 0.25, -2.0, 0.0, 3])
POWERS = st.sampled_from([2, 3, 0.5, -1.0, 1.5, 2.0, -2, -0.5])
NEW = "<new leaf>"
PREFIX = {"input": "x", "parameter": "w", "label": "t"}


class _Draft:
    """A spec under construction, with the NumPy value of every name so far.

    New leaves get provisional names; `spec()` renumbers everything in order of
    appearance, so steps that were given up leave no gaps.
    """

    def __init__(self, draw) -> None:
        self.draw = draw
        # Hypothesis favours its simplest choice (index 0) and copies choices about, so
        # `choose` maps its choice through a permutation drawn once per graph: across graphs
        # every function is about as likely, and a step's function does not change when
        # shrinking removes other steps.
        self.seed = draw(SEEDS)
        self.permutations: dict[int, np.ndarray] = {}
        self.leaves: list[Leaf] = []
        self.steps: list[Step] = []
        self.env: dict[str, np.ndarray] = {}
        self.names: list[str] = []  # values a step may use (not labels), oldest first
        self.used: set[str] = set()
        self.serial = 0

    def fresh(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial}"

    def choose(self, options: list):
        """One of `options`, through this graph's permutation of their positions."""
        n = len(options)
        if n not in self.permutations:
            self.permutations[n] = np.random.default_rng([self.seed, n]).permutation(n)
        return options[self.permutations[n][self.draw(st.integers(0, n - 1))]]

    def shape(self, min_rank=0, max_rank=3) -> tuple[int, ...]:
        return tuple(self.draw(st.lists(SIZES, min_size=min_rank, max_size=max_rank)))

    def compatible_shape(self, shape) -> tuple[int, ...]:
        """A shape of the same rank that broadcasts with `shape` (size 1 either way)."""
        return tuple(self.draw(st.sampled_from([d, 1] if d > 1 else [1, 2, 3, 4]))
                     for d in shape)

    def room(self, n=1) -> bool:
        return len(self.leaves) + n <= MAX_LEAVES

    def value(self, arg):
        return arg.values if isinstance(arg, Leaf) else self.env[arg]

    def new_values(self, domain: str, shape, accept=lambda v: True, n=1):
        """Values from `domain` that `accept` likes (a few tries), or None."""
        rng = np.random.default_rng(self.draw(SEEDS))
        for _ in range(RETRIES):
            values = _values(domain, rng, shape, n)
            if accept(values):
                return values
        return None

    def new_leaf(self, kind: str | None, shape, values, need_grad=None) -> Leaf:
        """An uncommitted leaf (`commit` adds it with the step that uses it)."""
        kind = kind or self.choose(["input", "parameter"])
        if need_grad is None:
            need_grad = kind != "label" and self.draw(st.sampled_from([True, True, True, False]))
        return Leaf(self.fresh(PREFIX[kind]), kind, tuple(shape), need_grad, values)

    def operand(self, accept, shape_fn, domain="normal"):
        """An existing value `accept` likes (the most recent first, so shrinking makes
        chains) or a new leaf of shape `shape_fn()` with values from `domain`; None if
        neither works."""
        options = [n for n in reversed(self.names) if accept(self.env[n])]
        if self.room():
            options.append(NEW)
        if not options:
            return None
        choice = self.draw(st.sampled_from(options))
        if choice != NEW:
            return choice
        shape = shape_fn()
        values = self.new_values(domain, shape, accept)
        return None if values is None else self.new_leaf(None, shape, values)

    def label(self, shape, domain: str, n=1, need_grad=False) -> Leaf:
        return self.new_leaf("label", shape, self.new_values(domain, shape, n=n), need_grad)

    def commit(self, op: str, args: list, kwargs: dict | None = None,
               out=None) -> str | None:
        """Add ``out = op(*args, **kwargs)`` if its value is finite and bounded (except the
        loss's); uncommitted Leafs among `args` are committed with it. The new value's
        name, or None."""
        kwargs = kwargs or {}
        new = {a.name: a for a in args if isinstance(a, Leaf) and a.name not in self.env}
        env = self.env | {name: leaf.values for name, leaf in new.items()}
        names = tuple(a.name if isinstance(a, Leaf) else a for a in args)
        step = Step(out or self.fresh("h"), op, names, kwargs)
        value = _apply(step, env)
        if not (_bounded(value) or (step.out == "loss" and np.all(np.isfinite(value)))):
            return None
        for name, leaf in new.items():
            self.leaves.append(leaf)
            self.env[name] = leaf.values
            if leaf.kind in ("input", "parameter") and leaf.values.ndim <= 3:
                self.names.append(name)  # (an affine weight may have 4 axes)
        self.used.update(a for a in names if isinstance(a, str))
        self.steps.append(step)
        self.env[step.out] = value
        self.names.append(step.out)
        return step.out

    def spec(self) -> GraphSpec:
        return _renumber(GraphSpec(self.leaves, self.steps))


def without_loss_term(spec: GraphSpec, index: int) -> GraphSpec:
    """`spec` without the loss's `index`-th term and the steps and leaves only it used."""
    *steps, loss = spec.steps
    reducers = loss.kwargs["reducers"]
    keep = [i for i in range(len(loss.args)) if i != index]
    loss = Step("loss", "loss", tuple(loss.args[i] for i in keep),
                {"reducers": tuple(reducers[i] for i in keep)})
    needed = set(loss.args)
    kept = []
    for step in reversed(steps):
        if step.out in needed:
            kept.append(step)
            needed.update(a for a in step.args if isinstance(a, str))
    leaves = [leaf for leaf in spec.leaves if leaf.name in needed]
    return _renumber(GraphSpec(leaves, [*reversed(kept), loss]))


def _renumber(spec: GraphSpec) -> GraphSpec:
    """Names x0, x1, w0, t0, h0, fc0, ... in order of appearance."""
    counts: dict[str, int] = {}
    rename: dict[str, str] = {}

    def name(old: str, prefix: str) -> str:
        if old not in rename:
            rename[old] = f"{prefix}{counts.get(prefix, 0)}"
            counts[prefix] = counts.get(prefix, 0) + 1
        return rename[old]

    for leaf in spec.leaves:
        if leaf.kind != "pf":
            name(leaf.name, PREFIX[leaf.kind])
    steps = []
    for step in spec.steps:
        kwargs = dict(step.kwargs)
        if step.op == "pf_affine":
            scope = name(kwargs["name"], "fc")
            kwargs["name"] = scope
            for old in step.args[1:]:
                rename[old] = f"{scope}/affine/{old.rpartition('/')[2]}"
        out = step.out if step.out == "loss" else name(step.out, "h")
        args = tuple(rename[a] if isinstance(a, str) else a for a in step.args)
        steps.append(Step(out, step.op, args, kwargs))
    leaves = [Leaf(rename[leaf.name], leaf.kind, leaf.shape, leaf.need_grad, leaf.values)
              for leaf in spec.leaves]
    return GraphSpec(leaves, steps)


@dataclass(frozen=True)
class _Unary:
    """An elementwise function of one array: its parameters (name -> strategy), where it is
    smooth besides being bounded, where new inputs come from, and for an operator with a
    number, on which side the number goes."""

    op: str
    kwargs: dict = field(default_factory=dict)
    ok: Callable = lambda x, kw: True
    domain: str = "normal"
    scalar: str = ""  # "right": x + c; "left": c + x


def _kink(x, kw) -> bool:
    return _far(x)


def _nonzero(x, kw) -> bool:
    return bool(np.all(np.abs(x) > 0.3))


UNARY = [
    _Unary("tanh"), _Unary("sigmoid"), _Unary("identity"), _Unary("sin"), _Unary("cos"),
    _Unary("exp"),
    _Unary("log", ok=lambda x, kw: bool(np.all(x > 0.1)), domain="positive"),
    _Unary("relu", ok=_kink), _Unary("abs", ok=_kink),
    _Unary("leaky_relu", {"alpha": st.sampled_from([0.1, 0.25, 2.0])}, _kink),
    _Unary("elu", {"alpha": st.sampled_from([1.0, 0.5, 2.0])}, _kink),
    _Unary("softplus", {"beta": st.sampled_from([1.0, 2.0, 0.5])}),
    _Unary("add_scalar", {"val": SCALARS}), _Unary("mul_scalar", {"val": SCALARS}),
    _Unary("r_sub_scalar", {"val": SCALARS}),
    _Unary("pow_scalar", {"val": POWERS}, lambda x, kw: _pow_ok(x, kw["val"])),
    _Unary("r_div_scalar", {"val": st.sampled_from([1.0, -0.5, 2])}, _nonzero, "away"),
    _Unary("r_pow_scalar", {"val": st.sampled_from([2.0, 0.5, 3, 1.5])}),
    _Unary("maximum_scalar", {"val": st.sampled_from([0.5, -0.25, 0.0, 1])},
           lambda x, kw: _far(x, kw["val"])),
    _Unary("minimum_scalar", {"val": st.sampled_from([0.5, -0.25, 0.0, 1])},
           lambda x, kw: _far(x, kw["val"])),
    _Unary("neg"),
    _Unary("+", {"c": SCALARS}, scalar="right"), _Unary("+", {"c": SCALARS}, scalar="left"),
    _Unary("-", {"c": SCALARS}, scalar="right"), _Unary("-", {"c": SCALARS}, scalar="left"),
    _Unary("*", {"c": SCALARS}, scalar="right"), _Unary("*", {"c": SCALARS}, scalar="left"),
    _Unary("/", {"c": st.sampled_from([2.0, -4, 0.5])}, scalar="right"),
    _Unary("/", {"c": st.sampled_from([1.0, -2, 0.5])}, _nonzero, "away", scalar="left"),
    _Unary("**", {"c": POWERS}, lambda x, kw: _pow_ok(x, kw["c"]), scalar="right"),
    _Unary("**", {"c": st.sampled_from([2.0, 0.5, 3])}, scalar="left"),
]


UNARY_OPS = list(dict.fromkeys(u.op for u in UNARY))  # each function as likely, whatever
# its number of variants (the operators have several)


def _draw_unary(g: _Draft) -> None:
    op = g.choose(UNARY_OPS)
    spec = g.choose([u for u in UNARY if u.op == op])
    kw = {k: g.draw(s) for k, s in spec.kwargs.items()}
    c = kw.pop("c", None)

    def place(x):
        return {"right": [x, c], "left": [c, x]}.get(spec.scalar, [x])

    def accept(x):
        return spec.ok(x, kw | {"c": c}) and _bounded(
            _apply(Step("", spec.op, tuple(place("x")), kw), {"x": x}))

    x = g.operand(accept, g.shape, spec.domain)
    if x is not None:
        g.commit(spec.op, place(x), kw)


def _positive(x) -> bool:
    return bool(np.all(x > 0.2))


def _apart(a, b) -> bool:
    return _far(a, b)


def _away(a, b) -> bool:
    return bool(np.all(np.abs(b) > 0.3))


# op, precondition on (a, b) besides a bounded result, domain of a new a, of a new b
BINARY = [
    ("add2", None, "normal", "normal"), ("sub2", None, "normal", "normal"),
    ("mul2", None, "normal", "normal"), ("div2", _away, "normal", "away"),
    ("pow2", None, "positive", "normal"),
    ("+", None, "normal", "normal"), ("-", None, "normal", "normal"),
    ("*", None, "normal", "normal"), ("/", _away, "normal", "away"),
    ("**", None, "positive", "normal"),
    ("maximum2", _apart, "normal", "normal"), ("minimum2", _apart, "normal", "normal"),
    ("squared_error", None, "normal", "normal"), ("absolute_error", _apart, "normal", "normal"),
    ("huber_loss", None, "normal", "normal"),
]


def _broadcasts(a, b) -> bool:
    """Equal ranks and every axis equal or 1 (nnabla's binary broadcasting)."""
    return a.ndim == b.ndim and all(p == q or 1 in (p, q)
                                    for p, q in zip(a.shape, b.shape, strict=True))


def _draw_binary(g: _Draft) -> None:
    op, ok, domain_a, domain_b = g.choose(BINARY)
    kw = {}
    if op == "huber_loss":
        kw["delta"] = g.draw(st.sampled_from([1.0, 0.5, 2.0]))
        ok = lambda a, b: _far(np.abs(a - b), kw["delta"])  # noqa: E731 - its kink
    first = _positive if domain_a == "positive" else (lambda x: True)
    a = g.operand(first, g.shape, domain_a)
    if a is None:
        return
    va = g.value(a)

    def accept(b):
        if not _broadcasts(va, b) or (ok is not None and not ok(va, b)):
            return False
        return _bounded(_apply(Step("", op, ("a", "b"), kw), {"a": va, "b": b}))

    b = g.operand(accept, lambda: g.compatible_shape(va.shape), domain_b)
    if b is not None:
        g.commit(op, [a, b], kw)


def _draw_clip(g: _Draft) -> None:
    """clip_by_value with number or Variable bounds (broadcast like binary functions)."""
    x = g.operand(lambda v: True, g.shape)
    if x is None:
        return
    vx = g.value(x)
    bounds = []
    for low, high in ((-1.5, 0.0), (0.05, 1.5)):
        if g.draw(st.booleans()):
            bounds.append(round(g.draw(st.floats(low, high)), 2))
            continue
        arrays = [vx] + [g.value(b) for b in bounds if not isinstance(b, float)]

        bound = g.operand(lambda v, arrays=arrays: all(_broadcasts(a, v) for a in arrays),
                          lambda: g.compatible_shape(vx.shape))
        if bound is None:
            return
        bounds.append(bound)
    lo, hi = (b if isinstance(b, float) else g.value(b) for b in bounds)
    if _far(vx, lo) and _far(np.maximum(vx, lo), hi):
        g.commit("clip_by_value", [x, *bounds])


def _axis(g: _Draft, rank: int):
    """None, an int (maybe negative) or a tuple of distinct axes (maybe negative)."""
    kind = g.choose(["none", "int", "tuple"]) if rank else "none"
    if kind == "none":
        return None
    if kind == "int":
        return g.draw(st.integers(-rank, rank - 1))
    axes = g.draw(st.lists(st.integers(0, rank - 1), min_size=1, max_size=rank, unique=True))
    return tuple(a - rank if g.draw(st.booleans()) else a for a in axes)


def _draw_reduction(g: _Draft) -> None:
    x = g.operand(lambda v: True, g.shape)
    if x is None:
        return
    vx = g.value(x)
    if g.draw(st.integers(0, 9)) == 0:  # nnabla's deprecated full reductions
        g.commit(g.choose(["reduce_sum", "reduce_mean"]), [x])
        return
    axis = _axis(g, vx.ndim)
    kw = {"axis": axis} if axis is not None else {}
    if g.draw(st.booleans()):
        kw["keepdims"] = True
    ops = ["sum", "mean"] + [op for op in ("max", "min")
                             if _unique_extremum(vx, axis, op == "max")]
    g.commit(g.choose(ops), [x], kw)


def _factor(g: _Draft, size: int) -> tuple[int, ...]:
    """A shape of `size` elements and rank 0-3."""
    rank = g.draw(st.integers(0 if size == 1 else 1, 3))
    dims, rest = [], size
    for _ in range(rank - 1):
        d = g.draw(st.sampled_from([d for d in range(1, rest + 1) if rest % d == 0]))
        dims.append(d)
        rest //= d
    return tuple(dims + [rest]) if rank else ()


def _draw_indexing(g: _Draft) -> None:
    """F.slice, F.flip, F.pad or F.concatenate (a family of its own, so that the shape
    functions keep their share of the draws)."""
    op = g.choose(["slice", "flip", "pad", "concatenate"])
    x = g.operand(lambda v: v.ndim >= 1, lambda: g.shape(1, 3))
    if x is not None:
        _draw_indexing_op(g, op, x, g.value(x).shape)


def _draw_shape_op(g: _Draft) -> None:
    op = g.choose(["reshape", "transpose", "broadcast"])
    x = g.operand(lambda v: True, g.shape)
    if x is None:
        return
    shape = g.value(x).shape
    if op == "reshape":
        target = list(_factor(g, math.prod(shape)))
        if target and g.draw(st.booleans()):
            target[g.draw(st.integers(0, len(target) - 1))] = -1
        g.commit("reshape", [x], {"shape": tuple(target)})
    elif op == "transpose" and shape:
        perm = g.draw(st.permutations(range(len(shape))))
        axes = tuple(p - len(shape) if g.draw(st.booleans()) else p for p in perm)
        g.commit("transpose", [x], {"axes": axes})
    elif op == "broadcast":
        target = tuple(g.draw(SIZES) if d == 1 else d for d in shape)
        if len(shape) < 3 and g.draw(st.integers(0, 3)) == 0:
            target = (g.draw(SIZES),) + target  # symcompile adds missing leading axes
        g.commit("broadcast", [x], {"shape": target})


def _draw_indexing_op(g: _Draft, op: str, x: str, shape: tuple[int, ...]) -> None:
    """F.slice (negative bounds and steps), F.flip, F.pad (constant) or F.concatenate (of
    x with itself along one axis) on the operand x of `shape`."""
    rank = len(shape)
    if op == "slice":
        start, stop, step = [], [], []
        for n in shape:
            s = g.draw(st.sampled_from([1, 2, -1, -2]))
            b = g.draw(st.integers(-n, n - 1))
            e = g.draw(st.sampled_from([None, -n - 1, n, b + s * g.draw(st.integers(1, n))]))
            start.append(b)
            stop.append(e)
            step.append(s)
        indices = [range(*slice(b, e, s).indices(n))
                   for b, e, s, n in zip(start, stop, step, shape, strict=True)]
        if any(len(r) == 0 for r in indices):
            return
        g.commit("slice", [x], {"start": tuple(start), "stop": tuple(stop),
                                "step": tuple(step)})
    elif op == "flip":
        axes = sorted(g.draw(st.sets(st.integers(0, rank - 1), min_size=1)))
        g.commit("flip", [x], {"axes": tuple(axes)})
    elif op == "pad":
        count = g.draw(st.integers(1, rank))
        widths = tuple(g.draw(st.integers(0, 2)) for _ in range(2 * count))
        g.commit("pad", [x], {"pad_width": widths,
                              "constant_value": g.draw(st.sampled_from([0.0, 0.5, -1.0]))})
    else:
        g.commit("concatenate", [x, x], {"axis": g.draw(st.integers(-rank, rank - 1))})


def _draw_affine(g: _Draft) -> None:
    """F.affine (weights from get_parameter_or_create or nn.Variable) or PF.affine."""
    x = g.operand(lambda v: v.ndim >= 1, lambda: g.shape(1, 3))
    if x is None:
        return
    shape = g.value(x).shape
    base_axis = g.draw(st.integers(0, len(shape) - 1))
    outmaps = tuple(g.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3 - base_axis)))
    inmaps = math.prod(shape[base_axis:])
    with_bias = g.draw(st.booleans())
    parametric = g.draw(st.booleans())
    if not g.room(1 + with_bias):
        return
    w_shape = (inmaps, *outmaps)
    rng = np.random.default_rng(g.draw(SEEDS))
    for _ in range(RETRIES):
        w_values = _values("weight", rng, w_shape, inmaps)
        b_values = _values("normal", rng, outmaps)
        if parametric:
            scope = g.fresh("fc")
            args = [x, Leaf(f"{scope}/affine/W", "pf", w_shape, True, w_values)]
            if with_bias:
                args.append(Leaf(f"{scope}/affine/b", "pf", outmaps, True, b_values))
            kw = {"n_outmaps": outmaps if len(outmaps) > 1 else outmaps[0],
                  "base_axis": base_axis, "name": scope}
            if g.commit("pf_affine", args, kw):
                return
        else:
            args = [x, g.new_leaf(None, w_shape, w_values)]
            if with_bias:
                args.append(g.new_leaf(None, outmaps, b_values))
            if g.commit("affine", args, {"base_axis": base_axis}):
                return


def _matmul_shape(a, b):
    """NumPy's matmul result shape, or None when the shapes do not multiply."""
    try:
        return np.matmul(np.zeros(a), np.zeros(b)).shape
    except ValueError:
        return None


def _draw_matmul(g: _Draft) -> None:
    """F.batch_matmul (equal ranks, batch axes broadcast where 1) or the ``@`` operator."""
    batched = g.draw(st.booleans())
    ta, tb = (g.draw(st.booleans()), g.draw(st.booleans())) if batched else (False, False)
    a = g.operand(lambda v: v.ndim >= 2 if batched else v.ndim >= 1,
                  lambda: g.shape(2 if batched else 1, 3))
    if a is None:
        return
    va = g.value(a)
    k = va.shape[-2] if ta else va.shape[-1]

    def shape_b():
        if batched:
            n = g.draw(SIZES)
            return g.compatible_shape(va.shape[:-2]) + ((n, k) if tb else (k, n))
        rank = g.draw(st.integers(1, 3))
        batch = g.compatible_shape(va.shape[:-2]) if va.ndim == 3 else (g.draw(SIZES),)
        return ((k,), (k, g.draw(SIZES)), batch + (k, g.draw(SIZES)))[rank - 1]

    def accept(vb):
        if batched:
            if vb.ndim != va.ndim or not _broadcasts(va[..., :1, :1], vb[..., :1, :1]):
                return False
        left = np.swapaxes(va, -1, -2) if ta else va
        right = np.swapaxes(vb, -1, -2) if tb else vb
        return _matmul_shape(left.shape, right.shape) is not None and _bounded(left @ right)

    b = g.operand(accept, shape_b)
    if b is None:
        return
    if batched:
        g.commit("batch_matmul", [a, b], {"transpose_a": ta, "transpose_b": tb})
    else:
        g.commit("@", [a, b])


def _draw_softmax(g: _Draft) -> None:
    op = g.choose(["softmax", "log_softmax", "softmax_cross_entropy"])
    x = g.operand(lambda v: v.ndim >= 1, lambda: g.shape(1, 3))
    if x is None:
        return
    shape = g.value(x).shape
    axis = g.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    kw = {} if axis is None else {"axis": axis}
    if op != "softmax_cross_entropy":
        g.commit(op, [x], kw)
        return
    if not g.room():
        return
    axis = len(shape) - 1 if axis is None else axis % len(shape)
    label_shape = shape[:axis] + (1,) + shape[axis + 1:]
    g.commit(op, [x, g.label(label_shape, "labels", n=shape[axis])], kw)


def _draw_cross_entropy(g: _Draft) -> None:
    """sigmoid_cross_entropy (0/1 labels) or binary_cross_entropy (a probability and a
    target in [0, 1], which may need a gradient)."""
    if g.draw(st.booleans()):
        x = g.operand(lambda v: True, g.shape)
        if x is not None and g.room():
            g.commit("sigmoid_cross_entropy", [x, g.label(g.value(x).shape, "binary")])
        return
    p = g.operand(lambda v: bool(np.all((v > 0.05) & (v < 0.95))), g.shape, "probability")
    if p is not None and g.room():
        need_grad = g.draw(st.sampled_from([False, True]))
        g.commit("binary_cross_entropy", [p, g.label(g.value(p).shape, "unit",
                                                     need_grad=need_grad)])


# Elementwise functions come first and twice: hypothesis shrinks towards them.
# Weighted by how many functions each family draws from: UNARY holds a third of them.
FAMILIES = [_draw_unary, _draw_binary, _draw_unary, _draw_reduction, _draw_binary,
            _draw_unary, _draw_shape_op, _draw_affine, _draw_unary, _draw_matmul,
            _draw_softmax, _draw_unary, _draw_cross_entropy, _draw_clip, _draw_indexing]


@st.composite
def graphs(draw, max_steps: int = 6) -> GraphSpec:
    """A random graph of up to `max_steps` functions, then a scalar loss: F.mean or F.sum
    of every value nothing else uses, added up."""
    g = _Draft(draw)
    for _ in range(draw(st.integers(1, max_steps))):
        g.choose(FAMILIES)(g)
    if not g.steps:
        g.commit("tanh", [g.new_leaf("input", (), np.array(0.5), need_grad=True)])
    sinks = [step.out for step in g.steps if step.out not in g.used]
    reducers = tuple(g.choose(["mean", "sum"]) for _ in sinks)
    g.commit("loss", sinks, {"reducers": reducers}, out="loss")
    return g.spec()
