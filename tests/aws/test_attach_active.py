"""A published version must be Active (and its provisioned concurrency READY) before any alias moves.

moto publishes every version Active at once and has no provisioned concurrency API: the states a real
Lambda goes through (Pending, Failed, IN_PROGRESS, READY) are injected on the calls the attach makes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from deploy.artifact import Artifact
from deploy.aws import calls
from deploy.aws.attach import AttachPlan, apply_attach, plan_attach
from deploy.aws.transaction import Transaction
from deploy.config import EnvConfig, Targets
from deploy.errors import AttachError
from deploy.progress import Event, State
from deploy.steps import Step
from tests.aws.conftest import FakeClock, alias_versions, client_error, fake_response


@pytest.fixture
def layer_arn(lam: Any, deployed: Targets, layer: Artifact) -> str:
    made = lam.publish_layer_version(LayerName=deployed.layer_name, Content={"ZipFile": layer.path.read_bytes()})
    return str(made["LayerVersionArn"])


def _version_state(lam: Any, states: dict[str, list[tuple[str, str | None]]]) -> Any:
    """Answer GetFunctionConfiguration of version 2 (the one the attach publishes) with the next
    (State, StateReason) queued for that function; once its queue is empty, moto answers (Active)."""

    def handler(params: dict[str, Any], **_: Any) -> Any:
        queue = states.get(params["FunctionName"])
        if params.get("Qualifier") != "2" or not queue:
            return None
        state, reason = queue.pop(0)
        config = lam.get_function_configuration(FunctionName=params["FunctionName"], Qualifier="2")
        config.pop("ResponseMetadata", None)
        config["State"] = state
        if reason:
            config["StateReasonCode"] = "SnapStartTimeout"
            config["StateReason"] = reason
        return fake_response(config)

    return handler


def test_pending_versions_are_waited_for_until_active_before_any_alias_moves(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any, inject: Any
) -> None:
    plan = plan_attach(env, deployed, function=code, layer_version_arn=layer_arn)
    assert all(Step.ACTIVE in f.steps() for f in plan.functions)
    clock = FakeClock()
    events: list[Event] = []
    with Transaction(env, deployed) as txn:  # its snapshot is read before the injected states
        pending = {fn.name: [("Pending", None), ("Pending", None)] for fn in deployed.functions}
        inject("lambda", "GetFunctionConfiguration", _version_state(lam, pending))
        result = apply_attach(
            env, deployed, plan, function=code, max_workers=1, policy=clock.policy(), record=txn, progress=events.append
        )
    assert result.ok and all(not queue for queue in pending.values())
    # Two Pending answers per function, each followed by botocore's published_version_active delay.
    assert clock.sleeps == [5.0] * 2 * len(deployed.functions)
    order = [(e.function, e.step, e.state) for e in events]
    first_alias = next(i for i, (_, step, _) in enumerate(order) if step is Step.ALIAS)
    for fn in deployed.functions:
        assert order.index((fn.name, Step.ACTIVE, State.DONE)) < first_alias
        assert order.index((fn.name, Step.PUBLISH, State.DONE)) < order.index((fn.name, Step.ACTIVE, State.STARTED))
    assert alias_versions(lam, deployed) == {fn.name: "2" for fn in deployed.functions}


def test_a_version_that_ends_failed_stops_the_deploy_with_its_reason_and_nothing_moves(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any, inject: Any
) -> None:
    victim = deployed.functions[2].name
    plan = plan_attach(env, deployed, function=code, layer_version_arn=layer_arn)
    txn = Transaction(env, deployed)
    with calls.count_writes() as writes, pytest.raises(AttachError) as caught, txn:
        failing = {victim: [("Pending", None), ("Failed", "init raised ImportError during the snapshot")]}
        inject("lambda", "GetFunctionConfiguration", _version_state(lam, failing))
        apply_attach(env, deployed, plan, function=code, max_workers=1, policy=FakeClock().policy(), record=txn)
    assert list(caught.value.failures) == [victim]
    assert f"{victim}: version 2 ended Failed (SnapStartTimeout): init raised ImportError during the snapshot" in str(
        caught.value
    )
    assert "UpdateAlias" not in writes.operations()
    assert alias_versions(lam, deployed) == {fn.name: "1" for fn in deployed.functions}
    # Every function was staged on $LATEST; the transaction puts $LATEST back to what version 1 serves.
    assert txn.report is not None and [f.status for f in txn.report.functions] == ["rolled_back"] * 4
    for fn in deployed.functions:
        latest = lam.get_function_configuration(FunctionName=fn.name)
        assert latest["CodeSha256"] == lam.get_function_configuration(FunctionName=fn.name, Qualifier="1")["CodeSha256"]


def test_a_version_pending_past_the_bound_moves_nothing(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any, inject: Any
) -> None:
    one = dataclasses.replace(deployed, functions=deployed.functions[:1])
    name = one.functions[0].name
    plan = plan_attach(env, one, function=code, layer_version_arn=layer_arn)
    txn = Transaction(env, one)
    with pytest.raises(AttachError, match=f"{name}: version 2 still Pending after 30 s"), txn:
        inject("lambda", "GetFunctionConfiguration", _version_state(lam, {name: [("Pending", None)] * 100}))
        apply_attach(env, one, plan, function=code, timeout=30, policy=FakeClock().policy(), record=txn)
    assert alias_versions(lam, one) == {name: "1"}


class _Provisioned:
    """A stand-in for Lambda's provisioned concurrency API (moto has none): records every call in
    ``log`` with the alias moves, and reports IN_PROGRESS ``warming`` times before ``final``."""

    def __init__(self, lam: Any, *, warming: int = 1, final: str = "READY") -> None:
        self.lam = lam
        self.log: list[tuple[str, str, str]] = []
        self.polls: dict[str, int] = {}
        self.warming = warming
        self.final = final

    def install(self, inject: Any) -> None:
        inject("lambda", "PutProvisionedConcurrencyConfig", self.put)
        inject("lambda", "GetProvisionedConcurrencyConfig", self.get)
        inject("lambda", "DeleteProvisionedConcurrencyConfig", self.delete)
        inject("lambda", "UpdateAlias", self.alias)

    def put(self, params: dict[str, Any], **_: Any) -> Any:
        self.log.append(("put", params["FunctionName"], params["Qualifier"]))
        assert params["ProvisionedConcurrentExecutions"] == 3
        return fake_response({"RequestedProvisionedConcurrentExecutions": 3, "Status": "IN_PROGRESS"})

    def get(self, params: dict[str, Any], **_: Any) -> Any:
        seen = self.polls[params["FunctionName"]] = self.polls.get(params["FunctionName"], 0) + 1
        status = "IN_PROGRESS" if seen <= self.warming else self.final
        self.log.append(("get", params["FunctionName"], status))
        return fake_response({"Status": status, "StatusReason": "not enough capacity" if status == "FAILED" else ""})

    def delete(self, params: dict[str, Any], **_: Any) -> Any:
        self.log.append(("delete", params["FunctionName"], params["Qualifier"]))
        return fake_response({})

    def alias(self, params: dict[str, Any], **_: Any) -> None:
        self.log.append(("alias", params["FunctionName"], params["FunctionVersion"]))


def test_provisioned_concurrency_is_ready_on_the_new_version_before_the_switch_then_leaves_the_old(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any, inject: Any
) -> None:
    warm = dataclasses.replace(env, provisioned_concurrency=3)
    plan = plan_attach(warm, deployed, function=code, layer_version_arn=layer_arn)
    assert all(f.steps()[-2:] == (Step.PROVISION, Step.ALIAS) for f in plan.functions)
    fake = _Provisioned(lam, warming=2)
    fake.install(inject)
    clock = FakeClock()
    events: list[Event] = []
    result = apply_attach(
        warm, deployed, plan, function=code, max_workers=1, policy=clock.policy(), progress=events.append
    )
    assert result.ok
    released = [e.line() for e in events if e.step is Step.PROVISION and e.function is None]
    assert released == [f"{fn.name}: released provisioned concurrency of version 1" for fn in deployed.functions]
    for fn in deployed.functions:
        mine = [entry for entry in fake.log if entry[1] == fn.name]
        assert mine == [
            ("put", fn.name, "2"),
            ("get", fn.name, "IN_PROGRESS"),
            ("get", fn.name, "IN_PROGRESS"),
            ("get", fn.name, "READY"),
            ("alias", fn.name, "2"),
            ("delete", fn.name, "1"),
        ]
    # Every function is warm before the first alias moves; the old versions are released after the last.
    kinds = [kind for kind, _, _ in fake.log]
    assert kinds.index("alias") > max(i for i, k in enumerate(kinds) if k == "get")
    assert kinds.index("delete") > max(i for i, k in enumerate(kinds) if k == "alias")
    assert clock.sleeps == [1.0] * 2 * len(deployed.functions)


def _one_warm_function(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str
) -> tuple[EnvConfig, Targets, str, AttachPlan]:
    """The settings with provisioned concurrency 3, the first function only, its name, and its attach plan."""
    warm = dataclasses.replace(env, provisioned_concurrency=3)
    one = dataclasses.replace(deployed, functions=deployed.functions[:1])
    return warm, one, one.functions[0].name, plan_attach(warm, one, function=code, layer_version_arn=layer_arn)


def test_provisioned_concurrency_that_fails_moves_nothing_and_is_released(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any, inject: Any
) -> None:
    warm, one, name, plan = _one_warm_function(env, deployed, code, layer_arn)
    fake = _Provisioned(lam, warming=0, final="FAILED")
    fake.install(inject)
    with pytest.raises(AttachError, match=f"{name}: provisioned concurrency on version 2 FAILED: not enough capacity"):
        apply_attach(warm, one, plan, function=code, policy=FakeClock().policy())
    # No alias moved; the failed version's config is removed again (it would bill for nothing).
    assert fake.log == [("put", name, "2"), ("get", name, "FAILED"), ("delete", name, "2")]
    assert alias_versions(lam, one) == {name: "1"}


def test_an_old_version_that_cannot_be_released_is_reported_and_the_deploy_stands(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any, inject: Any
) -> None:
    warm, one, name, plan = _one_warm_function(env, deployed, code, layer_arn)
    fake = _Provisioned(lam, warming=0)
    inject("lambda", "PutProvisionedConcurrencyConfig", fake.put)
    inject("lambda", "GetProvisionedConcurrencyConfig", fake.get)

    def refuse(**_: Any) -> None:
        raise client_error("AccessDeniedException", "DeleteProvisionedConcurrencyConfig", "not allowed")

    inject("lambda", "DeleteProvisionedConcurrencyConfig", refuse)
    events: list[Event] = []
    result = apply_attach(warm, one, plan, function=code, policy=FakeClock().policy(), progress=events.append)
    # Traffic already moved: a config left behind costs money, not correctness, and is said.
    assert result.ok and alias_versions(lam, one) == {name: "2"}
    lines = [e.line() for e in events if e.step is Step.PROVISION and e.function is None]
    assert lines == [
        f"{name}: could not release provisioned concurrency of version 1 "
        "(AccessDeniedException: not allowed); remove it by hand"
    ]


def test_a_failed_verify_after_the_switch_removes_the_new_versions_provisioned_concurrency(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any, inject: Any
) -> None:
    """deploy's transaction also covers verify: when it fails after the aliases moved, traffic goes back
    to the old version and the new one's warm environments, which would bill for nothing, are removed."""
    warm, one, name, plan = _one_warm_function(env, deployed, code, layer_arn)
    fake = _Provisioned(lam, warming=0)
    fake.install(inject)
    txn = Transaction(warm, one, policy=FakeClock().policy())
    with pytest.raises(RuntimeError, match="verify failed"), txn:
        apply_attach(warm, one, plan, function=code, policy=FakeClock().policy(), record=txn)
        assert alias_versions(lam, one) == {name: "2"}
        raise RuntimeError("verify failed")
    assert alias_versions(lam, one) == {name: "1"}
    assert fake.log == [
        ("put", name, "2"),
        ("get", name, "READY"),
        ("alias", name, "2"),
        ("delete", name, "1"),  # the attach released the old version once every alias had moved
        ("alias", name, "1"),  # the restore
        ("delete", name, "2"),
    ]
