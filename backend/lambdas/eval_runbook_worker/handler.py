"""eval_runbook_worker Lambda: SQS batch of runbook evaluation requests → POST to EVAL_API_URL.

Returns SQS's partial-batch response so only the failed messages return to the queue; the event
source mapping must enable ``ReportBatchItemFailures`` or SQS ignores the list and deletes all.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError

logger = logging.getLogger(__name__)
logger.setLevel(os.environ.get("LOG_LEVEL", "INFO"))

DEFAULT_TIMEOUT_SECONDS = 10.0


class RunbookEvalRequest(BaseModel):
    # Unknown fields are ignored so producers can add some before this worker learns them.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    runbook_id: str = Field(min_length=1, max_length=128)
    steps: list[str] = Field(min_length=1)
    callback: HttpUrl | None = None


def handler(event: Any, context: Any) -> dict[str, Any]:
    if not isinstance(event, Mapping) or not isinstance(event.get("Records"), list):
        raise ValueError('eval_runbook_worker expects an SQS event: {"Records": [...]}')
    records: list[Any] = event["Records"]
    url = os.environ.get("EVAL_API_URL", "").strip() or None
    timeout = _timeout_seconds()

    failures: list[dict[str, str]] = []
    valid: list[tuple[str, RunbookEvalRequest]] = []
    for index, record in enumerate(records):
        message_id = record.get("messageId") if isinstance(record, Mapping) else None
        if not isinstance(message_id, str) or not message_id:
            # Without an id SQS cannot be told which message failed; failing the whole batch
            # is the only way not to lose it.
            raise ValueError(f"SQS record {index} has no messageId")
        body = record.get("body")
        try:
            if not isinstance(body, str):
                raise TypeError(f"body is {type(body).__name__}, not a JSON string")
            valid.append((message_id, RunbookEvalRequest.model_validate_json(body)))
        except (ValidationError, TypeError) as exc:
            logger.warning("message %s is not a valid RunbookEvalRequest: %s", message_id, exc)
            failures.append({"itemIdentifier": message_id})

    posted = 0
    if url is None:
        logger.info("EVAL_API_URL is not set; validated %d message(s) without posting", len(valid))
    elif valid:
        # One client per invocation: connections are reused within the batch, and nothing is
        # left open in a sandbox that Lambda may freeze between invocations.
        with httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0))) as client:
            for message_id, request in valid:
                if _post(client, url, message_id, request):
                    posted += 1
                else:
                    failures.append({"itemIdentifier": message_id})

    return {"batchItemFailures": failures, "processed": len(records), "posted": posted}


def _post(client: httpx.Client, url: str, message_id: str, request: RunbookEvalRequest) -> bool:
    try:
        response = client.post(
            url,
            json=request.model_dump(mode="json"),
            # SQS delivers at least once; the message id lets the API drop a redelivery.
            headers={"Idempotency-Key": message_id},
        )
        response.raise_for_status()
    except httpx.HTTPError as exc:
        logger.warning("posting message %s (runbook %s) failed: %s", message_id, request.runbook_id, exc)
        return False
    return True


def _timeout_seconds() -> float:
    raw = os.environ.get("EVAL_API_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"EVAL_API_TIMEOUT must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"EVAL_API_TIMEOUT must be positive, got {raw!r}")
    return value
