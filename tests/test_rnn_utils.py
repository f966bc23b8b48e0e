"""symcompile.utils.rnn: nnabla's helpers for variable-length sequences (pad_sequence,
pack_padded_sequence, pack_sequence, pad_packed_sequence, PackedSequence), under
auto-forward as nnabla's must be used: sorted and unsorted lengths, batch-first and
time-major padding, total_length, their values against nnabla 1.39 where it is installed;
the gradient reaching the sequences (nnabla's pad_sequence writes them into a constant,
which gives them none); what nnabla refuses."""

from __future__ import annotations

import os

import numpy as np
import pytest
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.functions as F
import symcompile.utils.rnn as rnn

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
CONFIGS = [([2, 3, 3, 4, 2], False, False), ([4, 3, 2], True, True), ([1, 3, 2], False, False)]

SCRIPT = """
import json, sys
import numpy as np
import nnabla as nn
import nnabla.functions as F
import nnabla.utils.rnn as rnn

nn.set_auto_forward(True)
for values, batch_first, enforce_sorted in json.loads(sys.argv[1]):
    sequences = [nn.Variable.from_numpy_array(np.array(v, np.float32)) for v in values]
    packed = rnn.pack_sequence(sequences, enforce_sorted=enforce_sorted)
    padded, lengths = rnn.pad_packed_sequence(packed, batch_first=batch_first, total_length=5)
    print(json.dumps({"data": packed.data.d.tolist(), "batch_sizes": packed.batch_sizes.d.tolist(),
                      "padded": padded.d.tolist(), "lengths": lengths.d.tolist(),
                      "pad": rnn.pad_sequence(sequences, True, -1.0).d.tolist()}))
"""


def _values(lengths, seed):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, 2)).astype(np.float32) for n in lengths]


def _run(values, batch_first, enforce_sorted):
    with nn.auto_forward():
        sequences = [nn.Variable.from_numpy_array(v, need_grad=True) for v in values]
        packed = rnn.pack_sequence(sequences, enforce_sorted=enforce_sorted)
        padded, lengths = rnn.pad_packed_sequence(packed, batch_first=batch_first,
                                                  total_length=5)
        loss = F.sum(padded * padded)
    loss.backward()
    return sequences, packed, padded, lengths


@pytest.mark.parametrize("lengths,batch_first,enforce_sorted", CONFIGS, ids=str)
def test_the_round_trip_restores_the_sequences_and_their_gradients(lengths, batch_first,
                                                                   enforce_sorted):
    values = _values(lengths, len(lengths))
    sequences, _, padded, back = _run(values, batch_first, enforce_sorted)
    np.testing.assert_array_equal(back.d, lengths)
    grid = padded.d if batch_first else np.swapaxes(padded.d, 0, 1)
    for b, value in enumerate(values):
        np.testing.assert_array_equal(grid[b, :len(value)], value)
        np.testing.assert_array_equal(grid[b, len(value):], 0)
        np.testing.assert_allclose(sequences[b].g, 2 * value, rtol=1e-6)  # d sum(y*y)


def test_refused_as_nnabla_refuses_them():
    values = _values([3, 2], 0)
    with nn.auto_forward():
        packed = rnn.pack_sequence([nn.Variable.from_numpy_array(v) for v in values])
        with pytest.raises(ValueError, match=r"total_length \(2\) must be at least the "
                                             r"longest length \(3\)"):
            rnn.pad_packed_sequence(packed, total_length=2)
    with pytest.raises(ValueError, match=r"the same after their first axis"):
        rnn.pad_sequence([nn.Variable((2, 3)), nn.Variable((2, 4))])


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set")
def test_against_nnabla(tmp_path):
    calls = [([v.tolist() for v in _values(lengths, i)], batch_first, enforce_sorted)
             for i, (lengths, batch_first, enforce_sorted) in enumerate(CONFIGS)]
    rows = nnabla_rows(NNABLA, SCRIPT, calls, tmp_path)
    assert len(rows) == len(calls)
    for (values, batch_first, enforce_sorted), row in zip(calls, rows, strict=True):
        arrays = [np.array(v, np.float32) for v in values]
        _, packed, padded, lengths = _run(arrays, batch_first, enforce_sorted)
        for got, key in ((packed.data, "data"), (packed.batch_sizes, "batch_sizes"),
                         (padded, "padded"), (lengths, "lengths")):
            np.testing.assert_allclose(got.d, np.array(row[key]), rtol=1e-6, err_msg=key)
        with nn.auto_forward():
            pad = rnn.pad_sequence([nn.Variable.from_numpy_array(a) for a in arrays], True,
                                   -1.0)
        np.testing.assert_array_equal(pad.d, np.array(row["pad"]))
