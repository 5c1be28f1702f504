"""``inv lock``: re-lock backend/ and export its requirements.txt with the pinned tool, all or nothing.

Poetry is not one of our dependencies (its own dependency tree would sit next to the deploy
role's credentials), so the pinned Poetry goes into its own virtual environment under
``.build/tools/``, made with uv, never into the user's site-packages. A ``uv.lock`` is re-locked
with the uv we already pin. Both run in a scratch copy of pyproject.toml, the lock and
requirements.txt; the three files replace backend/'s only after the export parses and agrees with
the new lock, so a package that does not resolve leaves them byte-identical.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from deploy import lockfiles
from deploy.config import ROOT, Paths
from deploy.errors import LockError
from deploy.lock import check_sync, parse_poetry_lock, parse_requirements, parse_uv_lock

Progress = Callable[[str], None]

#: ``uv export`` flags (pyproject.toml's ``[tool.lambda-layer-deploy] uv-export``, which the noxfile reads too).
UV_EXPORT = ("export", *lockfiles.uv_export_flags(), "-o", "requirements.txt")
POETRY_EXPORT = ("export", "--only", "main", "-o", "requirements.txt")
# The files a re-lock reads and may rewrite (poetry.toml: a project's own Poetry settings).
_FILES = ("pyproject.toml", "poetry.lock", "uv.lock", "requirements.txt", "poetry.toml")


@dataclass(frozen=True, kw_only=True)
class RelockResult:
    tool: str
    changed: tuple[str, ...]  # backend-relative names of the files rewritten
    added: tuple[str, ...]  # "name==version" pins new to requirements.txt
    removed: tuple[str, ...]
    moved: tuple[str, ...]  # "name old → new"


def poetry_bin(tools: Path, *, root: Path = ROOT, progress: Progress | None = None) -> Path:
    """The pinned Poetry in ``tools/poetry-<version>/``, installed there first if missing."""
    pins = lockfiles.poetry_pins(root)
    venv = tools / f"poetry-{lockfiles.poetry_version(root)}"
    stamp = venv / ".pins"
    exe = venv / "bin" / "poetry"
    if stamp.is_file() and stamp.read_text() == "\n".join(pins) and exe.is_file():
        return exe
    # A half-made environment (an interrupted install) is made again, not trusted.
    shutil.rmtree(venv, ignore_errors=True)
    if progress is not None:
        shown = venv.relative_to(Path.cwd()) if venv.is_relative_to(Path.cwd()) else venv
        progress(f"installing {' '.join(pins)} into {shown} (once; never your own environment)")
    uv = lockfiles.uv_bin()
    _run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], what="creating the Poetry environment")
    _run(
        [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *pins],
        what=f"installing {' '.join(pins)}",
    )
    stamp.write_text("\n".join(pins))
    return exe


def _run(cmd: Sequence[str], *, what: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        said = "\n".join((proc.stderr.strip() or proc.stdout.strip()).splitlines()[-8:])
        raise LockError(f"{what} failed (exit {proc.returncode}); backend/ was not changed:\n{said}")


def _pins(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    return {r.name: r.version for r in parse_requirements(path).requirements}


def relock(
    paths: Paths, *, add: str | None = None, tools: Path | None = None, progress: Progress | None = None
) -> RelockResult:
    """Re-lock (after adding ``add``, ``NAME`` or ``NAME==VERSION``) and export; backend/ changes only on success."""
    say = progress or (lambda _m: None)
    source = lockfiles.lock_source(paths)
    backend = paths.backend
    if not source.pyproject.is_file():
        raise LockError("backend/pyproject.toml is missing")
    if source.tool == "poetry" and source.lock.is_file():
        writer = lockfiles.poetry_writer(source.lock)
        pinned = lockfiles.poetry_version()
        if writer is not None and int(writer.split(".")[0]) > int(pinned.split(".")[0]):
            raise LockError(
                f"{source.shown} was written by Poetry {writer}, newer than the pinned Poetry {pinned}",
                hint="bump [tool.lambda-layer-deploy] poetry in pyproject.toml rather than downgrade the lock",
            )
    paths.build.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="relock-", dir=paths.build))
    try:
        for name in _FILES:
            if (backend / name).is_file():
                shutil.copy2(backend / name, work / name)
        if source.tool == "poetry":
            poetry = str(poetry_bin(tools or paths.build / "tools", progress=say))
            # No project virtualenv: locking needs none, and Poetry would otherwise make one in ~/.cache.
            env = {**os.environ, "POETRY_VIRTUALENVS_CREATE": "false", "POETRY_NO_INTERACTION": "1"}
            if add:
                say(f"adding {add} with Poetry {lockfiles.poetry_version()}")
                _run([poetry, "add", "--lock", add], what=f"`poetry add --lock {add}`", cwd=work, env=env)
            else:
                say(f"locking with Poetry {lockfiles.poetry_version()}")
                _run([poetry, "lock"], what="`poetry lock`", cwd=work, env=env)
            _run([poetry, *POETRY_EXPORT], what="`poetry export --only main`", cwd=work, env=env)
            lock = parse_poetry_lock(work / "poetry.lock")
        else:
            uv = lockfiles.uv_bin()
            if add:
                say(f"adding {add} with uv")
                _run([uv, "add", "--no-sync", "--quiet", add], what=f"`uv add {add}`", cwd=work)
            else:
                say("locking with uv")
                _run([uv, "lock", "--quiet"], what="`uv lock`", cwd=work)
            _run([uv, *UV_EXPORT, "--quiet"], what="`uv export --no-dev --frozen`", cwd=work)
            lock = parse_uv_lock(work / "uv.lock", lockfiles.project_name(work / "pyproject.toml"))
        check_sync(parse_requirements(work / "requirements.txt"), lock)
        before, after = _pins(backend / "requirements.txt"), _pins(work / "requirements.txt")
        changed = tuple(
            name
            for name in _FILES
            if (work / name).is_file()
            and (not (backend / name).is_file() or (backend / name).read_bytes() != (work / name).read_bytes())
        )
        # Lock and pyproject first, the export last: an interrupted swap leaves a stale export, which
        # the next build refuses by name, never a new export beside an old lock.
        for name in sorted(changed, key=lambda n: n == "requirements.txt"):
            (work / name).replace(backend / name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return RelockResult(
        tool=source.tool,
        changed=changed,
        added=tuple(f"{n}=={after[n]}" for n in sorted(after.keys() - before.keys())),
        removed=tuple(f"{n}=={before[n]}" for n in sorted(before.keys() - after.keys())),
        moved=tuple(
            f"{n} {before[n]} → {after[n]}" for n in sorted(before.keys() & after.keys()) if before[n] != after[n]
        ),
    )


def lock_task(paths: Paths, *, add: str | None = None) -> RelockResult:
    """What ``inv lock`` runs: re-lock, then one line per pin that moved and the files to commit."""
    from deploy.report import progress, say

    result = relock(paths, add=add, progress=progress)
    for line in (
        *(f"+ {p}" for p in result.added),
        *(f"- {p}" for p in result.removed),
        *(f"~ {p}" for p in result.moved),
    ):
        say(line)
    if result.changed:
        say(f"rewrote {', '.join(f'backend/{n}' for n in result.changed)}: commit them together")
    else:
        say(f"backend/ is already locked ({result.tool}): nothing changed")
    return result
