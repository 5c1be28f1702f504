"""Cold start: each handler's import (Lambda's init phase) timed in fresh processes, and where it goes.

On Lambda a cold start runs the handler module's import once, from read-only ``/var/task`` and
``/opt``: every module it pulls in is read (and, without shipped bytecode, compiled). This
module measures exactly that on the built artifacts: both zips extracted in a Lambda-like
layout, the runtime's own interpreter in a fresh ``-I -S -B`` process per measurement (``-B``:
nothing is cached between runs, as on Lambda), started through the verify sandbox's one entry point
(``deploy.verify.sandbox.open_session``): the same environment, ``sys.path`` and jail as verify, so
measuring a layer never runs its code with more reach than verifying it does.

``import_times`` feeds ``inv bench --only coldstart`` (with vs without bytecode);
``import_profile`` runs one import under ``-X importtime`` for ``inv layer-report --imports``.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from deploy.archive import safe_extract
from deploy.artifact import Artifact
from deploy.config import EnvConfig, FunctionTarget
from deploy.errors import VerifyError
from deploy.verify.sandbox import Session, Tree, _Job, open_session

__all__ = [
    "IMPORT_TIMEOUT_S",
    "PackageImport",
    "Tree",  # the extracted layout, shared with the sandbox
    "extract",
    "handlers",
    "import_once",
    "import_profile",
    "import_times",
    "median",
    "package_size",
    "parse_importtime",
]

#: A cold import that takes longer has hung (the bench's layers import in seconds).
IMPORT_TIMEOUT_S = 300.0

# __import__, not importlib.import_module: the same import, but only the former goes through the
# C import path that -X importtime reports, so the handler's own module shows in the profile.
_IMPORT = (
    "import json, sys, time\n"
    "sys.path[:0] = json.loads(sys.argv[1])\n"
    "t = time.perf_counter()\n"
    "__import__(sys.argv[2])\n"
    "print(json.dumps({'import_s': time.perf_counter() - t}))\n"
)


def extract(layer: Artifact, function: Artifact, dest: Path) -> Tree:
    tree = Tree(task_root=dest / "task", opt=dest / "opt")
    safe_extract(function.path, tree.task_root)
    safe_extract(layer.path, tree.opt)
    return tree


class _Handled(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def handler(self) -> str: ...


def handlers(functions: Iterable[_Handled]) -> dict[str, str]:
    """Each function's handler module, by key, from the function map (``Targets.functions`` or the
    declared ``var.functions``): ``lambdas.cleanup.handler.handler`` → ``lambdas.cleanup.handler``.

    Module names only: importing the module is the init phase; the handler attribute is not called.
    """
    return {fn.key: fn.handler.rsplit(".", 1)[0] for fn in functions}


def _job(tree: Tree, key: str, module: str) -> _Job:
    """Only the import is timed (the init phase); the handler attribute is never called."""
    return _Job(
        target=FunctionTarget(key=key, name=key, handler=f"{module}.handler"), tree=tree, cases=(), environment={}
    )


def _import(session: Session, tree: Tree, key: str, module: str, scratch: Path, *, importtime: bool = False) -> str:
    """One fresh interpreter importing ``module`` in the sandbox; its stdout (or ``-X importtime``'s stderr)."""
    job = _job(tree, key, module)
    args = ["-B", *(["-X", "importtime"] if importtime else []), "-c", _IMPORT, json.dumps(session.sys_path(tree))]
    try:
        proc = session.run(
            job, [*args, module], session.environment(job, scratch), scratch=scratch, timeout_s=IMPORT_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise VerifyError(f"importing {module} did not finish in {IMPORT_TIMEOUT_S:g} s") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()[-1500:]
        raise VerifyError(f"importing {module} failed in a fresh {session.python.name}: {err}")
    return (proc.stderr if importtime else proc.stdout).decode("utf-8", "replace")


def _seconds(out: str) -> float:
    return float(json.loads(out.strip().splitlines()[-1])["import_s"])


def import_once(env: EnvConfig, python: Path, tree: Tree, key: str, module: str, scratch: Path) -> float:
    """Seconds one fresh interpreter spends importing ``module`` (the init phase)."""
    with open_session(env, [tree], python=python, root=scratch / "session") as session:
        return _seconds(_import(session, tree, key, module, scratch))


def import_times(
    env: EnvConfig,
    python: Path,
    trees: Mapping[str, Tree],
    functions: Iterable[_Handled],
    *,
    runs: int,
    scratch: Path,
) -> dict[str, dict[str, tuple[float, ...]]]:
    """variant -> handler key -> ``runs`` import times; variants interleaved so load hits them alike."""
    times: dict[str, dict[str, list[float]]] = {v: {} for v in trees}
    modules = handlers(functions)
    with open_session(env, trees.values(), python=python, root=scratch / "session") as session:
        for _ in range(runs):
            for key, module in modules.items():
                for variant, tree in trees.items():
                    seconds = _seconds(_import(session, tree, key, module, scratch / variant / key))
                    times[variant].setdefault(key, []).append(seconds)
    return {v: {k: tuple(runs_) for k, runs_ in by_key.items()} for v, by_key in times.items()}


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


# ---------------------------------------------------------------------------
# -X importtime

_IMPORTTIME = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)\s*$")


@dataclass(frozen=True, kw_only=True)
class PackageImport:
    name: str  # top-level import name (``sqlalchemy``)
    cumulative_s: float  # the package's imports including everything they pulled in
    self_s: float  # time in the package's own modules only


def parse_importtime(stderr: str) -> list[PackageImport]:
    """``-X importtime`` lines → per top-level package, largest cumulative time first.

    The lines come in post-order (a module after the modules it imported), indented by depth,
    so each line adopts the pending deeper lines as its children. A package's cumulative time
    sums its *entry* modules (no ancestor from the same package), so nothing counts twice.
    """
    rows = [m.groups() for line in stderr.splitlines() if (m := _IMPORTTIME.match(line))]
    depth = [len(r[2]) for r in rows]
    parent: list[int | None] = [None] * len(rows)
    pending: list[int] = []
    for i in range(len(rows)):
        while pending and depth[pending[-1]] > depth[i]:
            parent[pending.pop()] = i
        pending.append(i)
    top = [r[3].split(".", 1)[0] for r in rows]
    cumulative: dict[str, int] = {}
    own: dict[str, int] = {}
    for i, (self_us, cum_us, _indent, _module) in enumerate(rows):
        own[top[i]] = own.get(top[i], 0) + int(self_us)
        ancestor = parent[i]
        while ancestor is not None and top[ancestor] != top[i]:
            ancestor = parent[ancestor]
        if ancestor is None:
            cumulative[top[i]] = cumulative.get(top[i], 0) + int(cum_us)
    return sorted(
        (PackageImport(name=n, cumulative_s=cumulative[n] / 1e6, self_s=own[n] / 1e6) for n in cumulative),
        key=lambda p: (-p.cumulative_s, p.name),
    )


def import_profile(
    env: EnvConfig, python: Path, tree: Tree, key: str, module: str, scratch: Path
) -> list[PackageImport]:
    with open_session(env, [tree], python=python, root=scratch / "session") as session:
        return parse_importtime(_import(session, tree, key, module, scratch, importtime=True))


def package_size(tree: Tree, name: str) -> tuple[int, str]:
    """Bytes on disk of an import name and where it lives: the layer, the code, or (0, "runtime")."""
    for where, root in (("code", tree.task_root), ("layer", tree.opt / "python")):
        folder, module = root / name, root / f"{name}.py"
        if folder.is_dir():
            return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()), where
        if module.is_file():
            return module.stat().st_size, where
        native = sorted(root.glob(f"{name}.*.so"))
        if native:
            return native[0].stat().st_size, where
    return 0, "runtime"
