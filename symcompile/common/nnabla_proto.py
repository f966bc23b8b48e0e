"""The messages of nnabla's `.protobuf` parameter files, defined here (not generated).

nnabla writes parameters as an `NNablaProtoBuf` message (proto3) whose field 200 repeats
`Parameter {string variable_name = 1; Shape shape = 20; repeated float data = 100; bool
need_grad = 101}`, with `Shape {repeated int64 dim = 1}`. Only these fields are declared:
the other parts of nnabla's message (networks, optimizers, ...) are unknown fields to
this definition, skipped on reading. The classes are built from a descriptor with the
`protobuf` package (an optional dependency: ``pip install protobuf``), so no `protoc` is
needed and no generated code is kept in the tree.
"""

from __future__ import annotations

import functools


@functools.cache
def messages():
    """(NNablaProtoBuf, Parameter) message classes; ImportError without protobuf."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="symcompile_nnabla_parameters.proto",
                                              package="symcompile.nnabla", syntax="proto3")

    def message(name, *fields):
        proto = file.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            entry = proto.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                entry.type_name = type_name

    optional, repeated = field.LABEL_OPTIONAL, field.LABEL_REPEATED
    message("Shape", ("dim", 1, field.TYPE_INT64, repeated, ""))
    message("Parameter",
            ("variable_name", 1, field.TYPE_STRING, optional, ""),
            ("shape", 20, field.TYPE_MESSAGE, optional, ".symcompile.nnabla.Shape"),
            ("data", 100, field.TYPE_FLOAT, repeated, ""),
            ("need_grad", 101, field.TYPE_BOOL, optional, ""))
    message("NNablaProtoBuf",
            ("version", 1, field.TYPE_STRING, optional, ""),
            ("parameter", 200, field.TYPE_MESSAGE, repeated, ".symcompile.nnabla.Parameter"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    classes = message_factory.GetMessages([file], pool=pool)
    return (classes["symcompile.nnabla.NNablaProtoBuf"],
            classes["symcompile.nnabla.Parameter"])
