"""Where symcompile's own files are: its templates (shipped inside the wheel)."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # the symcompile package


def template_dir() -> Path:
    """`symcompile/templates` in an installed wheel, `templates/` in a source checkout."""
    for candidate in (PACKAGE_DIR / "templates", PACKAGE_DIR.parent / "templates"):
        if (candidate / "_macros.jinja").is_file():
            return candidate
    raise FileNotFoundError(
        f"symcompile's templates are missing (looked in {PACKAGE_DIR / 'templates'} and "
        f"{PACKAGE_DIR.parent / 'templates'}); reinstall symcompile"
    )
