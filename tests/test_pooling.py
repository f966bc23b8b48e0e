"""F.max_pooling, F.average_pooling, F.sum_pooling and F.global_average_pooling, computed
by kernels in both backends.

- forward against direct loops over every output element (`reference`), for kernels,
  strides, pads, ignore_border, including_pad, 2-D and 3-D pooling and inputs with any
  number of leading axes; gradients against central finite differences in float64
  (gradcheck.check_function; random inputs, so max pooling has no ties);
- the kernels themselves on 1-D pooling (which F refuses, as nnabla 1.39 does);
- max pooling's tie-breaking: the first maximum of a window in C order takes its gradient;
- the array API backend: the NumPy module's numbers on array-api-strict arrays;
- nnabla 1.39's numbers (recorded as constants below);
- bad input, refused when the graph is built, naming the function and the shapes.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from gradcheck import check_function
from nnabla_run import nnabla_rows
from test_array_api_backend import DEVICE, compare_runs, compile_both, on_device, run_all

import symcompile as nn
import symcompile.functions as F
from symcompile.backends.kernels import numpy_kernels


def reference(x, kind, kernel, stride=None, ignore_border=True, pad=None, including_pad=True):
    """nnabla's pooling by its definition (base_pooling.cpp), one output element at a time
    (float64): window [m*s - p, min(m*s - p + k, L + p)) clipped to [0, L) per axis."""
    rank = len(kernel)
    stride, pad = stride or kernel, pad or (0,) * rank
    lead, size = x.shape[:x.ndim - rank], x.shape[x.ndim - rank:]
    if ignore_border:
        out = tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(size, kernel, stride, pad,
                                                                    strict=True))
    else:
        out = tuple((n + p - 1) // s + 1 for n, s, p in zip(size, stride, pad, strict=True))
    y = np.zeros(lead + out)
    for m in np.ndindex(*out):
        box, padded_size = [], 1
        for mi, n, k, s, p in zip(m, size, kernel, stride, pad, strict=True):
            start = mi * s - p
            end = min(start + k, n + p)
            padded_size *= end - start
            box.append(slice(max(start, 0), min(end, n)))
        window = x[(Ellipsis,) + tuple(box)].reshape(lead + (-1,))
        if kind == "max":
            value = window.max(axis=-1)
        else:
            value = window.sum(axis=-1)
            if kind == "average":
                value = value / (padded_size if including_pad else window.shape[-1])
        y[(Ellipsis,) + m] = value
    return y


FUNCTIONS = {"max": F.max_pooling, "sum": F.sum_pooling, "average": F.average_pooling}

# (name, kind, x shape, keyword arguments)
CONFIGS = [
    ("max 2-D", "max", (2, 3, 4, 6), {"kernel": (2, 2)}),
    ("max 2-D overlapping pad", "max", (2, 2, 5, 5),
     {"kernel": (3, 3), "stride": (2, 1), "pad": (1, 2)}),
    ("max no border", "max", (1, 2, 5, 7), {"kernel": (2, 3), "stride": (2, 2), "pad": (1, 0),
                                            "ignore_border": False}),
    ("max 3-D", "max", (1, 2, 4, 3, 5), {"kernel": (2, 2, 3), "stride": (1, 2, 2),
                                         "pad": (1, 0, 1)}),
    ("max no leading axes", "max", (5, 6), {"kernel": (2, 3), "stride": (1, 2)}),
    ("average including pad", "average", (2, 2, 5, 5),
     {"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1)}),
    ("average excluding pad", "average", (2, 2, 5, 6),
     {"kernel": (3, 2), "stride": (2, 1), "pad": (1, 1), "including_pad": False}),
    ("average no border", "average", (1, 2, 5, 5),
     {"kernel": (2, 2), "stride": (3, 3), "pad": (1, 1), "ignore_border": False}),
    ("average no border excluding pad", "average", (1, 2, 5, 7),
     {"kernel": (2, 3), "stride": (3, 2), "pad": (1, 1), "ignore_border": False,
      "including_pad": False}),
    ("average 3-D", "average", (1, 1, 3, 4, 5), {"kernel": (2, 2, 2), "pad": (1, 0, 1)}),
    ("sum 2-D", "sum", (3, 2, 4, 5), {"kernel": (2, 3), "stride": (1, 1), "pad": (0, 1)}),
    ("sum no border", "sum", (1, 1, 5, 5), {"kernel": (2, 2), "ignore_border": False}),
]
IDS = [c[0] for c in CONFIGS]


@pytest.mark.parametrize("name,kind,x_shape,kwargs", CONFIGS, ids=IDS)
def test_forward_and_gradients(name, kind, x_shape, kwargs, tmp_path, rng):
    """The output against the direct loops, d/dx against finite differences."""
    x = np.random.default_rng(0).normal(size=x_shape)
    check_function(lambda v: FUNCTIONS[kind](v, **kwargs),
                   lambda a: reference(a, kind, **kwargs), [x], tmp_path, rng)


def test_global_average_pooling(tmp_path, rng):
    """The mean over every axis after the channels, as (N, C, 1, 1), for any rank."""
    for shape in [(2, 3, 4, 5), (2, 3, 4), (2, 3, 2, 2, 3)]:
        x = np.random.default_rng(1).normal(size=shape)
        check_function(F.global_average_pooling,
                       lambda a: a.reshape(a.shape[:2] + (-1,)).mean(-1)[:, :, None, None],
                       [x], tmp_path, rng)


@pytest.mark.parametrize("stride,pad,ignore_border", [((1,), (0,), True), ((2,), (1,), True),
                                                      ((3,), (1,), False)])
def test_kernels_on_1d_pooling(stride, pad, ignore_border):
    """The NumPy kernels are N-D: 1-D pooling (refused by F, as by nnabla) against the loops,
    and the gradient kernels against the forward kernels' finite differences."""
    x = np.random.default_rng(2).normal(size=(2, 3, 7))
    kernel = (3,)
    for kind, forward in [("max", numpy_kernels.pool_max), ("sum", numpy_kernels.pool_sum)]:
        np.testing.assert_allclose(forward(x, kernel, stride, pad, ignore_border),
                                   reference(x, kind, kernel, stride, ignore_border, pad))
    for including in (True, False):
        got = numpy_kernels.pool_average(x, kernel, stride, pad, ignore_border, including)
        np.testing.assert_allclose(got, reference(x, "average", kernel, stride,
                                                  ignore_border, pad, including))
    dy = np.random.default_rng(3).normal(size=got.shape)
    grads = {
        "max": (lambda a: numpy_kernels.pool_max(a, kernel, stride, pad, ignore_border),
                numpy_kernels.pool_max_grad(x, dy, kernel, stride, pad, ignore_border)),
        "average": (lambda a: numpy_kernels.pool_average(a, kernel, stride, pad,
                                                          ignore_border, False),
                    numpy_kernels.pool_average_grad(dy, x.shape, kernel, stride, pad,
                                                    ignore_border, False))}
    for kind, (forward, grad) in grads.items():
        numeric = np.zeros_like(x)
        for i in np.ndindex(*x.shape):
            step = np.zeros_like(x)
            step[i] = 1e-6
            numeric[i] = ((forward(x + step) - forward(x - step)) * dy).sum() / 2e-6
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8, err_msg=kind)


def _compiled_max(x, kernel, stride, dy, tmp_path, name):
    v = nn.Variable(x.shape, need_grad=True)
    v.name = "x"
    y = F.max_pooling(v, kernel, stride)
    weights = nn.Variable(y.shape)
    weights.name = "weights"
    loss = F.sum(y * weights)
    modules = compile_both(loss, tmp_path, name)
    return modules, {"x": x, "weights": dy}, y


# --- nnabla's numbers -----------------------------------------------------------------------
# Produced with nnabla 1.39 (CPU, float32) by the scripts maxpool_ties.py and avgpool_pad.py:
# y = F.<pooling>(x, ...); y.forward(); y.backward(dy).
TIES_X = [[1, 1, 0, 2], [1, 0, 2, 2], [3, 0, 5, 4], [0, 3, 5, 5]]
TIES_Y = [[1, 2], [3, 5]]
TIES_DY = [[10, 20], [30, 40]]
TIES_DX = [[10, 0, 0, 20], [0, 0, 0, 0], [30, 0, 40, 0], [0, 0, 0, 0]]
CONSTANT_DX = [[1, 1, 0], [1, 1, 0], [0, 0, 0]]  # 3x3 ones, kernel (2, 2), stride (1, 1)
AVG_Y = {True: [[1.333333, 3., 2.666667], [7., 12., 9.], [8., 13., 9.333333]],
         False: [[3., 4.5, 6.], [10.5, 12., 13.5], [18., 19.5, 21.]]}
AVG_DX = {True: [[.111111, .222222, .111111, .222222, .111111],
                 [.222222, .444444, .222222, .444444, .222222],
                 [.111111, .222222, .111111, .222222, .111111],
                 [.222222, .444444, .222222, .444444, .222222],
                 [.111111, .222222, .111111, .222222, .111111]],
          False: [[.25, .416667, .166667, .416667, .25],
                  [.416667, .694444, .277778, .694444, .416667],
                  [.166667, .277778, .111111, .277778, .166667],
                  [.416667, .694444, .277778, .694444, .416667],
                  [.25, .416667, .166667, .416667, .25]]}
AVG_NO_BORDER_Y = [[3, 5, 6.5], [13, 15, 16.5], [20.5, 22.5, 24]]  # k (2, 2), no pad
# x = -arange(1, 26).reshape(1, 1, 5, 5), kernel (2, 2), stride (3, 3), pad (1, 1),
# ignore_border=False (the last window runs past the padding)
PAST_PAD_Y = {True: [[-0.25, -1.75], [-6.75, -16.]], False: [[-1., -3.5], [-13.5, -16.]]}


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
def test_max_pooling_ties_as_nnabla(backend, tmp_path):
    """On ties the first maximum in C order takes the window's gradient (nnabla's strict
    `<` scan), and overlapping windows add up."""
    x = np.array(TIES_X, dtype=np.float32).reshape(1, 1, 4, 4)
    dy = np.array(TIES_DY, dtype=np.float32).reshape(1, 1, 2, 2)
    modules, values, _ = _compiled_max(x, (2, 2), None, dy, tmp_path, "ties")
    library = on_device(DEVICE) if backend == "array_api" else (lambda args: args)
    forward, gradient, _, _ = run_all(modules, values, library)[backend]
    host = [np.from_dlpack(g) if backend == "array_api" else np.asarray(g) for g in gradient]
    dx = [g for g in host if g.shape == x.shape]  # (the loss, then d loss / d x)
    assert len(dx) == 1, [g.shape for g in host]
    np.testing.assert_array_equal(dx[0], np.array(TIES_DX).reshape(1, 1, 4, 4))
    np.testing.assert_array_equal(numpy_kernels.pool_max(x, (2, 2), (2, 2), (0, 0), 1)[0, 0],
                                  TIES_Y)
    ones = np.ones((3, 3))
    np.testing.assert_array_equal(
        numpy_kernels.pool_max_grad(ones, np.ones((2, 2)), (2, 2), (1, 1), (0, 0), 1),
        CONSTANT_DX)


def test_max_pooling_ties_array_api_kernel():
    """The array API kernel breaks ties as the NumPy one does (comparisons, no argmax)."""
    import array_api_strict as xps

    from symcompile.backends.kernels import array_api_kernels as K
    ones = xps.ones((3, 3), dtype=xps.float64)
    got = K.pool_max_grad(xps, ones, xps.ones((2, 2), dtype=xps.float64), (2, 2), (1, 1),
                          (0, 0), 1)
    np.testing.assert_array_equal(np.from_dlpack(got), CONSTANT_DX)


@pytest.mark.parametrize("including_pad", [True, False])
def test_average_pooling_as_nnabla(including_pad, tmp_path):
    x = nn.Variable.from_numpy_array(np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5),
                                     need_grad=True)
    for ignore_border in (True, False):
        y = F.average_pooling(x, (3, 3), (2, 2), ignore_border, (1, 1),
                              including_pad=including_pad)
        x.grad.zero()
        y.forward()
        y.backward(np.ones(y.shape, dtype=np.float32), clear_buffer=True)
        np.testing.assert_allclose(y.d[0, 0], AVG_Y[including_pad], rtol=1e-6)
        np.testing.assert_allclose(x.g[0, 0], AVG_DX[including_pad], rtol=1e-5)
    y = F.average_pooling(x, (2, 2), ignore_border=False)
    y.forward()
    np.testing.assert_allclose(y.d[0, 0], AVG_NO_BORDER_Y)
    past = nn.Variable.from_numpy_array(-np.arange(1, 26, dtype=np.float32).reshape(1, 1, 5, 5))
    y = F.average_pooling(past, (2, 2), (3, 3), False, (1, 1), including_pad=including_pad)
    y.forward()
    np.testing.assert_allclose(y.d[0, 0], PAST_PAD_Y[including_pad])


# --- the array API backend -------------------------------------------------------------------

@pytest.mark.parametrize("name,kind,x_shape,kwargs", CONFIGS, ids=IDS)
def test_array_api_backend_gives_the_numpy_numbers(name, kind, x_shape, kwargs, tmp_path):
    """forward, gradient, forward_saving and backward of sum(y * weights) on
    array-api-strict float32 arrays: the NumPy module's numbers."""
    v = nn.Variable(x_shape, need_grad=True)
    v.name = "x"
    y = FUNCTIONS[kind](v, **kwargs)
    weights = nn.Variable(y.shape)
    weights.name = "weights"
    values = {"x": np.random.default_rng(0).normal(size=x_shape),
              "weights": np.random.default_rng(1).normal(size=y.shape)}
    modules = compile_both(F.sum(y * weights), tmp_path, "pool")
    compare_runs(run_all(modules, values, on_device(DEVICE)), device=DEVICE)


# --- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("call,message", [
    (lambda x: F.max_pooling(x, (2,)), r"F\.max_pooling: input of shape \(2, 3, 4, 5\), "
                                       r"kernel \(2,\).*2-D and 3-D"),
    (lambda x: F.average_pooling(x, (2, 2), pad=(1,)), r"F\.average_pooling: .*pad=\(1,\)"),
    (lambda x: F.sum_pooling(x, (2, 2), stride=(0, 1)), r"F\.sum_pooling: .*stride=\(0, 1\)"),
    (lambda x: F.max_pooling(x, (6, 2)), r"F\.max_pooling: .*\(2, 3, 4, 5\).*pooled axis 0 "
                                         r"\(length 4, kernel 6"),
    (lambda x: F.max_pooling(x, (2, 2), pad=(2, 0)), r"F\.max_pooling: .*smaller than"),
    (lambda x: F.max_pooling(x, (2, 2, 2, 2)), r"F\.max_pooling: .*2 or 3 entries"),
    (lambda x: F.average_pooling(x, (4, 2), channel_last=True),
     r"F\.average_pooling: input of shape \(2, 5, 3, 4\), kernel \(4, 2\): pooled axis 0 "
     r"\(length 3, kernel 4.*\[channel_last=True: the shapes above are the inputs' "
     r"\(2, 3, 4, 5\)"),
    (lambda x: F.global_average_pooling(F.reshape(x, (-1,))),
     r"F\.global_average_pooling: input of shape \(120,\)"),
])
def test_bad_input_is_refused_when_the_graph_is_built(call, message):
    x = nn.Variable((2, 3, 4, 5))
    with pytest.raises(ValueError, match=message):
        call(x)


def test_types_are_refused():
    with pytest.raises(TypeError, match=r"F\.max_pooling: kernel must be a tuple"):
        F.max_pooling(nn.Variable((1, 1, 4, 4)), 2)
    with pytest.raises(TypeError, match=r"F\.sum_pooling: input 0 must be a Variable"):
        F.sum_pooling(np.zeros((1, 1, 4, 4)), (2, 2))


# --- against nnabla itself --------------------------------------------------------------

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
NNABLA_POOLING = """
import json, sys
import numpy as np
import nnabla as nn
import nnabla.functions as F

for case in json.loads(sys.argv[1]):
    rng = np.random.RandomState(case["seed"])
    x = nn.Variable(tuple(case["shape"]), need_grad=True)
    x.d = rng.randn(*case["shape"]).astype(np.float32)
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in case["kwargs"].items()}
    y = getattr(F, case["function"])(x, **kwargs)
    g = rng.randn(*y.shape).astype(np.float32)
    y.forward()
    x.grad.zero()
    y.backward(g)
    print(json.dumps({"x": x.d.tolist(), "g": g.tolist(), "y": y.d.tolist(),
                      "dx": x.g.tolist()}))
"""


def _nnabla_cases():
    settings = [{"kernel": [2, 2]}, {"kernel": [3, 3], "stride": [2, 2], "pad": [1, 1]},
                {"kernel": [3, 2], "stride": [1, 2], "ignore_border": False},
                {"kernel": [3, 3], "stride": [2, 2], "pad": [1, 1], "ignore_border": False}]
    cases = []
    for function in ("max_pooling", "average_pooling", "sum_pooling"):
        for kwargs in settings:
            variants = ([dict(kwargs, including_pad=flag) for flag in (True, False)]
                        if function == "average_pooling" else [kwargs])
            cases += [{"function": function, "kwargs": v, "shape": [2, 3, 7, 6]}
                      for v in variants]
    cases.append({"function": "global_average_pooling", "kwargs": {}, "shape": [2, 3, 5, 4]})
    return [dict(case, seed=i) for i, case in enumerate(cases)]


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_every_pooling_against_nnabla(tmp_path):
    """y and dx of 17 configurations (both ignore_border and including_pad values) equal
    nnabla 1.39's, computed in a subprocess on the same float32 inputs and cotangents,
    to float32 rounding."""
    cases = _nnabla_cases()
    rows = nnabla_rows(NNABLA, NNABLA_POOLING, cases, tmp_path)
    assert len(rows) == len(cases)
    for case, row in zip(cases, rows, strict=True):
        nn.clear_parameters()
        x = nn.Variable.from_numpy_array(np.array(row["x"], np.float32), need_grad=True)
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in case["kwargs"].items()}
        y = getattr(F, case["function"])(x, **kwargs)
        loss = F.sum(y * nn.Variable.from_numpy_array(np.array(row["g"], np.float32)))
        loss.forward()
        x.grad.zero()
        loss.backward()
        what = f"{case['function']} {kwargs}"
        np.testing.assert_allclose(y.d, row["y"], rtol=1e-5, atol=2e-6, err_msg=what)
        np.testing.assert_allclose(x.g, row["dx"], rtol=1e-5, atol=2e-6, err_msg=what)


# --- F.max_pooling_backward: max pooling's x-gradient as a function of dy -----------------

def max_pooling_gradient(dy, x, kernel, stride=None, ignore_border=True, pad=None):
    """d/dx of sum(dy * max_pooling(x)) by its definition: each window's dy added at the
    window's first maximum in C order (windows as `reference`'s)."""
    rank = len(kernel)
    stride, pad = stride or kernel, pad or (0,) * rank
    lead, size = x.shape[:x.ndim - rank], x.shape[x.ndim - rank:]
    dx = np.zeros_like(x)
    for index in np.ndindex(*lead):
        for m in np.ndindex(*dy.shape[len(lead):]):
            box = [range(max(mi * s - p, 0), min(mi * s - p + k, n))
                   for mi, n, k, s, p in zip(m, size, kernel, stride, pad, strict=True)]
            window = [(x[index + tuple(at)], tuple(at)) for at in
                      np.array(np.meshgrid(*box, indexing="ij")).reshape(rank, -1).T]
            best = max(window, key=lambda pair: pair[0])[1]  # the first maximum
            dx[index + best] += dy[index + m]
    return dx


MAX_BACKWARD = [
    ((2, 3, 4, 6), {"kernel": (2, 2)}),
    ((2, 2, 5, 5), {"kernel": (3, 3), "stride": (2, 1), "pad": (1, 2)}),
    ((1, 2, 5, 7), {"kernel": (2, 3), "stride": (2, 2), "pad": (1, 0), "ignore_border": False}),
    ((1, 2, 4, 3, 5), {"kernel": (2, 2, 3), "stride": (1, 2, 2), "pad": (1, 0, 1)}),
]


@pytest.mark.parametrize("x_shape,kwargs", MAX_BACKWARD, ids=[str(c[1]) for c in MAX_BACKWARD])
def test_max_pooling_backward(x_shape, kwargs, tmp_path, rng):
    """dx against the definition; its gradient to dy (the maxima picked) and to x (0)
    against finite differences, through a compiled module."""
    x = np.random.default_rng(0).normal(size=x_shape)
    dy_shape = reference(x, "max", **kwargs).shape
    dy = np.random.default_rng(1).normal(size=dy_shape)
    check_function(lambda d, v: F.max_pooling_backward(d, v, **kwargs),
                   lambda d, v: max_pooling_gradient(d, v, **kwargs), [dy, x], tmp_path, rng)


def test_max_pooling_backward_through_the_runtime():
    """F.max_pooling_backward(dy, x) is x.g of sum(dy * max_pooling(x)); differentiated
    again, dy's gradient is g read at each window's maximum and x's is 0; channel_last
    gives the same numbers on NHWC arrays."""
    rng = np.random.default_rng(2)
    geometry = {"kernel": (2, 2), "stride": (2, 2), "ignore_border": True, "pad": (1, 1)}
    x = nn.Variable.from_numpy_array(rng.normal(size=(2, 3, 5, 5)), need_grad=True)
    y = F.max_pooling(x, **geometry)
    dy = nn.Variable.from_numpy_array(rng.normal(size=y.shape), need_grad=True)
    loss = F.sum(y * dy)
    loss.forward()
    x.grad.zero()
    loss.backward()
    expected = x.g.copy()
    dx = F.max_pooling_backward(dy, x, **geometry)
    g = rng.normal(size=dx.shape)
    second = F.sum(dx * nn.Variable.from_numpy_array(g))
    second.forward()
    x.grad.zero()
    dy.grad.zero()
    second.backward()
    np.testing.assert_allclose(dx.d, expected, rtol=1e-6)
    np.testing.assert_array_equal(x.g, 0)
    picked = np.zeros(y.shape)
    for m in np.ndindex(*y.shape):  # the window's one-hot dy lands on its maximum
        unit = np.zeros(y.shape)
        unit[m] = 1
        picked[m] = np.sum(max_pooling_gradient(unit, x.d, **geometry) * g)
    np.testing.assert_allclose(dy.g, picked, rtol=1e-6)
    nhwc = F.max_pooling_backward(
        nn.Variable.from_numpy_array(np.transpose(dy.d, (0, 2, 3, 1))),
        nn.Variable.from_numpy_array(np.transpose(x.d, (0, 2, 3, 1))),
        channel_last=True, **geometry)
    nhwc.forward()
    np.testing.assert_allclose(nhwc.d, np.transpose(expected, (0, 2, 3, 1)), rtol=1e-6)


@pytest.mark.parametrize("call,message", [
    (lambda: F.max_pooling_backward(nn.Variable((2, 3, 3, 3)), nn.Variable((2, 3, 5, 5)),
                                    (2, 2)),
     r"dy of shape \(2, 3, 3, 3\) is not the shape \(2, 3, 2, 2\) that max_pooling\(x, "
     r"kernel=\(2, 2\), stride=\(2, 2\), pad=\(0, 0\)\) gives x of shape \(2, 3, 5, 5\)"),
    (lambda: F.max_pooling_backward(np.zeros((2, 3, 2, 2)), nn.Variable((2, 3, 4, 4)), (2, 2)),
     r"F.max_pooling_backward"),
    (lambda: F.max_pooling_backward(nn.Variable((2, 3, 2, 2)), nn.Variable((2, 3, 4, 4)),
                                    (2, 2), pad=(2, 2)),
     r"F.max_pooling_backward: .*pad=\(2, 2\) must be smaller than the kernel"),
])
def test_max_pooling_backward_refuses_bad_input(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


NNABLA_MAX_BACKWARD = """
import json, sys
import numpy as np
import nnabla as nn
import nnabla.functions as F

for i, case in enumerate(json.loads(sys.argv[1])):
    rng = np.random.RandomState(i)
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in case["kwargs"].items()}
    x = nn.Variable.from_numpy_array(rng.randn(*case["shape"]).astype(np.float32),
                                     need_grad=True)
    y_shape = F.max_pooling(x, **kwargs).shape
    dy = nn.Variable.from_numpy_array(rng.randn(*y_shape).astype(np.float32), need_grad=True)
    dx = F.max_pooling_backward(dy, x, **kwargs)
    g = rng.randn(*dx.shape).astype(np.float32)
    dx.forward()
    x.grad.zero()
    dy.grad.zero()
    dx.backward(g)
    print(json.dumps({"x": x.d.tolist(), "dy": dy.d.tolist(), "g": g.tolist(),
                      "dx": dx.d.tolist(), "x_g": x.g.tolist(), "dy_g": dy.g.tolist()}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_max_pooling_backward_against_nnabla(tmp_path):
    """dx and the gradients of dy and x equal nnabla 1.39's (4 configurations)."""
    cases = [{"shape": list(shape), "kwargs": kwargs} for shape, kwargs in MAX_BACKWARD]
    rows = nnabla_rows(NNABLA, NNABLA_MAX_BACKWARD, cases, tmp_path)
    assert len(rows) == len(cases)
    for case, row in zip(cases, rows, strict=True):
        x = nn.Variable.from_numpy_array(np.array(row["x"], np.float32), need_grad=True)
        dy = nn.Variable.from_numpy_array(np.array(row["dy"], np.float32), need_grad=True)
        dx = F.max_pooling_backward(dy, x, **case["kwargs"])
        loss = F.sum(dx * nn.Variable.from_numpy_array(np.array(row["g"], np.float32)))
        loss.forward()
        x.grad.zero()
        dy.grad.zero()
        loss.backward()
        what = str(case["kwargs"])
        np.testing.assert_allclose(dx.d, row["dx"], rtol=1e-6, atol=1e-6, err_msg=what)
        np.testing.assert_allclose(dy.g, row["dy_g"], rtol=1e-6, atol=1e-6, err_msg=what)
        np.testing.assert_allclose(x.g, row["x_g"], rtol=1e-6, atol=1e-6, err_msg=what)
