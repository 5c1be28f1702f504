"""rollback, prune-layers and status against moto."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deploy.artifact import Artifact
from deploy.aws import calls
from deploy.aws.attach import attach
from deploy.aws.prune import plan_prune, prune
from deploy.aws.publish import publish_layer
from deploy.aws.rollback import describe_rolled_back, rollback, rolled_back
from deploy.config import EnvConfig, Targets
from deploy.errors import AwsError, ConfigError
from deploy.steps import Status
from tests.aws.conftest import alias_versions, create_function, make_artifact


@pytest.fixture
def twice(env: EnvConfig, deployed: Targets, code: Artifact, layer: Artifact, tmp_path: Path) -> Targets:
    """Two deploys after Terraform's: versions 1 (placeholder), 2 (layer v1), 3 (layer v2); alias at 3."""
    arn1 = publish_layer(env, deployed, layer).layer_version_arn
    assert arn1
    attach(env, deployed, function=code, layer_version_arn=arn1)
    arn2 = publish_layer(env, deployed, make_artifact(tmp_path, "layer", "deps v2")).layer_version_arn
    assert arn2
    attach(env, deployed, function=code, layer_version_arn=arn2)
    return deployed


def test_rollback_to_previous_then_to_a_given_version(env: EnvConfig, twice: Targets, lam: Any) -> None:
    outcomes = rollback(env, twice)
    assert {(o.old_version, o.new_version, o.status) for o in outcomes} == {("3", "2", Status.ROLLED_BACK)}
    assert set(alias_versions(lam, twice).values()) == {"2"}
    for fn in twice.functions:
        rollback(env, twice, function=fn.key, to="3")
    assert set(alias_versions(lam, twice).values()) == {"3"}
    with calls.count_writes() as writes:
        dry = rollback(env, twice, function=twice.functions[0].key, to="1", dry_run=True)
    assert writes.count == 0 and all(o.status is Status.WOULD_ROLL_BACK for o in dry)


def test_rollback_clears_the_weights_a_killed_rollout_left(env: EnvConfig, twice: Targets, lam: Any) -> None:
    """A canary killed with SIGKILL leaves routing weights: after a rollback the alias serves one version."""
    for fn in twice.functions:
        lam.update_alias(FunctionName=fn.name, Name=twice.alias, RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}})
    rollback(env, twice)
    for fn in twice.functions:
        alias = lam.get_alias(FunctionName=fn.name, Name=twice.alias)
        assert alias["FunctionVersion"] == "2"
        assert not alias.get("RoutingConfig", {}).get("AdditionalVersionWeights")


def test_rollback_to_a_missing_version_is_refused_before_any_write(env: EnvConfig, twice: Targets, lam: Any) -> None:
    lam.delete_function(FunctionName=twice.functions[3].name, Qualifier="2")
    with (
        calls.count_writes() as writes,
        pytest.raises(AwsError, match=f"{twice.functions[3].name}: version 2 does not exist"),
    ):
        rollback(env, twice, function=twice.functions[3].key, to="2")
    assert writes.count == 0 and set(alias_versions(lam, twice).values()) == {"3"}
    with pytest.raises(AwsError, match="version 9 does not exist"):
        rollback(env, twice, function=twice.functions[0].key, to="9")


def test_rollback_with_no_previous_version_is_refused(env: EnvConfig, deployed: Targets) -> None:
    with calls.count_writes() as writes, pytest.raises(AwsError, match="no previous version"):
        rollback(env, deployed)
    assert writes.count == 0


def test_prune_never_deletes_a_referenced_version(
    env: EnvConfig, twice: Targets, tmp_path: Path, lam: Any, role: str
) -> None:
    # Layer versions: 1 placeholder (function versions 1), 2 (function versions 2), 3 (alias), 4 and 5 unused.
    for content in ("deps v3", "deps v4"):
        publish_layer(env, twice, make_artifact(tmp_path, "layer", content))
    old = lam.get_layer_version(LayerName=twice.layer_name, VersionNumber=1)["LayerVersionArn"]
    for fn in twice.functions:  # drop the references from versions 1 so only a foreign function keeps layer v1
        lam.delete_function(FunctionName=fn.name, Qualifier="1")
    create_function(lam, role, "someone-elses-function", [old])
    plan = plan_prune(env, twice, keep=1)
    assert plan.delete == (4,)
    assert plan.kept == (1, 2, 3, 5)
    assert "someone-elses-function:1" in plan.protected[1] and "someone-elses-function:live" in plan.protected[1]
    assert f"{twice.functions[0].name}:live" in plan.protected[3]
    assert f"{twice.functions[0].name}:2" in plan.protected[2]

    with calls.count_writes() as writes:
        unconfirmed = prune(env, twice, plan, yes=False)
    assert writes.count == 0 and unconfirmed.deleted == () and unconfirmed.skipped == (4,)
    done = prune(env, twice, plan, yes=True)
    assert done.deleted == (4,)
    left = [v["Version"] for v in lam.list_layer_versions(LayerName=twice.layer_name)["LayerVersions"]]
    assert sorted(left) == [1, 2, 3, 5]


def test_prune_spares_a_version_referenced_after_the_plan(
    env: EnvConfig, twice: Targets, lam: Any, role: str, tmp_path: Path
) -> None:
    publish_layer(env, twice, make_artifact(tmp_path, "layer", "deps v3"))
    plan = plan_prune(env, twice, keep=1)
    assert 1 not in plan.delete  # still used by the functions' version 1
    assert plan.delete == ()
    with pytest.raises(ConfigError, match="keep must be at least 1"):
        plan_prune(env, twice, keep=0)


def test_rollback_returns_to_what_served_not_to_an_unserved_version(
    env: EnvConfig, deployed: Targets, code: Artifact, layer: Artifact, tmp_path: Path, lam: Any, s3: Any
) -> None:
    """A failed deploy leaves a published version that never served; rollback must skip it."""
    arn = publish_layer(env, deployed, layer).layer_version_arn
    assert arn
    attach(env, deployed, function=code, layer_version_arn=arn)  # live: 1 → 2
    first = deployed.functions[0].name
    broken = make_artifact(tmp_path, "function", "broken release")
    s3.put_object(Bucket=deployed.bucket, Key=broken.s3_key, Body=broken.path.read_bytes())
    lam.update_function_code(FunctionName=first, S3Bucket=deployed.bucket, S3Key=broken.s3_key)
    unserved = lam.publish_version(FunctionName=first, Description="published by a deploy whose verify failed")
    assert unserved["Version"] == "3"
    newer = make_artifact(tmp_path, "function", "next release")
    attach(env, deployed, function=newer, layer_version_arn=arn)  # live: 2 → 4 for the first function
    assert alias_versions(lam, deployed)[first] == "4"
    assert lam.get_alias(FunctionName=first, Name="live")["Description"] == "previous=2"
    outcomes = {o.name: o for o in rollback(env, deployed)}
    assert (outcomes[first].old_version, outcomes[first].new_version) == ("4", "2")
    assert alias_versions(lam, deployed)[first] == "2"


# --------------------------------------------------------------------------- rollback per function


def test_one_function_rolls_back_alone_and_then_each_to_its_own_previous(
    env: EnvConfig, twice: Targets, lam: Any
) -> None:
    """Once the functions' versions differ, no single number fits them all: each goes to its own."""
    first, *others = twice.functions
    [outcome] = rollback(env, twice, function=first.key)
    assert (outcome.name, outcome.old_version, outcome.new_version) == (first.name, "3", "2")
    assert alias_versions(lam, twice) == {first.name: "2", **{fn.name: "3" for fn in others}}

    outcomes = {o.name: (o.old_version, o.new_version) for o in rollback(env, twice)}
    assert outcomes == {first.name: ("2", "1"), **{fn.name: ("3", "2") for fn in others}}
    assert alias_versions(lam, twice) == {first.name: "1", **{fn.name: "2" for fn in others}}


def test_to_without_function_is_refused_before_any_write(env: EnvConfig, twice: Targets, lam: Any) -> None:
    with calls.count_writes() as writes, pytest.raises(ConfigError, match="--to 2 needs --function") as info:
        rollback(env, twice, to="2")
    assert info.value.exit_code == 2
    assert writes.count == 0 and set(alias_versions(lam, twice).values()) == {"3"}


def test_an_unknown_function_is_refused_with_a_guess_and_exit_2(env: EnvConfig, twice: Targets, lam: Any) -> None:
    with calls.count_writes() as writes, pytest.raises(ConfigError) as info:
        rollback(env, twice, function="db_synk")
    assert "unknown function 'db_synk'; did you mean 'db_sync'?" in info.value.message
    assert info.value.exit_code == 2
    with pytest.raises(ConfigError, match="unknown function 'nosuch' \\(functions: api, cleanup"):
        rollback(env, twice, function="nosuch")
    assert writes.count == 0 and set(alias_versions(lam, twice).values()) == {"3"}


def test_status_names_the_deploy_a_rollback_undid(
    env: EnvConfig, deployed: Targets, layer: Artifact, tmp_path: Path, lam: Any
) -> None:
    """The deploy records the commit it moved each alias to; the rollback names it; nothing is
    reported as rolled back once a deploy moves the alias again."""
    from dataclasses import replace

    arn = publish_layer(env, deployed, layer).layer_version_arn
    assert arn
    release = make_artifact(tmp_path, "function", "release 1")
    release = replace(release, inputs={"version_info": {"commit": "1a2b3c4d5e6f7a8b9c0d", "dirty": False}})
    attach(env, deployed, function=release, layer_version_arn=arn)  # live: 1 -> 2
    first = deployed.functions[0]
    assert lam.get_alias(FunctionName=first.name, Name="live")["Description"] == "previous=1 commit=1a2b3c4d5e6f"
    assert rolled_back(env, deployed) == ()

    rollback(env, deployed, function=first.key)
    assert lam.get_alias(FunctionName=first.name, Name="live")["Description"] == (
        "rolled back from 2 (deploy at commit 1a2b3c4d5e6f)"
    )
    found = rolled_back(env, deployed)
    assert [(r.name, r.from_version, r.commit) for r in found] == [(first.name, "2", "1a2b3c4d5e6f")]
    assert describe_rolled_back(found) == f"rolled back from the deploy at commit 1a2b3c4d5e6f ({first.name} was at 2)"

    attach(env, deployed, function=make_artifact(tmp_path, "function", "release 2"), layer_version_arn=arn)
    assert rolled_back(env, deployed) == () and describe_rolled_back(()) is None
