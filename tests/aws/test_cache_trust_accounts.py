"""Production in another account than staging: the pointer names the version, Lambda vouches for it.

moto is one account, so Lambda's cross-account answers (the publisher's version as a layer version
permission lets production read it, or AccessDenied) come from a botocore Stubber on the Lambda
client the read-through makes; the bucket, the zips and the pointer are moto's. The Stubber holds
only the calls each case expects: any other Lambda call fails the test.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from deploy import terraform
from deploy.artifact import MANIFEST, Artifact, code_sha256, layer_key
from deploy.aws import cache_pointer, calls, publish
from deploy.build import build_layer, layer_plan
from deploy.config import EnvConfig, Targets
from deploy.context import RunContext
from deploy.run import layer_source
from tests.aws.conftest import REGION
from tests.aws.test_cache import _failing_targets, _republish_tampered, _staging_then_production
from tests.unit.test_build import FakeInstaller

STAGING = "111122223333"
PUBLISHER = f"arn:aws:lambda:{REGION}:{STAGING}:layer:app-staging-deps"
VERSION_ARN = f"{PUBLISHER}:7"


def _version(built: Artifact, *, arn: str = VERSION_ARN, code_sha256: str | None = None) -> dict[str, Any]:
    """GetLayerVersion's answer for staging's version, as production is allowed to read it."""
    return {
        "LayerArn": arn.rsplit(":", 1)[0],
        "LayerVersionArn": arn,
        "Version": int(arn.rsplit(":", 1)[1]),
        "Description": publish.describe(built),
        "CreatedDate": datetime.datetime.now(datetime.UTC).isoformat(),
        "Content": {
            "CodeSha256": code_sha256 or built.code_sha256,
            "CodeSize": built.zipped_size,
            "Location": "https://awslambda-us-east-1-layers.s3.us-east-1.amazonaws.com/snapshot",
        },
    }


@contextmanager
def lambda_answers(*answers: Callable[[Stubber], None]) -> Iterator[list[Stubber]]:
    """Every Lambda client built inside answers exactly ``answers`` in order (then nothing)."""
    stubs: list[Stubber] = []

    def hook(service: str, client: Any) -> None:
        if service == "lambda":
            stub = Stubber(client)
            for answer in answers:
                answer(stub)
            stub.activate()
            stubs.append(stub)

    with calls.client_hook(hook):
        yield stubs
    for stub in stubs:
        stub.assert_no_pending_responses()


def _get_version(built: Artifact, **kw: Any) -> Callable[[Stubber], None]:
    return lambda stub: stub.add_response(
        "get_layer_version",
        _version(built, **kw),
        {"LayerName": PUBLISHER, "VersionNumber": 7},
    )


def _denied(operation: str, message: str) -> Callable[[Stubber], None]:
    return lambda stub: stub.add_client_error(
        operation, service_error_code="AccessDeniedException", service_message=message, http_status_code=403
    )


@pytest.fixture
def staged(
    s3: Any, bucket: str, targets: Targets, publisher: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Artifact, EnvConfig]:
    """Staging (account 111122223333) published its layer; its bucket holds zip, manifest, SBOM and the
    pointer to version 7; production (never applied) names staging's layer as its publisher."""
    built, production = _staging_then_production(tmp_path, bucket, targets, publisher)
    pointer = cache_pointer.Pointer(
        identity=built.identity, layer_version_arn=VERSION_ARN, code_sha256=built.code_sha256
    )
    cache_pointer.write_pointer(s3, bucket, pointer)
    monkeypatch.setattr(terraform, "load_targets", _failing_targets)
    cached = production.remote_cache
    production = EnvConfig(
        name=production.name,
        region=production.region,
        paths=production.paths,
        remote_cache=type(cached)(bucket=cached.bucket, publisher=PUBLISHER),
    )
    return built, production


def _read_through(production: EnvConfig, *, builds: bool) -> tuple[bool, FakeInstaller, Any]:
    installer = FakeInstaller(fail=not builds)
    plan = layer_plan(production, installer=installer)
    with calls.count_writes() as writes:
        fetched = layer_source.read_through_cache(RunContext.create(production), plan)
    assert writes.count == 0  # production only reads
    return fetched, installer, plan


def test_production_in_another_account_uses_what_the_pointer_names_once_lambda_confirms_it(
    staged: tuple[Artifact, EnvConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    built, production = staged
    with lambda_answers(_get_version(built)):
        fetched, installer, plan = _read_through(production, builds=False)

    assert fetched and installer.calls == []
    result = build_layer(plan)
    assert result.reused and result.artifact.path.read_bytes() == built.path.read_bytes()
    assert "fetched from s3://" in capsys.readouterr().err


def test_a_forged_pointer_naming_another_accounts_version_is_not_asked_about(
    s3: Any, bucket: str, staged: tuple[Artifact, EnvConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    """A writer of the bucket publishes its own layer (its account, even the same layer name) and
    points at it: the version is not the publisher's, so Lambda is not even asked."""
    built, production = staged
    forged = f"arn:aws:lambda:{REGION}:444455556666:layer:app-staging-deps:1"
    cache_pointer.write_pointer(
        s3,
        bucket,
        cache_pointer.Pointer(identity=built.identity, layer_version_arn=forged, code_sha256=built.code_sha256),
    )
    with lambda_answers():  # no Lambda call at all
        fetched, _installer, plan = _read_through(production, builds=True)

    said = capsys.readouterr().err
    assert not fetched and not plan.zip_path.exists()
    assert (
        f"the publisher pointer names {forged} (account 444455556666), not a version of publisher {PUBLISHER}" in said
    )
    assert said.count("\n") == 1 and said.rstrip().endswith("building locally")


def test_a_pointer_whose_code_sha256_is_not_lambdas_is_refused(
    s3: Any, bucket: str, staged: tuple[Artifact, EnvConfig], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bucket's writer replaces zip, manifest and the pointer's CodeSha256 together, consistently,
    keeping staging's real version ARN: Lambda still reports the CodeSha256 staging published."""
    built, production = staged
    _republish_tampered(s3, bucket, built, {"python/six/extra.py": b"import os  # not what staging built\n"})
    manifest_key = layer_key(built.identity, MANIFEST)
    tampered = cache_pointer.Pointer(
        identity=built.identity,
        layer_version_arn=VERSION_ARN,
        code_sha256=code_sha256(json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())["sha256"]),
    )
    cache_pointer.write_pointer(s3, bucket, tampered)
    with lambda_answers(_get_version(built)):
        fetched, _installer, plan = _read_through(production, builds=True)

    said = capsys.readouterr().err
    assert not fetched and not plan.zip_path.exists()
    assert f"the publisher pointer for {VERSION_ARN} says CodeSha256 {tampered.code_sha256}, Lambda says" in said
    assert built.code_sha256 in said


def test_bytes_that_are_not_what_lambda_confirms_are_refused(
    s3: Any, bucket: str, staged: tuple[Artifact, EnvConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    """Pointer and Lambda agree on staging's CodeSha256; the zip beside them is another one."""
    built, production = staged
    _republish_tampered(s3, bucket, built, {"python/six/extra.py": b"import os  # not what staging built\n"})
    with lambda_answers(_get_version(built)):
        fetched, _installer, plan = _read_through(production, builds=True)

    said = capsys.readouterr().err
    assert not fetched and not plan.zip_path.exists()
    assert "is not what the publisher published with this identity" in said


def test_a_version_published_for_another_identity_is_refused(
    staged: tuple[Artifact, EnvConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    """The pointer names a real version of the publisher, but Lambda's description says it holds another
    identity's layer (an older release whose bytes the writer copied under this key)."""
    built, production = staged
    other = dataclasses.replace(built, identity="b" * 64)
    with lambda_answers(lambda stub: stub.add_response("get_layer_version", _version(other))):
        fetched, _installer, _plan = _read_through(production, builds=True)

    said = capsys.readouterr().err
    assert not fetched
    assert f"publisher version {VERSION_ARN} was published for layer bbbbbbbbbbbb, not {built.identity[:12]}" in said


def test_access_denied_by_the_publishers_account_means_the_layer_is_built(
    staged: tuple[Artifact, EnvConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    """Staging never shared the version with production's account (``share.accounts``)."""
    built, production = staged
    message = f"User is not authorized to perform: lambda:GetLayerVersion on resource: {VERSION_ARN}"
    with lambda_answers(_denied("get_layer_version", message)):
        fetched, installer, plan = _read_through(production, builds=True)

    said = capsys.readouterr().err
    assert not fetched and not plan.zip_path.exists()
    assert f"publisher version {VERSION_ARN} unreadable (AccessDeniedException: {message})" in said
    assert build_layer(plan).artifact.sha256 == built.sha256 and len(installer.calls) == 1


def test_a_missing_pointer_across_accounts_means_the_layer_is_built(
    s3: Any, bucket: str, staged: tuple[Artifact, EnvConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    """No pointer: the listing is tried, and another account's layer cannot be listed."""
    built, production = staged
    s3.delete_object(Bucket=bucket, Key=cache_pointer.pointer_key(built.identity))
    with lambda_answers(_denied("list_layer_versions", "not authorized to perform: lambda:ListLayerVersions")):
        fetched, _installer, _plan = _read_through(production, builds=True)

    said = capsys.readouterr().err
    assert not fetched
    assert f"no publisher pointer readable at s3://{bucket}/lambda/layer-{built.identity}.published.json" in said
    assert f"cannot read the versions of publisher {PUBLISHER} (AccessDeniedException" in said
    assert said.count("\n") == 1


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"identity": "x"}', b"{" + b" " * 5000 + b"}"],
    ids=["not-json", "fields-missing", "oversized"],
)
def test_a_malformed_pointer_is_a_miss_without_asking_lambda(
    s3: Any, bucket: str, staged: tuple[Artifact, EnvConfig], body: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    built, production = staged
    s3.put_object(Bucket=bucket, Key=cache_pointer.pointer_key(built.identity), Body=body)
    with lambda_answers():
        fetched, _installer, _plan = _read_through(production, builds=True)
    assert not fetched
    assert "is malformed" in capsys.readouterr().err


def test_a_pointer_for_another_identity_is_a_miss(
    s3: Any, bucket: str, staged: tuple[Artifact, EnvConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    built, production = staged
    cache_pointer.write_pointer(
        s3,
        bucket,
        cache_pointer.Pointer(identity="c" * 64, layer_version_arn=VERSION_ARN, code_sha256=built.code_sha256),
    )
    s3.copy_object(
        Bucket=bucket,
        Key=cache_pointer.pointer_key(built.identity),
        CopySource={"Bucket": bucket, "Key": cache_pointer.pointer_key("c" * 64)},
    )
    with lambda_answers():
        fetched, _installer, _plan = _read_through(production, builds=True)
    assert not fetched
    assert "names identity cccccccccccc: not used" in capsys.readouterr().err


# ---------------------------------------------------------------------------- the publisher's side


def test_publishing_a_version_writes_the_pointer_to_it(
    s3: Any, bucket: str, targets: Targets, publisher: str, tmp_path: Path
) -> None:
    built, _production = _staging_then_production(tmp_path, bucket, targets, publisher)
    pointer = cache_pointer.read_pointer(s3, bucket, built.identity)
    assert pointer == cache_pointer.Pointer(
        identity=built.identity, layer_version_arn=f"{publisher}:1", code_sha256=built.code_sha256
    )


def test_a_pointer_that_cannot_be_written_is_a_warning_not_a_failed_publish(
    env: EnvConfig, s3: Any, bucket: str, targets: Targets, layer: Artifact, inject: Any
) -> None:
    """The version is published and right; only other accounts' reads of it will build instead."""
    from tests.aws.conftest import client_error

    def refuse(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key", "").endswith(cache_pointer.POINTER_SUFFIX):
            raise client_error("AccessDenied", "PutObject", "no")

    said: list[str] = []
    inject("s3", "PutObject", refuse)
    result = publish.publish_layer(env, targets, layer, progress=lambda _region, line: said.append(line))

    assert result.published
    assert any(line.startswith("warning: writing s3://") and "will build this layer" in line for line in said)
    assert isinstance(cache_pointer.read_pointer(s3, bucket, layer.identity), cache_pointer.NoPointer)
