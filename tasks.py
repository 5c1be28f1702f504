"""Invoke tasks: a table of contents. Each task is a few lines calling into ``deploy/``.

``inv --list`` is the documentation; ``inv deploy --env local`` is the main job.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from invoke.collection import Collection
from invoke.exceptions import Exit
from invoke.tasks import task

# Invoke turns bytecode writing off before it imports a tasks file (its --write-pyc flag, so
# no tasks.pyc appears beside tasks.py), and that also stops Python from caching the bytecode
# of everything imported from here on: deploy/ and, in a venv installed without compiling
# (uv's default), pydantic, rich and botocore, recompiled from source on every run (0.3 s
# of a 0.7 s no-op build-layer). Turn it back on unless the user asked for no .pyc files.
sys.dont_write_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))

from deploy.cli import (  # noqa: E402 (after the line above)
    deploy_task,
    env_config,
    install_conventions,
    one_of,
    run_context,
    settings_defaults,
)
from deploy.install import builder_names  # noqa: E402

# Misuse exits 2 with a did-you-mean; `inv --help TASK` shows types and defaults (deploy/cli.py).
install_conventions()

ROOT = Path(__file__).resolve().parent
# Every deploy key declared, so INVOKE_* variables can set any of them (deploy.settings).
DEFAULTS = settings_defaults(ROOT / "invoke.yaml", os.environ)

ENV_HELP = {"env": "environment from invoke.yaml: local, staging or production"}
LOCK_HELP = {"lock_timeout": "seconds to wait for another run's deploy lock before failing (default 300)"}
LOCK_TIMEOUT = 300.0
#: `inv local.status` when no server answers: LSB's "program is not running", so scripts tell down from broken.
EMULATOR_NOT_RUNNING = 3


# --------------------------------------------------------------------------- build


#: On in CI (the CI variable set): a function with no smoke events fails verify instead of passing on its import.
STRICT = bool(os.environ.get("CI"))
STRICT_HELP = (
    "fail when a function has no smoke events (only imported); on by default where CI is set (then --no-strict)"
)
REMOTE_CACHE_HELP = "fetch an identical layer from the artifact bucket instead of building (--no-remote-cache: build)"
#: Every task that builds or reads a layer takes these; they change the run's settings, so the layer plan,
#: the platform checks and Terraform agree on one target (deploy/context.py).
ARCH_HELP = {"arch": "x86_64 or arm64 (default: the environment's)"}
LAYER_HELP = {**ARCH_HELP, "builder": f"one of {builder_names()} (default: the environment's)"}
WRITE_HELP = {"dry_run": "print the plan, write nothing", "json": "print a JSON report"}


@task(help={**ENV_HELP, **LAYER_HELP, "remote_cache": REMOTE_CACHE_HELP})
@deploy_task
def build_layer(
    c: Any, env: str = "local", arch: str | None = None, builder: str | None = None, remote_cache: bool = True
) -> None:
    """Build the dependency layer zip for the locked requirements (no-op when already built or cached)."""
    from deploy.run import layer_source

    layer_source.build_layer(run_context(c, env, arch=arch, builder=builder), remote_cache=remote_cache)


@task(help={**ENV_HELP, **ARCH_HELP})
@deploy_task
def build_function(c: Any, env: str = "local", arch: str | None = None) -> None:
    """Build the function code zip (every function's sources and VERSION; keyed by content, not commit)."""
    from deploy.run import layer_source

    layer_source.build_function(run_context(c, env, arch=arch))


@task(help={"add": "add this package first: NAME or NAME==VERSION (written to backend/pyproject.toml)"})
@deploy_task
def lock(c: Any, add: str | None = None) -> None:
    """Re-lock backend/ (pinned Poetry, or uv for a uv.lock) and export requirements.txt; all or nothing."""
    from deploy import relock
    from deploy.config import Paths

    relock.lock_task(Paths(), add=add)


@task(
    help={
        **ENV_HELP,
        **LAYER_HELP,
        "top": "how many packages to show",
        "imports": "time each handler's import (python -X importtime): top packages by cumulative time and size",
    }
)
@deploy_task
def layer_report(
    c: Any,
    env: str = "local",
    top: int = 15,
    imports: bool = False,
    arch: str | None = None,
    builder: str | None = None,
) -> None:
    """Show the layer's largest packages as bars and their share of Lambda's 250 MB budget."""
    from deploy.run import checks

    checks.layer_report(run_context(c, env, arch=arch, builder=builder), top=top, imports=imports)


# --------------------------------------------------------------------------- AWS


@task(
    help={
        **ENV_HELP,
        **LOCK_HELP,
        **LAYER_HELP,
        "dry_run": "print the plan, write nothing",
        "json": "print a JSON report",
    }
)
@deploy_task
def publish_layer(
    c: Any,
    env: str = "local",
    dry_run: bool = False,
    json: bool = False,
    lock_timeout: float = LOCK_TIMEOUT,
    arch: str | None = None,
    builder: str | None = None,
) -> None:
    """Upload the layer to S3 and publish a layer version, unless one already has its sha256."""
    from deploy.run import aws_tasks

    ctx = run_context(c, env, arch=arch, builder=builder)
    aws_tasks.publish_layer(ctx, dry_run=dry_run, as_json=json, lock_timeout=lock_timeout)


@task(
    help={
        **ENV_HELP,
        **LOCK_HELP,
        **LAYER_HELP,
        "dry_run": "print the plan, write nothing",
        "json": "print a JSON report",
    }
)
@deploy_task
def attach(
    c: Any,
    env: str = "local",
    dry_run: bool = False,
    json: bool = False,
    lock_timeout: float = LOCK_TIMEOUT,
    arch: str | None = None,
    builder: str | None = None,
) -> None:
    """Point every function at the new code and layer, publish a version, move the live alias."""
    from deploy.run import aws_tasks

    ctx = run_context(c, env, arch=arch, builder=builder)
    aws_tasks.attach(ctx, dry_run=dry_run, as_json=json, lock_timeout=lock_timeout)


@task(
    help={
        **ENV_HELP,
        **LAYER_HELP,
        "local": "verify the local artifacts instead of what is deployed",
        "json": "JSON report",
        "strict": STRICT_HELP,
    }
)
@deploy_task
def verify(
    c: Any,
    env: str = "local",
    local: bool = False,
    json: bool = False,
    strict: bool = STRICT,
    arch: str | None = None,
    builder: str | None = None,
) -> None:
    """Run every handler's smoke events against the exact deployed (or local) bytes."""
    from deploy.run import checks

    checks.verify(run_context(c, env, arch=arch, builder=builder, strict=strict), local=local, as_json=json)


@task(
    help={
        **ENV_HELP,
        **LOCK_HELP,
        **LAYER_HELP,
        "dry_run": "print what would be uploaded, published, updated and aliased; write nothing",
        "json": "print the JSON report on stdout",
        "report_file": "also write the JSON report here (and a Markdown summary beside it)",
        "skip_infra": "do not run terraform apply first",
        "skip_local_verify": "skip the sandbox run before upload (the final verify still gates and rolls back)",
        "remote_cache": REMOTE_CACHE_HELP,
        "allow_destroy": "apply a Terraform plan that destroys a function or layer version (refused otherwise)",
        "strict": STRICT_HELP,
        "prebuilt": "build nothing: deploy the artifacts in .build (CI's hand-over), each checked against its manifest",
    }
)
@deploy_task
def deploy(
    c: Any,
    env: str = "local",
    dry_run: bool = False,
    json: bool = False,
    report_file: str | None = None,
    skip_infra: bool = False,
    skip_local_verify: bool = False,
    remote_cache: bool = True,
    lock_timeout: float = LOCK_TIMEOUT,
    allow_destroy: bool = False,
    strict: bool = STRICT,
    arch: str | None = None,
    builder: str | None = None,
    prebuilt: bool = False,
) -> None:
    """Build, verify locally, publish the layer, attach, verify deployed; roll back on failure."""
    from deploy.run import deploy as flow

    flow.deploy(
        run_context(c, env, arch=arch, builder=builder, strict=strict),
        dry_run=dry_run,
        as_json=json,
        report_file=report_file,
        apply_infra=not skip_infra,
        verify_local_first=not skip_local_verify,
        remote_cache=remote_cache,
        lock_timeout=lock_timeout,
        allow_destroy=allow_destroy,
        prebuilt=prebuilt,
    )


@task(help={**ENV_HELP, **LAYER_HELP, "json": "print a JSON report"})
@deploy_task
def status(c: Any, env: str = "local", json: bool = False, arch: str | None = None, builder: str | None = None) -> None:
    """Print what a deploy would change, reading only: exit 0 in sync, 12 out of sync, other: could not tell."""
    from deploy.run import deploy as flow

    flow.status(run_context(c, env, arch=arch, builder=builder), as_json=json)


@task(
    help={
        **ENV_HELP,
        **LOCK_HELP,
        "function": "roll back only this function (its key in Terraform's var.functions)",
        "to": "version to move its live alias to (needs --function; default: each one's previous version)",
        "dry_run": "plan only",
    }
)
@deploy_task
def rollback(
    c: Any,
    env: str = "local",
    function: str | None = None,
    to: str | None = None,
    dry_run: bool = False,
    lock_timeout: float = LOCK_TIMEOUT,
) -> None:
    """Move each function's live alias back to its previous (or the given) version."""
    from deploy.run import aws_tasks

    aws_tasks.rollback(run_context(c, env), function=function, to=to, dry_run=dry_run, lock_timeout=lock_timeout)


@task(
    name="invoke",
    help={
        **ENV_HELP,
        "function": "the function's key in Terraform's var.functions (e.g. api)",
        "event": "a JSON file, - for stdin, or a smoke event's name from invoke.yaml (default: {})",
        "deployed": "invoke the live alias (on the emulator: its bytes, checked, in the sandbox)",
    },
)
@deploy_task
def invoke_function(
    c: Any, function: str, env: str = "local", event: str | None = None, deployed: bool = False
) -> None:
    """Run one handler with your event on the exact built (or deployed) bytes: its answer on stdout."""
    from deploy.run import day_two

    day_two.invoke(run_context(c, env), function=function, event=event, deployed=deployed)


@task(
    name="logs",
    help={
        **ENV_HELP,
        "function": "the function's key in Terraform's var.functions (e.g. api)",
        "since": "how far back: a number and s, m, h, d or w (default 10m)",
        "follow": "keep polling for new events until Ctrl-C",
        "filter": "a CloudWatch Logs filter pattern, e.g. ERROR or '\"RequestId: abc\"'",
    },
)
@deploy_task
def function_logs(
    c: Any, function: str, env: str = "local", since: str = "10m", follow: bool = False, filter: str | None = None
) -> None:
    """Print a deployed function's CloudWatch log events in time order (--follow: until Ctrl-C)."""
    from deploy.run import day_two

    day_two.logs(run_context(c, env), function=function, since=since, follow=follow, pattern=filter)


@task(
    help={
        **ENV_HELP,
        **LOCK_HELP,
        "keep": "newest layer versions to keep",
        "yes": "really delete (default: only print)",
    }
)
@deploy_task
def prune_layers(
    c: Any, env: str = "local", keep: int = 3, yes: bool = False, lock_timeout: float = LOCK_TIMEOUT
) -> None:
    """Delete old layer versions that no function, version or alias references."""
    from deploy.run import aws_tasks

    aws_tasks.prune_layers(run_context(c, env), keep=keep, yes=yes, lock_timeout=lock_timeout)


@task(help={**ENV_HELP, "force": "the LOCK_ID printed by the run that holds (or held) the lock"})
@deploy_task
def unlock(c: Any, env: str = "local", force: str = "") -> None:
    """Remove a deploy lock left by a killed run (like terraform force-unlock); needs its lock id."""
    from deploy.errors import ConfigError
    from deploy.run import infra

    if not force:
        raise ConfigError("inv unlock needs --force LOCK_ID (printed in the lock-held error)")
    infra.unlock(run_context(c, env), force)


@task(help={**ENV_HELP, "json": "print the checks as JSON on stdout"})
@deploy_task
def doctor(c: Any, env: str = "local", json: bool = False) -> None:
    """Check a deploy's prerequisites (Terraform, provider, Python, jail, emulator, credentials); writes nothing."""
    from deploy.run import checks

    checks.doctor(run_context(c, env), as_json=json)


BENCH_ONLY = ("build", "coldstart", "deploy", "attach", "cache", "code-only")


@task(
    help={
        "runs": "runs per measurement (median reported)",
        "output": "folder for bench.json and bench.md",
        "only": "build, coldstart, deploy, attach, cache (default: all), or code-only (before/after, paired)",
    }
)
@deploy_task
def bench(c: Any, runs: int = 3, output: str = ".build/bench", only: str | None = None) -> None:
    """Benchmark builds and deploys against their floors; writes JSON and a Markdown table."""
    from deploy import bench_run

    one_of("--only", only, BENCH_ONLY)

    bench_run.run_all(env_config(c, "local"), runs=runs, output=Path(output), only=only)


# --------------------------------------------------------------------------- local emulator


@task(name="up", help=ENV_HELP)
@deploy_task
def local_up(c: Any, env: str = "local") -> None:
    """Start the local moto server (reuses a healthy one) and switch Lambda to docker-less mode."""
    from deploy.run import infra

    infra.emulator_up(run_context(c, env))


@task(name="down", help=ENV_HELP)
@deploy_task
def local_down(c: Any, env: str = "local") -> None:
    """Stop the local moto server this project started (clears a stale pidfile)."""
    from deploy.run import infra

    infra.emulator_down(run_context(c, env))


@task(name="status", help=ENV_HELP)
@deploy_task
def local_status(c: Any, env: str = "local") -> None:
    """Say whether the local moto server is running (exit 0), or not (exit 3, the LSB status convention)."""
    from deploy.run import infra

    if not infra.emulator_status(run_context(c, env)):
        raise Exit(code=EMULATOR_NOT_RUNNING)


# --------------------------------------------------------------------------- Terraform


@task(name="init", help=ENV_HELP)
@deploy_task
def infra_init(c: Any, env: str = "local") -> None:
    """terraform init (offline from the provider mirror when present) and select the env's workspace."""
    from deploy.run import infra

    infra.infra_init(run_context(c, env))


@task(name="plan", help={**ENV_HELP, "detailed_exitcode": "exit 2 when the plan has changes (drift check)"})
@deploy_task
def infra_plan(c: Any, env: str = "local", detailed_exitcode: bool = False) -> None:
    """terraform plan for the environment; with --detailed-exitcode, fail on any change."""
    from deploy.run import infra

    infra.infra_plan(run_context(c, env), detailed_exitcode=detailed_exitcode)


@task(
    name="apply",
    help={
        **ENV_HELP,
        **LOCK_HELP,
        "allow_destroy": "apply a plan that destroys a function or layer version (refused otherwise)",
    },
)
@deploy_task
def infra_apply(c: Any, env: str = "local", lock_timeout: float = LOCK_TIMEOUT, allow_destroy: bool = False) -> None:
    """terraform apply (the plan shown is the plan applied) under the deploy lock; starts the emulator for local."""
    from deploy.run import infra

    infra.infra_apply_locked(run_context(c, env), lock_timeout=lock_timeout, allow_destroy=allow_destroy)


local = Collection("local", local_up, local_down, local_status)
infra = Collection("infra", infra_init, infra_plan, infra_apply)
ns = Collection(
    build_layer,
    build_function,
    lock,
    layer_report,
    publish_layer,
    attach,
    verify,
    deploy,
    status,
    rollback,
    invoke_function,
    function_logs,
    prune_layers,
    unlock,
    doctor,
    bench,
    local,
    infra,
)
ns.configure(DEFAULTS)
