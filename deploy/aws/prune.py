"""prune-layers: delete old versions of our layer that nothing references.

A deleted layer version keeps working for functions already using it, but it can no
longer be attached, so a rollback to a function version that uses it would still work
while a redeploy of it would not. We therefore keep every version referenced by any
function in the region (not only ours: layers can be shared), any published function
version, or any alias, and the newest ``keep`` versions regardless.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from deploy.aws import calls
from deploy.aws.retry import error_code, error_message
from deploy.aws.session import Endpoint
from deploy.config import Targets
from deploy.errors import AwsError, ConfigError
from deploy.lambda_facts import parse_layer_version_arn


@dataclass(frozen=True, kw_only=True)
class PrunePlan:
    layer_name: str
    region: str
    delete: tuple[int, ...]
    kept: tuple[int, ...]
    protected: Mapping[int, list[str]] = field(default_factory=dict)  # version → who references it


@dataclass(frozen=True, kw_only=True)
class PruneResult:
    deleted: tuple[int, ...]
    skipped: tuple[int, ...]  # planned, but referenced by the time we deleted, or not confirmed
    confirmed: bool


def _layer_versions(lam: Any, layer_name: str) -> list[int]:
    try:
        pages = lam.get_paginator("list_layer_versions").paginate(LayerName=layer_name)
        return sorted(int(v["Version"]) for page in pages for v in page.get("LayerVersions", []))
    except ClientError as exc:
        raise AwsError(f"layer {layer_name}: {error_message(exc)}") from None


def references(lam: Any, layer_base_arn: str) -> dict[int, list[str]]:
    """Version of the layer → ``function:version`` / ``function:alias`` entries that use it."""
    refs: dict[int, list[str]] = {}

    def note(layers: Any, who: str) -> None:
        for layer in layers or ():
            parsed = parse_layer_version_arn(str(layer["Arn"]))
            if parsed is not None and parsed.base == layer_base_arn:
                refs.setdefault(parsed.version, []).append(who)

    for page in lam.get_paginator("list_functions").paginate():
        for fn in page.get("Functions", []):
            name = fn["FunctionName"]
            by_version: dict[str, Any] = {}
            try:
                for vpage in lam.get_paginator("list_versions_by_function").paginate(FunctionName=name):
                    for version in vpage.get("Versions", []):
                        by_version[str(version["Version"])] = version.get("Layers")
                        note(version.get("Layers"), f"{name}:{version['Version']}")
                for apage in lam.get_paginator("list_aliases").paginate(FunctionName=name):
                    for alias in apage.get("Aliases", []):
                        served = [alias["FunctionVersion"]]
                        served += list((alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights", {}))
                        for version in served:
                            note(by_version.get(str(version)), f"{name}:{alias['Name']}")
            except ClientError as exc:
                if error_code(exc) == "ResourceNotFoundException":  # deleted while we listed
                    continue
                raise AwsError(f"{name}: {error_message(exc)}") from None
    return refs


def _layer_base(lam: Any, layer_name: str, versions: list[int]) -> str:
    arn = str(lam.get_layer_version(LayerName=layer_name, VersionNumber=versions[-1])["LayerVersionArn"])
    parsed = parse_layer_version_arn(arn)
    if parsed is None:
        raise AwsError(f"{arn!r} is not a layer version ARN")
    return parsed.base


def plan_prune(aws: Endpoint, targets: Targets, *, keep: int, protect: Mapping[int, str] | None = None) -> PrunePlan:
    """``protect`` names versions owned elsewhere (Terraform's first version: deleting it is drift)."""
    if keep < 1:
        raise ConfigError(f"prune-layers: keep must be at least 1, got {keep}")
    lam = calls.client(aws, "lambda", targets.region)
    versions = _layer_versions(lam, targets.layer_name)
    if not versions:
        return PrunePlan(layer_name=targets.layer_name, region=targets.region, delete=(), kept=())
    refs = references(lam, _layer_base(lam, targets.layer_name, versions))
    for version, owner in (protect or {}).items():
        refs.setdefault(version, []).append(owner)
    newest = set(versions[-keep:])
    delete = tuple(v for v in versions if v not in newest and v not in refs)
    kept = tuple(v for v in versions if v not in delete)
    protected = {v: sorted(refs[v]) for v in versions if v in refs}
    return PrunePlan(
        layer_name=targets.layer_name, region=targets.region, delete=delete, kept=kept, protected=protected
    )


def prune(aws: Endpoint, targets: Targets, plan: PrunePlan, *, yes: bool) -> PruneResult:
    """Delete ``plan.delete`` only with ``yes``; references are re-read first so a version attached
    since the plan was made is spared."""
    if not yes or not plan.delete:
        return PruneResult(deleted=(), skipped=plan.delete, confirmed=yes)
    lam = calls.client(aws, "lambda", plan.region)
    versions = _layer_versions(lam, plan.layer_name)
    refs = references(lam, _layer_base(lam, plan.layer_name, versions)) if versions else {}
    deleted: list[int] = []
    skipped: list[int] = []
    for version in plan.delete:
        if version in refs or version not in versions:
            skipped.append(version)
            continue
        try:
            lam.delete_layer_version(LayerName=plan.layer_name, VersionNumber=version)
        except ClientError as exc:
            raise AwsError(f"deleting {plan.layer_name}:{version}: {error_message(exc)}") from None
        deleted.append(version)
    return PruneResult(deleted=tuple(deleted), skipped=tuple(skipped), confirmed=True)
