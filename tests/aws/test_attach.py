from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from deploy.artifact import Artifact
from deploy.aws import calls
from deploy.aws.attach import apply_attach, attach, desired_layers, plan_attach
from deploy.aws.publish import publish_layer
from deploy.aws.transaction import Transaction
from deploy.config import EnvConfig, Targets
from deploy.errors import AttachError
from deploy.progress import Event, State
from deploy.steps import Step
from tests.aws.conftest import (
    FakeClock,
    alias_versions,
    client_error,
    create_function,
    fake_response,
    published,
    zip_bytes,
)

FOREIGN_A = "arn:aws:lambda:us-east-1:999999999999:layer:otel:3"


def other_layer(lam: Any, name: str) -> str:
    """A layer that is not ours (moto only attaches layers that exist)."""
    return str(lam.publish_layer_version(LayerName=name, Content={"ZipFile": zip_bytes(name)})["LayerVersionArn"])


@pytest.fixture
def layer_arn(env: EnvConfig, deployed: Targets, layer: Artifact) -> str:
    arn = publish_layer(env, deployed, layer).layer_version_arn
    assert arn
    return arn


def layers_of(lam: Any, name: str, qualifier: str = "live") -> list[str]:
    return [x["Arn"] for x in lam.get_function_configuration(FunctionName=name, Qualifier=qualifier).get("Layers", [])]


def test_attach_switches_every_alias_then_a_rerun_writes_nothing(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any
) -> None:
    progress: list[Event] = []
    result = attach(env, deployed, function=code, layer_version_arn=layer_arn, progress=progress.append)
    assert result.ok and {o.status for o in result.outcomes} == {"updated"}
    assert alias_versions(lam, deployed) == {fn.name: "2" for fn in deployed.functions}
    for fn in deployed.functions:
        served = lam.get_function_configuration(FunctionName=fn.name, Qualifier="live")
        assert served["CodeSha256"] == code.code_sha256 and layers_of(lam, fn.name) == [layer_arn]
    assert any("moving alias live 1 → 2" in e.line() for e in progress)
    assert result.to_json()["functions"][0] == {
        "name": deployed.functions[0].name,
        "status": "updated",
        "old_version": "1",
        "new_version": "2",
        "error": None,
    }

    with calls.count_writes() as writes:
        again = attach(env, deployed, function=code, layer_version_arn=layer_arn)
    assert writes.count == 0
    assert {o.status for o in again.outcomes} == {"unchanged"}
    assert all(published(lam, fn.name) == ["1", "2"] for fn in deployed.functions)


def test_function_zip_is_uploaded_once_with_its_checksum(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, s3: Any
) -> None:
    with calls.count_writes() as writes:
        attach(env, deployed, function=code, layer_version_arn=layer_arn, max_workers=1)
    ops = writes.operations()
    assert ops.count("PutObject") == 1 and ops[0] == "PutObject"
    assert ops.count("UpdateFunctionCode") == 4 and ops.count("PublishVersion") == 4 and ops.count("UpdateAlias") == 4
    head = s3.head_object(Bucket=deployed.bucket, Key=code.s3_key, ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == code.code_sha256


def test_only_the_layer_changes_when_the_code_matches(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, tmp_path: Any
) -> None:
    attach(env, deployed, function=code, layer_version_arn=layer_arn)
    from tests.aws.conftest import make_artifact

    newer = publish_layer(env, deployed, make_artifact(tmp_path, "layer", "deps v2")).layer_version_arn
    assert newer
    plan = plan_attach(env, deployed, function=code, layer_version_arn=newer)
    assert all(not f.update_code and f.update_layers for f in plan.functions) and not plan.upload_code
    with calls.count_writes() as writes:
        apply_attach(env, deployed, plan)
    assert set(writes.operations()) == {"UpdateFunctionConfiguration", "PublishVersion", "UpdateAlias"}


def test_dry_run_writes_nothing(env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any) -> None:
    with calls.count_writes() as writes:
        result = attach(env, deployed, function=code, layer_version_arn=layer_arn, dry_run=True)
    assert writes.count == 0 and result.dry_run and {o.status for o in result.outcomes} == {"updated"}
    assert alias_versions(lam, deployed) == {fn.name: "1" for fn in deployed.functions}


def test_foreign_layers_keep_their_order(
    env: EnvConfig,
    targets: Targets,
    lam: Any,
    role: str,
    bucket: str,
    old_layer_arn: str,
    code: Artifact,
    layer: Artifact,
) -> None:
    otel, insights = other_layer(lam, "otel"), other_layer(lam, "insights")
    create_function(lam, role, targets.functions[0].name, [otel, old_layer_arn, insights])
    create_function(lam, role, targets.functions[1].name, [insights, otel])
    two = Targets(**{**targets.__dict__, "functions": targets.functions[:2]})
    arn = publish_layer(env, two, layer).layer_version_arn
    assert arn
    attach(env, two, function=code, layer_version_arn=arn)
    assert layers_of(lam, two.functions[0].name) == [otel, arn, insights]
    assert layers_of(lam, two.functions[1].name) == [insights, otel, arn]


def test_desired_layers_rules() -> None:
    ours = "arn:aws:lambda:us-east-1:123456789012:layer:deps"
    assert desired_layers([f"{ours}:1", FOREIGN_A, f"{ours}:2"], f"{ours}:5", function="f") == (f"{ours}:5", FOREIGN_A)
    assert desired_layers([], f"{ours}:5", function="f") == (f"{ours}:5",)
    with pytest.raises(AttachError, match=r"fn-x: attaching .* would make 6 layers"):
        desired_layers(
            [f"arn:aws:lambda:us-east-1:1:layer:x{i}:1".replace(":1:", ":999999999999:", 1) for i in range(5)],
            f"{ours}:5",
            function="fn-x",
        )


def test_sixth_layer_is_refused_and_nothing_changes(
    env: EnvConfig, targets: Targets, lam: Any, role: str, bucket: str, code: Artifact, layer: Artifact
) -> None:
    five = [other_layer(lam, f"extra{i}") for i in range(5)]
    create_function(lam, role, targets.functions[0].name, five)
    one = Targets(**{**targets.__dict__, "functions": targets.functions[:1]})
    arn = publish_layer(env, one, layer).layer_version_arn
    assert arn
    with (
        calls.count_writes() as writes,
        pytest.raises(AttachError, match=f"{targets.functions[0].name}: attaching .* 6 layers"),
    ):
        attach(env, one, function=code, layer_version_arn=arn)
    assert writes.count == 0


def test_missing_function_is_named_and_nothing_changes(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any
) -> None:
    lam.delete_function(FunctionName=deployed.functions[2].name)
    with (
        calls.count_writes() as writes,
        pytest.raises(AttachError, match=f"not found in us-east-1: {deployed.functions[2].name}"),
    ):
        attach(env, deployed, function=code, layer_version_arn=layer_arn)
    assert writes.count == 0


def test_missing_alias_suggests_infra_apply(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any
) -> None:
    lam.delete_alias(FunctionName=deployed.functions[1].name, Name="live")
    with pytest.raises(AttachError, match="alias 'live' does not exist") as caught:
        attach(env, deployed, function=code, layer_version_arn=layer_arn)
    assert "inv infra.apply" in str(caught.value) and deployed.functions[1].name in str(caught.value)


def test_layer_of_another_name_is_refused(env: EnvConfig, deployed: Targets, code: Artifact) -> None:
    with pytest.raises(AttachError, match="not a version of this environment's layer"):
        plan_attach(
            env, deployed, function=code, layer_version_arn="arn:aws:lambda:us-east-1:123456789012:layer:other:1"
        )


def _status_injector(lam: Any, status: str, *, reason: str | None = None, times: int | None = None) -> Any:
    """Answer GetFunctionConfiguration on $LATEST with LastUpdateStatus=status (moto is always Successful)."""
    left = [times]

    def handler(params: dict[str, Any], **_: Any) -> Any:
        if "Qualifier" in params or left[0] == 0:
            return None
        if left[0] is not None:
            left[0] -= 1
        config = lam.get_function_configuration(FunctionName=params["FunctionName"])
        config.pop("ResponseMetadata", None)
        config["LastUpdateStatus"] = status
        if reason:
            config["LastUpdateStatusReasonCode"] = reason
            config["LastUpdateStatusReason"] = "injected failure"
        return fake_response(config)

    return handler


def test_update_in_progress_longer_than_the_bound(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any, inject: Any
) -> None:
    one = Targets(**{**deployed.__dict__, "functions": deployed.functions[:1]})
    plan = plan_attach(env, one, function=code, layer_version_arn=layer_arn)
    inject("lambda", "GetFunctionConfiguration", _status_injector(lam, "InProgress"))
    clock = FakeClock()
    txn = Transaction(env, one, policy=FakeClock().policy(total=30))
    with (
        pytest.raises(AttachError, match=f"{one.functions[0].name}: update still in progress after 30 s") as caught,
        txn,
    ):
        apply_attach(env, one, plan, function=code, timeout=30, policy=clock.policy(), record=txn)
    assert 25 <= sum(clock.sleeps) <= 30
    assert list(caught.value.failures) == [one.functions[0].name]
    # A function stuck InProgress cannot take the restore's update either: reported, not hidden.
    assert txn.report is not None and [f.status for f in txn.report.functions] == ["failed"]
    assert "inv rollback" in str(caught.value)
    assert alias_versions(lam, deployed) == {fn.name: "1" for fn in deployed.functions}


def test_update_that_ends_failed_reports_its_reason_code(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any, inject: Any
) -> None:
    plan = plan_attach(env, deployed, function=code, layer_version_arn=layer_arn)
    inject("lambda", "GetFunctionConfiguration", _status_injector(lam, "Failed", reason="InvalidZipFileException"))
    with pytest.raises(AttachError, match="update failed \\(InvalidZipFileException\\)"):
        apply_attach(env, deployed, plan, function=code, policy=FakeClock().policy())
    assert alias_versions(lam, deployed) == {fn.name: "1" for fn in deployed.functions}


def test_in_progress_then_successful_waits(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any, inject: Any
) -> None:
    plan = plan_attach(env, deployed, function=code, layer_version_arn=layer_arn)
    clock = FakeClock()
    with Transaction(env, deployed) as txn:  # its snapshot is read before the injected statuses
        inject("lambda", "GetFunctionConfiguration", _status_injector(lam, "InProgress", times=3))
        result = apply_attach(env, deployed, plan, function=code, max_workers=1, policy=clock.policy(), record=txn)
    assert result.ok and clock.sleeps == [1.0, 1.0, 1.0]


def test_throttling_is_retried_with_backoff(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any, inject: Any
) -> None:
    plan = plan_attach(env, deployed, function=code, layer_version_arn=layer_arn)
    left = [3]

    def throttle(**_: Any) -> None:
        if left[0]:
            left[0] -= 1
            raise client_error("TooManyRequestsException", "UpdateFunctionConfiguration")

    inject("lambda", "UpdateFunctionConfiguration", throttle)
    clock = FakeClock()
    result = apply_attach(env, deployed, plan, function=code, max_workers=1, policy=clock.policy(base=0.5, cap=1.5))
    assert result.ok and clock.sleeps == [0.5, 1.0, 1.5]  # capped exponential, random() pinned to 1.0
    assert alias_versions(lam, deployed) == {fn.name: "2" for fn in deployed.functions}


def test_conflict_beyond_the_bound_names_the_function(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any, inject: Any
) -> None:
    victim = deployed.functions[0].name
    plan = plan_attach(env, deployed, function=code, layer_version_arn=layer_arn)

    def conflict(params: dict[str, Any], **_: Any) -> None:
        if params["FunctionName"] == victim:
            raise client_error("ResourceConflictException", "UpdateFunctionCode", "An update is in progress")

    inject("lambda", "UpdateFunctionCode", conflict)
    with pytest.raises(AttachError, match=f"{victim}: update still in progress after \\d+ s"):
        apply_attach(env, deployed, plan, function=code, timeout=60, policy=FakeClock().policy())
    assert alias_versions(lam, deployed) == {fn.name: "1" for fn in deployed.functions}


def test_revision_mismatch_replans_the_function(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any, inject: Any
) -> None:
    victim = deployed.functions[1].name
    plan = plan_attach(env, deployed, function=code, layer_version_arn=layer_arn)
    # A concurrent writer already put the new code on $LATEST: the re-plan must see it and skip the code update.
    lam.update_function_code(FunctionName=victim, ZipFile=code.path.read_bytes())
    seen: list[str] = []

    def mismatch(params: dict[str, Any], **_: Any) -> None:
        seen.append(params["FunctionName"])
        if params["FunctionName"] == victim and seen.count(victim) == 1:
            raise client_error("PreconditionFailedException", "UpdateFunctionCode", "RevisionId mismatch")

    inject("lambda", "UpdateFunctionCode", mismatch)
    events: list[Event] = []
    result = apply_attach(env, deployed, plan, function=code, policy=FakeClock().policy(), progress=events.append)
    assert result.ok and seen.count(victim) == 1
    retried = [e for e in events if e.state is State.RETRYING]
    assert [(e.function, e.step) for e in retried] == [(victim, Step.CODE)]
    assert retried[0].detail.startswith("RevisionId changed")
    assert alias_versions(lam, deployed) == {fn.name: "2" for fn in deployed.functions}


def test_failure_switching_the_third_alias_switches_the_first_two_back(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any, inject: Any
) -> None:
    third = deployed.functions[2].name

    def refuse(params: dict[str, Any], **_: Any) -> None:
        if params["FunctionName"] == third and params["FunctionVersion"] != "1":
            raise client_error("ServiceException", "UpdateAlias", "boom")

    inject("lambda", "UpdateAlias", refuse)
    plan = plan_attach(env, deployed, function=code, layer_version_arn=layer_arn)
    txn = Transaction(env, deployed)
    with pytest.raises(AttachError, match=f"{third}: moving alias live to 2") as caught, txn:
        apply_attach(env, deployed, plan, function=code, max_workers=1, policy=FakeClock().policy(), record=txn)
    assert list(caught.value.failures) == [third]
    names = [fn.name for fn in deployed.functions]
    assert txn.report is not None
    # Every function was staged ($LATEST changed) and some aliases moved: all of it is put back.
    assert {f.name: f.status for f in txn.report.functions} == {n: "rolled_back" for n in names}
    assert alias_versions(lam, deployed) == {n: "1" for n in names}
    assert all(
        lam.get_function_configuration(FunctionName=n)["CodeSha256"]
        == lam.get_function_configuration(FunctionName=n, Qualifier="1")["CodeSha256"]
        for n in names
    )


def test_failure_staging_one_function_moves_no_alias(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any, inject: Any
) -> None:
    third = deployed.functions[2].name

    broken = [True]

    def refuse(params: dict[str, Any], **_: Any) -> None:
        if params["FunctionName"] == third and broken[0]:
            raise client_error("InvalidParameterValueException", "UpdateFunctionConfiguration", "bad layer")

    inject("lambda", "UpdateFunctionConfiguration", refuse)
    plan = plan_attach(env, deployed, function=code, layer_version_arn=layer_arn)
    txn = Transaction(env, deployed)
    with calls.count_writes() as writes, pytest.raises(AttachError, match="bad layer") as caught, txn:
        apply_attach(env, deployed, plan, function=code, policy=FakeClock().policy(), record=txn)
    assert "UpdateAlias" not in writes.operations()
    assert list(caught.value.failures) == [third]
    assert txn.report is not None and not txn.report.committed
    # The third function's code changed before its layer update failed: both go back with the rest.
    assert [f.status for f in txn.report.functions] == ["rolled_back"] * 4
    assert alias_versions(lam, deployed) == {fn.name: "1" for fn in deployed.functions}
    # The rerun converges.
    broken[0] = False
    rerun = attach(env, deployed, function=code, layer_version_arn=layer_arn, policy=FakeClock().policy())
    assert rerun.ok and set(alias_versions(lam, deployed).values()) != {"1"}


def test_stale_alias_with_a_current_latest_is_published_and_switched(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any
) -> None:
    name = deployed.functions[0].name
    lam.update_function_code(FunctionName=name, ZipFile=code.path.read_bytes())
    lam.update_function_configuration(FunctionName=name, Layers=[layer_arn])
    plan = plan_attach(env, deployed, function=code, layer_version_arn=layer_arn)
    first = plan.functions[0]
    assert not first.update_code and not first.update_layers and first.publish_version
    with calls.count_writes() as writes:
        apply_attach(env, deployed, plan, function=code)
    assert writes.operations().count("UpdateFunctionCode") == 3
    assert layers_of(lam, name) == [layer_arn]


def test_configuration_changed_by_terraform_reaches_live(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any
) -> None:
    """Terraform updates $LATEST's variables; only a new version makes `live` serve them."""
    attach(env, deployed, function=code, layer_version_arn=layer_arn)
    changed = deployed.functions[0].name
    lam.update_function_configuration(FunctionName=changed, Environment={"Variables": {"LOG_LEVEL": "debug"}})
    result = attach(env, deployed, function=code, layer_version_arn=layer_arn)
    status = {o.name: o.status for o in result.outcomes}
    assert status.pop(changed) == "updated"
    assert set(status.values()) == {"unchanged"}
    served = lam.get_function_configuration(FunctionName=changed, Qualifier="live")
    assert served["Environment"]["Variables"] == {"LOG_LEVEL": "debug"}


@pytest.mark.parametrize("deadline", [3600.0, 40.0])
def test_one_deadline_bounds_every_step_of_the_attach(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any, inject: Any, deadline: float
) -> None:
    """Each wait stays under the per-call bound (25 s of 30), but the steps add up past 40 s:
    with a long deadline the attach succeeds slowly, with 40 s the deadline stops it."""
    one = Targets(**{**deployed.__dict__, "functions": deployed.functions[:1]})
    plan = plan_attach(env, one, function=code, layer_version_arn=layer_arn)
    polls = [0]

    def slow(params: dict[str, Any], **_: Any) -> Any:
        if "Qualifier" in params:
            return None
        polls[0] += 1
        if polls[0] % 26 == 0:
            return None  # the real (Successful) configuration every 26th poll: each wait takes 25 s
        config = lam.get_function_configuration(FunctionName=params["FunctionName"])
        config.pop("ResponseMetadata", None)
        config["LastUpdateStatus"] = "InProgress"
        return fake_response(config)

    txn = Transaction(env, one).__enter__()  # its snapshot reads $LATEST before the slow answers start
    inject("lambda", "GetFunctionConfiguration", slow)
    clock = FakeClock()
    if deadline > 40:
        assert apply_attach(
            env, one, plan, function=code, timeout=30, deadline=deadline, policy=clock.policy(), record=txn
        ).ok
        txn.__exit__(None, None, None)
        assert sum(clock.sleeps) >= 50
        return
    with pytest.raises(AttachError, match=r"update still in progress after \d+ s \(the deploy's overall deadline\)"):
        apply_attach(env, one, plan, function=code, timeout=30, deadline=deadline, policy=clock.policy())
    assert sum(clock.sleeps) <= deadline
    assert alias_versions(lam, one) == {fn.name: "1" for fn in one.functions}


def test_attachs_own_deadline_never_extends_the_deploys() -> None:
    """The deploy sets one deadline for publish and attach; attach's 900 s may shorten it, never lengthen it."""
    clock = FakeClock()
    deploy_policy = clock.policy().with_deadline(100)
    assert deploy_policy.with_deadline(900).deadline == clock.now + 100
    assert clock.policy().with_deadline(900).deadline == clock.now + 900


def test_published_version_names_the_commit_the_zip_does_not_hold(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any
) -> None:
    # The function zip is keyed by its content; the commit it came from travels on the version.
    commit = "0123456789abcdef0123456789abcdef01234567"
    built = dataclasses.replace(code, inputs={"version_info": {"commit": commit, "dirty": False}})
    attach(env, deployed, function=built, layer_version_arn=layer_arn)
    for fn in deployed.functions:
        version = lam.get_function_configuration(FunctionName=fn.name, Qualifier="live")
        assert version["Description"] == f"commit {commit}"
    dirty = dataclasses.replace(code, inputs={"version_info": {"commit": commit, "dirty": True}})
    assert plan_attach(env, deployed, function=dirty, layer_version_arn=layer_arn).description == (
        f"commit {commit} (dirty)"
    )


def _alias_returns(stream: list[object]) -> Any:
    """A client hook: ("UpdateAlias returned", function) into ``stream`` when Lambda answered a move."""

    def hook(service: str, client: Any) -> None:
        if service != "lambda":
            return

        def keep(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
            context["moved"] = params["FunctionName"]

        def after(context: dict[str, Any], **_: Any) -> None:
            stream.append(("UpdateAlias returned", context["moved"]))

        client.meta.events.register("before-parameter-build.lambda.UpdateAlias", keep)
        client.meta.events.register("after-call.lambda.UpdateAlias", after)

    return hook


def test_alias_done_comes_only_after_update_alias_returned(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, inject: Any
) -> None:
    """The ✓ for "alias moved" used to come from parsing the "moving alias" line, sent before the call.
    Faults: the first function's move is throttled once (two attempts), the third's is refused."""
    first, third = deployed.functions[0].name, deployed.functions[2].name
    throttled = [False]

    def faults(params: dict[str, Any], **_: Any) -> None:
        if params["FunctionName"] == first and not throttled[0]:
            throttled[0] = True
            raise client_error("TooManyRequestsException", "UpdateAlias")
        if params["FunctionName"] == third and params["FunctionVersion"] != "1":
            raise client_error("ServiceException", "UpdateAlias", "boom")

    inject("lambda", "UpdateAlias", faults)
    stream: list[object] = []
    plan = plan_attach(env, deployed, function=code, layer_version_arn=layer_arn)
    with calls.client_hook(_alias_returns(stream)), pytest.raises(AttachError, match="boom"):
        apply_attach(
            env, deployed, plan, function=code, max_workers=1, policy=FakeClock().policy(), progress=stream.append
        )

    def at(item: object) -> int:
        assert item in stream, item
        return stream.index(item)

    assert throttled[0]
    for fn in deployed.functions:
        started = Event(function=fn.name, step=Step.ALIAS, state=State.STARTED, detail="moving alias live 1 → 2")
        done = Event(function=fn.name, step=Step.ALIAS, state=State.DONE)
        if fn.name == third:
            assert done not in stream and ("UpdateAlias returned", third) not in stream
            [failed] = [e for e in stream if isinstance(e, Event) and e.state is State.FAILED]
            assert (failed.function, failed.step) == (third, Step.ALIAS) and at(started) < stream.index(failed)
            continue
        assert at(started) < at(("UpdateAlias returned", fn.name)) < at(done)
        # Every staging step is done before the alias starts to move.
        assert at(Event(function=fn.name, step=Step.PUBLISH, state=State.DONE)) < at(started)
