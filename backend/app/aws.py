"""boto3 client factories shared by the API and the workers."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from app.config import Settings, endpoint_url


def lambda_client(settings: Settings) -> Any:
    config = Config(
        connect_timeout=5,
        read_timeout=settings.invoke_read_timeout,
        # One attempt: a timed-out RequestResponse invoke may still be running, and a retry
        # would start a second cleanup beside it.
        retries={"total_max_attempts": 1},
    )
    return boto3.client("lambda", region_name=settings.region, endpoint_url=settings.lambda_endpoint_url, config=config)


def s3_client(region: str | None = None) -> Any:
    return boto3.client("s3", region_name=region, endpoint_url=endpoint_url("s3"))
