"""A prologue for scripts that must run with NumPy alone: importing sympy, jinja2 or
symcompile raises ImportError in them (generated modules must not need any of these)."""

import textwrap

BLOCKER = textwrap.dedent("""
    import importlib.util, sys

    class Blocked:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("sympy", "jinja2", "symcompile"):
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, Blocked())
    for blocked in ("sympy", "jinja2", "symcompile"):
        try:
            __import__(blocked)
        except ImportError:
            pass
        else:
            raise SystemExit(f"{blocked} could be imported")
""")
