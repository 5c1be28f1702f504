"""Planning an attach: reads only. What each function's ``$LATEST`` and ``live`` alias hold, and
what must change (code, layers, a new version) for ``live`` to serve the new code and layer.

Every function must exist (and have its alias) before anything is written; the plan is what
``deploy.plan`` reports per function and what :mod:`deploy.aws.attach_apply` applies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from deploy.artifact import Artifact
from deploy.aws import calls, deployed
from deploy.aws.publish import check_bucket, object_matches
from deploy.config import EnvConfig, FunctionTarget, Targets
from deploy.errors import AttachError
from deploy.lambda_facts import MAX_LAYERS, parse_layer_version_arn
from deploy.steps import FunctionSteps

_layer_arns = deployed.layer_arns


def desired_layers(current: Sequence[str], new_arn: str, *, function: str) -> tuple[str, ...]:
    """Swap any version of our layer for ``new_arn`` where it was (order decides which layer's files win),
    append it if absent, and keep foreign layers in their order."""
    parsed = parse_layer_version_arn(new_arn)
    if parsed is None:
        raise AttachError(f"{new_arn!r} is not a layer version ARN")
    base = parsed.base
    out: list[str] = []
    placed = False
    for arn in current:
        existing = parse_layer_version_arn(arn)
        if existing is not None and existing.base == base:
            if not placed:
                out.append(new_arn)
                placed = True
        else:
            out.append(arn)
    if not placed:
        out.append(new_arn)
    if len(out) > MAX_LAYERS:
        raise AttachError(
            f"{function}: attaching {new_arn} would make {len(out)} layers; Lambda allows {MAX_LAYERS}",
            hint="remove a foreign layer from the function in Terraform",
        )
    return tuple(out)


@dataclass(frozen=True, kw_only=True)
class AttachPlan:
    region: str
    bucket: str
    code_key: str
    code_sha256: str
    layer_version_arn: str
    alias: str
    upload_code: bool
    functions: tuple[FunctionSteps, ...]
    #: The commit the code was built from (its version_info): recorded on each alias it moves, so a
    #: rollback can say which deploy it undid.
    commit: str = ""
    #: the published version's description: which commit the code came from (the zip holds only content)
    description: str = ""

    @property
    def changed(self) -> bool:
        return self.upload_code or any(f.changed for f in self.functions)


def read_state(
    lam: Any, name: str, alias: str
) -> tuple[Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]] | None:
    """($LATEST config, alias, config the alias serves), or None if the function does not exist."""
    state = deployed.read(lam, name, alias, error=AttachError)
    if state is None:
        return None
    if state.alias is None or state.served is None:
        raise AttachError(f"{name}: alias {alias!r} does not exist", hint="Terraform creates it: run `inv infra.apply`")
    return state.latest, state.alias, state.served


frozen_config = deployed.frozen_config


def plan_function(
    fn: FunctionTarget,
    state: tuple[Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]],
    *,
    code_sha256: str,
    layer_version_arn: str,
    provisioned_concurrency: int = 0,
) -> FunctionSteps:
    latest, alias, served = state
    old_layers = _layer_arns(latest)
    new_layers = desired_layers(old_layers, layer_version_arn, function=fn.name)
    update_code = latest.get("CodeSha256") != code_sha256
    update_layers = old_layers != new_layers
    stale_alias = (
        served.get("CodeSha256") != code_sha256
        or _layer_arns(served) != new_layers
        # Terraform changed $LATEST's configuration (variables, memory, ...): a version freezes
        # configuration too, so `live` only sees the change once a new version is published.
        or frozen_config(served) != frozen_config(latest)
    )
    return FunctionSteps(
        name=fn.name,
        key=fn.key,
        update_code=update_code,
        update_layers=update_layers,
        publish_version=update_code or update_layers or stale_alias,
        old_layers=old_layers,
        new_layers=new_layers,
        alias_from=str(alias["FunctionVersion"]),
        revision_id=latest.get("RevisionId"),
        alias_revision_id=alias.get("RevisionId"),
        provisioned_concurrency=provisioned_concurrency,
        memory_mb=int(latest.get("MemorySize") or 0),
    )


#: Lambda's limit on a version's description.
DESCRIPTION_LIMIT = 256


def version_description(function: Artifact) -> str:
    """``commit 1a2b3c… (dirty)`` for PublishVersion: the function zip is keyed by its content, so the
    commit it was built from is recorded here (and in the report) rather than in its bytes."""
    info = function.inputs.get("version_info") or {}
    commit = str(info.get("commit") or "unknown")
    text = f"commit {commit}" + (" (dirty)" if info.get("dirty", True) else "")
    return text[:DESCRIPTION_LIMIT]


def plan_attach(env: EnvConfig, targets: Targets, *, function: Artifact, layer_version_arn: str) -> AttachPlan:
    """Reads only. Every function must exist (and have its alias) before anything is written."""
    if function.kind != "function":
        raise AttachError(f"{function.path.name} is a {function.kind} artifact, not function code")
    function.check()
    parsed = parse_layer_version_arn(layer_version_arn)
    if parsed is None:
        raise AttachError(f"{layer_version_arn!r} is not a layer version ARN")
    if parsed.name != targets.layer_name:
        raise AttachError(f"{layer_version_arn} is not a version of this environment's layer {targets.layer_name}")
    lam = calls.client(env, "lambda", targets.region)
    missing: list[str] = []
    plans: list[FunctionSteps] = []
    # Three reads per function: concurrent, so planning 50 functions costs a few round trips, not 150.
    with ThreadPoolExecutor(max_workers=max(1, min(env.max_workers, len(targets.functions)))) as pool:
        states = list(pool.map(lambda fn: read_state(lam, fn.name, targets.alias), targets.functions))
    for fn, state in zip(targets.functions, states, strict=True):
        if state is None:
            missing.append(fn.name)
            continue
        plans.append(
            plan_function(
                fn,
                state,
                code_sha256=function.code_sha256,
                layer_version_arn=layer_version_arn,
                provisioned_concurrency=env.provisioned_concurrency,
            )
        )
    if missing:
        raise AttachError(
            f"function(s) not found in {targets.region}: {', '.join(missing)}; nothing was changed",
            hint="run `inv infra.apply` to create them",
        )
    upload_code = False
    if any(p.update_code for p in plans):
        s3 = calls.client(env, "s3", targets.region)
        check_bucket(s3, targets.bucket)
        upload_code = not object_matches(s3, targets.bucket, function.s3_key, function)
    return AttachPlan(
        region=targets.region,
        bucket=targets.bucket,
        code_key=function.s3_key,
        code_sha256=function.code_sha256,
        layer_version_arn=layer_version_arn,
        alias=targets.alias,
        upload_code=upload_code,
        functions=tuple(plans),
        commit=str(function.inputs.get("version_info", {}).get("commit") or ""),
        description=version_description(function),
    )
