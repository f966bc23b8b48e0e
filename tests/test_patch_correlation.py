"""F.patch_correlation (FlowNetC's correlation layer).

- forward against the definition (one loop per output element, float64), gradients of
  x1 and x2 against central differences, through a compiled module and its array API
  twin on array-api-strict arrays, in several configurations (patch, shift, steps,
  padding, one channel, channel_last);
- the graph is nnabla's: transposes (a reshape for one channel) around nnabla's
  (N, H, W, C) PatchCorrelation, with its arguments;
- through the runtime, and against nnabla 1.39's numbers where it is installed;
- bad input refused when the graph is built.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from gradcheck import check_array_api, check_function
from nnabla_run import nnabla_rows, replay_row

import symcompile as nn
import symcompile.functions as F

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
DEFAULTS = {"patch": (1, 1), "shift": (0, 0), "patch_step": (1, 1), "shift_step": (1, 1),
            "padding": (0, 0, 0, 0)}


def reference(x1, x2, patch, shift, patch_step, shift_step, padding, channel_last=False):
    """O[n, i, j, ho, wo] = sum over c and the patch of x1 * x2 shifted by
    (ys[i], xs[j]), x2 read as 0 outside, both inputs zero-padded; one element at a time."""
    if channel_last:
        x1, x2 = np.moveaxis(x1, 3, 1), np.moveaxis(x2, 3, 1)
    top, bottom, left, right = padding
    a, b = (np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right))) for x in (x1, x2))
    height, width = a.shape[2:]
    ys = range(-shift[0], shift[0] + 1, shift_step[0])
    xs = range(-shift[1], shift[1] + 1, shift_step[1])
    out_h = (height - patch[0]) // patch_step[0] + 1
    out_w = (width - patch[1]) // patch_step[1] + 1
    out = np.zeros((a.shape[0], len(ys), len(xs), out_h, out_w))
    for i, dy in enumerate(ys):
        for j, dx in enumerate(xs):
            for p in range(out_h):
                for q in range(out_w):
                    for kh in range(patch[0]):
                        for kw in range(patch[1]):
                            y, x = p * patch_step[0] + kh, q * patch_step[1] + kw
                            if 0 <= y + dy < height and 0 <= x + dx < width:
                                products = a[:, :, y, x] * b[:, :, y + dy, x + dx]
                                out[:, i, j, p, q] += products.sum(axis=1)
    return np.moveaxis(out, (1, 2), (3, 4)) if channel_last else out


CONFIGS = [
    ((2, 3, 4, 5), {}),
    ((2, 3, 4, 5), {"shift": (1, 1)}),
    ((1, 2, 5, 6), {"patch": (2, 3), "shift": (1, 2), "patch_step": (2, 1),
                    "shift_step": (1, 2), "padding": (0, 1, 2, 1)}),
    ((1, 2, 4, 4), {"patch": 2, "shift": 2, "shift_step": 3, "padding": 1}),
    ((2, 1, 3, 5), {"shift": (1, 0), "padding": (1, 2)}),  # one channel: a reshape
    ((1, 4, 5, 2), {"patch": (2, 2), "shift": (1, 1), "channel_last": True}),
]
IDS = [str(kw) for _, kw in CONFIGS]


def _full(kwargs):
    """kwargs with nnabla's expansions of ints and 2-tuples of padding."""
    full = dict(DEFAULTS)
    for name, value in kwargs.items():
        if name == "padding" and isinstance(value, int):
            value = (value,) * 4
        elif name == "padding" and len(value) == 2:
            value = (value[0], value[0], value[1], value[1])
        elif isinstance(value, int) and name != "channel_last":
            value = (value, value)
        full[name] = value
    return full


@pytest.mark.parametrize("shape,kwargs", CONFIGS, ids=IDS)
def test_forward_and_gradients(shape, kwargs, tmp_path, rng):
    arrays = [np.random.default_rng(0).normal(size=shape),
              np.random.default_rng(1).normal(size=shape)]

    def build(a, b):
        return F.patch_correlation(a, b, **kwargs)

    module = check_function(build, lambda a, b: reference(a, b, **_full(kwargs)), arrays,
                            tmp_path, rng)
    check_array_api(build, arrays, module, tmp_path)


def test_the_graph_is_nnabla_s():
    """Transposes around nnabla's NHWC PatchCorrelation with its arguments; one channel
    is reshaped instead of transposed, as nnabla does."""
    x = nn.Variable((2, 3, 5, 6))
    y = F.patch_correlation(x, x, patch=2, shift=(1, 2), padding=(1, 0))
    assert y.shape == (2, 3, 5, 6, 5)
    assert y.parent.info.type_name == "Transpose"
    assert y.parent.info.args == {"axes": [0, 3, 4, 1, 2]}
    core = y.parent.inputs[0].parent
    assert core.info.type_name == "PatchCorrelation"
    assert core.info.args == {"patch": [2, 2], "shift": [1, 2], "patch_step": [1, 1],
                              "shift_step": [1, 1], "padding": [1, 1, 0, 0]}
    assert core.inputs[0].parent.info.type_name == "Transpose"
    one = nn.Variable((2, 1, 5, 6))
    assert F.patch_correlation(one, one).parent.inputs[0].parent.inputs[0].parent \
        .info.type_name == "Reshape"
    nhwc = F.patch_correlation(nn.Variable((2, 5, 6, 3)), nn.Variable((2, 5, 6, 3)),
                               shift=1, channel_last=True)
    assert nhwc.shape == (2, 5, 6, 3, 3) and nhwc.parent.info.type_name == "PatchCorrelation"


def test_runtime_forward_and_backward():
    """loss.forward(); loss.backward() give the definition and its gradients (checked by
    differences of the compiled module above): here, against the definition and the
    gradient of x1 written out, sum over shifts of dy spread over the patch times x2."""
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(1, 2, 4, 4)), rng.normal(size=(1, 2, 4, 4))
    x1 = nn.Variable.from_numpy_array(a, need_grad=True)
    x2 = nn.Variable.from_numpy_array(b, need_grad=True)
    y = F.patch_correlation(x1, x2, shift=1)
    loss = F.sum(y)
    loss.forward()
    x1.grad.zero()
    x2.grad.zero()
    loss.backward()
    np.testing.assert_allclose(y.d, reference(a, b, **_full({"shift": 1})), rtol=1e-5,
                               atol=1e-5)
    expected = np.zeros_like(a)  # d/dx1 of the sum: x2 summed over the offsets it meets
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            shifted = np.zeros_like(b)
            rows, cols = slice(max(0, -dy), min(4, 4 - dy)), slice(max(0, -dx), min(4, 4 - dx))
            shifted[:, :, rows, cols] = b[:, :, rows.start + dy:rows.stop + dy,
                                          cols.start + dx:cols.stop + dx]
            expected += shifted
    np.testing.assert_allclose(x1.g, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("call,error,message", [
    (lambda: F.patch_correlation(nn.Variable((2, 3, 4)), nn.Variable((2, 3, 4))), ValueError,
     r"F.patch_correlation: x1 of shape \(2, 3, 4\) and x2 of shape \(2, 3, 4\) must both "
     r"have 4 dimensions"),
    (lambda: F.patch_correlation(nn.Variable((2, 3, 4, 4)), nn.Variable((2, 3, 4, 5))),
     ValueError, r"must have the same shape"),
    (lambda: F.patch_correlation(nn.Variable((1, 1, 4, 4)), nn.Variable((1, 1, 4, 4)),
                                 patch=(5, 1)),
     ValueError, r"the patch \(5, 1\) is larger than the padded input \(4, 4\) along "
                 r"spatial axis 0"),
    (lambda: F.patch_correlation(nn.Variable((1, 1, 4, 4)), nn.Variable((1, 1, 4, 4)),
                                 shift_step=0),
     ValueError, r"shift_step=\(0, 0\) must be 2 ints of at least 1"),
    (lambda: F.patch_correlation(nn.Variable((1, 1, 4, 4)), nn.Variable((1, 1, 4, 4)),
                                 padding=(1, 2, 3)),
     ValueError, r"padding=\(1, 2, 3\) must be 4 ints of at least 0"),
    (lambda: F.patch_correlation(nn.Variable((1, 1, 4, 4)), nn.Variable((1, 1, 4, 4)),
                                 shift=1.5),
     TypeError, r"F.patch_correlation: shift must be a tuple of ints"),
    (lambda: F.patch_correlation(np.zeros((1, 1, 4, 4)), nn.Variable((1, 1, 4, 4))),
     TypeError, r"F.patch_correlation: input 0 must be a Variable"),
])
def test_bad_input_is_refused_when_the_graph_is_built(call, error, message):
    with pytest.raises(error, match=message):
        call()


NNABLA_SCRIPT = """
import json, sys
import numpy as np
import nnabla as nn
import nnabla.functions as F

for i, (text, shape) in enumerate(json.loads(sys.argv[1])):
    rng = np.random.RandomState(i)
    inputs = {k: rng.randn(*shape).astype(np.float32) for k in ("a", "b")}
    leaves = {k: nn.Variable.from_numpy_array(v, need_grad=True) for k, v in inputs.items()}
    out = eval(text, {"F": F, **leaves})
    g = rng.randn(*out.shape).astype(np.float32)
    out.forward()
    for v in leaves.values():
        v.grad.zero()
    out.backward(g)
    print(json.dumps({"inputs": {k: v.tolist() for k, v in inputs.items()}, "g": g.tolist(),
                      "out": out.d.tolist(),
                      "grads": {k: v.g.tolist() for k, v in leaves.items()}}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_against_nnabla(tmp_path):
    """The output and both inputs' gradients equal nnabla 1.39's (channels first: nnabla's
    CPU implementation runs channel_last too, on its base function)."""
    expressions = [(f"F.patch_correlation(a, b, **{kwargs!r})", list(shape))
                   for shape, kwargs in CONFIGS]
    rows = nnabla_rows(NNABLA, NNABLA_SCRIPT, expressions, tmp_path)
    assert len(rows) == len(expressions)
    for (text, _), row in zip(expressions, rows, strict=True):
        out, leaves = replay_row(text, row)
        np.testing.assert_allclose(out.d, row["out"], rtol=1e-5, atol=1e-5, err_msg=text)
        for k, grad in row["grads"].items():
            np.testing.assert_allclose(leaves[k].g, grad, rtol=1e-5, atol=1e-5,
                                       err_msg=f"{text}: d{k}")
