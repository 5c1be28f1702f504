"""Gradual rollout: the ``live`` alias's weights moved step by step, watched by CloudWatch alarms.

A canary sends ``percent`` of each function's traffic to its new version (the alias keeps the old
version as its ``FunctionVersion`` and gives the new one an ``AdditionalVersionWeights`` share), the
deployed verify runs against the new version, the named alarms are polled while the step holds, and
the alias then points wholly to the new version with no routing config left. Linear does the same in
steps of ``percent``. Any alarm in ALARM, a failed verify or an interrupt raises in the deploy's
transaction (``deploy.aws.transaction``), whose restore puts every alias back on its previous version
with its weights cleared, compare-and-set, all or nothing: the same path as a failed attach.

Why the alias weights directly and not CodeDeploy (what SAM's DeploymentPreference drives):
- CodeDeploy needs an application, a deployment group and a service role per function in Terraform,
  and it owns the alias while it runs: our transaction could no longer restore it compare-and-set,
  and a deploy of many functions would be many CodeDeploy deployments that roll back one by one,
  not all or nothing.
- Lambda's own alias routing is all CodeDeploy does to a Lambda function anyway (two versions, one
  weight), and it is served by the emulator (moto keeps an alias's routing config and CloudWatch
  alarms and their states), so the path that runs in production is the one the tests run end to end;
  moto does not run CodeDeploy deployments at all.
- Terraform ignores the alias's ``function_version`` and ``routing_config``
  (``infra/terraform/modules/lambda``), so a plan shows no drift during or after a rollout.

The schedule is pure (:func:`schedule`); the hold reads time and sleeps through injected functions,
so tests never sleep.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import ClientError

from deploy.aws import calls
from deploy.aws.readiness import release
from deploy.aws.retry import RetryPolicy, call, error_message
from deploy.config import EnvConfig, RolloutSettings, Targets
from deploy.errors import AttachError, AwsError, RolloutAborted
from deploy.progress import Event, Progress, State, ignore
from deploy.steps import Step

#: How often the alarms are read while a step holds (each read is one DescribeAlarms call).
POLL_S = 10.0


class Recorder(Protocol):
    """What a rollout tells the transaction before each write (``deploy.aws.transaction``)."""

    def check(self) -> None: ...
    def shift(self, name: str, version: str) -> None: ...
    def alias(self, name: str, version: str) -> None: ...


@dataclass(frozen=True, kw_only=True)
class Stage:
    """One step: the new version's share of traffic (percent), then how long it holds before the next."""

    weight: int
    hold: float


def schedule(strategy: str, percent: int, interval: float) -> tuple[Stage, ...]:
    """The steps of a rollout; the last one is always 100 % with no hold (the commit point).

    all-at-once: ``[100]``; canary: ``[percent for interval, 100]``; linear: ``percent``, ``2*percent``…
    each for ``interval``, then 100 (a last step under 100 is kept: 30 % steps go 30, 60, 90, 100)."""
    if strategy == "all-at-once":
        return (Stage(weight=100, hold=0.0),)
    if not 1 <= percent <= 99:
        raise ValueError(f"percent must be 1-99, got {percent}")
    if strategy == "canary":
        return (Stage(weight=percent, hold=float(interval)), Stage(weight=100, hold=0.0))
    if strategy == "linear":
        steps = [Stage(weight=w, hold=float(interval)) for w in range(percent, 100, percent)]
        return (*steps, Stage(weight=100, hold=0.0))
    raise ValueError(f"unknown rollout strategy {strategy!r}")


def stages(settings: RolloutSettings) -> tuple[Stage, ...]:
    return schedule(settings.strategy, settings.percent, settings.interval)


@dataclass(frozen=True, kw_only=True)
class Move:
    """One function's alias on its way from ``old`` to ``new``; ``description`` is what the alias says
    once it serves ``new`` (the ``previous=`` marker `inv rollback` reads)."""

    name: str
    old: str
    new: str
    description: str | None = None


def weights(alias: Mapping[str, Any] | None) -> dict[str, float]:
    """The alias's routing weights (version → share); empty when it serves one version."""
    return dict(((alias or {}).get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {})


#: What every alias write that ends a rollout (or does not start one) sends: one version, no weights.
NO_WEIGHTS: dict[str, Any] = {"AdditionalVersionWeights": {}}


def set_weight(
    lam: Any,
    alias: str,
    move: Move,
    weight: int,
    *,
    policy: RetryPolicy,
    record: Recorder,
    revision: str | None = None,
) -> None:
    """Point the alias: at 100, wholly to the new version; below, the old version keeps ``100-weight``.

    Recorded in the transaction before the write, so an interrupt during the call is restored."""
    record.check()
    if weight >= 100:
        record.alias(move.name, move.new)
        args: dict[str, Any] = {"FunctionVersion": move.new, "RoutingConfig": NO_WEIGHTS}
        if move.description is not None:
            args["Description"] = move.description
    else:
        record.shift(move.name, move.new)
        args = {
            "FunctionVersion": move.old,
            "RoutingConfig": {"AdditionalVersionWeights": {move.new: round(weight / 100, 2)}},
        }
    if revision:  # compare-and-set (moto omits RevisionId; real Lambda always has one)
        args["RevisionId"] = revision
    try:
        call(lam.update_alias, what=move.name, policy=policy, FunctionName=move.name, Name=alias, **args)
    except ClientError as exc:
        raise AttachError(f"{move.name}: setting {alias} to {weight}% on {move.new}: {error_message(exc)}") from None


def firing(cloudwatch: Any, alarms: Sequence[str]) -> tuple[list[str], list[str]]:
    """(alarms in ALARM, alarms that do not exist): one DescribeAlarms call for every name."""
    if not alarms:
        return [], []
    try:
        found = cloudwatch.describe_alarms(AlarmNames=list(alarms), AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    except ClientError as exc:
        raise AwsError(f"reading the rollout alarms {', '.join(alarms)}: {error_message(exc)}") from None
    states = {a["AlarmName"]: a.get("StateValue") for a in [*found["MetricAlarms"], *found["CompositeAlarms"]]}
    return [n for n in alarms if states.get(n) == "ALARM"], [n for n in alarms if n not in states]


def hold(
    seconds: float,
    *,
    weight: int,
    moves: Sequence[Move],
    cloudwatch: Any,
    alarms: Sequence[str],
    emit: Progress,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    poll: float = POLL_S,
) -> None:
    """Hold a step for ``seconds``, reading the alarms first and then every ``poll`` seconds until it ends.

    An alarm in ALARM (or gone: an alarm that cannot be read watches nothing) raises
    :class:`~deploy.errors.RolloutAborted`; the transaction around the deploy restores every alias."""
    end = clock() + seconds
    shares = ", ".join(f"{m.name} {weight}% on v{m.new}" for m in moves)
    while True:
        alarm, missing = firing(cloudwatch, alarms)
        if alarm or missing:
            what = f"alarm {', '.join(alarm)} in ALARM" if alarm else f"alarm {', '.join(missing)} no longer exists"
            raise RolloutAborted(f"rollout stopped at {weight}%: {what}")
        left = end - clock()
        if left <= 0:
            return
        watched = f"; alarms OK ({', '.join(alarms)})" if alarms else ""
        emit(Event(function=None, step=Step.SHIFT, state=State.WAITING, detail=f"{shares}: {left:.0f} s left{watched}"))
        sleep(min(poll, left))


def first_weight(settings: RolloutSettings) -> int:
    """The weight the alias moves to in the attach (the verify then runs at it)."""
    return stages(settings)[0].weight


def bake(
    env: EnvConfig,
    targets: Targets,
    moves: Sequence[Move],
    settings: RolloutSettings,
    *,
    record: Recorder,
    emit: Progress = ignore,
    policy: RetryPolicy | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    poll: float = POLL_S,
    lam: Any = None,
    cloudwatch: Any = None,
) -> None:
    """After the verify passed at the first weight: hold each step watching the alarms, move every
    alias to the next weight, and end on the new version wholly (no routing config left).

    Runs in the main thread, one write at a time: an interrupt lands between writes or in a sleep,
    and the transaction restores what was recorded."""
    if not moves or not settings.gradual:
        return
    policy = policy or RetryPolicy()
    lam = lam or calls.client(env, "lambda", targets.region)
    cloudwatch = cloudwatch or calls.client(env, "cloudwatch", targets.region)
    plan = stages(settings)
    for at, following in itertools.pairwise(plan):
        hold(
            at.hold,
            weight=at.weight,
            moves=moves,
            cloudwatch=cloudwatch,
            alarms=settings.alarms,
            emit=emit,
            clock=clock,
            sleep=sleep,
            poll=poll,
        )
        for move in moves:
            detail = f"{following.weight}% on v{move.new}" + (
                f" ({100 - following.weight}% on v{move.old})" if following.weight < 100 else ""
            )
            emit(Event(function=move.name, step=Step.SHIFT, state=State.STARTED, detail=f"shifting to {detail}"))
            set_weight(lam, targets.alias, move, following.weight, policy=policy, record=record)
            emit(Event(function=move.name, step=Step.SHIFT, state=State.DONE, detail=detail))
    if env.provisioned_concurrency > 0:
        # The old versions serve nothing now: their warm environments only bill (deploy.aws.readiness).
        for move in moves:
            problem = release(lam, move.name, move.old, policy=policy)
            done = f"could not release provisioned concurrency of version {move.old} ({problem}); remove it by hand"
            if not problem:
                done = f"released provisioned concurrency of version {move.old}"
            emit(Event(function=None, step=Step.PROVISION, state=State.DONE, detail=f"{move.name}: {done}"))
