"""Find the interpreter that matches Lambda's runtime (``python3.12`` for runtime python3.12).

Two steps need it: the build compiles bytecode with it (the ``.pyc`` format belongs to one
minor version) and verify runs the handlers with it. Each wraps "not found" in its own
typed error, so this module only finds and never raises.

Standard library only and nothing heavy: a no-op ``inv build-layer`` asks for the exact
version (it is part of the layer identity), so this runs on every build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_PROBE = (
    "import sys; print('.'.join(map(str, sys.version_info[:3]))); "
    "print(sys.implementation.cache_tag); print(sys.executable)"
)


@dataclass(frozen=True, kw_only=True)
class RuntimePython:
    path: Path  # the real executable (a pyenv shim resolved: sandboxes run with a scrubbed PATH)
    version: str  # "3.12.1": a patch release may compile to different bytes
    cache_tag: str  # "cpython-312": the name part of __pycache__/*.cpython-312.pyc

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


def probe(path: Path, env: Mapping[str, str] | None = None) -> RuntimePython | None:
    """Ask an interpreter its exact version; None when it does not run (e.g. an uninstalled pyenv shim)."""
    try:
        proc = subprocess.run(
            [str(path), "-I", "-S", "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env=None if env is None else dict(env),
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = proc.stdout.split("\n")
    if proc.returncode != 0 or len(lines) < 3 or not lines[2].strip():
        return None
    return RuntimePython(path=Path(lines[2].strip()), version=lines[0].strip(), cache_tag=lines[1].strip())


def _pyenv_root(env: Mapping[str, str]) -> Path | None:
    if env.get("PYENV_ROOT"):
        return Path(env["PYENV_ROOT"])
    return Path(env["HOME"]) / ".pyenv" if env.get("HOME") else None


def _pyenv_candidates(python_version: str, env: Mapping[str, str]) -> list[Path]:
    exe = f"python{python_version}"
    candidates: list[Path] = []
    pyenv = shutil.which("pyenv", path=env.get("PATH", ""))
    if pyenv:
        try:
            proc = subprocess.run(
                [pyenv, "prefix", python_version],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
                env=dict(env),
            )
            if proc.returncode == 0:
                candidates += [Path(p) / "bin" / exe for p in proc.stdout.strip().split(":") if p.strip()]
        except (OSError, subprocess.TimeoutExpired):
            pass
    root = _pyenv_root(env)
    if root is not None and (root / "versions").is_dir():
        versions = sorted(  # newest patch release first
            (root / "versions").glob(f"{python_version}.*"),
            key=lambda p: [int(x) if x.isdigit() else 0 for x in p.name.split(".")],
            reverse=True,
        )
        candidates += [v / "bin" / exe for v in versions]
    return candidates


_FOUND: dict[tuple[str, str | None, str | None, str | None], RuntimePython | None] = {}


def find(python_version: str, *, env: Mapping[str, str] = os.environ) -> RuntimePython | None:
    """``pythonX.Y`` on PATH, else pyenv's; each candidate is run, because a pyenv shim exists on
    PATH even when its version is not installed and fails only when called.

    pyenv is asked only when PATH has no working interpreter: it is a shell script, and this
    lookup is on the path of every no-op build. The answer is kept for the process (the layer's and
    the function's plans, the preflight and verify all ask; each probe starts an interpreter).
    """
    key = (python_version, env.get("PATH"), env.get("PYENV_ROOT"), env.get("HOME"))
    if key not in _FOUND:
        _FOUND[key] = _find(python_version, env)
    return _FOUND[key]


def _find(python_version: str, env: Mapping[str, str]) -> RuntimePython | None:
    found = shutil.which(f"python{python_version}", path=env.get("PATH", ""))
    if found:
        got = probe(Path(found), env)
        if got is not None and got.minor == python_version:
            return got
    for candidate in _pyenv_candidates(python_version, env):
        got = probe(candidate, env) if candidate.is_file() else None
        if got is not None and got.minor == python_version:
            return got
    return None


def where_looked(python_version: str, env: Mapping[str, str] = os.environ) -> str:
    return f"looked for python{python_version} on PATH and under {_pyenv_root(env) or '~/.pyenv'}/versions"
