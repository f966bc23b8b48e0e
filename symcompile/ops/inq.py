"""nnabla's INQ layers (Incremental Network Quantization): inq_affine and inq_convolution.

F.affine or F.convolution with weights that are fixed and rounded to powers of two in
steps during training. nnabla's function keeps hidden state: a count of its forward
passes, the weights it left and the indicators it left. symcompile's node gets that
state as three more leaves, which `F.inq_affine` creates (count (1,), previous weights
and previous indicators, of the weight's shape), so the inputs are

    (x, weight, indicators, count, old_weight, old_indicators[, draw][, bias])

(draw: uniform numbers of the weight's shape, with selection_algorithm='random'). Each
forward pass, as nnabla's (`ir.inq` has the rules):

1. the weights fixed by the previous pass get their values back (undoing an update);
2. at a count listed in inq_iterations more weights are fixed (`InqFixed`);
3. the fixed weights are rounded to powers of two (`InqQuantized`), and the layer runs
   with those weights;
4. the weight, the indicators and the hidden state are written back (`OpDef.running`):
   the weight and the previous weights get the weights of step 3, the indicators and the
   previous indicators those of step 2, the count one more (it stops once past the last
   listed iteration, after which it changes nothing; so it stays exact in float32).

The gradient goes straight through to the weight (the layer's gradient for the weights
it used), to x and the bias as the layer's; none to the indicators, as nnabla's.
"""

from __future__ import annotations

from symcompile.common.deferred import Deferred
from symcompile.ops import structural
from symcompile.ops.opdef import OpDef

sympy = Deferred("sympy")
P = Deferred("symcompile.ir.primitives")
Q = Deferred("symcompile.ir.inq")
G = Deferred("symcompile.ops.gradient_clipping")
E = Deferred("symcompile.ops.sympy_functions")

OPS: dict[str, OpDef] = {}

_EQUAL, _LESS = 4, 2  # sympy_functions.RELATIONS
HIDDEN = ("count", "old_weight", "old_indicators")  # the leaves F.inq_* creates


def positions(attrs, count: int) -> dict[str, int]:
    """Where each input of an inq node is."""
    names = ["x", "weight", "indicators", *HIDDEN]
    if attrs["selection_algorithm"] == "random":
        names.append("draw")
    if count > len(names):
        names.append("bias")
    return {name: position for position, name in enumerate(names)}


def _layer_attributes(attrs) -> dict:
    return {k: v for k, v in attrs.items()
            if k not in ("num_bits", "inq_iterations", "selection_algorithm", "seed")}


def _convolutional(op_name: str) -> bool:
    return op_name == "inq_convolution"


def _shape(op_name: str):
    def infer(shapes, attrs):
        where = positions(attrs, len(shapes))
        w = tuple(shapes[1])
        if tuple(shapes[2]) != w:
            raise ValueError(f"F.{op_name}: indicator_fixedweights of shape {shapes[2]} must "
                             f"have the weight's shape {w} (nnabla's rule: one indicator per "
                             f"weight)")
        for name, shape in (("count", (1,)), ("old_weight", w), ("old_indicators", w),
                            ("draw", w)):
            if name in where and tuple(shapes[where[name]]) != shape:
                raise ValueError(f"F.{op_name}: its hidden {name} of shape "
                                 f"{shapes[where[name]]} must have shape {shape}")
        layer = (shapes[0], w) + ((shapes[where["bias"]],) if "bias" in where else ())
        return structural.weight_layer_shape(op_name, layer, _layer_attributes(attrs),
                                             _convolutional(op_name))

    return infer


def _restored(args, where):
    """The weight with the weights the previous pass fixed given back their values."""
    old_indicators = args[where["old_indicators"]]
    return E.Select(E.Compare(old_indicators, sympy.Integer(1), sympy.Integer(_EQUAL)),
                    args[where["old_weight"]], args[where["weight"]])


def _iterations(attrs):
    return sympy.Tuple(*(sympy.Integer(int(i)) for i in attrs["inq_iterations"]))


def _states(args, attrs):
    """(the indicators after this pass, the weights the layer uses), without gradient."""
    where = positions(attrs, len(args))
    restored = P.StopGradient(_restored(args, where))
    indicators, count = args[where["indicators"]], args[where["count"]]
    if attrs["selection_algorithm"] == "random":
        coin = E.Compare(args[where["draw"]], sympy.Rational(1, 2), sympy.Integer(_LESS))
        fixed = Q.InqFixedRandom(indicators, count, coin, _iterations(attrs))
    else:
        fixed = Q.InqFixed(restored, indicators, count, _iterations(attrs))
    fixed = P.StopGradient(fixed)
    quantized = P.StopGradient(Q.InqQuantized(restored, fixed,
                                              sympy.Integer(int(attrs["num_bits"]))))
    return fixed, quantized


def _layer(op_name: str):
    def lower(args, attrs, ctx):
        where = positions(attrs, len(args))
        _, quantized = _states(args, attrs)
        effective = G.StraightThrough(quantized, args[where["weight"]])
        layer = [args[0], effective] + ([args[where["bias"]]] if "bias" in where else [])
        return structural.weight_layer(layer, _layer_attributes(attrs), ctx,
                                       _convolutional(op_name))

    return lower


def count_limit(iterations) -> int:
    """Where the count stops: one past the largest listed iteration (0 with none)."""
    return max((int(i) for i in iterations), default=-1) + 1


def _running(args, attrs, ctx):
    where = positions(attrs, len(args))
    fixed, quantized = _states(args, attrs)
    count = args[where["count"]]
    limit = count_limit(attrs["inq_iterations"])
    bits = int(attrs["num_bits"])
    weights = f"the fixed weights as powers of two ({bits} bits)"
    return {
        where["weight"]: (quantized, f"weight: {weights}, the others as they are"),
        where["indicators"]: (fixed, "indicators: 1 where fixed"),
        where["count"]: (P.StopGradient(E.Minimum(count + 1, sympy.Integer(limit))),
                         f"the count of forward passes, stopping at {limit}"),
        where["old_weight"]: (quantized, "the weights this pass used"),
        where["old_indicators"]: (fixed, "the indicators this pass left"),
    }


for _name, _type in (("inq_affine", "INQAffine"), ("inq_convolution", "INQConvolution")):
    OPS[_name] = OpDef(_name, _type, 8, False, _shape(_name), _layer(_name), running=_running,
                       array_inputs=True)
