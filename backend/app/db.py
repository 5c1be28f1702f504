"""The relational schema shared by the API and the workers, and engine construction.

Lambda's task root is read-only, so the SQLite fallback lives in /tmp; production keeps its
PostgreSQL URL (reached through psycopg 3, the only driver in the layer) in Secrets Manager and
gives the function only the secret's ARN, DATABASE_URL_SECRET_ARN: the URL itself is never a
plain environment variable, nor in Terraform state.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

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


#: Secret values already read, by ARN. A Lambda container runs one invocation at a time and keeps
#: module state between them, so each container asks Secrets Manager once, on its first use.
_SECRETS: dict[str, str] = {}


def database_url(env: Mapping[str, str] | None = None, *, name: str = "DATABASE_URL") -> str:
    """The URL ``name`` names: the variable itself when set (local runs and the verify sandbox,
    which must never reach the real database), else the secret ``<name>_SECRET_ARN`` points at
    (deployed functions), else the SQLite fallback."""
    env = os.environ if env is None else env
    url = env.get(name, "").strip()
    if not url:
        arn = env.get(f"{name}_SECRET_ARN", "").strip()
        url = secret_value(arn) if arn else ""
    return normalise_url(url or DEFAULT_DATABASE_URL)


def secret_value(arn: str, *, client: Any = None) -> str:
    """The SecretString of ``arn``, read once per container (see _SECRETS); the region is the
    ARN's, the endpoint the emulator's where one is set (local)."""
    if arn not in _SECRETS:
        if client is None:
            from app.aws import secrets_client  # boto3 only where a secret is read

            client = secrets_client(region=arn.split(":")[3] if arn.count(":") >= 6 else None)
        try:
            value = client.get_secret_value(SecretId=arn).get("SecretString")
        except client.exceptions.ResourceNotFoundException:
            value = None  # a secret Terraform created but no admin has given a value yet
        if not isinstance(value, str) or not value.strip():
            # Raised, not defaulted: a function silently on the SQLite fallback would lose writes.
            raise RuntimeError(f"secret {arn} has no string value; set it with `aws secretsmanager put-secret-value`")
        _SECRETS[arn] = value.strip()
    return _SECRETS[arn]


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
