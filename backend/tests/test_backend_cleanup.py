from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select

from app.db import Upload, UserSession
from lambdas.cleanup import handler as cleanup
from lambdas.cleanup.handler import OrphanSettings, handler, sweep_orphans

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _seed_sessions(engine: Engine, *, expired: int, live: int) -> None:
    rows = [
        {
            "id": f"old-{i}",
            "user_id": "u1",
            "created_at": NOW - timedelta(days=30),
            "expires_at": NOW - timedelta(hours=i + 1),
        }
        for i in range(expired)
    ] + [
        {"id": f"live-{i}", "user_id": "u2", "created_at": NOW, "expires_at": NOW + timedelta(hours=i + 1)}
        for i in range(live)
    ]
    with engine.begin() as conn:
        conn.execute(insert(UserSession), rows)


def _session_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(UserSession)).scalar_one()


@pytest.fixture
def frozen_now(monkeypatch: pytest.MonkeyPatch) -> datetime:
    monkeypatch.setattr(cleanup, "utcnow", lambda: NOW)
    return NOW


def test_empty_environment_dry_run_returns_counts() -> None:
    result = handler({"action": "all", "dry_run": True}, None)
    assert result == {
        "action": "all",
        "dry_run": True,
        "stale_sessions": 0,
        "orphaned_objects": 0,
        "deleted": 0,
        "notes": ["CLEANUP_BUCKET is not set; S3 orphan sweep skipped"],
    }


@pytest.mark.parametrize("action", ["stale", "expired_sessions"])
def test_dry_run_counts_expired_sessions_without_deleting(
    target_engine: Engine, frozen_now: datetime, action: str
) -> None:
    _seed_sessions(target_engine, expired=3, live=2)
    result = handler({"action": action, "dry_run": True}, None)
    assert (result["stale_sessions"], result["deleted"]) == (3, 0)
    assert _session_count(target_engine) == 5


def test_delete_removes_only_expired_sessions(target_engine: Engine, frozen_now: datetime) -> None:
    _seed_sessions(target_engine, expired=3, live=2)
    result = handler({"action": "stale", "dry_run": False}, None)
    assert (result["stale_sessions"], result["deleted"]) == (3, 3)
    with target_engine.connect() as conn:
        assert sorted(conn.execute(select(UserSession.id)).scalars()) == ["live-0", "live-1"]
    assert handler({"action": "stale", "dry_run": False}, None)["stale_sessions"] == 0


def test_dry_run_defaults_to_false_for_scheduled_runs(target_engine: Engine, frozen_now: datetime) -> None:
    _seed_sessions(target_engine, expired=1, live=0)
    assert handler({"action": "stale"}, None)["deleted"] == 1


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"action": "everything"}, "unknown cleanup action 'everything'; expected one of: all, expired_sessions"),
        ({"action": "all", "dry_run": "yes"}, "'dry_run' must be true or false"),
        (["all"], "must be a JSON object"),
    ],
)
def test_bad_events_raise_value_error(event: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        handler(event, None)


def _put_uploads(s3: Any, target_engine: Engine) -> None:
    for key in ("uploads/kept.jpg", "uploads/orphan-1.jpg", "uploads/nested/orphan-2.png", "avatars/other.jpg"):
        s3.put_object(Bucket="bluemoxon-test", Key=key, Body=b"x")
    with target_engine.begin() as conn:
        conn.execute(insert(Upload), [{"id": 1, "s3_key": "uploads/kept.jpg", "created_at": NOW}])


def _keys(s3: Any) -> list[str]:
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket="bluemoxon-test").get("Contents", []))


def test_orphans_dry_run_then_delete(s3: Any, target_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    _put_uploads(s3, target_engine)
    monkeypatch.setenv("CLEANUP_BUCKET", "bluemoxon-test")
    # The objects were just written; two days on they are past the 24 h grace period.
    monkeypatch.setattr(cleanup, "utcnow", lambda: datetime.now(UTC) + timedelta(days=2))

    dry = handler({"action": "orphans", "dry_run": True}, None)
    assert (dry["orphaned_objects"], dry["deleted"], dry["stale_sessions"]) == (2, 0, 0)
    assert len(_keys(s3)) == 4

    real = handler({"action": "orphans", "dry_run": False}, None)
    assert (real["orphaned_objects"], real["deleted"]) == (2, 2)
    assert _keys(s3) == ["avatars/other.jpg", "uploads/kept.jpg"]


def test_all_counts_sessions_and_orphans_together(
    s3: Any, target_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _put_uploads(s3, target_engine)
    _seed_sessions(target_engine, expired=2, live=1)
    monkeypatch.setenv("CLEANUP_BUCKET", "bluemoxon-test")
    monkeypatch.setattr(cleanup, "utcnow", lambda: datetime.now(UTC) + timedelta(days=365 * 5))
    result = handler({"action": "all", "dry_run": False}, None)
    # Five years on, every seeded session (expiring around NOW) has expired.
    assert result == {
        "action": "all",
        "dry_run": False,
        "stale_sessions": 3,
        "orphaned_objects": 2,
        "deleted": 5,
        "notes": [],
    }


def test_orphans_inside_grace_period_are_kept(s3: Any, target_engine: Engine) -> None:
    _put_uploads(s3, target_engine)
    settings = OrphanSettings(bucket="bluemoxon-test", prefix="uploads/", grace=timedelta(hours=24))
    assert sweep_orphans(target_engine, settings, now=datetime.now(UTC), dry_run=False) == (0, 0)
    later = datetime.now(UTC) + timedelta(hours=25)
    assert sweep_orphans(target_engine, settings, now=later, dry_run=True) == (2, 0)
    assert len(_keys(s3)) == 4


def test_orphan_settings_from_env() -> None:
    settings = OrphanSettings.from_env({"CLEANUP_BUCKET": "b", "CLEANUP_PREFIX": "media/", "CLEANUP_GRACE_HOURS": "2"})
    assert settings == OrphanSettings(bucket="b", prefix="media/", grace=timedelta(hours=2))
    assert OrphanSettings.from_env({}).prefix == "uploads/"
    with pytest.raises(ValueError, match="CLEANUP_GRACE_HOURS must be a number"):
        OrphanSettings.from_env({"CLEANUP_GRACE_HOURS": "a day"})
