"""Saving and loading nnabla's files beyond the plain round trip.

- Saving a graph whose parameters the registry no longer holds (after
  `nn.clear_parameters()`): nnabla 1.39 writes those leaves as inputs without values
  (checked against nnabla where it is installed); symcompile refuses, naming the leaf and
  the ways out, and writes them as inputs only when the user names them so.
- `NnpLoader.get_network(name, batch_size, callback=NnpNetworkPass)`: nnabla's hooks
  that rewrite the network as it is built (replace an input, bypass or drop functions,
  change arguments, stop at a variable, freeze the parameters), each checked on its own,
  and all of them against nnabla 1.39 on a file nnabla wrote: the same inputs, outputs,
  variables, functions with their arguments, and values.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF
from symcompile.frontend.nnp_network import NnpError
from symcompile.utils import save
from symcompile.utils.nnp_graph import NnpLoader, NnpNetworkPass

pytest.importorskip("google.protobuf")
NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")


def _network(outputs, names, batch_size=2):
    return {"networks": [{"name": "net", "batch_size": batch_size, "outputs": outputs,
                          "names": names}],
            "executors": [{"name": "runtime", "network": "net", "data": ["x"],
                           "output": list(outputs)}]}


# --- saving after nn.clear_parameters() -----------------------------------------------------

def _affine_graph():
    nn.clear_parameters()
    x = nn.Variable((2, 3))
    y = PF.affine(x, 4, name="fc")
    return x, y


def test_saving_after_clear_parameters_is_refused_naming_the_leaf(tmp_path):
    x, y = _affine_graph()
    nn.clear_parameters()
    path = tmp_path / "net.nnp"
    with pytest.raises(NnpError, match=r"network 'net': input 1 of F\.affine \(at .*\), the "
                       r"leaf 'W' of shape \(3, 4\), was made as a parameter but is no "
                       r"longer in the parameter registry .*nn\.clear_parameters\(\).*save "
                       r"before clearing.*set_parameter.*'names'"):
        save.save(path, _network({"y": y}, {"x": x}), parameter_format=".protobuf")
    assert not path.exists()


def test_a_popped_parameter_is_refused_too(tmp_path):
    x, y = _affine_graph()
    nn.parameter.pop_parameter("fc/affine/b")
    with pytest.raises(NnpError, match=r"input 2 of F\.affine .*the leaf 'b' of shape \(4,\)"):
        save.save(tmp_path / "net.nnp", _network({"y": y}, {"x": x}),
                  parameter_format=".protobuf")


def test_a_parameter_registered_again_is_written_as_a_parameter(tmp_path):
    x, y = _affine_graph()
    W, b = (v for v in y.parent.inputs[1:])
    W.d, b.d = np.arange(12).reshape(3, 4), np.arange(4)
    nn.clear_parameters()
    nn.parameter.set_parameter("fc/affine/W", W)
    nn.parameter.set_parameter("fc/affine/b", b)
    path = tmp_path / "net.nnp"
    save.save(path, _network({"y": y}, {"x": x}), parameter_format=".protobuf")
    nn.clear_parameters()
    net = NnpLoader(path).get_network("net")
    assert list(net.inputs) == ["x"]
    np.testing.assert_array_equal(net.variables["fc/affine/W"].d, W.d)


def test_naming_the_leaves_writes_them_as_inputs_as_nnabla_does(tmp_path):
    x, y = _affine_graph()
    W, b = (v for v in y.parent.inputs[1:])
    nn.clear_parameters()
    path = tmp_path / "net.nntxt"
    save.save(path, _network({"y": y}, {"x": x, "W": W, "b": b}))
    net = NnpLoader(path).get_network("net")
    assert list(net.inputs) == ["x", "W", "b"] and list(net.outputs) == ["y"]
    assert nn.get_parameters(grad_only=False) == {}


def test_plain_variables_are_inputs_with_or_without_parameters():
    nn.clear_parameters()
    x, w = nn.Variable((2, 3)), nn.Variable((3, 4))
    y = F.affine(x, w)
    nn.clear_parameters()
    proto = save._proto(_network({"y": y}, {"x": x}), True)
    kinds = {v.name: v.type for v in proto.network[0].variable}
    assert sorted(kinds.values()) == ["Buffer", "Buffer", "Buffer"]


_NNABLA_CLEARED = r"""
import json, sys, zipfile
import nnabla as nn
import nnabla.parametric_functions as PF
from nnabla.utils.save import save
from google.protobuf import text_format
from nnabla.utils import nnabla_pb2
path = json.loads(sys.argv[1])
x = nn.Variable((2, 3))
y = PF.affine(x, 4, name="fc")
nn.clear_parameters()
save(path, {"networks": [{"name": "net", "batch_size": 2, "outputs": {"y": y},
                          "names": {"x": x}}]})
proto = nnabla_pb2.NNablaProtoBuf()
text_format.Merge(zipfile.ZipFile(path).read("network.nntxt").decode(), proto)
print(json.dumps({"kinds": [v.type for v in proto.network[0].variable],
                  "parameters": len(proto.parameter)}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set")
def test_nnabla_writes_cleared_parameters_as_inputs_without_values(tmp_path):
    """What symcompile refuses to do silently: nnabla loses the weights."""
    (row,) = nnabla_rows(NNABLA, _NNABLA_CLEARED, str(tmp_path / "n.nnp"), tmp_path)
    assert row == {"kinds": ["Buffer"] * 4, "parameters": 0}


# --- NnpNetworkPass -------------------------------------------------------------------------

@pytest.fixture
def model(tmp_path):
    """A file with x -> ImageAugmentation -> Convolution -> BatchNormalization -> ReLU ->
    Dropout -> AveragePooling ("feat") -> Affine ("y") -> softmax cross entropy with "t"
    -> Mean ("loss"), as symcompile writes it (nnabla's names)."""
    nn.clear_parameters()
    x, t = nn.Variable((2, 3, 8, 8)), nn.Variable((2, 1))
    h = F.image_augmentation(x, shape=(3, 8, 8), flip_lr=True)
    h = F.relu(PF.batch_normalization(PF.convolution(h, 4, (3, 3), pad=(1, 1), name="conv"),
                                      name="bn"))
    feat = F.average_pooling(F.dropout(h, 0.5), (8, 8))
    y = PF.affine(feat, 5, name="fc")
    loss = F.mean(F.softmax_cross_entropy(y, t))
    path = tmp_path / "model.nnp"
    save.save(path, _network({"loss": loss, "y": y}, {"x": x, "t": t, "feat": feat}),
              parameter_format=".protobuf")
    nn.clear_parameters()
    return NnpLoader(path)


def _types(var) -> list[str]:
    """The function types computing `var`, nearest first (a chain)."""
    types = []
    while var.parent is not None:
        types.append(var.parent.info.type_name)
        var = var.parent.inputs[0]
    return types


def test_without_a_callback_the_network_is_the_file_s(model):
    net = model.get_network("net", batch_size=2)
    assert list(net.inputs) == ["x", "t"] and list(net.outputs) == ["loss"]  # (y is read)
    assert _types(net.variables["y"]) == ["Affine", "AveragePooling", "Dropout", "ReLU",
                                        "BatchNormalization", "Convolution",
                                        "ImageAugmentation"]


def test_set_variable_remove_and_rewire_and_use_up_to_make_an_inference_network(model):
    x = nn.Variable((1, 3, 8, 8))
    callback = NnpNetworkPass()
    callback.remove_and_rewire("@net/ImageAugmentation")
    callback.remove_and_rewire("@net/Dropout")
    callback.set_variable("x", x)
    callback.set_batch_normalization_batch_stat_all(False)
    callback.fix_parameters()
    callback.use_up_to("y")
    net = model.get_network("net", batch_size=1, callback=callback)
    assert net.inputs == {"x": x} and net.inputs["x"] is x and x.name == "x"
    assert list(net.outputs) == ["y"]
    y = net.outputs["y"]
    assert _types(y) == ["Affine", "AveragePooling", "ReLU", "BatchNormalization",
                         "Convolution"]
    assert "@net/Dropout_out" not in net.variables and "loss" not in net.variables
    bn = net.variables["@net/BatchNormalization_out"].parent
    assert bn.info.args["batch_stat"] is False
    params = {k: v for k, v in net.variables.items() if k.startswith(("conv", "bn", "fc"))}
    assert len(params) == 8 and not any(v.need_grad for v in params.values())
    assert all(nn.get_parameters(grad_only=False)[k] is v for k, v in params.items())
    # the values: the same functions written out with the file's parameters
    x.d = np.random.default_rng(0).normal(size=x.shape)
    y.forward()
    p = {k: v.get_unlinked_variable() for k, v in params.items()}
    h = F.convolution(x, p["conv/conv/W"], p["conv/conv/b"], pad=(1, 1))
    h = F.batch_normalization(h, p["bn/bn/beta"], p["bn/bn/gamma"], p["bn/bn/mean"],
                              p["bn/bn/var"], batch_stat=False)
    want = F.affine(F.average_pooling(F.relu(h), (8, 8)), p["fc/affine/W"], p["fc/affine/b"])
    want.forward()
    np.testing.assert_allclose(y.d, want.d, rtol=1e-5, atol=1e-6)


def test_fix_parameters_holds_for_one_network_only(model):
    callback = NnpNetworkPass()
    callback.fix_parameters()
    frozen = model.get_network("net", callback=callback)
    assert not frozen.variables["conv/conv/W"].need_grad
    again = model.get_network("net")
    assert again.variables["conv/conv/W"].need_grad  # the file's, again
    assert not again.variables["bn/bn/mean"].need_grad  # (the file's: False)


def test_drop_function_leaves_its_output_an_input_and_its_input_an_output(model):
    callback = NnpNetworkPass()
    callback.drop_function("@net/Affine")
    net = model.get_network("net", batch_size=2, callback=callback)
    assert list(net.inputs) == ["x", "y", "t"]  # y, no longer computed, now an input
    assert sorted(net.outputs) == ["feat", "loss"]
    assert net.inputs["y"].shape == (2, 5) and net.inputs["y"].parent is None
    assert "fc/affine/W" not in net.variables


def test_use_up_to_stops_after_the_variable(model):
    callback = NnpNetworkPass()
    callback.use_up_to("feat")
    net = model.get_network("net", callback=callback)
    assert list(net.outputs) == ["feat"] and list(net.inputs) == ["x"]


def test_generate_hooks_change_arguments_and_the_shapes_follow(model):
    callback = NnpNetworkPass()
    seen = []

    @callback.on_generate_function_by_name("@net/Convolution")
    def pad_more(f):
        seen.append((f.name, f.proto.type, [v.name for v in f.inputs],
                     [v.name for v in f.outputs], list(f.inputs[0].proto.shape.dim)))
        f.proto.convolution_param.pad.dim[:] = [2, 2]
        return f

    @callback.on_generate_variable("t")
    def label(v):
        seen.append((v.name, list(v.proto.shape.dim), v.need_grad))
        return v

    net = model.get_network("net", batch_size=2, callback=callback)
    assert seen == [("t", [-1, 1], False),
                    ("@net/Convolution", "Convolution",
                     ["@net/ImageAugmentation_out", "conv/conv/W", "conv/conv/b"],
                     ["@net/Convolution_out"], [-1, 3, 8, 8])]
    conv = net.variables["@net/Convolution_out"]
    assert conv.shape == (2, 4, 10, 10) and conv.parent.info.args["pad"] == [2, 2]
    assert net.variables["feat"].shape == (2, 4, 1, 1)


def test_global_average_pooling_forced_and_checked(model):
    callback = NnpNetworkPass()
    callback.check_average_pooling_global("@net/AveragePooling")
    model.get_network("net", callback=callback)  # (8, 8) over 8 x 8: global

    @callback.on_generate_function_by_type("AveragePooling")
    def shrink(f):
        f.proto.average_pooling_param.kernel.dim[:] = [4, 4]
        return f

    with pytest.raises(ValueError, match=r"@net/AveragePooling: the stride configuration "
                       r"of average pooling is not for global pooling: the image shape is "
                       r"\[8, 8\], whereas the pooling window is \[4, 4\]"):
        model.get_network("net", callback=callback)
    forced = NnpNetworkPass()
    forced.on_generate_function_by_type("AveragePooling")(shrink)
    forced.force_average_pooling_global("@net/AveragePooling")
    net = model.get_network("net", callback=forced)
    pool = net.variables["feat"].parent
    assert pool.info.args["kernel"] == [8, 8] and pool.info.args["stride"] == [8, 8]


def test_function_passes_see_the_network_in_forward_order(model):
    callback = NnpNetworkPass()
    seen = []

    @callback.on_function_pass_by_name("@net/ReLU")
    def cut(f, variables, param_scope):
        out, into = f.outputs[0], f.inputs[0]
        seen.append((out.parent.name, into.parent.name, sorted(into.referrers),
                     into.num_referrers, len(variables), sorted(param_scope)[:2]))
        f.disable()

    @callback.on_function_pass_by_type("Dropout")
    def order(f, variables, param_scope):
        seen.append(f.name)

    net = model.get_network("net", batch_size=2, callback=callback)
    assert seen == [("@net/ReLU", "@net/BatchNormalization", ["@net/ReLU"], 1, 19,
                     ["bn/bn/beta", "bn/bn/gamma"]), "@net/Dropout"]
    assert list(net.inputs) == ["x", "@net/ReLU_out", "t"]
    assert list(net.outputs) == ["@net/BatchNormalization_out", "loss"]


def test_rewire_on_makes_every_reader_read_the_rewired_variable(model):
    callback = NnpNetworkPass()

    @callback.on_function_pass_by_name("@net/Dropout")
    def bypass(f, variables, param_scope):
        f.outputs[0].rewire_on(f.inputs[0])  # (no rename: the output's name stays)

    net = model.get_network("net", callback=callback)
    assert "@net/ReLU_out" not in net.variables
    assert net.variables["@net/Dropout_out"].parent.info.type_name == "ReLU"
    assert list(net.inputs) == ["x", "t"]


def test_a_hook_may_stop_at_a_variable_itself(model):
    callback = NnpNetworkPass()

    @callback.on_generate_variable("feat")
    def stop(v):
        v.stop = True
        return v

    net = model.get_network("net", callback=callback)
    assert list(net.outputs) == ["feat"] and list(net.inputs) == ["x"]  # (nnabla's too)


def test_verbose_says_what_the_ready_made_hooks_do(model, capsys):
    callback = NnpNetworkPass(verbose=1)
    callback.remove_and_rewire("@net/Dropout")
    callback.drop_function("@net/SoftmaxCrossEntropy")
    callback.set_batch_normalization_batch_stat_all(False)
    model.get_network("net", callback=callback)
    assert capsys.readouterr().out.splitlines() == [
        "Setting batch_stat=False at @net/BatchNormalization.",
        "Removing @net/Dropout and rewire input=@net/ReLU_out and output=@net/Dropout_out.",
        "Pass: Deleting @net/SoftmaxCrossEntropy."]


def test_mistakes_in_a_callback_are_named(model):
    callback = NnpNetworkPass()
    callback.set_variable("image", nn.Variable((1, 3, 8, 8)))
    with pytest.raises(NnpError, match=r"NnpNetworkPass\.set_variable\('image'\): network "
                       r"'net' has no variable 'image'; its variables are 'x', "):
        model.get_network("net", callback=callback)
    callback = NnpNetworkPass()
    callback.use_up_to("fetaure")
    with pytest.raises(NnpError, match=r"use_up_to: network 'net' has no variable 'fetaure'"):
        model.get_network("net", callback=callback)
    callback = NnpNetworkPass()
    callback.on_generate_function_by_type("ReLU")(lambda f: None)
    with pytest.raises(TypeError, match=r"on_generate_function_by_type\('ReLU'\): the hook "
                       r"returned None; return the PassFunction it was given"):
        model.get_network("net", callback=callback)
    callback = NnpNetworkPass()
    callback.set_variable("feat", nn.Variable((2, 4, 1, 1)))
    with pytest.raises(NnpError, match=r"'feat' .* is given a Variable but a function "
                       r"computes it; set_variable replaces inputs"):
        model.get_network("net", callback=callback)
    with pytest.raises(TypeError, match=r"callback must be an NnpNetworkPass .*got dict"):
        model.get_network("net", callback={})


def test_the_file_s_network_is_left_as_it_was(model):
    callback = NnpNetworkPass()
    callback.remove_and_rewire("@net/Dropout")
    callback.on_generate_function_by_name("@net/Convolution")(_pad_two)
    model.get_network("net", callback=callback)
    net = model.get_network("net")
    assert _types(net.variables["y"])[2] == "Dropout"
    assert net.variables["@net/Convolution_out"].parent.info.args["pad"] == [1, 1]


def _pad_two(f):
    f.proto.convolution_param.pad.dim[:] = [2, 2]
    return f


# --- what the loader keeps of the file -------------------------------------------------------

def test_the_executors_are_kept_as_nnabla_s_loader_keeps_them(model):
    (name, executor), = model.g.executors.items()
    assert name == "runtime" and executor.renaming is None and executor.network_name is None
    assert executor.proto.network_name == "net"
    assert [v.variable_name for v in executor.proto.data_variable] == ["x"]
    assert [v.variable_name for v in executor.proto.output_variable] == ["loss", "y"]
    assert [v.variable_name for v in executor.proto.parameter_variable][:2] == [
        "conv/conv/W", "conv/conv/b"]
    assert model.g.parameter_scope is model._params
    assert model.executors["runtime"] == ("net", ["x"], ["loss", "y"])


_NNABLA_KEEPS = r"""
import json, sys
from nnabla.utils.nnp_graph import NnpLoader
from google.protobuf import text_format
nnp = NnpLoader(json.loads(sys.argv[1]))
print(json.dumps({"loader": sorted(vars(nnp)), "graph": sorted(vars(nnp.g)),
                  "executors": {k: [text_format.MessageToString(e.proto), e.renaming,
                                    e.network_name] for k, e in nnp.g.executors.items()}}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set")
def test_the_executors_are_nnabla_s_and_nnabla_keeps_no_training_sections(tmp_path):
    from google.protobuf import text_format

    pytest.importorskip("h5py")  # (nnabla's parameters)
    path = str(tmp_path / "model.nnp")
    nnabla_rows(NNABLA, _MAKE_MODEL, path, tmp_path)
    (row,) = nnabla_rows(NNABLA, _NNABLA_KEEPS, path, tmp_path)
    # nnabla's loader: no optimizer, monitor or dataset anywhere (nnabla.utils.load has them)
    assert row["loader"] == ["_params", "g", "network_dict"]
    assert row["graph"] == ["executors", "global_variables", "networks", "parameter_scope"]
    ours = NnpLoader(path).g.executors
    assert {k: [text_format.MessageToString(e.proto), e.renaming, e.network_name]
            for k, e in ours.items()} == row["executors"]


# --- against nnabla ---------------------------------------------------------------------------

_MAKE_MODEL = r"""
import json, sys
import nnabla as nn
import nnabla.functions as F
import nnabla.parametric_functions as PF
from nnabla.utils.save import save
path = json.loads(sys.argv[1])
x = nn.Variable((2, 3, 8, 8)); t = nn.Variable((2, 1))
h = F.image_augmentation(x, shape=(3, 8, 8), flip_lr=True)
h = F.relu(PF.batch_normalization(PF.convolution(h, 4, (3, 3), pad=(1, 1), name="conv"),
                                  name="bn"))
feat = F.average_pooling(F.dropout(h, 0.5), (8, 8))
y = PF.affine(feat, 5, name="fc")
loss = F.mean(F.softmax_cross_entropy(y, t))
save(path, {"networks": [{"name": "net", "batch_size": 2, "outputs": {"loss": loss, "y": y},
                          "names": {"x": x, "t": t, "feat": feat}}]})
"""

# Both frameworks run this script: argv[1] is (framework, file, scenarios); each scenario
# is a list of (NnpNetworkPass method, arguments), "pad" meaning a generate hook that sets
# a Convolution's pad, and "input" set_variable("x", a Variable of that shape).
_SCENARIOS_SCRIPT = r"""
import json, sys
import numpy as np
framework, path, scenarios = json.loads(sys.argv[1])
if framework == "nnabla":
    import nnabla as nn
    from nnabla.utils.nnp_graph import NnpLoader, NnpNetworkPass
else:
    import symcompile as nn
    from symcompile.utils.nnp_graph import NnpLoader, NnpNetworkPass

def functions(var):
    # (the graphs here reach no function twice going back from an output)
    found, stack = [], [var]
    while stack:
        f = stack.pop().parent
        if f is not None:
            found.append([f.info.type_name, f.info.args])
            stack.extend(f.inputs)
    return found

for scenario in scenarios:
    nn.clear_parameters()
    loader = NnpLoader(path)
    callback, x, batch = NnpNetworkPass(), None, 2
    for method, args in scenario:
        if method == "pad":
            def pad(f, value=args):
                f.proto.convolution_param.pad.dim[:] = value
                return f
            callback.on_generate_function_by_name("@net/Convolution")(pad)
        elif method == "input":
            x = nn.Variable(args)
            batch = args[0]
            callback.set_variable("x", x)
        else:
            getattr(callback, method)(*args)
    net = loader.get_network("net", batch_size=batch, callback=callback)
    row = {"inputs": {k: list(v.shape) for k, v in net.inputs.items()},
           "outputs": {k: list(v.shape) for k, v in net.outputs.items()},
           "variables": sorted(net.variables),
           "given": x is None or net.inputs.get("x") is x,
           "need_grad": {k: v.need_grad for k, v in net.variables.items()
                         if k.startswith(("conv", "fc"))},
           "functions": {k: functions(v) for k, v in net.outputs.items()}}
    if "y" in net.outputs and "x" in net.inputs:
        net.inputs["x"].d = np.random.RandomState(0).randn(*net.inputs["x"].shape)
        net.outputs["y"].forward()
        row["y"] = net.outputs["y"].d.tolist()
    print(json.dumps(row))
"""

SCENARIOS = [
    [],
    [("remove_and_rewire", ["@net/ImageAugmentation"]), ("remove_and_rewire", ["@net/Dropout"]),
     ("input", [1, 3, 8, 8]), ("force_average_pooling_global", ["@net/AveragePooling"]),
     ("set_batch_normalization_batch_stat_all", [False]), ("fix_parameters", []),
     ("use_up_to", ["y"])],
    [("drop_function", ["@net/Affine"])],
    [("drop_function", ["@net/ImageAugmentation", "@net/Dropout"]), ("use_up_to", ["y"]),
     ("set_batch_normalization_batch_stat_all", [False])],
    [("pad", [2, 2]), ("use_up_to", ["feat"])],
    [("check_average_pooling_global", ["AveragePooling", True]), ("use_up_to", ["feat"])],
]


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set")
def test_callbacks_rewrite_nnabla_s_file_as_nnabla_does(tmp_path):
    pytest.importorskip("h5py")  # (nnabla's parameters)
    path = str(tmp_path / "model.nnp")
    nnabla_rows(NNABLA, _MAKE_MODEL, path, tmp_path)
    theirs = nnabla_rows(NNABLA, _SCENARIOS_SCRIPT, ["nnabla", path, SCENARIOS], tmp_path)
    ours = nnabla_rows(sys.executable, _SCENARIOS_SCRIPT, ["symcompile", path, SCENARIOS],
                       tmp_path)  # (the same script, in a process of its own)
    assert len(ours) == len(theirs) == len(SCENARIOS)
    for scenario, mine, nnabla in zip(SCENARIOS, ours, theirs, strict=True):
        values = mine.pop("y", None), nnabla.pop("y", None)
        assert mine == nnabla, scenario
        if values[1] is not None:
            np.testing.assert_allclose(values[0], values[1], rtol=1e-4, atol=1e-5,
                                       err_msg=str(scenario))


_NNABLA_COMPOSED = r"""
import json, sys
import numpy as np
import nnabla as nn, nnabla.functions as F
from nnabla.utils.save import save
folder = json.loads(sys.argv[1])
x = nn.Variable((2, 3, 4))
beta = nn.parameter.get_parameter_or_create("tn/beta", (1, 3, 1), need_grad=True)
gamma = nn.parameter.get_parameter_or_create("tn/gamma", (1, 3, 1), need_grad=True)
beta.d = np.linspace(-1, 1, 3).reshape(1, 3, 1)
gamma.d = np.linspace(0.5, 2, 3).reshape(1, 3, 1)
n = F.norm(x, p=3, axis=(2,), keepdims=True)
y = F.tensor_normalization(x, axes=(1,), beta=beta, gamma=gamma, eps=1e-3)
x.d = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7 - 1
n.forward(); y.forward()
save(folder + "/m.nnp", {"networks": [{"name": "net", "batch_size": 2,
                                       "outputs": {"n": n, "y": y}, "names": {"x": x}}],
                         "executors": [{"name": "runtime", "network": "net", "data": ["x"],
                                        "output": ["n", "y"]}]})
print(json.dumps({"x": x.d.tolist(), "n": n.d.tolist(), "y": y.d.tolist()}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set")
def test_nnablas_norm_and_tensor_normalization_read_back(tmp_path):
    """F.norm and F.tensor_normalization are compositions here; nnabla writes them as
    Norm and TensorNormalization functions, which the loader builds with them."""
    (row,) = nnabla_rows(NNABLA, _NNABLA_COMPOSED, str(tmp_path), tmp_path)
    nn.clear_parameters()
    net = NnpLoader(tmp_path / "m.nnp").get_network("net")
    net.inputs["x"].d = np.array(row["x"], np.float32)
    for name in ("n", "y"):
        out = net.outputs[name]
        out.forward()
        np.testing.assert_allclose(out.d, np.array(row[name]), rtol=1e-5, atol=1e-6,
                                   err_msg=name)
