"""The built wheel carries the templates and works outside the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile

import pytest
from conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                           str(out), str(ROOT)], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{done.stdout}\n{done.stderr}")
    (path,) = out.glob("symcompile-*.whl")
    return path


def test_wheel_contains_templates_and_entry_point(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for template in ("numpy/module.py.jinja", "numpy/update.py.jinja", "_macros.jinja",
                     "array_api/module.py.jinja", "array_api/update.py.jinja"):
        assert f"symcompile/templates/{template}" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "symcompile = symcompile.tools.cli:main" in zipfile.ZipFile(wheel).read(
        entry_points).decode()


def test_installed_wheel_compiles_outside_the_source_tree(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, timeout=600)
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(target)!r})
        import symcompile, symcompile.common.resources as resources
        assert symcompile.__file__.startswith({str(target)!r}), symcompile.__file__
        assert str(resources.template_dir()).startswith({str(target)!r})
        from symcompile.tools.cli import main
        sys.exit(main(["compile", {str(ROOT / "examples" / "linear_regression.py")!r},
                       "-o", "out"]))
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["SYMCOMPILE_CACHE_DIR"] = str(tmp_path / "cache")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "linear_regression.py").is_file()
