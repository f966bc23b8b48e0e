"""The F functions of the elementwise ops, built from the registry.

Each is made from its op's registry entry (`OpDef.api`, see `ops.elementwise`), which
holds nnabla's parameters and the docstring, so that an elementwise function is added in
one place. `FUNCTIONS` holds one for every op with an `api`; a function written by hand
in a sibling module takes its place in F (`functions/__init__`).
"""

from __future__ import annotations

import inspect

from symcompile.frontend.functions._base import _record
from symcompile.ops.registry import OPS, OpDef, number


def _elementwise_function(op: OpDef):
    """F.<op.name> as `op.api` describes it: nnabla's signature (what `inspect.signature`
    and `help` show), its scalars checked with `number`, its ignored arguments accepted."""
    api = op.api
    plain = inspect.Parameter.POSITIONAL_OR_KEYWORD
    signature = inspect.Signature(
        [inspect.Parameter(name, plain) for name in api.inputs]
        + [inspect.Parameter(name, plain, default=default)
           for name, default in (*api.scalars, *api.ignored)])
    n_inputs, n_parameters = len(api.inputs), len(signature.parameters)
    scalar_names = [name for name, _ in api.scalars]
    scalar_defaults = tuple(default for _, default in api.scalars)

    def function(*args, **kwargs):
        if kwargs or not n_inputs <= len(args) <= n_parameters:
            # Signature.bind is exact but slow (a third of a call): only for keywords
            # and for wrong calls
            try:
                given = signature.bind(*args, **kwargs).arguments
            except TypeError as error:
                raise TypeError(f"F.{op.name}: {error}; its arguments are "
                                f"F.{op.name}{signature}") from None
            args = [given[name] for name in api.inputs]
            args += [given.get(name, default) for name, default in api.scalars]
        scalars = (*args[n_inputs:n_inputs + len(scalar_names)],
                   *scalar_defaults[len(args) - n_inputs:])
        attrs = {name: number(value, op.name, name)
                 for name, value in zip(scalar_names, scalars, strict=True)}
        return _record(op.name, tuple(args[:n_inputs]), **attrs)

    function.__name__ = function.__qualname__ = op.name
    function.__doc__ = api.doc
    function.__signature__ = signature
    return function


FUNCTIONS = {op.name: _elementwise_function(op) for op in OPS.values() if op.api is not None}
