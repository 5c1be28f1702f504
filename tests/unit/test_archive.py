"""deploy.archive: byte-identical zips whatever the host did to the tree, and safe extraction."""

from __future__ import annotations

import os
import random
import shutil
import stat
import subprocess
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploy import archive
from deploy.archive import Entry, collect, safe_extract, write_zip, zip_tree
from deploy.errors import BuildError

# ----------------------------------------------------------------------------- helpers

_segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=8)
_name = st.lists(_segment, min_size=1, max_size=3).map(lambda parts: "/".join(parts) + ".txt")
_content = st.one_of(
    st.binary(max_size=300),
    st.text(alphabet="ab \n", max_size=2000).map(str.encode),  # compressible: exercises deflate
)
_trees = st.dictionaries(_name, st.tuples(_content, st.booleans()), min_size=1, max_size=12).filter(
    # a name cannot be both a file and a folder
    lambda tree: (
        not any(other.startswith(n.removesuffix(".txt") + "/") for n in tree for other in tree)
        and not any(other.startswith(n + "/") for n in tree for other in tree)
    )
)


def _materialise(root: Path, tree: dict[str, tuple[bytes, bool]], *, seed: int, umask: int) -> None:
    """Write ``tree`` in a shuffled order, under ``umask``, with random mtimes and exec bits."""
    rng = random.Random(seed)
    items = list(tree.items())
    rng.shuffle(items)
    old = os.umask(umask)
    try:
        for rel, (content, executable) in items:
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            mode = path.stat().st_mode
            if executable:
                path.chmod(mode | rng.choice([0o100, 0o111, 0o110]))
            else:
                path.chmod(mode & ~0o111)
            stamp = rng.randint(0, 2_000_000_000)
            os.utime(path, (stamp, stamp))
    finally:
        os.umask(old)


def _unzip_t(path: Path) -> None:
    if shutil.which("unzip"):
        result = subprocess.run(["unzip", "-tq", str(path)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


# ----------------------------------------------------------------------------- determinism


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=_trees, seed_a=st.integers(0, 1000), seed_b=st.integers(0, 1000), workers=st.sampled_from([1, 3]))
def test_same_content_gives_identical_bytes(
    tree: dict[str, tuple[bytes, bool]], seed_a: int, seed_b: int, workers: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        _materialise(base / "a", tree, seed=seed_a, umask=0o022)
        _materialise(base / "b", tree, seed=seed_b, umask=0o077)
        first = write_zip(collect(base / "a"), base / "a.zip", epoch=None, workers=1)
        second = write_zip(collect(base / "b"), base / "b.zip", epoch=None, workers=workers)
        assert (base / "a.zip").read_bytes() == (base / "b.zip").read_bytes()
        assert first.sha256 == second.sha256
        assert first.entries == len(tree)
        assert first.unzipped_size == sum(len(c) for c, _ in tree.values())
        assert first.zipped_size == (base / "a.zip").stat().st_size

        with zipfile.ZipFile(base / "a.zip") as zf:
            assert zf.testzip() is None
            infos = zf.infolist()
            assert [i.filename for i in infos] == sorted(tree)
            for info in infos:
                content, executable = tree[info.filename]
                assert zf.read(info) == content
                assert info.date_time == (1980, 1, 1, 0, 0, 0)
                assert info.external_attr >> 16 == stat.S_IFREG | (0o755 if executable else 0o644)
                assert info.create_system == 3
                assert info.extra == b""
                assert info.comment == b""
            assert zf.comment == b""


def test_members_compressed_ahead_give_the_same_bytes_and_a_changed_file_is_compressed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "t"
    for i in range(30):
        (root / f"pkg{i % 3}").mkdir(parents=True, exist_ok=True)
        (root / f"pkg{i % 3}" / f"m{i}.py").write_bytes(b"x = %d\n" % i * (i + 1))
    record = root / "pkg0" / "RECORD"
    record.write_text("before\n")
    plain = write_zip(collect(root), tmp_path / "plain.zip", compresslevel=1)

    compressed: list[str] = []
    real = archive._compress
    monkeypatch.setattr(archive, "_compress", lambda e, lvl: compressed.append(e.name) or real(e, lvl))
    with archive.Precompressor(1) as ahead:
        ahead.submit(collect(root))
        record.write_text("rewritten after submit\n")  # as rewrite_records does once the compile is done
        again = write_zip(collect(root), tmp_path / "ahead.zip", compresslevel=1, ahead=ahead)
    # Each file once, ahead; only the changed one a second time.
    assert sorted(compressed) == sorted([e.name for e in collect(root)] + ["pkg0/RECORD"])
    record.write_text("rewritten after submit\n")
    fresh = write_zip(collect(root), tmp_path / "fresh.zip", compresslevel=1)
    assert again.sha256 == fresh.sha256 != plain.sha256
    with zipfile.ZipFile(tmp_path / "ahead.zip") as zf:
        assert zf.read("pkg0/RECORD") == b"rewritten after submit\n"


def test_real_zip_tools_accept_it(tmp_path: Path) -> None:
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "__init__.py").write_text("print('hi')\n" * 500)
    (tmp_path / "src" / "pkg" / "blob.bin").write_bytes(os.urandom(5000))  # incompressible: stored
    (tmp_path / "src" / "empty.txt").write_bytes(b"")
    (tmp_path / "src" / "ünïcode.txt").write_text("x")
    result = zip_tree(tmp_path / "src", tmp_path / "out.zip")
    _unzip_t(result.path)
    with zipfile.ZipFile(result.path) as zf:
        assert zf.testzip() is None
        methods = {i.filename: i.compress_type for i in zf.infolist()}
        assert methods["pkg/__init__.py"] == zipfile.ZIP_DEFLATED
        assert methods["pkg/blob.bin"] == zipfile.ZIP_STORED
        assert methods["empty.txt"] == zipfile.ZIP_STORED
        assert "ünïcode.txt" in methods


def test_compressed_formats_are_stored_by_name_without_trying_deflate(tmp_path: Path) -> None:
    """A name in STORED_SUFFIXES is stored even when deflate could shrink it (the choice must not
    cost a deflate); the same bytes under another name are deflated. Either way they read back."""
    text = b"botocore service model\n" * 400
    (tmp_path / "src" / "data").mkdir(parents=True)
    for name in ("model.json.gz", "logo.PNG", "vendored.whl", "model.json"):
        (tmp_path / "src" / "data" / name).write_bytes(text)
    result = zip_tree(tmp_path / "src", tmp_path / "out.zip")
    _unzip_t(result.path)
    with zipfile.ZipFile(result.path) as zf:
        methods = {i.filename: i.compress_type for i in zf.infolist()}
        assert methods == {
            "data/logo.PNG": zipfile.ZIP_STORED,
            "data/model.json": zipfile.ZIP_DEFLATED,
            "data/model.json.gz": zipfile.ZIP_STORED,
            "data/vendored.whl": zipfile.ZIP_STORED,
        }
        assert all(zf.read(name) == text for name in methods)


def _golden_entries() -> list[Entry]:
    rng = random.Random(12)
    words = ["".join(rng.choice("abcdefghij_") for _ in range(rng.randint(2, 9))) for _ in range(300)]
    text = "\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(4000)).encode()
    return [
        Entry(name="pkg/mod.py", data=text),
        Entry(name="pkg/blob.bin", data=rng.randbytes(20000)),
        Entry(name="pkg/data.json.gz", data=b"{}" * 500),
    ]


@pytest.mark.parametrize(
    ("level", "sha256"),
    [
        (1, "fafe1ddf8cf73caf7db20c02098c9e8825908e848977a379f909a008f9d5ae56"),
        (6, "71e40294fdf844776be06a73bedbbbc59dd3af86201f82e80317976140e1b369"),
    ],
)
def test_the_same_entries_give_these_bytes_on_every_machine(tmp_path: Path, level: int, sha256: str) -> None:
    """Golden bytes: CI checks them on Python 3.11, 3.12 and 3.13, and they do not depend on the
    machine's zlib (deflate is the pinned libdeflate). If they change, a layer identity would
    name other bytes than it did: bump identity.FORMAT_VERSION, then update the digests here."""
    from deploy.identity import FORMAT_VERSION

    result = write_zip(_golden_entries(), tmp_path / "g.zip", epoch=archive.ZIP_EPOCH, compresslevel=level)
    assert (FORMAT_VERSION, result.sha256) == (4, sha256)


def test_the_deflate_package_is_the_pinned_one() -> None:
    """archive.DEFLATE_VERSION, pyproject's pin, the deploy lock and the installed package agree."""
    import importlib.metadata
    import tomllib

    from deploy.config import ROOT

    assert importlib.metadata.version("deflate") == archive.DEFLATE_VERSION
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"deflate=={archive.DEFLATE_VERSION}" in dependencies
    assert f"\ndeflate=={archive.DEFLATE_VERSION} " in (ROOT / "requirements" / "deploy.txt").read_text()


def test_sha256_is_of_the_written_bytes(tmp_path: Path) -> None:
    import hashlib

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("a = 1\n")
    result = zip_tree(tmp_path / "src", tmp_path / "out.zip")
    assert result.sha256 == hashlib.sha256((tmp_path / "out.zip").read_bytes()).hexdigest()
    assert stat.S_IMODE((tmp_path / "out.zip").stat().st_mode) == 0o644


def test_source_date_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("a = 1\n")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # 2023-11-14 22:13:20 UTC
    default = zip_tree(tmp_path / "src", tmp_path / "env.zip")
    with zipfile.ZipFile(default.path) as zf:
        assert zf.infolist()[0].date_time == (2023, 11, 14, 22, 13, 20)
    # the explicit parameter wins over the environment
    explicit = zip_tree(tmp_path / "src", tmp_path / "param.zip", epoch=0)
    with zipfile.ZipFile(explicit.path) as zf:
        assert zf.infolist()[0].date_time == (1980, 1, 1, 0, 0, 0)  # clamped up to ZIP's first date
    assert explicit.sha256 != default.sha256


def test_bad_source_date_epoch_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("a = 1\n")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(BuildError, match="SOURCE_DATE_EPOCH"):
        zip_tree(tmp_path / "src", tmp_path / "out.zip")
    assert not (tmp_path / "out.zip").exists()


def test_resolve_epoch_clamps_and_reads_env() -> None:
    assert archive.resolve_epoch(None, env={}) == archive.ZIP_EPOCH
    assert archive.resolve_epoch(None, env={"SOURCE_DATE_EPOCH": "5"}) == archive.ZIP_EPOCH
    assert archive.resolve_epoch(None, env={"SOURCE_DATE_EPOCH": "1700000000"}) == 1_700_000_000
    assert archive.resolve_epoch(1_600_000_000, env={"SOURCE_DATE_EPOCH": "1700000000"}) == 1_600_000_000


# ----------------------------------------------------------------------------- collect


def test_bytecode_and_excluded_paths_are_dropped(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "pkg" / "__pycache__").mkdir(parents=True)
    (src / "pkg" / "__pycache__" / "mod.cpython-312.pyc").write_bytes(b"\x00")
    (src / "pkg" / "mod.py").write_text("x = 1\n")
    (src / "pkg" / "old.pyc").write_bytes(b"\x00")
    (src / "pkg" / "old.pyo").write_bytes(b"\x00")
    (src / "pkg" / "tests").mkdir()
    (src / "pkg" / "tests" / "test_mod.py").write_text("")
    (src / ".lock").write_text("")
    entries = collect(src, prefix="python/", exclude=lambda rel: rel == ".lock" or rel.endswith("/tests"))
    assert [e.name for e in entries] == ["python/pkg/mod.py"]


def test_prefix_must_be_a_folder(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("")
    with pytest.raises(BuildError, match="prefix"):
        collect(tmp_path, prefix="python")


def test_symlink_inside_is_stored_as_its_target(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "lib").mkdir(parents=True)
    (src / "lib" / "real.so").write_bytes(b"ELF-ish")
    (src / "lib" / "real.so").chmod(0o755)
    (src / "lib" / "link.so").symlink_to("real.so")
    (src / "alias").symlink_to("lib", target_is_directory=True)
    result = zip_tree(src, tmp_path / "out.zip")
    with zipfile.ZipFile(result.path) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        assert sorted(infos) == ["alias/link.so", "alias/real.so", "lib/link.so", "lib/real.so"]
        for info in infos.values():
            assert stat.S_ISREG(info.external_attr >> 16)
            assert stat.S_IMODE(info.external_attr >> 16) == 0o755
            assert zf.read(info) == b"ELF-ish"


def test_symlink_outside_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("outside")
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.py").write_text("")
    (src / "escape.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(BuildError, match=r"escape\.txt.*secret\.txt"):
        collect(src)
    # ...unless the caller widens the allowed root on purpose
    assert [e.name for e in collect(src, allowed_root=tmp_path)] == ["escape.txt", "ok.py"]


def test_broken_and_looping_symlinks(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "dangling").symlink_to(tmp_path / "broken" / "nowhere")
    with pytest.raises(BuildError, match="dangling"):
        collect(tmp_path / "broken")
    (tmp_path / "loop" / "a").mkdir(parents=True)
    (tmp_path / "loop" / "a" / "back").symlink_to(tmp_path / "loop", target_is_directory=True)
    with pytest.raises(BuildError, match="loop"):
        collect(tmp_path / "loop")


def test_entries_from_data_and_duplicates(tmp_path: Path) -> None:
    entries = [Entry(name="b/version_info.json", data=b"{}"), Entry(name="a.sh", data=b"#!/bin/sh\n", mode=0o700)]
    result = write_zip(entries, tmp_path / "out.zip")
    with zipfile.ZipFile(result.path) as zf:
        assert zf.namelist() == ["a.sh", "b/version_info.json"]
        assert stat.S_IMODE(zf.getinfo("a.sh").external_attr >> 16) == 0o755
    with pytest.raises(BuildError, match="appears twice"):
        write_zip([Entry(name="x", data=b"1"), Entry(name="x", data=b"2")], tmp_path / "dup.zip")
    assert not (tmp_path / "dup.zip").exists()
    for bad in ("../x", "/abs", "a//b", "a\\b", ""):
        with pytest.raises(BuildError, match="invalid archive member"):
            Entry(name=bad, data=b"")


# ----------------------------------------------------------------------------- interruption


@pytest.mark.parametrize("exc", [KeyboardInterrupt, OSError])
def test_interrupted_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: type) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        (src / f"f{i:02}.py").write_text(f"x = {i}\n" * 100)
    entries = collect(src)
    out = tmp_path / "out"
    out.mkdir()
    real_read = Entry.read

    def flaky(self: Entry) -> bytes:
        if self.name == "f13.py":
            raise exc("interrupted")
        return real_read(self)

    monkeypatch.setattr(Entry, "read", flaky)
    with pytest.raises(exc):
        write_zip(entries, out / "layer.zip", workers=2)
    assert list(out.iterdir()) == []


def test_interrupted_rewrite_keeps_the_previous_zip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text("a = 1\n")
    first = zip_tree(src, tmp_path / "layer.zip")
    before = first.path.read_bytes()
    (src / "b.py").write_text("b = 2\n")

    def boom(self: Entry) -> bytes:
        raise KeyboardInterrupt

    monkeypatch.setattr(Entry, "read", boom)
    with pytest.raises(KeyboardInterrupt):
        zip_tree(src, tmp_path / "layer.zip")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer.zip", "src"]
    assert first.path.read_bytes() == before


def test_many_files_bounded_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A window smaller than one file still makes progress and the output does not depend on it."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(50):
        (src / f"{i:03}.txt").write_bytes(bytes([i]) * (1000 + i))
    wide = zip_tree(src, tmp_path / "wide.zip")
    monkeypatch.setattr(archive, "_WINDOW_BYTES", 10)
    narrow = zip_tree(src, tmp_path / "narrow.zip")
    assert wide.sha256 == narrow.sha256


# ----------------------------------------------------------------------------- safe_extract


def _craft(path: Path, members: list[tuple[str, bytes, int]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            info.create_system = 3
            zf.writestr(info, data)
    return path


@pytest.mark.parametrize(
    ("name", "mode", "why"),
    [
        ("../x", 0o100644, r"'\.\.'"),
        ("a/../../x", 0o100644, r"'\.\.'"),
        ("/abs", 0o100644, "absolute"),
        ("C:/windows/x", 0o100644, "drive letter"),
        ("..\\evil", 0o100644, r"'\.\.'"),
        ("link", stat.S_IFLNK | 0o777, "symlink"),
        ("fifo", stat.S_IFIFO | 0o644, "special file"),
    ],
)
def test_safe_extract_rejects_and_writes_nothing(tmp_path: Path, name: str, mode: int, why: str) -> None:
    zip_path = _craft(tmp_path / "bad.zip", [("good.txt", b"ok", 0o100644), (name, b"/etc/passwd", mode)])
    dest = tmp_path / "out"
    with pytest.raises(BuildError, match=why) as err:
        safe_extract(zip_path, dest)
    assert repr(name) in str(err.value)
    assert list(dest.iterdir()) == []


def test_safe_extract_refuses_paths_through_existing_symlinks(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (dest / "sub").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    zip_path = _craft(tmp_path / "bad.zip", [("sub/x.txt", b"x", 0o100644)])
    with pytest.raises(BuildError, match="outside"):
        safe_extract(zip_path, dest)
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_safe_extract_extracts_good_zip_with_modes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "python" / "pkg").mkdir(parents=True)
    (src / "python" / "pkg" / "__init__.py").write_text("x = 1\n")
    (src / "bootstrap").write_text("#!/bin/sh\n")
    (src / "bootstrap").chmod(0o700)
    result = zip_tree(src, tmp_path / "ok.zip")
    dest = tmp_path / "out"
    names = safe_extract(result.path, dest)
    assert names == ["bootstrap", "python/pkg/__init__.py"]
    assert (dest / "python" / "pkg" / "__init__.py").read_text() == "x = 1\n"
    assert stat.S_IMODE((dest / "bootstrap").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "python" / "pkg" / "__init__.py").stat().st_mode) == 0o644


def test_safe_extract_handles_directory_members_and_size_limit(tmp_path: Path) -> None:
    zip_path = _craft(tmp_path / "d.zip", [("dir/", b"", stat.S_IFDIR | 0o700), ("dir/f", b"12345", 0o100600)])
    names = safe_extract(zip_path, tmp_path / "out")
    assert names == ["dir/", "dir/f"]
    assert stat.S_IMODE((tmp_path / "out" / "dir").stat().st_mode) == 0o755
    with pytest.raises(BuildError, match="exceeds"):
        safe_extract(zip_path, tmp_path / "out2", max_unzipped=4)


def test_safe_extract_names_a_corrupt_zip(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(BuildError, match=r"bad\.zip"):
        safe_extract(bad, tmp_path / "out")


def test_safe_extract_refuses_a_sibling_folder_sharing_the_prefix(tmp_path: Path) -> None:
    """`out-evil` starts with the text `out` but is not inside it: the guard compares paths, not strings."""
    dest = tmp_path / "out"
    dest.mkdir()
    (tmp_path / "out-evil").mkdir()
    (dest / "sub").symlink_to(tmp_path / "out-evil", target_is_directory=True)
    zip_path = _craft(tmp_path / "bad.zip", [("sub/x.txt", b"x", 0o100644)])
    with pytest.raises(BuildError, match="outside"):
        safe_extract(zip_path, dest)
    assert list((tmp_path / "out-evil").iterdir()) == []


def test_safe_extract_refuses_a_zip_bomb_before_writing(tmp_path: Path) -> None:
    """A small zip that declares more than the bound is refused before its first byte lands."""
    zip_path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * (4 * 1024 * 1024))
    assert zip_path.stat().st_size < 64 * 1024
    dest = tmp_path / "out"
    with pytest.raises(BuildError, match=r"4194304 bytes unzipped exceeds 1048576"):
        safe_extract(zip_path, dest, max_unzipped=1024 * 1024)
    assert list(dest.iterdir()) == []


@pytest.mark.parametrize(
    "members",
    [
        [("a", b"file", 0o100644), ("a/b.txt", b"x", 0o100644)],
        [("a/b.txt", b"x", 0o100644), ("a", b"file", 0o100644)],
        [("a/", b"", stat.S_IFDIR | 0o755), ("a", b"file", 0o100644)],
    ],
)
def test_safe_extract_file_folder_clash_in_the_zip_is_clear(
    tmp_path: Path, members: list[tuple[str, bytes, int]]
) -> None:
    zip_path = _craft(tmp_path / "clash.zip", members)
    dest = tmp_path / "out"
    with pytest.raises(BuildError, match=r"'a' is both a file and a folder in the zip"):
        safe_extract(zip_path, dest)
    assert list(dest.iterdir()) == []


def test_safe_extract_clash_with_an_earlier_archive_is_clear(tmp_path: Path) -> None:
    """Two layers extracted into one /opt: the second names a folder where the first wrote a file."""
    dest = tmp_path / "opt"
    safe_extract(_craft(tmp_path / "one.zip", [("python/x", b"file", 0o100644)]), dest)
    with pytest.raises(BuildError) as err:
        safe_extract(_craft(tmp_path / "two.zip", [("python/x/y.py", b"", 0o100644)]), dest)
    assert err.value.message.startswith(
        f"cannot extract python/x/y.py from {tmp_path / 'two.zip'}: a file and a folder clash"
    )


def test_a_fifo_in_the_tree_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "ok.py").write_text("x = 1\n")
    os.mkfifo(tmp_path / "pkg" / "pipe")
    with pytest.raises(BuildError, match=r"pkg/pipe is not a regular file"):
        collect(tmp_path)
