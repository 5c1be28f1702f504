"""boto3 client factories shared by the API and the workers.

boto3 is imported on first use, not at module import: it costs about 0.2 s of every cold start
(the init phase, measured with `inv layer-report --imports`), and most API requests and worker
runs never create a client.
"""

from __future__ import annotations

from typing import Any

from app.config import Settings, endpoint_url


def lambda_client(settings: Settings) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=5,
        read_timeout=settings.invoke_read_timeout,
        # One attempt: a timed-out RequestResponse invoke may still be running, and a retry
        # would start a second cleanup beside it.
        retries={"total_max_attempts": 1},
    )
    return boto3.client("lambda", region_name=settings.region, endpoint_url=settings.lambda_endpoint_url, config=config)


def s3_client(region: str | None = None) -> Any:
    import boto3

    return boto3.client("s3", region_name=region, endpoint_url=endpoint_url("s3"))


def secrets_client(region: str | None = None) -> Any:
    import boto3

    return boto3.client("secretsmanager", region_name=region, endpoint_url=endpoint_url("secrets_manager"))
