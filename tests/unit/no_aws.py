"""No AWS at all: poisoned AWS variables, and a botocore event hook on every client that fails any request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import botocore.session
import pytest


def forbid_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """What tried to reach AWS (a request about to be sent, a credentials lookup): empty means nothing did."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAPOISONEDPOISONED")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "poisoned")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "poisoned")
    monkeypatch.setenv("AWS_PROFILE", "poisoned-no-such-profile")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-such-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-such-credentials"))
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:9/poisoned")
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9/")
    attempts: list[str] = []
    create_client = botocore.session.Session.create_client
    get_credentials = botocore.session.Session.get_credentials

    def refuse(**kwargs: Any) -> None:
        attempts.append(str(kwargs.get("event_name")))
        raise AssertionError(f"an AWS request was about to be sent: {kwargs.get('event_name')}")

    def hooked(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = create_client(self, *args, **kwargs)
        client.meta.events.register("before-send", refuse)
        return client

    def no_credentials(self: Any) -> Any:
        attempts.append("credentials looked up")
        return get_credentials(self)

    monkeypatch.setattr(botocore.session.Session, "create_client", hooked)
    monkeypatch.setattr(botocore.session.Session, "get_credentials", no_credentials)
    return attempts
