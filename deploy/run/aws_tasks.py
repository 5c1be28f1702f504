"""The single-step AWS tasks: ``publish-layer``, ``attach``, ``rollback``, ``prune-layers``.

Each checks its prerequisites, takes the environment's lock for a write, and delegates the work to
``deploy.aws``; ``deploy`` (deploy/run/deploy.py) reuses the publish step.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from deploy import build, terraform
from deploy import plan as plan_mod
from deploy.artifact import Artifact
from deploy.aws import attach as attach_mod
from deploy.aws import lock as env_lock
from deploy.aws import prune, publish, share, transaction
from deploy.aws import rollback as rollback_mod
from deploy.aws.retry import RetryPolicy
from deploy.config import Targets
from deploy.context import RunContext
from deploy.errors import (
    AttachError,
    ConfigError,
)
from deploy.lambda_facts import parse_layer_version_arn
from deploy.progress import plain
from deploy.report import (
    emit_json,
    say,
    table,
    transfer,
)
from deploy.run import infra, layer_source, show


def _publish(
    ctx: RunContext, targets: Targets, layer: Artifact, *, dry_run: bool, policy: RetryPolicy | None = None
) -> list[publish.PublishResult]:
    sharing = bool(ctx.settings.share.accounts or ctx.settings.share.organization_id)
    if sharing:
        share.grants(ctx.settings.share)  # a refused (e.g. public) share fails here, before any upload
    results = publish.publish_all(
        ctx.aws,
        plan_mod.targets_by_region(ctx.settings, targets),
        layer,
        dry_run=dry_run,
        progress=show._aws_progress,
        policy=policy,
        transfer=transfer,
    )
    published = [r for r in results if isinstance(r, publish.PublishResult)]
    if sharing:
        for result in published:
            if result.layer_version_arn is None:
                continue  # dry run of a version that does not exist yet
            shared = share.share_layer(ctx.aws, result.layer_version_arn, ctx.settings.share, dry_run=dry_run)
            if shared.added:
                verb = "would grant" if dry_run else "granted"
                show._aws_progress(result.region, f"{verb} layer use: {', '.join(shared.added)}")
    return published


def _pub_json(result: publish.PublishResult) -> dict[str, Any]:
    action = "published" if result.published else "reused"
    if result.dry_run:
        action = "would publish" if result.published else "would reuse"
    return {**dataclasses.asdict(result), "action": action}


def publish_layer(
    ctx: RunContext, *, dry_run: bool = False, as_json: bool = False, lock_timeout: float = env_lock.DEFAULT_TIMEOUT_S
) -> list[publish.PublishResult]:
    infra.require_prerequisites(ctx, "publish-layer")
    targets = infra._targets(ctx)
    layer = layer_source._built_layer(ctx)
    if dry_run:
        results = _publish(ctx, targets, layer, dry_run=True)
    else:
        with infra._locked(ctx, "publish-layer", timeout=lock_timeout, artifact_bucket=targets.bucket):
            results = _publish(ctx, targets, layer, dry_run=False)
    if as_json:
        emit_json({"env": ctx.name, "publish": [_pub_json(r) for r in results]})
    else:
        table(
            f"publish-layer {ctx.name}",
            ["region", "layer version", "uploaded", "action"],
            [(r.region, r.layer_version_arn or "(new)", r.uploaded, _pub_json(r)["action"]) for r in results],
        )
    return results


def _layer_arn_for_attach(ctx: RunContext, targets: Targets, layer: Artifact) -> str:
    lam = ctx.aws.client("lambda", targets.region)
    found = publish.find_layer_version(lam, targets.layer_name, layer.code_sha256)
    if found is None:
        raise AttachError(
            f"layer {layer.identity[:12]} is not published as a version of {targets.layer_name}",
            hint=f"run `inv publish-layer --env {ctx.name}` first",
        )
    return found[0]


def attach(
    ctx: RunContext, *, dry_run: bool = False, as_json: bool = False, lock_timeout: float = env_lock.DEFAULT_TIMEOUT_S
) -> None:
    infra.require_prerequisites(ctx, "attach")
    targets = infra._targets(ctx)
    layer = layer_source._built_layer(ctx)
    function = build.build_function(build.function_plan(ctx.settings)).artifact
    arn = _layer_arn_for_attach(ctx, targets, layer)
    plan_mod.check_platform(ctx.settings, targets, layer)  # before any write: the layer fits every function
    plan_mod.check_layer_version(ctx.settings, targets, arn)
    if dry_run:
        plan = attach_mod.plan_attach(ctx.settings, targets, function=function, layer_version_arn=arn)
        show._show_attach(
            attach_mod.apply_attach(ctx.settings, targets, plan, dry_run=True), as_json=as_json, env=ctx.settings
        )
        return
    with infra._locked(ctx, "attach", timeout=lock_timeout, artifact_bucket=targets.bucket):
        # Planned under the lock, so a writer that finished while we waited is seen.
        plan = attach_mod.plan_attach(ctx.settings, targets, function=function, layer_version_arn=arn)
        txn = transaction.Transaction(ctx.settings, targets, progress=plain)
        try:
            with txn, show._attach_lines(targets) as on_step:
                attach_mod.apply_attach(
                    ctx.settings,
                    targets,
                    plan,
                    function=function,
                    max_workers=ctx.settings.max_workers,
                    progress=on_step,
                    record=txn,
                )
        finally:
            if txn.report is not None:
                show._show_transaction(f"attach {ctx.name}", txn.report, as_json=as_json, env=ctx.settings)


def _terraform_layer_versions(ctx: RunContext) -> dict[int, str]:
    """The layer version Terraform created (and would recreate if pruned) is never pruned."""
    outputs = terraform.output_json(terraform.terraform_for(ctx.settings))
    arn = (outputs.get("layer_bootstrap_version_arn") or {}).get("value")
    parsed = parse_layer_version_arn(arn) if isinstance(arn, str) else None
    if parsed is None:
        return {}
    return {parsed.version: "terraform (aws_lambda_layer_version.this)"}


def rollback(
    ctx: RunContext,
    *,
    function: str | None = None,
    to: str | None = None,
    dry_run: bool = False,
    lock_timeout: float = env_lock.DEFAULT_TIMEOUT_S,
) -> None:
    infra.require_prerequisites(ctx, "rollback")
    targets = infra._targets(ctx)
    rollback_mod.chosen(targets, function, to)  # a bad --function or --to: refused before the lock
    if dry_run:
        outcomes = rollback_mod.rollback(ctx.settings, targets, function=function, to=to, dry_run=True)
    else:
        with (
            infra._locked(ctx, "rollback", timeout=lock_timeout, artifact_bucket=targets.bucket),
            transaction.Transaction(ctx.settings, targets, progress=plain) as txn,
        ):
            outcomes = rollback_mod.rollback(
                ctx.settings, targets, function=function, to=to, record=txn, progress=plain
            )
    show._show_rollback(f"rollback {ctx.name}" + (" (dry run)" if dry_run else ""), outcomes)


def prune_layers(
    ctx: RunContext, *, keep: int = 3, yes: bool = False, lock_timeout: float = env_lock.DEFAULT_TIMEOUT_S
) -> None:
    if keep < 1:
        raise ConfigError("--keep must be at least 1 (the newest layer version is never pruned)")
    infra.require_prerequisites(ctx, "prune-layers")
    targets = infra._targets(ctx)
    plan = prune.plan_prune(ctx.aws, targets, keep=keep, protect=_terraform_layer_versions(ctx))
    for version, users in sorted(plan.protected.items()):
        say(f"keeping {targets.layer_name}:{version}: referenced by {', '.join(users)}")
    if not plan.delete:
        say("nothing to prune")
        return
    verb = "deleting" if yes else "would delete (rerun with --yes)"
    say(f"{verb}: " + ", ".join(f"{targets.layer_name}:{v}" for v in plan.delete))
    with contextlib.ExitStack() as stack:
        if yes:
            stack.enter_context(
                infra._locked(ctx, "prune-layers", timeout=lock_timeout, artifact_bucket=targets.bucket)
            )
        result = prune.prune(ctx.aws, targets, plan, yes=yes)
    if yes:
        say(f"deleted {len(result.deleted)} layer version(s); skipped {len(result.skipped)}")
