"""The publisher's pointer: which layer version it published from ``lambda/layer-<identity>.zip``.

Written by publish right after a version is published, beside the zip in the artifact bucket, and
read by environments in other accounts that cannot list the publisher's versions. It lives in the
bucket, so it is only a hint: ``deploy.aws.cache_trust`` believes nothing in it until Lambda agrees.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from deploy.artifact import hex_sha256, layer_key
from deploy.aws.cache import CacheMiss
from deploy.aws.retry import error_message
from deploy.errors import CacheError

POINTER_SUFFIX = ".published.json"
#: A pointer is three short fields; anything much bigger is not one (and is not read whole).
_POINTER_MAX = 4096


@dataclass(frozen=True, kw_only=True)
class Pointer:
    """What the publisher says it published for ``identity``; only a hint until Lambda agrees."""

    identity: str
    layer_version_arn: str
    code_sha256: str  # base64, as Lambda reports it

    def to_json(self) -> bytes:
        fields = {
            "identity": self.identity,
            "layer_version_arn": self.layer_version_arn,
            "code_sha256": self.code_sha256,
        }
        return (json.dumps(fields, indent=2, sort_keys=True) + "\n").encode()


@dataclass(frozen=True, kw_only=True)
class NoPointer(CacheMiss):
    """No pointer could be read (absent, or a bucket that refuses it): the listing is tried instead."""


def pointer_key(identity: str) -> str:
    """Beside ``lambda/layer-<identity>.zip``, so the readers' ``lambda/layer-*`` grant covers it."""
    return layer_key(identity, POINTER_SUFFIX)


def write_pointer(s3: Any, bucket: str, pointer: Pointer) -> None:
    """Record, beside the zip, the layer version just published from it (the publisher's side)."""
    key = pointer_key(pointer.identity)
    try:
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=pointer.to_json(),
            ContentType="application/json",
            ChecksumAlgorithm="SHA256",
        )
    except (ClientError, BotoCoreError) as exc:
        raise CacheError(f"writing s3://{bucket}/{key} failed: {error_message(exc)}") from None


def read_pointer(s3: Any, bucket: str, identity: str) -> Pointer | CacheMiss:
    """The pointer for ``identity`` as the bucket holds it: parsed, not yet believed."""
    where = f"s3://{bucket}/{pointer_key(identity)}"
    try:
        raw = s3.get_object(Bucket=bucket, Key=pointer_key(identity))["Body"].read(_POINTER_MAX + 1)
    except (ClientError, BotoCoreError) as exc:
        return NoPointer(reason=f"no publisher pointer readable at {where} ({error_message(exc)})")
    try:
        if len(raw) > _POINTER_MAX:
            raise ValueError(f"over {_POINTER_MAX} bytes")
        data = json.loads(raw)
        pointer = Pointer(
            identity=str(data["identity"]),
            layer_version_arn=str(data["layer_version_arn"]),
            code_sha256=str(data["code_sha256"]),
        )
        hex_sha256(pointer.code_sha256)
    except (ValueError, KeyError, TypeError) as exc:
        return CacheMiss(reason=f"publisher pointer {where} is malformed ({exc}): not used")
    if pointer.identity != identity:
        return CacheMiss(reason=f"publisher pointer {where} names identity {pointer.identity[:12]}: not used")
    return pointer
