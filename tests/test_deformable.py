"""F.deformable_convolution, PF.deformable_convolution and F.adaptive_separable_convolution.

- forward against references written from nnabla's loops (deformable-im2col-internal.cpp's
  bilinear reads, one element at a time; adaptive_separable_convolution.cpp's sums),
  float64, and every differentiable input's gradient (x, weight, offset, mask, bias; x
  and both kernels) against central differences, through a compiled module and its
  array API twin on array-api-strict arrays: with and without mask and bias,
  deformable_group 1, 2 and 4, group 2, stride, pad, dilation, kernels of unequal sides,
  offsets putting points a pixel and more outside x;
- their second derivatives: tests/test_second_derivatives.py, through the case of
  tests/test_array_api_backend.py;
- the graph is nnabla's (type, arguments, inputs; a 1-D fourth input is the bias);
- through the runtime (forward(), backward()), and against nnabla 1.39's outputs and
  gradients where it is installed (SYMCOMPILE_NNABLA_PYTHON), PF's initial weights too;
- what nnabla refuses, and the reads it leaves undefined, refused when the graph is built.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from gradcheck import check_array_api, check_function, numeric_gradient
from nnabla_run import nnabla_rows, replay_row

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF
from symcompile.initializer import calc_uniform_lim_glorot

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")


# --- references -----------------------------------------------------------------------------

def _bilinear(image, y, x):
    """image (H, W) at (y, x): the four corners weighted, those outside the image 0."""
    height, width = image.shape
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    value = 0.0
    for row, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for col, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= row < height and 0 <= col < width:
                value += wy * wx * image[row, col]
    return value


def deformable_reference(x, w, offset, mask=None, bias=None, pad=(0, 0), stride=(1, 1),
                         dilation=(1, 1), group=1, deformable_group=1):
    """nnabla's modulated deformable im2col, one column entry at a time, then the
    columns times the weight per group, plus the bias."""
    n, c, height, width = x.shape
    outmaps, _, kh, kw = w.shape
    out_h = (height + 2 * pad[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    out_w = (width + 2 * pad[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    k = kh * kw
    columns = np.zeros((n, c, kh, kw, out_h, out_w))
    for b in range(n):
        for channel in range(c):
            d = channel // (c // deformable_group)
            for i in range(kh):
                for j in range(kw):
                    position = i * kw + j
                    for ho in range(out_h):
                        for wo in range(out_w):
                            hi, wi = ho * stride[0], wo * stride[1]  # on x's grid
                            dy = offset[b, d * 2 * k + 2 * position, hi, wi]
                            dx = offset[b, d * 2 * k + 2 * position + 1, hi, wi]
                            value = _bilinear(x[b, channel], hi - pad[0] + i * dilation[0] + dy,
                                              wi - pad[1] + j * dilation[1] + dx)
                            if mask is not None:
                                value *= mask[b, d * k + position, hi, wi]
                            columns[b, channel, i, j, ho, wo] = value
    y = np.zeros((n, outmaps, out_h, out_w))
    per_in, per_out = c // group, outmaps // group
    for o in range(outmaps):
        g = o // per_out
        y[:, o] = np.einsum("cij,bcijhw->bhw", w[o], columns[:, g * per_in:(g + 1) * per_in])
        if bias is not None:
            y[:, o] += bias[o]
    return y


def separable_reference(x, kv, kh):
    """y[b, c, h, w] = sum over j, i of kv[b, j, h, w] * kh[b, i, h, w] * x[b, c, h + j,
    w + i], one output element at a time."""
    b, c, height, width = x.shape
    taps_v, taps_h = kv.shape[1], kh.shape[1]
    y = np.zeros((b, c, height - taps_v + 1, width - taps_h + 1))
    for index in np.ndindex(*y.shape):
        n, channel, h, w = index
        y[index] = sum(kv[n, j, h, w] * kh[n, i, h, w] * x[n, channel, h + j, w + i]
                       for j in range(taps_v) for i in range(taps_h))
    return y


# --- configurations -------------------------------------------------------------------------

# (x, weight, with mask, with bias, keyword arguments, offset scale): the scale 1.5 moves
# some points out of x, 4 most of them (with pad, the first and last rows and columns
# read the padding too)
CONFIGS = [
    ((2, 4, 4, 5), (4, 4, 3, 3), True, True, {}, 1.5),
    ((2, 4, 5, 5), (4, 4, 3, 3), False, True, {"pad": (1, 1)}, 1.5),
    ((1, 4, 6, 7), (6, 2, 3, 2), True, True, {"pad": (1, 0), "stride": (2, 1),
                                              "dilation": (1, 2), "group": 2,
                                              "deformable_group": 2}, 1.5),
    ((1, 4, 5, 5), (4, 4, 2, 2), True, False, {"deformable_group": 2, "stride": (2, 2)}, 4.0),
    ((1, 4, 7, 6), (4, 1, 3, 3), False, False, {"stride": (2, 2), "pad": (1, 1),
                                                "group": 4, "deformable_group": 4}, 1.5),
    ((2, 2, 4, 4), (2, 2, 1, 1), True, True, {}, 2.0),  # 1x1: each pixel moved
]
IDS = [f"{x}-{w}-{'mask' if m else 'nomask'}-{'bias' if b else 'nobias'}-{kw}"
       for x, w, m, b, kw, _ in CONFIGS]


def draw(config, seed=0):
    """x, weight, offset, (mask), (bias) for a configuration, float64."""
    x_shape, w_shape, with_mask, with_bias, kwargs, scale = config
    rng = np.random.default_rng(seed)
    n, _, height, width = x_shape
    dg, k = kwargs.get("deformable_group", 1), w_shape[2] * w_shape[3]
    arrays = [rng.normal(size=x_shape), rng.normal(size=w_shape),
              scale * rng.normal(size=(n, dg * 2 * k, height, width))]
    if with_mask:
        arrays.append(rng.uniform(size=(n, dg * k, height, width)))
    if with_bias:
        arrays.append(rng.normal(size=(w_shape[0],)))
    return arrays


def build(config):
    """(variables...) -> F.deformable_convolution for the configuration."""
    _, _, with_mask, with_bias, kwargs, _ = config

    def call(x, w, offset, *rest):
        mask = rest[0] if with_mask else None
        bias = rest[-1] if with_bias else None
        return F.deformable_convolution(x, w, offset, mask, bias, **kwargs)

    return call


def reference(config):
    _, _, with_mask, with_bias, kwargs, _ = config

    def call(x, w, offset, *rest):
        mask = rest[0] if with_mask else None
        bias = rest[-1] if with_bias else None
        return deformable_reference(x, w, offset, mask, bias, **kwargs)

    return call


def _reads_of_ones(config):
    """What each bilinear read of the configuration gives on an image of ones: 1 inside
    x, less where corners fall outside, 0 a pixel or more outside."""
    x_shape, w_shape, _, _, kwargs, _ = config
    offset = draw(config)[2]
    columns = deformable_reference(np.ones(x_shape[:1] + (1,) + x_shape[2:]),
                                   np.eye(w_shape[2] * w_shape[3]).reshape(
                                       (-1, 1) + w_shape[2:]),
                                   offset[:, :2 * w_shape[2] * w_shape[3]], None, None,
                                   **{k: v for k, v in kwargs.items()
                                      if k in ("pad", "stride", "dilation")})
    return columns.ravel()


def test_the_offsets_put_points_outside():
    """The configurations read outside x: points losing some corners, and (offsets of
    scale 4) points a pixel and more outside, which read 0."""
    for config in CONFIGS:
        reads = _reads_of_ones(config)
        assert np.mean(reads < 1 - 1e-9) > 0.1, config
    assert np.mean(_reads_of_ones(CONFIGS[3]) == 0) > 0.3


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_deformable_forward_and_gradients(config, tmp_path, rng):
    arrays = draw(config)
    module = check_function(build(config), reference(config), arrays, tmp_path, rng,
                            rtol=1e-5, atol=1e-7)
    check_array_api(build(config), arrays, module, tmp_path)


SEPARABLE = [
    ((2, 3, 5, 6), (2, 3, 5, 6), (2, 2, 5, 6)),  # kernels of x's size
    ((1, 2, 5, 5), (1, 2, 4, 3), (1, 3, 4, 3)),  # of the output's size
    ((2, 1, 4, 5), (2, 1, 4, 5), (2, 1, 4, 5)),  # 1 tap each: a product
    ((1, 2, 6, 4), (1, 3, 5, 4), (1, 2, 4, 4)),  # between the two
]


@pytest.mark.parametrize("shapes", SEPARABLE, ids=[str(s) for s in SEPARABLE])
def test_adaptive_separable_forward_and_gradients(shapes, tmp_path, rng):
    arrays = [np.random.default_rng(i).normal(size=s) for i, s in enumerate(shapes)]
    module = check_function(F.adaptive_separable_convolution, separable_reference, arrays,
                            tmp_path, rng)
    check_array_api(F.adaptive_separable_convolution, arrays, module, tmp_path)


def test_the_graph_is_nnabla_s():
    """One DeformableConvolution with nnabla's arguments and inputs (x, weight, offset,
    mask, bias; a 1-D fourth input is the bias, as nnabla's C++ reads it)."""
    x, w = nn.Variable((2, 4, 5, 5)), nn.Variable((6, 2, 3, 3))
    offset, mask, b = nn.Variable((2, 36, 5, 5)), nn.Variable((2, 18, 5, 5)), nn.Variable((6,))
    y = F.deformable_convolution(x, w, offset, mask, b, pad=(1, 1), group=2,
                                 deformable_group=2)
    assert y.shape == (2, 6, 5, 5)
    assert y.parent.info.type_name == "DeformableConvolution"
    assert y.parent.info.args == {"base_axis": 1, "pad": [1, 1], "stride": [1, 1],
                                  "dilation": [1, 1], "group": 2, "deformable_group": 2,
                                  "channel_last": False}
    assert y.parent.inputs == [x, w, offset, mask, b]
    offset1 = nn.Variable((2, 18, 5, 5))
    w1 = nn.Variable((6, 4, 3, 3))
    assert F.deformable_convolution(x, w1, offset1, b).parent.inputs == [x, w1, offset1, b]
    assert F.deformable_convolution(x, w1, offset1, bias=b).parent.inputs == [x, w1, offset1, b]
    z = F.adaptive_separable_convolution(x, nn.Variable((2, 3, 5, 5)), nn.Variable((2, 2, 3, 4)))
    assert z.shape == (2, 4, 3, 4)
    assert z.parent.info.type_name == "AdaptiveSeparableConvolution"
    assert z.parent.info.args == {}


def test_a_bias_as_fourth_input_is_the_bias(tmp_path, rng):
    """F.deformable_convolution(x, w, offset, b) with b 1-D adds b (nnabla's reading)."""
    config = CONFIGS[1]
    x, w, offset, b = draw(config)
    check_function(lambda *v: F.deformable_convolution(*v, pad=(1, 1)),
                   lambda *a: deformable_reference(*a[:3], None, a[3], pad=(1, 1)),
                   [x, w, offset, b], tmp_path, rng)


def test_runtime_forward_and_backward():
    """loss.forward(); loss.backward() give the reference's value and, for every input,
    its central differences (float64 references, float32 Variables)."""
    config = CONFIGS[2]
    arrays = draw(config, seed=5)
    arrays = [a.astype(np.float32).astype(np.float64) for a in arrays]
    leaves = [nn.Variable.from_numpy_array(a.astype(np.float32), need_grad=True)
              for a in arrays]
    cotangent = np.random.default_rng(6).normal(size=(1, 6, 3, 5))
    y = build(config)(*leaves)
    loss = F.sum(y * nn.Variable.from_numpy_array(cotangent.astype(np.float32)))
    loss.forward()
    for leaf in leaves:
        leaf.grad.zero()
    loss.backward()
    np.testing.assert_allclose(y.d, reference(config)(*arrays), rtol=1e-4, atol=1e-5)

    def total(*a):
        return np.sum(reference(config)(*a) * cotangent)

    for i, leaf in enumerate(leaves):
        np.testing.assert_allclose(leaf.g, numeric_gradient(total, arrays, i), rtol=1e-3,
                                   atol=1e-4, err_msg=f"input {i}")
    kv, kh = nn.Variable((1, 4, 3, 6), need_grad=True), nn.Variable((1, 2, 3, 6),
                                                                     need_grad=True)
    x = leaves[0]
    kv.d, kh.d = np.ones(kv.shape), np.full(kh.shape, 0.5)
    z = F.adaptive_separable_convolution(x, kv, kh)
    z.forward()
    np.testing.assert_allclose(z.d, separable_reference(x.d, kv.d, kh.d), rtol=1e-5,
                               atol=1e-5)


def test_only_some_inputs_need_a_gradient():
    """The derivatives whatever needs a gradient (nnabla 1.39's CPU backward drops the
    mask from the others' when the mask needs none, and crashes when the weight or the
    offset needs none): each input's gradient alone equals its part of all of them."""
    config = CONFIGS[0]
    arrays = draw(config, seed=2)
    grads = {}
    for need in [(True,) * 5] + [tuple(i == j for j in range(5)) for i in range(5)]:
        nn.clear_parameters()
        leaves = [nn.Variable.from_numpy_array(a.astype(np.float32), need_grad=g)
                  for a, g in zip(arrays, need, strict=True)]
        loss = F.sum(F.tanh(build(config)(*leaves)))
        loss.forward()
        for leaf in leaves:
            leaf.grad.zero()
        loss.backward()
        grads[need] = [leaf.g.copy() for leaf in leaves]
    for i in range(5):
        alone = grads[tuple(i == j for j in range(5))][i]
        np.testing.assert_allclose(alone, grads[(True,) * 5][i], rtol=1e-6, atol=1e-7)
        assert np.abs(alone).max() > 0


# --- PF.deformable_convolution --------------------------------------------------------------

def test_pf_deformable_convolution_parameters_are_nnabla_s():
    """deformable_conv/W (outmaps, C/group, *kernel) uniform within nnabla's Glorot limit
    for (C, outmaps, kernel), deformable_conv/b (outmaps,) zeros; the output is
    F.deformable_convolution's with them; with_bias=False makes no b; a configuration F
    refuses is refused before any parameter is made."""
    nn.clear_parameters()
    arrays = draw(CONFIGS[2])
    x, offset, mask = (nn.Variable.from_numpy_array(a) for a in (arrays[0], arrays[2],
                                                                   arrays[3]))
    kwargs = CONFIGS[2][4]
    y = PF.deformable_convolution(x, 6, (3, 2), offset, mask, rng=np.random.RandomState(0),
                                  **kwargs)
    params = nn.get_parameters()
    assert {k: v.shape for k, v in params.items()} == {"deformable_conv/W": (6, 2, 3, 2),
                                                       "deformable_conv/b": (6,)}
    low, limit = calc_uniform_lim_glorot(4, 6, (3, 2))
    assert low == -limit
    w = params["deformable_conv/W"].d
    assert np.all(np.abs(w) <= limit) and np.abs(w).max() > limit / 2
    np.testing.assert_array_equal(params["deformable_conv/b"].d, 0)
    y.forward()
    np.testing.assert_allclose(y.d, deformable_reference(x.d, w, offset.d, mask.d, None,
                                                         **kwargs), rtol=1e-5, atol=1e-5)
    nn.clear_parameters()
    PF.deformable_convolution(x, 4, (3, 2), offset, with_bias=False, pad=(1, 0),
                              stride=(2, 1), dilation=(1, 2), deformable_group=2,
                              name="plain")
    assert list(nn.get_parameters()) == ["plain/deformable_conv/W"]
    nn.clear_parameters()
    with pytest.raises(ValueError, match=r"channel_last=True is refused by nnabla 1.39"):
        PF.deformable_convolution(x, 6, (3, 2), offset, channel_last=True)
    with pytest.raises(ValueError, match=r"the offset must be of shape \(1, 12, 6, 7\)"):
        PF.deformable_convolution(x, 6, (3, 2), offset)
    assert nn.get_parameters() == {}


# --- bad input ------------------------------------------------------------------------------

def _v(*shape):
    return nn.Variable(shape)


@pytest.mark.parametrize("call,error,message", [
    (lambda: F.deformable_convolution(_v(2, 4, 5, 5), _v(4, 4, 3, 3), _v(2, 18, 5, 5),
                                      channel_last=True),
     ValueError, r"channel_last=True is refused by nnabla 1.39 \(its CPU and CUDA forward"),
    (lambda: F.deformable_convolution(_v(4, 5, 5), _v(4, 4, 3, 3), _v(1, 18, 5, 5),
                                      base_axis=0),
     ValueError, r"base_axis=0: only 1 \(x \(N, C, H, W\)\) has a meaning in nnabla 1.39"),
    (lambda: F.deformable_convolution(_v(1, 2, 4, 4, 4), _v(2, 2, 3, 3, 3),
                                      _v(1, 54, 4, 4, 4)),
     ValueError, r"x must be 4-D \(N, C, H, W\): nnabla 1.39 runs 2-D deformable"),
    (lambda: F.deformable_convolution(_v(2, 4, 5, 5), _v(4, 4, 3, 3), _v(2, 18, 4, 5)),
     ValueError, r"the offset must be of shape \(2, 18, 5, 5\)"),
    (lambda: F.deformable_convolution(_v(2, 4, 5, 5), _v(4, 4, 3, 3), _v(2, 18, 5, 5),
                                      deformable_group=2),
     ValueError, r"the offset must be of shape \(2, 36, 5, 5\)"),
    (lambda: F.deformable_convolution(_v(2, 4, 5, 5), _v(4, 4, 3, 3), _v(2, 18, 5, 5),
                                      _v(2, 18, 5, 5)),
     ValueError, r"the mask must be of shape \(2, 9, 5, 5\)"),
    (lambda: F.deformable_convolution(_v(2, 4, 5, 5), _v(4, 4, 3, 3), _v(2, 18, 5, 5),
                                      _v(2, 9, 5, 5), pad=(2, 2), dilation=(2, 2)),
     ValueError, r"pad=\(2, 2\) puts the kernel's centre in the padding"),
    (lambda: F.deformable_convolution(_v(2, 4, 5, 5), _v(4, 4, 3, 3), _v(2, 18, 5, 5),
                                      pad=(2, 1)),
     ValueError, r"spatial axis 0: the output's last pixel 6 reads the offsets at 6"),
    (lambda: F.deformable_convolution(_v(2, 4, 5, 5), _v(6, 2, 3, 3), _v(2, 54, 5, 5),
                                      group=2, deformable_group=3),
     ValueError, r"deformable_group=3 must divide both the input channels \(4\)"),
    (lambda: F.deformable_convolution(_v(2, 4, 5, 5), _v(6, 4, 3, 3), _v(2, 36, 5, 5),
                                      deformable_group=4),
     ValueError, r"deformable_group=4 must divide both the input channels \(4\) and the "
                 r"output channels \(6\)"),
    (lambda: F.deformable_convolution(_v(2, 4, 5, 5), _v(4, 4, 3, 3), _v(2, 18, 5, 5),
                                      group=3),
     ValueError, r"group=3 must divide both"),
    (lambda: F.deformable_convolution(_v(2, 4, 5, 5), _v(4, 2, 3, 3), _v(2, 18, 5, 5)),
     ValueError, r"the weight's axis 1 must be 4, not 2"),
    (lambda: F.deformable_convolution(_v(2, 4, 5, 5), _v(4, 4, 3, 3), _v(2, 18, 5, 5),
                                      bias=_v(3)),
     ValueError, r"the bias of shape \(3,\) must have shape \(4,\)"),
    (lambda: F.deformable_convolution(_v(2, 4, 2, 2), _v(4, 4, 3, 3), _v(2, 18, 2, 2)),
     ValueError, r"gives an output of length 0"),
    (lambda: F.deformable_convolution(_v(2, 4, 5, 5), _v(4, 4, 3, 3), _v(2, 18, 5, 5),
                                      stride=(0, 1)),
     ValueError, r"stride=\(0, 1\) must hold integers of at least 1"),
    (lambda: F.deformable_convolution(_v(2, 4, 5, 5), _v(4, 4, 3, 3), _v(2, 18, 5, 5),
                                      deformable_group=1.0),
     TypeError, r"deformable_group must be an int"),
    (lambda: F.deformable_convolution(_v(2, 4, 5, 5), _v(4, 4, 3, 3), np.zeros((2, 18, 5, 5))),
     TypeError, r"F.deformable_convolution: input 2 must be a Variable"),
    (lambda: F.adaptive_separable_convolution(_v(2, 3, 5), _v(2, 2, 4), _v(2, 2, 4)),
     ValueError, r"all three must be 4-D"),
    (lambda: F.adaptive_separable_convolution(_v(2, 3, 5, 5), _v(1, 2, 5, 5), _v(2, 2, 5, 5)),
     ValueError, r"the batch sizes differ"),
    (lambda: F.adaptive_separable_convolution(_v(2, 3, 5, 5), _v(2, 6, 5, 5), _v(2, 2, 5, 5)),
     ValueError, r"the output would be 0x4"),
    (lambda: F.adaptive_separable_convolution(_v(2, 3, 5, 5), _v(2, 2, 3, 5), _v(2, 2, 5, 5)),
     ValueError, r"the vertical kernel's height 3 must be in \[4, 5\]"),
    (lambda: F.adaptive_separable_convolution(_v(2, 3, 5, 5), _v(2, 2, 5, 5), _v(2, 2, 5, 6)),
     ValueError, r"the horizontal kernel's width 6 must be in \[4, 5\]"),
    (lambda: F.adaptive_separable_convolution(_v(2, 3, 5, 5), _v(2, 2, 5, 3), _v(2, 2, 5, 4)),
     ValueError, r"at least 4x4 \(the output's size\) in its last two axes; nnabla does not "
                 r"check"),
])
def test_bad_input_is_refused_when_the_graph_is_built(call, error, message):
    with pytest.raises(error, match=message):
        call()


# --- against nnabla 1.39 --------------------------------------------------------------------

NNABLA_SCRIPT = """
import json, sys
import numpy as np
import nnabla as nn
import nnabla.functions as F
import nnabla.parametric_functions as PF

for i, (text, shapes) in enumerate(json.loads(sys.argv[1])):
    rng = np.random.RandomState(i)
    inputs = {k: rng.randn(*shape).astype(np.float32) for k, shape in shapes.items()}
    leaves = {k: nn.Variable.from_numpy_array(v, need_grad=True) for k, v in inputs.items()}
    nn.clear_parameters()
    out = eval(text, {"F": F, "PF": PF, "np": np, **leaves})
    g = rng.randn(*out.shape).astype(np.float32)
    out.forward()
    for v in leaves.values():
        v.grad.zero()
    out.backward(g)
    params = {k: v.d.tolist() for k, v in nn.get_parameters().items()}
    print(json.dumps({"inputs": {k: v.tolist() for k, v in inputs.items()}, "g": g.tolist(),
                      "out": out.d.tolist(), "params": params,
                      "grads": {k: v.g.tolist() for k, v in leaves.items()}}))
"""


def _nnabla_expression(config) -> tuple[str, dict]:
    """nnabla's call for a configuration (the offsets scaled in the graph, both sides) and
    its inputs' shapes."""
    x_shape, w_shape, with_mask, with_bias, kwargs, scale = config
    n, _, height, width = x_shape
    dg, k = kwargs.get("deformable_group", 1), w_shape[2] * w_shape[3]
    shapes = {"x": x_shape, "w": w_shape, "off": (n, dg * 2 * k, height, width)}
    mask = bias = "None"
    if with_mask:
        shapes["m"], mask = (n, dg * k, height, width), "m"
    if with_bias:
        shapes["b"], bias = (w_shape[0],), "b"
    text = (f"F.deformable_convolution(x, w, off * {scale}, {mask}, {bias}, "
            f"{', '.join(f'{key}={value!r}' for key, value in kwargs.items())})")
    return text, {key: list(shape) for key, shape in shapes.items()}


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_against_nnabla(tmp_path):
    """The outputs and every input's gradient equal nnabla 1.39's (every input needing a
    gradient: the only way nnabla's CPU backward gives them all); PF's initial weight
    for one RandomState is nnabla's, bit for bit."""
    expressions = [_nnabla_expression(config) for config in CONFIGS]
    expressions += [("F.adaptive_separable_convolution(x, kv, kh)",
                     {"x": list(x), "kv": list(kv), "kh": list(kh)}) for x, kv, kh in SEPARABLE]
    expressions.append((
        "PF.deformable_convolution(x, 6, (3, 2), off, m, pad=(1, 0), stride=(2, 1), "
        "dilation=(1, 2), group=2, deformable_group=2, rng=np.random.RandomState(3))",
        {"x": [1, 4, 6, 7], "off": [1, 24, 6, 7], "m": [1, 12, 6, 7]}))
    rows = nnabla_rows(NNABLA, NNABLA_SCRIPT, expressions, tmp_path)
    assert len(rows) == len(expressions)
    for (text, _), row in zip(expressions, rows, strict=True):
        out, leaves = replay_row(text, row, namespace={"PF": PF})
        np.testing.assert_allclose(out.d, row["out"], rtol=1e-4, atol=1e-5, err_msg=text)
        for key, grad in row["grads"].items():
            got, want = leaves[key].g, np.array(grad)
            if text.startswith("F.adaptive") and key != "x":  # nnabla writes only where
                rows_, cols = out.shape[2:]  # the kernels are read, at the output's size
                got, want = got[:, :, :rows_, :cols], want[:, :, :rows_, :cols]
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4,
                                       err_msg=f"{text}: d{key}")
        for key, value in row["params"].items():
            np.testing.assert_array_equal(nn.get_parameters()[key].d, np.float32(value))
