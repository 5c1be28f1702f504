from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from fastapi.testclient import TestClient

from app import config
from app.aws import lambda_client
from app.config import Settings
from app.main import app, handler
from app.routes.admin import get_lambda_client_factory


def _payload(value: Any) -> StreamingBody:
    raw = json.dumps(value).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


@pytest.fixture
def stubbed_lambda(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A real botocore Lambda client with canned answers, handed to the route through its factory."""
    monkeypatch.setenv("CLEANUP_FUNCTION_NAME", "bluemoxon-test-cleanup")
    lambda_api = boto3.client("lambda", region_name="us-east-1")
    seen: list[Settings] = []

    def factory(settings: Settings) -> Any:
        seen.append(settings)
        return lambda_api

    app.dependency_overrides[get_lambda_client_factory] = lambda: factory
    with Stubber(lambda_api) as stubber:
        stubber.seen = seen  # type: ignore[attr-defined]
        yield stubber
        stubber.assert_no_pending_responses()


def test_health_reports_version_file(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    expected = (Path(__file__).parent.parent / "VERSION").read_text().strip()
    assert response.json() == {"status": "ok", "version": expected}


def test_health_version_unknown_without_file(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(config, "VERSION_FILE", tmp_path / "missing")
    config.app_version.cache_clear()
    try:
        assert client.get("/health").json() == {"status": "ok", "version": "unknown"}
    finally:
        config.app_version.cache_clear()


def test_mangum_handler_serves_http_api_event() -> None:
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/health",
        "rawQueryString": "",
        "headers": {"host": "api.example.test"},
        "requestContext": {
            "http": {"method": "GET", "path": "/health", "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1"},
            "stage": "$default",
        },
        "isBase64Encoded": False,
    }
    response = handler(event, object())
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["status"] == "ok"


def test_cleanup_invokes_function_and_relays_counts(client: TestClient, stubbed_lambda: Stubber) -> None:
    counts = {"action": "orphans", "dry_run": False, "stale_sessions": 0, "orphaned_objects": 2, "deleted": 2}
    stubbed_lambda.add_response(
        "invoke",
        {"StatusCode": 200, "Payload": _payload(counts)},
        expected_params={
            "FunctionName": "bluemoxon-test-cleanup",
            "InvocationType": "RequestResponse",
            "Payload": json.dumps({"action": "orphans", "dry_run": False}).encode(),
        },
    )
    response = client.post("/admin/cleanup", json={"action": "orphans", "dry_run": False})
    assert response.status_code == 200
    assert response.json() == {"action": "orphans", "dry_run": False, "result": counts}
    assert [s.cleanup_function_name for s in stubbed_lambda.seen] == ["bluemoxon-test-cleanup"]  # type: ignore[attr-defined]


def test_cleanup_defaults_to_dry_run(client: TestClient, stubbed_lambda: Stubber) -> None:
    stubbed_lambda.add_response(
        "invoke",
        {"StatusCode": 200, "Payload": _payload({"deleted": 0})},
        expected_params={
            "FunctionName": "bluemoxon-test-cleanup",
            "InvocationType": "RequestResponse",
            "Payload": json.dumps({"action": "all", "dry_run": True}).encode(),
        },
    )
    response = client.post("/admin/cleanup", json={"action": "all"})
    assert response.status_code == 200
    assert response.json()["dry_run"] is True


@pytest.mark.parametrize(
    "body",
    [
        {"action": "everything", "dry_run": True},
        {"dry_run": True},
        {"action": "all", "dry_run": "yes"},
        {"action": "all", "dry_run": True, "force": True},
    ],
)
def test_cleanup_rejects_bad_input_with_422(client: TestClient, stubbed_lambda: Stubber, body: dict[str, Any]) -> None:
    response = client.post("/admin/cleanup", json=body)
    assert response.status_code == 422
    assert stubbed_lambda.seen == []  # type: ignore[attr-defined]


def test_cleanup_without_function_name_is_a_clear_500(client: TestClient) -> None:
    def factory(settings: Settings) -> Any:
        raise AssertionError("no client may be built without a function name")

    app.dependency_overrides[get_lambda_client_factory] = lambda: factory
    response = client.post("/admin/cleanup", json={"action": "all", "dry_run": True})
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "cleanup_not_configured"
    assert "CLEANUP_FUNCTION_NAME" in body["message"]


def test_cleanup_function_error_is_502(client: TestClient, stubbed_lambda: Stubber) -> None:
    error = {"errorMessage": "unknown cleanup action 'x'", "errorType": "ValueError", "stackTrace": []}
    stubbed_lambda.add_response("invoke", {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": _payload(error)})
    response = client.post("/admin/cleanup", json={"action": "stale", "dry_run": True})
    assert response.status_code == 502
    body = response.json()
    assert body["error"] == "cleanup_failed"
    assert body["function_error"] == "Unhandled"
    assert body["message"] == "ValueError: unknown cleanup action 'x'"
    assert body["details"] == error


def test_cleanup_invoke_client_error_is_502(client: TestClient, stubbed_lambda: Stubber) -> None:
    stubbed_lambda.add_client_error(
        "invoke",
        service_error_code="ResourceNotFoundException",
        service_message="Function not found",
        http_status_code=404,
    )
    response = client.post("/admin/cleanup", json={"action": "all", "dry_run": True})
    assert response.status_code == 502
    assert response.json()["code"] == "ResourceNotFoundException"
    assert response.json()["function"] == "bluemoxon-test-cleanup"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}, "http://127.0.0.1:5000"),
        (
            {"AWS_ENDPOINT_URL": "http://127.0.0.1:5000", "AWS_ENDPOINT_URL_LAMBDA": "http://127.0.0.1:5001"},
            "http://127.0.0.1:5001",
        ),
    ],
)
def test_settings_pick_lambda_endpoint(env: dict[str, str], expected: str | None) -> None:
    settings = Settings.from_env({"CLEANUP_FUNCTION_NAME": " fn ", **env})
    assert settings.cleanup_function_name == "fn"
    assert settings.lambda_endpoint_url == expected
    if expected is not None:
        assert lambda_client(settings).meta.endpoint_url == expected


def test_blank_function_name_counts_as_unset() -> None:
    assert Settings.from_env({"CLEANUP_FUNCTION_NAME": "  "}).cleanup_function_name is None
