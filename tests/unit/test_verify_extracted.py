"""The extraction cache: extract once per sha256, reuse only a tree that is exactly what was extracted."""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from deploy.context import RunContext
from deploy.errors import VerifyError
from deploy.verify.extracted import ExtractionCache, ZipSource, cache_key
from tests.targets import make_targets

HANDLER = "def handler(event, context):\n    return 'good'\n"
EVIL = "def handler(event, context):\n    return 'evil'\n"  # the same size as HANDLER


def make_zip(path: Path, files: Mapping[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


class Counted:
    """A zip source's ``path`` callable that counts how often the zip was asked for (a miss)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.calls = 0

    def __call__(self) -> Path:
        self.calls += 1
        return self.path


def source(path: Path, *, what: str = "function f.zip") -> tuple[ZipSource, Counted]:
    counted = Counted(path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return ZipSource(sha256=sha, what=what, path=counted), counted


def never() -> Path:
    raise AssertionError("a cached tree must not need its zip")


@pytest.fixture
def code_zip(tmp_path: Path) -> Path:
    return make_zip(tmp_path / "code.zip", {"app/__init__.py": "", "app/handler.py": HANDLER})


def entries(cache: ExtractionCache) -> list[str]:
    return sorted(p.name for p in cache.root.iterdir() if not p.name.startswith("."))


def test_a_miss_extracts_and_a_hit_reuses_without_the_zip(tmp_path: Path, code_zip: Path) -> None:
    cache = ExtractionCache(root=tmp_path / "extracted")
    src, counted = source(code_zip)
    with cache.tree([src], layout="task") as first:
        assert first.source == "extracted"
        assert first.path == cache.root / src.sha256 / "task"
        assert (first.path / "app" / "handler.py").read_text() == HANDLER
    assert counted.calls == 1
    hit = ZipSource(sha256=src.sha256, what=src.what, path=never)
    with cache.tree([hit], layout="task") as second:
        assert second.source == "cached"
        assert second.path == first.path
    assert entries(cache) == [src.sha256]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param("same-size-mtime-restored", id="edited, same size, mtime set back"),
        pytest.param("added", id="file added"),
        pytest.param("removed", id="file removed"),
        pytest.param("chmod", id="mode changed"),
        pytest.param("replaced", id="replaced by a new file with the same bytes and mtime"),
    ],
)
def test_a_tampered_cached_tree_is_not_trusted(tmp_path: Path, code_zip: Path, tamper: str) -> None:
    """verify promises the exact deployed bytes: any change since extraction means extract again."""
    cache = ExtractionCache(root=tmp_path / "extracted")
    src, counted = source(code_zip)
    with cache.tree([src], layout="task") as first:
        handler = first.path / "app" / "handler.py"
    before = handler.stat()
    if tamper == "same-size-mtime-restored":
        handler.write_text(EVIL)
        os.utime(handler, ns=(before.st_atime_ns, before.st_mtime_ns))
    elif tamper == "added":
        (first.path / "app" / "sitecustomize.py").write_text("import os\n")
    elif tamper == "removed":
        handler.unlink()
    elif tamper == "chmod":
        handler.chmod(0o777)
    else:
        spare = handler.with_name("spare.py")
        spare.write_text(HANDLER)
        os.utime(spare, ns=(before.st_atime_ns, before.st_mtime_ns))
        spare.replace(handler)
    if tamper in ("same-size-mtime-restored", "replaced"):
        # What (path, size, mtime) alone would call unchanged: ctime and the inode tell.
        assert (handler.stat().st_size, handler.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    with cache.tree([src], layout="task") as again:
        assert again.source == "re-extracted"
        assert again.why is not None
        assert (again.path / "app" / "handler.py").read_text() == HANDLER
        assert not (again.path / "app" / "sitecustomize.py").exists()
        assert oct((again.path / "app" / "handler.py").stat().st_mode & 0o777) == oct(0o644)
    assert counted.calls == 2
    with cache.tree([src], layout="task") as third:  # the fresh extraction is trusted again
        assert third.source == "cached"


def test_the_same_bytes_asked_for_as_another_layout_are_extracted_again(tmp_path: Path, code_zip: Path) -> None:
    cache = ExtractionCache(root=tmp_path / "extracted")
    src, counted = source(code_zip)
    with cache.tree([src], layout="task"):
        pass
    with cache.tree([src], layout="opt") as other:
        assert other.source == "re-extracted"
        assert other.path.name == "opt"
    assert counted.calls == 2


def test_bytes_that_do_not_hash_to_the_key_are_refused_and_nothing_is_cached(tmp_path: Path, code_zip: Path) -> None:
    cache = ExtractionCache(root=tmp_path / "extracted")
    wrong = ZipSource(sha256="0" * 64, what="layer l.zip", path=lambda: code_zip)
    with pytest.raises(VerifyError) as err, cache.tree([wrong], layout="opt"):
        pass
    assert err.value.message.startswith("layer l.zip: its zip hashes to sha256 ")
    assert f"expected {'0' * 64}; refusing to run it" in err.value.message
    assert entries(cache) == []
    assert [p.name for p in cache.root.iterdir()] == [".lock"]  # no staging folder left behind


def test_an_interrupted_extraction_leaves_no_trusted_folder(tmp_path: Path, code_zip: Path) -> None:
    cache = ExtractionCache(root=tmp_path / "extracted")
    good, _ = source(code_zip)
    broken = make_zip(tmp_path / "second.zip", {"python/x.py": "x = 1\n"})
    second, _ = source(broken, what="layer second.zip")

    def interrupted() -> Path:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), cache.tree([good, replace_path(second, interrupted)], layout="opt"):
        pass
    assert entries(cache) == []
    assert [p.name for p in cache.root.iterdir()] == [".lock"]
    # A process killed mid-extraction cannot clean up: its staging folder is never looked up, and a
    # folder under the key without its record (as a crash between the two would leave) is not trusted.
    (cache.root / ".staging-killed" / "opt").mkdir(parents=True)
    key = cache_key([good, second])
    (cache.root / key / "opt" / "python").mkdir(parents=True)
    (cache.root / key / "opt" / "python" / "x.py").write_text("x = 'half'\n")
    with cache.tree([good, second], layout="opt") as tree:
        assert tree.source == "re-extracted"
        assert tree.why == "its record is missing (an interrupted extraction)"
        assert (tree.path / "python" / "x.py").read_text() == "x = 1\n"
        assert (tree.path / "app" / "handler.py").read_text() == HANDLER
    assert not (cache.root / ".staging-killed").exists()  # nobody held it: pruned


def replace_path(src: ZipSource, path: Callable[[], Path]) -> ZipSource:
    return ZipSource(sha256=src.sha256, what=src.what, path=path)


def test_layers_are_extracted_in_order_into_one_tree_under_their_own_key(tmp_path: Path) -> None:
    """Lambda extracts a function's layers in order into /opt: a later one overwrites an earlier one."""
    first, _ = source(make_zip(tmp_path / "a.zip", {"python/shared.py": "who = 'a'\n", "python/a.py": ""}))
    second, _ = source(make_zip(tmp_path / "b.zip", {"python/shared.py": "who = 'b'\n"}))
    cache = ExtractionCache(root=tmp_path / "extracted")
    with cache.tree([first, second], layout="opt") as tree:
        assert (tree.path / "python" / "shared.py").read_text() == "who = 'b'\n"
        assert (tree.path / "python" / "a.py").exists()
        assert tree.key == cache_key([first, second]) not in (first.sha256, second.sha256)
    assert cache_key([second, first]) != cache_key([first, second])


def test_only_the_most_recently_used_entries_are_kept_and_one_in_use_never_goes(tmp_path: Path) -> None:
    cache = ExtractionCache(root=tmp_path / "extracted", keep=2)
    zips = [source(make_zip(tmp_path / f"{i}.zip", {"f.py": f"n = {i}\n"}))[0] for i in range(5)]
    with cache.tree([zips[0]], layout="task"):  # in use throughout: must survive every prune
        for src in zips[1:4]:
            with cache.tree([src], layout="task"):
                pass
        kept = entries(cache)
        assert zips[0].sha256 in kept
        assert zips[3].sha256 in kept
        assert zips[1].sha256 not in kept
    with cache.tree([zips[3]], layout="task") as reused:  # a hit makes it the most recent
        assert reused.source == "cached"
    with cache.tree([zips[4]], layout="task"):
        pass
    assert entries(cache) == sorted([zips[3].sha256, zips[4].sha256])


def test_an_unsafe_zip_is_named_by_its_own_path_not_the_private_copy(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../escape.py", "")
    src, _ = source(bad, what="layer bad.zip")
    cache = ExtractionCache(root=tmp_path / "extracted")
    with pytest.raises(VerifyError) as err, cache.tree([src], layout="opt"):
        pass
    assert err.value.message.startswith(f"layer bad.zip: refusing to extract {bad}: member '../escape.py'")
    assert entries(cache) == []


def test_the_pipeline_gives_both_verify_runs_of_a_deploy_the_same_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deployed verify reuses what the local verify extracted only if both get the checkout's cache."""
    from types import SimpleNamespace
    from typing import Any

    from deploy import terraform
    from deploy import verify as verify_mod
    from deploy.config import EnvConfig, FunctionTarget, Paths
    from deploy.run import checks
    from deploy.terraform import DeclaredFunction
    from deploy.verify import local as verify_local_mod

    seen: list[Any] = []

    def fake(*_: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("trees"))
        return SimpleNamespace(functions=(), import_only=[], strict=False)

    monkeypatch.setattr(verify_mod, "verify_local", fake)
    monkeypatch.setattr(verify_mod, "verify_deployed", fake)
    monkeypatch.setattr(verify_local_mod, "configured", lambda *_: {})  # Lambda's configuration: none here
    declared = (DeclaredFunction(key="ok", handler="h.handler", sources=("h.py",)),)
    monkeypatch.setattr(terraform, "declared_functions", lambda _env: declared)
    env = EnvConfig(name="test", region="us-east-1", paths=Paths(root=tmp_path))
    targets = make_targets("test", (FunctionTarget(key="ok", name="acme-test-ok", handler="h.handler"),))
    checks._verify_local(RunContext.create(env), targets, None, None)  # type: ignore[arg-type]
    checks._verify_deployed(RunContext.create(env), targets, None, None)
    assert seen == [ExtractionCache(root=tmp_path / ".build" / "extracted")] * 2


def test_an_untrusted_entry_another_verify_still_reads_stays_and_this_run_extracts_privately(
    tmp_path: Path, code_zip: Path
) -> None:
    """Moving the entry aside would put the fresh tree under the path the other run is reading."""
    cache = ExtractionCache(root=tmp_path / "extracted")
    src, counted = source(code_zip)
    with cache.tree([src], layout="task") as running:  # run A holds the entry
        handler = running.path / "app" / "handler.py"
        handler.chmod(0o777)  # the tree changed since extraction: B will not trust it
        with cache.tree([src], layout="task") as other:
            assert other.source == "re-extracted"
            assert other.path != running.path and other.path.is_dir()
            assert (other.path / "app" / "handler.py").read_text() == HANDLER
            assert running.path.is_dir() and oct(handler.stat().st_mode & 0o777) == oct(0o777)  # A's tree stays
        assert not other.path.exists()  # B's private extraction is gone with B's run
    assert counted.calls == 2
    with cache.tree([src], layout="task") as later:  # nobody holds it now: set aside and replaced
        assert later.source == "re-extracted" and later.path == running.path
