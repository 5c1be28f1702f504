"""Where a layer comes from: built here, found in the local cache, fetched from S3, or published already.

``inv build-layer`` with nothing to do is run before every deploy and by hand all day; it must
not pay for boto3, Terraform or the verify sandbox (about a second of imports). So this module
imports only the build itself at the top: a layer already built, or built without the remote
cache, is answered without them; reading the remote cache or what is published imports boto3,
Terraform and the emulator inside the functions that need them.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from deploy import build
from deploy.artifact import Artifact
from deploy.config import Targets
from deploy.context import RunContext
from deploy.errors import (
    AwsError,
    BuildError,
    CacheError,
    ConfigError,
    EmulatorError,
    TerraformError,
)
from deploy.report import DeployReport, progress

if TYPE_CHECKING:
    from deploy.aws.cache import CacheMiss


def build_layer(ctx: RunContext, *, remote_cache: bool = True) -> None:
    """``inv build-layer``: a layer already built (or built without the remote cache) needs no boto3."""
    plan = ctx.layer_plan
    # The manifest's presence is enough to choose this path: build_layer checks the zip against it
    # (hashing 40 MB once, not twice) and rebuilds on a mismatch.
    if plan.manifest_path.is_file() or not (remote_cache and ctx.settings.remote_cache.enabled):
        build.build_layer(plan, progress=progress)  # it says what it did, once
        return
    obtain_layer(ctx, remote_cache=remote_cache)


def build_function(ctx: RunContext) -> build.BuildResult:
    return build.build_function(build.function_plan(ctx.settings), progress=progress)


def obtain_layer(ctx: RunContext, *, function_unzipped: int = 0, remote_cache: bool = True) -> build.BuildResult:
    """The run's layer: already built here, fetched from the remote cache, or built now."""
    plan = ctx.layer_plan
    fetched = False
    if remote_cache and ctx.settings.remote_cache.enabled and build.existing_layer(plan) is None:
        fetched = read_through_cache(ctx, plan)
    # After a fetch the build only rechecks the budget: its "already built" line would mislead.
    result = build.build_layer(plan, progress=None if fetched else progress, function_unzipped=function_unzipped)
    if fetched and result.reused:
        result = dataclasses.replace(result, fetched=True)
        progress(f"layer {plan.identity.short} reused from the remote cache: nothing installed")
    return result  # build_layer said what it did (and its warnings), once


def read_through_cache(ctx: RunContext, plan: build.LayerPlan) -> bool:
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
    from botocore.exceptions import BotoCoreError, ClientError

    from deploy.aws import cache
    from deploy.aws.retry import error_message

    # (bucket, region, the CodeSha256 its publisher vouches for: None for the env's own bucket)
    sources: list[tuple[str, str, str | None]] = []
    misses: list[str] = []
    if ctx.settings.remote_cache.bucket:
        publisher = _publisher_code_sha256(ctx, plan)
        if isinstance(publisher, cache.CacheMiss):
            misses.append(f"s3://{ctx.settings.remote_cache.bucket}: {publisher.reason}")
        else:
            sources.append(
                (ctx.settings.remote_cache.bucket, ctx.settings.remote_cache.region or ctx.settings.region, publisher)
            )
    published: tuple[str, str] | None = None
    try:
        targets, published = _published_identity(ctx, plan)
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
                ctx.aws.client("s3", region),
                bucket,
                plan.digest,
                plan.zip_path.parent,
                published_code_sha256=published[1] if published else None,
                trusted_code_sha256=vouched,
                parallel_parts=not ctx.is_emulator,
            )
        except (BotoCoreError, ClientError) as exc:
            got = cache.CacheMiss(reason=f"s3://{bucket}: {error_message(exc)}")
        if isinstance(got, cache.CacheHit):
            progress(f"remote cache: layer {plan.identity.short} fetched from {got.source}")
            if audit_again:
                try:
                    build.audit_fetched_layer(plan, got.artifact)
                except BaseException:
                    for path in (plan.manifest_path, plan.zip_path, plan.sbom_path, got.artifact.checked_path):
                        path.unlink(missing_ok=True)
                    raise
            return True
        misses.append(got.reason)
    progress(f"remote cache: {'; '.join(misses) or 'no bucket to read'}; building locally")
    return False


def _publisher_code_sha256(ctx: RunContext, plan: build.LayerPlan) -> str | CacheMiss:
    """Reads only: what ``remote_cache.publisher`` published with this identity (its CodeSha256),
    asked of Lambda in the publisher's region (settings refuse a shared bucket without a publisher),
    found through the publisher's pointer in the shared bucket (``deploy.aws.cache_trust``)."""
    from botocore.exceptions import BotoCoreError

    from deploy.aws import cache, cache_trust

    publisher, bucket = ctx.settings.remote_cache.publisher, ctx.settings.remote_cache.bucket
    if publisher is None or bucket is None:  # EnvConfig built in code, bypassing the settings' check
        return cache.CacheMiss(reason="no remote_cache.publisher vouches for the shared bucket")
    region = publisher.split(":")[3]
    try:
        lam = ctx.aws.client("lambda", region)
        s3 = ctx.aws.client("s3", ctx.settings.remote_cache.region or ctx.settings.region)
    except BotoCoreError as exc:  # e.g. a profile that is not there: still only a miss
        return cache.CacheMiss(reason=f"publisher {publisher} unreachable ({exc})")
    return cache_trust.vouched_code_sha256(s3, bucket, lam, publisher, plan.digest)


def _built_layer(ctx: RunContext) -> Artifact:
    """The layer artifact for the env's current identity; refuse to go on without one."""
    plan = ctx.layer_plan
    artifact = build.existing_layer(plan)
    if artifact is None:
        raise BuildError(
            f"no layer artifact for identity {plan.identity.digest[:12]} in {ctx.paths.build / 'layers'}",
            hint=f"run `inv build-layer --env {ctx.name}` first",
        )
    artifact.check()
    return artifact


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
    ctx: RunContext,
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
    function = build_function(ctx).artifact
    if report is not None:
        report.function = _artifact_json(function)
    if not build_missing:
        plan = ctx.layer_plan
        return function, build.existing_layer(plan) or _published_layer(ctx, plan) or plan.digest
    if defer_layer and remote_cache and ctx.settings.remote_cache.enabled:
        plan = ctx.layer_plan
        published = None if plan.manifest_path.is_file() else _published_layer(ctx, plan)
        if published is not None:
            progress(f"layer {plan.identity.short} is published already: planning from its manifest, not fetching it")
            if report is not None:
                report.layer = {**_artifact_json(published), "source": "published already, not fetched"}
            return function, published
    built = obtain_layer(ctx, function_unzipped=function.unzipped_size, remote_cache=remote_cache)
    if report is not None:
        report.layer = {**_artifact_json(built.artifact), "source": built.source}
    return function, built.artifact


def _prebuilt(ctx: RunContext, report: DeployReport) -> tuple[Artifact, Artifact]:
    """``--prebuilt``: the artifacts CI's build job handed over, checked; nothing built (deploy.ci_artifacts)."""
    from deploy import ci_artifacts

    function, layer = ci_artifacts.prebuilt(ctx.paths.build, layer_identity=ctx.layer_plan.digest)
    progress(f"--prebuilt: function code {function.sha256[:12]} and layer {layer.identity[:12]}, sha256 checked")
    report.function = _artifact_json(function)
    report.layer = {**_artifact_json(layer), "source": "prebuilt (handed over, sha256 checked against its manifest)"}
    return function, layer


def _published_identity(ctx: RunContext, plan: build.LayerPlan) -> tuple[Targets, tuple[str, str] | None]:
    """Reads only: the env's targets (creating no state bucket or workspace to find them) and the
    layer version already published for this identity, as (ARN, CodeSha256)."""
    from deploy import emulator, terraform
    from deploy.aws import publish

    if ctx.emulator is not None:
        emulator.assert_reachable(ctx.emulator.url)
    targets = terraform.load_targets(ctx.settings, read_only=True)
    lam = ctx.aws.client("lambda", targets.region)
    return targets, publish.find_version_by_identity(lam, targets.layer_name, plan.digest)


def _published_layer(ctx: RunContext, plan: build.LayerPlan) -> Artifact | None:
    """Reads only: the layer version published for this identity, as its cached manifest describes it."""
    from botocore.exceptions import BotoCoreError, ClientError

    from deploy.aws import cache

    try:
        targets, found = _published_identity(ctx, plan)
        if found is None:
            return None
        s3 = ctx.aws.client("s3", targets.region)
        return cache.published_layer(s3, targets.bucket, plan.digest, plan.zip_path, published_code_sha256=found[1])
    except (TerraformError, EmulatorError, AwsError, ConfigError, BotoCoreError, ClientError):
        return None  # no shortcut: the layer is built or fetched as usual


def _layer_bytes(
    ctx: RunContext, layer: Artifact, function: Artifact, report: DeployReport, *, remote_cache: bool
) -> Artifact:
    """The planned layer's zip on this machine: fetched (and audited) or built now, if the plan was read
    from its manifest alone; it must be the bytes the plan was computed for."""
    if layer.path.exists():
        return layer
    built = obtain_layer(ctx, function_unzipped=function.unzipped_size, remote_cache=remote_cache)
    if built.artifact.sha256 != layer.sha256:
        raise CacheError(
            f"layer {layer.identity[:12]} was planned as the published sha256 {layer.sha256[:16]}…, "
            f"but {built.source} sha256 {built.artifact.sha256[:16]}…",
            hint="one identity built into two different zips: a reproducibility bug; report it",
        )
    report.layer = {**_artifact_json(built.artifact), "source": built.source}
    return built.artifact
