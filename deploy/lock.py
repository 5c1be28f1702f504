"""requirements.txt and its lock (poetry.lock or uv.lock): read both, and refuse to build when they disagree.

Poetry (or uv) owns the dependency graph; the layer is installed from the hash-pinned
``requirements.txt`` that ``poetry export --only main`` (``uv export --no-dev``) writes, so
installers need no Poetry and install exactly the bytes the lock promised. An export that is
older than the lock would silently ship other versions than the ones tested, hence
``check_sync``; a lock older than its pyproject would too, hence ``deploy.lockfiles``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as _PkgRequirement
from packaging.utils import canonicalize_name

from deploy import lockfiles
from deploy.config import Paths
from deploy.errors import LockError

#: Re-locks and exports with the pinned tool (deploy.relock); what every stale-file message says to run.
EXPORT_COMMAND = lockfiles.LOCK_COMMAND

# Index options change where bytes come from, never which bytes (every line is hash-pinned),
# so they are passed through to the installer untouched and stay out of the identity.
_INDEX_OPTIONS = ("--index-url", "-i", "--extra-index-url")
_HASH = re.compile(r"^(sha256|sha384|sha512):[0-9a-f]+$")
_HASH_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}


@dataclass(frozen=True)
class Requirement:
    """One exact pin of requirements.txt, normalised so equal pins compare and hash equal."""

    name: str  # PEP 503 normalised
    version: str
    markers: str | None
    hashes: tuple[str, ...]  # "sha256:<hex>", sorted
    line: str  # canonical one-line form, used by the layer identity
    extras: tuple[str, ...] = ()
    lineno: int = field(default=0, compare=False)


def target_environment(python_version: str, architecture: str) -> dict[str, str]:
    """PEP 508 marker values of the Lambda runtime: what the installer resolves markers against."""
    return {
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": "aarch64" if architecture == "arm64" else "x86_64",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "python_version": python_version,
        "python_full_version": f"{python_version}.0",
    }


def resolved_for(requirements: Iterable[Requirement], env: Mapping[str, str]) -> list[str]:
    """The pins that install on ``env``, without their markers: what the layer holds, however the
    exporter spelled its markers (Poetry writes ``python_version >= "3.11" and …`` on every line,
    uv only where a marker narrows the set), so equal resolved sets give equal lines."""
    out = []
    for req in sorted(requirements, key=lambda r: r.name):
        if req.markers and not Marker(req.markers).evaluate(dict(env)):
            continue
        line = req.name + (f"[{','.join(req.extras)}]" if req.extras else "") + f"=={req.version}"
        out.append(line + "".join(f" --hash={h}" for h in req.hashes))
    return out


@dataclass(frozen=True, kw_only=True)
class RequirementsFile:
    path: Path
    requirements: tuple[Requirement, ...]
    index_urls: tuple[str, ...] = ()

    def by_name(self) -> dict[str, Requirement]:
        return {r.name: r for r in self.requirements}


@dataclass(frozen=True, kw_only=True)
class LockedPackage:
    name: str  # PEP 503 normalised
    version: str
    groups: tuple[str, ...]  # () when the lock does not record groups (lock-version 2.0)
    markers: str | None
    hashes: frozenset[str]
    optional: bool = False


@dataclass(frozen=True, kw_only=True)
class PoetryLock:
    path: Path
    packages: Mapping[str, LockedPackage]
    lock_version: str = ""

    @property
    def records_groups(self) -> bool:
        return any(p.groups for p in self.packages.values())


def _show(path: Path) -> str:
    """``backend/requirements.txt`` reads better in a message than an absolute tmp path."""
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


# ---------------------------------------------------------------------------
# requirements.txt


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Join backslash continuations and drop comments; yield (first line number, text)."""
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw
        # A comment starts at "#" at the line start or after whitespace (pip's rule); "#" in a URL stays.
        line = re.sub(r"(^|\s)#.*$", "", line)
        if not buf:
            start = number
        if line.rstrip().endswith("\\"):
            buf.append(line.rstrip()[:-1])
            continue
        buf.append(line)
        joined = " ".join(part.strip() for part in buf).strip()
        buf = []
        if joined:
            yield start, joined
    if buf:
        joined = " ".join(part.strip() for part in buf).strip()
        if joined:
            yield start, joined


def _split_hashes(text: str, where: str) -> tuple[str, list[str]]:
    """Split ``spec --hash=a --hash b`` into the spec and its hashes; any other option is an error."""
    tokens = text.split()
    spec: list[str] = []
    hashes: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "--hash":
            if i + 1 >= len(tokens):
                raise LockError(f"{where}: --hash without a value")
            hashes.append(tokens[i + 1])
            i += 2
            continue
        if tok.startswith("--hash="):
            hashes.append(tok.removeprefix("--hash="))
        elif tok.startswith("-"):
            raise LockError(
                f"{where}: option {tok.split('=')[0]!r} is not supported on a requirement line",
                hint=f"regenerate the file with `{EXPORT_COMMAND}`",
            )
        else:
            spec.append(tok)
        i += 1
    return " ".join(spec), hashes


def parse_requirements(path: Path) -> RequirementsFile:
    """Parse a ``poetry export`` requirements file; every line must be ``name==version`` with hashes."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LockError(f"{path} is missing", hint=f"create it with `{EXPORT_COMMAND}`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LockError(f"{path} is unreadable: {exc}") from None

    shown = _show(path)
    requirements: list[Requirement] = []
    seen: dict[str, int] = {}
    index_urls: list[str] = []
    for lineno, line in _logical_lines(text):
        where = f"{shown}:{lineno}"
        if line.startswith("-"):
            opt, _, value = line.replace("=", " ", 1).partition(" ")
            value = value.strip()
            if opt in _INDEX_OPTIONS and value and " " not in value:
                index_urls.append(value)
                continue
            raise LockError(
                f"{where}: option {opt!r} is not allowed; the layer installs only hash-pinned wheels",
                hint=f"regenerate the file with `{EXPORT_COMMAND}`",
            )
        spec, hashes = _split_hashes(line, where)
        try:
            req = _PkgRequirement(spec)
        except InvalidRequirement as exc:
            raise LockError(f"{where}: cannot parse {spec!r}: {exc}") from None
        name = canonicalize_name(req.name)
        if req.url:
            raise LockError(f"{where}: {name} is a direct URL requirement; only index pins are supported")
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator not in ("==", "===") or "*" in specs[0].version:
            raise LockError(
                f"{where}: {name} is not pinned with '=='; got {str(req.specifier) or 'no version'}",
                hint=f"regenerate the file with `{EXPORT_COMMAND}`",
            )
        if not hashes:
            raise LockError(
                f"{where}: {name}=={specs[0].version} has no --hash; the layer installs with --require-hashes",
                hint=f"regenerate the file with `{EXPORT_COMMAND}` (hashes are on by default)",
            )
        for h in hashes:
            algo = h.partition(":")[0]
            if not _HASH.match(h) or len(h.partition(":")[2]) != _HASH_LEN[algo]:
                raise LockError(f"{where}: {name} has a malformed hash {h!r}; expected sha256:<64 hex digits>")
        if name in seen:
            raise LockError(f"{where}: {name} is listed twice (first on line {seen[name]})")
        seen[name] = lineno
        version = specs[0].version
        markers = str(req.marker) if req.marker else None
        extras = tuple(sorted(canonicalize_name(e) for e in req.extras))
        sorted_hashes = tuple(sorted(set(hashes)))
        canonical = name + (f"[{','.join(extras)}]" if extras else "") + f"=={version}"
        if markers:
            canonical += f" ; {markers}"
        canonical += "".join(f" --hash={h}" for h in sorted_hashes)
        requirements.append(
            Requirement(
                name=name,
                version=version,
                markers=markers,
                hashes=sorted_hashes,
                line=canonical,
                extras=extras,
                lineno=lineno,
            )
        )
    if not requirements:
        raise LockError(f"{path} lists no requirements", hint=f"regenerate it with `{EXPORT_COMMAND}`")
    return RequirementsFile(
        path=path,
        requirements=tuple(sorted(requirements, key=lambda r: r.name)),
        index_urls=tuple(index_urls),
    )


# ---------------------------------------------------------------------------
# poetry.lock


def _groups(pkg: Mapping[str, Any]) -> tuple[str, ...]:
    groups = pkg.get("groups")
    if isinstance(groups, list) and all(isinstance(g, str) for g in groups):
        return tuple(sorted(groups))
    category = pkg.get("category")  # Poetry < 1.5 (lock-version 1.x)
    if isinstance(category, str):
        return (category,)
    return ()


def _markers(pkg: Mapping[str, Any]) -> str | None:
    markers = pkg.get("markers")
    if isinstance(markers, str):
        return markers
    if isinstance(markers, Mapping):  # Poetry 2 writes per-group markers: {main = "...", dev = "..."}
        main = markers.get("main")
        return main if isinstance(main, str) else None
    return None


def _read_lock_toml(path: Path) -> dict[str, Any]:
    """A lock file's TOML; a malformed one is regenerated by the export command."""
    return lockfiles.read_toml(path, invalid_hint=f"run `{EXPORT_COMMAND}`")


def parse_poetry_lock(path: Path) -> PoetryLock:
    data = _read_lock_toml(path)
    shown = _show(path)
    raw_packages = data.get("package")
    if not isinstance(raw_packages, list):
        raise LockError(f"{shown} has no [[package]] entries; is it a poetry.lock?")
    metadata = data.get("metadata", {})
    if not isinstance(metadata, Mapping):
        raise LockError(f"{shown}: [metadata] must be a table")
    legacy_files = metadata.get("files", {})  # lock-version 1.x kept hashes under [metadata.files]
    if not isinstance(legacy_files, Mapping):
        legacy_files = {}

    packages: dict[str, LockedPackage] = {}
    for i, pkg in enumerate(raw_packages):
        if not isinstance(pkg, Mapping):
            raise LockError(f"{shown}: package entry #{i + 1} is not a table")
        name, version = pkg.get("name"), pkg.get("version")
        if not isinstance(name, str) or not isinstance(version, str):
            raise LockError(f"{shown}: package entry #{i + 1} lacks a name or version")
        files = pkg.get("files")
        if files is None:
            files = legacy_files.get(name, legacy_files.get(canonicalize_name(name), []))
        if not isinstance(files, list):
            raise LockError(f"{shown}: {name}: files must be a list")
        hashes: set[str] = set()
        for f in files:
            if not isinstance(f, Mapping) or not isinstance(f.get("hash"), str):
                raise LockError(f"{shown}: {name}: a files entry lacks a hash")
            hashes.add(f["hash"])
        norm = canonicalize_name(name)
        packages[norm] = LockedPackage(
            name=norm,
            version=version,
            groups=_groups(pkg),
            markers=_markers(pkg),
            hashes=frozenset(hashes),
            optional=bool(pkg.get("optional", False)),
        )
    return PoetryLock(path=path, packages=packages, lock_version=str(metadata.get("lock-version", "")))


def parse_uv_lock(path: Path, project: str) -> PoetryLock:
    """uv.lock's registry packages; those ``uv export --no-dev`` writes are in group ``main``."""
    data = _read_lock_toml(path)
    shown = _show(path)
    raw_packages = data.get("package")
    if not isinstance(raw_packages, list):
        raise LockError(f"{shown} has no [[package]] entries; is it a uv.lock?")
    main = lockfiles.uv_main_closure(data, project)
    packages: dict[str, LockedPackage] = {}
    for i, pkg in enumerate(raw_packages):
        name, version = pkg.get("name"), pkg.get("version")
        if not isinstance(name, str) or canonicalize_name(name) == canonicalize_name(project):
            continue  # the project itself (virtual or editable) is not a requirement
        if not isinstance(version, str):
            raise LockError(f"{shown}: package entry #{i + 1} ({name}) lacks a version")
        files = [pkg.get("sdist"), *pkg.get("wheels", [])]
        hashes = {f["hash"] for f in files if isinstance(f, Mapping) and isinstance(f.get("hash"), str)}
        norm = canonicalize_name(name)
        packages[norm] = LockedPackage(
            name=norm,
            version=version,
            groups=("main",) if norm in main else ("dev",),
            markers=None,
            hashes=frozenset(hashes),
        )
    return PoetryLock(path=path, packages=packages, lock_version=f"uv-{data.get('version', '')}")


# ---------------------------------------------------------------------------
# The sync check


def check_sync(requirements: RequirementsFile, lock: PoetryLock) -> None:
    """Refuse a requirements.txt that is not what ``poetry export --only main`` would write now.

    ``poetry export`` includes the packages reachable from the main dependencies; the lock's
    ``groups`` (or legacy ``category``) records exactly that, so we compare against the
    non-optional packages in group ``main``. A lock without group data (lock-version 2.0) can
    only be checked in one direction: every requirement must match the lock.
    """
    shown = _show(requirements.path)
    lock_shown = _show(lock.path)
    problems: list[str] = []
    reqs = requirements.by_name()
    for name, req in reqs.items():
        locked = lock.packages.get(name)
        if locked is None:
            problems.append(f"{name} is pinned there but missing from {lock_shown}")
            continue
        if locked.version != req.version:
            problems.append(f"{name} is {req.version} there but {locked.version} in {lock_shown}")
            continue
        unknown = [h for h in req.hashes if h not in locked.hashes]
        if unknown:
            problems.append(f"{name} {req.version} has hash {unknown[0]} that {lock_shown} does not list")
    if lock.records_groups:
        for name, locked in sorted(lock.packages.items()):
            if "main" in locked.groups and not locked.optional and name not in reqs:
                problems.append(f"{name} {locked.version} is a main dependency in {lock_shown} but missing there")
    if problems:
        raise LockError(f"{shown} is stale: {'; '.join(problems)}; run `{EXPORT_COMMAND}`")


def load_lock(paths: Paths) -> PoetryLock:
    """backend/'s lock, refused unless it is still the lock of backend/pyproject.toml (deploy.lockfiles)."""
    source = lockfiles.lock_source(paths)
    if source.tool == "uv":
        lockfiles.check_uv_fresh(source, paths)
        project = lockfiles.project_name(source.pyproject)
        return parse_uv_lock(source.lock, project)
    lockfiles.check_poetry_fresh(source)
    return parse_poetry_lock(source.lock)


def load_requirements_file(paths: Paths) -> RequirementsFile:
    """The lock checked against its pyproject, the export against the lock; what the layer build installs from."""
    lock = load_lock(paths)
    requirements = parse_requirements(paths.requirements)
    check_sync(requirements, lock)
    return requirements


def load_locked_requirements(paths: Paths) -> tuple[Requirement, ...]:
    return load_requirements_file(paths).requirements
