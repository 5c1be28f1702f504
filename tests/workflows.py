"""Parity between the GitHub workflows and the commands a developer runs.

CI and deploy must call the same Nox sessions and Invoke tasks that ``nox -l`` and
``inv --list`` show, so a renamed session or task breaks a unit test instead of the
next push to main. Every check returns a list of problems (empty when all is well),
each naming the workflow, job and step at fault; nothing here talks to GitHub.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deploy.errors import ConfigError

#: Setup commands a workflow may run besides ``nox -s`` and ``inv``: installing the tooling that
#: runs them, only from a hash-pinned lock (none by name: nox and uv come from requirements/ci-tools.txt).
ALLOWED_PIP_INSTALLS: frozenset[str] = frozenset()
#: Requirement files a step may install, only with ``--require-hashes``: one lock per purpose.
HASHED_LOCKS = frozenset({"requirements/deploy.txt", "requirements/ci-tools.txt"})
#: System packages a job may install (bwrap jails the verify sandbox: deploy/verify/jail.py).
ALLOWED_APT_INSTALLS = frozenset({"bubblewrap"})
#: Ubuntu 24.04 runners restrict unprivileged user namespaces through AppArmor; bwrap needs them.
ALLOW_USER_NAMESPACES = ("sudo", "sysctl", "-w", "kernel.apparmor_restrict_unprivileged_userns=0")
#: The runner's Docker daemon is root on the host for its group: a job that holds credentials and
#: runs third-party code makes it unreachable first, in these three steps (the socket file outlives
#: the stopped unit, so it is removed, and its absence checked).
STOP_DOCKER = (
    ("sudo", "systemctl", "mask", "--now", "docker.socket", "docker.service"),
    ("sudo", "rm", "-f", "/run/docker.sock"),
    ("test", "!", "-e", "/run/docker.sock"),
)
#: Where a downloaded tool's sha256 is pinned (``sha256sum --check`` format), relative to the root.
PINNED_DOWNLOADS = "requirements/*.sha256"
#: The one place a download may be installed to.
TOOL_DIR = "/usr/local/bin"
#: The one place a step may append to, and what it may append: a Markdown report.
STEP_SUMMARY = "$GITHUB_STEP_SUMMARY"
STEP_OUTPUT = "$GITHUB_OUTPUT"

_CONTROL_OPERATORS = frozenset({"&&", "||", ";", "|", "&", ";;", "(", ")", "<", ">", ">&", "<&", "|&"})
_ENV_REF = re.compile(r"^\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))$")
_MATRIX_EXPR = re.compile(r"^\$\{\{\s*matrix\.(?P<key>[A-Za-z0-9_-]+)\s*\}\}$")
_EXPR = re.compile(r"^\$\{\{(?P<body>.*)\}\}$", re.DOTALL)
# The results of a `cond && 'a' || 'b'` expression: the literals right after && and ||.
_EXPR_RESULTS = re.compile(r"(?:&&|\|\|)\s*'([^']*)'")
_PINNED_USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+?)@(?P<sha>[0-9a-f]{40})\s+#\s*v\d+(?:\.\d+)*\s*$")
_USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)")


@dataclass(frozen=True, kw_only=True)
class Workflow:
    """One parsed workflow file; ``text`` is kept because comments (version tags) are not in YAML."""

    path: Path
    data: Mapping[str, Any]
    text: str

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def jobs(self) -> Mapping[str, Mapping[str, Any]]:
        jobs = self.data.get("jobs") or {}
        return jobs if isinstance(jobs, Mapping) else {}


@dataclass(frozen=True, kw_only=True)
class RunStep:
    """A ``run:`` step with the environment its shell sees (job ``env`` overlaid by the step's)."""

    workflow: str
    job: str
    index: int
    command: str
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.workflow}: job {self.job!r} step {self.index + 1}"


@dataclass(frozen=True, kw_only=True)
class NoxSession:
    name: str
    python: str | None  # None: python=False, the session runs no interpreter of its own
    selected: bool  # run by a bare `nox` (and so by CI)


# --------------------------------------------------------------------------- loading


def load_workflow(path: Path) -> Workflow:
    """Parse a workflow; YAML 1.1 reads the ``on:`` key as ``True``, so it is renamed back."""
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read workflow: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a workflow must be a mapping, got {type(data).__name__}")
    if True in data:
        data["on"] = data.pop(True)
    return Workflow(path=path, data=data, text=text)


def nox_sessions(root: Path) -> dict[str, NoxSession]:
    """Every session ``nox -l`` shows, asked of nox itself so parametrized names are exact.

    The text listing names all sessions and marks with ``*`` those a bare ``nox`` runs;
    the JSON listing, which carries each session's Python, covers only the ones named.
    """
    text = _run([sys.executable, "-m", "nox", "--list"], root, "noxfile.py")
    marked = {}
    for line in text.splitlines():
        if line[:2] in ("* ", "- "):
            marked[line[2:].split(" -> ")[0].strip()] = line.startswith("* ")
    if not marked:
        raise ConfigError(f"{root / 'noxfile.py'}: `nox --list` shows no sessions")
    argv = [sys.executable, "-m", "nox", "--list", "--json", "--sessions", *marked]
    sessions = {}
    for item in json.loads(_run(argv, root, "noxfile.py")):
        python = item.get("python")
        sessions[item["session"]] = NoxSession(
            name=item["session"],
            python=python if isinstance(python, str) else None,
            selected=marked.get(item["session"], False),
        )
    return sessions


def invoke_tasks(root: Path) -> dict[str, dict[str, bool]]:
    """Each task ``inv`` can run (dotted, with aliases) → its long options → whether it takes a value.

    Loaded the way ``inv`` loads it (``FilesystemLoader`` + ``Collection.from_module``), so
    auto-dashed names and namespaces match the command line.
    """
    from invoke.collection import Collection
    from invoke.loader import FilesystemLoader

    try:
        module, _ = FilesystemLoader(start=str(root)).load("tasks")
    except Exception as exc:  # any failure to import tasks.py is reported against that file
        raise ConfigError(f"{root / 'tasks.py'}: cannot load the Invoke collection: {exc}") from exc
    collection = Collection.from_module(module)
    tasks: dict[str, dict[str, bool]] = {}
    for name, aliases in collection.task_names.items():
        arguments = collection[name].get_arguments()
        options = {arg.names[0]: arg.kind is not bool for arg in arguments}
        # Invoke offers --no-<flag> for a bool flag that defaults to True (e.g. --no-remote-cache).
        options |= {f"no-{arg.names[0]}": False for arg in arguments if arg.kind is bool and arg.default is True}
        for alias in (name, *aliases):
            tasks[alias] = options
    return tasks


def _run(argv: Sequence[str], cwd: Path, about: str) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"{cwd / about}: `{' '.join(argv)}` could not run: {exc}") from exc
    if done.returncode != 0:
        raise ConfigError(f"{cwd / about}: `{' '.join(argv)}` failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


# --------------------------------------------------------------------------- steps and values


def run_steps(workflow: Workflow) -> list[RunStep]:
    out = []
    for job_id, job in workflow.jobs.items():
        job_env = _str_map(job.get("env"))
        for index, step in enumerate(job.get("steps") or []):
            if isinstance(step, Mapping) and "run" in step:
                env = {**job_env, **_str_map(step.get("env"))}
                out.append(RunStep(workflow=workflow.name, job=job_id, index=index, command=str(step["run"]), env=env))
    return out


def matrix_combinations(job: Mapping[str, Any]) -> list[dict[str, str]]:
    """The matrix's jobs: the product of its list-valued keys, then each ``include`` entry.

    An ``include`` entry that extends existing combinations is listed on its own instead;
    that is enough for checking names, which is all this is for.
    """
    matrix = (job.get("strategy") or {}).get("matrix") or {}
    if not isinstance(matrix, Mapping):
        return []
    axes = {k: v for k, v in matrix.items() if k not in ("include", "exclude") and isinstance(v, list)}
    combos = [dict(zip(axes, (str(x) for x in values), strict=True)) for values in itertools.product(*axes.values())]
    if not axes:
        combos = []
    combos += [{str(k): str(v) for k, v in entry.items()} for entry in matrix.get("include") or []]
    return combos


def resolve(value: str, env: Mapping[str, str], combo: Mapping[str, str]) -> tuple[str, ...]:
    """The values a shell word can take: ``$VAR`` through ``env``, then ``${{ }}`` through the matrix.

    ``${{ matrix.k }}`` is the combination's value; a ``cond && 'a' || 'b'`` expression
    yields its literal results. Anything else is returned as written.
    """
    ref = _ENV_REF.match(value)
    if ref:
        name = ref.group("braced") or ref.group("plain")
        if name not in env:
            return (value,)
        value = env[name]
    matrix = _MATRIX_EXPR.match(value.strip())
    if matrix:
        key = matrix.group("key")
        return (combo[key],) if key in combo else (value,)
    expr = _EXPR.match(value.strip())
    if expr:
        results = tuple(_EXPR_RESULTS.findall(expr.group("body")))
        return results or (value,)
    return (value,)


def split_command(command: str) -> list[str]:
    """Shell words of a one-line command, with operators (``&&``, ``|``, ``>>``) as their own words."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return list(lexer)


# --------------------------------------------------------------------------- checks


def check_run_step(
    step: RunStep,
    combos: Sequence[Mapping[str, str]],
    sessions: Mapping[str, NoxSession],
    tasks: Mapping[str, Mapping[str, bool]],
) -> list[str]:
    """A run step is one command: ``nox -s <session>``, ``inv <task> [--options]`` or allowed setup."""
    command = step.command.strip()
    if "\n" in command:
        return [f"{step.where}: runs several lines; one command per step"]
    if "${{" in command:
        return [f"{step.where}: interpolates an expression into the shell; pass it through `env:`"]
    try:
        words = split_command(command)
    except ValueError as exc:
        return [f"{step.where}: cannot parse {command!r}: {exc}"]
    operators = sorted(set(words) & _CONTROL_OPERATORS)
    if operators:
        return [f"{step.where}: chains commands with {' '.join(operators)}; one command per step"]
    if not words:
        return [f"{step.where}: empty run step"]
    match words:
        case ["nox", "-s" | "--session", session]:
            return _check_nox(step, session, combos or [{}], sessions)
        case ["inv" | "invoke", task, *args]:
            return _check_inv(step, task, args, tasks)
        case ["python" | "python3", "-m", "pip", "install", *specs] | ["uv", "pip", "install", *specs]:
            return _check_install(step, specs)
        case ["cat", report, ">>", summary] if report.endswith(".md") and summary == STEP_SUMMARY:
            return []
        case ["sudo", "apt-get", "update", "-qq"]:
            return []  # refreshes the package lists the next step installs from
        case ["sudo", "apt-get", "install", "-y", *packages] if packages:
            unknown = sorted(set(packages) - ALLOWED_APT_INSTALLS)
            if unknown:
                allowed = ", ".join(sorted(ALLOWED_APT_INSTALLS))
                return [f"{step.where}: apt-get installs {', '.join(unknown)}; only {allowed} are allowed"]
            return []
        case [*_] if tuple(words) == ALLOW_USER_NAMESPACES:
            return []
        case ["python" | "python3", "-m", "deploy.ci_runner", _env, ">>", output] if output == STEP_OUTPUT:
            return []  # reads the env's tfvars only (deploy/ci_runner.py), before any credentials
        case ["python" | "python3", "-m", "deploy.ci_artifacts", "digest", ".build", ">>", output] if (
            output == STEP_OUTPUT
        ):
            return []  # hashes the build's artifacts for the job's outputs (deploy/ci_artifacts.py)
        case ["python" | "python3", "-m", "deploy.ci_artifacts", "check", ".build", _digest]:
            return []  # checks the handed-over artifacts (deploy/ci_artifacts.py); only reads
        case [*_] if tuple(words) in STOP_DOCKER:
            return []
        case ["curl", "--fail", "--silent", "--show-error", "--location", "--remote-name", url] if url.startswith(
            "https://"
        ):
            return []  # check_downloads: a pinned file, checked before it is installed
        case ["sha256sum", "--check", "--strict", pins] if fnmatch.fnmatchcase(pins, PINNED_DOWNLOADS):
            return []
        case ["sudo", "tar", "-xzf", _archive, "-C", target, _member] if target == TOOL_DIR:
            return []  # check_downloads: only a checked archive
    return [f"{step.where}: {command!r} is not a nox session, an inv task or an allowed setup command"]


def _check_nox(
    step: RunStep, session: str, combos: Sequence[Mapping[str, str]], sessions: Mapping[str, NoxSession]
) -> list[str]:
    problems = []
    for combo in combos:
        for name in resolve(session, step.env, combo):
            if name not in sessions:
                known = ", ".join(sessions)
                problems.append(f"{step.where}: nox session {name!r} does not exist (nox -l: {known})")
    return problems


def _check_inv(step: RunStep, task: str, args: Sequence[str], tasks: Mapping[str, Mapping[str, bool]]) -> list[str]:
    if task not in tasks:
        return [f"{step.where}: inv task {task!r} does not exist (inv --list: {', '.join(sorted(tasks))})"]
    options = tasks[task]
    problems = []
    words = iter(args)
    for word in words:
        if not word.startswith("--"):
            # A short flag or a second task: what follows cannot be read reliably, so stop here.
            problems.append(f"{step.where}: `inv {task}` got {word!r}; use long --options, one task per step")
            break
        name, has_value, _ = word[2:].partition("=")
        if name not in options:
            problems.append(f"{step.where}: `inv {task}` has no option --{name} (has: {', '.join(options)})")
        elif options[name] and not has_value and next(words, None) is None:
            problems.append(f"{step.where}: `inv {task} --{name}` needs a value")
    return problems


def _check_install(step: RunStep, specs: Sequence[str]) -> list[str]:
    locks = [specs[i + 1] for i, s in enumerate(specs[:-1]) if s in ("-r", "--requirement")]
    if locks:
        bad = [f for f in locks if f not in HASHED_LOCKS]
        if bad:
            return [f"{step.where}: installs {', '.join(bad)}; only {', '.join(sorted(HASHED_LOCKS))} may be installed"]
        if "--require-hashes" not in specs:
            return [f"{step.where}: installs {', '.join(locks)} without --require-hashes"]
        specs = [s for i, s in enumerate(specs) if s not in locks or specs[i - 1] not in ("-r", "--requirement")]
    names = [re.split(r"[\s<>=!~\[;]", spec, maxsplit=1)[0].lower() for spec in specs if not spec.startswith("-")]
    unknown = [n for n in names if n not in ALLOWED_PIP_INSTALLS]
    if not names and not locks:
        return [f"{step.where}: installs nothing"]
    if unknown:
        locks_allowed = ", ".join(sorted(HASHED_LOCKS))
        return [f"{step.where}: installs {', '.join(unknown)} by name; install a hash-pinned lock ({locks_allowed})"]
    return []


def check_commands(
    workflow: Workflow, sessions: Mapping[str, NoxSession], tasks: Mapping[str, Mapping[str, bool]]
) -> list[str]:
    problems = []
    for step in run_steps(workflow):
        combos = matrix_combinations(workflow.jobs[step.job])
        problems += check_run_step(step, combos, sessions, tasks)
    return problems


def sessions_run(workflow: Workflow) -> dict[str, tuple[str, ...]]:
    """Each nox session a workflow runs → the Python versions its job sets up."""
    out: dict[str, tuple[str, ...]] = {}
    for step in run_steps(workflow):
        job = workflow.jobs[step.job]
        words = split_command(step.command.strip())
        if len(words) != 3 or words[0] != "nox":
            continue
        for combo in matrix_combinations(job) or [{}]:
            pythons = tuple(v for spec in _setup_python_versions(job) for v in resolve(spec, {}, combo))
            for name in resolve(words[2], step.env, combo):
                out[name] = out.get(name, ()) + pythons
    return out


def _setup_python_versions(job: Mapping[str, Any]) -> list[str]:
    versions = []
    for step in job.get("steps") or []:
        if isinstance(step, Mapping) and str(step.get("uses", "")).startswith("actions/setup-python@"):
            raw = str((step.get("with") or {}).get("python-version", ""))
            versions += [line.strip() for line in raw.splitlines() if line.strip()]
    return versions


def check_session_pythons(workflow: Workflow, sessions: Mapping[str, NoxSession]) -> list[str]:
    """A session that asks for Python X.Y runs in a job that set up X.Y (nox fails otherwise under CI)."""
    problems = []
    for name, pythons in sessions_run(workflow).items():
        session = sessions.get(name)
        if session is not None and session.python is not None and session.python not in pythons:
            problems.append(
                f"{workflow.name}: session {name!r} needs Python {session.python} but its job sets up "
                f"{', '.join(pythons) or 'none'}"
            )
    return problems


def check_pinned_uses(workflow: Workflow) -> list[str]:
    """Every action is pinned to a full commit SHA, with the tag it stands for in a comment."""
    problems = []
    for lineno, line in enumerate(workflow.text.splitlines(), start=1):
        uses = _USES_LINE.match(line)
        if uses is None or uses.group("ref").startswith("./"):
            continue
        if not _PINNED_USES.match(line):
            problems.append(f"{workflow.name}:{lineno}: {line.strip()!r} is not `owner/repo@<40-hex sha> # vX.Y.Z`")
    return problems


def check_hardening(workflow: Workflow) -> list[str]:
    """``permissions: {}`` at the top, a timeout on every job, checkout without a persisted token."""
    problems = []
    if workflow.data.get("permissions") != {}:
        problems.append(f"{workflow.name}: top-level `permissions: {{}}` is missing")
    for job_id, job in workflow.jobs.items():
        timeout = job.get("timeout-minutes")
        if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0:
            problems.append(f"{workflow.name}: job {job_id!r} has no timeout-minutes")
        for index, step in enumerate(job.get("steps") or []):
            is_checkout = isinstance(step, Mapping) and str(step.get("uses", "")).startswith("actions/checkout@")
            if is_checkout and (step.get("with") or {}).get("persist-credentials") is not False:
                problems.append(f"{workflow.name}: job {job_id!r} step {index + 1}: checkout persists credentials")
    return problems


def jobs_with_permission(workflows: Iterable[Workflow], permission: str, level: str) -> list[str]:
    """``workflow:job`` for every job granted ``permission: level`` (top level counts as every job)."""
    out = []
    for workflow in workflows:
        top = workflow.data.get("permissions")
        for job_id, job in workflow.jobs.items():
            perms = job.get("permissions", top)
            granted = perms == "write-all" and level == "write"
            if granted or (isinstance(perms, Mapping) and perms.get(permission) == level):
                out.append(f"{workflow.name}:{job_id}")
    return out


def pinned_downloads(root: Path) -> dict[str, Path]:
    """File name → the committed ``sha256sum`` file that pins it (``requirements/*.sha256``)."""
    pins: dict[str, Path] = {}
    for path in sorted(root.glob(PINNED_DOWNLOADS)):
        for line in path.read_text(encoding="utf-8").splitlines():
            digest, _, name = line.partition("  ")
            if not re.fullmatch(r"[0-9a-f]{64}", digest) or not name:
                raise ConfigError(f"{path}: {line!r} is not `<sha256>  <file name>` (sha256sum --check format)")
            pins[name] = path.relative_to(root)
    return pins


def check_downloads(workflow: Workflow, pins: Mapping[str, Path]) -> list[str]:
    """A downloaded file is pinned, and its job checks it (``sha256sum --check``) before unpacking it."""
    problems = []
    for job_id in workflow.jobs:
        checked: set[str] = set()
        downloaded: set[str] = set()
        for step in (s for s in run_steps(workflow) if s.job == job_id):
            words = split_command(step.command.strip())
            if words[:1] == ["curl"]:
                name = words[-1].rsplit("/", 1)[-1]
                if name not in pins:
                    problems.append(f"{step.where}: downloads {name}, which no {PINNED_DOWNLOADS} pins")
                downloaded.add(name)
            elif words[:3] == ["sha256sum", "--check", "--strict"]:
                checked |= {name for name, pin in pins.items() if pin.as_posix() == words[3] and name in downloaded}
            elif words[:3] == ["sudo", "tar", "-xzf"] and words[3] not in checked:
                problems.append(f"{step.where}: unpacks {words[3]} before `sha256sum --check` of its pin")
    return problems


def step_index(job: Mapping[str, Any], predicate: Any) -> int | None:
    """Index of the first step ``predicate(step)`` holds for, or None."""
    for index, step in enumerate(job.get("steps") or []):
        if isinstance(step, Mapping) and predicate(step):
            return index
    return None


def uses(action: str) -> Any:
    """Predicate: the step uses ``action`` (owner/repo, any pinned ref)."""
    return lambda step: str(step.get("uses", "")).startswith(f"{action}@")


def runs(*prefix: str) -> Any:
    """Predicate: the step's command starts with these shell words."""
    return lambda step: "run" in step and tuple(split_command(str(step["run"]).strip())[: len(prefix)]) == prefix


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): "" if v is None else str(v) for k, v in value.items()}
