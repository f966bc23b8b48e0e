"""Variable-length sequences, as nnabla's ``utils.rnn``: pad a list of sequences into one
array, pack it step by step (F.pack_padded_sequence) and back (F.pad_packed_sequence).

As nnabla's, these are for dynamic graphs (``nn.auto_forward()``): the packed shapes
follow from the lengths' values, which F takes when it is called. Everything is made of
F functions, so gradients flow back to the sequences.
"""

from __future__ import annotations

import numpy

from symcompile import functions as F
from symcompile.frontend.variable import Variable


class PackedSequence:
    """A packed sequence: `data` (N, ...), `batch_sizes` (T,), and with sequences that were
    not sorted by decreasing length, `sorted_indices` (the order packing used) and
    `unsorted_indices` (the way back); None when they were."""

    def __init__(self) -> None:
        self.data = None
        self.batch_sizes = None
        self.sorted_indices = None
        self.unsorted_indices = None

    def __str__(self) -> str:
        return (f"data={self.data}, batch_sizes={self.batch_sizes}, "
                f"sorted_indices={self.sorted_indices}, "
                f"unsorted_indices={self.unsorted_indices}")


def pad_sequence(sequences, batch_first=False, padding_value=0.0):
    """The Variables `sequences` (T_i, ...) as one (T, B, ...) array ((B, T, ...) with
    `batch_first`), T the longest T_i, `padding_value` after each sequence's end."""
    if not sequences or not all(isinstance(s, Variable) for s in sequences):
        raise TypeError("pad_sequence: sequences must be a non-empty list of Variables of "
                        "shape (T_i, ...)")
    rest = sequences[0].shape[1:]
    if any(not s.shape or s.shape[1:] != rest for s in sequences):
        shapes = [s.shape for s in sequences]
        raise ValueError(f"pad_sequence: the sequences' shapes {shapes} must be (T_i, ...), "
                         f"the same after their first axis")
    steps = max(s.shape[0] for s in sequences)
    padded = [F.pad(s, (0, steps - s.shape[0]) + (0, 0) * len(rest), "constant",
                    padding_value) if s.shape[0] < steps else s for s in sequences]
    return F.stack(*padded, axis=0 if batch_first else 1)


def pack_padded_sequence(padded_sequence, lengths, batch_first=False, enforce_sorted=True):
    """`padded_sequence` (T, B, ...) ((B, T, ...) with `batch_first`) packed, as a
    PackedSequence. With `enforce_sorted` the sequences are taken to be sorted by
    decreasing length already; without, they are sorted first (stably, by F.sort) and
    the PackedSequence keeps the order, for pad_packed_sequence to restore."""
    sorted_indices = unsorted_indices = None
    if not enforce_sorted:
        lengths, sorted_indices = F.sort(lengths, axis=0, reverse=True, with_index=True)
        batch = sorted_indices.shape[0]
        unsorted_indices = F.scatter_nd(F.arange(0, batch), sorted_indices.reshape((1, batch)),
                                        shape=(batch,))
        padded_sequence = F.gather(padded_sequence, sorted_indices, 0 if batch_first else 1)
    packed = PackedSequence()
    packed.data, packed.batch_sizes = F.pack_padded_sequence(padded_sequence, lengths,
                                                             batch_first)
    packed.sorted_indices, packed.unsorted_indices = sorted_indices, unsorted_indices
    return packed


def pack_sequence(sequences, batch_first=False, enforce_sorted=True):
    """The Variables `sequences` (T_i, ...) padded (pad_sequence) and packed
    (pack_padded_sequence), as nnabla's (which packs the time-major padding whatever
    `batch_first` says)."""
    lengths = Variable.from_numpy_array(numpy.array([s.shape[0] for s in sequences]))
    return pack_padded_sequence(pad_sequence(sequences), lengths,
                                enforce_sorted=enforce_sorted)


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """A PackedSequence padded back: (padded (T, B, ...) or (B, T, ...) with
    `batch_first`, lengths (B,)), in the sequences' original order when packing sorted
    them; `total_length` pads the steps up to it (less than the steps packed is refused,
    as nnabla's)."""
    steps = sequence.batch_sizes.shape[0]
    if total_length is not None and total_length < steps:
        raise ValueError(f"pad_packed_sequence: total_length ({total_length}) must be at "
                         f"least the longest length ({steps})")
    padded, lengths = F.pad_packed_sequence(sequence.data, sequence.batch_sizes, batch_first,
                                            padding_value, total_length)
    if sequence.unsorted_indices is not None:
        padded = F.gather(padded, sequence.unsorted_indices, 0 if batch_first else 1)
        lengths = F.gather(lengths, sequence.unsorted_indices, 0)
    return padded, lengths
