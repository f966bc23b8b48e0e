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


def named_inputs(arrays, need_grad=None) -> list:
    """Variables named in0, in1, ... of the arrays' shapes; `need_grad[i]` False makes
    input i a constant (e.g. labels)."""
    need_grad = need_grad or [True] * len(arrays)
    xs = []
    for i, (a, grad) in enumerate(zip(arrays, need_grad, strict=True)):
        v = nn.Variable(np.shape(a), need_grad=grad)
        v.name = f"in{i}"
        xs.append(v)
    return xs


def check_function(build, reference, arrays, tmp_path, rng, need_grad=None, rtol=1e-6,
                   atol=1e-8):
    """Compile `build(*variables)` and sum(w * build(...)) in float64; compare the output
    with `reference(*arrays)` and the gradients with finite differences.

    `need_grad[i]` False makes input i a constant (e.g. labels).
    """
    out = build(*named_inputs(arrays, need_grad))
    expected = np.asarray(reference(*arrays), dtype=np.float64)
    assert out.shape == expected.shape, (out.shape, expected.shape)
    values = {f"in{i}": a for i, a in enumerate(arrays)}
    direct = compile_f64(out, tmp_path, "direct").module
    got = direct.forward(*arguments(direct, values))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    assert np.shape(got) == expected.shape
    w = nn.Variable(out.shape)
    w.name = "weights"
    values["weights"] = rng.normal(size=out.shape)
    import symcompile.functions as F

    loss = F.sum(F.mul2(out, w))
    result = compile_f64(loss, tmp_path, "weighted")
    check_formulas(result)
    module = result.module
    total = module.forward(*arguments(module, values))
    np.testing.assert_allclose(total, np.sum(expected * values["weights"]), rtol=1e-9,
                               atol=1e-12)
    check_gradients(module, values, rtol=rtol, atol=atol)
    return module


def check_array_api(build, arrays, module, tmp_path, need_grad=None) -> None:
    """The array API module of sum(w * build(...)) (float64, on array-api-strict arrays)
    gives the loss and gradients of `module` (check_function's NumPy module)."""
    import array_api_strict as xps

    import symcompile.functions as F

    out = build(*named_inputs(arrays, need_grad))
    w = nn.Variable(out.shape)
    w.name = "weights"
    other = nn.compile(F.sum(F.mul2(out, w)), name="strict", output_dir=tmp_path / "strict",
                       dtype="float64", backend="array_api").module
    values = {f"in{i}": a for i, a in enumerate(arrays)}
    values["weights"] = np.random.default_rng(7).normal(size=out.shape)
    args = arguments(module, values)
    expected = module.gradient(*args)
    got = other.gradient(*[xps.asarray(a) for a in args])
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(np.from_dlpack(a), b, rtol=1e-12, atol=1e-12)


def check_formulas(result):
    """Every derivative of `result` renders in every style `show` offers; the MathML is
    well-formed XML (named entities aside) and the text form parses as Python."""
    import ast
    import re
    import xml.dom.minidom

    from symcompile.display import report
    from symcompile.ir import formula

    for style in report.STYLES:
        assert all(report.derivative_lines(result, style)), style
    for expr in result.program.derivatives.values():
        ast.parse(formula.as_text(expr, result.program.shapes), mode="eval")
        mathml = formula.as_mathml(expr, result.program.shapes)
        mathml = re.sub(r"&(?!lt;|gt;|amp;)[A-Za-z]+;", "", mathml)
        xml.dom.minidom.parseString(f"<math>{mathml}</math>")
