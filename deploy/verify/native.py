"""Which machine a native file is built for, and whether this host can run an artifact's native code.

Verify runs the artifacts on the host: an arm64 layer with extensions cannot import on an x86_64
machine, and the error says which file and which machine instead of a bare ImportError.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from deploy.config import EnvConfig
from deploy.errors import VerifyError

MACHINES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}
ELF_MACHINES = {3: "x86 (i386)", 40: "arm (32-bit)", 62: "x86_64", 183: "arm64 (aarch64)"}


def host_architecture() -> str:
    machine = platform.machine().lower()
    return MACHINES.get(machine, machine)


def elf_machine(path: Path) -> str | None:
    try:
        with path.open("rb") as fh:
            head = fh.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    order: Literal["little", "big"] = "little" if head[5] == 1 else "big"
    number = int.from_bytes(head[18:20], order)
    return ELF_MACHINES.get(number, f"machine {number}")


def native_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and (p.suffix == ".so" or ".so." in p.name)]


def check_architecture(env: EnvConfig, roots: Iterable[tuple[Path, Path]]) -> None:
    """Stop before running (opt, task root) trees whose native code this host cannot load."""
    host = host_architecture()
    if env.architecture == host:
        return
    for opt, task_root in roots:
        native = native_files(opt) + native_files(task_root)
        if native:
            raise VerifyError(
                f"cannot verify {env.architecture} artifacts with native code on a {host} machine "
                f"(e.g. {native[0].name}); run verify on a {env.architecture} host",
            )
