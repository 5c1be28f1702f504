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
hit is the file a compile would write. The lookups run here, in the workers, in parallel
and beside the caller's audit instead of competing with it for one GIL.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import py_compile
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
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


def _cached(spec: dict[str, Any], rel: str, cfile: str) -> tuple[bool, Path | None]:
    """(True, None): the cached .pyc of ``rel`` was copied to ``cfile``; (False, entry): a miss, and
    where to store the compile; (False, None): the source is unreadable (the compile names it)."""
    try:
        source = (Path(spec["root"]) / rel).read_bytes()
    except OSError:
        return False, None
    entry_key = _key(spec["salt"].encode(), (spec["prefix"] + rel).encode(), source)
    entry = Path(spec["cache"]) / entry_key[:2] / entry_key
    Path(cfile).parent.mkdir(parents=True, exist_ok=True)
    try:
        # A hard link: no bytes copied. Nothing writes a .pyc of the build tree afterwards, and the
        # tree is deleted (unlinked) after zipping, which leaves the entry as it was.
        os.link(entry, cfile)
    except FileNotFoundError:
        return False, entry
    except OSError:  # another file system, or links not allowed: copy
        try:
            data = entry.read_bytes()
        except OSError:
            return False, entry
        Path(cfile).write_bytes(data)
    with contextlib.suppress(OSError):
        os.utime(entry)  # recently used: the last to be pruned
    return True, None


def _store(entry: Path, cfile: str) -> None:
    """Atomically (a reader never sees half an entry); a full disk only costs a later compile."""
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=str(entry.parent), prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(Path(cfile).read_bytes())
            Path(tmp).replace(entry)
        except BaseException:
            Path(tmp).unlink()
            raise
    except OSError:
        pass


def _compile_chunk(job: tuple[dict[str, Any], list[str]]) -> list[dict[str, str]]:
    spec, files = job
    errors = []
    for rel in files:
        cfile = _cfile(spec["out"], rel)
        entry = None
        if spec.get("cache"):
            hit, entry = _cached(spec, rel, cfile)
            if hit:
                continue
        try:
            py_compile.compile(
                str(Path(spec["root"]) / rel),
                cfile=cfile,
                dfile=spec["prefix"] + rel,
                doraise=True,
                optimize=0,
                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            )
        except py_compile.PyCompileError as exc:
            errors.append({"file": rel, "error": f"{exc.exc_type_name}: {_reason(exc)}"})
            continue
        except (OSError, ValueError) as exc:  # unreadable file, or a NUL byte in the source
            errors.append({"file": rel, "error": f"{type(exc).__name__}: {exc}"})
            continue
        if entry is not None:
            _store(entry, cfile)
    return errors


def _reason(exc: py_compile.PyCompileError) -> str:
    value = exc.exc_value
    if isinstance(value, SyntaxError):
        return f"{value.msg} (line {value.lineno})"
    return str(value)


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    files: list[str] = list(spec.pop("files"))
    workers = max(1, int(spec.get("workers") or 1))
    version = ".".join(str(n) for n in sys.version_info[:3])
    runner = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    spec["salt"] = f"pyc-v1\0{runner}\0{sys.implementation.cache_tag}\0{version}"
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
