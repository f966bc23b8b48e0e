"""The messages of nnabla's files (`.nnp`, `.nntxt`, `.protobuf`), built from a table.

nnabla writes networks, parameters and executors as one `NNablaProtoBuf` message
(proto3): field 100 repeats `Network` (variables and functions, each function with its
`<type>_param` message), 200 repeats `Parameter`, 600 repeats `Executor`, and so on. The
layout of every message, field names, numbers and types as nnabla 1.39 defines them, is
the data file `nnabla_format.json` next to this module (recorded from nnabla by
`tests/differential/_nnp_schema.py`). The classes are built from it with the `protobuf`
package (an optional dependency: ``pip install protobuf``), so no `protoc` is needed and
no generated code is kept in the tree.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

FORMAT_TABLE = Path(__file__).with_name("nnabla_format.json")
PACKAGE = "symcompile.nnabla"


@functools.cache
def _table() -> dict:
    return json.loads(FORMAT_TABLE.read_text(encoding="utf-8"))


@functools.cache
def _classes() -> dict:
    """Every message class of the format, by its name in nnabla (``Network``,
    ``Function``, ``AffineParameter``, ...); ImportError without protobuf."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    table = _table()
    file = descriptor_pb2.FileDescriptorProto(name="symcompile_nnabla_format.proto",
                                              package=PACKAGE, syntax=table["syntax"])
    protos = {}
    for name in sorted(table["messages"], key=lambda n: n.count(".")):  # parents first
        parent, _, short = name.rpartition(".")
        container = protos[parent].nested_type if parent else file.message_type
        proto = protos[name] = container.add(name=short)
        layout = table["messages"][name]
        if layout.get("map_entry"):
            proto.options.map_entry = True
        oneof_of = {}
        for index, (oneof, members) in enumerate(sorted(layout.get("oneofs", {}).items())):
            proto.oneof_decl.add(name=oneof)
            oneof_of.update(dict.fromkeys(members, index))
        for field_name, number, kind, label, type_name in layout["fields"]:
            field = proto.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = f".{PACKAGE}.{type_name}"
            if field_name in oneof_of:
                field.oneof_index = oneof_of[field_name]
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    classes = message_factory.GetMessages([file], pool=pool)
    return {name[len(PACKAGE) + 1:]: cls for name, cls in classes.items()}


def message_class(name: str):
    """The class of nnabla's message `name` (e.g. ``"NNablaProtoBuf"``)."""
    return _classes()[name]


def messages():
    """(NNablaProtoBuf, Parameter) message classes; ImportError without protobuf."""
    return message_class("NNablaProtoBuf"), message_class("Parameter")


def is_repeated(field) -> bool:
    """Whether a field descriptor repeats (protobuf 7 dropped `label`, 4 lacks the test)."""
    repeated = getattr(field, "is_repeated", None)
    return repeated if repeated is not None else field.label == field.LABEL_REPEATED
