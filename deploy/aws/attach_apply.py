"""Applying an attach plan: stage every function (``$LATEST`` updated, waited for, frozen into a
version), then move every ``live`` alias, recording each write in the caller's transaction first.

Traffic reaches the functions only through the alias, so the alias is the commit point; a
failure or interrupt is restored by :class:`deploy.aws.transaction.Transaction` (the one restore
path), compare-and-set. Each step is announced as a typed :class:`deploy.progress.Event`: ``STARTED``
before its write, ``DONE`` once Lambda has answered.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from deploy import signals
from deploy.artifact import Artifact
from deploy.aws import calls, deployed, rollout
from deploy.aws.attach_plan import AttachPlan, plan_attach, plan_function, read_state
from deploy.aws.publish import short_key, upload
from deploy.aws.readiness import provision, release, wait_active
from deploy.aws.retry import PRECONDITION_CODES, RetryPolicy, call, error_code, error_message, wait_updated
from deploy.aws.transaction import Transaction
from deploy.config import EnvConfig, FunctionTarget, RolloutSettings, Targets
from deploy.errors import AttachError, DeployError
from deploy.progress import Event, Progress, State, ignore
from deploy.steps import FunctionSteps, Outcome, Status, Step

T = TypeVar("T")


class Recorder(Protocol):
    """What apply_attach tells its transaction before each write (see deploy/aws/transaction.py)."""

    def check(self) -> None: ...
    def halt(self) -> None: ...
    def code(self, name: str, code_sha256: str) -> None: ...
    def layers(self, name: str, layers: tuple[str, ...]) -> None: ...
    def version(self, name: str, version: str) -> None: ...
    def alias(self, name: str, version: str) -> None: ...
    def shift(self, name: str, version: str) -> None: ...


#: All retries and waits of one attach together (every function, every step) end this many
#: seconds after it starts; each single call or wait keeps its own shorter bound (``timeout``).
DEADLINE_S = 900.0


def _revision(rev: str | None) -> dict[str, Any]:
    # moto omits RevisionId; real Lambda always returns one and we always pass it back.
    return {"RevisionId": rev} if rev else {}


_layer_arns = deployed.layer_arns


@dataclass(frozen=True, kw_only=True)
class AttachResult:
    outcomes: tuple[Outcome, ...]
    ok: bool
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "functions": [
                # the attach report has always called the detail "error"
                {
                    "name": o.name,
                    "status": o.status,
                    "old_version": o.old_version,
                    "new_version": o.new_version,
                    "error": o.detail,
                }
                for o in self.outcomes
            ],
        }


class _Stager:
    """Stages one function: $LATEST updated, waited for, frozen into a version. The alias is not touched."""

    def __init__(self, lam: Any, plan: AttachPlan, policy: RetryPolicy, emit: Progress, record: Recorder) -> None:
        self.lam = lam
        self.plan = plan
        self.policy = policy
        self.emit = emit
        self.record = record
        #: the step each function is at (its worker's only), so a failure names the step it happened in
        self.at: dict[str, Step] = {}

    def __call__(self, fp: FunctionSteps) -> tuple[FunctionSteps, str | None]:
        """(the plan actually applied, new version) — version None when a re-read found nothing to do."""
        for attempt in range(self.policy.replans + 1):
            try:
                return fp, self._once(fp)
            except ClientError as exc:
                if error_code(exc) not in PRECONDITION_CODES:
                    raise AttachError(f"{fp.name}: {error_message(exc)}") from None
                if attempt == self.policy.replans:
                    raise AttachError(
                        f"{fp.name}: changed by another writer {attempt + 1} times in a row; giving up"
                    ) from None
                self.emit(
                    Event(
                        function=fp.name,
                        step=self.at[fp.name],
                        state=State.RETRYING,
                        detail="RevisionId changed under us (a concurrent writer); re-reading",
                    )
                )
                fp = self._replan(fp)
        raise AssertionError("unreachable")

    def _replan(self, fp: FunctionSteps) -> FunctionSteps:
        state = read_state(self.lam, fp.name, self.plan.alias)
        if state is None:
            raise AttachError(f"{fp.name}: function was deleted during the attach")
        target = FunctionTarget(key=fp.key, name=fp.name, handler="")
        fresh = plan_function(
            target,
            state,
            code_sha256=self.plan.code_sha256,
            layer_version_arn=self.plan.layer_version_arn,
            provisioned_concurrency=fp.provisioned_concurrency,
        )
        # Roll back to what callers were served when we started, not to a concurrent writer's version.
        return replace(fresh, alias_from=fp.alias_from)

    def _start(self, name: str, step: Step) -> None:
        self.at[name] = step
        self.emit(Event(function=name, step=step, state=State.STARTED))
        self.record.check()

    def _once(self, fp: FunctionSteps) -> str | None:
        """The function's steps, in the plan's order; each a write, then a wait until Lambda is done with it."""
        lam, policy, name = self.lam, self.policy, fp.name
        rev = fp.revision_id
        version: str | None = None
        for step in fp.steps():
            if step is Step.CODE:
                self._start(name, step)
                self.record.code(name, self.plan.code_sha256)
                call(
                    lam.update_function_code,
                    what=name,
                    policy=policy,
                    FunctionName=name,
                    S3Bucket=self.plan.bucket,
                    S3Key=self.plan.code_key,
                    **_revision(rev),
                )
                rev = wait_updated(lam, name, policy=policy).get("RevisionId")
            elif step is Step.LAYERS:
                self._start(name, step)
                self.record.layers(name, fp.new_layers)
                call(
                    lam.update_function_configuration,
                    what=name,
                    policy=policy,
                    FunctionName=name,
                    Layers=list(fp.new_layers),
                    **_revision(rev),
                )
                rev = wait_updated(lam, name, policy=policy).get("RevisionId")
            elif step is Step.PUBLISH:
                self._start(name, step)
                version = self._publish(fp, rev)
            elif step is Step.ACTIVE:
                self._start(name, step)
                wait_active(lam, name, _published(version), policy=policy)
            elif step is Step.PROVISION:
                self._start(name, step)
                provision(lam, name, _published(version), fp.provisioned_concurrency, policy=policy)
            else:
                continue  # the alias moves in phase 2, once every function is staged
            self.emit(Event(function=name, step=step, state=State.DONE))
        return version

    def _publish(self, fp: FunctionSteps, rev: str | None) -> str:
        name = fp.name
        # CodeSha256 makes Lambda refuse to publish if $LATEST's code changed since we looked.
        version = call(
            self.lam.publish_version,
            what=name,
            policy=self.policy,
            FunctionName=name,
            CodeSha256=self.plan.code_sha256,
            **_revision(rev),
            **_description(self.plan.description or None),
        )
        if _layer_arns(version) != fp.new_layers or version.get("CodeSha256") != self.plan.code_sha256:
            raise AttachError(
                f"{name}: published version {version.get('Version')} has layers {list(_layer_arns(version))} "
                f"and code {version.get('CodeSha256')}, expected {list(fp.new_layers)} and {self.plan.code_sha256}"
            )
        self.record.version(name, str(version["Version"]))
        return str(version["Version"])


def _published(version: str | None) -> str:
    if version is None:  # the plan's order (FunctionSteps.steps) puts PUBLISH first
        raise AssertionError("a step that needs the published version ran before PUBLISH")
    return version


def _description(text: str | None) -> dict[str, Any]:
    return {} if text is None else {"Description": text}


def previous_marker(version: str, commit: str = "") -> str:
    """The alias description that tells `inv rollback` which version served before this one, and
    which commit the version it moves to was built from (``previous=4 commit=1a2b3c4d5e6f``)."""
    return f"previous={version}" + (f" commit={commit[:12]}" if commit else "")


def _move_alias(
    lam: Any,
    plan: AttachPlan,
    name: str,
    version: str,
    policy: RetryPolicy,
    rev: str | None,
    *,
    description: str | None = None,
) -> None:
    try:
        call(
            lam.update_alias,
            what=name,
            policy=policy,
            FunctionName=name,
            Name=plan.alias,
            FunctionVersion=version,
            **_revision(rev),
            **_description(description),
            # one version, no weights: also ends what a killed gradual rollout left behind
            RoutingConfig=rollout.NO_WEIGHTS,
        )
    except ClientError as exc:
        raise AttachError(f"{name}: moving alias {plan.alias} to {version}: {error_message(exc)}") from None


def _message(name: str, exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, DeployError) else error_message(exc)
    return text if text.startswith(name) else f"{name}: {text}"


def apply_attach(
    env: EnvConfig,
    targets: Targets,
    plan: AttachPlan,
    *,
    function: Artifact | None = None,
    dry_run: bool = False,
    max_workers: int = 8,
    progress: Progress | None = None,
    timeout: float = 300,
    deadline: float = DEADLINE_S,
    policy: RetryPolicy | None = None,
    record: Recorder | None = None,
    gradual: RolloutSettings | None = None,
) -> AttachResult:
    """Apply ``plan``; raise AttachError (``failures`` per function) if any function failed.

    ``gradual``: the environment's rollout when the caller runs the rest of it (``deploy``: verify, then
    ``deploy.aws.rollout.bake``); the aliases then move only to its first weight. Without it, all at once.

    ``record`` is the caller's transaction (deploy's also covers verify); without one, the attach
    runs in its own, which restores what it changed on any failure or interrupt (the restore gets
    its own time, past the deadline). ``function`` is the artifact to upload when the plan says its
    zip is not in S3 yet. ``timeout`` bounds each retried call or wait; ``deadline`` (seconds from
    now) bounds all of them together.
    """
    emit = progress or ignore
    policy = replace(policy or RetryPolicy(), total=timeout).with_deadline(deadline)
    if dry_run or not plan.changed:
        return AttachResult(
            outcomes=tuple(
                Outcome(
                    name=fp.name,
                    status=Status.UPDATED if fp.changed else Status.UNCHANGED,
                    old_version=fp.alias_from,
                    new_version=None,
                )
                for fp in plan.functions
            ),
            ok=True,
            dry_run=dry_run,
        )
    if plan.upload_code:
        if function is None or function.s3_key != plan.code_key:
            raise AttachError(
                f"s3://{plan.bucket}/{plan.code_key} is missing and no matching function artifact was given"
            )
        function.check()
        where = f"function {function.sha256[:12]} to s3://{plan.bucket}/{short_key(plan.code_key)}"
        emit(Event(function=None, step=Step.UPLOAD, state=State.STARTED, detail=f"uploading {where}"))
        upload(calls.client(env, "s3", plan.region), plan.bucket, plan.code_key, function)
        emit(Event(function=None, step=Step.UPLOAD, state=State.DONE, detail=f"uploaded {where}"))

    if record is None:
        with Transaction(env, targets, progress=emit, policy=policy) as txn:
            return _apply(env, plan, policy=policy, max_workers=max_workers, emit=emit, record=txn)
    weight = rollout.first_weight(gradual) if gradual is not None else 100
    return _apply(env, plan, policy=policy, max_workers=max_workers, emit=emit, record=record, weight=weight)


def _apply(
    env: EnvConfig,
    plan: AttachPlan,
    *,
    policy: RetryPolicy,
    max_workers: int,
    emit: Progress,
    record: Recorder,
    weight: int = 100,
) -> AttachResult:
    lam = calls.client(env, "lambda", plan.region)
    stager = _Stager(lam, plan, policy, emit, record)
    workers = max(1, min(max_workers, len(plan.functions)))

    # Phase 1: stage every function; no alias moves, so callers still see the old pairs.
    errors: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        jobs = {fp.name: functools.partial(stager, fp) for fp in plan.functions}
        staged = _gather(pool, jobs, errors, emit, record, at=stager.at)

    # Phase 2: move the aliases, only if everything staged. The transaction restores on failure.
    if not errors:

        def switch(fp: FunctionSteps, version: str) -> None:
            if weight < 100:  # a gradual rollout's first step: the new version gets `weight`% of traffic
                move = rollout.Move(name=fp.name, old=fp.alias_from, new=version)
                detail = f"{weight}% on v{version} ({100 - weight}% on v{fp.alias_from})"
                emit(Event(function=fp.name, step=Step.SHIFT, state=State.STARTED, detail=detail))
                rollout.set_weight(
                    lam, plan.alias, move, weight, policy=policy, record=record, revision=fp.alias_revision_id
                )
                emit(Event(function=fp.name, step=Step.SHIFT, state=State.DONE, detail=detail))
                return
            detail = f"moving alias {plan.alias} {fp.alias_from} → {version}"
            emit(Event(function=fp.name, step=Step.ALIAS, state=State.STARTED, detail=detail))
            record.check()
            record.alias(fp.name, version)
            _move_alias(
                lam,
                plan,
                fp.name,
                version,
                policy,
                fp.alias_revision_id,
                description=previous_marker(fp.alias_from, plan.commit),
            )
            emit(Event(function=fp.name, step=Step.ALIAS, state=State.DONE))

        with ThreadPoolExecutor(max_workers=workers) as pool:
            moves = {
                name: functools.partial(switch, fp, version)
                for name, (fp, version) in staged.items()
                if version is not None and version != fp.alias_from
            }
            _gather(pool, moves, errors, emit, record, at=dict.fromkeys(moves, Step.ALIAS))

    if errors:
        # The transaction restores, and removes the provisioned concurrency of versions left unserved.
        raise AttachError("attach failed: " + "; ".join(errors[name] for name in sorted(errors)), failures=errors)
    if weight >= 100:  # a gradual rollout's old version still serves: deploy.aws.rollout releases it at the end
        _release_superseded(lam, staged, policy=policy, emit=emit)
    outcomes: list[Outcome] = []
    for fp in plan.functions:
        applied, version = staged.get(fp.name, (fp, None))
        moved = version is not None and version != applied.alias_from
        outcomes.append(
            Outcome(
                name=fp.name,
                status=Status.UPDATED if moved else Status.UNCHANGED,
                old_version=fp.alias_from,
                new_version=version if moved else None,
            )
        )
    return AttachResult(outcomes=tuple(outcomes), ok=True)


def _release_superseded(
    lam: Any,
    staged: Mapping[str, tuple[FunctionSteps, str | None]],
    *,
    policy: RetryPolicy,
    emit: Progress,
) -> None:
    """Once every alias serves the new version, the old version's provisioned concurrency only bills.
    A restore after this point (a failed verify) sends traffic back to a version without warm
    environments: it serves the same, with cold starts until the next deploy provisions it."""
    for name, (fp, version) in staged.items():
        if fp.provisioned_concurrency <= 0 or version is None or version == fp.alias_from:
            continue
        problem = release(lam, name, fp.alias_from, policy=policy)
        detail = f"released provisioned concurrency of version {fp.alias_from}"
        if problem:
            detail = (
                f"could not release provisioned concurrency of version {fp.alias_from} ({problem}); remove it by hand"
            )
        # A run-wide line (function None): the function's own line was closed by its alias's DONE.
        emit(Event(function=None, step=Step.PROVISION, state=State.DONE, detail=f"{name}: {detail}"))


def _gather(
    pool: ThreadPoolExecutor,
    jobs: Mapping[str, Callable[[], T]],
    errors: dict[str, str],
    emit: Progress,
    record: Recorder,
    *,
    at: Mapping[str, Step],
) -> dict[str, T]:
    """Run ``jobs`` on ``pool``; results by function; failures go to ``errors`` (and out as a ``FAILED``
    event of the step each function was at). On an interrupt in this (the main) thread, no worker starts
    another write, and we wait for the calls in flight so the restore sees a still state.

    An interrupt can land while we are still submitting, even inside ``pool.submit`` after a worker
    thread started but before the pool (and we) hold it: nobody could wait for that worker. So no job
    starts before every future is in hand, and each checks ``record`` once it may: a worker whose future
    was lost with the interrupt finds the transaction halted and writes nothing."""
    submitted = threading.Event()

    def when_all_submitted(job: Callable[[], T]) -> T:
        submitted.wait()
        record.check()
        return job()

    futures: dict[str, Future[T]] = {}
    results: dict[str, T] = {}
    try:
        for name, job in jobs.items():
            futures[name] = pool.submit(when_all_submitted, job)
        submitted.set()
        for name, future in futures.items():
            try:
                results[name] = signals.result(future)  # a Ctrl-C a worker took still halts us now
            except (DeployError, ClientError, BotoCoreError) as exc:
                errors[name] = _message(name, exc)
                step = at.get(name, Step.CODE)
                emit(Event(function=name, step=step, state=State.FAILED, detail=f"failed: {errors[name]}"))
    except BaseException:
        try:
            record.halt()
        finally:
            submitted.set()  # even if a second signal lands before the halt: a closed gate would hang the pool
        for future in futures.values():
            future.cancel()
        wait_all(futures.values())
        raise
    return results


def attach(
    env: EnvConfig,
    targets: Targets,
    *,
    function: Artifact,
    layer_version_arn: str,
    dry_run: bool = False,
    max_workers: int = 8,
    progress: Progress | None = None,
    timeout: float = 300,
    deadline: float = DEADLINE_S,
    policy: RetryPolicy | None = None,
) -> AttachResult:
    """``plan_attach`` then ``apply_attach``: what the ``attach`` task calls."""
    plan = plan_attach(env, targets, function=function, layer_version_arn=layer_version_arn)
    return apply_attach(
        env,
        targets,
        plan,
        function=function,
        dry_run=dry_run,
        max_workers=max_workers,
        progress=progress,
        timeout=timeout,
        deadline=deadline,
        policy=policy,
    )
