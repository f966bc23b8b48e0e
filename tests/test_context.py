"""nnabla's contexts: get_extension_context, set_default_context, context_scope; a context
chooses the backend the runtime compiles for (a CUDA one falls back to the CPU, with one
warning, where CuPy or a GPU is missing, as on this machine)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF
from symcompile.ext_utils import (
    get_extension_context,
    import_extension_module,
    list_extensions,
)
from symcompile.frontend import context
from symcompile.runtime import execution

# repr() of nnabla 1.39's contexts (nnabla_ext.cpu.context(), nnabla_ext.cudnn.context()
# and nn.get_current_context() in a fresh process, printed with nnabla 1.39)
NNABLA_CPU = "Context(backend=['cpu:float'], array_class='CpuCachedArray', device_id='')"
NNABLA_CUDNN = ("Context(backend=['cudnn:float', 'cuda:float', 'cpu:float'], "
                "array_class='CudaCachedArray', device_id='0')")
NNABLA_DEFAULT = "Context(backend=['cpu:float'], array_class='', device_id='0')"


@pytest.fixture(autouse=True)
def fresh_context(monkeypatch):
    """Each test starts in nnabla's default context, with no warning given yet and no
    backend forced by set_backend."""
    monkeypatch.setattr(context, "_current", context.Context())
    monkeypatch.setattr(context, "_warned", set())
    previous = execution.set_backend(None)
    yield
    execution.set_backend(previous)


@pytest.fixture
def gpu_present(monkeypatch):
    monkeypatch.setattr(context, "_missing_gpu_support", lambda device_id: "")


def test_contexts_print_as_nnabla_s():
    assert repr(nn.get_current_context()) == NNABLA_DEFAULT
    assert repr(get_extension_context("cpu")) == NNABLA_CPU
    assert str(get_extension_context("cpu", device_id="1")) == NNABLA_CPU  # no device on CPU


def test_the_default_context_computes_with_numpy():
    assert execution.current_backend() == "numpy"


def test_cuda_without_cupy_warns_once_and_falls_back_to_the_cpu(monkeypatch):
    monkeypatch.setattr(context, "_missing_gpu_support",
                        lambda device_id: "CuPy is not installed")
    with pytest.warns(RuntimeWarning, match=r"'cudnn'.*CuPy is not installed.*CPU"):
        ctx = get_extension_context("cudnn", device_id="0", type_config="float")
    assert repr(ctx) == NNABLA_CPU
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        assert repr(get_extension_context("cuda")) == NNABLA_CPU
    nn.set_default_context(ctx)
    assert execution.current_backend() == "numpy"
    assert list_extensions() == ["cpu"]


def test_this_machine_s_missing_piece_is_named():
    """Here CuPy is not installed (or finds no GPU): the reason says which."""
    reason = context._missing_gpu_support("0")
    if not reason:
        pytest.skip("CuPy and a GPU are present")
    assert "CuPy" in reason


def test_a_cuda_context_selects_the_array_api_backend(gpu_present):
    ctx = get_extension_context("cudnn")
    assert repr(ctx) == NNABLA_CUDNN
    assert list_extensions() == ["cpu", "cuda", "cudnn"]
    with nn.context_scope(ctx):
        assert nn.get_current_context() is ctx
        assert execution.current_backend() == "array_api"
    assert execution.current_backend() == "numpy"
    assert get_extension_context("cuda", device_id=1).backend == ["cuda:float", "cpu:float"]


def test_a_graph_run_in_a_cuda_context_runs_an_array_api_module(gpu_present):
    """The runtime compiles the graph for the array API backend (on its NumPy arrays) and
    gives the NumPy backend's numbers."""
    results = {}
    for name in ("cpu", "cudnn"):
        nn.clear_parameters()
        nn.seed(7)
        with nn.context_scope(get_extension_context(name)):
            x = nn.Variable.from_numpy_array(np.linspace(-1, 1, 6, dtype=np.float32)
                                             .reshape(2, 3))
            loss = F.mean(F.tanh(PF.affine(x, 2)))
            loss.forward()
            loss.backward()
            source = open(loss._compiled.module.__file__).read()
        results[name] = (float(loss.d), source)
    assert "template numpy/module.py.jinja" in results["cpu"][1]
    assert "template array_api/module.py.jinja" in results["cudnn"][1]
    assert results["cudnn"][0] == pytest.approx(results["cpu"][0], rel=1e-6)


def test_set_backend_overrides_the_context(gpu_present):
    nn.set_default_context(get_extension_context("cudnn"))
    execution.set_backend("numpy")
    assert execution.current_backend() == "numpy"
    execution.set_backend(None)
    assert execution.current_backend() == "array_api"


def test_context_scope_restores_the_context_after_an_error():
    before = nn.get_current_context()
    with pytest.raises(KeyError), nn.context_scope(get_extension_context("cpu")):
        raise KeyError("inside")
    assert nn.get_current_context() is before


@pytest.mark.parametrize("type_config", ["half", "mixed_half"])
def test_half_precision_is_refused_clearly(type_config):
    with pytest.raises(ValueError, match=r"float32 only.*type_config='float'"):
        get_extension_context("cpu", type_config=type_config)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown type_config 'double'"):
        get_extension_context("cpu", type_config="double")
    with pytest.raises(ValueError, match="unknown extension 'tpu'.*'cpu', 'cuda', 'cudnn'"):
        get_extension_context("tpu")
    with pytest.raises(TypeError, match="expected an nn.Context"):
        nn.set_default_context("cpu")


def test_extension_modules_offer_what_scripts_call(gpu_present, monkeypatch):
    ext = import_extension_module("cudnn")
    assert repr(ext.context()) == NNABLA_CUDNN
    assert ext.synchronize(device_id="0") is None and ext.clear_memory_cache() is None
    assert import_extension_module("cpu").get_device_count() == 0
    assert repr(get_extension_context("cuda.cudnn")) == NNABLA_CUDNN  # nnabla's old name


def test_nnabla_s_context_attributes_can_be_set():
    ctx = get_extension_context("cpu")
    ctx.device_id = "0"
    ctx.backend = ["cpu:float"]
    assert repr(ctx) == NNABLA_CPU.replace("device_id=''", "device_id='0'")
