from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from app.db import Upload, UserSession, create_schema, make_engine
from lambdas.db_sync.handler import handler

T0 = datetime(2026, 5, 1, 8, 30, tzinfo=UTC)


def _rows(engine: Engine, model: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(select(model.__table__).order_by(model.__table__.c.id)).mappings()]


@pytest.fixture
def source_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    url = f"sqlite:///{tmp_path / 'source.db'}"
    monkeypatch.setenv("SOURCE_DATABASE_URL", url)
    engine = make_engine(url)
    create_schema(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(UserSession),
            [
                {"id": "s1", "user_id": "u1", "created_at": T0, "expires_at": T0 + timedelta(days=1)},
                {"id": "s2", "user_id": "u2", "created_at": T0, "expires_at": T0 + timedelta(days=7)},
            ],
        )
        conn.execute(insert(Upload), [{"id": 1, "s3_key": "uploads/a.jpg", "created_at": T0}])
    yield engine
    engine.dispose()


@pytest.fixture
def seeded_target(target_engine: Engine) -> Engine:
    with target_engine.begin() as conn:
        # s2 differs from the source (older expiry); upload 1 is identical.
        conn.execute(insert(UserSession), [{"id": "s2", "user_id": "u2", "created_at": T0, "expires_at": T0}])
        conn.execute(insert(Upload), [{"id": 1, "s3_key": "uploads/a.jpg", "created_at": T0}])
    return target_engine


def test_db_to_db_dry_run_counts_without_writing(source_engine: Engine, seeded_target: Engine) -> None:
    before = _rows(seeded_target, UserSession)
    result = handler({"source": "database", "dry_run": True}, None)
    assert (result["copied"], result["updated"], result["unchanged"]) == (1, 1, 1)
    assert result["tables"]["sessions"] == {"copied": 1, "updated": 1, "unchanged": 0}
    assert _rows(seeded_target, UserSession) == before


def test_db_to_db_upserts_by_primary_key(source_engine: Engine, seeded_target: Engine) -> None:
    result = handler({"source": "database"}, None)
    assert result == {
        "source": "database",
        "dry_run": False,
        "copied": 1,
        "updated": 1,
        "unchanged": 1,
        "tables": {
            "sessions": {"copied": 1, "updated": 1, "unchanged": 0},
            "uploads": {"copied": 0, "updated": 0, "unchanged": 1},
        },
    }
    assert _rows(seeded_target, UserSession) == _rows(source_engine, UserSession)
    again = handler({"source": "database"}, None)
    assert (again["copied"], again["updated"], again["unchanged"]) == (0, 0, 3)


def test_db_to_db_limited_to_named_tables(source_engine: Engine, target_engine: Engine) -> None:
    result = handler({"tables": ["uploads"]}, None)
    assert list(result["tables"]) == ["uploads"]
    assert _rows(target_engine, UserSession) == []


def test_db_to_db_needs_source_url() -> None:
    with pytest.raises(ValueError, match="SOURCE_DATABASE_URL"):
        handler({"source": "database"}, None)


def test_db_to_db_refuses_same_database(monkeypatch: pytest.MonkeyPatch, backend_env: str) -> None:
    monkeypatch.setenv("SOURCE_DATABASE_URL", backend_env)
    with pytest.raises(ValueError, match="same database"):
        handler({}, None)


def _export(s3: Any, document: Any, key: str = "exports/db.json") -> dict[str, Any]:
    s3.put_object(Bucket="bluemoxon-test", Key=key, Body=json.dumps(document).encode())
    return {"source": "s3", "bucket": "bluemoxon-test", "key": key}


def test_s3_export_is_upserted(s3: Any, seeded_target: Engine) -> None:
    event = _export(
        s3,
        {
            "tables": {
                "sessions": [
                    {
                        "id": "s2",
                        "user_id": "u2",
                        "created_at": "2026-05-01T08:30:00Z",
                        "expires_at": "2026-05-09T00:00:00+00:00",
                    },
                    {
                        "id": "s3",
                        "user_id": "u3",
                        "created_at": "2026-05-01T08:30:00",
                        "expires_at": "2026-05-02T10:30:00+02:00",
                    },
                ],
                "uploads": [{"id": 2, "s3_key": "uploads/b.jpg", "created_at": "2026-05-01T08:30:00Z"}],
            }
        },
    )
    result = handler(event, None)
    assert (result["source"], result["copied"], result["updated"], result["unchanged"]) == ("s3", 2, 1, 0)
    sessions = {row["id"]: row for row in _rows(seeded_target, UserSession)}
    assert sessions["s2"]["expires_at"] == datetime(2026, 5, 9, tzinfo=UTC)
    # A naive timestamp reads as UTC; an offset one is converted to UTC.
    assert sessions["s3"]["created_at"] == T0
    assert sessions["s3"]["expires_at"] == datetime(2026, 5, 2, 8, 30, tzinfo=UTC)
    assert [row["s3_key"] for row in _rows(seeded_target, Upload)] == ["uploads/a.jpg", "uploads/b.jpg"]


def test_s3_export_dry_run_writes_nothing(s3: Any, target_engine: Engine) -> None:
    event = _export(
        s3, {"tables": {"uploads": [{"id": 5, "s3_key": "uploads/e.jpg", "created_at": "2026-05-01T00:00:00Z"}]}}
    )
    assert handler({**event, "dry_run": True}, None)["copied"] == 1
    assert _rows(target_engine, Upload) == []


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"sessions": []}, 'must be a JSON object with a "tables" object'),
        ({"tables": {"users": []}}, "unknown table"),
        ({"tables": {"uploads": [{"id": 1, "s3_key": "k", "created_at": "2026-05-01", "size": 3}]}}, "unknown column"),
        ({"tables": {"uploads": [{"id": 1, "s3_key": "k"}]}}, "missing column"),
        ({"tables": {"uploads": [{"id": 1, "s3_key": "k", "created_at": "yesterday"}]}}, "not an ISO 8601"),
        (
            {
                "tables": {
                    "uploads": [
                        {"id": 1, "s3_key": "a", "created_at": "2026-05-01T00:00:00Z"},
                        {"id": 1, "s3_key": "b", "created_at": "2026-05-01T00:00:00Z"},
                    ]
                }
            },
            "appears twice",
        ),
    ],
)
def test_bad_s3_export_changes_nothing(s3: Any, target_engine: Engine, document: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        handler(_export(s3, document), None)
    assert _rows(target_engine, Upload) == []


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"source": "ftp"}, "unknown db_sync source 'ftp'"),
        ({"source": "s3", "bucket": "b"}, "needs non-empty 'bucket' and 'key'"),
        ({"tables": ["users"]}, "unknown table"),
        ({"dry_run": 1}, "must be true or false"),
    ],
)
def test_bad_events_raise_value_error(event: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        handler(event, None)
