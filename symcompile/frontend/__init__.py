"""nnabla's Python API: Variable, F, PF, parameters, initializers and solvers.

It records graphs and knows nothing of compiling: `forward()`, `backward()` and
`update()` go to the executor the package installs (`executor`)."""
