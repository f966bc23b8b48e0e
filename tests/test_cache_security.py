"""The runtime's module cache is not trusted: nothing planted in it ever runs.

A private directory (0700, yours, refused otherwise), a per-user key (0600) and a keyed MAC
on every entry, checked before any byte of the entry is parsed or run; GRAPH_HASH read
from a module's text before it runs, for every load.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

import symcompile as nn
import symcompile.functions as F
import symcompile.solvers as S
from symcompile.common import integrity
from symcompile.runtime import cache, cache_auth
from symcompile.runtime import execution as runtime
from symcompile.runtime.cache import GraphMismatchError, UnsafeCacheError, UntrustedCacheWarning

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions and owners")

X = np.arange(5, dtype=np.float32)
EXPECTED = float(np.sin(X).sum())


def _cache() -> Path:
    return Path(os.environ["SYMCOMPILE_CACHE_DIR"])


def _loss():
    x = nn.Variable((5,), need_grad=True)
    x.d = X
    return F.sum(F.sin(x))


def _forward() -> float:
    """loss.forward() on a fresh binding, so the module comes from the disk cache."""
    runtime._modules.clear()
    loss = _loss()
    loss.forward()
    return float(loss.d)


def _entry() -> Path:
    [entry] = _cache().glob("graph_*.py")
    return entry


def _source(entry: Path) -> str:
    return cache_auth.strip_header(entry.read_bytes()).decode("utf-8")


def _hostile(source: str, marker: Path, graph_hash: str | None = None,
             replace: tuple[str, str] | None = None) -> str:
    """`source` with top-level code that writes `marker`, sealed afresh (so its SOURCE_HASH
    is right: anyone can compute one), optionally claiming another GRAPH_HASH."""
    text = re.sub(r"^SOURCE_HASH = '[0-9a-f]*'$", integrity.UNSEALED, source, flags=re.M)
    if replace is not None:
        assert replace[0] in text
        text = text.replace(*replace)
    if graph_hash is not None:
        text = re.sub(r"^GRAPH_HASH = '[0-9a-f]*'$", f"GRAPH_HASH = {graph_hash!r}", text,
                      flags=re.M)
    text = text.replace("\nimport numpy", f"\nopen({str(marker)!r}, 'w').write('ran')\n"
                        "import numpy", 1)
    sealed = integrity.seal(text)
    assert integrity.is_intact(sealed) and "open(" in sealed
    return sealed


def _assert_regenerated(entry: Path) -> None:
    """The entry is symcompile's again: it authenticates and is private."""
    assert integrity.is_intact(_source(entry))
    assert cache.load_cached(entry) is not None
    assert entry.stat().st_mode & 0o777 == 0o600 or os.name != "posix"


# --- planted modules never run -----------------------------------------------------------

@pytest.mark.parametrize("layout", ["plain", "fake-mac-line"])
def test_planted_module_with_valid_seal_and_graph_hash_never_runs(tmp_path, layout):
    assert _forward() == pytest.approx(EXPECTED, rel=1e-6)
    entry, marker = _entry(), tmp_path / "marker"
    planted = _hostile(_source(entry), marker)
    if layout == "fake-mac-line":  # the right layout, a MAC made without the key
        planted = cache_auth.seal_entry(planted.encode(), entry.name, b"k" * 32).decode()
    entry.write_text(planted)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _forward() == pytest.approx(EXPECTED, rel=1e-6)
    assert not marker.exists()
    _assert_regenerated(entry)
    untrusted = [w for w in caught if issubclass(w.category, UntrustedCacheWarning)]
    # An entry without a MAC line (as earlier versions wrote) is replaced silently; one with
    # a well-formed MAC line that does not verify is named in a warning.
    assert len(untrusted) == (layout == "fake-mac-line")
    if untrusted:
        assert str(entry) in str(untrusted[0].message)


def _hostile_code(marker: Path) -> bytes:
    """Compiled code that writes `marker` (and defines nothing the runtime needs)."""
    import marshal

    return marshal.dumps(compile(f"open({str(marker)!r}, 'w').write('ran')", "x", "exec"))


@pytest.mark.parametrize("layout", ["no-mac", "fake-mac", "stale-stamp"])
def test_planted_compiled_code_never_runs(tmp_path, layout):
    """The compiled code kept beside an entry (NAME.code) runs only if it authenticates
    with the cache's key and is stamped with the hash of the entry it was compiled from:
    anything else is ignored, the entry compiled from its (verified) text, and the code
    file rewritten."""
    import hashlib
    import importlib.util

    assert _forward() == pytest.approx(EXPECTED, rel=1e-6)
    entry, marker = _entry(), tmp_path / "marker"
    companion = entry.with_suffix(".code")
    assert companion.is_file()
    key = cache_auth.cache_key(_cache())
    if layout == "no-mac":
        planted = _hostile_code(marker)
    elif layout == "fake-mac":  # the right layout, a MAC made without the key
        stamp = (cache._CODE_STAMP + importlib.util.MAGIC_NUMBER
                 + hashlib.sha256(entry.read_bytes()).digest())
        planted = cache_auth.seal_entry(stamp + _hostile_code(marker), companion.name,
                                        b"k" * 32)
    else:  # authentic, but compiled from other bytes than the entry's
        stamp = cache._CODE_STAMP + importlib.util.MAGIC_NUMBER + hashlib.sha256(b"x").digest()
        planted = cache_auth.seal_entry(stamp + _hostile_code(marker), companion.name, key)
    companion.write_bytes(planted)
    _forget_loaded_modules()  # as in a new process: the entry is loaded from disk
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _forward() == pytest.approx(EXPECTED, rel=1e-6)
    assert not marker.exists()
    untrusted = [w for w in caught if issubclass(w.category, UntrustedCacheWarning)]
    assert len(untrusted) == (layout == "fake-mac")
    assert companion.read_bytes() != planted  # rewritten from the entry
    assert _forward() == pytest.approx(EXPECTED, rel=1e-6)


def _forget_loaded_modules() -> None:
    for name in [n for n in sys.modules if n.startswith("_symcompile_generated_")]:
        del sys.modules[name]


def test_compiled_code_is_used_on_a_cache_hit(monkeypatch):
    """A cache hit runs the stored code: it does not compile the module again."""
    _forward()
    _forget_loaded_modules()
    compiles = []
    monkeypatch.setattr(cache, "_compiled", lambda *a: compiles.append(a) or None)
    assert _forward() == pytest.approx(EXPECTED, rel=1e-6)
    assert compiles == []


def test_module_planted_before_first_use_never_runs(tmp_path, monkeypatch):
    _forward()  # in another cache, to learn the entry's name and source
    name, source = _entry().name, _source(_entry())
    victim = tmp_path / "victim"
    monkeypatch.setenv("SYMCOMPILE_CACHE_DIR", str(victim))
    victim.mkdir(mode=0o700)  # the private directory exists; no key, no entry yet
    marker = tmp_path / "marker"
    (victim / name).write_text(_hostile(source, marker))
    assert _forward() == pytest.approx(EXPECTED, rel=1e-6)
    assert not marker.exists()
    _assert_regenerated(victim / name)


def test_planted_module_with_a_wrong_graph_hash_never_runs(tmp_path):
    _forward()
    entry, marker = _entry(), tmp_path / "marker"
    entry.write_text(_hostile(_source(entry), marker, graph_hash="0123456789abcdef"))
    assert _forward() == pytest.approx(EXPECTED, rel=1e-6)
    assert not marker.exists()
    _assert_regenerated(entry)


def _sgd_step() -> tuple[np.ndarray, np.ndarray]:
    nn.clear_parameters()
    w = nn.parameter.get_parameter_or_create("w", (3,), need_grad=True)
    w.d = np.array([1.0, 2.0, 3.0], np.float32)
    loss = F.sum(F.mul2(w, w))
    solver = S.Sgd(lr=0.5)
    solver.set_parameters(nn.get_parameters())
    loss.forward()
    solver.zero_grad()
    loss.backward()
    before = w.d.copy()
    solver.update()
    return before, w.d.copy()


def test_planted_update_rule_module_never_runs(tmp_path, monkeypatch):
    before, after = _sgd_step()
    np.testing.assert_allclose(after, before - 0.5 * 2 * before)
    [entry] = _cache().glob("update_sgd_*.py")
    marker = tmp_path / "marker"
    planted = _hostile(_source(entry), marker, replace=("w -= lr*g", "w[...] = 42"))
    entry.write_text(planted)  # planted where the next process will look
    runtime._updates.clear()
    before, after = _sgd_step()
    np.testing.assert_allclose(after, before - 0.5 * 2 * before)
    assert not marker.exists()
    _assert_regenerated(entry)

    # Planted again in the instant after symcompile rewrote the entry and before it loads
    # it: what runs is the module symcompile wrote, not a re-read of the file.
    real_replace = os.replace

    def replace_then_plant(src, dst, *args, **kwargs):
        real_replace(src, dst, *args, **kwargs)
        if Path(dst) == entry:
            monkeypatch.setattr(os, "replace", real_replace)  # once
            entry.write_text(planted)

    entry.write_text("")
    monkeypatch.setattr(os, "replace", replace_then_plant)
    runtime._updates.clear()
    before, after = _sgd_step()
    np.testing.assert_allclose(after, before - 0.5 * 2 * before)
    assert not marker.exists() and entry.read_text() == planted
    runtime._updates.clear()
    before, after = _sgd_step()  # and the planted file is not run later either
    np.testing.assert_allclose(after, before - 0.5 * 2 * before)
    assert not marker.exists()
    _assert_regenerated(entry)


def test_an_entry_is_bound_to_its_file_name(tmp_path):
    """A valid entry copied under another entry's name does not authenticate there."""
    _forward()
    entry = _entry()
    other = entry.with_name("graph_00000000000000000000.py")
    other.write_bytes(entry.read_bytes())
    with pytest.warns(UntrustedCacheWarning, match=re.escape(str(other))):
        assert cache.load_cached(other) is None
    assert cache.load_cached(entry) is not None


def test_truncated_entry_is_regenerated_without_a_warning():
    _forward()
    entry = _entry()
    data = entry.read_bytes()
    for cut in (len(data) // 2, 40, 0):  # in the body, inside the MAC line, empty
        entry.write_bytes(data[:cut])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert _forward() == pytest.approx(EXPECTED, rel=1e-6)
        assert entry.read_bytes() == data


# --- symcompile.load and compile read GRAPH_HASH before running anything ---------------

def test_load_of_a_module_for_another_graph_runs_none_of_it(tmp_path):
    loss = _loss()
    result = nn.compile(loss, name="model", output_dir=tmp_path / "out")
    marker = tmp_path / "marker"
    result.path.write_text(_hostile(result.source, marker))
    nn.clear_parameters()
    x = nn.Variable((5,), need_grad=True)
    other = F.sum(F.cos(x))  # another graph
    with pytest.raises(GraphMismatchError, match="was generated for a graph with hash"):
        nn.load(result.path, other)
    assert not marker.exists()
    with pytest.raises(GraphMismatchError):
        nn.load(result.path, other, allow_edited=True)
    assert not marker.exists()
    nn.load(result.path, _loss())  # its own graph: loaded (the user chose this file)
    assert marker.exists()


def test_graph_hash_is_read_from_the_text():
    text = "GRAPH_HASH = 'abc'\nx = 1\n"
    assert cache.graph_hash_of(text) == "abc"
    assert cache.graph_hash_of('GRAPH_HASH = "abc"  # edited\n') == "abc"  # by ast
    assert cache.graph_hash_of("x = 1\n") is None
    assert cache.graph_hash_of("GRAPH_HASH = compute()\n") is None


def test_a_cache_entry_can_be_loaded_as_a_module(tmp_path):
    _forward()
    loss = _loss()
    module = nn.load(_entry(), loss)  # its MAC line is a comment, not part of the seal
    assert module.__file__ == str(_entry())
    loss.forward()
    assert float(loss.d) == pytest.approx(EXPECTED, rel=1e-6)


# --- a private directory ----------------------------------------------------------------

@posix_only
def test_cache_dir_is_created_private_whatever_the_umask(tmp_path, monkeypatch):
    nested = tmp_path / "a" / "b" / "cache"
    monkeypatch.setenv("SYMCOMPILE_CACHE_DIR", str(nested))
    old = os.umask(0o002)
    try:
        _forward()
        nn.clear_parameters()
        _sgd_step()
    finally:
        os.umask(old)
    assert nested.stat().st_mode & 0o7777 == 0o700
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o775  # parents: the umask's
    files = sorted(p.name for p in nested.iterdir())
    # the key, and 2 graphs and an update rule, each with its compiled code
    assert len(files) == 7 and cache_auth.KEY_FILE in files, files
    assert sum(name.endswith(".code") for name in files) == 3, files
    for path in nested.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path


@posix_only
@pytest.mark.parametrize("mode, who", [(0o777, "group and others"), (0o770, "group"),
                                       (0o1777, "group and others"), (0o702, "others")])
def test_a_cache_dir_others_can_write_is_refused(mode, who):
    directory = _cache()
    directory.mkdir()
    directory.chmod(mode)
    with pytest.raises(UnsafeCacheError) as error:
        _forward()
    message = str(error.value)
    assert str(directory) in message and f"{mode:#o}" in message and f"writable by {who}" in message
    assert f"chmod 700 {directory}" in message and "SYMCOMPILE_CACHE_DIR" in message
    assert f"rm -r {directory}" in message
    assert list(directory.iterdir()) == []  # nothing written into it either
    directory.chmod(0o700)  # the fix works
    assert _forward() == pytest.approx(EXPECTED, rel=1e-6)


@posix_only
def test_an_existing_readable_cache_dir_of_yours_is_used():
    """A cache made by an earlier version (0755: others may read, not write) still works."""
    directory = _cache()
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    assert _forward() == pytest.approx(EXPECTED, rel=1e-6)


@posix_only
def test_a_group_writable_cache_file_is_refused():
    _forward()
    entry = _entry()
    entry.chmod(0o664)
    with pytest.raises(UnsafeCacheError, match=re.escape(str(entry))) as error:
        _forward()
    assert "0o664" in str(error.value) and "writable by group" in str(error.value)


@posix_only
def test_a_symlinked_cache_file_is_refused(tmp_path):
    _forward()
    entry = _entry()
    target = tmp_path / "elsewhere.py"
    target.write_bytes(entry.read_bytes())
    entry.unlink()
    entry.symlink_to(target)
    with pytest.raises(UnsafeCacheError, match="symbolic link"):
        _forward()


def _chown_or_skip(path: Path, uid: int = 4242) -> None:
    try:
        os.chown(path, uid, -1, follow_symlinks=False)
    except (PermissionError, AttributeError):
        pytest.skip("cannot give a file to another user here (needs root)")


@posix_only
def test_a_cache_dir_owned_by_someone_else_is_refused():
    directory = _cache()
    directory.mkdir(mode=0o700)
    _chown_or_skip(directory)
    with pytest.raises(UnsafeCacheError) as error:
        _forward()
    message = str(error.value)
    assert str(directory) in message and "owned by uid 4242" in message
    assert f"uid {os.getuid()}" in message and "SYMCOMPILE_CACHE_DIR" in message


@posix_only
@pytest.mark.parametrize("which", ["entry", "key"])
def test_a_cache_file_owned_by_someone_else_is_refused(which):
    _forward()
    path = _entry() if which == "entry" else _cache() / cache_auth.KEY_FILE
    _chown_or_skip(path)
    with pytest.raises(UnsafeCacheError, match=re.escape(str(path)) + ".*owned by uid 4242"):
        _forward()


# --- the key ----------------------------------------------------------------------------

@posix_only
def test_key_file_is_private_and_32_random_bytes():
    _forward()
    key = _cache() / cache_auth.KEY_FILE
    assert key.stat().st_mode & 0o7777 == 0o600
    assert len(key.read_bytes()) == 32
    assert key.read_bytes() != b"\0" * 32


@posix_only
def test_key_file_readable_by_others_is_refused():
    _forward()
    key = _cache() / cache_auth.KEY_FILE
    key.chmod(0o644)
    with pytest.raises(UnsafeCacheError, match=re.escape(str(key)) + ".*0o644.*0600"):
        _forward()


@pytest.mark.parametrize("content", [b"", b"short", b"x" * 33], ids=["empty", "short", "long"])
def test_a_damaged_key_file_is_a_clear_error(content):
    _forward()
    key = _cache() / cache_auth.KEY_FILE
    key.write_bytes(content)
    os.utime(key, (time.time() - 3600,) * 2)  # damaged long ago, not being created now
    started = time.monotonic()
    with pytest.raises(UnsafeCacheError) as error:
        _forward()
    assert time.monotonic() - started < 1.5  # reported at once
    message = str(error.value)
    assert str(key) in message and "damaged" in message and "not 32" in message
    assert f"rm -r {_cache()}" in message


KEY_RACER = """
    import os, sys, time
    from pathlib import Path
    from symcompile.runtime import cache_auth
    directory, go = Path(sys.argv[1]), sys.argv[2]
    while not os.path.exists(go):
        time.sleep(0.0005)
    print(cache_auth.cache_key(cache_auth.ensure_private_dir(directory)).hex())
"""


def test_processes_racing_to_create_the_key_agree_on_one(tmp_path):
    directory, go = tmp_path / "shared" / "cache", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    racers = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(KEY_RACER),
                                str(directory), str(go)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for _ in range(8)]
    time.sleep(1.0)  # let them all import and wait
    go.touch()
    keys = set()
    for racer in racers:
        out, err = racer.communicate(timeout=60)
        assert racer.returncode == 0, err[-2000:]
        keys.add(out.strip())
    assert len(keys) == 1
    assert bytes.fromhex(keys.pop()) == (directory / cache_auth.KEY_FILE).read_bytes()
    assert sorted(p.name for p in directory.iterdir()) == [cache_auth.KEY_FILE]


# --- check_gradient compiles into the private directory --------------------------------

def test_check_gradient_compiles_inside_the_private_cache():
    nn.clear_parameters()
    x = nn.Variable((4,), need_grad=True)
    x.d = np.linspace(-1, 1, 4)
    report = nn.check_gradient(F.sum(F.tanh(x)))
    assert all(passed for *_, passed in report.values())
    assert list((_cache() / "check").glob("*.py"))
    if os.name == "posix":
        assert _cache().stat().st_mode & 0o7777 == 0o700
    assert _forward() == pytest.approx(EXPECTED, rel=1e-6)  # and the cache still works
