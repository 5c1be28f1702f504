"""Extracted trees, cached by content: a zip (or an ordered list of layer zips) with a given sha256 is
extracted once into ``.build/extracted/<key>/opt`` (or ``task``) and reused by ``verify --local``, the deployed
verify of the same run, and later deploys.

Why: extracting the 84 MB layer (about 8,000 files) took 1-2 s per verify run, twice per deploy, for
bytes that had not changed. Why reuse keeps verify's promise (it runs the exact deployed bytes):

- The key is the sha256 of the zip bytes, computed by the cache itself while it copies the zip into
  a private staging folder, and the tree is extracted from that copy: a zip rewritten between the
  caller's check and the extraction can never land under the wrong key.
- The tree is written in a staging folder, its record last, and renamed into place: an interrupted
  extraction leaves no folder that a lookup trusts.
- The record holds every entry's (path, mode, size, mtime_ns, ctime_ns, inode). Before every reuse
  the tree is walked and compared; any difference (a file edited, added, removed, chmod-ed, replaced,
  or edited and touched back to its old mtime: ``ctime`` cannot be set back) means the tree is set
  aside and extracted again. The sandbox still sees it read-only (the jail re-binds it so).

Bounded: after a miss only the ``keep`` most recently used entries stay. Several processes may share
the folder (two environments deployed from one checkout): an entry in use holds a shared ``flock`` on
its ``lock`` file and is never removed under its user; changes to which entries exist happen under
the folder's own ``.lock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from deploy.archive import safe_extract
from deploy.audit import LAMBDA_UNZIPPED_LIMIT
from deploy.errors import BuildError, VerifyError

#: A deploy uses two entries (the layer, the function code): keep this run's and the previous one's.
DEFAULT_KEEP = 4
RECORD_VERSION = 1
_RECORD = "record.json"
_LOCK = "lock"
_STAGING = ".staging-"
_TRASH = ".trash-"

Source = Literal["cached", "extracted", "re-extracted"]
#: The tree's folder inside its entry, named after where Lambda puts it (``/opt``, ``/var/task``), so the
#: sandbox's paths read like Lambda's: ``…/opt/python/lib/python3.12/site-packages``.
Layout = Literal["opt", "task"]


@dataclass(frozen=True, kw_only=True)
class ZipSource:
    """One zip to extract: what its bytes must hash to, a name for messages, and how to get its
    file (called only on a miss: a cached layer needs no download and no hashing)."""

    sha256: str  # hex
    what: str
    path: Callable[[], Path]


@dataclass(frozen=True, kw_only=True)
class Tree:
    """An extracted tree, held in use while its ``ExtractionCache.tree`` block runs."""

    path: Path
    key: str
    source: Source
    #: Why a cached tree was not trusted (``re-extracted`` only).
    why: str | None = None


def cache_key(sources: Sequence[ZipSource]) -> str:
    """A single zip's sha256; for several zips extracted in order into one folder (Lambda's layers
    in /opt, a later one overwriting an earlier one's files), the sha256 of their ordered list."""
    if len(sources) == 1:
        return sources[0].sha256
    joined = "\n".join(["layers", *(s.sha256 for s in sources)])
    return "m" + hashlib.sha256(joined.encode()).hexdigest()[1:]


Entry = tuple[str, int, int, int, int, int]


def snapshot(tree: Path) -> list[Entry]:
    """(relative path, mode, size, mtime_ns, ctime_ns, inode) of the tree and everything in it, sorted;
    links are not followed (``safe_extract`` writes none, so one appearing is a change)."""
    out: list[Entry] = []

    def add(rel: str, st: os.stat_result) -> None:
        out.append((rel, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))

    add(".", tree.lstat())
    pending = [("", tree)]
    while pending:
        prefix, folder = pending.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                rel = prefix + entry.name
                add(rel, st)
                if stat.S_ISDIR(st.st_mode):
                    pending.append((rel + "/", Path(entry.path)))
    out.sort()
    return out


def _changed(recorded: Sequence[Entry], now: Sequence[Entry]) -> str | None:
    """None when identical, else the first difference in words."""
    if recorded == now:
        return None
    before = {e[0]: e for e in recorded}
    after = {e[0]: e for e in now}
    for rel in sorted(before.keys() | after.keys()):
        if rel not in after:
            return f"{rel} was removed"
        if rel not in before:
            return f"{rel} was added"
        if before[rel] != after[rel]:
            return f"{rel} changed since it was extracted"
    return "its entries changed"


def _write_record(entry: Path, key: str, layout: Layout, sources: Sequence[ZipSource], tree: Path) -> None:
    record = {
        "version": RECORD_VERSION,
        "key": key,
        "layout": layout,
        "zips": [s.sha256 for s in sources],
        "entries": snapshot(tree),
    }
    (entry / _RECORD).write_text(json.dumps(record, separators=(",", ":")))


def _check(entry: Path, key: str, layout: Layout) -> str | None:
    """None when ``entry`` holds a complete, unchanged extraction of ``key``; else why not."""
    try:
        record = json.loads((entry / _RECORD).read_text())
    except FileNotFoundError:
        return "its record is missing (an interrupted extraction)"
    except (OSError, ValueError) as exc:
        return f"its record is unreadable ({exc})"
    if (
        not isinstance(record, dict)
        or record.get("version") != RECORD_VERSION
        or record.get("key") != key
        or record.get("layout") != layout
    ):
        return "its record is for another key, layout or version"
    try:
        now = snapshot(entry / layout)
    except OSError as exc:
        return f"its tree cannot be read ({exc})"
    return _changed([tuple(e) for e in record.get("entries", [])], now)


def _copy_hashing(source: ZipSource, original: Path, dest: Path) -> None:
    """Copy the zip into the private staging folder, refusing bytes that do not hash to the key."""
    digest = hashlib.sha256()
    try:
        with original.open("rb") as src, dest.open("wb") as out:
            while block := src.read(1 << 20):
                digest.update(block)
                out.write(block)
    except OSError as exc:
        raise VerifyError(f"{source.what}: cannot read its zip: {exc}") from None
    if digest.hexdigest() != source.sha256:
        raise VerifyError(
            f"{source.what}: its zip hashes to sha256 {digest.hexdigest()}, expected {source.sha256}; "
            "refusing to run it",
            hint="the zip changed after it was checked; rebuild or redeploy",
        )


@contextlib.contextmanager
def _flock(path: Path, mode: int) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, mode)
        yield fd
    finally:
        os.close(fd)


def _try_exclusive(path: Path) -> int | None:
    """An fd holding LOCK_EX on ``path``, or None when someone holds it (or it cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


@dataclass(frozen=True, kw_only=True)
class ExtractionCache:
    """Extracted trees by content under ``root``; see the module docstring for why reuse is safe."""

    root: Path
    keep: int = DEFAULT_KEEP

    def lambda_trees(
        self, held: contextlib.ExitStack[bool | None], *, layers: Sequence[ZipSource], code: ZipSource
    ) -> tuple[Tree, Tree]:
        """The two trees Lambda builds for a function, ``(opt, task)``, in use until ``held`` closes: the
        layers extracted in order into /opt (a later one overwrites an earlier one's files), the code
        into /var/task."""
        opt = held.enter_context(self.tree(layers, layout="opt"))
        task = held.enter_context(self.tree([code], layout="task"))
        return opt, task

    @contextlib.contextmanager
    def tree(self, sources: Sequence[ZipSource], *, layout: Layout) -> Iterator[Tree]:
        """The tree of ``sources`` extracted in order, in use (never pruned) until the block ends."""
        key = cache_key(sources)
        entry = self.root / key
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VerifyError(f"cannot create the extraction cache {self.root}: {exc}") from None
        with contextlib.ExitStack() as held:
            with self._changing():
                why = _check(entry, key, layout) if entry.exists() else None
                if entry.exists() and why is None:
                    held.enter_context(self._use(entry))
                    staging = None
                else:
                    # Created and held under the folder's lock, so a pruner never takes it for a leftover.
                    staging = Path(tempfile.mkdtemp(prefix=_STAGING, dir=self.root))
                    held.enter_context(_flock(staging / _LOCK, fcntl.LOCK_SH))
            if staging is None:
                yield Tree(path=entry / layout, key=key, source="cached")
                return
            try:
                _extract_all(staging, key, layout, sources)  # the slow part: outside the folder's lock
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            private = False
            with self._changing():
                if entry.exists() and _check(entry, key, layout) is None:
                    # Another process extracted the same bytes meanwhile: use its tree, drop ours.
                    shutil.rmtree(staging, ignore_errors=True)
                    held.enter_context(self._use(entry))
                    found = Tree(path=entry / layout, key=key, source="cached")
                elif entry.exists() and not self._set_aside(entry):
                    # A verify still running reads the untrusted entry by its path: it stays where it is,
                    # and this run uses its own extraction, removed when the run ends.
                    private = True
                    found = Tree(path=staging / layout, key=key, source="re-extracted", why=why)
                else:
                    staging.rename(entry)  # its lock file moves with it, still held by us
                    os.utime(entry / _LOCK)  # most recently used
                    self._prune(spare=entry)
                    found = Tree(path=entry / layout, key=key, source="re-extracted" if why else "extracted", why=why)
            try:
                yield found
            finally:
                if private:
                    shutil.rmtree(staging, ignore_errors=True)

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """Which entries exist changes only under this lock (short: never held while extracting)."""
        with _flock(self.root / ".lock", fcntl.LOCK_EX):
            yield

    @contextlib.contextmanager
    def _use(self, entry: Path) -> Iterator[None]:
        with _flock(entry / _LOCK, fcntl.LOCK_SH):
            os.utime(entry / _LOCK)  # most recently used: the last to be pruned
            yield

    def _set_aside(self, entry: Path) -> bool:
        """An untrusted entry leaves its key at once, and is deleted later; False (and left in place)
        while a running verify holds it: moving it would swap the tree under that run's paths."""
        fd = _try_exclusive(entry / _LOCK)
        if fd is None and (entry / _LOCK).exists():
            return False
        try:
            trash = Path(tempfile.mkdtemp(prefix=_TRASH, dir=self.root))
            entry.rename(trash / "entry")
        finally:
            if fd is not None:
                os.close(fd)
        return True

    def _prune(self, *, spare: Path) -> None:
        """Keep the ``keep`` most recently used entries; remove the rest, leftovers of interrupted
        extractions and set-aside entries, each only when nobody holds it."""
        entries: list[tuple[int, Path]] = []
        leftovers: list[Path] = []
        for path in self.root.iterdir():
            if path.name.startswith((_STAGING, _TRASH)):
                leftovers.append(path)
            elif path.is_dir() and path != spare:
                try:
                    used = (path / _LOCK).stat().st_mtime_ns
                except OSError:
                    used = 0
                entries.append((used, path))
        entries.sort(reverse=True)
        for _, path in entries[max(self.keep - 1, 0) :]:
            self._remove(path, path / _LOCK)
        for path in leftovers:
            lock = path / _LOCK if path.name.startswith(_STAGING) else path / "entry" / _LOCK
            self._remove(path, lock)

    def _remove(self, path: Path, lock: Path) -> None:
        if lock.parent.is_dir():
            fd = _try_exclusive(lock)
            if fd is None:
                return  # in use by a running verify (or an extraction still going): next time
            try:
                shutil.rmtree(path, ignore_errors=True)
            finally:
                os.close(fd)
        else:
            shutil.rmtree(path, ignore_errors=True)


def _extract_all(staging: Path, key: str, layout: Layout, sources: Sequence[ZipSource]) -> None:
    """Each zip copied (hashed) into ``staging`` and extracted in order into its tree; the record last."""
    tree = staging / layout
    tree.mkdir()
    for i, source in enumerate(sources):
        original = source.path()
        private = staging / f"zip-{i}" / original.name
        private.parent.mkdir()
        _copy_hashing(source, original, private)
        _extract(private, tree, source.what, shown_as=original)
        shutil.rmtree(private.parent)
    _write_record(staging, key, layout, sources, tree)


def _extract(zip_path: Path, dest: Path, what: str, *, shown_as: Path | None = None) -> None:
    # Lambda refuses anything bigger than 250 MB unzipped, so nothing bigger is worth writing here:
    # a small zip declaring gigabytes is refused before its first byte lands.
    try:
        safe_extract(zip_path, dest, max_unzipped=LAMBDA_UNZIPPED_LIMIT)
    except BuildError as exc:
        message = exc.message if shown_as is None else exc.message.replace(str(zip_path), str(shown_as))
        raise VerifyError(f"{what}: {message}", hint="the zip is unsafe or unreadable; nothing was run") from None
