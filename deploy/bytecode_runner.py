"""Compile a list of ``.py`` files to ``.pyc`` with the interpreter that runs this file.

Executed by the runtime's own interpreter (``python3.12 -S -s bytecode_runner.py spec.json``,
on the host or inside the Lambda image), so the bytecode matches Lambda's minor version.
Standard library only, and Python 3.9-compatible: it also runs in older runtime images.

The spec (JSON) holds ``root`` (sources), ``out`` (where each folder's ``__pycache__`` goes;
the same as ``root`` for the layer), ``prefix`` (the path the file has on Lambda, which the
code objects record for tracebacks instead of the build machine's path), ``files`` (paths
relative to ``root``) and ``workers``. One JSON document on stdout: the interpreter's version
and cache tag, and the files that did not compile with the reason.

Deterministic output: ``unchecked-hash`` pycs carry a hash of the source, not its mtime, and
Lambda never checks them (its file systems are read-only anyway); the caller sets
``PYTHONHASHSEED=0`` so frozenset constants marshal in one order (CPython 3.11+ sorts them
itself, bpo-37596; python3.9/3.10 runtimes need the fixed seed); files are
compiled in the sorted order they are given, in forked workers that inherit that seed.

``cache`` (optional): a folder of earlier results (``deploy.content_cache``'s ``pyc`` kind).
A file's entry is named by the SHA-256 of this runner's own text, the interpreter's exact
version, the recorded path and the source bytes: everything that decides the ``.pyc``, so a
hit is the file a compile would write; it is used only if its 16-byte header is this
interpreter's for exactly these source bytes (else recompiled and replaced). The lookups run
here, in the workers, in parallel and beside the caller's audit instead of competing with it
for one GIL.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from importlib._bootstrap_external import _code_to_hash_pyc  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any


def _cfile(out: str, rel: str) -> str:
    path = Path(out) / rel
    return str(path.parent / "__pycache__" / f"{path.stem}.{sys.implementation.cache_tag}.pyc")


def _key(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


#: The flags word of an ``unchecked-hash`` pyc (PEP 552): hash-based, not checked against the source.
_UNCHECKED_HASH = (0b01).to_bytes(4, "little")


def _header(source: bytes) -> bytes:
    """The 16 bytes every .pyc of ``source`` starts with, for this interpreter."""
    return importlib.util.MAGIC_NUMBER + _UNCHECKED_HASH + importlib.util.source_hash(source)


def _pyc(source: bytes, dfile: str) -> bytes:
    """What ``py_compile`` writes for ``unchecked-hash``, made from these very bytes.

    py_compile reads the file itself: had the cache keyed an entry by one read and stored the
    compile of a second (an editor saving in between), the entry would hold other code than its
    key says, for good. One read serves the key, the check of a hit and the compile."""
    code = compile(source, dfile, "exec", dont_inherit=True, optimize=0)
    # The same call py_compile makes (a private helper, stable since 3.7).
    return bytes(_code_to_hash_pyc(code, importlib.util.source_hash(source), False))


def _write(path: Path, data: bytes) -> None:
    """Atomically: a reader (or a crash) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink()
        raise


def _hit(entry: Path, cfile: Path, source: bytes) -> bool:
    """Link (or copy) the cached .pyc of ``source`` to ``cfile``. An entry whose header is not this
    interpreter's for exactly these bytes (damaged, cut short) is a miss: recompiled and replaced."""
    try:
        with entry.open("rb") as fh:
            if fh.read(16) != _header(source):
                return False
    except OSError:
        return False
    cfile.parent.mkdir(parents=True, exist_ok=True)
    try:
        # A hard link: no bytes copied. Nothing writes a .pyc of the build tree afterwards, and the
        # tree is deleted (unlinked) after zipping, which leaves the entry as it was.
        os.link(entry, cfile)
    except OSError:  # another file system, or links not allowed: copy
        try:
            cfile.write_bytes(entry.read_bytes())
        except OSError:
            return False
    with contextlib.suppress(OSError):
        os.utime(entry)  # recently used: the last to be pruned
    return True


def _entry(spec: dict[str, Any], dfile: str, source: bytes) -> Path:
    """The cache entry for ``source`` compiled as ``dfile`` (see the module docstring for the key)."""
    entry_key = _key(spec["salt"].encode(), dfile.encode(), source)
    return Path(spec["cache"]) / entry_key[:2] / entry_key


def _cached_here(spec: dict[str, Any], rel: str) -> bool:
    """Whether ``rel``'s .pyc came from the cache (any problem: no, and the compile will say)."""
    try:
        source = (Path(spec["root"]) / rel).read_bytes()
    except OSError:
        return False
    entry = _entry(spec, spec["prefix"] + rel, source)
    return _hit(entry, Path(_cfile(spec["out"], rel)), source)


def _compile_one(spec: dict[str, Any], rel: str) -> dict[str, str] | None:
    """Compile ``rel`` (a miss, when there is a cache: ``main`` took the hits) and store it in the
    cache under the key of the very bytes compiled; the error, if it does not compile."""
    cfile = Path(_cfile(spec["out"], rel))
    dfile = spec["prefix"] + rel
    try:
        source = (Path(spec["root"]) / rel).read_bytes()
    except OSError as exc:
        return {"file": rel, "error": f"{type(exc).__name__}: {exc}"}
    try:
        data = _pyc(source, dfile)
    except SyntaxError as exc:  # IndentationError, TabError, a NUL byte on 3.12+
        return {"file": rel, "error": f"{type(exc).__name__}: {exc.msg} (line {exc.lineno})"}
    except ValueError as exc:  # a NUL byte before 3.12
        return {"file": rel, "error": f"{type(exc).__name__}: {exc}"}
    _write(cfile, data)
    if spec.get("cache"):
        with contextlib.suppress(OSError):  # a full disk only costs a later build the compile
            _write(_entry(spec, dfile, source), data)
    return None


def _compile_chunk(job: tuple[dict[str, Any], list[str]]) -> list[dict[str, str]]:
    spec, files = job
    return [error for error in (_compile_one(spec, rel) for rel in files) if error is not None]


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    files: list[str] = list(spec.pop("files"))
    workers = max(1, int(spec.get("workers") or 1))
    version = ".".join(str(n) for n in sys.version_info[:3])
    runner = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    spec["salt"] = f"pyc-v1\0{runner}\0{sys.implementation.cache_tag}\0{version}"
    if spec.get("cache"):
        # Hits first, here: a warm rebuild is all hits (a read, a hash, a link each), cheaper than
        # starting the worker processes; only the misses go on to be compiled.
        files = [rel for rel in files if not _cached_here(spec, rel)]
    # Small contiguous chunks keep the workers evenly busy; the order inside each chunk stays sorted.
    size = max(1, min(64, len(files) // (workers * 8) or 1))
    chunks = [(spec, files[i : i + size]) for i in range(0, len(files), size)]
    errors: list[dict[str, str]] = []
    if workers == 1 or len(chunks) == 1:
        for chunk in chunks:
            errors += _compile_chunk(chunk)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for found in pool.map(_compile_chunk, chunks):
                errors += found
    json.dump({"version": version, "cache_tag": sys.implementation.cache_tag, "errors": errors}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
