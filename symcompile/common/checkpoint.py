"""Files of named arrays for parameters and solver states: .npz always, .h5 with h5py,
nnabla's .protobuf parameter files with protobuf (see `nnabla_proto`).

Writes are atomic (a temporary file renamed into place). Reads change nothing and cost
no more memory than the arrays the caller expects, however the file was made:

1. Every array's name, shape and dtype is taken from its header before any data is
   read: the .npy header of each .npz member, whose declared size must be exactly what
   that header needs (so a zip bomb is refused undecompressed), or the HDF5 dataset's
   metadata (soft and external links, external storage and virtual datasets are
   refused, as they would read other files). The caller's `plan` then checks the names
   and gives each array a `Spec`, whose shape and dtype are checked too.
2. Only then is the data read, and each array's values checked (`_check_values`).

Every problem raises `CheckpointError` naming the file and the array. Nothing is ever
unpickled.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy
from numpy.lib import format as npy

from symcompile.common import memory
from symcompile.common.files import atomic_write_bytes

FORMATS = (".npz", ".h5", ".protobuf")

FLOAT = "float32"  # parameter or state values, stored as float32
COUNT = "count"  # a solver's update count t: an integer scalar within uint32
_KINDS = {FLOAT: "fiu", COUNT: "iu"}
_WANTED = {FLOAT: "floating-point numbers (or integers within ±2**24) for float32",
           COUNT: "an integer"}
FLOAT32_EXACT_INTEGERS = 2**24  # float32 holds every integer up to this magnitude
UINT32_MAX = 2**32 - 1


class CheckpointError(ValueError):
    """A parameter or solver-state file cannot be used; the message says why."""


class Spec(NamedTuple):
    """What one array must be; `label` names it in messages ("parameter 'w'")."""

    label: str
    shape: tuple | None = None  # None: any shape
    kind: str = FLOAT


# plan(names in the file, in order) -> {name: Spec} for each of them; it raises
# CheckpointError for names that are missing or not wanted.
Plan = Callable[[list[str]], dict[str, Spec]]


def _extension(path, extension) -> str:
    ext = (extension or Path(path).suffix or ".npz").lower()
    if not ext.startswith("."):
        ext = "." + ext
    if ext not in FORMATS:
        raise CheckpointError(f"{path}: unsupported format {ext!r}; use .npz (or .h5 with "
                              "h5py, or nnabla's .protobuf with protobuf)")
    return ext


def _h5py(path):
    try:
        import h5py
    except ImportError:
        raise CheckpointError(f"{path}: .h5 files need h5py (pip install h5py); "
                              "or use .npz") from None
    return h5py


def save_arrays(path, arrays: dict[str, numpy.ndarray], attributes: dict[str, dict] | None = None,
                extension: str | None = None) -> None:
    """Write `arrays` (name -> array, in order) to `path` atomically.

    `attributes` (name -> {key: scalar}) become HDF5 attributes in .h5 files and arrays
    named ``<key>:<name>`` in .npz files.
    """
    attributes = attributes or {}
    ext = _extension(path, extension)
    if ext == ".protobuf":
        atomic_write_bytes(path, _protobuf_bytes(path, arrays, attributes))
        return
    if ext == ".npz":
        stored = dict(arrays)
        for name, attrs in attributes.items():
            for key, value in attrs.items():
                stored[f"{key}:{name}"] = numpy.asarray(value)
        buffer = io.BytesIO()
        numpy.savez(buffer, **stored)
        atomic_write_bytes(path, buffer.getvalue())
        return
    h5py = _h5py(path)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as handle:
            for index, (name, value) in enumerate(arrays.items()):
                handle[name] = value
                handle[name].attrs["index"] = index
                for key, attr in attributes.get(name, {}).items():
                    handle[name].attrs[key] = attr
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_arrays(path, plan: Plan, extension: str | None = None) -> tuple[dict, dict]:
    """(name -> checked array, name -> {attribute: value}) from a file `save_arrays` wrote.

    Arrays come back as float32 arrays (`FLOAT`) or ints (`COUNT`), as their specs say.
    """
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        ext = _extension(path, extension)
        if ext == ".npz":
            return _load_npz(path, plan)
        if ext == ".protobuf":
            return _load_protobuf(path, plan)
        return _load_h5(path, plan)
    except CheckpointError:
        raise
    except Exception as error:  # a truncated zip, a damaged HDF5 file, ...
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(error).__name__}: "
                              f"{error})") from error


def check_arrays(where: str, arrays: dict, plan: Plan) -> dict:
    """In-memory `arrays` checked and converted exactly as `load_arrays` does a file's."""
    arrays = {name: numpy.asarray(value) for name, value in arrays.items()}
    return _checked(where, {name: (a.shape, a.dtype) for name, a in arrays.items()}, plan,
                    arrays.__getitem__)


def _checked(where, headers: dict[str, tuple], plan: Plan, read) -> dict:
    """Check names, shapes and dtypes (name -> (shape, dtype)) before `read(name)` reads
    any data, then each array's values."""
    specs = plan(list(headers))
    for name, (shape, dtype) in headers.items():
        _check_header(where, specs[name], shape, dtype)
    return {name: _check_values(where, specs[name], read(name)) for name in headers}


def _check_header(where, spec: Spec, shape, dtype) -> None:
    if spec.shape is not None and tuple(shape) != tuple(spec.shape):
        raise CheckpointError(f"{where}: {spec.label} has shape {tuple(shape)}, but "
                              f"{tuple(spec.shape)} here; nothing was loaded")
    if dtype.kind not in _KINDS[spec.kind]:  # bool, complex, str, object, structured, ...
        raise CheckpointError(f"{where}: {spec.label} has dtype {dtype}, not "
                              f"{_WANTED[spec.kind]}; nothing was loaded")


def _check_values(where, spec: Spec, array):
    """The array as it will be stored, refusing values the conversion would change.

    A `COUNT` becomes an int in [0, 2**32 - 1]. A `FLOAT` array becomes float32: integers
    are accepted within ±2**24 (where every integer is exactly a float32; larger ones
    are refused even when a few of them would be exact, to keep the rule simple), and
    finite values beyond float32's range are refused rather than turned into inf. NaN
    and Inf are loaded as they are, as nnabla does: a checkpoint of a run that diverged
    is still a faithful record of it, and refusing it would hide what happened.
    """
    array = numpy.asarray(array)
    if spec.kind == COUNT:
        value = int(array)
        if not 0 <= value <= UINT32_MAX:
            raise CheckpointError(f"{where}: {spec.label} is {value}, not an integer in "
                                  f"[0, {UINT32_MAX}]; nothing was loaded")
        return value
    if array.dtype.kind in "iu":
        bound = FLOAT32_EXACT_INTEGERS
        if array.size and not (-bound <= int(array.min()) and int(array.max()) <= bound):
            raise CheckpointError(f"{where}: {spec.label} holds integers beyond ±2**24, which "
                                  "float32 would round; nothing was loaded")
        return array.astype(numpy.float32)
    with numpy.errstate(over="ignore"):
        converted = array.astype(numpy.float32, copy=False)
    if array.dtype.itemsize > 4:
        overflow = numpy.isinf(converted) & numpy.isfinite(array)
        if overflow.any():
            raise CheckpointError(
                f"{where}: {spec.label} holds finite values beyond float32's range, e.g. "
                f"{array[overflow][0]}, which would become inf; nothing was loaded")
    return converted


def _check_attribute(where, name: str, key: str, shape, dtype) -> None:
    """Attributes (need_grad, index) are numbers or flags, one each."""
    if tuple(shape) != () or dtype.kind not in "biuf":
        raise CheckpointError(f"{where}: attribute {key!r} of {name!r} is not a single number "
                              f"(shape {tuple(shape)}, dtype {dtype}); nothing was loaded")


def _check_size(path, name: str, total: int) -> None:
    """Refuse arrays that add up to more than this machine's memory before reading them."""
    limit = memory.physical_memory()
    if limit is not None and total > limit:
        raise CheckpointError(f"{path}: with {name!r}, the file's arrays need "
                              f"{memory.size_text(total)}, more than this machine's "
                              f"{memory.size_text(limit)} of memory; nothing was loaded")


# --- .npz ------------------------------------------------------------------------------------

def _load_npz(path, plan: Plan) -> tuple[dict, dict]:
    with zipfile.ZipFile(path) as archive:
        members = _npz_members(path, archive)

        def read(name):
            with archive.open(members[name][0]) as member:
                return npy.read_array(member, allow_pickle=False)

        attributes: dict[str, dict] = {}
        for stored, (_, shape, dtype) in members.items():
            if ":" in stored:
                key, name = stored.split(":", 1)
                _check_attribute(path, name, key, shape, dtype)
                attributes.setdefault(name, {})[key] = read(stored).item()
        headers = {name: (shape, dtype) for name, (_, shape, dtype) in members.items()
                   if ":" not in name}
        return _checked(path, headers, plan, read), attributes


def _npz_members(path, archive: zipfile.ZipFile) -> dict[str, tuple]:
    """name -> (zip member, shape, dtype), from each member's .npy header alone.

    A member whose declared size is not exactly its header plus the data that header
    describes is refused before its data is decompressed: it is damaged, or a zip bomb
    (a small file that inflates to gigabytes behind a small header).
    """
    members: dict[str, tuple] = {}
    total = 0
    for info in archive.infolist():
        if not info.filename.endswith(".npy"):
            raise CheckpointError(f"{path}: member {info.filename!r} is not a .npy array; "
                                  "nothing was loaded")
        name = info.filename[: -len(".npy")]
        if name in members:
            raise CheckpointError(f"{path}: array {name!r} is stored twice; nothing was loaded")
        try:
            with archive.open(info) as member:
                shape, dtype = _npy_header(member)
                offset = member.tell()
        except ValueError as error:
            raise CheckpointError(f"{path}: array {name!r} has no readable .npy header "
                                  f"({error}); nothing was loaded") from error
        if dtype.hasobject:
            raise CheckpointError(f"{path}: array {name!r} holds Python objects, which are "
                                  "never unpickled; nothing was loaded")
        needed = offset + math.prod(shape) * dtype.itemsize
        if info.file_size != needed:
            raise CheckpointError(
                f"{path}: array {name!r} declares {info.file_size} bytes but its header "
                f"(shape {shape}, {dtype}) needs {needed}; the file is damaged or a zip "
                "bomb; nothing was loaded")
        total += needed
        _check_size(path, name, total)
        members[name] = (info, shape, dtype)
    return members


def _npy_header(member) -> tuple[tuple, numpy.dtype]:
    version = npy.read_magic(member)
    if version == (1, 0):
        shape, _, dtype = npy.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, _, dtype = npy.read_array_header_2_0(member)
    else:  # 3.0 only adds UTF-8 field names, for structured dtypes that are refused anyway
        raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported")
    return shape, dtype


# --- .h5 -------------------------------------------------------------------------------------

def _load_h5(path, plan: Plan) -> tuple[dict, dict]:
    h5py = _h5py(path)
    with h5py.File(path, "r") as handle:
        found = _h5_datasets(path, handle, h5py)
        attributes = {name: _h5_attributes(path, name, dataset)
                      for name, dataset in found.items()}
        position = {name: attributes[name].pop("index", i) for i, name in enumerate(found)}
        order = sorted(found, key=lambda name: (position[name], name))
        headers = {name: (found[name].shape, found[name].dtype) for name in order}
        return _checked(path, headers, plan, lambda name: found[name][...]), attributes


def _h5_datasets(path, handle, h5py) -> dict:
    """name -> dataset for every dataset in the file, reached by hard links only.

    Soft and external links, external storage and virtual datasets are refused rather
    than followed: they would read other files (or other parts of this one) than what
    `path` holds.
    """
    links = []
    handle.id.links.visit(lambda name, info: links.append((name.decode(), info.type)),
                          info=True)  # every link once, none followed (h5py >= 3)
    kinds = {h5py.h5l.TYPE_SOFT: "a soft link", h5py.h5l.TYPE_EXTERNAL: "an external link"}
    found, total = {}, 0
    for name, kind in links:
        if kind != h5py.h5l.TYPE_HARD:
            link = kinds.get(kind, "a user-defined link")
            raise CheckpointError(f"{path}: {name!r} is {link}, which is never followed; "
                                  "nothing was loaded")
        dataset = handle[name]
        if not isinstance(dataset, h5py.Dataset):
            continue
        if dataset.external is not None or dataset.is_virtual:
            storage = "external storage" if dataset.external is not None else "virtual"
            raise CheckpointError(f"{path}: array {name!r} is an HDF5 dataset with {storage}, "
                                  "which reads other files; nothing was loaded")
        if dataset.shape is None:
            raise CheckpointError(f"{path}: array {name!r} is an empty HDF5 dataspace; "
                                  "nothing was loaded")
        total += math.prod(dataset.shape) * dataset.dtype.itemsize
        _check_size(path, name, total)
        found[name] = dataset
    return found


def _h5_attributes(path, name: str, dataset) -> dict:
    attributes = {}
    for key in dataset.attrs:
        stored = dataset.attrs.get_id(key)
        _check_attribute(path, name, key, stored.shape, stored.dtype)
        attributes[key] = numpy.asarray(dataset.attrs[key]).item()
    return attributes


# --- .protobuf (nnabla's parameter files) ----------------------------------------------------

def _protobuf_messages(path):
    try:
        from symcompile.common.nnabla_proto import messages
        return messages()
    except ImportError:
        raise CheckpointError(f"{path}: .protobuf files need protobuf (pip install protobuf); "
                              "or use .npz") from None


def _protobuf_bytes(path, arrays: dict, attributes: dict) -> bytes:
    """nnabla's NNablaProtoBuf message holding `arrays` (float32) and their need_grad."""
    document, _ = _protobuf_messages(path)
    message = document()
    for name, value in arrays.items():
        entry = message.parameter.add(variable_name=name)
        value = numpy.asarray(value, dtype=numpy.float32)
        entry.shape.dim.extend(int(d) for d in value.shape)
        entry.data.extend(value.ravel().tolist())
        entry.need_grad = bool(attributes.get(name, {}).get("need_grad", True))
    return message.SerializeToString()


def _load_protobuf(path, plan: Plan) -> tuple[dict, dict]:
    """The parameters of an nnabla .protobuf file, in the file's order; the file's size is
    checked against memory before it is parsed, each shape against its data after."""
    _check_size(path, "the file", Path(path).stat().st_size * 4)  # parsed, then copied
    document, _ = _protobuf_messages(path)
    message = document()
    message.ParseFromString(Path(path).read_bytes())
    entries, attributes = {}, {}
    for entry in message.parameter:
        name, shape = entry.variable_name, tuple(int(d) for d in entry.shape.dim)
        if name in entries:
            raise CheckpointError(f"{path}: parameter {name!r} appears twice; nothing was "
                                  "loaded")
        if any(d < 0 for d in shape) or math.prod(shape) != len(entry.data):
            raise CheckpointError(f"{path}: parameter {name!r} has shape {shape} but "
                                  f"{len(entry.data)} values; nothing was loaded")
        entries[name] = entry
        attributes[name] = {"need_grad": bool(entry.need_grad)}
    headers = {name: (tuple(int(d) for d in entry.shape.dim), numpy.dtype(numpy.float32))
               for name, entry in entries.items()}

    def read(name):
        entry = entries[name]
        return numpy.asarray(entry.data, dtype=numpy.float32).reshape(headers[name][0])

    return _checked(path, headers, plan, read), attributes
