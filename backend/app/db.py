"""The relational schema shared by the API and the workers, and engine construction.

Lambda's task root is read-only, so the SQLite fallback lives in /tmp; production sets
DATABASE_URL to PostgreSQL, reached through psycopg 3 (the only driver in the layer).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy import DateTime, Engine, Integer, String, create_engine
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

DEFAULT_DATABASE_URL = "sqlite:////tmp/bluemoxon.db"


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python, naive UTC in the column.

    SQLite keeps no offset, so without this a value read back is naive and cannot be compared
    with `datetime.now(UTC)`; storing UTC everywhere makes both engines agree.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; use an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class UserSession(Base):
    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class Upload(Base):
    __tablename__ = "uploads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    s3_key: Mapped[str] = mapped_column(String(1024), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


def database_url(env: Mapping[str, str] | None = None, *, name: str = "DATABASE_URL") -> str:
    env = os.environ if env is None else env
    return normalise_url(env.get(name, "").strip() or DEFAULT_DATABASE_URL)


def normalise_url(url: str) -> str:
    """Point bare PostgreSQL URLs at psycopg 3: SQLAlchemy's default driver for them is psycopg2."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str) -> Engine:
    # pool_pre_ping: a frozen Lambda sandbox can thaw holding a connection the server has closed.
    return create_engine(normalise_url(url), pool_pre_ping=True)


def create_schema(engine: Engine) -> None:
    Base.metadata.create_all(engine)
