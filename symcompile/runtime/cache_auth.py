"""Making the runtime's module cache safe to run from: a private directory and keyed MACs.

The modules symcompile caches are Python code that `loss.forward()` runs, and their file
names are predictable, so a cache that someone else can write to would let them run code
in your process. Two defences, as ssh (StrictModes) and other trusted tools use for their
own files:

- **A private directory.** The cache directory is created with mode 0700. An existing one
  that is writable by group or others, or not owned by you, is refused with
  `UnsafeCacheError` (saying how to fix it), and so is a cache file in it that is
  group/other-writable, owned by someone else, a symbolic link or not a regular file.
  (POSIX only; the owner check is skipped where there are no user ids.)
- **Authenticated entries.** Each entry's first line is
  ``# symcompile-cache-mac: v1 len=<N> hmac-sha256=<64 hex>``: an HMAC-SHA256 with a
  random per-user key (file ``cache.key`` in the cache directory, mode 0600, 32 bytes) of
  the entry's file name and of the exact N bytes of module source that follow. An entry
  is run only if its MAC verifies, and it is verified before anything else in the file is
  parsed. The line is a comment, so the file stays a readable Python module whose line
  numbers match what runs; one file (not a module plus a sidecar) keeps each write atomic.

Standard library only: the runtime loads cached modules without SymPy or jinja2.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import os
import re
import secrets
import shlex
import stat
import tempfile
import time
import warnings
from pathlib import Path

from symcompile.common import files

KEY_FILE = "cache.key"
KEY_BYTES = 32

_HEADER = re.compile(rb"# symcompile-cache-mac: v1 len=([0-9]{1,12}) hmac-sha256=([0-9a-f]{64})\n")
_DOMAIN = b"symcompile cache entry v1\0"

_POSIX = os.name == "posix"
_READ = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
         | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
_CREATE = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
           | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))


class UnsafeCacheError(PermissionError):
    """symcompile's module cache (its directory, its key or an entry) could have been
    written by someone else, or its key is damaged, so nothing in it is run."""

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)

    def __str__(self) -> str:
        return self.args[0]


class UntrustedCacheWarning(UserWarning):
    """A complete cache entry failed authentication (changed after symcompile wrote it, or
    written with another key); it was not run and is being regenerated."""


def _uid() -> int | None:
    getuid = getattr(os, "getuid", None)
    return getuid() if getuid is not None else None


def _fixes(directory: Path) -> str:
    quoted = shlex.quote(str(directory))
    return (f"Fix: make it yours and private (chmod 700 {quoted}), or delete it "
            f"(rm -r {quoted}: symcompile recreates it privately and recompiles what it "
            "needs), or set SYMCOMPILE_CACHE_DIR to a directory only you can write.")


def ensure_private_dir(path: Path) -> Path:
    """Create the cache directory `path` with mode 0700 (its parents with your umask) if it
    does not exist, and refuse it with UnsafeCacheError if someone else could write to it."""
    if not _POSIX:
        path.mkdir(parents=True, exist_ok=True)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    else:
        os.chmod(path, 0o700)  # exactly 0700, whatever the umask
    check_private_dir(path)
    return path


def check_private_dir(path: Path) -> None:
    """Refuse (UnsafeCacheError) a cache directory that is not a directory, not yours, or
    writable by group or others. It is followed if it is a symbolic link: what matters is
    the directory whose files are run."""
    if not _POSIX:
        return
    info = os.stat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeCacheError(
            f"symcompile's cache directory {path} is not a directory. Fix: remove it, or "
            "set SYMCOMPILE_CACHE_DIR to a directory only you can write.", path)
    uid = _uid()
    if uid is not None and info.st_uid != uid:
        quoted = shlex.quote(str(path))
        raise UnsafeCacheError(
            f"refusing symcompile's cache directory {path}: it is owned by uid "
            f"{info.st_uid}, not by you (uid {uid}), and its modules would run as you. Fix: "
            "set SYMCOMPILE_CACHE_DIR to a directory of your own, or, if this one should be "
            f"yours, delete it (rm -r {quoted}, as its owner or root): symcompile recreates "
            "it privately.", path)
    if info.st_mode & 0o022:
        raise UnsafeCacheError(
            f"refusing symcompile's cache directory {path}: its mode is "
            f"{stat.S_IMODE(info.st_mode):#o}, {_who(info.st_mode)}, who could plant "
            "modules in it that would run as you. " + _fixes(path), path)


def _who(mode: int, forbidden: int = 0o022) -> str:
    """What is wrong with `mode`: who may write, or (for the key) that it is not 0600."""
    if forbidden != 0o022:
        return "but it must be 0600 or stricter (chmod 600 it if it is yours)"
    who = " and ".join(w for w, bit in (("group", 0o020), ("others", 0o002)) if mode & bit)
    return f"writable by {who}"


def _check_file(fd: int, path: Path, what: str, forbidden: int) -> os.stat_result:
    """Refuse the open file `fd` unless it is a regular file of yours without `forbidden`
    mode bits."""
    info = os.fstat(fd)
    if not _POSIX:
        return info
    fix = (f"Fix: delete it (rm {shlex.quote(str(path))}; symcompile regenerates it), or set "
           "SYMCOMPILE_CACHE_DIR to a directory only you can write.")
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeCacheError(f"refusing {what} {path}: it is not a regular file. {fix}", path)
    uid = _uid()
    if uid is not None and info.st_uid != uid:
        raise UnsafeCacheError(
            f"refusing {what} {path}: it is owned by uid {info.st_uid}, not by you (uid "
            f"{uid}). {fix}", path)
    if info.st_mode & forbidden:
        raise UnsafeCacheError(
            f"refusing {what} {path}: its mode is {stat.S_IMODE(info.st_mode):#o}, "
            f"{_who(info.st_mode, forbidden)}. {fix}", path)
    return info


def _open_checked(path: Path, what: str, forbidden: int) -> int | None:
    """A read descriptor of `path` after checking the open file; None if it does not exist."""
    try:
        fd = os.open(path, _READ)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK) or os.path.islink(path):
            raise UnsafeCacheError(
                f"refusing {what} {path}: it is a symbolic link. Fix: delete it "
                f"(rm {shlex.quote(str(path))}).", path) from None
        raise
    try:
        _check_file(fd, path, what, forbidden)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_all(fd: int, limit: int | None = None) -> bytes:
    chunks, size = [], 0
    while limit is None or size < limit:
        chunk = os.read(fd, 1 << 20 if limit is None else limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def read_entry(path: Path) -> bytes | None:
    """The bytes of the cache file `path` (None if there is none), read from the very file
    whose owner and mode were checked."""
    fd = _open_checked(path, "symcompile cache file", 0o022)
    if fd is None:
        return None
    try:
        return _read_all(fd)
    finally:
        os.close(fd)


# --- the key ----------------------------------------------------------------------------

def cache_key(directory: Path, create: bool = True) -> bytes | None:
    """The cache's MAC key: `directory`/cache.key, created (if `create`) on first use.

    Created with O_CREAT|O_EXCL, so processes racing to create it agree on one key: the
    losers read the winner's. Refused (UnsafeCacheError) unless it is your regular file,
    mode 0600 or stricter, exactly 32 bytes.
    """
    path = directory / KEY_FILE
    short_since = None
    for _ in range(10000):
        fd = _open_checked(path, "symcompile cache key", ~0o600 & 0o7777)
        if fd is None:
            if not create:
                return None
            key = _create_key(path)
            if key is not None:
                return key
            continue  # another process created it first: read its key
        try:
            key = _read_all(fd, KEY_BYTES + 1)
            age = time.time() - os.fstat(fd).st_mtime
        finally:
            os.close(fd)
        if len(key) == KEY_BYTES:
            return key
        if len(key) < KEY_BYTES and age < 10:
            # Just created: its creator may be between creating and writing it. Wait a
            # little (a key damaged long ago is reported at once).
            short_since = short_since or time.monotonic()
            if time.monotonic() - short_since < 2.0:
                time.sleep(0.005)
                continue
        size = f"{len(key)} bytes" if len(key) < KEY_BYTES else f"over {KEY_BYTES} bytes"
        quoted = shlex.quote(str(directory))
        raise UnsafeCacheError(
            f"symcompile's cache key {path} holds {size}, not {KEY_BYTES}: it is damaged, and "
            f"no cached module can be authenticated with it. Fix: delete the cache directory "
            f"(rm -r {quoted}): symcompile makes a new key and recompiles what it needs.", path)
    raise UnsafeCacheError(f"could not create or read symcompile's cache key {path}", path)


def _create_key(path: Path) -> bytes | None:
    """A new key written to `path`, or None if the file exists already (another process)."""
    key = secrets.token_bytes(KEY_BYTES)
    try:
        fd = os.open(path, _CREATE, 0o600)
    except FileExistsError:
        return None
    try:
        if _POSIX:
            os.fchmod(fd, 0o600)  # exactly 0600, whatever the umask
        view = memoryview(key)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(path)
        except OSError:
            pass
        raise
    os.close(fd)
    return key


# --- entries ----------------------------------------------------------------------------

def _mac(key: bytes, name: str, body: bytes) -> str:
    message = _DOMAIN + os.fsencode(name) + b"\0" + body
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def seal_entry(body: bytes, name: str, key: bytes) -> bytes:
    """The cache file named `name` holding the module source `body`: the MAC line, then
    `body` unchanged."""
    header = b"# symcompile-cache-mac: v1 len=%d hmac-sha256=%s\n" % (
        len(body), _mac(key, name, body).encode("ascii"))
    return header + body


def strip_header(data: bytes) -> bytes:
    """`data` without a leading MAC line (unchecked), for reading an entry as a module."""
    match = _HEADER.match(data)
    return data[match.end():] if match else data


def authenticated_body(path: Path, data: bytes, key: bytes) -> bytes | None:
    """The module source in the cache file `data` read from `path`, or None if it does not
    authenticate. Only the MAC line is parsed before the MAC is checked.

    Silently None for what happens in ordinary use: no MAC line (an entry of an earlier
    symcompile, a file cut inside its first line) or fewer bytes than the line declares (a
    truncated file). A complete entry whose MAC is wrong (edited, or written with another
    key) also gives None, with an UntrustedCacheWarning naming the file.
    """
    match = _HEADER.match(data)
    if match is None:
        return None
    body = data[match.end():]
    declared = int(match[1])
    if len(body) < declared:
        return None
    if len(body) == declared and hmac.compare_digest(
            _mac(key, path.name, body), match[2].decode("ascii")):
        return body
    warnings.warn(UntrustedCacheWarning(
        f"symcompile cache file {path} failed authentication (changed after symcompile "
        "wrote it, or written with another key): it was not run and is being regenerated"),
        stacklevel=4)
    return None


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically, mode 0600 from the start.

    As files.atomic_write_bytes (a temporary file in the same directory, fsync, rename; the
    same temporary names, so its clean-up of dead writers' strays applies), except for the
    mode: that one gives the umask's mode, group-writable under the common umask 002,
    which the cache would then refuse.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                               dir=path.parent)
    try:
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
    files._remove_strays(path)
