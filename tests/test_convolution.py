"""F.convolution and PF.convolution, computed by kernels in both backends.

- forward against direct loops over every output element (`reference`), for padding,
  strides, dilations, groups, base_axis, 1-D, 2-D and 3-D inputs, with and without bias;
  gradients against central finite differences in float64 (gradcheck.check_function);
- the array API backend: the NumPy module's numbers on array-api-strict arrays, and JAX's
  immutable arrays where JAX is installed;
- nnabla 1.39's numbers for one case (recorded as constants below) and, with
  SYMCOMPILE_NNABLA_PYTHON set, against nnabla itself for every configuration;
- the kernels a module carries (only those it calls), their reserved names, the
  comments that name what each gradient kernel differentiates;
- bad input, refused when the graph is built, naming F.convolution and the shapes;
- PF.convolution's parameters, and a small CNN that trains with the generated sgd_step.
"""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
from gradcheck import check_function
from test_array_api_backend import DEVICE, DEVICE_64, compare_runs, compile_both, on_device, run_all

import symcompile as nn
import symcompile.functions as F
import symcompile.initializer as I
import symcompile.parametric_functions as PF
from symcompile.backends import registry
from symcompile.ir import primitives
from symcompile.ir.naming import RESERVED

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")


def reference(x, w, b=None, base_axis=1, pad=None, stride=None, dilation=None, group=1):
    """nnabla's convolution by its definition, one output element at a time (float64)."""
    batch, x = x.shape[:base_axis], x.reshape((-1,) + x.shape[base_axis:])
    rank = x.ndim - 2
    pad, stride, dilation = pad or (0,) * rank, stride or (1,) * rank, dilation or (1,) * rank
    padded = np.zeros(x.shape[:2] + tuple(n + 2 * p for n, p in zip(x.shape[2:], pad,
                                                                    strict=True)))
    padded[(slice(None), slice(None)) + tuple(slice(p, p + n) for n, p in
                                              zip(x.shape[2:], pad, strict=True))] = x
    kernel, per_group = w.shape[2:], w.shape[0] // group
    out = tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, p, s, d in
                zip(x.shape[2:], kernel, pad, stride, dilation, strict=True))
    y = np.zeros((x.shape[0], w.shape[0]) + out)
    for n, o in np.ndindex(x.shape[0], w.shape[0]):
        first = (o // per_group) * w.shape[1]  # the group's first input channel
        for m in np.ndindex(*out):
            total = 0.0
            for c in range(w.shape[1]):
                for k in np.ndindex(*kernel):
                    at = tuple(mi * s + ki * d for mi, ki, s, d in
                               zip(m, k, stride, dilation, strict=True))
                    total += w[(o, c) + k] * padded[(n, first + c) + at]
            y[(n, o) + m] = total + (0.0 if b is None else b[o])
    return y.reshape(batch + y.shape[1:])


# (name, x shape, weight shape, bias, F.convolution's keyword arguments)
CONFIGS = [
    ("2-D pad stride", (2, 3, 5, 5), (4, 3, 3, 3), True, {"pad": (1, 1), "stride": (2, 2)}),
    ("2-D no bias", (2, 2, 4, 5), (3, 2, 2, 3), False, {}),
    ("2-D dilation group", (2, 4, 6, 5), (6, 2, 2, 3), True,
     {"pad": (0, 1), "stride": (1, 2), "dilation": (2, 1), "group": 2}),
    ("2-D depthwise", (1, 3, 4, 4), (3, 1, 3, 3), True, {"pad": (1, 1), "group": 3}),
    ("1-D", (2, 3, 7), (2, 3, 3), True, {"pad": (2,), "stride": (3,), "dilation": (2,)}),
    ("3-D", (1, 2, 4, 3, 5), (2, 2, 2, 2, 2), True,
     {"pad": (1, 0, 1), "stride": (1, 2, 1), "dilation": (1, 1, 2)}),
    ("base_axis=2", (2, 2, 2, 4, 4), (3, 2, 3, 3), True, {"base_axis": 2, "pad": (1, 1)}),
    ("base_axis=0", (2, 4, 4), (3, 2, 2, 2), False, {"base_axis": 0, "stride": (2, 1)}),
]
IDS = [c[0] for c in CONFIGS]


def _arrays(x_shape, w_shape, bias, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [x_shape, w_shape] + ([(w_shape[0],)] if bias else [])
    return [rng.normal(size=s) for s in shapes]


@pytest.mark.parametrize("name,x_shape,w_shape,bias,kwargs", CONFIGS, ids=IDS)
def test_forward_and_gradients(name, x_shape, w_shape, bias, kwargs, tmp_path, rng):
    """The output against the direct loops, d/dx, d/dw and d/db against finite
    differences, the derivative formulas rendered in every style."""
    check_function(lambda *v: F.convolution(*v, **kwargs),
                   lambda *a: reference(*a, **kwargs), _arrays(x_shape, w_shape, bias),
                   tmp_path, rng)


@pytest.mark.parametrize("name,x_shape,w_shape,bias,kwargs", CONFIGS, ids=IDS)
def test_array_api_backend_gives_the_numpy_numbers(name, x_shape, w_shape, bias, kwargs,
                                                   tmp_path):
    """forward, gradient, forward_saving and backward of sum(y * weights) on
    array-api-strict float32 arrays: the NumPy module's numbers."""
    loss, values = _weighted_loss(x_shape, w_shape, bias, kwargs)
    compare_runs(run_all(compile_both(loss, tmp_path, "conv"), values, on_device(DEVICE)),
                 device=DEVICE)


def _weighted_loss(x_shape, w_shape, bias, kwargs):
    arrays = _arrays(x_shape, w_shape, bias)
    variables = []
    for name, array in zip(("x", "w", "b"), arrays, strict=False):
        variables.append(nn.Variable(array.shape, need_grad=True))
        variables[-1].name = name
    y = F.convolution(*variables, **kwargs)
    weights = nn.Variable(y.shape)
    weights.name = "weights"
    values = dict(zip(("x", "w", "b"), arrays, strict=False))
    values["weights"] = np.random.default_rng(1).normal(size=y.shape)
    return F.sum(y * weights), values


def test_jax_arrays(tmp_path):
    """The array API kernels assign no items: they run on JAX's immutable arrays."""
    jnp = pytest.importorskip("jax.numpy")
    loss, values = _weighted_loss((2, 4, 5, 6), (4, 2, 2, 3), True,
                                  {"pad": (1, 0), "stride": (2, 1), "group": 2})
    modules = compile_both(loss, tmp_path, "conv_jax")
    results = run_all(modules, values, lambda args: [jnp.asarray(a) for a in args])
    compare_runs(results, library=type(jnp.zeros(())))


# --- nnabla's numbers -----------------------------------------------------------------------
# Produced with nnabla 1.39 (CPU, float32): x, w, b, dy = RandomState(0).randn of the shapes
# below, in that order, cast to float32; y = F.convolution(x, w, b, pad=(1, 0),
# stride=(2, 1), dilation=(1, 2), group=2); y.forward(); y.backward(dy). They print
# with np.set_printoptions(precision=7).
NNABLA_KWARGS = {"pad": (1, 0), "stride": (2, 1), "dilation": (1, 2), "group": 2}
NNABLA_SHAPES = ((1, 4, 5, 6), (4, 2, 2, 3), (4,), (1, 4, 3, 2))
NNABLA_Y = [[[3.1276371, 2.0720196], [-0.7553146, 0.5881699], [5.4180489, -2.3319399]],
            [[1.3847047, 2.0185683], [0.8849026, 4.0268846], [1.4146818, 1.2495588]],
            [[1.2340920, 1.4010916], [-3.0872197, 2.8181167], [2.6890838, 3.9446416]],
            [[0.2612150, -0.4755131], [-5.3011909, 3.8122528], [-1.6908337, 1.0184199]]]
NNABLA_DX_01 = [  # dx[0, 1]
    [0.1489685, -0.2575879, -0.7356128, 0.5041484, 0.1727677, -0.3399652],
    [0.3098705, -0.8410882, -1.5256507, 2.7633543, -0.1674199, 2.5086389],
    [-0.5769565, -0.3264185, 0.7372788, -0.7539385, -0.7825119, -0.5055881],
    [0.0947293, -0.5804225, -0.7822018, 1.1551572, 0.4196727, 2.8520863],
    [-0.6101593, -1.2579101, 0.5112839, 0.1603131, -0.8419559, -1.7837702]]
NNABLA_DW_1 = [  # dw[:, 1]
    [[0.9904322, 0.6471800, 1.3410726], [2.7081914, 0.4953724, 2.1854873]],
    [[-0.5769871, 0.2688614, 5.2774220], [-3.0764012, 0.4372084, 0.7504700]],
    [[0.9438833, -0.1023270, 1.4341626], [0.6795721, -0.9771803, 0.4774714]],
    [[-1.3342223, 0.3472748, 0.7220092], [-0.5126309, -1.7104386, 0.7804376]]]
NNABLA_DB = [-1.6398028, -5.0340204, -1.2255930, -1.8814520]


def _observed(x_a, w_a, b_a, dy_a, kwargs):
    """sum(y * dy) over y = F.convolution(x, w, b, **kwargs) with x, w and b inputs that
    take gradients (b None: no bias), y an output too; and the arrays by graph name."""
    arrays = {"x": x_a, "w": w_a, "dy": dy_a} | ({} if b_a is None else {"b": b_a})
    variables = {}
    for name, array in arrays.items():
        variables[name] = nn.Variable(array.shape, need_grad=name != "dy")
        variables[name].name = name
    y = F.convolution(variables["x"], variables["w"], variables.get("b"), **kwargs)
    y.persistent = True
    return F.sum(y * variables["dy"]), arrays


def _run_observed(module, arrays, convert=lambda a: a):
    """y and the gradients by name, from module.gradient."""
    args = [convert(arrays[spec["name"]]) for spec in module.INPUTS.values()]
    loss, y, *grads = (np.asarray(a) for a in module.gradient(*args))
    names = [module.INPUTS[g]["name"] for g in module.GRADIENTS]
    return y, dict(zip(names, grads, strict=True))


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
def test_recorded_nnabla_numbers(backend, tmp_path):
    import array_api_strict as xps

    rs = np.random.RandomState(0)
    x_a, w_a, b_a, dy_a = (rs.randn(*s).astype(np.float32) for s in NNABLA_SHAPES)
    loss, arrays = _observed(x_a, w_a, b_a, dy_a, NNABLA_KWARGS)
    module = nn.compile(loss, name=f"conv_{backend}", output_dir=tmp_path,
                        backend=backend).module
    y, grads = _run_observed(module, arrays, xps.asarray if backend == "array_api" else
                             (lambda a: a))
    np.testing.assert_allclose(y[0], NNABLA_Y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grads["x"][0, 1], NNABLA_DX_01, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grads["w"][:, 1], NNABLA_DW_1, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grads["b"], NNABLA_DB, rtol=1e-5, atol=1e-5)


NNABLA_SCRIPT = """
import json, sys
import numpy as np
import nnabla as nn
import nnabla.functions as F

for x_shape, w_shape, bias, kwargs, seed in json.loads(sys.argv[1]):
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    rng = np.random.default_rng(seed)
    arrays = [rng.normal(size=s).astype(np.float32)
              for s in [x_shape, w_shape] + ([[w_shape[0]]] if bias else [])]
    inputs = [nn.Variable.from_numpy_array(a, need_grad=True) for a in arrays]
    y = F.convolution(*inputs, **kwargs)
    y.forward()
    dy = rng.normal(size=y.shape).astype(np.float32)
    for v in inputs:
        v.grad.zero()
    y.backward(dy)
    print(json.dumps([y.d.tolist(), dy.tolist()] + [v.g.tolist() for v in inputs]))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_every_configuration_against_nnabla(tmp_path):
    """Each configuration's y, dx, dw (and db) from nnabla itself, in a subprocess, on
    float32 arrays it draws from default_rng(the configuration's index)."""
    configs = [[list(c[1]), list(c[2]), c[3], c[4], i] for i, c in enumerate(CONFIGS)]
    done = subprocess.run([NNABLA, "-c", NNABLA_SCRIPT, json.dumps(configs)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("[")]
    assert len(rows) == len(CONFIGS)
    for index, ((name, x_shape, w_shape, bias, kwargs), row) in enumerate(zip(CONFIGS, rows,
                                                                              strict=True)):
        nn.clear_parameters()
        rng = np.random.default_rng(index)  # as NNABLA_SCRIPT draws
        x_a, w_a = (rng.normal(size=s).astype(np.float32) for s in (x_shape, w_shape))
        b_a = rng.normal(size=(w_shape[0],)).astype(np.float32) if bias else None
        y_nnabla, dy_a, *grads_nnabla = (np.asarray(a, dtype=np.float32) for a in row)
        loss, arrays = _observed(x_a, w_a, b_a, dy_a, kwargs)
        module = nn.compile(loss, name="conv", output_dir=tmp_path).module
        y, grads = _run_observed(module, arrays)
        np.testing.assert_allclose(y, y_nnabla, rtol=1e-5, atol=1e-5, err_msg=name)
        for which, theirs in zip("xwb", grads_nnabla, strict=False):
            np.testing.assert_allclose(grads[which], theirs, rtol=1e-5, atol=1e-5,
                                       err_msg=f"{name}: d/d{which}")


# --- the generated code ------------------------------------------------------------------

def _two_layers(x_needs_grad: bool):
    x = nn.Variable((2, 3, 6, 6), need_grad=x_needs_grad)
    x.name = "x"
    with nn.parameter_scope("c1"):
        h = F.relu(PF.convolution(x, 4, (3, 3), pad=(1, 1)))
    with nn.parameter_scope("c2"):
        y = F.tanh(PF.convolution(h, 2, (3, 3), stride=(2, 2), group=2))
    return F.mean(y * y)


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
@pytest.mark.parametrize("path", ["im2col", "fused"])
def test_a_module_carries_only_the_kernels_it_calls(backend, path, tmp_path, monkeypatch):
    """The x-gradient kernel is left out when no input of a convolution needs its
    gradient; a graph without convolution carries none of the kernels; each kernel's
    helpers come with it. Both ways of computing a convolution: through its im2col
    matrix (up to IM2COL_LIMIT elements; its x-gradient the fused conv_grad_x of dy and
    the weights), and the fused kernels (above)."""
    if path == "fused":
        monkeypatch.setattr(primitives, "IM2COL_LIMIT", 0)
    forward, grad_x, grad_w = (("conv_forward", "conv_grad_x", "conv_grad_w") if path == "fused"
                               else ("conv_matmul", "conv_grad_x", "conv_matmul_grad_w"))
    source = nn.compile(_two_layers(True), name="both", output_dir=tmp_path,
                        backend=backend).source
    for kernel in (forward, grad_x, grad_w, "conv_padded"):
        assert source.count(f"\ndef {kernel}(") == 1, kernel
    nn.clear_parameters()
    x = nn.Variable((2, 3, 5), need_grad=False)
    first = nn.compile(F.mean(PF.convolution(x, 2, (3,))), name="first", output_dir=tmp_path,
                       backend=backend).source
    assert f"\ndef {forward}(" in first and f"\ndef {grad_w}(" in first
    assert f"def {grad_x}(" not in first
    nn.clear_parameters()
    plain = nn.compile(F.mean(PF.affine(nn.Variable((2, 3)), 2)), name="plain",
                       output_dir=tmp_path, backend=backend).source
    assert "conv_" not in plain


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
def test_the_fused_kernels_compute_what_the_im2col_products_compute(backend, tmp_path,
                                                                    monkeypatch):
    """Above IM2COL_LIMIT a convolution runs the fused kernels; below, products with its
    im2col matrix (checked against references and differences by the tests above). The
    two give the same values and gradients, in float64, over padding, strides,
    dilations, groups and 1-D to 3-D, second derivatives included."""
    results = {}
    for path in ("im2col", "fused"):
        monkeypatch.setattr(primitives, "IM2COL_LIMIT", 0 if path == "fused" else 2**40)
        nn.clear_parameters()
        total = None
        for i, (shape, out, kernel, options) in enumerate([
                ((2, 4, 7, 6), 6, (3, 2), {"pad": (1, 0), "stride": (2, 1), "group": 2}),
                ((1, 3, 9), 2, (3,), {"dilation": (2,), "pad": (2,)}),
                ((1, 2, 4, 3, 5), 3, (2, 2, 3), {"stride": (1, 2, 1)})]):
            x = nn.Variable(shape, need_grad=True)
            x.name = f"x{i}"
            with nn.parameter_scope(f"c{i}"):
                y = PF.convolution(x, out, kernel, **options)
            (gx,) = nn.grad([F.sum(F.tanh(y) ** 2)], [x])
            term = F.sum(F.tanh(y) ** 2) + F.sum(gx ** 2)
            total = term if total is None else total + term
        module = nn.compile(total, name=f"conv_{path}", output_dir=tmp_path, dtype="float64",
                            backend=backend, solver=None).module
        rng = np.random.default_rng(3)
        specs = [*module.INPUTS.values(), *module.PARAMETERS.values()]
        arguments = [rng.normal(size=spec["shape"]) for spec in specs]
        if backend == "array_api":
            arguments = on_device(DEVICE_64)(arguments)
        results[path] = [np.from_dlpack(a) if backend == "array_api" else a
                         for a in module.gradient(*arguments)]
    for mine, theirs in zip(results["im2col"], results["fused"], strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-12)


def test_gradient_comments_name_what_each_kernel_differentiates(tmp_path):
    source = nn.compile(_two_layers(True), name="comments", output_dir=tmp_path
                        ).function_source("gradient")
    lines = source.splitlines()

    def comment_of(target: str) -> str:
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(target))
        comment = []
        for line in reversed(lines[:at]):
            if not line.strip().startswith("#"):
                break
            comment.insert(0, line.strip().lstrip("# "))
        return " ".join(comment)

    assert comment_of("g_x = conv_grad_x(").startswith(
        "d loss / d x = conv_grad_x(conv_grad_x(y*(1 - y**2)/8, c2_conv_W, stride=(2, 2),")
    assert comment_of("g_c1_conv_W = conv_matmul_grad_w(_t0, ").startswith(
        "d loss / d c1/conv/W = conv_matmul_grad_w(im2col(x, pad=(1, 1)), ")
    assert comment_of("g_c2_conv_W = conv_matmul_grad_w(").startswith(
        "d loss / d c2/conv/W = conv_matmul_grad_w(im2col(h, stride=(2, 2)), ")
    assert comment_of("g_c2_conv = ").startswith(
        "d loss / d (conv_matmul(im2col(h, stride=(2, 2)), c2_conv_W, group=2))")


def test_kernel_names_are_reserved(tmp_path):
    """No user name can shadow a kernel: every kernel of every backend is reserved, and a
    variable named like one is renamed."""
    for backend in registry.BACKENDS:
        kernels = registry.get(backend).kernels
        assert set(kernels.names()) <= RESERVED, backend
    x = nn.Variable((1, 1, 4), need_grad=True)
    x.name = "conv_forward"
    w = nn.Variable((1, 1, 2), need_grad=True)
    w.name = "conv_grad_w"
    module = nn.compile(F.sum(F.convolution(x, w)), name="names", output_dir=tmp_path).module
    assert module.GRADIENTS == ("conv_forward_", "conv_grad_w_")
    x_a, w_a = np.arange(4.0, dtype=np.float32).reshape(1, 1, 4), np.ones((1, 1, 2), np.float32)
    _, g_x, g_w = module.gradient(x_a, w_a)
    np.testing.assert_allclose(g_x, [[[1, 2, 2, 1]]])
    np.testing.assert_allclose(g_w, [[[3, 6]]])


# --- bad input ---------------------------------------------------------------------------

BAD = [
    ("wrong channel count", (2, 3, 5, 5), (4, 2, 3, 3), None, {},
     r"F\.convolution: input of shape \(2, 3, 5, 5\), weight of shape \(4, 2, 3, 3\).*3 "
     r"channels.*axis 1 must be 3, not 2"),
    ("output size < 1", (2, 3, 2, 2), (4, 3, 3, 3), None, {},
     r"F\.convolution: input of shape \(2, 3, 2, 2\), weight of shape \(4, 3, 3, 3\).*"
     r"spatial axis 0 \(length 2, kernel 3.*output of length 0.*pad the input"),
    ("dilation too large", (1, 1, 5), (1, 1, 3), None, {"dilation": (3,)},
     r"F\.convolution: input of shape \(1, 1, 5\).*output of length -1"),
    ("group does not divide input channels", (2, 4, 5, 5), (6, 2, 3, 3), None, {"group": 3},
     r"F\.convolution: input of shape \(2, 4, 5, 5\), weight of shape \(6, 2, 3, 3\).*"
     r"group=3 must divide both the input channels \(4"),
    ("group does not divide output channels", (2, 4, 5, 5), (5, 2, 3, 3), None, {"group": 2},
     r"F\.convolution: .*group=2 must divide .*output channels \(5"),
    ("bias shape", (2, 3, 5, 5), (4, 3, 3, 3), (5,), {},
     r"F\.convolution: .*bias of shape \(5,\) must have shape \(4,\)"),
    ("weight rank", (2, 3, 5, 5), (4, 3, 3), None, {},
     r"F\.convolution: input of shape \(2, 3, 5, 5\), weight of shape \(4, 3, 3\): the weight "
     r"must have 4 axes"),
    ("pad length", (2, 3, 5, 5), (4, 3, 3, 3), None, {"pad": (1,)},
     r"F\.convolution: .*pad=\(1,\) must have one entry per spatial axis \(2\)"),
    ("stride 0", (2, 3, 5, 5), (4, 3, 3, 3), None, {"stride": (0, 1)},
     r"F\.convolution: .*stride=\(0, 1\) must hold integers of at least 1"),
    ("negative pad", (2, 3, 5, 5), (4, 3, 3, 3), None, {"pad": (-1, 0)},
     r"F\.convolution: .*pad=\(-1, 0\) must hold integers of at least 0"),
    ("base_axis", (2, 3, 5, 5), (4, 3, 3, 3), None, {"base_axis": 3},
     r"F\.convolution: .*base_axis 3 must leave a channel axis.*valid: 0\.\.2"),
    ("channel_last channels", (2, 5, 5, 3), (4, 3, 3, 2), None, {"channel_last": True},
     r"F\.convolution: input of shape \(2, 3, 5, 5\), weight of shape \(4, 2, 3, 3\): the "
     r"input has 3 channels .*\[channel_last=True: the shapes above are the inputs' "
     r"\(2, 5, 5, 3\), \(4, 3, 3, 2\) with the channels moved before the spatial axes\]"),
]


@pytest.mark.parametrize("name,x_shape,w_shape,b_shape,kwargs,message", BAD,
                         ids=[c[0] for c in BAD])
def test_bad_input_is_refused_when_the_graph_is_built(name, x_shape, w_shape, b_shape,
                                                      kwargs, message):
    inputs = [nn.Variable(x_shape), nn.Variable(w_shape)]
    if b_shape:
        inputs.append(nn.Variable(b_shape))
    with pytest.raises(ValueError, match=message):
        F.convolution(*inputs, **kwargs)


def test_arguments_of_the_wrong_type_are_refused():
    x, w = nn.Variable((2, 3, 5, 5)), nn.Variable((4, 3, 3, 3))
    with pytest.raises(TypeError, match=r"F\.convolution: pad must be a tuple of ints"):
        F.convolution(x, w, pad=1)  # nnabla: 'int' object is not iterable
    with pytest.raises(TypeError, match=r"F\.convolution: input 1 must be a Variable"):
        F.convolution(x, np.ones((4, 3, 3, 3)))


@pytest.mark.parametrize("kwargs,message", [
    ({"group": 3}, r"group=3 must divide both the input channels \(4"),
    ({"group": 0}, r"group=0 must divide"),
    ({"base_axis": 3}, r"base_axis 3 must leave a channel axis"),
    ({"pad": (1,)}, r"pad=\(1,\) must have one entry per spatial axis"),
    ({"channel_last": True, "group": 2}, r"group=2 must divide both the input channels \(5"),
])
def test_pf_convolution_refuses_before_creating_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PF.convolution(nn.Variable((2, 4, 5, 5)), 6, (3, 3), **kwargs)
    assert nn.get_parameters(grad_only=False) == {}  # nothing was created


# --- PF.convolution -------------------------------------------------------------------------

def test_parameters_are_named_shaped_and_initialised_as_nnabla_does():
    x = nn.Variable((2, 4, 5, 5))
    y = PF.convolution(x, 6, (3, 3), group=2)
    assert y.shape == (2, 6, 3, 3)
    with nn.parameter_scope("block"):
        PF.convolution(x, 3, (1, 2), with_bias=False)
    PF.convolution(x, 2, (3, 3), name="side", fix_parameters=True)
    params = nn.get_parameters(grad_only=False)
    assert {k: v.shape for k, v in params.items()} == {
        "conv/W": (6, 2, 3, 3), "conv/b": (6,), "block/conv/W": (3, 4, 1, 2),
        "side/conv/W": (2, 4, 3, 3), "side/conv/b": (2,)}
    low, high = I.calc_uniform_lim_glorot(4, 6, (3, 3))
    assert high == pytest.approx(np.sqrt(6 / (9 * (4 + 6))))  # the full channel count
    w = params["conv/W"].d
    assert low <= w.min() < 0.8 * low and 0.8 * high < w.max() <= high
    assert np.all(params["conv/b"].d == 0)


def test_default_weights_are_nnabla_s_draws():
    """After nn.seed(313) nnabla 1.39's PF.convolution(Variable((2, 3, 5, 5)), 4, (3, 3))
    draws these conv/W[0, 0] (printed with precision 7), within +-0.3086067."""
    nn.seed(313)
    PF.convolution(nn.Variable((2, 3, 5, 5)), 4, (3, 3))
    w = nn.get_parameters()["conv/W"].d
    np.testing.assert_allclose(w[0, 0], [[-0.2064334, 0.0309251, 0.2227349],
                                         [0.0727903, 0.2754292, 0.0375624],
                                         [0.2281144, -0.2021988, -0.0294923]], atol=1e-7)
    assert w.min() == pytest.approx(-0.30847666) and w.max() == pytest.approx(0.30073398)


def test_a_small_cnn_trains_with_the_generated_sgd_step(tmp_path):
    """conv -> relu -> affine -> softmax cross-entropy on 16 images of 6x6: which half
    (left or right) is brighter. The generated sgd_step brings the loss down."""
    rng = np.random.default_rng(0)
    images = rng.normal(size=(16, 1, 6, 6)).astype(np.float32)
    labels = rng.integers(0, 2, size=(16, 1))
    images[labels[:, 0] == 1, :, :, 3:] += 1.0
    images[labels[:, 0] == 0, :, :, :3] += 1.0
    x = nn.Variable(images.shape)
    x.name = "x"
    t = nn.Variable((16, 1))
    t.name = "t"
    h = F.relu(PF.convolution(x, 4, (3, 3), pad=(1, 1), stride=(2, 2)))
    loss = F.mean(F.softmax_cross_entropy(PF.affine(h, 2), t))
    module = nn.compile(loss, name="cnn", output_dir=tmp_path, solver="sgd").module
    params = module.init_parameters(seed=0)
    target = labels.astype(np.float32)
    losses = [float(module.sgd_step(x=images, t=target, **params, lr=0.1)) for _ in range(40)]
    assert losses[-1] < 0.5 * losses[0], losses
    assert all(np.isfinite(losses))


def test_printers_call_the_kernel_and_record_it():
    """A kernel primitive prints as a call of its kernel (the array API printer passes the
    namespace first) that the printer records for the emitter; formulas show the same
    call without shapes and default options."""
    import sympy

    from symcompile.backends.array_api import ArrayAPIPrinter
    from symcompile.backends.printer import NumPyPrinter
    from symcompile.ir import formula
    from symcompile.ir.primitives import Shapes, convolution

    shapes = Shapes()
    x = shapes.declare(sympy.Symbol("x"), (2, 3, 5, 5))
    w = shapes.declare(sympy.Symbol("W"), (4, 3, 3, 3))
    g = shapes.declare(sympy.Symbol("g"), (2, 4, 3, 3))
    y = convolution(x, w, (1, 1), (2, 2), (1, 1), 1)
    assert shapes.of(y) == (2, 4, 3, 3)
    grad_w = y.vjp(1, g, shapes)
    numpy_printer, array_printer = NumPyPrinter(shapes), ArrayAPIPrinter(shapes)
    assert numpy_printer.doprint(y) == (
        "conv_forward(x, W, pad=(1, 1), stride=(2, 2), dilation=(1, 1), group=1)")
    assert numpy_printer.doprint(2 * grad_w) == (
        "2*conv_grad_w(x, g, w_shape=(4, 3, 3, 3), pad=(1, 1), stride=(2, 2), dilation=(1, 1), "
        "group=1)")
    assert numpy_printer.kernels == {"conv_forward", "conv_grad_w"}
    assert array_printer.doprint(y.vjp(0, g, shapes)).startswith("conv_grad_x(xp, g, W, ")
    assert array_printer.kernels == {"conv_grad_x"}
    assert formula.as_text(grad_w, shapes) == "conv_grad_w(x, g, pad=(1, 1), stride=(2, 2))"
    assert r"\operatorname{conv\_forward}" in formula.as_latex(y, shapes)
