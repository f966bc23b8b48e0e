"""nnabla's model files: `symcompile.utils.save.save` writes networks that read back as the
same graph (every function symcompile has, through the array-API cases table), and, with
SYMCOMPILE_NNABLA_PYTHON set, that real nnabla 1.39 loads and runs with the same values,
and whose re-saving by nnabla reads back here with the same values again."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest
from nnabla_run import nnabla_rows
from test_array_api_backend import CASES, _draw

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF
from symcompile.frontend.nnp_network import NnpError, _graph_order
from symcompile.utils import save
from symcompile.utils.nnp_graph import NnpLoader

pytest.importorskip("google.protobuf")
NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")

# Cases whose graphs have a node nnabla's format cannot hold as it is (the message says
# why; test_unwritable_nodes_are_refused_with_the_reason checks it).
UNWRITABLE = {
    "grad, then differentiated again": "nn.grad",
    "spectral_norm": "power iteration",
    "random_flip, random_shift, random_crop": "drawn flip",
    "sync_batch_normalization output_stat=True": "output_stat=True's mean",
}
# Cases written, whose files a reader refuses (the message says why; see
# test_unreadable_networks_are_refused_with_the_reason).
UNREADABLE = {"sync_batch_normalization output_stat=False": "a file cannot hold"}
# values differ: shapes only
RANDOM = ("dropout", "rand, randn, randint", "image_augmentation", "random_choice",
          "random_erase", "rand_binomial, rand_beta, rand_gamma",
          "inq_affine, inq_convolution")  # (its convolution fixes weights at random)
# written and read back here, but nnabla 1.39's CPU implementation cannot run them (FFT and
# IFFT raise not_implemented: they run on CUDA only), so nnabla does not run their files
NOT_ON_NNABLA_CPU = {"fft, ifft"}
# written and read back here; nnabla 1.39's loader builds their functions on inputs of
# zeros, and they take their output shapes from their input's values then (its setup):
# BoolGather reads out of bounds, Unique refuses static graphs, the packed sequences
# get no rows, ONNXNonMaxSuppression keeps what it selected from the zeros
NOT_ON_NNABLA_CPU |= {"bool_gather", "unique nonzero",
                      "pack_padded_sequence pad_packed_sequence", "onnx_non_max_suppression"}


def _case_graph(name):
    """The case's inputs (named in0, in1, ...; with their arrays) and outputs."""
    case = CASES[name]
    arrays = _draw(name, case)
    inputs = {}
    for i, array in enumerate(arrays):
        var = nn.Variable(array.shape)
        var.d = array
        inputs[f"in{i}"] = var
    outputs = case.build(*inputs.values())
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    return inputs, arrays, {f"out{k}": out for k, out in enumerate(outputs)
                            if out.parent is not None}  # (not an input returned as it is)


def _contents(inputs, outputs, batch_size=1):
    return {"networks": [{"name": "net", "batch_size": batch_size, "outputs": outputs,
                          "names": inputs}],
            "executors": [{"name": "runtime", "network": "net"}]}  # nnabla's default data


def _normalized(value):
    if isinstance(value, (tuple, list)):
        return tuple(_normalized(v) for v in value)
    if isinstance(value, (bool, str)) or value is None:
        return value
    return float(np.float32(value))  # nnabla's format keeps float arguments as float32


def _structure(outputs) -> list:
    """The graph as (op, arguments, inputs) rows, inputs named by position or leaf name."""
    order = _graph_order(list(outputs))
    produced = {}
    rows = []
    for index, func in enumerate(order):
        for k, out in enumerate(func.outputs):
            produced[id(out._storage)] = f"f{index}.{k}"
        rows.append((func.op.name, tuple(sorted((k, _normalized(v))
                                                for k, v in func.args.items())),
                     tuple(produced.get(id(v._storage), v.name) for v in func.inputs)))
    return rows


WRITABLE = [name for name in CASES if name not in UNWRITABLE and name not in UNREADABLE]


@pytest.mark.parametrize("name", list(UNREADABLE))
def test_unreadable_networks_are_refused_with_the_reason(name, tmp_path):
    nn.clear_parameters()
    inputs, _, outputs = _case_graph(name)
    save.save(tmp_path / "net.nntxt", _contents(inputs, outputs), variable_batch_size=False)
    with pytest.raises(NnpError, match=UNREADABLE[name]):
        NnpLoader(tmp_path / "net.nntxt").get_network("net")


@pytest.mark.parametrize("name", WRITABLE)
def test_a_written_network_reads_back_as_the_same_graph(name, tmp_path):
    nn.clear_parameters()
    inputs, _, outputs = _case_graph(name)
    for key, var in inputs.items():
        var.name = key
    path = tmp_path / "net.nntxt"
    save.save(path, _contents(inputs, outputs), variable_batch_size=False)
    net = NnpLoader(path).get_network("net")
    assert set(net.inputs) <= set(inputs)
    for key, var in net.inputs.items():
        assert var.shape == inputs[key].shape
    assert _structure(net.variables[k] for k in outputs) == _structure(outputs.values())


@pytest.mark.parametrize("name", list(UNWRITABLE))
def test_unwritable_nodes_are_refused_with_the_reason(name, tmp_path):
    nn.clear_parameters()
    inputs, _, outputs = _case_graph(name)
    with pytest.raises(NnpError, match=UNWRITABLE[name]):
        save.save(tmp_path / "net.nnp", _contents(inputs, outputs))
    assert not (tmp_path / "net.nnp").exists()


def _mlp(batch):
    x = nn.Variable((batch, 3, 4, 4))
    with nn.parameter_scope("cnn"):
        h = PF.convolution(x, 2, (3, 3), pad=(1, 1), name="conv")
        h = PF.batch_normalization(h, batch_stat=False, name="bn")
        h = F.max_pooling(F.relu(h), (2, 2))
        y = PF.affine(F.reshape(h, (batch, -1)), 5, name="fc")
    return x, F.softmax(y)


@pytest.mark.parametrize("suffix", [".nnp", ".nntxt", ".protobuf"])
def test_a_cnn_runs_from_its_file_at_another_batch_size(suffix, tmp_path):
    """Parameters, the -1 batch dimension (Reshape's shape too) and the file formats."""
    nn.clear_parameters()
    x, y = _mlp(4)
    rng = np.random.default_rng(0)
    for param in nn.get_parameters(grad_only=False).values():
        param.d = rng.uniform(0.5, 1.5, size=param.shape)  # (variances too)
    path = tmp_path / f"cnn{suffix}"
    save.save(path, _contents({"x": x}, {"y": y}, batch_size=4), include_params=True,
              parameter_format=".protobuf")
    x.d = rng.normal(size=x.shape)
    y.forward()
    want = y.d.copy()
    expected = {k: v.d.astype(np.float32) for k, v in nn.get_parameters(grad_only=False).items()}
    nn.clear_parameters()
    net = NnpLoader(path).get_network("net", batch_size=2)
    assert net.inputs["x"].shape == (2, 3, 4, 4)
    net.inputs["x"].d = x.d[:2]
    net.outputs["y"].forward()
    np.testing.assert_allclose(net.outputs["y"].d, want[:2], rtol=1e-5, atol=1e-6)
    loaded = nn.get_parameters(grad_only=False)  # published to the current scope
    assert list(loaded) == list(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(loaded[key].d, value)


def test_an_nnp_file_is_nnablas_zip(tmp_path):
    nn.clear_parameters()
    x, y = _mlp(2)
    pytest.importorskip("h5py")
    save.save(tmp_path / "m.nnp", _contents({"x": x}, {"y": y}, batch_size=2))
    with zipfile.ZipFile(tmp_path / "m.nnp") as archive:
        assert archive.namelist() == ["nnp_version.txt", "network.nntxt", "parameter.h5"]
        text = archive.read("network.nntxt").decode()
    assert 'name: "cnn/conv/conv/W"' in text and 'type: "Parameter"' in text
    assert 'function {\n    name: "@net/Convolution"' in text
    assert "dim: -1" in text
    executor = NnpLoader(tmp_path / "m.nnp").executors["runtime"]
    assert executor == ("net", ["x"], ["y"])


def test_bad_contents_are_refused_naming_what(tmp_path):
    nn.clear_parameters()
    x, y = _mlp(2)
    path = tmp_path / "m.nnp"
    with pytest.raises(ValueError, match="'optimizer' are not supported"):
        save.save(path, {**_contents({"x": x}, {"y": y}), "optimizer": []})
    with pytest.raises(ValueError, match="executor 'e' runs network 'other'"):
        save.save(path, {"networks": _contents({"x": x}, {"y": y})["networks"],
                         "executors": [{"name": "e", "network": "other"}]})
    with pytest.raises(ValueError, match="output variable 'z' is not in network"):
        save.save(path, {"networks": _contents({"x": x}, {"y": y})["networks"],
                         "executors": [{"name": "e", "network": "net", "output": ["z"]}]})
    with pytest.raises(NnpError, match=r"outputs\['y'\] must be a Variable"):
        save.save(path, _contents({"x": x}, {"y": 3}))
    with pytest.raises(ValueError, match="unsupported extension '.txt'"):
        save.save(tmp_path / "m.txt", _contents({"x": x}, {"y": y}))
    assert list(tmp_path.iterdir()) == []  # nothing written, not even in part


def test_bad_files_are_refused_naming_what(tmp_path):
    (tmp_path / "bad.nnp").write_bytes(b"not a zip")
    with pytest.raises(NnpError, match="not an .nnp file"):
        NnpLoader(tmp_path / "bad.nnp")
    (tmp_path / "bad.nntxt").write_text("network { nme: 'x' }")
    with pytest.raises(NnpError, match="not one of nnabla's .nntxt files"):
        NnpLoader(tmp_path / "bad.nntxt")
    (tmp_path / "f.nntxt").write_text(
        'network { name: "n" variable { name: "x" type: "Buffer" shape { dim: 2 } }\n'
        'function { name: "f" type: "FooBar" input: "x" output: "y" } }')
    with pytest.raises(NnpError, match="nnabla's FooBar is not one of symcompile's functions"):
        NnpLoader(tmp_path / "f.nntxt").get_network("n")
    with pytest.raises(NnpError, match="no network 'm'; it has 'n'"):
        NnpLoader(tmp_path / "f.nntxt").get_network("m")
    (tmp_path / "p.nntxt").write_text(
        'network { name: "n" variable { name: "x" type: "Buffer" shape { dim: 2 dim: 3 } }\n'
        'variable { name: "W" type: "Parameter" shape { dim: 3 dim: 4 } }\n'
        'function { name: "f" type: "Affine" input: "x" input: "W" output: "y"\n'
        '  affine_param { base_axis: 1 } } }')
    with pytest.raises(NnpError, match="parameter 'W' is not in the file's parameters"):
        NnpLoader(tmp_path / "p.nntxt").get_network("n")


# --- against real nnabla ----------------------------------------------------------------------

_NNABLA_SCRIPT = r"""
import json, sys
import numpy as np
import nnabla as nn
from nnabla.utils.nnp_graph import NnpLoader
from nnabla.utils.save import save
for case in json.load(open(json.loads(sys.argv[1]))):
    nn.clear_parameters()
    try:
        net = NnpLoader(case["path"]).get_network("net")
    except Exception as exc:
        print(json.dumps({"case": case["name"], "error": f"{type(exc).__name__}: {exc}"}))
        continue
    for key, value in case["inputs"].items():
        if key in net.inputs:
            net.inputs[key].d = np.asarray(value)
    outputs = [net.variables[k] for k in case["outputs"]]
    for out in outputs:
        out.forward()
    print(json.dumps({"case": case["name"], "outputs": [o.d.tolist() for o in outputs]}))
    save(case["path"] + ".again.nnp", {
        "networks": [{"name": "net", "batch_size": 1,
                      "outputs": {k: net.variables[k] for k in case["outputs"]},
                      "names": dict(net.inputs)}],
        "executors": [{"name": "runtime", "network": "net", "data": list(net.inputs),
                       "output": case["outputs"]}]}, variable_batch_size=False)
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set")
def test_nnabla_runs_the_written_networks_and_its_files_read_back(tmp_path):
    pytest.importorskip("h5py")
    cases, expected = [], {}
    on_nnabla = [name for name in WRITABLE if name not in NOT_ON_NNABLA_CPU]
    for index, name in enumerate(on_nnabla):
        nn.clear_parameters()
        inputs, arrays, outputs = _case_graph(name)
        path = tmp_path / f"case{index}.nnp"
        save.save(path, _contents(inputs, outputs), variable_batch_size=False)
        for out in outputs.values():
            out.forward()
        expected[name] = ([out.d.copy() for out in outputs.values()], arrays)
        cases.append({"name": name, "path": str(path), "outputs": list(outputs),
                      "inputs": {f"in{i}": a.tolist() for i, a in enumerate(arrays)}})
    listing = tmp_path / "cases.json"
    listing.write_text(json.dumps(cases))
    rows = nnabla_rows(NNABLA, _NNABLA_SCRIPT, str(listing), tmp_path)
    assert [row["case"] for row in rows] == on_nnabla
    refused = {row["case"]: row["error"] for row in rows if "error" in row}
    assert not refused, f"nnabla could not load: {json.dumps(refused, indent=1)}"
    for row, case in zip(rows, cases, strict=True):
        want, arrays = expected[case["name"]]
        nn.clear_parameters()
        net = NnpLoader(case["path"] + ".again.nnp").get_network("net")
        for key, var in net.inputs.items():
            var.d = arrays[int(key[2:])]
        again = []
        for key in case["outputs"]:
            net.variables[key].forward()
            again.append(net.variables[key].d)
        for theirs, ours, read in zip(row["outputs"], want, again, strict=True):
            theirs = np.asarray(theirs, dtype=np.float64).reshape(np.shape(ours))
            if case["name"].startswith(RANDOM):
                assert np.shape(read) == np.shape(ours)
                continue
            np.testing.assert_allclose(theirs, ours, rtol=2e-4, atol=2e-5,
                                       err_msg=f"{case['name']}: nnabla's values")
            np.testing.assert_allclose(read, ours, rtol=2e-4, atol=2e-5,
                                       err_msg=f"{case['name']}: read back from nnabla's file")


def test_the_command_line_compiles_an_nnabla_file(tmp_path, capsys):
    """`symcompile compile model.nnp`: the module computes the executor's output with the
    file's parameters, and --network/--output choose others (and say what there is)."""
    from symcompile.runtime.cache import load_module
    from symcompile.tools import cli

    nn.clear_parameters()
    x = nn.Variable((4, 3))
    t = nn.Variable((4, 1))
    y = PF.affine(F.tanh(PF.affine(x, 5, name="fc1")), 2, name="fc2")
    loss = F.mean(F.softmax_cross_entropy(y, t))
    path = tmp_path / "train.nnp"
    save.save(path, {"networks": [{"name": "training", "batch_size": 4,
                                   "outputs": {"loss": loss, "y": y},
                                   "names": {"x": x, "t": t}}],
                     "executors": [{"name": "trainer", "network": "training",
                                    "output": ["loss"]}]}, parameter_format=".protobuf")
    params = {k: v.d.copy() for k, v in nn.get_parameters(grad_only=False).items()}
    assert cli.main(["compile", str(path), "-o", str(tmp_path / "gen")]) == 0
    module = load_module(tmp_path / "gen" / "train.py")
    rng = np.random.default_rng(1)
    data = {"x": rng.normal(size=(4, 3)).astype(np.float32),
            "t": rng.integers(0, 2, size=(4, 1)).astype(np.float32)}
    arguments = {**{name: data[name] for name in module.INPUTS},
                 **{spec["argument"]: params[key] for key, spec in module.PARAMETERS.items()}}
    x.d, t.d = data["x"], data["t"]
    loss.forward()
    np.testing.assert_allclose(module.forward(**arguments), loss.d, rtol=1e-5)
    stored, _, _ = module.load_checkpoint(tmp_path / "gen" / "train_parameters.npz")
    for key, spec in module.PARAMETERS.items():  # the file's values, for the module
        np.testing.assert_array_equal(stored[spec["argument"]], params[key])
    assert "Regenerate: symcompile compile" in (tmp_path / "gen" / "train.py").read_text()

    assert cli.main(["compile", str(path), "-o", str(tmp_path / "gen"), "--name", "y",
                     "--output", "y"]) == 0
    assert load_module(tmp_path / "gen" / "y.py").OUTPUTS
    capsys.readouterr()
    assert cli.main(["compile", str(path), "-o", str(tmp_path / "gen"), "--output", "z"]) == 1
    assert "network 'training' has no variable 'z'; its outputs are 'loss'" \
        in capsys.readouterr().err
    assert cli.main(["compile", str(path), "--network", "other"]) == 1
    assert "no network 'other'; it has 'training'" in capsys.readouterr().err
