"""Files of named arrays for parameters and solver states: .npz always, .h5 with h5py.

Writes are atomic (a temporary file renamed into place). Reads load and check every
array before anything is changed, and every problem (a missing file, a damaged one, a
missing, extra or mis-shaped array) raises `CheckpointError` naming the file and the
array. Nothing is ever unpickled.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy

from .files import atomic_write_bytes

FORMATS = (".npz", ".h5")


class CheckpointError(ValueError):
    """A parameter or solver-state file cannot be used; the message says why."""


def _extension(path, extension) -> str:
    ext = (extension or Path(path).suffix or ".npz").lower()
    if not ext.startswith("."):
        ext = "." + ext
    if ext not in FORMATS:
        raise CheckpointError(f"{path}: unsupported format {ext!r}; use .npz (or .h5 with h5py)")
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
    if _extension(path, extension) == ".npz":
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


def load_arrays(path, extension: str | None = None) -> tuple[dict, dict]:
    """(name -> array, name -> {attribute: value}) from a file `save_arrays` wrote."""
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        if _extension(path, extension) == ".npz":
            with numpy.load(path, allow_pickle=False) as data:
                stored = {key: data[key] for key in data.files}
            arrays = {k: v for k, v in stored.items() if ":" not in k}
            attributes: dict[str, dict] = {}
            for key, value in stored.items():
                if ":" in key:
                    attr, name = key.split(":", 1)
                    attributes.setdefault(name, {})[attr] = value.item()
            return arrays, attributes
        h5py = _h5py(path)
        found = []
        with h5py.File(path, "r") as handle:
            handle.visititems(lambda name, obj: found.append(name)
                              if isinstance(obj, h5py.Dataset) else None)
            entries = [(handle[n].attrs.get("index", i), n) for i, n in enumerate(found)]
            arrays, attributes = {}, {}
            for _, name in sorted(entries):
                arrays[name] = handle[name][...]
                attributes[name] = {k: v.item() if hasattr(v, "item") else v
                                    for k, v in handle[name].attrs.items() if k != "index"}
            return arrays, attributes
    except CheckpointError:
        raise
    except Exception as error:  # a truncated zip, a damaged HDF5 file, ...
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(error).__name__}: "
                              f"{error})") from error


def check_shape(path, what: str, name: str, array, shape) -> None:
    if tuple(array.shape) != tuple(shape):
        raise CheckpointError(f"{path}: {what} {name!r} has shape {tuple(array.shape)} in the "
                              f"file but {tuple(shape)} here; nothing was loaded")
