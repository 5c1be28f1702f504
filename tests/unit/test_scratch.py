"""deploy.scratch: the folders a layer build leaves for the next one, never shared, never trusted."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from deploy import scratch
from deploy.errors import BuildError


def _tree(root: Path) -> None:
    for rel in (
        "python/pkg/sub/mod.py",
        "python/pkg/__pycache__/mod.cpython-312.pyc",
        "python/pkg-1.0.dist-info/RECORD",
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)


def test_given_back_as_folders_only_and_claimed_once(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("theirs")
    spare, first, second = tmp_path / "spare", tmp_path / "a" / "root", tmp_path / "b" / "root"
    first.parent.mkdir()
    second.parent.mkdir()

    assert scratch.claim(spare, first) is False and first.is_dir() and not any(first.iterdir())
    _tree(first)
    (first / "python" / "dirlink").symlink_to(outside, target_is_directory=True)
    (first / "python" / "filelink").symlink_to(outside / "keep.txt")
    scratch.give_back(first, spare)

    assert not first.exists()
    left = sorted(p.relative_to(spare).as_posix() for p in spare.rglob("*"))
    assert left == ["python", "python/pkg", "python/pkg/__pycache__", "python/pkg/sub"]
    assert (outside / "keep.txt").read_text() == "theirs"  # links unlinked, never followed

    assert scratch.claim(spare, first) is True and (first / "python" / "pkg" / "sub").is_dir()
    assert scratch.claim(spare, second) is False and not any(second.iterdir())  # taken: starts empty

    _tree(second)
    scratch.give_back(second, spare)
    _tree(first)
    scratch.give_back(first, spare)  # the second build came back first: its tree stays the spare
    assert (first / "python" / "pkg" / "sub").is_dir() and not (first / "python" / "pkg" / "sub" / "mod.py").exists()
    assert sorted(p.name for p in spare.glob("python/*")) == ["pkg"]


def test_a_claimed_tree_is_cleared_again_before_use(tmp_path: Path) -> None:
    spare, root = tmp_path / "spare", tmp_path / "root"
    _tree(spare)  # as if someone had put files there
    assert scratch.claim(spare, root) is True
    assert not [p for p in root.rglob("*") if not p.is_dir()]
    assert not list(root.glob("python/*.dist-info"))


def test_a_spare_tree_that_cannot_be_cleared_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spare, root = tmp_path / "spare", tmp_path / "root"
    _tree(spare)

    def refuse(folder: Path) -> None:
        raise PermissionError(13, "Permission denied", str(folder))

    monkeypatch.setattr(scratch, "clear", refuse)
    assert scratch.claim(spare, root) is False
    monkeypatch.undo()
    assert root.is_dir() and not any(root.iterdir())  # started empty; the bad tree is gone
    assert not spare.exists()


def test_a_spare_tree_that_cannot_be_removed_either_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spare, root = tmp_path / "spare", tmp_path / "root"
    _tree(spare)
    monkeypatch.setattr(scratch, "clear", lambda folder: (_ for _ in ()).throw(PermissionError(13, "denied")))
    monkeypatch.setattr(scratch.shutil, "rmtree", lambda *a, **k: None)
    with pytest.raises(BuildError, match=r"cannot empty the spare build folder .*spare"):
        scratch.claim(spare, root)


def _killed_build(parent: Path, name: str, *, age: float) -> Path:
    """What a build killed with SIGKILL leaves: its folder, its tree, files in it."""
    folder = parent / name
    _tree(folder / "root")
    (folder / "requirements.txt").write_text("six==1.17.0\n")
    stamp = time.time() - age
    os.utime(folder, (stamp, stamp))
    return folder


def test_reap_removes_what_killed_builds_left_and_keeps_the_tree_as_spare(tmp_path: Path) -> None:
    old = _killed_build(tmp_path, "layer-aaaa-1", age=scratch.STALE_AFTER_S + 60)
    also_old = _killed_build(tmp_path, "layer-bbbb-2", age=scratch.STALE_AFTER_S + 60)
    young = _killed_build(tmp_path, "layer-cccc-3", age=5)  # may be a build between mkdtemp and hold
    running = _killed_build(tmp_path, "layer-dddd-4", age=scratch.STALE_AFTER_S + 60)
    other = tmp_path / "not-a-build"
    other.mkdir()
    os.utime(other, (0, 0))
    fd = scratch.hold(running)  # another descriptor, so another lock: as another process's would be
    try:
        assert scratch.reap(tmp_path) == ["layer-aaaa-1", "layer-bbbb-2"]
    finally:
        os.close(fd)
    assert not old.exists() and not also_old.exists()
    assert young.is_dir() and running.is_dir() and other.is_dir()
    spare = tmp_path / scratch.SPARE
    assert (spare / "python" / "pkg" / "sub").is_dir()
    assert not [p for p in spare.rglob("*") if not p.is_dir()]
    assert scratch.reap(tmp_path, now=time.time() + scratch.STALE_AFTER_S + 10) == ["layer-cccc-3", "layer-dddd-4"]


def test_a_link_where_a_tree_should_be_is_never_cleared_through(tmp_path: Path) -> None:
    """A spare tree (or a killed build's tree) that is a link points at someone else's files."""
    victim = tmp_path / "victim"
    _tree(victim)
    parent = tmp_path / "tmp"
    parent.mkdir()
    (parent / scratch.SPARE).symlink_to(victim, target_is_directory=True)
    root = tmp_path / "root"
    assert scratch.claim(parent / scratch.SPARE, root) is False
    assert root.is_dir() and not root.is_symlink() and not any(root.iterdir())
    assert (parent / scratch.SPARE).is_symlink()  # left as found, not used

    (parent / scratch.SPARE).unlink()
    killed = parent / "layer-old-1"
    killed.mkdir()
    (killed / "root").symlink_to(victim, target_is_directory=True)
    os.utime(killed, (0, 0))
    assert scratch.reap(parent) == ["layer-old-1"]
    assert not (parent / scratch.SPARE).exists()
    assert sorted(p.relative_to(victim).as_posix() for p in victim.rglob("*") if p.is_file()) == [
        "python/pkg-1.0.dist-info/RECORD",
        "python/pkg/__pycache__/mod.cpython-312.pyc",
        "python/pkg/sub/mod.py",
    ]


def test_without_flock_nothing_is_reaped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Some NFS and FUSE mounts have no flock: a build still runs, and no folder is taken for stale."""
    _killed_build(tmp_path, "layer-aaaa-1", age=scratch.STALE_AFTER_S + 60)

    def no_flock(fd: int, operation: int) -> None:
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(scratch.fcntl, "flock", no_flock)
    os.close(scratch.hold(tmp_path / "layer-aaaa-1"))
    assert scratch.reap(tmp_path) == [] and (tmp_path / "layer-aaaa-1").is_dir()


def test_a_folder_that_could_not_be_removed_is_not_reported_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _killed_build(tmp_path, "layer-aaaa-1", age=scratch.STALE_AFTER_S + 60)
    monkeypatch.setattr(scratch.shutil, "rmtree", lambda *args, **kwargs: None)
    assert scratch.reap(tmp_path) == []
