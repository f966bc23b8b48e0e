"""F.pack_padded_sequence and F.pad_packed_sequence: padded sequences packed step by step,
and back.

- against loops over the steps and sequences (float64), gradients against central
  differences, through a compiled module and its array API twin on array-api-strict
  arrays (time-major and batch-first, trailing axes or none, total_length, a padding
  value), their batch sizes and lengths (int32), the round trip;
- lengths or batch sizes that would change the output shape are refused when the module
  runs, bad shapes when the graph is built;
- nnabla 1.39's outputs, gradients and info where it is installed (unsorted lengths
  included: nnabla packs the first batch_sizes[t] sequences at step t).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from gradcheck import check_array_api, check_function
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.functions as F
from symcompile.runtime import execution

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")


def batch_sizes_of(lengths, steps):
    return [sum(1 for n in lengths if n > t) for t in range(steps)]


def pack_reference(x, lengths, batch_first=False):
    """Step by step, the first batch_sizes[t] sequences (nnabla's order)."""
    grid = np.swapaxes(x, 0, 1) if batch_first else x
    sizes = batch_sizes_of(lengths, grid.shape[0])
    return np.array([grid[t, b] for t, size in enumerate(sizes) for b in range(size)],
                    dtype=float).reshape((sum(sizes),) + x.shape[2:])


def pad_reference(p, sizes, batch_first=False, padding=0.0, total_length=-1):
    steps = max(len(sizes), total_length)
    out = np.full((steps, max(sizes)) + p.shape[1:], padding, dtype=float)
    row = 0
    for t, size in enumerate(sizes):
        for b in range(int(size)):
            out[t, b] = p[row]
            row += 1
    return np.swapaxes(out, 0, 1) if batch_first else out


def _first_output(function, values, **kwargs):
    """function(...)[0], on Variables holding `values` first (its shape follows from them)."""

    def build(*variables):
        for variable, value in zip(variables, values, strict=False):
            if value is not None:
                variable.d = value
        return function(*variables, **kwargs)[0]

    return build


PACK_CONFIGS = [((4, 3, 2), [4, 2, 1], False), ((5, 3), [3, 3, 1], False),
                ((3, 4, 2, 2), [4, 3, 3], True), ((4, 3), [1, 4, 2], False)]


@pytest.mark.parametrize("shape,lengths,batch_first", PACK_CONFIGS, ids=str)
def test_pack_forward_and_gradients(shape, lengths, batch_first, tmp_path, rng):
    x, n = np.random.default_rng(len(shape)).normal(size=shape), np.array(lengths, float)
    build = _first_output(F.pack_padded_sequence, [None, n], batch_first=batch_first)
    module = check_function(build, lambda x, n: pack_reference(x, lengths, batch_first),
                            [x, n], tmp_path, rng, need_grad=[True, False])
    check_array_api(build, [x, n], module, tmp_path, need_grad=[True, False])


PAD_CONFIGS = [([3, 2, 1, 1], (2,), False, 0.0, -1), ([3, 3, 1], (), True, -1.5, -1),
               ([2, 2, 2], (2, 2), False, 0.25, 5), ([4, 1], (3,), True, 0.0, 4)]


@pytest.mark.parametrize("sizes,rest,batch_first,padding,total_length", PAD_CONFIGS, ids=str)
def test_pad_forward_and_gradients(sizes, rest, batch_first, padding, total_length, tmp_path,
                                   rng):
    p = np.random.default_rng(sum(sizes)).normal(size=(sum(sizes),) + rest)
    s = np.array(sizes, float)
    kwargs = {"batch_first": batch_first, "padding_value": padding,
              "total_length": None if total_length < 0 else total_length}
    build = _first_output(F.pad_packed_sequence, [None, s], **kwargs)
    module = check_function(
        build, lambda p, s: pad_reference(p, sizes, batch_first, padding, total_length),
        [p, s], tmp_path, rng, need_grad=[True, False])
    check_array_api(build, [p, s], module, tmp_path, need_grad=[True, False])


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
def test_batch_sizes_lengths_and_the_round_trip(backend):
    x = np.random.default_rng(0).normal(size=(3, 4, 2)).astype(np.float32)  # batch first
    lengths = [3, 1, 2, 0]
    previous = execution.set_backend(backend)
    try:
        packed, sizes = F.pack_padded_sequence(
            nn.Variable.from_numpy_array(x),
            nn.Variable.from_numpy_array(np.array(lengths, np.float32)), batch_first=False)
        padded, back = F.pad_packed_sequence(packed, sizes, total_length=5)
        padded.forward()
        back.forward()
    finally:
        execution.set_backend(previous)
    assert sizes.d.dtype == back.d.dtype == np.int32
    np.testing.assert_array_equal(sizes.d, batch_sizes_of(lengths, 3))
    np.testing.assert_array_equal(back.d, [3, 2, 1])  # (B = the largest batch size)
    expected = pad_reference(pack_reference(x, lengths), batch_sizes_of(lengths, 3),
                             total_length=5)
    np.testing.assert_array_equal(padded.d, expected)


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
def test_values_that_change_the_shape_are_refused_when_the_module_runs(backend):
    x = nn.Variable.from_numpy_array(np.ones((4, 3), np.float32))
    lengths = nn.Variable.from_numpy_array(np.array([4, 2, 1], np.float32))
    packed, sizes = F.pack_padded_sequence(x, lengths)
    sizes_in = nn.Variable.from_numpy_array(np.array([3, 2, 1, 1], np.float32))
    padded, _ = F.pad_packed_sequence(nn.Variable.from_numpy_array(np.ones((7,), np.float32)),
                                      sizes_in)
    previous = execution.set_backend(backend)
    try:
        packed.forward()
        lengths.d = np.array([4, 3, 1], np.float32)
        with pytest.raises(ValueError, match=r"F.pack_padded_sequence: the number of packed "
                                             r"rows \(the sum of the batch sizes\) is 8 now, "
                                             r"but was 7"):
            packed.forward()
        padded.forward()
        sizes_in.d = np.array([2, 2, 2, 1], np.float32)
        with pytest.raises(ValueError, match=r"F.pad_packed_sequence: the largest batch size "
                                             r"is 2 now, but was 3"):
            padded.forward()
    finally:
        execution.set_backend(previous)


@pytest.mark.parametrize("call,message", [
    (lambda: F.pack_padded_sequence(nn.Variable((4, 3)), nn.Variable((2,))),
     r"F.pack_padded_sequence: padded_sequence of shape \(4, 3\), lengths of shape \(2,\): "
     r"lengths must hold one length per sequence, of shape \(3,\)"),
    (lambda: F.pack_padded_sequence(nn.Variable((4,)), nn.Variable((4,))),
     r"padded_sequence must be \(T, B, ...\)"),
    (lambda: F.pack_padded_sequence(nn.Variable((2, 3)), nn.Variable.from_numpy_array(
        np.array([3.0, 1.0, 1.0]))), r"a length of 3 is longer than its 2 steps"),
    (lambda: F.pad_packed_sequence(nn.Variable((3,)), nn.Variable((2, 2))),
     r"F.pad_packed_sequence: packed_sequence of shape \(3,\), batch_sizes of shape "
     r"\(2, 2\)"),
])
def test_bad_shapes_are_refused_when_the_graph_is_built(call, message):
    with pytest.raises(ValueError, match=message):
        call()


NNABLA_SCRIPT = """
import json, sys
import numpy as np
import nnabla as nn
import nnabla.functions as F

nn.set_auto_forward(True)
for kind, value, extra, kwargs in json.loads(sys.argv[1]):
    x = nn.Variable.from_numpy_array(np.array(value, np.float32), need_grad=True)
    other = nn.Variable.from_numpy_array(np.array(extra, np.int32))
    function = F.pack_padded_sequence if kind == "pack" else F.pad_packed_sequence
    y, second = function(x, other, **kwargs)
    x.grad.zero()
    y.backward(np.arange(y.size, dtype=np.float32).reshape(y.shape))
    print(json.dumps({"y": y.d.tolist(), "shape": list(y.shape), "second": second.d.tolist(),
                      "grad": x.g.tolist(), "info": y.parent.info.args}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                    "(a Python 3.10 with `pip install nnabla`)")
def test_against_nnabla(tmp_path):
    rng = np.random.default_rng(6)
    calls = [("pack", rng.normal(size=shape).tolist(), lengths, {"batch_first": first})
             for shape, lengths, first in PACK_CONFIGS]
    for sizes, rest, first, _, total in PAD_CONFIGS:  # (nnabla pads with 0 whatever asked)
        kwargs = {"batch_first": first, **({"total_length": total} if total > 0 else {})}
        calls.append(("pad", rng.normal(size=(sum(sizes),) + rest).tolist(), sizes, kwargs))
    rows = nnabla_rows(NNABLA, NNABLA_SCRIPT, calls, tmp_path)
    assert len(rows) == len(calls)
    for (kind, value, extra, kwargs), row in zip(calls, rows, strict=True):
        x = nn.Variable.from_numpy_array(np.array(value, np.float32), need_grad=True)
        other = nn.Variable.from_numpy_array(np.array(extra, np.float32))
        function = F.pack_padded_sequence if kind == "pack" else F.pad_packed_sequence
        y, second = function(x, other, **kwargs)
        assert y.parent.info.args == row["info"]
        y.forward()
        second.forward()
        assert list(y.shape) == row["shape"]
        np.testing.assert_allclose(y.d, np.reshape(row["y"], row["shape"]), rtol=1e-6)
        np.testing.assert_array_equal(second.d, row["second"])
        x.grad.zero()
        y.backward(np.arange(y.size, dtype=np.float32).reshape(y.shape))
        np.testing.assert_allclose(x.g, row["grad"], rtol=1e-6)
