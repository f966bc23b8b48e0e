"""Running generated modules: load and verify them, bind them to Variables, cache them.

`execution` is the executor the package installs for the front end (forward, backward,
updates); `cache` finds, authenticates and loads modules. The compiler is reached only
through `symcompile.compiler`'s entry point, on a cache miss.
"""
