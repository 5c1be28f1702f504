"""The per-environment deploy lock: one writer at a time, visible waiting, typed failure, force-unlock."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from deploy import emulator
from deploy.artifact import Artifact
from deploy.aws import calls
from deploy.aws import lock as env_lock
from deploy.aws.publish import publish_layer
from deploy.config import EmulatorSettings, EnvConfig, StateSettings, Targets
from deploy.context import RunContext
from deploy.errors import DeployLockError
from deploy.run import aws_tasks, infra, layer_source
from tests.aws.conftest import FakeClock, alias_versions, client_error, zip_bytes
from tests.conftest import free_port


def held_by(s3: Any, where: env_lock.LockLocation) -> str | None:
    info = env_lock.read(s3, where)
    return None if info is None else info.lock_id


def make_lock(env: EnvConfig, where: env_lock.LockLocation, clock: FakeClock, said: list[str], **kw: Any) -> Any:
    return env_lock.EnvLock(
        s3=calls.client(env, "s3", where.region),
        where=where,
        info=env_lock.new_info(env, kw.pop("command", "inv deploy"), environ=kw.pop("environ", {})),
        clock=clock.clock,
        sleep=kw.pop("sleep", clock.sleep),
        say=said.append,
        **kw,
    )


@pytest.fixture
def server_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnvConfig]:
    settings = EmulatorSettings(host="127.0.0.1", port=free_port())
    state_dir: Path = tmp_path_factory.mktemp("emulator")
    state = emulator.up(settings, state_dir)
    try:
        yield EnvConfig(
            name="test",
            region="us-east-1",
            endpoint_url=state.url,
            state=StateSettings(bucket="lock-state", key="app/terraform.tfstate"),
        )
    finally:
        emulator.down(settings, state_dir)


def test_second_writer_waits_visibly_then_fails_naming_the_holder_over_http(server_env: EnvConfig) -> None:
    """The emulator honours If-None-Match: * on put_object, so this is real contention, not an injected 412."""
    calls.client(server_env, "s3").create_bucket(Bucket="lock-state")
    where = env_lock.location(server_env)
    assert where.key == "env:/test/app/terraform.tfstate.deploy-lock"
    clock, said = FakeClock(), []
    ci = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_ID": "42"}
    first = make_lock(server_env, where, clock, said, command="inv attach", environ=ci)
    first.acquire()
    second = make_lock(server_env, where, clock, said, timeout=60, poll=5)
    with pytest.raises(DeployLockError) as err:
        second.acquire()
    message = str(err.value)
    assert "inv attach" in message and "https://github.com/o/r/actions/runs/42" in message
    assert first.info.lock_id in message and f"--force {first.info.lock_id}" in message
    assert err.value.exit_code == 13
    # One visible line (not one per poll), and the wait really was bounded by the timeout.
    assert len([s for s in said if s.startswith("waiting up to 60 s for the lock held by")]) == 1
    assert sum(clock.sleeps) == 60
    # The loser never removed the winner's lock; once released, the next writer gets it.
    assert held_by(calls.client(server_env, "s3"), where) == first.info.lock_id
    first.release()
    second.acquire()
    assert held_by(calls.client(server_env, "s3"), where) == second.info.lock_id


def test_waiter_gets_the_lock_when_the_holder_finishes(server_env: EnvConfig) -> None:
    calls.client(server_env, "s3").create_bucket(Bucket="lock-state")
    where = env_lock.location(server_env)
    clock, said = FakeClock(), []
    holder = make_lock(server_env, where, clock, said)
    holder.acquire()

    def sleep_then_holder_finishes(seconds: float) -> None:
        clock.sleep(seconds)
        holder.release()

    waiter = make_lock(server_env, where, clock, said, sleep=sleep_then_holder_finishes)
    waiter.acquire()
    assert clock.sleeps == [env_lock.POLL_S]
    assert held_by(calls.client(server_env, "s3"), where) == waiter.info.lock_id


@pytest.fixture
def locked_env(env: EnvConfig, s3: Any) -> EnvConfig:
    s3.create_bucket(Bucket="state-bucket")
    return dataclasses.replace(env, state=StateSettings(bucket="state-bucket", key="t.tfstate"))


def test_lock_is_released_on_error_and_on_interrupt(locked_env: EnvConfig, s3: Any) -> None:
    where = env_lock.location(locked_env)
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)), env_lock.held(locked_env, "inv deploy", say=lambda _m: None):
            assert env_lock.read(s3, where) is not None
            raise exc
        assert env_lock.read(s3, where) is None


def test_force_unlock_needs_the_right_lock_id(locked_env: EnvConfig, s3: Any) -> None:
    where = env_lock.location(locked_env)
    left = env_lock.EnvLock(s3=s3, where=where, info=env_lock.new_info(locked_env, "inv deploy"))
    left.acquire()  # a killed run never releases
    with pytest.raises(
        DeployLockError, match=r"does not match the lock on 'test', held by .*inv deploy.*nothing removed"
    ) as err:
        env_lock.force_unlock(locked_env, "0" * 32)
    assert left.info.lock_id not in str(err.value)  # a wrong guess learns nothing
    assert held_by(s3, where) == left.info.lock_id
    removed = env_lock.force_unlock(locked_env, left.info.lock_id)
    assert removed is not None and removed.lock_id == left.info.lock_id
    assert env_lock.read(s3, where) is None
    with pytest.raises(DeployLockError, match="is not locked"):
        env_lock.force_unlock(locked_env, left.info.lock_id)


def test_release_leaves_a_lock_that_is_no_longer_ours(locked_env: EnvConfig, s3: Any) -> None:
    where = env_lock.location(locked_env)
    mine = env_lock.EnvLock(s3=s3, where=where, info=env_lock.new_info(locked_env, "inv attach"), say=lambda _m: None)
    mine.acquire()
    env_lock.force_unlock(locked_env, mine.info.lock_id)
    theirs = env_lock.EnvLock(s3=s3, where=where, info=env_lock.new_info(locked_env, "inv deploy"))
    theirs.acquire()
    mine.release()
    assert held_by(s3, where) == theirs.info.lock_id


def test_missing_lock_bucket_is_a_clear_error_and_nothing_is_written(env: EnvConfig, s3: Any) -> None:
    missing = dataclasses.replace(env, state=StateSettings(bucket="no-such-state", key="t.tfstate"))
    with (
        pytest.raises(DeployLockError, match="no-such-state does not exist; nothing was changed"),
        env_lock.held(missing, "inv deploy"),
    ):
        raise AssertionError("must not run")
    assert s3.list_buckets()["Buckets"] == []


def test_access_denied_is_a_clear_error(locked_env: EnvConfig, s3: Any, inject: Any) -> None:
    def deny(**_: Any) -> None:
        raise client_error("AccessDenied", "PutObject", "not allowed")

    inject("s3", "PutObject", deny)
    with (
        pytest.raises(DeployLockError, match="access denied to the deploy lock s3://state-bucket/"),
        env_lock.held(locked_env, "inv deploy"),
    ):
        raise AssertionError("must not run")
    assert s3.list_objects_v2(Bucket="state-bucket").get("KeyCount") == 0


def test_injected_precondition_failed_is_contention(locked_env: EnvConfig, s3: Any, inject: Any) -> None:
    """What real S3 answers a second conditional writer (also checked for real over HTTP above)."""
    inject("s3", "PutObject", lambda **_: (_ for _ in ()).throw(client_error("PreconditionFailed", "PutObject")))
    where = env_lock.location(locked_env)
    other = env_lock.new_info(locked_env, "inv rollback")
    s3.put_object(Bucket=where.bucket, Key=where.key, Body=json.dumps(dataclasses.asdict(other)))
    clock = FakeClock()
    with pytest.raises(DeployLockError, match="inv rollback"):
        make_lock(locked_env, where, clock, [], timeout=10).acquire()


def test_writing_tasks_refuse_while_another_run_holds_the_lock(
    env: EnvConfig, deployed: Targets, layer: Artifact, code: Artifact, lam: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(infra, "_targets", lambda _env: deployed)
    monkeypatch.setattr(layer_source, "_built_layer", lambda _env: layer)
    monkeypatch.setattr(aws_tasks, "_terraform_layer_versions", lambda _env: {})
    publish_layer(env, deployed, layer)
    lam.publish_layer_version(LayerName=deployed.layer_name, Content={"ZipFile": zip_bytes("newer")})
    where = env_lock.location(env, artifact_bucket=deployed.bucket)
    other = env_lock.EnvLock(
        s3=calls.client(env, "s3"), where=where, info=env_lock.new_info(env, "inv deploy"), say=lambda _m: None
    )
    other.acquire()
    before = alias_versions(lam, deployed)
    with calls.count_writes() as writes:
        with pytest.raises(DeployLockError, match="locked by"):
            aws_tasks.rollback(RunContext.create(env), lock_timeout=0)
        with pytest.raises(DeployLockError, match="locked by"):
            aws_tasks.prune_layers(RunContext.create(env), keep=1, yes=True, lock_timeout=0)
    assert writes.operations() == ["PutObject", "PutObject"]  # the two refused conditional writes
    assert alias_versions(lam, deployed) == before
    assert held_by(calls.client(env, "s3"), where) == other.info.lock_id
    # dry runs take no lock (one function: --to names a version of one function)
    aws_tasks.rollback(RunContext.create(env), function=deployed.functions[0].key, to="1", dry_run=True, lock_timeout=0)


def test_ci_run_url_only_when_all_parts_are_set() -> None:
    assert env_lock.ci_run_url({}) is None
    assert env_lock.ci_run_url({"GITHUB_SERVER_URL": "https://g", "GITHUB_REPOSITORY": "o/r"}) is None
    parts = {"GITHUB_SERVER_URL": "https://g", "GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_ID": "7"}
    assert env_lock.ci_run_url(parts) == "https://g/o/r/actions/runs/7"


def test_environment_without_state_locks_in_the_artifact_bucket(env: EnvConfig) -> None:
    assert env_lock.location(env, artifact_bucket="arts").bucket == "arts"
    with pytest.raises(DeployLockError, match="no state bucket"):
        env_lock.location(env)


def test_boto3_is_used_only_through_calls(server_env: EnvConfig) -> None:
    """Sanity of the fixture: the emulator really refuses a second conditional create."""
    s3 = boto3.client(
        "s3",
        endpoint_url=server_env.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="t",
        aws_secret_access_key="t",
    )
    s3.create_bucket(Bucket="lock-state")
    s3.put_object(Bucket="lock-state", Key="k", Body=b"1", IfNoneMatch="*")
    with pytest.raises(s3.exceptions.ClientError, match="PreconditionFailed"):
        s3.put_object(Bucket="lock-state", Key="k", Body=b"2", IfNoneMatch="*")


def test_a_lock_that_keeps_changing_hands_still_honours_the_timeout(
    locked_env: EnvConfig, s3: Any, inject: Any
) -> None:
    """Refused writes with no lock to read (it came and went): paced retries, then a clear error."""
    inject("s3", "PutObject", lambda **_: (_ for _ in ()).throw(client_error("PreconditionFailed", "PutObject")))
    clock = FakeClock()
    with pytest.raises(DeployLockError, match="changed hands too fast"):
        make_lock(locked_env, env_lock.location(locked_env), clock, [], timeout=1).acquire()
    assert clock.sleeps and max(clock.sleeps) <= 0.1 and sum(clock.sleeps) <= 1.0
