"""Admin operations that run in other functions.

Cleanup runs in its own Lambda (longer timeout, database and S3 permissions the API does not hold);
the API only invokes it synchronously and relays its counts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, StrictBool

from app.aws import lambda_client
from app.config import Settings

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/admin")

LambdaClientFactory = Callable[[Settings], Any]


class CleanupAction(StrEnum):
    ALL = "all"
    ORPHANS = "orphans"
    STALE = "stale"
    EXPIRED_SESSIONS = "expired_sessions"


class CleanupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: CleanupAction
    # Deleting is opt-in from the API: a request that forgets the flag only counts.
    dry_run: StrictBool = True


def get_settings() -> Settings:
    return Settings.from_env()


def get_lambda_client_factory() -> LambdaClientFactory:
    return lambda_client


def _error(status: int, error: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": error, "message": message, **extra})


@router.post("/cleanup", response_model=None)
def cleanup(
    request: CleanupRequest,
    settings: Annotated[Settings, Depends(get_settings)],
    client_factory: Annotated[LambdaClientFactory, Depends(get_lambda_client_factory)],
) -> dict[str, Any] | JSONResponse:
    # A plain `def` route: FastAPI runs it in a worker thread, so the blocking boto3 call
    # does not stall the event loop.
    if settings.cleanup_function_name is None:
        return _error(
            500,
            "cleanup_not_configured",
            "CLEANUP_FUNCTION_NAME is not set; the API does not know which cleanup function to invoke",
        )
    function_name = settings.cleanup_function_name
    payload = {"action": request.action.value, "dry_run": request.dry_run}
    try:
        response = client_factory(settings).invoke(
            FunctionName=function_name,
            InvocationType="RequestResponse",
            Payload=json.dumps(payload).encode(),
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "ClientError")
        logger.warning("invoke %s failed: %s", function_name, exc)
        return _error(502, "cleanup_invoke_failed", str(exc), function=function_name, code=code)
    except BotoCoreError as exc:
        logger.warning("invoke %s failed: %s", function_name, exc)
        return _error(502, "cleanup_invoke_failed", str(exc), function=function_name)

    result = _read_payload(response)
    if response.get("FunctionError"):
        # Lambda reports a raised exception as 200 + FunctionError with the error in the payload.
        return _error(
            502,
            "cleanup_failed",
            _error_message(result),
            function=function_name,
            function_error=response["FunctionError"],
            details=result,
        )
    return {"action": request.action.value, "dry_run": request.dry_run, "result": result}


def _read_payload(response: dict[str, Any]) -> Any:
    stream = response.get("Payload")
    raw = stream.read() if stream is not None else b""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


def _error_message(result: Any) -> str:
    if isinstance(result, dict) and isinstance(result.get("errorMessage"), str):
        error_type = result.get("errorType", "Error")
        return f"{error_type}: {result['errorMessage']}"
    return "cleanup function raised an error"
