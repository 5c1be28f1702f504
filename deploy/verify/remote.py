"""The remote invoke on real AWS: the only verify path that touches the account, as the deployer,
outside the sandbox. Invokes the alias with each remote-safe case, then scans its recent logs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from deploy.config import EnvConfig, FunctionTarget, SmokeCase
from deploy.errors import VerifyError
from deploy.invoke_result import read_invoke
from deploy.verify.results import FunctionVerify, SmokeResult
from deploy.verify.smoke import _short, _skip_reason, check_expect

#: Log events a little older than our first invoke still count (clock skew), but not an earlier
#: deploy's errors that were already rolled back.
LOG_LOOKBACK_MS = 30 * 1000
#: How long past the function's own timeout we wait for an invoke's answer (Lambda's timeout
#: error included): the connection, the init phase, the payload.
INVOKE_READ_MARGIN_S = 30.0
#: Lambda's longest function timeout, for a function whose timeout we do not know.
MAX_FUNCTION_TIMEOUT_S = 900.0


def invoke_config(function_timeout_s: float) -> Any:
    """One attempt, and a read timeout past the function's timeout.

    Invocations are not idempotent: botocore's standard mode re-sends one whose read timed out
    while the first still runs (a second cleanup beside the first), and its 60 s read timeout
    is shorter than most of these functions' timeouts.
    """
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        read_timeout=function_timeout_s + INVOKE_READ_MARGIN_S,
    )


def _with_remote(result: FunctionVerify, remote_results: Sequence[SmokeResult]) -> FunctionVerify:
    merged = (*result.results, *remote_results)
    return replace(result, results=merged, ok=result.ok and all(r.ok for r in remote_results))


def remote_check(
    env: EnvConfig,
    fn: FunctionTarget,
    cases: Sequence[SmokeCase],
    environment: Mapping[str, str],
    *,
    alias: str = "live",
    function_timeout_s: float = MAX_FUNCTION_TIMEOUT_S,
    lam: Any = None,
    logs: Any = None,
    now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
) -> list[SmokeResult]:
    """Invoke the alias with each remote-safe case, then look for import errors in its recent logs."""
    from deploy.aws.calls import client

    lam = lam or client(env, "lambda", config=invoke_config(function_timeout_s))
    logs = logs or client(env, "logs")
    started = now_ms()
    out: list[SmokeResult] = []
    for case in cases:
        if case.expect.get("remote") is False:
            continue
        reason = _skip_reason(case, environment)
        if reason:
            out.append(
                SmokeResult(
                    case=case.name,
                    ok=True,
                    summary=f"skipped: {reason}",
                    duration_ms=0.0,
                    skipped=reason,
                    where="remote",
                )
            )
            continue
        t0 = time.perf_counter()
        resp = lam.invoke(
            FunctionName=fn.name,
            Qualifier=alias,
            InvocationType="RequestResponse",
            LogType="Tail",
            Payload=json.dumps(case.event).encode(),
        )
        duration = round((time.perf_counter() - t0) * 1000, 2)
        payload, log_tail = read_invoke(resp)
        error: str | None = None
        summary = "ok"
        if resp.get("FunctionError") or "Runtime.ImportModuleError" in log_tail:
            summary = "function error"
            if isinstance(payload, Mapping) and "errorMessage" in payload:
                error = f"{payload.get('errorType', 'Error')}: {payload['errorMessage']}"
            else:
                error = f"FunctionError {resp.get('FunctionError') or 'in log'}: {_short(payload)}"
        else:
            problems = check_expect(case.expect, payload)
            if problems:
                summary, error = "response mismatch", "; ".join(problems)
        out.append(
            SmokeResult(
                case=case.name,
                ok=error is None,
                summary=summary,
                duration_ms=duration,
                error=error,
                traceback_tail=log_tail[-2000:] if error else None,
                where="remote",
            )
        )
    out += _log_import_errors(logs, fn.name, since_ms=started - LOG_LOOKBACK_MS)
    return out


def _log_import_errors(logs: Any, name: str, *, since_ms: int) -> list[SmokeResult]:
    from botocore.exceptions import ClientError

    from deploy.aws.logs import import_errors

    try:  # no log group yet: the function never logged anything, so no import error either
        events = import_errors(logs, name, since_ms=since_ms)
    except ClientError as exc:
        raise VerifyError(f"cannot read the logs of {name}: {exc}") from None
    if not events:
        return []
    message = events[-1].message.strip()
    return [
        SmokeResult(
            case="logs",
            ok=False,
            summary="import error in recent logs",
            duration_ms=0.0,
            error=f"/aws/lambda/{name} logged {len(events)} ImportModuleError event(s) recently: {message[:500]}",
            where="remote",
        )
    ]
