"""nnabla's `nnabla.communicators` on MPI (through mpi4py): data-parallel training.

nnabla's distributed scripts are launched as ``mpirun -n N python train.py``; each process
builds the same graph, trains on its shard of the data and, between ``backward()`` and
``update()``, sums (``division=True``: averages) the gradients of all processes::

    comm = C.MultiProcessDataParalellCommunicator(ctx)   # nnabla's spelling
    comm.init()
    ...
    comm.all_reduce([v.grad for v in nn.get_parameters().values()], division=True)

The exchange is MPI's own collectives (mpi4py's buffer methods, at C speed on NumPy
memory): every call packs its arrays into one contiguous buffer per dtype (one message,
not one per parameter), reduces it in place and writes the result back. mpi4py is an
optional extra (``pip install 'symcompile[mpi]'``); without it a communicator is the
one-process one (size 1, rank 0, every collective a no-op but the division by 1), so
the same script runs on a laptop. Launched by ``mpirun`` with more processes than MPI
lets this one see, `init()` refuses, rather than let every process train alone.

A process that dies or hangs would leave the others waiting in a collective for ever:
each collective is watched, and one that waits longer than ``SYMCOMPILE_COMM_TIMEOUT``
seconds (default 300) prints which rank waited where and aborts the whole MPI job.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import weakref

import numpy

from symcompile.frontend.variable import NdArray, Storage, Variable

__all__ = ["Communicator", "MultiProcessCommunicator", "MultiProcessDataParalellCommunicator",
           "MultiProcessDataParallelCommunicator", "CommunicatorTimeout"]

TIMEOUT_VARIABLE = "SYMCOMPILE_COMM_TIMEOUT"
DEFAULT_TIMEOUT = 300.0
# Environment variables launchers set to the number of processes they started
# (Open MPI's mpirun; MPICH's and Intel MPI's Hydra, and srun through PMI).
LAUNCHER_SIZE = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
# inplace=True's bounded packing buffer (nnabla: "memory-efficient"): bytes per message
INPLACE_CHUNK_BYTES = 8 << 20
WORLD = "world"


class CommunicatorTimeout(RuntimeError):
    """A collective waited longer than the timeout for the other processes."""


def timeout_seconds() -> float:
    """The watchdog's limit, from ``SYMCOMPILE_COMM_TIMEOUT`` (seconds, > 0)."""
    text = os.environ.get(TIMEOUT_VARIABLE)
    if text is None or text == "":
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"{TIMEOUT_VARIABLE}={text!r}: expected a number of seconds > 0, "
                         f"e.g. {TIMEOUT_VARIABLE}=600")
    return value


def launched_size() -> tuple[int, str] | None:
    """(the number of processes a launcher says it started, the variable saying it)."""
    for name in LAUNCHER_SIZE:
        text = os.environ.get(name, "")
        if text.isdigit():
            return int(text), name
    return None


# --- the transports: array-level collectives ---------------------------------------------

class Watchdog:
    """Aborts the MPI job when a collective waits longer than `timeout` seconds.

    MPI collectives block until every process arrives; a process that hung (or one that
    died where the launcher does not notice) would keep the others waiting for ever.
    `arm(what)` before a collective and `disarm()` after it cost two assignments; a daemon
    thread looks at the deadline and, past it, prints which rank waited in what and calls
    `abort` (MPI_Abort ends every process of the job)."""

    def __init__(self, timeout: float, rank: int, size: int, abort) -> None:
        self.timeout = timeout
        self._rank, self._size, self._abort = rank, size, abort
        self._what = None
        self._since = 0.0
        self._count = 0  # collectives armed so far: tells one wait from the next
        self._thread = None

    def arm(self, what: str) -> None:
        self._since = time.monotonic()
        self._count += 1
        self._what = what
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="symcompile-comm-watchdog",
                                            daemon=True)
            self._thread.start()

    def disarm(self) -> None:
        self._what = None

    def _watch(self) -> None:
        while True:
            count, what, since = self._count, self._what, self._since
            waited = time.monotonic() - since
            if what is None or waited < self.timeout:
                time.sleep(min(1.0, self.timeout / 4))
                continue
            if self._count == count and self._what is not None:  # still the same wait
                self._fire(what, waited)
                return

    def _fire(self, what: str, waited: float) -> None:
        print(f"symcompile.communicators: rank {self._rank} of {self._size} waited "
              f"{waited:.1f} s in {what} for the other ranks (limit {TIMEOUT_VARIABLE}="
              f"{self.timeout:g} s): one of them has died or hung. Aborting the MPI job so "
              f"that no rank waits for ever; if a rank legitimately takes longer between "
              f"collectives (a long evaluation, a first compile), raise {TIMEOUT_VARIABLE}.",
              file=sys.stderr, flush=True)
        try:
            self._abort(1)
        finally:
            os._exit(1)


class SingleProcess:
    """The one-process transport (no MPI): size 1, every collective leaves the values."""

    name = "SingleProcess"
    rank = 0
    size = 1
    local_rank = 0

    def allreduce(self, buffer: numpy.ndarray, what: str) -> None:
        pass

    def reduce(self, buffer: numpy.ndarray, root: int, what: str) -> None:
        pass

    def bcast(self, buffer: numpy.ndarray, root: int, what: str) -> None:
        pass

    def allgather(self, send: numpy.ndarray, receive: numpy.ndarray, what: str) -> None:
        receive[0] = send

    def reduce_scatter(self, send: numpy.ndarray, receive: numpy.ndarray, what: str) -> None:
        receive[...] = send[0]

    def allgather_object(self, value, what: str) -> list:
        return [value]

    def barrier(self) -> None:
        pass

    def abort(self, code: int = 1) -> None:
        raise SystemExit(code)

    def subgroup(self, ranks: list[int]):
        return self


class MPITransport:
    """Collectives of an mpi4py communicator on NumPy buffers, each watched by the
    `Watchdog`. Buffers are contiguous: MPI reads and writes them where they are."""

    def __init__(self, comm, mpi, watchdog: Watchdog | None = None, local_rank=None) -> None:
        self._comm, self._mpi = comm, mpi
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        if local_rank is None:
            node = comm.Split_type(mpi.COMM_TYPE_SHARED, key=self.rank)
            local_rank = node.Get_rank()
            node.Free()
        self.local_rank = local_rank
        self.name = "MPI"
        self._watchdog = watchdog or Watchdog(timeout_seconds(), self.rank, self.size,
                                              mpi.COMM_WORLD.Abort)

    def _run(self, what: str, call, *args):
        self._watchdog.arm(what)
        try:
            return call(*args)
        finally:
            self._watchdog.disarm()

    def allreduce(self, buffer: numpy.ndarray, what: str) -> None:
        self._run(what, self._comm.Allreduce, self._mpi.IN_PLACE, buffer)

    def reduce(self, buffer: numpy.ndarray, root: int, what: str) -> None:
        if self.rank == root:
            self._run(what, self._comm.Reduce, self._mpi.IN_PLACE, buffer, self._mpi.SUM, root)
        else:  # (MPI leaves a non-root's send buffer as it is)
            self._run(what, self._comm.Reduce, buffer, None, self._mpi.SUM, root)

    def bcast(self, buffer: numpy.ndarray, root: int, what: str) -> None:
        self._run(what, self._comm.Bcast, buffer, root)

    def allgather(self, send: numpy.ndarray, receive: numpy.ndarray, what: str) -> None:
        self._run(what, self._comm.Allgather, send, receive)

    def reduce_scatter(self, send: numpy.ndarray, receive: numpy.ndarray, what: str) -> None:
        self._run(what, self._comm.Reduce_scatter_block, send, receive)

    def allgather_object(self, value, what: str) -> list:
        return self._run(what, self._comm.allgather, value)

    def barrier(self) -> None:
        self._run("barrier()", self._comm.Barrier)

    def abort(self, code: int = 1) -> None:
        self._comm.Abort(code)

    def subgroup(self, ranks: list[int]):
        """The transport over `ranks` (collective over this one: every rank calls it),
        or None on a rank outside them."""
        group = self._comm.Get_group().Incl(ranks)
        comm = self._comm.Create(group)
        group.Free()
        if comm == self._mpi.COMM_NULL:
            return None
        return MPITransport(comm, self._mpi, self._watchdog, self.local_rank)


def _abort_on_uncaught_exception(world) -> None:
    """Make an exception nobody catches end the whole job, as ``python -m mpi4py`` does.

    Otherwise the failing process runs MPI_Finalize at exit, which waits for the others,
    while they wait for it in their next collective: the job hangs with no one reporting
    anything. The traceback is printed first, with the rank."""
    previous = sys.excepthook
    if getattr(previous, "symcompile_aborts", False):
        return

    def abort(kind, value, traceback) -> None:
        print(f"symcompile.communicators: rank {world.Get_rank()} of {world.Get_size()} "
              f"stopped on an uncaught exception; aborting the MPI job so that the other "
              f"ranks do not wait for it:", file=sys.stderr, flush=True)
        previous(kind, value, traceback)
        sys.stderr.flush()
        world.Abort(1)

    abort.symcompile_aborts = True
    sys.excepthook = abort


def connect():
    """The transport of this process: MPI's world through mpi4py when it is installed,
    else the one-process one; refused when a launcher started more processes than that
    lets this one see (each would otherwise train alone on its shard)."""
    launched = launched_size()
    try:
        from mpi4py import MPI
    except ImportError as error:
        if launched is not None and launched[0] > 1:
            raise RuntimeError(
                f"symcompile.communicators: this process is one of {launched[0]} an MPI "
                f"launcher started ({launched[1]}={launched[0]}), but mpi4py cannot be "
                f"imported ({error}), so it cannot exchange gradients with the others: each "
                f"would train alone. Install it where this Python runs: pip install "
                f"'symcompile[mpi]' (it compiles against the MPI library, e.g. apt-get "
                f"install libopenmpi-dev), or run one process without mpirun."
            ) from None
        return SingleProcess()
    world = MPI.COMM_WORLD
    if world.Get_size() > 1:
        _abort_on_uncaught_exception(world)
    if launched is not None and world.Get_size() != launched[0]:
        raise RuntimeError(
            f"symcompile.communicators: the launcher started {launched[0]} processes "
            f"({launched[1]}={launched[0]}) but MPI gives this one a world of "
            f"{world.Get_size()}: mpi4py is built against another MPI library than the "
            f"mpirun that launched it ({MPI.Get_library_version().splitlines()[0].strip()}). "
            f"Launch with that library's mpirun, or rebuild mpi4py against this one: pip "
            f"install --no-binary mpi4py --force-reinstall mpi4py.")
    return MPITransport(world, MPI)


# --- packing: a list of arrays as one contiguous buffer per dtype -------------------------

class Packer:
    """Reused contiguous buffers, one per dtype, that a list of arrays is copied into (one
    message per collective, whatever the number of parameters) and back out of."""

    def __init__(self) -> None:
        self._buffers: dict[numpy.dtype, numpy.ndarray] = {}

    def buffer(self, dtype: numpy.dtype, size: int) -> numpy.ndarray:
        """A contiguous array of `size` elements of `dtype`, reused between calls."""
        held = self._buffers.get(dtype)
        if held is None or held.size < size:
            held = numpy.empty(size, dtype)
            self._buffers[dtype] = held
        return held[:size]

    @staticmethod
    def by_dtype(arrays: list[numpy.ndarray]) -> dict[numpy.dtype, list[numpy.ndarray]]:
        groups: dict[numpy.dtype, list[numpy.ndarray]] = {}
        for array in arrays:
            groups.setdefault(array.dtype, []).append(array)
        return groups

    @staticmethod
    def chunks(arrays: list[numpy.ndarray], limit: int | None) -> list[list[numpy.ndarray]]:
        """`arrays` in consecutive runs of at most `limit` elements (an array larger than
        the limit is a run of its own); one run when `limit` is None."""
        if limit is None:
            return [arrays]
        runs, run, count = [], [], 0
        for array in arrays:
            if run and count + array.size > limit:
                runs.append(run)
                run, count = [], 0
            run.append(array)
            count += array.size
        return runs + ([run] if run else [])

    def pack(self, arrays: list[numpy.ndarray]) -> numpy.ndarray:
        total = sum(a.size for a in arrays)
        flat = self.buffer(arrays[0].dtype, total)
        offset = 0
        for array in arrays:
            flat[offset:offset + array.size] = array.reshape(-1)
            offset += array.size
        return flat

    @staticmethod
    def unpack(flat: numpy.ndarray, arrays: list[numpy.ndarray], divisor=None) -> None:
        """Copy `flat` back into `arrays`, divided by `divisor` on the way (one pass)."""
        offset = 0
        for array in arrays:
            piece = flat[offset:offset + array.size].reshape(array.shape)
            if divisor is None:
                array[...] = piece
            else:
                numpy.divide(piece, divisor, out=array)
            offset += array.size


class Homes:
    """Gradients moved into one flat buffer, so that the next collectives over the same
    gradients reduce that buffer where it is, with no copies in and out: after the first
    all_reduce of a list of `.grad` NdArrays, their Storages' gradient arrays become
    consecutive views of one buffer (the values copied over). Any other array a Storage
    takes since (another dtype, a new shape) sends the list back to packing, and home
    again."""

    def __init__(self) -> None:
        # the Storages' ids -> (the Storages, weakly; their views; the flat buffer)
        self._homes: dict[tuple, tuple] = {}

    @staticmethod
    def _storages(items) -> list | None:
        """The Storages of `items` if every one is a gradient of a plain Storage."""
        storages = []
        for item in items:
            storage = item._storage
            if item._field != "grad" or type(storage) is not Storage:
                return None
            storages.append(storage)
        return storages if len({id(s) for s in storages}) == len(storages) else None

    def flat(self, items) -> numpy.ndarray | None:
        """The flat buffer `items` (NdArrays) live in, if they still do."""
        home = self._homes.get(tuple(id(item._storage) for item in items))
        if home is None:
            return None
        refs, views, flat = home
        for ref, view in zip(refs, views, strict=True):
            storage = ref()
            if storage is None:
                return None
            storage._touch("grad")  # (work the runtime put off on it, done first)
            if storage._grad is not view:
                return None
        return flat

    def home(self, items, arrays: list[numpy.ndarray]) -> None:
        """Move the gradients of `items` (their live `arrays`, one dtype) into one buffer."""
        storages = self._storages(items)
        if storages is None or len(arrays) < 2:
            return
        flat = numpy.empty(sum(a.size for a in arrays), arrays[0].dtype)
        views, offset = [], 0
        for storage, array in zip(storages, arrays, strict=True):
            view = flat[offset:offset + array.size].reshape(array.shape)
            view[...] = array
            storage._install("grad", view)
            views.append(view)
            offset += array.size
        self._homes[tuple(map(id, storages))] = ([weakref.ref(s) for s in storages],
                                                views, flat)


# --- nnabla's communicator ----------------------------------------------------------------

def _arrays(data, function: str) -> list[numpy.ndarray]:
    """The live arrays of nnabla's `data` argument: an NdArray or a list of NdArrays."""
    items = data if isinstance(data, (list, tuple)) else [data]
    arrays = []
    for index, item in enumerate(items):
        if not isinstance(item, NdArray):
            where = f"item {index} of the list" if items is data else "data"
            hint = (" (a Variable: pass its gradient or values, v.grad or v.data, e.g. "
                    "[v.grad for v in nn.get_parameters().values()])"
                    if isinstance(item, Variable) else
                    " (wrap a NumPy array with nn.NdArray.from_numpy_array(array))")
            raise TypeError(f"{function}: {where} is a {type(item).__name__}, expected an "
                            f"NdArray or a list of NdArrays, as nnabla's{hint}")
        array = item.data.view(numpy.ndarray)
        if not (array.flags.c_contiguous and array.flags.writeable):
            raise ValueError(f"{function}: item {index} is a view MPI cannot write in place "
                             f"(shape {array.shape}); pass the NdArray itself")
        arrays.append(array)
    return arrays


def _single(ndarray, function: str) -> numpy.ndarray:
    if not isinstance(ndarray, NdArray):
        raise TypeError(f"{function}: expected one NdArray, got a {type(ndarray).__name__}")
    return _arrays(ndarray, function)[0]


def _fraction(division: bool, dtype: numpy.dtype, function: str) -> None:
    if division and dtype.kind != "f":
        raise TypeError(f"{function}(division=True) of {dtype} arrays: their mean is not a "
                        f"{dtype}; cast them first (ndarray.cast(numpy.float32))")


class Communicator:
    """nnabla's communicator interface: collectives over the processes of a job.

    `data` arguments are an `NdArray` or a list of NdArrays (`v.grad`, `v.data`), as in
    nnabla; `division=True` divides the sum by `size`, the number of processes (nnabla's
    "number of devices"); `inplace` chooses, as nnabla's, memory over speed: False packs
    all arrays of a dtype into one buffer (one message), True into buffers of at most
    8 MiB (a few messages, bounded extra memory). The result is in the same arrays either
    way. `group` names a group made by `new_group` ("world": every process)."""

    def __init__(self, ctx=None) -> None:
        self.ctx = ctx
        self._transport = None
        self._groups: dict[str, tuple[list[int], object]] = {}
        self._parameters: list[tuple[object, dict]] = []
        self._packer = Packer()
        self._homes = Homes()

    # --- set-up ---------------------------------------------------------------------------
    def init(self) -> None:
        """Join the job: MPI's processes through mpi4py, or this process alone."""
        if self._transport is None:
            self._transport = connect()
            self._groups = {WORLD: (list(range(self._transport.size)), self._transport)}

    def _joined(self, function: str):
        if self._transport is None:
            raise RuntimeError(f"{type(self).__name__}.{function}: the communicator is not "
                               f"initialised; call comm.init() first, as in nnabla")
        return self._transport

    @property
    def transport(self):
        """The array-level collectives under this communicator (`allreduce(buffer, what)`,
        `bcast(buffer, root, what)`, `allgather_object(value, what)`, ... on contiguous
        NumPy buffers, in place): what `symcompile.distributed` drives a generated module
        with, without NdArrays."""
        return self._joined("transport")

    @property
    def name(self) -> str:
        return f"MultiProcessDataParallelCommunicator{self._joined('name').name}"

    @property
    def size(self) -> int:
        """The number of processes."""
        return self._joined("size").size

    @property
    def rank(self) -> int:
        """This process's number, 0 to size - 1."""
        return self._joined("rank").rank

    @property
    def local_rank(self) -> int:
        """This process's number among those on its machine (nnabla's device id)."""
        return self._joined("local_rank").local_rank

    def _group(self, group: str, function: str):
        self._joined(function)
        found = self._groups.get(group)
        if found is None:
            raise ValueError(f"{function}: no group {group!r}; groups are "
                             f"{sorted(self._groups)} (make one with new_group)")
        ranks, transport = found
        if transport is None:
            raise ValueError(f"{function}: rank {self.rank} is not in group {group!r} "
                             f"(ranks {ranks}); call it only on those ranks")
        return transport

    def new_group(self, name_ranks) -> str:
        """A group of ranks, by name (every process calls it, as MPI's Comm_create)."""
        name, ranks = name_ranks
        ranks = [int(r) for r in ranks]
        transport = self._joined("new_group")
        if name in self._groups:
            raise ValueError(f"new_group: a group {name!r} exists (ranks "
                             f"{self._groups[name][0]}); choose another name")
        if not ranks or sorted(set(ranks)) != sorted(ranks) \
                or not all(0 <= r < transport.size for r in ranks):
            raise ValueError(f"new_group: ranks {ranks} must be distinct ranks of 0 to "
                             f"{transport.size - 1}")
        self._groups[name] = (ranks, transport.subgroup(ranks))
        return name

    def list_groups(self) -> dict[str, list[int]]:
        return {name: list(ranks) for name, (ranks, _) in self._groups.items()}

    def find_group(self, group: str) -> list[int]:
        found = self._groups.get(group)
        return list(found[0]) if found else []

    # --- collectives ----------------------------------------------------------------------
    def _each_buffer(self, arrays, inplace: bool, divisor: int | None, function: str,
                     collect):
        """Run `collect(buffer, what)` on the packed buffer(s) of `arrays` and write the
        result back (divided by `divisor` unless it is None)."""
        limit = None
        for dtype, group in Packer.by_dtype(arrays).items():
            _fraction(divisor is not None, dtype, function)
            if self._transport.size == 1:
                continue  # alone: the sum is the values, the division by 1 leaves them
            if inplace:
                limit = max(1, INPLACE_CHUNK_BYTES // dtype.itemsize)
            for run in Packer.chunks(group, limit):
                flat = self._packer.pack(run)
                collect(flat, f"{function} of {len(run)} arrays ({flat.nbytes} bytes)")
                Packer.unpack(flat, run, divisor)

    def all_reduce(self, data, division=False, inplace=False, group=WORLD) -> None:
        """Sum `data` (an NdArray or list of NdArrays) over the processes, in place on
        every one; `division` divides the sum by the number of processes. Gradients
        reduced together once are moved into one buffer (`Homes`), which later calls
        reduce where it lies."""
        transport = self._group(group, "all_reduce")
        items = data if isinstance(data, (list, tuple)) else [data]
        flat = None
        if transport.size > 1 and not inplace and all(isinstance(i, NdArray) for i in items):
            flat = self._homes.flat(items)  # (checked when they moved there)
        if flat is not None:
            _fraction(division, flat.dtype, "all_reduce")
            transport.allreduce(flat, f"all_reduce of {len(items)} gradients in one buffer "
                                      f"({flat.nbytes} bytes)")
            if division:
                numpy.divide(flat, transport.size, out=flat)
            return
        arrays = _arrays(data, "all_reduce")
        self._each_buffer(arrays, inplace, transport.size if division else None,
                          "all_reduce", transport.allreduce)
        if transport.size > 1 and not inplace and len(Packer.by_dtype(arrays)) == 1:
            self._homes.home(items, arrays)

    def all_reduce_sum(self, array, group=WORLD) -> numpy.ndarray:
        """`array` (a NumPy array) summed elementwise over the processes of `group`, as a
        new array: the all-reduce a generated module's `all_reduce` argument performs
        (F.sync_batch_normalization's statistics). Alone, a copy of `array`."""
        transport = self._group(group, "all_reduce_sum")
        buffer = numpy.array(array, copy=True, order="C")
        if transport.size > 1:
            transport.allreduce(buffer, f"all_reduce_sum of an array of shape "
                                        f"{buffer.shape} (sync batch normalization)")
        return buffer

    def reduce(self, data, dst, division=False, inplace=False, group=WORLD) -> None:
        """The sum over the processes into `data` of rank `dst`; others keep theirs."""
        transport = self._group(group, "reduce")
        self._check_rank(dst, transport, "reduce", "dst")
        arrays = _arrays(data, "reduce")

        def collect(flat, what):
            transport.reduce(flat, dst, what)

        divisor = transport.size if division and transport.rank == dst else None
        self._each_buffer(arrays, inplace, divisor, "reduce", collect)

    def bcast(self, data, src, inplace=False, group=WORLD) -> None:
        """Rank `src`'s values of `data` into every process's."""
        transport = self._group(group, "bcast")
        self._check_rank(src, transport, "bcast", "src")

        def collect(flat, what):
            transport.bcast(flat, src, what)

        self._each_buffer(_arrays(data, "bcast"), inplace, None, "bcast", collect)

    def all_gather(self, ndarray, ndarray_list, group=WORLD) -> None:
        """Every process's `ndarray` into `ndarray_list` (one per process, by rank)."""
        transport = self._group(group, "all_gather")
        send = _single(ndarray, "all_gather")
        receive = self._stacked(ndarray_list, send, transport, "all_gather")
        gathered = numpy.empty((transport.size, *send.shape), send.dtype)
        transport.allgather(numpy.ascontiguousarray(send), gathered,
                            f"all_gather ({send.nbytes} bytes each)")
        for target, value in zip(receive, gathered, strict=True):
            target[...] = value

    def reduce_scatter(self, ndarray_list, ndarray, division=False, group=WORLD) -> None:
        """The sum over the processes of their `ndarray_list[rank]` into `ndarray`."""
        transport = self._group(group, "reduce_scatter")
        receive = _single(ndarray, "reduce_scatter")
        sends = self._stacked(ndarray_list, receive, transport, "reduce_scatter")
        _fraction(division, receive.dtype, "reduce_scatter")
        stacked = numpy.stack(sends)
        out = numpy.empty(receive.shape, receive.dtype)
        transport.reduce_scatter(stacked, out, f"reduce_scatter ({out.nbytes} bytes each)")
        if division:
            numpy.divide(out, transport.size, out=out)
        receive[...] = out

    @staticmethod
    def _stacked(ndarray_list, like, transport, function: str) -> list[numpy.ndarray]:
        if not isinstance(ndarray_list, (list, tuple)):
            raise TypeError(f"{function}: expected a list of NdArrays, one per process, got "
                            f"a {type(ndarray_list).__name__}")
        arrays = _arrays(list(ndarray_list), function)
        if len(arrays) != transport.size:
            raise ValueError(f"{function}: the list holds {len(arrays)} NdArrays; give one "
                             f"per process ({transport.size})")
        for index, array in enumerate(arrays):
            if array.shape != like.shape or array.dtype != like.dtype:
                raise ValueError(f"{function}: item {index} is {array.dtype} of shape "
                                 f"{array.shape}; every item must be {like.dtype} of shape "
                                 f"{like.shape}, as the single NdArray")
        return arrays

    @staticmethod
    def _check_rank(rank, transport, function: str, argument: str) -> None:
        if not (isinstance(rank, (int, numpy.integer)) and 0 <= rank < transport.size):
            raise ValueError(f"{function}: {argument}={rank!r} is not a rank; ranks are 0 to "
                             f"{transport.size - 1}")

    def barrier(self) -> None:
        """Wait until every process reaches this call."""
        self._joined("barrier").barrier()

    def abort(self) -> None:
        """End every process of the job (MPI_Abort)."""
        self._joined("abort").abort(1)

    def all_reduce_callback(self, data, pack_size, division=False, group=WORLD,
                            scale_grad=1, keep_dtype=False):
        raise NotImplementedError(
            "all_reduce_callback: symcompile's backward() computes all gradients in one "
            "generated call, so there is nothing to overlap with; call "
            "comm.all_reduce([v.grad for v in params.values()], division=True) between "
            "backward() and update() instead")

    # --- the older API --------------------------------------------------------------------
    def add_context_and_parameters(self, ctx_param_dict) -> None:
        """Register (ctx, {name: Variable}) for `allreduce`, nnabla's older API."""
        if not (isinstance(ctx_param_dict, tuple) and len(ctx_param_dict) == 2
                and isinstance(ctx_param_dict[1], dict)):
            raise TypeError("add_context_and_parameters: expected a tuple (ctx, {name: "
                            "Variable}), e.g. (ctx, nn.get_parameters()), got "
                            f"{type(ctx_param_dict).__name__}")
        ctx, params = ctx_param_dict
        for name, var in params.items():
            if not isinstance(var, Variable):
                raise TypeError(f"add_context_and_parameters: {name!r} is a "
                                f"{type(var).__name__}, expected a Variable")
        self._parameters.append((ctx, dict(params)))

    def clear_context_parameters(self) -> None:
        self._parameters.clear()

    def allreduce(self, division=False, inplace=False) -> None:
        """Deprecated in nnabla: `all_reduce` of the gradients of the parameters added by
        `add_context_and_parameters`."""
        grads = [var.grad for _, params in self._parameters for var in params.values()]
        if not grads:
            raise RuntimeError("allreduce: no parameters were added; call "
                               "comm.add_context_and_parameters((ctx, nn.get_parameters())) "
                               "first, or use comm.all_reduce([v.grad for v in ...])")
        self.all_reduce(grads, division=division, inplace=inplace)


def MultiProcessDataParalellCommunicator(ctx=None) -> Communicator:  # noqa: N802 - nnabla's
    """nnabla's multi-process data-parallel communicator (its spelling): one process per
    rank of ``mpirun``; call `init()` before using it."""
    return Communicator(ctx)


MultiProcessDataParallelCommunicator = MultiProcessDataParalellCommunicator
MultiProcessCommunicator = MultiProcessDataParalellCommunicator
