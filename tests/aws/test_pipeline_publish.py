"""The deploy pipeline's publish step: sharing settings are validated before any write and applied after."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from deploy import plan as plan_mod
from deploy.aws import calls
from deploy.config import EnvConfig, ShareSettings, Targets
from deploy.context import RunContext
from deploy.errors import ConfigError
from deploy.run import aws_tasks
from tests.aws.conftest import make_artifact


def test_public_share_refused_before_any_write(env: EnvConfig, targets: Targets, bucket: str, tmp_path: Path) -> None:
    layer = make_artifact(tmp_path, "layer", "deps-v1", identity="a" * 64)
    public = dataclasses.replace(env, share=ShareSettings(accounts=("*",)))
    with calls.count_writes() as writes, pytest.raises(ConfigError, match="public"):
        aws_tasks._publish(RunContext.create(public), targets, layer, dry_run=False)
    assert writes.count == 0


def test_layer_shared_with_listed_account_once(
    env: EnvConfig, targets: Targets, bucket: str, lam: Any, tmp_path: Path
) -> None:
    layer = make_artifact(tmp_path, "layer", "deps-v1", identity="b" * 64)
    shared = dataclasses.replace(env, share=ShareSettings(accounts=("210987654321",)))
    [first] = aws_tasks._publish(RunContext.create(shared), targets, layer, dry_run=False)
    assert first.published
    assert first.layer_version_arn is not None
    policy = json.loads(
        lam.get_layer_version_policy(LayerName=targets.layer_name, VersionNumber=first.version)["Policy"]
    )
    principals = {json.dumps(s["Principal"]) for s in policy["Statement"]}
    assert any("210987654321" in p for p in principals)
    # A rerun converges: same version, no new permission statement, no write at all.
    with calls.count_writes() as writes:
        [again] = aws_tasks._publish(RunContext.create(shared), targets, layer, dry_run=False)
    assert again.layer_version_arn == first.layer_version_arn
    assert writes.count == 0


def test_new_share_settings_make_an_otherwise_unchanged_deploy_pending(
    env: EnvConfig, targets: Targets, bucket: str, tmp_path: Path
) -> None:
    layer = make_artifact(tmp_path, "layer", "deps-v1", identity="c" * 64)
    aws_tasks._publish(RunContext.create(env), targets, layer, dry_run=False)
    assert not plan_mod.region_step(env, targets, layer, targets.region).changed
    shared = dataclasses.replace(env, share=ShareSettings(accounts=("210987654321",)))
    with calls.count_writes() as writes:
        assert plan_mod.region_step(shared, targets, layer, targets.region).shares_to_add
    assert writes.count == 0
    aws_tasks._publish(RunContext.create(shared), targets, layer, dry_run=False)
    assert not plan_mod.region_step(shared, targets, layer, targets.region).changed
