"""F.inq_affine, F.inq_convolution and their PF layers (Incremental Network Quantization).

Each forward pass gives the weights fixed before their values back, fixes more at the
passes listed in inq_iterations (half of the learnable ones, by |w| in the order of
nnabla's std::sort, or at random; all at the last), rounds the fixed ones to powers of
two and writes the weight, the indicators and the hidden state back. Checked:

- the sequence of weights, indicators and outputs over several forward passes with
  edits between them (an update's), against an element-by-element NumPy reference
  written here (`Reference`), on both backends and in the generated module run alone;
- gradients: x's and the bias' against central differences in float64, the weight's
  straight through (the layer's gradient for the weights it used), none to indicators;
- training loops (forward, backward, solver.update) against nnabla 1.39's weights, and
  ties broken as its std::sort breaks them (also as numbers recorded from it), and its
  quirks (see `test_quirks_as_nnabla`).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF
import symcompile.solvers as S
from symcompile.backends.kernels.portable_kernels import inq_sort_order
from symcompile.runtime import execution

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
f32 = np.float32


# --- an independent reference: nnabla's forward pass, one element at a time ----------------

def _exponent(magnitude: float) -> tuple[int, float]:
    """(k, m): magnitude = m * 2^k with m in [1, 2)."""
    fraction, power = math.frexp(magnitude)
    return power - 1, 2 * fraction


def reference_quantized(w: np.ndarray, fixed: np.ndarray, num_bits: int) -> np.ndarray:
    """The weights whose indicator is 1 as powers of two: 2^k rounded up where the
    mantissa is at least 1.5 (the arithmetic mean of 2^k and 2^(k+1)), limited to [n2,
    n1] from the largest |w| (whose mantissa must exceed 1.5, nnabla's double compare),
    0 below 2^(n2 - 1)."""
    top = max(abs(float(v)) for v in w.ravel()) or 1.0
    k, m = _exponent(top)
    n1 = k + (m > 1.5)
    n2 = n1 + 1 - int(2.0 ** (num_bits - 2))
    out = np.array(w).ravel()  # (in w's dtype)
    for i, (v, flag) in enumerate(zip(w.ravel(), fixed.ravel(), strict=True)):
        if flag != 1:
            continue
        if abs(float(v)) < 2.0 ** (n2 - 1):
            out[i] = 0.0
            continue
        k, m = _exponent(abs(float(v)))
        e = min(max(k + (m >= 1.5), n2), n1)
        out[i] = math.copysign(2.0 ** e, float(v)) if v < 0 else 2.0 ** e
    return out.reshape(w.shape)


class Reference:
    """nnabla's INQ function: its pass count, previous weights and previous indicators."""

    def __init__(self, shape, iterations, num_bits=4):
        self.count, self.iterations, self.num_bits = 0, tuple(iterations), num_bits
        self.old_w, self.old_i = np.zeros(shape, f32), np.zeros(shape, f32)

    def forward(self, w, indicators, coins=None):
        """(the weights used, the indicators after the pass); `coins` (0/1) for random."""
        w = np.where(self.old_i == 1, self.old_w, w).astype(f32)
        fixed = np.trunc(indicators).astype(f32).ravel()
        if self.count in self.iterations:
            if self.count == self.iterations[-1]:
                fixed[:] = 1
            elif coins is not None:
                fixed = np.where(fixed == 0, coins.ravel(), fixed)
            else:
                magnitude = [abs(float(v)) for v in w.ravel()]
                ranked = sorted(range(len(magnitude)), key=lambda j: -magnitude[j])
                learnable = [j for j in ranked if fixed[j] == 0]
                half = len(learnable) // 2
                for j in (learnable[:half] if half else
                          [ranked[0]] if fixed[ranked[0]] == 0 else []):
                    fixed[j] = 1
        fixed = fixed.reshape(w.shape)
        used = reference_quantized(w, fixed, self.num_bits)
        self.count += 1
        self.old_w, self.old_i = used.copy(), fixed.copy()
        return used, fixed


def reference_convolution(x, w, b, pad):
    padded = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in pad])
    windows = np.lib.stride_tricks.sliding_window_view(padded, w.shape[2:], axis=(2, 3))
    return np.einsum("nchwij,ocij->nohw", windows, w) + b[None, :, None, None]


def _backend(name):
    class Using:
        def __enter__(self):
            self.previous = execution.set_backend(name)

        def __exit__(self, *exc):
            execution.set_backend(self.previous)

    return Using()


def _leaf(array, need_grad=False):
    return nn.Variable.from_numpy_array(np.asarray(array, f32), need_grad=need_grad)


# --- the state sequence, against the reference ------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", "array_api"])
def test_affine_passes_match_the_reference(backend):
    """Five passes, an edit of every weight between them (as an update makes): the fixed
    weights get their values back, half the learnable ones are fixed at passes 1 and 3,
    all at 4; the output is the affine layer of the weights used."""
    nn.clear_parameters()
    rng = np.random.default_rng(0)
    xv, wv, bv = rng.normal(size=(3, 2, 4)), rng.normal(size=(8, 5)), rng.normal(size=5)
    iv = np.where(rng.random((8, 5)) < 0.15, 1.0, 0.0)
    iv[0, :3] = (0.7, -0.5, 2.0)  # read as 0, 0 and 2 (neither learnable nor fixed)
    x, w, i, b = _leaf(xv), _leaf(wv, True), _leaf(iv), _leaf(bv, True)
    y = F.inq_affine(x, w, i, b, inq_iterations=(1, 3, 4))
    ref = Reference((8, 5), (1, 3, 4))
    current, fixed = wv.astype(f32), iv
    with _backend(backend):
        for _ in range(5):
            y.forward()
            used, fixed = ref.forward(current, fixed)
            np.testing.assert_array_equal(w.d, used)
            np.testing.assert_array_equal(i.d, fixed)
            np.testing.assert_allclose(y.d, xv.reshape(3, 8).astype(f32) @ used + bv,
                                       rtol=1e-5, atol=1e-5)
            current = (used + rng.normal(size=used.shape) * 0.1).astype(f32)
            w.d = current
    assert fixed.sum() == 40 and (fixed != 0).sum() == 40
    nn.clear_parameters()


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
def test_convolution_passes_match_the_reference(backend):
    nn.clear_parameters()
    rng = np.random.default_rng(1)
    xv = rng.normal(size=(2, 3, 5, 5))
    wv = rng.normal(size=(4, 3, 3, 3)) * 0.3
    with _backend(backend):
        x = _leaf(xv)
        y = PF.inq_convolution(x, 4, (3, 3), pad=(1, 1), num_bits=3, inq_iterations=(0, 2, 3),
                               selection_algorithm="largest_abs", w_init=wv.astype(f32),
                               b_init=np.arange(4, dtype=f32))
        params = nn.get_parameters(grad_only=False)
        w, i = params["inq_conv/W"], params["inq_conv/I"]
        ref = Reference(wv.shape, (0, 2, 3), num_bits=3)
        current, fixed = wv.astype(f32), np.zeros(wv.shape, f32)
        for _ in range(4):
            y.forward()
            used, fixed = ref.forward(current, fixed)
            np.testing.assert_array_equal(w.d, used)
            np.testing.assert_array_equal(i.d, fixed)
            np.testing.assert_allclose(y.d, reference_convolution(xv, used, np.arange(4), (1, 1)),
                                       rtol=1e-5, atol=1e-5)
            current = (used - 0.05).astype(f32)
            w.d = current
    assert (fixed == 1).all()  # powers of two (3 bits: 2^n1, 2^(n1-1), 2^(n1-2)) or 0
    assert len(set(np.unique(np.abs(used))) - {0.0}) <= 3
    assert all(math.log2(v).is_integer() for v in np.unique(np.abs(used)) if v)
    nn.clear_parameters()


def test_random_selection_fixes_each_learnable_weight_with_probability_half(tmp_path):
    """The generated module's rng draws the coins (not nnabla's generator): a fixed
    indicator stays fixed, a learnable one becomes fixed about half the time, the last
    listed pass fixes all; one seed gives the same selection."""
    nn.clear_parameters()
    x, w, i = _leaf(np.ones((1, 40))), _leaf(np.linspace(-1, 1, 2000).reshape(40, 50), True), \
        _leaf(np.zeros((40, 50)))
    x.name, w.name, i.name = "x", "w", "i"
    module = nn.compile(F.sum(F.inq_affine(x, w, i, inq_iterations=(0, 1, 2),
                                           selection_algorithm="random")),
                        name="inq_random", output_dir=tmp_path).module
    assert module.RANDOM_DRAWS

    def passes(seed):
        state = {"x": np.ones((1, 40), f32), "w": np.linspace(-1, 1, 2000, dtype=f32)
                 .reshape(40, 50), "i": np.zeros((40, 50), f32)}
        state.update({name: np.zeros(spec["shape"], f32) for name, spec in
                      module.INPUTS.items() if name.startswith("inq_affine_")})
        seen = []
        for step in range(3):
            module.forward(*(state[n] for n in module.INPUTS), *(state[n] for n in
                                                                  module.PARAMETERS),
                           rng=seed + step)
            seen.append(state["i"].copy())
        return seen

    first, again = passes(5), passes(5)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert 0.45 < first[0].mean() < 0.55
    assert (first[1] >= first[0]).all() and 0.7 < first[1].mean() < 0.8
    assert (first[2] == 1).all()
    nn.clear_parameters()


# --- gradients ----------------------------------------------------------------------------------

def test_gradients(tmp_path):
    """float64: x's and b's gradients are central differences of the output; the
    weight's is the layer's gradient for the weights it used (straight through: the
    differences' for a learnable weight, x.T @ dy for a fixed one, whose value is
    piecewise constant); indicators get none."""
    nn.clear_parameters()
    rng = np.random.default_rng(2)
    x, w, b = nn.Variable((3, 4), need_grad=True), nn.Variable((4, 2), need_grad=True), \
        nn.Variable((2,), need_grad=True)
    i = nn.Variable((4, 2), need_grad=True)
    x.name, w.name, i.name, b.name = "x", "w", "i", "b"
    weights = rng.normal(size=(3, 2))
    cotangent = _leaf(weights)
    cotangent.name = "cotangent"
    loss = F.sum(F.tanh(F.inq_affine(x, w, i, b, inq_iterations=())) * cotangent)
    module = nn.compile(loss, name="inq_gradient", output_dir=tmp_path, dtype="float64").module
    assert module.GRADIENTS == ("x", "w", "i", "b")
    values = {"x": rng.normal(size=(3, 4)), "w": rng.normal(size=(4, 2)),
              "b": rng.normal(size=2), "i": np.array([[1.0, 0], [0, 1], [0, 0], [1, 0]]),
              "cotangent": weights}

    def run(function, **changed):
        state = {**values, **changed}
        args = {n: np.array(state[n]) if n in state else np.zeros(module.INPUTS[n]["shape"])
                for n in (*module.INPUTS, *module.PARAMETERS)}
        assert {n for n in args if n not in state} == {
            "inq_affine_count", "inq_affine_old_weight", "inq_affine_old_indicators"}
        return function(*(args[n] for n in (*module.INPUTS, *module.PARAMETERS)))

    _, g_x, g_w, g_i, g_b = run(module.gradient)
    assert not g_i.any()  # (indicators: none, as nnabla's backward)
    h = 1e-6
    for name, g in (("x", g_x), ("b", g_b), ("w", g_w)):
        for index in np.ndindex(values[name].shape):
            if name == "w" and values["i"][index] == 1:
                continue
            up, down = values[name].copy(), values[name].copy()
            up[index] += h
            down[index] -= h
            difference = (run(module.forward, **{name: up}) - run(module.forward, **{name: down}))
            assert g[index] == pytest.approx(difference / (2 * h), rel=1e-5, abs=1e-7)
    used = reference_quantized(values["w"], values["i"], 4).astype(np.float64)
    h_pre = values["x"] @ used + values["b"]
    dy = weights * (1 - np.tanh(h_pre) ** 2)
    np.testing.assert_allclose(g_w, values["x"].T @ dy, rtol=1e-10)
    nn.clear_parameters()


# --- the generated module on its own ------------------------------------------------------------

_ALONE = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import inq_alone as m
assert not any(k.startswith(("symcompile", "sympy", "jinja2")) for k in sys.modules)
state = {k: np.zeros(v["shape"], np.float32) for k, v in {**m.INPUTS, **m.PARAMETERS}.items()}
state["x"][...] = np.arange(12, dtype=np.float32).reshape(2, 6) / 10
state["w"][...] = np.linspace(-1.3, 0.9, 18, dtype=np.float32).reshape(6, 3)
rows = []
for step in range(3):
    loss = m.forward(*(state[k] for k in (*m.INPUTS, *m.PARAMETERS)))
    rows.append({"loss": float(loss), "w": state["w"].tolist(), "i": state["i"].tolist()})
    state["w"] += 0.01
print(json.dumps(rows))
"""


def test_the_generated_module_runs_alone(tmp_path):
    nn.clear_parameters()
    x, w, i = nn.Variable((2, 6)), nn.Variable((6, 3), need_grad=True), nn.Variable((6, 3))
    x.name, w.name, i.name = "x", "w", "i"
    nn.compile(F.sum(F.inq_affine(x, w, i, inq_iterations=(0, 2))), name="inq_alone",
               output_dir=tmp_path)
    done = subprocess.run([sys.executable, "-c", _ALONE, str(tmp_path)], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(done.stdout)
    ref = Reference((6, 3), (0, 2))
    current = np.linspace(-1.3, 0.9, 18, dtype=f32).reshape(6, 3)
    fixed = np.zeros((6, 3), f32)
    xv = np.arange(12, dtype=f32).reshape(2, 6) / 10
    for row in rows:
        used, fixed = ref.forward(current, fixed)
        np.testing.assert_array_equal(row["w"], used)
        np.testing.assert_array_equal(row["i"], fixed)
        assert row["loss"] == pytest.approx(float((xv @ used).sum()), rel=1e-5)
        current = used + f32(0.01)
    nn.clear_parameters()


# --- nnabla's numbers -------------------------------------------------------------------------

# Run as written by symcompile here and by nnabla 1.39 (test_nnablas_numbers): rows of
# weights, indicators and outputs after each forward pass and each update.
SCENARIOS = {
    "affine, momentum": """
rng = np.random.RandomState(0)
x = nn.Variable.from_numpy_array(rng.randn(4, 6).astype(np.float32))
w = nn.Variable.from_numpy_array(rng.randn(6, 3).astype(np.float32), need_grad=True)
i = nn.Variable.from_numpy_array((rng.rand(6, 3) < 0.2).astype(np.float32))
b = nn.Variable.from_numpy_array(rng.randn(3).astype(np.float32), need_grad=True)
y = F.inq_affine(x, w, i, b, num_bits=4, inq_iterations=(1, 3, 5))
loss = F.mean(F.tanh(y) ** 2)
solver = S.Momentum(0.5, 0.9)
solver.set_parameters({"w": w, "b": b})
for step in range(7):
    loss.forward()
    record(w=w.d, i=i.d, y=y.d)
    solver.zero_grad()
    loss.backward()
    solver.update()
    record(w=w.d, b=b.d)
""",
    "PF convolution, sgd": """
rng = np.random.RandomState(1)
x = nn.Variable.from_numpy_array(rng.randn(2, 2, 5, 5).astype(np.float32))
y = PF.inq_convolution(x, 3, (3, 3), pad=(1, 1), num_bits=3, inq_iterations=(0, 2, 4),
                       selection_algorithm="largest_abs",
                       w_init=(rng.randn(3, 2, 3, 3) * 0.4).astype(np.float32))
loss = F.sum(y ** 2) * 0.01
params = nn.get_parameters(grad_only=False)
solver = S.Sgd(0.1)
solver.set_parameters(nn.get_parameters())
for step in range(6):
    loss.forward()
    record(w=params["inq_conv/W"].d, i=params["inq_conv/I"].d, y=y.d)
    solver.zero_grad()
    loss.backward()
    solver.update()
    record(w=params["inq_conv/W"].d, b=params["inq_conv/b"].d)
""",
    # |w| from five values over 40 weights: ties straddle every cut (std::sort's introsort)
    "ties": """
rng = np.random.RandomState(3)
values = np.array([0.25, 0.5, 0.5, 1.0, 1.0], np.float32)
w = nn.Variable.from_numpy_array((rng.choice(values, (8, 5)) * rng.choice([-1, 1], (8, 5))
                                  ).astype(np.float32), need_grad=True)
i = nn.Variable.from_numpy_array(np.zeros((8, 5), np.float32))
y = F.inq_affine(nn.Variable.from_numpy_array(np.ones((1, 8), np.float32)), w, i,
                 inq_iterations=(0, 1, 2, 3, 9))
for step in range(4):
    y.forward()
    record(i=i.d)
""",
    # quirks: one learnable weight, not the largest, stays learnable at a listed pass (the
    # cut is at least one slot, taken only by the largest |w|); the largest |w| at 1.5 makes
    # n1 round down (a double compare), so a fixed 1.5 becomes 1; indicators truncated
    "quirks": """
w = nn.Variable.from_numpy_array(np.array([[1.5, 0.3], [-0.2, 0.9], [0.7, 0.05]],
                                          np.float32), need_grad=True)
i = nn.Variable.from_numpy_array(np.array([[1, 1], [1, 0], [2.7, 1]], np.float32))
y = F.inq_affine(nn.Variable.from_numpy_array(np.ones((1, 3), np.float32)), w, i,
                 num_bits=3, inq_iterations=(0, 1, 5))
y.forward()
record(w=w.d, i=i.d, y=y.d)
w.d = w.d + np.array([[0.0, 0.0], [0.0, 2.0], [0.0, 0.0]], np.float32)
y.forward()
record(w=w.d, i=i.d, y=y.d)
""",
    # fixed weights at and next to 1.5 * 2^k, where the rounding turns: nnabla decides with
    # log2f's float, which a mantissa's comparison with 1.5 does not always give
    "borders": """
base = np.array([1.5 * 2.0 ** k for k in range(-12, 3)], np.float32)
values = np.concatenate([base, np.nextafter(base, np.float32(0)),
                         np.nextafter(base, np.float32(9)), [7.9]]).astype(np.float32)
w = nn.Variable.from_numpy_array(values.reshape(1, -1), need_grad=True)
i = nn.Variable.from_numpy_array((values < 7).astype(np.float32).reshape(1, -1))
y = F.inq_affine(nn.Variable.from_numpy_array(np.ones((1, 1), np.float32)), w, i, num_bits=6)
y.forward()
record(w=w.d, values=values)
""",
}
# nnabla 1.39's choices in "borders" (1: rounded up to 2^(k+1)), recorded from it: 1.5 *
# 2^k itself, the float below it, the float above it, for k = -12..2
BORDERS_RECORDED = ("111100001111111", "111100000000000", "111111111111111")


def _run(text: str, backend: str = "numpy") -> list:
    rows = []

    def record(**arrays):
        rows.append({k: np.asarray(v, np.float64).tolist() for k, v in arrays.items()})

    nn.clear_parameters()
    with _backend(backend):
        exec(text, {"nn": nn, "F": F, "PF": PF, "S": S, "np": np, "record": record})  # noqa: S102
    nn.clear_parameters()
    return rows


# nnabla 1.39's indicators after each pass of "ties" (flattened), recorded from it
TIES_RECORDED = [
    "0001000101000011000010111101101011101111",
    "1011000111111011011111111101101011101111",
    "1011000111111111111111111111111111101111",
    "1011001111111111111111111111111111111111",
]


def test_ties_follow_nnabla_s_std_sort():
    rows = _run(SCENARIOS["ties"])
    got = ["".join(str(int(v)) for v in np.ravel(row["i"])) for row in rows]
    assert got == TIES_RECORDED
    # (a stable sort orders the ties otherwise: the replay is what makes these nnabla's)
    rng = np.random.RandomState(3)
    values = np.array([0.25, 0.5, 0.5, 1.0, 1.0], f32)
    magnitude = [float(v) for v in np.ravel(rng.choice(values, (8, 5)))]
    assert inq_sort_order(magnitude) != sorted(range(40), key=lambda j: -magnitude[j])


def test_quirks_as_nnabla():
    first, second = _run(SCENARIOS["quirks"])
    # pass 0: 0.9 is the only learnable weight and not the largest |w|: not fixed. The
    # largest, 1.5, makes n1 = 0 (log2 1.5 in float, compared in double): it rounds to 1;
    # n2 = -1, so 0.3 rounds up to 0.5 and -0.2 (below 2^-2) to 0; 2.7 reads as 2: kept
    assert first["i"] == [[1, 1], [1, 0], [2, 1]]
    assert first["w"] == [[1.0, 0.5], [0.0, pytest.approx(0.9)], [pytest.approx(0.7), 0.0]]
    # pass 1: 2.9 is the largest |w| and learnable: fixed, as 2 (n1 = 1); the range moved
    # up (n2 = 0), so the 0.5 fixed before is rounded again, to 1
    assert second["i"] == [[1, 1], [1, 1], [2, 1]]
    assert second["w"] == [[1.0, 1.0], [0.0, 2.0], [pytest.approx(0.7), 0.0]]
    assert second["y"] == [[pytest.approx(1.7), 3.0]]


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
def test_rounding_at_the_borders_is_nnabla_s(backend):
    (row,) = _run(SCENARIOS["borders"], backend)
    up = "".join("1" if q > 2.0 ** (math.frexp(v)[1] - 1) else "0"
                 for v, q in zip(row["values"][:45], row["w"][0][:45], strict=True))
    assert (up[:15], up[15:30], up[30:]) == BORDERS_RECORDED
    assert row["w"][0][45] == pytest.approx(7.9)  # (learnable: n1 = 3 from it)


_NNABLA_SCRIPT = """
import json, sys
import numpy as np
import nnabla as nn
import nnabla.functions as F
import nnabla.parametric_functions as PF
import nnabla.solvers as S
for text in json.loads(sys.argv[1]):
    rows = []
    def record(**arrays):
        rows.append({k: np.asarray(v, np.float64).tolist() for k, v in arrays.items()})
    nn.clear_parameters()
    exec(text, {"nn": nn, "F": F, "PF": PF, "S": S, "np": np, "record": record})
    print(json.dumps({"rows": rows}))
"""


@pytest.fixture(scope="module")
def nnabla_runs(tmp_path_factory):
    if not NNABLA:
        pytest.skip("SYMCOMPILE_NNABLA_PYTHON is not set")
    rows = nnabla_rows(NNABLA, _NNABLA_SCRIPT, list(SCENARIOS.values()),
                       tmp_path_factory.mktemp("inq"))
    return dict(zip(SCENARIOS, (r["rows"] for r in rows), strict=True))


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_nnablas_numbers(name, backend, nnabla_runs):
    """Indicators equal; weights and outputs to float32 rounding (the products' order of
    summation), over training runs across every listed pass."""
    ours, theirs = _run(SCENARIOS[name], backend), nnabla_runs[name]
    assert len(ours) == len(theirs)
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a.keys() == b.keys()
        for key in a:
            if key == "i":
                assert a[key] == b[key], (step, key)
            else:
                np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=2e-6,
                                           err_msg=f"{name}: row {step}, {key}")


def test_ties_recorded_are_nnabla_s(nnabla_runs):
    got = ["".join(str(int(v)) for v in np.ravel(row["i"])) for row in nnabla_runs["ties"]]
    assert got == TIES_RECORDED


# --- the layers' parameters, and refusals -------------------------------------------------------

def test_parametric_layers_make_nnabla_s_parameters():
    nn.clear_parameters()
    x = nn.Variable((2, 3, 4, 4))
    PF.inq_affine(x, 5, inq_iterations=(1,))
    PF.inq_convolution(x, 2, (3, 3), with_bias=False)
    params = nn.get_parameters(grad_only=False)
    shapes = {k: v.shape for k, v in params.items()}
    assert shapes == {"inq_affine/W": (48, 5), "inq_affine/I": (48, 5), "inq_affine/b": (5,),
                      "inq_conv/W": (2, 3, 3, 3), "inq_conv/I": (2, 3, 3, 3)}
    assert [k for k, v in params.items() if v.need_grad] == ["inq_affine/W", "inq_affine/b",
                                                             "inq_conv/W"]
    assert not params["inq_affine/I"].d.any() and not params["inq_affine/b"].d.any()
    limit = math.sqrt(6 / (48 + 5))
    assert 0 < np.abs(params["inq_affine/W"].d).max() <= limit
    nn.clear_parameters()


def test_refused():
    x, w, i = nn.Variable((2, 4)), nn.Variable((4, 3)), nn.Variable((4, 3))
    with pytest.raises(ValueError, match=r"F.inq_affine: selection_algorithm='top' is not "
                                         r"valid; valid values are 'largest_abs' and 'random'"):
        F.inq_affine(x, w, i, selection_algorithm="top")
    with pytest.raises(ValueError, match=r"indicator_fixedweights of shape \(3, 4\) must have "
                                         r"the weight's shape \(4, 3\)"):
        F.inq_affine(x, w, nn.Variable((3, 4)))
    with pytest.raises(ValueError, match=r"F.inq_affine: with INQ the forward pass updates "
                                         r"weight in place, so it must be a leaf"):
        F.inq_affine(x, w * 2, i)
    with pytest.raises(ValueError, match=r"F.inq_convolution: .*weight's axis 1 must be 2"):
        F.inq_convolution(nn.Variable((1, 2, 5, 5)), nn.Variable((3, 3, 3, 3)),
                          nn.Variable((3, 3, 3, 3)))
    with pytest.raises(TypeError, match=r"inq_iterations must be a tuple of ints"):
        F.inq_affine(x, w, i, inq_iterations=3)
    with pytest.raises(ValueError, match=r"lists a pass after 2\^24"):
        F.inq_affine(x, w, i, inq_iterations=(5, 2**25))


def test_the_fused_step_updates_the_weights_forward_wrote(tmp_path):
    """sgd_step: forward writes the weights it used into w (a fixed weight its power of
    two), then w -= lr * g, as nnabla's update() after forward(); the next step gives the
    fixed ones their values back."""
    nn.clear_parameters()
    x = nn.Variable((2, 4))
    x.name = "x"
    w = nn.parameter.get_parameter_or_create("w", (4, 3), need_grad=True)
    i = nn.parameter.get_parameter_or_create("i", (4, 3), need_grad=False)
    module = nn.compile(F.sum(F.inq_affine(x, w, i, inq_iterations=(0, 3)) ** 2),
                        name="inq_step", output_dir=tmp_path, solver="sgd").module
    rng = np.random.default_rng(4)
    state = {"x": rng.normal(size=(2, 4)).astype(f32), "w": rng.normal(size=(4, 3)).astype(f32),
             "i": np.zeros((4, 3), f32)}
    state.update({n: np.zeros(spec["shape"], f32) for n, spec in module.INPUTS.items()
                  if n not in state})
    ref, current, fixed = Reference((4, 3), (0, 3)), state["w"].copy(), state["i"].copy()
    for _ in range(2):
        module.sgd_step(*(state[n] for n in (*module.INPUTS, *module.PARAMETERS)), lr=0.125)
        used, fixed = ref.forward(current, fixed)
        g = 2 * state["x"].T @ (state["x"] @ used)
        np.testing.assert_allclose(state["w"], used - 0.125 * g, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(state["i"], fixed)
        current = state["w"].copy()
    nn.clear_parameters()
