"""Cleanup Lambda: expired sessions in the database, orphaned objects in S3.

Event: ``{"action": "all" | "stale" | "expired_sessions" | "orphans", "dry_run": bool}``.
The schedule that drives this function exists to delete, so ``dry_run`` defaults to false here;
the admin API defaults it to true before it invokes us.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, select

from app.aws import s3_client
from app.db import Upload, UserSession, create_schema, database_url, make_engine

logger = logging.getLogger(__name__)
logger.setLevel(os.environ.get("LOG_LEVEL", "INFO"))

SESSIONS = "sessions"
ORPHANS = "orphans"
# "stale" and "expired_sessions" both name the session sweep: the first is what the admin UI
# always sent, the second says what it does.
ACTIONS: dict[str, tuple[str, ...]] = {
    "all": (SESSIONS, ORPHANS),
    "stale": (SESSIONS,),
    "expired_sessions": (SESSIONS,),
    "orphans": (ORPHANS,),
}
DEFAULT_PREFIX = "uploads/"
DEFAULT_GRACE_HOURS = 24.0
# S3 DeleteObjects takes at most 1000 keys per call.
DELETE_BATCH = 1000


@dataclass(frozen=True, kw_only=True)
class CleanupRequest:
    action: str
    dry_run: bool

    @classmethod
    def from_event(cls, event: Any) -> CleanupRequest:
        if event is None:
            event = {}
        if not isinstance(event, Mapping):
            raise ValueError(f"cleanup event must be a JSON object, got {type(event).__name__}")
        action = event.get("action", "all")
        if action not in ACTIONS:
            raise ValueError(f"unknown cleanup action {action!r}; expected one of: {', '.join(sorted(ACTIONS))}")
        dry_run = event.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise ValueError(f"cleanup 'dry_run' must be true or false, got {dry_run!r}")
        return cls(action=action, dry_run=dry_run)


@dataclass(frozen=True, kw_only=True)
class OrphanSettings:
    bucket: str | None
    prefix: str
    grace: timedelta

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OrphanSettings:
        env = os.environ if env is None else env
        raw_grace = env.get("CLEANUP_GRACE_HOURS", "").strip() or str(DEFAULT_GRACE_HOURS)
        try:
            hours = float(raw_grace)
        except ValueError:
            raise ValueError(f"CLEANUP_GRACE_HOURS must be a number of hours, got {raw_grace!r}") from None
        if hours < 0:
            raise ValueError(f"CLEANUP_GRACE_HOURS must not be negative, got {raw_grace!r}")
        prefix = env.get("CLEANUP_PREFIX")
        return cls(
            bucket=env.get("CLEANUP_BUCKET", "").strip() or None,
            prefix=DEFAULT_PREFIX if prefix is None else prefix,
            grace=timedelta(hours=hours),
        )


def utcnow() -> datetime:
    """The clock every comparison uses; one seam so tests can move time instead of sleeping."""
    return datetime.now(UTC)


def handler(event: Any, context: Any) -> dict[str, Any]:
    request = CleanupRequest.from_event(event)
    steps = ACTIONS[request.action]
    now = utcnow()
    result: dict[str, Any] = {
        "action": request.action,
        "dry_run": request.dry_run,
        "stale_sessions": 0,
        "orphaned_objects": 0,
        "deleted": 0,
        "notes": [],
    }
    engine = make_engine(database_url())
    try:
        create_schema(engine)
        if SESSIONS in steps:
            found, deleted = sweep_sessions(engine, now=now, dry_run=request.dry_run)
            result["stale_sessions"] = found
            result["deleted"] += deleted
        if ORPHANS in steps:
            settings = OrphanSettings.from_env()
            if settings.bucket is None:
                result["notes"].append("CLEANUP_BUCKET is not set; S3 orphan sweep skipped")
            else:
                found, deleted = sweep_orphans(engine, settings, now=now, dry_run=request.dry_run)
                result["orphaned_objects"] = found
                result["deleted"] += deleted
    finally:
        engine.dispose()
    logger.info("cleanup finished: %s", result)
    return result


def sweep_sessions(engine: Engine, *, now: datetime, dry_run: bool) -> tuple[int, int]:
    """Return (expired sessions found, sessions deleted)."""
    expired = UserSession.expires_at < now
    with engine.begin() as conn:
        found = conn.execute(select(func.count()).select_from(UserSession).where(expired)).scalar_one()
        if dry_run or found == 0:
            return found, 0
        deleted = conn.execute(delete(UserSession).where(expired)).rowcount
    return found, deleted


def sweep_orphans(engine: Engine, settings: OrphanSettings, *, now: datetime, dry_run: bool) -> tuple[int, int]:
    """Return (orphaned objects found, objects deleted).

    An object is an orphan when no uploads row names its key and it is older than the grace
    period; the grace period covers an upload whose object landed before its row committed.
    """
    assert settings.bucket is not None
    with engine.connect() as conn:
        referenced = set(
            conn.execute(select(Upload.s3_key).where(Upload.s3_key.startswith(settings.prefix, autoescape=True)))
            .scalars()
            .all()
        )
    s3 = s3_client()
    cutoff = now - settings.grace
    orphans = [
        key
        for key, modified in _list_objects(s3, settings.bucket, settings.prefix)
        if key not in referenced and modified < cutoff and not key.endswith("/")
    ]
    if dry_run or not orphans:
        return len(orphans), 0
    deleted = 0
    failures: list[str] = []
    for start in range(0, len(orphans), DELETE_BATCH):
        batch = orphans[start : start + DELETE_BATCH]
        response = s3.delete_objects(
            Bucket=settings.bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True}
        )
        errors = response.get("Errors", [])
        failures.extend(f"{error.get('Key')}: {error.get('Code')}" for error in errors)
        deleted += len(batch) - len(errors)
    if failures:
        # Counted deletions already happened; report the rest so the run is retried, not hidden.
        raise RuntimeError(
            f"could not delete {len(failures)} of {len(orphans)} orphaned objects in s3://{settings.bucket}: "
            + "; ".join(failures[:10])
        )
    return len(orphans), deleted


def _list_objects(s3: Any, bucket: str, prefix: str) -> Iterator[tuple[str, datetime]]:
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield item["Key"], item["LastModified"]
