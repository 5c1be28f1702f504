"""The folders of a layer build, left empty for the next build to install into.

A layer's install tree has 1,200 folders. Creating them all and deleting them again on every
build is not free, and on ext4 without a journal it is slow: allocating an inode skips every
inode freed in the last 30 seconds, each skip a buffer lookup (``recently_deleted`` in
fs/ext4/ialloc.c), so back-to-back builds spent most of uv's 0.5-1.0 s of install time in
``mkdir`` (measured with ``perf`` on this project's machines, where uv alone takes 0.08 s).

So a build that ends gives its tree back as folders only: every file is unlinked (they are
links into uv's and the ``.pyc`` cache, or the build's own small files), every ``*.dist-info``
and ``*.data`` folder removed (an installer must never see a package as installed), and the
emptied tree is renamed to ``.build/tmp/spare-tree``. The next build claims it with one
rename, so two builds at once never share it (the one that loses starts from an empty folder),
and clears it again before use: a tree that is not empty of files is never trusted.

A build holds an exclusive ``flock`` on its private folder while it runs. A build killed before
its cleanup (SIGKILL, out of memory) leaves its folder, and with it the spare tree; the next build
``reap``s folders that no build holds and that are older than ten minutes, and takes such a tree
back as its spare.

Only an installer that merges into existing folders may use it (uv does; ``pip --target``
skips a folder that already exists, see ``Installer.merges_into_target``). Empty folders left
from an older package set hold no file, so nothing of them reaches the zip, the audit or RECORD.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import time
from pathlib import Path

from deploy.errors import BuildError

SPARE = "spare-tree"
#: A build's private folder: ``<prefix><identity>-<random>`` under ``.build/tmp``.
WORK_PREFIX = "layer-"
#: A build folder no build holds is left alone this long after it was made: the moment between
#: ``mkdtemp`` and ``hold`` is not a killed build.
STALE_AFTER_S = 600.0
#: Folders an installer reads as "this package is installed".
_METADATA_SUFFIXES = (".dist-info", ".data", ".egg-info")


def claim(spare: Path, dest: Path) -> bool:
    """Move the spare tree to ``dest`` (which must not exist) and clear it; else create ``dest``
    empty. True when a spare tree was used."""
    try:
        # A link (or a file) there is not a tree this tool left: clearing through it would delete
        # what it points to. It is left alone, and not used.
        if not stat.S_ISDIR(os.lstat(spare).st_mode):
            dest.mkdir()
            return False
        spare.rename(dest)
    except OSError:  # none left, or another build took it first
        dest.mkdir()
        return False
    try:
        clear(dest)
    except OSError as exc:  # e.g. a folder someone made read-only: start empty instead
        shutil.rmtree(dest, ignore_errors=True)
        if dest.exists():
            raise BuildError(
                f"cannot empty the spare build folder {dest}, taken from {spare} ({exc})",
                hint=f"remove {dest} and build again",
            ) from None
        dest.mkdir()
        return False
    return True


def give_back(tree: Path, spare: Path) -> None:
    """Empty ``tree`` of files and make it the spare tree, unless another build gave one back
    first; then ``tree`` is left for its caller to delete."""
    try:
        clear(tree)
        tree.rename(spare)  # refused when spare exists and is not empty: the first one back stays
    except OSError:
        return


def clear(folder: Path) -> None:
    """Unlink every file and link under ``folder`` and remove package metadata folders; keep the rest.

    Links are unlinked, never followed: what a link points to is not part of the tree."""
    _clear(str(folder))


def _clear(folder: str) -> None:
    with os.scandir(folder) as scan:
        entries = list(scan)
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if entry.name.endswith(_METADATA_SUFFIXES):
                shutil.rmtree(entry.path)
            else:
                _clear(entry.path)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)  # noqa: PTH108 - a str from scandir


def hold(folder: Path) -> int:
    """Lock ``folder`` (an exclusive ``flock`` on it) for as long as the returned descriptor is
    open: ``reap`` never touches a folder a running build holds. The lock goes with the process."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    # A file system without flock (some NFS and FUSE mounts) fails ``reap``'s attempt the same
    # way, and ``reap`` then leaves every folder alone.
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def reap(parent: Path, *, now: float | None = None) -> list[str]:
    """Remove the build folders in ``parent`` that a killed build left (SIGKILL, out of memory: a
    build that can run its cleanup removes its own); return their names.

    A folder is left when a running build holds it (``hold``), or when it is younger than
    ``STALE_AFTER_S``. The first one removed gives its tree to the spare when there is none."""
    now = time.time() if now is None else now
    removed: list[str] = []
    try:
        with os.scandir(parent) as scan:
            candidates = [e for e in scan if e.name.startswith(WORK_PREFIX) and e.is_dir(follow_symlinks=False)]
    except OSError:
        return removed
    for entry in sorted(candidates, key=lambda e: e.name):
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < STALE_AFTER_S:
                continue
            fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a running build's (or no flock here: then nothing can be told apart)
            folder = Path(entry.path)
            root, spare = folder / "root", parent / SPARE
            if not root.is_symlink() and root.is_dir() and not os.path.lexists(spare):
                give_back(root, spare)
            shutil.rmtree(folder, ignore_errors=True)
            if not os.path.lexists(folder):
                removed.append(entry.name)
        finally:
            os.close(fd)
    return removed
