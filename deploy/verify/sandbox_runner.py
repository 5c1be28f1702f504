"""Import one Lambda handler and call it with smoke events, the way the Lambda runtime would.

This file is executed by the *runtime's* interpreter (e.g. python3.12) as
``python3.12 -I -S sandbox_runner.py <spec.json>``: isolated mode ignores PYTHON* variables
and the user site, ``-S`` skips site-packages, so only the extracted function and layer are
importable — a dependency missing from the layer fails here exactly as it does on Lambda.
Hence: standard library only, and no import of ``deploy``.

The spec (a JSON file) holds ``task_root``, ``sys_path`` (Lambda's order), ``handler``
(``module.attr``), ``events`` (a list of ``{"name", "event"}``) and ``context`` fields.
One JSON document goes to the original stdout; everything the handler prints is sent to
stderr (file-descriptor level, so C extensions cannot corrupt the document either).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
import uuid
from typing import Any

TRACEBACK_LINES = 25


class LambdaContext:
    """The attributes handlers read from Lambda's context object."""

    def __init__(self, fields: dict[str, Any], deadline: float) -> None:
        self.function_name: str = fields.get("function_name", "sandbox")
        self.function_version: str = fields.get("function_version", "$LATEST")
        self.invoked_function_arn: str = fields.get(
            "invoked_function_arn", f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"
        )
        self.memory_limit_in_mb: int = int(fields.get("memory_limit_in_mb", 128))
        self.aws_request_id: str = str(uuid.uuid4())
        self.log_group_name: str = f"/aws/lambda/{self.function_name}"
        self.log_stream_name: str = "sandbox"
        self.identity = None
        self.client_context = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _tail(exc: BaseException) -> str:
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)  # 3.9-compatible form
    return "".join(lines[-TRACEBACK_LINES:])


def _jsonable(value: Any) -> Any:
    """Lambda serialises the return value with json; a value it cannot serialise is an error there too."""
    json.dumps(value)
    return value


def _import_handler(handler: str) -> tuple[Any, dict[str, Any]]:
    module_name, _, attr = handler.rpartition(".")
    if not module_name or not attr:
        return None, {
            "error_type": "Runtime.MalformedHandlerName",
            "error": f"Runtime.MalformedHandlerName: Bad handler '{handler}': not enough values to unpack",
        }
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - every import failure is a finding to report
        # Lambda's own wording, so the message matches what CloudWatch would show.
        return None, {
            "error_type": "Runtime.ImportModuleError",
            "error": f"Runtime.ImportModuleError: Unable to import module '{module_name}': {exc}",
            "exception": type(exc).__name__,
            "missing_module": getattr(exc, "name", None) if isinstance(exc, ImportError) else None,
            "traceback_tail": _tail(exc),
        }
    fn = getattr(module, attr, None)
    if fn is None:
        return None, {
            "error_type": "Runtime.HandlerNotFound",
            "error": f"Runtime.HandlerNotFound: handler attribute '{attr}' not found in {module_name}",
        }
    if not callable(fn):
        return None, {
            "error_type": "Runtime.HandlerNotFound",
            "error": f"Runtime.HandlerNotFound: {module_name}.{attr} is a {type(fn).__name__}, not a callable",
        }
    return fn, {}


#: The request id of the event being handled, for the log lines (see ``_lambda_logging``).
_REQUEST = {"id": ""}


def _lambda_logging() -> None:
    """What Lambda's Python runtime does before the handler is imported: one handler on the root logger
    writing ``[LEVEL]\t<time>\t<request id>\t<message>``, so a module's ``logger.info`` shows up as in
    CloudWatch (without it only warnings reach stderr, through logging's last resort)."""
    import logging

    class _RequestId(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.aws_request_id = _REQUEST["id"]
            return True

    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s", "%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(_RequestId())
    logging.getLogger().addHandler(handler)


def run(spec: dict[str, Any]) -> dict[str, Any]:
    if spec.get("lambda_logging"):
        _lambda_logging()
    sys.path[:0] = spec["sys_path"]
    os.chdir(spec["task_root"])  # Lambda starts the runtime with /var/task as the working directory
    timeout = float(spec.get("timeout_s", 60))
    started = time.monotonic()
    out: dict[str, Any] = {"python": sys.version.split()[0], "sys_path": list(sys.path), "results": []}

    t0 = time.perf_counter()
    fn, error = _import_handler(spec["handler"])
    out["import_ms"] = round((time.perf_counter() - t0) * 1000, 2)
    if fn is None:
        out.update(error)
        return out

    for case in spec["events"]:
        context = LambdaContext(spec.get("context", {}), started + timeout)
        _REQUEST["id"] = context.aws_request_id
        t1 = time.perf_counter()
        entry: dict[str, Any] = {"name": case["name"]}
        try:
            entry["response"] = _jsonable(fn(case["event"], context))
            entry["ok"] = True
        except Exception as exc:  # noqa: BLE001 - a raised handler error is a result, as on Lambda
            entry.update(
                ok=False,
                error=f"{type(exc).__name__}: {exc}",
                traceback_tail=_tail(exc),
            )
        entry["duration_ms"] = round((time.perf_counter() - t1) * 1000, 2)
        out["results"].append(entry)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: sandbox_runner.py SPEC.json\n")
        return 2
    with open(argv[1], encoding="utf-8") as fh:  # noqa: PTH123 - keep this file free of extra imports
        spec = json.load(fh)
    # Keep the real stdout for our one document; the handler's prints (and any C-level writes) go to stderr.
    result_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        result = run(spec)
    except BaseException as exc:  # noqa: BLE001 - SystemExit from a handler import must still yield a report
        result = {"error_type": "Sandbox.Crash", "error": f"{type(exc).__name__}: {exc}", "traceback_tail": _tail(exc)}
    data = json.dumps(result, default=repr).encode("utf-8")
    with os.fdopen(result_fd, "wb") as fh:
        fh.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
