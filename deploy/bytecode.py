"""Precompiled bytecode for both artifacts: Lambda cannot cache it, so we ship it.

``/opt`` and ``/var/task`` are read-only on Lambda, so without shipped ``.pyc`` files every
cold start compiles every module it imports. We compile every ``.py`` of the layer and of the
function code with the runtime's own minor version (the ``.pyc`` format and the cache tag
belong to it) into ``__pycache__/<name>.cpython-312.pyc`` beside the source, which stays for
tracebacks. The bytes are deterministic (see ``bytecode_runner``), and each code object
records the path the file has on Lambda (``/opt/python/...``, ``/var/task/...``), never the
build machine's.

The compiling interpreter's exact version is part of the layer identity: a patch release
may marshal differently, and two machines must not write different bytes under one key.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from deploy import runtime_python
from deploy.content_cache import ContentCache
from deploy.errors import BuildError

RUNNER = Path(__file__).resolve().parent / "bytecode_runner.py"

#: Where Lambda puts each artifact: the paths tracebacks show.
LAYER_PREFIX = "/opt/"
FUNCTION_PREFIX = "/var/task/"

OFF_HINT = "or turn bytecode off with `bytecode: false` in invoke.yaml (or INVOKE_DEPLOY_BYTECODE=false)"


@dataclass(frozen=True, kw_only=True)
class CompileFailure:
    file: str  # relative to the compiled root
    error: str


class Compiler(Protocol):
    def version(self) -> str: ...

    def compile(self, root: Path, files: Sequence[str], *, out: Path, prefix: str) -> list[CompileFailure]: ...


def workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def runner_env() -> dict[str, str]:
    """A fixed environment: the hash seed orders set constants; nothing of the caller's leaks in."""
    return {"PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"}


def _failures(raw: Mapping[str, Any]) -> list[CompileFailure]:
    return [CompileFailure(file=str(e["file"]), error=str(e["error"])) for e in raw.get("errors", [])]


#: The content cache's kind for compiled files (their keys are the runner's: see bytecode_runner).
CACHE_KIND = "pyc"


def _spec(root: str, out: str, prefix: str, files: Sequence[str], cache: str | None = None) -> dict[str, Any]:
    return {"root": root, "out": out, "prefix": prefix, "files": list(files), "workers": workers(), "cache": cache}


class LocalCompiler:
    """The runtime's interpreter on this machine (the one verify's sandbox runs).

    With a ``cache``, each file's ``.pyc`` is reused from earlier builds (looked up by the runner's
    workers, in parallel); the bytes are the same either way."""

    def __init__(
        self, python_version: str, *, env: Mapping[str, str] = os.environ, cache: ContentCache | None = None
    ) -> None:
        self.python_version = python_version
        self._env = env
        self._cache = cache
        self._found: runtime_python.RuntimePython | None = None

    @property
    def python(self) -> runtime_python.RuntimePython:
        if self._found is None:
            found = runtime_python.find(self.python_version, env=self._env)
            if found is None:
                raise BuildError(
                    f"bytecode for python{self.python_version} must be compiled by a Python {self.python_version} "
                    f"interpreter, and none was found; install one (e.g. `pyenv install {self.python_version}`), "
                    f"use --builder docker (it compiles inside the Lambda image), {OFF_HINT}",
                    hint=runtime_python.where_looked(self.python_version, self._env),
                )
            self._found = found
        return self._found

    def version(self) -> str:
        return self.python.version

    def compile(self, root: Path, files: Sequence[str], *, out: Path, prefix: str) -> list[CompileFailure]:
        with tempfile.TemporaryDirectory(prefix="bytecode-") as tmp:
            spec = Path(tmp) / "spec.json"
            cache = str(self._cache.root / CACHE_KIND) if self._cache is not None else None
            spec.write_text(json.dumps(_spec(str(root), str(out), prefix, files, cache)))
            proc = subprocess.run(
                [str(self.python.path), "-S", "-s", "-B", str(RUNNER), str(spec)],
                capture_output=True,
                text=True,
                env=runner_env(),
                check=False,
            )
        try:
            raw = json.loads(proc.stdout)
        except ValueError:
            raise BuildError(
                f"bytecode compile with {self.python.path} failed (exit {proc.returncode}): {proc.stderr[-1500:]}"
            ) from None
        return _failures(raw)


class DockerCompiler:
    """The Lambda image's own python3, for the docker builder: same OS and Python as Lambda."""

    def __init__(self, installer: Any) -> None:
        self._installer = installer  # deploy.install.DockerInstaller (kept untyped: no import cycle)

    def _run(self, command: list[str], volumes: dict[str, dict[str, str]]) -> str:
        return str(self._installer.run_python(command, volumes=volumes, environment=runner_env()))

    def version(self) -> str:
        out = self._run(["-I", "-S", "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"], {})
        return out.strip()

    def compile(self, root: Path, files: Sequence[str], *, out: Path, prefix: str) -> list[CompileFailure]:
        same = root.resolve() == out.resolve()
        with tempfile.TemporaryDirectory(prefix="bytecode-") as tmp:
            (Path(tmp) / "spec.json").write_text(json.dumps(_spec("/out" if same else "/src", "/out", prefix, files)))
            volumes = {
                str(RUNNER): {"bind": "/runner/bytecode_runner.py", "mode": "ro"},
                str(Path(tmp).resolve()): {"bind": "/spec", "mode": "ro"},
                str(out.resolve()): {"bind": "/out", "mode": "rw"},
            }
            if not same:
                volumes[str(root.resolve())] = {"bind": "/src", "mode": "ro"}
            text = self._run(["-S", "-s", "-B", "/runner/bytecode_runner.py", "/spec/spec.json"], volumes)
        try:
            raw = json.loads(text)
        except ValueError:
            raise BuildError(f"bytecode compile inside the Lambda image failed: {text[-1500:]}") from None
        return _failures(raw)


def python_files(root: Path) -> list[str]:
    """Every ``.py`` under ``root``, relative and sorted: the same list, in the same order, anywhere."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py") if p.is_file())


def cache_tag(version: str) -> str:
    """CPython's ``sys.implementation.cache_tag`` for an interpreter version: ``3.12.1`` -> ``cpython-312``."""
    major, minor = version.split(".")[:2]
    return f"cpython-{major}{minor}"
