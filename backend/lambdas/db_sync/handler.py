"""db_sync Lambda: upsert rows by primary key into DATABASE_URL.

Events:
  ``{"source": "database", "dry_run": bool}`` copies from SOURCE_DATABASE_URL (an environment
  variable, so credentials never travel in event payloads or CloudWatch logs);
  ``{"source": "s3", "bucket": ..., "key": ..., "dry_run": bool}`` loads a JSON export shaped
  ``{"tables": {"<table>": [{<column>: <value>, ...}, ...]}}`` with datetimes as ISO 8601
  strings (naive ones read as UTC).
Optional ``"tables": [...]`` limits the copy to some tables. Each run is one transaction on the
target, so a failure half-way leaves it as it was; a dry run writes no rows (it may still
create missing tables, which the comparison needs).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from sqlalchemy import Connection, Engine, Table, insert, inspect, select, update

from app.aws import s3_client
from app.db import Base, UTCDateTime, create_schema, database_url, make_engine

logger = logging.getLogger(__name__)
logger.setLevel(os.environ.get("LOG_LEVEL", "INFO"))

SOURCES = ("database", "s3")
CHUNK = 500


@dataclass(frozen=True, kw_only=True)
class SyncRequest:
    source: str
    dry_run: bool
    tables: tuple[str, ...]
    bucket: str | None = None
    key: str | None = None

    @classmethod
    def from_event(cls, event: Any) -> SyncRequest:
        if event is None:
            event = {}
        if not isinstance(event, Mapping):
            raise ValueError(f"db_sync event must be a JSON object, got {type(event).__name__}")
        source = event.get("source", "database")
        if source not in SOURCES:
            raise ValueError(f"unknown db_sync source {source!r}; expected one of: {', '.join(SOURCES)}")
        dry_run = event.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise ValueError(f"db_sync 'dry_run' must be true or false, got {dry_run!r}")
        tables = _table_names(event.get("tables"))
        bucket = key = None
        if source == "s3":
            bucket, key = event.get("bucket"), event.get("key")
            if not isinstance(bucket, str) or not bucket or not isinstance(key, str) or not key:
                raise ValueError("db_sync source 's3' needs non-empty 'bucket' and 'key' strings")
        return cls(source=source, dry_run=dry_run, tables=tables, bucket=bucket, key=key)


@dataclass(kw_only=True)
class TableCounts:
    copied: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass(kw_only=True)
class SyncResult:
    tables: dict[str, TableCounts] = field(default_factory=dict)

    def as_dict(self, request: SyncRequest) -> dict[str, Any]:
        return {
            "source": request.source,
            "dry_run": request.dry_run,
            "copied": sum(c.copied for c in self.tables.values()),
            "updated": sum(c.updated for c in self.tables.values()),
            "unchanged": sum(c.unchanged for c in self.tables.values()),
            "tables": {name: vars(counts) for name, counts in self.tables.items()},
        }


def _known_tables() -> dict[str, Table]:
    # sorted_tables orders parents before children, so foreign keys hold during inserts.
    return {table.name: table for table in Base.metadata.sorted_tables}


def _table_names(raw: Any) -> tuple[str, ...]:
    known = _known_tables()
    if raw is None:
        return tuple(known)
    if not isinstance(raw, list) or not all(isinstance(name, str) for name in raw):
        raise ValueError("db_sync 'tables' must be a list of table names")
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ValueError(f"db_sync: unknown table(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return tuple(name for name in known if name in raw)


def handler(event: Any, context: Any) -> dict[str, Any]:
    request = SyncRequest.from_event(event)
    target_url = database_url()
    target = make_engine(target_url)
    try:
        create_schema(target)
        if request.source == "database":
            result = _sync_from_database(request, target, target_url)
        else:
            result = _sync_from_s3(request, target)
    finally:
        target.dispose()
    summary = result.as_dict(request)
    logger.info("db_sync finished: %s", summary)
    return summary


def _sync_from_database(request: SyncRequest, target: Engine, target_url: str) -> SyncResult:
    source_url = os.environ.get("SOURCE_DATABASE_URL", "").strip()
    if not source_url:
        raise ValueError("db_sync source 'database' needs SOURCE_DATABASE_URL to be set")
    if database_url({"DATABASE_URL": source_url}) == target_url:
        raise ValueError("SOURCE_DATABASE_URL and DATABASE_URL name the same database; nothing to copy")
    source = make_engine(source_url)
    try:
        present = set(inspect(source).get_table_names())
        missing = [name for name in request.tables if name not in present]
        if missing:
            raise ValueError(f"source database has no table(s) {', '.join(missing)}")
        tables = _known_tables()
        result = SyncResult()
        with source.connect() as read, target.begin() as write:
            for name in request.tables:
                table = tables[name]
                rows = (dict(row) for row in read.execute(select(table)).mappings())
                result.tables[name] = upsert_rows(write, table, rows, dry_run=request.dry_run)
        return result
    finally:
        source.dispose()


def _sync_from_s3(request: SyncRequest, target: Engine) -> SyncResult:
    body = s3_client().get_object(Bucket=request.bucket, Key=request.key)["Body"].read()
    export = parse_export(body, where=f"s3://{request.bucket}/{request.key}")
    tables = _known_tables()
    result = SyncResult()
    with target.begin() as write:
        for name in request.tables:
            table = tables[name]
            rows = (coerce_row(table, raw, where=f"{name}[{i}]") for i, raw in enumerate(export.get(name, [])))
            result.tables[name] = upsert_rows(write, table, rows, dry_run=request.dry_run)
    return result


def parse_export(body: bytes, *, where: str) -> dict[str, list[Any]]:
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"{where} is not valid JSON: {exc}") from None
    tables = document.get("tables") if isinstance(document, dict) else None
    if not isinstance(tables, dict):
        raise ValueError(f'{where} must be a JSON object with a "tables" object')
    known = _known_tables()
    unknown = sorted(set(tables) - set(known))
    if unknown:
        raise ValueError(f"{where} has unknown table(s) {', '.join(unknown)}; known: {', '.join(known)}")
    for name, rows in tables.items():
        if not isinstance(rows, list):
            raise ValueError(f"{where}: table {name!r} must be a list of row objects")
    return tables


def coerce_row(table: Table, raw: Any, *, where: str) -> dict[str, Any]:
    """Turn one exported JSON row into column values, rejecting anything the table does not hold."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: row must be an object, got {type(raw).__name__}")
    columns = {column.name: column for column in table.columns}
    unknown = sorted(set(raw) - set(columns))
    if unknown:
        raise ValueError(f"{where}: unknown column(s) {', '.join(unknown)} for table {table.name!r}")
    missing = sorted(set(columns) - set(raw))
    if missing:
        raise ValueError(f"{where}: missing column(s) {', '.join(missing)} for table {table.name!r}")
    row: dict[str, Any] = {}
    for name, value in raw.items():
        if isinstance(columns[name].type, UTCDateTime) and value is not None:
            row[name] = _parse_datetime(value, where=f"{where}.{name}")
        else:
            row[name] = value
    return row


def _parse_datetime(value: Any, *, where: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected an ISO 8601 string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{where}: {value!r} is not an ISO 8601 datetime") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def upsert_rows(conn: Connection, table: Table, rows: Iterable[dict[str, Any]], *, dry_run: bool) -> TableCounts:
    """Insert rows whose primary key is new, update those that differ, count the rest.

    Done as select-then-write instead of a dialect's ON CONFLICT so the same code runs on SQLite
    and PostgreSQL and can tell a copy from an update.
    """
    pk_columns = list(table.primary_key.columns)
    if len(pk_columns) != 1:
        raise ValueError(f"table {table.name!r} needs a single-column primary key to sync")
    pk = pk_columns[0]
    counts = TableCounts()
    seen: set[Any] = set()
    for chunk in _chunks(rows, CHUNK):
        keys = [row[pk.name] for row in chunk]
        for key in keys:
            if key in seen:
                raise ValueError(f"table {table.name!r}: primary key {key!r} appears twice in the source")
            seen.add(key)
        existing = {row[pk.name]: dict(row) for row in conn.execute(select(table).where(pk.in_(keys))).mappings()}
        inserts: list[dict[str, Any]] = []
        for row in chunk:
            current = existing.get(row[pk.name])
            if current is None:
                inserts.append(row)
                counts.copied += 1
            elif any(current.get(name) != value for name, value in row.items()):
                counts.updated += 1
                if not dry_run:
                    conn.execute(update(table).where(pk == row[pk.name]).values(**row))
            else:
                counts.unchanged += 1
        if inserts and not dry_run:
            conn.execute(insert(table), inserts)
    return counts


def _chunks(rows: Iterable[dict[str, Any]], size: int) -> Iterator[Sequence[dict[str, Any]]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk
