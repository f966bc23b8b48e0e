"""nnabla's `nn.grad`: gradients as Variables of the graph, which can be differentiated
again (gradient penalties, double backward).

Each gradient is one node whose value the compiler works out symbolically when it lowers
the graph: the reverse pass from the outputs to the input, written as more forward
equations, so that a loss built on it is differentiated through it like through any
other value (the derivative of a derivative is SymPy's, or a VJP's VJP).
"""

from __future__ import annotations

import numbers

import numpy

from symcompile.frontend import functions as F
from symcompile.frontend.variable import Variable


def grad(outputs, inputs, grad_outputs=None, persistent_outputs=(), bind_grad_output=False):
    """d (sum over k of grad_outputs[k] * outputs[k]) / d inputs[i], for each input, as
    Variables of the graph.

    Args:
        outputs: A Variable or a list of Variables.
        inputs: A Variable or a list of Variables to take the gradients with respect to.
        grad_outputs: The cotangent of each output: None (ones, nnabla's default), a
            number, a NumPy array of the output's shape, or a Variable.
        persistent_outputs, bind_grad_output: accepted for compatibility; generated code
            keeps every value the gradients need.

    Returns:
        A list with one Variable per input, of the input's shape.
    """
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    for kind, items in (("outputs", outputs), ("inputs", inputs)):
        if not items or not all(isinstance(v, Variable) for v in items):
            raise TypeError(f"nn.grad: {kind} must be a Variable or a non-empty list of "
                            f"Variables, got {items!r}")
    if grad_outputs is None or not isinstance(grad_outputs, (list, tuple)):
        grad_outputs = [grad_outputs] * len(outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"nn.grad: {len(grad_outputs)} grad_outputs for {len(outputs)} "
                         "outputs; give one per output (or None)")
    seeds, seeded = [], []
    for k, (out, g) in enumerate(zip(outputs, grad_outputs, strict=True)):
        if g is None or (isinstance(g, numbers.Real) and g == 1):
            seeded.append(False)
            continue
        if not isinstance(g, Variable):
            array = numpy.asarray(g, dtype=numpy.float32)
            if array.shape not in ((), out.shape):
                raise ValueError(f"nn.grad: grad_outputs[{k}] of shape {array.shape} does "
                                 f"not fit output {k} of shape {out.shape}")
            g = Variable.from_numpy_array(numpy.broadcast_to(array, out.shape))
        elif g.shape != out.shape:
            raise ValueError(f"nn.grad: grad_outputs[{k}] of shape {g.shape} does not fit "
                             f"output {k} of shape {out.shape}")
        seeds.append(g)
        seeded.append(True)
    return [F._record("grad", (*outputs, *seeds, x), n_outputs=len(outputs),
                      seeded=tuple(seeded)) for x in inputs]
