"""The op registry: for each nnabla function its definition, shape rule and lowering to
SymPy; the custom SymPy functions they lower to; and the solvers' update rules."""
