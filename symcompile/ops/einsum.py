"""F.einsum: Einstein summation, lowered to the primitives of a matrix product.

`parse` reads an equation once, at graph-build time, into each operand's labels and the
output's (NumPy's rules, which nnabla follows: ``...`` for the leading axes, the output
in alphabetical order when ``->`` is left out, a repeated label taking a diagonal; as
nnabla's, a label has one length everywhere, without broadcasting).

The lowering takes each operand's diagonals, sums the labels no one else needs, and then
multiplies the operands from left to right. Two operands become one (batched) matrix
product: the labels both have and a later operand or the output needs are its batch,
the ones both have and nobody needs are contracted, the rest are the rows and the
columns. So the work is BLAS's, and the gradient is that of a matrix product (reshapes
and transposes of the cotangent around two more products).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from symcompile.common.deferred import Deferred
from symcompile.ops.opdef import OpDef

sympy = Deferred("sympy")
P = Deferred("symcompile.ir.primitives")
I = Deferred("symcompile.ir.indexing")  # noqa: E741 - the module's short name, like P

OPS: dict[str, OpDef] = {}

_ELLIPSIS = "..."
_ALLOWED = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ,.->")


@dataclass(frozen=True)
class Summation:
    """A parsed equation: the labels of each operand's axes, the output's, and each
    label's length. The axes ``...`` stands for get the labels "...0", "...1", ..."""

    operands: tuple[tuple[str, ...], ...]
    output: tuple[str, ...]
    sizes: dict[str, int]


def parse(equation: str, shapes: tuple[tuple[int, ...], ...]) -> Summation:
    """`equation` for operands of `shapes`, or a ValueError saying what is wrong."""
    where = f"F.einsum: equation {equation!r} for inputs of shapes {list(shapes)}"
    text = equation.replace(" ", "")
    if not text or set(text) - _ALLOWED:
        raise ValueError(f"{where}: an equation is letters, ',', '...' and '->' only")
    if text.count("->") > 1 or text.replace("->", "").count("-") \
            or text.replace("->", "").count(">"):
        raise ValueError(f"{where}: '->' may appear once, before the output's labels")
    inputs, arrow, given = text.partition("->")
    if "," in given:
        raise ValueError(f"{where}: the output after '->' is one term, without ','")
    terms = inputs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"{where}: {len(terms)} operands in the equation, {len(shapes)} "
                         f"inputs given")
    spread = max((len(shape) - len(term.replace(_ELLIPSIS, ""))
                  for term, shape in zip(terms, shapes, strict=True) if _ELLIPSIS in term),
                 default=0)
    operands = tuple(_labels(term, len(shape), spread, where)
                     for term, shape in zip(terms, shapes, strict=True))
    sizes: dict[str, int] = {}
    for labels, shape in zip(operands, shapes, strict=True):
        for label, size in zip(labels, shape, strict=True):
            if sizes.setdefault(label, size) != size:
                raise ValueError(f"{where}: label {label!r} has lengths {sizes[label]} and "
                                 f"{size}; it must have one length in every input")
    wide = tuple(f"{_ELLIPSIS}{i}" for i in range(spread))
    if arrow:
        output = _labels(given, len(given.replace(_ELLIPSIS, "")) + spread, spread, where)
        unknown = [label for label in output if label not in sizes]
        if unknown or len(set(output)) != len(output):
            raise ValueError(f"{where}: each output label must appear once, and in an input"
                             f" ({', '.join(map(repr, unknown)) or 'a repeated label'})")
    else:  # NumPy's implicit output: the labels used once, in alphabetical order
        counts = [label for labels in operands for label in labels if label not in wide]
        output = wide + tuple(sorted(label for label in set(counts)
                                     if counts.count(label) == 1))
    return Summation(operands, output, sizes)


def _labels(term: str, rank: int, spread: int, where: str) -> tuple[str, ...]:
    """The labels of the `rank` axes `term` names; its ``...`` stands for the last
    axes of the `spread` ones the ellipses of the equation share."""
    if term.count(_ELLIPSIS) > 1 or term.replace(_ELLIPSIS, "").count("."):
        raise ValueError(f"{where}: {term!r}: '...' may appear once in a term, and '.' only "
                         f"in it")
    head, dots, tail = term.partition(_ELLIPSIS)
    covered = rank - len(head) - len(tail)
    if (covered and not dots) or covered < 0:
        raise ValueError(f"{where}: {term!r} names {len(head) + len(tail)} axes of an input "
                         f"with {rank}")
    return (tuple(head) + tuple(f"{_ELLIPSIS}{i}" for i in range(spread - covered, spread))
            + tuple(tail))


def _einsum_shape(shapes, attrs):
    summation = parse(attrs["equation"], tuple(shapes))
    return tuple(summation.sizes[label] for label in summation.output)


@dataclass
class _Term:
    """An operand on its way: its expression, the labels of its axes, their lengths."""

    expr: object
    labels: tuple[str, ...]
    sizes: dict[str, int]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.sizes[label] for label in self.labels)

    def arranged(self, order, shapes):
        """The expression with its axes in the labels' `order`."""
        return P.transpose(self.expr, tuple(self.labels.index(label) for label in order),
                           shapes)


def _lower(args, attrs, ctx):
    summation = parse(attrs["equation"], ctx.in_shapes)
    terms = [_diagonals(_Term(x, labels, summation.sizes), ctx.shapes)
             for x, labels in zip(args, summation.operands, strict=True)]
    for i, term in enumerate(terms):
        terms[i] = _summed(term, _needed(summation.output, terms, i), ctx.shapes)
    result = terms[0]
    for i in range(1, len(terms)):
        result = _product(result, terms[i], _needed(summation.output, terms, i, after=True),
                          ctx.shapes)
    return result.arranged(summation.output, ctx.shapes)


def _needed(output, terms, i: int, after: bool = False) -> set[str]:
    """The labels the output or the operands other than terms[i] (after it only, when
    `after`) still have."""
    others = terms[i + 1:] if after else terms[:i] + terms[i + 1:]
    return set(output).union(*(term.labels for term in others))


def _diagonals(term: _Term, shapes) -> _Term:
    """`term` with each repeated label's diagonal taken (``ii->i``): the two axes moved
    last and flattened, positions k*(n + 1) taken (a Take, whose gradient puts the
    cotangent back on the diagonal)."""
    while len(set(term.labels)) != len(term.labels):
        label = next(label for label in term.labels if term.labels.count(label) > 1)
        first = term.labels.index(label)
        second = term.labels.index(label, first + 1)
        rest = tuple(k for k in range(len(term.labels)) if k not in (first, second))
        moved = P.transpose(term.expr, rest + (first, second), shapes)
        n = term.sizes[label]
        rest_shape = tuple(term.sizes[term.labels[k]] for k in rest)
        flat = P.reshape(moved, rest_shape + (n * n,), shapes)
        taken = I.Take(flat, P.shape_tuple([k * (n + 1) for k in range(n)]),
                       sympy.Integer(len(rest)))
        term = _Term(taken, tuple(term.labels[k] for k in rest) + (label,), term.sizes)
    return term


def _summed(term: _Term, needed: set[str], shapes) -> _Term:
    """`term` summed over the labels nobody else needs."""
    axes = tuple(k for k, label in enumerate(term.labels) if label not in needed)
    if not axes:
        return term
    expr = P.reduce_sum(term.expr, axes, False, term.shape, shapes)
    return _Term(expr, tuple(label for label in term.labels if label in needed), term.sizes)


def _product(a: _Term, b: _Term, needed: set[str], shapes) -> _Term:
    """a times b, summed over the labels both have and nobody needs after them: a
    (batch, rows, inner) @ (batch, inner, columns) matrix product; with nothing to sum,
    the broadcast product (an outer product in NumPy's matmul is slow)."""
    shared = [label for label in a.labels if label in b.labels]
    batch = [label for label in shared if label in needed]
    inner = [label for label in shared if label not in needed]
    rows = [label for label in a.labels if label not in b.labels]
    columns = [label for label in b.labels if label not in a.labels]
    size = lambda labels: math.prod(a.sizes[label] for label in labels)  # noqa: E731
    lead = (size(batch),) if batch else ()
    left = P.reshape(a.arranged(batch + rows + inner, shapes),
                     lead + (size(rows), size(inner)), shapes)
    right = P.reshape(b.arranged(batch + inner + columns, shapes),
                      lead + (size(inner), size(columns)), shapes)
    product = P.matmul(left, right, shapes) if inner else left * right
    labels = tuple(batch + rows + columns)
    shape = tuple(a.sizes[label] for label in labels)
    return _Term(P.reshape(product, shape, shapes), labels, a.sizes)


OPS["einsum"] = OpDef("einsum", "Einsum", 1, False, _einsum_shape, _lower)
