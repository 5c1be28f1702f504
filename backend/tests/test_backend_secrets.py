"""The database URL on Lambda: read from Secrets Manager by ARN, once per container; a
DATABASE_URL variable (local runs, the verify sandbox) wins and reads no secret."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from app import db

URL = "postgresql://app:pw@db.internal:5432/app"


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[str]]]:
    """A secret holding URL, its ARN in DATABASE_URL_SECRET_ARN and no DATABASE_URL; yields the
    ARN and the list of GetSecretValue calls made (counted on every client boto3 creates)."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr(db, "_SECRETS", {})
    calls: list[str] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        calls.append(params["SecretId"])

    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        arn = client.create_secret(Name="bluemoxon-test/database-url", SecretString=URL)["ARN"]
        monkeypatch.setenv("DATABASE_URL_SECRET_ARN", arn)
        boto3.setup_default_session()  # the session the function's client comes from
        assert boto3.DEFAULT_SESSION is not None
        boto3.DEFAULT_SESSION.events.register("before-parameter-build.secrets-manager.GetSecretValue", count)
        yield arn, calls
        boto3.DEFAULT_SESSION = None


def test_the_url_is_read_from_the_secret_once_per_container(secret: tuple[str, list[str]]) -> None:
    arn, calls = secret
    first = db.database_url()  # first invocation of a container
    second = db.database_url()  # the next one, same container
    assert first == second == "postgresql+psycopg://app:pw@db.internal:5432/app"
    assert calls == [arn]


def test_a_database_url_variable_wins_and_reads_no_secret(
    secret: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, calls = secret
    monkeypatch.setenv("DATABASE_URL", "sqlite:////tmp/sandbox.db")
    assert db.database_url() == "sqlite:////tmp/sandbox.db"
    assert calls == []


def test_neither_falls_back_to_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert db.database_url() == db.DEFAULT_DATABASE_URL


def test_a_secret_without_a_value_is_refused_not_defaulted(secret: tuple[str, list[str]]) -> None:
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        arn = client.create_secret(Name="bluemoxon-test/empty")["ARN"]
        with pytest.raises(RuntimeError, match="has no string value"):
            db.secret_value(arn, client=client)
