"""``channel_last=True`` (NHWC): convolution, deconvolution, the poolings, unpooling,
interpolate and their PF layers.

nnabla builds these graphs on every device but runs them only on CUDA (its CPU
implementation raises not_implemented); symcompile runs them everywhere, channels first
between transposes (`ops.layout`). So the references here are the channels-first
references of the other test modules, applied to the inputs with their channels moved
first and the output's moved back:

- forward against those references and gradients to every input against central
  finite differences (float64), for every configuration of the channels-first tests
  (padding, strides, dilation, groups, base_axis, output_padding, 1-D to 3-D,
  ignore_border, including_pad), through the generated module; the array API backend's
  numbers on array-api-strict arrays for one configuration of each function;
- PF.convolution and PF.deconvolution create nnabla's weight layouts;
- with SYMCOMPILE_NNABLA_PYTHON set: nnabla 1.39 infers the same output shapes and PF
  parameter shapes, and loads the .nnp file symcompile writes (channel_last recorded).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import test_convolution as conv_tests
import test_deconvolution as deconv_tests
import test_functions_extra as extra_tests
import test_pooling as pool_tests
from gradcheck import check_array_api, check_function
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")


def last(a, axis):
    """`a` with its channel axis `axis` moved last (the NHWC layout)."""
    return np.moveaxis(a, axis, -1)


def first(a, axis):
    """`a` with its last axis moved to `axis` (channels first again)."""
    return np.moveaxis(a, -1, axis)


# --- convolution and deconvolution ------------------------------------------------------

def _convolution_case(x_shape, w_shape, kwargs, bias_size):
    base = kwargs.get("base_axis", 1)
    rng = np.random.default_rng(0)
    arrays = [last(rng.normal(size=x_shape), base), last(rng.normal(size=w_shape), 1)]
    if bias_size:
        arrays.append(rng.normal(size=(bias_size,)))
    return arrays, base


CONVOLUTIONS = [(name, x, w, bias, kw) for name, x, w, bias, kw in conv_tests.CONFIGS]


@pytest.mark.parametrize("name,x_shape,w_shape,bias,kwargs", CONVOLUTIONS,
                         ids=[c[0] for c in CONVOLUTIONS])
def test_convolution(name, x_shape, w_shape, bias, kwargs, tmp_path, rng):
    arrays, base = _convolution_case(x_shape, w_shape, kwargs, w_shape[0] if bias else 0)

    def reference(x, w, b=None):
        return last(conv_tests.reference(first(x, base), first(w, 1), b, **kwargs), base)

    def build(*v):
        return F.convolution(*v, channel_last=True, **kwargs)

    module = check_function(build, reference, arrays, tmp_path, rng)
    if name == CONVOLUTIONS[2][0]:  # (dilation and groups)
        check_array_api(build, arrays, module, tmp_path)


DECONVOLUTIONS = deconv_tests.DECONVOLUTIONS


@pytest.mark.parametrize("name,x_shape,w_shape,kwargs", DECONVOLUTIONS,
                         ids=[c[0] for c in DECONVOLUTIONS])
def test_deconvolution(name, x_shape, w_shape, kwargs, tmp_path, rng):
    kwargs = dict(kwargs)
    bias = kwargs.pop("bias", False)
    arrays, base = _convolution_case(x_shape, w_shape, kwargs,
                                     w_shape[1] * kwargs.get("group", 1) if bias else 0)

    def reference(x, w, b=None):
        return last(deconv_tests.deconvolution_reference(first(x, 1), first(w, 1), b,
                                                               **kwargs), 1)

    def build(*v):
        return F.deconvolution(*v, channel_last=True, **kwargs)

    module = check_function(build, reference, arrays, tmp_path, rng)
    if name == DECONVOLUTIONS[1][0]:  # (stride, pad and bias)
        check_array_api(build, arrays, module, tmp_path)


# --- pooling, unpooling, interpolate ------------------------------------------------------

POOLINGS = [c for c in pool_tests.CONFIGS if len(c[2]) > len(c[3]["kernel"])]


@pytest.mark.parametrize("name,kind,x_shape,kwargs", POOLINGS, ids=[c[0] for c in POOLINGS])
def test_pooling(name, kind, x_shape, kwargs, tmp_path, rng):
    """Pooled over the len(kernel) axes before the channels (the channels-first
    configurations with their channel axis, the one before the pooled axes, moved last)."""
    channels = len(x_shape) - len(kwargs["kernel"]) - 1
    x = last(np.random.default_rng(0).normal(size=x_shape), channels)

    def reference(a):
        return last(pool_tests.reference(first(a, channels), kind, **kwargs), channels)

    def build(v):
        return pool_tests.FUNCTIONS[kind](v, channel_last=True, **kwargs)

    module = check_function(build, reference, [x], tmp_path, rng)
    if name in ("max 2-D overlapping pad", "average excluding pad"):
        check_array_api(build, [x], module, tmp_path)


@pytest.mark.parametrize("shape,kernel", [((2, 3, 4), (2,)), ((2, 3, 2, 2), (1, 3)),
                                          ((2, 2, 3, 2, 2), (2, 1, 2))])
def test_unpooling(shape, kernel, tmp_path, rng):
    def reference(a):
        for axis, k in enumerate(kernel, start=a.ndim - 1 - len(kernel)):
            a = np.repeat(a, k, axis=axis)
        return a

    check_function(lambda v: F.unpooling(v, kernel, channel_last=True), reference,
                   [np.random.default_rng(0).normal(size=shape)], tmp_path, rng)


@pytest.mark.parametrize("sizes,kwargs", [((5, 7), {}), ((3,), {"align_corners": True}),
                                          ((6, 2), {"mode": "nearest", "half_pixel": True})])
def test_interpolate(sizes, kwargs, tmp_path, rng):
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 2))
    check_function(
        lambda v: F.interpolate(v, output_size=sizes, channel_last=True, **kwargs),
        lambda a: extra_tests.np_interpolate(a, sizes, channel_last=True, **kwargs),
        [x], tmp_path, rng)


def test_a_channels_last_network_trains_as_its_channels_first_twin(tmp_path):
    """PF.convolution, batch normalization over the last axis, max pooling and
    PF.deconvolution in NHWC give the NCHW network's loss and gradients when the weights
    are the same numbers laid out as nnabla lays them out."""
    rng = np.random.default_rng(3)
    x_nchw = rng.normal(size=(2, 3, 6, 6)).astype(np.float32)

    def network(x, channel_last):
        axis = 3 if channel_last else 1
        h = PF.convolution(x, 4, (3, 3), pad=(1, 1), channel_last=channel_last, name="c1")
        h = F.relu(PF.batch_normalization(h, axes=[axis], name="bn"))
        h = F.max_pooling(h, (2, 2), channel_last=channel_last)
        h = PF.deconvolution(h, 2, (2, 2), stride=(2, 2), channel_last=channel_last,
                             name="d1")
        return F.mean(F.squared_error(h, F.constant(0.5, h.shape)))

    losses, grads = [], []
    for channel_last in (False, True):
        nn.clear_parameters()
        x = nn.Variable.from_numpy_array(last(x_nchw, 1) if channel_last else x_nchw)
        loss = network(x, channel_last)
        params = nn.get_parameters()
        if not channel_last:
            weights = {k: v.d.copy() for k, v in params.items()}
        else:  # the same weights in nnabla's NHWC layouts
            for key, var in params.items():
                var.d = last(weights[key], 1) if var.ndim == 4 else weights[key].reshape(
                    var.shape)
        loss.forward()
        for var in params.values():
            var.grad.zero()
        loss.backward()
        losses.append(float(loss.d))
        grads.append({k: (first(v.g, 1) if v.ndim == 4 and channel_last else v.g).reshape(
            weights[k].shape) for k, v in params.items()})
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for key in grads[0]:
        np.testing.assert_allclose(grads[1][key], grads[0][key], rtol=1e-4, atol=1e-6,
                                   err_msg=key)


def test_layers_create_nnablas_weight_layouts():
    x = nn.Variable((2, 5, 6, 4))
    y = PF.convolution(x, 6, (3, 2), group=2, channel_last=True, name="conv")
    assert y.shape == (2, 3, 5, 6)
    assert nn.get_parameters()["conv/conv/W"].shape == (6, 3, 2, 2)  # (O, *kernel, C/group)
    z = PF.deconvolution(x, 6, (3, 2), group=2, channel_last=True, name="deconv")
    assert z.shape == (2, 7, 7, 6)
    assert nn.get_parameters()["deconv/deconv/W"].shape == (4, 3, 2, 3)  # (C, *kernel, O/g)


def test_a_written_network_keeps_channel_last_and_reads_back(tmp_path):
    from symcompile.utils.nnp_graph import NnpLoader

    x, y, path = _nhwc_file(tmp_path)
    x.d = np.random.default_rng(0).normal(size=x.shape)
    y.forward()
    net = NnpLoader(str(path)).get_network("net", batch_size=2)
    assert [f.args.get("channel_last") for f in _functions(net.outputs["y"])] == [True, True]
    net.inputs["x"].d = x.d
    net.outputs["y"].forward()
    np.testing.assert_allclose(net.outputs["y"].d, y.d, rtol=1e-6)


def _nhwc_file(tmp_path):
    """An NHWC convolution and pooling written to nhwc.nnp: (x, y, the file)."""
    pytest.importorskip("google.protobuf")
    from symcompile.utils import save

    x = nn.Variable((2, 6, 6, 3))
    y = F.average_pooling(PF.convolution(x, 4, (3, 3), channel_last=True), (2, 2),
                          channel_last=True)
    path = tmp_path / "nhwc.nnp"
    save.save(path, {"networks": [{"name": "net", "batch_size": 2, "outputs": {"y": y},
                                   "names": {"x": x}}],
                     "executors": [{"name": "runtime", "network": "net"}]})
    return x, y, path


def _functions(var) -> list:
    out = []
    while var.parent is not None:
        out.append(var.parent)
        var = var.parent.inputs[0]
    return out


# --- nnabla 1.39 ---------------------------------------------------------------------------

_NNABLA_SHAPES = r"""
import json, sys
import nnabla as nn
import nnabla.functions as F
import nnabla.parametric_functions as PF
from nnabla.utils.nnp_graph import NnpLoader
args = json.loads(sys.argv[1])
for case in args["calls"]:
    nn.clear_parameters()
    x = nn.Variable(case["x"])
    w = nn.Variable(case["w"]) if case.get("w") else None
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in case["kwargs"].items()}
    if case["f"] in ("convolution", "deconvolution"):
        y = getattr(F, case["f"])(x, w, channel_last=True, **kw)
    elif case["f"].startswith("PF."):
        y = getattr(PF, case["f"][3:])(x, channel_last=True, **kw)
    else:
        y = getattr(F, case["f"])(x, channel_last=True, **kw)
    print(json.dumps({"shape": list(y.shape), "params": {
        k: list(v.shape) for k, v in nn.get_parameters(grad_only=False).items()}}))
net = NnpLoader(args["nnp"]).get_network("net", batch_size=2)
import zipfile
from google.protobuf import text_format
from nnabla.utils import nnabla_pb2
proto = text_format.Merge(zipfile.ZipFile(args["nnp"]).read("network.nntxt").decode(),
                          nnabla_pb2.NNablaProtoBuf())
functions = proto.network[0].function
print(json.dumps({"nnp": list(net.outputs["y"].shape), "types": [f.type for f in functions],
                  "channel_last": [getattr(f, f.WhichOneof("parameter")).channel_last
                                   for f in functions]}))
"""


def _calls():
    calls = []
    for _, x, w, _bias, kw in CONVOLUTIONS:
        base = kw.get("base_axis", 1)
        calls.append(("convolution", _moved(x, base), _moved(w, 1), kw))
    for _, x, w, kw in DECONVOLUTIONS:
        kw = {k: v for k, v in kw.items() if k != "bias"}
        calls.append(("deconvolution", _moved(x, 1), _moved(w, 1), kw))
    for _, kind, x, kw in POOLINGS:
        calls.append((f"{kind}_pooling", _moved(x, len(x) - len(kw["kernel"]) - 1), None, kw))
    calls += [("unpooling", (2, 3, 2, 2), None, {"kernel": (1, 3)}),
              ("interpolate", (2, 3, 4, 2), None, {"output_size": (5, 7)}),
              ("PF.convolution", (2, 5, 6, 4), None, {"outmaps": 6, "kernel": (3, 2),
                                                      "group": 2}),
              ("PF.deconvolution", (2, 5, 6, 4), None, {"outmaps": 6, "kernel": (3, 2),
                                                        "group": 2, "stride": (2, 1)})]
    return calls


def _moved(shape, axis):
    shape = list(shape)
    return tuple(shape[:axis] + shape[axis + 1:] + [shape[axis]])


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set")
def test_nnabla_infers_the_same_shapes_and_loads_the_file(tmp_path):
    calls, expected = [], []
    for f, x, w, kw in _calls():
        nn.clear_parameters()
        xv = nn.Variable(x)
        if f in ("convolution", "deconvolution"):
            y = getattr(F, f)(xv, nn.Variable(w), channel_last=True, **kw)
        elif f.startswith("PF."):
            y = getattr(PF, f[3:])(xv, channel_last=True, **kw)
        else:
            y = getattr(F, f)(xv, channel_last=True, **kw)
        expected.append({"shape": list(y.shape), "params": {
            k: list(v.shape) for k, v in nn.get_parameters(grad_only=False).items()}})
        calls.append({"f": f, "x": list(x), "w": list(w) if w else None, "kwargs": kw})
    nn.clear_parameters()
    _, y, path = _nhwc_file(tmp_path)
    rows = nnabla_rows(NNABLA, _NNABLA_SHAPES, {"calls": calls, "nnp": str(path)}, tmp_path)
    assert rows[:-1] == expected
    assert rows[-1] == {"nnp": list(y.shape), "types": ["Convolution", "AveragePooling"],
                        "channel_last": [True, True]}
