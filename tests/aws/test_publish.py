from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError

from deploy.artifact import Artifact
from deploy.aws import calls
from deploy.aws.publish import PublishResult, RegionFailure, plan_publish, publish_all, publish_layer
from deploy.aws.share import grants, share_layer
from deploy.config import EnvConfig, ShareSettings, Targets
from deploy.errors import AwsError, BuildError, ConfigError
from tests.aws.conftest import REGION, make_artifact


def layer_versions(lam: Any, name: str) -> list[int]:
    return [v["Version"] for v in lam.list_layer_versions(LayerName=name)["LayerVersions"]]


def test_publish_uploads_then_a_rerun_writes_nothing(
    env: EnvConfig, targets: Targets, bucket: str, layer: Artifact, lam: Any, s3: Any
) -> None:
    with calls.count_writes() as first:
        result = publish_layer(env, targets, layer)
    assert result.uploaded and result.published and result.version == 1
    # zip, SBOM, manifest; then the pointer to the version, for readers in other accounts
    assert first.operations() == ["PutObject", "PutObject", "PutObject", "PublishLayerVersion", "PutObject"]
    got = lam.get_layer_version(LayerName=targets.layer_name, VersionNumber=1)
    assert got["Content"]["CodeSha256"] == layer.code_sha256
    assert got["Description"] == f"identity={layer.identity} sha256={layer.sha256}"
    assert got["CompatibleRuntimes"] == ["python3.12"] and got["CompatibleArchitectures"] == ["x86_64"]
    head = s3.head_object(Bucket=bucket, Key=layer.s3_key, ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == layer.code_sha256

    with calls.count_writes() as second:
        again = publish_layer(env, targets, layer)
    assert second.count == 0
    assert again == PublishResult(
        region=REGION, layer_version_arn=result.layer_version_arn, version=1, uploaded=False, published=False
    )
    assert layer_versions(lam, targets.layer_name) == [1]


def test_reuses_an_older_version_with_the_same_bytes(
    env: EnvConfig, targets: Targets, bucket: str, tmp_path: Path, lam: Any
) -> None:
    first = make_artifact(tmp_path, "layer", "v1")
    second = make_artifact(tmp_path, "layer", "v2")
    a = publish_layer(env, targets, first)
    b = publish_layer(env, targets, second)
    with calls.count_writes() as writes:
        back = publish_layer(env, targets, first)
    assert (a.version, b.version, back.version) == (1, 2, 1)
    assert back.layer_version_arn == a.layer_version_arn and writes.count == 0


def test_missing_bucket_is_named(env: EnvConfig, targets: Targets, layer: Artifact, aws: None) -> None:
    with calls.count_writes() as writes, pytest.raises(AwsError, match=f"bucket {targets.bucket} does not exist"):
        publish_layer(env, targets, layer)
    assert writes.count == 0


def test_modified_artifact_is_refused_before_any_aws_call(
    env: EnvConfig, targets: Targets, bucket: str, layer: Artifact, inject: Any
) -> None:
    layer.path.write_bytes(layer.path.read_bytes() + b"tampered")
    made: list[str] = []
    with (
        calls.client_hook(lambda service, _client: made.append(service)),
        pytest.raises(BuildError, match="does not match its manifest"),
    ):
        publish_layer(env, targets, layer)
    assert made == []


def test_dry_run_writes_nothing(env: EnvConfig, targets: Targets, bucket: str, layer: Artifact, lam: Any) -> None:
    with calls.count_writes() as writes:
        result = publish_layer(env, targets, layer, dry_run=True)
    assert writes.count == 0
    assert result.dry_run and result.uploaded and result.published and result.layer_version_arn is None
    assert layer_versions(lam, targets.layer_name) == []


def test_network_error_mid_upload_then_rerun_converges(
    env: EnvConfig, targets: Targets, bucket: str, layer: Artifact, lam: Any, inject: Any
) -> None:
    failures = [1]

    def drop_connection(**_: Any) -> None:
        if failures:
            failures.pop()
            raise EndpointConnectionError(endpoint_url=f"https://{bucket}.s3.amazonaws.com")

    inject("s3", "PutObject", drop_connection)
    with pytest.raises(AwsError, match=r"upload of .* failed"):
        publish_layer(env, targets, layer)
    assert layer_versions(lam, targets.layer_name) == []
    result = publish_layer(env, targets, layer)
    assert result.uploaded and result.published
    assert publish_layer(env, targets, layer).published is False
    assert layer_versions(lam, targets.layer_name) == [1]


def test_failure_after_upload_reuses_the_object(
    env: EnvConfig, targets: Targets, bucket: str, layer: Artifact, lam: Any, inject: Any
) -> None:
    from tests.aws.conftest import client_error

    failures = [1]

    def refuse(**_: Any) -> None:
        if failures:
            failures.pop()
            raise client_error("ServiceException", "PublishLayerVersion")

    inject("lambda", "PublishLayerVersion", refuse)
    with pytest.raises(AwsError, match="publishing"):
        publish_layer(env, targets, layer)
    with calls.count_writes() as writes:
        result = publish_layer(env, targets, layer)
    assert writes.operations() == ["PublishLayerVersion", "PutObject"] and not result.uploaded  # + the pointer
    assert layer_versions(lam, targets.layer_name) == [1]


def test_object_with_s3s_own_checksum_is_not_uploaded_again(
    env: EnvConfig, targets: Targets, bucket: str, layer: Artifact, s3: Any
) -> None:
    s3.put_object(Bucket=bucket, Key=layer.s3_key, Body=layer.path.read_bytes(), ChecksumAlgorithm="SHA256")
    assert plan_publish(env, targets, layer).upload is False


def test_user_set_sha256_metadata_proves_nothing(
    env: EnvConfig, targets: Targets, bucket: str, layer: Artifact, s3: Any
) -> None:
    """Metadata is whatever the uploader wrote; only S3's checksum of the bytes counts."""
    s3.put_object(Bucket=bucket, Key=layer.s3_key, Body=b"not the zip", Metadata={"sha256": layer.sha256})
    with calls.count_writes() as writes, pytest.raises(AwsError) as err:
        publish_layer(env, targets, layer)
    assert "absent (uploaded without one)" in str(err.value) and writes.count == 0


def test_other_bytes_under_the_identity_key_are_refused_naming_both_checksums(
    env: EnvConfig, targets: Targets, bucket: str, layer: Artifact, s3: Any, lam: Any
) -> None:
    """Same identity, other bytes: a reproducibility bug to surface, not an object to overwrite."""
    s3.put_object(Bucket=bucket, Key=layer.s3_key, Body=b"another machine's zip", ChecksumAlgorithm="SHA256")
    theirs = s3.head_object(Bucket=bucket, Key=layer.s3_key, ChecksumMode="ENABLED")["ChecksumSHA256"]
    with calls.count_writes() as writes, pytest.raises(AwsError) as err:
        publish_layer(env, targets, layer)
    message = str(err.value)
    assert theirs in message and layer.code_sha256 in message and "refusing to overwrite" in message
    assert err.value.exit_code == 8 and writes.count == 0
    assert s3.get_object(Bucket=bucket, Key=layer.s3_key)["Body"].read() == b"another machine's zip"
    assert layer_versions(lam, targets.layer_name) == []


def test_multipart_object_matches_by_its_composite_checksum(
    env: EnvConfig, targets: Targets, bucket: str, tmp_path: Path, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above the threshold S3 only keeps a checksum of the parts' checksums; we compute the same one."""
    from deploy.aws import publish as publish_mod
    from tests.aws.conftest import make_artifact

    monkeypatch.setattr(publish_mod, "MULTIPART_THRESHOLD", 5 * 1024 * 1024)
    monkeypatch.setattr(publish_mod, "MULTIPART_CHUNKSIZE", 5 * 1024 * 1024)
    big = make_artifact(tmp_path, "layer", "x" * 100 + os.urandom(6 * 1024 * 1024).hex())
    assert big.path.stat().st_size > 5 * 1024 * 1024
    first = publish_layer(env, targets, big)
    assert first.uploaded
    head = s3.head_object(Bucket=bucket, Key=big.s3_key, ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"].split("-")[0] == publish_mod.composite_sha256(big, 5 * 1024 * 1024)
    assert head["ChecksumSHA256"] != big.code_sha256
    assert plan_publish(env, targets, big).upload is False


def test_publish_all_reports_each_region(env: EnvConfig, targets: Targets, bucket: str, layer: Artifact) -> None:
    west = Targets(**{**targets.__dict__, "region": "eu-west-1", "bucket": "acme-test-artifacts-eu"})
    boto3.client("s3", region_name="us-west-2").create_bucket(
        Bucket="acme-test-artifacts-usw2", CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
    )
    usw2 = Targets(**{**targets.__dict__, "region": "us-west-2", "bucket": "acme-test-artifacts-usw2"})
    regions = {REGION: targets, "eu-west-1": west, "us-west-2": usw2}
    with pytest.raises(AwsError, match=r"1 of 3 regions: eu-west-1: S3 bucket acme-test-artifacts-eu") as caught:
        publish_all(env, regions, layer, max_workers=3)
    results = caught.value.results  # type: ignore[attr-defined]
    assert [type(r) for r in results] == [PublishResult, RegionFailure, PublishResult]
    assert all(r.published for r in results if isinstance(r, PublishResult))
    ok = publish_all(env, {REGION: targets, "us-west-2": usw2}, layer, max_workers=2)
    assert [r.published for r in ok if isinstance(r, PublishResult)] == [False, False]


def test_share_is_idempotent(env: EnvConfig, targets: Targets, bucket: str, layer: Artifact, lam: Any) -> None:
    arn = publish_layer(env, targets, layer).layer_version_arn
    assert arn
    settings = ShareSettings(accounts=("111122223333", "444455556666"))
    first = share_layer(env, arn, settings)
    assert first.added == ("share-account-111122223333", "share-account-444455556666")
    with calls.count_writes() as writes:
        second = share_layer(env, arn, settings)
    assert second.added == () and len(second.existing) == 2 and writes.count == 0
    policy = json.loads(lam.get_layer_version_policy(LayerName=targets.layer_name, VersionNumber=1)["Policy"])
    assert sorted(s["Principal"] for s in policy["Statement"]) == ["111122223333", "444455556666"]
    with calls.count_writes() as dry:
        planned = share_layer(env, arn, ShareSettings(accounts=("777788889999",)), dry_run=True)
    assert planned.added == ("share-account-777788889999",) and dry.count == 0


def test_public_share_needs_allow_public() -> None:
    with pytest.raises(ConfigError, match="public"):
        grants(ShareSettings(accounts=("*",)))
    assert [g.principal for g in grants(ShareSettings(accounts=("*",), allow_public=True))] == ["*"]
    org = grants(ShareSettings(organization_id="o-abcdefghij"))
    assert org[0].principal == "*" and org[0].organization_id == "o-abcdefghij"
    with pytest.raises(ConfigError, match="12-digit"):
        grants(ShareSettings(accounts=("12345",)))


def test_multipart_upload_failure_is_a_clear_error(
    env: EnvConfig,
    targets: Targets,
    bucket: str,
    layer: Artifact,
    lam: Any,
    inject: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Large layers go through the managed transfer, which wraps errors in boto3's own exception type."""
    from deploy.aws import publish as publish_mod
    from tests.aws.conftest import client_error

    monkeypatch.setattr(publish_mod, "MULTIPART_THRESHOLD", 1)

    def refuse(**_: Any) -> None:
        raise client_error("AccessDenied", "PutObject")

    inject("s3", "PutObject", refuse)
    inject("s3", "CreateMultipartUpload", refuse)
    with pytest.raises(AwsError, match=r"upload of .* failed"):
        publish_layer(env, targets, layer)
    assert layer_versions(lam, targets.layer_name) == []


@pytest.mark.parametrize("multipart", [False, True])
def test_upload_reports_every_byte_sent_to_its_progress_display(
    env: EnvConfig, targets: Targets, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, multipart: bool
) -> None:
    """The byte bar: boto3's callback (multipart) or one report (single PUT) adds up to the zip's size."""
    from contextlib import contextmanager
    from threading import Lock

    from deploy.aws import publish as publish_mod

    if multipart:
        monkeypatch.setattr(publish_mod, "MULTIPART_THRESHOLD", 5 * 1024 * 1024)
        monkeypatch.setattr(publish_mod, "MULTIPART_CHUNKSIZE", 5 * 1024 * 1024)
    identity = os.urandom(32).hex()  # a real identity's shape: 64 hex digits
    big = make_artifact(tmp_path, "layer", os.urandom(6 * 1024 * 1024).hex(), identity=identity)
    shown: list[tuple[str, int]] = []
    sent: list[int] = []
    lock = Lock()

    @contextmanager
    def display(text: str, total: int) -> Any:
        shown.append((text, total))

        def add(n: int) -> None:
            with lock:  # boto3 calls back from its transfer threads
                sent.append(n)

        yield add

    publish_layer(env, targets, big, transfer=display)
    assert shown == [
        (
            f"{REGION}: uploading layer {big.identity[:12]} to s3://{bucket}/lambda/layer-{big.identity[:12]}….zip",
            big.zipped_size,
        )
    ]
    assert sum(sent) == big.path.stat().st_size == big.zipped_size
    assert (len(sent) > 1) is multipart
