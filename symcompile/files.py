"""Atomic file writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import os
import tempfile
from glob import escape as glob_escape
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same directory and rename it.

    The rename is atomic on POSIX and Windows, so a process killed mid-write leaves either
    the previous file or no file, plus a stray `.tmp` file that nothing loads; the next
    write of the same file removes the strays of writers that are no longer running.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                               dir=path.parent)
    try:
        os.chmod(tmp, _mode_for(path))
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _remove_strays(path)
    return path


def _remove_strays(path: Path) -> None:
    """Delete temporary files of `path` left by writers that died before renaming them."""
    if os.name != "posix":
        return
    for stray in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        owner = stray.name[len(path.name) + 2:].split(".", 1)[0]
        if owner.isdigit() and not _running(int(owner)):
            try:
                stray.unlink()
            except FileNotFoundError:
                pass


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _mode_for(path: Path) -> int:
    """The permissions a plain `open(path, "w")` would give: the existing file's, or
    0o666 less the umask (mkstemp alone would make every written file private)."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """`atomic_write_bytes` for UTF-8 text with `\\n` line endings."""
    return atomic_write_bytes(path, text.encode("utf-8"))
