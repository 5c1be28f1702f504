"""The shared cache bucket is trusted only for bytes its publisher published (remote_cache.publisher).

Production reads staging's bucket by identity; what binds those bytes to staging's release is the
CodeSha256 Lambda reports for the layer version staging published with that identity. Anything else
(bytes replaced in the bucket, no such version, the publisher unreadable) is a miss that says why
in one line, and production builds its own layer.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from deploy import terraform
from deploy.artifact import Artifact
from deploy.aws import cache, cache_pointer, calls
from deploy.build import build_layer, layer_plan
from deploy.config import EnvConfig, Targets
from deploy.context import RunContext
from deploy.run import layer_source
from tests.aws.conftest import REGION
from tests.aws.test_cache import _cached, _failing_targets, _republish_tampered, _staging_then_production
from tests.unit.test_build import FakeInstaller


def _production_builds(
    production: EnvConfig, built: Artifact, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> str:
    """Run the read-through for a never-applied production; assert it built, and return what it said."""
    monkeypatch.setattr(terraform, "load_targets", _failing_targets)
    installer = FakeInstaller()
    plan = layer_plan(production, installer=installer)
    assert plan.digest == built.identity
    with calls.count_writes() as writes:
        assert layer_source.read_through_cache(RunContext.create(production), plan) is False
    assert writes.count == 0  # production only reads
    said = capsys.readouterr().err
    result = build_layer(plan)
    assert not result.reused and len(installer.calls) == 1
    assert result.artifact.sha256 == built.sha256  # the build staging published, made here
    return said


def test_bytes_replaced_in_the_shared_bucket_are_refused_and_the_layer_is_built(
    s3: Any,
    bucket: str,
    targets: Targets,
    publisher: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A writer of the bucket replaces zip and manifest together, consistently, under the same key:
    every checksum agrees, but staging never published those bytes."""
    built, production = _staging_then_production(tmp_path, bucket, targets, publisher)
    _republish_tampered(s3, bucket, built, {"python/six/extra.py": b"import os  # not what staging built\n"})

    said = _production_builds(production, built, capsys, monkeypatch)

    assert f"s3://{bucket}/lambda/layer-{built.identity}.zip (sha256 " in said
    assert "is not what the publisher published with this identity" in said
    assert said.count("\n") == 1 and "building locally" in said


def test_no_version_of_the_publisher_with_this_identity_means_the_layer_is_built(
    s3: Any,
    lam: Any,
    bucket: str,
    targets: Targets,
    publisher: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Zip, manifest and SBOM in the bucket agree, but the publisher holds no version with this
    identity (never published, or deleted since): nothing vouches for them."""
    built, production = _staging_then_production(tmp_path, bucket, targets, publisher)
    for version in lam.list_layer_versions(LayerName=targets.layer_name)["LayerVersions"]:
        lam.delete_layer_version(LayerName=targets.layer_name, VersionNumber=version["Version"])
    assert cache.sidecars_present(s3, bucket, built.address)

    said = _production_builds(production, built, capsys, monkeypatch)

    assert f"publisher version {publisher}:1 unreadable (ResourceNotFoundException" in said
    # Without the pointer too, the listing (one account) is the witness, and it finds nothing either.
    s3.delete_object(Bucket=bucket, Key=cache_pointer.pointer_key(built.identity))
    shutil.rmtree(production.paths.build / "layers")  # a fresh runner again
    said = _production_builds(production, built, capsys, monkeypatch)
    assert f"no publisher pointer readable at s3://{bucket}/{cache_pointer.pointer_key(built.identity)}" in said
    assert f"publisher {publisher} has published no version of layer {built.identity[:12]}" in said


def test_without_a_pointer_a_publisher_this_role_cannot_list_means_the_layer_is_built(
    s3: Any,
    bucket: str,
    targets: Targets,
    publisher: str,
    inject: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A bucket without a pointer (a publisher from before pointers): Lambda refuses ListLayerVersions
    on another account's layer (a layer version permission can grant only GetLayerVersion): a miss
    that says so, never an error that stops the deploy."""
    built, production = _staging_then_production(tmp_path, bucket, targets, publisher)
    s3.delete_object(Bucket=bucket, Key=cache_pointer.pointer_key(built.identity))

    def denied(**_: Any) -> None:
        error = {"Code": "AccessDeniedException", "Message": "not authorized to perform: lambda:ListLayerVersions"}
        raise ClientError({"Error": error}, "ListLayerVersions")

    inject("lambda", "ListLayerVersions", denied)

    said = _production_builds(production, built, capsys, monkeypatch)

    assert f"cannot read the versions of publisher {publisher}" in said
    assert "lambda:ListLayerVersions" in said


def test_the_publisher_is_asked_for_its_own_layer_in_its_own_region(
    bucket: str, targets: Targets, publisher: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Production's own layer is not the witness: the lookup names the publisher's ARN and region."""
    _, production = _staging_then_production(tmp_path, bucket, targets, publisher)
    # Production lives elsewhere; the bucket and the publisher are staging's (REGION).
    production = dataclasses.replace(
        production,
        region="eu-central-1",
        remote_cache=dataclasses.replace(production.remote_cache, region=REGION),
    )
    asked: list[tuple[str, str]] = []

    def record(service: str, client: Any) -> None:
        if service == "lambda":

            def seen(params: dict[str, Any], **_: Any) -> None:
                asked.append((client.meta.region_name, str(params.get("LayerName"))))

            # Registered first, so it sees the ARN before the moto shim rewrites it.
            client.meta.events.register_first("before-parameter-build.lambda.GetLayerVersion", seen)

    monkeypatch.setattr(terraform, "load_targets", _failing_targets)
    with calls.client_hook(record):
        assert layer_source.read_through_cache(
            RunContext.create(production), layer_plan(production, installer=FakeInstaller(fail=True))
        )
    assert asked == [(REGION, publisher)]  # the pointer's version, asked of the publisher's layer


def test_bytes_the_publisher_did_not_publish_are_a_miss_and_leave_nothing(s3: Any, bucket: str, tmp_path: Path) -> None:
    """fetch_layer itself: a CodeSha256 the publisher vouches for that the cached manifest does not
    record is a miss (the caller builds), not a CacheError, and nothing is downloaded."""
    (tmp_path / "a").mkdir()
    layer = _cached(s3, bucket, tmp_path / "a")
    dest = tmp_path / "b" / "layers"
    other = base64.b64encode(hashlib.sha256(b"other bytes").digest()).decode()

    got = cache.fetch_layer(s3, bucket, layer.identity, dest, trusted_code_sha256=other)

    assert isinstance(got, cache.CacheMiss) and "not what the publisher published" in got.reason
    assert not dest.exists() or list(dest.iterdir()) == []
    hit = cache.fetch_layer(s3, bucket, layer.identity, dest, trusted_code_sha256=layer.code_sha256)
    assert isinstance(hit, cache.CacheHit)


def test_the_environments_own_bucket_named_as_the_shared_one_is_still_read_as_its_own(
    bucket: str, targets: Targets, publisher: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A publisher that vouches for nothing makes the shared bucket a miss, but when that bucket is
    the environment's own artifact bucket it is still read as such (its writers can publish anyway)."""
    built, production = _staging_then_production(tmp_path, bucket, targets, publisher.replace(":layer:", ":layer:x"))
    monkeypatch.setattr(terraform, "load_targets", lambda *_a, **_k: targets)
    plan = layer_plan(production, installer=FakeInstaller(fail=True))

    assert layer_source.read_through_cache(RunContext.create(production), plan) is True
    assert build_layer(plan).artifact.sha256 == built.sha256
