"""nnabla's `nnabla.utils.save`: networks, training settings and parameters in nnabla's files.

`save("model.nnp", contents)` writes what real nnabla 1.39 writes and reads: a zip of
`nnp_version.txt`, `network.nntxt` (the `NNablaProtoBuf` message in protobuf's text
format), `parameter.h5` (or `.protobuf`) and, with `include_solver_state=True`, the
solvers' states (`<optimizer>_<Solver>_optimizer.h5.optimizer` files, or one
`optimizer.protobuf.optimizer`). `.nntxt`/`.prototxt` and `.protobuf` files hold the
message alone, as text or binary, with the parameters when `include_params` and the
solver states when `include_solver_state`. The networks come from
`symcompile.frontend.nnp_network`; files are written atomically.
"""

from __future__ import annotations

import numbers
import re
import tempfile
import zipfile
from io import BytesIO
from pathlib import Path

from symcompile.common.files import atomic_write_bytes
from symcompile.frontend import parameter as _parameter
from symcompile.frontend.nnp_network import NnpError, network_message

__all__ = ["save", "NnpError"]

NNP_VERSION = "0.1"  # nnp_version.txt of nnabla 1.39's files
_SUPPORTED = ("global_config", "training_config", "networks", "datasets", "optimizers",
              "monitors", "executors")
_EXECUTOR_SETTINGS = ("no_image_normalization", "num_evaluations", "repeat_evaluation_type",
                      "need_back_propagation")
_STATE_FORMATS = (".h5", ".protobuf")
# The keys nnabla's save reads without a default (it fails with a KeyError without them).
_DATASET_KEYS = ("name", "uri", "variables", "shuffle", "batch_size", "no_image_normalization")
_OPTIMIZER_KEYS = ("name", "solver", "dataset", "weight_decay", "lr_decay", "lr_decay_interval",
                   "update_interval")  # and 'network' when there are networks
_MONITOR_KEYS = ("name", "network", "dataset")
_PROTO_STATES = "optimizer.protobuf.optimizer"  # the member of solver_state_format=".protobuf"


def _messages():
    try:
        from symcompile.common.nnabla_proto import message_class
    except ImportError:  # pragma: no cover - protobuf is missing
        raise ImportError("nnabla's file formats need protobuf: pip install protobuf") from None
    return message_class


def save(filename, contents, include_params=False, variable_batch_size=True, extension=".nnp",
         parameters=None, parameter_format=".h5", include_solver_state=False,
         solver_state_format=".h5"):
    """Write `contents` to `filename` as nnabla 1.39's `nnabla.utils.save.save` does; the
    format is the file's extension (or `extension`): .nnp, .nntxt/.prototxt or .protobuf.

    `contents` is nnabla's dict; each key is optional:

    - 'global_config': ``{'default_context': ctx}``; 'training_config':
      ``{'max_epoch', 'iter_per_epoch', 'save_best'}``.
    - 'networks': ``[{'name', 'batch_size', 'outputs': {name: Variable}, 'names':
      {name: Variable}}]``.
    - 'datasets': ``[{'name', 'uri', 'variables' (names, or a dict whose keys are the
      names), 'shuffle', 'batch_size', 'no_image_normalization', 'cache_dir' (optional)}]``.
    - 'optimizers': ``[{'name', 'solver' (a solver, e.g. S.Adam(); its type and
      hyper-parameters are written from its `name` and `info`), 'network', 'dataset' (a
      dataset name or a list of them), 'weight_decay', 'lr_decay', 'lr_decay_interval',
      'update_interval'}]``, and optionally 'data_variables' ({network variable: dataset
      variable}), 'loss_variables' (default: the network's outputs) and
      'generator_variables' (names, written as Constant generators of multiplier 0).
      Every parameter of the network is listed with a learning-rate multiplier of 1 if the
      solver holds it (``solver.get_parameters()``), else 0. Without 'networks', the
      network name is "None" and the parameters are those of the current scope.
    - 'monitors': ``[{'name', 'network', 'dataset'}]``, optionally 'data_variables',
      'monitor_variables' (default: the network's outputs; written as type Error) and
      'generator_variables'.
    - 'executors': ``[{'name', 'network', 'data', 'output', 'remp', ...}]``.

    As in nnabla, "the network's outputs" (the default loss, monitor and executor output
    variables) are the variables no function of the network reads, which need not be all
    of its 'outputs' (an output that feeds another is not one).

    `parameters` (name -> Variable) defaults to every parameter, trainable or not.
    `include_solver_state=True` (which needs 'optimizers') also writes every optimizer's
    solver state: in an .nnp as nnabla's solver-state files (`solver_state_format` '.h5' as
    ``solver.save_states`` writes it, or '.protobuf'), in the other formats inside each
    optimizer's message (its `solver.states`).

    Where nnabla would write a file its own loader fails on or misreads, symcompile
    refuses with a message instead: an unknown dataset or network name, a variable that is
    not in the network, a solver type nnabla's format has no message for, duplicate
    dataset, optimizer or monitor names. Unlike nnabla 1.39's save, which writes the
    hyper-parameters of ten solver types only, every solver's hyper-parameters are
    written (AdamW, SgdW, Lars, AMSGRAD, AdaBound, AMSBound, Lamb, Lion too), so that
    nnabla's loader does not rebuild them with zeros. nnabla 1.39's loader itself refuses
    optimizers of the types Lamb and Lion.
    """
    ext = Path(str(filename)).suffix or extension
    if ext not in (".nnp", ".nntxt", ".prototxt", ".protobuf"):
        raise ValueError(f"save: {filename}: unsupported extension {ext!r}; use .nnp, .nntxt, "
                         ".prototxt or .protobuf")
    if parameter_format not in (".h5", ".protobuf"):
        raise ValueError(f"save: parameter_format must be '.h5' or '.protobuf', got "
                         f"{parameter_format!r}")
    if solver_state_format not in _STATE_FORMATS:
        raise ValueError(f"save: solver_state_format must be '.h5' or '.protobuf', got "
                         f"{solver_state_format!r}")
    if not isinstance(contents, dict):
        raise TypeError(f"save: contents must be a dict of {', '.join(_SUPPORTED)}, got "
                        f"{type(contents).__name__}")
    unknown = sorted(set(contents) - set(_SUPPORTED))
    if unknown:
        raise ValueError(f"save: contents {', '.join(map(repr, unknown))} are not supported "
                         f"(nnabla writes {', '.join(_SUPPORTED)}); leave them out")
    if include_solver_state and not contents.get("optimizers"):
        raise ValueError("save: include_solver_state=True writes the states of the solvers "
                         "of contents['optimizers'], and there are none; add the optimizers "
                         "or leave include_solver_state False")
    params = _parameter.get_parameters(grad_only=False) if parameters is None else parameters
    states_in_proto = include_solver_state and ext != ".nnp"
    proto = _proto(contents, variable_batch_size, states_in_proto)
    if ext == ".nnp":
        members = (_state_members(contents["optimizers"], solver_state_format)
                   if include_solver_state else [])
        data = _nnp_bytes(proto, params, parameter_format, members)
    else:
        if include_params:
            _add_parameters(proto, params)
        data = (proto.SerializeToString() if ext == ".protobuf"
                else _text(proto).encode("utf-8"))
    atomic_write_bytes(filename, data)


def _entries(contents: dict, key: str, what: str, required, layout: str) -> list:
    """contents[key] as a list of dicts (`what`: "a dataset", ...), each with the
    `required` keys (the ValueError shows `layout`) and a distinct 'name'."""
    entries = contents.get(key, [])
    if not isinstance(entries, (list, tuple)) or not all(isinstance(e, dict) for e in entries):
        raise TypeError(f"save: contents[{key!r}] must be a list of dicts, one per "
                        f"{what.split()[-1]}, got {type(entries).__name__}")
    for entry in entries:
        _require(what, entry, required, layout)
    _distinct(key, [e["name"] for e in entries])
    return list(entries)


def _require(what: str, entry: dict, keys, layout: str) -> None:
    missing = [k for k in keys if k not in entry]
    if missing:
        raise ValueError(f"save: {what} lacks {', '.join(map(repr, missing))}; each is "
                         f"{layout}")


def _distinct(key: str, names: list) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise ValueError(f"save: contents[{key!r}] has two entries named {name!r}; give "
                             "each its own name (nnabla's loader keeps one per name)")
        seen.add(name)


def _proto(contents: dict, variable_batch_size: bool, states_in_proto: bool = False):
    message_class = _messages()
    proto = message_class("NNablaProtoBuf")()
    if "global_config" in contents:
        ctx = contents["global_config"]["default_context"]
        config = proto.global_config.default_context
        config.backends.extend(ctx.backend)
        config.array_class = ctx.array_class
        config.device_id = ctx.device_id
    if "training_config" in contents:
        training = contents["training_config"]
        proto.training_config.max_epoch = int(training["max_epoch"])
        proto.training_config.iter_per_epoch = int(training["iter_per_epoch"])
        proto.training_config.save_best = bool(training["save_best"])
    networks = {}
    for net in contents.get("networks", []):
        missing = [k for k in ("name", "batch_size", "outputs") if k not in net]
        if missing:
            raise ValueError(f"save: a network lacks {', '.join(map(repr, missing))}; each is "
                             "{'name', 'batch_size', 'outputs': {name: variable}, 'names'}")
        message, inputs, parameters = network_message(
            net["name"], net["batch_size"], net["outputs"], net.get("names", {}),
            variable_batch_size)
        proto.network.append(message)
        networks[net["name"]] = (message, inputs, parameters, _graph_outputs(message))
    datasets = {}
    entries = _entries(contents, "datasets", "a dataset", _DATASET_KEYS,
                       "{'name', 'uri', 'variables', 'shuffle', 'batch_size', "
                       "'no_image_normalization'} and optionally 'cache_dir'")
    for entry in entries:
        datasets[entry["name"]] = proto.dataset.add()
        datasets[entry["name"]].CopyFrom(_dataset(entry))
    entries = _entries(contents, "optimizers", "an optimizer",
                       _OPTIMIZER_KEYS + (("network",) if networks else ()),
                       "{'name', 'solver', 'network', 'dataset', 'weight_decay', 'lr_decay', "
                       "'lr_decay_interval', 'update_interval'} and optionally "
                       "'data_variables', 'loss_variables', 'generator_variables'")
    for entry in entries:
        proto.optimizer.append(_optimizer(entry, networks, datasets, states_in_proto))
    entries = _entries(contents, "monitors", "a monitor", _MONITOR_KEYS,
                       "{'name', 'network', 'dataset'} and optionally 'data_variables', "
                       "'monitor_variables', 'generator_variables'")
    for entry in entries:
        proto.monitor.append(_monitor(entry, networks, datasets))
    for executor in contents.get("executors", []):
        proto.executor.append(_executor(executor, networks))
    return proto


def _graph_outputs(network) -> list[str]:
    """nnabla's `outputs` of a network (the default loss, monitor and executor output
    variables): in the network's order, the variables a function computes and none reads,
    which need not be all of the contents' 'outputs' (one may feed another)."""
    computed = {name for function in network.function for name in function.output}
    read = {name for function in network.function for name in function.input}
    return [v.name for v in network.variable if v.name in computed and v.name not in read]


def _integer(what: str, key: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"save: {what}: {key!r} must be an integer, got {value!r} "
                        f"({type(value).__name__})")
    return int(value)


def _real(what: str, key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"save: {what}: {key!r} must be a number, got {value!r} "
                        f"({type(value).__name__})")
    return float(value)


def _text_value(what: str, key: str, value) -> str:
    if not isinstance(value, str):
        raise TypeError(f"save: {what}: {key!r} must be a string, got {value!r} "
                        f"({type(value).__name__})")
    return value


def _dataset(entry: dict):
    what = f"dataset {entry['name']!r}"
    message = _messages()("Dataset")(name=_text_value(what, "name", entry["name"]),
                                      uri=_text_value(what, "uri", entry["uri"]))
    if entry.get("cache_dir") is not None:
        message.cache_dir = _text_value(what, "cache_dir", entry["cache_dir"])
    message.shuffle = bool(entry["shuffle"])
    message.batch_size = _integer(what, "batch_size", entry["batch_size"])
    variables = entry["variables"]
    if isinstance(variables, str) or not isinstance(variables, (dict, list, tuple)):
        raise TypeError(f"save: {what}: 'variables' must be the dataset's variable names (a "
                        f"list, or a dict whose keys are the names), got {variables!r}")
    for name in variables:  # a dict gives its keys, as nnabla's `variable.extend(dict)`
        message.variable.append(_text_value(what, "variables", name))
    message.no_image_normalization = bool(entry["no_image_normalization"])
    return message


def _dataset_names(what: str, value, datasets: dict) -> list[str]:
    """The dataset names `value` (a name, or a list of names) gives, checked. As nnabla's, a
    single name is dropped when no datasets are saved (an optimizer for transfer
    learning)."""
    if value is None:
        return []
    if isinstance(value, str):
        if value in datasets or not datasets:
            return [value] if value in datasets else []
        names = [value]
    elif isinstance(value, (list, tuple)):
        names = list(value)
    else:
        raise TypeError(f"save: {what}: 'dataset' must be a dataset name or a list of them, "
                        f"got {value!r}")
    for name in names:
        if name not in datasets:
            raise ValueError(f"save: {what}: dataset {name!r} is not among "
                             f"contents['datasets'] ({', '.join(map(repr, datasets)) or 'none'}"
                             "); add it there or name one of them")
    return names


def _network(what: str, name, networks: dict):
    if name not in networks:
        raise ValueError(f"save: {what} uses network {name!r}, which is not among the "
                         f"networks ({', '.join(map(repr, networks)) or 'none'})")
    return networks[name]


def _names(what: str, kind: str, names, declared, network: str) -> list[str]:
    if isinstance(names, str) or not isinstance(names, (list, tuple, dict)):
        raise TypeError(f"save: {what}: {kind} must be a list of variable names, got "
                        f"{names!r}")
    names = list(names)
    for name in names:
        if declared is not None and name not in declared:
            raise ValueError(f"save: {what}: {kind} {name!r} is not a variable of network "
                             f"{network!r}")
    return names


def _assignments(what: str, kind: str, mapping, declared, network: str) -> dict:
    if not isinstance(mapping, dict):
        raise TypeError(f"save: {what}: {kind} must be a dict of network variable name -> "
                        f"dataset variable name, got {mapping!r}")
    _names(what, kind, list(mapping), declared, network)
    return {name: _text_value(what, kind, data) for name, data in mapping.items()}


def _solver_parameter_field(solver_type: str):
    """The `<type>_param` field of nnabla's Solver message for `solver_type`, or None."""
    for field in _messages()("Solver").DESCRIPTOR.oneofs_by_name["parameter"].fields:
        if field.message_type.name == f"{solver_type}Parameter":
            return field
    return None


def _solver_type(what: str, solver) -> str:
    missing = [a for a in ("name", "info", "get_parameters") if not hasattr(solver, a)]
    if missing:
        raise TypeError(f"save: {what}: 'solver' must be a solver such as S.Adam() (with "
                        f"name, info and get_parameters()), got {type(solver).__name__}")
    return re.sub(r"Cuda$", "", str(solver.name))  # nnabla's AdamCuda is an Adam


def _optimizer(entry: dict, networks: dict, datasets: dict, with_states: bool):
    name = entry["name"]
    what = f"optimizer {name!r}"
    solver = entry["solver"]
    solver_type = _solver_type(what, solver)
    field = _solver_parameter_field(solver_type)
    if field is None:
        known = [f.message_type.name[:-len("Parameter")] for f in
                 _messages()("Solver").DESCRIPTOR.oneofs_by_name["parameter"].fields]
        raise ValueError(f"save: {what}: nnabla's format has no message for the "
                         f"hyper-parameters of a {solver_type} solver; use one of "
                         f"{', '.join(known)}")
    message = _messages()("Optimizer")(name=_text_value(what, "name", name))
    if networks:  # (without networks nnabla writes "None": an optimizer for transfer learning)
        network, _, parameter_names, outputs = _network(what, entry["network"], networks)
        network_name = entry["network"]
        declared = {v.name for v in network.variable}
    else:
        network_name, declared, outputs = "None", None, None
        parameter_names = list(_parameter.get_parameters())  # nnabla's nn.get_parameters()
    message.network_name = network_name
    message.dataset_name.extend(_dataset_names(what, entry["dataset"], datasets))
    message.solver.type = solver_type
    info = solver.info
    hyper = getattr(message.solver, field.name)
    hyper.SetInParent()
    for item in hyper.DESCRIPTOR.fields:
        if item.name not in info:
            raise ValueError(f"save: {what}: the {solver_type} solver's info lacks "
                             f"{item.name!r}, which nnabla's {field.message_type.name} holds")
        setattr(hyper, item.name, info[item.name])
    message.solver.weight_decay = _real(what, "weight_decay", entry["weight_decay"])
    message.solver.lr_decay = _real(what, "lr_decay", entry["lr_decay"])
    message.solver.lr_decay_interval = _integer(what, "lr_decay_interval",
                                                entry["lr_decay_interval"])
    message.update_interval = _integer(what, "update_interval", entry["update_interval"])
    data = _assignments(what, "data_variables", entry.get("data_variables", {}), declared,
                        network_name)
    for var_name, data_name in data.items():
        message.data_variable.add(variable_name=var_name, data_name=data_name)
    if outputs is not None:
        for loss in _names(what, "loss_variables", entry.get("loss_variables", outputs),
                           declared, network_name):
            message.loss_variable.add(variable_name=loss)
    held = solver.get_parameters()
    for param in parameter_names:
        message.parameter_variable.add(variable_name=param,
                                       learning_rate_multiplier=1.0 if param in held else 0.0)
    for var_name in _names(what, "generator_variables", entry.get("generator_variables", []),
                           declared, network_name):
        message.generator_variable.add(variable_name=var_name, type="Constant", multiplier=0)
    if with_states:
        _set_states(what, message.solver, solver)
    return message


def _set_states(what: str, message, solver) -> None:
    """nnabla's `solver.set_states_to_protobuf`: each parameter's update count and state
    arrays in the Solver message's `states` map."""
    import numpy

    if not hasattr(solver, "get_states"):
        raise TypeError(f"save: {what}: include_solver_state=True needs the solver's "
                        "get_states()")
    for key, state in solver.get_states().items():
        entry = message.states[key]
        entry.t = int(state.t)
        for state_name, value in state.pstate.items():
            array = numpy.asarray(getattr(value, "d", value), dtype=numpy.float32)
            stored = entry.state_parameter[state_name]
            stored.shape.dim.extend(array.shape)
            stored.data.extend(array.ravel().tolist())


def _state_members(optimizers: list, solver_state_format: str) -> list[tuple[str, bytes]]:
    """The .nnp members nnabla's save writes for include_solver_state=True: per optimizer
    `<name>_<type>_optimizer.h5.optimizer` (the solver's save_states .h5), or one
    `optimizer.protobuf.optimizer` holding every optimizer's states."""
    if solver_state_format == ".protobuf":
        proto = _messages()("NNablaProtoBuf")()
        for entry in optimizers:
            what = f"optimizer {entry['name']!r}"
            message = proto.optimizer.add(name=entry["name"])
            message.solver.type = _solver_type(what, entry["solver"])
            _set_states(what, message.solver, entry["solver"])
        return [(_PROTO_STATES, proto.SerializeToString())]
    members = []
    with tempfile.TemporaryDirectory(prefix="symcompile-nnp-") as folder:
        for index, entry in enumerate(optimizers):
            solver = entry["solver"]
            what = f"optimizer {entry['name']!r}"
            if not hasattr(solver, "save_states"):
                raise TypeError(f"save: {what}: include_solver_state=True needs the solver's "
                                "save_states()")
            path = Path(folder) / f"state{index}.h5"
            solver.save_states(path)
            members.append((f"{entry['name']}_{_solver_type(what, solver)}_optimizer.h5"
                            ".optimizer", path.read_bytes()))
    return members


def _monitor(entry: dict, networks: dict, datasets: dict):
    name = entry["name"]
    what = f"monitor {name!r}"
    network, _, _, outputs = _network(what, entry["network"], networks)
    declared = {v.name for v in network.variable}
    names = _dataset_names(what, entry["dataset"], datasets)
    if not names:
        raise ValueError(f"save: {what}: 'dataset' names no dataset of contents['datasets'] "
                         f"({', '.join(map(repr, datasets)) or 'none'}); nnabla needs one to "
                         "monitor on")
    message = _messages()("Monitor")(name=_text_value(what, "name", name),
                                      network_name=entry["network"])
    message.dataset_name.extend(names)
    data = _assignments(what, "data_variables", entry.get("data_variables", {}), declared,
                        entry["network"])
    for var_name, data_name in data.items():
        message.data_variable.add(variable_name=var_name, data_name=data_name)
    for var_name in _names(what, "monitor_variables", entry.get("monitor_variables", outputs),
                           declared, entry["network"]):
        message.monitor_variable.add(type="Error", variable_name=var_name)
    for var_name in _names(what, "generator_variables", entry.get("generator_variables", []),
                           declared, entry["network"]):
        message.generator_variable.add(variable_name=var_name, type="Constant", multiplier=0)
    return message


def _executor(executor: dict, networks: dict):
    name, network = executor["name"], executor["network"]
    if network not in networks:
        raise ValueError(f"save: executor {name!r} runs network {network!r}, which is not "
                         f"among the networks ({', '.join(map(repr, networks)) or 'none'})")
    message, inputs, parameters, outputs = networks[network]
    declared = {v.name for v in message.variable}
    remap = executor.get("remp", {})
    entry = _messages()("Executor")(name=name, network_name=network)
    for key in _EXECUTOR_SETTINGS:
        if key in executor:
            setattr(entry, key, executor[key])
    for kind, names in (("data", executor.get("data", inputs)),
                        ("output", executor.get("output", outputs))):
        for var_name in names:
            if var_name not in declared:
                raise ValueError(f"save: executor {name!r}: {kind} variable {var_name!r} is "
                                 f"not in network {network!r}")
            target = entry.data_variable if kind == "data" else entry.output_variable
            target.add(variable_name=var_name, data_name=remap.get(var_name, var_name))
    for var_name in parameters:
        entry.parameter_variable.add(variable_name=var_name)
    return entry


def _text(proto) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(proto)


def _add_parameters(proto, params: dict) -> None:
    for name, var in params.items():
        entry = proto.parameter.add(variable_name=name, need_grad=bool(var.need_grad))
        entry.shape.dim.extend(var.shape)
        entry.data.extend(var.d.astype("float32").ravel().tolist())


def _nnp_bytes(proto, params: dict, parameter_format: str,
               members: list[tuple[str, bytes]] = ()) -> bytes:
    with tempfile.TemporaryDirectory(prefix="symcompile-nnp-") as folder:
        path = Path(folder) / f"parameter{parameter_format}"
        _parameter.save_parameters(path, params)
        parameter_bytes = path.read_bytes()
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("nnp_version.txt", f"{NNP_VERSION}\n")
        archive.writestr("network.nntxt", _text(proto))
        archive.writestr(f"parameter{parameter_format}", parameter_bytes)
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()
