"""The code-only deploy, before and after, paired in one run: ``inv bench --only code-only``.

Issue 25's goal: a code-only ``inv deploy --env local`` (one handler edited and committed) in 4 s or
less, whole process. "Before" is the tool as it was at the baseline commit, run from its own clone;
"after" is this tree. The after run's deploy report times each step (``DeployReport.step_seconds``),
so the table shows where a slowdown lives. Not a test: it measures and reports ratios (the machine is
shared, so absolute seconds move with its load).
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import subprocess
from pathlib import Path

from deploy.bench import Measurement, _code_only_deploy, _inv, _local_down, _project_copy
from deploy.config import EnvConfig, Paths
from deploy.emulator import free_port
from deploy.errors import BuildError
from deploy.report import progress

#: The steps a deploy report times (``DeployReport.step_seconds``), in the order they run.
DEPLOY_STEPS = ("build", "plan", "verify local", "lock", "terraform", "upload", "attach", "verify deployed")


def _baseline(root: Path) -> str:
    """What "before" is: the commit this tree branched from main at (``git merge-base HEAD main``), else HEAD."""
    for args in (["merge-base", "HEAD", "main"], ["rev-parse", "HEAD"]):
        found = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
        if found.returncode == 0 and found.stdout.strip():
            return found.stdout.strip()
    raise BuildError(f"bench: {root} is not a git checkout; the code-only case needs a baseline commit")


def _project_at(root: Path, commit: str, dest: Path) -> Path:
    """A throwaway checkout of ``commit`` (its tracked files), committed, like ``_project_copy``."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=root, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True, capture_output=True)
    ident = ["-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    for args in (["init", "-q", "-b", "main"], [*ident, "add", "-A"], [*ident, "commit", "-qm", "baseline"]):
        subprocess.run(["git", *args], cwd=dest, check=True, capture_output=True)
    return dest


def _seed_layers(build_dir: Path, proj: Path) -> None:
    """This checkout's built layers, so neither clone spends the bench building one (same identity: reused)."""
    layers = build_dir / "layers"
    if layers.is_dir():
        shutil.copytree(layers, proj / ".build" / "layers", dirs_exist_ok=True)


def bench_code_only(env: EnvConfig, runs: int, work: Path) -> list[Measurement]:
    """A code-only ``inv deploy --env local`` (one handler edited and committed), before and after, paired.

    Before is the baseline commit's own tool (``_baseline``) in its own clone on its own emulator, after is
    this tree; each is deployed once first (not timed), then the two alternate which goes first in each
    round, so a busy machine slows both alike. Whole processes; the after run's report times each step."""
    baseline = _baseline(env.paths.root)
    clones = {
        "before": _project_at(env.paths.root, baseline, work / "before"),
        "after": _project_copy(env.paths.root, work / "after"),
    }
    ports = {which: free_port() for which in clones}
    seconds: dict[str, list[float]] = {which: [] for which in clones}
    steps: dict[str, dict[str, list[float]]] = {which: {} for which in clones}
    try:
        for which, proj in clones.items():
            _seed_layers(env.paths.build, proj)
            progress(f"bench: code-only deploy, {which}: first deploy on a fresh emulator (not timed)")
            _inv(proj, ports[which], "deploy", "--env", "local")
        for i in range(runs):
            order = ("before", "after") if i % 2 == 0 else ("after", "before")
            for which in order:
                penv = dataclasses.replace(env, paths=Paths(root=clones[which]))
                took, report = _code_only_deploy(penv, ports[which], i)
                seconds[which].append(took)
                for step, value in (report.get("step_seconds") or {}).items():
                    steps[which].setdefault(step, []).append(float(value))
                progress(f"bench: code-only deploy {which} {i + 1}/{runs}: {took:.2f} s")
    finally:
        for which, proj in clones.items():
            _local_down(proj, ports[which])
    before, after = statistics.median(seconds["before"]), statistics.median(seconds["after"])
    ratios = [a / b for a, b in zip(seconds["after"], seconds["before"], strict=True)]
    out = [
        Measurement(
            name=f"code-only inv deploy --env local, before ({baseline[:12]})",
            runs=tuple(seconds["before"]),
            note="the baseline commit's tool: both verify runs (local and deployed)",
        ),
        Measurement(
            name="code-only inv deploy --env local, after",
            runs=tuple(seconds["after"]),
            target="≤ 4 s",
            met=after <= 4,
            note=f"{after / before:.2f}× of before (medians); paired ratios {', '.join(f'{r:.2f}' for r in ratios)}",
        ),
    ]
    for step in DEPLOY_STEPS:
        timings = steps["after"].get(step)
        if timings:
            out.append(Measurement(name=f"code-only deploy, after: {step}", runs=tuple(timings), note="in process"))
    in_steps = [sum(v[i] for v in steps["after"].values()) for i in range(len(seconds["after"]))]
    if steps["after"]:
        out.append(
            Measurement(
                name="code-only deploy, after: outside the steps",
                runs=tuple(w - s for w, s in zip(seconds["after"], in_steps, strict=True)),
                note="interpreter start-up, imports, settings, preflight, emulator check, report",
            )
        )
    return out
