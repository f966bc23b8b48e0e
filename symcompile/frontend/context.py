"""nnabla's contexts: `nn.Context`, the default context, and `get_extension_context`.

An nnabla script says where it computes with a context (``ctx =
get_extension_context("cudnn"); nn.set_default_context(ctx)``). Here a context chooses
the backend the runtime compiles graphs for: a CPU context the NumPy backend, a CUDA
context the array API backend, when CuPy and a GPU are there to run it. Where they are
not, `get_extension_context("cuda" | "cudnn")` warns once, naming what is missing, and
returns nnabla's CPU context, so that the script runs on the CPU as it is.

Precision: symcompile computes in float32 (``type_config="float"``); nnabla's "half"
and "mixed_half" are refused with a ValueError that says so.
"""

from __future__ import annotations

import contextlib
import importlib.util
import types
import warnings
from collections.abc import Iterator, Sequence

# nnabla's extensions: their backends (most preferred first) and array class
_EXTENSIONS = {
    "cpu": (("cpu:float",), "CpuCachedArray"),
    "cuda": (("cuda:float", "cpu:float"), "CudaCachedArray"),
    "cudnn": (("cudnn:float", "cuda:float", "cpu:float"), "CudaCachedArray"),
}
_TYPE_CONFIGS = ("float", "half", "mixed_half")  # nnabla's; only "float" is computed here


class Context:
    """Where nnabla computes: backend names such as ``"cudnn:float"`` (most preferred
    first), an array class and a device id, as in nnabla (its attributes may be set)."""

    def __init__(self, backend: Sequence[str] | None = None, array_class: str = "",
                 device_id: str = "0") -> None:
        self.backend = list(backend) if backend is not None else ["cpu:float"]
        self.array_class = str(array_class)
        self.device_id = str(device_id)

    def __repr__(self) -> str:
        return (f"Context(backend={self.backend!r}, array_class={self.array_class!r}, "
                f"device_id={self.device_id!r})")

    __str__ = __repr__


_current = Context()
_warned: set[str] = set()  # the missing GPU support already warned about


def set_default_context(ctx: Context) -> None:
    """Make `ctx` the context graphs are computed in from now on."""
    global _current
    if not isinstance(ctx, Context):
        raise TypeError(f"set_default_context: expected an nn.Context (from "
                        f"get_extension_context('cpu'), for example), got {type(ctx).__name__}")
    _current = ctx


def get_current_context() -> Context:
    return _current


@contextlib.contextmanager
def context_scope(ctx: Context) -> Iterator[Context]:
    """``with nn.context_scope(ctx):`` computes in `ctx` inside the block."""
    previous = get_current_context()
    set_default_context(ctx)
    try:
        yield ctx
    finally:
        set_default_context(previous)


def backend_of(ctx: Context) -> str:
    """The symcompile backend a context computes with: "array_api" for a CUDA context,
    "numpy" for any other."""
    preferred = ctx.backend[0].split(":")[0] if ctx.backend else "cpu"
    return "array_api" if preferred in ("cuda", "cudnn") else "numpy"


def _missing_gpu_support(device_id: str) -> str:
    """What keeps a CUDA context from running here ("" when nothing does)."""
    if importlib.util.find_spec("cupy") is None:
        return "CuPy is not installed (pip install cupy-cuda12x, for CUDA 12)"
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # noqa: BLE001 - CuPy raises its own CUDA errors
        return f"CuPy finds no usable CUDA device ({type(error).__name__}: {error})"
    if not 0 <= int(device_id) < count:
        return f"there is no CUDA device {device_id} (CuPy sees {count})"
    return ""


def get_extension_context(ext_name: str, **kw) -> Context:
    """nnabla's context of extension `ext_name` ("cpu", "cuda" or "cudnn"), with its
    keyword arguments `device_id` (default "0") and `type_config` (default "float").

    A CUDA context needs CuPy and a GPU; without them this warns once, naming what is
    missing, and returns the CPU context.
    """
    if ext_name == "cuda.cudnn":  # nnabla's deprecated spelling
        ext_name = "cudnn"
    if ext_name not in _EXTENSIONS:
        raise ValueError(f"get_extension_context: unknown extension {ext_name!r}; symcompile "
                         f"has {', '.join(map(repr, _EXTENSIONS))}")
    type_config = kw.pop("type_config", "float")
    device_id = str(kw.pop("device_id", "0"))
    if type_config not in _TYPE_CONFIGS:
        raise ValueError(f"get_extension_context: unknown type_config {type_config!r}; "
                         f"nnabla's are {', '.join(map(repr, _TYPE_CONFIGS))}")
    if type_config != "float":
        raise ValueError(f"get_extension_context({ext_name!r}, type_config={type_config!r}): "
                         "symcompile computes in float32 only; half precision is not "
                         "supported. Use type_config='float'.")
    if ext_name != "cpu":
        missing = _missing_gpu_support(device_id)
        if missing:
            if missing not in _warned:
                _warned.add(missing)
                warnings.warn(f"get_extension_context({ext_name!r}): {missing}; computing "
                              f"on the CPU instead", RuntimeWarning, stacklevel=2)
            ext_name = "cpu"
    backends, array_class = _EXTENSIONS[ext_name]
    return Context(list(backends), array_class, "" if ext_name == "cpu" else device_id)


def list_extensions() -> list[str]:
    """The extensions that compute here: "cpu", and "cuda" and "cudnn" with CuPy and a
    GPU."""
    return ["cpu"] + ([] if _missing_gpu_support("0") else ["cuda", "cudnn"])


def import_extension_module(ext_name: str) -> types.SimpleNamespace:
    """What nnabla's ``nnabla_ext.<ext_name>`` offers scripts: `context(**kw)`, and
    `synchronize`, `clear_memory_cache` and `get_device_count`, which have nothing to wait
    for or free here (every computation has finished when its call returns)."""
    if ext_name == "cuda.cudnn":
        ext_name = "cudnn"
    if ext_name not in _EXTENSIONS:
        raise ValueError(f"import_extension_module: unknown extension {ext_name!r}; "
                         f"symcompile has {', '.join(map(repr, _EXTENSIONS))}")

    def context(**kw) -> Context:
        return get_extension_context(ext_name, **kw)

    def get_device_count() -> int:
        if ext_name == "cpu" or _missing_gpu_support("0"):
            return 0
        import cupy

        return cupy.cuda.runtime.getDeviceCount()

    return types.SimpleNamespace(
        context=context, get_device_count=get_device_count,
        synchronize=lambda **kw: None, clear_memory_cache=lambda: None)
