"""What a deploy would change, computed once from reads: ``status`` and ``deploy --dry-run`` print
it, ``deploy`` applies it.

Before this module, three pieces of code answered that question and disagreed (status ignored
extra regions and share grants; a refused deploy left ``$LATEST`` ahead of ``live`` and status
said "in sync"). Now there is one answer: a frozen :class:`DeployPlan` built from the same reads
(``deploy.aws.publish.plan_publish``, ``deploy.aws.share`` in dry-run mode, and
``deploy.aws.attach.plan_attach``, which reads each function through ``deploy.aws.deployed``).
A plan is empty exactly when a deploy would make no write call at all, Terraform included.

When the layer version does not exist yet, the functions are planned against the version that
would be published (the ARN is not known until then, so it shows as ``(new)``); ``deploy``
re-reads the attach plan with the real ARN after publishing, and checks it matches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from deploy import audit
from deploy.artifact import Artifact, layer_key
from deploy.aws import attach as attach_mod
from deploy.aws import calls, publish, share
from deploy.config import EnvConfig, Targets
from deploy.errors import ConfigError
from deploy.lambda_facts import parse_layer_version_arn
from deploy.steps import FunctionSteps


@dataclass(frozen=True, kw_only=True)
class RegionStep:
    region: str
    bucket: str
    key: str
    upload: bool
    publish: bool
    layer_version_arn: str | None  # the version that already holds these bytes
    shares_to_add: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return self.upload or self.publish or bool(self.shares_to_add)


@dataclass(frozen=True, kw_only=True)
class DeployPlan:
    env: str
    terraform_apply: bool
    regions: tuple[RegionStep, ...]
    upload_code: bool
    #: per function: what the deploy does to it (the attach plan's own records)
    functions: tuple[FunctionSteps, ...]
    #: the attach plan the functions came from (None while the layer version does not exist yet)
    attach: attach_mod.AttachPlan | None = None
    #: why Terraform does or does not need an apply
    terraform_reason: str = ""
    #: what Terraform's apply would destroy that a deploy guards (``remove function X``): shown before it
    #: happens, refused without ``--allow-destroy``
    removals: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """True exactly when a deploy would write nothing (no Terraform apply, no AWS write call)."""
        return (
            not self.terraform_apply
            and not self.upload_code
            and not any(r.changed for r in self.regions)
            and not any(f.changed for f in self.functions)
        )

    @property
    def primary(self) -> RegionStep:
        return self.regions[0]

    def lines(self) -> list[str]:
        """The plan as a newcomer reads it: one line per thing that would change."""
        out: list[str] = []
        if self.terraform_apply:
            out.append(f"terraform: apply ({self.terraform_reason or 'configuration or state changed'})")
        out += [f"terraform: {removal}" for removal in self.removals]
        for r in self.regions:
            if r.upload:
                out.append(f"{r.region}: upload s3://{r.bucket}/{r.key}")
            if r.publish:
                out.append(f"{r.region}: publish a new layer version")
            if r.shares_to_add:
                out.append(f"{r.region}: grant layer use: {', '.join(r.shares_to_add)}")
        if self.upload_code:
            out.append("upload the function code zip")
        out += [f"{f.name}: {f.describe()}" for f in self.functions if f.changed]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "empty": self.empty,
            "terraform_apply": self.terraform_apply,
            "terraform_reason": self.terraform_reason,
            "removals": list(self.removals),
            "upload_code": self.upload_code,
            "regions": [{**asdict(r), "shares_to_add": list(r.shares_to_add)} for r in self.regions],
            "functions": [f.to_json() for f in self.functions],
        }


def targets_by_region(env: EnvConfig, targets: Targets) -> dict[str, Targets]:
    """The primary region from Terraform plus any extra regions (bucket per region) from settings."""
    regions = {targets.region: targets}
    for region, bucket in env.extra_regions.items():
        regions[region] = replace(targets, region=region, bucket=bucket)
    return regions


def _sharing(env: EnvConfig) -> bool:
    return bool(env.share.accounts or env.share.organization_id)


def region_step(env: EnvConfig, regional: Targets, layer: Artifact, region: str) -> RegionStep:
    found = publish.plan_publish(env, regional, layer, region=region)
    shares: tuple[str, ...] = ()
    if _sharing(env):
        if found.existing_arn is not None:
            shares = share.share_layer(env, found.existing_arn, env.share, dry_run=True).added
        else:
            shares = tuple(g.statement_id for g in share.grants(env.share))
    return RegionStep(
        region=region,
        bucket=found.bucket,
        key=found.key,
        upload=found.upload,
        publish=found.publish,
        layer_version_arn=found.existing_arn,
        shares_to_add=shares,
    )


def _next_version_arn(env: EnvConfig, targets: Targets) -> str:
    """The ARN the next published version of our layer will have, for planning only."""
    lam = calls.client(env, "lambda", targets.region)
    versions = lam.list_layer_versions(LayerName=targets.layer_name).get("LayerVersions", [])
    if versions:
        newest = max(versions, key=lambda v: int(v["Version"]))
        parsed = parse_layer_version_arn(str(newest["LayerVersionArn"]))
        if parsed is not None:
            return f"{parsed.base}:{parsed.version + 1}"
    return f"arn:aws:lambda:{targets.region}:000000000000:layer:{targets.layer_name}:1"


def check_platform(env: EnvConfig, targets: Targets, layer: Artifact) -> None:
    """Refuse, before any write, a layer that does not fit every function it would be attached to.

    Terraform's ``deploy_targets`` output is the source of truth for each function's runtime,
    architecture and region; invoke.yaml's ``runtime``/``architecture`` (what the build used, since a
    build may run before Terraform) must agree with it."""
    for fn in targets.functions:
        runtime = fn.runtime or targets.runtime
        architecture = fn.architecture or targets.architecture
        where = f"Terraform (deploy_targets.functions.{fn.key}, from infra/terraform/{env.tfvars or 'the var-file'})"
        if (env.runtime, env.architecture) != (runtime, architecture):
            raise ConfigError(
                f"invoke.yaml says {env.runtime}/{env.architecture} for environment {env.name!r} "
                f"(deploy.environments.{env.name} or INVOKE_DEPLOY_* variables), but {where} "
                f"says {fn.name} is {runtime}/{architecture}; nothing was changed",
                hint="make the two agree; Terraform decides what the functions run",
            )
        if (layer.runtime, layer.architecture) != (runtime, architecture):
            raise ConfigError(
                f"layer {layer.identity[:12]} is built for {layer.runtime}/{layer.architecture}, but {fn.name} is "
                f"{runtime}/{architecture} according to {where}; nothing was changed",
                hint=f"rebuild the layer: `inv build-layer --env {env.name}`",
            )
        if fn.region is not None and fn.region != targets.region:
            raise ConfigError(f"{fn.name} is in {fn.region} according to {where}, not in {targets.region}")


def check_layer_version(env: EnvConfig, targets: Targets, layer_version_arn: str) -> None:
    """Refuse a layer version whose compatible runtimes/architectures exclude a target function."""
    parsed = parse_layer_version_arn(layer_version_arn)
    if parsed is None:
        raise ConfigError(f"{layer_version_arn!r} is not a layer version ARN")
    lam = calls.client(env, "lambda", targets.region)
    info = lam.get_layer_version(LayerName=parsed.base, VersionNumber=parsed.version)
    runtimes = info.get("CompatibleRuntimes") or []
    architectures = info.get("CompatibleArchitectures") or []
    for fn in targets.functions:
        runtime = fn.runtime or targets.runtime
        architecture = fn.architecture or targets.architecture
        if (runtimes and runtime not in runtimes) or (architectures and architecture not in architectures):
            raise ConfigError(
                f"layer version {layer_version_arn} is compatible with {runtimes or 'any runtime'} on "
                f"{architectures or 'any architecture'}, not with {fn.name} ({runtime}/{architecture}); "
                "nothing was changed"
            )


def compute(
    env: EnvConfig,
    targets: Targets,
    *,
    layer: Artifact,
    function: Artifact,
    terraform_apply: bool = False,
    terraform_reason: str = "",
    removals: tuple[str, ...] = (),
    check: bool = True,
) -> DeployPlan:
    """Reads only. ``terraform_apply`` comes from the caller (Terraform's fingerprint or plan).

    ``check=False`` before an apply: the platform the state has now is not the one the apply makes
    (the caller checked the planned one)."""
    if check:
        check_platform(env, targets, layer)
    regions = [
        region_step(env, regional, layer, region) for region, regional in targets_by_region(env, targets).items()
    ]
    primary = regions[0]
    if primary.layer_version_arn is not None:
        check_layer_version(env, targets, primary.layer_version_arn)
    arn = primary.layer_version_arn or _next_version_arn(env, targets)
    attach_plan = attach_mod.plan_attach(env, targets, function=function, layer_version_arn=arn)
    for fp in attach_plan.functions:
        # Each function with its layers as they would be: Lambda's per-function limits, before any write.
        # (Foreign layers' unzipped sizes are unknown without downloading them; they count as layers.)
        audit.check_budget(
            layer_unzipped=layer.unzipped_size,
            function_unzipped=function.unzipped_size,
            layer_count=len(fp.new_layers),
        )
    return DeployPlan(
        env=env.name,
        terraform_apply=terraform_apply,
        terraform_reason=terraform_reason,
        removals=removals,
        regions=tuple(regions),
        upload_code=attach_plan.upload_code,
        functions=attach_plan.functions,
        attach=attach_plan if primary.layer_version_arn is not None else None,
    )


def compute_unbuilt(
    env: EnvConfig,
    targets: Targets,
    *,
    identity: str,
    function: Artifact,
    terraform_apply: bool = False,
    terraform_reason: str = "",
    removals: tuple[str, ...] = (),
) -> DeployPlan:
    """Reads only (status): the plan for a layer identity this machine never built and no version was
    published for. Its bytes are unknown, but not what a deploy does with them: build, upload and
    publish the layer in every region, then move every function to the new version."""
    regions = tuple(
        RegionStep(
            region=region,
            bucket=regional.bucket,
            key=layer_key(identity),
            upload=True,
            publish=True,
            layer_version_arn=None,
        )
        for region, regional in targets_by_region(env, targets).items()
    )
    attach_plan = attach_mod.plan_attach(
        env, targets, function=function, layer_version_arn=_next_version_arn(env, targets)
    )
    return DeployPlan(
        env=env.name,
        terraform_apply=terraform_apply,
        terraform_reason=terraform_reason,
        removals=removals,
        regions=regions,
        upload_code=attach_plan.upload_code,
        functions=attach_plan.functions,
    )


def unapplied(env: EnvConfig, reason: str = "not applied yet", *, removals: tuple[str, ...] = ()) -> DeployPlan:
    """The plan of an environment Terraform has not created yet: apply first, then everything."""
    return DeployPlan(
        env=env.name,
        terraform_apply=True,
        terraform_reason=reason,
        removals=removals,
        regions=(),
        upload_code=False,
        functions=(),
    )


def changed_since(planned: tuple[FunctionSteps, ...], fresh: tuple[FunctionSteps, ...]) -> Mapping[str, str]:
    """Functions whose planned change differs from a re-read (someone wrote between plan and apply)."""

    def shape(f: FunctionSteps) -> str:
        return f"{', '.join(s.noun for s in f.steps()) or 'nothing'} from live {f.alias_from}"

    before = {f.name: shape(f) for f in planned}
    return {f.name: f"planned {before.get(f.name)}, now {shape(f)}" for f in fresh if before.get(f.name) != shape(f)}
