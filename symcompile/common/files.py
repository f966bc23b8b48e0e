"""Atomic file writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from glob import escape as glob_escape
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same directory and rename it.

    The rename is atomic on POSIX and Windows, so a process killed mid-write leaves either
    the previous file or no file, plus a stray `.tmp` file that nothing loads; the next
    write of the same file removes the strays of writers that are no longer running.

    Raises:
        OSError: of the original errno (and subclass), naming `path` and what to do; the
            previous file is intact and the temporary file removed.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_then_rename(path, data)
    except OSError as error:
        raise _naming(path, error) from error
    _remove_strays(path)
    return path


def _write_then_rename(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                               dir=path.parent)
    try:
        try:
            os.chmod(tmp, _mode_for(path))
            rest = memoryview(data)
            while rest:  # os.write may write less than it is given
                rest = rest[os.write(fd, rest):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# What to do about the errors of a full, read-only or locked-down disk.
_ELSEWHERE = "free some space, or write to another directory"
_REMEDIES = {
    errno.ENOSPC: _ELSEWHERE,
    getattr(errno, "EDQUOT", errno.ENOSPC): _ELSEWHERE,  # a quota: not on every platform
    errno.EROFS: "write to another directory",
    errno.EACCES: "check the permissions of {dir}, or write to another directory",
    errno.EPERM: "check the permissions of {dir}, or write to another directory",
    errno.EEXIST: "{dir} or a directory above it is a file",  # from mkdir
    errno.ENOTDIR: "{dir} or a directory above it is a file",
}


def _naming(path: Path, error: OSError) -> OSError:
    """`error` again (same errno, so the same OSError subclass), saying which file could
    not be written and what to do: a bare "[Errno 28] No space left on device" names
    neither."""
    reason = error.strerror or str(error)
    remedy = _REMEDIES.get(error.errno, "")
    message = f"cannot write {path}: {reason}"
    if remedy:
        message += f"; {remedy.format(dir=path.parent)}"
    message += " (the previous file, if any, is unchanged)"
    return OSError(error.errno, message) if error.errno else OSError(message)


def _remove_strays(path: Path) -> None:
    """Delete temporary files of `path` left by writers that died before renaming them."""
    if os.name != "posix":
        return
    for stray in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        owner = stray.name[len(path.name) + 2:].split(".", 1)[0]
        if owner.isdigit() and not _running(int(owner)):
            with contextlib.suppress(OSError):  # housekeeping: never fails the write
                stray.unlink()


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
