"""Build small but real test inputs: ``--target`` install trees, ``.whl`` files and ELF binaries.

No compiler is needed: ELF files are written byte by byte with just enough structure
(header, section table, ``.dynstr`` and ``.gnu.version_r``) for ``readelf -V`` and
``deploy.audit`` to read the machine and the glibc versions they need.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

EM_386 = 3
EM_X86_64 = 62
EM_AARCH64 = 183

FileSpec = bytes | tuple[bytes, int]  # content, or (content, mode)

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")


def elf_bytes(
    machine: int = EM_X86_64,
    *,
    glibc: Sequence[str] = (),
    elf_class: int = 2,
    data: int = 1,
    payload: bytes = b"",
) -> bytes:
    """A minimal shared object for ``machine`` that needs ``glibc`` versions (e.g. ``["GLIBC_2.38"]``).

    Only 64-bit little-endian files get sections; other classes are a bare identification
    header, enough for a machine/class check.
    """
    ident = b"\x7fELF" + bytes([elf_class, data, 1, 0]) + bytes(8)
    if elf_class != 2 or data != 1:
        fmt = "<" if data == 1 else ">"
        return ident + struct.pack(fmt + "HHI", 3, machine, 1) + bytes(36) + payload
    # .dynstr: "\0libc.so.6\0GLIBC_x.y\0..."
    dynstr = bytearray(b"\x00")
    lib_off = len(dynstr)
    dynstr += b"libc.so.6\x00"
    names: list[int] = []
    for version in glibc:
        names.append(len(dynstr))
        dynstr += version.encode() + b"\x00"
    shstr = b"\x00.dynstr\x00.gnu.version_r\x00.shstrtab\x00"
    # .gnu.version_r: one Verneed (libc.so.6) with one Vernaux per version.
    verneed = b""
    if glibc:
        verneed = struct.pack("<HHIII", 1, len(glibc), lib_off, 16, 0)
        for i, off in enumerate(names):
            nxt = 16 if i < len(names) - 1 else 0
            verneed += struct.pack("<IHHII", 0, 0, i + 2, off, nxt)
    body = bytearray()
    offset = _EHDR.size
    dynstr_off = offset + len(body)
    body += dynstr
    verneed_off = offset + len(body)
    body += verneed
    shstr_off = offset + len(body)
    body += shstr
    body += payload
    while (offset + len(body)) % 8:
        body += b"\x00"
    shoff = offset + len(body)
    sections = [
        _SHDR.pack(0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        _SHDR.pack(1, 3, 2, 0, dynstr_off, len(dynstr), 0, 0, 1, 0),  # .dynstr SHT_STRTAB
        _SHDR.pack(9, 0x6FFFFFFE, 2, 0, verneed_off, len(verneed), 1, 1 if glibc else 0, 8, 0),
        _SHDR.pack(24, 3, 0, 0, shstr_off, len(shstr), 0, 0, 1, 0),  # .shstrtab
    ]
    header = _EHDR.pack(ident, 3, machine, 1, 0, 0, shoff, 0, _EHDR.size, 0, 0, _SHDR.size, len(sections), 3)
    return header + bytes(body) + b"".join(sections)


def write_tree(root: Path, files: Mapping[str, FileSpec]) -> Path:
    """Write ``files`` (posix relative path → bytes or (bytes, mode)) under ``root``."""
    for rel, spec in files.items():
        content, mode = spec if isinstance(spec, tuple) else (spec, 0o644)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
    return root


def _record_hash(content: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def _dist_info_files(
    name: str, version: str, files: Mapping[str, bytes], tags: Sequence[str], *, record: bool
) -> dict[str, bytes]:
    dist_info = f"{name.replace('-', '_')}-{version}.dist-info"
    meta = {
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n".encode(),
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: wheelfactory\nRoot-Is-Purelib: "
            + ("true" if all(t.endswith("-any") for t in tags) else "false")
            + "\n"
            + "".join(f"Tag: {t}\n" for t in tags)
        ).encode(),
    }
    out = {**files, **meta}
    if record:
        lines = [f"{rel},{_record_hash(c)},{len(c)}" for rel, c in out.items()]
        lines.append(f"{dist_info}/RECORD,,")
        out[f"{dist_info}/RECORD"] = ("\n".join(lines) + "\n").encode()
    return out


def install_dist(
    site: Path,
    name: str,
    version: str = "1.0",
    *,
    files: Mapping[str, FileSpec] | None = None,
    tags: Sequence[str] = ("py3-none-any",),
    record: bool = True,
    extra_record: Sequence[str] = (),
) -> Path:
    """Lay out a distribution the way ``pip/uv install --target`` does: files + ``*.dist-info``."""
    pkg = name.lower().replace("-", "_")
    specs: Mapping[str, FileSpec] = (
        files if files is not None else {f"{pkg}/__init__.py": f"NAME = {name!r}\n".encode()}
    )
    contents = {rel: (s[0] if isinstance(s, tuple) else s) for rel, s in specs.items()}
    all_files = _dist_info_files(name, version, contents, tags, record=record)
    write_tree(site, {**specs, **{k: v for k, v in all_files.items() if k not in specs}})
    if extra_record:
        record_path = next(site.glob(f"{name.replace('-', '_')}-{version}.dist-info")) / "RECORD"
        with record_path.open("a") as fh:
            fh.writelines(f"{line}\n" for line in extra_record)
    return site


def build_wheel(
    dest_dir: Path,
    name: str,
    version: str = "1.0",
    *,
    files: Mapping[str, bytes] | None = None,
    tags: Sequence[str] = ("py3-none-any",),
) -> Path:
    """A real ``.whl`` (installable by pip/uv) whose filename carries the compressed tag set."""
    pkg = name.lower().replace("-", "_")
    content = files if files is not None else {f"{pkg}/__init__.py": f"NAME = {name!r}\n".encode()}
    parts = [t.split("-") for t in tags]
    compressed = "-".join(".".join(dict.fromkeys(p[i] for p in parts)) for i in range(3))
    path = dest_dir / f"{name.replace('-', '_')}-{version}-{compressed}.whl"
    dest_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in _dist_info_files(name, version, content, tags, record=True).items():
            zf.writestr(rel, data)
    return path


# Tag sets the audit tests walk through, by the runtime they target (python3.12 x86_64, glibc 2.34).
PURE = ("py3-none-any",)
PY2_PY3 = ("py2-none-any", "py3-none-any")
MANYLINUX_2_28_X86 = ("cp312-cp312-manylinux_2_28_x86_64",)
MANYLINUX2014_X86 = ("cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64",)
MANYLINUX_2_38_X86 = ("cp312-cp312-manylinux_2_38_x86_64",)
LINUX_X86 = ("cp312-cp312-linux_x86_64",)
CP311_X86 = ("cp311-cp311-manylinux_2_17_x86_64",)
ABI3_CP38_X86 = ("cp38-abi3-manylinux_2_17_x86_64",)
ABI3_CP313_X86 = ("cp313-abi3-manylinux_2_17_x86_64",)
AARCH64 = ("cp312-cp312-manylinux_2_17_aarch64.manylinux2014_aarch64",)
MUSL_X86 = ("cp312-cp312-musllinux_1_2_x86_64",)
MACOS = ("cp312-cp312-macosx_11_0_arm64",)


def native_dist(
    site: Path,
    name: str,
    *,
    machine: int = EM_X86_64,
    glibc: Sequence[str] = ("GLIBC_2.17",),
    tags: Sequence[str] = MANYLINUX2014_X86,
    so_name: str | None = None,
) -> Path:
    """A distribution with one extension module built for ``machine``; returns the .so path."""
    pkg = name.lower().replace("-", "_")
    rel = f"{pkg}/{so_name or '_native.cpython-312-x86_64-linux-gnu.so'}"
    install_dist(
        site,
        name,
        files={f"{pkg}/__init__.py": b"from ._native import *\n", rel: (elf_bytes(machine, glibc=glibc), 0o755)},
        tags=tags,
    )
    return site / rel
