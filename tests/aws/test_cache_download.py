"""Fetching a cached layer in parallel ranged parts: the same bytes, hashed once as they arrive, and a
transfer cut short or an object replaced mid-download is a miss that leaves nothing behind."""

from __future__ import annotations

import dataclasses
import io
import os
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.response import StreamingBody

from deploy import artifact as artifact_mod
from deploy import terraform
from deploy.artifact import Artifact, layer_key, sha256_file
from deploy.aws import cache, calls
from deploy.aws.publish import upload
from deploy.build import build_layer, layer_plan
from deploy.config import EnvConfig, Targets
from deploy.context import RunContext
from deploy.run import layer_source
from tests.aws.conftest import make_artifact
from tests.unit.test_build import FakeInstaller, _checkout

PART = 4096


def _big_cached(s3: Any, bucket: str, tmp_path: Path) -> Artifact:
    """A layer of about 40 KB of incompressible bytes (ten parts of PART), uploaded as publish does."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    layer = make_artifact(tmp_path, "layer", "x = 1\n", identity="e" * 64)
    with zipfile.ZipFile(layer.path, "w", compression=zipfile.ZIP_STORED) as zf:
        info = zipfile.ZipInfo("python/blob.bin", date_time=(2020, 1, 1, 0, 0, 0))
        zf.writestr(info, os.urandom(10 * PART - 200))
    sha = sha256_file(layer.path)
    layer = dataclasses.replace(layer, sha256=sha, zipped_size=layer.path.stat().st_size)
    layer.write_manifest()
    upload(s3, bucket, layer_key(layer.identity), layer)
    cache.upload_sidecars(s3, bucket, layer, layer.sbom_path)
    return layer


def _on_parts(s3: Any, handler: Callable[[dict[str, Any], dict[str, Any], int], None]) -> list[str]:
    """Call ``handler(params, parsed, n)`` after the n-th ranged GET (0-based); returns the ranges asked."""
    asked: list[str] = []

    def keep(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["api_params"] = dict(params)

    def after(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        params = context.get("api_params", {})
        if "Range" in params:
            asked.append(params["Range"])
            handler(params, parsed, len(asked) - 1)

    s3.meta.events.register("before-parameter-build.s3.GetObject", keep)
    s3.meta.events.register("after-call.s3.GetObject", after)
    return asked


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "PART_SIZE", PART)


def test_a_layer_comes_in_parallel_parts_hashed_as_they_arrive_and_never_read_back(
    s3: Any, bucket: str, tmp_path: Path, small_parts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = _big_cached(s3, bucket, tmp_path / "a")
    asked = _on_parts(s3, lambda *_: None)
    dest = tmp_path / "b" / "layers"

    def no_rehash(path: Path) -> str:
        raise AssertionError(f"{path} was read back to be hashed")

    monkeypatch.setattr(artifact_mod, "sha256_file", no_rehash)
    got = cache.fetch_layer(s3, bucket, layer.identity, dest, published_code_sha256=layer.code_sha256)

    assert isinstance(got, cache.CacheHit)
    assert got.artifact.path.read_bytes() == layer.path.read_bytes()
    assert sorted(asked, key=lambda r: int(r.split("=")[1].split("-")[0])) == [
        f"bytes={start}-{min(start + PART, layer.zipped_size) - 1}" for start in range(0, layer.zipped_size, PART)
    ]
    assert len(asked) == 10
    # What build-layer does next with a fetched layer (its reuse check) does not hash it again either.
    got.artifact.check(trust_stat=True)


def _cut(parsed: dict[str, Any], keep: int, *, declared: bool) -> None:
    data = parsed["Body"].read()
    short = data[:keep]
    # declared: the response said the full length and the connection closed early (botocore notices);
    # otherwise a body that just ends (a proxy that rewrote the length): our own count notices.
    parsed["Body"] = StreamingBody(io.BytesIO(short), len(data)) if declared else io.BytesIO(short)


@pytest.mark.parametrize("declared", [True, False], ids=["connection-closed", "body-ends"])
def test_a_transfer_cut_mid_download_is_a_miss_that_leaves_nothing(
    s3: Any, bucket: str, tmp_path: Path, small_parts: None, declared: bool
) -> None:
    layer = _big_cached(s3, bucket, tmp_path / "a")

    def cut_fourth(params: dict[str, Any], parsed: dict[str, Any], _n: int) -> None:
        if params["Range"].startswith(f"bytes={3 * PART}-"):
            _cut(parsed, 100, declared=declared)

    _on_parts(s3, cut_fourth)
    dest = tmp_path / "b" / "layers"
    got = cache.fetch_layer(s3, bucket, layer.identity, dest)

    assert isinstance(got, cache.CacheMiss)
    assert f"download of s3://{bucket}/lambda/layer-{layer.identity}.zip failed" in got.reason
    assert "truncated: bytes 12288-16383 of" in got.reason
    if declared:
        assert "100 read, but total bytes expected is 4096" in got.reason
    assert list(dest.iterdir()) == []  # no zip, no part file, no manifest, no SBOM


def test_an_object_replaced_mid_download_is_a_miss_not_a_mix_of_both(
    s3: Any, bucket: str, tmp_path: Path, small_parts: None
) -> None:
    """Every part is pinned to the ETag the HEAD saw: a new object under the key fails the next part."""
    layer = _big_cached(s3, bucket, tmp_path / "a")
    key = layer_key(layer.identity)
    replaced: list[bool] = []
    started: list[bool] = []
    lock = threading.Lock()
    gate = threading.Event()

    def hold_the_others(params: dict[str, Any], **_: Any) -> None:
        # Parts run in parallel: the first part's request goes out, the others wait until the object
        # has been replaced behind it, so "mid-download" is an order, not a race.
        if "Range" not in params:
            return
        with lock:
            first = not started
            started.append(True)
        if not first:
            gate.wait(timeout=60)

    def replace_after_first(params: dict[str, Any], _parsed: dict[str, Any], n: int) -> None:
        if n == 0 and not replaced:
            replaced.append(True)
            s3.put_object(Bucket=bucket, Key=key, Body=layer.path.read_bytes()[::-1])
            gate.set()

    s3.meta.events.register("before-parameter-build.s3.GetObject", hold_the_others)
    _on_parts(s3, replace_after_first)
    dest = tmp_path / "b" / "layers"
    got = cache.fetch_layer(s3, bucket, layer.identity, dest)

    assert isinstance(got, cache.CacheMiss) and "PreconditionFailed" in got.reason
    assert list(dest.iterdir()) == []
    assert len(started) > 1 and replaced  # the others were held behind the replacement


def test_a_truncated_fetch_falls_back_to_building_and_says_so(
    s3: Any,
    bucket: str,
    targets: Targets,
    tmp_path: Path,
    small_parts: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The whole read-through: a cut transfer is one line and a local build of the same bytes."""
    from deploy.aws import publish

    staging = EnvConfig(name="staging", region=targets.region, paths=_checkout(tmp_path / "a"))
    built = build_layer(layer_plan(staging, installer=FakeInstaller())).artifact
    publish.publish_layer(staging, targets, built)

    def hook(service: str, client: Any) -> None:
        if service == "s3":
            _on_parts(
                client, lambda p, parsed, _n: _cut(parsed, 10, declared=False) if p["Range"][6:8] == "0-" else None
            )

    again = EnvConfig(name="staging", region=targets.region, paths=_checkout(tmp_path / "b"))
    monkeypatch.setattr(terraform, "load_targets", lambda *_a, **_k: targets)
    installer = FakeInstaller()
    plan = layer_plan(again, installer=installer)
    with calls.client_hook(hook):
        assert layer_source.read_through_cache(RunContext.create(again), plan) is False

    said = capsys.readouterr().err
    assert "failed (truncated: bytes 0-" in said and said.rstrip().endswith("building locally")
    assert not plan.zip_path.exists() and not plan.manifest_path.exists()
    result = build_layer(plan)
    assert not result.reused and len(installer.calls) == 1 and result.artifact.sha256 == built.sha256
