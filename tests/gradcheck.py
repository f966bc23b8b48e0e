"""An oracle independent of SymPy: central finite differences in float64."""

from __future__ import annotations

import numpy as np

import symcompile as nn


def numeric_gradient(f, arrays, index, eps=1e-6):
    """d f(*arrays) / d arrays[index] by central differences (float64)."""
    base = [np.array(a, dtype=np.float64, copy=True) for a in arrays]
    x = base[index]
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        plus = float(f(*base))
        x[i] = old - eps
        minus = float(f(*base))
        x[i] = old
        grad[i] = (plus - minus) / (2 * eps)
    return grad


def compile_f64(loss, tmp_path, name="case"):
    """Compile `loss` in float64 so gradients can be compared with finite differences."""
    return nn.compile(loss, name=name, output_dir=tmp_path / "gen", dtype="float64")


def arguments(module, values_by_name):
    """The module's leaf arguments, in order, from a {graph name: array} dict."""
    args = [values_by_name[spec["name"]] for spec in module.INPUTS.values()]
    args += [values_by_name[name] for name in module.PARAMETERS]
    return [np.asarray(a, dtype=np.float64) for a in args]


def check_gradients(module, values_by_name, rtol=1e-6, atol=1e-8):
    """Assert module.gradient agrees with finite differences of module.forward."""
    args = arguments(module, values_by_name)
    result = module.gradient(*args)
    n_out = len(module.OUTPUTS)
    grads = result[n_out:]
    names = list(module.GRADIENTS)
    leaf_args = list(module.INPUTS) + [p["argument"] for p in module.PARAMETERS.values()]

    def f(*a):
        out = module.forward(*a)
        return out[0] if n_out > 1 else out

    assert len(grads) == len(names)
    for name, grad in zip(names, grads, strict=True):
        index = leaf_args.index(name)
        expected = numeric_gradient(f, args, index)
        assert np.shape(grad) == expected.shape, (name, np.shape(grad), expected.shape)
        np.testing.assert_allclose(grad, expected, rtol=rtol, atol=atol, err_msg=name)
