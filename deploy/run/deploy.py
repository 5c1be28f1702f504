"""``deploy`` and ``status``: the one plan both read, and the deploy that applies it, all or nothing.

``deploy`` is the only place that decides what happens when a step fails (roll the aliases back,
report); ``status`` and ``deploy --dry-run`` read the same plan (``_read_plan``) and never disagree.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from deploy import emulator, terraform
from deploy import plan as plan_mod
from deploy import preflight as preflight_mod
from deploy.artifact import Artifact
from deploy.aws import attach as attach_mod
from deploy.aws import lock as env_lock
from deploy.aws import rollback as rollback_mod
from deploy.aws import transaction
from deploy.aws.retry import RetryPolicy
from deploy.config import Targets
from deploy.context import RunContext
from deploy.errors import (
    AttachError,
    DeployError,
    DestroyRefused,
    DriftError,
    TerraformError,
)
from deploy.progress import plain
from deploy.report import (
    DeployReport,
    TerraformResult,
    emit_json,
    progress,
    say,
    write_report,
)
from deploy.run import aws_tasks, checks, infra, layer_source, show
from deploy.steps import planned
from deploy.terraform.decision import InfraDecision

#: Every retry and wait of one deploy (publish in every region, then attach) ends by then; the
#: deploy workflow's job allows 45 minutes, so a stuck deploy fails and rolls back inside it.
DEPLOY_DEADLINE_S = 1800.0


def _read_plan(
    ctx: RunContext,
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
    elif (
        previous is not None and previous.plan is not None and terraform.state_identity(ctx.settings) == previous.state
    ):
        decision = previous
    else:
        decision = infra._terraform_needed(ctx, read_only=read_only)
    planned = decision.plan.planned if decision.plan is not None else None
    if planned is not None and isinstance(layer, Artifact):
        plan_mod.check_platform(ctx.settings, planned, layer)  # the runtime and architecture the apply will set
    try:
        targets = infra._plan_targets(ctx, applied=apply_infra and not decision.needed, read_only=read_only)
    except TerraformError:
        if not apply_infra:
            raise
        # nothing exists yet: apply first, then everything
        return plan_mod.unapplied(ctx.settings, removals=decision.removals), None, decision
    if planned is not None:  # a function the apply removes is not planned for (it is listed as a removal)
        staying = {fn.key for fn in planned.functions}
        targets = dataclasses.replace(targets, functions=tuple(f for f in targets.functions if f.key in staying))
    if isinstance(layer, str):
        plan = plan_mod.compute_unbuilt(
            ctx.settings,
            targets,
            identity=layer,
            function=function,
            terraform_apply=decision.needed,
            terraform_reason=decision.reason,
            removals=decision.removals,
        )
        return plan, targets, decision
    plan = plan_mod.compute(
        ctx.settings,
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
    ctx: RunContext,
    *,
    dry_run: bool = False,
    as_json: bool = False,
    report_file: str | None = None,
    apply_infra: bool = True,
    verify_local_first: bool = True,
    remote_cache: bool = True,
    lock_timeout: float = env_lock.DEFAULT_TIMEOUT_S,
    allow_destroy: bool = False,
    prebuilt: bool = False,
) -> DeployReport:
    """build + audit, read the plan, then (locked) terraform apply, publish, attach, verify; all or nothing.

    An empty plan takes no lock and makes no write call, Terraform included (counted, and reported as
    ``aws_write_calls`` and ``terraform``). With ``--strict`` (``ctx.settings.verify.strict``), a function
    without smoke events fails verify.
    """
    started = time.monotonic()
    report = DeployReport(env=ctx.name, dry_run=dry_run)
    with ctx.aws.count_writes() as writes:
        try:
            _deploy_steps(
                ctx,
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
    show._summary(report)
    return report


def _deploy_steps(
    ctx: RunContext,
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
        handed_over = layer_source._prebuilt(ctx, report) if prebuilt else None
    # A dry run runs no handler: it needs no sandbox.
    infra.require_prerequisites(ctx, "deploy", skip=(preflight_mod.SANDBOX,) if dry_run else ())
    if ctx.is_emulator and not dry_run:
        infra.emulator_up(ctx, quiet_reuse=True)  # local, no AWS write: the remote cache can be read first
    with report.timed("build"):
        function, layer = handed_over or layer_source._build_artifacts(
            ctx, remote_cache=remote_cache, report=report, defer_layer=True
        )
    assert isinstance(layer, Artifact)  # build_missing: a deploy always has the layer (bytes or manifest)
    infra._ensure_reachable(ctx)
    with report.timed("plan"):
        plan, targets, decision = _read_plan(ctx, layer=layer, function=function, apply_infra=apply_infra)
    report.plan = plan.to_json()
    if targets is not None and not plan.empty:
        rolled_back = rollback_mod.describe_rolled_back(rollback_mod.rolled_back(ctx.settings, targets))
        if rolled_back:
            progress(
                f"{ctx.name} is {rolled_back}: this deploy {'would replace' if dry_run else 'replaces'} the rollback"
            )
    if dry_run:
        show._show_plan(f"deploy --dry-run {ctx.name}", plan)
        report.functions = planned(plan.functions, dry_run=True)
        report.publish = [
            {**asdict(r), "action": "would publish" if r.publish else "would reuse"} for r in plan.regions
        ]
        report.verify = {"skipped": "dry run"}
        infra._discard(decision)
        return
    _refuse_removals(ctx, plan, allow_destroy=allow_destroy, decision=decision)
    if plan.empty:
        _nothing_to_do(report, plan, "layer published, code and layers attached, aliases current")
        return

    with report.timed("build"):
        layer = layer_source._layer_bytes(ctx, layer, function, report, remote_cache=remote_cache)
    # The functions as the apply will leave them: one it creates is run here, before anything is uploaded.
    checked = decision.plan.planned if decision.plan is not None and decision.plan.planned else targets
    verified: set[str] = set()
    local_reports: list[Any] = []  # what the deployed verify on the emulator may stand on (deploy.verify.reuse)
    if verify_local_first and checked is not None:
        local_reports.append(_verify_locally(ctx, checked, layer, function, report))  # nothing written yet
        verified = {fn.key for fn in checked.functions}
    with contextlib.ExitStack() as held:
        with report.timed("lock"):
            infra._ensure_lock_bucket(ctx)
            held.enter_context(
                infra._locked(ctx, "deploy", timeout=lock_timeout, artifact_bucket=targets.bucket if targets else None)
            )
        # Read again under the lock: a run that held it may have deployed exactly this.
        with report.timed("plan"):
            plan, targets, decision = _read_plan(
                ctx, layer=layer, function=function, apply_infra=apply_infra, previous=decision
            )
        report.plan = plan.to_json()
        _refuse_removals(ctx, plan, allow_destroy=allow_destroy, decision=decision)
        if plan.terraform_apply:
            state_before = terraform.state_identity(ctx.settings)
            with report.timed("terraform"):
                targets = infra.infra_apply(ctx, plan_file=decision.plan.path if decision.plan is not None else None)
            report.terraform = TerraformResult(
                apply="applied",
                reason=plan.terraform_reason,
                state_written=terraform.state_identity(ctx.settings) != state_before,
            )
            plan = plan_mod.compute(ctx.settings, targets, layer=layer, function=function)
            report.plan = plan.to_json()
            unverified = tuple(fn for fn in targets.functions if fn.key not in verified)
            if verify_local_first and unverified:  # the plan could not name them before the apply
                local_reports.append(
                    _verify_locally(ctx, dataclasses.replace(targets, functions=unverified), layer, function, report)
                )
        else:
            report.terraform = TerraformResult(apply="skipped", reason=plan.terraform_reason)
            infra._discard(decision)
        if plan.empty:
            _nothing_to_do(report, plan, "another run deployed this while we waited for the lock")
            return
        assert targets is not None
        _apply_plan(ctx, targets, plan, layer, function, report, local_reports=local_reports)


def status(ctx: RunContext, *, as_json: bool = False) -> plan_mod.DeployPlan:
    """The deploy plan, read the way ``deploy`` reads it: exit 0 in sync, 12 out of sync (a deploy would
    change something, "not applied yet" included), any other code when it could not tell (the error says why).

    Reads only, and quickly: no layer is installed or zipped (its identity comes from the lock and the
    settings; a layer neither built here nor published is planned as "build and publish"), no emulator is
    started, no state bucket, workspace or lock is created; Terraform plans only when the configuration
    differs from what the state records as applied."""
    rolled_back = None
    if ctx.emulator is not None and not emulator.is_moto(ctx.emulator.url):
        plan = plan_mod.unapplied(
            ctx.settings, "not applied yet: the emulator is not running (a new moto server starts empty)"
        )
    else:
        function, layer = layer_source._build_artifacts(ctx, remote_cache=True, defer_layer=True, build_missing=False)
        plan, targets, _decision = _read_plan(ctx, layer=layer, function=function, apply_infra=True, read_only=True)
        rolled_back = (
            rollback_mod.describe_rolled_back(rollback_mod.rolled_back(ctx.settings, targets)) if targets else None
        )
    if as_json:
        emit_json({"env": ctx.name, **plan.to_json(), "rolled_back": rolled_back})
    show._show_plan(f"status {ctx.name}", plan)
    if rolled_back:
        say(f"{ctx.name} is {rolled_back}; the next deploy replaces the rollback")
    if not plan.empty:
        raise DriftError(f"out of sync: a deploy of {ctx.name} would change:\n  " + "\n  ".join(plan.lines()))
    say("in sync: a deploy would change nothing")
    return plan


def _refuse_removals(
    ctx: RunContext, plan: plan_mod.DeployPlan, *, allow_destroy: bool, decision: InfraDecision
) -> None:
    """A plan that destroys a function or a layer version is applied only when asked to: versions,
    aliases and the traffic they serve go with it."""
    if plan.removals and not allow_destroy:
        infra._discard(decision)
        raise DestroyRefused(
            f"terraform's plan for {ctx.name} would {'; '.join(plan.removals)}; nothing was changed",
            hint=f"if that is intended (a function removed from the map), rerun with `inv deploy --env {ctx.name} "
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
    report.functions = planned(plan.functions, dry_run=False)
    report.verify = {"skipped": "nothing changed"}
    if report.terraform.apply == "not run":
        report.terraform = TerraformResult(apply="skipped", reason=plan.terraform_reason)


def _verify_locally(
    ctx: RunContext, targets: Targets, layer: Artifact, function: Artifact, report: DeployReport
) -> Any:
    with report.timed("verify local"):
        local_report = checks._verify_local(ctx, targets, layer, function)
    report.verify["local"] = local_report.to_json()
    local_report.raise_for_failures()
    return local_report


def _apply_plan(
    ctx: RunContext,
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
    txn = transaction.Transaction(ctx.settings, targets, progress=plain)
    try:
        with txn:
            if any(r.changed for r in plan.regions):
                with report.timed("upload"):
                    publishes = aws_tasks._publish(ctx, targets, layer, dry_run=False, policy=policy)
                report.publish = [aws_tasks._pub_json(p) for p in publishes]
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
                attach_plan = attach_mod.plan_attach(ctx.settings, targets, function=function, layer_version_arn=arn)
                moved = plan_mod.changed_since(plan.functions, attach_plan.functions)
                if moved:
                    raise AttachError(
                        "functions changed between planning and applying: "
                        + "; ".join(f"{k}: {v}" for k, v in moved.items()),
                        hint="another writer is at work; rerun",
                    )
            if attach_plan.changed:
                with report.timed("attach"), show._attach_lines(targets) as on_step:
                    attach_mod.apply_attach(
                        ctx.settings,
                        targets,
                        attach_plan,
                        function=function,
                        max_workers=ctx.settings.max_workers,
                        progress=on_step,
                        policy=policy,
                        record=txn,
                    )
            if any(f.changed for f in plan.functions):
                with report.timed("verify deployed"):
                    deployed = checks._verify_deployed(
                        ctx, targets, layer, function, local_reports=local_reports, layer_arns=(arn,)
                    )
                report.verify["deployed"] = deployed.to_json()
                deployed.raise_for_failures()
            else:
                report.verify["deployed"] = {"skipped": "no function changed (layer published or shared only)"}
    finally:
        if txn.report is not None:
            report.functions = list(txn.report.functions)
            report.rolled_back = not txn.report.committed and txn.report.restored
            report.transaction = txn.report.to_json()
