"""Nox sessions: the CI matrix, runnable locally. ``nox -l`` lists them; ``nox`` runs what CI runs."""

from __future__ import annotations

import difflib
import os
import shutil
import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = False
# Under CI a missing interpreter is a failure, never a silent skip.
nox.options.error_on_missing_interpreters = bool(os.environ.get("CI"))
# A bare `nox` runs its sessions side by side, each in its own venv and process, its output printed
# whole when it ends. e2e spends most of its wall time waiting (Terraform's AWS provider polls each
# function it creates), so the CPU-bound sessions fill the cores meanwhile; the longest start first.
nox.options.sessions = [
    "e2e",
    "test-3.12",
    "test-3.11",
    "test-3.13",
    "terraform",
    "typecheck",
    "workflows",
    "lint",
    "lock",
    "deploy_lock",
]
# Only for a bare `nox`: a session named on the command line (CI's `nox -s "$SESSION"`) runs in
# this process and prints as it goes. `nox -j 1` (or NOX_PARALLEL=1) runs them one at a time.
if not {"-s", "--session", "--sessions", "-e", "-k", "--keywords", "-t", "--tags"} & set(sys.argv[1:]):
    nox.options.parallel = 3
nox.options.allow_parallel = True

PYPROJECT = nox.project.load_toml("pyproject.toml")
ALL_PYTHONS = nox.project.python_versions(PYPROJECT)
LAMBDA_PYTHON = "3.12"  # the runtime's interpreter: verify's sandbox and the e2e run need it
TERRAFORM_DIR = "infra/terraform"
PLUGIN_MIRROR = os.environ.get("TF_PLUGIN_MIRROR", "/opt/tf-plugins")
PYTEST_WORKERS = os.environ.get("PYTEST_WORKERS", "2")
E2E_WORKERS = os.environ.get("PYTEST_E2E_WORKERS", "3")
# Pinned in pyproject.toml, where `inv lock` reads it too: a Poetry release can change what
# `poetry export` writes (the lock session compares bytes).
POETRY = tuple(PYPROJECT["tool"]["lambda-layer-deploy"]["poetry"])
# A backend/uv.lock instead of poetry.lock: exported with these flags (deploy.relock uses the same list).
UV_EXPORT = ("export", *PYPROJECT["tool"]["lambda-layer-deploy"]["uv-export"], "-o", "requirements.txt")
# What the deploy job installs (with --require-hashes, before any credentials exist): the project's
# own dependencies, no extras, for the Lambda runtime's Python.
DEPLOY_LOCK = Path("requirements/deploy.txt")
DEPLOY_LOCK_UPDATE = "nox -s deploy_lock -- --update"
DEPLOY_LOCK_ARGS = (
    "--generate-hashes",
    "--universal",
    "--python-version",
    LAMBDA_PYTHON,
    "--custom-compile-command",
    DEPLOY_LOCK_UPDATE,
    "--quiet",
)
UV = next(d for d in PYPROJECT["project"]["dependencies"] if d.startswith("uv=="))
# The workflow linters, hash-pinned (one lock per purpose; each .txt says how to regenerate it).
WORKFLOW_LINT_LOCK = "requirements/workflow-lint.txt"
ACTIONLINT_FORK_LOCK = "requirements/actionlint-fork.txt"
# The upstream release ci.yml installs: its version is in the one file name requirements/actionlint.sha256 pins.
ACTIONLINT_VERSION = Path("requirements/actionlint.sha256").read_text().split()[1].split("_")[1]


def install(session: nox.Session, *extras: str, compile_bytecode: bool = False) -> None:
    """One place that installs the project with the extras a session needs."""
    spec = f".[{','.join(extras)}]" if extras else "."
    # No bytecode at install time (uv's default) but for the benchmarks: compiling the whole venv
    # costs about 23 CPU-seconds per session, mostly for modules no test imports (moto[server] brings
    # sympy, networkx, cfn-lint). Python caches what is imported instead, once: tasks.py turns
    # caching back on inside `inv` (Invoke turns it off), and the environment's
    # PYTHONDONTWRITEBYTECODE, which many images set, is dropped here (the venv and the ignored
    # __pycache__ folders are disposable), or every `inv` a test starts would compile boto3,
    # pydantic and rich from source. The benchmarks time whole processes from the first run.
    env = {"UV_COMPILE_BYTECODE": "1"} if compile_bytecode else {}
    if not compile_bytecode:
        session.env["PYTHONDONTWRITEBYTECODE"] = None
    session.install("-e", spec, env=env)


@nox.session(python=ALL_PYTHONS[0])
def lint(session: nox.Session) -> None:
    """Ruff lint and format check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=ALL_PYTHONS[0])
def typecheck(session: nox.Session) -> None:
    """Mypy (strict) on deploy/, tasks.py, noxfile.py and tests/workflows.py with boto3 stubs."""
    install(session, "typecheck")
    session.run("mypy")


@nox.session(python=ALL_PYTHONS[0])
def lock(session: nox.Session) -> None:
    """backend's lock (poetry.lock or uv.lock) agrees with its pyproject; requirements.txt is exactly its export."""
    tmp = Path(session.create_tmp()).resolve()
    if Path("backend/uv.lock").exists():
        session.install(UV)
        # Exported in a copy as `inv lock` does, so uv's header (it names `-o requirements.txt`) matches.
        for name in ("pyproject.toml", "uv.lock"):
            shutil.copyfile(Path("backend") / name, tmp / name)
        with session.chdir(tmp):
            session.run("uv", "lock", "--check")
            session.run("uv", *UV_EXPORT)
        exported, how = tmp / "requirements.txt", "uv export --no-dev --frozen"
    else:
        session.install(*POETRY)
        exported, how = tmp / "requirements.txt", "poetry export --only main"
        with session.chdir("backend"):
            session.run("poetry", "check", "--lock")
            session.run("poetry", "export", "--only", "main", "-o", str(exported))
    committed = Path("backend/requirements.txt").read_text()
    if exported.read_text() != committed:
        diff = difflib.unified_diff(
            committed.splitlines(), exported.read_text().splitlines(), "requirements.txt", how, lineterm=""
        )
        session.error(
            f"backend/requirements.txt is not what `{how}` writes from the lock:\n"
            + "\n".join(list(diff)[:40])
            + "\nrun: inv lock"
        )


@nox.session(python=ALL_PYTHONS[0])
def deploy_lock(session: nox.Session) -> None:
    """requirements/deploy.txt (hash-pinned deploy tooling) still resolves pyproject's dependencies."""
    session.install(UV)
    fresh = Path(session.create_tmp()).resolve() / "deploy.txt"
    # The committed pins are uv's preferences: only a dependency change in pyproject moves them,
    # not a new release on PyPI.
    shutil.copyfile(DEPLOY_LOCK, fresh)
    session.run("uv", "pip", "compile", "pyproject.toml", *DEPLOY_LOCK_ARGS, "-o", str(fresh))
    if "--update" in session.posargs:
        shutil.copyfile(fresh, DEPLOY_LOCK)
        return
    committed = DEPLOY_LOCK.read_text()
    if fresh.read_text() != committed:
        diff = difflib.unified_diff(
            committed.splitlines(), fresh.read_text().splitlines(), str(DEPLOY_LOCK), "uv pip compile", lineterm=""
        )
        session.error(
            f"{DEPLOY_LOCK} is stale for pyproject.toml's dependencies:\n"
            + "\n".join(list(diff)[:40])
            + f"\nrun: {DEPLOY_LOCK_UPDATE}"
        )


@nox.session(python=ALL_PYTHONS)
def test(session: nox.Session) -> None:
    """Unit, moto and backend tests: all of them on 3.12, all but the `network` ones on 3.11 and 3.13."""
    install(session, "test")
    # The tests marked `network` resolve and install real packages from PyPI for the Lambda runtime
    # (python3.12): uv, Poetry and the wheels decide what they see, not the interpreter running the
    # tool, and the host-side code on their path runs on every version in the offline tests. So they
    # run once, on the runtime's version; every other test runs on all three (README "Nox sessions").
    marker = "not e2e" if session.python == LAMBDA_PYTHON else "not e2e and not network"
    session.run("pytest", "-m", marker, *_parallel(PYTEST_WORKERS), *session.posargs)


def _parallel(workers: str) -> tuple[str, ...]:
    """pytest-xdist's arguments: tests/conftest.py keeps a module's tests together when they share one of
    its module-scoped fixtures; pyproject's ``--max-worker-restart=0`` fails the run on a worker crash."""
    return ("-n", workers, "--dist", "loadgroup")


@nox.session(python=ALL_PYTHONS[0])
def terraform(session: nox.Session) -> None:
    """Terraform fmt -check, validate, `terraform test` (offline via the provider mirror) and checkov."""
    if shutil.which("terraform") is None:
        session.error("terraform is not installed (need >= 1.10: the S3 backend's use_lockfile)")
    init = ["terraform", f"-chdir={TERRAFORM_DIR}", "init", "-backend=false", "-input=false"]
    if Path(PLUGIN_MIRROR).is_dir():
        init.append(f"-plugin-dir={PLUGIN_MIRROR}")
    env = {"TF_DATA_DIR": ".terraform-nox"}
    session.run("terraform", f"-chdir={TERRAFORM_DIR}", "fmt", "-check", "-recursive", external=True)
    session.run(*init, external=True, env=env)
    session.run("terraform", f"-chdir={TERRAFORM_DIR}", "validate", external=True, env=env)
    session.run("terraform", f"-chdir={TERRAFORM_DIR}", "test", external=True, env=env)
    # Skipped checks are justified in place (`# checkov:skip=...: reason`); tests/unit/test_checkov_skips.py
    # keeps every skip scoped and explained. --skip-download keeps it offline.
    session.install("checkov==3.3.30")
    session.run("checkov", "-d", TERRAFORM_DIR, "--framework", "terraform", "--quiet", "--compact", "--skip-download")


@nox.session(python=ALL_PYTHONS[0])
def workflows(session: nox.Session) -> None:
    """actionlint and zizmor over .github/workflows, and the workflow/task parity test."""
    session.install("--require-hashes", "-r", WORKFLOW_LINT_LOCK)
    install(session, "test")
    # Upstream's actionlint is a GitHub release, not a package: ci.yml downloads it (sha256-pinned in
    # requirements/actionlint.sha256) onto PATH. A machine that reaches only package registries has
    # no upstream build to install, so it runs a fork's wheel instead, and says so.
    actionlint = shutil.which("actionlint")
    if actionlint is not None:
        found = session.run(actionlint, "-version", external=True, silent=True) or ""
        # Upstream's release prints its version first ("1.7.7"); a fork prints its own banner.
        if [v.removeprefix("v") for v in found.split()[:1]] != [ACTIONLINT_VERSION]:
            session.warn(f"{actionlint} is not upstream's v{ACTIONLINT_VERSION} ({found.split()[:1]}); not using it")
            actionlint = None
    if actionlint is None and os.environ.get("GITHUB_ACTIONS"):
        session.error(f"no upstream actionlint v{ACTIONLINT_VERSION} on PATH: ci.yml installs it before this session")
    if actionlint is None:
        session.warn(f"no upstream actionlint on PATH: linting with the fork's wheel ({ACTIONLINT_FORK_LOCK})")
        session.install("--require-hashes", "-r", ACTIONLINT_FORK_LOCK)
        actionlint = "actionlint"
    workflow_files = sorted(str(p) for p in Path(".github/workflows").glob("*.yml"))
    session.run(actionlint, *workflow_files, external=actionlint != "actionlint")
    session.run("zizmor", "--offline", ".github/workflows")
    session.run("pytest", "tests/unit/test_workflows.py", "-q")


@nox.session(python=LAMBDA_PYTHON)
def e2e(session: nox.Session) -> None:
    """Fresh moto server → `inv deploy --env local` twice → terraform plan shows no changes."""
    install(session, "test")
    # Each test has its own clone, emulator port and Terraform state, so they run side by side: most of
    # a first deploy is Terraform's provider waiting on moto, not CPU (README "Nox sessions").
    session.run("pytest", "-m", "e2e", *_parallel(E2E_WORKERS), *session.posargs)


@nox.session(python=LAMBDA_PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks (build vs uv+zip floor, deploy on the emulator); writes .build/bench/bench.{json,md}."""
    install(session, "test", compile_bytecode=True)
    session.run("inv", "bench", *session.posargs)
