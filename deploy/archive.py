"""Deterministic zips, written fast, and extraction that cannot escape its folder.

Why we write the ZIP format ourselves instead of using ``zipfile``: the layer zip is the
slowest step of a build, and ``zipfile`` compresses one member at a time on one core, with
whatever zlib the machine has. libdeflate (pinned, see ``DEFLATE_VERSION``) releases the GIL, so
compressing members in a thread pool and writing the headers with ``struct`` uses every core
while keeping full control of every byte we emit.

Determinism rules (the same content gives the same bytes on any host):

- members sorted by archive name; no directory entries (Lambda extracts files into
  ``/opt`` and creates parent folders itself, and empty folders carry nothing Python uses);
- one timestamp for every member: ``SOURCE_DATE_EPOCH`` (https://reproducible-builds.org)
  when set, else 1980-01-01 00:00:00, the earliest date a ZIP can hold; always UTC;
- modes normalised to 0644 / 0755 (any exec bit), regular files only: symlinks are stored
  as the file they point to, because Lambda's layer extraction does not promise to keep them;
- no extra fields, no comments, "made by" Unix; a member is stored (method 0) when its name
  says it is compressed already (``.gz``, ``.png``, ``.whl``…), else when deflate does not
  make it smaller: a choice that depends on its name and bytes only;
- one deflate implementation everywhere: the pinned libdeflate, not the machine's zlib.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import stat
import struct
import tempfile
import time
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import deflate

from deploy.errors import BuildError

#: 1980-01-01T00:00:00Z, the first instant a DOS timestamp can express.
ZIP_EPOCH = 315_532_800
#: 2107-12-31T23:59:58Z, the last one.
_ZIP_MAX_EPOCH = 4_354_819_198

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")
_LOCAL_SIG = 0x04034B50
_CENTRAL_SIG = 0x02014B50
_END_SIG = 0x06054B50
_VERSION = 20  # 2.0: deflate; what unzip and Lambda expect
_MADE_BY_UNIX = (3 << 8) | _VERSION
_UTF8_FLAG = 0x800
_STORED, _DEFLATED = 0, 8
_ZIP32_MAX = 0xFFFFFFFF
_ZIP32_MAX_ENTRIES = 0xFFFF

#: The ``deflate`` package (libdeflate), pinned in pyproject.toml. A zip's bytes depend on the
#: deflate implementation: the machine's zlib would make them depend on the machine (Linux
#: distributions ship zlib 1.2, 1.3 or zlib-ng, which deflate differently). libdeflate's output
#: is the same on every platform for one version ("no version of libdeflate has ever been
#: non-deterministic", its author in ebiggers/libdeflate#400) but may change between versions:
#: bump identity.FORMAT_VERSION with it (a test keeps this, pyproject and the installed package
#: in step). It also deflates this project's layer at level 1 in half the time zlib's level 1
#: takes, 4% smaller.
DEFLATE_VERSION = "0.9.0"
#: libdeflate's levels; 1 is its fastest, 12 its smallest.
MAX_LEVEL = 12

#: Bytes of source read into memory at once across in-flight compressions.
_WINDOW_BYTES = 256 * 1024 * 1024

_SKIP_DIRS = frozenset({"__pycache__"})
#: Names of compressed formats: deflate cannot shrink them, and trying costs the time of a member
#: that can shrink. botocore alone ships 958 ``.gz`` files (15.6 MB): deflating them saved 11 kB
#: and cost 0.24 CPU-seconds, a tenth of a cold layer build's. Lower case; matched case-blind.
STORED_SUFFIXES = (
    ".gz", ".tgz", ".bz2", ".xz", ".lzma", ".zst", ".zip", ".whl", ".jar", ".egg", ".7z",
    ".png", ".jpg", ".jpeg", ".gif", ".webp", ".woff", ".woff2",
)  # fmt: skip
_SKIP_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One file of an archive: its name inside the zip and where its bytes come from.

    ``data`` lets a build add a generated file (a manifest) without
    writing it to disk first; otherwise the bytes are read from ``source`` at write time.
    """

    name: str
    source: Path | None = None
    data: bytes | None = None
    mode: int = 0o644
    size: int | None = None  # the source's size when collected (collect fills it; None: not known)
    # The source's (inode, size, mtime_ns, ctime_ns) when collected: a later collect that finds
    # another status is looking at another file (see Precompressor). None: not known.
    status: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        if (self.source is None) == (self.data is None):
            raise BuildError(f"archive entry {self.name!r} needs exactly one of source or data")
        _check_member_name(self.name)

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.source is not None
        try:
            return self.source.read_bytes()
        except OSError as exc:
            raise BuildError(f"cannot read {self.source} for archive member {self.name}: {exc}") from None


@dataclass(frozen=True, kw_only=True)
class ZipResult:
    path: Path
    sha256: str
    zipped_size: int
    unzipped_size: int
    entries: int


def normalise_mode(mode: int) -> int:
    """0755 when any exec bit is set, else 0644: umask and checkout quirks must not leak into the zip."""
    return 0o755 if mode & 0o111 else 0o644


def _check_member_name(name: str) -> None:
    parts = name.split("/")
    if not name or name.startswith("/") or "\\" in name or "\x00" in name or any(p in ("", ".", "..") for p in parts):
        raise BuildError(f"invalid archive member name {name!r}")


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _skipped(name: str) -> bool:
    return name.endswith(_SKIP_SUFFIXES)


def collect(
    root: Path,
    *,
    prefix: str = "",
    exclude: Callable[[str], bool] | None = None,
    allowed_root: Path | None = None,
    keep_bytecode: bool = False,
) -> list[Entry]:
    """Walk ``root`` into sorted entries named ``prefix + relative/posix/path``.

    ``exclude`` gets the path relative to ``root`` (files and folders; an excluded folder
    is not entered). Bytecode is dropped unless ``keep_bytecode``: a ``.pyc`` found in a
    tree is usually the developer's (timestamped, for their Python); only the build's own
    deterministic bytecode (deploy/bytecode.py) is kept.
    """
    root = Path(root)
    if not root.is_dir():
        raise BuildError(f"cannot archive {root}: not a directory")
    real_root = root.resolve()
    allowed = allowed_root.resolve() if allowed_root is not None else real_root
    if prefix and not prefix.endswith("/"):
        raise BuildError(f"archive prefix {prefix!r} must end with '/'")
    entries: list[Entry] = []
    for rel, source, st in _walk(root, "", allowed, exclude, {real_root}, keep_bytecode):
        entries.append(_stat_entry(prefix + rel, source, st))
    entries.sort(key=lambda e: e.name)
    return entries


def file_entry(name: str, source: Path) -> Entry:
    """The entry ``collect`` would make for one regular file it found at ``source``."""
    try:
        st = source.stat()
    except OSError as exc:
        raise BuildError(f"cannot read {source} for archive member {name}: {exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise BuildError(f"{name} is not a regular file (socket, fifo or device); cannot archive it")
    return _stat_entry(name, source, st)


def _stat_entry(name: str, source: Path, st: os.stat_result) -> Entry:
    return Entry(name=name, source=source, mode=normalise_mode(st.st_mode), size=st.st_size, status=_status(st))


def _walk(
    folder: Path,
    rel_folder: str,
    allowed: Path,
    exclude: Callable[[str], bool] | None,
    active: set[Path],
    keep_bytecode: bool = False,
) -> Iterator[tuple[str, Path, os.stat_result]]:
    try:
        children = sorted(os.scandir(folder), key=lambda d: d.name)
    except OSError as exc:
        raise BuildError(f"cannot list {folder}: {exc}") from None
    for child in children:
        rel = f"{rel_folder}{child.name}"
        if not keep_bytecode and (child.name in _SKIP_DIRS or _skipped(child.name)):
            continue
        if exclude is not None and exclude(rel):
            continue
        path = Path(child.path)
        if child.is_symlink():
            target = Path(os.path.realpath(path))
            if not _inside(target, allowed):
                raise BuildError(
                    f"symlink {rel} points outside the archived tree, to {path.readlink()} ({target})",
                    hint="copy the file into the tree or remove the link",
                )
            if not target.exists():
                raise BuildError(f"symlink {rel} is broken (points to {path.readlink()})")
            if target.is_dir():
                if target in active:
                    raise BuildError(f"symlink {rel} makes a loop (points to {target})")
                yield from _walk(target, rel + "/", allowed, exclude, active | {target}, keep_bytecode)
            elif target.is_file():
                yield rel, target, target.stat()
            else:
                raise BuildError(f"{rel} is not a regular file (socket, fifo or device); cannot archive it")
        # The directory entry answers the type without a stat call; one stat gives mode and size.
        elif child.is_dir():
            yield from _walk(path, rel + "/", allowed, exclude, active, keep_bytecode)
        elif child.is_file():
            yield rel, path, child.stat()
        else:
            raise BuildError(f"{rel} is not a regular file (socket, fifo or device); cannot archive it")


def _dos_datetime(epoch: int) -> tuple[int, int]:
    t = time.gmtime(epoch)
    dos_time = (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2)
    dos_date = ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday
    return dos_time, dos_date


def resolve_epoch(epoch: int | None = None, env: dict[str, str] | None = None) -> int:
    """The timestamp every member gets: ``epoch``, else SOURCE_DATE_EPOCH, else 1980-01-01, clamped to ZIP's range."""
    if epoch is None:
        raw = (os.environ if env is None else env).get("SOURCE_DATE_EPOCH", "").strip()
        if raw:
            if not re.fullmatch(r"\d+", raw):
                raise BuildError(f"SOURCE_DATE_EPOCH={raw!r} is not a number of seconds")
            epoch = int(raw)
        else:
            epoch = ZIP_EPOCH
    return min(max(epoch, ZIP_EPOCH), _ZIP_MAX_EPOCH)


@dataclass(frozen=True, kw_only=True)
class _Member:
    raw_size: int
    crc: int
    method: int
    payload: bytes | bytearray  # libdeflate answers a bytearray; written as it is


def _compress(entry: Entry, level: int) -> _Member:
    raw = entry.read()
    crc = zlib.crc32(raw)
    if entry.name.lower().endswith(STORED_SUFFIXES):
        return _Member(raw_size=len(raw), crc=crc, method=_STORED, payload=raw)
    deflated = deflate.deflate_compress(raw, level) if level else raw
    if len(deflated) >= len(raw):
        return _Member(raw_size=len(raw), crc=crc, method=_STORED, payload=raw)
    return _Member(raw_size=len(raw), crc=crc, method=_DEFLATED, payload=deflated)


#: Members compressed per task: a future per file cost more in locks and GIL hand-offs than
#: deflating a small file does (a layer holds 4,000 files, most of them a few kB).
_BATCH_BYTES = 1 << 20
_BATCH_FILES = 64


def _compress_batch(entries: Sequence[Entry], level: int) -> list[_Member]:
    return [_compress(entry, level) for entry in entries]


class _Slot:
    """One member of a batch compressed by one task."""

    __slots__ = ("_future", "_index")

    def __init__(self, future: Future[list[_Member]], index: int) -> None:
        self._future = future
        self._index = index

    def result(self) -> _Member:
        return self._future.result()[self._index]

    def cancel(self) -> None:
        self._future.cancel()


@dataclass(slots=True)
class _Pending:
    """A member ``write_zip`` waits for: its slot is None until its batch is submitted."""

    entry: Entry
    slot: _Slot | None
    cost: int  # bytes it holds in the memory window


def _status(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _source_status(entry: Entry) -> tuple[int, int, int, int] | None:
    """The status ``collect`` recorded, else the file's status now."""
    if entry.source is None:
        return None
    if entry.status is not None:
        return entry.status
    try:
        return _status(entry.source.stat())
    except OSError:
        return None


class Precompressor:
    """Members compressed ahead of ``write_zip``, while the build does other work.

    A layer build spends 0.4 s auditing (one thread, mostly holding the GIL) and compiling
    (another process) before it zips, and zipping is deflate, which releases the GIL: the two
    overlap on two cores. Each member is compressed from its file's bytes as they are when it
    is read; ``write_zip`` uses the result only when the file's status (inode, size, mtime and
    ctime in nanoseconds) in the entry it is given (the final ``collect``'s) is the one recorded
    when it was submitted, else it compresses the file again, so a file rewritten in between
    (a RECORD gaining ``.pyc`` rows) is never stale. The statuses come from ``collect``'s own
    stat calls: no file is stat'ed again here, so a caller that hands ``write_zip`` entries from
    an earlier walk must stat again each file it changed since (the layer build re-stats its
    RECORDs). The zip's bytes are the same either way.
    """

    def __init__(self, level: int, *, workers: int | None = None) -> None:
        self.level = level
        self._pool = ThreadPoolExecutor(max_workers=workers or _default_workers())
        self._ahead: dict[str, tuple[tuple[int, ...], Path, _Slot]] = {}

    def submit(self, entries: Sequence[Entry]) -> None:
        batch: list[tuple[Entry, tuple[int, ...]]] = []
        size = 0
        for entry in entries:
            status = _source_status(entry)
            if status is None or entry.source is None:
                continue
            batch.append((entry, status))
            size += _entry_cost(entry)
            if size >= _BATCH_BYTES or len(batch) >= _BATCH_FILES:
                self._submit(batch)
                batch, size = [], 0
        self._submit(batch)

    def _submit(self, batch: Sequence[tuple[Entry, tuple[int, ...]]]) -> None:
        if not batch:
            return
        future = self._pool.submit(_compress_batch, [entry for entry, _ in batch], self.level)
        for index, (entry, status) in enumerate(batch):
            assert entry.source is not None
            self._ahead[entry.name] = (status, entry.source, _Slot(future, index))

    def take(self, entry: Entry, level: int) -> _Slot | None:
        """The member compressed ahead for ``entry``, if its file has not changed since."""
        found = self._ahead.pop(entry.name, None)
        if found is None or level != self.level:
            return None
        status, source, slot = found
        if source != entry.source or _source_status(entry) != status:
            return None  # its batch's other members may still be taken: nothing is cancelled
        return slot

    def close(self) -> None:
        for _, _, slot in self._ahead.values():
            slot.cancel()
        self._ahead.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Precompressor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _entry_cost(entry: Entry) -> int:
    if entry.data is not None:
        return len(entry.data)
    if entry.size is not None:
        return entry.size
    assert entry.source is not None
    try:
        return entry.source.stat().st_size
    except OSError:
        return 0


class _HashingWriter:
    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.digest = hashlib.sha256()
        self.offset = 0

    def write(self, data: bytes | bytearray) -> None:
        self.fh.write(data)
        self.digest.update(data)
        self.offset += len(data)


def write_zip(
    entries: Sequence[Entry],
    dest: Path,
    *,
    epoch: int | None = None,
    compresslevel: int = 6,
    workers: int | None = None,
    ahead: Precompressor | None = None,
) -> ZipResult:
    """Write ``entries`` to ``dest`` deterministically; ``dest`` appears only when complete.

    The zip is written to a temporary file beside ``dest`` and renamed over it at the end;
    any exception (KeyboardInterrupt included) removes the temporary file, so a later run
    never finds a half-written zip under the name it trusts.
    """
    dest = Path(dest)
    ordered = sorted(entries, key=lambda e: e.name)
    for first, second in itertools.pairwise(ordered):
        if first.name == second.name:
            raise BuildError(f"archive member {first.name} appears twice ({first.source} and {second.source})")
    if len(ordered) > _ZIP32_MAX_ENTRIES:
        raise BuildError(
            f"{dest.name}: {len(ordered)} files need ZIP64, which this writer does not produce",
            hint="Lambda's 250 MB unzipped limit makes such an archive undeployable anyway",
        )
    if not 0 <= compresslevel <= MAX_LEVEL:
        raise BuildError(f"compresslevel must be 0..{MAX_LEVEL}, got {compresslevel}")
    dos_time, dos_date = _dos_datetime(resolve_epoch(epoch))
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            out = _HashingWriter(fh)
            unzipped = _write_members(ordered, out, dos_time, dos_date, compresslevel, workers, dest, ahead)
        # mkstemp creates 0600; an artifact is meant to be read by CI steps and other users.
        tmp.chmod(0o644)
        tmp.replace(dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return ZipResult(
        path=dest,
        sha256=out.digest.hexdigest(),
        zipped_size=out.offset,
        unzipped_size=unzipped,
        entries=len(ordered),
    )


def _default_workers() -> int:
    """One thread per usable core: compression is CPU-bound, extra threads only contend."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _write_members(
    ordered: Sequence[Entry],
    out: _HashingWriter,
    dos_time: int,
    dos_date: int,
    level: int,
    workers: int | None,
    dest: Path,
    ahead: Precompressor | None = None,
) -> int:
    central: list[bytes] = []
    unzipped = 0
    pool = ThreadPoolExecutor(max_workers=workers or _default_workers())
    pending: deque[_Pending] = deque()
    batch: list[_Pending] = []
    batch_bytes = 0
    in_flight = 0
    upcoming = iter(ordered)

    def submit_batch() -> None:
        nonlocal batch, batch_bytes
        if batch:
            future = pool.submit(_compress_batch, [item.entry for item in batch], level)
            for index, item in enumerate(batch):
                item.slot = _Slot(future, index)
            batch, batch_bytes = [], 0

    try:
        exhausted = False
        while True:
            # Keep every core busy but bound memory: schedule ahead until the window is full.
            while not exhausted and (not pending or in_flight < _WINDOW_BYTES):
                entry = next(upcoming, None)
                if entry is None:
                    exhausted = True
                    break
                early = ahead.take(entry, level) if ahead is not None else None
                if early is not None:
                    pending.append(_Pending(entry, early, 0))
                    continue
                item = _Pending(entry, None, _entry_cost(entry))
                pending.append(item)
                batch.append(item)
                batch_bytes += item.cost
                in_flight += item.cost
                if batch_bytes >= _BATCH_BYTES or len(batch) >= _BATCH_FILES:
                    submit_batch()
            if not pending:
                break
            if pending[0].slot is None:  # about to wait on a member whose batch is still being filled
                submit_batch()
            item = pending.popleft()
            entry = item.entry
            assert item.slot is not None
            member = item.slot.result()
            in_flight -= item.cost
            offset = out.offset
            if member.raw_size > _ZIP32_MAX or len(member.payload) > _ZIP32_MAX or offset > _ZIP32_MAX:
                raise BuildError(f"{dest.name}: member {entry.name} needs ZIP64, which this writer does not produce")
            name = entry.name.encode("utf-8")
            flags = _UTF8_FLAG if not entry.name.isascii() else 0
            # The local header and the central directory record repeat the same fields (APPNOTE 4.3.7, 4.3.12):
            # version needed, flags, method, time, date, crc, both sizes, name length.
            shared = (
                _VERSION,
                flags,
                member.method,
                dos_time,
                dos_date,
                member.crc,
                len(member.payload),
                member.raw_size,
                len(name),
            )
            out.write(_LOCAL.pack(_LOCAL_SIG, *shared, 0))
            out.write(name)
            out.write(member.payload)
            mode = ((stat.S_IFREG | normalise_mode(entry.mode)) << 16) & 0xFFFFFFFF
            central.append(_CENTRAL.pack(_CENTRAL_SIG, _MADE_BY_UNIX, *shared, 0, 0, 0, 0, mode, offset) + name)
            unzipped += member.raw_size
    finally:
        for item in pending:
            if item.slot is not None:
                item.slot.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
    cd_offset = out.offset
    for record in central:
        out.write(record)
    cd_size = out.offset - cd_offset
    if cd_offset > _ZIP32_MAX or cd_size > _ZIP32_MAX:
        raise BuildError(f"{dest.name} needs ZIP64 (over 4 GiB), which this writer does not produce")
    out.write(_END.pack(_END_SIG, 0, 0, len(central), len(central), cd_size, cd_offset, 0))
    return unzipped


def zip_tree(
    root: Path,
    dest: Path,
    *,
    prefix: str = "",
    exclude: Callable[[str], bool] | None = None,
    epoch: int | None = None,
) -> ZipResult:
    return write_zip(collect(root, prefix=prefix, exclude=exclude), dest, epoch=epoch)


_DRIVE = re.compile(r"^[A-Za-z]:")


def _member_problem(info: zipfile.ZipInfo, dest: Path) -> str | None:
    name = info.filename
    if not name or "\x00" in name:
        return "has an empty or NUL name"
    if name.startswith(("/", "\\")):
        return "is an absolute path"
    if _DRIVE.match(name):
        return "starts with a drive letter"
    if any(part == ".." for part in re.split(r"[/\\]", name)):
        return "has a '..' component"
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        return "is a symlink"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return f"is a special file (mode {oct(info.external_attr >> 16)})"
    target = Path(os.path.realpath(dest / name))
    if not _inside(target, dest):
        return f"would be written outside {dest} (to {target})"
    return None


def _file_folder_clash(infos: Sequence[zipfile.ZipInfo]) -> str | None:
    """A path the zip names both as a file and as a folder (``a`` and ``a/b``), or None."""
    files = {info.filename for info in infos if not info.is_dir()}
    folders = {info.filename.rstrip("/") for info in infos if info.is_dir()}
    for info in infos:
        parts = info.filename.rstrip("/").split("/")
        folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
    both = sorted(files & folders)
    return both[0] if both else None


def safe_extract(zip_path: Path, dest: Path, *, max_unzipped: int | None = None) -> list[str]:
    """Extract a zip for the verify sandbox, refusing anything that could escape ``dest``.

    Every member is checked before the first byte is written, so a rejected zip leaves
    ``dest`` untouched. ``max_unzipped`` refuses archives whose declared sizes exceed it
    (a deployable layer or function is at most Lambda's 250 MB anyway).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    dest = dest.resolve()
    try:
        zf = zipfile.ZipFile(zip_path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise BuildError(f"cannot open {zip_path}: {exc}") from None
    with zf:
        infos = zf.infolist()
        problems = [f"{info.filename!r} {why}" for info in infos if (why := _member_problem(info, dest)) is not None]
        if problems:
            raise BuildError(f"refusing to extract {zip_path}: member " + "; member ".join(problems))
        # Declared sizes are binding: zipfile stops at file_size and fails the CRC of a member that lies.
        total = sum(info.file_size for info in infos)
        if max_unzipped is not None and total > max_unzipped:
            raise BuildError(f"refusing to extract {zip_path}: {total} bytes unzipped exceeds {max_unzipped}")
        clash = _file_folder_clash(infos)
        if clash is not None:
            raise BuildError(f"refusing to extract {zip_path}: {clash!r} is both a file and a folder in the zip")
        names: list[str] = []
        for info in infos:
            target = dest / info.filename
            try:
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    target.chmod(0o755)
                    names.append(info.filename)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, target.open("wb") as dst:
                    while block := src.read(1 << 20):
                        dst.write(block)
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                # An earlier zip in the same folder (a layer before this one) made the other kind.
                raise BuildError(
                    f"cannot extract {info.filename} from {zip_path}: a file and a folder clash at "
                    f"{target.relative_to(dest)} (an earlier archive extracted into {dest} made the other kind)"
                ) from None
            except (OSError, zipfile.BadZipFile, zlib.error) as exc:
                raise BuildError(f"cannot extract {info.filename} from {zip_path}: {exc}") from None
            target.chmod(normalise_mode(info.external_attr >> 16))
            names.append(info.filename)
    return names
