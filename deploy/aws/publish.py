"""publish-layer: upload the layer zip to S3 once, publish a layer version once.

Idempotence comes from content, not from our own records: the S3 object is skipped
when S3's own SHA-256 checksum of it (computed by S3 on receipt, never user-set
metadata) matches the artifact, and a layer version is published only when no existing
version of the layer has the artifact's CodeSha256 (Lambda computes it from the bytes,
so it is the ground truth). A rerun after any failure therefore converges without a
duplicate version.

The S3 key is the layer's identity, and one identity must give the same bytes on every
machine; an object at that key with another checksum can only come from a
reproducibility bug, so publishing refuses to overwrite it and names both checksums.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from deploy.artifact import Artifact
from deploy.aws import cache, cache_pointer, calls
from deploy.aws.retry import NOT_FOUND, RetryPolicy, call, error_code, error_message
from deploy.aws.session import Endpoint
from deploy.config import Targets
from deploy.errors import AwsError, CacheError, DeployError

Progress = Callable[[str, str], None]
#: Makes a byte progress display for (description, total bytes); its value takes bytes sent.
Transfer = Callable[[str, int], AbstractContextManager[Callable[[int], None]]]

#: Above this a single PUT gets slow and fragile; the managed transfer goes multipart, where
#: S3 stores a composite checksum (the SHA-256 of the parts' SHA-256s, "-N" appended), which
#: we compute the same way from fixed-size parts.
MULTIPART_THRESHOLD = 64 * 1024 * 1024
MULTIPART_CHUNKSIZE = 16 * 1024 * 1024

_MISSING_BUCKET = frozenset({"NoSuchBucket", "404", "NotFound"})


def _no_progress(_what: str, _message: str) -> None:
    return None


def describe(artifact: Artifact) -> str:
    """Layer version description; ``status`` reads the identity back from it."""
    return f"identity={artifact.identity} sha256={artifact.sha256}"


def identity_from_description(description: str | None) -> str | None:
    for part in (description or "").split():
        if part.startswith("identity="):
            return part.removeprefix("identity=")
    return None


def check_bucket(s3: Any, bucket: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if error_code(exc) in _MISSING_BUCKET:
            raise AwsError(f"S3 bucket {bucket} does not exist", hint="run `inv infra.apply` to create it") from None
        raise AwsError(f"S3 bucket {bucket}: {error_message(exc)}") from None


def composite_sha256(artifact: Artifact, chunk: int | None = None) -> str:
    """S3's checksum of a multipart upload of ``artifact`` in ``chunk``-sized parts (without the "-N")."""
    digests = b""
    with artifact.path.open("rb") as fh:
        while part := fh.read(chunk or MULTIPART_CHUNKSIZE):
            digests += hashlib.sha256(part).digest()
    return base64.b64encode(hashlib.sha256(digests).digest()).decode("ascii")


def expected_checksum(artifact: Artifact) -> str:
    """The ChecksumSHA256 S3 reports for the object ``upload`` makes of ``artifact``."""
    if artifact.zipped_size < MULTIPART_THRESHOLD:
        return artifact.code_sha256
    return composite_sha256(artifact)


def object_matches(s3: Any, bucket: str, key: str, artifact: Artifact) -> bool:
    """True when s3://bucket/key holds the artifact's bytes by S3's own checksum; False when absent.

    An object there with another checksum (or none) is refused, never overwritten: the key is
    the identity, so other bytes under it mean two builds of one identity differ.
    """
    try:
        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except ClientError as exc:
        if error_code(exc) in NOT_FOUND:
            return False
        raise AwsError(f"s3://{bucket}/{key}: {error_message(exc)}") from None
    found = head.get("ChecksumSHA256")
    if not artifact.path.exists() and found is not None and "-" in found:
        # Planned from a published layer's manifest (the remote cache), its bytes not fetched: a composite
        # checksum cannot be recomputed without them; the fetch checks the bytes before any use.
        return True
    ours = expected_checksum(artifact)
    if found is not None and found.split("-", 1)[0] in {ours, artifact.code_sha256}:
        return True
    raise AwsError(
        f"s3://{bucket}/{key} already holds other bytes than {artifact.kind} {artifact.identity[:12]}: "
        f"its SHA-256 checksum is {found or 'absent (uploaded without one)'}, this build's is {ours}; "
        "refusing to overwrite it (the same identity must give the same bytes on every machine, "
        "so one of the two builds is not reproducible)",
        hint="compare this build's manifest with the machine that uploaded it; delete the object only once "
        "you know which build is wrong",
    )


def short_key(key: str) -> str:
    """An S3 key for people: its 64-hex identity cut to 12 (``lambda/layer-ceae9533bcdd….zip``)."""
    return re.sub(r"([0-9a-f]{12})[0-9a-f]{52}", r"\1…", key)


def upload(s3: Any, bucket: str, key: str, artifact: Artifact, *, sent: Callable[[int], None] | None = None) -> None:
    """Upload with a SHA-256 checksum S3 verifies on receipt, so a corrupted transfer is rejected, not stored.

    ``sent`` is told the bytes sent as they go (a progress bar); boto3 calls it from its threads."""
    metadata = {"sha256": artifact.sha256, "identity": artifact.identity}
    try:
        if artifact.path.stat().st_size < MULTIPART_THRESHOLD:
            with artifact.path.open("rb") as body:
                s3.put_object(
                    Bucket=bucket,
                    Key=key,
                    Body=body,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=artifact.code_sha256,
                    Metadata=metadata,
                )
            if sent is not None:
                sent(artifact.path.stat().st_size)
        else:
            s3.upload_file(
                str(artifact.path),
                bucket,
                key,
                ExtraArgs={"ChecksumAlgorithm": "SHA256", "Metadata": metadata},
                Config=TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_CHUNKSIZE),
                Callback=sent,
            )
    except (ClientError, BotoCoreError) as exc:
        # A half-finished upload leaves no object (S3 PUTs are atomic, multipart is aborted):
        # a rerun finds nothing and uploads again.
        raise AwsError(f"upload of {artifact.path.name} to s3://{bucket}/{key} failed: {error_message(exc)}") from None
    except Boto3Error as exc:  # the managed (multipart) transfer wraps ClientError in S3UploadFailedError
        raise AwsError(f"upload of {artifact.path.name} to s3://{bucket}/{key} failed: {exc}") from None


@dataclass(frozen=True, kw_only=True)
class PublishPlan:
    region: str
    bucket: str
    key: str
    layer_name: str
    upload: bool
    publish: bool
    existing_arn: str | None  # a version that already holds these bytes
    existing_version: int | None
    description: str


@dataclass(frozen=True, kw_only=True)
class PublishResult:
    region: str
    layer_version_arn: str | None  # None only on a dry run that would publish
    version: int | None
    uploaded: bool  # did (or, on a dry run, would) upload
    published: bool
    dry_run: bool = False


@dataclass(frozen=True, kw_only=True)
class RegionFailure:
    region: str
    error: str


def find_layer_version(lam: Any, layer_name: str, code_sha256: str) -> tuple[str, int] | None:
    """The newest version of ``layer_name`` whose content has ``code_sha256``."""
    pages = lam.get_paginator("list_layer_versions").paginate(LayerName=layer_name)
    versions = [v for page in pages for v in page.get("LayerVersions", [])]
    for entry in sorted(versions, key=lambda v: int(v["Version"]), reverse=True):
        got = lam.get_layer_version(LayerName=layer_name, VersionNumber=int(entry["Version"]))
        if got.get("Content", {}).get("CodeSha256") == code_sha256:
            return str(got["LayerVersionArn"]), int(got["Version"])
    return None


def find_version_by_identity(lam: Any, layer_name: str, identity: str) -> tuple[str, str] | None:
    """The newest version of ``layer_name`` published for ``identity``: (ARN, CodeSha256).

    Reads the identity back from the description :func:`describe` wrote, so it needs no local zip."""
    pages = lam.get_paginator("list_layer_versions").paginate(LayerName=layer_name)
    versions = [v for page in pages for v in page.get("LayerVersions", [])]
    for entry in sorted(versions, key=lambda v: int(v["Version"]), reverse=True):
        if identity_from_description(entry.get("Description")) == identity:
            got = lam.get_layer_version(LayerName=layer_name, VersionNumber=int(entry["Version"]))
            return str(got["LayerVersionArn"]), str(got.get("Content", {}).get("CodeSha256"))
    return None


def publisher_code_sha256(lam: Any, publisher: str, identity: str) -> str | cache.CacheMiss:
    """Reads only: the CodeSha256 of the version of layer ``publisher`` (an ARN without a version)
    published with ``identity``, or a miss saying why none vouches for the shared bucket.

    Lambda, not the bucket, is the witness: a writer of the bucket cannot publish a layer
    version in the publisher's account. Listing needs ``lambda:ListLayerVersions``, which a layer
    version permission cannot grant to another account: across accounts this is a miss (denied)."""
    try:
        found = find_version_by_identity(lam, publisher, identity)
    except ClientError as exc:
        return cache.CacheMiss(reason=f"cannot read the versions of publisher {publisher} ({error_message(exc)})")
    except BotoCoreError as exc:
        return cache.CacheMiss(reason=f"publisher {publisher} unreachable ({exc})")
    if found is None:
        return cache.CacheMiss(reason=f"publisher {publisher} has published no version of layer {identity[:12]}")
    return found[1]


def plan_publish(aws: Endpoint, targets: Targets, layer: Artifact, *, region: str | None = None) -> PublishPlan:
    """Reads only: is the zip in S3, and does a layer version with these bytes exist?"""
    if layer.kind != "layer":
        raise AwsError(f"{layer.path.name} is a {layer.kind} artifact, not a layer")
    # A layer already published elsewhere may be planned from its manifest alone (the remote cache:
    # a fresh runner fetches the bytes only when the plan needs them); bytes that are here must
    # still be the manifest's. Writing (publish_all) always checks the zip.
    if layer.path.exists():
        layer.check()
    region = region or targets.region
    s3 = calls.client(aws, "s3", region)
    lam = calls.client(aws, "lambda", region)
    check_bucket(s3, targets.bucket)
    present = object_matches(s3, targets.bucket, layer.s3_key, layer)
    try:
        found = find_layer_version(lam, targets.layer_name, layer.code_sha256)
    except ClientError as exc:
        raise AwsError(f"layer {targets.layer_name} in {region}: {error_message(exc)}") from None
    return PublishPlan(
        region=region,
        bucket=targets.bucket,
        key=layer.s3_key,
        layer_name=targets.layer_name,
        upload=not present and found is None,
        publish=found is None,
        existing_arn=found[0] if found else None,
        existing_version=found[1] if found else None,
        description=describe(layer),
    )


def publish_layer(
    aws: Endpoint,
    targets: Targets,
    layer: Artifact,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    region: str | None = None,
    policy: RetryPolicy | None = None,
    transfer: Transfer | None = None,
) -> PublishResult:
    plan = plan_publish(aws, targets, layer, region=region)
    say = progress or _no_progress
    policy = policy or RetryPolicy()
    if dry_run or not plan.publish:
        if not plan.publish:
            say(plan.region, f"layer version {plan.existing_version} already has these bytes")
        return PublishResult(
            region=plan.region,
            layer_version_arn=plan.existing_arn,
            version=plan.existing_version,
            uploaded=plan.upload,
            published=plan.publish,
            dry_run=dry_run,
        )
    s3 = calls.client(aws, "s3", plan.region)
    lam = calls.client(aws, "lambda", plan.region)
    if plan.upload:
        text = f"{plan.region}: uploading layer {layer.identity[:12]} to s3://{plan.bucket}/{short_key(plan.key)}"
        if transfer is None:
            say(plan.region, text.split(": ", 1)[1])
            upload(s3, plan.bucket, plan.key, layer)
        else:
            with transfer(text, layer.zipped_size) as sent:
                upload(s3, plan.bucket, plan.key, layer, sent=sent)
    # Write-through: the manifest and SBOM beside the zip let any machine reuse this build. Checked
    # again whenever a version is to be published, so a run interrupted between the zip and its
    # manifest (or a zip uploaded before the cache existed) is repaired by the rerun.
    if plan.upload or not cache.sidecars_present(s3, plan.bucket, layer.address):
        cache.upload_sidecars(s3, plan.bucket, layer, layer.sbom_path)
    say(plan.region, f"publishing a version of {plan.layer_name}")
    try:
        made = call(
            lam.publish_layer_version,
            what=plan.layer_name,
            policy=policy,
            error=AwsError,
            LayerName=plan.layer_name,
            Description=plan.description,
            Content={"S3Bucket": plan.bucket, "S3Key": plan.key},
            CompatibleRuntimes=[targets.runtime],
            CompatibleArchitectures=[targets.architecture],
        )
    except ClientError as exc:
        raise AwsError(f"publishing {plan.layer_name} in {plan.region} failed: {error_message(exc)}") from None
    got = made.get("Content", {}).get("CodeSha256")
    if got != layer.code_sha256:
        raise AwsError(
            f"layer {made['LayerVersionArn']} has CodeSha256 {got}, expected {layer.code_sha256}",
            hint=f"s3://{plan.bucket}/{plan.key} does not hold the built zip; delete it and rerun",
        )
    say(plan.region, f"published {made['LayerVersionArn']}")
    # Readers of this bucket in other accounts cannot list our versions; the pointer names this one
    # for them to ask Lambda about (deploy.aws.cache_trust). Without it they build: a warning, not a
    # failed deploy, since what was published is right.
    pointer = cache_pointer.Pointer(
        identity=layer.identity, layer_version_arn=str(made["LayerVersionArn"]), code_sha256=str(got)
    )
    try:
        cache_pointer.write_pointer(s3, plan.bucket, pointer)
    except CacheError as exc:
        say(plan.region, f"warning: {exc.message}; other accounts reading this bucket will build this layer")
    return PublishResult(
        region=plan.region,
        layer_version_arn=str(made["LayerVersionArn"]),
        version=int(made["Version"]),
        uploaded=plan.upload,
        published=True,
    )


def publish_all(
    aws: Endpoint,
    targets_by_region: Mapping[str, Targets],
    layer: Artifact,
    *,
    dry_run: bool = False,
    max_workers: int = 4,
    progress: Progress | None = None,
    raise_on_failure: bool = True,
    policy: RetryPolicy | None = None,
    transfer: Transfer | None = None,
) -> tuple[PublishResult | RegionFailure, ...]:
    """Publish in every region concurrently; one region failing does not stop the others.

    With ``raise_on_failure`` (the task's mode) an AwsError listing the failed regions is raised
    after all regions finished; the per-region results ride along as ``err.results``.
    """
    layer.check()

    def one(region: str, targets: Targets) -> PublishResult | RegionFailure:
        try:
            return publish_layer(
                aws, targets, layer, dry_run=dry_run, progress=progress, region=region, policy=policy, transfer=transfer
            )
        except (DeployError, ClientError, BotoCoreError) as exc:
            return RegionFailure(region=region, error=str(exc) if isinstance(exc, DeployError) else error_message(exc))

    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(targets_by_region) or 1))) as pool:
        futures = [pool.submit(one, region, targets) for region, targets in targets_by_region.items()]
        results = tuple(f.result() for f in futures)
    failed = [r for r in results if isinstance(r, RegionFailure)]
    if failed and raise_on_failure:
        err = AwsError(
            f"publish-layer failed in {len(failed)} of {len(results)} regions: "
            + "; ".join(f"{r.region}: {r.error}" for r in failed)
        )
        err.results = results  # type: ignore[attr-defined]
        raise err
    return results
