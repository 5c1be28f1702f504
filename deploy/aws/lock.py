"""One writer per environment: a leased lock object, every change to it an S3 conditional write.

Two deploys that interleave (a laptop and CI, two workflows) can each move half the aliases,
and a failing one's restore can undo the other's success. Terraform's own S3 lock covers only
its state, and only while it runs; this lock covers a whole task.

The object lives next to the Terraform state (``<state key>.deploy-lock``), or in the artifact
bucket when the environment has no state settings. It says who holds it (host, pid, user, CI
run URL), for which command, since when, and carries a random lock id. Every write is
conditional, so a decision made on a read can never act on a newer object:

- create: ``If-None-Match: *`` -- exactly one run gets it. A 412 whose object holds *our* lock
  id is ours: the create landed and only its answer was lost (botocore retried it into a 412).
- renew (the heartbeat), takeover: ``If-Match: <ETag we read>``; release and ``inv unlock
  --force``: ``DeleteObject`` with ``If-Match``. A late release after a force-unlock, or two
  runners taking over one stale lock at once, get 412 and change nothing.

The lease. A holder rewrites the object every ``heartbeat_s`` (a thread); each write bumps a
counter, so its ETag changes. A waiter calls a lock stale when its ETag has not changed for
``lease_s`` -- measured on the waiter's own clock from when it first saw that ETag, or on S3's
clock (the answer's ``Date`` minus ``LastModified``) when it is older: neither trusts the
holder's clock, and the lease the object claims is capped by our own, so a writer whose clock
runs far ahead cannot pin the lock. A stale lock is taken over (conditional write on its ETag)
with a notice naming the stale holder. A holder on this very machine (same hostname, boot id
and pid namespace) whose process is gone is stale at once. An object an older version wrote,
without a lease, never goes stale by time; ``inv unlock --force`` remains for it and for any
object that is not a lock at all (its ETag stands in for the lock id).

A holder that loses its lock must stop before its next write. The heartbeat alone cannot
promise that (it runs every ``heartbeat_s``), so the check is a fence on every write instead:
while the lock is held, every AWS client this library builds refuses a write call once the
heartbeat found the object replaced or gone, *or* once ``lease_s - heartbeat_s`` have passed
since the last renewal S3 accepted (others may take over at ``lease_s``; the clock is
CLOCK_BOOTTIME, which keeps counting while a laptop sleeps). The refusal is a DeployLockError,
so the transaction restores what it can; at the end of the block a lost lock is an error even
when no write was refused, because another run may have written meanwhile. Terraform, a
subprocess, is outside this fence and relies on its own state lock.

What the object holds and how a read of it is checked: ``deploy.aws.lock_record``.
Dry runs and ``status`` only read, so they never take it. moto (5.2) enforces all three
conditions on put_object and delete_object, in-process and over HTTP; what it never does
(lose an answer, answer 409 ConditionalRequestConflict) is injected in tests/aws/test_lock_lease.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from deploy.aws import calls
from deploy.aws.lock_record import (
    CHANGED,
    GONE,
    LockInfo,
    LockLocation,
    Seen,
    ci_run_url,
    location,
    new_info,
    observe,
    pid_alive,
    read,
    unusable,
)
from deploy.aws.retry import error_code
from deploy.config import DeployLockSettings, EnvConfig
from deploy.errors import DeployLockError

__all__ = ["EnvLock", "LockInfo", "LockLocation", "ci_run_url", "force_unlock", "held", "location", "new_info", "read"]

#: How long a writer waits for another run's lock by default (``--lock-timeout``).
DEFAULT_TIMEOUT_S = 300.0
#: How often a waiting writer asks again.
POLL_S = 5.0
#: A lock not renewed for this long is taken over (setting ``deploy_lock.lease_seconds``).
DEFAULT_LEASE_S = float(DeployLockSettings.lease_seconds)
#: How often a holder renews it (setting ``deploy_lock.heartbeat_seconds``).
DEFAULT_HEARTBEAT_S = float(DeployLockSettings.heartbeat_seconds)


def _boottime() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


@dataclass(kw_only=True, eq=False)
class EnvLock:
    """Acquire, renew and release one environment's lock; ``clock``/``sleep``/``alive`` are injectable."""

    s3: Any
    where: LockLocation
    info: LockInfo
    timeout: float = DEFAULT_TIMEOUT_S
    poll: float = POLL_S
    lease: float = DEFAULT_LEASE_S
    heartbeat: float = DEFAULT_HEARTBEAT_S
    clock: Callable[[], float] = _boottime
    sleep: Callable[[float], None] = time.sleep
    say: Callable[[str], None] = print
    alive: Callable[[int], bool] = pid_alive
    etag: str | None = None  # of the object we last wrote; None: not held
    lost: str | None = None  # why we no longer hold it
    _renewed: float = 0.0  # clock() before sending the last write S3 accepted
    _mutex: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat <= self.lease / 2:  # else one late beat already crosses the fence
            raise ValueError(f"heartbeat {self.heartbeat} s must be positive and at most half the lease {self.lease} s")

    def _body(self) -> bytes:
        info = replace(self.info, lease_seconds=self.lease, renewed_at=datetime.now(UTC).isoformat(timespec="seconds"))
        return json.dumps(asdict(info), sort_keys=True).encode()

    def _write(self, **condition: str) -> tuple[str | None, Seen | None]:
        """Write our object under ``condition``: (its new ETag or None when refused, the object as
        read after a refusal, or None when there is none)."""
        started = self.clock()
        try:
            answer = self.s3.put_object(
                Bucket=self.where.bucket,
                Key=self.where.key,
                Body=self._body(),
                ContentType="application/json",
                **condition,
            )
        except ClientError as exc:
            if error_code(exc) not in CHANGED | GONE:
                raise unusable(self.where, exc) from None
        except BotoCoreError:
            pass  # the write may have landed with its answer lost: the object tells
        else:
            self._renewed = started
            return str(answer["ETag"]), None
        # Refused, or unanswered: botocore retries a write whose answer was lost, and the retry of
        # a landed conditional write is refused. The object is then ours, exactly as we wrote it.
        seen = observe(self.s3, self.where)
        this_write = (self.info.lock_id, self.info.renewals)  # not an earlier write of ours, since renewed
        if seen is not None and seen.info is not None and (seen.info.lock_id, seen.info.renewals) == this_write:
            self._renewed = started
            return seen.etag, seen
        return None, seen

    def stale(self, seen: Seen, unchanged_for: float) -> str | None:
        """Why ``seen`` (unchanged on our clock for ``unchanged_for`` s) is stale, or None."""
        info = seen.info
        assert info is not None
        if (info.host, info.machine) == (self.info.host, self.info.machine) and not self.alive(info.pid):
            return f"its process {info.pid} on this host is gone"
        if info.lease_seconds is None:
            return None  # an older version's lock: only `inv unlock --force` removes it
        lease = min(float(info.lease_seconds), self.lease)
        age = max(unchanged_for, seen.server_age_s or 0.0)
        if age < lease:
            return None
        return f"not renewed for {age:.0f} s, its lease is {lease:.0f} s"

    def acquire(self) -> None:
        deadline = self.clock() + self.timeout
        announced: str | None = None
        first: tuple[str, float] = ("", 0.0)  # (ETag, when we first saw it)
        self.info = replace(self.info, renewals=0)
        etag, seen = self._write(IfNoneMatch="*")
        while etag is None:
            now = self.clock()
            if seen is None:  # released between our write and our read: try again, briefly paced
                if now >= deadline:
                    raise DeployLockError(
                        f"environment {self.info.env!r}: the deploy lock {self.where} changed hands too fast to "
                        f"take within {self.timeout:.0f} s",
                        hint="another run keeps taking it; rerun when it is done",
                    )
                self.sleep(min(0.1, max(0.0, deadline - now)))
                etag, seen = self._write(IfNoneMatch="*")
                continue
            if (info := seen.info) is None:
                raise seen.not_a_lock(self.where)
            if first[0] != seen.etag:
                first = (seen.etag, now)
            if reason := self.stale(seen, now - first[1]):
                etag, after = self._write(IfMatch=seen.etag)
                if etag is not None:
                    self.say(f"took over the deploy lock {self.where} from {info.holder()}: {reason}")
                    break
                if after is None or after.etag != seen.etag:
                    seen = after  # released, or renewed or taken by another run meanwhile: judge it afresh
                    continue
                # the same object refused (409, a racing writer): wait like any waiter, never spin
            if now >= deadline:
                raise DeployLockError(
                    f"environment {self.info.env!r} is locked by {info.holder()}; gave up after {self.timeout:.0f} s",
                    hint=(
                        "wait for that run to finish (a killed run's lock is taken over once its lease runs out); "
                        f"or, sure it is gone: `inv unlock --env {self.info.env} --force {info.lock_id}`"
                    ),
                )
            if announced != info.lock_id:
                self.say(
                    f"waiting up to {self.timeout:.0f} s for the lock held by {info.holder()} "
                    f"(taken over if not renewed for {self.lease:.0f} s)"
                )
                announced = info.lock_id
            self.sleep(min(self.poll, max(0.0, deadline - now)))
            etag, seen = self._write(IfNoneMatch="*")
        with self._mutex:
            self.etag, self.lost = etag, None

    def renew(self) -> bool:
        """One heartbeat: rewrite the object if it is still ours; else record the loss."""
        with self._mutex:
            if self.etag is None or self.lost is not None:
                return False
            self.info = replace(self.info, renewals=self.info.renewals + 1)
            try:
                etag, _ = self._write(IfMatch=self.etag)
            except DeployLockError as exc:  # denied, throttled, unreachable: the fence decides when to stop
                self.say(f"could not renew the deploy lock {self.where}: {exc}")
                self.info = replace(self.info, renewals=self.info.renewals - 1)
                return False
            if etag is None:
                self.lost = "the lock object was replaced or removed (force-unlocked, or taken over as stale)"
                return False
            self.etag = etag
            return True

    def check(self, operation: str = "a write") -> None:
        """Raise before ``operation`` unless we still hold the lock (the fence; see the module docstring)."""
        reason = self.lost
        if reason is None and self.clock() - self._renewed >= self.lease - self.heartbeat:
            reason = f"not renewed for {self.clock() - self._renewed:.0f} s of a {self.lease:.0f} s lease"
        if reason is not None:
            raise DeployLockError(
                f"environment {self.info.env!r}: this run lost its deploy lock {self.where} ({reason}); "
                f"stopped before {operation}",
                hint="another run may have written meanwhile: check `inv status`, then rerun",
            )

    def guard(self, _service: str, client: Any) -> None:
        """A :func:`deploy.aws.calls.client_hook`: the fence on every write of a client built under the lock."""

        def before_call(model: Any = None, **_: Any) -> None:
            operation = str(getattr(model, "name", ""))
            if operation and calls.is_write(operation):
                self.check(operation)

        client.meta.events.register("before-call", before_call)

    def start_heartbeat(self) -> None:
        def beat() -> None:
            while not self._stop.wait(self.heartbeat):
                if not self.renew() and self.lost is not None:
                    return

        self._stop.clear()
        self._thread = threading.Thread(target=beat, name=f"deploy-lock-{self.info.env}", daemon=True)
        self._thread.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def release(self) -> None:
        """Delete the object only as we last wrote it: a lock handed on since then stays."""
        try:
            self.stop_heartbeat()
        finally:
            with self._mutex:
                etag, self.etag = self.etag, None
            if etag is not None:
                self._delete(etag)

    def _delete(self, etag: str) -> None:
        try:
            self.s3.delete_object(Bucket=self.where.bucket, Key=self.where.key, IfMatch=etag)
        except ClientError as exc:
            if error_code(exc) in GONE:
                # Our delete's answer lost and its retry refused, or a force-unlock nobody followed:
                # either way no other run holds it now, so this is no loss (a heartbeat flags the rest).
                pass
            elif error_code(exc) in CHANGED:
                self.lost = self.lost or "another run took over the lock while this run held it"
                self.say(f"left the deploy lock {self.where} in place: it is no longer this run's")
            else:
                self._unreleased(exc)
        except BotoCoreError as exc:
            self._unreleased(exc)

    def _unreleased(self, exc: BaseException) -> None:
        self.say(
            f"could not release the deploy lock {self.where} ({exc}); another run takes it over once its "
            f"{self.lease:.0f} s lease runs out, or run `inv unlock --env {self.info.env} --force {self.info.lock_id}`"
        )


@contextmanager
def held(
    env: EnvConfig,
    command: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    artifact_bucket: str | None = None,
    say: Callable[[str], None] = print,
    clock: Callable[[], float] = _boottime,
    sleep: Callable[[float], None] = time.sleep,
    lease: float | None = None,
    heartbeat: float | None = None,
) -> Iterator[EnvLock]:
    """Hold the environment's lock for the block, renewed by a heartbeat and fencing every write
    of clients built inside it; released on every exit path (errors, Ctrl-C, SIGTERM).
    ``lease``/``heartbeat`` default to the environment's ``deploy_lock`` settings."""
    where = location(env, artifact_bucket=artifact_bucket)
    lock = EnvLock(
        s3=calls.client(env, "s3", where.region),
        where=where,
        info=new_info(env, command),
        timeout=timeout,
        lease=env.deploy_lock.lease_seconds if lease is None else lease,
        heartbeat=env.deploy_lock.heartbeat_seconds if heartbeat is None else heartbeat,
        clock=clock,
        sleep=sleep,
        say=say,
    )
    lock.acquire()
    try:
        lock.start_heartbeat()
        with calls.client_hook(lock.guard):
            yield lock
    except BaseException:
        lock.release()
        raise
    lock.release()
    if lock.lost is not None:
        raise DeployLockError(
            f"environment {env.name!r}: this run lost its deploy lock {where} before it finished ({lock.lost})",
            hint="another run may have written meanwhile: check `inv status`, then rerun",
        )


def force_unlock(env: EnvConfig, lock_id: str, *, artifact_bucket: str | None = None) -> LockInfo | None:
    """Remove a lock (or an object that is not a lock: its ETag is its id), deleting exactly the
    object read; refused unless ``lock_id`` is the one it holds. None: it was not a lock."""
    where = location(env, artifact_bucket=artifact_bucket)
    s3 = calls.client(env, "s3", where.region)
    seen = observe(s3, where)
    if seen is None:
        raise DeployLockError(f"environment {env.name!r} is not locked ({where} does not exist)")
    if lock_id != seen.id:
        # The real id is not printed: it is what unlocks, and this caller guessed wrong.
        held_by = f"held by {seen.info.who()}" if seen.info is not None else "which is not a lock this tool wrote"
        raise DeployLockError(
            f"lock id {lock_id!r} does not match the lock on {env.name!r}, {held_by}; nothing removed"
        )
    try:
        s3.delete_object(Bucket=where.bucket, Key=where.key, IfMatch=seen.etag)
    except ClientError as exc:
        if error_code(exc) in CHANGED | GONE:
            raise DeployLockError(
                f"the deploy lock on {env.name!r} changed while unlocking (renewed, released or taken over); "
                "nothing removed"
            ) from None
        raise unusable(where, exc) from None
    return seen.info
