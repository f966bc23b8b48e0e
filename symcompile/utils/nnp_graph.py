"""nnabla's `nnabla.utils.nnp_graph`: `NnpLoader` reads networks from nnabla's files
(`.nnp`, `.nntxt`/`.prototxt`, `.protobuf`) written by nnabla, Neural Network Console or
`symcompile.utils.save`, and builds them as symcompile graphs.

    nnp = NnpLoader("model.nnp")
    net = nnp.get_network("net", batch_size=1)
    net.inputs["x"].d = ...; y = net.outputs["y"]; y.forward()

Reading runs no code: an `.nnp` is a zip whose members are read by kind (text or binary
protobuf messages, parameter files read as `nn.load_parameters` reads them), never
extracted by name, and each member's size is checked against memory before it is read.
"""

from __future__ import annotations

import tempfile
import zipfile
from collections import OrderedDict
from pathlib import Path

from symcompile.common import memory
from symcompile.common.checkpoint import CheckpointError, Spec, load_arrays
from symcompile.frontend import parameter as _parameter
from symcompile.frontend.nnp_network import NnpError, build_network
from symcompile.frontend.variable import Variable

__all__ = ["NnpLoader", "NnpNetwork", "NnpError", "read_nnp"]

_TEXT = (".nntxt", ".prototxt")


def _document():
    try:
        from symcompile.common.nnabla_proto import message_class
    except ImportError:  # pragma: no cover - protobuf is missing
        raise ImportError("nnabla's file formats need protobuf: pip install protobuf") from None
    return message_class("NNablaProtoBuf")()


def _merge(proto, path: str, ext: str, data: bytes) -> None:
    from google.protobuf import message, text_format

    try:
        if ext in _TEXT:
            text_format.Merge(data.decode("utf-8"), proto)
        else:
            proto.MergeFromString(data)
    except (message.DecodeError, text_format.ParseError, UnicodeDecodeError) as exc:
        raise NnpError(f"{path}: not one of nnabla's {ext} files ({exc})") from exc


def _parameters_of(proto) -> dict:
    """Parameters held in the message itself (.protobuf files, or with include_params)."""
    import numpy

    arrays = {}
    for entry in proto.parameter:
        shape = tuple(int(d) for d in entry.shape.dim)
        if any(d < 0 for d in shape) or numpy.prod(shape, dtype=numpy.int64) != len(entry.data):
            raise NnpError(f"parameter {entry.variable_name!r} has shape {shape} but "
                           f"{len(entry.data)} values")
        arrays[entry.variable_name] = (numpy.asarray(entry.data, numpy.float32).reshape(shape),
                                       bool(entry.need_grad))
    del proto.parameter[:]
    return arrays


def _parameter_file(path: str, ext: str, data: bytes) -> dict:
    with tempfile.TemporaryDirectory(prefix="symcompile-nnp-") as folder:
        member = Path(folder) / f"parameter{ext}"
        member.write_bytes(data)
        try:
            arrays, attributes = load_arrays(member, lambda names: {
                name: Spec(f"parameter {name!r}") for name in names})
        except CheckpointError as exc:
            raise NnpError(f"{path}: its parameters: {exc}") from exc
    return {name: (value, bool(attributes.get(name, {}).get("need_grad", True)))
            for name, value in arrays.items()}


def read_nnp(path, extension=".nntxt"):
    """(NNablaProtoBuf message, parameters name -> (array, need_grad)) of one file."""
    path = str(path)
    ext = Path(path).suffix or extension
    proto, parameters = _document(), {}
    if ext == ".nnp":
        try:
            archive = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise NnpError(f"{path}: not an .nnp file (a zip archive): {exc}") from exc
        with archive:
            for info in archive.infolist():
                kind = Path(info.filename).suffix
                if kind not in (*_TEXT, ".protobuf", ".h5"):
                    continue  # nnp_version.txt, and what nnabla does not read either
                limit = memory.physical_memory()
                if limit is not None and info.file_size * 4 > limit:
                    raise NnpError(f"{path}: member {info.filename!r} declares "
                                   f"{memory.size_text(info.file_size)}, more than this "
                                   "machine can read")
                data = archive.read(info)
                if kind == ".h5":
                    parameters.update(_parameter_file(path, kind, data))
                else:
                    _merge(proto, path, kind, data)
                    parameters.update(_parameters_of(proto))
    elif ext in (*_TEXT, ".protobuf"):
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise NnpError(f"{path}: cannot be read: {exc}") from exc
        _merge(proto, path, ext, data)
        parameters.update(_parameters_of(proto))
    elif ext == ".h5":
        parameters.update(_parameter_file(path, ext, Path(path).read_bytes()))
    else:
        raise NnpError(f"{path}: unsupported extension {ext!r}; use .nnp, .nntxt, .prototxt "
                       "or .protobuf")
    return proto, parameters


class NnpNetwork:
    """A network read from a file, built as a symcompile graph: `inputs`, `outputs` and
    `variables`, each a dict from the file's variable names to Variables."""

    def __init__(self, built) -> None:
        self.name = built.name
        self.batch_size = built.batch_size
        self._inputs, self._outputs = built.inputs, built.outputs
        self._variables = built.variables

    @property
    def inputs(self) -> dict:
        return self._inputs

    @property
    def outputs(self) -> dict:
        return self._outputs

    @property
    def variables(self) -> dict:
        return self._variables


class NnpLoader:
    """Reads nnabla's file `filepath`; `get_network(name, batch_size)` builds a network
    of it, with the file's parameters, which it also puts in the current parameter scope
    (as nnabla does)."""

    def __init__(self, filepath, scope=None, extension=".nntxt") -> None:
        self._proto, arrays = read_nnp(filepath, extension)
        self._path = str(filepath)
        self._params = scope if scope is not None else OrderedDict()
        for name, (value, need_grad) in arrays.items():
            var = Variable(value.shape, need_grad=need_grad)
            var.d = value
            self._params[name] = var
        self._networks = {net.name: net for net in self._proto.network}

    def get_network_names(self) -> list[str]:
        return list(self._networks)

    def get_network(self, name, batch_size=None, callback=None) -> NnpNetwork:
        if callback is not None:
            raise NotImplementedError("NnpLoader.get_network: callback (nnabla's graph "
                                      "rewriting hooks) is not supported")
        if name not in self._networks:
            raise NnpError(f"{self._path}: no network {name!r}; it has "
                           f"{', '.join(map(repr, self._networks)) or 'none'}")
        network = NnpNetwork(build_network(self._networks[name], self._params, batch_size))
        with _parameter.parameter_scope("", _parameter.get_current_parameter_scope()):
            for key, var in network.variables.items():
                if key in self._params:
                    _parameter.set_parameter(key, var)
        return network

    @property
    def executors(self) -> dict:
        """The file's executors by name: (network name, data names, output names)."""
        return {e.name: (e.network_name, [v.variable_name for v in e.data_variable],
                         [v.variable_name for v in e.output_variable])
                for e in self._proto.executor}
