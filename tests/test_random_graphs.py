"""Property tests on random graphs (see random_graphs.py): the compiled forward against an
independent NumPy evaluation, every compiled gradient against central finite differences
(both in float64), and a check that these properties catch a wrong derivative rule.

Both backends: each property runs for the NumPy backend (modules on NumPy arrays) and for
the array API backend, whose modules run here on array-api-strict arrays (which refuse
anything outside the standard) on a device that is not the default, and must give the NumPy
module's numbers (to float64 rounding) as well as pass the same checks; so do the FOUND
programs.

Budget: each property checks EXAMPLES random graphs, 160 by default, so CI compiles and
checks 320 graphs (hypothesis repeats a few small ones), plus, for
each function the random draws missed, a graph of at most two functions that uses it
(drawn with that function as the focus of every choice, see `graphs(focus=...)`), plus the
injected-bug searches; the whole file takes about two minutes on 2 cores. On the
array API backend each property checks ARRAY_API_EXAMPLES graphs (EXAMPLES // 4), each
compiled for both backends (the NumPy modules of graphs the NumPy run compiled are
reused), and a function they miss gets the smallest graphs the NumPy run checked that use
it. Each property has its own fixed seed (``@seed``, no example database), so every run
checks the same graphs. For a longer search set the number of graphs per property (about
0.06 s each)::

    SYMCOMPILE_RANDOM_GRAPHS=3000 python -m pytest -s tests/test_random_graphs.py

and ``SYMCOMPILE_RANDOM_GRAPHS_SEED=N`` (N > 0) to search other graphs than CI's
(``SYMCOMPILE_RANDOM_GRAPHS_ARRAY_API=N`` sets the array API backend's number).

``-s`` shows how many graphs ran and which functions needed an extra graph. A failure is
reported as the graph's nnabla-API program (the spec's repr, also given to
``hypothesis.note``), ready to paste into a file.

The bugs these properties found are kept at the end of this file as the short programs
hypothesis reduced them to (FOUND), each checked like a random graph for both backends.
"""

from __future__ import annotations

import functools
import os
import tempfile

import array_api_strict as xps
import numpy as np
import pytest
import sympy
from gradcheck import arguments, numeric_gradient
from hypothesis import HealthCheck, Phase, find, given, note, seed, settings
from hypothesis.errors import Unsatisfiable
from random_graphs import NOT_DRAWN, REFERENCE, evaluate, graphs, without_loss_term
from random_graphs import build as build_graph
from test_array_api_backend import PROLOGUE  # the programs' leaf()

import symcompile as nn
import symcompile.functions as F
from symcompile.ir import primitives
from symcompile.ops import sympy_functions as elementwise

EXAMPLES = int(os.environ.get("SYMCOMPILE_RANDOM_GRAPHS", "160"))
# Graphs per property on the array API backend (each compiled for both backends).
ARRAY_API_EXAMPLES = int(os.environ.get("SYMCOMPILE_RANDOM_GRAPHS_ARRAY_API",
                                        str(max(1, EXAMPLES // 4))))
BACKENDS = ("numpy", "array_api")
# Another value draws other graphs (CI always checks the same ones, from 0).
SEED = int(os.environ.get("SYMCOMPILE_RANDOM_GRAPHS_SEED", "0"))
MAX_STEPS = 12  # functions per graph, before the loss
INJECTED_STEPS = 6  # smaller graphs for the injected-bug searches: quicker to shrink
SHRINK_COMPILES = 10  # graphs compiled while shrinking an injected bug's example (each about 2 s)
SMALL_STEPS = 2  # functions (before the loss) of the graph given to a function the draws missed
SHORT = 3  # steps (the loss included) of a failing example short enough to stop there

SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=True,  # reproducible: the same graphs on every run (see also run_property)
    database=None,  # nothing written into the working tree
    deadline=None,  # compiling takes a variable amount of time
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.data_too_large],
    print_blob=False,
)
FIND_SETTINGS = settings(SETTINGS, max_examples=5000, phases=[Phase.generate])

# Every graph is compiled to the same file, so that a failure inside generated code has the
# same location each time hypothesis replays it (a fresh path per run reads as flaky).
OUTPUT = tempfile.TemporaryDirectory(prefix="symcompile-random-graphs-")


def compile_spec(spec, backend="numpy"):
    """Build `spec` and compile it in float64 for `backend` into OUTPUT; the CompileResult."""
    loss, _ = build_graph(spec)
    name = "random_graph" if backend == "numpy" else f"random_graph_{backend}"
    return nn.compile(loss, name=name, output_dir=OUTPUT.name, dtype="float64",
                      solver=None, backend=backend)


# NumPy modules of the graphs the NumPy properties checked, by the graph's code: the array
# API properties compare with them instead of compiling the graph again. Only the NumPy
# properties fill it (never the injected-bug searches, whose modules are wrong on purpose).
NUMPY_MODULES: dict[str, object] = {}


def numpy_module(spec, remember=False):
    """The NumPy backend's module of `spec`: the one already compiled, or a new one."""
    code = repr(spec)
    module = NUMPY_MODULES.get(code)
    if module is None:
        module = compile_spec(spec).module
        if remember:
            NUMPY_MODULES[code] = module
    return module


STRICT_ARRAY = type(xps.asarray(0.0))
# Not the default device: a module that makes an array without `device=device` fails there
# (array-api-strict combines no arrays of two devices).
DEVICE = xps.Device("device1")


def on_strict(args) -> list:
    """NumPy arrays as array-api-strict arrays (float64, as compiled) on DEVICE."""
    return [xps.asarray(np.asarray(a, dtype=np.float64), device=DEVICE) for a in args]


def host(array) -> np.ndarray:
    """An array-api-strict array (asserted to be one, in float64 on DEVICE) as a NumPy
    array."""
    assert isinstance(array, STRICT_ARRAY), type(array)
    assert array.dtype == xps.float64 and array.device == DEVICE, (array.dtype, array.device)
    return np.from_dlpack(array)


def strict_forward(module):
    """`module.forward` called on array-api-strict copies of NumPy arguments; a float."""
    def forward(*args):
        out = module.forward(*on_strict(args))
        # (a graph of constants has no argument to take the library from: it is NumPy's)
        return float(host(out) if args else np.asarray(out))

    return forward


def assert_same_numbers(got, expected, what) -> None:
    """The array API module's `got` (on array-api-strict) against the NumPy module's
    `expected`: the same shape, and the same numbers up to rounding (both compute the same
    float64 expressions with NumPy underneath, some through other functions: vecdot for
    vdot, xp.sum for .sum())."""
    got = host(got)
    assert got.shape == np.shape(expected), (what, got.shape, np.shape(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-13, err_msg=what)


def leaf_arguments(module) -> list[str]:
    """The module's argument names, in call order."""
    return list(module.INPUTS) + [p["argument"] for p in module.PARAMETERS.values()]


def expected_gradients(module, spec) -> set[str]:
    """Arguments of the leaves created with need_grad=True: those must be in GRADIENTS."""
    by_name = {v["name"]: k for k, v in module.INPUTS.items()}
    by_name |= {k: v["argument"] for k, v in module.PARAMETERS.items()}
    return {by_name[leaf.name] for leaf in spec.leaves if leaf.need_grad}


def check_forward(spec, backend="numpy", remember=False) -> None:
    """forward() at the spec's values equals the NumPy evaluation of the same graph; on
    the array API backend (array-api-strict arrays), also the NumPy module's forward()."""
    if backend == "numpy":
        module = numpy_module(spec, remember) if remember else compile_spec(spec).module
        args = arguments(module, spec.values())
        got = module.forward(*args)
        assert np.shape(got) == ()
        np.testing.assert_allclose(got, evaluate(spec), rtol=1e-9, atol=1e-10)
        assert set(module.GRADIENTS) == expected_gradients(module, spec)
        return
    module, reference = compile_spec(spec, backend).module, numpy_module(spec)
    assert leaf_arguments(module) == leaf_arguments(reference)
    args = arguments(module, spec.values())
    got = module.forward(*on_strict(args))
    if args:  # (a graph of constants computes with NumPy, see strict_forward)
        assert_same_numbers(got, reference.forward(*args), "forward")
        got = host(got)
    np.testing.assert_allclose(got, evaluate(spec), rtol=1e-9, atol=1e-10)
    assert module.GRADIENTS == reference.GRADIENTS
    assert set(module.GRADIENTS) == expected_gradients(module, spec)


def check_gradients(spec, backend="numpy", remember=False) -> None:
    """The gradient property on `spec`'s graph and values (see assert_gradients); on the
    array API backend, on array-api-strict arrays and against the NumPy module too."""
    if backend == "numpy":
        module = numpy_module(spec, remember) if remember else compile_spec(spec).module
        assert_gradients(module, arguments(module, spec.values()))
        return
    module = compile_spec(spec, backend).module
    assert_strict_gradients(module, numpy_module(spec), arguments(module, spec.values()))


def assert_gradients(module, args) -> None:
    """gradient(*args) returns forward()'s loss and, for every leaf with need_grad, the
    central finite difference of forward() (both float64)."""
    loss = module.forward(*args)
    result = module.gradient(*args)
    # With no gradient to return, gradient() returns the loss alone, not a 1-tuple.
    result = result if module.GRADIENTS else (result,)
    assert len(result) == 1 + len(module.GRADIENTS)
    np.testing.assert_allclose(result[0], loss, rtol=1e-12, atol=1e-12)
    names = leaf_arguments(module)
    for name, grad in zip(module.GRADIENTS, result[1:], strict=True):
        expected = numeric_gradient(module.forward, args, names.index(name))
        assert np.shape(grad) == expected.shape, (name, np.shape(grad), expected.shape)
        np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7,
                                   err_msg=f"d loss / d {name}")


def assert_strict_gradients(module, reference, args) -> None:
    """The array API module's gradient(), run on array-api-strict arrays, returns
    array-api-strict arrays holding the NumPy module's loss and gradients, and those pass
    the finite-difference check of assert_gradients (on its own forward(), also run on
    array-api-strict arrays)."""
    result = module.gradient(*on_strict(args))
    expected = reference.gradient(*args)
    if not args:  # a graph of constants: NumPy's arrays (see strict_forward)
        np.testing.assert_allclose(np.asarray(result), expected, rtol=1e-12)
        return
    if not module.GRADIENTS:
        result, expected = (result,), (expected,)
    assert module.GRADIENTS == reference.GRADIENTS
    assert len(result) == len(expected) == 1 + len(module.GRADIENTS)
    assert_same_numbers(result[0], host(module.forward(*on_strict(args))), "loss")
    names = leaf_arguments(module)
    forward = strict_forward(module)
    for name, grad, numpy_grad in zip(("loss", *module.GRADIENTS), result, expected,
                                      strict=True):
        assert_same_numbers(grad, numpy_grad, f"d loss / d {name}")
        if name != "loss":
            numeric = numeric_gradient(forward, args, names.index(name))
            np.testing.assert_allclose(host(grad), numeric, rtol=1e-5, atol=1e-7,
                                       err_msg=f"d loss / d {name} (finite differences)")


def checked(check, spec, options, counts) -> None:
    """Run `check` on `spec` (an error fails the property) and count its functions."""
    check(spec, **options)
    counts["ops"].update(spec.ops())


def run_property(check, random_seed: int, examples=EXAMPLES, backend="numpy") -> dict:
    """Run `check` for `backend` on `examples` random graphs drawn from `random_seed` (one
    per property, so that they test different graphs); return the graphs run, the distinct
    ones, and the functions of those checked."""
    counts = {"graphs": 0, "distinct": set(), "ops": set()}
    # The NumPy run remembers its modules for the array API run (same seed, same graphs).
    options = {"backend": backend, "remember": backend == "numpy"}

    @seed(random_seed)
    @settings(SETTINGS, max_examples=examples, derandomize=False)
    @given(spec=graphs(MAX_STEPS))
    def random_graph(spec):
        note(repr(spec))  # the failing graph as code, also printed by the spec's repr
        nn.clear_parameters()  # pytest fixtures are not reset between examples
        checked(check, spec, options, counts)
        if backend == "numpy":
            remember_smallest(check, spec)
        counts["graphs"] += 1
        counts["distinct"].add(repr(spec))

    random_graph()
    # Every function is checked by every property: one the random graphs missed gets a
    # small graph that uses it (on the array API backend, the smallest the NumPy run
    # checked, when it ran).
    missing = sorted(set(REFERENCE) - counts["ops"])
    for op in missing:
        if op in counts["ops"]:
            continue  # in the graph of a function before it
        smallest = SMALLEST.get(check.__name__, {}).get(op) if backend != "numpy" else None
        spec = smallest[0] if smallest else small_graph_using(op)
        nn.clear_parameters()
        try:
            checked(check, spec, options, counts)
        except Exception as exc:
            exc.add_note(f"graph:\n{spec!r}")
            raise
        if backend == "numpy":
            remember_smallest(check, spec)
    print(f"\n{check.__name__} ({backend}): {counts['graphs']} random graphs "
          f"({len(counts['distinct'])} distinct), plus one each for {missing or 'no function'}")
    GRAPHS_RUN.update(counts["distinct"])
    return counts


@functools.cache
def small_graph_using(op: str):
    """The first graph of at most SMALL_STEPS functions that uses `op` (hypothesis draws,
    without compiling, until one does; derandomized, so always the same graph), drawn with
    `op` as the focus of every choice that can pick it (among some 150 functions, plain
    draws took seconds to meet a given one). Not shrunk: shrinking took 10 to 30 s per
    function, most of the file's time, and a graph this short is already about as small as
    shrinking makes it."""
    is_using = functools.partial(_uses, op)
    try:
        return find(graphs(SMALL_STEPS, focus=op), is_using, settings=FIND_SETTINGS)
    except Unsatisfiable:  # (no function needs more steps than that today)
        return find(graphs(MAX_STEPS), is_using, settings=FIND_SETTINGS)


def _uses(op: str, spec) -> bool:
    return op in spec.ops()


GRAPHS_RUN: set[str] = set()  # every distinct graph the properties checked, for the budget
# The smallest graphs that use each function, of those the NumPy run of each property
# checked: {check's name: {function: [spec, ...]}}, smallest first (the array API run
# checks the first).
SMALLEST: dict[str, dict] = {}


def remember_smallest(check, spec, keep=1) -> None:
    smallest = SMALLEST.setdefault(check.__name__, {})
    for op in spec.ops():
        kept = smallest.setdefault(op, [])
        if all(repr(other) != repr(spec) for other in kept):
            kept.append(spec)
            kept.sort(key=_size)
            del kept[keep:]


def assert_budget_spent(counts, examples=EXAMPLES) -> None:
    assert counts["graphs"] >= examples
    assert len(counts["distinct"]) >= 0.8 * examples  # hypothesis repeats a few small graphs
    assert set(REFERENCE) - counts["ops"] == set()  # every function checked


def examples_for(backend: str) -> int:
    return EXAMPLES if backend == "numpy" else ARRAY_API_EXAMPLES


# The NumPy backend first (pytest runs parameters in order): its modules are reused.
@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_matches_numpy(backend):
    examples = examples_for(backend)
    assert_budget_spent(run_property(check_forward, 2 * SEED + 1, examples, backend),
                        examples)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_match_finite_differences(backend):
    examples = examples_for(backend)
    assert_budget_spent(run_property(check_gradients, 2 * SEED + 2, examples, backend),
                        examples)
    print(f"distinct graphs checked by both properties so far: {len(GRAPHS_RUN)}")


def test_graphs_cover_every_function():
    """The generator reaches every function the suite claims to test."""
    seen: set[str] = set()
    leaf_kinds: set[tuple] = set()
    channels_last: set[str] = set()

    @settings(SETTINGS, max_examples=800)
    @given(spec=graphs(MAX_STEPS))
    def collect(spec):
        seen.update(spec.ops())
        leaf_kinds.update((leaf.kind, leaf.need_grad) for leaf in spec.leaves)
        channels_last.update(s.op for s in spec.steps if s.kwargs.get("channel_last"))

    collect()
    # A function the plain draws happen to miss (some 150 share them) must still be found
    # when the draws aim at it.
    rare = set(REFERENCE) - seen
    assert {op for op in rare if op not in small_graph_using(op).ops()} == set()
    assert len(rare) <= 3, rare  # (a family the draws no longer reach at all)
    assert {("input", True), ("input", False), ("parameter", True), ("parameter", False),
            ("label", False), ("pf", True)} <= leaf_kinds
    assert {"convolution", "deconvolution", "unpooling"} <= channels_last  # (NHWC)
    assert channels_last & {"max_pooling", "average_pooling", "sum_pooling"}


def test_every_function_is_drawn_or_excluded():
    """Each function of symcompile.functions is drawn by the random graphs (it has a NumPy
    reference, and test_graphs_cover_every_function sees it drawn) or is in NOT_DRAWN, with
    the reason it cannot be checked there; never both."""
    assert set(F.__all__) - set(REFERENCE) - set(NOT_DRAWN) == set()
    assert set(NOT_DRAWN) & set(REFERENCE) == set()
    assert set(NOT_DRAWN) <= set(F.__all__)


# --- the suite finds an injected derivative bug -------------------------------------------

def _flip_softplus(self, argindex=1):
    """softplus' = -sigmoid (the right rule is +sigmoid)."""
    return -elementwise.Sigmoid(self.args[0])


_REDUCE_MAX_VJP = primitives.ReduceMax.vjp


def _flip_reduce_max(self, index, g, shapes):
    """The max/min VJP with its sign flipped."""
    return -_REDUCE_MAX_VJP(self, index, g, shapes)


INJECTED = {
    # name: (class and method patched, replacement, functions the shrunk example must call)
    "softplus derivative": ((elementwise.Softplus, "fdiff"), _flip_softplus,
                            ("F.softplus", "F.sigmoid_cross_entropy")),
    "max/min vjp": ((primitives.ReduceMax, "vjp"), _flip_reduce_max, ("F.max", "F.min")),
}


def _fails(spec) -> bool:
    """Whether the gradient property fails on `spec`."""
    nn.clear_parameters()
    try:
        check_gradients(spec)
    except AssertionError:
        return True
    return False


def _size(spec) -> tuple:
    """How big a failing example is, to keep the smallest one seen."""
    return (len(spec.steps), len(spec.leaves), sum(leaf.values.size for leaf in spec.leaves),
            len(repr(spec)))


def _drop_loss_terms(spec, tried):
    """After hypothesis' shrinking, drop the loss terms the failure does not need (and what
    only they use): a few more compiles for a much shorter report."""
    dropped = True
    while dropped and len(spec.steps[-1].args) > 1:
        dropped = False
        for index in range(len(spec.steps[-1].args)):
            smaller = without_loss_term(spec, index)
            tried["shrinking"] += 1
            if _fails(smaller):
                spec, dropped = smaller, True
                break
    return spec


@pytest.mark.parametrize("bug", list(INJECTED))
def test_an_injected_derivative_bug_is_found(bug, monkeypatch):
    """With one derivative rule wrong, the gradient property fails within the budget, and
    hypothesis shrinks the failure to a short program that uses the broken function."""
    target, replacement, functions = INJECTED[bug]
    tried = {"graphs": 0, "shrinking": 0, "first": None, "smallest": None}
    verdicts: dict[str, bool] = {}

    def condition(spec):
        code = repr(spec)
        if not any(f in code for f in functions):
            return False  # cannot show this bug: not worth compiling
        if code not in verdicts:
            smallest = tried["smallest"]
            if smallest is not None and (tried["shrinking"] >= SHRINK_COMPILES
                                         or len(smallest.steps) <= SHORT):
                verdicts[code] = False  # shrinking is over: no more compiling
                return False
            tried["shrinking" if smallest is not None else "graphs"] += 1
            verdicts[code] = _fails(spec)
            if verdicts[code] and (smallest is None or _size(spec) < _size(smallest)):
                tried["first"] = tried["first"] or spec
                tried["smallest"] = spec
        return verdicts[code]

    monkeypatch.setattr(*target, replacement)
    sympy.core.cache.clear_cache()  # no derivative taken before the patch is reused
    try:
        # Drawing is cheap; only graphs that call the broken function are compiled, and
        # those count against the budget.
        find(graphs(INJECTED_STEPS), condition,
             settings=settings(SETTINGS, max_examples=20 * EXAMPLES))
        # hypothesis shrinks by its own order; report the smallest failure it met
        minimal = _drop_loss_terms(tried["smallest"], tried)
        buggy_source = compile_spec(minimal).source
    finally:
        monkeypatch.undo()
        sympy.core.cache.clear_cache()
    code = repr(minimal)
    print(f"\n{bug}: found after {tried['graphs']} graphs ({len(tried['first'].steps)} steps), "
          f"shrunk with {tried['shrinking']} more to:\n{code}")
    assert tried["graphs"] <= EXAMPLES
    assert any(f in code for f in functions), code
    assert _size(minimal) <= _size(tried["first"])  # shrunk, or the first was minimal
    # Without the patch the same graph passes and compiles to other code: the broken rule
    # reached a freshly generated module, nothing was served from a cache.
    assert not _fails(minimal), code
    assert compile_spec(minimal).source != buggy_source
    compile(code, "<shrunk example>", "exec")  # the report is a valid program


# --- bugs the properties found -----------------------------------------------------------
# Each program is the smallest graph hypothesis reduced a failure to, with what went wrong
# before the fix; they run on every test run, whatever the random budget.

FOUND = {
    # found while testing the array API backend: the sum of a sum that keeps its axes
    # (the cross-entropy's, over the class axis) merged into one sum that dropped the
    # kept axis too, a rank short of the outer sum's shape (IndexError)
    "softmax cross-entropy over a last axis of length 1, summed over another axis": """
x = leaf("x", (2, 2, 1), np.ones((2, 2, 1)))
t = leaf("t", (2, 2, 1), np.zeros((2, 2, 1)), need_grad=False)
loss = F.sum(F.sum(F.softmax_cross_entropy(x, t), axis=1))
""",
    # a constant broadcast printed as xp.broadcast_to(-1.5, (1,)): the array API takes
    # arrays only (AttributeError); NumPy's was a float64 array in a float32 module
    "a broadcast constant": """
x = leaf("x", (), np.array(-0.57))
loss = F.sum(F.broadcast(F.constant(val=-1.5), shape=(1,))) + F.mean(x * x)
""",
    # a softmax over an axis of length 1 is the constant 1: expanding the sum after it
    # lost its shape (IndexError)
    "softmax over an axis of length 1": """
x = leaf("x", (3, 1), [[0.5], [1.5], [-0.5]])
loss = F.sum(F.softmax(F.softmax(x)))
""",
    # the gradient of a softmax summed over its axis is 0: a bare 0 reached a matrix
    # product (matmul of a 0-d operand)
    "gradient through a summed softmax": """
x = leaf("x", (2, 3), [[0.2, 0.5, 0.9], [0.4, 0.1, 0.7]])
w = leaf("w", (3, 4), np.linspace(-1, 1, 12).reshape(3, 4))
loss = F.sum(F.softmax(F.affine(x, w)))
""",
    # log_softmax(x) - x is constant along the axis: the forward sum over it lost its
    # factor 3 (the expansion folded the length of the axis away)
    "log_softmax minus its input": """
x = leaf("x", (2, 3), [[0.2, 0.5, 0.9], [0.4, 0.1, 0.7]])
loss = F.sum(F.log_softmax(x) - x)
""",
    # counting operations of 2**(2*(x - ...)) under distribute(False) recursed without
    # end in SymPy's Abs
    "power of a log_softmax": """
x = leaf("x", (4,), [0.65, 0.82, 0.83, 1.41])
h = 2.0 ** F.log_softmax(x)
loss = F.sum(h * h)
""",
    # the derivative's display formula replaced d loss/d loss by a bare 1, which has no
    # shape for the matrix product after it (IndexError)
    "derivative formula through a reshaped seed": """
w = leaf("w", (1, 1, 3), [[[-1.92, 0.49, -1.67]]])
v = leaf("v", (1, 1, 1), [[[0.712]]])
a = leaf("a", (1, 1, 1), [[[-1.31]]])
h = F.maximum2(a, w) * 2.0
loss = (F.sum(F.affine(F.batch_matmul(h, w, transpose_b=True), v, base_axis=0))
        + F.sum(v / (a / h)))
""",
    # printed as x.T @ 1/_t0, which Python reads as (x.T @ 1)/_t0
    "matrix product by a reciprocal": """
x = leaf("x", (2, 4), np.linspace(0.1, 1, 8).reshape(2, 4), need_grad=False)  # data: no gradient
w = leaf("w", (4, 3), np.linspace(0.1, 1, 12).reshape(4, 3))
loss = F.sum(F.log(F.affine(x, w)))
""",
    # SymPy's Max took its derivative through Heaviside, whose real-part test flipped
    # sin's sign without end
    "maximum_scalar of a sine": """
w = leaf("w", (), -1.54)
x = leaf("x", (), 0.74)
loss = F.sin(F.maximum_scalar(F.sin((w - x) ** 2), -1.0))
""",
    # a 0-d comparison was printed first in a product and negated: -_t4*_t5 ('numpy
    # boolean negative')
    "negated 0-d comparison": """
x = leaf("x", (), 1.9)
y = leaf("y", (), -1.9)
lo = leaf("lo", (), -1.31)
u = leaf("u", (3,), [0.52, 0.6, 0.19])
v = leaf("v", (3,), [1.09, -0.68, -1.87])
loss = x + F.clip_by_value(x + y, lo, F.sum(u * v)) * (-1.5)
""",
    # SymPy rewrote (h*h)**y as Abs(h)**(2*y) for the real sum h, then differentiated it
    # with respect to a non-real placeholder
    "square of a sum to a power": """
x = leaf("x", (2, 3), [[0.2, 0.5, 0.9], [0.4, 0.1, 0.7]])
y = leaf("y", (2, 1), [[0.5], [1.5]])
h = F.sum(x, axis=1, keepdims=True)
loss = F.mean((h * h) ** y)
""",
    # x - x where x is a loss: SymPy cancelled it only in CSE, after the constant check, and
    # the bare 0 left behind had no shape for the softmax's max after it ('int' object has
    # no attribute 'max')
    "a difference that cancels late": """
w = nn.parameter.get_parameter_or_create("w", (2, 3),
                                         np.array([[1.66, -0.23, 0.74], [1.5, -1.06, 0.61]]))
t = leaf("t", (2, 3), [[1, 0, 1], [0, 1, 0]], need_grad=False)
h = F.sigmoid_cross_entropy(w, t)
zero = h - h
loss = F.sum(F.softmax(zero) * w) + F.sum(zero)
""",
    # the softmax family nested over axes of length 1: every expansion doubles its argument
    # (x - max(x)), SymPy's simplification of the cancelling result recursed without end
    "softmax family nested over an axis of length 1": """
x0 = leaf("x0", (1,), np.array([-1.31]))
t0 = leaf("t0", (1,), np.array([0.0]), need_grad=False)
t1 = leaf("t1", (1,), np.array([0.0]), need_grad=False)
t2 = leaf("t2", (1,), np.array([0.0]), need_grad=False)
h0 = F.clip_by_value(x0, 0.0, 1.0)
h1 = F.log_softmax(h0)
h2 = F.log_softmax(h1)
h3 = F.softmax_cross_entropy(h2, t0)
h4 = F.softmax(h3)
h5 = F.softmax_cross_entropy(h4, t1)
h6 = F.softmax_cross_entropy(h4, t2)
loss = F.mean(h5) + F.mean(h6)
""",
    # the same nesting: a cancelling difference inside it became a bare 0 without a shape
    # ('int' object has no attribute 'max')
    "softmax cross-entropy over an axis of length 1, nested": """
x = leaf("x", (3, 4), [[-1.3, 1.83, -1.62, -0.97], [1.2, 1.19, -0.86, 0.35],
                      [0.14, -0.35, 0.33, -1.83]])
t = leaf("t", (3, 1), [[3], [2], [1]], need_grad=False)
h = F.softmax_cross_entropy(F.softmax_cross_entropy(F.tanh(x), t), t * 0)
loss = F.sum(F.log_softmax(F.log_softmax(h, axis=0), axis=0))
""",
    # a value the user named that cancels to 0 gave every 0 in the derivative's formula its
    # name, the axes of sums included (Cannot convert symbols to int)
    "a named value that cancels to 0": """
x = leaf("x", (), 0.7)
y = leaf("y", (2, 3), [[0.2, -0.5, 0.9], [0.4, 0.1, -0.7]])
zero = F.sub2(x, x)
zero.name = "zero"
loss = F.mean(zero) + F.sum(F.sum(F.softmax(y) * y, axis=0, keepdims=True) * F.tanh(y))
""",
    # huber_loss(h, h) cancelled to a constant only inside a later sum, which then summed a
    # 0-d array over two axes (AxisError)
    "huber loss of a difference that cancels": """
x = leaf("x", (3, 3), np.linspace(-1, 1, 9).reshape(3, 3))
h = F.r_sub_scalar(x, 0.5)
loss = F.sum(F.huber_loss(h, h, delta=2.0)) + F.sum(x * x)
""",
    # (sqrt(1.5*h**2)/h)**2 is 1.5 only once CSE names h**2: the sum over it then summed
    # a Python float ('float' object has no attribute 'sum'); sums now keep the shape of
    # what they sum
    "a summand that folds to a constant in CSE": """
w = nn.parameter.get_parameter_or_create("w", (3, 2),
                                         np.array([[0.5, -1.2], [0.3, 0.8], [-0.4, 1.1]]))
h = F.softplus(w) + 1.0
ratio = F.pow_scalar(F.mul_scalar(h ** 2, 1.5), 0.5) / h  # sqrt(1.5), once SymPy sees it
loss = F.sum(ratio ** 2 + 1.5) + F.sum(w * w)
""",
    # building h**h (and differentiating such graphs) under distribute(False) made SymPy's
    # Abs flip the sign of a sum forever (RecursionError); such a graph now compiles with
    # SymPy's default distribution
    "a power whose base and exponent are a negated sum": """
w = leaf("w", (), 0.62)
t = leaf("t", (), 0.64)
u = leaf("u", (), 0.64, need_grad=False)
h = 1.5 - F.tanh(F.binary_cross_entropy(F.binary_cross_entropy(w, u), t))
loss = F.sum(F.pow2(h, h))
""",
    # a gradient through a softmax folded to a scalar after it had been inlined into a
    # reshape, which then reshaped the scalar (cannot reshape array of size 1)
    "reshaped gradient that folds to a scalar": """
x0 = leaf("x0", (1, 2), np.array([[-1.07, 1.91]]))
t0 = leaf("t0", (1, 1), np.array([[1.0]]), need_grad=False)
h0 = F.softmax(x0)
h1 = F.softmax_cross_entropy(h0, t0)
h2 = F.transpose(h1, axes=(0, 1))
h3 = F.reshape(h0, shape=(2,))
h4 = F.reduce_sum(h3)
h5 = F.softmax(h3)
h6 = F.softmax(h5)
h7 = -h6
h8 = F.div2(h0, h2)
loss = F.sum(h4) + F.mean(h7) + F.mean(h8)
""",
    # the loss simplified to the constant 0 (an epsilon-insensitive loss of a value and
    # its gradient-clipped copy), and reusing forward values replaced every 0 of the
    # backward by `loss`, a slice's bounds included (Cannot convert symbols to int)
    "a loss that simplifies to a constant": """
x0 = leaf("x0", (1,), np.array([-1.31]))
s0 = leaf("s0", (2,), np.array([-1e6, -1e6]), need_grad=False)
s1 = leaf("s1", (2,), np.array([1e6, 1e6]), need_grad=False)
h0 = F.concatenate(x0, x0, axis=0)
h1 = F.clip_grad_by_value(h0, s0, s1)
loss = F.mean(F.epsilon_insensitive_loss(h1, h0, epsilon=0.5))
""",
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_matrix_operand_that_folds_to_a_constant_is_a_clear_error(backend, tmp_path):
    """(sqrt(1.5*h**2)/h)**2 is 1.5 only once CSE names h**2; as a matrix operand its shape
    cannot be recovered then (a known limitation): a ValueError that says what to do, not
    an IndexError from inside the compiler."""
    code = PROLOGUE + """
w = leaf("w", (2, 3), [[0.5, -1.2, 0.3], [0.8, -0.4, 1.1]])
v = leaf("v", (3, 4), np.ones((3, 4)))
h = F.softplus(w) + 1.0
ratio = F.pow_scalar(F.mul_scalar(h ** 2, 1.5), 0.5) / h
loss = F.sum(F.affine(ratio ** 2, v))
"""
    with pytest.raises(ValueError, match="simplifies to a constant .* need_grad=False"):
        check_program(code, tmp_path, backend)


def check_program(code: str, out, backend="numpy") -> None:
    """Run a graph program, compile its loss in float64 and check its gradients at the
    leaves' values (.d) against finite differences; for the array API backend, on
    array-api-strict arrays and against the NumPy module too."""
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - the programs above

    def compiled(backend):
        name = "found_bug" if backend == "numpy" else f"found_bug_{backend}"
        return nn.compile(namespace["loss"], name=name, output_dir=out,
                          dtype="float64", solver=None, backend=backend).module

    module = compiled(backend)
    parameters = nn.get_parameters(grad_only=False)
    values = {name: np.asarray(var.d, dtype=np.float64) for name, var in namespace.items()
              if isinstance(var, nn.Variable) and var.parent is None and var.name}
    values |= {name: np.asarray(var.d, dtype=np.float64) for name, var in parameters.items()}
    args = arguments(module, values)
    if backend == "numpy":
        assert_gradients(module, args)
        return
    reference = compiled("numpy")
    assert_same_numbers(module.forward(*on_strict(args)), reference.forward(*args), "forward")
    assert_strict_gradients(module, reference, args)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bug", list(FOUND))
def test_found_bug_stays_fixed(backend, bug, tmp_path):
    check_program(PROLOGUE + FOUND[bug], tmp_path, backend)
