"""`symcompile.utils.save.save` with nnabla's training contents: 'datasets', 'optimizers',
'monitors' and `include_solver_state=True`, read back through symcompile's own messages;
with SYMCOMPILE_NNABLA_PYTHON set, real nnabla 1.39 loads the files (`nnabla.utils.load`)
and reports the same, writes the same messages for the same contents, and its files read
here."""

from __future__ import annotations

import inspect
import os
import textwrap
import zipfile

import numpy as np
import pytest
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF
import symcompile.solvers as S
from symcompile.utils import save
from symcompile.utils.nnp_graph import NnpLoader, read_nnp

pytest.importorskip("google.protobuf")
NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")


def _float32(value) -> float:
    return float(np.float32(value))


def _model():
    """x, t -> loss (fc1, fc2), the same graph as _NNABLA_MODEL builds under nnabla."""
    nn.clear_parameters()
    x = nn.Variable((4, 3))
    t = nn.Variable((4, 2))
    y = PF.affine(F.tanh(PF.affine(x, 5, name="fc1")), 2, name="fc2")
    loss = F.mean(F.squared_error(y, t))
    return x, t, y, loss


def _trained(solver, x, t, loss):
    rng = np.random.default_rng(0)
    x.d = rng.normal(size=x.shape)
    t.d = rng.normal(size=t.shape)
    for _ in range(2):
        loss.forward()
        solver.zero_grad()
        loss.backward()
        solver.update()


def _contents(x, t, y, loss, solver, cache_dir="cache"):
    return {
        "networks": [
            {"name": "training", "batch_size": 4, "outputs": {"loss": loss},
             "names": {"x": x, "t": t}},
            {"name": "validation", "batch_size": 4, "outputs": {"loss": loss, "y": y},
             "names": {"x": x, "t": t}}],
        "datasets": [
            {"name": "train", "uri": "TRAIN.csv", "cache_dir": cache_dir,
             "variables": {"x": x, "t": t}, "shuffle": True, "batch_size": 4,
             "no_image_normalization": True},
            {"name": "valid", "uri": "VALID.csv", "variables": ["x", "t"], "shuffle": False,
             "batch_size": 8, "no_image_normalization": False}],
        "optimizers": [
            {"name": "opt", "solver": solver, "network": "training",
             "dataset": ["train", "valid"], "weight_decay": 0.25, "lr_decay": 0.5,
             "lr_decay_interval": 3, "update_interval": 2,
             "data_variables": {"x": "x", "t": "t"}}],
        "monitors": [
            {"name": "train_error", "network": "validation", "dataset": "train"},
            {"name": "valid_error", "network": "validation", "dataset": ["valid"],
             "data_variables": {"x": "x"}, "monitor_variables": ["y"]}],
        "executors": [{"name": "runtime", "network": "validation", "data": ["x"],
                       "output": ["y"]}],
    }


def _proto(path):
    return read_nnp(path)[0]


def test_datasets_optimizers_and_monitors_are_written_with_nnablas_fields(tmp_path):
    x, t, y, loss = _model()
    solver = S.Adam(alpha=0.01, beta1=0.8)
    fc2 = {k: v for k, v in nn.get_parameters().items() if k.startswith("fc2")}
    solver.set_parameters(fc2)  # fc1 gets a learning-rate multiplier of 0
    contents = _contents(x, t, y, loss, solver)
    contents["optimizers"][0]["generator_variables"] = ["t"]
    save.save(tmp_path / "m.nntxt", contents)
    proto = _proto(tmp_path / "m.nntxt")

    train, valid = proto.dataset
    assert (train.name, train.uri, train.cache_dir, list(train.variable), train.shuffle,
            train.batch_size, train.no_image_normalization) == \
        ("train", "TRAIN.csv", "cache", ["x", "t"], True, 4, True)
    assert (valid.name, valid.uri, valid.cache_dir,
            list(valid.variable), valid.shuffle, valid.batch_size,
            valid.no_image_normalization) == ("valid", "VALID.csv", "", ["x", "t"], False, 8,
                                              False)

    (opt,) = proto.optimizer
    assert (opt.name, opt.network_name, list(opt.dataset_name)) == \
        ("opt", "training", ["train", "valid"])
    assert opt.solver.type == "Adam" and opt.solver.WhichOneof("parameter") == "adam_param"
    adam = opt.solver.adam_param
    assert (adam.alpha, adam.beta1, adam.beta2, adam.eps) == tuple(
        _float32(v) for v in (0.01, 0.8, 0.999, 1e-8))
    assert (opt.solver.weight_decay, opt.solver.lr_decay, opt.solver.lr_decay_interval,
            opt.update_interval) == (0.25, 0.5, 3, 2)
    assert [(d.variable_name, d.data_name) for d in opt.data_variable] == [("x", "x"),
                                                                          ("t", "t")]
    assert [v.variable_name for v in opt.loss_variable] == ["loss"]  # the network's outputs
    assert [(p.variable_name, p.learning_rate_multiplier) for p in opt.parameter_variable] == [
        ("fc1/affine/W", 0.0), ("fc1/affine/b", 0.0), ("fc2/affine/W", 1.0),
        ("fc2/affine/b", 1.0)]
    assert [(g.variable_name, g.type, g.multiplier) for g in opt.generator_variable] == \
        [("t", "Constant", 0.0)]
    assert len(opt.solver.states) == 0  # no include_solver_state

    first, second = proto.monitor
    assert (first.name, first.network_name, list(first.dataset_name)) == \
        ("train_error", "validation", ["train"])
    # (nnabla's default: the variables no function reads; y feeds the loss)
    assert [(m.variable_name, m.type) for m in first.monitor_variable] == [("loss", "Error")]
    assert [(m.variable_name, m.type) for m in second.monitor_variable] == [("y", "Error")]
    assert [(d.variable_name, d.data_name) for d in second.data_variable] == [("x", "x")]
    assert [e.name for e in proto.executor] == ["runtime"]
    net = NnpLoader(tmp_path / "m.nntxt").get_network_names()
    assert net == ["training", "validation"]


@pytest.mark.parametrize("name", list(S.SOLVERS))
def test_every_solver_is_written_with_its_type_and_hyper_parameters(name, tmp_path):
    x, t, y, loss = _model()
    solver = S.SOLVERS[name]()
    solver.set_parameters(nn.get_parameters())
    save.save(tmp_path / "m.protobuf", _contents(x, t, y, loss, solver))
    (opt,) = _proto(tmp_path / "m.protobuf").optimizer
    assert opt.solver.type == name
    hyper = getattr(opt.solver, opt.solver.WhichOneof("parameter"))
    assert type(hyper).DESCRIPTOR.name == f"{name}Parameter"
    written = {f.name: getattr(hyper, f.name) for f in hyper.DESCRIPTOR.fields}
    info = solver.info
    assert written == {k: (info[k] if isinstance(info[k], bool) else _float32(info[k]))
                       for k in written}
    assert written  # every field of the message came from the solver's info


def _states(solver) -> dict:
    return {key: (int(state.t), {n: v.d.copy() for n, v in state.pstate.items()})
            for key, state in solver.get_states().items()}


def _states_of(message) -> dict:
    return {key: (int(state.t), {n: np.asarray(p.data, np.float32).reshape(tuple(p.shape.dim))
                                 for n, p in state.state_parameter.items()})
            for key, state in message.states.items()}


def _assert_same_states(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for key, (t, arrays) in want.items():
        assert got[key][0] == t
        assert sorted(got[key][1]) == sorted(arrays)
        for name, array in arrays.items():
            np.testing.assert_array_equal(got[key][1][name], array)


def test_solver_states_are_written_as_nnabla_writes_them(tmp_path):
    pytest.importorskip("h5py")
    x, t, y, loss = _model()
    solver = S.Adam(alpha=0.01)
    solver.set_parameters(nn.get_parameters())
    _trained(solver, x, t, loss)
    want = _states(solver)
    contents = _contents(x, t, y, loss, solver)

    save.save(tmp_path / "m.nnp", contents, include_solver_state=True)
    with zipfile.ZipFile(tmp_path / "m.nnp") as archive:
        assert archive.namelist() == ["nnp_version.txt", "network.nntxt", "parameter.h5",
                                      "opt_Adam_optimizer.h5.optimizer"]
        (tmp_path / "states.h5").write_bytes(archive.read("opt_Adam_optimizer.h5.optimizer"))
    again = S.Adam(alpha=0.01)
    again.set_parameters(nn.get_parameters())
    again.load_states(tmp_path / "states.h5")  # the solver's own .h5 layout
    _assert_same_states(_states(again), want)
    assert len(_proto(tmp_path / "m.nnp").optimizer[0].solver.states) == 0

    save.save(tmp_path / "p.nnp", contents, include_solver_state=True,
              solver_state_format=".protobuf")
    with zipfile.ZipFile(tmp_path / "p.nnp") as archive:
        assert archive.namelist()[-1] == "optimizer.protobuf.optimizer"
        states = save._messages()("NNablaProtoBuf")()
        states.MergeFromString(archive.read("optimizer.protobuf.optimizer"))
    (opt,) = states.optimizer
    assert (opt.name, opt.solver.type) == ("opt", "Adam")
    _assert_same_states(_states_of(opt.solver), want)

    for suffix in (".nntxt", ".protobuf"):  # in the optimizer's own message
        save.save(tmp_path / f"m{suffix}", contents, include_solver_state=True)
        _assert_same_states(_states_of(_proto(tmp_path / f"m{suffix}").optimizer[0].solver),
                            want)
    assert NnpLoader(tmp_path / "m.nnp").get_network("training").outputs.keys() == {"loss"}


def test_an_optimizer_without_networks_is_nnablas_transfer_learning_one(tmp_path):
    x, t, y, loss = _model()
    solver = S.Sgd(lr=0.5)
    solver.set_parameters({k: v for k, v in nn.get_parameters().items()
                           if k.startswith("fc1")})
    save.save(tmp_path / "m.nntxt", {"optimizers": [
        {"name": "opt", "solver": solver, "dataset": "absent", "weight_decay": 0,
         "lr_decay": 1, "lr_decay_interval": 1, "update_interval": 1}]})
    (opt,) = _proto(tmp_path / "m.nntxt").optimizer
    assert opt.network_name == "None" and list(opt.dataset_name) == []
    assert opt.solver.sgd_param.lr == 0.5
    assert len(opt.loss_variable) == 0
    assert [(p.variable_name, p.learning_rate_multiplier) for p in opt.parameter_variable] == [
        ("fc1/affine/W", 1.0), ("fc1/affine/b", 1.0), ("fc2/affine/W", 0.0),
        ("fc2/affine/b", 0.0)]


class _Eve:
    name = "Eve"
    info = {"alpha": 0.1}

    def get_parameters(self):
        return {}


def test_bad_training_contents_are_refused_naming_what(tmp_path):
    x, t, y, loss = _model()
    solver = S.Adam()
    solver.set_parameters(nn.get_parameters())
    path = tmp_path / "m.nnp"

    def refused(error, match, change=None, **options):
        contents = _contents(x, t, y, loss, solver)
        if change:
            change(contents)
        with pytest.raises(error, match=match):
            save.save(path, contents, **options)

    def opt(**items):
        return lambda c: c["optimizers"][0].update(items)

    def mon(**items):
        return lambda c: c["monitors"][0].update(items)

    refused(ValueError, "an optimizer lacks 'update_interval'",
            lambda c: c["optimizers"][0].pop("update_interval"))
    refused(ValueError, "a dataset lacks 'uri', 'shuffle'",
            lambda c: [c["datasets"][0].pop(k) for k in ("uri", "shuffle")])
    refused(ValueError, "a monitor lacks 'dataset'", lambda c: c["monitors"][0].pop("dataset"))
    refused(ValueError, "optimizer 'opt': dataset 'tes' is not among contents",
            opt(dataset="tes"))
    refused(ValueError, "optimizer 'opt': dataset 'tes' is not among", opt(dataset=["tes"]))
    refused(ValueError, "optimizer 'opt' uses network 'train', which is not among",
            opt(network="train"))
    refused(ValueError, "loss_variables 'z' is not a variable of network 'training'",
            opt(loss_variables=["z"]))
    refused(ValueError, "data_variables 'z' is not a variable", opt(data_variables={"z": "z"}))
    refused(ValueError, "no message for the hyper-parameters of a Eve solver",
            opt(solver=_Eve()))
    refused(TypeError, "'solver' must be a solver such as S.Adam", opt(solver="adam"))
    refused(TypeError, "'update_interval' must be an integer", opt(update_interval=1.5))
    refused(ValueError, "monitor 'train_error': 'dataset' names no dataset",
            mon(dataset=[]))
    refused(ValueError, "monitor 'train_error' uses network 'x'", mon(network="x"))
    refused(ValueError, "monitor_variables 'z' is not a variable", mon(monitor_variables=["z"]))
    refused(TypeError, "'variables' must be the dataset's variable names",
            lambda c: c["datasets"][0].update(variables="xt"))
    refused(ValueError, "contents\\['datasets'\\] has two entries named 'train'",
            lambda c: c["datasets"][1].update(name="train"))
    refused(ValueError, "include_solver_state=True writes the states of the solvers",
            lambda c: c.pop("optimizers"), include_solver_state=True)
    refused(ValueError, "solver_state_format must be '.h5' or '.protobuf'",
            solver_state_format=".npz")
    refused(ValueError, "contents 'monitor' are not supported",
            lambda c: c.update(monitor=[]))
    assert list(tmp_path.iterdir()) == []  # nothing written, not even in part


# --- against real nnabla ----------------------------------------------------------------------

_NNABLA_LOAD = r"""
import json, sys
import numpy as np
import nnabla as nn
from nnabla.utils.load import load
for path in json.loads(sys.argv[1]):
    nn.clear_parameters()
    info = load(path)
    print(json.dumps({
        "path": path,
        "optimizers": {name: {
            "solver": o.solver.name, "info": o.solver.info, "network": o.network.name,
            "datasets": list(o.data_iterators), "weight_decay": o.weight_decay,
            "lr_decay": o.lr_decay, "lr_decay_interval": o.lr_decay_interval,
            "update_interval": o.update_interval,
            "losses": [v.name for v in o.loss_variables],
            "multipliers": {v.name: m for v, m in
                            o.parameter_learning_rate_multipliers.items()},
            "states": {k: [int(s.t), {n: v.d.tolist() for n, v in s.pstate.items()}]
                       for k, s in o.solver.get_states().items()}}
            for name, o in info.optimizers.items()},
        "monitors": {name: {"network": m.network.name, "datasets": list(m.data_iterators),
                            "variables": [v.name for v in m.monitor_variables]}
                     for name, m in info.monitors.items()},
        "datasets": {d.name: {"uri": d.uri, "cache_dir": d.cache_dir, "shuffle": d.shuffle,
                              "batch_size": d.batch_size, "variables": list(d.variable),
                              "normalize": info.datasets[d.name].normalize}
                     for d in info.proto.dataset}}))
"""


def _solvers():
    return [S.Adam(alpha=0.01, beta1=0.8), S.Momentum(lr=0.1, momentum=0.5),
            S.AdaBelief(alpha=0.02, amsgrad=True), S.AdamW(alpha=0.03, wd=0.01),
            S.SgdW(lr=0.2, momentum=0.7, wd=0.02), S.RMSpropGraves(), S.Adadelta()]


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set")
def test_nnabla_loads_the_optimizers_datasets_and_monitors(tmp_path):
    pytest.importorskip("h5py")
    paths, expected = [], {}
    for index, solver in enumerate(_solvers()):
        x, t, y, loss = _model()
        solver.set_parameters({k: v for k, v in nn.get_parameters().items()
                               if k.startswith("fc2")})
        _trained(solver, x, t, loss)
        contents = _contents(x, t, y, loss, solver, cache_dir=str(tmp_path / "cache"))
        for suffix, options in ((".nnp", {}), (".nnp", {"solver_state_format": ".protobuf"}),
                                (".nntxt", {"include_params": True})):
            path = str(tmp_path / f"m{index}_{len(paths)}{suffix}")
            save.save(path, contents, include_solver_state=True, **options)
            paths.append(path)
            expected[path] = (solver, _states(solver))
    rows = nnabla_rows(NNABLA, _NNABLA_LOAD, paths, tmp_path)
    assert [row["path"] for row in rows] == paths
    for row in rows:
        solver, states = expected[row["path"]]
        (opt,) = row["optimizers"].values()
        assert opt["solver"] == solver.name
        info = {k: v for k, v in solver.info.items() if k != "name"}
        assert opt["info"] == pytest.approx(
            {k: v if isinstance(v, bool) else _float32(v) for k, v in info.items()})
        assert (opt["network"], opt["datasets"]) == ("training", ["train", "valid"])
        assert (opt["weight_decay"], opt["lr_decay"], opt["lr_decay_interval"],
                opt["update_interval"]) == (0.25, 0.5, 3, 2)
        assert opt["losses"] == ["loss"]
        assert opt["multipliers"] == {"fc1/affine/W": 0.0, "fc1/affine/b": 0.0,
                                      "fc2/affine/W": 1.0, "fc2/affine/b": 1.0}
        got = {k: (t, {n: np.asarray(a, np.float32) for n, a in arrays.items()})
               for k, (t, arrays) in opt["states"].items()}
        _assert_same_states(got, states)
        assert row["monitors"] == {
            "train_error": {"network": "validation", "datasets": ["train"],
                            "variables": ["loss"]},
            "valid_error": {"network": "validation", "datasets": ["valid"],
                            "variables": ["y"]}}
        assert row["datasets"] == {
            "train": {"uri": "TRAIN.csv", "cache_dir": str(tmp_path / "cache"),
                      "shuffle": True, "batch_size": 4, "variables": ["x", "t"],
                      "normalize": False},
            "valid": {"uri": "VALID.csv", "cache_dir": "", "shuffle": False, "batch_size": 8,
                      "variables": ["x", "t"], "normalize": True}}


_NNABLA_SAVE = r"""
import json, sys
import numpy as np
import nnabla as nn
import nnabla.functions as F
import nnabla.parametric_functions as PF
import nnabla.solvers as S
from nnabla.utils.save import save
folder = json.loads(sys.argv[1])
x = nn.Variable((4, 3))
t = nn.Variable((4, 2))
y = PF.affine(F.tanh(PF.affine(x, 5, name="fc1")), 2, name="fc2")
loss = F.mean(F.squared_error(y, t))
solver = S.Adam(alpha=0.01, beta1=0.8)
solver.set_parameters({k: v for k, v in nn.get_parameters().items() if k.startswith("fc2")})
x.d = np.random.randn(4, 3)
t.d = np.random.randn(4, 2)
loss.forward()
solver.zero_grad()
loss.backward()
solver.update()
CONTENTS
contents["optimizers"][0]["generator_variables"] = ["t"]
for name, options in (("n.nnp", {}), ("p.nnp", {"solver_state_format": ".protobuf"}),
                      ("n.nntxt", {"include_params": True})):
    save(folder + "/" + name, contents, include_solver_state=True, **options)
print(json.dumps({"done": True}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set")
def test_nnabla_writes_the_same_messages_and_its_files_read_here(tmp_path):
    """nnabla's save of the same contents: the same dataset, optimizer and monitor
    messages (bar the solver states, whose values differ), the same .nnp members, and
    symcompile's loader reads its files (networks, and the states into symcompile's
    solver)."""
    pytest.importorskip("h5py")
    source = textwrap.dedent("    " + inspect.getsource(_contents).split("return ", 1)[1])
    script = _NNABLA_SAVE.replace("CONTENTS", f"cache_dir = 'cache'\ncontents = {source}")
    (theirs := tmp_path / "nnabla").mkdir()
    rows = nnabla_rows(NNABLA, script, str(theirs), tmp_path)
    assert rows == [{"done": True}]

    x, t, y, loss = _model()
    solver = S.Adam(alpha=0.01, beta1=0.8)
    solver.set_parameters({k: v for k, v in nn.get_parameters().items()
                           if k.startswith("fc2")})
    _trained(solver, x, t, loss)
    contents = _contents(x, t, y, loss, solver)
    contents["optimizers"][0]["generator_variables"] = ["t"]
    (ours := tmp_path / "ours").mkdir()
    for name, options in (("n.nnp", {}), ("p.nnp", {"solver_state_format": ".protobuf"}),
                          ("n.nntxt", {"include_params": True})):
        save.save(ours / name, contents, include_solver_state=True, **options)
        mine, nnablas = _proto(ours / name), _proto(theirs / name)
        for message in (*mine.optimizer, *nnablas.optimizer):
            message.solver.ClearField("states")
        for field in ("dataset", "optimizer", "monitor", "executor"):
            assert list(getattr(mine, field)) == list(getattr(nnablas, field)), field
        if name.endswith(".nnp"):
            with zipfile.ZipFile(ours / name) as a, zipfile.ZipFile(theirs / name) as b:
                assert a.namelist() == b.namelist()
    for name in ("n.nnp", "p.nnp", "n.nntxt"):
        nn.clear_parameters()
        net = NnpLoader(theirs / name).get_network("validation")  # reads without error
        assert set(net.outputs) == {"loss"} and set(net.inputs) == {"x", "t"}
        assert "y" in net.variables

    nn.clear_parameters()
    x, t, y, loss = _model()
    solver = S.Adam()
    with zipfile.ZipFile(theirs / "n.nnp") as archive:
        (tmp_path / "s.h5").write_bytes(archive.read("opt_Adam_optimizer.h5.optimizer"))
    solver.set_parameters({k: v for k, v in nn.get_parameters().items()
                           if k.startswith("fc2")})
    solver.load_states(tmp_path / "s.h5")  # nnabla's solver-state file, into symcompile's
    assert {k: s.t for k, s in solver.get_states().items()} == {"fc2/affine/W": 1,
                                                                "fc2/affine/b": 1}
