"""Compiler passes over a Program: lowering, autodiff, simplification and optimisation,
scheduling. Each is linear in the size of the graph."""
