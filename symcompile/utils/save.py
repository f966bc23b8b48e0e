"""nnabla's `nnabla.utils.save`: networks, executors and parameters in nnabla's files.

`save("model.nnp", contents)` writes what real nnabla 1.39 writes and reads: a zip of
`nnp_version.txt`, `network.nntxt` (the `NNablaProtoBuf` message in protobuf's text
format) and `parameter.h5` (or `.protobuf`). `.nntxt`/`.prototxt` and `.protobuf` files
hold the message alone, as text or binary, with the parameters when `include_params`.
The networks come from `symcompile.frontend.nnp_network`; files are written atomically.
"""

from __future__ import annotations

import tempfile
import zipfile
from io import BytesIO
from pathlib import Path

from symcompile.common.files import atomic_write_bytes
from symcompile.frontend import parameter as _parameter
from symcompile.frontend.nnp_network import NnpError, network_message

__all__ = ["save", "NnpError"]

NNP_VERSION = "0.1"  # nnp_version.txt of nnabla 1.39's files
_SUPPORTED = ("global_config", "training_config", "networks", "executors")
_EXECUTOR_SETTINGS = ("no_image_normalization", "num_evaluations", "repeat_evaluation_type",
                      "need_back_propagation")


def _messages():
    try:
        from symcompile.common.nnabla_proto import message_class
    except ImportError:  # pragma: no cover - protobuf is missing
        raise ImportError("nnabla's file formats need protobuf: pip install protobuf") from None
    return message_class


def save(filename, contents, include_params=False, variable_batch_size=True, extension=".nnp",
         parameters=None, parameter_format=".h5", include_solver_state=False,
         solver_state_format=".h5"):
    """Write `contents` (nnabla's dict: 'networks', 'executors', 'global_config',
    'training_config') to `filename`; the format is the file's extension (or
    `extension`): .nnp, .nntxt/.prototxt or .protobuf.

    `parameters` (name -> Variable) defaults to every parameter, trainable or not.
    """
    ext = Path(str(filename)).suffix or extension
    if ext not in (".nnp", ".nntxt", ".prototxt", ".protobuf"):
        raise ValueError(f"save: {filename}: unsupported extension {ext!r}; use .nnp, .nntxt, "
                         ".prototxt or .protobuf")
    if include_solver_state:
        raise ValueError("save: include_solver_state=True is not supported; save the "
                         "solvers' states with solver.save_states(path)")
    if parameter_format not in (".h5", ".protobuf"):
        raise ValueError(f"save: parameter_format must be '.h5' or '.protobuf', got "
                         f"{parameter_format!r}")
    unknown = sorted(set(contents) - set(_SUPPORTED))
    if unknown:
        raise ValueError(f"save: contents {', '.join(map(repr, unknown))} are not supported "
                         f"(symcompile writes {', '.join(_SUPPORTED)}); leave them out")
    params = _parameter.get_parameters(grad_only=False) if parameters is None else parameters
    proto = _proto(contents, variable_batch_size)
    if ext == ".nnp":
        data = _nnp_bytes(proto, params, parameter_format)
    else:
        if include_params:
            _add_parameters(proto, params)
        data = (proto.SerializeToString() if ext == ".protobuf"
                else _text(proto).encode("utf-8"))
    atomic_write_bytes(filename, data)


def _proto(contents: dict, variable_batch_size: bool):
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
        networks[net["name"]] = (message, inputs, parameters, list(net["outputs"]))
    for executor in contents.get("executors", []):
        proto.executor.append(_executor(executor, networks))
    return proto


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


def _nnp_bytes(proto, params: dict, parameter_format: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="symcompile-nnp-") as folder:
        path = Path(folder) / f"parameter{parameter_format}"
        _parameter.save_parameters(path, params)
        parameter_bytes = path.read_bytes()
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("nnp_version.txt", f"{NNP_VERSION}\n")
        archive.writestr("network.nntxt", _text(proto))
        archive.writestr(f"parameter{parameter_format}", parameter_bytes)
    return buffer.getvalue()
