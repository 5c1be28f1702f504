"""Fixtures for the backend's tests: a clean environment per test, SQLite in tmp_path, moto S3."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient
from moto import mock_aws
from sqlalchemy import Engine

from app.db import create_schema, make_engine
from app.main import app

# Every variable the backend reads; each test starts with none of them set unless it sets them.
BACKEND_VARS = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_LAMBDA",
    "AWS_ENDPOINT_URL_S3",
    "AWS_PROFILE",
    "AWS_REGION",
    "CLEANUP_FUNCTION_NAME",
    "CLEANUP_INVOKE_TIMEOUT",
    "CLEANUP_BUCKET",
    "CLEANUP_PREFIX",
    "CLEANUP_GRACE_HOURS",
    "SOURCE_DATABASE_URL",
    "DATABASE_URL_SECRET_ARN",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "EVAL_API_URL",
    "EVAL_API_TIMEOUT",
)


@pytest.fixture(autouse=True)
def backend_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Isolate each test: fake credentials (moto needs some, real ones must never be used)
    and a fresh SQLite file as DATABASE_URL. Returns that URL."""
    for name in BACKEND_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    url = f"sqlite:///{tmp_path / 'target.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    return url


@pytest.fixture
def target_engine(backend_env: str) -> Iterator[Engine]:
    engine = make_engine(backend_env)
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client
    app.dependency_overrides.clear()


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        s3_client = boto3.client("s3", region_name="us-east-1")
        s3_client.create_bucket(Bucket="bluemoxon-test")
        yield s3_client
