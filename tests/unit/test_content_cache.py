"""The .pyc cache: a hit is the very file a compile writes; what decides the bytes is in the key;
failures are never cached; the folder stays bounded and can be turned off."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from deploy import bytecode, content_cache
from deploy.build import _pyc_rel
from deploy.content_cache import ContentCache
from tests.unit.runtime_pyc import _host


def _tree(root: Path, files: dict[str, str]) -> list[str]:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return bytecode.python_files(root)


def _pycs(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.pyc"))}


def _entries(cache: ContentCache) -> set[Path]:
    return {p for p in cache.root.rglob("*") if p.is_file() and not p.name.startswith(".")}


SOURCES = {"pkg/__init__.py": "X = {'a', 'b'}\n", "pkg/mod.py": "def f():\n    return 1\n"}


def test_a_warm_cache_writes_the_bytes_a_compile_writes(tmp_path: Path) -> None:
    cache = ContentCache(root=tmp_path / "cache")
    cold, warm, plain = tmp_path / "cold", tmp_path / "warm", tmp_path / "plain"
    for root in (cold, warm, plain):
        _tree(root, SOURCES)
    files = bytecode.python_files(cold)
    assert bytecode.LocalCompiler("3.12", cache=cache).compile(cold, files, out=cold, prefix="/opt/python/") == []
    filled = _entries(cache)
    assert len(filled) == 2
    assert bytecode.LocalCompiler("3.12", cache=cache).compile(warm, files, out=warm, prefix="/opt/python/") == []
    assert bytecode.LocalCompiler("3.12").compile(plain, files, out=plain, prefix="/opt/python/") == []
    assert _entries(cache) == filled  # all hits: nothing new written
    assert _pycs(cold) == _pycs(warm) == _pycs(plain) and len(_pycs(plain)) == 2


def test_a_hit_is_the_cached_file_and_a_damaged_one_is_replaced(tmp_path: Path) -> None:
    """Proves the warm run above really read the cache: an entry with the right header but another body
    is what lands; an entry whose header does not match the source is compiled again and replaced."""
    cache = ContentCache(root=tmp_path / "cache")
    first, second, third = tmp_path / "first", tmp_path / "second", tmp_path / "third"
    files = _tree(first, {"m.py": "A = 1\n"})
    for root in (second, third):
        _tree(root, {"m.py": "A = 1\n"})
    bytecode.LocalCompiler("3.12", cache=cache).compile(first, files, out=first, prefix="/var/task/")
    (entry,) = _entries(cache)
    good = entry.read_bytes()
    entry.write_bytes(good[:16] + b"body from the cache")
    bytecode.LocalCompiler("3.12", cache=cache).compile(second, files, out=second, prefix="/var/task/")
    assert list(_pycs(second).values()) == [good[:16] + b"body from the cache"]

    entry.write_bytes(b"damaged")
    bytecode.LocalCompiler("3.12", cache=cache).compile(third, files, out=third, prefix="/var/task/")
    assert list(_pycs(third).values()) == [good] and entry.read_bytes() == good


def test_the_entry_holds_the_bytes_its_key_names_even_if_the_file_changes_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An editor saving between the read that names the entry and the compile must not file one
    source's bytecode under the other's key: one read serves both (run in-process, this interpreter)."""
    import importlib.util

    from deploy import bytecode_runner

    root, cache = tmp_path / "t", tmp_path / "cache"
    _tree(root, {"app.py": "VALUE = 'old'\n"})
    spec = {"root": str(root), "out": str(root), "prefix": "/var/task/", "cache": str(cache), "salt": "test"}
    real = bytecode_runner._key

    def saved_meanwhile(*parts: bytes) -> str:
        key = real(*parts)  # the entry is named now, from the bytes read: the file changes right after
        (root / "app.py").write_text("VALUE = 'NEW'\n")
        return key

    monkeypatch.setattr(bytecode_runner, "_key", saved_meanwhile)
    assert bytecode_runner._compile_chunk((spec, ["app.py"])) == []
    (entry,) = [p for p in cache.rglob("*") if p.is_file()]
    stored = entry.read_bytes()
    assert stored[8:16] == importlib.util.source_hash(b"VALUE = 'old'\n")
    assert b"old" in stored and b"NEW" not in stored


def test_the_runner_writes_what_py_compile_writes(tmp_path: Path) -> None:
    """Compiling from the bytes read once must give py_compile's own bytes (unchecked-hash)."""
    python = _host()
    root = tmp_path / "t"
    files = _tree(root, {"pkg/__init__.py": "X = {'a', 'b'}\n", "pkg/m.py": "def f():\n    return 1\n"})
    assert bytecode.LocalCompiler("3.12").compile(root, files, out=root, prefix="/opt/python/") == []
    script = (
        "import py_compile, sys\n"
        "for src, out, dfile in zip(*[iter(sys.argv[1:])] * 3):\n"
        "    py_compile.compile(src, cfile=out, dfile=dfile, doraise=True, optimize=0,\n"
        "        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)\n"
    )
    argv: list[str] = []
    for rel in files:
        argv += [str(root / rel), str(tmp_path / f"{rel.replace('/', '_')}.pyc"), f"/opt/python/{rel}"]
    subprocess.run([str(python.path), "-c", script, *argv], check=True, env=bytecode.runner_env())
    for rel in files:
        assert (tmp_path / f"{rel.replace('/', '_')}.pyc").read_bytes() == (
            root / _pyc_rel(rel, python.cache_tag)
        ).read_bytes()


def test_source_and_recorded_path_are_part_of_the_key(tmp_path: Path) -> None:
    cache = ContentCache(root=tmp_path / "cache")
    compiler = bytecode.LocalCompiler("3.12", cache=cache)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    files = _tree(a, {"m.py": "A = 1\n"})
    _tree(b, {"m.py": "A = 2\n"})
    _tree(c, {"m.py": "A = 1\n"})
    compiler.compile(a, files, out=a, prefix="/opt/python/")
    compiler.compile(b, files, out=b, prefix="/opt/python/")  # other source
    compiler.compile(c, files, out=c, prefix="/var/task/")  # other path in tracebacks
    assert len(_entries(cache)) == 3
    assert len({*_pycs(a).values(), *_pycs(b).values(), *_pycs(c).values()}) == 3


def test_a_file_that_does_not_compile_is_never_cached(tmp_path: Path) -> None:
    cache = ContentCache(root=tmp_path / "cache")
    root = tmp_path / "t"
    files = _tree(root, {"ok.py": "A = 1\n", "bad.py": "def (:\n"})
    for _ in range(2):  # reported again on the second build, from a warm cache
        failures = bytecode.LocalCompiler("3.12", cache=cache).compile(root, files, out=root, prefix="/var/task/")
        assert [f.file for f in failures] == ["bad.py"]
    assert len(_entries(cache)) == 1


def test_prune_deletes_the_least_recently_used_first(tmp_path: Path) -> None:
    cache = ContentCache(root=tmp_path / "cache")
    for i, name in enumerate(["old", "middle", "new"]):
        entry = cache.root / "pyc" / "ab" / name
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.write_bytes(b"x" * 100)
        os.utime(entry, ns=(i * 10**9, i * 10**9))
    assert cache.prune(max_bytes=250) == 1
    assert sorted(p.name for p in _entries(cache)) == ["middle", "new"]
    assert content_cache.prune_daily(cache, max_bytes=0) == 2  # no stamp yet: prunes, then stamps
    entry = cache.root / "pyc" / "cd" / "later"
    entry.parent.mkdir(parents=True)
    entry.write_bytes(b"y")
    assert content_cache.prune_daily(cache, max_bytes=0) == 0  # pruned less than a day ago
    assert entry.exists()


def test_where_the_cache_lives_and_how_to_turn_it_off(tmp_path: Path) -> None:
    chosen = content_cache.default_cache({content_cache.ENV_DIR: str(tmp_path / "mine"), "HOME": str(tmp_path)})
    assert chosen is not None and chosen.root == tmp_path / "mine"
    assert stat.S_IMODE(chosen.root.stat().st_mode) == 0o700
    xdg = content_cache.default_cache({"XDG_CACHE_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)})
    assert xdg is not None and xdg.root == tmp_path / "xdg" / "lambda-layer-deploy"
    home = content_cache.default_cache({"HOME": str(tmp_path)})
    assert home is not None and home.root == tmp_path / ".cache" / "lambda-layer-deploy"
    assert content_cache.default_cache({content_cache.ENV_OFF: "1", "HOME": str(tmp_path)}) is None
    assert content_cache.default_cache({}) is None


def test_a_folder_others_can_write_or_another_users_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An entry is bytecode the layer ships unread: only a folder this user alone can write is trusted."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    assert content_cache.default_cache({content_cache.ENV_DIR: str(shared)}) is None
    assert "writable by others (mode 777)" in capsys.readouterr().err
    shared.chmod(0o700)
    assert content_cache.default_cache({content_cache.ENV_DIR: str(shared)}) is not None
    monkeypatch.setattr(os, "getuid", lambda: 4242)
    assert content_cache.default_cache({content_cache.ENV_DIR: str(shared)}) is None
    assert "not to this user" in capsys.readouterr().err
    monkeypatch.undo()
    link = tmp_path / "link"
    link.symlink_to(shared)
    assert content_cache.default_cache({content_cache.ENV_DIR: str(link)}) is None


def test_prune_removes_writes_a_killed_build_left(tmp_path: Path) -> None:
    cache = ContentCache(root=tmp_path / "cache")
    folder = cache.root / "pyc" / "ab"
    folder.mkdir(parents=True)
    old, fresh = folder / ".tmp-old", folder / ".tmp-fresh"
    for p in (old, fresh):
        p.write_bytes(b"half")
    os.utime(old, (0, 0))
    cache.prune()
    assert not old.exists() and fresh.exists()
