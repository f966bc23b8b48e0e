"""F.vat_noise: virtual adversarial training's noise, whose backward writes into w.

- the forward (eps * x / sqrt(sum(x**2) + 1e-8) per sample, the sum over the axes from
  base_axis) against a NumPy reference, for several shapes, base_axis and eps, through
  the runtime and a compiled float64 module;
- after backward(), w.d holds eps * dy and x.g, w.g are left as they were (nnabla's), for
  each need_grad combination; nothing is written when neither has need_grad;
- the generated functions (gradient, backward, the fused step and backward-and-update)
  write w in place, on both backends (the array API one on array-api-strict arrays);
- nnabla's VAT power iteration (d = vat_noise(noise, buffer, xi), a KL loss between the
  clean and the perturbed predictions, backward, the buffer fed back as the next noise,
  then a training step on the adversarial loss) against a NumPy reference of the loop
  and against nnabla 1.39, where it is installed (SYMCOMPILE_NNABLA_PYTHON);
- bad input refused when the graph is built.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF
import symcompile.solvers as S

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
f32 = np.float32


def reference(x, base_axis, eps):
    """eps * x / sqrt(sum(x**2) + 1e-8), one sum per sample (the axes before base_axis)."""
    x = np.asarray(x, np.float64)
    base_axis %= x.ndim
    flat = x.reshape(int(np.prod(x.shape[:base_axis])), -1)
    return (eps * flat / np.sqrt((flat ** 2).sum(1, keepdims=True) + 1e-8)).reshape(x.shape)


# (shape, base_axis, eps); the last has a sample of zeros (the 1e-8 keeps it 0)
CONFIGS = [((2, 3), 1, 1.0), ((3, 6), 1, 10), ((2, 3, 4), 2, 1.4), ((2, 3, 4), -2, 0.5),
           ((2, 2, 3, 2), 1, 2.5), ((3, 5), 1, 1.0)]


def _values(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape)
    if shape == (3, 5):
        x[1] = 0
    return x, rng.normal(size=shape), rng.normal(size=shape)


@pytest.mark.parametrize("shape,base_axis,eps", CONFIGS, ids=str)
def test_forward_and_the_write_into_w(shape, base_axis, eps, tmp_path):
    x_value, w_value, dy = _values(shape, len(shape) + int(eps))
    x = nn.Variable.from_numpy_array(x_value.astype(f32), need_grad=True)
    w = nn.Variable.from_numpy_array(w_value.astype(f32), need_grad=True)
    x.g, w.g = 5.0, -2.0
    y = F.vat_noise(x, w, base_axis, eps)
    y.forward()
    np.testing.assert_allclose(y.d, reference(x_value.astype(f32), base_axis, eps),
                               rtol=1e-6, atol=1e-7)
    y.backward(dy.astype(f32))
    np.testing.assert_array_equal(w.d, f32(eps) * dy.astype(f32))
    assert (x.g == 5).all() and (w.g == -2).all()  # (untouched, as nnabla leaves them)
    module = nn.compile(y, name="vat", output_dir=tmp_path, dtype="float64").module
    np.testing.assert_allclose(module.forward(x_value, w_value.copy()),
                               reference(x_value, base_axis, eps), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("x_grad,w_grad", [(True, False), (False, True), (False, False)])
def test_w_is_written_when_x_or_w_has_need_grad(x_grad, w_grad):
    rng = np.random.default_rng(1)
    x = nn.Variable.from_numpy_array(rng.normal(size=(2, 4)).astype(f32), need_grad=x_grad)
    start = rng.normal(size=(2, 4)).astype(f32)
    w = nn.Variable.from_numpy_array(start.copy(), need_grad=w_grad)
    c = rng.normal(size=(2, 4)).astype(f32)
    loss = F.sum(F.vat_noise(x, w, eps=2.0) * nn.Variable.from_numpy_array(c))
    loss.forward()
    loss.backward()
    np.testing.assert_array_equal(w.d, 2 * c if x_grad or w_grad else start)
    for v in (x, w):
        assert not v.g.any()  # (fresh, never written)


def test_a_float64_w_becomes_float32_and_auto_forward_writes_it_too():
    """nnabla's backward casts w's array to float32 as it writes it; under auto_forward the
    backward of the recorded graph writes w as well (the values are nnabla 1.39's)."""
    x = nn.Variable.from_numpy_array(np.arange(6.0).reshape(2, 3), need_grad=True)
    w = nn.Variable.from_numpy_array(np.zeros((2, 3)), need_grad=True)
    loss = F.sum(F.vat_noise(x, w, eps=2.0) ** 2)
    loss.forward()
    loss.backward()
    assert w.d.dtype == np.float32
    np.testing.assert_allclose(w.d.ravel(), [0, 3.5777099, 7.1554198, 3.39411, 4.5254798,
                                             5.6568499], rtol=1e-6)
    with nn.auto_forward():
        w = nn.Variable.from_numpy_array(np.zeros((2, 3), f32), need_grad=True)
        y = F.vat_noise(nn.Variable.from_numpy_array(np.ones((2, 3), f32)), w, eps=3.0)
        loss = F.sum(y * 2.0)
    np.testing.assert_allclose(y.d, np.full((2, 3), np.sqrt(3)), rtol=1e-6)
    loss.backward()
    np.testing.assert_array_equal(w.d, np.full((2, 3), 6.0))


def _graph():
    """loss = sum(affine(x + vat_noise(noise, w, 1.5), W)**2): the cotangent of the noise
    is 2 * (x + d) @ W @ W.T, so w gets 1.5 times that."""
    nn.clear_parameters()
    x = nn.Variable((3, 4))
    x.name = "x"
    noise = nn.Variable((3, 4), need_grad=True)
    noise.name = "noise"
    w = nn.Variable((3, 4), need_grad=True)
    w.name = "w"
    W = nn.parameter.get_parameter_or_create("W", (4, 2), need_grad=True)
    return F.sum(F.affine(x + F.vat_noise(noise, w, eps=1.5), W) ** 2)


def _expected(x, noise, W):
    h = x + reference(noise, 1, 1.5)
    return 1.5 * (2 * (h @ W) @ W.T)


def test_the_generated_functions_write_w_in_place(tmp_path):
    module = nn.compile(_graph(), name="vat_module", output_dir=tmp_path, dtype="float64",
                        solver="momentum").module
    assert module.BACKWARD_WRITES == ("w",) and module.RUNNING == ()
    rng = np.random.default_rng(2)
    x, noise, W = rng.normal(size=(3, 4)), rng.normal(size=(3, 4)), rng.normal(size=(4, 2))
    expected = _expected(x, noise, W)
    w = np.zeros((3, 4))
    _, g_noise, g_w, g_W = module.gradient(x, noise, w, W)
    np.testing.assert_allclose(w, expected, rtol=1e-12)
    assert not g_noise.any() and not g_w.any()
    np.testing.assert_allclose(g_W, 2 * (x + reference(noise, 1, 1.5)).T
                               @ ((x + reference(noise, 1, 1.5)) @ W), rtol=1e-12)
    w = np.zeros((3, 4))
    loss, saved = module.forward_saving(x, noise, w, W)
    assert not w.any()  # (the forward writes nothing)
    module.backward(saved, x, noise, w, W, np.float64(1))
    np.testing.assert_allclose(w, expected, rtol=1e-12)
    states = module.init_state()
    for step in (module.momentum_step, module.momentum_backward_update):
        w, W_trained = np.zeros((3, 4)), W.copy()
        if step is module.momentum_step:
            step(x, noise, w, W_trained, *states.values())
        else:
            step(saved, x, noise, w, W_trained, np.float64(1), *states.values())
        np.testing.assert_allclose(w, expected, rtol=1e-12)  # (from the W before the update)
        assert not np.allclose(W_trained, W)
    with pytest.raises(ValueError, match="read-only, but gradient\\(\\) updates it in place"):
        frozen = np.zeros((3, 4))
        frozen.flags.writeable = False
        module.gradient(x, noise, frozen, W)


def test_the_array_api_module_writes_w_in_place(tmp_path):
    xps = pytest.importorskip("array_api_strict")
    module = nn.compile(_graph(), name="vat_strict", output_dir=tmp_path, dtype="float64",
                        backend="array_api").module
    rng = np.random.default_rng(3)
    x, noise, W = rng.normal(size=(3, 4)), rng.normal(size=(3, 4)), rng.normal(size=(4, 2))
    expected = _expected(x, noise, W)
    w = xps.zeros((3, 4), dtype=xps.float64)
    module.gradient(xps.asarray(x), xps.asarray(noise), w, xps.asarray(W.copy()))
    np.testing.assert_allclose(np.from_dlpack(w), expected, rtol=1e-12)
    w = xps.zeros((3, 4), dtype=xps.float64)
    *_, updated = module.sgd_step(xps.asarray(x), xps.asarray(noise), w,
                                  xps.asarray(W.copy()))
    np.testing.assert_allclose(np.from_dlpack(w), expected, rtol=1e-12)
    assert updated["w"] is w


# --- nnabla's VAT loop --------------------------------------------------------------------

VAT_LOOP = '''
def vat_loop(nn, F, PF, S, np, arrays):
    """nnabla's VAT: power iterations through F.vat_noise's buffer, then a training step
    on the loss at the adversarial perturbation; what each step leaves."""
    nn.clear_parameters()
    x = nn.Variable.from_numpy_array(np.array(arrays["x"], np.float32))

    def net(inp):
        with nn.parameter_scope("net"):
            return PF.affine(F.tanh(PF.affine(inp, 5, name="fc1")), 3, name="fc2")

    y1 = net(x)
    for name, p in nn.get_parameters().items():
        p.d = np.array(arrays[name], np.float32)
    y1.forward()
    p_clean = F.softmax(nn.Variable.from_numpy_array(y1.d.copy()))
    noise = nn.Variable.from_numpy_array(np.array(arrays["noise"], np.float32),
                                         need_grad=True)
    buf = nn.Variable.from_numpy_array(np.zeros(x.shape, np.float32), need_grad=True)
    noise.g = 3.0
    buf.g = -1.0
    d = F.vat_noise(noise, buf, eps=arrays["xi"])
    loss_k = F.mean(F.kl_multinomial(p_clean, F.softmax(net(x + d))))
    rows = []
    for _ in range(3):
        loss_k.forward()
        loss_k.backward()
        rows.append({"loss": float(loss_k.d), "buf": buf.d.tolist(),
                     "noise_g": noise.g.tolist(), "buf_g": buf.g.tolist()})
        noise.d = buf.d.copy()
    adv = F.vat_noise(noise, buf, base_axis=1, eps=arrays["eps"])
    loss_u = F.mean(F.kl_multinomial(p_clean, F.softmax(net(x + adv))))
    solver = S.Sgd(0.5)
    solver.set_parameters(nn.get_parameters())
    solver.zero_grad()
    loss_u.forward()
    loss_u.backward()
    solver.update()
    rows.append({"loss": float(loss_u.d), "buf": buf.d.tolist(),
                 "params": {k: p.d.tolist() for k, p in nn.get_parameters().items()}})
    return rows
'''
NAMES = ("net/fc1/affine/W", "net/fc1/affine/b", "net/fc2/affine/W", "net/fc2/affine/b")


def _arrays():
    rng = np.random.RandomState(0)
    shapes = ((6, 5), (5,), (5, 3), (3,))
    return {"x": rng.randn(4, 6).tolist(), "noise": rng.randn(4, 6).tolist(),
            **{n: rng.randn(*s).tolist() for n, s in zip(NAMES, shapes, strict=True)},
            "xi": 10.0, "eps": 1.5}


def _symcompile_rows(arrays):
    namespace: dict = {}
    exec(VAT_LOOP, namespace)  # noqa: S102 - the loop above, run as nnabla runs it
    return namespace["vat_loop"](nn, F, PF, S, np, arrays)


def _reference_rows(a):
    """The same loop in float64 NumPy: d loss / d (x + d) of the mean KL through the MLP."""
    p = {n: np.array(a[n]) for n in NAMES}
    W1, b1, W2, b2 = (p[n] for n in NAMES)
    x = np.array(a["x"])

    def softmax(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def run(inp):
        h = np.tanh(inp @ W1 + b1)
        return h, h @ W2 + b2

    p_clean = softmax(run(x)[1])

    def loss_and_grads(inp):
        h, y = run(inp)
        q = softmax(y)
        loss = np.mean(np.sum(p_clean * (np.log(p_clean) - np.log(q)), 1))
        g_y = (q - p_clean) / len(x)
        g_h = (g_y @ W2.T) * (1 - h ** 2)
        grads = {NAMES[0]: inp.T @ g_h, NAMES[1]: g_h.sum(0), NAMES[2]: h.T @ g_y,
                 NAMES[3]: g_y.sum(0)}
        return loss, g_h @ W1.T, grads

    noise, rows = np.array(a["noise"]), []
    for _ in range(3):
        loss, g_in, _ = loss_and_grads(x + reference(noise, 1, a["xi"]))
        buf = a["xi"] * g_in
        rows.append({"loss": loss, "buf": buf})
        noise = buf
    loss, g_in, grads = loss_and_grads(x + reference(noise, 1, a["eps"]))
    rows.append({"loss": loss, "buf": a["eps"] * g_in,
                 "params": {n: p[n] - 0.5 * grads[n] for n in NAMES}})
    return rows


# Each power iteration normalises the last one's gradient, which float32 rounding moves
# (a sample whose gradient is small moves most): after two, nnabla's buffer is 2e-4 off
# float64's and symcompile's 3e-4, and 5e-4 off each other; the first agree to 2e-6.
TOLERANCES = (2e-5, 1e-4, 1e-3, 1e-3)


def _compare(got, expected):
    assert len(got) == len(expected) == 4
    for k, (row, want) in enumerate(zip(got, expected, strict=True)):
        rtol = TOLERANCES[k]
        np.testing.assert_allclose(row["loss"], want["loss"], rtol=rtol, err_msg=f"loss {k}")
        np.testing.assert_allclose(row["buf"], want["buf"], rtol=rtol, atol=rtol * 1e-2,
                                   err_msg=f"buffer {k}")
        if k < 3:  # (noise.g and buf.g left as set: vat_noise writes no gradient)
            for name, value in (("noise_g", 3.0), ("buf_g", -1.0)):
                np.testing.assert_array_equal(row[name], np.full((4, 6), value))
    for name in NAMES:
        np.testing.assert_allclose(got[3]["params"][name], expected[3]["params"][name],
                                   rtol=1e-3, atol=1e-5, err_msg=name)


def test_vat_power_iteration_against_a_numpy_reference():
    arrays = _arrays()
    _compare(_symcompile_rows(arrays), _reference_rows(arrays))


NNABLA_SCRIPT = """
import json, sys
import numpy as np
import nnabla as nn
import nnabla.functions as F
import nnabla.parametric_functions as PF
import nnabla.solvers as S
""" + VAT_LOOP + """
print(json.dumps({"rows": vat_loop(nn, F, PF, S, np, json.loads(sys.argv[1]))}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_vat_power_iteration_against_nnabla(tmp_path):
    arrays = _arrays()
    (row,) = nnabla_rows(NNABLA, NNABLA_SCRIPT, arrays, tmp_path)
    _compare(_symcompile_rows(arrays), row["rows"])


CALLS_SCRIPT = """
import json, sys
import numpy as np
import nnabla as nn
import nnabla.functions as F

for shape, base_axis, eps, x, w, dy in json.loads(sys.argv[1]):
    xv = nn.Variable.from_numpy_array(np.array(x, np.float32), need_grad=True)
    wv = nn.Variable.from_numpy_array(np.array(w, np.float32), need_grad=True)
    xv.g, wv.g = 5.0, -2.0
    y = F.vat_noise(xv, wv, base_axis, eps)
    y.forward()
    y.backward(np.array(dy, np.float32))
    print(json.dumps({"y": y.d.tolist(), "w": wv.d.tolist(), "x_g": xv.g.tolist(),
                      "w_g": wv.g.tolist()}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_against_nnabla(tmp_path):
    calls = []
    for shape, base_axis, eps in CONFIGS:
        x, w, dy = _values(shape, 7)
        calls.append((shape, base_axis, eps, x.tolist(), w.tolist(), dy.tolist()))
    rows = nnabla_rows(NNABLA, CALLS_SCRIPT, calls, tmp_path)
    assert len(rows) == len(calls)
    for (_, base_axis, eps, x, w, dy), row in zip(calls, rows, strict=True):
        xv = nn.Variable.from_numpy_array(np.array(x, f32), need_grad=True)
        wv = nn.Variable.from_numpy_array(np.array(w, f32), need_grad=True)
        xv.g, wv.g = 5.0, -2.0
        y = F.vat_noise(xv, wv, base_axis, eps)
        y.forward()
        y.backward(np.array(dy, f32))
        np.testing.assert_allclose(y.d, row["y"], rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(wv.d, row["w"])
        np.testing.assert_array_equal(xv.g, row["x_g"])
        np.testing.assert_array_equal(wv.g, row["w_g"])


@pytest.mark.parametrize("call,error,message", [
    (lambda: F.vat_noise(nn.Variable((2, 3)), nn.Variable((2, 4))), ValueError,
     r"F.vat_noise: x of shape \(2, 3\) and w of shape \(2, 4\) must have the same shape"),
    (lambda: F.vat_noise(nn.Variable((2, 3)), nn.Variable((2, 3)), base_axis=0), ValueError,
     r"base_axis=0 leaves no sample axis"),
    (lambda: F.vat_noise(nn.Variable((2, 3)), nn.Variable((2, 3)), base_axis=-2), ValueError,
     r"base_axis=-2 leaves no sample axis"),
    (lambda: F.vat_noise(nn.Variable((2, 3)), nn.Variable((2, 3)), base_axis=2), ValueError,
     r"base_axis 2 is out of range"),
    (lambda: F.vat_noise(nn.Variable((2, 3)), F.exp(nn.Variable((2, 3)))), ValueError,
     r"w must be a leaf Variable"),
    (lambda: F.vat_noise(nn.Variable((2, 3)), np.zeros((2, 3))), TypeError,
     r"F.vat_noise: input 1 must be a Variable"),
    (lambda: F.vat_noise(nn.Variable((2, 3)), nn.Variable((2, 3)), eps="1"), TypeError,
     r"F.vat_noise: eps must be a real number"),
])
def test_bad_input_is_refused_when_the_graph_is_built(call, error, message):
    with pytest.raises(error, match=message):
        call()
