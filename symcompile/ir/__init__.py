"""The tensor IR: graphs of static-shape values, programs of SymPy equations over them,
the tensor primitives those equations use, names, call sites and readable formulas."""
