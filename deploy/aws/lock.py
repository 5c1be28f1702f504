"""One writer per environment: a lock object created with an S3 conditional write.

Two deploys that interleave (a laptop and CI, two workflows) can each move half the
aliases, and a failing one's restore can undo the other's success. Terraform's own S3
lock covers only its state, and only while it runs; this lock covers a whole task.

The lock is an object in the environment's Terraform state bucket (next to the state,
``<state key>.deploy-lock``), or in the artifact bucket when the environment has no state
settings. ``put_object(IfNoneMatch="*")`` creates it only if it does not exist: S3 answers
412 PreconditionFailed to every other writer, so exactly one run holds it. The object says
who holds it (host, pid, user, CI run URL), for which command and since when, and carries a
random lock id; only that id releases it, and ``inv unlock --force LOCK_ID`` removes a lock
left by a killed run (like ``terraform force-unlock``). The moto server honours
``IfNoneMatch`` on put_object (checked in tests/aws/test_env_lock.py over HTTP).

Dry runs and ``status`` only read, so they never take it.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from deploy.aws import calls
from deploy.aws.retry import error_code, error_message
from deploy.config import EMULATOR_STATE, EnvConfig
from deploy.errors import DeployLockError

#: How long a writer waits for another run's lock by default (``--lock-timeout``).
DEFAULT_TIMEOUT_S = 300.0
#: How often a waiting writer asks again.
POLL_S = 5.0

_TAKEN = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
_MISSING_BUCKET = frozenset({"NoSuchBucket"})
_DENIED = frozenset({"AccessDenied", "AllAccessDisabled", "Forbidden", "403"})


@dataclass(frozen=True, kw_only=True)
class LockLocation:
    bucket: str
    key: str
    region: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True, kw_only=True)
class LockInfo:
    """What the lock object holds: enough to find (and, if dead, unlock) its owner."""

    lock_id: str
    env: str
    command: str
    host: str
    pid: int
    user: str
    started_at: str  # ISO 8601, UTC
    ci_run_url: str | None = None

    def holder(self) -> str:
        who = f"{self.user}@{self.host} pid {self.pid} ({self.command})"
        if self.ci_run_url:
            who += f", {self.ci_run_url}"
        return f"{who} since {self.started_at}, lock id {self.lock_id}"


def location(env: EnvConfig, *, artifact_bucket: str | None = None) -> LockLocation:
    """The state bucket when the environment has one (the emulator's for ``local``), else the artifact bucket."""
    state = env.state or (EMULATOR_STATE if env.emulator is not None else None)
    if state is not None:
        return LockLocation(
            bucket=state.bucket, key=f"env:/{env.name}/{state.key}.deploy-lock", region=state.region or env.region
        )
    if artifact_bucket is None:
        raise DeployLockError(
            f"environment {env.name!r} has no state bucket to hold its deploy lock",
            hint="add state: {bucket: <name>, key: <path>} to invoke.yaml",
        )
    return LockLocation(bucket=artifact_bucket, key=f"lambda/deploy-lock-{env.name}.json", region=env.region)


def ci_run_url(environ: Mapping[str, str]) -> str | None:
    parts = [environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")]
    if not all(parts):
        return None
    server, repo, run = parts
    return f"{server}/{repo}/actions/runs/{run}"


def new_info(env: EnvConfig, command: str, *, environ: Mapping[str, str] = os.environ) -> LockInfo:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = str(os.getuid())
    return LockInfo(
        lock_id=uuid.uuid4().hex,
        env=env.name,
        command=command,
        host=socket.gethostname(),
        pid=os.getpid(),
        user=user,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        ci_run_url=ci_run_url(environ),
    )


def _unusable(where: LockLocation, exc: BaseException) -> DeployLockError:
    code = error_code(exc)
    if code in _MISSING_BUCKET:
        return DeployLockError(
            f"deploy lock bucket {where.bucket} does not exist; nothing was changed",
            hint="run `inv infra.init` (it creates the state bucket)",
        )
    if code in _DENIED:
        return DeployLockError(f"access denied to the deploy lock {where}; nothing was changed: {error_message(exc)}")
    return DeployLockError(f"deploy lock {where}: {error_message(exc)}")


def read(s3: Any, where: LockLocation) -> LockInfo | None:
    """The current holder, or None when nobody holds the lock."""
    try:
        body = s3.get_object(Bucket=where.bucket, Key=where.key)["Body"].read()
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404"):
            return None
        raise _unusable(where, exc) from None
    try:
        data = json.loads(body)
        return LockInfo(**data)
    except (ValueError, TypeError) as exc:
        raise DeployLockError(
            f"deploy lock {where} is not a lock this tool wrote ({exc})",
            hint="inspect it; remove it with `aws s3 rm` if it is garbage",
        ) from None


@dataclass(kw_only=True)
class EnvLock:
    """Acquire and release one environment's lock; ``clock``/``sleep`` are injectable for tests."""

    s3: Any
    where: LockLocation
    info: LockInfo
    timeout: float = DEFAULT_TIMEOUT_S
    poll: float = POLL_S
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    say: Callable[[str], None] = print

    def _try_create(self) -> bool:
        body = json.dumps(asdict(self.info), sort_keys=True).encode()
        try:
            self.s3.put_object(
                Bucket=self.where.bucket,
                Key=self.where.key,
                Body=body,
                IfNoneMatch="*",
                ContentType="application/json",
            )
        except ClientError as exc:
            if error_code(exc) in _TAKEN:
                return False
            raise _unusable(self.where, exc) from None
        except BotoCoreError as exc:
            raise DeployLockError(f"deploy lock {self.where}: {exc}") from None
        return True

    def acquire(self) -> None:
        deadline = self.clock() + self.timeout
        announced: str | None = None
        while not self._try_create():
            holder = read(self.s3, self.where)
            if holder is None:  # released between our write and our read: try again, briefly paced
                if self.clock() >= deadline:
                    raise DeployLockError(
                        f"environment {self.info.env!r}: the deploy lock {self.where} changed hands too fast to "
                        f"take within {self.timeout:.0f} s",
                        hint="another run keeps taking it; rerun when it is done",
                    )
                self.sleep(min(0.1, max(0.0, deadline - self.clock())))
                continue
            if self.clock() >= deadline:
                raise DeployLockError(
                    f"environment {self.info.env!r} is locked by {holder.holder()}; gave up after {self.timeout:.0f} s",
                    hint=(
                        "wait for that run to finish; if it was killed, "
                        f"`inv unlock --env {self.info.env} --force {holder.lock_id}`"
                    ),
                )
            if announced != holder.lock_id:
                self.say(f"waiting up to {self.timeout:.0f} s for the lock held by {holder.holder()}")
                announced = holder.lock_id
            self.sleep(min(self.poll, max(0.0, deadline - self.clock())))

    def release(self) -> None:
        """Delete the object only while it is still ours (a force-unlock may have handed it on)."""
        try:
            holder = read(self.s3, self.where)
            if holder is not None and holder.lock_id == self.info.lock_id:
                self.s3.delete_object(Bucket=self.where.bucket, Key=self.where.key)
        except (ClientError, BotoCoreError, DeployLockError) as exc:
            self.say(
                f"could not release the deploy lock {self.where} ({exc}); "
                f"run `inv unlock --env {self.info.env} --force {self.info.lock_id}`"
            )


@contextmanager
def held(
    env: EnvConfig,
    command: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    artifact_bucket: str | None = None,
    say: Callable[[str], None] = print,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[LockInfo]:
    """Hold the environment's lock for the block; released on every exit path (errors, Ctrl-C, SIGTERM)."""
    where = location(env, artifact_bucket=artifact_bucket)
    lock = EnvLock(
        s3=calls.client(env, "s3", where.region),
        where=where,
        info=new_info(env, command),
        timeout=timeout,
        clock=clock,
        sleep=sleep,
        say=say,
    )
    lock.acquire()
    try:
        yield lock.info
    finally:
        lock.release()


def force_unlock(env: EnvConfig, lock_id: str, *, artifact_bucket: str | None = None) -> LockInfo:
    """Remove a lock left by a killed run; refused unless ``lock_id`` is the one the object holds."""
    where = location(env, artifact_bucket=artifact_bucket)
    s3 = calls.client(env, "s3", where.region)
    holder = read(s3, where)
    if holder is None:
        raise DeployLockError(f"environment {env.name!r} is not locked ({where} does not exist)")
    if holder.lock_id != lock_id:
        raise DeployLockError(
            f"lock id {lock_id!r} does not match the lock on {env.name!r}, held by {holder.holder()}; nothing removed"
        )
    try:
        s3.delete_object(Bucket=where.bucket, Key=where.key)
    except ClientError as exc:
        raise _unusable(where, exc) from None
    return holder
