"""boto3 sessions and clients for an environment.

The ``local`` environment points every client at the moto server with dummy
credentials, so no code path below this module knows it is talking to an emulator.
"""

from __future__ import annotations

from typing import Protocol

import boto3
from botocore.config import Config

#: Credentials the moto server accepts; never real ones.
EMULATOR_ACCESS_KEY = "testing"
EMULATOR_SECRET_KEY = "testing"  # noqa: S105 - moto's documented dummy secret

# Standard mode retries throttling with backoff; our own retry loop (deploy.aws.retry)
# handles what botocore does not: ResourceConflictException while an update is in progress.
# One client serves a whole thread pool (attach runs up to max_workers functions at once), so
# its connection pool must be larger than botocore's default of 10.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60, max_pool_connections=32
)


class Endpoint(Protocol):
    """Where clients go: an ``EnvConfig``, or the run's ``deploy.context.Aws``."""

    @property
    def region(self) -> str: ...
    @property
    def profile(self) -> str | None: ...
    @property
    def endpoint_url(self) -> str | None: ...


def session_for(env: Endpoint, region: str | None = None) -> boto3.Session:
    region = region or env.region
    if env.endpoint_url:
        return boto3.Session(
            region_name=region, aws_access_key_id=EMULATOR_ACCESS_KEY, aws_secret_access_key=EMULATOR_SECRET_KEY
        )
    return boto3.Session(region_name=region, profile_name=env.profile)
