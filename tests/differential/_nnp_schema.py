"""Record the layout of nnabla's protobuf messages (`.nnp`, `.nntxt`, `.protobuf` files)
as data: `symcompile/common/nnabla_format.json`.

    $SYMCOMPILE_NNABLA_PYTHON tests/differential/_nnp_schema.py \
        > symcompile/common/nnabla_format.json

Run it with real nnabla's Python. It writes, for every message of nnabla's file format,
its fields as [name, number, type, label, message type] (protobuf's numeric type and
label codes) and, for map entries, that they are one; symcompile builds its own message
classes from that table (symcompile.common.nnabla_proto), so that the field numbers and
names it reads and writes are nnabla 1.39's, without nnabla or generated code.
"""

import json

from nnabla.utils import nnabla_pb2


def layout(message) -> dict:
    entry = {"fields": [[f.name, f.number, f.type, f.label,
                         f.message_type.full_name if f.message_type else None]
                        for f in message.fields]}
    if message.GetOptions().map_entry:
        entry["map_entry"] = True
    if message.oneofs:
        entry["oneofs"] = {o.name: [f.name for f in o.fields] for o in message.oneofs}
    return entry


def main() -> None:
    messages = {}

    def visit(message):
        messages[message.full_name] = layout(message)
        for nested in message.nested_types:
            visit(nested)

    for message in nnabla_pb2.DESCRIPTOR.message_types_by_name.values():
        visit(message)
    import nnabla
    # One message per line, so that a change of nnabla's format reads as a small diff.
    rows = [f" {json.dumps(name)}: {json.dumps(messages[name], sort_keys=True)}"
            for name in sorted(messages)]
    print(f'{{"nnabla": {json.dumps(nnabla.__version__)}, '
          f'"syntax": {json.dumps(nnabla_pb2.DESCRIPTOR.syntax)}, "messages": {{')
    print(",\n".join(rows))
    print("}}")


if __name__ == "__main__":
    main()
