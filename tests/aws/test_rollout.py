"""Gradual rollout on moto: the alias's routing config moved step by step, alarms watched, and every
way out (an alarm, a failed verify, SIGTERM) restoring every alias with its weights cleared.

Time is a FakeClock: the bake's sleeps advance it, and what "happens during the hold" (an alarm going
off, a SIGTERM) is done from inside the injected sleep, so nothing waits for real.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from typing import Any

import boto3
import pytest

from deploy.artifact import Artifact
from deploy.aws import lock as env_lock
from deploy.aws import rollout
from deploy.aws.attach import apply_attach, plan_attach
from deploy.aws.publish import publish_layer
from deploy.aws.transaction import Transaction
from deploy.config import EnvConfig, RolloutSettings, StateSettings, Targets
from deploy.errors import RolloutAborted, Terminated, VerifyError
from deploy.preflight import Mark, check_alarms
from deploy.progress import Event, State
from deploy.steps import Status, Step
from tests.aws.conftest import REGION, FakeClock

CANARY = RolloutSettings(strategy="canary", percent=10, interval=120, alarms=("errors-high",))
LINEAR = RolloutSettings(strategy="linear", percent=40, interval=60, alarms=("errors-high",))


@pytest.fixture
def cloudwatch(aws: None) -> Any:
    cw = boto3.client("cloudwatch", region_name=REGION)
    cw.put_metric_alarm(
        AlarmName="errors-high",
        MetricName="Errors",
        Namespace="AWS/Lambda",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    return cw


@pytest.fixture
def layer_arn(env: EnvConfig, deployed: Targets, layer: Artifact) -> str:
    arn = publish_layer(env, deployed, layer).layer_version_arn
    assert arn
    return arn


def aliases(lam: Any, targets: Targets) -> dict[str, tuple[str, dict[str, float]]]:
    """Per function: (the alias's version, its routing weights)."""
    out = {}
    for fn in targets.functions:
        alias = lam.get_alias(FunctionName=fn.name, Name="live")
        out[fn.name] = (alias["FunctionVersion"], rollout.weights(alias))
    return out


def start(
    env: EnvConfig, targets: Targets, code: Artifact, layer_arn: str, txn: Transaction, settings: RolloutSettings
) -> list[rollout.Move]:
    """The attach of a gradual deploy: every function staged, its alias at the first weight."""
    plan = plan_attach(env, targets, function=code, layer_version_arn=layer_arn)
    result = apply_attach(env, targets, plan, function=code, record=txn, gradual=settings)
    return [
        rollout.Move(
            name=o.name, old=str(o.old_version), new=str(o.new_version), description=f"previous={o.old_version}"
        )
        for o in result.outcomes
        if o.new_version is not None
    ]


def test_canary_shifts_the_percent_then_ends_wholly_on_the_new_version(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any, cloudwatch: Any
) -> None:
    clock = FakeClock()
    events: list[Event] = []
    seen_mid: list[dict[str, tuple[str, dict[str, float]]]] = []

    def sleep(seconds: float) -> None:
        seen_mid.append(aliases(lam, deployed))
        clock.sleep(seconds)

    with Transaction(env, deployed, progress=lambda _e: None) as txn:
        moves = start(env, deployed, code, layer_arn, txn, CANARY)
        # the canary: the old version keeps the alias, the new one gets 10 %
        assert aliases(lam, deployed) == {fn.name: ("1", {"2": 0.1}) for fn in deployed.functions}
        rollout.bake(
            env, deployed, moves, CANARY, record=txn, emit=events.append, clock=clock.clock, sleep=sleep, poll=30
        )
    assert aliases(lam, deployed) == {fn.name: ("2", {}) for fn in deployed.functions}  # no routing config left
    assert sum(clock.sleeps) == CANARY.interval and clock.sleeps == [30, 30, 30, 30]
    assert all(m == {fn.name: ("1", {"2": 0.1}) for fn in deployed.functions} for m in seen_mid)
    assert txn.report is not None and txn.report.committed
    assert {f.status for f in txn.report.functions} == {Status.UPDATED}
    assert {lam.get_alias(FunctionName=fn.name, Name="live")["Description"] for fn in deployed.functions} == {
        "previous=1"
    }
    holds = [e.detail for e in events if e.step is Step.SHIFT and e.state is State.WAITING]
    assert holds[0].endswith("120 s left; alarms OK (errors-high)") and holds[-1].startswith(
        f"{deployed.functions[0].name} 10% on v2"
    )
    assert "30 s left" in holds[-1]
    shifted = {e.function for e in events if e.step is Step.SHIFT and e.state is State.DONE}
    assert shifted == {fn.name for fn in deployed.functions}


def test_linear_steps_the_percent_every_interval(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any, cloudwatch: Any
) -> None:
    clock = FakeClock()
    first = deployed.functions[0].name
    seen: list[tuple[str, dict[str, float]]] = []

    def sleep(seconds: float) -> None:
        seen.append(aliases(lam, deployed)[first])
        clock.sleep(seconds)

    with Transaction(env, deployed, progress=lambda _e: None) as txn:
        moves = start(env, deployed, code, layer_arn, txn, LINEAR)
        rollout.bake(env, deployed, moves, LINEAR, record=txn, clock=clock.clock, sleep=sleep, poll=60)
    assert seen == [("1", {"2": 0.4}), ("1", {"2": 0.8})]
    assert aliases(lam, deployed)[first] == ("2", {})


def test_an_alarm_in_alarm_mid_interval_moves_every_alias_back(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any, cloudwatch: Any
) -> None:
    clock = FakeClock()
    before = aliases(lam, deployed)
    latest_before = {
        fn.name: lam.get_function_configuration(FunctionName=fn.name)["CodeSha256"] for fn in deployed.functions
    }

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if len(clock.sleeps) == 2:  # the second poll of the hold finds it firing
            cloudwatch.set_alarm_state(AlarmName="errors-high", StateValue="ALARM", StateReason="errors")

    txn = Transaction(env, deployed, progress=lambda _e: None)
    with pytest.raises(RolloutAborted, match=r"stopped at 10%: alarm errors-high in ALARM") as caught, txn:
        moves = start(env, deployed, code, layer_arn, txn, CANARY)
        rollout.bake(env, deployed, moves, CANARY, record=txn, clock=clock.clock, sleep=sleep, poll=30)
    assert caught.value.exit_code == 18 and isinstance(caught.value, VerifyError)
    assert "rolled back" in str(caught.value)
    assert aliases(lam, deployed) == before == {fn.name: ("1", {}) for fn in deployed.functions}
    assert {
        fn.name: lam.get_function_configuration(FunctionName=fn.name)["CodeSha256"] for fn in deployed.functions
    } == latest_before
    assert txn.report is not None and {f.status for f in txn.report.functions} == {Status.ROLLED_BACK}


def test_a_failed_verify_mid_canary_moves_every_alias_back(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any
) -> None:
    txn = Transaction(env, deployed, progress=lambda _e: None)
    with pytest.raises(VerifyError, match="api: import failed"), txn:
        start(env, deployed, code, layer_arn, txn, CANARY)
        assert aliases(lam, deployed) == {fn.name: ("1", {"2": 0.1}) for fn in deployed.functions}
        raise VerifyError("api: import failed")  # what the deployed verify of version 2 raises
    assert aliases(lam, deployed) == {fn.name: ("1", {}) for fn in deployed.functions}
    assert txn.report is not None and {f.status for f in txn.report.functions} == {Status.ROLLED_BACK}


def test_sigterm_mid_bake_moves_every_alias_back_and_releases_the_lock(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any, s3: Any, cloudwatch: Any
) -> None:
    s3.create_bucket(Bucket="state-bucket")
    locked = dataclasses.replace(env, state=StateSettings(bucket="state-bucket", key="t.tfstate"))
    where = env_lock.location(locked)
    clock = FakeClock()
    held_during: list[bool] = []

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        held_during.append(env_lock.read(s3, where) is not None)
        os.kill(os.getpid(), signal.SIGTERM)  # CI cancels the job mid-hold

    previous = signal.getsignal(signal.SIGTERM)
    txn = Transaction(locked, deployed, progress=lambda _e: None)
    with (
        pytest.raises(Terminated, match="SIGTERM") as caught,
        env_lock.held(locked, "inv deploy", timeout=5, say=lambda _m: None),
        txn,
    ):
        moves = start(locked, deployed, code, layer_arn, txn, CANARY)
        rollout.bake(locked, deployed, moves, CANARY, record=txn, clock=clock.clock, sleep=sleep, poll=30)
    assert caught.value.exit_code == 143
    assert held_during == [True]
    assert aliases(lam, deployed) == {fn.name: ("1", {}) for fn in deployed.functions}
    assert env_lock.read(s3, where) is None  # released
    assert signal.getsignal(signal.SIGTERM) is previous


def test_the_restore_leaves_weights_another_writer_set(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any
) -> None:
    """Compare-and-set: a weight on a version this run did not publish is someone else's canary."""
    other = deployed.functions[0].name
    txn = Transaction(env, deployed, progress=lambda _e: None)
    with pytest.raises(VerifyError), txn:
        start(env, deployed, code, layer_arn, txn, CANARY)
        lam.update_alias(
            FunctionName=other, Name="live", RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}}, FunctionVersion="2"
        )
        raise VerifyError("boom")
    assert aliases(lam, deployed)[other] == ("2", {"1": 0.5})
    assert txn.report is not None
    statuses = {f.name: f.status for f in txn.report.functions}
    assert statuses.pop(other) is Status.LEFT and set(statuses.values()) == {Status.ROLLED_BACK}


def test_an_all_at_once_move_clears_weights_a_killed_rollout_left(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any
) -> None:
    first = deployed.functions[0].name
    lam.publish_version(FunctionName=first)  # a version a killed canary was giving 10 % to
    lam.update_alias(FunctionName=first, Name="live", RoutingConfig={"AdditionalVersionWeights": {"1": 0.9}})
    with Transaction(env, deployed, progress=lambda _e: None) as txn:
        plan = plan_attach(env, deployed, function=code, layer_version_arn=layer_arn)
        apply_attach(env, deployed, plan, function=code, record=txn)
    assert aliases(lam, deployed)[first][1] == {}


def test_preflight_names_the_alarms_that_do_not_exist(env: EnvConfig, cloudwatch: Any) -> None:
    watched = dataclasses.replace(
        env, rollout=dataclasses.replace(CANARY, alarms=("errors-high", "latency-p99", "throttles"))
    )
    calls: list[Any] = []
    cloudwatch.meta.events.register("before-call.cloudwatch.DescribeAlarms", lambda **kw: calls.append(kw))
    check = check_alarms(watched, cloudwatch=cloudwatch)
    assert check.mark is Mark.FAILED and len(calls) == 1
    assert check.detail == f"no such CloudWatch alarm in {REGION}: latency-p99, throttles"
    assert "rollout.alarms" in (check.fix or "")
    assert check_alarms(dataclasses.replace(env, rollout=CANARY), cloudwatch=cloudwatch).mark is Mark.PASSED
    assert check_alarms(env, cloudwatch=cloudwatch).mark is Mark.SKIPPED  # all at once watches nothing


def test_the_deploy_preflight_runs_the_alarm_check_and_the_emulator_leaves_it_to_the_run(
    env: EnvConfig, cloudwatch: Any
) -> None:
    from deploy import preflight
    from deploy.config import EmulatorSettings

    others = {name: (lambda n=name: preflight.Check(name=n, mark=Mark.PASSED, detail="ok")) for name in preflight.ALL}
    del others[preflight.ALARMS]
    watched = dataclasses.replace(env, rollout=dataclasses.replace(CANARY, alarms=("errors-high", "latency-p99")))
    result = preflight.run(watched, "deploy", environ={}, overrides=others)
    assert [c.detail for c in result.failures] == [f"no such CloudWatch alarm in {REGION}: latency-p99"]
    local = dataclasses.replace(watched, emulator=EmulatorSettings(host="127.0.0.1", port=5000))
    [alarms] = [
        c for c in preflight.run(local, "deploy", environ={}, overrides=others).checks if c.name == "rollout alarms"
    ]
    assert alarms.mark is Mark.SKIPPED and "checked by the run" in alarms.detail


def test_the_old_versions_provisioned_concurrency_is_released_only_once_the_rollout_ends(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any, cloudwatch: Any, inject: Any
) -> None:
    """During a canary the old version still serves most traffic: its warm environments stay until 100 %.
    (moto has no provisioned concurrency API: Lambda's answers are injected, as in test_attach_active.)"""
    from tests.aws.test_attach_active import _Provisioned

    fake = _Provisioned(lam, warming=0)
    fake.install(inject)
    clock = FakeClock()
    warm = dataclasses.replace(env, provisioned_concurrency=3)
    with Transaction(warm, deployed, progress=lambda _e: None) as txn:
        moves = start(warm, deployed, code, layer_arn, txn, CANARY)
        assert not [entry for entry in fake.log if entry[0] == "delete"]  # v1 still serves 90 %
        rollout.bake(warm, deployed, moves, CANARY, record=txn, clock=clock.clock, sleep=clock.sleep, poll=60)
    for fn in deployed.functions:
        mine = [(kind, what) for kind, name, what in fake.log if name == fn.name and kind != "get"]
        assert mine == [("put", "2"), ("alias", "1"), ("alias", "2"), ("delete", "1")]
