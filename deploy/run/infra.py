"""Terraform, the emulator and the deploy lock: what every writing task does around its own step.

Preflight (``require_prerequisites``), starting or reaching the emulator, taking the environment's
lock, and deciding whether Terraform must apply (``_terraform_needed``, cheapest first).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.markup import escape

from deploy import emulator, terraform
from deploy import preflight as preflight_mod
from deploy.aws import lock as env_lock
from deploy.aws.state_bucket import state_outputs
from deploy.config import EmulatorSettings, Targets
from deploy.context import RunContext
from deploy.errors import (
    ConfigError,
    DestroyRefused,
    DriftError,
    TerraformError,
)
from deploy.report import (
    live,
    progress,
    say,
    step,
)
from deploy.terraform.decision import InfraDecision, read_saved_plan


def require_prerequisites(ctx: RunContext, command: str, *, skip: tuple[str, ...] = ()) -> None:
    """Before a writing command's first write: every prerequisite checked, every problem reported at once
    (PreflightError, exit 15); what passes with a caveat (no bubblewrap on the emulator) is one line."""
    from deploy.verify.jail import announce

    result = preflight_mod.run(ctx.settings, command, skip=skip)
    result.raise_for_failures()
    for note in result.notes():
        announce(note.detail)  # once: the sandbox sessions of this run do not repeat it


def _emulator(ctx: RunContext) -> EmulatorSettings:
    if ctx.emulator is None:
        raise ConfigError(f"environment {ctx.name!r} has no emulator settings; local.* tasks are for `--env local`")
    return ctx.emulator


def emulator_up(ctx: RunContext, *, quiet_reuse: bool = False) -> emulator.EmulatorState:
    """Start (or reuse) the emulator; ``quiet_reuse`` when an earlier step of this run already said so."""
    state = emulator.up(_emulator(ctx), ctx.paths.local_state, notify=lambda text: say(escape(text)))
    if not (state.reused and quiet_reuse):
        verb = "reusing" if state.reused else "started"
        say(f"{verb} moto server pid {state.pid} on {state.url} (log: {state.logfile})")
    return state


def emulator_down(ctx: RunContext) -> None:
    say(emulator.down(_emulator(ctx), ctx.paths.local_state))


def emulator_status(ctx: RunContext) -> bool:
    """Says what runs on the emulator's port; True when a moto server answers there."""
    settings = _emulator(ctx)
    say(emulator.status(settings, ctx.paths.local_state))
    return emulator.is_moto(settings.url)


def _ensure_reachable(ctx: RunContext) -> None:
    """For local: the emulator must answer before any AWS call (start it with local.up / deploy)."""
    if ctx.emulator is not None:
        emulator.assert_reachable(ctx.emulator.url)


def infra_init(ctx: RunContext) -> None:
    tf = terraform.terraform_for(ctx.settings)
    progress(f"terraform init ({'mirror ' + str(tf.plugin_mirror) if tf.plugin_mirror else 'registry'})")
    terraform.init(tf)
    terraform.select_workspace(tf)


def _apply_context(ctx: RunContext, *, start: bool = True) -> dict[str, str]:
    """What an apply depends on beyond Terraform's files: the remote state object's ETag, and for
    local the emulator process (a restarted moto server has lost every resource). ``start=False``
    (status): a server this checkout did not start is not ours to name, so the fingerprint misses."""
    extra: dict[str, str] = {}
    if ctx.emulator is not None:
        if start:
            state = emulator_up(ctx, quiet_reuse=True)
            extra["emulator"] = f"{state.url} pid {state.pid}"
        else:
            found = emulator.inspect(ctx.emulator, ctx.paths.local_state)
            pid = found.record.pid if found.state == "running" and found.record is not None else "?"
            extra["emulator"] = f"{ctx.emulator.url} pid {pid}"
    extra["state"] = terraform.state_identity(ctx.settings)
    return extra


def _locked(ctx: RunContext, command: str, *, timeout: float, artifact_bucket: str | None = None) -> Any:
    """The environment's deploy lock for a writing task (see deploy/aws/lock.py)."""
    return env_lock.held(ctx.settings, f"inv {command}", timeout=timeout, artifact_bucket=artifact_bucket, say=progress)


def _ensure_lock_bucket(ctx: RunContext) -> None:
    """A fresh environment (or a fresh emulator) has no state bucket yet: create it before locking in it."""
    if ctx.is_emulator:
        emulator_up(ctx, quiet_reuse=True)
    terraform.ensure_state_bucket(ctx.settings)


def unlock(ctx: RunContext, lock_id: str) -> None:
    require_prerequisites(ctx, "unlock")
    _ensure_reachable(ctx)
    artifact_bucket = None if ctx.settings.state or ctx.is_emulator else _targets(ctx).bucket
    holder = env_lock.force_unlock(ctx.settings, lock_id, artifact_bucket=artifact_bucket)
    say(f"removed the deploy lock held by {holder.who()}" if holder else "removed the object that was not a lock")


def infra_apply_locked(
    ctx: RunContext, *, lock_timeout: float = env_lock.DEFAULT_TIMEOUT_S, allow_destroy: bool = False
) -> Targets:
    """``inv infra.apply``: terraform plan, saved and shown, then applied as shown, under the environment's
    lock; a plan that destroys a function or a layer version is refused unless ``allow_destroy``
    (in CI this is the job that applies, so the guard must hold here as in ``deploy``)."""
    require_prerequisites(ctx, "infra.apply")
    _ensure_lock_bucket(ctx)
    with _locked(ctx, "infra.apply", timeout=lock_timeout):
        decision = _terraform_needed(ctx, always_plan=True)
        if decision.plan is None:
            progress(f"terraform: {decision.reason}; nothing to apply")
            return terraform.load_targets(ctx.settings)
        for removal in decision.removals:
            say(f"  terraform: {escape(removal)}")
        if decision.removals and not allow_destroy:
            _discard(decision)
            raise DestroyRefused(
                f"terraform's plan for {ctx.name} would {'; '.join(decision.removals)}; nothing was changed",
                hint=f"if that is intended, rerun with `inv infra.apply --env {ctx.name} --allow-destroy` "
                "(in CI: the deploy workflow's allow_destroy input)",
            )
        return infra_apply(ctx, plan_file=decision.plan.path)


def infra_apply(ctx: RunContext, *, only_if_changed: bool = False, plan_file: Path | None = None) -> Targets:
    """terraform apply; with ``only_if_changed`` (deploy), skip it when its fingerprint is unchanged;
    with ``plan_file``, apply exactly that saved plan (deploy's, shown and checked before).

    The caller holds the environment's lock."""
    extra = _apply_context(ctx)
    tf = terraform.terraform_for(ctx.settings)
    if only_if_changed and not terraform.apply_needed(tf, extra=extra):
        progress("terraform: configuration, variables and state unchanged since the last apply; skipping it")
        return terraform.load_targets(ctx.settings, tf=tf)
    try:
        _terraform_with_progress(
            ctx, "apply", lambda log, events: terraform.apply(tf, log=log, events=events, plan_file=plan_file)
        )
    finally:
        if plan_file is not None:
            plan_file.unlink(missing_ok=True)
    terraform.record_apply(tf, extra={**extra, "state": terraform.state_identity(ctx.settings)})
    return terraform.load_targets(ctx.settings, tf=tf)


def _terraform_log(ctx: RunContext, command: str) -> Path:
    """``.build/logs/<time>-terraform-<command>-<env>.log``: Terraform's whole output, kept out of the terminal."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    return ctx.paths.build / "logs" / f"{stamp}-terraform-{command}-{ctx.name}.log"


def _terraform_with_progress(ctx: RunContext, command: str, run: Any) -> terraform.Progress:
    """Run ``run(log, events)`` behind one progress line fed by Terraform's -json events; the
    full output goes to a log file, printed (its last lines and path) only when Terraform fails."""
    log = _terraform_log(ctx, command)
    counts = terraform.Progress()
    started = time.monotonic()
    title = f"terraform {command} ({ctx.name})"
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


def infra_plan(ctx: RunContext, *, detailed_exitcode: bool = False) -> bool:
    _ensure_reachable(ctx)
    tf = terraform.terraform_for(ctx.settings)
    planned: list[str] = []
    result: list[bool] = []

    def plan_run(log: Path, events: Any) -> None:
        def collect(event: Mapping[str, Any]) -> None:
            events(event)
            # Only what the plan would change: drift Terraform then ignores (ignore_changes) is in the log.
            if event.get("type") == "planned_change":
                planned.append(str(event.get("@message", "")))

        result.append(terraform.plan(tf, detailed_exitcode=True, log=log, events=collect))

    _terraform_with_progress(ctx, "plan", plan_run)
    changes = result[0]
    for message in planned:
        say(f"  {escape(message)}")
    if changes and detailed_exitcode:
        raise DriftError(f"terraform plan for {ctx.name} has changes (drift between state and configuration)")
    return changes


def _targets(ctx: RunContext) -> Targets:
    _ensure_reachable(ctx)
    return terraform.load_targets(ctx.settings)


def _terraform_needed(ctx: RunContext, *, read_only: bool = False, always_plan: bool = False) -> InfraDecision:
    """Reads only (AWS and Terraform state). In order, cheapest first:

    1. the fingerprint of the last apply on this machine;
    2. the configuration digest the state records (one GET: a fresh runner, another clone);
    3. ``terraform plan``, saved (``-out``) so that the apply runs exactly the plan that was shown;
       a plan without changes is remembered as the fingerprint, so a no-change deploy never runs
       ``terraform apply`` (which writes state).

    ``read_only`` (status): start no emulator, create no state bucket, remember nothing; an
    environment without state is "not applied yet" without a plan. ``always_plan`` (infra.apply):
    only the plan decides, so drift made outside Terraform is repaired too."""
    tf = terraform.terraform_for(ctx.settings)
    if read_only:
        tf = dataclasses.replace(tf, prepare=None)  # never create the state bucket to answer a question
    extra = _apply_context(ctx, start=not read_only)
    if not always_plan and not terraform.apply_needed(tf, extra=extra):
        return InfraDecision(needed=False, reason="configuration, variables and state unchanged since the last apply")
    outputs = None if always_plan else state_outputs(ctx.settings)
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
        ctx,
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
    state = terraform.state_identity(ctx.settings)
    try:
        saved = read_saved_plan(terraform.show_plan_json(tf, plan_file), env=ctx.name, path=plan_file)
    finally:
        if read_only:
            plan_file.unlink(missing_ok=True)
    return InfraDecision(needed=True, reason=f"terraform plan: {saved.summary()}", state=state, plan=saved)


def _plan_targets(ctx: RunContext, *, applied: bool, read_only: bool = False) -> Targets:
    """Terraform's outputs. ``applied``: the last apply (or a plan without changes) stands for exactly
    this configuration, these variables and this state object (``_terraform_needed``), so the outputs
    recorded in the state object are what ``terraform output -json`` would print: one GET instead of
    two Terraform processes (workspace select, output), about 1.2 s of a code-only deploy."""
    if applied or read_only:
        try:
            return terraform.load_targets(ctx.settings, read_only=True)
        except TerraformError:
            if read_only:
                raise  # status never runs Terraform's init (it would create the state bucket)
            # no state object to read (another backend, no access): ask Terraform
    return terraform.load_targets(ctx.settings)


def _discard(decision: InfraDecision) -> None:
    """A saved plan that will not be applied is removed (it holds the variables, in the data dir)."""
    if decision.plan is not None:
        decision.plan.path.unlink(missing_ok=True)
