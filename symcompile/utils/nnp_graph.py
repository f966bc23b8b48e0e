"""nnabla's `nnabla.utils.nnp_graph`: `NnpLoader` reads networks from nnabla's files
(`.nnp`, `.nntxt`/`.prototxt`, `.protobuf`) written by nnabla, Neural Network Console or
`symcompile.utils.save`, and builds them as symcompile graphs.

    nnp = NnpLoader("model.nnp")
    net = nnp.get_network("net", batch_size=1)
    net.inputs["x"].d = ...; y = net.outputs["y"]; y.forward()

`get_network(name, batch_size, callback=NnpNetworkPass(...))` rewrites the network as
it builds it, with nnabla's hooks (`set_variable`, `remove_and_rewire`, `use_up_to`,
`fix_parameters`, ...), as nnabla's pretrained models use them.

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

__all__ = ["FileGraph", "NnpError", "NnpLoader", "NnpNetwork", "NnpNetworkPass", "ProtoExecutor",
           "read_nnp"]

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


# --- graph rewriting hooks (nnabla's NnpNetworkPass) ----------------------------------------

class NnpNetworkPass:
    """nnabla's hooks that rewrite a network as `NnpLoader.get_network(..., callback=)`
    builds it: replace an input by a Variable of the user's, drop or bypass functions,
    change their arguments, stop at a variable, freeze the parameters.

    The hooks run in nnabla's order on a copy of the file's network: the variable hooks
    (`on_generate_variable`, `set_variable`, `fix_parameters`) on every variable, then
    the function hooks by type and by name (`on_generate_function_by_*`: change
    `f.proto`, the function's message), then, in forward order, the passes
    (`on_function_pass_by_*`, `drop_function`, `remove_and_rewire`), and last
    `use_up_to`, which drops every function downstream of the named variables. The
    network's inputs and outputs are then those of what remains: variables no function
    computes, and variables no function reads. Each hook gets views of the network
    (`PassVariable`, `PassFunction`) whose `proto` is the message itself.

    Differences from nnabla 1.39, each where nnabla silently does something else:
    `on_function_pass_by_type` matches the function's type (nnabla files it under the
    function's name); `rewire_on` makes every reader of the variable read the rewired
    one (nnabla leaves the other readers an input without values); a variable hook or
    `use_up_to` naming no variable of the network is an error (nnabla ignores it).
    """

    def __init__(self, verbose=0) -> None:
        self._variable_callbacks: dict[str, tuple[str, object]] = {}
        self._function_callbacks_by_name: dict[str, object] = {}
        self._function_callbacks_by_type: dict[str, object] = {}
        self._passes_by_name: dict[str, object] = {}
        self._passes_by_type: dict[str, object] = {}
        self._fix_parameters = False
        self._use_up_to_variables: set[str] = set()
        self._verbose = int(verbose)

    def verbose(self, *args) -> None:
        """Print what a hook does, with `verbose` >= 1 (as nnabla's)."""
        if self._verbose:
            print(*args)

    # -- registering hooks (decorators: the hook is returned as it is) ---------------------
    def on_generate_variable(self, name, _by="on_generate_variable"):
        """`hook(v) -> v` on the variable `name` before the network is built."""
        def register(callback):
            self._variable_callbacks[str(name)] = (_by, callback)
            return callback
        return register

    def on_generate_function_by_name(self, name):
        """`hook(f) -> f` on the function named `name` before the network is built."""
        def register(callback):
            self._function_callbacks_by_name[str(name)] = callback
            return callback
        return register

    def on_generate_function_by_type(self, name):
        """`hook(f) -> f` on every function of type `name` (``"Convolution"``)."""
        def register(callback):
            self._function_callbacks_by_type[str(name)] = callback
            return callback
        return register

    def on_function_pass_by_name(self, name):
        """`hook(f, variables, param_scope)` on the function named `name`, in forward
        order, after the generate hooks: it may `f.disable()` it or rewire variables."""
        def register(callback):
            self._passes_by_name[str(name)] = callback
            return callback
        return register

    def on_function_pass_by_type(self, name):
        """`hook(f, variables, param_scope)` on every function of type `name`."""
        def register(callback):
            self._passes_by_type[str(name)] = callback
            return callback
        return register

    # -- nnabla's ready-made hooks ---------------------------------------------------------
    def drop_function(self, *names) -> None:
        """Remove the functions `names`: their outputs become inputs where still read."""
        def drop(f, variables, param_scope):
            self.verbose(f"Pass: Deleting {f.name}.")
            f.disable()

        for name in names:
            self.on_function_pass_by_name(name)(drop)

    def fix_parameters(self) -> None:
        """Build every variable, the parameters included, with need_grad=False."""
        self._fix_parameters = True

    def use_up_to(self, *names) -> None:
        """Keep only what computes the variables `names` and what does not depend on
        them: every function reading them, or reading what those compute, is dropped."""
        self._use_up_to_variables.update(str(n) for n in names)

    def remove_and_rewire(self, name, i=0, o=0) -> None:
        """Bypass the function `name`: what read its output `o` reads its input `i`."""
        @self.on_function_pass_by_name(name)
        def rewire(f, variables, param_scope):
            fi, fo = f.inputs[i], f.outputs[o]
            self.verbose(f"Removing {f.name} and rewire input={fi.name} and "
                         f"output={fo.name}.")
            fo.rewire_on(fi)
            fo.proto.name = fi.name  # the rewired variable keeps the input's name

    def set_variable(self, name, input_var) -> None:
        """Use the Variable `input_var` as the network's variable `name` (its shape
        becomes the variable's; `input_var` is renamed `name`)."""
        def replace(v):
            self.verbose(f"Replace {name} by {input_var}.")
            v.proto.shape.dim[:] = input_var.shape
            v.variable = input_var
            input_var.name = v.name
            return v

        self.on_generate_variable(name, _by="set_variable")(replace)

    def force_average_pooling_global(self, name, by_type=False) -> None:
        """Make the AveragePooling `name` (a type with `by_type`) pool over its whole
        input, as the file declares the input's shape."""
        register = self.on_generate_function_by_type if by_type \
            else self.on_generate_function_by_name

        @register(name)
        def force(f):
            pool_shape = f.inputs[0].proto.shape.dim[2:]
            self.verbose(f"Change strides of {f.name} to {pool_shape}.")
            param = f.proto.average_pooling_param
            param.kernel.dim[:] = pool_shape
            param.stride.dim[:] = pool_shape
            return f

    def check_average_pooling_global(self, name, by_type=False) -> None:
        """ValueError unless the AveragePooling `name` pools over its whole input."""
        register = self.on_generate_function_by_type if by_type \
            else self.on_generate_function_by_name

        @register(name)
        def check(f):
            pool_shape = list(f.inputs[0].proto.shape.dim[2:])
            param = f.proto.average_pooling_param
            if list(param.kernel.dim) != pool_shape or list(param.stride.dim) != pool_shape:
                raise ValueError(
                    f"{f.name}: the stride configuration of average pooling is not for "
                    f"global pooling: the image shape is {pool_shape}, whereas the pooling "
                    f"window is {list(param.kernel.dim)} with stride "
                    f"{list(param.stride.dim)}; consider force_global_pooling=True "
                    "(NnpNetworkPass.force_average_pooling_global)")
            return f

    def set_batch_normalization_batch_stat_all(self, batch_stat) -> None:
        """Set `batch_stat` of every BatchNormalization (False: use the running mean and
        variance, for inference)."""
        @self.on_generate_function_by_type("BatchNormalization")
        def set_batch_stat(f):
            self.verbose(f"Setting batch_stat={batch_stat} at {f.name}.")
            f.proto.batch_normalization_param.batch_stat = bool(batch_stat)
            return f


class PassVariable:
    """A variable of a network an `NnpNetworkPass` rewrites: `proto` is its message
    (`proto.shape.dim`, `proto.name` to rename it), `variable` the Variable to use for it
    (None: the network makes one), `need_grad`, `stop` (`use_up_to`)."""

    def __init__(self, network: _PassNetwork, proto, need_grad: bool) -> None:
        self._network = network
        self._name = proto.name
        self.proto = proto
        self.variable = None
        self.need_grad = bool(need_grad)
        self.stop = False

    @property
    def name(self) -> str:
        """The file's name (a rename through `proto.name` takes effect when the network is
        built)."""
        return self._name

    @property
    def parent(self) -> PassFunction | None:
        """The function computing this variable, or None."""
        return self._network.producer(self._name)

    @property
    def referrers(self) -> dict:
        """The functions reading this variable, by name."""
        return {f.name: f for f in self._network.readers(self._name)}

    @property
    def num_referrers(self) -> int:
        return len(self.referrers)

    def rewire_on(self, var: PassVariable) -> None:
        """This variable becomes `var`: what computes `var` computes it, its own function
        is dropped, and what reads either reads it."""
        own = self.parent
        if own is not None:
            own.disable()
        self._network.replace(var.name, self._name)
        self.variable = var.variable

    def __repr__(self) -> str:
        return f"<PassVariable {self._name!r}>"


class PassFunction:
    """A function of a network an `NnpNetworkPass` rewrites: `proto` is its message (its
    arguments in `proto.<type>_param`), `inputs` and `outputs` its variables."""

    def __init__(self, network: _PassNetwork, proto) -> None:
        self._network = network
        self.proto = proto
        self.disabled = False

    @property
    def name(self) -> str:
        return self.proto.name

    @property
    def inputs(self) -> list[PassVariable]:
        return [self._network.variable(n) for n in self.proto.input]

    @inputs.setter
    def inputs(self, variables) -> None:
        del self.proto.input[:]
        self.proto.input.extend(v.name for v in variables)

    @property
    def outputs(self) -> list[PassVariable]:
        return [self._network.variable(n) for n in self.proto.output]

    @outputs.setter
    def outputs(self, variables) -> None:
        del self.proto.output[:]
        self.proto.output.extend(v.name for v in variables)

    def disable(self) -> None:
        """Drop this function from the network: its outputs become inputs where other
        functions read them."""
        self.disabled = True

    def __repr__(self) -> str:
        return f"<PassFunction {self.name!r} ({self.proto.type})>"


class _PassNetwork:
    """A copy of a file's network that an `NnpNetworkPass` rewrites, and what it gives:
    the rewritten message and the Variables the hooks chose."""

    def __init__(self, proto, need_grad: dict[str, bool]) -> None:
        self.proto = type(proto)()
        self.proto.CopyFrom(proto)
        self.variables = {v.name: PassVariable(self, v, need_grad.get(v.name, False))
                          for v in self.proto.variable}
        self.functions = [PassFunction(self, f) for f in self.proto.function]

    def variable(self, name: str) -> PassVariable:
        if name not in self.variables:
            raise NnpError(f"network {self.proto.name!r}: a function reads or writes the "
                           f"variable {name!r}, which the network does not declare")
        return self.variables[name]

    def enabled(self) -> list[PassFunction]:
        return [f for f in self.functions if not f.disabled]

    def producer(self, name: str) -> PassFunction | None:
        return next((f for f in self.enabled() if name in f.proto.output), None)

    def readers(self, name: str) -> list[PassFunction]:
        return [f for f in self.enabled() if name in f.proto.input]

    def replace(self, old: str, new: str) -> None:
        """Every enabled function that computes or reads `old` does so with `new`."""
        for f in self.enabled():
            for names in (f.proto.input, f.proto.output):
                names[:] = [new if n == old else n for n in names]

    def run(self, callback: NnpNetworkPass, param_scope) -> None:
        """The hooks of `callback`, in nnabla's order."""
        for name, (by, _) in callback._variable_callbacks.items():
            if name not in self.variables:
                raise NnpError(f"NnpNetworkPass.{by}({name!r}): network {self.proto.name!r} "
                               f"has no variable {name!r}; its variables are "
                               f"{_listing(self.variables)}")
        for v in list(self.variables.values()):
            if v.name in callback._variable_callbacks:
                by, hook = callback._variable_callbacks[v.name]
                _returned(hook(v), v, PassVariable, f"{by}({v.name!r})")
            if callback._fix_parameters:
                v.need_grad = False
        for f in self.functions:
            for table, key, what in ((callback._function_callbacks_by_type, f.proto.type,
                                      "on_generate_function_by_type"),
                                     (callback._function_callbacks_by_name, f.name,
                                      "on_generate_function_by_name")):
                if key in table:
                    _returned(table[key](f), f, PassFunction, f"{what}({key!r})")
        variables = list(self.variables.values())
        for f in list(self.functions):  # the file's order: nnabla's forward order
            for table, key in ((callback._passes_by_type, f.proto.type),
                               (callback._passes_by_name, f.name)):
                if key in table and not f.disabled:
                    table[key](f, variables, param_scope)
        self._rename()
        self._stop(callback._use_up_to_variables)

    def _rename(self) -> None:
        """Apply the renames hooks made through `v.proto.name`."""
        for v in self.variables.values():
            if v.proto.name != v.name:
                self.replace(v.name, v.proto.name)

    def _stop(self, names: set[str]) -> None:
        final = {v.proto.name for v in self.variables.values()}
        unknown = sorted(names - final - set(self.variables))
        if unknown:
            raise NnpError(f"NnpNetworkPass.use_up_to: network {self.proto.name!r} has no "
                           f"variable {', '.join(map(repr, unknown))}; its variables are "
                           f"{_listing(self.variables)}")
        for v in self.variables.values():
            v.stop = v.stop or v.name in names or v.proto.name in names
        stopped = {v.proto.name for v in self.variables.values() if v.stop}
        for f in self.enabled():  # (forward order: what they compute stops too)
            if any(n in stopped for n in f.proto.input):
                f.disable()
                stopped.update(f.proto.output)

    def rewritten(self):
        """(the network's message with only the enabled functions and the renamed
        variables, the Variables the hooks gave, by name, need_grad by name)."""
        proto = type(self.proto)()
        proto.CopyFrom(self.proto)
        del proto.function[:]
        proto.function.extend(f.proto for f in self.enabled())
        del proto.variable[:]
        given, need_grad = {}, {}
        for v in self.variables.values():
            name = v.proto.name
            if name not in need_grad:  # (two merged by a rewire: the first declared)
                proto.variable.add().CopyFrom(v.proto)
                need_grad[name] = v.need_grad
            if v.variable is not None:
                if given.get(name, v.variable) is not v.variable:
                    raise NnpError(f"network {self.proto.name!r}: two Variables were given "
                                   f"for the variable {name!r} (set_variable on two "
                                   "variables a rewire merges); give it one")
                given[name] = v.variable
        computed = {n for f in proto.function for n in f.output}
        for name in given:
            if name in computed:
                raise NnpError(f"NnpNetworkPass: the variable {name!r} of network "
                               f"{self.proto.name!r} is given a Variable but a function "
                               "computes it; set_variable replaces inputs: drop or rewire "
                               "the function that computes it first")
        return proto, given, need_grad


def _listing(names) -> str:
    names = list(names)
    return ", ".join(map(repr, names[:12])) + (", ..." if len(names) > 12 else "")


def _returned(value, given, kind, hook: str) -> None:
    """A generate hook returns what it was given (nnabla builds from the return value)."""
    if value is not given:
        raise TypeError(f"NnpNetworkPass.{hook}: the hook returned {value!r}; return the "
                        f"{kind.__name__} it was given ({given!r}), changed in place")


# --- what the loader exposes of the file besides its networks ------------------------------

class ProtoExecutor:
    """An executor of the file, as nnabla's `nnabla.core.graph_def.ProtoExecutor` read
    from a file: `proto` is the `Executor` message (`network_name`, `data_variable`,
    `output_variable`, `parameter_variable`, ...); `renaming` and `network_name` are
    None, as nnabla leaves them for a file (they are set only when saving)."""

    def __init__(self, proto) -> None:
        self.proto = proto
        self.renaming = None
        self.network_name = None

    def __repr__(self) -> str:
        return f"<ProtoExecutor {self.proto.name!r} of network {self.proto.network_name!r}>"


class FileGraph:
    """`NnpLoader.g`: of what nnabla's loader keeps there (a `ProtoGraph`), the file's
    executors by name and the loader's parameter scope. nnabla's loader keeps nothing
    of the training sections (optimizers, monitors, datasets, training_config): nnabla
    reads those with `nnabla.utils.load.load`, not with `NnpLoader`. Its networks are
    built with `NnpLoader.get_network`."""

    def __init__(self, proto, parameter_scope) -> None:
        self.executors = OrderedDict((e.name, ProtoExecutor(e)) for e in proto.executor)
        self.parameter_scope = parameter_scope

    def __repr__(self) -> str:
        return f"<FileGraph executors={list(self.executors)}>"


class NnpLoader:
    """Reads nnabla's file `filepath`; `get_network(name, batch_size, callback)` builds a
    network of it, with the file's parameters, which it also puts in the current
    parameter scope (as nnabla does); `callback` is an `NnpNetworkPass`. `g.executors`
    holds the file's executors as nnabla's loader does (see `FileGraph`)."""

    def __init__(self, filepath, scope=None, extension=".nntxt") -> None:
        self._proto, arrays = read_nnp(filepath, extension)
        self._path = str(filepath)
        self._params = scope if scope is not None else OrderedDict()
        self._need_grad = {}
        for name, (value, need_grad) in arrays.items():
            var = Variable(value.shape, need_grad=need_grad)
            var.d = value
            self._params[name] = var
            self._need_grad[name] = need_grad
        self._networks = {net.name: net for net in self._proto.network}
        self.g = FileGraph(self._proto, self._params)

    def get_network_names(self) -> list[str]:
        return list(self._networks)

    def get_network(self, name, batch_size=None, callback=None) -> NnpNetwork:
        """The network `name` built as a symcompile graph, its -1 dimensions set to
        `batch_size` (default: the file's), rewritten by `callback` (an
        `NnpNetworkPass`) if given. Its parameters are the loader's Variables, their
        need_grad the file's (False with `fix_parameters`), as nnabla sets them anew for
        each network it builds."""
        if name not in self._networks:
            raise NnpError(f"{self._path}: no network {name!r}; it has "
                           f"{', '.join(map(repr, self._networks)) or 'none'}")
        proto, given, need_grad = self._networks[name], {}, dict(self._need_grad)
        if callback is not None:
            if not isinstance(callback, NnpNetworkPass):
                raise TypeError(f"NnpLoader.get_network({name!r}): callback must be an "
                                f"NnpNetworkPass (nnabla's only kind), got "
                                f"{type(callback).__name__}")
            rewriting = _PassNetwork(proto, need_grad)
            rewriting.run(callback, self._params)
            proto, given, need_grad = rewriting.rewritten()
        network = NnpNetwork(build_network(proto, self._params, batch_size, given=given,
                                           declared_shapes=callback is None))
        for key, var in network.variables.items():
            if key in need_grad and key not in given and (key in self._params
                                                          or key in network.inputs):
                var.need_grad = need_grad[key]
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
