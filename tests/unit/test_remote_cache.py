"""The remote cache's settings (on by default, a shared bucket per environment, typos caught) and how
the job summary says where the layer came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.build import BuildResult
from deploy.config import RemoteCacheSettings
from deploy.errors import ConfigError
from deploy.report import markdown
from tests.aws.conftest import make_artifact
from tests.unit.test_settings import load, project, with_change

PUBLISHER = "arn:aws:lambda:eu-west-1:111122223333:layer:app-staging-deps"


def test_the_cache_is_on_by_default_with_no_shared_bucket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = load(project(tmp_path, with_change("max_workers", 8)), "production", {}, monkeypatch)
    assert env.remote_cache == RemoteCacheSettings(enabled=True, bucket=None, region=None)


def test_production_reads_a_shared_bucket_set_by_a_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = project(tmp_path, with_change("max_workers", 8))
    env = load(
        proj,
        "production",
        {
            "INVOKE_DEPLOY_ENVIRONMENTS_PRODUCTION_REMOTE_CACHE_BUCKET": "team-layer-cache",
            "INVOKE_DEPLOY_ENVIRONMENTS_PRODUCTION_REMOTE_CACHE_REGION": "eu-west-1",
            "INVOKE_DEPLOY_ENVIRONMENTS_PRODUCTION_REMOTE_CACHE_PUBLISHER": PUBLISHER,
        },
        monkeypatch,
    )
    assert env.remote_cache == RemoteCacheSettings(
        enabled=True, bucket="team-layer-cache", region="eu-west-1", publisher=PUBLISHER
    )
    staging = load(proj, "staging", {}, monkeypatch)
    assert staging.remote_cache.bucket is None


def test_a_typo_in_the_cache_settings_names_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = project(tmp_path, with_change("environments.production.remote_cache", {"buckett": "x"}))
    with pytest.raises(ConfigError, match=r"deploy\.environments\.production\.remote_cache\.buckett.*`bucket`"):
        load(proj, "production", {}, monkeypatch)


def test_a_shared_bucket_without_a_publisher_is_a_settings_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bytes nobody published must not be trusted: no silent fallback to the bucket alone."""
    proj = project(tmp_path, with_change("environments.production.remote_cache", {"bucket": "team-layer-cache"}))
    with pytest.raises(ConfigError, match=r"production\.remote_cache\.publisher`: missing key.*team-layer-cache"):
        load(proj, "production", {}, monkeypatch)
    # Turned off, the bucket is never read, so it needs no publisher.
    (tmp_path / "off").mkdir()
    off = project(
        tmp_path / "off",
        with_change("environments.production.remote_cache", {"bucket": "team-layer-cache", "enabled": False}),
    )
    assert load(off, "production", {}, monkeypatch).remote_cache.publisher is None


@pytest.mark.parametrize("arn", [PUBLISHER + ":7", "app-staging-deps", "arn:aws:s3:::team-layer-cache"])
def test_a_publisher_that_is_not_a_versionless_layer_arn_is_refused(
    arn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project(
        tmp_path, with_change("environments.production.remote_cache", {"bucket": "team-layer-cache", "publisher": arn})
    )
    with pytest.raises(ConfigError, match=r"remote_cache\.publisher"):
        load(proj, "production", {}, monkeypatch)


def test_the_cache_can_be_turned_off_for_everyone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = project(tmp_path, with_change("remote_cache", {"enabled": False}))
    assert load(proj, "staging", {}, monkeypatch).remote_cache.enabled is False


def test_the_job_summary_says_whether_the_layer_was_built_fetched_or_already_there(tmp_path: Path) -> None:
    layer = make_artifact(tmp_path, "layer", "x = 1\n")
    sources = {
        BuildResult(artifact=layer, reused=False).source: "built",
        BuildResult(artifact=layer, reused=True, fetched=True).source: "fetched from the remote cache",
        BuildResult(artifact=layer, reused=True).source: "already built here",
    }
    assert list(sources) == list(sources.values())
    summary = markdown(
        {"env": "staging", "ok": True, "layer": {"identity": layer.identity, "source": "fetched from the remote cache"}}
    )
    assert "(fetched from the remote cache)" in summary
