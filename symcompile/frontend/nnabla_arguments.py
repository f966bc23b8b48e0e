"""nnabla's arguments of a recorded node, as nnabla records them for its function.

A node keeps the arguments symcompile's lowering needs, under symcompile's names
(``keepdims``, ``before``/``after`` for a pad, the two bounds of a random draw as ``a``
and ``b``) and without the ones it never varies (``channel_last``, ``inplace``). nnabla
records every argument of its function, under the names and types of the function's
``<Type>Parameter`` message. Two places need nnabla's form: `Function.info.args`
(`frontend/variable.py`) and the `.nnp` writer (`frontend/nnp_network.py`). The mapping
lives here, below both, so that neither imports the other, and it needs no protobuf: the
layout of each parameter message (field names, order and types) is read from the format
table (`common/nnabla_format.json`) that the protobuf classes are built from.

An argument nnabla has but the node does not is an error rather than a default (a
missing proto3 field reads as 0: a `LeakyReLU` would lose its `alpha`), except for the
flags in `_IMPLIED`, whose value the node implies.
"""

from __future__ import annotations

import functools
import json
import numbers
from dataclasses import dataclass

import numpy

from symcompile.common.nnabla_proto import FORMAT_TABLE


class NotAnNnablaFunction(ValueError):
    """A node has no nnabla function with nnabla's arguments: `function` names the node
    (``F.<name> (at <call site>)``), `why` says why."""

    def __init__(self, function: str, why: str) -> None:
        super().__init__(f"{function}: is not an nnabla function with nnabla's arguments: "
                         f"{why}")
        self.function = function
        self.why = why


# protobuf's field types (`FieldDescriptorProto.Type`) the parameter messages use.
_DOUBLE, _FLOAT, _BOOL, _STRING, _MESSAGE = 1, 2, 8, 9, 11
_REPEATED = 3


@dataclass(frozen=True)
class Field:
    """One argument of nnabla's function: a field of its `<Type>Parameter` message."""

    name: str
    kind: int  # protobuf's field type
    repeated: bool
    message: str | None  # "Shape" for a shape; None for a number, flag or string


@functools.cache
def _messages() -> dict:
    return json.loads(FORMAT_TABLE.read_text(encoding="utf-8"))["messages"]


@functools.cache
def parameter_layout(type_name: str) -> tuple[str, tuple[Field, ...]] | None:
    """(the `Function` message's field holding the arguments, e.g. ``affine_param``, and
    the arguments in nnabla's order) of nnabla's function `type_name`; None for a
    function without arguments."""
    messages = _messages()
    for name, _, kind, _, message in messages["Function"]["fields"]:
        if kind == _MESSAGE and message == f"{type_name}Parameter":
            fields = tuple(Field(f[0], f[2], f[3] == _REPEATED, f[4])
                           for f in messages[message]["fields"])
            return name, fields
    return None


# --- from a node's arguments to nnabla's ----------------------------------------------------

# Arguments nnabla's function has and symcompile's node never varies: the value the node
# implies.
_IMPLIED = {"inplace": False, "channel_last": False, "with_index": False, "only_index": False}

# Node arguments that are symcompile's own bookkeeping, by op: not nnabla's.
_INTERNAL = {
    "batch_normalization": {"running"},
    "sync_batch_normalization": {"running", "no_bias", "no_scale"},
    "fused_batch_normalization": {"running", "residual", "no_bias", "no_scale"},
    "interpolate": {"axes"},
    "top_k_data_index": {"index"},
    "reduce_sum": {"axes", "keepdims"},
    "reduce_mean": {"axes", "keepdims"},
    "arange": {"count"},
    # the counts an output's shape was built with (from the input's values)
    "bool_gather": {"nnz"}, "nonzero": {"nnz"},
    "unique": {"count"}, "unique_index": {"count"}, "unique_inverse": {"count"},
    "unique_counts": {"count"},
    "pack_padded_sequence": {"rows"}, "pack_padded_sequence_batch_sizes": {"rows"},
    "pad_packed_sequence": {"batch"}, "pad_packed_sequence_lengths": {"batch"},
    "onnx_non_max_suppression": {"count"},
    "bit_shift": {"bits"},
}


def _renamed(args: dict) -> dict:
    return {"keep_dims" if key == "keepdims" else key: value for key, value in args.items()}


def _trailing(values: list, width: int) -> list:
    """`values` without the leading groups of `width` zeros, which mean "this axis is
    left alone": the short form nnabla's users write (``pad_width=(1, 1)`` for the last
    axis, ``shifts=(1, 1)``), which nnabla records as given. All zeros stay as they are."""
    start = 0
    while start + width < len(values) and not any(values[start:start + width]):
        start += width
    return values[start:] if any(values) else values


def _pad(args: dict) -> dict:
    pairs = [w for pair in zip(args["before"], args["after"], strict=True) for w in pair]
    return {"pad_width": _trailing(pairs, 2), "mode": args.get("mode", "constant"),
            "constant_value": args["constant_value"]}


def _shift(args: dict) -> dict:
    return {**args, "shifts": _trailing(list(args["shifts"]), 1)}


def _uniform(args: dict) -> dict:
    return {"low": args["a"], "high": args["b"], "shape": args["shape"], "seed": args["seed"]}


def _normal(args: dict) -> dict:
    return {"mu": args["a"], "sigma": args["b"], "shape": args["shape"], "seed": args["seed"]}


def _fused(args: dict) -> dict:
    return {**args, "nonlinearity": "relu"}


def _index_of(args: dict) -> dict:
    return {**_renamed(args), "only_index": True}


def _index_second(args: dict) -> dict:
    return {**args, "with_index": True}


def _unique_output(part: int):
    """Which of nnabla's Unique outputs (y, then those its flags ask for) `part` is."""

    def output(args: dict) -> tuple[int, int]:
        flags = [bool(args[f]) for f in ("with_index", "with_inverse", "with_counts")]
        return 1 + sum(flags[:part]) if part >= 0 else 0, 1 + sum(flags)

    return output


@dataclass(frozen=True)
class _Rule:
    """How one op's node becomes an nnabla function: the arguments, and which of the
    function's outputs the node's output is (for ops that are one output of several)."""

    arguments: object = _renamed
    output: object = None  # args -> (position, count); None: (0, 1)


_RULES = {
    "pad": _Rule(_pad),
    "shift": _Rule(_shift),
    "reshape": _Rule(lambda args: {"inplace": True, **args}),  # (nnabla's default)
    "rand": _Rule(_uniform), "randint": _Rule(_uniform), "randn": _Rule(_normal),
    "fused_batch_normalization": _Rule(_fused),
    "max_index": _Rule(_index_of), "min_index": _Rule(_index_of),
    "sort_index": _Rule(_index_of),
    "top_k_data_index": _Rule(_index_second, lambda args: (1, 2)),
    "unique": _Rule(output=_unique_output(-1)),
    "unique_index": _Rule(output=_unique_output(0)),
    "unique_inverse": _Rule(output=_unique_output(1)),
    "unique_counts": _Rule(output=_unique_output(2)),
    "bit_shift": _Rule(lambda args: {"direction": "LEFT" if args["left"] else "RIGHT"}),
    "pack_padded_sequence": _Rule(output=lambda args: (0, 2)),
    "pack_padded_sequence_batch_sizes": _Rule(output=lambda args: (1, 2)),
    "pad_packed_sequence": _Rule(output=lambda args: (0, 2)),
    "pad_packed_sequence_lengths": _Rule(output=lambda args: (1, 2)),
    "norm_normalization": _Rule(lambda args: {**args, "eps": 1e-12}),  # unused by nnabla
    "meshgrid": _Rule(lambda args: {"ij_indexing": args["ij_indexing"]},
                      lambda args: (args["output"], None)),
}

# Ops whose nodes have no nnabla function of their own, with what to do instead.
_NO_FUNCTION = {
    "grad": "a gradient made by nn.grad is not a function of nnabla's format; write the "
            "network before differentiating it",
    "random_flip": "its node holds the drawn flip, not nnabla's arguments",
    "random_shift": "its node holds the drawn shifts, not nnabla's arguments",
    "random_crop": "its node holds the drawn crop, not nnabla's arguments",
    "spectral_norm": "symcompile builds it from its power iteration, which nnabla's "
                     "SpectralNorm function does itself",
    "sync_batch_statistic": "it is output_stat=True's mean or variance of "
                            "F.sync_batch_normalization, which symcompile computes beside "
                            "the function; write the network without output_stat",
}


@dataclass(frozen=True)
class NnablaCall:
    """A node as nnabla's function: its type, its arguments (raw values, by nnabla's
    names, in nnabla's order) and which output of the function the node's output is
    (`count` None: one output per input, as Meshgrid's)."""

    type_name: str
    arguments: dict
    position: int = 0
    count: int | None = 1


def _refuse(func, why: str):
    where = f" (at {func.callsite.display})" if func.callsite else ""
    raise NotAnNnablaFunction(f"F.{func.op.name}{where}", why)


def nnabla_call(func) -> NnablaCall:
    """nnabla's function for the node `func` (a `Function` record); NotAnNnablaFunction,
    naming the function and why, for a node nnabla's format cannot hold."""
    op = func.op
    if op.name in _NO_FUNCTION:
        _refuse(func, _NO_FUNCTION[op.name])
    if op.name in ("batch_normalization", "fused_batch_normalization",
                   "sync_batch_normalization") and not func.args.get("running", True):
        _refuse(func, "nnabla's function needs the running mean and variance as inputs")
    if op.name in ("fused_batch_normalization", "sync_batch_normalization") \
            and (func.args.get("no_bias") or func.args.get("no_scale")):
        _refuse(func, f"nnabla's {op.type_name} needs both beta and gamma")
    rule = _RULES.get(op.name, _Rule())
    internal = _INTERNAL.get(op.name, set())
    args = rule.arguments({k: v for k, v in func.args.items() if k not in internal})
    if func.communicator is not None:  # (sync batch normalization's comm)
        args["comm"] = func.communicator
    position, count = rule.output(func.args) if rule.output else (0, 1)
    layout = parameter_layout(op.type_name)
    names = [f.name for f in layout[1]] if layout else []
    extra = sorted(set(args) - set(names))
    if extra:
        _refuse(func, f"nnabla's {op.type_name} has no argument {', '.join(extra)}")
    values = {}
    for name in names:
        if name in args:
            values[name] = args[name]
        elif name in _IMPLIED:
            values[name] = _IMPLIED[name]
        else:
            _refuse(func, f"no value for nnabla's argument {op.type_name}.{name}")
    return NnablaCall(op.type_name, values, position, count)


# --- nnabla's Python form -------------------------------------------------------------------

def _scalar(kind: int, value):
    """A node's value (a Python, NumPy or SymPy number, a string) as nnabla's Python shows
    a field of type `kind`: a float field as the float32 it holds (0.1 reads back as
    0.10000000149011612), a double as a float, an integer as an int."""
    if kind == _BOOL:
        return bool(value)
    if kind == _FLOAT:
        return float(numpy.float32(float(value)))
    if kind == _DOUBLE:
        return float(value)
    if kind == _STRING:
        return str(value)
    return int(value)


def python_form(call: NnablaCall) -> dict:
    """nnabla's `Function.info.args` of a call: each argument as its field's type, lists
    for repeated fields and shapes."""
    layout = parameter_layout(call.type_name)
    fields = {f.name: f for f in layout[1]} if layout else {}
    form = {}
    for name, value in call.arguments.items():
        field = fields[name]
        if field.message == "Shape":  # its dims, int64
            form[name] = [int(d) for d in value]
        elif field.message == "Communicator":  # the object, as nnabla's info holds it
            form[name] = value
        elif field.repeated:
            form[name] = [_scalar(field.kind, v) for v in value]
        else:
            form[name] = _scalar(field.kind, value)
    return form


def _plain(value):
    """A node's own argument in plain Python: tuples as lists, numbers as int or float."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, numpy.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value


def info_arguments(func) -> dict:
    """`Function.info.args` of the node `func`: nnabla's arguments where the node is an
    nnabla function; otherwise (a gradient from nn.grad, a random flip, shift or crop,
    whose node holds what was drawn) the node's own arguments, in plain Python."""
    try:
        return python_form(nnabla_call(func))
    except NotAnNnablaFunction:
        return {name: _plain(value) for name, value in func.args.items()}
