"""Mini-batch iterators, as nnabla's ``utils.data_iterator``.

``next()`` returns one numpy array per variable, each stacking ``batch_size``
examples. At an epoch end the iterator wraps around: a batch that crosses it is
completed from the start of the data, and the next epoch's shuffle is drawn after
that batch -- so, as in nnabla, the rest of the crossing batch still follows the old
order. The same seeds give nnabla's batches in nnabla's order.

Unlike nnabla, batches are loaded on ``next()`` in the calling thread (nnabla
prefetches in a thread; ``use_thread`` is accepted and changes nothing), and file
caches are kept in memory rather than written to ``cache_dir``.
"""

from __future__ import annotations

import numpy

from .data_source import (
    CsvDataSource,
    DataSource,
    DataSourceWithFileCache,
    DataSourceWithMemoryCache,
    SimpleDataSource,
    SlicedDataSource,
    _check_shapes,
)

__all__ = ["DataIterator", "DataSource", "SimpleDataSource", "CsvDataSource",
           "data_iterator", "data_iterator_simple", "data_iterator_csv_dataset"]


def _check_batch_size(batch_size, where):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, numpy.integer)) \
            or batch_size < 1:
        raise ValueError(f"{where}: batch_size must be a positive int, got {batch_size!r}; "
                         "pass the number of examples each next() should return")


class DataIterator:
    """Batches from a :class:`DataSource`; endless unless ``stop_exhausted``.

    ``epoch`` counts completed passes; epoch-end callbacks get the ending epoch's
    number and epoch-begin callbacks the new one's (none is called for epoch 0).
    With ``stop_exhausted=True`` a batch that would cross the end raises
    ``StopIteration`` instead (its examples are dropped), and so does every later call.
    """

    def __init__(self, data_source, batch_size, rng=None, use_thread=True,
                 epoch_begin_callbacks=[], epoch_end_callbacks=[],  # noqa: B006 - nnabla's
                 stop_exhausted=False):
        _check_batch_size(batch_size, "DataIterator")
        if not isinstance(data_source, DataSource):
            raise ValueError(f"DataIterator: data_source must be a DataSource, got "
                             f"{type(data_source).__name__}; subclass "
                             "symcompile.utils.data_source.DataSource")
        self._rng = numpy.random.RandomState(313) if rng is None else rng
        self._data_source = data_source
        self._shuffle = data_source.shuffle
        self._variables = data_source.variables
        self._batch_size = int(batch_size)
        self._size = data_source.size
        self._stop_exhausted = stop_exhausted
        self._use_thread = use_thread
        self._epoch_begin_callbacks = list(epoch_begin_callbacks)
        self._epoch_end_callbacks = list(epoch_end_callbacks)
        self._current_epoch = 0
        self._closed = False
        self._data_source.reset()

    def __iter__(self):
        return self

    def __next__(self):
        return self.next()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if not self._closed:
            self._data_source.close()
            self._closed = True

    @property
    def epoch(self):
        """How many times the position has wrapped back to zero."""
        return self._current_epoch

    @property
    def position(self):
        """Position of the next example within the current epoch."""
        return self._data_source.position

    @property
    def size(self):
        """Number of examples per epoch (the data source's size)."""
        return self._size

    @property
    def variables(self):
        """Names of the arrays `next()` returns, in order."""
        return self._variables

    @property
    def batch_size(self):
        return self._batch_size

    def _batch(self):
        source = self._data_source
        if self._stop_exhausted and source.position + self._batch_size > self._size:
            return None, 0
        examples, wraps = [], 0
        for _ in range(self._batch_size):
            examples.append(source.next())
            if source.position >= self._size and not self._stop_exhausted:
                wraps += 1
                source.reset()
        if wraps:
            source.apply_order()
        for example in examples:
            if len(example) != len(self._variables):
                raise ValueError(
                    f"{source._describe()} returned {len(example)} values for one example "
                    f"but the variables are {tuple(self._variables)}; return the same "
                    "number of values for every index")
        _check_shapes(self._variables, [examples], source._describe(), "items of a batch")
        return tuple(numpy.array([e[i] for e in examples])
                     for i in range(len(self._variables))), wraps

    def next(self):
        """The next batch: a tuple with one array per name in `variables`."""
        data, wraps = self._batch()
        if data is None:
            raise StopIteration
        for _ in range(wraps):
            for callback in self._epoch_end_callbacks:
                callback(self._current_epoch)
            self._current_epoch += 1
            for callback in self._epoch_begin_callbacks:
                callback(self._current_epoch)
        return data

    def slice(self, rng, num_of_slices=None, slice_pos=None, slice_start=None,
              slice_end=None, cache_dir=None, use_cache=False, drop_last=False):
        """A new iterator over one shard of this one's data, for data-parallel training.

        Give ``num_of_slices`` and ``slice_pos`` (shards of ``ceil(size / n)``
        examples, the last shifted back to end at ``size``; with ``drop_last`` of
        ``size // n``), or an explicit ``slice_start``/``slice_end``. Shards of one
        iterator share its per-epoch shuffle. ``rng`` is used only with ``use_cache``.
        """
        by_position = num_of_slices is not None and slice_pos is not None
        by_range = slice_start is not None and slice_end is not None
        if by_position and slice_start is None and slice_end is None:
            slice_start, slice_end = _shard(self._size, num_of_slices, slice_pos, drop_last)
        elif not (by_range and num_of_slices is None and slice_pos is None):
            raise ValueError("DataIterator.slice: give either num_of_slices and slice_pos, "
                             "or slice_start and slice_end")
        source = SlicedDataSource(self._data_source, self._data_source.shuffle,
                                  slice_start=slice_start, slice_end=slice_end)
        if use_cache:
            if cache_dir is not None:
                source = DataSourceWithFileCache(source, cache_dir=cache_dir,
                                                 shuffle=self._shuffle, rng=rng)
            source = DataSourceWithMemoryCache(source, shuffle=self._shuffle, rng=rng)
        return DataIterator(source, self._batch_size)

    def register_epoch_end_callback(self, callback):
        """`callback(epoch)` runs when epoch `epoch` ends."""
        self._epoch_end_callbacks.append(callback)

    def register_epoch_begin_callback(self, callback):
        """`callback(epoch)` runs when epoch `epoch` (from 1) begins."""
        self._epoch_begin_callbacks.append(callback)


def _shard(size, n, rank, drop_last):
    if drop_last:
        per = size // n
        return per * rank, per * rank + per
    per = (size + n - 1) // n
    start = (per * rank) % size
    end = start + per
    if end > size:
        start, end = start - (end - size), size
    return start, end


def data_iterator(data_source, batch_size, rng=None, use_thread=True, with_memory_cache=True,
                  with_file_cache=False, cache_dir=None,
                  epoch_begin_callbacks=[], epoch_end_callbacks=[],  # noqa: B006 - nnabla's
                  stop_exhausted=False):
    """A :class:`DataIterator` over `data_source`, optionally behind nnabla's caches.

    The caches change the order of examples exactly as nnabla's do (see
    :class:`~symcompile.utils.data_source.DataSourceWithMemoryCache`); the file
    cache is kept in memory and nothing is written to `cache_dir`.
    """
    _check_batch_size(batch_size, "data_iterator")
    source = data_source
    if with_file_cache:
        source = DataSourceWithFileCache(source, cache_dir=cache_dir,
                                         shuffle=data_source.shuffle, rng=rng)
    if with_memory_cache:
        source = DataSourceWithMemoryCache(source, shuffle=source.shuffle, rng=rng)
    return DataIterator(source, batch_size, use_thread=use_thread,
                        epoch_begin_callbacks=epoch_begin_callbacks,
                        epoch_end_callbacks=epoch_end_callbacks, stop_exhausted=stop_exhausted)


def data_iterator_simple(load_func, num_examples, batch_size, shuffle=False, rng=None,
                         use_thread=True, with_memory_cache=False, with_file_cache=False,
                         cache_dir=None,
                         epoch_begin_callbacks=[], epoch_end_callbacks=[],  # noqa: B006
                         stop_exhausted=False):
    """Batches of ``load_func(i)`` for ``i`` in ``range(num_examples)``.

    `load_func` returns a tuple of arrays (one per variable, ``x0, x1, ...``) of the
    same shapes for every `i`; it is called once more for ``i = 0`` up front.
    """
    _check_batch_size(batch_size, "data_iterator_simple")
    return data_iterator(SimpleDataSource(load_func, num_examples, shuffle=shuffle, rng=rng),
                         batch_size, use_thread=use_thread,
                         with_memory_cache=with_memory_cache, with_file_cache=with_file_cache,
                         cache_dir=cache_dir, epoch_begin_callbacks=epoch_begin_callbacks,
                         epoch_end_callbacks=epoch_end_callbacks, stop_exhausted=stop_exhausted)


def data_iterator_csv_dataset(uri, batch_size, shuffle=False, rng=None, use_thread=True,
                              normalize=True, with_memory_cache=True, with_file_cache=True,
                              cache_dir=None,
                              epoch_begin_callbacks=[], epoch_end_callbacks=[],  # noqa: B006
                              stop_exhausted=False):
    """Batches from an nnabla CSV dataset file (see :class:`CsvDataSource`).

    With `normalize`, 8-bit images are scaled by 1/255. As in nnabla the default file
    cache turns numbers into float32; without it they stay float64.
    """
    _check_batch_size(batch_size, "data_iterator_csv_dataset")
    return data_iterator(CsvDataSource(uri, shuffle=shuffle, rng=rng, normalize=normalize),
                         batch_size, use_thread=use_thread,
                         with_memory_cache=with_memory_cache, with_file_cache=with_file_cache,
                         cache_dir=cache_dir, epoch_begin_callbacks=epoch_begin_callbacks,
                         epoch_end_callbacks=epoch_end_callbacks, stop_exhausted=stop_exhausted)
