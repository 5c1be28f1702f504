"""Retrying what botocore does not, and waiting for a Lambda update to finish.

While a function's ``LastUpdateStatus`` is InProgress, a second update fails with
``ResourceConflictException`` and botocore does not retry it. Throttling is retried by
botocore's standard mode, but a burst of parallel attaches can outlast its five attempts.
Both get capped exponential backoff with full jitter (AWS Architecture Blog, "Exponential
Backoff And Jitter"), bounded by total elapsed time rather than attempts, because what
the caller cares about is how long a deploy may hang. A per-call bound alone does not say
that: a function's update, wait, configuration, wait, version and alias each get it anew
(and a RevisionId replan starts them over), so one function could hang for over an hour.
``RetryPolicy.deadline`` is the one instant every call and wait of a deploy stops at.

The wait loop mirrors botocore's ``function_updated_v2`` waiter (poll GetFunction until
``LastUpdateStatus`` leaves InProgress) but with an injectable clock and sleep, a time
bound, and the ``LastUpdateStatusReasonCode`` in the error: the stock waiter sleeps with
``time.sleep``, counts attempts, and its WaiterError drops the reason code.
"""

from __future__ import annotations

import random as _random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from deploy.errors import AttachError, AwsError

T = TypeVar("T")

CONFLICT_CODES = frozenset({"ResourceConflictException"})
THROTTLE_CODES = frozenset(
    {"TooManyRequestsException", "ThrottlingException", "Throttling", "ThrottledException", "SlowDown"}
)
PRECONDITION_CODES = frozenset({"PreconditionFailedException"})


#: What S3 answers for a key (HEAD: 404/NotFound, GET: NoSuchKey) that is not there.
NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def error_message(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".rstrip(": ")
    return str(exc)


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Backoff and time bound; tests inject ``sleep``, ``clock`` and ``random`` so nothing really waits."""

    base: float = 0.5
    cap: float = 20.0
    total: float = 300.0
    poll: float = 1.0  # the function_updated_v2 waiter's delay
    replans: int = 3  # re-reads after a RevisionId mismatch before giving up
    deadline: float | None = None  # on ``clock``: no retry or wait of this deploy goes past it
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    random: Callable[[], float] = _random.random

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
        return float(self.random()) * min(self.cap, self.base * (2.0**attempt))

    def limit(self, start: float) -> tuple[float, str]:
        """When a retry loop begun at ``start`` must stop, and how to say why."""
        own = start + self.total
        if self.deadline is not None and self.deadline < own:
            return self.deadline, " (the deploy's overall deadline)"
        return own, ""

    def with_deadline(self, seconds: float) -> RetryPolicy:
        """This policy with every retry and wait ending ``seconds`` from now (or earlier, if it already did)."""
        end = self.clock() + seconds
        return replace(self, deadline=end if self.deadline is None else min(end, self.deadline))


def call(
    fn: Callable[..., T],
    /,
    *,
    what: str,
    policy: RetryPolicy,
    error: type[AwsError] = AttachError,
    **kwargs: Any,
) -> T:
    """``fn(**kwargs)``, retrying conflicts and throttling until ``policy.total`` seconds have passed."""
    start = policy.clock()
    attempt = 0
    while True:
        try:
            return fn(**kwargs)
        except ClientError as exc:
            code = error_code(exc)
            if code not in CONFLICT_CODES and code not in THROTTLE_CODES:
                raise
            now = policy.clock()
            elapsed = now - start
            delay = policy.backoff(attempt)
            limit, why = policy.limit(start)
            if now + delay > limit:
                if code in CONFLICT_CODES:
                    raise error(f"{what}: update still in progress after {elapsed:.0f} s{why}") from exc
                raise error(f"{what}: still throttled after {elapsed:.0f} s ({code}){why}") from exc
            policy.sleep(delay)
            attempt += 1


def next_poll(policy: RetryPolicy, start: float, *, still: str) -> None:
    """Sleep one poll interval before reading again, or, when that read would come after the time bound
    (the policy's own or the deploy's deadline), raise AttachError: ``still`` and the time waited."""
    now = policy.clock()
    limit, why = policy.limit(start)
    if now + policy.poll > limit:
        raise AttachError(f"{still} after {now - start:.0f} s{why}")
    policy.sleep(policy.poll)


def wait_updated(lam: Any, name: str, *, policy: RetryPolicy, qualifier: str | None = None) -> Mapping[str, Any]:
    """Poll until the function's last update finished; return its configuration (with the fresh RevisionId)."""
    start = policy.clock()
    args: dict[str, Any] = {"FunctionName": name}
    if qualifier:
        args["Qualifier"] = qualifier
    while True:
        config: Mapping[str, Any] = call(lam.get_function_configuration, what=name, policy=policy, **args)
        status = config.get("LastUpdateStatus") or "Successful"
        if status == "Successful":
            return config
        if status == "Failed":
            reason = config.get("LastUpdateStatusReasonCode") or config.get("StateReasonCode") or "unknown"
            detail = config.get("LastUpdateStatusReason") or config.get("StateReason") or ""
            raise AttachError(f"{name}: update failed ({reason}){': ' + detail if detail else ''}")
        next_poll(policy, start, still=f"{name}: update still in progress")
