"""F.deconvolution, F.depthwise_convolution, F.unpooling, F.embed, affine with a negative
base_axis, and their PF layers.

- forward against direct loops over their definitions (float64), gradients to every
  input against central finite differences (gradcheck.check_function), for strides,
  padding, dilation, groups, output_padding, multipliers, 1-D to 3-D;
- the layers' parameters (names, shapes, nnabla's initializers);
- nnabla 1.39's numbers where it is installed;
- bad input, refused when the graph is built.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
from gradcheck import check_function
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF


def deconvolution_reference(x, w, b=None, pad=None, stride=None, dilation=None, group=1,
                            output_padding=None):
    """y[n, g*O + o, m*s - p + k*d] += x[n, g*C + c, m] * w[g*C + c, o, k] (float64)."""
    rank = x.ndim - 2
    pad, stride = pad or (0,) * rank, stride or (1,) * rank
    dilation, output_padding = dilation or (1,) * rank, output_padding or (0,) * rank
    n, channels, size = x.shape[0], x.shape[1], x.shape[2:]
    per_in, per_out, kernel = channels // group, w.shape[1], w.shape[2:]
    out = tuple(s * (m - 1) + d * (k - 1) + 1 - 2 * p + o for m, k, p, s, d, o in
                zip(size, kernel, pad, stride, dilation, output_padding, strict=True))
    y = np.zeros((n, per_out * group) + out)
    for c in range(channels):
        g = c // per_in
        for m in np.ndindex(*size):
            for k in np.ndindex(*kernel):
                at = tuple(mi * s - p + ki * d for mi, ki, s, p, d in
                           zip(m, k, stride, pad, dilation, strict=True))
                if all(0 <= a < L for a, L in zip(at, out, strict=True)):
                    for o in range(per_out):
                        y[(slice(None), g * per_out + o) + at] += x[(slice(None), c) + m] \
                            * w[(c, o) + k]
    if b is not None:
        y += b.reshape((1, -1) + (1,) * rank)
    return y


def depthwise_reference(x, w, b=None, pad=None, stride=None, dilation=None, multiplier=1):
    """y[n, c*M + j, l] = sum over k of w[c*M + j, k] * xpad[n, c, l*s + k*d] (float64)."""
    rank = x.ndim - 2
    pad, stride, dilation = pad or (0,) * rank, stride or (1,) * rank, dilation or (1,) * rank
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple((p, p) for p in pad))
    kernel = w.shape[1:]
    out = tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, p, s, d in
                zip(x.shape[2:], kernel, pad, stride, dilation, strict=True))
    y = np.zeros((x.shape[0], w.shape[0]) + out)
    for o in range(w.shape[0]):
        for pos in np.ndindex(*out):
            for k in np.ndindex(*kernel):
                at = tuple(li * s + ki * d for li, ki, s, d in
                           zip(pos, k, stride, dilation, strict=True))
                y[(slice(None), o) + pos] += w[(o,) + k] * xp[(slice(None), o // multiplier)
                                                              + at]
    if b is not None:
        y += b.reshape((1, -1) + (1,) * rank)
    return y


DECONVOLUTIONS = [
    ("2-D", (2, 3, 4, 4), (3, 2, 3, 3), {}),
    ("2-D stride pad bias", (2, 2, 3, 4), (2, 3, 3, 2), {"stride": (2, 2), "pad": (1, 0),
                                                         "bias": True}),
    ("output_padding", (1, 2, 3, 3), (2, 2, 3, 3), {"stride": (2, 3), "pad": (1, 1),
                                                    "output_padding": (1, 2)}),
    ("dilation and groups", (2, 4, 3, 3), (4, 1, 2, 2), {"dilation": (2, 1), "group": 2,
                                                         "bias": True}),
    ("1-D", (2, 3, 5), (3, 2, 3), {"stride": (2,), "pad": (2,)}),
    ("3-D", (1, 2, 2, 3, 2), (2, 1, 2, 2, 2), {"stride": (1, 2, 1)}),
]


@pytest.mark.parametrize("name,x_shape,w_shape,kwargs", DECONVOLUTIONS,
                         ids=[c[0] for c in DECONVOLUTIONS])
def test_deconvolution(name, x_shape, w_shape, kwargs, tmp_path, rng):
    kwargs = dict(kwargs)
    bias = kwargs.pop("bias", False)
    group = kwargs.get("group", 1)
    shapes = [x_shape, w_shape] + ([(w_shape[1] * group,)] if bias else [])
    arrays = [np.random.default_rng(i).normal(size=s) for i, s in enumerate(shapes)]
    check_function(lambda *v: F.deconvolution(*v, **kwargs),
                   lambda *a: deconvolution_reference(*a, **kwargs), arrays, tmp_path, rng)


DEPTHWISE = [
    ("3x3", (2, 3, 5, 5), (3, 3, 3), {}),
    ("multiplier 2, pad, bias", (2, 2, 4, 5), (4, 3, 2), {"multiplier": 2, "pad": (1, 1),
                                                          "bias": True}),
    ("stride dilation", (1, 2, 6, 6), (2, 2, 2), {"stride": (2, 1), "dilation": (2, 2)}),
    ("1-D", (2, 3, 6), (6, 3), {"multiplier": 2, "stride": (2,)}),
]


@pytest.mark.parametrize("name,x_shape,w_shape,kwargs", DEPTHWISE, ids=[c[0] for c in DEPTHWISE])
def test_depthwise_convolution(name, x_shape, w_shape, kwargs, tmp_path, rng):
    kwargs = dict(kwargs)
    bias = kwargs.pop("bias", False)
    shapes = [x_shape, w_shape] + ([(w_shape[0],)] if bias else [])
    arrays = [np.random.default_rng(i).normal(size=s) for i, s in enumerate(shapes)]
    check_function(lambda *v: F.depthwise_convolution(*v, **kwargs),
                   lambda *a: depthwise_reference(*a, **kwargs), arrays, tmp_path, rng)


@pytest.mark.parametrize("shape,kernel", [((2, 3, 4), (2, 2)), ((2, 3, 2, 2), (1, 3)),
                                          ((3, 4), (3,)), ((2, 2, 2, 2, 2), (2, 1, 2))])
def test_unpooling(shape, kernel, tmp_path, rng):
    def reference(a):
        for axis, k in enumerate(kernel, start=a.ndim - len(kernel)):
            a = np.repeat(a, k, axis=axis)
        return a

    check_function(lambda v: F.unpooling(v, kernel), reference,
                   [np.random.default_rng(0).normal(size=shape)], tmp_path, rng)


def test_unpooling_whose_second_gradient_cancels():
    """Two equal unpoolings h, h2 of w: d/dh of mean(squared_error(h2, h)) is 0 once the
    compiler sees h2 is h, and the gradient through the unpooling's reshapes is then a
    scalar standing for an array (nnabla: w.g is 2, the kernel's size)."""
    w = nn.Variable.from_numpy_array(np.arange(4.0).reshape(1, 2, 2), need_grad=True)
    h, h2 = F.unpooling(w, (1, 2)), F.unpooling(w, (1, 2))
    loss = F.sum(h) + F.mean(F.squared_error(h2, h))
    loss.forward()
    w.grad.zero()
    loss.backward()
    assert loss.d == pytest.approx(12.0)
    np.testing.assert_array_equal(w.g, np.full((1, 2, 2), 2.0))


def test_embed(tmp_path, rng):
    """w[x] for indices of any shape; -1 gives zeros (as nnabla), an index past the end is
    refused where nnabla gives zeros (it is a bug in the data far more often than not);
    the gradient reaches w only."""
    x = np.array([[0, 3, 1], [3, 3, 2]], dtype=np.float64)
    w = np.random.default_rng(0).normal(size=(4, 2, 3))
    check_function(F.embed, lambda i, a: a[i.astype(int)], [x, w], tmp_path, rng,
                   need_grad=[False, True])
    nn.clear_parameters()
    indices = nn.Variable.from_numpy_array(np.array([1, 0, -1]))
    out = F.embed(indices, nn.Variable.from_numpy_array(w))
    out.forward()
    np.testing.assert_allclose(out.d, np.stack([w[1], w[0], np.zeros((2, 3))]), rtol=1e-6)
    indices.d = np.array([1, 4, 0])
    with pytest.raises(ValueError, match=r"holds 4.0 at index \(1,\); class labels must be "
                                         r"integers from 0 to 3, or -1"):
        out.forward()


def test_affine_with_negative_base_axis(tmp_path, rng):
    x, w = np.random.default_rng(0).normal(size=(2, 3, 4)), np.ones((12, 5))
    check_function(lambda a, b: F.affine(a, b, base_axis=-2),
                   lambda a, b: a.reshape(2, 12) @ b, [x, w], tmp_path, rng)
    nn.clear_parameters()
    y = PF.affine(nn.Variable((2, 3, 4)), 5, base_axis=-1)
    assert y.shape == (2, 3, 5) and nn.get_parameters()["affine/W"].shape == (4, 5)


def test_layers_create_nnablas_parameters():
    x = nn.Variable((2, 6, 5, 5))
    y = PF.deconvolution(x, 4, (3, 3), stride=(2, 2), pad=(1, 1), group=2,
                         output_padding=(1, 1))
    z = PF.depthwise_convolution(x, (3, 3), multiplier=2)
    e = PF.embed(nn.Variable((2, 3)), 10, 4)
    assert (y.shape, z.shape, e.shape) == ((2, 4, 10, 10), (2, 12, 3, 3), (2, 3, 4))
    params = nn.get_parameters()
    assert {k: v.shape for k, v in params.items()} == {
        "deconv/W": (6, 2, 3, 3), "deconv/b": (4,), "depthwise_conv/W": (12, 3, 3),
        "depthwise_conv/b": (12,), "embed/W": (10, 4)}
    # nnabla's Glorot limits, sqrt(6 / (K * (inmaps + outmaps))), and embed's sqrt(3)
    for key, limit in (("deconv/W", np.sqrt(6 / (9 * (4 + 6)))),
                       ("depthwise_conv/W", np.sqrt(6 / (9 * (12 + 6)))),
                       ("embed/W", np.sqrt(3))):
        values = params[key].d
        assert np.abs(values).max() <= limit and np.abs(values).max() > 0.8 * limit, key


@pytest.mark.parametrize("call,message", [
    (lambda: F.deconvolution(nn.Variable((2, 3, 4, 4)), nn.Variable((2, 2, 3, 3))),
     r"F.deconvolution: .*the weight's axis 0 must be the input's 3 channels"),
    (lambda: F.deconvolution(nn.Variable((2, 2, 4, 4)), nn.Variable((2, 2, 3, 3)),
                             stride=(2, 2), output_padding=(2, 0)),
     r"output_padding=\(2, 0\) must be smaller than the stride \(2, 2\)"),
    (lambda: F.deconvolution(nn.Variable((2, 4, 4, 3)), nn.Variable((2, 3, 3, 2)),
                             channel_last=True),
     r"F.deconvolution: .*the weight's axis 0 must be the input's 3 channels.*"
     r"\[channel_last=True: the shapes above are the inputs' \(2, 4, 4, 3\), \(2, 3, 3, 2\)"),
    (lambda: F.depthwise_convolution(nn.Variable((2, 3, 5, 5)), nn.Variable((4, 3, 3))),
     r"F.depthwise_convolution: .*weight must have shape \(channels \* multiplier, "
     r"\*kernel\) = \(3, \.\.\.\)"),
    (lambda: F.unpooling(nn.Variable((2, 3)), (2, 2, 2)),
     r"F.unpooling: kernel \(2, 2, 2\) must hold positive ints, at most one per axis"),
])
def test_bad_input_is_refused_when_the_graph_is_built(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- nnabla 1.39 ---------------------------------------------------------------------------

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
CALLS = [  # (expression of x and w, x shape, w shape)
    ("F.deconvolution(x, w, stride=(2, 2), pad=(1, 1), output_padding=(1, 1))",
     (2, 3, 4, 4), (3, 2, 3, 3)),
    ("F.deconvolution(x, w, dilation=(2, 1), group=2)", (2, 4, 3, 3), (4, 1, 2, 2)),
    ("F.depthwise_convolution(x, w, pad=(1, 1), multiplier=2)", (2, 3, 5, 5), (6, 3, 3)),
    ("F.depthwise_convolution(x, w, stride=(2, 2))", (2, 2, 5, 5), (2, 3, 3)),
    ("F.unpooling(x, (2, 3))", (2, 3, 3, 2), None),
    ("F.embed(x, w)", None, (5, 3)),
    ("F.affine(x, w, base_axis=-1)", (2, 3, 4), (4, 5)),
]
NNABLA_CONV = r"""
import json, sys
import numpy as np
import nnabla as nn, nnabla.functions as F
for i, (text, x_shape, w_shape) in enumerate(json.loads(sys.argv[1])):
    rng = np.random.RandomState(i)
    if x_shape is None:  # embed: indices
        x = nn.Variable.from_numpy_array(rng.randint(0, w_shape[0], size=(2, 4)))
    else:
        x = nn.Variable.from_numpy_array(rng.randn(*x_shape).astype(np.float32), need_grad=True)
    w = nn.Variable.from_numpy_array(rng.randn(*(w_shape or [1])).astype(np.float32),
                                     need_grad=True)
    out = eval(text)
    g = rng.randn(*out.shape).astype(np.float32)
    out.forward()
    x.grad.zero()
    w.grad.zero()
    out.backward(g)
    print(json.dumps({"x": x.d.tolist(), "w": w.d.tolist(), "g": g.tolist(),
                      "out": out.d.tolist(), "dx": x.g.tolist(), "dw": w.g.tolist()}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_against_nnabla(tmp_path):
    """The output, dx and dw of each call equal nnabla 1.39's on the same float32 inputs."""
    rows = nnabla_rows(NNABLA, NNABLA_CONV, CALLS, tmp_path)
    assert len(rows) == len(CALLS)
    for (text, x_shape, w_shape), row in zip(CALLS, rows, strict=True):
        nn.clear_parameters()
        indices = x_shape is None
        x = nn.Variable.from_numpy_array(np.array(row["x"], np.float32),
                                         need_grad=not indices)
        w = nn.Variable.from_numpy_array(np.array(row["w"], np.float32), need_grad=True)
        out = eval(text, {"F": F, "x": x, "w": w})
        loss = F.sum(out * nn.Variable.from_numpy_array(np.array(row["g"], np.float32)))
        loss.forward()
        loss.backward()
        np.testing.assert_allclose(out.d, row["out"], rtol=1e-5, atol=1e-5, err_msg=text)
        if not indices:
            np.testing.assert_allclose(x.g, row["dx"], rtol=1e-5, atol=1e-5, err_msg=text)
        if w_shape is not None:
            np.testing.assert_allclose(w.g, row["dw"], rtol=1e-5, atol=1e-5, err_msg=text)


def test_reference_loops_agree_with_numpy_where_they_can():
    """The references themselves: deconvolution's is the transpose of a convolution
    (<deconv(x), y> = <x, conv(y)>), checked with NumPy's own correlation."""
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(1, 2, 3, 3)), rng.normal(size=(2, 3, 2, 2))
    y = rng.normal(size=deconvolution_reference(x, w).shape)
    conv = np.zeros_like(x)  # conv(y, w)[n, c, m] = sum over o, k of y[n, o, m + k] w[c, o, k]
    for c, o, (i, j) in itertools.product(range(2), range(3), np.ndindex(2, 2)):
        conv[:, c] += y[:, o, i:i + 3, j:j + 3] * w[c, o, i, j]
    assert np.isclose(np.sum(deconvolution_reference(x, w) * y), np.sum(x * conv))
