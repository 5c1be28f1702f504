"""Preflight audit: nothing wrong-platform, over-size or secret gets past the build.

Runs on the installed ``--target`` tree before it is zipped and long before any upload.
Each check collects every problem it finds and raises one ``AuditError`` listing them
all, so a single run tells the whole story instead of one package per rebuild.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import os
import re
import stat
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path
from typing import BinaryIO

from packaging import tags
from packaging.utils import canonicalize_name

from deploy.artifact import PackageInfo
from deploy.errors import AuditError, ConfigError
from deploy.install import manylinux_platforms
from deploy.lambda_facts import DIRECT_UPLOAD_LIMIT, LAMBDA_UNZIPPED_LIMIT, MAX_LAYERS
from deploy.secret_scan import refused_name

__all__ = ["DIRECT_UPLOAD_LIMIT", "LAMBDA_UNZIPPED_LIMIT", "MAX_LAYERS"]

#: Lambda architecture name → (wheel platform suffix, ELF e_machine).
_ARCH = {"x86_64": ("x86_64", 62), "arm64": ("aarch64", 183)}
_ELF_MACHINES = {3: "i386", 8: "mips", 20: "ppc", 21: "ppc64", 40: "arm", 62: "x86_64", 183: "aarch64", 243: "riscv"}
#: PEP 600 legacy aliases: the glibc each old manylinux name stands for.
_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}

_SKIP_DIRS = frozenset({"__pycache__"})


def _arch(architecture: str) -> tuple[str, int]:
    try:
        return _ARCH[architecture]
    except KeyError:
        raise ConfigError(f"unknown architecture {architecture!r}; expected one of {', '.join(_ARCH)}") from None


def _py_version(python_version: str) -> tuple[int, int]:
    match = re.fullmatch(r"(?:python)?(\d+)\.(\d+)", python_version)
    if not match:
        raise ConfigError(f"python version {python_version!r} is not like '3.12'")
    return int(match.group(1)), int(match.group(2))


def _skip(rel: str) -> bool:
    """Bytecode never reaches the zip (see deploy.archive), so it never counts here either."""
    return rel.endswith((".pyc", ".pyo")) or "__pycache__" in rel.split("/")


def _files(root: Path) -> Iterator[tuple[str, str]]:
    """Regular files under ``root`` as (posix relative path, path), sorted, without bytecode.

    A folder's files come before its subfolders, each in name order; links are neither yielded
    nor followed. ``os.scandir`` answers "regular file?" from the directory entry itself, without
    the two stat calls per file ``Path.is_symlink``/``is_file`` cost (a layer has 4,000 files).
    Paths are strings for the same reason: each is opened once or twice, and ``Path.open``
    re-parses the path every time."""
    yield from _walk(str(root), "")


def _walk(folder: str, prefix: str) -> Iterator[tuple[str, str]]:
    try:
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda e: e.name)
    except OSError:
        return  # as os.walk: an unreadable folder holds nothing to audit
    subfolders = []
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if entry.name not in _SKIP_DIRS:
                subfolders.append(entry.name)
        elif entry.is_file(follow_symlinks=False) and not entry.name.endswith((".pyc", ".pyo")):
            yield prefix + entry.name, entry.path
    for name in subfolders:
        yield from _walk(os.path.join(folder, name), f"{prefix}{name}/")  # noqa: PTH118 - strings for speed


# --------------------------------------------------------------------------- packages


@dataclass(frozen=True, kw_only=True)
class _Dist:
    info: PackageInfo
    files: tuple[str, ...]  # posix paths relative to site


def _dist_files(site: Path, dist: importlib.metadata.Distribution, sizes: dict[str, int] | None = None) -> list[str]:
    """Files a distribution installed, relative to ``site``: its RECORD when present, else top-level names.
    ``sizes`` receives each file's size."""
    sizes = {} if sizes is None else sizes
    seen: set[str] = set()
    out: list[str] = []
    root = f"{site}{os.sep}"

    def add(path: Path | str) -> None:
        full = os.path.normpath(path)  # strings, not Path objects: thousands of files per layer
        if not full.startswith(root):
            return  # a script installed outside --target (e.g. ../../bin/x) is not part of the layer
        rel = full[len(root) :].replace(os.sep, "/")
        if rel in seen or _skip(rel):
            return
        try:
            st = os.stat(full)  # noqa: PTH116 - one call answers "a file?" and its size
        except OSError:
            return
        if not stat.S_ISREG(st.st_mode):
            return
        seen.add(rel)
        out.append(rel)
        sizes[rel] = st.st_size

    recorded = dist.files  # RECORD, parsed by importlib.metadata (each access parses it again)
    if recorded is not None:
        for entry in recorded:
            add(root + str(entry))
        return out
    name = canonicalize_name(dist.name)
    tops = [d.name for d in site.glob("*.dist-info") if canonicalize_name(d.name.split("-", 1)[0]) == name]
    tops += [line.strip() for line in (dist.read_text("top_level.txt") or "").splitlines() if line.strip()]
    for top in tops:
        base = site / top
        candidates = [base, base.with_name(base.name + ".py"), *sorted(site.glob(f"{top}.*.so"))]
        for cand in candidates:
            if cand.is_dir():
                for rel, _ in _files(cand):
                    add(cand / rel)
            else:
                add(cand)
    return out


def _read_dists(site: Path) -> list[_Dist]:
    """The installed-package inventory, read by importlib.metadata from the tree (not the host)."""
    site = Path(os.path.normpath(Path(site).resolve()))
    if not site.is_dir():
        raise AuditError(f"cannot audit {site}: not a directory")
    dists: list[_Dist] = []
    for dist in importlib.metadata.distributions(path=[str(site)]):
        wheel = HeaderParser().parsestr(dist.read_text("WHEEL") or "")
        wheel_tags = tuple(t.strip() for t in wheel.get_all("Tag", []) if t.strip())
        sizes: dict[str, int] = {}
        files = _dist_files(site, dist, sizes)
        size = sum(sizes.values())
        info = PackageInfo(
            name=str(dist.name), version=str(dist.version), size=size, files=len(files), wheel_tags=wheel_tags
        )
        dists.append(_Dist(info=info, files=tuple(files)))
    dists.sort(key=lambda d: canonicalize_name(d.info.name))
    return dists


def read_packages(site: Path) -> tuple[PackageInfo, ...]:
    """Every distribution in a ``--target`` tree, sorted by name, with sizes from its RECORD."""
    return tuple(d.info for d in _read_dists(site))


def largest(packages: Iterable[PackageInfo], n: int = 10) -> list[PackageInfo]:
    return sorted(packages, key=lambda p: (-p.size, canonicalize_name(p.name)))[:n]


# --------------------------------------------------------------------------- wheel tags


def supported_tags(*, python_version: str, architecture: str, glibc_floor: tuple[int, int]) -> frozenset[tags.Tag]:
    """What pip would accept on the Lambda runtime, computed with packaging for the target, not the host."""
    version = _py_version(python_version)
    _arch(architecture)  # a clear error for an unknown architecture
    plats = manylinux_platforms(architecture, glibc_floor)
    interpreter = f"cp{version[0]}{version[1]}"
    found = set(tags.cpython_tags(version, abis=[interpreter], platforms=plats))
    found |= set(tags.compatible_tags(version, interpreter=interpreter, platforms=plats))
    return frozenset(found)


def _why_not(tag: tags.Tag, *, version: tuple[int, int], arch: str, glibc_floor: tuple[int, int]) -> str:
    plat = tag.platform
    if plat.startswith(("musllinux", "macosx", "win", "ios", "android")):
        return f"platform {plat} is not glibc Linux"
    manylinux = re.fullmatch(r"manylinux_(\d+)_(\d+)_(\w+)", plat)
    legacy = re.fullmatch(r"(manylinux1|manylinux2010|manylinux2014)_(\w+)", plat)
    if manylinux:
        need, plat_arch = (int(manylinux.group(1)), int(manylinux.group(2))), manylinux.group(3)
    elif legacy:
        need, plat_arch = _LEGACY_MANYLINUX[legacy.group(1)], legacy.group(2)
    elif plat.startswith("linux_"):
        return f"platform {plat} is not manylinux (built for one host's libraries only)"
    elif plat != "any":
        return f"platform {plat} is unknown"
    else:
        need, plat_arch = (0, 0), arch
    if plat_arch != arch:
        return f"built for {plat_arch}, target is {arch}"
    if need > glibc_floor:
        return f"needs glibc {need[0]}.{need[1]}, runtime has {glibc_floor[0]}.{glibc_floor[1]}"
    return f"python/ABI {tag.interpreter}-{tag.abi} does not run on CPython {version[0]}.{version[1]}"


def check_wheel_tags(
    packages: Iterable[PackageInfo],
    *,
    python_version: str,
    architecture: str,
    glibc_floor: tuple[int, int],
) -> None:
    """Every package needs at least one wheel tag the Lambda runtime accepts."""
    version = _py_version(python_version)
    arch, _ = _arch(architecture)
    accepted = supported_tags(python_version=python_version, architecture=architecture, glibc_floor=glibc_floor)
    failures: list[str] = []
    for pkg in packages:
        if not pkg.wheel_tags:
            failures.append(
                f"{pkg.name} {pkg.version}: no WHEEL tags (installed from source?), cannot tell its platform"
            )
            continue
        reasons: list[str] = []
        ok = False
        for raw in pkg.wheel_tags:
            try:
                expanded = tags.parse_tag(raw)
            except ValueError:
                reasons.append(f"{raw} (unparseable)")
                continue
            if expanded & accepted:
                ok = True
                break
            why = sorted({_why_not(t, version=version, arch=arch, glibc_floor=glibc_floor) for t in expanded})
            reasons.append(f"{raw} ({'; '.join(why)})")
        if not ok:
            failures.append(f"{pkg.name} {pkg.version}: {', '.join(reasons)}")
    if failures:
        cp = f"cp{version[0]}{version[1]}"
        raise AuditError(
            f"{len(failures)} package(s) will not run on python{version[0]}.{version[1]} {architecture}:\n  "
            + "\n  ".join(failures),
            hint=(
                f"the target accepts {cp}/abi3/py3 wheels for manylinux_{glibc_floor[0]}_{glibc_floor[1]}_{arch}"
                f" or older (manylinux2014_{arch}, ...) and any; install with the matching --python-platform"
            ),
        )


# --------------------------------------------------------------------------- ELF

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_VERNEED = struct.Struct("<HHIII")
_VERNAUX = struct.Struct("<IHHII")
_SHT_GNU_VERNEED = 0x6FFFFFFE
_GLIBC_VERSION = re.compile(rb"GLIBC_(\d+)\.(\d+)(?:\.\d+)?")


@dataclass(frozen=True, kw_only=True)
class ElfInfo:
    elf_class: int  # 1 = 32-bit, 2 = 64-bit
    data: int  # 1 = little-endian, 2 = big-endian
    machine: int
    glibc: tuple[int, int] | None  # highest GLIBC_x.y symbol version it needs


def read_elf(path: str | Path) -> ElfInfo | None:
    """Header facts of an ELF file, or None when it is not one.

    The glibc requirement comes from the ``.gnu.version_r`` section (the versions the
    dynamic linker checks at load time, what ``readelf -V`` shows), not from scanning
    bytes for "GLIBC_": a library may mention a version in a string without needing it.
    """
    with open(path, "rb") as fh:  # noqa: PTH123 - a str from _files: no Path parsing per file
        return _elf_of(fh, fh.read(_EHDR.size))


def _elf_of(fh: BinaryIO, head: bytes) -> ElfInfo | None:
    """``read_elf`` for a file already open, given at least its first 64 bytes (more is fine)."""
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    elf_class, data = head[4], head[5]
    endian = "<" if data == 1 else ">"
    (machine,) = struct.unpack(endian + "H", head[18:20])
    glibc = None
    if elf_class == 2 and data == 1 and len(head) >= _EHDR.size:
        glibc = _glibc_needed(fh, head[: _EHDR.size])
    return ElfInfo(elf_class=elf_class, data=data, machine=machine, glibc=glibc)


def _glibc_needed(fh: BinaryIO, head: bytes) -> tuple[int, int] | None:
    """Walk Elf64 section headers → SHT_GNU_verneed → its Vernaux names; None if absent or malformed."""
    fields = _EHDR.unpack(head)
    shoff, shentsize, shnum = fields[6], fields[11], fields[12]
    if not shoff or shentsize != _SHDR.size or not 0 < shnum < 65280:
        return None
    fh.seek(shoff)
    table = fh.read(shentsize * shnum)
    if len(table) != shentsize * shnum:
        return None
    sections = [_SHDR.unpack_from(table, i * shentsize) for i in range(shnum)]
    best: tuple[int, int] | None = None
    for sec in sections:
        if sec[1] != _SHT_GNU_VERNEED or sec[6] >= shnum:
            continue
        strtab = sections[sec[6]]
        fh.seek(sec[4])
        verneed = fh.read(min(sec[5], 1 << 20))
        fh.seek(strtab[4])
        strings = fh.read(min(strtab[5], 16 << 20))
        offset, count = 0, 0
        while offset + _VERNEED.size <= len(verneed) and count < 1024:
            _, cnt, _, aux, nxt = _VERNEED.unpack_from(verneed, offset)
            aux_off = offset + aux
            for _ in range(min(cnt, 1024)):
                if aux_off + _VERNAUX.size > len(verneed):
                    break
                _, _, _, name, aux_next = _VERNAUX.unpack_from(verneed, aux_off)
                end = strings.find(b"\x00", name)
                match = _GLIBC_VERSION.fullmatch(strings[name : end if end >= 0 else None])
                if match:
                    found = (int(match.group(1)), int(match.group(2)))
                    best = found if best is None or found > best else best
                if not aux_next:
                    break
                aux_off += aux_next
            if not nxt:
                break
            offset += nxt
            count += 1
    return best


def _owners(site: Path) -> dict[str, str]:
    return {rel: dist.info.name for dist in _read_dists(site) for rel in dist.files}


@dataclass(frozen=True, kw_only=True)
class _ElfTarget:
    """What every native file must match: ``check_elf``'s arguments, checked per file."""

    architecture: str
    machine_name: str  # as ELF tools say it: x86_64, aarch64
    machine: int
    glibc_floor: tuple[int, int] | None
    runtime: str

    @classmethod
    def of(cls, architecture: str, glibc_floor: tuple[int, int] | None, python_version: str | None) -> _ElfTarget:
        name, machine = _arch(architecture)
        runtime = f"python{python_version.removeprefix('python')}" if python_version else "the runtime"
        return cls(
            architecture=architecture, machine_name=name, machine=machine, glibc_floor=glibc_floor, runtime=runtime
        )

    def problems(self, elf: ElfInfo) -> list[str]:
        problems: list[str] = []
        if elf.elf_class != 2 or elf.data != 1:
            problems.append(f"{'32' if elf.elf_class == 1 else '64'}-bit {'big' if elf.data == 2 else 'little'}-endian")
        if elf.machine != self.machine:
            found = _ELF_MACHINES.get(elf.machine, f"e_machine={elf.machine}")
            problems.append(f"machine {found}, expected {self.machine_name}")
        floor = self.glibc_floor
        if floor is not None and elf.glibc is not None and elf.glibc > floor:
            problems.append(f"needs GLIBC_{elf.glibc[0]}.{elf.glibc[1]}, {self.runtime} has {floor[0]}.{floor[1]}")
        return problems


def _elf_error(site: Path, target: _ElfTarget, failures: list[tuple[str, list[str]]]) -> AuditError:
    owners = _owners(site)
    lines = [f"{rel} ({owners.get(rel, 'no package')}): {'; '.join(problems)}" for rel, problems in failures]
    return AuditError(
        f"{len(lines)} native file(s) will not load on Lambda {target.architecture}:\n  " + "\n  ".join(lines),
        hint="install for the target platform (uv --python-platform / pip --platform) or use the docker builder",
    )


def _secrets_error(root: Path, findings: list[str]) -> AuditError:
    return AuditError(
        f"{len(findings)} file(s) in {root} look like secrets:\n  " + "\n  ".join(findings),
        hint="remove them, or allow a dependency's known test fixture by glob",
    )


def _inspect_files(
    root: Path,
    *,
    elf: _ElfTarget | None,
    secrets: bool,
    ignore: Callable[[str], bool] | None = None,
    allow: Sequence[str] = (),
) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """One walk, one ``open`` per file, for both per-file checks: (ELF failures, secret findings).

    Both checks start from a file's first bytes, and a layer has 4,000 files: walking and opening
    them once instead of twice is a tenth of a second of every cold build. ``allow``/``ignore``
    exempt a file from the secret scan only; an ELF for the wrong machine is wrong wherever it is.
    """
    elf_failures: list[tuple[str, list[str]]] = []
    findings: list[str] = []
    for rel, path in _files(root):
        scan = secrets and not (
            any(fnmatch.fnmatchcase(rel, pattern) for pattern in allow) or (ignore is not None and ignore(rel))
        )
        try:
            why = refused_name(rel, path) if scan else None
            if elf is not None or (scan and why is None):
                with open(path, "rb") as fh:  # noqa: PTH123 - a str from _files: no Path parsing per file
                    head = fh.read(_BINARY_HEAD)
                    found = _elf_of(fh, head) if elf is not None else None
                    if found is not None and elf is not None:
                        problems = elf.problems(found)
                        if problems:
                            elf_failures.append((rel, problems))
                    if scan and why is None:
                        # Binaries (.so, images, gzip) hold random bytes that look like anything; only
                        # their head is scanned, which keeps the audit fast on a 50 MB tree of extension
                        # modules.
                        if b"\x00" not in head:
                            fh.seek(len(head))
                            head += fh.read(_TEXT_LIMIT)
                        why = _secret_in(head)
        except OSError as exc:
            raise AuditError(f"cannot read {rel} in {root}: {exc}") from None
        if why is not None:
            findings.append(f"{rel} {why}")
    return elf_failures, findings


def check_elf(
    site: Path,
    *,
    architecture: str,
    glibc_floor: tuple[int, int] | None = None,
    python_version: str | None = None,
) -> None:
    """Every ELF (by magic, not extension) must be 64-bit little-endian for the target machine
    and need no newer glibc than the runtime's: a wrong one imports fine on the build host
    and fails only on Lambda, with "invalid ELF header" or "GLIBC_2.xx not found"."""
    site = Path(site)
    target = _ElfTarget.of(architecture, glibc_floor, python_version)
    failures, _ = _inspect_files(site, elf=target, secrets=False)
    if failures:
        raise _elf_error(site, target, failures)


# --------------------------------------------------------------------------- secrets

_ACCESS_KEY = re.compile(rb"(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Z0-9])")
_SECRET_KEY = re.compile(rb"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])")
# A marker alone is not a key: libraries and AWS's own examples mention it ("<a very long
# private key string>"); a real one has a base64 body right after (optionally PEM headers).
_PRIVATE_KEY = re.compile(
    rb"-----BEGIN (?:[A-Z0-9]+ )?PRIVATE KEY-----\r?\n(?:[\w-]+:[^\n]*\n)*\s*[A-Za-z0-9+/=\r\n]{64,}"
)
_BINARY_HEAD = 8 * 1024
_TEXT_LIMIT = 32 * 1024 * 1024


def _secret_key_like(token: bytes) -> bool:
    """AWS secret keys are 40 base64 characters mixing cases and digits; hex digests never mix cases."""
    return (
        b"EXAMPLE" not in token
        and any(c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ" for c in token)
        and any(c in b"abcdefghijklmnopqrstuvwxyz" for c in token)
        and any(c in b"0123456789" for c in token)
    )


def _secret_in(content: bytes) -> str | None:
    if b"PRIVATE KEY-----" in content and _PRIVATE_KEY.search(content):
        return "contains a private key"
    if b"AKIA" in content or b"ASIA" in content:
        # AWS documentation's own examples end in EXAMPLE (AKIAIOSFODNN7EXAMPLE); botocore ships them.
        keys = [k for k in _ACCESS_KEY.findall(content) if not k.endswith(b"EXAMPLE")]
        if keys and any(_secret_key_like(m) for m in _SECRET_KEY.findall(content)):
            return f"contains an AWS access key ({keys[0][:8].decode()}…) and a secret-looking key"
    return None


def check_secrets(
    root: Path,
    *,
    ignore: Callable[[str], bool] | None = None,
    allow: Sequence[str] = (),
) -> None:
    """Refuse a tree holding files that look like credentials or private keys.

    ``allow`` takes globs of relative paths (``"somepkg/tests/*"``) for known test
    fixtures a dependency ships; ``ignore`` is the same as a predicate.
    """
    root = Path(root)
    _, findings = _inspect_files(root, elf=None, secrets=True, ignore=ignore, allow=allow)
    if findings:
        raise _secrets_error(root, findings)


# --------------------------------------------------------------------------- size budget


@dataclass(frozen=True, kw_only=True)
class Budget:
    """Unzipped bytes against Lambda's 250 MB (function + all layers)."""

    total: int
    limit: int
    share: float  # total / limit
    headroom: int  # limit - total; negative when over
    layer: int = 0
    function: int = 0
    other_layers: int = 0
    layer_count: int = 1


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def check_budget(
    *,
    layer_unzipped: int,
    function_unzipped: int,
    other_layers_unzipped: int = 0,
    layer_count: int = 1,
    packages: Sequence[PackageInfo] = (),
) -> Budget:
    total = layer_unzipped + function_unzipped + other_layers_unzipped
    budget = Budget(
        total=total,
        limit=LAMBDA_UNZIPPED_LIMIT,
        share=total / LAMBDA_UNZIPPED_LIMIT,
        headroom=LAMBDA_UNZIPPED_LIMIT - total,
        layer=layer_unzipped,
        function=function_unzipped,
        other_layers=other_layers_unzipped,
        layer_count=layer_count,
    )
    problems: list[str] = []
    if layer_count > MAX_LAYERS:
        problems.append(f"{layer_count} layers, Lambda allows at most {MAX_LAYERS} per function")
    if total > LAMBDA_UNZIPPED_LIMIT:
        problems.append(
            f"function {function_unzipped} + layer {layer_unzipped} + other layers {other_layers_unzipped}"
            f" = {total} bytes unzipped, over Lambda's {LAMBDA_UNZIPPED_LIMIT} by {total - LAMBDA_UNZIPPED_LIMIT}"
        )
        if packages:
            problems.append("largest packages: " + ", ".join(f"{p.name} {_mb(p.size)}" for p in largest(packages, 10)))
    if problems:
        raise AuditError("size budget exceeded: " + "; ".join(problems))
    return budget


# --------------------------------------------------------------------------- all together


def audit_layer(
    site: Path,
    *,
    python_version: str,
    architecture: str,
    glibc_floor: tuple[int, int],
    allow: Sequence[str] = (),
) -> tuple[PackageInfo, ...]:
    """The preflight for a layer's install tree; returns its packages when everything passes."""
    packages = read_packages(site)
    check_wheel_tags(packages, python_version=python_version, architecture=architecture, glibc_floor=glibc_floor)
    site = Path(site)
    target = _ElfTarget.of(architecture, glibc_floor, python_version)
    elf_failures, findings = _inspect_files(site, elf=target, secrets=True, allow=allow)
    if elf_failures:  # the same order as check_elf then check_secrets: the platform first
        raise _elf_error(site, target, elf_failures)
    if findings:
        raise _secrets_error(site, findings)
    return packages
