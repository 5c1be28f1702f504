"""The artifact bucket as a read-through cache: hits, misses and every checksum disagreement."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from deploy import terraform
from deploy.artifact import Artifact, LayerAddress, sha256_file
from deploy.aws import cache, cache_pointer, calls, publish
from deploy.aws.publish import upload
from deploy.build import build_layer, layer_plan
from deploy.config import EnvConfig, Paths, RemoteCacheSettings, StateSettings, Targets
from deploy.context import RunContext
from deploy.errors import AuditError, CacheError, TerraformError
from deploy.run import infra, layer_source
from deploy.terraform import runner as terraform_runner
from tests.aws.conftest import REGION, make_artifact
from tests.unit.test_build import FakeInstaller, _checkout


def _address(identity: str) -> LayerAddress:
    """The bucket side of a layer's address (its keys do not depend on the local folder)."""
    return LayerAddress(identity=identity, folder=Path("layers"))


def _cached(s3: Any, bucket: str, tmp_path: Path) -> Artifact:
    """A layer as publish-layer leaves it in the bucket: zip, manifest and SBOM under its identity."""
    layer = make_artifact(tmp_path, "layer", "import json  # deps v1\n", identity="a" * 64)
    layer.write_manifest()
    sbom = layer.path.with_suffix(".cdx.json")
    sbom.write_text('{"bomFormat": "CycloneDX"}\n')
    upload(s3, bucket, _address(layer.identity).zip_key, layer)
    cache.upload_sidecars(s3, bucket, layer, sbom)
    return layer


def _put(s3: Any, bucket: str, key: str, data: bytes) -> None:
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    s3.put_object(Bucket=bucket, Key=key, Body=data, ChecksumAlgorithm="SHA256", ChecksumSHA256=digest)


def test_a_cached_layer_is_fetched_with_its_manifest_and_sbom(s3: Any, bucket: str, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    layer = _cached(s3, bucket, tmp_path / "a")
    dest = tmp_path / "b" / "layers"

    got = cache.fetch_layer(s3, bucket, layer.identity, dest, published_code_sha256=layer.code_sha256)

    assert isinstance(got, cache.CacheHit)
    assert got.artifact.path == dest / f"{layer.identity}.zip"
    assert sha256_file(got.artifact.path) == layer.sha256
    assert got.artifact.sha256 == layer.sha256
    assert got.artifact.identity == layer.identity
    assert (dest / f"{layer.identity}.cdx.json").read_text() == '{"bomFormat": "CycloneDX"}\n'
    assert json.loads((dest / f"{layer.identity}.json").read_text())["path"] == f"{layer.identity}.zip"
    assert got.source == f"s3://{bucket}/lambda/layer-{layer.identity}.zip"


def test_a_missing_manifest_is_a_miss_that_says_so(s3: Any, bucket: str, tmp_path: Path) -> None:
    layer = _cached(s3, bucket, tmp_path)
    s3.delete_object(Bucket=bucket, Key=_address(layer.identity).manifest_key)

    got = cache.fetch_layer(s3, bucket, layer.identity, tmp_path / "out")

    assert isinstance(got, cache.CacheMiss)
    assert "no cached manifest" in got.reason
    assert not (tmp_path / "out").exists()


def test_a_missing_sbom_is_a_miss(s3: Any, bucket: str, tmp_path: Path) -> None:
    layer = _cached(s3, bucket, tmp_path)
    s3.delete_object(Bucket=bucket, Key=_address(layer.identity).sbom_key)

    got = cache.fetch_layer(s3, bucket, layer.identity, tmp_path / "out")

    assert isinstance(got, cache.CacheMiss)
    assert "no SBOM" in got.reason


def test_a_missing_bucket_is_a_miss(s3: Any, tmp_path: Path) -> None:
    got = cache.fetch_layer(s3, "no-such-bucket", "a" * 64, tmp_path / "out")

    assert isinstance(got, cache.CacheMiss)
    assert "no-such-bucket" in got.reason


def test_a_tampered_zip_is_refused_naming_both_checksums(s3: Any, bucket: str, tmp_path: Path) -> None:
    layer = _cached(s3, bucket, tmp_path)
    tampered = b"PK\x05\x06" + b"\0" * 18
    _put(s3, bucket, _address(layer.identity).zip_key, tampered)

    with pytest.raises(CacheError, match="S3 checksum") as err:
        cache.fetch_layer(s3, bucket, layer.identity, tmp_path / "out")

    assert hashlib.sha256(tampered).hexdigest()[:16] in str(err.value)
    assert layer.sha256[:16] in str(err.value)
    assert not (tmp_path / "out" / f"{layer.identity}.zip").exists()


def test_a_zip_without_an_s3_checksum_is_still_hashed_on_download(s3: Any, bucket: str, tmp_path: Path) -> None:
    layer = _cached(s3, bucket, tmp_path)
    # Stored without a checksum (as an old client or a hand upload would): only the download hash can tell.
    s3.put_object(Bucket=bucket, Key=_address(layer.identity).zip_key, Body=b"not the layer")

    with pytest.raises(CacheError, match="downloaded with sha256"):
        cache.fetch_layer(s3, bucket, layer.identity, tmp_path / "out")

    assert list((tmp_path / "out").iterdir()) == []


def test_a_manifest_for_another_identity_is_refused(s3: Any, bucket: str, tmp_path: Path) -> None:
    layer = _cached(s3, bucket, tmp_path)
    other = "b" * 64
    keys = _address(other)
    s3.copy_object(
        Bucket=bucket, Key=keys.zip_key, CopySource={"Bucket": bucket, "Key": f"lambda/layer-{layer.identity}.zip"}
    )
    _put(s3, bucket, keys.manifest_key, layer.manifest_path.read_bytes())
    _put(s3, bucket, keys.sbom_key, b"{}")

    with pytest.raises(CacheError, match="not layer bbbbbbbbbbbb"):
        cache.fetch_layer(s3, bucket, other, tmp_path / "out")


def test_a_published_version_with_other_bytes_is_a_reproducibility_error(s3: Any, bucket: str, tmp_path: Path) -> None:
    layer = _cached(s3, bucket, tmp_path)
    other = base64.b64encode(hashlib.sha256(b"other").digest()).decode()

    with pytest.raises(CacheError, match="reproducibility bug"):
        cache.fetch_layer(s3, bucket, layer.identity, tmp_path / "out", published_code_sha256=other)


def test_sidecars_present_reads_only(s3: Any, bucket: str, tmp_path: Path) -> None:
    layer = _cached(s3, bucket, tmp_path)
    assert cache.sidecars_present(s3, bucket, layer.address)
    assert not cache.sidecars_present(s3, bucket, _address("c" * 64))


# ---------------------------------------------------------------------------- read-through in the pipeline


def _failing_targets(*_: Any, **__: Any) -> Any:
    raise TerraformError("terraform has not been applied for production")


def test_a_second_environment_reuses_the_first_ones_bytes(
    s3: Any, bucket: str, targets: Targets, publisher: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Production, never applied, reads staging's build through the shared cache bucket: same bytes."""
    staging = EnvConfig(name="staging", region=REGION, paths=_checkout(tmp_path / "a"))
    built = build_layer(layer_plan(staging, installer=FakeInstaller())).artifact
    publish.publish_layer(staging, targets, built)  # what staging's deploy does: zip, manifest, SBOM, version

    production = EnvConfig(
        name="production",
        region=REGION,
        paths=_checkout(tmp_path / "b"),
        remote_cache=RemoteCacheSettings(bucket=bucket, publisher=publisher),
    )
    monkeypatch.setattr(terraform, "load_targets", _failing_targets)
    unusable = FakeInstaller(fail=True)
    plan = layer_plan(production, installer=unusable)
    assert plan.digest == built.identity

    assert layer_source.read_through_cache(RunContext.create(production), plan) is True
    result = build_layer(plan)

    assert result.reused and unusable.calls == []
    assert result.artifact.sha256 == built.sha256
    assert result.artifact.path.read_bytes() == built.path.read_bytes()


def test_without_a_cached_manifest_the_layer_is_built_and_the_user_told(
    s3: Any,
    bucket: str,
    targets: Targets,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    staging = EnvConfig(name="staging", region=REGION, paths=_checkout(tmp_path / "a"))
    built = build_layer(layer_plan(staging, installer=FakeInstaller())).artifact
    publish.publish_layer(staging, targets, built)
    s3.delete_object(Bucket=bucket, Key=_address(built.identity).manifest_key)

    again = EnvConfig(name="staging", region=REGION, paths=_checkout(tmp_path / "b"))
    monkeypatch.setattr(terraform, "load_targets", lambda *_a, **_k: targets)
    installer = FakeInstaller()
    plan = layer_plan(again, installer=installer)

    assert layer_source.read_through_cache(RunContext.create(again), plan) is False
    assert "no cached manifest" in capsys.readouterr().err
    assert not build_layer(plan).reused and len(installer.calls) == 1


def _republish_tampered(s3: Any, bucket: str, built: Artifact, add: dict[str, bytes]) -> None:
    """Replace zip AND manifest together, consistently (what a writer of the bucket could do)."""
    keys = _address(built.identity)
    tampered = built.path.with_name("tampered.zip")
    with zipfile.ZipFile(built.path) as src, zipfile.ZipFile(tampered, "w") as out:
        for info in src.infolist():
            out.writestr(info, src.read(info))
        for name, data in add.items():
            out.writestr(name, data)
    with zipfile.ZipFile(tampered) as zf:
        unzipped = sum(i.file_size for i in zf.infolist())
    manifest = json.loads(built.manifest_path.read_text())
    manifest.update(sha256=sha256_file(tampered), unzipped_size=unzipped)
    _put(s3, bucket, keys.zip_key, tampered.read_bytes())
    _put(s3, bucket, keys.manifest_key, json.dumps(manifest).encode())


def _staging_then_production(
    tmp_path: Path, bucket: str, targets: Targets, publisher: str
) -> tuple[Artifact, EnvConfig]:
    staging = EnvConfig(name="staging", region=REGION, paths=_checkout(tmp_path / "a"))
    built = build_layer(layer_plan(staging, installer=FakeInstaller())).artifact
    publish.publish_layer(staging, targets, built)
    production = EnvConfig(
        name="production",
        region=REGION,
        paths=_checkout(tmp_path / "b"),
        remote_cache=RemoteCacheSettings(bucket=bucket, publisher=publisher),
    )
    return built, production


def test_a_layer_the_publisher_itself_published_still_fails_the_audit_and_leaves_nothing(
    s3: Any, lam: Any, bucket: str, targets: Targets, publisher: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The publisher vouches for its bytes, not for their contents: a zip with a secret that staging
    published under this identity is fetched (its CodeSha256 matches) and the audit refuses it."""
    built, production = _staging_then_production(tmp_path, bucket, targets, publisher)
    secret = b'KEY = "AKIAZ7QWERTYUIOPASDF"\nSECRET = "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"\n'
    _republish_tampered(s3, bucket, built, {"python/six/settings.py": secret})
    keys = _address(built.identity)
    made = lam.publish_layer_version(
        LayerName=targets.layer_name,
        Content={"S3Bucket": bucket, "S3Key": keys.zip_key},
        Description=f"identity={built.identity}",
    )
    pointer = cache_pointer.Pointer(
        identity=built.identity, layer_version_arn=made["LayerVersionArn"], code_sha256=made["Content"]["CodeSha256"]
    )
    cache_pointer.write_pointer(s3, bucket, pointer)
    monkeypatch.setattr(terraform, "load_targets", _failing_targets)
    plan = layer_plan(production, installer=FakeInstaller(fail=True))

    with pytest.raises(AuditError, match=r"six/settings\.py"):
        layer_source.read_through_cache(RunContext.create(production), plan)

    assert sorted(p.name for p in plan.zip_path.parent.iterdir()) == []


def test_a_cached_sbom_that_does_not_match_the_layer_is_refused(
    s3: Any, bucket: str, targets: Targets, publisher: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    built, production = _staging_then_production(tmp_path, bucket, targets, publisher)
    _put(s3, bucket, _address(built.identity).sbom_key, b'{"bomFormat": "CycloneDX", "forged": 1}')
    monkeypatch.setattr(terraform, "load_targets", _failing_targets)
    plan = layer_plan(production, installer=FakeInstaller(fail=True))

    with pytest.raises(AuditError, match="SBOM"):
        layer_source.read_through_cache(RunContext.create(production), plan)
    assert not plan.zip_path.exists() and not plan.manifest_path.exists()


def test_the_bucket_lookup_creates_nothing(
    s3: Any, bucket: str, targets: Targets, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Finding the artifact bucket's name must not create a state bucket or workspace (read_only)."""
    seen: list[dict[str, Any]] = []

    def fake(env: EnvConfig, **kwargs: Any) -> Targets:
        seen.append(kwargs)
        return targets

    monkeypatch.setattr(terraform, "load_targets", fake)
    env = EnvConfig(name="staging", region=REGION, paths=_checkout(tmp_path))
    with calls.count_writes() as writes:
        assert (
            layer_source.read_through_cache(RunContext.create(env), layer_plan(env, installer=FakeInstaller())) is False
        )
    assert seen == [{"read_only": True}]
    assert writes.count == 0


def test_a_publish_interrupted_before_the_manifest_is_repaired_by_the_rerun(
    env: EnvConfig, targets: Targets, bucket: str, s3: Any, tmp_path: Path, inject: Any
) -> None:
    layer = make_artifact(tmp_path, "layer", "import json  # deps v1\n", identity="d" * 64)
    failures = [1]

    def drop_manifest(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key", "").endswith(".json") and failures:
            failures.pop()
            raise EndpointConnectionError(endpoint_url=f"https://{bucket}.s3.amazonaws.com")

    inject("s3", "PutObject", drop_manifest)
    with pytest.raises(CacheError, match="upload of"):
        publish.publish_layer(env, targets, layer)
    assert not cache.sidecars_present(s3, bucket, layer.address)

    assert publish.publish_layer(env, targets, layer).published
    assert cache.sidecars_present(s3, bucket, layer.address)


def test_a_published_layer_is_described_by_its_manifest_without_its_bytes(s3: Any, bucket: str, tmp_path: Path) -> None:
    layer = _cached(s3, bucket, tmp_path)
    zip_path = tmp_path / "elsewhere" / f"{layer.identity}.zip"

    got = cache.published_layer(s3, bucket, layer.identity, zip_path, published_code_sha256=layer.code_sha256)

    assert got.code_sha256 == layer.code_sha256 and got.identity == layer.identity
    assert got.path == zip_path and not zip_path.exists()  # nothing downloaded
    other = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    with pytest.raises(CacheError, match="reproducibility bug"):
        cache.published_layer(s3, bucket, layer.identity, zip_path, published_code_sha256=other)


def _staging_with_state_object(s3: Any, tmp_path: Path) -> EnvConfig:
    """staging, whose S3 backend holds a state object with the deploy's outputs (as an apply leaves it)."""
    from tests.unit.test_terraform import deploy_targets, output_json

    state = StateSettings(bucket="tf-state", key="app.tfstate")
    s3.create_bucket(Bucket="tf-state")
    outputs = output_json({**deploy_targets("staging"), "region": REGION})
    body = json.dumps({"version": 4, "terraform_version": "1.11.4", "outputs": outputs, "resources": []})
    s3.put_object(Bucket="tf-state", Key="env:/staging/app.tfstate", Body=body.encode())
    return EnvConfig(name="staging", region=REGION, state=state, paths=Paths(root=tmp_path))


def test_the_artifact_bucket_is_found_in_the_state_object_without_terraform(
    s3: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A fresh runner reads one state object instead of running terraform init (which copies the provider)."""
    from tests.unit.test_terraform import deploy_targets

    env = _staging_with_state_object(s3, tmp_path)

    def no_terraform(*_: Any, **__: Any) -> Any:
        raise AssertionError("terraform must not run for a read-only lookup the state object answers")

    monkeypatch.setattr(terraform_runner, "terraform_for", no_terraform)
    terraform.forget_targets()
    got = terraform.load_targets(env, read_only=True)

    assert got.bucket == deploy_targets("staging")["bucket"] and got.region == REGION
    s3.delete_object(Bucket="tf-state", Key="env:/staging/app.tfstate")
    with pytest.raises(TerraformError, match="no Terraform state to read for staging"):
        terraform.load_targets(env, read_only=True)  # nothing applied: a miss, and still no Terraform run


def test_a_deploy_whose_last_apply_stands_reads_its_targets_from_the_state_object(
    s3: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A code-only deploy: the fingerprint says configuration and state are what the last apply left,
    so the outputs in that state object are Terraform's answer; no Terraform process runs for them.
    When an apply is due (or there is no state object to read), Terraform itself answers."""
    from tests.unit.test_terraform import deploy_targets, output_json

    env = _staging_with_state_object(s3, tmp_path)
    outputs = output_json({**deploy_targets("staging"), "region": REGION})
    ran: list[str] = []

    def terraform_output(*_: Any, **__: Any) -> Any:
        ran.append("terraform output")
        return outputs

    monkeypatch.setattr(
        terraform_runner, "terraform_for", lambda *_a, **_k: SimpleNamespace(var_file=tmp_path / "x.tfvars")
    )
    monkeypatch.setattr(terraform_runner, "output_json", terraform_output)
    terraform.forget_targets()

    got = infra._plan_targets(RunContext.create(env), applied=True)
    assert got.bucket == deploy_targets("staging")["bucket"]
    assert ran == []
    assert infra._plan_targets(RunContext.create(env), applied=False) == got
    assert ran == ["terraform output"]
    terraform.forget_targets()
    s3.delete_object(Bucket="tf-state", Key="env:/staging/app.tfstate")
    assert infra._plan_targets(RunContext.create(env), applied=True) == got  # no state object: Terraform answers
    assert ran == ["terraform output", "terraform output"]
    terraform.forget_targets()
