from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from lambdas.eval_runbook_worker.handler import handler

URL = "https://eval.example.test/v1/evaluations"


def _record(message_id: str, body: Any) -> dict[str, Any]:
    return {"messageId": message_id, "body": body if isinstance(body, str) else json.dumps(body)}


def _valid(runbook_id: str) -> dict[str, Any]:
    return {"runbook_id": runbook_id, "steps": ["check disk", "restart service"]}


@pytest.fixture
def eval_url(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("EVAL_API_URL", URL)
    return URL


@respx.mock
def test_posts_each_valid_message(eval_url: str) -> None:
    route = respx.post(eval_url).mock(return_value=httpx.Response(202, json={"queued": True}))
    body = {**_valid("rb-1"), "callback": "https://hooks.example.test/done", "priority": "high"}
    event = {"Records": [_record("m1", body), _record("m2", _valid("rb-2"))]}
    assert handler(event, None) == {"batchItemFailures": [], "processed": 2, "posted": 2}
    assert route.call_count == 2
    first = route.calls[0].request
    # Unknown fields are dropped, the callback is normalised, the message id travels along.
    assert json.loads(first.content) == {
        "runbook_id": "rb-1",
        "steps": ["check disk", "restart service"],
        "callback": "https://hooks.example.test/done",
    }
    assert first.headers["Idempotency-Key"] == "m1"


@respx.mock
def test_invalid_bodies_are_reported_and_others_still_posted(eval_url: str) -> None:
    route = respx.post(eval_url).mock(return_value=httpx.Response(200))
    event = {
        "Records": [
            _record("ok", _valid("rb-1")),
            _record("no-steps", {"runbook_id": "rb-2", "steps": []}),
            _record("no-id", {"steps": ["a"]}),
            _record("not-json", "{runbook"),
            {"messageId": "no-body"},
            _record("bad-callback", {**_valid("rb-3"), "callback": "not a url"}),
        ]
    }
    result = handler(event, None)
    assert result["batchItemFailures"] == [
        {"itemIdentifier": "no-steps"},
        {"itemIdentifier": "no-id"},
        {"itemIdentifier": "not-json"},
        {"itemIdentifier": "no-body"},
        {"itemIdentifier": "bad-callback"},
    ]
    assert (result["processed"], result["posted"], route.call_count) == (6, 1, 1)


@respx.mock
def test_http_failures_are_reported(eval_url: str) -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        runbook_id = json.loads(request.content)["runbook_id"]
        if runbook_id == "rb-down":
            return httpx.Response(500, json={"error": "boom"})
        if runbook_id == "rb-unreachable":
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(201)

    respx.post(eval_url).mock(side_effect=respond)
    event = {
        "Records": [
            _record("m1", _valid("rb-ok")),
            _record("m2", _valid("rb-down")),
            _record("m3", _valid("rb-unreachable")),
        ]
    }
    result = handler(event, None)
    assert result["batchItemFailures"] == [{"itemIdentifier": "m2"}, {"itemIdentifier": "m3"}]
    assert result["posted"] == 1


@respx.mock(assert_all_mocked=True)
def test_without_url_only_validates() -> None:
    event = {"Records": [_record("m1", _valid("rb-1")), _record("m2", {"runbook_id": ""})]}
    assert handler(event, None) == {"batchItemFailures": [{"itemIdentifier": "m2"}], "processed": 2, "posted": 0}
    assert respx.calls.call_count == 0


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({}, "expects an SQS event"),
        ({"Records": [{"body": "{}"}]}, "SQS record 0 has no messageId"),
    ],
)
def test_malformed_events_fail_the_whole_batch(event: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        handler(event, None)


def test_bad_timeout_setting(monkeypatch: pytest.MonkeyPatch, eval_url: str) -> None:
    monkeypatch.setenv("EVAL_API_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="EVAL_API_TIMEOUT"):
        handler({"Records": []}, None)
