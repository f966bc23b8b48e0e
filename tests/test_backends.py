"""The backend seam: backends by name, kernels inlined only where called, cache keys."""

from __future__ import annotations

import numpy as np
import pytest

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF
from symcompile import compiler
from symcompile.backends import registry


def test_backend_names_known_without_loading_them_match_the_registry():
    assert tuple(registry.BACKENDS) == compiler.BACKEND_NAMES


def test_unknown_backend_is_refused_naming_the_known_ones(tmp_path):
    nn.clear_parameters()
    x = nn.Variable((2, 3))
    loss = F.mean(F.tanh(PF.affine(x, 2)))
    with pytest.raises(ValueError, match="unknown backend 'cuda'.*numpy, array_api"):
        nn.compile(loss, name="m", output_dir=tmp_path, backend="cuda")


def _classifier():
    nn.clear_parameters()
    x = nn.Variable((4, 3))
    t = nn.Variable((4, 1))
    return F.mean(F.softmax_cross_entropy(PF.affine(x, 5), t))


def _regression():
    nn.clear_parameters()
    x = nn.Variable((4, 3))
    return F.mean(F.squared_error(PF.affine(x, 1), nn.Variable((4, 1))))


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
def test_a_module_carries_only_the_kernels_it_calls(tmp_path, backend):
    plain = nn.compile(_regression(), name="plain", output_dir=tmp_path, solver="sgd",
                       backend=backend).source
    labels = nn.compile(_classifier(), name="labels", output_dir=tmp_path, solver="adam",
                        check_finite=True, backend=backend).source
    for kernel in ("class_labels", "refuse_step", "require_finite"):
        assert f"def {kernel}(" not in plain
        assert f"def {kernel}(" in labels
    assert ("def namespace(" in plain) == (backend == "array_api")


def test_the_backend_is_part_of_the_runtime_cache_key(tmp_path, monkeypatch):
    from symcompile.runtime import execution

    monkeypatch.setenv("SYMCOMPILE_CACHE_DIR", str(tmp_path))
    files = []
    previous = execution.set_backend("numpy")
    try:
        for backend in ("numpy", "array_api"):
            execution.set_backend(backend)
            nn.clear_parameters()
            x = nn.Variable.from_numpy_array(np.ones((2, 3), np.float32))
            loss = F.mean(F.tanh(PF.affine(x, 2)))
            loss.forward()
            files.append(loss._compiled.module.__file__)
    finally:
        execution.set_backend(previous)
    assert files[0] != files[1]
    assert "numpy/module.py.jinja" in open(files[0]).read()
    assert "array_api/module.py.jinja" in open(files[1]).read()


def test_set_backend_refuses_an_unknown_name():
    from symcompile.runtime import execution

    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        execution.set_backend("gpu")
