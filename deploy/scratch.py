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

Only an installer that merges into existing folders may use it (uv does; ``pip --target``
skips a folder that already exists, see ``Installer.merges_into_target``). Empty folders left
from an older package set hold no file, so nothing of them reaches the zip, the audit or RECORD.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from deploy.errors import BuildError

SPARE = "spare-tree"
#: Folders an installer reads as "this package is installed".
_METADATA_SUFFIXES = (".dist-info", ".data", ".egg-info")


def claim(spare: Path, dest: Path) -> bool:
    """Move the spare tree to ``dest`` (which must not exist) and clear it; else create ``dest``
    empty. True when a spare tree was used."""
    try:
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
                f"cannot empty the spare build folder {spare} ({exc})", hint=f"remove {spare.parent} and build again"
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
