"""What ``inv invoke`` answers: the handler's return value, or Lambda's error document, with its logs,
init and duration, read from the sandbox runner's report or from Lambda's Invoke response."""

from __future__ import annotations

import base64
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, TextIO

from deploy.errors import HandlerError

#: Lines of the handler's traceback the error keeps (the end: where it was raised).
TRACEBACK_TAIL_LINES = 12
_REPORT = re.compile(
    r"REPORT RequestId:.*?\tDuration: (?P<duration>[\d.]+) ms(?:.*?\tInit Duration: (?P<init>[\d.]+) ms)?"
)

Where = Literal["sandbox: built zips", "sandbox: deployed bytes", "lambda"]


@dataclass(frozen=True, kw_only=True)
class Failure:
    """A handler that raised (or did not import): Lambda's error document, and the traceback's end."""

    error_type: str
    message: str
    traceback_tail: str = ""

    def document(self) -> dict[str, Any]:
        """What Lambda returns for it (``errorType``, ``errorMessage``, ``stackTrace``)."""
        return {
            "errorType": self.error_type,
            "errorMessage": self.message,
            "stackTrace": self.traceback_tail.splitlines(),
        }


@dataclass(frozen=True, kw_only=True)
class InvokeResult:
    function: str  # the function's name (or key, before its first deploy)
    where: Where
    detail: str  # what ran: which bytes, which isolation
    response: Any = None
    failure: Failure | None = None
    logs: str = ""
    init_ms: float | None = None
    duration_ms: float | None = None

    def timing(self) -> str:
        parts = [f"init {self.init_ms:.0f} ms" if self.init_ms is not None else "init: warm (no init)"]
        if self.duration_ms is not None:
            parts.append(f"duration {self.duration_ms:.0f} ms")
        return ", ".join(parts)

    def raise_for_failure(self) -> None:
        if self.failure is not None:
            tail = "\n".join(self.failure.traceback_tail.splitlines()[-TRACEBACK_TAIL_LINES:])
            raise HandlerError(
                f"{self.function} raised {self.failure.error_type}: {self.failure.message}"
                + (f"\n{tail}" if tail else ""),
                error_type=self.failure.error_type,
            )


def _split_error(text: str) -> tuple[str, str]:
    """``KeyError: 'x'`` → (``KeyError``, ``'x'``): the sandbox runner's form of an exception."""
    kind, sep, message = text.partition(": ")
    return (kind, message) if sep and " " not in kind else ("Error", text)


def as_on_lambda(text: str, *, task_root: str, opt: str, runner: str) -> str:
    """Paths as Lambda shows them (``/var/task/…``, ``/opt/…``), and no frame of the sandbox's runner:
    the traceback reads as CloudWatch's would, not as this machine's extraction cache."""
    lines, skipping = [], False
    for line in text.replace(task_root, "/var/task").replace(opt, "/opt").splitlines():
        if line.startswith('  File "'):
            skipping = line.startswith(f'  File "{runner}"')
        elif not line.startswith("    "):
            skipping = False
        if not skipping:
            lines.append(line)
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def from_runner(raw: Mapping[str, Any], *, function: str, where: Where, detail: str, logs: str) -> InvokeResult:
    """The sandbox runner's report for one event (see ``deploy/verify/sandbox_runner.py``)."""
    base = InvokeResult(function=function, where=where, detail=detail, logs=logs, init_ms=raw.get("import_ms"))
    if raw.get("error"):  # the handler did not import (or the runner itself failed)
        error_type = str(raw.get("error_type") or "Runtime.Error")
        message = str(raw["error"]).removeprefix(f"{error_type}: ")
        return replace(
            base,
            failure=Failure(error_type=error_type, message=message, traceback_tail=raw.get("traceback_tail") or ""),
        )
    results = raw.get("results") or []
    if not results:
        return replace(base, failure=Failure(error_type="Sandbox.NoResult", message="the sandbox returned no result"))
    entry = results[0]
    base = replace(base, duration_ms=entry.get("duration_ms"))
    if entry.get("ok"):
        return replace(base, response=entry.get("response"))
    error_type, message = _split_error(str(entry.get("error") or "Error"))
    return replace(
        base, failure=Failure(error_type=error_type, message=message, traceback_tail=entry.get("traceback_tail") or "")
    )


def read_invoke(resp: Mapping[str, Any]) -> tuple[Any, str]:
    """Lambda's Invoke answer as ``(payload, log tail)``: the payload as JSON (text when it is not JSON,
    ``None`` when empty) and the base64 log tail of ``LogType=Tail`` decoded."""
    raw = resp["Payload"].read() if resp.get("Payload") is not None else b""
    logs = base64.b64decode(resp.get("LogResult") or "").decode("utf-8", "replace")
    try:
        return (json.loads(raw) if raw else None), logs
    except ValueError:
        return raw.decode("utf-8", "replace"), logs


def from_lambda(resp: Mapping[str, Any], *, function: str, detail: str) -> InvokeResult:
    """Lambda's Invoke answer: the payload, ``FunctionError`` and the base64 log tail (``LogType=Tail``),
    whose REPORT line gives the duration and, after a cold start, the init duration."""
    payload, logs = read_invoke(resp)
    report = _REPORT.search(logs)
    result = InvokeResult(
        function=function,
        where="lambda",
        detail=detail,
        logs=logs,
        duration_ms=float(report["duration"]) if report else None,
        init_ms=float(report["init"]) if report and report["init"] else None,
    )
    if not resp.get("FunctionError"):
        return replace(result, response=payload)
    doc = payload if isinstance(payload, Mapping) else {}
    trace = doc.get("stackTrace") or []
    return replace(
        result,
        failure=Failure(
            error_type=str(doc.get("errorType") or resp["FunctionError"]),
            message=str(doc.get("errorMessage") or payload),
            traceback_tail="".join(trace) if isinstance(trace, list) else str(trace),
        ),
    )


def show(result: InvokeResult, *, out: TextIO | None = None, err: TextIO | None = None) -> None:
    """Return value (or Lambda's error document) on stdout; logs, what ran and the timing on stderr."""
    out, err = out or sys.stdout, err or sys.stderr
    err.write(f"› {result.function}: {result.detail}\n")
    if result.logs:
        err.write(result.logs if result.logs.endswith("\n") else result.logs + "\n")
    err.write(f"› {result.timing()}\n")
    document = result.failure.document() if result.failure is not None else result.response
    out.write(json.dumps(document, indent=2, default=str) + "\n")
    out.flush()
