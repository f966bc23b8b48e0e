"""Graphs as nnabla's `Network` messages and back: the network part of `.nnp` files.

Writing walks the graph of the outputs and writes one nnabla function per recorded
`F.*` node, with nnabla's type name and `<type>_param` arguments, as `nnabla_arguments`
maps them from the node's (the mapping `Function.info.args` shows too). Names follow
nnabla's writer: `@<network>/<Type>` for functions (`_1`, `_2`, ... when repeated),
`<function>_out` for their outputs, scope paths for parameters.

Reading calls the `F.*` function of each nnabla function, in the file's order, with the
file's arguments, so the graph is built, and checked, as if written by hand. Only the
arguments whose Python spelling differs from the function's are translated (`_IMPORT`).

With a variable batch size (nnabla's default), the first dimension of the variables
that depend on the network's inputs is written as -1 and filled with the batch size on
reading, as nnabla does; unlike nnabla's writer, a function with `base_axis` other than
1 is kept as it is (nnabla folds the leading axes into one).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

from symcompile.common.nnabla_proto import is_repeated, message_class
from symcompile.frontend import functions as F
from symcompile.frontend.functions import arrays, detection
from symcompile.frontend.nnabla_arguments import (
    NnablaCall,
    NotAnNnablaFunction,
    nnabla_call,
    parameter_layout,
)
from symcompile.frontend.parameter import parameter_keys_by_storage
from symcompile.frontend.variable import Variable
from symcompile.ops.inq import OPS as INQ_OPS
from symcompile.ops.inq import positions as inq_positions
from symcompile.ops.registry import OPS


class NnpError(ValueError):
    """A network cannot be written as, or read from, nnabla's format."""


# --- writing --------------------------------------------------------------------------------

def _call_of(func) -> NnablaCall:
    """nnabla's function for one node, or NnpError naming the node and why not."""
    try:
        return nnabla_call(func)
    except NotAnNnablaFunction as exc:
        raise NnpError(f"{exc.function}: cannot be written to an nnabla network: "
                       f"{exc.why}") from None


def _set_field(message, name: str, value) -> None:
    target = getattr(message, name)
    kind = message.DESCRIPTOR.fields_by_name[name]
    if kind.message_type is not None and kind.message_type.name == "Communicator":
        target.SetInParent()  # (nnabla's message has no fields: a process cannot be written)
    elif kind.message_type is not None:  # Shape
        target.dim.extend(int(d) for d in value)
    elif is_repeated(kind):
        target.extend(_scalar(kind, v) for v in value)
    else:
        setattr(message, name, _scalar(kind, value))


def _scalar(kind, value):
    """A node's argument (a Python or SymPy number, a string) as the field's type."""
    if kind.type == kind.TYPE_BOOL:
        return bool(value)
    if kind.type in (kind.TYPE_FLOAT, kind.TYPE_DOUBLE):
        return float(value)
    if kind.type == kind.TYPE_STRING:
        return str(value)
    return int(value)


def _file_inputs(func) -> tuple:
    """The inputs of the node that nnabla's function takes: an INQ node's but its hidden
    state and its draw, which are symcompile's (F.inq_* makes them anew on reading, as
    nnabla's function starts its own)."""
    if func.op.name in INQ_OPS:
        where = inq_positions(func.args, len(func.inputs))
        return tuple(func.inputs[where[name]] for name in ("x", "weight", "indicators", "bias")
                     if name in where)
    return tuple(func.inputs)


def _graph_order(outputs) -> list:
    """The graph's nodes, each after the nodes of its inputs (iteratively: deep graphs)."""
    order, seen = [], set()
    stack = [(var, False) for var in reversed(outputs)]
    while stack:
        var, expanded = stack.pop()
        func = var.parent
        if func is None or (id(func) in seen and not expanded):
            continue
        if expanded:
            if id(func) not in seen:
                seen.add(id(func))
                order.append(func)
            continue
        stack.append((var, True))
        stack.extend((v, False) for v in reversed(_file_inputs(func)) if v.parent is not None
                     and id(v.parent) not in seen)
    return order


@dataclass
class _Names:
    """Names of the network's variables: given, parameter keys, or nnabla's `_out`."""

    network: str
    given: dict[int, str]
    parameters: dict[int, str] = field(default_factory=parameter_keys_by_storage)
    names: dict[int, str] = field(default_factory=dict)
    taken: set = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)

    def function(self, type_name: str) -> str:
        count = self.counts.get(type_name, 0)
        self.counts[type_name] = count + 1
        return f"@{self.network}/{type_name}" + (f"_{count}" if count else "")

    def of(self, var: Variable, default: str) -> str:
        key = id(var._storage)
        if key not in self.names:
            name = self.given.get(key) or self.parameters.get(key) or default
            if name in self.taken:
                raise NnpError(f"network {self.network!r}: two variables are named {name!r}; "
                               "give them different names in 'names' and 'outputs'")
            self.taken.add(name)
            self.names[key] = name
        return self.names[key]


def network_message(name: str, batch_size: int, outputs: dict, names: dict,
                    variable_batch_size: bool = True):
    """nnabla's `Network` message of the graph computing `outputs` (name -> Variable),
    its variables named by `names` (name -> Variable) where given; and the names of its
    inputs and parameters."""
    if not outputs:
        raise NnpError(f"network {name!r}: 'outputs' is empty; give the Variables the "
                       "network computes as {'name': variable}")
    for what, table in (("outputs", outputs), ("names", names)):
        for key, var in table.items():
            if not isinstance(var, Variable):
                raise NnpError(f"network {name!r}: {what}[{key!r}] must be a Variable, got "
                               f"{type(var).__name__}")
    given = {id(var._storage): key for key, var in {**names, **outputs}.items()}
    naming = _Names(name, given)
    proto = message_class("Network")(name=name, batch_size=int(batch_size))
    variables, kinds, batched = [], {}, set()
    other_shapes: dict[str, tuple] = {}  # outputs no node computes, whose shapes it knows
    inputs, parameters = [], []

    def declare(var, default, kind):
        var_name = naming.of(var, default)
        if var_name not in kinds:
            kinds[var_name] = kind
            variables.append((var_name, var))
        return var_name

    for func in _graph_order(list(outputs.values())):
        call = _call_of(func)
        type_name, values, position, count = (call.type_name, call.arguments, call.position,
                                              call.count)
        function_name = naming.function(type_name)
        input_names = []
        for var in _file_inputs(func):
            if var.parent is None:
                is_parameter = id(var._storage) in naming.parameters \
                    and id(var._storage) not in given
                if not is_parameter and id(var._storage) not in given:
                    _check_not_a_removed_parameter(name, func, len(input_names), var)
                input_name = declare(var, f"{function_name}_input{len(input_names)}",
                                     "Parameter" if is_parameter else "Buffer")
                if not is_parameter:
                    batched.add(input_name)
                    if input_name not in inputs:
                        inputs.append(input_name)
                elif input_name not in parameters:
                    parameters.append(input_name)
            else:
                input_name = naming.of(var, "")
            input_names.append(input_name)
        if count is None:  # one output per input (Meshgrid)
            count = len(func.inputs)
        output_names = [f"{function_name}_out_{i}" if count > 1 else f"{function_name}_out"
                        for i in range(count)]
        for out in func.outputs:
            output_names[position] = declare(out, output_names[position], "Buffer")
        for i, out_name in enumerate(output_names):
            if i != position and out_name not in kinds:
                kinds[out_name] = "Buffer"
                variables.append((out_name, None))
        parts = _sibling_ops(type_name, func.args)
        if parts:  # every output's shape, so that a reader finds the counts
            for out_name, part in zip(output_names, parts, strict=True):
                other_shapes[out_name] = OPS[part].infer_shape(
                    tuple(v.shape for v in func.inputs), func.args)
        if any(n in batched for n in input_names):
            batched.update(output_names)
        message = proto.function.add(name=function_name, type=type_name)
        message.input.extend(input_names)
        message.output.extend(output_names)
        layout = parameter_layout(type_name)
        if layout:
            param = getattr(message, layout[0])
            param.SetInParent()
            for key, value in values.items():
                _set_field(param, key, value)
        if variable_batch_size and type_name in ("Reshape", "Broadcast") \
                and any(n in batched for n in input_names):
            _batch_placeholder(message, layout[0], batch_size)
    shapes = _shapes(variables, proto.function, other_shapes)
    for var_name, _ in variables:
        shape = list(shapes[var_name])
        if variable_batch_size and var_name in batched and shape and shape[0] == batch_size:
            shape[0] = -1
        entry = proto.variable.add(name=var_name, type=kinds[var_name])
        entry.shape.dim.extend(shape)
    return proto, inputs, parameters


def _check_not_a_removed_parameter(network: str, func, position: int, var) -> None:
    """Refuse an unnamed leaf that `get_parameter_or_create` made (PF's weights) but the
    parameter registry no longer holds (`nn.clear_parameters()`, `pop_parameter`).

    nnabla 1.39 writes such a leaf as an input (a Buffer, `@net/Affine_in_1`) and its
    values nowhere, so the file silently loses the trained weights; here the user says
    which is meant. A leaf the registry never held (a plain `nn.Variable`) is an input."""
    if var._storage.init is None:  # (set only on the parameters the scope created)
        return
    where = f" (at {func.callsite.display})" if func.callsite else ""
    label = f" {var.name!r}" if var.name else ""
    raise NnpError(
        f"network {network!r}: input {position} of F.{func.op.name}{where}, the leaf{label} "
        f"of shape {var.shape}, was made as a parameter but is no longer in the parameter "
        "registry (nn.clear_parameters() or pop_parameter removed it), so its values would "
        "be written nowhere; save before clearing the parameters, register it again with "
        "nn.parameter.set_parameter(key, variable), or name it in the network's 'names' to "
        "write it as an input without values (what nnabla does)")


def _batch_placeholder(function, param_name: str, batch_size: int) -> None:
    """-1 for the batch in the shape argument of a Reshape or Broadcast of batched data
    (as nnabla's writer), so that the network runs at another batch size."""
    shape = getattr(function, param_name).shape
    if shape.dim and shape.dim[0] == batch_size:
        shape.dim[0] = -1


def _sibling_ops(type_name: str, args: dict) -> list[str]:
    """The ops of each output of nnabla's function `type_name`, for the functions whose
    output shapes follow from an input's values (and a reader needs all of them)."""
    if type_name == "Unique":
        return ["unique"] + [part for part, flag in (
            ("unique_index", "with_index"), ("unique_inverse", "with_inverse"),
            ("unique_counts", "with_counts")) if args[flag]]
    if type_name == "PackPaddedSequence":
        return ["pack_padded_sequence", "pack_padded_sequence_batch_sizes"]
    if type_name == "PadPackedSequence":
        return ["pad_packed_sequence", "pad_packed_sequence_lengths"]
    return []


def _shapes(variables, functions, known_shapes=None) -> dict[str, tuple]:
    """Shapes of the network's variables: the graph's, and for the outputs a node does not
    compute (the other outputs of Meshgrid, or TopKData's values), nnabla's shape
    (`known_shapes` those the writer knew: Unique's, the packed sequences')."""
    shapes = {name: var.shape for name, var in variables if var is not None}
    shapes.update({k: v for k, v in (known_shapes or {}).items() if k not in shapes})
    for function in functions:
        known = [shapes[n] for n in function.output if n in shapes]
        for name in function.output:
            if name in shapes:
                continue
            if function.type == "TopKData" and not function.top_k_data_param.reduce:
                shapes[name] = shapes[function.input[0]]  # the values, x's shape
            else:  # Meshgrid's outputs share a shape; so do reduced TopKData's
                shapes[name] = known[0]
    return shapes


# --- reading --------------------------------------------------------------------------------

def _field_values(message) -> dict:
    """A `<type>_param` message as a dict: Shape fields as lists, repeated as lists."""
    values = {}
    for descriptor in message.DESCRIPTOR.fields:
        value = getattr(message, descriptor.name)
        if descriptor.message_type is not None and descriptor.message_type.name == "Shape":
            values[descriptor.name] = [int(d) for d in value.dim]
        elif descriptor.message_type is not None:
            values[descriptor.name] = value
        elif is_repeated(descriptor):
            values[descriptor.name] = list(value)
        else:
            values[descriptor.name] = value
    return values


def _reduction(values: dict) -> dict:
    axes = values.pop("axes")
    values["axis"] = axes if axes else None
    values["keepdims"] = values.pop("keep_dims")
    return values


def _normalization_inputs(inputs: list, values: dict) -> list:
    """x, beta, gamma, mean, variance with None where nnabla's flags say absent."""
    x, rest = inputs[0], list(inputs[1:])
    beta = None if values.pop("no_bias", False) else rest.pop(0)
    gamma = None if values.pop("no_scale", False) else rest.pop(0)
    return [x, beta, gamma, *rest]


_IMPORT = {"Sum": _reduction, "Mean": _reduction, "Max": _reduction, "Min": _reduction,
           "Prod": _reduction, "Norm": _reduction,
           # nnabla's PatchCorrelation is on (N, H, W, C): F's channel_last form (the
           # channels-first one transposes around it, and the file holds those transposes)
           "PatchCorrelation": lambda values: {**values, "channel_last": True}}
# nnabla's functions that symcompile's F composes of others (so no op has their type)
_COMPOSED = {"Norm": "norm", "TensorNormalization": "tensor_normalization"}
# functions whose optional inputs (after `_normalization_inputs`) the Python function takes
# by keyword, after arguments of its own
_KEYWORD_INPUTS = {"TensorNormalization": ("beta", "gamma")}


def _function_of(type_name: str):
    """symcompile's `F.*` function for nnabla's function type."""
    for name in F.__all__:
        op = OPS.get(name)
        if op is not None and op.type_name == type_name:
            return getattr(F, name)
    composed = _COMPOSED.get(type_name)
    return getattr(F, composed) if composed else None


def _batch_sized(shape: list, batch_size: int) -> tuple:
    return tuple(batch_size if d < 0 else d for d in shape)


def _pad_packed(inputs, values, shape):
    total = values.get("total_length", -1)
    return arrays.built_pad_packed_sequence(
        *inputs, batch=shape[0] if values.get("batch_first") else shape[1],
        batch_first=values.get("batch_first", False),
        padding_value=values.get("padding_value"), total_length=None if total < 0 else total)


def _unique(inputs, values, shape):
    axis = values.get("axis", 0)
    count = shape[0] if values.get("flatten", True) else shape[axis % len(shape)]
    return arrays.built_unique(*inputs, count, **values)


# Functions whose output shape follows from an input's values, by nnabla's type: their
# nodes built with the count the file's declared shape of the first output holds (the
# values a reader builds on are not the writer's). (inputs, arguments, shape) -> outputs.
_VALUE_SHAPED = {
    "BoolGather": lambda inputs, values, shape: arrays.built_bool_gather(*inputs,
                                                                         nnz=shape[0]),
    "NonZero": lambda inputs, values, shape: arrays.built_nonzero(*inputs, nnz=shape[1]),
    "Unique": _unique,
    "PackPaddedSequence": lambda inputs, values, shape: arrays.built_pack_padded_sequence(
        *inputs, rows=shape[0], **values),
    "PadPackedSequence": _pad_packed,
    "ONNXNonMaxSuppression": lambda inputs, values, shape:
        detection.built_onnx_non_max_suppression(*inputs, count=shape[0], **values),
}


def _synchronized_from_file(name: str, values: dict):
    """F's function for a file's SyncBatchNormalization: with batch_stat=False (inference)
    F.batch_normalization, which it then is; with batch_stat=True refused, since the
    processes it sums over cannot be in a file (nnabla's Communicator message is empty)."""
    values.pop("comm", None)
    group = values.pop("group", "world")
    if values.get("batch_stat", True):
        raise NnpError(
            f"function {name!r} (SyncBatchNormalization, group {group!r}, batch_stat=True) "
            f"sums its statistics over processes through a communicator, which a file "
            f"cannot hold; build it in Python with F.sync_batch_normalization(..., comm), "
            f"or save the network with batch_stat=False to read it for inference")
    return F.batch_normalization


def _call(function, values_of, batch_size, declared_shape=None):
    """Outputs of one nnabla function message, built with symcompile's F (`declared_shape`
    the file's shape of its first output)."""
    call = _function_of(function.type)
    if call is None:
        raise NnpError(f"function {function.name!r}: nnabla's {function.type} is not one of "
                       "symcompile's functions yet (see the README's list)")
    inputs = [values_of(name) for name in function.input]
    which = function.WhichOneof("parameter")
    values = _field_values(getattr(function, which)) if which else {}
    values.pop("inplace", None)
    if function.type == "SyncBatchNormalization":
        call = _synchronized_from_file(function.name, values)
    if function.type in ("Reshape", "Broadcast"):  # a -1 batch in the target shape
        values["shape"] = list(_batch_sized(values["shape"][:1], batch_size)) \
            + values["shape"][1:]
    if "no_bias" in values:  # the Python function takes None for an absent beta or gamma
        inputs = _normalization_inputs(inputs, values)
    values = _IMPORT.get(function.type, lambda v: v)(values)
    keyword_inputs = _KEYWORD_INPUTS.get(function.type, ())
    if keyword_inputs:
        inputs, optional = inputs[:-len(keyword_inputs)], inputs[-len(keyword_inputs):]
        values.update(zip(keyword_inputs, optional, strict=True))
    parameters = inspect.signature(call).parameters
    keywords = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    unknown = [] if keywords else [k for k in values if k not in parameters]
    if unknown:
        raise NnpError(f"function {function.name!r} ({function.type}): symcompile's "
                       f"F.{call.__name__} has no argument {', '.join(unknown)}")
    try:
        if function.type in _VALUE_SHAPED and declared_shape is not None:
            outputs = _VALUE_SHAPED[function.type](inputs, values, declared_shape)
        else:
            outputs = call(*inputs, **values)
    except (TypeError, ValueError) as exc:
        raise NnpError(f"function {function.name!r} ({function.type}) with arguments "
                       f"{values}: {exc}") from exc
    outputs = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
    if len(outputs) != len(function.output):
        raise NnpError(f"function {function.name!r} ({function.type}): the file names "
                       f"{len(function.output)} outputs, F.{call.__name__} gave {len(outputs)}")
    return outputs


@dataclass
class BuiltNetwork:
    """A network read from a file: its variables by name, and which are its inputs and
    outputs (variables no function computes, and variables no function reads)."""

    name: str
    batch_size: int
    variables: dict
    inputs: dict
    outputs: dict


def build_network(proto, parameters: dict, batch_size: int | None = None,
                  given: dict | None = None, declared_shapes: bool = True) -> BuiltNetwork:
    """The graph of nnabla's `Network` message `proto`, its parameters taken from
    `parameters` (name -> Variable) and its -1 dimensions set to `batch_size` (default:
    the file's).

    `given` (name -> Variable) are variables to use as they are instead of new inputs or
    the file's parameters (an `NnpNetworkPass`'s `set_variable`). With `declared_shapes`
    the shape each function gives must be the file's; without (a network a pass has
    changed: another input size, another pad), the shapes follow from the inputs, as in
    nnabla, which never reads the declared shapes of computed variables."""
    batch_size = int(batch_size or proto.batch_size or 1)
    given = given or {}
    declared = {v.name: v for v in proto.variable}
    computed = {name for function in proto.function for name in function.output}
    read = {name for function in proto.function for name in function.input}
    variables: dict[str, Variable] = {}

    def values_of(name):
        if name in variables:
            return variables[name]
        entry = declared.get(name)
        if entry is None:
            raise NnpError(f"network {proto.name!r}: variable {name!r} is read but not "
                           "declared")
        if name in given:
            var = given[name]
        elif entry.type == "Parameter":
            if name not in parameters:
                raise NnpError(f"network {proto.name!r}: parameter {name!r} is not in the "
                               "file's parameters")
            var = parameters[name]
        else:
            var = Variable(_batch_sized(list(entry.shape.dim), batch_size))
            var.name = name
        variables[name] = var
        return var

    for function in proto.function:
        first = declared.get(function.output[0]) if function.output else None
        shape = _batch_sized(list(first.shape.dim), batch_size) if first is not None \
            and declared_shapes else None
        for name, out in zip(function.output, _call(function, values_of, batch_size, shape),
                             strict=True):
            expected = _batch_sized(list(declared[name].shape.dim), batch_size) \
                if name in declared else out.shape
            if declared_shapes and tuple(out.shape) != expected:
                raise NnpError(f"network {proto.name!r}: {function.name} ({function.type}) "
                               f"gives {name!r} the shape {out.shape}, the file says "
                               f"{expected}")
            out.name = name
            variables[name] = out
    inputs = {n: variables[n] for n in variables
              if n not in computed and declared.get(n) is not None
              and declared[n].type != "Parameter"}
    outputs = {n: variables[n] for n in computed if n not in read and n in variables}
    outputs = {n: outputs[n] for n in variables if n in outputs}  # the file's order
    return BuiltNetwork(proto.name, batch_size, variables, inputs, outputs)
