"""The deploy lock's object: where it lives, what it holds, and how one read of it is judged.

The holder's identity is what a waiter needs to name it and, on the same machine, to see that
its process is gone: a pid means the same process only where the hostname, the boot id and the
pid namespace all match (two containers may share a hostname and reuse pids). Everything read is
checked field by field before use (the pid reaches ``os.kill``); an object that fails the check
is "not a lock", and its ETag stands in for the lock id that ``inv unlock --force`` takes. The
lease fields are the holder's claim; ``deploy.aws.lock`` decides how far to trust them.
"""

from __future__ import annotations

import getpass
import json
import math
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from deploy.aws.retry import error_code, error_message
from deploy.config import EMULATOR_STATE, EnvConfig
from deploy.errors import DeployLockError

CHANGED = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})  # 412; 409 when racing
GONE = frozenset({"NoSuchKey", "404"})
_MISSING_BUCKET = frozenset({"NoSuchBucket"})
_DENIED = frozenset({"AccessDenied", "AllAccessDisabled", "Forbidden", "403"})


def machine_id() -> str | None:
    """Boot id and pid namespace: a pid means the same process only where both match."""
    try:
        return f"{Path('/proc/sys/kernel/random/boot_id').read_text().strip()} {Path('/proc/self/ns/pid').readlink()}"
    except OSError:
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: someone else's process, alive
        return True
    return True


@dataclass(frozen=True, kw_only=True)
class LockLocation:
    bucket: str
    key: str
    region: str
    env: str = ""

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
    machine: str | None = None  # see machine_id()
    lease_seconds: float | None = None  # None: written by a version without leases
    renewals: int = 0  # bumped by every renewal, so the ETag changes
    renewed_at: str | None = None  # the holder's clock; shown, never trusted

    def who(self) -> str:
        """The holder without its lock id (the id is what unlocks it)."""
        who = f"{self.user}@{self.host} pid {self.pid} ({self.command})"
        if self.ci_run_url:
            who += f", {self.ci_run_url}"
        return f"{who} since {self.started_at}"

    def holder(self) -> str:
        return f"{self.who()}, lock id {self.lock_id}"


_TYPES: dict[str, tuple[type, ...]] = {
    "lock_id": (str,),
    "env": (str,),
    "command": (str,),
    "host": (str,),
    "pid": (int,),
    "user": (str,),
    "started_at": (str,),
    "ci_run_url": (str, type(None)),
    "machine": (str, type(None)),
    "lease_seconds": (int, float, type(None)),
    "renewals": (int,),
    "renewed_at": (str, type(None)),
}
_REQUIRED = {f.name for f in fields(LockInfo) if f.default is MISSING}


def parse(body: bytes) -> LockInfo:
    """A lock this tool wrote, or ValueError saying why not (types checked: the pid reaches os.kill)."""
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError(f"a JSON {type(data).__name__}, not an object")
    if missing := sorted(_REQUIRED - data.keys()):
        raise ValueError(f"missing {', '.join(missing)}")
    known = {k: v for k, v in data.items() if k in _TYPES}  # newer versions may add fields
    for key, value in known.items():
        if isinstance(value, bool) or not isinstance(value, _TYPES[key]):
            raise ValueError(f"{key} is {value!r}")
    if not 0 < known["pid"] < 2**31:  # os.kill(0, …) signals our own group; larger ones overflow
        raise ValueError(f"pid is {known['pid']}")
    lease = known.get("lease_seconds")
    if lease is not None and not (math.isfinite(lease) and lease > 0):  # NaN would compare as expired
        raise ValueError(f"lease_seconds is {lease!r}")
    return LockInfo(**known)


@dataclass(frozen=True, kw_only=True)
class Seen:
    """One read of the lock object."""

    etag: str
    info: LockInfo | None  # None: not a lock this tool wrote
    problem: str = ""  # why info is None
    server_age_s: float | None = None  # S3's Date minus LastModified, when S3 sent both

    @property
    def id(self) -> str:
        """What ``inv unlock --force`` takes: the lock id, or the ETag of an object that is not a lock."""
        return self.info.lock_id if self.info is not None else self.etag.strip('"')

    def not_a_lock(self, where: LockLocation) -> DeployLockError:
        return DeployLockError(
            f"deploy lock {where} is not a lock this tool wrote ({self.problem}); nothing was changed",
            hint=f"inspect it; to remove it: `inv unlock --env {where.env} --force {self.id}`",
        )


def location(env: EnvConfig, *, artifact_bucket: str | None = None) -> LockLocation:
    """The state bucket when the environment has one (the emulator's for ``local``), else the artifact bucket."""
    state = env.state or (EMULATOR_STATE if env.emulator is not None else None)
    if state is not None:
        return LockLocation(
            bucket=state.bucket,
            key=f"env:/{env.name}/{state.key}.deploy-lock",
            region=state.region or env.region,
            env=env.name,
        )
    if artifact_bucket is None:
        raise DeployLockError(
            f"environment {env.name!r} has no state bucket to hold its deploy lock",
            hint="add state: {bucket: <name>, key: <path>} to invoke.yaml",
        )
    return LockLocation(
        bucket=artifact_bucket, key=f"lambda/deploy-lock-{env.name}.json", region=env.region, env=env.name
    )


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
        machine=machine_id(),
    )


def unusable(where: LockLocation, exc: BaseException) -> DeployLockError:
    code = error_code(exc)
    if code in _MISSING_BUCKET:
        return DeployLockError(
            f"deploy lock bucket {where.bucket} does not exist; nothing was changed",
            hint="run `inv infra.init` (it creates the state bucket)",
        )
    if code in _DENIED:
        return DeployLockError(f"access denied to the deploy lock {where}; nothing was changed: {error_message(exc)}")
    return DeployLockError(f"deploy lock {where}: {error_message(exc)}")


def _server_age(answer: Mapping[str, Any]) -> float | None:
    try:
        date = parsedate_to_datetime(answer["ResponseMetadata"]["HTTPHeaders"]["date"])
        return max(0.0, float((date - answer["LastModified"]).total_seconds()))
    except (KeyError, TypeError, ValueError):
        return None


def observe(s3: Any, where: LockLocation) -> Seen | None:
    """The lock object as it is now, or None when nobody holds the lock."""
    try:
        answer = s3.get_object(Bucket=where.bucket, Key=where.key)
        body = answer["Body"].read()
    except ClientError as exc:
        if error_code(exc) in GONE:
            return None
        raise unusable(where, exc) from None
    except BotoCoreError as exc:
        raise DeployLockError(f"deploy lock {where}: {exc}") from None
    try:
        info, problem = parse(body), ""
    except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
        info, problem = None, str(exc)
    return Seen(etag=answer["ETag"], info=info, problem=problem, server_age_s=_server_age(answer))


def read(s3: Any, where: LockLocation) -> LockInfo | None:
    """The current holder, or None when nobody holds the lock."""
    seen = observe(s3, where)
    if seen is None:
        return None
    if seen.info is None:
        raise seen.not_a_lock(where)
    return seen.info
