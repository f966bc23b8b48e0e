"""Kernels: helper functions generated modules inline by source, one module per backend.

Each is ordinary, tested Python; a module carries only the kernels it calls.
"""
