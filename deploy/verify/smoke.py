"""Smoke cases: the events each function gets in verify, and the expectations its answers must meet.

Smoke expectations (``expect`` of a ``SmokeCase``; every key optional, all must hold):

``type``                   ``dict`` | ``list`` | ``str`` | ``int`` | ``number`` | ``bool`` | ``null``
``statusCode``             the response is a dict whose ``statusCode`` equals this (API Gateway proxy)
``keys``                   the response is a dict holding these keys
``equals``                 the response is a dict and each given key equals the given value
``numeric_values_except``  the response is a dict whose values are numbers, except under these keys
``json_body_keys``         the response ``body`` (base64-decoded if ``isBase64Encoded``) is a JSON object
                           holding these keys
``json_body_equals``       ...and each given body key equals the given value

Directives, also under ``expect``, that choose where a case runs rather than what it must return:

``requires_env``           names of environment variables the function must see; without them the
                           case is reported as skipped (e.g. the admin route needs the cleanup
                           function's name, which only a deployed API has)
``remote``                 ``false``: never send this case to the deployed alias (it would act on
                           real data or call real services); the sandbox still runs it
``without_aws``            expectations that replace the others when the case runs in a sandbox
                           with no AWS behind it (every environment but one with an emulator):
                           there a handler's AWS call fails at once, and this says what the
                           answer must then be (e.g. the API's "invoke failed" error shape)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from deploy.config import EnvConfig, SmokeCase
from deploy.errors import ConfigError


def _http_v2_event(method: str, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event; Mangum also takes REST (1.0) ones."""
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "verify.local", "content-type": "application/json", "user-agent": "deploy-verify"},
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "verify",
            "domainName": "verify.local",
            "domainPrefix": "verify",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "deploy-verify",
            },
            "requestId": "deploy-verify",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Jan/2024:00:00:00 +0000",
            "timeEpoch": 1704067200000,
        },
        "isBase64Encoded": False,
    }
    if body is not None:
        event["body"] = json.dumps(body)
    return event


def _sqs_event(message_id: str, body: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": message_id,
                "receiptHandle": "deploy-verify",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1704067200000"},
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:deploy-verify",
                "awsRegion": "us-east-1",
            }
        ]
    }


_VALID_RUNBOOK = json.dumps({"runbook_id": "deploy-verify", "steps": ["check"]})

DEFAULT_SMOKE: Mapping[str, tuple[SmokeCase, ...]] = {
    "api": (
        SmokeCase(
            name="health",
            event=_http_v2_event("GET", "/health"),
            expect={"statusCode": 200, "json_body_equals": {"status": "ok"}},
        ),
        SmokeCase(
            # Through the API to the cleanup function; the emulator does not run the invoked function,
            # so only the status and the envelope's shape are checked, not the counts inside it.
            name="admin-cleanup-dry-run",
            event=_http_v2_event("POST", "/admin/cleanup", {"action": "all", "dry_run": True}),
            # Without AWS (a sandbox outside `local`) the invoke is refused at once: the API must answer
            # with its error shape, not hang and not reach the real cleanup function.
            expect={
                "statusCode": 200,
                "json_body_keys": ["result"],
                "requires_env": ["CLEANUP_FUNCTION_NAME"],
                "without_aws": {"statusCode": 502, "json_body_equals": {"error": "cleanup_invoke_failed"}},
            },
        ),
    ),
    "cleanup": (
        SmokeCase(
            name="dry-run-all",
            event={"action": "all", "dry_run": True},
            expect={
                "type": "dict",
                "equals": {"action": "all", "dry_run": True},
                "numeric_values_except": ["action", "dry_run", "notes"],
            },
        ),
    ),
    "db_sync": (
        SmokeCase(
            # No tables: the run connects to both databases and commits nothing. The sandbox points
            # SOURCE_DATABASE_URL at its own SQLite file; remotely it needs the function's own setting.
            name="dry-run-no-tables",
            event={"source": "database", "dry_run": True, "tables": []},
            expect={
                "type": "dict",
                "equals": {"dry_run": True, "copied": 0, "updated": 0},
                "requires_env": ["SOURCE_DATABASE_URL"],
            },
        ),
    ),
    "eval_runbook_worker": (
        SmokeCase(
            # Valid and, in the sandbox, with no EVAL_API_URL: validated, not posted. Never sent to the
            # deployed worker, which would post it to the real evaluation API.
            name="valid-record",
            event=_sqs_event("deploy-verify-valid", _VALID_RUNBOOK),
            expect={"equals": {"batchItemFailures": []}, "remote": False},
        ),
        SmokeCase(
            # Invalid messages are returned to the queue without any outbound call: safe everywhere.
            name="invalid-record-returned",
            event=_sqs_event("deploy-verify-invalid", "not json"),
            expect={"equals": {"batchItemFailures": [{"itemIdentifier": "deploy-verify-invalid"}]}},
        ),
    ),
}

#: Environment the sandbox forces per function; ``{tmp}`` is the function's scratch directory.
#: The sandbox runs on the deployer's machine, outside the VPC: it must never reach the real


_TYPES: Mapping[str, Callable[[Any], bool]] = {
    "dict": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
_LIST_KEYS = ("keys", "json_body_keys", "numeric_values_except", "requires_env")
_MAP_KEYS = ("equals", "json_body_equals")
EXPECT_KEYS = frozenset({"type", "statusCode", "remote", "without_aws", *_LIST_KEYS, *_MAP_KEYS})
#: Keys that say where a case runs; they survive ``without_aws`` replacing the expectations.
_DIRECTIVES = ("requires_env", "remote")


def expectation_for(expect: Mapping[str, Any], *, aws: bool) -> Mapping[str, Any]:
    """The expectations that apply where the case runs: ``without_aws`` replaces the others there."""
    if aws or "without_aws" not in expect:
        return expect
    return {**{k: expect[k] for k in _DIRECTIVES if k in expect}, **expect["without_aws"]}


def validate_expect(expect: Mapping[str, Any], where: str) -> None:
    """Refuse an expectation we cannot evaluate before anything runs."""
    unknown = sorted(set(expect) - EXPECT_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown expect key(s) {', '.join(unknown)}; known: {', '.join(sorted(EXPECT_KEYS))}"
        )
    if "type" in expect and expect["type"] not in _TYPES:
        raise ConfigError(f"{where}: expect.type {expect['type']!r} is not one of {', '.join(_TYPES)}")
    if "statusCode" in expect and (not isinstance(expect["statusCode"], int) or isinstance(expect["statusCode"], bool)):
        raise ConfigError(f"{where}: expect.statusCode must be an integer")
    if "remote" in expect and not isinstance(expect["remote"], bool):
        raise ConfigError(f"{where}: expect.remote must be true or false")
    for key in _LIST_KEYS:
        if key in expect and (
            not isinstance(expect[key], list | tuple) or not all(isinstance(k, str) for k in expect[key])
        ):
            raise ConfigError(f"{where}: expect.{key} must be a list of strings")
    for key in _MAP_KEYS:
        if key in expect and not isinstance(expect[key], Mapping):
            raise ConfigError(f"{where}: expect.{key} must be a mapping")
    if "without_aws" in expect:
        inner = expect["without_aws"]
        if not isinstance(inner, Mapping) or any(k in inner for k in ("without_aws", *_DIRECTIVES)):
            raise ConfigError(f"{where}: expect.without_aws must be a mapping of expectations (no directives)")
        validate_expect(inner, f"{where} (without_aws)")


def _short(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, default=repr, sort_keys=True)
    return text if len(text) <= limit else text[:limit] + "…"


def _json_body(response: Any) -> tuple[Any, str | None]:
    if not isinstance(response, Mapping) or "body" not in response:
        return None, "response has no body"
    body = response["body"]
    if not isinstance(body, str):
        return None, f"body is {type(body).__name__}, not a string"
    if response.get("isBase64Encoded"):
        try:
            body = base64.b64decode(body).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            return None, f"body is not valid base64 UTF-8: {exc}"
    try:
        return json.loads(body), None
    except ValueError:
        return None, f"body is not JSON: {_short(body, 120)}"


def check_expect(expect: Mapping[str, Any], response: Any) -> list[str]:
    """Every way ``response`` misses ``expect``, each as 'expected … got …'; empty means it matches."""
    problems: list[str] = []
    if "type" in expect and not _TYPES[expect["type"]](response):
        problems.append(f"expected type {expect['type']}, got {type(response).__name__}: {_short(response)}")
    needs_dict = [k for k in ("statusCode", "keys", "equals", "numeric_values_except") if k in expect]
    if needs_dict and not isinstance(response, Mapping):
        problems.append(
            f"expected a dict (for {', '.join(needs_dict)}), got {type(response).__name__}: {_short(response)}"
        )
        return problems
    if "statusCode" in expect and response.get("statusCode") != expect["statusCode"]:
        body = response.get("body")
        problems.append(
            f"expected statusCode {expect['statusCode']}, got {response.get('statusCode')!r} (body: {_short(body)})"
        )
    if "keys" in expect:
        missing = [k for k in expect["keys"] if k not in response]
        if missing:
            problems.append(f"expected keys {list(expect['keys'])}, missing {missing}; got keys {sorted(response)}")
    for key, want in (expect.get("equals") or {}).items():
        got = response.get(key, "<missing>")
        if got != want:
            problems.append(f"expected {key} == {_short(want)}, got {_short(got)}")
    if "numeric_values_except" in expect:
        skip = set(expect["numeric_values_except"])
        bad = {k: v for k, v in response.items() if k not in skip and not _TYPES["number"](v)}
        if bad:
            problems.append(f"expected numeric values (except {sorted(skip)}), got non-numeric {_short(bad)}")
    if "json_body_keys" in expect or "json_body_equals" in expect:
        body, why = _json_body(response)
        if why is not None:
            problems.append(f"expected a JSON body, but {why}")
        elif not isinstance(body, Mapping):
            problems.append(f"expected a JSON object body, got {_short(body)}")
        else:
            missing = [k for k in expect.get("json_body_keys", ()) if k not in body]
            if missing:
                problems.append(
                    f"expected body keys {list(expect['json_body_keys'])}, missing {missing}: {_short(body)}"
                )
            for key, want in (expect.get("json_body_equals") or {}).items():
                got = body.get(key, "<missing>")
                if got != want:
                    problems.append(f"expected body {key} == {_short(want)}, got {_short(got)}")
    return problems


def smoke_cases(env: EnvConfig, key: str) -> tuple[SmokeCase, ...]:
    """invoke.yaml's cases for ``key`` when it has any, otherwise ours; validated either way."""
    cases = env.verify.smoke.get(key) or DEFAULT_SMOKE.get(key, ())
    for case in cases:
        validate_expect(case.expect, f"smoke case {key}/{case.name}")
    return tuple(cases)


def _skip_reason(case: SmokeCase, environment: Mapping[str, str]) -> str | None:
    missing = [k for k in case.expect.get("requires_env", ()) if not environment.get(k)]
    return f"needs {', '.join(missing)} in the function's environment" if missing else None
