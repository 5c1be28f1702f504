"""What a function serves now: ``$LATEST``, its alias, and the version the alias points at.

Status, the deploy plan, the transaction's snapshot and its restore all ask this one
question, so they read it the same way. ``$LATEST`` matters even though callers only see the
alias: it is where the next version is published from, and a refused or interrupted deploy
may have left it ahead of what the alias serves.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from deploy.aws.retry import error_code, error_message
from deploy.errors import AwsError

#: How long one download of deployed bytes (a presigned URL) may take.
HTTP_TIMEOUT_S = 15.0

#: Configuration a published version freezes, which Terraform (not the tasks) changes on $LATEST.
VERSIONED_CONFIG = ("Handler", "Runtime", "Role", "MemorySize", "Timeout", "Environment", "TracingConfig")


def frozen_config(config: Mapping[str, Any]) -> dict[str, Any]:
    return {key: config.get(key) for key in VERSIONED_CONFIG}


def layer_arns(config: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(layer["Arn"]) for layer in config.get("Layers") or ())


@dataclass(frozen=True, kw_only=True)
class Served:
    """One function as Lambda reports it; ``alias``/``served`` are None when the alias is missing."""

    name: str
    latest: Mapping[str, Any]
    alias: Mapping[str, Any] | None
    served: Mapping[str, Any] | None

    @property
    def alias_version(self) -> str | None:
        return None if self.alias is None else str(self.alias["FunctionVersion"])

    @property
    def latest_code(self) -> str | None:
        return self.latest.get("CodeSha256")

    @property
    def latest_layers(self) -> tuple[str, ...]:
        return layer_arns(self.latest)


def read(lam: Any, name: str, alias: str, *, error: type[AwsError] = AwsError) -> Served | None:
    """The function's state, or None if it does not exist. Any other AWS error is ``error``."""
    try:
        latest = lam.get_function_configuration(FunctionName=name)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise error(f"{name}: {error_message(exc)}") from None
    try:
        current = lam.get_alias(FunctionName=name, Name=alias)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return Served(name=name, latest=latest, alias=None, served=None)
        raise error(f"{name}: {error_message(exc)}") from None
    try:
        served = lam.get_function_configuration(FunctionName=name, Qualifier=current["FunctionVersion"])
    except ClientError as exc:
        raise error(f"{name}: {error_message(exc)}") from None
    return Served(name=name, latest=latest, alias=current, served=served)


def http_get(url: str) -> bytes:
    """Download a presigned Code.Location / Content.Location URL: the bytes a function or layer serves
    (verify runs them; the transaction's restore puts them back when no S3 copy is left)."""
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"not an HTTP URL: {url[:40]}")
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as resp:  # noqa: S310 - scheme checked above
        data: bytes = resp.read()
    return data
