"""Data sources, as nnabla's ``utils.data_source`` (and ``data_source_implements``).

A data source hands out one example at a time by position; a
:class:`~symcompile.utils.data_iterator.DataIterator` batches them. The order in which
examples come out -- including which ``numpy.random.RandomState`` calls are made, and
when -- follows nnabla 1.39, so that the same seed gives the same batches as nnabla.
That is why the caches below reproduce nnabla's reordering rules rather than being
plain look-up tables: wrapping a source in a cache changes the order in nnabla too.
"""

from __future__ import annotations

import csv
import os
from collections import OrderedDict

import numpy

# nnabla.conf defaults (DATA_ITERATOR section); they decide orders, so they are fixed.
FILE_CACHE_CHUNK = 100            # data_source_file_cache_size
MEMORY_CACHE_LIMIT = 1073741824   # data_source_buffer_max_size (bytes)
_KEPT_ORDERS = 15                 # generations SimpleDataSource remembers, for slices


def _default_rng(rng):
    """nnabla seeds a fresh RandomState(313) for every component given rng=None."""
    return numpy.random.RandomState(313) if rng is None else rng


class DataSource:
    """Base class for user data sources.

    Subclasses set ``self._size`` and ``self._variables`` (names, in the order
    ``_get_data`` returns them) in ``__init__`` and implement ``_get_data(position)``;
    override ``reset()`` to reshuffle at each epoch (call ``super().reset()``).
    """

    #: Who produced an example, for error messages (subclasses refine it).
    _producer = None

    def __init__(self, shuffle=False, rng=None):
        self._rng = _default_rng(rng)
        self._variables = None
        self._generation = -1
        self._shuffle = shuffle
        self._position = 0
        self._size = 0
        self._closed = False
        self._order = None
        self._original_order = None
        self._original_source_uri = None

    def _get_data(self, position):
        raise NotImplementedError(
            f"{type(self).__name__} must implement _get_data(position), returning one "
            "example as a tuple with one entry per name in `variables`")

    def _get_data_of_generation(self, position, generation):
        """Sliced sources ask for a given epoch's order; most sources have one order."""
        return self._get_data(position)

    def _generate_order(self, generation):
        """Make the order of epoch `generation` (a no-op for sources without one)."""

    def _describe(self):
        return self._producer or f"{type(self).__name__}._get_data"

    def next(self):
        data = self._get_data(self._position)
        self._position += 1
        return data

    __next__ = next

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._closed = True

    def reset(self):
        """Go back to position 0 (called at each epoch end)."""
        self._position = 0

    def apply_order(self):
        """Called after a batch that crossed an epoch end: time to make the next order."""

    @property
    def rng(self):
        return self._rng

    @property
    def order(self):
        return self._order

    @property
    def variables(self):
        """Names of the values each example holds, in `_get_data`'s order."""
        return self._variables

    @property
    def position(self):
        """Position of the next example within the current epoch."""
        return self._position

    @property
    def size(self):
        return self._size

    @property
    def shuffle(self):
        return self._shuffle

    @shuffle.setter
    def shuffle(self, value):
        self._shuffle = value


class SimpleDataSource(DataSource):
    """Examples from ``load_func(index)``; ``variables`` are ``x0, x1, ...``.

    Each epoch ("generation") has its own order, drawn once with ``rng.permutation``
    when that epoch is first asked for, so that slices of one source (data-parallel
    workers) agree on it. ``load_func(0)`` is called once here to count the variables.
    """

    def __init__(self, load_func, num_examples, shuffle=False, rng=None):
        if not callable(load_func):
            raise ValueError(f"SimpleDataSource: load_func must be callable, got "
                             f"{type(load_func).__name__}; pass a function index -> tuple")
        if isinstance(num_examples, bool) or not isinstance(num_examples, (int, numpy.integer)) \
                or num_examples < 1:
            raise ValueError(f"SimpleDataSource: num_examples must be a positive int, got "
                             f"{num_examples!r}; pass the number of examples load_func "
                             "can load (indices 0 .. num_examples-1)")
        super().__init__(shuffle=shuffle, rng=rng)
        self._load_func = load_func
        self._producer = f"load_func {getattr(load_func, '__name__', repr(load_func))!s}"
        self._size = int(num_examples)
        self._generation = 0
        first = load_func(0)
        try:
            count = len(first)
        except TypeError:
            raise ValueError(
                f"SimpleDataSource: {self._producer} returned {type(first).__name__}, "
                "which has no length; return a tuple of arrays, e.g. `return (x, y)` "
                "or `return (x,)`") from None
        self._variables = ["x" + str(i) for i in range(count)]
        self._orders = OrderedDict()
        self.reset()
        self._generate_order(0)

    def _generate_order(self, generation):
        if generation in self._orders:
            return
        self._orders[generation] = (self._rng.permutation(self._size) if self._shuffle
                                    else numpy.arange(self._size))
        while len(self._orders) > _KEPT_ORDERS:
            self._orders.popitem(last=False)

    def apply_order(self):
        self._generation += 1
        self._generate_order(self._generation)

    def _get_data_of_generation(self, position, generation):
        if generation not in self._orders:
            raise ValueError(f"SimpleDataSource: the order of epoch {generation} is gone "
                             f"(only the last {_KEPT_ORDERS} are kept); keep slices of "
                             "one data iterator in step with each other")
        return self._load_func(self._orders[generation][position])

    def _get_data(self, position):
        return self._get_data_of_generation(position, self._generation)


def _load_image(f, normalize):
    """Pillow image -> (channels, height, width); scaled to [0, 1] if `normalize`."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("CsvDataSource: reading image files needs Pillow; "
                          "`pip install pillow`") from None
    with Image.open(f) as im:
        if im.mode not in ("L", "RGB", "RGBA", "I;16"):
            im = im.convert("RGB")
        img = numpy.asarray(im)
    img = img.reshape(img.shape[:2] + (1,)) if img.ndim == 2 else img
    img = img.transpose(2, 0, 1)
    if not normalize:
        return img
    return img * (1.0 / (65535.0 if img.dtype == numpy.uint16 else 255.0))


def _load_csv_cell(f, normalize):
    rows = [list(map(float, row)) for row in csv.reader(f.read().decode("utf-8").splitlines())
            if row]
    return numpy.array(rows)


_LOADERS = {".csv": _load_csv_cell,
            ".npy": lambda f, normalize: numpy.load(f, allow_pickle=False)}
_LOADERS.update(dict.fromkeys(
    (".bmp", ".jpg", ".jpeg", ".png", ".gif", ".tif", ".tiff"), _load_image))


class CsvDataSource(DataSource):
    """nnabla's CSV dataset: a header of ``name[__index][:label]`` cells, one row per example.

    Numbers become one-element lists (so a batch is (batch, 1)); other cells are file
    paths, relative to the CSV file's folder: images (Pillow), ``.csv`` arrays, ``.npy``.
    Columns whose header starts with ``#`` are ignored; ``x__0, x__1`` make one vector ``x``.
    Only local files are read (nnabla also reads http(s) and S3).
    """

    def __init__(self, filename, shuffle=False, rng=None, normalize=False):
        super().__init__(shuffle=shuffle, rng=rng)
        self._filename = os.fspath(filename)
        self._normalize = normalize
        self._producer = f"CsvDataSource({self._filename!r})"
        self._generation = -1
        with open(self._filename, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            try:
                header = next(reader)
            except StopIteration:
                raise ValueError(f"{self._producer}: the file is empty; its first row must "
                                 "name the variables, e.g. `x:image,y:label`") from None
            rows = [row for row in reader]
        keep = [i for i, name in enumerate(header) if not name.startswith("#")]
        self._rows = [[row[i] for i in keep if i < len(row)] for row in rows]
        self._columns = []
        names = []
        for cell in (header[i] for i in keep):
            variable_index = cell.split(":", 1)[0]
            variable, _, index = variable_index.partition("__")
            self._columns.append((variable, bool(index)))
            if variable not in names:
                names.append(variable)
        self._variables = tuple(names)
        self._size = len(self._rows)
        if self._size < 1:
            raise ValueError(f"{self._producer}: no examples below the header; add rows")
        self._original_source_uri = self._filename
        self._original_order = list(range(self._size))
        self._order = list(range(self._size))
        self.reset()

    def _value(self, text, whole):
        try:
            return [float(text)] if whole else float(text)
        except ValueError:
            pass
        ext = os.path.splitext(text)[1].lower()
        if ext not in _LOADERS:
            raise ValueError(f"{self._producer}: cell {text!r} is neither a number nor a "
                             f"file of a known kind ({', '.join(sorted(_LOADERS))})")
        path = os.path.abspath(os.path.join(os.path.dirname(self._filename),
                                            text.replace("\\", "/")))
        with open(path, "rb") as f:
            return _LOADERS[ext](f, self._normalize)

    def _get_data(self, position):
        row = self._rows[self._order[position]]
        if len(row) != len(self._columns):
            raise ValueError(f"{self._producer}: row {self._order[position] + 2} has "
                             f"{len(row)} cells, the header {len(self._columns)}; "
                             "give every row one cell per header column")
        values = OrderedDict()
        for (variable, indexed), text in zip(self._columns, row, strict=True):
            if indexed:
                values.setdefault(variable, []).append(self._value(text, False))
            else:
                values[variable] = self._value(text, True)
        return tuple(values.values())

    def reset(self):
        if self._shuffle:
            self._order = list(self._rng.permutation(list(range(self._size))))
        self._generation += 1
        super().reset()


class DataSourceWithMemoryCache(DataSource):
    """Keeps every example in memory after the first epoch, reordering it as nnabla does.

    nnabla's rule, kept because it decides the batches: epoch 1 reads the wrapped
    source in its order; epoch 2 repeats that order; from epoch 3 on the cached
    examples are permuted with this cache's ``rng``. Data larger than nnabla's 1 GiB
    buffer limit is passed through uncached, as in nnabla.
    """

    def __init__(self, data_source, shuffle=False, rng=None):
        super().__init__(shuffle=shuffle, rng=rng)
        self._data_source = data_source
        self._size = data_source.size
        self._variables = data_source.variables
        self._producer = data_source._describe()
        self._order = list(range(self._size))
        self._cache = []
        first = data_source._get_data(0)
        nbytes = sum(numpy.asarray(d, dtype=numpy.float32 if isinstance(d, list) else None).nbytes
                     for d in first)
        self._on_memory = nbytes * self._size < MEMORY_CACHE_LIMIT
        self._generation = -1

    def _get_data(self, position):
        if self._on_memory:
            if self._order[position] < len(self._cache):
                data = self._cache[self._order[position]]
            else:
                data = self._data_source._get_data(position)
                self._cache.append(data)
        else:
            data = self._data_source._get_data(position)
        self._position = position
        return data

    def reset(self):
        if self._on_memory:
            self._generation += 1
            if self._shuffle and self._generation > 0:
                self._order = list(self._rng.permutation(self._size))
            else:
                self._order = list(range(self._size))
            if self._position == 0:
                self._generation = -1
            else:
                self._data_source._position = self._position
                self._data_source.reset()
        else:
            self._data_source.reset()
            self._generation = self._data_source._generation
            self._position = self._data_source._position
        super().reset()

    def close(self):
        self._data_source.close()
        super().close()


class DataSourceWithFileCache(DataSource):
    """nnabla's file cache, held in memory: no cache files are written or read.

    It reads the whole wrapped source once, in its order, turning plain numbers into
    float32 arrays as nnabla's cache files do, in chunks of 100 examples. Each reset
    with ``shuffle`` permutes the chunks and the examples within each chunk with
    ``rng`` -- the same draws nnabla makes -- so batches match nnabla's.
    ``cache_dir`` is accepted for nnabla's signature and ignored.
    """

    def __init__(self, data_source, cache_dir=None, cache_file_name_prefix="cache",
                 shuffle=False, rng=None):
        super().__init__(shuffle=shuffle, rng=rng)
        self._cache_dir = cache_dir
        self._data_source = data_source
        self._size = data_source.size
        self._variables = data_source.variables
        self._producer = data_source._describe()
        self._generation = -1
        self._original_order = list(range(self._size))
        self._examples = []
        for position in range(self._size):
            data = data_source._get_data(position)
            self._examples.append([d if isinstance(d, numpy.ndarray)
                                   else numpy.array(d).astype(numpy.float32) for d in data])
        _check_shapes(self._variables, [self._examples], self._producer, "examples")
        self._chunk_order = list(range(-(-self._size // FILE_CACHE_CHUNK)))
        self._in_chunk = [list(range(min(FILE_CACHE_CHUNK, self._size - c * FILE_CACHE_CHUNK)))
                          for c in self._chunk_order]
        self._flatten()

    def _flatten(self):
        self._order = [c * FILE_CACHE_CHUNK + j for c in self._chunk_order
                       for j in self._in_chunk[c]]

    def _get_data(self, position):
        self._position = position
        return self._examples[self._order[position]]

    def reset(self):
        if self._shuffle:
            self._chunk_order = list(self._rng.permutation(self._chunk_order))
            self._in_chunk = [list(self._rng.permutation(c)) for c in self._in_chunk]
            self._flatten()
        self._data_source.reset()
        self._position = 0
        self._generation += 1

    def close(self):
        self._data_source.close()
        super().close()


class SlicedDataSource(DataSource):
    """Positions ``slice_start .. slice_end`` of another source (one data-parallel shard).

    Every epoch asks the wrapped source for that epoch's order by number, so shards
    cut from one source see one shared shuffle.
    """

    def __init__(self, data_source, shuffle=False, rng=None, slice_start=None,
                 slice_end=None):
        super().__init__(shuffle=shuffle, rng=rng)
        self._data_source = data_source
        self._variables = list(data_source.variables)
        self._producer = data_source._describe()
        self._slice_start = slice_start
        self._slice_end = slice_end
        self._size = slice_end - slice_start
        self._generation = 0

    def apply_order(self):
        self._generation += 1
        self._data_source._generate_order(self._generation)

    def reset(self):
        self._data_source.reset()
        self._data_source._position = self._slice_start
        self._position = 0

    def _get_data(self, position):
        self._position = position
        return self._data_source._get_data_of_generation(self._slice_start + position,
                                                         self._generation)


def _check_shapes(variables, examples_lists, producer, where="examples"):
    """Batches stack examples, so every example must give every variable one shape."""
    for examples in examples_lists:
        if not examples:
            continue
        for i, name in enumerate(variables):
            first = numpy.shape(examples[0][i])
            for k, example in enumerate(examples):
                shape = numpy.shape(example[i])
                if shape != first:
                    raise ValueError(
                        f"{producer} returned shape {shape} for variable {name!r} of one "
                        f"example but {first} for another ({where} 0 and {k}); "
                        "make it return arrays of the same shape for every index "
                        "(pad or resize them)")
