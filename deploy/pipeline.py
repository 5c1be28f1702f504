"""What each task does, step by step: the glue between settings, builds, AWS and reports.

Tasks call exactly one function here; each function logs its steps and delegates the
work to the module that owns the concept. ``deploy`` chains the others and is the only
place that decides what happens when a step fails (roll the aliases back, report).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from rich.markup import escape

from deploy import build, emulator, terraform, transaction
from deploy import plan as plan_mod
from deploy import preflight as preflight_mod
from deploy.artifact import Artifact
from deploy.aws import attach as attach_mod
from deploy.aws import calls, prune, publish, share
from deploy.aws import lock as env_lock
from deploy.aws import rollback as rollback_mod
from deploy.aws.retry import RetryPolicy, error_message
from deploy.aws.state_bucket import state_outputs
from deploy.build_commands import check_flags
from deploy.config import EmulatorSettings, EnvConfig, Targets
from deploy.errors import (
    AttachError,
    AwsError,
    BuildError,
    CacheError,
    ConfigError,
    DeployError,
    DestroyRefused,
    DriftError,
    EmulatorError,
    TerraformError,
)
from deploy.lambda_facts import parse_layer_version_arn
from deploy.report import (
    DeployReport,
    FunctionResult,
    TerraformResult,
    bars,
    emit_json,
    human_size,
    item_lines,
    live,
    progress,
    say,
    step,
    table,
    transfer,
    write_report,
)
from deploy.terraform.decision import InfraDecision, read_saved_plan

if TYPE_CHECKING:
    from deploy.aws.cache import CacheMiss

#: Every retry and wait of one deploy (publish in every region, then attach) ends by then; the
#: deploy workflow's job allows 45 minutes, so a stuck deploy fails and rolls back inside it.
DEPLOY_DEADLINE_S = 1800.0


# ---------------------------------------------------------------------------- preflight


def require_prerequisites(env: EnvConfig, command: str, *, skip: tuple[str, ...] = ()) -> None:
    """Before a writing command's first write: every prerequisite checked, every problem reported at once
    (PreflightError, exit 15); what passes with a caveat (no bubblewrap on the emulator) is one line."""
    from deploy.verify.jail import announce

    result = preflight_mod.run(env, command, skip=skip)
    result.raise_for_failures()
    for note in result.notes():
        announce(note.detail)  # once: the sandbox sessions of this run do not repeat it


def doctor(env: EnvConfig, *, as_json: bool = False) -> preflight_mod.Preflight:
    """``inv doctor``: the checks of a deploy as a table; reads only, exit 0 only when all pass."""
    result = preflight_mod.run(env, "doctor")
    if as_json:
        emit_json(result.to_json())
    table(
        f"doctor {env.name}",
        ["", "check", "result", "fix"],
        [(c.mark.value, c.name, c.detail, c.fix or "") for c in result.checks],
    )
    if not result.ok:
        raise preflight_mod.PreflightError(
            f"{len(result.failures)} of {len(result.checks)} checks failed: "
            + ", ".join(c.name for c in result.failures)
        )
    say("every prerequisite of `inv deploy --env " + env.name + "` is in place")
    return result


# ---------------------------------------------------------------------------- emulator


def _emulator(env: EnvConfig) -> EmulatorSettings:
    if env.emulator is None:
        raise ConfigError(f"environment {env.name!r} has no emulator settings; local.* tasks are for `--env local`")
    return env.emulator


def emulator_up(env: EnvConfig, *, quiet_reuse: bool = False) -> emulator.EmulatorState:
    """Start (or reuse) the emulator; ``quiet_reuse`` when an earlier step of this run already said so."""
    state = emulator.up(_emulator(env), env.paths.local_state, notify=lambda text: say(escape(text)))
    if not (state.reused and quiet_reuse):
        verb = "reusing" if state.reused else "started"
        say(f"{verb} moto server pid {state.pid} on {state.url} (log: {state.logfile})")
    return state


def emulator_down(env: EnvConfig) -> None:
    say(emulator.down(_emulator(env), env.paths.local_state))


def emulator_status(env: EnvConfig) -> bool:
    """Says what runs on the emulator's port; True when a moto server answers there."""
    settings = _emulator(env)
    say(emulator.status(settings, env.paths.local_state))
    return emulator.is_moto(settings.url)


def _ensure_reachable(env: EnvConfig) -> None:
    """For local: the emulator must answer before any AWS call (start it with local.up / deploy)."""
    if env.emulator is not None:
        emulator.assert_reachable(env.emulator.url)


# ---------------------------------------------------------------------------- Terraform


def infra_init(env: EnvConfig) -> None:
    tf = terraform.terraform_for(env)
    progress(f"terraform init ({'mirror ' + str(tf.plugin_mirror) if tf.plugin_mirror else 'registry'})")
    terraform.init(tf)
    terraform.select_workspace(tf)


def _apply_context(env: EnvConfig, *, start: bool = True) -> dict[str, str]:
    """What an apply depends on beyond Terraform's files: the remote state object's ETag, and for
    local the emulator process (a restarted moto server has lost every resource). ``start=False``
    (status): a server this checkout did not start is not ours to name, so the fingerprint misses."""
    extra: dict[str, str] = {}
    if env.emulator is not None:
        if start:
            state = emulator_up(env, quiet_reuse=True)
            extra["emulator"] = f"{state.url} pid {state.pid}"
        else:
            found = emulator.inspect(env.emulator, env.paths.local_state)
            pid = found.record.pid if found.state == "running" and found.record is not None else "?"
            extra["emulator"] = f"{env.emulator.url} pid {pid}"
    extra["state"] = terraform.state_identity(env)
    return extra


def _locked(env: EnvConfig, command: str, *, timeout: float, artifact_bucket: str | None = None) -> Any:
    """The environment's deploy lock for a writing task (see deploy/aws/lock.py)."""
    return env_lock.held(env, f"inv {command}", timeout=timeout, artifact_bucket=artifact_bucket, say=progress)


def _ensure_lock_bucket(env: EnvConfig) -> None:
    """A fresh environment (or a fresh emulator) has no state bucket yet: create it before locking in it."""
    if env.emulator is not None:
        emulator_up(env, quiet_reuse=True)
    terraform.ensure_state_bucket(env)


def unlock(env: EnvConfig, lock_id: str) -> None:
    require_prerequisites(env, "unlock")
    _ensure_reachable(env)
    artifact_bucket = None if env.state or env.emulator else _targets(env).bucket
    holder = env_lock.force_unlock(env, lock_id, artifact_bucket=artifact_bucket)
    say(f"removed the deploy lock held by {holder.who()}" if holder else "removed the object that was not a lock")


def infra_apply_locked(
    env: EnvConfig, *, lock_timeout: float = env_lock.DEFAULT_TIMEOUT_S, allow_destroy: bool = False
) -> Targets:
    """``inv infra.apply``: terraform plan, saved and shown, then applied as shown, under the environment's
    lock; a plan that destroys a function or a layer version is refused unless ``allow_destroy``
    (in CI this is the job that applies, so the guard must hold here as in ``deploy``)."""
    require_prerequisites(env, "infra.apply")
    _ensure_lock_bucket(env)
    with _locked(env, "infra.apply", timeout=lock_timeout):
        decision = _terraform_needed(env, always_plan=True)
        if decision.plan is None:
            progress(f"terraform: {decision.reason}; nothing to apply")
            return terraform.load_targets(env)
        for removal in decision.removals:
            say(f"  terraform: {escape(removal)}")
        if decision.removals and not allow_destroy:
            _discard(decision)
            raise DestroyRefused(
                f"terraform's plan for {env.name} would {'; '.join(decision.removals)}; nothing was changed",
                hint=f"if that is intended, rerun with `inv infra.apply --env {env.name} --allow-destroy` "
                "(in CI: the deploy workflow's allow_destroy input)",
            )
        return infra_apply(env, plan_file=decision.plan.path)


def infra_apply(env: EnvConfig, *, only_if_changed: bool = False, plan_file: Path | None = None) -> Targets:
    """terraform apply; with ``only_if_changed`` (deploy), skip it when its fingerprint is unchanged;
    with ``plan_file``, apply exactly that saved plan (deploy's, shown and checked before).

    The caller holds the environment's lock."""
    extra = _apply_context(env)
    tf = terraform.terraform_for(env)
    if only_if_changed and not terraform.apply_needed(tf, extra=extra):
        progress("terraform: configuration, variables and state unchanged since the last apply; skipping it")
        return terraform.load_targets(env, tf=tf)
    try:
        _terraform_with_progress(
            env, "apply", lambda log, events: terraform.apply(tf, log=log, events=events, plan_file=plan_file)
        )
    finally:
        if plan_file is not None:
            plan_file.unlink(missing_ok=True)
    terraform.record_apply(tf, extra={**extra, "state": terraform.state_identity(env)})
    return terraform.load_targets(env, tf=tf)


def _terraform_log(env: EnvConfig, command: str) -> Path:
    """``.build/logs/<time>-terraform-<command>-<env>.log``: Terraform's whole output, kept out of the terminal."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    return env.paths.build / "logs" / f"{stamp}-terraform-{command}-{env.name}.log"


def _terraform_with_progress(env: EnvConfig, command: str, run: Any) -> terraform.Progress:
    """Run ``run(log, events)`` behind one progress line fed by Terraform's -json events; the
    full output goes to a log file, printed (its last lines and path) only when Terraform fails."""
    log = _terraform_log(env, command)
    counts = terraform.Progress()
    started = time.monotonic()
    title = f"terraform {command} ({env.name})"
    with step(f"{title}: planning", announce=False) as line:

        def on_event(event: Mapping[str, Any]) -> None:
            was_planned = counts.planned
            counts.feed(event)
            if counts.planned and not was_planned and not live() and command == "apply":  # a plan's ✓ line says it
                progress(f"{title}: {counts.summary()}")
            line.update(f"{title}: {counts.line()}")

        run(log, on_event)
    done = "no changes" if counts.planned and not counts.total else counts.summary()
    if command == "apply" and counts.total:
        done = f"{counts.add} added, {counts.change} changed, {counts.remove} destroyed"
        if counts.done != counts.total:
            done += f" ({counts.done} of {counts.total} done)"
    say(f"[green]✓[/] {title}: {done} in {time.monotonic() - started:.0f} s")
    return counts


def infra_plan(env: EnvConfig, *, detailed_exitcode: bool = False) -> bool:
    _ensure_reachable(env)
    tf = terraform.terraform_for(env)
    planned: list[str] = []
    result: list[bool] = []

    def plan_run(log: Path, events: Any) -> None:
        def collect(event: Mapping[str, Any]) -> None:
            events(event)
            # Only what the plan would change: drift Terraform then ignores (ignore_changes) is in the log.
            if event.get("type") == "planned_change":
                planned.append(str(event.get("@message", "")))

        result.append(terraform.plan(tf, detailed_exitcode=True, log=log, events=collect))

    _terraform_with_progress(env, "plan", plan_run)
    changes = result[0]
    for message in planned:
        say(f"  {escape(message)}")
    if changes and detailed_exitcode:
        raise DriftError(f"terraform plan for {env.name} has changes (drift between state and configuration)")
    return changes


def _targets(env: EnvConfig) -> Targets:
    _ensure_reachable(env)
    return terraform.load_targets(env)


# ---------------------------------------------------------------------------- build


def build_function(env: EnvConfig) -> build.BuildResult:
    return build.build_function(build.function_plan(env), progress=progress)


def build_layer(
    env: EnvConfig,
    *,
    architecture: str | None = None,
    builder: str | None = None,
    function_unzipped: int = 0,
    remote_cache: bool = True,
) -> build.BuildResult:
    check_flags(architecture, builder)
    plan = build.layer_plan(env, builder=builder, architecture=architecture)
    fetched = False
    if remote_cache and env.remote_cache.enabled and build.existing_layer(plan) is None:
        fetched = read_through_cache(env, plan)
    # After a fetch the build only rechecks the budget: its "already built" line would mislead.
    result = build.build_layer(plan, progress=None if fetched else progress, function_unzipped=function_unzipped)
    if fetched and result.reused:
        result = dataclasses.replace(result, fetched=True)
        progress(f"layer {plan.identity.short} reused from the remote cache: nothing installed")
    return result  # build_layer said what it did (and its warnings), once


def read_through_cache(env: EnvConfig, plan: build.LayerPlan) -> bool:
    """Fetch this identity's layer from S3 instead of building it, when another machine built it.

    Reads only (the bucket's name comes from the state object; nothing is created to find it). The
    shared cache bucket (``remote_cache.bucket``) comes first, then the environment's artifact bucket.
    A miss (nothing applied yet, emulator down, bucket or object missing) is one line and a local
    build; a checksum disagreement is a CacheError. The shared bucket, which another environment's
    roles write, is read only for bytes ``remote_cache.publisher`` published with this identity
    (Lambda's CodeSha256; other bytes, or no such version, are a miss), and what it gives is
    audited again (AuditError on failure); one from the environment's
    own bucket was audited before this environment's own deploy role uploaded it, and whoever can
    replace it there can already publish a layer. Either error leaves no fetched file behind."""
    from deploy.aws import cache

    # (bucket, region, the CodeSha256 its publisher vouches for: None for the env's own bucket)
    sources: list[tuple[str, str, str | None]] = []
    misses: list[str] = []
    if env.remote_cache.bucket:
        publisher = _publisher_code_sha256(env, plan)
        if isinstance(publisher, cache.CacheMiss):
            misses.append(f"s3://{env.remote_cache.bucket}: {publisher.reason}")
        else:
            sources.append((env.remote_cache.bucket, env.remote_cache.region or env.region, publisher))
    published: tuple[str, str] | None = None
    try:
        targets, published = _published_identity(env, plan)
        # The env's own bucket, even when named as the shared one too: its writers can publish anyway.
        if targets.bucket not in [bucket for bucket, _, _ in sources]:
            sources.append((targets.bucket, targets.region, None))
    except (TerraformError, EmulatorError, AwsError, ConfigError) as exc:
        misses.append(exc.message.splitlines()[0])
    except (BotoCoreError, ClientError) as exc:
        misses.append(error_message(exc))
    for bucket, region, vouched in sources:
        audit_again = vouched is not None
        try:
            got = cache.fetch_layer(
                calls.client(env, "s3", region),
                bucket,
                plan.digest,
                plan.zip_path.parent,
                published_code_sha256=published[1] if published else None,
                trusted_code_sha256=vouched,
            )
        except (BotoCoreError, ClientError) as exc:
            got = cache.CacheMiss(reason=f"s3://{bucket}: {error_message(exc)}")
        if isinstance(got, cache.CacheHit):
            progress(f"remote cache: layer {plan.identity.short} fetched from {got.source}")
            if audit_again:
                try:
                    build.audit_fetched_layer(plan, got.artifact)
                except BaseException:
                    for path in (plan.manifest_path, plan.zip_path, plan.sbom_path):
                        path.unlink(missing_ok=True)
                    raise
            return True
        misses.append(got.reason)
    progress(f"remote cache: {'; '.join(misses) or 'no bucket to read'}; building locally")
    return False


def _publisher_code_sha256(env: EnvConfig, plan: build.LayerPlan) -> str | CacheMiss:
    """Reads only: what ``remote_cache.publisher`` published with this identity (its CodeSha256),
    asked of Lambda in the publisher's region (settings refuse a shared bucket without a publisher)."""
    from deploy.aws import cache

    publisher = env.remote_cache.publisher
    if publisher is None:  # EnvConfig built in code, bypassing the settings' check: trust nothing
        return cache.CacheMiss(reason="no remote_cache.publisher vouches for the shared bucket")
    region = publisher.split(":")[3]
    try:
        lam = calls.client(env, "lambda", region)
    except BotoCoreError as exc:  # e.g. a profile that is not there: still only a miss
        return cache.CacheMiss(reason=f"publisher {publisher} unreachable ({exc})")
    return cache.publisher_code_sha256(lam, publisher, plan.digest)


def _built_layer(env: EnvConfig) -> Artifact:
    """The layer artifact for the env's current identity; refuse to go on without one."""
    plan = build.layer_plan(env)
    artifact = build.existing_layer(plan)
    if artifact is None:
        raise BuildError(
            f"no layer artifact for identity {plan.identity.digest[:12]} in {env.paths.build / 'layers'}",
            hint=f"run `inv build-layer --env {env.name}` first",
        )
    artifact.check()
    return artifact


def layer_report(env: EnvConfig, *, top: int = 15, imports: bool = False) -> None:
    from deploy.audit import LAMBDA_UNZIPPED_LIMIT

    artifact = _built_layer(env)
    if imports:
        _import_report(env, artifact, top=top)
        return
    rows = [(pkg.name, pkg.size) for pkg, _share in build.top_packages(artifact, top)]
    say(f"layer {artifact.identity[:12]}: {human_size(artifact.unzipped_size)} unzipped of the 250 MB budget")
    say(bars(rows, budget=LAMBDA_UNZIPPED_LIMIT))
    share = 100 * artifact.unzipped_size / LAMBDA_UNZIPPED_LIMIT
    say(f"total {human_size(artifact.unzipped_size)} = {share:.1f}% of Lambda's unzipped limit")


def _import_report(env: EnvConfig, layer: Artifact, *, top: int) -> None:
    """Each handler's import under ``python -X importtime`` in the sandbox: what to make lazy."""
    import tempfile

    from deploy import coldstart
    from deploy.verify import find_runtime_python

    python = find_runtime_python(env.python_version)
    function = build.build_function(build.function_plan(env)).artifact
    with tempfile.TemporaryDirectory(prefix="imports-", dir=env.paths.build) as tmp:
        tree = coldstart.extract(layer, function, Path(tmp) / "tree")
        for key, module in coldstart.handlers(terraform.declared_functions(env)).items():
            progress(f"{key}: importing {module} under -X importtime")
            init = coldstart.import_once(env, python, tree, key, module, Path(tmp) / "run" / key)
            rows = []
            for pkg in coldstart.import_profile(env, python, tree, key, module, Path(tmp) / "profile" / key)[:top]:
                size, where = coldstart.package_size(tree, pkg.name)
                cumulative, own = f"{pkg.cumulative_s * 1000:.0f} ms", f"{pkg.self_s * 1000:.0f} ms"
                rows.append((pkg.name, cumulative, own, human_size(size) if size else "-", where))
            table(
                f"{key} ({module}): init {init * 1000:.0f} ms",
                ["package", "cumulative", "self", "size", "in"],
                rows,
            )


# ---------------------------------------------------------------------------- AWS steps


def _aws_progress(what: str, message: str) -> None:
    progress(f"{what}: {message}")


@contextlib.contextmanager
def _attach_lines(targets: Targets) -> Any:
    """attach's per-function steps as one line per function: a spinner showing the current
    step, then what was done (the versions are in the deploy table, said once)."""
    names = [fn.name for fn in targets.functions]
    steps: dict[str, list[str]] = {name: [] for name in names}
    with item_lines(names, "waiting", idle="unchanged") as lines:

        def on_step(name: str, message: str) -> None:
            if name not in steps:
                progress(f"{name}: {message}")  # not one function (the code upload)
            elif message.startswith(("failed", "rolling")):
                lines.done(name, False, message)
            elif message.startswith("moving alias"):
                done = [*steps[name], "alias moved"]
                lines.done(name, True, ", ".join(done))
            else:
                steps[name].append(
                    message.replace("updating code", "code updated")
                    .replace("setting layers", "layers set")
                    .replace("publishing a version", "version published")
                )
                lines.update(name, message)

        yield on_step


def _publish(
    env: EnvConfig, targets: Targets, layer: Artifact, *, dry_run: bool, policy: RetryPolicy | None = None
) -> list[publish.PublishResult]:
    sharing = bool(env.share.accounts or env.share.organization_id)
    if sharing:
        share.grants(env.share)  # a refused (e.g. public) share fails here, before any upload
    results = publish.publish_all(
        env,
        plan_mod.targets_by_region(env, targets),
        layer,
        dry_run=dry_run,
        progress=_aws_progress,
        policy=policy,
        transfer=transfer,
    )
    published = [r for r in results if isinstance(r, publish.PublishResult)]
    if sharing:
        for result in published:
            if result.layer_version_arn is None:
                continue  # dry run of a version that does not exist yet
            shared = share.share_layer(env, result.layer_version_arn, env.share, dry_run=dry_run)
            if shared.added:
                verb = "would grant" if dry_run else "granted"
                _aws_progress(result.region, f"{verb} layer use: {', '.join(shared.added)}")
    return published


def _pub_json(result: publish.PublishResult) -> dict[str, Any]:
    action = "published" if result.published else "reused"
    if result.dry_run:
        action = "would publish" if result.published else "would reuse"
    return {**dataclasses.asdict(result), "action": action}


def publish_layer(
    env: EnvConfig, *, dry_run: bool = False, as_json: bool = False, lock_timeout: float = env_lock.DEFAULT_TIMEOUT_S
) -> list[publish.PublishResult]:
    require_prerequisites(env, "publish-layer")
    targets = _targets(env)
    layer = _built_layer(env)
    if dry_run:
        results = _publish(env, targets, layer, dry_run=True)
    else:
        with _locked(env, "publish-layer", timeout=lock_timeout, artifact_bucket=targets.bucket):
            results = _publish(env, targets, layer, dry_run=False)
    if as_json:
        emit_json({"env": env.name, "publish": [_pub_json(r) for r in results]})
    else:
        table(
            f"publish-layer {env.name}",
            ["region", "layer version", "uploaded", "action"],
            [(r.region, r.layer_version_arn or "(new)", r.uploaded, _pub_json(r)["action"]) for r in results],
        )
    return results


def _layer_arn_for_attach(env: EnvConfig, targets: Targets, layer: Artifact) -> str:
    lam = calls.client(env, "lambda", targets.region)
    found = publish.find_layer_version(lam, targets.layer_name, layer.code_sha256)
    if found is None:
        raise AttachError(
            f"layer {layer.identity[:12]} is not published as a version of {targets.layer_name}",
            hint=f"run `inv publish-layer --env {env.name}` first",
        )
    return found[0]


def live_change(old: Any, new: Any) -> str:
    """``1 → 2``, or ``3 (unchanged)`` when the alias did not move (never ``3 → None``)."""
    if new is None or str(new) == str(old):
        return f"{old} (unchanged)"
    return f"{old} → {new}"


def _attach_rows(result: attach_mod.AttachResult) -> list[tuple[str, str, str, str]]:
    return [
        (o.name, o.status, live_change(o.old_version, o.new_version), o.error or "")
        for o in sorted(result.outcomes, key=lambda o: o.name)
    ]


def _show_transaction(title: str, report: transaction.TransactionReport, *, as_json: bool, env: EnvConfig) -> None:
    if as_json:
        emit_json({"env": env.name, **report.to_json()})
        return
    table(
        title,
        ["function", "outcome", "live", "detail"],
        [
            (f.name, f.outcome, live_change(f.old_version, f.new_version), f.detail or "")
            for f in sorted(report.functions, key=lambda f: f.name)
        ],
    )


def attach(
    env: EnvConfig, *, dry_run: bool = False, as_json: bool = False, lock_timeout: float = env_lock.DEFAULT_TIMEOUT_S
) -> None:
    require_prerequisites(env, "attach")
    targets = _targets(env)
    layer = _built_layer(env)
    function = build.build_function(build.function_plan(env)).artifact
    arn = _layer_arn_for_attach(env, targets, layer)
    plan_mod.check_platform(env, targets, layer)  # before any write: the layer fits every function
    plan_mod.check_layer_version(env, targets, arn)
    if dry_run:
        plan = attach_mod.plan_attach(env, targets, function=function, layer_version_arn=arn)
        _show_attach(attach_mod.apply_attach(env, targets, plan, dry_run=True), as_json=as_json, env=env)
        return
    with _locked(env, "attach", timeout=lock_timeout, artifact_bucket=targets.bucket):
        # Planned under the lock, so a writer that finished while we waited is seen.
        plan = attach_mod.plan_attach(env, targets, function=function, layer_version_arn=arn)
        txn = transaction.Transaction(env, targets, say=progress)
        try:
            with txn, _attach_lines(targets) as on_step:
                attach_mod.apply_attach(
                    env,
                    targets,
                    plan,
                    function=function,
                    max_workers=env.max_workers,
                    progress=on_step,
                    record=txn,
                )
        finally:
            if txn.report is not None:
                _show_transaction(f"attach {env.name}", txn.report, as_json=as_json, env=env)


def _show_attach(result: attach_mod.AttachResult, *, as_json: bool, env: EnvConfig) -> None:
    if as_json:
        emit_json({"env": env.name, **result.to_json()})
    else:
        table(f"attach {env.name}", ["function", "outcome", "live", "error"], _attach_rows(result))


def status(env: EnvConfig, *, as_json: bool = False) -> plan_mod.DeployPlan:
    """The deploy plan, read the way ``deploy`` reads it: exit 0 in sync, 12 out of sync (a deploy would
    change something, "not applied yet" included), any other code when it could not tell (the error says why).

    Reads only, and quickly: no layer is installed or zipped (its identity comes from the lock and the
    settings; a layer neither built here nor published is planned as "build and publish"), no emulator is
    started, no state bucket, workspace or lock is created; Terraform plans only when the configuration
    differs from what the state records as applied."""
    rolled_back = None
    if env.emulator is not None and not emulator.is_moto(env.emulator.url):
        plan = plan_mod.unapplied(env, "not applied yet: the emulator is not running (a new moto server starts empty)")
    else:
        function, layer = _build_artifacts(env, remote_cache=True, defer_layer=True, build_missing=False)
        plan, targets, _decision = _read_plan(env, layer=layer, function=function, apply_infra=True, read_only=True)
        rolled_back = rollback_mod.describe_rolled_back(rollback_mod.rolled_back(env, targets)) if targets else None
    if as_json:
        emit_json({"env": env.name, **plan.to_json(), "rolled_back": rolled_back})
    _show_plan(f"status {env.name}", plan)
    if rolled_back:
        say(f"{env.name} is {rolled_back}; the next deploy replaces the rollback")
    if not plan.empty:
        raise DriftError(f"out of sync: a deploy of {env.name} would change:\n  " + "\n  ".join(plan.lines()))
    say("in sync: a deploy would change nothing")
    return plan


def _show_plan(title: str, plan: plan_mod.DeployPlan) -> None:
    if plan.functions:
        table(
            title,
            ["function", "live", "would"],
            [(f.name, f.alias_from, f.describe()) for f in sorted(plan.functions, key=lambda f: f.name)],
        )
    for line in plan.lines():
        if not any(line.startswith(f"{f.name}:") for f in plan.functions):
            say(f"  - {line}")


def _terraform_layer_versions(env: EnvConfig) -> dict[int, str]:
    """The layer version Terraform created (and would recreate if pruned) is never pruned."""
    outputs = terraform.output_json(terraform.terraform_for(env))
    arn = (outputs.get("layer_bootstrap_version_arn") or {}).get("value")
    parsed = parse_layer_version_arn(arn) if isinstance(arn, str) else None
    if parsed is None:
        return {}
    return {parsed.version: "terraform (aws_lambda_layer_version.this)"}


def rollback(
    env: EnvConfig,
    *,
    function: str | None = None,
    to: str | None = None,
    dry_run: bool = False,
    lock_timeout: float = env_lock.DEFAULT_TIMEOUT_S,
) -> None:
    require_prerequisites(env, "rollback")
    targets = _targets(env)
    rollback_mod.chosen(targets, function, to)  # a bad --function or --to: refused before the lock
    if dry_run:
        outcomes = rollback_mod.rollback(env, targets, function=function, to=to, dry_run=True)
    else:
        with (
            _locked(env, "rollback", timeout=lock_timeout, artifact_bucket=targets.bucket),
            transaction.Transaction(env, targets, say=progress) as txn,
        ):
            outcomes = rollback_mod.rollback(env, targets, function=function, to=to, record=txn)
    table(
        f"rollback {env.name}" + (" (dry run)" if dry_run else ""),
        ["function", "live", "changed"],
        [(o.name, f"{o.from_version} → {o.to_version}", o.changed) for o in outcomes],
    )


def prune_layers(
    env: EnvConfig, *, keep: int = 3, yes: bool = False, lock_timeout: float = env_lock.DEFAULT_TIMEOUT_S
) -> None:
    if keep < 1:
        raise ConfigError("--keep must be at least 1 (the newest layer version is never pruned)")
    require_prerequisites(env, "prune-layers")
    targets = _targets(env)
    plan = prune.plan_prune(env, targets, keep=keep, protect=_terraform_layer_versions(env))
    for version, users in sorted(plan.protected.items()):
        say(f"keeping {targets.layer_name}:{version}: referenced by {', '.join(users)}")
    if not plan.delete:
        say("nothing to prune")
        return
    verb = "deleting" if yes else "would delete (rerun with --yes)"
    say(f"{verb}: " + ", ".join(f"{targets.layer_name}:{v}" for v in plan.delete))
    with contextlib.ExitStack() as stack:
        if yes:
            stack.enter_context(_locked(env, "prune-layers", timeout=lock_timeout, artifact_bucket=targets.bucket))
        result = prune.prune(env, targets, plan, yes=yes)
    if yes:
        say(f"deleted {len(result.deleted)} layer version(s); skipped {len(result.skipped)}")


# ---------------------------------------------------------------------------- verify


def _partial(fn: Any) -> bool:
    """Passed, but not in full: only imported (no smoke events), or a smoke case skipped: not a ✓."""
    return bool(fn.import_only or any(getattr(r, "skipped", False) for r in fn.results))


def _verify_line(fn: Any) -> str:
    """``import 1972 ms; health ok, admin-cleanup-dry-run ok; 408 ms``: one function's verify result;
    ``import 112 ms; import only (no smoke events)`` for a function whose handler never ran."""
    if fn.reused:
        return str(fn.reused)
    if fn.import_only:
        return f"import {fn.import_ms or 0:.0f} ms; import only (no smoke events)"
    smoke = ", ".join(
        f"{r.case} {'skipped' if getattr(r, 'skipped', False) else ('ok' if r.ok else 'FAILED')}" for r in fn.results
    )
    parts = []
    if fn.import_ms is not None:
        parts.append(f"import {fn.import_ms:.0f} ms")
    parts.append(smoke or (fn.error or "no result"))
    if fn.results:
        parts.append(f"{sum(r.duration_ms or 0 for r in fn.results):.0f} ms")
    return "; ".join(parts)


def _show_failures(report: Any) -> None:
    if report.import_only:
        mark = "[red]✗[/]" if report.strict else "[yellow]○[/]"
        say(f"{mark} import only (no smoke events in invoke.yaml): {escape(', '.join(report.import_only))}")
    for fn in report.functions:
        if not fn.ok:
            tail = fn.traceback_tail or next((r.traceback_tail for r in fn.results if r.traceback_tail), None)
            for problem in fn.problems():
                say(f"[red]✗[/] {escape(problem)}")
            if tail:
                say(escape(tail))


def _extracted(env: EnvConfig) -> Any:
    """Verify's extracted zips, kept by sha256 under .build/extracted: the deployed verify and later
    deploys reuse the layer's tree instead of extracting 84 MB again (see deploy/verify/extracted.py)."""
    from deploy.verify.extracted import ExtractionCache

    return ExtractionCache(root=env.paths.build / "extracted")


def _verify_local(env: EnvConfig, targets: Targets, layer: Artifact, function: Artifact) -> Any:
    from deploy import verify as verify_mod
    from deploy.terraform.functions import as_declared
    from deploy.verify.local import configured

    progress(f"verify --local: each handler on the built zips under python{env.python_version}")
    # As Lambda has them, so that the sandbox is the one the deployed verify builds (deploy.verify.reuse).
    config = configured(calls.client(env, "lambda", targets.region), targets.functions)
    targets = as_declared(targets, terraform.declared_functions(env))  # the map may be ahead of the state
    with item_lines([fn.name for fn in targets.functions], "running its smoke events") as lines:
        report = verify_mod.verify_local(
            env,
            targets,
            layer=layer,
            function=function,
            environment={key: c.variables for key, c in config.items()},
            memory_mb={key: c.memory_mb for key, c in config.items()},
            on_result=lambda fn: lines.done(fn.name, fn.ok, _verify_line(fn), import_only=_partial(fn)),
            trees=_extracted(env),
        )
    _show_failures(report)
    return report


def _verify_offline(env: EnvConfig) -> Any:
    """verify --local without AWS (CI's build job holds no credentials): deploy.verify.local."""
    from deploy.verify.local import declared_targets, verify_offline

    progress(f"verify --local: each declared handler on the built zips under python{env.python_version}, no AWS")
    function = build.build_function(build.function_plan(env)).artifact
    layer = _built_layer(env)
    with item_lines([fn.name for fn in declared_targets(env)], "running its smoke events") as lines:
        report = verify_offline(
            env,
            layer=layer,
            function=function,
            on_result=lambda fn: lines.done(fn.name, fn.ok, _verify_line(fn), import_only=_partial(fn)),
            trees=_extracted(env),
        )
    _show_failures(report)
    return report


def _verify_deployed(
    env: EnvConfig, targets: Targets, layer: Artifact | None, function: Artifact | None, ran: Any = None
) -> Any:
    from deploy import verify as verify_mod

    progress(f"verify: the deployed bytes (fetched, checked against CodeSha256) under python{env.python_version}")
    with item_lines([fn.name for fn in targets.functions], "fetching and running") as lines:
        report = verify_mod.verify_deployed(
            env,
            targets,
            expected_layer=layer,
            expected_function=function,
            on_result=lambda fn: lines.done(fn.name, fn.ok, _verify_line(fn), import_only=_partial(fn)),
            trees=_extracted(env),
            ran_locally=ran,
        )
    _show_failures(report)
    return report


def verify(env: EnvConfig, *, local: bool = False, as_json: bool = False, strict: bool = False) -> None:
    env = replace(env, verify=replace(env.verify, strict=strict))
    report = _verify_offline(env) if local else _verify_deployed(env, _targets(env), None, None)
    if as_json:
        emit_json(report.to_json())
    report.raise_for_failures()


# ---------------------------------------------------------------------------- deploy


def _artifact_json(artifact: Artifact) -> dict[str, Any]:
    out = {
        "identity": artifact.identity,
        "sha256": artifact.sha256,
        "code_sha256": artifact.code_sha256,
        "s3_key": artifact.s3_key,
        "zipped_size": artifact.zipped_size,
        "unzipped_size": artifact.unzipped_size,
    }
    info = artifact.inputs.get("version_info")
    if artifact.kind == "function" and isinstance(info, dict):
        # Beside the zip, not in it: the function's identity is its content (deploy.build).
        out |= {"commit": info.get("commit"), "dirty": info.get("dirty")}
    return out


def _build_artifacts(
    env: EnvConfig,
    *,
    remote_cache: bool,
    report: DeployReport | None = None,
    defer_layer: bool = False,
    build_missing: bool = True,
) -> tuple[Artifact, Artifact | str]:
    """Build and audit both artifacts: a layer over budget, for the wrong platform or with a secret fails
    here, before any Terraform call or AWS write (the remote cache only reads).

    With ``defer_layer``, a layer this machine has not built but that is already published under its
    identity is described by its cached manifest only (its zip absent): the plan needs no bytes, and
    ``_layer_bytes`` fetches and audits them only when the plan turns out to change something.

    ``build_missing=False`` (status): a layer neither built here nor published is not built either; its
    identity (from the lock and the settings) stands for it."""
    function = build_function(env).artifact
    if report is not None:
        report.function = _artifact_json(function)
    if not build_missing:
        plan = build.layer_plan(env)
        return function, build.existing_layer(plan) or _published_layer(env, plan) or plan.digest
    if defer_layer and remote_cache and env.remote_cache.enabled:
        plan = build.layer_plan(env)
        published = None if plan.manifest_path.is_file() else _published_layer(env, plan)
        if published is not None:
            progress(f"layer {plan.identity.short} is published already: planning from its manifest, not fetching it")
            if report is not None:
                report.layer = {**_artifact_json(published), "source": "published already, not fetched"}
            return function, published
    built = build_layer(env, function_unzipped=function.unzipped_size, remote_cache=remote_cache)
    if report is not None:
        report.layer = {**_artifact_json(built.artifact), "source": built.source}
    return function, built.artifact


def _prebuilt(env: EnvConfig, report: DeployReport) -> tuple[Artifact, Artifact]:
    """``--prebuilt``: the artifacts CI's build job handed over, checked; nothing built (deploy.ci_artifacts)."""
    from deploy import ci_artifacts

    function, layer = ci_artifacts.prebuilt(env.paths.build, layer_identity=build.layer_plan(env).digest)
    progress(f"--prebuilt: function code {function.sha256[:12]} and layer {layer.identity[:12]}, sha256 checked")
    report.function = _artifact_json(function)
    report.layer = {**_artifact_json(layer), "source": "prebuilt (handed over, sha256 checked against its manifest)"}
    return function, layer


def _published_identity(env: EnvConfig, plan: build.LayerPlan) -> tuple[Targets, tuple[str, str] | None]:
    """Reads only: the env's targets (creating no state bucket or workspace to find them) and the
    layer version already published for this identity, as (ARN, CodeSha256)."""
    if env.emulator is not None:
        emulator.assert_reachable(env.emulator.url)
    targets = terraform.load_targets(env, read_only=True)
    lam = calls.client(env, "lambda", targets.region)
    return targets, publish.find_version_by_identity(lam, targets.layer_name, plan.digest)


def _published_layer(env: EnvConfig, plan: build.LayerPlan) -> Artifact | None:
    """Reads only: the layer version published for this identity, as its cached manifest describes it."""
    from deploy.aws import cache

    try:
        targets, found = _published_identity(env, plan)
        if found is None:
            return None
        s3 = calls.client(env, "s3", targets.region)
        return cache.published_layer(s3, targets.bucket, plan.digest, plan.zip_path, published_code_sha256=found[1])
    except (TerraformError, EmulatorError, AwsError, ConfigError, BotoCoreError, ClientError):
        return None  # no shortcut: the layer is built or fetched as usual


def _layer_bytes(
    env: EnvConfig, layer: Artifact, function: Artifact, report: DeployReport, *, remote_cache: bool
) -> Artifact:
    """The planned layer's zip on this machine: fetched (and audited) or built now, if the plan was read
    from its manifest alone; it must be the bytes the plan was computed for."""
    if layer.path.exists():
        return layer
    built = build_layer(env, function_unzipped=function.unzipped_size, remote_cache=remote_cache)
    if built.artifact.sha256 != layer.sha256:
        raise CacheError(
            f"layer {layer.identity[:12]} was planned as the published sha256 {layer.sha256[:16]}…, "
            f"but {built.source} sha256 {built.artifact.sha256[:16]}…",
            hint="one identity built into two different zips: a reproducibility bug; report it",
        )
    report.layer = {**_artifact_json(built.artifact), "source": built.source}
    return built.artifact


def _terraform_needed(env: EnvConfig, *, read_only: bool = False, always_plan: bool = False) -> InfraDecision:
    """Reads only (AWS and Terraform state). In order, cheapest first:

    1. the fingerprint of the last apply on this machine;
    2. the configuration digest the state records (one GET: a fresh runner, another clone);
    3. ``terraform plan``, saved (``-out``) so that the apply runs exactly the plan that was shown;
       a plan without changes is remembered as the fingerprint, so a no-change deploy never runs
       ``terraform apply`` (which writes state).

    ``read_only`` (status): start no emulator, create no state bucket, remember nothing; an
    environment without state is "not applied yet" without a plan. ``always_plan`` (infra.apply):
    only the plan decides, so drift made outside Terraform is repaired too."""
    tf = terraform.terraform_for(env)
    if read_only:
        tf = dataclasses.replace(tf, prepare=None)  # never create the state bucket to answer a question
    extra = _apply_context(env, start=not read_only)
    if not always_plan and not terraform.apply_needed(tf, extra=extra):
        return InfraDecision(needed=False, reason="configuration, variables and state unchanged since the last apply")
    outputs = None if always_plan else state_outputs(env)
    if outputs is None and read_only:
        return InfraDecision(needed=True, reason="not applied yet")
    if outputs is not None and terraform.applied_digest(outputs) == tf.variables.get(terraform.DIGEST_VARIABLE):
        if not read_only:
            terraform.record_apply(tf, extra=extra)
        return InfraDecision(needed=False, reason="the state records this configuration as applied")
    progress("terraform plan (the configuration differs from what the state records as applied)")
    plan_file = tf.data_dir / f"deploy-{os.getpid()}.tfplan"
    changes: list[bool] = []
    _terraform_with_progress(
        env,
        "plan",
        lambda log, events: changes.append(
            terraform.plan(tf, detailed_exitcode=True, log=log, events=events, lock=False, out=plan_file)
        ),
    )
    if not changes[0]:
        plan_file.unlink(missing_ok=True)
        if not read_only:
            terraform.record_apply(tf, extra=extra)
        return InfraDecision(needed=False, reason="terraform plan has no changes")
    # Read after the plan: selecting a new workspace wrote its empty state first. Should another writer
    # slip in between, Terraform refuses the saved plan as stale (a clear error; a rerun plans again).
    state = terraform.state_identity(env)
    try:
        saved = read_saved_plan(terraform.show_plan_json(tf, plan_file), env=env.name, path=plan_file)
    finally:
        if read_only:
            plan_file.unlink(missing_ok=True)
    return InfraDecision(needed=True, reason=f"terraform plan: {saved.summary()}", state=state, plan=saved)


def _plan_targets(env: EnvConfig, *, applied: bool, read_only: bool = False) -> Targets:
    """Terraform's outputs. ``applied``: the last apply (or a plan without changes) stands for exactly
    this configuration, these variables and this state object (``_terraform_needed``), so the outputs
    recorded in the state object are what ``terraform output -json`` would print: one GET instead of
    two Terraform processes (workspace select, output), about 1.2 s of a code-only deploy."""
    if applied or read_only:
        try:
            return terraform.load_targets(env, read_only=True)
        except TerraformError:
            if read_only:
                raise  # status never runs Terraform's init (it would create the state bucket)
            # no state object to read (another backend, no access): ask Terraform
    return terraform.load_targets(env)


def _read_plan(
    env: EnvConfig,
    *,
    layer: Artifact | str,
    function: Artifact,
    apply_infra: bool,
    previous: InfraDecision | None = None,
    read_only: bool = False,
) -> tuple[plan_mod.DeployPlan, Targets | None, InfraDecision]:
    """The one answer to "what would a deploy change" (status, --dry-run and deploy all call this).

    ``previous``: the decision read before the lock; while the state object is unchanged it stands
    (its saved plan is still the one to apply), so a first deploy plans once, not twice. ``layer`` is
    an identity alone for status, when this machine has no such layer and none is published."""
    if not apply_infra:
        decision = InfraDecision(needed=False, reason="--skip-infra")
    elif previous is not None and previous.plan is not None and terraform.state_identity(env) == previous.state:
        decision = previous
    else:
        decision = _terraform_needed(env, read_only=read_only)
    planned = decision.plan.planned if decision.plan is not None else None
    if planned is not None and isinstance(layer, Artifact):
        plan_mod.check_platform(env, planned, layer)  # the runtime and architecture the apply will set
    try:
        targets = _plan_targets(env, applied=apply_infra and not decision.needed, read_only=read_only)
    except TerraformError:
        if not apply_infra:
            raise
        # nothing exists yet: apply first, then everything
        return plan_mod.unapplied(env, removals=decision.removals), None, decision
    if planned is not None:  # a function the apply removes is not planned for (it is listed as a removal)
        staying = {fn.key for fn in planned.functions}
        targets = dataclasses.replace(targets, functions=tuple(f for f in targets.functions if f.key in staying))
    if isinstance(layer, str):
        plan = plan_mod.compute_unbuilt(
            env,
            targets,
            identity=layer,
            function=function,
            terraform_apply=decision.needed,
            terraform_reason=decision.reason,
            removals=decision.removals,
        )
        return plan, targets, decision
    plan = plan_mod.compute(
        env,
        targets,
        layer=layer,
        function=function,
        terraform_apply=decision.needed,
        terraform_reason=decision.reason,
        removals=decision.removals,
        # Before an apply the state's runtime and architecture are the old ones: the planned ones were checked.
        check=not decision.needed,
    )
    return plan, targets, decision


def deploy(
    env: EnvConfig,
    *,
    dry_run: bool = False,
    as_json: bool = False,
    report_file: str | None = None,
    apply_infra: bool = True,
    verify_local_first: bool = True,
    remote_cache: bool = True,
    lock_timeout: float = env_lock.DEFAULT_TIMEOUT_S,
    allow_destroy: bool = False,
    strict: bool = False,
    prebuilt: bool = False,
) -> DeployReport:
    """build + audit, read the plan, then (locked) terraform apply, publish, attach, verify; all or nothing.

    An empty plan takes no lock and makes no write call, Terraform included (counted, and reported as
    ``aws_write_calls`` and ``terraform``). ``strict``: a function without smoke events fails verify.
    """
    env = replace(env, verify=replace(env.verify, strict=strict))
    started = time.monotonic()
    report = DeployReport(env=env.name, dry_run=dry_run)
    with calls.count_writes() as writes:
        try:
            _deploy_steps(
                env,
                report,
                dry_run=dry_run,
                apply_infra=apply_infra,
                verify_local_first=verify_local_first,
                remote_cache=remote_cache,
                lock_timeout=lock_timeout,
                allow_destroy=allow_destroy,
                prebuilt=prebuilt,
            )
            report.ok = True
        except DeployError as exc:
            report.error = str(exc)
            raise
        finally:
            report.aws_write_calls = writes.count
            report.aws_write_operations = [f"{svc}:{op}" for svc, op in writes.calls]
            report.seconds = round(time.monotonic() - started, 2)
            if report_file:
                json_path, md_path = write_report(report.to_json(), Path(report_file))
                say(f"report written to {json_path} and {md_path}")
            if as_json:
                emit_json(report.to_json())
    _summary(report)
    return report


def _summary(report: DeployReport) -> None:
    functions = report.functions
    if functions:
        table(
            f"deploy {report.env}" + (" (dry run)" if report.dry_run else ""),
            ["function", "outcome", "live"],
            [(f.name, f.status, live_change(f.old_version, f.new_version)) for f in functions],
        )
    changed = sum(1 for f in functions if f.status != "unchanged")
    if report.dry_run:
        verdict = f"dry run: {changed} function(s) would change" if changed else "dry run: nothing would change"
    else:
        verdict = "deployed" if changed else "nothing changed"
    tf = report.terraform
    say(
        f"{verdict} in {report.seconds} s; {report.aws_write_calls} AWS write call(s); terraform apply {tf.apply}"
        f"{', state written' if tf.state_written else ', state not written'}"
    )


def _planned_functions(plan: plan_mod.DeployPlan, *, dry_run: bool) -> list[FunctionResult]:
    return [
        FunctionResult(
            name=f.name,
            status=("would update" if dry_run else "updated") if f.changed else "unchanged",
            old_version=f.alias_from,
            new_version=f.alias_to,
            detail=f.describe(),
        )
        for f in plan.functions
    ]


def _deploy_steps(
    env: EnvConfig,
    report: DeployReport,
    *,
    dry_run: bool,
    apply_infra: bool,
    verify_local_first: bool,
    remote_cache: bool,
    lock_timeout: float,
    allow_destroy: bool = False,
    prebuilt: bool = False,
) -> None:
    # --prebuilt: the hand-over is checked first, before anything else is asked (AWS included).
    with report.timed("build"):
        handed_over = _prebuilt(env, report) if prebuilt else None
    # A dry run runs no handler: it needs no sandbox.
    require_prerequisites(env, "deploy", skip=(preflight_mod.SANDBOX,) if dry_run else ())
    if env.emulator is not None and not dry_run:
        emulator_up(env, quiet_reuse=True)  # local, no AWS write: the remote cache can be read first
    with report.timed("build"):
        function, layer = handed_over or _build_artifacts(
            env, remote_cache=remote_cache, report=report, defer_layer=True
        )
    assert isinstance(layer, Artifact)  # build_missing: a deploy always has the layer (bytes or manifest)
    _ensure_reachable(env)
    with report.timed("plan"):
        plan, targets, decision = _read_plan(env, layer=layer, function=function, apply_infra=apply_infra)
    report.plan = plan.to_json()
    if targets is not None and not plan.empty:
        rolled_back = rollback_mod.describe_rolled_back(rollback_mod.rolled_back(env, targets))
        if rolled_back:
            progress(
                f"{env.name} is {rolled_back}: this deploy {'would replace' if dry_run else 'replaces'} the rollback"
            )
    if dry_run:
        _show_plan(f"deploy --dry-run {env.name}", plan)
        report.functions = _planned_functions(plan, dry_run=True)
        report.publish = [
            {**asdict(r), "action": "would publish" if r.publish else "would reuse"} for r in plan.regions
        ]
        report.verify = {"skipped": "dry run"}
        _discard(decision)
        return
    _refuse_removals(env, plan, allow_destroy=allow_destroy, decision=decision)
    if plan.empty:
        _nothing_to_do(report, plan, "layer published, code and layers attached, aliases current")
        return

    with report.timed("build"):
        layer = _layer_bytes(env, layer, function, report, remote_cache=remote_cache)
    # The functions as the apply will leave them: one it creates is run here, before anything is uploaded.
    checked = decision.plan.planned if decision.plan is not None and decision.plan.planned else targets
    verified: set[str] = set()
    local_reports: list[Any] = []  # what the deployed verify on the emulator may stand on (deploy.verify.reuse)
    if verify_local_first and checked is not None:
        local_reports.append(_verify_locally(env, checked, layer, function, report))  # nothing written yet
        verified = {fn.key for fn in checked.functions}
    with contextlib.ExitStack() as held:
        with report.timed("lock"):
            _ensure_lock_bucket(env)
            held.enter_context(
                _locked(env, "deploy", timeout=lock_timeout, artifact_bucket=targets.bucket if targets else None)
            )
        # Read again under the lock: a run that held it may have deployed exactly this.
        with report.timed("plan"):
            plan, targets, decision = _read_plan(
                env, layer=layer, function=function, apply_infra=apply_infra, previous=decision
            )
        report.plan = plan.to_json()
        _refuse_removals(env, plan, allow_destroy=allow_destroy, decision=decision)
        if plan.terraform_apply:
            state_before = terraform.state_identity(env)
            with report.timed("terraform"):
                targets = infra_apply(env, plan_file=decision.plan.path if decision.plan is not None else None)
            report.terraform = TerraformResult(
                apply="applied",
                reason=plan.terraform_reason,
                state_written=terraform.state_identity(env) != state_before,
            )
            plan = plan_mod.compute(env, targets, layer=layer, function=function)
            report.plan = plan.to_json()
            unverified = tuple(fn for fn in targets.functions if fn.key not in verified)
            if verify_local_first and unverified:  # the plan could not name them before the apply
                local_reports.append(
                    _verify_locally(env, dataclasses.replace(targets, functions=unverified), layer, function, report)
                )
        else:
            report.terraform = TerraformResult(apply="skipped", reason=plan.terraform_reason)
            _discard(decision)
        if plan.empty:
            _nothing_to_do(report, plan, "another run deployed this while we waited for the lock")
            return
        assert targets is not None
        _apply_plan(env, targets, plan, layer, function, report, local_reports=local_reports)


def _discard(decision: InfraDecision) -> None:
    """A saved plan that will not be applied is removed (it holds the variables, in the data dir)."""
    if decision.plan is not None:
        decision.plan.path.unlink(missing_ok=True)


def _refuse_removals(
    env: EnvConfig, plan: plan_mod.DeployPlan, *, allow_destroy: bool, decision: InfraDecision
) -> None:
    """A plan that destroys a function or a layer version is applied only when asked to: versions,
    aliases and the traffic they serve go with it."""
    if plan.removals and not allow_destroy:
        _discard(decision)
        raise DestroyRefused(
            f"terraform's plan for {env.name} would {'; '.join(plan.removals)}; nothing was changed",
            hint=f"if that is intended (a function removed from the map), rerun with `inv deploy --env {env.name} "
            "--allow-destroy` (in CI: the deploy workflow's allow_destroy input)",
        )


def _nothing_to_do(report: DeployReport, plan: plan_mod.DeployPlan, why: str) -> None:
    progress(f"nothing to deploy: {why}")
    if report.layer is not None:
        report.layer["source"] = f"{report.layer.get('source')}; nothing to do"
    report.publish = [
        {"region": r.region, "layer_version_arn": r.layer_version_arn, "published": False, "uploaded": False}
        for r in plan.regions
    ]
    report.functions = _planned_functions(plan, dry_run=False)
    report.verify = {"skipped": "nothing changed"}
    if report.terraform.apply == "not run":
        report.terraform = TerraformResult(apply="skipped", reason=plan.terraform_reason)


def _verify_locally(env: EnvConfig, targets: Targets, layer: Artifact, function: Artifact, report: DeployReport) -> Any:
    with report.timed("verify local"):
        local_report = _verify_local(env, targets, layer, function)
    report.verify["local"] = local_report.to_json()
    local_report.raise_for_failures()
    return local_report


def _apply_plan(
    env: EnvConfig,
    targets: Targets,
    plan: plan_mod.DeployPlan,
    layer: Artifact,
    function: Artifact,
    report: DeployReport,
    *,
    local_reports: Sequence[Any] = (),
) -> None:
    """Apply exactly ``plan`` inside one transaction: any failure or interrupt (SIGINT, SIGTERM)
    from the first write to the end of verify puts back what this run changed, compare-and-set."""
    # One deadline for every retry and wait of this deploy: publish's and attach's together (the
    # restore gets its own time: the transaction's policy has no deadline).
    policy = RetryPolicy().with_deadline(DEPLOY_DEADLINE_S)
    txn = transaction.Transaction(env, targets, say=progress)
    try:
        with txn:
            if any(r.changed for r in plan.regions):
                with report.timed("upload"):
                    publishes = _publish(env, targets, layer, dry_run=False, policy=policy)
                report.publish = [_pub_json(p) for p in publishes]
                arn = next(p for p in publishes if p.region == targets.region).layer_version_arn
            else:
                arn = plan.primary.layer_version_arn
                report.publish = [
                    {
                        "region": r.region,
                        "layer_version_arn": r.layer_version_arn,
                        "published": False,
                        "uploaded": False,
                    }
                    for r in plan.regions
                ]
            assert arn is not None
            attach_plan = plan.attach
            if attach_plan is None or attach_plan.layer_version_arn != arn:
                # The version was just published: plan against its real ARN, and check nothing else moved.
                attach_plan = attach_mod.plan_attach(env, targets, function=function, layer_version_arn=arn)
                moved = plan_mod.changed_since(plan.functions, plan_mod.function_steps(attach_plan))
                if moved:
                    raise AttachError(
                        "functions changed between planning and applying: "
                        + "; ".join(f"{k}: {v}" for k, v in moved.items()),
                        hint="another writer is at work; rerun",
                    )
            if attach_plan.changed:
                with report.timed("attach"), _attach_lines(targets) as on_step:
                    attach_mod.apply_attach(
                        env,
                        targets,
                        attach_plan,
                        function=function,
                        max_workers=env.max_workers,
                        progress=on_step,
                        policy=policy,
                        record=txn,
                    )
            if any(f.changed for f in plan.functions):
                from deploy.verify.reuse import RanLocally

                ran = RanLocally.of(local_reports, layer_arns=(arn,))
                with report.timed("verify deployed"):
                    deployed = _verify_deployed(env, targets, layer, function, ran)
                report.verify["deployed"] = deployed.to_json()
                deployed.raise_for_failures()
            else:
                report.verify["deployed"] = {"skipped": "no function changed (layer published or shared only)"}
    finally:
        if txn.report is not None:
            report.functions = [
                FunctionResult(
                    name=f.name, status=f.outcome, old_version=f.old_version, new_version=f.new_version, detail=f.detail
                )
                for f in txn.report.functions
            ]
            report.rolled_back = not txn.report.committed and txn.report.restored
            report.transaction = txn.report.to_json()
