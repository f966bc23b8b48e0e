"""The tensor IR: an immutable, canonically ordered snapshot of a user's graph.

A `Graph` holds `Value`s (inputs, parameters, intermediates: name, static shape, dtype,
need_grad) and `Node`s (op, attributes, inputs, output, user call site); the front end
builds it (`symcompile.frontend.capture`). The order depends only on the graph's
structure, never on creation or registration order, and `fingerprint` hashes everything
the generated code depends on, so equal graphs compile to equal bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from symcompile.ir import callsite
from symcompile.ir.attributes import Scalar

INPUT, PARAMETER, INTERMEDIATE = "input", "parameter", "intermediate"


@dataclass(frozen=True)
class Value:
    """One array of the graph."""

    index: int
    name: str  # user-facing name ("affine/W", "x", "loss"); "" when the user gave none
    shape: tuple[int, ...]
    dtype: str
    kind: str  # INPUT, PARAMETER or INTERMEDIATE
    need_grad: bool  # a gradient flows into (leaves) or through (intermediates) it
    site: callsite.CallSite | None = None
    init: tuple | None = None  # parameters: how they were initialised (initializer.describe)

    @property
    def is_leaf(self) -> bool:
        return self.kind != INTERMEDIATE


@dataclass(frozen=True)
class Node:
    """One `F.*` call: output = op(inputs, **attrs)."""

    index: int
    op: str
    inputs: tuple[int, ...]
    output: int
    attrs: tuple[tuple[str, object], ...]
    site: callsite.CallSite | None = None

    @property
    def attr_dict(self) -> dict:
        return dict(self.attrs)

    @property
    def location(self) -> str:
        return self.site.display if self.site else "unknown location"


@dataclass(frozen=True)
class Graph:
    name: str
    values: tuple[Value, ...]
    nodes: tuple[Node, ...]  # topological order
    outputs: tuple[int, ...]  # the root first, then intermediates the user reads
    # Intermediates among the outputs whose gradient the user reads: backward() returns
    # d root / d each of them too (nnabla keeps them in their .g).
    grad_outputs: tuple[int, ...] = ()

    @property
    def leaves(self) -> tuple[Value, ...]:
        return tuple(v for v in self.values if v.is_leaf)

    @property
    def inputs(self) -> tuple[Value, ...]:
        return tuple(v for v in self.values if v.kind == INPUT)

    @property
    def parameters(self) -> tuple[Value, ...]:
        return tuple(v for v in self.values if v.kind == PARAMETER)

    @property
    def root(self) -> Value:
        return self.values[self.outputs[0]]

    @property
    def differentiates_gradients(self) -> bool:
        """Whether a gradient is a value of the graph (nn.grad), which the backward pass
        then differentiates again."""
        return any(node.op == "grad" for node in self.nodes)

    def fingerprint(self) -> str:
        """A hash of the graph's structure, names, shapes and dtypes.

        Not of call sites (comments only) nor of the module name: one graph has one hash
        whatever its module is called.
        """
        lines = ["graph"]
        for v in self.values:
            lines.append(f"value {v.index} {v.kind} {v.name!r} {v.shape} {v.dtype} {v.need_grad}"
                         f" {v.init!r}")
        for n in self.nodes:
            attrs = ", ".join(f"{k}={_canonical(a)}" for k, a in n.attrs)
            lines.append(f"node {n.op}({attrs}) {n.inputs} -> {n.output}")
        lines.append(f"outputs {self.outputs}")
        if self.grad_outputs:
            lines.append(f"gradients of outputs {self.grad_outputs}")
        return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()[:16]

    def label(self, index: int) -> str:
        value = self.values[index]
        return value.name or f"%{index}"

    def __str__(self) -> str:
        def typed(v: Value) -> str:
            return f"{self.label(v.index)}: {_short_dtype(v.dtype)}{list(v.shape)}"

        head = ", ".join(typed(v) for v in self.inputs)
        params = ", ".join(typed(v) for v in self.parameters)
        lines = [f"graph {self.name}({head}; params {params})"]
        for v in self.leaves:
            where = v.site.display if v.site else "unknown location"
            lines.append(f"  {self.label(v.index)} = {v.kind}()"
                         f"    # {_short_dtype(v.dtype)}{list(v.shape)}  {where}")
        for n in self.nodes:
            args = [self.label(i) for i in n.inputs]
            args += [f"{k}={_display(a)}" for k, a in n.attrs]
            out = self.values[n.output]
            lines.append(
                f"  {self.label(n.output)} = {n.op}({', '.join(args)})"
                f"    # {_short_dtype(out.dtype)}{list(out.shape)}  {n.location}"
            )
        lines.append(f"  return {', '.join(self.label(i) for i in self.outputs)}")
        return "\n".join(lines)


def _canonical(attr) -> str:
    if isinstance(attr, Scalar):  # 2 and 2.0 are one number; repr(float) is exact
        return f"Scalar({float.__repr__(attr)})"
    return repr(attr)


def _display(attr) -> str:
    return str(attr)


def _short_dtype(dtype: str) -> str:
    return {"float32": "f32", "float64": "f64", "int64": "i64", "int32": "i32"}.get(dtype, dtype)
