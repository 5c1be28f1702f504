"""The artifact bucket as a read-through cache: hits, misses and every checksum disagreement."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from deploy.artifact import Artifact, sha256_file
from deploy.aws import cache
from deploy.aws.publish import upload
from deploy.errors import CacheError
from tests.aws.conftest import make_artifact


def _cached(s3: Any, bucket: str, tmp_path: Path) -> Artifact:
    """A layer as publish-layer leaves it in the bucket: zip, manifest and SBOM under its identity."""
    layer = make_artifact(tmp_path, "layer", "import json  # deps v1\n", identity="a" * 64)
    layer.write_manifest()
    sbom = layer.path.with_suffix(".cdx.json")
    sbom.write_text('{"bomFormat": "CycloneDX"}\n')
    upload(s3, bucket, cache.CacheKeys.for_identity(layer.identity).zip, layer)
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
    s3.delete_object(Bucket=bucket, Key=cache.CacheKeys.for_identity(layer.identity).manifest)

    got = cache.fetch_layer(s3, bucket, layer.identity, tmp_path / "out")

    assert isinstance(got, cache.CacheMiss)
    assert "no cached manifest" in got.reason
    assert not (tmp_path / "out").exists()


def test_a_missing_sbom_is_a_miss(s3: Any, bucket: str, tmp_path: Path) -> None:
    layer = _cached(s3, bucket, tmp_path)
    s3.delete_object(Bucket=bucket, Key=cache.CacheKeys.for_identity(layer.identity).sbom)

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
    _put(s3, bucket, cache.CacheKeys.for_identity(layer.identity).zip, tampered)

    with pytest.raises(CacheError, match="S3 checksum") as err:
        cache.fetch_layer(s3, bucket, layer.identity, tmp_path / "out")

    assert hashlib.sha256(tampered).hexdigest()[:16] in str(err.value)
    assert layer.sha256[:16] in str(err.value)
    assert not (tmp_path / "out" / f"{layer.identity}.zip").exists()


def test_a_zip_without_an_s3_checksum_is_still_hashed_on_download(s3: Any, bucket: str, tmp_path: Path) -> None:
    layer = _cached(s3, bucket, tmp_path)
    # Stored without a checksum (as an old client or a hand upload would): only the download hash can tell.
    s3.put_object(Bucket=bucket, Key=cache.CacheKeys.for_identity(layer.identity).zip, Body=b"not the layer")

    with pytest.raises(CacheError, match="downloaded with sha256"):
        cache.fetch_layer(s3, bucket, layer.identity, tmp_path / "out")

    assert list((tmp_path / "out").iterdir()) == []


def test_a_manifest_for_another_identity_is_refused(s3: Any, bucket: str, tmp_path: Path) -> None:
    layer = _cached(s3, bucket, tmp_path)
    other = "b" * 64
    keys = cache.CacheKeys.for_identity(other)
    s3.copy_object(
        Bucket=bucket, Key=keys.zip, CopySource={"Bucket": bucket, "Key": f"lambda/layer-{layer.identity}.zip"}
    )
    _put(s3, bucket, keys.manifest, layer.manifest_path.read_bytes())
    _put(s3, bucket, keys.sbom, b"{}")

    with pytest.raises(CacheError, match="not layer bbbbbbbbbbbb"):
        cache.fetch_layer(s3, bucket, other, tmp_path / "out")


def test_a_published_version_with_other_bytes_is_a_reproducibility_error(s3: Any, bucket: str, tmp_path: Path) -> None:
    layer = _cached(s3, bucket, tmp_path)
    other = base64.b64encode(hashlib.sha256(b"other").digest()).decode()

    with pytest.raises(CacheError, match="reproducibility bug"):
        cache.fetch_layer(s3, bucket, layer.identity, tmp_path / "out", published_code_sha256=other)


def test_sidecars_present_reads_only(s3: Any, bucket: str, tmp_path: Path) -> None:
    layer = _cached(s3, bucket, tmp_path)
    assert cache.sidecars_present(s3, bucket, layer.identity)
    assert not cache.sidecars_present(s3, bucket, "c" * 64)
