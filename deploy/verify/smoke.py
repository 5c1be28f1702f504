"""Smoke cases: the events each function gets in verify, and the expectations its answers must meet.

The events are the project's, in invoke.yaml (``smoke:``, at the top level or per environment),
keyed by function key; a function with none is only imported ("import only"). A key that names no
deployed function is refused (``smoke_for``), with the closest key, before anything runs.

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
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from deploy.config import EnvConfig, FunctionTarget, SmokeCase, unknown_function
from deploy.errors import ConfigError

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
    """invoke.yaml's cases for ``key`` (none: the function is only imported), validated."""
    cases = env.verify.smoke.get(key, ())
    for case in cases:
        validate_expect(case.expect, f"smoke case {key}/{case.name}")
    return tuple(cases)


def smoke_for(env: EnvConfig, functions: Sequence[FunctionTarget]) -> dict[str, tuple[SmokeCase, ...]]:
    """Each function's cases; a smoke key that is none of ``functions`` (the deployed ones) is a
    ConfigError naming the closest key: its events would otherwise never run, without a word."""
    keys = [fn.key for fn in functions]
    unknown = sorted(set(env.verify.smoke) - set(keys))
    if unknown:
        raise ConfigError(
            "invoke.yaml smoke: " + "; ".join(unknown_function(key, keys) for key in unknown),
            hint="smoke events are keyed by the keys of Terraform's var.functions",
        )
    return {key: smoke_cases(env, key) for key in keys}


def _skip_reason(case: SmokeCase, environment: Mapping[str, str]) -> str | None:
    missing = [k for k in case.expect.get("requires_env", ()) if not environment.get(k)]
    return f"needs {', '.join(missing)} in the function's environment" if missing else None
